"""The audit log in the database: append a leaf in the caller's transaction.

Appending first increments the single ``audit_head`` row (``UPDATE ... RETURNING``), which
takes that row's lock, so concurrent appends get consecutive sequence numbers with no gaps;
the leaf row is then inserted in the same transaction as the decision it records.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from nqba.audit.merkle import canonical_json, leaf_hash
from nqba.config import Settings
from nqba.store.models import AuditLeaf


class AuditLog:
    """Appends leaves (and, every ``checkpoint_every`` leaves, a signed checkpoint)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @classmethod
    def from_settings(cls, settings: Settings) -> AuditLog:
        """The log as configured (origin, signing key, checkpoint interval)."""
        return cls(settings)

    def append(
        self,
        session: Session,
        *,
        organisation_id: str,
        decision_id: str | None,
        record: Mapping[str, Any],
    ) -> AuditLeaf:
        """Add ``record`` as the next leaf, in ``session``'s transaction (not committed here)."""
        payload = canonical_json(record)
        size = session.execute(
            text("UPDATE audit_head SET tree_size = tree_size + 1 WHERE id = 1 RETURNING tree_size")
        ).scalar_one()
        leaf = AuditLeaf(
            seq=int(size) - 1,
            leaf_hash=leaf_hash(payload),
            payload=payload.decode("utf-8"),
            organisation_id=organisation_id,
            decision_id=decision_id,
        )
        session.add(leaf)
        session.flush()
        return leaf
