"""The one path every decision endpoint takes: guard, decide, map errors, answer."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Header
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from nqba.api.errors import ERROR_RESPONSES, ApiError
from nqba.authz import Principal
from nqba.decisions.registry import DecisionKind
from nqba.decisions.schemas import DecisionResponse, JobAccepted
from nqba.decisions.service import (
    DecisionInputError,
    IdempotencyConflictError,
    decide,
)
from nqba.services import Services

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=255,
        description="Retries with the same key replay the first answer; no second decision.",
    ),
]


def decision_responses(kind: DecisionKind) -> dict[int | str, dict[str, Any]]:
    """OpenAPI responses of a decision endpoint: 200 inline, 202 job, and the errors."""
    return {
        200: {"model": DecisionResponse[kind.response_model], "description": "Decided inline"},  # type: ignore[name-defined]
        202: {"model": JobAccepted, "description": "Too large to run inline: a job was queued"},
        **ERROR_RESPONSES,
    }


def answer(
    services: Services,
    principal: Principal,
    kind: DecisionKind,
    request: BaseModel,
    *,
    path: str,
    idempotency_key: str | None,
) -> JSONResponse:
    """Decide and answer 200 (inline), 202 (job) or a 4xx naming what is wrong."""
    try:
        reply = decide(
            services, principal, kind, request, path=path, idempotency_key=idempotency_key
        )
    except DecisionInputError as e:
        raise ApiError(e.reason, status=422, code=e.code, details=_jsonable(e.details)) from None
    except IdempotencyConflictError as e:
        raise ApiError(str(e), status=422, code="idempotency_key_reused") from None
    headers = {"Idempotent-Replayed": "true"} if reply.replayed else {}
    return JSONResponse(reply.body, status_code=reply.status_code, headers=headers)


def _jsonable(details: Any) -> Any:
    if details is None:
        return None
    try:
        import json

        json.dumps(details)
        return details
    except (TypeError, ValueError):
        return None
