"""Bad input hurts no one else: while client A keeps submitting (smpplib, in a thread) and must
get every answer, client B sends garbage, truncated PDUs, absurd lengths, and more PDUs than
its window without reading. Each B is answered or disconnected; A never misses an answer; a
fresh client is served afterwards.
"""

import select
import socket
import struct
import threading
import time

import pytest
import smpplib.smpp

pytestmark = pytest.mark.e2e

WINDOW = 10
ALICE = ("alice", "alicepw")
MALLORY = ("mallory", "mallorpw")
GENERIC_NACK = 0x80000000
SUBMIT_SM = 0x04
SUBMIT_SM_RESP = 0x80000004
ENQUIRE_LINK = 0x15
ENQUIRE_LINK_RESP = 0x80000015
ROK, RINVCMDLEN, RINVCMDID, RTHROTTLED = 0x00, 0x02, 0x03, 0x58


@pytest.fixture(scope="module")
def server(smsc_factory):
    return smsc_factory(
        smpp={
            "window": WINDOW,
            "session_init_timer": 2,  # no bind within 2 s: closed
            "enquire_link_timer": 3,  # 3 s of silence: we ask; 1 s without an answer: closed
            "response_timer": 1,
            "inactivity_timer": 10,
        },
        config={
            "accounts": [
                {"system_id": ALICE[0], "password": ALICE[1]},
                {"system_id": MALLORY[0], "password": MALLORY[1]},
            ]
        },
    )


class SteadyClient(threading.Thread):
    """Client A: rounds of `burst` pipelined submit_sm, each answered, in order, in time."""

    def __init__(self, client, burst: int = 5):
        super().__init__(daemon=True)
        self.client = client
        self.burst = burst
        self.stop = threading.Event()
        self.rounds = 0
        self.answers = 0
        self.sent = 0
        self.slowest = 0.0
        self.error: BaseException | None = None
        self.progress = threading.Condition()

    def run(self) -> None:
        n = 0
        try:
            while not self.stop.is_set():
                start = time.monotonic()
                sequences = []
                for _ in range(self.burst):
                    n += 1
                    request = self.client.send_message(
                        source_addr_ton=1,
                        source_addr_npi=1,
                        source_addr="36180",
                        dest_addr_ton=1,
                        dest_addr_npi=1,
                        destination_addr=f"336000{n % 1000:05d}",
                        short_message=f"steady {n}".encode(),
                    )
                    sequences.append(request.sequence)
                    self.sent += 1
                for sequence in sequences:
                    resp = self._answer()
                    assert resp.command == "submit_sm_resp", resp.command
                    assert resp.sequence == sequence, (resp.sequence, sequence)
                    assert resp.status == ROK, hex(resp.status)
                    assert resp.message_id
                    self.answers += 1
                self.slowest = max(self.slowest, time.monotonic() - start)
                with self.progress:
                    self.rounds += 1
                    self.progress.notify_all()
        except BaseException as e:  # reported by the test
            self.error = e
            with self.progress:
                self.progress.notify_all()

    def _answer(self):
        while True:
            pdu = self.client.read_pdu()
            if pdu.command != "enquire_link":
                return pdu
            resp = smpplib.smpp.make_pdu("enquire_link_resp", client=self.client)
            resp.sequence = pdu.sequence
            self.client.send_pdu(resp)

    def wait_rounds(self, more: int, timeout: float = 5.0) -> None:
        """Wait until A has done `more` rounds beyond now (it carries on)."""
        with self.progress:
            target = self.rounds + more
            ok = self.progress.wait_for(
                lambda: self.rounds >= target or self.error is not None, timeout
            )
        assert self.error is None, f"client A failed: {self.error!r}"
        assert ok, f"client A made no progress in {timeout} s (round {self.rounds})"


@pytest.fixture
def steady(server, smpplib_client):
    client = smpplib_client(server)
    client.bind_transceiver(system_id=ALICE[0], password=ALICE[1])
    a = SteadyClient(client)
    a.start()
    a.wait_rounds(3)
    yield a
    a.stop.set()
    a.join(10)
    assert a.error is None, f"client A failed: {a.error!r}"


def test_bad_clients_do_not_disturb_a_good_one(server, steady, raw_client, smpplib_client):
    frame = raw_client.frame

    # Started first, checked last: they rely on the server's timers.
    truncated_open = raw_client(server)
    truncated_open.send(struct.pack(">IIII", 200, SUBMIT_SM, 0, 1) + b"\0" * 24)
    truncated_bound = raw_client(server)
    assert truncated_bound.bind("transmitter", *MALLORY).status == ROK
    whole = frame(SUBMIT_SM, 2, truncated_bound.submit_sm_body("33600000100"))
    truncated_bound.send(whole[: len(whole) // 2])
    plausible_garbage = raw_client(server)
    plausible_garbage.send(struct.pack(">IIII", 40, 0x0BADBEEF, 0, 9) + b"\xa5" * 24)
    started = time.monotonic()

    # Garbage whose first four octets make an absurd command_length: answered, then hung up.
    for garbage in (b"GET / HTTP/1.1\r\nHost: smsc\r\n\r\n", b"\xde\xad\xbe\xef" * 64):
        b = raw_client(server)
        b.send(garbage)
        closed, frames = b.closed_within(5)
        assert [(f.command_id, f.status) for f in frames] == [(GENERIC_NACK, RINVCMDLEN)]
        assert closed
        steady.wait_rounds(2)

    # Huge command_length, before and after a bind.
    for length in (0xFFFFFFFF, 0x7FFFFFFF, 65537):
        b = raw_client(server)
        if length == 0x7FFFFFFF:
            assert b.bind("transceiver", *MALLORY).status == ROK
        b.send(struct.pack(">IIII", length, SUBMIT_SM, 0, 77) + b"\0" * 100)
        closed, frames = b.closed_within(5)
        assert [(f.command_id, f.status, f.sequence) for f in frames] == [
            (GENERIC_NACK, RINVCMDLEN, 77)
        ]
        assert closed
        steady.wait_rounds(2)

    # Ten times the window of submit_sm, not reading for a while: every one is answered,
    # accepted or throttled.
    b = raw_client(server)
    assert b.bind("transceiver", *MALLORY).status == ROK
    count = 10 * WINDOW
    first = b._seq + 1
    body = b.submit_sm_body("33600000101")
    b.send(b"".join(frame(SUBMIT_SM, b.next_seq(), body) for _ in range(count)))
    steady.wait_rounds(3)
    answers = [b.read() for _ in range(count)]
    assert sorted(a.sequence for a in answers) == list(range(first, first + count))
    assert {a.command_id for a in answers} == {SUBMIT_SM_RESP}
    statuses = [a.status for a in answers]
    assert set(statuses) <= {ROK, RTHROTTLED}
    assert statuses.count(ROK) >= WINDOW
    assert statuses.count(RTHROTTLED) >= 1
    assert b.call(SUBMIT_SM, b.submit_sm_body("33600000101")).status == ROK  # still served

    # The plausible garbage got its generic_nack and kept its (unbound) session.
    answer = plausible_garbage.read(2)
    assert (answer.command_id, answer.status, answer.sequence) == (GENERIC_NACK, RINVCMDID, 9)

    # The truncated PDUs: nothing to answer, so the timers hang up on them.
    for client, limit in ((truncated_open, 2 + 3), (truncated_bound, 3 + 1 + 3)):
        closed, frames = client.closed_within(max(0.5, started + limit - time.monotonic()))
        assert closed, "a client that stopped inside a PDU was never disconnected"
        assert {f.command_id for f in frames} <= {ENQUIRE_LINK}
    closed, frames = plausible_garbage.closed_within(max(0.5, started + 5 - time.monotonic()))
    assert closed and not frames

    steady.wait_rounds(2)
    assert steady.slowest < 3.0, f"client A waited {steady.slowest:.2f} s for a round"

    # A fresh client is served.
    fresh = smpplib_client(server)
    fresh.bind_transmitter(system_id=MALLORY[0], password=MALLORY[1])
    request = fresh.send_message(
        source_addr_ton=1,
        source_addr_npi=1,
        source_addr="36180",
        dest_addr_ton=1,
        dest_addr_npi=1,
        destination_addr="33600000102",
        short_message=b"fresh",
    )
    resp = fresh.read_pdu()
    assert (resp.command, resp.status, resp.sequence) == (
        "submit_sm_resp",
        ROK,
        request.sequence,
    )
    message_id = resp.message_id.decode()
    assert server.query("SELECT destination, body FROM messages WHERE id = ?", (int(message_id),))
    assert fresh.unbind().status == ROK


def test_a_client_that_never_reads_is_held_back_not_buffered(server, steady, raw_client):
    """Requests sent without reading a single answer: the server stops reading that client
    once its answers pile up, so the client's sends block instead of the server's memory
    growing; when it reads again, everything is answered."""
    b = raw_client(server)
    b.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32768)
    b.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 32768)
    assert b.bind("transceiver", *MALLORY).status == ROK
    rss_before = _rss_kib(server)
    chunk = b"".join(struct.pack(">IIII", 16, ENQUIRE_LINK, 0, i + 1) for i in range(4096))
    limit = 32 * 1024 * 1024
    sent = 0
    blocked = False
    b.sock.setblocking(False)
    while sent < limit:
        if not select.select([], [b.sock], [], 0.5)[1]:
            blocked = True  # nothing could be sent for half a second
            break
        try:
            sent += b.sock.send(chunk[sent % len(chunk) :])
        except BlockingIOError:
            continue
    grown = _rss_kib(server) - rss_before
    steady.wait_rounds(2)
    assert blocked, f"{sent / 2**20:.0f} MiB sent and the server still reads (RSS +{grown} KiB)"
    assert grown < 16 * 1024, f"server RSS grew by {grown} KiB"

    # Reading again: the answers flow, and the server reads the rest (the end of the PDU
    # the client was stopped in goes out from another thread meanwhile).
    b.sock.setblocking(True)
    tail = chunk[sent % len(chunk) :][: -sent % 16]
    sender = threading.Thread(target=b.sock.sendall, args=(tail,), daemon=True)
    sender.start()
    expected = -(-sent // 16)
    for answered in range(expected):
        f = b.read(5.0)
        assert f is not None, f"closed after {answered} answers of {expected}"
        assert (f.command_id, f.status) == (ENQUIRE_LINK_RESP, ROK)
    sender.join(5)
    assert b.call(SUBMIT_SM, b.submit_sm_body("33600000103")).status == ROK
    steady.wait_rounds(2)


def _rss_kib(server) -> int:
    with open(f"/proc/{server.proc.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")
