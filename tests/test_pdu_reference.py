"""smsc's PDU codec against smpp.pdu (PyPI smpp.pdu3, Jasmin's fork of Mozes' codec).

For every operation smpp.pdu can both encode and decode, two directions are checked on PDUs
drawn by hypothesis from the values smpp.pdu accepts:

(a) a PDU built and encoded by smpp.pdu decodes with our codec to the same values, and
(b) our encoding of those values is byte for byte smpp.pdu's, smpp.pdu decodes it to the same
    values and re-encodes it to the same bytes.

"The same values" goes through `plain()`, a small explicit mapping from smpp.pdu's typed values
(enums, EsmClass, RegisteredDelivery, DataCoding, datetime / SMPPRelativeTime, CallbackNum,
Subaddress, bytes) to our ints, str and bytes. A hand-written receipt, long-message segment,
data_sm and response with TLVs pin exact values as well.

Not covered, because smpp.pdu cannot do it:
- submit_multi, submit_multi_resp and replace_sm: it has no encoder for number_of_dests /
  dest_address, no_unsuccess / unsuccess_sme and sm_length (KeyError either way). test_pdu.py
  checks them against hand-assembled spec vectors instead.
- TLVs it has no encoder for (callback_num_pres_ind, callback_num_atag, ms_msg_wait_facilities,
  ms_validity, dpf_result, set_dpf, its_reply_type, its_session_info, ussd_service_op): it can
  only send them as raw "custom_tlvs", and refuses them on input (ROPTPARNOTALLWD). Only
  direction (a) is checked for them.
- alert_on_message_delivery: its operations list the tag as "alert_on_msg_delivery", a name it
  does not know, so it can neither send nor accept it.

Where the two codecs legitimately differ (pinned by the tests at the end of this file):
- Typing. smpp.pdu maps fields to enums and refuses values outside them (addr_ton 7, an
  esm_class message type of 0x0C, message_state 0...); it silently drops bits it does not model
  (registered_delivery 0xE0) and normalises data_coding 0xF8-0xFF. smsc keeps every octet as an
  int and leaves judging values to the layers above. So generated values stay within its enums,
  registered_delivery < 0x20 and data_coding outside 0xF8-0xFF.
- Times. smpp.pdu parses schedule_delivery_time / validity_period / final_date into datetime or
  SMPPRelativeTime and refuses malformed ones; smsc keeps the string (smpptime judges it). An
  absolute time with offset 00 is always written "00+" by smpp.pdu, so "00-" does not survive.
- Empty values: smpp.pdu decodes an empty time, error_code 0 and deliver_sm_resp's message_id as
  None, and sequence_number 0 as None; it insists that deliver_sm's schedule_delivery_time and
  deliver_sm_resp's message_id be empty. smsc reads "", 0 and accepts anything.
- source_telematics_id: smpp.pdu writes 2 octets, smsc reads the 1 of SMPP 3.4 5.3.2.9 and
  answers RINVPARLEN (implementations disagree: smpplib also uses 2).
- sms_signal is an octet string for smpp.pdu, a 2-octet integer for smsc (spec 5.3.2.40).
- Unknown TLVs: smpp.pdu silently drops tags in the vendor and reserved ranges and refuses TLVs
  its operation does not list (ROPTPARNOTALLWD); smsc keeps unknown tags as raw bytes and takes
  any TLV on any command.
- C-strings: smpp.pdu encodes str as ASCII; smsc reads and writes Latin-1 (bytes pass through
  smpp.pdu untouched, so generated strings use every non-NUL octet).
- smpp.pdu's TLV encoders remember the length of the last TLV they decoded and compare the next
  subaddress / network_error_code / message_payload they encode against it, so every encode here
  uses a fresh PDUEncoder.
"""

from datetime import datetime
from enum import Enum
from io import BytesIO

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from smpp.pdu import constants as C
from smpp.pdu import operations as ops
from smpp.pdu import pdu_types as T
from smpp.pdu.error import PDUParseError
from smpp.pdu.pdu_encoding import PDUEncoder
from smpp.pdu.smpp_time import FixedOffset, SMPPRelativeTime
from strategies import CSTRING_TLV_SIZES, INT_TLV_SIZES, OCTET_TLV_SIZES, cstring_size

from smsc.protocol.constants import Command, Status, Tag
from smsc.protocol.pdu import Pdu, PduError, decode, encode, zero_params


def ref_encode(pdu: T.PDU) -> bytes:
    return PDUEncoder().encode(pdu)


def ref_decode(data: bytes) -> T.PDU:
    return PDUEncoder().decode(BytesIO(data))


# --- smpp.pdu's typed values as smsc's plain ones -----------------------------------------------

# Wire values of smpp.pdu's enums, by member name (its Enum values are mere ordinals).
WIRE_VALUES = {
    T.AddrTon: C.addr_ton_name_map,
    T.AddrNpi: C.addr_npi_name_map,
    T.PriorityFlag: C.priority_flag_name_map,
    T.ReplaceIfPresentFlag: C.replace_if_present_flap_name_map,
    T.MessageState: C.message_state_name_map,
    T.AddrSubunit: C.addr_subunit_name_map,
    T.NetworkType: C.network_type_name_map,
    T.BearerType: C.bearer_type_name_map,
    T.PayloadType: C.payload_type_name_map,
    T.PrivacyIndicator: C.privacy_indicator_name_map,
    T.LanguageIndicator: C.language_indicator_name_map,
    T.DisplayTime: C.display_time_name_map,
    T.MsAvailabilityStatus: C.ms_availability_status_name_map,
    T.DeliveryFailureReason: C.delivery_failure_reason_name_map,
    T.MoreMessagesToSend: C.more_messages_to_send_name_map,
    T.CallbackNumDigitModeIndicator: C.callback_num_digit_mode_indicator_name_map,
    T.SubaddressTypeTag: C.subaddress_type_tag_name_map,
    T.CommandStatus: C.command_status_name_map,
    T.EsmClassMode: C.esm_class_mode_name_map,
    T.EsmClassType: C.esm_class_type_name_map,
    T.EsmClassGsmFeatures: C.esm_class_gsm_features_name_map,
    T.RegisteredDeliveryReceipt: C.registered_delivery_receipt_name_map,
    T.RegisteredDeliverySmeOriginatedAcks: C.registered_delivery_sme_originated_acks_name_map,
    T.DataCodingDefault: C.data_coding_default_name_map,
    T.DataCodingGsmMsgCoding: C.data_coding_gsm_message_coding_name_map,
    T.DataCodingGsmMsgClass: C.data_coding_gsm_message_class_name_map,
}


def octet(value: Enum) -> int:
    return WIRE_VALUES[type(value)][value.name]


def smpp_time(value: datetime | SMPPRelativeTime) -> str:
    if isinstance(value, SMPPRelativeTime):
        return "".join(f"{part:02d}" for part in value) + "000R"
    offset = value.utcoffset()
    quarters = int(offset.total_seconds()) // 900 if offset else 0
    sign = "-" if quarters < 0 else "+"
    return f"{value:%y%m%d%H%M%S}{value.microsecond // 100_000}{abs(quarters):02d}{sign}"


def plain(value, like):
    """smpp.pdu's `value` as smsc's value of the same kind as `like` (0, "" or b"")."""
    if value is None:  # smpp.pdu's empty field
        return like
    if isinstance(like, str):
        return value.decode("latin-1") if isinstance(value, bytes) else smpp_time(value)
    if isinstance(like, bytes):
        if isinstance(value, T.CallbackNum):
            mode, ton, npi = map(octet, (value.digitModeIndicator, value.ton, value.npi))
            return bytes((mode, ton, npi)) + value.digits
        if isinstance(value, T.Subaddress):
            return bytes((octet(value.typeTag),)) + value.value
        return value
    if isinstance(value, bytes):  # sms_signal: an octet string there, an integer here
        return int.from_bytes(value, "big")
    if isinstance(value, Enum):
        return octet(value)
    if isinstance(value, T.EsmClass):
        return octet(value.mode) | octet(value.type) | sum(map(octet, value.gsmFeatures))
    if isinstance(value, T.RegisteredDelivery):
        acks = sum(map(octet, value.smeOriginatedAcks))
        return octet(value.receipt) | acks | (0x10 if value.intermediateNotification else 0)
    if isinstance(value, T.DataCoding):
        if value.scheme == T.DataCodingScheme.RAW:
            return value.schemeData
        if value.scheme == T.DataCodingScheme.DEFAULT:
            return octet(value.schemeData)
        return 0xF0 | octet(value.schemeData.msgCoding) | octet(value.schemeData.msgClass)
    assert isinstance(value, int), value
    return value


def tlv_like(tag: Tag):
    if tag in CSTRING_TLV_SIZES:
        return ""
    if tag in OCTET_TLV_SIZES:
        return b""
    assert tag in INT_TLV_SIZES, tag
    return 0


def as_ours(ref: T.PDU) -> Pdu:
    """smpp.pdu's PDU as the Pdu our codec should give for it (mandatory fields present only)."""
    command = Command[ref.id.name]
    zero = zero_params(command)
    params = {n: plain(ref.params[n], zero[n]) for n in ref.mandatoryParams if n in ref.params}
    tlvs = {
        Tag[n]: plain(ref.params[n], tlv_like(Tag[n]))
        for n in ref.optionalParams
        if n in ref.params
    }
    return Pdu(command, ref.seqNum, octet(ref.status), params, tlvs)


# --- strategies for smpp.pdu's typed values -----------------------------------------------------


def enum(kind: type[Enum]) -> st.SearchStrategy:
    return st.sampled_from(list(kind))


def octets(size: int, min_size: int = 0) -> st.SearchStrategy[bytes]:
    return st.binary(min_size=min_size, max_size=size)


def cstrings(size: int) -> st.SearchStrategy[bytes]:
    """A C-Octet String of `size` octets as smpp.pdu takes it: bytes, no NUL; often full."""
    octet = st.integers(1, 255)
    return st.one_of(
        st.lists(octet, max_size=size - 1), st.lists(octet, min_size=size - 1, max_size=size - 1)
    ).map(bytes)


uint8, uint16, uint32 = (st.integers(0, 2**n - 1) for n in (8, 16, 32))

esm_classes = st.builds(
    T.EsmClass, enum(T.EsmClassMode), enum(T.EsmClassType), st.sets(enum(T.EsmClassGsmFeatures))
)
registered_deliveries = st.builds(
    T.RegisteredDelivery,
    enum(T.RegisteredDeliveryReceipt),
    st.sets(enum(T.RegisteredDeliverySmeOriginatedAcks)),
    st.booleans(),
)
# Octets smpp.pdu reads as neither a named alphabet nor a GSM message class: kept as RAW.
RAW_CODINGS = [n for n in range(0xF0) if n not in C.data_coding_default_value_map]
data_codings = st.one_of(
    st.builds(T.DataCoding, st.just(T.DataCodingScheme.DEFAULT), enum(T.DataCodingDefault)),
    st.builds(
        T.DataCoding,
        st.just(T.DataCodingScheme.GSM_MESSAGE_CLASS),
        st.builds(
            T.DataCodingGsmMsg, enum(T.DataCodingGsmMsgCoding), enum(T.DataCodingGsmMsgClass)
        ),
    ),
    st.builds(T.DataCoding, st.just(T.DataCodingScheme.RAW), st.sampled_from(RAW_CODINGS)),
)


def _absolute(moment: datetime, tenths: int, quarters: int) -> datetime:
    zone = FixedOffset(quarters * 15) if quarters else None
    return moment.replace(microsecond=tenths * 100_000, tzinfo=zone)


times = st.one_of(
    st.none(),
    # %y reads 69-99 as 19xx and 00-68 as 20xx
    st.builds(
        _absolute,
        st.datetimes(datetime(1969, 1, 1), datetime(2068, 12, 31, 23, 59, 59)),
        st.integers(0, 9),
        st.integers(-48, 48),
    ),
    st.builds(SMPPRelativeTime, *[st.integers(0, 99)] * 6),
)

ENUM_FIELDS = {
    "addr_ton": T.AddrTon,
    "source_addr_ton": T.AddrTon,
    "dest_addr_ton": T.AddrTon,
    "esme_addr_ton": T.AddrTon,
    "addr_npi": T.AddrNpi,
    "source_addr_npi": T.AddrNpi,
    "dest_addr_npi": T.AddrNpi,
    "esme_addr_npi": T.AddrNpi,
    "priority_flag": T.PriorityFlag,
    "replace_if_present_flag": T.ReplaceIfPresentFlag,
    "message_state": T.MessageState,
}


def field(command: Command, name: str) -> st.SearchStrategy:
    """What smpp.pdu takes for mandatory field `name` of `command`."""
    if (command, name) in {
        (Command.deliver_sm, "schedule_delivery_time"),
        (Command.deliver_sm_resp, "message_id"),
    }:
        return st.none()  # smpp.pdu requires these to be empty
    if name in ("schedule_delivery_time", "validity_period", "final_date"):
        return times
    if name in ENUM_FIELDS:
        return enum(ENUM_FIELDS[name])
    special = {
        "esm_class": esm_classes,
        "registered_delivery": registered_deliveries,
        "data_coding": data_codings,
        "short_message": octets(254),
        "sm_default_msg_id": st.integers(0, 254),
    }
    if name in special:
        return special[name]
    if zero_params(command)[name] == "":
        return cstrings(cstring_size(command, name))
    return uint8  # interface_version, protocol_id, error_code


TLVS = {
    "dest_addr_subunit": enum(T.AddrSubunit),
    "source_addr_subunit": enum(T.AddrSubunit),
    "dest_network_type": enum(T.NetworkType),
    "source_network_type": enum(T.NetworkType),
    "dest_bearer_type": enum(T.BearerType),
    "source_bearer_type": enum(T.BearerType),
    "dest_telematics_id": uint16,
    "qos_time_to_live": uint32,
    "payload_type": enum(T.PayloadType),
    "additional_status_info_text": cstrings(256),
    "receipted_message_id": cstrings(65),
    "privacy_indicator": enum(T.PrivacyIndicator),
    "source_subaddress": st.builds(T.Subaddress, enum(T.SubaddressTypeTag), octets(22, 1)),
    "dest_subaddress": st.builds(T.Subaddress, enum(T.SubaddressTypeTag), octets(22, 1)),
    "user_message_reference": uint16,
    "user_response_code": uint8,
    "language_indicator": enum(T.LanguageIndicator),
    "source_port": uint16,
    "destination_port": uint16,
    "sar_msg_ref_num": uint16,
    "sar_total_segments": uint8,
    "sar_segment_seqnum": uint8,
    "sc_interface_version": uint8,
    "display_time": enum(T.DisplayTime),
    "ms_availability_status": enum(T.MsAvailabilityStatus),
    "network_error_code": octets(3, 3),
    "message_payload": octets(300),
    "delivery_failure_reason": enum(T.DeliveryFailureReason),
    "more_messages_to_send": enum(T.MoreMessagesToSend),
    "message_state": enum(T.MessageState),
    "callback_num": st.builds(
        T.CallbackNum,
        enum(T.CallbackNumDigitModeIndicator),
        enum(T.AddrTon),
        enum(T.AddrNpi),
        octets(16, 1),
    ),
    "number_of_messages": st.integers(0, 99),
    "sms_signal": octets(2, 2),
    # source_telematics_id: 2 octets there, 1 here (see the module docstring).
}

OPERATIONS = {
    command: ops.getPDUClass(getattr(T.CommandId, command.name))
    for command in Command
    if command not in (Command.submit_multi, Command.submit_multi_resp, Command.replace_sm)
}
STATUSES = [s for s in T.CommandStatus if C.command_status_name_map[s.name] >= 0]


@st.composite
def ref_pdus(draw, command: Command) -> T.PDU:
    operation = OPERATIONS[command]
    params = {name: draw(field(command, name)) for name in operation.mandatoryParams}
    allowed = {n: TLVS[n] for n in operation.optionalParams if n in TLVS}
    params |= draw(st.fixed_dictionaries({}, optional=allowed))
    status = draw(st.one_of(st.just(T.CommandStatus.ESME_ROK), st.sampled_from(STATUSES)))
    return operation(seqNum=draw(st.integers(1, 2**32 - 1)), status=status, **params)


# --- the properties ---------------------------------------------------------------------------


def check_both_directions(ref: T.PDU) -> None:
    expected = as_ours(ref)
    ref_bytes = ref_encode(ref)

    # (a) smpp.pdu -> smsc
    decoded = decode(ref_bytes)
    command = expected.command
    assert decoded == Pdu(
        command,
        expected.sequence,
        expected.status,
        zero_params(command) | expected.params,
        expected.tlvs,
    )

    # (b) smsc -> smpp.pdu
    ours = encode(expected)
    assert ours == ref_bytes
    back = ref_decode(ours)
    assert as_ours(back) == expected
    assert ref_encode(back) == ours


@pytest.mark.parametrize("command", list(OPERATIONS), ids=lambda c: c.name)
@settings(max_examples=15, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_both_directions(command, data):
    check_both_directions(data.draw(ref_pdus(command)))


def test_every_tlv_smpp_pdu_can_encode_is_generated():
    encodable = {tag.name for tag in PDUEncoder().optionEncoder.options}
    unused = encodable - set(TLVS)
    assert unused == {"vendor_specific_bypass", "source_telematics_id", "alert_on_message_delivery"}


# --- hand-written cases with TLVs ---------------------------------------------------------------

RECEIPT_TEXT = (
    b"id:0A1B2C3D sub:001 dlvrd:001 submit date:2601311030 done date:2601311031 "
    b"stat:DELIVRD err:000 text:Bonjour"
)

CASES = {
    "deliver_sm receipt": (
        ops.DeliverSM(
            seqNum=11,
            source_addr_ton=T.AddrTon.INTERNATIONAL,
            source_addr_npi=T.AddrNpi.ISDN,
            source_addr=b"33612345678",
            dest_addr_ton=T.AddrTon.ALPHANUMERIC,
            dest_addr_npi=T.AddrNpi.UNKNOWN,
            destination_addr=b"ACME",
            esm_class=T.EsmClass(T.EsmClassMode.DEFAULT, T.EsmClassType.SMSC_DELIVERY_RECEIPT),
            protocol_id=0,
            priority_flag=T.PriorityFlag.LEVEL_0,
            registered_delivery=T.RegisteredDelivery(
                T.RegisteredDeliveryReceipt.NO_SMSC_DELIVERY_RECEIPT_REQUESTED
            ),
            replace_if_present_flag=T.ReplaceIfPresentFlag.DO_NOT_REPLACE,
            data_coding=T.DataCoding(),
            sm_default_msg_id=0,
            short_message=RECEIPT_TEXT,
            receipted_message_id=b"0A1B2C3D",
            message_state=T.MessageState.DELIVERED,
            network_error_code=b"\x03\x00\x00",
        ),
        Pdu(
            Command.deliver_sm,
            11,
            0,
            zero_params(Command.deliver_sm)
            | {
                "source_addr_ton": 1,
                "source_addr_npi": 1,
                "source_addr": "33612345678",
                "dest_addr_ton": 5,
                "destination_addr": "ACME",
                "esm_class": 0x04,
                "short_message": RECEIPT_TEXT,
            },
            {  # in smpp.pdu's order, for byte equality
                Tag.network_error_code: b"\x03\x00\x00",
                Tag.message_state: 2,
                Tag.receipted_message_id: "0A1B2C3D",
            },
        ),
    ),
    "submit_sm segment": (
        ops.SubmitSM(
            seqNum=0x7FFFFFFF,
            service_type=b"CMT",
            source_addr_ton=T.AddrTon.ALPHANUMERIC,
            source_addr_npi=T.AddrNpi.UNKNOWN,
            source_addr=b"ACME",
            dest_addr_ton=T.AddrTon.INTERNATIONAL,
            dest_addr_npi=T.AddrNpi.ISDN,
            destination_addr=b"33612345678",
            esm_class=T.EsmClass(
                T.EsmClassMode.STORE_AND_FORWARD,
                T.EsmClassType.DEFAULT,
                [T.EsmClassGsmFeatures.UDHI_INDICATOR_SET],
            ),
            priority_flag=T.PriorityFlag.LEVEL_1,
            schedule_delivery_time=datetime(2026, 1, 31, 10, 30, 0, 500_000, FixedOffset(60)),
            validity_period=SMPPRelativeTime(0, 0, 7, 0, 0, 0),
            registered_delivery=T.RegisteredDelivery(
                T.RegisteredDeliveryReceipt.SMSC_DELIVERY_RECEIPT_REQUESTED,
                intermediateNotification=True,
            ),
            replace_if_present_flag=T.ReplaceIfPresentFlag.REPLACE,
            data_coding=T.DataCoding(T.DataCodingScheme.DEFAULT, T.DataCodingDefault.UCS2),
            sm_default_msg_id=0,
            short_message=b"\x00\x40\x00\xe9",
            user_message_reference=0xBEEF,
            source_port=0x23F4,
            destination_port=0x0B84,
            sar_msg_ref_num=0x1234,
            sar_total_segments=3,
            sar_segment_seqnum=2,
        ),
        Pdu(
            Command.submit_sm,
            0x7FFFFFFF,
            0,
            zero_params(Command.submit_sm)
            | {
                "service_type": "CMT",
                "source_addr_ton": 5,
                "source_addr": "ACME",
                "dest_addr_ton": 1,
                "dest_addr_npi": 1,
                "destination_addr": "33612345678",
                "esm_class": 0x43,
                "priority_flag": 1,
                "schedule_delivery_time": "260131103000504+",
                "validity_period": "000007000000000R",
                "registered_delivery": 0x11,
                "replace_if_present_flag": 1,
                "data_coding": 8,
                "short_message": b"\x00\x40\x00\xe9",
            },
            {
                Tag.user_message_reference: 0xBEEF,
                Tag.source_port: 0x23F4,
                Tag.destination_port: 0x0B84,
                Tag.sar_msg_ref_num: 0x1234,
                Tag.sar_total_segments: 3,
                Tag.sar_segment_seqnum: 2,
            },
        ),
    ),
    "data_sm with payload": (
        ops.DataSM(
            seqNum=3,
            service_type=b"",
            source_addr_ton=T.AddrTon.NATIONAL,
            source_addr_npi=T.AddrNpi.NATIONAL,
            source_addr=b"0612345678",
            dest_addr_ton=T.AddrTon.NETWORK_SPECIFIC,
            dest_addr_npi=T.AddrNpi.INTERNET,
            destination_addr=b"user@example.org",
            esm_class=T.EsmClass(T.EsmClassMode.DATAGRAM, T.EsmClassType.DEFAULT),
            registered_delivery=T.RegisteredDelivery(
                T.RegisteredDeliveryReceipt.SMSC_DELIVERY_RECEIPT_REQUESTED_FOR_FAILURE
            ),
            data_coding=T.DataCoding(
                T.DataCodingScheme.GSM_MESSAGE_CLASS,
                T.DataCodingGsmMsg(
                    T.DataCodingGsmMsgCoding.DATA_8BIT, T.DataCodingGsmMsgClass.CLASS_1
                ),
            ),
            message_payload=b"\x00" * 10 + bytes(range(1, 256)) * 2,
            callback_num=T.CallbackNum(
                T.CallbackNumDigitModeIndicator.ASCII,
                T.AddrTon.INTERNATIONAL,
                T.AddrNpi.ISDN,
                b"3336",
            ),
            qos_time_to_live=86400,
            more_messages_to_send=T.MoreMessagesToSend.MORE_MESSAGES,
            source_subaddress=T.Subaddress(T.SubaddressTypeTag.USER_SPECIFIED, b"\x01\x02"),
        ),
        Pdu(
            Command.data_sm,
            3,
            0,
            {
                "service_type": "",
                "source_addr_ton": 2,
                "source_addr_npi": 8,
                "source_addr": "0612345678",
                "dest_addr_ton": 3,
                "dest_addr_npi": 14,
                "destination_addr": "user@example.org",
                "esm_class": 1,
                "registered_delivery": 2,
                "data_coding": 0xF5,
            },
            {
                Tag.more_messages_to_send: 1,
                Tag.qos_time_to_live: 86400,
                Tag.message_payload: b"\x00" * 10 + bytes(range(1, 256)) * 2,
                Tag.callback_num: b"\x01\x01\x013336",
                Tag.source_subaddress: b"\xa0\x01\x02",
            },
        ),
    ),
    "data_sm_resp failure": (
        ops.DataSMResp(
            seqNum=4,
            status=T.CommandStatus.ESME_RDELIVERYFAILURE,
            message_id=b"m-4",
            delivery_failure_reason=T.DeliveryFailureReason.TEMPORARY_NETWORK_ERROR,
            network_error_code=b"\x03\x00\x22",
            additional_status_info_text=b"absent subscriber",
        ),
        Pdu(
            Command.data_sm_resp,
            4,
            Status.RDELIVERYFAILURE,
            {"message_id": "m-4"},
            {
                Tag.delivery_failure_reason: 3,
                Tag.network_error_code: b"\x03\x00\x22",
                Tag.additional_status_info_text: "absent subscriber",
            },
        ),
    ),
    "bind_transceiver_resp": (
        ops.BindTransceiverResp(seqNum=1, system_id=b"smsc", sc_interface_version=0x34),
        Pdu(
            Command.bind_transceiver_resp,
            1,
            0,
            {"system_id": "smsc"},
            {Tag.sc_interface_version: 0x34},
        ),
    ),
    "query_sm_resp": (
        ops.QuerySMResp(
            seqNum=6,
            message_id=b"0A1B",
            final_date=datetime(2026, 1, 31, 10, 31, 0, 0, FixedOffset(-300)),
            message_state=T.MessageState.UNDELIVERABLE,
            error_code=0x22,
        ),
        Pdu(
            Command.query_sm_resp,
            6,
            0,
            {
                "message_id": "0A1B",
                "final_date": "260131103100020-",
                "message_state": 5,
                "error_code": 0x22,
            },
        ),
    ),
    "alert_notification": (
        ops.AlertNotification(
            seqNum=9,
            source_addr_ton=T.AddrTon.INTERNATIONAL,
            source_addr_npi=T.AddrNpi.ISDN,
            source_addr=b"3" * 64,
            esme_addr_ton=T.AddrTon.UNKNOWN,
            esme_addr_npi=T.AddrNpi.UNKNOWN,
            esme_addr=b"esme",
            ms_availability_status=T.MsAvailabilityStatus.UNAVAILABLE,
        ),
        Pdu(
            Command.alert_notification,
            9,
            0,
            {
                "source_addr_ton": 1,
                "source_addr_npi": 1,
                "source_addr": "3" * 64,
                "esme_addr_ton": 0,
                "esme_addr_npi": 0,
                "esme_addr": "esme",
            },
            {Tag.ms_availability_status: 2},
        ),
    ),
    "submit_sm_resp error": (
        ops.SubmitSMResp(seqNum=12, status=T.CommandStatus.ESME_RTHROTTLED, message_id=b"x"),
        Pdu(Command.submit_sm_resp, 12, Status.RTHROTTLED, {}),
    ),
}


@pytest.mark.parametrize(("ref", "ours"), CASES.values(), ids=CASES)
def test_hand_written(ref, ours):
    raw = ref_encode(ref)
    assert decode(raw) == Pdu(
        ours.command, ours.sequence, ours.status, zero_params(ours.command) | ours.params, ours.tlvs
    )
    assert encode(ours) == raw
    # smpp.pdu reads back its own typed values (empty and zero fields aside: None, b"" or 0)
    back = ref_decode(raw)
    assert {n: v for n, v in back.params.items() if v} == {n: v for n, v in ref.params.items() if v}
    check_both_directions(ref)


UNTYPED_THERE = [
    (Tag.its_session_info, b"\x01\x02", b"\x01\x02"),
    (Tag.its_reply_type, b"\x01", 1),
    (Tag.ussd_service_op, b"\x11", 0x11),
    (Tag.ms_validity, b"\x03", 3),
    (Tag.ms_msg_wait_facilities, b"\x81", 0x81),
    (Tag.callback_num_pres_ind, b"\x02", 2),
    (Tag.callback_num_atag, b"\x00ACME", b"\x00ACME"),
    (Tag.dpf_result, b"\x01", 1),
    (Tag.set_dpf, b"\x00", 0),
    (Tag.alert_on_message_delivery, b"", True),
]


@pytest.mark.parametrize(
    ("tag", "raw", "value"), UNTYPED_THERE, ids=[t.name for t, *_ in UNTYPED_THERE]
)
def test_tlvs_smpp_pdu_sends_untyped(tag, raw, value):
    # (a) only: smpp.pdu sends these as raw custom TLVs and refuses them on input.
    ref = ops.DataSM(seqNum=1, custom_tlvs=[(int(tag), None, "OctetString", raw)])
    data = ref_encode(ref)
    assert decode(data).tlvs == {tag: value}
    with pytest.raises(PDUParseError) as refused:
        ref_decode(data)
    assert refused.value.status == T.CommandStatus.ESME_ROPTPARNOTALLWD


# --- where the codecs differ -------------------------------------------------------------------


@pytest.mark.parametrize("tag", [0x1400, 0x3FFF, 0x4000, 0xFFFF])
def test_vendor_tlv_is_kept_here_and_dropped_there(tag):
    ref = ops.EnquireLink(seqNum=5, custom_tlvs=[(tag, None, "OctetString", b"vendor")])
    data = ref_encode(ref)
    assert decode(data) == Pdu(Command.enquire_link, 5, 0, {}, {tag: b"vendor"})
    # smpp.pdu passes over it and decodes the rest.
    response = Pdu(Command.data_sm_resp, 5, 0, {"message_id": "m"}, {tag: b"vendor"})
    back = ref_decode(encode(response))
    assert back.params == {"message_id": b"m"}
    assert ref_encode(back) == encode(Pdu(Command.data_sm_resp, 5, 0, {"message_id": "m"}))


def test_source_telematics_id_width():
    data = ref_encode(ops.DataSM(seqNum=1, source_telematics_id=1))
    assert data.endswith(b"\x00\x10\x00\x02\x00\x01")
    error = decode(data)
    assert isinstance(error, PduError)
    assert error.status == Status.RINVPARLEN


@pytest.mark.parametrize(
    ("field", "value", "status"),
    [
        ("source_addr_ton", 7, T.CommandStatus.ESME_RINVSRCTON),
        ("dest_addr_npi", 2, T.CommandStatus.ESME_RINVDSTNPI),
        ("esm_class", 0x0C, T.CommandStatus.ESME_RINVESMCLASS),
        ("priority_flag", 4, T.CommandStatus.ESME_RINVPRTFLG),
        ("registered_delivery", 0x03, T.CommandStatus.ESME_RINVREGDLVFLG),
        ("validity_period", "261331000000000+", T.CommandStatus.ESME_RINVEXPIRY),
        ("schedule_delivery_time", "000007000000100R", T.CommandStatus.ESME_RINVSCHED),
    ],
)
def test_values_smpp_pdu_refuses_and_we_carry(field, value, status):
    pdu = Pdu(Command.submit_sm, 1, 0, {field: value})
    data = encode(pdu)
    assert decode(data) == Pdu(Command.submit_sm, 1, 0, zero_params(Command.submit_sm) | pdu.params)
    with pytest.raises(PDUParseError) as refused:
        ref_decode(data)
    assert refused.value.status == status


@pytest.mark.parametrize(
    ("field", "value", "normalised"),
    [
        ("registered_delivery", 0xE1, 0x01),
        ("data_coding", 0xF8, 0xF0),
        ("data_coding", 0xFF, 0xF7),
        ("validity_period", "260131103000000-", "260131103000000+"),
    ],
)
def test_values_smpp_pdu_rewrites(field, value, normalised):
    data = encode(Pdu(Command.submit_sm, 1, 0, {field: value}))
    rewritten = ref_encode(ref_decode(data))
    assert rewritten != data
    assert decode(rewritten).params[field] == normalised
