"""Writes of one transaction gathered, then sent to the database together.

The inline decisions' write (audit head, inner nodes, leaves, decision rows, idempotency
answers) is the path every decision takes. Sent one statement at a time through SQLAlchemy's
execution layer, it took seven round trips a batch on PostgreSQL, and most of the batch's CPU
in this process. A :class:`WriteBatch` collects the rows instead, and sends them on a cursor
of the driver with SQL built once per shape of batch. It raises the driver's errors as
SQLAlchemy does (``IntegrityError``, ``OperationalError``, ...) and invalidates a connection
that has died:

- on PostgreSQL, every write of the batch is one statement, each INSERT or UPDATE but the last
  a data-modifying ``WITH`` clause: one round trip, whatever the batch holds. The placeholders
  are PostgreSQL's own (``$1``), on psycopg's RawCursor, so psycopg does not parse the SQL
  (it caches its parse of a statement of up to 50 parameters only). Foreign keys between
  the rows are checked at the statement's end;
- on SQLite, one ``executemany`` per write, in the order they were added.

Values are converted by the columns' own SQLAlchemy types (their bind processors for the
dialect): JSON through the engine's serializer, timestamps to UTC, and so on.
"""

from __future__ import annotations

import copy
import functools
import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, Connection, Dialect, String, Table, inspect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeDecorator

from nqba.store.base import Base

MAX_PARAMETERS = 30_000
"""Parameters per PostgreSQL statement at most (the protocol allows 65,535): a larger batch is
sent as several statements."""


@dataclass(frozen=True)
class _Write:
    plan: _Plan
    keys: tuple[str, ...]  # the columns set (an INSERT's, or an UPDATE's SET)
    where: tuple[str, ...]  # an UPDATE's equality conditions; () for an INSERT
    rows: list[tuple[Any, ...]]  # processed values: keys, then where

    @property
    def shape(self) -> _Shape:
        return (self.plan, self.keys, self.where, len(self.rows))


_Shape = tuple["_Plan", tuple[str, ...], tuple[str, ...], int]


class WriteBatch:
    """INSERTs and UPDATEs for ``session``'s transaction, sent by :meth:`send`.

    Nothing is written before :meth:`send`; the session's own objects are not flushed by it.
    """

    def __init__(self, session: Session) -> None:
        self.connection: Connection = session.connection()
        self.dialect: Dialect = self.connection.dialect
        self.postgresql = self.dialect.name == "postgresql"
        self._writes: list[_Write] = []

    def insert(self, cls: type[Base], rows: Sequence[Mapping[str, Any]]) -> None:
        """INSERT ``rows`` (column key to value; every row the same keys) into ``cls``'s table."""
        if not rows:
            return
        plan = _plan(cls, self.dialect)
        keys = tuple(rows[0])
        values = [_processed(plan, keys, row) for row in rows]
        per_statement = max(1, MAX_PARAMETERS // len(keys))
        for start in range(0, len(values), per_statement):
            self._writes.append(_Write(plan, keys, (), values[start : start + per_statement]))

    def insert_objects(self, objs: Sequence[Base]) -> None:
        """INSERT the rows of the new objects ``objs`` (all of one class).

        An attribute left None whose column has a Python default gets it, on the object too;
        one with a SQL or server default is left to the database (and then must be left None
        on every object). The objects stay transient: later changes to them are not saved.
        """
        if not objs:
            return
        cls = type(objs[0])
        columns = _plan(cls, self.dialect).columns
        rows: list[dict[str, Any]] = []
        for obj in objs:
            row: dict[str, Any] = {}
            for attr, key, python_default, database_default in columns:
                value = getattr(obj, attr)
                if value is None:
                    if python_default is not None:
                        value = python_default()
                        setattr(obj, attr, value)
                    elif database_default:
                        continue
                row[key] = value
            rows.append(row)
        self.insert(cls, rows)

    def update(self, cls: type[Base], where: Mapping[str, Any], values: Mapping[str, Any]) -> None:
        """UPDATE ``cls``'s rows whose columns equal ``where`` to ``values``."""
        plan = _plan(cls, self.dialect)
        keys, conditions = tuple(values), tuple(where)
        row = _processed(plan, keys, values) + _processed(plan, conditions, where)
        self._writes.append(_Write(plan, keys, conditions, [row]))

    def fetch_one(self, sql: str, params: tuple[Any, ...]) -> tuple[Any, ...]:
        """Run ``sql`` now (``?`` placeholders, no ``?`` in its literals) on the driver's cursor,
        and return its first row: for a statement whose result the batch depends on."""
        row = self._execute(_placeholders(sql, self.postgresql), [params], fetch=True)
        assert row is not None
        return row

    def send(self) -> None:
        """Write everything added so far, in one statement on PostgreSQL (see the module)."""
        writes, self._writes = self._writes, []
        if not self.postgresql:
            for write in writes:
                rows = write.rows
                sql = _sqlite_sql(write.plan, write.keys, write.where)
                self._execute(sql, rows, many=len(rows) > 1)
            return
        groups: list[list[_Write]] = []
        count = MAX_PARAMETERS
        for write in writes:
            size = len(write.rows) * len(write.rows[0])
            if count + size > MAX_PARAMETERS:
                groups.append([])
                count = 0
            groups[-1].append(write)
            count += size
        for group in groups:
            sql = _postgresql_sql(tuple(w.shape for w in group))
            self._execute(sql, [tuple(v for w in group for row in w.rows for v in row)])

    def _execute(
        self, sql: str, rows: list[tuple[Any, ...]], many: bool = False, fetch: bool = False
    ) -> tuple[Any, ...] | None:
        """Run ``sql`` on a cursor of the connection's driver (psycopg's RawCursor: the SQL has
        PostgreSQL's own $n placeholders, which psycopg need not parse), raising the driver's
        errors as SQLAlchemy does (IntegrityError, OperationalError, ...)."""
        dbapi_connection = self.connection.connection.dbapi_connection
        assert dbapi_connection is not None
        cursor = _raw_cursor(dbapi_connection) if self.postgresql else dbapi_connection.cursor()
        try:
            if many:
                cursor.executemany(sql, rows)
            else:
                cursor.execute(sql, rows[0])
            if not fetch:
                return None
            row = cursor.fetchone()
        except self.dialect.loaded_dbapi.Error as e:
            invalidated = self.dialect.is_disconnect(e, dbapi_connection, cursor)
            if invalidated:
                self.connection.invalidate(e)
            raise DBAPIError.instance(
                sql,
                rows if many else rows[0],
                e,
                self.dialect.loaded_dbapi.Error,
                connection_invalidated=invalidated,
                dialect=self.dialect,
            ) from e
        finally:
            cursor.close()
        if row is None:
            raise LookupError(f"the statement returned no row: {sql}")
        return tuple(row)


def _raw_cursor(dbapi_connection: Any) -> Any:
    import psycopg  # only on PostgreSQL, which the psycopg driver serves

    return psycopg.RawCursor(dbapi_connection)


def _processed(plan: _Plan, keys: tuple[str, ...], row: Mapping[str, Any]) -> tuple[Any, ...]:
    """The row's values in ``keys``' order, converted by their columns' bind processors."""
    if not keys or len(row) != len(keys) or not all(key in row for key in keys):
        raise ValueError(f"rows of one write need the same columns: {sorted(row)} != {keys}")
    values = [row[key] for key in keys]
    for index, processor in _conversions(plan, keys):
        values[index] = processor(values[index])
    return tuple(values)


@functools.lru_cache(maxsize=1024)
def _conversions(
    plan: _Plan, keys: tuple[str, ...]
) -> tuple[tuple[int, Callable[[Any], Any]], ...]:
    """Where in a row of ``keys`` a value needs its column's bind processor, and which."""
    return tuple(
        (index, processor)
        for index, key in enumerate(keys)
        if (processor := plan.processors[key]) is not None
    )


_Column = tuple[str, str, Callable[[], Any] | None, bool]


@dataclass(frozen=True, eq=False)
class _Plan:
    table_sql: str
    names: dict[str, str]
    """Per column key: its quoted name."""
    columns: tuple[_Column, ...]
    """Per column: attribute, column key, Python default, and whether the database supplies a
    default (SQL expression or server default)."""
    processors: dict[str, Callable[[Any], Any] | None]
    casts: dict[str, str]
    """Per column key: the ``::TYPE`` a PostgreSQL placeholder carries ('' for text columns
    and on SQLite), so a NULL or JSON value has the column's type in a multi-row VALUES."""


@functools.lru_cache(maxsize=256)
def _plan(cls: type[Base], dialect: Dialect) -> _Plan:
    mapper = inspect(cls)
    table = mapper.local_table
    assert isinstance(table, Table)
    columns: list[_Column] = []
    for prop in mapper.column_attrs:
        column = prop.columns[0]
        default = column.default
        python_default: Callable[[], Any] | None = None
        if default is not None and default.is_callable:
            python_default = functools.partial(default.arg, None)  # the wrapper takes a context
        elif default is not None and default.is_scalar:
            python_default = functools.partial(copy.copy, default.arg)
        database_default = python_default is None and (
            default is not None or column.server_default is not None
        )
        columns.append((prop.key, column.key, python_default, database_default))
    processors = {
        c.key: c.type.dialect_impl(dialect).bind_processor(dialect) for c in table.columns
    }
    casts = {c.key: _cast(c, dialect) for c in table.columns}
    preparer = dialect.identifier_preparer
    names = {c.key: preparer.quote(c.name) for c in table.columns}
    return _Plan(preparer.format_table(table), names, tuple(columns), processors, casts)


def _cast(column: Column[Any], dialect: Dialect) -> str:
    if dialect.name != "postgresql":
        return ""
    base = column.type.impl_instance if isinstance(column.type, TypeDecorator) else column.type
    if isinstance(base, String):
        return ""  # text: left to the column's assignment cast, which refuses an over-long value
    return "::" + column.type.compile(dialect=dialect)


@functools.lru_cache(maxsize=64)
def _placeholders(sql: str, postgresql: bool) -> str:
    """``sql`` with PostgreSQL's numbered placeholders for its ``?`` ones, on PostgreSQL."""
    if not postgresql:
        return sql
    first, *rest = sql.split("?")
    return first + "".join(f"${n}{part}" for n, part in enumerate(rest, start=1))


@functools.lru_cache(maxsize=256)
def _sqlite_sql(plan: _Plan, keys: tuple[str, ...], where: tuple[str, ...]) -> str:
    if where:
        sets = ", ".join(f"{plan.names[k]} = ?" for k in keys)
        conditions = " AND ".join(f"{plan.names[k]} = ?" for k in where)
        return f"UPDATE {plan.table_sql} SET {sets} WHERE {conditions}"
    names = ", ".join(plan.names[k] for k in keys)
    return f"INSERT INTO {plan.table_sql} ({names}) VALUES ({', '.join('?' for _ in keys)})"


@functools.lru_cache(maxsize=1024)
def _postgresql_sql(shapes: tuple[_Shape, ...]) -> str:
    """One statement for writes of these shapes: every write but the last a WITH clause."""
    number = itertools.count(1)
    statements = []
    for plan, keys, where, rows in shapes:
        if where:  # the parameters are the SET values, then the conditions'
            sets = ", ".join(f"{plan.names[k]} = ${next(number)}{plan.casts[k]}" for k in keys)
            conditions = " AND ".join(
                f"{plan.names[k]} = ${next(number)}{plan.casts[k]}" for k in where
            )
            statements.append(f"UPDATE {plan.table_sql} SET {sets} WHERE {conditions}")
        else:
            names = ", ".join(plan.names[k] for k in keys)
            values = ", ".join(
                "(" + ", ".join(f"${next(number)}{plan.casts[k]}" for k in keys) + ")"
                for _ in range(rows)
            )
            statements.append(f"INSERT INTO {plan.table_sql} ({names}) VALUES {values}")
    *first, last = statements
    if not first:
        return last
    return "WITH " + ", ".join(f"w{i} AS ({sql})" for i, sql in enumerate(first)) + " " + last
