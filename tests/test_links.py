"""Carrier links (smsc.routing.links): the carrier's queue over fake links on a `Clock` (order,
window, round robin, the tps cap, slow-down answers, timeouts, lost links), and one
`CarrierLink` over a `StringTransport` (bind, deliver_sm, refusals)."""

import pytest
from twisted.internet import task
from twisted.internet.testing import StringTransport

from smsc.config import CarrierConfig
from smsc.protocol.constants import Command, Status
from smsc.protocol.pdu import Pdu, decode, encode
from smsc.protocol.session import Closed, Response, Timeout
from smsc.routing.links import _RATE_WINDOW, Carrier, Part

C = Command


class Clock(task.Clock):
    """A fake clock that fails a carrier which keeps waking up instead of waiting."""

    def __init__(self):
        super().__init__()
        self.scheduled = 0

    def callLater(self, delay, *args, **kw):
        self.scheduled += 1
        assert self.scheduled < 50_000, "the carrier wakes up without end"
        return super().callLater(delay, *args, **kw)


class Events:
    """What the carrier tells the dispatcher."""

    def __init__(self):
        self.log = []

    def part_sent(self, part, carrier_id):
        self.log.append(("sent", part.params["tag"], carrier_id))

    def part_failed(self, part, status):
        self.log.append(("failed", part.params["tag"], status))

    def part_lost(self, part):
        self.log.append(("lost", part.params["tag"]))

    def carrier_down(self, carrier):
        self.log.append(("down", carrier.name))

    def room_changed(self):
        self.log.append(("room",))


class Message:
    finished = False


class FakeSession:
    def __init__(self, window):
        self.window = window
        self.outstanding = 0
        self.bound = True

    @property
    def out_free(self):
        return self.window - self.outstanding


class FakeLink:
    def __init__(self, h, name, window):
        self.h = h
        self.name = name
        self.session = FakeSession(window)
        self.in_flight = []

    def send(self, command, params, tlvs, context):
        assert command is C.submit_sm and context.params is params and context.tlvs is tlvs
        self.session.outstanding += 1
        self.in_flight.append(context)
        self.h.sends.append((self.h.clock.seconds(), self.name, params["tag"]))

    def flush(self):
        self.h.flushes.append(self.name)

    def answer(self, tag=None, status=0, message_id="c1"):
        """Answer the part `tag` (the oldest in flight by default)."""
        part = next(p for p in self.in_flight if tag is None or p.params["tag"] == tag)
        self.in_flight.remove(part)
        self.session.outstanding -= 1
        pdu = Pdu(C.submit_sm_resp, 0, status, {"message_id": message_id})
        self.h.carrier.response(self, Response(pdu, C.submit_sm, part))


class Harness:
    def __init__(self, tps=100, windows=(10,), binds=1):
        self.clock = Clock()
        self.clock.advance(1000)
        self.events = Events()
        config = CarrierConfig("orange", tps=tps, binds=binds)
        self.carrier = Carrier(config, self.clock, self.events, on_deliver=None)
        self.sends, self.flushes = [], []
        self.links = [FakeLink(self, name, w) for name, w in zip("abcd", windows, strict=False)]
        for link in self.links:
            self.carrier.link_bound(link)

    def parts(self, *tags, cost=1, message=None):
        return [Part(message or Message(), 1, {"tag": t}, {}, cost=cost) for t in tags]

    def enqueue(self, *tags, cost=1):
        parts = self.parts(*tags, cost=cost)
        self.carrier.enqueue(parts)
        return parts

    def sent(self):
        return [tag for _, _, tag in self.sends]

    def queued(self):
        return [p.params["tag"] for p in self.carrier.queue]

    def answer_all(self):
        for link in self.links:
            while link.in_flight:
                link.answer()

    def run(self, seconds):
        """Run the clock from one timed call to the next, every part answered at once."""
        end = self.clock.seconds() + seconds
        self.answer_all()
        while True:
            calls = [c.getTime() for c in self.clock.getDelayedCalls()]
            if not calls or min(calls) > end:
                break
            self.clock.advance(max(0.0, min(calls) - self.clock.seconds()))
            self.answer_all()
        self.clock.advance(max(0.0, end - self.clock.seconds()))

    def send_times(self):
        return [t - 1000 for t, _, _ in self.sends]


def tags(n, prefix="p"):
    return [f"{prefix}{i}" for i in range(1, n + 1)]


# -- order, window, round robin --------------------------------------------------------------


def test_parts_go_in_queue_order_within_the_window():
    h = Harness(windows=(3,))
    h.enqueue(*tags(5))
    assert h.sent() == ["p1", "p2", "p3"]
    assert h.queued() == ["p4", "p5"]
    assert h.flushes == ["a"]  # one write for the burst
    h.links[0].answer()
    assert h.sent() == ["p1", "p2", "p3", "p4"]
    assert h.events.log[-1] == ("sent", "p1", "c1")
    h.enqueue("p6")
    assert h.queued() == ["p5", "p6"]
    h.answer_all()
    assert h.sent() == tags(6)


def test_each_link_has_its_own_window_and_they_take_turns():
    h = Harness(windows=(2, 3))
    h.enqueue(*tags(7))
    assert [(name, tag) for _, name, tag in h.sends] == [
        ("a", "p1"),
        ("b", "p2"),
        ("a", "p3"),
        ("b", "p4"),
        ("b", "p5"),
    ]
    assert h.queued() == ["p6", "p7"]
    h.links[0].answer()
    assert h.sends[-1][1:] == ("a", "p6")
    h.links[1].answer()
    assert h.sends[-1][1:] == ("b", "p7")


def test_room_is_a_second_of_throughput_less_the_queue_and_none_without_a_link():
    h = Harness(tps=10, windows=(2,))
    assert h.carrier.bound and h.carrier.room() == 10
    h.enqueue(*tags(5))
    assert h.carrier.room() == 7
    idle = Carrier(CarrierConfig("sfr"), h.clock, Events(), on_deliver=None)
    assert not idle.bound and idle.room() == 0


def test_a_link_that_is_unbinding_takes_no_parts():
    h = Harness(windows=(5, 5))
    h.links[0].session.bound = False  # unbind sent, waiting for unbind_resp
    h.enqueue("p1", "p2")
    assert [name for _, name, _ in h.sends] == ["b", "b"]
    h.links[1].session.bound = False
    h.enqueue("p3")
    assert h.queued() == ["p3"]
    assert not h.carrier.bound and h.carrier.room() == 0


def test_parts_of_finished_messages_are_skipped():
    h = Harness(windows=(1,))
    done = Message()
    h.carrier.enqueue(h.parts("p1") + h.parts("p2", "p3", message=done) + h.parts("p4"))
    done.finished = True
    h.links[0].answer()
    assert h.sent() == ["p1", "p4"]
    assert h.queued() == []


# -- the tps cap -----------------------------------------------------------------------------


def most_in_a_second(times):
    """The most sends in any window [t, t + 1) starting at a send (where a maximum starts)."""
    return max(sum(1 for s in times if t - 1e-9 <= s < t + 1 - 1e-9) for t in times)


def test_never_more_than_tps_parts_in_any_second():
    h = Harness(tps=5, windows=(50, 50))
    h.enqueue(*tags(23))
    h.run(4.5)
    times = h.send_times()
    assert len(times) == 23
    assert most_in_a_second(times) == 5
    # And the cap is used in full: a second's worth every _RATE_WINDOW (1.05 s).
    assert times[-1] == pytest.approx(4 * _RATE_WINDOW, abs=0.02)


def test_the_cap_holds_for_parts_queued_over_time():
    h = Harness(tps=4, windows=(50,))
    for i in range(30):
        h.enqueue(f"p{i}")
        h.run(0.13)
    h.run(5)
    times = h.send_times()
    assert len(times) == 30
    assert most_in_a_second(times) <= 4


def test_a_message_payload_part_costs_its_number_of_parts():
    h = Harness(tps=5, windows=(50,))
    h.carrier.enqueue(h.parts("long1", cost=3) + h.parts("long2", cost=3) + h.parts("short"))
    h.run(2.5)
    assert h.sent() == ["long1", "long2", "short"]  # the short one does not overtake
    assert h.send_times() == pytest.approx([0.0, _RATE_WINDOW, _RATE_WINDOW], abs=0.02)


def test_a_part_costlier_than_tps_goes_alone():
    h = Harness(tps=5, windows=(50,))
    h.carrier.enqueue(h.parts("a", cost=2) + h.parts("huge", cost=8) + h.parts("b"))
    h.run(3.5)
    assert h.sent() == ["a", "huge", "b"]
    assert h.send_times() == pytest.approx([0.0, _RATE_WINDOW, 2 * _RATE_WINDOW], abs=0.02)


# -- slow down -------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [Status.RTHROTTLED, Status.RMSGQFUL])
@pytest.mark.parametrize("answers", [("p1", "p2", "p3"), ("p3", "p1", "p2"), ("p2", "p3", "p1")])
def test_slow_down_pauses_and_puts_the_parts_back_in_order(status, answers):
    h = Harness(windows=(3,))
    h.enqueue(*tags(5))
    for tag in answers:
        h.links[0].answer(tag, status)
    assert h.queued() == tags(5)  # the refused ones first, in their order
    assert h.carrier.throttled == 3
    assert [e[0] for e in h.events.log if e[0] != "room"] == []  # nothing failed or lost
    h.clock.advance(0.099)
    assert h.sent() == ["p1", "p2", "p3"]  # paused
    h.clock.advance(0.001)  # one pause for the whole window of refusals
    assert h.sent() == ["p1", "p2", "p3", "p1", "p2", "p3"]
    h.answer_all()
    assert h.sent()[-2:] == ["p4", "p5"]


def pause_after_refusal(h) -> float:
    """Refuse the part in flight; how long until it goes again."""
    start = len(h.sends)
    h.links[0].answer(status=Status.RTHROTTLED)
    begin = h.clock.seconds()
    while len(h.sends) == start:
        h.clock.advance(0.001)
    return round(h.clock.seconds() - begin, 2)


def test_the_pause_grows_while_the_carrier_refuses_and_resets_when_it_takes():
    h = Harness(windows=(1,))
    h.enqueue(*tags(3))
    assert [pause_after_refusal(h) for _ in range(4)] == [0.1, 0.2, 0.4, 0.8]
    h.links[0].answer()
    assert h.sent()[-1] == "p2"
    assert pause_after_refusal(h) == 0.1


def test_the_pause_has_a_ceiling():
    h = Harness(windows=(1,))
    h.enqueue("p1")
    pauses = [pause_after_refusal(h) for _ in range(10)]
    assert max(pauses) == 10.0 and pauses[-1] == 10.0


def test_another_error_fails_the_part():
    h = Harness(windows=(2,))
    h.enqueue(*tags(3))
    h.links[0].answer("p2", Status.RSUBMITFAIL)
    h.links[0].answer("p1", message_id="0A1")
    assert h.events.log[-2:] == [("failed", "p2", Status.RSUBMITFAIL), ("sent", "p1", "0A1")]
    assert h.sent() == tags(3)
    assert h.carrier.throttled == 0


def test_a_timeout_loses_the_part():
    h = Harness(windows=(1,))
    parts = h.enqueue(*tags(2))
    h.links[0].in_flight.clear()
    h.links[0].session.outstanding = 0
    h.carrier.timeout(Timeout(C.submit_sm, parts[0]))
    assert h.events.log[-1] == ("lost", "p1")
    assert h.sent() == ["p1", "p2"]  # the window has room again


def test_a_closed_link_loses_its_parts_and_the_last_one_takes_the_carrier_down():
    h = Harness(windows=(2, 2))
    h.enqueue(*tags(6))
    a, b = h.links
    unanswered = list(a.in_flight)
    a.session.outstanding = 2
    h.carrier.link_closed(a, Closed("connection lost", unanswered))
    assert h.events.log[-2:] == [("lost", "p1"), ("lost", "p3")]
    assert a not in h.carrier.links and h.carrier.bound
    b.answer()
    assert h.sends[-1][1:] == ("b", "p5")  # the other link goes on with the queue
    h.carrier.link_closed(b, Closed("connection lost", list(b.in_flight)))
    assert h.events.log[-3:] == [("lost", "p4"), ("lost", "p5"), ("down", "orange")]
    assert not h.carrier.bound and h.carrier.room() == 0
    assert h.carrier.take_queue()[0].params["tag"] == "p6"


# -- CarrierLink over a transport ------------------------------------------------------------


def read(transport) -> list[Pdu]:
    data, pdus = transport.value(), []
    transport.clear()
    while data:
        size = int.from_bytes(data[:4], "big")
        pdus.append(decode(data[:size]))
        data = data[size:]
    return pdus


class Wire:
    def __init__(self, **config):
        self.clock = Clock()
        self.events = Events()
        self.delivered = []
        config = CarrierConfig("orange", system_id="switch", password="pw", **config)
        self.carrier = Carrier(config, self.clock, self.events, self._deliver)
        self.factory = self.carrier.factories[0]
        self.factory.delay = 20.0  # as after failed attempts
        self.link = self.factory.buildProtocol(None)
        self.transport = StringTransport()
        self.link.makeConnection(self.transport)

    def _deliver(self, link, pdu):
        self.delivered.append((link, pdu))

    def receive(self, command, sequence, status=0, params=None, tlvs=None):
        self.link.dataReceived(encode(Pdu(command, sequence, status, params or {}, tlvs or {})))

    def bind(self):
        (bind,) = read(self.transport)
        self.receive(C.bind_transceiver_resp, bind.sequence, 0, {"system_id": "carrier"})
        return bind


def test_a_link_binds_as_a_transceiver_on_connect():
    w = Wire()
    bind = w.bind()
    assert bind.command is C.bind_transceiver
    assert (bind.params["system_id"], bind.params["password"]) == ("switch", "pw")
    assert bind.params["interface_version"] == 0x34
    assert w.carrier.links == [w.link] and w.carrier.bound
    assert w.events.log == [("room",)]
    assert w.factory.delay == w.factory.initialDelay  # the reconnect backoff starts over


def test_a_refused_bind_closes_the_connection():
    w = Wire()
    (bind,) = read(w.transport)
    w.receive(C.bind_transceiver_resp, bind.sequence, Status.RINVPASWD)
    assert w.transport.disconnecting
    assert w.carrier.links == [] and not w.carrier.bound
    assert w.factory.delay == 20.0


def test_parts_go_as_submit_sm_and_their_answers_come_back():
    w = Wire(window=2)
    w.bind()
    part = Part(Message(), 1, {"tag": "p1", "destination_addr": "33612345678"}, {}, cost=1)
    w.carrier.enqueue([part])
    (submit,) = read(w.transport)
    assert submit.command is C.submit_sm
    assert submit.params["destination_addr"] == "33612345678"
    w.receive(C.submit_sm_resp, submit.sequence, 0, {"message_id": "00AB"})
    assert w.events.log[-1] == ("sent", "p1", "00AB")


def test_an_unanswered_submit_is_lost_after_the_response_timer():
    w = Wire()
    w.bind()
    w.carrier.enqueue([Part(Message(), 1, {"tag": "p1"}, {})])
    w.clock.advance(29.9)
    assert ("lost", "p1") not in w.events.log
    w.clock.advance(0.1)
    assert w.events.log[-1] == ("lost", "p1")


def test_a_lost_connection_loses_what_was_unanswered_and_takes_the_carrier_down():
    w = Wire()
    w.bind()
    w.carrier.enqueue(
        [Part(Message(), 1, {"tag": "p1"}, {}), Part(Message(), 2, {"tag": "p2"}, {})]
    )
    w.link.connectionLost(None)
    assert w.events.log[1:] == [("lost", "p1"), ("lost", "p2"), ("down", "orange")]
    assert w.carrier.links == []


def test_deliver_sm_goes_to_the_receipt_handler_unanswered():
    w = Wire()
    w.bind()
    read(w.transport)
    w.receive(C.deliver_sm, 7, 0, {"esm_class": 4, "short_message": b"id:1 stat:DELIVRD"})
    ((link, pdu),) = w.delivered
    assert link is w.link and pdu.command is C.deliver_sm and pdu.sequence == 7
    assert read(w.transport) == []  # the handler answers once the receipt is stored
    link.respond(pdu)
    link.flush()
    (resp,) = read(w.transport)
    assert (resp.command, resp.sequence, resp.status) == (C.deliver_sm_resp, 7, 0)


def test_other_requests_from_the_carrier_are_refused():
    w = Wire()
    (bind,) = read(w.transport)
    w.receive(C.deliver_sm, 3, 0, {"short_message": b"early"})  # before the bind
    (early,) = read(w.transport)
    assert (early.command, early.sequence, early.status) == (
        C.deliver_sm_resp,
        3,
        Status.RINVBNDSTS,
    )
    w.receive(C.bind_transceiver_resp, bind.sequence, 0, {"system_id": "carrier"})
    w.receive(C.submit_sm, 4, 0, {"short_message": b"x"})
    w.receive(C.alert_notification, 5, 0, {"source_addr": "336", "esme_addr": "switch"})
    (refused,) = read(w.transport)
    assert (refused.command, refused.sequence) == (C.submit_sm_resp, 4)
    assert refused.status != 0
    assert w.delivered == []
