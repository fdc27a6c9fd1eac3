"""Group commit on the event loop: writes queued together share one transaction and one call of
the batch function; a failing batch is rerun write by write, so an error stays its caller's."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from sqlalchemy import Engine, event, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from nqba.store import group
from nqba.store.group import GroupWriter, group_writer
from nqba.store.session import (
    make_engine,
    make_session_factory,
    read_session,
    write_transaction,
)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    key = "INTEGER PRIMARY KEY" if engine.dialect.name == "sqlite" else "SERIAL PRIMARY KEY"
    with engine.begin() as conn:
        conn.execute(text(f"CREATE TABLE t (id {key}, who TEXT UNIQUE)"))
    yield engine
    engine.dispose()


def _commits(engine: Engine) -> list[int]:
    commits: list[int] = []
    event.listen(engine, "commit", lambda conn: commits.append(1))
    return commits


def _rows(factory: sessionmaker[Session]) -> list[str]:
    with read_session(factory) as session:
        return [r[0] for r in session.execute(text("SELECT who FROM t ORDER BY id"))]


calls: list[int] = []


def insert_all(session: Session, names: Sequence[str]) -> list[str]:
    """The batch function of these tests: one INSERT for every name of the batch."""
    calls.append(len(names))
    session.execute(text("INSERT INTO t (who) VALUES (:w)"), [{"w": n} for n in names])
    return [f"wrote {n}" for n in names]


async def _gather(writer: GroupWriter[str, str], names: Sequence[str]) -> list[str | BaseException]:
    return await asyncio.gather(*(writer.write(n) for n in names), return_exceptions=True)


def test_writes_queued_together_commit_in_one_batch_and_each_gets_its_result(
    engine: Engine,
) -> None:
    factory = make_session_factory(engine)
    commits = _commits(engine)
    calls.clear()

    async def main() -> list[str | BaseException]:
        return await _gather(group_writer(factory, insert_all), [f"w{i}" for i in range(9)])

    assert asyncio.run(main()) == [f"wrote w{i}" for i in range(9)]
    assert calls == [9]
    assert len(commits) == 1
    assert _rows(factory) == [f"w{i}" for i in range(9)]


def test_a_failing_write_is_rerun_alone_and_raises_only_in_its_own_caller(
    engine: Engine,
) -> None:
    factory = make_session_factory(engine)
    calls.clear()

    async def main() -> list[str | BaseException]:
        return await _gather(group_writer(factory, insert_all), ["a", "dup", "dup", "b"])

    results = asyncio.run(main())
    assert results[0] == "wrote a"
    assert results[3] == "wrote b"
    failed = [i for i, r in enumerate(results) if isinstance(r, BaseException)]
    assert failed == [2]  # the batch failed as a whole; alone, the first "dup" goes in
    assert isinstance(results[2], IntegrityError)
    assert calls == [4, 1, 1, 1, 1]
    assert sorted(_rows(factory)) == ["a", "b", "dup"]


def test_a_lone_failing_write_raises_and_leaves_nothing_behind(engine: Engine) -> None:
    factory = make_session_factory(engine)

    def two_rows(session: Session, names: Sequence[str]) -> list[str]:
        session.execute(text("INSERT INTO t (who) VALUES ('kept?')"))
        session.execute(text("INSERT INTO t (who) VALUES ('dup')"))
        return ["never"]

    async def main() -> None:
        assert await group_writer(factory, insert_all).write("dup") == "wrote dup"
        with pytest.raises(IntegrityError):
            await group_writer(factory, two_rows).write("x")
        assert await group_writer(factory, insert_all).write("after") == "wrote after"

    asyncio.run(main())
    assert _rows(factory) == ["dup", "after"]


def test_a_commit_refused_for_one_write_fails_that_write_only(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE parent (id INTEGER PRIMARY KEY)"))
        conn.execute(
            text(
                "CREATE TABLE t (id INTEGER PRIMARY KEY, who TEXT, "
                "parent INTEGER REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED)"
            )
        )
    factory = make_session_factory(engine)

    def with_parent(session: Session, names: Sequence[str]) -> list[str]:
        # a deferred foreign key: an orphan is refused only at COMMIT
        for n in names:
            parent = 99 if n == "orphan" else None
            session.execute(
                text("INSERT INTO t (who, parent) VALUES (:w, :p)"), {"w": n, "p": parent}
            )
        return list(names)

    async def main() -> list[str | BaseException]:
        writer = group_writer(factory, with_parent)
        return await asyncio.gather(
            *(writer.write(n) for n in ["ok", "orphan"]), return_exceptions=True
        )

    results = asyncio.run(main())
    assert results[0] == "ok"
    assert isinstance(results[1], IntegrityError)
    assert _rows(factory) == ["ok"]
    engine.dispose()


def test_many_tasks_write_through_the_shared_writer_in_fewer_batches(engine: Engine) -> None:
    factory = make_session_factory(engine)
    commits = _commits(engine)

    async def client(k: int) -> None:
        for i in range(25):
            assert await group_writer(factory, insert_all).write(f"{k}-{i}") == f"wrote {k}-{i}"
            await asyncio.sleep(0)

    async def main() -> None:
        await asyncio.gather(*(client(k) for k in range(8)))

    asyncio.run(main())
    assert len(_rows(factory)) == 200
    assert len(commits) < 200


def test_a_batch_holds_at_most_max_batch_writes(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(group, "MAX_BATCH", 4)
    factory = make_session_factory(engine)
    calls.clear()

    async def main() -> list[str | BaseException]:
        return await _gather(group_writer(factory, insert_all), [f"w{i}" for i in range(10)])

    assert asyncio.run(main()) == [f"wrote w{i}" for i in range(10)]
    assert calls == [4, 4, 2]


def test_a_sqlite_writer_busy_elsewhere_is_waited_for_off_the_loop(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, who TEXT UNIQUE)"))
    factory = make_session_factory(engine)
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:  # another writer holds the database's writer lock for a while
        with write_transaction(factory) as session:
            session.execute(text("INSERT INTO t (who) VALUES ('other')"))
            holding.set()
            assert release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    assert holding.wait(10)

    async def main() -> tuple[str, int]:
        writer = group_writer(factory, insert_all)
        pending = asyncio.ensure_future(writer.write("mine"))
        ticks = 0
        for _ in range(20):  # the loop keeps running while the write waits for the lock
            await asyncio.sleep(0.01)
            ticks += 1
        assert not pending.done()
        release.set()
        return await pending, ticks

    start = time.perf_counter()
    result, ticks = asyncio.run(main())
    holder.join(10)
    assert result == "wrote mine"
    assert ticks == 20
    assert time.perf_counter() - start < 10
    assert _rows(factory) == ["other", "mine"]
    engine.dispose()


async def _held_first_then(
    writer: GroupWriter[str, str],
    started: threading.Event,
    go_on: threading.Event,
    names: Sequence[str],
) -> list[str | BaseException]:
    """Write "first" in a thread batch that waits for ``go_on`` once ``started``, queue
    ``names`` meanwhile, then let it go on; every write's result, "first"'s first."""
    writer.on_loop_first = False  # as on PostgreSQL: every batch runs in a thread
    first = asyncio.ensure_future(writer.write("first"))
    while not started.is_set():
        await asyncio.sleep(0.005)
    rest = [asyncio.ensure_future(writer.write(n)) for n in names]
    await asyncio.sleep(0.05)
    go_on.set()
    return await asyncio.gather(first, *rest, return_exceptions=True)


def test_writes_queued_while_a_batch_runs_in_a_thread_make_the_next_batch(
    engine: Engine,
) -> None:
    factory = make_session_factory(engine)
    calls.clear()
    started, go_on = threading.Event(), threading.Event()

    def slow_first(session: Session, names: Sequence[str]) -> list[str]:
        if "first" in names:
            started.set()
            assert go_on.wait(10)
        return insert_all(session, names)

    async def main() -> list[str | BaseException]:
        return await _held_first_then(
            group_writer(factory, slow_first), started, go_on, [f"w{i}" for i in range(5)]
        )

    results = asyncio.run(main())
    assert results == ["wrote first", *(f"wrote w{i}" for i in range(5))]
    assert calls == [1, 5]


def test_writes_queued_while_a_joining_batch_waits_join_it_once_it_holds_the_lock(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A joining batch function takes the writes queued while it waited for its lock into
    its own transaction (up to MAX_BATCH); the rest make the next batch."""
    monkeypatch.setattr(group, "MAX_BATCH", 4)
    factory = make_session_factory(engine)
    commits = _commits(engine)
    calls.clear()
    joined: list[list[str]] = []
    started, go_on = threading.Event(), threading.Event()

    def waits_then_joins(
        session: Session, names: Sequence[str], join: group.Joiner[str]
    ) -> list[str]:
        if "first" in names:  # waiting for the lock another process holds
            started.set()
            assert go_on.wait(10)
        late = join()
        joined.append(late)
        return insert_all(session, [*names, *late])

    async def main() -> list[str | BaseException]:
        return await _held_first_then(
            group_writer(factory, waits_then_joins, joins=True),
            started,
            go_on,
            [f"w{i}" for i in range(5)],
        )

    results = asyncio.run(main())
    assert results == ["wrote first", *(f"wrote w{i}" for i in range(5))]
    assert joined == [["w0", "w1", "w2"], []]  # 1 + 3 = MAX_BATCH; w3, w4 the next batch
    assert calls == [4, 2]
    assert len(commits) == 2
    assert _rows(factory) == ["first", *(f"w{i}" for i in range(5))]


def test_a_failing_joined_batch_is_rerun_write_by_write_joined_writes_included(
    engine: Engine,
) -> None:
    factory = make_session_factory(engine)
    started, go_on = threading.Event(), threading.Event()
    joined: list[list[str]] = []

    def waits_then_joins(
        session: Session, names: Sequence[str], join: group.Joiner[str]
    ) -> list[str]:
        if "first" in names:
            started.set()
            assert go_on.wait(10)
        late = join()
        if late:
            joined.append(late)
        return insert_all(session, [*names, *late])

    async def main() -> list[str | BaseException]:
        return await _held_first_then(
            group_writer(factory, waits_then_joins, joins=True), started, go_on, ["a", "first", "b"]
        )

    results = asyncio.run(main())
    assert joined == [["a", "first", "b"]]  # then each alone: nothing left to join
    assert results[0] == "wrote first"
    assert results[1] == "wrote a"
    assert isinstance(results[2], IntegrityError)  # the duplicate, joined, fails alone
    assert results[3] == "wrote b"
    assert _rows(factory) == ["first", "a", "b"]
