"""Shared fixtures: the real data folder (realdata tests skip without it), and the platform on
real SQLite and real PostgreSQL with callers of every role."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from nqba.api.app import create_app
from nqba.auth.service import create_organisation, create_user, principal_of
from nqba.auth.tokens import issue_access_token
from nqba.authz import Role
from nqba.config import get_settings
from nqba.services import Services, build_services
from tests.support.platform import Caller, CallerFactory, platform_settings, temporary_database


def _data_dir() -> Path:
    return get_settings().data_dir


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked realdata need NQBA_DATA_DIR; without it they are skipped with the path."""
    data_dir = _data_dir()
    if data_dir.is_dir():
        return
    skip = pytest.mark.skip(reason=f"real data sets not found at {data_dir} (set NQBA_DATA_DIR)")
    for item in items:
        if "realdata" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def data_dir() -> Path:
    """The folder of real data sets (NQBA_DATA_DIR, default ../shared/data)."""
    return _data_dir()


# --- platform fixtures: real SQLite and real PostgreSQL ----------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of each kind (the test runs once per kind)."""
    with temporary_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def services(database_url: str) -> Iterator[Services]:
    """The platform's services on a migrated database of each kind."""
    built = build_services(platform_settings(database_url), migrate=True)
    try:
        yield built
    finally:
        built.close()


@pytest.fixture
def client(services: Services) -> Iterator[TestClient]:
    """An HTTP client of the API over ``services``."""
    with TestClient(create_app(services)) as test_client:
        yield test_client


@pytest.fixture
def make_caller(services: Services) -> CallerFactory:
    """``make_caller(role, organisation="acme")``: a new user with a bearer token."""
    created: dict[str, str] = {}

    def make(role: Role | str = Role.ANALYST, organisation: str = "acme") -> Caller:
        with services.session_factory.begin() as session:
            if organisation not in created:
                created[organisation] = create_organisation(session, organisation).id
            email = f"{Role(role).value}-{uuid.uuid4().hex[:8]}@{organisation}.test"
            password = "correct horse battery"
            user = create_user(session, created[organisation], email, password, role)
            principal = principal_of(user)
        token = issue_access_token(services.settings, principal)
        return Caller(
            organisation_id=created[organisation],
            organisation=organisation,
            user_id=principal.actor_id,
            email=email,
            password=password,
            role=Role(role),
            headers={"Authorization": f"Bearer {token}"},
        )

    return make
