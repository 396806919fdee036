"""Callback slot capacity: which later times can be offered, and which bookings are over-committed (pure).

A slot is a span of the queue's planning intervals (15 minutes each; a slot is one or more of them,
default one). Its capacity, in callbacks, is::

    free agent time = staffed agent time
                    - agent time the inbound forecast needs to hold the target service level (Erlang A)
    capacity        = floor(free agent time × (1 - safety margin) / callback handle time)

and a slot is offered only while ``booked < capacity``, it lies wholly within business hours, and it
starts at least ``min_lead_s`` from now. The inbound need of an interval is the fewest agents
:func:`~callcenter.capacity.erlang.agents_required` finds for the forecast's arrivals, handle time
and patience, held for the whole interval. An interval whose need is unknown (no handle time in the
history, or beyond what the models take) has no capacity: no offer is better than a wrong promise.

Booked callbacks stay booked when staffing or the forecast changes; :func:`over_committed` names
the slots that then hold more than their capacity, for an alert.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from callcenter.capacity.erlang import agents_required
from callcenter.capacity.forecast import DayPlan, model_workload
from callcenter.capacity.schedules import INTERVAL_MIN
from callcenter.errors import ValidationError
from callcenter.queue.hours import BusinessHours, is_open

INTERVAL_S: Final = INTERVAL_MIN * 60


@dataclass(frozen=True, kw_only=True, slots=True)
class SlotSettings:
    """How slots are cut and sized.

    :param length_min: slot length, a whole number of 15-minute planning intervals.
    :param callback_handle_s: agent time one callback takes (dial, talk, wrap-up).
    :param safety_margin: share of the free agent time kept back, in [0, 1).
    :param target_service_level: share of inbound calls to answer within the queue's threshold.
    :param min_lead_s: the earliest a slot may start after the offer.
    """

    length_min: int = 15
    callback_handle_s: float = 360.0
    safety_margin: float = 0.2
    target_service_level: float = 0.8
    min_lead_s: float = 600.0

    def __post_init__(self) -> None:
        if (
            isinstance(self.length_min, bool)
            or self.length_min < INTERVAL_MIN
            or self.length_min % INTERVAL_MIN
        ):
            raise ValidationError(
                f"slot length must be a multiple of {INTERVAL_MIN} minutes, not {self.length_min!r}"
            )
        if self.length_min > 240:
            raise ValidationError("slot length must be at most 240 minutes")
        if not math.isfinite(self.callback_handle_s) or self.callback_handle_s <= 0.0:
            raise ValidationError(f"callback handle time must be above 0 s, not {self.callback_handle_s!r}")
        if not 0.0 <= self.safety_margin < 1.0:
            raise ValidationError(f"safety margin must be from 0 to below 1, not {self.safety_margin!r}")
        if not 0.0 < self.target_service_level < 1.0:
            raise ValidationError(
                f"target service level must be strictly between 0 and 1, not {self.target_service_level!r}"
            )
        if not math.isfinite(self.min_lead_s) or self.min_lead_s < 0.0:
            raise ValidationError(f"min_lead_s must be at least 0, not {self.min_lead_s!r}")

    @property
    def intervals_per_slot(self) -> int:
        return self.length_min // INTERVAL_MIN


@dataclass(frozen=True, kw_only=True, slots=True)
class IntervalLoad:
    """One planning interval: agents staffed on average, and the inbound forecast.

    :param aht_s: forecast handle time; ``None`` when unknown (no capacity is then offered).
    :param patience_s: mean patience; ``math.inf`` when nobody abandons (Erlang C).
    """

    start: datetime
    staffed_agents: float
    arrivals: float
    aht_s: float | None
    patience_s: float = math.inf


@dataclass(frozen=True, kw_only=True, slots=True)
class SlotCapacity:
    """One slot: its agent time, what inbound needs, and the callbacks it takes.

    :param inbound_agents: agents inbound needs, per interval of the slot (``None``: unknown).
    :param capacity: callbacks the slot can take in all.
    """

    start: datetime
    end: datetime
    staffed_agent_s: float
    inbound_agent_s: float
    free_agent_s: float
    capacity: int
    booked: int
    open_hours: bool
    note: str = ""

    @property
    def remaining(self) -> int:
        return max(0, self.capacity - self.booked)

    @property
    def over_committed(self) -> bool:
        return self.booked > self.capacity


def interval_loads(plan: DayPlan) -> tuple[IntervalLoad, ...]:
    """The planning intervals of a day's plan (forecast and schedules) as slot inputs."""
    return tuple(
        IntervalLoad(
            start=interval.start,
            staffed_agents=interval.staffing.mean_agents,
            arrivals=interval.forecast.arrivals,
            aht_s=interval.forecast.aht_s,
            patience_s=interval.forecast.patience_s,
        )
        for interval in plan.intervals
    )


def inbound_agents(load: IntervalLoad, *, answer_within_s: float, target_service_level: float) -> int | None:
    """Agents the interval's inbound forecast needs to hold the target; ``None`` when unknown."""
    if load.arrivals <= 0.0:
        return 0
    if load.aht_s is None:
        return None
    workload = model_workload(load.arrivals / INTERVAL_S, load.aht_s, load.patience_s)
    try:
        return agents_required(
            workload, target_service_level=target_service_level, answer_within_s=answer_within_s
        ).agents
    except ValidationError:
        return None


def slot_capacities(
    loads: Sequence[IntervalLoad],
    *,
    booked: Mapping[datetime, int],
    hours: BusinessHours,
    answer_within_s: float,
    settings: SlotSettings,
) -> tuple[SlotCapacity, ...]:
    """Every whole slot of ``loads`` (consecutive intervals, in time order) with its capacity.

    Slots start at the first interval and every ``length_min`` after it; a trailing part shorter
    than a slot is left out. ``booked`` counts the callbacks booked per slot start.
    """
    per_slot = settings.intervals_per_slot
    capacities = []
    for first in range(0, len(loads) - per_slot + 1, per_slot):
        part = loads[first : first + per_slot]
        start = part[0].start
        end = part[-1].start + timedelta(seconds=INTERVAL_S)
        staffed_s = sum(p.staffed_agents for p in part) * INTERVAL_S
        needs = [
            inbound_agents(
                p, answer_within_s=answer_within_s, target_service_level=settings.target_service_level
            )
            for p in part
        ]
        opened = all(is_open(hours, p.start) for p in part) and is_open(hours, end - timedelta(seconds=1))
        note = ""
        if any(n is None for n in needs):
            inbound_s, free_s, note = staffed_s, 0.0, "inbound need unknown: no callbacks offered"
        else:
            # Agents the inbound load needs cannot lend time, interval by interval (no borrowing).
            inbound_s = (
                sum(min(float(n or 0), p.staffed_agents) for n, p in zip(needs, part, strict=True))
                * INTERVAL_S
            )
            free_s = (
                sum(max(0.0, p.staffed_agents - (n or 0)) for n, p in zip(needs, part, strict=True))
                * INTERVAL_S
            )
        usable_s = free_s * (1.0 - settings.safety_margin)
        capacity = int(math.floor(usable_s / settings.callback_handle_s + 1e-9))
        capacities.append(
            SlotCapacity(
                start=start,
                end=end,
                staffed_agent_s=staffed_s,
                inbound_agent_s=inbound_s,
                free_agent_s=free_s,
                capacity=capacity if opened else 0,
                booked=booked.get(start, 0),
                open_hours=opened,
                note=note if opened else "outside business hours",
            )
        )
    return tuple(capacities)


def offerable(
    capacities: Iterable[SlotCapacity], *, now: datetime, settings: SlotSettings
) -> tuple[SlotCapacity, ...]:
    """The slots that may be offered at ``now``: with room, in business hours, far enough ahead."""
    earliest = now + timedelta(seconds=settings.min_lead_s)
    return tuple(c for c in capacities if c.open_hours and c.remaining > 0 and c.start >= earliest)


def over_committed(capacities: Iterable[SlotCapacity]) -> tuple[SlotCapacity, ...]:
    """The slots holding more bookings than their capacity now (staffing or forecast changed)."""
    return tuple(c for c in capacities if c.over_committed)


def slot_of(capacities: Iterable[SlotCapacity], start: datetime) -> SlotCapacity | None:
    return next((c for c in capacities if c.start == start), None)
