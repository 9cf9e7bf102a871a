"""The ways in that are not SMPP: the HTTP API and the web page (`[http]`), email (`[smtp]`).

Each channel turns what it is given into the submit_sm fields (`compose`) and hands them to the
one accept path (`submit`): the same validation, senders, opt-out list, credit, sending hours
and throughput cap as SMPP, and the same store. A channel's receipts go where its `callback`
says (an HTTP URL, or mailto:), from the outbox (smsc.channels.callbacks).
"""

from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred, gatherResults

from ..accept import Acceptor
from ..protocol import smpptime
from ..protocol import text as sms_text
from ..protocol.constants import Command, Status, Tag
from ..protocol.pdu import zero_params
from ..store.accounts import Account

_ZERO = zero_params(Command.submit_sm)
CHUNK = 1000  # destinations in one accept call (below store.schema.ID_BLOCK)
_SHORT = 254  # octets that fit short_message; longer texts travel in message_payload

# Why a destination or a whole request was refused, in words for people (the SMPP status
# stays in the answers too, for those who know it).
REASONS = {
    Status.RINVDSTADR: "not a phone number that any route can reach",
    Status.ROPTEDOUT: "the number opted out of this sender's messages (STOP)",
    Status.RNOCREDIT: "the account's credit does not cover this message",
    Status.RTHROTTLED: "over the account's throughput cap: try again later",
    Status.RMSGQFUL: "the switch cannot store messages now: try again later",
    Status.RINVSRCADR: "this sender is not allowed for the account",
    Status.RINVMSGLEN: "the text is too long (255 parts at most)",
    Status.RINVSCHED: "the send time is not valid",
    Status.RINVEXPIRY: "the validity ends before the send time",
    Status.RSYSERR: "the switch failed to store the message",
}


def reason(status: int) -> str:
    return REASONS.get(status) or Status(status).name


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one destination: its message id, or the status that refused it."""

    to: str  # as it was given
    id: int | None
    status: int  # 0 when accepted

    def as_dict(self) -> dict[str, Any]:
        if self.id is not None:
            return {"to": self.to, "id": str(self.id)}
        return {
            "to": self.to,
            "error": Status(self.status).name,
            "status": int(self.status),
            "reason": reason(self.status),
        }


def compose(
    text: str,
    sender: str = "",
    send_at: float | None = None,
    valid_until: float | None = None,
    receipt: bool = False,
) -> tuple[dict[str, Any], dict[int, Any]]:
    """The submit_sm fields and TLVs of a text: the smallest coding that holds it (GSM 03.38,
    else UCS-2), a sender as a number or an alphanumeric name, times as SMPP absolute times
    (UTC). `receipt`: a final receipt is wanted."""
    coding = sms_text.best_coding(text)
    body = sms_text.encode(coding, text)
    tlvs = {}
    if len(body) > _SHORT:
        tlvs[Tag.message_payload], body = body, b""
    digits = sender.removeprefix("+")
    ton = 0 if digits.isdigit() else 5  # a number (a long one becomes E.164), else a name
    params = {
        **_ZERO,
        "source_addr_ton": ton,
        "source_addr_npi": 1 if ton == 0 else 0,
        "source_addr": sender,
        "data_coding": coding,
        "short_message": body,
        "registered_delivery": 1 if receipt else 0,
        "schedule_delivery_time": "" if send_at is None else smpptime.format_absolute(send_at),
        "validity_period": "" if valid_until is None else smpptime.format_absolute(valid_until),
    }
    return params, tlvs


def submit(
    acceptor: Acceptor,
    account: Account,
    numbers: list[str],
    params: dict[str, Any],
    tlvs: dict[int, Any],
    callback: str | None = None,
) -> Deferred:
    """Accept one message for each number, each known by its own id. Fires with the overall
    status and an Outcome for each number, in order, once the accepted ones are committed.
    A long list goes to the store in chunks (a writer job numbers at most ID_BLOCK rows)."""
    if len(numbers) > CHUNK:
        chunks = [numbers[i : i + CHUNK] for i in range(0, len(numbers), CHUNK)]
        d = gatherResults(
            [submit(acceptor, account, c, params, tlvs, callback) for c in chunks],
            consumeErrors=True,
        )
        return d.addCallback(_joined)
    destinations = [(0, 1, number) for number in numbers]
    d = Deferred()

    def done(status: int, ids: list[int], refused: list) -> None:
        if not ids and not refused:  # refused as a whole: each destination with that status
            return d.callback((status, [Outcome(n, None, status) for n in numbers]))
        left = {}
        for dest, why in refused:
            left.setdefault(dest[2], []).append(why)
        given = iter(ids)
        outcomes = []
        for number in numbers:
            why = left.get(number)
            if why:
                outcomes.append(Outcome(number, None, why.pop(0)))
            else:
                outcomes.append(Outcome(number, next(given), 0))
        d.callback((status, outcomes))

    acceptor.submit(account, params, tlvs, destinations, done, callback=callback, multi=False)
    return d


def _joined(results: list) -> tuple[int, list[Outcome]]:
    """The chunks' results as one: ROK when any chunk was accepted, else the first status."""
    outcomes = [o for _, chunk in results for o in chunk]
    statuses = [status for status, _ in results]
    return (0 if 0 in statuses else statuses[0]), outcomes


@dataclass
class Context:
    """What a channel needs of the running switch."""

    store: Any  # smsc.store.service.Store
    acceptor: Acceptor
    server: Any  # smsc.server.SmppServer: authenticate() and its lockouts (guard)
    clock: Any  # the reactor
    config: Any  # smsc.config.Config
    metrics: Any = None  # smsc.metrics.Metrics
