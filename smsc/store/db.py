"""Engines, transactions and schema migrations (Alembic, run from code: no alembic.ini)."""

import functools
from contextlib import contextmanager
from itertools import chain
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event

MIGRATIONS = Path(__file__).with_name("migrations")
NODE = "smsc.node"  # the writer connection's node id, in Connection.info: claims record it


class SchemaBehind(Exception):
    """The database's schema is not the code's: older (run `smsc db upgrade`), or written by a
    newer smsc (a revision this code does not know; upgrading cannot help)."""


def chunks(values: list, size: int = 400):
    """Lists of at most `size` values: an IN list stays well under any driver's limit."""
    for i in range(0, len(values), size):
        yield values[i : i + size]


def insert_many(cursor, postgresql: bool, table: str, columns: tuple, rows: list[tuple]) -> None:
    """Insert rows on a driver cursor: the hot path's way (Core insert() with dicts halves the
    rate). On SQLite, multi-row INSERTs of a few fixed sizes (each a cached prepared statement)
    within its oldest limit of 999 variables: executemany would release and take back the GIL
    for every row, and the reactor thread wants it meanwhile."""
    if postgresql:
        cursor.executemany(_insert(table, columns, 1, "%s"), rows)
        return
    i, total = 0, len(rows)
    for size in (999 // len(columns), 8, 1):
        while total - i >= size:
            statement = _insert(table, columns, size, "?")
            cursor.execute(statement, list(chain.from_iterable(rows[i : i + size])))
            i += size


def insert_rows(conn: Connection, table: str, columns: tuple, rows: list[tuple]) -> None:
    """`insert_many` on the driver cursor of a SQLAlchemy connection, in its transaction."""
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        insert_many(cursor, conn.dialect.name == "postgresql", table, columns, rows)
    finally:
        cursor.close()


@functools.cache
def _insert(table: str, columns: tuple, n: int, mark: str) -> str:
    row = "(" + ", ".join([mark] * len(columns)) + ")"
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES " + ", ".join([row] * n)


# PostgreSQL connections give up rather than hang when the store stops answering (README,
# "Faults and shutdown"): opening one takes at most CONNECT_TIMEOUT seconds, and TCP notices a
# server gone without a word (host down, network cut) in about TCP_TIMEOUTS' 10 to 15 s: data
# unacknowledged for tcp_user_timeout ms, or an idle connection's keepalives unanswered.
CONNECT_TIMEOUT = 5
TCP_TIMEOUTS = {
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
    "tcp_user_timeout": 10_000,
}


def make_engine(
    url: str, statement_timeout: float = 0.0, connect_timeout: int = CONNECT_TIMEOUT
) -> Engine:
    """An engine on the store. `statement_timeout` (seconds, PostgreSQL, 0: none): a statement
    that runs longer (a lock that is not released, a server that crawls) fails. Errors never
    carry the statements' parameters (numbers, texts) into their text."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False}, hide_parameters=True)
        _tune_sqlite(engine)
    else:
        engine = create_engine(url, pool_pre_ping=True, hide_parameters=True)
        _tune_postgresql(engine, statement_timeout, connect_timeout)
    return engine


def _tune_postgresql(engine: Engine, statement_timeout: float, connect_timeout: int) -> None:
    @event.listens_for(engine, "do_connect")
    def connect(_dialect, _record, _args, params):
        # What the URL says wins (it may set any of these).
        params.setdefault("connect_timeout", connect_timeout)
        for key, value in TCP_TIMEOUTS.items():
            params.setdefault(key, value)
        given = params.get("options") or ""
        if statement_timeout and "statement_timeout" not in given:
            option = f"-c statement_timeout={round(statement_timeout * 1000)}"
            params["options"] = f"{given} {option}" if given else option


def _tune_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def connect(dbapi_connection, _record):
        # We emit BEGIN ourselves: pysqlite's implicit transactions break SAVEPOINT.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # WAL: readers never wait for the writer. FULL: a commit survives power loss too.
        # Checkpoints are run by the writer between batches, off the commit path.
        for pragma in (
            "journal_mode=WAL",
            "synchronous=FULL",
            "foreign_keys=ON",
            "busy_timeout=10000",
            "wal_autocheckpoint=0",
        ):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def begin(connection):
        # A writing transaction takes the write lock up front, so that a read-then-write
        # never fails with SQLITE_BUSY when another process wrote in between.
        mode = connection.get_execution_options().get("sqlite_begin", "")
        connection.exec_driver_sql(f"BEGIN {mode}")


@contextmanager
def writing(engine: Engine):
    """A connection in a transaction that will write: committed on success, rolled back on error."""
    with engine.connect().execution_options(sqlite_begin="IMMEDIATE") as conn, conn.begin():
        yield conn


def _alembic(conn: Connection) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = conn
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    with writing(engine) as conn:
        cfg = _alembic(conn)
        _refuse_unknown(MigrationContext.configure(conn).get_current_revision(), cfg)
        command.upgrade(cfg, revision)


def revisions(engine: Engine) -> tuple[str | None, str]:
    """(the database's revision, the code's newest)."""
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
        head = ScriptDirectory.from_config(_alembic(conn)).get_current_head()
    return current, head


def _refuse_unknown(current: str | None, cfg: AlembicConfig) -> None:
    script = ScriptDirectory.from_config(cfg)
    if current is not None and current not in {s.revision for s in script.walk_revisions()}:
        raise SchemaBehind(
            f"the database schema is at {current}, which this smsc does not know (it needs "
            f"{script.get_current_head()}): the store was upgraded by a newer smsc"
        )


def check_schema(engine: Engine) -> None:
    current, head = revisions(engine)
    if current != head:
        with engine.connect() as conn:
            _refuse_unknown(current, _alembic(conn))
        raise SchemaBehind(
            f"the database schema is at {current or 'nothing'}, this smsc needs {head}: "
            "run `smsc db upgrade`"
        )
