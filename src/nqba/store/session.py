"""Engines and sessions for SQLite (embedded default) and PostgreSQL (production).

Services never commit; the boundary that opened the session does (a request, a job, a CLI
command). Writes that must not interleave (a decision with its audit leaf) go through
:func:`write_transaction`, which on SQLite takes the write lock at BEGIN (``BEGIN
IMMEDIATE``) so two writers queue on the busy timeout instead of failing half-way.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pydantic_core
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from nqba.store.base import Base
from nqba.store.batch import WriteBatch

try:
    import fcntl
except ImportError:  # not POSIX: only the writers of one process are ordered
    fcntl = None  # type: ignore[assignment]

_log = logging.getLogger("nqba.store")

SQLITE_BUSY_TIMEOUT_MS = 30_000
_IMMEDIATE = "nqba_begin_immediate"


class DatabaseConfigError(ValueError):
    """The database URL names a driver NQBA does not support or cannot load."""


def make_engine(url: str, *, wal_autocheckpoint: int | None = None, **kwargs: Any) -> Engine:
    """An engine for ``url`` with NQBA's connection settings (SQLite: WAL, foreign keys).

    ``wal_autocheckpoint``: SQLite's pages of WAL after which a committing writer checkpoints
    (1000 by default); a server whose :class:`WalCheckpointer` does it sets a high backstop.
    """
    try:
        parsed = make_url(url)
    except Exception as e:
        raise DatabaseConfigError(f"not a database URL: {url!r} ({e})") from e
    kwargs.setdefault("json_serializer", json_text)
    backend = parsed.get_backend_name()
    if backend == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if backend not in ("sqlite", "postgresql"):
        raise DatabaseConfigError(
            f"unsupported database {backend!r}: use sqlite:///path or postgresql://..."
        )
    if backend == "sqlite":
        kwargs.setdefault("connect_args", {"check_same_thread": False, "timeout": 30})
        engine = create_engine(parsed, **kwargs)
        _configure_sqlite(engine, wal_autocheckpoint)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    return create_engine(parsed, **kwargs)


def json_text(value: Any) -> str:
    """JSON columns' text: pydantic-core's writer, about 5x the standard library's speed on a
    decision's outputs, with the same text for JSON values (floats round-trip exactly)."""
    return pydantic_core.to_json(value).decode()


def _configure_sqlite(engine: Engine, wal_autocheckpoint: int | None) -> None:
    """WAL journal, enforced foreign keys, a busy timeout, and BEGIN emitted by us."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # pysqlite's own transaction handling is turned off so that BEGIN is ours to emit.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        in_memory = engine.url.database in (None, "", ":memory:")
        if not in_memory:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            if wal_autocheckpoint is not None:
                cursor.execute(f"PRAGMA wal_autocheckpoint={int(wal_autocheckpoint)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get(_IMMEDIATE, False)
        # on the driver's connection: a third of an empty write transaction's cost through
        # SQLAlchemy's statement machinery, and every decision batch begins one
        conn.connection.dbapi_connection.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")


WAL_BACKSTOP_PAGES = 50_000
"""With a :class:`WalCheckpointer`, a writer still checkpoints past this many WAL pages
(about 200 MB), should the background thread fall behind or stop."""


class WalCheckpointer:
    """Checkpoints a SQLite database's write-ahead log from a background thread.

    SQLite's own checkpoint runs in the commit that takes the log past 1000 pages, and with
    ``synchronous=NORMAL`` it syncs the database file: about 20 ms here, every 150 or so
    decisions, during which a server's event loop (where inline decisions are committed)
    answers nobody. A PASSIVE checkpoint every ``interval_s`` in this thread copies the log
    back without blocking readers or writers; the connections keep a high backstop
    (``make_engine(wal_autocheckpoint=WAL_BACKSTOP_PAGES)``).
    """

    def __init__(self, engine: Engine, interval_s: float = 0.25) -> None:
        self.engine = engine
        self.interval_s = interval_s
        self.checkpoints = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="nqba-wal-checkpoint", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)

    def checkpoint_now(self) -> None:
        """One PASSIVE checkpoint: copy what the log holds back into the database file."""
        with self.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
        self.checkpoints += 1

    def _run(self) -> None:
        failed = False
        while not self._stop.wait(self.interval_s):
            try:
                self.checkpoint_now()
                failed = False
            except Exception as e:  # the backstop still checkpoints; say so once per outage
                if not failed:
                    _log.warning("WAL checkpoint failed", extra={"error": type(e).__name__})
                failed = True


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions bound to ``engine``; objects stay readable after commit."""
    return sessionmaker(engine, expire_on_commit=False)


class _SQLiteWriterLock:
    """Orders the writers of one SQLite database file before they ``BEGIN IMMEDIATE``.

    SQLite's busy handler sleeps 1-100 ms between retries even when the database is free
    again, so writers queue here instead: the threads of this process on a re-entrant lock,
    and the processes sharing the file (``nqba serve --workers``) on an exclusive ``flock``
    of ``<database>.writer-lock``, which the kernel hands to the next waiter at once. A nested
    writer in the same thread holds both already and meets SQLite's busy timeout as before.
    In-memory databases are private to their process and take only the thread lock. A forked
    child makes its own (a shared descriptor would share the ``flock``).
    """

    def __init__(self, database: str | None) -> None:
        self.pid = os.getpid()
        self._thread_lock = threading.RLock()
        self._depth = 0
        self._fd: int | None = None
        in_memory = not database or ":memory:" in database or "mode=memory" in database
        if fcntl is not None and database and not in_memory:
            path = os.path.abspath(database) + ".writer-lock"
            self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            weakref.finalize(self, os.close, self._fd)

    def acquire(self, blocking: bool = True) -> bool:
        """Take the lock; with ``blocking=False`` return False at once if it is held."""
        if not self._thread_lock.acquire(blocking):
            return False
        if self._depth == 0 and self._fd is not None:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self._thread_lock.release()
                return False
            except BaseException:
                self._thread_lock.release()
                raise
        self._depth += 1
        return True

    def release(self) -> None:
        self._depth -= 1
        if self._depth == 0 and self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._thread_lock.release()


_sqlite_writer_locks: weakref.WeakKeyDictionary[Engine, _SQLiteWriterLock] = (
    weakref.WeakKeyDictionary()
)
_locks_guard = threading.Lock()


def _sqlite_writer_lock(engine: Engine) -> _SQLiteWriterLock:
    """The writer lock of ``engine``'s database (one per engine)."""
    with _locks_guard:
        lock = _sqlite_writer_locks.get(engine)
        if lock is None or lock.pid != os.getpid():
            lock = _sqlite_writer_locks[engine] = _SQLiteWriterLock(engine.url.database)
        return lock


class WriterBusyError(Exception):
    """``write_transaction(wait=False)``: another writer holds the SQLite database's lock."""


@contextmanager
def write_transaction(factory: sessionmaker[Session], *, wait: bool = True) -> Iterator[Session]:
    """A session whose transaction holds the write lock from its start; commits on success.

    On PostgreSQL this is an ordinary transaction (row locks order the writers); on SQLite it
    begins with ``BEGIN IMMEDIATE``, after taking the database's writer lock (which orders
    this process's threads and the other processes that use the same file). ``wait=False``
    raises WriterBusyError instead of waiting when that lock is held.
    """
    session = factory()
    bind = session.get_bind()
    lock = _sqlite_writer_lock(bind.engine) if bind.dialect.name == "sqlite" else None
    if lock is not None and not lock.acquire(blocking=wait):
        session.close()
        raise WriterBusyError("another writer holds the database's write lock")
    try:
        if lock is not None:
            session.connection(execution_options={_IMMEDIATE: True})
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
        if lock is not None:
            lock.release()


@contextmanager
def read_session(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session for reads (and writes that need no ordering); commits on success."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def insert_rows(session: Session, objs: Sequence[Base]) -> None:
    """INSERT the rows of the new objects ``objs`` (all of one class) now, on ``session``'s
    connection, with one statement: a :class:`~nqba.store.batch.WriteBatch` sent at once (see
    its ``insert_objects`` for the defaults). About a third of the unit of work's flush per
    row; the objects stay transient."""
    batch = WriteBatch(session)
    batch.insert_objects(objs)
    batch.send()
