"""The dispatcher (smsc.routing.dispatcher) on a `Clock`, a real SQLite store written through a
synchronous fake store, and fake carriers: claims, routing and failover, cutting long texts,
and what it writes back when carriers take, refuse or lose parts."""

import pytest
from carriers import FakeCarrier
from sqlalchemy import func, insert, select
from stores import SyncStore
from twisted.internet.task import Clock

from smsc.config import QueueConfig
from smsc.inbound import receipts
from smsc.inbound.handler import client_receipt
from smsc.metrics import Metrics
from smsc.protocol import concat
from smsc.protocol.constants import Status, Tag
from smsc.protocol.pdu import encode_tlvs
from smsc.routing.dispatcher import RECEIPT_SWEEP, Dispatcher
from smsc.routing.router import Router
from smsc.store import queue, routing, schema
from smsc.store.db import writing
from smsc.store.messages import State
from smsc.store.queue import Settle

NOW = 1_767_225_600.0
ORANGE = "33661234567"  # orange's prefix 3366, sfr's second choice
OTHER = "33199999999"  # no prefix: the default route


class Harness:
    def __init__(self, engine, carriers, default=("bouygues",), **queue):
        self.engine = engine
        self.clock = Clock()
        self.clock.advance(NOW)
        self.store = SyncStore(engine)
        self.carriers = {c.name: c for c in carriers}
        names = {c.name for c in carriers}
        router = Router([c.config for c in carriers], [n for n in default if n in names])
        self.config = QueueConfig(**queue)
        self.metrics = Metrics()
        self.dispatcher = Dispatcher(
            self.store,
            self.clock,
            list(carriers),
            router,
            self.config,
            lambda: Settle(self.clock.seconds(), 3600.0, client_receipt),
            routing.ported,
            receipts.normalise,
            metrics=self.metrics,
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

    def add(self, message_id, destination=ORANGE, **values):
        row = dict(
            id=message_id,
            account_id=self.account,
            service_type="",
            source_ton=5,
            source_npi=0,
            source="ACME",
            destination=destination,
            esm_class=0,
            protocol_id=0,
            priority=0,
            registered_delivery=1,
            data_coding=0,
            body=b"hello",
            tlvs=b"",
            submitted_at=NOW,
            due_at=NOW,
            expires_at=NOW + 3600,
            state=State.ACCEPTED,
            updated_at=NOW,
        )
        row.update(values)
        with writing(self.engine) as conn:
            conn.execute(insert(schema.messages).values(**row))

    def run(self, seconds=0.0):
        self.clock.advance(seconds)

    def start(self):
        self.dispatcher.start()
        self.run()

    def row(self, message_id):
        with self.engine.connect() as conn:
            m = schema.messages
            return conn.execute(select(m).where(m.c.id == message_id)).one()

    def states(self):
        with self.engine.connect() as conn:
            m = schema.messages
            return dict(conn.execute(select(m.c.id, m.c.state)).all())

    def count(self, state):
        return sum(1 for s in self.states().values() if s == state)

    def parts(self, carrier):
        return self.carriers[carrier].queue

    def stored_parts(self):
        with self.engine.connect() as conn:
            p = schema.message_parts
            query = select(p.c.message_id, p.c.seq, p.c.carrier, p.c.carrier_id)
            return [tuple(r) for r in conn.execute(query.order_by(p.c.message_id, p.c.seq))]


def outbox_count(engine):
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(schema.outbox)).scalar()


def orange_sfr(engine, orange_bound=True, sfr_bound=True, **queue):
    return Harness(
        engine,
        [
            FakeCarrier("orange", bound=orange_bound, prefixes=["3366"], priority=1),
            FakeCarrier("sfr", bound=sfr_bound, prefixes=["3366"], priority=2),
        ],
        default=(),
        **queue,
    )


# -- claiming --------------------------------------------------------------------------------


def test_nothing_is_claimed_while_no_carrier_is_bound(engine):
    h = orange_sfr(engine, orange_bound=False, sfr_bound=False)
    h.add(1)
    h.start()
    h.run(5)
    assert h.store.names() == []
    assert h.states() == {1: State.ACCEPTED}
    h.carriers["sfr"].bound = True
    h.dispatcher.room_changed()
    h.run()
    assert h.states() == {1: State.SENDING}
    assert len(h.parts("sfr")) == 1


def test_claims_only_the_room_the_carriers_have(engine):
    h = Harness(
        engine,
        [FakeCarrier("orange", room=3, prefixes=["3366"]), FakeCarrier("sfr", room=2)],
        default=("sfr",),
    )
    for i in range(1, 9):
        h.add(i, ORANGE if i % 2 else OTHER)
    h.start()
    claims = [args[1] for name, args in h.store.calls if name == "claim"]
    assert claims == [5]  # 3 + 2: then no room is left, and no more claims
    assert h.count(State.SENDING) == 5 and h.count(State.ACCEPTED) == 3
    h.run(3)
    assert [args[1] for name, args in h.store.calls if name == "claim"] == [5]
    h.carriers["orange"].queue.clear()  # the carrier sent its queue
    h.dispatcher.room_changed()
    h.run()
    assert h.count(State.SENDING) == 8


def test_claims_in_batches_of_claim_batch_while_full_batches_come(engine):
    h = orange_sfr(engine, claim_batch=4)
    for i in range(1, 11):
        h.add(i)
    h.start()
    assert [args[1] for name, args in h.store.calls if name == "claim"] == [4, 4, 4]
    assert len(h.parts("orange")) == 10
    h.run(0.4)
    assert h.store.names().count("claim") == 3  # a short batch: rest until woken
    h.run(0.1)
    assert h.store.names().count("claim") == 4  # the idle look


def test_a_wake_during_a_claim_claims_again_at_once(engine):
    h = orange_sfr(engine)
    h.add(1)
    h.store.hold = "claim"
    h.start()
    assert h.store.names() == ["claim"]
    h.add(2)
    h.dispatcher.wake()  # a new message was stored meanwhile
    h.run()
    h.store.hold = None
    h.store.release()
    h.run()
    assert h.store.names().count("claim") == 2
    assert h.states() == {1: State.SENDING, 2: State.SENDING}


# -- routing ---------------------------------------------------------------------------------


def test_the_first_bound_carrier_of_the_route_takes_the_message(engine):
    h = orange_sfr(engine)
    h.add(1)
    h.start()
    assert len(h.parts("orange")) == 1 and h.parts("sfr") == []
    assert h.parts("orange")[0].message.carrier is h.carriers["orange"]


def test_fails_over_to_the_next_carrier_by_priority(engine):
    h = orange_sfr(engine, orange_bound=False)
    h.add(1)
    h.start()
    assert h.parts("orange") == [] and len(h.parts("sfr")) == 1


def test_a_ported_number_goes_to_its_carrier_first(engine):
    h = orange_sfr(engine)
    with writing(engine) as conn:
        conn.execute(insert(schema.mnp).values(number=ORANGE, carrier="sfr"))
    h.add(1)
    h.add(2, destination="33669999999")
    h.start()
    assert [p.message.due.id for p in h.parts("sfr")] == [1]
    assert [p.message.due.id for p in h.parts("orange")] == [2]


@pytest.mark.parametrize("destination", [OTHER, ORANGE])
def test_a_message_no_bound_carrier_can_take_waits_retry_delay(engine, destination):
    h = Harness(
        engine,
        [FakeCarrier("orange", bound=False, prefixes=["3366"]), FakeCarrier("sfr")],
        default=(),
        retry_delay=7.0,
    )
    h.add(1, destination)  # OTHER: no route at all; ORANGE: its only carrier is down
    h.start()
    row = h.row(1)
    assert (row.state, row.due_at, row.attempts) == (State.ACCEPTED, NOW + 7.0, 1)
    assert h.parts("sfr") == []
    h.run(6.9)
    assert h.row(1).attempts == 1
    h.carriers["orange"].bound = True
    h.run(0.6)
    assert h.row(1).attempts == 2 and (len(h.parts("orange")) == 1) == (destination == ORANGE)


# -- cutting ---------------------------------------------------------------------------------


def cut(engine, long_messages="udh", message_id=1, **values):
    h = Harness(engine, [FakeCarrier("orange", long_messages=long_messages, prefixes=["3"])])
    h.add(message_id, **values)
    h.start()
    return h.parts("orange")


def test_a_short_message_goes_in_one_part_with_a_receipt_asked(engine):
    tlvs = encode_tlvs({Tag.user_message_reference: 7})
    (part,) = cut(
        engine,
        registered_delivery=0,
        esm_class=0x02,
        priority=1,
        protocol_id=0x41,
        service_type="CMT",
        source="36000",
        source_ton=3,
        source_npi=9,
        data_coding=8,
        body=b"\x00h\x00i",
        tlvs=tlvs,
    )
    assert (part.seq, part.cost) == (1, 1)
    assert part.params == {
        "service_type": "CMT",
        "source_addr_ton": 3,
        "source_addr_npi": 9,
        "source_addr": "36000",
        "dest_addr_ton": 1,
        "dest_addr_npi": 1,
        "destination_addr": ORANGE,
        "esm_class": 0x02,
        "protocol_id": 0x41,
        "priority_flag": 1,
        "registered_delivery": 1,  # always: the carrier's receipts settle the message
        "data_coding": 8,
        "short_message": b"\x00h\x00i",
    }
    assert part.tlvs == {Tag.user_message_reference: 7}


def test_a_long_text_goes_in_udh_parts(engine):
    body = bytes(range(48, 48 + 50)) * 4  # 200 septets: 153 + 47
    parts = cut(engine, "udh", message_id=300, body=body)
    assert [p.seq for p in parts] == [1, 2]
    for p in parts:
        assert p.params["esm_class"] == 0x40 and p.cost == 1 and p.tlvs == {}
        assert p.params["short_message"][:6] == concat.udh(300 & 0xFF, 2, p.seq)
    assert b"".join(p.params["short_message"][6:] for p in parts) == body
    assert len(parts[0].params["short_message"]) == 6 + 153


def test_a_long_text_goes_in_sar_parts(engine):
    body = b"x" * 300  # 8-bit data: 134 + 134 + 32
    tlvs = encode_tlvs({Tag.user_message_reference: 9})
    parts = cut(engine, "sar", message_id=70000, body=body, data_coding=4, tlvs=tlvs)
    assert [p.tlvs for p in parts] == [
        {
            Tag.user_message_reference: 9,
            Tag.sar_msg_ref_num: 70000 & 0xFFFF,
            Tag.sar_total_segments: 3,
            Tag.sar_segment_seqnum: seq,
        }
        for seq in (1, 2, 3)
    ]
    assert all(p.params["esm_class"] == 0 for p in parts)
    assert b"".join(p.params["short_message"] for p in parts) == body


@pytest.mark.parametrize(("size", "cost"), [(161, 2), (460, 4)])
def test_a_long_text_goes_in_one_message_payload_costing_its_parts(engine, size, cost):
    body = b"y" * size
    (part,) = cut(engine, "payload", body=body)
    assert part.params["short_message"] == b""
    assert part.tlvs == {Tag.message_payload: body}
    assert part.cost == cost


def test_a_text_the_client_cut_itself_goes_as_it_is(engine):
    body = concat.udh(9, 2, 1) + b"z" * 153
    for method in ("udh", "sar", "payload"):
        with writing(engine) as conn:
            conn.execute(schema.messages.delete())
            conn.execute(schema.accounts.delete())
        (part,) = cut(engine, method, esm_class=0x40, body=body)
        assert part.params["short_message"] == body and part.params["esm_class"] == 0x40
        assert part.tlvs == {} and part.cost == 1


def test_a_text_that_cannot_be_cut_is_refused_and_the_batch_goes_on(engine):
    h = Harness(engine, [FakeCarrier("orange", prefixes=["3"])])
    # UCS-2 made of surrogate pairs: 132 octets a part, 259 parts, more than 255.
    h.add(1, data_coding=8, body=b"\xd8\x3d\xde\x00" * 8542, registered_delivery=1)
    h.add(2)
    h.start()
    assert [p.message.due.id for p in h.parts("orange")] == [2]
    row = h.row(1)
    assert (row.state, row.error) == (State.REJECTED, Status.RSYSERR)
    assert outbox_count(engine) == 1  # its failure receipt


# -- what carriers did -----------------------------------------------------------------------


def claimed(engine, *bodies):
    h = orange_sfr(engine)
    for i, body in enumerate(bodies, start=1):
        h.add(i, body=body)
    h.start()
    return h, h.parts("orange")


LONG = b"L" * 200  # two UDH parts


def test_sent_refused_and_lost_parts_are_written_in_one_flush(engine):
    h, parts = claimed(engine, LONG, b"two", b"three", b"four")
    d, before = h.dispatcher, len(h.store.calls)
    d.part_sent(parts[0], "00AB")  # 1 of message 1
    d.part_sent(parts[2], "CD")  # message 2
    d.part_failed(parts[3], Status.RSUBMITFAIL)  # message 3
    d.part_lost(parts[4])  # message 4
    h.run()
    names = h.store.names()[before:]
    assert names[:3] == ["record_taken", "fail", "put_back"]
    assert names[3:] == ["claim"]  # what was lost is claimed again at once
    assert h.stored_parts() == [(1, 1, "orange", "ab"), (2, 1, "orange", "cd")]
    assert [h.row(i).state for i in (1, 2, 3, 4)] == [
        State.SENDING,
        State.ENROUTE,
        State.REJECTED,
        State.SENDING,
    ]
    assert (h.row(3).error, h.row(3).carrier, h.row(2).carrier) == (0x45, "orange", "orange")
    assert h.row(4).attempts == 2
    d.part_sent(parts[1], "0ef")  # the last part of message 1
    h.run()
    assert h.row(1).state == State.ENROUTE
    assert h.stored_parts()[1] == (1, 2, "orange", "ef")


def test_nothing_more_is_written_for_a_message_that_ended(engine):
    h, parts = claimed(engine, LONG)
    d, before = h.dispatcher, len(h.store.calls)
    d.part_failed(parts[1], Status.RINVDSTADR)
    d.part_sent(parts[0], "a1")
    d.part_lost(parts[0])
    d.part_failed(parts[0], Status.RSYSERR)
    h.run()
    assert h.store.names()[before:] == ["fail"]
    assert (h.row(1).state, h.row(1).error) == (State.REJECTED, Status.RINVDSTADR)
    assert h.stored_parts() == []
    assert parts[0].message.finished


def test_a_lost_part_sends_the_whole_message_again(engine):
    h, parts = claimed(engine, LONG)
    h.dispatcher.part_sent(parts[0], "a1")
    h.dispatcher.part_lost(parts[1])
    h.run()
    assert h.row(1).attempts == 2
    assert h.stored_parts() == []  # the new attempt forgets the old one's parts
    again = h.parts("orange")[2:]
    assert [p.seq for p in again] == [1, 2] and again[0].message is not parts[0].message


def test_a_carrier_that_goes_down_hands_its_queue_to_the_next(engine):
    h, parts = claimed(engine, b"one", b"two")
    orange = h.carriers["orange"]
    orange.bound = False
    h.dispatcher.carrier_down(orange)
    h.run()
    assert orange.queue == []
    assert [p.message.due.id for p in h.parts("sfr")] == [1, 2]
    assert [h.row(i).attempts for i in (1, 2)] == [2, 2]


def test_flush_writes_at_once_for_the_receipts_that_follow(engine):
    h, parts = claimed(engine, b"one")
    before = len(h.store.calls)
    h.dispatcher.part_sent(parts[0], "x1")
    h.dispatcher.flush()  # no clock turn: the receipt handler calls it first
    assert h.store.names()[before:] == ["record_taken"]
    assert h.stored_parts() == [(1, 1, "orange", "x1")]
    h.run()
    assert h.store.names()[before:] == ["record_taken"]  # nothing twice


def test_a_fast_receipt_settles_the_message_when_it_is_marked_sent(engine):
    h, parts = claimed(engine, LONG)
    h.dispatcher.part_sent(parts[0], "p1")
    h.dispatcher.flush()
    settle = Settle(NOW, 3600.0, client_receipt)
    with writing(engine) as conn:
        assert queue.record_receipts(conn, [("orange", ("p1",), "", State.DELIVERED, 0)], settle)
    h.dispatcher.part_sent(parts[1], "p2")
    h.run()
    assert h.row(1).state == State.ENROUTE  # part 2 has no receipt yet
    with writing(engine) as conn:
        queue.record_receipts(conn, [("orange", ("p2",), "", State.DELIVERED, 0)], settle)
    assert h.row(1).state == State.DELIVERED
    assert outbox_count(engine) == 1


# -- receipts that never came ------------------------------------------------------------------


def sent_long_ago(h, message_id, at):
    """A message that went to orange at `at` and still waits for its receipt."""
    h.add(message_id, state=State.ENROUTE, carrier="orange", due_at=at, updated_at=at)
    part = dict(message_id=message_id, seq=1, carrier="orange", carrier_id=f"c{message_id}",
                state=State.ENROUTE, sent_at=at, updated_at=at)  # fmt: skip
    with writing(h.engine) as conn:
        conn.execute(insert(schema.message_parts).values(**part))


def timeouts(h) -> float:
    return h.metrics.registry.get_sample_value("smsc_receipt_timeouts_total")


def test_a_message_whose_receipt_never_came_ends_unknown_on_the_clock(engine):
    h = orange_sfr(engine, receipt_timeout=600.0)
    sent_long_ago(h, 1, NOW - 3600)
    sent_long_ago(h, 2, NOW - 60)
    h.start()
    assert h.states() == {1: State.ENROUTE, 2: State.ENROUTE}  # the first look is a minute in
    h.run(RECEIPT_SWEEP)
    assert h.states() == {1: State.UNKNOWN, 2: State.ENROUTE}
    assert outbox_count(engine) == 1  # its client asked for a receipt
    assert timeouts(h) == 1
    for _ in range(10):
        h.run(RECEIPT_SWEEP)
    assert h.states() == {1: State.UNKNOWN, 2: State.UNKNOWN}
    assert outbox_count(engine) == 2
    assert timeouts(h) == 2
    h.dispatcher.stop()
    calls = len(h.store.calls)
    h.run(10 * RECEIPT_SWEEP)
    assert len(h.store.calls) == calls  # stopped: no more looks


def test_the_sweep_goes_on_while_batches_come_full(engine):
    h = orange_sfr(engine, receipt_timeout=600.0, claim_batch=2)
    for i in range(1, 6):
        sent_long_ago(h, i, NOW - 3600)
    h.start()
    h.run(RECEIPT_SWEEP)
    assert h.count(State.UNKNOWN) == 5  # 2 + 2 + 1 in one look
    assert timeouts(h) == 5
    assert [n for n, _ in h.store.calls].count("time_out") == 3


def test_a_receipt_timeout_shorter_than_a_minute_is_looked_for_as_often(engine):
    h = orange_sfr(engine, receipt_timeout=5.0)
    sent_long_ago(h, 1, NOW - 3600)
    h.start()
    h.run(4.9)
    assert h.states() == {1: State.ENROUTE}
    h.run(0.2)
    assert h.states() == {1: State.UNKNOWN}


def test_a_receipt_timeout_of_0_waits_for_ever(engine):
    h = orange_sfr(engine, receipt_timeout=0.0)
    sent_long_ago(h, 1, NOW - 30 * 86400)
    h.start()
    h.run(10 * RECEIPT_SWEEP)
    assert h.states() == {1: State.ENROUTE}
    assert "time_out" not in [n for n, _ in h.store.calls]
