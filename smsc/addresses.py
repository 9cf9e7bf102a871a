"""Addresses at the edge: destinations normalised once to E.164 digits, sources checked.

TON values (spec 5.2.5): 0 unknown, 1 international, 2 national, 5 alphanumeric.
"""

COUNTRY_CODE = "33"  # national numbers are French: 06 12 34 56 78 → 33612345678
_NATIONAL_LENGTH = 9  # French numbers after the country code: 9 digits, never a leading 0
_DIGITS = frozenset("0123456789")


def e164(address: str, ton: int = 0) -> str | None:
    """The E.164 digits of a destination, or None if it is not a phone number we can reach."""
    if ton not in (0, 1, 2) or not address:
        return None
    if address[0] == "+":
        if ton == 2:
            return None
        address = address[1:]
    elif ton == 0 and address.startswith("00"):
        address = address[2:]
    elif ton != 1 and address[0] == "0":
        if len(address) != 10:
            return None
        address = COUNTRY_CODE + address[1:]
    elif ton == 2:
        return None
    if not 8 <= len(address) <= 15 or address[0] == "0" or not _DIGITS.issuperset(address):
        return None
    if address.startswith(COUNTRY_CODE) and (
        len(address) != len(COUNTRY_CODE) + _NATIONAL_LENGTH or address[len(COUNTRY_CODE)] == "0"
    ):
        return None  # +33 0612345678 (the trunk 0 kept) or a French number of the wrong length
    return address


def valid_source(address: str, ton: int) -> bool:
    """A sender we can carry: an alphanumeric id (TON 5) of at most 11 letters and digits, not
    all digits (French operators' rule), or a number of 3 to 15 digits (short codes included)."""
    if ton == 5:
        return (
            1 <= len(address) <= 11
            and address.isascii()
            and address.isalnum()
            and (not address.isdigit())
        )
    if address[:1] == "+":
        address = address[1:]
    return 3 <= len(address) <= 15 and _DIGITS.issuperset(address)


def source(address: str, ton: int) -> tuple[str, int]:
    """A sender as the switch stores and sends it, with its TON: a long number in E.164 (TON
    1), a short code or an alphanumeric id as it is."""
    if ton != 5:
        written = address
        if ton == 2 and len(address) == _NATIONAL_LENGTH and address[:1] != "0":
            written = "0" + address  # a national number written without its trunk 0
        if len(written.removeprefix("+")) >= 8:
            number = e164(written, ton if ton in (0, 1, 2) else 0)
            if number is not None:
                return number, 1
    return address.removeprefix("+"), ton


def sender(address: str, ton: int = 0) -> str:
    """The form an account's sender is registered and compared under: `source`'s, with
    alphanumeric ids compared without case."""
    address = source(address, ton)[0]
    return address if address.isdigit() else address.upper()


def is_mobile(number: str) -> bool:
    """A French 06/07 mobile number (E.164): person-to-person only since ARCEP 2022-1583."""
    return len(number) == 11 and number.startswith(("336", "337"))
