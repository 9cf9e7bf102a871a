"""Tests for the sans-IO SMPP session (smsc.protocol.session).

Two sessions talk to each other by feeding one's `data_to_send()` into the other's `receive()`,
or a session is fed hand-made bytes. Time is a plain number passed in: nothing sleeps.
"""

import struct
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from smsc.protocol.constants import BINDS, Command, Status
from smsc.protocol.pdu import Pdu, SmeDest, decode, encode
from smsc.protocol.session import (
    Closed,
    Request,
    Response,
    Role,
    Session,
    State,
    Timeout,
    Timers,
)

C = Command
T0 = 1000.0
BOUND = (State.BOUND_TX, State.BOUND_RX, State.BOUND_TRX)
BIND_STATE = {
    C.bind_transmitter: State.BOUND_TX,
    C.bind_receiver: State.BOUND_RX,
    C.bind_transceiver: State.BOUND_TRX,
}
REQUESTS = [c for c in Command if not c.is_response]
NO_TIMERS = Timers(session_init=0, enquire_link=0, inactivity=0, response=0)

_BIND = {"system_id": "esme1", "password": "pw", "system_type": "", "interface_version": 0x34}
_SM = {"source_addr": "36000", "destination_addr": "33612345678", "short_message": b"hello"}
# Mandatory fields that make a well-formed body for every request.
PARAMS = {
    C.bind_transmitter: _BIND,
    C.bind_receiver: _BIND,
    C.bind_transceiver: _BIND,
    C.outbind: {"system_id": "smsc", "password": "pw"},
    C.submit_sm: _SM,
    C.deliver_sm: _SM,
    C.submit_multi: {
        "source_addr": "36000",
        "dest_address": [SmeDest(1, 1, "33612345678")],
        "short_message": b"hi",
    },
    C.data_sm: {"source_addr": "36000", "destination_addr": "33612345678"},
    C.query_sm: {"message_id": "42", "source_addr": "36000"},
    C.cancel_sm: {"message_id": "42", "source_addr": "36000"},
    C.replace_sm: {"message_id": "42", "source_addr": "36000", "short_message": b"x"},
    C.alert_notification: {"source_addr": "33612345678", "esme_addr": "36000"},
}


# -- helpers ------------------------------------------------------------------------------------


def raw(command_id: int, seq: int, body: bytes = b"", status: int = 0, length=None) -> bytes:
    """A PDU built by hand; `length` overrides command_length."""
    size = 16 + len(body) if length is None else length
    return struct.pack(">IIII", size, command_id, status, seq) + body


def req(command: Command, seq: int, **params) -> bytes:
    return encode(Pdu(command, seq, 0, {**PARAMS.get(command, {}), **params}))


def frames(data: bytes) -> list[Pdu]:
    """Split bytes a session wrote into PDUs, asserting each one is whole and well-formed."""
    out, pos = [], 0
    while pos < len(data):
        assert len(data) - pos >= 16, "a truncated header was written"
        (length,) = struct.unpack_from(">I", data, pos)
        assert 16 <= length <= len(data) - pos, f"bad command_length {length}"
        pdu = decode(data[pos : pos + length])
        assert isinstance(pdu, Pdu), pdu
        out.append(pdu)
        pos += length
    return out


def written(session: Session) -> list[Pdu]:
    return frames(session.data_to_send())


def one(session: Session) -> Pdu:
    [pdu] = written(session)
    return pdu


def pump(src: Session, dst: Session, now: float = T0) -> list:
    return dst.receive(src.data_to_send(), now)


def server(now: float = T0, **kw) -> Session:
    return Session(Role.SMSC, now, **kw)


def esme(now: float = T0, **kw) -> Session:
    return Session(Role.ESME, now, **kw)


def bound_server(bind: Command = C.bind_transceiver, now: float = T0, **kw) -> Session:
    """A server session a peer bound to with hand-made bytes; its output is drained."""
    s = server(now, **kw)
    [event] = s.receive(req(bind, 1), now)
    s.respond(event.pdu, 0, {"system_id": "smsc"})
    assert s.state is BIND_STATE[bind]
    s.data_to_send()
    return s


def bound_esme(bind: Command = C.bind_transceiver, now: float = T0, **kw) -> Session:
    """An ESME session bound by a hand-made bind_resp; its output is drained."""
    e = esme(now, **kw)
    seq = e.send(bind, now, PARAMS[bind])
    e.data_to_send()
    [event] = e.receive(encode(Pdu(bind.response, seq, 0, {"system_id": "smsc"})), now)
    assert isinstance(event, Response)
    assert e.state is BIND_STATE[bind]
    return e


def bind_pair(bind: Command = C.bind_transceiver, now: float = T0, skw=None, ekw=None):
    """A server and an ESME session bound to each other through their own bytes."""
    s, e = server(now, **(skw or {})), esme(now, **(ekw or {}))
    e.send(bind, now, PARAMS[bind], context="bind")
    [request] = pump(e, s, now)
    assert isinstance(request, Request)
    assert request.pdu.command is bind
    s.respond(request.pdu, 0, {"system_id": "smsc"})
    [response] = pump(s, e, now)
    assert response == Response(response.pdu, bind, "bind")
    assert response.pdu.status == 0
    assert response.pdu.params["system_id"] == "smsc"
    assert s.state is e.state is BIND_STATE[bind]
    return s, e


def session_in(role: Role, state: State) -> Session:
    """A session of `role` brought to `state` with hand-made bytes; its output is drained."""
    if state is State.OPEN:
        return server() if role is Role.SMSC else esme()
    bind = {v: k for k, v in BIND_STATE.items()}.get(state, C.bind_transceiver)
    s = bound_server(bind) if role is Role.SMSC else bound_esme(bind)
    if state is State.UNBOUND:
        s.unbind(T0)
        assert one(s).command is C.unbind
    assert s.state is state
    return s


# -- the whole life of a session, on both sides ------------------------------------------------


@pytest.mark.parametrize("bind", sorted(BINDS))
def test_bind_then_unbind_by_the_esme(bind):
    s, e = server(), esme()
    assert s.state is e.state is State.OPEN
    assert not s.bound and not e.bound
    e.send(bind, T0, PARAMS[bind])
    assert e.state is State.OPEN  # until the answer
    [request] = pump(e, s)
    assert request.pdu.params["system_id"] == "esme1"
    assert request.pdu.params["interface_version"] == 0x34
    assert s.state is State.OPEN  # until the application answers
    s.respond(request.pdu, 0, {"system_id": "smsc"})
    assert s.state is BIND_STATE[bind] and s.bound
    assert s.system_id == "esme1"
    [response] = pump(s, e)
    assert response.pdu.command is bind.response
    assert e.state is BIND_STATE[bind] and e.bound
    assert e.system_id == "esme1"  # the ESME side knows who it bound as

    e.unbind(T0 + 1)
    assert e.state is State.UNBOUND and not e.bound
    [closed] = pump(e, s)
    assert isinstance(closed, Closed)
    assert s.state is State.CLOSED
    [closed] = pump(s, e)
    assert closed == Closed("unbound", [])
    assert e.state is State.CLOSED
    assert s.data_to_send() == e.data_to_send() == b""


def test_unbind_by_the_server():
    s, e = bind_pair()
    s.unbind(T0)
    assert s.state is State.UNBOUND
    [closed] = pump(s, e)
    assert isinstance(closed, Closed) and e.state is State.CLOSED
    [closed] = pump(e, s)
    assert isinstance(closed, Closed) and s.state is State.CLOSED


def test_unbind_when_not_bound_does_nothing():
    s = server()
    s.unbind(T0)
    assert s.state is State.OPEN
    assert s.data_to_send() == b""


def test_unbind_answered_then_session_closed_and_deaf():
    s = bound_server()
    [closed] = s.receive(req(C.unbind, 9), T0)
    assert isinstance(closed, Closed)
    assert closed.reason == "unbound by the peer"
    resp = one(s)
    assert (resp.command, resp.sequence, resp.status) == (C.unbind_resp, 9, 0)
    assert s.receive(req(C.submit_sm, 10), T0) == []
    assert s.data_to_send() == b""
    assert s.timeout(T0 + 10_000) == []
    assert s.connection_lost() == []
    assert s.next_deadline() is None


def test_pdus_after_unbind_in_the_same_chunk_are_dropped():
    s = bound_server()
    events = s.receive(req(C.unbind, 9) + req(C.submit_sm, 10) + req(C.enquire_link, 11), T0)
    assert [type(e) for e in events] == [Closed]
    assert [p.command for p in written(s)] == [C.unbind_resp]


def test_crossing_unbinds_close_both_sides():
    s, e = bind_pair()
    s.unbind(T0)
    e.unbind(T0)
    events_s = pump(e, s)
    events_e = pump(s, e)
    events_s += pump(e, s)
    events_e += pump(s, e)
    assert s.state is e.state is State.CLOSED
    assert [type(x) for x in events_s] == [Closed]
    assert [type(x) for x in events_e] == [Closed]


def test_submit_and_deliver_round_trip_over_a_transceiver():
    s, e = bind_pair(C.bind_transceiver)
    e.send(C.submit_sm, T0, PARAMS[C.submit_sm], context="sub-1")
    [request] = pump(e, s)
    assert request.pdu.command is C.submit_sm
    assert request.pdu.params["short_message"] == b"hello"
    s.respond(request.pdu, 0, {"message_id": "abc"})
    [response] = pump(s, e)
    assert (response.request, response.context) == (C.submit_sm, "sub-1")
    assert response.pdu.params["message_id"] == "abc"

    s.send(C.deliver_sm, T0, PARAMS[C.deliver_sm], context="dlv-1")
    [request] = pump(s, e)
    assert request.pdu.command is C.deliver_sm
    e.respond(request.pdu, 0)
    [response] = pump(e, s)
    assert (response.request, response.context, response.pdu.status) == (C.deliver_sm, "dlv-1", 0)


def test_tlvs_reach_the_application():
    s = bound_server()
    data = encode(Pdu(C.submit_sm, 3, 0, dict(PARAMS[C.submit_sm]), {0x1401: b"\x01\x02"}))
    [request] = s.receive(data, T0)
    assert request.pdu.tlvs == {0x1401: b"\x01\x02"}


# -- which requests each state accepts ----------------------------------------------------------

# Spec 2.3 / 2.4, written out independently of the implementation: what a peer may ask of us.
_FROM_ESME = {C.submit_sm, C.submit_multi, C.data_sm, C.query_sm, C.cancel_sm, C.replace_sm}
_FROM_SMSC = {C.deliver_sm, C.data_sm, C.alert_notification}
ACCEPTS = {
    Role.SMSC: {
        State.OPEN: set(BINDS),
        State.BOUND_TX: _FROM_ESME,
        State.BOUND_RX: set(),
        State.BOUND_TRX: _FROM_ESME,
        State.UNBOUND: set(),
    },
    Role.ESME: {
        State.OPEN: {C.outbind},
        State.BOUND_TX: set(),
        State.BOUND_RX: _FROM_SMSC,
        State.BOUND_TRX: _FROM_SMSC,
        State.UNBOUND: set(),
    },
}
STATES = [State.OPEN, *BOUND, State.UNBOUND]


@pytest.mark.parametrize("command", REQUESTS, ids=lambda c: c.name)
@pytest.mark.parametrize("state", STATES, ids=lambda s: s.name)
@pytest.mark.parametrize("role", list(Role), ids=lambda r: r.name)
def test_requests_allowed_by_state(role, state, command):
    s = session_in(role, state)
    events = s.receive(req(command, 77), T0 + 1)
    out = written(s)

    if command is C.enquire_link:  # answered in every state, OPEN included
        assert events == []
        assert [(p.command, p.sequence, p.status) for p in out] == [(C.enquire_link_resp, 77, 0)]
        assert s.state is state
    elif command is C.unbind:
        [resp] = out
        assert (resp.command, resp.sequence) == (C.unbind_resp, 77)
        if state in BOUND:
            assert resp.status == 0
            assert [type(e) for e in events] == [Closed]
            assert s.state is State.CLOSED
        elif state is State.OPEN:
            assert resp.status == Status.RINVBNDSTS
            assert events == []
            assert s.state is State.OPEN
        # UNBOUND: unbinds crossed; test_crossing_unbinds_close_both_sides covers it.
    elif command in ACCEPTS[role][state]:
        assert events == [Request(events[0].pdu)]
        assert events[0].pdu.command is command
        assert events[0].pdu.sequence == 77
        assert out == []
        assert s.state is state
    else:
        assert events == []
        [resp] = out
        expected_status = (
            Status.RALYBND if command in BINDS and state in BOUND else Status.RINVBNDSTS
        )
        assert resp.command is (command.response or C.generic_nack)
        assert (resp.sequence, resp.status) == (77, expected_status)
        assert s.state is state


def test_second_bind_while_bound_is_already_bound():
    s = bound_server(C.bind_transmitter)
    assert s.receive(req(C.bind_receiver, 2), T0) == []
    resp = one(s)
    assert (resp.command, resp.sequence, resp.status) == (C.bind_receiver_resp, 2, Status.RALYBND)
    assert s.state is State.BOUND_TX


@pytest.mark.parametrize("second", sorted(BINDS))
def test_second_bind_while_the_first_is_with_the_application(second):
    s = server()
    [first] = s.receive(req(C.bind_transmitter, 1), T0)
    assert s.receive(req(second, 2), T0) == []
    resp = one(s)
    assert (resp.command, resp.sequence, resp.status) == (second.response, 2, Status.RALYBND)
    s.respond(first.pdu, 0)
    assert s.state is State.BOUND_TX
    assert one(s).command is C.bind_transmitter_resp


def test_an_answer_that_does_not_encode_changes_nothing():
    s = server(window=1)
    [bind] = s.receive(req(C.bind_transmitter, 1), T0)
    with pytest.raises(ValueError):
        s.respond(bind.pdu, 0, {"system_id": "x" * 20})
    assert s.state is State.OPEN
    assert s.data_to_send() == b""
    s.respond(bind.pdu, 0, {"system_id": "smsc"})
    assert s.state is State.BOUND_TX
    s.data_to_send()
    [submit] = s.receive(req(C.submit_sm, 2), T0)
    with pytest.raises(ValueError):
        s.respond(submit.pdu, 0, {"message_id": "9" * 70})
    s.receive(req(C.submit_sm, 3), T0)  # the window is still full
    assert one(s).status == Status.RTHROTTLED
    s.respond(submit.pdu, 0, {"message_id": "9"})
    assert one(s).status == 0
    [_] = s.receive(req(C.submit_sm, 4), T0)


def test_failed_bind_keeps_open_and_a_new_bind_may_follow():
    s = server()
    [first] = s.receive(req(C.bind_transceiver, 1), T0)
    s.respond(first.pdu, Status.RINVPASWD)
    assert s.state is State.OPEN and not s.bound
    assert s.system_id == ""
    resp = one(s)
    assert (resp.command, resp.status) == (C.bind_transceiver_resp, Status.RINVPASWD)
    assert s.receive(req(C.submit_sm, 2), T0) == []  # still not bound
    assert one(s).status == Status.RINVBNDSTS
    [second] = s.receive(req(C.bind_transceiver, 3), T0)
    s.respond(second.pdu, 0)
    assert s.state is State.BOUND_TRX


def test_failed_bind_on_the_esme_side():
    s, e = server(), esme()
    e.send(C.bind_transmitter, T0, PARAMS[C.bind_transmitter], context="b1")
    [request] = pump(e, s)
    s.respond(request.pdu, Status.RBINDFAIL)
    [response] = pump(s, e)
    assert (response.request, response.context) == (C.bind_transmitter, "b1")
    assert response.pdu.status == Status.RBINDFAIL
    assert e.state is s.state is State.OPEN
    e.send(C.bind_transmitter, T0, PARAMS[C.bind_transmitter], context="b2")
    [request] = pump(e, s)
    s.respond(request.pdu, 0)
    [response] = pump(s, e)
    assert response.context == "b2"
    assert e.state is State.BOUND_TX


def test_esme_takes_an_outbind_then_binds():
    s, e = server(), esme()
    s.send(C.outbind, T0, PARAMS[C.outbind])
    [request] = pump(s, e)
    assert request.pdu.command is C.outbind
    assert request.pdu.params["system_id"] == "smsc"
    assert e.data_to_send() == b""  # outbind takes no answer
    e.send(C.bind_receiver, T0, PARAMS[C.bind_receiver])
    [request] = pump(e, s)
    s.respond(request.pdu, 0)
    pump(s, e)
    assert s.state is e.state is State.BOUND_RX


def test_esme_answers_an_alert_notification_with_nothing():
    e = bound_esme(C.bind_receiver)
    [request] = e.receive(req(C.alert_notification, 5), T0)
    assert request.pdu.command is C.alert_notification
    assert e.data_to_send() == b""


@pytest.mark.parametrize(
    ("role", "state", "command"),
    [
        (Role.ESME, State.OPEN, C.submit_sm),
        (Role.ESME, State.BOUND_TX, C.deliver_sm),
        (Role.ESME, State.BOUND_RX, C.submit_sm),
        (Role.SMSC, State.OPEN, C.deliver_sm),
        (Role.SMSC, State.BOUND_TX, C.deliver_sm),
        (Role.SMSC, State.BOUND_RX, C.submit_sm),
        (Role.SMSC, State.BOUND_TRX, C.bind_transmitter),
        (Role.SMSC, State.UNBOUND, C.deliver_sm),
    ],
)
def test_send_refuses_what_the_state_forbids(role, state, command):
    s = session_in(role, state)
    with pytest.raises(RuntimeError):
        s.send(command, T0, PARAMS.get(command))
    assert s.data_to_send() == b""


@pytest.mark.parametrize("command", [C.enquire_link, C.unbind, C.submit_sm])
def test_nothing_may_be_sent_once_closed(command):
    e = bound_esme()
    e.connection_lost()
    with pytest.raises(RuntimeError):
        e.send(command, T0, PARAMS.get(command), context="late")
    assert e.data_to_send() == b""
    assert e.next_deadline() is None


@pytest.mark.parametrize("state", STATES, ids=lambda s: s.name)
def test_enquire_link_may_be_sent_in_any_live_state(state):
    s = session_in(Role.ESME, state)
    seq = s.send(C.enquire_link, T0)
    pdu = one(s)
    assert (pdu.command, pdu.sequence) == (C.enquire_link, seq)


# -- window ---------------------------------------------------------------------------------------


def test_window_throttles_the_excess_until_answered():
    s, e = bind_pair(skw={"window": 3}, ekw={"out_window": 10})
    for i in range(5):
        e.send(C.submit_sm, T0, PARAMS[C.submit_sm], context=i)
    requests = pump(e, s)
    assert [type(r) for r in requests] == [Request] * 3
    throttled = written(s)
    assert [(p.command, p.status) for p in throttled] == [(C.submit_sm_resp, Status.RTHROTTLED)] * 2
    assert [r.pdu.sequence for r in requests] == [2, 3, 4]  # the bind took 1
    assert [p.sequence for p in throttled] == [5, 6]

    s.respond(requests[0].pdu, 0, {"message_id": "m0"})
    e.send(C.submit_sm, T0, PARAMS[C.submit_sm], context=5)
    e.send(C.submit_sm, T0, PARAMS[C.submit_sm], context=6)
    more = pump(e, s)
    assert [type(r) for r in more] == [Request]  # one slot freed, one more throttled
    out = written(s)
    assert [(p.command, p.status) for p in out] == [
        (C.submit_sm_resp, 0),
        (C.submit_sm_resp, Status.RTHROTTLED),
    ]


def test_throttled_answers_reach_the_sender_with_their_contexts():
    s, e = bind_pair(skw={"window": 1})
    e.send(C.submit_sm, T0, PARAMS[C.submit_sm], context="a")
    e.send(C.submit_sm, T0, PARAMS[C.submit_sm], context="b")
    [request] = pump(e, s)
    [response] = pump(s, e)
    assert (response.context, response.pdu.status) == ("b", Status.RTHROTTLED)
    s.respond(request.pdu, 0, {"message_id": "1"})
    [response] = pump(s, e)
    assert (response.context, response.pdu.status) == ("a", 0)


def test_requests_without_an_answer_do_not_use_the_window():
    e = bound_esme(C.bind_receiver, window=1)
    events = e.receive(b"".join(req(C.alert_notification, i) for i in range(1, 4)), T0)
    assert [type(x) for x in events] == [Request] * 3
    assert e.data_to_send() == b""


def test_enquire_link_is_answered_even_with_a_full_window():
    s = bound_server(window=1)
    [_] = s.receive(req(C.submit_sm, 2), T0)
    assert s.receive(req(C.enquire_link, 3), T0) == []
    assert one(s).command is C.enquire_link_resp


def test_out_window_and_out_free():
    s, e = bind_pair(ekw={"out_window": 2})
    assert e.out_free == 2
    e.send(C.submit_sm, T0, PARAMS[C.submit_sm], context="a")
    assert e.out_free == 1
    e.send(C.submit_sm, T0, PARAMS[C.submit_sm], context="b")
    assert e.out_free == 0
    requests = pump(e, s)
    s.respond(requests[1].pdu, 0, {"message_id": "2"})
    [response] = pump(s, e)
    assert response.context == "b"
    assert e.out_free == 1
    # A late answer to something unknown frees nothing.
    e.receive(encode(Pdu(C.submit_sm_resp, 999, 0, {"message_id": "x"})), T0)
    assert e.out_free == 1


def test_the_sessions_own_enquire_link_leaves_out_free_alone():
    e = bound_esme(out_window=2, timers=Timers(enquire_link=10, response=5))
    e.timeout(T0 + 10)
    assert one(e).command is C.enquire_link
    assert e.out_free == 2


# -- errors in what the peer sends ----------------------------------------------------------------


def test_unknown_command_id_gets_generic_nack_and_the_session_carries_on():
    s = bound_server()
    events = s.receive(raw(0x00000777, 12) + req(C.submit_sm, 13), T0)
    assert [type(e) for e in events] == [Request]
    nack = one(s)
    assert (nack.command, nack.sequence, nack.status) == (C.generic_nack, 12, Status.RINVCMDID)
    assert s.state is State.BOUND_TRX


def test_unknown_command_id_in_open_state_also_gets_rinvcmdid():
    s = server()
    assert s.receive(raw(0x00000777, 12), T0) == []
    assert one(s).status == Status.RINVCMDID


def test_unknown_response_id_is_not_answered():
    s = bound_server()
    assert s.receive(raw(0x80000777, 12), T0) == []
    assert s.data_to_send() == b""
    assert s.state is State.BOUND_TRX


def test_body_shorter_than_its_fields_gets_generic_nack_rinvcmdlen():
    s = bound_server()
    # query_sm: message_id, then source_addr_ton / npi are cut off.
    events = s.receive(raw(C.query_sm, 4, b"42\0") + req(C.submit_sm, 5), T0)
    assert [type(e) for e in events] == [Request]
    nack = one(s)
    assert (nack.command, nack.sequence, nack.status) == (C.generic_nack, 4, Status.RINVCMDLEN)


@pytest.mark.parametrize(
    ("command", "params", "status"),
    [
        (C.submit_sm, {"source_addr": "1" * 25}, Status.RINVSRCADR),
        (C.submit_sm, {"destination_addr": "9" * 25}, Status.RINVDSTADR),
        (C.submit_sm, {"schedule_delivery_time": "1" * 20}, Status.RINVSCHED),
        (C.submit_sm, {"validity_period": "1" * 20}, Status.RINVEXPIRY),
        (C.data_sm, {"destination_addr": "9" * 70}, Status.RINVDSTADR),
        (C.query_sm, {"message_id": "7" * 70}, Status.RINVMSGID),
    ],
)
def test_decode_error_in_a_request_gets_its_own_response(command, params, status):
    s = bound_server()
    # The codec refuses to encode a value too long for its field: patch it in afterwards.
    [(name, value)] = params.items()
    body = req(command, 21, **{name: "x"})[16:]
    bad = raw(command, 21, body.replace(b"x\0", value.encode() + b"\0", 1))
    events = s.receive(bad + req(command, 22), T0)
    assert [type(e) for e in events] == [Request]  # the session carries on
    resp = one(s)
    assert (resp.command, resp.sequence, resp.status) == (command.response, 21, status)
    assert s.state is State.BOUND_TRX


def test_bad_bind_gets_a_bind_resp_with_the_fields_status_and_stays_open():
    s = server()
    body = b"much-too-long-system-id\0pw\0\0\x34\0\0\0"
    assert s.receive(raw(C.bind_transmitter, 1, body), T0) == []
    resp = one(s)
    assert (resp.command, resp.sequence, resp.status) == (
        C.bind_transmitter_resp,
        1,
        Status.RINVSYSID,
    )
    assert s.state is State.OPEN
    [request] = s.receive(req(C.bind_transmitter, 2), T0)
    s.respond(request.pdu, 0)
    assert s.state is State.BOUND_TX


def test_broken_tlv_gets_the_commands_response():
    s = bound_server()
    data = raw(C.submit_sm, 8, req(C.submit_sm, 8)[16:] + b"\x14\x01\x00\x09ab")
    assert s.receive(data, T0) == []
    resp = one(s)
    assert (resp.command, resp.status) == (C.submit_sm_resp, Status.RINVOPTPARSTREAM)


def test_malformed_response_from_the_peer_is_not_answered():
    e = bound_esme()
    seq = e.send(C.submit_sm, T0, PARAMS[C.submit_sm], context="a")
    e.data_to_send()
    # submit_sm_resp with status 0 whose message_id has no NUL
    assert e.receive(raw(C.submit_sm_resp, seq, b"abc"), T0) == []
    assert e.data_to_send() == b""
    [timeout] = e.timeout(T0 + 30)
    assert timeout == Timeout(C.submit_sm, "a")


@pytest.mark.parametrize("length", [0, 4, 15])
def test_command_length_below_a_header_gets_generic_nack_then_closed(length):
    s = bound_server()
    [closed] = s.receive(raw(C.submit_sm, 31, b"\0" * 20, length=length) + req(C.submit_sm, 32), T0)
    assert isinstance(closed, Closed)
    assert str(length) in closed.reason
    nack = one(s)
    assert (nack.command, nack.sequence, nack.status) == (C.generic_nack, 31, Status.RINVCMDLEN)
    assert s.state is State.CLOSED
    assert s.receive(req(C.enquire_link, 33), T0) == []
    assert s.data_to_send() == b""


def test_command_length_above_max_pdu_size_gets_generic_nack_then_closed():
    s = bound_server(max_pdu_size=200)
    [closed] = s.receive(raw(C.submit_sm, 31, length=201), T0)
    assert isinstance(closed, Closed)
    nack = one(s)
    assert (nack.command, nack.sequence, nack.status) == (C.generic_nack, 31, Status.RINVCMDLEN)
    assert s.state is State.CLOSED


def test_command_length_at_max_pdu_size_is_fine():
    s = bound_server(max_pdu_size=200)
    text = b"y" * (200 - len(req(C.submit_sm, 3, short_message=b"")))
    data = req(C.submit_sm, 3, short_message=text)
    assert len(data) == 200
    [request] = s.receive(data, T0)
    assert request.pdu.params["short_message"] == text
    assert s.state is State.BOUND_TRX


def test_bad_length_with_less_than_a_header_buffered_nacks_with_sequence_zero():
    s = bound_server()
    [closed] = s.receive(struct.pack(">I", 3) + b"\0\0", T0)
    assert isinstance(closed, Closed)
    nack = one(s)
    assert (nack.command, nack.sequence, nack.status) == (C.generic_nack, 0, Status.RINVCMDLEN)


def test_huge_command_length_is_refused_without_waiting_for_the_body():
    s = bound_server()
    [closed] = s.receive(struct.pack(">I", 0xFFFFFFFF), T0)
    assert isinstance(closed, Closed)
    assert one(s).status == Status.RINVCMDLEN


# -- framing --------------------------------------------------------------------------------------


def test_pdus_split_byte_by_byte():
    s = bound_server()
    data = req(C.submit_sm, 2) + req(C.enquire_link, 3) + req(C.data_sm, 4)
    events = []
    ends = []
    for i in range(len(data)):
        got = s.receive(data[i : i + 1], T0)
        if got:
            ends.append(i + 1)
        events += got
    assert [e.pdu.command for e in events] == [C.submit_sm, C.data_sm]
    assert ends == [len(req(C.submit_sm, 2)), len(data)]
    assert [p.command for p in written(s)] == [C.enquire_link_resp]


def test_a_pdu_sent_one_octet_at_a_time_costs_linear_time():
    """Found while fuzzing: each octet of a PDU not yet whole copied everything buffered before
    it, so a peer trickling a large PDU cost quadratic CPU (512 KiB: ~8 s here, ~0.4 s now)."""
    size = 4096
    s = bound_server(max_pdu_size=size)
    data = struct.pack(">IIII", size, C.enquire_link, 0, 7) + bytes(size - 16)
    for i in range(size - 1):
        assert s.receive(data[i : i + 1], T0) == []
    # The command_length joined once, then every octet kept as it came until the PDU is whole:
    # nothing buffered is copied again per octet.
    assert len(s._pieces) == 1 + (size - 1 - 4)
    assert s.receive(data[-1:], T0) == []
    assert one(s).command is C.enquire_link_resp
    assert s.receive(req(C.enquire_link, 8), T0) == []  # nothing left over
    resp = one(s)
    assert (resp.command, resp.sequence) == (C.enquire_link_resp, 8)


def test_many_pdus_in_one_receive():
    s = bound_server()
    data = b"".join(req(C.submit_sm, seq) for seq in range(10, 30))
    events = s.receive(data, T0)
    assert [e.pdu.sequence for e in events] == list(range(10, 30))


def test_split_at_every_offset_gives_the_same_events():
    data = req(C.submit_sm, 2) + req(C.enquire_link, 3) + req(C.cancel_sm, 4)
    whole = bound_server()
    expected = whole.receive(data, T0)
    expected_out = whole.data_to_send()
    for cut in range(len(data) + 1):
        s = bound_server()
        events = s.receive(data[:cut], T0) + s.receive(data[cut:], T0)
        assert events == expected
        assert s.data_to_send() == expected_out


def test_response_with_unknown_sequence_is_ignored():
    e = bound_esme()
    seq = e.send(C.submit_sm, T0, PARAMS[C.submit_sm], context="a")
    e.data_to_send()
    assert e.receive(encode(Pdu(C.submit_sm_resp, seq + 5, 0, {"message_id": "1"})), T0) == []
    assert e.data_to_send() == b""
    [response] = e.receive(encode(Pdu(C.submit_sm_resp, seq, 0, {"message_id": "1"})), T0)
    assert response.context == "a"
    # The same answer twice: the second one is ignored.
    assert e.receive(encode(Pdu(C.submit_sm_resp, seq, 0, {"message_id": "1"})), T0) == []


def test_generic_nack_from_the_peer_answers_the_request():
    e = bound_esme()
    seq = e.send(C.submit_sm, T0, PARAMS[C.submit_sm], context="a")
    e.data_to_send()
    [response] = e.receive(raw(C.generic_nack, seq, status=Status.RINVCMDID), T0)
    assert (response.request, response.context) == (C.submit_sm, "a")
    assert response.pdu.command is C.generic_nack
    assert e.out_free == e.out_window


# Found by tests/test_fuzz.py: a response of another command, or a generic_nack saying ROK,
# was taken as the answer to the request of its sequence number: a bind answered by an
# unbind_resp bound the session, a submit_sm answered by a deliver_sm_resp reported the
# message sent. Such an answer now answers nothing; the request times out.
UNBIND_RESP_1 = bytes.fromhex("00000010800000060000000000000001")
GENERIC_NACK_ROK_1 = bytes.fromhex("00000010800000000000000000000001")
DELIVER_SM_RESP_2 = bytes.fromhex("0000001180000005000000000000000200")


def test_a_bind_answered_by_another_response_stays_unbound():
    e = esme(timers=Timers(response=10))
    assert e.send(C.bind_transceiver, T0, PARAMS[C.bind_transceiver], context="bind") == 1
    e.data_to_send()
    assert e.receive(UNBIND_RESP_1 + GENERIC_NACK_ROK_1, T0) == []
    assert e.state is State.OPEN
    [response] = e.receive(encode(Pdu(C.bind_transceiver_resp, 1, 0)), T0)
    assert (response.request, response.context) == (C.bind_transceiver, "bind")
    assert e.state is State.BOUND_TRX


def test_a_submit_answered_by_another_response_times_out():
    e = bound_esme(timers=Timers(enquire_link=0, response=10))
    assert e.send(C.submit_sm, T0, PARAMS[C.submit_sm], context="a") == 2
    e.data_to_send()
    assert e.receive(DELIVER_SM_RESP_2, T0) == []
    assert e.receive(raw(C.generic_nack, 2), T0) == []  # a generic_nack with ROK
    assert e.out_free == e.out_window - 1
    assert e.timeout(T0 + 10) == [Timeout(C.submit_sm, "a")]


# Found by tests/test_fuzz.py: an enquire_link the application sent (send() allows it in any
# live state) was taken for the session's own: its answer never reached the application, and
# it cleared the session's own one, which then counted against the application's window.
def test_the_applications_enquire_link_is_its_own():
    timers = Timers(enquire_link=10, inactivity=0, response=30)
    e = bound_esme(out_window=2, timers=timers)
    assert e.timeout(T0 + 10) == []
    [ping] = written(e)  # the session's own, not counted in out_free
    mine = e.send(C.enquire_link, T0 + 10, context="mine")
    assert e.out_free == 1
    [response] = e.receive(encode(Pdu(C.enquire_link_resp, mine)), T0 + 11)
    assert (response.request, response.context) == (C.enquire_link, "mine")
    assert e.out_free == 2
    assert e.next_deadline() == T0 + 40  # the session's own still waits for its answer
    assert e.receive(encode(Pdu(C.enquire_link_resp, ping.sequence)), T0 + 12) == []
    assert e.next_deadline() == T0 + 22  # answered: the next one is due 10 s after traffic


def test_error_response_without_a_body():
    e = bound_esme()
    seq = e.send(C.submit_sm, T0, PARAMS[C.submit_sm], context="a")
    e.data_to_send()
    [response] = e.receive(raw(C.submit_sm_resp, seq, status=Status.RSYSERR), T0)
    assert response.pdu.status == Status.RSYSERR
    assert response.context == "a"


# -- timers ---------------------------------------------------------------------------------------


def test_session_init_timer_closes_an_unbound_session():
    s = server(timers=Timers(session_init=30))
    assert s.next_deadline() == T0 + 30
    assert s.timeout(T0 + 29.9) == []
    assert s.state is State.OPEN
    [closed] = s.timeout(T0 + 30)
    assert isinstance(closed, Closed)
    assert "session init" in closed.reason
    assert s.state is State.CLOSED
    assert s.data_to_send() == b""
    assert s.next_deadline() is None


def test_session_init_timer_still_runs_after_a_failed_bind():
    s = server(timers=Timers(session_init=30))
    [request] = s.receive(req(C.bind_transmitter, 1), T0 + 10)
    s.respond(request.pdu, Status.RINVPASWD)
    assert s.next_deadline() == T0 + 30
    [closed] = s.timeout(T0 + 30)
    assert isinstance(closed, Closed)


def test_session_init_timer_stops_once_bound():
    s = server(timers=Timers(session_init=30, enquire_link=0, inactivity=0))
    [request] = s.receive(req(C.bind_transmitter, 1), T0 + 10)
    s.respond(request.pdu, 0)
    assert s.next_deadline() is None
    assert s.timeout(T0 + 1000) == []
    assert s.state is State.BOUND_TX


def test_session_init_timer_off():
    s = server(timers=Timers(session_init=0))
    assert s.next_deadline() is None
    assert s.timeout(T0 + 1e6) == []
    assert s.state is State.OPEN


def test_session_init_timer_on_the_esme_side():
    e = esme(timers=Timers(session_init=5, response=60))
    e.send(C.bind_transceiver, T0, PARAMS[C.bind_transceiver], context="b")
    assert e.next_deadline() == T0 + 5
    [closed] = e.timeout(T0 + 5)
    assert isinstance(closed, Closed)
    assert e.state is State.CLOSED


def test_enquire_link_sent_when_idle_and_answered():
    timers = Timers(enquire_link=30, inactivity=300, response=10)
    s, e = bind_pair(skw={"timers": timers}, ekw={"timers": timers})
    assert e.next_deadline() == T0 + 30
    assert e.timeout(T0 + 29) == []
    assert e.data_to_send() == b""
    assert e.timeout(T0 + 30) == []
    ping = frames(e.data_to_send())
    assert [p.command for p in ping] == [C.enquire_link]
    assert e.next_deadline() == T0 + 40  # the response timer of the enquire_link
    assert e.timeout(T0 + 35) == []  # no second enquire_link while one is out
    assert e.data_to_send() == b""
    assert s.receive(encode(ping[0]), T0 + 31) == []
    # The answer produces no event and re-arms the timer from the last received bytes.
    assert pump(s, e, T0 + 32) == []
    assert e.next_deadline() == T0 + 32 + 30
    assert e.state is State.BOUND_TRX


def test_traffic_postpones_the_enquire_link():
    s = bound_server(timers=Timers(enquire_link=30, inactivity=0, response=10))
    s.receive(req(C.enquire_link, 5), T0 + 20)
    s.data_to_send()
    assert s.next_deadline() == T0 + 50
    assert s.timeout(T0 + 30) == []
    assert s.data_to_send() == b""


def test_unanswered_enquire_link_closes():
    e = bound_esme(timers=Timers(enquire_link=30, inactivity=300, response=10))
    e.timeout(T0 + 30)
    assert one(e).command is C.enquire_link
    assert e.timeout(T0 + 39.9) == []
    [closed] = e.timeout(T0 + 40)
    assert isinstance(closed, Closed)
    assert "enquire_link" in closed.reason
    assert e.state is State.CLOSED


def test_inactivity_unbinds_and_closes():
    s = bound_server(timers=Timers(enquire_link=0, inactivity=60, response=10))
    assert s.next_deadline() == T0 + 60
    assert s.timeout(T0 + 59) == []
    [closed] = s.timeout(T0 + 60)
    assert isinstance(closed, Closed)
    assert "inactivity" in closed.reason
    assert one(s).command is C.unbind
    assert s.state is State.CLOSED


def test_inactivity_closes_with_the_unanswered_contexts():
    e = bound_esme(timers=Timers(enquire_link=0, inactivity=60, response=100))
    e.send(C.submit_sm, T0 + 1, PARAMS[C.submit_sm], context="a")
    [closed] = e.timeout(T0 + 60)
    assert closed.unanswered == ["a"]


def test_response_timeout_for_ordinary_requests():
    e = bound_esme(timers=Timers(enquire_link=0, inactivity=0, response=30), out_window=5)
    e.send(C.submit_sm, T0, PARAMS[C.submit_sm], context="a")
    e.send(C.submit_sm, T0 + 5, PARAMS[C.submit_sm], context="b")
    seq_c = e.send(C.query_sm, T0 + 10, PARAMS[C.query_sm], context="c")
    e.data_to_send()
    assert e.out_free == 2
    assert e.next_deadline() == T0 + 30
    assert e.timeout(T0 + 29) == []
    assert e.timeout(T0 + 36) == [Timeout(C.submit_sm, "a"), Timeout(C.submit_sm, "b")]
    assert e.out_free == 4
    assert e.next_deadline() == T0 + 40
    assert e.state is State.BOUND_TRX
    assert e.timeout(T0 + 40) == [Timeout(C.query_sm, "c")]
    assert e.out_free == 5
    # The answer to a request that timed out is dropped.
    assert e.receive(encode(Pdu(C.query_sm_resp, seq_c, 0, {"message_id": "42"})), T0 + 41) == []
    assert e.data_to_send() == b""


def test_response_timer_off_never_times_out():
    e = bound_esme(timers=NO_TIMERS)
    e.send(C.submit_sm, T0, PARAMS[C.submit_sm], context="a")
    assert e.timeout(T0 + 1e9) == []
    assert e.out_free == e.out_window - 1


def test_unanswered_bind_closes_with_its_context():
    e = esme(timers=Timers(session_init=0, response=10))
    e.send(C.bind_transmitter, T0, PARAMS[C.bind_transmitter], context="bind")
    assert e.next_deadline() == T0 + 10
    [closed] = e.timeout(T0 + 10)
    assert isinstance(closed, Closed)
    assert "bind_transmitter" in closed.reason
    assert closed.unanswered == ["bind"]


def test_unanswered_unbind_closes():
    e = bound_esme(timers=Timers(enquire_link=0, inactivity=0, response=10))
    e.unbind(T0)
    assert e.next_deadline() == T0 + 10
    [closed] = e.timeout(T0 + 10)
    assert isinstance(closed, Closed)
    assert "unbind" in closed.reason


def test_timeouts_due_before_a_fatal_timeout_are_not_lost():
    e = bound_esme(timers=Timers(enquire_link=30, inactivity=0, response=30))
    e.send(C.submit_sm, T0 + 25, PARAMS[C.submit_sm], context="a")  # due at +55
    e.timeout(T0 + 30)  # enquire_link sent, due at +60
    e.send(C.submit_sm, T0 + 40, PARAMS[C.submit_sm], context="b")  # due at +70
    events = e.timeout(T0 + 100)
    assert events[0] == Timeout(C.submit_sm, "a")
    assert isinstance(events[1], Closed)
    assert events[1].unanswered == ["b"]
    assert len(events) == 2


def test_connection_lost_carries_the_unanswered_contexts():
    e = bound_esme(out_window=5)
    e.send(C.submit_sm, T0, PARAMS[C.submit_sm], context="a")
    e.send(C.submit_sm, T0, PARAMS[C.submit_sm])  # no context: not reported
    seq = e.send(C.query_sm, T0, PARAMS[C.query_sm], context={"id": 3})
    e.receive(encode(Pdu(C.query_sm_resp, seq, 0, {"message_id": "42"})), T0)
    e.send(C.data_sm, T0, PARAMS[C.data_sm], context="d")
    [closed] = e.connection_lost()
    assert closed == Closed("connection lost", ["a", "d"])
    assert e.state is State.CLOSED
    assert e.connection_lost() == []
    assert e.next_deadline() is None


def test_next_deadline_is_the_earliest_timer():
    timers = Timers(session_init=30, enquire_link=20, inactivity=50, response=5)
    e = esme(timers=timers)
    assert e.next_deadline() == T0 + 30
    e.send(C.bind_transceiver, T0 + 1, PARAMS[C.bind_transceiver])
    assert e.next_deadline() == T0 + 6  # the bind's response timer
    seq = 1
    e.receive(encode(Pdu(C.bind_transceiver_resp, seq, 0, {"system_id": "x"})), T0 + 2)
    assert e.state is State.BOUND_TRX
    assert e.next_deadline() == T0 + 22  # enquire_link from the last bytes received
    e.send(C.submit_sm, T0 + 3, PARAMS[C.submit_sm])
    assert e.next_deadline() == T0 + 8
    e.timeout(T0 + 8)
    assert e.next_deadline() == T0 + 22
    e.timeout(T0 + 22)  # enquire_link goes out, answered within 5 s or the session closes
    assert e.next_deadline() == T0 + 27
    e.data_to_send()
    e.receive(encode(Pdu(C.enquire_link_resp, 3)), T0 + 24)
    assert e.next_deadline() == T0 + 44


def test_next_deadline_with_only_inactivity():
    s = bound_server(timers=Timers(session_init=0, enquire_link=0, inactivity=50, response=0))
    assert s.next_deadline() == T0 + 50


def test_next_deadline_none_without_timers():
    s = bound_server(timers=NO_TIMERS)
    assert s.next_deadline() is None
    assert s.timeout(T0 + 1e9) == []


def test_data_to_send_drains():
    s = bound_server()
    s.receive(req(C.enquire_link, 1) + req(C.enquire_link, 2), T0)
    assert len(s.data_to_send()) == 32
    assert s.data_to_send() == b""


# -- sequence numbers -----------------------------------------------------------------------------


def test_sequence_numbers_start_at_one_and_increase():
    e = bound_esme()  # the bind took 1
    assert [e.send(C.submit_sm, T0, PARAMS[C.submit_sm]) for _ in range(3)] == [2, 3, 4]
    assert [p.sequence for p in written(e)] == [2, 3, 4]


def test_sequence_numbers_wrap_at_0x7fffffff():
    e = bound_esme(out_window=5)
    e._sequence = 0x7FFFFFFD
    seqs = [e.send(C.submit_sm, T0, PARAMS[C.submit_sm], context=i) for i in range(3)]
    assert seqs == [0x7FFFFFFE, 0x7FFFFFFF, 1]
    assert [p.sequence for p in written(e)] == seqs
    # Answers to both sides of the wrap find their requests.
    for seq, ctx in zip(seqs, range(3), strict=True):
        [response] = e.receive(encode(Pdu(C.submit_sm_resp, seq, 0, {"message_id": "m"})), T0)
        assert response.context == ctx


# -- property and stateful tests ------------------------------------------------------------------

_SEQS = st.integers(0, 0xFFFFFFFF)
_valid = st.builds(req, st.sampled_from(REQUESTS), _SEQS)
_responses = st.builds(
    lambda c, seq, status: raw(c, seq, status=status),
    st.sampled_from([c for c in Command if c.is_response]),
    _SEQS,
    st.sampled_from([0, 1, 0x58]),
)
_headers = st.builds(
    lambda cid, seq, body: raw(cid, seq, body),
    st.one_of(st.sampled_from([int(c) for c in Command]), st.integers(0, 0xFFFFFFFF)),
    _SEQS,
    st.binary(max_size=60),
)


@st.composite
def _mutated(draw):
    data = bytearray(draw(_valid))
    if len(data) > 16:
        i = draw(st.integers(16, len(data) - 1))
        data[i] = draw(st.integers(0, 255))
    return bytes(data)


_chunks = st.one_of(_valid, _responses, _headers, _mutated(), st.binary(max_size=24))


@st.composite
def _stream(draw):
    data = b"".join(draw(st.lists(_chunks, max_size=12)))
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=8)))
    bounds = [0, *cuts, len(data)]
    return data, [data[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


def _feed(chunks: list[bytes]) -> tuple[list, bytes, State]:
    s = bound_server(window=3)
    events = []
    for chunk in chunks:
        events += s.receive(chunk, T0)
    for event in list(events):  # answered once everything is in: the output order is fixed
        assert isinstance(event, (Request, Closed))
        if isinstance(event, Request) and event.pdu.command.response is not None:
            closed = s.respond(event.pdu, 0)  # the end of an unbind that waited for answers
            if closed is not None:
                events.append(closed)
    return events, s.data_to_send(), s.state


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_stream())
def test_any_bytes_make_valid_pdus_whatever_the_chunks(stream):
    data, chunks = stream
    events, out, state = _feed(chunks)
    pdus = frames(out)  # every output is a sequence of well-formed PDUs
    for pdu in pdus:
        assert pdu.command.is_response
    assert sum(isinstance(e, Closed) for e in events) <= 1
    assert (state is State.CLOSED) == any(isinstance(e, Closed) for e in events)
    if state is not State.CLOSED:
        assert state in (State.BOUND_TRX, State.UNBOUND)
    # How the bytes were cut makes no difference, except for the sequence number of the
    # generic_nack that answers a bad command_length: 0 when fewer than 16 octets had arrived.
    whole_events, whole_out, whole_state = _feed([data])
    assert (whole_events, whole_state) == (events, state)
    whole_pdus = frames(whole_out)
    if events and isinstance(events[-1], Closed) and "command_length" in events[-1].reason:
        assert pdus[-1].command is whole_pdus[-1].command is C.generic_nack
        assert pdus[-1].sequence in (0, whole_pdus[-1].sequence)
        pdus[-1].sequence = whole_pdus[-1].sequence
    assert pdus == whole_pdus


class SessionPair(RuleBasedStateMachine):
    """An ESME and a server exchanging traffic over a lossless wire that delivers any number
    of bytes at a time, while the clock runs. Every context the applications hand to `send`
    comes back exactly once: as a Response, a Timeout, or in Closed.unanswered."""

    def __init__(self):
        super().__init__()
        self.now = 0.0
        timers = Timers(session_init=40, enquire_link=15, inactivity=120, response=25)
        self.s = Session(Role.SMSC, 0.0, window=3, out_window=4, timers=timers)
        self.e = Session(Role.ESME, 0.0, window=3, out_window=4, timers=timers)
        self.wire = {self.s: b"", self.e: b""}  # bytes on their way from that side
        self.pending = {self.s: [], self.e: []}  # requests its application has not answered
        self.sent: dict[int, Command] = {}
        self.settled: Counter = Counter()
        self.closed = {self.s: 0, self.e: 0}
        self.binding = False
        self.counter = 0

    @initialize(handshake=st.booleans())
    def start(self, handshake):
        """Send a bind; with `handshake`, it goes through at once."""
        self._bind()
        if handshake:
            self.wire_delivers(from_server=False, size=1000)
            self.application_answers(server_side=True, index=0, status=0)
            self.wire_delivers(from_server=True, size=1000)
            assert self.s.state is self.e.state is State.BOUND_TRX

    def _bind(self):
        self.binding = True
        self._send(self.e, C.bind_transceiver)

    def _send(self, side, command):
        self.counter += 1
        side.send(command, self.now, PARAMS[command], context=self.counter)
        self.sent[self.counter] = command

    def _settle(self, context, command=None):
        assert context in self.sent, context
        if command is not None:
            assert self.sent[context] is command
        self.settled[context] += 1
        assert self.settled[context] == 1, f"context {context} came back twice"
        if self.sent[context] in BINDS:
            self.binding = False

    def _handle(self, side, events):
        for event in events:
            assert self.closed[side] == 0, "events after Closed"
            if isinstance(event, Request):
                self.pending[side].append(event.pdu)
            elif isinstance(event, Response):
                assert event.pdu.command in (event.request.response, C.generic_nack)
                self._settle(event.context, event.request)
            elif isinstance(event, Timeout):
                self._settle(event.context, event.request)
            else:
                assert isinstance(event, Closed)
                self.closed[side] += 1
                for context in event.unanswered:
                    self._settle(context)

    def _peer(self, side):
        return self.e if side is self.s else self.s

    @precondition(lambda self: self.e.state is State.OPEN and not self.binding)
    @rule()
    def esme_binds(self):
        self._bind()

    @precondition(lambda self: self.e.bound and self.e.out_free > 0)
    @rule(command=st.sampled_from([C.submit_sm, C.query_sm, C.data_sm]))
    def esme_submits(self, command):
        self._send(self.e, command)

    @precondition(lambda self: self.s.state is State.BOUND_TRX and self.s.out_free > 0)
    @rule()
    def server_delivers(self):
        self._send(self.s, C.deliver_sm)

    @rule(
        server_side=st.booleans(),
        index=st.integers(0, 10),
        status=st.sampled_from([0, 0, 0, Status.RSYSERR]),
    )
    def application_answers(self, server_side, index, status):
        side = self.s if server_side else self.e
        if not self.pending[side]:
            return
        pdu = self.pending[side].pop(index % len(self.pending[side]))
        if pdu.command.response is not None:
            closed = side.respond(pdu, status)  # the last answer an unbind waited for
            self._handle(side, [closed] if closed is not None else [])

    @rule(from_server=st.booleans(), size=st.integers(0, 200))
    def wire_delivers(self, from_server, size):
        side = self.s if from_server else self.e
        self.wire[side] += side.data_to_send()
        chunk, self.wire[side] = self.wire[side][:size], self.wire[side][size:]
        peer = self._peer(side)
        self._handle(peer, peer.receive(chunk, self.now))

    @rule(dt=st.floats(0, 12))
    def time_passes(self, dt):
        self.now += dt
        for side in (self.s, self.e):
            deadline = side.next_deadline()
            events = side.timeout(self.now)
            if deadline is None or deadline > self.now:
                assert events == [], "timeout() did work before next_deadline()"
            self._handle(side, events)

    @precondition(lambda self: self.e.bound)
    @rule()
    def esme_unbinds(self):
        self.e.unbind(self.now)

    @invariant()
    def consistent(self):
        for side in (self.s, self.e):
            assert self.closed[side] <= 1
            assert (self.closed[side] == 1) == (side.state is State.CLOSED)
            assert side.out_free <= side.out_window
            deadline = side.next_deadline()
            assert deadline is None or deadline >= 0
        if self.s.bound or self.s.state is State.UNBOUND:
            assert self.s.system_id == "esme1"

    def teardown(self):
        for side in (self.s, self.e):
            self._handle(side, side.connection_lost())
        missing = [c for c in self.sent if self.settled[c] != 1]
        assert not missing, f"contexts never came back: {missing}"


SessionPair.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
test_session_pair = SessionPair.TestCase


def test_unbind_waits_for_the_answers_still_owed():
    """A client that submits then unbinds at once still learns its message id: unbind_resp
    follows the last answer, and only then does the session end."""
    s = bound_server()
    submit = encode(Pdu(C.submit_sm, 7, params={"destination_addr": "33600000001"}))
    events = s.receive(submit + encode(Pdu(C.unbind, 8)), T0)
    assert [type(e) for e in events] == [Request]
    assert s.data_to_send() == b"" and s.state is State.UNBOUND
    assert s.receive(encode(Pdu(C.submit_sm, 9)), T0) == []  # nothing new once unbinding
    closed = s.respond(events[0].pdu, 0, {"message_id": "42"})
    assert isinstance(closed, Closed) and s.state is State.CLOSED
    answers = frames(s.data_to_send())
    assert [(p.command, p.sequence, p.status) for p in answers] == [
        (C.submit_sm_resp, 9, Status.RINVBNDSTS),
        (C.submit_sm_resp, 7, Status.ROK),
        (C.unbind_resp, 8, Status.ROK),
    ]
