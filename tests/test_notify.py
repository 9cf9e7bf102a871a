"""LISTEN/NOTIFY between nodes (smsc.store.notify), on a real PostgreSQL: what a committed
transaction notifies reaches the listener's callbacks at once, nothing else does, bursts fold
into one call, and the listener outlives its connection."""

import queue
import time
from functools import partial

import psycopg
import pytest
from sqlalchemy import text
from stores import PG_URL
from test_queue import add_account
from twisted.logger import LogLevel, globalLogPublisher

from smsc.store import messages, notify, outbox
from smsc.store.db import make_engine, writing
from smsc.store.messages import COLUMNS
from smsc.store.notify import OUTBOX, QUEUE, Listener

pytestmark = pytest.mark.skipif(not PG_URL, reason="LISTEN/NOTIFY is PostgreSQL's")

NOW = 1_767_225_600.0


class Listening:
    """A Listener on `engine` whose calls wait in a queue until the test runs them, as they
    would for a reactor's thread; `woken` records the wakes those calls made, and `during`
    holds what the next wake of a channel runs besides."""

    def __init__(self, engine):
        self.calls = queue.Queue()
        self.woken = []
        self.during = {}
        wakes = {channel: partial(self._wake, channel) for channel in (QUEUE, OUTBOX)}
        self.listener = Listener(engine, self, wakes)

    def _wake(self, channel: str) -> None:
        self.woken.append(channel)
        self.during.pop(channel, lambda: None)()

    def callFromThread(self, fn, *args):
        self.calls.put((fn, args))

    def next(self, timeout: float = 1.0) -> str:
        """Run the next call, within `timeout` (else queue.Empty): the channel it woke."""
        fn, args = self.calls.get(timeout=timeout)
        fn(*args)
        return self.woken.pop()


@pytest.fixture
def listening(engine):
    ears = Listening(engine)
    ears.listener.start()
    # It looks once at start, for what was notified before it listened: it listens now.
    assert {ears.next(), ears.next()} == {QUEUE, OUTBOX}
    yield ears
    ears.listener.stop()


@pytest.fixture
def logged():
    events = []
    globalLogPublisher.addObserver(events.append)

    def at(level) -> list[dict]:
        mine = (e for e in events if e["log_namespace"] == notify.__name__)
        return [e for e in mine if e["log_level"] == level]

    yield at
    globalLogPublisher.removeObserver(events.append)


def committed(engine, channel: str) -> None:
    with writing(engine) as conn:
        notify.notify(conn, channel)


def test_a_committed_notification_wakes_its_channel_within_a_second(engine, listening):
    committed(engine, OUTBOX)
    assert listening.next() == OUTBOX
    committed(engine, QUEUE)
    assert listening.next() == QUEUE
    assert listening.calls.empty()


def test_nothing_is_heard_before_the_commit_nor_after_a_rollback(engine, listening):
    with engine.connect() as conn:
        conn.begin()
        notify.notify(conn, OUTBOX)
        # Notifications reach a listener in commit order: a NOTIFY that went out at once
        # would be heard before this one.
        committed(engine, QUEUE)
        assert listening.next() == QUEUE
        assert listening.calls.empty()
        conn.commit()
    assert listening.next() == OUTBOX

    with engine.connect() as conn:
        conn.begin()
        notify.notify(conn, OUTBOX)
        conn.rollback()
    committed(engine, QUEUE)
    assert listening.next() == QUEUE
    assert listening.calls.empty()


def test_a_burst_folds_into_one_call_a_channel_until_it_runs(engine, listening):
    for _ in range(20):
        committed(engine, OUTBOX)
    committed(engine, QUEUE)  # heard after the 20 above, all of them taken in by then
    # The calls are not run until both are in: while one waits, its channel's next
    # notifications fold into it.
    deadline = time.monotonic() + 1.0
    while listening.calls.qsize() < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [listening.next(), listening.next()] == [OUTBOX, QUEUE]
    assert listening.calls.empty()
    committed(engine, OUTBOX)  # its call ran: the next notification makes another
    assert listening.next() == OUTBOX


def test_a_notification_during_a_call_makes_another(engine, listening):
    def notified_meanwhile():
        committed(engine, OUTBOX)
        time.sleep(0.2)  # heard by now, while the call still runs

    listening.during[OUTBOX] = notified_meanwhile
    committed(engine, OUTBOX)
    assert listening.next() == OUTBOX
    assert listening.next() == OUTBOX


def test_stop_returns_at_once_and_ends_the_thread(listening):
    started = time.monotonic()
    listening.listener.stop()
    assert time.monotonic() - started < 0.5
    assert not listening.listener._thread.is_alive()


def test_it_outlives_its_connection_and_says_so_once(engine, listening, logged, monkeypatch):
    monkeypatch.setattr(notify, "_BACKOFF", (0.05, 0.1))
    with engine.connect() as conn:
        killed = conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = current_setting('application_name') "
                "AND query LIKE 'LISTEN %'"
            )
        ).scalars()
        assert list(killed) == [True]
    # Back, it looks once: what was notified meanwhile never reached it.
    assert {listening.next(2.0), listening.next()} == {QUEUE, OUTBOX}
    committed(engine, OUTBOX)
    assert listening.next() == OUTBOX
    assert len(logged(LogLevel.warn)) == 1
    assert len(logged(LogLevel.info)) == 1


def test_while_the_database_is_away_it_retries_warns_once_and_stops_at_once(
    engine, logged, monkeypatch
):
    monkeypatch.setattr(notify, "_BACKOFF", (0.01, 0.02))
    attempts = []
    connect = psycopg.connect
    monkeypatch.setattr(psycopg, "connect", lambda *a, **k: attempts.append(1) or connect(*a, **k))
    away = make_engine(engine.url.set(port=1).render_as_string(hide_password=False))
    ears = Listening(away)
    ears.listener.start()
    time.sleep(0.3)
    started = time.monotonic()
    ears.listener.stop()
    assert time.monotonic() - started < 0.5
    assert len(attempts) >= 5
    assert len(logged(LogLevel.warn)) == 1
    assert ears.calls.empty()


@pytest.fixture
def account(engine) -> int:
    with writing(engine) as conn:
        return add_account(conn)


def test_outbox_rows_added_wake_the_outbox_senders(engine, listening, account):
    receipt = (account, None, 1, 1, "33612345678", "ACME", 4, 0, b"id:1", b"", NOW, NOW, NOW + 60,
               None)  # fmt: skip
    with writing(engine) as conn:
        outbox.add(conn, [receipt, receipt])
    assert listening.next() == OUTBOX
    assert listening.calls.empty()


def test_messages_stored_wake_the_dispatchers(engine, listening, account):
    row = dict(
        id=1, account_id=account, service_type="", source_ton=0, source_npi=0, source="36000",
        destination="33612345678", esm_class=0, protocol_id=0, priority=0,
        registered_delivery=1, data_coding=0, body=b"hello", tlvs=b"", submitted_at=NOW,
        due_at=NOW, expires_at=NOW + 3600, state="ACCEPTED", updated_at=NOW, origin=0,
        multi_id=None,
    )  # fmt: skip
    with writing(engine) as conn:
        messages.insert_rows(conn, [tuple(row.get(c) for c in COLUMNS)])
    assert listening.next() == QUEUE
    assert listening.calls.empty()
