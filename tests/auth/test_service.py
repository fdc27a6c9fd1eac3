"""Organisations, users, sign-in and the first owner, on SQLite and PostgreSQL."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from nqba.auth.errors import (
    DuplicateError,
    InvalidCredentialsError,
    InvalidInputError,
    LastOwnerError,
    NotFoundError,
    RoleCeilingError,
)
from nqba.auth.passwords import hash_password
from nqba.auth.service import (
    FIRST_ADMIN_EMAIL,
    authenticate,
    create_organisation,
    create_user,
    ensure_first_admin,
    get_organisation_by_name,
    get_user,
    list_users,
    update_user,
)
from nqba.auth.tokens import issue_token_pair
from nqba.authz import Role
from nqba.services import Services
from nqba.store.models import Organisation, RefreshToken, User

PASSWORD = "correct horse battery"


def _org(services: Services, name: str = "acme") -> str:
    with services.session_factory.begin() as session:
        return create_organisation(session, name).id


def _user(services: Services, org_id: str, email: str, role: Role = Role.ANALYST) -> str:
    with services.session_factory.begin() as session:
        return create_user(session, org_id, email, PASSWORD, role).id


def test_password_is_stored_only_as_an_argon2_hash(services: Services) -> None:
    user_id = _user(services, _org(services), "Ada@Acme.Test ")
    with services.session_factory() as session:
        user = session.get(User, user_id)
        assert user is not None
        assert user.email == "ada@acme.test"
        assert user.password_hash.startswith("$argon2id$")
        assert PASSWORD not in user.password_hash


def test_duplicate_email_and_organisation_raise_and_the_session_stays_usable(
    services: Services,
) -> None:
    org_id = _org(services)
    _user(services, org_id, "ada@acme.test")
    with services.session_factory.begin() as session:
        with pytest.raises(DuplicateError, match="already exists"):
            create_user(session, org_id, "ADA@acme.test", PASSWORD, Role.VIEWER)
        with pytest.raises(DuplicateError, match="already exists"):
            create_organisation(session, "acme")
        create_user(session, org_id, "bob@acme.test", PASSWORD, Role.VIEWER)
    with services.session_factory() as session:
        assert [u.email for u in list_users(session, org_id)] == ["ada@acme.test", "bob@acme.test"]
        assert len(session.execute(select(Organisation)).scalars().all()) == 1


@pytest.mark.parametrize(
    ("email", "password", "role", "words"),
    [
        ("not-an-email", PASSWORD, "viewer", "not an email"),
        ("two@@acme.test", PASSWORD, "viewer", "not an email"),
        ("ada@acme.test", "short", "viewer", "at least 12"),
        ("ada@acme.test", PASSWORD, "superuser", "unknown role"),
    ],
)
def test_bad_email_weak_password_or_unknown_role_is_refused(
    services: Services, email: str, password: str, role: str, words: str
) -> None:
    org_id = _org(services)
    with services.session_factory.begin() as session, pytest.raises(InvalidInputError, match=words):
        create_user(session, org_id, email, password, role)


def test_authenticate_accepts_the_right_password_case_insensitively_by_email(
    services: Services,
) -> None:
    user_id = _user(services, _org(services), "ada@acme.test")
    with services.session_factory() as session:
        assert authenticate(session, " ADA@acme.test", PASSWORD).id == user_id


def test_wrong_password_and_unknown_email_fail_alike_and_take_similar_time(
    services: Services,
) -> None:
    _user(services, _org(services), "ada@acme.test")

    def failure(email: str) -> tuple[str, float]:
        with services.session_factory() as session:
            start = time.perf_counter()
            with pytest.raises(InvalidCredentialsError) as caught:
                authenticate(session, email, "wrong password!!")
            return str(caught.value), time.perf_counter() - start

    failure("nobody@acme.test")  # the dummy hash is made once, on first use
    wrong = [failure("ada@acme.test") for _ in range(5)]
    unknown = [failure("nobody@acme.test") for _ in range(5)]
    assert {m for m, _ in wrong} == {m for m, _ in unknown} == {"incorrect email or password"}
    # Both cost one Argon2 verification (tens of ms); without the dummy, an unknown email
    # would answer in well under a millisecond.
    fastest_wrong, fastest_unknown = min(t for _, t in wrong), min(t for _, t in unknown)
    assert fastest_unknown > fastest_wrong / 3
    assert fastest_wrong > fastest_unknown / 3


def test_inactive_user_cannot_sign_in(services: Services) -> None:
    org_id = _org(services)
    _user(services, org_id, "owner@acme.test", Role.OWNER)
    user_id = _user(services, org_id, "ada@acme.test")
    with services.session_factory.begin() as session:
        update_user(session, get_user(session, org_id, user_id), is_active=False)
    with (
        services.session_factory() as session,
        pytest.raises(InvalidCredentialsError, match="deactivated"),
    ):
        authenticate(session, "ada@acme.test", PASSWORD)


def test_an_outdated_hash_is_upgraded_at_sign_in(services: Services) -> None:
    from argon2 import PasswordHasher

    user_id = _user(services, _org(services), "ada@acme.test")
    weak = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash(PASSWORD)
    with services.session_factory.begin() as session:
        user = session.get(User, user_id)
        assert user is not None
        user.password_hash = weak
    with services.session_factory.begin() as session:
        authenticate(session, "ada@acme.test", PASSWORD)
    with services.session_factory() as session:
        user = session.get(User, user_id)
        assert user is not None
        assert user.password_hash != weak
        assert user.password_hash.split("$")[3] == hash_password("x").split("$")[3]


def test_role_changes_respect_the_granters_ceiling(services: Services) -> None:
    org_id = _org(services)
    owner_id = _user(services, org_id, "owner@acme.test", Role.OWNER)
    user_id = _user(services, org_id, "ada@acme.test")
    with services.session_factory.begin() as session:
        user = get_user(session, org_id, user_id)
        with pytest.raises(RoleCeilingError):
            update_user(session, user, role=Role.OWNER, granter=Role.ADMIN)
        update_user(session, user, role=Role.AUDITOR, granter=Role.ADMIN)
        owner = get_user(session, org_id, owner_id)
        with pytest.raises(RoleCeilingError):
            update_user(session, owner, is_active=False, granter=Role.ADMIN)
    with services.session_factory() as session:
        assert get_user(session, org_id, user_id).role == "auditor"


def test_the_last_active_owner_cannot_be_demoted_or_deactivated(services: Services) -> None:
    org_id = _org(services)
    owner_id = _user(services, org_id, "owner@acme.test", Role.OWNER)
    with services.session_factory.begin() as session:
        owner = get_user(session, org_id, owner_id)
        with pytest.raises(LastOwnerError):
            update_user(session, owner, role=Role.ADMIN)
        with pytest.raises(LastOwnerError):
            update_user(session, owner, is_active=False)
    second_id = _user(services, org_id, "second@acme.test", Role.OWNER)
    with services.session_factory.begin() as session:
        update_user(session, get_user(session, org_id, owner_id), role=Role.ADMIN)
    with services.session_factory() as session:
        assert get_user(session, org_id, second_id).role == "owner"


def test_deactivating_a_user_revokes_their_refresh_tokens(services: Services) -> None:
    org_id = _org(services)
    _user(services, org_id, "owner@acme.test", Role.OWNER)
    user_id = _user(services, org_id, "ada@acme.test")
    with services.session_factory.begin() as session:
        issue_token_pair(session, services.settings, get_user(session, org_id, user_id))
    with services.session_factory.begin() as session:
        update_user(session, get_user(session, org_id, user_id), is_active=False)
    with services.session_factory() as session:
        rows = session.execute(select(RefreshToken).where(RefreshToken.user_id == user_id))
        assert all(row.revoked_at is not None for row in rows.scalars())


def test_users_of_another_organisation_are_not_found(services: Services) -> None:
    acme, globex = _org(services, "acme"), _org(services, "globex")
    user_id = _user(services, globex, "hank@globex.test")
    with services.session_factory() as session:
        with pytest.raises(NotFoundError):
            get_user(session, acme, user_id)
        assert list_users(session, acme) == []
        with pytest.raises(NotFoundError):
            get_organisation_by_name(session, "initech")


def test_ensure_first_admin_creates_the_default_owner_once(services: Services) -> None:
    with services.session_factory.begin() as session:
        created = ensure_first_admin(session)
    assert created is not None
    email, password = created
    assert email == FIRST_ADMIN_EMAIL
    with services.session_factory.begin() as session:
        user = authenticate(session, email, password)
        assert user.role == "owner"
        assert get_organisation_by_name(session, "default").id == user.organisation_id
        assert ensure_first_admin(session) is None
    with services.session_factory() as session:
        assert len(list_users(session)) == 1


def test_ensure_first_admin_does_nothing_when_users_exist(services: Services) -> None:
    _user(services, _org(services), "ada@acme.test", Role.OWNER)
    with services.session_factory.begin() as session:
        assert ensure_first_admin(session) is None
        assert (
            session.execute(select(Organisation).where(Organisation.name == "default")).first()
            is None
        )
