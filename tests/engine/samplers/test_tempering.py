"""Parallel tempering ("pt"): exact ground states, seeds, threads, time limits, parameters."""

from __future__ import annotations

import time
from pathlib import Path

import dimod
import numpy as np
import pytest

from nqba.engine.errors import InvalidParameterError
from nqba.engine.io import read_gset
from nqba.engine.maxcut import cut_values, maxcut_bqm
from nqba.engine.model import IsingArrays
from nqba.engine.registry import get_solver
from nqba.engine.samplers import _anneal_kernels as kernels
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
        ({"cluster_moves": "yes"}, "cluster_moves"),
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


def _states(arrays: IsingArrays, spins: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    fields = np.empty(spins.shape, dtype=np.float64)
    energy = np.empty(spins.shape[0], dtype=np.float64)
    kernels.local_fields(
        arrays.h, arrays.indptr, arrays.indices, arrays.data, spins, fields, energy
    )
    return fields, energy


@pytest.mark.parametrize(("with_fields", "flipped"), [(True, False), (False, False), (False, True)])
def test_houdayer_move_keeps_the_energy_sum_and_the_local_fields_exact(
    with_fields: bool, flipped: bool
) -> None:
    bqm = sparse_grid(12, 4)
    rng = np.random.default_rng(5)
    if with_fields:
        bqm.add_linear_from({v: float(rng.normal()) for v in bqm.variables})
    arrays = IsingArrays.from_bqm(bqm)
    n = arrays.num_variables
    spins = rng.choice(np.array([-1, 1], dtype=np.int8), size=(2, n))
    if flipped:  # replica b is nearly the global flip of replica a
        spins[1] = -spins[0]
        spins[1, :5] = spins[0, :5]
    fields, energy = _states(arrays, spins)
    stack = np.empty(n, dtype=np.int64)
    mark = np.zeros(n, dtype=np.int64)
    state = np.uint64(12345)
    moved = 0
    for stamp in range(1, 30):
        before = spins.copy()
        state, dea, deb = kernels.houdayer_move(
            arrays.indptr,
            arrays.indices,
            arrays.data,
            spins[0],
            fields[0],
            spins[1],
            fields[1],
            state,
            stack,
            mark,
            stamp,
            not with_fields,
        )
        state = np.uint64(state)
        energy += (dea, deb)
        moved += int(np.sum(before[0] != spins[0]))
        assert dea + deb == pytest.approx(0.0, abs=1e-9)
        exact_fields, exact_energy = _states(arrays, spins)
        np.testing.assert_allclose(fields, exact_fields, atol=1e-9)
        np.testing.assert_allclose(energy, exact_energy, atol=1e-9)
        if flipped:  # clusters grow over the 5 agreeing sites, not the n - 5 others
            assert np.sum(before[0] != spins[0]) <= 5
    assert moved > 0


def test_pt_uses_cluster_moves_by_default_on_sparse_models_only() -> None:
    sampler = ParallelTemperingSampler()
    sparse = sampler.sample(sparse_grid(8, 1), num_reads=1, num_replicas=4, num_sweeps=5, seed=0)
    dense = sampler.sample(random_ising(30, 0.9, 1), num_reads=1, num_replicas=4, num_sweeps=5)
    forced = sampler.sample(
        sparse_grid(8, 1), num_reads=1, num_replicas=4, num_sweeps=5, cluster_moves=False
    )
    assert sparse.info["cluster_moves"] is True
    assert dense.info["cluster_moves"] is False
    assert forced.info["cluster_moves"] is False


@pytest.mark.parametrize("seed", range(3))
def test_pt_with_cluster_moves_reaches_brute_force_ground_energy_with_fields(seed: int) -> None:
    bqm = random_ising(12, 0.3, 500 + seed)
    ss = ParallelTemperingSampler().sample(
        bqm, num_reads=2, num_replicas=6, num_sweeps=100, seed=seed, cluster_moves=True
    )
    assert ss.first.energy == pytest.approx(brute_force_ground(bqm))


def test_pt_with_cluster_moves_is_reproducible_across_thread_counts() -> None:
    bqm = sparse_grid(10, 3)
    kw = {"num_reads": 4, "num_replicas": 5, "num_sweeps": 40, "seed": 9, "cluster_moves": True}
    a = ParallelTemperingSampler().sample(bqm, **kw)
    b = ParallelTemperingSampler().sample(bqm, num_threads=2, **kw)
    np.testing.assert_array_equal(a.record.sample, b.record.sample)
    np.testing.assert_allclose(a.record.energy, bqm.energies(a))


def test_pt_cluster_moves_find_a_torus_ground_state_more_often_per_metropolis_sweep() -> None:
    # 16 x 16 +-1 torus; both runs make 8 x 60 Metropolis sweeps per read (two ladders of 4
    # temperatures against one of 8); the ground energy comes from long runs
    bqm = sparse_grid(16, 7)
    ground = min(
        ParallelTemperingSampler()
        .sample(bqm, num_reads=4, num_replicas=8, num_sweeps=2000, seed=1, cluster_moves=True)
        .record.energy
    )
    kw = {"num_reads": 64, "num_sweeps": 60, "seed": 2}
    with_clusters = ParallelTemperingSampler().sample(bqm, cluster_moves=True, num_replicas=4, **kw)
    without = ParallelTemperingSampler().sample(bqm, cluster_moves=False, num_replicas=8, **kw)
    hits_with = int(np.sum(with_clusters.record.energy <= ground + 1e-9))
    hits_without = int(np.sum(without.record.energy <= ground + 1e-9))
    assert hits_with > 1.4 * hits_without


@pytest.mark.slow
@pytest.mark.realdata
def test_pt_cluster_moves_reach_the_best_known_cut_of_gset_g11_in_most_short_runs(
    data_dir: Path,
) -> None:
    # benchmarks/RESULTS.md: 250 rounds x 8 temperatures hit 564 in 64 of 64 runs with
    # cluster moves; without them the same setting hit it in 20 of 640
    graph = read_gset(data_dir / "gset" / "G11.txt")
    bqm = maxcut_bqm(graph)
    kw = {"num_reads": 16, "num_replicas": 8, "num_sweeps": 250, "seed": 3, "num_threads": 2}
    with_clusters = ParallelTemperingSampler().sample(bqm, **kw)
    without = ParallelTemperingSampler().sample(bqm, cluster_moves=False, **kw)
    assert with_clusters.info["cluster_moves"] is True
    assert int(np.sum(cut_values(graph, with_clusters) >= 564)) >= 12
    assert int(np.sum(cut_values(graph, without) >= 564)) < 12
