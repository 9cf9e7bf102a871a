"""Abuse and limits end to end: the real `smsc serve` with small `[limits]` values, driven by
`smpplib` and by PDUs written and read by hand on raw sockets, over loopback only.

- A system_id that fails its binds is locked out: ESME_RBINDFAIL even with the right password,
  `smsc lockout list` shows it, the metrics count it; another system_id from the same address
  still binds; `smsc lockout lift` lets it in again within seconds.
- An account restricted to 10.0.0.0/8 is refused from 127.0.0.1, and binds once 127.0.0.0/8
  is one of its networks.
- Connection caps (per address, in all): the connection over the cap is closed at once and
  counted, the first ones go on working, and a closed one frees its place.
- The PDU size cap and the unbound idle time cap (`[smpp] max_pdu_size`, `session_init_timer`).
"""

import json
import re
import socket
import struct
import time

import pytest
import smpplib.client
import smpplib.exceptions
from smpplib.exceptions import PDUError
from test_metrics_e2e import scrape, value

pytestmark = pytest.mark.e2e

ROK = 0x00
RINVCMDLEN = 0x02
RBINDFAIL = 0x0D
RINVPASWD = 0x0E
GENERIC_NACK = 0x80000000
ENQUIRE_LINK = 0x15
LOCKED, LOCKED_PW = "locked1", "lockpw"
NEIGHBOUR, NEIGHBOUR_PW = "neighbour", "neighpw"  # another client behind the same address
WALLED, WALLED_PW = "walled", "walledpw"
PER_ID = 3
_METRICS = re.compile(r"metrics listening on ([0-9.]+):(\d+)")


def eventually(predicate, timeout: float, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        found = predicate()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(interval)


def metrics(server) -> dict:
    """The server's /metrics (its port read from its log)."""
    match = _METRICS.search(server.log())
    server.metrics_host, server.metrics_port = match.group(1), int(match.group(2))
    return scrape(server)


@pytest.fixture(scope="module")
def server(smsc_factory, smsc_account):
    return smsc_factory(
        config={
            "limits": {
                "bind_failures_per_id": PER_ID,
                "bind_failures_per_address": 30,
                "lockout": 600,  # longer than the test: only a lift ends it
                "bind_delay": 0.05,
                "bind_delay_max": 0.2,
            },
            "metrics": {"host": "127.0.0.1", "port": 0},
        },
        accounts=[
            smsc_account(LOCKED, LOCKED_PW),
            smsc_account(NEIGHBOUR, NEIGHBOUR_PW),
            smsc_account(WALLED, WALLED_PW),
        ],
    )


def bind_status(smpplib_client, server, system_id: str, password: str) -> int:
    """Bind a transceiver with smpplib; its bind_resp status (the client is left bound on ROK,
    closed by the fixture)."""
    client = smpplib_client(server)
    try:
        client.bind_transceiver(system_id=system_id, password=password)
    except PDUError as e:
        client.disconnect()
        return e.args[1]
    return ROK


def test_lockout_after_failed_binds_then_lifted(server, smpplib_client):
    for _ in range(PER_ID):
        assert bind_status(smpplib_client, server, LOCKED, "wrong") == RINVPASWD
    # Locked out: the right password is refused, at once.
    started = time.monotonic()
    assert bind_status(smpplib_client, server, LOCKED, LOCKED_PW) == RBINDFAIL
    assert time.monotonic() - started < 1.0
    listed = json.loads(server.cli("lockout", "list", "--json").stdout)
    assert [(r["kind"], r["target"], r["failures"]) for r in listed] == [
        ("account", LOCKED, PER_ID)
    ]
    assert 500 < listed[0]["remaining"] <= 600
    # Another client from the same address (127.0.0.1) is not affected.
    assert bind_status(smpplib_client, server, NEIGHBOUR, NEIGHBOUR_PW) == ROK
    samples = metrics(server)
    assert value(samples, "smsc_bind_failures_total", reason="password") == PER_ID
    assert value(samples, "smsc_bind_failures_total", reason="account_locked") == 1
    assert value(samples, "smsc_lockouts", kind="account") == 1
    assert value(samples, "smsc_lockouts", kind="address") == 0
    assert value(samples, "smsc_account_locked", account=LOCKED) == 1
    # The admin lifts it: the running server lets it in within seconds.
    lifted = server.cli("lockout", "lift", "--account", LOCKED)
    assert lifted.stdout == f"lockout of account {LOCKED} lifted\n"
    assert json.loads(server.cli("lockout", "list", "--json").stdout) == []
    assert eventually(lambda: bind_status(smpplib_client, server, LOCKED, LOCKED_PW) == ROK, 10)
    assert value(metrics(server), "smsc_lockouts", kind="account") == 0
    # A lift of nothing is an error.
    again = server.cli("lockout", "lift", "--account", LOCKED, check=False)
    assert again.returncode != 0 and "no lockout of account" in again.stderr


def test_an_account_binds_only_from_its_networks(server, smpplib_client):
    assert bind_status(smpplib_client, server, WALLED, WALLED_PW) == ROK  # no networks: anywhere
    server.cli("account", "set", WALLED, "--allow-network", "10.0.0.0/8")
    shown = json.loads(server.cli("account", "show", WALLED, "--json").stdout)
    assert shown["networks"] == ["10.0.0.0/8"]
    assert bind_status(smpplib_client, server, WALLED, WALLED_PW) == RBINDFAIL  # from 127.0.0.1
    server.cli("account", "set", WALLED, "--allow-network", "127.0.0.0/8")
    assert bind_status(smpplib_client, server, WALLED, WALLED_PW) == ROK
    server.cli("account", "set", WALLED, "--remove-network", "127.0.0.0/8")
    assert bind_status(smpplib_client, server, WALLED, WALLED_PW) == RBINDFAIL
    assert "(network)" in server.log()  # the refusal says why in the log
    assert value(metrics(server), "smsc_bind_failures_total", reason="network") == 2


# -- connection caps, PDU size, idle time --------------------------------------------------------

CAP = 3


@pytest.fixture(scope="module")
def capped(smsc_factory, smsc_account):
    return smsc_factory(
        smpp={"max_pdu_size": 1024, "session_init_timer": 1.0},
        config={
            "limits": {"max_connections_per_address": CAP, "max_connections": CAP + 2},
            "metrics": {"host": "127.0.0.1", "port": 0},
        },
        accounts=[smsc_account("capped", "cappedpw")],
    )


class Raw:
    """An SMPP connection by hand, from a chosen loopback address."""

    def __init__(self, server, source: str = "127.0.0.1"):
        self.seq = 0
        try:
            self.sock = socket.create_connection(server.address, 5, source_address=(source, 0))
        except ConnectionResetError:  # refused so fast that connect() itself heard it
            self.sock = None

    def send(self, command_id: int, body: bytes = b"", length: int | None = None) -> int:
        self.seq += 1
        size = 16 + len(body) if length is None else length
        self.sock.sendall(struct.pack(">IIII", size, command_id, 0, self.seq) + body)
        return self.seq

    def read(self, timeout: float = 5.0) -> tuple[int, int, int] | None:
        """(command_id, status, sequence) of the next PDU; None when the server closed."""
        if self.sock is None:
            return None
        self.sock.settimeout(timeout)
        header = b""
        try:
            while len(header) < 16:
                chunk = self.sock.recv(16 - len(header))
                if not chunk:
                    return None
                header += chunk
        except ConnectionResetError:
            return None
        length, command_id, status, sequence = struct.unpack(">IIII", header)
        left = length - 16
        while left:
            left -= len(self.sock.recv(left))
        return command_id, status, sequence

    def bind(self, system_id: str = "capped", password: str = "cappedpw") -> int:
        body = system_id.encode() + b"\0" + password.encode() + b"\0\0" + b"\x34\0\0\0"
        seq = self.send(0x09, body)
        answer = self.read()
        assert answer is not None and answer[0] == 0x80000009 and answer[2] == seq, answer
        return answer[1]

    def alive(self) -> bool:
        seq = self.send(ENQUIRE_LINK)
        return self.read() == (0x80000015, ROK, seq)

    def closed_at_once(self) -> bool:
        return self.read(timeout=2.0) is None

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()


@pytest.fixture
def raw(capped):
    opened: list[Raw] = []

    def connect(source: str = "127.0.0.1") -> Raw:
        conn = Raw(capped, source)
        opened.append(conn)
        return conn

    yield connect
    for conn in opened:
        conn.close()
    # The server has counted them out before the next test opens its own.
    eventually(lambda: value(metrics(capped), "smsc_client_connections") == 0, 5)


def test_connections_over_the_per_address_cap(capped, raw):
    first = [raw() for _ in range(CAP)]
    for conn in first:
        assert conn.bind() == ROK
    over = raw()
    assert over.closed_at_once()
    for conn in first:  # untouched
        assert conn.alive()
    other = raw("127.0.0.2")  # another address has its own count
    assert other.bind() == ROK and other.alive()
    assert value(metrics(capped), "smsc_connections_refused_total", cap="address") == 1
    first[0].close()  # a place is freed once the server sees the close
    assert eventually(_binds(raw), 5)
    assert "connections from one address already open" in capped.log()


def _binds(raw):
    def attempt() -> bool:
        conn = raw()
        try:
            return conn.bind() == ROK
        except (AssertionError, OSError):
            return False

    return attempt


def test_connections_over_the_total_cap(capped, raw):
    conns = [raw(f"127.0.0.{i}") for i in range(10, 10 + CAP + 2)]
    for conn in conns:
        assert conn.bind() == ROK
    over = raw("127.0.0.99")
    assert over.closed_at_once()
    assert all(conn.alive() for conn in conns)
    assert value(metrics(capped), "smsc_connections_refused_total", cap="total") == 1


def test_pdu_over_max_pdu_size_is_refused_and_the_connection_closed(capped, raw):
    bystander = raw()
    assert bystander.bind() == ROK
    big = raw()
    assert big.bind() == ROK
    seq = big.send(0x04, b"\0" * 20, length=2000)  # says 2000 octets: over the 1024 cap
    assert big.read() == (GENERIC_NACK, RINVCMDLEN, seq)
    assert big.read() is None  # then closed
    assert bystander.alive()


def test_unbound_connection_closed_after_session_init_timer(capped, raw):
    started = time.monotonic()
    idle = raw()
    assert idle.read(timeout=5.0) is None  # closed by the server, having said nothing
    assert 0.8 <= time.monotonic() - started < 4.0
    bound = raw()
    assert bound.bind() == ROK
    time.sleep(1.5)
    assert bound.alive()  # a bound session is not cut by that timer


def test_smpplib_sees_a_refused_connection(capped, raw):
    held = [raw() for _ in range(CAP)]
    for conn in held:
        assert conn.bind() == ROK
    client = smpplib.client.Client(*capped.address, timeout=2, allow_unknown_opt_params=True)
    try:  # the server hangs up at once: smpplib hears it at connect or at its first PDU (a
        # timeout would be socket.timeout, not this)
        with pytest.raises(smpplib.exceptions.ConnectionError):
            client.connect()
            client.bind_transceiver(system_id="capped", password="cappedpw")
    finally:
        if client._socket is not None:
            client._socket.close()
