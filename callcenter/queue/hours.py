"""Business hours of a queue: weekly open intervals in a time zone, and holidays (pure core).

A queue with no schedule is always open (holidays still close it). The weekly schedule is local wall
time in an IANA zone, so it follows daylight saving: ``09:00-17:00`` opens at nine on the local clock
in winter and in summer. An interval ends before its end time; ``24:00`` ends at midnight. A shift
over midnight is written as two intervals, one on each day.

The JSON form (API body, ``callcenter queue set --hours``)::

    {"time_zone": "Europe/Paris",
     "weekly": {"mon": ["09:00-12:30", "13:30-18:00"], "sat": ["10:00-13:00"]},
     "holidays": ["2026-12-25", "2027-01-01"]}

Days left out of ``weekly`` are closed; ``"weekly": null`` is always open.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from callcenter.errors import ValidationError

#: Weekday keys, Monday first (``date.weekday()`` order).
WEEKDAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL_NAMES: Final = {
    "monday": "mon",
    "tuesday": "tue",
    "wednesday": "wed",
    "thursday": "thu",
    "friday": "fri",
    "saturday": "sat",
    "sunday": "sun",
}
_INTERVAL: Final = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
#: How far ahead :func:`next_open` looks (holidays may close many days in a row).
SEARCH_DAYS: Final = 400
_END_OF_DAY: Final = time.max


@dataclass(frozen=True, slots=True)
class Interval:
    """Open from ``start`` (included) to ``end`` (excluded; ``time.max`` stands for 24:00)."""

    start: time
    end: time

    def contains(self, wall: time) -> bool:
        return self.start <= wall < self.end or (self.end == _END_OF_DAY and wall >= self.start)


@dataclass(frozen=True, slots=True)
class BusinessHours:
    """A checked schedule. ``weekly`` is ``None`` (always open) or seven tuples of sorted intervals."""

    zone: tzinfo
    weekly: tuple[tuple[Interval, ...], ...] | None = None
    holidays: frozenset[date] = frozenset()


ALWAYS_OPEN: Final = BusinessHours(zone=UTC)


def zone_of(name: str) -> ZoneInfo:
    """The IANA zone ``name``. :raises ValidationError: for an unknown zone."""
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationError(f"unknown time zone {name!r}: use an IANA name such as Europe/Paris") from exc


def parse_interval(text: object) -> Interval:
    """``"09:00-17:30"``. :raises ValidationError: for another shape, an impossible time or an empty interval."""
    match = _INTERVAL.match(text) if isinstance(text, str) else None
    if match is None:
        raise ValidationError(f"interval {text!r}: write it as HH:MM-HH:MM, e.g. 09:00-17:30")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or m1 > 59 or h2 > 24 or m2 > 59 or (h2 == 24 and m2 != 0):
        raise ValidationError(f"interval {text!r}: hours run 00:00 to 24:00")
    start = time(h1, m1)
    end = _END_OF_DAY if h2 == 24 else time(h2, m2)
    if end <= start:
        raise ValidationError(
            f"interval {text!r}: the end must come after the start (split a shift over midnight in two)"
        )
    return Interval(start, end)


def normalise_weekly(weekly: Mapping[str, object] | None) -> dict[str, tuple[str, ...]] | None:
    """The stored form of a weekly schedule: short weekday keys, canonical ``HH:MM-HH:MM`` texts.

    :raises ValidationError: for an unknown day, a value that is not a list of intervals, a bad
        interval or overlapping intervals on one day.
    """
    if weekly is None:
        return None
    if not isinstance(weekly, Mapping):
        raise ValidationError("business hours must be an object of weekday -> list of HH:MM-HH:MM, or null")
    result: dict[str, tuple[str, ...]] = {}
    for key, value in weekly.items():
        day = _day_key(key)
        if day in result:
            raise ValidationError(f"business hours: {day} is given twice")
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise ValidationError(f"business hours: {key} must be a list of HH:MM-HH:MM texts")
        intervals = sorted((parse_interval(v) for v in value), key=lambda i: i.start)
        for before, after in zip(intervals, intervals[1:], strict=False):
            if after.start < before.end:
                raise ValidationError(f"business hours: intervals of {day} overlap")
        result[day] = tuple(_interval_text(i) for i in intervals)
    return {day: result[day] for day in WEEKDAYS if day in result}


def parse_holidays(values: Iterable[object]) -> tuple[date, ...]:
    """Holidays from ``YYYY-MM-DD`` texts (or dates), sorted and without repeats. :raises ValidationError:"""
    days: set[date] = set()
    for value in values:
        if isinstance(value, date) and not isinstance(value, datetime):
            days.add(value)
            continue
        if not isinstance(value, str):
            raise ValidationError("holidays must be dates written YYYY-MM-DD")
        try:
            days.add(date.fromisoformat(value.strip()))
        except ValueError:
            raise ValidationError(f"holiday {value!r}: write it as YYYY-MM-DD") from None
    return tuple(sorted(days))


def business_hours(
    weekly: Mapping[str, Iterable[str]] | None, holidays: Iterable[date], time_zone: str
) -> BusinessHours:
    """The checked schedule of a queue's stored settings. :raises ValidationError:"""
    zone = zone_of(time_zone)
    checked = normalise_weekly({k: list(v) for k, v in weekly.items()} if weekly is not None else None)
    table = None
    if checked is not None:
        table = tuple(tuple(parse_interval(text) for text in checked.get(day, ())) for day in WEEKDAYS)
    return BusinessHours(zone=zone, weekly=table, holidays=frozenset(holidays))


@dataclass(frozen=True, slots=True)
class HoursDocument:
    """The parts of the JSON form that were given (``None``: keep the current value)."""

    weekly: dict[str, tuple[str, ...]] | None
    weekly_given: bool
    holidays: tuple[date, ...] | None
    time_zone: str | None


def parse_hours_document(document: object) -> HoursDocument:
    """Read the JSON form of the module docstring; a bare weekday object is taken as ``weekly``.

    :raises ValidationError: naming what is wrong.
    """
    if not isinstance(document, Mapping):
        raise ValidationError("hours must be a JSON object")
    known = {"weekly", "holidays", "time_zone"}
    if not set(document) & known:
        return HoursDocument(normalise_weekly(document), True, None, None)
    unknown = sorted(set(document) - known)
    if unknown:
        raise ValidationError(
            f"hours: unknown field(s) {', '.join(unknown)}; allowed: holidays, time_zone, weekly"
        )
    time_zone = document.get("time_zone")
    if time_zone is not None:
        if not isinstance(time_zone, str):
            raise ValidationError("hours: time_zone must be a string")
        zone_of(time_zone)
    holidays = document.get("holidays")
    if holidays is not None and not isinstance(holidays, list):
        raise ValidationError("hours: holidays must be a list of YYYY-MM-DD dates")
    weekly = document.get("weekly")
    return HoursDocument(
        weekly=normalise_weekly(weekly) if weekly is not None else None,
        weekly_given="weekly" in document,
        holidays=parse_holidays(holidays) if holidays is not None else None,
        time_zone=time_zone.strip() if time_zone is not None else None,
    )


def is_open(hours: BusinessHours, now: datetime) -> bool:
    """Whether the queue takes calls at the instant ``now`` (timezone-aware)."""
    local = now.astimezone(hours.zone)
    if local.date() in hours.holidays:
        return False
    if hours.weekly is None:
        return True
    wall = local.time()
    return any(interval.contains(wall) for interval in hours.weekly[local.weekday()])


def next_open(hours: BusinessHours, now: datetime) -> datetime | None:
    """The first instant at or after ``now`` when the queue is open (``now`` itself when open).

    In UTC. ``None`` when it never opens within :data:`SEARCH_DAYS` days (an empty schedule). An
    opening time that the clock skips (spring forward) opens when the clock jumps past it; one that
    happens twice (fall back) opens at its first occurrence and again at its second.
    """
    if is_open(hours, now):
        return now
    first_day = now.astimezone(hours.zone).date()
    for offset in range(SEARCH_DAYS + 1):
        day = first_day + timedelta(days=offset)
        if day in hours.holidays:
            continue
        starts = (
            [time(0, 0)]
            if hours.weekly is None
            else [interval.start for interval in hours.weekly[day.weekday()]]
        )
        for start in starts:
            for instant in _instants(day, start, hours.zone):
                if instant >= now and is_open(hours, instant):
                    return instant
    return None


def _instants(day: date, wall: time, zone: tzinfo) -> list[datetime]:
    """The UTC instants at which the local clock of ``zone`` reads ``wall`` on ``day`` (sorted).

    Two in a fall-back repeat; for a wall time the clock skips, the instant it jumps past it.
    """
    naive = datetime.combine(day, wall)
    earlier = naive.replace(tzinfo=zone, fold=0).astimezone(UTC)
    later = naive.replace(tzinfo=zone, fold=1).astimezone(UTC)
    if earlier.astimezone(zone).replace(tzinfo=None) == naive:
        found = {earlier}
        if later.astimezone(zone).replace(tzinfo=None) == naive:
            found.add(later)
        return sorted(found)
    # A skipped wall time: fold=1 reads before the gap, fold=0 after it; the jump lies in between.
    low, high = min(earlier, later), max(earlier, later)
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(zone).replace(tzinfo=None) >= naive:
            high = middle
        else:
            low = middle
    return [high.replace(microsecond=0)]


def _day_key(key: object) -> str:
    text = str(key).strip().lower()
    day = _FULL_NAMES.get(text, text)
    if day not in WEEKDAYS:
        raise ValidationError(f"business hours: unknown day {key!r}; use mon, tue, wed, thu, fri, sat, sun")
    return day


def _interval_text(interval: Interval) -> str:
    end = "24:00" if interval.end == _END_OF_DAY else interval.end.strftime("%H:%M")
    return f"{interval.start.strftime('%H:%M')}-{end}"
