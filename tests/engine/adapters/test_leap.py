"""The Leap adapter with the real dwave-system: no token, no package, and no network."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from nqba.engine import BackendUnavailableError, MissingCredentialsError
from nqba.engine.adapters.leap import LeapSampler
from nqba.engine.testing import random_bqm


@pytest.fixture
def no_dwave_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No token in the environment and no dwave configuration file to find one in."""
    for name in ("DWAVE_API_TOKEN", "DWAVE_CONFIG_FILE", "DWAVE_PROFILE", "DWAVE_API_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_CONFIG_DIRS", str(tmp_path / "etc"))


@pytest.mark.usefixtures("no_dwave_config")
def test_without_token_raises_missing_credentials_naming_where_to_put_it() -> None:
    with pytest.raises(MissingCredentialsError, match="DWAVE_API_TOKEN"):
        LeapSampler().sample(random_bqm(3, "SPIN", seed=1))


@pytest.mark.usefixtures("no_dwave_config")
def test_unreachable_service_raises_backend_unavailable_within_the_time_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DWAVE_API_TOKEN", "not-a-real-token")
    monkeypatch.setenv("DWAVE_API_ENDPOINT", "http://127.0.0.1:9/sapi/v2/")
    start = time.perf_counter()
    with pytest.raises(BackendUnavailableError):
        LeapSampler().sample(random_bqm(3, "SPIN", seed=2), time_limit=1.0)
    assert time.perf_counter() - start < 3.0


def test_without_dwave_system_raises_backend_unavailable_with_pip_extra() -> None:
    code = textwrap.dedent(
        """
        import sys
        sys.modules["dwave.system"] = None  # the import system then raises ImportError
        import dimod
        from nqba.engine import BackendUnavailableError, get_solver
        try:
            get_solver("leap").sample(dimod.BinaryQuadraticModel({"a": 1.0}, {}, 0, "SPIN"))
        except BackendUnavailableError as exc:
            print("raised:", exc)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert "raised:" in out
    assert "pip install 'nqba[leap]'" in out
