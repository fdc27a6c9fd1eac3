"""Short-lived JWT access tokens (HS256) carrying the caller's organisation and role, and the
access/refresh pairs the token endpoint hands out."""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
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


VERIFIED_CACHE_SIZE = 4096
"""Access tokens whose signature and claims were checked, kept until they expire."""

_verified: OrderedDict[tuple[str, str], tuple[Principal, float]] = OrderedDict()
_verified_lock = threading.Lock()


def decode_access_token(settings: Settings, token: str) -> Principal:
    """The principal of a valid access token; ``InvalidCredentialsError`` says why not.

    A token seen before (under the same secret) is answered from a small cache, checking only
    its expiry: its signature and claims cannot have changed, and checking them costs about as
    much as the rest of a small decision's authentication and routing together.
    """
    key = (settings.secret_key, token)
    with _verified_lock:
        hit = _verified.get(key)
        if hit is not None:
            _verified.move_to_end(key)
    if hit is not None:
        principal, expires = hit
        if time.time() < expires:
            return principal
        with _verified_lock:
            _verified.pop(key, None)
        raise InvalidCredentialsError("access token expired")
    principal, expires = _verify(settings, token)
    with _verified_lock:
        _verified[key] = (principal, expires)
        while len(_verified) > VERIFIED_CACHE_SIZE:
            _verified.popitem(last=False)
    return principal


def _verify(settings: Settings, token: str) -> tuple[Principal, float]:
    """The principal of an access token and when it expires, checked in full."""
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
    principal = Principal(
        organisation_id=str(claims["org"]),
        actor_kind=kind,
        actor_id=str(claims["sub"]),
        role=role,
        name=str(claims.get("name", "")),
    )
    return principal, float(claims["exp"])


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
