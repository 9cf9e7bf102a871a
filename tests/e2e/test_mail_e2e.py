"""Email to SMS end to end: the real `smsc serve` with `[smtp]` on a free port and a simulated
carrier; Python's smtplib as the mail client; a capture SMTP server of this test as the relay
the results are mailed through. A registered sender's mail to two numbers reaches the carrier
as two SMS, and its results come back by mail: the acceptance report, then a receipt for each
number (DELIVERED, with its message id). An unregistered sender is refused at MAIL FROM.
"""

import email
import smtplib
import socketserver
from email import policy
from email.message import EmailMessage

import pytest
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
