"""Tests for delivery receipts: reading carriers' ones, matching their ids, writing ours."""

import struct
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import tlvs as any_tlvs

from smsc.inbound import receipts
from smsc.inbound.receipts import Receipt, candidates, format_text, normalise, parse
from smsc.protocol.constants import Command, MessageState, Tag
from smsc.protocol.pdu import Pdu, PduError, decode, decode_tlvs, encode
from smsc.protocol.smpptime import format_date
from smsc.store.messages import FINAL, SMPP_STATE, State


def receipt_pdu(
    text: bytes = b"",
    tlvs: dict | None = None,
    esm_class: int = 0x04,
    command: Command = Command.deliver_sm,
    **params,
) -> Pdu:
    """A receipt as it comes off the wire: encoded, then decoded by the codec."""
    fields = {"esm_class": esm_class, **params}
    if command == Command.deliver_sm:
        fields["short_message"] = text
    pdu = decode(encode(Pdu(command, 7, 0, fields, tlvs or {})))
    assert isinstance(pdu, Pdu)
    return pdu


def epoch(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()


# --- TLV receipts ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message_state", "state"),
    [
        (MessageState.ENROUTE, State.ENROUTE),
        (MessageState.DELIVERED, State.DELIVERED),
        (MessageState.EXPIRED, State.EXPIRED),
        (MessageState.DELETED, State.DELETED),
        (MessageState.UNDELIVERABLE, State.UNDELIVERABLE),
        (MessageState.ACCEPTED, State.ENROUTE),  # "taken by the next hop": not final
        (MessageState.UNKNOWN, State.UNKNOWN),
        (MessageState.REJECTED, State.REJECTED),
        (0, State.ENROUTE),  # SMPP 5.0 SCHEDULED
        (9, State.UNDELIVERABLE),  # SMPP 5.0 SKIPPED
    ],
)
def test_tlv_only_receipt(message_state, state):
    pdu = receipt_pdu(tlvs={Tag.receipted_message_id: "3AF0C1", Tag.message_state: message_state})
    assert parse(pdu) == Receipt(carrier_id="3AF0C1", state=state, error=0)


def test_tlv_receipt_with_network_error_code():
    pdu = receipt_pdu(
        tlvs={
            Tag.receipted_message_id: "100200",
            Tag.message_state: MessageState.UNDELIVERABLE,
            Tag.network_error_code: b"\x03\x00\x22",  # GSM, cause 34
        }
    )
    got = parse(pdu)
    assert got is not None
    assert (got.carrier_id, got.state, got.error) == ("100200", State.UNDELIVERABLE, 34)


def test_tlv_id_is_stripped_of_blanks():
    got = parse(receipt_pdu(tlvs={Tag.receipted_message_id: "  00AB12 ", Tag.message_state: 2}))
    assert got is not None and got.carrier_id == "00AB12"


def test_tlv_id_without_any_state_gives_state_none():
    got = parse(receipt_pdu(tlvs={Tag.receipted_message_id: "42"}))
    assert got == Receipt(carrier_id="42", state=None, error=0)


def test_unknown_message_state_value_falls_back_on_the_text_then_unknown():
    tlvs = {Tag.receipted_message_id: "42", Tag.message_state: 200}
    assert parse(receipt_pdu(tlvs=tlvs)).state == State.UNKNOWN
    text = b"id:42 stat:EXPIRED err:0"
    assert parse(receipt_pdu(text, tlvs=tlvs)).state == State.EXPIRED


def test_tlv_id_completed_from_the_text():
    got = parse(receipt_pdu(b"id:42 sub:001 dlvrd:001 stat:DELIVRD err:000 text:hi", {
        Tag.receipted_message_id: "42"
    }))  # fmt: skip
    assert got is not None
    assert (got.state, got.stat, got.text, got.submitted, got.delivered) == (
        State.DELIVERED,
        "DELIVRD",
        "hi",
        1,
        1,
    )


def test_tlv_state_completed_with_an_id_from_the_text():
    got = parse(receipt_pdu(b"id:9001 stat:UNDELIV", {Tag.message_state: 2}))
    assert got is not None and (got.carrier_id, got.state) == ("9001", State.DELIVERED)


def test_tlv_and_text_disagree_the_tlv_wins():
    """The TLVs are typed and the text is free-form: when they differ, the TLVs are believed.
    The text's id is kept apart, since some carriers write the other base there."""
    text = (
        b"id:0972660181 sub:001 dlvrd:000 submit date:2203031741 done date:2203031741"
        b" stat:UNDELIV err:011 text:"
    )
    tlvs = {
        Tag.receipted_message_id: "39f99dd5",
        Tag.message_state: MessageState.DELIVERED,
        Tag.network_error_code: b"\x03\x00\x05",
    }
    got = parse(receipt_pdu(text, tlvs))
    assert got is not None
    assert (got.carrier_id, got.state, got.error) == ("39f99dd5", State.DELIVERED, 5)
    assert got.alt_id == "0972660181"
    assert got.stat == "UNDELIV"  # what the text said, for the logs


def test_same_id_in_tlv_and_text_leaves_no_alt_id():
    got = parse(receipt_pdu(b"id:00AB stat:DELIVRD", {Tag.receipted_message_id: "ab"}))
    assert got is not None and got.alt_id == ""


def test_zero_network_error_code_does_not_hide_the_text_err():
    tlvs = {Tag.receipted_message_id: "7", Tag.network_error_code: b"\x03\x00\x00"}
    got = parse(receipt_pdu(b"id:7 stat:UNDELIV err:069", tlvs))
    assert got is not None and got.error == 69


@pytest.mark.parametrize("value", [b"", b"\x03", b"\x03\x00", b"\x03\x00\x01\x02"])
def test_network_error_code_of_the_wrong_length_is_ignored(value):
    tlvs = {Tag.receipted_message_id: "7", Tag.network_error_code: value}
    got = parse(receipt_pdu(b"err:12", tlvs))
    assert got is not None and got.error == 12


def test_data_sm_receipt_with_message_payload():
    payload = b"id:5150 sub:001 dlvrd:001 submit date:2601011200 done date:2601011201 stat:DELIVRD"
    pdu = receipt_pdu(command=Command.data_sm, tlvs={Tag.message_payload: payload})
    got = parse(pdu)
    assert got is not None and (got.carrier_id, got.state) == ("5150", State.DELIVERED)


def test_intermediate_notification_is_a_receipt():
    got = parse(receipt_pdu(b"id:88 stat:ENROUTE err:0", esm_class=0x20))
    assert got is not None and got.intermediate and got.state == State.ENROUTE


# --- text receipts -----------------------------------------------------------------------------

# Receipt texts in the forms carriers and SMSC vendors are reported to send (spec appendix B,
# provider documentation, and the bug reports against Jasmin, Kannel, jsmpp and others):
# (text, carrier_id, state, error, other expected fields).
TEXT_RECEIPTS = [
    pytest.param(
        b"id:0911897980 sub:001 dlvrd:000 submit date:1201121551 done date:1201121551"
        b" stat:UNDELIV err:075 text:-PROFILE",
        "0911897980",
        State.UNDELIVERABLE,
        75,
        {"submit_date": "1201121551", "done_date": "1201121551", "text": "-PROFILE"},
        id="appendix-b",
    ),
    pytest.param(
        b"id:972660181 sub:001 dlvrd:001 submit date:2203031741 done date:2203031742"
        b" stat:DELIVRD err:000 text:none ",
        "972660181",
        State.DELIVERED,
        0,
        {"text": "none", "submitted": 1, "delivered": 1},
        id="decimal-id-trailing-space",
    ),
    pytest.param(
        b"id:a29f6845555647139e5c8f3b817f2c9a sub:001 dlvrd:001 submit date:141023215253"
        b" done date:141023215259 stat:DELIVRD err:000 text:",
        "a29f6845555647139e5c8f3b817f2c9a",
        State.DELIVERED,
        0,
        {"submit_date": "141023215253", "done_date": "141023215259", "text": ""},
        id="hex-id-12-digit-dates",
    ),
    pytest.param(
        b"id:1526758174 submit date:1701240904 done date:1701240904 stat:DELIVRD err:000"
        b" text:hellow",
        "1526758174",
        State.DELIVERED,
        0,
        {"submitted": None, "delivered": None, "text": "hellow"},
        id="no-sub-no-dlvrd",
    ),
    pytest.param(
        b"id:0654354026 submit date:2302101454 done date:2302101454 stat:DELIVRD err:000",
        "0654354026",
        State.DELIVERED,
        0,
        {"text": ""},
        id="no-text-field",
    ),
    pytest.param(
        b"id:117062714244798261 sub:001 dlvrd:001 submit date:1706271624 done date:1706271624"
        b" stat:DELIVRD err:0000 text:H\x1bello world",
        "117062714244798261",
        State.DELIVERED,
        0,
        {"text": "H ello world"},
        id="four-digit-err-gsm-escape-in-text",
    ),
    pytest.param(
        b"id:1216080510405254850 sub:001 dlvrd:001 submit date:1608051046"
        b" done date:0000000000 stat:FAILED err:002 Text:",
        "1216080510405254850",
        State.UNDELIVERABLE,
        2,
        {"done_date": "0000000000", "stat": "FAILED"},
        id="failed-capital-text-zero-date",
    ),
    pytest.param(
        b"ID:AB12CD SUB:001 DLVRD:000 SUBMIT DATE:2601011200 DONE DATE:2601011230"
        b" STAT:EXPIRED ERR:000 TEXT:Bonjour",
        "AB12CD",
        State.EXPIRED,
        0,
        {"text": "Bonjour", "submit_date": "2601011200"},
        id="upper-case-keys",
    ),
    pytest.param(
        b"id:12345 sub:001 dlvrd:001 submit_date:2401011200 done_date:2401011201"
        b" stat:DELIVRD err:0 text:x",
        "12345",
        State.DELIVERED,
        0,
        {"submit_date": "2401011200", "done_date": "2401011201"},
        id="underscore-dates",
    ),
    pytest.param(
        b"Delivery report id:77001 sub:001 dlvrd:001 submit date:2601011200"
        b" done date:2601011200 stat:DELIVRD err:000 text:",
        "77001",
        State.DELIVERED,
        0,
        {},
        id="text-before-id",
    ),
    pytest.param(
        b"id : 4455   sub : 001  dlvrd : 000  submit  date : 2601011200  done  date :"
        b" 2601011300  stat : REJECTD  err : 0x45 text : spam",
        "4455",
        State.REJECTED,
        0x45,
        {"submit_date": "2601011200", "done_date": "2601011300", "text": "spam"},
        id="extra-spaces-hex-err",
    ),
    pytest.param(
        b"id:1101C1-C9D03D-F000 sub:000 dlvrd:000 submit date:2010290238"
        b" done date:2010290238 stat:ACCEPTD err:000 text:",
        "1101C1-C9D03D-F000",
        State.ENROUTE,
        0,
        {"submitted": 0, "delivered": 0},
        id="dashed-id-acceptd",
    ),
    pytest.param(
        b"id:ffe01 sub:001 dlvrd:000 submit date:2601011200 done date:2601011200"
        b" stat:BUFFRED err:00B text:",
        "ffe01",
        State.ENROUTE,
        11,
        {},
        id="buffred-hex-looking-err",
    ),
    pytest.param(b"id:33 stat:ACKED err:0", "33", State.ENROUTE, 0, {"stat": "ACKED"}, id="acked"),
    pytest.param(b"id:34 stat:Delivrd err:1f", "34", State.DELIVERED, 31, {}, id="mixed-case-stat"),
    pytest.param(
        b"id:35 stat:WEIRDST err:zz", "35", State.UNKNOWN, 0, {"stat": "WEIRDST"}, id="unknown"
    ),
    pytest.param(
        b"id:36,sub:001,dlvrd:001,submit date:2601011200,done date:2601011200,stat:DELIVRD,"
        b"err:000,text:ok",
        "36",
        State.DELIVERED,
        0,
        {"submit_date": "2601011200", "text": "ok"},
        id="commas",
    ),
    pytest.param(
        b"id:37\x00 sub:001\r\ndlvrd:001 submit date:2601011200 done date:2601011200\n"
        b"stat:UNDELIV err:001 text:",
        "37",
        State.UNDELIVERABLE,
        1,
        {},
        id="nul-and-line-breaks",
    ),
    pytest.param(
        b"id:38 sub:001 dlvrd:001 submit\x11date:2601011200 done date:2601011200 stat:DELIVRD",
        "38",
        State.DELIVERED,
        0,
        {"submit_date": "2601011200"},
        id="gsm-underscore",
    ),
    pytest.param(b"id:39 sub:001 dlvrd:001", "39", None, 0, {}, id="no-stat"),
]


@pytest.mark.parametrize(("text", "carrier_id", "state", "error", "more"), TEXT_RECEIPTS)
def test_text_receipt(text, carrier_id, state, error, more):
    got = parse(receipt_pdu(text))
    assert got is not None
    assert (got.carrier_id, got.state, got.error) == (carrier_id, state, error)
    for name, value in more.items():
        assert getattr(got, name) == value, name


def test_ucs2_receipt():
    text = "id:5001 sub:001 dlvrd:001 stat:DELIVRD err:000 text:Café".encode("utf-16-be")
    for data_coding in (8, 0):  # detected by its leading 00 octet as well
        got = parse(receipt_pdu(text, data_coding=data_coding))
        assert got is not None
        assert (got.carrier_id, got.state, got.text) == ("5001", State.DELIVERED, "Café")


def test_receipt_with_a_user_data_header():
    udh = b"\x05\x00\x03\x2a\x01\x01"
    got = parse(receipt_pdu(udh + b"id:6001 stat:EXPIRED err:0", esm_class=0x44))
    assert got is not None and (got.carrier_id, got.state) == ("6001", State.EXPIRED)


def test_nothing_after_text_is_read_as_a_field():
    """The text field is the original message: it cannot forge the id, state or error."""
    got = parse(receipt_pdu(b"id:100 stat:UNDELIV err:002 text:id:999 stat:DELIVRD err:0"))
    assert got is not None
    assert (got.carrier_id, got.state, got.error) == ("100", State.UNDELIVERABLE, 2)
    assert got.text == "id:999 stat:DELIVRD err:0"


def test_first_occurrence_of_a_key_wins():
    got = parse(receipt_pdu(b"id:1 id:2 stat:DELIVRD stat:UNDELIV"))
    assert got is not None and (got.carrier_id, got.state) == ("1", State.DELIVERED)


@pytest.mark.parametrize("text", [b"msgid:8123 stat:DELIVRD", b"message_id:8123 stat:DELIVRD"])
def test_id_key_spellings(text):
    got = parse(receipt_pdu(text))
    assert got is not None and got.carrier_id == "8123"


def test_long_ids_and_errors_are_bounded():
    got = parse(receipt_pdu(b"id:1 stat:UNDELIV err:99999999999999"))
    assert got is not None and got.error == receipts.MAX_ERROR


# --- not receipts ------------------------------------------------------------------------------


@pytest.mark.parametrize("esm_class", [0x00, 0x40, 0x08, 0x10, 0x18, 0x03, 0x80])
def test_other_message_types_are_not_receipts(esm_class):
    pdu = receipt_pdu(b"id:1 stat:DELIVRD", {Tag.receipted_message_id: "1"}, esm_class=esm_class)
    assert parse(pdu) is None
    assert not receipts.is_receipt(pdu)


def test_sme_acknowledgements_are_told_apart():
    assert receipts.is_acknowledgement(receipt_pdu(b"ok", esm_class=0x08))
    assert receipts.is_acknowledgement(receipt_pdu(b"ok", esm_class=0x10))
    assert not receipts.is_acknowledgement(receipt_pdu(b"ok", esm_class=0x00))
    assert not receipts.is_acknowledgement(receipt_pdu(b"ok", esm_class=0x04))


def test_submit_sm_is_never_a_receipt():
    pdu = Pdu(Command.submit_sm, 1, 0, {"esm_class": 4, "short_message": b"id:1 stat:DELIVRD"})
    assert parse(pdu) is None and not receipts.is_receipt(pdu)


@pytest.mark.parametrize(
    "text", [b"", b"hello", b"stat:DELIVRD err:0", b"id: stat:DELIVRD", b"text:id:5"]
)
def test_receipt_without_an_id_gives_none(text):
    pdu = receipt_pdu(text)
    assert receipts.is_receipt(pdu)  # a receipt, but unreadable: the caller counts it
    assert parse(pdu) is None


def test_empty_receipted_message_id_falls_back_on_the_text():
    assert parse(receipt_pdu(b"", {Tag.receipted_message_id: ""})) is None
    got = parse(receipt_pdu(b"id:5 stat:DELIVRD", {Tag.receipted_message_id: " "}))
    assert got is not None and got.carrier_id == "5"


# --- garbage never raises ----------------------------------------------------------------------

FRAGMENTS = st.sampled_from(
    [
        "id:", "ID :", "sub:", "dlvrd:", "submit date:", "done_date:", "Submit _ date:",
        "stat:", "err:", "text:", "Text:", "msgid:", "DELIVRD", "UNDELIV", "0x", "00B",
        "ſub:", "İd:", "ＩＤ:", "123", "abc", "ff", " ", "  ", ",", ";", ":", "\x00", "\x11",
        "\n", "é", "\ud800", "٣", "²",
    ]
)  # fmt: skip
ESM = st.one_of(st.sampled_from([0x04, 0x20, 0x44, 0x64, 0x00]), st.integers(0, 255))


@given(st.binary(max_size=300), ESM, st.integers(0, 255), any_tlvs())
def test_arbitrary_bytes_and_tlvs_never_raise(short_message, esm_class, data_coding, tlvs):
    params = {"esm_class": esm_class, "data_coding": data_coding, "short_message": short_message}
    got = parse(Pdu(Command.deliver_sm, 1, 0, params, tlvs))
    if got is not None:
        assert got.carrier_id
        assert 0 <= got.error <= receipts.MAX_ERROR


@given(st.lists(FRAGMENTS, max_size=40).map("".join), ESM, any_tlvs())
def test_receipt_like_text_never_raises(text, esm_class, tlvs):
    for encoding, errors in (
        ("latin-1", "replace"),
        ("utf-16-be", "surrogatepass"),
        ("utf-8", "surrogatepass"),
    ):
        raw = text.encode(encoding, errors)
        for data_coding in (0, 8):
            params = {"esm_class": esm_class, "data_coding": data_coding, "short_message": raw}
            parse(Pdu(Command.deliver_sm, 1, 0, params, tlvs))
            parse(Pdu(Command.data_sm, 1, 0, params, {**tlvs, Tag.message_payload: raw}))
    parse(Pdu(Command.deliver_sm, 1, 0, {"esm_class": 4, "short_message": text}, tlvs))


RECEIPT_TAGS = [
    Tag.receipted_message_id,
    Tag.message_state,
    Tag.network_error_code,
    Tag.message_payload,
]
TLV_ENTRIES = st.tuples(
    st.one_of(st.sampled_from(RECEIPT_TAGS), st.integers(0, 0xFFFF)),
    st.one_of(st.binary(max_size=40), st.binary(max_size=40).map(lambda b: b + b"\0")),
)


@given(st.lists(TLV_ENTRIES, max_size=6))
def test_arbitrary_tlv_streams_never_raise(entries):
    """TLV streams of any content under the receipt tags, as the codec decodes them."""
    stream = b"".join(struct.pack(">HH", tag, len(value)) + value for tag, value in entries)
    tlvs = decode_tlvs(stream)
    if isinstance(tlvs, PduError):
        return  # the codec refused it: the session answers it, parse never sees it
    for short_message in (b"", b"id:1 stat:DELIVRD err:5"):
        parse(Pdu(Command.deliver_sm, 1, 0, {"esm_class": 4, "short_message": short_message}, tlvs))


ODD_VALUES = st.one_of(
    st.none(),
    st.integers(-(2**70), 2**70),
    st.binary(max_size=8),
    st.text(max_size=8),
    st.booleans(),
    st.lists(st.integers(), max_size=2),
)


@given(
    st.dictionaries(
        st.sampled_from(
            [Tag.receipted_message_id, Tag.message_state, Tag.network_error_code,
             Tag.message_payload, 0x1401]
        ),
        ODD_VALUES,
    ),
    st.dictionaries(
        st.sampled_from(["esm_class", "data_coding", "short_message"]), ODD_VALUES
    ),
)  # fmt: skip
def test_wrongly_typed_fields_never_raise(tlvs, params):
    """Values a hand-built Pdu might hold (not the codec's types): still no exception."""
    parse(Pdu(Command.deliver_sm, 1, 0, {"esm_class": 4, **params}, tlvs))
    parse(Pdu(Command.deliver_sm, 1, 0, params, tlvs))


# --- carrier id matching -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("carrier_id", "stored"),
    [
        ("00B8BE19", "b8be19"),
        ("  0e999f21-81EF  ", "e999f21-81ef"),
        ("000", "0"),
        ("0", "0"),
        ("", ""),
        (" \x00", ""),
        ("ABC\x00", "abc"),
        ("1200", "1200"),
    ],
)
def test_normalise(carrier_id, stored):
    assert normalise(carrier_id) == stored


@pytest.mark.parametrize(
    ("submit_sm_resp_id", "receipt_id"),
    [
        ("39f99dd5", "0972660181"),  # hex answer, decimal receipt
        ("10C8F40D", "281605133"),
        ("812FC7470000001B", "9308878062554710043"),  # beyond 63 bits
        ("33E95179", "870928761"),
        ("00B8BE19", "B8BE19"),  # leading zeros dropped
        ("0e999f21-81ef-4974-a414-3de98174e3c7", "E999F21-81EF-4974-A414-3DE98174E3C7"),
        ("1101c1-c9d03d-f000", "1101C1-C9D03D-F000"),  # case
        ("972660181", "39F99DD5"),  # decimal answer, hex receipt
        ("0000123", "123"),
    ],
)
def test_reported_id_mismatches_are_matched(submit_sm_resp_id, receipt_id):
    assert normalise(submit_sm_resp_id) in candidates(receipt_id)


def test_candidates_order_exact_first_then_hex_then_decimal():
    assert candidates("0010") == ("10", "a", "16")
    assert candidates("00AB") == ("ab", "171")
    assert candidates("0") == ("0",)
    assert candidates("9") == ("9",)  # 9 in every base: one form
    assert candidates("1101C1-C9D03D") == ("1101c1-c9d03d",)
    assert candidates("  ") == ()


def test_candidates_of_ids_too_long_to_be_ours_are_not_converted():
    long_id = "1" * 200  # would also overflow int's string conversion limits if converted
    assert candidates(long_id) == (long_id,)


@st.composite
def renderings(draw, n: int) -> str:
    """n written as a carrier might: decimal or hex, either case, zero-padded or not."""
    digits = format(n, draw(st.sampled_from(["d", "x", "X"])))
    return "0" * draw(st.integers(0, 6)) + digits


@given(st.integers(0, 2**96), st.data())
def test_any_rendering_is_found_from_any_other(n, data):
    stored = normalise(data.draw(renderings(n)))
    receipt_id = data.draw(renderings(n))
    assert stored in candidates(receipt_id)


@given(st.text(max_size=40))
def test_candidates_are_normalised_distinct_and_exact_first(receipt_id):
    forms = candidates(receipt_id)
    assert len(set(forms)) == len(forms)
    assert all(normalise(f) == f for f in forms)
    if normalise(receipt_id):
        assert forms[0] == normalise(receipt_id)
    else:
        assert forms == ()


# --- our receipts to clients -------------------------------------------------------------------

SUBMITTED = epoch(2026, 3, 1, 9, 15)
DONE = epoch(2026, 3, 1, 9, 16, 30)


def test_format_text_layout():
    assert format_text("1234567", State.DELIVERED, SUBMITTED, DONE, 0, "Votre code: 4821") == (
        b"id:1234567 sub:001 dlvrd:001 submit date:2603010915 done date:2603010916"
        b" stat:DELIVRD err:000 text:Votre code: 4821"
    )


def test_format_text_long_message_failure():
    body = format_text("88", State.UNDELIVERABLE, SUBMITTED, DONE, 69, "x" * 500, parts=3)
    assert b" sub:003 dlvrd:000 " in body
    assert body[body.index(b" stat:") :] == b" stat:UNDELIV err:069 text:" + b"x" * 20
    partial = format_text("88", State.UNDELIVERABLE, SUBMITTED, DONE, 1, "", 3, delivered=2)
    assert b" sub:003 dlvrd:002 " in partial


@pytest.mark.parametrize(
    ("state", "word"),
    [
        (State.ACCEPTED, b"ENROUTE"),
        (State.SENDING, b"ENROUTE"),
        (State.ENROUTE, b"ENROUTE"),
        (State.DELIVERED, b"DELIVRD"),
        (State.EXPIRED, b"EXPIRED"),
        (State.DELETED, b"DELETED"),
        (State.UNDELIVERABLE, b"UNDELIV"),
        (State.REJECTED, b"REJECTD"),
        (State.UNKNOWN, b"UNKNOWN"),
    ],
)
def test_stat_words(state, word):
    assert b" stat:" + word + b" " in format_text("1", state, SUBMITTED, DONE, 0, "")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello", "Hello"),
        ("Réservation confirmée à 14h", "Reservation confirme"),
        ("Cœur d’été, 5€", "Coeur d'ete, 5EUR"),
        ("a\nb\tc\x00d", "a b cd"),
        ("mail: me@example.com_x", "mail: meexample.comx"),  # @ and _ differ in GSM 03.38
        ("$100 [ok] {x} ~^|\\`", "100 ok x "),
        ("ПРИВЕТ 你好 😀 ok", "   ok"),
        ("", ""),
    ],
)
def test_receipt_text(text, expected):
    assert receipts.receipt_text(text) == expected


@given(st.text(max_size=100))
def test_receipt_text_is_short_gsm_safe_ascii(text):
    out = receipts.receipt_text(text)
    assert len(out) <= 20
    assert all(" " <= c <= "~" and c not in "$@[\\]^_`{|}~" for c in out)


def test_receipt_tlvs():
    assert receipts.receipt_tlvs("77", State.DELIVERED, 0) == {
        Tag.receipted_message_id: "77",
        Tag.message_state: 2,
    }
    tlvs = receipts.receipt_tlvs("77", State.UNDELIVERABLE, 0x45, receipts.NETWORK_SMPP)
    assert tlvs[Tag.message_state] == MessageState.UNDELIVERABLE
    assert tlvs[Tag.network_error_code] == b"\x07\x00\x45"
    assert receipts.receipt_tlvs("1", State.REJECTED, 10**9)[Tag.network_error_code] == (
        b"\x08\xff\xff"
    )
    assert receipts.receipt_tlvs("1", State.SENDING, 0)[Tag.message_state] == 1


MESSAGE_IDS = st.one_of(
    st.integers(1, 10**20).map(str), st.text("0123456789abcdefABCDEF", min_size=1, max_size=20)
)
INSTANTS = st.floats(epoch(2000, 1, 1), epoch(2099, 12, 31), allow_nan=False)


@given(
    MESSAGE_IDS,
    st.sampled_from(State),
    INSTANTS,
    INSTANTS,
    st.integers(0, receipts.MAX_ERROR),
    st.text(max_size=60),
    st.integers(1, 255),
)
def test_our_receipt_text_parses_back(message_id, state, submitted, done, error, text, parts):
    body = format_text(message_id, state, submitted, done, error, text, parts)
    got = parse(receipt_pdu(body, data_coding=0))
    assert got is not None
    assert got.carrier_id == message_id
    assert got.state == (state if state in FINAL else State.ENROUTE)
    assert got.error == error
    assert got.submit_date == format_date(submitted)
    assert got.done_date == format_date(done)
    assert got.submitted == parts
    assert got.delivered == (parts if state == State.DELIVERED else 0)
    assert got.text == receipts.receipt_text(text).strip()


@given(MESSAGE_IDS, st.sampled_from(State), st.integers(0, 0xFFFF), st.text(max_size=30))
def test_our_receipt_with_tlvs_parses_back(message_id, state, error, text):
    body = format_text(message_id, state, SUBMITTED, DONE, error, text)
    got = parse(receipt_pdu(body, receipts.receipt_tlvs(message_id, state, error)))
    assert got is not None
    assert (got.carrier_id, got.error, got.alt_id) == (message_id, error, "")
    assert SMPP_STATE[got.state] == SMPP_STATE[state]


# --- tables and dates --------------------------------------------------------------------------


def test_every_state_has_a_word_that_reads_back_to_it_in_smpp_terms():
    for state in State:
        assert SMPP_STATE[receipts.STAT_STATES[receipts.STAT_WORDS[state]]] == SMPP_STATE[state]


def test_every_message_state_is_mapped():
    assert set(MessageState) <= set(receipts.MESSAGE_STATES)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2603010915", epoch(2026, 3, 1, 9, 15)),
        ("260301091530", epoch(2026, 3, 1, 9, 15, 30)),
        ("0000000000", None),
        ("2602300000", None),  # 30 February
        ("", None),
        ("26030109", None),
        ("26030109xx", None),
        ("２６０３０１０９１５", None),  # full-width digits
    ],
)
def test_parse_date(value, expected):
    assert receipts.parse_date(value) == expected


@given(INSTANTS)
def test_parse_date_reads_format_date(instant):
    assert receipts.parse_date(format_date(instant)) == instant // 60 * 60


_VALUE = st.text(alphabet="0123456789abcdefABCDEF,;: x_-", max_size=12)


@given(
    values=st.lists(_VALUE, min_size=7, max_size=7),
    text=st.one_of(st.none(), st.text(alphabet="abc :,id\x00", max_size=20)),
    tail=st.sampled_from(["", " ", "  "]),
)
def test_the_laid_out_text_reads_as_the_general_scan_does(values, text, tail):
    # The one-match reading of appendix B's layout is a shortcut, never another answer.
    keys = ("id", "sub", "dlvrd", "submit date", "done date", "stat", "err")
    raw = " ".join(f"{k}:{v}" for k, v in zip(keys, values, strict=True))
    raw += ("" if text is None else f" text:{text}") + tail
    octets = raw.encode("latin-1").translate(receipts._BLANK_CONTROLS)
    assert receipts._fields(octets) == receipts._scan(octets)
    if not any(set(v) & set(" ,;:") for v in values):  # laid out: the shortcut takes it
        assert receipts._LAID_OUT.fullmatch(octets) is not None


def test_the_laid_out_text_is_read_in_one_match():
    raw = b"id:1a2b sub:001 dlvrd:001 submit date:2612070710 done date:2612070711 stat:DELIVRD "
    raw += b"err:000 text:Hello: stat:x"
    assert receipts._LAID_OUT.fullmatch(raw) is not None
    assert receipts._fields(raw) == {
        "id": "1a2b", "sub": "001", "dlvrd": "001", "submitdate": "2612070710",
        "donedate": "2612070711", "stat": "DELIVRD", "err": "000", "text": "Hello: stat:x",
    }  # fmt: skip
