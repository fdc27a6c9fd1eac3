"""Raw models for the engine: ``POST /api/v1/engine/solve``."""

from __future__ import annotations

from fastapi import APIRouter

from nqba.api.decide import add_decision_route
from nqba.decisions.engine import DECISION_KINDS

router = APIRouter(tags=["engine"])
add_decision_route(
    router,
    "/api/v1/engine/solve",
    DECISION_KINDS[0],
    summary="Solve a BQM (dimod JSON), a G-set graph or a QUBO",
    description="Small models are solved inline (200); large ones or long time limits become "
    "a job (202).",
)
