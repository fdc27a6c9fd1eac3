"""The one path every decision endpoint takes: guard, decide, map errors, answer."""

from __future__ import annotations

import email.message
import inspect
import json
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Annotated, Any

import pydantic_core
from fastapi import APIRouter, Depends, Header, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError

from nqba.api.deps import ServicesDep, get_services
from nqba.api.errors import ERROR_RESPONSES, ApiError
from nqba.api.security import api_key_header, get_principal, oauth2_scheme, require
from nqba.authz import Principal
from nqba.authz.permissions import decide_permission
from nqba.decisions.registry import DecisionKind
from nqba.decisions.schemas import DecisionResponse, JobAccepted
from nqba.decisions.service import (
    MAX_IDEMPOTENCY_KEY,
    DecisionInputError,
    IdempotencyConflictError,
    decide,
)
from nqba.services import Services

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=MAX_IDEMPOTENCY_KEY,
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
        json.dumps(details)
        return details
    except (TypeError, ValueError):
        return None


DECISION_PARAMETERS = frozenset(
    {"body", "request", "response", "services", "principal", "idempotency_key"}
)
"""The parameters of every decision endpoint, which :class:`DecisionRoute` resolves itself."""

JSON_CONTENT_TYPES = frozenset({"application/json", "application/json; charset=utf-8"})


class DecisionRoute(APIRoute):
    """A decision endpoint's route: documented by FastAPI from the endpoint's signature as
    any route, but its requests take one fixed path instead of FastAPI's general dependency
    solver: 0.78-0.80 of the CPU per decision request (api_costs' route part).

    The path calls the same dependency functions the signature declares (``get_services``,
    the bearer and API-key schemes, ``get_principal`` and the permission guard), in
    FastAPI's order and with its answers for bad input: a body that is not JSON is a 422
    before anything else, then 401/403 from the guard, then the header's and the body's
    validation errors together. A valid JSON body is validated by pydantic-core straight from
    its bytes; any other body is parsed and validated as FastAPI does, for the same errors.
    Router-level dependencies and ``app.dependency_overrides`` do not apply to these routes
    (their routers declare none).
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        names = set(inspect.signature(self.endpoint).parameters)
        if names != DECISION_PARAMETERS:
            raise TypeError(
                f"{self.path}: a decision endpoint takes exactly {sorted(DECISION_PARAMETERS)},"
                f" not {sorted(names)}"
            )
        calls = {d.name: d.call for d in self.dependant.dependencies}
        if calls.get("services") is not get_services or calls.get("principal") is None:
            raise TypeError(f"{self.path}: services and principal must be ServicesDep and a guard")
        guard = calls["principal"]
        check: Callable[[Principal], Awaitable[Principal]] | None = (
            None if guard is get_principal else guard
        )
        assert self.body_field is not None
        body_model: type[BaseModel] = self.body_field.field_info.annotation  # type: ignore[assignment]
        endpoint = self.endpoint

        async def handle(request: Request) -> Response:
            body, data = await _read_body(request, body_model)
            services = await get_services(request)
            response = Response()  # carries headers set by the guard (X-RateLimit-*)
            principal = await get_principal(
                services, response, await oauth2_scheme(request), await api_key_header(request)
            )
            if check is not None:
                principal = await check(principal)
            idempotency_key = request.headers.get("idempotency-key")
            errors = _idempotency_key_errors(idempotency_key)
            if body is None:
                body = _validate_data(body_model, data, errors)
            if errors:
                raise RequestValidationError(errors, body=data)
            result: Response = await endpoint(
                body=body,
                request=request,
                response=response,
                services=services,
                principal=principal,
                idempotency_key=idempotency_key,
            )
            return result

        return handle


def reference_router(routes: Iterable[APIRoute], prefix: str) -> APIRouter:
    """The endpoints of ``routes`` again under ``prefix``, each as FastAPI's own ``APIRoute``:
    what :class:`DecisionRoute` is tested and measured against."""
    router = APIRouter(prefix=prefix)
    for route in routes:
        router.add_api_route(
            route.path,
            route.endpoint,
            methods=sorted(route.methods or ()),
            response_class=route.response_class,
            route_class_override=APIRoute,
        )
    return router


_MISSING: Any = object()
"""No body was sent."""


async def _read_body(request: Request, model: type[BaseModel]) -> tuple[BaseModel | None, Any]:
    """The body validated from its bytes by pydantic-core, or None and the data FastAPI
    would validate: the decoded JSON, the bytes of a body sent without a JSON content type,
    or ``_MISSING``. Malformed JSON answers 422 here, before authentication, as in FastAPI."""
    try:
        raw = await request.body()
    except Exception as e:
        raise HTTPException(status_code=400, detail="There was an error parsing the body") from e
    if not raw:
        return None, _MISSING
    if not _is_json(request.headers.get("content-type")):
        return None, raw
    try:
        return model.model_validate_json(raw), None
    except ValidationError:
        pass  # decode it as FastAPI does, for FastAPI's errors
    try:
        return None, json.loads(raw)
    except json.JSONDecodeError as e:
        raise RequestValidationError(
            [
                {
                    "type": "json_invalid",
                    "loc": ("body", e.pos),
                    "msg": "JSON decode error",
                    "input": {},
                    "ctx": {"error": e.msg},
                }
            ],
            body=e.doc,
        ) from e


def _is_json(content_type: str | None) -> bool:
    """FastAPI's test of a JSON body: ``application/json`` or ``application/*+json``."""
    if not content_type:
        return False
    if content_type in JSON_CONTENT_TYPES:
        return True
    message = email.message.Message()
    message["content-type"] = content_type
    if message.get_content_maintype() != "application":
        return False
    subtype = message.get_content_subtype()
    return subtype == "json" or subtype.endswith("+json")


def _idempotency_key_errors(key: str | None) -> list[Any]:
    if key is None or len(key) <= MAX_IDEMPOTENCY_KEY:
        return []
    return [
        {
            "type": "string_too_long",
            "loc": ("header", "Idempotency-Key"),
            "msg": f"String should have at most {MAX_IDEMPOTENCY_KEY} characters",
            "input": key,
            "ctx": {"max_length": MAX_IDEMPOTENCY_KEY},
        }
    ]


def _validate_data(model: type[BaseModel], data: Any, errors: list[Any]) -> BaseModel | None:
    """``data`` validated as FastAPI validates a body, or None with its errors (located
    under ``body``) added to ``errors``."""
    if data is _MISSING:
        errors.append({"type": "missing", "loc": ("body",), "msg": "Field required", "input": None})
        return None
    try:
        return model.model_validate(data, from_attributes=True)
    except ValidationError as e:
        errors.extend({**err, "loc": ("body", *err["loc"])} for err in e.errors())
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
            path=request.scope["path"],  # the route's own path: request.url builds a whole URL
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
        route_class_override=DecisionRoute,
    )
