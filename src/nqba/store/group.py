"""Group commit: writes that queue for the write lock are committed together, one each.

Every audited decision appends to one log, so its write transaction holds the database's one
write lock (SQLite's, or the ``audit_head`` row lock on PostgreSQL). When writes arrive faster
than one transaction each can commit, :func:`write_in_group` lets the first waiting thread
run every write queued so far in a single transaction, each inside its own savepoint (a
write with none queued beside it runs alone, without one): one lock hand-over and one commit
for the batch, and a write that fails (an idempotency key raced, a bad row) is rolled back
alone and raises in its own caller. A caller returns only
after the transaction holding its write has committed.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from sqlalchemy.orm import Session, sessionmaker

from nqba.store.session import write_transaction

T = TypeVar("T")

MAX_BATCH = 64
"""Writes per transaction at most, so one commit never waits on an unbounded batch."""


class _Write(Generic[T]):
    __slots__ = ("done", "error", "result", "work")

    def __init__(self, work: Callable[[Session], T]) -> None:
        self.work = work
        self.done = False
        self.result: T | None = None
        self.error: BaseException | None = None


class GroupWriter:
    """Runs queued writes of one session factory in shared transactions (leader/followers).

    A caller queues its write; if no batch is running it becomes the leader, takes every
    write queued so far (at most ``MAX_BATCH``) and runs them; otherwise it waits until a
    batch has committed its write, or until it may lead the next batch.
    """

    def __init__(self, factory: sessionmaker[Session]) -> None:
        self.factory = factory
        self.pid = os.getpid()
        self._cond = threading.Condition()
        self._pending: list[_Write[Any]] = []
        self._leading = False

    def write(self, work: Callable[[Session], T]) -> T:
        """Run ``work(session)`` in a committed write transaction shared with other writes."""
        item: _Write[T] = _Write(work)
        with self._cond:
            self._pending.append(item)
        while True:
            with self._cond:
                while self._leading and not item.done:
                    self._cond.wait()
                if item.done:
                    break
                self._leading = True
                batch = self._pending[:MAX_BATCH]
                del self._pending[:MAX_BATCH]
            try:
                self._run(batch)
            finally:
                with self._cond:
                    self._leading = False
                    self._cond.notify_all()
        if item.error is not None:
            raise item.error
        return item.result  # type: ignore[return-value]

    def _run(self, batch: list[_Write[Any]]) -> None:
        try:
            with write_transaction(self.factory) as session:
                if len(batch) == 1:  # alone: its error rolls back the transaction, no savepoint
                    batch[0].result = batch[0].work(session)
                    return
                for item in batch:
                    savepoint = session.begin_nested()
                    try:
                        item.result = item.work(session)
                        session.flush()
                        savepoint.commit()
                    except Exception as e:
                        savepoint.rollback()
                        item.error = e
        except BaseException as e:  # BEGIN, the commit or a lone write failed: none of it holds
            for item in batch:
                if item.error is None:
                    item.error = e
                    item.result = None
            if not isinstance(e, Exception):
                raise
        finally:
            for item in batch:
                item.done = True


_writers: weakref.WeakKeyDictionary[sessionmaker[Session], GroupWriter] = (
    weakref.WeakKeyDictionary()
)
_writers_guard = threading.Lock()


def write_in_group(factory: sessionmaker[Session], work: Callable[[Session], T]) -> T:
    """``work(session)`` in a committed write transaction, possibly shared with other writes
    of this process (see the module's docstring); its own errors are raised here."""
    with _writers_guard:
        writer = _writers.get(factory)
        if writer is None or writer.pid != os.getpid():
            writer = _writers[factory] = GroupWriter(factory)
    return writer.write(work)
