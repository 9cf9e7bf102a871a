"""The opt-out list: who said STOP, to which account (or to everyone, on the global list).

A number is kept only as an HMAC-SHA256 of its E.164 form under a key of the switch (from the
config, else generated once and kept in `settings`): the list answers "is this number on it?"
and cannot be turned back into numbers without the key. Entries are purged after the
retention (CNIL: at least three years); a new STOP starts the time again.
"""

import functools
import hashlib
import hmac
from collections.abc import Callable

from sqlalchemy import Connection, bindparam, delete, func, insert, select, update

from . import keys
from .db import chunks
from .schema import optouts

GLOBAL = 0  # the scope of the admin's global list; an account's list has its id
_KEY = "optout_hash_key"
_BLOCK = 64  # SHA-256's block size, in octets


def hash_key(conn: Connection, configured: str | None = None) -> bytes:
    """The HMAC key: the configured one, else the store's, made on first use."""
    if configured:
        return configured.encode()
    return keys.secret(conn, _KEY)


def digest(key: bytes, number: str) -> bytes:
    """The list's form of an E.164 number (digits, no +)."""
    return hmac.new(key, number.encode(), hashlib.sha256).digest()


def hasher(key: bytes) -> Callable[[str], bytes]:
    """`digest` under one key, for the accept path: HMAC (RFC 2104) with the key's inner and
    outer SHA-256 states made once and copied per number, without the hmac module's Python
    wrapper (1.6 µs a number instead of 2.2 here)."""
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(_BLOCK, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))

    def digest(number: str) -> bytes:
        h = inner.copy()
        h.update(number.encode())
        o = outer.copy()
        o.update(h.digest())
        return o.digest()

    return digest


def add(conn: Connection, scope: int, hashes: list[bytes], origin: str, now: float) -> int:
    """Put numbers on a list (again: their time starts over). Returns how many were new."""
    hashes = list(dict.fromkeys(hashes))
    known = set()
    for chunk in chunks(hashes):
        known.update(
            conn.execute(
                select(optouts.c.number_hash).where(
                    optouts.c.scope == scope, optouts.c.number_hash.in_(chunk)
                )
            ).scalars()
        )
    new = [h for h in hashes if h not in known]
    if known:
        for chunk in chunks(list(known)):
            conn.execute(
                update(optouts)
                .where(optouts.c.scope == scope, optouts.c.number_hash.in_(chunk))
                .values(created_at=now)
            )
    if new:
        conn.execute(
            insert(optouts),
            [{"number_hash": h, "scope": scope, "origin": origin, "created_at": now} for h in new],
        )
    return len(new)


def remove(conn: Connection, scope: int, number_hash: bytes) -> bool:
    result = conn.execute(
        delete(optouts).where(optouts.c.scope == scope, optouts.c.number_hash == number_hash)
    )
    return result.rowcount > 0


def scopes_of(conn: Connection, number_hash: bytes) -> list[int]:
    """The lists a number is on (GLOBAL and account ids)."""
    query = select(optouts.c.scope).where(optouts.c.number_hash == number_hash)
    return sorted(conn.execute(query.order_by(optouts.c.scope)).scalars())


def blocked(conn: Connection, wanted: list[tuple[int, bytes]]) -> set[tuple[int, bytes]]:
    """Which (account id, number hash) pairs are refused: on that account's list or on the
    global one. One query per few hundred pairs: the accept path asks once per batch."""
    if conn.dialect.name == "sqlite":  # the statements the writer's fast path keeps prepared
        cursor = conn.connection.dbapi_connection.cursor()
        try:
            return blocked_sqlite(cursor, wanted)
        finally:
            cursor.close()
    hashes = list({h for _, h in wanted})
    found = []
    for chunk in chunks(hashes):
        found += conn.execute(_LOOKUP, {"hashes": chunk}).all()
    return refused(wanted, found)


def blocked_sqlite(cursor, wanted: list[tuple[int, bytes]]) -> set[tuple[int, bytes]]:
    """`blocked` on a bare sqlite3 cursor, for the writer's fast path (no SQLAlchemy
    transaction there). The IN lists come in a few fixed sizes, padded with a repeated hash,
    so that their statements stay prepared in the driver's cache beside the INSERTs."""
    hashes = list({h for _, h in wanted})
    found = []
    for chunk in chunks(hashes, _IN_SIZES[-1]):
        size = next(n for n in _IN_SIZES if n >= len(chunk))
        chunk += [chunk[-1]] * (size - len(chunk))
        found += cursor.execute(_lookup_sqlite(size), chunk).fetchall()
    return refused(wanted, found)


_IN_SIZES = (8, 64, 512)


@functools.cache
def _lookup_sqlite(size: int) -> str:
    return f"SELECT number_hash, scope FROM optouts WHERE number_hash IN ({', '.join('?' * size)})"


def refused(wanted, found) -> set[tuple[int, bytes]]:
    """The wanted (account, hash) pairs that the found (hash, scope) entries refuse."""
    scopes: dict[bytes, set[int]] = {}
    for number_hash, scope in found:
        scopes.setdefault(bytes(number_hash), set()).add(scope)
    return {
        (account, h)
        for account, h in wanted
        if (on := scopes.get(h)) and (GLOBAL in on or account in on)
    }


def purge(conn: Connection, before: float) -> int:
    """Forget entries older than the retention."""
    return conn.execute(delete(optouts).where(optouts.c.created_at < before)).rowcount


def count(conn: Connection, scope: int) -> int:
    """How many numbers are on a list (an account's page shows its own)."""
    return conn.execute(select(func.count()).where(optouts.c.scope == scope)).scalar()


def stats(conn: Connection) -> list[tuple[int, int, float, float]]:
    """Per list: (scope, entries, oldest, newest)."""
    query = (
        select(
            optouts.c.scope,
            func.count(),
            func.min(optouts.c.created_at),
            func.max(optouts.c.created_at),
        )
        .group_by(optouts.c.scope)
        .order_by(optouts.c.scope)
    )
    return [tuple(row) for row in conn.execute(query)]


def export(conn: Connection, scope: int | None = None):
    """(hash, scope, origin, created_at) rows, oldest first: hashes only, never numbers."""
    query = select(optouts.c.number_hash, optouts.c.scope, optouts.c.origin, optouts.c.created_at)
    if scope is not None:
        query = query.where(optouts.c.scope == scope)
    for row in conn.execute(query.order_by(optouts.c.created_at)):
        yield tuple(row)


_LOOKUP = select(optouts.c.number_hash, optouts.c.scope).where(
    optouts.c.number_hash.in_(bindparam("hashes", expanding=True))
)
