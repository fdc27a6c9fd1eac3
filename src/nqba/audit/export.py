"""Export the audit log as JSON Lines, for ``nqba audit verify`` to check offline.

Lines, each one JSON object with a ``kind``:

- ``header``: format, origin, public_key (base64 raw Ed25519), key_id, exported_at,
  tree_size (the recorded size, ``audit_head``), decisions (whether decision lines follow);
- ``leaf``: seq, leaf_hash (hex), payload (the canonical JSON text, exactly as hashed),
  organisation_id, decision_id, created_at; in seq order;
- ``checkpoint``: tree_size, root_hash (hex), origin, key_id, signature (base64), created_at;
- ``decision``: decision_id, audit_seq, record: the audit record recomputed from the decision
  row now (``nqba.decisions.records.decision_record``), which verify compares with the leaf.

Records hold digests of inputs and outputs, not the data, so an export carries no business
data beyond ids, kinds and timestamps. Everything is read in one consistent snapshot.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TextIO

from sqlalchemy.orm import Session

from nqba.audit import repository as repo
from nqba.audit.checkpoints import CheckpointSigner
from nqba.audit.verify import EXPORT_FORMAT
from nqba.store.base import utcnow


@dataclass(frozen=True)
class ExportSummary:
    """What an export wrote."""

    tree_size: int
    leaves: int
    checkpoints: int
    decisions: int
    key_id: str
    exported_at: datetime


def _line(obj: dict[str, Any]) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n"


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="microseconds")


def export_log(session: Session, signer: CheckpointSigner, out: TextIO) -> ExportSummary:
    """Write the whole log (leaves, checkpoints, decision records) to ``out`` as JSON Lines.

    ``signer`` supplies the origin and the public key written into the header (its private
    key is not written). Streams rows in batches; memory does not grow with the log.
    """
    from nqba.decisions.records import decision_record

    repo.snapshot(session)
    exported_at = utcnow()
    size = repo.head_size(session)
    out.write(
        _line(
            {
                "kind": "header",
                "format": EXPORT_FORMAT,
                "origin": signer.origin,
                "public_key": signer.public_key_b64,
                "key_id": signer.key_id,
                "exported_at": _time(exported_at),
                "tree_size": size,
                "decisions": True,
            }
        )
    )
    leaves = 0
    for row in repo.iter_leaf_rows(session):
        out.write(
            _line(
                {
                    "kind": "leaf",
                    "seq": row.seq,
                    "leaf_hash": row.leaf_hash.hex(),
                    "payload": row.payload,
                    "organisation_id": row.organisation_id,
                    "decision_id": row.decision_id,
                    "created_at": _time(row.created_at),
                }
            )
        )
        leaves += 1
    checkpoints = repo.all_checkpoints(session)
    for cp in checkpoints:
        out.write(
            _line(
                {
                    "kind": "checkpoint",
                    "tree_size": cp.tree_size,
                    "root_hash": bytes(cp.root_hash).hex(),
                    "origin": cp.origin,
                    "key_id": cp.key_id,
                    "signature": base64.b64encode(bytes(cp.signature)).decode("ascii"),
                    "created_at": _time(cp.created_at),
                }
            )
        )
    decisions = 0
    for decision in repo.iter_recorded_decisions(session):
        out.write(
            _line(
                {
                    "kind": "decision",
                    "decision_id": decision.id,
                    "audit_seq": decision.audit_seq,
                    "record": decision_record(decision),
                }
            )
        )
        decisions += 1
    return ExportSummary(size, leaves, len(checkpoints), decisions, signer.key_id, exported_at)
