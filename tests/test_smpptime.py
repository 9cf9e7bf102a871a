"""Tests for the SMPP 3.4 time format (spec 7.1.1)."""

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smsc.protocol import smpptime


def epoch(*args: int) -> float:
    """UTC epoch seconds of a datetime given as (year, month, day[, hour, minute, second])."""
    return datetime(*args, tzinfo=UTC).timestamp()


NOW = epoch(2026, 1, 31, 10, 30, 0)

# Instants whose local time stays within 2000-2099 at any offset (+/- 12 hours).
# Up to 12 h away from the years 2000-2099 at both ends: local time at any offset stays in them.
INSTANTS_TENTHS = st.integers(
    min_value=int(epoch(2000, 1, 1, 12)) * 10, max_value=int(epoch(2099, 12, 31, 12)) * 10 - 1
)
QUARTERS = st.integers(min_value=-48, max_value=48)


# --- absolute form -------------------------------------------------------------------------


def test_empty_means_now_or_default():
    assert smpptime.parse("", NOW) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("260101120000000+", epoch(2026, 1, 1, 12)),
        ("260101120000000-", epoch(2026, 1, 1, 12)),
        # Local time one hour ahead of UTC: 12:00 local is 11:00 UTC.
        ("260101120000004+", epoch(2026, 1, 1, 11)),
        # Local time one hour behind UTC: 12:00 local is 13:00 UTC.
        ("260101120000004-", epoch(2026, 1, 1, 13)),
        # One quarter hour is 15 minutes.
        ("260101120000001+", epoch(2026, 1, 1, 11, 45)),
        ("260101120000003-", epoch(2026, 1, 1, 12, 45)),
        # The offset may move the instant across a day, month and year boundary.
        ("260101010000008+", epoch(2025, 12, 31, 23)),
        ("261231230000008-", epoch(2027, 1, 1, 1)),
        # The 48-quarter (12 hour) extremes.
        ("260615120000048+", epoch(2026, 6, 15, 0)),
        ("260615120000048-", epoch(2026, 6, 15, 0) + 86400),
        # YY is 20YY at both ends of the range.
        ("000101000000000+", epoch(2000, 1, 1)),
        ("991231235959000+", epoch(2099, 12, 31, 23, 59, 59)),
        # Leap days.
        ("240229000000000+", epoch(2024, 2, 29)),
        ("000229000000000+", epoch(2000, 2, 29)),
    ],
)
def test_absolute(value, expected):
    assert smpptime.parse(value, NOW) == expected


def test_absolute_ignores_now():
    assert smpptime.parse("260101120000000+", 0.0) == smpptime.parse("260101120000000+", NOW)


@pytest.mark.parametrize("tenths", range(10))
def test_absolute_tenths(tenths):
    value = f"2601011200{tenths:02d}{tenths}00+"
    assert smpptime.parse(value, NOW) == epoch(2026, 1, 1, 12, 0, tenths) + tenths / 10


def test_tenths_are_the_nearest_float():
    assert smpptime.parse("260101120000300+", NOW) == 1767268800.3


# --- relative form -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "delta"),
    [
        ("000000000000000R", 0),
        ("000007000000000R", 7 * 86400),
        ("000000010000000R", 3600),
        ("000000000100000R", 60),
        ("000000000001000R", 1),
        ("000001020304000R", 86400 + 2 * 3600 + 3 * 60 + 4),
        # Relative fields are counts, not clock readings: 36 hours, 90 minutes, 75 seconds.
        ("000000360000000R", 36 * 3600),
        ("000000009000000R", 90 * 60),
        ("000000000075000R", 75),
        ("000099999999000R", 99 * 86400 + 99 * 3600 + 99 * 60 + 99),
        # t and nn are ignored in the relative form (spec 7.1.1.2).
        ("000007000000948R", 7 * 86400),
    ],
)
def test_relative_duration(value, delta):
    assert smpptime.parse(value, NOW) == NOW + delta


def test_relative_keeps_the_fraction_of_now():
    assert smpptime.parse("000000000001000R", 1000.5) == 1001.5


@pytest.mark.parametrize(
    ("now", "value", "expected"),
    [
        # Months and years move the calendar date and keep the time of day.
        (epoch(2026, 3, 15, 10, 30), "000100000000000R", epoch(2026, 4, 15, 10, 30)),
        (epoch(2026, 3, 15, 10, 30), "010000000000000R", epoch(2027, 3, 15, 10, 30)),
        (epoch(2026, 11, 15), "000300000000000R", epoch(2027, 2, 15)),
        (epoch(2026, 1, 15), "002400000000000R", epoch(2028, 1, 15)),
        # The day is clamped to the length of the target month.
        (epoch(2026, 1, 31, 10, 30), "000100000000000R", epoch(2026, 2, 28, 10, 30)),
        (epoch(2028, 1, 31), "000100000000000R", epoch(2028, 2, 29)),
        (epoch(2026, 3, 31), "000100000000000R", epoch(2026, 4, 30)),
        (epoch(2024, 2, 29), "010000000000000R", epoch(2025, 2, 28)),
        (epoch(2024, 2, 29), "040000000000000R", epoch(2028, 2, 29)),
        # The duration is added after the calendar move: Jan 31 + 1 month + 1 day = Mar 1.
        (epoch(2026, 1, 31), "000101000000000R", epoch(2026, 3, 1)),
    ],
)
def test_relative_calendar(now, value, expected):
    assert smpptime.parse(value, now) == expected


# --- invalid values ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("2601011200000", "16 characters"),
        ("2601011200000000+", "16 characters"),
        ("260101120000000", "16 characters"),
        (" 260101120000000+", "16 characters"),
        ("260101120000000 ", "must end in"),
        ("260101120000000Z", "must end in"),
        ("260101120000000r", "must end in"),
        ("26010112000000a+", "15 digits"),
        ("2601011200000 0+", "15 digits"),
        ("-60101120000000+", "15 digits"),
        ("26010112000000²+", "15 digits"),
        ("26010112000000٣+", "15 digits"),
        ("00000700000000xR", "15 digits"),
        ("261301120000000+", "month 13"),
        ("260001120000000+", "month 00"),
        ("260100120000000+", "day 00"),
        ("260132120000000+", "day 32"),
        ("260230120000000+", "day 30"),
        ("260229120000000+", "day 29"),
        ("260431120000000+", "day 31"),
        ("260101240000000+", "hour 24"),
        ("260101126000000+", "minute 60"),
        ("260101120060000+", "second 60"),
        ("260101120000049+", "offset 49"),
        ("260101120000099-", "offset 99"),
    ],
)
def test_invalid(value, reason):
    with pytest.raises(ValueError, match=reason) as info:
        smpptime.parse(value, NOW)
    assert "\n" not in str(info.value)


def parse_or_value_error(value: str) -> None:
    """Parse ``value``; any exception other than ValueError fails the test."""
    try:
        result = smpptime.parse(value, NOW)
    except ValueError:
        return
    assert result is None or isinstance(result, float)


@given(st.text(max_size=20))
def test_parse_raises_only_value_error(value):
    parse_or_value_error(value)


@given(st.text(alphabet="0123456789+-R", min_size=16, max_size=16))
def test_parse_raises_only_value_error_on_near_misses(value):
    parse_or_value_error(value)


# --- formatting ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("instant", "quarters", "expected"),
    [
        (epoch(2026, 1, 1, 11), 0, "260101110000000+"),
        (epoch(2026, 1, 1, 11), 4, "260101120000004+"),
        (epoch(2026, 1, 1, 13), -4, "260101120000004-"),
        (epoch(2025, 12, 31, 23), 8, "260101010000008+"),
        (epoch(2026, 1, 1, 11) + 0.3, 0, "260101110000300+"),
        # Rounded to the nearest tenth, carrying into the seconds.
        (epoch(2026, 1, 1, 11) + 0.96, 0, "260101110001000+"),
    ],
)
def test_format_absolute(instant, quarters, expected):
    assert smpptime.format_absolute(instant, quarters) == expected


@pytest.mark.parametrize(
    ("instant", "quarters"),
    [
        (epoch(2026, 1, 1), 49),
        (epoch(2026, 1, 1), -49),
        (epoch(1999, 12, 31, 23, 59, 59), 0),
        (epoch(2100, 1, 1), 0),
        # In range in UTC but not in the requested local time.
        (epoch(2099, 12, 31, 23), 4),
        (epoch(2000, 1, 1, 0, 30), -4),
    ],
)
def test_format_absolute_out_of_range(instant, quarters):
    with pytest.raises(ValueError):
        smpptime.format_absolute(instant, quarters)


@given(INSTANTS_TENTHS, QUARTERS)
def test_absolute_round_trip_from_epoch(tenths, quarters):
    text = smpptime.format_absolute(tenths / 10, quarters)
    assert len(text) == 16
    assert smpptime.parse(text, NOW) == tenths / 10


@given(
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31, 23, 59, 59)),
    st.integers(min_value=0, max_value=9),
    QUARTERS,
)
def test_absolute_round_trip_from_text(local, tenths, quarters):
    text = f"{local:%y%m%d%H%M%S}{tenths}{abs(quarters):02d}{'-' if quarters < 0 else '+'}"
    assert smpptime.format_absolute(smpptime.parse(text, NOW), quarters) == text


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (0, "000000000000000R"),
        (7 * 86400, "000007000000000R"),
        (86400 + 2 * 3600 + 3 * 60 + 4, "000001020304000R"),
        (100 * 86400 - 1, "000099235959000R"),
    ],
)
def test_format_relative(seconds, expected):
    assert smpptime.format_relative(seconds) == expected


@pytest.mark.parametrize("seconds", [-1, 100 * 86400])
def test_format_relative_out_of_range(seconds):
    with pytest.raises(ValueError):
        smpptime.format_relative(seconds)


@given(
    st.integers(min_value=0, max_value=100 * 86400 - 1),
    st.floats(min_value=epoch(2000, 1, 1), max_value=epoch(2090, 1, 1)),
)
def test_relative_round_trip(seconds, now):
    text = smpptime.format_relative(seconds)
    assert len(text) == 16
    assert smpptime.parse(text, now) == now + seconds


@pytest.mark.parametrize(
    ("instant", "expected"),
    [
        (epoch(2026, 1, 1, 11, 5, 59) + 0.9, "2601011105"),
        (epoch(2000, 2, 29, 23, 59), "0002292359"),
    ],
)
def test_format_date(instant, expected):
    assert smpptime.format_date(instant) == expected
