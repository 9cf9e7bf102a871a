"""Delivery end to end: the real `smsc serve`, its carriers simulated (inside the switch with
`simulate = true`, or as `smsc carrier-sim` processes where a test kills one), and `smpplib`
clients. Submit → carrier → receipt back; long messages in parts with one receipt; carriers'
ids in other bases; failures, refusals and failover; a carrier's tps measured at the carrier;
a carrier killed mid-traffic and restarted.

Each carrier takes its own prefix (`336000NN`, numbers `336000NNxxx`, all fictional) and each
test binds its own account, so that receipts and records never mix between tests.
"""

import re
import time
from collections import Counter, defaultdict

import pytest
import smpplib.client
import smpplib.smpp

pytestmark = pytest.mark.e2e

ROK, RINVDSTADR = 0x00, 0x0B
DELIVERED, UNDELIVERABLE, UNKNOWN, REJECTED = 2, 5, 7, 8  # message_state
SOURCE = "36180"  # a short code: 06/07 numbers are refused as senders
DLR_DELAY = 0.1
ESM_RECEIPT, ESM_UDHI = 0x04, 0x40

# The switch with its carriers inside (name, prefix, carrier keys, simulator keys).
SIMULATED = [
    ("plain", "33600001", {}, {}),  # hex ids, zero-padded upper case; receipts unpadded lower
    ("udh", "33600002", {"long_messages": "udh"}, {}),
    ("sar", "33600003", {"long_messages": "sar"}, {}),
    ("payload", "33600004", {"long_messages": "payload"}, {}),
    ("hexdec", "33600005", {}, {"id_format": "hex", "receipt_id_format": "dec"}),
    ("dechex", "33600006", {}, {"id_format": "dec", "receipt_id_format": "hex"}),
    ("hexdectext", "33600007", {},
     {"id_format": "hex", "receipt_id_format": "dec", "receipt_tlvs": False}),
    ("dechextext", "33600008", {},
     {"id_format": "dec", "receipt_id_format": "hex", "receipt_tlvs": False}),
    ("decimal", "33600012", {}, {"id_format": "dec"}),
    ("failing", "33600009", {}, {"fail_rate": 1.0}),
    ("tps20", "33600010", {"tps": 20, "window": 10}, {}),
    ("throttling", "33600011", {"tps": 100, "window": 10}, {"tps": 10}),
]  # fmt: skip
PREFIX = {name: prefix for name, prefix, _, _ in SIMULATED}
ACCOUNTS = ["trx", "split", "later", "longs", "ids", "fails", "tps", "routes", "kill", "refuse"]


def number(prefix: str, n: int) -> str:
    return f"{prefix}{n:03d}"


def wait_until(predicate, timeout: float, what: str, interval: float = 0.05):
    """Poll `predicate` until it returns something true; fail with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"after {timeout} s: {what}")
        time.sleep(interval)


# -- servers -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sims(smsc_factory, free_ports, sim_control):
    """The switch with simulated carriers inside it; `.control[name]` reads each simulator."""
    ports = iter(free_ports(2 * len(SIMULATED)))
    carriers, control = [], {}
    for name, prefix, extra, simulator in SIMULATED:
        port, control_port = next(ports), next(ports)
        carriers.append(
            {
                "name": name,
                "port": port,
                "prefixes": [prefix],
                "tps": 200,
                "simulate": True,
                **extra,
                "simulator": {"dlr_delay": DLR_DELAY, "control_port": control_port, **simulator},
            }
        )
        control[name] = sim_control(control_port)
    server = smsc_factory(
        config={
            "accounts": [{"system_id": a, "password": a[:8]} for a in ACCOUNTS],
            "carriers": carriers,
            "queue": {"retry_delay": 0.5, "outbox_retry": 1.0},
        }
    )
    server.control = control
    for name, c in control.items():
        wait_until(lambda c=c: c.stats()["binds"]["transceiver"], 10, f"{name} bound")
    return server


KILL_BINDS, KILL_WINDOW = 2, 5


@pytest.fixture(scope="module")
def subs(smsc_factory, free_ports, sim_control, carrier_sim):
    """The switch with `smsc carrier-sim` processes (killable), a carrier that is down, and
    simulated ones for failover."""
    ports = iter(free_ports(20))
    # It answers each submit 50 ms late: its binds' windows are full when it is killed.
    killme = carrier_sim(
        "killme", next(ports), next(ports), "--dlr-delay", "0.1", "--resp-delay", "0.05",
        start=False,
    )  # fmt: skip
    refuser = carrier_sim(
        "refuser", next(ports), next(ports), "--dlr-delay", "0.1",
        "--refuse-prefix", "336000409", start=False,
    )  # fmt: skip
    failover = {}
    carriers = [
        # The first choice for 33600020xxx, never started.
        {"name": "down", "port": next(ports), "prefixes": ["33600020"], "priority": 1},
        {"name": "killme", "port": killme.port, "prefixes": ["33600030"],
         "binds": KILL_BINDS, "window": KILL_WINDOW, "tps": 1000},
        {"name": "refuser", "port": refuser.port, "prefixes": ["33600040"]},
    ]  # fmt: skip
    for name, prefix, priority in [
        ("second", "33600020", 2),
        ("third", "33600020", 3),
        ("stranger", "33600021", 1),  # up, first choice, but not for 33600020xxx
    ]:
        control_port = next(ports)
        carriers.append(
            {"name": name, "port": next(ports), "prefixes": [prefix], "priority": priority,
             "simulate": True,
             "simulator": {"dlr_delay": DLR_DELAY, "control_port": control_port}}
        )  # fmt: skip
        failover[name] = sim_control(control_port)
    server = smsc_factory(
        config={
            "accounts": [{"system_id": a, "password": a[:8]} for a in ACCOUNTS],
            "carriers": carriers,
            "queue": {"retry_delay": 0.5, "outbox_retry": 1.0},
        }
    )
    killme.wait_ready()
    refuser.wait_ready()
    server.killme, server.refuser, server.control = killme, refuser, failover
    for name, c in [*failover.items(), ("killme", killme), ("refuser", refuser)]:
        want = KILL_BINDS if name == "killme" else 1
        wait_until(lambda c=c, w=want: c.stats()["binds"]["transceiver"] == w, 15, f"{name} bound")
    return server


# -- clients -----------------------------------------------------------------------------------


def sm(destination: str, text: bytes, **kw) -> dict:
    return {
        "source_addr_ton": 1,
        "source_addr_npi": 1,
        "source_addr": SOURCE,
        "dest_addr_ton": 1,
        "dest_addr_npi": 1,
        "destination_addr": destination,
        "short_message": text,
        **kw,
    }


def _str(value) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else str(value or "")


class Esme:
    """An smpplib client that answers the switch's deliver_sm and keeps them."""

    def __init__(self, client):
        self.client = client
        self.delivered: list = []  # deliver_sm PDUs, in arrival order

    def _read(self, timeout: float):
        """The next PDU that is not a deliver_sm or an enquire_link (those are answered
        here); None when nothing came within `timeout`."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            self.client._socket.settimeout(left)
            try:
                pdu = self.client.read_pdu()
            except TimeoutError:
                return None
            if pdu.command == "deliver_sm":
                self.delivered.append(pdu)
                resp = smpplib.smpp.make_pdu("deliver_sm_resp", client=self.client)
                resp.sequence = pdu.sequence
                self.client.send_pdu(resp)
            elif pdu.command == "enquire_link":
                resp = smpplib.smpp.make_pdu("enquire_link_resp", client=self.client)
                resp.sequence = pdu.sequence
                self.client.send_pdu(resp)
            else:
                return pdu
        return None

    def submit(self, destination: str, text: bytes = b"hello", **kw):
        request = self.client.send_message(**sm(destination, text, **kw))
        resp = self._read(10)
        assert resp is not None, "no submit_sm_resp"
        assert (resp.command, resp.sequence) == ("submit_sm_resp", request.sequence)
        return resp

    def submit_ok(self, destination: str, text: bytes = b"hello", **kw) -> str:
        resp = self.submit(destination, text, **kw)
        assert resp.status == ROK, hex(resp.status)
        return _str(resp.message_id)

    def submit_many(self, messages: list[tuple[str, bytes]], window: int = 40, **kw) -> list[str]:
        """Submit with up to `window` outstanding; the ids in the order of `messages`."""
        ids: list[str | None] = [None] * len(messages)
        pending: dict[int, int] = {}
        sent = 0
        while sent < len(messages) or pending:
            while sent < len(messages) and len(pending) < window:
                request = self.client.send_message(**sm(*messages[sent], **kw))
                pending[request.sequence] = sent
                sent += 1
            resp = self._read(10)
            assert resp is not None and resp.command == "submit_sm_resp", resp
            assert resp.status == ROK, hex(resp.status)
            ids[pending.pop(resp.sequence)] = _str(resp.message_id)
        return ids

    def receipts(self, message_id: str) -> list:
        return [p for p in self.delivered if _str(p.receipted_message_id) == message_id]

    def wait_receipt(self, message_id: str, timeout: float = 10.0):
        deadline = time.monotonic() + timeout
        while not self.receipts(message_id):
            left = deadline - time.monotonic()
            assert left > 0, f"no receipt for {message_id} after {timeout} s"
            self._read(min(left, 0.2))
        return self.receipts(message_id)[0]

    def listen(self, seconds: float) -> None:
        """Take what comes for a while (to see that nothing more does)."""
        self._read(seconds)


@pytest.fixture
def esme(smpplib_client):
    def bind(server, account: str, mode: str = "transceiver") -> Esme:
        client = smpplib_client(server)
        resp = getattr(client, f"bind_{mode}")(system_id=account, password=account[:8])
        assert resp.status == ROK
        return Esme(client)

    return bind


def check_receipt(pdu, message_id: str, state: int, stat: str, destination: str) -> str:
    """A client receipt, read by hand: our id in the TLVs and in the appendix B text."""
    assert pdu.esm_class & 0x3C == ESM_RECEIPT
    assert _str(pdu.receipted_message_id) == message_id
    assert pdu.message_state == state
    text = _str(pdu.short_message or getattr(pdu, "message_payload", b""))
    assert text.startswith(f"id:{message_id} "), text
    assert re.search(r"sub:\d{3} dlvrd:\d{3} submit date:\d{10} done date:\d{10} ", text), text
    assert f" stat:{stat} " in text, text
    # It comes from the number the message went to, back to its sender.
    assert (_str(pdu.source_addr), _str(pdu.destination_addr)) == (destination, SOURCE)
    return text


def states(server, ids) -> dict[str, str]:
    ids = [int(i) for i in ids]
    marks = ",".join("?" * len(ids))
    rows = server.query(f"SELECT id, state FROM messages WHERE id IN ({marks})", ids)
    return {str(i): s for i, s in rows}


def state_of(server, message_id: str) -> str | None:
    """The message's state in the store (read directly: `smsc message show` costs a Python
    start, too slow to poll)."""
    rows = server.query("SELECT state FROM messages WHERE id = ?", (int(message_id),))
    return rows[0][0] if rows else None


def outbox_rows(server, message_id: str) -> list[str]:
    rows = server.query("SELECT state FROM outbox WHERE message_id = ?", (int(message_id),))
    return [s for (s,) in rows]


def receipts_settled(control, at_least: int, timeout: float = 10.0) -> dict:
    """Until the simulator had its receipts answered by the switch (which answers only once
    what they say is committed): the store is final for them then."""

    def settled():
        s = control.stats()
        return s if s["receipts_acked"] >= at_least and s["receipts_pending"] == 0 else None

    return wait_until(settled, timeout, f"{at_least} receipts acked")


# -- 1. receipts -------------------------------------------------------------------------------


def test_receipt_back_to_a_transceiver(sims, esme):
    client = esme(sims, "trx")
    destination = number(PREFIX["plain"], 1)
    message_id = client.submit_ok(destination, b"hello receipt", registered_delivery=1)
    receipt = client.wait_receipt(message_id)
    text = check_receipt(receipt, message_id, DELIVERED, "DELIVRD", destination)
    assert "sub:001 dlvrd:001" in text and "err:000" in text and text.endswith("text:hello receipt")
    got = [r for r in sims.control["plain"].received() if r["destination"] == destination]
    assert [(r["text"], r["registered_delivery"]) for r in got] == [("hello receipt", 1)]
    assert sims.message(message_id)["state"] == "DELIVERED"


def test_receipt_to_a_separate_receiver_bind(sims, esme):
    tx = esme(sims, "split", "transmitter")
    rx = esme(sims, "split", "receiver")
    destination = number(PREFIX["plain"], 2)
    message_id = tx.submit_ok(destination, b"to the receiver", registered_delivery=1)
    check_receipt(rx.wait_receipt(message_id), message_id, DELIVERED, "DELIVRD", destination)
    tx.listen(0.2)
    assert tx.delivered == []  # a transmitter is never sent deliver_sm


def test_receipt_waits_in_the_outbox_until_the_client_binds(sims, esme):
    tx = esme(sims, "later", "transmitter")
    destination = number(PREFIX["plain"], 3)
    message_id = tx.submit_ok(destination, b"while away", registered_delivery=1)
    tx.client.unbind()
    tx.client.disconnect()
    wait_until(lambda: outbox_rows(sims, message_id) == ["PENDING"], 10, "the receipt queued")
    assert state_of(sims, message_id) == "DELIVERED"
    rx = esme(sims, "later", "receiver")
    check_receipt(rx.wait_receipt(message_id), message_id, DELIVERED, "DELIVRD", destination)
    wait_until(lambda: outbox_rows(sims, message_id) == ["DONE"], 10, "the outbox row done")


# -- 2. long messages --------------------------------------------------------------------------

GSM_TEXT = " ".join(f"Part of a long message, word {i:03d}." for i in range(12))[:400]
UCS2_TEXT = ("Œuvre « très » longue, naïve où l’on écrit… " * 4)[:150]
assert len(GSM_TEXT) == 400 and len(UCS2_TEXT) == 150


def _user_data(record: dict) -> tuple[bytes, bytes | None]:
    """(user data, UDH or None) of a received submit_sm, read by hand."""
    data = bytes.fromhex(record["message_payload"] or record["short_message"])
    if record["esm_class"] & ESM_UDHI:
        return data[1 + data[0] :], data[: 1 + data[0]]
    return data, None


@pytest.mark.parametrize("coding", ["gsm", "ucs2"])
@pytest.mark.parametrize("method", ["udh", "sar", "payload"])
def test_long_message_in_parts_with_one_receipt(sims, esme, method, coding):
    client = esme(sims, "longs")
    n = 100 + 10 * ["udh", "sar", "payload"].index(method) + (coding == "ucs2")
    destination = number(PREFIX[method], n)
    if coding == "gsm":  # ASCII letters, digits and . , are the same octets in GSM 03.38
        data_coding, data, per_part = 0, GSM_TEXT.encode("ascii"), 153
    else:
        data_coding, data, per_part = 8, UCS2_TEXT.encode("utf-16-be"), 134
    message_id = client.submit_ok(
        destination, b"", message_payload=data, data_coding=data_coding, registered_delivery=1
    )
    receipt = client.wait_receipt(message_id)
    check_receipt(receipt, message_id, DELIVERED, "DELIVRD", destination)

    records = [r for r in sims.control[method].received() if r["destination"] == destination]
    assert {r["data_coding"] for r in records} == {data_coding}
    if method == "payload":
        assert len(records) == 1
        assert records[0]["short_message"] == "" and records[0]["concat"] is None
        assert bytes.fromhex(records[0]["message_payload"]) == data
    else:
        assert len(records) == 3, [r["concat"] for r in records]
        concat = [r["concat"] for r in records]
        assert [(c["via"], c["total"], c["seq"]) for c in concat] == [
            (method, 3, s) for s in (1, 2, 3)
        ]
        assert len({c["ref"] for c in concat}) == 1
        chunks = []
        for r in records:
            chunk, udh = _user_data(r)
            if method == "udh":  # 05 00 03 ref total seq, or 06 08 04 ref ref total seq
                assert udh is not None and udh[-2:] == bytes((3, r["concat"]["seq"])), udh
            else:
                assert udh is None and r["message_payload"] is None
            assert len(chunk) <= per_part
            chunks.append(chunk)
        assert b"".join(chunks) == data

    # Exactly one receipt. The message settled (and its receipt was queued) only once every
    # part's receipt was in: one outbox row, and nothing more comes.
    assert state_of(sims, message_id) == "DELIVERED"
    client.listen(0.3)
    assert len(client.receipts(message_id)) == 1
    assert outbox_rows(sims, message_id) == ["DONE"]
    parts = sims.query(
        "SELECT count(*), min(state), max(state) FROM message_parts WHERE message_id = ?",
        (int(message_id),),
    )
    assert parts == [(len(records), "DELIVERED", "DELIVERED")]


# -- 3. carriers' ids in other forms -----------------------------------------------------------

ID_VARIANTS = ["plain", "decimal", "hexdec", "dechex", "hexdectext", "dechextext"]
CROSS_BASE = ["hexdec", "dechex", "hexdectext", "dechextext"]


@pytest.mark.parametrize("carrier", ID_VARIANTS)
def test_receipts_matched_whatever_the_id_form(sims, esme, carrier):
    """15 messages: the carrier's ids 1 to 15, so that 10-15 differ between hex and decimal
    (000000000A in the submit_sm_resp, 10 in the receipt, or 0000000010 and a) and no id read
    in the other base is also another id it gave."""
    client = esme(sims, "ids")
    prefix = PREFIX[carrier]
    before = sims.control[carrier].stats()["received"]
    assert carrier == "plain" or before == 0  # its ids start at 1
    ids = client.submit_many([(number(prefix, i), f"id {i}".encode()) for i in range(15)])
    receipts_settled(sims.control[carrier], before + 15)
    assert Counter(states(sims, ids).values()) == {"DELIVERED": 15}
    assert f"receipt from {carrier} for an id we did not send" not in sims.log()


@pytest.mark.parametrize("carrier", CROSS_BASE)
def test_receipts_matched_when_forms_collide(sims, esme, carrier):
    """30 more messages (the carrier's ids 16-45): now some receipt ids, read as written, are
    also ids the carrier gave to other messages of ours in the other base (hex carrier: the
    receipt "16" for 0x10, and the id 0x16; decimal carrier: the receipt "10" for 16, and the
    id 10). Small ids make it certain here; with real ten-digit ids it happens to a decimal
    carrier for every id whose hex form has no letter (about 2 % of them), when the smaller
    decimal id it then reads as was one of ours."""
    client = esme(sims, "ids")
    prefix = PREFIX[carrier]
    before = sims.control[carrier].stats()["received"]
    ids = client.submit_many([(number(prefix, 100 + i), f"id {i}".encode()) for i in range(30)])
    receipts_settled(sims.control[carrier], before + 30)
    assert Counter(states(sims, ids).values()) == {"DELIVERED": 30}


# -- 4. failures -------------------------------------------------------------------------------


def test_undeliverable_and_failure_only_receipts(sims, esme):
    client = esme(sims, "fails")
    failing, plain = number(PREFIX["failing"], 1), number(PREFIX["plain"], 400)
    always = client.submit_ok(failing, b"never arrives", registered_delivery=1)
    on_failure = client.submit_ok(failing, b"never either", registered_delivery=2)
    delivered = client.submit_ok(plain, b"arrives quietly", registered_delivery=2)
    for message_id in (always, on_failure):
        text = check_receipt(
            client.wait_receipt(message_id), message_id, UNDELIVERABLE, "UNDELIV", failing
        )
        assert "dlvrd:000" in text and "err:001" in text  # the carrier's err, passed on
        assert state_of(sims, message_id) == "UNDELIVERABLE"
    # A delivered message with registered_delivery=2 (failures only): settled, no receipt.
    wait_until(lambda: state_of(sims, delivered) == "DELIVERED", 10, "DELIVERED")
    client.listen(0.3)
    assert client.receipts(delivered) == []
    assert outbox_rows(sims, delivered) == []


def test_a_receipt_that_never_comes_ends_unknown(smsc_factory, free_ports, sim_control, esme):
    """A carrier that takes messages and loses every receipt: after `receipt_timeout` the
    message ends UNKNOWN and its client gets that receipt."""
    port, control_port = free_ports(2)
    server = smsc_factory(
        config={
            "accounts": [{"system_id": "lost", "password": "lost"}],
            "carriers": [
                {"name": "loser", "port": port, "prefixes": ["33600013"], "simulate": True,
                 "simulator": {"dlr_delay": DLR_DELAY, "lose_rate": 1.0,
                               "control_port": control_port}},
            ],
            "queue": {"receipt_timeout": 1.0},
        }
    )  # fmt: skip
    control = sim_control(control_port)
    wait_until(lambda: control.stats()["binds"]["transceiver"], 10, "loser bound")
    client = esme(server, "lost")
    destination = number("33600013", 1)
    message_id = client.submit_ok(destination, b"into the void", registered_delivery=1)
    wait_until(lambda: control.stats()["receipts_lost"] == 1, 10, "the carrier took it")
    receipt = client.wait_receipt(message_id, timeout=10)
    check_receipt(receipt, message_id, UNKNOWN, "UNKNOWN", destination)
    assert state_of(server, message_id) == "UNKNOWN"


# -- 5. routing --------------------------------------------------------------------------------


def test_failover_to_the_next_carrier_that_takes_the_number(subs, esme):
    client = esme(subs, "routes")
    numbers = [number("33600020", i) for i in range(5)]
    ids = client.submit_many([(n, b"fail over") for n in numbers], registered_delivery=1)
    for message_id, n in zip(ids, numbers, strict=True):
        check_receipt(client.wait_receipt(message_id), message_id, DELIVERED, "DELIVRD", n)
    marks = ",".join("?" * len(ids))
    rows = subs.query(f"SELECT carrier FROM messages WHERE id IN ({marks})", [int(i) for i in ids])
    assert sorted(rows) == [("second",)] * len(ids)
    got = Counter(r["destination"] for r in subs.control["second"].received())
    assert got == dict.fromkeys(numbers, 1)
    # Neither the one after it by priority, nor a bound carrier that does not take the number.
    assert subs.control["third"].stats()["received"] == 0
    assert subs.control["stranger"].stats()["received"] == 0


@pytest.mark.parametrize("destination", ["33699999999", "33700000001", "447700900001"])
def test_unroutable_number_refused_at_submit(subs, esme, destination):
    client = esme(subs, "routes")
    resp = client.submit(destination, b"nowhere to go")
    assert resp.status == RINVDSTADR
    assert not subs.query("SELECT id FROM messages WHERE destination = ?", (destination,))


# -- 6. throughput -----------------------------------------------------------------------------

TPS = 20
BURST = 200


@pytest.fixture(scope="module")
def tps_burst(sims):
    """200 messages at once to a carrier with tps = 20; what its simulator saw."""
    control = sims.control["tps20"]
    bound = Esme(_bound_client(sims, "tps"))
    texts = [f"burst {i:03d}".encode() for i in range(BURST)]
    bound.submit_many([(number(PREFIX["tps20"], i % 50), t) for i, t in enumerate(texts)])
    minimum = (BURST - TPS) / TPS  # 20 at once, then 20 a second
    wait_until(
        lambda: control.stats()["received"] >= BURST, minimum + 15, f"{BURST} at the carrier"
    )
    bound.client.unbind()
    bound.client.disconnect()
    return texts, control.stats(), control.received()


def _bound_client(server, account: str):
    client = smpplib.client.Client(*server.address, timeout=5, allow_unknown_opt_params=True)
    client.connect()
    client.bind_transceiver(system_id=account, password=account[:8])
    return client


def _window_counts(times: list[float]) -> list[tuple[float, int]]:
    """For each arrival t: how many arrived in (t - 1, t], the simulator's own measure."""
    out, start = [], 0
    for end, t in enumerate(times):
        while times[start] <= t - 1.0:
            start += 1
        out.append((t, end - start + 1))
    return out


def test_carrier_tps_is_kept(tps_burst):
    """The simulator's measure: for each arrival t, the arrivals in (t - 1, t]; max_rate is
    the largest. The switch caps the carrier at r = 20 parts a second on its own clock, and
    after an idle spell it may send r at once: a token bucket holding one second that starts
    full (r at once, then one every 1/r s), or a sliding second (r at once, the next r one
    second later). A part reaches the simulator some delay d after the switch counted it; if
    d varies by J, a simulator second holds what the switch counted in 1 + J of its seconds:
    the first burst and the next second's parts when J > 0, so at most 2r (for J < 1/r), and
    at most r only if J = 0. Checked: at most 2r in any simulator second, nothing lost or
    doubled, and the burst took (200 - r) / r seconds, no less (the long-run rate is r). The
    strict reading, at most r in every simulator second, is the xfail test below."""
    texts, stats, records = tps_burst
    assert stats["received"] == BURST
    assert Counter(r["text"].encode() for r in records) == dict.fromkeys(texts, 1)
    times = sorted(r["received_at"] for r in records)
    counts = _window_counts(times)
    over = [(round(t - times[0], 4), n) for t, n in counts if n > TPS]
    print(f"\ntps {TPS}: max_rate {stats['max_rate']}; seconds over {TPS}: {over}")
    assert max(n for _, n in counts) == stats["max_rate"] <= 2 * TPS
    span = times[-1] - times[0]
    assert (BURST - TPS) / TPS - 0.05 < span < (BURST - TPS) / TPS + 2.0, span


def test_carrier_tps_is_kept_in_every_second(tps_burst):
    _, stats, _ = tps_burst
    assert stats["max_rate"] <= TPS


def test_throttling_carrier_slows_the_switch_down(sims, esme):
    """The simulator takes 10/s and says ESME_RTHROTTLED above; the switch sends up to 100/s:
    nothing is lost or sent twice, and each number gets its messages in the order sent."""
    control = sims.control["throttling"]
    client = esme(sims, "tps")
    count, destinations = 40, [number(PREFIX["throttling"], i) for i in range(4)]
    messages = [(destinations[i % 4], f"in order {i:02d}".encode()) for i in range(count)]
    started = time.monotonic()
    client.submit_many(messages)
    wait_until(lambda: control.stats()["received"] >= count, 40, f"{count} at the carrier")
    elapsed = time.monotonic() - started
    stats = control.stats()
    records = control.received()
    times = [r["received_at"] for r in records]
    attempts = (count + stats["throttled"]) / (max(times) - min(times))
    print(
        f"\nthrottling: {count} messages in {elapsed:.1f} s, {stats['throttled']} refused, "
        f"{attempts:.0f} submit_sm/s tried (the switch's cap: 100/s)"
    )
    assert Counter(r["text"] for r in records) == {t.decode(): 1 for _, t in messages}
    assert stats["throttled"] > 0
    assert stats["max_rate"] <= 10
    assert attempts < 50  # it pauses after a refusal, instead of trying at its own 100/s
    arrived = defaultdict(list)
    for r in records:
        arrived[r["destination"]].append(r["text"])
    sent = defaultdict(list)
    for destination, text in messages:
        sent[destination].append(text.decode())
    assert arrived == sent


# -- 7. a carrier killed mid-traffic ----------------------------------------------------------


def test_carrier_killed_and_restarted(subs, esme):
    """SIGKILL the carrier while messages flow, start it again on the same port: every
    acknowledged message reaches it (in one life or the other), and the only ones it gets twice
    are those it had taken but not yet answered at the cut: at most binds x window."""
    killme = subs.killme
    client = esme(subs, "kill")
    count = 400
    texts = [f"cut {i:03d}" for i in range(count)]
    ids = client.submit_many(
        [(number("33600030", i % 100), t.encode()) for i, t in enumerate(texts)]
    )
    assert len(set(ids)) == count  # all acknowledged
    wait_until(lambda: len(killme.records(1)) >= count // 4, 20, "traffic at the carrier")
    killme.kill()
    first_life = len(killme.records(1))
    killme.start()  # same port: the switch must find it again by itself
    wait_until(
        lambda: {r["text"] for r in killme.records()} >= set(texts),
        30,
        f"all {count} at the carrier; missing: "
        f"{len(set(texts) - {r['text'] for r in killme.records()})}",
    )
    seen = Counter(r["text"] for r in killme.records())
    twice = sorted(t for t, n in seen.items() if n > 1)
    print(
        f"\ncarrier killed after {first_life} of {count} messages; "
        f"{len(killme.records(2))} in its second life; {len(twice)} received twice "
        f"(at most {KILL_BINDS} binds x {KILL_WINDOW} window = {KILL_BINDS * KILL_WINDOW}): "
        f"{twice}"
    )
    assert set(seen) == set(texts) and max(seen.values()) <= 2
    assert len(twice) <= KILL_BINDS * KILL_WINDOW
    # What reached it twice is what the first life took last, just before the cut.
    last_of_first = [r["text"] for r in killme.records(1)][-KILL_BINDS * KILL_WINDOW :]
    assert set(twice) <= set(last_of_first)
    wait_until(lambda: killme.stats()["binds"]["transceiver"] == KILL_BINDS, 10, "both binds again")
    assert "carrier killme bound" in subs.log().split("carrier killme link closed")[-1]
    # One socket per bind: no reconnect storm, no second socket beside an open one.
    second_life = killme.log().split("---- life #2 ----")[-1]
    assert second_life.count("switch bound as transceiver") == KILL_BINDS


# -- 8. a carrier refusing for good ------------------------------------------------------------


def test_carrier_refuses_a_message_for_good(subs, esme):
    """The carrier answers ESME_RINVDSTADR: final, REJECTED, and a failure receipt."""
    client = esme(subs, "refuse")
    refused, refused2, accepted = "33600040901", "33600040902", "33600040001"
    always = client.submit_ok(refused, b"refused", registered_delivery=1)
    on_failure = client.submit_ok(refused2, b"refused too", registered_delivery=2)
    fine = client.submit_ok(accepted, b"accepted", registered_delivery=1)
    text = check_receipt(client.wait_receipt(always), always, REJECTED, "REJECTD", refused)
    assert "dlvrd:000" in text and f"err:{RINVDSTADR:03d}" in text
    check_receipt(client.wait_receipt(on_failure), on_failure, REJECTED, "REJECTD", refused2)
    check_receipt(client.wait_receipt(fine), fine, DELIVERED, "DELIVRD", accepted)
    shown = subs.message(always)  # `smsc message show ID --json`
    assert (shown["state"], shown["carrier"]) == ("REJECTED", "refuser")
    # Refused once, never tried again.
    refusals = Counter(r["destination"] for r in subs.refuser.records() if r["status"])
    assert refusals == {refused: 1, refused2: 1}
