"""The audit record of a decision: what its leaf commits to, recomputable from its row.

The record holds digests of the inputs and outputs (not the data itself), so the log can be
exported to an auditor without the business data, and any later change to a decision row
changes the recomputed leaf hash.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import TYPE_CHECKING, Any

from nqba.audit.log import HashedEntry, LogEntry, hash_entries
from nqba.audit.merkle import canonical_json
from nqba.store.models import AuditLeaf, Decision

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from nqba.audit.log import AuditLog
    from nqba.audit.repository import HeadState
    from nqba.store.batch import WriteBatch

RECORD_TYPE = "nqba.decision/v1"


@dataclass(slots=True)
class DecisionDraft:
    """A decision not yet stored, as plain values: an inline decision is inserted from it with
    one Core INSERT (building and reading a mapped Decision cost some 60 us more a decision).
    A queued one becomes a Decision (:meth:`as_decision`)."""

    id: str
    organisation_id: str
    unit: str
    kind: str
    status: str
    actor_kind: str
    actor_id: str
    inputs: dict[str, Any]
    inputs_digest: str
    model_version: str
    created_at: datetime
    outputs: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    solver: str | None = None
    objective: float | None = None
    baseline: dict[str, Any] | None = None
    timings: dict[str, Any] | None = None
    completed_at: datetime | None = None
    audit_seq: int | None = None

    def row(self) -> dict[str, Any]:
        """The ``decisions`` row: column name to value."""
        return {name: getattr(self, name) for name in _DRAFT_FIELDS}

    def as_decision(self) -> Decision:
        """A new mapped Decision with these values (to add to a session)."""
        return Decision(**self.row())


_DRAFT_FIELDS = tuple(f.name for f in fields(DecisionDraft))

AnyDecision = Decision | DecisionDraft
"""A stored decision or one about to be: both carry the columns a record is made of."""


def digest(value: Any) -> str:
    """SHA-256 (hex) of the canonical JSON of ``value``."""
    return hashlib.sha256(canonical_json(value)).hexdigest()


def _timestamp(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="microseconds")


def decision_record(decision: AnyDecision) -> dict[str, Any]:
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


def decision_entries(decisions: Sequence[AnyDecision]) -> list[HashedEntry]:
    """The decisions' log entries, hashed (no lock needed: see AuditLog.append_many)."""
    return hash_entries([LogEntry(d.organisation_id, d.id, decision_record(d)) for d in decisions])


def append_decision_leaves(
    audit: AuditLog,
    session: Session,
    decisions: Sequence[AnyDecision],
    batch: WriteBatch | None = None,
    head: HeadState | None = None,
    entries: Sequence[HashedEntry] | None = None,
) -> list[AuditLeaf]:
    """Append each decision's record to the log in ``session``'s transaction, in order, and
    set its ``audit_seq`` (the log's rows written with ``batch``, if given, after ``head``,
    if given: see AuditLog.append_many). ``entries``: the decisions' own, if made already.

    Nothing is flushed meanwhile: a stored decision is written once, at the commit, with its
    seq; a new one (its id set) is inserted afterwards, by the caller.
    """
    if entries is None:
        entries = decision_entries(decisions)
    leaves = audit.append_many(session, entries, batch, head)
    for decision, leaf in zip(decisions, leaves, strict=True):
        decision.audit_seq = leaf.seq
    return leaves


def append_decision_leaf(audit: AuditLog, session: Session, decision: Decision) -> AuditLeaf:
    """Append ``decision``'s record and set its ``audit_seq`` (see append_decision_leaves)."""
    return append_decision_leaves(audit, session, [decision])[0]
