"""Agent schedules: weekly shifts per agent, and the agents staffed in each 15-minute interval (pure).

A shift is a weekday and a span of wall-clock time, written ``mon 09:00-17:00``. Times are local to
the queue being planned (its ``time_zone``), so a shift follows daylight saving like business hours
do. A shift ends before its end time; ``24:00`` ends at midnight, and an end before the start runs
over midnight into the next day (``fri 22:00-06:00`` ends on Saturday at six; ``sun 22:00-02:00``
ends on Monday). A shift that ends when it starts is empty. An agent's shifts may touch
(``09:00-12:00`` then ``12:00-17:00``) but never overlap, and a schedule has at least one shift: :func:`make_schedule` refuses anything else with a
:class:`~callcenter.errors.ValidationError` that names the shifts at fault.

Staffing is counted minute by minute: an interval in which one agent leaves after ten minutes has
``(n, 10 min)`` and ``(n - 1, 5 min)`` as :attr:`IntervalStaffing.segments`, so the forecast can
weigh the service level of each staffing level by the time it lasts instead of rounding.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise
from typing import Final

from callcenter.errors import ValidationError

#: Weekday names, Monday first (``date.weekday()`` order).
WEEKDAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MINUTES_PER_DAY: Final = 1440
MINUTES_PER_WEEK: Final = 7 * MINUTES_PER_DAY
#: Length of one planning interval.
INTERVAL_MIN: Final = 15
INTERVALS_PER_DAY: Final = MINUTES_PER_DAY // INTERVAL_MIN
#: The most shifts one agent's schedule may hold (two a day for a week, with room to spare).
MAX_SHIFTS: Final = 50

_FULL_NAMES: Final = {
    "monday": "mon",
    "tuesday": "tue",
    "wednesday": "wed",
    "thursday": "thu",
    "friday": "fri",
    "saturday": "sat",
    "sunday": "sun",
}
_SHIFT: Final = re.compile(r"^\s*([A-Za-z]+)\s+(\d{1,2}:\d{2})\s*-\s*(\d{1,2}:\d{2})\s*$")
_CLOCK: Final = re.compile(r"^(\d{1,2}):(\d{2})$")


@dataclass(frozen=True, kw_only=True, slots=True, order=True)
class Shift:
    """One weekly shift: from ``start_min`` on ``weekday`` for :attr:`length_min` minutes.

    :param weekday: 0 is Monday.
    :param start_min: minutes after local midnight, 0 to 1439.
    :param end_min: minutes after local midnight, 1 to 1440; before ``start_min`` the shift ends on
        the next day; equal to it is refused (empty).
    """

    weekday: int
    start_min: int
    end_min: int

    def __post_init__(self) -> None:
        _require_whole(self.weekday, "weekday", 0, 6)
        _require_whole(self.start_min, "start_min", 0, MINUTES_PER_DAY - 1)
        _require_whole(self.end_min, "end_min", 1, MINUTES_PER_DAY)
        if self.end_min == self.start_min:
            raise ValidationError(f"shift {self} is empty: it ends when it starts")

    @property
    def day(self) -> str:
        return WEEKDAYS[self.weekday]

    @property
    def start(self) -> str:
        """``HH:MM``."""
        return _clock(self.start_min)

    @property
    def end(self) -> str:
        """``HH:MM`` (``24:00`` for midnight at the end of the day)."""
        return _clock(self.end_min)

    @property
    def length_min(self) -> int:
        if self.end_min > self.start_min:
            return self.end_min - self.start_min
        return self.end_min + MINUTES_PER_DAY - self.start_min

    def spans(self) -> tuple[tuple[int, int], ...]:
        """The shift as ``[start, end)`` minutes of the week (0 is Monday 00:00), split at the week's end."""
        start = self.weekday * MINUTES_PER_DAY + self.start_min
        end = start + self.length_min
        if end <= MINUTES_PER_WEEK:
            return ((start, end),)
        return ((start, MINUTES_PER_WEEK), (0, end - MINUTES_PER_WEEK))

    def __str__(self) -> str:
        return f"{self.day} {self.start}-{self.end}"


@dataclass(frozen=True, kw_only=True, slots=True)
class Schedule:
    """An agent's weekly shifts, in week order. Build it with :func:`make_schedule`, which checks them."""

    agent_id: str
    shifts: tuple[Shift, ...]
    updated_at: datetime | None = None
    updated_by: str = ""

    @property
    def hours_per_week(self) -> float:
        return sum(s.length_min for s in self.shifts) / 60.0


@dataclass(frozen=True, slots=True)
class IntervalStaffing:
    """Agents staffed in one 15-minute interval of a day.

    :param slot: the interval's place in the day, 0 (00:00-00:15) to 95.
    :param segments: ``(agents, minutes)`` in time order; the minutes add up to 15.
    """

    slot: int
    segments: tuple[tuple[int, int], ...]

    @property
    def mean_agents(self) -> float:
        """Agents staffed on average over the interval."""
        return sum(agents * minutes for agents, minutes in self.segments) / INTERVAL_MIN

    @property
    def max_agents(self) -> int:
        return max(agents for agents, _ in self.segments)


def parse_clock(text: object, *, name: str = "time") -> int:
    """Minutes after midnight of ``HH:MM`` (``24:00`` is 1440). :raises ValidationError:"""
    match = _CLOCK.match(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise ValidationError(f"{name} must be HH:MM, not {text!r}")
    hours, minutes = int(match.group(1)), int(match.group(2))
    if minutes > 59 or hours > 24 or (hours == 24 and minutes != 0):
        raise ValidationError(f"{name} must be a time from 00:00 to 24:00, not {text!r}")
    return hours * 60 + minutes


def parse_weekday(text: object) -> int:
    """0 for ``mon`` or ``Monday`` (any case), up to 6 for Sunday. :raises ValidationError:"""
    key = text.strip().lower() if isinstance(text, str) else ""
    key = _FULL_NAMES.get(key, key)
    if key not in WEEKDAYS:
        raise ValidationError(f"day must be one of {', '.join(WEEKDAYS)}, not {text!r}")
    return WEEKDAYS.index(key)


def shift_of(day: object, start: object, end: object) -> Shift:
    """A shift from its parts (``"mon"``, ``"09:00"``, ``"17:00"``). :raises ValidationError:"""
    start_min = parse_clock(start, name="start")
    if start_min == MINUTES_PER_DAY:
        raise ValidationError("start must be before 24:00; 24:00 is the end of a day")
    end_min = parse_clock(end, name="end")
    if end_min == 0:
        if start_min == 0:
            raise ValidationError(f"shift {day} {start}-{end} is empty: it ends when it starts")
        end_min = MINUTES_PER_DAY  # ending at midnight: 22:00-00:00 is 22:00-24:00
    return Shift(weekday=parse_weekday(day), start_min=start_min, end_min=end_min)


def parse_shift(text: object) -> Shift:
    """``mon 09:00-17:00`` as a :class:`Shift`. :raises ValidationError:"""
    match = _SHIFT.match(text) if isinstance(text, str) else None
    if match is None:
        raise ValidationError(f"a shift reads like 'mon 09:00-17:00', not {text!r}")
    return shift_of(match.group(1), match.group(2), match.group(3))


def check_shifts(shifts: Iterable[Shift]) -> tuple[Shift, ...]:
    """The shifts in week order once checked: at least one, at most :data:`MAX_SHIFTS`, none overlapping.

    :raises ValidationError: naming the first two shifts that overlap.
    """
    ordered = tuple(sorted(shifts))
    if not ordered:
        raise ValidationError("a schedule needs at least one shift, e.g. 'mon 09:00-17:00'")
    if len(ordered) > MAX_SHIFTS:
        raise ValidationError(f"a schedule holds at most {MAX_SHIFTS} shifts, not {len(ordered)}")
    spans = sorted((start, end, shift) for shift in ordered for start, end in shift.spans())
    for (_, end, first), (start, _, second) in pairwise(spans):
        if start < end:
            raise ValidationError(f"shifts {first} and {second} overlap")
    return ordered


def make_schedule(
    agent_id: object, shifts: Iterable[Shift], *, updated_at: datetime | None = None, updated_by: str = ""
) -> Schedule:
    """A checked schedule (see :func:`check_shifts`). :raises ValidationError:"""
    if not isinstance(agent_id, str) or not agent_id.strip():
        raise ValidationError(f"agent_id must be a non-empty string, not {agent_id!r}")
    return Schedule(
        agent_id=agent_id, shifts=check_shifts(shifts), updated_at=updated_at, updated_by=updated_by
    )


def staffing(schedules: Iterable[Schedule], weekday: int) -> tuple[IntervalStaffing, ...]:
    """Agents staffed in each of the 96 intervals of ``weekday`` (0 is Monday), by the schedules given.

    Every schedule counts as one agent; pass only the agents who serve the queue being planned.
    """
    _require_whole(weekday, "weekday", 0, 6)
    day_start = weekday * MINUTES_PER_DAY
    deltas: Counter[int] = Counter()
    for schedule in schedules:
        for shift in schedule.shifts:
            for start, end in shift.spans():
                start, end = (
                    max(start, day_start) - day_start,
                    min(end, day_start + MINUTES_PER_DAY) - day_start,
                )
                if start < end:
                    deltas[start] += 1
                    deltas[end] -= 1
    points = sorted(set(deltas) | set(range(0, MINUTES_PER_DAY + 1, INTERVAL_MIN)))
    segments: list[list[tuple[int, int]]] = [[] for _ in range(INTERVALS_PER_DAY)]
    level = 0
    for start, end in pairwise(points):
        level += deltas[start]
        slot = segments[start // INTERVAL_MIN]
        if slot and slot[-1][0] == level:
            slot[-1] = (level, slot[-1][1] + end - start)
        else:
            slot.append((level, end - start))
    return tuple(IntervalStaffing(slot, tuple(parts)) for slot, parts in enumerate(segments))


def slot_label(weekday: int, slot: int) -> str:
    """``mon 09:00-09:15`` for Monday's interval 36."""
    start = slot * INTERVAL_MIN
    return f"{WEEKDAYS[weekday]} {_clock(start)}-{_clock(start + INTERVAL_MIN)}"


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _require_whole(value: object, name: str, minimum: int, maximum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"{name} must be a whole number, not {value!r}")
    if not minimum <= value <= maximum:
        raise ValidationError(f"{name} must be between {minimum} and {maximum}, not {value}")
