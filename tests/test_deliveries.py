"""The outbox sender (smsc.deliveries) on a `Clock`, a real SQLite store written through a
synchronous fake store, and a fake server whose receiver sessions record what they are sent."""

from sqlalchemy import insert, select
from stores import SyncStore
from twisted.internet.task import Clock

from smsc.config import QueueConfig
from smsc.deliveries import OutboxSender
from smsc.protocol.constants import Command, Status, Tag
from smsc.protocol.pdu import encode_tlvs
from smsc.store import outbox, schema
from smsc.store.db import writing

NOW = 1_767_225_600.0
RETRY = 30.0


class _State:
    def __init__(self, window):
        self.out_free = window


class FakeSession:
    """A receiver bind of a client: `sent` holds (params, tlvs, item id)."""

    def __init__(self, window=10):
        self.session = _State(window)
        self.sent = []
        self.flushes = 0

    def send(self, command, params, tlvs, context):
        assert command is Command.deliver_sm
        self.session.out_free -= 1
        sender, item_id = context
        self.sender = sender
        self.sent.append((params, tlvs, item_id))

    def flush(self):
        self.flushes += 1

    def answer(self, status=0):
        """The client answers the oldest deliver_sm."""
        params, tlvs, item_id = self.sent.pop(0)
        self.session.out_free += 1
        self.sender.answered(item_id, status)
        return item_id

    def lose(self):
        """The oldest deliver_sm got no answer in time (or the bind went)."""
        _, _, item_id = self.sent.pop(0)
        self.session.out_free += 1
        self.sender.lost(item_id)


class FakeServer:
    def __init__(self):
        self.bound: dict[int, list[FakeSession]] = {}

    def receivers(self):
        return {a: list(s) for a, s in self.bound.items() if s}


class Harness:
    def __init__(self, engine):
        self.engine = engine
        self.clock = Clock()
        self.clock.advance(NOW)
        self.store = SyncStore(engine)
        self.server = FakeServer()
        self.sender = OutboxSender(
            self.store, self.clock, self.server, QueueConfig(outbox_retry=RETRY)
        )
        with writing(engine) as conn:
            self.accounts = [
                conn.execute(
                    insert(schema.accounts).values(
                        system_id=name,
                        password_hash="-",
                        max_binds=1,
                        tps=0,
                        enabled=True,
                        created_at=NOW,
                    )
                ).inserted_primary_key[0]
                for name in ("acme", "globex")
            ]

    def add(self, account=0, **values) -> int:
        row = dict(
            account_id=self.accounts[account],
            message_id=None,
            source_ton=1,
            source_npi=1,
            source="33612345678",
            destination="36000",
            esm_class=0x04,
            data_coding=0,
            body=b"id:1 stat:DELIVRD",
            tlvs=b"",
            state=outbox.PENDING,
            attempts=0,
            created_at=NOW,
            due_at=NOW,
            expires_at=NOW + 3600,
        )
        row.update(values)
        with writing(self.engine) as conn:
            return conn.execute(insert(schema.outbox).values(**row)).inserted_primary_key[0]

    def bind(self, account=0, window=10) -> FakeSession:
        session = FakeSession(window)
        self.server.bound.setdefault(self.accounts[account], []).append(session)
        return session

    def start(self):
        self.sender.start()
        self.run()

    def run(self, seconds=0.0):
        self.clock.advance(seconds)

    def rows(self):
        with self.engine.connect() as conn:
            o = schema.outbox
            return {
                r.id: (r.state, r.due_at)
                for r in conn.execute(select(o.c.id, o.c.state, o.c.due_at))
            }


def sent_ids(session):
    return [item_id for _, _, item_id in session.sent]


def test_nothing_is_claimed_without_a_receiver(engine):
    h = Harness(engine)
    h.add()
    h.start()
    h.run(5)
    assert h.store.claims() == []
    assert h.store.calls == []


def test_claims_only_for_the_accounts_with_a_receiver(engine):
    h = Harness(engine)
    a1, b1, a2 = h.add(0), h.add(1), h.add(0)
    rx = h.bind(0)
    h.start()
    assert sent_ids(rx) == [a1, a2]
    assert h.rows()[b1] == (outbox.PENDING, NOW)
    assert h.store.claims()[0][0] == [h.accounts[0]]


def test_claims_only_what_the_windows_can_take(engine):
    h = Harness(engine)
    ids = [h.add(0) for _ in range(3)] + [h.add(1)]
    rx = h.bind(0, window=2)
    full = h.bind(1, window=0)  # globex is bound but its window is full
    h.start()
    assert sent_ids(rx) == ids[:2] and full.sent == []
    assert h.store.claims() == [([h.accounts[0]], NOW, 2)]
    assert h.rows()[ids[2]] == (outbox.PENDING, NOW)
    assert h.rows()[ids[3]] == (outbox.PENDING, NOW)  # never claimed, so never delayed
    assert rx.flushes == 1  # one write for the batch


def test_rows_that_found_no_room_are_due_again_at_once(engine):
    h = Harness(engine)
    old = [h.add(0), h.add(0)]
    new = h.add(1)
    acme, globex = h.bind(0, window=1), h.bind(1, window=1)
    h.start()  # two rows claimed (the room of both), both acme's: one has no room
    assert sent_ids(acme) == [old[0]]
    assert sent_ids(globex) == [new]  # claimed next, acme being full
    assert h.rows()[old[1]] == (outbox.PENDING, NOW)
    acme.answer()
    h.run()
    assert sent_ids(acme) == [old[1]]


def test_a_deliver_sm_carries_the_rows_fields(engine):
    h = Harness(engine)
    tlvs = {Tag.receipted_message_id: "42", Tag.message_state: 2}
    h.add(
        source_ton=1,
        source_npi=1,
        source="33612345678",
        destination="36000",
        esm_class=0x04,
        data_coding=0,
        body=b"id:42 stat:DELIVRD",
        tlvs=encode_tlvs(tlvs),
    )
    rx = h.bind()
    h.start()
    ((params, got_tlvs, _),) = rx.sent
    assert params == {
        "source_addr_ton": 1,
        "source_addr_npi": 1,
        "source_addr": "33612345678",
        "dest_addr_ton": 0,  # a short code
        "dest_addr_npi": 1,
        "destination_addr": "36000",
        "esm_class": 0x04,
        "data_coding": 0,
        "short_message": b"id:42 stat:DELIVRD",
    }
    assert got_tlvs == tlvs


def test_the_clients_sender_is_addressed_as_it_was_given(engine):
    h = Harness(engine)
    for destination in ("33699999999", "ACME", "36000"):
        h.add(destination=destination)
    rx = h.bind()
    h.start()
    got = [(p["destination_addr"], p["dest_addr_ton"], p["dest_addr_npi"]) for p, _, _ in rx.sent]
    assert got == [("33699999999", 1, 1), ("ACME", 5, 0), ("36000", 0, 1)]


def test_a_long_body_goes_in_message_payload(engine):
    h = Harness(engine)
    body = b"m" * 255
    h.add(esm_class=0, data_coding=8, body=body)
    h.add(esm_class=0, body=b"s" * 254)
    rx = h.bind()
    h.start()
    (long_params, long_tlvs, _), (short_params, short_tlvs, _) = rx.sent
    assert long_params["short_message"] == b"" and long_tlvs == {Tag.message_payload: body}
    assert long_params["data_coding"] == 8
    assert short_params["short_message"] == b"s" * 254 and short_tlvs == {}


def test_an_answered_deliver_sm_is_done(engine):
    h = Harness(engine)
    a, b = h.add(), h.add()
    rx = h.bind()
    h.start()
    assert rx.answer() == a
    h.run()
    assert h.rows()[a] == (outbox.DONE, NOW)
    assert h.rows()[b][0] == outbox.SENDING
    assert h.sender.delivered == 1


def test_a_refused_or_lost_deliver_sm_is_tried_again_later(engine):
    h = Harness(engine)
    a, b = h.add(), h.add()
    rx = h.bind()
    h.start()
    rx.answer(Status.RX_T_APPN)
    rx.lose()
    h.run()
    assert h.rows() == {a: (outbox.PENDING, NOW + RETRY), b: (outbox.PENDING, NOW + RETRY)}
    assert h.sender.delivered == 0
    h.run(RETRY - 0.5)
    assert sent_ids(rx) == []
    h.run(0.5)
    assert sent_ids(rx) == [a, b]


def test_a_wake_during_a_claim_claims_again_at_once(engine):
    h = Harness(engine)
    a = h.add()
    rx = h.bind()
    h.store.hold = "claim"
    h.start()
    b = h.add()
    h.sender.wake()  # a receipt was queued meanwhile
    h.run()
    h.store.hold = None
    h.store.release()
    h.run()
    assert sent_ids(rx) == [a, b]


def test_a_new_receiver_gets_what_waited(engine):
    h = Harness(engine)
    a = h.add()
    h.start()
    rx = h.bind()
    h.sender.wake()  # as the server does on a bind
    h.run()
    assert sent_ids(rx) == [a]
