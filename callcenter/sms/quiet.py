"""Quiet hours in the recipient's local time, with stricter regional rules (pure).

A message may go out at ``t`` only when ``t`` is inside the allowed window in *every* time zone the
recipient may be in (a number spanning several zones takes the most restrictive reading). A message due
outside the window waits for :func:`next_opening`, which walks local calendar days, so it lands on the
window's start across DST changes (a start that falls into a skipped hour opens at the first real
instant after it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Final
from zoneinfo import ZoneInfo

from callcenter.errors import ValidationError


@dataclass(frozen=True, slots=True)
class Window:
    """Allowed local hours ``[start, end)`` of one weekday."""

    start: time
    end: time

    def __post_init__(self) -> None:
        if not self.start < self.end:
            raise ValidationError(f"a quiet-hours window must start before it ends: {self.start}-{self.end}")

    def contains(self, moment: time) -> bool:
        return self.start <= moment < self.end


def _week(start: int, end: int) -> tuple[Window, ...]:
    return tuple(Window(time(start), time(end)) for _ in range(7))


#: The federal TCPA window: 8:00 to 21:00, every day.
DEFAULT_WEEK: Final = _week(8, 21)

#: Stricter rules by region (ISO 3166-2 style code), Monday first. From ANCHORS.md §2.5 (a vendor's
#: compilation: verify before relying on it).
US_STATE_RULES: Final[Mapping[str, tuple[Window, ...]]] = {
    "US-CT": _week(9, 20),
    **{f"US-{s}": _week(8, 20) for s in ("FL", "MD", "MS", "NJ", "OK")},
    "US-RI": tuple(Window(time(9), time(18)) for _ in range(5)) + (Window(time(10), time(17)),) * 2,
    "US-TX": tuple(Window(time(9), time(21)) for _ in range(6)) + (Window(time(12), time(21)),),
}


@dataclass(frozen=True, slots=True)
class QuietRules:
    """The default week and the regional overrides (each stricter rule replaces the default)."""

    default: tuple[Window, ...] = DEFAULT_WEEK
    regions: Mapping[str, tuple[Window, ...]] = field(default_factory=lambda: dict(US_STATE_RULES))

    def __post_init__(self) -> None:
        for week in (self.default, *self.regions.values()):
            if len(week) != 7:
                raise ValidationError("a quiet-hours week needs 7 windows, Monday first")

    def week_for(self, region: str | None) -> tuple[Window, ...]:
        if region is not None and region in self.regions:
            return self.regions[region]
        return self.default


@dataclass(frozen=True, slots=True)
class Recipient:
    """Where a recipient may be: candidate zones (never empty) and, where known, a region code."""

    zones: tuple[ZoneInfo, ...]
    region: str | None = None

    def __post_init__(self) -> None:
        if not self.zones:
            raise ValidationError("a recipient needs at least one time zone")


def is_allowed(at: datetime, recipient: Recipient, rules: QuietRules) -> bool:
    """True when ``at`` is inside the window in every zone of ``recipient``."""
    week = rules.week_for(recipient.region)
    return all(_allowed_in(at, zone, week) for zone in recipient.zones)


def next_opening(at: datetime, recipient: Recipient, rules: QuietRules) -> datetime:
    """The earliest instant at or after ``at`` when :func:`is_allowed` holds (``at`` itself if it does)."""
    if at.tzinfo is None:
        raise ValueError("next_opening needs an aware time")
    week = rules.week_for(recipient.region)
    moment = at
    # Each pass moves to the opening of one zone that is closed; windows are intervals, so a handful of
    # passes settle on a time open everywhere (or the zones share no hours and we give up loudly).
    for _ in range(64):
        closed = [zone for zone in recipient.zones if not _allowed_in(moment, zone, week)]
        if not closed:
            return moment
        moment = max(_opening_in(moment, zone, week) for zone in closed)
    raise ValidationError("the recipient's time zones share no allowed hours")


def _allowed_in(at: datetime, zone: ZoneInfo, week: Sequence[Window]) -> bool:
    local = at.astimezone(zone)
    return week[local.weekday()].contains(local.time())


def _opening_in(at: datetime, zone: ZoneInfo, week: Sequence[Window]) -> datetime:
    """The next window start in ``zone`` after ``at`` (``at`` is closed there)."""
    today = at.astimezone(zone).date()
    for offset in range(8):
        day = today + timedelta(days=offset)
        start = _local_instant(day, week[day.weekday()].start, zone)
        if start > at and _allowed_in(start, zone, week):
            return start
    raise ValidationError("no quiet-hours opening within a week")  # unreachable with 7 valid windows


def _local_instant(day: date, moment: time, zone: ZoneInfo) -> datetime:
    """The instant of local ``day`` ``moment``; a time skipped by DST lands after the gap."""
    # fold=0 reads the wall time with the offset before a transition: a skipped time then lands after
    # the gap (02:30 on a spring-forward night is 03:30), a repeated one takes its first occurrence.
    return datetime.combine(day, moment).replace(tzinfo=zone).astimezone(UTC)


_DAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def parse_window(text: str) -> Window:
    """``"08:00-21:00"`` as a :class:`Window`. :raises ValidationError:"""
    try:
        start, end = (time.fromisoformat(part.strip()) for part in text.split("-"))
    except ValueError:
        raise ValidationError(f"{text!r}: write a window as HH:MM-HH:MM") from None
    return Window(start, end)


def parse_quiet_rules(default: str, regions: str) -> QuietRules:
    """Rules from settings: the default window and ``REGION[@day]=HH:MM-HH:MM`` entries split by ``;``.

    Entries add to (or replace) the built-in US state table; a ``@day`` entry changes one weekday of
    the region's week. :raises ValidationError: naming the entry at fault.
    """
    base = parse_window(default)
    default_week = tuple(base for _ in range(7))
    table: dict[str, list[Window]] = {k: list(v) for k, v in US_STATE_RULES.items()}
    for entry in (e.strip() for e in regions.split(";")):
        if not entry:
            continue
        name, sep, window = entry.partition("=")
        if not sep:
            raise ValidationError(f"quiet region {entry!r}: write REGION=HH:MM-HH:MM")
        region, _, day = name.strip().upper().partition("@")
        parsed = parse_window(window)
        week = table.setdefault(region, list(default_week))
        if day:
            if day.lower() not in _DAYS:
                raise ValidationError(f"quiet region {entry!r}: day must be one of {', '.join(_DAYS)}")
            week[_DAYS.index(day.lower())] = parsed
        else:
            week[:] = [parsed] * 7
    return QuietRules(default=default_week, regions={k: tuple(v) for k, v in table.items()})
