"""Sender rules at accept (French A2P, see DOMAIN.md): which addresses an account may send
from, and where a promotional message from an alphanumeric id tells subscribers to reply STOP.

- An account sends from the addresses it registered (`smsc account set --sender`); one that
  registered none may use any valid sender, so that a new account works out of the box (the
  operator locks it down by registering its first sender).
- 06/07 mobile numbers are person-to-person only since ARCEP 2022-1583: refused as senders
  unless the account is allowed them.
- A promotional message from an alphanumeric id cannot be answered, so it must say where to
  send STOP ("STOP au 36xxx"): the account either has the mention appended (pointing at its
  promotional short code) or the message refused.
"""

import re

from . import addresses
from .protocol import concat
from .protocol import text as sms_text
from .protocol.constants import ESM_UDHI, Status
from .store.accounts import Account

# "STOP au 36180", "STOP 36180", "stop: 36180", "STOP SMS au 36180", "STOP au +33 6 …".
_MENTION = re.compile(r"\bSTOP\b\W*(?:SMS\W*)?(?:AU\W*|TO\W*)?\+?\d", re.IGNORECASE)
_PART = 140  # octets of user data in one part, UDH included


def check(account: Account, source: str, ton: int) -> Status:
    """ROK, or RINVSRCADR for a sender this account may not use."""
    if not addresses.valid_source(source, ton):
        return Status.RINVSRCADR
    if not account.senders and (ton == 5 or account.mobile_senders):
        return Status.ROK  # any valid sender (the hot path of a new account: no key to make)
    key = addresses.sender(source, ton)
    if account.senders and key not in account.senders:
        return Status.RINVSRCADR
    if addresses.is_mobile(key) and not account.mobile_senders:
        return Status.RINVSRCADR
    return Status.ROK


def stop_number(account: Account) -> str | None:
    """Where the account's subscribers reply STOP: its promotional short code (36xxx) first,
    else another short code of it, else none."""
    codes = sorted(s for s in account.senders if s.isdigit() and len(s) <= 6)
    return next((c for c in codes if c.startswith("36")), codes[0] if codes else None)


def with_stop_mention(
    account: Account,
    source: str,
    ton: int,
    body: bytes,
    data_coding: int,
    esm_class: int,
    tlvs: dict | None = None,
) -> bytes | Status:
    """The body a promotional message goes out with: as it is when it can be answered (a
    numeric sender) or says where to reply STOP, else with " STOP au 36xxx" appended (or
    RSTOPMENTION when the account refuses such messages, has no short code to point at, or
    the text cannot take the mention). In a long message the client cut itself (UDH or
    sar_* TLVs), the last part carries the mention."""
    if not account.marketing or (ton != 5 and addresses.valid_source(source, 1)):
        return body
    header, payload = b"", body
    if esm_class & ESM_UDHI:
        parsed = concat.parse_udh(body)
        if parsed is None:
            return Status.RINVMSGLEN
        header, payload = body[: body[0] + 1], parsed[1]
    part = concat.concat_info(esm_class, body, tlvs or {})
    if part is not None and part[2] != part[1]:
        return body  # not the last part: the mention belongs to the last one
    text = sms_text.decode(data_coding, payload)
    if text is not None and _MENTION.search(text):
        return body
    number = stop_number(account)
    if text is None or number is None or account.stop_mention != "append":
        return Status.RSTOPMENTION
    try:
        mended = sms_text.encode(data_coding, f"{text} STOP au {number}")
    except ValueError:
        return Status.RSTOPMENTION
    if part is not None and len(mended) > _room(header, data_coding):
        return Status.RSTOPMENTION
    return header + mended


def _room(header: bytes, data_coding: int) -> int:
    """What one part's text may take after its UDH: septets in the GSM alphabet (stored one
    an octet, the UDH padded to a septet boundary), octets otherwise."""
    if data_coding == sms_text.GSM:
        return (_PART * 8 - len(header) * 8) // 7
    return _PART - len(header)
