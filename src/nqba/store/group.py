"""Group commit on the event loop: writes queued while one batch runs commit together.

Every audited decision appends to one log, so its write transaction holds the database's one
write lock (SQLite's, or the ``audit_head`` row lock on PostgreSQL). A :class:`GroupWriter`
takes the writes of one process's event loop and runs them as batches: every write queued
when a batch starts (at most ``MAX_BATCH``) goes into one transaction, through one call of the
batch function, so a batch costs one lock hand-over, one commit and a few statements whatever
its size. While a batch runs, new writes queue for the next one, so batches grow with the
load. A caller gets its own result when the transaction holding its write has committed.

A batch run in a worker thread may first wait for the lock (the other process's batch holds
it). A joining batch function takes, once it holds the lock, the writes queued during that
wait into its own transaction, instead of leaving them a further wait for the next batch.

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
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar, cast

from anyio import to_thread
from sqlalchemy.orm import Session, sessionmaker

from nqba.store.session import WriterBusyError, write_transaction

I = TypeVar("I")  # noqa: E741 - the item type
R = TypeVar("R")

MAX_BATCH = 64
"""Writes per transaction at most, so one commit never waits on an unbounded batch."""

BatchFunction = Callable[[Session, Sequence[I]], Sequence[R]]
"""Writes the items in the session's transaction (not committing); one result per item."""

Joiner = Callable[[], list[I]]
"""Takes the writes queued since the batch began (up to ``MAX_BATCH`` in all) into it."""

JoiningBatchFunction = Callable[[Session, Sequence[I], Joiner[I]], Sequence[R]]
"""A batch function that may call its joiner once, when it holds the lock its writes wait on:
its results are then one per item and per joined write, in that order."""


class GroupWriter(Generic[I, R]):
    """Runs the writes of one event loop in batches (see the module's docstring)."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        run_batch: BatchFunction[I, R] | JoiningBatchFunction[I, R],
        loop: asyncio.AbstractEventLoop,
        *,
        joins: bool = False,
    ) -> None:
        self.factory = factory
        self.run_batch = run_batch
        self.loop = loop
        self.joins = joins
        """``run_batch`` is a JoiningBatchFunction: writes queued while a batch in a worker
        thread waits for the lock join it (see :meth:`_run`)."""
        bind = factory.kw.get("bind")
        self.on_loop_first = getattr(getattr(bind, "dialect", None), "name", "") == "sqlite"
        self._pending: list[tuple[I, asyncio.Future[R]]] = []
        self._pending_lock = threading.Lock()  # the loop appends; a joining thread takes
        self._running = False
        self._thread_batch: asyncio.Task[None] | None = None  # kept: the loop holds tasks weakly
        self.batches = 0
        """Batches committed or failed so far (for tests and metrics)."""

    async def write(self, item: I) -> R:
        """Write ``item`` in a committed transaction, possibly shared with other writes."""
        future: asyncio.Future[R] = self.loop.create_future()
        with self._pending_lock:
            self._pending.append((item, future))
        if not self._running:
            self._running = True
            # after the callbacks already due, so writes arriving in this pass join the batch
            self.loop.call_soon(self._next)
        return await future  # a cancelled caller's write still commits; nobody hears of it

    def _next(self) -> None:
        with self._pending_lock:
            batch = self._pending[:MAX_BATCH]
            del self._pending[:MAX_BATCH]
        if not batch:
            self._running = False
            return
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
        """The batch's results (or errors, one per item); WriterBusyError if not ``wait``.

        In a worker thread (``wait``), a joining batch function's joiner appends the writes
        queued meanwhile to ``batch`` (the loop settles them with it): they were waiting for
        the lock this batch now holds, and would otherwise wait for it once more."""
        items = [item for item, _ in batch]
        self.batches += 1

        def join() -> list[I]:
            if not wait:  # on the loop: nothing was queued since the batch began
                return []
            with self._pending_lock:
                late = self._pending[: MAX_BATCH - len(batch)]
                del self._pending[: len(late)]
            batch.extend(late)
            items.extend(item for item, _ in late)
            return [item for item, _ in late]

        try:
            with write_transaction(self.factory, wait=wait) as session:
                results: list[R | BaseException] = list(self._call(session, items[:], join))
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
                    result = self._call(session, [item], list)[0]
            except Exception as e:
                alone.append(e)
            else:
                alone.append(result)
        return alone

    def _call(self, session: Session, items: list[I], join: Joiner[I]) -> Sequence[R]:
        if self.joins:
            return cast(JoiningBatchFunction[I, R], self.run_batch)(session, items, join)
        return cast(BatchFunction[I, R], self.run_batch)(session, items)

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
    factory: sessionmaker[Session],
    run_batch: BatchFunction[I, R] | JoiningBatchFunction[I, R],
    *,
    joins: bool = False,
) -> GroupWriter[I, R]:
    """The writer of ``run_batch`` on ``factory`` for the running event loop (made once);
    ``joins``: ``run_batch`` is a JoiningBatchFunction."""
    loop = asyncio.get_running_loop()
    by_key = _writers.setdefault(loop, {})
    key = (id(factory), id(run_batch))
    writer: GroupWriter[I, R] | None = by_key.get(key)
    if writer is None or writer.factory is not factory or writer.run_batch is not run_batch:
        writer = by_key[key] = GroupWriter(factory, run_batch, loop, joins=joins)
    return writer
