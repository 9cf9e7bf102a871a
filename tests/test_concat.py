"""Long messages: split, UDH, concat_info and reassembly (smsc.protocol.concat)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smsc.protocol.concat import (
    Reassembler,
    concat_info,
    parse_udh,
    parts_count,
    split,
    split_bytes,
    udh,
)
from smsc.protocol.constants import Tag
from smsc.protocol.text import BINARY, BINARY_4, GSM, IA5, LATIN1, UCS2, decode, encode

EMOJI = "😀"  # two UTF-16 units, a surrogate pair
GSM_CHARS = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !#¤%&()*+,-./09:;<=>?¡AZÄÖÑÜ§¿azäöñüà"
ESCAPED = "\f^{}\\[~]|€"


def sizes(parts):
    return [len(p) for p in parts]


# -- split: sizes at the boundaries -------------------------------------------------------


@pytest.mark.parametrize(
    ("length", "udh16", "expected"),
    [
        (0, False, [0]),
        (160, False, [160]),
        (161, False, [153, 8]),
        (161, True, [152, 9]),
        (306, False, [153, 153]),
        (307, False, [153, 153, 1]),
    ],
)
def test_gsm_sizes(length, udh16, expected):
    assert sizes(split("a" * length, GSM, udh16)) == expected
    assert parts_count("a" * length, GSM, udh16) == len(expected)


def test_ia5_counts_septets():
    assert sizes(split("a" * 160, IA5)) == [160]
    assert sizes(split("a" * 161, IA5)) == [153, 8]


def test_escapes_count_double_at_the_boundary():
    assert sizes(split("€" * 80, GSM)) == [160]
    assert sizes(split("€" * 80 + "a", GSM)) == [152, 9]  # 153 would cut the 77th €


def test_escape_sequence_is_never_cut():
    parts = split("a" * 152 + "€" + "b" * 10, GSM)
    assert parts == [b"a" * 152, b"\x1b\x65" + b"b" * 10]
    parts = split("a" * 151 + "€" + "b" * 10, GSM, udh16=True)
    assert parts == [b"a" * 151, b"\x1b\x65" + b"b" * 10]


def test_at_sign_survives_split():
    parts = split("@" * 200, GSM)
    assert sizes(parts) == [153, 47]
    assert b"".join(parts) == b"\x00" * 200


@pytest.mark.parametrize(
    ("length", "udh16", "expected"),
    [(70, False, [140]), (71, False, [134, 8]), (71, True, [132, 10]), (134, False, [134, 134])],
)
def test_ucs2_sizes(length, udh16, expected):
    assert sizes(split("é" * length, UCS2, udh16)) == expected


def test_ucs2_counts_units_not_characters():
    assert sizes(split(EMOJI * 35, UCS2)) == [140]
    assert sizes(split(EMOJI * 35 + "a", UCS2)) == [132, 10]  # 67 units would cut a pair


def test_surrogate_pair_is_never_cut():
    parts = split("a" * 66 + EMOJI + "b" * 5, UCS2)
    assert parts == [encode(UCS2, "a" * 66), encode(UCS2, EMOJI + "b" * 5)]
    assert [decode(UCS2, p) for p in parts] == ["a" * 66, EMOJI + "b" * 5]


@pytest.mark.parametrize("coding", [LATIN1, BINARY, BINARY_4, 0xF6])
def test_octet_sizes(coding):
    data = bytes(range(141))
    assert sizes(split_bytes(data[:140], coding)) == [140]
    assert sizes(split_bytes(data, coding)) == [134, 7]
    assert sizes(split_bytes(data, coding, udh16=True)) == [133, 8]
    assert b"".join(split_bytes(data * 3, coding)) == data * 3


def test_latin1_text():
    assert sizes(split("ê" * 141, LATIN1)) == [134, 7]


def test_255_parts_at_most():
    assert parts_count("a" * 153 * 255, GSM) == 255
    with pytest.raises(ValueError):
        split("a" * (153 * 255 + 1), GSM)
    with pytest.raises(ValueError):
        parts_count("a" * (153 * 255 + 1), GSM)


def test_text_the_coding_cannot_hold():
    with pytest.raises(ValueError):
        split("œ", GSM)
    with pytest.raises(ValueError):
        parts_count("œ", LATIN1)


# -- split: properties --------------------------------------------------------------------


def escape_lead_positions(data: bytes) -> set[int]:
    """Offsets of the ESCs that start an escape sequence."""
    leads, i = set(), 0
    while i < len(data):
        if data[i] == 0x1B:
            leads.add(i)
            i += 2
        else:
            i += 1
    return leads


@given(st.text(alphabet=st.sampled_from(GSM_CHARS + ESCAPED * 4)), st.booleans())
def test_gsm_split_never_cuts_an_escape(value, udh16):
    parts = split(value, GSM, udh16)
    data = encode(GSM, value)
    assert b"".join(parts) == data
    assert "".join(decode(GSM, p) for p in parts) == value
    limit = 160 if len(parts) == 1 else 152 if udh16 else 153
    assert all(len(p) <= limit for p in parts)
    offset = 0
    for part in parts[:-1]:
        offset += len(part)
        assert offset - 1 not in escape_lead_positions(data)
    assert parts_count(value, GSM, udh16) == len(parts)


@given(st.binary(max_size=2000).map(lambda b: b.replace(b"\x80", b"\x1b")), st.booleans())
def test_gsm_split_bytes_never_cuts_an_escape(data, udh16):
    # Octets of any value, with ESC runs of every length, as a client may send them.
    parts = split_bytes(data, GSM, udh16)
    assert b"".join(parts) == data
    leads = escape_lead_positions(data)
    offset = 0
    for part in parts[:-1]:
        offset += len(part)
        assert offset - 1 not in leads
        assert len(part) >= (151 if udh16 else 152)


@given(
    st.text(alphabet=st.one_of(st.sampled_from(EMOJI + "🇫🇷é"), st.characters(codec="utf-8"))),
    st.booleans(),
)
def test_ucs2_split_never_cuts_a_surrogate_pair(value, udh16):
    parts = split(value, UCS2, udh16)
    assert b"".join(parts) == encode(UCS2, value)
    # Each part decodes on its own without a replacement character.
    assert "".join(decode(UCS2, p) for p in parts) == value
    limit = 140 if len(parts) == 1 else 132 if udh16 else 134
    assert all(len(p) <= limit and len(p) % 2 == 0 for p in parts)
    assert parts_count(value, UCS2, udh16) == len(parts)


# -- UDH ----------------------------------------------------------------------------------


def test_udh_bytes():
    assert udh(0xAB, 3, 1) == bytes.fromhex("050003ab0301")
    assert udh(0x1234, 3, 2, ref16=True) == bytes.fromhex("06080412340302")


@pytest.mark.parametrize(
    ("ref", "total", "seq", "ref16"),
    [(256, 2, 1, False), (-1, 2, 1, False), (0x10000, 2, 1, True), (1, 0, 0, False)]
    + [(1, 2, 0, False), (1, 2, 3, False), (1, 256, 1, False)],
)
def test_udh_refuses_bad_values(ref, total, seq, ref16):
    with pytest.raises(ValueError):
        udh(ref, total, seq, ref16)


@given(st.integers(0, 0xFFFF), st.integers(1, 255), st.data(), st.booleans(), st.binary())
def test_udh_round_trip(ref, total, data, ref16, payload):
    ref = ref if ref16 else ref & 0xFF
    seq = data.draw(st.integers(1, total))
    message = udh(ref, total, seq, ref16) + payload
    elements, rest = parse_udh(message)
    assert rest == payload
    if ref16:
        assert elements == {0x08: bytes((ref >> 8, ref & 0xFF, total, seq))}
    else:
        assert elements == {0x00: bytes((ref, total, seq))}
    assert concat_info(0x40, message, {}) == (ref, total, seq, payload)
    assert concat_info(0x43, message, {}) == (ref, total, seq, payload)  # other bits set


def test_parse_udh_with_several_elements():
    # Port addressing (IEI 0x05) then concatenation, the layout of WAP push.
    message = bytes.fromhex("0b05040b8423f000037f0201") + b"body"
    elements, payload = parse_udh(message)
    assert elements == {0x05: bytes.fromhex("0b8423f0"), 0x00: bytes.fromhex("7f0201")}
    assert payload == b"body"
    assert concat_info(0x40, message, {}) == (0x7F, 2, 1, b"body")


def test_parse_udh_repeated_element_keeps_the_last():
    assert parse_udh(bytes.fromhex("0a00030102010003020202")) == (
        {0: bytes.fromhex("020202")},
        b"",
    )


@pytest.mark.parametrize(
    "message",
    [b"", b"\x05\x00\x03\x01", b"\x01\x00", b"\x03\x00\x03\x01\x02\x01", b"\x02\x00\x01"],
)
def test_parse_udh_malformed(message):
    assert parse_udh(message) is None
    assert concat_info(0x40, message, {}) is None


def test_parse_udh_empty_header():
    assert parse_udh(b"\x00abc") == ({}, b"abc")


# -- concat_info --------------------------------------------------------------------------


def sar(ref, total, seq):
    return {Tag.sar_msg_ref_num: ref, Tag.sar_total_segments: total, Tag.sar_segment_seqnum: seq}


def test_concat_info_from_sar_tlvs():
    assert concat_info(0, b"hello", sar(0x1234, 3, 2)) == (0x1234, 3, 2, b"hello")
    raw = {0x020C: b"\x12\x34", 0x020E: b"\x03", 0x020F: b"\x02"}  # undecoded values
    assert concat_info(0, b"hello", raw) == (0x1234, 3, 2, b"hello")


def test_concat_info_single_messages():
    assert concat_info(0, b"hello", {}) is None
    assert concat_info(0, b"\x05\x00\x03\x01\x02\x01", {}) is None  # no UDHI: just text
    assert concat_info(0x40, b"\x06\x05\x04\x0b\x84\x23\xf0body", {}) is None  # ports only
    assert concat_info(0, b"hello", {Tag.sar_msg_ref_num: 1}) is None  # incomplete SAR


def test_udh_without_concatenation_falls_back_to_sar():
    message = b"\x06\x05\x04\x0b\x84\x23\xf0body"
    assert concat_info(0x40, message, sar(7, 2, 2)) == (7, 2, 2, b"body")


@pytest.mark.parametrize("header", ["050003010000", "050003010200", "050003010203"])
def test_concat_info_rejects_impossible_udh(header):
    assert concat_info(0x40, bytes.fromhex(header) + b"x", {}) is None


@pytest.mark.parametrize(("total", "seq"), [(0, 0), (2, 0), (2, 3), (256, 1), (-1, 1)])
def test_concat_info_rejects_impossible_sar(total, seq):
    assert concat_info(0, b"x", sar(1, total, seq)) is None


def test_concat_info_rejects_wrong_element_lengths():
    assert concat_info(0x40, bytes.fromhex("0400020102") + b"x", {}) is None
    assert concat_info(0x40, bytes.fromhex("050803010201") + b"x", {}) is None


tlv_values = st.one_of(st.none(), st.integers(-(2**40), 2**40), st.binary(max_size=6))


@given(
    st.integers(0, 255),
    st.binary(max_size=300),
    st.dictionaries(st.sampled_from([0x020C, 0x020E, 0x020F, 0x0424]), tlv_values),
)
def test_parse_udh_and_concat_info_never_raise(esm_class, message, tlvs):
    parsed = parse_udh(message)
    if parsed is not None:
        elements, payload = parsed
        assert message.endswith(payload)
    info = concat_info(esm_class, message, tlvs)
    if info is not None:
        ref, total, seq, _ = info
        assert 1 <= seq <= total <= 255 and 0 <= ref <= 0xFFFF


# -- Reassembler --------------------------------------------------------------------------


def test_reassembly_out_of_order_with_duplicates():
    r = Reassembler(timeout=60)
    assert r.add("k", 9, 3, 3, b"c", now=0) is None
    assert r.add("k", 9, 3, 1, b"a", now=1) is None
    assert r.add("k", 9, 3, 1, b"A", now=2) is None  # duplicate: the first copy stays
    assert r.add("k", 9, 3, 2, b"b", now=3) == [b"a", b"b", b"c"]
    assert len(r) == 0
    assert r.add("k", 9, 3, 2, b"b", now=4) is None  # a late copy opens a set that expires
    assert r.expire(now=64) == [("k", 9, 3)]


def test_reassembly_keeps_sets_apart():
    r = Reassembler(timeout=60)
    assert r.add("alice", 1, 2, 1, b"a1", now=0) is None
    assert r.add("bob", 1, 2, 2, b"b2", now=0) is None
    assert r.add("alice", 1, 3, 2, b"x2", now=0) is None  # same ref, another total
    assert r.add("alice", 1, 2, 2, b"a2", now=0) == [b"a1", b"a2"]
    assert len(r) == 2


def test_single_part_and_impossible_seq():
    r = Reassembler(timeout=60)
    assert r.add("k", 1, 1, 1, b"x", now=0) == [b"x"]
    assert r.add("k", 1, 2, 3, b"x", now=0) is None
    assert r.add("k", 1, 2, 0, b"x", now=0) is None
    assert len(r) == 0


def test_expiry_on_injected_time():
    r = Reassembler(timeout=30)
    r.add("k", 1, 2, 1, b"a", now=100)
    r.add("k", 2, 2, 1, b"a", now=110)
    assert r.expire(now=129.9) == []
    assert r.add("k", 1, 2, 2, b"b", now=129.9) == [b"a", b"b"]  # a part does not extend
    r.add("k", 3, 2, 1, b"a", now=120)
    assert r.expire(now=140) == [("k", 2, 2)]
    assert r.expire(now=150) == [("k", 3, 2)]
    assert len(r) == 0
    assert r.add("k", 2, 2, 2, b"b", now=151) is None  # its first part is gone


def test_overflow_evicts_the_oldest_set():
    r = Reassembler(timeout=60, max_pending=2)
    r.add("k", 1, 2, 1, b"a", now=0)
    r.add("k", 2, 2, 1, b"a", now=1)
    r.add("k", 2, 2, 1, b"a", now=2)  # a part of a pending set opens nothing
    assert r.evicted == 0
    r.add("k", 3, 2, 1, b"a", now=3)
    assert (len(r), r.evicted) == (2, 1)
    assert r.add("k", 1, 2, 2, b"b", now=4) is None  # set 1 was evicted
    assert r.add("k", 3, 2, 2, b"b", now=5) == [b"a", b"b"]
    with pytest.raises(ValueError):
        Reassembler(timeout=60, max_pending=0)


@given(st.integers(1, 20).flatmap(lambda n: st.tuples(st.just(n), st.randoms())))
def test_reassembly_any_order_any_duplicates(case):
    total, rnd = case
    payloads = [bytes([i]) * 3 for i in range(1, total + 1)]
    arrivals = list(range(1, total + 1)) + [rnd.randint(1, total) for _ in range(total)]
    rnd.shuffle(arrivals)
    r = Reassembler(timeout=60)
    seen, results = set(), []
    for seq in arrivals:
        seen.add(seq)
        result = r.add(("src", "dst"), 42, total, seq, payloads[seq - 1], now=0)
        if result is not None:
            assert len(seen) == total
            results.append(result)
            seen = set()  # later duplicates start over
    assert results[0] == payloads
    assert r.expire(now=60) == ([] if not seen else [(("src", "dst"), 42, total)])


# -- end to end ---------------------------------------------------------------------------


@given(
    st.one_of(
        st.tuples(st.just(GSM), st.text(alphabet=st.sampled_from(GSM_CHARS + ESCAPED))),
        st.tuples(st.just(UCS2), st.text(alphabet=st.sampled_from("é😀a🇫🇷œ"))),
    ),
    st.booleans(),
)
def test_split_send_reassemble(case, ref16):
    coding, value = case
    parts = split(value, coding, ref16)
    total = len(parts)
    r = Reassembler(timeout=60)
    if total == 1:
        assert decode(coding, parts[0]) == value
        return
    result = None
    for seq in reversed(range(1, total + 1)):
        message = udh(300 if ref16 else 44, total, seq, ref16) + parts[seq - 1]
        ref, n, s, payload = concat_info(0x40, message, {})
        result = r.add("k", ref, n, s, payload, now=0)
    assert decode(coding, b"".join(result)) == value
