"""Raw models for the engine: ``POST /api/v1/engine/solve``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from nqba.api.decide import IdempotencyKey, answer, decision_responses
from nqba.api.deps import ServicesDep
from nqba.api.security import require
from nqba.authz import Permission, Principal
from nqba.decisions.engine import DECISION_KINDS, EngineSolveRequest

router = APIRouter(tags=["engine"])
_SOLVE = DECISION_KINDS[0]
EngineDecider = Annotated[Principal, Depends(require(Permission.ENGINE_DECIDE))]


@router.post(
    "/api/v1/engine/solve",
    responses=decision_responses(_SOLVE),
    response_class=JSONResponse,
    summary="Solve a BQM (dimod JSON), a G-set graph or a QUBO",
)
def engine_solve(
    body: EngineSolveRequest,
    request: Request,
    response: Response,
    services: ServicesDep,
    principal: EngineDecider,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Small models are solved inline (200); large ones or long time limits become a job (202)."""
    return answer(
        services,
        principal,
        _SOLVE,
        body,
        path=request.url.path,
        idempotency_key=idempotency_key,
        response=response,
    )
