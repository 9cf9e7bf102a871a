"""Statements of the hot paths (claims, receipts, the outbox), compiled once per dialect and
run on the driver's cursor: for the small batches these run on, SQLAlchemy's work for each
execution (rendering its IN lists again, processing parameters and rows) costs more than the
database's.

A list parameter (an expanding bindparam: `column.in_(bindparam(..., expanding=True))`) goes
as one value, so that each statement is one prepared statement whatever the list's length:
`IN (SELECT value FROM json_each(?))` on SQLite, `= ANY(%(name)s)` on PostgreSQL. Its items
must be numbers or strings. Rows come back as named tuples, read like SQLAlchemy's.
"""

import json
import re
from collections import namedtuple
from enum import Enum

from sqlalchemy import Connection

_LIST = re.compile(r"(NOT )?IN \(__\[POSTCOMPILE_(\w+)\]\)")


class Prepared:
    """`Prepared(statement)(conn, params)`: the statement's rows (a list, empty for a statement
    without any), in `conn`'s transaction."""

    __slots__ = ("statement", "_by_dialect")

    def __init__(self, statement):
        self.statement = statement
        self._by_dialect: dict[str, _Compiled] = {}

    def __call__(self, conn: Connection, params: dict | None = None) -> list:
        compiled, cursor = self._open(conn)
        try:
            cursor.execute(compiled.sql, compiled.arguments(params or {}))
            return compiled.rows(cursor)
        finally:
            cursor.close()

    def many(self, conn: Connection, params: list[dict]) -> None:
        """The statement once for each set of parameters (no rows)."""
        compiled, cursor = self._open(conn)
        try:
            cursor.executemany(compiled.sql, [compiled.arguments(p) for p in params])
        finally:
            cursor.close()

    def plan(self, conn: Connection, params: dict) -> str:
        """SQLite's plan for it with these parameters, on one line."""
        compiled, cursor = self._open(conn)
        try:
            rows = cursor.execute("EXPLAIN QUERY PLAN " + compiled.sql, compiled.arguments(params))
            return "; ".join(row[-1] for row in rows)
        finally:
            cursor.close()

    def _open(self, conn: Connection) -> tuple["_Compiled", object]:
        compiled = self._by_dialect.get(conn.dialect.name)
        if compiled is None:
            compiled = self._by_dialect[conn.dialect.name] = _Compiled(self.statement, conn.dialect)
        if not conn.in_transaction():  # as SQLAlchemy's own execute would begin one
            conn.begin()
        return compiled, conn.connection.dbapi_connection.cursor()


class _Compiled:
    __slots__ = ("sql", "_names", "_defaults", "_lists", "_postgresql", "_row")

    def __init__(self, statement, dialect):
        compiled = statement.compile(dialect=dialect)
        self._postgresql = dialect.name == "postgresql"
        self._lists: set[str] = set()
        self.sql = _LIST.sub(self._list, compiled.string)
        # The statement's own values (literals, `in_` of a constant list), as the driver takes
        # them; on SQLite (qmark) the order of the marks.
        self._defaults = {k: _plain(v) for k, v in compiled.params.items() if v is not None}
        self._names = None if self._postgresql else list(compiled.positiontup)
        self._row = None  # the named tuple of its rows, made at the first result

    def _list(self, match: re.Match) -> str:
        negated, name = match.groups()
        self._lists.add(name)
        if self._postgresql:
            return f"{'<> ALL' if negated else '= ANY'}(%({name})s)"
        return f"{negated or ''}IN (SELECT value FROM json_each(?))"

    def arguments(self, params: dict):
        values = {**self._defaults, **params} if self._defaults else params
        if self._postgresql:
            return {k: list(v) if k in self._lists else v for k, v in values.items()}
        return [json.dumps(list(values[k])) if k in self._lists else values[k] for k in self._names]

    def rows(self, cursor) -> list:
        if cursor.description is None:
            return []
        rows = cursor.fetchall()
        if self._row is None:
            names = [column[0] for column in cursor.description]
            self._row = namedtuple("Row", names, rename=True)
        make = self._row._make
        return [make(row) for row in rows]


def _plain(value):
    """A statement's own value as the driver takes it: an Enum by its value."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
