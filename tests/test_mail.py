"""Email to SMS: the SMTP dialogue against the listener's factory (an in-memory transport, a
real store under a synchronous stand-in, the real acceptor), the mails sent back (a fake relay),
and the `smsc account email` commands."""

import email
from email import policy
from types import SimpleNamespace

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from stores import SyncStore
from twisted.internet import defer
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from smsc.accept import Acceptor
from smsc.channels import Context, mail, reason
from smsc.cli import main
from smsc.config import LimitsConfig, SmtpConfig
from smsc.inbound.receipts import format_text, receipt_tlvs
from smsc.metrics import Metrics
from smsc.protocol import text as sms_text
from smsc.protocol.constants import Status
from smsc.protocol.pdu import encode_tlvs
from smsc.store import accounts, mail_senders, senders
from smsc.store.db import writing
from smsc.store.messages import State
from smsc.store.outbox import Callback
from smsc.store.schema import messages

NOW = 1_780_000_000.0  # 2026-05-28
SENDER = "ann@acme.example"
N1, N2 = "33600000001", "33600000002"


class Store(SyncStore):
    """Reads too; the numbers in `opted_out` are refused by the writer, as the opt-out list
    (or a prepaid account's credit) would."""

    opted_out = frozenset()

    def read(self, fn, *args):
        with self.engine.connect() as conn:
            return defer.succeed(fn(conn, *args))

    def insert(self, rows, callback, hashes=None, parts=1, multi=True):
        kept = [row for row in rows if row[5] not in self.opted_out]  # row[5]: the number
        given = []
        if kept:
            super().insert(kept, given.extend)
        ids = iter(given)
        callback([Status.ROPTEDOUT if row[5] in self.opted_out else next(ids) for row in rows])


class Relay:
    """Stands for `mail.relay`: keeps the mails, or fails as told."""

    def __init__(self):
        self.mails = []
        self.failure = None

    def __call__(self, reactor, host, port, sender, to, message):
        if self.failure is not None:
            return defer.fail(self.failure)
        sent = email.message_from_bytes(message, policy=policy.default)
        self.mails.append((host, port, sender, [to], sent))
        return defer.succeed((1, [(to, 250, b"ok")]))


@pytest.fixture
def switch(engine, fast_scrypt, monkeypatch):
    clock = Clock()
    clock.advance(NOW)
    with writing(engine) as conn:
        account = accounts.add(conn, "acme", "pw", NOW)
        senders.add(conn, account.id, "ACME")
        mail_senders.add(conn, account.id, SENDER, True, NOW)
    store = Store(engine)
    acceptor = Acceptor(store, clock)
    smtp = SmtpConfig(domain="sms.example.com", relay_port=2500, max_size=10_000)
    config = SimpleNamespace(smtp=smtp, limits=LimitsConfig())
    ctx = Context(store, acceptor, None, clock, config)
    relay = Relay()
    monkeypatch.setattr(mail, "relay", relay)
    factory = mail.factory(ctx)
    return SimpleNamespace(ctx=ctx, factory=factory, relay=relay, engine=engine, clock=clock,
                           acceptor=acceptor, account_id=account.id)  # fmt: skip


class Client:
    """One SMTP connection to the factory's protocol, in memory."""

    def __init__(self, factory, host="127.0.0.1"):
        self.protocol = factory.buildProtocol(IPv4Address("TCP", host, 40000))
        self.protocol.callLater = factory.ctx.clock.callLater  # its idle timeout: not the reactor's
        self.transport = StringTransport(peerAddress=IPv4Address("TCP", host, 40000))
        self.protocol.makeConnection(self.transport)
        self.read()  # the greeting

    def read(self) -> str:
        out = self.transport.value().decode()
        self.transport.clear()
        return out

    def say(self, line: str | bytes) -> str:
        self.protocol.dataReceived((line.encode() if isinstance(line, str) else line) + b"\r\n")
        return self.read()

    def send(self, to: list[str], body: str, subject="", sender=SENDER) -> str:
        """A whole transaction; the answer to its end of data (or the first refusal)."""
        assert self.say(f"MAIL FROM:<{sender}>").startswith("250")
        for address in to:
            assert self.say(f"RCPT TO:<{address}>").startswith("250")
        assert self.say("DATA").startswith("354")
        headers = f"From: {sender}\r\nSubject: {subject}\r\nContent-Type: text/plain\r\n\r\n"
        lines = (headers + body).replace("\r\n", "\n").split("\n")
        self.protocol.dataReceived(b"".join(line.encode() + b"\r\n" for line in lines))
        return self.say(".")


def content(mail) -> str:
    return mail.get_content().replace("\r\n", "\n")


def stored(engine) -> list:
    with engine.connect() as conn:
        return conn.execute(select(messages).order_by(messages.c.id)).all()


def test_ehlo_advertises_the_size_limit(switch):
    client = Client(switch.factory)
    answer = client.say("EHLO client.example")
    assert "250-SIZE 10000" in answer and "8BITMIME" in answer


def test_unknown_sender_refused_at_mail_from(switch):
    client = Client(switch.factory)
    answer = client.say("MAIL FROM:<eve@evil.example>")
    assert answer.startswith("550 5.7.1") and "not registered to send SMS" in answer
    assert client.say("RCPT TO:<33600000001@sms.example.com>").startswith("503")


def test_store_unreadable_at_mail_from_answers_451(switch, monkeypatch):
    def gone(fn, *args):
        return defer.fail(OperationalError("SELECT", {}, Exception("gone")))

    monkeypatch.setattr(switch.ctx.store, "read", gone)
    answer = Client(switch.factory).say(f"MAIL FROM:<{SENDER}>")
    assert answer.startswith("451 4.3.0 the sender cannot be checked now")


def test_sender_matched_without_case(switch):
    assert Client(switch.factory).say("MAIL FROM:<Ann@ACME.example>").startswith("250")


def test_disabled_account_or_other_network_refused(switch):
    with writing(switch.engine) as conn:
        accounts.change(conn, "acme", networks="192.0.2.0/24")
    assert Client(switch.factory).say(f"MAIL FROM:<{SENDER}>").startswith("550 5.7.1")
    assert Client(switch.factory, "192.0.2.7").say(f"MAIL FROM:<{SENDER}>").startswith("250")
    with writing(switch.engine) as conn:
        accounts.change(conn, "acme", enabled=False)
    assert Client(switch.factory, "192.0.2.7").say(f"MAIL FROM:<{SENDER}>").startswith("550")


def test_recipients_checked(switch):
    switch.acceptor.routable = lambda number: not number.endswith("9")
    client = Client(switch.factory)
    client.say(f"MAIL FROM:<{SENDER}>")
    assert client.say("RCPT TO:<33600000001@elsewhere.example>").startswith("550 5.1.2")
    for bad in ("hello", "123", "33600000009"):
        answer = client.say(f"RCPT TO:<{bad}@sms.example.com>")
        assert answer.startswith("550 5.1.1") and "not a phone number that smsc can reach" in answer
    for good in ('"+33 6 00 00 00 01"', "06.00.00.00.02", "+33-6-00-00-00-03", "33600000004"):
        assert client.say(f"RCPT TO:<{good}@SMS.example.com>").startswith("250"), good


def test_mails_are_counted_by_the_code_that_answered_them(switch):
    switch.ctx.metrics = metrics = Metrics()
    client = Client(switch.factory)
    assert client.send([f"{N1}@sms.example.com"], "Hello").startswith("250")
    assert client.send([f"{N1}@sms.example.com"], "-- \nonly a signature").startswith("554")
    assert metrics.mails.labels("250")._value.get() == 1
    assert metrics.mails.labels("554")._value.get() == 1


def test_accepted_with_ids(switch):
    client = Client(switch.factory)
    body = "Your parcel is ready.\n\nOn Mon, Bob wrote:\n> where is it?\n-- \nAnn\n"
    answer = client.send([f"{N1}@sms.example.com", f"+{N2}@sms.example.com"], body, "Parcel")
    rows = stored(switch.engine)
    assert [r.destination for r in rows] == [N1, N2]
    assert answer.strip() == f"250 2.0.0 2 SMS accepted, ids {rows[0].id} {rows[1].id}"
    for row in rows:
        assert sms_text.decode(row.data_coding, row.body) == "Your parcel is ready."
        assert row.source == "ACME" and row.source_ton == 5
        assert row.callback == f"mailto:{SENDER}" and row.registered_delivery == 1
        assert row.due_at == NOW
    # the report, mailed back through the relay
    ((host, port, sender, to, report),) = switch.relay.mails
    assert (host, port, sender, to) == ("127.0.0.1", 2500, "smsc@sms.example.com", [SENDER])
    assert report["Subject"] == "SMS: 2 of 2 accepted"
    assert content(report) == f"+{N1}: message {rows[0].id}\n+{N2}: message {rows[1].id}\n"


def test_without_reports_nothing_is_mailed(switch):
    with writing(switch.engine) as conn:
        mail_senders.add(conn, switch.account_id, SENDER, False, NOW)
    answer = Client(switch.factory).send([f"{N1}@sms.example.com"], "hi")
    assert answer.startswith("250 2.0.0 1 SMS accepted")
    (row,) = stored(switch.engine)
    assert row.callback is None and row.registered_delivery == 0
    assert switch.relay.mails == []


def test_subject_send_time_in_the_account_zone(switch):
    Client(switch.factory).send([f"{N1}@sms.example.com"], "later", "Promo at 2026-12-24 18:00")
    (row,) = stored(switch.engine)
    assert row.due_at == 1_798_131_600.0  # 2026-12-24 17:00 UTC: 18:00 in Paris


def test_subject_with_a_bad_date_refused(switch):
    answer = Client(switch.factory).send([f"{N1}@sms.example.com"], "x", "at 2026-02-30 10:00")
    assert answer.startswith("554 5.6.0") and "not a date" in answer
    assert stored(switch.engine) == []


def test_empty_text_refused(switch):
    answer = Client(switch.factory).send([f"{N1}@sms.example.com"], "> quoted only\n")
    assert answer.startswith("554 5.6.0") and "empty" in answer


def test_sender_among_several_named_in_the_subject(switch):
    with writing(switch.engine) as conn:
        senders.add(conn, switch.account_id, "36180")
    client = Client(switch.factory)
    answer = client.send([f"{N1}@sms.example.com"], "x", "Sale")
    assert answer.startswith("554 5.7.1") and "several senders" in answer
    assert client.send([f"{N1}@sms.example.com"], "x", "Sale from 36180").startswith("250")
    (row,) = stored(switch.engine)
    assert row.source == "36180"


def test_mail_over_max_size_refused(switch):
    answer = Client(switch.factory).send([f"{N1}@sms.example.com"], ("x" * 99 + "\n") * 100)
    assert answer.startswith("552 5.3.4")
    assert stored(switch.engine) == []


def test_store_full_answers_451(switch):
    switch.acceptor.closing = True  # the acceptor refuses with ESME_RMSGQFUL
    answer = Client(switch.factory).send([f"{N1}@sms.example.com", f"{N2}@sms.example.com"], "hi")
    assert answer.startswith("451 4.3.0") and "cannot store messages now" in answer
    assert switch.relay.mails == []


def test_every_number_refused_answers_554(switch):
    switch.ctx.store.opted_out = {N1, N2}
    answer = Client(switch.factory).send([f"{N1}@sms.example.com", f"{N2}@sms.example.com"], "hi")
    assert answer.strip() == "554 5.7.1 no SMS accepted: " + reason(Status.ROPTEDOUT)
    assert switch.relay.mails == [] and stored(switch.engine) == []


def test_some_numbers_refused_listed_in_the_report(switch):
    switch.ctx.store.opted_out = {N1}
    answer = Client(switch.factory).send([f"{N1}@sms.example.com", f"{N2}@sms.example.com"], "hi")
    (row,) = stored(switch.engine)
    assert answer.strip() == (
        f"250 2.0.0 1 SMS accepted, ids {row.id}; 1 refused: {reason(Status.ROPTEDOUT)}"
    )
    ((*_, report),) = switch.relay.mails
    assert report["Subject"] == "SMS: 1 of 2 accepted"
    assert content(report) == (
        f"+{N1}: refused, {reason(Status.ROPTEDOUT)}\n+{N2}: message {row.id}\n"
    )


def test_several_mails_on_one_connection(switch):
    client = Client(switch.factory)
    assert client.send([f"{N1}@sms.example.com"], "one").startswith("250")
    assert client.send([f"{N2}@sms.example.com"], "two").startswith("250")
    assert [r.destination for r in stored(switch.engine)] == [N1, N2]


# -- receipts mailed -------------------------------------------------------------------------


def callback(state=State.DELIVERED, error=0) -> Callback:
    body = format_text("42", state, NOW - 60, NOW - 30, error, "Your parcel is ready")
    tlvs = encode_tlvs(receipt_tlvs("42", state, error))
    return Callback(1, 1, 42, N1, "ACME", 0, tlvs, body, NOW, 0, f"mailto:{SENDER}")


@pytest.mark.parametrize(
    "state, error, said",
    [(State.DELIVERED, 0, "DELIVERED"), (State.UNDELIVERABLE, 11, "UNDELIVERABLE")],
)
def test_receipt_mailed(switch, state, error, said):
    result = []
    mail.receipt_mailer(switch.ctx)(SENDER, callback(state, error)).addCallback(result.append)
    assert result
    ((_, _, _, to, sent),) = switch.relay.mails
    assert to == [SENDER] and sent["Subject"] == f"SMS 42: {said}"
    assert sent["Auto-Submitted"] == "auto-replied"
    done = "2026-05-28T20:26:40+00:00"  # when the receipt was made
    extra = f" (error {error})" if error else ""
    assert content(sent) == f"message 42 to +{N1}: {said} at {done}{extra}\n"
    assert "parcel" not in content(sent)  # the text stays out


def test_receipt_fails_when_the_relay_refuses(switch):
    switch.relay.failure = RuntimeError("550 no such user")
    failures = []
    d = mail.receipt_mailer(switch.ctx)(SENDER, callback(State.UNDELIVERABLE, 1))
    d.addErrback(failures.append)
    assert failures and failures[0].check(RuntimeError)


def test_no_relay_no_mail(switch):
    switch.ctx.config.smtp = SmtpConfig(domain="sms.example.com", relay_port=0)
    failures = []
    mail.receipt_mailer(switch.ctx)(SENDER, callback()).addErrback(failures.append)
    assert failures[0].check(mail.NoRelay)


# -- smsc account email ------------------------------------------------------------------------


def test_cli_email_commands(engine, db_url, tmp_path, fast_scrypt):
    config = tmp_path / "smsc.toml"
    config.write_text(f'[store]\nurl = "{db_url}"\n')
    with writing(engine) as conn:
        accounts.add(conn, "acme", "pw", NOW)

    def run(*args):
        return CliRunner().invoke(main, ["--config", str(config), "account", "email", *args])

    added = run("add", "acme", "Ops@ACME.example", "--reports")
    assert added.exit_code == 0, added.output
    assert "ops@acme.example sends SMS for acme (results mailed back)" in added.output
    assert run("add", "acme", "not-an-address").exit_code == 1
    assert run("add", "nobody", "x@y.example").exit_code == 1
    listed = run("list", "acme", "--json")
    assert '"address": "ops@acme.example"' in listed.output and '"reports": true' in listed.output
    assert run("add", "acme", "ops@acme.example", "--no-reports").exit_code == 0
    assert '"reports": false' in run("list", "--json").output
    assert run("remove", "OPS@acme.example").exit_code == 0
    assert run("list", "--json").output.strip() == "[]"
    gone = run("remove", "ops@acme.example")
    assert gone.exit_code == 1 and "not a registered email sender" in gone.output
