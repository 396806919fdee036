"""Forecast of a queue per 15-minute interval and weekday from its stored calls, and a day's plan (pure).

Intervals are 15 minutes of the queue's local wall clock, keyed by weekday and slot (0 is 00:00-00:15,
95 is 23:45-24:00). Every UTC offset in use is a whole number of quarter hours, so an interval also
starts at a multiple of 900 s of Unix time; on the day clocks go back, one local quarter hour occurs
twice and counts twice.

What counts. Calls of the queue that arrived in ``[since, until)``, except ``after_hours`` and
``ivr_hangup`` (they never reached an open queue). Every such call is an arrival. An ``answered``
call gives a handle time: its talk time plus the queue's wrap-up. A call that waited (``wait_s > 0``)
and left the queue by hanging up (``abandoned``, ``short_abandon``) is an abandon after its wait;
one that left otherwise (answered, max wait, callback, voicemail) is censored at its wait, as in
:class:`~callcenter.capacity.predictors.PatienceEstimate` (exponential patience, maximum likelihood).

Smoothing. Arrivals: for each interval key, the counts of its past occurrences lying wholly in the
window, oldest first, are exponentially smoothed with ``α`` = :attr:`ForecastSettings.smoothing`
(level started at their mean, then ``level = α·count + (1-α)·level``). Handle time and patience:
each call weighs ``(1-α)^(age in weeks)``; the interval's own sums are shrunk toward the queue-wide
ones with the weight of :attr:`ForecastSettings.prior_calls` calls, so a quiet interval borrows the
queue's figures instead of trusting two calls.

Cold start (:class:`Basis`). Occurrences are counted from the local day of the first call in the
window (before it, silence and a queue not yet in service look alike). A key with past occurrences is
forecast from them (``weekly``). With less than a week of history some keys never occurred: they take the same time of day on the days that did
(``daily``), and failing that the mean calls per observed interval (``overall``).

Degenerate history never yields NaN or infinity: durations that are missing, negative, not finite or
longer than :data:`MAX_DURATION_S` (a clock or data error, not a call: summed, they overflowed) are skipped, handle time and patience are floored at :data:`MIN_DURATION_S`, patience is infinite
(reported as ``None`` by the API) only when nobody abandoned, and a window without any usable call
raises :class:`NoHistoryError`.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from enum import StrEnum
from typing import Final

from callcenter.capacity.erlang import MAX_AGENTS, Workload, agents_required, erlang_a
from callcenter.capacity.predictors import PatienceEstimate
from callcenter.capacity.schedules import (
    INTERVAL_MIN,
    INTERVALS_PER_DAY,
    IntervalStaffing,
    Schedule,
    slot_label,
    staffing,
)
from callcenter.errors import ValidationError
from callcenter.model.records import CallRecord
from callcenter.model.vocabulary import CallOutcome

INTERVAL_S: Final = INTERVAL_MIN * 60
#: Floor of every handle time and patience derived from history.
MIN_DURATION_S: Final = 1.0
#: The longest wait or talk time learnt from: a day. Longer is a clock or data error, not a call.
MAX_DURATION_S: Final = 86_400.0
#: The longest history window :func:`forecast_queue` reads.
MAX_HISTORY_DAYS: Final = 366
_WEEK_S: Final = 7 * 86400.0
# Beyond this, exponential patience is indistinguishable from none, and Erlang A's sums grow large.
_MAX_MODEL_SCALE: Final = 1e8

_NOT_OFFERED: Final = frozenset({CallOutcome.AFTER_HOURS, CallOutcome.IVR_HANGUP})
_ABANDONS: Final = frozenset({CallOutcome.ABANDONED, CallOutcome.SHORT_ABANDON})
_LEFT_QUEUE: Final = _ABANDONS | {
    CallOutcome.ANSWERED,
    CallOutcome.UNANSWERED_TIMEOUT,
    CallOutcome.CALLBACK_REQUESTED,
    CallOutcome.VOICEMAIL,
}


class NoHistoryError(ValidationError):
    """There is no usable call in the history window: nothing to forecast from."""


class Basis(StrEnum):
    """What an interval's arrivals were forecast from (see the module docstring)."""

    WEEKLY = "weekly"
    DAILY = "daily"
    OVERALL = "overall"


@dataclass(frozen=True, kw_only=True, slots=True)
class ForecastSettings:
    """How history is weighed.

    :param smoothing: ``α`` of the exponential smoothing, in (0, 1); larger follows recent weeks faster.
    :param prior_calls: weight, in calls, of the queue-wide handle time and patience in each interval's.
    :param wrap_up_s: the queue's wrap-up after each call, added to talk time to make handle time.
    """

    smoothing: float = 0.3
    prior_calls: float = 20.0
    wrap_up_s: float = 0.0

    def __post_init__(self) -> None:
        _require_finite(self.smoothing, "smoothing")
        if not 0.0 < self.smoothing < 1.0:
            raise ValidationError(f"smoothing must be strictly between 0 and 1, not {self.smoothing!r}")
        _require_finite(self.prior_calls, "prior_calls")
        if self.prior_calls <= 0.0:
            raise ValidationError(f"prior_calls must be above 0, not {self.prior_calls!r}")
        _require_finite(self.wrap_up_s, "wrap_up_s")
        if self.wrap_up_s < 0.0:
            raise ValidationError(f"wrap_up_s must be at least 0, not {self.wrap_up_s!r}")


@dataclass(frozen=True, kw_only=True, slots=True)
class IntervalForecast:
    """One interval key's forecast.

    :param arrivals: expected calls in the 15 minutes.
    :param occurrences: past intervals behind ``arrivals`` (of this key, of this slot, or all).
    :param aht_s: mean handle time; ``None`` when no call of the history was answered.
    :param patience_unit: the patience sums (abandons, exposure) of one typical waiting caller here,
        ready to serve as a prior (scale it by a weight, merge it with live observations).
    """

    weekday: int
    slot: int
    arrivals: float
    basis: Basis
    occurrences: int
    aht_s: float | None
    patience_unit: PatienceEstimate

    @property
    def label(self) -> str:
        return slot_label(self.weekday, self.slot)

    @property
    def patience_s(self) -> float:
        """Mean patience; ``math.inf`` when nobody abandoned."""
        return patience_of(self.patience_unit)


@dataclass(frozen=True, kw_only=True, slots=True)
class QueueForecast:
    """A queue's forecast for every interval of the week, and what it was made from.

    :param calls: calls of the window that were used (arrivals).
    :param answered: of which answered with a usable talk time.
    :param waited: of which waited and left the queue with a usable wait (patience observations).
    """

    since: datetime
    until: datetime
    calls: int
    answered: int
    waited: int
    aht_s: float | None
    patience_s: float
    intervals: tuple[IntervalForecast, ...]

    def interval(self, weekday: int, slot: int) -> IntervalForecast:
        return self.intervals[weekday * INTERVALS_PER_DAY + slot]

    def at(self, when: datetime, zone: tzinfo) -> IntervalForecast:
        """The forecast of the interval holding ``when`` (aware) on the local clock of ``zone``."""
        return self.interval(*interval_key(when, zone))

    @property
    def history_days(self) -> float:
        return (self.until - self.since).total_seconds() / 86400.0


@dataclass(frozen=True, kw_only=True, slots=True)
class IntervalPlan:
    """One interval of a planned day: forecast, staffing from schedules, and what Erlang A makes of them.

    :param agents_required: fewest agents meeting the target; ``None`` when unknown (see ``note``).
    :param service_level: predicted share of arrivals answered within the threshold with the staffing
        given, each staffing level weighed by the minutes it lasts; ``None`` when unknown.
    """

    start: datetime
    end: datetime
    forecast: IntervalForecast
    staffing: IntervalStaffing
    agents_required: int | None
    service_level: float | None
    note: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class DayPlan:
    """The intervals of one local day (92 or 100 on days the clocks change) and the targets used."""

    day: date
    answer_within_s: float
    target_service_level: float
    intervals: tuple[IntervalPlan, ...]


def interval_key(when: datetime, zone: tzinfo) -> tuple[int, int]:
    """``(weekday, slot)`` of the local interval holding the aware time ``when``."""
    _require_aware(when, "time")
    local = when.astimezone(zone)
    return local.weekday(), (local.hour * 60 + local.minute) // INTERVAL_MIN


def patience_of(estimate: PatienceEstimate) -> float:
    """Mean patience of ``estimate``: infinite without abandons, never below :data:`MIN_DURATION_S`."""
    if estimate.abandons <= 0.0:
        return math.inf
    return max(MIN_DURATION_S, estimate.exposure_s / estimate.abandons)


def scaled(estimate: PatienceEstimate, factor: float) -> PatienceEstimate:
    """``estimate`` as if seen ``factor`` times (any factor at least 0, unlike ``decayed``)."""
    return PatienceEstimate(estimate.abandons * factor, estimate.exposure_s * factor)


def usable_seconds(value: float | None) -> bool:
    """A stored duration we can learn from: present, not negative, at most :data:`MAX_DURATION_S`."""
    return value is not None and 0.0 <= value <= MAX_DURATION_S


class _Sums:
    """Weighted sums of one key (or the whole queue)."""

    __slots__ = ("handled", "handle_s", "abandons", "exposure_s", "waiters")

    def __init__(self) -> None:
        self.handled = self.handle_s = self.abandons = self.exposure_s = self.waiters = 0.0

    def add_handle(self, weight: float, handle_s: float) -> None:
        self.handled += weight
        self.handle_s += weight * handle_s

    def add_wait(self, weight: float, wait_s: float, *, abandoned: bool) -> None:
        self.abandons += weight if abandoned else 0.0
        self.exposure_s += weight * wait_s
        self.waiters += weight

    def patience_unit(self, prior: PatienceEstimate, prior_calls: float) -> PatienceEstimate:
        weight = self.waiters + prior_calls
        return PatienceEstimate(
            (self.abandons + prior_calls * prior.abandons) / weight,
            (self.exposure_s + prior_calls * prior.exposure_s) / weight,
        )


class _History:
    """The counts and weighted sums of a window's calls."""

    def __init__(self, zone: tzinfo, until: datetime, settings: ForecastSettings) -> None:
        self._zone, self._until, self._settings = zone, until, settings
        self.counts: Counter[int] = Counter()
        self.sums: defaultdict[tuple[int, int], _Sums] = defaultdict(_Sums)
        self.pooled = _Sums()
        self.used = self.answered = self.waited = 0
        self.earliest: datetime | None = None

    def add(self, call: CallRecord) -> None:
        self.used += 1
        if self.earliest is None or call.arrived_at < self.earliest:
            self.earliest = call.arrived_at
        self.counts[math.floor(call.arrived_at.timestamp() / INTERVAL_S)] += 1
        age_weeks = (self._until - call.arrived_at).total_seconds() / _WEEK_S
        weight = (1.0 - self._settings.smoothing) ** age_weeks
        targets = (self.sums[interval_key(call.arrived_at, self._zone)], self.pooled)
        talk_s = call.talk_s
        if call.outcome is CallOutcome.ANSWERED and talk_s is not None and usable_seconds(talk_s):
            self.answered += 1
            for target in targets:
                target.add_handle(weight, talk_s + self._settings.wrap_up_s)
        wait_s = call.wait_s
        if call.outcome in _LEFT_QUEUE and wait_s is not None and usable_seconds(wait_s) and wait_s > 0.0:
            self.waited += 1
            for target in targets:
                target.add_wait(weight, wait_s, abandoned=call.outcome in _ABANDONS)


def forecast_queue(
    calls: Iterable[CallRecord],
    *,
    zone: tzinfo,
    since: datetime,
    until: datetime,
    settings: ForecastSettings | None = None,
) -> QueueForecast:
    """The forecast of every interval of the week from the calls of one queue (see the module docstring).

    :param calls: the queue's calls; those outside ``[since, until)`` are ignored.
    :raises NoHistoryError: when the window holds no whole interval or no usable call.
    :raises ValidationError: for naive times, ``since >= until`` or a window over
        :data:`MAX_HISTORY_DAYS` days.
    """
    settings = settings or ForecastSettings()
    _require_aware(since, "since")
    _require_aware(until, "until")
    if until <= since:
        raise ValidationError(f"the history window must end after it starts ({since} .. {until})")
    if until - since > timedelta(days=MAX_HISTORY_DAYS):
        raise ValidationError(f"the history window may span at most {MAX_HISTORY_DAYS} days")
    history = _History(zone, until, settings)
    for call in calls:
        if call.outcome not in _NOT_OFFERED and since <= call.arrived_at < until:
            history.add(call)
    if history.earliest is None:
        raise NoHistoryError(f"no call arrived between {since.isoformat()} and {until.isoformat()}")
    # Before the queue's first call silence and absence look alike: observe from that day on.
    since = max(since, datetime.combine(history.earliest.astimezone(zone).date(), time(), zone))
    first = math.ceil(since.timestamp() / INTERVAL_S)
    last = math.floor(until.timestamp() / INTERVAL_S)
    if last <= first:
        raise NoHistoryError("the history window holds no whole 15-minute interval")
    counts, sums, pooled = history.counts, history.sums, history.pooled
    arrivals = _arrivals(counts, first, last, zone, settings.smoothing)
    pooled_aht = _mean_handle(pooled)
    pooled_unit = (
        PatienceEstimate(pooled.abandons / pooled.waiters, pooled.exposure_s / pooled.waiters)
        if pooled.waiters > 0.0
        else PatienceEstimate()
    )
    intervals = []
    for weekday in range(7):
        for slot in range(INTERVALS_PER_DAY):
            own = sums.get((weekday, slot), _Sums())
            aht = None
            if pooled_aht is not None:
                aht = max(
                    MIN_DURATION_S,
                    (own.handle_s + settings.prior_calls * pooled_aht) / (own.handled + settings.prior_calls),
                )
            level, basis, occurrences = arrivals[(weekday, slot)]
            intervals.append(
                IntervalForecast(
                    weekday=weekday,
                    slot=slot,
                    arrivals=level,
                    basis=basis,
                    occurrences=occurrences,
                    aht_s=aht,
                    patience_unit=own.patience_unit(pooled_unit, settings.prior_calls),
                )
            )
    return QueueForecast(
        since=since,
        until=until,
        calls=history.used,
        answered=history.answered,
        waited=history.waited,
        aht_s=pooled_aht,
        patience_s=patience_of(pooled_unit),
        intervals=tuple(intervals),
    )


def _mean_handle(sums: _Sums) -> float | None:
    if sums.handled <= 0.0:
        return None
    return max(MIN_DURATION_S, sums.handle_s / sums.handled)


def _arrivals(
    counts: Counter[int], first: int, last: int, zone: tzinfo, smoothing: float
) -> dict[tuple[int, int], tuple[float, Basis, int]]:
    """Smoothed calls per interval key, with the basis used and the occurrences behind it."""
    by_key: defaultdict[tuple[int, int], list[int]] = defaultdict(list)
    by_slot: defaultdict[int, list[int]] = defaultdict(list)
    for index in range(first, last):
        key = interval_key(datetime.fromtimestamp(index * INTERVAL_S, UTC), zone)
        by_key[key].append(counts[index])
        by_slot[key[1]].append(counts[index])
    overall = sum(counts[i] for i in range(first, last)) / (last - first)
    result: dict[tuple[int, int], tuple[float, Basis, int]] = {}
    for weekday in range(7):
        for slot in range(INTERVALS_PER_DAY):
            own = by_key.get((weekday, slot))
            if own:
                result[(weekday, slot)] = (_smooth(own, smoothing), Basis.WEEKLY, len(own))
            elif slot in by_slot:
                same_time = by_slot[slot]
                result[(weekday, slot)] = (_smooth(same_time, smoothing), Basis.DAILY, len(same_time))
            else:
                result[(weekday, slot)] = (overall, Basis.OVERALL, last - first)
    return result


def _smooth(series: Sequence[int], smoothing: float) -> float:
    """Simple exponential smoothing of ``series`` (oldest first), started at its mean."""
    level = sum(series) / len(series)
    for value in series:
        level = smoothing * value + (1.0 - smoothing) * level
    return level


# -- a day's plan ---------------------------------------------------------------------------------


def plan_day(
    forecast: QueueForecast,
    schedules: Sequence[Schedule],
    *,
    day: date,
    zone: tzinfo,
    answer_within_s: float,
    target_service_level: float,
) -> DayPlan:
    """Every local interval of ``day``: forecast, agents staffed by ``schedules``, agents required and
    the predicted service level (Erlang A; Erlang C where nobody abandoned).

    :param schedules: those of the agents serving the queue (each counts as one agent).
    :raises ValidationError: for a bad target, or when the schedules staff more than
        :data:`~callcenter.capacity.erlang.MAX_AGENTS` agents in an interval.
    """
    _require_finite(answer_within_s, "answer_within_s")
    if answer_within_s < 0.0:
        raise ValidationError(f"answer_within_s must be at least 0, not {answer_within_s!r}")
    _require_finite(target_service_level, "target_service_level")
    if not 0.0 < target_service_level < 1.0:
        raise ValidationError(
            f"target_service_level must be strictly between 0 and 1, not {target_service_level!r}"
        )
    start = datetime.combine(day, time(), zone).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(), zone).astimezone(UTC)
    by_weekday: dict[int, tuple[IntervalStaffing, ...]] = {}
    plans = []
    at = start
    while at < end:
        weekday, slot = interval_key(at, zone)
        if weekday not in by_weekday:
            by_weekday[weekday] = staffing(schedules, weekday)
        interval = forecast.interval(weekday, slot)
        staffed = by_weekday[weekday][slot]
        required, level, note = _measure(interval, staffed, answer_within_s, target_service_level)
        after = at + timedelta(seconds=INTERVAL_S)
        plans.append(
            IntervalPlan(
                start=at.astimezone(zone),
                end=after.astimezone(zone),
                forecast=interval,
                staffing=staffed,
                agents_required=required,
                service_level=level,
                note=note,
            )
        )
        at = after
    return DayPlan(
        day=day,
        answer_within_s=answer_within_s,
        target_service_level=target_service_level,
        intervals=tuple(plans),
    )


def model_workload(arrival_rate_per_s: float, aht_s: float, patience_s: float) -> Workload:
    """The Erlang workload, with a patience so long it cannot matter taken as infinite (Erlang C).

    Erlang A refuses ``agents·patience/aht`` or ``λ·patience`` above 1e9; the bound here keeps every
    staffing up to :data:`~callcenter.capacity.erlang.MAX_AGENTS` agents within it.
    """
    if math.isfinite(patience_s) and (
        MAX_AGENTS * patience_s / aht_s > _MAX_MODEL_SCALE
        or arrival_rate_per_s * patience_s > _MAX_MODEL_SCALE
    ):
        patience_s = math.inf
    return Workload(arrival_rate_per_s=arrival_rate_per_s, aht_s=aht_s, patience_s=patience_s)


def _measure(
    interval: IntervalForecast, staffed: IntervalStaffing, answer_within_s: float, target: float
) -> tuple[int | None, float | None, str]:
    """Agents required, predicted service level and a note for one interval."""
    if staffed.max_agents > MAX_AGENTS:
        raise ValidationError(
            f"{interval.label}: the schedules staff {staffed.max_agents} agents; "
            f"the models take at most {MAX_AGENTS}"
        )
    if interval.arrivals <= 0.0:
        return 0, 1.0, ""
    if interval.aht_s is None:
        return None, None, "no answered call in the history: handle time unknown"
    workload = model_workload(interval.arrivals / INTERVAL_S, interval.aht_s, interval.patience_s)
    level = 0.0
    for agents, minutes in staffed.segments:
        if agents > 0:
            metrics = erlang_a(workload, agents, answer_within_s=answer_within_s)
            level += metrics.service_level * minutes / INTERVAL_MIN
    try:
        required: int | None = agents_required(
            workload, target_service_level=target, answer_within_s=answer_within_s
        ).agents
        note = ""
    except ValidationError:
        required, note = None, f"more than {MAX_AGENTS} agents would be needed for the target"
    return required, min(1.0, max(0.0, level)), note


def _require_aware(value: object, name: str) -> None:
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise ValidationError(f"{name} must be a timezone-aware time, not {value!r}")


def _require_finite(value: object, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValidationError(f"{name} must be a finite number, not {value!r}")
