"""Helpers of the audit tests: fill a real log (plain leaves, decisions with their leaves) and
tamper with it behind the app's back (append-only triggers dropped or disabled first)."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, text

from nqba.auth.service import create_organisation
from nqba.decisions.records import decision_record, digest
from nqba.services import Services
from nqba.store.base import utcnow
from nqba.store.models import APPEND_ONLY_TABLES, Decision
from nqba.store.session import read_session, write_transaction


def new_organisation(services: Services, name: str = "acme") -> str:
    """Create an organisation; its id."""
    with services.session_factory.begin() as session:
        return create_organisation(session, name).id


def append_plain(services: Services, organisation_id: str, count: int, start: int = 0) -> None:
    """Append ``count`` leaves that record no decision, each in its own transaction."""
    for i in range(start, start + count):
        with write_transaction(services.session_factory) as session:
            services.audit.append(
                session,
                organisation_id=organisation_id,
                decision_id=None,
                record={"type": "test/v1", "organisation_id": organisation_id, "n": i},
            )


def append_decisions(services: Services, organisation_id: str, count: int) -> list[str]:
    """Record ``count`` succeeded decisions, each with its leaf in one transaction (as the
    decision service does); their ids in seq order."""
    ids: list[str] = []
    for i in range(count):
        with write_transaction(services.session_factory) as session:
            created = utcnow()
            inputs = {"assets": ["A", "B", "C"], "budget": 1.0, "n": i}
            decision = Decision(
                organisation_id=organisation_id,
                unit="finance",
                kind="portfolio-optimization",
                status="succeeded",
                actor_kind="user",
                actor_id=str(uuid.uuid4()),
                inputs=inputs,
                inputs_digest=digest(inputs),
                outputs={"weights": {"A": 0.25, "B": 0.5, "C": 0.25}, "n": i},
                solver="clarabel",
                objective=0.0123 + i,
                model_version="test-1",
                created_at=created,
                completed_at=created + timedelta(milliseconds=7),
            )
            session.add(decision)
            session.flush()
            leaf = services.audit.append(
                session,
                organisation_id=organisation_id,
                decision_id=decision.id,
                record=decision_record(decision),
            )
            decision.audit_seq = leaf.seq
            ids.append(decision.id)
    return ids


def disable_append_only(conn: Connection) -> None:
    """Take the append-only triggers off the audit tables (what an attacker with DDL does)."""
    if conn.dialect.name == "sqlite":
        for table in APPEND_ONLY_TABLES:
            for action in ("update", "delete"):
                conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {table}_no_{action}")
    else:
        for table in APPEND_ONLY_TABLES:
            conn.exec_driver_sql(f"ALTER TABLE {table} DISABLE TRIGGER USER")


@contextmanager
def behind_the_back(services: Services) -> Iterator[Connection]:
    """A raw connection with the append-only triggers gone, committed at the end."""
    with services.engine.begin() as conn:
        disable_append_only(conn)
        yield conn


def tamper(services: Services, *statements: str, **params: Any) -> None:
    """Run SQL against the audit tables behind the app's back."""
    with behind_the_back(services) as conn:
        for statement in statements:
            conn.execute(text(statement), params)


def swap_seqs(services: Services, a: int, b: int) -> None:
    """Swap two leaves' places in the log (their seq numbers), in one transaction."""
    tamper(
        services,
        f"UPDATE audit_log SET seq = -1 WHERE seq = {a}",
        f"UPDATE audit_log SET seq = {a} WHERE seq = {b}",
        f"UPDATE audit_log SET seq = {b} WHERE seq = -1",
    )


def forged_leaf_hash(payload: str) -> bytes:
    """The correct leaf hash of a forged payload (a forger knows RFC 6962 too)."""
    return hashlib.sha256(b"\x00" + payload.encode()).digest()


# --- tampering cases: each changes the log of ``append_decisions(..., 10)`` ------------------
# (checkpoints every 4 leaves); the table gives the first bad seq and words of its message.


def _update_payload(services: Services, ids: list[str]) -> None:
    tamper(
        services,
        "UPDATE audit_log SET payload = replace(payload, '\"succeeded\"', '\"failed\"') "
        "WHERE seq = 5",
    )


def _update_payload_and_hash(services: Services, ids: list[str]) -> None:
    with read_session(services.session_factory) as session:
        leaf = services.audit.leaf(session, 5)
        assert leaf is not None
        forged = leaf.payload.replace('"succeeded"', '"failed"')
    tamper(
        services,
        "UPDATE audit_log SET payload = :p, leaf_hash = :h WHERE seq = 5",
        p=forged,
        h=forged_leaf_hash(forged),
    )


def _delete(services: Services, ids: list[str]) -> None:
    tamper(services, "DELETE FROM audit_log WHERE seq = 6")


def _delete_last(services: Services, ids: list[str]) -> None:
    tamper(services, "DELETE FROM audit_log WHERE seq = 9")


def _forged_payload(services: Services, decision_id: str) -> str:
    """Leaf 3's record, claiming another decision and objective, as JSON."""
    with read_session(services.session_factory) as session:
        leaf = services.audit.leaf(session, 3)
        assert leaf is not None
        record = json.loads(leaf.payload)
    record["decision_id"] = decision_id
    record["objective"] = 42.0
    return json.dumps(record, sort_keys=True, separators=(",", ":"))


def _insert(services: Services, decision_id: str, bump_head: bool) -> None:
    payload = _forged_payload(services, decision_id)
    with read_session(services.session_factory) as session:
        leaf = services.audit.leaf(session, 3)
        assert leaf is not None
        org, created = leaf.organisation_id, leaf.created_at
    statements = [
        "INSERT INTO audit_log (seq, leaf_hash, payload, organisation_id, decision_id, "
        "created_at) VALUES (10, :h, :p, :o, :d, :c)"
    ]
    if bump_head:
        statements.append("UPDATE audit_head SET tree_size = 11")
    tamper(
        services,
        *statements,
        h=forged_leaf_hash(payload),
        p=payload,
        o=org,
        d=decision_id,
        c=created,
    )


def _insert_forged(services: Services, ids: list[str]) -> None:
    _insert(services, ids[3], bump_head=False)


def _insert_forged_with_head(services: Services, ids: list[str]) -> None:
    _insert(services, "8e3c2c0e-0d5b-4a44-9b1c-000000000000", bump_head=True)


def _truncate_tail(services: Services, ids: list[str]) -> None:
    tamper(services, "DELETE FROM audit_log WHERE seq >= 6", "UPDATE audit_head SET tree_size = 6")


def _reorder(services: Services, ids: list[str]) -> None:
    swap_seqs(services, 2, 3)


def _decision_outputs(services: Services, ids: list[str]) -> None:
    tamper(
        services,
        "UPDATE decisions SET outputs = :o WHERE id = :d",
        o='{"weights":{"A":1}}',
        d=ids[7],
    )


def _decision_seq(services: Services, ids: list[str]) -> None:
    tamper(services, "UPDATE decisions SET audit_seq = NULL WHERE id = :d", d=ids[4])


def _leaf_organisation(services: Services, ids: list[str]) -> None:
    tamper(services, "UPDATE audit_log SET organisation_id = 'someone-else' WHERE seq = 1")


TAMPERING: dict[str, tuple[Callable[[Services, list[str]], None], int, str]] = {
    "update-payload": (_update_payload, 5, "payload does not match its stored leaf hash"),
    "update-payload-and-hash": (_update_payload_and_hash, 5, "no longer matches leaf 5"),
    "delete-row": (_delete, 6, "leaf 6 is missing"),
    "delete-last-row": (_delete_last, 9, "leaf 9 is missing"),
    "insert-forged-row": (_insert_forged, 10, "beyond the log's recorded size 10"),
    "insert-forged-row-and-head": (
        _insert_forged_with_head,
        10,
        "no decision row has audit_seq 10",
    ),
    "truncate-tail-and-head": (
        _truncate_tail,
        6,
        "leaf 6 is missing: a checkpoint signs 8 leaves but the log holds 6",
    ),
    "reorder-rows": (_reorder, 2, "has audit_seq 2, but leaf 2 records decision"),
    "decision-outputs": (_decision_outputs, 7, "(fields differ: outputs_digest)"),
    "decision-unlinked": (_decision_seq, 4, "no decision row has audit_seq 4"),
    "leaf-organisation": (_leaf_organisation, 1, "organisation_id column 'someone-else'"),
}
