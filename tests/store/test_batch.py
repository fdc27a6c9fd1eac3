"""WriteBatch: rows gathered in a transaction and sent together, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import DataError, IntegrityError, OperationalError

from nqba.services import Services, build_services
from nqba.store import batch as batch_module
from nqba.store.base import Base, new_id
from nqba.store.batch import WriteBatch
from nqba.store.models import AuditHead, AuditNode, Decision, IdempotencyRecord, Organisation
from nqba.store.session import read_session, write_transaction
from tests.support.platform import platform_settings, temporary_database


def _organisation(services: Services, name: str = "acme") -> str:
    with write_transaction(services.session_factory) as session:
        org = Organisation(name=name)
        session.add(org)
        session.flush()
        return org.id


def _send(services: Services, *inserts: tuple[type[Base], list[dict[str, Any]]]) -> None:
    """Insert the rows with one WriteBatch in a write transaction."""
    with write_transaction(services.session_factory) as session:
        batch = WriteBatch(session)
        for cls, rows in inserts:
            batch.insert(cls, rows)
        batch.send()


def _decision_row(org: str, **values: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": new_id(),
        "organisation_id": org,
        "unit": "finance",
        "kind": "portfolio-optimization",
        "status": "succeeded",
        "actor_kind": "user",
        "actor_id": new_id(),
        "inputs": {"assets": ["A", "B"], "weights": [0.25, 0.75], "note": 'quote " and \\'},
        "inputs_digest": "0" * 64,
        "outputs": None,
        "error": None,
        "solver": None,
        "objective": None,
        "baseline": None,
        "timings": None,
        "model_version": "v1",
        "created_at": datetime(2026, 12, 7, 12, 0, 0, 123456, tzinfo=UTC),
        "completed_at": None,
        "audit_seq": None,
    }
    row.update(values)
    return row


def test_rows_of_every_column_type_read_back_as_written(services: Services) -> None:
    org = _organisation(services)
    plus_one = datetime(2026, 12, 7, 13, 30, tzinfo=UTC).astimezone(timezone(timedelta(hours=1)))
    rows = [
        _decision_row(
            org,
            outputs={"weights": {"A": 0.1, "B": 0.9}, "nested": [1, None, True, "é"]},
            objective=0.0123456789012345,
            completed_at=plus_one,
            audit_seq=7,
            solver="critical line",
        ),
        _decision_row(org),  # every nullable column NULL: each still takes the column's type
        _decision_row(org, error={"code": "x"}, audit_seq=8),
    ]
    with write_transaction(services.session_factory) as session:
        batch = WriteBatch(session)
        batch.insert(Decision, rows)
        batch.send()
    with read_session(services.session_factory) as session:
        for row in rows:
            stored = session.get_one(Decision, row["id"])
            for key, value in row.items():
                assert getattr(stored, key) == value, key
        completed = session.get_one(Decision, rows[0]["id"]).completed_at
        assert completed is not None
        assert completed.tzinfo is not None
        assert completed == plus_one  # the same instant, read back in UTC
        assert session.get_one(Decision, rows[1]["id"]).outputs is None


def test_writes_are_sent_in_order_and_update_touches_only_its_row(services: Services) -> None:
    org = _organisation(services)
    decision = _decision_row(org)
    record = IdempotencyRecord(
        organisation_id=org,
        actor_id=decision["actor_id"],
        key="k1",
        method="POST",
        path="/x",
        request_digest="d" * 64,
        status_code=200,
        response={"ok": True},
        decision_id=decision["id"],
    )
    with write_transaction(services.session_factory) as session:
        batch = WriteBatch(session)
        (size,) = batch.fetch_one("SELECT tree_size FROM audit_head WHERE id = ?", (1,))
        batch.update(AuditHead, {"id": 1}, {"compact_range": b"\x01" * 32})
        batch.insert(Decision, [decision])
        batch.insert_objects([record])  # refers to the decision added before it
        batch.insert(
            AuditNode, [{"level": 1, "idx": i, "node_hash": bytes([i]) * 32} for i in range(3)]
        )
        with session.no_autoflush:
            assert session.scalar(select(func.count()).select_from(Decision)) == 0  # not sent yet
        batch.send()
        assert session.scalar(select(func.count()).select_from(Decision)) == 1
    assert record.id is not None  # the Python defaults, set on the object
    assert record.created_at is not None
    with read_session(services.session_factory) as session:
        head = session.get_one(AuditHead, 1)
        assert head.compact_range == b"\x01" * 32
        assert head.tree_size == size  # the column not named in the UPDATE is unchanged
        stored = session.get_one(IdempotencyRecord, record.id)
        assert stored.response == {"ok": True}
        assert stored.created_at == record.created_at
        nodes = session.execute(
            select(AuditNode.index, AuditNode.node_hash).order_by(AuditNode.index)
        )
        assert [tuple(n) for n in nodes] == [(i, bytes([i]) * 32) for i in range(3)]


def test_a_failed_write_raises_sqlalchemys_error_and_writes_nothing(services: Services) -> None:
    org = _organisation(services)
    first = _decision_row(org, audit_seq=1)
    with pytest.raises(IntegrityError):  # audit_seq is unique
        _send(services, (Decision, [first, _decision_row(org, audit_seq=1)]))
    with pytest.raises(IntegrityError):  # the organisation's foreign key
        _send(services, (Decision, [first]), (Decision, [_decision_row("no such org")]))
    with read_session(services.session_factory) as session:
        assert session.scalar(select(func.count()).select_from(Decision)) == 0
    _send(services, (Decision, [first]))  # the pool's connections still work


def test_an_over_long_text_is_refused_on_postgresql_never_cut(services: Services) -> None:
    org = _organisation(services)
    row = _decision_row(org, unit="u" * 41)  # String(40)
    if services.engine.dialect.name == "postgresql":
        with pytest.raises(DataError):
            _send(services, (Decision, [row]))
    else:  # SQLite keeps any length
        _send(services, (Decision, [row]))
        with read_session(services.session_factory) as session:
            assert session.get_one(Decision, row["id"]).unit == "u" * 41


def test_rows_must_have_the_same_columns_and_naive_times_are_refused(services: Services) -> None:
    org = _organisation(services)
    with write_transaction(services.session_factory) as session:
        batch = WriteBatch(session)
        row = _decision_row(org)
        short = {k: v for k, v in row.items() if k != "audit_seq"}
        with pytest.raises(ValueError, match="same columns"):
            batch.insert(Decision, [row, short])
        with pytest.raises(ValueError, match="naive datetime"):
            batch.insert(Decision, [_decision_row(org, created_at=datetime(2026, 1, 1))])


def test_a_batch_beyond_the_parameter_limit_is_split(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batch_module, "MAX_PARAMETERS", 50)  # 2 decision rows a statement
    org = _organisation(services)
    rows = [_decision_row(org, audit_seq=i) for i in range(7)]
    with write_transaction(services.session_factory) as session:
        batch = WriteBatch(session)
        batch.insert(Decision, rows)
        batch.insert(
            AuditNode, [{"level": 2, "idx": i, "node_hash": b"\0" * 32} for i in range(30)]
        )
        batch.send()
    with read_session(services.session_factory) as session:
        seqs = session.scalars(select(Decision.audit_seq).order_by(Decision.audit_seq)).all()
        assert seqs == list(range(7))
        assert session.scalar(select(func.count()).select_from(AuditNode)) == 30


def test_a_dead_postgresql_connection_is_an_operational_error_and_is_replaced(
    tmp_path: Path,
) -> None:
    with temporary_database("postgresql", tmp_path) as url:
        services = build_services(platform_settings(url), migrate=True)
        try:
            org = _organisation(services)
            with (  # noqa: PT012 - the whole transaction fails
                pytest.raises(OperationalError) as raised,
                write_transaction(services.session_factory) as session,
            ):
                batch = WriteBatch(session)
                pid = batch.fetch_one("SELECT pg_backend_pid()", ())[0]
                with services.engine.connect() as other:  # the server ends the session
                    other.exec_driver_sql(f"SELECT pg_terminate_backend({int(pid)})")
                batch.insert(Decision, [_decision_row(org)])
                batch.send()
            assert raised.value.connection_invalidated
            row = _decision_row(org)
            _send(services, (Decision, [row]))  # on a new connection
            with read_session(services.session_factory) as session:
                assert session.scalar(select(func.count()).select_from(Decision)) == 1
        finally:
            services.close()
