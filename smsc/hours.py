"""Sending hours for promotional (``marketing``) traffic: when a message may go out.

A spec names days and local wall-clock windows::

    mon-sat 08:00-21:30                                  (DEFAULT, af2m charter 2026)
    mon-fri 08:00-12:00,14:00-20:00; sat 09:00-18:00
    mon,wed,fri 10:00-24:00; tz=America/Martinique; holidays=none

Clauses are separated by ``;``. A day clause is a day list (``mon``, ``mon-fri``,
``mon-wed,fri``; days ``mon tue wed thu fri sat sun``, no wrap-around) and a comma-separated
list of ``HH:MM-HH:MM`` windows (24-hour clock, end after start, ``24:00`` allowed as an end,
windows of a day must not overlap; touching ones are merged). A day not named is closed, and a
day may be named only once. ``never`` never opens; an empty spec is an error (accounts store
"" for "the default": :func:`of` maps it to DEFAULT). Two optional clauses,
``tz=Area/City`` and ``holidays=fr|none``, carry the time zone and the holiday calendar, so
that ``str(hours)`` is one self-contained text: ``SendingHours.parse(str(h)) == h``.

Holidays ``fr``: the French public holidays (Jan 1, Easter Monday, May 1, May 8, Ascension,
Whit Monday, Jul 14, Aug 15, Nov 1, Nov 11, Dec 25) close the whole local date.

Daylight saving: windows are local wall-clock times in the zone. Each window edge ``w`` is the
first instant at which the local clock shows ``w`` or later. So an edge in a DST gap (spring
forward, e.g. 02:30 on 2026-03-29 in Paris) is the first valid instant after the gap (03:00
CEST = 01:00 UTC), and an edge in a fold (fall back, e.g. 02:30 on 2026-10-25) is its first
occurrence (02:30 CEST = 00:30 UTC). A window lying wholly inside a gap is empty that day.

Nothing here reads the clock: every instant is a UTC epoch float given by the caller.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import lru_cache, partial
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT = "mon-sat 08:00-21:30"
DEFAULT_TIMEZONE = "Europe/Paris"
DEFAULT_HOLIDAYS = "fr"
HOLIDAY_CALENDARS = ("fr", "none")
SEARCH_DAYS = 400  # next_open looks this many local days ahead before giving up

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAY_INDEX = {name: i for i, name in enumerate(DAYS)}
_END_OF_DAY = 24 * 60
_TIME = re.compile(r"(\d{1,2}):(\d{2})")
_SPACED_PUNCTUATION = re.compile(r"\s*([,-])\s*")

Window = tuple[int, int]  # minutes since local midnight, [start, end)
DayWindows = tuple[Window, ...]


def easter(year: int) -> date:
    """Easter Sunday of a Gregorian year (anonymous Gregorian computus, Meeus/Jones/Butcher)."""
    a = year % 19
    b, c = divmod(year, 100)
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    leap = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * leap) // 451
    month, day = divmod(h + leap - 7 * m + 114, 31)
    return date(year, month, day + 1)


@lru_cache(maxsize=64)
def french_holidays(year: int) -> frozenset[date]:
    """The eleven French public holidays of a year (metropolitan France, Code du travail)."""
    sunday = easter(year)
    fixed = ((1, 1), (5, 1), (5, 8), (7, 14), (8, 15), (11, 1), (11, 11), (12, 25))
    movable = (1, 39, 50)  # Easter Monday, Ascension Thursday, Whit Monday
    return frozenset(
        [date(year, m, d) for m, d in fixed] + [sunday + timedelta(days=n) for n in movable]
    )


def is_holiday(day: date, calendar: str = DEFAULT_HOLIDAYS) -> bool:
    """Whether a local date is a public holiday in a calendar (``fr`` or ``none``)."""
    return calendar == "fr" and day in french_holidays(day.year)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"unknown time zone {name!r} (expected an IANA name)") from None


def _wall(t: int, zone: ZoneInfo) -> datetime:
    return datetime.fromtimestamp(t, zone).replace(tzinfo=None)


def _instant(wall: datetime, zone: ZoneInfo) -> int:
    """The first UTC instant (integer epoch seconds) at which the zone's clock shows ``wall``
    or later: ``wall`` itself if it exists, its first occurrence in a fold, the end of the gap
    if it falls in one."""
    first = int(wall.replace(tzinfo=zone, fold=0).timestamp())
    if _wall(first, zone) == wall:
        return first
    other = int(wall.replace(tzinfo=zone, fold=1).timestamp())
    lo, hi = min(first, other), max(first, other)
    if _wall(lo, zone) >= wall or _wall(hi, zone) < wall:
        return hi  # not the shape of a gap; never seen in tzdata, but do not loop
    while hi - lo > 1:  # the clock only jumps forward between lo and hi: bisect the jump
        mid = (lo + hi) // 2
        if _wall(mid, zone) >= wall:
            hi = mid
        else:
            lo = mid
    return hi


def _utc_windows(
    days: tuple[DayWindows, ...], zone: ZoneInfo, holidays: str, ordinal: int
) -> tuple[tuple[int, int], ...]:
    """The day's open windows as UTC [start, end) epoch seconds, empty ones dropped."""
    day = date.fromordinal(ordinal)
    if is_holiday(day, holidays):
        return ()
    midnight = datetime.combine(day, time())
    result = []
    for start, end in days[day.weekday()]:
        s = _instant(midnight + timedelta(minutes=start), zone)
        e = _instant(midnight + timedelta(minutes=end), zone)
        if s < e:
            result.append((s, e))
    return tuple(result)


def _within(windows: tuple[tuple[int, int], ...], t: float) -> bool:
    for s, e in windows:
        if t < e:
            return s <= t
    return False


def _format_time(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _parse_time(text: str, clause: str, *, end: bool) -> int:
    match = _TIME.fullmatch(text)
    if match is None:
        raise ValueError(f"bad time {text!r} in {clause!r}: expected HH:MM")
    hours, minutes = int(match[1]), int(match[2])
    if minutes > 59 or hours > 24 or (hours == 24 and (minutes or not end)):
        allowed = "00:00-24:00" if end else "00:00-23:59"
        raise ValueError(f"bad time {text!r} in {clause!r}: must be within {allowed}")
    return hours * 60 + minutes


def _parse_days(text: str, clause: str) -> list[int]:
    result: list[int] = []
    for item in text.split(","):
        first, sep, last = item.partition("-")
        names = (first, last) if sep else (first,)
        for name in names:
            if name not in _DAY_INDEX:
                raise ValueError(
                    f"unknown day {name!r} in {clause!r}: expected one of {' '.join(DAYS)}"
                )
        a, b = _DAY_INDEX[names[0]], _DAY_INDEX[names[-1]]
        if b < a:
            wrapped = _format_days(sorted([*range(a, 7), *range(b + 1)]))
            raise ValueError(f"day range {item!r} in {clause!r} runs backwards: write {wrapped}")
        for i in range(a, b + 1):
            if i in result:
                raise ValueError(f"{DAYS[i]} is named twice in {clause!r}")
            result.append(i)
    return result


def _parse_windows(text: str, clause: str) -> DayWindows:
    windows = []
    for item in text.split(","):
        start_text, sep, end_text = item.partition("-")
        if not sep:
            raise ValueError(f"bad window {item!r} in {clause!r}: expected HH:MM-HH:MM")
        start = _parse_time(start_text, clause, end=False)
        end = _parse_time(end_text, clause, end=True)
        if end <= start:
            raise ValueError(
                f"window {item!r} in {clause!r} must end after it starts "
                "(split one crossing midnight over two days)"
            )
        windows.append((start, end))
    windows.sort()
    merged = [windows[0]]
    for start, end in windows[1:]:
        last_start, last_end = merged[-1]
        if start < last_end:
            raise ValueError(
                f"windows {_format_time(last_start)}-{_format_time(last_end)} and "
                f"{_format_time(start)}-{_format_time(end)} overlap in {clause!r}"
            )
        if start == last_end:
            merged[-1] = (last_start, end)
        else:
            merged.append((start, end))
    return tuple(merged)


def _format_days(indices: list[int]) -> str:
    runs: list[list[int]] = []
    for i in indices:
        if runs and runs[-1][-1] == i - 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    return ",".join(
        DAYS[run[0]] if len(run) == 1 else f"{DAYS[run[0]]}-{DAYS[run[-1]]}" for run in runs
    )


def _check_days(days: Any) -> None:
    if not isinstance(days, tuple) or len(days) != 7:
        raise ValueError("days must be a tuple of 7 window tuples, Monday first")
    for windows in days:
        if not isinstance(windows, tuple):
            raise ValueError("each day's windows must be a tuple of (start, end) minutes")
        previous_end = -1
        for window in windows:
            if (
                not isinstance(window, tuple)
                or len(window) != 2
                or not all(type(m) is int for m in window)
                or not 0 <= window[0] < window[1] <= _END_OF_DAY
                or window[0] <= previous_end
            ):
                raise ValueError(
                    f"bad window {window!r}: (start, end) minutes in 0..1440, start < end, "
                    "sorted, neither overlapping nor touching"
                )
            previous_end = window[1]


@dataclass(frozen=True)
class SendingHours:
    """When promotional messages may be sent: local windows per weekday, a zone, holidays.

    ``days[i]`` holds weekday ``i``'s windows (Monday = 0) as sorted, disjoint, non-touching
    ``(start, end)`` minutes since local midnight. Build one with :meth:`parse`.
    """

    days: tuple[DayWindows, ...]
    timezone: str = DEFAULT_TIMEZONE
    holidays: str = DEFAULT_HOLIDAYS
    _zone: ZoneInfo = field(init=False, repr=False, compare=False)
    _day: Any = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_days(self.days)
        if self.holidays not in HOLIDAY_CALENDARS:
            raise ValueError(
                f"unknown holiday calendar {self.holidays!r} (expected "
                f"{' or '.join(HOLIDAY_CALENDARS)})"
            )
        zone = _zone(self.timezone)
        object.__setattr__(self, "_zone", zone)
        # Per local date (ordinal): the day's windows in UTC. ~3 years of dates fit.
        day = lru_cache(maxsize=1024)(partial(_utc_windows, self.days, zone, self.holidays))
        object.__setattr__(self, "_day", day)

    @classmethod
    def parse(
        cls, spec: str, timezone: str | None = None, holidays: str | None = None
    ) -> SendingHours:
        """Parse a spec (see the module docstring). ``timezone`` (default Europe/Paris) and
        ``holidays`` (default ``fr``) may also be given in the spec as ``tz=`` and
        ``holidays=`` clauses; giving both with different values is an error.

        Raises ValueError with a one-line message on a bad spec, zone or calendar."""
        days: list[DayWindows | None] = [None] * 7
        options: dict[str, str] = {}
        never = False
        if not spec.strip():  # the store's "" means DEFAULT: never guess, say so
            raise ValueError("empty sending hours: give days and windows, or 'never'")
        clauses = [c.strip() for c in spec.split(";")]
        for clause in clauses:
            if not clause:
                raise ValueError(f"empty clause in {spec!r} (a stray ';')")
            key, sep, value = clause.partition("=")
            if sep:
                key, value = key.strip().lower(), value.strip()
                if key not in ("tz", "holidays"):
                    raise ValueError(f"unknown option {key!r} in {clause!r}: use tz= or holidays=")
                if key in options:
                    raise ValueError(f"{key}= is given twice in {spec!r}")
                if not value:
                    raise ValueError(f"{key}= has no value in {spec!r}")
                options[key] = value.lower() if key == "holidays" else value
                continue
            normal = _SPACED_PUNCTUATION.sub(r"\1", clause.lower())
            if normal == "never":
                never = True
                continue
            parts = normal.split()
            if len(parts) == 1:
                raise ValueError(
                    f"no time window in {clause!r}: expected days then windows, "
                    "e.g. 'mon-sat 08:00-21:30'"
                )
            if len(parts) > 2:
                raise ValueError(
                    f"cannot read {clause!r}: expected days then windows, "
                    "e.g. 'mon-fri 08:00-12:00,14:00-20:00'"
                )
            indices = _parse_days(parts[0], clause)
            windows = _parse_windows(parts[1], clause)
            for i in indices:
                if days[i] is not None:
                    raise ValueError(f"{DAYS[i]} is given twice in {spec!r}")
                days[i] = windows
        if never and any(d is not None for d in days):
            raise ValueError(f"'never' cannot be combined with day clauses in {spec!r}")
        if not never and all(d is None for d in days):
            raise ValueError(f"no day clause in {spec!r}: write 'never' for hours that never open")
        for key, argument in (("tz", timezone), ("holidays", holidays)):
            if argument is not None and key in options and options[key] != argument:
                raise ValueError(f"{key}={options[key]} in the spec contradicts {argument!r}")
        return cls(
            days=tuple(d or () for d in days),
            timezone=options.get("tz", DEFAULT_TIMEZONE if timezone is None else timezone),
            holidays=options.get("holidays", DEFAULT_HOLIDAYS if holidays is None else holidays),
        )

    def __str__(self) -> str:
        """The canonical spec: days with the same windows grouped, Monday first; ``tz=`` and
        ``holidays=`` only when not the defaults."""
        groups: dict[DayWindows, list[int]] = {}
        for i, windows in enumerate(self.days):
            if windows:
                groups.setdefault(windows, []).append(i)
        clauses = [
            _format_days(indices)
            + " "
            + ",".join(f"{_format_time(s)}-{_format_time(e)}" for s, e in windows)
            for windows, indices in groups.items()
        ] or ["never"]
        if self.timezone != DEFAULT_TIMEZONE:
            clauses.append(f"tz={self.timezone}")
        if self.holidays != DEFAULT_HOLIDAYS:
            clauses.append(f"holidays={self.holidays}")
        return "; ".join(clauses)

    @property
    def never(self) -> bool:
        """True if no day has a window: such hours never open."""
        return not any(self.days)

    def windows_on(self, day: date) -> tuple[tuple[int, int], ...]:
        """A local date's open windows as UTC ``[start, end)`` epoch seconds (cached)."""
        return self._day(day.toordinal())

    def is_open(self, t: float) -> bool:
        """Whether a message may be sent at UTC epoch ``t``."""
        ordinal = datetime.fromtimestamp(t, self._zone).toordinal()
        # The next date too: after a fold across midnight the clock shows yesterday's date
        # again while today's first window (counted from its first occurrence) is open.
        return _within(self._day(ordinal), t) or _within(self._day(ordinal + 1), t)

    def next_open(self, t: float) -> float:
        """``t`` if open, else the UTC epoch at which the next window opens.

        Raises ValueError if nothing opens within SEARCH_DAYS local days."""
        if self.never:
            raise ValueError(f"sending hours {str(self)!r} never open")
        ordinal = datetime.fromtimestamp(t, self._zone).toordinal()
        for n in range(SEARCH_DAYS + 1):
            for s, e in self._day(ordinal + n):
                if t < e:
                    return t if s <= t else float(s)
        raise ValueError(f"sending hours {str(self)!r} do not open within {SEARCH_DAYS} days")


@lru_cache(maxsize=1024)
def _parsed(spec: str, timezone: str, holidays: str) -> SendingHours:
    return SendingHours.parse(spec, timezone, holidays)


def of(account: Any) -> SendingHours:
    """The sending hours of an account: anything with ``sending_hours`` ("" means DEFAULT),
    ``timezone`` and ``holidays`` attributes. Parsed once per distinct setting, so the
    per-date cache is shared by all the account's messages. ValueError if the stored
    setting is bad."""
    return _parsed(account.sending_hours or DEFAULT, account.timezone, account.holidays)
