"""The store under the tests: which database they run on (`PG_URL`), and a synchronous
stand-in for `smsc.store.service.Store`, for tests that drive the dispatcher, the outbox
sender or the acceptor on a `Clock` with a real database underneath."""

import os

import pytest
from twisted.internet import defer

from smsc.store import messages
from smsc.store.db import writing

# Set by the tox env `pg`: the tests that use the store run on PostgreSQL (see conftest).
PG_URL = os.environ.get("SMSC_TEST_PG_URL")
sqlite_only = pytest.mark.skipif(bool(PG_URL), reason="about SQLite itself")


class SyncStore:
    """`write` runs the function at once on a real connection and says what it ran; a function
    named by `hold` has its answer wait for `release`. `insert` stores rows at once."""

    def __init__(self, engine):
        self.engine = engine
        self.calls = []  # (function name, args)
        self.hold = None  # a function name whose results wait for `release`
        self.held = []

    def write(self, fn, *args, **kw):
        self.calls.append((fn.__name__, args))
        with writing(self.engine) as conn:
            result = fn(conn, *args, **kw)
        if fn.__name__ == self.hold:  # done, but the answer is slow to come back
            d = defer.Deferred()
            self.held.append((d, result))
            return d
        return defer.succeed(result)

    def insert(self, rows, callback, hashes=None, parts=1, multi=True):
        with writing(self.engine) as conn:
            first = messages.next_id(conn)
            ids = list(range(first, first + len(rows)))
            messages.insert_rows(conn, [(i, *row, None) for i, row in zip(ids, rows, strict=True)])
        callback(ids)

    def release(self):
        held, self.held = self.held, []
        for d, result in held:
            d.callback(result)

    def names(self):
        return [name for name, _ in self.calls]

    def claims(self):
        return [args for name, args in self.calls if name == "claim"]
