"""SMPP 3.4 time format (spec section 7.1.1): ``YYMMDDhhmmsstnnp``.

Absolute form: a local date and time, ``t`` tenths of a second, ``nn`` the distance from UTC
in quarter hours (00-48) and ``p`` ``+`` (local time ahead of UTC) or ``-`` (behind).
Relative form: ``p`` is ``R`` and the first twelve digits count years, months, days, hours,
minutes and seconds from the SMSC's current time.

The clock is always injected (``now``, a UTC epoch in seconds) so that callers and tests
decide what "now" is; nothing here reads the system clock.
"""

import calendar
import time
from datetime import date

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_MAX_QUARTERS = 48
_QUARTER = 900  # seconds in a quarter hour
_DAY = 86400
# The two-digit year of the absolute form covers local times in 2000-2099.
_FIRST_LOCAL = (date(2000, 1, 1).toordinal() - _EPOCH_ORDINAL) * _DAY
_END_LOCAL = (date(2100, 1, 1).toordinal() - _EPOCH_ORDINAL) * _DAY
# format_relative writes days in a two-digit field and keeps hh:mm:ss below one day, so the
# longest duration it can write is 99 days 23:59:59.
_MAX_RELATIVE = 100 * _DAY - 1
_MONTH_DAYS = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def parse(value: str, now: float) -> float | None:
    """Return the UTC epoch seconds that ``value`` designates, or None for an empty value.

    Empty means "now" (schedule) or "the SMSC default" (validity); the caller picks which.
    Raises ValueError, with a one-line reason, for anything that is not a valid SMPP time.
    """
    if value == "":
        return None
    if len(value) != 16:
        raise ValueError(f"SMPP time must be 16 characters, got {len(value)}")
    sign = value[15]
    if sign not in "+-R":
        raise ValueError(f"SMPP time must end in '+', '-' or 'R', got {sign!r}")
    digits = value[:15]
    # isdigit() alone would also let through non-ASCII digits such as '²' or '٣'.
    if not (digits.isascii() and digits.isdigit()):
        raise ValueError(f"SMPP time must start with 15 digits, got {digits!r}")
    year = int(value[0:2])
    month = int(value[2:4])
    day = int(value[4:6])
    hour = int(value[6:8])
    minute = int(value[8:10])
    second = int(value[10:12])
    if sign == "R":
        # Spec 7.1.1.2: in the relative form "t" and "nn" are ignored and *should* be 0 and 00.
        # We honour "ignored": any digits are accepted there, so a client that fills them in
        # is not rejected for it. The other fields are counts, not clock readings, so every
        # value 00-99 is meaningful (36 hours is a fine validity period).
        return _add_relative(now, year, month, day, hour, minute, second)
    return _absolute(
        year, month, day, hour, minute, second, int(value[12]), int(value[13:15]), sign
    )


def _absolute(
    year: int,
    month: int,
    day: int,
    hour: int,
    minute: int,
    second: int,
    tenths: int,
    quarters: int,
    sign: str,
) -> float:
    """Validate the fields of an absolute time and convert them to UTC epoch seconds."""
    year += 2000
    if not 1 <= month <= 12:
        raise ValueError(f"month {month:02d} is not in 01-12")
    days_in_month = _days_in_month(year, month)
    if not 1 <= day <= days_in_month:
        raise ValueError(f"day {day:02d} is not in 01-{days_in_month} for {year}-{month:02d}")
    if hour > 23:
        raise ValueError(f"hour {hour:02d} is not in 00-23")
    if minute > 59:
        raise ValueError(f"minute {minute:02d} is not in 00-59")
    if second > 59:
        raise ValueError(f"second {second:02d} is not in 00-59")
    if quarters > _MAX_QUARTERS:
        raise ValueError(f"UTC offset {quarters:02d} quarter hours is not in 00-48")
    local = (date(year, month, day).toordinal() - _EPOCH_ORDINAL) * _DAY
    local += hour * 3600 + minute * 60 + second
    # '+' means local time is ahead of UTC, so UTC is local minus the offset.
    utc = local - quarters * _QUARTER if sign == "+" else local + quarters * _QUARTER
    # One rounding, to the float nearest the exact value; utc + tenths / 10 would round twice.
    return (utc * 10 + tenths) / 10


def _add_relative(
    now: float, years: int, months: int, days: int, hours: int, minutes: int, seconds: int
) -> float:
    """Return ``now`` moved by a relative SMPP time.

    Years and months move the UTC calendar date (a month is not a fixed number of seconds),
    clamping the day to the target month's length: Jan 31 + 1 month is Feb 28 or 29. The
    rest is a plain duration. The time of day and the fraction of ``now`` are untouched.
    """
    shift = 0
    if years or months:
        start = date.fromordinal(_EPOCH_ORDINAL + int(now // _DAY))
        index = start.year * 12 + start.month - 1 + years * 12 + months
        year, month = divmod(index, 12)
        month += 1
        day = min(start.day, _days_in_month(year, month))
        shift = date(year, month, day).toordinal() - start.toordinal()
    # One integer sum, added once, so that now + duration is exact for whole seconds.
    return now + (((shift + days) * 24 + hours) * 60 + minutes) * 60 + seconds


def _days_in_month(year: int, month: int) -> int:
    # calendar.monthrange also computes a weekday, which doubled the cost of parse().
    return 29 if month == 2 and calendar.isleap(year) else _MONTH_DAYS[month]


def format_absolute(epoch: float, quarters: int = 0) -> str:
    """Render ``epoch`` as a 16-character absolute SMPP time in UTC offset ``quarters``.

    ``quarters`` is the offset in quarter hours, -48 to 48 (negative renders as ``-``). The
    instant is rounded to the nearest tenth of a second, the precision of the format.
    Raises ValueError if the offset is out of range or the local year is not 2000-2099.
    """
    if not -_MAX_QUARTERS <= quarters <= _MAX_QUARTERS:
        raise ValueError(f"UTC offset {quarters} quarter hours is not in -48..48")
    utc, tenths = divmod(round(epoch * 10), 10)
    local = utc + quarters * _QUARTER
    if not _FIRST_LOCAL <= local < _END_LOCAL:
        raise ValueError(f"epoch {epoch} is not in 2000-2099 local time")
    sign = "-" if quarters < 0 else "+"
    return f"{time.strftime('%y%m%d%H%M%S', time.gmtime(local))}{tenths}{abs(quarters):02d}{sign}"


def format_relative(seconds: int) -> str:
    """Render a duration as a 16-character relative SMPP time (``...000R``).

    Only the days, hours, minutes and seconds fields are used; years and months stay 00.
    Days are not carried into months or years: those are calendar lengths in ``parse``, so a
    carry would change the instant the string designates. A duration of 100 days or more
    does not fit and raises ValueError, as does a negative one; use ``format_absolute``
    for such instants.
    """
    if not 0 <= seconds <= _MAX_RELATIVE:
        raise ValueError(f"relative SMPP time must be 0-{_MAX_RELATIVE} seconds, got {seconds}")
    days, rest = divmod(seconds, _DAY)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return f"0000{days:02d}{hours:02d}{minutes:02d}{secs:02d}000R"


def format_date(epoch: float) -> str:
    """Render ``epoch`` as ``YYMMDDhhmm`` in UTC, the date form of delivery receipt text."""
    return time.strftime("%y%m%d%H%M", time.gmtime(epoch))
