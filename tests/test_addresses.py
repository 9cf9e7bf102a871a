"""Destinations normalised to E.164 digits at the edge; senders checked."""

import pytest

from smsc.addresses import e164, valid_source


@pytest.mark.parametrize(
    ("address", "ton", "expected"),
    [
        # international, with '+', with '00' (TON 0 only) or bare digits
        ("+33612345678", 0, "33612345678"),
        ("+33612345678", 1, "33612345678"),
        ("33612345678", 1, "33612345678"),
        ("33612345678", 0, "33612345678"),
        ("0033612345678", 0, "33612345678"),
        ("+447911123456", 1, "447911123456"),
        ("004915112345678", 0, "4915112345678"),
        # French national numbers (TON 0 unknown, 2 national)
        ("0612345678", 0, "33612345678"),
        ("0712345678", 0, "33712345678"),
        ("0612345678", 2, "33612345678"),
        ("0712345678", 2, "33712345678"),
        ("0145678901", 2, "33145678901"),
        # the shortest and longest E.164 numbers
        ("+44123456", 1, "44123456"),
        ("+123456789012345", 1, "123456789012345"),
    ],
)
def test_e164_valid(address, ton, expected):
    assert e164(address, ton) == expected


@pytest.mark.parametrize(
    ("address", "ton"),
    [
        ("", 0),
        ("", 1),
        ("+33612345678", 2),  # a national number has no '+'
        ("33612345678", 2),  # nor a country code
        ("0033612345678", 1),  # TON 1 means the digits start with the country code
        ("0033612345678", 2),
        ("33612345678", 5),  # alphanumeric is no destination
        ("33612345678", 3),
        ("061234567", 0),  # national: 10 digits, not 9
        ("06123456789", 2),  # nor 11
        ("+4412345", 1),  # 7 digits: too short
        ("+1234567890123456", 1),  # 16 digits: too long
        ("+0612345678", 0),  # a leading zero where the country code goes
        ("+0033612345678", 1),
        ("00033612345678", 0),
        ("+330612345678", 1),  # the French trunk 0 kept after the country code
        ("0033061234567", 0),
        ("0012345678", 2),  # national '0' + '0…' would make 33 0…
        ("+3361234567", 1),  # French numbers are 33 + 9 digits
        ("+336123456789", 1),
        ("+33 612345678", 1),  # letters, spaces, punctuation
        ("+33-612345678", 1),
        ("+3361234567a", 1),
        ("06a2345678", 0),
        ("+33６12345678", 1),  # fullwidth digit
        ("++33612345678", 1),
        ("+", 1),
    ],
)
def test_e164_invalid(address, ton):
    assert e164(address, ton) is None


@pytest.mark.parametrize(
    ("address", "ton", "ok"),
    [
        ("ACME", 5, True),
        ("Acme2026", 5, True),
        ("A", 5, True),
        ("ABCDEFGHIJK", 5, True),  # 11: the most
        ("ABCDEFGHIJKL", 5, False),  # 12
        ("12345", 5, False),  # digits only is not alphanumeric
        ("ACME SHOP", 5, False),  # no spaces
        ("ACME-SHOP", 5, False),  # no punctuation
        ("Acmé", 5, False),  # ASCII letters only
        ("", 5, False),
        ("36000", 0, True),  # short code
        ("38123", 3, True),
        ("123", 0, True),  # 3 digits: the shortest
        ("12", 0, False),
        ("33612345678", 1, True),
        ("+33612345678", 1, True),
        ("123456789012345", 1, True),  # 15 digits
        ("1234567890123456", 1, False),  # 16
        ("ACME", 0, False),  # letters need TON 5
        ("3612a", 0, False),
        ("", 0, False),
        ("+", 1, False),
    ],
)
def test_valid_source(address, ton, ok):
    assert valid_source(address, ton) is ok
