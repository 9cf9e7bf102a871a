"""The outbox: deliver_sm waiting for a client (receipts now, subscriber replies later).

A row is PENDING until a node with a receiver bind of its account claims it (SENDING); the
client's deliver_sm_resp makes it DONE, a failure makes it PENDING again a little later, and
one that waited longer than the retention ends EXPIRED. At-least-once: rows a node left SENDING
go back to PENDING when it starts again, or when another node finds it dead (store.nodes).
"""

from dataclasses import dataclass

from sqlalchemy import Connection, bindparam, select, update

from .db import NODE, insert_rows
from .notify import OUTBOX, notify
from .prepared import Prepared
from .schema import outbox

PENDING, SENDING, DONE, EXPIRED = "PENDING", "SENDING", "DONE", "EXPIRED"


@dataclass(frozen=True, slots=True)
class Item:
    id: int
    account_id: int
    source_ton: int
    source_npi: int
    source: str
    destination: str
    esm_class: int
    data_coding: int
    body: bytes
    tlvs: bytes


# A new row's values, in this order; it starts PENDING with no attempt.
NEW = (
    "account_id", "message_id", "source_ton", "source_npi", "source", "destination",
    "esm_class", "data_coding", "body", "tlvs", "created_at", "due_at", "expires_at", "url",
)  # fmt: skip
_COLUMNS = (*NEW, "state", "attempts")


def add(conn: Connection, rows: list[tuple]) -> None:
    """Queue deliver_sm for clients (rows of `NEW` values). Through the driver: a Core
    statement's per-row work costs more than the insert itself."""
    insert_rows(conn, "outbox", _COLUMNS, [(*row, PENDING, 0) for row in rows])
    notify(conn, OUTBOX)


def claim(conn: Connection, account_ids: list[int], now: float, limit: int) -> list[Item]:
    """Up to `limit` due deliver_sm rows of these accounts, oldest first, marked SENDING. Rows
    past their retention are expired on the way."""
    rows = _claim(conn, "deliver_sm", {"now": now, "limit": limit, "accounts": account_ids})
    return [Item(*row) for row in rows]


@dataclass(frozen=True, slots=True)
class Callback:
    """A receipt (or a subscriber's reply: no message_id) for a channel other than SMPP: to
    POST to `url`, or to mail (mailto:)."""

    id: int
    account_id: int
    message_id: int | None
    source: str  # the subscriber's number
    destination: str  # the sender the message went from; the address a reply went to
    data_coding: int
    tlvs: bytes  # a receipt's receipted_message_id, message_state, network_error_code
    body: bytes  # the receipt's appendix B text; the reply's text
    created_at: float
    attempts: int
    url: str


def claim_callbacks(conn: Connection, now: float, limit: int) -> list[Callback]:
    """Up to `limit` due rows that go by URL, oldest first, marked SENDING."""
    return [Callback(*row) for row in _claim(conn, "callback", {"now": now, "limit": limit})]


# The statements of claiming, built once (building them costs more than running them on the
# receipts' path): PENDING rows past their retention expire, then due ones are marked SENDING.
_EXPIRE = Prepared(
    update(outbox)
    .where(outbox.c.state == PENDING, outbox.c.expires_at <= bindparam("now"))
    .values(state=EXPIRED)
)
_KINDS = {  # which rows, and what a claim returns of them
    "deliver_sm": (
        [outbox.c.account_id.in_(bindparam("accounts", expanding=True)), outbox.c.url.is_(None)],
        [outbox.c[name] for name in Item.__slots__],
    ),
    "callback": ([outbox.c.url.is_not(None)], [outbox.c[name] for name in Callback.__slots__]),
}


def _claiming(where: list, columns: list) -> Prepared:
    # (PostgreSQL: skipping the rows another node is claiming; SQLite has one writer.)
    due = (
        select(outbox.c.id)
        .where(outbox.c.state == PENDING, outbox.c.due_at <= bindparam("now"), *where)
        .order_by(outbox.c.id)
        .limit(bindparam("limit"))
        .with_for_update(skip_locked=True)
    )
    return Prepared(
        update(outbox)
        .where(outbox.c.id.in_(due.scalar_subquery()))
        .values(state=SENDING, attempts=outbox.c.attempts + 1, node_id=bindparam("node"))
        .returning(*columns)
    )


_CLAIMING = {kind: _claiming(where, columns) for kind, (where, columns) in _KINDS.items()}


def _claim(conn: Connection, kind: str, params: dict) -> list:
    _EXPIRE(conn, params)
    rows = _CLAIMING[kind](conn, {**params, "node": conn.info.get(NODE)})
    return sorted(rows, key=lambda row: row.id)


def done(conn: Connection, ids: list[int]) -> None:
    _DONE(conn, {"ids": ids})


def retry(conn: Connection, ids: list[int], due_at: float) -> None:
    _RETRY(conn, {"ids": ids, "due_at": due_at})


_IDS = outbox.c.id.in_(bindparam("ids", expanding=True))
_DONE = Prepared(update(outbox).where(_IDS).values(state=DONE))
_RETRY = Prepared(
    update(outbox)
    .where(_IDS, outbox.c.state == SENDING)
    .values(state=PENDING, due_at=bindparam("due_at"))
)


def of_message(conn: Connection, account_id: int, message_id: int) -> list[dict]:
    """The deliver_sm queued for a client about one of its messages (its receipts), oldest
    first, without their bodies (`smsc message show`)."""
    columns = [outbox.c[c] for c in ("id", "created_at", "state", "attempts", "expires_at")]
    rows = conn.execute(
        select(*columns)
        .where(outbox.c.account_id == account_id, outbox.c.message_id == message_id)
        .order_by(outbox.c.id)
    )
    return [dict(row._mapping) for row in rows]
