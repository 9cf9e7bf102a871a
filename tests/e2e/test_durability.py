"""Durability: what the server acknowledged survives a SIGKILL that comes right after the
acknowledgements, and one that comes while more submits are in flight.
"""

import signal
import threading
import time

import pytest
from smpplib.exceptions import ConnectionError as SmppConnectionError

pytestmark = pytest.mark.e2e

ACCOUNT = ("durable", "durable")
BINDS = 5
PER_BIND = 100
BURST = 10


@pytest.fixture(scope="module")
def server(smsc_factory):
    return smsc_factory(
        config={"accounts": [{"system_id": ACCOUNT[0], "password": ACCOUNT[1]}]},
    )


class Submitter(threading.Thread):
    """One bind submitting bursts of pipelined submit_sm; records every acknowledgement."""

    def __init__(self, client, tag: str, count: int | None, first_number: int):
        super().__init__(daemon=True)
        self.client = client
        self.tag = tag
        self.count = count  # None: until the connection breaks
        self.number = first_number
        self.acked: dict[str, tuple[str, bytes]] = {}
        self.refused: list[int] = []
        self.error: BaseException | None = None
        self.broken = False

    def run(self) -> None:
        n = 0
        try:
            while self.count is None or n < self.count:
                pending = {}
                for _ in range(BURST if self.count is None else min(BURST, self.count - n)):
                    destination = f"33600{self.number % 999 + 1:06d}"
                    text = f"durable {self.tag} {n}".encode()
                    request = self.client.send_message(
                        source_addr_ton=1,
                        source_addr_npi=1,
                        source_addr="36180",
                        dest_addr_ton=1,
                        dest_addr_npi=1,
                        destination_addr=destination,
                        short_message=text,
                    )
                    pending[request.sequence] = (destination, text)
                    self.number += 1
                    n += 1
                for _ in range(len(pending)):
                    resp = self.client.read_pdu()
                    assert resp.command == "submit_sm_resp", resp.command
                    if resp.status:
                        self.refused.append(resp.status)
                        continue
                    self.acked[resp.message_id.decode()] = pending.pop(resp.sequence)
        except (SmppConnectionError, OSError):
            self.broken = True
        except BaseException as e:
            self.error = e


def _bind_all(smpplib_client, server, n: int):
    clients = []
    for _ in range(n):
        client = smpplib_client(server)
        client.bind_transmitter(system_id=ACCOUNT[0], password=ACCOUNT[1])
        clients.append(client)
    return clients


def _check_stored(server, acked: dict[str, tuple[str, bytes]]) -> None:
    rows = {
        str(row[0]): (row[1], row[2], row[3])
        for row in server.query("SELECT id, destination, body, state FROM messages")
    }
    missing = sorted(set(acked) - set(rows), key=int)
    assert not missing, f"{len(missing)} acknowledged messages lost, e.g. {missing[:5]}"
    wrong = [(i, acked[i], rows[i][:2]) for i in acked if rows[i][:2] != (acked[i][0], acked[i][1])]
    assert not wrong, f"stored differently from what was submitted: {wrong[:3]}"
    assert {rows[i][2] for i in acked} == {"ACCEPTED"}


def test_acknowledged_messages_survive_sigkill(server, smpplib_client):
    # 1. N messages over several binds; SIGKILL as soon as the last answer is in.
    submitters = [
        Submitter(c, f"b{i}", PER_BIND, i * PER_BIND)
        for i, c in enumerate(_bind_all(smpplib_client, server, BINDS))
    ]
    for s in submitters:
        s.start()
    for s in submitters:
        s.join(60)
    server.kill()
    for s in submitters:
        assert s.error is None, repr(s.error)
        assert not s.broken and not s.refused
    acked = {k: v for s in submitters for k, v in s.acked.items()}
    assert len(acked) == BINDS * PER_BIND  # one distinct id for each message

    server.start()
    _check_stored(server, acked)
    last = max(acked, key=int)
    shown = server.message(last)
    assert (shown["destination"], shown["length"]) == (acked[last][0], len(acked[last][1]))

    # 2. Again, with submits still in flight when the server dies: every answer that reached
    # a client (even one read after the kill) names a stored message.
    submitters = [
        Submitter(c, f"load{i}", None, 500 + i * 1000)
        for i, c in enumerate(_bind_all(smpplib_client, server, BINDS))
    ]
    for s in submitters:
        s.start()
    deadline = time.monotonic() + 30
    while sum(len(s.acked) for s in submitters) < 300 and time.monotonic() < deadline:
        time.sleep(0.005)
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait()
    for s in submitters:
        s.join(10)
        assert s.error is None, repr(s.error)
        assert s.broken
    more = {k: v for s in submitters for k, v in s.acked.items()}
    assert len(more) >= 300
    assert not set(more) & set(acked), "an id was given twice across a restart"

    server.start()
    _check_stored(server, {**acked, **more})

    # 3. The restarted server carries on with new ids.
    (client,) = _bind_all(smpplib_client, server, 1)
    after = Submitter(client, "after", 1, 0)
    after.run()
    (new_id,) = after.acked
    assert int(new_id) > max(int(i) for i in [*acked, *more])
