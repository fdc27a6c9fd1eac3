"""Decisions: the generic decision endpoint, the list, and one decision with its proof."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy.orm import Session

from nqba.api.decide import DecisionRoute, IdempotencyKey, answer
from nqba.api.deps import ServicesDep, SessionDep
from nqba.api.errors import (
    ERROR_RESPONSES,
    ApiError,
    ForbiddenError,
    NotFoundError,
    audit_log_damaged,
)
from nqba.api.security import CurrentPrincipal
from nqba.audit.errors import AuditIntegrityError
from nqba.authz import Principal
from nqba.authz.permissions import UNITS, decide_permission, read_permission
from nqba.decisions.registry import RESERVED_UNITS
from nqba.decisions.repository import InvalidCursorError, get_decision, list_decisions
from nqba.decisions.schemas import (
    AuditProof,
    AuditRef,
    DecisionDetail,
    DecisionPage,
    DecisionResponse,
    DecisionStatus,
    DecisionSummary,
    GenericDecisionRequest,
    JobAccepted,
)
from nqba.decisions.service import DecisionInputError, lookup_kind
from nqba.services import Services
from nqba.store.models import AuditLeaf, Decision

router = APIRouter(responses=ERROR_RESPONSES)


def _readable_units(principal: Principal) -> list[str]:
    return [u for u in UNITS if principal.can(read_permission(u))]


def _summary(decision: Decision, leaf: AuditLeaf | None, job_id: str | None) -> dict[str, Any]:
    return {
        "id": decision.id,
        "unit": decision.unit,
        "kind": decision.kind,
        "status": decision.status,
        "solver": decision.solver,
        "objective": decision.objective,
        "actor_kind": decision.actor_kind,
        "actor_id": decision.actor_id,
        "created_at": decision.created_at,
        "completed_at": decision.completed_at,
        "audit": None if leaf is None else AuditRef(seq=leaf.seq, leaf_hash=leaf.leaf_hash.hex()),
        "job_id": job_id,
    }


async def decision_engine(
    body: GenericDecisionRequest,
    request: Request,
    response: Response,
    services: ServicesDep,
    principal: CurrentPrincipal,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Dispatch ``payload`` to the unit's decision ``kind``; the same as the unit's endpoint.

    Async, as every decision endpoint: ``answer`` runs quick decisions on the event loop and
    the rest in worker threads."""
    if body.unit in UNITS and not principal.can(decide_permission(body.unit)):
        raise ForbiddenError(
            f"role {principal.role.value!r} lacks the permission {body.unit}:decide"
        )
    try:
        kind = lookup_kind(body.unit, body.kind)
    except DecisionInputError as e:
        code = "unit_not_available" if body.unit in RESERVED_UNITS else e.code
        raise ApiError(e.reason, status=422, code=code) from None
    try:
        spec = kind.request_model.model_validate(body.payload)
    except ValidationError as e:
        details = [
            {"loc": ["payload", *e_["loc"]], "msg": e_["msg"], "type": e_["type"]}
            for e_ in e.errors()
        ]
        reason = "; ".join(f"{'.'.join(str(p) for p in d['loc'])}: {d['msg']}" for d in details[:5])
        raise ApiError(reason, status=422, code="invalid_request", details=details) from None
    return await answer(
        services,
        principal,
        kind,
        spec,
        path=request.scope["path"],
        idempotency_key=idempotency_key,
        response=response,
    )


router.add_api_route(
    "/api/v1/nqba/decision-engine",
    decision_engine,
    methods=["POST"],
    tags=["nqba"],
    status_code=200,
    response_model=DecisionResponse[dict[str, Any]],
    responses={202: {"model": JobAccepted, "description": "Queued as a job"}},
    summary="Make any unit's decision by name",
    route_class_override=DecisionRoute,
)


@router.get(
    "/api/v1/decisions",
    tags=["decisions"],
    response_model=DecisionPage,
    summary="List the organisation's decisions, newest first",
)
def decisions_list(
    session: SessionDep,
    principal: CurrentPrincipal,
    unit: Annotated[str | None, Query(max_length=40)] = None,
    kind: Annotated[str | None, Query(max_length=80)] = None,
    status: DecisionStatus | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> DecisionPage:
    """Decisions of the caller's organisation in the units the caller may read."""
    try:
        rows, next_cursor = list_decisions(
            session,
            principal.organisation_id,
            units=_readable_units(principal),
            unit=unit,
            kind=kind,
            status=status,
            created_after=created_after,
            created_before=created_before,
            limit=limit,
            cursor=cursor,
        )
    except InvalidCursorError as e:
        raise ApiError(str(e), status=422, code="invalid_cursor") from None
    return DecisionPage(
        items=[DecisionSummary(**_summary(*row)) for row in rows], next_cursor=next_cursor
    )


@router.get(
    "/api/v1/decisions/{decision_id}",
    tags=["decisions"],
    response_model=DecisionDetail,
    summary="One decision: inputs, outputs, solver, timings, baseline and audit proof",
)
def decision_detail(
    services: ServicesDep,
    session: SessionDep,
    principal: CurrentPrincipal,
    decision_id: Annotated[str, Path(max_length=36)],
) -> DecisionDetail:
    """The decision, with an inclusion proof of its leaf (another organisation's: 404)."""
    found = get_decision(session, principal.organisation_id, decision_id)
    if found is None or found[0].unit not in _readable_units(principal):
        raise NotFoundError(f"no decision {decision_id}")
    decision, leaf, job_id = found
    return DecisionDetail(
        **_summary(decision, leaf, job_id),
        inputs=decision.inputs,
        inputs_digest=decision.inputs_digest,
        outputs=decision.outputs,
        error=decision.error,
        baseline=decision.baseline,
        timings=decision.timings,
        model_version=decision.model_version,
        proof=None if leaf is None else _proof(services, session, leaf),
    )


def _proof(services: Services, session: Session, leaf: AuditLeaf) -> AuditProof:
    """Inclusion of ``leaf`` in the latest signed checkpoint covering it, else the whole log."""
    checkpoint = services.audit.latest_checkpoint(session)
    signed = checkpoint is not None and checkpoint.tree_size > leaf.seq
    size = checkpoint.tree_size if checkpoint is not None and signed else None
    try:
        proof = services.audit.inclusion_proof(
            session, leaf.seq, size if size is not None else services.audit.tree_size(session)
        )
    except AuditIntegrityError as e:
        raise audit_log_damaged(e) from None
    return AuditProof(
        seq=proof.seq,
        leaf_hash=proof.leaf_hash.hex(),
        tree_size=proof.tree_size,
        root_hash=proof.root_hash.hex(),
        inclusion_proof=[h.hex() for h in proof.path],
        checkpoint_signed=signed,
    )


def _reserved(unit_label: str) -> Any:
    def reserved() -> JSONResponse:
        raise ApiError(
            f"{unit_label} is reserved for a business unit that is not available on this "
            "server yet",
            status=501,
            code="unit_not_available",
        )

    return reserved


for _path, _label in (
    ("/api/v1/flyfox/{rest:path}", "FLYFOX AI (energy)"),
    ("/api/v1/sigma/{rest:path}", "Sigma Select (sales)"),
    ("/api/v1/nqba/business-assessment", "NQBA business assessment"),
):
    router.add_api_route(_path, _reserved(_label), methods=["GET", "POST"], include_in_schema=False)
