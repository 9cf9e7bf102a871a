"""Long messages: splitting a text into concatenated parts, reading the parts back.

A long message travels as parts, each a short_message of its own: either with a user data
header (esm_class 0x40, 3GPP TS 23.040 9.2.3.24.1 / .8) or with the sar_* TLVs. A third way,
one long message_payload TLV with sm_length 0, needs no reassembly; the caller reads it as
one message and never comes here.

Sizes per part, from 140 octets of user data: 160 septets / 140 octets / 70 UCS-2 units for
a single message; 153 / 134 / 67 with the 6-octet UDH of an 8-bit reference, 152 / 133 / 66
with the 7-octet UDH of a 16-bit reference (a septet UDH is padded to a septet boundary).
"""

from collections.abc import Hashable
from itertools import pairwise
from typing import Any

from smsc.protocol import text as _text
from smsc.protocol.constants import ESM_UDHI, Tag

IEI_CONCAT_8 = 0x00
IEI_CONCAT_16 = 0x08
MAX_PARTS = 255  # the one-octet "total" of both headers

# data_coding -> (single limit, part limit with 8-bit ref, part limit with 16-bit ref), in
# octets of the SMPP short_message. IA5 counts as septets like GSM: SMSCs send it in the
# 7-bit alphabet (Jasmin and Kannel do the same); Latin-1, binary and the rest as octets.
_SEPTETS = (160, 153, 152)
_OCTETS = (140, 134, 133)
_UCS2 = (140, 134, 132)
_LIMITS = {_text.GSM: _SEPTETS, _text.IA5: _SEPTETS, _text.UCS2: _UCS2}


def split(text: str, data_coding: int, udh16: bool = False) -> list[bytes]:
    """Payloads (without UDH) of the parts of `text` encoded in `data_coding`.

    ValueError if the coding cannot hold the text or it needs more than 255 parts.
    """
    return split_bytes(_text.encode(data_coding, text), data_coding, udh16)


def split_bytes(data: bytes, data_coding: int, udh16: bool = False) -> list[bytes]:
    """Payloads of the parts of an encoded short message; never cuts a GSM escape sequence
    or a UTF-16 surrogate pair. ValueError if it needs more than 255 parts."""
    cuts = _cuts(data, data_coding, udh16)
    return [data[a:b] for a, b in pairwise(cuts)]


def parts_count(text: str, data_coding: int, udh16: bool = False) -> int:
    """How many parts `text` takes, without building them. ValueError as `split`."""
    return len(_cuts(_text.encode(data_coding, text), data_coding, udh16)) - 1


def count(data: bytes, data_coding: int, esm_class: int = 0) -> int:
    """How many parts an encoded message is sent as (what it costs): one when its client
    sent it as a part of its own (UDH). ValueError as `split`."""
    if esm_class & ESM_UDHI:
        return 1
    return len(_cuts(data, data_coding, False)) - 1


def _cuts(data: bytes, data_coding: int, udh16: bool) -> list[int]:
    """Offsets where parts start, then len(data)."""
    single, part8, part16 = _LIMITS.get(data_coding, _OCTETS)
    size = len(data)
    if size <= single:
        return [0, size]
    step = part16 if udh16 else part8
    cuts = [0]
    start = 0
    while size - start > step:
        end = start + step
        if data_coding == _text.GSM:
            # A part starts on a character, so a run of ESCs before the cut pairs up from
            # `start`: an odd run ends with an escape that belongs with the next septet.
            run = end
            while run > start and data[run - 1] == 0x1B:
                run -= 1
            if (end - run) % 2:
                end -= 1
        elif data_coding == _text.UCS2 and 0xD8 <= data[end - 2] <= 0xDB:
            end -= 2  # a high surrogate goes with its low one into the next part
        cuts.append(end)
        start = end
    cuts.append(size)
    if len(cuts) - 1 > MAX_PARTS:
        raise ValueError(f"message needs {len(cuts) - 1} parts, at most {MAX_PARTS} fit")
    return cuts


def udh(ref: int, total: int, seq: int, ref16: bool = False) -> bytes:
    """The UDH of part `seq` of `total`: `05 00 03 ref total seq` or `06 08 04 ref16 total seq`."""
    if not (1 <= seq <= total <= MAX_PARTS and 0 <= ref <= (0xFFFF if ref16 else 0xFF)):
        raise ValueError(f"bad concatenation header ref={ref} total={total} seq={seq}")
    if ref16:
        return bytes((6, IEI_CONCAT_16, 4, ref >> 8, ref & 0xFF, total, seq))
    return bytes((5, IEI_CONCAT_8, 3, ref, total, seq))


def parse_udh(short_message: bytes) -> tuple[dict[int, bytes], bytes] | None:
    """Information elements by IEI and the payload after the UDH; None if malformed.

    A repeated IEI keeps its last occurrence, as 23.040 asks. Never raises.
    """
    if not short_message:
        return None
    end = 1 + short_message[0]
    if end > len(short_message):
        return None
    elements: dict[int, bytes] = {}
    pos = 1
    while pos < end:
        if pos + 2 > end:
            return None
        iei, length = short_message[pos], short_message[pos + 1]
        pos += 2
        if pos + length > end:
            return None
        elements[iei] = bytes(short_message[pos : pos + length])
        pos += length
    return elements, bytes(short_message[end:])


def concat_info(
    esm_class: int, short_message: bytes, tlvs: dict[int, Any]
) -> tuple[int, int, int, bytes] | None:
    """(ref, total, seq, payload) of one part of a long message; None for a single message.

    From the UDH when esm_class has UDHI (the payload is then what follows the UDH), else
    from the sar_* TLVs (typed ints, or raw big-endian octets). A malformed UDH or an impossible
    total/seq is None too: the caller then handles the PDU as one message. Never raises.
    """
    payload = short_message
    if esm_class & ESM_UDHI:
        parsed = parse_udh(short_message)
        if parsed is None:
            return None
        elements, payload = parsed
        ie = elements.get(IEI_CONCAT_8)
        if ie is not None and len(ie) == 3:
            return _checked(ie[0], ie[1], ie[2], payload)
        ie = elements.get(IEI_CONCAT_16)
        if ie is not None and len(ie) == 4:
            return _checked((ie[0] << 8) | ie[1], ie[2], ie[3], payload)
    ref = _as_int(tlvs.get(Tag.sar_msg_ref_num))
    total = _as_int(tlvs.get(Tag.sar_total_segments))
    seq = _as_int(tlvs.get(Tag.sar_segment_seqnum))
    if ref is None or total is None or seq is None:
        return None
    return _checked(ref, total, seq, payload)


def _as_int(value: object) -> int | None:
    if isinstance(value, int):
        return value
    if isinstance(value, bytes | bytearray) and value:
        return int.from_bytes(value, "big")
    return None


def _checked(ref: int, total: int, seq: int, payload: bytes) -> tuple[int, int, int, bytes] | None:
    if 1 <= seq <= total <= MAX_PARTS and 0 <= ref <= 0xFFFF:
        return ref, total, seq, payload
    return None


class Reassembler:
    """Collects the parts of long messages until each set is complete.

    A set is identified by the caller's `key` (say source, destination and account), the
    reference and the total: parts reusing a reference with another total don't mix. The
    timeout counts from a set's first part; `now` must come from one clock that doesn't go
    back (`expire` stops at the first set still young, in order of arrival).

    Memory is bounded: at most `max_pending` sets wait at once. A part that would open one
    more set evicts the oldest pending set, whose parts are lost; `evicted` counts them. A set
    holds at most 255 parts of at most 140 octets each.
    """

    def __init__(self, timeout: float, max_pending: int = 10_000) -> None:
        if max_pending < 1:
            raise ValueError("max_pending must be at least 1")
        self.timeout = timeout
        self.max_pending = max_pending
        self.evicted = 0
        # (key, ref, total) -> (time of the first part, {seq: payload}); dicts keep the
        # order of insertion, so the oldest sets come first.
        self._pending: dict[tuple[Hashable, int, int], tuple[float, dict[int, bytes]]] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def add(
        self, key: Hashable, ref: int, total: int, seq: int, payload: bytes, now: float
    ) -> list[bytes] | None:
        """The payloads in order once the set of this part is complete, else None.

        A repeated part is ignored (its first copy is kept); a seq outside 1..total is ignored.
        """
        if not 1 <= seq <= total:
            return None
        if total == 1:
            return [payload]
        set_id = (key, ref, total)
        entry = self._pending.get(set_id)
        if entry is None:
            if len(self._pending) >= self.max_pending:
                del self._pending[next(iter(self._pending))]
                self.evicted += 1
            entry = self._pending[set_id] = (now, {})
        parts = entry[1]
        parts.setdefault(seq, payload)
        if len(parts) < total:
            return None
        del self._pending[set_id]
        return [parts[i] for i in range(1, total + 1)]

    def expire(self, now: float) -> list[tuple[Hashable, int, int]]:
        """Drops the sets whose first part is older than the timeout; returns their
        (key, ref, total)."""
        expired = []
        for set_id, (first, _) in self._pending.items():
            if now - first < self.timeout:
                break
            expired.append(set_id)
        for set_id in expired:
            del self._pending[set_id]
        return expired
