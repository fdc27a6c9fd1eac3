"""The one path every decision endpoint takes: guard, decide, map errors, answer."""

from __future__ import annotations

import inspect
from typing import Annotated, Any

import pydantic_core
from fastapi import APIRouter, Depends, Header, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from nqba.api.deps import ServicesDep
from nqba.api.errors import ERROR_RESPONSES, ApiError
from nqba.api.security import require
from nqba.authz import Principal
from nqba.authz.permissions import decide_permission
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


async def answer(
    services: Services,
    principal: Principal,
    kind: DecisionKind,
    request: BaseModel,
    *,
    path: str,
    idempotency_key: str | None,
    response: Response | None = None,
) -> JSONResponse:
    """Decide and answer 200 (inline), 202 (job) or a 4xx naming what is wrong (on the event
    loop: :func:`nqba.decisions.service.decide` hands blocking work to worker threads).

    ``response`` is the endpoint's injected response: headers set on it by dependencies (the
    rate limit's ``X-RateLimit-*``) are carried over to the answer.
    """
    try:
        reply = await decide(
            services, principal, kind, request, path=path, idempotency_key=idempotency_key
        )
    except DecisionInputError as e:
        raise ApiError(e.reason, status=422, code=e.code, details=_jsonable(e.details)) from None
    except IdempotencyConflictError as e:
        raise ApiError(str(e), status=422, code="idempotency_key_reused") from None
    headers = dict(response.headers) if response is not None else {}
    headers.pop("content-length", None)
    if reply.replayed:
        headers["Idempotent-Replayed"] = "true"
    return DecisionJSONResponse(reply.body, status_code=reply.status_code, headers=headers)


class DecisionJSONResponse(JSONResponse):
    """A decision's answer, written by pydantic-core (the body is plain JSON data already:
    about a fifth of the standard library's time for a portfolio answer)."""

    def render(self, content: Any) -> bytes:
        return pydantic_core.to_json(content)


def _jsonable(details: Any) -> Any:
    if details is None:
        return None
    try:
        import json

        json.dumps(details)
        return details
    except (TypeError, ValueError):
        return None


def add_decision_route(
    router: APIRouter, path: str, kind: DecisionKind, *, summary: str, description: str
) -> None:
    """Register ``POST path`` for ``kind``: its body, the unit's decide guard, ``answer``."""
    decider = Annotated[Principal, Depends(require(decide_permission(kind.unit)))]

    async def endpoint(
        body: BaseModel,
        request: Request,
        response: Response,
        services: ServicesDep,
        principal: decider,
        idempotency_key: IdempotencyKey = None,
    ) -> JSONResponse:
        return await answer(
            services,
            principal,
            kind,
            body,
            path=request.url.path,
            idempotency_key=idempotency_key,
            response=response,
        )

    # FastAPI reads the signature: give it real types (annotations here are strings, and the
    # body's model and the guard are this kind's)
    types = {
        "body": kind.request_model,
        "request": Request,
        "response": Response,
        "services": ServicesDep,
        "principal": decider,
        "idempotency_key": IdempotencyKey,
    }
    parameters = [
        p.replace(annotation=types[p.name]) for p in inspect.signature(endpoint).parameters.values()
    ]
    endpoint.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        parameters, return_annotation=JSONResponse
    )
    endpoint.__name__ = kind.kind.replace("-", "_")
    endpoint.__doc__ = description
    router.add_api_route(
        path,
        endpoint,
        methods=["POST"],
        responses=decision_responses(kind),
        response_class=JSONResponse,
        summary=summary,
    )
