"""The queue's moves, as the dispatcher and the receipt handler make them: claim what is due,
record what carriers took, put back what did not go, and settle messages from their receipts
(queueing the client's own receipt in the outbox when it asked for one)."""

from collections.abc import Callable
from dataclasses import dataclass
from itertools import zip_longest

from sqlalchemy import Connection, bindparam, case, func, select, text, update

from ..protocol.constants import ESM_RECEIPT, Status
from . import credit, optouts, outbox
from .db import NODE, chunks, insert_rows
from .messages import FINAL, ORIGIN_CLIENT, Message, State, unindexed
from .prepared import Prepared
from .schema import message_parts, messages

# How bad a final state is, to settle a message whose parts ended differently.
_SEVERITY = {
    State.DELIVERED: 0,
    State.UNKNOWN: 1,
    State.DELETED: 2,
    State.EXPIRED: 3,
    State.UNDELIVERABLE: 4,
    State.REJECTED: 5,
}


@dataclass(frozen=True, slots=True)
class Due:
    """A claimed message, with what the dispatcher needs to send it."""

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
    due_at: float
    origin: int
    ported_to: str | None


_DUE_COLUMNS = [messages.c[name] for name in Due.__slots__ if name != "ported_to"]


def claim(
    conn: Connection, now: float, limit: int, ported, how: "Settle", first: int = 0
) -> list[Due]:
    """Take up to `limit` due messages and mark them SENDING, shared fairly between the
    accounts that have some due: one account's campaign does not hold back another's single
    message. Each account's oldest due first; the result alternates between accounts, the
    accounts taken in turn from the first whose id is `first` or more (the dispatcher moves
    it on from claim to claim, so that when `limit` is less than the accounts with messages
    due, the low ids do not take every claim). Messages found past their validity are
    expired on the way (with a receipt when asked). `ported` (numbers → {number: carrier})
    is asked once for the whole batch."""
    ids = _fair_share(conn, now, limit, first)
    if not ids:
        return []
    rows = _CLAIM(conn, {"ids": ids, "now": now, "node": conn.info.get(NODE)})
    expired = [row.id for row in rows if row.expires_at <= now]
    if expired:
        expire(conn, expired, how)
        rows = [row for row in rows if row.expires_at > now]
    if how.optout_key is not None:
        stopped = _opted_out(conn, rows, how.optout_key)
        if stopped:
            refuse(conn, stopped, Status.ROPTEDOUT, how)
            rows = [row for row in rows if row.id not in stopped]
    if not rows:
        return []
    # A message sent again starts over: the parts of an earlier, cut attempt are forgotten
    # (on its first attempt it has none).
    again = [row.id for row in rows if row.attempts > 1]
    if again:
        _FORGET_PARTS(conn, {"ids": again})
    carriers = ported(conn, list({row.destination for row in rows}))
    order = {message_id: i for i, message_id in enumerate(ids)}
    rows.sort(key=lambda row: order[row.id])
    return [Due(*row[:-2], carriers.get(row.destination)) for row in rows]


# The accounts with messages waiting, found by hopping through the queue index from one
# account to the next (a loose index scan: a few lookups an account, however many messages).
_QUEUED_ACCOUNTS = Prepared(
    text(
        """
    WITH RECURSIVE queued(account_id) AS (
        SELECT MIN(account_id) FROM messages WHERE state = :state
        UNION ALL
        SELECT (SELECT MIN(m.account_id) FROM messages m
                WHERE m.state = :state AND m.account_id > queued.account_id)
        FROM queued WHERE queued.account_id IS NOT NULL
    )
    SELECT account_id FROM queued WHERE account_id IS NOT NULL
    """
    )
)


def _queued_accounts(conn: Connection) -> list[int]:
    return [account for (account,) in _QUEUED_ACCOUNTS(conn, {"state": State.ACCEPTED})]


def _fair_share(conn: Connection, now: float, limit: int, first: int = 0) -> list[int]:
    """Ids of due messages, up to `limit`: each account with due messages gets an equal share,
    and what one leaves of its share goes to the others (a few rounds), interleaved. The
    accounts are served from the first whose id is `first` or more, round the end to the
    others."""
    accounts = _queued_accounts(conn)
    turn = next((i for i, a in enumerate(accounts) if a >= first), 0)
    accounts = accounts[turn:] + accounts[:turn]
    picked: dict[int, list[int]] = {a: [] for a in accounts}
    hungry, room = list(accounts), limit
    for _ in range(3):
        if not hungry or room <= 0:
            break
        share, still = max(1, room // len(hungry)), []
        for account in hungry:
            take = min(share, room)
            if take <= 0:
                break
            asked = {"account": account, "now": now, "take": take, "skip": len(picked[account])}
            got = [message_id for (message_id,) in _DUE(conn, asked)]
            picked[account] += got
            room -= len(got)
            if len(got) == take:
                still.append(account)
        hungry = still
    return [i for row in zip_longest(*picked.values()) for i in row if i is not None]


def expire(conn: Connection, ids: list[int], how: "Settle") -> None:
    """Messages past their validity, unsent: EXPIRED, with a receipt when the client asked.
    One statement for them all: a campaign that expires is many messages at once."""
    conn.execute(
        update(messages)
        .where(messages.c.id.in_(ids))
        .values(state=State.EXPIRED, updated_at=how.now)
    )
    credit.refund(conn, ids, credit.EXPIRED, how.now)
    asked = _ASKED(conn, {"ids": ids})
    _queue_receipts(conn, [(row, State.EXPIRED, 0) for row in asked], how)


def _opted_out(conn: Connection, rows, key: bytes) -> set[int]:
    """The claimed client messages whose destination opted out since they were accepted (a
    scheduled campaign, a message held for its sending hours)."""
    pairs = {
        row.id: (row.account_id, optouts.digest(key, row.destination))
        for row in rows
        if row.origin == ORIGIN_CLIENT
    }
    blocked = optouts.blocked(conn, list(pairs.values())) if pairs else set()
    return {message_id for message_id, pair in pairs.items() if pair in blocked}


def refuse(conn: Connection, ids, status: int, how: "Settle") -> None:
    """Messages the switch will not send after all: REJECTED with `status`, and a failure
    receipt when the client asked."""
    ids = list(ids)
    for chunk in chunks(ids):
        conn.execute(
            update(messages)
            .where(messages.c.id.in_(chunk))
            .values(state=State.REJECTED, error=status, updated_at=how.now)
        )
    credit.refund(conn, ids, credit.REFUSED, how.now)
    rows = _ROWS(conn, {"ids": ids})
    _queue_receipts(conn, [(row, State.REJECTED, status) for row in rows], how)


def expire_due(conn: Connection, now: float, limit: int, how: "Settle") -> int:
    """Expire up to `limit` waiting messages past their validity without claiming anything:
    for when no carrier is bound (nothing is claimed then), so that the clients still hear of
    their expiry in time. A waiting message is due by its expiry at the latest (accept,
    replace and put_back keep due_at <= expires_at), so the due part of the queue index is
    enough to find them. Returns how many expired."""
    accounts = _queued_accounts(conn)
    ids: list[int] = []
    for account in accounts:
        if len(ids) >= limit:
            break
        ids += conn.execute(
            select(messages.c.id)
            .where(
                messages.c.state == State.ACCEPTED,
                messages.c.account_id == account,
                messages.c.due_at <= now,
                messages.c.expires_at <= now,
            )
            .limit(limit - len(ids))
        ).scalars().all()  # fmt: skip
    if ids:
        expire(conn, ids, how)
    return len(ids)


def put_back(conn: Connection, ids: list[int], due_at: float, now: float) -> None:
    """Messages that did not go (no carrier bound, a cut connection, outside their sending
    hours) wait in the queue again until `due_at` — or until they expire, if that is sooner."""
    conn.execute(
        update(messages)
        .where(
            messages.c.id.in_(ids),
            unindexed(messages.c.state) == State.SENDING,
            messages.c.node_id.is_not_distinct_from(conn.info.get(NODE)),
        )
        .values(
            state=State.ACCEPTED,
            due_at=case((messages.c.expires_at < due_at, messages.c.expires_at), else_=due_at),
            updated_at=now,
        )
    )


_PART_COLUMNS = ("message_id", "seq", "carrier", "carrier_id", "state", "sent_at", "updated_at")


def record_parts(conn: Connection, parts: list[tuple], now: float) -> None:
    """Carriers took these parts: (message_id, seq, carrier, carrier_id normalised). Through
    the driver: a Core insert's work per row costs more than the insert itself."""
    if parts:
        enroute = State.ENROUTE.value
        rows = [(*part, enroute, now, now) for part in parts]
        insert_rows(conn, "message_parts", _PART_COLUMNS, rows)


# Builds a client receipt's (short_message, TLVs) from the message, its final state, its error
# and its number of parts: the text format is the protocol's business, not the store's.
ReceiptMaker = Callable[[Message, State, int, int, float], tuple[bytes, bytes]]


@dataclass(frozen=True, slots=True)
class Settle:
    """What settling a message needs besides the database."""

    now: float
    retention: float  # how long a client receipt waits in the outbox
    receipt: ReceiptMaker
    optout_key: bytes | None = None  # the opt-out list's key: claims skip who opted out since


def record_taken(
    conn: Connection, parts: list[tuple], sent: list[tuple[int, str]], how: Settle
) -> None:
    """What carriers took since the last flush, in one go: a message must never be ENROUTE
    without the parts its receipts will be matched against. Only the parts of messages this
    node still holds: another that took them over records its own."""
    if parts:
        asked = {"ids": list({p[0] for p in parts}), "node": conn.info.get(NODE)}
        held = {message_id for (message_id,) in _SENDING(conn, asked)}
        record_parts(conn, [p for p in parts if p[0] in held], how.now)
    mark_sent(conn, sent, how)


def mark_sent(conn: Connection, sent: list[tuple[int, str]], how: Settle) -> None:
    """Every part of these messages was taken: (message_id, carrier). They wait for receipts
    (ENROUTE); one whose receipts all came already is settled at once."""
    if not sent:
        return
    node = conn.info.get(NODE)
    for carrier, ids in _grouped(sent).items():
        _MARK_SENT(conn, {"ids": ids, "to": carrier, "now": how.now, "node": node})
    # Receipts may have come for some parts already (a fast carrier): settle those messages.
    early = _EARLY(conn, {"ids": [m for m, _ in sent]})
    _settle(conn, [message_id for (message_id,) in early], how)


def fail(conn: Connection, failed: list[tuple[int, str, int]], how: Settle) -> None:
    """Carriers refused these messages for good: (message_id, carrier, status)."""
    if not failed:
        return
    asked = {"ids": [m for m, _, _ in failed], "node": conn.info.get(NODE)}
    sending = {message_id for (message_id,) in _SENDING(conn, asked)}
    failed = [f for f in failed if f[0] in sending]
    if not failed:
        return
    _REJECT.many(
        conn, [{"mid": m, "to": c, "err": status, "now": how.now} for m, c, status in failed]
    )
    credit.refund(conn, [m for m, _, _ in failed], credit.REJECTED, how.now)
    rows = {row.id: row for row in _ROWS(conn, {"ids": list(sending)})}
    _queue_receipts(conn, [(rows[m], State.REJECTED, status) for m, _, status in failed], how)


def record_receipts(
    conn: Connection,
    receipts: list[tuple[str, tuple[str, ...], str, State, int]],
    how: Settle,
    settled: list | None = None,
) -> list[bool]:
    """Apply carriers' receipts: (carrier, id candidates, the number it is about, state,
    error). Returns, for each, whether it matched a part we sent. A handful of statements for
    the whole batch, whatever its size. `settled`, when given, gets for each receipt the
    submitted_at of the message a final receipt matched, else None (for the metrics)."""
    sent = _sent_parts(conn, receipts)
    now_state: dict[tuple[int, int], int] = {}  # parts' states as this batch leaves them
    final, progress, errors, done, matched = [], [], [], [], []
    for carrier, candidates, number, state, error in receipts:
        part = _find_part(sent, carrier, candidates, number, now_state)
        matched.append(part is not None)
        if settled is not None:
            final_part = part is not None and state in FINAL
            settled.append(part.submitted_at if final_part else None)
        if part is None:
            continue
        key = (part.message_id, part.seq)
        if state in FINAL:
            final.append((state, key))
            now_state[key] = state
            done.append(part.message_id)
            if error:
                errors.append({"mid": part.message_id, "err": error})
        elif now_state.get(key, part.state) not in FINAL:
            progress.append((state, key))
            now_state[key] = state
    # A part's last receipt in the batch is the one that counts; a late intermediate receipt
    # never reopens a settled part.
    for changes, statement in ((progress, _PART_PROGRESS), (final, _PART_FINAL)):
        last = {key: state for state, key in changes}
        by_state_seq = _grouped(((m, (state, n)) for (m, n), state in last.items()))
        for (state, n), ids in by_state_seq.items():
            statement(conn, {"ids": ids, "n": n, "st": state, "now": how.now})
    if errors:
        _ERROR.many(conn, errors)
    _settle(conn, done, how)
    return matched


def time_out(conn: Connection, before: float, limit: int, how: Settle) -> int:
    """Up to `limit` messages sent before `before` that their carrier never gave a final
    receipt for: their unfinished parts end UNKNOWN, and the messages with them (or the worst
    state of their parts), with a receipt when the client asked. Returns how many."""
    ids = [message_id for (message_id,) in _LATE(conn, {"before": before, "limit": limit})]
    if ids:
        _PART_UNKNOWN(conn, {"ids": ids, "now": how.now})
        _settle(conn, ids, how)
    return len(ids)


def _sent_parts(conn: Connection, receipts) -> dict[tuple[str, str], list]:
    """The parts the receipts' id candidates may stand for, by (carrier, carrier_id)."""
    wanted: dict[str, set[str]] = {}
    for carrier, candidates, *_ in receipts:
        wanted.setdefault(carrier, set()).update(candidates)
    found: dict[tuple[str, str], list] = {}
    for carrier, ids in wanted.items():
        for row in _PARTS(conn, {"carrier": carrier, "ids": list(ids)}):
            found.setdefault((carrier, row.carrier_id), []).append(row)
    return found


def _find_part(sent, carrier: str, candidates: tuple[str, ...], number: str, now_state):
    """The part a receipt's id stands for. A decimal-looking id may be a hex one too, and the
    other way round, so: the parts still waiting for a receipt come before settled ones (a
    carrier repeating itself), a part sent to the number the receipt is about before one that
    was not, the exact form of the id before converted ones, and the newest part last."""
    # A converted form never takes a part that is settled or went to another number: that
    # is another message's id in the other base, not a late recording of this one's.
    rows = [
        (rank, row)
        for rank, c in enumerate(candidates)
        for row in sent.get((carrier, c), ())
        if rank == 0
        or (
            now_state.get((row.message_id, row.seq), row.state) not in FINAL
            and (not number or row.destination == number)
        )
    ]
    if not rows:
        return None
    return min(
        rows,
        key=lambda r: (
            now_state.get((r[1].message_id, r[1].seq), r[1].state) in FINAL,
            r[1].destination != number,
            r[0],
            -r[1].sent_at,
            -r[1].message_id,
        ),
    )[1]


def _settle(conn: Connection, ids: list[int], how: Settle) -> None:
    """Messages whose parts are all taken and all final get their final state: DELIVERED when
    every part was, else the worst of them."""
    if not ids:
        return
    ids = list(dict.fromkeys(ids))
    rows = _ENROUTE(conn, {"ids": ids})
    if not rows:
        return
    order = {message_id: i for i, message_id in enumerate(ids)}
    rows.sort(key=lambda row: order[row.id])  # the clients' receipts in the carriers' order
    states: dict[int, list[int]] = {}
    for message_id, state in _PART_STATES(conn, {"ids": [row.id for row in rows]}):
        states.setdefault(message_id, []).append(state)
    settled = []
    for row in rows:
        parts = states.get(row.id)
        if parts and all(s in FINAL for s in parts):
            settled.append((row, max((State(s) for s in parts), key=_SEVERITY.__getitem__)))
    if not settled:
        return
    for state, ids in _grouped([(row.id, state) for row, state in settled]).items():
        _SETTLE(conn, {"ids": ids, "st": state, "now": how.now})
        if state == State.REJECTED:  # the carrier's receipt says it refused it
            credit.refund(conn, ids, credit.REJECTED, how.now)
    _queue_receipts(conn, [(row, state, row.error or 0) for row, state in settled], how, states)


def _queue_receipts(conn: Connection, settled: list, how: Settle, parts=None) -> None:
    """The clients' receipts, for the messages whose clients asked for one
    (registered_delivery bits 0-1: 1 always, 2 on failure only): (message row, final state,
    error). `parts`: each message's part states, when the caller has them."""
    wanted = [
        (row, state, error)
        for row, state, error in settled
        if (row.registered_delivery & 3) == 1
        or ((row.registered_delivery & 3) == 2 and state != State.DELIVERED)
    ]
    if not wanted:
        return
    if parts is None:
        counts = _PART_COUNTS(conn, {"ids": [row.id for row, _, _ in wanted]})
        parts = {m: [None] * n for m, n in counts}
    expires = how.now + how.retention
    rows = []
    for row, state, error in wanted:
        message = Message(*row)
        body, tlvs = how.receipt(message, state, error, len(parts.get(row.id, ())) or 1, how.now)
        rows.append(
            (row.account_id, row.id, 1, 1, row.destination, row.source, ESM_RECEIPT, 0, body,
             tlvs, how.now, how.now, expires, row.callback)
        )  # fmt: skip
    outbox.add(conn, rows)


def _grouped(pairs) -> dict:
    """(item, key) pairs as {key: [items]}, in order."""
    groups: dict = {}
    for item, key in pairs:
        groups.setdefault(key, []).append(item)
    return groups


def _ids(column):
    return column.in_(bindparam("ids", expanding=True))


# The queue's statements, compiled once and run on the driver (smsc.store.prepared).
# A node writes down only what it still holds: a node taken for dead (no heartbeat for a
# lease) finds its claims given to another, and leaves them to it.
_CLAIMED = messages.c.node_id.is_not_distinct_from(bindparam("node"))
_MARK_SENT = Prepared(
    update(messages)
    .where(_ids(messages.c.id), messages.c.state == State.SENDING, _CLAIMED)
    .values(state=State.ENROUTE, carrier=bindparam("to"), updated_at=bindparam("now"))
)
_EARLY = Prepared(
    select(message_parts.c.message_id)
    .where(_ids(message_parts.c.message_id), message_parts.c.state.in_(FINAL))
    .distinct()
)
_SENDING = Prepared(
    select(messages.c.id).where(_ids(messages.c.id), messages.c.state == State.SENDING, _CLAIMED)
)
_REJECT = Prepared(
    update(messages)
    .where(messages.c.id == bindparam("mid"), messages.c.state == State.SENDING)
    .values(
        state=State.REJECTED,
        carrier=bindparam("to"),
        error=bindparam("err"),
        updated_at=bindparam("now"),
    )
)
# Each account's due messages, oldest first (PostgreSQL: skipping those another node is
# claiming; SQLite has one writer).
_DUE = Prepared(
    select(messages.c.id)
    .where(
        messages.c.state == State.ACCEPTED,
        messages.c.account_id == bindparam("account"),
        messages.c.due_at <= bindparam("now"),
    )
    .order_by(messages.c.due_at, messages.c.id)
    .limit(bindparam("take"))
    .offset(bindparam("skip"))
    .with_for_update(skip_locked=True)
)
_ROWS = Prepared(select(messages).where(_ids(messages.c.id)))
_CLAIM = Prepared(
    update(messages)
    .where(_ids(messages.c.id), unindexed(messages.c.state) == State.ACCEPTED)
    .values(
        state=State.SENDING,
        updated_at=bindparam("now"),
        attempts=messages.c.attempts + 1,
        node_id=bindparam("node"),
    )
    .returning(*_DUE_COLUMNS, messages.c.expires_at, messages.c.attempts)
)
# A message is due before it is sent, and sent when it goes ENROUTE: the queue index's due_at
# narrows the look to old ones without reading the others' rows.
_LATE = Prepared(
    select(messages.c.id)
    .where(
        messages.c.state == State.ENROUTE,
        messages.c.due_at <= bindparam("before"),
        messages.c.updated_at <= bindparam("before"),
    )
    .limit(bindparam("limit"))
    .with_for_update(skip_locked=True)  # PostgreSQL: one node ends each, with one receipt
)
_PART_UNKNOWN = Prepared(
    update(message_parts)
    .where(_ids(message_parts.c.message_id), message_parts.c.state.not_in(FINAL))
    .values(state=State.UNKNOWN, updated_at=bindparam("now"))
)
_FORGET_PARTS = Prepared(message_parts.delete().where(_ids(message_parts.c.message_id)))
_ASKED = Prepared(
    select(messages).where(_ids(messages.c.id), messages.c.registered_delivery.op("&")(3) != 0)
)
_ENROUTE = Prepared(select(messages).where(_ids(messages.c.id), messages.c.state == State.ENROUTE))
_PARTS = Prepared(
    select(
        message_parts.c.message_id,
        message_parts.c.seq,
        message_parts.c.carrier_id,
        message_parts.c.state,
        message_parts.c.sent_at,
        messages.c.destination,
        messages.c.submitted_at,
    )
    .join(messages, messages.c.id == message_parts.c.message_id)
    .where(message_parts.c.carrier == bindparam("carrier"), _ids(message_parts.c.carrier_id))
)
_PART_STATES = Prepared(
    select(message_parts.c.message_id, message_parts.c.state).where(
        _ids(message_parts.c.message_id)
    )
)
_PART_COUNTS = Prepared(
    select(message_parts.c.message_id, func.count())
    .where(_ids(message_parts.c.message_id))
    .group_by(message_parts.c.message_id)
)
_part_final = (
    update(message_parts)
    .where(_ids(message_parts.c.message_id), message_parts.c.seq == bindparam("n"))
    .values(state=bindparam("st"), updated_at=bindparam("now"))
)
_PART_FINAL = Prepared(_part_final)
_PART_PROGRESS = Prepared(_part_final.where(message_parts.c.state.not_in(FINAL)))
_ERROR = Prepared(
    update(messages).where(messages.c.id == bindparam("mid")).values(error=bindparam("err"))
)
_SETTLE = Prepared(
    update(messages)
    .where(_ids(messages.c.id))
    .values(state=bindparam("st"), updated_at=bindparam("now"))
)
