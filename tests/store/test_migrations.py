"""Migrations on both databases: to the latest schema, 0002 filling the compact range and 0003
storing the inner nodes of a log written before them."""

from __future__ import annotations

from sqlalchemy import Engine, text

from nqba.audit.merkle import (
    inclusion_proof,
    inclusion_proof_from_nodes,
    leaf_hash,
    root_from_nodes,
    root_hash,
)
from nqba.audit.repository import head_root, iter_nodes
from nqba.store.migrate import current_revision, head_revision, upgrade
from nqba.store.session import make_engine, make_session_factory


def test_an_empty_database_migrates_to_the_latest_revision(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        assert current_revision(engine) is None
        upgrade(engine)
        assert current_revision(engine) == head_revision()
        upgrade(engine)  # running it again changes nothing
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()


def _thirteen_leaves(engine: Engine) -> list[bytes]:
    """Store 13 leaves as a log written before a migration would have; their hashes."""
    leaves = [leaf_hash(f"leaf {i}".encode()) for i in range(13)]
    with engine.begin() as conn:
        for seq, digest in enumerate(leaves):
            conn.execute(
                text(
                    "INSERT INTO audit_log (seq, leaf_hash, payload, organisation_id, "
                    "created_at) VALUES (:seq, :h, '{}', 'org', CURRENT_TIMESTAMP)"
                ),
                {"seq": seq, "h": digest},
            )
    return leaves


def test_0002_computes_the_compact_range_of_a_log_written_before_it(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        upgrade(engine, "0001")
        leaves = _thirteen_leaves(engine)
        with engine.begin() as conn:
            conn.execute(text("UPDATE audit_head SET tree_size = 13"))
        upgrade(engine)
        with make_session_factory(engine)() as session:
            assert head_root(session) == (13, root_hash(leaves))
    finally:
        engine.dispose()


def test_0003_stores_the_inner_nodes_of_a_log_written_before_it(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        upgrade(engine, "0002")
        leaves = _thirteen_leaves(engine)
        upgrade(engine)
        with make_session_factory(engine)() as session:
            stored = {(lv, i): h for lv, i, h in iter_nodes(session)}
            assert len(stored) == 13 - bin(13).count("1")
            nodes = {**stored, **{(0, i): h for i, h in enumerate(leaves)}}
            for size in range(1, 14):
                assert root_from_nodes(size, nodes) == root_hash(leaves[:size])
                for m in range(size):
                    assert inclusion_proof_from_nodes(m, size, nodes) == inclusion_proof(
                        m, leaves[:size]
                    )
    finally:
        engine.dispose()
