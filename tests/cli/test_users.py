"""`nqba users ...` end to end on a fresh SQLite file and a fresh PostgreSQL schema."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from nqba.auth.api_keys import authenticate_api_key
from nqba.auth.errors import InvalidCredentialsError
from nqba.auth.service import authenticate
from nqba.cli import app
from nqba.store.session import make_engine, make_session_factory

runner = CliRunner()
PASSWORD = "correct horse battery"


def _ok(url: str, *args: str, stdin: str | None = None) -> str:
    result = runner.invoke(app, ["users", *args, "--database-url", url], input=stdin)
    assert result.exit_code == 0, result.stdout + result.stderr
    return result.stdout


def _fails(url: str, args: list[str], code: int, words: str, stdin: str | None = None) -> None:
    result = runner.invoke(app, ["users", *args, "--database-url", url], input=stdin)
    assert result.exit_code == code, result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert words in lines[0], lines[0]


def _session(url: str) -> Session:
    return make_session_factory(make_engine(url))()


def _users(url: str, *extra: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(_ok(url, "list", "--json", *extra))
    return rows


def test_create_org_and_user_on_a_fresh_database_then_sign_in(database_url: str) -> None:
    assert "created organisation acme" in _ok(database_url, "create-org", "acme")
    out = _ok(
        database_url,
        "create",
        "Ada@Acme.test",
        "--org",
        "acme",
        "--role",
        "owner",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    assert "created user ada@acme.test (owner) in acme" in out
    assert PASSWORD not in out
    with _session(database_url) as session:
        assert authenticate(session, "ada@acme.test", PASSWORD).role == "owner"


def test_generated_password_is_printed_once_and_works(database_url: str) -> None:
    _ok(database_url, "create-org", "acme")
    out = _ok(
        database_url,
        "create",
        "bob@acme.test",
        "--org",
        "acme",
        "--role",
        "viewer",
        "--generate-password",
    )
    [line] = [x for x in out.splitlines() if x.startswith("password (shown once): ")]
    password = line.removeprefix("password (shown once): ")
    with _session(database_url) as session:
        assert authenticate(session, "bob@acme.test", password).role == "viewer"
    assert password not in json.dumps(_users(database_url))


def test_prompted_password_must_be_confirmed(database_url: str) -> None:
    _ok(database_url, "create-org", "acme")
    _ok(
        database_url,
        "create",
        "cy@acme.test",
        "--org",
        "acme",
        "--role",
        "analyst",
        stdin=f"{PASSWORD}\n{PASSWORD}\n",
    )
    with _session(database_url) as session:
        assert authenticate(session, "cy@acme.test", PASSWORD).role == "analyst"


def test_list_set_role_deactivate_and_activate(database_url: str) -> None:
    _ok(database_url, "create-org", "acme")
    _ok(database_url, "create-org", "globex")
    for email, org, role in (
        ("owner@acme.test", "acme", "owner"),
        ("ada@acme.test", "acme", "viewer"),
        ("hank@globex.test", "globex", "owner"),
    ):
        _ok(
            database_url,
            "create",
            email,
            "--org",
            org,
            "--role",
            role,
            "--password-stdin",
            stdin=PASSWORD + "\n",
        )
    assert [u["email"] for u in _users(database_url, "--org", "acme")] == [
        "owner@acme.test",
        "ada@acme.test",
    ]
    assert len(_users(database_url)) == 3
    table = _ok(database_url, "list")
    assert "hank@globex.test" in table
    assert "globex" in table

    assert "ada@acme.test is now admin" in _ok(database_url, "set-role", "ada@acme.test", "admin")
    _ok(database_url, "deactivate", "ada@acme.test")
    [ada] = [u for u in _users(database_url) if u["email"] == "ada@acme.test"]
    assert (ada["role"], ada["is_active"]) == ("admin", False)
    with _session(database_url) as session, pytest.raises(InvalidCredentialsError):
        authenticate(session, "ada@acme.test", PASSWORD)
    _ok(database_url, "activate", "ada@acme.test")
    with _session(database_url) as session:
        assert authenticate(session, "ada@acme.test", PASSWORD).role == "admin"


def test_api_key_is_printed_once_authenticates_and_can_be_revoked(database_url: str) -> None:
    _ok(database_url, "create-org", "acme")
    out = _ok(
        database_url,
        "api-key",
        "create",
        "--org",
        "acme",
        "--name",
        "nightly",
        "--role",
        "analyst",
        "--rate-limit",
        "30",
    )
    [line] = [x for x in out.splitlines() if x.startswith("key (shown once): ")]
    key = line.removeprefix("key (shown once): ")
    with _session(database_url) as session:
        row = authenticate_api_key(session, key)
        assert (row.name, row.role, row.rate_limit_per_minute) == ("nightly", "analyst", 30)
        key_id = row.id
    listed = json.loads(_ok(database_url, "api-key", "list", "--json"))
    assert [k["id"] for k in listed] == [key_id]
    assert key.split("_")[-1] not in json.dumps(listed)

    assert "revoked API key nightly" in _ok(database_url, "api-key", "revoke", key_id)
    with _session(database_url) as session, pytest.raises(InvalidCredentialsError, match="revoked"):
        authenticate_api_key(session, key)
    created = json.loads(
        _ok(
            database_url,
            "api-key",
            "create",
            "--org",
            "acme",
            "--name",
            "ci",
            "--role",
            "viewer",
            "--json",
        )
    )
    assert created["key"].startswith(f"nqba_{created['prefix']}_")


def test_bad_input_ends_with_one_line_and_the_right_exit_code(database_url: str) -> None:
    _ok(database_url, "create-org", "acme")
    _ok(
        database_url,
        "create",
        "owner@acme.test",
        "--org",
        "acme",
        "--role",
        "owner",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    pw = ["--password-stdin"]
    _fails(database_url, ["create-org", "acme"], 1, "already exists")
    _fails(database_url, ["create-org", "  "], 2, "must not be empty")
    _fails(
        database_url,
        ["create", "x", "--org", "acme", "--role", "viewer", *pw],
        2,
        "not an email",
        PASSWORD + "\n",
    )
    _fails(
        database_url,
        ["create", "a@acme.test", "--org", "acme", "--role", "viewer", *pw],
        2,
        "at least 12",
        "short\n",
    )
    _fails(
        database_url,
        ["create", "owner@acme.test", "--org", "acme", "--role", "viewer", *pw],
        1,
        "already exists",
        PASSWORD + "\n",
    )
    _fails(
        database_url,
        ["create", "a@acme.test", "--org", "nope", "--role", "viewer", *pw],
        1,
        "no organisation called 'nope'",
        PASSWORD + "\n",
    )
    _fails(
        database_url,
        ["create", "a@acme.test", "--org", "acme", "--role", "viewer", *pw, "--generate-password"],
        2,
        "not both",
    )
    _fails(database_url, ["set-role", "owner@acme.test", "viewer"], 1, "last active owner")
    _fails(database_url, ["deactivate", "nobody@acme.test"], 1, "no user with email")
    _fails(database_url, ["api-key", "revoke", "no-such-id"], 1, "no API key")
    _fails(
        database_url,
        ["api-key", "create", "--org", "acme", "--name", " ", "--role", "viewer"],
        2,
        "name",
    )
    bad_role = runner.invoke(
        app, ["users", "set-role", "owner@acme.test", "god", "--database-url", database_url]
    )
    assert bad_role.exit_code == 2


def test_database_url_comes_from_the_environment_and_bad_urls_fail_in_one_line(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'env.db'}"
    result = runner.invoke(app, ["users", "create-org", "acme"], env={"NQBA_DATABASE_URL": url})
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "env.db").exists()
    _fails("mysql://nowhere/db", ["list"], 2, "unsupported database")


def test_installed_console_script_creates_users_and_fails_without_traceback(
    tmp_path: Path,
) -> None:
    script = Path(sys.executable).parent / "nqba"
    nqba = str(script) if script.exists() else shutil.which("nqba")
    assert nqba, "the nqba console script is not installed (pip install -e .)"
    env = {**os.environ, "NQBA_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}"}

    def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [nqba, "users", *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )

    assert run("create-org", "acme").returncode == 0
    made = run(
        "create",
        "ada@acme.test",
        "--org",
        "acme",
        "--role",
        "admin",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    assert made.returncode == 0, made.stderr
    listed = run("list", "--json")
    assert [u["email"] for u in json.loads(listed.stdout)] == ["ada@acme.test"]
    bad = run("create", "ada@acme.test", "--org", "acme", "--role", "wizard")
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr
    assert bad.stderr.startswith("error: ")
    assert len(bad.stderr.splitlines()) == 1
