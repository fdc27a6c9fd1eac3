"""Group commit on the event loop: writes queued while one batch runs commit together.

Every audited decision appends to one log, so its write transaction holds the database's one
write lock (SQLite's, or the ``audit_head`` row lock on PostgreSQL). A :class:`GroupWriter`
takes the writes of one process's event loop and runs them as batches: every write queued
when a batch starts (at most ``MAX_BATCH``) goes into one transaction, through one call of the
batch function, so a batch costs one lock hand-over, one commit and a few statements whatever
its size. While a batch runs, new writes queue for the next one, so batches grow with the
load. A caller gets its own result when the transaction holding its write has committed.

If a batch fails (an idempotency key raced, a bad row), its transaction is rolled back and
each of its writes is run again alone, in its own transaction: one write's error is raised in
its own caller only, and never undoes another's.

Where a batch runs: on SQLite, on the event loop itself when the database's writer lock is
free at once (a local file write costs about what a thread hand-off does, and the batch does
not then wait for the interpreter lock behind the loop), else in a worker thread that waits
for it; on PostgreSQL, in a worker thread (the statements wait on the network).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from anyio import to_thread
from sqlalchemy.orm import Session, sessionmaker

from nqba.store.session import WriterBusyError, write_transaction

I = TypeVar("I")  # noqa: E741 - the item type
R = TypeVar("R")

MAX_BATCH = 64
"""Writes per transaction at most, so one commit never waits on an unbounded batch."""

BatchFunction = Callable[[Session, Sequence[I]], Sequence[R]]
"""Writes the items in the session's transaction (not committing); one result per item."""


class GroupWriter(Generic[I, R]):
    """Runs the writes of one event loop in batches (see the module's docstring)."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        run_batch: BatchFunction[I, R],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.factory = factory
        self.run_batch = run_batch
        self.loop = loop
        bind = factory.kw.get("bind")
        self.on_loop_first = getattr(getattr(bind, "dialect", None), "name", "") == "sqlite"
        self._pending: list[tuple[I, asyncio.Future[R]]] = []
        self._running = False
        self._thread_batch: asyncio.Task[None] | None = None  # kept: the loop holds tasks weakly
        self.batches = 0
        """Batches committed or failed so far (for tests and metrics)."""

    async def write(self, item: I) -> R:
        """Write ``item`` in a committed transaction, possibly shared with other writes."""
        future: asyncio.Future[R] = self.loop.create_future()
        self._pending.append((item, future))
        if not self._running:
            self._running = True
            # after the callbacks already due, so writes arriving in this pass join the batch
            self.loop.call_soon(self._next)
        return await future  # a cancelled caller's write still commits; nobody hears of it

    def _next(self) -> None:
        if not self._pending:
            self._running = False
            return
        batch = self._pending[:MAX_BATCH]
        del self._pending[:MAX_BATCH]
        if self.on_loop_first:
            try:
                results = self._run(batch, wait=False)
            except WriterBusyError:
                pass  # another process (or thread) is writing: wait for it off the loop
            except BaseException as e:  # not a write's own error: fail the batch, go on
                self._settle(batch, [e] * len(batch))
                self.loop.call_soon(self._next)
                raise
            else:
                self._settle(batch, results)
                self.loop.call_soon(self._next)
                return
        self._thread_batch = self.loop.create_task(self._in_thread(batch))

    async def _in_thread(self, batch: list[tuple[I, asyncio.Future[R]]]) -> None:
        try:
            results = await to_thread.run_sync(self._run, batch, True)
        except BaseException as e:  # the thread could not be started or was cancelled
            results = [e] * len(batch)
        self._settle(batch, results)
        self._next()

    def _run(self, batch: list[tuple[I, asyncio.Future[R]]], wait: bool) -> list[R | BaseException]:
        """The batch's results (or errors, one per item); WriterBusyError if not ``wait``."""
        items = [item for item, _ in batch]
        self.batches += 1
        try:
            with write_transaction(self.factory, wait=wait) as session:
                results: list[R | BaseException] = list(self.run_batch(session, items))
            return results
        except WriterBusyError:
            self.batches -= 1
            raise
        except Exception as e:
            if len(items) == 1:
                return [e]
        alone: list[R | BaseException] = []
        for item in items:  # the batch failed: each write alone, so an error stays its own
            try:
                with write_transaction(self.factory) as session:
                    result = self.run_batch(session, [item])[0]
            except Exception as e:
                alone.append(e)
            else:
                alone.append(result)
        return alone

    @staticmethod
    def _settle(
        batch: list[tuple[I, asyncio.Future[R]]], results: Sequence[R | BaseException]
    ) -> None:
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)


_writers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[int, int], Any]] = (
    weakref.WeakKeyDictionary()
)


def group_writer(
    factory: sessionmaker[Session], run_batch: BatchFunction[I, R]
) -> GroupWriter[I, R]:
    """The writer of ``run_batch`` on ``factory`` for the running event loop (made once)."""
    loop = asyncio.get_running_loop()
    by_key = _writers.setdefault(loop, {})
    key = (id(factory), id(run_batch))
    writer: GroupWriter[I, R] | None = by_key.get(key)
    if writer is None or writer.factory is not factory or writer.run_batch is not run_batch:
        writer = by_key[key] = GroupWriter(factory, run_batch, loop)
    return writer
