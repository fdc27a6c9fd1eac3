"""Refresh tokens: opaque, stored as SHA-256 only, rotated on each use, with reuse detection.

Each sign-in starts a family. Using a token marks it used and issues the next one of the
same family. Presenting a token that was already used means it was copied (by a thief or a
client that lost a race): the whole family is revoked and both holders must sign in again.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from nqba.auth.errors import InvalidCredentialsError, RefreshTokenReusedError
from nqba.config import Settings
from nqba.store.base import new_id, utcnow
from nqba.store.models import RefreshToken, User

REFRESH_TOKEN_BYTES = 32
MAX_REFRESH_TOKEN_LENGTH = 512


def hash_refresh_token(token: str) -> str:
    """The SHA-256 hex digest the database keeps instead of the token."""
    return hashlib.sha256(token.encode()).hexdigest()


def issue_refresh_token(
    session: Session, settings: Settings, user_id: str, family_id: str | None = None
) -> str:
    """A new refresh token for ``user_id`` (a new family unless ``family_id`` is given)."""
    token = secrets.token_urlsafe(REFRESH_TOKEN_BYTES)
    session.add(
        RefreshToken(
            user_id=user_id,
            family_id=family_id or new_id(),
            token_hash=hash_refresh_token(token),
            expires_at=utcnow() + timedelta(seconds=settings.refresh_token_ttl_s),
        )
    )
    session.flush()
    return token


def _find(session: Session, token: str) -> RefreshToken:
    if not token or len(token) > MAX_REFRESH_TOKEN_LENGTH:
        raise InvalidCredentialsError("invalid refresh token")
    row = session.execute(
        select(RefreshToken).where(RefreshToken.token_hash == hash_refresh_token(token))
    ).scalar_one_or_none()
    if row is None:
        raise InvalidCredentialsError("invalid refresh token")
    return row


def revoke_family(session: Session, family_id: str, now: datetime | None = None) -> int:
    """Revoke every live token of a family; the number revoked."""
    result: CursorResult[tuple[()]] = session.execute(  # type: ignore[assignment]
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now or utcnow())
    )
    return result.rowcount


def revoke_user_refresh_tokens(session: Session, user_id: str) -> int:
    """Revoke every live refresh token of a user (deactivation); the number revoked."""
    result: CursorResult[tuple[()]] = session.execute(  # type: ignore[assignment]
        update(RefreshToken)
        .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    return result.rowcount


def rotate_refresh_token(session: Session, settings: Settings, token: str) -> tuple[User, str]:
    """Use ``token``: mark it used and return its user and the next token of its family.

    ``InvalidCredentialsError`` names why a token is refused (unknown, revoked, expired, user
    deactivated). ``RefreshTokenReusedError`` means the token had been used before: the
    family is revoked in ``session``, and the caller must commit that before answering.
    """
    row = _find(session, token)
    now = utcnow()
    if row.revoked_at is not None:
        raise InvalidCredentialsError("refresh token revoked; sign in again")
    if row.used_at is not None:
        revoke_family(session, row.family_id, now)
        raise RefreshTokenReusedError(
            "refresh token already used; every token of this sign-in is now revoked"
        )
    if row.expires_at <= now:
        raise InvalidCredentialsError("refresh token expired; sign in again")
    user = session.get(User, row.user_id)
    if user is None or not user.is_active:
        revoke_family(session, row.family_id, now)
        raise InvalidCredentialsError("this account is deactivated")
    # Claim the token with a conditional UPDATE: of two concurrent uses, exactly one wins and
    # the other is treated as reuse.
    claimed: CursorResult[tuple[()]] = session.execute(  # type: ignore[assignment]
        update(RefreshToken)
        .where(
            RefreshToken.id == row.id,
            RefreshToken.used_at.is_(None),
            RefreshToken.revoked_at.is_(None),
        )
        .values(used_at=now)
    )
    if claimed.rowcount != 1:
        revoke_family(session, row.family_id, now)
        raise RefreshTokenReusedError(
            "refresh token already used; every token of this sign-in is now revoked"
        )
    return user, issue_refresh_token(session, settings, user.id, row.family_id)


def revoke_refresh_family(session: Session, token: str) -> int:
    """Sign out: revoke the family of ``token`` (known tokens only; used ones count too)."""
    return revoke_family(session, _find(session, token).family_id)
