"""The group-commit writer: one thread owns the writing connection. Every job waiting when it
wakes becomes one transaction, and the whole batch is answered in one hop to the reactor.

The hot path (`insert`) costs the reactor one queue put per message and a plain callback; the
batch grows with the load by itself (more arrives while a commit is on disk). Other writes
(`call`) run in the same transaction, in arrival order; one failing job does not take the
batch down (the batch runs again with a savepoint a job).

When the store goes away (PostgreSQL stopped or restarted, the network cut), the batch fails as
a whole and every job in it hears so; the writer then drops its connection and opens a new one
for the next batch, no sooner than a short backoff after the last failed attempt (BACKOFF).
Meanwhile the jobs that arrive fail at once with StoreUnavailable rather than wait: a submit is
refused with a transient status (smsc.accept), never left hanging. A batch that fails on a
connection that still answers (SQLite's disk full, a statement timeout) keeps it.
"""

import itertools
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, select
from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from ..protocol.constants import Status
from . import credit, messages, optouts
from .db import NODE
from .faults import Quiet, StoreUnavailable, describe, transient
from .schema import ID_BLOCK, message_ids

_STOP = object()
_log = Logger()
# Seconds before a new connection is tried after the store was lost, doubled at each failed
# attempt up to the second value: a stopped PostgreSQL costs an attempt a second or two, not a
# spinning thread, and a store that is back is used again within BACKOFF[1].
BACKOFF = (0.25, 2.0)


class _Insert:
    __slots__ = ("rows", "callback", "hashes", "parts", "multi")

    def __init__(self, rows, callback, hashes, parts, multi):
        self.rows = rows
        self.callback = callback
        self.hashes = hashes
        self.parts = parts
        self.multi = multi


class _Call:
    __slots__ = ("fn", "args", "kwargs", "callback")

    def __init__(self, fn, args, kwargs, callback):
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.callback = callback


def _is_insert(job) -> bool:
    return type(job) is _Insert


class _JobFailed(Exception):
    """A job raised in a batch run without savepoints: run the batch again with them."""


# Transactions on PostgreSQL may meet in a deadlock (two nodes charging the same accounts in
# another order, say); the one PostgreSQL rolls back is run again, as its docs advise.
ATTEMPTS = 5
_CONFLICTS = frozenset({"40P01", "40001"})  # deadlock_detected, serialization_failure


def _conflict(error: BaseException | None) -> bool:
    return getattr(getattr(error, "orig", error), "sqlstate", None) in _CONFLICTS


def _chain(result, d: Deferred):
    d.callback(None)
    return result


class Writer:
    def __init__(
        self,
        engine: Engine,
        reactor,
        after_batch: Callable[[], None] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ):
        self._engine = engine
        self._reactor = reactor
        self._after_batch = after_batch
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="smsc-writer", daemon=True)
        self._ended = Deferred()  # fired on the reactor once the thread has finished
        self._stop_asked = False
        self._next_id = 0
        self._block_end = 0  # PostgreSQL: the end of the block of ids taken from the sequence
        self._conn = None  # None: not connected (not yet, or the store was lost)
        self._sqlite = engine.dialect.name == "sqlite"
        # Reconnection (the writer's thread only): the clock of its backoff, the next attempt
        # no sooner than _retry_at, and the failure that took the store away.
        self._monotonic = monotonic
        self._delay = BACKOFF[0]
        self._retry_at = 0.0
        self._lost: BaseException | None = None
        self._failing = 0  # batches failed in a row (logged at the first and at the end)
        self._failing_since = 0.0
        self._checkpoints = Quiet("the WAL checkpoint", _log)
        self.node_id: int | None = None  # the node the claims it runs are recorded for
        # Called on the reactor with (system_id, balance, threshold) for each prepaid account
        # a batch took below its low-balance threshold.
        self.low_balance: Callable[[list[tuple[str, int, int]]], None] | None = None
        self.batches = 0  # how many transactions committed, for the benchmark and tests

    def start(self) -> None:
        with self._engine.begin() as conn:
            if self._sqlite:  # one node: it counts on its own
                self._next_id = messages.next_id(conn)
            else:
                messages.catch_up_sequence(conn)
        self._thread.start()

    def stop(self) -> Deferred:
        """Finish what is queued, then end the thread. Asked again, waits for the same end."""
        if self._thread.ident is not None and not self._thread.is_alive():
            return succeed(None)  # it ended, or died: nothing more will come from it
        if not self._stop_asked:
            self._stop_asked = True
            self._queue.put(_STOP)
        d = Deferred()
        self._ended.addCallback(_chain, d)
        return d

    def insert(
        self,
        rows: list[tuple],
        callback: Callable[[Any], None],
        hashes: list | None = None,
        parts: int = 1,
        multi: bool = True,
    ) -> None:
        """Store message rows of one account (COLUMNS without id and multi_id), each charged
        `parts` times its destination's price. `callback` gets, on the reactor, for each row
        its id once committed, or the Status that refused it (ROPTEDOUT, RNOCREDIT: nothing of
        it is stored or charged); or the exception that prevented the whole batch. Several
        rows in one call are one submit_multi: their multi_id is the first id (unless `multi`
        is false: messages known each by its own id, as the HTTP API answers). `hashes`: each
        row's destination on the opt-out list's terms. The opt-out list and the balance are
        checked here, in the transaction that stores the rows, so that a STOP recorded a
        moment before is never missed and concurrent submits never overdraw."""
        self._queue.put(_Insert(rows, callback, hashes, parts, multi))

    def call(self, fn: Callable, *args, **kwargs) -> Deferred:
        """Run `fn(connection, *args, **kwargs)` in the writer's next transaction."""
        d = Deferred()
        self._queue.put(_Call(fn, args, kwargs, lambda r: d.errback(r) if isinstance(r, Failure)
                              else d.callback(r)))  # fmt: skip
        return d

    # -- the thread ------------------------------------------------------------------------

    def _run(self) -> None:
        sqlite = self._sqlite
        stop = False
        while not stop:
            jobs = [self._queue.get()]
            try:
                while True:
                    jobs.append(self._queue.get_nowait())
            except queue.Empty:
                pass
            if _STOP in jobs:
                stop = True
                jobs = [j for j in jobs if j is not _STOP]
            if jobs:
                done = self._commit(jobs)
                self._reactor.callFromThread(self._deliver, done)
            conn = self._conn
            if sqlite and conn is not None and (stop or self._queue.empty()):
                # Between batches, so checkpoints never sit inside a commit's latency; on the
                # bare driver connection, since a checkpoint cannot run inside a transaction.
                try:
                    conn.connection.dbapi_connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except Exception:  # the next one will try again (a full disk: one line)
                    self._checkpoints.failed(Failure())
                else:
                    self._checkpoints.succeeded()
        self._disconnect()
        self._reactor.callFromThread(self._ended.callback, None)

    def _commit(self, jobs: list) -> list[tuple[Callable, Any]]:
        conn = self._connection()
        if conn is None:  # the store is away: the jobs hear so at once, nothing waits
            return self._fail(jobs, StoreUnavailable(describe(self._lost)))
        ids_at = self._next_id, self._block_end
        for attempt in range(1, ATTEMPTS + 1):
            try:
                if self._sqlite and all(type(job) is _Insert for job in jobs):
                    done = self._commit_inserts(conn.connection.dbapi_connection, jobs)
                else:
                    done = self._commit_jobs(conn, jobs)
            except Exception as e:
                self._rewind(ids_at)
                if attempt < ATTEMPTS and _conflict(e):
                    continue  # PostgreSQL chose this batch to break a deadlock: run it again
                # The transaction failed as a whole (disk full, database gone): nothing of it
                # is stored, and every job in it hears so.
                if not self._alive(conn):
                    self._drop(e)
                return self._fail(jobs, e)
            self.batches += 1
            if self._failing:
                _log.info(
                    "store writes succeed again, after {n} failed batches in {seconds:.1f} s",
                    n=self._failing,
                    seconds=self._monotonic() - self._failing_since,
                )
                self._failing = 0
            return done

    def _fail(self, jobs: list, error: Exception) -> list[tuple[Callable, Any]]:
        """Every job hears of the failure: an insert's callback gets the exception, a call's
        Deferred its Failure. The first failure of a run is logged (not each: an outage would
        write a line a batch)."""
        failure = Failure(error)
        if not self._failing:
            self._failing_since = self._monotonic()
            if transient(error):  # the store away, full, locked: what it is says enough
                _log.warn(
                    "store writes fail ({error}): submits are refused with ESME_RMSGQFUL "
                    "until they succeed again",
                    error=describe(error),
                )
            else:  # a mistake: where it comes from too (never the statements' parameters)
                _log.failure("store writes fail: submits are refused with ESME_RSYSERR", failure)
        self._failing += 1
        return [(job.callback, error if type(job) is _Insert else failure) for job in jobs]

    # -- the connection --------------------------------------------------------------------

    def _connection(self):
        """The writing connection: the one held, or a new one once the backoff after the
        last failure is over; None while the store is away."""
        conn = self._conn
        if conn is not None:
            return conn
        if self._monotonic() < self._retry_at:
            return None
        try:
            conn = self._engine.connect().execution_options(sqlite_begin="IMMEDIATE")
        except Exception as e:
            self._drop(e)
            return None
        conn.info[messages.ALLOCATE] = self._allocate  # for jobs that store messages
        conn.info[NODE] = self.node_id
        if self._lost is not None:
            _log.info("the store is back: the writer connected again")
        self._conn, self._lost, self._delay = conn, None, BACKOFF[0]
        return conn

    @staticmethod
    def _alive(conn) -> bool:
        """Whether the connection survived a failed batch (asked only then: a round trip).
        A full disk, a lock or a statement timeout leave it usable; a server that went away
        does not."""
        try:
            if conn.invalidated or conn.closed:
                return False
            raw = conn.connection.dbapi_connection
            if raw is None or getattr(raw, "closed", False) or getattr(raw, "broken", False):
                return False
            raw.execute("SELECT 1").close()
            raw.rollback()  # what the driver began for it (SQLite: nothing to end)
            return True
        except Exception:
            return False

    def _drop(self, error: BaseException) -> None:
        """The store was lost (or a new connection refused): let the connection go, and try
        a new one no sooner than the backoff."""
        if self._lost is None:
            _log.warn(
                "lost the store ({error}): trying to connect again every {first:g} to {most:g} s",
                error=describe(error),
                first=BACKOFF[0],
                most=BACKOFF[1],
            )
        self._lost = error
        self._disconnect(invalidate=True)
        self._retry_at = self._monotonic() + self._delay
        self._delay = min(self._delay * 2, BACKOFF[1])

    def _disconnect(self, invalidate: bool = False) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            if invalidate:  # the pool must not hand it out again
                conn.invalidate()
            conn.close()
        except Exception:
            pass  # a connection already gone

    def _allocate(self, n: int) -> int:
        """The first of n new message ids, in a row."""
        if not self._sqlite and self._next_id + n > self._block_end:
            # The nodes share the sequence, a block at a time (SQLite has one node: it counts).
            assert n <= ID_BLOCK
            self._next_id = self._conn.execute(select(message_ids.next_value())).scalar()
            self._block_end = self._next_id + ID_BLOCK
        first = self._next_id
        self._next_id += n
        return first

    def _rewind(self, ids_at: tuple[int, int]) -> None:
        """The ids given in a failed run are given again: from where it started, or from the
        start of the block it took (taken from the sequence for good, rollback or not)."""
        next_id, block_end = ids_at
        self._next_id = next_id if self._block_end == block_end else self._block_end - ID_BLOCK

    def _number(self, job: _Insert, refused: set, till: credit.Till):
        """Charge the job's rows and give them their ids, the refused ones their Status; the
        rows of one submit_multi share its first id."""
        rows, hashes, parts = job.rows, job.hashes, job.parts
        account = rows[0][0]
        price, take = till.price, till.take
        kept, costs, verdicts = [], [], []
        for i, row in enumerate(rows):
            if refused and hashes and (account, hashes[i]) in refused:
                verdicts.append(Status.ROPTEDOUT)
                continue
            cost = parts * price(row[5])
            if not take(account, cost):
                verdicts.append(Status.RNOCREDIT)
                continue
            verdicts.append(None)
            kept.append(row)
            costs.append(cost)
        first = self._allocate(len(kept))
        till.charge(account, first, costs, rows[0][13])  # at its submitted_at
        multi = first if job.multi and len(rows) > 1 and kept else None
        numbered = [(first + i, *row, multi) for i, row in enumerate(kept)]
        ids = list(range(first, self._next_id))
        if len(kept) < len(rows):
            given = iter(ids)
            ids = [next(given) if v is None else v for v in verdicts]
        return numbered, ids

    @staticmethod
    def _accounts(jobs) -> set[int]:
        return {job.rows[0][0] for job in jobs if type(job) is _Insert}

    @staticmethod
    def _wanted(jobs) -> list[tuple[int, bytes]]:
        """The (account id, number hash) pairs the batch's inserts ask about."""
        return [
            (row[0], h)
            for job in jobs
            if type(job) is _Insert and job.hashes
            for row, h in zip(job.rows, job.hashes, strict=True)
            if h is not None
        ]

    def _commit_inserts(self, dbapi_connection, jobs: list) -> list[tuple[Callable, Any]]:
        """The hot path on SQLite: only submits, in the driver's own transaction (SQLAlchemy's
        transaction machinery costs more than the inserts of a small batch)."""
        done, rows = [], []
        ids_at = self._next_id, self._block_end
        dbapi_connection.execute("BEGIN IMMEDIATE")
        try:
            wanted = self._wanted(jobs)
            cursor = dbapi_connection.cursor()
            refused = optouts.blocked_sqlite(cursor, wanted) if wanted else set()
            till = credit.Till(cursor, False, self._accounts(jobs))
            for job in jobs:
                numbered, ids = self._number(job, refused, till)
                rows += numbered
                done.append((job.callback, ids))
            messages.insert_sqlite(dbapi_connection, rows)
            self._alert(done, till.close(cursor, False))
            cursor.close()
            dbapi_connection.execute("COMMIT")
        except BaseException:
            self._rewind(ids_at)
            if dbapi_connection.in_transaction:
                dbapi_connection.execute("ROLLBACK")
            raise
        return done

    def _commit_jobs(self, conn, jobs: list) -> list[tuple[Callable, Any]]:
        """The batch in one transaction. Savepoints cost a statement or two a job, so the
        batch first runs without them; only when a job fails is it run again with one a job,
        so that the failing job does not take the others down."""
        ids_at = self._next_id, self._block_end
        try:
            return self._run_jobs(conn, jobs, isolate=False)
        except _JobFailed as failed:
            if _conflict(failed.__cause__):
                raise failed.__cause__ from None  # the batch did not fail: it is run again
            if not self._alive(conn):  # not the job: the store went away under it
                raise failed.__cause__ from None
            self._rewind(ids_at)
            return self._run_jobs(conn, jobs, isolate=True)

    def _run_jobs(self, conn, jobs: list, isolate: bool) -> list[tuple[Callable, Any]]:
        done: list[tuple[Callable, Any]] = []
        rows: list[tuple] = []
        postgresql = not self._sqlite
        with conn.begin():
            cursor = conn.connection.dbapi_connection.cursor()
            # Looked up for the inserts up to the next other job, which may put numbers on a
            # list (a STOP) or change a balance (a refund).
            refused = till = None
            for i, job in enumerate(jobs):
                if type(job) is _Insert:
                    if till is None:
                        inserts = list(itertools.takewhile(_is_insert, jobs[i:]))
                        wanted = self._wanted(inserts)
                        refused = optouts.blocked(conn, wanted) if wanted else set()
                        till = credit.Till(cursor, postgresql, self._accounts(inserts))
                    numbered, ids = self._number(job, refused, till)
                    rows += numbered
                    done.append((job.callback, ids))
                    continue
                if rows:  # keep arrival order: earlier inserts go in first
                    messages.insert_rows(conn, rows)
                    rows = []
                if till is not None:
                    self._alert(done, till.close(cursor, postgresql))
                    refused = till = None
                if isolate:
                    try:
                        with conn.begin_nested():
                            result = job.fn(conn, *job.args, **job.kwargs)
                    except Exception:
                        result = Failure()
                else:
                    try:
                        result = job.fn(conn, *job.args, **job.kwargs)
                    except Exception as e:
                        raise _JobFailed() from e
                done.append((job.callback, result))
            if rows:
                messages.insert_rows(conn, rows)
            if till is not None:
                self._alert(done, till.close(cursor, postgresql))
            cursor.close()
        return done

    def _alert(self, done: list, crossed: list) -> None:
        if crossed and self.low_balance is not None:
            done.append((self.low_balance, crossed))

    def _deliver(self, done: list[tuple[Callable, Any]]) -> None:
        for callback, result in done:
            try:
                callback(result)
            except Exception:
                _log.failure("a store callback failed")
        if self._after_batch is not None:
            self._after_batch()
