"""The engine entry point: model forms, solver choice, time budget, seeds and input errors."""

from __future__ import annotations

import math
import time
from typing import Any

import dimod
import numpy as np
import pytest

from nqba.engine.errors import InvalidModelError, InvalidParameterError, UnknownSolverError
from nqba.engine.solve import choose_solver, solve

ALL = ("exact", "constrained", "tabu", "sa", "pt")


def _random_bqm(n: int, density: float, seed: int) -> dimod.BinaryQuadraticModel:
    rng = np.random.default_rng(seed)
    bqm = dimod.BinaryQuadraticModel(dimod.SPIN)
    for i in range(n):
        bqm.add_linear(i, float(rng.normal()))
    for i in range(n):
        for j in range(i + 1, n):
            if rng.random() < density:
                bqm.add_quadratic(i, j, float(rng.normal()))
    return bqm


def test_auto_picks_exact_for_tiny_models() -> None:
    name, reason = choose_solver(12, 30, available=ALL)
    assert name == "exact"
    assert "12 variables" in reason


def test_auto_picks_constrained_when_cardinality_groups_exist() -> None:
    name, reason = choose_solver(200, 5000, num_grouped_constraints=3, available=ALL)
    assert name == "constrained"
    assert "3 one-hot/cardinality" in reason


def test_auto_picks_sa_for_dense_and_sparse_models_without_a_long_budget() -> None:
    assert choose_solver(500, 50_000, available=ALL)[0] == "sa"
    assert choose_solver(10_000, 30_000, time_limit=2.0, available=ALL)[0] == "sa"


def test_auto_picks_population_method_for_a_small_sparse_model() -> None:
    name, reason = choose_solver(800, 1600, available=ALL)
    assert name == "pt"
    assert "mean degree 4" in reason
    assert choose_solver(800, 19_176, available=ALL)[0] == "sa"


def test_auto_picks_population_method_for_a_long_budget() -> None:
    name, reason = choose_solver(500, 1000, time_limit=30.0, available=ALL)
    assert name == "pt"
    assert "30.0 s budget" in reason


def test_auto_falls_back_and_says_what_was_missing() -> None:
    name, reason = choose_solver(500, 50_000, time_limit=30.0, available=("sa", "constrained"))
    assert name == "sa"
    assert "pt not available" in reason
    assert choose_solver(5, 4, available=("constrained",))[0] == "constrained"


def test_auto_mentions_penalised_constraints() -> None:
    _, reason = choose_solver(
        100, 10, num_grouped_constraints=1, num_other_constraints=2, available=ALL
    )
    assert "2 other constraint(s) penalised" in reason


@pytest.mark.parametrize(
    "model",
    [
        dimod.BinaryQuadraticModel({"a": 1.0, "b": -1.0}, {("a", "b"): 2.0}, 0.5, dimod.BINARY),
        {("a", "a"): 1.0, ("b", "b"): -1.0, ("a", "b"): 2.0},
        ({"a": 1.0, "b": -1.0}, {("a", "b"): 2.0}),
    ],
    ids=["bqm", "qubo", "ising"],
)
def test_every_model_form_is_solved_with_solver_stop_reason_and_timings(model: Any) -> None:
    ss = solve(model, solver="constrained", seed=1)
    assert len(ss) > 0
    assert np.all(np.diff(ss.record.energy) >= 0)
    assert ss.info["solver"] == "constrained"
    assert ss.info["stop_reason"]
    timing = ss.info["timing"]
    assert set(timing) == {"setup_s", "solve_s", "total_s"}
    assert 0 <= timing["solve_s"] <= timing["total_s"]


def test_auto_on_a_bqm_reports_its_choice_and_reaches_the_ground_state() -> None:
    bqm = _random_bqm(10, 0.5, seed=3)
    exact = dimod.ExactSolver().sample(bqm)  # type: ignore[no-untyped-call]
    ground = exact.first.energy
    ss = solve(bqm, seed=0)
    assert ss.info["solver"] in ALL
    assert "auto_reason" in ss.info
    assert ss.first.energy == pytest.approx(ground)


def test_auto_on_a_cqm_with_a_cardinality_constraint_uses_swap_moves() -> None:
    bqm = _random_bqm(40, 0.2, seed=4).change_vartype(dimod.BINARY, inplace=False)
    cqm = dimod.ConstrainedQuadraticModel()  # type: ignore[no-untyped-call]
    cqm.set_objective(bqm)
    cqm.add_constraint([(i, 1) for i in range(40)], "==", 7, label="pick7")
    ss = solve(cqm, seed=0)
    assert ss.info["solver"] == "constrained"
    assert "1 one-hot/cardinality" in ss.info["auto_reason"]
    assert all(ss.record.is_feasible)
    assert sum(ss.first.sample.values()) == 7


def test_same_seed_gives_the_same_samples() -> None:
    bqm = _random_bqm(60, 0.1, seed=5)
    a = solve(bqm, solver="constrained", seed=11, num_reads=5)
    b = solve(bqm, solver="constrained", seed=11, num_reads=5)
    assert np.array_equal(a.record.sample, b.record.sample)
    cqm = dimod.ConstrainedQuadraticModel()  # type: ignore[no-untyped-call]
    cqm.set_objective(bqm.change_vartype(dimod.BINARY, inplace=False))
    cqm.add_constraint([(i, float(1 + i % 3)) for i in range(60)], "<=", 25, label="cap")
    c = solve(cqm, solver="constrained", seed=11, num_reads=5)
    d = solve(cqm, solver="constrained", seed=11, num_reads=5)
    assert np.array_equal(c.record.sample, d.record.sample)
    assert c.info["seed"] == 11


def test_time_limit_is_honoured_for_bqm_and_cqm() -> None:
    bqm = _random_bqm(400, 0.05, seed=6)
    solve(bqm, solver="constrained", num_reads=1, num_sweeps=10)  # compile outside the clock
    start = time.perf_counter()
    ss = solve(bqm, solver="constrained", time_limit=0.3, num_reads=10_000, num_sweeps=200)
    elapsed = time.perf_counter() - start
    assert elapsed < 0.3 + 0.25
    assert "time limit" in ss.info["stop_reason"]
    cqm = dimod.ConstrainedQuadraticModel()  # type: ignore[no-untyped-call]
    cqm.set_objective(bqm.change_vartype(dimod.BINARY, inplace=False))
    cqm.add_constraint([(i, 1) for i in range(400)], "==", 40, label="card")
    start = time.perf_counter()
    ss = solve(cqm, solver="constrained", time_limit=0.3, num_reads=10_000, num_sweeps=200)
    assert time.perf_counter() - start < 0.3 + 0.25
    assert ss.info["timing"]["total_s"] < 0.3 + 0.25


def test_cqm_timing_counts_model_building_and_checking_as_setup() -> None:
    cqm = dimod.ConstrainedQuadraticModel()  # type: ignore[no-untyped-call]
    cqm.set_objective(_random_bqm(30, 0.3, seed=8).change_vartype(dimod.BINARY, inplace=False))
    cqm.add_constraint([(i, 1) for i in range(30)], "<=", 5, label="at_most_5")
    ss = solve(cqm, solver="constrained", seed=0)
    t = ss.info["timing"]
    assert t["setup_s"] > 0
    assert t["setup_s"] + t["solve_s"] == pytest.approx(t["total_s"])


def test_unknown_solver_lists_the_known_ones() -> None:
    with pytest.raises(UnknownSolverError) as err:
        solve({("a", "b"): 1.0}, solver="annealer9000")
    assert "annealer9000" in str(err.value)
    assert "constrained" in str(err.value)
    assert "auto" in str(err.value)


@pytest.mark.parametrize("limit", [0, -1.0, math.inf, math.nan, "soon"])
def test_bad_time_limits_are_refused(limit: Any) -> None:
    with pytest.raises(InvalidParameterError, match="time_limit"):
        solve({("a", "b"): 1.0}, time_limit=limit)


@pytest.mark.parametrize(
    "model",
    [
        dimod.BinaryQuadraticModel(dimod.BINARY),
        {},
        {("a", "b"): math.nan},
        {("a", "a"): math.inf},
        "not a model",
    ],
    ids=["empty-bqm", "empty-qubo", "nan", "inf", "string"],
)
def test_bad_models_are_refused(model: Any) -> None:
    with pytest.raises(InvalidModelError):
        solve(model)


def test_negative_seed_and_non_string_solver_are_refused() -> None:
    with pytest.raises(InvalidParameterError, match="seed"):
        solve({("a", "b"): 1.0}, seed=-3)
    with pytest.raises(InvalidParameterError, match="solver"):
        solve({("a", "b"): 1.0}, solver=None)  # type: ignore[arg-type]


def test_bad_round_and_read_counts_for_a_cqm_are_refused() -> None:
    cqm = dimod.ConstrainedQuadraticModel()  # type: ignore[no-untyped-call]
    cqm.set_objective(_random_bqm(5, 0.5, seed=1).change_vartype(dimod.BINARY, inplace=False))
    cqm.add_constraint([(i, 1) for i in range(5)], "<=", 2, label="c")
    with pytest.raises(InvalidParameterError, match="max_rounds"):
        solve(cqm, solver="constrained", max_rounds=0)
    with pytest.raises(InvalidParameterError, match="num_reads"):
        solve(cqm, solver="exact", num_reads=0)
