"""Per-request costs of the audited finance decision, next to faster ways of doing each step.

What ``benchmarks/api_load.py`` found expensive under load, timed in one process on the same
input (the 3-asset min_variance request of api_load.py), each alternative checked to give
the same answer:

1. Solve. ``nqba.finance.service.optimize`` (the decision kind, whole) through cvxpy
   (``spec.solver`` OSQP) and through the critical line (``auto``, exact for bounds-only
   portfolios since commit c3a246a), the solve step inside each, and three more ways of
   solving the same long-only min-variance QP:
   OSQP called directly on numpy/scipy matrices (same settings, polished), the same cvxpy
   program built once with the covariance's Cholesky factor as a DPP parameter and
   re-solved, and an exact active-set solve in numpy. Largest weight difference to the
   cvxpy answer is printed.
2. Write transaction of inline decisions (audit leaves, decision rows, head increment, one
   commit: the service's batch function ``_write_inline``), on SQLite and PostgreSQL, per
   decision at 1, 8 and 32 decisions per transaction (group commit batches the decisions
   queued while a transaction runs). Every batch appends real audit leaves and signs a
   checkpoint every 100 leaves.
3. Audit checkpoint root (every 100th append signs one, under the head row's lock) on
   SQLite and PostgreSQL logs of 10,000 and 100,000 leaves: read every stored leaf hash and
   hash the tree (signing before commit 0665a00; proofs still do this), against the root
   from the compact range the head keeps since 0665a00.
   Also 16 threads writing decisions at once (as the API's thread pool does), with and
   without a process-wide lock taken before the write transaction.
4. Small per-request costs: JWT verification and a cached token, the access-log line, the
   response body's JSON (stdlib json as Starlette's JSONResponse uses it, and pydantic-core
   as the decision answers are written), the request digest.
5. A whole decision request over ASGI in this process (middleware, routing, guard, body,
   decision, its write on SQLite, the answer), through its ``DecisionRoute`` and through the
   same endpoint mounted as FastAPI's ``APIRoute`` (the general dependency solver the route
   replaced), alternating request by request so both see the same machine.

Run: ``.venv/bin/python benchmarks/api_costs.py [--repeats N] [--database sqlite|postgresql|both]
[--parts solve,write,concurrent_write,checkpoint,small,route] [--json out.json]``
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import importlib
import io
import json
import logging
import os
import platform
import secrets
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, MutableMapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pydantic_core
import scipy.sparse as sp
import sqlalchemy
import uvloop
from rich.console import Console
from rich.table import Table
from sqlalchemy import insert

# run as a script (python benchmarks/api_costs.py): make the repository root importable
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.api_load import DECISION_PATH, source_commit

from nqba.api.app import create_app, freeze_startup_heap
from nqba.api.decide import DecisionRoute, reference_router
from nqba.audit import merkle
from nqba.audit import repository as audit_repo
from nqba.auth.service import create_organisation, create_user, principal_of
from nqba.auth.tokens import _verify as verify_token
from nqba.auth.tokens import decode_access_token, issue_access_token
from nqba.authz import Role
from nqba.config import Settings
from nqba.decisions.records import append_decision_leaf, digest
from nqba.decisions.registry import Outcome
from nqba.decisions.service import (
    _complete,
    _InlineWrite,
    _new_decision,
    _write_inline,
)
from nqba.finance import endpoints as finance_endpoints
from nqba.finance.cla import critical_line
from nqba.finance.optimize import _build, as_mean_cov, resolve_constraints, solve_problem
from nqba.finance.schemas import PortfolioOptimizationRequest
from nqba.finance.service import DECISION_KINDS, optimize
from nqba.services import Services, build_services
from nqba.store.base import Base, new_id
from nqba.store.models import AuditNode
from nqba.store.session import write_transaction
from nqba.telemetry.logging import JsonFormatter, request_id_var

# cvxpy's and osqp's type hints are partial; used untyped here.
cp: Any = importlib.import_module("cvxpy")
osqp: Any = importlib.import_module("osqp")

POSTGRES_URL = os.environ.get("NQBA_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REQUEST: dict[str, Any] = {
    "market": {
        "assets": ["A", "B", "C"],
        "expected_returns": [0.10, 0.08, 0.05],
        "covariance": [[0.04, 0.01, 0.0], [0.01, 0.03, 0.0], [0.0, 0.0, 0.01]],
    },
    "spec": {"objective": "min_variance"},
}
OSQP_OPTIONS = {"eps_abs": 1e-7, "eps_rel": 1e-7, "max_iter": 20000, "polishing": True}
DECISIONS = Base.metadata.tables["decisions"]
AUDIT_LOG = Base.metadata.tables["audit_log"]
console = Console(highlight=False, markup=False, width=200)


def timed(func: Callable[[], Any], repeats: int, warm: int = 5) -> tuple[float, float, float, Any]:
    """(median wall, p99 wall, median CPU of this thread) seconds of ``func`` over ``repeats``
    calls after ``warm`` calls. The machine is shared: CPU time is the steadier figure."""
    result = None
    for _ in range(warm):
        result = func()
    times, cpu = [], []
    for _ in range(repeats):
        start, cpu0 = time.perf_counter(), time.thread_time()
        result = func()
        times.append(time.perf_counter() - start)
        cpu.append(time.thread_time() - cpu0)
    times.sort()
    p99 = times[min(len(times) - 1, int(0.99 * len(times)))]
    return statistics.median(times), p99, statistics.median(cpu), result


def direct_osqp(cov: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """min w'Σw s.t. sum w = 1, lower <= w <= upper, with OSQP called on the matrices."""
    n = len(cov)
    scale = 1.0 / float(np.mean(np.diag(cov)))
    p = sp.csc_matrix(np.triu(2.0 * scale * cov))
    a = sp.csc_matrix(np.vstack([np.ones((1, n)), np.eye(n)]))
    lo = np.concatenate([[1.0], lower])
    hi = np.concatenate([[1.0], upper])
    solver = osqp.OSQP()
    solver.setup(p, np.zeros(n), a, lo, hi, verbose=False, **OSQP_OPTIONS)
    result = solver.solve()
    if result.info.status_val not in (1, 2):  # solved, solved inaccurate
        raise RuntimeError(f"OSQP status {result.info.status}")
    return np.asarray(result.x, dtype=float)


class CachedMinVariance:
    """The min-variance program built once per size with the Cholesky factor as parameter."""

    def __init__(self, n: int) -> None:
        self.factor = cp.Parameter((n, n))
        self.lower = cp.Parameter(n)
        self.upper = cp.Parameter(n)
        self.w = cp.Variable(n)
        constraints = [cp.sum(self.w) == 1, self.w >= self.lower, self.w <= self.upper]
        objective = cp.Minimize(cp.sum_squares(self.factor.T @ self.w))
        self.problem = cp.Problem(objective, constraints)

    def solve(self, cov: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
        scale = 1.0 / float(np.mean(np.diag(cov)))
        self.factor.value = np.linalg.cholesky(cov * scale)
        self.lower.value, self.upper.value = lower, upper
        self.problem.solve(solver="OSQP", **OSQP_OPTIONS)
        return np.asarray(self.w.value, dtype=float)


def active_set_min_variance(cov: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Exact min w'Σw s.t. sum w = 1, lower <= w <= upper (Σ positive definite), active set.

    Start with every bound free; solve the equality-constrained KKT system on the free
    assets; pin the most violated bound, and free a pinned asset whose multiplier has the
    wrong sign; stop when neither happens. Small n only (one dense solve per step).
    """
    n = len(cov)
    pinned: dict[int, float] = {}
    for _ in range(4 * n + 10):
        free = [i for i in range(n) if i not in pinned]
        fixed = np.zeros(n)
        for i, v in pinned.items():
            fixed[i] = v
        k = len(free)
        kkt = np.zeros((k + 1, k + 1))
        kkt[:k, :k] = 2.0 * cov[np.ix_(free, free)]
        kkt[:k, k] = 1.0
        kkt[k, :k] = 1.0
        pulled = -2.0 * cov[np.ix_(free, list(range(n)))] @ fixed
        rhs = np.concatenate([pulled, [1.0 - fixed.sum()]])
        sol = np.linalg.solve(kkt, rhs)
        w = fixed.copy()
        w[free] = sol[:k]
        nu = sol[k]
        below = [(lower[i] - w[i], i) for i in free if w[i] < lower[i] - 1e-12]
        above = [(w[i] - upper[i], i) for i in free if w[i] > upper[i] + 1e-12]
        worst = max(below + above, default=None)
        if worst is not None:
            i = worst[1]
            pinned[i] = lower[i] if w[i] < lower[i] else upper[i]
            continue
        grad = 2.0 * cov @ w + nu  # multiplier of a pinned bound: >= 0 at lower, <= 0 at upper
        wrong = [(abs(grad[i]), i) for i, v in pinned.items() if (grad[i] < 0) == (v == lower[i])]
        if not wrong:
            return w
        del pinned[max(wrong)[1]]
    raise RuntimeError("active set did not converge")


def solve_part(repeats: int) -> list[dict[str, Any]]:
    """The decision kind and its solve, against three ways of solving the same QP."""
    request = PortfolioOptimizationRequest.model_validate(REQUEST)
    _, mu, cov = as_mean_cov(
        np.array(REQUEST["market"]["expected_returns"]),
        np.array(REQUEST["market"]["covariance"]),
    )
    rc = resolve_constraints(request.spec.constraints, request.market.assets)

    def build_and_solve() -> np.ndarray:
        program = _build(request.spec, mu, cov, rc)
        solve_problem(program.problem, program.kind, request.spec.solver)
        weights: np.ndarray = program.weights()
        return weights

    cached = CachedMinVariance(len(mu))
    rows = []
    reference: np.ndarray | None = None
    lo, hi = rc.lower, rc.upper
    via_osqp = PortfolioOptimizationRequest.model_validate(
        {**REQUEST, "spec": {**REQUEST["spec"], "solver": "OSQP"}}
    )

    def corners() -> np.ndarray:
        weights: np.ndarray = critical_line(mu, cov, lo, hi)[1][-1]
        return weights

    cases: list[tuple[str, Callable[[], Any]]] = [
        ("decision kind, spec.solver OSQP (the cvxpy path)", lambda: optimize(via_osqp, _quiet)),
        ("  of which cvxpy program build + solve", build_and_solve),
        ("decision kind, spec.solver auto (critical line)", lambda: optimize(request, _quiet)),
        ("  of which nqba.finance.cla.critical_line", corners),
        ("direct OSQP on numpy/scipy matrices", lambda: direct_osqp(cov, lo, hi)),
        ("cvxpy DPP program cached per size, re-solved", lambda: cached.solve(cov, lo, hi)),
        ("active set in numpy (exact)", lambda: active_set_min_variance(cov, lo, hi)),
    ]
    for label, func in cases:
        median, p99, cpu, result = timed(func, repeats)
        weights = (
            np.array([result.outputs["weights"][a] for a in request.market.assets])
            if isinstance(result, Outcome)
            else np.asarray(result)
        )
        if reference is None:
            reference = weights
        rows.append({
            "step": label, "median_ms": 1000 * median, "p99_ms": 1000 * p99,
            "cpu_ms": 1000 * cpu, "max_weight_diff": float(np.max(np.abs(weights - reference))),
        })  # fmt: skip
    return rows


def _quiet(fraction: float, message: str = "") -> None:
    """Progress callback of an inline decision: nobody listens."""


def _secrets() -> dict[str, Any]:
    return {
        "environment": "production",
        "secret_key": secrets.token_urlsafe(48),
        "audit_signing_key": base64.b64encode(secrets.token_bytes(32)).decode(),
    }


@contextlib.contextmanager
def platform_on(kind: str, folder: Path, **settings: Any) -> Iterator[tuple[Services, Any]]:
    """Migrated services on a fresh database of ``kind`` and an analyst principal."""
    schema = None
    admin = sqlalchemy.create_engine(POSTGRES_URL.replace("postgresql://", "postgresql+psycopg://"))
    if kind == "sqlite":
        url = f"sqlite:///{folder / f'costs-{uuid.uuid4().hex[:8]}.db'}"
    else:
        schema = f"costs_{uuid.uuid4().hex[:12]}"
        with admin.begin() as conn:
            conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
        url = f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    services = build_services(Settings(database_url=url, **_secrets(), **settings), migrate=True)
    try:
        with services.session_factory.begin() as session:
            org = create_organisation(session, "costs")
            email, password = "a@costs.example", "cost test password 1"
            user = create_user(session, org.id, email, password, Role.ANALYST)
            principal = principal_of(user)
        yield services, principal
    finally:
        services.close()
        if schema is not None:
            with admin.begin() as conn:
                conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


def _decision_parts() -> tuple[Any, Any, dict[str, Any]]:
    """The benchmark's decision kind, its solved outcome and its inputs, as the service has them."""
    request = PortfolioOptimizationRequest.model_validate(REQUEST)
    decision_kind = next(k for k in DECISION_KINDS if k.kind == "portfolio-optimization")
    return decision_kind, optimize(request, _quiet), request.model_dump(mode="json")


WRITE_BATCHES = (1, 8, 32)
"""Decisions per write transaction measured: group commit puts every decision queued while a
batch runs into the next one, so the batch grows with the load."""


def write_part(
    kind: str, repeats: int, folder: Path, batches: Sequence[int] = WRITE_BATCHES
) -> list[dict[str, Any]]:
    """The inline decisions' write transaction (the service's batch function: audit leaves,
    decision rows, one commit) per decision, at the batch sizes ``batches``."""
    decision_kind, outcome, inputs = _decision_parts()
    rows = []
    with platform_on(kind, folder) as (services, principal):

        def batch_of(size: int) -> Callable[[], dict[str, Any]]:
            def write() -> dict[str, Any]:
                writes = []
                for _ in range(size):
                    decision = _new_decision(principal, decision_kind, inputs, digest(inputs))
                    _complete(decision, outcome, 0.004)
                    writes.append(
                        _InlineWrite(services.audit, decision, principal, None, "/x", "f")
                    )
                with write_transaction(services.session_factory) as session:
                    return _write_inline(session, writes, list)[-1]

            return write

        for size in batches:
            median, p99, cpu, body = timed(batch_of(size), max(10, repeats // size))
            assert len(body["audit"]["leaf_hash"]) == 64
            rows.append({"database": kind, "step": f"{size} per transaction, per decision",
                         "median_ms": 1000 * median / size, "p99_ms": 1000 * p99 / size,
                         "cpu_ms": 1000 * cpu / size})  # fmt: skip
        with services.engine.connect() as conn:
            counts = [
                conn.exec_driver_sql(f"SELECT count(*) FROM {t}").scalar_one()
                for t in ("decisions", "audit_log")
            ]
            rows[-1]["rows"] = {"decisions": counts[0], "audit_leaves": counts[1]}
        with services.session_factory() as session:  # the log is still a valid RFC 6962 tree
            root = services.audit.root(session)
            hashes = services.audit.leaf_hashes(session)
            for seq, h in enumerate(hashes):
                leaf = audit_repo.get_leaf(session, seq)
                assert leaf is not None
                assert merkle.leaf_hash(leaf.payload.encode()) == h
            assert root == merkle.root_hash(hashes)
    return rows


def concurrent_write_part(
    kind: str, folder: Path, threads: int = 16, per_thread: int = 60
) -> list[dict[str, Any]]:
    """``threads`` threads writing decisions at once (the service path), as the API's thread
    pool does, with and without a process-wide lock taken before the write transaction.

    SQLite's busy handler sleeps in steps of 1 to 100 ms while another connection holds the
    write lock, so queued writers can leave the lock idle; a Python lock wakes the next
    writer when it is released.
    """
    decision_kind, outcome, inputs = _decision_parts()
    rows = []
    with platform_on(kind, folder) as (services, principal):
        for label, gate in (("as is", None), ("process lock around it", threading.Lock())):
            latencies: list[float] = []

            def writer(gate: threading.Lock | None, latencies: list[float]) -> None:
                for _ in range(per_thread):
                    draft = _new_decision(principal, decision_kind, inputs, digest(inputs))
                    start = time.perf_counter()
                    with (
                        gate if gate is not None else contextlib.nullcontext(),
                        write_transaction(services.session_factory) as session,
                    ):
                        _complete(draft, outcome, 0.004)
                        decision = draft.as_decision()
                        session.add(decision)
                        append_decision_leaf(services.audit, session, decision)
                    latencies.append(time.perf_counter() - start)

            workers = [
                threading.Thread(target=writer, args=(gate, latencies)) for _ in range(threads)
            ]
            start = time.perf_counter()
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            wall = time.perf_counter() - start
            latencies.sort()
            rows.append({
                "database": kind, "variant": label, "threads": threads,
                "writes": len(latencies), "writes_per_s": len(latencies) / wall,
                "p50_ms": 1000 * latencies[len(latencies) // 2],
                "p99_ms": 1000 * latencies[int(0.99 * len(latencies))],
            })  # fmt: skip
    return rows


def checkpoint_part(kind: str, folder: Path) -> list[dict[str, Any]]:
    """A checkpoint's root at growing log sizes: over every stored leaf hash (signing before
    commit 0665a00; inclusion and consistency proofs still read them all) and from the
    head's compact range (signing since 0665a00)."""
    rows = []
    with platform_on(kind, folder) as (services, principal):
        size = 0
        nodes: list[bytes] = []
        for target in (10_000, 100_000):
            with services.session_factory.begin() as session:
                while size < target:
                    batch, inner = [], []
                    for seq in range(size, min(target, size + 5000)):
                        digest = hashlib.sha256(str(seq).encode()).digest()
                        nodes, completed = merkle.compact_append_nodes(nodes, seq, digest)
                        batch.append({"seq": seq, "leaf_hash": digest, "payload": "{}",
                                      "organisation_id": principal.organisation_id})  # fmt: skip
                        inner += [{"level": lv, "index": i, "node_hash": h}
                                  for (lv, i), h in completed]  # fmt: skip
                    session.execute(insert(AUDIT_LOG), batch)
                    session.execute(insert(AuditNode), inner)
                    size += len(batch)
                session.execute(
                    sqlalchemy.text(
                        "UPDATE audit_head SET tree_size = :size, compact_range = :packed "
                        "WHERE id = 1"
                    ),
                    {"size": size, "packed": merkle.pack_nodes(nodes)},
                )
            full, compact, proof_leaves, proof_nodes = [], [], [], []
            seq = size // 3
            for _ in range(3):  # each in its own session (a connection from the pool)
                with services.session_factory() as session:
                    start = time.perf_counter()
                    root = merkle.root_hash(audit_repo.leaf_hashes(session, size))
                    full.append(time.perf_counter() - start)
                with services.session_factory() as session:
                    start = time.perf_counter()
                    head_size, head_root = audit_repo.head_root(session)
                    compact.append(time.perf_counter() - start)
                with services.session_factory() as session:
                    start = time.perf_counter()
                    path = merkle.inclusion_proof(seq, audit_repo.leaf_hashes(session, size))
                    proof_leaves.append(time.perf_counter() - start)
                with services.session_factory() as session:
                    start = time.perf_counter()
                    proof = services.audit.inclusion_proof(session, seq, size)
                    proof_nodes.append(time.perf_counter() - start)
            assert (head_size, head_root) == (size, root)
            assert (proof.path, proof.root_hash) == (path, root)
            ms = {
                "all_leaves_ms": full,
                "compact_range_ms": compact,
                "proof_all_leaves_ms": proof_leaves,
                "proof_stored_nodes_ms": proof_nodes,
            }
            rows.append(
                {"database": kind, "leaves": size}
                | {k: 1000 * statistics.median(v) for k, v in ms.items()}
            )
    return rows


def small_part(repeats: int) -> list[dict[str, Any]]:
    """JWT, access log line, response JSON and request digest, per call."""
    settings = Settings(**_secrets())
    from nqba.authz import Principal

    principal = Principal(
        organisation_id=new_id(), actor_kind="user", actor_id=new_id(), role=Role.ANALYST,
        name="a@costs.example", permissions=frozenset(), rate_limit_per_minute=None,
    )  # fmt: skip
    token = issue_access_token(settings, principal)
    request = PortfolioOptimizationRequest.model_validate(REQUEST)
    outcome = optimize(request, _quiet)
    body = {"decision_id": new_id(), "result": outcome.outputs, "baseline": outcome.baseline,
            "timings": outcome.timings, "audit": {"seq": 1, "leaf_hash": "0" * 64}}  # fmt: skip
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("nqba.costs.access")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    request_id_var.set(uuid.uuid4().hex)
    extra = {"method": "POST", "path": "/api/v1/goliath/portfolio-optimization",
             "route": "/api/v1/goliath/portfolio-optimization", "status": 200,
             "duration_ms": 12.345}  # fmt: skip
    inputs = request.model_dump(mode="json")

    def log_line() -> None:
        logger.info("request", extra=extra)
        stream.seek(0)
        stream.truncate()

    def stdlib_json() -> bytes:
        return json.dumps(
            body, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
        ).encode("utf-8")

    cases: list[tuple[str, Callable[[], Any]]] = [
        ("JWT verify, first sight (HS256, PyJWT)", lambda: verify_token(settings, token)),
        ("JWT, a token verified before (cache)", lambda: decode_access_token(settings, token)),
        ("access log line (JsonFormatter)", log_line),
        ("response body, stdlib json (Starlette JSONResponse)", stdlib_json),
        ("response body, pydantic-core (DecisionJSONResponse)",
         lambda: pydantic_core.to_json(body)),
        ("inputs digest (canonical JSON + SHA-256)", lambda: digest(inputs)),
        ("request validation (pydantic model_validate)",
         lambda: PortfolioOptimizationRequest.model_validate(REQUEST)),
    ]  # fmt: skip
    rows = []
    for label, func in cases:
        median, p99, cpu, _ = timed(func, repeats * 5)
        rows.append(
            {"step": label, "median_ms": 1000 * median, "p99_ms": 1000 * p99, "cpu_ms": 1000 * cpu}
        )
    return rows


async def asgi_request(
    app: Any, method: str, path: str, headers: list[tuple[bytes, bytes]], body: bytes = b""
) -> None:
    """Send one HTTP request to ``app`` over ASGI in this process; raise unless it answers 200."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
        "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
        "query_string": b"", "root_path": "", "headers": headers,
        "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80),
    }  # fmt: skip
    sent = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    if sent[0]["status"] != 200:
        raise RuntimeError(f"{method} {path} answered {sent[0]['status']}: {sent[-1]}")


def healthz_part(repeats: int, folder: Path) -> list[dict[str, Any]]:
    """``GET /healthz`` over ASGI in this process, on uvloop: the middleware and routing every
    request pays, without uvicorn's HTTP or the kernel."""
    with platform_on("sqlite", folder) as (services, _):
        app = create_app(services)

        async def measure() -> tuple[list[float], list[float]]:
            headers = [(b"host", b"costs")]
            for _ in range(200):
                await asgi_request(app, "GET", "/healthz", headers)
            freeze_startup_heap()
            wall, cpu = [], []
            for _ in range(repeats * 10):
                start, cpu0 = time.perf_counter(), time.thread_time()
                await asgi_request(app, "GET", "/healthz", headers)
                wall.append(time.perf_counter() - start)
                cpu.append(time.thread_time() - cpu0)
            return wall, cpu

        wall, cpu = uvloop.run(measure())
    return [_timing_row("GET /healthz", wall, cpu)]


def _timing_row(route: str, wall: list[float], cpu: list[float]) -> dict[str, Any]:
    """A row of the ASGI parts: requests, median wall and CPU time (ms)."""
    return {
        "route": route,
        "requests": len(wall),
        "median_ms": 1000 * statistics.median(wall),
        "cpu_ms": 1000 * statistics.median(cpu),
    }


def route_part(repeats: int, folder: Path) -> list[dict[str, Any]]:
    """One decision request over ASGI, through its DecisionRoute and through the same endpoint
    as a FastAPI APIRoute under /reference, alternating; both write their decision."""
    with platform_on("sqlite", folder, rate_limit_per_minute=0) as (services, principal):
        app = create_app(services)
        route = next(
            r
            for r in finance_endpoints.router.routes
            if isinstance(r, DecisionRoute) and r.path == DECISION_PATH
        )
        app.include_router(reference_router([route], "/reference"))
        body = json.dumps(REQUEST).encode()
        token = issue_access_token(services.settings, principal)
        headers = [
            (b"host", b"costs"),
            (b"authorization", f"Bearer {token}".encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]

        async def post(path: str) -> None:
            await asgi_request(app, "POST", path, headers, body)

        async def alternate() -> dict[str, tuple[list[float], list[float]]]:
            paths = {"DecisionRoute": DECISION_PATH, "APIRoute": "/reference" + DECISION_PATH}
            times: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in paths}
            for _ in range(50):  # warm-up, then the heap is frozen as a server's is
                for path in paths.values():
                    await post(path)
            freeze_startup_heap()
            for _ in range(repeats * 10):
                for label, path in paths.items():
                    start, cpu0 = time.perf_counter(), time.thread_time()
                    await post(path)
                    times[label][0].append(time.perf_counter() - start)
                    times[label][1].append(time.thread_time() - cpu0)
            return times

        times = uvloop.run(alternate())  # the server's event loop
    return [_timing_row(label, wall, cpu) for label, (wall, cpu) in times.items()]


def _show(table: Table, rows: list[dict[str, Any]]) -> None:
    """Print ``table`` if its part was measured."""
    if rows:
        console.print(table)


def print_tables(result: dict[str, Any]) -> None:
    """The measured tables."""
    table = Table(title="solve: the decision kind and the same QP solved other ways")
    for col in ("step", "median ms", "p99 ms", "CPU ms (median)", "max |w - w_cvxpy|"):
        table.add_column(col, justify="right")
    for r in result["solve"]:
        table.add_row(r["step"], f"{r['median_ms']:.3f}", f"{r['p99_ms']:.3f}",
                      f"{r['cpu_ms']:.3f}", f"{r['max_weight_diff']:.1e}")  # fmt: skip
    _show(table, result["solve"])
    table = Table(title="write transaction: decision row + audit leaf + head, committed")
    for col in ("database", "variant", "median ms", "p99 ms", "CPU ms (median, this process)"):
        table.add_column(col, justify="right")
    for r in result["write"]:
        table.add_row(r["database"], r["step"], f"{r['median_ms']:.3f}", f"{r['p99_ms']:.3f}",
                      f"{r['cpu_ms']:.3f}")  # fmt: skip
    _show(table, result["write"])
    table = Table(title="concurrent writers (service path), threads of one process")
    for col in ("database", "variant", "threads", "writes", "writes/s", "p50 ms", "p99 ms"):
        table.add_column(col, justify="right")
    for r in result["concurrent_write"]:
        table.add_row(
            r["database"], r["variant"], str(r["threads"]), str(r["writes"]),
            f"{r['writes_per_s']:.0f}", f"{r['p50_ms']:.1f}", f"{r['p99_ms']:.1f}",
        )  # fmt: skip
    _show(table, result["concurrent_write"])
    table = Table(title="checkpoint root (every 100th append) and an inclusion proof")
    columns = ["database", "leaves", "root over every stored leaf ms", "per decision (/100) ms"]
    columns += ["root from the compact range ms", "proof over every leaf ms"]
    for col in [*columns, "proof from stored nodes ms"]:
        table.add_column(col, justify="right")
    for r in result["checkpoint"]:
        table.add_row(
            r["database"], str(r["leaves"]), f"{r['all_leaves_ms']:.1f}",
            f"{r['all_leaves_ms'] / 100:.3f}", f"{r['compact_range_ms']:.3f}",
            f"{r['proof_all_leaves_ms']:.1f}", f"{r['proof_stored_nodes_ms']:.3f}",
        )  # fmt: skip
    _show(table, result["checkpoint"])
    table = Table(title="small per-request costs")
    for col in ("step", "median ms", "p99 ms", "CPU ms (median)"):
        table.add_column(col, justify="right")
    for r in result["small"]:
        table.add_row(
            r["step"], f"{r['median_ms']:.4f}", f"{r['p99_ms']:.4f}", f"{r['cpu_ms']:.4f}"
        )
    _show(table, result["small"])
    table = Table(title="a decision request over ASGI in-process (SQLite), routes alternating")
    for col in ("route", "requests", "median ms", "CPU ms (median)", "CPU / APIRoute's"):
        table.add_column(col, justify="right")
    rows = result["route"]
    reference = next((r["cpu_ms"] for r in rows if r["route"] == "APIRoute"), None)
    for r in rows:
        ratio = f"{r['cpu_ms'] / reference:.2f}" if reference else ""
        table.add_row(
            r["route"], str(r["requests"]), f"{r['median_ms']:.3f}", f"{r['cpu_ms']:.3f}", ratio
        )
    _show(table, result["route"])
    table = Table(title="GET /healthz over ASGI in-process, on uvloop")
    for col in ("route", "requests", "median ms", "CPU ms (median)"):
        table.add_column(col, justify="right")
    for r in result["healthz"]:
        table.add_row(r["route"], str(r["requests"]), f"{r['median_ms']:.3f}", f"{r['cpu_ms']:.3f}")
    _show(table, result["healthz"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both")
    names = ["solve", "write", "concurrent_write", "checkpoint", "small", "route", "healthz"]
    parser.add_argument("--parts", default=",".join(names), help=f"comma-separated: {names}")
    parser.add_argument(
        "--batches",
        default=",".join(map(str, WRITE_BATCHES)),
        help="decisions per write transaction in the write part, comma-separated",
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    if parts - set(names):
        parser.error(f"unknown parts {sorted(parts - set(names))}; choose from {names}")
    load = os.getloadavg()
    console.print(
        f"machine: {os.cpu_count()} cores, load average {load[0]:.2f} {load[1]:.2f} "
        f"{load[2]:.2f}; python {platform.python_version()}, cvxpy {cp.__version__}, "
        f"osqp {getattr(osqp, '__version__', '?')}, sqlalchemy {sqlalchemy.__version__}; "
        f"commit {source_commit()}"
    )
    kinds = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
    batches = [int(b) for b in args.batches.split(",")]
    with tempfile.TemporaryDirectory(prefix="nqba-costs-") as tmp:
        folder = Path(tmp)
        measure: dict[str, Callable[[], list[dict[str, Any]]]] = {
            "solve": lambda: solve_part(args.repeats),
            "write": lambda: [
                r for k in kinds for r in write_part(k, args.repeats, folder, batches)
            ],
            "concurrent_write": lambda: [
                r for k in kinds for r in concurrent_write_part(k, folder)
            ],
            "checkpoint": lambda: [r for k in kinds for r in checkpoint_part(k, folder)],
            "small": lambda: small_part(args.repeats),
            "route": lambda: route_part(args.repeats, folder),
            "healthz": lambda: healthz_part(args.repeats, folder),
        }
        result = {key: measure[key]() if key in parts else [] for key in measure}
    print_tables(result)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        out = {"commit": source_commit(), **result}
        args.json.write_text(json.dumps(out, indent=1, default=str))


if __name__ == "__main__":
    main()
