"""Goliath Trade (finance) endpoints: thin wrappers over the unit's decision kinds."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from nqba.api.decide import IdempotencyKey, answer, decision_responses
from nqba.api.deps import ServicesDep
from nqba.api.security import require
from nqba.authz import Permission, Principal
from nqba.finance.schemas import (
    FrontierRequest,
    PortfolioOptimizationRequest,
    PortfolioSelectionRequest,
)
from nqba.finance.service import DECISION_KINDS

router = APIRouter(prefix="/api/v1/goliath", tags=["goliath"])
_KINDS = {k.kind: k for k in DECISION_KINDS}
FinanceDecider = Annotated[Principal, Depends(require(Permission.FINANCE_DECIDE))]


@router.post(
    "/portfolio-optimization",
    responses=decision_responses(_KINDS["portfolio-optimization"]),
    response_class=JSONResponse,
    summary="Optimize a portfolio (mean-variance) against its equal-weight or current baseline",
)
def portfolio_optimization(
    body: PortfolioOptimizationRequest,
    request: Request,
    response: Response,
    services: ServicesDep,
    principal: FinanceDecider,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Weights, expected return, volatility, Sharpe and the measured baseline."""
    kind = _KINDS["portfolio-optimization"]
    return answer(
        services,
        principal,
        kind,
        body,
        path=request.url.path,
        idempotency_key=idempotency_key,
        response=response,
    )


@router.post(
    "/efficient-frontier",
    responses=decision_responses(_KINDS["efficient-frontier"]),
    response_class=JSONResponse,
    summary="The efficient frontier under the given constraints",
)
def efficient_frontier(
    body: FrontierRequest,
    request: Request,
    response: Response,
    services: ServicesDep,
    principal: FinanceDecider,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Lowest volatility for each target return, minimum variance to highest return."""
    kind = _KINDS["efficient-frontier"]
    return answer(
        services,
        principal,
        kind,
        body,
        path=request.url.path,
        idempotency_key=idempotency_key,
        response=response,
    )


@router.post(
    "/portfolio-selection",
    responses=decision_responses(_KINDS["portfolio-selection"]),
    response_class=JSONResponse,
    summary="Hold exactly k assets: the engine selects, branch and bound proves",
)
def portfolio_selection(
    body: PortfolioSelectionRequest,
    request: Request,
    response: Response,
    services: ServicesDep,
    principal: FinanceDecider,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """A cardinality-constrained portfolio with its optimality gap and the engine-only baseline."""
    kind = _KINDS["portfolio-selection"]
    return answer(
        services,
        principal,
        kind,
        body,
        path=request.url.path,
        idempotency_key=idempotency_key,
        response=response,
    )
