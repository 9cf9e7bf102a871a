"""Scheduled delivery end to end: the real `smsc serve` with a carrier simulated inside it,
and `smpplib` clients (cancel_sm and replace_sm by hand, which smpplib cannot send).

A message scheduled a few seconds ahead — absolute at any UTC offset, or relative — is not at
the carrier before its time and arrives after it, with its receipt; cancel_sm and replace_sm
work on it while it waits (replace moves its time and changes its text); it survives a SIGKILL
of the server; and a message whose validity ends while its carrier is down expires, with an
EXPIRED receipt to its client (one carrier down among others, and every carrier down).

Times are the machine's own: the switch and the tests share its clock. Each test binds its own
account and sends to its own numbers (fictional: 336000…), so records never mix.
"""

import time

import pytest
import smpplib.smpp

from smsc.protocol import smpptime

pytestmark = pytest.mark.e2e

ROK, RCANCELFAIL, RREPLACEFAIL = 0x00, 0x11, 0x13
CANCEL_SM, REPLACE_SM, QUERY_SM = 0x08, 0x07, 0x03
DELIVERED, EXPIRED, DELETED = 2, 3, 4  # message_state
SOURCE = "36180"  # a short code: 06/07 numbers are refused as senders
DLR_DELAY = 0.1
LATE = 1.5  # the most a due message may take to reach the carrier (claims every 0.5 s idle)
ACCOUNTS = ["abs", "rel", "cancel", "replace", "restart", "down", "alldown"]


def wait_until(predicate, timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"after {timeout} s: {what}")
        time.sleep(interval)


@pytest.fixture(scope="module")
def server(smsc_factory, free_ports, sim_control):
    """One simulated carrier up (336000…), one that never comes up (336009…)."""
    sim_port, control_port, down_port = free_ports(3)
    server = smsc_factory(
        config={
            "accounts": [{"system_id": a, "password": a} for a in ACCOUNTS],
            "carriers": [
                {"name": "sim", "port": sim_port, "prefixes": ["336000"], "simulate": True,
                 "simulator": {"dlr_delay": DLR_DELAY, "control_port": control_port}},
                {"name": "down", "port": down_port, "prefixes": ["336009"]},
            ],
            "queue": {"retry_delay": 0.5, "outbox_retry": 1.0},
        }
    )  # fmt: skip
    server.sim = sim_control(control_port)
    wait_until(lambda: server.sim.stats()["binds"]["transceiver"], 10, "the carrier bound")
    return server


def _str(value) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else str(value or "")


class Esme:
    """An smpplib transceiver that answers the switch's deliver_sm and keeps them."""

    def __init__(self, client):
        self.client = client
        self.delivered: list = []

    def _read(self, timeout: float):
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            self.client._socket.settimeout(left)
            try:
                pdu = self.client.read_pdu()
            except TimeoutError:
                return None
            if pdu.command in ("deliver_sm", "enquire_link"):
                if pdu.command == "deliver_sm":
                    self.delivered.append(pdu)
                resp = smpplib.smpp.make_pdu(f"{pdu.command}_resp", client=self.client)
                resp.sequence = pdu.sequence
                self.client.send_pdu(resp)
            else:
                return pdu
        return None

    def submit(self, destination: str, text: bytes, **kw) -> str:
        request = self.client.send_message(
            source_addr_ton=1, source_addr_npi=1, source_addr=SOURCE,
            dest_addr_ton=1, dest_addr_npi=1, destination_addr=destination,
            short_message=text, registered_delivery=1, **kw,
        )  # fmt: skip
        resp = self._read(10)
        assert resp is not None and resp.command == "submit_sm_resp", resp
        assert resp.sequence == request.sequence
        assert resp.status == ROK, hex(resp.status)
        return _str(resp.message_id)

    def receipt(self, message_id: str, timeout: float = 10.0):
        deadline = time.monotonic() + timeout
        while True:
            got = [p for p in self.delivered if _str(p.receipted_message_id) == message_id]
            if got:
                return got[0]
            left = deadline - time.monotonic()
            assert left > 0, f"no receipt for {message_id} after {timeout} s"
            self._read(min(left, 0.1))

    def listen(self, seconds: float) -> None:
        self._read(seconds)


@pytest.fixture
def esme(smpplib_client):
    def bind(server, account: str) -> Esme:
        client = smpplib_client(server)
        assert client.bind_transceiver(system_id=account, password=account).status == ROK
        return Esme(client)

    return bind


def c(value: str) -> bytes:
    return value.encode("latin-1") + b"\0"


def cancel_sm_body(message_id: str) -> bytes:
    return c("") + c(message_id) + bytes((1, 1)) + c(SOURCE) + bytes((1, 1)) + c("")


def replace_sm_body(message_id: str, text: bytes, schedule: str = "", validity: str = "") -> bytes:
    # message_id, source, schedule, validity, registered_delivery, sm_default_msg_id, sm
    return (
        c(message_id) + bytes((1, 1)) + c(SOURCE) + c(schedule) + c(validity)
        + bytes((1, 0, len(text))) + text
    )  # fmt: skip


def query_state(raw, message_id: str) -> int:
    answer = raw.call(QUERY_SM, c(message_id) + bytes((1, 1)) + c(SOURCE))
    assert answer.status == ROK
    body = answer.body
    body = body[body.index(b"\0") + 1 :]  # message_id
    body = body[body.index(b"\0") + 1 :]  # final_date
    return body[0]


def arrivals(server, destination: str) -> list[dict]:
    return [r for r in server.sim.received() if r["destination"] == destination]


def arrives(server, destination: str, timeout: float) -> dict:
    (record,) = wait_until(
        lambda: arrivals(server, destination), timeout, f"{destination} at the carrier"
    )
    return record


def state_of(server, message_id: str) -> str:
    return server.query("SELECT state FROM messages WHERE id = ?", (int(message_id),))[0][0]


def check_receipt(pdu, message_id: str, state: int, stat: str) -> str:
    assert pdu.esm_class & 0x3C == 0x04
    assert _str(pdu.receipted_message_id) == message_id
    assert pdu.message_state == state
    text = _str(pdu.short_message)
    assert text.startswith(f"id:{message_id} ") and f" stat:{stat} " in text, text
    return text


# -- on time, not before ---------------------------------------------------------------------


def test_absolute_schedules_at_any_offset_arrive_on_time(server, esme):
    client = esme(server, "abs")
    now = time.time()
    # 3 s ahead, written at UTC+2, UTC-5 and UTC+5:45; each instant to the tenth of a second.
    scheduled = {}
    for n, quarters in enumerate((8, -20, 23)):
        schedule = smpptime.format_absolute(now + 3 + n * 0.5, quarters)
        due = smpptime.parse(schedule, 0)
        destination = f"336000010{n:02d}"
        message_id = client.submit(
            destination, f"at {quarters}".encode(), schedule_delivery_time=schedule
        )
        scheduled[destination] = (message_id, due)
    assert state_of(server, message_id) == "ACCEPTED"
    # Nothing at the carrier until the first is due.
    first_due = min(due for _, due in scheduled.values())
    while time.time() < first_due - 0.2:
        assert not any(arrivals(server, d) for d in scheduled)
        time.sleep(0.1)
    for destination, (message_id, due) in scheduled.items():
        record = arrives(server, destination, due - time.time() + LATE + 2)
        assert due <= record["received_at"] < due + LATE, record["received_at"] - due
        check_receipt(client.receipt(message_id), message_id, DELIVERED, "DELIVRD")
    print(
        "\nlate by: "
        + ", ".join(
            f"{arrives(server, d, 1)['received_at'] - due:.2f} s"
            for d, (_, due) in scheduled.items()
        )
    )


def test_a_relative_schedule_arrives_on_time(server, esme):
    client = esme(server, "rel")
    destination = "33600002001"
    submitted = time.time()
    message_id = client.submit(destination, b"in 3 s", schedule_delivery_time="000000000003000R")
    acknowledged = time.time()
    due = server.query("SELECT due_at FROM messages WHERE id = ?", (int(message_id),))[0][0]
    assert submitted + 3 <= due <= acknowledged + 3  # counted from the switch's receipt of it
    time.sleep(max(0.0, due - 0.3 - time.time()))
    assert arrivals(server, destination) == []
    record = arrives(server, destination, LATE + 1)
    assert due <= record["received_at"] < due + LATE
    check_receipt(client.receipt(message_id), message_id, DELIVERED, "DELIVRD")


# -- cancel and replace while it waits -------------------------------------------------------


def test_cancel_sm_of_a_scheduled_message(server, esme, raw_client):
    client = esme(server, "cancel")
    destination, kept = "33600003001", "33600003002"
    raw = raw_client(server)
    assert raw.bind("transmitter", "cancel", "cancel").status == ROK
    schedule = "000000000003000R"
    message_id = client.submit(destination, b"never", schedule_delivery_time=schedule)
    other = client.submit(kept, b"still goes", schedule_delivery_time=schedule)
    answer = raw.call(CANCEL_SM, cancel_sm_body(message_id))
    assert (answer.command_id, answer.status) == (0x80000008, ROK)
    assert state_of(server, message_id) == "DELETED"
    assert query_state(raw, message_id) == DELETED
    assert raw.call(CANCEL_SM, cancel_sm_body(message_id)).status == RCANCELFAIL  # once only
    # Past its time: the other one arrived, the cancelled one never does.
    arrives(server, kept, 3 + LATE + 1)
    client.listen(0.5)
    assert arrivals(server, destination) == []
    assert state_of(server, message_id) == "DELETED"
    check_receipt(client.receipt(other), other, DELIVERED, "DELIVRD")
    # It asked for a receipt, but a cancelled message gets none.
    assert not [p for p in client.delivered if _str(p.receipted_message_id) == message_id]


def test_replace_sm_moves_the_time_and_changes_the_text(server, esme, raw_client):
    client = esme(server, "replace")
    sooner, later = "33600004001", "33600004002"
    raw = raw_client(server)
    assert raw.bind("transmitter", "replace", "replace").status == ROK
    now = time.time()
    first = client.submit(sooner, b"first text", schedule_delivery_time="000000000010000R")
    second = client.submit(later, b"second text", schedule_delivery_time="000000000002000R")
    earlier_at = smpptime.format_absolute(now + 2.5, -12)  # 10 s ahead → 2.5 s
    answer = raw.call(REPLACE_SM, replace_sm_body(first, b"sooner text", earlier_at))
    assert (answer.command_id, answer.status) == (0x80000007, ROK)
    answer = raw.call(REPLACE_SM, replace_sm_body(second, b"later text", "000000000004000R"))
    assert answer.status == ROK  # 2 s ahead → 4 s from the replace
    later_due = server.query("SELECT due_at FROM messages WHERE id = ?", (int(second),))[0][0]
    sooner_due = smpptime.parse(earlier_at, 0)

    record = arrives(server, sooner, 2.5 + LATE + 1)
    assert sooner_due <= record["received_at"] < sooner_due + LATE
    assert record["text"] == "sooner text"
    assert time.time() < later_due  # the other was due first, and moved: still waiting
    assert arrivals(server, later) == []
    record = arrives(server, later, later_due - time.time() + LATE + 1)
    assert later_due <= record["received_at"] < later_due + LATE
    assert record["text"] == "later text"
    text = check_receipt(client.receipt(first), first, DELIVERED, "DELIVRD")
    assert text.endswith("text:sooner text")
    check_receipt(client.receipt(second), second, DELIVERED, "DELIVRD")
    # Sent now: too late to replace.
    answer = raw.call(REPLACE_SM, replace_sm_body(first, b"too late"))
    assert answer.status == RREPLACEFAIL


# -- a restart while it waits ----------------------------------------------------------------


def test_a_scheduled_message_survives_a_sigkill_and_goes_on_time(server, esme):
    client = esme(server, "restart")
    destination = "33600005001"
    message_id = client.submit(
        destination, b"after the crash", schedule_delivery_time="000000000008000R"
    )
    due = server.query("SELECT due_at FROM messages WHERE id = ?", (int(message_id),))[0][0]
    server.kill()  # SIGKILL: nothing of the shutdown runs
    server.start()
    wait_until(lambda: server.sim.stats()["binds"]["transceiver"], 10, "the carrier bound again")
    assert time.time() < due - 1, "the restart took too long for this test to mean anything"
    assert state_of(server, message_id) == "ACCEPTED"
    while time.time() < due - 0.2:
        assert arrivals(server, destination) == []
        time.sleep(0.1)
    record = arrives(server, destination, LATE + 1)
    assert due <= record["received_at"] < due + LATE
    assert record["text"] == "after the crash"
    client = esme(server, "restart")  # its connection went with the first process
    check_receipt(client.receipt(message_id), message_id, DELIVERED, "DELIVRD")


# -- validity ends while the carrier is down ------------------------------------------------


def test_validity_ends_while_its_carrier_is_down(server, esme):
    client = esme(server, "down")
    message_id = client.submit(
        "33600900001", b"nobody takes it", validity_period="000000000002000R"
    )
    alive = client.submit("33600900002", b"waits on", validity_period="000000010000000R")
    expires = server.query("SELECT expires_at FROM messages WHERE id = ?", (int(message_id),))[0][0]
    receipt = client.receipt(message_id, timeout=8)
    got = time.time()
    text = check_receipt(receipt, message_id, EXPIRED, "EXPIRED")
    assert "dlvrd:000" in text
    assert expires <= got < expires + 3
    assert state_of(server, message_id) == "EXPIRED"
    # Still waiting for its carrier: in the queue, or claimed for the moment it takes the
    # dispatcher to find no bound carrier for it and put it back.
    assert state_of(server, alive) in ("ACCEPTED", "SENDING")


@pytest.fixture(scope="module")
def all_down(smsc_factory, free_ports):
    """A switch whose only carrier never comes up."""
    (port,) = free_ports(1)
    return smsc_factory(
        config={
            "accounts": [{"system_id": "alldown", "password": "alldown"}],
            "carriers": [{"name": "down", "port": port, "prefixes": ["336"]}],
            "queue": {"retry_delay": 0.5, "outbox_retry": 1.0},
        }
    )


def test_validity_ends_while_every_carrier_is_down(all_down, esme):
    client = esme(all_down, "alldown")
    message_id = client.submit("33600000042", b"nowhere", validity_period="000000000002000R")
    alive = client.submit("33600000043", b"waits on", validity_period="000000010000000R")
    expires = all_down.query("SELECT expires_at FROM messages WHERE id = ?", (int(message_id),))
    receipt = client.receipt(message_id, timeout=8)
    assert expires[0][0] <= time.time() < expires[0][0] + 3
    check_receipt(receipt, message_id, EXPIRED, "EXPIRED")
    assert state_of(all_down, message_id) == "EXPIRED"
    assert state_of(all_down, alive) == "ACCEPTED"
