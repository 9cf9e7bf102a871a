"""Subscribers' replies (smsc.inbound.replies) on a real SQLite store: who a reply is for, STOP
(opt-out by hash, confirmation), CONTACT (identity), anything else forwarded through the
outbox, long replies reassembled from their parts; and how the handler reads a carrier's
deliver_sm or data_sm into a `Mo` (smsc.inbound.handler._mo)."""

import pytest
from sqlalchemy import func, select
from test_inbound import Harness, Link, Store
from test_queue import add_account, add_message, outbox_rows

from smsc import addresses
from smsc.inbound import handler, replies
from smsc.inbound.replies import REPLY_VALIDITY, Handling, Mo
from smsc.protocol import concat
from smsc.protocol import text as sms_text
from smsc.protocol.constants import Command, Status, Tag
from smsc.protocol.pdu import Pdu, decode_tlvs
from smsc.store import accounts, optouts, outbox, schema, senders
from smsc.store.db import writing
from smsc.store.messages import ORIGIN_SWITCH, State

NOW = 1_767_225_600.0
KEY = b"k" * 32
RETENTION = 3600.0
SUB = "33612345678"  # the subscriber who replies
OTHER_SUB = "33798765432"
SHORT = "36180"
LONG = "33937123456"  # a platform's long number

IDENTITY = {
    "acme": ("Acme SA", "01 23 45 67 89", "acme.example"),
    "shop": ("Shop SARL", "contact@shop.example", "shop.example"),
}


@pytest.fixture
def ids(engine):
    """acme's and shop's account ids, with their identities."""
    with writing(engine) as conn:
        found = []
        for name, (company, contact, website) in IDENTITY.items():
            found.append(add_account(conn, name))
            accounts.change(conn, name, company=company, contact=contact, website=website)
        return found


def register(engine, address, *account_ids):
    with writing(engine) as conn:
        for account_id in account_ids:
            senders.add(conn, account_id, address)


def sent(engine, *messages):
    """Messages sent before: (account id, message id, source, destination)."""
    with writing(engine) as conn:
        for account_id, message_id, source, destination in messages:
            add_message(conn, account_id, message_id, source=source, destination=destination)


def mo(payload=b"STOP", source=SUB, destination=SHORT, data_coding=0, part=None, ton=1):
    return Mo("orange", source, ton, destination, data_coding, payload, part)


def receive(engine, reply, now=NOW):
    """Run the reply job as the writer does (an id allocator on the connection)."""
    store = Store(engine)
    store.hold = False
    got = []
    store.write(replies.receive, reply, Handling(now, KEY, RETENTION)).addCallback(got.append)
    return got[0]


def opted_out(engine) -> list[tuple]:
    with engine.connect() as conn:
        o = schema.optouts
        query = select(o.c.number_hash, o.c.scope, o.c.origin, o.c.created_at)
        return [tuple(r) for r in conn.execute(query.order_by(o.c.scope))]


def automatic(engine) -> list:
    """The switch's own messages (origin 1)."""
    with engine.connect() as conn:
        m = schema.messages
        query = select(m).where(m.c.origin == ORIGIN_SWITCH).order_by(m.c.id)
        return conn.execute(query).all()


def text_of(message) -> str:
    return sms_text.decode(message.data_coding, message.body)


def parts_waiting(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(schema.inbox_parts)).scalar()


# -- STOP -----------------------------------------------------------------------------------


def test_stop_to_a_short_code_of_one_account(engine, ids):
    acme, shop = ids
    register(engine, SHORT, acme)
    register(engine, "36999", shop)
    assert receive(engine, mo(b"STOP")) == "stop"
    digest = optouts.digest(KEY, SUB)
    assert opted_out(engine) == [(digest, acme, "stop", NOW)]
    assert SUB.encode() not in digest and digest != optouts.digest(b"other key", SUB)
    (reply,) = automatic(engine)
    assert (reply.account_id, reply.source, reply.source_ton, reply.destination) == (
        acme,
        SHORT,
        0,  # a short code
        SUB,
    )
    assert (reply.registered_delivery, reply.esm_class, reply.origin) == (0, 0, 1)
    assert (reply.due_at, reply.submitted_at) == (NOW, NOW)
    assert reply.expires_at == NOW + REPLY_VALIDITY
    assert reply.state == State.ACCEPTED and reply.multi_id is None
    text = text_of(reply)
    assert "Acme SA" in text
    assert not any(word in text for word in ("acme.example", "01 23", "%", "promo", "http"))
    assert outbox_rows(engine) == []  # the client hears nothing of it


def test_stop_to_a_shared_short_code_is_for_the_last_sender(engine, ids):
    acme, shop = ids
    register(engine, SHORT, acme, shop)
    sent(
        engine,
        (acme, 1, SHORT, SUB),
        (shop, 2, SHORT, SUB),  # the last one to this subscriber
        (acme, 3, SHORT, OTHER_SUB),
        (acme, 4, "ACME", SUB),
    )
    assert receive(engine, mo(b"Stop svp")) == "stop"
    assert [(scope, h) for h, scope, *_ in opted_out(engine)] == [(shop, optouts.digest(KEY, SUB))]
    (reply,) = automatic(engine)
    assert reply.account_id == shop and reply.destination == SUB and reply.source == SHORT
    assert "Shop SARL" in text_of(reply)


def test_stop_to_a_shared_short_code_nobody_sent_from_opts_out_of_every_owner(engine, ids):
    acme, shop = ids
    register(engine, SHORT, acme, shop)
    sent(engine, (acme, 1, "ACME", SUB), (shop, 2, SHORT, OTHER_SUB))
    assert receive(engine, mo(b"STOP")) == "stop"
    digest = optouts.digest(KEY, SUB)
    assert [(h, scope) for h, scope, *_ in opted_out(engine)] == [(digest, acme), (digest, shop)]
    (reply,) = automatic(engine)  # one confirmation, not one per account
    assert reply.destination == SUB and reply.source == SHORT


def test_stop_to_an_address_nobody_registered_is_for_its_last_sender(engine, ids):
    acme, shop = ids
    sent(engine, (acme, 1, LONG, SUB), (shop, 2, LONG, SUB), (acme, 3, LONG, OTHER_SUB))
    assert receive(engine, mo(b"STOP", destination=LONG)) == "stop"
    assert [scope for _, scope, *_ in opted_out(engine)] == [shop]
    (reply,) = automatic(engine)
    assert (reply.account_id, reply.source, reply.source_ton) == (shop, LONG, 1)  # a long number


def test_stop_nobody_can_be_found_for_is_unrouted(engine, ids):
    acme, _ = ids
    sent(engine, (acme, 1, LONG, OTHER_SUB))
    assert receive(engine, mo(b"STOP", destination=LONG)) == replies.UNROUTED
    assert receive(engine, mo(b"STOP", destination="38999")) == replies.UNROUTED
    assert opted_out(engine) == [] and automatic(engine) == [] and outbox_rows(engine) == []


def test_stop_to_a_long_number_the_client_wrote_nationally(engine, ids):
    _, shop = ids
    source, ton = addresses.source("0937123456", 2)  # as Acceptor.submit stores it
    with writing(engine) as conn:
        add_message(conn, shop, 1, source=source, source_ton=ton, destination=SUB)
    assert receive(engine, mo(b"STOP", destination=LONG)) == "stop"
    assert [scope for _, scope, *_ in opted_out(engine)] == [shop]


def test_stop_again_starts_the_retention_over(engine, ids):
    acme, _ = ids
    register(engine, SHORT, acme)
    receive(engine, mo(b"STOP"))
    receive(engine, mo(b"ARRET"), now=NOW + 60)
    assert [(scope, at) for _, scope, _, at in opted_out(engine)] == [(acme, NOW + 60)]
    assert len(automatic(engine)) == 2  # each STOP is confirmed


def test_stop_in_ucs2(engine, ids):
    acme, _ = ids
    register(engine, SHORT, acme)
    assert receive(engine, mo("ARRÊT".encode("utf-16-be"), data_coding=8)) == "stop"
    assert [scope for _, scope, *_ in opted_out(engine)] == [acme]


def test_a_confirmation_in_ucs2_when_the_name_needs_it(engine, ids):
    acme, _ = ids
    register(engine, SHORT, acme)
    with writing(engine) as conn:
        accounts.change(conn, "acme", company="Crêperie Œuf")
    receive(engine, mo(b"STOP"))
    (reply,) = automatic(engine)
    assert reply.data_coding == 8 and "Crêperie Œuf" in text_of(reply)


# -- CONTACT and everything else ------------------------------------------------------------


def test_contact_answers_with_the_identity(engine, ids):
    acme, _ = ids
    register(engine, SHORT, acme)
    assert receive(engine, mo(b"Contact ?")) == "contact"
    (reply,) = automatic(engine)
    assert (reply.account_id, reply.source, reply.destination) == (acme, SHORT, SUB)
    assert (reply.registered_delivery, reply.due_at) == (0, NOW)
    text = text_of(reply)
    assert all(part in text for part in IDENTITY["acme"])
    assert opted_out(engine) == [] and outbox_rows(engine) == []


def test_contact_nobody_can_be_found_for_is_unrouted(engine, ids):
    assert receive(engine, mo(b"CONTACT", destination="38999")) == replies.UNROUTED
    assert automatic(engine) == []


def test_other_goes_to_the_owner_through_the_outbox(engine, ids):
    acme, shop = ids
    register(engine, SHORT, shop)
    text = "Bonjour, à quelle heure ouvrez-vous ?"
    assert receive(engine, mo(text.encode("utf-16-be"), data_coding=8)) == "other"
    (row,) = outbox_rows(engine)
    assert (row.account_id, row.message_id, row.source, row.source_ton, row.destination) == (
        shop,
        None,
        SUB,
        1,
        SHORT,
    )
    assert (row.data_coding, row.esm_class, row.tlvs) == (8, 0, b"")
    assert row.body == text.encode("utf-16-be")
    assert (row.state, row.due_at, row.expires_at) == (outbox.PENDING, NOW, NOW + RETENTION)
    assert automatic(engine) == [] and opted_out(engine) == []


def test_an_account_with_a_reply_url_gets_its_replies_posted_there(engine, ids):
    acme, shop = ids
    register(engine, SHORT, shop)
    assert receive(engine, mo(b"Hello?")) == "other"
    with writing(engine) as conn:
        accounts.change(conn, "shop", reply_url="https://shop.example/sms-replies")
    assert receive(engine, mo(b"Still there?")) == "other"
    before, after = outbox_rows(engine)
    assert (before.url, before.body) == (None, b"Hello?")  # deliver_sm to its SMPP binds
    assert (after.url, after.body) == ("https://shop.example/sms-replies", b"Still there?")


def test_a_long_reply_travels_in_message_payload(engine, ids):
    acme, _ = ids
    register(engine, SHORT, acme)
    fits, long = "x" * 254, "é" * 128  # 254 octets; 256 octets in UCS-2
    receive(engine, mo(fits.encode()))
    receive(engine, mo(long.encode("utf-16-be"), data_coding=8))
    short, whole = outbox_rows(engine)
    assert (short.body, short.tlvs) == (fits.encode(), b"")
    assert whole.body == b"" and whole.data_coding == 8
    assert decode_tlvs(whole.tlvs) == {Tag.message_payload: long.encode("utf-16-be")}


def test_a_binary_reply_is_forwarded(engine, ids):
    acme, _ = ids
    register(engine, SHORT, acme)
    payload = b"STOP\x00\xff"  # no text: not read for keywords
    assert receive(engine, mo(payload, data_coding=4)) == "other"
    (row,) = outbox_rows(engine)
    assert (row.data_coding, row.body) == (4, payload)
    assert opted_out(engine) == []


def test_other_nobody_can_be_found_for_is_unrouted(engine, ids):
    assert receive(engine, mo(b"Bonjour")) == replies.UNROUTED
    assert outbox_rows(engine) == []


# -- long replies in parts ------------------------------------------------------------------


def test_parts_out_of_order_and_twice_are_handled_once_whole(engine, ids):
    acme, _ = ids
    register(engine, SHORT, acme)
    parts = {1: b"Bonjour, ", 2: b"je voudrais ", 3: b"un rendez-vous"}
    outcomes = [
        receive(engine, mo(parts[seq], part=(9, 3, seq)), now=NOW + i)
        for i, seq in enumerate((3, 1, 1, 2))
    ]
    assert outcomes == [replies.PART, replies.PART, replies.PART, "other"]
    (row,) = outbox_rows(engine)
    assert row.body == b"Bonjour, je voudrais un rendez-vous"
    assert parts_waiting(engine) == 0


def test_a_stop_split_across_parts(engine, ids):
    acme, _ = ids
    register(engine, SHORT, acme)
    first, last = "Merci, ST".encode("utf-16-be"), "OP".encode("utf-16-be")
    assert receive(engine, mo(last, data_coding=8, part=(200, 2, 2))) == replies.PART
    assert opted_out(engine) == []
    assert receive(engine, mo(first, data_coding=8, part=(200, 2, 1))) == "stop"
    assert [scope for _, scope, *_ in opted_out(engine)] == [acme]


def test_parts_of_other_replies_do_not_mix(engine, ids):
    acme, _ = ids
    register(engine, SHORT, acme)
    assert receive(engine, mo(b"A1", part=(1, 2, 1))) == replies.PART
    assert receive(engine, mo(b"B1", part=(2, 2, 1))) == replies.PART  # another reference
    assert receive(engine, mo(b"C1", part=(1, 2, 1), source=OTHER_SUB)) == replies.PART
    assert receive(engine, mo(b"D1", part=(1, 3, 1))) == replies.PART  # another total
    assert receive(engine, mo(b"A2", part=(1, 2, 2))) == "other"
    assert [r.body for r in outbox_rows(engine)] == [b"A1A2"]
    assert parts_waiting(engine) == 3


def test_a_part_offered_again_after_its_reply_does_not_mix_into_the_next(engine, ids):
    acme, _ = ids
    register(engine, SHORT, acme)
    receive(engine, mo(b"Hello ", part=(7, 2, 1)))
    receive(engine, mo(b"world", part=(7, 2, 2)))
    receive(engine, mo(b"world", part=(7, 2, 2)), now=NOW + 1)  # the carrier's retry
    receive(engine, mo(b"Bye ", part=(7, 2, 1)), now=NOW + 3600)  # the reference reused
    receive(engine, mo(b"now", part=(7, 2, 2)), now=NOW + 3601)
    assert [r.body for r in outbox_rows(engine)] == [b"Hello world", b"Bye now"]


# -- the handler reads the carrier's PDU ----------------------------------------------------


def deliver(params, tlvs=None, command=Command.deliver_sm, seq=1):
    base = {"source_addr": "0612345678", "source_addr_ton": 2, "destination_addr": SHORT}
    return Pdu(command, seq, 0, {**base, **params}, tlvs or {})


def test_mo_with_a_udh():
    pdu = deliver({"esm_class": 0x40, "short_message": concat.udh(7, 3, 2) + b"Hello"})
    assert handler._mo("orange", pdu) == Mo("orange", SUB, 1, SHORT, 0, b"Hello", (7, 3, 2))
    body = concat.udh(0x1234, 2, 1, ref16=True) + "été".encode("utf-16-be")
    pdu = deliver({"esm_class": 0x40, "short_message": body, "data_coding": 8})
    got = handler._mo("sfr", pdu)
    assert (got.payload, got.concat, got.data_coding) == (
        "été".encode("utf-16-be"),
        (0x1234, 2, 1),
        8,
    )


def test_mo_with_a_udh_that_is_no_concatenation():
    body = bytes((4, 0x05, 2, 0x0B, 0x84)) + b"port"  # application port addressing only
    got = handler._mo("orange", deliver({"esm_class": 0x40, "short_message": body}))
    assert (got.payload, got.concat) == (b"port", None)


def test_mo_with_sar_tlvs():
    tlvs = {Tag.sar_msg_ref_num: 300, Tag.sar_total_segments: 2, Tag.sar_segment_seqnum: 2}
    got = handler._mo("orange", deliver({"short_message": b"world"}, tlvs))
    assert (got.payload, got.concat) == (b"world", (300, 2, 2))


def test_mo_with_message_payload():
    text = "Bonjour " * 40
    tlvs = {Tag.message_payload: text.encode("utf-16-be")}
    pdu = deliver({"data_coding": 8}, tlvs, command=Command.data_sm)
    got = handler._mo("orange", pdu)
    assert (got.payload, got.concat, got.data_coding) == (text.encode("utf-16-be"), None, 8)


@pytest.mark.parametrize(
    ("source", "ton", "expected"),
    [
        ("0612345678", 2, (SUB, 1)),
        ("0612345678", 0, (SUB, 1)),
        ("+33612345678", 1, (SUB, 1)),
        ("33612345678", 1, (SUB, 1)),
        ("0033612345678", 0, (SUB, 1)),
        ("Orange", 5, ("Orange", 5)),  # no number: kept as it came
    ],
)
def test_mo_source_normalised(source, ton, expected):
    pdu = deliver({"source_addr": source, "source_addr_ton": ton, "short_message": b"hi"})
    got = handler._mo("orange", pdu)
    assert (got.source, got.source_ton) == expected
    assert (got.payload, got.concat) == (b"hi", None)


def test_mo_destination_without_its_plus():
    got = handler._mo("orange", deliver({"destination_addr": "+" + LONG, "short_message": b"x"}))
    assert got.destination == LONG


@pytest.mark.parametrize(
    "body", [b"", b"\x05\x00\x03\x07", b"\x06\x00\x03\x07\x02\x01", b"\x03\x00\x05\x07"]
)
def test_a_malformed_udh_is_answered_with_an_error_and_counted(engine, body):
    assert handler._mo("orange", deliver({"esm_class": 0x40, "short_message": body})) is None
    h = Harness(engine)
    link = Link()
    h.inbound.deliver(link, deliver({"esm_class": 0x40, "short_message": body}, seq=5))
    assert link.answers == [(5, Status.RINVMSGLEN)] and link.flushes == 1
    assert h.inbound.replies == {"unreadable": 1}
    assert h.writes() == []


def test_a_part_through_the_handler_is_answered_once_stored(engine):
    h = Harness(engine)
    register(engine, SHORT, h.account)
    link = Link()
    body = concat.udh(7, 2, 1) + b"Hello "
    h.inbound.deliver(link, deliver({"esm_class": 0x40, "short_message": body}, seq=8))
    assert link.answers == []
    h.store.release()
    assert link.answers == [(8, 0)] and h.inbound.replies == {replies.PART: 1}
    assert h.log == []  # nothing to wake for a part
    body = concat.udh(7, 2, 2) + b"world"
    h.inbound.deliver(link, deliver({"esm_class": 0x40, "short_message": body}, seq=9))
    h.store.release()
    assert h.inbound.replies == {replies.PART: 1, "other": 1} and h.log == ["reply"]
    (row,) = outbox_rows(engine)
    assert (row.account_id, row.source, row.body) == (h.account, SUB, b"Hello world")
