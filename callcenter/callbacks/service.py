"""The callback service: slots offered and booked, kept places requested and released, cancellations (service).

:class:`CallbackService` applies the pure policies (:mod:`.slots`, :mod:`.policy`, :mod:`.lifecycle`)
to the stored callbacks (:class:`~callcenter.callbacks.ports.CallbackRepository`), the queue's planned
day (:class:`~callcenter.callbacks.ports.DayPlanner`, the estimate service) and its live board, and
publishes a ``CallbackStateChanged`` for every change it stores (the store is the truth: an event the
bus refused is logged, the change stays). The dispatcher (another service) dials what is due; this
one decides what is due:

* a booked slot is due at its start (``scheduled`` with ``due_at`` = slot start, at booking);
* a kept place becomes due (``requested -> scheduled``) when :meth:`CallbackService.release_due`
  finds it at the head of the joint line with an agent predicted free.

:meth:`CallbackService.tick` runs the release and, every ``commitment_check_s``, the over-commitment
check of today's and tomorrow's bookings (``CallbackSlotOverCommitted`` alerts).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import uuid
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Final

from callcenter.bus import EventBus
from callcenter.callbacks.lifecycle import move, new_callback
from callcenter.callbacks.line import CallbackLine, KeptPlace, line_key
from callcenter.callbacks.numbers import NumberCheck, NumberRefusal, check_callback_number
from callcenter.callbacks.policy import (
    SWEEP_LEAD_S,
    AgentNow,
    LiveCaller,
    NoOfferReason,
    OfferDecision,
    OfferSettings,
    WaitFigures,
    closing_sweep,
    closing_time,
    due_callbacks,
    offer_decision,
    predicted_free_agents,
)
from callcenter.callbacks.ports import CallbackRepository, DayPlanner, SlotFullError, WaitEstimator
from callcenter.callbacks.promise import DEFAULT_GRACE_S, keep_place_window, slot_window
from callcenter.callbacks.slots import (
    IntervalLoad,
    SlotCapacity,
    SlotSettings,
    interval_loads,
    offerable,
    slot_capacities,
)
from callcenter.capacity.forecast import NoHistoryError
from callcenter.capacity.ports import LiveQueueSource, QueueSettingsSource
from callcenter.clock import Clock
from callcenter.errors import (
    CallCenterError,
    ConflictError,
    DependencyError,
    InvalidPhoneNumberError,
    NotFoundError,
    ValidationError,
)
from callcenter.model.callbacks import Actor, Callback, CallbackChange
from callcenter.model.events import (
    AgentQueuesChanged,
    AgentScheduleChanged,
    CallbackSlotOverCommitted,
    CallbackStateChanged,
    DomainEvent,
)
from callcenter.model.paging import Page
from callcenter.model.records import QueueRecord
from callcenter.model.vocabulary import ActorKind, CallbackKind, CallbackState
from callcenter.queue.hours import business_hours, zone_of

logger = logging.getLogger(__name__)

#: The actor of the service's own decisions.
DUE_POLICY: Final = Actor(ActorKind.SYSTEM, "keep-place-due")
_IN_LINE: Final = frozenset({CallbackState.REQUESTED})
# Released kept places not yet dialled: each will take the next free agent. (Those being dialled hold
# an agent already, paused: it is not counted free, so counting them here too would count it twice.)
_HOLDING_AGENT: Final = frozenset({CallbackState.SCHEDULED})
_REFUSALS: Final = {
    NumberRefusal.WITHHELD: "a callback needs a phone number; the caller id is withheld",
    NumberRefusal.INVALID: "not a valid phone number",
    NumberRefusal.PREMIUM: "premium-rate and shared-cost numbers are not called back",
    NumberRefusal.REGION: "numbers of that country are not called back",
}


@dataclass(frozen=True, kw_only=True, slots=True)
class CallbackSettings:
    """How callbacks are offered and sized (from ``CALLCENTER_CALLBACK_*``).

    :param horizon_days: how many days ahead (today included) slots are offered.
    :param due_lead_s: an agent whose wrap-up ends within this counts as predicted free.
    :param allowed_regions: ISO regions called back; empty allows all.
    :param plan_ttl_s: how long a day's plan (forecast and schedules) is reused.
    :param commitment_check_s: how often bookings are checked against the current plan.
    :param sweep_lead_s: the closing-time sweep offers a callback to a caller whose wait (80th
        percentile) would end later than this before closing.
    """

    slots: SlotSettings = field(default_factory=SlotSettings)
    offer: OfferSettings = field(default_factory=OfferSettings)
    grace_s: float = DEFAULT_GRACE_S
    horizon_days: int = 7
    due_lead_s: float = 15.0
    default_region: str = "US"
    allowed_regions: tuple[str, ...] = ()
    plan_ttl_s: float = 300.0
    commitment_check_s: float = 300.0
    sweep_lead_s: float = SWEEP_LEAD_S

    def __post_init__(self) -> None:
        if not 1 <= self.horizon_days <= 30:
            raise ValidationError(f"horizon_days must be from 1 to 30, not {self.horizon_days!r}")
        for name in ("grace_s", "due_lead_s", "plan_ttl_s", "commitment_check_s", "sweep_lead_s"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0.0:
                raise ValidationError(f"{name} must be at least 0, not {value!r}")


@dataclass(frozen=True, kw_only=True, slots=True)
class Booking:
    """A stored callback; ``created`` is false when an idempotent repeat returned the first one."""

    callback: Callback
    created: bool


@dataclass(frozen=True, kw_only=True, slots=True)
class DaySlots:
    """A queue's slots on one local day: all of them with their capacity, and those offerable now."""

    queue: str
    day: date
    slots: tuple[SlotCapacity, ...]
    offerable: tuple[SlotCapacity, ...]
    note: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class CallbackDetail:
    callback: Callback
    changes: tuple[CallbackChange, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class CallbackOffer:
    """What a waiting caller is told and offered now: their wait (``None``: no estimate) and the offer."""

    at: datetime
    wait: WaitFigures | None
    decision: OfferDecision
    recheck_in_s: float | None = None  # when the closing-time sweep would reach this caller


@dataclass(slots=True)
class _Plan:
    queue: QueueRecord
    loads: tuple[IntervalLoad, ...] | None
    note: str
    expires_at: datetime


class CallbackService:
    """Slots, bookings, kept places and cancellations (see the module docstring).

    :param live: the queues' live boards (the queue service); ``None`` where there are none (the
        CLI, an API-only process): kept places are then never released here.
    :param line: the dispatcher's view of the kept places it could dial now
        (:class:`~callcenter.callbacks.line.CallbackLine`). When given, only those are released,
        and only while the view is fresh: in the process whose dispatcher leads, which is the one
        whose queue serves the live callers.
    """

    def __init__(
        self,
        repo: CallbackRepository,
        planner: DayPlanner,
        queues: QueueSettingsSource,
        bus: EventBus,
        clock: Clock,
        *,
        live: LiveQueueSource | None = None,
        estimates: WaitEstimator | None = None,
        settings: CallbackSettings | None = None,
        new_id: Callable[[], str] = lambda: f"cb-{uuid.uuid4().hex}",
        line: CallbackLine | None = None,
    ) -> None:
        self._repo = repo
        self._line = line
        self._planner = planner
        self._queues = queues
        self._bus = bus
        self._clock = clock
        self._live = live
        self._estimates = estimates
        self._settings = settings or CallbackSettings()
        self._new_id = new_id
        self._plans: dict[tuple[str, date], _Plan] = {}
        self._alerted: set[str] = set()
        self._next_check: datetime | None = None

    @property
    def settings(self) -> CallbackSettings:
        return self._settings

    def use_line(self, line: CallbackLine) -> None:
        """Release only the kept places ``line`` shows (see the ``line`` parameter)."""
        self._line = line

    # -- numbers ------------------------------------------------------------------------------------

    async def queue_settings(self, queue: str) -> QueueRecord:
        """:raises NotFoundError:"""
        return await self._queues.get(queue)

    def number_check(self, raw: str) -> NumberCheck:
        """Whether ``raw`` may be called back, and its E.164 form or the refusal."""
        return check_callback_number(
            raw, default_region=self._settings.default_region, allowed_regions=self._settings.allowed_regions
        )

    def check_number(self, raw: str) -> str:
        """The E.164 form of a number we may call back. :raises InvalidPhoneNumberError: saying why."""
        checked = check_callback_number(
            raw, default_region=self._settings.default_region, allowed_regions=self._settings.allowed_regions
        )
        if checked.e164 is None:
            assert checked.refusal is not None
            raise InvalidPhoneNumberError(f"{_REFUSALS[checked.refusal]}: {raw.strip()[:32]!r}")
        return checked.e164

    # -- the offer ----------------------------------------------------------------------------------

    async def offer(self, queue: str, call_id: str) -> CallbackOffer:
        """Re-estimate a waiting caller's wait now and decide the offer (see :mod:`.policy`).

        No estimate (no agent, no history, no live board, the predictor failing): no offer, and
        ``wait`` is ``None``, so nothing is announced that could be wrong.
        """
        return await self.offer_with(queue, await self._wait(queue, call_id))

    async def offer_with(
        self, queue: str, wait: WaitFigures | None, *, settings: OfferSettings | None = None
    ) -> CallbackOffer:
        """The offer for a caller whose wait is ``wait`` (estimated elsewhere: an ``app_queue`` site).

        :param settings: the offer rule to apply instead of this service's.
        """
        record = await self._queues.get(queue)
        now = self._clock.now()
        closes = closing_time(business_hours(record.business_hours, record.holidays, record.time_zone), now)
        settings = settings or self._settings.offer
        recheck_in_s: float | None = None
        if wait is not None and closes is not None:
            if closing_sweep(
                [("caller", wait.p80_s)], now=now, closes_at=closes, lead_s=self._settings.sweep_lead_s
            ):
                # Closing-time sweep: the wait runs past closing, so offer now, threshold or not.
                settings = dataclasses.replace(settings, wait_threshold_s=0.0)
            else:
                sweep_at = closes - timedelta(seconds=wait.p80_s + self._settings.sweep_lead_s)
                recheck_in_s = max(0.0, (sweep_at - now).total_seconds())
        decision = offer_decision(wait, now=now, closes_at=closes, slot_available=False, settings=settings)
        if (
            settings.later
            and wait is not None
            and (decision.offer or decision.reason is NoOfferReason.CANNOT_KEEP)
        ):
            try:
                has_slot = bool(await self.next_slots(queue, count=1))
            except CallCenterError as exc:
                logger.warning("callback offer in %s: slots unknown: %s", queue, exc)
                has_slot = False
            decision = offer_decision(
                wait, now=now, closes_at=closes, slot_available=has_slot, settings=settings
            )
        return CallbackOffer(at=now, wait=wait, decision=decision, recheck_in_s=recheck_in_s)

    async def _wait(self, queue: str, call_id: str) -> WaitFigures | None:
        if self._estimates is None:
            return None
        try:
            estimate = await self._estimates.announce(queue, call_id)
        except (DependencyError, NotFoundError, ValidationError) as exc:
            logger.info("callback offer for %s: no estimate: %s", call_id, exc)
            return None
        predicted = estimate.wait.estimate
        if predicted is None:
            return None
        return WaitFigures(
            p80_s=predicted.p80_s,
            p90_s=predicted.p90_s,
            mean_s=predicted.mean_s,
            position=estimate.wait.position,
            staffed=estimate.wait.agents_staffed,
        )

    # -- slots --------------------------------------------------------------------------------------

    async def day_slots(self, queue: str, day: date | None = None) -> DaySlots:
        """The slots of ``day`` (local to the queue; today when ``None``) and those offerable now.

        A day without usable history or schedules has no capacity: no slot is offered, and ``note``
        says why. :raises NotFoundError: unknown queue. :raises ValidationError: a day out of range.
        """
        record = await self._queues.get(queue)
        zone = zone_of(record.time_zone)
        now = self._clock.now()
        today = now.astimezone(zone).date()
        day = today if day is None else day
        if not 0 <= (day - today).days < self._settings.horizon_days:
            raise ValidationError(
                f"callback slots are offered from today to {self._settings.horizon_days - 1} days ahead, "
                f"not on {day.isoformat()}"
            )
        plan = await self._plan(record, day)
        start = datetime.combine(day, time(), zone)
        end = datetime.combine(day + timedelta(days=1), time(), zone)
        if plan.loads is None:
            return DaySlots(queue=queue, day=day, slots=(), offerable=(), note=plan.note)
        booked = await self._repo.booked(queue, start, end)
        hours = business_hours(record.business_hours, record.holidays, record.time_zone)
        slots = slot_capacities(
            plan.loads,
            booked=booked,
            hours=hours,
            answer_within_s=float(record.service_level_s),
            settings=self._settings.slots,
        )
        return DaySlots(
            queue=queue,
            day=day,
            slots=slots,
            offerable=offerable(slots, now=now, settings=self._settings.slots),
            note=plan.note,
        )

    async def next_slots(self, queue: str, *, count: int = 3) -> tuple[SlotCapacity, ...]:
        """The first ``count`` offerable slots from now, over the horizon (for the IVR's menu)."""
        record = await self._queues.get(queue)
        today = self._clock.now().astimezone(zone_of(record.time_zone)).date()
        found: list[SlotCapacity] = []
        for offset in range(self._settings.horizon_days):
            found += (await self.day_slots(queue, today + timedelta(days=offset))).offerable
            if len(found) >= count:
                break
        return tuple(found[:count])

    async def _plan(self, record: QueueRecord, day: date) -> _Plan:
        now = self._clock.now()
        key = (record.name, day)
        cached = self._plans.get(key)
        if cached is not None and now < cached.expires_at and cached.queue == record:
            return cached
        ttl = timedelta(seconds=self._settings.plan_ttl_s)
        try:
            forecast = await self._planner.forecast(
                record.name, day, target_service_level=self._settings.slots.target_service_level
            )
            plan = _Plan(record, interval_loads(forecast.plan), "", now + ttl)
        except NoHistoryError as exc:
            plan = _Plan(record, None, f"no call history to forecast from: {exc}", now + ttl)
        except (ValidationError, DependencyError) as exc:
            logger.warning("callback slots of %s on %s: no plan: %s", record.name, day, exc)
            plan = _Plan(record, None, f"no plan: {exc}", now + min(ttl, timedelta(seconds=60)))
        self._plans[key] = plan
        return plan

    # -- requests -----------------------------------------------------------------------------------

    async def book(
        self,
        queue: str,
        number: str,
        slot_start: datetime,
        *,
        actor: Actor,
        client_key: str | None = None,
        call_id: str | None = None,
        reason: str = "chose a later time",
    ) -> Booking:
        """Book a callback in the slot starting at ``slot_start`` (it must be offerable now).

        :raises InvalidPhoneNumberError: a number we do not call back.
        :raises ValidationError: no slot starts there, or it is not offerable (closed, too soon).
        :raises SlotFullError: the slot filled up meanwhile: offer the next one.
        :raises CallbackExistsError: the number has an open callback in this queue.
        """
        e164 = self.check_number(number)
        if client_key is not None:
            repeat = await self._repo.by_client_key(_check_key(client_key))
            if repeat is not None:
                if (repeat.queue, repeat.number, repeat.window.start) != (queue, e164, slot_start):
                    raise ConflictError(f"client key {client_key!r} was used for another callback request")
                return Booking(callback=repeat, created=False)
        record = await self._queues.get(queue)
        day = slot_start.astimezone(zone_of(record.time_zone)).date()
        try:
            slots = await self.day_slots(queue, day)
        except ValidationError as exc:
            raise ValidationError(f"no callback slot starts at {slot_start.isoformat()}: {exc}") from exc
        slot = next((s for s in slots.slots if s.start == slot_start), None)
        if slot is None:
            raise ValidationError(f"no callback slot starts at {slot_start.isoformat()} in queue {queue!r}")
        if slot not in slots.offerable:
            if slot.open_hours and slot.booked >= slot.capacity and slot.capacity > 0:
                raise SlotFullError(f"the slot at {slot_start.isoformat()} is fully booked")
            raise ValidationError(
                f"the slot at {slot_start.isoformat()} cannot be offered now "
                f"({slot.note or 'too soon, or no capacity predicted'})"
            )
        now = self._clock.now()
        callback, first = new_callback(
            callback_id=self._new_id(),
            queue=queue,
            number=e164,
            kind=CallbackKind.SCHEDULED,
            window=slot_window(slot.start, slot.end),
            at=now,
            actor=actor,
            call_id=call_id,
            client_key=client_key,
            handle_s=self._settings.slots.callback_handle_s,
            reason=reason,
        )
        callback, second = move(
            callback,
            CallbackState.SCHEDULED,
            at=now,
            actor=actor,
            reason=f"slot {slot.start.isoformat()} booked",
            due_at=slot.start,
        )
        stored = await self._repo.book(
            callback, (first, second), slot_start=slot.start, capacity=slot.capacity
        )
        created = stored.id == callback.id
        if created:
            await self._publish(_state_events(stored, (first, second)))
            logger.info(
                "callback %s booked in %s at %s by %s", stored.id, queue, slot.start.isoformat(), actor
            )
        return Booking(callback=stored, created=created)

    async def keep_place(
        self,
        queue: str,
        number: str,
        *,
        enqueued_at: datetime,
        by: datetime,
        actor: Actor,
        call_id: str | None = None,
        client_key: str | None = None,
    ) -> Booking:
        """A kept place: called back when the caller's original place reaches the head, by ``by``.

        :raises InvalidPhoneNumberError: :raises CallbackExistsError:
        """
        e164 = self.check_number(number)
        now = self._clock.now()
        if by < now:
            raise ValidationError("the promised time is already past")
        callback, first = new_callback(
            callback_id=self._new_id(),
            queue=queue,
            number=e164,
            kind=CallbackKind.KEEP_PLACE,
            window=keep_place_window(now, by, grace_s=self._settings.grace_s),
            at=now,
            actor=actor,
            call_id=call_id,
            enqueued_at=enqueued_at,
            client_key=None if client_key is None else _check_key(client_key),
            handle_s=self._settings.slots.callback_handle_s,
            reason="keep my place",
        )
        stored = await self._repo.add(callback, (first,))
        created = stored.id == callback.id
        if created and self._line is not None:
            # In line at once, before the caller leaves it: no later caller slips ahead meanwhile.
            self._line.add(KeptPlace(key=line_key(stored), callback_id=stored.id, queue=stored.queue))
        if created:
            await self._publish(_state_events(stored, (first,)))
            logger.info("callback %s keeps a place in %s, promised by %s", stored.id, queue, by.isoformat())
        return Booking(callback=stored, created=created)

    async def cancel(self, callback_id: str, *, actor: Actor, reason: str = "") -> Callback:
        """Cancel an open callback (a repeat on a cancelled one returns it unchanged).

        :raises NotFoundError: :raises ConflictError: it is connected or closed otherwise.
        """
        callback = await self._repo.get(callback_id)
        if callback.state is CallbackState.CANCELLED:
            return callback
        moved, change = move(
            callback, CallbackState.CANCELLED, at=self._clock.now(), actor=actor, reason=reason
        )
        stored = await self._repo.move(moved, change)
        if self._line is not None:
            self._line.remove(callback_id)
        await self._publish(_state_events(stored, (change,)))
        logger.info("callback %s cancelled by %s", callback_id, actor)
        return stored

    async def get(self, callback_id: str) -> CallbackDetail:
        """:raises NotFoundError:"""
        return CallbackDetail(
            callback=await self._repo.get(callback_id), changes=await self._repo.changes(callback_id)
        )

    async def list_callbacks(
        self, *, queue: str | None, state: CallbackState | None, cursor: str | None, limit: int
    ) -> Page[Callback]:
        """Callbacks newest request first. :raises ValidationError: a bad cursor or limit."""
        return await self._repo.list(queue=queue, state=state, cursor=cursor, limit=limit)

    async def open_for(self, queue: str, number: str) -> Callback | None:
        """The caller's open callback in ``queue`` (a repeat caller is offered to keep or cancel it)."""
        return await self._repo.open_for(queue, number)

    # -- time-driven --------------------------------------------------------------------------------

    async def tick(self) -> None:
        """Release due kept places; check bookings against the plan now and then. Never raises."""
        try:
            await self.release_due()
            now = self._clock.now()
            if self._next_check is None or now >= self._next_check:
                self._next_check = now + timedelta(seconds=self._settings.commitment_check_s)
                for queue in await self._queues.list():
                    await self.check_commitments(queue.name)
        except Exception:
            logger.exception("callbacks: tick failed")

    async def release_due(self) -> tuple[str, ...]:
        """Move every kept place that reached the head with an agent predicted free to ``scheduled``."""
        if self._live is None:
            return ()
        shown: frozenset[str] | None = None
        if self._line is not None:
            shown = self._line.ids(self._clock.now())
            if shown is None:
                return ()  # no dispatcher leads here: the live line is another process's
        line = await self._repo.in_state(None, _IN_LINE, kind=CallbackKind.KEEP_PLACE)
        if shown is not None:
            line = tuple(c for c in line if c.id in shown)
        released: list[str] = []
        for queue in sorted({c.queue for c in line}):
            try:
                released += await self._release_queue(queue, [c for c in line if c.queue == queue])
            except CallCenterError as exc:
                logger.warning("callbacks: kept places of %s not released: %s", queue, exc)
        return tuple(released)

    async def _release_queue(self, queue: str, line: list[Callback]) -> list[str]:
        assert self._live is not None
        live = await self._live.live(queue)
        now = live.at
        holding = await self._repo.in_state(queue, _HOLDING_AGENT, kind=CallbackKind.KEEP_PLACE)
        if self._line is not None:
            # Only those the dispatcher would dial now (not in quiet hours, not claimed) take an agent.
            shown = self._line.ids(now) or frozenset()
            holding = tuple(c for c in holding if c.id in shown)
        free = predicted_free_agents(
            (AgentNow(state=a.state, since=a.since) for a in live.view.agents),
            now=now,
            wrap_up_s=float(live.queue.wrap_up_s),
            lead_s=self._settings.due_lead_s,
            reserved=len(holding),
        )
        callers = [
            LiveCaller(call_id=w.call_id, enqueued_at=w.enqueued_at, offered=w.ringing_agent is not None)
            for w in live.view.waiting
        ]
        decision = due_callbacks(callers, line, free=free)
        by_id = {c.id: c for c in line}
        released = []
        for callback_id in decision.due:
            moved, change = move(
                by_id[callback_id],
                CallbackState.SCHEDULED,
                at=now,
                actor=DUE_POLICY,
                reason=f"place reached the head with {free} agent(s) predicted free",
                due_at=now,
            )
            try:
                stored = await self._repo.move(moved, change)
            except CallCenterError as exc:
                logger.info("callback %s not released: %s", callback_id, exc)
                continue
            await self._publish(_state_events(stored, (change,)))
            released.append(callback_id)
        return released

    async def handle_staffing(self, event: DomainEvent) -> tuple[SlotCapacity, ...]:
        """A staffing change (an agent's queues or shifts): every booked day of every queue is checked
        at once against a fresh plan, raising ``CallbackSlotOverCommitted`` for slots now over
        capacity. Other events are ignored. Never raises; the over-committed slots found."""
        if not isinstance(event, AgentQueuesChanged | AgentScheduleChanged):
            return ()
        self._plans.clear()  # the plans were made with the old staffing
        found: list[SlotCapacity] = []
        for record in await self._queues_or_none():
            try:
                found += await self.check_commitments(record.name, await self._booked_days(record))
            except Exception:
                logger.exception("callbacks: bookings of %s not checked after a staffing change", record.name)
        return tuple(found)

    async def _queues_or_none(self) -> tuple[QueueRecord, ...]:
        try:
            return await self._queues.list()
        except Exception:
            logger.exception("callbacks: queues not read after a staffing change")
            return ()

    async def _booked_days(self, record: QueueRecord) -> tuple[date, ...]:
        """The local days within the horizon that hold bookings of ``record``."""
        zone = zone_of(record.time_zone)
        today = self._clock.now().astimezone(zone).date()
        start = datetime.combine(today, time(), zone)
        end = datetime.combine(today + timedelta(days=self._settings.horizon_days), time(), zone)
        booked = await self._repo.booked(record.name, start, end)
        return tuple(sorted({at.astimezone(zone).date() for at, n in booked.items() if n > 0}))

    async def check_commitments(
        self, queue: str, days: Iterable[date] | None = None
    ) -> tuple[SlotCapacity, ...]:
        """Bookings over the capacity the current plan leaves (today and tomorrow by default).

        Each over-committed slot raises one ``CallbackSlotOverCommitted`` per (booked, capacity);
        the bookings stay.
        """
        record = await self._queues.get(queue)
        today = self._clock.now().astimezone(zone_of(record.time_zone)).date()
        found: list[SlotCapacity] = []
        for day in days if days is not None else (today, today + timedelta(days=1)):
            if (day - today).days >= self._settings.horizon_days:
                continue
            slots = await self.day_slots(queue, day)
            if not slots.slots and slots.note:
                # No plan (no history, or the planner is down): nothing to measure bookings against.
                logger.info("queue %s: bookings of %s not checked: %s", queue, day, slots.note)
                continue
            found += [s for s in slots.slots if s.over_committed]
        alerts: list[DomainEvent] = []
        now = self._clock.now()
        for slot in found:
            event_id = f"callback-slot-over:{queue}:{slot.start.isoformat()}:{slot.booked}:{slot.capacity}"
            if event_id in self._alerted:
                continue
            self._alerted.add(event_id)
            logger.warning(
                "queue %s: slot %s holds %d callbacks, capacity now %d",
                queue,
                slot.start.isoformat(),
                slot.booked,
                slot.capacity,
            )
            alerts.append(
                CallbackSlotOverCommitted(
                    event_id=event_id,
                    occurred_at=now,
                    queue=queue,
                    slot_start=slot.start,
                    slot_end=slot.end,
                    booked=slot.booked,
                    capacity=slot.capacity,
                )
            )
        await self._publish(alerts)
        return tuple(found)

    async def _publish(self, events: Collection[DomainEvent]) -> None:
        for event in events:
            try:
                await self._bus.publish(event)
            except Exception as exc:
                logger.error("event bus: %s %s not published: %s", event.event_type, event.event_id, exc)


def _check_key(client_key: str) -> str:
    key = client_key.strip()
    if not 1 <= len(key) <= 128 or not key.isprintable():
        raise ValidationError("client_key must be 1 to 128 printable characters")
    return key


def state_event(callback: Callback, change: CallbackChange) -> CallbackStateChanged:
    """The ``CallbackStateChanged`` of one stored change."""
    return CallbackStateChanged(
        event_id=f"callback:{callback.id}:{change.state.value}:{callback.attempts}",
        occurred_at=change.at,
        callback_id=callback.id,
        queue=callback.queue,
        number=callback.number,
        kind=callback.kind,
        state=change.state,
        previous=change.previous,
        window_start=callback.window.start,
        window_end=callback.window.end,
        due_at=callback.due_at,
        enqueued_at=callback.enqueued_at,
        call_id=callback.call_id,
        attempts=callback.attempts,
        actor_kind=change.actor.kind,
        actor=change.actor.name,
        reason=change.reason,
        result=change.result,
        early_ok=callback.window.early_ok,
    )


def _state_events(callback: Callback, changes: Iterable[CallbackChange]) -> tuple[CallbackStateChanged, ...]:
    return tuple(state_event(callback, c) for c in changes)
