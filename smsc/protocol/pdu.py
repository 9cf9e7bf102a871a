"""The PDU codec: bytes ⇄ Pdu for every SMPP 3.4 operation.

Each command's body is described once, as a list of fields (`_BODIES`), and compiled into
small reader and writer functions built on `struct`. Decoding never raises: a PDU that lies
about its length, overruns a field or carries a broken TLV decodes to a `PduError` value
naming the status the peer should get back.
"""

import struct
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from .constants import Command, Status, Tag

HEADER = struct.Struct(">IIII")
HEADER_SIZE = 16
_TLV_HEAD = struct.Struct(">HH")


@dataclass(slots=True)
class Pdu:
    """One PDU. `params` holds the mandatory fields by their spec names (a missing one encodes
    as its zero value); `tlvs` the optional ones, keyed by `Tag` with typed values, or by the
    bare tag number with raw bytes for tags this codec does not know (passed on untouched)."""

    command: Command
    sequence: int = 0
    status: int = 0
    params: dict[str, Any] = field(default_factory=dict)
    tlvs: dict[int, Any] = field(default_factory=dict)

    def get(self, name: str, default: Any = None) -> Any:
        return self.params.get(name, default)


class SmeDest(NamedTuple):
    """A submit_multi destination that is an SME address (dest_flag 1)."""

    ton: int
    npi: int
    address: str


class DistList(NamedTuple):
    """A submit_multi destination that is a distribution list name (dest_flag 2)."""

    name: str


class Unsuccess(NamedTuple):
    """A submit_multi_resp entry: a destination that was refused, with its status."""

    ton: int
    npi: int
    address: str
    status: int


@dataclass(frozen=True, slots=True)
class PduError:
    """A PDU that could not be decoded. `generic` says the answer is a generic_nack (unknown
    command_id or inconsistent length, spec 4.3.1) rather than the command's own response."""

    command_id: int
    sequence: int
    status: Status
    reason: str

    @property
    def generic(self) -> bool:
        return self.status in (Status.RINVCMDID, Status.RINVCMDLEN)


class _Invalid(Exception):
    """Raised inside the codec only; decode() turns it into a PduError."""

    def __init__(self, status: Status, reason: str):
        self.status = status
        self.reason = reason


# ---------------------------------------------------------------------------------------------
# Field readers and writers. A reader is `(body, pos, end, params) -> pos`; a writer is
# `(params, out: list[bytes]) -> None`.


def _read_cstring(name: str, size: int, status: Status):
    """A reader of a C-Octet String of at most `size` octets including its NUL."""

    def read(body, pos, end, params):
        nul = body.find(b"\0", pos, min(pos + size, end))
        if nul < 0:
            raise _Invalid(status, f"{name} is not NUL-terminated within {size} octets")
        params[name] = body[pos:nul].decode("latin-1")
        return nul + 1

    return read


# sm_length followed by that many octets of short_message (read and written by generated code).
_SHORT_MESSAGE = object()

_read_addr = _read_cstring("destination_addr", 21, Status.RINVDSTADR)
_read_dl_name = _read_cstring("dl_name", 21, Status.RINVDLNAME)


def _dest_address():
    """submit_multi: number_of_dests, then each dest_flag with an SME address or a list name."""

    def read(body, pos, end, params):
        if pos >= end:
            raise _Invalid(Status.RINVNUMDESTS, "body ends before number_of_dests")
        count = body[pos]
        pos += 1
        dests = []
        scratch: dict[str, Any] = {}
        for _ in range(count):
            if pos + 1 > end:
                raise _Invalid(Status.RINVNUMDESTS, "body ends inside dest_address")
            flag = body[pos]
            if flag == 1:
                if pos + 3 > end:
                    raise _Invalid(Status.RINVNUMDESTS, "body ends inside dest_address")
                ton, npi = body[pos + 1], body[pos + 2]
                pos = _read_addr(body, pos + 3, end, scratch)
                dests.append(SmeDest(ton, npi, scratch["destination_addr"]))
            elif flag == 2:
                pos = _read_dl_name(body, pos + 1, end, scratch)
                dests.append(DistList(scratch["dl_name"]))
            else:
                raise _Invalid(Status.RINVDESTFLAG, f"dest_flag {flag}")
        params["dest_address"] = dests
        return pos

    def write(params, out):
        dests = params.get("dest_address", ())
        if len(dests) > 255:
            raise ValueError("at most 255 destinations")
        out.append(bytes((len(dests),)))
        for dest in dests:
            if isinstance(dest, DistList):
                out.append(b"\x02" + _c(dest.name, 21))
            else:
                out.append(bytes((1, dest.ton, dest.npi)) + _c(dest.address, 21))

    return read, write


_UNSUCCESS_TAIL = struct.Struct(">I")


def _unsuccess_sme():
    """submit_multi_resp: no_unsuccess, then each refused address with its status."""

    def read(body, pos, end, params):
        if pos >= end:
            # Lenient: some SMSCs stop after message_id when every destination went through.
            params["unsuccess_sme"] = []
            return pos
        count = body[pos]
        pos += 1
        entries = []
        scratch: dict[str, Any] = {}
        for _ in range(count):
            if pos + 2 > end:
                raise _Invalid(Status.RINVCMDLEN, "body ends inside unsuccess_sme")
            ton, npi = body[pos], body[pos + 1]
            pos = _read_addr(body, pos + 2, end, scratch)
            if pos + 4 > end:
                raise _Invalid(Status.RINVCMDLEN, "body ends inside unsuccess_sme")
            (status,) = _UNSUCCESS_TAIL.unpack_from(body, pos)
            pos += 4
            entries.append(Unsuccess(ton, npi, scratch["destination_addr"], status))
        params["unsuccess_sme"] = entries
        return pos

    def write(params, out):
        entries = params.get("unsuccess_sme", ())
        if len(entries) > 255:
            raise ValueError("at most 255 unsuccess_sme entries")
        out.append(bytes((len(entries),)))
        for e in entries:
            out.append(bytes((e.ton, e.npi)) + _c(e.address, 21) + _UNSUCCESS_TAIL.pack(e.status))

    return read, write


def _c(value: str, size: int) -> bytes:
    raw = value.encode("latin-1")
    if len(raw) >= size:
        raise ValueError(f"{value!r} is longer than {size - 1} octets")
    return raw + b"\0"


# ---------------------------------------------------------------------------------------------
# The bodies (spec chapter 4). Integers are written as struct codes; strings as (size, status).

_S = Status
_BIND = [
    ("system_id", 16, _S.RINVSYSID),
    ("password", 9, _S.RINVPASWD),
    ("system_type", 13, _S.RINVSYSTYP),
    ("interface_version", "B"),
    ("addr_ton", "B"),
    ("addr_npi", "B"),
    ("address_range", 41, _S.RINVPARLEN),
]
_BIND_RESP = [("system_id", 16, _S.RINVSYSID)]
_SOURCE = [
    ("source_addr_ton", "B"),
    ("source_addr_npi", "B"),
    ("source_addr", 21, _S.RINVSRCADR),
]
_DEST = [
    ("dest_addr_ton", "B"),
    ("dest_addr_npi", "B"),
    ("destination_addr", 21, _S.RINVDSTADR),
]
_MESSAGE = [
    ("esm_class", "B"),
    ("protocol_id", "B"),
    ("priority_flag", "B"),
    ("schedule_delivery_time", 17, _S.RINVSCHED),
    ("validity_period", 17, _S.RINVEXPIRY),
    ("registered_delivery", "B"),
    ("replace_if_present_flag", "B"),
    ("data_coding", "B"),
    ("sm_default_msg_id", "B"),
    ("short_message", _SHORT_MESSAGE),
]
_SERVICE_TYPE = [("service_type", 6, _S.RINVSERTYP)]
_MESSAGE_ID = [("message_id", 65, _S.RINVMSGID)]
_SM = _SERVICE_TYPE + _SOURCE + _DEST + _MESSAGE

_BODIES: dict[Command, list] = {
    Command.generic_nack: [],
    Command.bind_transmitter: _BIND,
    Command.bind_receiver: _BIND,
    Command.bind_transceiver: _BIND,
    Command.bind_transmitter_resp: _BIND_RESP,
    Command.bind_receiver_resp: _BIND_RESP,
    Command.bind_transceiver_resp: _BIND_RESP,
    Command.outbind: [("system_id", 16, _S.RINVSYSID), ("password", 9, _S.RINVPASWD)],
    Command.unbind: [],
    Command.unbind_resp: [],
    Command.enquire_link: [],
    Command.enquire_link_resp: [],
    Command.submit_sm: _SM,
    Command.submit_sm_resp: _MESSAGE_ID,
    Command.deliver_sm: _SM,
    Command.deliver_sm_resp: _MESSAGE_ID,
    Command.submit_multi: _SERVICE_TYPE + _SOURCE + [("dest_address", _dest_address)] + _MESSAGE,
    Command.submit_multi_resp: _MESSAGE_ID + [("unsuccess_sme", _unsuccess_sme)],
    Command.data_sm: _SERVICE_TYPE
    + [
        ("source_addr_ton", "B"),
        ("source_addr_npi", "B"),
        ("source_addr", 65, _S.RINVSRCADR),
        ("dest_addr_ton", "B"),
        ("dest_addr_npi", "B"),
        ("destination_addr", 65, _S.RINVDSTADR),
        ("esm_class", "B"),
        ("registered_delivery", "B"),
        ("data_coding", "B"),
    ],
    Command.data_sm_resp: _MESSAGE_ID,
    Command.query_sm: _MESSAGE_ID + _SOURCE,
    Command.query_sm_resp: _MESSAGE_ID
    + [("final_date", 17, _S.RINVPARLEN), ("message_state", "B"), ("error_code", "B")],
    Command.cancel_sm: _SERVICE_TYPE + _MESSAGE_ID + _SOURCE + _DEST,
    Command.cancel_sm_resp: [],
    Command.replace_sm: _MESSAGE_ID
    + _SOURCE
    + [
        ("schedule_delivery_time", 17, _S.RINVSCHED),
        ("validity_period", 17, _S.RINVEXPIRY),
        ("registered_delivery", "B"),
        ("sm_default_msg_id", "B"),
        ("short_message", _SHORT_MESSAGE),
    ],
    Command.replace_sm_resp: [],
    Command.alert_notification: [
        ("source_addr_ton", "B"),
        ("source_addr_npi", "B"),
        ("source_addr", 65, _S.RINVSRCADR),
        ("esme_addr_ton", "B"),
        ("esme_addr_npi", "B"),
        ("esme_addr", 65, _S.RINVPARLEN),
    ],
}

# Spec 4.1.2, 4.1.4, 4.1.6 and 4.4.2: these responses carry no body when the status is an error.
_NO_BODY_ON_ERROR = frozenset(
    {
        Command.bind_transmitter_resp,
        Command.bind_receiver_resp,
        Command.bind_transceiver_resp,
        Command.submit_sm_resp,
    }
)


def _compile(spec: list) -> tuple[Any, Any, dict[str, Any]]:
    """Turn a body description into (reader, writer, zero values). Both are generated as
    straight-line functions (as dataclasses and attrs do): coding is the hottest code of the
    server, and this halves it against a loop over per-field closures. The writer appends the
    body's pieces to a list."""
    lines, out, zero, names = [], [], {}, []
    env: dict[str, Any] = {"_Invalid": _Invalid, "Status": Status}
    run: list[tuple[str, str]] = []

    def flush():
        if not run:
            return
        fields = [n for n, _ in run]
        codec = struct.Struct(">" + "".join(f for _, f in run))
        env[f"_unpack_{fields[0]}"] = codec.unpack_from
        env[f"_pack_{fields[0]}"] = codec.pack
        lines.append(f"if pos + {codec.size} > end:")
        lines.append(f"    raise _Invalid(Status.RINVCMDLEN, 'body ends inside {fields[0]}')")
        lines.append(f"{', '.join(fields)}, = _unpack_{fields[0]}(body, pos)")
        lines.append(f"pos += {codec.size}")
        values = ", ".join(f"p.get({n!r}, 0)" for n in fields)
        out.append(f"out.append(_pack_{fields[0]}({values}))")
        zero.update(dict.fromkeys(fields, 0))
        run.clear()

    for name, *rest in spec:
        names.append(name)
        if isinstance(rest[0], str):
            run.append((name, rest[0]))
            continue
        flush()
        if rest[0] is _SHORT_MESSAGE:
            lines += [
                "if pos >= end:",
                "    raise _Invalid(Status.RINVMSGLEN, 'body ends before sm_length')",
                "n = body[pos]",
                "if n > 254:",  # spec 4.4.1: 0-254 octets; encode() refuses more as well
                "    raise _Invalid(Status.RINVMSGLEN, 'sm_length 255 is above 254')",
                "pos += 1",
                "if pos + n > end:",
                "    raise _Invalid(Status.RINVMSGLEN, f'sm_length {n} overruns the PDU')",
                "short_message = body[pos:pos + n]",
                "pos += n",
            ]
            out += [
                "v = p.get('short_message', b'')",
                "if len(v) > 254:",
                "    raise ValueError('short_message is longer than 254 octets: use"
                " message_payload')",
                "out.append(bytes((len(v),)))",
                "out.append(v)",
            ]
            zero[name] = b""
        elif callable(rest[0]):  # the lists of submit_multi(_resp): rare, not inlined
            read, write = rest[0]()
            env[f"_read_{name}"] = read
            env[f"_write_{name}"] = write
            lines += ["found = {}", f"pos = _read_{name}(body, pos, end, found)"]
            lines.append(f"{name} = found[{name!r}]")
            out.append(f"_write_{name}(p, out)")
            zero[name] = []
        else:
            size, status = rest
            lines += [
                f"nul = body.find(b'\\0', pos, pos + {size} if pos + {size} < end else end)",
                "if nul < 0:",
                f"    raise _Invalid(Status.{status.name},"
                f" '{name} is not NUL-terminated within {size} octets')",
                f"{name} = body[pos:nul].decode('latin-1')",
                "pos = nul + 1",
            ]
            out += [
                f"v = p.get({name!r}, '').encode('latin-1')",
                f"if len(v) >= {size}:",
                f"    raise ValueError('{name} is longer than {size - 1} octets')",
                "out.append(v)",
                "out.append(b'\\0')",
            ]
            zero[name] = ""
    flush()
    result = ", ".join(f"{n!r}: {n}" for n in names)
    source = "\n    ".join(["def read(body, pos, end):", *lines, f"return {{{result}}}, pos"])
    source += "\n" + "\n    ".join(["def write(p, out):", *(out or ["pass"])])
    exec(source, env)
    return env["read"], env["write"], zero


_CODECS = {command: _compile(spec) for command, spec in _BODIES.items()}
_COMMANDS = {int(c): c for c in Command}


# ---------------------------------------------------------------------------------------------
# TLVs (spec 5.3.2): how each known tag's value is typed.

_INT_TLVS = {"B": struct.Struct(">B"), "H": struct.Struct(">H"), "I": struct.Struct(">I")}
_TLV_KINDS: dict[int, str] = dict.fromkeys(Tag, "B")
_TLV_KINDS.update(
    {
        Tag.dest_telematics_id: "H",
        Tag.user_message_reference: "H",
        Tag.source_port: "H",
        Tag.destination_port: "H",
        Tag.sar_msg_ref_num: "H",
        Tag.sms_signal: "H",
        Tag.qos_time_to_live: "I",
        Tag.additional_status_info_text: "c",
        Tag.receipted_message_id: "c",
        Tag.source_subaddress: "x",
        Tag.dest_subaddress: "x",
        Tag.callback_num_atag: "x",
        Tag.callback_num: "x",
        Tag.network_error_code: "x",
        Tag.message_payload: "x",
        Tag.its_session_info: "x",
        Tag.alert_on_message_delivery: "0",
    }
)
_TAGS = {int(t): t for t in Tag}


def _read_tlvs(body: bytes, pos: int, end: int) -> dict[int, Any]:
    tlvs: dict[int, Any] = {}
    while pos < end:
        if pos + 4 > end:
            raise _Invalid(Status.RINVOPTPARSTREAM, "trailing octets after the last TLV")
        number, length = _TLV_HEAD.unpack_from(body, pos)
        pos += 4
        if pos + length > end:
            raise _Invalid(Status.RINVOPTPARSTREAM, f"TLV 0x{number:04x} overruns the PDU")
        value = body[pos : pos + length]
        pos += length
        tag = _TAGS.get(number)
        if tag is None:
            tlvs[number] = value
            continue
        kind = _TLV_KINDS[tag]
        if kind == "x":
            tlvs[tag] = value
        elif kind == "c":
            # Lenient: some carriers leave out the NUL of receipted_message_id. A value with
            # octets after its NUL is still refused: that is no C-Octet String at all.
            text, nul, rest = value.partition(b"\0")
            if rest:
                raise _Invalid(Status.RINVOPTPARAMVAL, f"{tag.name} is not a C-Octet String")
            tlvs[tag] = text.decode("latin-1")
        elif kind == "0":
            if length:
                raise _Invalid(Status.RINVPARLEN, f"{tag.name} has a value")
            tlvs[tag] = True
        else:
            codec = _INT_TLVS[kind]
            if length != codec.size:
                raise _Invalid(Status.RINVPARLEN, f"{tag.name} has length {length}")
            tlvs[tag] = codec.unpack(value)[0]
    return tlvs


def _write_tlvs(tlvs: dict[int, Any], out: list[bytes]) -> None:
    for number, value in tlvs.items():
        kind = _TLV_KINDS.get(number, "x")
        if kind == "c":
            raw = value.encode("latin-1") + b"\0"
        elif kind == "0":
            raw = b""
        elif kind == "x":
            raw = bytes(value)
        else:
            raw = _INT_TLVS[kind].pack(value)
        out.append(_TLV_HEAD.pack(number, len(raw)))
        out.append(raw)


# ---------------------------------------------------------------------------------------------


def decode(frame: bytes) -> Pdu | PduError:
    """Decode one whole PDU (header included; the caller has framed it by command_length)."""
    size = len(frame)
    if size < HEADER_SIZE:
        return PduError(0, 0, Status.RINVCMDLEN, f"{size} octets is shorter than a header")
    length, command_id, status, sequence = HEADER.unpack_from(frame)
    if length != size:
        return PduError(command_id, sequence, Status.RINVCMDLEN, "command_length mismatch")
    command = _COMMANDS.get(command_id)
    if command is None:
        return PduError(command_id, sequence, Status.RINVCMDID, f"command_id 0x{command_id:08x}")
    read, _, zero = _CODECS[command]
    try:
        if size == HEADER_SIZE and status and command.is_response:
            return Pdu(command, sequence, status, dict(zero))  # an error response, no body
        params, pos = read(frame, HEADER_SIZE, size)
        tlvs = _read_tlvs(frame, pos, size) if pos < size else {}
    except _Invalid as e:
        return PduError(command_id, sequence, e.status, f"{command.name}: {e.reason}")
    return Pdu(command, sequence, status, params, tlvs)


def encode(pdu: Pdu) -> bytes:
    """Encode a PDU. Values that do not fit their field raise ValueError: that is a bug in the
    caller, never the peer's doing."""
    out = [b""]
    try:
        if not (pdu.status and pdu.command in _NO_BODY_ON_ERROR):
            _CODECS[pdu.command][1](pdu.params, out)
            if pdu.tlvs:
                _write_tlvs(pdu.tlvs, out)
        body_size = sum(map(len, out))
        out[0] = HEADER.pack(HEADER_SIZE + body_size, pdu.command, pdu.status, pdu.sequence)
    except struct.error as e:  # an integer out of its field's range: not a ValueError subclass
        raise ValueError(f"{pdu.command.name}: {e}") from e
    return b"".join(out)


def zero_params(command: Command) -> dict[str, Any]:
    """A fresh dict of the command's mandatory fields, each at its zero value."""
    return dict(_CODECS[command][2])


def encode_tlvs(tlvs: dict[int, Any]) -> bytes:
    """The TLV stream of `tlvs` alone (to keep a message's optional parameters in the store)."""
    out: list[bytes] = []
    _write_tlvs(tlvs, out)
    return b"".join(out)


def decode_tlvs(data: bytes) -> dict[int, Any] | PduError:
    try:
        return _read_tlvs(data, 0, len(data))
    except _Invalid as e:
        return PduError(0, 0, e.status, e.reason)
