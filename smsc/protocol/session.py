"""The SMPP session state machine, sans-IO (in the style of h11 / h2).

A `Session` takes the bytes a peer sent and the current time, and returns events; what it has
to say back accumulates until `data_to_send()` takes it. It never touches a socket or a clock:
the Twisted adapters in `smsc.protocol.twisted` do that. It serves both sides: the SMSC side
(clients bind to us) and the ESME side (our binds to carriers).

What it handles itself: framing, decode errors (generic_nack or the command's own response),
the PDUs each state allows (ESME_RINVBNDSTS, ESME_RALYBND), the window of unanswered requests
(ESME_RTHROTTLED), enquire_link both ways, unbind, and the four timers. Everything else reaches
the application as a `Request` to answer with `respond()` or a `Response` to one of its own.
"""

import enum
from dataclasses import dataclass, field
from typing import Any

from .constants import BINDS, Command, Status
from .pdu import HEADER_SIZE, Pdu, PduError, decode, encode

_C = Command


class Role(enum.Enum):
    SMSC = "smsc"  # peers bind to us
    ESME = "esme"  # we bind to the peer


class State(enum.Enum):
    OPEN = "open"
    BOUND_TX = "bound_tx"
    BOUND_RX = "bound_rx"
    BOUND_TRX = "bound_trx"
    UNBOUND = "unbound"
    CLOSED = "closed"


BOUND = frozenset({State.BOUND_TX, State.BOUND_RX, State.BOUND_TRX})
_BOUND_BY = {
    _C.bind_transmitter: State.BOUND_TX,
    _C.bind_receiver: State.BOUND_RX,
    _C.bind_transceiver: State.BOUND_TRX,
}
_FROM_ESME = frozenset({_C.submit_sm, _C.submit_multi, _C.data_sm, _C.query_sm,
                        _C.cancel_sm, _C.replace_sm})  # fmt: skip
_FROM_SMSC = frozenset({_C.deliver_sm, _C.data_sm, _C.alert_notification})

# The requests a peer may send us in each state, by our role (spec 2.3 and 2.4).
# enquire_link and unbind are handled by the session itself.
_ALLOWED = {
    Role.SMSC: {
        State.OPEN: BINDS,
        State.BOUND_TX: _FROM_ESME,
        State.BOUND_TRX: _FROM_ESME,
    },
    Role.ESME: {
        State.OPEN: frozenset({_C.outbind}),
        State.BOUND_RX: _FROM_SMSC,
        State.BOUND_TRX: _FROM_SMSC,
    },
}
# The requests we may send in each state: the mirror image.
_MAY_SEND = {
    Role.SMSC: {State.OPEN: frozenset({_C.outbind}), State.BOUND_RX: _FROM_SMSC,
                State.BOUND_TRX: _FROM_SMSC},
    Role.ESME: {State.OPEN: BINDS, State.BOUND_TX: _FROM_ESME, State.BOUND_TRX: _FROM_ESME},
}  # fmt: skip


@dataclass
class Timers:
    """Seconds; 0 turns a timer off."""

    session_init: float = 30.0  # OPEN for this long without a successful bind: close
    enquire_link: float = 30.0  # nothing received for this long: send enquire_link
    inactivity: float = 300.0  # nothing received for this long: unbind and close
    response: float = 30.0  # a request of ours unanswered for this long: give up on it


@dataclass(slots=True)
class Request:
    """The peer asks something of the application: answer with `Session.respond(pdu, …)`
    (outbind and alert_notification take no answer)."""

    pdu: Pdu


@dataclass(slots=True)
class Response:
    """The answer to a request the application sent; `context` is what it passed to `send`."""

    pdu: Pdu
    request: Command
    context: Any


@dataclass(slots=True)
class Timeout:
    """A request the application sent got no answer within the response timer."""

    request: Command
    context: Any


@dataclass(slots=True)
class Closed:
    """The session is over; the transport should be closed once the pending bytes are sent.
    `unanswered` holds the contexts of the application's requests that got no answer."""

    reason: str
    unanswered: list = field(default_factory=list)


@dataclass(slots=True)
class _Outstanding:
    command: Command
    deadline: float
    context: Any


class Session:
    def __init__(
        self,
        role: Role,
        now: float,
        *,
        window: int = 50,
        out_window: int = 10,
        max_pdu_size: int = 65536,
        timers: Timers | None = None,
    ):
        self.role = role
        self.state = State.OPEN
        self.window = window
        self.out_window = out_window
        self.max_pdu_size = max_pdu_size
        self.timers = timers or Timers()
        self.system_id = ""  # the peer's, once bound (SMSC side) or ours (ESME side)
        self._pieces: list[bytes] = []  # the start of a PDU not whole yet, as it came
        self._buffered = 0  # octets in _pieces
        self._wanted = 0  # octets _pieces must hold before anything can be read from them
        self._out: list[bytes] = []
        self._sequence = 0
        self._opened = now
        self._last_rx = now
        self._pending_in = 0  # requests handed to the application and not yet answered
        self._peer_unbind: int | None = None  # the sequence of the peer's unbind, once asked
        self._binding = False  # a bind is with the application (SMSC) or the peer (ESME)
        self._sent: dict[int, _Outstanding] = {}  # insertion order is deadline order
        self._ping: int | None = None  # the sequence of our own enquire_link, while it is out

    # -- what the application reads ----------------------------------------------------------

    @property
    def bound(self) -> bool:
        return self.state in BOUND

    @property
    def out_free(self) -> int:
        """How many more requests the application may send before its window is full."""
        return self.out_window - len(self._sent) + (self._ping is not None)

    def data_to_send(self) -> bytes:
        out, self._out = self._out, []
        return b"".join(out)

    def next_deadline(self) -> float | None:
        """When `timeout()` next has work to do, if nothing else happens before."""
        t = self.timers
        times = []
        if self.state is State.OPEN and t.session_init:
            times.append(self._opened + t.session_init)
        if self.state in BOUND:
            if t.enquire_link and self._ping is None:
                times.append(self._last_rx + t.enquire_link)
            if t.inactivity:
                times.append(self._last_rx + t.inactivity)
        if self._sent:
            times.append(next(iter(self._sent.values())).deadline)
        return min(times) if times else None

    # -- input -----------------------------------------------------------------------------

    def receive(self, data: bytes, now: float) -> list:
        """Take bytes from the peer; return the events they make."""
        if self.state is State.CLOSED:
            return []
        self._last_rx = now
        if self._pieces:
            # Joined only once there is something to read: joining at every piece would copy
            # what is buffered again for each octet a peer sends one at a time (quadratic).
            self._pieces.append(data)
            self._buffered += len(data)
            if self._buffered < self._wanted:
                return []
            buf = b"".join(self._pieces)
        else:
            buf = data
        events: list = []
        pos, size = 0, len(buf)
        while size - pos >= 4 and self.state is not State.CLOSED:
            length = int.from_bytes(buf[pos : pos + 4], "big")
            if length < HEADER_SIZE or length > self.max_pdu_size:
                # The framing cannot be trusted any more: answer once, then hang up.
                seq = int.from_bytes(buf[pos + 12 : pos + 16], "big") if size - pos >= 16 else 0
                self._write(Pdu(_C.generic_nack, seq, Status.RINVCMDLEN))
                events.append(self._close(f"command_length {length} out of bounds"))
                break
            if size - pos < length:
                break
            pdu = decode(buf[pos : pos + length])
            pos += length
            if type(pdu) is PduError:
                self._refuse(pdu)
            elif pdu.command.is_response:
                self._on_response(pdu, events)
            else:
                self._on_request(pdu, now, events)
        rest = size - pos if self.state is not State.CLOSED else 0
        self._pieces = [buf[pos:]] if rest else []
        self._buffered = rest
        # A whole command_length, then the whole PDU it announces.
        self._wanted = int.from_bytes(buf[pos : pos + 4], "big") if rest >= 4 else 4
        return events

    def connection_lost(self) -> list:
        """The transport is gone."""
        return [] if self.state is State.CLOSED else [self._close("connection lost")]

    def timeout(self, now: float) -> list:
        """Run the timers that are due at `now`."""
        t = self.timers
        if self.state is State.OPEN and t.session_init and now >= self._opened + t.session_init:
            return [self._close("no bind within the session init timer")]
        if self.state in BOUND and t.inactivity and now >= self._last_rx + t.inactivity:
            self._write(Pdu(_C.unbind, self._next_sequence()))
            return [self._close("inactivity timer")]
        events: list = []
        while self._sent:
            seq, entry = next(iter(self._sent.items()))
            if entry.deadline > now:
                break
            if entry.command in (_C.enquire_link, _C.unbind) or entry.command in BINDS:
                # Keep the Timeouts already made, and this entry's context in `unanswered`.
                events.append(self._close(f"no answer to {entry.command.name}"))
                return events
            del self._sent[seq]
            events.append(Timeout(entry.command, entry.context))
        if (
            self.state in BOUND
            and t.enquire_link
            and self._ping is None
            and now >= self._last_rx + t.enquire_link
        ):
            self._ping = self.send(_C.enquire_link, now)
        return events

    # -- output ----------------------------------------------------------------------------

    def send(
        self,
        command: Command,
        now: float,
        params: dict | None = None,
        tlvs: dict | None = None,
        context: Any = None,
    ) -> int:
        """Send a request; its answer comes back as a `Response` carrying `context`."""
        allowed = _MAY_SEND[self.role].get(self.state, ())
        if self.state is State.CLOSED or (
            command not in (_C.enquire_link, _C.unbind) and command not in allowed
        ):
            raise RuntimeError(f"{command.name} cannot be sent in {self.state.name}")
        seq = self._next_sequence()
        self._write(Pdu(command, seq, 0, params or {}, tlvs or {}))
        if command.response is not None:
            self._sent[seq] = _Outstanding(command, now + (self.timers.response or 1e12), context)
        if command in BINDS:
            self._binding = True
            self.system_id = (params or {}).get("system_id", "")
        return seq

    def respond(
        self, request: Pdu, status: int = 0, params: dict | None = None, tlvs: dict | None = None
    ) -> Closed | None:
        """Answer a `Request`. Answering a bind with status 0 binds the session. Returns the
        session's end when this was the last answer an unbind from the peer waited for."""
        if self.state is State.CLOSED:
            return None
        command = request.command
        # Encode first: a value that does not fit (ValueError) leaves the session as it was.
        self._write(Pdu(command.response, request.sequence, status, params or {}, tlvs or {}))
        self._pending_in -= 1
        if command in BINDS:
            self._binding = False
            if status == 0 and self.state is State.OPEN:
                self.state = _BOUND_BY[command]
                self.system_id = request.params["system_id"]
        if self._pending_in == 0 and self._peer_unbind is not None:
            return self._unbound_by_peer()
        return None

    def unbind(self, now: float) -> None:
        """Start an orderly close: the session ends when the peer answers (or does not)."""
        if self.state in BOUND:
            self.send(_C.unbind, now)
            self.state = State.UNBOUND

    # -- internals -------------------------------------------------------------------------

    def _unbound_by_peer(self) -> Closed:
        self._write(Pdu(_C.unbind_resp, self._peer_unbind))
        return self._close("unbound by the peer")

    def _next_sequence(self) -> int:
        self._sequence = self._sequence % 0x7FFFFFFF + 1
        return self._sequence

    def _write(self, pdu: Pdu) -> None:
        self._out.append(encode(pdu))

    def _close(self, reason: str) -> Closed:
        self.state = State.CLOSED
        unanswered = [e.context for e in self._sent.values() if e.context is not None]
        self._sent.clear()
        self._ping = None
        return Closed(reason, unanswered)

    def _refuse(self, error: PduError) -> None:
        """Answer a PDU that did not decode (spec 4.3: generic_nack only for an unknown
        command or a bad length, the command's own response otherwise)."""
        if error.command_id & 0x80000000:
            return  # never answer a response; the request it answers will time out
        command = None if error.generic else Command(error.command_id).response
        self._write(Pdu(command or _C.generic_nack, error.sequence, error.status))

    def _on_request(self, pdu: Pdu, now: float, events: list) -> None:
        command = pdu.command
        if command is _C.enquire_link:
            self._write(Pdu(_C.enquire_link_resp, pdu.sequence))
            return
        if command is _C.unbind:
            if self.state in BOUND:
                # Answers still owed go out first (a client that submits then unbinds must
                # learn its message ids); unbind_resp follows the last of them.
                self._peer_unbind = pdu.sequence
                self.state = State.UNBOUND
                if not self._pending_in:
                    events.append(self._unbound_by_peer())
            else:
                self._write(Pdu(_C.unbind_resp, pdu.sequence, Status.RINVBNDSTS))
            return
        response = command.response
        if command not in _ALLOWED[self.role].get(self.state, ()) or (
            command in BINDS and self._binding
        ):
            bound_already = command in BINDS and (self.state in BOUND or self._binding)
            status = Status.RALYBND if bound_already else Status.RINVBNDSTS
            self._write(Pdu(response or _C.generic_nack, pdu.sequence, status))
            return
        if response is not None:
            if self._pending_in >= self.window:
                self._write(Pdu(response, pdu.sequence, Status.RTHROTTLED))
                return
            self._pending_in += 1
            if command in BINDS:
                self._binding = True
        events.append(Request(pdu))

    def _on_response(self, pdu: Pdu, events: list) -> None:
        entry = self._sent.get(pdu.sequence)
        if entry is None:
            return  # late (already timed out) or never asked: nothing waits for it
        command = entry.command
        if pdu.command is not command.response and not (
            pdu.command is _C.generic_nack and pdu.status
        ):
            # Another command's response, or a generic_nack saying ROK: it answers nothing
            # (taken as the answer, it would bind, or report a message sent, on a peer's
            # mistake). The request times out, as if this never came.
            return
        del self._sent[pdu.sequence]
        if pdu.sequence == self._ping:
            self._ping = None
        elif command is _C.unbind:
            events.append(self._close("unbound"))
        elif command in BINDS:
            self._binding = False
            if pdu.status == 0 and self.state is State.OPEN:
                self.state = _BOUND_BY[command]
            events.append(Response(pdu, command, entry.context))
        else:
            events.append(Response(pdu, command, entry.context))
