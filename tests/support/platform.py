"""Helpers of the platform tests: temporary databases on SQLite and PostgreSQL, settings,
and the ``Caller`` a test acts as. Imported by ``tests/conftest.py`` and by tests."""

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

from nqba.authz import Role
from nqba.config import Settings

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
