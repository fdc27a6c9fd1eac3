"""Who is calling, its rate limit, and the one guard that checks a permission.

``CurrentPrincipal`` resolves the caller from ``Authorization: Bearer <JWT>``,
``Authorization: Bearer nqba_...`` (an API key) or ``X-API-Key: nqba_...``, and counts the
request against the caller's rate limit (429 with ``Retry-After`` when it is spent).
``require(Permission.X)`` is the guard a router puts in its signature.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer
from sqlalchemy.exc import SQLAlchemyError

from nqba.api.deps import ServicesDep
from nqba.api.errors import (
    ApiError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
    TooManyRequestsError,
    UnauthorizedError,
    UnprocessableError,
)
from nqba.auth import errors as auth_errors
from nqba.auth.api_keys import (
    authenticate_api_key,
    looks_like_api_key,
    principal_of_key,
    touch_api_key,
    touch_due,
)
from nqba.auth.ratelimit import hit
from nqba.auth.tokens import decode_access_token
from nqba.authz import Permission, Principal
from nqba.services import Services
from nqba.store.base import utcnow
from nqba.store.cache import InProcessCache
from nqba.store.session import read_session

log = logging.getLogger("nqba.auth")

oauth2_scheme = OAuth2PasswordBearer(
    tokenUrl="/api/v1/auth/token",
    auto_error=False,
    description="A JWT access token from /api/v1/auth/token, or an API key (nqba_...).",
)
api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="An API key: nqba_<prefix>_<secret>."
)


def api_error_of(error: auth_errors.AuthError) -> ApiError:
    """The HTTP answer to an identity error."""
    match error:
        case auth_errors.InvalidCredentialsError():
            return UnauthorizedError(str(error))
        case auth_errors.TooManyAttemptsError():
            return TooManyRequestsError(
                str(error),
                details={"limit": error.limit, "retry_after_s": error.retry_after_s},
                headers={"Retry-After": str(error.retry_after_s)},
            )
        case auth_errors.RoleCeilingError():
            return ForbiddenError(str(error))
        case auth_errors.NotFoundError():
            return NotFoundError(str(error))
        case auth_errors.DuplicateError() | auth_errors.LastOwnerError():
            return ConflictError(str(error))
        case auth_errors.InvalidInputError():
            return UnprocessableError(str(error))
    return ApiError(str(error))


def _api_key_principal(services: Services, presented: str) -> Principal:
    with read_session(services.session_factory) as session:
        key = authenticate_api_key(session, presented)
        principal = principal_of_key(key)
        last_used_at = key.last_used_at
    now = utcnow()
    if touch_due(last_used_at, now):
        # Its own short transaction, so the request never holds a write lock for it; a
        # missed update of last_used_at is not worth failing the request for.
        try:
            with read_session(services.session_factory) as session:
                touch_api_key(session, principal.actor_id, now)
        except SQLAlchemyError as e:
            log.warning("could not record API key use", extra={"error": type(e).__name__})
    return principal


def authenticate_request(services: Services, bearer: str | None, api_key: str | None) -> Principal:
    """The caller named by the request's credentials; ``InvalidCredentialsError`` if none."""
    if bearer and api_key:
        raise auth_errors.InvalidCredentialsError(
            "send one credential: Authorization or X-API-Key, not both"
        )
    if api_key:
        return _api_key_principal(services, api_key)
    if not bearer:
        raise auth_errors.InvalidCredentialsError(
            "missing credentials: send Authorization: Bearer <token> or X-API-Key: <key>"
        )
    if looks_like_api_key(bearer):
        return _api_key_principal(services, bearer)
    return decode_access_token(services.settings, bearer)


def enforce_rate_limit(services: Services, principal: Principal, response: Response) -> None:
    """Count the request; 429 when the caller's limit is spent, else ``X-RateLimit-*``."""
    try:
        state = hit(services.cache, principal, services.settings.rate_limit_per_minute)
    except auth_errors.TooManyAttemptsError as e:
        raise api_error_of(e) from None
    except Exception as e:  # the cache is down: serve, and say so in the log
        log.warning("rate limit not checked: cache error", extra={"error": type(e).__name__})
        return
    if state is not None:
        response.headers["X-RateLimit-Limit"] = str(state.limit)
        response.headers["X-RateLimit-Remaining"] = str(state.remaining)
        response.headers["X-RateLimit-Reset"] = str(state.reset_s)


def _principal(
    services: Services, response: Response, bearer: str | None, api_key: str | None
) -> Principal:
    try:
        principal = authenticate_request(services, bearer, api_key)
    except auth_errors.InvalidCredentialsError as e:
        raise UnauthorizedError(str(e)) from None
    enforce_rate_limit(services, principal, response)
    return principal


def _blocks(services: Services, bearer: str | None, api_key: str | None) -> bool:
    """Whether authenticating this request waits on I/O: an API key is looked up in the
    database, and a rate limit kept in Redis is a round trip."""
    if api_key or (bearer and looks_like_api_key(bearer)):
        return True
    limited = services.settings.rate_limit_per_minute > 0
    return limited and not isinstance(services.cache, InProcessCache)


async def get_principal(
    services: ServicesDep,
    response: Response,
    bearer: Annotated[str | None, Depends(oauth2_scheme)],
    api_key: Annotated[str | None, Depends(api_key_header)],
) -> Principal:
    """The caller of this request, or 401 naming what is wrong with its credentials.

    Every authenticated request is also counted against the caller's rate limit. A bearer
    token with an in-process rate limit is checked on the event loop (tens of microseconds
    of CPU, no I/O), which saves a hand-off to the thread pool; API keys and Redis run there.
    """
    if _blocks(services, bearer, api_key):
        return await run_in_threadpool(_principal, services, response, bearer, api_key)
    return _principal(services, response, bearer, api_key)


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


def require(permission: Permission) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency that returns the caller if it holds ``permission``, else answers 403."""

    async def guard(principal: CurrentPrincipal) -> Principal:  # no I/O: on the event loop
        if not principal.can(permission):
            raise ForbiddenError(
                f"role {principal.role.value!r} lacks the permission {permission.value!r}"
            )
        return principal

    guard.__name__ = f"require_{permission.name.lower()}"
    return guard
