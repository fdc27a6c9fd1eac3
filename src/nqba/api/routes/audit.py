"""The audit log over HTTP: the public key, checkpoints, leaves and proofs (``audit:read``).

Roots and proofs are over the whole log, every organisation's leaves together: that is what
makes tampering with any tenant's rows visible; a root or sibling hash reveals no leaf's data.
A leaf itself (payload and proof by seq) is shown only to its own organisation; another
organisation's leaf answers 404. Sizes outside the log answer 422 with the reason.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response
from sqlalchemy.orm import Session

from nqba.api.deps import ServicesDep, SessionDep
from nqba.api.errors import (
    ERROR_RESPONSES,
    NotFoundError,
    UnprocessableError,
    audit_log_damaged,
)
from nqba.api.security import CurrentPrincipal, require
from nqba.audit.checkpoints import note_verifier_key
from nqba.audit.errors import AuditIntegrityError, AuditRangeError
from nqba.audit.log import AuditLog
from nqba.audit.schemas import (
    CheckpointResponse,
    ConsistencyProofResponse,
    InclusionProofResponse,
    LeafResponse,
    PublicKeyResponse,
    parse_payload,
)
from nqba.authz import Permission, Principal
from nqba.store.models import AuditCheckpoint, AuditLeaf
from nqba.store.session import write_transaction

router = APIRouter(prefix="/api/v1/audit", tags=["audit"], responses=ERROR_RESPONSES)

Auditor = Annotated[Principal, Depends(require(Permission.AUDIT_READ))]


def _checkpoint(log: AuditLog, row: AuditCheckpoint | None) -> CheckpointResponse | None:
    if row is None:
        return None
    return CheckpointResponse.of(row, log.signer.public_key_raw, row.created_at)


def _range(error: AuditRangeError) -> UnprocessableError:
    return UnprocessableError(str(error), code="invalid_size")


def _own_leaf(session: Session, log: AuditLog, principal: Principal, seq: int) -> AuditLeaf:
    leaf = log.leaf(session, seq)
    if leaf is None or leaf.organisation_id != principal.organisation_id:
        raise NotFoundError(f"no audit leaf {seq} in your organisation")
    return leaf


def _inclusion(session: Session, log: AuditLog, seq: int, tree_size: int) -> InclusionProofResponse:
    try:
        proof = log.inclusion_proof(session, seq, tree_size)
    except AuditRangeError as e:
        raise _range(e) from None
    except AuditIntegrityError as e:
        raise audit_log_damaged(e) from None
    return InclusionProofResponse(
        seq=proof.seq,
        tree_size=proof.tree_size,
        leaf_hash=proof.leaf_hash.hex(),
        root_hash=proof.root_hash.hex(),
        proof=[h.hex() for h in proof.path],
        checkpoint=_checkpoint(log, log.checkpoint_at(session, proof.tree_size)),
    )


@router.get("/public-key", response_model=PublicKeyResponse, summary="The checkpoint signing key")
def public_key(services: ServicesDep, principal: CurrentPrincipal) -> PublicKeyResponse:
    """The Ed25519 public key of the checkpoints (any signed-in caller may read it)."""
    signer = services.audit.signer
    return PublicKeyResponse(
        key_id=signer.key_id,
        public_key=signer.public_key_b64,
        origin=signer.origin,
        note_verifier_key=note_verifier_key(signer.origin, signer.public_key_raw),
    )


@router.get(
    "/checkpoints/latest", response_model=CheckpointResponse, summary="The latest checkpoint"
)
def latest_checkpoint(
    services: ServicesDep, session: SessionDep, principal: Auditor
) -> CheckpointResponse:
    """The signed checkpoint of the largest tree; 404 before the first is signed."""
    response = _checkpoint(services.audit, services.audit.latest_checkpoint(session))
    if response is None:
        raise NotFoundError("no checkpoint has been signed yet; POST /api/v1/audit/checkpoints")
    return response


@router.post(
    "/checkpoints",
    response_model=CheckpointResponse,
    status_code=201,
    summary="Sign a checkpoint now",
    responses={200: {"model": CheckpointResponse, "description": "The size had not changed"}},
)
def sign_checkpoint(
    services: ServicesDep, principal: Auditor, response: Response
) -> CheckpointResponse:
    """Sign a checkpoint of the current size (201); 200 with the latest if nothing was added."""
    log = services.audit
    try:
        with write_transaction(services.session_factory) as session:
            before = log.latest_checkpoint(session)
            row = log.checkpoint(session)
            created = before is None or before.tree_size != row.tree_size
            body = CheckpointResponse.of(row, log.signer.public_key_raw, row.created_at)
    except AuditIntegrityError as e:
        raise audit_log_damaged(e) from None
    if not created:
        response.status_code = 200
    return body


@router.get("/leaves/{seq}", response_model=LeafResponse, summary="One leaf with its proof")
def get_leaf(
    services: ServicesDep,
    session: SessionDep,
    principal: Auditor,
    seq: Annotated[int, Path(ge=0, description="The leaf's sequence number.")],
    tree_size: Annotated[
        int | None,
        Query(ge=1, description="Prove inclusion in this tree size (default: latest checkpoint)."),
    ] = None,
) -> LeafResponse:
    """Leaf ``seq`` of your organisation, with an inclusion proof (404 for another's)."""
    log = services.audit
    if seq >= log.tree_size(session):
        raise NotFoundError(f"no audit leaf {seq} in your organisation")
    leaf = _own_leaf(session, log, principal, seq)
    inclusion: InclusionProofResponse | None = None
    unavailable: str | None = None
    if tree_size is not None:
        inclusion = _inclusion(session, log, seq, tree_size)
    else:
        latest = log.latest_checkpoint(session)
        if latest is not None and latest.tree_size > seq:
            inclusion = _inclusion(session, log, seq, latest.tree_size)
        else:
            unavailable = (
                f"no signed checkpoint covers leaf {seq} yet; pass tree_size, or sign one "
                "with POST /api/v1/audit/checkpoints"
            )
    return LeafResponse(
        seq=leaf.seq,
        leaf_hash=bytes(leaf.leaf_hash).hex(),
        payload=leaf.payload,
        record=parse_payload(leaf.payload),
        organisation_id=leaf.organisation_id,
        decision_id=leaf.decision_id,
        created_at=leaf.created_at,
        inclusion=inclusion,
        inclusion_unavailable=unavailable,
    )


@router.get("/proofs/inclusion", response_model=InclusionProofResponse, summary="Inclusion proof")
def inclusion_proof(
    services: ServicesDep,
    session: SessionDep,
    principal: Auditor,
    seq: Annotated[int, Query(ge=0, description="Sequence number of your organisation's leaf.")],
    tree_size: Annotated[
        int | None,
        Query(ge=1, description="Tree size to prove against (default: latest checkpoint)."),
    ] = None,
) -> InclusionProofResponse:
    """Proof that leaf ``seq`` is in the tree of ``tree_size`` leaves (422 for bad sizes)."""
    log = services.audit
    size = log.tree_size(session)
    if tree_size is None:
        latest = log.latest_checkpoint(session)
        if latest is None:
            raise UnprocessableError(
                "no checkpoint has been signed yet: pass tree_size", code="invalid_size"
            )
        tree_size = latest.tree_size
    if tree_size > size:
        raise UnprocessableError(
            f"tree_size {tree_size} is beyond the log, which has {size} leaves",
            code="invalid_size",
        )
    if seq >= tree_size:
        raise UnprocessableError(
            f"seq {seq} is not below tree_size {tree_size}", code="invalid_size"
        )
    _own_leaf(session, log, principal, seq)
    return _inclusion(session, log, seq, tree_size)


@router.get(
    "/proofs/consistency", response_model=ConsistencyProofResponse, summary="Consistency proof"
)
def consistency_proof(
    services: ServicesDep,
    session: SessionDep,
    principal: Auditor,
    first: Annotated[int, Query(ge=1, description="The older tree size (at least 1).")],
    second: Annotated[
        int | None,
        Query(ge=1, description="The newer tree size (default: latest checkpoint)."),
    ] = None,
) -> ConsistencyProofResponse:
    """Proof that the tree of ``first`` leaves is a prefix of the tree of ``second``."""
    log = services.audit
    if second is None:
        latest = log.latest_checkpoint(session)
        if latest is None:
            raise UnprocessableError(
                "no checkpoint has been signed yet: pass second", code="invalid_size"
            )
        second = latest.tree_size
    try:
        proof = log.consistency_proof(session, first, second)
    except AuditRangeError as e:
        raise _range(e) from None
    except AuditIntegrityError as e:
        raise audit_log_damaged(e) from None
    return ConsistencyProofResponse(
        first=proof.first,
        second=proof.second,
        first_root=proof.first_root.hex(),
        second_root=proof.second_root.hex(),
        proof=[h.hex() for h in proof.path],
        first_checkpoint=_checkpoint(log, log.checkpoint_at(session, proof.first)),
        second_checkpoint=_checkpoint(log, log.checkpoint_at(session, proof.second)),
    )
