"""Simulated annealing ("sa"): exact ground states on small models, seeds, threads, time limits."""

from __future__ import annotations

import itertools
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
from nqba.engine.samplers._anneal_kernels import integer_table_size
from nqba.engine.samplers.annealing import SimulatedAnnealingSampler, default_beta_range


def random_ising(n: int, density: float, seed: int) -> dimod.BinaryQuadraticModel:
    """A random SPIN model with Gaussian fields and couplings."""
    rng = np.random.default_rng(seed)
    h = {i: float(rng.normal()) for i in range(n)}
    J = {
        (i, j): float(rng.normal())
        for i, j in itertools.combinations(range(n), 2)
        if rng.random() < density
    }
    bqm: dimod.BinaryQuadraticModel = dimod.BinaryQuadraticModel.from_ising(h, J)
    return bqm


def brute_force_ground(bqm: dimod.BinaryQuadraticModel) -> float:
    """The lowest energy of ``bqm`` over all assignments, by enumeration with numpy."""
    labels = list(bqm.variables)
    n = len(labels)
    bits = (np.arange(2**n)[:, None] >> np.arange(n)) & 1
    values = bits if bqm.vartype is dimod.BINARY else 2 * bits - 1
    return float(bqm.energies((values, labels)).min())


def sparse_grid(side: int, seed: int) -> dimod.BinaryQuadraticModel:
    """A toroidal side x side grid with +-1 couplings (G-set toroidal family shape)."""
    rng = np.random.default_rng(seed)
    J: dict[tuple[int, int], float] = {}
    for r in range(side):
        for c in range(side):
            v = r * side + c
            J[(v, r * side + (c + 1) % side)] = float(rng.choice([-1.0, 1.0]))
            J[(v, ((r + 1) % side) * side + c)] = float(rng.choice([-1.0, 1.0]))
    bqm: dimod.BinaryQuadraticModel = dimod.BinaryQuadraticModel.from_ising({}, J)
    return bqm


@pytest.mark.parametrize("seed", range(6))
def test_sa_reaches_brute_force_ground_energy_on_small_spin_models(seed: int) -> None:
    bqm = random_ising(10 + seed % 3, 0.5, seed)
    ss = SimulatedAnnealingSampler().sample(bqm, num_reads=8, num_sweeps=200, seed=seed)
    assert ss.first.energy == pytest.approx(brute_force_ground(bqm))


@pytest.mark.parametrize("seed", range(4))
def test_sa_reaches_brute_force_ground_energy_on_small_binary_models(seed: int) -> None:
    bqm = random_ising(12, 0.6, 100 + seed).change_vartype(dimod.BINARY, inplace=False)
    ss = SimulatedAnnealingSampler().sample(bqm, num_reads=8, num_sweeps=200, seed=seed)
    assert ss.vartype is dimod.BINARY
    assert set(np.unique(ss.record.sample)) <= {0, 1}
    assert ss.first.energy == pytest.approx(brute_force_ground(bqm))


def random_integer_ising(n: int, seed: int) -> dimod.BinaryQuadraticModel:
    """A random SPIN model with integer fields and couplings in -3..3 (the exp-table path)."""
    rng = np.random.default_rng(seed)
    h = {i: float(rng.integers(-2, 3)) for i in range(n)}
    J = {
        (i, j): float(rng.integers(-3, 4))
        for i, j in itertools.combinations(range(n), 2)
        if rng.random() < 0.5
    }
    bqm: dimod.BinaryQuadraticModel = dimod.BinaryQuadraticModel.from_ising(h, J)
    return bqm


def test_exp_table_is_used_only_for_integer_models() -> None:
    integral = IsingArrays.from_bqm(random_integer_ising(12, 0))
    real = IsingArrays.from_bqm(random_ising(12, 0.5, 0))
    assert integer_table_size(integral.h, integral.indptr, integral.data) > 0
    assert integer_table_size(real.h, real.indptr, real.data) == 0


@pytest.mark.parametrize("seed", range(4))
def test_sa_reaches_brute_force_ground_energy_on_small_integer_models(seed: int) -> None:
    bqm = random_integer_ising(12, 50 + seed)
    ss = SimulatedAnnealingSampler().sample(bqm, num_reads=8, num_sweeps=200, seed=seed)
    assert ss.first.energy == pytest.approx(brute_force_ground(bqm))


def test_sa_sampleset_energies_match_the_model() -> None:
    bqm = random_ising(30, 0.2, 7)
    ss = SimulatedAnnealingSampler().sample(bqm, num_reads=5, num_sweeps=50, seed=3)
    assert len(ss) == 5
    np.testing.assert_allclose(ss.record.energy, bqm.energies(ss))
    assert list(ss.record.energy) == sorted(ss.record.energy)
    assert ss.info["solver"] == "sa"
    assert ss.info["stop_reason"] == "completed"


def test_sa_same_seed_gives_identical_samples() -> None:
    bqm = random_ising(60, 0.1, 1)
    a = SimulatedAnnealingSampler().sample(bqm, num_reads=6, num_sweeps=30, seed=42)
    b = SimulatedAnnealingSampler().sample(bqm, num_reads=6, num_sweeps=30, seed=42)
    np.testing.assert_array_equal(a.record.sample, b.record.sample)
    np.testing.assert_array_equal(a.record.energy, b.record.energy)


def test_sa_different_seeds_give_different_reads() -> None:
    bqm = random_ising(200, 0.05, 2)
    a = SimulatedAnnealingSampler().sample(bqm, num_reads=3, num_sweeps=5, seed=1)
    b = SimulatedAnnealingSampler().sample(bqm, num_reads=3, num_sweeps=5, seed=2)
    assert not np.array_equal(a.record.sample, b.record.sample)


def test_sa_threads_give_the_same_samples_as_one_thread() -> None:
    bqm = random_ising(80, 0.1, 3)
    one = SimulatedAnnealingSampler().sample(bqm, num_reads=7, num_sweeps=40, seed=9)
    three = SimulatedAnnealingSampler().sample(
        bqm, num_reads=7, num_sweeps=40, seed=9, num_threads=3
    )
    np.testing.assert_array_equal(one.record.sample, three.record.sample)


def test_sa_honours_time_limit_on_a_10000_variable_sparse_model() -> None:
    bqm = sparse_grid(100, 0)
    sampler = SimulatedAnnealingSampler()
    sampler.sample(bqm, num_reads=1, num_sweeps=1, seed=0)  # compile outside the clock
    start = time.perf_counter()
    ss = sampler.sample(bqm, num_reads=1000, num_sweeps=100_000, seed=0, time_limit=0.5)
    elapsed = time.perf_counter() - start
    assert elapsed < 1.5
    assert ss.info["stop_reason"] == "time limit"
    assert 1 <= len(ss) < 1000
    # what comes back is a local minimum: no single flip lowers the energy
    arrays = IsingArrays.from_bqm(bqm)
    first = ss.first.sample
    s = np.array([first[v] for v in arrays.labels], dtype=np.float64)
    fields = arrays.h.copy()
    np.add.at(
        fields,
        np.repeat(np.arange(len(s)), np.diff(arrays.indptr)),
        arrays.data * s[arrays.indices],
    )
    assert np.all(s * fields <= 1e-9)


@pytest.mark.parametrize(
    ("params", "word"),
    [
        ({"num_sweeps": -5}, "num_sweeps"),
        ({"num_sweeps": 0}, "num_sweeps"),
        ({"num_sweeps": 2.5}, "num_sweeps"),
        ({"beta_range": (2.0, 1.0)}, "beta_range"),
        ({"beta_range": (-1.0, 1.0)}, "beta_range"),
        ({"beta_range": "hot"}, "beta_range"),
        ({"beta_schedule_type": "cubic"}, "beta_schedule_type"),
        ({"num_reads": -2}, "num_reads"),
        ({"seed": -1}, "seed"),
        ({"time_limit": -1.0}, "time_limit"),
    ],
)
def test_sa_rejects_bad_parameters_naming_them(params: dict[str, object], word: str) -> None:
    with pytest.raises(InvalidParameterError, match=word):
        SimulatedAnnealingSampler().sample(random_ising(5, 0.5, 0), **params)


def test_sa_default_beta_range_follows_the_coefficients() -> None:
    small = IsingArrays.from_bqm(random_ising(40, 0.2, 4))
    big = IsingArrays.from_bqm(random_ising(40, 0.2, 4))
    big_scaled = IsingArrays(
        labels=big.labels,
        h=big.h * 10,
        indptr=big.indptr,
        indices=big.indices,
        data=big.data * 10,
        offset=big.offset,
    )
    hot, cold = default_beta_range(small)
    hot10, cold10 = default_beta_range(big_scaled)
    assert 0 < hot < cold
    assert hot10 == pytest.approx(hot / 10)
    assert cold10 == pytest.approx(cold / 10)


def test_sa_is_registered_and_lists_its_parameters() -> None:
    sampler = get_solver("sa")
    assert isinstance(sampler, SimulatedAnnealingSampler)
    for p in ("num_sweeps", "beta_range", "num_reads", "seed", "time_limit", "num_threads"):
        assert p in sampler.parameters
        assert sampler.properties["parameter_help"][p]


def test_sa_samples_an_empty_model_and_ising_and_qubo_forms() -> None:
    sampler = SimulatedAnnealingSampler()
    assert len(sampler.sample(dimod.BinaryQuadraticModel("SPIN")).variables) == 0
    ss = sampler.sample_ising({"a": 1.0, "b": -1.0}, {("a", "b"): -0.5}, seed=0)
    assert ss.first.sample == {"a": -1, "b": 1} or ss.first.energy <= -1.5
    q = sampler.sample_qubo({("x", "x"): -1.0, ("x", "y"): 2.0, ("y", "y"): -1.0}, seed=0)
    assert q.first.energy == -1.0


@pytest.mark.slow
@pytest.mark.realdata
def test_sa_reaches_the_best_known_cut_of_gset_g1(data_dir: Path) -> None:
    graph = read_gset(data_dir / "gset" / "G1.txt")
    ss = SimulatedAnnealingSampler().sample(
        maxcut_bqm(graph), num_reads=20, num_sweeps=2000, seed=1
    )
    assert cut_values(graph, ss).max() == 11624


# (instance, best-known cut from gset/README.md, sweeps, reads, cut the test requires).
# Settings follow benchmarks/RESULTS.md; there `sa` never reached G14's 3064 (only long `pt`
# and `tabu` runs did, once each), so the test asks for 99.9 % of it (ceil(0.999 * 3064)).
GSET_CASES = [
    ("G1", 11624, 1000, 40, 11624),
    ("G2", 11620, 1000, 150, 11620),
    ("G3", 11622, 2000, 40, 11622),
    ("G11", 564, 250, 400, 564),
    ("G14", 3064, 2000, 40, 3061),
    ("G15", 3050, 10000, 60, 3050),
]


@pytest.mark.slow
@pytest.mark.realdata
@pytest.mark.parametrize(("name", "best_known", "sweeps", "reads", "required"), GSET_CASES)
def test_sa_reaches_the_best_known_cut_on_gset_instances(
    data_dir: Path, name: str, best_known: int, sweeps: int, reads: int, required: int
) -> None:
    graph = read_gset(data_dir / "gset" / f"{name}.txt")
    ss = SimulatedAnnealingSampler().sample(
        maxcut_bqm(graph), num_reads=reads, num_sweeps=sweeps, seed=2, num_threads=2
    )
    best = int(cut_values(graph, ss).max())
    assert best >= required, (
        f"{name}: best cut {best}, required {required} (best-known {best_known})"
    )
