"""The callback service: slots only where capacity is predicted, bookings kept safe, kept places released
in line order, cancellations, and alerts when staffing drops under booked promises."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from callcenter.callbacks.ports import CallbackExistsError, SlotFullError
from callcenter.errors import ConflictError, DependencyError, InvalidPhoneNumberError, ValidationError
from callcenter.model.callbacks import Actor
from callcenter.model.events import (
    AgentQueuesChanged,
    AgentScheduleChanged,
    AgentStateChanged,
    CallbackSlotOverCommitted,
    CallbackStateChanged,
)
from callcenter.model.vocabulary import ActorKind, AgentState, CallbackKind, CallbackState
from tests.service.callbacks.conftest import MONDAY_10, Callbacks

CALLER = Actor(ActorKind.CUSTOMER, "ivr")
ALICE = Actor(ActorKind.SUPERVISOR, "alice")
NUMBER = "+14155550100"
S = CallbackState


def _at(hour: int, minute: int = 0, day: int = 23) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


async def test_slots_are_offered_only_in_business_hours_from_the_lead_time_on(callbacks: Callbacks) -> None:
    slots = await callbacks.service.day_slots("sales")
    assert slots.day == date(2026, 11, 23)
    assert len(slots.slots) == 96
    starts = [s.start for s in slots.offerable]
    assert starts[0] == _at(10, 15)  # ten minutes' lead from 10:00
    assert starts[-1] == _at(16, 45)
    assert all(s.capacity > 0 and s.remaining == s.capacity for s in slots.offerable)
    closed = [s for s in slots.slots if s.start < _at(9)]
    assert all(s.capacity == 0 and not s.open_hours for s in closed)


async def test_a_day_without_spare_agents_offers_nothing(callbacks: Callbacks) -> None:
    callbacks.planner.staffed = 1
    slots = await callbacks.service.day_slots("sales")
    assert slots.offerable == ()


async def test_no_history_or_planner_down_offers_nothing_and_says_why(callbacks: Callbacks) -> None:
    callbacks.planner.fail = DependencyError("store down")
    slots = await callbacks.service.day_slots("sales", date(2026, 11, 24))
    assert slots.offerable == () and "store down" in slots.note
    with pytest.raises(ValidationError, match="cannot be offered|no callback slot"):
        await callbacks.service.book("sales", NUMBER, _at(10, 0, day=24), actor=CALLER)


async def test_days_beyond_the_horizon_or_past_are_refused(callbacks: Callbacks) -> None:
    with pytest.raises(ValidationError, match="days ahead"):
        await callbacks.service.day_slots("sales", date(2026, 12, 30))
    with pytest.raises(ValidationError):
        await callbacks.service.day_slots("sales", date(2026, 11, 22))


async def test_booking_schedules_the_callback_for_the_slot_and_publishes_both_changes(
    callbacks: Callbacks,
) -> None:
    booking = await callbacks.service.book("sales", "(415) 555-0100", _at(14), actor=CALLER, client_key="k1")
    callback = booking.callback
    assert booking.created
    assert (callback.state, callback.kind, callback.number) == (S.SCHEDULED, CallbackKind.SCHEDULED, NUMBER)
    assert (callback.window.start, callback.window.end, callback.window.early_ok) == (
        _at(14),
        _at(14, 15),
        False,
    )
    assert callback.due_at == _at(14)
    events = callbacks.bus.of_type(CallbackStateChanged)
    assert [(e.previous, e.state) for e in events] == [(None, S.REQUESTED), (S.REQUESTED, S.SCHEDULED)]  # type: ignore[attr-defined]
    assert all(e.actor_kind is ActorKind.CUSTOMER and e.queue == "sales" for e in events)  # type: ignore[attr-defined]
    slot = next(s for s in (await callbacks.service.day_slots("sales")).slots if s.start == _at(14))
    assert slot.booked == 1


async def test_a_repeated_booking_with_the_same_key_returns_the_first_and_publishes_nothing(
    callbacks: Callbacks,
) -> None:
    first = await callbacks.service.book("sales", NUMBER, _at(14), actor=CALLER, client_key="k1")
    published = len(callbacks.bus.published)
    again = await callbacks.service.book("sales", NUMBER, _at(14), actor=CALLER, client_key="k1")
    assert not again.created and again.callback.id == first.callback.id
    assert len(callbacks.bus.published) == published


async def test_a_slot_fills_up_and_the_next_one_is_offered(callbacks: Callbacks) -> None:
    slot = next(s for s in (await callbacks.service.day_slots("sales")).offerable if s.start == _at(14))
    for i in range(slot.capacity):
        await callbacks.service.book("sales", f"+1415555{i:04d}", _at(14), actor=CALLER)
    with pytest.raises(SlotFullError):
        await callbacks.service.book("sales", "+14155559999", _at(14), actor=CALLER)
    offered = [s.start for s in (await callbacks.service.day_slots("sales")).offerable]
    assert _at(14) not in offered and _at(14, 15) in offered


async def test_bad_numbers_and_times_are_refused_clearly(callbacks: Callbacks) -> None:
    with pytest.raises(InvalidPhoneNumberError, match="not a valid phone number"):
        await callbacks.service.book("sales", "12", _at(14), actor=CALLER)
    with pytest.raises(InvalidPhoneNumberError, match="premium"):
        await callbacks.service.book("sales", "+19005550123", _at(14), actor=CALLER)
    with pytest.raises(InvalidPhoneNumberError, match="withheld"):
        await callbacks.service.book("sales", "anonymous", _at(14), actor=CALLER)
    with pytest.raises(ValidationError, match="no callback slot starts"):
        await callbacks.service.book("sales", NUMBER, _at(14, 7), actor=CALLER)
    with pytest.raises(ValidationError, match="cannot be offered"):
        await callbacks.service.book("sales", NUMBER, _at(10, 0), actor=CALLER)  # too soon
    with pytest.raises(ValidationError, match="cannot be offered"):
        await callbacks.service.book("sales", NUMBER, _at(18), actor=CALLER)  # closed
    assert callbacks.repo.callbacks == {}


async def test_one_open_callback_per_number_and_queue(callbacks: Callbacks) -> None:
    await callbacks.service.book("sales", NUMBER, _at(14), actor=CALLER)
    with pytest.raises(CallbackExistsError):
        await callbacks.service.book("sales", NUMBER, _at(15), actor=CALLER)


async def test_cancelling_frees_the_slot_and_records_who_cancelled(callbacks: Callbacks) -> None:
    booking = await callbacks.service.book("sales", NUMBER, _at(14), actor=CALLER)
    cancelled = await callbacks.service.cancel(
        booking.callback.id, actor=ALICE, reason="customer asked by email"
    )
    assert cancelled.state is S.CANCELLED
    detail = await callbacks.service.get(booking.callback.id)
    assert detail.changes[-1].actor == ALICE and detail.changes[-1].reason == "customer asked by email"
    slot = next(s for s in (await callbacks.service.day_slots("sales")).slots if s.start == _at(14))
    assert slot.booked == 0
    assert (await callbacks.service.cancel(booking.callback.id, actor=ALICE)).state is S.CANCELLED
    last = callbacks.bus.of_type(CallbackStateChanged)[-1]
    assert last.state is S.CANCELLED and last.actor_kind is ActorKind.SUPERVISOR  # type: ignore[attr-defined]


async def test_keep_place_is_requested_with_a_window_that_accepts_an_early_call(callbacks: Callbacks) -> None:
    by = MONDAY_10 + timedelta(minutes=15)
    booking = await callbacks.service.keep_place(
        "sales", NUMBER, enqueued_at=MONDAY_10 - timedelta(minutes=5), by=by, actor=CALLER, call_id="call-1"
    )
    callback = booking.callback
    assert (callback.state, callback.kind, callback.call_id) == (
        S.REQUESTED,
        CallbackKind.KEEP_PLACE,
        "call-1",
    )
    assert callback.window.start == MONDAY_10 and callback.window.end == by + timedelta(minutes=2)
    assert callback.window.early_ok
    with pytest.raises(ValidationError, match="past"):
        await callbacks.service.keep_place(
            "sales", "+14155550101", enqueued_at=MONDAY_10, by=MONDAY_10 - timedelta(minutes=1), actor=CALLER
        )


async def test_given_callback_behind_an_earlier_caller_when_one_agent_frees_then_the_caller_goes_first(
    callbacks: Callbacks,
) -> None:
    board = callbacks.board
    board.caller("early", enqueued_s_ago=600)
    board.caller("late", enqueued_s_ago=60)
    booking = await callbacks.service.keep_place(
        "sales",
        NUMBER,
        enqueued_at=MONDAY_10 - timedelta(seconds=300),
        by=MONDAY_10 + timedelta(minutes=20),
        actor=CALLER,
    )
    board.agent("a1", AgentState.BUSY)
    assert await callbacks.service.release_due() == ()
    board.agent("a2", AgentState.AVAILABLE)
    assert await callbacks.service.release_due() == ()  # "early" takes that agent
    board.waiting.pop(0)  # "early" was answered
    released = await callbacks.service.release_due()
    assert released == (booking.callback.id,)
    stored = await callbacks.repo.get(booking.callback.id)
    assert stored.state is S.SCHEDULED and stored.due_at == MONDAY_10
    change = (await callbacks.repo.changes(stored.id))[-1]
    assert change.actor.kind is ActorKind.SYSTEM and "head" in change.reason
    # The agent is now held for it: a second kept place behind it waits for another free agent.
    await callbacks.service.keep_place(
        "sales",
        "+14155550101",
        enqueued_at=MONDAY_10 - timedelta(seconds=200),
        by=MONDAY_10 + timedelta(minutes=20),
        actor=CALLER,
    )
    assert await callbacks.service.release_due() == ()


async def test_a_wrap_up_ending_within_the_lead_counts_as_a_free_agent(callbacks: Callbacks) -> None:
    booking = await callbacks.service.keep_place(
        "sales",
        NUMBER,
        enqueued_at=MONDAY_10 - timedelta(seconds=300),
        by=MONDAY_10 + timedelta(minutes=20),
        actor=CALLER,
    )
    callbacks.board.agent("a1", AgentState.WRAP_UP, since_s_ago=20)  # 30 s wrap-up: ends in 10 s
    assert await callbacks.service.release_due() == (booking.callback.id,)


async def test_staffing_drop_raises_one_over_commitment_alert_and_keeps_the_bookings(
    callbacks: Callbacks,
) -> None:
    slot = next(s for s in (await callbacks.service.day_slots("sales")).offerable if s.start == _at(14))
    for i in range(slot.capacity):
        await callbacks.service.book("sales", f"+1415555{i:04d}", _at(14), actor=CALLER)
    assert await callbacks.service.check_commitments("sales") == ()
    callbacks.planner.staffed = 1
    callbacks.clock.advance(600)  # the cached plan expires
    over = await callbacks.service.check_commitments("sales")
    assert [s.start for s in over] == [_at(14)]
    await callbacks.service.check_commitments("sales")
    alerts = callbacks.bus.of_type(CallbackSlotOverCommitted)
    assert len(alerts) == 1
    assert (alerts[0].booked, alerts[0].capacity) == (slot.capacity, 0)  # type: ignore[attr-defined]
    assert len(await callbacks.repo.in_state("sales", frozenset({S.SCHEDULED}))) == slot.capacity


async def test_a_staffing_change_checks_booked_slots_at_once_not_minutes_later(callbacks: Callbacks) -> None:
    """Issue #6: the over-commitment alert comes when a schedule or a queue's agents change."""
    slot = next(s for s in (await callbacks.service.day_slots("sales")).offerable if s.start == _at(14))
    for i in range(slot.capacity):
        await callbacks.service.book("sales", f"+1415555{i:04d}", _at(14), actor=CALLER)
    callbacks.planner.staffed = 1  # two agents' shifts removed; no time passes (the plan is cached)
    assert await callbacks.service.check_commitments("sales") == (), "the cached plan still says fine"
    unrelated = AgentStateChanged(
        event_id="e0",
        occurred_at=MONDAY_10,
        agent_id="a1",
        state=AgentState.PAUSED,
        previous=AgentState.AVAILABLE,
    )
    assert await callbacks.service.handle_staffing(unrelated) == ()
    changed = AgentScheduleChanged(
        event_id="agent-schedule:a1:x",
        occurred_at=MONDAY_10,
        agent_id="a1",
        shifts=("mon 09:00-10:00",),
        reason="set by boss",
    )
    over = await callbacks.service.handle_staffing(changed)
    assert [s.start for s in over] == [_at(14)]
    alerts = callbacks.bus.of_type(CallbackSlotOverCommitted)
    assert len(alerts) == 1 and alerts[0].slot_start == _at(14)  # type: ignore[attr-defined]
    moved = AgentQueuesChanged(
        event_id="agent-queues:a2:x", occurred_at=MONDAY_10, agent_id="a2", queues=(), reason="set by boss"
    )
    await callbacks.service.handle_staffing(moved)
    assert len(callbacks.bus.of_type(CallbackSlotOverCommitted)) == 1, "one alert per situation"
    assert len(await callbacks.repo.in_state("sales", frozenset({S.SCHEDULED}))) == slot.capacity


async def test_a_bus_failure_loses_no_booking(callbacks: Callbacks) -> None:
    callbacks.bus.fail_next(ConnectionError("redis down"))
    booking = await callbacks.service.book("sales", NUMBER, _at(14), actor=CALLER)
    assert (await callbacks.repo.get(booking.callback.id)).state is S.SCHEDULED


async def test_a_client_key_not_printable_or_reused_for_another_request_is_refused(
    callbacks: Callbacks,
) -> None:
    with pytest.raises(ValidationError, match="client_key"):
        await callbacks.service.book("sales", NUMBER, _at(14), actor=CALLER, client_key="\x00")
    await callbacks.service.book("sales", NUMBER, _at(14), actor=CALLER, client_key="k")
    with pytest.raises(ConflictError, match="another callback request"):
        await callbacks.service.book("sales", "+14155550101", _at(14), actor=CALLER, client_key="k")
