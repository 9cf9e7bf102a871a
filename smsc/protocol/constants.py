"""Numbers of the SMPP 3.4 specification: command ids, command statuses, TLV tags."""

from enum import IntEnum

RESPONSE_BIT = 0x80000000


class Command(IntEnum):
    generic_nack = 0x80000000
    bind_receiver = 0x00000001
    bind_receiver_resp = 0x80000001
    bind_transmitter = 0x00000002
    bind_transmitter_resp = 0x80000002
    query_sm = 0x00000003
    query_sm_resp = 0x80000003
    submit_sm = 0x00000004
    submit_sm_resp = 0x80000004
    deliver_sm = 0x00000005
    deliver_sm_resp = 0x80000005
    unbind = 0x00000006
    unbind_resp = 0x80000006
    replace_sm = 0x00000007
    replace_sm_resp = 0x80000007
    cancel_sm = 0x00000008
    cancel_sm_resp = 0x80000008
    bind_transceiver = 0x00000009
    bind_transceiver_resp = 0x80000009
    outbind = 0x0000000B
    enquire_link = 0x00000015
    enquire_link_resp = 0x80000015
    submit_multi = 0x00000021
    submit_multi_resp = 0x80000021
    alert_notification = 0x00000102
    data_sm = 0x00000103
    data_sm_resp = 0x80000103

    @property
    def is_response(self) -> bool:
        return bool(self & RESPONSE_BIT)

    @property
    def response(self) -> "Command | None":
        """The response command of a request; None for requests that have none."""
        return _RESPONSES.get(self)


_RESPONSES = {
    c: Command(c | RESPONSE_BIT)
    for c in Command
    if not c & RESPONSE_BIT and (c | RESPONSE_BIT) in Command._value2member_map_
}

BINDS = frozenset({Command.bind_transmitter, Command.bind_receiver, Command.bind_transceiver})


class Status(IntEnum):
    """command_status values (spec 5.1.3), plus smsc's own in the vendor range 0x400-0x4FF."""

    ROK = 0x00
    RINVMSGLEN = 0x01
    RINVCMDLEN = 0x02
    RINVCMDID = 0x03
    RINVBNDSTS = 0x04
    RALYBND = 0x05
    RINVPRTFLG = 0x06
    RINVREGDLVFLG = 0x07
    RSYSERR = 0x08
    RINVSRCADR = 0x0A
    RINVDSTADR = 0x0B
    RINVMSGID = 0x0C
    RBINDFAIL = 0x0D
    RINVPASWD = 0x0E
    RINVSYSID = 0x0F
    RCANCELFAIL = 0x11
    RREPLACEFAIL = 0x13
    RMSGQFUL = 0x14
    RINVSERTYP = 0x15
    RINVNUMDESTS = 0x33
    RINVDLNAME = 0x34
    RINVDESTFLAG = 0x40
    RINVSUBREP = 0x42
    RINVESMCLASS = 0x43
    RCNTSUBDL = 0x44
    RSUBMITFAIL = 0x45
    RINVSRCTON = 0x48
    RINVSRCNPI = 0x49
    RINVDSTTON = 0x50
    RINVDSTNPI = 0x51
    RINVSYSTYP = 0x53
    RINVREPFLAG = 0x54
    RINVNUMMSGS = 0x55
    RTHROTTLED = 0x58
    RINVSCHED = 0x61
    RINVEXPIRY = 0x62
    RINVDFTMSGID = 0x63
    RX_T_APPN = 0x64
    RX_P_APPN = 0x65
    RX_R_APPN = 0x66
    RQUERYFAIL = 0x67
    RINVOPTPARSTREAM = 0xC0
    ROPTPARNOTALLWD = 0xC1
    RINVPARLEN = 0xC2
    RMISSINGOPTPARAM = 0xC3
    RINVOPTPARAMVAL = 0xC4
    RDELIVERYFAILURE = 0xFE
    RUNKNOWNERR = 0xFF
    # smsc's vendor-specific statuses (documented in the README)
    RINVDCS = 0x400  # data_coding smsc does not carry, or a text not valid in it
    ROPTEDOUT = 0x401  # the destination replied STOP: on the account's or the global list
    RSTOPMENTION = 0x402  # promotional, from an alphanumeric id, without where to reply STOP
    RNOCREDIT = 0x403  # a prepaid account whose balance does not cover the message


class Tag(IntEnum):
    """Optional parameter (TLV) tags of SMPP 3.4 (spec 5.3.2)."""

    dest_addr_subunit = 0x0005
    dest_network_type = 0x0006
    dest_bearer_type = 0x0007
    dest_telematics_id = 0x0008
    source_addr_subunit = 0x000D
    source_network_type = 0x000E
    source_bearer_type = 0x000F
    source_telematics_id = 0x0010
    qos_time_to_live = 0x0017
    payload_type = 0x0019
    additional_status_info_text = 0x001D
    receipted_message_id = 0x001E
    ms_msg_wait_facilities = 0x0030
    privacy_indicator = 0x0201
    source_subaddress = 0x0202
    dest_subaddress = 0x0203
    user_message_reference = 0x0204
    user_response_code = 0x0205
    source_port = 0x020A
    destination_port = 0x020B
    sar_msg_ref_num = 0x020C
    language_indicator = 0x020D
    sar_total_segments = 0x020E
    sar_segment_seqnum = 0x020F
    sc_interface_version = 0x0210
    callback_num_pres_ind = 0x0302
    callback_num_atag = 0x0303
    number_of_messages = 0x0304
    callback_num = 0x0381
    dpf_result = 0x0420
    set_dpf = 0x0421
    ms_availability_status = 0x0422
    network_error_code = 0x0423
    message_payload = 0x0424
    delivery_failure_reason = 0x0425
    more_messages_to_send = 0x0426
    message_state = 0x0427
    ussd_service_op = 0x0501
    display_time = 0x1201
    sms_signal = 0x1203
    ms_validity = 0x1204
    alert_on_message_delivery = 0x130C
    its_reply_type = 0x1380
    its_session_info = 0x1383


class MessageState(IntEnum):
    """message_state values (spec 5.2.28), used in query_sm_resp and receipts."""

    ENROUTE = 1
    DELIVERED = 2
    EXPIRED = 3
    DELETED = 4
    UNDELIVERABLE = 5
    ACCEPTED = 6
    UNKNOWN = 7
    REJECTED = 8


ESM_UDHI = 0x40  # esm_class: short_message starts with a user data header
ESM_RECEIPT = 0x04  # esm_class in deliver_sm: the message is a delivery receipt
INTERFACE_VERSION = 0x34
