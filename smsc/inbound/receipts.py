"""Delivery receipts: reading the carriers' ones, writing ours for the clients.

Reading (`parse`) is pure and never raises on what a carrier sends: a deliver_sm (or data_sm)
whose esm_class marks a receipt is read from its TLVs first (`receipted_message_id`,
`message_state`, `network_error_code`), then from the text of SMPP 3.4 appendix B in
short_message or message_payload, which fills in whatever the TLVs left out:

    id:IIIIIIIIII sub:SSS dlvrd:DDD submit date:YYMMDDhhmm done date:YYMMDDhhmm stat:DDDDDDD
    err:E text:...

The text format is "vendor specific" in the spec, and vendors took that at its word; the reader
accepts keys in any case, spaces around the colon, `submit_date` / `done_date`, missing fields,
text before `id:`, 12-digit dates, err in decimal or hex, UCS-2 text, a UDH, commas between
fields. Everything after `text:` is the original message's text (user content), so no key is
read from it: a message saying "id:1 stat:DELIVRD" cannot forge a receipt.

Decisions:
- Receipt types (esm_class bits 2-5): 0x04 (SMSC delivery receipt) and 0x20 (intermediate
  delivery notification, the same content with a non-final state) are receipts. 0x08 (SME
  delivery acknowledgement) and 0x10 (manual/user acknowledgement) are not: they come from
  the recipient's application, only when the sender asked for them (we never do), and carry
  no receipt format. `parse` returns None for them; the MO path should answer and drop them
  (see `is_acknowledgement`), never treat them as subscriber text.
- When a TLV and the text disagree, the TLV wins (as vumi and Jasmin concluded after treating
  the text as authoritative overwrote good TLV ids): it is typed, and the text is free-form.
  The text's id is kept in `Receipt.alt_id` when it differs, since some carriers put one
  base in the TLV and the other in the text. For the error, a non-zero network_error_code
  wins; a zero one (filler, often `03 00 00`) does not hide a non-zero `err:` in the text.
- ACCEPTD / message_state 6 maps to ENROUTE, not to a final state. SMPP 3.4 defines ACCEPTED
  as final ("read on behalf of the subscriber by customer service"), but carriers send it as
  "taken by the next hop", and a real final receipt follows (Kannel too files it with the
  buffered, intermediate reports). Closing the message on it would drop the real outcome.
  ENROUTE, ACKED, BUFFRED, SCHEDULED (5.0) are intermediate too; FAILED (mblox, others) is
  UNDELIVERABLE; any other stat word is UNKNOWN. No stat and no message_state: state None.

Matching carriers' ids (`normalise`, `candidates`): carriers answer submit_sm with an id in
one form and send receipts with it in another: hex in the submit_sm_resp and decimal in the
receipt (Vonage documents it; Jasmin's "Got a DLR for an unknown message id" threads show
39f99dd5 / 0972660181, 10C8F40D / 281605133, 812FC7470000001B / 9308878062554710043), or the
reverse, with leading zeros added or dropped (00B8BE19 / B8BE19) and case changed
(0e999f21-81ef-... / E999F21-81EF-...). We store `normalise(id)` from the submit_sm_resp and
look a receipt up under each of `candidates(receipt_id)`.

Writing (`format_text`, `receipt_tlvs`): our receipts to clients carry our message id in the
appendix B text and in the TLVs, so clients reading either find it.
"""

import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..protocol.constants import ESM_RECEIPT, ESM_UDHI, Command, MessageState, Tag
from ..protocol.pdu import Pdu
from ..protocol.smpptime import format_date
from ..store.messages import SMPP_STATE, State

# --- esm_class -------------------------------------------------------------------------------

ESM_TYPE_MASK = 0x3C  # esm_class bits 2-5: the message type (spec 5.2.12)
ESM_SME_ACK = 0x08  # SME delivery acknowledgement
ESM_USER_ACK = 0x10  # SME manual/user acknowledgement
ESM_INTERMEDIATE = 0x20  # intermediate delivery notification
RECEIPT_TYPES = frozenset({ESM_RECEIPT, ESM_INTERMEDIATE})
ACK_TYPES = frozenset({ESM_SME_ACK, ESM_USER_ACK})
_CARRIERS_COMMANDS = frozenset({Command.deliver_sm, Command.data_sm})

# --- states ----------------------------------------------------------------------------------

# message_state TLV values (SMPP 3.4 5.2.28; 0 and 9 are SMPP 5.0's SCHEDULED and SKIPPED).
MESSAGE_STATES: dict[int, State] = {
    0: State.ENROUTE,
    MessageState.ENROUTE: State.ENROUTE,
    MessageState.DELIVERED: State.DELIVERED,
    MessageState.EXPIRED: State.EXPIRED,
    MessageState.DELETED: State.DELETED,
    MessageState.UNDELIVERABLE: State.UNDELIVERABLE,
    MessageState.ACCEPTED: State.ENROUTE,  # see the module docstring
    MessageState.UNKNOWN: State.UNKNOWN,
    MessageState.REJECTED: State.REJECTED,
    9: State.UNDELIVERABLE,
}

# stat words of receipt texts (appendix B table B-2, plus what carriers send besides). Any
# other word reads as UNKNOWN.
STAT_STATES: dict[str, State] = {
    "DELIVRD": State.DELIVERED,
    "EXPIRED": State.EXPIRED,
    "DELETED": State.DELETED,
    "UNDELIV": State.UNDELIVERABLE,
    "ACCEPTD": State.ENROUTE,
    "UNKNOWN": State.UNKNOWN,
    "REJECTD": State.REJECTED,
    "ENROUTE": State.ENROUTE,
    "ACKED": State.ENROUTE,
    "BUFFRED": State.ENROUTE,
    "SCHEDULED": State.ENROUTE,
    # The message_state names spelt out, and FAILED (mblox and others).
    "DELIVERED": State.DELIVERED,
    "UNDELIVERABLE": State.UNDELIVERABLE,
    "ACCEPTED": State.ENROUTE,
    "REJECTED": State.REJECTED,
    "BUFFERED": State.ENROUTE,
    "FAILED": State.UNDELIVERABLE,
}

# The stat word we write for each of our states. Everything short of final is ENROUTE, as in
# query_sm_resp (messages.SMPP_STATE): our ACCEPTED means "in our queue", not SMPP's ACCEPTD.
STAT_WORDS: dict[State, str] = {
    State.ACCEPTED: "ENROUTE",
    State.SENDING: "ENROUTE",
    State.ENROUTE: "ENROUTE",
    State.DELIVERED: "DELIVRD",
    State.EXPIRED: "EXPIRED",
    State.DELETED: "DELETED",
    State.UNDELIVERABLE: "UNDELIV",
    State.REJECTED: "REJECTD",
    State.UNKNOWN: "UNKNOWN",
}

# network_error_code network types (SMPP 5.0 4.8.4.42); 8 = "Message Center specific", what
# a carrier's receipt err or an SMPP status relayed by us is.
NETWORK_GSM = 3
NETWORK_SMPP = 7
NETWORK_SMSC = 8

MAX_ERROR = 0x7FFFFFFF  # errors are stored in a signed 32-bit column: larger ones are clamped

# --- the receipt -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Receipt:
    """What a carrier's receipt says. `carrier_id` is the id as the carrier wrote it (stripped
    of blanks, case kept, for logs); look it up with `candidates(carrier_id)`."""

    carrier_id: str
    state: State | None  # None: the receipt gave no state at all
    error: int  # 0 when none was given or it could not be read
    submit_date: str = ""  # as written: YYMMDDhhmm, sometimes YYMMDDhhmmss (see parse_date)
    done_date: str = ""
    text: str = ""  # the text: field (the start of the original message), "" if absent
    stat: str = ""  # the stat word as written, upper-cased; "" if the text had none
    submitted: int | None = None  # sub:
    delivered: int | None = None  # dlvrd:
    alt_id: str = ""  # the text's id, when a TLV gave carrier_id and the text's id differs
    intermediate: bool = False  # esm_class said "intermediate delivery notification"


def message_type(pdu: Pdu) -> int:
    """esm_class bits 2-5 of a deliver_sm / data_sm; -1 for other commands."""
    if pdu.command not in _CARRIERS_COMMANDS:
        return -1
    esm = pdu.params.get("esm_class", 0) if isinstance(pdu.params, dict) else 0
    return esm & ESM_TYPE_MASK if isinstance(esm, int) else 0


def is_receipt(pdu: Pdu) -> bool:
    """Whether the PDU is a receipt by its esm_class (whether or not `parse` can read it):
    a receipt that `parse` returns None for is an unreadable one, to count and log."""
    return message_type(pdu) in RECEIPT_TYPES


def is_acknowledgement(pdu: Pdu) -> bool:
    """An SME delivery or user acknowledgement: neither a receipt nor subscriber text."""
    return message_type(pdu) in ACK_TYPES


def parse(pdu: Pdu) -> Receipt | None:
    """Read a carrier's receipt; None if `pdu` is not one, or no message id can be found."""
    kind = message_type(pdu)
    if kind not in RECEIPT_TYPES:
        return None
    tlvs = pdu.tlvs if isinstance(pdu.tlvs, dict) else {}
    fields = _fields(_text_of(pdu, tlvs))
    text_id = fields.get("id", "")

    tlv_id = _id_of(tlvs.get(Tag.receipted_message_id))
    carrier_id = tlv_id or text_id
    if not carrier_id:
        return None
    alt_id = text_id if tlv_id and text_id and normalise(text_id) != normalise(tlv_id) else ""

    stat = fields.get("stat", "").upper()
    state = _tlv_state(tlvs.get(Tag.message_state))
    if state is None and stat:
        state = STAT_STATES.get(stat, State.UNKNOWN)
    if state is None and Tag.message_state in tlvs:
        state = State.UNKNOWN  # a message_state we do not know, and no text to say more

    error = _network_error(tlvs.get(Tag.network_error_code))
    if not error:
        error = _error(fields.get("err", ""))

    return Receipt(
        carrier_id=carrier_id,
        state=state,
        error=error,
        submit_date=fields.get("submitdate", ""),
        done_date=fields.get("donedate", ""),
        text=fields.get("text", ""),
        stat=stat,
        submitted=_count(fields.get("sub", "")),
        delivered=_count(fields.get("dlvrd", "")),
        alt_id=alt_id,
        intermediate=kind == ESM_INTERMEDIATE,
    )


# --- reading the text --------------------------------------------------------------------------

_SCAN_LIMIT = 4096  # receipts are short; a huge message_payload is not read past this
# Control octets become spaces: NUL padding, a GSM `_` (0x11) in "submit_date", CR/LF.
_BLANK_CONTROLS = bytes.maketrans(bytes((*range(0x20), 0x7F)), b" " * 0x21)
# Keys are found in a lower-cased copy (bytes.lower() touches A-Z only). Bytes, not str: the
# same pattern runs faster, and no Unicode case folding ("ſub" is not "sub"). The group takes
# the whole key with its colon, so that split() gives the lengths to slice the original by.
_KEY = re.compile(
    rb"(\b(?:id|msg_?id|message_?id|sub|dlvrd|submit[ _]*date|done[ _]*date|stat(?:e|us)?"
    rb"|err(?:or)?|text) *:)"
)
_KEYS = {
    b"id": "id",
    b"msgid": "id",
    b"messageid": "id",
    b"sub": "sub",
    b"dlvrd": "dlvrd",
    b"submitdate": "submitdate",
    b"donedate": "donedate",
    b"stat": "stat",
    b"state": "stat",
    b"status": "stat",
    b"err": "err",
    b"error": "err",
    b"text": "text",
}
# The usual spellings, colon included, found without rewriting them.
_SPELT = {k + b":": v for k, v in _KEYS.items()}
_SPELT.update({b"submit date:": "submitdate", b"done date:": "donedate"})
_HEX = re.compile(r"[0-9a-fA-F]+")
_BLANKS = " \t\r\n\x0b\x0c\x00"


def _text_of(pdu: Pdu, tlvs: dict) -> bytes:
    """The receipt text of short_message (or message_payload), as Latin-1 octets, control
    octets blanked."""
    params = pdu.params if isinstance(pdu.params, dict) else {}
    raw: Any = params.get("short_message", b"")
    if not raw:
        raw = tlvs.get(Tag.message_payload, b"")
    if isinstance(raw, str):
        raw = raw[:_SCAN_LIMIT].encode("latin-1", "replace")
    elif isinstance(raw, bytes | bytearray | memoryview):
        raw = bytes(raw[: _SCAN_LIMIT * 2])
        esm = params.get("esm_class", 0)
        if isinstance(esm, int) and esm & ESM_UDHI and raw:
            raw = raw[1 + raw[0] :]  # skip the user data header
        # UCS-2 when data_coding says so, or when the text starts with a NUL octet: a
        # receipt never starts with a GSM `@`, but "id:" in UCS-2 does start with 00.
        if params.get("data_coding") == 8 or raw[:1] == b"\x00":
            text = raw.decode("utf-16-be", "replace")
            raw = text[:_SCAN_LIMIT].encode("latin-1", "replace")
    else:
        return b""
    return raw[:_SCAN_LIMIT].translate(_BLANK_CONTROLS)


# The text exactly as appendix B lays it out (what most carriers send): read in one match.
# Anything else (other spellings, cases, orders, separators) takes the general way below.
_LAID_OUT = re.compile(
    rb"id:([^\s,;:]*) sub:([^\s,;:]*) dlvrd:([^\s,;:]*) submit date:([^\s,;:]*)"
    rb" done date:([^\s,;:]*) stat:([^\s,;:]*) err:([^\s,;:]*)(?: +text:(.*))? *",
    re.DOTALL,
)
_LAID_OUT_KEYS = ("id", "sub", "dlvrd", "submitdate", "donedate", "stat", "err")


def _fields(raw: bytes) -> dict[str, str]:
    """key -> value of the appendix B text. The first occurrence of a key wins; `text:` runs
    to the end and ends the reading (what follows is the original message's words)."""
    laid_out = _LAID_OUT.fullmatch(raw)
    if laid_out is not None:
        *values, text = laid_out.groups()
        fields = {k: v.decode("latin-1") for k, v in zip(_LAID_OUT_KEYS, values, strict=True)}
        if text is not None:
            fields["text"] = text.decode("latin-1").strip()
        return fields
    return _scan(raw)


def _scan(raw: bytes) -> dict[str, str]:
    """`_fields` the general way: the keys found wherever they are, in any spelling."""
    fields: dict[str, str] = {}
    if b":" not in raw:
        return fields
    parts = _KEY.split(raw.lower())  # [before, key:, value, key:, value, ...]
    pos = len(parts[0])
    for i in range(1, len(parts), 2):
        spelt = parts[i]
        pos += len(spelt)
        key = _SPELT.get(spelt) or _KEYS[spelt.replace(b" ", b"").replace(b"_", b"")[:-1]]
        if key == "text":
            fields["text"] = raw[pos:].decode("latin-1").strip()
            break
        size = len(parts[i + 1])
        if key not in fields:
            words = raw[pos : pos + size].split(None, 1)
            value = words[0] if words else b""
            if b"," in value or b";" in value:
                value = value.replace(b";", b",").split(b",", 1)[0]
            fields[key] = value.decode("latin-1")
        pos += size
    return fields


def _id_of(value: Any) -> str:
    if isinstance(value, bytes | bytearray):
        value = bytes(value).decode("latin-1")
    if not isinstance(value, str):
        return ""
    return value.strip(_BLANKS)


def _tlv_state(value: Any) -> State | None:
    if isinstance(value, bytes | bytearray) and len(value) == 1:
        value = value[0]
    if isinstance(value, int):
        return MESSAGE_STATES.get(value)
    return None


def _network_error(value: Any) -> int:
    """The error code of a network_error_code TLV (type octet, then a 2-octet code)."""
    if isinstance(value, bytes | bytearray) and len(value) == 3:
        return value[1] << 8 | value[2]
    return 0


def _error(token: str) -> int:
    """err:E in decimal ("075", "0000"), or hex ("0x1B", "00B", "1f"); 0 if unreadable."""
    value = token.strip().lower()
    if value.startswith("0x"):
        value = value[2:]
        base = 16
    elif value.isascii() and value.isdigit():
        base = 10
    else:
        base = 16
    if not value or len(value) > 16 or not _HEX.fullmatch(value):
        return 0
    return min(int(value, base), MAX_ERROR)


def _count(token: str) -> int | None:
    if token and len(token) <= 9 and token.isascii() and token.isdigit():
        return int(token)
    return None


def parse_date(value: str) -> float | None:
    """UTC epoch of a receipt date (YYMMDDhhmm or YYMMDDhhmmss, 2000-2099); None when it is
    not one (empty, 0000000000, any other shape). Receipt dates carry no time zone: we read
    them as UTC, as we write ours."""
    if len(value) not in (10, 12) or not (value.isascii() and value.isdigit()):
        return None
    second = int(value[10:12]) if len(value) == 12 else 0
    try:
        moment = datetime(
            2000 + int(value[0:2]),
            int(value[2:4]),
            int(value[4:6]),
            int(value[6:8]),
            int(value[8:10]),
            second,
            tzinfo=UTC,
        )
    except ValueError:
        return None
    return moment.timestamp()


# --- matching carriers' ids --------------------------------------------------------------------

_MAX_ID = 64  # message_id is a C-Octet String of 65: longer is not an id we sent
_HEX_DIGITS = frozenset("0123456789abcdef")


def normalise(carrier_id: str) -> str:
    """The form we store a carrier's message id in (from its submit_sm_resp): surrounding
    blanks and NULs stripped, lower case, leading zeros stripped but a lone "0" kept."""
    value = carrier_id.strip(_BLANKS).lower()
    stripped = value.lstrip("0")
    if stripped or not value:
        return stripped
    return "0"


def candidates(receipt_id: str) -> tuple[str, ...]:
    """The normalised forms under which the id of a receipt may have been stored, most likely
    first: the id itself; if it is all decimal digits, its hex form (the carrier answered in
    hex and writes receipts in decimal); if it is valid hex, its decimal form (the reverse).

    The forms are ambiguous: "10" may be the exact id, or ten written in decimal (stored "a"),
    or sixteen written in hex (stored "16"), and these can be three different messages of
    ours. The caller resolves it by trying the candidates in order, within the ids we sent to
    that carrier only (and the most recent first), and taking the first that matches: an
    exact match always beats a converted one, and a converted form matches only if we really
    hold that id for that carrier. With a carrier's ids being unique and from one counter, a
    false match needs both forms live at once; a caller that wants to be stricter can
    remember, per carrier, which form matched last and try that one first."""
    exact = normalise(receipt_id)
    if not exact:
        return ()
    forms = [exact]
    if len(exact) <= _MAX_ID:
        if exact.isascii() and exact.isdigit():
            forms.append(format(int(exact), "x"))
        if _HEX_DIGITS.issuperset(exact):
            forms.append(str(int(exact, 16)))
    return tuple(dict.fromkeys(forms))


# --- our receipts to clients -------------------------------------------------------------------

TEXT_LENGTH = 20  # appendix B: the first 20 characters of the original message
# Printable ASCII that GSM 03.38 draws differently at the same code ($ @ [ \ ] ^ _ ` { | } ~):
# left out, so the text reads the same as GSM 03.38 (data_coding 0), IA5 and Latin-1.
_GSM_UNSAFE = frozenset("$@[\\]^_`{|}~")
_ASCII_SPELLING = {
    "’": "'",
    "‘": "'",
    "«": '"',
    "»": '"',
    "“": '"',
    "”": '"',
    "œ": "oe",
    "Œ": "OE",
    "æ": "ae",
    "Æ": "AE",
    "ß": "ss",
    "ø": "o",
    "Ø": "O",
    "€": "EUR",
    "…": "...",
    "\n": " ",
    "\r": " ",
    "\t": " ",
}


def receipt_text(text: str) -> str:
    """The text: field of our receipts: the message's first 20 characters once made plain
    ASCII (accents dropped, é -> e, œ -> oe), non-printable characters and characters GSM 03.38
    does not share with ASCII left out."""
    out: list[str] = []
    count = 0
    for char in text[: TEXT_LENGTH * 8]:
        spelt = _ASCII_SPELLING.get(char)
        if spelt is None:
            spelt = unicodedata.normalize("NFKD", char) if char > "~" else char
        for c in spelt:
            if " " <= c <= "~" and c not in _GSM_UNSAFE:
                out.append(c)
                count += 1
                if count == TEXT_LENGTH:
                    return "".join(out)
    return "".join(out)


def format_text(
    message_id: str,
    state: State,
    submitted_at: float,
    done_at: float,
    error: int,
    text: str,
    parts: int = 1,
    delivered: int | None = None,
) -> bytes:
    """The appendix B text of our receipt for a client, as ASCII bytes.

    `sub` is the number of parts of the message; `dlvrd` the number delivered, by default all
    of them when the message is DELIVERED and none otherwise (we send one receipt for the whole
    message, so a partial count is only known to a caller that passes it). Dates are UTC,
    `err` three digits at least (0 for none), `text` from `receipt_text`."""
    if delivered is None:
        delivered = parts if state == State.DELIVERED else 0
    return (
        f"id:{message_id} sub:{max(parts, 0):03d} dlvrd:{max(delivered, 0):03d}"
        f" submit date:{format_date(submitted_at)} done date:{format_date(done_at)}"
        f" stat:{STAT_WORDS[state]} err:{min(max(error, 0), MAX_ERROR):03d}"
        f" text:{receipt_text(text)}"
    ).encode("ascii")


def receipt_tlvs(
    message_id: str, state: State, error: int, network_type: int = NETWORK_SMSC
) -> dict[int, Any]:
    """The TLVs of our receipt for a client: receipted_message_id, message_state, and
    network_error_code (network type, 2-octet code, clamped to 65535) when there is an error.
    Pass NETWORK_SMPP when the error is an SMPP command_status a carrier answered."""
    tlvs: dict[int, Any] = {
        Tag.receipted_message_id: message_id,
        Tag.message_state: int(SMPP_STATE[state]),
    }
    if error > 0:
        code = min(max(error, 0), 0xFFFF)
        tlvs[Tag.network_error_code] = bytes((network_type & 0xFF, code >> 8, code & 0xFF))
    return tlvs
