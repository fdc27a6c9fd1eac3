"""SQLite writers queue on the database's writer lock (threads, other engines, processes); a
server checkpoints the log in a background thread."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from nqba.services import build_services
from nqba.store import session as store_session
from nqba.store.migrate import upgrade
from nqba.store.models import Organisation
from nqba.store.session import (
    WAL_BACKSTOP_PAGES,
    WalCheckpointer,
    insert_rows,
    make_engine,
    make_session_factory,
    read_session,
    write_transaction,
)
from tests.support.platform import platform_settings

WRITER = """
import sys, time
from sqlalchemy import text
from nqba.store.session import make_engine, make_session_factory, write_transaction
factory = make_session_factory(make_engine(sys.argv[1]))
print("ready", flush=True)
with write_transaction(factory) as session:
    session.execute(text("INSERT INTO t (who) VALUES ('child')"))
print("written", flush=True)
"""


def _table(url: str) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, who TEXT)"))
    engine.dispose()


def _rows(url: str) -> list[str]:
    engine = make_engine(url)
    try:
        with read_session(make_session_factory(engine)) as session:
            return [r[0] for r in session.execute(text("SELECT who FROM t ORDER BY id"))]
    finally:
        engine.dispose()


def test_a_writer_in_another_process_waits_for_the_lock_file_and_then_writes(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    _table(url)
    fd = os.open(tmp_path / "db.sqlite.writer-lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    child = subprocess.Popen([sys.executable, "-c", WRITER, url], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        time.sleep(0.5)
        assert child.poll() is None  # waiting for the lock, not failing
        assert _rows(url) == []
        released = time.monotonic()
        fcntl.flock(fd, fcntl.LOCK_UN)
        assert child.stdout.readline().strip() == "written"
        # The kernel hands the lock over at once; SQLite's busy handler would not be woken.
        assert time.monotonic() - released < 5
        assert child.wait(timeout=10) == 0
    finally:
        os.close(fd)
        child.kill()
        child.wait()
    assert _rows(url) == ["child"]


def test_two_engines_on_one_file_write_in_turn(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    _table(url)
    first, second = make_engine(url), make_engine(url)
    holding = threading.Event()
    release = threading.Event()
    errors: list[BaseException] = []

    def hold() -> None:
        try:
            with write_transaction(make_session_factory(first)) as session:
                session.execute(text("INSERT INTO t (who) VALUES ('first')"))
                holding.set()
                release.wait(10)
        except BaseException as e:  # reported below
            errors.append(e)

    def write() -> None:
        try:
            with write_transaction(make_session_factory(second)) as session:
                session.execute(text("INSERT INTO t (who) VALUES ('second')"))
        except BaseException as e:
            errors.append(e)

    a = threading.Thread(target=hold)
    a.start()
    assert holding.wait(10)
    b = threading.Thread(target=write)
    b.start()
    time.sleep(0.3)
    assert b.is_alive()
    release.set()
    a.join(10)
    b.join(10)
    first.dispose()
    second.dispose()
    assert errors == []
    assert _rows(url) == ["first", "second"]


def test_a_forked_process_gets_its_own_writer_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    lock = store_session._sqlite_writer_lock(engine)
    assert store_session._sqlite_writer_lock(engine) is lock
    monkeypatch.setattr(os, "getpid", lambda: lock.pid + 1)
    assert store_session._sqlite_writer_lock(engine) is not lock
    engine.dispose()


def test_in_memory_databases_take_no_lock_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    engine = make_engine("sqlite://")
    with write_transaction(make_session_factory(engine)) as session:
        session.execute(text("SELECT 1"))
    engine.dispose()
    assert list(tmp_path.iterdir()) == []


def test_insert_rows_writes_the_row_at_once_with_the_python_defaults(database_url: str) -> None:
    engine = make_engine(database_url)
    upgrade(engine)
    factory = make_session_factory(engine)
    with write_transaction(factory) as session:
        org = Organisation(name="acme")
        insert_rows(session, [org])
        assert org not in session  # transient: nothing of it is flushed later
        assert org.id is not None
        assert org.created_at is not None
        row = session.execute(text("SELECT id, name FROM organisations WHERE name = 'acme'")).one()
        assert tuple(row) == (org.id, "acme")
    with read_session(factory) as session:
        assert session.get_one(Organisation, org.id).created_at == org.created_at
    engine.dispose()


def test_with_a_background_checkpointer_no_commit_copies_the_log_back(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    engine = make_engine(f"sqlite:///{path}", wal_autocheckpoint=WAL_BACKSTOP_PAGES)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE blob (id INTEGER PRIMARY KEY, data BLOB)"))
    checkpointer = WalCheckpointer(engine, interval_s=3600)
    checkpointer.checkpoint_now()
    size_before = path.stat().st_size
    factory = make_session_factory(engine)
    for _ in range(60):  # about 3000 pages: SQLite's default would have checkpointed 3 times
        with write_transaction(factory) as session:
            session.execute(text("INSERT INTO blob (data) VALUES (randomblob(200000))"))
    assert path.stat().st_size == size_before  # every page is still in the log only
    checkpointer.checkpoint_now()
    assert path.stat().st_size > size_before + 10_000_000
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM blob").scalar_one() == 60
    engine.dispose()


def test_a_server_on_a_sqlite_file_checkpoints_in_a_thread_it_stops_at_close(
    tmp_path: Path,
) -> None:
    services = build_services(
        platform_settings(f"sqlite:///{tmp_path / 'db.sqlite'}"), migrate=True, server=True
    )
    try:
        names = [t.name for t in threading.enumerate()]
        assert "nqba-wal-checkpoint" in names
        with services.engine.connect() as conn:
            pages = conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one()
        assert pages == WAL_BACKSTOP_PAGES
    finally:
        services.close()
    assert "nqba-wal-checkpoint" not in [t.name for t in threading.enumerate()]
