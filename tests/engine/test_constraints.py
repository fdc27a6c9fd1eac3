"""Constraint handling: groups kept by swap moves, penalties in rounds, every sample checked."""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable
from pathlib import Path

import dimod
import numpy as np
import pytest

from nqba.engine.constraints import (
    InfeasibleResultWarning,
    build_penalty,
    prepare_cqm,
)
from nqba.engine.errors import InvalidModelError, InvalidParameterError
from nqba.engine.model import IsingArrays
from nqba.engine.samplers.annealing import sweeps_per_call
from nqba.engine.samplers.base import RunSettings
from nqba.engine.samplers.constrained import ConstrainedAnnealingSampler
from nqba.engine.solve import solve


def _linear(biases: dict[object, float]) -> dimod.BinaryQuadraticModel:
    return dimod.BinaryQuadraticModel(biases, {}, 0.0, dimod.BINARY)


def _portfolio_cqm(n: int, k: int, seed: int) -> dimod.ConstrainedQuadraticModel:
    """min x'Sx - lambda mu'x with sum x == k, S random PSD."""
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(n, n))
    S = A @ A.T / n
    mu = rng.uniform(0.0, 1.0, n)
    obj = dimod.BinaryQuadraticModel(dimod.BINARY)
    for i in range(n):
        obj.add_linear(i, S[i, i] - 0.5 * mu[i])
        for j in range(i + 1, n):
            obj.add_quadratic(i, j, 2 * S[i, j])
    cqm = dimod.ConstrainedQuadraticModel()  # type: ignore[no-untyped-call]
    cqm.set_objective(obj)
    cqm.add_constraint([(i, 1) for i in range(n)], "==", k, label="cardinality")
    return cqm


def _brute_force(cqm: dimod.ConstrainedQuadraticModel) -> float:
    """Lowest objective over all feasible states (independent of the engine's code)."""
    variables = list(cqm.variables)
    best = np.inf
    for values in itertools.product((0, 1), repeat=len(variables)):
        sample = dict(zip(variables, values, strict=True))
        if cqm.check_feasible(sample):
            best = min(best, float(cqm.objective.energy(sample)))
    return float(best)


def _knapsack_cqm(
    n: int, seed: int, weight: Callable[[np.random.Generator], float], capacity: float
) -> dimod.ConstrainedQuadraticModel:
    rng = np.random.default_rng(seed)
    obj = dimod.BinaryQuadraticModel(dimod.BINARY)
    for i in range(n):
        obj.add_linear(i, -float(rng.uniform(1.0, 10.0)))
        for j in range(i + 1, n):
            if rng.random() < 0.3:
                obj.add_quadratic(i, j, float(rng.normal()))
    cqm = dimod.ConstrainedQuadraticModel()  # type: ignore[no-untyped-call]
    cqm.set_objective(obj)
    cqm.add_constraint([(i, weight(rng)) for i in range(n)], "<=", capacity, label="capacity")
    return cqm


def test_portfolio_with_exactly_k_assets_reaches_brute_force_optimum() -> None:
    cqm = _portfolio_cqm(12, 4, seed=1)
    ss = solve(cqm, solver="constrained", seed=5)
    assert ss.first.is_feasible
    assert ss.first.energy == pytest.approx(_brute_force(cqm), abs=1e-9)
    assert ss.info["grouped_constraints"] == ["cardinality"]
    assert ss.info["penalty_weights"] == {}  # the group needs no penalty


def test_every_sample_keeps_one_hot_groups_of_an_assignment_problem() -> None:
    tasks, agents = 6, 4
    rng = np.random.default_rng(2)
    obj = dimod.BinaryQuadraticModel(dimod.BINARY)
    for t, a in itertools.product(range(tasks), range(agents)):
        obj.add_linear((t, a), float(rng.uniform(0, 5)))
    for t, u in itertools.combinations(range(tasks), 2):
        for a in range(agents):  # load balancing: tasks on the same agent cost extra
            obj.add_quadratic((t, a), (u, a), 1.0)
    cqm = dimod.ConstrainedQuadraticModel()  # type: ignore[no-untyped-call]
    cqm.set_objective(obj)
    for t in range(tasks):
        cqm.add_discrete([(t, a) for a in range(agents)], label=f"task{t}")
    ss = solve(cqm, solver="constrained", seed=0, num_reads=30)
    assert ss.info["feasible_count"] == len(ss) > 0
    assert all(ss.record.is_feasible)
    assert ss.info["rounds"] == 1


def test_permutation_with_penalised_columns_is_feasible_and_optimal() -> None:
    n = 4
    rng = np.random.default_rng(3)
    cost = rng.uniform(0, 10, size=(n, n))
    cqm = dimod.ConstrainedQuadraticModel()  # type: ignore[no-untyped-call]
    cqm.set_objective(_linear({(i, j): float(cost[i, j]) for i in range(n) for j in range(n)}))
    for i in range(n):
        cqm.add_constraint([((i, j), 1) for j in range(n)], "==", 1, label=f"row{i}")
    for j in range(n):  # overlap the rows: these become penalties
        cqm.add_constraint([((i, j), 1) for i in range(n)], "==", 1, label=f"col{j}")
    best = min(sum(cost[i, p[i]] for i in range(n)) for p in itertools.permutations(range(n)))
    ss = solve(cqm, solver="constrained", seed=1)
    assert sorted(ss.info["grouped_constraints"]) == [f"row{i}" for i in range(n)]
    assert set(ss.info["penalty_weights"]) == {f"col{j}" for j in range(n)}
    assert ss.first.is_feasible
    assert ss.first.energy == pytest.approx(best)


@pytest.mark.parametrize("solver", ["constrained", "exact"])
def test_integer_knapsack_is_satisfied_and_optimal(solver: str) -> None:
    cqm = _knapsack_cqm(12, 4, lambda r: float(r.integers(1, 10)), 20)
    ss = solve(cqm, solver=solver, seed=2)
    assert ss.first.is_feasible
    assert ss.first.energy == pytest.approx(_brute_force(cqm))


def test_fractional_knapsack_is_satisfied_and_optimal() -> None:
    cqm = _knapsack_cqm(10, 5, lambda r: round(float(r.uniform(0.5, 4.0)), 2), 7.25)
    ss = solve(cqm, solver="constrained", seed=2)
    assert ss.first.is_feasible
    assert ss.first.energy == pytest.approx(_brute_force(cqm))


def test_at_most_k_cardinality_is_kept_by_moves_and_optimal() -> None:
    cqm = _portfolio_cqm(12, 4, seed=7)
    cqm.remove_constraint("cardinality")
    cqm.add_constraint([(i, 1) for i in range(12)], "<=", 3, label="at_most")
    ss = solve(cqm, solver="constrained", seed=3)
    assert ss.info["groups"] == [{"size": 12, "min": 0, "max": 3}]
    assert all(ss.record.is_feasible)
    assert ss.first.energy == pytest.approx(_brute_force(cqm))


def test_infeasible_model_marks_all_samples_and_warns() -> None:
    cqm = dimod.ConstrainedQuadraticModel()  # type: ignore[no-untyped-call]
    cqm.set_objective(_linear({"a": 1.0, "b": -1.0}))
    cqm.add_constraint([("a", 1), ("b", 1)], "==", 3, label="impossible")
    with pytest.warns(InfeasibleResultWarning, match="impossible"):
        ss = solve(cqm, solver="constrained", seed=0)
    assert not any(ss.record.is_feasible)
    assert ss.info["feasible_count"] == 0
    assert ss.info["unsatisfiable_constraints"] == ["impossible"]
    assert "no sample satisfies" in ss.info["warning"]


def test_is_feasible_agrees_with_check_satisfied_for_every_sample() -> None:
    cqm = _knapsack_cqm(14, 6, lambda r: float(r.integers(1, 10)), 12)
    cqm.add_constraint([(0, 1), (1, 1), (2, 1)], ">=", 2, label="need_two")
    ss = solve(cqm, solver="constrained", seed=4, num_reads=20, num_sweeps=20)
    rows = ss.data(["sample", "is_feasible"])  # type: ignore[no-untyped-call]
    for row in rows:
        assert bool(row.is_feasible) == cqm.check_feasible(row.sample)


def test_samples_come_feasible_first_then_by_energy() -> None:
    cqm = _knapsack_cqm(14, 8, lambda r: float(r.integers(1, 10)), 10)
    ss = solve(cqm, solver="constrained", seed=4, num_reads=30, num_sweeps=5, max_rounds=1)
    feasible = ss.record.is_feasible
    assert not np.any(~feasible[:-1] & feasible[1:])  # no feasible after an infeasible one
    for part in (ss.record.energy[feasible], ss.record.energy[~feasible]):
        assert np.all(np.diff(part) >= 0)


@pytest.mark.parametrize(
    ("sense", "rhs", "coefficients"),
    [("<=", 7, [3, 5, 2, 4]), (">=", 6, [3, 5, 2, 4]), ("<=", 2.3, [1.1, 0.7, 1.5, -0.4])],
)
def test_slack_penalty_is_zero_exactly_on_feasible_states(
    sense: str, rhs: float, coefficients: list[float]
) -> None:
    cqm = dimod.ConstrainedQuadraticModel()  # type: ignore[no-untyped-call]
    cqm.set_objective(_linear({i: 0.0 for i in range(4)}))
    cqm.add_constraint(list(enumerate(coefficients)), sense, rhs, label="c")
    plan = prepare_cqm(cqm)
    penalty = build_penalty(plan.constraints[0], plan.variables, "t")
    assert penalty.bqm is not None
    slack = [v for v in penalty.bqm.variables if v not in plan.variables]
    for values in itertools.product((0, 1), repeat=4):
        x = dict(enumerate(values))
        least = min(
            penalty.bqm.energy(x | dict(zip(slack, s, strict=True)))
            for s in itertools.product((0, 1), repeat=len(slack))
        )
        if cqm.check_feasible(x):  # type: ignore[arg-type]
            assert least == pytest.approx(0.0, abs=1e-9)
        else:
            assert least > 1e-9


def test_groups_are_found_for_unit_and_scaled_cardinality_constraints() -> None:
    cqm = dimod.ConstrainedQuadraticModel()  # type: ignore[no-untyped-call]
    cqm.set_objective(_linear({v: 1.0 for v in "abcdefgh"}))
    cqm.add_constraint([("a", 2), ("b", 2), ("c", 2)], "==", 2, label="one_hot_scaled")
    cqm.add_constraint([("d", -1), ("e", -1), ("f", -1)], "<=", -2, label="at_least_two")
    cqm.add_constraint([("c", 1), ("d", 1)], "<=", 1, label="overlapping")
    cqm.add_constraint([("g", 1), ("h", 1)], "==", 3, label="impossible")
    plan = prepare_cqm(cqm)
    groups = {tuple(sorted(map(str, m))): (lo, hi) for m, lo, hi in plan.groups}
    assert groups == {("a", "b", "c"): (1, 1), ("d", "e", "f"): (2, 3)}
    assert sorted(map(str, plan.grouped)) == ["at_least_two", "one_hot_scaled"]


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda c: c.add_variable("SPIN", "s"), "SPIN"),
        (lambda c: c.add_variable("INTEGER", "i", upper_bound=3), "INTEGER"),
        (lambda c: c.add_constraint_from_iterable([("x", "y", 1.0)], "<=", 0), "quadratic"),
        (lambda c: c.add_constraint([("x", 1), ("y", 1)], "<=", 1, weight=2.0), "soft"),
        (lambda c: c.objective.add_linear("x", float("nan")), "not finite"),
        (lambda c: c.add_constraint([("x", 1)], "<=", float("inf")), "not finite"),
    ],
)
def test_unsupported_or_broken_cqm_raises_invalid_model(
    build: Callable[[dimod.ConstrainedQuadraticModel], object], message: str
) -> None:
    cqm = dimod.ConstrainedQuadraticModel()  # type: ignore[no-untyped-call]
    cqm.set_objective(_linear({"x": 1.0, "y": -1.0}))
    build(cqm)
    with pytest.raises(InvalidModelError, match=message):
        prepare_cqm(cqm)


def test_empty_cqm_is_refused() -> None:
    with pytest.raises(InvalidModelError, match="empty"):
        solve(dimod.ConstrainedQuadraticModel())  # type: ignore[no-untyped-call]


def test_sampler_keeps_every_group_in_bounds_and_refuses_overlaps() -> None:
    rng = np.random.default_rng(0)
    bqm = dimod.BinaryQuadraticModel(
        {i: rng.normal() for i in range(15)},
        {(i, j): rng.normal() for i in range(15) for j in range(i + 1, 15)},
        0.0,
        dimod.BINARY,
    )
    groups = [(range(5), 1, 1), (range(5, 10), 2, 4), (range(10, 15), 0, 2)]
    ss = ConstrainedAnnealingSampler().sample(bqm, groups=groups, num_reads=25, seed=1)
    X = ss.record.sample
    assert np.all(X[:, :5].sum(axis=1) == 1)
    assert np.all((X[:, 5:10].sum(axis=1) >= 2) & (X[:, 5:10].sum(axis=1) <= 4))
    assert np.all(X[:, 10:].sum(axis=1) <= 2)
    with pytest.raises(InvalidParameterError, match="disjoint"):
        ConstrainedAnnealingSampler().sample(bqm, groups=[([0, 1], 1, 1), ([1, 2], 1, 1)])


def test_a_read_cut_short_by_the_time_limit_still_keeps_its_groups() -> None:
    n, size = 6000, 6  # one read of 5000 sweeps is seconds of work; the limit cuts it
    rng = np.random.default_rng(2)
    pairs = rng.integers(0, n, size=(4 * n, 2))
    bqm = dimod.BinaryQuadraticModel(
        {i: float(rng.normal()) for i in range(n)},
        {(int(i), int(j)): float(rng.normal()) for i, j in pairs if i != j},
        0.0,
        dimod.BINARY,
    )
    groups = [(range(g, g + size), 1, 1) for g in range(0, n, size)]
    ss = ConstrainedAnnealingSampler().sample(
        bqm, groups=groups, num_reads=3, num_sweeps=5000, time_limit=0.2, seed=4
    )
    assert "cut short" in ss.info["stop_reason"]
    assert ss.info["timing"]["solve_s"] < 1.0
    X = ss.record.sample.reshape(len(ss), n // size, size)
    assert np.all(X.sum(axis=2) == 1)


def test_a_read_split_into_blocks_for_a_time_limit_draws_the_same_sample() -> None:
    n = 500
    rng = np.random.default_rng(3)
    pairs = rng.integers(0, n, size=(5 * n, 2))
    bqm = dimod.BinaryQuadraticModel(
        {i: float(rng.normal()) for i in range(n)},
        {(int(i), int(j)): float(rng.normal()) for i, j in pairs if i != j},
        0.0,
        dimod.BINARY,
    )
    groups = [(range(g, g + 4), 1, 2) for g in range(0, n, 4)]
    arrays = IsingArrays.from_bqm(bqm)
    timed = RunSettings(num_reads=2, seed=9, num_threads=1, time_limit=3600.0, deadline=1e12)
    assert sweeps_per_call(arrays, 3000, timed) < 1000  # so the timed reads run in blocks
    whole = ConstrainedAnnealingSampler().sample(
        bqm, groups=groups, num_reads=2, num_sweeps=3000, seed=9
    )
    blocks = ConstrainedAnnealingSampler().sample(
        bqm, groups=groups, num_reads=2, num_sweeps=3000, seed=9, time_limit=3600.0
    )
    np.testing.assert_array_equal(whole.record.sample, blocks.record.sample)


def _port1_cqm(path: Path, k: int, lam: float) -> dimod.ConstrainedQuadraticModel:
    """Equal-weight selection on OR-Library port1: lam x'Sx/K^2 - (1-lam) mu'x/K, sum x = K."""
    tokens = path.read_text().split()
    n = int(tokens[0])
    mu = np.array([float(tokens[1 + 2 * i]) for i in range(n)])
    sd = np.array([float(tokens[2 + 2 * i]) for i in range(n)])
    corr = np.eye(n)
    rows = np.array(tokens[1 + 2 * n :], dtype=float).reshape(-1, 3)
    for i, j, c in rows:
        corr[int(i) - 1, int(j) - 1] = corr[int(j) - 1, int(i) - 1] = c
    S = corr * np.outer(sd, sd)
    obj = dimod.BinaryQuadraticModel(dimod.BINARY)
    for i in range(n):
        obj.add_linear(i + 1, lam * S[i, i] / k**2 - (1 - lam) * mu[i] / k)
        for j in range(i + 1, n):
            obj.add_quadratic(i + 1, j + 1, 2 * lam * S[i, j] / k**2)
    cqm = dimod.ConstrainedQuadraticModel()  # type: ignore[no-untyped-call]
    cqm.set_objective(obj)
    cqm.add_constraint([(i + 1, 1) for i in range(n)], "==", k, label="cardinality")
    return cqm


@pytest.mark.realdata
@pytest.mark.parametrize(
    ("k", "lam", "optimum", "assets"),
    [
        (5, 0.9, 2.0499603948e-04, {5, 15, 26, 28, 29}),
        (10, 0.99, 6.7486964701e-04, {2, 13, 15, 16, 17, 26, 28, 29, 30, 31}),
    ],
)
def test_port1_equal_weight_selection_matches_published_exact_optimum(
    data_dir: Path, k: int, lam: float, optimum: float, assets: set[int]
) -> None:
    cqm = _port1_cqm(data_dir / "portfolio" / "orlib" / "port1.txt", k, lam)
    with warnings.catch_warnings():
        warnings.simplefilter("error", InfeasibleResultWarning)
        ss = solve(cqm, seed=0)
    assert ss.info["solver"] == "constrained"
    assert ss.first.is_feasible
    assert ss.first.energy == pytest.approx(optimum, rel=1e-8)
    assert {v for v, x in ss.first.sample.items() if x} == assets


def test_first_is_the_best_feasible_sample_even_when_an_infeasible_one_is_lower() -> None:
    cqm = _knapsack_cqm(10, 5, lambda r: round(float(r.uniform(0.5, 4.0)), 2), 7.25)
    ss = solve(cqm, solver="constrained", seed=0)
    feasible = ss.record.is_feasible
    assert feasible.any()
    assert ss.first.is_feasible
    assert ss.first.energy == pytest.approx(ss.record.energy[feasible].min())


def test_slack_penalties_in_rounds_work_with_a_plain_sampler() -> None:
    cqm = _knapsack_cqm(10, 9, lambda r: float(r.integers(1, 10)), 15)
    cqm.add_constraint([(0, 1), (1, 1), (2, 1)], "==", 1, label="one_of_three")
    ss = solve(cqm, solver="dwave-sa", seed=3, num_reads=50)
    assert ss.info["penalty"] == "quadratic with slack variables"
    assert set(ss.info["penalty_weights"]) == {"capacity", "one_of_three"}
    assert ss.first.is_feasible
    assert ss.first.energy == pytest.approx(_brute_force(cqm))
