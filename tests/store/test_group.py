"""Group commit: queued writes share a transaction, each in a savepoint, each answered alone
(a write that finds no other queued runs in the transaction alone)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, event, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from nqba.store.group import GroupWriter, write_in_group
from nqba.store.session import make_engine, make_session_factory, read_session


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


def _insert(who: str) -> Callable[[Session], str]:
    def work(session: Session) -> str:
        session.execute(text("INSERT INTO t (who) VALUES (:w)"), {"w": who})
        return f"wrote {who}"

    return work


def _queued_behind_a_held_batch(
    factory: sessionmaker[Session], writes: list[Callable[[Session], str]]
) -> tuple[list[str | None], list[BaseException | None]]:
    """Run ``writes`` from threads while a first write holds the writer, so they queue and
    are committed as one batch after it; each thread's result or error, in order."""
    writer = GroupWriter(factory)
    holding, release = threading.Event(), threading.Event()

    def first(session: Session) -> str:
        holding.set()
        assert release.wait(10)
        session.execute(text("INSERT INTO t (who) VALUES ('first')"))
        return "first"

    results: list[str | None] = [None] * len(writes)
    errors: list[BaseException | None] = [None] * len(writes)

    def call(i: int) -> None:
        try:
            results[i] = writer.write(writes[i])
        except BaseException as e:
            errors[i] = e

    leader = threading.Thread(target=writer.write, args=(first,))
    leader.start()
    assert holding.wait(10)
    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(writes))]
    for t in threads:
        t.start()
    while True:  # every write is queued behind the held batch
        with writer._cond:
            if len(writer._pending) == len(writes):
                break
    release.set()
    leader.join(10)
    for t in threads:
        t.join(10)
    return results, errors


def test_queued_writes_commit_together_and_each_caller_gets_its_result(engine: Engine) -> None:
    factory = make_session_factory(engine)
    commits = _commits(engine)
    results, errors = _queued_behind_a_held_batch(factory, [_insert(f"w{i}") for i in range(8)])
    assert errors == [None] * 8
    assert results == [f"wrote w{i}" for i in range(8)]
    assert len(commits) == 2  # the held write alone, then the eight queued behind it
    assert sorted(_rows(factory)) == sorted(["first", *(f"w{i}" for i in range(8))])


def test_a_failing_write_is_rolled_back_alone_and_raises_in_its_own_caller(
    engine: Engine,
) -> None:
    factory = make_session_factory(engine)
    writes = [_insert("a"), _insert("dup"), _insert("dup"), _insert("b")]
    results, errors = _queued_behind_a_held_batch(factory, writes)
    assert results[0] == "wrote a"
    assert results[3] == "wrote b"
    failed = [i for i, e in enumerate(errors) if e is not None]
    assert len(failed) == 1
    assert failed[0] in (1, 2)
    assert isinstance(errors[failed[0]], IntegrityError)
    assert sorted(_rows(factory)) == ["a", "b", "dup", "first"]


def test_a_lone_failing_write_raises_and_leaves_nothing_behind(engine: Engine) -> None:
    factory = make_session_factory(engine)
    writer = GroupWriter(factory)
    assert writer.write(_insert("dup")) == "wrote dup"

    def two_rows(session: Session) -> str:  # the first row must go with the failing second
        session.execute(text("INSERT INTO t (who) VALUES ('kept?')"))
        session.execute(text("INSERT INTO t (who) VALUES ('dup')"))
        return "never"

    with pytest.raises(IntegrityError):
        writer.write(two_rows)
    assert writer.write(_insert("after")) == "wrote after"
    assert _rows(factory) == ["dup", "after"]


def test_a_failed_commit_fails_every_write_of_its_batch(tmp_path: Path) -> None:
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

    def orphan(session: Session) -> str:  # a deferred foreign key: refused only at COMMIT
        session.execute(text("INSERT INTO t (who, parent) VALUES ('orphan', 99)"))
        return "orphan"

    results, errors = _queued_behind_a_held_batch(factory, [_insert("ok"), orphan])
    assert all(isinstance(e, IntegrityError) for e in errors)
    assert results == [None, None]
    assert _rows(factory) == ["first"]
    engine.dispose()


def test_many_threads_write_through_the_shared_writer(engine: Engine) -> None:
    factory = make_session_factory(engine)
    errors: list[BaseException] = []

    def worker(k: int) -> None:
        try:
            for i in range(25):
                assert write_in_group(factory, _insert(f"{k}-{i}")) == f"wrote {k}-{i}"
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert len(_rows(factory)) == 200
