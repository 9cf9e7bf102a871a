"""What carriers deliver (smsc.inbound.handler): receipts batched, stored, then answered;
unreadable receipts, acknowledgements and subscriber replies; and the receipt we write for the
client (`client_receipt`)."""

import pytest
from sqlalchemy import insert, select
from twisted.internet import defer
from twisted.internet.task import Clock

from smsc.inbound.handler import Inbound, client_receipt
from smsc.inbound.replies import Handling
from smsc.protocol import concat
from smsc.protocol.constants import Command, Status, Tag
from smsc.protocol.pdu import Pdu, decode_tlvs
from smsc.store import messages, queue, schema
from smsc.store.db import writing
from smsc.store.messages import Message, State
from smsc.store.queue import Settle

NOW = 1_767_225_600.0  # 2026-01-01 00:00 UTC
DATE = "2601010000"
KEY = b"k" * 32  # the opt-out list's HMAC key


class Store:
    """`write` runs the function on a real connection; its answer comes back at `release`
    (as from the writer thread), or at once when `hold` is off."""

    def __init__(self, engine):
        self.engine = engine
        self.calls = []
        self.hold = True
        self.fail = False
        self.held = []

    def write(self, fn, *args, **kw):
        self.calls.append((fn.__name__, args))
        if self.fail:
            return defer.fail(RuntimeError("disk full"))
        with writing(self.engine) as conn:
            conn.info[messages.ALLOCATE] = self._allocate
            result = fn(conn, *args, **kw)
        if not self.hold:
            return defer.succeed(result)
        d = defer.Deferred()
        self.held.append((d, result))
        return d

    def _allocate(self, n):
        with self.engine.connect() as conn:
            return messages.next_id(conn)

    def release(self):
        held, self.held = self.held, []
        for d, result in held:
            d.callback(result)


class Carrier:
    def __init__(self, name):
        self.name = name


class Link:
    def __init__(self, name="orange"):
        self.carrier = Carrier(name)
        self.answers = []
        self.flushes = 0

    def respond(self, pdu, status=0):
        self.answers.append((pdu.sequence, status))

    def flush(self):
        self.flushes += 1


class Harness:
    def __init__(self, engine):
        self.engine = engine
        self.clock = Clock()
        self.clock.advance(NOW)
        self.store = Store(engine)
        self.log = []
        self.inbound = Inbound(
            self.store,
            self.clock,
            lambda: Settle(self.clock.seconds(), 3600.0, client_receipt),
            lambda: self.log.append("before"),
            lambda: self.log.append("after"),
            lambda: Handling(self.clock.seconds(), KEY, 3600.0),
            lambda: self.log.append("reply"),
        )
        with writing(engine) as conn:
            values = dict(
                system_id="acme",
                password_hash="-",
                max_binds=1,
                tps=0,
                enabled=True,
                created_at=NOW,
            )
            self.account = conn.execute(
                insert(schema.accounts).values(**values)
            ).inserted_primary_key[0]

    def sent(self, message_id, *carrier_ids, carrier="orange", registered_delivery=1):
        """A message a carrier took, in parts with these (normalised) ids."""
        with writing(self.engine) as conn:
            conn.execute(
                insert(schema.messages).values(
                    id=message_id,
                    account_id=self.account,
                    service_type="",
                    source_ton=5,
                    source_npi=0,
                    source="ACME",
                    destination="33612345678",
                    esm_class=0,
                    protocol_id=0,
                    priority=0,
                    registered_delivery=registered_delivery,
                    data_coding=0,
                    body=b"hello",
                    tlvs=b"",
                    submitted_at=NOW,
                    due_at=NOW,
                    expires_at=NOW + 3600,
                    state=State.ACCEPTED,
                    updated_at=NOW,
                )
            )
            queue.claim(
                conn, NOW, 10, lambda conn, numbers: {}, Settle(NOW, 3600.0, client_receipt)
            )
            parts = [(message_id, seq, carrier, cid) for seq, cid in enumerate(carrier_ids, 1)]
            queue.record_parts(conn, parts, NOW)
            queue.mark_sent(conn, [(message_id, carrier)], Settle(NOW, 3600.0, client_receipt))

    def state(self, message_id):
        with self.engine.connect() as conn:
            m = schema.messages
            return conn.execute(select(m.c.state).where(m.c.id == message_id)).scalar()

    def outbox(self):
        with self.engine.connect() as conn:
            return conn.execute(select(schema.outbox)).all()

    def writes(self):
        return [name for name, _ in self.store.calls]


def receipt(seq, carrier_id, stat="DELIVRD", err="000", esm_class=0x04, tlvs=None, source=""):
    text = (
        f"id:{carrier_id} sub:001 dlvrd:001 submit date:{DATE} done date:{DATE} stat:{stat}"
        f" err:{err} text:hello"
    )
    params = {"esm_class": esm_class, "short_message": text.encode(), "source_addr": source}
    return Pdu(Command.deliver_sm, seq, 0, params, tlvs or {})


@pytest.fixture
def h(engine):
    return Harness(engine)


# -- receipts --------------------------------------------------------------------------------


def test_receipts_are_stored_in_one_batch_then_answered(h):
    h.sent(1, "1f")
    h.sent(2, "20")
    orange, orange2 = Link(), Link()
    h.inbound.deliver(orange, receipt(11, "1F"))
    h.inbound.deliver(orange2, receipt(12, "32"))  # 0x20 written in decimal
    h.inbound.deliver(orange, receipt(13, "999"))  # not ours
    assert h.writes() == [] and orange.answers == []
    h.clock.advance(0)
    assert h.log == ["before"]  # the dispatcher's parts go in first
    ((name, (work, settle)),) = h.store.calls
    assert name == "record_receipts" and len(work) == 3
    assert orange.answers == [] and orange2.answers == []  # not before it is stored
    h.store.release()
    assert orange.answers == [(11, 0), (13, 0)] and orange2.answers == [(12, 0)]
    assert (orange.flushes, orange2.flushes) == (1, 1)  # one write per link
    assert h.log == ["before", "after"]
    assert (h.inbound.receipts, h.inbound.unmatched) == (3, 1)
    assert (h.state(1), h.state(2)) == (State.DELIVERED, State.DELIVERED)
    assert len(h.outbox()) == 2


def test_what_the_store_is_asked(h):
    h.inbound.deliver(Link("sfr"), receipt(1, "0A", stat="UNDELIV", err="011"))
    h.inbound.deliver(Link("sfr"), receipt(2, "7", stat="ACCEPTD", source="+33600000001"))
    h.clock.advance(0)
    ((_, (work, settle)),) = h.store.calls
    assert work == [
        ("sfr", ("a", "10"), "", State.UNDELIVERABLE, 11),
        ("sfr", ("7",), "33600000001", State.ENROUTE, 0),  # the number it is about
    ]
    assert settle.now == NOW and settle.receipt is client_receipt


def test_an_intermediate_receipt_is_answered_and_settles_nothing(h):
    h.sent(1, "5")
    link = Link()
    h.inbound.deliver(link, receipt(3, "5", stat="ENROUTE", esm_class=0x20))
    h.clock.advance(0)
    h.store.release()
    assert link.answers == [(3, 0)]
    assert h.state(1) == State.ENROUTE and h.outbox() == []
    assert h.inbound.unmatched == 0


def test_on_several_nodes_an_unknown_id_is_refused_for_a_while(h):
    """The node that sent it may not have recorded the carrier's id yet: the receipt is
    refused with a temporary error (the carrier offers it again) for `hold_unknown` seconds,
    then taken and counted as unmatched."""
    h.inbound.hold_unknown = lambda: 10.0
    link = Link()

    def offer(seq, carrier_id):
        h.inbound.deliver(link, receipt(seq, carrier_id))
        h.clock.advance(0)
        h.store.release()
        return link.answers[-1]

    assert offer(1, "2a") == (1, Status.RX_T_APPN)
    h.clock.advance(5)
    assert offer(2, "2a") == (2, Status.RX_T_APPN)
    h.sent(1, "2a")  # recorded by the other node meanwhile
    assert offer(3, "2a") == (3, 0)
    assert h.state(1) == State.DELIVERED and h.inbound.unmatched == 0
    assert offer(4, "2b") == (4, Status.RX_T_APPN)
    h.clock.advance(10)
    assert offer(5, "2b") == (5, 0)  # nobody recorded it within the hold: taken, counted
    assert h.inbound.unmatched == 1 and h.inbound.receipts == 2
    assert offer(6, "2b") == (6, Status.RX_T_APPN)  # a new wait, were it offered again
    assert h.inbound.unmatched == 1


def test_the_text_id_is_tried_when_the_tlv_id_is_not_ours(h):
    h.sent(1, "1f")
    link = Link()
    pdu = receipt(4, "1f", tlvs={Tag.receipted_message_id: "ffff0000", Tag.message_state: 2})
    h.inbound.deliver(link, pdu)
    h.clock.advance(0)
    h.store.release()
    assert h.inbound.unmatched == 0
    assert h.state(1) == State.DELIVERED


def test_unreadable_receipts_are_taken_and_counted(h):
    link = Link()
    h.inbound.deliver(link, _pdu(5, 0x04, b"stat:DELIVRD, no id"))
    assert link.answers == [(5, 0)] and link.flushes == 1
    assert h.inbound.unmatched == 1
    h.clock.advance(0)
    assert h.writes() == []


def _pdu(seq, esm_class, text):
    return Pdu(Command.deliver_sm, seq, 0, {"esm_class": esm_class, "short_message": text})


@pytest.mark.parametrize("esm_class", [0x08, 0x10])
def test_acknowledgements_are_taken_and_not_counted(h, esm_class):
    link = Link()
    h.inbound.deliver(link, _pdu(6, esm_class, b"ack"))
    assert link.answers == [(6, 0)]
    assert (h.inbound.receipts, h.inbound.unmatched) == (0, 0)
    h.clock.advance(0)
    assert h.writes() == []


def test_a_subscriber_reply_is_answered_once_handled(h):
    link = Link()
    h.inbound.deliver(link, _pdu(7, 0x00, b"Bonjour"))  # for no account: nobody sent to them
    assert link.answers == []
    assert h.writes() == ["receive"]
    h.store.release()
    assert link.answers == [(7, 0)] and link.flushes == 1
    assert h.inbound.replies == {"unrouted": 1} and h.inbound.unmatched == 0
    assert h.log == ["reply"]


def test_a_subscriber_reply_the_store_could_not_take_is_left_at_the_carrier(h):
    h.store.fail = True
    link = Link()
    h.inbound.deliver(link, _pdu(7, 0x00, b"STOP"))
    assert link.answers == [(7, Status.RX_T_APPN)] and link.flushes == 1


def test_receipts_the_store_could_not_take_are_refused_for_later(h):
    h.sent(1, "1f")
    h.store.fail = True
    link = Link()
    h.inbound.deliver(link, receipt(8, "1f"))
    h.inbound.deliver(link, receipt(9, "1f"))
    h.clock.advance(0)
    assert link.answers == [(8, Status.RX_T_APPN), (9, Status.RX_T_APPN)]
    assert link.flushes == 1
    assert h.log == ["before"]
    assert h.state(1) == State.ENROUTE


def test_a_failure_after_the_store_write_never_answers_twice(h):
    h.sent(1, "1f")
    h.inbound._after = lambda: 1 / 0  # the outbox wake-up fails
    link = Link()
    h.inbound.deliver(link, receipt(10, "1f"))
    h.clock.advance(0)
    h.store.release()
    assert link.answers == [(10, 0)]
    assert h.state(1) == State.DELIVERED


def test_receipts_after_a_batch_make_the_next_one(h):
    link = Link()
    h.store.hold = False
    h.inbound.deliver(link, receipt(1, "a"))
    h.clock.advance(0)
    h.inbound.deliver(link, receipt(2, "b"))
    h.clock.advance(0)
    assert [len(args[0]) for _, args in h.store.calls] == [1, 1]
    assert link.answers == [(1, 0), (2, 0)]


# -- the client's receipt --------------------------------------------------------------------


def message(**values) -> Message:
    row = dict(
        id=42,
        account_id=1,
        service_type="",
        source_ton=5,
        source_npi=0,
        source="ACME",
        destination="33612345678",
        esm_class=0,
        protocol_id=0,
        priority=0,
        registered_delivery=1,
        data_coding=0,
        body=b"hello world",
        tlvs=b"",
        submitted_at=NOW - 3600,
        due_at=NOW,
        expires_at=NOW + 3600,
        state=State.ENROUTE,
        updated_at=NOW,
        multi_id=None,
        carrier="orange",
        attempts=1,
        error=None,
    )
    row.update(values)
    return Message(**row)


def test_client_receipt_text_and_tlvs():
    body, tlvs = client_receipt(message(), State.DELIVERED, 0, 1, NOW)
    assert body == (
        b"id:42 sub:001 dlvrd:001 submit date:2512312300 done date:2601010000 stat:DELIVRD"
        b" err:000 text:hello world"
    )
    assert decode_tlvs(tlvs) == {Tag.receipted_message_id: "42", Tag.message_state: 2}


def test_client_receipt_of_a_failure_in_parts():
    body, tlvs = client_receipt(message(), State.UNDELIVERABLE, 11, 3, NOW)
    assert b" sub:003 dlvrd:000 " in body and b" stat:UNDELIV err:011 " in body
    assert decode_tlvs(tlvs) == {
        Tag.receipted_message_id: "42",
        Tag.message_state: 5,
        Tag.network_error_code: bytes((8, 0, 11)),
    }


def test_client_receipt_uses_the_submit_multi_id():
    body, tlvs = client_receipt(message(id=43, multi_id=40), State.DELIVERED, 0, 1, NOW)
    assert body.startswith(b"id:40 ")
    assert decode_tlvs(tlvs)[Tag.receipted_message_id] == "40"


@pytest.mark.parametrize(
    ("values", "text"),
    [
        ({"esm_class": 0x40, "body": concat.udh(7, 2, 1) + b"part one"}, b"text:part one"),
        ({"data_coding": 8, "body": "Déjà vu".encode("utf-16-be")}, b"text:Deja vu"),
        ({"data_coding": 4, "body": b"\x00\x01\x02"}, b"text:"),
        ({"body": b"a much longer text than twenty"}, b"text:a much longer text t"),
    ],
)
def test_client_receipt_text_field(values, text):
    body, _ = client_receipt(message(**values), State.DELIVERED, 0, 1, NOW)
    assert body.endswith(text)
