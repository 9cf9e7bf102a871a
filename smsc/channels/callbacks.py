"""Receipts for the channels other than SMPP, from the outbox: POSTed as JSON to the callback
URL a message was given, or mailed (mailto:, through smsc.channels.mail); and subscribers'
replies POSTed to their account's reply_url. Each is retried with a growing wait until it is
taken (a 2xx answer, or the relay accepting the mail) or its outbox row expires: at-least-once,
like what goes to SMPP clients."""

import json
import random
from collections.abc import Callable
from datetime import UTC, datetime
from io import BytesIO
from typing import Any
from urllib.parse import urlsplit

from twisted.internet.defer import Deferred, fail, maybeDeferred
from twisted.logger import Logger
from twisted.web.client import (
    Agent,
    FileBodyProducer,
    HTTPConnectionPool,
    _HTTP11ClientFactory,
    readBody,
)
from twisted.web.http_headers import Headers

from ..config import HttpConfig
from ..protocol import text as sms_text
from ..protocol.constants import MessageState, Tag
from ..protocol.pdu import PduError, decode_tlvs
from ..store import outbox
from ..store.faults import Quiet
from ..wakeup import Wakeup
from . import destinations

_log = Logger()
_IDLE = 1.0  # seconds between looks at the outbox while nothing is due
_OUTSTANDING = 50  # callbacks in flight at once, over all URLs
_FIRST_RETRY = 5.0  # seconds before the second try; doubled each time, up to callback_retry_max

# Sends one receipt by mail: (address, outbox.Callback) -> Deferred that fails if not taken.
Mailer = Callable[[str, outbox.Callback], Deferred]
# POSTs a JSON body to a URL: (url, body) -> Deferred that fails unless answered 2xx.
Post = Callable[[str, bytes], Deferred]


def payload(item: outbox.Callback) -> dict[str, Any]:
    """What is POSTed for an outbox row: a receipt, or a subscriber's reply."""
    return receipt(item) if item.message_id is not None else reply(item)


def reply(item: outbox.Callback) -> dict[str, Any]:
    """A subscriber's reply: who wrote, to which of the account's addresses, what, and when
    (the text is null when its coding is binary)."""
    tlvs = decode_tlvs(item.tlvs) if item.tlvs else {}
    raw = item.body or (tlvs.get(Tag.message_payload, b"") if type(tlvs) is dict else b"")
    return {
        "type": "reply",
        "from": item.source,
        "to": item.destination,
        "text": sms_text.decode(item.data_coding, raw),
        "received_at": _iso(item.created_at),
    }


def receipt(item: outbox.Callback) -> dict[str, Any]:
    """What a receipt says, for a machine: our message id, the subscriber's number, the
    final state (an SMPP message_state name), the error code (0: none) and when."""
    tlvs = decode_tlvs(item.tlvs) if item.tlvs else {}
    if type(tlvs) is PduError:
        tlvs = {}
    state = tlvs.get(Tag.message_state, MessageState.UNKNOWN)
    error = tlvs.get(Tag.network_error_code, b"")
    return {
        "id": str(item.message_id),
        "to": item.source,
        "status": MessageState(state).name,
        "error": int.from_bytes(error[1:3]) if len(error) == 3 else 0,
        "done_at": _iso(item.created_at),
    }


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


class CallbackSender:
    def __init__(
        self,
        store,
        clock,
        config: HttpConfig,
        mailer: Mailer | None = None,
        post: Post | None = None,
        metrics=None,
    ):
        self.store = store
        self.clock = clock
        self.config = config
        self.mailer = mailer
        self.metrics = metrics  # smsc.metrics.Metrics: smsc_receipt_callbacks_total
        self._post = post or poster(clock, config.callback_timeout, config.callback_networks)
        self.wake = Wakeup(clock, self._claim)
        self._claiming = False
        self._outstanding = 0
        self._done: list[int] = []
        self._retry: dict[float, list[int]] = {}  # due again at -> outbox ids
        self._flush_soon = Wakeup(clock, self._flush)  # what was answered, written down
        self._claims = Quiet("claiming receipt callbacks", _log)
        self._writes = Quiet("recording receipt callbacks", _log)

    def start(self) -> None:
        self.wake()

    def stop(self) -> None:
        """No more claims; what is answered meanwhile is still written down."""
        self.wake.stop()

    def _claim(self) -> None:
        room = _OUTSTANDING - self._outstanding
        if self._claiming or room <= 0:
            return self.wake(_IDLE)
        self._claiming = True
        d = self.store.write(outbox.claim_callbacks, self.clock.seconds(), room)
        d.addCallbacks(self._claimed, self._claim_failed, callbackArgs=(room,))

    def _claim_failed(self, failure) -> None:
        self._claiming = False
        self._claims.failed(failure)
        self.wake(_IDLE)

    def _claimed(self, items: list[outbox.Callback], room: int) -> None:
        self._claiming = False
        self._claims.succeeded()
        for item in items:
            self._outstanding += 1
            d = maybeDeferred(self._send, item)
            d.addCallbacks(self._taken, self._refused, callbackArgs=(item,), errbackArgs=(item,))
        self.wake(0.0 if len(items) == room else _IDLE)

    def _send(self, item: outbox.Callback) -> Deferred:
        scheme = urlsplit(item.url).scheme
        if scheme == "mailto":
            if self.mailer is None:
                return fail(RuntimeError("no [smtp] section: receipts cannot be mailed"))
            return self.mailer(item.url.removeprefix("mailto:"), item)
        return self._post(item.url, json.dumps(payload(item)).encode())

    def _taken(self, _, item: outbox.Callback) -> None:
        self._outstanding -= 1
        self._count(item, "sent")
        self._done.append(item.id)
        self._flush_soon()

    def _refused(self, failure, item: outbox.Callback) -> None:
        self._outstanding -= 1
        self._count(item, "failed")
        wait = min(self.config.callback_retry_max, _FIRST_RETRY * 2 ** (item.attempts - 1))
        wait *= random.uniform(0.8, 1.2)  # receipts refused together do not come back together
        if item.attempts == 1 or item.attempts % 10 == 0:  # not a line every retry
            _log.warn(
                "receipt callback to {host} failed (try {n}): {why}; next try in {wait:.0f} s",
                host=urlsplit(item.url).hostname or "?",
                n=item.attempts,
                why=failure.getErrorMessage() or failure.type.__name__,
                wait=wait,
            )
        self._retry.setdefault(self.clock.seconds() + wait, []).append(item.id)
        self._flush_soon()

    def _count(self, item: outbox.Callback, result: str) -> None:
        if self.metrics is not None:
            how = "mail" if item.url.startswith("mailto:") else "http"
            self.metrics.callbacks.labels(how, result).inc()

    def _flush(self) -> None:
        done, self._done = self._done, []
        retry, self._retry = self._retry, {}
        if done:
            self._write(outbox.done, done)
        for due_at, ids in retry.items():
            self._write(outbox.retry, ids, due_at)
        if self._outstanding < _OUTSTANDING:
            self.wake()

    def _write(self, fn, *args) -> None:
        # A failure leaves the rows SENDING: queued again at the next start (store.nodes).
        d = self.store.write(fn, *args)
        d.addCallbacks(lambda _: self._writes.succeeded(), self._writes.failed)


class CallbackRefused(Exception):
    pass


class _QuietFactory(_HTTP11ClientFactory):
    noisy = False


def poster(clock, timeout: float, networks: list[str] = (), pool=None) -> Post:
    """POSTs JSON with Twisted's HTTP client (connections kept for the next receipt, unless
    `pool` says otherwise), to public addresses only, or to `networks`
    (smsc.channels.destinations)."""
    pool = pool or HTTPConnectionPool(clock)
    pool._factory = _QuietFactory  # no public switch for its two log lines a connection
    endpoints = destinations.PublicOnly(clock, destinations.networks(networks), timeout)
    agent = Agent.usingEndpointFactory(clock, endpoints, pool=pool)
    headers = Headers({b"Content-Type": [b"application/json"], b"User-Agent": [b"smsc"]})

    def post(url: str, body: bytes) -> Deferred:
        d = agent.request(b"POST", url.encode(), headers, FileBodyProducer(BytesIO(body)))
        d.addCallback(_answered)
        return d.addTimeout(timeout, clock)

    return post


def _answered(response) -> Deferred:
    """The answer's body read (the connection goes back to the pool); a non-2xx fails."""
    d = readBody(response)

    def check(_):
        if not 200 <= response.code < 300:
            raise CallbackRefused(f"HTTP {response.code}")

    return d.addCallback(check)
