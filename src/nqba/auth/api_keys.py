"""API keys for machines: ``nqba_<prefix>_<secret>``, stored as the prefix and SHA-256(secret).

The prefix (12 letters and digits) finds the row; the secret (32 random bytes) is never
stored. A high-entropy secret needs no slow hash: SHA-256 cannot be brute-forced at 256 bits,
and the digests are compared in constant time. The full key is shown once, at creation.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from nqba.auth.errors import InvalidCredentialsError, InvalidInputError, NotFoundError
from nqba.auth.service import check_may_grant, parse_role
from nqba.authz import Principal, Role
from nqba.store.base import utcnow
from nqba.store.models import ApiKey

KEY_MARKER = "nqba_"
PREFIX_LENGTH = 12
SECRET_BYTES = 32
MAX_KEY_LENGTH = 200
MAX_RATE_LIMIT_PER_MINUTE = 1_000_000
TOUCH_INTERVAL = timedelta(minutes=1)
"""``last_used_at`` is written at most once per interval per key, not on every request."""

_PREFIX_ALPHABET = string.ascii_letters + string.digits


def looks_like_api_key(credential: str) -> bool:
    """Whether a bearer credential is an API key rather than a JWT."""
    return credential.startswith(KEY_MARKER)


def hash_secret(secret: str) -> str:
    """The SHA-256 hex digest of a key's secret part."""
    return hashlib.sha256(secret.encode()).hexdigest()


def generate_api_key() -> tuple[str, str, str]:
    """A new key as ``(full_key, prefix, secret)``."""
    prefix = "".join(secrets.choice(_PREFIX_ALPHABET) for _ in range(PREFIX_LENGTH))
    secret = secrets.token_urlsafe(SECRET_BYTES)
    return f"{KEY_MARKER}{prefix}_{secret}", prefix, secret


def parse_api_key(key: str) -> tuple[str, str]:
    """``(prefix, secret)`` of a presented key; ``InvalidCredentialsError`` if malformed."""
    if not looks_like_api_key(key) or len(key) > MAX_KEY_LENGTH:
        raise InvalidCredentialsError("malformed API key")
    prefix, sep, secret = key[len(KEY_MARKER) :].partition("_")
    if not sep or len(prefix) != PREFIX_LENGTH or not secret:
        raise InvalidCredentialsError("malformed API key")
    return prefix, secret


def check_key_fields(name: str, rate_limit_per_minute: int | None) -> str:
    """The stripped name; ``InvalidInputError`` for an empty name or a bad limit."""
    name = name.strip()
    if not name or len(name) > 200:
        raise InvalidInputError("an API key needs a name of 1 to 200 characters")
    if rate_limit_per_minute is not None and not (
        1 <= rate_limit_per_minute <= MAX_RATE_LIMIT_PER_MINUTE
    ):
        raise InvalidInputError(
            f"rate_limit_per_minute must be between 1 and {MAX_RATE_LIMIT_PER_MINUTE}"
        )
    return name


def create_api_key(
    session: Session,
    *,
    organisation_id: str,
    name: str,
    role: Role | str,
    granter: Role | None,
    created_by: str | None = None,
    rate_limit_per_minute: int | None = None,
) -> tuple[ApiKey, str]:
    """A new key and its full text (to show once).

    ``granter`` is the creator's role (None for the operator's CLI); the key's role may not
    exceed it (``RoleCeilingError``).
    """
    role = parse_role(role)
    name = check_key_fields(name, rate_limit_per_minute)
    if granter is not None:
        check_may_grant(granter, role)
    full, prefix, secret = generate_api_key()
    key = ApiKey(
        organisation_id=organisation_id,
        created_by=created_by,
        name=name,
        prefix=prefix,
        secret_hash=hash_secret(secret),
        role=role.value,
        rate_limit_per_minute=rate_limit_per_minute,
    )
    session.add(key)
    session.flush()
    return key, full


def list_api_keys(session: Session, organisation_id: str | None = None) -> list[ApiKey]:
    """The keys of one organisation (all for None), revoked ones included, oldest first."""
    query = select(ApiKey).order_by(ApiKey.created_at, ApiKey.name)
    if organisation_id is not None:
        query = query.where(ApiKey.organisation_id == organisation_id)
    return list(session.execute(query).scalars())


def get_api_key(session: Session, organisation_id: str | None, key_id: str) -> ApiKey:
    """The key with this id in the organisation (any for None), or ``NotFoundError``."""
    key = session.get(ApiKey, key_id)
    if key is None or (organisation_id is not None and key.organisation_id != organisation_id):
        raise NotFoundError(f"no API key with id {key_id!r}")
    return key


def revoke_api_key(session: Session, organisation_id: str | None, key_id: str) -> ApiKey:
    """Revoke a key from now on (revoking a revoked key keeps its first revocation time)."""
    key = get_api_key(session, organisation_id, key_id)
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        session.flush()
    return key


def authenticate_api_key(session: Session, presented: str) -> ApiKey:
    """The live key matching ``presented``; ``InvalidCredentialsError`` says why not."""
    prefix, secret = parse_api_key(presented)
    key = session.execute(select(ApiKey).where(ApiKey.prefix == prefix)).scalar_one_or_none()
    # Hash even for an unknown prefix, so the time taken does not tell prefixes apart.
    digest = hash_secret(secret)
    if key is None or not hmac.compare_digest(digest, key.secret_hash):
        raise InvalidCredentialsError("invalid API key")
    if key.revoked_at is not None:
        raise InvalidCredentialsError("API key revoked")
    return key


def principal_of_key(key: ApiKey) -> Principal:
    """The caller an API key acts as."""
    return Principal(
        organisation_id=key.organisation_id,
        actor_kind="api_key",
        actor_id=key.id,
        role=Role(key.role),
        name=key.name,
        rate_limit_per_minute=key.rate_limit_per_minute,
    )


def touch_due(last_used_at: datetime | None, now: datetime) -> bool:
    """Whether ``last_used_at`` is old enough to be written again."""
    return last_used_at is None or now - last_used_at >= TOUCH_INTERVAL


def touch_api_key(session: Session, key_id: str, now: datetime) -> bool:
    """Set ``last_used_at = now`` unless it was set within the interval; whether it wrote."""
    result = session.execute(
        update(ApiKey)
        .where(
            ApiKey.id == key_id,
            or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at <= now - TOUCH_INTERVAL),
        )
        .values(last_used_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))
