"""The nodes serving one store, and the slots of the limits they share.

A node joins under its name, beats a heartbeat, and holds leases: slots of a limit the whole
cluster shares (a carrier's binds, an account's binds), each held by one node at a time.
What a node claimed (messages and outbox rows SENDING) carries its id; when its heartbeat is
older than the lease, another node puts those rows back in the queue, and its leases lapse.
A node that starts again under its name takes back at once what it held before.
"""

from dataclasses import dataclass

from sqlalchemy import Connection, and_, delete, func, insert, select, text, update

from .messages import State
from .outbox import PENDING, SENDING
from .schema import leases, messages, nodes, outbox

CARRIER, ACCOUNT = "carrier", "account"  # kinds of leases


class NodeTaken(Exception):
    """A SQLite store serves one node, and another one is live on it."""


def join(conn: Connection, name: str, now: float, lease: float) -> tuple[int, tuple[int, int]]:
    """Register this node (or take its old row back) and release what it held in an earlier
    life: its claims go back to the queue at once, its leases are dropped. Returns its id, and
    how many messages and outbox rows went back."""
    row = conn.execute(select(nodes).where(nodes.c.name == name).with_for_update()).first()
    if conn.dialect.name == "sqlite":
        others = conn.execute(
            select(nodes.c.name).where(nodes.c.name != name, nodes.c.heartbeat_at > now - lease)
        ).scalars().first()  # fmt: skip
        if others is not None:
            raise NodeTaken(
                f"node {others} is serving this SQLite store: a SQLite store serves one "
                "node (share a PostgreSQL store between nodes)"
            )
    if row is None:
        node_id = conn.execute(
            insert(nodes).values(name=name, started_at=now, heartbeat_at=now)
        ).inserted_primary_key[0]
    else:
        node_id = row.id
        conn.execute(
            update(nodes).where(nodes.c.id == node_id).values(started_at=now, heartbeat_at=now)
        )
    released = release(conn, [node_id], now)
    conn.execute(delete(leases).where(leases.c.node_id == node_id))
    return node_id, released


def leave(conn: Connection, node_id: int, now: float) -> None:
    """A clean stop: what it held goes to the others now rather than after the lease."""
    release(conn, [node_id], now)
    conn.execute(delete(leases).where(leases.c.node_id == node_id))
    conn.execute(update(nodes).where(nodes.c.id == node_id).values(heartbeat_at=0.0))


def release(conn: Connection, node_ids: list[int], now: float) -> tuple[int, int]:
    """The messages and outbox rows these nodes claimed go back to the queue (at-least-once:
    a carrier or a client may have taken some already). Returns how many of each."""
    sent = conn.execute(
        update(messages)
        .where(messages.c.state == State.SENDING, messages.c.node_id.in_(node_ids))
        .values(state=State.ACCEPTED, due_at=now, updated_at=now, node_id=None)
    ).rowcount
    delivered = conn.execute(
        update(outbox)
        .where(outbox.c.state == SENDING, outbox.c.node_id.in_(node_ids))
        .values(state=PENDING, due_at=now, node_id=None)
    ).rowcount
    return sent, delivered


@dataclass(frozen=True, slots=True)
class Beat:
    """What a heartbeat saw: the live nodes, the rows taken back from dead ones, who holds
    the slots of each shared limit, and which this node holds."""

    live: int
    reclaimed: tuple[int, int]
    held: dict[tuple[str, str], dict[int, int]]  # (kind, key) -> {node_id: slots held}
    mine: dict[tuple[str, str], list[int]]  # (kind, key) -> this node's slots


def beat(conn: Connection, node_id: int, now: float, lease: float) -> Beat:
    """This node is alive: its heartbeat and its leases are renewed, and what nodes dead for
    longer than a lease claimed goes back to the queue."""
    conn.execute(update(nodes).where(nodes.c.id == node_id).values(heartbeat_at=now))
    # A lease that ran out is not renewed: another node may be taking its slot (under the
    # take lock, which a heartbeat does not hold); this one takes it again through `take`.
    held_now = and_(leases.c.node_id == node_id, leases.c.expires_at > now)
    conn.execute(update(leases).where(held_now).values(expires_at=now + lease))
    alive = nodes.c.heartbeat_at > now - lease
    dead = conn.execute(select(nodes.c.id).where(~alive)).scalars().all()
    reclaimed = release(conn, dead, now) if dead else (0, 0)
    live = conn.execute(select(func.count()).select_from(nodes).where(alive)).scalar()
    held: dict[tuple[str, str], dict[int, int]] = {}
    mine: dict[tuple[str, str], list[int]] = {}
    query = select(leases.c.kind, leases.c.key, leases.c.slot, leases.c.node_id).where(
        leases.c.expires_at > now
    )
    for kind, key, slot, holder in conn.execute(query):
        counts = held.setdefault((kind, key), {})
        counts[holder] = counts.get(holder, 0) + 1
        if holder == node_id:
            mine.setdefault((kind, key), []).append(slot)
    return Beat(live, reclaimed, held, mine)


def take(
    conn: Connection, node_id: int, kind: str, key: str, limit: int, now: float, lease: float
) -> int | None:
    """A free slot of the `limit` this kind and key allow, leased to this node: its number,
    or None when every slot is held. A slot whose lease ran out is free."""
    if conn.dialect.name == "postgresql":  # two nodes never count the same free slot
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"{kind}:{key}"})
    taken = conn.execute(
        select(leases.c.slot, leases.c.expires_at).where(leases.c.kind == kind, leases.c.key == key)
    ).all()
    busy = {slot for slot, expires_at in taken if expires_at > now}
    free = next((slot for slot in range(limit) if slot not in busy), None)
    if free is None:
        return None
    lapsed = and_(leases.c.kind == kind, leases.c.key == key, leases.c.slot == free)
    conn.execute(delete(leases).where(lapsed))
    conn.execute(
        insert(leases).values(
            kind=kind, key=key, slot=free, node_id=node_id, expires_at=now + lease
        )
    )
    return free


def give_back(conn: Connection, node_id: int, kind: str, key: str, slot: int) -> None:
    conn.execute(
        delete(leases).where(
            leases.c.kind == kind,
            leases.c.key == key,
            leases.c.slot == slot,
            leases.c.node_id == node_id,
        )
    )
