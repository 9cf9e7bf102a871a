"""When the store fails: which failures are transient (the store is gone, full, locked or too
slow: the same work may succeed later), how they are named in a log line, and the quiet log
of a loop that keeps trying through an outage.

What a client is told (README, "Faults and shutdown"): a submit that a transient failure
prevented is answered ESME_RMSGQFUL (try again later); any other failure ESME_RSYSERR.
"""

import sqlite3

from sqlalchemy import exc
from twisted.logger import Logger
from twisted.python.failure import Failure

_log = Logger()

try:  # the pg extra, which a SQLite install may lack
    import psycopg

    _DRIVER = (sqlite3.OperationalError, psycopg.OperationalError, psycopg.InterfaceError)
except ImportError:  # pragma: no cover
    _DRIVER = (sqlite3.OperationalError,)

# SQLAlchemy's wrappers of the drivers' "operational" errors (connection lost or refused,
# disk full, database locked, statement timeout, server shutting down) and its pool timeout.
_WRAPPED = (exc.OperationalError, exc.InterfaceError, exc.TimeoutError, exc.DisconnectionError)


class StoreUnavailable(Exception):
    """The writer has no connection to the store: it lost it, or cannot open one, and is
    waiting a moment before it tries again. Nothing of the work was stored."""


_TRANSIENT = (StoreUnavailable, *_WRAPPED, *_DRIVER)


def transient(error: BaseException | Failure) -> bool:
    """Whether a store failure is one the same work may get past later (the store is back,
    has room again, the lock is gone), rather than a mistake in the work itself."""
    if isinstance(error, Failure):
        error = error.value
    if isinstance(error, _TRANSIENT):
        return True
    return bool(getattr(error, "connection_invalidated", False))


def describe(error: BaseException | Failure) -> str:
    """One line about a store failure, for a log line: the driver's own first line (never
    SQLAlchemy's text, which carries the statement's parameters: numbers and texts)."""
    if isinstance(error, Failure):
        error = error.value
    cause = getattr(error, "orig", None) or error
    lines = str(cause).strip().splitlines()
    text = lines[0].strip() if lines else ""
    name = type(cause).__name__
    return f"{name}: {text[:200]}" if text else name


class Quiet:
    """The log of a loop that retries through store outages (claims, records): the first
    transient failure of a run of them is one warning, its end one line; any other failure
    is logged in full each time."""

    def __init__(self, what: str, log: Logger = _log):
        self.what = what
        self.log = log  # the loop's own (its namespace names it in the log line)
        self.failing = 0  # transient failures since the last success

    def failed(self, failure: Failure, what: str | None = None) -> bool:
        """Log a failure (of `what`, by default the loop's); whether it was transient (worth
        trying again)."""
        what = what or self.what
        if not transient(failure):
            self.log.failure("{what} failed", failure, what=what)
            return False
        if not self.failing:
            self.log.warn(
                "{what} failed, store unavailable ({error}): trying again",
                what=what,
                error=describe(failure),
            )
        self.failing += 1
        return True

    def succeeded(self) -> None:
        if self.failing:
            self.log.info("{what} works again after {n} failures", what=self.what, n=self.failing)
            self.failing = 0
