"""Shared adapter helpers and registration: bounded waits, and no optional import on start-up."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time

import pytest

from nqba.engine import BackendUnavailableError, solver_entries
from nqba.engine.adapters import call_with_timeout


def test_call_with_timeout_gives_up_on_a_hanging_call_within_the_bound() -> None:
    never = threading.Event()
    start = time.perf_counter()
    with pytest.raises(BackendUnavailableError, match=r"within 0\.2 s"):
        call_with_timeout(lambda: never.wait(30), 0.2, "the test service")
    assert time.perf_counter() - start < 1.0
    never.set()


def test_call_with_timeout_returns_the_value_and_reraises_the_error() -> None:
    assert call_with_timeout(lambda: 41 + 1, 5.0, "adder") == 42
    with pytest.raises(ZeroDivisionError):
        call_with_timeout(lambda: 1 / 0, 5.0, "divider")


def test_all_five_adapters_are_registered_as_not_builtin() -> None:
    entries = {e.name: e for e in solver_entries()}
    for name in ("dwave-sa", "dwave-tabu", "qaoa", "dynex", "leap"):
        assert name in entries
        assert entries[name].builtin is False
        assert isinstance(entries[name].factory, str)


def test_importing_nqba_and_listing_solvers_imports_no_optional_backend() -> None:
    code = textwrap.dedent(
        """
        import sys
        import nqba
        import nqba.engine
        from nqba.engine import get_solver, solver_entries
        solver_entries()
        get_solver("dynex")
        get_solver("leap")
        loaded = [m for m in ("dynex", "qiskit", "qiskit_aer", "dwave.system", "dwave.cloud")
                  if m in sys.modules]
        print("loaded:", loaded)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    assert "loaded: []" in out
