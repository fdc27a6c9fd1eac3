"""Open-loop HTTP/1.1 load: fixed request rates, latency from the scheduled send time.

Requests are scheduled at ``start + i / rate`` whether or not earlier ones have been answered
(open loop), and each latency runs from the scheduled time to the last byte of the answer,
so a slow server cannot hide its queue by slowing the client down (no coordinated omission).
Connections are plain asyncio protocols speaking keep-alive HTTP/1.1 (uvloop when installed),
reused most-recent-first; a new one is opened when none is free, up to a limit.

``hold_connections`` opens many connections at once and sends one request on each;
``serve_null`` is an HTTP server that answers every request at once, to measure the
generator's own ceiling. No nqba imports: this file knows only HTTP.

Run the null server alone: ``.venv/bin/python benchmarks/loadgen.py null-server --port P``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import resource
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

IDLE_REUSE_S = 3.0
"""Connections idle longer than this are not reused (uvicorn closes them after 5 s)."""


class ResponseError(Exception):
    """The server's answer could not be read as HTTP/1.1."""


class ServerClosedError(ConnectionError):
    """The server closed the connection before answering."""


class NotSentError(Exception):
    """The run stopped (saturated) before this request got a connection."""


def raise_fd_limit() -> int:
    """Raise this process's open-file limit to its hard limit; return the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def http_request(
    method: str, path: str, host: str, headers: dict[str, str] | None = None, body: bytes = b""
) -> bytes:
    """The bytes of one keep-alive HTTP/1.1 request."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile (``p`` in 0..100) of an ascending list; nan when empty."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(p / 100.0 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


class HttpConnection(asyncio.Protocol):
    """One client connection; ``request`` sends and resolves to the answer's status code."""

    def __init__(self, loop: asyncio.AbstractEventLoop, keep_body: bool = False) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[int] | None = None
        self.closed = False
        self.keep_alive = True
        self.keep_body = keep_body
        self.body = b""
        self.last_used = loop.time()
        self.done_at = 0.0  # perf_counter() when the last answer was complete

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.waiter is not None and not self.waiter.done():
            try:
                status = self._parse()
            except (ResponseError, ValueError) as e:
                self.waiter.set_exception(ResponseError(str(e)))
                self.close()
                return
            if status is not None:
                self.done_at = time.perf_counter()
                self.waiter.set_result(status)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            reason = f"{type(exc).__name__}: {exc}" if exc else "closed by the server"
            self.waiter.set_exception(ServerClosedError(reason))

    def request(self, data: bytes) -> asyncio.Future[int]:
        """Send ``data`` (one request); the future resolves to the status code."""
        assert self.transport is not None
        self.waiter = self.loop.create_future()
        if self.closed:
            self.waiter.set_exception(ServerClosedError("closed before sending"))
        else:
            self.transport.write(data)
        return self.waiter

    def close(self) -> None:
        """Close the connection (idempotent)."""
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def _parse(self) -> int | None:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return None
        lines = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
            raise ResponseError(f"not an HTTP/1.1 status line: {lines[0][:80]!r}")
        status = int(parts[1])
        length: int | None = None
        chunked = False
        close = False
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding":
                chunked = "chunked" in value.lower()
            elif name == "connection":
                close = value.strip().lower() == "close"
        start = end + 4
        if chunked:
            parsed = _chunked_body(self.buffer, start)
            if parsed is None:
                return None
            body, consumed = parsed
        elif length is not None:
            if len(self.buffer) < start + length:
                return None
            body, consumed = bytes(self.buffer[start : start + length]), start + length
        else:
            raise ResponseError("answer without Content-Length or chunked encoding")
        del self.buffer[:consumed]
        if self.keep_body:
            self.body = body
        self.keep_alive = not close
        return status


def _chunked_body(buffer: bytearray, start: int) -> tuple[bytes, int] | None:
    """The body of a chunked answer starting at ``start`` and where it ends; None if partial."""
    pos, body = start, bytearray()
    while True:
        line_end = buffer.find(b"\r\n", pos)
        if line_end < 0:
            return None
        size = int(bytes(buffer[pos:line_end]).split(b";")[0], 16)
        pos = line_end + 2
        if size == 0:
            trailer_end = buffer.find(b"\r\n\r\n", pos - 2)
            return (bytes(body), trailer_end + 4) if trailer_end >= 0 else None
        if len(buffer) < pos + size + 2:
            return None
        body += buffer[pos : pos + size]
        pos += size + 2


async def connect(
    host: str, port: int, timeout_s: float, keep_body: bool = False
) -> HttpConnection:
    """A new connection to ``host:port`` (TCP_NODELAY is asyncio's default)."""
    loop = asyncio.get_running_loop()
    _, protocol = await asyncio.wait_for(
        loop.create_connection(lambda: HttpConnection(loop, keep_body), host, port), timeout_s
    )
    return protocol


class ConnectionPool:
    """Keep-alive connections, most recently used first; at most ``limit`` open at once."""

    def __init__(self, host: str, port: int, limit: int, connect_timeout_s: float) -> None:
        self.host, self.port, self.limit = host, port, limit
        self.connect_timeout_s = connect_timeout_s
        self.idle: list[HttpConnection] = []
        self.waiters: deque[asyncio.Future[HttpConnection | None]] = deque()
        self.open = 0
        self.opened = 0
        self.peak_open = 0
        self.stopped = False

    async def acquire(self) -> HttpConnection:
        """A free connection: an idle one, a new one, or the next one released."""
        loop = asyncio.get_running_loop()
        while self.idle:
            conn = self.idle.pop()
            if not conn.closed and loop.time() - conn.last_used < IDLE_REUSE_S:
                return conn
            conn.close()
            self.open -= 1
        if self.open >= self.limit:
            if self.stopped:
                raise NotSentError()
            waiter: asyncio.Future[HttpConnection | None] = loop.create_future()
            self.waiters.append(waiter)
            handed = await waiter
            if handed is not None:
                return handed
            # a slot was handed over (already counted in self.open): connect below
        else:
            self.open += 1
        try:
            conn = await connect(self.host, self.port, self.connect_timeout_s)
        except BaseException:
            self.open -= 1
            self._hand_slot()
            raise
        self.opened += 1
        self.peak_open = max(self.peak_open, self.open)
        return conn

    def release(self, conn: HttpConnection) -> None:
        """Give a connection back after a complete answer."""
        conn.last_used = conn.loop.time()
        if conn.closed or not conn.keep_alive:
            self.discard(conn)
            return
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        self.idle.append(conn)

    def discard(self, conn: HttpConnection) -> None:
        """Drop a broken connection and free its slot."""
        conn.close()
        self.open -= 1
        self._hand_slot()

    def _hand_slot(self) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                self.open += 1
                waiter.set_result(None)
                return

    def fail_waiters(self) -> int:
        """Stop every request waiting for a connection, and later ones; return how many."""
        self.stopped = True
        failed = 0
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_exception(NotSentError())
                failed += 1
        return failed

    def close(self) -> None:
        """Close the idle connections."""
        for conn in self.idle:
            conn.close()
        self.idle.clear()


@dataclass
class RateResult:
    """One open-loop run at a fixed rate; the figures leave out the warm-up part.

    A run that saturates stops early, maybe before or just after its warm-up: its figures
    then cover every request of the run (``includes_warmup``).
    """

    offered_rps: float
    duration_s: float
    scheduled: int = 0
    ok: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    not_sent: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    start_lag_ms: list[float] = field(default_factory=list)
    window_s: float = 0.0
    completed_in_window: int = 0
    saturated_after_s: float | None = None
    includes_warmup: bool = False
    ok_including_warmup: int = 0
    client_cpu_s: float = 0.0
    connections_opened: int = 0
    peak_connections: int = 0

    @property
    def throughput_rps(self) -> float:
        """2xx answers completed per second from the window's first scheduled request to
        its last answer (answers to warm-up requests completed in it count too)."""
        return self.completed_in_window / self.window_s if self.window_s > 0 else 0.0

    @property
    def non_2xx(self) -> int:
        """Answers with a status outside 200-299."""
        return sum(n for s, n in self.statuses.items() if not 200 <= s < 300)

    def latency(self, p: float) -> float:
        """Latency percentile in ms over every answer of the window (any status)."""
        return percentile(sorted(self.latencies_ms), p)

    def summary(self) -> dict[str, Any]:
        """The figures of the run, JSON-able."""
        lags = sorted(self.start_lag_ms)
        return {
            "offered_rps": self.offered_rps,
            "duration_s": self.duration_s,
            "window_s": round(self.window_s, 3),
            "scheduled": self.scheduled,
            "answered": len(self.latencies_ms),
            "ok": self.ok,
            "throughput_rps": round(self.throughput_rps, 1),
            "p50_ms": round(self.latency(50), 2),
            "p95_ms": round(self.latency(95), 2),
            "p99_ms": round(self.latency(99), 2),
            "max_ms": round(self.latency(100), 2),
            "non_2xx": self.non_2xx,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "errors": dict(self.errors),
            "not_sent": self.not_sent,
            "saturated_after_s": self.saturated_after_s,
            "includes_warmup": self.includes_warmup,
            "generator_lag_p99_ms": round(percentile(lags, 99), 3),
            "generator_lag_max_ms": round(percentile(lags, 100), 3),
            "client_cpu_ms_per_request": round(
                1000 * self.client_cpu_s / max(1, len(self.start_lag_ms)), 4
            ),
            "connections_opened": self.connections_opened,
            "peak_connections": self.peak_connections,
            "ok_including_warmup": self.ok_including_warmup,
        }


@dataclass
class _Outcome:
    """What happened to request ``index``: its answer's status, or why it got none."""

    index: int
    scheduled: float
    start_lag: float
    done: float | None = None
    status: int | None = None
    error: str | None = None
    not_sent: bool = False


async def run_open_loop(
    host: str,
    port: int,
    request: bytes,
    rate: float,
    duration_s: float,
    *,
    warmup_s: float = 0.0,
    max_connections: int = 512,
    timeout_s: float = 30.0,
    max_backlog_s: float = 2.0,
) -> RateResult:
    """Offer ``request`` at ``rate`` per second for ``warmup_s + duration_s`` seconds.

    Latency runs from each request's scheduled time to its complete answer; requests waiting
    for a connection wait on the clock. If more than ``max_backlog_s`` seconds of requests are
    outstanding the server is saturated: nothing more is offered, requests not yet sent are
    dropped (``not_sent``) and the ones sent are awaited (so every decision the server made is
    counted), and the figures cover the whole run. Otherwise warm-up requests are left out
    of the figures; every 2xx answer is counted in ``ok_including_warmup``.
    """
    loop = asyncio.get_running_loop()
    pool = ConnectionPool(host, port, max_connections, connect_timeout_s=timeout_s)
    result = RateResult(offered_rps=rate, duration_s=duration_s)
    interval = 1.0 / rate
    warm = round(rate * warmup_s)
    total = warm + round(rate * duration_s)
    start = time.perf_counter() + 0.02
    outcomes: list[_Outcome] = []
    tasks: set[asyncio.Task[None]] = set()

    async def one(index: int, scheduled: float) -> None:
        outcome = _Outcome(index, scheduled, time.perf_counter() - scheduled)
        try:
            try:
                conn = await pool.acquire()
            except NotSentError:
                outcome.not_sent = True
                return
            except (OSError, TimeoutError) as e:
                outcome.error = f"connect {type(e).__name__}"
                return
            try:
                status = await asyncio.wait_for(conn.request(request), timeout_s)
            except (TimeoutError, ConnectionError, ResponseError) as e:
                pool.discard(conn)
                outcome.error = type(e).__name__
                return
            outcome.done, outcome.status = conn.done_at, status
            pool.release(conn)
        finally:
            outcomes.append(outcome)

    cpu0 = time.process_time()
    index = 0
    while index < total:
        now = time.perf_counter()
        due = min(total, math.floor((now - start) * rate) + 1) if now >= start else 0
        while index < due:
            task = loop.create_task(one(index, start + index * interval))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            index += 1
        if index - len(outcomes) > max(20.0, rate * max_backlog_s):
            result.saturated_after_s = round(now - start, 2)
            pool.fail_waiters()
            break
        # at least 1 ms (the event loop's timer resolution): a shorter sleep returns at once
        # and the loop would spin; a request sent late is measured from its scheduled time
        await asyncio.sleep(max(0.001, start + index * interval - time.perf_counter()))
    if tasks:
        await asyncio.gather(*tasks, return_exceptions=True)
    result.client_cpu_s = time.process_time() - cpu0
    if result.saturated_after_s is not None:  # overloaded: report every request of the run
        warm, result.includes_warmup = 0, True
    window_start = start + warm * interval
    last_done = window_start
    result.scheduled = index - warm
    ok_done = []  # completion times of every 2xx answer, warm-up ones included
    for o in outcomes:
        if o.status is not None and o.done is not None and 200 <= o.status < 300:
            result.ok_including_warmup += 1
            ok_done.append(o.done)
        if o.index < warm:
            continue
        result.start_lag_ms.append(o.start_lag * 1000)
        if o.not_sent:
            result.not_sent += 1
        elif o.error is not None:
            result.errors[o.error] += 1
        elif o.status is not None and o.done is not None:
            result.latencies_ms.append((o.done - o.scheduled) * 1000)
            result.statuses[o.status] += 1
            result.ok += 200 <= o.status < 300
            last_done = max(last_done, o.done)
    result.window_s = max(0.0, last_done - window_start)
    # throughput: 2xx answers completed inside the window (whichever request they answer)
    result.completed_in_window = sum(1 for t in ok_done if window_start <= t <= last_done)
    result.connections_opened = pool.opened
    result.peak_connections = pool.peak_open
    pool.close()
    return result


@dataclass
class HoldResult:
    """Many connections opened at once, one request sent on each, all held open together."""

    connections: int
    connected: int = 0
    connect_errors: Counter[str] = field(default_factory=Counter)
    connect_s: float = 0.0
    ok: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    requests_s: float = 0.0
    open_after_answers: int = 0
    server_sockets: dict[str, int] = field(default_factory=dict)
    ok_by_kind: Counter[str] = field(default_factory=Counter)

    @property
    def failures(self) -> int:
        """Connections that failed to connect, to answer, or answered non-2xx."""
        return self.connections - self.ok

    def summary(self) -> dict[str, Any]:
        """The figures of the run, JSON-able."""
        lat = sorted(self.latencies_ms)
        return {
            "connections": self.connections,
            "connected": self.connected,
            "connect_errors": dict(self.connect_errors),
            "connect_s": round(self.connect_s, 2),
            "ok": self.ok,
            "ok_by_kind": dict(self.ok_by_kind),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "errors": dict(self.errors),
            "requests_s": round(self.requests_s, 2),
            "p50_ms": round(percentile(lat, 50), 1),
            "p99_ms": round(percentile(lat, 99), 1),
            "max_ms": round(percentile(lat, 100), 1),
            "open_after_answers": self.open_after_answers,
            "server_sockets": self.server_sockets,
            "failures": self.failures,
        }


async def hold_connections(
    host: str,
    port: int,
    count: int,
    request_of: Callable[[int], tuple[str, bytes]],
    *,
    connect_concurrency: int = 500,
    timeout_s: float = 60.0,
    probe: Callable[[], int] | None = None,
) -> HoldResult:
    """Open ``count`` connections, then send one request on every one of them at once.

    ``request_of(i)`` gives the kind (a label) and bytes of connection ``i``'s request.
    Every connection stays open until all answers are in; ``probe()`` (the number of
    sockets the server holds) is read after connecting and after the answers.
    """
    result = HoldResult(connections=count)
    gate = asyncio.Semaphore(connect_concurrency)

    async def open_one() -> HttpConnection | None:
        async with gate:
            try:
                return await connect(host, port, timeout_s)
            except (OSError, TimeoutError) as e:
                result.connect_errors[f"{type(e).__name__}: {getattr(e, 'strerror', '')}"] += 1
                return None

    start = time.perf_counter()
    conns = await asyncio.gather(*(open_one() for _ in range(count)))
    result.connect_s = time.perf_counter() - start
    live = [(i, c) for i, c in enumerate(conns) if c is not None]
    result.connected = len(live)
    if probe is not None:
        result.server_sockets["after_connect"] = probe()

    async def ask(i: int, conn: HttpConnection) -> None:
        kind, data = request_of(i)
        sent = time.perf_counter()
        try:
            status = await asyncio.wait_for(conn.request(data), timeout_s)
        except (TimeoutError, ConnectionError, ResponseError) as e:
            result.errors[type(e).__name__] += 1
            return
        result.latencies_ms.append((conn.done_at - sent) * 1000)
        result.statuses[status] += 1
        if 200 <= status < 300:
            result.ok += 1
            result.ok_by_kind[kind] += 1

    start = time.perf_counter()
    await asyncio.gather(*(ask(i, c) for i, c in live))
    result.requests_s = time.perf_counter() - start
    result.open_after_answers = sum(1 for _, c in live if not c.closed)
    if probe is not None:
        result.server_sockets["after_answers"] = probe()
    for _, conn in live:
        conn.close()
    await asyncio.sleep(0.2)
    return result


class _NullHttp(asyncio.Protocol):
    """Answers every request with a fixed small JSON body (keep-alive)."""

    ANSWER = (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 15\r\n\r\n"
        b'{"status":"ok"}'
    )

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end]).lower()
            marker = head.find(b"content-length:")
            length = int(head[marker + 15 :].split(b"\r\n", 1)[0]) if marker >= 0 else 0
            if len(self.buffer) < end + 4 + length:
                return
            del self.buffer[: end + 4 + length]
            assert self.transport is not None
            self.transport.write(self.ANSWER)


async def serve_null(host: str, port: int) -> None:
    """Serve ``_NullHttp`` until cancelled."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_NullHttp, host, port, backlog=4096)
    async with server:
        await server.serve_forever()


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop when installed (as uvicorn uses), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    null = sub.add_parser("null-server", help="answer every request at once, without work")
    null.add_argument("--host", default="127.0.0.1")
    null.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    raise_fd_limit()
    loop = new_event_loop()
    with contextlib.suppress(KeyboardInterrupt):
        loop.run_until_complete(serve_null(args.host, args.port))


if __name__ == "__main__":
    main()
