"""Every built-in sampler stops near its time limit, however many reads were asked for."""

from __future__ import annotations

import time

import dimod
import numpy as np
import pytest

from nqba.engine.registry import get_solver, solver_entries

BUILTINS = [e.name for e in solver_entries() if e.builtin and e.name != "exact"]


def _torus(side: int, seed: int) -> dimod.BinaryQuadraticModel:
    rng = np.random.default_rng(seed)
    J: dict[tuple[int, int], float] = {}
    for i in range(side):
        for j in range(side):
            v = i * side + j
            J[(v, i * side + (j + 1) % side)] = float(rng.choice([-1.0, 1.0]))
            J[(v, ((i + 1) % side) * side + j)] = float(rng.choice([-1.0, 1.0]))
    bqm: dimod.BinaryQuadraticModel = dimod.BinaryQuadraticModel.from_ising({}, J)
    return bqm


@pytest.mark.parametrize("name", BUILTINS)
def test_many_reads_on_a_10000_variable_model_stop_at_the_time_limit(name: str) -> None:
    bqm = _torus(100, seed=3)
    sampler = get_solver(name)
    sampler.sample(_torus(4, seed=0), num_reads=1, seed=0)  # compile outside the timing
    start = time.perf_counter()
    sampleset = sampler.sample(bqm, num_reads=1000, time_limit=0.5, seed=1)
    elapsed = time.perf_counter() - start
    assert elapsed < 1.5, f"{name} took {elapsed:.2f} s for a 0.5 s limit"
    assert 1 <= len(sampleset) <= 1000
    assert "time" in sampleset.info["stop_reason"]
