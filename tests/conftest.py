"""Shared fixtures: the real data folder, and skipping realdata tests where it is absent."""

from __future__ import annotations

from pathlib import Path

import pytest

from nqba.config import get_settings


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
