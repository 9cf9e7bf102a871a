"""Subscribers' replies (MO), as one writer job each: the parts of a long reply are kept until
the last one comes; then STOP puts the subscriber on the opt-out list of the account the reply
is for and queues a confirmation, CONTACT queues the account's identity, and anything else
goes to the account's client through the outbox. All of it in the transaction that makes the
carrier's deliver_sm answered: a crash before the commit means the carrier sends it again.

Who a reply is for: the only account that registered the address it was sent to; on a shared
address (or one nobody registered), the account that last sent to the subscriber from it. A
STOP nobody can be found for opts the subscriber out of every account that registered the
address: when in doubt, opt out.
"""

from dataclasses import dataclass

from sqlalchemy import Connection, delete, insert, select

from .. import addresses
from ..protocol import text as sms_text
from ..protocol.constants import Tag
from ..protocol.pdu import encode_tlvs
from ..store import accounts, messages, optouts, outbox, senders
from ..store.messages import ORIGIN_SWITCH, State
from ..store.schema import inbox_parts
from .keywords import Kind, classify

REPLY_VALIDITY = 24 * 3600  # an automatic reply not out within a day is no use any more
UNROUTED = "unrouted"  # what came of a reply nobody can be found for
PART = "part"  # one part of a long reply, kept until the others come
PARTS_WAIT = 600.0  # seconds the parts of a long reply wait for the others


@dataclass(frozen=True, slots=True)
class Mo:
    """A subscriber's message as a carrier delivered it, its UDH or sar TLVs read."""

    carrier: str
    source: str  # the subscriber, E.164 when it is a number
    source_ton: int
    destination: str  # our address it was sent to
    data_coding: int
    payload: bytes  # without its UDH
    concat: tuple[int, int, int] | None  # (ref, total, seq) of one part of a long reply


@dataclass(frozen=True, slots=True)
class Handling:
    """What the switch needs to run a reply job: its time, the opt-out key, how long an
    outbox row waits for its client."""

    now: float
    optout_key: bytes
    retention: float


def receive(conn: Connection, mo: Mo, how: Handling) -> str:
    """Handle one MO (or one part of it). Returns what came of it: a `Kind` value, PART or
    UNROUTED."""
    whole = _assembled(conn, mo, how.now)
    if whole is None:
        return PART
    data_coding, payload = whole
    text = sms_text.decode(data_coding, payload)
    kind = Kind.OTHER if text is None else classify(text)
    address = addresses.sender(mo.destination)
    owners = senders.accounts_of(conn, address)
    account_id = owners[0] if len(owners) == 1 else senders.last_sender(conn, address, mo.source)
    if kind is Kind.STOP:
        stopped = [account_id] if account_id is not None else owners
        if not stopped:
            return UNROUTED
        number = addresses.e164(mo.source, mo.source_ton)
        if number is not None:
            digest = optouts.digest(how.optout_key, number)
            for account in stopped:
                optouts.add(conn, account, [digest], "stop", how.now)
        account = accounts.by_id(conn, stopped[0])
        _reply(conn, account, mo, confirmation(account), how.now)
        return kind
    if account_id is None:
        return UNROUTED
    account = accounts.by_id(conn, account_id)
    if kind is Kind.CONTACT:
        _reply(conn, account, mo, identity(account), how.now)
    else:
        _forward(conn, account, mo, data_coding, payload, how)
    return kind


def confirmation(account: accounts.Account) -> str:
    """The answer to STOP: that it worked, who from, and nothing else (no promotion)."""
    return f"{_name(account)} : desinscription prise en compte, vous ne recevrez plus nos SMS."


def identity(account: accounts.Account) -> str:
    """The answer to CONTACT: who sends these messages and how to reach them."""
    return " - ".join(v for v in (_name(account), account.contact, account.website) if v)


def _name(account: accounts.Account) -> str:
    return account.company or account.system_id


def _assembled(conn: Connection, mo: Mo, now: float) -> tuple[int, bytes] | None:
    """The whole reply (data_coding, payload) once every part is in, else None."""
    if mo.concat is None:
        return mo.data_coding, mo.payload
    ref, total, seq = mo.concat
    same = (
        inbox_parts.c.source == mo.source,
        inbox_parts.c.destination == mo.destination,
        inbox_parts.c.ref == ref,
        inbox_parts.c.total == total,
        inbox_parts.c.carrier == mo.carrier,
    )
    # A part older than PARTS_WAIT belongs to a reply that never completed, or is a carrier's
    # late retry of one already handled: it must not be joined to a reply reusing the ref.
    conn.execute(delete(inbox_parts).where(*same, inbox_parts.c.received_at < now - PARTS_WAIT))
    conn.execute(
        insert(inbox_parts).values(
            carrier=mo.carrier, source=mo.source, destination=mo.destination, ref=ref,
            total=total, seq=seq, data_coding=mo.data_coding, body=mo.payload, received_at=now,
        )
    )  # fmt: skip
    rows = conn.execute(
        select(inbox_parts.c.seq, inbox_parts.c.data_coding, inbox_parts.c.body)
        .where(*same)
        .order_by(inbox_parts.c.seq, inbox_parts.c.id)
    ).all()
    parts = {row.seq: row for row in rows}  # a part offered twice counts once
    if len(parts) < total:
        return None
    conn.execute(delete(inbox_parts).where(*same))
    ordered = [parts[i] for i in sorted(parts)]
    return ordered[0].data_coding, b"".join(row.body for row in ordered)


def forget_stale_parts(conn: Connection, now: float) -> int:
    """Drop the parts of replies that never completed."""
    stale = delete(inbox_parts).where(inbox_parts.c.received_at < now - PARTS_WAIT)
    return conn.execute(stale).rowcount


def _reply(conn: Connection, account: accounts.Account, mo: Mo, text: str, now: float) -> None:
    """Queue an automatic reply to the subscriber from the address they wrote to: routed and
    sent like any message, never held by sending hours, opt-outs or charges (origin)."""
    number = addresses.e164(mo.source, mo.source_ton)
    if number is None:
        return  # an address no SMS can go back to
    coding = sms_text.best_coding(text)
    ton = 1 if addresses.e164(mo.destination, 1) else 0  # a long number, else a short code
    row = (
        account.id, "", ton, 1, mo.destination, number, 0, 0, 0, 0, coding,
        sms_text.encode(coding, text), b"", now, now, now + REPLY_VALIDITY,
        State.ACCEPTED.value, now, ORIGIN_SWITCH, None,
    )  # fmt: skip
    messages.add(conn, [row])


def _forward(
    conn: Connection,
    account: accounts.Account,
    mo: Mo,
    data_coding: int,
    payload: bytes,
    how: Handling,
) -> None:
    """An ordinary reply, for the account's client: a deliver_sm waiting in the outbox for
    its receiver bind (a long one travels whole in message_payload), or a POST to its
    reply_url (smsc.channels.callbacks)."""
    body, tlvs = payload, b""
    if len(payload) > 254:
        body, tlvs = b"", encode_tlvs({Tag.message_payload: payload})
    outbox.add(
        conn,
        [
            (account.id, None, mo.source_ton, 1, mo.source, mo.destination, 0, data_coding,
             body, tlvs, how.now, how.now, how.now + how.retention, account.reply_url or None)
        ],
    )  # fmt: skip
