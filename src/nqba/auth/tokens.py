"""Short-lived JWT access tokens (HS256) carrying the caller's organisation and role."""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

import jwt

from nqba.auth.errors import InvalidCredentialsError
from nqba.authz import Principal, Role
from nqba.config import Settings

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
