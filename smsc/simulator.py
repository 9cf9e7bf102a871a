"""A simulated national carrier SMSC: what the switch's carrier links bind to in the tests, the
demo and the benchmark.

It accepts any bind, acks submit_sm and data_sm with ids of its own, sends delivery receipts
after a delay (DELIVRD, or UNDELIV for a share of messages), answers ESME_RTHROTTLED above its
TPS, and has an HTTP control endpoint on loopback to read what it received and inject
subscriber replies (MO). Its ids differ in form between submit_sm_resp and receipts (leading
zeros, case, maybe base), as real carriers' do: the switch must match them anyway. For tests it
can also record each submit to a file as it answers it (`--record`), refuse some destinations
for good (`--refuse-prefix`) and answer late (`--resp-delay`).

Everything runs on an injected clock; the sessions are the switch's own sans-IO `Session` on
its Twisted adapter, so the simulator speaks exactly the SMPP the switch does.
"""

import heapq
import json
import random
import sys
from collections import deque
from dataclasses import dataclass
from functools import lru_cache
from itertools import count, islice
from typing import Any, NamedTuple

from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import ServerFactory
from twisted.logger import Logger, globalLogBeginner, textFileLogObserver
from twisted.web.resource import Resource
from twisted.web.server import Site

from .config import SimulatorConfig
from .protocol import concat, smpptime
from .protocol import text as _text
from .protocol.adapter import SessionProtocol
from .protocol.constants import (
    BINDS,
    ESM_RECEIPT,
    ESM_UDHI,
    INTERFACE_VERSION,
    Command,
    MessageState,
    Status,
    Tag,
)
from .protocol.pdu import Pdu
from .protocol.session import Closed, Response, State, Timeout, Timers

_log = Logger()

RECORDS_MAX = 1_000_000  # submits kept for GET /received (oldest dropped beyond)
WINDOW = 20  # deliver_sm outstanding per bind; at most the switch's own inbound window
RESPONSE_TIMEOUT = 10.0  # seconds a deliver_sm waits for its answer before it is sent again
RETRY_DELAY = 1.0  # seconds before a refused or unanswered deliver_sm is retried, doubling…
RETRY_MAX = 30.0  # …up to this
CONTROL_HOST = "127.0.0.1"

_RECEIVING = (State.BOUND_RX, State.BOUND_TRX)
_MODES = {
    State.BOUND_TX: "transmitter",
    State.BOUND_RX: "receiver",
    State.BOUND_TRX: "transceiver",
}
# What the simulator does not do is refused in the command's own response (never generic_nack).
_REFUSED = {
    Command.query_sm: Status.RQUERYFAIL,
    Command.cancel_sm: Status.RCANCELFAIL,
    Command.replace_sm: Status.RREPLACEFAIL,
    Command.submit_multi: Status.RSUBMITFAIL,
}
_CODINGS = {"gsm": _text.GSM, "ucs2": _text.UCS2}
_FORMATS = ("hex", "dec")


class Received(NamedTuple):
    """One submit_sm or data_sm as received (a tuple: up to a million are kept)."""

    carrier_id: str
    system_id: str
    command: str
    source_ton: int
    source_npi: int
    source: str
    dest_ton: int
    dest_npi: int
    destination: str
    esm_class: int
    data_coding: int
    registered_delivery: int
    short_message: bytes
    message_payload: bytes | None
    sar: tuple | None  # (sar_msg_ref_num, sar_total_segments, sar_segment_seqnum)
    received_at: float

    def user_data(self) -> bytes:
        """The message's octets without the UDH."""
        data = self.short_message if self.message_payload is None else self.message_payload
        if self.esm_class & ESM_UDHI:
            parsed = concat.parse_udh(data)
            if parsed is not None:
                return parsed[1]
        return data

    def text(self) -> str | None:
        return _text.decode(self.data_coding, self.user_data())

    def parts_info(self) -> dict | None:
        data = self.short_message if self.message_payload is None else self.message_payload
        if self.esm_class & ESM_UDHI:
            info = concat.concat_info(self.esm_class, data, {})
            if info is not None:
                return {"ref": info[0], "total": info[1], "seq": info[2], "via": "udh"}
        if self.sar is not None and None not in self.sar:
            return {"ref": self.sar[0], "total": self.sar[1], "seq": self.sar[2], "via": "sar"}
        return None

    def as_json(self, index: int) -> dict:
        return {
            "index": index,
            "id": self.carrier_id,
            "system_id": self.system_id,
            "command": self.command,
            "source_ton": self.source_ton,
            "source_npi": self.source_npi,
            "source": self.source,
            "dest_ton": self.dest_ton,
            "dest_npi": self.dest_npi,
            "destination": self.destination,
            "esm_class": self.esm_class,
            "data_coding": self.data_coding,
            "registered_delivery": self.registered_delivery,
            "short_message": self.short_message.hex(),
            "text": self.text(),
            "message_payload": None if self.message_payload is None else self.message_payload.hex(),
            "concat": self.parts_info(),
            "received_at": self.received_at,
        }


@dataclass(slots=True, eq=False)
class _Delivery:
    """A deliver_sm the simulator owes a bind: a receipt or an MO part."""

    kind: str  # "receipt" or "mo"
    system_id: str | None  # the binds that may take it; None: any receiver
    params: dict
    tlvs: dict
    session: "SimSession | None"  # the bind to try first (the submitting transceiver)
    generation: int  # a reset forgets what earlier generations still owe
    attempts: int = 0


class Simulator:
    """One simulated carrier: its SMPP listener, its state and its control endpoint."""

    def __init__(
        self,
        name: str,
        clock: IReactorTime,
        config: SimulatorConfig,
        *,
        receipt_id_format: str | None = None,
        receipt_tlvs: bool = True,
        seed: int | None = None,
        window: int = WINDOW,
        record: str | None = None,
        refuse: tuple[str, ...] = (),
        resp_delay: float = 0.0,
    ):
        if receipt_id_format not in (None, *_FORMATS):
            raise ValueError(f"receipt_id_format must be one of {_FORMATS}")
        # `record`: a file that gets one JSON line per submit it answered (accepted or refused
        # for good, not throttled), flushed before the answer goes: what a test counts after
        # killing the simulator. `refuse`: destination prefixes refused for good with
        # ESME_RINVDSTADR (a carrier's permanent error). `resp_delay`: seconds before it
        # answers a submit (a slow carrier, whose binds' windows stay full).
        self._record = None
        if record is not None:
            self._record = open(record, "a", encoding="utf-8")  # noqa: SIM115 (lives as long)
        self.refuse = tuple(refuse)
        self.resp_delay = resp_delay
        self.name = name
        self.clock = clock
        self.config = config
        self.receipt_id_format = receipt_id_format or config.receipt_id_format or config.id_format
        self.receipt_tlvs = receipt_tlvs
        self.window = window
        self.sessions: list[SimSession] = []  # bound ones, in bind order
        self._rng = random.Random(seed)
        self._ids = 0  # never reset: a carrier's ids stay unique while it runs
        self._mo_ref = 0
        self._due: list[tuple[float, int, _Delivery]] = []  # heap: receipts and retries
        self._ties = count()
        self._timer = None
        self._timer_at = float("inf")
        self._queues: dict[str | None, deque[_Delivery]] = {}  # due, waiting for a bind
        self._generation = 0
        self.reset()

    def reset(self) -> None:
        """Forget the records, the counters and what is owed (binds stay)."""
        self.records: deque[Received] = deque(maxlen=RECORDS_MAX)
        self.received = 0
        self.throttled = 0
        self.refused = 0
        self.receipts_sent = self.receipts_acked = self.receipts_lost = 0
        self.mo_sent = self.mo_acked = 0
        self.retries = 0
        self.pending = {"receipt": 0, "mo": 0}
        self.max_rate = 0
        self._accepted: deque[float] = deque()  # times of the submits of the last second
        # The most binds bound at once, what a carrier's bind limit is checked against (the
        # binds that stay through a reset count from there).
        self.max_binds = len(self.sessions)
        self._generation += 1
        self._due.clear()
        self._queues.clear()

    # -- network -----------------------------------------------------------------------------

    def listen(self, reactor, host: str, port: int, tls=None):
        """SMPP on host:port; over TLS with `tls` (smsc.tls.server_options)."""
        if tls is None:
            listening = reactor.listenTCP(port, _Factory(self), interface=host)
        else:
            listening = reactor.listenSSL(port, _Factory(self), tls, interface=host)
        address = listening.getHost()
        _log.info(
            "carrier-sim {name} listening on {host}:{port}",
            name=self.name,
            host=address.host,
            port=address.port,
        )
        return listening

    def listen_control(self, reactor, host: str, port: int):
        listening = reactor.listenTCP(port, _Site(_Control(self)), interface=host)
        address = listening.getHost()
        _log.info(
            "carrier-sim {name} control on {host}:{port}",
            name=self.name,
            host=address.host,
            port=address.port,
        )
        return listening

    def build_protocol(self) -> "SimSession":
        return SimSession(self)

    # -- submits -----------------------------------------------------------------------------

    def submit(self, session: "SimSession", pdu: Pdu) -> tuple[int, dict | None]:
        """Take a submit_sm or data_sm: (status, response params)."""
        now = self.clock.seconds()
        if not self._admit(now):
            self.throttled += 1
            return Status.RTHROTTLED, None
        if self.refuse and pdu.params["destination_addr"].startswith(self.refuse):
            self.refused += 1
            if self._record is not None:
                self._write_record(
                    {"status": int(Status.RINVDSTADR), "command": pdu.command.name,
                     "destination": pdu.params["destination_addr"], "received_at": now}
                )  # fmt: skip
            return Status.RINVDSTADR, None
        self._ids += 1
        n = self._ids
        carrier_id = f"{n:010X}" if self.config.id_format == "hex" else f"{n:010d}"
        p, tlvs = pdu.params, pdu.tlvs
        sar = None
        if Tag.sar_msg_ref_num in tlvs:
            sar = (
                tlvs[Tag.sar_msg_ref_num],
                tlvs.get(Tag.sar_total_segments),
                tlvs.get(Tag.sar_segment_seqnum),
            )
        record = Received(
            carrier_id,
            session.session.system_id,
            pdu.command.name,
            p["source_addr_ton"],
            p["source_addr_npi"],
            p["source_addr"],
            p["dest_addr_ton"],
            p["dest_addr_npi"],
            p["destination_addr"],
            p["esm_class"],
            p["data_coding"],
            p["registered_delivery"],
            p.get("short_message", b""),
            tlvs.get(Tag.message_payload),
            sar,
            now,
        )
        self.records.append(record)
        self.received += 1
        if self._record is not None:
            self._write_record({"status": 0, **record.as_json(self.received - 1)})
        failed = self._rng.random() < self.config.fail_rate
        asked = record.registered_delivery & 3
        if asked == 1 or (asked == 2 and failed):
            if self._lost():
                self.receipts_lost += 1
            else:
                trx = session if session.session.state is State.BOUND_TRX else None
                self._schedule(now + self.config.dlr_delay, self._receipt(record, n, failed, trx))
        return Status.ROK, {"message_id": carrier_id}

    def _lost(self) -> bool:
        """Whether this receipt is one it loses (no draw when it loses none: the fail-rate
        draws of a seed stay the same)."""
        return bool(self.config.lose_rate) and self._rng.random() < self.config.lose_rate

    def _write_record(self, line: dict) -> None:
        self._record.write(json.dumps(line) + "\n")
        self._record.flush()  # in the OS's hands before the answer leaves: a kill keeps it

    def _admit(self, now: float) -> bool:
        """The sliding 1-second window: at most `tps` accepted submits in any second."""
        accepted = self._accepted
        edge = now - 1.0
        while accepted and accepted[0] <= edge:
            accepted.popleft()
        if self.config.tps and len(accepted) >= self.config.tps:
            return False
        accepted.append(now)
        if len(accepted) > self.max_rate:
            self.max_rate = len(accepted)
        return True

    def _receipt(self, r: Received, n: int, failed: bool, trx) -> _Delivery:
        # Appendix B's text; the id unpadded and in lower case (or another base) on purpose.
        rid = f"{n:x}" if self.receipt_id_format == "hex" else str(n)
        if failed:
            stat, err, dlvrd, state = "UNDELIV", "001", "000", MessageState.UNDELIVERABLE
        else:
            stat, err, dlvrd, state = "DELIVRD", "000", "001", MessageState.DELIVERED
        done = r.received_at + self.config.dlr_delay
        body = (
            f"id:{rid} sub:001 dlvrd:{dlvrd} submit date:{_date(int(r.received_at // 60))}"
            f" done date:{_date(int(done // 60))} stat:{stat} err:{err}"
            f" text:{(r.text() or '')[:20]}"
        )
        params = {
            "source_addr_ton": r.dest_ton,
            "source_addr_npi": r.dest_npi,
            "source_addr": r.destination,
            "dest_addr_ton": r.source_ton,
            "dest_addr_npi": r.source_npi,
            "destination_addr": r.source,
            "esm_class": ESM_RECEIPT,
            "short_message": _gsm_lossy(body),
        }
        tlvs = (
            {Tag.receipted_message_id: rid, Tag.message_state: state} if self.receipt_tlvs else {}
        )
        self.pending["receipt"] += 1
        return _Delivery("receipt", r.system_id, params, tlvs, trx, self._generation)

    # -- MO ----------------------------------------------------------------------------------

    def inject_mo(
        self,
        source: str,
        destination: str,
        text: str,
        coding: str | None = None,
        system_id: str | None = None,
    ) -> int:
        """Queue a subscriber's message for a receiver bind (of `system_id`, else any); a long
        text goes as UDH-concatenated parts. Returns the number of parts; ValueError when the
        input cannot make a deliver_sm."""
        for field_name, value in (("from", source), ("to", destination)):
            if not isinstance(value, str) or not 1 <= len(value) <= 20 or not value.isascii():
                raise ValueError(f"{field_name}: 1 to 20 ASCII characters")
        if not isinstance(text, str):
            raise ValueError("text: a string")
        if coding is not None and coding not in _CODINGS:
            raise ValueError(f"coding: one of {sorted(_CODINGS)}")
        if system_id is not None and not isinstance(system_id, str):
            raise ValueError("system_id: a string")
        data_coding = _text.best_coding(text) if coding is None else _CODINGS[coding]
        parts = concat.split(text, data_coding)  # ValueError: not in that coding, too long
        if len(parts) > 1:
            self._mo_ref = self._mo_ref % 255 + 1
        for seq, part in enumerate(parts, 1):
            esm_class, data = 0, part
            if len(parts) > 1:
                esm_class, data = ESM_UDHI, concat.udh(self._mo_ref, len(parts), seq) + part
            params = {
                "source_addr_ton": _ton(source),
                "source_addr_npi": 1,
                "source_addr": source.removeprefix("+"),
                "dest_addr_ton": _ton(destination),
                "dest_addr_npi": 1,
                "destination_addr": destination.removeprefix("+"),
                "esm_class": esm_class,
                "data_coding": data_coding,
                "short_message": data,
            }
            self.pending["mo"] += 1
            self._enqueue(_Delivery("mo", system_id, params, {}, None, self._generation))
        self.pump()
        return len(parts)

    # -- deliveries --------------------------------------------------------------------------

    def _schedule(self, due: float, delivery: _Delivery) -> None:
        heapq.heappush(self._due, (due, next(self._ties), delivery))
        self._arm()

    def _arm(self) -> None:
        """One timer for all receipts and retries, armed for the earliest."""
        if not self._due or self._due[0][0] >= self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = self._due[0][0]
        self._timer = self.clock.callLater(
            max(0.0, self._timer_at - self.clock.seconds()), self._fire
        )

    def _fire(self) -> None:
        self._timer, self._timer_at = None, float("inf")
        now = self.clock.seconds()
        due = self._due
        while due and due[0][0] <= now:
            self._enqueue(heapq.heappop(due)[2])
        self._arm()
        self.pump()

    def _enqueue(self, delivery: _Delivery) -> None:
        queue = self._queues.get(delivery.system_id)
        if queue is None:
            queue = self._queues[delivery.system_id] = deque()
        queue.append(delivery)

    def pump(self) -> None:
        """Send what is due to the binds with room in their window, in order."""
        touched = set()
        for queue in self._queues.values():
            while queue:
                delivery = queue[0]
                target = self._target(delivery)
                if target is None:
                    break  # every bind that may take it is full (or none is bound): wait
                queue.popleft()
                delivery.attempts += 1
                if delivery.attempts > 1:
                    self.retries += 1
                if delivery.kind == "receipt":
                    self.receipts_sent += 1
                else:
                    self.mo_sent += 1
                target.send(Command.deliver_sm, delivery.params, delivery.tlvs, delivery)
                touched.add(target)
        for session in touched:
            session.flush()

    def _target(self, delivery: _Delivery) -> "SimSession | None":
        preferred = delivery.session
        if (
            preferred is not None
            and preferred.session.state is State.BOUND_TRX
            and preferred.session.out_free > 0
        ):
            return preferred
        best, room = None, 0
        for candidate in self.sessions:
            s = candidate.session
            if (
                s.state in _RECEIVING
                and (delivery.system_id is None or s.system_id == delivery.system_id)
                and s.out_free > room
            ):
                best, room = candidate, s.out_free
        return best

    def answered(self, delivery: _Delivery, status: int) -> None:
        if delivery.generation != self._generation:
            return
        if status:
            self.retry(delivery)
            return
        self.pending[delivery.kind] -= 1
        if delivery.kind == "receipt":
            self.receipts_acked += 1
        else:
            self.mo_acked += 1

    def retry(self, delivery: _Delivery) -> None:
        """Refused or unanswered: again later, on whichever bind can take it then."""
        if delivery.generation == self._generation:
            delay = min(RETRY_MAX, RETRY_DELAY * 2 ** (delivery.attempts - 1))
            self._schedule(self.clock.seconds() + delay, delivery)

    # -- binds -------------------------------------------------------------------------------

    def bound(self, session: "SimSession") -> None:
        self.sessions.append(session)
        self.max_binds = max(self.max_binds, len(self.sessions))
        _log.info(
            "carrier-sim {name}: {system_id} bound as {mode}",
            name=self.name,
            system_id=session.session.system_id,
            mode=_MODES[session.session.state],
        )
        if session.session.state in _RECEIVING:
            self.pump()

    def closed(self, session: "SimSession", event: Closed) -> None:
        if session in self.sessions:
            self.sessions.remove(session)
            _log.info(
                "carrier-sim {name}: {system_id} closed: {reason}",
                name=self.name,
                system_id=session.session.system_id,
                reason=event.reason,
            )
        # What the bind took and never answered goes first to the next bind that can take it.
        for delivery in reversed(event.unanswered):
            if isinstance(delivery, _Delivery) and delivery.generation == self._generation:
                self._queues.setdefault(delivery.system_id, deque()).appendleft(delivery)
        self.pump()

    # -- reading -----------------------------------------------------------------------------

    def received_since(self, since: int = 0, limit: int | None = None) -> dict:
        """Records from index `since` (indexes count from the last reset)."""
        start = max(since, self.received - len(self.records))
        tail = list(islice(reversed(self.records), max(0, self.received - start)))
        tail.reverse()
        if limit is not None:
            tail = tail[:limit]
        return {
            "next": start + len(tail),
            "records": [r.as_json(i) for i, r in enumerate(tail, start)],
        }

    def binds(self) -> dict[str, int]:
        counts = dict.fromkeys(_MODES.values(), 0)
        for session in self.sessions:
            mode = _MODES.get(session.session.state)
            if mode is not None:
                counts[mode] += 1
        return counts

    def stats(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "binds": self.binds(),
            "received": self.received,
            "throttled": self.throttled,
            "refused": self.refused,
            "receipts_sent": self.receipts_sent,
            "receipts_acked": self.receipts_acked,
            "receipts_pending": self.pending["receipt"],
            "receipts_lost": self.receipts_lost,
            "mo_sent": self.mo_sent,
            "mo_acked": self.mo_acked,
            "mo_pending": self.pending["mo"],
            "retries": self.retries,
            "max_rate": self.max_rate,
            "max_binds": self.max_binds,
        }


class SimSession(SessionProtocol):
    """One bind to the simulator."""

    def __init__(self, sim: Simulator):
        super().__init__(sim.clock, out_window=sim.window, timers=Timers(response=RESPONSE_TIMEOUT))
        self.sim = sim

    def on_request(self, pdu: Pdu) -> None:
        command = pdu.command
        if command is Command.submit_sm or command is Command.data_sm:
            status, params = self.sim.submit(self, pdu)
            if self.sim.resp_delay > 0:
                self.sim.clock.callLater(self.sim.resp_delay, self._answer, pdu, status, params)
            else:
                self.respond(pdu, status, params)
        elif command in BINDS:
            tlvs = None
            if pdu.params["interface_version"] >= INTERFACE_VERSION:
                tlvs = {Tag.sc_interface_version: INTERFACE_VERSION}
            self.respond(pdu, 0, {"system_id": self.sim.name[:15]}, tlvs)
            self.sim.bound(self)
        else:
            self.respond(pdu, _REFUSED.get(command, Status.RSYSERR))

    def _answer(self, pdu: Pdu, status: int, params: dict | None) -> None:
        self.respond(pdu, status, params)  # nothing when the session closed meanwhile
        self.flush()

    def on_response(self, event: Response) -> None:
        if event.request is Command.deliver_sm:
            self.sim.answered(event.context, event.pdu.status)
            self.sim.pump()

    def on_timeout(self, event: Timeout) -> None:
        if event.request is Command.deliver_sm:
            self.sim.retry(event.context)
            self.sim.pump()

    def on_closed(self, event: Closed) -> None:
        self.sim.closed(self, event)


class _Factory(ServerFactory):
    noisy = False

    def __init__(self, sim: Simulator):
        self.sim = sim

    def buildProtocol(self, addr):
        protocol = SimSession(self.sim)
        protocol.factory = self
        return protocol

    def logPrefix(self) -> str:
        return f"carrier-sim {self.sim.name}"


# -- HTTP control ------------------------------------------------------------------------------


class _Site(Site):
    noisy = False

    def log(self, request) -> None:
        pass  # no access log line per request: tests poll it in loops

    def logPrefix(self) -> str:
        return f"carrier-sim {self.resource.sim.name} control"


class _Control(Resource):
    """GET /received?since=N[&limit=M], GET /stats, POST /mo, POST /reset; JSON both ways."""

    isLeaf = True

    def __init__(self, sim: Simulator):
        super().__init__()
        self.sim = sim

    def render_GET(self, request) -> bytes:
        if request.path == b"/stats":
            return _json(request, 200, self.sim.stats())
        if request.path == b"/received":
            try:
                since = int(request.args.get(b"since", [b"0"])[0])
                limit = request.args.get(b"limit")
                limit = None if limit is None else int(limit[0])
            except ValueError:
                return _json(request, 400, {"error": "since and limit: integers"})
            return _json(request, 200, self.sim.received_since(since, limit))
        return _json(request, 404, {"error": f"no {request.path.decode('latin-1')}"})

    def render_POST(self, request) -> bytes:
        if request.path == b"/reset":
            self.sim.reset()
            return _json(request, 200, {"reset": True})
        if request.path == b"/mo":
            try:
                body = json.loads(request.content.read() or b"null")
                if not isinstance(body, dict):
                    raise ValueError("a JSON object with from, to and text")
                unknown = set(body) - {"from", "to", "text", "coding", "system_id"}
                if unknown:
                    raise ValueError(f"unknown keys: {', '.join(sorted(unknown))}")
                parts = self.sim.inject_mo(
                    body.get("from"),
                    body.get("to"),
                    body.get("text"),
                    body.get("coding"),
                    body.get("system_id"),
                )
            except ValueError as e:
                return _json(request, 400, {"error": str(e)})
            return _json(request, 202, {"queued": True, "parts": parts})
        return _json(request, 404, {"error": f"no {request.path.decode('latin-1')}"})


def _json(request, code: int, value) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"application/json")
    return json.dumps(value).encode()


# -- helpers -----------------------------------------------------------------------------------


def _ton(address: str) -> int:
    """TON of an MO address: international for full numbers, unknown for short codes,
    alphanumeric otherwise."""
    digits = address.removeprefix("+")
    if digits.isdigit():
        return 1 if len(digits) >= 8 else 0
    return 5


@lru_cache(maxsize=4)
def _date(minute: int) -> str:
    """YYMMDDhhmm of a minute since the epoch (strftime costs more than the rest of a receipt)."""
    return smpptime.format_date(minute * 60)


def _gsm_lossy(value: str) -> bytes:
    """GSM 03.38 octets of a receipt text; characters outside the alphabet become '?'."""
    data = _text.gsm_encode(value)
    if data is None:
        data = _text.gsm_encode("".join(c if _text.gsm_encode(c) else "?" for c in value))
    return data


def run(
    name: str,
    host: str,
    port: int,
    config: SimulatorConfig,
    control_port: int | None = None,
    **options,
) -> None:
    """`smsc carrier-sim`: one simulator on the global reactor, logging to stdout."""
    from twisted.internet import reactor

    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stdout)], redirectStandardIO=False)
    sim = Simulator(name, reactor, config, **options)
    sim.listen(reactor, host, port)
    if control_port is not None:
        sim.listen_control(reactor, CONTROL_HOST, control_port)
    reactor.run()
