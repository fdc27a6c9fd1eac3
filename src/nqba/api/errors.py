"""Errors that carry their HTTP status, a machine-readable code and a human reason.

Every error response has the body ``{"error": {"code": ..., "reason": ..., "details": ...}}``.
Domain errors of the engine and the business units are mapped here, so bad input is a 4xx
with a reason and never a 500.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ApiError(Exception):
    """An error the API answers with ``status`` and ``{"error": {code, reason, details}}``."""

    status = 400
    code = "bad_request"

    def __init__(
        self,
        reason: str,
        *,
        status: int | None = None,
        code: str | None = None,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code
        self.details = details
        self.headers = headers or {}


class NotFoundError(ApiError):
    """404: also the answer for a resource of another organisation."""

    status = 404
    code = "not_found"


class UnauthorizedError(ApiError):
    """401: no credentials, or credentials that are invalid or expired."""

    status = 401
    code = "unauthorized"

    def __init__(self, reason: str, **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"WWW-Authenticate": "Bearer"})
        super().__init__(reason, **kwargs)


class ForbiddenError(ApiError):
    """403: authenticated, but the role lacks the permission."""

    status = 403
    code = "forbidden"


class ConflictError(ApiError):
    """409: the request conflicts with the current state (e.g. a reused idempotency key)."""

    status = 409
    code = "conflict"


class UnprocessableError(ApiError):
    """422: well-formed but invalid (bad spec, infeasible constraints, bad model)."""

    status = 422
    code = "invalid_request"


class TooManyRequestsError(ApiError):
    """429: the caller's rate limit is spent; ``Retry-After`` says for how long."""

    status = 429
    code = "rate_limited"


class ErrorDetail(BaseModel):
    """What went wrong, for machines (``code``) and for people (``reason``)."""

    code: str = Field(examples=["invalid_request"])
    reason: str = Field(examples=["objective: Input should be 'min_variance', ..."])
    details: Any = None


class ErrorBody(BaseModel):
    """The body of every error response."""

    error: ErrorDetail


def error_body(code: str, reason: str, details: Any = None) -> dict[str, Any]:
    """The JSON body of an error response."""
    return {"error": {"code": code, "reason": reason, "details": details}}


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in {
        400: "Bad request",
        401: "Missing, invalid or expired credentials",
        403: "The caller's role lacks the permission",
        404: "Not found (also for another organisation's resources)",
        409: "Conflict",
        422: "Invalid input",
        429: "Rate limit reached",
    }.items()
}
"""OpenAPI ``responses=`` of the error statuses every authenticated endpoint can answer."""


class AuditLogDamagedError(ApiError):
    """500: the stored log has a gap or damage; ``nqba audit verify`` locates it."""

    status = 500
    code = "audit_log_damaged"


def audit_log_damaged(error: Exception) -> AuditLogDamagedError:
    """The answer when a proof or root cannot be built from the stored log."""
    return AuditLogDamagedError(f"{error}; run `nqba audit verify` to locate the damage")
