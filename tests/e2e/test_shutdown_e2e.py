"""SIGTERM: the listening port closes at once; a client with submits in flight gets an answer
for each (ESME_ROK with the message stored, or a refusal), then an unbind; the carriers are
unbound too; the process exits 0 within the bound. A second SIGTERM, or the bound
(`[shutdown] timeout`), ends it at once (exit status 1), and everything acknowledged is stored
all the same.
"""

import contextlib
import socket
import sqlite3
import threading
import time

import pytest
from sqlalchemy import create_engine

pytestmark = pytest.mark.e2e

ACCOUNT = ("calm", "calm")
DEST = "33612345678"
ROK, RINVBNDSTS, RMSGQFUL = 0x00, 0x04, 0x14
SUBMIT_RESP, UNBIND, UNBIND_RESP, ENQUIRE_LINK = 0x80000004, 0x00000006, 0x80000006, 0x00000015
BOUND = 10.0  # [shutdown] timeout, the default


@pytest.fixture
def carrier(free_ports):
    """A simulated carrier inside the switch, on ports of its own (a test's server may stay
    up till the module ends)."""
    port, control_port = free_ports(2)
    return {
        "name": "orange",
        "port": port,
        "prefixes": ["336"],
        "simulate": True,
        "simulator": {"control_port": control_port, "dlr_delay": 0.2},
    }


def make(smsc_factory, sim_control, carrier, **shutdown):
    server = smsc_factory(
        smpp={"window": 500},
        config={
            "accounts": [{"system_id": ACCOUNT[0], "password": ACCOUNT[1]}],
            "carriers": [carrier],
            "shutdown": shutdown,
        },
    )
    control = sim_control(carrier["simulator"]["control_port"])
    deadline = time.monotonic() + 10
    while not control.stats()["binds"]["transceiver"]:
        assert time.monotonic() < deadline, "the carrier never bound"
        time.sleep(0.05)
    return server


def bound_client(raw_client, server):
    client = raw_client(server, timeout=10)
    assert client.bind("transmitter", *ACCOUNT).status == 0
    return client


def message_id(frame) -> str:
    return frame.body.rstrip(b"\0").decode()


def submit_some(client, n: int) -> dict[str, bytes]:
    """n submits answered ROK: {message id: text}."""
    texts = {}
    for i in range(n):
        text = b"before %d" % i
        answer = client.call(0x04, client.submit_sm_body(DEST, text))
        assert answer.status == ROK
        texts[message_id(answer)] = text
    return texts


def stored(server, acked: dict[str, bytes]) -> None:
    rows = dict(server.query("SELECT id, body FROM messages"))
    missing = [i for i in acked if int(i) not in rows]
    assert not missing, f"{len(missing)} acknowledged messages not stored, e.g. {missing[:5]}"
    assert all(rows[int(i)] == text for i, text in acked.items())


def refused_connection(server) -> bool:
    try:
        socket.create_connection(server.address, timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


class Flood(threading.Thread):
    """Submits without waiting for their answers (at most `ahead` unanswered), until stopped."""

    def __init__(self, client, ahead: int = 100):
        super().__init__(daemon=True)
        self.client = client
        self.ahead = ahead
        self.sent: dict[int, bytes] = {}  # sequence -> text
        self.answered = 0  # updated by the reader
        self.halt = threading.Event()
        self.error = None

    def run(self) -> None:
        n = 0
        try:
            while not self.halt.is_set():
                if len(self.sent) - self.answered >= self.ahead:
                    time.sleep(0.001)
                    continue
                text = b"flood %d" % n
                seq = self.client.next_seq()
                self.sent[seq] = text
                self.client.send(
                    self.client.frame(0x04, seq, self.client.submit_sm_body(DEST, text))
                )
                n += 1
        except OSError as e:
            self.error = e


def test_sigterm_answers_what_is_in_flight_unbinds_and_exits_0(
    smsc_factory, sim_control, carrier, raw_client
):
    server = make(smsc_factory, sim_control, carrier)
    client = bound_client(raw_client, server)
    flood = Flood(client)
    flood.start()
    answers: dict[int, tuple[int, str]] = {}
    signalled = unbound = None
    refused_after_signal = False
    while True:
        frame = client.read(timeout=BOUND)
        assert frame is not None or unbound, "closed before the unbind"
        if frame is None:
            break
        if frame.command_id == SUBMIT_RESP:
            assert frame.sequence not in answers, f"answered twice: {frame}"
            answers[frame.sequence] = (frame.status, message_id(frame))
            flood.answered = len(answers)
            if len(answers) == 300 and signalled is None:
                server.proc.terminate()  # SIGTERM, with submits in flight
                signalled = time.monotonic()
        elif frame.command_id == ENQUIRE_LINK:
            client.send(client.frame(0x80000015, frame.sequence))
        elif frame.command_id == UNBIND:
            assert signalled is not None and unbound is None
            unbound = time.monotonic()
            refused_after_signal = refused_connection(server)  # no new binds meanwhile
            time.sleep(0.2)  # more submits: the session is unbinding, they are refused
            flood.halt.set()
            flood.join(5)
            client.send(client.frame(UNBIND_RESP, frame.sequence))
        else:
            raise AssertionError(f"unexpected {frame}")
    code = server.proc.wait(BOUND)
    took = time.monotonic() - signalled
    assert code == 0
    assert took < BOUND, f"took {took:.1f} s"
    assert refused_after_signal
    assert flood.error is None, repr(flood.error)

    # Every submit got one answer: stored, or refused (before the unbind: the switch is
    # closing; after it: the session is).
    assert set(answers) == set(flood.sent)
    statuses = {status for status, _ in answers.values()}
    assert statuses <= {ROK, RMSGQFUL, RINVBNDSTS}, statuses
    assert RINVBNDSTS in statuses
    acked = {mid: flood.sent[seq] for seq, (status, mid) in answers.items() if status == ROK}
    assert len(acked) >= 300
    stored(server, acked)
    log = server.log()
    assert "SIGTERM: shutting down" in log
    assert "unbinding 1 client sessions" in log
    assert "carrier orange link closed: unbound" in log  # the carrier answered our unbind


def test_a_second_sigterm_exits_at_once(smsc_factory, sim_control, carrier, raw_client):
    server = make(smsc_factory, sim_control, carrier, unbind_wait=8.0)
    client = bound_client(raw_client, server)
    acked = submit_some(client, 20)
    server.proc.terminate()
    frame = client.read(timeout=BOUND)  # the unbind, which this client never answers
    assert frame.command_id == UNBIND
    time.sleep(0.3)
    assert server.running()  # waiting for the unbind_resp
    server.proc.terminate()
    started = time.monotonic()
    assert server.proc.wait(BOUND) == 1
    assert time.monotonic() - started < 2
    assert "SIGTERM again: exiting now" in server.log()
    stored(server, acked)
    server.start()  # and it starts again on the same store
    stored(server, acked)


@contextlib.contextmanager
def store_locked(server):
    """Hold a lock that stops every write of the server (its heartbeat, its shutdown's)."""
    if server.store_url.startswith("sqlite"):
        conn = sqlite3.connect(server.db_path, timeout=10, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()
        return
    engine = create_engine(server.store_url)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("LOCK TABLE nodes, messages IN ACCESS EXCLUSIVE MODE")
            yield
            conn.rollback()
    finally:
        engine.dispose()


def test_the_bound_ends_a_shutdown_that_cannot_finish(
    smsc_factory, sim_control, carrier, raw_client
):
    server = make(smsc_factory, sim_control, carrier, timeout=2.0, unbind_wait=1.0)
    client = bound_client(raw_client, server)
    acked = submit_some(client, 20)
    with store_locked(server):
        server.proc.terminate()
        started = time.monotonic()
        assert server.proc.wait(BOUND) == 1
        took = time.monotonic() - started
    assert 1.5 < took < 5, f"took {took:.1f} s"
    assert "still running 2 s after SIGTERM: exiting now" in server.log()
    stored(server, acked)
    server.start()
    stored(server, acked)
