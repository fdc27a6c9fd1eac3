"""Process-wide settings, read from the environment with the ``NQBA_`` prefix."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Embedded defaults; production changes values through the environment only."""

    model_config = SettingsConfigDict(env_prefix="NQBA_")

    data_dir: Path = Path("../shared/data")


def get_settings() -> Settings:
    """Settings as the environment says now (not cached: tests change the environment)."""
    return Settings()
