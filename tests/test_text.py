"""GSM 03.38, IA5, Latin-1 and UCS-2 codecs of smsc.protocol.text."""

import pytest
from hypothesis import given
from hypothesis import strategies as st
from smpplib import gsm as smpplib_gsm

from smsc.protocol import text
from smsc.protocol.text import (
    GSM,
    IA5,
    LATIN1,
    UCS2,
    best_coding,
    decode,
    encode,
    gsm_decode,
    gsm_encode,
    septets,
)

ESCAPED = "\f^{}\\[~]|€"
# Every character of the basic table (septets 0x00-0x7F but ESC), from 3GPP TS 23.038.
BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
gsm_texts = st.text(alphabet=st.sampled_from(BASIC + ESCAPED))
# Mostly GSM, now and then something else, so both outcomes of gsm_encode come up.
mixed_texts = st.text(
    alphabet=st.one_of(st.sampled_from(BASIC + ESCAPED), st.characters(codec="utf-8"))
)


def test_data_coding_values():
    codings = [text.GSM, text.IA5, text.BINARY, text.LATIN1, text.BINARY_4, text.UCS2]
    assert codings == [0, 1, 2, 3, 4, 8]


def test_basic_table_has_127_characters_on_their_septets():
    assert len(BASIC) == 127
    septet_values = [i for i in range(128) if i != 0x1B]
    assert [gsm_encode(c) for c in BASIC] == [bytes((i,)) for i in septet_values]
    assert gsm_decode(bytes(septet_values)) == BASIC


@pytest.mark.parametrize(
    ("char", "septet"),
    [("@", 0x00), ("£", 0x01), ("$", 0x02), ("Ç", 0x09), ("Δ", 0x10), ("_", 0x11)]
    + [("¤", 0x24), ("¡", 0x40), ("§", 0x5F), ("¿", 0x60), ("à", 0x7F)],
)
def test_landmarks_of_the_basic_table(char, septet):
    assert gsm_encode(char) == bytes((septet,))


def test_agrees_with_smpplib_table():
    # smpplib's table puts ` at 0x5F instead of § and uses ` as filler; all else must agree.
    for char in smpplib_gsm.GSM_CHARACTER_TABLE:
        if char not in "`\x1b":
            assert gsm_encode(char) == smpplib_gsm.gsm_encode(char), char


def test_extension_characters_cost_two_septets():
    assert gsm_encode("€") == b"\x1b\x65"
    assert septets("€") == 2
    assert septets("5 €") == 4
    assert septets(ESCAPED) == 20
    assert gsm_encode("[]{}") == b"\x1b\x3c\x1b\x3e\x1b\x28\x1b\x29"
    assert gsm_decode(gsm_encode(ESCAPED)) == ESCAPED


def test_at_sign_is_septet_zero_and_survives():
    assert gsm_encode("@") == b"\x00"
    assert gsm_encode("a@b@") == b"a\x00b\x00"
    assert decode(GSM, b"\x00\x00a\x00") == "@@a@"
    assert gsm_decode(gsm_encode("contact@example.fr")) == "contact@example.fr"


def test_c_cedilla_septet_is_capital():
    assert gsm_decode(b"\x09") == "Ç"
    assert gsm_encode("Ç") == b"\x09"
    # Handsets show 0x09 as Ç: sending ç there would turn "reçu" into "reÇu".
    assert gsm_encode("ç") is None
    assert best_coding("Reçu") == UCS2


@pytest.mark.parametrize("char", list("àéèùìòÉÇäöüñÄÖÜÑæÆøØåÅß"))
def test_french_and_neighbours_in_gsm(char):
    assert septets(char) == 1
    assert best_coding(f"Été {char}") == GSM


@pytest.mark.parametrize("char", list("âêîôûëïÿÀÂÈÊËÎÏÔÙÛ«»\xa0"))
def test_french_needs_ucs2_or_latin1(char):
    assert gsm_encode(char) is None
    assert septets(char) is None
    assert best_coding(char) == UCS2
    assert best_coding(char, latin1=True) == LATIN1


@pytest.mark.parametrize("char", list("œŒŸ’…😀") + ["\u202f"])
def test_beyond_latin1_needs_ucs2(char):
    assert best_coding(char, latin1=True) == UCS2
    assert decode(UCS2, encode(UCS2, char)) == char


def test_french_sentences():
    gsm = "Votre RDV à 14h est confirmé. Répondez STOP au 36123 pour l'arrêt"
    assert best_coding(gsm) == UCS2  # ê of arrêt
    gsm = gsm.replace("arrêt", "arret")
    assert best_coding(gsm) == GSM
    assert gsm_decode(gsm_encode(gsm)) == gsm
    assert best_coding("« Très bien » — à bientôt") == UCS2


@pytest.mark.parametrize("char", ["`", "\x00", "\t", "\x1b", "\x7f", "\x80"])
def test_characters_outside_the_alphabet(char):
    assert gsm_encode(f"abc{char}") is None
    assert best_coding(char) != GSM


def test_unknown_escape_shows_the_basic_character():
    assert gsm_decode(b"\x1bA") == "A"
    assert gsm_decode(b"\x1b\x00") == "@"
    assert gsm_decode(b"\x1b\x0d") == "\r"


def test_escape_escape_and_trailing_escape_show_a_space():
    assert gsm_decode(b"a\x1b\x1bb") == "a b"
    assert gsm_decode(b"a\x1b") == "a "
    assert gsm_decode(b"\x1b\x1b\x1b") == "  "
    assert gsm_decode(b"\x1b\x1b\x1b\x65") == " €"


def test_octets_above_0x7f_are_replaced():
    assert gsm_decode(b"a\x80\xffb") == "a\ufffd\ufffdb"
    assert gsm_decode(b"\x1b\x80") == "\ufffd"


def test_ia5_and_latin1():
    assert encode(IA5, "Hello [x]") == b"Hello [x]"
    assert decode(IA5, b"caf\xe9") == "café"  # lenient about octets above ASCII
    assert encode(LATIN1, "déjà vu ê") == "déjà vu ê".encode("latin-1")
    assert decode(LATIN1, b"\xea") == "ê"


def test_ucs2_emoji_and_damaged_data():
    assert encode(UCS2, "😀") == b"\xd8\x3d\xde\x00"
    assert decode(UCS2, b"\xd8\x3d\xde\x00\x00A") == "😀A"
    assert decode(UCS2, b"\x00A\x00") == "A\ufffd"  # odd trailing octet
    assert decode(UCS2, b"\xd8\x3d\x00A") == "\ufffdA"  # lone high surrogate
    assert decode(UCS2, b"\xde\x00") == "\ufffd"  # lone low surrogate


@pytest.mark.parametrize("coding", [2, 4, 5, 0x10, 0xF0, 0xF4, 255])
def test_binary_and_unknown_codings(coding):
    assert decode(coding, b"\x00\x01") is None
    with pytest.raises(ValueError):
        encode(coding, "a")


@pytest.mark.parametrize(
    ("coding", "value"),
    [(GSM, "ê"), (GSM, "😀"), (IA5, "é"), (LATIN1, "œ"), (UCS2, "\ud800")],
)
def test_encode_refuses_what_the_coding_cannot_hold(coding, value):
    with pytest.raises(ValueError):
        encode(coding, value)


@given(gsm_texts)
def test_gsm_round_trip(value):
    data = encode(GSM, value)
    assert decode(GSM, data) == value
    assert septets(value) == len(data) == len(value) + sum(c in ESCAPED for c in value)
    assert best_coding(value) == GSM


@given(mixed_texts)
def test_gsm_encode_none_exactly_for_foreign_characters(value):
    data = gsm_encode(value)
    if set(value) <= set(BASIC + ESCAPED):
        assert data is not None
        assert gsm_decode(data) == value
    else:
        assert data is None
        assert septets(value) is None


@given(st.text(alphabet=st.characters(max_codepoint=0x7F)))
def test_ia5_round_trip(value):
    assert decode(IA5, encode(IA5, value)) == value


@given(st.text(alphabet=st.characters(max_codepoint=0xFF)))
def test_latin1_round_trip(value):
    assert decode(LATIN1, encode(LATIN1, value)) == value


@given(st.text())
def test_ucs2_round_trip(value):
    assert decode(UCS2, encode(UCS2, value)) == value


@given(mixed_texts, st.booleans())
def test_best_coding_holds_the_text(value, latin1):
    coding = best_coding(value, latin1=latin1)
    assert coding in ((GSM, UCS2, LATIN1) if latin1 else (GSM, UCS2))
    assert decode(coding, encode(coding, value)) == value


@given(st.integers(0, 255), st.binary())
def test_decode_never_raises(coding, data):
    result = decode(coding, data)
    assert result is None or isinstance(result, str)
