"""The tabu sampler: quality on small and benchmark models, seeds, threads, budgets, limits."""

from __future__ import annotations

import time
from pathlib import Path

import dimod
import numpy as np
import pytest

from nqba.engine import InvalidParameterError, IsingArrays, get_solver, solver_entries
from nqba.engine.samplers import _tabu_kernels as kernels
from nqba.engine.samplers.exact import ExactSampler
from nqba.engine.samplers.tabu import TabuSampler


def _spin_glass(n: int, degree: int, seed: int) -> dimod.BinaryQuadraticModel:
    """A sparse +-1 spin glass on a random regular graph (frustrated, many local minima)."""
    rng = np.random.default_rng(seed)
    bqm = dimod.BinaryQuadraticModel(dimod.SPIN)
    for v in range(n):
        bqm.add_variable(v, 0.0)
    for _ in range(degree // 2):
        perm = rng.permutation(n)
        for a, b in zip(perm, np.roll(perm, 1), strict=True):
            if a != b:
                bqm.add_quadratic(int(a), int(b), float(rng.choice([-1.0, 1.0])))
    return bqm


def test_tabu_reaches_the_exact_ground_state_of_a_small_spin_glass() -> None:
    bqm = dimod.generators.gnp_random_bqm(18, 0.4, "SPIN", random_state=7)
    ground = ExactSampler().sample(bqm).first.energy
    sampleset = TabuSampler().sample(bqm, seed=1)
    assert sampleset.first.energy == pytest.approx(ground)
    np.testing.assert_allclose(bqm.energies(sampleset), sampleset.record.energy)


def test_tabu_samples_are_local_minima_of_single_flips() -> None:
    bqm = _spin_glass(200, 4, seed=3)
    sampleset = TabuSampler().sample(bqm, num_reads=4, max_iter=2000, seed=5)
    arrays = IsingArrays.from_bqm(bqm)
    for row in sampleset.record.sample:
        spins = row.astype(np.int8)
        delta = np.empty(len(spins))
        kernels.compute_deltas(arrays.h, arrays.indptr, arrays.indices, arrays.data, spins, delta)
        assert delta.min() >= -1e-9


def test_tabu_same_seed_gives_same_samples_and_another_seed_differs() -> None:
    bqm = _spin_glass(300, 6, seed=1)
    params = {"num_reads": 3, "max_iter": 3000}
    a = TabuSampler().sample(bqm, seed=42, **params)
    b = TabuSampler().sample(bqm, seed=42, **params)
    c = TabuSampler().sample(bqm, seed=43, **params)
    np.testing.assert_array_equal(a.record.sample, b.record.sample)
    assert a.info["seed"] == 42
    assert not np.array_equal(a.record.sample, c.record.sample)


def test_tabu_threads_give_the_same_samples_as_one_thread() -> None:
    bqm = _spin_glass(300, 6, seed=2)
    params = {"num_reads": 5, "max_iter": 20_000, "seed": 9}
    one = TabuSampler().sample(bqm, num_threads=1, **params)
    two = TabuSampler().sample(bqm, num_threads=2, **params)
    np.testing.assert_array_equal(one.record.sample, two.record.sample)
    np.testing.assert_array_equal(one.record.energy, two.record.energy)


def test_tabu_result_does_not_depend_on_how_steps_are_chunked() -> None:
    arrays = IsingArrays.from_bqm(_spin_glass(150, 4, seed=4))
    n = arrays.num_variables
    best = []
    for chunk in (100_000, 777, 50):
        s = np.empty(n, np.int8)
        best_s = np.empty(n, np.int8)
        fsize, isize = kernels.buffer_sizes(n)
        fbuf = np.empty(fsize)
        ibuf = np.empty(isize, np.int64)
        istate = np.zeros(kernels.I_SIZE, np.int64)
        fstate = np.zeros(kernels.F_SIZE)
        rng = np.array([12345], np.uint64)
        state = (arrays.h, arrays.indptr, arrays.indices, arrays.data, s, best_s, fbuf, ibuf,
                 istate, fstate, rng)  # fmt: skip
        kernels.tabu_init(*state, 3)
        while not kernels.tabu_steps(*state, chunk, 20_000, 9, 4, 500, 3, 18, -np.inf, 1e-9):
            pass
        assert istate[kernels.I_RESTARTS] > 0
        best.append((best_s.copy(), fstate[kernels.F_BEST]))
    for spins, energy in best[1:]:
        np.testing.assert_array_equal(spins, best[0][0])
        assert energy == best[0][1]


def test_tabu_time_limit_stops_a_long_run_early() -> None:
    bqm = _spin_glass(2000, 6, seed=5)
    TabuSampler().sample(bqm, num_reads=1, max_iter=10, seed=0)  # compile outside the timing
    start = time.perf_counter()
    sampleset = TabuSampler().sample(bqm, num_reads=4, max_iter=10**9, time_limit=0.3, seed=0)
    elapsed = time.perf_counter() - start
    assert sampleset.info["stop_reason"] == "time limit reached"
    assert elapsed < 1.5
    assert len(sampleset) == 4
    assert sampleset.info["steps"] > 0


def test_tabu_target_energy_stops_every_read_once_reached() -> None:
    bqm = dimod.BinaryQuadraticModel.from_ising({}, {(i, i + 1): -1.0 for i in range(99)})
    sampleset = TabuSampler().sample(bqm, num_reads=3, max_iter=10**9, target_energy=-99.0, seed=0)
    assert sampleset.info["stop_reason"] == "target energy reached"
    assert sampleset.first.energy == -99.0


def test_tabu_runs_a_sparse_model_of_20000_variables() -> None:
    bqm = _spin_glass(20_000, 4, seed=6)
    sampleset = TabuSampler().sample(bqm, num_reads=2, max_iter=2000, seed=0)
    assert sampleset.record.sample.shape == (2, 20_000)
    # Greedy descent ends every read, so the result is far below a random state's energy 0.
    assert sampleset.first.energy < -0.5 * bqm.num_interactions


def test_tabu_handles_one_variable_and_models_without_interactions() -> None:
    single = TabuSampler().sample_ising({"a": 2.0}, {}, seed=0)
    assert single.first.sample == {"a": -1}
    linear = TabuSampler().sample_qubo({(0, 0): -1.0, (1, 1): 3.0, (2, 2): 0.0}, seed=0)
    assert linear.first.energy == -1.0


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"tenure": -1}, "tenure"),
        ({"max_iter": "many"}, "max_iter"),
        ({"stall_iters": 0}, "stall_iters"),
        ({"target_energy": "low"}, "target_energy"),
    ],
)
def test_tabu_rejects_bad_parameters_naming_them(params: dict[str, object], name: str) -> None:
    bqm = _spin_glass(10, 2, seed=0)
    with pytest.raises(InvalidParameterError, match=name):
        TabuSampler().sample(bqm, **params)


def test_tabu_is_registered_as_a_builtin_with_parameter_help() -> None:
    entry = next(e for e in solver_entries() if e.name == "tabu")
    assert entry.builtin
    sampler = get_solver("tabu")
    assert isinstance(sampler, TabuSampler)
    help_text = sampler.properties["parameter_help"]
    for name in ("max_iter", "tenure", "stall_iters", "target_energy", "num_threads"):
        assert name in sampler.parameters
        assert help_text[name]


def _load_gset(path: Path) -> tuple[dimod.BinaryQuadraticModel, int]:
    rows = np.loadtxt(path, skiprows=1, dtype=np.int64, ndmin=2)
    n = int(path.read_text().split()[0])
    bqm = dimod.BinaryQuadraticModel(dimod.SPIN)
    bqm.add_variables_from((v, 0.0) for v in range(n))
    bqm.add_quadratic_from((int(i) - 1, int(j) - 1, float(w)) for i, j, w in rows)
    return bqm, int(rows[:, 2].sum())


@pytest.mark.slow
@pytest.mark.realdata
@pytest.mark.parametrize(("name", "best_known"), [("G1", 11624), ("G14", 3064)])
def test_tabu_cuts_gset_within_half_a_percent_of_best_known(
    data_dir: Path, name: str, best_known: int
) -> None:
    bqm, total_weight = _load_gset(data_dir / "gset" / f"{name}.txt")
    sampleset = TabuSampler().sample(bqm, num_reads=2, seed=0)
    cut = (total_weight - sampleset.first.energy) / 2
    assert cut >= np.ceil(0.995 * best_known)
