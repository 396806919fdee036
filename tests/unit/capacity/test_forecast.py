"""The forecast from stored calls (smoothing, cold start, degenerate history) and a day's plan."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from callcenter.capacity.forecast import (
    INTERVAL_S,
    MIN_DURATION_S,
    Basis,
    ForecastSettings,
    IntervalForecast,
    NoHistoryError,
    QueueForecast,
    forecast_queue,
    interval_key,
    model_workload,
    plan_day,
)
from callcenter.capacity.predictors import PatienceEstimate
from callcenter.capacity.schedules import INTERVALS_PER_DAY, Schedule, make_schedule, parse_shift
from callcenter.errors import ValidationError
from callcenter.model.records import CallRecord
from callcenter.model.vocabulary import CallOutcome, EntryPoint

PARIS = ZoneInfo("Europe/Paris")
#: Monday 23 November 2026, 00:00 in Paris.
MONDAY = datetime(2026, 11, 23, tzinfo=PARIS)
WEEK = timedelta(weeks=1)
_serial = iter(range(10**9))


def call(
    at: datetime,
    outcome: CallOutcome = CallOutcome.ANSWERED,
    *,
    wait_s: float | None = 10.0,
    talk_s: float | None = 100.0,
) -> CallRecord:
    number = next(_serial)
    return CallRecord(
        id=f"c{number}",
        channel_id=f"c{number}",
        linkedid=f"c{number}",
        entry_point=EntryPoint.ARI,
        queue="sales",
        arrived_at=at,
        wait_s=wait_s,
        talk_s=talk_s if outcome is CallOutcome.ANSWERED else None,
        outcome=outcome,
    )


def weekly(counts: list[int], *, hour: int = 10, **kwargs: object) -> list[CallRecord]:
    """``counts[i]`` calls on the Monday ``len(counts) - i`` weeks before MONDAY, at ``hour``:00-ish."""
    calls = []
    for age, count in zip(range(len(counts), 0, -1), counts, strict=True):
        start = MONDAY - age * WEEK + timedelta(hours=hour)
        calls += [call(start + timedelta(seconds=10 * i), **kwargs) for i in range(count)]  # type: ignore[arg-type]
    return calls


def forecast(calls: list[CallRecord], *, weeks: int = 4, **settings: float) -> QueueForecast:
    return forecast_queue(
        calls, zone=PARIS, since=MONDAY - weeks * WEEK, until=MONDAY, settings=ForecastSettings(**settings)
    )


MONDAY_10 = (0, 40)


# -- arrivals -----------------------------------------------------------------------------------------


def test_a_steady_weekly_pattern_is_forecast_as_it_is() -> None:
    result = forecast(weekly([12, 12, 12, 12]))

    monday_10 = result.interval(*MONDAY_10)
    assert monday_10.arrivals == pytest.approx(12.0)
    assert (monday_10.basis, monday_10.occurrences) == (Basis.WEEKLY, 4)
    assert result.interval(0, 41).arrivals == 0.0
    assert result.interval(1, 40).arrivals == 0.0
    assert result.calls == 48


@pytest.mark.parametrize(
    ("counts", "alpha"),
    [([10, 10, 10, 40], 0.3), ([40, 10, 10, 10], 0.3), ([0, 0, 0, 20], 0.5), ([5, 15, 5, 15], 0.1)],
)
def test_arrivals_are_exponentially_smoothed_from_their_mean(counts: list[int], alpha: float) -> None:
    level = sum(counts) / len(counts)
    for count in counts:
        level = alpha * count + (1 - alpha) * level

    anchor = call(MONDAY - len(counts) * WEEK + timedelta(minutes=5))  # history starts that day

    result = forecast([*weekly(counts), anchor], smoothing=alpha)

    assert result.interval(*MONDAY_10).arrivals == pytest.approx(level)


def test_weeks_before_the_first_call_are_not_counted_as_silent() -> None:
    result = forecast(weekly([12, 12]), weeks=8)

    assert result.interval(*MONDAY_10).occurrences == 2
    assert result.interval(*MONDAY_10).arrivals == pytest.approx(12.0)
    assert result.since == MONDAY - 2 * WEEK
    assert result.interval(6, 40).occurrences == 2, "the first day counts from its midnight"


def test_recent_weeks_weigh_more_with_a_larger_smoothing() -> None:
    rising = weekly([10, 10, 10, 40])

    slow = forecast(rising, smoothing=0.1).interval(*MONDAY_10).arrivals
    fast = forecast(rising, smoothing=0.7).interval(*MONDAY_10).arrivals

    assert 17.5 < slow < fast < 40


def test_with_less_than_a_week_of_history_other_days_lend_their_time_of_day() -> None:
    """Cold start: two days of history (Saturday and Sunday) forecast a Monday."""
    calls = [
        call(MONDAY - timedelta(days=d) + timedelta(hours=10, seconds=i)) for d in (1, 2) for i in range(6)
    ]

    result = forecast_queue(calls, zone=PARIS, since=MONDAY - timedelta(days=2), until=MONDAY)

    monday_10 = result.interval(*MONDAY_10)
    assert (monday_10.basis, monday_10.occurrences) == (Basis.DAILY, 2)
    assert monday_10.arrivals == pytest.approx(6.0)
    assert result.interval(6, 40).basis is Basis.WEEKLY


def test_with_less_than_a_day_of_history_unseen_times_take_the_overall_rate() -> None:
    start = MONDAY - timedelta(hours=2)
    calls = [call(start + timedelta(minutes=m)) for m in range(0, 120, 5)]

    result = forecast_queue(calls, zone=PARIS, since=start, until=MONDAY)

    assert result.interval(*MONDAY_10).basis is Basis.OVERALL
    assert result.interval(*MONDAY_10).arrivals == pytest.approx(24 / 8)
    assert result.interval(6, 88).basis is Basis.WEEKLY


@pytest.mark.parametrize(
    "outcome", [CallOutcome.AFTER_HOURS, CallOutcome.IVR_HANGUP], ids=["after_hours", "ivr_hangup"]
)
def test_calls_that_never_reached_an_open_queue_are_not_arrivals(outcome: CallOutcome) -> None:
    calls = weekly([5, 5], outcome=outcome) + weekly([3, 3], hour=11)

    result = forecast(calls, weeks=2)

    assert result.interval(*MONDAY_10).arrivals == 0.0
    assert result.interval(0, 44).arrivals == pytest.approx(3.0)


def test_no_call_in_the_window_is_no_history() -> None:
    with pytest.raises(NoHistoryError, match="no call arrived"):
        forecast([])
    with pytest.raises(NoHistoryError, match="no call arrived"):
        forecast(weekly([4], outcome=CallOutcome.AFTER_HOURS))
    with pytest.raises(NoHistoryError, match="no call arrived"):
        forecast([call(MONDAY + timedelta(hours=1))])


def test_a_window_shorter_than_an_interval_is_no_history() -> None:
    with pytest.raises(NoHistoryError, match="no whole 15-minute interval"):
        forecast_queue(
            [call(MONDAY + timedelta(minutes=2))],
            zone=PARIS,
            since=MONDAY + timedelta(minutes=1),
            until=MONDAY + timedelta(minutes=14),
        )


@pytest.mark.parametrize(
    ("since", "until", "message"),
    [
        (MONDAY, MONDAY, "end after it starts"),
        (MONDAY, MONDAY - WEEK, "end after it starts"),
        (MONDAY - timedelta(days=400), MONDAY, "at most 366 days"),
        (datetime(2026, 11, 1), MONDAY, "timezone-aware"),
    ],
)
def test_a_bad_window_is_refused(since: datetime, until: datetime, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        forecast_queue([call(MONDAY - timedelta(days=1))], zone=PARIS, since=since, until=until)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"smoothing": 0.0}, "smoothing"),
        ({"smoothing": 1.0}, "smoothing"),
        ({"smoothing": math.nan}, "smoothing"),
        ({"prior_calls": 0.0}, "prior_calls"),
        ({"prior_calls": math.inf}, "prior_calls"),
        ({"wrap_up_s": -1.0}, "wrap_up_s"),
    ],
)
def test_bad_settings_are_refused(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ForecastSettings(**kwargs)


def test_interval_keys_follow_the_local_clock_through_daylight_saving() -> None:
    summer = datetime(2026, 7, 6, 10, 0, tzinfo=PARIS)

    assert interval_key(summer.astimezone(UTC), PARIS) == (0, 40)
    assert interval_key(MONDAY.astimezone(UTC) + timedelta(hours=10, minutes=14), PARIS) == (0, 40)
    with pytest.raises(ValidationError):
        interval_key(datetime(2026, 7, 6, 10, 0), PARIS)


# -- handle time and patience -----------------------------------------------------------------------


def test_handle_time_is_talk_time_plus_the_queues_wrap_up() -> None:
    calls = weekly([30, 30], talk_s=100.0)

    result = forecast(calls, weeks=2, wrap_up_s=15.0)

    assert result.aht_s == pytest.approx(115.0)
    assert result.interval(*MONDAY_10).aht_s == pytest.approx(115.0)
    assert result.interval(3, 3).aht_s == pytest.approx(115.0), "a quiet interval borrows the queue's"


def test_recent_calls_weigh_more_in_handle_time() -> None:
    calls = weekly([20, 0, 0, 0], talk_s=100.0) + weekly([0, 0, 0, 20], talk_s=200.0)

    result = forecast(calls, smoothing=0.5)

    assert result.aht_s is not None and 180.0 < result.aht_s < 200.0


def test_an_interval_with_few_calls_is_shrunk_toward_the_queue() -> None:
    calls = weekly([40], talk_s=100.0) + weekly([2], hour=15, talk_s=400.0)

    result = forecast(calls, weeks=1, prior_calls=20.0, smoothing=1e-9)

    pooled = result.aht_s
    assert pooled is not None and 100 < pooled < 130
    quiet = result.interval(0, 60).aht_s
    assert quiet == pytest.approx((2 * 400.0 + 20 * pooled) / 22, rel=1e-3)


def test_patience_is_the_censored_maximum_likelihood_mean() -> None:
    answered = weekly([30], wait_s=40.0)
    abandoned = weekly([10], hour=11, outcome=CallOutcome.ABANDONED, wait_s=20.0)

    result = forecast(answered + abandoned, weeks=1, smoothing=1e-9)

    assert result.patience_s == pytest.approx((30 * 40.0 + 10 * 20.0) / 10, rel=1e-3)
    assert result.waited == 40


def test_without_an_abandon_patience_is_infinite_and_without_an_answer_handle_time_unknown() -> None:
    no_abandon = forecast(weekly([10, 10]), weeks=2)
    no_answer = forecast(weekly([10], outcome=CallOutcome.ABANDONED), weeks=1)

    assert math.isinf(no_abandon.patience_s) and math.isinf(no_abandon.interval(*MONDAY_10).patience_s)
    assert no_answer.aht_s is None and no_answer.interval(*MONDAY_10).aht_s is None
    assert no_answer.patience_s == pytest.approx(10.0)


def test_a_degenerate_history_gives_floored_figures_not_nan() -> None:
    """Every abandon at 0 s and every answered call of 0 s talk: no patience observation, AHT floored."""
    calls = weekly([5], outcome=CallOutcome.ABANDONED, wait_s=0.0) + weekly(
        [5], hour=11, talk_s=0.0, wait_s=0.0
    )

    result = forecast(calls, weeks=1)

    assert result.aht_s == MIN_DURATION_S
    assert math.isinf(result.patience_s)
    assert result.waited == 0


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, -5.0, None])
def test_unusable_durations_are_skipped_but_the_call_still_arrived(bad: float | None) -> None:
    calls = weekly([3], talk_s=bad, wait_s=bad) + weekly([3], hour=11, talk_s=60.0, wait_s=30.0)

    result = forecast(calls, weeks=1)

    assert result.interval(*MONDAY_10).arrivals == pytest.approx(3.0)
    assert result.aht_s == pytest.approx(60.0)
    assert result.answered == 3 and result.waited == 3


_DURATIONS = st.one_of(
    st.none(), st.floats(allow_nan=True, allow_infinity=True), st.floats(min_value=0, max_value=1e7)
)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 14 * 24 * 3600 - 1),
            st.sampled_from(list(CallOutcome)),
            _DURATIONS,
            _DURATIONS,
        ),
        min_size=1,
        max_size=40,
    )
)
# Found by this test: a duration near the float maximum, weighted and summed, overflowed to infinity.
@example(rows=[(0, CallOutcome.ANSWERED, 8.773514567410034e306, None)])
@example(rows=[(0, CallOutcome.ANSWERED, None, 8.773514567410034e306)])
def test_any_history_gives_finite_arrivals_and_finite_or_absent_durations(
    rows: list[tuple[int, CallOutcome, float | None, float | None]],
) -> None:
    calls = [
        call(MONDAY - 2 * WEEK + timedelta(seconds=s), outcome, wait_s=wait, talk_s=talk)
        for s, outcome, wait, talk in rows
    ]
    try:
        result = forecast(calls, weeks=2)
    except NoHistoryError:
        assert all(outcome in (CallOutcome.AFTER_HOURS, CallOutcome.IVR_HANGUP) for _, outcome, _, _ in rows)
        return
    for interval in result.intervals:
        assert math.isfinite(interval.arrivals) and interval.arrivals >= 0
        assert interval.aht_s is None or (math.isfinite(interval.aht_s) and interval.aht_s >= MIN_DURATION_S)
        assert interval.patience_s == math.inf or (
            math.isfinite(interval.patience_s) and interval.patience_s >= MIN_DURATION_S
        )


# -- a day's plan -----------------------------------------------------------------------------------


def flat_forecast(
    *, arrivals: float, aht_s: float | None = 180.0, patience_s: float = math.inf
) -> QueueForecast:
    unit = PatienceEstimate() if math.isinf(patience_s) else PatienceEstimate(1.0, patience_s)
    intervals = tuple(
        IntervalForecast(
            weekday=d,
            slot=s,
            arrivals=arrivals,
            basis=Basis.WEEKLY,
            occurrences=4,
            aht_s=aht_s,
            patience_unit=unit,
        )
        for d in range(7)
        for s in range(INTERVALS_PER_DAY)
    )
    return QueueForecast(
        since=MONDAY - 4 * WEEK,
        until=MONDAY,
        calls=1,
        answered=1,
        waited=0,
        aht_s=aht_s,
        patience_s=patience_s,
        intervals=intervals,
    )


def team(size: int, shift: str = "mon 09:00-17:00") -> list[Schedule]:
    return [make_schedule(f"a{i}", [parse_shift(shift)]) for i in range(size)]


@pytest.mark.parametrize(("agents", "service_level"), [(14, 0.888), (13, 0.796)])
def test_the_known_staffing_example_100_calls_per_half_hour_of_3_minutes(
    agents: int, service_level: float
) -> None:
    """Issue 5: 100 calls per 30 min, 180 s handle time, 80 % within 20 s: 14 agents."""
    plan = plan_day(
        flat_forecast(arrivals=50.0),
        team(agents),
        day=MONDAY.date(),
        zone=PARIS,
        answer_within_s=20.0,
        target_service_level=0.8,
    )

    nine = plan.intervals[36]
    assert nine.start == datetime(2026, 11, 23, 9, 0, tzinfo=PARIS)
    assert nine.end - nine.start == timedelta(seconds=INTERVAL_S)
    assert nine.agents_required == 14
    assert nine.staffing.mean_agents == agents
    assert nine.service_level == pytest.approx(service_level, abs=0.001)
    assert plan.intervals[35].service_level == 0.0, "nobody staffed before nine"


def test_a_partly_staffed_interval_weighs_each_staffing_by_its_minutes() -> None:
    forecast = flat_forecast(arrivals=50.0, patience_s=300.0)
    full = plan_day(
        forecast, team(14), day=MONDAY.date(), zone=PARIS, answer_within_s=20, target_service_level=0.8
    )
    part = plan_day(
        forecast,
        team(13) + team(1, "mon 09:05-17:00")[:1],
        day=MONDAY.date(),
        zone=PARIS,
        answer_within_s=20,
        target_service_level=0.8,
    )
    thirteen = plan_day(
        forecast, team(13), day=MONDAY.date(), zone=PARIS, answer_within_s=20, target_service_level=0.8
    )

    level = part.intervals[36].service_level
    expected = (5 * thirteen.intervals[36].service_level + 10 * full.intervals[36].service_level) / 15  # type: ignore[operator]
    assert level == pytest.approx(expected)
    assert part.intervals[36].staffing.segments == ((13, 5), (14, 10))


def test_a_quiet_interval_needs_nobody_and_meets_any_target() -> None:
    plan = plan_day(
        flat_forecast(arrivals=0.0),
        [],
        day=MONDAY.date(),
        zone=PARIS,
        answer_within_s=20,
        target_service_level=0.9,
    )

    assert {(i.agents_required, i.service_level) for i in plan.intervals} == {(0, 1.0)}


def test_without_a_handle_time_the_plan_says_why_instead_of_guessing() -> None:
    plan = plan_day(
        flat_forecast(arrivals=5.0, aht_s=None),
        team(3),
        day=MONDAY.date(),
        zone=PARIS,
        answer_within_s=20,
        target_service_level=0.8,
    )

    nine = plan.intervals[36]
    assert (nine.agents_required, nine.service_level) == (None, None)
    assert "handle time unknown" in nine.note


def test_a_load_beyond_2000_agents_is_noted_not_crashed() -> None:
    plan = plan_day(
        flat_forecast(arrivals=20_000.0),
        team(1),
        day=MONDAY.date(),
        zone=PARIS,
        answer_within_s=20,
        target_service_level=0.8,
    )

    nine = plan.intervals[36]
    assert nine.agents_required is None and "more than 2000 agents" in nine.note
    assert nine.service_level is not None and 0.0 <= nine.service_level < 0.01


def test_schedules_staffing_more_than_2000_agents_are_refused_clearly() -> None:
    with pytest.raises(ValidationError, match="2001 agents; the models take at most 2000"):
        plan_day(
            flat_forecast(arrivals=5.0),
            team(2001),
            day=MONDAY.date(),
            zone=PARIS,
            answer_within_s=20,
            target_service_level=0.8,
        )


@pytest.mark.parametrize(
    ("day", "count"), [(date(2026, 3, 29), 92), (date(2026, 10, 25), 100), (date(2026, 11, 23), 96)]
)
def test_a_day_has_as_many_intervals_as_its_local_clock(day: date, count: int) -> None:
    plan = plan_day(
        flat_forecast(arrivals=1.0), [], day=day, zone=PARIS, answer_within_s=20, target_service_level=0.8
    )

    assert len(plan.intervals) == count
    assert plan.intervals[0].start == datetime.combine(day, datetime.min.time(), PARIS)
    assert plan.intervals[-1].end == datetime.combine(day + timedelta(days=1), datetime.min.time(), PARIS)


@pytest.mark.parametrize(
    ("target", "within"), [(0.0, 20.0), (1.0, 20.0), (math.nan, 20.0), (0.8, -1.0), (0.8, math.inf)]
)
def test_bad_targets_are_refused(target: float, within: float) -> None:
    with pytest.raises(ValidationError):
        plan_day(
            flat_forecast(arrivals=1.0),
            [],
            day=MONDAY.date(),
            zone=PARIS,
            answer_within_s=within,
            target_service_level=target,
        )


def test_a_patience_too_long_to_matter_is_modelled_as_none() -> None:
    assert math.isinf(model_workload(0.1, 180.0, 1e9).patience_s)
    assert model_workload(0.1, 180.0, 300.0).patience_s == 300.0
