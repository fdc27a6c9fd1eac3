"""API keys: format, hashed storage, authentication, revocation and the role ceiling."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from sqlalchemy import select

from nqba.auth.api_keys import (
    KEY_MARKER,
    PREFIX_LENGTH,
    authenticate_api_key,
    create_api_key,
    generate_api_key,
    get_api_key,
    list_api_keys,
    parse_api_key,
    principal_of_key,
    revoke_api_key,
    touch_api_key,
)
from nqba.auth.errors import (
    InvalidCredentialsError,
    InvalidInputError,
    NotFoundError,
    RoleCeilingError,
)
from nqba.auth.service import create_organisation
from nqba.authz import Role
from nqba.services import Services
from nqba.store.base import utcnow
from nqba.store.models import ApiKey


def test_generated_keys_have_the_documented_format_and_parse_back() -> None:
    full, prefix, secret = generate_api_key()
    assert full == f"{KEY_MARKER}{prefix}_{secret}"
    assert len(prefix) == PREFIX_LENGTH
    assert prefix.isalnum()
    assert len(secret) >= 43  # 32 random bytes, URL-safe base64
    assert parse_api_key(full) == (prefix, secret)
    assert len({generate_api_key()[0] for _ in range(50)}) == 50


@pytest.mark.parametrize(
    "presented",
    [
        "",
        "nqba_",
        "nqba_short_secret",
        "nqba_abcdefghijkl",
        "nqba_abcdefghijkl_",
        "token",
        "x" * 300,
    ],
)
def test_malformed_keys_are_refused(presented: str) -> None:
    with pytest.raises(InvalidCredentialsError, match="malformed"):
        parse_api_key(presented)


def _org(services: Services, name: str = "acme") -> str:
    with services.session_factory.begin() as session:
        return create_organisation(session, name).id


def test_only_the_prefix_and_a_sha256_of_the_secret_are_stored(services: Services) -> None:
    org_id = _org(services)
    with services.session_factory.begin() as session:
        key, full = create_api_key(
            session, organisation_id=org_id, name="bot", role=Role.ANALYST, granter=None
        )
        key_id = key.id
    prefix, secret = parse_api_key(full)
    with services.session_factory() as session:
        row = session.get(ApiKey, key_id)
        assert row is not None
        assert row.prefix == prefix
        assert row.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
        stored = " ".join(str(getattr(row, c.key)) for c in ApiKey.__table__.columns)
        assert secret not in stored


def test_a_key_authenticates_as_its_role_until_it_is_revoked(services: Services) -> None:
    org_id = _org(services)
    with services.session_factory.begin() as session:
        key, full = create_api_key(
            session,
            organisation_id=org_id,
            name="bot",
            role=Role.VIEWER,
            granter=Role.ADMIN,
            rate_limit_per_minute=30,
        )
        key_id = key.id
    with services.session_factory() as session:
        principal = principal_of_key(authenticate_api_key(session, full))
    assert (principal.actor_kind, principal.actor_id, principal.role) == (
        "api_key",
        key_id,
        "viewer",
    )
    assert principal.rate_limit_per_minute == 30
    assert principal.organisation_id == org_id
    with services.session_factory.begin() as session:
        revoke_api_key(session, org_id, key_id)
        first_revocation = get_api_key(session, org_id, key_id).revoked_at
        revoke_api_key(session, org_id, key_id)  # again: harmless, keeps the first time
        assert get_api_key(session, org_id, key_id).revoked_at == first_revocation
    with (
        services.session_factory() as session,
        pytest.raises(InvalidCredentialsError, match="revoked"),
    ):
        authenticate_api_key(session, full)


def test_a_wrong_secret_or_unknown_prefix_is_an_invalid_key(services: Services) -> None:
    org_id = _org(services)
    with services.session_factory.begin() as session:
        _, full = create_api_key(
            session, organisation_id=org_id, name="bot", role=Role.VIEWER, granter=None
        )
    prefix, secret = parse_api_key(full)
    other_full, _, _ = generate_api_key()
    with services.session_factory() as session:
        for presented in (f"{KEY_MARKER}{prefix}_{secret}x", other_full):
            with pytest.raises(InvalidCredentialsError, match="invalid API key"):
                authenticate_api_key(session, presented)


def test_key_roles_may_not_exceed_the_creators(services: Services) -> None:
    org_id = _org(services)
    with services.session_factory.begin() as session:
        with pytest.raises(RoleCeilingError, match="owner"):
            create_api_key(
                session, organisation_id=org_id, name="x", role=Role.OWNER, granter=Role.ADMIN
            )
        create_api_key(
            session, organisation_id=org_id, name="a", role=Role.AUDITOR, granter=Role.ADMIN
        )
        create_api_key(
            session, organisation_id=org_id, name="o", role=Role.OWNER, granter=Role.OWNER
        )
    with services.session_factory() as session:
        assert sorted(k.role for k in list_api_keys(session, org_id)) == ["auditor", "owner"]


@pytest.mark.parametrize(
    ("name", "limit", "words"),
    [("  ", None, "name"), ("bot", 0, "rate_limit"), ("bot", -5, "rate_limit")],
)
def test_a_blank_name_or_a_non_positive_limit_is_refused(
    services: Services, name: str, limit: int | None, words: str
) -> None:
    org_id = _org(services)
    with services.session_factory.begin() as session, pytest.raises(InvalidInputError, match=words):
        create_api_key(
            session,
            organisation_id=org_id,
            name=name,
            role=Role.VIEWER,
            granter=None,
            rate_limit_per_minute=limit,
        )


def test_keys_of_another_organisation_are_not_found(services: Services) -> None:
    acme, globex = _org(services, "acme"), _org(services, "globex")
    with services.session_factory.begin() as session:
        key, _ = create_api_key(
            session, organisation_id=globex, name="g", role=Role.VIEWER, granter=None
        )
        key_id = key.id
    with services.session_factory.begin() as session:
        with pytest.raises(NotFoundError):
            revoke_api_key(session, acme, key_id)
        assert list_api_keys(session, acme) == []
    with services.session_factory() as session:
        assert session.execute(select(ApiKey.revoked_at)).scalar_one() is None


def test_last_used_is_written_at_most_once_a_minute(services: Services) -> None:
    org_id = _org(services)
    with services.session_factory.begin() as session:
        key, _ = create_api_key(
            session, organisation_id=org_id, name="bot", role=Role.VIEWER, granter=None
        )
        key_id = key.id
    now = utcnow()
    with services.session_factory.begin() as session:
        assert touch_api_key(session, key_id, now)
        assert not touch_api_key(session, key_id, now + timedelta(seconds=30))
        assert touch_api_key(session, key_id, now + timedelta(seconds=61))
    with services.session_factory() as session:
        assert get_api_key(session, None, key_id).last_used_at == now + timedelta(seconds=61)
