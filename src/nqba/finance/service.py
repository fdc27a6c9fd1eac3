"""The finance unit's decisions: request bodies in, business results and baselines out.

Each function turns a validated request into an :class:`~nqba.decisions.registry.Outcome`;
the platform records it, audits it and answers. Nothing here knows HTTP or SQL.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from nqba.decisions.registry import DecisionKind, Outcome, Progress
from nqba.finance.errors import InvalidDataError
from nqba.finance.schemas import (
    Frontier,
    FrontierRequest,
    MarketInputs,
    PortfolioOptimizationRequest,
    PortfolioPlan,
    PortfolioSelectionRequest,
    SelectionResult,
)

MODEL_VERSION = "finance/1"


@dataclass
class Market:
    """Expected returns and covariance ready for the optimizers, and how they were obtained.

    Arrays in the order of ``names``: the inline decision path needs no pandas objects.
    """

    names: list[str]
    mu: np.ndarray
    cov: np.ndarray
    notes: list[str] = field(default_factory=list)

    def frames(self) -> tuple[pd.Series, pd.DataFrame]:
        """mu and cov as a pandas Series and DataFrame indexed by asset name."""
        return (
            pd.Series(self.mu, index=self.names, dtype=float),
            pd.DataFrame(self.cov, index=self.names, columns=self.names, dtype=float),
        )


def market_moments(market: MarketInputs) -> Market:
    """mu and cov from the request: given directly, or estimated from its prices."""
    names = market.assets
    if len(set(names)) != len(names):
        raise InvalidDataError("market.assets must be unique")
    direct = market.expected_returns is not None or market.covariance is not None
    if direct and market.prices is not None:
        raise InvalidDataError("give either expected_returns with covariance, or prices; not both")
    if direct:
        if market.expected_returns is None or market.covariance is None:
            raise InvalidDataError("expected_returns and covariance must be given together")
        n = len(names)
        if len(market.expected_returns) != n:
            raise InvalidDataError(
                f"expected_returns has {len(market.expected_returns)} values for {n} assets"
            )
        if len(market.covariance) != n or any(len(row) != n for row in market.covariance):
            raise InvalidDataError(f"covariance must be {n} x {n}, one row per asset")
        try:
            mu = np.array(market.expected_returns, dtype=float)
            cov = np.array(market.covariance, dtype=float)
        except (TypeError, ValueError) as e:
            raise InvalidDataError(f"expected_returns and covariance must be numeric: {e}") from e
        return Market(list(names), mu, cov)
    if market.prices is None:
        raise InvalidDataError("give expected_returns with covariance, or prices")
    return _estimate(market)


def _estimate(market: MarketInputs) -> Market:
    from nqba.finance.data import load_prices
    from nqba.finance.estimators import NonPsdCovarianceWarning, covariance, expected_returns

    assert market.prices is not None
    n = len(market.assets)
    bad = [i for i, row in enumerate(market.prices) if len(row) != n]
    if bad:
        raise InvalidDataError(
            f"prices row {bad[0]} has {len(market.prices[bad[0]])} values for {n} assets"
        )
    if market.dates is not None and len(market.dates) != len(market.prices):
        raise InvalidDataError(
            f"dates has {len(market.dates)} entries for {len(market.prices)} rows of prices"
        )
    try:
        index = pd.DatetimeIndex(pd.to_datetime(market.dates)) if market.dates else None
    except (ValueError, TypeError) as e:
        raise InvalidDataError(f"dates must be ISO dates: {e}") from None
    if index is None:
        index = pd.date_range("2000-01-03", periods=len(market.prices), freq="B")
    frame = pd.DataFrame(
        np.array([[np.nan if v is None else v for v in row] for row in market.prices], dtype=float)
        if market.prices
        else np.empty((0, n)),
        index=index,
        columns=market.assets,
    )
    loaded = load_prices(frame)
    notes = list(loaded.notes) + [f"{a} dropped: {why}" for a, why in loaded.dropped_assets.items()]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", NonPsdCovarianceWarning)
        mu = expected_returns(
            loaded.prices, market.returns_method, periods_per_year=market.periods_per_year
        )
        cov = covariance(
            loaded.prices, market.covariance_method, periods_per_year=market.periods_per_year
        )
    notes += [str(w.message) for w in caught if issubclass(w.category, NonPsdCovarianceWarning)]
    assert isinstance(cov, pd.DataFrame)
    names = [str(a) for a in mu.index]
    aligned = cov.loc[mu.index, mu.index]
    return Market(names, mu.to_numpy(dtype=float), aligned.to_numpy(dtype=float), notes)


def optimize(request: PortfolioOptimizationRequest, progress: Progress) -> Outcome:
    """Mean-variance optimization under the spec's objective and constraints."""
    from nqba.finance.optimize import optimize_portfolio

    start = time.perf_counter()
    market = market_moments(request.market)
    progress(0.2, "market moments ready")
    plan: PortfolioPlan = optimize_portfolio(
        market.mu, market.cov, request.spec, names=market.names
    )
    if market.notes:
        plan = plan.model_copy(update={"notes": market.notes + plan.notes})
    total = time.perf_counter() - start
    outputs = plan.model_dump(mode="json")
    return Outcome(
        outputs=outputs,
        solver=plan.solver,
        objective=_objective_value(plan),
        baseline=dict(outputs["baseline"]),
        timings={"solve_s": plan.solve_seconds, "total_s": total},
    )


def _objective_value(plan: PortfolioPlan) -> float | None:
    """The figure the objective optimises (volatility for the risk-minimising ones)."""
    if plan.objective in ("min_variance", "target_return"):
        return plan.volatility
    if plan.objective == "max_sharpe":
        return plan.sharpe
    if plan.objective == "target_risk":
        return plan.net_expected_return
    aversion = plan.parameters.get("risk_aversion")
    if aversion is None:
        return None
    return plan.net_expected_return - aversion / 2 * plan.volatility**2


def frontier(request: FrontierRequest, progress: Progress) -> Outcome:
    """The efficient frontier under the spec's constraints."""
    from nqba.finance.frontier import efficient_frontier

    start = time.perf_counter()
    market = market_moments(request.market)
    progress(0.2, "market moments ready")
    mu, cov = market.frames()
    result: Frontier = efficient_frontier(
        mu, cov, request.spec, n_points=request.n_points, method=request.method
    )
    if market.notes:
        result = result.model_copy(update={"notes": market.notes + result.notes})
    total = time.perf_counter() - start
    return Outcome(
        outputs=result.model_dump(mode="json"),
        solver=result.solver,
        objective=None,
        baseline=None,
        timings={"solve_s": result.solve_seconds, "total_s": total},
    )


def select(request: PortfolioSelectionRequest, progress: Progress) -> Outcome:
    """Hold exactly (or at most) k assets: the engine selects, branch and bound proves."""
    from nqba.finance.cardinality import optimize_cardinality

    start = time.perf_counter()
    market = market_moments(request.market)
    progress(0.1, "market moments ready")
    mu, cov = market.frames()
    plan = optimize_cardinality(
        mu,
        cov,
        request.k,
        risk_weight=request.risk_weight,
        min_weight=request.min_weight,
        max_weight=request.max_weight,
        exact_k=request.exact_k,
        time_limit=request.time_limit,
        seed=request.seed,
    )
    baseline: dict[str, Any] = {
        "support": plan.baseline.support,
        "objective": plan.baseline.objective,
        "equal_weight_objective": plan.baseline.equal_weight_objective,
        "solver": plan.baseline.solver,
        "seconds": plan.baseline.seconds,
    }
    result = SelectionResult(
        weights={str(k): float(v) for k, v in plan.weights.items()},
        support=list(plan.support),
        objective=plan.objective,
        expected_return=plan.expected_return,
        variance=plan.variance,
        lower_bound=plan.lower_bound,
        gap=plan.gap,
        relative_gap=plan.relative_gap,
        proven_optimal=plan.proven_optimal,
        bound_method=plan.bound_method,
        method=plan.method,
        k=plan.k,
        risk_weight=plan.risk_weight,
        baseline=baseline,
        timings=dict(plan.timings),
        notes=market.notes + list(plan.notes),
    )
    timings = {f"{k}": float(v) for k, v in plan.timings.items()}
    timings["total_s"] = time.perf_counter() - start
    return Outcome(
        outputs=result.model_dump(mode="json"),
        solver=f"nqba.engine:{plan.baseline.solver}+branch-and-bound",
        objective=plan.objective,
        baseline=baseline,
        timings=timings,
    )


def _num_assets(request: Any) -> int:
    return len(request.market.assets)


def _warm_up_optimization() -> None:
    """One small portfolio through the critical line, so its numba kernel is loaded."""
    from nqba.finance.cla import critical_line

    critical_line(np.array([0.1, 0.05]), np.diag([0.04, 0.01]), np.zeros(2), np.ones(2))


QUICK_MAX_ASSETS = 32
"""Largest portfolio-optimization read off the critical line on the server's event loop."""


def _quick_optimization(request: PortfolioOptimizationRequest) -> bool:
    """Given moments, the automatic solver and bounds only: the critical line on a few dozen
    assets, well under a millisecond (the cvxpy program, which a singular covariance still
    falls back to, takes a few)."""
    market, spec = request.market, request.spec
    constraints = spec.constraints
    return (
        len(market.assets) <= QUICK_MAX_ASSETS
        and market.prices is None
        and spec.solver == "auto"
        and not constraints.sectors
        and constraints.max_turnover is None
        and constraints.transaction_cost_rate == 0.0
        and (constraints.leverage is None or constraints.long_only)
    )


def _no_time_limit(request: Any) -> float | None:
    return None


_ESTIMATORS = ("nqba.finance.data", "nqba.finance.estimators")

DECISION_KINDS = [
    DecisionKind(
        unit="finance",
        kind="portfolio-optimization",
        request_model=PortfolioOptimizationRequest,
        response_model=PortfolioPlan,
        run=optimize,
        solver_modules=(*_ESTIMATORS, "nqba.finance.optimize"),
        size=_num_assets,
        requested_seconds=_no_time_limit,
        model_version=MODEL_VERSION,
        summary="Mean-variance portfolio: min variance, max Sharpe, targets or max utility.",
        quick=_quick_optimization,
        warm_up=_warm_up_optimization,
    ),
    DecisionKind(
        unit="finance",
        kind="efficient-frontier",
        request_model=FrontierRequest,
        response_model=Frontier,
        run=frontier,
        solver_modules=(*_ESTIMATORS, "nqba.finance.frontier"),
        size=_num_assets,
        requested_seconds=_no_time_limit,
        model_version=MODEL_VERSION,
        summary="The efficient frontier under the given constraints.",
    ),
    DecisionKind(
        unit="finance",
        kind="portfolio-selection",
        request_model=PortfolioSelectionRequest,
        response_model=SelectionResult,
        run=select,
        solver_modules=(*_ESTIMATORS, "nqba.finance.cardinality"),
        size=_num_assets,
        requested_seconds=lambda request: request.time_limit,
        model_version=MODEL_VERSION,
        summary="Hold exactly k assets (cardinality-constrained), selected by the engine.",
    ),
]
