"""Waking the other nodes on PostgreSQL: the transaction that queues work NOTIFYs a channel,
and every node's `Listener` hears it at commit and wakes its dispatcher or outbox sender at
once, rather than at its next idle look. A single node on SQLite has no one else to wake.

A notification is only a hint to look now: one lost (the listener reconnecting) costs no more
than the wait for the next idle look.
"""

import threading
from collections.abc import Callable

from sqlalchemy import Connection, Engine
from twisted.logger import Logger

from .db import TCP_TIMEOUTS
from .faults import describe

_log = Logger()
QUEUE = "smsc_queue"  # messages stored
OUTBOX = "smsc_outbox"  # deliver_sm queued for clients
_TICK = 0.1  # seconds between looks at the stop flag while waiting for notifications
_BACKOFF = (0.5, 10.0)  # seconds before the first reconnection, and at most between two
_CONNECT_TIMEOUT = 5  # seconds: a stop waits for a connection attempt at most so long


def notify(conn: Connection, channel: str) -> None:
    """Wake the listening nodes when this transaction commits (PostgreSQL folds repeats of a
    notification within a transaction into one)."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"NOTIFY {channel}")


class Listener:
    """A thread with a connection of its own that LISTENs on the channels of `wakes` and calls
    `wakes[channel]()` on the reactor for each notification: at most one call a channel
    waiting for the reactor, however many notifications came meanwhile."""

    def __init__(self, engine: Engine, reactor, wakes: dict[str, Callable[[], object]]):
        # The arguments SQLAlchemy itself connects with (host, options, application_name…).
        self._args, kwargs = engine.dialect.create_connect_args(engine.url)
        # TCP_TIMEOUTS: an idle LISTEN connection notices a server gone without a word.
        self._kwargs = {
            "connect_timeout": _CONNECT_TIMEOUT,
            **TCP_TIMEOUTS,
            **kwargs,
            "autocommit": True,
        }
        self._reactor = reactor
        self._wakes = wakes
        self._pending: set[str] = set()  # channels with a call waiting for the reactor
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="smsc-store-listen", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join()

    def _run(self) -> None:
        import psycopg  # the pg extra, which a SQLite install may lack (and needs no listener)

        delay, down = _BACKOFF[0], False
        while not self._stopping.is_set():
            try:
                with psycopg.connect(*self._args, **self._kwargs) as conn:
                    for channel in self._wakes:
                        conn.execute(f"LISTEN {channel}")
                    if down:
                        _log.info("listening to the store's notifications again")
                    delay, down = _BACKOFF[0], False
                    # What was notified while we were not listening is lost: look now.
                    for channel in self._wakes:
                        self._wake(channel)
                    while not self._stopping.is_set():
                        for notification in conn.notifies(timeout=_TICK):
                            self._wake(notification.channel)
            except psycopg.Error as e:
                if not down:
                    _log.warn(
                        "not listening to the store's notifications ({error}): other nodes' "
                        "work waits for the idle looks until the connection is back",
                        error=describe(e),
                    )
                    down = True
                self._stopping.wait(delay)
                delay = min(delay * 2, _BACKOFF[1])

    def _wake(self, channel: str) -> None:
        # Only this thread adds and only the reactor removes, so the test and the add need
        # no lock: a channel seen still pending has its call still to come.
        if channel not in self._pending:
            self._pending.add(channel)
            self._reactor.callFromThread(self._call, channel)

    def _call(self, channel: str) -> None:
        self._pending.discard(channel)  # first: a notification during the call is not lost
        self._wakes[channel]()
