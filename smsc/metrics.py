"""Prometheus metrics on a registry of the switch's own, and the HTTP endpoints that serve them:
`/metrics`, `/healthz` and `/status` (the JSON `smsc carrier list` reads).

Labels are names only (commands, statuses, system_ids, carriers, states): never a number, a
text or an id. The hot paths count through labelled children looked up once and cached here.
"""

import bisect
import json
import math

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.utils import floatToGoString
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

from .limits import BIND_REFUSALS
from .protocol.constants import Status
from .protocol.session import State
from .store import credit, depth
from .store.faults import Quiet

_log = Logger()
# Seconds between two refreshes of the queue and outbox depths. What a scrape shows of them is
# the last refresh: at most this old, plus the time the counts took on the read pool.
DEPTH_EVERY = 15.0
_MODES = {State.BOUND_TX: "transmitter", State.BOUND_RX: "receiver", State.BOUND_TRX: "transceiver"}
MO_KINDS = ("stop", "contact", "other", "unrouted", "unreadable")
_LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_RECEIPT = (1, 2, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600)


def status_name(status: int) -> str:
    """A status as a label: its ESME_ name, "unknown" for one we have no name for."""
    try:
        return "ESME_" + Status(status).name
    except ValueError:
        return "unknown"


class PduCounts:
    """The PDUs of one side ("client" or "carrier"), counted by command and status in plain
    dicts (a dict update per PDU, where a prometheus_client child takes a lock); `_Counts`
    makes them counters at scrape time. Only the reactor thread writes them."""

    def __init__(self, side: str):
        self.side = side
        self.received_by: dict = {}
        self.sent_by: dict = {}

    def received(self, command, status: int) -> None:
        by = self.received_by
        by[command, status] = by.get((command, status), 0) + 1

    def sent(self, command, status: int) -> None:
        by = self.sent_by
        by[command, status] = by.get((command, status), 0) + 1


class Buckets:
    """A histogram as plain bucket counts (a bisect and two additions per observation, where
    prometheus_client's takes a lock), collected at scrape time; optionally by one label.
    Only the reactor thread observes."""

    def __init__(self, name: str, documentation: str, bounds: tuple, label: str | None = None):
        self._name, self._doc, self._bounds, self._label = name, documentation, bounds, label
        self._children: dict[str, _Observed] = {}
        if label is None:
            self._whole = self.labels("")

    def labels(self, value: str) -> "_Observed":
        child = self._children.get(value)
        if child is None:
            child = self._children[value] = _Observed(self._bounds)
        return child

    def observe(self, value: float) -> None:
        self._whole.observe(value)

    def describe(self):
        return []

    def collect(self):
        family = HistogramMetricFamily(
            self._name, self._doc, labels=[self._label] if self._label else None
        )
        for value, child in sorted(self._children.items()):
            cumulative, buckets = 0, []
            for bound, n in zip((*self._bounds, math.inf), child.counts, strict=True):
                cumulative += n
                buckets.append((floatToGoString(bound), cumulative))
            family.add_metric([value] if self._label else [], buckets, child.total)
        return [family]


class _Observed:
    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple):
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last: above every bound (+Inf)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value


class _Counts:
    """The hot paths' plain counts (PDUs, submits), as counters at scrape time."""

    def __init__(self, sides: list[PduCounts], submits: dict):
        self._sides = sides
        self._submits = submits

    def describe(self):
        return []

    def collect(self):
        by_pdu = ["side", "command", "status"]
        received = CounterMetricFamily("smsc_pdus_received", "PDUs received", labels=by_pdu)
        sent = CounterMetricFamily("smsc_pdus_sent", "PDUs sent", labels=by_pdu)
        for pdus in self._sides:
            for family, by in ((received, pdus.received_by), (sent, pdus.sent_by)):
                for (command, status), n in sorted(by.copy().items(), key=str):
                    family.add_metric([pdus.side, command.name, status_name(status)], n)
        submits = CounterMetricFamily(
            "smsc_submits",
            "Submitted messages (one per destination) by account and result: accepted, or the "
            "refusal's status",
            labels=["account", "result"],
        )
        for (account, result), n in sorted(self._submits.copy().items()):
            submits.add_metric([account, "accepted" if result == 0 else status_name(result)], n)
        return [received, sent, submits]


class Metrics:
    """Every metric of one switch, on its own registry."""

    def __init__(self):
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.messages_sent = Counter(
            "smsc_messages_sent", "Parts a carrier took", ["carrier"], registry=r
        )
        self.receipts = Counter(
            "smsc_receipts", "Carrier receipts matched, by state", ["carrier", "state"], registry=r
        )
        self.receipts_unmatched = Counter(
            "smsc_receipts_unmatched",
            "Carrier receipts for no part we sent (or unreadable)",
            ["carrier"],
            registry=r,
        )
        self.receipt_timeouts = Counter(
            "smsc_receipt_timeouts",
            "Messages ended UNKNOWN because their final receipt did not come within "
            "[queue] receipt_timeout",
            registry=r,
        )
        self.mo = Counter("smsc_mo", "Subscriber messages by kind", ["kind"], registry=r)
        self.optouts = Counter("smsc_optouts", "STOPs that put a number on a list", registry=r)
        self.low_balances = Counter(
            "smsc_low_balance_crossings",
            "Prepaid accounts' balances falling below their low-balance threshold",
            ["account"],
            registry=r,
        )
        self.callbacks = Counter(
            "smsc_receipt_callbacks",
            "Receipts for HTTP and email clients, by how they went (http, mail) and whether "
            "they were taken (sent) or must be tried again (failed)",
            ["how", "result"],
            registry=r,
        )
        for how in ("http", "mail"):
            for result in ("sent", "failed"):
                self.callbacks.labels(how, result)
        self.http_requests = Counter(
            "smsc_http_api_requests",
            "HTTP API requests, by operation (send, show, cancel, listing, openapi; unknown: "
            "no such path) and HTTP status code",
            ["operation", "code"],
            registry=r,
        )
        self.mails = Counter(
            "smsc_smtp_mails",
            "Mails to SMS, by the SMTP code that answered their end of data (250 accepted, "
            "451 later, 552 too large, 554 refused)",
            ["code"],
            registry=r,
        )
        self.reconnects = Counter(
            "smsc_carrier_reconnects", "Carrier links bound again", ["carrier"], registry=r
        )
        self.bind_failures = Counter(
            "smsc_bind_failures", "Client binds refused, by reason", ["reason"], registry=r
        )
        for reason in BIND_REFUSALS:
            self.bind_failures.labels(reason)
        self.connections_refused = Counter(
            "smsc_connections_refused",
            "Client connections closed at once, by the cap they were over (total, address)",
            ["cap"],
            registry=r,
        )
        for cap in ("total", "address"):
            self.connections_refused.labels(cap)
        self.submit_resp = Buckets(
            "smsc_submit_resp_seconds", "From a submit's arrival to its response", _LATENCY
        )
        self.carrier_submit = Buckets(
            "smsc_carrier_submit_seconds", "Carrier submit_sm round trip", _LATENCY, "carrier"
        )
        self.submit_to_receipt = Buckets(
            "smsc_submit_to_receipt_seconds",
            "From a message's submission to the receipt settling it",
            _RECEIPT,
            "carrier",
        )
        for histogram in (self.submit_resp, self.carrier_submit, self.submit_to_receipt):
            r.register(histogram)
        self.queue_depth = Gauge(
            "smsc_queue_depth",
            f"Messages in the queue by state (refreshed every {DEPTH_EVERY:g} s)",
            ["state"],
            registry=r,
        )
        self.outbox_depth = Gauge(
            "smsc_outbox_depth",
            f"deliver_sm waiting for clients (refreshed every {DEPTH_EVERY:g} s)",
            registry=r,
        )
        for state in depth.QUEUE_STATES:
            self.queue_depth.labels(state)
        for kind in MO_KINDS:
            self.mo.labels(kind)
        self.client_pdus = PduCounts("client")
        self.carrier_pdus = PduCounts("carrier")
        self._submits: dict = {}  # (account, result) → destinations
        r.register(_Counts([self.client_pdus, self.carrier_pdus], self._submits))
        self._carriers: dict = {}
        self._live = _Live()
        r.register(self._live)
        self._balances = _Balances()
        r.register(self._balances)
        self._depth_loop = None

    # -- the hot paths ---------------------------------------------------------------------

    def submitted(self, account: str, result: int, n: int = 1) -> None:
        """`n` destinations of `account` accepted (result 0) or refused with `result`."""
        submits = self._submits
        submits[account, result] = submits.get((account, result), 0) + n

    def carrier(self, name: str) -> "CarrierMetrics":
        found = self._carriers.get(name)
        if found is None:
            found = self._carriers[name] = CarrierMetrics(self, name)
        return found

    # -- live objects and background counts -----------------------------------------------

    def watch(self, server, carriers, cluster=None) -> None:
        """Read the bound sessions, the carriers' links and the cluster at each scrape."""
        self._live.server, self._live.carriers, self._live.cluster = server, carriers, cluster
        for carrier in carriers:
            self.carrier(carrier.name)

    def refresh_depths(self, store, clock, every: float = DEPTH_EVERY):
        """Count the queue and the outbox on the read pool now and every `every` seconds."""

        reads = Quiet("counting the queue and the balances", _log)  # one line an outage

        def refresh():
            d = store.read(depth.depths, clock.seconds())
            d.addCallback(self.set_depths)
            d.addCallbacks(lambda _: reads.succeeded(), reads.failed)
            b = store.read(credit.balances)
            b.addCallback(self._balances.set)
            b.addCallbacks(lambda _: reads.succeeded(), reads.failed)
            return d

        self._depth_loop = LoopingCall(refresh)
        self._depth_loop.clock = clock
        self._depth_loop.start(every, now=True)
        return self._depth_loop

    def stop(self) -> None:
        if self._depth_loop is not None and self._depth_loop.running:
            self._depth_loop.stop()

    def set_depths(self, found: dict[str, int]) -> None:
        for state in depth.QUEUE_STATES:
            self.queue_depth.labels(state).set(found[state])
        self.outbox_depth.set(found["outbox"])

    def scrape(self) -> bytes:
        return generate_latest(self.registry)


class CarrierMetrics:
    """One carrier's children, looked up once."""

    def __init__(self, metrics: Metrics, name: str):
        self.sent = metrics.messages_sent.labels(name)
        self.submit_seconds = metrics.carrier_submit.labels(name)
        self.reconnects = metrics.reconnects.labels(name)
        self.unmatched = metrics.receipts_unmatched.labels(name)
        self.to_receipt = metrics.submit_to_receipt.labels(name)
        self._receipts = metrics.receipts
        self._name = name
        self._states: dict = {}

    def receipt(self, state: str) -> None:
        child = self._states.get(state)
        if child is None:
            child = self._states[state] = self._receipts.labels(self._name, state)
        child.inc()


class _Balances:
    """The prepaid accounts' balances as last read with the depths (never per scrape)."""

    def __init__(self):
        self.found: list[tuple[str, int, int]] = []

    def set(self, found: list[tuple[str, int, int]]) -> None:
        self.found = found

    def describe(self):
        return []

    def collect(self):
        balance = GaugeMetricFamily(
            "smsc_account_balance_credits", "Prepaid accounts' balances", labels=["account"]
        )
        low = GaugeMetricFamily(
            "smsc_account_low_balance",
            "1 while a prepaid account's balance is below its low-balance threshold",
            labels=["account"],
        )
        for system_id, amount, threshold in self.found:
            balance.add_metric([system_id], amount / credit.MILLI)
            low.add_metric([system_id], float(amount < threshold))
        yield balance
        yield low


class _Live:
    """Gauges read from the live objects at scrape time: binds, links bound, window in use."""

    def __init__(self):
        self.server = None
        self.carriers = []
        self.cluster = None

    def describe(self):
        return []

    def collect(self):
        binds = GaugeMetricFamily("smsc_binds", "Bound client sessions", labels=["account", "mode"])
        for (system_id, mode), n in sorted(client_binds(self.server).items()):
            binds.add_metric([system_id, mode], n)
        bound = GaugeMetricFamily(
            "smsc_carrier_links_bound", "Carrier links bound", labels=["carrier"]
        )
        window = GaugeMetricFamily(
            "smsc_carrier_window_in_use", "Carrier submit_sm awaiting an answer", labels=["carrier"]
        )
        tps = GaugeMetricFamily(
            "smsc_carrier_tps", "This node's part of the carrier's tps", labels=["carrier"]
        )
        for carrier in self.carriers:
            bound.add_metric([carrier.name], len(carrier.links))
            window.add_metric([carrier.name], sum(_in_use(link) for link in carrier.links))
            tps.add_metric([carrier.name], carrier.tps)
        found = [binds, bound, window, tps, *_limits(self.server)]
        if self.cluster is not None:
            found.append(
                GaugeMetricFamily(
                    "smsc_cluster_nodes", "Nodes live on the store", value=self.cluster.live
                )
            )
        return found


def _limits(server) -> list:
    """The lockouts in force on this node (the store's, read every few seconds, and its own)
    and the client connections open (smsc.limits)."""
    guard = getattr(server, "guard", None)
    if guard is None:
        return []
    lockouts = GaugeMetricFamily(
        "smsc_lockouts", "Bind lockouts in force, by kind (account, address)", labels=["kind"]
    )
    for kind, n in guard.count().items():
        lockouts.add_metric([kind], n)
    locked = GaugeMetricFamily(
        "smsc_account_locked", "1 while the account's binds are locked out", labels=["account"]
    )
    for system_id in guard.locked_accounts():
        locked.add_metric([system_id], 1)
    connections = GaugeMetricFamily(
        "smsc_client_connections", "Client connections open", value=server.connections.total
    )
    return [lockouts, locked, connections]


def _in_use(link) -> int:
    return max(0, link.session.out_window - link.session.out_free) if link.session.bound else 0


def client_binds(server) -> dict[tuple[str, str], int]:
    """(system_id, mode) → bound sessions."""
    found: dict[tuple[str, str], int] = {}
    if server is None:
        return found
    for sessions in server.sessions.values():
        for s in sessions:
            mode = _MODES.get(s.session.state)
            if mode is not None and s.account is not None:
                key = (s.account.system_id, mode)
                found[key] = found.get(key, 0) + 1
    return found


# -- /status and /healthz ----------------------------------------------------------------------


def link_state(factory, clock) -> str:
    link = factory.link
    if link is not None and link.session.bound:
        return "throttled" if factory.carrier.paused(clock.seconds()) else "bound"
    if not factory.continueTrying:
        return "down"
    return "reconnecting" if factory.binds else "connecting"


def status(server, carriers, clock, cluster=None) -> dict:
    """The JSON of /status (a contract: `smsc carrier list` reads it)."""
    out = []
    now = clock.seconds()
    for carrier in carriers:
        links = []
        for factory in carrier.factories:
            link = factory.link
            in_use = _in_use(link) if link is not None else 0
            links.append({"state": link_state(factory, clock), "window_in_use": in_use})
        out.append(
            {
                "name": carrier.name,
                "links": links,
                "bound": len(carrier.links),
                "binds": carrier.config.binds,
                "throttled": carrier.paused(now),
            }
        )
    binds: dict[str, dict[str, int]] = {}
    for (system_id, mode), n in client_binds(server).items():
        modes = binds.setdefault(system_id, dict.fromkeys(_MODES.values(), 0))
        modes[mode] = n
    found = {"carriers": out, "binds": binds}
    if cluster is not None:
        found["node"] = {"name": cluster.config.node, "live": cluster.live}
    return found


class _Metrics(Resource):
    isLeaf = True

    def __init__(self, metrics: Metrics):
        super().__init__()
        self.metrics = metrics

    def render_GET(self, request):
        request.setHeader(b"Content-Type", CONTENT_TYPE_LATEST.encode())
        return self.metrics.scrape()


class _Status(Resource):
    isLeaf = True

    def __init__(self, switch, clock):
        super().__init__()
        self.switch, self.clock = switch, clock

    def render_GET(self, request):
        request.setHeader(b"Content-Type", b"application/json")
        switch = self.switch
        body = status(switch.server, switch.carriers, self.clock, switch.cluster)
        return json.dumps(body).encode()


class _Health(Resource):
    """200 "ok" when the store answers and a carrier link is bound; 503 and why otherwise."""

    isLeaf = True

    def __init__(self, switch):
        super().__init__()
        self.switch = switch

    def render_GET(self, request):
        d = self.switch.store.read(depth.ping)
        d.addCallbacks(self._answered, self._store_failed, (request,), None, (request,))
        d.addErrback(lambda f: _log.failure("/healthz failed", f))
        return NOT_DONE_YET

    def _answered(self, _, request) -> None:
        carriers = self.switch.carriers
        if not carriers:
            return _finish(request, 503, "no carrier configured")
        if not any(c.links for c in carriers):
            return _finish(request, 503, "no carrier link bound")
        _finish(request, 200, "ok")

    def _store_failed(self, failure, request) -> None:
        _finish(request, 503, f"store: {failure.getErrorMessage()}")


def _finish(request, code: int, text: str) -> None:
    if request._disconnected:
        return
    request.setResponseCode(code)
    request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
    request.write(text.encode() + b"\n")
    request.finish()


def site(metrics: Metrics, switch, clock) -> Site:
    root = Resource()
    root.putChild(b"metrics", _Metrics(metrics))
    root.putChild(b"healthz", _Health(switch))
    root.putChild(b"status", _Status(switch, clock))
    factory = Site(root)
    factory.noisy = False
    factory.log = lambda request: None  # no access log line per scrape
    return factory
