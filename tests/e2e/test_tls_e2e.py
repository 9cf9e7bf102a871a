"""SMPP over TLS end to end: the real `smsc serve` with `[smpp] tls_port` beside its plain
port, and simulated carriers inside it that listen with TLS. An `smpplib` client binds and
submits over TLS and gets its receipt back over TLS, the message having gone to the carrier
over TLS; a client that does not trust our CA fails the handshake; the switch binds to the
carrier whose certificate verifies, refuses the one signed by another CA (and logs why), and
binds to that one too where `tls_verify = false`. A certificate file that cannot be read
stops `smsc serve` in one line, and leaves the admin commands working.

Certificates are made in the test (tests/certs.py); numbers are fictional (336000000xx)."""

import re
import socket
import ssl
import time

import pytest
import smpplib.client
import smpplib.smpp
from certs import CA
from conftest import close_clients
from test_replies import eventually

pytestmark = pytest.mark.e2e

ROK = 0x00
SOURCE = "36180"
ACCOUNT, PASSWORD = "tls", "tlspw"
_TLS_LISTENING = re.compile(r"SMPP over TLS listening on ([0-9.]+):(\d+)")


class Named:
    """smpplib wraps its socket with `ssl_context.wrap_socket(sock)`: this adds the host name
    the server's certificate is checked against."""

    def __init__(self, context: ssl.SSLContext, hostname: str):
        self.context, self.hostname = context, hostname

    def wrap_socket(self, sock):
        return self.context.wrap_socket(sock, server_hostname=self.hostname)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    directory = tmp_path_factory.mktemp("pki")
    ca, stranger = CA("smsc e2e CA"), CA("someone else's CA")
    return {
        "dir": directory,
        "ca": ca.write(directory),
        "smsc": ca.issue(directory, "smsc", "localhost", "127.0.0.1"),
        "carrier": ca.issue(directory, "carrier", "127.0.0.1"),
        "stranger": stranger.issue(directory, "stranger", "127.0.0.1"),
    }


@pytest.fixture(scope="module")
def server(smsc_factory, free_ports, pki):
    ports = free_ports(6)

    def carrier(name: str, i: int, cert: tuple[str, str], **keys) -> dict:
        return {
            "name": name, "host": "127.0.0.1", "port": ports[2 * i], "simulate": True,
            "tls": True, **keys,
            "simulator": {"tls_cert": cert[0], "tls_key": cert[1], "dlr_delay": 0.1,
                          "control_port": ports[2 * i + 1]},
        }  # fmt: skip

    cert, key = pki["smsc"]
    server = smsc_factory(
        smpp={"tls_port": 0, "tls_cert": cert, "tls_key": key},
        config={
            "accounts": [{"system_id": ACCOUNT, "password": PASSWORD}],
            "carriers": [
                carrier("orange", 0, pki["carrier"], tls_ca=pki["ca"], prefixes=["3360000"]),
                carrier("rogue", 1, pki["stranger"], tls_ca=pki["ca"]),
                carrier("lab", 2, pki["stranger"], tls_verify=False),
            ],
        },
    )
    (host, port), *_ = _TLS_LISTENING.findall(server.log())
    server.tls_address = (host, int(port))
    server.controls = {"orange": ports[1], "rogue": ports[3], "lab": ports[5]}
    return server


@pytest.fixture
def tls_client(server, pki):
    """`connect(context) -> smpplib Client` on the TLS port, connected (the handshake done);
    all closed after the test."""
    clients = []

    def connect(context: ssl.SSLContext | None = None):
        if context is None:
            context = ssl.create_default_context(cafile=pki["ca"])
        client = smpplib.client.Client(
            *server.tls_address, timeout=5, ssl_context=Named(context, "localhost"),
            allow_unknown_opt_params=True,
        )  # fmt: skip
        clients.append(client)
        client.connect()
        return client

    yield connect
    close_clients(clients)


def _read(client, command: str, timeout: float = 10.0):
    """The next PDU of `command`, answering enquire_links on the way."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        client._socket.settimeout(left)
        pdu = client.read_pdu()
        if pdu.command == "enquire_link":
            resp = smpplib.smpp.make_pdu("enquire_link_resp", client=client)
            resp.sequence = pdu.sequence
            client.send_pdu(resp)
        elif pdu.command == command:
            return pdu
        else:
            raise AssertionError(f"{command} expected, got {pdu.command}")
    raise AssertionError(f"no {command} within {timeout} s")


def test_submit_over_tls_gets_its_response_and_its_receipt(server, tls_client, sim_control):
    client = tls_client()
    assert isinstance(client._socket, ssl.SSLSocket) and client._socket.version() in (
        "TLSv1.2", "TLSv1.3",
    )  # fmt: skip
    assert client.bind_transceiver(system_id=ACCOUNT, password=PASSWORD).status == ROK
    request = client.send_message(
        source_addr_ton=1, source_addr_npi=1, source_addr=SOURCE, dest_addr_ton=1,
        dest_addr_npi=1, destination_addr="33600000001", short_message=b"over TLS",
        registered_delivery=1,
    )  # fmt: skip
    resp = _read(client, "submit_sm_resp")
    assert (resp.sequence, resp.status) == (request.sequence, ROK)
    message_id = resp.message_id.decode()
    assert message_id
    # The carrier listens only with TLS: what it received came over TLS.
    orange = sim_control(server.controls["orange"])
    received = eventually(orange.received, "the message at the carrier")
    assert [r["destination"] for r in received] == ["33600000001"]
    receipt = _read(client, "deliver_sm")
    assert receipt.receipted_message_id.decode() == message_id
    assert b"stat:DELIVRD" in receipt.short_message


def test_a_client_that_does_not_trust_our_ca_fails_the_handshake(server, tls_client):
    untrusting = ssl.create_default_context()  # the system's CAs: ours is not among them
    with (
        socket.create_connection(server.tls_address, timeout=5) as sock,
        pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"),
    ):
        untrusting.wrap_socket(sock, server_hostname="localhost")
    # The listener carries on for the others.
    assert tls_client().bind_transmitter(system_id=ACCOUNT, password=PASSWORD).status == ROK


def test_the_plain_port_serves_beside_the_tls_one(server, smpplib_client):
    client = smpplib_client(server)
    assert server.address[1] != server.tls_address[1]
    assert client.bind_transmitter(system_id=ACCOUNT, password=PASSWORD).status == ROK


def test_carriers_over_tls_are_bound_only_when_their_certificate_verifies(server, sim_control):
    def transceivers(name: str) -> int:
        return sim_control(server.controls[name]).stats()["binds"]["transceiver"]

    eventually(lambda: transceivers("orange") == 1, "orange bound")
    eventually(lambda: transceivers("lab") == 1, "lab (tls_verify = false) bound")
    port = server.config["carriers"][1]["port"]
    refused = f"carrier rogue: TLS with 127.0.0.1:{port} failed: certificate verify failed"
    eventually(lambda: refused in server.log(), "the refusal of rogue's certificate in the log")
    assert transceivers("rogue") == 0
    assert sim_control(server.controls["rogue"]).stats()["max_binds"] == 0


def test_an_unreadable_certificate_stops_serve_in_one_line(smsc_factory, pki):
    missing = str(pki["dir"] / "missing.pem")
    cert, key = pki["smsc"]
    server = smsc_factory(smpp={"tls_port": 0, "tls_cert": missing, "tls_key": key}, start=False)
    # `db upgrade` ran (smsc_factory): the admin commands do not read the TLS files.
    result = server.cli("serve", check=False, timeout=30)
    assert result.returncode == 1
    message = f"Error: smpp.tls_cert: cannot read {missing}: No such file or directory"
    assert result.stderr.strip().splitlines()[-1] == message
    assert "Traceback" not in result.stderr
