"""SMS text codecs for SMPP data_coding values: GSM 03.38, IA5, Latin-1 and UCS-2.

GSM 03.38 (3GPP TS 23.038) is carried unpacked, one septet per octet, as SMPP does for
data_coding 0. Its `@` is 0x00, so a text is never NUL-terminated. Characters of the
basic character set extension cost two septets: ESC (0x1B) and their code.
"""

import codecs

GSM = 0
IA5 = 1
BINARY = 2
LATIN1 = 3
BINARY_4 = 4
UCS2 = 8

# The basic character set, indexed by septet. 0x1B is the escape, never a character;
# 0x09 is Ç as 3GPP draws it (some tables name it ç, but handsets show Ç).
_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
_ESC = 0x1B
# The basic character set extension: septet after ESC -> character.
_EXTENSION = {
    0x0A: "\f",
    0x14: "^",
    0x28: "{",
    0x29: "}",
    0x2F: "\\",
    0x3C: "[",
    0x3D: "~",
    0x3E: "]",
    0x40: "|",
    0x65: "€",
}

# Encoding: character -> septet(s), for codecs.charmap_encode, which fails on the first
# character the map lacks.
_ENCODE: dict[int, bytes] = {ord(c): bytes((i,)) for i, c in enumerate(_BASIC) if i != _ESC}
_ENCODE.update((ord(c), bytes((_ESC, i))) for i, c in _EXTENSION.items())
# Fast path, ~5x quicker, for the usual text: Latin-1 characters of one septet each (ASCII,
# French accents) go through bytes.translate; a Latin-1 text with another character that is
# not an extension one (such as ê) is rejected at once.
_ONE_SEPTET = bytes(i for i in range(256) if len(_ENCODE.get(i, b"")) == 1)
_LATIN1_TO_SEPTET = bytes(_ENCODE[i][0] if i in _ONE_SEPTET else 0 for i in range(256))
_ESCAPED_LATIN1 = "".join(c for c in _EXTENSION.values() if c != "€").encode("latin-1")

# Decoding: a charmap pass (C speed) reads each octet as its basic-table character, ESC
# kept as is and 0x80-0xFF as U+FFFD; then the character after each ESC is swapped for its
# extension. 23.038: a code the extension lacks shows its basic-table character, and ESC ESC
# (reserved for another extension table) shows a space.
_DECODE_TABLE = _BASIC + "\ufffd" * 128
_UNESCAPE = {_BASIC[i]: c for i, c in _EXTENSION.items()}


def gsm_encode(text: str) -> bytes | None:
    """Unpacked GSM 03.38 septets of `text`, or None if a character is not in the alphabet."""
    try:
        raw = text.encode("latin-1")
    except UnicodeEncodeError:
        pass
    else:
        rest = raw.translate(None, _ONE_SEPTET)
        if not rest:
            return raw.translate(_LATIN1_TO_SEPTET)
        if rest.translate(None, _ESCAPED_LATIN1):
            return None  # a Latin-1 character outside the alphabet, such as ê
    try:
        return codecs.charmap_encode(text, "strict", _ENCODE)[0]
    except UnicodeEncodeError:
        return None


def gsm_decode(data: bytes) -> str:
    """Text of unpacked GSM 03.38 septets; never raises (octets >= 0x80 become U+FFFD)."""
    text = codecs.charmap_decode(data, "strict", _DECODE_TABLE)[0]
    if "\x1b" not in text:
        return text
    pieces = text.split("\x1b")
    out = [pieces[0]]
    i, last = 1, len(pieces) - 1
    while i <= last:
        piece = pieces[i]
        if piece:
            out.append(_UNESCAPE.get(piece[0], piece[0]))
            out.append(piece[1:])
        else:
            # ESC followed by ESC (which it consumes) or by nothing: a space.
            out.append(" ")
            if i < last:
                i += 1
                out.append(pieces[i])
        i += 1
    return "".join(out)


def septets(text: str) -> int | None:
    """Septets `text` takes in GSM 03.38 (extension characters count 2), None if it can't."""
    data = gsm_encode(text)
    return None if data is None else len(data)


def decode(data_coding: int, data: bytes) -> str | None:
    """Text of a short message; None for binary and unknown codings. Never raises."""
    if data_coding == GSM:
        return gsm_decode(data)
    if data_coding in (IA5, LATIN1):
        # IA5 is 7-bit ASCII; octets above it are read as Latin-1 rather than rejected.
        return data.decode("latin-1")
    if data_coding == UCS2:
        # UTF-16BE, a superset of UCS-2 that carries emoji as surrogate pairs; an odd
        # trailing octet or a lone surrogate becomes U+FFFD.
        return data.decode("utf-16-be", "replace")
    return None


def encode(data_coding: int, text: str) -> bytes:
    """Octets of `text` in a text coding; ValueError if it cannot hold the text."""
    if data_coding == GSM:
        data = gsm_encode(text)
        if data is None:
            raise ValueError("text has characters outside GSM 03.38")
        return data
    if data_coding == IA5:
        return text.encode("ascii")
    if data_coding == LATIN1:
        return text.encode("latin-1")
    if data_coding == UCS2:
        return text.encode("utf-16-be")
    raise ValueError(f"data_coding {data_coding} is not a text coding")


def best_coding(text: str, latin1: bool = False) -> int:
    """The smallest coding that holds `text`: GSM, else Latin-1 when allowed, else UCS-2.

    Latin-1 is opt-in: it is no handset alphabet, so it only suits a carrier that converts it.
    """
    if gsm_encode(text) is not None:
        return GSM
    if latin1:
        try:
            text.encode("latin-1")
        except UnicodeEncodeError:
            return UCS2
        return LATIN1
    return UCS2
