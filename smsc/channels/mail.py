"""Email to SMS: the `[smtp]` listener (Twisted Mail), and the results mailed back to senders.

A mail from an address an account registered (`smsc account email add`), sent from one of the
account's networks, to `<number>@<domain>` (several recipients allowed) becomes one SMS per
number, through the same accept path as SMPP (smsc.channels.submit). What is refused is
refused during the SMTP dialogue, so that the sender's own mail server tells them:

    MAIL FROM  550 5.7.1  not a registered sender (or its account disabled, or a network the
                          account does not allow; the reply does not say which)
    RCPT TO    550 5.1.2  another domain;  550 5.1.1  not a number smsc can reach
               452 4.5.3  more than MAX_RECIPIENTS
    DATA       552 5.3.4  over [smtp] max_size
               554 5.6.0  no text (once signature and quotes are cut), a send time that is
                          not a date;  554 5.7.1  no sender to send from, every number refused
               451 4.3.0  the store cannot take it now, the account's throughput cap: later
               250 2.0.0  accepted (at least one number), with the message ids

The text and the subject's options are read by smsc.channels.mailtext. The SMS goes out from
the sender the subject names (`from SHOP`, one of the account's registered senders), else
from the account's only registered sender; an account with none or several and no `from`
is refused, as mail has no other way to say which.

With `reports` on, the sender gets a mail listing each number with its message id or why it
was refused, then one mail per receipt (`receipt_mailer`, called by smsc.channels.callbacks
from the outbox, retried there while the relay refuses or is down).
"""

from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from io import BytesIO

from twisted.internet.defer import Deferred, fail, maybeDeferred, succeed
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.mail.smtp import (
    ESMTP,
    ESMTPSenderFactory,
    IMessage,
    IMessageDelivery,
    SMTPFactory,
    SMTPServerError,
)
from zope.interface import implementer

from .. import addresses, limits
from ..protocol.constants import Status
from ..store import mail_senders
from ..store.accounts import Account
from ..store.outbox import Callback
from . import CHUNK, Context, Outcome, callbacks, compose, mailtext, reason, submit

_log = Logger()
MAX_RECIPIENTS = CHUNK  # numbers in one mail (RFC 5321 asks for 100 at least)
_SHOWN_IDS = 10  # message ids in the 250 reply; the report mail lists them all
_LATER = frozenset({Status.RMSGQFUL, Status.RTHROTTLED, Status.RSYSERR})  # nothing was stored
_SEPARATORS = str.maketrans("", "", " .-")  # allowed in a number: +33 6.00-00…


def factory(ctx: Context, tls=None) -> SMTPFactory:
    """The `[smtp]` listener's factory; `tls`: the options STARTTLS starts TLS with (none: not
    offered)."""
    if ctx.config.smtp.relay_port == 0:
        _log.warn("SMTP: [smtp] relay_port is 0: results asked for by email senders go nowhere")
    return MailToSms(ctx, Mailer.of(ctx), tls)


def receipt_mailer(ctx: Context):
    """What smsc.channels.callbacks mails a receipt with: `(address, item) -> Deferred`."""
    return Mailer.of(ctx).receipt


class MailToSms(SMTPFactory):
    """The `[smtp]` listener: an ESMTP protocol per connection, with its own Delivery."""

    noisy = False

    def __init__(self, ctx: Context, mailer: "Mailer", tls=None):
        super().__init__()
        self.protocol = _Smtp
        self.domain = ctx.config.smtp.domain
        self.ctx = ctx
        self.mailer = mailer
        self.tls = tls
        # [limits]' caps on connections, counted apart from the SMPP clients'.
        self.connections = limits.Connections(ctx.config.limits, ctx.clock)

    def buildProtocol(self, addr):
        address = limits.address_key(getattr(addr, "host", "?"))
        if self.connections.admit(address) is not None:
            return _Busy()
        protocol = super().buildProtocol(addr)
        protocol.address, protocol.connections = address, self.connections
        protocol.delivery = Delivery(self.ctx, self.mailer)
        protocol.max_size = self.ctx.config.smtp.max_size
        protocol.metrics = self.ctx.metrics
        protocol.ctx = self.tls  # ESMTP's name for what STARTTLS starts TLS with
        protocol.tls_required = self.ctx.config.smtp.tls_required
        return protocol


class _Busy(Protocol):
    """A connection over a cap: told so (RFC 5321 3.8: 421, the sender's server tries again
    later), and closed."""

    def connectionMade(self) -> None:
        self.transport.write(b"421 4.7.0 too many connections, try again later\r\n")
        self.transport.loseConnection()


class _Smtp(ESMTP):
    noisy = False  # else Twisted logs each mail's recipients: the numbers
    max_size = 0
    metrics = None  # smsc.metrics.Metrics: smsc_smtp_mails_total
    tls_required = False
    connections = None  # the factory's count, which this connection is in until it ends
    address = ""
    _tls_cut = False  # STARTTLS began TLS in this read: the read's other lines are dropped

    def connectionLost(self, reason):
        super().connectionLost(reason)
        if self.connections is not None:
            self.connections.release(self.address)
            self.connections = None

    def dataReceived(self, data):
        self._tls_cut = False
        super().dataReceived(data)

    def lineReceived(self, line):
        if not self._tls_cut:
            return super().lineReceived(line)
        return None

    def ext_STARTTLS(self, rest):
        """RFC 3207 4.2: nothing from before TLS counts after it. What came in clear behind
        the command (a man in the middle's injected commands: Twisted would run them as if
        they came over TLS) is dropped, and what was said before is forgotten."""
        before = self.startedTLS
        super().ext_STARTTLS(rest)
        if self.startedTLS and not before:
            self._tls_cut, self._buffer = True, b""
            self._helo, self._from, self._to = None, None, []

    def do_MAIL(self, rest):
        if self.tls_required and not self.startedTLS:
            return self.sendCode(530, b"5.7.0 Must issue a STARTTLS command first")
        return super().do_MAIL(rest)

    def extensions(self):
        found = super().extensions()
        found[b"SIZE"] = [str(self.max_size).encode()]
        found[b"8BITMIME"] = None  # lines are taken as bytes; the email package decodes them
        return found

    def _messageHandled(self, results):
        """The reply to DATA. One mail is one request whatever its number of recipients: its
        answer is the first recipient's message's (`Transaction.message`). Twisted's own
        answers 550 to any failure; ours says 451, 552 or 554 and why."""
        ok, result = results[0]
        if ok:
            code, text = 250, result
        elif result.check(SMTPServerError):
            code, text = result.value.code, result.value.resp
        else:
            _log.failure("email to SMS failed", result)
            code, text = 451, "4.3.0 local error: try again later"
        if self.metrics is not None:
            self.metrics.mails.labels(str(code)).inc()
        self.sendCode(code, text.encode())


@implementer(IMessageDelivery)
class Delivery:
    """One SMTP connection's checks: the sender at MAIL FROM, each number at RCPT TO."""

    def __init__(self, ctx: Context, mailer: "Mailer"):
        self.ctx = ctx
        self.mailer = mailer
        self.mail: Transaction | None = None

    def receivedHeader(self, helo, origin, recipients):
        return None  # the mail is read, not stored or relayed

    def validateFrom(self, helo, origin):
        address = str(origin).lower()
        host = helo[1].decode() if isinstance(helo[1], bytes) else str(helo[1])
        d = self.ctx.store.read(mail_senders.sender, address)
        return d.addCallbacks(self._checked, self._unchecked, (origin, address, host))

    def _unchecked(self, failure):
        _log.warn("SMTP: a sender could not be checked: {why}", why=failure.getErrorMessage())
        raise SMTPServerError(451, "4.3.0 the sender cannot be checked now: try again later")

    def _checked(self, found, origin, address: str, host: str):
        why = (
            "unknown" if found is None
            else "disabled" if not found[0].enabled
            else None if limits.allows(found[0].networks, host)
            else "network"
        )  # fmt: skip
        if why is not None:
            _log.info("SMTP: sender refused from {host} ({why})", host=host, why=why)
            raise SMTPServerError(550, f"5.7.1 sender <{address}> is not registered to send SMS")
        self.mail = Transaction(self.ctx, self.mailer, address, *found)
        return origin

    def validateTo(self, user):
        domain = self.ctx.config.smtp.domain
        dest = user.dest
        if dest.domain.decode(errors="replace").lower() != domain.lower():
            raise SMTPServerError(550, f"5.1.2 this server takes mail to <number>@{domain} only")
        local = dest.local.decode(errors="replace").strip('"').translate(_SEPARATORS)
        number = addresses.e164(local, 0)
        routable = self.ctx.acceptor.routable
        if number is None or (routable is not None and not routable(number)):
            raise SMTPServerError(
                550, "5.1.1 the recipient is not a phone number that smsc can reach"
            )
        if not self.mail.add(number):
            raise SMTPServerError(
                452, f"4.5.3 too many recipients: {MAX_RECIPIENTS} at most a mail"
            )
        return self.mail.message


class Transaction:
    """One mail: its sender's account, its numbers, and what becomes of its text."""

    def __init__(self, ctx: Context, mailer, address: str, account: Account, reports: bool):
        self.ctx = ctx
        self.mailer = mailer
        self.address = address
        self.account = account
        self.reports = reports
        self.numbers: list[str] = []
        self._reader: Message | None = None

    def add(self, number: str) -> bool:
        if number not in self.numbers:
            if len(self.numbers) == MAX_RECIPIENTS:
                return False
            self.numbers.append(number)
        return True

    def message(self):
        """Twisted asks each recipient for a message and feeds each the mail: the first reads
        it and sends the SMS, the others let it pass."""
        if self._reader is None:
            self._reader = Message(self, self.ctx.config.smtp.max_size)
            return self._reader
        return _Ignored()

    def send(self, raw: bytes) -> Deferred:
        """The SMS of the mail: fires with the 250 reply, or fails with the refusal."""
        mail = mailtext.parse(raw)
        subject = str(mail["subject"] or "")
        try:
            text = mailtext.sms_text(mail)
            send_at = mailtext.send_time(subject, self.account.timezone)
        except mailtext.MailError as e:
            raise SMTPServerError(554, f"5.6.0 {e}") from None
        params, tlvs = compose(text, _sms_sender(self.account, subject), send_at,
                               receipt=self.reports)  # fmt: skip
        callback = "mailto:" + self.address if self.reports else None
        d = submit(self.ctx.acceptor, self.account, self.numbers, params, tlvs, callback)
        return d.addCallback(self._answered)

    def _answered(self, result: tuple[int, list[Outcome]]) -> str:
        status, outcomes = result
        accepted = [str(o.id) for o in outcomes if o.id is not None]
        refused = sorted({reason(o.status) for o in outcomes if o.id is None})
        if not accepted:
            if status in _LATER:
                raise SMTPServerError(451, f"4.3.0 no SMS accepted: {reason(status)}")
            raise SMTPServerError(554, "5.7.1 no SMS accepted: " + "; ".join(refused))
        if self.reports:
            self.mailer.report(self.address, self.account, outcomes)
        shown = " ".join(accepted[:_SHOWN_IDS]) + (" ..." if len(accepted) > _SHOWN_IDS else "")
        answer = f"2.0.0 {len(accepted)} SMS accepted, ids {shown}"
        if refused:
            answer += f"; {len(outcomes) - len(accepted)} refused: " + "; ".join(refused)
        return answer


def _sms_sender(account: Account, subject: str) -> str:
    named = mailtext.named_sender(subject, account.senders)
    if named is not None:
        return named
    if len(account.senders) == 1:
        return next(iter(account.senders))
    if not account.senders:
        raise SMTPServerError(554, "5.7.1 the account has no registered sender to send from")
    raise SMTPServerError(554, "5.7.1 the account has several senders: name one in the subject "
                        "(from NAME)")  # fmt: skip


@implementer(IMessage)
class Message:
    """The mail's lines, kept up to the size limit, and the SMS made of them at its end."""

    def __init__(self, mail: Transaction, max_size: int):
        self.mail = mail
        self.max_size = max_size
        self.lines: list[bytes] = []
        self.size = 0

    def lineReceived(self, line: bytes) -> None:
        self.size += len(line) + 2
        if self.size <= self.max_size:
            self.lines.append(line)

    def eomReceived(self) -> Deferred:
        if self.size > self.max_size:
            return fail(SMTPServerError(552, f"5.3.4 the mail is over {self.max_size} octets"))
        return maybeDeferred(self.mail.send, b"\r\n".join(self.lines))

    def connectionLost(self) -> None:
        self.lines = []


@implementer(IMessage)
class _Ignored:
    def lineReceived(self, line):
        pass

    def eomReceived(self):
        return succeed(None)

    def connectionLost(self):
        pass


class NoRelay(Exception):
    """No mail goes out: [smtp] relay_port is 0."""


def relay(reactor, host: str, port: int, sender: str, to: str, message: bytes) -> Deferred:
    """twisted.mail.smtp.sendmail without its log lines ("Starting factory") for each mail.
    `message` has \n line ends: the sender writes them as CRLF."""
    d = Deferred()
    factory = ESMTPSenderFactory(None, None, sender, [to], BytesIO(message), d,
                                 heloFallback=True, requireAuthentication=False,
                                 requireTransportSecurity=False)  # fmt: skip
    factory.noisy = False
    reactor.connectTCP(host, port, factory)
    return d


class Mailer:
    """Mail to senders through the relay of `[smtp]` (relay_host, relay_port), From `mail_from`
    (default smsc@<domain>)."""

    def __init__(self, relay_host: str, relay_port: int, sender: str, reactor):
        self.relay = relay_host, relay_port
        self.sender = sender
        self.reactor = reactor

    @classmethod
    def of(cls, ctx: Context) -> "Mailer":
        smtp = ctx.config.smtp
        sender = smtp.mail_from or f"smsc@{smtp.domain}"
        return cls(smtp.relay_host, smtp.relay_port, sender, ctx.clock)

    def send(self, to: str, subject: str, text: str) -> Deferred:
        """Fires once the relay took the mail; fails when it refused it or cannot be reached."""
        host, port = self.relay
        if not port:
            return fail(NoRelay("no mail goes out: [smtp] relay_port is 0"))
        mail = EmailMessage()
        mail["From"] = self.sender
        mail["To"] = to
        mail["Subject"] = subject
        mail["Date"] = formatdate(self.reactor.seconds())
        mail["Message-ID"] = make_msgid(domain=self.sender.rpartition("@")[2])
        mail["Auto-Submitted"] = "auto-replied"  # RFC 3834: no automatic answer to it
        mail.set_content(text)
        return relay(self.reactor, host, port, self.sender, to, mail.as_bytes())

    def report(self, to: str, account: Account, outcomes: list[Outcome]) -> None:
        """The acceptance report: each number with its message id or why it was refused. Not
        tried without a relay (said once, at start)."""
        if not self.relay[1]:
            return
        lines = [
            f"+{o.to}: message {o.id}"
            if o.id is not None
            else f"+{o.to}: refused, {reason(o.status)}"
            for o in outcomes
        ]
        accepted = sum(o.id is not None for o in outcomes)
        subject = f"SMS: {accepted} of {len(outcomes)} accepted"
        d = self.send(to, subject, "\n".join(lines) + "\n")
        d.addErrback(
            lambda f: _log.warn(
                "SMTP: the acceptance report of {account} was not mailed: {why}",
                account=account.system_id, why=f.getErrorMessage(),
            )
        )  # fmt: skip

    def receipt(self, to: str, item: Callback) -> Deferred:
        """A receipt mailed: "message 12 to +33600000001: DELIVERED at 2026-…"."""
        said = callbacks.receipt(item)
        error = f" (error {said['error']})" if said["error"] else ""
        text = f"message {said['id']} to +{said['to']}: {said['status']} at {said['done_at']}"
        return self.send(to, f"SMS {said['id']}: {said['status']}", text + error + "\n")
