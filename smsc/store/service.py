"""`Store`: what the rest of smsc holds of the database. Writes go through the group-commit
writer thread; reads (and password checks) run on a small thread pool of their own. The
reactor thread never waits on either."""

from collections.abc import Callable

from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

from .db import CONNECT_TIMEOUT, check_schema, make_engine
from .writer import Writer


class Store:
    def __init__(
        self,
        url: str,
        reactor,
        statement_timeout: float = 0.0,
        connect_timeout: int = CONNECT_TIMEOUT,
    ):
        """`statement_timeout`, `connect_timeout`: PostgreSQL's, in seconds (smsc.store.db)."""
        self.engine = make_engine(url, statement_timeout, connect_timeout)
        self._reactor = reactor
        self._after_batch: list[Callable[[], None]] = []
        self.writer = Writer(self.engine, reactor, after_batch=self._run_after_batch)
        self._pool = ThreadPool(minthreads=1, maxthreads=4, name="smsc-store-read")

    def start(self) -> None:
        """Refuses (SchemaBehind) a database whose schema is not the code's."""
        check_schema(self.engine)
        self.writer.start()
        self._pool.start()

    def stop(self) -> Deferred:
        d = self.writer.stop()
        d.addBoth(self._stopped)
        return d

    def _stopped(self, result):
        self._pool.stop()
        self.engine.dispose()
        return result

    def after_batch(self, hook: Callable[[], None]) -> None:
        """Call `hook` on the reactor after each batch of writer results has been handed out
        (the server flushes its sessions there: one write per connection per batch)."""
        self._after_batch.append(hook)

    def _run_after_batch(self) -> None:
        for hook in self._after_batch:
            hook()

    def read(self, fn: Callable, *args, **kwargs) -> Deferred:
        """Run `fn(connection, *args, **kwargs)` on the read pool."""
        return deferToThreadPool(self._reactor, self._pool, self._read, fn, args, kwargs)

    def _read(self, fn, args, kwargs):
        with self.engine.connect() as conn:
            return fn(conn, *args, **kwargs)

    def insert(
        self,
        rows: list[tuple],
        callback: Callable,
        hashes: list | None = None,
        parts: int = 1,
        multi: bool = True,
    ) -> None:
        self.writer.insert(rows, callback, hashes, parts, multi)

    def write(self, fn: Callable, *args, **kwargs) -> Deferred:
        return self.writer.call(fn, *args, **kwargs)
