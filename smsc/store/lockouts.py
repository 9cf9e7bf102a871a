"""Bind lockouts (smsc.limits): written by the node where one starts, read by every node every
few seconds, listed and lifted by the CLI. A row past its `until` is over (and purged)."""

from dataclasses import dataclass

from sqlalchemy import Connection, delete, select
from sqlalchemy.dialects import postgresql, sqlite

from .schema import lockouts

ACCOUNT, ADDRESS = "account", "address"
KINDS = (ACCOUNT, ADDRESS)


@dataclass(frozen=True, slots=True)
class Lockout:
    kind: str  # account (key: a system_id) or address (key: an IP address, or an IPv6 /64)
    key: str
    since: float
    until: float
    failures: int


def record(conn: Connection, kind: str, key: str, since: float, until: float, failures: int):
    """Start (or extend) a lockout; two nodes may record the same one at once."""
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    values = {"since": since, "until": until, "failures": failures}
    statement = insert(lockouts).values(kind=kind, key=key, **values)
    conn.execute(statement.on_conflict_do_update(index_elements=["kind", "key"], set_=values))


def active(conn: Connection, now: float) -> list[Lockout]:
    """The lockouts not over at `now`, by kind and key."""
    query = select(lockouts).where(lockouts.c.until > now)
    rows = conn.execute(query.order_by(lockouts.c.kind, lockouts.c.key))
    return [Lockout(**row._mapping) for row in rows]


def lift(conn: Connection, kind: str, key: str, now: float) -> bool:
    """End a lockout now; False when there was none in force."""
    where = (lockouts.c.kind == kind, lockouts.c.key == key)
    until = conn.execute(select(lockouts.c.until).where(*where)).scalar()
    conn.execute(delete(lockouts).where(*where))
    return until is not None and until > now


def purge(conn: Connection, now: float) -> int:
    """Forget the lockouts that are over."""
    return conn.execute(delete(lockouts).where(lockouts.c.until <= now)).rowcount
