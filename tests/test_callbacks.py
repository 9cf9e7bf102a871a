"""The receipt callbacks (smsc.channels.callbacks) on a `Clock`, a real store written through
a synchronous fake store, and fake HTTP and mail senders that record what they are given."""

import json

from sqlalchemy import insert, select
from stores import SyncStore
from test_queue import add_account
from twisted.internet import defer
from twisted.internet.task import Clock

from smsc.channels.callbacks import CallbackSender, receipt
from smsc.config import HttpConfig
from smsc.inbound.receipts import receipt_tlvs
from smsc.protocol.constants import Tag
from smsc.protocol.pdu import encode_tlvs
from smsc.store import outbox, schema
from smsc.store.db import writing
from smsc.store.messages import State

NOW = 1_767_225_600.0


class Calls:
    """A fake sender: each call waits on a Deferred the test fires."""

    def __init__(self):
        self.calls: list[tuple[str, object, defer.Deferred]] = []

    def __call__(self, where, what):
        d = defer.Deferred()
        self.calls.append((where, what, d))
        return d

    def answer(self, ok=True):
        where, what, d = self.calls.pop(0)
        d.callback(None) if ok else d.errback(RuntimeError("HTTP 500"))
        return where, what


class Harness:
    def __init__(self, engine):
        self.engine = engine
        self.clock = Clock()
        self.clock.advance(NOW)
        self.store = SyncStore(engine)
        self.posts, self.mails = Calls(), Calls()
        config = HttpConfig(callback_retry_max=60.0)
        self.sender = CallbackSender(self.store, self.clock, config, self.mails, self.posts)
        with writing(engine) as conn:
            self.account = add_account(conn)

    def add(self, url, message_id=41, state=State.DELIVERED, error=0, **values) -> int:
        row = dict(
            account_id=self.account, message_id=message_id, source_ton=1, source_npi=1,
            source="33600000001", destination="36000", esm_class=0x04, data_coding=0,
            body=b"id:41 stat:DELIVRD", tlvs=encode_tlvs(receipt_tlvs("41", state, error)),
            state=outbox.PENDING, attempts=0, created_at=NOW, due_at=NOW,
            expires_at=NOW + 3600, url=url,
        )  # fmt: skip
        row.update(values)
        with writing(self.engine) as conn:
            return conn.execute(insert(schema.outbox).values(**row)).inserted_primary_key[0]

    def states(self):
        with self.engine.connect() as conn:
            o = schema.outbox
            rows = conn.execute(select(o.c.id, o.c.state, o.c.due_at))
            return {r.id: (r.state, r.due_at) for r in rows}


def test_a_receipt_is_posted_as_json_and_marked_done_when_answered(engine):
    h = Harness(engine)
    row = h.add("http://127.0.0.1:9/receipts", state=State.UNDELIVERABLE, error=34)
    h.sender.start()
    h.clock.advance(0)
    url, body = h.posts.answer()
    assert url == "http://127.0.0.1:9/receipts"
    assert json.loads(body) == {
        "id": "41",
        "to": "33600000001",
        "status": "UNDELIVERABLE",
        "error": 34,
        "done_at": "2026-01-01T00:00:00+00:00",
    }
    h.clock.advance(0)
    assert h.states()[row][0] == outbox.DONE


def test_a_refused_callback_is_tried_again_later_and_later(engine):
    h = Harness(engine)
    row = h.add("https://hooks.example/receipts")
    h.sender.start()
    h.clock.advance(0)
    h.posts.answer(ok=False)
    h.clock.advance(0)
    state, due = h.states()[row]
    assert state == outbox.PENDING and 4 <= due - NOW <= 6  # 5 s, with jitter
    h.clock.advance(3)
    assert h.posts.calls == []  # not before it is due
    h.clock.advance(3)
    h.posts.answer(ok=False)
    h.clock.advance(0)
    state, due = h.states()[row]
    assert state == outbox.PENDING and 8 <= due - h.clock.seconds() <= 12  # doubled
    h.clock.advance(12)
    h.posts.answer()
    h.clock.advance(0)
    assert h.states()[row][0] == outbox.DONE


def test_the_wait_between_tries_stops_growing_at_the_maximum(engine):
    h = Harness(engine)
    row = h.add("http://127.0.0.1:9/r")
    with writing(engine) as conn:  # it failed many times already
        conn.execute(schema.outbox.update().values(attempts=20))
    h.sender.start()
    h.clock.advance(0)
    h.posts.answer(ok=False)
    h.clock.advance(0)
    assert h.states()[row][1] - NOW <= 60 * 1.2


def test_mailto_receipts_go_to_the_mailer_and_smpp_rows_are_left_alone(engine):
    h = Harness(engine)
    smpp = h.add(None)
    mailed = h.add("mailto:ops@example.com")
    h.sender.start()
    h.clock.advance(0)
    address, item = h.mails.answer()
    assert address == "ops@example.com" and item.id == mailed
    assert receipt(item)["status"] == "DELIVERED"
    h.clock.advance(0)
    assert h.posts.calls == []
    assert h.states() == {smpp: (outbox.PENDING, NOW), mailed: (outbox.DONE, NOW)}


def test_without_a_mailer_a_mailto_receipt_waits_for_one(engine):
    h = Harness(engine)
    h.sender.mailer = None
    row = h.add("mailto:ops@example.com")
    h.sender.start()
    h.clock.advance(0)
    h.clock.advance(0)
    assert h.states()[row][0] == outbox.PENDING
    assert h.states()[row][1] > NOW


def test_no_more_claims_after_stop(engine):
    h = Harness(engine)
    h.sender.start()
    h.clock.advance(0)
    h.sender.stop()
    h.add("http://127.0.0.1:9/r")
    h.clock.advance(10)
    assert h.posts.calls == []


def test_the_smpp_outbox_never_claims_a_row_that_goes_by_url(engine):
    h = Harness(engine)
    smpp = h.add(None)
    h.add("http://127.0.0.1:9/r")
    with writing(engine) as conn:
        claimed = outbox.claim(conn, [h.account], NOW, 10)
    assert [item.id for item in claimed] == [smpp]


def test_callbacks_are_counted_by_how_and_result(engine):
    from smsc.metrics import Metrics

    h = Harness(engine)
    h.sender.metrics = metrics = Metrics()
    h.add("http://127.0.0.1:9/r")
    h.add("mailto:ops@example.com")
    h.sender.start()
    h.clock.advance(0)
    h.posts.answer(ok=False)
    h.mails.answer()
    count = metrics.callbacks.labels
    assert count("http", "failed")._value.get() == 1
    assert count("mail", "sent")._value.get() == 1
    assert count("http", "sent")._value.get() == 0


def test_a_subscribers_reply_is_posted_as_a_reply(engine):
    h = Harness(engine)
    h.add("https://shop.example/replies", message_id=None, esm_class=0, data_coding=8,
          body="Ça marche, merci !".encode("utf-16-be"), tlvs=b"")  # fmt: skip
    h.add("https://shop.example/replies", message_id=None, esm_class=0, body=b"",
          tlvs=encode_tlvs({Tag.message_payload: b"A long one " * 30}))  # fmt: skip
    h.sender.start()
    h.clock.advance(0)
    (_, short), (_, long) = h.posts.answer(), h.posts.answer()
    assert json.loads(short) == {
        "type": "reply",
        "from": "33600000001",
        "to": "36000",
        "text": "Ça marche, merci !",
        "received_at": "2026-01-01T00:00:00+00:00",
    }
    assert json.loads(long)["text"] == "A long one " * 30
