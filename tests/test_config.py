"""Settings: embedded defaults, and placeholder secrets refused outside development."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from nqba.config import PLACEHOLDER_SECRET, Settings

REAL = "x" * 40


def test_defaults_are_the_embedded_ones() -> None:
    settings = Settings()
    assert settings.database_url == "sqlite:///./nqba.db"
    assert settings.jobs == "inprocess"
    assert settings.redis_url is None
    assert settings.environment == "development"


@pytest.mark.parametrize("environment", ["test", "production"])
@pytest.mark.parametrize("secret", ["secret_key", "audit_signing_key"])
def test_placeholder_or_short_secrets_are_refused_outside_development(
    environment: str, secret: str
) -> None:
    values: dict[str, Any] = {
        "secret_key": REAL,
        "audit_signing_key": REAL,
        "environment": environment,
    }
    Settings.model_validate(values)  # real secrets: accepted
    for bad in (PLACEHOLDER_SECRET, "short"):
        with pytest.raises(ValidationError, match=f"NQBA_{secret.upper()}"):
            Settings.model_validate({**values, secret: bad})


def test_production_is_configured_through_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NQBA_ENVIRONMENT", "production")
    monkeypatch.setenv("NQBA_SECRET_KEY", REAL)
    monkeypatch.setenv("NQBA_AUDIT_SIGNING_KEY", REAL)
    monkeypatch.setenv("NQBA_DATABASE_URL", "postgresql://db/nqba")
    monkeypatch.setenv("NQBA_REDIS_URL", "redis://cache:6379/0")
    monkeypatch.setenv("NQBA_JOBS", "celery")
    settings = Settings()
    assert settings.database_url == "postgresql://db/nqba"
    assert settings.broker_url == "redis://cache:6379/0"
    assert settings.jobs == "celery"
