"""A simulated day of callback offers and promises, with our policies or a naive baseline (pure).

Discrete events in virtual time, seeded: callers arrive (Poisson, with an unforecast surge), wait in
ONE line with the keep-my-place callbacks (ordered by enqueue time), abandon after an exponential
patience, and are served by the staffed agents. On arrival each caller's wait is predicted with QL-A
(the same predictor the IVR announces) and the offer rule of :mod:`.policy` decides; a caller who is
offered accepts with ``accept_probability`` and takes a kept place or a later slot as the policy says.

* ``ours``: a kept place is promised by the 90th percentile of the predicted wait, rounded up to five
  minutes, plus the grace; slots are offered only where :mod:`.slots` finds capacity in the plan
  (the forecast knows the base rate, not the surge), and each booking uses it up.
* ``naive``: a kept place is promised by the mean predicted wait (a point estimate), and any slot
  within business hours is offered (no capacity check): the usual "book any free time".

An agent who frees up first takes a booked callback whose slot has started (booked capacity is
protected), then the head of the line: a live caller or a kept place. Agents work on past closing
until everyone is served. A promise is kept when the first dial starts inside its window (for a kept
place, also earlier). Everything here is a function of the configuration and the seed.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import math
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Final

from callcenter.callbacks.policy import OfferSettings, WaitFigures, offer_decision
from callcenter.callbacks.promise import announced_by, keep_place_window, slot_window
from callcenter.callbacks.slots import INTERVAL_S, IntervalLoad, SlotSettings, slot_capacities
from callcenter.capacity.predictors import QueueState, predict_ql_a
from callcenter.errors import ValidationError
from callcenter.model.callbacks import PromiseWindow
from callcenter.queue.hours import BusinessHours, business_hours

#: A Monday: the simulated days start here.
EPOCH: Final = datetime(2026, 11, 23, tzinfo=UTC)


class CallbackPolicy(StrEnum):
    """What a caller who accepts an offer takes."""

    KEEP_PLACE = "keep-place"
    SLOTS = "slots"
    BOTH = "both"  # half and half


class Variant(StrEnum):
    OURS = "ours"
    NAIVE = "naive"


@dataclass(frozen=True, kw_only=True, slots=True)
class CallbackSimConfig:
    """One simulated working day (or several, ``days``), 09:00-17:00.

    :param surge: ``(start hour, end hour, factor)`` of an arrival surge the forecast does not know.
    """

    agents: int = 12
    rate_per_hour: float = 90.0
    surge: tuple[float, float, float] = (11.0, 12.0, 2.0)
    aht_s: float = 300.0
    patience_s: float = 600.0
    callback_handle_s: float = 300.0
    accept_probability: float = 0.5
    policy: CallbackPolicy = CallbackPolicy.BOTH
    offer: OfferSettings = field(default_factory=OfferSettings)
    slots: SlotSettings = field(default_factory=lambda: SlotSettings(callback_handle_s=300.0))
    answer_within_s: float = 20.0
    open_h: tuple[int, int] = (9, 17)
    days: int = 1
    seed: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.agents <= 500:
            raise ValidationError("agents must be from 1 to 500")
        if not 0.0 <= self.accept_probability <= 1.0:
            raise ValidationError("accept_probability must be from 0 to 1")
        if not 1 <= self.days <= 60:
            raise ValidationError("days must be from 1 to 60")
        for name in ("rate_per_hour", "aht_s", "patience_s", "callback_handle_s"):
            value = getattr(self, name)
            if not math.isfinite(value) or value <= 0.0:
                raise ValidationError(f"{name} must be above 0")
        start, end = self.open_h
        if not 0 <= start < end <= 24:
            raise ValidationError("open_h must be (start, end) hours within a day")


@dataclass(slots=True)
class SimFigures:
    """What one variant did; rates are fractions, ``None`` when nothing was counted."""

    arrivals: int = 0
    offers: int = 0
    accepted: int = 0
    keep_place: int = 0
    slots: int = 0
    kept: int = 0
    kept_keep_place: int = 0
    kept_slots: int = 0
    answered: int = 0
    answered_in_time: int = 0
    abandoned: int = 0
    dial_lateness_s: list[float] = field(default_factory=list)

    def as_json(self) -> dict[str, object]:
        def rate(part: int, whole: int) -> float | None:
            return round(part / whole, 4) if whole else None

        late = sorted(self.dial_lateness_s)
        callbacks = self.keep_place + self.slots
        return {
            "arrivals": self.arrivals,
            "offers": self.offers,
            "accepted": self.accepted,
            "callbacks": callbacks,
            "keep_place": self.keep_place,
            "slots": self.slots,
            "kept_rate": rate(self.kept, callbacks),
            "keep_place_kept_rate": rate(self.kept_keep_place, self.keep_place),
            "slot_kept_rate": rate(self.kept_slots, self.slots),
            "offer_rate": rate(self.offers, self.arrivals),
            "acceptance_rate": rate(self.accepted, self.offers),
            "service_level": rate(self.answered_in_time, self.arrivals - self.accepted),
            "abandon_rate": rate(self.abandoned, self.arrivals - self.accepted),
            "broken_p90_late_s": round(late[int(0.9 * (len(late) - 1))], 1) if late else 0.0,
        }


@dataclass(frozen=True, slots=True)
class _Draw:
    """One caller's dice, drawn once so that both variants meet the same callers."""

    at: float
    patience_s: float
    handle_s: float
    accept: float
    choice: float
    pick: int


@dataclass(slots=True, eq=False)
class _Caller:
    id: int
    enqueued: float
    handle_s: float
    gone: bool = False


@dataclass(slots=True, eq=False)
class _Callback:
    id: int
    enqueued: float
    window: PromiseWindow
    kind: str  # "keep_place" | "slot"
    due: float = 0.0
    dialled_at: float | None = None


@dataclass(slots=True)
class _Day:
    """One variant's run of one day (seconds from the day's midnight)."""

    config: CallbackSimConfig
    variant: Variant
    day: datetime
    rng: random.Random
    figures: SimFigures
    free: int = 0
    line: list[tuple[float, int, _Caller | _Callback]] = field(default_factory=list)
    due: list[tuple[float, int, _Callback]] = field(default_factory=list)
    events: list[tuple[float, int, str, object]] = field(default_factory=list)
    capacity: dict[datetime, int] = field(default_factory=dict)
    booked: dict[datetime, int] = field(default_factory=dict)
    callbacks: list[_Callback] = field(default_factory=list)
    waiting: int = 0
    seq: itertools.count[int] = field(default_factory=itertools.count)

    def at(self, t: float) -> datetime:
        return self.day + timedelta(seconds=t)

    def push(self, t: float, kind: str, payload: object = None) -> None:
        heapq.heappush(self.events, (t, next(self.seq), kind, payload))


def simulate_callbacks(config: CallbackSimConfig) -> dict[Variant, SimFigures]:
    """Run ``ours`` and ``naive`` on the same arrivals (same seed per day); their figures."""
    results = {Variant.OURS: SimFigures(), Variant.NAIVE: SimFigures()}
    for index in range(config.days):
        day = EPOCH + timedelta(days=index % 5)  # weekdays
        draws = _draws(config, random.Random(config.seed * 1_000_003 + index))
        for variant, figures in results.items():
            run = _Day(config, variant, day, random.Random(config.seed * 7_919 + index), figures)
            _run_day(run, draws)
    return results


def _draws(config: CallbackSimConfig, rng: random.Random) -> list[_Draw]:
    open_s, close_s = config.open_h[0] * 3600.0, config.open_h[1] * 3600.0
    draws: list[_Draw] = []
    t = open_s
    while True:
        t += rng.expovariate(_rate(config, t))
        if t >= close_s:
            return draws
        draws.append(
            _Draw(
                at=t,
                patience_s=rng.expovariate(1.0 / config.patience_s),
                handle_s=rng.expovariate(1.0 / config.aht_s),
                accept=rng.random(),
                choice=rng.random(),
                pick=rng.randrange(3),
            )
        )


def _run_day(run: _Day, draws: list[_Draw]) -> None:
    config = run.config
    close_s = config.open_h[1] * 3600.0
    run.free = config.agents
    run.capacity = _capacities(run) if run.variant is Variant.OURS else {}
    for draw in draws:
        run.push(draw.at, "arrival", draw)
    while run.events:
        t, _, kind, payload = heapq.heappop(run.events)
        if kind == "arrival":
            assert isinstance(payload, _Draw)
            _arrive(run, payload, close_s)
        elif kind == "abandon":
            assert isinstance(payload, _Caller)
            if not payload.gone:
                payload.gone = True
                run.waiting -= 1
                run.figures.abandoned += 1
        elif kind == "done":
            run.free += 1
        elif kind == "due":
            assert isinstance(payload, _Callback)
            if run.variant is Variant.NAIVE:
                # Without protected capacity a due callback is one more task at the back of the line.
                heapq.heappush(run.line, (t, payload.id, payload))
        _assign(run, t)
    for callback in run.callbacks:
        dialled = callback.dialled_at
        if dialled is not None and callback.window.keeps(run.at(dialled)):
            run.figures.kept += 1
            if callback.kind == "keep_place":
                run.figures.kept_keep_place += 1
            else:
                run.figures.kept_slots += 1
        else:
            end = (callback.window.end - run.day).total_seconds()
            run.figures.dial_lateness_s.append((dialled if dialled is not None else math.inf) - end)


def _rate(config: CallbackSimConfig, t: float) -> float:
    start, end, factor = config.surge
    hour = t / 3600.0
    return config.rate_per_hour / 3600.0 * (factor if start <= hour < end else 1.0)


def _capacities(run: _Day) -> dict[datetime, int]:
    """Callbacks each slot of the day can take, from the forecast (base rate: no surge) and staffing."""
    config = run.config
    loads = [
        IntervalLoad(
            start=run.day + timedelta(seconds=slot * INTERVAL_S),
            staffed_agents=float(config.agents) if _open(config, slot * INTERVAL_S) else 0.0,
            arrivals=config.rate_per_hour / 4.0 if _open(config, slot * INTERVAL_S) else 0.0,
            aht_s=config.aht_s,
            patience_s=config.patience_s,
        )
        for slot in range(96)
    ]
    slots = slot_capacities(
        loads, booked={}, hours=_hours(config), answer_within_s=config.answer_within_s, settings=config.slots
    )
    return {s.start: s.capacity for s in slots if s.capacity > 0}


def _open(config: CallbackSimConfig, t: float) -> bool:
    return config.open_h[0] * 3600.0 <= t < config.open_h[1] * 3600.0


def _hours(config: CallbackSimConfig) -> BusinessHours:
    start, end = config.open_h
    span = f"{start:02d}:00-{end:02d}:00" if end < 24 else f"{start:02d}:00-24:00"
    return business_hours({d: [span] for d in ("mon", "tue", "wed", "thu", "fri")}, (), "UTC")


def _arrive(run: _Day, draw: _Draw, close_s: float) -> None:
    config, figures, t = run.config, run.figures, draw.at
    figures.arrivals += 1
    caller = _Caller(id=next(run.seq), enqueued=t, handle_s=draw.handle_s)
    ahead = len([1 for _, _, item in run.line if not (isinstance(item, _Caller) and item.gone)])
    state = QueueState(
        ahead=ahead,
        agents_staffed=config.agents,
        agents_free=min(run.free, config.agents),
        aht_s=config.aht_s,
        patience_s=config.patience_s,
    )
    predicted = predict_ql_a(state)
    wait = WaitFigures(
        p80_s=predicted.p80_s,
        p90_s=predicted.p90_s,
        mean_s=predicted.mean_s,
        position=ahead + 1,
        staffed=config.agents,
    )
    now = run.at(t)
    slot_starts = _slot_choices(run, t)
    decision = offer_decision(
        wait, now=now, closes_at=run.at(close_s), slot_available=bool(slot_starts), settings=_offered(config)
    )
    if decision.offer:
        figures.offers += 1
        choice = _choice(run.config.policy, decision.keep_place, decision.later, draw.choice)
        if choice is not None and draw.accept < config.accept_probability:
            figures.accepted += 1
            if choice == "keep_place":
                _keep_place(run, t, wait)
            else:
                options = slot_starts[:3]
                _book(run, t, options[draw.pick % len(options)])
            return
    run.waiting += 1
    heapq.heappush(run.line, (t, caller.id, caller))
    run.push(t + draw.patience_s, "abandon", caller)


def _offered(config: CallbackSimConfig) -> OfferSettings:
    """The offer rule with only the choices the policy gives."""
    if config.policy is CallbackPolicy.KEEP_PLACE:
        return dataclasses.replace(config.offer, later=False)
    if config.policy is CallbackPolicy.SLOTS:
        return dataclasses.replace(config.offer, keep_place=False)
    return config.offer


def _choice(policy: CallbackPolicy, keep: bool, later: bool, dice: float) -> str | None:
    if policy is CallbackPolicy.KEEP_PLACE:
        return "keep_place" if keep else None
    if policy is CallbackPolicy.SLOTS:
        return "slot" if later else None
    if keep and later:
        return "keep_place" if dice < 0.5 else "slot"
    return "keep_place" if keep else ("slot" if later else None)


def _keep_place(run: _Day, t: float, wait: WaitFigures) -> None:
    now = run.at(t)
    promised_s = wait.p90_s if run.variant is Variant.OURS else wait.mean_s
    by = announced_by(now, promised_s, round_min=5 if run.variant is Variant.OURS else 1)
    callback = _Callback(
        id=next(run.seq),
        enqueued=t,
        window=keep_place_window(now, by, grace_s=run.config.offer.grace_s),
        kind="keep_place",
    )
    run.figures.keep_place += 1
    run.callbacks.append(callback)
    heapq.heappush(run.line, (t, callback.id, callback))


def _slot_choices(run: _Day, t: float) -> list[datetime]:
    """Slot starts that may be offered at ``t``, earliest first (today only, as the IVR's first three)."""
    config = run.config
    earliest = run.at(t + config.slots.min_lead_s)
    close = run.day + timedelta(hours=config.open_h[1])
    length = timedelta(minutes=config.slots.length_min)
    if run.variant is Variant.OURS:
        return sorted(
            start
            for start, capacity in run.capacity.items()
            if start >= earliest and run.booked.get(start, 0) < capacity
        )
    starts = []
    start = run.day + timedelta(hours=config.open_h[0])
    while start + length <= close:
        if start >= earliest:
            starts.append(start)
        start += length
    return starts


def _book(run: _Day, t: float, start: datetime) -> None:
    length = timedelta(minutes=run.config.slots.length_min)
    run.booked[start] = run.booked.get(start, 0) + 1
    callback = _Callback(
        id=next(run.seq),
        enqueued=t,
        window=slot_window(start, start + length),
        kind="slot",
        due=(start - run.day).total_seconds(),
    )
    run.figures.slots += 1
    run.callbacks.append(callback)
    if run.variant is Variant.OURS:
        heapq.heappush(run.due, (callback.due, callback.id, callback))
    run.push(callback.due, "due", callback)


def _assign(run: _Day, t: float) -> None:
    config = run.config
    while run.free > 0:
        if run.due and run.due[0][0] <= t:
            _, _, callback = heapq.heappop(run.due)
            _serve_callback(run, t, callback)
            continue
        item = _pop_line(run)
        if item is None:
            return
        if isinstance(item, _Callback):
            _serve_callback(run, t, item)
            continue
        item.gone = True
        run.waiting -= 1
        run.figures.answered += 1
        if t - item.enqueued <= config.answer_within_s:
            run.figures.answered_in_time += 1
        run.free -= 1
        run.push(t + item.handle_s, "done")


def _pop_line(run: _Day) -> _Caller | _Callback | None:
    while run.line:
        _, _, item = heapq.heappop(run.line)
        if isinstance(item, _Caller) and item.gone:
            continue
        return item
    return None


def _serve_callback(run: _Day, t: float, callback: _Callback) -> None:
    callback.dialled_at = t
    run.free -= 1
    run.push(t + run.rng.expovariate(1.0 / run.config.callback_handle_s), "done")


def figures_json(results: dict[Variant, SimFigures]) -> dict[str, object]:
    return {variant.value: figures.as_json() for variant, figures in results.items()}
