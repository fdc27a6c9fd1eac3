"""Shared fixtures: the real data folder (realdata tests skip without it), and the platform on
real SQLite and real PostgreSQL with callers of every role."""

from __future__ import annotations

import base64
import hashlib
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
import sqlalchemy.exc
from fastapi.testclient import TestClient

from nqba.api.app import create_app
from nqba.auth.service import create_organisation, create_user, principal_of
from nqba.auth.tokens import issue_access_token
from nqba.authz import Role
from nqba.config import Settings, get_settings
from nqba.services import Services, build_services


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

POSTGRES_URL = os.environ.get("NQBA_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
TEST_SECRET = "test-secret-key-of-at-least-32-characters"
TEST_SIGNING_KEY = base64.b64encode(hashlib.sha256(b"nqba test audit key").digest()).decode()


def _postgres_schema_url(schema: str) -> str:
    sep = "&" if "?" in POSTGRES_URL else "?"
    return f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}"


@contextmanager
def temporary_database(kind: str, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database URL: a SQLite file, or a new PostgreSQL schema dropped after."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'nqba.db'}"
        return
    schema = f"t_{uuid.uuid4().hex[:16]}"
    admin = sqlalchemy.create_engine(POSTGRES_URL.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    except sqlalchemy.exc.OperationalError as e:  # fail loudly: the suite needs PostgreSQL
        pytest.fail(f"PostgreSQL is not reachable at {POSTGRES_URL}: {e}")
    try:
        yield _postgres_schema_url(schema)
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


def platform_settings(database_url: str, **overrides: Any) -> Settings:
    """Settings of a test platform: real secrets (environment 'test'), in-process jobs."""
    values: dict[str, Any] = {
        "environment": "test",
        "database_url": database_url,
        "secret_key": TEST_SECRET,
        "audit_signing_key": TEST_SIGNING_KEY,
        "rate_limit_per_minute": 0,
        "log_json": False,
    }
    values.update(overrides)
    return Settings(**values)


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


@dataclass(frozen=True)
class Caller:
    """A user in an organisation, with the headers that authenticate them."""

    organisation_id: str
    organisation: str
    user_id: str
    email: str
    password: str
    role: Role
    headers: dict[str, str]


CallerFactory = Callable[..., Caller]


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
