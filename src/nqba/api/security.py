"""Who is calling, and the one guard that checks a permission.

``CurrentPrincipal`` resolves the caller from ``Authorization: Bearer <JWT>``;
``require(Permission.X)`` is the guard a router puts in its signature.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends
from fastapi.security import OAuth2PasswordBearer

from nqba.api.deps import ServicesDep
from nqba.api.errors import ForbiddenError, UnauthorizedError
from nqba.auth.errors import InvalidCredentialsError
from nqba.auth.tokens import decode_access_token
from nqba.authz import Permission, Principal

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)


def get_principal(
    services: ServicesDep, token: Annotated[str | None, Depends(oauth2_scheme)]
) -> Principal:
    """The caller of this request, or 401 naming what is wrong with its credentials."""
    if not token:
        raise UnauthorizedError("missing credentials: send Authorization: Bearer <token>")
    try:
        return decode_access_token(services.settings, token)
    except InvalidCredentialsError as e:
        raise UnauthorizedError(str(e)) from None


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


def require(permission: Permission) -> Callable[[Principal], Principal]:
    """A dependency that returns the caller if it holds ``permission``, else answers 403."""

    def guard(principal: CurrentPrincipal) -> Principal:
        if not principal.can(permission):
            raise ForbiddenError(
                f"role {principal.role.value!r} lacks the permission {permission.value!r}"
            )
        return principal

    guard.__name__ = f"require_{permission.name.lower()}"
    return guard
