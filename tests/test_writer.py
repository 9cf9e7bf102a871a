"""The group-commit writer: batches, ids, order, savepoints, failures, stop.

The reactor is a fake whose `callFromThread` queues the calls; the test runs them. Jobs queued
before `start()` are all waiting when the thread first wakes, so they make one batch.
"""

import queue

import pytest
from sqlalchemy import func, insert, select, update
from stores import PG_URL
from test_queue import add_account

from smsc.protocol.constants import Status
from smsc.store import messages, optouts, schema
from smsc.store.db import writing
from smsc.store.messages import COLUMNS, State
from smsc.store.writer import Writer

NOW = 1_767_225_600.0
OUT = Status.ROPTEDOUT
TIMEOUT = 10  # seconds: only reached if the writer thread is stuck


class FakeReactor:
    def __init__(self):
        self.calls: queue.SimpleQueue = queue.SimpleQueue()

    def callFromThread(self, fn, *args, **kw):
        self.calls.put((fn, args, kw))

    def run_one(self):
        fn, args, kw = self.calls.get(timeout=TIMEOUT)
        fn(*args, **kw)


@pytest.fixture
def account_id(engine):
    with writing(engine) as conn:
        result = conn.execute(
            insert(schema.accounts).values(
                system_id="acme",
                password_hash="-",
                max_binds=1,
                tps=0,
                enabled=True,
                created_at=NOW,
            )
        )
        return result.inserted_primary_key[0]


class Harness:
    def __init__(self, engine):
        self.engine = engine
        self.reactor = FakeReactor()
        self.hooks = 0
        self.writer = Writer(engine, self.reactor, after_batch=self._hook)

    def _hook(self):
        self.hooks += 1

    def run_batch(self):
        """Run the one hop back to the reactor of the next batch."""
        self.reactor.run_one()

    def stop(self):
        stopped = []
        self.writer.stop().addCallback(stopped.append)
        while not stopped:
            self.reactor.run_one()

    def insert(self, rows):
        got = []
        self.writer.insert(rows, got.append)
        return got

    def call(self, fn, *args):
        got = []
        self.writer.call(fn, *args).addBoth(got.append)
        return got

    def stored(self):
        with self.engine.connect() as conn:
            query = select(schema.messages.c.id, schema.messages.c.body, schema.messages.c.multi_id)
            return conn.execute(query.order_by(schema.messages.c.id)).all()


@pytest.fixture
def harness(engine, account_id):
    h = Harness(engine)
    yield h
    if h.writer._thread.is_alive():
        h.stop()


def row(account_id, body=b"x", destination="33612345678"):
    values = dict(
        account_id=account_id,
        service_type="",
        source_ton=0,
        source_npi=0,
        source="36000",
        destination=destination,
        esm_class=0,
        protocol_id=0,
        priority=0,
        registered_delivery=0,
        data_coding=0,
        body=body,
        tlvs=b"",
        submitted_at=NOW,
        due_at=NOW,
        expires_at=NOW + 3600,
        state=State.ACCEPTED.value,
        updated_at=NOW,
        origin=0,
    )
    return tuple(values.get(c) for c in COLUMNS[1:-1])


def _count(conn):
    return conn.execute(select(func.count()).select_from(schema.messages)).scalar()


def test_queued_jobs_make_one_transaction(harness, account_id):
    got = [harness.insert([row(account_id, b"a%d" % i)]) for i in range(50)]
    many = harness.insert([row(account_id, b"b%d" % i) for i in range(5)])
    counted = harness.call(_count)
    harness.writer.start()
    harness.run_batch()
    assert harness.writer.batches == 1
    assert harness.hooks == 1
    ids = [g[0] for g in got] + [many[0]]
    assert ids == [[i] for i in range(1, 51)] + [[51, 52, 53, 54, 55]]
    assert counted == [55]  # the call saw every insert queued before it
    assert [r.id for r in harness.stored()] == list(range(1, 56))
    assert harness.stored()[50].body == b"b0"


def test_ids_continue_across_batches_and_after_existing_rows(engine, harness, account_id):
    with writing(engine) as conn:
        messages.insert_rows(conn, [(100, *row(account_id), None)])
    first = harness.insert([row(account_id), row(account_id)])
    harness.writer.start()
    harness.run_batch()
    second = harness.insert([row(account_id)])
    harness.run_batch()
    third = harness.insert([row(account_id)] * 3)
    harness.run_batch()
    assert (first, second, third) == ([[101, 102]], [[103]], [[104, 105, 106]])
    assert harness.writer.batches == 3
    assert harness.hooks == 3
    assert [r.id for r in harness.stored()] == [100, *range(101, 107)]
    # Rows inserted together are one submit_multi: they share its first id.
    assert [r.multi_id for r in harness.stored()] == [None, 101, 101, None, 104, 104, 104]


def test_a_call_sees_the_inserts_queued_before_it(harness, account_id):
    before = harness.insert([row(account_id, b"before", "33611111111")])
    cancelled = harness.call(
        lambda conn: messages.cancel(conn, account_id, NOW + 1, destination="33611111111")
    )
    after = harness.insert([row(account_id, b"after", "33611111111")])
    harness.writer.start()
    harness.run_batch()
    assert harness.writer.batches == 1
    assert (before, cancelled, after) == ([[1]], [1], [[2]])
    with harness.engine.connect() as conn:
        assert messages.get(conn, 1).state == State.DELETED
        assert messages.get(conn, 2).state == State.ACCEPTED  # queued after the cancel


def test_callbacks_in_arrival_order(harness, account_id):
    order = []
    harness.writer.insert([row(account_id)], lambda r: order.append(("insert", r)))
    harness.writer.call(lambda conn: "called").addCallback(lambda r: order.append(("call", r)))
    harness.writer.insert([row(account_id)], lambda r: order.append(("insert", r)))
    harness.writer.start()
    harness.run_batch()
    assert order == [("insert", [1]), ("call", "called"), ("insert", [2])]


def test_a_failing_call_keeps_the_batch(harness, account_id):
    def half_then_fail(conn):
        conn.execute(update(schema.messages).values(body=b"changed"))  # rolled back
        raise RuntimeError("boom")

    first = harness.insert([row(account_id, b"first")])
    failed = harness.call(half_then_fail)
    last = harness.insert([row(account_id, b"last")])
    ok = harness.call(lambda conn: "fine")
    harness.writer.start()
    harness.run_batch()
    assert harness.writer.batches == 1
    assert (first, last, ok) == ([[1]], [[2]], ["fine"])
    (failure,) = failed
    assert failure.check(RuntimeError)
    assert [r.body for r in harness.stored()] == [b"first", b"last"]


def test_a_failing_transaction_stores_nothing(harness, account_id):
    def add_account(conn):
        conn.execute(
            insert(schema.accounts).values(
                system_id="new",
                password_hash="-",
                max_binds=1,
                tps=0,
                enabled=True,
                created_at=NOW,
            )
        )
        return "added"

    good = harness.insert([row(account_id, b"good")])
    added = harness.call(add_account)
    bad = harness.insert([row(999, b"no such account")])  # violates the foreign key
    harness.writer.start()
    harness.run_batch()
    assert harness.writer.batches == 0
    assert harness.hooks == 1  # the failures are handed out in one hop too
    assert isinstance(good[0], Exception) and good[0] is bad[0]
    (failure,) = added
    assert failure.value is good[0]
    assert harness.stored() == []
    with harness.engine.connect() as conn:
        assert conn.execute(select(schema.accounts.c.system_id)).scalars().all() == ["acme"]
    # the writer carries on with the next batch
    again = harness.insert([row(account_id, b"again")])
    harness.run_batch()
    assert harness.writer.batches == 1
    (stored,) = harness.stored()
    assert stored.body == b"again" and again == [[stored.id]]


def test_a_missing_table_fails_every_job(engine, harness, account_id):
    harness.writer.start()
    with writing(engine) as conn:
        conn.exec_driver_sql("DROP TABLE messages" + (" CASCADE" if PG_URL else ""))
    got = [harness.insert([row(account_id)]) for _ in range(3)]
    counted = harness.call(lambda conn: "ran")
    harness.stop()
    assert all(isinstance(g[0], Exception) for g in got)
    assert counted[0].check(Exception)


def test_stop_flushes_what_is_queued(harness, account_id):
    got = [harness.insert([row(account_id)]) for _ in range(20)]
    called = harness.call(lambda conn: "done")
    harness.writer.stop()  # before the thread ever ran: the stop waits behind the jobs
    harness.writer.start()
    stopped = []
    harness.writer._ended.addCallback(stopped.append)
    harness.run_batch()
    assert stopped == []
    assert len([g for g in got if g]) == 20 and called == ["done"]
    harness.reactor.run_one()
    assert stopped == [None]
    harness.writer._thread.join(TIMEOUT)
    assert not harness.writer._thread.is_alive()
    assert len(harness.stored()) == 20


def test_stop_after_work(harness, account_id):
    harness.writer.start()
    got = [harness.insert([row(account_id)]) for _ in range(5)]
    harness.stop()
    harness.writer._thread.join(TIMEOUT)
    assert not harness.writer._thread.is_alive()
    assert sorted(g[0][0] for g in got) == [1, 2, 3, 4, 5]
    assert harness.hooks == harness.writer.batches >= 1


def test_a_second_stop_waits_for_the_same_end(harness, account_id):
    harness.writer.start()
    got = harness.insert([row(account_id)])
    first, second = [], []
    harness.writer.stop().addCallback(first.append)
    harness.writer.stop().addCallback(second.append)
    while not first:
        harness.reactor.run_one()
    assert second == [None] and got[0] == [1]
    late = []
    harness.writer.stop().addCallback(late.append)  # after the end: answered at once
    assert late == [None]


def test_a_failing_callback_does_not_stop_the_others(harness, account_id):
    def bad(_ids):
        raise ValueError("callback bug")

    harness.writer.insert([row(account_id)], bad)
    after = harness.insert([row(account_id)])
    harness.writer.start()
    harness.run_batch()
    assert after == [[2]]
    assert harness.hooks == 1


def test_a_large_batch_goes_in_whole_and_in_order(harness, account_id):
    """More rows than one multi-row INSERT holds: every chunk size is used, nothing lost."""
    got = [harness.insert([row(account_id, f"m{i}".encode())]) for i in range(123)]
    harness.writer.start()
    harness.run_batch()
    assert harness.writer.batches == 1
    assert [g[0][0] for g in got] == list(range(1, 124))
    assert [(r.id, r.body) for r in harness.stored()] == [
        (i, f"m{i - 1}".encode()) for i in range(1, 124)
    ]


# -- the opt-out list, checked in the transaction that stores the rows -----------------------

KEY = b"k3y-of-the-switch"
MINE, GLOBALLY, OTHERS, FREE = "33611111111", "33622222222", "33633333333", "33644444444"


def digest(number):
    return optouts.digest(KEY, number)


@pytest.fixture
def lists(engine, account_id):
    """MINE on the account's list, GLOBALLY on the global one, OTHERS on another account's
    list only; FREE on none."""
    with writing(engine) as conn:
        other = add_account(conn, "other")
        optouts.add(conn, account_id, [digest(MINE)], "stop", NOW)
        optouts.add(conn, optouts.GLOBAL, [digest(GLOBALLY)], "admin", NOW)
        optouts.add(conn, other, [digest(OTHERS)], "stop", NOW)
    return other


def insert_checked(harness, account_id, *numbers):
    """Insert one job of rows to these numbers, with their hashes; the list its answer comes in."""
    got = []
    rows = [row(account_id, number.encode(), number) for number in numbers]
    harness.writer.insert(rows, got.append, [digest(n) for n in numbers])
    return got


def path(mixed: bool) -> str:
    """The path a batch of inserts takes, with a call among them (`mixed`) or not."""
    return "jobs" if mixed or PG_URL else "fast"


def paths(harness, monkeypatch):
    """Which commit path each batch takes: "fast" (all inserts, SQLite) or "jobs"."""
    taken = []
    for name, label in (("_commit_inserts", "fast"), ("_commit_jobs", "jobs")):
        method = getattr(harness.writer, name)

        def spy(*args, method=method, label=label):
            taken.append(label)
            return method(*args)

        monkeypatch.setattr(harness.writer, name, spy)
    return taken


@pytest.mark.parametrize("mixed", [False, True])
def test_opted_out_rows_are_not_stored(harness, account_id, lists, monkeypatch, mixed):
    taken = paths(harness, monkeypatch)
    got = insert_checked(harness, account_id, MINE, GLOBALLY, OTHERS)
    if mixed:
        called = harness.call(lambda conn: "called")
    after = insert_checked(harness, account_id, FREE)
    harness.writer.start()
    harness.run_batch()
    assert taken == [path(mixed)]
    assert harness.writer.batches == 1
    assert (got, after) == ([[OUT, OUT, 1]], [[2]])  # ids stay dense: none burnt
    if mixed:
        assert called == ["called"]
    assert [tuple(r) for r in harness.stored()] == [
        (1, OTHERS.encode(), 1),
        (2, FREE.encode(), None),
    ]


@pytest.mark.parametrize("mixed", [False, True])
def test_the_other_account_is_refused_its_own_list(harness, account_id, lists, monkeypatch, mixed):
    taken = paths(harness, monkeypatch)
    theirs = insert_checked(harness, lists, MINE, GLOBALLY, OTHERS)
    if mixed:
        harness.call(lambda conn: None)
    harness.writer.start()
    harness.run_batch()
    assert taken == [path(mixed)]
    assert theirs == [[1, OUT, OUT]]


@pytest.mark.parametrize("mixed", [False, True])
def test_multi_id_is_the_first_stored_id(harness, account_id, lists, monkeypatch, mixed):
    taken = paths(harness, monkeypatch)
    multi = insert_checked(harness, account_id, MINE, FREE, GLOBALLY, "33655555555", OTHERS)
    if mixed:
        harness.call(lambda conn: None)
    single = insert_checked(harness, account_id, MINE)
    harness.writer.start()
    harness.run_batch()
    assert taken == [path(mixed)]
    assert (multi, single) == ([[OUT, 1, OUT, 2, 3]], [[OUT]])
    assert [(r.id, r.multi_id) for r in harness.stored()] == [(1, 1), (2, 1), (3, 1)]
    later = harness.insert([row(account_id)])
    harness.run_batch()
    assert later == [[4]]


def test_rows_without_hashes_are_not_checked(harness, account_id, lists):
    unchecked = harness.insert([row(account_id, b"m", MINE)])  # an automatic reply
    some = []
    rows = [row(account_id, b"g", GLOBALLY), row(account_id, b"f", FREE)]
    harness.writer.insert(rows, some.append, [None, digest(FREE)])
    harness.writer.start()
    harness.run_batch()
    assert (unchecked, some) == ([[1]], [[2, 3]])


def test_a_stop_recorded_earlier_in_the_batch_refuses_the_insert(harness, account_id, lists):
    harness.call(optouts.add, account_id, [digest(FREE)], "stop", NOW)
    got = insert_checked(harness, account_id, FREE)
    harness.writer.start()
    harness.run_batch()
    assert got == [[OUT]]


class Deadlock(Exception):
    sqlstate = "40P01"  # as psycopg raises it


def test_a_batch_broken_by_a_deadlock_is_run_again(harness, account_id):
    tries = []

    def meets_another_node(conn):
        tries.append(1)
        if len(tries) == 1:
            raise Deadlock("deadlock detected")
        return "done"

    before = harness.insert([row(account_id, b"a")])
    called = harness.call(meets_another_node)
    after = harness.insert([row(account_id, b"b")])
    harness.writer.start()
    harness.run_batch()
    assert (before, called, after, len(tries)) == ([[1]], ["done"], [[2]], 2)
    assert [r.body for r in harness.stored()] == [b"a", b"b"]  # once each


def test_a_deadlock_every_time_fails_the_batch(harness, account_id):
    def always(conn):
        raise Deadlock("deadlock detected")

    got = harness.insert([row(account_id)])
    called = harness.call(always)
    harness.writer.start()
    harness.run_batch()
    assert isinstance(got[0], Deadlock) and called[0].check(Deadlock)
    assert harness.stored() == []
