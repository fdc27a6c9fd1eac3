"""Request and response bodies of portfolio optimization (pydantic v2, shared with the API).

Field ranges are checked here (pydantic raises ``ValidationError``). Checks that need the
asset list or compare several fields (unknown assets, bounds that cannot sum to 1, a target
the constraints cannot reach) happen in :func:`nqba.finance.optimize.optimize_portfolio`,
which raises :class:`~nqba.finance.errors.InvalidSpecError` or
:class:`~nqba.finance.errors.InfeasiblePortfolioError`.

Units: expected returns, volatilities, ``target_return``, ``target_risk`` and
``risk_free_rate`` are in the units of the ``mu``/``cov`` given to the optimizer (annualised
when those are annualised). Weights are fractions of portfolio value; a fully invested
portfolio's weights sum to 1.
"""

from __future__ import annotations

from typing import Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

Objective = Literal["min_variance", "max_sharpe", "target_return", "target_risk", "max_utility"]
RiskTolerance = Literal["conservative", "moderate", "aggressive"]
SolverChoice = Literal["auto", "CLARABEL", "OSQP", "SCS"]
FrontierMethod = Literal["parametric", "exact", "auto"]

RISK_AVERSION_BY_TOLERANCE: dict[str, float] = {
    "conservative": 20.0,
    "moderate": 6.0,
    "aggressive": 2.0,
}
"""Risk aversion (delta in mu'w - delta/2 w'Sw) used by ``max_utility`` for each tolerance.

Meant for annualised mu and cov. On the two 20-stock daily price sets in the shared data,
long-only, delta = 20 lands close to the minimum-variance portfolio, delta = 6 close to the
maximum-Sharpe portfolio and delta = 2 well above it in volatility.
"""

DEFAULT_RISK_TOLERANCE: RiskTolerance = "moderate"


class _Strict(BaseModel):
    """Base: unknown fields and non-finite numbers are rejected."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class PortfolioConstraints(_Strict):
    """What a portfolio must satisfy besides being fully invested (weights sum to 1)."""

    weight_bounds: tuple[float, float] | None = Field(
        default=None,
        description=(
            "(min, max) weight of every asset. Default (0, 1) when long_only, (-1, 1) otherwise."
        ),
    )
    asset_bounds: dict[str, tuple[float, float]] = Field(
        default_factory=dict,
        description="Per-asset (min, max) weights; they replace weight_bounds for those assets.",
    )
    long_only: bool = Field(
        default=True, description="No short positions; every minimum weight must be >= 0."
    )
    leverage: float | None = Field(
        default=None,
        gt=0,
        description="Largest gross exposure sum(|w|); at least 1 for a fully invested portfolio.",
    )
    sectors: dict[str, str] = Field(
        default_factory=dict,
        description="Asset -> sector (or any group). Assets not listed belong to no sector.",
    )
    sector_limits: dict[str, tuple[float, float]] = Field(
        default_factory=dict,
        description="Sector -> (min, max) of the summed weights of its assets.",
    )
    current_weights: dict[str, float] | None = Field(
        default=None,
        description=(
            "Current holdings as weights summing to 1 (missing assets hold 0). Turnover and "
            "transaction costs are measured from them, and they are the baseline of the plan."
        ),
    )
    max_turnover: float | None = Field(
        default=None,
        ge=0,
        description="Largest sum(|w - current_weights|); needs current_weights.",
    )
    transaction_cost_rate: float = Field(
        default=0.0,
        ge=0,
        lt=1,
        description=(
            "Proportional cost per unit traded: cost = rate * sum(|w - current|), subtracted "
            "from expected return in return-seeking objectives (from all cash when no "
            "current_weights)."
        ),
    )


class OptimizeSpec(_Strict):
    """What to optimize, with which parameters and under which constraints."""

    objective: Objective = Field(
        default="max_utility",
        description=(
            "min_variance: lowest w'Sw. max_sharpe: highest (mu'w - rf)/vol. target_return: "
            "lowest variance with net return >= target_return. target_risk: highest net return "
            "with volatility <= target_risk. max_utility: highest mu'w - cost - "
            "risk_aversion/2 * w'Sw."
        ),
    )
    risk_tolerance: RiskTolerance | None = Field(
        default=None,
        description=(
            "For max_utility only, when risk_aversion is not given: "
            + ", ".join(
                f"{k} -> risk aversion {v:g}" for k, v in RISK_AVERSION_BY_TOLERANCE.items()
            )
            + " (for annualised mu and cov). Default moderate."
        ),
    )
    risk_aversion: float | None = Field(
        default=None, gt=0, description="delta of max_utility; overrides risk_tolerance."
    )
    target_return: float | None = Field(
        default=None, description="Required net expected return (objective target_return)."
    )
    target_risk: float | None = Field(
        default=None, gt=0, description="Largest volatility (objective target_risk)."
    )
    risk_free_rate: float = Field(
        default=0.0, description="Risk-free rate of the Sharpe ratios (same units as mu)."
    )
    constraints: PortfolioConstraints = Field(default_factory=PortfolioConstraints)
    solver: SolverChoice = Field(
        default="auto",
        description=(
            "auto: OSQP for the quadratic programs (falling back to CLARABEL when OSQP does not "
            "reach a polished optimum) and CLARABEL for target_risk (second-order cone)."
        ),
    )


class PortfolioPerformance(_Strict):
    """A portfolio evaluated on the optimizer's mu and cov."""

    name: str = Field(description="What the portfolio is, e.g. 'equal_weight'.")
    weights: dict[str, float]
    expected_return: float = Field(description="mu'w, before transaction costs.")
    volatility: float = Field(description="sqrt(w'Sw).")
    turnover: float = Field(description="sum(|w - current|), current = all cash if not given.")
    transaction_cost: float = Field(description="transaction_cost_rate * turnover.")
    net_expected_return: float = Field(description="expected_return - transaction_cost.")
    sharpe: float | None = Field(
        description="(net_expected_return - risk_free_rate) / volatility; None at zero volatility."
    )
    meets_constraints: bool = Field(description="Whether the portfolio satisfies the spec.")


class PlanImprovement(_Strict):
    """Plan minus baseline, computed from the two evaluations (positive = plan higher)."""

    sharpe: float | None
    net_expected_return: float
    volatility: float


class PortfolioPlan(_Strict):
    """An optimized portfolio, how it was found, and the measured baseline it is compared to."""

    objective: Objective
    weights: dict[str, float]
    expected_return: float = Field(description="mu'w, before transaction costs.")
    volatility: float
    sharpe: float | None = Field(description="(net_expected_return - risk_free_rate) / vol.")
    turnover: float
    transaction_cost: float
    net_expected_return: float
    risk_free_rate: float
    parameters: dict[str, float] = Field(
        default_factory=dict,
        description="Effective parameters of the objective (risk_aversion, targets).",
    )
    solver: str
    status: str
    solve_seconds: float = Field(description="Wall time of building and solving the program.")
    baseline: PortfolioPerformance = Field(
        description="Current holdings when given, else equal weight, on the same mu/cov."
    )
    improvement: PlanImprovement
    notes: list[str] = Field(default_factory=list)

    def weights_series(self) -> pd.Series:
        """Weights as a float Series indexed by asset name."""
        return pd.Series(self.weights, dtype=float)


class Frontier(_Strict):
    """Points of an efficient frontier: lowest volatility for each target net return."""

    assets: list[str]
    method: Literal["parametric", "exact"] = Field(description="The method that computed it.")
    target_returns: list[float]
    expected_returns: list[float] = Field(description="Net expected return of each point.")
    volatilities: list[float]
    sharpe_ratios: list[float | None]
    weights: list[list[float]] = Field(description="One row per point, columns as assets.")
    risk_free_rate: float
    solver: str
    solve_seconds: float = Field(description="Wall time of the whole frontier.")
    corner_returns: list[float] = Field(
        default_factory=list,
        description="method exact: returns of the corner portfolios, where the holdings change.",
    )
    curve_returns: list[float] = Field(
        default_factory=list,
        description="method exact: net returns densely along the whole frontier, for plotting.",
    )
    curve_volatilities: list[float] = Field(
        default_factory=list, description="method exact: volatilities matching curve_returns."
    )
    notes: list[str] = Field(default_factory=list)

    def weights_frame(self) -> pd.DataFrame:
        """Weights as a DataFrame, one row per point, one column per asset."""
        return pd.DataFrame(self.weights, columns=self.assets, dtype=float)


class MarketInputs(_Strict):
    """The market a portfolio decision is made on: expected returns and covariance, or prices.

    Give ``expected_returns`` and ``covariance`` (annualised, in the order of ``assets``), or
    ``prices`` (one row per period, one column per asset, oldest first; ``null`` for a
    missing price) from which they are estimated.
    """

    assets: list[str] = Field(min_length=2, max_length=5000, examples=[["AAPL", "MSFT", "XOM"]])
    expected_returns: list[float] | None = Field(
        default=None,
        description="Annualised expected return of each asset.",
        examples=[[0.12, 0.10, 0.07]],
    )
    covariance: list[list[float]] | None = Field(
        default=None,
        description="Annualised covariance matrix, rows and columns in the order of assets.",
        examples=[[[0.04, 0.01, 0.0], [0.01, 0.03, 0.0], [0.0, 0.0, 0.02]]],
    )
    prices: list[list[float | None]] | None = Field(
        default=None,
        description="Prices: one row per period (oldest first), one column per asset.",
    )
    dates: list[str] | None = Field(
        default=None, description="ISO date of each row of prices (default: 0, 1, 2, ...)."
    )
    returns_method: Literal["arithmetic", "cagr", "ewma"] = "arithmetic"
    covariance_method: Literal["sample", "ledoit_wolf"] = "ledoit_wolf"
    periods_per_year: int = Field(default=252, ge=1, le=366)


class PortfolioOptimizationRequest(_Strict):
    """Body of ``POST /api/v1/goliath/portfolio-optimization``."""

    market: MarketInputs
    spec: OptimizeSpec = Field(default_factory=OptimizeSpec)


class FrontierRequest(_Strict):
    """Body of ``POST /api/v1/goliath/efficient-frontier``."""

    market: MarketInputs
    spec: OptimizeSpec = Field(
        default_factory=OptimizeSpec,
        description="Constraints, risk-free rate and solver (the objective is not used).",
    )
    n_points: int = Field(default=50, ge=2, le=1000)
    method: FrontierMethod = "auto"


class PortfolioSelectionRequest(_Strict):
    """Body of ``POST /api/v1/goliath/portfolio-selection``: hold exactly (or at most) k assets.

    Minimises ``risk_weight * variance - (1 - risk_weight) * expected_return`` (the Chang et
    al. model) with the engine choosing the assets and a branch and bound proving the result.
    """

    market: MarketInputs
    k: int = Field(ge=1, description="Number of assets to hold.")
    risk_weight: float = Field(default=0.5, ge=0, le=1)
    min_weight: float = Field(default=0.01, ge=0, le=1)
    max_weight: float = Field(default=1.0, gt=0, le=1)
    exact_k: bool = Field(default=True, description="Exactly k assets (else at most k).")
    time_limit: float | None = Field(
        default=None, gt=0, le=3600, description="Seconds for the whole decision."
    )
    seed: int | None = Field(default=None, ge=0, le=2**32 - 1)


class SelectionResult(_Strict):
    """A cardinality-constrained portfolio, its proof status and the engine-only baseline."""

    weights: dict[str, float]
    support: list[str]
    objective: float
    expected_return: float
    variance: float
    lower_bound: float | None
    gap: float | None
    relative_gap: float | None
    proven_optimal: bool
    bound_method: str
    method: str
    k: int
    risk_weight: float
    baseline: dict[str, float | list[str] | str | None] = Field(
        description="The engine's own selection on the same inputs, before local search."
    )
    timings: dict[str, float]
    notes: list[str]
