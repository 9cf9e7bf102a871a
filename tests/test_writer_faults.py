"""The group-commit writer when the store fails: a lost connection is replaced after a short
backoff (jobs meanwhile fail at once, nothing waits), a statement that waits too long fails in
bounded time on a connection that is kept, and a full SQLite disk refuses submits with
ESME_RMSGQFUL until there is room again, with every acknowledged message stored.

The reactor is test_writer's fake; the writer's backoff runs on a fake monotonic clock.
"""

import time

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from stores import PG_URL, sqlite_only
from test_accept import params
from test_writer import NOW, Harness, row
from test_writer import account_id as account_id  # a fixture
from twisted.internet.task import Clock

from smsc.accept import Acceptor
from smsc.protocol.constants import Status
from smsc.store import db
from smsc.store.accounts import Account
from smsc.store.faults import StoreUnavailable, transient
from smsc.store.writer import BACKOFF, Writer

pg_only = pytest.mark.skipif(not PG_URL, reason="about PostgreSQL connections")


class Monotonic:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Flaky:
    """An engine whose new connections are refused while `away` (a stopped PostgreSQL)."""

    def __init__(self, engine):
        self.engine = engine
        self.dialect = engine.dialect
        self.away = False
        self.connects = 0

    def begin(self):
        return self.engine.begin()

    def connect(self):
        self.connects += 1
        if self.away:
            raise OperationalError("connect", {}, ConnectionRefusedError("connection refused"))
        return self.engine.connect()


def harness(engine, monotonic) -> Harness:
    h = Harness(engine)
    h.writer = Writer(engine, h.reactor, after_batch=h._hook, monotonic=monotonic)
    return h


@pytest.fixture
def clock():
    return Monotonic()


@pytest.fixture
def stopping():
    started = []
    yield started.append
    for h in started:
        if h.writer._thread.is_alive():
            h.stop()


def insert_one(h, account_id, body=b"x"):
    """One insert in a batch of its own; what its callback got."""
    got = h.insert([row(account_id, body)])
    h.run_batch()
    return got[0]


def call_one(h, fn):
    got = h.call(fn)
    h.run_batch()
    return got[0]


def backend(conn):
    """Which server connection this is."""
    if conn.dialect.name == "postgresql":
        return conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
    return id(conn.connection.dbapi_connection)


def cut(engine, h, pid) -> None:
    """The writer's connection dies under it: its server process ends (PostgreSQL), or the
    driver's connection is closed behind its back (SQLite)."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:  # waits (up to 5 s) for the backend to be gone
            assert conn.execute(text("SELECT pg_terminate_backend(:p, 5000)"), {"p": pid}).scalar()
    else:
        h.writer._conn.connection.dbapi_connection.close()


def test_a_lost_connection_is_replaced_after_a_backoff(engine, account_id, clock, stopping):
    h = harness(engine, clock)
    stopping(h)
    h.writer.start()
    assert insert_one(h, account_id, b"before") == [1]
    first = call_one(h, backend)

    cut(engine, h, first)
    failed = insert_one(h, account_id, b"lost")
    assert isinstance(failed, Exception)  # that batch is refused whole: nothing stored
    # Within the backoff no connection is tried: the jobs fail at once, none waits.
    waiting = insert_one(h, account_id, b"waiting")
    assert isinstance(waiting, StoreUnavailable) and transient(waiting)

    clock.now += BACKOFF[0]
    assert insert_one(h, account_id, b"after") == [2]
    assert call_one(h, backend) != first  # a new connection
    assert [(r.id, r.body) for r in h.stored()] == [(1, b"before"), (2, b"after")]


def test_while_the_store_is_away_connections_are_tried_at_a_growing_interval(
    engine, account_id, clock, stopping
):
    flaky = Flaky(engine)
    h = harness(flaky, clock)
    stopping(h)
    h.writer.start()
    flaky.away = True
    refused = insert_one(h, account_id)
    assert isinstance(refused, StoreUnavailable) and "connection refused" in str(refused)
    assert flaky.connects == 1
    # The waits between attempts: BACKOFF[0], doubled each time up to BACKOFF[1].
    waits = []
    for _ in range(6):
        waited = 0.0
        while flaky.connects == len(waits) + 1:
            clock.now += 0.125
            waited += 0.125
            got = insert_one(h, account_id)
            assert isinstance(got, Exception) and transient(got)
        waits.append(waited)
    assert waits == [0.25, 0.5, 1.0, 2.0, 2.0, 2.0]
    assert BACKOFF == (0.25, 2.0)

    flaky.away = False
    clock.now += BACKOFF[1]
    assert insert_one(h, account_id, b"back") == [1]  # ids: nothing was given before
    assert insert_one(h, account_id, b"again") == [2]
    assert flaky.connects == 8  # one connection since it came back
    assert [r.body for r in h.stored()] == [b"back", b"again"]


def test_a_writer_without_a_store_still_stops(engine, account_id, clock, stopping):
    flaky = Flaky(engine)
    flaky.away = True
    h = harness(flaky, clock)
    h.writer.start()
    got = [h.insert([row(account_id)]) for _ in range(3)]
    h.stop()  # the queued jobs fail, the thread ends
    h.writer._thread.join(5)
    assert not h.writer._thread.is_alive()
    assert all(isinstance(g[0], Exception) for g in got)


@pg_only
def test_a_statement_that_waits_too_long_fails_and_the_connection_is_kept(
    engine, db_url, account_id, clock, stopping
):
    patient = db.make_engine(db_url, statement_timeout=0.5)
    h = harness(patient, clock)
    stopping(h)
    h.writer.start()
    before = call_one(h, backend)
    with engine.connect() as locker:
        locker.exec_driver_sql("LOCK TABLE messages IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        blocked = insert_one(h, account_id, b"blocked")
        waited = time.monotonic() - started
        locker.rollback()
    assert isinstance(blocked, OperationalError) and transient(blocked)
    assert "statement timeout" in str(blocked.orig)
    assert 0.4 < waited < 5
    assert insert_one(h, account_id, b"free") == [1]  # at once: no backoff, same connection
    assert call_one(h, backend) == before
    h.stop()
    patient.dispose()


class WriterStore:
    """What the Acceptor needs of the store: inserts go to the writer."""

    def __init__(self, writer):
        self.writer = writer

    def insert(self, rows, callback, hashes=None, parts=1, multi=True):
        self.writer.insert(rows, callback, hashes, parts)


@sqlite_only
def test_a_full_disk_refuses_submits_until_there_is_room(engine, account_id, clock, stopping):
    h = harness(engine, clock)
    stopping(h)
    h.writer.start()
    pages = call_one(h, lambda conn: conn.exec_driver_sql("PRAGMA page_count").scalar())
    # On the writer's own connection (the limit is a connection's): not one page more.
    call_one(h, lambda conn: conn.exec_driver_sql(f"PRAGMA max_page_count = {pages}").scalar())
    reactor = Clock()
    reactor.advance(NOW)
    acceptor = Acceptor(WriterStore(h.writer), reactor)
    who = Account(account_id, "acme", "-", 1, 0, True, NOW)
    acked: dict[int, bytes] = {}
    statuses = []

    def submit(body: bytes) -> int:
        calls = []
        p = params(short_message=body)
        acceptor.submit(who, p, {}, [(1, 1, "33612345678")], lambda *a: calls.append(a))
        h.run_batch()
        ((status, ids, _),) = calls
        if status == Status.ROK:
            acked[ids[0]] = body
        statuses.append(status)
        return status

    for i in range(200):  # the pages free inside the file fill up first
        if submit(b"%03d" % i + b"x" * 150) != Status.ROK:
            break
    assert statuses[-1] == Status.RMSGQFUL  # full: try again later, not a system error
    assert set(statuses) == {Status.ROK, Status.RMSGQFUL} or statuses == [Status.RMSGQFUL]
    assert submit(b"still full") == Status.RMSGQFUL
    assert h.writer._conn is not None  # a full disk is not a lost store: no reconnection

    call_one(h, lambda conn: conn.exec_driver_sql("PRAGMA max_page_count = 1073741823").scalar())
    for i in range(20):
        assert submit(b"room again %d" % i) == Status.ROK
    h.stop()
    stored = {r.id: r.body for r in h.stored()}
    assert stored == acked  # everything acknowledged, and nothing refused
