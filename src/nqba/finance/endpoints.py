"""Goliath Trade (finance) endpoints: one route per decision kind of the unit."""

from __future__ import annotations

from fastapi import APIRouter

from nqba.api.decide import add_decision_route
from nqba.finance.service import DECISION_KINDS

router = APIRouter(prefix="/api/v1/goliath", tags=["goliath"])
_KINDS = {k.kind: k for k in DECISION_KINDS}

add_decision_route(
    router,
    "/portfolio-optimization",
    _KINDS["portfolio-optimization"],
    summary="Optimize a portfolio (mean-variance) against its equal-weight or current baseline",
    description="Weights, expected return, volatility, Sharpe and the measured baseline.",
)
add_decision_route(
    router,
    "/efficient-frontier",
    _KINDS["efficient-frontier"],
    summary="The efficient frontier under the given constraints",
    description="Lowest volatility for each target return, minimum variance to highest return.",
)
add_decision_route(
    router,
    "/portfolio-selection",
    _KINDS["portfolio-selection"],
    summary="Hold exactly k assets: the engine selects, branch and bound proves",
    description="A cardinality-constrained portfolio with its optimality gap and the "
    "engine-only baseline.",
)
