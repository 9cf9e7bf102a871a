"""Carrier links: the switch's own binds to a carrier, and the carrier's queue of parts.

Each `[[carriers]]` entry keeps `binds` transceiver sessions, each a `LinkFactory` that
reconnects with exponential backoff and jitter (Twisted's ReconnectingClientFactory: one
connection at a time per bind, so never a second socket while one is open). The carrier sends
its queue in order over the bound links, at most `window` outstanding per link and `tps` parts
in any one second (a sliding window, as carriers measure it) for the carrier as a whole (on
several nodes, this node's part of the binds and of `tps`: smsc.cluster); a
carrier that says ESME_RTHROTTLED or ESME_RMSGQFUL is paused with a growing backoff, and the
refused parts go back to the head of its queue, in the order they were sent.
"""

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.protocol import ReconnectingClientFactory
from twisted.logger import Logger

from ..config import CarrierConfig
from ..protocol.adapter import SessionProtocol
from ..protocol.constants import Command, Status
from ..protocol.pdu import Pdu
from ..protocol.session import Closed, Response, Role, Timeout, Timers
from ..tls import failure as tls_failure

_log = Logger()
_SLOW_DOWN = (Status.RTHROTTLED, Status.RMSGQFUL)
_BACKOFF_FIRST, _BACKOFF_MAX = 0.1, 10.0
# The shortest wake-up (tps cap, pause): a delay computed to the exact edge can land an ulp
# short of it, and waking up again at once would spin.
_MIN_WAIT = 0.001
# A part counts against `tps` for a little more than a second: what the carrier measures is
# when parts arrive, a few milliseconds after we hand them over, by a varying delay.
_RATE_WINDOW = 1.05


@dataclass(eq=False, slots=True)
class Part:
    """One submit_sm of a message on its way. `message` is the dispatcher's own record."""

    message: Any
    seq: int
    params: dict
    tlvs: dict = field(default_factory=dict)
    cost: int = 1  # parts on the air (a long text in message_payload costs one per part)
    order: int = 0  # its place in the carrier's queue (set by `enqueue`)
    sent_at: float = 0.0  # when it last went to a link (the submit_sm round trip)


class Carrier:
    """One carrier: its links, its queue of parts, its throughput and its back-off.

    The dispatcher gives it parts with `enqueue` and hears back through `events`, an object
    with `part_sent(part, carrier_id)`, `part_failed(part, status)`, `part_lost(part)`,
    `carrier_down(carrier)` (its last link went: the queued parts must go elsewhere) and
    `room_changed()` (a link bound: it can take more). `tls`: how its links connect over TLS
    (smsc.tls.client_options), None for plain TCP."""

    def __init__(
        self, config: CarrierConfig, clock, events, on_deliver: Callable, metrics=None, tls=None
    ):
        self.config = config
        self.tls = tls
        # smsc.metrics: this carrier's children (None: not counted), and its PDU counts.
        self.metrics = None if metrics is None else metrics.carrier(config.name)
        self.pdus = None if metrics is None else metrics.carrier_pdus
        self.name = config.name
        self.clock = clock
        self.events = events
        self.on_deliver = on_deliver  # (link, pdu): a deliver_sm from the carrier
        self.links: list[CarrierLink] = []  # bound
        self.queue: deque[Part] = deque()
        # (time, cost) of the parts sent in the last second, and their total: the tps cap.
        self._recent: deque[tuple[float, int]] = deque()
        self._recent_cost = 0
        self._order = 0
        self.factories = [LinkFactory(self, i) for i in range(config.binds)]
        # This node's part of the carrier's binds and throughput (smsc.cluster): all of them
        # until the cluster says otherwise.
        self.tps: float = config.tps
        self.allowed = 0  # how many of the factories keep a bind
        self.throttled = 0  # how many times it said slow down
        self._paused_until = 0.0
        self._backoff = 0.0
        self._wakeup = None
        self._next = 0  # round robin over the links

    # -- for the dispatcher ----------------------------------------------------------------

    @property
    def bound(self) -> bool:
        return any(link.session.bound for link in self.links)

    def paused(self, now: float) -> bool:
        """Whether it said slow down and its pause is not over."""
        return now < self._paused_until

    def room(self) -> int:
        """How many more parts it is worth giving it now: a second of its throughput, less
        what it has queued already."""
        return int(self.tps) - len(self.queue) if self.bound else 0

    def enqueue(self, parts: list[Part]) -> None:
        for part in parts:
            self._order += 1
            part.order = self._order
        self.queue.extend(parts)
        self.pump()

    def take_queue(self) -> list[Part]:
        parts, self.queue = list(self.queue), deque()
        return parts

    def pump(self) -> None:
        """Send from the head of the queue while a link has room, the throughput allows, and
        the carrier is not paused."""
        if not self.queue:
            return
        now = self.clock.seconds()
        if now < self._paused_until:
            return self._wake_at(self._paused_until - now)
        sent = set()
        while self.queue:
            if self.queue[0].message.finished:  # a leftover of a message that ended
                self.queue.popleft()
                continue
            wait = self._rate_wait(self.queue[0].cost, now)
            if wait > 0:
                self._wake_at(wait)
                break
            link = self._free_link()
            if link is None:
                break
            part = self.queue.popleft()
            part.sent_at = now
            link.send(Command.submit_sm, part.params, part.tlvs, context=part)
            self._recent.append((now, part.cost))
            self._recent_cost += part.cost
            sent.add(link)
        for link in sent:
            link.flush()

    # -- from the links --------------------------------------------------------------------

    def link_bound(self, link: "CarrierLink") -> None:
        self.links.append(link)
        factory = getattr(link, "factory", None)
        if factory is not None:
            factory.binds += 1
            if factory.binds > 1 and self.metrics is not None:
                self.metrics.reconnects.inc()
        _log.info("carrier {name} bound ({n}/{binds})", name=self.name, n=len(self.links),
                  binds=self.config.binds)  # fmt: skip
        self.events.room_changed()
        self.pump()

    def link_closed(self, link: "CarrierLink", event: Closed) -> None:
        if link in self.links:
            self.links.remove(link)
            _log.info("carrier {name} link closed: {reason}", name=self.name, reason=event.reason)
        for part in event.unanswered:
            self.events.part_lost(part)
        if not self.links:
            self.events.carrier_down(self)
        else:
            self.pump()

    def response(self, link: "CarrierLink", event: Response) -> None:
        part, status = event.context, event.pdu.status
        metrics = self.metrics
        if metrics is not None:
            metrics.submit_seconds.observe(self.clock.seconds() - part.sent_at)
        if status == Status.ROK:
            if metrics is not None:
                metrics.sent.inc()
            self._backoff = 0.0
            self.events.part_sent(part, event.pdu.params.get("message_id", ""))
        elif status in _SLOW_DOWN:
            self.throttled += 1
            now = self.clock.seconds()
            # The other parts of the window come back refused too: one pause for them all,
            # longer than the last one only when the carrier refuses again after it.
            if now >= self._paused_until:
                self._backoff = min(_BACKOFF_MAX, max(_BACKOFF_FIRST, self._backoff * 2))
                self._paused_until = now + self._backoff
            self._requeue(part)  # no reordering: it goes first when the pause ends
        else:
            self.events.part_failed(part, status)
        self.pump()

    def timeout(self, event: Timeout) -> None:
        self.events.part_lost(event.context)
        self.pump()

    # -- internals -------------------------------------------------------------------------

    def _requeue(self, part: Part) -> None:
        """Back at its place: after the refused parts sent before it, before all the rest (each
        refusal puts one back, and the refusals of a window come in any order)."""
        queue, i = self.queue, 0
        while i < len(queue) and queue[i].order < part.order:
            i += 1
        queue.insert(i, part)

    def _rate_wait(self, cost: int, now: float) -> float:
        """Seconds until a part of this cost fits under the cap of `tps` parts in any window of
        _RATE_WINDOW (0: now). One costing more than `tps` goes alone, once the window is
        empty."""
        recent, edge = self._recent, now - _RATE_WINDOW
        while recent and recent[0][0] <= edge:
            self._recent_cost -= recent.popleft()[1]
        if not recent or self._recent_cost + cost <= self.tps:
            return 0.0
        left, target = self._recent_cost, max(0, self.tps - cost)
        for sent_at, spent in recent:
            left -= spent
            if left <= target:  # once this one leaves the second, the part fits
                return max(_MIN_WAIT, sent_at + _RATE_WINDOW - now)
        return _MIN_WAIT  # not reached: an empty second always fits

    def _free_link(self) -> "CarrierLink | None":
        for i in range(len(self.links)):
            link = self.links[(self._next + i) % len(self.links)]
            if link.session.bound and link.session.out_free > 0:
                self._next = (self._next + i + 1) % len(self.links)
                return link
        return None

    def _wake_at(self, delay: float) -> None:
        if self._wakeup is None or not self._wakeup.active():
            self._wakeup = self.clock.callLater(max(_MIN_WAIT, delay), self.pump)

    def allow(self, binds: int, reactor) -> None:
        """Keep `binds` of the carrier's binds (the slots this node holds): the first ones
        connect, the others unbind and stop reconnecting."""
        binds = min(binds, len(self.factories))
        for factory in self.factories[self.allowed : binds]:
            factory.start(reactor)
        for factory in self.factories[binds : self.allowed]:
            factory.halt()
        self.allowed = binds

    def stop(self) -> None:
        """Stop reconnecting and unbind the links."""
        if self._wakeup is not None and self._wakeup.active():
            self._wakeup.cancel()
        self.allow(0, None)


class CarrierLink(SessionProtocol):
    """One bind to a carrier, ESME side."""

    role = Role.ESME

    def __init__(self, carrier: Carrier, timers: Timers):
        super().__init__(carrier.clock, out_window=carrier.config.window, timers=timers)
        self.carrier = carrier
        self.pdus = carrier.pdus

    def connectionMade(self) -> None:
        super().connectionMade()
        c = self.carrier.config
        self.send(
            Command.bind_transceiver,
            {
                "system_id": c.system_id,
                "password": c.password,
                "system_type": c.system_type,
                "interface_version": 0x34,
            },
        )
        self.flush()

    def on_response(self, event: Response) -> None:
        if event.request is Command.bind_transceiver:
            if event.pdu.status == Status.ROK:
                self.factory.resetDelay()
                self.carrier.link_bound(self)
            else:
                _log.warn("carrier {name} refused the bind: {status}", name=self.carrier.name,
                          status=_status_name(event.pdu.status))  # fmt: skip
                self.transport.loseConnection()
            return
        self.carrier.response(self, event)

    def on_timeout(self, event: Timeout) -> None:
        self.carrier.timeout(event)

    def on_request(self, pdu: Pdu) -> None:
        if pdu.command is Command.deliver_sm or pdu.command is Command.data_sm:
            self.carrier.on_deliver(self, pdu)
        else:  # alert_notification, outbind: nothing to do with them
            if pdu.command.response is not None:
                self.respond(pdu, Status.RINVCMDID)

    def connectionLost(self, reason=None) -> None:
        # A certificate refused would otherwise show only as a carrier that never binds (the
        # factory hears of a clean close: the TLS error reaches only the protocol).
        problem = None if reason is None else tls_failure(reason)
        if problem is not None:
            c = self.carrier.config
            _log.warn("carrier {name}: TLS with {host}:{port} failed: {problem}", name=c.name,
                      host=c.host, port=c.port, problem=problem)  # fmt: skip
        super().connectionLost(reason)

    def on_closed(self, event: Closed) -> None:
        factory = getattr(self, "factory", None)
        if factory is not None and factory.link is self:
            factory.link = None
        self.carrier.link_closed(self, event)


class LinkFactory(ReconnectingClientFactory):
    """Keeps one bind to the carrier, reconnecting with exponential backoff and jitter."""

    noisy = False
    initialDelay = 0.5
    maxDelay = 30.0
    factor = 2.0
    jitter = 0.2

    def __init__(self, carrier: Carrier, index: int):
        self.carrier = carrier
        self.index = index
        self.link: CarrierLink | None = None  # the connection of the moment, bound or not
        self.binds = 0  # how many times it bound: more than once is a reconnect
        self.clock = carrier.clock
        self.timers = Timers(session_init=0, enquire_link=30.0, inactivity=0, response=30.0)

    def buildProtocol(self, addr) -> CarrierLink:
        link = CarrierLink(self.carrier, self.timers)
        link.factory = self
        self.link = link
        return link

    def start(self, reactor) -> None:
        self.continueTrying = True
        self.resetDelay()
        c = self.carrier.config
        if self.carrier.tls is None:
            reactor.connectTCP(c.host, c.port, self, timeout=10)
        else:
            reactor.connectSSL(c.host, c.port, self, self.carrier.tls, timeout=10)

    def halt(self) -> None:
        """Unbind, and stop reconnecting."""
        self.stopTrying()
        if self.link is not None:
            self.link.unbind()


def _status_name(status: int) -> str:
    try:
        return Status(status).name
    except ValueError:
        return f"0x{status:08x}"
