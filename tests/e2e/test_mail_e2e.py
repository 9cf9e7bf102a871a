"""Email to SMS end to end: the real `smsc serve` with `[smtp]` on a free port and a simulated
carrier; Python's smtplib as the mail client; a capture SMTP server of this test as the relay
the results are mailed through. A registered sender's mail to two numbers reaches the carrier
as two SMS, and its results come back by mail: the acceptance report, then a receipt for each
number (DELIVERED, with its message id). An unregistered sender is refused at MAIL FROM.
"""

import email
import smtplib
import socket
import socketserver
import ssl
from email import policy
from email.message import EmailMessage

import pytest
from certs import CA
from conftest import serving
from test_replies import eventually

pytestmark = pytest.mark.e2e

DOMAIN = "sms.example.com"
SENDER = "ann@acme.example"
N1, N2 = "33600000001", "33600000002"


class _Session(socketserver.StreamRequestHandler):
    """Just enough SMTP to take mails: every command answered 250, DATA kept."""

    def reply(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self) -> None:
        self.reply("220 capture ESMTP")
        while line := self.rfile.readline():
            command = line.strip().upper()
            if command == b"DATA":
                self.reply("354 go on")
                data = []
                while (line := self.rfile.readline()) not in (b".\r\n", b""):
                    data.append(line[1:] if line.startswith(b"..") else line)
                self.server.mails.append(
                    email.message_from_bytes(b"".join(data), policy=policy.default)
                )
                self.reply("250 kept")
            elif command == b"QUIT":
                return self.reply("221 bye")
            else:
                self.reply("250 ok")


class Capture(socketserver.ThreadingTCPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Session)
        self.mails: list[EmailMessage] = []

    def about(self, word: str) -> list[EmailMessage]:
        return [m for m in self.mails if word in str(m["Subject"])]


@pytest.fixture(scope="module")
def capture():
    with serving(Capture()) as server:
        yield server


@pytest.fixture(scope="module")
def server(smsc_factory, free_ports, sim_control, capture):
    port, control_port = free_ports(2)
    carrier = {"name": "alpha", "port": port, "prefixes": ["33600"], "simulate": True,
               "simulator": {"dlr_delay": 0.1, "control_port": control_port}}  # fmt: skip
    smtp = {"port": 0, "domain": DOMAIN, "relay_port": capture.server_address[1]}
    switch = smsc_factory(config={"carriers": [carrier], "smtp": smtp}, start=False)
    switch.cli("account", "add", "acme", "--password", "acmepw", "--sender", "ACME")
    switch.cli("account", "email", "add", "acme", SENDER, "--reports")
    switch.start()
    switch.carrier = sim_control(control_port)
    return switch


def smtp_client(server) -> smtplib.SMTP:
    client = smtplib.SMTP(*server.listening("SMTP"), timeout=10)
    client.ehlo("client.example")
    return client


def test_mail_to_two_numbers_is_sent_and_reported(server, capture):
    mail = EmailMessage()
    mail["From"] = SENDER
    mail["To"] = f"{N1}@{DOMAIN}, +33 6 00 00 00 02 <{N2}@{DOMAIN}>"
    mail["Subject"] = "Parcel"
    mail.set_content("Votre colis est arrivé.\n\n-- \nAnn, ACME\n")
    with smtp_client(server) as client:
        client.send_message(mail)  # raises unless every recipient and the data are taken
    # the two SMS reach the carrier, from the account's only sender, without the signature
    eventually(lambda: len(server.carrier.received()) == 2, "both SMS at the carrier")
    got = server.carrier.received()
    assert sorted(r["destination"] for r in got) == [N1, N2]
    assert {(r["source"], r["text"]) for r in got} == {("ACME", "Votre colis est arrivé.")}
    ids = dict(server.query("SELECT destination, id FROM messages"))
    # the acceptance report, then one receipt per number, mailed to the sender
    (report,) = eventually(lambda: capture.about("accepted"), "the acceptance report")
    assert report["To"] == SENDER and report["From"] == f"smsc@{DOMAIN}"
    assert report["Subject"] == "SMS: 2 of 2 accepted"
    assert report.get_content().splitlines() == [
        f"+{N1}: message {ids[N1]}",
        f"+{N2}: message {ids[N2]}",
    ]
    for number in (N1, N2):
        (receipt,) = eventually(lambda n=number: capture.about(f"SMS {ids[n]}:"), "a receipt")
        assert receipt["Subject"] == f"SMS {ids[number]}: DELIVERED"
        assert receipt.get_content().startswith(f"message {ids[number]} to +{number}: DELIVERED")


def test_unregistered_sender_refused_at_mail_from(server):
    with smtp_client(server) as client:
        code, text = client.mail("eve@evil.example")
        assert code == 550 and b"5.7.1" in text and b"not registered to send SMS" in text
        client.rset()
        assert client.mail(SENDER)[0] == 250
        code, text = client.rcpt(f"{N1}@elsewhere.example")
        assert code == 550 and b"5.1.2" in text


# -- STARTTLS ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_server(smsc_factory, free_ports, sim_control, tmp_path_factory):
    """`[smtp]` offering STARTTLS, and requiring it before MAIL FROM (no results mailed)."""
    directory = tmp_path_factory.mktemp("pki")
    ca = CA("smsc mail CA")
    cert, key = ca.issue(directory, "smtp", "localhost", "127.0.0.1")
    port, control_port = free_ports(2)
    carrier = {"name": "alpha", "port": port, "prefixes": ["33600"], "simulate": True,
               "simulator": {"dlr_delay": 0.1, "control_port": control_port}}  # fmt: skip
    smtp = {"port": 0, "domain": DOMAIN, "relay_port": 0,
            "tls_cert": cert, "tls_key": key, "tls_required": True}  # fmt: skip
    switch = smsc_factory(config={"carriers": [carrier], "smtp": smtp}, start=False)
    switch.cli("account", "add", "acme", "--password", "acmepw", "--sender", "ACME")
    switch.cli("account", "email", "add", "acme", SENDER, "--no-reports")
    switch.start()
    switch.carrier = sim_control(control_port)
    switch.trust = ssl.create_default_context(cafile=ca.write(directory))
    return switch


def test_starttls_is_required_and_then_a_mail_is_sent(tls_server):
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = SENDER, f"{N1}@{DOMAIN}", "over TLS"
    mail.set_content("Votre code : 4242")
    with smtp_client(tls_server) as client:
        assert client.has_extn("starttls")
        code, text = client.mail(SENDER)
        assert code == 530 and b"STARTTLS" in text  # nothing taken in clear
        client.rset()
        assert client.starttls(context=tls_server.trust)[0] == 220  # checked for 127.0.0.1
        client.ehlo("client.example")
        assert not client.has_extn("starttls")
        client.send_message(mail)
    eventually(lambda: tls_server.carrier.received(), "the SMS at the carrier")
    assert [r["text"] for r in tls_server.carrier.received()] == ["Votre code : 4242"]


def test_commands_sent_in_clear_behind_starttls_are_dropped(tls_server):
    """A man in the middle's injection (CVE-2011-0411's kind): MAIL FROM written behind
    STARTTLS in the same packet must not count as said over TLS."""
    host, port = tls_server.listening("SMTP")
    with socket.create_connection((host, port), timeout=10) as raw:
        lines = raw.makefile("rb")
        assert lines.readline().startswith(b"220")
        raw.sendall(b"EHLO client.example\r\n")
        while not lines.readline().startswith(b"250 "):
            pass
        raw.sendall(f"STARTTLS\r\nMAIL FROM:<{SENDER}>\r\n".encode())
        assert lines.readline().startswith(b"220")
        with tls_server.trust.wrap_socket(raw, server_hostname="localhost") as tls:
            secure = tls.makefile("rb")
            tls.sendall(b"EHLO client.example\r\n")
            while not (line := secure.readline()).startswith(b"250 "):
                assert line.startswith(b"250-"), line
            tls.sendall(f"RCPT TO:<{N2}@{DOMAIN}>\r\n".encode())
            assert secure.readline().startswith(b"503")  # no sender: the injected MAIL is gone


def test_connections_over_the_cap_are_told_to_come_back_later(smsc_factory):
    """[limits]' caps hold for SMTP too, counted apart from the SMPP clients'."""
    smtp = {"port": 0, "domain": DOMAIN, "relay_port": 0}
    server = smsc_factory(config={"smtp": smtp, "limits": {"max_connections_per_address": 2}})
    first, second = smtp_client(server), smtp_client(server)
    with pytest.raises(smtplib.SMTPConnectError) as refused:
        smtp_client(server)
    assert refused.value.smtp_code == 421 and b"4.7.0" in refused.value.smtp_error
    first.quit()
    eventually(lambda: _connects(server), "a connection once one was closed")
    second.quit()


def _connects(server) -> bool:
    try:
        smtp_client(server).quit()
    except smtplib.SMTPConnectError:
        return False
    return True
