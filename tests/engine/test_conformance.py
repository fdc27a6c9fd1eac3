"""Every registered solver that can run here passes the conformance kit (dimod's tests + ours)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from dimod.core.sampler import Sampler

from nqba.engine import get_solver, solver_entries
from nqba.engine.testing import conformance_checks

NEEDS_CREDENTIALS = {"dynex", "leap"}
"""Cloud solvers; their no-credential errors are tested in tests/engine/adapters/."""

MAX_NUM_VARIABLES = {"qaoa": 4}
"""Smaller models for solvers whose cost grows fast with size (QAOA simulates 2**n states)."""


def _factory(name: str) -> Callable[[], Sampler]:
    def make() -> Sampler:
        sampler: Sampler = get_solver(name)
        return sampler

    make.__name__ = name.replace("-", "_")
    return make


def _cases() -> list[object]:
    cases: list[object] = []
    for entry in solver_entries():
        if entry.name in NEEDS_CREDENTIALS:
            continue
        checks = conformance_checks(
            _factory(entry.name), max_num_variables=MAX_NUM_VARIABLES.get(entry.name)
        )
        cases.extend(pytest.param(run, id=f"{entry.name}-{check}") for check, run in checks)
    return cases


@pytest.mark.parametrize("run", _cases())
def test_registered_solver_passes_conformance_check(run: Callable[[], None]) -> None:
    run()


def test_every_registered_solver_is_either_checked_or_needs_credentials() -> None:
    names = {e.name for e in solver_entries()}
    assert {"dwave-sa", "dwave-tabu", "qaoa"} <= names - NEEDS_CREDENTIALS
    assert names >= NEEDS_CREDENTIALS
