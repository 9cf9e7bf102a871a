"""PostgreSQL goes away under a running switch, and comes back.

A throwaway PostgreSQL cluster of this module's own (`.ci/postgres start`) is the store of a
real `smsc serve` with a simulated carrier. Clients submit all along; PostgreSQL is stopped
(`pg_ctl stop -m fast`): every submit is still answered within a few seconds, now with
ESME_RMSGQFUL (try again later), and the server stays up; PostgreSQL is started again: submits
are accepted again within a few seconds, by themselves. Every message acknowledged, before and
after, is in the store and reaches the carrier.

It needs PostgreSQL's binaries (Debian's postgresql, which CI installs for the `pg` env) and
runs in that env (SMSC_TEST_PG_URL set); the cluster it starts is its own, not that one.
"""

import glob
import os
import re
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import make_url
from stores import PG_URL

ROOT = Path(__file__).resolve().parents[2]
BINS = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name))
PG_BIN = BINS[-1] if BINS else None

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(PG_BIN is None, reason="no PostgreSQL binaries (apt install postgresql)"),
    pytest.mark.skipif(not PG_URL, reason="a PostgreSQL test: runs in tox -e pg"),
]

ACCOUNT = ("steady", "steady")
DEST = "33612345678"
ROK, RMSGQFUL = 0x00, 0x14
CLIENTS = 3
BURST = 5
ANSWER_TIMEOUT = 8.0  # seconds: a submit unanswered so long hangs
REFUSED_WITHIN = 6.0  # seconds after PostgreSQL stopped: every client has been refused
BACK_WITHIN = 6.0  # seconds after PostgreSQL started: every client has been accepted again


class Cluster:
    """A PostgreSQL cluster in a directory of its own, stopped and started at will."""

    def __init__(self):
        # Not under pytest's tmp dir: as root, the server runs as `postgres`, which must
        # reach it (.ci/postgres gives it the directory).
        self.dir = tempfile.mkdtemp(prefix="smsc-outage-")
        out = subprocess.run(
            [str(ROOT / ".ci" / "postgres"), "start", self.dir],
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        ).stdout
        self.url = re.search(r"SMSC_TEST_PG_URL=(\S+)", out).group(1)
        self.port = make_url(self.url).port

    def _pg_ctl(self, *args: str) -> None:
        command = [f"{PG_BIN}/pg_ctl", "-D", f"{self.dir}/data", *args]
        if os.getuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, timeout=60, capture_output=True)

    def stop(self) -> None:
        self._pg_ctl("-m", "fast", "-w", "stop")

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
        )
        self._pg_ctl("-l", f"{self.dir}/log", "-w", "start", "-o", options)

    def remove(self) -> None:
        subprocess.run([str(ROOT / ".ci" / "postgres"), "stop", self.dir], timeout=60)


@pytest.fixture(scope="module")
def cluster():
    c = Cluster()
    yield c
    c.remove()


class Client(threading.Thread):
    """Bursts of submits, each answer waited for at most ANSWER_TIMEOUT; every answer kept
    with the time it came."""

    def __init__(self, raw, tag: str):
        super().__init__(daemon=True)
        self.raw = raw
        self.tag = tag
        self.answers: list[tuple[float, float, int, str, bytes]] = []  # sent, answered, …
        self.halt = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        n = 0
        try:
            while not self.halt.is_set():
                pending = {}
                for _ in range(BURST):
                    text = f"outage {self.tag} {n}".encode()
                    pending[self.raw.submit(DEST, text)] = (time.monotonic(), text)
                    n += 1
                while pending:
                    frame = self.raw.read(timeout=ANSWER_TIMEOUT)
                    assert frame is not None, "the server closed the connection"
                    if frame.command_id == 0x15:  # enquire_link
                        self.raw.send(self.raw.frame(0x80000015, frame.sequence))
                        continue
                    sent, text = pending.pop(frame.sequence)
                    message_id = frame.body.rstrip(b"\0").decode()
                    self.answers.append((sent, time.monotonic(), frame.status, message_id, text))
                time.sleep(0.01)
        except BaseException as e:  # a hang shows as TimeoutError
            self.error = e

    def since(self, moment: float, status: int) -> bool:
        return any(sent >= moment and s == status for sent, _, s, _, _ in list(self.answers))


def wait_until(condition, timeout: float, what: str) -> float:
    """Seconds it took for `condition()`; fails after `timeout`."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.05)
    return time.monotonic() - started


def test_postgresql_stopped_and_started_again(
    cluster, smsc_factory, free_ports, sim_control, raw_client
):  # the cluster first: it goes last, after the server
    port, control_port = free_ports(2)
    server = smsc_factory(
        config={
            "store": {"url": cluster.url},
            "accounts": [{"system_id": ACCOUNT[0], "password": ACCOUNT[1]}],
            "carriers": [
                {
                    "name": "orange",
                    "port": port,
                    "prefixes": ["336"],
                    "tps": 1000,
                    "simulate": True,
                    "simulator": {"control_port": control_port, "dlr_delay": 0.2},
                }
            ],
            "queue": {"retry_delay": 0.5},
        }
    )
    carrier = sim_control(control_port)
    wait_until(lambda: carrier.stats()["binds"]["transceiver"], 10, "the carrier bound")
    clients = []
    for i in range(CLIENTS):
        raw = raw_client(server, timeout=ANSWER_TIMEOUT)
        assert raw.bind("transmitter", *ACCOUNT).status == 0
        clients.append(Client(raw, f"c{i}"))
    for c in clients:
        c.start()

    def acked() -> int:
        return sum(1 for c in clients for a in list(c.answers) if a[2] == ROK)

    wait_until(lambda: acked() >= 150, 15, "submits accepted")

    cluster.stop()
    stopped = time.monotonic()
    refused_in = wait_until(
        lambda: all(c.since(stopped, RMSGQFUL) for c in clients),
        REFUSED_WITHIN,
        "every client refused with ESME_RMSGQFUL",
    )
    time.sleep(1.0)  # down a while: the writer tries to connect again, and again
    assert server.running()

    cluster.start()
    started = time.monotonic()
    back_in = wait_until(
        lambda: all(c.since(started, ROK) for c in clients),
        BACK_WITHIN,
        "every client accepted again",
    )
    # A new bind: its password is checked on the read pool, whose connections died too.
    late = raw_client(server, timeout=ANSWER_TIMEOUT)
    assert late.bind("transmitter", *ACCOUNT).status == 0
    time.sleep(0.5)
    for c in clients:
        c.halt.set()
    for c in clients:
        c.join(ANSWER_TIMEOUT + 2)
        assert c.error is None, repr(c.error)
    assert server.running()

    answers = [a for c in clients for a in c.answers]
    statuses = {status for _, _, status, _, _ in answers}
    assert statuses == {ROK, RMSGQFUL}, statuses  # never a system error, never a hang
    slowest = max(answered - sent for sent, answered, _, _, _ in answers)
    assert slowest < REFUSED_WITHIN, f"an answer took {slowest:.1f} s"
    print(f"refused {refused_in:.2f} s after the stop, accepted {back_in:.2f} s after the start")

    acknowledged = {mid: text for _, _, status, mid, text in answers if status == ROK}
    rows = dict(server.query("SELECT id, body FROM messages"))
    missing = [m for m in acknowledged if int(m) not in rows]
    assert not missing, f"{len(missing)} acknowledged messages not stored, e.g. {missing[:5]}"
    assert all(rows[int(m)] == text for m, text in acknowledged.items())

    texts = {text.decode() for text in acknowledged.values()}

    def delivered() -> bool:
        return texts <= {r["text"] for r in carrier.received()}

    wait_until(delivered, 20, "every acknowledged message at the carrier")
    log = server.log()
    assert "lost the store" in log and "the store is back" in log
    assert "listening to the store's notifications again" in log  # LISTEN/NOTIFY, back too
