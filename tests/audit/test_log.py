"""The audit log in a real database (SQLite and PostgreSQL): appends, checkpoints signed in
the append's transaction, proofs, and the triggers that refuse UPDATE and DELETE."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy.exc
from sqlalchemy import text
from sqlalchemy.orm import Session

from nqba.audit.checkpoints import verify_checkpoint
from nqba.audit.errors import AuditIntegrityError, AuditRangeError
from nqba.audit.log import AuditLog, LogEntry, hash_entries
from nqba.audit.merkle import (
    EMPTY_ROOT,
    canonical_json,
    leaf_hash,
    root_hash,
    verify_consistency,
    verify_inclusion,
)
from nqba.services import Services, build_services
from nqba.store.batch import WriteBatch
from nqba.store.models import AuditCheckpoint
from nqba.store.session import read_session, write_transaction
from tests.audit.logdata import append_plain, new_organisation, tamper
from tests.support.platform import platform_settings, temporary_database

EVERY = 4


@pytest.fixture
def audit_services(database_url: str) -> Iterator[Services]:
    """Services whose log signs a checkpoint every 4 leaves."""
    built = build_services(
        platform_settings(database_url, audit_checkpoint_every=EVERY), migrate=True
    )
    try:
        yield built
    finally:
        built.close()


def test_append_assigns_consecutive_seqs_and_hashes_the_canonical_record(
    audit_services: Services,
) -> None:
    org = new_organisation(audit_services)
    with write_transaction(audit_services.session_factory) as session:
        leaf = audit_services.audit.append(
            session, organisation_id=org, decision_id=None, record={"b": 1, "a": "x"}
        )
        assert leaf.seq == 0
        assert leaf.payload == '{"a":"x","b":1}'
        assert leaf.leaf_hash == leaf_hash(canonical_json({"a": "x", "b": 1}))
    append_plain(audit_services, org, 2)
    with read_session(audit_services.session_factory) as session:
        assert audit_services.audit.tree_size(session) == 3
        assert audit_services.audit.leaf_hashes(session)[0] == leaf.leaf_hash


def test_every_fourth_append_signs_a_checkpoint_in_the_same_transaction(
    audit_services: Services,
) -> None:
    org = new_organisation(audit_services)
    log = audit_services.audit
    append_plain(audit_services, org, 3)
    with write_transaction(audit_services.session_factory) as session:
        assert log.latest_checkpoint(session) is None
    session = audit_services.session_factory()
    try:
        log.append(session, organisation_id=org, decision_id=None, record={"n": 3})
        assert log.latest_checkpoint(session) is not None  # inside the append's transaction
        session.rollback()  # the decision fails: leaf and checkpoint go together
    finally:
        session.close()
    with read_session(audit_services.session_factory) as session:
        assert log.tree_size(session) == 3
        assert log.latest_checkpoint(session) is None  # rolled back together with the leaf
    append_plain(audit_services, org, 6, start=3)
    with read_session(audit_services.session_factory) as session:
        rows = session.query(AuditCheckpoint).order_by(AuditCheckpoint.tree_size).all()
        assert [r.tree_size for r in rows] == [4, 8]
        for row in rows:
            assert row.root_hash == log.root(session, row.tree_size)
            assert row.origin == audit_services.settings.audit_log_origin
            assert row.key_id == log.signer.key_id
            verify_checkpoint(log.signer.public_key_raw, row)


def test_checkpoint_on_demand_signs_the_current_size_once(audit_services: Services) -> None:
    org = new_organisation(audit_services)
    log = audit_services.audit
    with write_transaction(audit_services.session_factory) as session:
        empty = log.checkpoint(session)
        assert (empty.tree_size, empty.root_hash) == (0, EMPTY_ROOT)
    append_plain(audit_services, org, 6)
    with write_transaction(audit_services.session_factory) as session:
        first = log.checkpoint(session)
        assert first.tree_size == 6
    with write_transaction(audit_services.session_factory) as session:
        again = log.checkpoint(session)
        assert (again.tree_size, again.signature) == (6, first.signature)
        count = session.execute(text("SELECT count(*) FROM audit_checkpoints")).scalar_one()
        assert count == 3  # sizes 0, 4 (automatic) and 6
    verify_checkpoint(log.signer.public_key_raw, again)


def test_proofs_from_the_log_verify_against_its_roots(audit_services: Services) -> None:
    org = new_organisation(audit_services)
    log = audit_services.audit
    append_plain(audit_services, org, 11)
    with read_session(audit_services.session_factory) as session:
        hashes = log.leaf_hashes(session)
        assert log.root(session) == root_hash(hashes)
        for size in range(1, 12):
            for seq in range(size):
                proof = log.inclusion_proof(session, seq, size)
                assert proof.root_hash == root_hash(hashes[:size])
                verify_inclusion(hashes[seq], seq, size, proof.path, proof.root_hash)
            for first in range(1, size + 1):
                c = log.consistency_proof(session, first, size)
                verify_consistency(first, size, c.first_root, c.second_root, c.path)


def test_entries_appended_after_the_head_was_locked_make_the_same_log(
    audit_services: Services,
) -> None:
    """lock_for_append, then append_many with the head it read (and entries hashed before or
    after the lock): the seqs, stored nodes, checkpoints and roots of the plain append."""
    org = new_organisation(audit_services)
    log = audit_services.audit
    append_plain(audit_services, org, 3)
    for first, late in ((1, 2), (0, 3), (2, 0)):
        with write_transaction(audit_services.session_factory) as session:
            batch = WriteBatch(session)
            size = log.tree_size(session)
            early = hash_entries([LogEntry(org, None, {"n": size + i}) for i in range(first)])
            head = log.lock_for_append(batch)
            assert head.size == size
            joined = [LogEntry(org, None, {"n": size + first + i}) for i in range(late)]
            leaves = log.append_many(session, [*early, *hash_entries(joined)], batch, head)
            batch.send()
            assert [leaf.seq for leaf in leaves] == list(range(size, size + first + late))
    with read_session(audit_services.session_factory) as session:
        assert log.tree_size(session) == 11
        hashes = log.leaf_hashes(session)
        assert hashes[3:] == [leaf_hash(canonical_json({"n": n})) for n in range(3, 11)]
        assert log.root(session) == root_hash(hashes)
        for seq in range(11):
            proof = log.inclusion_proof(session, seq, 11)
            verify_inclusion(hashes[seq], seq, 11, proof.path, proof.root_hash)
        rows = session.query(AuditCheckpoint).order_by(AuditCheckpoint.tree_size).all()
        assert [(r.tree_size, r.root_hash) for r in rows] == [
            (4, root_hash(hashes[:4])),
            (8, root_hash(hashes[:8])),
        ]


@pytest.mark.parametrize(
    ("call", "words"),
    [
        (lambda log, s: log.inclusion_proof(s, 5, 5), "seq 5 is not below tree_size 5"),
        (lambda log, s: log.inclusion_proof(s, -1, 5), "non-negative"),
        (lambda log, s: log.inclusion_proof(s, 0, 6), "beyond the log, which has 5"),
        (lambda log, s: log.consistency_proof(s, 4, 3), "first 4 is larger than second 3"),
        (lambda log, s: log.consistency_proof(s, 0, 3), "at least 1"),
        (lambda log, s: log.consistency_proof(s, 1, 9), "second 9 is beyond the log"),
        (lambda log, s: log.root(s, -2), "non-negative"),
    ],
    ids=[
        "seq-at-size",
        "negative-seq",
        "size-beyond",
        "first>second",
        "first-0",
        "second-beyond",
        "neg-root",
    ],
)
def test_bad_sizes_raise_range_errors_with_the_reason(
    audit_services: Services, call: Callable[[AuditLog, Session], object], words: str
) -> None:
    org = new_organisation(audit_services)
    append_plain(audit_services, org, 5)
    with (
        read_session(audit_services.session_factory) as session,
        pytest.raises(AuditRangeError, match=words),
    ):
        call(audit_services.audit, session)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_log SET payload = '{}' WHERE seq = 0",
        "DELETE FROM audit_log WHERE seq = 0",
        "UPDATE audit_checkpoints SET tree_size = 3 WHERE tree_size = 4",
        "DELETE FROM audit_checkpoints",
        "UPDATE audit_nodes SET node_hash = node_hash",
        "DELETE FROM audit_nodes",
    ],
)
def test_database_refuses_update_and_delete_on_the_audit_tables(
    audit_services: Services, statement: str
) -> None:
    org = new_organisation(audit_services)
    append_plain(audit_services, org, 4)
    with (
        pytest.raises(sqlalchemy.exc.DBAPIError, match="append-only"),
        audit_services.engine.begin() as conn,
    ):
        conn.execute(text(statement))
    with read_session(audit_services.session_factory) as session:
        assert audit_services.audit.tree_size(session) == 4
        assert len(audit_services.audit.leaf_hashes(session)) == 4


def test_postgresql_also_refuses_truncate(tmp_path: Path) -> None:
    with temporary_database("postgresql", tmp_path) as url:
        built = build_services(platform_settings(url), migrate=True)
        try:
            with (
                pytest.raises(sqlalchemy.exc.DBAPIError, match="append-only"),
                built.engine.begin() as conn,
            ):
                conn.execute(text("TRUNCATE audit_log"))
        finally:
            built.close()


def test_a_log_with_a_gap_is_not_proven_over_and_checkpoints_sign_what_was_appended(
    audit_services: Services,
) -> None:
    org = new_organisation(audit_services)
    append_plain(audit_services, org, 6)
    with read_session(audit_services.session_factory) as session:
        appended_root = audit_services.audit.root(session)
    tamper(audit_services, "DELETE FROM audit_log WHERE seq = 2")
    with write_transaction(audit_services.session_factory) as session:
        checkpoint = audit_services.audit.checkpoint(session)
    # the head's compact range was built as the leaves were appended: the deletion behind
    # the application's back does not change what the checkpoint signs
    assert (checkpoint.tree_size, bytes(checkpoint.root_hash)) == (6, appended_root)
    with read_session(audit_services.session_factory) as session:
        # proofs come from the stored nodes: leaf 0's path holds no leaf 2 and still verifies
        proof = audit_services.audit.inclusion_proof(session, 0, 6)
        verify_inclusion(proof.leaf_hash, 0, 6, proof.path, appended_root)
        # a proof that needs the deleted leaf says so; `nqba audit verify` finds the gap
        with pytest.raises(AuditIntegrityError, match="leaf 2 is missing"):
            audit_services.audit.inclusion_proof(session, 2, 6)
        with pytest.raises(AuditIntegrityError, match="leaf 2 of the tree is missing"):
            audit_services.audit.inclusion_proof(session, 3, 6)


def test_concurrent_appends_get_consecutive_seqs_and_valid_checkpoints(
    audit_services: Services,
) -> None:
    org = new_organisation(audit_services)
    errors: list[BaseException] = []

    def writer(worker: int) -> None:
        try:
            for i in range(6):
                with write_transaction(audit_services.session_factory) as session:
                    audit_services.audit.append(
                        session,
                        organisation_id=org,
                        decision_id=None,
                        record={"worker": worker, "i": i},
                    )
        except BaseException as e:  # surfaced by the assertion below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    log = audit_services.audit
    with read_session(audit_services.session_factory) as session:
        assert log.tree_size(session) == 24
        hashes = log.leaf_hashes(session)  # raises on any gap
        rows = session.query(AuditCheckpoint).order_by(AuditCheckpoint.tree_size).all()
        assert [r.tree_size for r in rows] == [4, 8, 12, 16, 20, 24]
        for row in rows:
            assert row.root_hash == root_hash(hashes[: row.tree_size])
            verify_checkpoint(log.signer.public_key_raw, row)
