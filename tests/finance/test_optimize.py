"""Portfolio optimization: every objective and constraint against closed forms or an
independent solver (scipy SLSQP), every bad input's error, and published reference figures."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize

from nqba.finance.errors import InfeasiblePortfolioError, InvalidDataError, InvalidSpecError
from nqba.finance.optimize import as_mean_cov, optimize_portfolio
from nqba.finance.schemas import OptimizeSpec, PortfolioConstraints

WIDE = PortfolioConstraints(long_only=False, weight_bounds=(-5.0, 5.0))  # bounds never bind


def _market(n: int = 6, seed: int = 0) -> tuple[pd.Series, pd.DataFrame]:
    """A small two-factor market with positive expected returns."""
    rng = np.random.default_rng(seed)
    loadings = rng.normal(size=(n, 2)) * 0.15
    cov = loadings @ loadings.T + np.diag(rng.uniform(0.01, 0.04, n))
    mu = rng.uniform(0.04, 0.16, n)
    names = [f"S{i}" for i in range(n)]
    return pd.Series(mu, index=names), pd.DataFrame(cov, index=names, columns=names)


def _w(plan_weights: dict[str, float], names: list[str]) -> np.ndarray:
    return np.array([plan_weights[a] for a in names])


def _slsqp(
    objective: Callable[[np.ndarray], float],
    n: int,
    bounds: list[tuple[float, float]],
    extra: list[dict[str, Any]] | None = None,
    x0: np.ndarray | None = None,
) -> np.ndarray:
    """Independent reference: scipy SLSQP with the budget constraint and bounds."""
    cons: list[dict[str, Any]] = [{"type": "eq", "fun": lambda x: float(np.sum(x)) - 1.0}]
    cons += extra or []
    start = np.full(n, 1.0 / n) if x0 is None else x0
    res = minimize(
        objective,
        start,
        method="SLSQP",
        bounds=bounds,
        constraints=cons,
        options={"ftol": 1e-12, "maxiter": 2000},
    )
    assert res.success, res.message
    return np.asarray(res.x, dtype=float)


# Closed forms without binding bounds (a = 1'S^-1 1, b = 1'S^-1 mu, c = mu'S^-1 mu).


def test_min_variance_matches_closed_form_when_bounds_do_not_bind() -> None:
    mu, cov = _market()
    plan = optimize_portfolio(mu, cov, OptimizeSpec(objective="min_variance", constraints=WIDE))
    inv_one = np.linalg.solve(cov.to_numpy(), np.ones(len(mu)))
    expected = inv_one / inv_one.sum()
    np.testing.assert_allclose(_w(plan.weights, list(mu.index)), expected, atol=1e-6)
    assert plan.volatility == pytest.approx(math.sqrt(1.0 / inv_one.sum()), rel=1e-7)


def test_max_sharpe_matches_tangency_portfolio_closed_form() -> None:
    mu, cov = _market()
    rf = 0.02
    plan = optimize_portfolio(
        mu, cov, OptimizeSpec(objective="max_sharpe", risk_free_rate=rf, constraints=WIDE)
    )
    direction = np.linalg.solve(cov.to_numpy(), mu.to_numpy() - rf)
    expected = direction / direction.sum()
    np.testing.assert_allclose(_w(plan.weights, list(mu.index)), expected, atol=1e-6)
    best_sharpe = math.sqrt(float((mu.to_numpy() - rf) @ direction))
    assert plan.sharpe == pytest.approx(best_sharpe, rel=1e-8)


def _abc(mu: pd.Series, cov: pd.DataFrame) -> tuple[float, float, float]:
    inv_one = np.linalg.solve(cov.to_numpy(), np.ones(len(mu)))
    inv_mu = np.linalg.solve(cov.to_numpy(), mu.to_numpy())
    return float(inv_one.sum()), float(inv_mu.sum()), float(mu.to_numpy() @ inv_mu)


def test_target_return_matches_two_fund_closed_form() -> None:
    mu, cov = _market()
    a, b, c = _abc(mu, cov)
    target = 0.2  # above the minimum-variance return b / a, so the constraint binds
    assert target > b / a
    plan = optimize_portfolio(
        mu, cov, OptimizeSpec(objective="target_return", target_return=target, constraints=WIDE)
    )
    d = a * c - b * b
    variance = (a * target**2 - 2 * b * target + c) / d
    assert plan.expected_return == pytest.approx(target, abs=1e-7)
    assert plan.volatility == pytest.approx(math.sqrt(variance), rel=1e-6)


def test_target_risk_matches_closed_form_frontier_return() -> None:
    mu, cov = _market()
    a, b, c = _abc(mu, cov)
    d = a * c - b * b
    sigma = 0.3
    best_return = (b + math.sqrt(b * b - a * (c - d * sigma**2))) / a
    plan = optimize_portfolio(
        mu, cov, OptimizeSpec(objective="target_risk", target_risk=sigma, constraints=WIDE)
    )
    assert plan.volatility == pytest.approx(sigma, abs=1e-6)
    assert plan.expected_return == pytest.approx(best_return, abs=1e-6)


def test_max_utility_matches_closed_form() -> None:
    mu, cov = _market()
    delta = 3.0
    plan = optimize_portfolio(
        mu, cov, OptimizeSpec(objective="max_utility", risk_aversion=delta, constraints=WIDE)
    )
    a, b, _ = _abc(mu, cov)
    gamma = (b - delta) / a  # budget multiplier: w = S^-1 (mu - gamma 1) / delta
    expected = np.linalg.solve(cov.to_numpy(), mu.to_numpy() - gamma) / delta
    np.testing.assert_allclose(_w(plan.weights, list(mu.index)), expected, atol=1e-6)
    assert plan.parameters == {"risk_aversion": delta}


# Long-only objectives against scipy SLSQP.


def _long_only_reference(objective: str, mu: np.ndarray, cov: np.ndarray) -> np.ndarray:
    n = len(mu)
    bounds = [(0.0, 1.0)] * n
    if objective == "min_variance":
        return _slsqp(lambda x: float(x @ cov @ x) * 100, n, bounds)
    if objective == "max_sharpe":
        return _slsqp(lambda x: -float((mu @ x - 0.02) / math.sqrt(x @ cov @ x)), n, bounds)
    if objective == "max_utility":
        return _slsqp(lambda x: -float(mu @ x - 3.0 * x @ cov @ x) * 100, n, bounds)
    if objective == "target_return":
        extra = [{"type": "ineq", "fun": lambda x: float(mu @ x) - 0.12}]
        return _slsqp(lambda x: float(x @ cov @ x) * 100, n, bounds, extra)
    extra = [{"type": "ineq", "fun": lambda x: 0.2**2 - float(x @ cov @ x)}]
    return _slsqp(lambda x: -float(mu @ x) * 100, n, bounds, extra)


@pytest.mark.parametrize(
    ("objective", "fields"),
    [
        ("min_variance", {}),
        ("max_sharpe", {"risk_free_rate": 0.02}),
        ("max_utility", {"risk_aversion": 6.0}),
        ("target_return", {"target_return": 0.12}),
        ("target_risk", {"target_risk": 0.2}),
    ],
)
def test_long_only_objectives_match_scipy_slsqp(objective: str, fields: dict[str, float]) -> None:
    mu, cov = _market(n=5, seed=3)
    plan = optimize_portfolio(mu, cov, OptimizeSpec(objective=objective, **fields))  # type: ignore[arg-type]
    reference = _long_only_reference(objective, mu.to_numpy(), cov.to_numpy())
    got = _w(plan.weights, list(mu.index))
    assert got.min() >= 0.0
    assert got.sum() == pytest.approx(1.0, abs=1e-8)
    np.testing.assert_allclose(got, reference, atol=2e-4)
    assert plan.status == "optimal"


# Constraints.


def test_global_and_per_asset_bounds_hold_and_bind() -> None:
    mu, cov = _market()
    top = str(mu.idxmax())
    constraints = PortfolioConstraints(weight_bounds=(0.0, 0.3), asset_bounds={top: (0.05, 0.1)})
    plan = optimize_portfolio(
        mu,
        cov,
        OptimizeSpec(objective="max_utility", risk_tolerance="aggressive", constraints=constraints),
    )
    assert plan.weights[top] == pytest.approx(0.1, abs=1e-7)  # wants more; capped
    others = [w for a, w in plan.weights.items() if a != top]
    assert max(others) <= 0.3 + 1e-8
    assert any(abs(w - 0.3) < 1e-6 for w in others)


def test_sector_limit_binds_and_matches_independent_solution() -> None:
    mu, cov = _market()
    names = list(mu.index)
    sectors = {a: ("growth" if i < 3 else "value") for i, a in enumerate(names)}
    free = optimize_portfolio(mu, cov, OptimizeSpec(objective="max_utility", risk_aversion=4.0))
    growth_free = sum(free.weights[a] for a in names[:3])
    cap = round(growth_free / 2, 4)
    assert cap > 0.05
    plan = optimize_portfolio(
        mu,
        cov,
        OptimizeSpec(
            objective="max_utility",
            risk_aversion=4.0,
            constraints=PortfolioConstraints(sectors=sectors, sector_limits={"growth": (0.0, cap)}),
        ),
    )
    assert sum(plan.weights[a] for a in names[:3]) == pytest.approx(cap, abs=1e-7)
    m, s = mu.to_numpy(), cov.to_numpy()
    reference = _slsqp(
        lambda x: -float(m @ x - 2.0 * x @ s @ x) * 100,
        len(m),
        [(0.0, 1.0)] * len(m),
        [{"type": "ineq", "fun": lambda x: cap - float(np.sum(x[:3]))}],
    )
    np.testing.assert_allclose(_w(plan.weights, names), reference, atol=2e-4)


def test_sector_minimum_binds() -> None:
    mu, cov = _market()
    names = list(mu.index)
    low = str(mu.idxmin())
    plan = optimize_portfolio(
        mu,
        cov,
        OptimizeSpec(
            objective="max_sharpe",
            constraints=PortfolioConstraints(
                sectors={low: "cash-like"}, sector_limits={"cash-like": (0.25, 1.0)}
            ),
        ),
    )
    assert plan.weights[low] == pytest.approx(0.25, abs=1e-7)
    assert sum(plan.weights[a] for a in names) == pytest.approx(1.0, abs=1e-8)


def test_turnover_limit_binds_and_matches_split_variable_reference() -> None:
    mu, cov = _market()
    names = list(mu.index)
    n = len(names)
    current = {a: 1.0 / n for a in names}
    free = optimize_portfolio(
        mu,
        cov,
        OptimizeSpec(
            objective="min_variance", constraints=PortfolioConstraints(current_weights=current)
        ),
    )
    assert free.turnover > 0.1
    limit = round(free.turnover / 2, 4)
    plan = optimize_portfolio(
        mu,
        cov,
        OptimizeSpec(
            objective="min_variance",
            constraints=PortfolioConstraints(current_weights=current, max_turnover=limit),
        ),
    )
    assert plan.turnover == pytest.approx(limit, abs=1e-6)
    assert free.volatility < plan.volatility < plan.baseline.volatility
    # Reference: w = c + p - q with p, q >= 0 and sum(p + q) <= limit, solved by SLSQP.
    s = cov.to_numpy()
    c0 = np.full(n, 1.0 / n)

    def variance(z: np.ndarray) -> float:
        x = c0 + z[:n] - z[n:]
        return float(x @ s @ x) * 100

    res = minimize(
        variance,
        np.zeros(2 * n),
        method="SLSQP",
        bounds=[(0.0, 1.0)] * (2 * n),
        constraints=[
            {"type": "eq", "fun": lambda z: float(np.sum(z[:n] - z[n:]))},
            {"type": "ineq", "fun": lambda z: limit - float(np.sum(z))},
            {"type": "ineq", "fun": lambda z: c0 + z[:n] - z[n:]},
        ],
        options={"ftol": 1e-12, "maxiter": 2000},
    )
    assert res.success
    reference = c0 + res.x[:n] - res.x[n:]
    np.testing.assert_allclose(_w(plan.weights, names), reference, atol=2e-4)


def test_leverage_limit_binds_for_long_short_portfolio() -> None:
    mu, cov = _market(seed=1)
    spec = OptimizeSpec(objective="max_sharpe", risk_free_rate=0.06, constraints=WIDE)
    free = optimize_portfolio(mu, cov, spec)
    gross_free = sum(abs(w) for w in free.weights.values())
    assert gross_free > 1.3
    limited = WIDE.model_copy(update={"leverage": 1.2})
    plan = optimize_portfolio(mu, cov, spec.model_copy(update={"constraints": limited}))
    assert sum(abs(w) for w in plan.weights.values()) == pytest.approx(1.2, abs=1e-6)
    assert min(plan.weights.values()) < 0.0  # still short something
    assert plan.sharpe is not None
    assert free.sharpe is not None
    assert plan.sharpe < free.sharpe


def test_transaction_costs_are_subtracted_and_shrink_turnover() -> None:
    mu, cov = _market()
    names = list(mu.index)
    current = {names[0]: 0.5, names[1]: 0.5}
    turnovers = []
    for rate in (0.0, 0.01, 0.05, 0.5):
        plan = optimize_portfolio(
            mu,
            cov,
            OptimizeSpec(
                objective="max_utility",
                risk_aversion=4.0,
                constraints=PortfolioConstraints(
                    current_weights=current, transaction_cost_rate=rate
                ),
            ),
        )
        assert plan.transaction_cost == pytest.approx(rate * plan.turnover, abs=1e-12)
        assert plan.net_expected_return == pytest.approx(
            plan.expected_return - plan.transaction_cost, abs=1e-12
        )
        utility = plan.net_expected_return - 2.0 * plan.volatility**2
        base = plan.baseline
        assert utility >= base.net_expected_return - 2.0 * base.volatility**2 - 1e-9
        turnovers.append(plan.turnover)
    assert turnovers[0] > turnovers[1] > turnovers[2] >= turnovers[3]
    assert turnovers[3] < 1e-6  # a 50 % cost rate makes any trade unprofitable here


def test_transaction_costs_without_current_weights_are_charged_from_cash() -> None:
    mu, cov = _market()
    plan = optimize_portfolio(
        mu,
        cov,
        OptimizeSpec(
            objective="max_sharpe", constraints=PortfolioConstraints(transaction_cost_rate=0.002)
        ),
    )
    assert plan.turnover == pytest.approx(1.0, abs=1e-8)  # long-only: sum |w - 0| = 1
    assert plan.transaction_cost == pytest.approx(0.002, abs=1e-10)


# Baseline, risk tolerance, solvers.


def test_baseline_is_equal_weight_on_the_same_inputs_and_improvement_is_the_difference() -> None:
    mu, cov = _market()
    rf = 0.01
    plan = optimize_portfolio(mu, cov, OptimizeSpec(objective="max_sharpe", risk_free_rate=rf))
    n = len(mu)
    base = plan.baseline
    assert base.name == "equal_weight"
    assert base.expected_return == pytest.approx(float(mu.mean()), abs=1e-12)
    ew_vol = math.sqrt(float(cov.to_numpy().sum())) / n
    assert base.volatility == pytest.approx(ew_vol, rel=1e-12)
    assert base.sharpe == pytest.approx((float(mu.mean()) - rf) / ew_vol, rel=1e-12)
    assert plan.sharpe is not None
    assert base.sharpe is not None
    assert plan.improvement.sharpe is not None
    assert plan.improvement.sharpe == pytest.approx(plan.sharpe - base.sharpe, abs=1e-12)
    assert plan.improvement.sharpe > 0.0
    assert plan.improvement.volatility == pytest.approx(
        plan.volatility - base.volatility, abs=1e-12
    )


def test_baseline_is_current_holdings_when_given() -> None:
    mu, cov = _market()
    names = list(mu.index)
    current = {names[0]: 0.6, names[3]: 0.4}
    plan = optimize_portfolio(
        mu,
        cov,
        OptimizeSpec(
            objective="min_variance", constraints=PortfolioConstraints(current_weights=current)
        ),
    )
    base = plan.baseline
    assert base.name == "current_holdings"
    assert base.turnover == 0.0
    w = np.array([current.get(a, 0.0) for a in names])
    assert base.volatility == pytest.approx(math.sqrt(float(w @ cov.to_numpy() @ w)), rel=1e-12)
    assert plan.turnover == pytest.approx(
        float(np.abs(_w(plan.weights, names) - w).sum()), abs=1e-9
    )


def test_baseline_that_breaks_the_constraints_is_flagged() -> None:
    mu, cov = _market()
    spec = OptimizeSpec(
        objective="min_variance",
        constraints=PortfolioConstraints(asset_bounds={"S0": (0.4, 1.0)}),
    )
    plan = optimize_portfolio(mu, cov, spec)
    assert plan.weights["S0"] >= 0.4 - 1e-8
    assert plan.baseline.meets_constraints is False
    assert any("baseline equal_weight breaks weight bounds" in note for note in plan.notes)


def test_risk_tolerance_orders_risk_and_records_the_risk_aversion_used() -> None:
    mu, cov = _market(n=8, seed=5)
    plans = {
        t: optimize_portfolio(mu, cov, OptimizeSpec(risk_tolerance=t))
        for t in ("conservative", "moderate", "aggressive")
    }
    assert (
        plans["conservative"].volatility
        < plans["moderate"].volatility
        < plans["aggressive"].volatility
    )
    assert plans["conservative"].parameters["risk_aversion"] == 20.0
    assert plans["moderate"].parameters["risk_aversion"] == 6.0
    assert plans["aggressive"].parameters["risk_aversion"] == 2.0
    default = optimize_portfolio(mu, cov, OptimizeSpec())
    assert default.weights == pytest.approx(plans["moderate"].weights, abs=1e-9)


def test_bounds_only_specs_are_solved_exactly_and_the_rest_by_osqp_or_clarabel() -> None:
    mu, cov = _market()
    specs = (
        OptimizeSpec(objective="min_variance"),
        OptimizeSpec(objective="max_sharpe"),
        OptimizeSpec(objective="target_return", target_return=0.1),
        OptimizeSpec(objective="max_utility"),
        OptimizeSpec(objective="target_risk", target_risk=0.25),
    )
    for spec in specs:
        plan = optimize_portfolio(mu, cov, spec)
        assert plan.solver == "critical_line", plan.notes
        assert plan.status == "optimal"
    capped = PortfolioConstraints(transaction_cost_rate=0.001)
    for spec in specs[:4]:
        plan = optimize_portfolio(mu, cov, spec.model_copy(update={"constraints": capped}))
        assert plan.solver in ("OSQP", "CLARABEL"), plan.notes  # CLARABEL when OSQP is rough
        assert plan.solve_seconds > 0.0
    risk = specs[4].model_copy(update={"constraints": capped})
    assert optimize_portfolio(mu, cov, risk).solver == "CLARABEL"


def test_forcing_clarabel_gives_the_same_portfolio_as_osqp() -> None:
    mu, cov = _market()
    a = optimize_portfolio(mu, cov, OptimizeSpec(objective="max_sharpe"))
    b = optimize_portfolio(mu, cov, OptimizeSpec(objective="max_sharpe", solver="CLARABEL"))
    assert b.solver == "CLARABEL"
    assert a.weights == pytest.approx(b.weights, abs=1e-6)


def test_plain_arrays_get_positional_asset_names() -> None:
    mu, cov = _market(n=3)
    plan = optimize_portfolio(mu.to_numpy(), cov.to_numpy(), OptimizeSpec(objective="min_variance"))
    assert list(plan.weights) == ["A0", "A1", "A2"]


def test_covariance_frame_is_aligned_to_mu_by_name() -> None:
    mu, cov = _market()
    shuffled = cov.iloc[::-1, ::-1]
    a = optimize_portfolio(mu, cov, OptimizeSpec(objective="min_variance"))
    b = optimize_portfolio(mu, shuffled, OptimizeSpec(objective="min_variance"))
    assert a.weights == pytest.approx(b.weights, abs=1e-9)


# Errors.


@pytest.mark.parametrize(
    ("mu", "cov", "message"),
    [
        (pd.DataFrame([[0.1, 0.2]]), np.eye(2), "got a DataFrame"),
        (np.array([[0.1, 0.2]]), np.eye(2), "must be 1-D"),
        (np.array([0.1]), np.eye(1), "at least 2 assets"),
        (np.array([0.1, 0.2]), np.eye(3), "must be 2 x 2"),
        (np.array([0.1, np.nan]), np.eye(2), "non-finite values"),
        (np.array([0.1, 0.2]), np.array([[1.0, np.inf], [np.inf, 1.0]]), "non-finite"),
        (np.array([0.1, 0.2]), np.array([[1.0, 0.5], [0.2, 1.0]]), "not symmetric"),
        (np.array([0.1, 0.2]), np.array([[1.0, 2.0], [2.0, 1.0]]), "not positive semidefinite"),
        (np.array(["a", "b"]), np.eye(2), "numeric"),
        (
            pd.Series([0.1, 0.2], index=["X", "Y"]),
            pd.DataFrame(np.eye(2), index=["X", "Z"], columns=["X", "Z"]),
            "mu and cov name different assets",
        ),
        (
            pd.Series([0.1, 0.2], index=["X", "X"]),
            np.eye(2),
            "unique",
        ),
    ],
)
def test_bad_mean_or_covariance_raises_invalid_data(mu: Any, cov: Any, message: str) -> None:
    with pytest.raises(InvalidDataError, match=message):
        as_mean_cov(mu, cov)


def test_plain_arrays_with_names_give_the_same_plan_as_pandas() -> None:
    mu, cov = _market()
    spec = OptimizeSpec(objective="max_sharpe")
    framed = optimize_portfolio(mu, cov, spec)
    plain = optimize_portfolio(mu.to_numpy(), cov.to_numpy(), spec, names=list(mu.index))
    assert plain.weights == framed.weights
    assert plain.sharpe == framed.sharpe


@pytest.mark.parametrize(
    ("mu", "names", "message"),
    [
        (np.array([0.1, 0.2]), ["X"], "1 asset names for 2 expected returns"),
        (pd.Series([0.1, 0.2], index=["X", "Y"]), ["X", "Y"], "plain arrays only"),
        (np.array([0.1, 0.2]), ["X", "X"], "unique"),
    ],
)
def test_bad_asset_names_raise_invalid_data(mu: Any, names: list[str], message: str) -> None:
    with pytest.raises(InvalidDataError, match=message):
        as_mean_cov(mu, np.eye(2), names=names)


@pytest.mark.parametrize(
    ("constraints", "message"),
    [
        ({"asset_bounds": {"NOPE": (0.0, 0.5)}}, "asset_bounds names assets that are not in mu"),
        ({"asset_bounds": {"S0": (0.5, 0.2)}}, "min > max for \\['S0'\\]"),
        ({"weight_bounds": (-0.2, 1.0)}, "long_only is true"),
        ({"sectors": {"NOPE": "x"}}, "sectors names assets that are not in mu"),
        ({"sectors": {"S0": "x"}, "sector_limits": {"y": (0.0, 0.5)}}, "no asset belongs to"),
        ({"sectors": {"S0": "x"}, "sector_limits": {"x": (0.5, 0.2)}}, "min 0.5 > max 0.2"),
        ({"current_weights": {"NOPE": 1.0}}, "current_weights names assets"),
        ({"current_weights": {"S0": 0.5}}, "current_weights sum to 0.5"),
        ({"max_turnover": 0.2}, "needs|give current_weights"),
    ],
)
def test_contradictory_constraints_raise_invalid_spec(
    constraints: dict[str, Any], message: str
) -> None:
    mu, cov = _market()
    spec = OptimizeSpec(objective="min_variance", constraints=PortfolioConstraints(**constraints))
    with pytest.raises(InvalidSpecError, match=message):
        optimize_portfolio(mu, cov, spec)


@pytest.mark.parametrize(
    ("constraints", "message"),
    [
        ({"weight_bounds": (0.2, 1.0)}, r"weight bounds: the minimum weights sum to 1\.2 > 1"),
        ({"weight_bounds": (0.0, 0.1)}, r"weight bounds: the maximum weights sum to 0\.6 < 1"),
        ({"long_only": False, "leverage": 0.8}, "leverage 0.8 < 1"),
        (
            {
                "weight_bounds": (0.0, 0.1),
                "asset_bounds": {"S0": (0.0, 1.0)},
                "sectors": {"S0": "a"},
                "sector_limits": {"a": (0.0, 0.3)},
            },
            "allow at most 0.8 < 1",
        ),
        (
            {
                "weight_bounds": (0.0, 0.2),
                "sectors": {"S0": "a", "S1": "a"},
                "sector_limits": {"a": (0.5, 1.0)},
            },
            r"sector_limits\['a'\]: minimum 0.5 exceeds 0.4",
        ),
        (
            {
                "asset_bounds": {"S0": (0.3, 1.0), "S1": (0.3, 1.0)},
                "sectors": {"S0": "a", "S1": "a"},
                "sector_limits": {"a": (0.0, 0.5)},
            },
            r"sector_limits\['a'\]: maximum 0.5 is below 0.6",
        ),
        (
            {
                "long_only": False,
                "weight_bounds": (-1.0, 1.0),
                "asset_bounds": {"S0": (-0.6, -0.5)},
                "leverage": 1.5,
            },
            "leverage 1.5 is below 2, the smallest gross exposure",
        ),
        (
            {"weight_bounds": (0.0, 0.2), "current_weights": {"S0": 1.0}, "max_turnover": 0.5},
            "max_turnover 0.5 is below 1.6, the smallest turnover",
        ),
    ],
)
def test_infeasible_constraints_raise_naming_the_constraint(
    constraints: dict[str, Any], message: str
) -> None:
    mu, cov = _market()
    spec = OptimizeSpec(objective="max_sharpe", constraints=PortfolioConstraints(**constraints))
    with pytest.raises(InfeasiblePortfolioError, match=message):
        optimize_portfolio(mu, cov, spec)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"objective": "target_return"}, "needs target_return"),
        ({"objective": "target_risk"}, "needs target_risk"),
        (
            {"objective": "min_variance", "target_return": 0.1},
            "target_return is not used by objective 'min_variance'",
        ),
        ({"objective": "max_sharpe", "target_risk": 0.1}, "target_risk is not used"),
        ({"objective": "max_sharpe", "risk_tolerance": "moderate"}, "risk_tolerance is not used"),
        ({"objective": "min_variance", "risk_aversion": 2.0}, "risk_aversion is not used"),
        ({"risk_aversion": 2.0, "risk_tolerance": "moderate"}, "not both"),
        (
            {"objective": "target_risk", "target_risk": 0.2, "solver": "OSQP"},
            "OSQP solves quadratic programs only",
        ),
    ],
)
def test_missing_or_unused_objective_parameters_raise_invalid_spec(
    fields: dict[str, Any], message: str
) -> None:
    mu, cov = _market()
    with pytest.raises(InvalidSpecError, match=message):
        optimize_portfolio(mu, cov, OptimizeSpec(**fields))


def _numbers(message: str) -> list[float]:
    return [float(x) for x in re.findall(r"-?\d+\.\d+(?:e-?\d+)?", message)]


def test_target_return_above_the_maximum_names_the_achievable_range() -> None:
    mu, cov = _market()
    with pytest.raises(InfeasiblePortfolioError, match=r"target_return 0\.5 is above") as info:
        optimize_portfolio(mu, cov, OptimizeSpec(objective="target_return", target_return=0.5))
    mv = optimize_portfolio(mu, cov, OptimizeSpec(objective="min_variance"))
    numbers = _numbers(str(info.value))
    assert numbers[1] == pytest.approx(float(mu.max()), rel=1e-5)  # long-only top: best asset
    assert numbers[2] == pytest.approx(mv.net_expected_return, rel=1e-5)


def test_target_below_the_minimum_variance_return_gives_the_minimum_variance_portfolio() -> None:
    mu, cov = _market()
    mv = optimize_portfolio(mu, cov, OptimizeSpec(objective="min_variance"))
    low = optimize_portfolio(mu, cov, OptimizeSpec(objective="target_return", target_return=0.0))
    assert low.volatility == pytest.approx(mv.volatility, rel=1e-7)


def test_target_risk_below_the_minimum_volatility_names_the_lowest_achievable() -> None:
    mu, cov = _market()
    mv = optimize_portfolio(mu, cov, OptimizeSpec(objective="min_variance"))
    with pytest.raises(InfeasiblePortfolioError, match=r"target_risk 0\.01 is below") as info:
        optimize_portfolio(mu, cov, OptimizeSpec(objective="target_risk", target_risk=0.01))
    assert _numbers(str(info.value))[1] == pytest.approx(mv.volatility, rel=1e-5)


def test_max_sharpe_without_any_return_above_the_risk_free_rate_says_so() -> None:
    mu, cov = _market()
    with pytest.raises(InfeasiblePortfolioError, match="no asset's does"):
        optimize_portfolio(mu, cov, OptimizeSpec(objective="max_sharpe", risk_free_rate=0.5))


def test_max_sharpe_long_short_without_positive_excess_return_says_so() -> None:
    _, cov = _market()
    mu = pd.Series(0.01, index=cov.index)  # every portfolio returns 0.01 < rf
    spec = OptimizeSpec(objective="max_sharpe", risk_free_rate=0.02, constraints=WIDE)
    with pytest.raises(InfeasiblePortfolioError, match="exceeds the risk-free rate"):
        optimize_portfolio(mu, cov, spec)


# Published reference figures.

PYPFOPT_CSV = Path("portfolio/prices/pypfopt_stock_prices_1989_2018.csv")
SP500_CSV = Path("portfolio/prices/sp500_20assets_1990_2022.csv")


def _pypfopt_inputs(data_dir: Path) -> tuple[pd.Series, pd.DataFrame]:
    from nqba.finance.estimators import covariance, expected_returns

    prices = pd.read_csv(data_dir / PYPFOPT_CSV, index_col=0, parse_dates=True)
    return expected_returns(prices, "cagr"), covariance(prices, "sample")


@pytest.mark.realdata
@pytest.mark.parametrize(
    ("fields", "published"),
    [
        (
            {"objective": "min_variance"},
            (0.15056821399482578, 0.15915084514118694, 0.8204054077060996),
        ),
        (
            {"objective": "max_sharpe"},
            (0.3047768672819914, 0.22165566922402932, 1.2847714127003216),
        ),
        (
            {"objective": "target_risk", "target_risk": 0.19},
            (0.2552422849133517, 0.19, 1.2381172871434818),
        ),
        (
            {"objective": "target_return", "target_return": 0.25},
            (0.25, 0.18723269942026335, 1.2284179030274036),
        ),
    ],
)
def test_reproduces_pypfopt_published_performance(
    data_dir: Path, fields: dict[str, Any], published: tuple[float, float, float]
) -> None:
    mu, cov = _pypfopt_inputs(data_dir)
    plan = optimize_portfolio(mu, cov, OptimizeSpec(risk_free_rate=0.02, **fields))
    assert plan.expected_return == pytest.approx(published[0], abs=1e-5)
    assert plan.volatility == pytest.approx(published[1], abs=1e-5)
    assert plan.sharpe == pytest.approx(published[2], abs=1e-5)


@pytest.mark.realdata
def test_reproduces_pypfopt_readme_max_sharpe_weights(data_dir: Path) -> None:
    mu, cov = _pypfopt_inputs(data_dir)
    plan = optimize_portfolio(mu, cov, OptimizeSpec(objective="max_sharpe", risk_free_rate=0.02))
    readme = {
        "MA": 0.35349,
        "FB": 0.20603,
        "PFE": 0.1957,
        "BABA": 0.07315,
        "AAPL": 0.0689,
        "AMZN": 0.04033,
        "GOOG": 0.03835,
        "BBY": 0.01324,
        "SBUX": 0.01082,
    }
    for asset, weight in plan.weights.items():
        assert weight == pytest.approx(readme.get(asset, 0.0), abs=1e-4), asset


@pytest.mark.realdata
def test_reproduces_skfolio_min_variance_and_max_sharpe_on_sp500(data_dir: Path) -> None:
    from nqba.finance.estimators import covariance, expected_returns

    prices = pd.read_csv(data_dir / SP500_CSV, index_col=0, parse_dates=True)
    mu, cov = expected_returns(prices, "arithmetic"), covariance(prices, "sample")
    # README: skfolio 1.12.2, weights printed to 4 decimals.
    min_var = {
        "JNJ": 0.1979,
        "PG": 0.1658,
        "KO": 0.1208,
        "WMT": 0.1157,
        "PEP": 0.1137,
        "XOM": 0.0892,
        "CVX": 0.0716,
        "LLY": 0.0300,
        "AAPL": 0.0260,
        "MRK": 0.0211,
        "PFE": 0.0118,
        "MSFT": 0.0100,
        "RRC": 0.0099,
        "UNH": 0.0097,
        "BBY": 0.0069,
    }
    max_sharpe = {
        "UNH": 0.2149,
        "MSFT": 0.1369,
        "JNJ": 0.1252,
        "PG": 0.1043,
        "AAPL": 0.1015,
        "BBY": 0.0988,
        "PEP": 0.0695,
        "HD": 0.0550,
        "RRC": 0.0525,
        "LLY": 0.0397,
        "AMD": 0.0009,
        "WMT": 0.0007,
    }
    for objective, weights, stats in (
        ("min_variance", min_var, (0.146505, 0.159804, 0.916783)),
        ("max_sharpe", max_sharpe, (0.229926, 0.199724, 1.151219)),
    ):
        plan = optimize_portfolio(mu, cov, OptimizeSpec(objective=objective))  # type: ignore[arg-type]
        for asset, weight in plan.weights.items():
            assert weight == pytest.approx(weights.get(asset, 0.0), abs=1e-4), (objective, asset)
        assert plan.expected_return == pytest.approx(stats[0], abs=5e-6)
        assert plan.volatility == pytest.approx(stats[1], abs=5e-6)
        assert plan.sharpe == pytest.approx(stats[2], abs=1e-5)
