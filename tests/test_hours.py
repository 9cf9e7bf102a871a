"""Tests for the sending-hours policy of promotional traffic (smsc.hours)."""

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smsc import hours
from smsc.hours import DEFAULT, SendingHours, easter, french_holidays, is_holiday, of

PARIS = ZoneInfo("Europe/Paris")


def utc(*args: int) -> float:
    """UTC epoch of (year, month, day[, hour, minute, second]) in UTC."""
    return datetime(*args, tzinfo=UTC).timestamp()


def local(zone: str, *args: int, fold: int = 0) -> float:
    """UTC epoch of a wall-clock time in a zone."""
    return datetime(*args, tzinfo=ZoneInfo(zone), fold=fold).timestamp()


def paris(*args: int) -> float:
    return local("Europe/Paris", *args)


CHARTER = SendingHours.parse(DEFAULT)


# --- the charter window ---------------------------------------------------------------------


def test_default_is_the_charter_window():
    assert DEFAULT == "mon-sat 08:00-21:30"
    assert SendingHours.parse("mon-sat 08:00-21:30", "Europe/Paris", "fr") == CHARTER
    assert CHARTER.timezone == "Europe/Paris"
    assert CHARTER.holidays == "fr"
    assert CHARTER.days == (((480, 1290),),) * 6 + ((),)
    assert str(CHARTER) == DEFAULT


def test_charter_monday_edges():
    # Monday 2026-01-05, winter: Paris is UTC+1.
    assert not CHARTER.is_open(paris(2026, 1, 5, 7, 59, 59))
    assert not CHARTER.is_open(utc(2026, 1, 5, 6, 59))
    assert CHARTER.is_open(utc(2026, 1, 5, 7, 0))  # 08:00 Paris
    assert CHARTER.is_open(paris(2026, 1, 5, 12, 0))
    assert CHARTER.is_open(paris(2026, 1, 5, 21, 29, 59) + 0.999)
    assert not CHARTER.is_open(paris(2026, 1, 5, 21, 30))  # end is exclusive
    assert not CHARTER.is_open(paris(2026, 1, 5, 23, 59))
    assert CHARTER.next_open(paris(2026, 1, 5, 7, 59)) == utc(2026, 1, 5, 7, 0)
    assert CHARTER.next_open(paris(2026, 1, 5, 21, 30)) == paris(2026, 1, 6, 8, 0)
    t = paris(2026, 1, 5, 10, 17, 3) + 0.25
    assert CHARTER.next_open(t) == t  # open: t itself


def test_charter_saturday_open_sunday_closed():
    assert CHARTER.is_open(paris(2026, 1, 10, 8, 0))  # Saturday
    assert CHARTER.is_open(paris(2026, 1, 10, 21, 0))
    assert not CHARTER.is_open(paris(2026, 1, 11, 12, 0))  # Sunday
    monday = utc(2026, 1, 12, 7, 0)  # Monday 08:00 Paris
    assert CHARTER.next_open(paris(2026, 1, 10, 21, 30)) == monday
    assert CHARTER.next_open(paris(2026, 1, 11, 0, 0)) == monday
    assert CHARTER.next_open(paris(2026, 1, 11, 12, 0)) == monday
    assert CHARTER.next_open(paris(2026, 1, 12, 7, 59, 59)) == monday


def test_next_open_returns_a_float():
    assert isinstance(CHARTER.next_open(paris(2026, 1, 11, 12, 0)), float)
    assert isinstance(CHARTER.next_open(paris(2026, 1, 12, 12, 0)), float)


# --- French public holidays -----------------------------------------------------------------

HOLIDAYS_2026 = {
    date(2026, 1, 1),
    date(2026, 4, 6),  # Easter Monday
    date(2026, 5, 1),
    date(2026, 5, 8),
    date(2026, 5, 14),  # Ascension
    date(2026, 5, 25),  # Whit Monday
    date(2026, 7, 14),
    date(2026, 8, 15),
    date(2026, 11, 1),
    date(2026, 11, 11),
    date(2026, 12, 25),
}
HOLIDAYS_2027 = {
    date(2027, 1, 1),
    date(2027, 3, 29),  # Easter Monday
    date(2027, 5, 1),
    date(2027, 5, 6),  # Ascension
    date(2027, 5, 8),
    date(2027, 5, 17),  # Whit Monday
    date(2027, 7, 14),
    date(2027, 8, 15),
    date(2027, 11, 1),
    date(2027, 11, 11),
    date(2027, 12, 25),
}


def test_french_holidays_2026_and_2027():
    assert french_holidays(2026) == HOLIDAYS_2026
    assert french_holidays(2027) == HOLIDAYS_2027


@pytest.mark.parametrize(
    ("year", "sunday"),
    [
        (1818, date(1818, 3, 22)),  # earliest possible
        (1943, date(1943, 4, 25)),  # latest possible
        (2000, date(2000, 4, 23)),
        (2024, date(2024, 3, 31)),
        (2025, date(2025, 4, 20)),
        (2026, date(2026, 4, 5)),
        (2027, date(2027, 3, 28)),
        (2038, date(2038, 4, 25)),
        (2285, date(2285, 3, 22)),
    ],
)
def test_easter_computus(year, sunday):
    assert easter(year) == sunday
    assert sunday.weekday() == 6


@given(st.integers(1583, 4099))
def test_easter_is_a_sunday_in_its_window(year):
    sunday = easter(year)
    assert sunday.weekday() == 6
    assert date(year, 3, 22) <= sunday <= date(year, 4, 25)


@pytest.mark.parametrize("day", sorted(HOLIDAYS_2026 | HOLIDAYS_2027))
def test_closed_all_day_on_holidays(day):
    assert is_holiday(day)
    assert not is_holiday(day, "none")
    for hour in (8, 12, 21):
        assert not CHARTER.is_open(paris(day.year, day.month, day.day, hour, 0))
    assert CHARTER.windows_on(day) == ()
    nxt = CHARTER.next_open(paris(day.year, day.month, day.day, 12, 0))
    wall = datetime.fromtimestamp(nxt, PARIS)
    assert wall.date() > day
    assert (wall.hour, wall.minute) == (8, 0)
    assert wall.weekday() != 6
    assert not is_holiday(wall.date())


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        # Saturday before Easter Monday 2026, after closing -> Tuesday 08:00 (CEST, UTC+2)
        (paris(2026, 4, 4, 21, 30), utc(2026, 4, 7, 6, 0)),
        (paris(2026, 4, 6, 10, 0), utc(2026, 4, 7, 6, 0)),  # on Easter Monday itself
        # Ascension Thursday 2026 -> Friday 08:00
        (paris(2026, 5, 13, 22, 0), utc(2026, 5, 15, 6, 0)),
        # Saturday before Whit Monday 2026 -> Tuesday
        (paris(2026, 5, 23, 22, 0), utc(2026, 5, 26, 6, 0)),
        # Christmas 2026 is a Friday: Saturday 26 is open (CET, UTC+1)
        (paris(2026, 12, 24, 22, 0), utc(2026, 12, 26, 7, 0)),
        # Jan 1 2027 is a Friday -> Saturday Jan 2
        (paris(2026, 12, 31, 21, 45), utc(2027, 1, 2, 7, 0)),
        # Easter Monday 2027 (Mar 29, the day after the DST change) -> Tuesday 08:00 CEST
        (paris(2027, 3, 27, 21, 30), utc(2027, 3, 30, 6, 0)),
        # May 1 2027 is a Saturday, then Sunday -> Monday May 3
        (paris(2027, 4, 30, 21, 30), utc(2027, 5, 3, 6, 0)),
        # Ascension 2027 -> Friday
        (paris(2027, 5, 5, 21, 30), utc(2027, 5, 7, 6, 0)),
        # Saturday May 15 2027, Sunday, Whit Monday May 17 -> Tuesday
        (paris(2027, 5, 15, 21, 30), utc(2027, 5, 18, 6, 0)),
        # Jul 14 2026 is a Tuesday
        (paris(2026, 7, 13, 21, 30), utc(2026, 7, 15, 6, 0)),
    ],
)
def test_next_open_skips_holidays(start, expected):
    assert CHARTER.next_open(start) == expected
    assert CHARTER.is_open(expected)
    assert not CHARTER.is_open(expected - 1)


def test_holidays_none_opens_on_holidays():
    h = SendingHours.parse(DEFAULT, holidays="none")
    assert h.holidays == "none"
    assert h != CHARTER
    assert h.is_open(paris(2026, 4, 6, 10, 0))  # Easter Monday
    assert h.is_open(paris(2026, 7, 14, 10, 0))
    assert not h.is_open(paris(2026, 4, 5, 10, 0))  # Easter Sunday: still a Sunday
    assert h.next_open(paris(2026, 4, 4, 21, 30)) == utc(2026, 4, 6, 6, 0)
    assert str(h) == "mon-sat 08:00-21:30; holidays=none"
    assert SendingHours.parse(str(h)) == h


# --- daylight saving in Europe/Paris, 2026 -----------------------------------------------------


def test_spring_forward_2026():
    # Sunday 2026-03-29, 02:00 CET -> 03:00 CEST (01:00 UTC).
    assert CHARTER.windows_on(date(2026, 3, 28)) == (
        (utc(2026, 3, 28, 7), utc(2026, 3, 28, 20, 30)),
    )
    assert CHARTER.windows_on(date(2026, 3, 29)) == ()
    assert CHARTER.windows_on(date(2026, 3, 30)) == (
        (utc(2026, 3, 30, 6), utc(2026, 3, 30, 19, 30)),
    )
    assert CHARTER.is_open(utc(2026, 3, 28, 7, 0))  # Saturday 08:00 CET
    assert not CHARTER.is_open(utc(2026, 3, 28, 6, 30))
    assert not CHARTER.is_open(utc(2026, 3, 28, 20, 30))  # Saturday 21:30 CET
    assert CHARTER.next_open(utc(2026, 3, 28, 20, 30)) == utc(2026, 3, 30, 6, 0)
    assert not CHARTER.is_open(utc(2026, 3, 30, 5, 59))
    assert CHARTER.is_open(utc(2026, 3, 30, 6, 0))  # Monday 08:00 CEST
    assert CHARTER.is_open(utc(2026, 3, 30, 19, 29))
    assert not CHARTER.is_open(utc(2026, 3, 30, 19, 30))  # Monday 21:30 CEST


def test_fall_back_2026():
    # Sunday 2026-10-25, 03:00 CEST -> 02:00 CET (01:00 UTC).
    assert CHARTER.windows_on(date(2026, 10, 24)) == (
        (utc(2026, 10, 24, 6), utc(2026, 10, 24, 19, 30)),
    )
    assert CHARTER.windows_on(date(2026, 10, 26)) == (
        (utc(2026, 10, 26, 7), utc(2026, 10, 26, 20, 30)),
    )
    assert CHARTER.is_open(utc(2026, 10, 24, 6, 0))  # Saturday 08:00 CEST
    assert not CHARTER.is_open(utc(2026, 10, 24, 19, 30))
    assert CHARTER.next_open(utc(2026, 10, 24, 19, 30)) == utc(2026, 10, 26, 7, 0)
    assert not CHARTER.is_open(utc(2026, 10, 26, 6, 30))  # 07:30 CET
    assert CHARTER.is_open(utc(2026, 10, 26, 7, 0))  # Monday 08:00 CET
    assert not CHARTER.is_open(utc(2026, 10, 26, 20, 30))  # Monday 21:30 CET


def test_window_edge_in_the_spring_gap_is_the_first_valid_instant_after():
    h = SendingHours.parse("sun 02:30-03:30")
    # 02:30 does not exist on 2026-03-29: the window opens at 03:00 CEST = 01:00 UTC.
    assert h.windows_on(date(2026, 3, 29)) == ((utc(2026, 3, 29, 1), utc(2026, 3, 29, 1, 30)),)
    assert h.next_open(utc(2026, 3, 28, 12)) == utc(2026, 3, 29, 1, 0)
    assert not h.is_open(utc(2026, 3, 29, 0, 59, 59))
    assert h.is_open(utc(2026, 3, 29, 1, 0))
    assert not h.is_open(utc(2026, 3, 29, 1, 30))
    # An end in the gap ends the window where the gap ends.
    h = SendingHours.parse("sun 01:00-02:30")
    assert h.windows_on(date(2026, 3, 29)) == ((utc(2026, 3, 29, 0), utc(2026, 3, 29, 1)),)


def test_window_wholly_in_the_spring_gap_is_empty_that_day():
    h = SendingHours.parse("sun 02:10-02:50")
    assert h.windows_on(date(2026, 3, 29)) == ()
    # Next Sunday (Easter Sunday is not a public holiday), 02:10 CEST.
    assert h.next_open(utc(2026, 3, 28, 12)) == utc(2026, 4, 5, 0, 10)
    assert h.windows_on(date(2026, 3, 22)) == ((utc(2026, 3, 22, 1, 10), utc(2026, 3, 22, 1, 50)),)


def test_window_edge_in_the_autumn_fold_is_its_first_occurrence():
    # 02:00-03:00 happens twice on 2026-10-25: first CEST (00:xx UTC), then CET (01:xx UTC).
    h = SendingHours.parse("sun 02:30-04:00")
    assert h.windows_on(date(2026, 10, 25)) == ((utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 3)),)
    assert h.next_open(utc(2026, 10, 24, 12)) == utc(2026, 10, 25, 0, 30)
    assert h.is_open(utc(2026, 10, 25, 1, 15))  # 02:15 CET, the second pass
    h = SendingHours.parse("sun 01:00-02:30")
    assert h.windows_on(date(2026, 10, 25)) == ((utc(2026, 10, 24, 23), utc(2026, 10, 25, 0, 30)),)
    assert not h.is_open(utc(2026, 10, 25, 1, 10))  # 02:10 CET: the window closed at 02:30 CEST
    # Next Sunday is Nov 1, All Saints' Day: the one after, 01:00 CET.
    assert h.next_open(utc(2026, 10, 25, 1, 10)) == utc(2026, 11, 8, 0, 0)


def test_midnight_that_does_not_exist():
    # Sao Paulo, 2018-11-04 (Sunday): 00:00 -03 -> 01:00 -02, the day starts at 01:00.
    h = SendingHours.parse("sun 00:00-02:00", "America/Sao_Paulo", "none")
    assert h.windows_on(date(2018, 11, 4)) == ((utc(2018, 11, 4, 3), utc(2018, 11, 4, 4)),)
    assert h.next_open(utc(2018, 11, 3, 12)) == utc(2018, 11, 4, 3, 0)
    # 2018-02-18: 24:00 -02 -> 23:00 -03 on Saturday the 17th; Sunday starts once, at 03:00 UTC.
    assert h.windows_on(date(2018, 2, 18)) == ((utc(2018, 2, 18, 3), utc(2018, 2, 18, 5)),)
    assert not h.is_open(utc(2018, 2, 18, 2, 30))  # Saturday 23:30, second pass
    assert h.next_open(utc(2018, 2, 18, 2, 30)) == utc(2018, 2, 18, 3, 0)


def test_fold_back_across_midnight():
    # Goose Bay, 2009-11-01: at 00:01 ADT (03:01 UTC) the clock went back to Saturday 23:01 AST.
    # Sunday's window opened at the first 00:00 (03:00 UTC); during the second pass through
    # Saturday 23:01-24:00 the clock shows Saturday again, yet Sunday's window stays open.
    h = SendingHours.parse("sat 23:00-24:00; sun 00:00-01:00", "America/Goose_Bay", "none")
    assert h.windows_on(date(2009, 10, 31)) == ((utc(2009, 11, 1, 2), utc(2009, 11, 1, 3)),)
    assert h.windows_on(date(2009, 11, 1)) == ((utc(2009, 11, 1, 3), utc(2009, 11, 1, 5)),)
    t = utc(2009, 11, 1, 3, 30)
    assert datetime.fromtimestamp(t, ZoneInfo("America/Goose_Bay")).weekday() == 5  # Saturday
    assert h.is_open(t)
    assert h.next_open(t) == t
    assert h.is_open(utc(2009, 11, 1, 4, 59))
    assert not h.is_open(utc(2009, 11, 1, 5, 0))
    assert h.next_open(utc(2009, 11, 1, 5, 0)) == local("America/Goose_Bay", 2009, 11, 7, 23)


def test_lord_howe_half_hour_dst():
    # Australia/Lord_Howe moves by 30 minutes: 2026-04-05 02:00 +11 -> 01:30 +10:30 (fold),
    # 2026-10-04 02:00 +10:30 -> 02:30 +11 (gap).
    h = SendingHours.parse("sun 01:45-02:15", "Australia/Lord_Howe", "none")
    assert h.windows_on(date(2026, 4, 5)) == (
        (
            local("Australia/Lord_Howe", 2026, 4, 5, 1, 45),
            local("Australia/Lord_Howe", 2026, 4, 5, 2, 15),
        ),
    )
    gap = h.windows_on(date(2026, 10, 4))
    assert gap == (
        (
            local("Australia/Lord_Howe", 2026, 10, 4, 1, 45),
            local("Australia/Lord_Howe", 2026, 10, 4, 2, 30),
        ),
    )
    assert gap[0][1] - gap[0][0] == 15 * 60


# --- several windows, other zones -----------------------------------------------------------


def test_two_windows_and_a_saturday_clause():
    h = SendingHours.parse("mon-fri 08:00-12:00,14:00-20:00; sat 09:00-18:00")
    tuesday = (2026, 1, 6)
    assert not h.is_open(paris(*tuesday, 7, 59))
    assert h.is_open(paris(*tuesday, 8, 0))
    assert h.is_open(paris(*tuesday, 11, 59))
    assert not h.is_open(paris(*tuesday, 12, 0))
    assert not h.is_open(paris(*tuesday, 13, 59))
    assert h.next_open(paris(*tuesday, 12, 30)) == paris(*tuesday, 14, 0)
    assert h.is_open(paris(*tuesday, 14, 0))
    assert not h.is_open(paris(*tuesday, 20, 0))
    assert h.next_open(paris(*tuesday, 20, 0)) == paris(2026, 1, 7, 8, 0)
    saturday = (2026, 1, 10)
    assert h.next_open(paris(2026, 1, 9, 20, 0)) == paris(*saturday, 9, 0)
    assert not h.is_open(paris(*saturday, 8, 30))
    assert h.is_open(paris(*saturday, 17, 59))
    assert h.next_open(paris(*saturday, 18, 0)) == paris(2026, 1, 12, 8, 0)
    assert len(h.windows_on(date(*tuesday))) == 2


@pytest.mark.parametrize(
    ("zone", "open_utc", "closed_utc"),
    [
        # New York 09:00-17:00: EST (UTC-5) in January, EDT (UTC-4) in July.
        ("America/New_York", utc(2026, 1, 5, 14, 0), utc(2026, 1, 5, 13, 59)),
        ("America/New_York", utc(2026, 7, 6, 13, 0), utc(2026, 7, 6, 12, 59)),
        ("Asia/Kolkata", utc(2026, 1, 5, 3, 30), utc(2026, 1, 5, 3, 29)),  # UTC+5:30
        ("Australia/Sydney", utc(2026, 1, 4, 22, 0), utc(2026, 1, 4, 21, 59)),  # AEDT +11
        ("Australia/Sydney", utc(2026, 7, 5, 23, 0), utc(2026, 7, 5, 22, 59)),  # AEST +10
        ("UTC", utc(2026, 1, 5, 9, 0), utc(2026, 1, 5, 8, 59)),
    ],
)
def test_other_time_zones(zone, open_utc, closed_utc):
    h = SendingHours.parse("mon-fri 09:00-17:00", timezone=zone, holidays="none")
    assert h.timezone == zone
    assert h.is_open(open_utc)
    assert not h.is_open(closed_utc)
    assert h.next_open(closed_utc) == open_utc
    assert not h.is_open(open_utc + 8 * 3600)
    assert h.is_open(open_utc + 8 * 3600 - 1)


def test_new_york_dst_2026():
    # US spring forward Sunday 2026-03-08: Friday 09:00 EST -> Monday 09:00 EDT.
    h = SendingHours.parse("mon-fri 09:00-17:00", "America/New_York", "none")
    assert h.next_open(utc(2026, 3, 6, 22, 0)) == utc(2026, 3, 9, 13, 0)
    assert h.next_open(utc(2026, 10, 30, 21, 0)) == utc(2026, 11, 2, 14, 0)  # Nov 1 fall back


def test_french_holidays_apply_to_the_local_date_of_any_zone():
    h = SendingHours.parse("mon-sun 00:00-24:00", timezone="America/Martinique")
    assert not h.is_open(local("America/Martinique", 2026, 7, 14, 12))
    assert h.is_open(local("America/Martinique", 2026, 7, 13, 23, 59))
    assert h.next_open(local("America/Martinique", 2026, 7, 14, 12)) == local(
        "America/Martinique", 2026, 7, 15, 0
    )


def test_all_day_windows_join_across_midnight():
    h = SendingHours.parse("mon-sun 00:00-24:00", holidays="none")
    assert str(h) == "mon-sun 00:00-24:00; holidays=none"
    for t in (paris(2026, 1, 5, 0, 0), paris(2026, 1, 5, 23, 59, 59) + 0.9, utc(2026, 3, 29, 1)):
        assert h.is_open(t)
        assert h.next_open(t) == t


# --- parsing, canonical form, errors --------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "canonical"),
    [
        ("mon-sat 08:00-21:30", "mon-sat 08:00-21:30"),
        ("  MON-SAT   08:00-21:30  ", "mon-sat 08:00-21:30"),
        ("mon,tue,wed,thu,fri,sat 08:00-21:30", "mon-sat 08:00-21:30"),
        (
            "mon - fri 08:00-12:00, 14:00-20:00;sat 09:00-18:00",
            "mon-fri 08:00-12:00,14:00-20:00; sat 09:00-18:00",
        ),
        (
            "sat 09:00-18:00; mon-fri 14:00-20:00,08:00-12:00",
            "mon-fri 08:00-12:00,14:00-20:00; sat 09:00-18:00",
        ),
        ("mon 08:00-12:00,12:00-13:00", "mon 08:00-13:00"),  # touching windows merge
        ("mon,wed,fri 8:00-9:00", "mon,wed,fri 08:00-09:00"),
        ("mon-tue 08:00-09:00; wed 08:00-09:00", "mon-wed 08:00-09:00"),
        ("sun 10:00-11:00; mon 10:00-11:00", "mon,sun 10:00-11:00"),
        ("sat-sun 00:00-24:00", "sat-sun 00:00-24:00"),
        ("never", "never"),
        (" Never ", "never"),
        ("NEVER; holidays=none", "never; holidays=none"),
        ("mon 08:00-09:00; tz=America/New_York", "mon 08:00-09:00; tz=America/New_York"),
        ("holidays=NONE; tz=UTC; mon 08:00-09:00", "mon 08:00-09:00; tz=UTC; holidays=none"),
        ("mon 08:00-09:00; tz=Europe/Paris; holidays=fr", "mon 08:00-09:00"),
    ],
)
def test_canonical_spec(spec, canonical):
    h = SendingHours.parse(spec)
    assert str(h) == canonical
    assert SendingHours.parse(canonical) == h
    assert hash(SendingHours.parse(canonical)) == hash(h)


def test_arguments_and_spec_options():
    h = SendingHours.parse("mon 08:00-09:00", "Asia/Tokyo", "none")
    assert (h.timezone, h.holidays) == ("Asia/Tokyo", "none")
    assert SendingHours.parse(str(h)) == h
    assert SendingHours.parse(str(h), "Asia/Tokyo", "none") == h  # agreeing is fine
    with pytest.raises(ValueError, match="contradicts"):
        SendingHours.parse(str(h), timezone="Europe/Paris")
    with pytest.raises(ValueError, match="contradicts"):
        SendingHours.parse(str(h), holidays="fr")


def test_never_opens():
    for spec in ("never", "NEVER", " never; tz=UTC"):
        h = SendingHours.parse(spec)
        assert h.never
        assert not h.is_open(utc(2026, 1, 5, 12))
        with pytest.raises(ValueError, match="never open"):
            h.next_open(utc(2026, 1, 5, 12))
    assert not CHARTER.never


def test_search_is_bounded(monkeypatch):
    monkeypatch.setattr(hours, "SEARCH_DAYS", 3)
    h = SendingHours.parse("sun 10:00-11:00")
    with pytest.raises(ValueError, match="do not open within 3 days"):
        h.next_open(paris(2026, 1, 5, 12))  # Monday: the next Sunday is 6 days away
    assert h.next_open(paris(2026, 1, 9, 12)) == paris(2026, 1, 11, 10)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "empty sending hours"),
        ("   ", "empty sending hours"),
        ("mon-sat", "no time window in 'mon-sat'"),
        ("mon-sat 8h-21h", "bad time '8h'"),
        ("mon-sat 08:00", "bad window '08:00'"),
        ("mon-sat 08:00-", "bad time ''"),
        ("mon 25:00-26:00", "bad time '25:00'"),
        ("mon 08:60-09:00", "bad time '08:60'"),
        ("mon 24:00-24:00", "must be within 00:00-23:59"),
        ("mon 08:00-24:30", "must be within 00:00-24:00"),
        ("mon 123:00-124:00", "expected HH:MM"),
        ("mon-sat 21:30-08:00", "must end after it starts"),
        ("mon 08:00-08:00", "must end after it starts"),
        ("mon 08:00-10:00,09:00-11:00", "overlap"),
        ("xyz 08:00-09:00", "unknown day 'xyz'"),
        ("monday 08:00-09:00", "unknown day 'monday'"),
        ("mon-xyz 08:00-09:00", "unknown day 'xyz'"),
        ("sat-mon 08:00-09:00", "runs backwards: write mon,sat-sun"),
        ("mon,mon 08:00-09:00", "mon is named twice"),
        ("mon-fri 08:00-09:00; wed 10:00-11:00", "wed is given twice"),
        ("mon 08:00-09:00 10:00-11:00", "cannot read"),
        ("never; mon 08:00-09:00", "'never' cannot be combined"),
        ("mon 08:00-09:00;", "empty clause"),
        (";", "empty clause"),
        ("mon 08:00-09:00; color=red", "unknown option 'color'"),
        ("mon 08:00-09:00; tz=", "tz= has no value"),
        ("mon 08:00-09:00; tz=UTC; tz=UTC", "tz= is given twice"),
        ("tz=UTC", "no day clause"),
        ("mon 08:00-09:00; tz=Mars/Olympus_Mons", "unknown time zone 'Mars/Olympus_Mons'"),
        ("mon 08:00-09:00; holidays=us", "unknown holiday calendar 'us'"),
        ("mon 08:00-09:00\n; sat", "no time window in 'sat'"),
    ],
)
def test_invalid_specs(spec, message):
    with pytest.raises(ValueError) as info:
        SendingHours.parse(spec)
    text = str(info.value)
    assert message in text
    assert "\n" not in text


@pytest.mark.parametrize(
    "zone", ["Nowhere/City", "", "utc", "America", "../etc/passwd", "/etc/localtime"]
)
def test_unknown_time_zone(zone):
    with pytest.raises(ValueError, match="unknown time zone"):
        SendingHours.parse(DEFAULT, timezone=zone)


def test_unknown_holiday_calendar():
    with pytest.raises(ValueError, match="unknown holiday calendar 'us'"):
        SendingHours.parse(DEFAULT, holidays="us")


@pytest.mark.parametrize(
    "days",
    [
        ((),) * 6,
        [()] * 7,
        ((480, 1290),) + ((),) * 6,
        (((900, 800),),) + ((),) * 6,
        (((0, 1441),),) + ((),) * 6,
        (((0, 60), (30, 90)),) + ((),) * 6,
        (((0, 60), (60, 90)),) + ((),) * 6,  # touching: not canonical
        (((60, 90), (0, 30)),) + ((),) * 6,  # unsorted
        (((0.0, 60),),) + ((),) * 6,
    ],
)
def test_direct_construction_is_checked(days):
    with pytest.raises(ValueError):
        SendingHours(days=days)


def test_of_an_account():
    @dataclass
    class Account:
        sending_hours: str = ""
        timezone: str = "Europe/Paris"
        holidays: str = "fr"

    assert of(Account()) == CHARTER
    assert of(Account()) is of(Account())  # parsed once: the per-date cache is shared
    shop = Account("mon-fri 09:00-20:00", "America/New_York", "none")
    assert of(shop) == SendingHours.parse("mon-fri 09:00-20:00", "America/New_York", "none")
    assert of(shop).next_open(utc(2026, 1, 10, 12)) == utc(2026, 1, 12, 14, 0)
    with pytest.raises(ValueError, match="unknown time zone"):
        of(Account(timezone="Mars/Base"))
    with pytest.raises(ValueError, match="bad time"):
        of(Account(sending_hours="mon-sat 8h-21h"))


def test_frozen():
    with pytest.raises(AttributeError):
        CHARTER.timezone = "UTC"  # type: ignore[misc]


# --- properties -----------------------------------------------------------------------------

window_lists = st.lists(
    st.tuples(st.integers(0, 1439), st.integers(1, 1440)).filter(lambda w: w[0] < w[1]),
    max_size=3,
)


def _normalise(windows: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """Disjoint, non-touching, sorted: overlapping and touching windows merged."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(windows):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return tuple(merged)


any_hours = st.builds(
    SendingHours,
    days=st.lists(window_lists.map(_normalise), min_size=7, max_size=7).map(tuple),
    timezone=st.sampled_from(["Europe/Paris", "UTC", "America/New_York", "Asia/Kolkata"]),
    holidays=st.sampled_from(["fr", "none"]),
)


@given(any_hours)
def test_round_trip(h):
    spec = str(h)
    assert "\n" not in spec
    assert SendingHours.parse(spec) == h
    assert SendingHours.parse(spec, h.timezone, h.holidays) == h
    assert str(SendingHours.parse(spec)) == spec


SPECS = [
    SendingHours.parse(DEFAULT),
    SendingHours.parse("mon-fri 08:00-12:00,14:00-20:00; sat 09:00-18:00"),
    SendingHours.parse("mon-sun 01:30-02:30,02:45-03:15,22:00-24:00", holidays="none"),
    SendingHours.parse("sun 02:10-02:50; wed 00:00-00:01"),
    SendingHours.parse("mon-fri 09:00-17:00", "America/New_York", "none"),
    SendingHours.parse("sat-sun 00:00-01:00,23:00-24:00", "America/Sao_Paulo", "none"),
    SendingHours.parse("mon-sun 01:40-02:20", "Australia/Lord_Howe", "none"),
    SendingHours.parse("tue 23:59-24:00", "Asia/Kolkata"),
]
# 2016-2032: covers Sao Paulo's DST years and Europe's, at any fraction of a second.
instants = st.integers(int(utc(2016, 1, 1)), int(utc(2032, 1, 1))).map(lambda s: s + 0.5) | (
    st.integers(int(utc(2016, 1, 1)), int(utc(2032, 1, 1))).map(float)
)


SPECS.append(SendingHours.parse("sat 23:00-24:00; sun 00:00-00:30", "America/Goose_Bay", "none"))


@lru_cache
def _transitions(zone_name: str) -> tuple[int, ...]:
    """Days (UTC epoch at 00:00 UTC) on which a zone's offset changed, 2005-2031."""
    zone = ZoneInfo(zone_name)
    day = int(utc(2005, 1, 1))
    offset = datetime.fromtimestamp(day, zone).utcoffset()
    found = []
    while day < utc(2032, 1, 1):
        day += 86400
        now = datetime.fromtimestamp(day, zone).utcoffset()
        if now != offset:
            found.append(day - 86400)
            offset = now
    return tuple(found)


def _near_transitions(h: SendingHours) -> st.SearchStrategy[float]:
    days = _transitions(h.timezone)
    if not days:
        return instants
    return st.builds(
        lambda day, shift: day + shift,
        st.sampled_from(days),
        st.floats(-3 * 86400, 4 * 86400, allow_nan=False),
    )


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_next_open_property_near_dst_changes(data):
    h = data.draw(st.sampled_from(SPECS))
    _check_next_open(h, data.draw(_near_transitions(h)))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(SPECS), instants)
def test_next_open_property(h, t):
    _check_next_open(h, t)


def _check_next_open(h: SendingHours, t: float) -> None:
    n = h.next_open(t)
    assert n >= t
    assert h.is_open(n)
    assert (n == t) == h.is_open(t)
    if n == t:
        return
    # No open instant skipped: closed on evenly spaced points and on every UTC minute boundary
    # between t and n (windows open on minute boundaries in these zones).
    span = n - t
    for k in range(1, 50):
        assert not h.is_open(t + span * k / 50)
    minute = (int(t) // 60 + 1) * 60
    while minute < n:
        assert not h.is_open(minute)
        minute += 60
    assert not h.is_open(n - 0.001)
    # Every window starts at the instant next_open gives for just before it.
    assert h.next_open(n - 0.001) == n


NAIVE_SPECS = [s for s in SPECS if s.timezone in ("Europe/Paris", "America/New_York")][:2] + [
    SendingHours.parse("mon-fri 09:00-17:00", "America/New_York", "none"),
    SendingHours.parse("mon-fri 09:00-12:00,13:30-18:00; sat 10:00-13:00", "Asia/Kolkata"),
    SendingHours.parse("mon-sat 07:00-22:00", "Australia/Sydney", "none"),
]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(NAIVE_SPECS), instants)
def test_is_open_agrees_with_the_wall_clock(h, t):
    """Away from DST edges, open means: the local clock's weekday and time are in a window
    and the local date is not a holiday."""
    wall = datetime.fromtimestamp(t, ZoneInfo(h.timezone))
    seconds = wall.hour * 3600 + wall.minute * 60 + wall.second + wall.microsecond / 1e6
    expected = not is_holiday(wall.date(), h.holidays) and any(
        start * 60 <= seconds < end * 60 for start, end in h.days[wall.weekday()]
    )
    assert h.is_open(t) == expected


def test_next_open_walks_every_window_of_2026():
    starts = []
    day = date(2026, 1, 1)
    while day.year == 2026:
        starts.extend(s for s, _ in CHARTER.windows_on(day))
        day += timedelta(days=1)
    # 365 days - 52 Sundays - the 10 holidays not on a Sunday (Nov 1 2026 is one).
    assert len([d for d in HOLIDAYS_2026 if d.weekday() == 6]) == 1
    assert len(starts) == 365 - 52 - 10
    walked = []
    t = paris(2026, 1, 1)
    while (t := CHARTER.next_open(t)) < paris(2027, 1, 1):
        walked.append(t)
        t = paris(*datetime.fromtimestamp(t, PARIS).timetuple()[:3], 21, 30)
    assert walked == starts


def test_the_store_default_is_the_charter():
    from smsc.store.schema import CHARTER_HOURS

    assert CHARTER_HOURS == hours.DEFAULT
