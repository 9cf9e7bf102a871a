"""The accept path: every validation branch, the row handed to the store, the throughput cap.

The store is a fake that keeps the rows and their callback; the clock is a `task.Clock`.
"""

import sqlite3

import pytest
from sqlalchemy.exc import OperationalError
from twisted.internet.task import Clock

from smsc.accept import MAX_BODY, Acceptor
from smsc.protocol import smpptime
from smsc.protocol.constants import Command, Status, Tag
from smsc.protocol.pdu import decode_tlvs, encode_tlvs, zero_params
from smsc.protocol.throttle import TokenBucket
from smsc.store.accounts import DEFAULT_VALIDITY, Account
from smsc.store.faults import StoreUnavailable
from smsc.store.messages import COLUMNS

NOW = 1_767_225_600.0  # 2026-01-01 00:00:00 UTC
DEST = (1, 1, "33612345678")


class FakeStore:
    def __init__(self):
        self.inserts: list[tuple[list[tuple], object]] = []
        self.next_id = 1

    def insert(self, rows, callback, hashes=None, parts=1, multi=True):
        self.inserts.append((rows, callback))
        self.parts = parts

    def commit(self):
        """Answer the oldest insert as the writer would: the ids of its rows."""
        rows, callback = self.inserts.pop(0)
        ids = list(range(self.next_id, self.next_id + len(rows)))
        self.next_id += len(rows)
        callback(ids)
        return ids


def account(tps=0, account_id=7):
    return Account(account_id, f"acct{account_id}", "x", 10, tps, True, 0.0)


@pytest.fixture
def clock():
    clock = Clock()
    clock.advance(NOW)
    return clock


@pytest.fixture
def store():
    return FakeStore()


@pytest.fixture
def acceptor(store, clock):
    return Acceptor(store, clock)


def params(**changes):
    p = zero_params(Command.submit_sm)
    p.update(source_addr="36000", short_message=b"hello")
    p.update(changes)
    return p


def submit(acceptor, p=None, tlvs=None, dests=(DEST,), who=None):
    """Submit; returns the list that collects the calls of `done`."""
    calls = []
    acceptor.submit(
        who or account(), p or params(), tlvs or {}, list(dests), lambda *a: calls.append(a)
    )
    return calls


def accepted_row(acceptor, store, p=None, tlvs=None) -> dict:
    calls = submit(acceptor, p, tlvs)
    assert calls == [], calls  # not answered before the commit
    ((rows, _),) = store.inserts
    (row,) = rows
    assert len(row) == len(COLUMNS) - 2  # the writer adds id and multi_id
    store.commit()
    assert calls == [(Status.ROK, [1], [])]
    return dict(zip(COLUMNS[1:-1], row, strict=True))


# -- the row --------------------------------------------------------------------------------


def test_row_in_column_order(acceptor, store):
    p = params(
        service_type="CMT",
        source_addr="+33999000111",
        source_addr_ton=1,
        source_addr_npi=1,
        esm_class=0x03,
        protocol_id=0x7F,
        priority_flag=2,
        registered_delivery=1,
        data_coding=3,
        short_message=b"caf\xe9",
    )
    calls = submit(acceptor, p, dests=[(0, 1, "0612345678")])
    ((rows, _),) = store.inserts
    assert rows == [
        (
            7,  # account id
            "CMT",
            1,
            1,
            "33999000111",  # '+' dropped
            "33612345678",  # normalised
            0x03,
            0x7F,
            2,
            1,
            3,
            b"caf\xe9",
            b"",  # no other TLVs
            NOW,  # submitted_at
            NOW,  # due_at: now
            NOW + DEFAULT_VALIDITY,  # expires_at: the default validity
            "ACCEPTED",
            NOW,  # updated_at
            0,  # origin: a client
            None,  # callback: receipts by SMPP
        )
    ]
    assert calls == []
    assert store.commit() == [1]
    assert calls == [(Status.ROK, [1], [])]


def test_store_failure_is_a_system_error(acceptor, store):
    calls = submit(acceptor)
    ((_, callback),) = store.inserts
    callback(OSError("disk full"))
    assert calls == [(Status.RSYSERR, [], [])]


@pytest.mark.parametrize(
    "error",
    [
        sqlite3.OperationalError("database or disk is full"),  # the SQLite hot path's own
        OperationalError("INSERT …", {}, sqlite3.OperationalError("database is locked")),
        StoreUnavailable("connection refused"),  # the writer waits to connect again
    ],
    ids=["sqlite-full", "wrapped", "unavailable"],
)
def test_a_store_that_fails_for_a_while_says_try_later(acceptor, store, error):
    calls = submit(acceptor)
    ((_, callback),) = store.inserts
    callback(error)
    assert calls == [(Status.RMSGQFUL, [], [])]
    assert acceptor.refused[Status.RMSGQFUL] == 1


def test_closing_refuses_new_submits_and_answers_the_ones_handed_over(acceptor, store):
    before = submit(acceptor)
    acceptor.closing = True
    after = submit(acceptor)
    assert after == [(Status.RMSGQFUL, [], [])]
    assert len(store.inserts) == 1  # only the one before
    store.commit()
    assert before == [(Status.ROK, [1], [])]


# -- refusals -------------------------------------------------------------------------------

_UDHI = 0x40
_UDH = b"\x05\x00\x03\x2a\x02\x01"  # concatenation, ref 42, 2 parts, part 1


@pytest.mark.parametrize(
    ("changes", "tlvs", "status"),
    [
        ({"source_addr": ""}, {}, Status.RINVSRCADR),
        ({"source_addr": "ACME"}, {}, Status.RINVSRCADR),  # letters need TON 5
        ({"source_addr": "12345", "source_addr_ton": 5}, {}, Status.RINVSRCADR),
        ({"source_addr": "ACMEBRANDNAME", "source_addr_ton": 5}, {}, Status.RINVSRCADR),
        ({"esm_class": 0x04}, {}, Status.RINVESMCLASS),  # the receipt type, not a submit
        ({"esm_class": 0x20}, {}, Status.RINVESMCLASS),
        ({"esm_class": 0x18}, {}, Status.RINVESMCLASS),
        ({"priority_flag": 4}, {}, Status.RINVPRTFLG),
        ({"registered_delivery": 3}, {}, Status.RINVREGDLVFLG),  # receipt bits 11: reserved
        ({"registered_delivery": 0x21}, {}, Status.RINVREGDLVFLG),  # bits 5-7 reserved
        ({"registered_delivery": 0x80}, {}, Status.RINVREGDLVFLG),
        ({"replace_if_present_flag": 2}, {}, Status.RINVREPFLAG),
        ({"data_coding": 5}, {}, Status.RINVDCS),  # JIS: not carried
        ({"data_coding": 9}, {}, Status.RINVDCS),
        ({"data_coding": 0xC0}, {}, Status.RINVDCS),
        ({"short_message": b"caf\xe9"}, {}, Status.RINVDCS),  # not septets in GSM
        ({"short_message": b"\x80", "data_coding": 0xF1}, {}, Status.RINVDCS),  # class 1 GSM
        ({"data_coding": 8, "short_message": b"\x00h\x00"}, {}, Status.RINVMSGLEN),
        (
            {"data_coding": 8, "esm_class": _UDHI, "short_message": _UDH + b"\x00h\x00"},
            {},
            Status.RINVMSGLEN,  # the text after the UDH is odd
        ),
        ({}, {Tag.message_payload: b"hello again"}, Status.RINVMSGLEN),  # both
        ({"short_message": b""}, {Tag.message_payload: b"x" * (MAX_BODY + 1)}, Status.RINVMSGLEN),
        ({"esm_class": _UDHI, "short_message": b""}, {}, Status.RINVMSGLEN),
        ({"esm_class": _UDHI, "short_message": b"\x05\x00\x03\x2a"}, {}, Status.RINVMSGLEN),
        ({"esm_class": _UDHI, "short_message": b"\xff" + b"x" * 100}, {}, Status.RINVMSGLEN),
        ({"schedule_delivery_time": "tomorrow"}, {}, Status.RINVSCHED),
        ({"schedule_delivery_time": "261301000000000+"}, {}, Status.RINVSCHED),  # month 13
        ({"schedule_delivery_time": "000001000000000X"}, {}, Status.RINVSCHED),
        ({"validity_period": "soon"}, {}, Status.RINVEXPIRY),
        ({"validity_period": "260230000000000+"}, {}, Status.RINVEXPIRY),  # 30 February
        ({"validity_period": "251231000000000+"}, {}, Status.RINVEXPIRY),  # in the past
        ({"validity_period": "000000000000000R"}, {}, Status.RINVEXPIRY),  # now: no time
        (
            {"schedule_delivery_time": "000001000000000R", "validity_period": "000000120000000R"},
            {},
            Status.RINVEXPIRY,  # valid for 12 h, due in 1 day
        ),
        (
            {"schedule_delivery_time": "000000010000000R", "validity_period": "000000010000000R"},
            {},
            Status.RINVEXPIRY,  # expires the instant it is due
        ),
    ],
)
def test_refused(acceptor, store, changes, tlvs, status):
    assert submit(acceptor, params(**changes), tlvs) == [(status, [], [])]
    assert store.inserts == []


def test_the_first_failing_check_wins(acceptor):
    p = params(source_addr="", esm_class=0x04, priority_flag=9, data_coding=5)
    assert submit(acceptor, p) == [(Status.RINVSRCADR, [], [])]


@pytest.mark.parametrize(
    "dest", [(1, 1, "0612345678"), (2, 1, "+33612345678"), (0, 1, "06123"), (5, 0, "ACME")]
)
def test_bad_destination(acceptor, store, dest):
    assert submit(acceptor, dests=[dest]) == [(Status.RINVDSTADR, [], [(dest, Status.RINVDSTADR)])]
    assert store.inserts == []


# -- what passes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {"esm_class": 0x03},  # store-and-forward mode
        {"esm_class": 0x08},  # ESME delivery acknowledgement
        {"esm_class": 0x10},  # manual acknowledgement
        {"esm_class": 0x80},  # reply path
        {"esm_class": 0x43, "short_message": _UDH + b"part one"},
        {"esm_class": _UDHI, "short_message": _UDH},  # a UDH and nothing else
        {"priority_flag": 3},
        {"registered_delivery": 0x1D},  # receipt on success/failure, SME acks, intermediate
        {"registered_delivery": 2},
        {"replace_if_present_flag": 1},
        {"short_message": b"\x00 at home"},  # '@' is 0x00 in GSM: not a terminator
        {"short_message": b""},  # an empty text
        {"data_coding": 1},
        {"data_coding": 2, "short_message": b"\xff\x00\x80"},
        {"data_coding": 3, "short_message": b"caf\xe9"},
        {"data_coding": 4, "short_message": b"\xde\xad\xbe\xef"},
        {"data_coding": 8, "short_message": "é€".encode("utf-16-be")},
        {"data_coding": 8, "esm_class": _UDHI, "short_message": _UDH + "é".encode("utf-16-be")},
        {"data_coding": 0xF0, "short_message": b"flash"},
        {"data_coding": 0xF5, "short_message": b"\xff\xfe"},  # class 1, 8-bit data
        {"source_addr": "ACME", "source_addr_ton": 5},
        {"source_addr": "+33999000111", "source_addr_ton": 1},
    ],
)
def test_accepted(acceptor, store, changes):
    row = accepted_row(acceptor, store, params(**changes))
    if "short_message" in changes:
        assert row["body"] == changes["short_message"]


# -- times ----------------------------------------------------------------------------------


def test_schedule_in_the_past_is_due_now(acceptor, store):
    row = accepted_row(acceptor, store, params(schedule_delivery_time="250101000000000+"))
    assert row["due_at"] == NOW
    assert row["expires_at"] == NOW + DEFAULT_VALIDITY


def test_schedule_and_default_validity(acceptor, store):
    row = accepted_row(acceptor, store, params(schedule_delivery_time="000000020000000R"))
    assert row["submitted_at"] == NOW
    assert row["due_at"] == NOW + 2 * 3600
    assert row["expires_at"] == NOW + 2 * 3600 + DEFAULT_VALIDITY  # counted from due


def test_absolute_schedule_and_validity(acceptor, store):
    due, expires = NOW + 600, NOW + 7200
    p = params(
        schedule_delivery_time=smpptime.format_absolute(due, 4),  # UTC+1, Paris in winter
        validity_period=smpptime.format_absolute(expires, -20),
    )
    row = accepted_row(acceptor, store, p)
    assert (row["due_at"], row["expires_at"]) == (due, expires)


def test_validity_without_schedule(acceptor, store):
    row = accepted_row(acceptor, store, params(validity_period="000001000000000R"))
    assert (row["due_at"], row["expires_at"]) == (NOW, NOW + 86400)


def test_time_comes_from_the_injected_clock(acceptor, store, clock):
    clock.advance(42.5)
    row = accepted_row(acceptor, store)
    assert row["submitted_at"] == row["due_at"] == row["updated_at"] == NOW + 42.5


# -- TLVs -----------------------------------------------------------------------------------


def test_message_payload_is_the_body_and_other_tlvs_are_kept(acceptor, store):
    payload = "Café ".encode("utf-16-be") * 100  # 1000 octets: more than short_message holds
    tlvs = {Tag.message_payload: payload, Tag.user_message_reference: 7, 0x1400: b"vendor"}
    given = dict(tlvs)
    row = accepted_row(acceptor, store, params(short_message=b"", data_coding=8), tlvs)
    assert row["body"] == payload
    assert decode_tlvs(row["tlvs"]) == {Tag.user_message_reference: 7, 0x1400: b"vendor"}
    assert row["tlvs"] == encode_tlvs({Tag.user_message_reference: 7, 0x1400: b"vendor"})
    assert tlvs == given  # the caller's TLVs are not touched


def test_payload_of_the_largest_size(acceptor, store):
    payload = b"x" * MAX_BODY
    row = accepted_row(acceptor, store, params(short_message=b""), {Tag.message_payload: payload})
    assert row["body"] == payload
    assert row["tlvs"] == b""


def test_tlvs_without_payload(acceptor, store):
    row = accepted_row(acceptor, store, tlvs={Tag.sar_msg_ref_num: 300})
    assert row["body"] == b"hello"
    assert decode_tlvs(row["tlvs"]) == {Tag.sar_msg_ref_num: 300}


# -- submit_multi ---------------------------------------------------------------------------


def test_multi_partial_refusal(acceptor, store):
    bad1, bad2 = (0, 0, "12"), (2, 1, "+33612345678")
    dests = [(1, 1, "+33612345678"), bad1, (0, 0, "0712345678"), bad2]
    calls = submit(acceptor, dests=dests)
    ((rows, _),) = store.inserts
    assert [r[5] for r in rows] == ["33612345678", "33712345678"]
    assert rows[0][:5] == rows[1][:5] and rows[0][6:] == rows[1][6:]
    assert store.commit() == [1, 2]
    assert calls == [(Status.ROK, [1, 2], [(bad1, Status.RINVDSTADR), (bad2, Status.RINVDSTADR)])]


def test_multi_all_refused(acceptor, store):
    bad = [(0, 0, "1"), (0, 0, "x")]
    assert submit(acceptor, dests=bad) == [
        (Status.RINVDSTADR, [], [(d, Status.RINVDSTADR) for d in bad])
    ]
    assert store.inserts == []


def test_multi_without_destinations(acceptor, store):
    assert submit(acceptor, dests=[]) == [(Status.RINVDSTADR, [], [])]
    assert store.inserts == []


def test_multi_common_refusal_refuses_all(acceptor, store):
    p = params(priority_flag=7)
    assert submit(acceptor, p, dests=[DEST, (0, 0, "0712345678")]) == [(Status.RINVPRTFLG, [], [])]
    assert store.inserts == []


# -- throughput cap -------------------------------------------------------------------------


def _statuses(acceptor, n, who, dests=(DEST,)):
    """The statuses of n submits at the same instant (ROK: handed to the store)."""
    out = []
    for _ in range(n):
        calls = submit(acceptor, dests=dests, who=who)
        out.append(calls[0][0] if calls else Status.ROK)
    return out


def test_tps_cap_and_refill(acceptor, store, clock):
    who = account(tps=2)
    ok, throttled = Status.ROK, Status.RTHROTTLED
    assert _statuses(acceptor, 3, who) == [ok, ok, throttled]  # a burst of one second
    clock.advance(0.5)
    assert _statuses(acceptor, 2, who) == [ok, throttled]  # 0.5 s buys one
    clock.advance(3600)
    assert _statuses(acceptor, 3, who) == [ok, ok, throttled]  # idle time does not pile up
    assert len(store.inserts) == 5


def test_no_cap_with_tps_zero(acceptor, store):
    assert set(_statuses(acceptor, 500, account(tps=0))) == {Status.ROK}


def test_cap_is_per_account(acceptor):
    a, b = account(tps=1, account_id=1), account(tps=1, account_id=2)
    assert _statuses(acceptor, 2, a) == [Status.ROK, Status.RTHROTTLED]
    assert _statuses(acceptor, 2, b) == [Status.ROK, Status.RTHROTTLED]


def test_new_tps_applies_at_once(acceptor, clock):
    assert _statuses(acceptor, 2, account(tps=1)) == [Status.ROK, Status.RTHROTTLED]
    assert _statuses(acceptor, 4, account(tps=3)) == [Status.ROK] * 3 + [Status.RTHROTTLED]


def test_multi_counts_every_destination(acceptor, clock):
    who = account(tps=4)
    three = [DEST] * 3
    assert _statuses(acceptor, 1, who, three) == [Status.ROK]
    assert _statuses(acceptor, 1, who, three) == [Status.RTHROTTLED]  # 1 token left
    clock.advance(0.5)
    assert _statuses(acceptor, 1, who, three) == [Status.ROK]


def test_multi_larger_than_the_cap_waits_for_a_full_bucket(acceptor, clock):
    """More destinations than tokens per second: slowed down, never refused for ever."""
    who = account(tps=2)
    assert _statuses(acceptor, 1, who) == [Status.ROK]
    assert _statuses(acceptor, 1, who, [DEST] * 5) == [Status.RTHROTTLED]
    clock.advance(0.5)
    assert _statuses(acceptor, 1, who, [DEST] * 5) == [Status.ROK]  # bucket full: 2 - 5
    clock.advance(1)
    assert _statuses(acceptor, 1, who) == [Status.RTHROTTLED]  # -3 + 2: still in debt
    clock.advance(1)
    assert _statuses(acceptor, 1, who) == [Status.ROK]  # -1 + 2


def test_throttled_before_validation(acceptor, store):
    who = account(tps=1)
    assert submit(acceptor, params(priority_flag=9), who=who) == [(Status.RINVPRTFLG, [], [])]
    assert submit(acceptor, who=who) == [(Status.RTHROTTLED, [], [])]
    assert store.inserts == []


def test_bucket_survives_a_clock_stepping_back():
    bucket = TokenBucket(2, 100.0)
    assert bucket.take(2, 100.0)
    assert not bucket.take(1, 40.0)  # the wall clock went back a minute
    assert bucket.take(1, 40.5)  # and refills from there, not from a minute of debt
