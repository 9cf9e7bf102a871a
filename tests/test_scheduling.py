"""Scheduled delivery, validity and sending hours, on injected clocks (`task.Clock`, no
sleeping) and a real SQLite store: the due and expiry times set at accept (absolute times at
any UTC offset, relative times, the account's validity bounds, promotional sending hours with
French holidays and both daylight-saving changes of 2026); claims that take nothing early and
share fairly between accounts; expiry in every state a message can wait in; scheduled messages
across a restart; and the claim's query plan and latency at 1,000,000 queued rows.

Numbers are fictional (33600000001…)."""

import math
import re
import sqlite3
import statistics
import time
from datetime import UTC, datetime

import pytest
from carriers import FakeCarrier
from sqlalchemy import event, func, insert, select, update
from stores import SyncStore
from twisted.internet.task import Clock

from smsc import hours
from smsc.accept import Acceptor
from smsc.config import QueueConfig
from smsc.inbound import receipts
from smsc.inbound.handler import client_receipt
from smsc.protocol import smpptime
from smsc.protocol.constants import Command, Status
from smsc.protocol.pdu import zero_params
from smsc.routing.dispatcher import Dispatcher
from smsc.routing.router import Router
from smsc.store import db, messages, nodes, queue, routing, schema
from smsc.store.accounts import Account
from smsc.store.db import NODE, writing
from smsc.store.messages import COLUMNS, State
from smsc.store.queue import Settle

HOUR, DAY = 3600, 86400
NOW = 1_767_225_600.0  # 2026-01-01 00:00:00 UTC, a Thursday (New Year's Day)
DEST = (1, 1, "33600000002")
ORANGE = "33660000001"  # orange's prefix
OTHER = "33600000003"  # the default route


def utc(*args) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()


def account(account_id=7, **values) -> Account:
    return Account(account_id, f"acct{account_id}", "x", 10, 0, True, 0.0, **values)


# -- accept: the due and expiry times -----------------------------------------------------------


class RowStore:
    """What the acceptor hands the store, committed at once with ids from 1."""

    def __init__(self):
        self.rows: list[dict] = []

    def insert(self, rows, callback, hashes=None, parts=1, multi=True):
        first = len(self.rows) + 1
        self.rows += [dict(zip(COLUMNS[1:-1], row, strict=True)) for row in rows]
        callback(list(range(first, first + len(rows))))


def accept(at: float, who: Account | None = None, **changes) -> tuple[int, dict | None]:
    """Submit one message at `at`: (status, the stored row or None)."""
    clock = Clock()
    clock.advance(at)
    store = RowStore()
    p = zero_params(Command.submit_sm)
    p.update(source_addr="36000", short_message=b"hello")
    p.update(changes)
    calls = []
    Acceptor(store, clock).submit(who or account(), p, {}, [DEST], lambda *a: calls.append(a))
    ((status, ids, _),) = calls
    return status, (store.rows[0] if ids else None)


def times(at: float, who: Account | None = None, **changes) -> tuple[float, float]:
    status, row = accept(at, who, **changes)
    assert status == Status.ROK, Status(status).name
    return row["due_at"], row["expires_at"]


@pytest.mark.parametrize(
    ("schedule", "due"),
    [
        ("260101003000000+", NOW + 1800),  # UTC
        ("260101013000004+", NOW + 1800),  # UTC+1 (Paris in winter): 01:30 local
        ("260101023000008+", NOW + 1800),  # UTC+2
        ("260101060000022+", NOW + 1800),  # UTC+5:30: a half-hour offset
        ("260101123000048+", NOW + 1800),  # UTC+12
        ("251231213000012-", NOW + 1800),  # UTC-3: still 2025 locally
        ("251231123000048-", NOW + 1800),  # UTC-12
        ("260101003000500+", NOW + 1800.5),  # tenths of a second
        ("260102003000004-", NOW + DAY + 1800 + HOUR),  # UTC-1: 01:30 UTC the next day
    ],
)
def test_absolute_schedule_at_any_offset_is_due_exactly(schedule, due):
    got, expires = times(NOW, schedule_delivery_time=schedule)
    assert got == due
    assert expires == due + account().default_validity  # the default counts from the due time


@pytest.mark.parametrize("quarters", [-48, -20, -1, 0, 1, 4, 8, 22, 48])
def test_absolute_schedule_written_at_each_offset_is_the_same_instant(quarters):
    due = NOW + 2 * HOUR + 0.3
    schedule = smpptime.format_absolute(due, quarters)
    assert times(NOW, schedule_delivery_time=schedule)[0] == due


@pytest.mark.parametrize(
    ("schedule", "due"),
    [
        ("000000000003000R", NOW + 3),
        ("000000013000000R", NOW + 90 * 60),
        ("000001000000000R", NOW + DAY),
        ("000002030405000R", NOW + 2 * DAY + 3 * HOUR + 4 * 60 + 5),
        ("000100000000000R", utc(2026, 2, 1)),  # a calendar month: January has 31 days
        ("010000000000000R", utc(2027, 1, 1)),
        ("000000000003123R", NOW + 3),  # the tenths and offset digits of R are ignored
    ],
)
def test_relative_schedule_counts_from_the_submission(schedule, due):
    at = NOW + 12.5
    got, _ = times(at, schedule_delivery_time=schedule)
    assert got == due + 12.5


@pytest.mark.parametrize(
    "schedule",
    ["250101000000000+", "260101000000000+", "251231235959904+", "000000000000000R"],
)
def test_a_schedule_in_the_past_or_now_is_due_now(schedule):
    assert times(NOW, schedule_delivery_time=schedule)[0] == NOW


def test_no_schedule_is_due_now():
    assert times(NOW + 7.25)[0] == NOW + 7.25


@pytest.mark.parametrize("schedule", ["26010100300000+", "260101003000049+", "261301000000000+"])
def test_a_bad_schedule_is_rinvsched(schedule):
    assert accept(NOW, schedule_delivery_time=schedule) == (Status.RINVSCHED, None)


def test_default_validity_is_the_accounts_counted_from_the_due_time():
    who = account(default_validity=600, max_validity=DAY)
    assert times(NOW, who) == (NOW, NOW + 600)
    due, expires = times(NOW, who, schedule_delivery_time="000000020000000R")
    assert (due, expires) == (NOW + 2 * HOUR, NOW + 2 * HOUR + 600)


@pytest.mark.parametrize(
    "validity",
    [
        "000007000000000R",  # 7 days from now
        smpptime.format_absolute(NOW + 30 * DAY, 4),
    ],
)
def test_validity_is_capped_at_the_accounts_maximum_from_the_due_time(validity):
    who = account(default_validity=HOUR, max_validity=DAY)
    assert times(NOW, who, validity_period=validity) == (NOW, NOW + DAY)
    due, expires = times(
        NOW, who, schedule_delivery_time="000001000000000R", validity_period=validity
    )
    assert (due, expires) == (NOW + DAY, NOW + 2 * DAY)


def test_a_validity_within_the_maximum_is_kept():
    who = account(default_validity=HOUR, max_validity=DAY)
    validity = smpptime.format_absolute(NOW + 5 * HOUR + 0.7, -20)
    due, expires = times(
        NOW, who, schedule_delivery_time="000000010000000R", validity_period=validity
    )
    assert (due, expires) == (NOW + HOUR, NOW + 5 * HOUR + 0.7)
    assert times(NOW, who, validity_period="000000003000000R") == (NOW, NOW + 1800)


@pytest.mark.parametrize(
    ("schedule", "validity"),
    [
        ("000000020000000R", "000000010000000R"),  # expires an hour before it is due
        ("000000020000000R", "000000020000000R"),  # expires when it is due
        (smpptime.format_absolute(NOW + HOUR, 8), smpptime.format_absolute(NOW + 1800, -8)),
        ("", "250101000000000+"),  # a validity in the past
        ("", "260101000000000+"),  # a validity that is now
    ],
)
def test_a_validity_before_the_schedule_is_rinvexpiry(schedule, validity):
    status, row = accept(NOW, schedule_delivery_time=schedule, validity_period=validity)
    assert (status, row) == (Status.RINVEXPIRY, None)


def test_a_bad_validity_is_rinvexpiry():
    assert accept(NOW, validity_period="000000000000000X") == (Status.RINVEXPIRY, None)


# -- accept: sending hours of promotional accounts ----------------------------------------------

MARKETING = account(marketing=True)  # the charter: mon-sat 08:00-21:30 Europe/Paris, fr holidays


@pytest.mark.parametrize(
    ("submitted", "due"),
    [
        # Open (CET = UTC+1): due at once.
        (utc(2026, 1, 6, 10, 0), utc(2026, 1, 6, 10, 0)),  # Tuesday 11:00 Paris
        (utc(2026, 1, 5, 7, 0), utc(2026, 1, 5, 7, 0)),  # Monday 08:00 sharp: opens
        (utc(2026, 1, 5, 20, 29, 59), utc(2026, 1, 5, 20, 29, 59)),  # Monday 21:29:59
        # Closed: due when the window next opens.
        (utc(2026, 1, 5, 20, 30), utc(2026, 1, 6, 7, 0)),  # Monday 21:30 sharp: closed
        (utc(2026, 1, 6, 5, 0), utc(2026, 1, 6, 7, 0)),  # Tuesday 06:00 → 08:00
        (utc(2026, 1, 4, 12, 0), utc(2026, 1, 5, 7, 0)),  # Sunday noon → Monday 08:00
        (utc(2026, 1, 3, 21, 0), utc(2026, 1, 5, 7, 0)),  # Saturday 22:00 → Monday 08:00
        (NOW, utc(2026, 1, 2, 7, 0)),  # New Year's Day (a holiday) → Friday 08:00
        # Ascension Thursday 2026-05-14 (CEST = UTC+2): the Friday at 08:00.
        (utc(2026, 5, 14, 8, 0), utc(2026, 5, 15, 6, 0)),
        (utc(2026, 5, 13, 20, 0), utc(2026, 5, 15, 6, 0)),  # Wednesday 22:00 → Friday
        # Easter Monday 2026-04-06, Whit Monday 2026-05-25, May 1st (a Friday).
        (utc(2026, 4, 5, 12, 0), utc(2026, 4, 7, 6, 0)),
        (utc(2026, 5, 24, 12, 0), utc(2026, 5, 26, 6, 0)),
        (utc(2026, 4, 30, 20, 0), utc(2026, 5, 2, 6, 0)),
        # Spring forward, Sunday 2026-03-29 02:00 CET → 03:00 CEST.
        (utc(2026, 3, 28, 6, 30), utc(2026, 3, 28, 7, 0)),  # Saturday 07:30 CET → 08:00 CET
        (utc(2026, 3, 28, 20, 45), utc(2026, 3, 30, 6, 0)),  # Saturday 21:45 CET → Mon 08:00 CEST
        (utc(2026, 3, 29, 1, 30), utc(2026, 3, 30, 6, 0)),  # Sunday 03:30 CEST, just after
        (utc(2026, 3, 30, 6, 0), utc(2026, 3, 30, 6, 0)),  # Monday 08:00 CEST: open
        (utc(2026, 3, 30, 5, 30), utc(2026, 3, 30, 6, 0)),  # 07:30 CEST, not 06:30 CET
        # Fall back, Sunday 2026-10-25 03:00 CEST → 02:00 CET.
        (utc(2026, 10, 24, 20, 0), utc(2026, 10, 26, 7, 0)),  # Saturday 22:00 CEST → Mon CET
        (utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 7, 0)),  # in the fold (02:30 the first)
        (utc(2026, 10, 25, 1, 30), utc(2026, 10, 26, 7, 0)),  # in the fold (02:30 again)
        (utc(2026, 10, 26, 6, 30), utc(2026, 10, 26, 7, 0)),  # 07:30 CET, not 08:30 CEST
        (utc(2026, 10, 24, 19, 29), utc(2026, 10, 24, 19, 29)),  # Saturday 21:29 CEST: open
    ],
)
def test_a_promotional_message_is_due_when_its_sending_hours_open(submitted, due):
    got, expires = times(submitted, MARKETING)
    assert got == due
    # Its validity still counts from when it was asked to go (the submission here).
    assert expires == submitted + MARKETING.default_validity


def test_a_promotional_schedule_into_closed_hours_waits_for_them():
    saturday_23h = smpptime.format_absolute(utc(2026, 1, 3, 22, 0), 4)  # Paris time
    due, expires = times(NOW, MARKETING, schedule_delivery_time=saturday_23h)
    assert due == utc(2026, 1, 5, 7, 0)
    assert expires == utc(2026, 1, 3, 22, 0) + MARKETING.default_validity
    open_friday = smpptime.format_absolute(utc(2026, 1, 2, 9, 0), 0)
    assert times(NOW, MARKETING, schedule_delivery_time=open_friday)[0] == utc(2026, 1, 2, 9, 0)


@pytest.mark.parametrize(
    ("submitted", "validity", "expires"),
    [
        (utc(2026, 1, 4, 12, 0), "000000060000000R", utc(2026, 1, 4, 18, 0)),  # Sunday + 6 h
        (utc(2026, 5, 13, 20, 0), "000001000000000R", utc(2026, 5, 14, 20, 0)),  # the holiday
        (utc(2026, 3, 28, 20, 45), "000001000000000R", utc(2026, 3, 29, 20, 45)),  # DST Sunday
    ],
)
def test_a_promotional_message_whose_validity_ends_before_its_hours_is_due_at_its_expiry(
    submitted, validity, expires
):
    """Due at its expiry: the claim that finds it then expires it (see below), it never goes
    out late."""
    assert times(submitted, MARKETING, validity_period=validity) == (expires, expires)


def test_promotional_hours_never_open():
    who = account(marketing=True, sending_hours="never", default_validity=HOUR)
    assert times(utc(2026, 1, 6, 10, 0), who) == (utc(2026, 1, 6, 11, 0),) * 2


def test_a_transactional_account_is_never_held():
    for spec in ("never", "", "sun 03:00-04:00"):
        who = account(marketing=False, sending_hours=spec)
        sunday = utc(2026, 1, 4, 12, 0)
        assert times(sunday, who) == (sunday, sunday + who.default_validity)
        assert times(NOW, who)[0] == NOW  # a holiday too


def test_promotional_hours_of_the_account_its_zone_and_holidays():
    who = account(
        marketing=True,
        sending_hours="mon-fri 09:00-12:00,14:00-18:00",
        timezone="America/Martinique",  # UTC-4, no DST
        holidays="none",
        default_validity=4 * DAY,
    )
    assert times(NOW, who)[0] == utc(2026, 1, 1, 13, 0)  # Thursday 09:00, not a holiday here
    assert times(utc(2026, 1, 1, 16, 30), who)[0] == utc(2026, 1, 1, 18, 0)  # 12:30 → 14:00
    assert times(utc(2026, 1, 2, 22, 0), who)[0] == utc(2026, 1, 5, 13, 0)  # Fri 18:00 → Mon


# -- the store, the queue and the dispatcher --------------------------------------------------


def add_account(conn, system_id: str, **values) -> int:
    row = dict(
        system_id=system_id, password_hash="-", max_binds=1, tps=0, enabled=True, created_at=NOW
    )
    return conn.execute(insert(schema.accounts).values(**row, **values)).inserted_primary_key[0]


def row(message_id: int, account_id: int, **values) -> tuple:
    r = dict(
        id=message_id,
        account_id=account_id,
        service_type="",
        source_ton=1,
        source_npi=1,
        source="33600000001",
        destination=ORANGE,
        esm_class=0,
        protocol_id=0,
        priority=0,
        registered_delivery=1,
        data_coding=0,
        body=b"hello",
        tlvs=b"",
        submitted_at=NOW - 60,
        due_at=NOW,
        expires_at=NOW + 2 * DAY,
        state=State.ACCEPTED.value,
        updated_at=NOW - 60,
        origin=0,
        multi_id=None,
    )
    r.update(values)
    return tuple(r.get(c) for c in COLUMNS)


def add(engine, *rows: tuple) -> None:
    with writing(engine) as conn:
        messages.insert_rows(conn, list(rows))


def settle(now: float) -> Settle:
    return Settle(now, HOUR, client_receipt)


def claim(engine, now: float, limit: int = 100, first: int = 0) -> list[int]:
    with writing(engine) as conn:
        due = queue.claim(conn, now, limit, routing.ported, settle(now), first)
    return [d.id for d in due]


def state(engine, message_id: int) -> tuple[str, float, float]:
    m = schema.messages
    with engine.connect() as conn:
        query = select(m.c.state, m.c.due_at, m.c.expires_at).where(m.c.id == message_id)
        return tuple(conn.execute(query).one())


def outbox(engine) -> list[tuple[int, bytes]]:
    o = schema.outbox
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(o.c.message_id, o.c.body).order_by(o.c.id))]


def expired_receipts(engine) -> list[int]:
    return [m for m, body in outbox(engine) if b" stat:EXPIRED " in body]


@pytest.fixture
def accts(engine):
    """Three accounts, a < b < c by id."""
    with writing(engine) as conn:
        return [add_account(conn, name) for name in ("a", "b", "c")]


# -- claims: nothing early ----------------------------------------------------------------------


def test_nothing_is_claimed_before_its_due_time(engine, accts):
    a, b, _ = accts
    t = NOW + DAY
    add(
        engine,
        row(1, a, due_at=t, expires_at=t + HOUR),
        row(2, b, due_at=t + 0.5, expires_at=t + HOUR),
        row(3, a, due_at=t + HOUR - 1, expires_at=t + HOUR),
    )
    assert claim(engine, NOW) == []
    assert claim(engine, t - 0.001) == []
    assert claim(engine, t) == [1]
    assert claim(engine, t + 0.499) == []
    assert claim(engine, t + 0.5) == [2]
    assert claim(engine, t + HOUR - 1.001) == []
    assert claim(engine, t + HOUR - 1) == [3]
    assert [state(engine, i)[0] for i in (1, 2, 3)] == ["SENDING"] * 3


# -- claims: fairness -------------------------------------------------------------------------


@pytest.fixture
def campaign(engine, accts):
    """Account a's 5,000-message campaign due at T, then account b's one message due at T,
    inserted after it (a higher id)."""
    a, b, _ = accts
    t = NOW + HOUR
    add(engine, *(row(i, a, due_at=t, expires_at=t + DAY) for i in range(1, 5001)))
    add(engine, row(5001, b, due_at=t, expires_at=t + DAY))
    return t


@pytest.mark.parametrize("limit", [2, 3, 10, 500])
def test_a_single_message_is_not_held_back_by_a_campaign_due_at_the_same_time(
    engine, campaign, limit
):
    got = claim(engine, campaign, limit)
    assert len(got) == limit
    assert 5001 in got
    assert got[:2] == [1, 5001]  # interleaved: a's oldest, then b's
    assert got[2:] == list(range(2, limit))  # what b left of its share goes to a, in order


@pytest.mark.parametrize("first", [0, 1, 2, 3, 4])
def test_fairness_holds_whichever_account_is_served_first(engine, campaign, accts, first):
    got = claim(engine, campaign, 2, first=first)
    assert sorted(got) == [1, 5001]


def test_a_claim_of_one_alternates_between_the_accounts(engine, campaign, accts):
    """The dispatcher moves `first` past the last account served (see the dispatcher test)."""
    a, b, _ = accts
    assert claim(engine, campaign, 1, first=a) == [1]
    assert claim(engine, campaign, 1, first=a + 1) == [5001]
    assert claim(engine, campaign, 1, first=b + 1) == [2]  # round the end, back to a


def test_each_account_gets_an_equal_share_and_leftovers_go_to_the_others(engine, accts):
    a, b, c = accts
    t = NOW + HOUR
    add(engine, *(row(100 + i, a, due_at=t + i) for i in range(20)))  # a: 100..119
    add(engine, *(row(200 + i, b, due_at=t) for i in range(2)))  # b: 200, 201
    add(engine, *(row(300 + i, c, due_at=t + i) for i in range(20)))  # c: 300..319
    add(engine, row(400, b, due_at=t + DAY))  # b's next, not due: not taken
    got = claim(engine, t + 100, 12)
    # Shares of 4: b has only 2, its 2 left go to a and c (1 each); interleaved.
    assert got == [100, 200, 300, 101, 201, 301, 102, 302, 103, 303, 104, 304]
    # The next claim: a and c only (b has nothing due), 6 each, oldest first.
    got = claim(engine, t + 100, 12)
    assert sorted(got) == [*range(105, 111), *range(305, 311)]
    assert got[:4] == [105, 305, 106, 306]


def test_over_successive_claims_every_account_gets_its_share(engine, accts):
    a, b, c = accts
    t = NOW + HOUR
    for k, acct in enumerate(accts):
        add(engine, *(row(1000 * (k + 1) + i, acct, due_at=t) for i in range(300)))
    per_account = {a: 0, b: 0, c: 0}
    owner = {1: a, 2: b, 3: c}
    for _ in range(10):
        got = claim(engine, t, 30)
        assert len(got) == 30
        counts = {acct: 0 for acct in accts}
        for message_id in got:
            counts[owner[message_id // 1000]] += 1
        assert counts == {a: 10, b: 10, c: 10}
        for acct, n in counts.items():
            per_account[acct] += n
    assert per_account == {a: 100, b: 100, c: 100}


def test_successive_small_claims_take_the_accounts_in_turn(engine, accts):
    """Claims smaller than the number of accounts with messages due (a carrier with a second's
    room of 2, three accounts): the dispatcher starts each claim after the account it served
    last, so that the lowest account ids do not take every claim."""
    a, b, c = accts
    t = NOW
    for k, acct in enumerate(accts):
        add(engine, *(row(1000 * (k + 1) + i, acct, due_at=t) for i in range(10)))
    h = Harness(engine, [FakeCarrier("orange", room=2, prefixes=["3366"])])
    h.start()
    served = []
    for _ in range(6):
        queued = h.carriers["orange"].take_queue()
        served.append([p.message.due.id // 1000 for p in queued])
        h.dispatcher.room_changed()
        h.run()
    assert served == [[1, 2], [3, 1], [2, 3], [1, 2], [3, 1], [2, 3]]


# -- expiry ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("registered_delivery", "receipt"), [(1, True), (2, True), (0, False)])
def test_a_message_found_expired_at_claim_ends_expired_with_a_receipt_when_asked(
    engine, accts, registered_delivery, receipt
):
    a = accts[0]
    add(
        engine,
        row(1, a, due_at=NOW, expires_at=NOW + 10, registered_delivery=registered_delivery),
        row(2, a, due_at=NOW, expires_at=NOW + 100),
    )
    assert claim(engine, NOW + 10) == [2]  # at its expiry: too late
    assert state(engine, 1)[0] == "EXPIRED"
    assert expired_receipts(engine) == ([1] if receipt else [])
    if receipt:
        ((_, body),) = outbox(engine)
        assert body.startswith(b"id:1 sub:001 dlvrd:000 ")
    assert claim(engine, NOW + 1000) == []  # never claimed again


def test_put_back_never_pushes_due_beyond_expiry(engine, accts):
    a = accts[0]
    add(engine, row(1, a, expires_at=NOW + 60), row(2, a, expires_at=NOW + 60))
    assert claim(engine, NOW) == [1, 2]
    with writing(engine) as conn:
        queue.put_back(conn, [1], NOW + 59, NOW)
        queue.put_back(conn, [2], NOW + 600, NOW)
    assert state(engine, 1) == ("ACCEPTED", NOW + 59, NOW + 60)
    assert state(engine, 2) == ("ACCEPTED", NOW + 60, NOW + 60)
    assert claim(engine, NOW + 59) == [1]
    with writing(engine) as conn:
        queue.put_back(conn, [1], math.inf, NOW + 59)  # hours that never open
    assert state(engine, 1) == ("ACCEPTED", NOW + 60, NOW + 60)


def test_scheduled_messages_due_then_expired_in_a_backlog(engine, accts):
    """Waiting for its time, then for its turn behind older messages: it expires when a claim
    reaches it after its expiry, and is never sent."""
    a = accts[0]
    add(engine, *(row(i, a, due_at=NOW + i) for i in range(1, 6)))  # older ones first
    add(engine, row(6, a, due_at=NOW + 100, expires_at=NOW + 200))
    add(engine, row(7, a, due_at=NOW + 150, expires_at=NOW + 3 * HOUR))
    assert claim(engine, NOW + 50) == [1, 2, 3, 4, 5]
    assert state(engine, 6)[0] == "ACCEPTED"
    assert claim(engine, NOW + 300) == [7]
    assert state(engine, 6)[0] == "EXPIRED"
    assert expired_receipts(engine) == [6]


def test_expire_due_takes_only_expired_waiting_messages(engine, accts):
    a, b, _ = accts
    add(
        engine,
        row(1, a, due_at=NOW, expires_at=NOW + 10),
        row(2, b, due_at=NOW + 5, expires_at=NOW + 10, registered_delivery=0),
        row(3, a, due_at=NOW, expires_at=NOW + 100),
        row(4, b, due_at=NOW + 50, expires_at=NOW + 100),
        row(5, a, due_at=NOW, expires_at=NOW + 5, state=State.ENROUTE.value),
    )
    with writing(engine) as conn:
        assert queue.expire_due(conn, NOW + 9, 100, settle(NOW + 9)) == 0
        assert queue.expire_due(conn, NOW + 10, 1, settle(NOW + 10)) == 1
        assert queue.expire_due(conn, NOW + 10, 100, settle(NOW + 10)) == 1
    assert [state(engine, i)[0] for i in range(1, 6)] == [
        "EXPIRED", "EXPIRED", "ACCEPTED", "ACCEPTED", "ENROUTE"
    ]  # fmt: skip
    assert expired_receipts(engine) == [1]


# The dispatcher, on a Clock, with fake carriers.


class Harness:
    def __init__(self, engine, carriers, default=(), held=None, clock=None, **config):
        self.engine = engine
        self.clock = clock or Clock()
        if clock is None:
            self.clock.advance(NOW)
        self.store = SyncStore(engine)
        self.carriers = {c.name: c for c in carriers}
        router = Router([c.config for c in carriers], list(default))
        extra = {} if held is None else {"held": held}
        self.dispatcher = Dispatcher(
            self.store,
            self.clock,
            list(carriers),
            router,
            QueueConfig(**config),
            lambda: settle(self.clock.seconds()),
            routing.ported,
            receipts.normalise,
            **extra,
        )

    def start(self):
        self.dispatcher.start()
        self.run()

    def run(self, seconds: float = 0.0, step: float = 0.25):
        """Advance the clock by `seconds`, in steps, so that timers fire on the way."""
        self.until(self.clock.seconds() + seconds, step)

    def until(self, target: float, step: float = 0.25):
        while self.clock.seconds() + step < target:
            self.clock.advance(step)
        self.clock.advance(max(0.0, target - self.clock.seconds()))

    def sent(self, carrier="orange") -> list[int]:
        return [p.message.due.id for p in self.carriers[carrier].queue]


def test_expiry_while_the_carrier_of_its_route_is_down(engine, accts):
    """Its carrier is down (another is up, so claims go on): put back for retry_delay, which
    ends after its validity, so due at its expiry, and expired by the claim that finds it."""
    a = accts[0]
    add(engine, row(1, a, expires_at=NOW + 25), row(2, a, expires_at=NOW + HOUR))
    h = Harness(
        engine,
        [FakeCarrier("orange", bound=False, prefixes=["3366"]), FakeCarrier("sfr")],
        retry_delay=10.0,
    )
    h.start()
    assert state(engine, 1) == ("ACCEPTED", NOW + 10, NOW + 25)
    h.run(10)
    assert state(engine, 1) == ("ACCEPTED", NOW + 20, NOW + 25)
    h.run(10)
    assert state(engine, 1) == ("ACCEPTED", NOW + 25, NOW + 25)  # not NOW + 30
    assert expired_receipts(engine) == []
    h.run(4.9)
    assert state(engine, 1)[0] == "ACCEPTED"
    h.run(0.5)
    assert state(engine, 1)[0] == "EXPIRED"
    assert expired_receipts(engine) == [1]
    assert state(engine, 2)[0] == "ACCEPTED"  # still waiting for its carrier
    assert h.sent("sfr") == []


def test_expiry_while_every_carrier_is_down(engine, accts):
    """No carrier bound, so nothing is claimed; the dispatcher still expires what passes its
    validity meanwhile, every retry_delay, and the clients get their receipts."""
    a, b, _ = accts
    add(
        engine,
        row(1, a, expires_at=NOW + 15),
        row(2, b, due_at=NOW + 5, expires_at=NOW + 25, registered_delivery=0),
        row(3, a, expires_at=NOW + HOUR),
    )
    h = Harness(engine, [FakeCarrier("orange", bound=False, prefixes=["3366"])], retry_delay=10.0)
    h.start()
    h.run(9.9)
    assert "claim" not in h.store.names() and "expire_due" not in h.store.names()
    h.run(10)  # looked at NOW + 10: nothing expired yet
    assert [state(engine, i)[0] for i in (1, 2, 3)] == ["ACCEPTED"] * 3
    h.run(10)  # looked at NOW + 20
    assert [state(engine, i)[0] for i in (1, 2, 3)] == ["EXPIRED", "ACCEPTED", "ACCEPTED"]
    h.run(10)  # NOW + 30
    assert [state(engine, i)[0] for i in (1, 2, 3)] == ["EXPIRED", "EXPIRED", "ACCEPTED"]
    assert expired_receipts(engine) == [1]  # 2 asked for none
    assert "claim" not in h.store.names()
    assert h.store.names().count("expire_due") == 3  # once every retry_delay, not every idle look
    # The carrier binds: the message still valid goes.
    h.carriers["orange"].bound = True
    h.dispatcher.room_changed()
    h.run()
    assert h.sent() == [3]


def test_expiry_while_waiting_for_a_retry_after_a_lost_part(engine, accts):
    a = accts[0]
    add(engine, row(1, a, expires_at=NOW + 5), row(2, a, expires_at=NOW + HOUR))
    h = Harness(engine, [FakeCarrier("orange", prefixes=["3366"])])
    h.start()
    assert h.sent() == [1, 2]
    h.run(6)  # no answer came for either: both are lost, after the first's validity
    h.dispatcher.carrier_down(h.carriers["orange"])
    h.run()
    assert state(engine, 1)[0] == "EXPIRED"  # put back due at its expiry, then expired
    assert expired_receipts(engine) == [1]
    assert state(engine, 2)[0] == "SENDING"
    assert h.sent() == [2]  # sent again, alone


def charter_held(who: Account):
    """The `held` the switch gives its dispatcher (smsc.app), for one account."""

    def held(account_id, now):
        if account_id != who.id or not who.marketing:
            return None
        try:
            opens = hours.of(who).next_open(now)
        except ValueError:
            return math.inf
        return None if opens <= now else opens

    return held


def test_held_by_sending_hours_then_sent_when_they_open_or_expired_before(engine):
    """Messages due while the account's hours are closed (accepted before it was marked
    marketing, say) are held at claim until the hours open, or until they expire first."""
    sunday = utc(2026, 1, 4, 12, 0)
    monday_8h = utc(2026, 1, 5, 7, 0)
    with writing(engine) as conn:
        shop = add_account(conn, "shop", marketing=True)
        bank = add_account(conn, "bank")
    add(
        engine,
        row(1, shop, due_at=sunday, expires_at=sunday + 6 * HOUR),  # ends before Monday
        row(2, shop, due_at=sunday, expires_at=sunday + DAY),
        row(3, bank, due_at=sunday, expires_at=sunday + HOUR),  # transactional
    )
    clock = Clock()
    clock.advance(sunday)
    who = account(shop, marketing=True)
    h = Harness(
        engine, [FakeCarrier("orange", prefixes=["3366"])], held=charter_held(who), clock=clock
    )
    h.start()
    assert h.sent() == [3]
    assert state(engine, 1) == ("ACCEPTED", sunday + 6 * HOUR, sunday + 6 * HOUR)
    assert state(engine, 2) == ("ACCEPTED", monday_8h, sunday + DAY)
    h.run(6 * HOUR, step=60)
    assert state(engine, 1)[0] == "EXPIRED"
    assert expired_receipts(engine) == [1]
    h.until(monday_8h - 1, step=600)
    assert h.sent() == [3]  # not a second early
    h.until(monday_8h)
    assert h.sent() == [3, 2]


def test_a_promotional_message_that_cannot_go_in_its_validity_expires_and_never_goes(engine):
    """Accepted on a Sunday with 6 hours of validity: stored due at its expiry, and the claim
    then expires it (with its receipt); it is never sent on Monday morning."""
    sunday = utc(2026, 1, 4, 12, 0)
    with writing(engine) as conn:
        shop = add_account(conn, "shop", marketing=True)
    who = account(shop, marketing=True)
    clock = Clock()
    clock.advance(sunday)
    h = Harness(
        engine, [FakeCarrier("orange", prefixes=["3366"])], held=charter_held(who), clock=clock
    )
    acceptor = Acceptor(h.store, clock)
    acceptor.on_stored = h.dispatcher.wake
    answers = []
    for validity in ("000000060000000R", "000002000000000R"):
        p = zero_params(Command.submit_sm)
        p.update(source_addr="36000", short_message=b"promo", validity_period=validity,
                 registered_delivery=1)  # fmt: skip
        acceptor.submit(who, p, {}, [(1, 1, ORANGE)], lambda *r: answers.append(r))
    assert [(s, ids) for s, ids, _ in answers] == [(0, [1]), (0, [2])]
    h.start()
    assert state(engine, 1) == ("ACCEPTED", sunday + 6 * HOUR, sunday + 6 * HOUR)
    assert state(engine, 2)[:2] == ("ACCEPTED", utc(2026, 1, 5, 7, 0))
    h.until(sunday + 6 * HOUR, step=60)
    assert state(engine, 1)[0] == "EXPIRED"
    assert expired_receipts(engine) == [1]
    h.until(utc(2026, 1, 5, 7, 0), step=600)
    assert h.sent() == [2]  # the one still valid, on Monday at 08:00


def test_hours_that_never_open_hold_until_expiry(engine):
    with writing(engine) as conn:
        shop = add_account(conn, "shop", marketing=True, sending_hours="never")
    add(engine, row(1, shop, due_at=NOW, expires_at=NOW + 100))
    who = account(shop, marketing=True, sending_hours="never")
    h = Harness(engine, [FakeCarrier("orange", prefixes=["3366"])], held=charter_held(who))
    h.start()
    assert state(engine, 1) == ("ACCEPTED", NOW + 100, NOW + 100)
    h.run(100)
    assert state(engine, 1)[0] == "EXPIRED"
    assert h.sent() == []


# -- restart ---------------------------------------------------------------------------------


def test_scheduled_messages_survive_a_restart_and_go_out_on_time(db_url, engine, accts):
    """Accepted by one process (a Store, an acceptor), the store closed; a new engine and
    dispatcher later: nothing is claimed early, each goes when due."""
    a = accts[0]
    who = account(a)
    clock = Clock()
    clock.advance(NOW)
    acceptor = Acceptor(SyncStore(engine), clock)
    answers = []
    for schedule in ("000000000010000R", smpptime.format_absolute(NOW + 60, -8), ""):
        p = zero_params(Command.submit_sm)
        p.update(source_addr="36000", short_message=b"later", schedule_delivery_time=schedule)
        acceptor.submit(who, p, {}, [(1, 1, ORANGE)], lambda *r: answers.append(r))
    assert [(s, ids) for s, ids, _ in answers] == [(0, [1]), (0, [2]), (0, [3])]
    # The node had claimed the one due now when it died (SENDING in the store).
    with writing(engine) as conn:
        conn.info[NODE] = nodes.join(conn, "n1", NOW, 10.0)[0]
        assert [d.id for d in queue.claim(conn, NOW, 100, routing.ported, settle(NOW))] == [3]
    engine.dispose()

    again = db.make_engine(db_url)
    try:
        clock = Clock()
        clock.advance(NOW + 5)  # it took 5 s to start again, under its name
        with writing(again) as conn:
            assert nodes.join(conn, "n1", NOW + 5, 10.0)[1] == (1, 0)
        h = Harness(again, [FakeCarrier("orange", prefixes=["3366"])], clock=clock)
        h.start()
        assert h.sent() == [3]  # in flight at the stop: sent again (at-least-once)
        assert [state(again, i)[:2] for i in (1, 2)] == [
            ("ACCEPTED", NOW + 10),
            ("ACCEPTED", NOW + 60),
        ]
        h.until(NOW + 9.9)
        assert h.sent() == [3]
        h.until(NOW + 10.5)  # polled every 0.5 s while idle
        assert h.sent() == [3, 1]
        h.until(NOW + 59.9)
        assert h.sent() == [3, 1]
        h.until(NOW + 60.5)
        assert h.sent() == [3, 1, 2]
    finally:
        again.dispose()


# -- a million queued rows ------------------------------------------------------------------

MILLION = 1_000_000
ACCOUNTS = 4
SCANS_MESSAGES = re.compile(r"SCAN (messages|m)\b")  # reading the whole table


@pytest.fixture(scope="module")
def million(tmp_path_factory):
    """A store with 1,000,000 ACCEPTED messages of 4 accounts (interleaved), due every ~0.6 s
    over 7 days from NOW, each valid for a day after it is due. One INSERT … SELECT."""
    path = tmp_path_factory.mktemp("million") / "smsc.db"
    engine = db.make_engine(f"sqlite:///{path}")
    db.upgrade(engine)
    engine.dispose()
    step = 7 * DAY / (MILLION / ACCOUNTS)
    started = time.perf_counter()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO accounts (id, system_id, password_hash, max_binds, tps, enabled, created_at)"
        " VALUES (?, ?, '-', 1, 0, 1, ?)",
        [(i, f"acct{i}", NOW) for i in range(1, ACCOUNTS + 1)],
    )
    conn.execute(
        f"""
        INSERT INTO messages ({", ".join(COLUMNS)})
        WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {MILLION - 1})
        SELECT i + 1, 1 + i % {ACCOUNTS}, '', 1, 1, '33600000001', printf('336%08d', i % 1000000),
               0, 0, 0, 1, 0, x'68656c6c6f', x'', {NOW},
               {NOW} + (i / {ACCOUNTS}) * {step}, {NOW} + (i / {ACCOUNTS}) * {step} + {DAY},
               'ACCEPTED', {NOW}, 0, NULL, NULL
        FROM n
        """
    )
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    print(f"\n1,000,000 queued rows written in {time.perf_counter() - started:.1f} s")
    engine = db.make_engine(f"sqlite:///{path}")
    yield engine
    engine.dispose()


class Statements:
    """The SQL statements run on an engine's new checkouts while active, as SQLite's trace
    sees them (parameters in place): SQLAlchemy's and those run on the driver's cursor."""

    def __init__(self, engine):
        self.engine = engine
        self.seen: list[str] = []

    def _record(self, statement):
        if not statement.startswith(("BEGIN", "COMMIT", "ROLLBACK", "EXPLAIN", "PRAGMA")):
            self.seen.append(statement)

    def _checkout(self, dbapi_connection, _record, _proxy):
        dbapi_connection.set_trace_callback(self._record)

    def _checkin(self, dbapi_connection, _record):
        dbapi_connection.set_trace_callback(None)

    def __enter__(self):
        event.listen(self.engine, "checkout", self._checkout)
        event.listen(self.engine, "checkin", self._checkin)
        return self

    def __exit__(self, *exc):
        event.remove(self.engine, "checkout", self._checkout)
        event.remove(self.engine, "checkin", self._checkin)

    def plans(self) -> list[tuple[str, list[str]]]:
        with self.engine.connect() as conn:
            raw = conn.connection.dbapi_connection
            return [
                (sql, [r[3] for r in raw.execute("EXPLAIN QUERY PLAN " + sql)]) for sql in self.seen
            ]


def test_claim_at_a_million_queued_rows_uses_the_queue_index(million):
    engine = million
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(schema.messages)).scalar() == MILLION
        raw = conn.connection.dbapi_connection
        plan = [
            r[3]
            for r in raw.execute(
                "EXPLAIN QUERY PLAN "
                + str(queue._QUEUED_ACCOUNTS.statement).replace(":state", "'ACCEPTED'")
            )
        ]
    # The loose index scan: a few lookups in the queue index per account, never a scan.
    assert "SEARCH messages USING COVERING INDEX messages_queue (state=?)" in plan, plan
    assert "SEARCH m USING COVERING INDEX messages_queue (state=? AND account_id>?)" in plan, plan
    assert not [p for p in plan if SCANS_MESSAGES.match(p) or "TEMP B-TREE" in p], plan

    # Each statement a claim of 500 runs: explained as it was run, with its parameters.
    due_at = NOW + HOUR  # some 6,000 due, 1,500 an account
    with Statements(engine) as seen:
        assert len(claim(engine, due_at, 500)) == 500
    plans = seen.plans()
    for sql, lines in plans:
        assert not [p for p in lines if SCANS_MESSAGES.match(p) or "TEMP B-TREE" in p], (sql, lines)
    shares = [lines for sql, lines in plans if sql.startswith("SELECT messages.id")]
    assert len(shares) == ACCOUNTS
    for lines in shares:
        assert lines == [
            "SEARCH messages USING COVERING INDEX messages_queue "
            "(state=? AND account_id=? AND due_at<?)"
        ]
    # Marking them SENDING finds the 500 by id, not by walking the index of every ACCEPTED row.
    (marking,) = [lines for sql, lines in plans if sql.startswith("UPDATE messages")]
    # (The ids come as one JSON list: smsc.store.prepared.)
    assert marking == [
        "SEARCH messages USING INTEGER PRIMARY KEY (rowid=?)",
        "LIST SUBQUERY 1",
        "SCAN json_each VIRTUAL TABLE INDEX 1:",
    ], marking


def test_claim_latency_at_a_million_queued_rows(million):
    engine = million
    durations, claimed = [], 0
    for k in range(8):
        now = NOW + 2 * HOUR + k * 60
        started = time.perf_counter()
        got = claim(engine, now, 500)
        durations.append(time.perf_counter() - started)
        assert len(got) == 500
        claimed += len(got)
    with writing(engine) as conn:  # the rest of the suite sees them queued again
        conn.execute(
            update(schema.messages)
            .where(schema.messages.c.state == State.SENDING)
            .values(state=State.ACCEPTED)
        )
    median = statistics.median(durations)
    print(
        f"\nclaim of 500 due at 1,000,000 queued: median {median * 1000:.1f} ms, "
        f"best {min(durations) * 1000:.1f} ms, worst {max(durations) * 1000:.1f} ms "
        f"(commit with synchronous=FULL included)"
    )
    assert median < 1.0  # well under 100 ms on a quiet machine; generous for a noisy one


def test_cancel_and_replace_by_id_at_a_million_queued_rows(million):
    """cancel_sm, replace_sm and an admin's bulk cancel look their rows up by id: not by the
    queue index, where an account's 250,000 waiting messages would be walked each time."""
    engine = million
    target = 123_458  # an ACCEPTED message of account 2, due some 20 hours ahead
    with Statements(engine) as seen, engine.connect() as conn:
        conn.begin()
        status = messages.replace(
            conn, 2, target, NOW, source="", body=b"new text", registered_delivery=1,
            due_at=None, expires_at=None, check_body=lambda *a: 0,
        )  # fmt: skip
        assert status == Status.ROK
        assert messages.cancel(conn, 2, NOW, message_id=target) == 1
        assert messages.cancel_ids(conn, list(range(500_001, 505_001)), NOW) == 5000
        conn.rollback()
    for sql, lines in seen.plans():
        assert not [p for p in lines if "messages_queue" in p or SCANS_MESSAGES.match(p)], (
            sql,
            lines,
        )
    with engine.connect() as conn:
        conn.begin()
        started = time.perf_counter()
        assert messages.cancel(conn, 2, NOW, message_id=target) == 1
        took = time.perf_counter() - started
        conn.rollback()
    print(f"\ncancel by id at 1,000,000 queued: {took * 1000:.2f} ms")
    assert took < 0.5
