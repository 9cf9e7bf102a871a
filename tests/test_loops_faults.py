"""The dispatcher and the outbox sender through a store outage: their claims go on failing
(one log line, no traceback a try) and succeed again once the store is back, and what they
could not write down meanwhile is kept and written then, rather than left SENDING until the
next start. After `stop` they claim nothing more, but still write what they hear.

The store is test_dispatcher's / test_deliveries' synchronous store, made to refuse every write
while `down` (as the writer does while it waits to connect again).
"""

import pytest
from test_deliveries import Harness as OutboxHarness
from test_dispatcher import LONG, orange_sfr
from twisted.internet import defer
from twisted.logger import formatEvent, globalLogPublisher

from smsc.store import outbox
from smsc.store.faults import StoreUnavailable
from smsc.store.messages import State


@pytest.fixture
def logged():
    """The log lines written meanwhile (a traceback shows as its text)."""
    events = []
    globalLogPublisher.addObserver(events.append)
    yield lambda: [
        formatEvent(e) + ("Traceback " + e["log_failure"].getTraceback() if "log_failure" in e
                          else "")
        for e in events
    ]  # fmt: skip
    globalLogPublisher.removeObserver(events.append)


def run(h, seconds: float) -> None:
    """Let `seconds` pass in steps (a Clock jumps: what is scheduled on the way would wait)."""
    for _ in range(round(seconds / 0.25)):
        h.run(0.25)


def outage(store) -> None:
    """Give the store a `down` switch: while set, writes fail as the writer's do."""
    write = store.write
    store.down = False
    store.refused = []

    def maybe(fn, *args, **kw):
        if store.down:
            store.refused.append(fn.__name__)
            return defer.fail(StoreUnavailable("OperationalError: connection refused"))
        return write(fn, *args, **kw)

    store.write = maybe


def test_dispatcher_claims_through_an_outage_and_writes_what_it_kept(engine, logged):
    h = orange_sfr(engine)
    outage(h.store)
    for i, body in enumerate((LONG, b"two", b"three", b"four"), start=1):
        h.add(i, body=body)
    h.start()
    parts = h.parts("orange")
    d = h.dispatcher
    h.store.down = True
    d.part_sent(parts[0], "00AB")  # message 1: one part of two
    d.part_sent(parts[1], "00AC")  # …and the other: ENROUTE
    d.part_sent(parts[2], "CD")  # message 2
    d.part_failed(parts[3], 0x45)  # message 3
    d.part_lost(parts[4])  # message 4
    h.run()
    assert h.store.refused[:3] == ["record_taken", "fail", "put_back"]
    assert [h.row(i).state for i in (1, 2, 3, 4)] == [State.SENDING] * 4  # nothing yet
    run(h, 5.0)  # claims and the records kept are tried again, and fail again
    assert h.store.refused.count("claim") >= 5
    assert h.store.refused.count("record_taken") >= 4

    h.store.down = False
    run(h, 1.0)
    assert [h.row(i).state for i in (1, 2, 3)] == [State.ENROUTE, State.ENROUTE, State.REJECTED]
    assert h.row(4).attempts == 2  # put back, and claimed again
    assert h.stored_parts() == [
        (1, 1, "orange", "ab"),
        (1, 2, "orange", "ac"),
        (2, 1, "orange", "cd"),
    ]
    written = len(h.store.calls)
    run(h, 5.0)
    assert "record_taken" not in h.store.names()[written:]  # written once, not again
    lines = logged()
    assert sum("claiming due messages failed, store unavailable" in line for line in lines) == 1
    assert any("claiming due messages works again" in line for line in lines)
    assert not any("Traceback" in line for line in lines)


def test_a_stopped_dispatcher_claims_nothing_but_still_writes(engine):
    h = orange_sfr(engine)
    h.add(1)
    h.start()
    (part,) = h.parts("orange")
    h.dispatcher.stop()
    h.add(2)
    h.dispatcher.wake()
    h.dispatcher.part_lost(part)  # put back: it would claim again at once, were it running
    h.run(5.0)
    assert h.store.names().count("claim") == 1
    assert h.row(1).state == State.ACCEPTED and h.row(2).state == State.ACCEPTED


def test_outbox_answers_heard_during_an_outage_are_written_once_it_ends(engine):
    h = OutboxHarness(engine)
    outage(h.store)
    a, b = h.add(), h.add()
    rx = h.bind()
    h.start()
    h.store.down = True
    assert rx.answer() == a
    rx.lose()
    run(h, 3.0)
    assert h.rows()[a][0] == outbox.SENDING and h.rows()[b][0] == outbox.SENDING
    assert h.store.refused.count("done") >= 2
    h.store.down = False
    run(h, 1.0)
    assert h.rows()[a][0] == outbox.DONE
    assert h.rows()[b][0] == outbox.PENDING  # lost: tried again later


def test_a_stopped_outbox_claims_nothing_and_flushes_what_it_heard(engine):
    h = OutboxHarness(engine)
    a = h.add()
    rx = h.bind()
    h.start()
    h.sender.stop()
    h.add()
    h.sender.wake()
    assert rx.answer() == a
    h.sender.flush()
    assert h.rows()[a][0] == outbox.DONE
    h.run(5.0)
    assert h.store.names().count("claim") == 1
