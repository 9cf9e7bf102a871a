"""Tests for the Twisted adapter (smsc.protocol.adapter.SessionProtocol).

The protocol runs over `StringTransport` and a `Clock`: no network, no reactor, no sleeping.
"""

import struct

import pytest
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from smsc.protocol.adapter import SessionProtocol
from smsc.protocol.constants import Command, Status
from smsc.protocol.pdu import Pdu, decode, encode
from smsc.protocol.session import Closed, Response, Role, State, Timeout, Timers

C = Command
_BIND = {"system_id": "esme1", "password": "pw", "interface_version": 0x34}
_SM = {"source_addr": "36000", "destination_addr": "33612345678", "short_message": b"hi"}


class Transport(StringTransport):
    """A StringTransport that remembers each write separately."""

    def __init__(self):
        super().__init__()
        self.writes: list[bytes] = []

    def write(self, data):
        self.writes.append(data)
        super().write(data)


class Recorder(SessionProtocol):
    """Records every hook call; answers requests at once unless `answer` is False."""

    def __init__(self, clock, *, answer=True, flush_in_hook=False, **kw):
        super().__init__(clock, **kw)
        self.answer = answer
        self.flush_in_hook = flush_in_hook
        self.requests: list[Pdu] = []
        self.responses: list[Response] = []
        self.timeouts: list[Timeout] = []
        self.closed: list[Closed] = []

    def on_request(self, pdu):
        self.requests.append(pdu)
        if self.answer and pdu.command.response is not None:
            params = {"message_id": f"m{pdu.sequence}"} if pdu.command is C.submit_sm else {}
            self.session.respond(pdu, 0, params)
            if self.flush_in_hook:
                self.flush()  # as the on_request docstring suggests

    def on_response(self, event):
        self.responses.append(event)

    def on_timeout(self, event):
        self.timeouts.append(event)

    def on_closed(self, event):
        self.closed.append(event)


class EsmeRecorder(Recorder):
    role = Role.ESME


def frames(data: bytes) -> list[Pdu]:
    out, pos = [], 0
    while pos < len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        pdu = decode(data[pos : pos + length])
        assert isinstance(pdu, Pdu), pdu
        out.append(pdu)
        pos += length
    return out


def req(command: Command, seq: int, **params) -> bytes:
    base = {"submit_sm": _SM, "deliver_sm": _SM}.get(command.name, {})
    if command.name.startswith("bind_"):
        base = _BIND
    return encode(Pdu(command, seq, 0, {**base, **params}))


def connect(cls=Recorder, start: float = 0.0, clock: Clock | None = None, **kw):
    if clock is None:
        clock = Clock()
        clock.advance(start)
    proto = cls(clock, **kw)
    transport = Transport()
    proto.makeConnection(transport)
    return proto, transport, clock


def bound(cls=Recorder, **kw):
    """A server protocol bound by a transceiver; the transport's record is cleared."""
    proto, transport, clock = connect(cls, **kw)
    proto.dataReceived(req(C.bind_transceiver, 1))
    assert proto.session.state is State.BOUND_TRX
    transport.clear()
    transport.writes.clear()
    return proto, transport, clock


def take(transport: Transport) -> list[Pdu]:
    out = frames(transport.value())
    transport.clear()
    transport.writes.clear()
    return out


# -- requests and answers -------------------------------------------------------------------------


def test_bind_reaches_on_request_and_the_answer_is_written():
    proto, transport, _ = connect()
    proto.dataReceived(req(C.bind_transmitter, 7))
    [pdu] = proto.requests
    assert (pdu.command, pdu.sequence, pdu.params["system_id"]) == (C.bind_transmitter, 7, "esme1")
    assert len(transport.writes) == 1
    [resp] = frames(transport.value())
    assert (resp.command, resp.sequence, resp.status) == (C.bind_transmitter_resp, 7, 0)
    assert proto.session.state is State.BOUND_TX
    assert proto.session.system_id == "esme1"


@pytest.mark.parametrize("flush_in_hook", [False, True])
def test_one_write_per_data_received_burst(flush_in_hook):
    proto, transport, _ = bound(flush_in_hook=flush_in_hook)
    burst = b"".join(req(C.submit_sm, seq) for seq in range(2, 7)) + req(C.enquire_link, 7)
    proto.dataReceived(burst)
    assert [p.sequence for p in proto.requests[1:]] == [2, 3, 4, 5, 6]
    assert len(transport.writes) == 1
    out = take(transport)
    # The session answers enquire_link while reading; the application answers afterwards.
    assert [(p.command, p.sequence) for p in out] == [
        (C.enquire_link_resp, 7),
        *[(C.submit_sm_resp, seq) for seq in range(2, 7)],
    ]
    assert out[1].params["message_id"] == "m2"


def test_partial_pdus_write_nothing_until_complete():
    proto, transport, _ = bound()
    data = req(C.submit_sm, 2)
    for i in range(len(data) - 1):
        proto.dataReceived(data[i : i + 1])
    assert transport.writes == []
    assert len(proto.requests) == 1  # only the bind so far
    proto.dataReceived(data[-1:])
    assert len(transport.writes) == 1
    assert [p.command for p in take(transport)] == [C.submit_sm_resp]


def test_answers_given_later_go_out_in_one_write_on_flush():
    proto, transport, _ = connect(answer=False)
    proto.dataReceived(req(C.bind_transceiver, 1))
    assert transport.writes == []  # the application has not answered yet
    proto.session.respond(proto.requests[0], 0)
    proto.flush()
    assert [p.command for p in take(transport)] == [C.bind_transceiver_resp]
    proto.dataReceived(b"".join(req(C.submit_sm, seq) for seq in range(2, 5)))
    assert transport.writes == []
    for pdu in proto.requests[1:]:
        proto.session.respond(pdu, 0, {"message_id": "x"})
    proto.flush()
    assert len(transport.writes) == 1
    assert [p.sequence for p in take(transport)] == [2, 3, 4]


def test_flush_with_nothing_to_say_writes_nothing():
    proto, transport, _ = bound()
    proto.flush()
    proto.dataReceived(b"")
    assert transport.writes == []


def test_refusals_are_written_without_reaching_on_request():
    proto, transport, _ = connect()
    proto.dataReceived(req(C.submit_sm, 3) + struct.pack(">IIII", 16, 0x777, 0, 4))
    assert proto.requests == []
    assert len(transport.writes) == 1
    out = take(transport)
    assert [(p.command, p.status) for p in out] == [
        (C.submit_sm_resp, Status.RINVBNDSTS),
        (C.generic_nack, Status.RINVCMDID),
    ]


# -- timers ---------------------------------------------------------------------------------------


def test_session_init_timer_closes_the_transport():
    proto, transport, clock = connect(timers=Timers(session_init=30))
    clock.advance(29.9)
    assert not transport.disconnecting and proto.closed == []
    clock.advance(0.1)
    assert transport.disconnecting
    [closed] = proto.closed
    assert "session init" in closed.reason
    assert transport.writes == []
    assert proto.session.state is State.CLOSED


def test_session_init_timer_is_measured_from_the_clock_at_creation():
    proto, transport, clock = connect(start=500.0, timers=Timers(session_init=30))
    clock.advance(29)
    assert not transport.disconnecting
    clock.advance(1)
    assert transport.disconnecting


def test_bind_stops_the_session_init_timer():
    proto, transport, clock = connect(
        timers=Timers(session_init=30, enquire_link=0, inactivity=0, response=10)
    )
    clock.advance(10)
    proto.dataReceived(req(C.bind_transceiver, 1))
    clock.advance(100)
    assert not transport.disconnecting
    assert proto.closed == []


def test_enquire_link_sent_when_idle_then_answered():
    proto, transport, clock = bound(timers=Timers(enquire_link=30, inactivity=300, response=10))
    clock.advance(29.9)
    assert transport.writes == []
    clock.advance(0.1)
    assert len(transport.writes) == 1
    [ping] = take(transport)
    assert ping.command is C.enquire_link
    clock.advance(5)
    proto.dataReceived(encode(Pdu(C.enquire_link_resp, ping.sequence)))
    assert transport.writes == []
    clock.advance(10)  # past the enquire_link's response timer: nothing happens
    assert not transport.disconnecting
    clock.advance(20)  # 30 s after the answer: the next enquire_link
    assert [p.command for p in take(transport)] == [C.enquire_link]


def test_unanswered_enquire_link_closes_the_transport():
    proto, transport, clock = bound(timers=Timers(enquire_link=30, inactivity=300, response=10))
    clock.advance(30)
    assert [p.command for p in take(transport)] == [C.enquire_link]
    clock.advance(9.9)
    assert not transport.disconnecting
    clock.advance(0.1)
    assert transport.disconnecting
    [closed] = proto.closed
    assert "enquire_link" in closed.reason


def test_traffic_moves_the_timer_later():
    proto, transport, clock = bound(timers=Timers(enquire_link=30, inactivity=0, response=10))
    clock.advance(20)
    proto.dataReceived(req(C.enquire_link, 5))
    take(transport)
    clock.advance(10)  # the timer armed for t=30 fires early and does nothing
    assert transport.writes == []
    clock.advance(19.9)
    assert transport.writes == []
    clock.advance(0.1)
    assert [p.command for p in take(transport)] == [C.enquire_link]


def test_inactivity_unbinds_and_closes():
    proto, transport, clock = bound(timers=Timers(enquire_link=0, inactivity=60, response=10))
    clock.advance(60)
    assert [p.command for p in take(transport)] == [C.unbind]
    assert transport.disconnecting
    assert len(proto.closed) == 1


def test_one_timer_at_a_time():
    proto, _, clock = bound(timers=Timers(enquire_link=30, inactivity=300, response=10))
    assert len(clock.getDelayedCalls()) == 1
    for seq in range(2, 10):
        clock.advance(1)
        proto.dataReceived(req(C.submit_sm, seq))
        assert len(clock.getDelayedCalls()) == 1


def test_no_timer_without_timers():
    proto, _, clock = bound(timers=Timers(session_init=0, enquire_link=0, inactivity=0, response=0))
    assert clock.getDelayedCalls() == []


# -- closing --------------------------------------------------------------------------------------


def test_unbind_from_the_peer_answers_closes_and_calls_on_closed_once():
    proto, transport, clock = bound()
    proto.dataReceived(req(C.unbind, 9))
    [resp] = take(transport)
    assert (resp.command, resp.sequence, resp.status) == (C.unbind_resp, 9, 0)
    assert transport.disconnecting
    [closed] = proto.closed
    assert closed.reason == "unbound by the peer"
    # Bytes still in flight and the end of the connection change nothing.
    proto.dataReceived(req(C.submit_sm, 10))
    assert transport.writes == []
    proto.connectionLost(None)
    assert len(proto.closed) == 1
    assert clock.getDelayedCalls() == []


def test_unbind_is_written_before_the_close():
    proto, transport, _ = bound()
    order = []
    transport.loseConnection = lambda: order.append(("lose", transport.value()))
    proto.dataReceived(req(C.unbind, 9))
    [(what, data)] = order
    assert what == "lose"
    assert [p.command for p in frames(data)] == [C.unbind_resp]


def test_framing_error_nacks_and_closes():
    proto, transport, _ = bound()
    proto.dataReceived(struct.pack(">IIII", 8, C.submit_sm, 0, 44))
    [nack] = take(transport)
    assert (nack.command, nack.sequence, nack.status) == (C.generic_nack, 44, Status.RINVCMDLEN)
    assert transport.disconnecting
    assert len(proto.closed) == 1


def test_timer_close_then_connection_lost_calls_on_closed_once():
    proto, transport, clock = connect(timers=Timers(session_init=30))
    clock.advance(30)
    assert transport.disconnecting
    proto.connectionLost(None)
    assert len(proto.closed) == 1
    assert clock.getDelayedCalls() == []


def test_connection_lost_cancels_the_timer_and_reports_unanswered():
    proto, transport, clock = connect(EsmeRecorder, timers=Timers(response=10))
    proto.send(C.bind_transceiver, _BIND, context="bind")
    proto.flush()
    assert clock.getDelayedCalls() != []
    proto.connectionLost(None)
    assert clock.getDelayedCalls() == []
    assert proto.closed == [Closed("connection lost", ["bind"])]
    clock.advance(1000)
    assert len(proto.closed) == 1
    assert not transport.disconnecting  # already gone: nothing to close


def test_connection_lost_before_any_timer():
    proto, _, clock = connect(
        timers=Timers(session_init=0, enquire_link=0, inactivity=0, response=0)
    )
    proto.connectionLost(None)
    assert [c.reason for c in proto.closed] == ["connection lost"]
    assert clock.getDelayedCalls() == []


def test_unbind_helper_when_bound_waits_for_the_answer():
    proto, transport, clock = bound(timers=Timers(enquire_link=0, inactivity=0, response=10))
    proto.unbind()
    [unbind] = take(transport)
    assert unbind.command is C.unbind
    assert proto.session.state is State.UNBOUND
    assert not transport.disconnecting
    proto.dataReceived(encode(Pdu(C.unbind_resp, unbind.sequence)))
    assert transport.disconnecting
    assert [c.reason for c in proto.closed] == ["unbound"]


def test_unbind_helper_gives_up_when_unanswered():
    proto, transport, clock = bound(timers=Timers(enquire_link=0, inactivity=0, response=10))
    proto.unbind()
    take(transport)
    clock.advance(10)
    assert transport.disconnecting
    assert len(proto.closed) == 1


def test_unbind_helper_when_not_bound_just_closes():
    proto, transport, _ = connect()
    proto.unbind()
    assert transport.disconnecting
    assert transport.writes == []


# -- the ESME side --------------------------------------------------------------------------------


def test_esme_send_response_and_timeout_hooks():
    proto, transport, clock = connect(
        EsmeRecorder, timers=Timers(session_init=0, enquire_link=0, inactivity=0, response=10)
    )
    seq = proto.send(C.bind_transmitter, _BIND, context="bind")
    assert transport.writes == []  # the application flushes its batch
    proto.flush()
    [bind] = take(transport)
    assert (bind.command, bind.sequence) == (C.bind_transmitter, seq)
    proto.dataReceived(encode(Pdu(C.bind_transmitter_resp, seq, 0, {"system_id": "smsc"})))
    [response] = proto.responses
    assert (response.request, response.context) == (C.bind_transmitter, "bind")
    assert proto.session.state is State.BOUND_TX

    clock.advance(1)
    s1 = proto.send(C.submit_sm, _SM, context="a")
    proto.send(C.submit_sm, _SM, context="b")
    proto.flush()
    assert len(transport.writes) == 1
    take(transport)
    proto.dataReceived(encode(Pdu(C.submit_sm_resp, s1, 0, {"message_id": "x"})))
    assert proto.responses[-1].context == "a"
    clock.advance(9.9)
    assert proto.timeouts == []
    clock.advance(0.1)
    assert proto.timeouts == [Timeout(C.submit_sm, "b")]
    assert not transport.disconnecting
    assert proto.session.out_free == proto.session.out_window


def test_an_esme_and_a_server_talk_through_their_transports():
    clock = Clock()
    server, s_tr, _ = connect(Recorder, clock=clock)
    client, c_tr, _ = connect(EsmeRecorder, clock=clock)

    def wire():
        moved = True
        while moved:
            moved = False
            for src, dst in ((c_tr, server), (s_tr, client)):
                data = src.value()
                if data:
                    src.clear()
                    dst.dataReceived(data)
                    moved = True

    client.send(C.bind_transceiver, _BIND, context="bind")
    client.flush()
    wire()
    assert server.session.state is client.session.state is State.BOUND_TRX
    for i in range(3):
        client.send(C.submit_sm, _SM, context=i)
    client.flush()
    wire()
    assert [r.context for r in client.responses] == ["bind", 0, 1, 2]
    assert [r.pdu.params["message_id"] for r in client.responses[1:]] == ["m2", "m3", "m4"]
    client.unbind()
    wire()
    assert s_tr.disconnecting and c_tr.disconnecting
    assert len(server.closed) == len(client.closed) == 1
