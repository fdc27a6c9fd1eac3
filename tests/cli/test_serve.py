"""``nqba serve`` end to end: a real server process on a fresh SQLite file."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from nqba.cli.serve import bootstrap

NQBA = str(Path(sys.executable).with_name("nqba"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """``nqba serve`` in ``tmp_path`` on the embedded defaults; yields (base URL, stderr)."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NQBA_")}
    env["NQBA_DATA_DIR"] = os.environ.get("NQBA_DATA_DIR", "../shared/data")
    stderr = tmp_path / "stderr.log"
    with stderr.open("w") as err:
        process = subprocess.Popen(
            [NQBA, "serve", "--port", str(port)], cwd=tmp_path, env=env, stderr=err
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"nqba serve did not start:\n{stderr.read_text()}")
            time.sleep(0.2)
        yield base, stderr
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


def test_serve_migrates_prints_the_first_owner_once_and_serves_decisions(
    server: tuple[str, Path], tmp_path: Path
) -> None:
    base, stderr = server
    printed = stderr.read_text()
    assert (tmp_path / "nqba.db").exists()
    email = re.search(r"email:\s+(\S+)", printed)
    password = re.search(r"password:\s+(\S+)", printed)
    assert email is not None
    assert password is not None
    assert email.group(1) == "admin@localhost"
    token = httpx.post(
        f"{base}/api/v1/auth/token",
        data={"username": email.group(1), "password": password.group(1)},
    ).json()["access_token"]
    body = {
        "market": {
            "assets": ["A", "B"],
            "expected_returns": [0.1, 0.05],
            "covariance": [[0.04, 0.0], [0.0, 0.01]],
        },
        "spec": {"objective": "min_variance"},
    }
    made = httpx.post(
        f"{base}/api/v1/goliath/portfolio-optimization",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert made.status_code == 200, made.text
    assert made.json()["audit"]["seq"] == 0
    assert "nqba_decision_duration_seconds" in httpx.get(f"{base}/metrics").text


def test_a_second_start_on_the_same_database_creates_no_new_owner(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nqba.db'}"
    assert bootstrap(url) is not None
    assert bootstrap(url) is None


def test_serve_refuses_an_unusable_signing_key_in_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NQBA_")}
    env["NQBA_AUDIT_SIGNING_KEY"] = "not-a-key"
    done = subprocess.run(
        [NQBA, "serve", "--port", str(_free_port())],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("error: settings: NQBA_AUDIT_SIGNING_KEY")
    assert "Traceback" not in done.stderr


def test_serve_raises_its_open_files_limit_to_the_hard_limit() -> None:
    import resource

    from nqba.cli.serve import raise_open_files_limit

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, hard), hard))
        assert raise_open_files_limit() == resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if hard != resource.RLIM_INFINITY:
            assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == hard
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
