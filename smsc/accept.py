"""The one accept path for every channel: validate a submission, apply the account's policy,
and commit it to the store before anyone is told it was accepted (charged in the same
transaction: smsc.store.credit).

A submission is a dict with the SMPP submit_sm field names (the SMPP server hands over the
decoded PDU's params as they are; other channels build the same dict) plus its TLVs.
"""

from collections import Counter
from collections.abc import Callable
from typing import Any

from . import addresses, hours, senders
from .protocol import concat, smpptime
from .protocol.constants import ESM_UDHI, Status, Tag
from .protocol.pdu import encode_tlvs
from .protocol.throttle import TokenBucket
from .store import optouts
from .store.accounts import Account
from .store.faults import transient
from .store.messages import ORIGIN_CLIENT, State
from .store.service import Store

MAX_BODY = 255 * 134  # the most that 255 concatenated parts can carry
# data_coding values smsc carries (spec 5.2.19): the GSM default alphabet, IA5, 8-bit binary,
# Latin-1, UCS-2, and the GSM message-class codings (0xF0-0xFF, e.g. flash SMS).
_CODINGS = frozenset({0, 1, 2, 3, 4, 8, *range(0xF0, 0x100)})
_SEPTETS = frozenset({0, 1, 0xF0, 0xF1, 0xF2, 0xF3})  # codings whose octets are 7-bit
_ESM_TYPES = (0x00, 0x08, 0x10)  # esm_class bits 2-5 in submit: default, SME ack, manual ack

# A destination handed in: (ton, npi, address). Done gets (status, message ids, refusals).
Done = Callable[[int, list[int], list[tuple[tuple[int, int, str], int]]], None]

_ACCEPTED = State.ACCEPTED.value


class Acceptor:
    def __init__(self, store: Store, clock, optout_key: bytes | None = None, metrics=None):
        self._store = store
        self._metrics = metrics  # smsc.metrics.Metrics: submits by account and result
        self._clock = clock
        self._buckets: dict[int, TokenBucket] = {}
        # This node's part of an account's tps, when other nodes serve it too (smsc.cluster).
        self.shares: dict[int, float] = {}
        # The opt-out list's HMAC key; None: no list (a store that was never given one).
        self.optout_key = optout_key
        self._digest = None if optout_key is None else optouts.hasher(optout_key)
        self.refused: Counter = Counter()  # refused submits (destinations) by status
        # Set by the switch when it delivers: which numbers some route can take, and who to
        # tell that messages were stored. A switch without carriers only queues.
        self.routable: Callable[[str], bool] | None = None
        self.on_stored: Callable[[], None] | None = None
        # Set when the switch shuts down: what comes now is refused (ESME_RMSGQFUL), what was
        # handed to the store before is still committed and answered.
        self.closing = False

    def submit(
        self,
        account: Account,
        params: dict[str, Any],
        tlvs: dict[int, Any],
        destinations: list[tuple[int, int, str]],
        done: Done,
        callback: str | None = None,
        multi: bool = True,
    ) -> None:
        """Validate and store one message for each destination. `done` is called once, either
        at once (refused as a whole) or when the rows are committed. A store that fails
        for a while (gone, full, locked, too slow) refuses with ESME_RMSGQFUL, which tells the
        client to try again later; any other failure with ESME_RSYSERR. `callback`: where the
        receipts go when not to an SMPP bind (smsc.channels); `multi`: several destinations
        are one submit_multi, known by one id (else each message by its own)."""
        if self.closing:
            return self._refuse(done, Status.RMSGQFUL, account, len(destinations))
        now = self._clock.seconds()
        if account.tps and not self._throttle(account, len(destinations), now):
            return self._refuse(done, Status.RTHROTTLED, account, len(destinations))
        common = self._check(account, params, tlvs, now)
        if type(common) is not tuple:
            return self._refuse(done, common, account, len(destinations))
        due_at, expires_at, body, extra_tlvs, parts = common
        rows, refused = [], []
        source, ton = addresses.source(params["source_addr"], params["source_addr_ton"])
        npi = 1 if ton == 1 else params["source_addr_npi"]
        head = (account.id, params["service_type"], ton, npi, source)
        tail = (
            params["esm_class"],
            params["protocol_id"],
            params["priority_flag"],
            params["registered_delivery"],
            params["data_coding"],
            body,
            extra_tlvs,
            now,
            due_at,
            expires_at,
            _ACCEPTED,
            now,
            ORIGIN_CLIENT,
            callback,
        )
        routable = self.routable
        kept = []  # the destinations of the rows, in order
        for dest in destinations:
            number = addresses.e164(dest[2], dest[0])
            if number is None or (routable is not None and not routable(number)):
                refused.append((dest, Status.RINVDSTADR))
            else:
                rows.append((*head, number, *tail))
                kept.append(dest)
        metrics = self._metrics
        if refused:
            self.refused.update(status for _, status in refused)
            if metrics is not None:
                for _, status in refused:
                    metrics.submitted(account.system_id, status)
        if not rows:
            return done(refused[0][1] if len(refused) == 1 else Status.RINVDSTADR, [], refused)
        digest = self._digest
        hashes = None if digest is None else [digest(row[5]) for row in rows]

        def stored(result):
            if isinstance(result, Exception):  # the writer logs the failed batch
                status = Status.RMSGQFUL if transient(result) else Status.RSYSERR
                return self._refuse(done, status, account, len(rows))
            ids = [i for i in result if type(i) is int]  # the others: opted out, no credit
            if len(ids) < len(result):
                for dest, status in zip(kept, result, strict=True):
                    if type(status) is not int:
                        refused.append((dest, status))
                        self.refused[status] += 1
                        if metrics is not None:
                            metrics.submitted(account.system_id, status)
                if not ids:
                    statuses = {status for _, status in refused}
                    status = statuses.pop() if len(statuses) == 1 else Status.RINVDSTADR
                    return done(status, [], refused)
            if metrics is not None:
                metrics.submitted(account.system_id, 0, len(ids))
            done(Status.ROK, ids, refused)
            if self.on_stored is not None:
                self.on_stored()

        self._store.insert(rows, stored, hashes, parts, multi)

    def _refuse(self, done: Done, status: Status, account: Account, n: int) -> None:
        self.refused[status] += 1
        if self._metrics is not None:  # each destination refused
            self._metrics.submitted(account.system_id, status, max(1, n))
        done(status, [], [])

    def _throttle(self, account: Account, n: int, now: float) -> bool:
        rate = account.tps * self.shares.get(account.id, 1.0)
        bucket = self._buckets.get(account.id)
        if bucket is None or bucket.rate != rate:
            bucket = self._buckets[account.id] = TokenBucket(rate, now)
        return bucket.take(n, now)

    def _check(self, account: Account, params, tlvs, now) -> tuple | Status:
        """The checks that do not depend on the destination: a status, or what the row needs
        (due_at, expires_at, body, the other TLVs encoded)."""
        source, ton = params["source_addr"], params["source_addr_ton"]
        status = senders.check(account, source, ton)
        if status:
            return status
        esm_class = params["esm_class"]
        if esm_class & 0x3C not in _ESM_TYPES:
            return Status.RINVESMCLASS
        if params["priority_flag"] > 3:
            return Status.RINVPRTFLG
        if params["registered_delivery"] & 0xE3 not in (0, 1, 2):
            return Status.RINVREGDLVFLG
        if params["replace_if_present_flag"] > 1:
            return Status.RINVREPFLAG
        data_coding = params["data_coding"]
        if data_coding not in _CODINGS:
            return Status.RINVDCS
        body = params["short_message"]
        extra = b""
        if tlvs:
            tlvs = dict(tlvs)
            payload = tlvs.pop(Tag.message_payload, None)
            if payload is not None:
                if body:  # spec 5.3.2.32: never both
                    return Status.RINVMSGLEN
                body = payload
            extra = encode_tlvs(tlvs)
        status = check_body(body, data_coding, esm_class)
        if status:
            return status
        body = senders.with_stop_mention(
            account, source, ton, body, data_coding, esm_class, tlvs or {}
        )
        if type(body) is not bytes:
            return body
        if len(body) > MAX_BODY:
            return Status.RINVMSGLEN
        try:
            parts = concat.count(body, data_coding, esm_class)  # what it costs
        except ValueError:  # more than 255 parts
            return Status.RINVMSGLEN
        try:
            due = smpptime.parse(params["schedule_delivery_time"], now)
        except ValueError:
            return Status.RINVSCHED
        due_at = now if due is None or due < now else due
        try:
            expiry = smpptime.parse(params["validity_period"], now)
        except ValueError:
            return Status.RINVEXPIRY
        if expiry is None:
            expires_at = due_at + account.default_validity
        else:  # the account's maximum bounds what a client asks
            expires_at = min(expiry, due_at + account.max_validity)
        if expires_at <= due_at:
            return Status.RINVEXPIRY
        if account.marketing:
            # Held until its sending hours open; if its validity ends first, it is due when
            # it expires, and expires then rather than going out late.
            try:
                due_at = min(hours.of(account).next_open(due_at), expires_at)
            except ValueError:  # hours that never open: it waits for its expiry
                due_at = expires_at
        return due_at, expires_at, body, extra, parts


def check_body(body: bytes, data_coding: int, esm_class: int) -> Status:
    """A message body against its data_coding and UDH flag (also for replace_sm's new text)."""
    if len(body) > MAX_BODY:
        return Status.RINVMSGLEN
    text = body
    if esm_class & ESM_UDHI:
        if not body or body[0] + 1 > len(body):
            return Status.RINVMSGLEN
        text = body[body[0] + 1 :]
    if data_coding == 8 and len(text) % 2:
        return Status.RINVMSGLEN
    if data_coding in _SEPTETS and not text.isascii():
        return Status.RINVDCS  # the GSM default alphabet and IA5 are 7-bit: 0x00-0x7F
    return Status.ROK
