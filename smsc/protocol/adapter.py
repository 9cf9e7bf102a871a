"""Thin Twisted adapter: runs a sans-IO `Session` on a transport and the reactor's clock.

Subclasses (the SMPP server's client sessions, the carrier links) override the `on_*` hooks.
Bytes go out in one `transport.write` per burst of work: `flush()` is called once after each
`dataReceived`, timer run, or batch of answers the application hands back.
"""

from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import Protocol

from .pdu import Pdu
from .session import Closed, Request, Response, Role, Session, State, Timeout, Timers

ABORT_AFTER = 10.0  # seconds a closing connection may take to drain before it is cut


class SessionProtocol(Protocol):
    role = Role.SMSC
    # Counts the PDUs surfaced here, when set: `received(command, status)` and
    # `sent(command, status)` (the metrics' PduCounts). What the session answers by itself
    # (enquire_link_resp, generic_nack) is not seen here.
    pdus = None

    def __init__(
        self,
        clock: IReactorTime,
        *,
        window: int = 50,
        out_window: int = 10,
        max_pdu_size: int = 65536,
        timers: Timers | None = None,
    ):
        self.clock = clock
        self.session = Session(
            self.role,
            clock.seconds(),
            window=window,
            out_window=out_window,
            max_pdu_size=max_pdu_size,
            timers=timers,
        )
        self._timer = None
        self._timer_at = float("inf")
        self._batching = False  # inside _handle: flush() waits for the end of the burst
        self._closing: Closed | None = None  # the session ended: hang up at the next flush
        self._abort = None

    # -- hooks -----------------------------------------------------------------------------

    def on_request(self, pdu: Pdu) -> None:
        """The peer asks something; answer with `self.session.respond(pdu, …)` then `flush()`."""

    def on_response(self, event: Response) -> None:
        """The peer answered one of our requests."""

    def on_timeout(self, event: Timeout) -> None:
        """One of our requests went unanswered."""

    def on_closed(self, event: Closed) -> None:
        """The session is over (the transport is closing or closed)."""

    # -- Twisted ---------------------------------------------------------------------------

    def connectionMade(self) -> None:
        self._arm()

    def dataReceived(self, data: bytes) -> None:
        self._handle(self.session.receive(data, self.clock.seconds()))

    def connectionLost(self, reason=None) -> None:
        for call in (self._timer, self._abort):
            if call is not None and call.active():
                call.cancel()
        self._timer = self._abort = None
        for event in self.session.connection_lost():
            self.on_closed(event)

    # -- helpers for subclasses ------------------------------------------------------------

    def send(self, command, params=None, tlvs=None, context=None) -> int:
        seq = self.session.send(command, self.clock.seconds(), params, tlvs, context)
        if self.pdus is not None:
            self.pdus.sent(command, 0)
        self._arm()
        return seq

    def unbind(self) -> None:
        """Unbind politely; the transport closes when the peer answers or the timer gives up."""
        if self.session.bound:
            self.session.unbind(self.clock.seconds())
            self.flush()
            self._arm()
        elif self.session.state is not State.CLOSED:
            self.transport.loseConnection()

    def respond(self, request, status=0, params=None, tlvs=None) -> None:
        """Answer a request; the bytes go out at the next `flush()`."""
        closed = self.session.respond(request, status, params, tlvs)
        if self.pdus is not None:
            self.pdus.sent(request.command.response or request.command, status)
        if closed is not None:
            self._closing = closed

    def flush(self) -> None:
        if self._batching:
            return  # _handle flushes once when the hooks are done
        data = self.session.data_to_send()
        if data and self.transport is not None:
            self.transport.write(data)
        if self._closing is not None:
            closed, self._closing = self._closing, None
            self._hang_up(closed)

    # -- internals -------------------------------------------------------------------------

    def _handle(self, events: list) -> None:
        self._batching = True
        pdus = self.pdus
        try:
            for event in events:
                kind = type(event)
                if kind is Request:
                    if pdus is not None:
                        pdus.received(event.pdu.command, 0)
                    self.on_request(event.pdu)
                elif kind is Response:
                    if pdus is not None:
                        pdus.received(event.pdu.command, event.pdu.status)
                    self.on_response(event)
                elif kind is Timeout:
                    self.on_timeout(event)
                else:
                    self._closing = event
        finally:
            self._batching = False
        if self._closing is None:
            self._arm()
        self.flush()

    def _hang_up(self, closed: Closed) -> None:
        self.transport.loseConnection()
        # loseConnection waits for the peer to read what is pending; one that never reads
        # would hold the socket forever.
        self._abort = self.clock.callLater(ABORT_AFTER, self.transport.abortConnection)
        self.on_closed(closed)

    def _arm(self) -> None:
        deadline = self.session.next_deadline()
        if deadline is None or deadline >= self._timer_at:
            return
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer_at = deadline
        self._timer = self.clock.callLater(
            max(0.0, deadline - self.clock.seconds()), self._on_timer
        )

    def _on_timer(self) -> None:
        self._timer, self._timer_at = None, float("inf")
        self._handle(self.session.timeout(self.clock.seconds()))
