"""Every query of the audit tables (and the decision rows the verifier compares with).

Functions take the caller's session and never commit. ``audit_head`` holds the log's size.
Appends read it with ``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite appends and checkpoint
signing with ``UPDATE audit_head ... RETURNING``. Either takes that row's write lock, which is
how appends and checkpoint signing are serialised on PostgreSQL and SQLite alike.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Sequence
from datetime import datetime
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import and_, or_, select, text
from sqlalchemy.orm import Session, defer

from nqba.audit import merkle
from nqba.audit.checkpoints import SignedCheckpoint
from nqba.audit.errors import AuditIntegrityError
from nqba.store.batch import WriteBatch
from nqba.store.models import AuditCheckpoint, AuditHead, AuditLeaf, AuditNode, Decision
from nqba.store.session import insert_rows

T = TypeVar("T")

BATCH_SIZE = 1000
"""Rows fetched per round trip when streaming the log."""


class LeafRow(NamedTuple):
    """One stored leaf, as read for export or verification."""

    seq: int
    leaf_hash: bytes
    payload: str
    organisation_id: str
    decision_id: str | None
    created_at: datetime


_LOCK_HEAD = {
    True: "SELECT tree_size, compact_range FROM audit_head WHERE id = 1 FOR UPDATE",
    # SQLite has no row locks: a no-op UPDATE takes the database's write lock, if not held
    False: "UPDATE audit_head SET tree_size = tree_size WHERE id = 1 "
    "RETURNING tree_size, compact_range",
}


class HeadState(NamedTuple):
    """The head as read under its write lock: the log's size and packed compact range."""

    size: int
    compact_range: bytes


def lock_head_for_append(batch: WriteBatch) -> HeadState:
    """Take the head row's write lock in ``batch``'s transaction and read it (what
    :func:`append_to_head` appends after; a caller whose leaves are known only once the lock
    is held calls it first)."""
    size, packed = batch.fetch_one(_LOCK_HEAD[batch.postgresql], ())
    return HeadState(int(size), bytes(packed or b""))


def append_to_head(
    batch: WriteBatch,
    leaves: Sequence[bytes],
    roots_at: Callable[[int], bool],
    head: HeadState | None = None,
) -> tuple[int, dict[int, bytes]]:
    """Append ``leaves`` to the head (size + len(leaves), compact range updated, under the
    row's lock), and store the inner nodes they complete, in ``batch``'s transaction.

    Returns the size before the append and the root of the tree at each size the append passes
    through for which ``roots_at(size)`` holds (what a checkpoint of that size signs). The
    head is read under its write lock (here, or by the caller: ``head``, as
    :func:`lock_head_for_append` read it in this transaction), so it cannot change before
    ``batch`` writes its successor (size, compact range and the completed nodes, when the caller
    sends it). They touch no mapped object: this is every decision's hot path.
    """
    start, packed = head if head is not None else lock_head_for_append(batch)
    nodes = merkle.unpack_nodes(packed)
    completed: list[tuple[merkle.NodeKey, bytes]] = []
    roots: dict[int, bytes] = {}
    for offset, leaf in enumerate(leaves):
        nodes, done = merkle.compact_append_nodes(nodes, start + offset, leaf)
        completed += done
        if roots_at(start + offset + 1):
            roots[start + offset + 1] = merkle.compact_root(nodes)
    size = start + len(leaves)
    batch.update(
        AuditHead, {"id": 1}, {"tree_size": size, "compact_range": merkle.pack_nodes(nodes)}
    )
    batch.insert(AuditNode, [{"level": lv, "idx": i, "node_hash": h} for (lv, i), h in completed])
    return start, roots


def tree_nodes(session: Session, keys: Collection[merkle.NodeKey]) -> dict[merkle.NodeKey, bytes]:
    """The stored nodes named by ``keys`` (level 0: leaf hashes; above: inner nodes); a key
    not stored is left out (the proof built from them then names it)."""
    leaves = sorted(i for lv, i in keys if lv == 0)
    inner = [(lv, i) for lv, i in keys if lv > 0]
    found: dict[merkle.NodeKey, bytes] = {}
    for chunk in _chunks(leaves):
        rows = session.execute(
            select(AuditLeaf.seq, AuditLeaf.leaf_hash).where(AuditLeaf.seq.in_(chunk))
        )
        found.update({(0, int(seq)): bytes(h) for seq, h in rows})
    by_level: dict[int, list[int]] = {}
    for lv, i in inner:
        by_level.setdefault(lv, []).append(i)
    if by_level:
        # one (level = L AND idx IN ...) term per level: both databases look each term up in
        # the primary key (SQLite scans the table for a row-value IN over (level, idx))
        stored = session.execute(
            select(AuditNode.level, AuditNode.index, AuditNode.node_hash).where(
                or_(
                    *(
                        and_(AuditNode.level == lv, AuditNode.index.in_(sorted(idx)))
                        for lv, idx in by_level.items()
                    )
                )
            )
        )
        found.update({(int(lv), int(i)): bytes(h) for lv, i, h in stored})
    return found


def _chunks(items: Sequence[T]) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), 500):
        yield items[start : start + 500]


def head_root(session: Session) -> tuple[int, bytes]:
    """(size, root) as the head records them: the root from the compact range, O(log n)."""
    size, packed = session.execute(
        text("SELECT tree_size, compact_range FROM audit_head WHERE id = 1")
    ).one()
    return int(size), merkle.compact_root(merkle.unpack_nodes(bytes(packed or b"")))


def lock_head(session: Session) -> int:
    """The log's size, read under the head row's write lock (no append can run meanwhile)."""
    size = session.execute(
        text("UPDATE audit_head SET tree_size = tree_size WHERE id = 1 RETURNING tree_size")
    ).scalar_one()
    return int(size)


def head_size(session: Session) -> int:
    """The log's size as the head row records it (no lock)."""
    size = session.execute(text("SELECT tree_size FROM audit_head WHERE id = 1")).scalar_one()
    return int(size)


def leaf_hashes(session: Session, size: int) -> list[bytes]:
    """The stored leaf hashes of seq 0..size-1, in order.

    Reads ``size`` rows (32 bytes each): O(n) in the log's size (roots and proofs use the
    stored nodes instead, see :func:`tree_nodes`). Raises AuditIntegrityError when a seq is
    missing.
    """
    rows = session.execute(
        select(AuditLeaf.seq, AuditLeaf.leaf_hash)
        .where(AuditLeaf.seq < size)
        .order_by(AuditLeaf.seq)
    ).all()
    hashes: list[bytes] = []
    for expected, (seq, digest) in enumerate(rows):
        if seq != expected:
            raise AuditIntegrityError(f"audit log leaf {expected} is missing (found {seq} next)")
        hashes.append(bytes(digest))
    if len(hashes) != size:
        raise AuditIntegrityError(
            f"audit log has {len(hashes)} leaves below its size {size}; leaf {len(hashes)} "
            "is missing"
        )
    return hashes


def iter_nodes(session: Session) -> Iterator[tuple[int, int, bytes]]:
    """Every stored inner node as (level, index, hash), fetched in batches."""
    result = session.execute(
        select(AuditNode.level, AuditNode.index, AuditNode.node_hash)
        .order_by(AuditNode.level, AuditNode.index)
        .execution_options(yield_per=BATCH_SIZE)
    )
    for level, index, digest in result:
        yield int(level), int(index), bytes(digest)


def get_leaf(session: Session, seq: int) -> AuditLeaf | None:
    """Leaf ``seq``, or None."""
    return session.get(AuditLeaf, seq)


def iter_leaf_rows(session: Session) -> Iterator[LeafRow]:
    """Every leaf in seq order as plain rows, fetched in batches (export and verification)."""
    result = session.execute(
        select(
            AuditLeaf.seq,
            AuditLeaf.leaf_hash,
            AuditLeaf.payload,
            AuditLeaf.organisation_id,
            AuditLeaf.decision_id,
            AuditLeaf.created_at,
        )
        .order_by(AuditLeaf.seq)
        .execution_options(yield_per=BATCH_SIZE)
    )
    for seq, digest, payload, organisation_id, decision_id, created_at in result:
        yield LeafRow(seq, bytes(digest), payload, organisation_id, decision_id, created_at)


def add_checkpoint(
    session: Session, checkpoint: SignedCheckpoint, batch: WriteBatch | None = None
) -> AuditCheckpoint:
    """Store a signed checkpoint (not committed; nothing else is flushed): one INSERT now, or
    with ``batch`` when it is sent."""
    row = AuditCheckpoint(
        tree_size=checkpoint.tree_size,
        root_hash=checkpoint.root_hash,
        origin=checkpoint.origin,
        key_id=checkpoint.key_id,
        signature=checkpoint.signature,
    )
    if checkpoint.created_at is not None:
        row.created_at = checkpoint.created_at
    if batch is None:
        insert_rows(session, [row])
    else:
        batch.insert_objects([row])
    return row


def latest_checkpoint(session: Session) -> AuditCheckpoint | None:
    """The checkpoint of the largest tree, or None before the first."""
    return session.execute(
        select(AuditCheckpoint).order_by(AuditCheckpoint.tree_size.desc()).limit(1)
    ).scalar_one_or_none()


def checkpoint_at(session: Session, tree_size: int) -> AuditCheckpoint | None:
    """The checkpoint of exactly ``tree_size`` leaves, or None."""
    return session.get(AuditCheckpoint, tree_size)


def all_checkpoints(session: Session) -> list[AuditCheckpoint]:
    """Every checkpoint, smallest tree first."""
    return list(
        session.execute(select(AuditCheckpoint).order_by(AuditCheckpoint.tree_size)).scalars()
    )


def iter_recorded_decisions(session: Session) -> Iterator[Decision]:
    """Decisions that have an audit leaf (``audit_seq`` set), in seq order, in batches.

    The inputs, baseline and timings are not loaded (the audit record holds digests only);
    they load on access if a later record needs them.
    """
    result = session.execute(
        select(Decision)
        .options(defer(Decision.inputs), defer(Decision.baseline), defer(Decision.timings))
        .where(Decision.audit_seq.is_not(None))
        .order_by(Decision.audit_seq)
        .execution_options(yield_per=BATCH_SIZE)
    )
    yield from result.scalars()


def snapshot(session: Session) -> None:
    """Make the session's reads one consistent snapshot (REPEATABLE READ on PostgreSQL).

    SQLite's read transactions are snapshots already. Call before the first query.
    """
    if session.get_bind().dialect.name == "postgresql":
        options: dict[str, Any] = {"isolation_level": "REPEATABLE READ"}
        session.connection(execution_options=options)
