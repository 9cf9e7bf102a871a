"""Sends the outbox to clients: each row as a deliver_sm over a receiver or transceiver bind of
its account on this node, retried until the client answers it."""

from twisted.logger import Logger

from .config import QueueConfig
from .protocol.constants import Command, Tag
from .protocol.pdu import PduError, decode_tlvs
from .store import outbox
from .store.faults import Quiet
from .wakeup import Wakeup

_log = Logger()
_IDLE = 0.5  # seconds between looks at the outbox while nothing wakes us
_BATCH = 500
_RETRY = 1.0  # seconds before what the store refused for a while (an outage) is written again


class OutboxSender:
    def __init__(self, store, clock, server, config: QueueConfig):
        self.store = store
        self.clock = clock
        self.server = server  # SmppServer: where the bound receivers are
        self.config = config
        self.wake = Wakeup(clock, self._claim)
        self._claiming = False
        self._again = False  # woken while a claim was running: claim again at once after it
        self._flushing = None
        self._done: list[int] = []
        self._retry: list[int] = []
        self._unsent: list[int] = []  # claimed, but no session had room: due again at once
        self._claims = Quiet("claiming the outbox", _log)
        self._writes = Quiet("recording deliveries to clients", _log)
        self.delivered = 0

    def start(self) -> None:
        self.wake()

    def stop(self) -> None:
        """No more claims. The answers still to come are written down (`flush`)."""
        self.wake.stop()

    def flush(self) -> None:
        """Write the answers heard so far now (the shutdown's last word)."""
        if self._flushing is not None and self._flushing.active():
            self._flushing.cancel()
        self._flush()

    def _claim(self) -> None:
        if self._claiming:
            self._again = True
            return
        # Only the accounts that can take a deliver_sm now: a row claimed for a full window
        # would wait for nothing.
        rooms = {
            account_id: room
            for account_id, sessions in self.server.receivers().items()
            if (room := sum(max(0, s.session.out_free) for s in sessions)) > 0
        }
        if not rooms:
            return self.wake(_IDLE)
        limit = min(sum(rooms.values()), _BATCH)
        self._claiming = True
        d = self.store.write(outbox.claim, list(rooms), self.clock.seconds(), limit)
        d.addCallback(self._claimed, limit)
        d.addErrback(self._claim_failed)

    def _claim_failed(self, failure) -> None:
        self._claiming = False
        self._again = False
        self._claims.failed(failure)  # the store away: one line, and claims go on
        self.wake(_IDLE)

    def _claimed(self, items: list[outbox.Item], limit: int) -> None:
        self._claiming = False
        self._claims.succeeded()
        receivers = self.server.receivers()
        used = set()
        for item in items:
            session = next(
                (s for s in receivers.get(item.account_id, ()) if s.session.out_free > 0), None
            )
            if session is None:  # it unbound meanwhile, or its window filled
                self._unsent.append(item.id)
                continue
            params, tlvs = _deliver_sm(item)
            session.send(Command.deliver_sm, params, tlvs, context=(self, item.id))
            used.add(session)
        for session in used:
            session.flush()
        self._flush_soon()
        again, self._again = self._again, False
        self.wake(0.0 if again or len(items) == limit else _IDLE)

    # -- answers, from the client sessions -------------------------------------------------

    def answered(self, item_id: int, status: int) -> None:
        if status == 0:
            self._done.append(item_id)
            self.delivered += 1
        else:
            self._retry.append(item_id)
        self._flush_soon()

    def lost(self, item_id: int) -> None:
        self._retry.append(item_id)
        self._flush_soon()

    def _flush_soon(self) -> None:
        if self._flushing is None or not self._flushing.active():
            self._flushing = self.clock.callLater(0, self._flush)

    def _flush(self) -> None:
        self._flushing = None
        done, self._done = self._done, []
        retry, self._retry = self._retry, []
        unsent, self._unsent = self._unsent, []
        # What the store refuses for a while (an outage) is kept and written again; a mistake
        # leaves the rows SENDING, queued again at the next start.
        if unsent:  # never sent: no reason to wait before the next try
            now = self.clock.seconds()
            self._write("putting outbox rows back", unsent, "_unsent", outbox.retry, unsent, now)
        if done:
            self._write("marking outbox rows done", done, "_done", outbox.done, done)
        if retry:
            later = self.clock.seconds() + self.config.outbox_retry
            self._write("putting outbox rows back", retry, "_retry", outbox.retry, retry, later)
        if done:
            self.wake()

    def _write(self, what: str, ids: list[int], pending: str, fn, *args) -> None:
        """`pending`: the list the ids go back to, at its head, if the store refuses them for
        a while."""
        d = self.store.write(fn, *args)
        d.addCallbacks(self._written, self._not_written, errbackArgs=(what, ids, pending))

    def _written(self, _) -> None:
        self._writes.succeeded()

    def _not_written(self, failure, what: str, ids: list[int], pending: str) -> None:
        if self._writes.failed(failure, what):
            getattr(self, pending)[:0] = ids
            if self._flushing is None or not self._flushing.active():
                self._flushing = self.clock.callLater(_RETRY, self._flush)


def _deliver_sm(item: outbox.Item) -> tuple[dict, dict]:
    tlvs = decode_tlvs(item.tlvs) if item.tlvs else {}
    if type(tlvs) is PduError:
        tlvs = {}
    body = item.body
    if len(body) > 254:
        tlvs[Tag.message_payload], body = body, b""
    destination = item.destination
    return {
        "source_addr_ton": item.source_ton,
        "source_addr_npi": item.source_npi,
        "source_addr": item.source,
        # The client's own sender, as it gave it: a number, or an alphanumeric name.
        "dest_addr_ton": 1
        if destination.isdigit() and len(destination) > 6
        else (0 if destination.isdigit() else 5),
        "dest_addr_npi": 1 if destination.isdigit() else 0,
        "destination_addr": destination,
        "esm_class": item.esm_class,
        "data_coding": item.data_coding,
        "short_message": body,
    }, tlvs
