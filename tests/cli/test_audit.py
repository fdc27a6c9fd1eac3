"""`nqba audit export|verify|checkpoint|keygen` against real SQLite and PostgreSQL databases:
round trips, tampering found through the CLI (exit code 1, the seq in the one-line error)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from nqba.audit.checkpoints import decode_seed
from nqba.cli import app
from nqba.services import Services, build_services
from nqba.store.session import read_session
from tests.audit.logdata import TAMPERING, append_decisions, new_organisation
from tests.support.platform import TEST_SECRET, TEST_SIGNING_KEY, platform_settings

runner = CliRunner()


@pytest.fixture
def audit_services(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Services]:
    """A log of 10 decisions (checkpoints at 4 and 8); the CLI's environment has its key."""
    monkeypatch.setenv("NQBA_ENVIRONMENT", "test")
    monkeypatch.setenv("NQBA_SECRET_KEY", TEST_SECRET)
    monkeypatch.setenv("NQBA_AUDIT_SIGNING_KEY", TEST_SIGNING_KEY)
    built = build_services(platform_settings(database_url, audit_checkpoint_every=4), migrate=True)
    try:
        yield built
    finally:
        built.close()


@pytest.fixture
def decisions(audit_services: Services) -> list[str]:
    return append_decisions(audit_services, new_organisation(audit_services), 10)


def _ok(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.stdout + result.stderr
    return result.stdout


def _json(*args: str) -> dict[str, Any]:
    report: dict[str, Any] = json.loads(_ok(*args, "--json"))
    return report


def _fails(args: list[str], code: int, words: str) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == code, result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert words in lines[0], lines[0]
    return lines[0]


def test_export_then_verify_offline_and_live_reports_ok_with_size_and_root(
    audit_services: Services, decisions: list[str], database_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "audit.jsonl"
    summary = _json("audit", "export", str(path), "--database-url", database_url)
    assert (summary["leaves"], summary["checkpoints"], summary["decisions"]) == (10, 2, 10)
    header = json.loads(path.read_text().splitlines()[0])
    assert header["public_key"] == audit_services.audit.signer.public_key_b64
    with read_session(audit_services.session_factory) as session:
        root = audit_services.audit.root(session).hex()
    offline = _json("audit", "verify", str(path))
    live = _json("audit", "verify", "--database-url", database_url)
    for report in (offline, live):
        assert report["ok"] is True
        assert (report["tree_size"], report["root_hash"]) == (10, root)
        assert report["checkpoints_verified"] == 2
        assert report["decisions_checked"] == 10
    text = _ok("audit", "verify", str(path))
    assert text.startswith("OK 10 leaves, root " + root)
    assert "2 checkpoints verified" in text
    assert "2 leaves after it are not covered by a signature yet" in text


def test_out_of_band_public_key_is_checked(
    audit_services: Services, decisions: list[str], database_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "audit.jsonl"
    _ok("audit", "export", str(path), "--database-url", database_url)
    key = audit_services.audit.signer.public_key_b64
    assert _json("audit", "verify", str(path), "--public-key", key)["ok"] is True
    assert _json("audit", "verify", "--database-url", database_url, "--public-key", key)["ok"]
    wrong = base64.b64encode(bytes(32)).decode()
    _fails(["audit", "verify", str(path), "--public-key", wrong], 1, "not the key given")
    _fails(
        ["audit", "verify", "--database-url", database_url, "--public-key", wrong],
        1,
        "checkpoint at tree size 4",
    )
    _fails(["audit", "verify", str(path), "--public-key", "abc"], 2, "public key is not base64")


@pytest.mark.parametrize(
    "case",
    ["update-payload", "delete-row", "insert-forged-row", "reorder-rows", "decision-outputs"],
)
def test_tampering_fails_verify_with_exit_1_and_the_first_bad_seq(
    audit_services: Services,
    decisions: list[str],
    database_url: str,
    tmp_path: Path,
    case: str,
) -> None:
    change, seq, words = TAMPERING[case]
    change(audit_services, decisions)
    path = tmp_path / "audit.jsonl"
    _ok("audit", "export", str(path), "--database-url", database_url)
    for source in ([str(path)], ["--database-url", database_url]):
        line = _fails(["audit", "verify", *source], 1, f"seq {seq}: ")
        assert line.startswith("error: audit log verification failed: seq")
        assert words in line
        result = runner.invoke(app, ["audit", "verify", *source, "--json"])
        assert result.exit_code == 1
        report = json.loads(result.stdout)
        assert report["ok"] is False
        assert report["first_bad_seq"] == seq
        human = runner.invoke(app, ["audit", "verify", *source])
        assert f"seq {seq}" in human.stdout  # the problem table


def test_checkpoint_command_signs_the_current_size_once(
    audit_services: Services, decisions: list[str], database_url: str
) -> None:
    first = _json("audit", "checkpoint", "--database-url", database_url)
    assert (first["created"], first["tree_size"]) == (True, 10)
    assert first["key_id"] == audit_services.audit.signer.key_id
    again = _json("audit", "checkpoint", "--database-url", database_url)
    assert (again["created"], again["root_hash"]) == (False, first["root_hash"])
    assert "unchanged since the latest" in _ok(
        "audit", "checkpoint", "--database-url", database_url
    )
    report = _json("audit", "verify", "--database-url", database_url)
    assert (report["checkpoints_verified"], report["unsigned_leaves"]) == (3, 0)


def test_export_to_stdout_is_a_verifiable_file(
    audit_services: Services, decisions: list[str], database_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "piped.jsonl"
    path.write_text(_ok("audit", "export", "-", "--database-url", database_url))
    assert _json("audit", "verify", str(path))["ok"] is True


def test_usage_errors_end_with_one_line_and_exit_2(tmp_path: Path) -> None:
    _fails(["audit", "verify"], 2, "give an export FILE")
    _fails(
        ["audit", "verify", str(tmp_path / "a"), "--database-url", "sqlite:///x.db"],
        2,
        "one of them",
    )
    _fails(["audit", "verify", str(tmp_path / "missing.jsonl")], 2, "no such file")
    not_export = tmp_path / "notes.txt"
    not_export.write_text("hello\n")
    _fails(["audit", "verify", str(not_export)], 2, "not an NQBA audit export")
    _fails(
        [
            "audit",
            "export",
            str(tmp_path / "no" / "such" / "a.jsonl"),
            "--database-url",
            "sqlite://",
        ],
        2,
        "does not exist",
    )
    _fails(
        ["audit", "export", str(tmp_path / "a.jsonl"), "--database-url", "mysql://x/y"],
        2,
        "unsupported",
    )


def test_an_unmigrated_database_is_a_one_line_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NQBA_ENVIRONMENT", "test")
    monkeypatch.setenv("NQBA_SECRET_KEY", TEST_SECRET)
    monkeypatch.setenv("NQBA_AUDIT_SIGNING_KEY", TEST_SIGNING_KEY)
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    _fails(["audit", "verify", "--database-url", url], 1, "is it migrated")
    _fails(["audit", "export", str(tmp_path / "a.jsonl"), "--database-url", url], 1, "migrated")
    assert not (tmp_path / "a.jsonl").exists()
    _fails(["audit", "checkpoint", "--database-url", url], 1, "migrated")


def test_a_bad_signing_key_in_the_environment_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NQBA_ENVIRONMENT", "development")
    monkeypatch.setenv("NQBA_AUDIT_SIGNING_KEY", base64.b64encode(b"short").decode())
    url = f"sqlite:///{tmp_path / 'x.db'}"
    _fails(["audit", "checkpoint", "--database-url", url], 2, "32-byte Ed25519 seed")


def test_keygen_makes_a_seed_and_names_its_public_key() -> None:
    made = _json("audit", "keygen")
    assert len(decode_seed(made["signing_key"])) == 32
    assert len(base64.b64decode(made["public_key"])) == 32
    assert len(made["key_id"]) == 16
    assert "NQBA_AUDIT_SIGNING_KEY=" in _ok("audit", "keygen")
