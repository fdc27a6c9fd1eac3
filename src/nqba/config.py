"""Process-wide settings, read from the environment with the ``NQBA_`` prefix.

Embedded defaults run everything in one process (SQLite file, in-process jobs and cache);
production changes values through the environment only. Outside development, secrets that
still hold a placeholder (or are missing) are refused at start-up.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRET = "change-me"
"""The development value of every secret; refused when ``environment`` is not development."""


class InsecureSettingsError(ValueError):
    """A secret still holds its placeholder (or is too short) outside development.

    Raised inside validation, so callers see it as a pydantic ``ValidationError``.
    """


class Settings(BaseSettings):
    """Embedded defaults; production changes values through the environment only."""

    model_config = SettingsConfigDict(env_prefix="NQBA_")

    data_dir: Path = Path("../shared/data")

    environment: Literal["development", "test", "production"] = "development"
    database_url: str = "sqlite:///./nqba.db"
    redis_url: str | None = Field(
        default=None, description="Redis for the cache and rate limits; in-process when unset."
    )
    jobs: Literal["inprocess", "celery"] = "inprocess"
    celery_broker_url: str | None = Field(
        default=None, description="Celery broker; defaults to redis_url."
    )
    celery_visibility_timeout_s: float = Field(
        default=900.0,
        gt=0,
        description=(
            "Seconds before an unacknowledged job (its worker died) is delivered again; keep "
            "it above job_time_limit_s."
        ),
    )
    job_time_limit_s: float = Field(default=600.0, gt=0, description="Hard limit of one job.")
    job_max_retries: int = Field(default=3, ge=0)

    secret_key: str = Field(
        default=PLACEHOLDER_SECRET, description="HMAC key of the JWT access tokens."
    )
    audit_signing_key: str = Field(
        default=PLACEHOLDER_SECRET,
        description=(
            "Ed25519 private key of the audit checkpoints: 32 bytes, base64. In development "
            "the placeholder derives a fixed key from secret_key (not secret)."
        ),
    )
    audit_log_origin: str = Field(
        default="nqba.local/audit", description="Name of the log in its signed checkpoints."
    )
    audit_checkpoint_every: int = Field(
        default=100, ge=1, description="Sign a checkpoint after this many new leaves."
    )
    access_token_ttl_s: int = Field(default=900, gt=0)
    refresh_token_ttl_s: int = Field(default=14 * 24 * 3600, gt=0)

    rate_limit_per_minute: int = Field(
        default=600, ge=0, description="Requests per minute per caller; 0 turns limits off."
    )
    inline_max_variables: int = Field(
        default=2000,
        ge=0,
        description="Decisions up to this size run inline; larger ones become a job (202).",
    )
    inline_time_limit_s: float = Field(
        default=2.0, gt=0, description="Decisions asking for a longer solve become a job."
    )
    otel_endpoint: str | None = Field(
        default=None, description="OTLP/HTTP endpoint of OpenTelemetry traces; off when unset."
    )
    log_json: bool = True

    @model_validator(mode="after")
    def _refuse_placeholders(self) -> Settings:
        if self.environment == "development":
            return self
        for name in ("secret_key", "audit_signing_key"):
            value = getattr(self, name)
            if value == PLACEHOLDER_SECRET or len(value) < 32:
                raise InsecureSettingsError(
                    f"NQBA_{name.upper()} must be set to a real secret of at least 32 "
                    f"characters when NQBA_ENVIRONMENT={self.environment}"
                )
        return self

    @property
    def broker_url(self) -> str | None:
        """Where Celery jobs are queued: the broker URL, else the Redis URL."""
        return self.celery_broker_url or self.redis_url


def get_settings() -> Settings:
    """Settings as the environment says now (not cached: tests change the environment)."""
    return Settings()
