"""The Dynex adapter without credentials or package: typed errors that say what to do."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from nqba.engine import MissingCredentialsError, get_solver
from nqba.engine.testing import random_bqm


def test_without_sdk_key_raises_missing_credentials_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DYNEX_SDK_KEY", raising=False)
    with pytest.raises(MissingCredentialsError, match="DYNEX_SDK_KEY"):
        get_solver("dynex").sample(random_bqm(3, "BINARY", seed=1))


def test_with_key_but_without_the_package_raises_backend_unavailable_with_pip_extra() -> None:
    code = textwrap.dedent(
        """
        import os, sys
        os.environ["DYNEX_SDK_KEY"] = "not-a-real-key"
        sys.modules["dynex"] = None  # the import system then raises ImportError
        import dimod
        from nqba.engine import BackendUnavailableError, MissingCredentialsError, get_solver
        try:
            get_solver("dynex").sample(dimod.BinaryQuadraticModel({"a": 1.0}, {}, 0, "BINARY"))
        except MissingCredentialsError as exc:
            print("wrong error:", exc)
        except BackendUnavailableError as exc:
            print("raised:", exc)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert "raised:" in out
    assert "pip install 'nqba[dynex]'" in out


def test_dynex_does_not_take_a_seed() -> None:
    assert "seed" not in get_solver("dynex").parameters
