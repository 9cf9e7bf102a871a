"""Tests for the carrier simulator (smsc.simulator).

The unit tests run its sessions over `StringTransport` on a `Clock`; the end-to-end test starts
`smsc carrier-sim` as a subprocess and drives it with smpplib and urllib.
"""

import io
import json
import random
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.web.test.requesthelper import DummyRequest

from smsc.config import SimulatorConfig
from smsc.protocol import concat
from smsc.protocol.constants import Command, MessageState, Status, Tag
from smsc.protocol.pdu import Pdu, decode, encode
from smsc.simulator import RESPONSE_TIMEOUT, RETRY_DELAY, Simulator, _Control

C = Command
SUB = "33600000001"
DEST = "33600000002"
RECEIPT = re.compile(
    r"id:(\w+) sub:001 dlvrd:(\d{3}) submit date:(\d{10}) done date:(\d{10}) "
    r"stat:(\w+) err:(\d{3}) text:(.*)"
)


class Peer:
    """A client bound to the simulator over a StringTransport; it answers enquire_link."""

    def __init__(self, sim: Simulator, mode: str = "transceiver", system_id: str = "switch"):
        self.proto = sim.build_protocol()
        self.transport = StringTransport()
        self.proto.makeConnection(self.transport)
        self.seq = 0
        self.write(getattr(C, f"bind_{mode}"), {"system_id": system_id, "password": "x"})
        resp, *self.unread = self.read()  # what was waiting for a bind follows its resp
        assert resp.command is getattr(C, f"bind_{mode}_resp") and resp.status == 0

    def write(self, command, params=None, tlvs=None, sequence=None) -> int:
        if sequence is None:
            self.seq += 1
            sequence = self.seq
        pdu = Pdu(command, sequence, 0, params or {}, tlvs or {})
        self.proto.dataReceived(encode(pdu))
        return sequence

    def answer(self, request: Pdu, status: int = 0) -> None:
        self.proto.dataReceived(encode(Pdu(request.command.response, request.sequence, status)))

    def read(self) -> list[Pdu]:
        data = self.transport.value()
        self.transport.clear()
        pdus, self.unread = getattr(self, "unread", []), []
        while data:
            size = int.from_bytes(data[:4], "big")
            pdus.append(decode(data[:size]))
            data = data[size:]
        for pdu in pdus:
            if pdu.command is C.enquire_link:
                self.answer(pdu)
        return [p for p in pdus if p.command is not C.enquire_link]

    def submit(self, text="hello", registered_delivery=1, **params) -> Pdu:
        self.write(
            C.submit_sm,
            {
                "source_addr_ton": 5,
                "source_addr": "Acme",
                "dest_addr_ton": 1,
                "dest_addr_npi": 1,
                "destination_addr": DEST,
                "registered_delivery": registered_delivery,
                "short_message": text.encode() if isinstance(text, str) else text,
                **params,
            },
        )
        [resp] = self.read()
        assert resp.command is C.submit_sm_resp
        return resp


def make(clock=None, **config) -> tuple[Simulator, Clock]:
    clock = clock or Clock()
    options = {
        k: config.pop(k) for k in ("receipt_id_format", "receipt_tlvs", "seed") if k in config
    }
    return Simulator("orange", clock, SimulatorConfig(**config), **options), clock


def receipt_fields(pdu: Pdu) -> tuple:
    match = RECEIPT.fullmatch(pdu.params["short_message"].decode())
    assert match, pdu.params["short_message"]
    return match.groups()


# -- ids ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("id_format", "receipt_format", "sent", "receipted"),
    [
        ("hex", None, "000000001A", "1a"),
        ("dec", None, "0000000026", "26"),
        ("hex", "dec", "000000001A", "26"),
        ("dec", "hex", "0000000026", "1a"),
    ],
)
def test_ids_in_responses_and_receipts(id_format, receipt_format, sent, receipted):
    sim, clock = make(id_format=id_format, receipt_id_format=receipt_format, dlr_delay=0)
    peer = Peer(sim)
    for _ in range(25):
        peer.submit(registered_delivery=0)
    assert peer.submit().params["message_id"] == sent
    clock.advance(0)
    [receipt] = peer.read()
    assert receipt_fields(receipt)[0] == receipted
    assert receipt.tlvs[Tag.receipted_message_id] == receipted


def test_data_sm_is_acked_and_recorded():
    sim, _ = make()
    peer = Peer(sim)
    payload = b"hello by data sm"
    addresses = {"source_addr": "Acme", "destination_addr": DEST}
    peer.write(C.data_sm, addresses, {Tag.message_payload: payload})
    [resp] = peer.read()
    assert (resp.command, resp.status) == (C.data_sm_resp, 0)
    assert resp.params["message_id"] == "0000000001"
    [record] = sim.received_since()["records"]
    assert (record["command"], record["text"]) == ("data_sm", "hello by data sm")
    assert record["message_payload"] == payload.hex()


def test_unsupported_requests_are_refused_in_their_response():
    sim, _ = make()
    peer = Peer(sim)
    peer.write(C.query_sm, {"message_id": "1"})
    [resp] = peer.read()
    assert (resp.command, resp.status) == (C.query_sm_resp, Status.RQUERYFAIL)


# -- throttling --------------------------------------------------------------------------------


def test_throttling_uses_a_sliding_one_second_window():
    sim, clock = make(tps=3)
    peer = Peer(sim)
    statuses = []
    for step in (0.0, 0.25, 0.25, 0.25, 0.35, 0.1, 0.1):  # t = 0 .25 .5 .75 1.1 1.2 1.3
        clock.advance(step)
        statuses.append(peer.submit(registered_delivery=0).status)
    T = Status.RTHROTTLED
    # .75: three in (-.25, .75]; 1.1: t=0 has left; 1.2: .25 .5 1.1 fill it; 1.3: .25 has left
    assert statuses == [0, 0, 0, T, 0, T, 0]
    assert (sim.received, sim.throttled, sim.max_rate) == (5, 2, 3)
    assert len(sim.records) == 5  # throttled submits are not received


def test_max_rate_without_a_cap():
    sim, clock = make()
    peer = Peer(sim)
    for _ in range(7):
        peer.submit(registered_delivery=0)
        clock.advance(0.1)
    clock.advance(1.0)
    peer.submit(registered_delivery=0)
    assert sim.max_rate == 7 and sim.throttled == 0


def test_max_binds_is_the_most_bound_at_once():
    sim, _ = make()
    first, second = Peer(sim), Peer(sim, "receiver")
    first.proto.connectionLost(None)
    Peer(sim, "transmitter")  # takes the place of the lost one: still two at once
    second.write(C.unbind)
    assert second.read()[0].command is C.unbind_resp
    assert sim.stats()["binds"] == {"transmitter": 1, "receiver": 0, "transceiver": 0}
    assert sim.stats()["max_binds"] == 2
    third, fourth = Peer(sim), Peer(sim)
    assert sim.stats()["max_binds"] == 3
    third.proto.connectionLost(None)
    fourth.proto.connectionLost(None)
    sim.reset()  # the count starts again from the one bind that stays
    assert sim.stats()["max_binds"] == 1
    Peer(sim)
    assert sim.stats()["max_binds"] == 2


# -- receipts ----------------------------------------------------------------------------------


def test_receipt_after_the_delay_with_text_and_tlvs():
    sim, clock = make(dlr_delay=2.0)
    clock.advance(1_767_225_600)  # 2026-01-01 00:00 UTC
    peer = Peer(sim)
    text = "Votre code est 123456, valable 5 minutes"
    resp = peer.submit(text)
    clock.advance(1.9)
    assert peer.read() == []
    clock.advance(0.1)
    [receipt] = peer.read()
    p = receipt.params
    assert receipt.command is C.deliver_sm and p["esm_class"] == 0x04
    assert (p["source_addr"], p["dest_addr_ton"], p["destination_addr"]) == (DEST, 5, "Acme")
    rid, dlvrd, submitted, done, stat, err, head = receipt_fields(receipt)
    assert int(rid, 16) == int(resp.params["message_id"], 16) == 1
    assert (dlvrd, submitted, done, stat, err) == (
        "001",
        "2601010000",
        "2601010000",
        "DELIVRD",
        "000",
    )
    assert head == text[:20]
    assert receipt.tlvs == {
        Tag.receipted_message_id: "1",
        Tag.message_state: MessageState.DELIVERED,
    }
    assert sim.stats()["receipts_pending"] == 1
    peer.answer(receipt)
    stats = sim.stats()
    assert (stats["receipts_sent"], stats["receipts_acked"], stats["receipts_pending"]) == (1, 1, 0)


def test_receipt_without_tlvs():
    sim, clock = make(dlr_delay=0, receipt_tlvs=False)
    peer = Peer(sim)
    peer.submit()
    clock.advance(0)
    [receipt] = peer.read()
    assert receipt.tlvs == {} and receipt_fields(receipt)[4] == "DELIVRD"


def test_registered_delivery_decides_whether_a_receipt_is_sent():
    sim, clock = make(dlr_delay=0)
    peer = Peer(sim)
    for asked in (0, 2, 0x10):  # none; failure only (it succeeds); intermediate only
        peer.submit(registered_delivery=asked)
    clock.advance(0)
    assert peer.read() == [] and sim.stats()["receipts_pending"] == 0

    sim, clock = make(dlr_delay=0, fail_rate=1.0)
    peer = Peer(sim)
    peer.submit(registered_delivery=2)
    clock.advance(0)
    [receipt] = peer.read()
    _, dlvrd, _, _, stat, err, _ = receipt_fields(receipt)
    assert (dlvrd, stat, err) == ("000", "UNDELIV", "001")
    assert receipt.tlvs[Tag.message_state] == MessageState.UNDELIVERABLE


def test_lose_rate_share_of_receipts_never_comes():
    sim, clock = make(dlr_delay=0, lose_rate=1.0)
    peer = Peer(sim)
    for asked in (1, 1, 0):
        peer.submit(registered_delivery=asked)
    clock.advance(10)
    assert peer.read() == []
    assert (sim.stats()["receipts_lost"], sim.stats()["receipts_pending"]) == (2, 0)

    sim, clock = make(dlr_delay=0, lose_rate=0.5, seed=7)
    peer = Peer(sim)
    for _ in range(40):
        peer.submit()
    clock.advance(0)
    sent = 0
    while batch := peer.read():  # a window at a time
        sent += len(batch)
        for receipt in batch:
            peer.answer(receipt)
    assert 0 < sent < 40 and sent + sim.stats()["receipts_lost"] == 40


def test_fail_rate_is_reproducible_with_a_seed():
    def failures(seed):
        sim, clock = make(dlr_delay=0, fail_rate=0.3, seed=seed)
        peer = Peer(sim)
        for _ in range(200):
            peer.submit()
        clock.advance(0)
        receipts = []
        while batch := peer.read():  # a window at a time
            receipts += batch
            for receipt in batch:
                peer.answer(receipt)
        return [receipt_fields(r)[4] == "UNDELIV" for r in receipts]

    draws = random.Random(7)
    expected = [draws.random() < 0.3 for _ in range(200)]
    assert failures(7) == expected == failures(7)
    assert 40 < sum(expected) < 80


def test_receipts_wait_for_a_receiver_of_the_same_system_id():
    sim, clock = make(dlr_delay=1.0)
    tx = Peer(sim, "transmitter")
    tx.submit()
    clock.advance(5)
    assert tx.read() == [] and sim.stats()["receipts_pending"] == 1
    other = Peer(sim, "receiver", system_id="someone")
    assert other.read() == []
    rx = Peer(sim, "receiver")
    [receipt] = rx.read()  # sent right after the bind_resp the helper read
    assert receipt.params["esm_class"] == 0x04
    assert sim.binds() == {"transmitter": 1, "receiver": 2, "transceiver": 0}


def test_receipt_goes_to_the_submitting_transceiver():
    sim, clock = make(dlr_delay=0)
    first, second = Peer(sim), Peer(sim)
    second.submit()
    clock.advance(0)
    assert first.read() == [] and len(second.read()) == 1


def test_refused_receipt_is_retried_later():
    sim, clock = make(dlr_delay=0)
    peer = Peer(sim)
    peer.submit()
    clock.advance(0)
    [receipt] = peer.read()
    peer.answer(receipt, Status.RSYSERR)
    clock.advance(RETRY_DELAY - 0.01)
    assert peer.read() == []
    clock.advance(0.01)
    [again] = peer.read()
    assert again.params == receipt.params and again.sequence != receipt.sequence
    peer.answer(again)
    stats = sim.stats()
    assert (stats["receipts_sent"], stats["receipts_acked"], stats["retries"]) == (2, 1, 1)


def test_unanswered_receipt_is_retried_after_the_response_timeout():
    sim, clock = make(dlr_delay=0)
    peer = Peer(sim)
    peer.submit()
    clock.advance(0)
    [receipt] = peer.read()
    clock.advance(RESPONSE_TIMEOUT)
    assert peer.read() == []
    clock.advance(RETRY_DELAY)
    [again] = peer.read()
    assert again.command is C.deliver_sm and again.params == receipt.params


def test_receipts_in_flight_on_a_lost_bind_go_to_another():
    sim, clock = make(dlr_delay=0)
    tx = Peer(sim, "transmitter")
    first, second = Peer(sim, "receiver"), Peer(sim, "receiver")
    for _ in range(4):
        tx.submit()
    clock.advance(0)
    lost, kept = first.read(), second.read()
    assert len(lost) == len(kept) == 2  # spread over both binds
    first.proto.connectionLost(None)
    resent = second.read()
    assert [receipt_fields(p)[0] for p in resent] == [receipt_fields(p)[0] for p in lost]
    for pdu in kept + resent:
        second.answer(pdu)
    stats = sim.stats()
    assert (stats["receipts_acked"], stats["receipts_pending"], stats["retries"]) == (4, 0, 2)


def test_window_limits_receipts_in_flight():
    sim, clock = make(dlr_delay=0)
    sim.window = 2
    peer = Peer(sim)
    for _ in range(5):
        peer.submit()
    clock.advance(0)
    sent = peer.read()
    assert len(sent) == 2
    peer.answer(sent[0])
    assert len(peer.read()) == 1


# -- MO ----------------------------------------------------------------------------------------


def test_mo_is_delivered_to_a_receiver_once_one_binds():
    sim, _ = make()
    assert sim.inject_mo("33600000001", "36180", "STOP") == 1
    assert sim.stats()["mo_pending"] == 1
    peer = Peer(sim, "receiver")
    [mo] = peer.read()
    p = mo.params
    assert (p["esm_class"], p["data_coding"], p["short_message"]) == (0, 0, b"STOP")
    assert (p["source_addr_ton"], p["source_addr"], p["destination_addr"]) == (1, SUB, "36180")
    peer.answer(mo)
    stats = sim.stats()
    assert (stats["mo_sent"], stats["mo_acked"], stats["mo_pending"]) == (1, 1, 0)


def test_long_mo_goes_in_concatenated_parts():
    sim, _ = make()
    peer = Peer(sim)
    text = "Arrêt des messages, merci " * 4  # ê: UCS-2
    assert sim.inject_mo(SUB, "36180", text) == 2
    parts = peer.read()
    assert [p.params["data_coding"] for p in parts] == [8, 8]
    infos = [
        concat.concat_info(p.params["esm_class"], p.params["short_message"], {}) for p in parts
    ]
    assert [(i[1], i[2]) for i in infos] == [(2, 1), (2, 2)]
    assert b"".join(i[3] for i in infos).decode("utf-16-be") == text


def test_mo_to_one_system_id():
    sim, _ = make()
    other, mine = Peer(sim, system_id="other"), Peer(sim, system_id="mine")
    sim.inject_mo(SUB, "36180", "CONTACT", coding="ucs2", system_id="mine")
    assert other.read() == []
    [mo] = mine.read()
    assert mo.params["data_coding"] == 8
    assert mo.params["short_message"] == "CONTACT".encode("utf-16-be")


@pytest.mark.parametrize(
    "body",
    [
        {"to": "36180", "text": "STOP"},
        {"from": SUB, "to": "36180", "text": "STOP", "coding": "latin1"},
        {"from": SUB, "to": "36180", "text": "ê", "coding": "gsm"},
        {"from": SUB, "to": "36180", "text": 5},
        {"from": SUB, "to": "36180", "text": "STOP", "extra": 1},
        [1],
        "not json",
    ],
)
def test_bad_mo_is_a_400(body):
    sim, _ = make()
    data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    code, answer = http(sim, b"POST", b"/mo", data)
    assert code == 400 and "error" in answer
    assert sim.stats()["mo_pending"] == 0


# -- records and control -----------------------------------------------------------------------


def http(sim, method, path, body=b"", args=None):
    request = DummyRequest([])
    request.method = method
    request.path = path
    request.args = args or {}
    request.content = io.BytesIO(body)
    answer = _Control(sim).render(request)
    return request.responseCode or 200, json.loads(answer)


def test_records_and_http_control():
    sim, clock = make()
    peer = Peer(sim)
    clock.advance(100)
    peer.submit("Hé @ toi".encode("utf-16-be"), data_coding=8)
    udh = concat.udh(7, 2, 1)
    peer.submit(udh + b"part one", esm_class=0x40, registered_delivery=0)
    sar = {Tag.sar_msg_ref_num: 9, Tag.sar_total_segments: 2, Tag.sar_segment_seqnum: 2}
    peer.write(C.submit_sm, {"destination_addr": DEST, "short_message": b"\x00 gsm"}, sar)
    peer.read()

    code, got = http(sim, b"GET", b"/received", args={b"since": [b"1"]})
    assert code == 200 and got["next"] == 3
    udh_part, sar_part = got["records"]
    assert udh_part["index"] == 1 and udh_part["id"] == "0000000002"
    assert udh_part["concat"] == {"ref": 7, "total": 2, "seq": 1, "via": "udh"}
    assert udh_part["text"] == "part one" and udh_part["short_message"] == (udh + b"part one").hex()
    assert sar_part["concat"] == {"ref": 9, "total": 2, "seq": 2, "via": "sar"}
    assert sar_part["text"] == "@ gsm"  # 0x00 is @ in GSM 03.38
    first = sim.received_since(0, limit=1)
    assert first["next"] == 1
    [ucs2] = first["records"]
    assert (ucs2["text"], ucs2["data_coding"], ucs2["system_id"]) == ("Hé @ toi", 8, "switch")
    assert (ucs2["source"], ucs2["destination"], ucs2["received_at"]) == ("Acme", DEST, 100.0)

    code, stats = http(sim, b"GET", b"/stats")
    assert stats["received"] == 3 and stats["binds"]["transceiver"] == 1
    assert http(sim, b"GET", b"/received", args={b"since": [b"x"]})[0] == 400
    assert http(sim, b"GET", b"/nowhere")[0] == 404

    mo = json.dumps({"from": SUB, "to": "36180", "text": "STOP"}).encode()
    code, answer = http(sim, b"POST", b"/mo", mo)
    assert (code, answer) == (202, {"queued": True, "parts": 1})
    assert peer.read()[0].params["short_message"] == b"STOP"

    assert http(sim, b"POST", b"/reset") == (200, {"reset": True})
    assert sim.received_since() == {"next": 0, "records": []}
    stats = sim.stats()
    assert (stats["received"], stats["mo_pending"], stats["receipts_pending"]) == (0, 0, 0)
    clock.advance(5)
    assert peer.read() == []  # the receipt owed before the reset is forgotten
    assert peer.submit().params["message_id"] == "0000000004"  # ids stay unique


# -- end to end --------------------------------------------------------------------------------


@pytest.mark.e2e
def test_carrier_sim_command_with_smpplib(tmp_path):
    import smpplib.client
    import smpplib.consts

    script = Path(sys.executable).with_name("smsc")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "smsc"]
    log_path = tmp_path / "sim.log"
    with log_path.open("w") as log:
        options = "--port 0 --name sfr --control-port 0 --dlr-delay 0.2 --id-format dec"
        options += " --receipt-id-format hex"
        proc = subprocess.Popen(
            [*command, "--config", str(tmp_path / "absent.toml"), "carrier-sim", *options.split()],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 15
        while True:
            out = log_path.read_text()
            smpp = re.search(r"carrier-sim sfr listening on ([0-9.]+):(\d+)", out)
            control = re.search(r"carrier-sim sfr control on ([0-9.]+):(\d+)", out)
            if smpp and control:
                break
            assert proc.poll() is None, out
            assert time.monotonic() < deadline, out
            time.sleep(0.05)
        base = f"http://{control.group(1)}:{control.group(2)}"

        def get(path):
            with urllib.request.urlopen(base + path, timeout=5) as r:
                return json.load(r)

        client = smpplib.client.Client(
            smpp.group(1), int(smpp.group(2)), timeout=5, allow_unknown_opt_params=True
        )
        received, sent = [], []
        client.set_message_received_handler(lambda pdu: received.append(pdu))
        client.set_message_sent_handler(lambda pdu: sent.append(pdu))
        client.connect()
        try:
            client.bind_transceiver(system_id="switch", password="secret")
            client.send_message(
                source_addr_ton=smpplib.consts.SMPP_TON_INTL,
                source_addr="33600000001",
                dest_addr_ton=smpplib.consts.SMPP_TON_INTL,
                destination_addr="33600000002",
                short_message=b"hello carrier",
                registered_delivery=1,
            )
            while not received:
                client.read_once()
            [resp] = sent
            assert resp.message_id == b"0000000001"
            [receipt] = received
            assert receipt.esm_class == 0x04
            assert receipt.short_message.startswith(b"id:1 sub:001 dlvrd:001 ")
            assert b"stat:DELIVRD err:000 text:hello carrier" in receipt.short_message
            assert receipt.receipted_message_id == b"1"

            [record] = get("/received?since=0")["records"]
            assert (record["id"], record["text"], record["source"]) == (
                "0000000001",
                "hello carrier",
                "33600000001",
            )
            stats = get("/stats")
            assert stats["binds"]["transceiver"] == 1 and stats["received"] == 1
            while stats["receipts_acked"] < 1:  # smpplib's deliver_sm_resp on its way
                assert time.monotonic() < deadline
                time.sleep(0.02)
                stats = get("/stats")

            body = json.dumps({"from": "33600000002", "to": "36180", "text": "STOP"}).encode()
            request = urllib.request.Request(base + "/mo", data=body, method="POST")
            with urllib.request.urlopen(request, timeout=5) as r:
                assert r.status == 202 and json.load(r)["queued"] is True
            while len(received) < 2:
                client.read_once()
            mo = received[1]
            assert (mo.esm_class, mo.short_message) == (0, b"STOP")
            assert mo.source_addr == b"33600000002" and mo.destination_addr == b"36180"

            with pytest.raises(urllib.error.HTTPError) as bad:
                urllib.request.urlopen(
                    urllib.request.Request(base + "/mo", data=b"{}", method="POST"), timeout=5
                )
            assert bad.value.code == 400
            client.unbind()
        finally:
            client.disconnect()
    finally:
        proc.terminate()
        proc.wait(10)
    assert "Traceback" not in log_path.read_text()
