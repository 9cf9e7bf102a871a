"""What carriers deliver to the switch: receipts settle our messages (and queue the clients'
own receipts); subscribers' replies go to `replies` (STOP, CONTACT, or on to a client).

A carrier's deliver_sm is answered only once what it said is committed: if the switch dies
first, the carrier sends it again.
"""

from collections import Counter
from collections.abc import Callable

from twisted.logger import Logger

from .. import addresses
from ..protocol import concat
from ..protocol import text as sms_text
from ..protocol.constants import ESM_UDHI, Status, Tag
from ..protocol.pdu import Pdu, encode_tlvs
from ..store import queue
from ..store.faults import Quiet
from ..store.messages import Message, State
from ..store.queue import Settle
from . import receipts, replies

_log = Logger()


def client_receipt(
    message: Message, state: State, error: int, parts: int, now: float
) -> tuple[bytes, bytes]:
    """A receipt for our client (a `queue.ReceiptMaker`): the appendix B text and the TLVs,
    with the id the client knows the message by."""
    client_id = str(message.multi_id or message.id)
    body = message.body
    if message.esm_class & ESM_UDHI and body:
        body = body[body[0] + 1 :]
    text = sms_text.decode(message.data_coding, body) or ""
    short_message = receipts.format_text(
        client_id, state, message.submitted_at, now, error, text, parts
    )
    return short_message, encode_tlvs(receipts.receipt_tlvs(client_id, state, error))


_UNKNOWN_MAX = 10_000  # receipts refused for now that are remembered before a clean-up


class Inbound:
    def __init__(
        self,
        store,
        clock,
        settle: Callable[[], Settle],
        before_receipts: Callable[[], None],
        after_receipts: Callable[[], None],
        handling: Callable[[], replies.Handling],
        after_reply: Callable[[], None],
        metrics=None,
    ):
        self.store = store
        self.metrics = metrics  # smsc.metrics.Metrics, or None
        self.clock = clock
        self._settle = settle
        self._before = before_receipts  # the dispatcher's flush: the parts go in first
        self._after = after_receipts  # wake the outbox: client receipts may be waiting
        self._handling = handling  # what a reply job needs, as of now
        self._after_reply = after_reply  # wake the dispatcher and the outbox
        # Seconds to refuse, with a temporary error, a receipt for an id not known yet: on
        # several nodes, the one that sent the message may not have recorded its id when the
        # carrier's receipt reaches another (0: acknowledged and counted at once).
        self.hold_unknown: Callable[[], float] = lambda: 0.0
        self._unknown: dict[tuple[str, str], float] = {}  # (carrier, id) -> first refused at
        self._pending: list[tuple] = []
        self._flushing = None
        self.receipts = 0
        self.unmatched = 0
        self.replies: Counter = Counter()  # subscribers' replies by what came of them
        self._writes = Quiet("recording what carriers delivered", _log)  # one line an outage

    def deliver(self, link, pdu: Pdu) -> None:
        """A deliver_sm (or data_sm) from a carrier link."""
        receipt = receipts.parse(pdu)
        if receipt is None:
            if receipts.is_receipt(pdu) or receipts.is_acknowledgement(pdu):
                self.unmatched += receipts.is_receipt(pdu)
                if self.metrics is not None and receipts.is_receipt(pdu):
                    self.metrics.carrier(link.carrier.name).unmatched.inc()
                _log.warn("unreadable receipt from {carrier}", carrier=link.carrier.name)
                link.respond(pdu)  # taken: offering it again would not make it readable
            else:
                return self._reply(link, pdu)
            link.flush()
            return
        self._pending.append((link, pdu, receipt))
        if self._flushing is None:
            self._flushing = self.clock.callLater(0, self._flush)

    def _flush(self) -> None:
        self._flushing = None
        batch, self._pending = self._pending, []
        self._before()
        work = [
            (link.carrier.name, _candidates(r), _about(pdu), r.state or State.ENROUTE, r.error)
            for link, pdu, r in batch
        ]
        # With metrics: the submitted_at of the messages the receipts settle.
        extra = {} if self.metrics is None else {"settled": []}
        d = self.store.write(queue.record_receipts, work, self._settle(), **extra)
        # Either, never both: an error in _recorded must not answer the PDUs a second time.
        d.addCallbacks(
            self._recorded,
            self._failed,
            callbackArgs=(batch, extra.get("settled")),
            errbackArgs=(batch,),
        )
        d.addErrback(lambda f: _log.failure("answering receipts failed", f))

    def _recorded(self, matched: list[bool], batch: list[tuple], settled=None) -> None:
        self._writes.succeeded()
        links = set()
        metrics = self.metrics
        now = self.clock.seconds()
        hold = self.hold_unknown()
        for i, ((link, pdu, receipt), ok) in enumerate(zip(batch, matched, strict=True)):
            links.add(link)
            if hold and self._later(link.carrier.name, receipt.carrier_id, ok, now, hold):
                link.respond(pdu, Status.RX_T_APPN)  # the carrier offers it again later
                continue
            self.receipts += 1
            if metrics is not None:
                counts = metrics.carrier(link.carrier.name)
                if ok:
                    counts.receipt((receipt.state or State.ENROUTE).value)
                    if settled and settled[i] is not None:
                        counts.to_receipt.observe(max(0.0, now - settled[i]))
                else:
                    counts.unmatched.inc()
            if not ok:
                self.unmatched += 1
                _log.warn(
                    "receipt from {carrier} for an id we did not send: {carrier_id}",
                    carrier=link.carrier.name,
                    carrier_id=receipt.carrier_id,
                )
            link.respond(pdu)
        for link in links:
            link.flush()
        self._after()

    def _later(self, carrier: str, carrier_id: str, matched: bool, now: float, hold: float):
        """Whether an unmatched receipt is refused for now: until `hold` seconds after it was
        first refused. A matched one forgets that it was."""
        key = (carrier, carrier_id)
        if matched:
            if self._unknown:
                self._unknown.pop(key, None)
            return False
        first = self._unknown.setdefault(key, now)
        if now - first < hold:
            if len(self._unknown) > _UNKNOWN_MAX:  # offered once and never again: forget
                self._unknown = {k: t for k, t in self._unknown.items() if now - t < hold}
            return True
        del self._unknown[key]
        return False

    def _reply(self, link, pdu: Pdu) -> None:
        """A subscriber's message: answered once handled and committed."""
        mo = _mo(link.carrier.name, pdu)
        if mo is None:
            _log.warn("unreadable subscriber message from {carrier}", carrier=link.carrier.name)
            self.replies["unreadable"] += 1
            if self.metrics is not None:
                self.metrics.mo.labels("unreadable").inc()
            link.respond(pdu, Status.RINVMSGLEN)
            link.flush()
            return
        d = self.store.write(replies.receive, mo, self._handling())
        d.addCallbacks(self._replied, self._reply_failed, (link, pdu), None, (link, pdu))
        d.addErrback(lambda f: _log.failure("answering a subscriber message failed", f))

    def _replied(self, outcome: str, link, pdu: Pdu) -> None:
        self.replies[outcome] += 1
        if self.metrics is not None and outcome != replies.PART:
            self.metrics.mo.labels(str(outcome)).inc()
            if outcome == replies.Kind.STOP:  # the number went on the list
                self.metrics.optouts.inc()
        if outcome == replies.UNROUTED:
            _log.warn(
                "a subscriber message from {carrier} is for no account: nobody registered "
                "or sent from its address",
                carrier=link.carrier.name,
            )
        link.respond(pdu)
        link.flush()
        if outcome != replies.PART:
            self._after_reply()

    def _reply_failed(self, failure, link, pdu: Pdu) -> None:
        self._writes.failed(failure, "recording a subscriber message")
        link.respond(pdu, Status.RX_T_APPN)  # the carrier will offer it again
        link.flush()

    def _failed(self, failure, batch: list[tuple]) -> None:
        self._writes.failed(failure, "recording receipts")
        links = set()
        for link, pdu, _ in batch:
            link.respond(pdu, Status.RX_T_APPN)  # the carrier will send them again
            links.add(link)
        for link in links:
            link.flush()


def _candidates(receipt: receipts.Receipt) -> tuple[str, ...]:
    """The forms to look the receipt's id up under: the TLV's id (or the text's) and its
    conversions first, then, when the text gave another id, that one and its conversions."""
    forms = receipts.candidates(receipt.carrier_id)
    if receipt.alt_id:
        forms = tuple(dict.fromkeys((*forms, *receipts.candidates(receipt.alt_id))))
    return forms


def _mo(carrier: str, pdu: Pdu) -> replies.Mo | None:
    """A subscriber's deliver_sm (or data_sm) as the reply job takes it; None when its
    parts header is malformed."""
    p = pdu.params
    body = p.get("short_message") or pdu.tlvs.get(Tag.message_payload) or b""
    esm_class = p.get("esm_class", 0)
    payload = body
    if esm_class & ESM_UDHI:
        parsed = concat.parse_udh(body)
        if parsed is None:
            return None
        payload = parsed[1]
    info = concat.concat_info(esm_class, body, pdu.tlvs)
    ton = p.get("source_addr_ton", 0)
    number = addresses.e164(p.get("source_addr", ""), ton)
    return replies.Mo(
        carrier=carrier,
        source=number or p.get("source_addr", ""),
        source_ton=1 if number else ton,
        destination=p.get("destination_addr", "").removeprefix("+"),
        data_coding=p.get("data_coding", 0),
        payload=payload if info is None else info[3],
        concat=None if info is None else info[:3],
    )


def _about(pdu: Pdu) -> str:
    """The number a receipt is about: its source is the subscriber the message went to."""
    p = pdu.params
    return addresses.e164(p.get("source_addr", ""), p.get("source_addr_ton", 0)) or ""
