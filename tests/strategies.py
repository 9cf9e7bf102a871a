"""Hypothesis strategies for smsc's PDU codec, written from the SMPP 3.4 specification.

The field sizes and TLV types below are restated from the spec (chapter 4 and 5.3.2) rather
than read from `smsc.protocol.pdu`, so that the tests check the codec against the spec and not
against itself. `pdus()` draws whole `Pdu` values; the smaller strategies are there to build
others (sessions, stores, receipts).
"""

from datetime import datetime

from hypothesis import strategies as st

from smsc.protocol.constants import Command, Tag
from smsc.protocol.pdu import DistList, Pdu, SmeDest, Unsuccess, zero_params


def uints(octets: int) -> st.SearchStrategy[int]:
    return st.integers(min_value=0, max_value=2 ** (8 * octets) - 1)


uint8, uint16, uint32 = uints(1), uints(2), uints(4)

# --- mandatory fields -------------------------------------------------------------------------

# C-Octet String sizes, NUL included (spec 4.1-4.12).
CSTRING_SIZES = {
    "system_id": 16,
    "password": 9,
    "system_type": 13,
    "address_range": 41,
    "service_type": 6,
    "source_addr": 21,
    "destination_addr": 21,
    "esme_addr": 65,
    "message_id": 65,
    "schedule_delivery_time": 17,
    "validity_period": 17,
    "final_date": 17,
}
# data_sm and alert_notification carry 65-octet addresses.
WIDE_ADDRESSES = {
    Command.data_sm: {"source_addr", "destination_addr"},
    Command.alert_notification: {"source_addr"},
}
TIME_FIELDS = {"schedule_delivery_time", "validity_period", "final_date"}
SME_ADDRESS_SIZE = 21  # submit_multi dest_address / unsuccess_sme addresses, dl_name


def cstring_size(command: Command, name: str) -> int:
    if name in WIDE_ADDRESSES.get(command, ()):
        return 65
    return CSTRING_SIZES[name]


def cstrings(size: int) -> st.SearchStrategy[str]:
    """Text that fits a C-Octet String of `size` octets: Latin-1, no NUL, at most size-1
    (often exactly size-1: the edge where field sizes go wrong)."""
    chars = st.characters(min_codepoint=1, max_codepoint=0xFF)
    return st.one_of(
        st.text(chars, max_size=size - 1), st.text(chars, min_size=size - 1, max_size=size - 1)
    )


@st.composite
def smpp_times(draw) -> str:
    """A well-formed SMPP time (spec 7.1.1): absolute `YYMMDDhhmmsstnn±` or relative `…R`."""
    if draw(st.booleans()):
        parts = draw(st.lists(st.integers(0, 99), min_size=6, max_size=6))
        return "".join(f"{p:02d}" for p in parts) + "000R"
    moment = draw(st.datetimes(datetime(2000, 1, 1), datetime(2099, 12, 31, 23, 59, 59)))
    quarters = draw(st.integers(0, 48))
    sign = "+" if quarters == 0 else draw(st.sampled_from("+-"))
    tenths = draw(st.integers(0, 9))
    return f"{moment:%y%m%d%H%M%S}{tenths}{quarters:02d}{sign}"


def sme_dests() -> st.SearchStrategy[SmeDest | DistList]:
    return st.one_of(
        st.builds(SmeDest, uint8, uint8, cstrings(SME_ADDRESS_SIZE)),
        st.builds(DistList, cstrings(SME_ADDRESS_SIZE)),
    )


def unsuccesses() -> st.SearchStrategy[Unsuccess]:
    return st.builds(Unsuccess, uint8, uint8, cstrings(SME_ADDRESS_SIZE), uint32)


def field_values(command: Command, name: str) -> st.SearchStrategy:
    """Any value the spec allows in mandatory field `name` of `command`."""
    if name in TIME_FIELDS:
        # The codec does not read times (smpptime does): any short text goes through.
        return st.one_of(st.just(""), smpp_times(), cstrings(17))
    if name in CSTRING_SIZES:
        return cstrings(cstring_size(command, name))
    if name == "short_message":
        return st.binary(max_size=254)
    if name == "dest_address":
        return st.lists(sme_dests(), max_size=8)
    if name == "unsuccess_sme":
        return st.lists(unsuccesses(), max_size=8)
    return uint8  # every other mandatory field is a 1-octet integer


def params(command: Command) -> st.SearchStrategy[dict]:
    """Some of the mandatory fields of `command` (a missing one encodes as its zero value)."""
    fields = {name: field_values(command, name) for name in zero_params(command)}
    return st.fixed_dictionaries({}, optional=fields)


# --- TLVs (spec 5.3.2) ------------------------------------------------------------------------

INT_TLV_SIZES: dict[Tag, int] = {
    **dict.fromkeys(
        [
            Tag.dest_addr_subunit,
            Tag.dest_network_type,
            Tag.dest_bearer_type,
            Tag.source_addr_subunit,
            Tag.source_network_type,
            Tag.source_bearer_type,
            Tag.source_telematics_id,
            Tag.payload_type,
            Tag.ms_msg_wait_facilities,
            Tag.privacy_indicator,
            Tag.user_response_code,
            Tag.language_indicator,
            Tag.sar_total_segments,
            Tag.sar_segment_seqnum,
            Tag.sc_interface_version,
            Tag.callback_num_pres_ind,
            Tag.number_of_messages,
            Tag.dpf_result,
            Tag.set_dpf,
            Tag.ms_availability_status,
            Tag.delivery_failure_reason,
            Tag.more_messages_to_send,
            Tag.message_state,
            Tag.ussd_service_op,
            Tag.display_time,
            Tag.ms_validity,
            Tag.its_reply_type,
        ],
        1,
    ),
    **dict.fromkeys(
        [
            Tag.dest_telematics_id,
            Tag.user_message_reference,
            Tag.source_port,
            Tag.destination_port,
            Tag.sar_msg_ref_num,
            Tag.sms_signal,
        ],
        2,
    ),
    Tag.qos_time_to_live: 4,
}
CSTRING_TLV_SIZES = {Tag.additional_status_info_text: 256, Tag.receipted_message_id: 65}
# Octet-string TLVs with the (min, max) length the spec gives them.
OCTET_TLV_SIZES = {
    Tag.source_subaddress: (2, 23),
    Tag.dest_subaddress: (2, 23),
    Tag.callback_num_atag: (0, 65),
    Tag.callback_num: (4, 19),
    Tag.network_error_code: (3, 3),
    Tag.message_payload: (0, 400),  # up to 64K by the spec; kept small for speed
    Tag.its_session_info: (2, 2),
}
FLAG_TLVS = {Tag.alert_on_message_delivery}  # no value: present or absent


def tlv_values(tag: Tag) -> st.SearchStrategy:
    if tag in INT_TLV_SIZES:
        return uints(INT_TLV_SIZES[tag])
    if tag in CSTRING_TLV_SIZES:
        return cstrings(CSTRING_TLV_SIZES[tag])
    if tag in OCTET_TLV_SIZES:
        low, high = OCTET_TLV_SIZES[tag]
        return st.binary(min_size=low, max_size=high)
    if tag in FLAG_TLVS:
        return st.just(True)
    raise KeyError(f"no strategy for TLV {tag!r}")


KNOWN_TAG_NUMBERS = frozenset(int(t) for t in Tag)
unknown_tags = st.integers(0, 0xFFFF).filter(lambda n: n not in KNOWN_TAG_NUMBERS)


@st.composite
def tlvs(draw, max_known: int = 6, max_unknown: int = 2) -> dict:
    """Typed values for some known tags, plus raw bytes under tag numbers smsc does not know."""
    tags = draw(st.lists(st.sampled_from(Tag), max_size=max_known, unique=True))
    known = {tag: draw(tlv_values(tag)) for tag in tags}
    unknown = draw(st.dictionaries(unknown_tags, st.binary(max_size=32), max_size=max_unknown))
    return known | unknown


# --- whole PDUs -------------------------------------------------------------------------------

statuses = st.one_of(st.just(0), uint32)


def pdus(command: Command | st.SearchStrategy[Command] | None = None) -> st.SearchStrategy[Pdu]:
    """Valid PDUs of `command` (any command if None), with random mandatory fields and TLVs."""
    commands = st.sampled_from(Command) if command is None else command
    if isinstance(commands, Command):
        commands = st.just(commands)
    return commands.flatmap(
        lambda c: st.builds(Pdu, st.just(c), uint32, statuses, params(c), tlvs())
    )
