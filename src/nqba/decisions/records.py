"""The audit record of a decision: what its leaf commits to, recomputable from its row.

The record holds digests of the inputs and outputs (not the data itself), so the log can be
exported to an auditor without the business data, and any later change to a decision row
changes the recomputed leaf hash.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from nqba.audit.log import LogEntry
from nqba.audit.merkle import canonical_json
from nqba.store.models import AuditLeaf, Decision

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from nqba.audit.log import AuditLog

RECORD_TYPE = "nqba.decision/v1"


def digest(value: Any) -> str:
    """SHA-256 (hex) of the canonical JSON of ``value``."""
    return hashlib.sha256(canonical_json(value)).hexdigest()


def _timestamp(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="microseconds")


def decision_record(decision: Decision) -> dict[str, Any]:
    """The record appended to the audit log when ``decision`` completes."""
    return {
        "type": RECORD_TYPE,
        "decision_id": decision.id,
        "organisation_id": decision.organisation_id,
        "unit": decision.unit,
        "kind": decision.kind,
        "status": decision.status,
        "actor_kind": decision.actor_kind,
        "actor_id": decision.actor_id,
        "inputs_digest": decision.inputs_digest,
        "outputs_digest": None if decision.outputs is None else digest(decision.outputs),
        "error_digest": None if decision.error is None else digest(decision.error),
        "solver": decision.solver,
        "objective": decision.objective,
        "model_version": decision.model_version,
        "created_at": _timestamp(decision.created_at),
        "completed_at": _timestamp(decision.completed_at),
    }


def append_decision_leaves(
    audit: AuditLog, session: Session, decisions: Sequence[Decision]
) -> list[AuditLeaf]:
    """Append each decision's record to the log in ``session``'s transaction, in order, and
    set its ``audit_seq``.

    Nothing is flushed meanwhile: a stored decision is written once, at the commit, with its
    seq; a new one (its id set) is inserted afterwards, by the caller.
    """
    leaves = audit.append_many(
        session,
        [LogEntry(d.organisation_id, d.id, decision_record(d)) for d in decisions],
    )
    for decision, leaf in zip(decisions, leaves, strict=True):
        decision.audit_seq = leaf.seq
    return leaves


def append_decision_leaf(audit: AuditLog, session: Session, decision: Decision) -> AuditLeaf:
    """Append ``decision``'s record and set its ``audit_seq`` (see append_decision_leaves)."""
    return append_decision_leaves(audit, session, [decision])[0]
