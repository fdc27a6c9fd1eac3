"""The audit log in the database: append a leaf in the caller's transaction, sign checkpoints.

Appending first locks and reads the single ``audit_head`` row (``SELECT ... FOR UPDATE`` on
PostgreSQL, a no-op ``UPDATE ... RETURNING`` on SQLite), which takes that row's lock, so
concurrent appends get consecutive sequence numbers with no gaps; the leaf row is then
inserted in the same transaction as the decision it records. When the append makes the size a
multiple of ``audit_checkpoint_every``, a checkpoint of the new size is signed in that same
transaction.

The head also keeps the log's compact range (the perfect-subtree roots, one per set bit of the
size), updated at each append, so the root that a checkpoint signs costs O(log n) and is the
root of the leaves as the application appended them. Each append also stores the inner nodes
it completes (``audit_nodes``), so roots of any size and proofs (RFC 6962) read O(log^2 n)
stored nodes, never every leaf.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

from sqlalchemy.orm import Session

from nqba.audit import merkle
from nqba.audit import repository as repo
from nqba.audit.checkpoints import CheckpointSigner
from nqba.audit.errors import AuditIntegrityError, AuditRangeError
from nqba.audit.merkle import canonical_json, leaf_hash
from nqba.config import Settings
from nqba.store.batch import WriteBatch
from nqba.store.models import AuditCheckpoint, AuditLeaf

T = TypeVar("T")


class LogEntry(NamedTuple):
    """What one leaf records: the record itself, and the rows it belongs to."""

    organisation_id: str
    decision_id: str | None
    record: Mapping[str, Any]


class HashedEntry(NamedTuple):
    """An entry with its canonical JSON and leaf hash, made before the head's lock is taken."""

    entry: LogEntry
    payload: bytes
    digest: bytes


def hash_entries(entries: Sequence[LogEntry]) -> list[HashedEntry]:
    """The entries' canonical JSON and leaf hashes (they need no lock: see append_many)."""
    hashed = []
    for entry in entries:
        payload = canonical_json(entry.record)
        hashed.append(HashedEntry(entry, payload, leaf_hash(payload)))
    return hashed


@dataclass(frozen=True)
class InclusionProof:
    """Leaf ``seq`` is in the tree of ``tree_size`` leaves with ``root_hash``: ``path`` shows it."""

    seq: int
    tree_size: int
    leaf_hash: bytes
    root_hash: bytes
    path: list[bytes]


@dataclass(frozen=True)
class ConsistencyProof:
    """The tree of ``first`` leaves is a prefix of the tree of ``second``: ``path`` shows it."""

    first: int
    second: int
    first_root: bytes
    second_root: bytes
    path: list[bytes]


class AuditLog:
    """Appends leaves (and, every ``checkpoint_every`` leaves, a signed checkpoint)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.signer = CheckpointSigner.from_settings(settings)
        self.checkpoint_every = settings.audit_checkpoint_every

    @classmethod
    def from_settings(cls, settings: Settings) -> AuditLog:
        """The log as configured (origin, signing key, checkpoint interval).

        Raises AuditKeyError when ``audit_signing_key`` is not a base64 32-byte seed.
        """
        return cls(settings)

    @property
    def origin(self) -> str:
        """The log's name in its checkpoints."""
        return self.signer.origin

    def append(
        self,
        session: Session,
        *,
        organisation_id: str,
        decision_id: str | None,
        record: Mapping[str, Any],
    ) -> AuditLeaf:
        """Add ``record`` as the next leaf, in ``session``'s transaction (not committed here);
        see :meth:`append_many`."""
        return self.append_many(session, [LogEntry(organisation_id, decision_id, record)])[0]

    def lock_for_append(self, batch: WriteBatch) -> repo.HeadState:
        """Take the head's write lock in ``batch``'s transaction, before the entries of an
        :meth:`append_many` are known (see ``GroupWriter``'s joining batches)."""
        return repo.lock_head_for_append(batch)

    def append_many(
        self,
        session: Session,
        entries: Sequence[LogEntry] | Sequence[HashedEntry],
        batch: WriteBatch | None = None,
        head: repo.HeadState | None = None,
    ) -> list[AuditLeaf]:
        """Add the entries' records as the next leaves, in order, in ``session``'s transaction.

        Entries not given hashed (:func:`hash_entries`) are hashed first, before the head's
        lock is taken unless ``head`` says it is held. The head is then locked and read (unless
        ``head`` is given); its size, compact range, the leaf rows and the inner nodes are
        written with ``batch`` when the caller sends it, or before this returns if no batch is
        given.
        The returned objects are not in the session, and nothing of the session is flushed, so
        a changed row of the caller's is written once, at its commit, with the seq the caller
        takes from its leaf. For every size the append passes through that is a multiple of
        ``audit_checkpoint_every``, a checkpoint of it is signed in the same transaction (from
        the head's compact range: O(log n)). ``head``: the head as :meth:`lock_for_append`
        read it in this transaction, for entries known only once the lock was taken.
        """
        if not entries:
            return []
        own_batch = batch is None
        if batch is None:
            batch = WriteBatch(session)
        hashed = [e if isinstance(e, HashedEntry) else hash_entries([e])[0] for e in entries]
        every = self.checkpoint_every
        start, roots = repo.append_to_head(
            batch, [h.digest for h in hashed], lambda size: size % every == 0, head
        )
        leaves = [
            AuditLeaf(
                seq=start + offset,
                leaf_hash=digest,
                payload=payload.decode("utf-8"),
                organisation_id=entry.organisation_id,
                decision_id=entry.decision_id,
            )
            for offset, (entry, payload, digest) in enumerate(hashed)
        ]
        batch.insert_objects(leaves)
        for size, root in roots.items():
            repo.add_checkpoint(session, self.signer.sign(size, root), batch)
        if own_batch:
            batch.send()
        return leaves

    def checkpoint(self, session: Session) -> AuditCheckpoint:
        """Sign a checkpoint of the current size now, unless the latest one already has it.

        Holds the head row's lock while signing, so no append slips in between reading the
        size and the leaves. Returns the new checkpoint, or the latest when the size has not
        changed since. An empty log gets a checkpoint of size 0 (root SHA-256 of nothing).
        """
        size = repo.lock_head(session)
        latest = repo.latest_checkpoint(session)
        if latest is not None and latest.tree_size == size:
            return latest
        return self._sign(session, size)

    def _sign(self, session: Session, size: int) -> AuditCheckpoint:
        """Sign the head's root (kept as a compact range at each append: O(log n)); the
        caller holds the head's lock."""
        head_size, root = repo.head_root(session)
        if head_size != size:  # the caller holds the head's lock: this cannot move
            raise AuditIntegrityError(f"audit head is at {head_size}, expected {size}")
        return repo.add_checkpoint(session, self.signer.sign(size, root))

    def tree_size(self, session: Session) -> int:
        """The number of leaves appended so far."""
        return repo.head_size(session)

    def leaf_hashes(self, session: Session, size: int | None = None) -> list[bytes]:
        """Leaf hashes of seq 0..size-1 (the whole log by default), in order.

        Reads all of them: O(n) rows, 32 bytes each. Raises AuditIntegrityError on a gap.
        """
        return repo.leaf_hashes(session, self._size(session, size, "tree size"))

    def root(self, session: Session, size: int | None = None) -> bytes:
        """The RFC 6962 root of the first ``size`` leaves (the whole log by default), from
        the stored nodes: O(log n) reads."""
        size = self._size(session, size, "tree size")
        nodes = repo.tree_nodes(session, merkle.root_nodes(size))
        return self._proven(lambda: merkle.root_from_nodes(size, nodes))

    def inclusion_proof(self, session: Session, seq: int, tree_size: int) -> InclusionProof:
        """Audit path of leaf ``seq`` in the tree of ``tree_size`` leaves, with that root.

        AuditRangeError when ``seq`` or ``tree_size`` is negative, ``seq >= tree_size``, or
        ``tree_size`` is beyond the log. Reads O(log^2 n) stored nodes; AuditIntegrityError
        when one is missing.
        """
        if seq < 0:
            raise AuditRangeError(f"seq must be non-negative, got {seq}")
        size = self._size(session, tree_size, "tree_size")
        if seq >= size:
            raise AuditRangeError(f"seq {seq} is not below tree_size {size}")
        keys = merkle.inclusion_nodes(seq, size) | merkle.root_nodes(size) | {(0, seq)}
        nodes = repo.tree_nodes(session, keys)
        if (0, seq) not in nodes:
            raise AuditIntegrityError(f"audit log is damaged: leaf {seq} is missing")
        return self._proven(
            lambda: InclusionProof(
                seq=seq,
                tree_size=size,
                leaf_hash=nodes[(0, seq)],
                root_hash=merkle.root_from_nodes(size, nodes),
                path=merkle.inclusion_proof_from_nodes(seq, size, nodes),
            )
        )

    def consistency_proof(self, session: Session, first: int, second: int) -> ConsistencyProof:
        """Proof that the tree of ``first`` leaves is a prefix of the tree of ``second``.

        AuditRangeError when ``first`` is not in 1..second or ``second`` is beyond the log.
        Reads O(log^2 n) stored nodes; AuditIntegrityError when one is missing.
        """
        size = self._size(session, second, "second")
        if first < 1:
            raise AuditRangeError(
                f"first must be at least 1 (a proof from the empty tree proves nothing), "
                f"got {first}"
            )
        if first > size:
            raise AuditRangeError(f"first {first} is larger than second {size}")
        keys = (
            merkle.consistency_nodes(first, size)
            | merkle.root_nodes(first)
            | merkle.root_nodes(size)
        )
        nodes = repo.tree_nodes(session, keys)
        return self._proven(
            lambda: ConsistencyProof(
                first=first,
                second=size,
                first_root=merkle.root_from_nodes(first, nodes),
                second_root=merkle.root_from_nodes(size, nodes),
                path=merkle.consistency_proof_from_nodes(first, size, nodes),
            )
        )

    @staticmethod
    def _proven(build: Callable[[], T]) -> T:
        """``build()``, with a node missing from the store reported as a damaged log."""
        try:
            return build()
        except merkle.ProofError as e:
            raise AuditIntegrityError(f"audit log is damaged: {e}") from None

    def latest_checkpoint(self, session: Session) -> AuditCheckpoint | None:
        """The checkpoint of the largest tree, or None before the first."""
        return repo.latest_checkpoint(session)

    def checkpoint_at(self, session: Session, tree_size: int) -> AuditCheckpoint | None:
        """The checkpoint of exactly ``tree_size`` leaves, or None."""
        return repo.checkpoint_at(session, tree_size)

    def leaf(self, session: Session, seq: int) -> AuditLeaf | None:
        """Leaf ``seq``, or None."""
        return repo.get_leaf(session, seq)

    def _size(self, session: Session, size: int | None, name: str) -> int:
        current = repo.head_size(session)
        if size is None:
            return current
        if size < 0:
            raise AuditRangeError(f"{name} must be non-negative, got {size}")
        if size > current:
            raise AuditRangeError(f"{name} {size} is beyond the log, which has {current} leaves")
        return size
