"""Queries of decisions: one organisation's list (filters, cursor pages) and one decision."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from nqba.store.models import AuditLeaf, Decision, Job


class InvalidCursorError(ValueError):
    """A page cursor this server did not hand out."""


def encode_cursor(decision: Decision) -> str:
    """An opaque cursor after ``decision`` (its creation time and id)."""
    raw = f"{decision.created_at.isoformat()}|{decision.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The (created_at, id) a cursor points after."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created, ident = base64.urlsafe_b64decode(padded.encode()).decode().split("|", 1)
        return datetime.fromisoformat(created), ident
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidCursorError(f"invalid cursor {cursor!r}") from None


def list_decisions(
    session: Session,
    organisation_id: str,
    *,
    units: list[str],
    unit: str | None = None,
    kind: str | None = None,
    status: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[tuple[Decision, AuditLeaf | None, str | None]], str | None]:
    """Decisions of ``organisation_id`` in ``units``, newest first, with leaf and job id."""
    query = (
        select(Decision, AuditLeaf, Job.id)
        .outerjoin(AuditLeaf, AuditLeaf.seq == Decision.audit_seq)
        .outerjoin(Job, Job.decision_id == Decision.id)
        .where(Decision.organisation_id == organisation_id, Decision.unit.in_(units))
    )
    if unit is not None:
        query = query.where(Decision.unit == unit)
    if kind is not None:
        query = query.where(Decision.kind == kind)
    if status is not None:
        query = query.where(Decision.status == status)
    if created_after is not None:
        query = query.where(Decision.created_at >= created_after)
    if created_before is not None:
        query = query.where(Decision.created_at < created_before)
    if cursor is not None:
        at, ident = decode_cursor(cursor)
        query = query.where(
            or_(Decision.created_at < at, and_(Decision.created_at == at, Decision.id < ident))
        )
    query = query.order_by(Decision.created_at.desc(), Decision.id.desc()).limit(limit + 1)
    rows: list[tuple[Decision, AuditLeaf | None, str | None]] = [
        (d, leaf, job_id) for d, leaf, job_id in session.execute(query).all()
    ]
    next_cursor = encode_cursor(rows[limit - 1][0]) if len(rows) > limit else None
    return rows[:limit], next_cursor


def get_decision(
    session: Session, organisation_id: str, decision_id: str
) -> tuple[Decision, AuditLeaf | None, str | None] | None:
    """One decision of ``organisation_id`` with its leaf and job id, or None."""
    row = session.execute(
        select(Decision, AuditLeaf, Job.id)
        .outerjoin(AuditLeaf, AuditLeaf.seq == Decision.audit_seq)
        .outerjoin(Job, Job.decision_id == Decision.id)
        .where(Decision.organisation_id == organisation_id, Decision.id == decision_id)
    ).first()
    if row is None:
        return None
    decision, leaf, job_id = row
    return decision, leaf, job_id
