"""Sender rules at accept (smsc.senders): which addresses an account may send from, its STOP
short code, the STOP mention of promotional messages from alphanumeric ids; and, through
`Acceptor.submit`, refused senders, the opt-out hashes handed to the store and the
destinations the store refuses (ROPTEDOUT)."""

from dataclasses import replace

import pytest
from test_accept import DEST, FakeStore, account, params, submit
from twisted.internet.task import Clock

from smsc import senders
from smsc.accept import Acceptor
from smsc.protocol import concat
from smsc.protocol import text as sms_text
from smsc.protocol.constants import Status, Tag
from smsc.store import optouts

NOW = 1_767_225_600.0
KEY = b"k3y-of-the-switch"
MENTION = " STOP au 36180"


def who(*registered, **values):
    """An account that registered these senders (normalised), with these settings."""
    return replace(account(), senders=frozenset(registered), **values)


def promo(*registered, **values):
    """A promotional account; by default it registered ACME and the short codes 36180, 38100."""
    return who(*(registered or ("ACME", "36180", "38100")), marketing=True, **values)


# -- senders.check --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("registered", "source", "ton", "status"),
    [
        (("36180",), "36180", 0, Status.ROK),
        (("36180",), "36181", 0, Status.RINVSRCADR),  # not registered
        (("33999000111",), "+33999000111", 1, Status.ROK),  # compared in E.164
        (("33999000111",), "0999000111", 2, Status.ROK),
        (("33999000111",), "0999000112", 0, Status.RINVSRCADR),
        (("ACME",), "ACME", 5, Status.ROK),
        (("ACME",), "Acme", 5, Status.ROK),  # alphanumeric ids compared without case
        (("ACME",), "acme", 5, Status.ROK),
        (("ACME",), "ACMEX", 5, Status.RINVSRCADR),
        (("ACME",), "36180", 0, Status.RINVSRCADR),
        ((), "36180", 0, Status.ROK),  # nothing registered: any valid sender
        ((), "Whatever", 5, Status.ROK),
        ((), "+33999000111", 1, Status.ROK),
    ],
)
def test_check_registered_senders(registered, source, ton, status):
    assert senders.check(who(*registered), source, ton) == status


@pytest.mark.parametrize(
    ("source", "ton"),
    [
        ("ACMEBRANDNAME", 5),  # 13 letters: at most 11
        ("ACME SHOP", 5),  # no spaces
        ("ACME-SHOP", 5),  # no punctuation
        ("Café", 5),  # ASCII only
        ("36180", 5),  # not digits only
        ("", 5),
        ("ACME", 0),  # letters need TON 5
        ("12", 0),  # too short for a number
        ("1234567890123456", 1),  # too long
    ],
)
def test_check_refuses_invalid_senders_even_with_nothing_registered(source, ton):
    assert senders.check(who(), source, ton) == Status.RINVSRCADR


@pytest.mark.parametrize(
    ("source", "ton"),
    [("0612345678", 0), ("0712345678", 2), ("+33612345678", 1), ("33712345678", 1)],
)
def test_check_mobile_numbers_need_the_account_allowed(source, ton):
    assert senders.check(who(), source, ton) == Status.RINVSRCADR
    assert senders.check(who(mobile_senders=True), source, ton) == Status.ROK
    # Registered but not allowed: still refused (ARCEP 2022-1583).
    number = "33" + source[-9:]
    assert senders.check(who(number), source, ton) == Status.RINVSRCADR
    assert senders.check(who(number, mobile_senders=True), source, ton) == Status.ROK
    assert senders.check(who("36180", mobile_senders=True), source, ton) == Status.RINVSRCADR


def test_check_a_national_mobile_without_its_trunk_zero_is_a_mobile():
    assert senders.check(who(), "612345678", 2) == Status.RINVSRCADR


def test_check_other_french_numbers_are_no_mobiles():
    for source in ("0999000111", "0937123456", "0123456789"):
        assert senders.check(who(), source, 0) == Status.ROK


# -- stop_number ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("registered", "number"),
    [
        (("ACME", "38100", "36180"), "36180"),  # the promotional short code first
        (("38100", "36999", "36180"), "36180"),  # the lowest of them
        (("ACME", "38100"), "38100"),  # else another short code
        (("ACME", "33999000111"), None),  # a long number is no short code
        ((), None),
    ],
)
def test_stop_number(registered, number):
    assert senders.stop_number(who(*registered)) == number


# -- with_stop_mention ----------------------------------------------------------------------


def mention(account, body, data_coding=0, esm_class=0, source="ACME", ton=5):
    return senders.with_stop_mention(account, source, ton, body, data_coding, esm_class)


def test_transactional_messages_are_untouched():
    assert mention(who("ACME", "36180"), b"Votre code: 1234") == b"Votre code: 1234"


@pytest.mark.parametrize(("source", "ton"), [("36180", 0), ("+33999000111", 1), ("38100", 2)])
def test_numeric_senders_are_untouched(source, ton):
    assert mention(promo(), b"Soldes -50%", source=source, ton=ton) == b"Soldes -50%"


@pytest.mark.parametrize(
    "text",
    [
        "Soldes -50% STOP au 36180",
        "Soldes -50% STOP 36180",
        "Soldes -50% stop: 36180",
        "Soldes -50%, STOP SMS au 36180",
        "STOP au 36180 - Soldes -50%",
    ],
)
def test_a_mention_present_is_kept(text):
    body = text.encode()
    assert mention(promo(), body) == body
    assert mention(promo(stop_mention="refuse"), body) == body


def test_a_missing_mention_is_appended_in_gsm():
    text = "Soldes -50% ce week-end à 10€ !"  # an accent and an escaped character
    body = sms_text.encode(0, text)
    assert mention(promo(), body) == sms_text.encode(0, text + MENTION)
    assert sms_text.decode(0, mention(promo(), body)) == text + MENTION


def test_a_missing_mention_is_appended_in_ucs2():
    text = "Soldes d’été, très bientôt ✨"
    got = mention(promo(), text.encode("utf-16-be"), data_coding=8)
    assert got == (text + MENTION).encode("utf-16-be")
    assert sms_text.decode(8, got) == text + MENTION


def test_the_mention_points_at_the_promotional_short_code():
    got = mention(promo("ACME", "38100"), b"Promo")
    assert got == b"Promo STOP au 38100"


@pytest.mark.parametrize(
    ("account", "body", "data_coding"),
    [
        (promo(stop_mention="refuse"), b"Soldes -50%", 0),  # the account refuses them
        (promo("ACME"), b"Soldes -50%", 0),  # no short code to point at
        (promo("ACME", "33999000111"), b"Soldes -50%", 0),
        (promo(), b"\x01\x02\x03", 4),  # binary: no text to append to
    ],
)
def test_a_missing_mention_that_cannot_be_appended_is_refused(account, body, data_coding):
    assert mention(account, body, data_coding) == Status.RSTOPMENTION


def test_parts_with_udh_the_last_carries_the_mention():
    first = concat.udh(42, 2, 1) + b"Soldes -50% sur tout le magasin"
    last = concat.udh(42, 2, 2) + b" ce week-end"
    assert mention(promo(), first, esm_class=0x40) == first
    assert mention(promo(), last, esm_class=0x40) == last + MENTION.encode()
    last16 = concat.udh(4242, 2, 2, ref16=True) + " été".encode("utf-16-be")
    got = mention(promo(), last16, data_coding=8, esm_class=0x40)
    assert got == last16 + MENTION.encode("utf-16-be")


def test_a_last_part_the_mention_would_overflow_is_refused():
    header = concat.udh(42, 2, 2)
    fits = header + b"x" * (140 - len(header) - len(MENTION))
    assert mention(promo(), fits, esm_class=0x40) == fits + MENTION.encode()
    assert len(fits + MENTION.encode()) == 140
    too_long = header + "é".encode("utf-16-be") * 60  # 126 octets + 28 of the mention
    assert mention(promo(), too_long, data_coding=8, esm_class=0x40) == Status.RSTOPMENTION


def test_a_gsm_last_part_is_measured_in_septets():
    last = concat.udh(42, 2, 2) + b"x" * 130
    assert mention(promo(), last, esm_class=0x40) == last + MENTION.encode()


def test_a_malformed_udh_is_refused():
    assert mention(promo(), b"\x05\x00\x03", esm_class=0x40) == Status.RINVMSGLEN


# -- through Acceptor.submit ----------------------------------------------------------------


class HashingStore(FakeStore):
    """A FakeStore that keeps the hashes too, and answers with the ids the test gives."""

    def __init__(self):
        super().__init__()
        self.hashes = []

    def insert(self, rows, callback, hashes=None, parts=1, multi=True):
        super().insert(rows, callback)
        self.hashes.append(hashes)

    def answer(self, ids):
        _, callback = self.inserts.pop(0)
        callback(ids)


@pytest.fixture
def store():
    return HashingStore()


@pytest.fixture
def acceptor(store):
    clock = Clock()
    clock.advance(NOW)
    return Acceptor(store, clock, optout_key=KEY)


def test_a_refused_sender(acceptor, store):
    p = params(source_addr="ACME", source_addr_ton=5)
    assert submit(acceptor, p, who=who("36180")) == [(Status.RINVSRCADR, [], [])]
    p = params(source_addr="0612345678")
    assert submit(acceptor, p, who=who()) == [(Status.RINVSRCADR, [], [])]
    assert store.inserts == []
    assert acceptor.refused == {Status.RINVSRCADR: 2}


def test_the_stored_body_carries_the_mention(acceptor, store):
    p = params(source_addr="ACME", source_addr_ton=5, short_message=b"Soldes")
    assert submit(acceptor, p, who=promo()) == []
    ((rows, _),) = store.inserts
    assert rows[0][11] == b"Soldes" + MENTION.encode()
    p = params(source_addr="ACME", source_addr_ton=5, short_message=b"Soldes")
    assert submit(acceptor, p, who=promo("ACME")) == [(Status.RSTOPMENTION, [], [])]


def test_sar_parts_but_the_last_are_untouched(acceptor, store):
    p = params(source_addr="ACME", source_addr_ton=5, short_message=b"Soldes -50% sur")
    tlvs = {Tag.sar_msg_ref_num: 7, Tag.sar_total_segments: 2, Tag.sar_segment_seqnum: 1}
    assert submit(acceptor, p, tlvs, who=promo()) == []
    ((rows, _),) = store.inserts
    assert rows[0][11] == b"Soldes -50% sur"


def test_the_hashes_are_the_destinations_under_the_key(acceptor, store):
    dests = [(1, 1, "+33612345678"), (0, 0, "0712345678"), (0, 0, "12")]
    submit(acceptor, dests=dests)
    assert store.hashes == [
        [optouts.digest(KEY, "33612345678"), optouts.digest(KEY, "33712345678")]
    ]
    assert optouts.digest(KEY, "33612345678") != optouts.digest(b"other", "33612345678")


def test_no_key_no_hashes(store):
    Acceptor(store, Clock()).submit(account(), params(), {}, [DEST], lambda *a: None)
    assert store.hashes == [None]


def test_an_opted_out_submit_sm(acceptor, store):
    calls = submit(acceptor)
    store.answer([Status.ROPTEDOUT])
    assert calls == [(Status.ROPTEDOUT, [], [(DEST, Status.ROPTEDOUT)])]
    assert Status.ROPTEDOUT == 0x401
    assert acceptor.refused == {Status.ROPTEDOUT: 1}


def test_a_submit_multi_with_one_destination_opted_out(acceptor, store):
    stopped = (0, 0, "0712345678")
    dests = [DEST, stopped, (1, 1, "33698765432")]
    stored = []
    acceptor.on_stored = lambda: stored.append(True)
    calls = submit(acceptor, dests=dests)
    store.answer([5, Status.ROPTEDOUT, 6])
    assert calls == [(Status.ROK, [5, 6], [(stopped, 0x401)])]
    assert stored == [True]
    assert acceptor.refused == {Status.ROPTEDOUT: 1}


def test_refused_counts_by_status(acceptor, store):
    bad = (0, 0, "12")
    submit(acceptor, dests=[DEST, bad, (0, 0, "0712345678")])
    store.answer([Status.ROPTEDOUT, 9])
    submit(acceptor, dests=[DEST, bad])
    store.answer([Status.ROPTEDOUT])  # every stored row opted out, one bad: RINVDSTADR as a whole
    submit(acceptor, params(source_addr=""))
    assert acceptor.refused == {
        Status.RINVDSTADR: 2,
        Status.ROPTEDOUT: 2,
        Status.RINVSRCADR: 1,
    }
