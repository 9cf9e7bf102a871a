"""The dispatcher: claims due messages from the store, only as many as the carriers can take,
routes each to a bound carrier (failing over by priority), cuts long texts into parts the
carrier's way, and writes back what happened to them, a batch per reactor turn.

At-least-once: a message is SENDING in the store from its claim until every part is taken
(ENROUTE) or it is put back. A process that dies in between sends those messages again after
its restart, so a carrier can get twice what was in flight at the cut, never less.
"""

from collections.abc import Callable

from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from ..config import QueueConfig
from ..protocol import concat
from ..protocol.constants import ESM_UDHI, Status, Tag
from ..protocol.pdu import PduError, decode_tlvs
from ..store import queue
from ..store.faults import Quiet
from ..store.queue import Due, Settle
from ..wakeup import Wakeup
from .links import Carrier, Part
from .router import Router

_log = Logger()
_IDLE = 0.5  # seconds between claims while nothing is due and nothing wakes us
_RETRY = 1.0  # seconds before what the store refused for a while (an outage) is written again
RECEIPT_SWEEP = 60.0  # most seconds between looks for messages whose final receipt never came


class Outgoing:
    """A claimed message on its way to a carrier."""

    __slots__ = ("due", "carrier", "pending", "finished")

    def __init__(self, due: Due, carrier: Carrier):
        self.due = due
        self.carrier = carrier
        self.pending = 0  # parts not yet taken
        self.finished = False  # taken, refused or given back: its leftovers are skipped


class Dispatcher:
    def __init__(
        self,
        store,
        clock,
        carriers: list[Carrier],
        router: Router,
        config: QueueConfig,
        settle: Callable[[], Settle],
        ported: Callable,
        normalise: Callable[[str], str],
        held: Callable[[int, float], float | None] = lambda account_id, now: None,
        metrics=None,
    ):
        self.store = store
        self.metrics = metrics  # smsc.metrics.Metrics: the messages ended by receipt_timeout
        self.clock = clock
        self.carriers = carriers
        self.router = router
        self.config = config
        self._settle = settle  # what settling needs, as of now
        self._ported = ported
        self._normalise = normalise
        self._held = held  # (account, now) → when its sending hours open, if they are closed
        self._by_name = {c.name: c for c in carriers}
        self._claiming = False
        self._again = False  # woken while a claim was running: claim again at once after it
        self.wake = Wakeup(clock, self._claim)  # claim soon: new messages, or room on a carrier
        self._flushing = None
        self._parts: list[tuple] = []
        self._sent: list[tuple[int, str]] = []
        self._failed: list[tuple[int, str, int]] = []
        self._back: list[int] = []
        self._later: dict[float, list[int]] = {}  # due again at → messages
        self._turn = 0  # the account the next claim serves first (fairness across claims)
        # When to look for expired messages next, while no carrier can take any.
        self._expiry_look = clock.seconds() + max(config.retry_delay, _IDLE)
        self._retrying = None  # the flush again of records the store refused for a while
        self._claims = Quiet("claiming due messages", _log)
        self._writes = Quiet("recording what carriers did", _log)
        self._late = LoopingCall(self._time_out)
        self._late.clock = clock

    def attach(self, carriers: list[Carrier]) -> None:
        """The carriers, made after the dispatcher since they report to it."""
        self.carriers = carriers
        self._by_name = {c.name: c for c in carriers}

    def start(self) -> None:
        self.wake()
        timeout = self.config.receipt_timeout
        if timeout:  # a timeout shorter than the look's period is kept to within itself
            self._late.start(min(RECEIPT_SWEEP, timeout), now=False)

    def stop(self) -> None:
        """No more claims. What the carriers still answer is written down (`flush`)."""
        self.wake.stop()
        if self._late.running:
            self._late.stop()

    # -- receipts that never came ----------------------------------------------------------

    def _time_out(self):
        """Messages sent longer than `receipt_timeout` ago without their final receipt end
        UNKNOWN (`queue.time_out`), a batch at a time until none is left."""
        before = self.clock.seconds() - self.config.receipt_timeout
        d = self.store.write(queue.time_out, before, self.config.claim_batch, self._settle())
        d.addCallback(self._timed_out)
        d.addErrback(self._writes.failed, "ending messages whose receipt never came")
        return d  # the next look waits for this one

    def _timed_out(self, count: int):
        if count:
            if self.metrics is not None:
                self.metrics.receipt_timeouts.inc(count)
            _log.info(
                "{count} messages got no final receipt within {timeout:g} s: UNKNOWN",
                count=count,
                timeout=self.config.receipt_timeout,
            )
        if count >= self.config.claim_batch:  # a full batch: more may be late
            return self._time_out()
        return None

    # -- claiming and routing --------------------------------------------------------------

    def _claim(self) -> None:
        if self._claiming:
            self._again = True
            return
        room = sum(max(0, c.room()) for c in self.carriers)
        if room <= 0:
            if not any(c.bound for c in self.carriers):
                self._expire_waiting()
            return self.wake(_IDLE)
        limit = min(room, self.config.claim_batch)
        self._claiming = True
        d = self.store.write(
            queue.claim, self.clock.seconds(), limit, self._ported, self._settle(), self._turn
        )
        d.addCallback(self._claimed, limit)
        d.addErrback(self._claim_failed)

    def _expire_waiting(self) -> None:
        """No carrier is bound, so nothing is claimed, and nothing would expire until one
        binds again: every retry_delay, expire the messages past their validity meanwhile
        (their clients hear of it in time). While carriers are bound, claims expire them."""
        now = self.clock.seconds()
        if now < self._expiry_look:
            return
        self._expiry_look = now + max(self.config.retry_delay, _IDLE)
        d = self.store.write(queue.expire_due, now, self.config.claim_batch, self._settle())
        d.addCallback(self._expired)
        d.addErrback(self._writes.failed, "expiring messages")  # looked for again later

    def _expired(self, count: int) -> None:
        if count >= self.config.claim_batch:  # a full batch: more may wait, look again soon
            self._expiry_look = self.clock.seconds()

    def _claimed(self, due: list[Due], limit: int) -> None:
        self._claiming = False
        self._claims.succeeded()
        if due:  # the next claim starts with the account after the last one served
            self._turn = due[-1].account_id + 1
        now = self.clock.seconds()
        for message in due:
            # An automatic reply (STOP confirmation, CONTACT) is never held.
            opens = None if message.origin else self._held(message.account_id, now)
            if opens is not None:  # outside its account's sending hours: back until they open
                self._later.setdefault(opens, []).append(message.id)
            else:
                self._route(message)
        self._flush_soon()
        # A full batch, or woken meanwhile: more may be due at once. Otherwise rest.
        again, self._again = self._again, False
        self.wake(0.0 if again or len(due) == limit else _IDLE)

    def _claim_failed(self, failure) -> None:
        self._claiming = False
        self._again = False
        self._claims.failed(failure)  # the store away: one line, and claims go on
        self.wake(_IDLE)

    def _route(self, due: Due) -> None:
        for name in self.router.candidates(due.destination, due.ported_to):
            carrier = self._by_name.get(name)
            if carrier is not None and carrier.bound:
                out = Outgoing(due, carrier)
                try:
                    parts = self._cut(out)
                except Exception:
                    # A text that cannot be cut (more than 255 parts): refused for good,
                    # rather than raising out of the claim and stranding the rest of the
                    # batch SENDING until the next start.
                    _log.failure("message {id} cannot be cut into parts", id=due.id)
                    self._failed.append((due.id, carrier.name, Status.RSYSERR))
                    return
                out.pending = len(parts)
                carrier.enqueue(parts)
                return
        # No carrier can take it now: it waits in the queue.
        self._later.setdefault(self.clock.seconds() + self.config.retry_delay, []).append(due.id)

    def _cut(self, out: Outgoing) -> list[Part]:
        """The submit_sm PDUs of a message, in the carrier's way for long texts."""
        due = out.due
        tlvs = decode_tlvs(due.tlvs) if due.tlvs else {}
        if type(tlvs) is PduError:
            tlvs = {}
        params = {
            "service_type": due.service_type,
            "source_addr_ton": due.source_ton,
            "source_addr_npi": due.source_npi,
            "source_addr": due.source,
            "dest_addr_ton": 1,
            "dest_addr_npi": 1,
            "destination_addr": due.destination,
            "esm_class": due.esm_class & ~0x3C,  # the message type bits are ours to set
            "protocol_id": due.protocol_id,
            "priority_flag": due.priority,
            "registered_delivery": 1,  # always: receipts settle the message
            "data_coding": due.data_coding,
        }
        body = due.body
        # A client that cut its text itself (UDH) has its parts go as they are.
        udhi = due.esm_class & ESM_UDHI
        chunks = [body] if udhi else concat.split_bytes(body, due.data_coding)
        method = out.carrier.config.long_messages
        if len(chunks) == 1 and len(body) <= 254:
            return [Part(out, 1, {**params, "short_message": body}, tlvs)]
        if method == "payload" or len(chunks) == 1:
            return [Part(out, 1, {**params, "short_message": b""},
                         {**tlvs, Tag.message_payload: body}, cost=len(chunks))]  # fmt: skip
        total, parts = len(chunks), []
        for seq, chunk in enumerate(chunks, start=1):
            if method == "sar":
                extra = {
                    Tag.sar_msg_ref_num: due.id & 0xFFFF,
                    Tag.sar_total_segments: total,
                    Tag.sar_segment_seqnum: seq,
                }
                parts.append(Part(out, seq, {**params, "short_message": chunk}, {**tlvs, **extra}))
            else:
                head = concat.udh(due.id & 0xFF, total, seq)
                p = {**params, "short_message": head + chunk, "esm_class": params["esm_class"]
                     | ESM_UDHI}  # fmt: skip
                parts.append(Part(out, seq, p, tlvs))
        return parts

    # -- what carriers did with the parts (Carrier.events) ---------------------------------

    def part_sent(self, part: Part, carrier_id: str) -> None:
        out = part.message
        if out.finished:
            return
        self._parts.append((out.due.id, part.seq, out.carrier.name, self._normalise(carrier_id)))
        out.pending -= 1
        if out.pending == 0:
            out.finished = True
            self._sent.append((out.due.id, out.carrier.name))
        self._flush_soon()

    def part_failed(self, part: Part, status: int) -> None:
        out = part.message
        if not out.finished:
            out.finished = True
            self._failed.append((out.due.id, out.carrier.name, status))
            self._flush_soon()

    def part_lost(self, part: Part) -> None:
        """No answer, or the link went: the whole message goes back to the queue."""
        out = part.message
        if not out.finished:
            out.finished = True
            self._back.append(out.due.id)
            self._flush_soon()

    def carrier_down(self, carrier: Carrier) -> None:
        """Its last link went: what it still had queued goes back, to fail over."""
        for part in carrier.take_queue():
            self.part_lost(part)

    def room_changed(self) -> None:
        self.wake()

    # -- writing it down -------------------------------------------------------------------

    def _flush_soon(self) -> None:
        if self._flushing is None:
            self._flushing = self.clock.callLater(0, self.flush)

    def flush(self) -> None:
        """Write what happened since the last flush: one store batch (receipts call this first,
        so that the parts they match are stored before them)."""
        if self._flushing is not None and self._flushing.active():
            self._flushing.cancel()
        self._flushing = None
        now = self.clock.seconds()
        parts, self._parts = self._parts, []
        sent, self._sent = self._sent, []
        failed, self._failed = self._failed, []
        back, self._back = self._back, []
        later, self._later = self._later, {}
        settle = self._settle()
        # A write the store refuses for a while (an outage) is kept and written again, in the
        # same order; each is idempotent (only messages still SENDING here are touched), so
        # one that was committed though its answer was lost does nothing the second time.
        if parts or sent:
            keep = {"parts": parts, "sent": sent}
            self._write("recording parts taken", keep, queue.record_taken, parts, sent, settle)
        if failed:
            self._write("recording refusals", {"failed": failed}, queue.fail, failed, settle)
        if back:
            self._write("putting messages back", {"back": back}, queue.put_back, back, now, now)
        for due, ids in later.items():
            keep = {"later": (due, ids)}
            self._write("putting messages back", keep, queue.put_back, ids, due, now)
        if back:
            self.wake()

    def _write(self, what: str, keep: dict, fn, *args) -> None:
        d = self.store.write(fn, *args)
        d.addCallbacks(self._written, self._not_written, errbackArgs=(what, keep))

    def _written(self, _) -> None:
        self._writes.succeeded()

    def _not_written(self, failure, what: str, keep: dict) -> None:
        if not self._writes.failed(failure, what):
            return  # a mistake, not an outage: the messages stay SENDING till the next start
        self._keep(**keep)
        if self._retrying is None or not self._retrying.active():
            self._retrying = self.clock.callLater(_RETRY, self.flush)

    def _keep(self, parts=(), sent=(), failed=(), back=(), later=None) -> None:
        """What a failed write was to record, before what came since."""
        self._parts[:0], self._sent[:0] = parts, sent
        self._failed[:0], self._back[:0] = failed, back
        if later is not None:
            due, ids = later
            self._later[due] = ids + self._later.get(due, [])
