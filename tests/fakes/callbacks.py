"""In-memory fake of ``CallbackRepository`` for service tests (test double of ``SqlCallbackRepository``).

The same contract tests run against it and the SQL repository (``tests/integration/store``): one open
callback per (queue, number), idempotent client keys, slot bookings checked against capacity, moves
refused when the stored state changed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping
from datetime import UTC, date, datetime, timedelta

from callcenter.callbacks.ports import CallbackExistsError, SlotFullError, StaleCallbackError
from callcenter.capacity.forecast import Basis, IntervalForecast, QueueForecast, plan_day
from callcenter.capacity.predictors import PatienceEstimate
from callcenter.capacity.schedules import INTERVALS_PER_DAY, make_schedule, shift_of
from callcenter.capacity.service import Forecast
from callcenter.errors import ConflictError, NotFoundError
from callcenter.model.callbacks import Callback, CallbackChange
from callcenter.model.paging import Page
from callcenter.model.vocabulary import CallbackKind, CallbackState
from callcenter.queue.hours import zone_of
from tests.fakes.store import InMemoryQueueRepository, _paged, _utc_fields

_FREES_SLOT = frozenset({CallbackState.CANCELLED, CallbackState.EXPIRED, CallbackState.COMPLETED_INBOUND})


class InMemoryCallbackRepository:
    """Callbacks in dicts, with the SQL repository's rules."""

    def __init__(self) -> None:
        self.callbacks: dict[str, Callback] = {}
        self.log: dict[str, list[CallbackChange]] = {}
        self.slot_of: dict[str, datetime] = {}
        self.slots: dict[tuple[str, datetime], int] = {}

    async def add(self, callback: Callback, changes: tuple[CallbackChange, ...]) -> Callback:
        same = self._check_new(callback)
        if same is not None:
            return same
        self._insert(callback, changes)
        return callback

    async def book(
        self, callback: Callback, changes: tuple[CallbackChange, ...], *, slot_start: datetime, capacity: int
    ) -> Callback:
        key = (callback.queue, slot_start)
        if self.slots.get(key, 0) >= capacity:
            raise SlotFullError(f"the slot at {slot_start.isoformat()} is fully booked")
        same = self._check_new(callback)
        if same is not None:
            return same
        self.slots[key] = self.slots.get(key, 0) + 1
        self.slot_of[callback.id] = slot_start
        self._insert(callback, changes)
        return callback

    def _check_new(self, callback: Callback) -> Callback | None:
        if callback.client_key is not None:
            same = next((c for c in self.callbacks.values() if c.client_key == callback.client_key), None)
            if same is not None:
                if (same.queue, same.number, same.kind, same.window.start) != (
                    callback.queue,
                    callback.number,
                    callback.kind,
                    callback.window.start,
                ):
                    raise ConflictError(
                        f"client key {callback.client_key!r} was used for another callback request"
                    )
                return same
        if callback.id in self.callbacks:
            raise ConflictError(f"callback {callback.id} exists")
        existing = self._open_for(callback.queue, callback.number)
        if existing is not None and callback.state.is_open:
            raise CallbackExistsError(f"number {callback.number} already has an open callback", existing.id)
        return None

    def _insert(self, callback: Callback, changes: tuple[CallbackChange, ...]) -> None:
        self.callbacks[callback.id] = _utc_fields(callback)
        self.log[callback.id] = [_utc_fields(c) for c in changes]

    async def move(self, callback: Callback, change: CallbackChange) -> Callback:
        stored = await self.get(callback.id)
        if stored.state is not change.previous:
            raise StaleCallbackError(f"callback {callback.id} is {stored.state.value} now")
        kept = dataclasses.replace(
            callback,
            queue=stored.queue,
            number=stored.number,
            kind=stored.kind,
            requested_at=stored.requested_at,
            client_key=stored.client_key,
            call_id=stored.call_id,
        )
        self.callbacks[callback.id] = _utc_fields(kept)
        if change.state in _FREES_SLOT and callback.id in self.slot_of:
            key = (stored.queue, self.slot_of[callback.id])
            self.slots[key] = max(0, self.slots.get(key, 0) - 1)
        self.log[callback.id].append(_utc_fields(change))
        return kept

    async def get(self, callback_id: str) -> Callback:
        try:
            return self.callbacks[callback_id]
        except KeyError:
            raise NotFoundError(f"callback {callback_id!r} not found") from None

    async def by_client_key(self, client_key: str) -> Callback | None:
        return next((c for c in self.callbacks.values() if c.client_key == client_key), None)

    def _open_for(self, queue: str, number: str) -> Callback | None:
        return next(
            (c for c in self.callbacks.values() if c.queue == queue and c.number == number and c.is_open),
            None,
        )

    async def open_for(self, queue: str, number: str) -> Callback | None:
        return self._open_for(queue, number)

    async def open_for_number(self, number: str) -> tuple[Callback, ...]:
        found = [c for c in self.callbacks.values() if c.number == number and c.is_open]
        return tuple(sorted(found, key=lambda c: (c.requested_at, c.id)))

    async def open_for_numbers(self, numbers: Collection[str]) -> dict[str, tuple[Callback, ...]]:
        found = {number: await self.open_for_number(number) for number in set(numbers)}
        return {number: callbacks for number, callbacks in found.items() if callbacks}

    async def changes(self, callback_id: str) -> tuple[CallbackChange, ...]:
        await self.get(callback_id)
        return tuple(self.log[callback_id])

    async def booked(self, queue: str, since: datetime, until: datetime) -> Mapping[datetime, int]:
        return {
            start: n for (q, start), n in self.slots.items() if q == queue and since <= start < until and n
        }

    async def in_state(
        self, queue: str | None, states: frozenset[CallbackState], *, kind: CallbackKind | None = None
    ) -> tuple[Callback, ...]:
        found = [
            c
            for c in self.callbacks.values()
            if c.state in states and (queue is None or c.queue == queue) and (kind is None or c.kind is kind)
        ]
        return tuple(sorted(found, key=lambda c: c.order_key))

    async def list(
        self, *, queue: str | None, state: CallbackState | None, cursor: str | None, limit: int
    ) -> Page[Callback]:
        items = [
            c
            for c in self.callbacks.values()
            if (queue is None or c.queue == queue) and (state is None or c.state is state)
        ]
        return _paged(
            items, lambda c: (c.requested_at, c.id), (datetime, str), cursor, limit, descending=True
        )


class FlatDayPlanner:
    """``DayPlanner``: the same inbound forecast in every interval, and agents staffed per weekday hours.

    ``staffed`` agents work every day between ``shift`` hours (local); change ``staffed`` to model a
    staffing change. The plan itself is the real ``plan_day``.
    """

    def __init__(
        self,
        queues: InMemoryQueueRepository,
        *,
        staffed: int = 4,
        arrivals_per_interval: float = 4.0,
        aht_s: float | None = 240.0,
        patience_s: float = 180.0,
        shift: tuple[str, str] = ("09:00", "17:00"),
    ) -> None:
        self._queues = queues
        self.staffed = staffed
        self.arrivals = arrivals_per_interval
        self.aht_s = aht_s
        self.patience_s = patience_s
        self.shift = shift
        self.fail: Exception | None = None
        self.calls = 0

    async def forecast(
        self, queue: str, day: date | None = None, *, target_service_level: float | None = None
    ) -> Forecast:
        self.calls += 1
        if self.fail is not None:
            raise self.fail
        record = await self._queues.get(queue)
        zone = zone_of(record.time_zone)
        assert day is not None
        patience = PatienceEstimate.with_prior(self.patience_s, 1.0)
        intervals = tuple(
            IntervalForecast(
                weekday=w,
                slot=s,
                arrivals=self.arrivals,
                basis=Basis.WEEKLY,
                occurrences=8,
                aht_s=self.aht_s,
                patience_unit=patience,
            )
            for w in range(7)
            for s in range(INTERVALS_PER_DAY)
        )
        history = QueueForecast(
            since=T_HISTORY,
            until=T_HISTORY + timedelta(weeks=8),
            calls=1000,
            answered=900,
            waited=500,
            aht_s=self.aht_s,
            patience_s=self.patience_s,
            intervals=intervals,
        )
        shifts = [shift_of(d, *self.shift) for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")]
        schedules = [make_schedule(f"agent-{i}", shifts) for i in range(self.staffed)]
        plan = plan_day(
            history,
            schedules,
            day=day,
            zone=zone,
            answer_within_s=float(record.service_level_s),
            target_service_level=target_service_level or 0.8,
        )
        return Forecast(queue=record, history=history, plan=plan)


T_HISTORY = datetime(2026, 9, 1, tzinfo=UTC)
