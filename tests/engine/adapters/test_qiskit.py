"""QAOA on Aer: finds ground states of small models, maps qubits back right, refuses big ones."""

from __future__ import annotations

import doctest
import time
from typing import Any

import dimod
import numpy as np
import pytest

from nqba.engine import InvalidParameterError, ModelTooLargeError
from nqba.engine.adapters.qiskit import MAX_QUBITS, QAOASampler
from nqba.engine.testing import random_bqm

EXACT: Any = dimod.ExactSolver  # dimod's brute force, as the reference


@pytest.mark.parametrize("seed", range(5))
def test_qaoa_samples_the_brute_force_ground_state_of_small_models(seed: int) -> None:
    n = 3 + seed % 4  # 3 to 6 variables
    bqm = random_bqm(n, "BINARY", seed=100 + seed)
    exact = EXACT().sample(bqm)
    ground = float(exact.first.energy)
    sampleset = QAOASampler().sample(bqm, num_reads=100, seed=seed, reps=2, maxiter=40)
    assert sampleset.first.energy == pytest.approx(ground)
    # More often than a uniform draw (1 / 2**n), and a lower mean energy than uniform.
    hit_rate = float(np.mean(np.isclose(sampleset.record.energy, ground)))
    assert hit_rate > 1 / 2**n
    assert sampleset.info["expectation"] < float(np.mean(exact.record.energy))


@pytest.mark.parametrize("vartype", ["SPIN", "BINARY"])
def test_qubits_map_back_to_their_variables(vartype: str) -> None:
    # Strong, distinct fields with no couplings: each variable's best value is known.
    h = {"z": 3.0, 7: -2.0, ("t", 1): 1.0, "a": -0.5}
    bqm = dimod.BinaryQuadraticModel(h, {}, 0.0, "SPIN")
    if vartype == "BINARY":
        bqm = bqm.change_vartype(dimod.BINARY, inplace=False)
    best = QAOASampler().sample(bqm, num_reads=50, seed=1, maxiter=30).first.sample
    low = -1 if vartype == "SPIN" else 0
    assert best == {"z": low, 7: 1, ("t", 1): low, "a": 1}


def test_same_seed_gives_the_same_samples() -> None:
    bqm = random_bqm(4, "SPIN", seed=7)
    a = QAOASampler().sample(bqm, num_reads=20, seed=9, maxiter=15)
    b = QAOASampler().sample(bqm, num_reads=20, seed=9, maxiter=15)
    assert np.array_equal(a.record.sample, b.record.sample)


def test_refuses_models_above_the_qubit_limit_naming_the_limit() -> None:
    bqm = random_bqm(MAX_QUBITS + 1, "SPIN", seed=8)
    with pytest.raises(ModelTooLargeError, match=f"at most {MAX_QUBITS} qubits"):
        QAOASampler().sample(bqm)


def test_time_limit_stops_the_angle_optimisation() -> None:
    bqm = random_bqm(10, "SPIN", seed=9)
    start = time.perf_counter()
    sampleset = QAOASampler().sample(bqm, seed=1, maxiter=100_000, time_limit=0.3)
    assert time.perf_counter() - start < 1.5
    assert sampleset.info["stop_reason"] == "time limit"
    assert len(sampleset) == 100


def test_zero_layers_raise_invalid_parameter_naming_reps() -> None:
    with pytest.raises(InvalidParameterError, match="reps"):
        QAOASampler().sample(random_bqm(2, "SPIN", seed=10), reps=0)


def test_the_docstring_example_runs() -> None:
    import nqba.engine.adapters.qiskit as module

    result = doctest.testmod(module)
    assert result.attempted > 0
    assert result.failed == 0
