"""Verification finds tampering behind the app's back and names the first bad seq: on an
export file offline and against the live database, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from nqba.audit.checkpoints import CheckpointSigner
from nqba.audit.errors import AuditIntegrityError
from nqba.audit.export import export_log
from nqba.audit.merkle import leaf_hash, root_hash
from nqba.audit.verify import (
    EXPORT_FORMAT,
    ExportFormatError,
    RootAccumulator,
    VerifyReport,
    verify_database,
    verify_export,
)
from nqba.services import Services, build_services
from nqba.store.session import read_session
from tests.audit.logdata import (
    TAMPERING,
    append_decisions,
    append_plain,
    forged_leaf_hash,
    new_organisation,
    swap_seqs,
    tamper,
)
from tests.support.platform import platform_settings

EVERY = 4
DECISIONS = 10  # seq 0..9; checkpoints at tree sizes 4 and 8


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


def export_to(services: Services, path: Path) -> Path:
    """Export the log of ``services`` to ``path``."""
    with read_session(services.session_factory) as session, path.open("w") as out:
        export_log(session, services.audit.signer, out)
    return path


def verify_live(services: Services) -> VerifyReport:
    """Verify the database of ``services`` directly."""
    with read_session(services.session_factory) as session:
        return verify_database(
            session, services.audit.signer.public_key, services.settings.audit_log_origin
        )


def verify_by(mode: str, services: Services, tmp_path: Path) -> VerifyReport:
    """Verify offline on a fresh export, or live against the database."""
    if mode == "export":
        return verify_export(export_to(services, tmp_path / "audit.jsonl"))
    return verify_live(services)


@pytest.fixture
def decision_log(audit_services: Services) -> list[str]:
    """Ten decisions, each with its leaf (seq 0..9); their ids in seq order."""
    org = new_organisation(audit_services)
    return append_decisions(audit_services, org, DECISIONS)


@pytest.mark.parametrize("mode", ["export", "database"])
def test_untouched_log_verifies_with_its_size_root_and_checkpoints(
    audit_services: Services, decision_log: list[str], mode: str, tmp_path: Path
) -> None:
    report = verify_by(mode, audit_services, tmp_path)
    assert report.ok, [p.describe() for p in report.problems]
    with read_session(audit_services.session_factory) as session:
        root = audit_services.audit.root(session)
    assert (report.tree_size, report.root_hash) == (DECISIONS, root)
    assert (report.checkpoints, report.checkpoints_verified) == (2, 2)
    assert report.latest_verified_checkpoint == 8
    assert report.unsigned_leaves == 2
    assert report.decisions_checked == DECISIONS
    assert report.first_bad_seq is None


@pytest.mark.parametrize("mode", ["export", "database"])
@pytest.mark.parametrize("case", sorted(TAMPERING))
def test_tampering_behind_the_apps_back_names_the_first_bad_seq(
    audit_services: Services, decision_log: list[str], mode: str, case: str, tmp_path: Path
) -> None:
    change, seq, words = TAMPERING[case]
    change(audit_services, decision_log)
    report = verify_by(mode, audit_services, tmp_path)
    assert not report.ok
    first = report.first_problem
    assert first is not None
    assert report.first_bad_seq == seq, [p.describe() for p in report.problems]
    assert first.seq == seq
    assert words in first.describe(), first.describe()


@pytest.mark.parametrize("mode", ["export", "database"])
@pytest.mark.parametrize(
    ("column", "value"),
    [("root_hash", bytes(32)), ("signature", bytes(64))],
)
def test_changed_checkpoint_root_or_signature_fails_at_that_checkpoint(
    audit_services: Services,
    decision_log: list[str],
    mode: str,
    column: str,
    value: bytes,
    tmp_path: Path,
) -> None:
    tamper(
        audit_services, f"UPDATE audit_checkpoints SET {column} = :v WHERE tree_size = 8", v=value
    )
    report = verify_by(mode, audit_services, tmp_path)
    first = report.first_problem
    assert first is not None
    assert first.kind == "checkpoint"
    assert first.checkpoint == 8
    assert "signature does not match" in first.describe()
    assert report.checkpoints_verified == 1
    assert report.first_bad_seq is None  # the leaves are intact


@pytest.mark.parametrize("mode", ["export", "database"])
def test_checkpoint_forged_with_another_key_is_refused(
    audit_services: Services, decision_log: list[str], mode: str, tmp_path: Path
) -> None:
    with read_session(audit_services.session_factory) as session:
        hashes = audit_services.audit.leaf_hashes(session)
    other = CheckpointSigner.from_seed(b"\x07" * 32, audit_services.settings.audit_log_origin)
    forged = other.sign(10, root_hash(hashes))
    tamper(
        audit_services,
        "INSERT INTO audit_checkpoints (tree_size, root_hash, origin, key_id, signature, "
        "created_at) VALUES (10, :r, :o, :k, :s, CURRENT_TIMESTAMP)",
        r=forged.root_hash,
        o=forged.origin,
        k=forged.key_id,
        s=forged.signature,
    )
    report = verify_by(mode, audit_services, tmp_path)
    first = report.first_problem
    assert first is not None
    assert first.checkpoint == 10
    assert f"names key {other.key_id}" in first.message


@pytest.mark.parametrize("mode", ["export", "database"])
def test_changed_leaf_without_a_decision_is_located_between_checkpoints(
    audit_services: Services, mode: str, tmp_path: Path
) -> None:
    """A leaf changed together with its stored hash, with no decision row to compare, is
    visible through the checkpoint that signed it: the range between checkpoints; in the
    database also through the stored node above it, hashed when leaf 5 was appended."""
    org = new_organisation(audit_services)
    append_plain(audit_services, org, 10)
    forged = json.dumps({"n": 99, "organisation_id": org, "type": "test/v1"}, sort_keys=True)
    tamper(
        audit_services,
        "UPDATE audit_log SET payload = :p, leaf_hash = :h WHERE seq = 5",
        p=forged,
        h=forged_leaf_hash(forged),
    )
    report = verify_by(mode, audit_services, tmp_path)
    assert report.checkpoints_verified == 1
    first = report.first_problem
    assert first is not None
    if mode == "export":  # no stored nodes in an export
        assert (first.kind, first.seq, first.last_seq) == ("range", 4, 7)
        assert "checkpoint at tree size 8" in first.message
    else:  # the narrowest node problem explains the wider ones and the checkpoint's range
        assert [(p.kind, p.seq, p.last_seq) for p in report.problems] == [("node", 4, 5)]
        assert "not the hash of those leaves" in first.message


@pytest.mark.parametrize("mode", ["export", "database"])
def test_exact_problem_is_reported_before_a_range_it_explains(
    audit_services: Services, decision_log: list[str], mode: str, tmp_path: Path
) -> None:
    swap_seqs(audit_services, 5, 6)
    report = verify_by(mode, audit_services, tmp_path)
    assert report.first_bad_seq == 5
    assert [p.kind for p in report.problems] == ["decision", "decision"]


# --- offline: tampering with the export file itself ------------------------------------------


def _rewrite(path: Path, change: Callable[[list[dict[str, object]]], None]) -> None:
    items = [json.loads(line) for line in path.read_text().splitlines()]
    change(items)
    path.write_text("".join(json.dumps(i) + "\n" for i in items))


def _leaf(items: list[dict[str, object]], seq: int) -> dict[str, object]:
    return next(i for i in items if i["kind"] == "leaf" and i["seq"] == seq)


def test_export_file_edits_are_found_offline(
    audit_services: Services, decision_log: list[str], tmp_path: Path
) -> None:
    path = export_to(audit_services, tmp_path / "audit.jsonl")
    original = path.read_text()

    def drop_leaf(items: list[dict[str, object]]) -> None:
        items.remove(_leaf(items, 3))

    def swap_lines(items: list[dict[str, object]]) -> None:
        a, b = items.index(_leaf(items, 1)), items.index(_leaf(items, 2))
        items[a], items[b] = items[b], items[a]

    def change_record(items: list[dict[str, object]]) -> None:
        decision = next(i for i in items if i["kind"] == "decision" and i["audit_seq"] == 8)
        record = decision["record"]
        assert isinstance(record, dict)
        record["objective"] = -1.0

    for change, seq in ((drop_leaf, 3), (swap_lines, 1), (change_record, 8)):
        path.write_text(original)
        _rewrite(path, change)
        report = verify_export(path)
        assert report.first_bad_seq == seq, (change.__name__, report.problems)


def test_out_of_band_public_key_must_match_the_exports(
    audit_services: Services, decision_log: list[str], tmp_path: Path
) -> None:
    path = export_to(audit_services, tmp_path / "audit.jsonl")
    assert verify_export(path, audit_services.audit.signer.public_key_b64).ok
    other = CheckpointSigner.from_seed(b"\x09" * 32, "x").public_key_b64
    report = verify_export(path, other)
    assert not report.ok
    assert "not the key given out of band" in report.problems[0].message
    assert report.checkpoints_verified == 0  # checked with the given key, they all fail


def test_re_signed_export_with_a_substituted_key_fails_against_the_real_key(
    audit_services: Services, decision_log: list[str], tmp_path: Path
) -> None:
    """A forger who rewrites the export and signs with their own key still needs the real
    public key to be replaced, which --public-key given out of band catches."""
    path = export_to(audit_services, tmp_path / "audit.jsonl")
    forger = CheckpointSigner.from_seed(b"\x0b" * 32, audit_services.settings.audit_log_origin)

    def resign(items: list[dict[str, object]]) -> None:
        items[0]["public_key"] = forger.public_key_b64
        items[0]["key_id"] = forger.key_id
        for item in items:
            if item["kind"] == "checkpoint":
                cp = forger.sign(int(str(item["tree_size"])), bytes.fromhex(str(item["root_hash"])))
                item["key_id"] = cp.key_id
                item["signature"] = base64.b64encode(cp.signature).decode()

    _rewrite(path, resign)
    assert verify_export(path).ok  # self-consistent...
    assert not verify_export(path, audit_services.audit.signer.public_key_b64).ok  # ...not ours


def test_a_file_that_is_not_an_export_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text('{"format": "something else"}\n')
    with pytest.raises(ExportFormatError, match="not an NQBA audit export"):
        verify_export(path)
    with pytest.raises(ExportFormatError, match="no such file"):
        verify_export(tmp_path / "missing.jsonl")


# --- the incremental root and a large log -----------------------------------------------------


def test_incremental_root_equals_the_recursive_root_at_every_size() -> None:
    leaves = [leaf_hash(f"entry {i}".encode()) for i in range(130)]
    accumulator = RootAccumulator()
    assert accumulator.root() == root_hash([])
    for n, digest in enumerate(leaves, start=1):
        accumulator.push(digest)
        assert accumulator.root() == root_hash(leaves[:n]), n


def _synthetic_export(path: Path, n: int, every: int) -> tuple[CheckpointSigner, bytes]:
    """An export of ``n`` plain leaves with a checkpoint every ``every`` (no database)."""
    signer = CheckpointSigner.from_seed(b"\x05" * 32, "bench.test/audit")
    accumulator = RootAccumulator()
    checkpoints = []
    with path.open("w") as out:
        header = {
            "kind": "header",
            "format": EXPORT_FORMAT,
            "origin": signer.origin,
            "public_key": signer.public_key_b64,
            "key_id": signer.key_id,
            "exported_at": "2026-01-01T00:00:00+00:00",
            "tree_size": n,
            "decisions": False,
        }
        out.write(json.dumps(header) + "\n")
        for seq in range(n):
            payload = json.dumps(
                {"decision_id": None, "n": seq, "organisation_id": "org", "type": "t"},
                separators=(",", ":"),
            )
            digest = leaf_hash(payload.encode())
            accumulator.push(digest)
            if accumulator.size % every == 0:
                checkpoints.append(signer.sign(accumulator.size, accumulator.root()))
            line = {
                "kind": "leaf",
                "seq": seq,
                "leaf_hash": digest.hex(),
                "payload": payload,
                "organisation_id": "org",
                "decision_id": None,
                "created_at": "2026-01-01T00:00:00+00:00",
            }
            out.write(json.dumps(line) + "\n")
        for cp in checkpoints:
            line = {
                "kind": "checkpoint",
                "tree_size": cp.tree_size,
                "root_hash": cp.root_hash.hex(),
                "origin": cp.origin,
                "key_id": cp.key_id,
                "signature": base64.b64encode(cp.signature).decode(),
            }
            out.write(json.dumps(line) + "\n")
    return signer, accumulator.root()


@pytest.mark.slow
def test_verify_streams_an_export_of_100k_leaves_and_finds_one_changed_payload(
    tmp_path: Path,
) -> None:
    path = tmp_path / "big.jsonl"
    signer, root = _synthetic_export(path, 100_000, every=100)
    report = verify_export(path, signer.public_key_b64)
    assert report.ok
    assert (report.tree_size, report.root_hash) == (100_000, root)
    assert report.checkpoints_verified == 1000
    text = path.read_text()
    path.write_text(text.replace('\\"n\\":73210,', '\\"n\\":73211,', 1))
    report = verify_export(path, signer.public_key_b64)
    assert report.first_bad_seq == 73210


def test_a_deleted_node_is_reported_and_its_proofs_say_the_log_is_damaged(
    audit_services: Services, tmp_path: Path
) -> None:
    org = new_organisation(audit_services)
    append_plain(audit_services, org, 8)
    tamper(audit_services, "DELETE FROM audit_nodes WHERE level = 1 AND idx = 1")
    report = verify_by("database", audit_services, tmp_path)
    assert [(p.kind, p.seq, p.last_seq) for p in report.problems] == [("node", 2, 3)]
    assert "node (1, 1) over leaves 2..3 is not stored" in report.problems[0].message
    with (
        read_session(audit_services.session_factory) as session,
        pytest.raises(AuditIntegrityError, match=r"node \(1, 1\) of the tree is missing"),
    ):
        audit_services.audit.inclusion_proof(session, 0, 8)
