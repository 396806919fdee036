"""Forecasts from stored calls with staffing from schedules, and the schedules themselves, through the service."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from callcenter.capacity.forecast import NoHistoryError
from callcenter.capacity.schedules import parse_shift
from callcenter.capacity.service import EstimateSettings
from callcenter.errors import NotFoundError, ValidationError
from callcenter.model.events import AgentScheduleChanged, DomainEvent
from callcenter.model.records import QueueRecord
from callcenter.model.vocabulary import CallOutcome
from tests.service.capacity.conftest import Capacity, MakeCapacity, agent, past_call

PARIS = ZoneInfo("Europe/Paris")
WEEK = timedelta(weeks=1)
#: The fake clock reads Monday 23 November 2026, 15:00 in Paris; the day planned is the next Monday.
NEXT_MONDAY = date(2026, 11, 30)


async def planned_queue(make_capacity: MakeCapacity, **kwargs: object) -> Capacity:
    """Queue ``sales`` in Paris with 20 s service level; a1, a2 serve it, a3 serves ``support``.

    History: 50 calls at Monday 10:00-10:15 (Paris) today and on the three Mondays before, 120 s talk;
    10 % abandon.
    """
    cap = await make_capacity(
        queues=[
            QueueRecord(name="sales", time_zone="Europe/Paris", service_level_s=20, wrap_up_s=0),
            QueueRecord(name="support", time_zone="Europe/Paris"),
        ],
        agents=[agent("a1"), agent("a2"), agent("a3", "support")],
        **kwargs,
    )
    monday = datetime(2026, 11, 23, 10, 0, tzinfo=PARIS)
    history = []
    for week in (0, 1, 2, 3):
        for i in range(50):
            outcome = CallOutcome.ABANDONED if i % 10 == 0 else CallOutcome.ANSWERED
            history.append(
                past_call(
                    week * 100 + i,
                    monday - week * WEEK + timedelta(seconds=17 * i),
                    outcome=outcome,
                    talk_s=120.0,
                )
            )
    await cap.history(history)
    return cap


async def test_a_day_is_planned_from_history_and_the_schedules_of_the_queues_agents(
    make_capacity: MakeCapacity,
) -> None:
    cap = await planned_queue(make_capacity)
    await cap.estimates.set_schedule("a1", [parse_shift("mon 09:00-17:00")], actor="test")
    await cap.estimates.set_schedule("a2", [parse_shift("mon 10:05-18:00")], actor="test")
    await cap.estimates.set_schedule("a3", [parse_shift("mon 00:00-24:00")], actor="test")

    forecast = await cap.estimates.forecast("sales", NEXT_MONDAY)

    plan = forecast.plan
    assert len(plan.intervals) == 96 and plan.answer_within_s == 20.0 and plan.target_service_level == 0.8
    ten = plan.intervals[40]
    assert ten.start == datetime(2026, 11, 30, 10, 0, tzinfo=PARIS)
    assert ten.forecast.arrivals == pytest.approx(50.0)
    assert ten.forecast.aht_s == pytest.approx(120.0)
    assert ten.forecast.patience_s == pytest.approx(20.0 * 50 / 5, rel=0.01)
    assert ten.staffing.segments == ((1, 5), (2, 10)), "a3 serves support, not sales"
    assert ten.agents_required is not None and ten.agents_required > 2
    assert ten.service_level is not None and 0.0 < ten.service_level < 0.8
    assert plan.intervals[41].forecast.arrivals == 0.0 and plan.intervals[41].service_level == 1.0
    assert (forecast.history.calls, forecast.history.until) == (200, cap.clock.now())
    assert forecast.queue.name == "sales"


async def test_a_past_day_is_forecast_from_the_history_before_it(make_capacity: MakeCapacity) -> None:
    cap = await planned_queue(make_capacity)

    forecast = await cap.estimates.forecast("sales", date(2026, 11, 16))

    assert forecast.history.until == datetime(2026, 11, 16, tzinfo=PARIS)
    assert forecast.history.calls == 100
    assert forecast.plan.intervals[40].staffing.mean_agents == 0.0, "no schedules: nobody staffed"
    assert forecast.plan.intervals[40].service_level == 0.0


async def test_a_target_may_be_given_per_request_or_by_setting(make_capacity: MakeCapacity) -> None:
    cap = await planned_queue(make_capacity, settings=EstimateSettings(target_service_level=0.5))

    default = await cap.estimates.forecast("sales", NEXT_MONDAY)
    strict = await cap.estimates.forecast("sales", NEXT_MONDAY, target_service_level=0.95)

    assert default.plan.target_service_level == 0.5
    low, high = default.plan.intervals[40].agents_required, strict.plan.intervals[40].agents_required
    assert low is not None and high is not None and low < high


async def test_a_queue_with_no_history_has_no_forecast_and_says_so(make_capacity: MakeCapacity) -> None:
    cap = await planned_queue(make_capacity)

    with pytest.raises(NoHistoryError, match="queue 'support' has no usable call history in the 8 weeks"):
        await cap.estimates.forecast("support", NEXT_MONDAY)
    with pytest.raises(NoHistoryError):
        await cap.estimates.forecast("sales", date(2026, 10, 1))


async def test_bad_forecast_requests_are_refused_clearly(make_capacity: MakeCapacity) -> None:
    cap = await planned_queue(make_capacity)

    with pytest.raises(NotFoundError, match="queue 'nope' not found"):
        await cap.estimates.forecast("nope", NEXT_MONDAY)
    with pytest.raises(ValidationError, match="within 366 days"):
        await cap.estimates.forecast("sales", date(2028, 1, 1))
    with pytest.raises(ValidationError, match="target_service_level"):
        await cap.estimates.forecast("sales", NEXT_MONDAY, target_service_level=1.5)


async def test_schedules_staffing_more_than_2000_agents_are_refused(make_capacity: MakeCapacity) -> None:
    cap = await planned_queue(make_capacity)
    for i in range(2001):
        await cap.store.agents.add(agent(f"x{i}"))
        await cap.estimates.set_schedule(f"x{i}", [parse_shift("mon 10:00-11:00")], actor="test")

    with pytest.raises(ValidationError, match="2001 agents; the models take at most 2000"):
        await cap.estimates.forecast("sales", NEXT_MONDAY)


# -- schedules ------------------------------------------------------------------------------------------


async def test_a_schedule_is_set_replaced_and_read_back(make_capacity: MakeCapacity) -> None:
    cap = await planned_queue(make_capacity)

    await cap.estimates.set_schedule("a1", [parse_shift("mon 09:00-17:00")], actor="alice")
    cap.clock.advance(60)
    stored = await cap.estimates.set_schedule(
        "a1", [parse_shift("tue 09:00-13:00"), parse_shift("mon 13:00-17:00")], actor="bob"
    )

    assert stored == await cap.estimates.get_schedule("a1")
    assert [str(s) for s in stored.shifts] == ["mon 13:00-17:00", "tue 09:00-13:00"]
    assert (stored.updated_at, stored.updated_by) == (cap.clock.now().astimezone(UTC), "bob")


async def test_a_schedule_change_is_published_for_the_callback_slot_check(
    make_capacity: MakeCapacity,
) -> None:
    """Issue #6: booked slots are checked against staffing when it changes (the event starts that)."""
    cap = await planned_queue(make_capacity)
    published: list[DomainEvent] = []

    async def publish(event: DomainEvent) -> None:
        published.append(event)

    cap.estimates.publish = publish
    await cap.estimates.set_schedule("a1", [parse_shift("mon 09:00-12:00")], actor="alice")
    [event] = published
    assert isinstance(event, AgentScheduleChanged)
    assert (event.agent_id, event.shifts, event.reason) == ("a1", ("mon 09:00-12:00",), "set by alice")


async def test_bad_schedules_are_refused_and_the_old_one_kept(make_capacity: MakeCapacity) -> None:
    cap = await planned_queue(make_capacity)
    await cap.estimates.set_schedule("a1", [parse_shift("mon 09:00-17:00")], actor="test")

    with pytest.raises(ValidationError, match="mon 09:00-17:00 and mon 16:00-18:00 overlap"):
        await cap.estimates.set_schedule(
            "a1", [parse_shift("mon 09:00-17:00"), parse_shift("mon 16:00-18:00")], actor="test"
        )
    with pytest.raises(ValidationError, match="at least one shift"):
        await cap.estimates.set_schedule("a1", [], actor="test")
    with pytest.raises(NotFoundError, match="agent 'nobody' not found"):
        await cap.estimates.set_schedule("nobody", [parse_shift("mon 09:00-17:00")], actor="test")
    with pytest.raises(NotFoundError):
        await cap.estimates.get_schedule("nobody")

    assert [str(s) for s in (await cap.estimates.get_schedule("a1")).shifts] == ["mon 09:00-17:00"]
    assert (await cap.estimates.get_schedule("a2")).shifts == ()
