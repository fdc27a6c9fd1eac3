"""Finance unit: portfolio optimization, risk assessment and trading operations (pure domain).

The public names below are imported on first use, so ``import nqba.finance.errors`` (done by
the CLI at start-up) does not load cvxpy, scikit-learn or the numba kernels.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "load_prices": "data",
    "PriceData": "data",
    "simple_returns": "data",
    "expected_returns": "estimators",
    "covariance": "estimators",
    "repair_psd": "estimators",
    "OptimizeSpec": "schemas",
    "PortfolioConstraints": "schemas",
    "PortfolioPlan": "schemas",
    "Frontier": "schemas",
    "optimize_portfolio": "optimize",
    "efficient_frontier": "frontier",
    "plot_frontier": "frontier",
    "optimize_cardinality": "cardinality",
    "cardinality_frontier": "cardinality",
    "CardinalityPlan": "cardinality",
    "read_orlib_portfolio": "orlib",
    "read_orlib_frontier": "orlib",
    "assess_risk": "risk",
    "RiskReport": "risk",
    "rebalance": "rebalance",
    "RebalancePlan": "rebalance",
    "walk_forward": "backtest",
    "BacktestResult": "backtest",
    "equal_weight_strategy": "backtest",
    "optimizer_strategy": "strategies",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'nqba.finance' has no attribute {name!r}")
    return getattr(importlib.import_module(f"nqba.finance.{module}"), name)
