"""Parallel tempering ("pt"): exact ground states, seeds, threads, time limits, parameters."""

from __future__ import annotations

import time

import dimod
import numpy as np
import pytest

from nqba.engine.errors import InvalidParameterError
from nqba.engine.registry import get_solver
from nqba.engine.samplers.tempering import ParallelTemperingSampler

from .test_annealing import brute_force_ground, random_integer_ising, random_ising, sparse_grid


@pytest.mark.parametrize("seed", range(6))
def test_pt_reaches_brute_force_ground_energy_on_small_spin_models(seed: int) -> None:
    bqm = random_ising(10 + seed % 3, 0.5, 200 + seed)
    ss = ParallelTemperingSampler().sample(
        bqm, num_reads=2, num_replicas=8, num_sweeps=100, seed=seed
    )
    assert ss.first.energy == pytest.approx(brute_force_ground(bqm))


@pytest.mark.parametrize("seed", range(3))
def test_pt_reaches_brute_force_ground_energy_on_small_binary_models(seed: int) -> None:
    bqm = random_ising(12, 0.6, 300 + seed).change_vartype(dimod.BINARY, inplace=False)
    ss = ParallelTemperingSampler().sample(
        bqm, num_reads=2, num_replicas=8, num_sweeps=100, seed=seed
    )
    assert set(np.unique(ss.record.sample)) <= {0, 1}
    assert ss.first.energy == pytest.approx(brute_force_ground(bqm))


@pytest.mark.parametrize("seed", range(3))
def test_pt_reaches_brute_force_ground_energy_on_small_integer_models(seed: int) -> None:
    bqm = random_integer_ising(12, 400 + seed)
    ss = ParallelTemperingSampler().sample(
        bqm, num_reads=2, num_replicas=8, num_sweeps=100, seed=seed
    )
    assert ss.first.energy == pytest.approx(brute_force_ground(bqm))


def test_pt_returns_one_sample_per_run_with_exchange_statistics() -> None:
    bqm = random_ising(40, 0.2, 5)
    ss = ParallelTemperingSampler().sample(bqm, num_reads=3, num_replicas=6, num_sweeps=50, seed=1)
    assert len(ss) == 3
    np.testing.assert_allclose(ss.record.energy, bqm.energies(ss))
    assert ss.info["solver"] == "pt"
    rates = ss.info["exchange_acceptance"]
    assert len(rates) == 5
    assert all(0.0 <= x <= 1.0 for x in rates)
    assert max(rates) > 0.0


def test_pt_same_seed_gives_identical_samples_and_threads_do_not_change_them() -> None:
    bqm = random_ising(50, 0.1, 6)
    kw = {"num_reads": 4, "num_replicas": 5, "num_sweeps": 30, "seed": 77}
    a = ParallelTemperingSampler().sample(bqm, **kw)
    b = ParallelTemperingSampler().sample(bqm, **kw)
    c = ParallelTemperingSampler().sample(bqm, num_threads=2, **kw)
    np.testing.assert_array_equal(a.record.sample, b.record.sample)
    np.testing.assert_array_equal(a.record.sample, c.record.sample)


def test_pt_honours_time_limit_on_a_10000_variable_sparse_model() -> None:
    bqm = sparse_grid(100, 1)
    sampler = ParallelTemperingSampler()
    sampler.sample(bqm, num_reads=1, num_replicas=2, num_sweeps=1, seed=0)
    start = time.perf_counter()
    ss = sampler.sample(bqm, num_reads=4, num_sweeps=1_000_000, seed=0, time_limit=0.5)
    assert time.perf_counter() - start < 1.5
    assert ss.info["stop_reason"] == "time limit"
    assert len(ss) >= 1


@pytest.mark.parametrize(
    ("params", "word"),
    [
        ({"num_sweeps": -1}, "num_sweeps"),
        ({"num_replicas": 1}, "num_replicas"),
        ({"num_replicas": "many"}, "num_replicas"),
        ({"beta_range": (1.0, 0.5)}, "beta_range"),
    ],
)
def test_pt_rejects_bad_parameters_naming_them(params: dict[str, object], word: str) -> None:
    with pytest.raises(InvalidParameterError, match=word):
        ParallelTemperingSampler().sample(random_ising(5, 0.5, 0), **params)


def test_pt_is_registered_and_lists_its_parameters() -> None:
    sampler = get_solver("pt")
    assert isinstance(sampler, ParallelTemperingSampler)
    for p in ("num_replicas", "num_sweeps", "beta_range", "seed", "time_limit"):
        assert p in sampler.parameters
