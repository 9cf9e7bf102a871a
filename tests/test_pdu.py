"""Tests for smsc's PDU codec on its own: round trips, spec vectors and hostile input.

`test_pdu_reference.py` checks the same codec against smpp.pdu; the commands smpp.pdu cannot
handle (submit_multi, submit_multi_resp, replace_sm) get hand-assembled vectors here.
"""

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import (
    CSTRING_TLV_SIZES,
    FLAG_TLVS,
    INT_TLV_SIZES,
    OCTET_TLV_SIZES,
    SME_ADDRESS_SIZE,
    cstring_size,
    pdus,
    tlv_values,
    uint32,
)

from smsc.protocol.constants import Command, Status, Tag
from smsc.protocol.pdu import (
    DistList,
    Pdu,
    PduError,
    SmeDest,
    Unsuccess,
    decode,
    encode,
    zero_params,
)

# Spec 4.1.2, 4.1.4, 4.1.6, 4.4.2: these responses have no body when command_status is an error.
NO_BODY_ON_ERROR = {
    Command.bind_transmitter_resp,
    Command.bind_receiver_resp,
    Command.bind_transceiver_resp,
    Command.submit_sm_resp,
}
COMMAND_IDS = frozenset(int(c) for c in Command)
SHORT_MESSAGE_COMMANDS = [
    Command.submit_sm,
    Command.deliver_sm,
    Command.submit_multi,
    Command.replace_sm,
]


def header(length: int, command_id: int, status: int = 0, sequence: int = 1) -> bytes:
    return struct.pack(">IIII", length, command_id, status, sequence)


def frame(command_id: int, body: bytes, status: int = 0, sequence: int = 1) -> bytes:
    """A PDU with a truthful command_length."""
    return header(16 + len(body), command_id, status, sequence) + body


def relength(data: bytes) -> bytes:
    """`data` with command_length patched to its actual size."""
    return struct.pack(">I", len(data)) + data[4:]


def tlv(tag: int, value: bytes) -> bytes:
    return struct.pack(">HH", tag, len(value)) + value


def expected_after_round_trip(pdu: Pdu) -> Pdu:
    """What decode(encode(pdu)) must give: every mandatory field filled in, and no body at all
    for an error response whose body the spec omits."""
    if pdu.status and pdu.command in NO_BODY_ON_ERROR:
        return Pdu(pdu.command, pdu.sequence, pdu.status, zero_params(pdu.command), {})
    return Pdu(
        pdu.command, pdu.sequence, pdu.status, zero_params(pdu.command) | pdu.params, pdu.tlvs
    )


def assert_error(result, status: Status, *, sequence: int = 1) -> PduError:
    assert isinstance(result, PduError), result
    assert result.status == status, result
    assert result.sequence == sequence
    return result


def test_every_tag_has_a_strategy():
    for tag in Tag:
        tlv_values(tag)  # raises KeyError for a tag added to constants but not to strategies


# --- round trips ------------------------------------------------------------------------------


@pytest.mark.parametrize("command", list(Command), ids=lambda c: c.name)
@settings(max_examples=15, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_round_trip(command, data):
    pdu = data.draw(pdus(command))
    raw = encode(pdu)
    assert struct.unpack_from(">I", raw)[0] == len(raw)
    assert decode(raw) == expected_after_round_trip(pdu)


@settings(max_examples=40)
@given(
    dests=st.lists(
        st.one_of(
            st.builds(
                SmeDest,
                st.integers(0, 255),
                st.integers(0, 255),
                st.text("0123456789+", max_size=20),
            ),
            st.builds(DistList, st.text("abcdefghij_", min_size=1, max_size=20)),
        ),
        max_size=20,
    ),
    message=st.binary(max_size=160),
)
def test_submit_multi_keeps_destination_order_and_kinds(dests, message):
    pdu = Pdu(Command.submit_multi, 9, 0, {"dest_address": dests, "short_message": message})
    decoded = decode(encode(pdu))
    assert isinstance(decoded, Pdu)
    assert decoded.params["dest_address"] == dests
    assert [type(d) for d in decoded.params["dest_address"]] == [type(d) for d in dests]
    assert decoded.params["short_message"] == message


def test_submit_multi_with_255_destinations():
    dests = [SmeDest(1, 1, f"3361234{i:04d}") for i in range(254)] + [DistList("friends")]
    decoded = decode(encode(Pdu(Command.submit_multi, 1, 0, {"dest_address": dests})))
    assert decoded.params["dest_address"] == dests


@settings(max_examples=40)
@given(
    st.lists(
        st.builds(
            Unsuccess,
            st.integers(0, 255),
            st.integers(0, 255),
            st.text("0123456789", max_size=20),
            uint32,
        ),
        max_size=30,
    )
)
def test_submit_multi_resp_unsuccess_list(entries):
    pdu = Pdu(Command.submit_multi_resp, 3, 0, {"message_id": "abc", "unsuccess_sme": entries})
    decoded = decode(encode(pdu))
    assert decoded == Pdu(Command.submit_multi_resp, 3, 0, pdu.params)


def test_submit_multi_resp_without_no_unsuccess_is_accepted():
    # Some SMSCs stop after message_id when every destination went through.
    decoded = decode(frame(Command.submit_multi_resp, b"m-1\0"))
    assert decoded == Pdu(
        Command.submit_multi_resp, 1, 0, {"message_id": "m-1", "unsuccess_sme": []}
    )


@pytest.mark.parametrize(
    "message",
    [b"\0", b"@@@\0\0\0", b"hello\0world", b"\0" * 254, bytes(range(256))[:254]],
    ids=["one-at", "at-run", "inner-at", "all-at", "every-octet"],
)
@pytest.mark.parametrize("command", SHORT_MESSAGE_COMMANDS, ids=lambda c: c.name)
def test_gsm_at_sign_inside_short_message_survives(command, message):
    # '@' is 0x00 in GSM 03.38: short_message is sized by sm_length, never NUL-terminated.
    pdu = Pdu(command, 5, 0, {"short_message": message}, {Tag.message_payload: message})
    decoded = decode(encode(pdu))
    assert decoded.params["short_message"] == message
    assert decoded.tlvs == {Tag.message_payload: message}


def test_tlv_order_and_unknown_tags_are_kept():
    tlvs = {0x1400: b"\x01\x02", Tag.sar_segment_seqnum: 2, 0x3FFF: b"", Tag.sar_msg_ref_num: 7}
    raw = encode(Pdu(Command.submit_sm, 1, 0, {}, tlvs))
    decoded = decode(raw)
    assert list(decoded.tlvs.items()) == list(tlvs.items())
    assert raw.endswith(
        tlv(0x1400, b"\x01\x02") + tlv(0x020F, b"\x02") + tlv(0x3FFF, b"") + tlv(0x020C, b"\0\7")
    )


# --- spec vectors for the commands smpp.pdu cannot encode ------------------------------------


def test_submit_multi_vector():
    body = (
        b"CMT\0"  # service_type
        + b"\x05\x00ACME\0"  # source_addr_ton, npi, source_addr
        + b"\x02"  # number_of_dests
        + b"\x01\x01\x01"
        + b"33612345678\0"  # dest_flag 1 (SME), ton, npi, address
        + b"\x02"
        + b"staff\0"  # dest_flag 2 (distribution list), dl_name
        + bytes([0x40, 0x00, 0x01])  # esm_class, protocol_id, priority_flag
        + b"\0"
        + b"000001000000000R\0"  # schedule_delivery_time, validity_period
        + bytes([0x01, 0x00, 0x08, 0x00])  # registered_delivery, replace, data_coding, default
        + b"\x04"
        + b"\x00\x41\x00\x40"  # sm_length, short_message
    )
    raw = frame(0x21, body, sequence=0x01020304)
    expected = Pdu(
        Command.submit_multi,
        0x01020304,
        0,
        zero_params(Command.submit_multi)
        | {
            "service_type": "CMT",
            "source_addr_ton": 5,
            "source_addr": "ACME",
            "dest_address": [SmeDest(1, 1, "33612345678"), DistList("staff")],
            "esm_class": 0x40,
            "priority_flag": 1,
            "validity_period": "000001000000000R",
            "registered_delivery": 1,
            "data_coding": 8,
            "short_message": b"\x00\x41\x00\x40",
        },
    )
    assert decode(raw) == expected
    assert encode(expected) == raw


def test_submit_multi_resp_vector():
    body = (
        b"id-7\0"
        + b"\x02"  # no_unsuccess
        + b"\x01\x01"
        + b"33600000001\0"
        + b"\x00\x00\x00\x0b"  # ton, npi, addr, RINVDSTADR
        + b"\x00\x00"
        + b"\0"
        + b"\x00\x00\x04\x00"  # empty address, vendor status 0x400
    )
    raw = frame(0x80000021, body, sequence=2)
    expected = Pdu(
        Command.submit_multi_resp,
        2,
        0,
        {
            "message_id": "id-7",
            "unsuccess_sme": [Unsuccess(1, 1, "33600000001", 0x0B), Unsuccess(0, 0, "", 0x400)],
        },
    )
    assert decode(raw) == expected
    assert encode(expected) == raw


def test_replace_sm_vector():
    body = (
        b"abc123\0"  # message_id
        + b"\x01\x01"
        + b"33699\0"  # source_addr_ton, npi, source_addr
        + b"260131103000004+\0"  # schedule_delivery_time
        + b"\0"  # validity_period
        + b"\x11\x00"  # registered_delivery, sm_default_msg_id
        + b"\x03"
        + b"new"
    )
    raw = frame(0x07, body, sequence=77)
    expected = Pdu(
        Command.replace_sm,
        77,
        0,
        {
            "message_id": "abc123",
            "source_addr_ton": 1,
            "source_addr_npi": 1,
            "source_addr": "33699",
            "schedule_delivery_time": "260131103000004+",
            "validity_period": "",
            "registered_delivery": 0x11,
            "sm_default_msg_id": 0,
            "short_message": b"new",
        },
    )
    assert decode(raw) == expected
    assert encode(expected) == raw


# --- error responses without a body ----------------------------------------------------------


@pytest.mark.parametrize("command", sorted(NO_BODY_ON_ERROR), ids=lambda c: c.name)
def test_error_response_has_no_body(command):
    filled = {name: "x" for name, zero in zero_params(command).items() if zero == ""}
    pdu = Pdu(command, 42, Status.RBINDFAIL, filled, {Tag.sc_interface_version: 0x34})
    raw = encode(pdu)
    assert raw == header(16, command, Status.RBINDFAIL, 42)
    assert decode(raw) == Pdu(command, 42, Status.RBINDFAIL, zero_params(command), {})


@pytest.mark.parametrize("command", sorted(NO_BODY_ON_ERROR), ids=lambda c: c.name)
def test_successful_response_keeps_its_body(command):
    raw = encode(Pdu(command, 1, 0, {next(iter(zero_params(command))): "smsc"}))
    assert len(raw) == 16 + len(b"smsc\0")


@pytest.mark.parametrize(
    "command", [c for c in Command if c.is_response and zero_params(c)], ids=lambda c: c.name
)
def test_any_bodyless_error_response_decodes_with_zero_params(command):
    # Peers omit the body of other error responses too (deliver_sm_resp, data_sm_resp...).
    decoded = decode(header(16, command, Status.RSYSERR, 8))
    assert decoded == Pdu(command, 8, Status.RSYSERR, zero_params(command), {})


def test_error_status_on_a_response_the_spec_gives_a_body_keeps_it():
    raw = encode(Pdu(Command.data_sm_resp, 1, Status.RSYSERR, {"message_id": "m"}))
    assert raw == header(18, Command.data_sm_resp, Status.RSYSERR) + b"m\0"


# --- encode refuses what does not fit --------------------------------------------------------

CSTRING_FIELDS = [
    (command, name)
    for command in Command
    for name, zero in zero_params(command).items()
    if zero == ""
]


@pytest.mark.parametrize(
    ("command", "name"), CSTRING_FIELDS, ids=[f"{c.name}.{n}" for c, n in CSTRING_FIELDS]
)
def test_encode_rejects_an_over_long_cstring(command, name):
    size = cstring_size(command, name)
    fits = Pdu(command, 1, 0, {name: "9" * (size - 1)})
    assert decode(encode(fits)).params[name] == "9" * (size - 1)
    with pytest.raises(ValueError):
        encode(Pdu(command, 1, 0, {name: "9" * size}))


@pytest.mark.parametrize(
    ("command", "params"),
    [
        (Command.submit_sm, {"short_message": b"x" * 255}),
        (Command.submit_multi, {"dest_address": [SmeDest(1, 1, "1" * SME_ADDRESS_SIZE)]}),
        (Command.submit_multi, {"dest_address": [DistList("d" * SME_ADDRESS_SIZE)]}),
        (Command.submit_multi, {"dest_address": [SmeDest(1, 1, "1")] * 256}),
        (Command.submit_multi_resp, {"unsuccess_sme": [Unsuccess(1, 1, "1" * 21, 0)]}),
        (Command.submit_multi_resp, {"unsuccess_sme": [Unsuccess(1, 1, "1", 0)] * 256}),
        (Command.submit_sm, {"source_addr": "€uro"}),  # not Latin-1
        (Command.submit_sm, {"esm_class": 256}),
        (Command.submit_sm, {"data_coding": -1}),
        (Command.submit_multi, {"dest_address": [SmeDest(256, 1, "1")]}),
        (Command.submit_multi_resp, {"unsuccess_sme": [Unsuccess(1, 1, "1", 2**32)]}),
    ],
    ids=[
        "short_message-255",
        "sme-address-21",
        "dl-name-21",
        "256-dests",
        "unsuccess-address-21",
        "256-unsuccess",
        "non-latin-1",
        "esm_class-256",
        "data_coding-negative",
        "dest-ton-256",
        "unsuccess-status-2**32",
    ],
)
def test_encode_rejects_values_that_do_not_fit(command, params):
    with pytest.raises(ValueError):
        encode(Pdu(command, 1, 0, params))


@pytest.mark.parametrize(
    "pdu",
    [
        Pdu(Command.enquire_link, 2**32),
        Pdu(Command.generic_nack, 1, -1),
        Pdu(Command.submit_sm, 1, 0, {}, {Tag.sar_msg_ref_num: 65536}),
        Pdu(Command.submit_sm, 1, 0, {}, {Tag.message_payload: b"x" * 65536}),
        Pdu(Command.submit_sm, 1, 0, {}, {0x10000: b""}),
    ],
    ids=["sequence", "status", "tlv-int", "tlv-length", "tlv-tag"],
)
def test_encode_rejects_header_and_tlv_values_that_do_not_fit(pdu):
    with pytest.raises(ValueError):
        encode(pdu)


# --- decode never raises ---------------------------------------------------------------------


@settings(max_examples=600)
@given(st.binary(max_size=200))
def test_decode_never_raises_on_arbitrary_bytes(data):
    result = decode(data)
    assert isinstance(result, Pdu | PduError)
    if len(data) < 16 or struct.unpack_from(">I", data)[0] != len(data):
        assert_error(result, Status.RINVCMDLEN, sequence=result.sequence)


@settings(max_examples=500)
@given(st.sampled_from(Command), uint32, st.binary(max_size=200))
def test_decode_never_raises_on_random_bodies(command, status, body):
    result = decode(frame(command, body, status))
    assert isinstance(result, Pdu | PduError)
    assert result.sequence == 1
    if isinstance(result, PduError):
        assert result.command_id == command
        assert result.status != Status.ROK


@settings(max_examples=100)
@given(pdus(), st.data())
def test_decode_never_raises_on_corrupted_pdus(pdu, data):
    raw = bytearray(encode(pdu))
    for _ in range(data.draw(st.integers(1, 4))):
        raw[data.draw(st.integers(4, len(raw) - 1))] = data.draw(st.integers(0, 255))
    assert isinstance(decode(bytes(raw)), Pdu | PduError)


@settings(max_examples=80, suppress_health_check=[HealthCheck.too_slow])
@given(pdus())
def test_every_truncation_is_refused_or_a_prefix(pdu):
    raw = encode(pdu)
    expected = decode(raw)
    mandatory_end = len(encode(Pdu(pdu.command, pdu.sequence, pdu.status, pdu.params)))
    for size in range(len(raw)):
        result = decode(relength(raw[:size]) if size >= 4 else raw[:size])
        if size < 16:
            assert_error(result, Status.RINVCMDLEN, sequence=result.sequence)
        elif isinstance(result, PduError):
            assert result.command_id == pdu.command
            assert result.sequence == pdu.sequence
            assert result.status != Status.ROK
            if size >= mandatory_end:
                assert result.status == Status.RINVOPTPARSTREAM
        elif size >= mandatory_end:
            # Cut at a TLV boundary: the same message with the first TLVs only.
            assert result.params == expected.params
            kept = list(result.tlvs.items())
            assert kept == list(expected.tlvs.items())[: len(kept)]
        else:
            # The codec's only leniencies: a bodyless error response, a submit_multi_resp
            # without no_unsuccess.
            if size == 16:
                assert pdu.status and pdu.command.is_response
                assert result.params == zero_params(pdu.command)
            else:
                assert pdu.command == Command.submit_multi_resp
                assert size == 16 + len(pdu.params.get("message_id", "")) + 1
                assert result.params["unsuccess_sme"] == []


@settings(max_examples=60)
@given(pdus(), st.integers(-100, 100).filter(bool))
def test_command_length_that_lies_is_refused(pdu, delta):
    raw = encode(pdu)
    lying = struct.pack(">I", max(0, len(raw) + delta)) + raw[4:]
    error = assert_error(decode(lying), Status.RINVCMDLEN, sequence=pdu.sequence)
    assert error.command_id == pdu.command
    assert error.generic


def test_frame_shorter_than_a_header_is_refused():
    for size in range(16):
        error = assert_error(decode(bytes(size)), Status.RINVCMDLEN, sequence=0)
        assert error.generic


@settings(max_examples=80)
@given(uint32.filter(lambda n: n not in COMMAND_IDS), uint32, st.binary(max_size=40))
def test_unknown_command_id_is_generic_nack(command_id, sequence, body):
    error = assert_error(
        decode(frame(command_id, body, 0, sequence)), Status.RINVCMDID, sequence=sequence
    )
    assert error.command_id == command_id
    assert error.generic


# --- field errors name the field's status ----------------------------------------------------

CSTRING_STATUSES = [
    (Command.bind_transmitter, "system_id", Status.RINVSYSID),
    (Command.bind_receiver, "password", Status.RINVPASWD),
    (Command.bind_transceiver, "system_type", Status.RINVSYSTYP),
    (Command.bind_transmitter_resp, "system_id", Status.RINVSYSID),
    (Command.outbind, "password", Status.RINVPASWD),
    (Command.submit_sm, "service_type", Status.RINVSERTYP),
    (Command.submit_sm, "source_addr", Status.RINVSRCADR),
    (Command.submit_sm, "destination_addr", Status.RINVDSTADR),
    (Command.submit_sm, "schedule_delivery_time", Status.RINVSCHED),
    (Command.submit_sm, "validity_period", Status.RINVEXPIRY),
    (Command.deliver_sm, "source_addr", Status.RINVSRCADR),
    (Command.deliver_sm, "destination_addr", Status.RINVDSTADR),
    (Command.data_sm, "source_addr", Status.RINVSRCADR),
    (Command.data_sm, "destination_addr", Status.RINVDSTADR),
    (Command.submit_multi, "source_addr", Status.RINVSRCADR),
    (Command.submit_sm_resp, "message_id", Status.RINVMSGID),
    (Command.query_sm, "message_id", Status.RINVMSGID),
    (Command.cancel_sm, "message_id", Status.RINVMSGID),
    (Command.cancel_sm, "destination_addr", Status.RINVDSTADR),
    (Command.replace_sm, "message_id", Status.RINVMSGID),
    (Command.replace_sm, "validity_period", Status.RINVEXPIRY),
    (Command.alert_notification, "source_addr", Status.RINVSRCADR),
]


def _marked(command: Command, name: str) -> tuple[bytes, int]:
    """A PDU whose `name` is a full-size run of '~', and the offset of its NUL."""
    marker = b"~" * (cstring_size(command, name) - 1)
    raw = encode(Pdu(command, 1, 0, {name: marker.decode()}, {Tag.user_message_reference: 0}))
    assert raw.count(marker) == 1
    return raw, raw.index(marker) + len(marker)


@pytest.mark.parametrize(
    ("command", "name", "status"),
    CSTRING_STATUSES,
    ids=[f"{c.name}.{n}" for c, n, _ in CSTRING_STATUSES],
)
def test_cstring_without_nul_within_its_size(command, name, status):
    raw, nul = _marked(command, name)
    assert raw[nul] == 0
    # The NUL is replaced: the field now runs one octet past its size.
    assert_error(decode(raw[:nul] + b"~" + raw[nul + 1 :]), status)


@pytest.mark.parametrize(
    ("command", "name", "status"),
    CSTRING_STATUSES,
    ids=[f"{c.name}.{n}" for c, n, _ in CSTRING_STATUSES],
)
def test_cstring_cut_by_the_end_of_the_pdu(command, name, status):
    raw, nul = _marked(command, name)
    assert_error(decode(relength(raw[: nul - 3])), status)


def test_submit_multi_destination_errors():
    def submit_multi(dests: bytes) -> bytes:
        # service_type, source_addr_ton, source_addr_npi, source_addr, then the destinations
        return frame(Command.submit_multi, b"\0" + b"\0\0" + b"\0" + dests)

    no_nul = b"1" * SME_ADDRESS_SIZE
    assert_error(
        decode(submit_multi(b"\x01" + b"\x01\x01\x01" + no_nul + b"\0")), Status.RINVDSTADR
    )
    assert_error(decode(submit_multi(b"\x01" + b"\x02" + no_nul + b"\0")), Status.RINVDLNAME)
    assert_error(decode(submit_multi(b"\x01" + b"\x03" + b"x\0")), Status.RINVDESTFLAG)
    assert_error(decode(submit_multi(b"\x02" + b"\x02list\0")), Status.RINVNUMDESTS)
    assert_error(decode(submit_multi(b"\x01" + b"\x01\x01")), Status.RINVNUMDESTS)


def test_submit_multi_resp_cut_inside_unsuccess_sme():
    body = b"id\0" + b"\x01" + b"\x01\x01" + b"336\0" + b"\x00\x00\x00\x0b"
    for cut in range(len(b"id\0\x01"), len(body)):
        result = decode(frame(Command.submit_multi_resp, body[:cut]))
        assert isinstance(result, PduError), cut
        assert result.status in (Status.RINVCMDLEN, Status.RINVDSTADR)


@pytest.mark.parametrize("command", SHORT_MESSAGE_COMMANDS, ids=lambda c: c.name)
@pytest.mark.parametrize("declared", [4, 5, 254, 255])
def test_sm_length_overrunning_the_pdu(command, declared):
    raw = encode(Pdu(command, 1, 0, {"short_message": b"abc"}))
    assert raw.endswith(b"\x03abc")
    lying = raw[:-4] + bytes([declared]) + b"abc"
    assert_error(decode(lying), Status.RINVMSGLEN)


@pytest.mark.parametrize("command", SHORT_MESSAGE_COMMANDS, ids=lambda c: c.name)
def test_pdu_ending_before_sm_length(command):
    raw = encode(Pdu(command, 1, 0, {"short_message": b""}))
    assert_error(decode(relength(raw[:-1])), Status.RINVMSGLEN)


# Found by tests/test_fuzz.py: a submit_sm, every field empty, sm_length 255 and 255 octets of
# text decoded to a PDU that encode() then refused (short_message is 0-254 octets, spec 4.4.1,
# as smpp.pdu reads it too): the switch would take a message it could not pass on.
SM_LENGTH_255 = bytes.fromhex("00000120000000040000000000000001") + bytes(16) + b"\xff" + b"A" * 255


def test_sm_length_255_is_refused():
    assert_error(decode(SM_LENGTH_255), Status.RINVMSGLEN)
    at_the_limit = decode(relength(SM_LENGTH_255[:32] + b"\xfe" + b"A" * 254))
    assert at_the_limit.params["short_message"] == b"A" * 254
    assert decode(encode(at_the_limit)) == at_the_limit


@pytest.mark.parametrize("command", SHORT_MESSAGE_COMMANDS, ids=lambda c: c.name)
def test_sm_length_255_is_refused_in_every_command(command):
    raw = encode(Pdu(command, 1, 0, {"short_message": b"A" * 254}))
    assert raw.endswith(b"\xfe" + b"A" * 254)
    assert_error(decode(relength(raw[:-255] + b"\xff" + b"A" * 255)), Status.RINVMSGLEN)


def test_sm_length_swallowing_the_tlvs_is_a_different_message_not_an_error():
    # sm_length is only checked against the PDU's end: one that reaches into the TLVs reads
    # them as text. Documented so that nobody relies on TLV sanity after a lying sm_length.
    raw = encode(Pdu(Command.submit_sm, 1, 0, {"short_message": b"ab"}, {Tag.sar_msg_ref_num: 1}))
    at = raw.index(b"\x02ab")
    decoded = decode(raw[:at] + bytes([2 + 6]) + raw[at + 1 :])
    assert decoded.params["short_message"] == b"ab" + tlv(0x020C, b"\0\1")
    assert decoded.tlvs == {}


# --- TLV stream errors -----------------------------------------------------------------------

ENQUIRE = Command.enquire_link


@pytest.mark.parametrize("trailing", [b"\x00", b"\x02\x04", b"\x02\x04\x00"])
def test_octets_after_the_last_tlv(trailing):
    raw = frame(Command.submit_sm_resp, b"id\0" + tlv(0x1400, b"v") + trailing)
    assert_error(decode(raw), Status.RINVOPTPARSTREAM)


@settings(max_examples=60)
@given(st.sampled_from([*Tag, 0x1400]), st.binary(max_size=8), st.integers(1, 300))
def test_tlv_length_overrunning_the_pdu(tag, value, excess):
    body = struct.pack(">HH", tag, len(value) + excess) + value
    assert_error(decode(frame(ENQUIRE, body)), Status.RINVOPTPARSTREAM)


@settings(max_examples=80)
@given(st.data())
def test_integer_tlv_with_wrong_length(data):
    tag = data.draw(st.sampled_from(sorted(INT_TLV_SIZES)))
    size = data.draw(st.integers(0, 6).filter(lambda n: n != INT_TLV_SIZES[tag]))
    body = tlv(tag, bytes(size))
    assert_error(decode(frame(ENQUIRE, body)), Status.RINVPARLEN)


@pytest.mark.parametrize("value", [b"\0", b"\x01\x02"])
def test_flag_tlv_with_a_value(value):
    (tag,) = FLAG_TLVS
    assert_error(decode(frame(ENQUIRE, tlv(tag, value))), Status.RINVPARLEN)
    assert decode(frame(ENQUIRE, tlv(tag, b""))).tlvs == {tag: True}


@pytest.mark.parametrize("tag", sorted(CSTRING_TLV_SIZES), ids=lambda t: t.name)
@pytest.mark.parametrize("value", [b"a\0c\0", b"a\0c"], ids=["inner-nul", "after-nul"])
def test_cstring_tlv_that_is_not_a_cstring(tag, value):
    assert_error(decode(frame(ENQUIRE, tlv(tag, value))), Status.RINVOPTPARAMVAL)


@pytest.mark.parametrize("tag", sorted(CSTRING_TLV_SIZES), ids=lambda t: t.name)
@pytest.mark.parametrize("value", [b"", b"abc"], ids=["empty", "no-nul"])
def test_cstring_tlv_without_its_nul_is_read_leniently(tag, value):
    """Carriers that leave out the NUL of receipted_message_id still have their receipts read."""
    assert decode(frame(ENQUIRE, tlv(tag, value))).tlvs == {tag: value.decode()}


def test_tlvs_typed_by_the_spec():
    body = (
        tlv(Tag.receipted_message_id, b"0A1B\0")
        + tlv(Tag.message_state, b"\x02")
        + tlv(Tag.sar_msg_ref_num, b"\x12\x34")
        + tlv(Tag.qos_time_to_live, b"\x00\x01\x00\x00")
        + tlv(Tag.network_error_code, b"\x03\x00\x01")
        + tlv(Tag.alert_on_message_delivery, b"")
        + tlv(0x1500, b"\xff")
    )
    decoded = decode(frame(ENQUIRE, body))
    assert decoded.tlvs == {
        Tag.receipted_message_id: "0A1B",
        Tag.message_state: 2,
        Tag.sar_msg_ref_num: 0x1234,
        Tag.qos_time_to_live: 0x10000,
        Tag.network_error_code: b"\x03\x00\x01",
        Tag.alert_on_message_delivery: True,
        0x1500: b"\xff",
    }
    assert all(type(k) is Tag for k in list(decoded.tlvs)[:-1])
    assert type(list(decoded.tlvs)[-1]) is int
    assert encode(decoded) == frame(ENQUIRE, body)


def test_octet_tlvs_are_raw_bytes():
    for tag, (low, high) in OCTET_TLV_SIZES.items():
        value = bytes(range(1, 1 + max(low, min(high, 3))))
        assert decode(frame(ENQUIRE, tlv(tag, value))).tlvs == {tag: value}


def test_pdu_error_generic_only_for_id_and_length():
    for status in Status:
        error = PduError(1, 1, status, "")
        assert error.generic == (status in (Status.RINVCMDID, Status.RINVCMDLEN))
