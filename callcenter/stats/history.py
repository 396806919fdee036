"""Historical views: range and filter checks, day/week/month rollups of interval rows, CSV (pure).

Rollups sum :class:`Counts` and then compute :func:`figures`: a day's service level is never an
average of its intervals' service levels.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from enum import StrEnum
from typing import Final

from callcenter.errors import ValidationError
from callcenter.stats.definitions import COUNTED_NAMES, Counts, StatsConfig, figures
from callcenter.stats.intervals import NO_QUEUE, IntervalKey

#: The longest range one query may cover.
MAX_RANGE: Final = timedelta(days=366)
WEEKDAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HOURS: Final = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")


class Period(StrEnum):
    INTERVAL = "interval"
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


@dataclass(frozen=True, kw_only=True, slots=True)
class HistoryFilter:
    """Which rows a historical query keeps; weekdays and hours are read in ``zone``'s local time.

    ``hours`` is ``(start_min, end_min)``: an interval is kept when its local start lies in
    ``[start, end)``.
    """

    since: datetime
    until: datetime
    zone: tzinfo = UTC
    queues: tuple[str, ...] | None = None
    weekdays: frozenset[int] | None = None
    hours: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        for name in ("since", "until"):
            value = getattr(self, name)
            if value.tzinfo is None or value.utcoffset() is None:
                raise ValidationError(f"{name} needs a UTC offset, e.g. 2026-11-23T00:00:00+00:00")
        if self.until <= self.since:
            raise ValidationError("until must be after since")
        if self.until - self.since > MAX_RANGE:
            raise ValidationError(f"the range is longer than {MAX_RANGE.days} days: ask for less")

    def keeps(self, start: datetime) -> bool:
        local = start.astimezone(self.zone)
        if self.weekdays is not None and local.weekday() not in self.weekdays:
            return False
        if self.hours is not None:
            minute = local.hour * 60 + local.minute
            if not self.hours[0] <= minute < self.hours[1]:
                return False
        return True


def parse_weekdays(text: str) -> frozenset[int]:
    """``mon,tue,fri`` as weekday numbers (Monday 0). :raises ValidationError: for an unknown day."""
    days = [d.strip().lower() for d in text.split(",") if d.strip()]
    unknown = [d for d in days if d not in WEEKDAYS]
    if unknown or not days:
        raise ValidationError(f"weekday must list days among {','.join(WEEKDAYS)}, not {text!r}")
    return frozenset(WEEKDAYS.index(d) for d in days)


def parse_hours(text: str) -> tuple[int, int]:
    """``09:00-17:30`` as minutes of the day. :raises ValidationError: when malformed or empty."""
    match = _HOURS.match(text.strip())
    if match is None:
        raise ValidationError(f"hours must look like 09:00-17:30, not {text!r}")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or m1 > 59 or h2 > 24 or m2 > 59 or (h2 == 24 and m2 != 0):
        raise ValidationError(f"hours {text!r} is not a time range")
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if end <= start:
        raise ValidationError(f"hours {text!r} ends before it starts")
    return start, end


@dataclass(frozen=True, kw_only=True, slots=True)
class HistoryRow:
    """One row of a historical answer: a queue (``None``: all queues) over ``[start, end)``."""

    queue: str | None
    start: datetime
    end: datetime
    counts: Counts


def period_start(start: datetime, period: Period, zone: tzinfo) -> datetime:
    """The local start of the day, week (Monday) or month holding ``start``, as an aware local time."""
    if period is Period.INTERVAL:
        return start.astimezone(zone)
    local = start.astimezone(zone).replace(hour=0, minute=0, second=0, microsecond=0)
    if period is Period.WEEK:
        local = local - timedelta(days=local.weekday())
    elif period is Period.MONTH:
        local = local.replace(day=1)
    return local


def period_end(start: datetime, period: Period) -> datetime:
    if period is Period.INTERVAL:
        return start + timedelta(minutes=15)
    if period is Period.DAY:
        nxt = start.replace(tzinfo=None) + timedelta(days=1)
    elif period is Period.WEEK:
        nxt = start.replace(tzinfo=None) + timedelta(days=7)
    else:
        year, month = (start.year + 1, 1) if start.month == 12 else (start.year, start.month + 1)
        nxt = start.replace(tzinfo=None, year=year, month=month)
    return nxt.replace(tzinfo=start.tzinfo)


def rollup(
    rows: Iterable[tuple[IntervalKey, Counts]],
    flt: HistoryFilter,
    period: Period,
    *,
    by_queue: bool = True,
) -> tuple[HistoryRow, ...]:
    """Rows kept by ``flt``, summed per period (and per queue unless ``by_queue`` is false)."""
    sums: dict[tuple[str | None, datetime], Counts] = {}
    for key, counts in rows:
        if not flt.since <= key.start < flt.until or not flt.keeps(key.start):
            continue
        if flt.queues is not None and key.queue not in flt.queues:
            continue
        queue = (key.queue if key.queue != NO_QUEUE else None) if by_queue else None
        if by_queue and queue is None:
            continue  # calls that never reached a queue count in the all-queues rows only
        bucket = (queue, period_start(key.start, period, flt.zone))
        sums[bucket] = sums.get(bucket, Counts()) + counts
    ordered = sorted(sums.items(), key=lambda item: (item[0][1], item[0][0] or ""))
    return tuple(
        HistoryRow(queue=queue, start=start, end=period_end(start, period), counts=counts)
        for (queue, start), counts in ordered
    )


def to_csv(rows: Sequence[HistoryRow], config: StatsConfig) -> str:
    """The rows as CSV: queue, start, end, then every counted figure by its dictionary name."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["queue", "start", "end", *COUNTED_NAMES])
    for row in rows:
        values = figures(row.counts, config)
        writer.writerow(
            [
                row.queue or "",
                row.start.isoformat(),
                row.end.isoformat(),
                *("" if values[n] is None else values[n] for n in COUNTED_NAMES),
            ]
        )
    return out.getvalue()
