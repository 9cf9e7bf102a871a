"""The real `smsc serve` over loopback, driven by `smpplib` (a client this project did not write)
and, for what smpplib cannot send (cancel_sm, replace_sm, submit_multi, broken PDUs), by PDUs
built by hand on a raw socket. Answers are read by smpplib or by hand, never by smsc's codec.

One server for the module: the tests use different numbers or accounts so that their state
does not mix.
"""

import struct
import time

import pytest
import smpplib.smpp
from smpplib import consts
from smpplib.exceptions import PDUError

pytestmark = pytest.mark.e2e

WINDOW = 10
ALICE = ("alice", "alicepw")
BOB = ("bob", "bobpw")
SOURCE = "36180"  # a short code: 06/07 numbers are refused as senders

ROK = 0x00
RINVMSGLEN = 0x01
RINVCMDLEN = 0x02
RINVCMDID = 0x03
RINVBNDSTS = 0x04
RALYBND = 0x05
RINVSRCADR = 0x0A
RINVDSTADR = 0x0B
RBINDFAIL = 0x0D
RINVPASWD = 0x0E
RINVSYSID = 0x0F
RCANCELFAIL = 0x11
RREPLACEFAIL = 0x13
RINVDLNAME = 0x34
RTHROTTLED = 0x58
RINVSCHED = 0x61
RINVEXPIRY = 0x62
RQUERYFAIL = 0x67
RINVDCS = 0x400  # smsc's vendor status for a data_coding it does not carry

GENERIC_NACK = 0x80000000
QUERY_SM = 0x03
SUBMIT_SM = 0x04
REPLACE_SM = 0x07
CANCEL_SM = 0x08
ENQUIRE_LINK = 0x15
SUBMIT_MULTI = 0x21

ENROUTE, DELIVERED, EXPIRED, DELETED = 1, 2, 3, 4


@pytest.fixture(scope="module")
def server(smsc_factory, smsc_account):
    return smsc_factory(
        smpp={"window": WINDOW},
        config={
            "accounts": [
                {"system_id": ALICE[0], "password": ALICE[1]},
                {"system_id": BOB[0], "password": BOB[1]},
            ]
        },
        accounts=[
            smsc_account("capped", "cappedpw", tps=5),
            smsc_account("limited", "limitpw", max_binds=2),
            smsc_account("gone", "gonepw"),
        ],
    )


# -- hand-made PDUs and hand-written readings ------------------------------------------------


def c(value: str) -> bytes:
    return value.encode("latin-1") + b"\0"


def read_c(body: bytes, pos: int) -> tuple[str, int]:
    end = body.index(b"\0", pos)
    return body[pos:end].decode("latin-1"), end + 1


def query_sm_body(message_id: str, source: str = SOURCE) -> bytes:
    return c(message_id) + bytes((1, 1)) + c(source)


def cancel_sm_body(message_id: str = "", source: str = SOURCE, destination: str = "") -> bytes:
    return c("") + c(message_id) + bytes((1, 1)) + c(source) + bytes((1, 1)) + c(destination)


def replace_sm_body(message_id: str, text: bytes, source: str = SOURCE) -> bytes:
    # message_id, source, schedule, validity, registered_delivery, sm_default_msg_id, sm
    return (
        c(message_id) + bytes((1, 1)) + c(source) + c("") + c("") + bytes((0, 0, len(text))) + text
    )


def submit_multi_body(destinations: list, text: bytes, source: str = SOURCE) -> bytes:
    """destinations: (ton, npi, address) for an SME, or a str for a distribution list."""
    dests = b""
    for d in destinations:
        dests += b"\x02" + c(d) if isinstance(d, str) else bytes((1, d[0], d[1])) + c(d[2])
    return (
        c("")
        + bytes((1, 1))
        + c(source)
        + bytes((len(destinations),))
        + dests
        + bytes((0, 0, 0))
        + c("")
        + c("")
        + bytes((0, 0, 0, 0, len(text)))
        + text
    )


def read_query_sm_resp(body: bytes) -> tuple[str, str, int, int]:
    message_id, pos = read_c(body, 0)
    final_date, pos = read_c(body, pos)
    assert len(body) == pos + 2, body
    return message_id, final_date, body[pos], body[pos + 1]


def read_submit_multi_resp(body: bytes) -> tuple[str, list[tuple[int, int, str, int]]]:
    message_id, pos = read_c(body, 0)
    entries = []
    if pos < len(body):
        count = body[pos]
        pos += 1
        for _ in range(count):
            ton, npi = body[pos], body[pos + 1]
            address, pos = read_c(body, pos + 2)
            (status,) = struct.unpack_from(">I", body, pos)
            pos += 4
            entries.append((ton, npi, address, status))
    assert pos == len(body), f"trailing octets in submit_multi_resp: {body[pos:]!r}"
    return message_id, entries


def smpplib_reading(frame) -> object:
    """A raw frame decoded by smpplib."""
    raw = struct.pack(">IIII", 16 + len(frame.body), frame.command_id, frame.status, frame.sequence)
    return smpplib.smpp.parse_pdu(raw + frame.body, allow_unknown_opt_params=True)


# -- smpplib helpers ---------------------------------------------------------------------------


def sm(destination: str, text: bytes = b"hello", **kw) -> dict:
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


def submit(client, destination: str, text: bytes = b"hello", **kw):
    """submit_sm with smpplib; returns its submit_sm_resp."""
    request = client.send_message(**sm(destination, text, **kw))
    resp = client.read_pdu()
    assert resp.command == "submit_sm_resp", resp.command
    assert resp.sequence == request.sequence
    return resp


def submitted_id(client, destination: str, text: bytes = b"hello", **kw) -> str:
    resp = submit(client, destination, text, **kw)
    assert resp.status == ROK, hex(resp.status)
    message_id = resp.message_id.decode()
    assert message_id and len(message_id) <= 20, message_id
    return message_id


def bound(smpplib_client, server, mode="transceiver", account=ALICE):
    client = smpplib_client(server)
    resp = getattr(client, f"bind_{mode}")(system_id=account[0], password=account[1])
    assert resp.status == ROK
    return client


def query(client, message_id: str, source: str = SOURCE):
    """query_sm with smpplib (which only sends it from a receiver or transceiver bind)."""
    request = client.query_message(
        message_id=message_id, source_addr_ton=1, source_addr_npi=1, source_addr=source
    )
    resp = client.read_pdu()
    assert resp.command == "query_sm_resp", resp.command
    assert resp.sequence == request.sequence
    return resp


def bind_status(smpplib_client, server, system_id: str, password: str, mode="transmitter"):
    client = smpplib_client(server)
    try:
        getattr(client, f"bind_{mode}")(system_id=system_id, password=password)
    except PDUError as e:
        client.disconnect()
        return e.args[1]
    return client


# -- binds, enquire_link, unbind ---------------------------------------------------------------


@pytest.mark.parametrize("mode", ["transmitter", "receiver", "transceiver"])
def test_bind_enquire_link_unbind(server, smpplib_client, mode):
    client = smpplib_client(server)
    resp = getattr(client, f"bind_{mode}")(system_id=ALICE[0], password=ALICE[1])
    assert resp.command == f"bind_{mode}_resp"
    assert resp.status == ROK
    assert resp.system_id == b"smsc"
    assert resp.sc_interface_version == 0x34
    assert (
        client.state
        == {
            "transmitter": consts.SMPP_CLIENT_STATE_BOUND_TX,
            "receiver": consts.SMPP_CLIENT_STATE_BOUND_RX,
            "transceiver": consts.SMPP_CLIENT_STATE_BOUND_TRX,
        }[mode]
    )

    ping = smpplib.smpp.make_pdu("enquire_link", client=client)
    client.send_pdu(ping)
    pong = client.read_pdu()
    assert (pong.command, pong.status, pong.sequence) == ("enquire_link_resp", ROK, ping.sequence)

    resp = client.unbind()
    assert (resp.command, resp.status) == ("unbind_resp", ROK)
    # After unbind_resp the server hangs up.
    client._socket.settimeout(5)
    assert client._socket.recv(1) == b""
    client.disconnect()


def test_enquire_link_before_bind(server, raw_client):
    raw = raw_client(server)
    answer = raw.call(ENQUIRE_LINK)
    assert (answer.command_id, answer.status) == (0x80000015, ROK)


# -- submit, query, cancel, replace ------------------------------------------------------------


def test_submit_then_query_shows_enroute(server, smpplib_client):
    client = bound(smpplib_client, server)
    message_id = submitted_id(client, "33600000002", b"Bonjour")
    national = submitted_id(client, "0600000003", b"national", dest_addr_ton=0)
    assert national != message_id

    resp = query(client, message_id)
    assert resp.status == ROK
    assert resp.message_id.decode() == message_id
    assert resp.message_state == ENROUTE
    assert resp.final_date in (b"", None)

    shown = server.message(message_id)
    assert shown["account"] == "alice"
    assert shown["state"] == "ACCEPTED"
    assert shown["destination"] == "33600000002"
    assert shown["source"] == SOURCE
    assert shown["length"] == len(b"Bonjour")
    rows = server.query("SELECT destination, body FROM messages WHERE id = ?", (int(national),))
    assert rows == [("33600000003", b"national")]


def test_submit_and_query_from_a_transmitter_bind(server, smpplib_client):
    client = bound(smpplib_client, server, "transmitter")
    message_id = submitted_id(client, "33600000004")
    # smpplib will not send query_sm in BOUND_TX (its state table); the spec allows it: send
    # smpplib's own encoding of it on the socket.
    request = smpplib.smpp.make_pdu(
        "query_sm",
        client=client,
        message_id=message_id,
        source_addr_ton=1,
        source_addr_npi=1,
        source_addr=SOURCE,
    )
    client._socket.sendall(request.generate())
    resp = client.read_pdu()
    assert (resp.command, resp.status, resp.message_state) == ("query_sm_resp", ROK, ENROUTE)


def test_cancel_by_id(server, smpplib_client, raw_client):
    client = bound(smpplib_client, server)
    message_id = submitted_id(client, "33600000005")
    raw = raw_client(server)
    assert raw.bind("transceiver", *ALICE).status == ROK

    answer = raw.call(CANCEL_SM, cancel_sm_body(message_id))
    assert (answer.command_id, answer.status, answer.body) == (0x80000008, ROK, b"")

    answer = raw.call(QUERY_SM, query_sm_body(message_id))
    assert answer.status == ROK
    got_id, final_date, state, _error = read_query_sm_resp(answer.body)
    assert (got_id, state) == (message_id, DELETED)
    assert len(final_date) == 16
    assert query(client, message_id).message_state == DELETED  # smpplib reads it the same
    assert server.query("SELECT state FROM messages WHERE id = ?", (int(message_id),)) == [
        ("DELETED",)
    ]

    # Gone already: nothing left to cancel.
    assert raw.call(CANCEL_SM, cancel_sm_body(message_id)).status == RCANCELFAIL


def test_cancel_by_source_and_destination(server, smpplib_client, raw_client):
    client = bound(smpplib_client, server)
    to_cancel = [submitted_id(client, "33600000006", b"one"), submitted_id(client, "33600000006")]
    other_destination = submitted_id(client, "33600000007")
    other_source = submitted_id(client, "33600000006", source_addr="36181")

    raw = raw_client(server)
    assert raw.bind("transmitter", *ALICE).status == ROK
    answer = raw.call(CANCEL_SM, cancel_sm_body("", SOURCE, "33600000006"))
    assert answer.status == ROK

    for message_id in to_cancel:
        assert query(client, message_id).message_state == DELETED
    assert query(client, other_destination).message_state == ENROUTE
    assert query(client, other_source, source="36181").message_state == ENROUTE
    states = dict(
        server.query(
            "SELECT id, state FROM messages WHERE id IN (?, ?, ?, ?)",
            [int(i) for i in [*to_cancel, other_destination, other_source]],
        )
    )
    assert [states[int(i)] for i in to_cancel] == ["DELETED", "DELETED"]
    assert states[int(other_destination)] == states[int(other_source)] == "ACCEPTED"

    # Nothing waits for that pair any more.
    assert raw.call(CANCEL_SM, cancel_sm_body("", SOURCE, "33600000006")).status == RCANCELFAIL


def test_replace_changes_the_text(server, smpplib_client, raw_client):
    client = bound(smpplib_client, server)
    message_id = submitted_id(client, "33600000009", b"first text")
    raw = raw_client(server)
    assert raw.bind("transceiver", *ALICE).status == ROK

    answer = raw.call(REPLACE_SM, replace_sm_body(message_id, b"the replaced text"))
    assert (answer.command_id, answer.status, answer.body) == (0x80000007, ROK, b"")

    assert server.message(message_id)["length"] == len(b"the replaced text")
    rows = server.query("SELECT body, state FROM messages WHERE id = ?", (int(message_id),))
    assert rows == [(b"the replaced text", "ACCEPTED")]
    assert query(client, message_id).message_state == ENROUTE

    # A cancelled message can no longer be replaced.
    assert raw.call(CANCEL_SM, cancel_sm_body(message_id)).status == ROK
    assert raw.call(REPLACE_SM, replace_sm_body(message_id, b"too late")).status == RREPLACEFAIL
    assert server.query("SELECT body FROM messages WHERE id = ?", (int(message_id),)) == [
        (b"the replaced text",)
    ]


def test_submit_multi_lists_each_refused_destination(server, raw_client):
    raw = raw_client(server)
    assert raw.bind("transmitter", *ALICE).status == ROK
    destinations = [
        (1, 1, "33600000010"),
        (1, 1, "not-a-number"),
        (0, 0, "0600000011"),  # national: becomes 33600000011
        "friends",  # a distribution list: smsc has none
        (5, 0, "ACME"),  # alphanumeric: not a destination
        (1, 1, "+33600000012"),
    ]
    answer = raw.call(SUBMIT_MULTI, submit_multi_body(destinations, b"to many"))
    assert (answer.command_id, answer.status) == (0x80000021, ROK)
    message_id, unsuccess = read_submit_multi_resp(answer.body)
    assert message_id and len(message_id) <= 20
    assert sorted(unsuccess) == sorted(
        [
            (1, 1, "not-a-number", RINVDSTADR),
            (0, 0, "friends", RINVDLNAME),
            (5, 0, "ACME", RINVDSTADR),
        ]
    )
    rows = server.query(
        "SELECT id, destination, body, state FROM messages WHERE id >= ? ORDER BY id LIMIT 3",
        (int(message_id),),
    )
    assert [(r[1], r[2], r[3]) for r in rows] == [
        ("33600000010", b"to many", "ACCEPTED"),
        ("33600000011", b"to many", "ACCEPTED"),
        ("33600000012", b"to many", "ACCEPTED"),
    ]
    assert rows[0][0] == int(message_id)
    # The one id the client got stands for all its destinations.
    answer = raw.call(QUERY_SM, query_sm_body(message_id))
    assert read_query_sm_resp(answer.body)[2] == ENROUTE
    assert raw.call(CANCEL_SM, cancel_sm_body(message_id)).status == ROK
    answer = raw.call(QUERY_SM, query_sm_body(message_id))
    assert read_query_sm_resp(answer.body)[2] == DELETED
    states = server.query("SELECT state FROM messages WHERE multi_id = ?", (int(message_id),))
    assert [s for (s,) in states] == ["DELETED"] * 3


def test_submit_multi_with_no_good_destination(server, raw_client):
    raw = raw_client(server)
    assert raw.bind("transmitter", *ALICE).status == ROK
    answer = raw.call(SUBMIT_MULTI, submit_multi_body([(1, 1, "x1"), (1, 1, "x2")], b"no"))
    assert answer.command_id == 0x80000021
    assert answer.status == RINVDSTADR
    if answer.body:  # the list is optional on an error status
        _, unsuccess = read_submit_multi_resp(answer.body)
        assert sorted(unsuccess) == [(1, 1, "x1", RINVDSTADR), (1, 1, "x2", RINVDSTADR)]


# -- bind errors -------------------------------------------------------------------------------


def test_wrong_password(server, smpplib_client):
    assert bind_status(smpplib_client, server, ALICE[0], "wrong") == RINVPASWD


def test_unknown_system_id(server, smpplib_client):
    assert bind_status(smpplib_client, server, "nobody", "whatever") == RINVSYSID


def test_disabled_account(server, smpplib_client):
    client = bound(smpplib_client, server, "transmitter", ("gone", "gonepw"))
    client.unbind()
    client.disconnect()
    server.cli("account", "set", "gone", "--disable")
    assert bind_status(smpplib_client, server, "gone", "gonepw") == RBINDFAIL
    # A wrong password still says so; the right one on a disabled account never binds.
    assert bind_status(smpplib_client, server, "gone", "nope", "receiver") == RINVPASWD
    assert bind_status(smpplib_client, server, "gone", "gonepw", "transceiver") == RBINDFAIL


def test_over_max_binds(server, smpplib_client):
    account = ("limited", "limitpw")
    first = bound(smpplib_client, server, "transmitter", account)
    bound(smpplib_client, server, "receiver", account)
    assert bind_status(smpplib_client, server, *account, "transceiver") == RBINDFAIL
    # An unbind frees a place (the server counts the session out when it answers unbind).
    first.unbind()
    first.disconnect()
    third = bound(smpplib_client, server, "transceiver", account)
    submitted_id(third, "33600000013")
    assert bind_status(smpplib_client, server, *account) == RBINDFAIL


def test_second_bind_on_a_session(server, raw_client):
    raw = raw_client(server)
    assert raw.bind("transmitter", *ALICE).status == ROK
    for mode, command_id in raw.BIND.items():
        answer = raw.bind(mode, *ALICE)
        assert (answer.command_id, answer.status) == (0x80000000 | command_id, RALYBND)
    # The session is still bound as it was.
    seq = raw.submit("33600000014")
    answer = raw.read()
    assert (answer.sequence, answer.status) == (seq, ROK)


# -- bind state --------------------------------------------------------------------------------


def test_submit_before_bind(server, raw_client):
    raw = raw_client(server)
    answer = raw.call(SUBMIT_SM, raw.submit_sm_body("33600000015"))
    assert (answer.command_id, answer.status) == (0x80000004, RINVBNDSTS)
    assert smpplib_reading(answer).status == RINVBNDSTS


def test_submit_as_receiver(server, smpplib_client):
    client = bound(smpplib_client, server, "receiver")
    # smpplib refuses to send submit_sm in BOUND_RX: put its encoding on the socket.
    request = smpplib.smpp.make_pdu("submit_sm", client=client, **sm("33600000015"))
    client._socket.sendall(request.generate())
    resp = client.read_pdu()
    assert (resp.command, resp.status, resp.sequence) == (
        "submit_sm_resp",
        RINVBNDSTS,
        request.sequence,
    )
    assert server.query("SELECT count(*) FROM messages WHERE destination = '33600000015'") == [(0,)]


# -- submit_sm validation ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("destination", "text", "extra", "status"),
    [
        ("not-a-number", b"hi", {}, RINVDSTADR),
        ("", b"hi", {}, RINVDSTADR),
        ("33600000016", b"hi", {"source_addr": ""}, RINVSRCADR),
        ("33600000016", b"hi", {"source_addr_ton": 5, "source_addr": "FAR-TOO-LONG-NAME"}, 0x0A),
        ("33600000016", b"odd", {"data_coding": 8}, RINVMSGLEN),  # UCS-2: an odd octet count
        ("33600000016", b"hi", {"schedule_delivery_time": "not a time at al"}, RINVSCHED),
        ("33600000016", b"hi", {"schedule_delivery_time": "261399000000000+"}, RINVSCHED),
        ("33600000016", b"hi", {"validity_period": "soon"}, RINVEXPIRY),
        ("33600000016", b"hi", {"validity_period": "000000000000000X"}, RINVEXPIRY),
        (
            "33600000016",
            b"hi",
            {"schedule_delivery_time": "000002000000000R", "validity_period": "000001000000000R"},
            RINVEXPIRY,
        ),
        ("33600000016", b"hi", {"data_coding": 0x05}, RINVDCS),  # JIS: not carried
        ("33600000016", "é".encode("latin-1"), {"data_coding": 0}, RINVDCS),
    ],
    ids=[
        "dest-letters",
        "dest-empty",
        "source-empty",
        "source-alnum-too-long",
        "ucs2-odd-length",
        "schedule-garbage",
        "schedule-month-13",
        "validity-garbage",
        "validity-bad-sign",
        "validity-before-schedule",
        "data-coding-jis",
        "gsm-not-septets",
    ],
)
def test_submit_refused(server, smpplib_client, destination, text, extra, status):
    client = bound(smpplib_client, server)
    resp = submit(client, destination, text, **extra)
    assert resp.status == status, f"got 0x{resp.status:x}"
    assert resp.message_id in (None, b"")


def test_sm_length_that_overruns_the_pdu(server, raw_client):
    raw = raw_client(server)
    assert raw.bind("transmitter", *ALICE).status == ROK
    answer = raw.call(SUBMIT_SM, raw.submit_sm_body("33600000016", b"short", sm_length=200))
    assert (answer.command_id, answer.status) == (0x80000004, RINVMSGLEN)
    # Both short_message and message_payload: never both (spec 5.3.2.32).
    payload = struct.pack(">HH", 0x0424, 7) + b"payload"
    answer = raw.call(SUBMIT_SM, raw.submit_sm_body("33600000016", b"short", tlvs=payload))
    assert (answer.command_id, answer.status) == (0x80000004, RINVMSGLEN)
    # The session carries on.
    assert raw.call(SUBMIT_SM, raw.submit_sm_body("33600000016", b"ok")).status == ROK


# -- throttling --------------------------------------------------------------------------------


def test_window_exceeded(server, raw_client):
    raw = raw_client(server)
    assert raw.bind("transceiver", *ALICE).status == ROK
    count = 3 * WINDOW
    pdus = b""
    for _ in range(count):
        pdus += raw.frame(SUBMIT_SM, raw.next_seq(), raw.submit_sm_body("33600000017"))
    raw.send(pdus)  # in one write: the server sees them all before it can answer any
    answers = [raw.read() for _ in range(count)]
    assert sorted(a.sequence for a in answers) == list(range(2, 2 + count))
    statuses = [a.status for a in answers]
    assert set(statuses) <= {ROK, RTHROTTLED}
    assert statuses.count(ROK) >= WINDOW
    assert statuses.count(RTHROTTLED) >= 1
    # Once answered, the window is free again.
    assert raw.call(SUBMIT_SM, raw.submit_sm_body("33600000017")).status == ROK


def test_account_tps_cap(server, raw_client):
    raw = raw_client(server)
    assert raw.bind("transmitter", "capped", "cappedpw").status == ROK
    count = 8  # fewer than the window: only the account's cap (5/s) refuses
    body = raw.submit_sm_body("33600000018")
    raw.send(b"".join(raw.frame(SUBMIT_SM, raw.next_seq(), body) for _ in range(count)))
    statuses = [raw.read().status for _ in range(count)]
    assert set(statuses) <= {ROK, RTHROTTLED}
    assert 5 <= statuses.count(ROK) <= 6, statuses
    time.sleep(1.0)  # the bucket refills
    assert raw.call(SUBMIT_SM, raw.submit_sm_body("33600000018")).status == ROK


# -- another account's messages ----------------------------------------------------------------


def test_another_accounts_message(server, smpplib_client, raw_client):
    alice = bound(smpplib_client, server)
    message_id = submitted_id(alice, "33600000019", b"alice's")
    bob = raw_client(server)
    assert bob.bind("transceiver", *BOB).status == ROK

    answer = bob.call(QUERY_SM, query_sm_body(message_id))
    assert (answer.command_id, answer.status) == (0x80000003, RQUERYFAIL)
    assert bob.call(CANCEL_SM, cancel_sm_body(message_id)).status == RCANCELFAIL
    assert bob.call(CANCEL_SM, cancel_sm_body("", SOURCE, "33600000019")).status == RCANCELFAIL
    answer = bob.call(REPLACE_SM, replace_sm_body(message_id, b"bob's"))
    assert answer.status == RREPLACEFAIL
    # An id that does not exist at all reads the same.
    assert bob.call(QUERY_SM, query_sm_body("987654321")).status == RQUERYFAIL
    assert bob.call(CANCEL_SM, cancel_sm_body("987654321")).status == RCANCELFAIL
    assert bob.call(REPLACE_SM, replace_sm_body("987654321", b"x")).status == RREPLACEFAIL

    # Alice's message is untouched.
    assert query(alice, message_id).message_state == ENROUTE
    assert server.query("SELECT body, state FROM messages WHERE id = ?", (int(message_id),)) == [
        (b"alice's", "ACCEPTED")
    ]


# -- generic_nack ------------------------------------------------------------------------------


@pytest.mark.parametrize("bind_first", [False, True], ids=["open", "bound"])
def test_unknown_command_id(server, raw_client, bind_first):
    raw = raw_client(server)
    if bind_first:
        assert raw.bind("transceiver", *ALICE).status == ROK
    answer = raw.call(0x00000099, b"\x01\x02\x03")
    assert (answer.command_id, answer.status) == (GENERIC_NACK, RINVCMDID)
    reading = smpplib_reading(answer)
    assert (reading.command, reading.status) == ("generic_nack", RINVCMDID)
    # Not fatal: the session answers the next request.
    assert raw.call(ENQUIRE_LINK).status == ROK


def test_body_shorter_than_its_fields(server, raw_client):
    raw = raw_client(server)
    assert raw.bind("transmitter", *ALICE).status == ROK
    # service_type, then source_addr_ton, then the PDU ends: its command_length is wrong.
    answer = raw.call(SUBMIT_SM, b"\x00\x01")
    assert (answer.command_id, answer.status) == (GENERIC_NACK, RINVCMDLEN)
    assert raw.call(SUBMIT_SM, raw.submit_sm_body("33600000020")).status == ROK


def test_command_length_below_a_header(server, raw_client):
    raw = raw_client(server)
    raw.send(struct.pack(">IIII", 8, ENQUIRE_LINK, 0, 7))
    closed, frames = raw.closed_within(5)
    assert [(f.command_id, f.status) for f in frames] == [(GENERIC_NACK, RINVCMDLEN)]
    assert closed


# -- unbind and replace edge cases -----------------------------------------------------------


def test_unbind_answers_what_came_before_it(server, raw_client):
    """A submit_sm still with the store when the client unbinds is answered before
    unbind_resp: the client learns the id of what was committed."""
    raw = raw_client(server)
    assert raw.bind("transmitter", *ALICE).status == ROK
    seq = raw.next_seq()
    body = raw.submit_sm_body("33600000021", b"just before unbind")
    raw.send(raw.frame(SUBMIT_SM, seq, body) + raw.frame(0x06, seq + 1))
    closed, frames = raw.closed_within(5)
    assert closed
    assert [(f.command_id, f.sequence, f.status) for f in frames] == [
        (0x80000004, seq, ROK),
        (0x80000006, seq + 1, ROK),
    ]


@pytest.mark.parametrize(
    ("data_coding", "first", "replacement"),
    [(8, "é".encode("utf-16-be"), b"odd"), (0, b"plain", "é".encode("latin-1"))],
    ids=["ucs2-odd-length", "gsm-not-septets"],
)
def test_replace_checks_the_new_text(server, raw_client, data_coding, first, replacement):
    raw = raw_client(server)
    assert raw.bind("transmitter", *ALICE).status == ROK
    answer = raw.call(SUBMIT_SM, raw.submit_sm_body("33600000022", first, data_coding=data_coding))
    assert answer.status == ROK
    message_id, _ = read_c(answer.body, 0)
    answer = raw.call(REPLACE_SM, replace_sm_body(message_id, replacement))
    assert answer.status in (RINVMSGLEN, RINVDCS)
