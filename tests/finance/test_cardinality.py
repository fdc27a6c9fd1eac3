"""Cardinality-constrained portfolios: brute force on small instances, OR-Library optima, errors."""

from __future__ import annotations

import importlib
import itertools
import math
import re
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import dimod
import numpy as np
import pandas as pd
import pytest

from nqba.engine import solve
from nqba.finance import cardinality
from nqba.finance.cardinality import (
    CardinalityPlan,
    cardinality_frontier,
    frontier_deviation,
    optimize_cardinality,
    selection_model,
    support_weights,
)
from nqba.finance.errors import InfeasiblePortfolioError, InvalidDataError, InvalidSpecError
from nqba.finance.orlib import read_orlib_frontier, read_orlib_portfolio

# cvxpy as Any: its typed exports trip mypy (as in test_estimators.py)
cp: Any = importlib.import_module("cvxpy")


def _instance(n: int, seed: int) -> tuple[pd.Series, pd.DataFrame]:
    """A random factor-model market: weekly-like returns and a positive definite covariance."""
    rng = np.random.default_rng(seed)
    loadings = rng.normal(0.0, 0.03, size=(n, 2))
    cov = loadings @ loadings.T + np.diag(rng.uniform(0.0003, 0.002, size=n))
    mu = rng.normal(0.004, 0.003, size=n)
    names = [f"S{i}" for i in range(n)]
    return pd.Series(mu, index=names), pd.DataFrame(cov, index=names, columns=names)


class _SupportQP:
    """Independent reference: the weights QP on one support with cvxpy + Clarabel."""

    def __init__(self, size: int, lam: float, lo: float, hi: float) -> None:
        self.chol = cp.Parameter((size, size))
        self.mu = cp.Parameter(size)
        self.w = cp.Variable(size)
        objective = lam * cp.sum_squares(self.chol.T @ self.w) - (1 - lam) * self.mu @ self.w
        constraints = [cp.sum(self.w) == 1, self.w >= lo, self.w <= hi]
        self.problem = cp.Problem(cp.Minimize(objective), constraints)

    def solve(self, mu: np.ndarray, cov: np.ndarray, support: tuple[int, ...]) -> float:
        idx = list(support)
        values, vectors = np.linalg.eigh(cov[np.ix_(idx, idx)])
        self.chol.value = vectors * np.sqrt(np.clip(values, 0.0, None))  # chol @ chol.T == cov
        self.mu.value = mu[idx]
        self.problem.solve(solver="CLARABEL", tol_gap_abs=1e-12, tol_gap_rel=1e-12)
        return float(self.problem.value)


def _brute_force(
    mu: pd.Series, cov: pd.DataFrame, sizes: range, lam: float, lo: float, hi: float
) -> tuple[float, tuple[int, ...]]:
    """Best objective over every support of the given sizes (infeasible sizes skipped)."""
    m, c = mu.to_numpy(), cov.to_numpy()
    best: tuple[float, tuple[int, ...]] = (math.inf, ())
    for size in sizes:
        if size * lo > 1 + 1e-12 or size * hi < 1 - 1e-12:
            continue
        qp = _SupportQP(size, lam, lo, hi)
        for support in itertools.combinations(range(len(m)), size):
            value = qp.solve(m, c, support)
            if value < best[0]:
                best = (value, support)
    return best


def _check_plan(plan: CardinalityPlan, mu: pd.Series, cov: pd.DataFrame) -> None:
    """Weights are feasible and every reported number is consistent with them."""
    w = plan.weights
    assert list(w.index) == list(mu.index)
    held = w[w > 0]
    assert sorted(held.index) == sorted(plan.support)
    assert w.sum() == pytest.approx(1.0, abs=1e-12)
    assert (held >= plan.min_weight - 1e-12).all()
    assert (held <= plan.max_weight + 1e-12).all()
    if plan.exact_k:
        assert len(plan.support) == plan.k
    else:
        assert 1 <= len(plan.support) <= plan.k
    ret = float(mu @ w)
    var = float(w @ cov @ w)
    assert plan.expected_return == pytest.approx(ret, rel=1e-12, abs=1e-15)
    assert plan.variance == pytest.approx(var, rel=1e-12, abs=1e-15)
    lam = plan.risk_weight
    assert plan.objective == pytest.approx(lam * var - (1 - lam) * ret, rel=1e-12, abs=1e-15)
    if plan.lower_bound is not None:
        assert plan.lower_bound <= plan.objective
        assert plan.gap == pytest.approx(plan.objective - plan.lower_bound, abs=1e-15)


# Weights on a fixed support -----------------------------------------------------------------


@pytest.mark.parametrize("lam", [0.0, 0.3, 0.9, 1.0])
@pytest.mark.parametrize(("lo", "hi"), [(0.0, 1.0), (0.05, 0.4), (0.2, 0.3)])
def test_support_weights_match_an_independent_qp(lam: float, lo: float, hi: float) -> None:
    mu, cov = _instance(9, seed=11)
    rng = np.random.default_rng(5)
    for size in (4, 5):
        if size * hi < 1:
            continue
        ref = _SupportQP(size, lam, lo, hi)
        for _ in range(6):
            support = tuple(sorted(rng.choice(9, size, replace=False)))
            names = [mu.index[i] for i in support]
            w = support_weights(mu, cov, names, risk_weight=lam, min_weight=lo, max_weight=hi)
            value = lam * float(w @ cov @ w) - (1 - lam) * float(mu @ w)
            expected = ref.solve(mu.to_numpy(), cov.to_numpy(), support)
            assert value == pytest.approx(expected, abs=1e-10)
            assert value <= expected + 1e-12  # the active-set answer is at least as good
            assert w[names].min() >= lo - 1e-12
            assert w[names].max() <= hi + 1e-12
            assert w.sum() == pytest.approx(1.0, abs=1e-12)


# Brute force on small random instances ------------------------------------------------------


SMALL_CASES = [
    # n, k, risk_weight, min_weight, max_weight, exact_k, seed
    (8, 3, 0.5, 0.01, 1.0, True, 1),
    (8, 4, 0.95, 0.01, 1.0, True, 2),
    (10, 3, 0.999, 0.05, 0.6, True, 3),
    (10, 2, 0.0, 0.1, 0.9, True, 4),
    (12, 3, 1.0, 0.01, 1.0, True, 5),
    (12, 3, 0.8, 0.2, 0.5, True, 6),
    (9, 4, 0.9, 0.1, 0.5, False, 7),
    (10, 3, 0.99, 0.0, 1.0, False, 8),
]


@pytest.mark.parametrize(("n", "k", "lam", "lo", "hi", "exact", "seed"), SMALL_CASES)
@pytest.mark.parametrize("proof", ["enumeration", "branch_and_bound"])
def test_optimum_equals_brute_force_over_all_supports(
    monkeypatch: pytest.MonkeyPatch,
    n: int,
    k: int,
    lam: float,
    lo: float,
    hi: float,
    exact: bool,
    seed: int,
    proof: str,
) -> None:
    if proof == "branch_and_bound":
        monkeypatch.setattr(cardinality, "ENUMERATION_MAX_SUPPORTS", 0)
    mu, cov = _instance(n, seed)
    plan = optimize_cardinality(
        mu, cov, k, risk_weight=lam, min_weight=lo, max_weight=hi, exact_k=exact, seed=seed
    )
    sizes = range(k, k + 1) if exact else range(1, k + 1)
    best, _ = _brute_force(mu, cov, sizes, lam, lo, hi)
    _check_plan(plan, mu, cov)
    assert plan.objective == pytest.approx(best, abs=1e-9)
    assert plan.proven_optimal
    assert plan.lower_bound is not None
    assert plan.lower_bound <= best + 1e-9
    if proof == "enumeration":
        assert "enumeration" in plan.bound_method
    else:
        assert "branch and bound" in plan.bound_method
        assert plan.nodes >= 1


def test_risk_weight_zero_holds_the_k_highest_returns() -> None:
    mu, cov = _instance(12, seed=9)
    plan = optimize_cardinality(mu, cov, 4, risk_weight=0.0, min_weight=0.05, max_weight=0.4)
    assert sorted(plan.support) == sorted(mu.nlargest(4).index)
    # linear objective: the best asset gets max_weight, the rest min_weight and the remainder
    assert plan.weights[mu.idxmax()] == pytest.approx(0.4)
    assert plan.proven_optimal


def test_without_proof_the_root_relaxation_still_bounds_the_gap() -> None:
    mu, cov = _instance(12, seed=4)
    plan = optimize_cardinality(mu, cov, 3, risk_weight=0.9, prove=False, seed=0)
    best, _ = _brute_force(mu, cov, range(3, 4), 0.9, 0.01, 1.0)
    assert not plan.proven_optimal
    assert plan.bound_method.startswith("perspective relaxation at the root")
    assert plan.lower_bound is not None
    assert plan.lower_bound <= best + 1e-12
    assert plan.gap is not None
    assert plan.gap >= 0
    assert plan.objective >= best - 1e-12


def _twins(n: int, seed: int) -> tuple[pd.Series, pd.DataFrame]:
    """Pairs of nearly identical assets: a weak relaxation, so the proof needs many nodes."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n // 2, 3)) * 0.02
    loadings = np.vstack([base, base + rng.normal(size=base.shape) * 0.001])
    cov = loadings @ loadings.T + np.diag(rng.uniform(0.0001, 0.0004, size=n))
    mu = rng.normal(0.004, 0.002, size=n)
    names = [f"S{i}" for i in range(n)]
    return pd.Series(mu, index=names), pd.DataFrame(cov, index=names, columns=names)


def test_time_limit_stops_the_proof_and_reports_a_valid_gap() -> None:
    mu, cov = _twins(60, seed=3)  # its full proof took 28 s (10 547 nodes)
    plan = optimize_cardinality(mu, cov, 10, risk_weight=0.99, time_limit=0.3, seed=1)
    _check_plan(plan, mu, cov)
    assert not plan.proven_optimal
    assert "stopped at the time limit" in plan.bound_method
    assert plan.gap is not None
    assert plan.gap > 0
    assert any("not proven optimal" in note for note in plan.notes)
    assert plan.timings["total_s"] < 0.3 + 0.1
    root = optimize_cardinality(mu, cov, 10, risk_weight=0.99, seed=1, prove=False)
    assert plan.lower_bound is not None
    assert root.lower_bound is not None
    assert plan.lower_bound >= root.lower_bound - 1e-15  # best-first: the bound only rises


@pytest.mark.slow
def test_bound_at_a_time_limit_stays_below_the_proven_optimum() -> None:
    mu, cov = _twins(40, seed=1)  # its full proof took 0.9 s
    cut = optimize_cardinality(mu, cov, 8, risk_weight=0.99, time_limit=0.15, seed=1)
    assert not cut.proven_optimal
    full = optimize_cardinality(mu, cov, 8, risk_weight=0.99, seed=1)
    assert full.proven_optimal
    assert cut.lower_bound is not None
    assert cut.lower_bound <= full.objective + 1e-15
    assert cut.objective >= full.objective - 1e-15


def test_same_seed_same_plan() -> None:
    mu, cov = _instance(30, seed=3)
    a = optimize_cardinality(mu, cov, 5, risk_weight=0.9, seed=42, prove=False)
    b = optimize_cardinality(mu, cov, 5, risk_weight=0.9, seed=42, prove=False)
    assert a.support == b.support
    assert a.weights.equals(b.weights)
    assert a.baseline.support == b.baseline.support


def test_numpy_inputs_get_positional_names_and_pandas_labels_are_aligned() -> None:
    mu, cov = _instance(8, seed=2)
    plan = optimize_cardinality(mu.to_numpy(), cov.to_numpy(), 3, risk_weight=0.9)
    assert list(plan.weights.index) == [f"A{i}" for i in range(8)]
    shuffled = cov.loc[mu.index[::-1], mu.index[::-1]]
    named = optimize_cardinality(mu, shuffled, 3, risk_weight=0.9)
    assert [f"S{name[1:]}" for name in plan.support] == named.support
    assert named.objective == pytest.approx(plan.objective, abs=1e-14)


def test_plan_carries_the_engine_baseline_and_timings() -> None:
    mu, cov = _instance(20, seed=6)
    plan = optimize_cardinality(mu, cov, 4, risk_weight=0.95, seed=3)
    base = plan.baseline
    assert base.solver == "constrained"
    assert len(base.support) == 4
    w = support_weights(mu, cov, base.support, risk_weight=0.95)
    assert base.objective == pytest.approx(0.95 * (w @ cov @ w) - 0.05 * (mu @ w), abs=1e-14)
    equal = pd.Series(0.25, index=base.support)
    sub_cov = cov.loc[base.support, base.support]
    assert base.equal_weight_objective == pytest.approx(
        0.95 * (equal @ sub_cov @ equal) - 0.05 * (mu[base.support] @ equal), abs=1e-14
    )
    assert plan.objective <= base.objective + 1e-15 <= base.equal_weight_objective + 1e-15
    assert set(plan.timings) >= {"engine_s", "relaxation_s", "local_search_s", "proof_s"}
    assert plan.timings["total_s"] >= plan.timings["engine_s"]
    assert "engine 'constrained' sampler" in plan.method
    assert plan.engine_info["distinct_supports"] >= 1


def test_selection_model_is_the_equal_weight_cqm() -> None:
    mu, cov = _instance(7, seed=1)
    cqm = selection_model(mu, cov, 3, risk_weight=0.8)
    assert isinstance(cqm, dimod.ConstrainedQuadraticModel)
    x: dict[Hashable, float] = {i: int(i in (0, 2, 5)) for i in range(7)}
    w = np.array([x[i] for i in range(7)]) / 3
    expected = 0.8 * w @ cov.to_numpy() @ w - 0.2 * mu.to_numpy() @ w
    assert cqm.objective.energy(x) == pytest.approx(expected, abs=1e-15)
    assert cqm.check_feasible(x)
    assert not cqm.check_feasible({i: int(i < 4) for i in range(7)})


def test_selection_model_solved_through_the_engine_cqm_path_matches_the_baseline() -> None:
    mu, cov = _instance(24, seed=8)
    cqm = selection_model(mu, cov, 4, risk_weight=0.9)
    result = solve(cqm, solver="constrained", seed=2, num_reads=8)
    best = result.first
    assert best.is_feasible
    picked = sorted(mu.index[i] for i, v in best.sample.items() if v)
    assert len(picked) == 4
    plan = optimize_cardinality(mu, cov, 4, risk_weight=0.9, seed=2, prove=False)
    equal = pd.Series(0.25, index=plan.baseline.support)
    sub = cov.loc[plan.baseline.support, plan.baseline.support]
    baseline_energy = 0.9 * (equal @ sub @ equal) - 0.1 * (mu[plan.baseline.support] @ equal)
    assert best.energy == pytest.approx(baseline_energy, abs=1e-15)  # both reach the same model
    assert best.energy == pytest.approx(plan.baseline.equal_weight_objective, abs=1e-15)


def test_selection_model_checks_its_inputs() -> None:
    mu, cov = _instance(6, seed=0)
    with pytest.raises(InvalidSpecError, match="only 6 are given"):
        selection_model(mu, cov, 7, risk_weight=0.5)
    with pytest.raises(InvalidSpecError, match=r"\[0, 1\]"):
        selection_model(mu, cov, 2, risk_weight=2.0)


def test_frontier_plans_follow_the_given_order_and_match_single_solves() -> None:
    mu, cov = _instance(10, seed=12)
    lams = [0.99, 0.5, 0.9]
    plans = cardinality_frontier(mu, cov, 3, lams, prove=True, seed=0)
    assert [p.risk_weight for p in plans] == lams
    for lam, plan in zip(lams, plans, strict=True):
        single = optimize_cardinality(mu, cov, 3, risk_weight=lam, seed=0)
        assert plan.objective == pytest.approx(single.objective, abs=1e-14)
        assert plan.proven_optimal


# Frontier deviation -------------------------------------------------------------------------


def test_frontier_deviation_is_zero_on_the_curve_and_the_smaller_axis_off_it() -> None:
    ref_r = np.linspace(0.01, 0.002, 200)
    ref_v = (0.02 + 2.0 * (ref_r - 0.002)) ** 2  # std dev linear in return
    on = frontier_deviation(ref_r[50:52], ref_v[50:52], ref_r, ref_v)
    assert np.allclose(on, 0.0, atol=1e-9)
    r, sd = 0.006, 0.02 + 2.0 * 0.004
    dev = frontier_deviation([r], [(1.1 * sd) ** 2], ref_r, ref_v)[0]
    horizontal = 10.0
    vertical = 100.0 * abs(r - (0.002 + (1.1 * sd - 0.02) / 2.0)) / (0.002 + (1.1 * sd - 0.02) / 2)
    assert dev == pytest.approx(min(horizontal, vertical), rel=1e-9)
    assert np.isnan(frontier_deviation([0.5], [4.0], ref_r, ref_v)[0])


# Errors -------------------------------------------------------------------------------------


def test_infeasible_budgets_say_what_to_change() -> None:
    mu, cov = _instance(10, seed=0)
    at_most = re.escape("lower min_weight to at most 0.2")
    with pytest.raises(InfeasiblePortfolioError, match=at_most):
        optimize_cardinality(mu, cov, 5, risk_weight=0.5, min_weight=0.25)
    at_least = re.escape("raise max_weight to at least 0.25")
    with pytest.raises(InfeasiblePortfolioError, match=at_least):
        optimize_cardinality(mu, cov, 4, risk_weight=0.5, max_weight=0.2)
    with pytest.raises(InfeasiblePortfolioError, match="raise max_weight"):
        optimize_cardinality(mu, cov, 2, risk_weight=0.5, max_weight=0.2, exact_k=False)
    with pytest.raises(InfeasiblePortfolioError, match="lower min_weight or raise max_weight"):
        optimize_cardinality(
            mu, cov, 8, risk_weight=0.5, min_weight=0.3, max_weight=0.3, exact_k=False
        )


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"k": 11}, "only 10 are given"),
        ({"k": 0}, "positive integer"),
        ({"k": 2.5}, "positive integer"),
        ({"k": True}, "positive integer"),
        ({"risk_weight": 1.5}, r"\[0, 1\]"),
        ({"risk_weight": -0.1}, r"\[0, 1\]"),
        ({"risk_weight": float("nan")}, "finite"),
        ({"risk_weight": "high"}, "must be a number"),
        ({"min_weight": 0.5, "max_weight": 0.4}, "larger than max_weight"),
        ({"min_weight": -0.1}, ">= 0"),
        ({"max_weight": 0.0}, "> 0"),
        ({"time_limit": 0.0}, "positive number of seconds"),
        ({"seed": -1}, "non-negative integer"),
    ],
)
def test_bad_parameters_raise_invalid_spec(kwargs: dict[str, object], words: str) -> None:
    mu, cov = _instance(10, seed=0)
    args: dict[str, object] = {"k": 3, "risk_weight": 0.5} | kwargs
    k = args.pop("k")
    with pytest.raises(InvalidSpecError, match=words):
        optimize_cardinality(mu, cov, k, **args)  # type: ignore[arg-type]


def test_bad_data_raise_invalid_data() -> None:
    mu, cov = _instance(6, seed=0)
    c = cov.to_numpy()
    bad = c.copy()
    bad[0, 1] = bad[1, 0] = 10.0  # correlation far above one: not PSD
    with pytest.raises(InvalidDataError, match=r"not positive semidefinite.*repair_psd"):
        optimize_cardinality(mu.to_numpy(), bad, 2, risk_weight=0.5)
    asym = c.copy()
    asym[0, 1] += 1e-3
    with pytest.raises(InvalidDataError, match="not symmetric"):
        optimize_cardinality(mu.to_numpy(), asym, 2, risk_weight=0.5)
    with pytest.raises(InvalidDataError, match="6 x 6"):
        optimize_cardinality(mu.to_numpy(), c[:5, :5], 2, risk_weight=0.5)
    with pytest.raises(InvalidDataError, match="NaN"):
        optimize_cardinality(mu.to_numpy() * np.nan, c, 2, risk_weight=0.5)
    other = cov.rename(index=lambda s: s + "x", columns=lambda s: s + "x")
    with pytest.raises(InvalidDataError, match="different assets"):
        optimize_cardinality(mu, other, 2, risk_weight=0.5)
    zero_var = c.copy()
    zero_var[2, :] = zero_var[:, 2] = 0.0
    zero_var[2, 3] = zero_var[3, 2] = 1e-3
    with pytest.raises(InvalidDataError, match="zero variance"):
        optimize_cardinality(mu.to_numpy(), zero_var, 2, risk_weight=0.5)


def test_a_riskless_asset_is_handled() -> None:
    mu, cov = _instance(8, seed=5)
    c = cov.copy()
    c.iloc[0, :] = 0.0
    c.iloc[:, 0] = 0.0
    plan = optimize_cardinality(mu, c, 3, risk_weight=1.0, seed=0)
    best, _ = _brute_force(mu, c, range(3, 4), 1.0, 0.01, 1.0)
    assert plan.objective == pytest.approx(best, abs=1e-12)
    assert plan.proven_optimal


def test_frontier_needs_a_risk_weight() -> None:
    mu, cov = _instance(6, seed=0)
    with pytest.raises(InvalidSpecError, match="at least one risk weight"):
        cardinality_frontier(mu, cov, 2, [])


def test_support_weights_refuse_unknown_or_infeasible_supports() -> None:
    mu, cov = _instance(6, seed=0)
    with pytest.raises(InvalidSpecError, match="unknown assets"):
        support_weights(mu, cov, ["S0", "nope"], risk_weight=0.5)
    with pytest.raises(InvalidSpecError, match="distinct"):
        support_weights(mu, cov, ["S0", "S0"], risk_weight=0.5)
    with pytest.raises(InfeasiblePortfolioError, match="cannot hold the whole budget"):
        support_weights(mu, cov, ["S0", "S1"], risk_weight=0.5, max_weight=0.4)


# OR-Library optima (SCIP 10 references from the data README) ---------------------------------

README_OPTIMA = {
    # (set, k, risk_weight): (support, objective); SCIP 10 with the objective re-polished
    ("port1", 5, 0.5): ("5,9,12,26,29", -3.349779160e-03),
    ("port1", 5, 0.9): ("5,15,26,28,29", 1.655083975e-04),
    ("port1", 5, 0.95): ("5,15,26,28,29", 4.452038536e-04),
    ("port1", 5, 0.99): ("15,26,28,29,30", 6.254424947e-04),
    ("port1", 5, 0.999): ("15,16,26,28,30", 6.564693017e-04),
    ("port1", 10, 0.5): ("4,5,8,9,12,13,15,20,26,29", -3.303996503e-03),
    ("port1", 10, 0.9): ("2,5,9,13,15,26,28,29,30,31", 1.590985742e-04),
    ("port1", 10, 0.95): ("5,9,13,15,16,26,28,29,30,31", 4.328164386e-04),
    ("port1", 10, 0.99): ("5,13,15,16,17,26,28,29,30,31", 6.068669124e-04),
    ("port1", 10, 0.999): ("2,13,15,16,17,26,28,29,30,31", 6.388210176e-04),
    ("port2", 5, 0.5): ("2,13,29,37,38", -4.088482360e-03),
    ("port2", 5, 0.9): ("2,13,29,38,61", -3.460748156e-04),
    ("port2", 5, 0.95): ("2,13,29,49,68", 5.304572857e-06),
    ("port2", 5, 0.99): ("2,4,13,49,68", 1.572110813e-04),
    ("port2", 5, 0.999): ("4,19,49,68,85", 1.818241973e-04),
    ("port2", 10, 0.5): ("2,11,13,29,37,38,46,49,69,74", -3.990596986e-03),
    ("port2", 10, 0.9): ("2,13,27,29,37,38,49,57,61,71", -3.645474621e-04),
    ("port2", 10, 0.95): ("2,4,13,29,38,49,57,59,68,71", -4.753949751e-05),
    ("port2", 10, 0.99): ("2,4,12,13,19,49,51,59,68,71", 1.209442909e-04),
    ("port2", 10, 0.999): ("2,4,12,13,19,35,49,51,68,85", 1.458083920e-04),
}


# port3 has no table in the data README; these are SCIP 10.0 (PySCIPOpt 6.3, perspective
# formulation as the README describes, single thread, status "optimal") measured here on
# 2026-11-24, each support re-weighted with cvxpy + Clarabel at 1e-12 tolerances.
PORT3_OPTIMA = {
    ("port3", 5, 0.5): ("10,18,29,37,71", -3.358304968e-03),
    ("port3", 5, 0.9): ("10,18,37,53,62", -2.144071499e-04),
    ("port3", 5, 0.95): ("30,37,53,62,82", 5.441096445e-05),
    ("port3", 5, 0.99): ("2,20,41,46,62", 2.092652130e-04),
    ("port3", 5, 0.999): ("2,20,41,46,62", 2.354677885e-04),
    ("port3", 10, 0.5): ("2,9,10,18,29,37,44,55,71,82", -3.323219151e-03),
    ("port3", 10, 0.9): ("9,10,18,37,53,55,62,66,71,82", -2.367569433e-04),
    ("port3", 10, 0.95): ("2,10,30,53,55,62,66,72,77,82", 2.863860876e-05),
    ("port3", 10, 0.99): ("2,20,25,30,41,46,62,75,82,83", 1.779297555e-04),
    ("port3", 10, 0.999): ("2,20,30,41,46,56,62,75,83,85", 2.034051459e-04),
}
PORT3_QUICK = [("port3", 5, 0.5), ("port3", 5, 0.9), ("port3", 10, 0.5), ("port3", 10, 0.9)]


def _orlib_inputs(data_dir: Path, name: str) -> tuple[pd.Series, pd.DataFrame]:
    p = read_orlib_portfolio(data_dir / "portfolio" / "orlib" / f"{name}.txt")
    return pd.Series(p.mu, index=p.names), pd.DataFrame(p.cov, index=p.names, columns=p.names)


def _assert_reference_optimum(data_dir: Path, key: tuple[str, int, float]) -> None:
    name, k, lam = key
    support, objective = (README_OPTIMA | PORT3_OPTIMA)[key]
    mu, cov = _orlib_inputs(data_dir, name)
    plan = optimize_cardinality(mu, cov, k, risk_weight=lam, seed=0)
    _check_plan(plan, mu, cov)
    assert ",".join(plan.support) == support
    assert plan.objective == pytest.approx(objective, abs=1e-12)
    assert plan.proven_optimal
    assert plan.lower_bound is not None
    assert plan.lower_bound <= objective + 1e-12


@pytest.mark.realdata
@pytest.mark.parametrize("key", [k for k in README_OPTIMA if k[0] == "port1"])
def test_port1_optima_match_scip(data_dir: Path, key: tuple[str, int, float]) -> None:
    _assert_reference_optimum(data_dir, key)


@pytest.mark.realdata
@pytest.mark.slow
@pytest.mark.parametrize("key", [k for k in README_OPTIMA if k[0] == "port2"])
def test_port2_optima_match_scip(data_dir: Path, key: tuple[str, int, float]) -> None:
    _assert_reference_optimum(data_dir, key)


@pytest.mark.realdata
@pytest.mark.parametrize("key", PORT3_QUICK)
def test_port3_optima_match_scip_measured_here(data_dir: Path, key: tuple[str, int, float]) -> None:
    _assert_reference_optimum(data_dir, key)


@pytest.mark.realdata
@pytest.mark.slow
@pytest.mark.parametrize("key", [k for k in PORT3_OPTIMA if k not in PORT3_QUICK])
def test_port3_hard_optima_match_scip_measured_here(
    data_dir: Path, key: tuple[str, int, float]
) -> None:
    _assert_reference_optimum(data_dir, key)


@pytest.mark.realdata
@pytest.mark.slow
def test_port1_frontier_stays_on_or_below_the_unconstrained_frontier(data_dir: Path) -> None:
    mu, cov = _orlib_inputs(data_dir, "port1")
    ref_r, ref_v = read_orlib_frontier(data_dir / "portfolio" / "orlib" / "portef1.txt")
    lams = np.linspace(0.05, 1.0, 20)
    plans = cardinality_frontier(mu, cov, 10, list(lams), seed=0)
    r = np.array([p.expected_return for p in plans])
    v = np.array([p.variance for p in plans])
    # no cardinality-constrained portfolio beats the unconstrained long-only frontier
    order = np.argsort(ref_r)
    inside = (r >= ref_r.min()) & (r <= ref_r.max())
    assert np.all(v[inside] >= np.interp(r[inside], ref_r[order], ref_v[order]) * (1 - 1e-4))
    dev = frontier_deviation(r, v, ref_r, ref_v)
    assert np.nanmax(dev) < 2.0  # K = 10 of 31 assets costs at most a few percent
