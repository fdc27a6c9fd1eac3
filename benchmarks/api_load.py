"""API load: an audited finance decision at fixed request rates, on SQLite and PostgreSQL.

For each database: a fresh one (a SQLite file in a temporary folder, or a new PostgreSQL
schema dropped afterwards) is migrated and given one organisation and one analyst, whose JWT
is minted here with the server's secret. ``nqba serve`` then runs as a subprocess on it, as
configured through the environment (production settings, rate limits off, JSON logs and the
per-request access log as by default, written to a file), and the benchmark waits for
/readyz.

1. Decisions: ``POST /api/v1/goliath/portfolio-optimization`` (3 assets, min_variance; each
   answer is solved, by the critical line by default or by the cvxpy program with
   ``--solver OSQP``, and written with its audit leaf in one transaction) offered open-loop
   at each rate of ``--rates`` for ``--warmup`` + ``--duration`` seconds (see loadgen.py:
   latency from the scheduled send time, no coordinated omission). A run whose backlog
   exceeds ``--max-backlog-s`` seconds of requests stops offering (saturated; its figures
   then cover the whole run) and the higher rates are skipped. Afterwards the decisions and
   audit leaves in the database are counted: they must equal the 2xx decision answers.
2. Connections: for each N of ``--connections``, N connections are opened and held; then
   every one sends one request at once (GET /healthz; ``--hold-decisions`` of them the
   decision), and the server's sockets are counted from /proc while all are open.
3. The generator's own ceiling: the same open loop against a null HTTP server (loadgen.py)
   and against GET /healthz of the real server, with the client's CPU per request.

Server and client share the machine (``os.cpu_count()`` cores): the CPU seconds of each are
read from /proc and printed per rate. ``--profile-rate R`` records the server with py-spy
(``--gil``: where the interpreter lock is held) during the run at rate R. ``--workers N``
runs N uvicorn processes (with NQBA_JOBS=celery on the local Redis, as ``nqba serve``
requires); ``--server-nofile N`` gives the server a lower open-file limit than the hard one.

Run: ``.venv/bin/python benchmarks/api_load.py [--quick] [--database sqlite|postgresql|both]
[--rates 50,100,200] [--connections 1000,5000,10000] [--json out.json]``
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import platform
import resource
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy
from rich.console import Console
from rich.table import Table

# run as a script (python benchmarks/api_load.py): make the repository root importable
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.loadgen import (
    HoldResult,
    RateResult,
    hold_connections,
    http_request,
    new_event_loop,
    raise_fd_limit,
    run_open_loop,
)

from nqba.auth.service import create_organisation, create_user, principal_of
from nqba.auth.tokens import issue_access_token
from nqba.authz import Role
from nqba.config import Settings
from nqba.store.migrate import upgrade
from nqba.store.session import make_engine, make_session_factory

ROOT = Path(__file__).resolve().parents[1]
POSTGRES_URL = os.environ.get("NQBA_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
DECISION_PATH = "/api/v1/goliath/portfolio-optimization"
DECISION_BODY: dict[str, Any] = {
    "market": {
        "assets": ["A", "B", "C"],
        "expected_returns": [0.10, 0.08, 0.05],
        "covariance": [[0.04, 0.01, 0.0], [0.01, 0.03, 0.0], [0.0, 0.0, 0.01]],
    },
    "spec": {"objective": "min_variance"},
}
HOST = "127.0.0.1"
TICKS = os.sysconf("SC_CLK_TCK")

console = Console(highlight=False, markup=False, width=200)


@dataclass
class Database:
    """A fresh, migrated database with one analyst and its bearer token."""

    kind: str
    url: str
    token: str
    settings_env: dict[str, str]
    schema: str | None = None


def source_commit() -> str:
    """The checked-out commit, read from .git (uncommitted changes are not seen)."""
    git = ROOT / ".git"
    try:
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head[:12]
        ref = head[5:]
        if (git / ref).is_file():
            return (git / ref).read_text().strip()[:12]
        for line in (git / "packed-refs").read_text().splitlines():
            if line.endswith(" " + ref):
                return line.split()[0][:12]
    except OSError:
        pass
    return "unknown"


def _secrets_env() -> dict[str, str]:
    """Production settings with fresh secrets; rate limits off; a day-long access token."""
    return {
        "NQBA_ENVIRONMENT": "production",
        "NQBA_SECRET_KEY": secrets.token_urlsafe(48),
        "NQBA_AUDIT_SIGNING_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        "NQBA_RATE_LIMIT_PER_MINUTE": "0",
        "NQBA_ACCESS_TOKEN_TTL_S": "86400",
    }


def _admin_engine() -> sqlalchemy.Engine:
    return sqlalchemy.create_engine(POSTGRES_URL.replace("postgresql://", "postgresql+psycopg://"))


@contextlib.contextmanager
def fresh_database(kind: str, folder: Path) -> Iterator[Database]:
    """A migrated database of ``kind`` with an analyst; a PostgreSQL schema is dropped after."""
    schema = None
    if kind == "sqlite":
        url = f"sqlite:///{folder / 'nqba.db'}"
    else:
        schema = f"load_{uuid.uuid4().hex[:12]}"
        with _admin_engine().begin() as conn:
            conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
        sep = "&" if "?" in POSTGRES_URL else "?"
        url = f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}"
    env = {**_secrets_env(), "NQBA_DATABASE_URL": url}
    try:
        settings = Settings(
            environment="production",
            database_url=url,
            secret_key=env["NQBA_SECRET_KEY"],
            audit_signing_key=env["NQBA_AUDIT_SIGNING_KEY"],
            access_token_ttl_s=int(env["NQBA_ACCESS_TOKEN_TTL_S"]),
        )
        engine = make_engine(url)
        try:
            upgrade(engine)
            with make_session_factory(engine).begin() as session:
                org = create_organisation(session, "loadtest")
                email, password = "analyst@loadtest.example", "load test password 1"
                user = create_user(session, org.id, email, password, Role.ANALYST)
                principal = principal_of(user)
        finally:
            engine.dispose()
        token = issue_access_token(settings, principal)
        yield Database(kind, url, token, env, schema)
    finally:
        if schema is not None:
            admin = _admin_engine()
            with admin.begin() as conn:
                conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
            admin.dispose()


def count_rows(url: str) -> dict[str, int]:
    """Decisions (all, and succeeded with an audit seq), audit leaves and checkpoints."""
    engine = make_engine(url)
    queries = {
        "decisions": "SELECT count(*) FROM decisions",
        "decisions_audited": (
            "SELECT count(*) FROM decisions WHERE status = 'succeeded' AND audit_seq IS NOT NULL"
        ),
        "audit_leaves": "SELECT count(*) FROM audit_log",
        "audit_head": "SELECT tree_size FROM audit_head",
        "checkpoints": "SELECT count(*) FROM audit_checkpoints",
    }
    try:
        with engine.connect() as conn:
            return {k: int(conn.exec_driver_sql(q).scalar_one()) for k, q in queries.items()}
    finally:
        engine.dispose()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def _raise_child_fd_limit() -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _children(pid: int) -> list[int]:
    """``pid`` and its descendants (uvicorn worker processes), from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(parents.get(p, []))
    return out


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its descendants."""
    total = 0.0
    for p in _children(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / TICKS
    return total


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    total = sum(values[:8])
    idle = values[3] + values[4]
    return (total - idle) / TICKS, total / TICKS


def server_sockets(pid: int) -> int:
    """Open sockets of the server's processes (listening, clients and database)."""
    count = 0
    for p in _children(pid):
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{p}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{p}/fd/{fd}").startswith("socket:"):
                        count += 1
    return count


def settled_sockets(pid: int, at_least: int = 0, timeout_s: float = 15.0) -> int:
    """The server's socket count once it stops changing (and reaches ``at_least``)."""
    deadline = time.monotonic() + timeout_s
    last = server_sockets(pid)
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = server_sockets(pid)
        if now == last and now >= at_least:
            return now
        last = now
    return last


def server_rss_mb(pid: int) -> float:
    """Resident memory of the server's processes, MiB."""
    total = 0
    for p in _children(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total / 1024


class Server:
    """``nqba serve`` as a subprocess on a free port, logging to a file."""

    def __init__(
        self, env: dict[str, str], log_path: Path, workers: int, nofile: int | None = None
    ) -> None:
        self.port = _free_port()
        self.nofile = nofile
        self.log_path = log_path
        self.command = [
            str(Path(sys.executable).parent / "nqba"),
            "serve",
            "--host",
            HOST,
            "--port",
            str(self.port),
            "--workers",
            str(workers),
        ]
        self.env = {**os.environ, **env}
        self.process: subprocess.Popen[bytes] | None = None

    def _limit_files(self) -> None:
        """In the child: open-file limit ``nofile`` (soft), else the hard limit."""
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        soft = hard if self.nofile is None else min(self.nofile, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout_s: float = 120.0) -> None:
        """Start and wait until /readyz answers 200."""
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                preexec_fn=self._limit_files,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited ({self.process.returncode}); see {self.log}")
            try:
                with urllib.request.urlopen(f"http://{HOST}:{self.port}/readyz", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the server was not ready within {timeout_s:.0f} s; see {self.log}")

    @property
    def log(self) -> str:
        return str(self.log_path)

    def stop(self) -> None:
        """SIGINT (graceful), then SIGKILL after 20 s."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@dataclass
class DatabaseReport:
    """Everything measured on one database."""

    kind: str
    solver: str = "auto"
    commit: str = ""
    rates: list[dict[str, Any]] = field(default_factory=list)
    healthz: list[dict[str, Any]] = field(default_factory=list)
    holds: list[dict[str, Any]] = field(default_factory=list)
    sequential_ok: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    ok_decisions: int = 0
    log_bytes: int = 0
    log_lines: int = 0
    requests_total: int = 0
    profile: dict[str, Any] | None = None


def decision_body(solver: str) -> dict[str, Any]:
    """The decision request body; ``solver`` other than auto is named in the spec."""
    spec = dict(DECISION_BODY["spec"])
    if solver != "auto":
        spec["solver"] = solver
    return {**DECISION_BODY, "spec": spec}


def decision_request(token: str, port: int, solver: str) -> bytes:
    """The decision request's bytes."""
    body = json.dumps(decision_body(solver)).encode()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    return http_request("POST", DECISION_PATH, f"{HOST}:{port}", headers, body)


def healthz_request(port: int) -> bytes:
    """GET /healthz's bytes."""
    return http_request("GET", "/healthz", f"{HOST}:{port}")


def check_one_decision(token: str, port: int, solver: str) -> dict[str, Any]:
    """One decision over urllib: 200 with a decision id and an audit leaf hash."""
    request = urllib.request.Request(
        f"http://{HOST}:{port}{DECISION_PATH}",
        data=json.dumps(decision_body(solver)).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as r:
        answer: dict[str, Any] = json.loads(r.read())
    if not answer.get("decision_id") or len(answer.get("audit", {}).get("leaf_hash", "")) != 64:
        raise RuntimeError(f"unexpected decision answer: {answer}")
    return answer


def _measured_run(
    loop: asyncio.AbstractEventLoop,
    server_pid: int,
    request: bytes,
    rate: float,
    args: argparse.Namespace,
) -> tuple[RateResult, dict[str, Any]]:
    """One open-loop run with the server's and the machine's CPU use over it."""
    cpu0, (busy0, total0), wall0 = process_cpu_s(server_pid), machine_busy(), time.monotonic()
    result = loop.run_until_complete(
        run_open_loop(
            HOST,
            args.port,
            request,
            rate,
            args.duration,
            warmup_s=args.warmup,
            max_connections=args.max_connections,
            timeout_s=args.timeout,
            max_backlog_s=args.max_backlog_s,
        )
    )
    wall = time.monotonic() - wall0
    cpu1, (busy1, total1) = process_cpu_s(server_pid), machine_busy()
    answered = max(1, result.ok_including_warmup)
    extra = {
        "server_cpu_cores": round((cpu1 - cpu0) / wall, 2),
        "server_cpu_ms_per_ok": round(1000 * (cpu1 - cpu0) / answered, 2),
        "client_cpu_cores": round(result.client_cpu_s / wall, 2),
        "machine_busy_cores": round((busy1 - busy0) / (total1 - total0) * (os.cpu_count() or 1), 2),
    }
    return result, extra


def _start_profiler(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes] | None:
    py_spy = Path(sys.executable).parent / "py-spy"
    if not py_spy.exists():
        console.print("py-spy is not installed in the venv: no profile (pip install py-spy)")
        return None
    command = [str(py_spy), "record", "--pid", str(pid), "--duration", str(int(seconds) + 1)]
    command += [
        "--rate",
        str(PROFILE_RATE_HZ),
        "--gil",
        "--nonblocking",
        "--subprocesses",  # the uvicorn workers, not only their supervisor
        "--format",
        "raw",
        "-o",
        str(out),
    ]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


PROFILE_RATE_HZ = 100
PROFILE_GROUPS: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = [
    # (label, any of these frames, and also one of these if given); the first match owns a
    # sample, so the shares add up to 100 %
    ("OSQP (called by cvxpy)", ("osqp/", "solve_via_data (cvxpy"), ()),
    ("cvxpy canonicalisation (Problem.solve, not OSQP)", ("Problem.solve (cvxpy",), ()),
    ("cvxpy program build", ("_build (nqba/finance/optimize.py",), ()),
    ("finance: moments, baseline, evaluation, plan", ("optimize (nqba/finance/service.py",), ()),
    ("audit checkpoint signing (every 100th append)", ("_sign (nqba/audit/log.py",), ()),
    (
        "decision + audit write: SQLAlchemy, driver, commit",
        ("_decide_inline (nqba/decisions/service.py",),
        ("sqlalchemy/", "sqlite3", "psycopg"),
    ),
    (
        "decision bookkeeping: digests, record, response body",
        ("decide (nqba/decisions/service.py", "_decide_inline (nqba/decisions"),
        (),
    ),
    ("endpoint rest (JSONResponse render)", ("portfolio_optimization (nqba/finance",), ()),
    ("JWT decode + rate limit (get_principal)", ("get_principal (nqba/api/security.py",), ()),
    ("FastAPI dependencies + body validation", ("solve_dependencies (fastapi",), ()),
    ("access log line", ("Logger.info (logging", "nqba/telemetry/logging.py"), ()),
    ("prometheus metrics", ("prometheus_client/",), ()),
    ("thread-pool hand-off (anyio, threading, queue)", ("anyio/", "threading.py", "queue.py"), ()),
    ("uvicorn HTTP, starlette/fastapi routing and middleware", ("",), ()),
]


def summarise_profile(path: Path, requests: int) -> dict[str, Any]:
    """Where the interpreter lock was held: share and ms per request of each group of frames.

    ``requests`` is the number of answers during the recording (samples x 10 ms / requests
    is the GIL time per request of a group).
    """
    stacks: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks[stack] += int(count)
    total = sum(stacks.values())
    owned: Counter[str] = Counter()
    for stack, n in stacks.items():
        for label, any_of, also in PROFILE_GROUPS:
            if any(x in stack for x in any_of) and (not also or any(x in stack for x in also)):
                owned[label] += n
                break
    ms_per_sample = 1000 / PROFILE_RATE_HZ
    groups = {
        label: {
            "pct": round(100 * owned[label] / max(1, total), 1),
            "ms_per_request": round(owned[label] * ms_per_sample / max(1, requests), 3),
        }
        for label, _, _ in PROFILE_GROUPS
    }
    leaves: Counter[str] = Counter()
    for stack, n in stacks.items():
        leaves[stack.rsplit(";", 1)[-1]] += n
    top = [(leaf, round(100 * n / max(1, total), 1)) for leaf, n in leaves.most_common(15)]
    return {
        "samples": total,
        "requests": requests,
        "gil_ms_per_request": round(total * ms_per_sample / max(1, requests), 3),
        "groups": groups,
        "top_leaves_pct": top,
        "file": str(path),
    }


def run_database(
    kind: str, args: argparse.Namespace, folder: Path, first: bool
) -> tuple[DatabaseReport, list[dict[str, Any]]]:
    """Every measurement on one database kind; the generator check on the first one."""
    report = DatabaseReport(kind, args.solver)
    generator: list[dict[str, Any]] = []
    with fresh_database(kind, folder) as db:
        log = folder / f"server-{kind}.log"
        server = Server(db.settings_env, log, args.workers, args.server_nofile)
        args.port = server.port
        server.start()
        report.commit = source_commit()  # what the server loaded
        loop = new_event_loop()
        try:
            answer = check_one_decision(db.token, server.port, args.solver)
            for _ in range(19):
                check_one_decision(db.token, server.port, args.solver)
            report.sequential_ok = 20
            console.print(
                f"[{kind}] server pid {server.pid} on port {server.port} (commit {report.commit}); "
                "a decision: solver "
                f"{answer['solver']}, timings {answer['timings']}, "
                f"audit seq {answer['audit']['seq']}"
            )
            decision = decision_request(db.token, server.port, args.solver)
            if first:
                generator = generator_check(loop, args, server)
            skip = False
            for rate in args.rates:
                if skip:
                    report.rates.append({"offered_rps": rate, "skipped": "a lower rate saturated"})
                    continue
                profiler = None
                profile_out = folder / f"profile-{kind}-{rate:g}.txt"
                if args.profile_rate == rate:
                    profiler = _start_profiler(server.pid, args.warmup + args.duration, profile_out)
                result, extra = _measured_run(loop, server.pid, decision, rate, args)
                if profiler is not None:
                    profiler.wait(timeout=60)
                    if profile_out.exists():
                        report.profile = summarise_profile(profile_out, result.ok_including_warmup)
                        report.profile["rate"] = rate
                row = {**result.summary(), **extra}
                report.rates.append(row)
                report.ok_decisions += result.ok_including_warmup
                report.requests_total += result.scheduled
                console.print(f"[{kind}] decisions {_brief(row)}")
                if result.saturated_after_s is not None and not args.no_skip:
                    skip = True
            for count in args.connections:
                hold = hold_test(loop, server, db.token, count, args)
                report.holds.append(hold.summary())
                report.ok_decisions += hold.ok_by_kind["decision"]
                console.print(f"[{kind}] hold {hold.summary()}")
                # let uvicorn's keep-alive timers and the closed sockets settle
                time.sleep(6)
        finally:
            loop.close()
            server.stop()
        report.ok_decisions += report.sequential_ok
        report.rows = count_rows(db.url)
    report.log_bytes = server.log_path.stat().st_size
    with server.log_path.open("rb") as f:
        report.log_lines = sum(1 for _ in f)
    return report, generator


def _brief(row: dict[str, Any]) -> str:
    keys = ["offered_rps", "throughput_rps", "p50_ms", "p95_ms", "p99_ms", "max_ms", "non_2xx"]
    keys += ["errors", "not_sent", "saturated_after_s", "server_cpu_cores", "client_cpu_cores"]
    return " ".join(f"{k}={row[k]}" for k in keys if k in row)


def generator_check(
    loop: asyncio.AbstractEventLoop, args: argparse.Namespace, server: Server
) -> list[dict[str, Any]]:
    """The generator against a null server and against the real server's GET /healthz."""
    rows: list[dict[str, Any]] = []
    port = _free_port()
    script = str(Path(__file__).parent / "loadgen.py")
    null = subprocess.Popen(
        [sys.executable, script, "null-server", "--port", str(port)],
        preexec_fn=_raise_child_fd_limit,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=1):
                break
            time.sleep(0.1)
        saved = args.port
        args.port = port
        for rate in args.generator_rates:
            result, extra = _measured_run(loop, null.pid, healthz_request(port), rate, args)
            rows.append({"target": "null server", **result.summary(), **extra})
            console.print(f"generator vs null server {_brief(rows[-1])}")
        args.port = saved
    finally:
        null.terminate()
        null.wait()
    for rate in args.healthz_rates:
        result, extra = _measured_run(loop, server.pid, healthz_request(server.port), rate, args)
        rows.append({"target": "GET /healthz", **result.summary(), **extra})
        console.print(f"generator vs /healthz {_brief(rows[-1])}")
        if result.saturated_after_s is not None:
            break
    return rows


def hold_test(
    loop: asyncio.AbstractEventLoop,
    server: Server,
    token: str,
    count: int,
    args: argparse.Namespace,
) -> HoldResult:
    """``count`` connections held at once; ``--hold-decisions`` of them ask for a decision."""
    decision = decision_request(token, server.port, args.solver)
    health = healthz_request(server.port)
    decisions = min(args.hold_decisions, count)
    step = max(1, count // max(1, decisions))

    def request_of(i: int) -> tuple[str, bytes]:
        if i % step == 0 and i // step < decisions:
            return "decision", decision
        return "healthz", health

    baseline = settled_sockets(server.pid)
    probes = 0

    def probe() -> int:
        # after connecting: wait (10 s at most) until the server has accepted them all; after
        # the answers: 2 s at most, well within uvicorn's 5 s keep-alive timeout
        nonlocal probes
        probes += 1
        if probes == 1:
            return settled_sockets(server.pid, baseline + count, 10.0) - baseline
        return settled_sockets(server.pid, 0, 2.0) - baseline

    rss0 = server_rss_mb(server.pid)
    result = loop.run_until_complete(
        hold_connections(
            HOST,
            server.port,
            count,
            request_of,
            connect_concurrency=args.connect_concurrency,
            timeout_s=args.hold_timeout,
            probe=probe,
        )
    )
    result.server_sockets["server_rss_mb_before"] = round(rss0)
    result.server_sockets["server_rss_mb_after"] = round(server_rss_mb(server.pid))
    return result


def print_tables(reports: list[DatabaseReport], generator: list[dict[str, Any]]) -> None:
    """The measured tables."""
    table = Table(title="generator ceiling (open loop, same machine)")
    columns = ["target", "offered/s", "achieved/s", "p50 ms", "p99 ms", "max ms", "errors"]
    columns += ["client CPU ms/req", "client cores", "server cores", "gen lag p99 ms"]
    for col in columns:
        table.add_column(col, justify="right")
    for r in generator:
        table.add_row(
            r["target"], f"{r['offered_rps']:g}", f"{r['throughput_rps']:.0f}",
            f"{r['p50_ms']:.2f}", f"{r['p99_ms']:.2f}", f"{r['max_ms']:.1f}", _errors(r),
            f"{r['client_cpu_ms_per_request']:.3f}", f"{r['client_cpu_cores']:.2f}",
            f"{r['server_cpu_cores']:.2f}", f"{r['generator_lag_p99_ms']:.2f}",
        )  # fmt: skip
    console.print(table)
    for rep in reports:
        title = f"{rep.kind}: POST {DECISION_PATH} (3 assets, min_variance, solver {rep.solver})"
        table = Table(title=f"{title}, open loop")
        columns = ["offered/s", "achieved/s", "ok", "p50 ms", "p95 ms", "p99 ms", "max ms"]
        columns += ["errors", "server cores", "server CPU ms/req", "client cores", "machine busy"]
        for col in columns:
            table.add_column(col, justify="right")
        for r in rep.rates:
            if "skipped" in r:
                table.add_row(f"{r['offered_rps']:g}", "skipped: a lower rate saturated")
                continue
            table.add_row(
                f"{r['offered_rps']:g}", f"{r['throughput_rps']:.1f}", str(r["ok"]),
                f"{r['p50_ms']:.1f}", f"{r['p95_ms']:.1f}", f"{r['p99_ms']:.1f}",
                f"{r['max_ms']:.1f}", _errors(r), f"{r['server_cpu_cores']:.2f}",
                f"{r['server_cpu_ms_per_ok']:.2f}", f"{r['client_cpu_cores']:.2f}",
                f"{r['machine_busy_cores']:.2f}",
            )  # fmt: skip
        console.print(table)
        table = Table(title=f"{rep.kind}: connections held at once, one request each")
        columns = ["connections", "connected", "2xx", "decisions 2xx", "failures", "errors"]
        columns += ["server sockets", "connect s", "answers s", "p50 ms", "p99 ms", "RSS MiB"]
        for col in columns:
            table.add_column(col, justify="right")
        for h in rep.holds:
            errs = {**h["connect_errors"], **h["errors"]}
            errs.update({f"HTTP {k}": v for k, v in h["statuses"].items() if not k.startswith("2")})
            sockets = h["server_sockets"]
            table.add_row(
                str(h["connections"]), str(h["connected"]), str(h["ok"]),
                str(h["ok_by_kind"].get("decision", 0)), str(h["failures"]),
                ", ".join(f"{k}: {v}" for k, v in errs.items()) or "0",
                f"{sockets.get('after_connect')} / {sockets.get('after_answers')}",
                f"{h['connect_s']:.1f}", f"{h['requests_s']:.1f}", f"{h['p50_ms']:.0f}",
                f"{h['p99_ms']:.0f}",
                f"{sockets['server_rss_mb_before']} -> {sockets['server_rss_mb_after']}",
            )  # fmt: skip
        console.print(table)
        match = (
            rep.rows.get("decisions_audited") == rep.ok_decisions == rep.rows.get("audit_leaves")
        )
        console.print(
            f"{rep.kind}: 2xx decision answers {rep.ok_decisions}; rows: {rep.rows}; "
            f"{'equal' if match else 'NOT EQUAL'}. Server log: {rep.log_lines} lines, "
            f"{rep.log_bytes} bytes."
        )
        if rep.profile:
            prof = rep.profile
            console.print(
                f"{rep.kind}: py-spy --gil at {prof['rate']:g}/s: {prof['samples']} samples, "
                f"{prof['requests']} answers, {prof['gil_ms_per_request']} ms GIL-held per "
                "answer; by group (each sample counted once):"
            )
            for label, g in prof["groups"].items():
                console.print(f"  {label:<56} {g['pct']:5.1f} %  {g['ms_per_request']:.3f} ms")
            console.print("  top leaf frames: " + "; ".join(
                f"{leaf} {pct} %" for leaf, pct in rep.profile["top_leaves_pct"][:8]
            ))  # fmt: skip


def _errors(row: dict[str, Any]) -> str:
    parts = [f"{k}: {v}" for k, v in row.get("errors", {}).items()]
    parts += [f"HTTP {k}: {v}" for k, v in row.get("statuses", {}).items() if not k.startswith("2")]
    if row.get("not_sent"):
        parts.append(f"not sent: {row['not_sent']}")
    if row.get("saturated_after_s") is not None:
        parts.append(f"saturated at {row['saturated_after_s']} s")
    if row.get("includes_warmup"):
        parts.append("(figures include the warm-up)")
    return ", ".join(parts) or "0"


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs, fewer rates")
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--rates", type=_floats, default=None, help="decisions per second")
    parser.add_argument("--connections", type=lambda s: [int(x) for x in s.split(",") if x])
    parser.add_argument("--duration", type=float, default=None, help="measured seconds per rate")
    parser.add_argument("--warmup", type=float, default=None, help="unmeasured seconds per rate")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn processes")
    parser.add_argument(
        "--solver", default="auto", help="spec.solver of the decision (OSQP: the cvxpy path)"
    )
    parser.add_argument("--max-connections", type=int, default=512)
    parser.add_argument("--max-backlog-s", type=float, default=2.0)
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per answer")
    parser.add_argument("--no-skip", action="store_true", help="run rates above a saturated one")
    parser.add_argument("--hold-decisions", type=int, default=100)
    parser.add_argument(
        "--server-nofile", type=int, help="the server's open-file limit (default: the hard one)"
    )
    parser.add_argument("--hold-timeout", type=float, default=120.0)
    parser.add_argument("--connect-concurrency", type=int, default=500)
    parser.add_argument("--generator-rates", type=_floats, default=None)
    parser.add_argument("--healthz-rates", type=_floats, default=None)
    parser.add_argument("--profile-rate", type=float, default=None)
    parser.add_argument("--keep", type=Path, help="copy the server logs and profiles here")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    quick = args.quick
    args.rates = args.rates or ([50, 100, 200] if quick else [50, 100, 150, 200, 300, 500, 750])
    args.connections = args.connections or ([1000] if quick else [1000, 5000, 10000])
    args.duration = args.duration or (5.0 if quick else 15.0)
    args.warmup = args.warmup if args.warmup is not None else (2.0 if quick else 5.0)
    args.generator_rates = args.generator_rates or ([4000] if quick else [1000, 4000, 8000])
    args.healthz_rates = args.healthz_rates or ([500] if quick else [500, 1000, 2000])
    if args.workers > 1:  # nqba serve refuses in-process jobs in several processes
        os.environ.setdefault("NQBA_JOBS", "celery")
        os.environ.setdefault("NQBA_REDIS_URL", "redis://127.0.0.1:6379/15")
    fd_limit = raise_fd_limit()
    kinds = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
    load = os.getloadavg()
    console.print(f"command: {shlex.join([Path(sys.executable).name, *sys.argv])}")
    console.print(
        f"machine: {os.cpu_count()} cores ({platform.processor() or platform.machine()}), shared "
        f"by the server and this load generator; load average at start {load[0]:.2f} "
        f"{load[1]:.2f} {load[2]:.2f}; python {platform.python_version()}; open files {fd_limit}"
    )
    console.print(
        f"server: nqba serve --workers {args.workers} (uvicorn, JSON logs to a file), "
        f"commit {source_commit()}"
    )
    reports: list[DatabaseReport] = []
    generator: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="nqba-load-") as tmp:
        for i, kind in enumerate(kinds):
            folder = Path(tmp) / kind
            folder.mkdir()
            report, gen = run_database(kind, args, folder, first=i == 0)
            reports.append(report)
            generator = generator or gen
            if args.keep:
                args.keep.mkdir(parents=True, exist_ok=True)
                for f in folder.glob("*.log"):
                    (args.keep / f.name).write_bytes(f.read_bytes())
                for f in folder.glob("profile-*.txt"):
                    (args.keep / f.name).write_bytes(f.read_bytes())
    print_tables(reports, generator)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        out = {
            "command": sys.argv,
            "commit": source_commit(),
            "load_average_at_start": load,
            "cores": os.cpu_count(),
            "workers": args.workers,
            "generator": generator,
            "databases": [vars(r) for r in reports],
        }
        args.json.write_text(json.dumps(out, indent=1, default=str))


if __name__ == "__main__":
    main()
