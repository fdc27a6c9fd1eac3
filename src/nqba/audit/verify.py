"""Verify the audit log from scratch: an export file offline, or a live database.

Everything is recomputed: each leaf hash from its payload, the sequence numbers (0..n-1, in
order, none missing, none beyond the recorded size), the root at every checkpoint and its
Ed25519 signature, and, where decision rows are available, each decision's audit record
compared with the payload of its leaf. Problems are located: the report names the first bad
sequence number and what is wrong with it.

What each check can locate:
- a changed payload, a missing, extra or out-of-order leaf, a leaf whose columns disagree with
  its payload, and a decision row that no longer matches its leaf: the exact seq;
- a leaf changed together with its stored hash (and no decision row to compare with): only
  the range between the last checkpoint that still verifies and the first that does not;
- leaves after the latest checkpoint are covered by no signature yet; the report counts them.

Leaves are streamed; the verifier keeps one 32-byte hash per leaf and computes the root at
every checkpoint in one pass (a compact range of at most log2(n) subtree roots).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy.orm import Session

from nqba.audit import repository as repo
from nqba.audit.checkpoints import (
    SignedCheckpoint,
    key_id_of,
    load_public_key,
    raw_public_key,
    verify_checkpoint,
)
from nqba.audit.errors import AuditError, AuditKeyError, CheckpointError
from nqba.audit.merkle import (
    CanonicalJSONError,
    NodeKey,
    canonical_json,
    compact_append_nodes,
    compact_root,
    leaf_hash,
)

EXPORT_FORMAT = "nqba.audit-export/v1"
"""The ``format`` of the header line of an export file."""

DETAILED_MISMATCHES = 10
"""Decision mismatches whose differing fields are spelled out (each needs its leaf's payload)."""

ProblemKind = Literal["export", "leaf", "decision", "range", "checkpoint", "node"]


_RANK = {"export": 0, "leaf": 0, "decision": 1, "range": 2, "node": 2, "checkpoint": 3}


class ExportFormatError(AuditError, ValueError):
    """The file is not an audit export (no readable header line of the known format)."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the log, located as precisely as the evidence allows.

    ``seq`` is the bad sequence number (the first of a range when ``last_seq`` is set);
    ``checkpoint`` the tree size of the checkpoint concerned; both None for a problem of the
    export as a whole.
    """

    kind: ProblemKind
    message: str
    seq: int | None = None
    last_seq: int | None = None
    checkpoint: int | None = None

    @property
    def order(self) -> tuple[int, int]:
        """Where the problem sits in the log: by seq, a checkpoint after its leaves; at one
        seq, a leaf's own problem before a decision's, before a range between checkpoints."""
        rank = _RANK[self.kind]
        if self.seq is not None:
            return (self.seq, rank)
        if self.checkpoint is not None:
            return (self.checkpoint, rank)
        return (-1, rank)

    def describe(self) -> str:
        """One line: where, then what."""
        if self.seq is not None and self.last_seq is not None and self.last_seq != self.seq:
            return f"seq {self.seq}..{self.last_seq}: {self.message}"
        if self.seq is not None:
            return f"seq {self.seq}: {self.message}"
        if self.checkpoint is not None:
            return f"checkpoint at tree size {self.checkpoint}: {self.message}"
        return self.message

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "kind": self.kind,
            "seq": self.seq,
            "last_seq": self.last_seq,
            "checkpoint": self.checkpoint,
            "message": self.message,
            "description": self.describe(),
        }


@dataclass
class VerifyReport:
    """What verification found: the recomputed tree, what was checked, and every problem."""

    source: str
    tree_size: int
    root_hash: bytes
    recorded_size: int | None
    key_id: str
    checkpoints: int
    checkpoints_verified: int
    latest_verified_checkpoint: int | None
    decisions_checked: int
    unsigned_leaves: int
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No problem found."""
        return not self.problems

    @property
    def first_problem(self) -> Problem | None:
        """The problem earliest in the log (problems are kept in log order)."""
        return self.problems[0] if self.problems else None

    @property
    def first_bad_seq(self) -> int | None:
        """The first bad sequence number, where a problem names one."""
        return next((p.seq for p in self.problems if p.seq is not None), None)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (hashes hex)."""
        first = self.first_problem
        return {
            "ok": self.ok,
            "source": self.source,
            "tree_size": self.tree_size,
            "root_hash": self.root_hash.hex(),
            "recorded_size": self.recorded_size,
            "key_id": self.key_id,
            "checkpoints": self.checkpoints,
            "checkpoints_verified": self.checkpoints_verified,
            "latest_verified_checkpoint": self.latest_verified_checkpoint,
            "decisions_checked": self.decisions_checked,
            "unsigned_leaves": self.unsigned_leaves,
            "first_bad_seq": self.first_bad_seq,
            "first_problem": None if first is None else first.to_dict(),
            "problems": [p.to_dict() for p in self.problems],
        }


class RootAccumulator:
    """RFC 6962 roots of a growing prefix, in O(log n) memory: the log's compact range
    (:func:`nqba.audit.merkle.compact_append_nodes`), fed one leaf hash at a time."""

    def __init__(self) -> None:
        self._nodes: list[bytes] = []
        self.size = 0

    def push(self, digest: bytes) -> list[tuple[NodeKey, bytes]]:
        """Append one leaf hash; the inner nodes it completes, as ``((level, index), hash)``."""
        self._nodes, completed = compact_append_nodes(self._nodes, self.size, digest)
        self.size += 1
        return completed

    def root(self) -> bytes:
        """Root of the leaves pushed so far (EMPTY_ROOT for none)."""
        return compact_root(self._nodes)


@dataclass
class _Mismatch:
    decision_id: str
    seq: int
    record: Mapping[str, Any] | None


class Verifier:
    """Feed it leaves (in stored order), checkpoints and decision records; then ``finish``.

    ``recorded_size`` is the size the log claims (``audit_head`` or the export header);
    ``check_decisions`` says that decision rows are given, so every leaf naming a decision
    must be claimed by one.
    """

    def __init__(
        self,
        public_key: Ed25519PublicKey,
        origin: str,
        *,
        source: str,
        recorded_size: int | None,
        check_decisions: bool,
    ) -> None:
        self.public_key = public_key
        self.key_id = key_id_of(public_key)
        self.origin = origin
        self.source = source
        self.recorded_size = recorded_size
        self.check_decisions = check_decisions
        self._problems: list[Problem] = []
        self._hashes: list[bytes] = []
        self._hash_by_seq: dict[int, bytes] = {}
        self._leaf_decision: dict[int, str] = {}
        self._claimed: set[int] = set()
        self._next = 0
        self._beyond_reported = False
        self._checkpoints: list[SignedCheckpoint] = []
        self._pending: list[tuple[str, int, bytes, Mapping[str, Any]]] = []
        self._mismatches: list[_Mismatch] = []
        self._decisions = 0

    def problem(self, kind: ProblemKind, message: str, **where: int | None) -> None:
        """Record a problem (for drivers that find one in their own input)."""
        self._problems.append(Problem(kind, message, **where))

    def leaf(
        self,
        seq: int,
        stored_hash: bytes,
        payload: str,
        organisation_id: str,
        decision_id: str | None,
    ) -> None:
        """Check one leaf, given in the order the log stores it."""
        expected = self._next
        if seq > expected:
            gap = seq - expected
            what = f"leaf {expected} is missing" if gap == 1 else f"leaves {expected}..{seq - 1}"
            what += "" if gap == 1 else " are missing"
            self.problem("leaf", f"{what}: the next stored leaf is seq {seq}", seq=expected)
            self._next = seq + 1
        elif seq < expected:
            self.problem(
                "leaf", f"seq {seq} is out of order: it follows seq {expected - 1}", seq=seq
            )
        else:
            self._next = seq + 1
        if (
            self.recorded_size is not None
            and seq >= self.recorded_size
            and not self._beyond_reported
        ):
            self._beyond_reported = True
            self.problem(
                "leaf",
                f"leaf {seq} is beyond the log's recorded size {self.recorded_size} "
                "(a row inserted behind the log's back)",
                seq=seq,
            )
        try:
            data = payload.encode("utf-8")
        except UnicodeEncodeError:
            self.problem("leaf", "payload is not valid text", seq=seq)
            data = payload.encode("utf-8", "surrogatepass")
        digest = leaf_hash(data)
        if digest != stored_hash:
            self.problem(
                "leaf",
                f"payload does not match its stored leaf hash (stored {stored_hash.hex()}, "
                f"payload gives {digest.hex()})",
                seq=seq,
            )
        self._check_columns(seq, payload, organisation_id, decision_id)
        self._hashes.append(digest)
        self._hash_by_seq.setdefault(seq, digest)
        if decision_id is not None:
            self._leaf_decision.setdefault(seq, decision_id)

    def _check_columns(
        self, seq: int, payload: str, organisation_id: str, decision_id: str | None
    ) -> None:
        """The leaf's unhashed columns must agree with what its payload says."""
        try:
            body = json.loads(payload)
        except ValueError:
            self.problem("leaf", "payload is not JSON", seq=seq)
            return
        if not isinstance(body, dict):
            return
        if "organisation_id" in body and body["organisation_id"] != organisation_id:
            self.problem(
                "leaf",
                f"organisation_id column {organisation_id!r} differs from the payload's "
                f"{body['organisation_id']!r}",
                seq=seq,
            )
        if "decision_id" in body and body["decision_id"] != decision_id:
            self.problem(
                "leaf",
                f"decision_id column {decision_id!r} differs from the payload's "
                f"{body['decision_id']!r}",
                seq=seq,
            )

    def checkpoint(self, checkpoint: SignedCheckpoint) -> None:
        """Take a checkpoint; its signature and root are checked in ``finish``."""
        self._checkpoints.append(checkpoint)

    def decision(self, decision_id: str, audit_seq: int, record: Mapping[str, Any]) -> None:
        """Compare a decision's recomputed audit record with the payload of its leaf."""
        self._decisions += 1
        try:
            digest = leaf_hash(canonical_json(record))
        except CanonicalJSONError as e:
            self.problem(
                "decision",
                f"decision {decision_id}'s record has no canonical form ({e})",
                seq=audit_seq,
            )
            return
        if audit_seq in self._hash_by_seq:
            self._compare_decision(decision_id, audit_seq, digest, record)
        else:
            self._pending.append((decision_id, audit_seq, digest, record))

    def _compare_decision(
        self, decision_id: str, seq: int, digest: bytes, record: Mapping[str, Any]
    ) -> None:
        self._claimed.add(seq)
        owner = self._leaf_decision.get(seq)
        if owner != decision_id:
            self.problem(
                "decision",
                f"decision {decision_id} has audit_seq {seq}, but leaf {seq} records "
                f"{'no decision' if owner is None else 'decision ' + owner}",
                seq=seq,
            )
        elif digest != self._hash_by_seq[seq]:
            keep = record if len(self._mismatches) < DETAILED_MISMATCHES else None
            self._mismatches.append(_Mismatch(decision_id, seq, keep))

    def finish(self, payload_of: Callable[[Iterable[int]], Mapping[int, str]]) -> VerifyReport:
        """Check what needs the whole log; ``payload_of`` fetches payloads for messages."""
        size = len(self._hashes)
        if self.recorded_size is not None and self._next < self.recorded_size:
            missing = self._next
            self.problem(
                "leaf",
                f"leaf {missing} is missing: the log's recorded size is {self.recorded_size} "
                f"but its last leaf is seq {missing - 1}",
                seq=missing,
            )
        for decision_id, seq, digest, record in self._pending:
            if seq in self._hash_by_seq:
                self._compare_decision(decision_id, seq, digest, record)
            else:
                self._claimed.add(seq)
                self.problem(
                    "decision",
                    f"decision {decision_id} has audit_seq {seq}, but there is no leaf {seq}",
                    seq=seq,
                )
        self._report_mismatches(payload_of)
        if self.check_decisions:
            for seq, decision_id in self._leaf_decision.items():
                if seq not in self._claimed:
                    self.problem(
                        "decision",
                        f"leaf {seq} records decision {decision_id}, but no decision row has "
                        f"audit_seq {seq}",
                        seq=seq,
                    )
        verified, latest = self._check_checkpoints()
        self._drop_explained_ranges()
        self._problems.sort(key=lambda p: p.order)
        accumulator_root = self._root_of_all()
        return VerifyReport(
            source=self.source,
            tree_size=size,
            root_hash=accumulator_root,
            recorded_size=self.recorded_size,
            key_id=self.key_id,
            checkpoints=len(self._checkpoints),
            checkpoints_verified=verified,
            latest_verified_checkpoint=latest,
            decisions_checked=self._decisions,
            unsigned_leaves=size - (latest or 0),
            problems=self._problems,
        )

    def _report_mismatches(self, payload_of: Callable[[Iterable[int]], Mapping[int, str]]) -> None:
        wanted = [m.seq for m in self._mismatches if m.record is not None]
        payloads = payload_of(wanted) if wanted else {}
        for m in self._mismatches:
            detail = ""
            if m.record is not None and m.seq in payloads:
                detail = _differing_fields(m.record, payloads[m.seq])
            self.problem(
                "decision",
                f"decision {m.decision_id}'s row no longer matches leaf {m.seq}{detail}",
                seq=m.seq,
            )

    def _check_checkpoints(self) -> tuple[int, int | None]:
        """Check every checkpoint's signature and root; return (verified, latest verified)."""
        accumulator = RootAccumulator()
        hashes = iter(self._hashes)
        verified = 0
        last_good = 0
        latest: int | None = None
        for cp in sorted(self._checkpoints, key=lambda c: c.tree_size):
            where = {"checkpoint": cp.tree_size}
            try:
                verify_checkpoint(self.public_key, cp)
            except CheckpointError as e:
                self.problem("checkpoint", _strip_prefix(str(e), cp.tree_size), **where)
                continue
            if cp.origin != self.origin:
                self.problem(
                    "checkpoint",
                    f"signed for origin {cp.origin!r}, but this log is {self.origin!r}",
                    **where,
                )
                continue
            if cp.tree_size > len(self._hashes):
                held = len(self._hashes)
                what = f"a checkpoint signs {cp.tree_size} leaves but the log holds {held}"
                if self._next == held:  # seqs 0..held-1 are all there: the tail is missing
                    self.problem("leaf", f"leaf {held} is missing: {what}", seq=held)
                else:
                    self.problem("range", what, seq=last_good, last_seq=cp.tree_size - 1)
                continue
            while accumulator.size < cp.tree_size:
                accumulator.push(next(hashes))
            root = accumulator.root()
            if root == cp.root_hash:
                verified += 1
                last_good = cp.tree_size
                latest = cp.tree_size
                continue
            self.problem(
                "range",
                f"the checkpoint at tree size {cp.tree_size} signs root {cp.root_hash.hex()}, "
                f"the leaves give {root.hex()}: a leaf in this range is not what was signed",
                seq=last_good,
                last_seq=cp.tree_size - 1,
            )
        return verified, latest

    def _drop_explained_ranges(self) -> None:
        """A range or node problem that holds an exactly located problem, or a narrower node
        problem, adds nothing (a changed leaf changes every node above it); drop it."""
        exact = sorted(p.seq for p in self._problems if p.seq is not None and p.last_seq is None)
        nodes = [
            (p.seq, p.last_seq)
            for p in self._problems
            if p.kind == "node" and p.seq is not None and p.last_seq is not None
        ]
        kept: list[Problem] = []
        for p in self._problems:
            if p.kind in ("range", "node") and p.seq is not None and p.last_seq is not None:
                lo, hi = p.seq, p.last_seq
                if any(lo <= s <= hi for s in exact):
                    continue
                if any(lo <= a and b <= hi and (a, b) != (lo, hi) for a, b in nodes):
                    continue
            kept.append(p)
        self._problems = kept

    def _root_of_all(self) -> bytes:
        accumulator = RootAccumulator()
        for digest in self._hashes:
            accumulator.push(digest)
        return accumulator.root()


def _strip_prefix(message: str, tree_size: int) -> str:
    prefix = f"checkpoint at size {tree_size}: "
    return message[len(prefix) :] if message.startswith(prefix) else message


def _differing_fields(record: Mapping[str, Any], payload: str) -> str:
    """``" (fields differ: a, b)"`` between a recomputed record and a leaf payload."""
    try:
        stored = json.loads(payload)
    except ValueError:
        return " (the leaf payload is not JSON)"
    if not isinstance(stored, dict):
        return ""
    recomputed = json.loads(canonical_json(record))
    keys = sorted(set(stored) | set(recomputed))
    differ = [k for k in keys if stored.get(k, _MISSING) != recomputed.get(k, _MISSING)]
    return f" (fields differ: {', '.join(differ)})" if differ else ""


_MISSING = object()


# --- drivers ------------------------------------------------------------------------------


def _fail_header(path: Path, why: str) -> ExportFormatError:
    return ExportFormatError(f"{path} is not an NQBA audit export: {why}")


def read_header(path: Path) -> dict[str, Any]:
    """The header line of an export file; ExportFormatError when it is not one."""
    try:
        with path.open("r", encoding="utf-8") as f:
            first = f.readline()
    except FileNotFoundError:
        raise ExportFormatError(f"no such file: {path}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ExportFormatError(f"cannot read {path}: {e}") from None
    try:
        header = json.loads(first)
    except ValueError:
        raise _fail_header(path, "its first line is not JSON") from None
    if not isinstance(header, dict) or header.get("format") != EXPORT_FORMAT:
        raise _fail_header(path, f"its first line is not a {EXPORT_FORMAT} header")
    for name, kind in (("origin", str), ("public_key", str), ("key_id", str)):
        if not isinstance(header.get(name), kind):
            raise _fail_header(path, f"the header has no {name}")
    size = header.get("tree_size")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise _fail_header(path, "the header's tree_size is not a non-negative integer")
    return header


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    with path.open("r", encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if number > 1 and line.strip():
                yield number, line


def _payloads_in_file(path: Path) -> Callable[[Iterable[int]], Mapping[int, str]]:
    """A second pass over the file that picks out the payloads of the given seqs."""

    def fetch(seqs: Iterable[int]) -> Mapping[int, str]:
        wanted = set(seqs)
        found: dict[int, str] = {}
        for _, line in _lines(path):
            if not wanted - found.keys():
                break
            try:
                item = json.loads(line)
            except ValueError:
                continue
            seq = item.get("seq") if isinstance(item, dict) else None
            if item.get("kind") == "leaf" and seq in wanted and seq not in found:
                payload = item.get("payload")
                if isinstance(payload, str):
                    found[seq] = payload
        return found

    return fetch


def _int(item: Mapping[str, Any], name: str) -> int:
    value = item[name]
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} is not an integer")
    return value


def _str(item: Mapping[str, Any], name: str, optional: bool = False) -> Any:
    value = item[name]
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise TypeError(f"{name} is not a string")
    return value


def _hash(item: Mapping[str, Any], name: str, size: int) -> bytes:
    value = bytes.fromhex(_str(item, name))
    if len(value) != size:
        raise ValueError(f"{name} is not {size} bytes")
    return value


def verify_export(path: Path, public_key: str | bytes | None = None) -> VerifyReport:
    """Verify an export file offline (no database), streaming it line by line.

    ``public_key`` (base64 or raw), when given out of band, must equal the export's key; the
    checkpoints are verified with it. ExportFormatError when the file is not an export.
    """
    header = read_header(path)
    try:
        header_key = load_public_key(header["public_key"])
    except AuditKeyError as e:
        raise _fail_header(path, f"the header's public_key is unusable ({e})") from None
    problems: list[Problem] = []
    key = header_key
    if public_key is not None:
        key = load_public_key(public_key)
        if raw_public_key(key) != raw_public_key(header_key):
            problems.append(
                Problem(
                    "export",
                    f"the export's public key (key id {key_id_of(header_key)}) is not the key "
                    f"given out of band (key id {key_id_of(key)})",
                )
            )
    if header["key_id"] != key_id_of(header_key):
        problems.append(
            Problem(
                "export",
                f"the header's key_id {header['key_id']} is not the id "
                f"{key_id_of(header_key)} of its public key",
            )
        )
    verifier = Verifier(
        key,
        header["origin"],
        source=str(path),
        recorded_size=header["tree_size"],
        check_decisions=bool(header.get("decisions", False)),
    )
    for p in problems:
        verifier.problem(p.kind, p.message)
    for number, line in _lines(path):
        _feed_line(verifier, number, line)
    return verifier.finish(_payloads_in_file(path))


def _feed_line(verifier: Verifier, number: int, line: str) -> None:
    try:
        item = json.loads(line)
    except ValueError:
        verifier.problem("export", f"line {number} is not JSON")
        return
    kind = item.get("kind") if isinstance(item, dict) else None
    seq = item.get("seq") if isinstance(item, dict) else None
    try:
        if kind == "leaf":
            verifier.leaf(
                _int(item, "seq"),
                _hash(item, "leaf_hash", 32),
                _str(item, "payload"),
                _str(item, "organisation_id"),
                _str(item, "decision_id", optional=True),
            )
        elif kind == "checkpoint":
            verifier.checkpoint(
                SignedCheckpoint(
                    tree_size=_int(item, "tree_size"),
                    root_hash=_hash(item, "root_hash", 32),
                    origin=_str(item, "origin"),
                    key_id=_str(item, "key_id"),
                    signature=_b64(_str(item, "signature")),
                )
            )
        elif kind == "decision":
            record = item["record"]
            if not isinstance(record, dict):
                raise TypeError("record is not an object")
            verifier.decision(_str(item, "decision_id"), _int(item, "audit_seq"), record)
        else:
            verifier.problem("export", f"line {number} has an unknown kind {kind!r}")
    except (KeyError, TypeError, ValueError) as e:
        what = f"line {number}: malformed {kind} ({type(e).__name__}: {e})"
        if kind == "leaf" and isinstance(seq, int) and not isinstance(seq, bool):
            verifier.problem("leaf", what, seq=seq)
        else:
            verifier.problem("export", what)


def _b64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("signature is not base64") from None


def verify_database(
    session: Session, public_key: str | bytes | Ed25519PublicKey, origin: str
) -> VerifyReport:
    """Verify the log in a live database, decision rows included, in one consistent snapshot.

    Uses ``nqba.decisions.records.decision_record`` on every decision with an ``audit_seq``.
    """
    from nqba.decisions.records import decision_record

    key = load_public_key(public_key)
    repo.snapshot(session)
    url = session.get_bind().engine.url.render_as_string(hide_password=True)
    verifier = Verifier(
        key, origin, source=url, recorded_size=repo.head_size(session), check_decisions=True
    )
    hashes: list[bytes] = []
    for row in repo.iter_leaf_rows(session):
        verifier.leaf(row.seq, row.leaf_hash, row.payload, row.organisation_id, row.decision_id)
        hashes.append(bytes(row.leaf_hash))
    _check_nodes(verifier, hashes, repo.iter_nodes(session))
    for cp in repo.all_checkpoints(session):
        verifier.checkpoint(SignedCheckpoint.of(cp, cp.created_at))
    for decision in repo.iter_recorded_decisions(session):
        assert decision.audit_seq is not None  # the query selects only these
        verifier.decision(decision.id, decision.audit_seq, decision_record(decision))

    def payloads(seqs: Iterable[int]) -> Mapping[int, str]:
        found: dict[int, str] = {}
        for seq in seqs:
            leaf = repo.get_leaf(session, seq)
            if leaf is not None:
                found[seq] = leaf.payload
        return found

    return verifier.finish(payloads)


def _check_nodes(
    verifier: Verifier, hashes: list[bytes], stored: Iterable[tuple[int, int, bytes]]
) -> None:
    """The stored inner nodes (what roots and proofs are served from) must be those the
    leaves give: one recomputed as the leaves were appended, none missing and none extra."""
    expected: dict[NodeKey, bytes] = {}
    accumulator = RootAccumulator()
    for digest in hashes:
        expected.update(accumulator.push(digest))
    for level, index, digest in stored:
        want = expected.pop((level, index), None)
        first, last = index << level, ((index + 1) << level) - 1
        if want is None:
            verifier.problem(
                "node",
                f"stored node ({level}, {index}) over leaves {first}..{last} is not in the tree "
                "the leaves make",
                seq=first,
                last_seq=last,
            )
        elif want != digest:
            verifier.problem(
                "node",
                f"stored node ({level}, {index}) over leaves {first}..{last} is not the hash of "
                "those leaves: proofs served from it would not verify",
                seq=first,
                last_seq=last,
            )
    for (level, index), _ in sorted(expected.items()):
        first, last = index << level, ((index + 1) << level) - 1
        verifier.problem(
            "node",
            f"node ({level}, {index}) over leaves {first}..{last} is not stored",
            seq=first,
            last_seq=last,
        )
