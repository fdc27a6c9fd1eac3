"""Short-lived JWT access tokens (HS256) carrying the caller's organisation and role, and the
access/refresh pairs the token endpoint hands out."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any, Literal

import jwt
from sqlalchemy.orm import Session

from nqba.auth.errors import InvalidCredentialsError
from nqba.auth.refresh import issue_refresh_token, rotate_refresh_token
from nqba.auth.service import principal_of
from nqba.authz import Principal, Role
from nqba.config import Settings
from nqba.store.models import User

ALGORITHM = "HS256"
ISSUER = "nqba"


def issue_access_token(settings: Settings, principal: Principal) -> str:
    """A JWT for ``principal`` valid for ``settings.access_token_ttl_s`` seconds."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": principal.actor_id,
        "org": principal.organisation_id,
        "role": principal.role.value,
        "kind": principal.actor_kind,
        "name": principal.name,
        "typ": "access",
        "iat": now,
        "exp": now + settings.access_token_ttl_s,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, settings.secret_key, algorithm=ALGORITHM)


def decode_access_token(settings: Settings, token: str) -> Principal:
    """The principal of a valid access token; ``InvalidCredentialsError`` says why not."""
    try:
        claims = jwt.decode(
            token,
            settings.secret_key,
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            options={"require": ["exp", "iat", "sub", "org", "role", "typ"]},
        )
    except jwt.ExpiredSignatureError:
        raise InvalidCredentialsError("access token expired") from None
    except jwt.PyJWTError as e:
        raise InvalidCredentialsError(f"invalid access token ({e})") from None
    if claims.get("typ") != "access":
        raise InvalidCredentialsError("not an access token")
    try:
        role = Role(claims["role"])
    except ValueError:
        raise InvalidCredentialsError("access token names an unknown role") from None
    kind: Literal["user", "api_key"] = "api_key" if claims.get("kind") == "api_key" else "user"
    return Principal(
        organisation_id=str(claims["org"]),
        actor_kind=kind,
        actor_id=str(claims["sub"]),
        role=role,
        name=str(claims.get("name", "")),
    )


@dataclass(frozen=True)
class TokenPair:
    """What the token endpoint answers: a short-lived access token and its refresh token."""

    access_token: str
    refresh_token: str
    expires_in: int
    refresh_expires_in: int


def issue_token_pair(session: Session, settings: Settings, user: User) -> TokenPair:
    """Sign-in: an access token and the first refresh token of a new family."""
    refresh_token = issue_refresh_token(session, settings, user.id)
    return _pair(settings, user, refresh_token)


def refresh_token_pair(session: Session, settings: Settings, refresh_token: str) -> TokenPair:
    """Rotation: use ``refresh_token`` and issue the next pair (see ``rotate_refresh_token``).

    The access token carries the user's role as it is now, so a role change takes effect at
    the next refresh.
    """
    user, next_token = rotate_refresh_token(session, settings, refresh_token)
    return _pair(settings, user, next_token)


def _pair(settings: Settings, user: User, refresh_token: str) -> TokenPair:
    return TokenPair(
        access_token=issue_access_token(settings, principal_of(user)),
        refresh_token=refresh_token,
        expires_in=settings.access_token_ttl_s,
        refresh_expires_in=settings.refresh_token_ttl_s,
    )
