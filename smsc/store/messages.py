"""Messages: the queue rows, their states, and the operations clients and admins run on them."""

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import Connection, Integer, func, or_, select, update

from ..protocol import concat
from ..protocol.constants import MessageState, Status
from . import credit
from .db import insert_many
from .notify import QUEUE, notify
from .schema import ID_BLOCK, message_parts, messages


class State(StrEnum):
    ACCEPTED = "ACCEPTED"  # committed, waiting in the queue for its due time
    SENDING = "SENDING"  # claimed by a dispatcher, on its way to a carrier
    ENROUTE = "ENROUTE"  # a carrier took it; waiting for its receipt
    DELIVERED = "DELIVERED"
    EXPIRED = "EXPIRED"
    DELETED = "DELETED"  # cancelled by the client or an admin
    UNDELIVERABLE = "UNDELIVERABLE"
    REJECTED = "REJECTED"
    UNKNOWN = "UNKNOWN"


# States in which a message has not left for a carrier: cancel and replace act only here.
WAITING = (State.ACCEPTED,)
FINAL = frozenset(
    {
        State.DELIVERED,
        State.EXPIRED,
        State.DELETED,
        State.UNDELIVERABLE,
        State.REJECTED,
        State.UNKNOWN,
    }
)
# query_sm_resp message_state (spec 5.2.28): everything short of a final state is ENROUTE.
SMPP_STATE = {
    State.ACCEPTED: MessageState.ENROUTE,
    State.SENDING: MessageState.ENROUTE,
    State.ENROUTE: MessageState.ENROUTE,
    State.DELIVERED: MessageState.DELIVERED,
    State.EXPIRED: MessageState.EXPIRED,
    State.DELETED: MessageState.DELETED,
    State.UNDELIVERABLE: MessageState.UNDELIVERABLE,
    State.REJECTED: MessageState.REJECTED,
    State.UNKNOWN: MessageState.UNKNOWN,
}

# The order of the values in a row handed to `insert_rows` (the writer puts the id first).
COLUMNS = (
    "id",
    "account_id",
    "service_type",
    "source_ton",
    "source_npi",
    "source",
    "destination",
    "esm_class",
    "protocol_id",
    "priority",
    "registered_delivery",
    "data_coding",
    "body",
    "tlvs",
    "submitted_at",
    "due_at",
    "expires_at",
    "state",
    "updated_at",
    "origin",
    "callback",
    "multi_id",
)
ORIGIN_CLIENT, ORIGIN_SWITCH = 0, 1  # a client's message, or the switch's automatic reply


@dataclass(frozen=True, slots=True)
class Message:
    id: int
    account_id: int
    service_type: str
    source_ton: int
    source_npi: int
    source: str
    destination: str
    esm_class: int
    protocol_id: int
    priority: int
    registered_delivery: int
    data_coding: int
    body: bytes
    tlvs: bytes
    submitted_at: float
    due_at: float
    expires_at: float
    state: State
    updated_at: float
    multi_id: int | None
    carrier: str | None
    attempts: int
    error: int | None
    origin: int = 0  # ORIGIN_CLIENT, or ORIGIN_SWITCH for an automatic reply
    node_id: int | None = None  # the node that claimed it last
    callback: str | None = None  # where its receipt goes, when not to an SMPP bind


def _check_field_order() -> None:
    """Rows of select(messages) are Message's fields in order, so Message(*row) builds one (a
    row's _mapping costs more than its query on the receipts' path)."""
    columns = tuple(column.name for column in messages.c)
    if columns != Message.__slots__:
        raise RuntimeError(f"Message fields {Message.__slots__} != columns {columns}")


_check_field_order()


def insert_rows(conn: Connection, rows: list[tuple]) -> None:
    """Insert whole rows (values in COLUMNS order): the hot path. Plain DBAPI statements, since
    Core insert() with dicts halves the rate."""
    if conn.dialect.name == "sqlite":
        insert_sqlite(conn.connection.dbapi_connection, rows)
    else:
        marks = ", ".join(["%s"] * len(COLUMNS))
        conn.exec_driver_sql(f"INSERT INTO messages ({', '.join(COLUMNS)}) VALUES ({marks})", rows)
        notify(conn, QUEUE)


ALLOCATE = "smsc.allocate"  # the writer connection's id allocator, in Connection.info


def add(conn: Connection, rows: list[tuple]) -> list[int]:
    """Store rows (COLUMNS without id and multi_id) from inside a writer job, numbered like
    the writer's own inserts: an automatic reply goes in with what caused it."""
    first = conn.info[ALLOCATE](len(rows))
    insert_rows(conn, [(first + i, *row, None) for i, row in enumerate(rows)])
    return list(range(first, first + len(rows)))


def insert_sqlite(dbapi_connection, rows: list[tuple]) -> None:
    cursor = dbapi_connection.cursor()
    insert_many(cursor, False, "messages", COLUMNS, rows)
    cursor.close()


def next_id(conn: Connection) -> int:
    return (conn.execute(select(func.max(messages.c.id))).scalar() or 0) + 1


def catch_up_sequence(conn: Connection) -> None:
    """PostgreSQL: move the id sequence past rows stored without it (an import, a restore),
    never back, and never into a block a node may be using."""
    conn.exec_driver_sql(
        "SELECT setval('message_ids', s.m, false) "
        "FROM (SELECT MAX(id) + 1 AS m FROM messages) AS s, message_ids AS q "
        f"WHERE s.m > CASE WHEN q.is_called THEN q.last_value + {ID_BLOCK} ELSE q.last_value END"
    )


def get(conn: Connection, message_id: int) -> Message | None:
    row = conn.execute(select(messages).where(messages.c.id == message_id)).first()
    return Message(*row) if row else None


def _by_id(message_id: int):
    """The message a client knows by this id: one row, or every row of a submit_multi."""
    return or_(messages.c.id == message_id, messages.c.multi_id == message_id)


def unindexed(column):
    """`column` in a form no index can serve (`state || ''`, `account_id + 0`: SQLite's
    `+column` idiom, portably), to filter rows that are looked up by id. Without statistics
    SQLite takes `state = ?` for a selective term, and would walk the queue index through
    every waiting message (some 200 ms at a million queued) rather than fetch the few ids."""
    return column + (0 if isinstance(column.type, Integer) else "")


def by_client_id(conn: Connection, message_id: int) -> list[Message]:
    rows = conn.execute(select(messages).where(_by_id(message_id)).order_by(messages.c.id))
    return [Message(*row) for row in rows]


def listing(
    conn: Connection,
    account_id: int,
    states: list[str] | None = None,
    limit: int = 50,
    before: int | None = None,
) -> list[Message]:
    """The account's messages, newest first: `limit` of them, with ids below `before` when
    given (the next page), in these states when given. Walks the ids down from the newest: a
    quiet account among busy ones costs a longer walk (no (account_id, id) index, which would
    cost every submit)."""
    query = select(messages).where(messages.c.account_id == account_id)
    if states:
        query = query.where(messages.c.state.in_(states))
    if before is not None:
        query = query.where(messages.c.id < before)
    rows = conn.execute(query.order_by(messages.c.id.desc()).limit(limit))
    return [Message(*row) for row in rows]


def overall(rows: list[Message]) -> tuple[State, float]:
    """The state of what a client knows by one id, and since when: a submit_multi is pending
    while any of its destinations is, then DELIVERED if all were, else its first failure."""
    pending = [m for m in rows if m.state not in FINAL]
    if pending:
        return pending[0].state, max(m.updated_at for m in rows)
    failed = [m for m in rows if m.state != State.DELIVERED]
    return (failed or rows)[0].state, max(m.updated_at for m in rows)


def _own_waiting(account_id: int) -> list:
    """The account's waiting messages, as a filter on rows found by id (or multi_id)."""
    return [
        unindexed(messages.c.account_id) == account_id,
        unindexed(messages.c.state).in_(WAITING),
    ]


def cancel(
    conn: Connection,
    account_id: int,
    now: float,
    *,
    message_id: int | None = None,
    service_type: str = "",
    source: str = "",
    destination: str = "",
) -> int:
    """Cancel the account's waiting messages: one by id, or all to a destination; narrowed by
    source and service_type when given. Returns how many were cancelled."""
    if message_id is None and not destination:
        raise ValueError("cancel needs a message id or a destination")
    if message_id is not None:  # 0 is an id (of no message), not "any message"
        where = [*_own_waiting(account_id), _by_id(message_id)]
    else:  # the account's messages to a destination: by messages_account_destination
        where = [messages.c.account_id == account_id, unindexed(messages.c.state).in_(WAITING)]
    for column, value in (
        (messages.c.destination, destination),
        (messages.c.source, source),
        (messages.c.service_type, service_type),
    ):
        if value:
            where.append(column == value)
    return _cancel(conn, where, now)


def _cancel(conn: Connection, where: list, now: float) -> int:
    """Cancel the messages `where` finds, and give back what they cost."""
    ids = conn.execute(
        update(messages)
        .where(*where)
        .values(state=State.DELETED, updated_at=now)
        .returning(messages.c.id)
    ).scalars().all()  # fmt: skip
    credit.refund(conn, ids, credit.CANCELLED, now)
    return len(ids)


def waiting_ids(conn: Connection, account_id: int, service_type: str = "") -> list[int]:
    """The account's messages that have not left (for an admin's bulk cancel)."""
    where = [messages.c.state.in_(WAITING), messages.c.account_id == account_id]
    if service_type:
        where.append(messages.c.service_type == service_type)
    return conn.execute(select(messages.c.id).where(*where).order_by(messages.c.id)).scalars().all()


def cancel_ids(conn: Connection, ids: list[int], now: float) -> int:
    return _cancel(conn, [messages.c.id.in_(ids), unindexed(messages.c.state).in_(WAITING)], now)


def replace(
    conn: Connection,
    account_id: int,
    message_id: int,
    now: float,
    *,
    source: str,
    body: bytes,
    registered_delivery: int,
    due_at: float | None,
    expires_at: float | None,
    check_body: Callable[[bytes, int, int], int],
) -> int:
    """Replace the text (and the times, when given) of a waiting message of the account (all
    waiting rows of a submit_multi when that is its id), sent
    from `source` when that is given. `check_body(body, data_coding, esm_class)` judges the new
    text against the message's coding. Returns 0, or why not: RREPLACEFAIL when there is no
    such message, RINVEXPIRY when the new times end its validity before it is due, or the
    status `check_body` gave."""
    where = [_by_id(message_id), *_own_waiting(account_id)]
    if source:
        where.append(messages.c.source == source)
    row = conn.execute(
        select(
            messages.c.due_at, messages.c.expires_at, messages.c.data_coding, messages.c.esm_class
        ).where(*where)
    ).first()  # the rows of a submit_multi share their text, coding and times
    if row is None:
        return Status.RREPLACEFAIL
    status = check_body(body, row.data_coding, row.esm_class)
    if status:
        return status
    due_at = row.due_at if due_at is None else due_at
    expires_at = row.expires_at if expires_at is None else expires_at
    if expires_at <= due_at:
        return Status.RINVEXPIRY
    try:
        parts = concat.count(body, row.data_coding, row.esm_class)
    except ValueError:
        return Status.RINVMSGLEN
    waiting = conn.execute(select(messages.c.id, messages.c.destination).where(*where)).all()
    if not credit.reprice(conn, waiting, parts, now):
        return Status.RNOCREDIT
    conn.execute(
        update(messages)
        .where(*where)
        .values(
            body=body,
            registered_delivery=registered_delivery,
            due_at=due_at,
            expires_at=expires_at,
            updated_at=now,
        )
    )
    return Status.ROK


def count_by_state(conn: Connection) -> dict[str, int]:
    rows = conn.execute(select(messages.c.state, func.count()).group_by(messages.c.state))
    return dict(rows.all())


def parts_of(conn: Connection, message_id: int) -> list[dict]:
    """The parts of a message as sent to its carrier, in order (`smsc message show`)."""
    rows = conn.execute(
        select(message_parts)
        .where(message_parts.c.message_id == message_id)
        .order_by(message_parts.c.seq)
    )
    return [dict(row._mapping) for row in rows]
