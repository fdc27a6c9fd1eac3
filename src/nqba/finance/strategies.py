"""Backtest strategies built from an optimization spec: estimate on the window, then optimize."""

from __future__ import annotations

import pandas as pd

from nqba.finance.backtest import Strategy
from nqba.finance.estimators import CovarianceMethod, ReturnMethod, covariance, expected_returns
from nqba.finance.optimize import optimize_portfolio
from nqba.finance.schemas import OptimizeSpec


def optimizer_strategy(
    spec: OptimizeSpec,
    *,
    returns_method: ReturnMethod = "arithmetic",
    covariance_method: CovarianceMethod = "ledoit_wolf",
    periods_per_year: int = 252,
) -> Strategy:
    """A strategy that re-estimates mu and cov on each trailing window and optimizes ``spec``.

    Defaults favour stable estimates on short windows: the arithmetic mean and Ledoit-Wolf
    shrinkage (sample covariance of a one-year window of 20+ assets is noisy).
    """

    def strategy(window: pd.DataFrame) -> pd.Series:
        mu = expected_returns(window, returns_method, periods_per_year=periods_per_year)
        cov = covariance(window, covariance_method, periods_per_year=periods_per_year)
        plan = optimize_portfolio(mu, cov, spec)
        return plan.weights_series().reindex(window.columns).fillna(0.0)

    return strategy
