"""Refresh tokens: hashed storage, rotation, reuse detection, expiry and sign-out."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from nqba.auth.errors import InvalidCredentialsError, RefreshTokenReusedError
from nqba.auth.refresh import revoke_refresh_family, rotate_refresh_token
from nqba.auth.service import create_organisation, create_user
from nqba.auth.tokens import decode_access_token, issue_token_pair, refresh_token_pair
from nqba.authz import Role
from nqba.services import Services
from nqba.store.base import utcnow
from nqba.store.models import RefreshToken, User


def _signed_in(services: Services) -> tuple[str, str]:
    """A new user's id and the refresh token of a fresh sign-in."""
    with services.session_factory.begin() as session:
        org = create_organisation(session, "acme")
        user = create_user(session, org.id, "ada@acme.test", "correct horse battery", Role.ADMIN)
        pair = issue_token_pair(session, services.settings, user)
        return user.id, pair.refresh_token


def _rows(services: Services) -> list[RefreshToken]:
    with services.session_factory() as session:
        query = select(RefreshToken).order_by(RefreshToken.created_at)
        return list(session.execute(query).scalars())


def test_the_token_is_stored_only_as_its_sha256(services: Services) -> None:
    _, token = _signed_in(services)
    [row] = _rows(services)
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in row.token_hash


def test_rotation_marks_the_old_token_used_and_keeps_the_family(services: Services) -> None:
    user_id, token = _signed_in(services)
    with services.session_factory.begin() as session:
        pair = refresh_token_pair(session, services.settings, token)
    assert pair.refresh_token != token
    assert decode_access_token(services.settings, pair.access_token).actor_id == user_id
    first, second = _rows(services)
    assert first.used_at is not None
    assert second.used_at is None
    assert first.family_id == second.family_id
    assert first.revoked_at is None
    assert second.revoked_at is None


def test_reusing_a_used_token_revokes_the_whole_family(services: Services) -> None:
    _, token = _signed_in(services)
    with services.session_factory.begin() as session:
        newer = refresh_token_pair(session, services.settings, token).refresh_token
    with services.session_factory.begin() as session, pytest.raises(RefreshTokenReusedError):
        rotate_refresh_token(session, services.settings, token)
    # The error is caught inside the transaction, which commits the revocation.
    assert all(row.revoked_at is not None for row in _rows(services))
    with (
        services.session_factory() as session,
        pytest.raises(InvalidCredentialsError, match="revoked"),
    ):
        rotate_refresh_token(session, services.settings, newer)


def test_an_expired_token_is_refused(services: Services) -> None:
    _, token = _signed_in(services)
    with services.session_factory.begin() as session:
        session.execute(update(RefreshToken).values(expires_at=utcnow() - timedelta(seconds=1)))
    with (
        services.session_factory() as session,
        pytest.raises(InvalidCredentialsError, match="expired"),
    ):
        rotate_refresh_token(session, services.settings, token)


def test_a_deactivated_users_token_is_refused(services: Services) -> None:
    user_id, token = _signed_in(services)
    with services.session_factory.begin() as session:
        session.execute(update(User).where(User.id == user_id).values(is_active=False))
    with (
        services.session_factory() as session,
        pytest.raises(InvalidCredentialsError, match="deactivated"),
    ):
        rotate_refresh_token(session, services.settings, token)


def test_unknown_and_oversized_tokens_are_invalid(services: Services) -> None:
    _signed_in(services)
    with services.session_factory() as session:
        for token in ("", "not-a-token", "x" * 1000):
            with pytest.raises(InvalidCredentialsError, match="invalid refresh token"):
                rotate_refresh_token(session, services.settings, token)


def test_sign_out_revokes_the_family_but_not_other_sign_ins(services: Services) -> None:
    user_id, token = _signed_in(services)
    with services.session_factory.begin() as session:
        user = session.get(User, user_id)
        assert user is not None
        other = issue_token_pair(session, services.settings, user).refresh_token
    with services.session_factory.begin() as session:
        assert revoke_refresh_family(session, token) == 1
    with services.session_factory.begin() as session:
        with pytest.raises(InvalidCredentialsError, match="revoked"):
            rotate_refresh_token(session, services.settings, token)
        rotate_refresh_token(session, services.settings, other)
