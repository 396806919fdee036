"""Keep-my-place due policy, the offer rule and the closing-time sweep."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcenter.callbacks.lifecycle import move, new_callback
from callcenter.callbacks.policy import (
    AgentNow,
    LiveCaller,
    NoOfferReason,
    OfferSettings,
    WaitFigures,
    closing_sweep,
    due_callbacks,
    offer_decision,
    place_in_line,
    predicted_free_agents,
)
from callcenter.callbacks.promise import keep_place_window
from callcenter.errors import ValidationError
from callcenter.model.callbacks import Actor, Callback
from callcenter.model.vocabulary import ActorKind, AgentState, CallbackKind, CallbackState

T0 = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
CALLER = Actor(ActorKind.CUSTOMER, "ivr")


def _kept_place(callback_id: str, enqueued_s: int) -> Callback:
    callback, _ = new_callback(
        callback_id=callback_id,
        queue="sales",
        number="+1415555" + f"{enqueued_s:04d}"[-4:],
        kind=CallbackKind.KEEP_PLACE,
        window=keep_place_window(T0, T0 + timedelta(minutes=30)),
        at=T0,
        actor=CALLER,
        enqueued_at=T0 + timedelta(seconds=enqueued_s),
    )
    return callback


def _live(call_id: str, enqueued_s: int, *, offered: bool = False) -> LiveCaller:
    return LiveCaller(call_id=call_id, enqueued_at=T0 + timedelta(seconds=enqueued_s), offered=offered)


def test_callback_behind_a_live_caller_waits_for_a_second_free_agent() -> None:
    live = [_live("early", 10), _live("late", 30)]
    callbacks = [_kept_place("cb", 20)]
    assert due_callbacks(live, callbacks, free=1).due == ()
    assert due_callbacks(live, callbacks, free=1).live == ("early",)
    decision = due_callbacks(live, callbacks, free=2)
    assert (decision.due, decision.live) == (("cb",), ("early",))


def test_callback_ahead_of_later_callers_is_due_with_the_first_free_agent() -> None:
    live = [_live("later", 50), _live("latest", 60)]
    decision = due_callbacks(live, [_kept_place("cb", 20)], free=1)
    assert (decision.due, decision.live) == (("cb",), ())


def test_callers_already_ringing_an_agent_are_not_in_line() -> None:
    live = [_live("ringing", 5, offered=True)]
    assert due_callbacks(live, [_kept_place("cb", 20)], free=1).due == ("cb",)


def test_no_free_agent_means_nothing_is_due() -> None:
    assert due_callbacks([], [_kept_place("cb", 0)], free=0).due == ()


def test_only_kept_places_still_in_line_take_part() -> None:
    scheduled, _ = move(_kept_place("done", 0), CallbackState.SCHEDULED, at=T0, actor=CALLER)
    decision = due_callbacks([], [scheduled, _kept_place("next", 5)], free=1)
    assert decision.due == ("next",)


@given(
    st.lists(st.integers(0, 3600), max_size=15),
    st.lists(st.integers(0, 3600), max_size=8),
    st.integers(0, 10),
)
def test_due_is_exactly_the_head_of_the_joint_line(
    live_s: list[int], callback_s: list[int], free: int
) -> None:
    """The served entries are a prefix of the line by enqueue time: nobody jumps, nobody starves."""
    live = [_live(f"call-{i}", s) for i, s in enumerate(live_s)]
    callbacks = [_kept_place(f"cb-{i}", s) for i, s in enumerate(callback_s)]
    decision = due_callbacks(live, callbacks, free=free)
    served = set(decision.due) | set(decision.live)
    keys = {c.call_id: (c.enqueued_at, c.call_id) for c in live} | {c.id: c.order_key for c in callbacks}
    assert len(served) == min(free, len(keys))
    if served:
        last_served = max(keys[name] for name in served)
        assert all(keys[name] > last_served for name in set(keys) - served)
    for callback in callbacks:
        place = place_in_line(live, callbacks, callback.order_key)
        assert (callback.id in decision.due) == (place <= free)


def test_predicted_free_counts_available_agents_and_wrap_ups_ending_soon_less_reserved() -> None:
    agents = [
        AgentNow(state=AgentState.AVAILABLE, since=T0),
        AgentNow(state=AgentState.WRAP_UP, since=T0 - timedelta(seconds=25)),  # ends in 5 s
        AgentNow(state=AgentState.WRAP_UP, since=T0),  # ends in 30 s
        AgentNow(state=AgentState.BUSY, since=T0),
        AgentNow(state=AgentState.PAUSED, since=T0),
    ]
    assert predicted_free_agents(agents, now=T0, wrap_up_s=30.0, lead_s=10.0) == 2
    assert predicted_free_agents(agents, now=T0, wrap_up_s=30.0, lead_s=10.0, reserved=1) == 1
    assert predicted_free_agents(agents, now=T0, wrap_up_s=30.0, lead_s=10.0, reserved=5) == 0


SETTINGS = OfferSettings(wait_threshold_s=120.0)


def _wait(p80_s: float, p90_s: float | None = None, position: int = 5, staffed: int = 2) -> WaitFigures:
    return WaitFigures(
        p80_s=p80_s, p90_s=p90_s if p90_s is not None else p80_s * 1.2, position=position, staffed=staffed
    )


def test_short_wait_gets_no_offer() -> None:
    decision = offer_decision(_wait(60.0), now=T0, closes_at=None, slot_available=True, settings=SETTINGS)
    assert (decision.offer, decision.reason) == (False, NoOfferReason.BELOW_THRESHOLD)


def test_long_wait_gets_both_choices_and_a_by_time_from_the_90th_percentile() -> None:
    decision = offer_decision(
        _wait(600.0, 800.0), now=T0, closes_at=None, slot_available=True, settings=SETTINGS
    )
    assert decision.offer and decision.keep_place and decision.later
    assert decision.by == datetime(2026, 11, 23, 14, 15, tzinfo=UTC)


def test_no_estimate_gets_no_offer_never_a_wrong_promise() -> None:
    decision = offer_decision(None, now=T0, closes_at=None, slot_available=True, settings=SETTINGS)
    assert (decision.offer, decision.reason) == (False, NoOfferReason.NO_ESTIMATE)


def test_keep_place_is_not_offered_when_it_would_be_due_after_closing() -> None:
    closes = T0 + timedelta(minutes=10)
    decision = offer_decision(
        _wait(600.0, 800.0), now=T0, closes_at=closes, slot_available=True, settings=SETTINGS
    )
    assert decision.offer and not decision.keep_place and decision.later and decision.by is None
    neither = offer_decision(
        _wait(600.0, 800.0), now=T0, closes_at=closes, slot_available=False, settings=SETTINGS
    )
    assert (neither.offer, neither.reason) == (False, NoOfferReason.CANNOT_KEEP)


@pytest.mark.parametrize(
    ("settings", "wait", "offered"),
    [
        (OfferSettings(wait_threshold_s=None, position_threshold=4), _wait(10.0, position=4), True),
        (OfferSettings(wait_threshold_s=None, position_threshold=4), _wait(10.0, position=3), False),
        (OfferSettings(wait_threshold_s=None, calls_per_agent=3.0), _wait(10.0, position=6, staffed=2), True),
        (
            OfferSettings(wait_threshold_s=None, calls_per_agent=3.0),
            _wait(10.0, position=5, staffed=2),
            False,
        ),
        (OfferSettings(keep_place=False, later=False), _wait(900.0), False),
    ],
)
def test_each_threshold_triggers_the_offer(settings: OfferSettings, wait: WaitFigures, offered: bool) -> None:
    decision = offer_decision(wait, now=T0, closes_at=None, slot_available=True, settings=settings)
    assert decision.offer is offered


def test_bad_offer_settings_are_refused() -> None:
    with pytest.raises(ValidationError):
        OfferSettings(by_quantile=0.5)
    with pytest.raises(ValidationError):
        OfferSettings(position_threshold=0)


def test_closing_sweep_offers_callers_whose_wait_runs_past_closing() -> None:
    closes = T0 + timedelta(minutes=10)
    waits = [("short", 60.0), ("long", 500.0), ("unknown", float("inf"))]
    assert closing_sweep(waits, now=T0, closes_at=closes, lead_s=120.0) == ("long",)
    assert closing_sweep(waits, now=closes - timedelta(seconds=100), closes_at=closes, lead_s=120.0) == (
        "short",
        "long",
        "unknown",
    )
    assert closing_sweep(waits, now=T0, closes_at=None) == ()


def test_closing_time_is_the_first_closed_minute_of_the_day() -> None:
    from callcenter.callbacks.policy import closing_time
    from callcenter.queue.hours import ALWAYS_OPEN, business_hours

    hours = business_hours({"mon": ["09:00-12:30", "13:30-17:00"]}, (), "UTC")
    assert closing_time(hours, T0) == datetime(2026, 11, 23, 17, 0, tzinfo=UTC)
    assert closing_time(hours, T0.replace(hour=10, minute=7, second=30)) == datetime(
        2026, 11, 23, 12, 30, tzinfo=UTC
    )
    assert closing_time(hours, T0.replace(hour=12, minute=45)) is None
    assert closing_time(ALWAYS_OPEN, T0) is None


def test_closing_time_is_the_same_for_every_caller_of_a_minute_and_sees_holidays() -> None:
    from callcenter.callbacks.policy import closing_time
    from callcenter.queue.hours import business_hours

    hours = business_hours({"mon": ["09:00-17:00"]}, (), "UTC")
    callers = [T0.replace(hour=16, minute=58, second=s, microsecond=s * 1000) for s in (0, 17, 59)]
    assert {closing_time(hours, at) for at in callers} == {datetime(2026, 11, 23, 17, 0, tzinfo=UTC)}
    # Open every hour of the week but a holiday: it closes at the holiday's midnight, if in the horizon.
    holiday = business_hours(None, (date(2026, 11, 24),), "UTC")
    assert closing_time(holiday, T0.replace(hour=20)) == datetime(2026, 11, 24, 0, 0, tzinfo=UTC)
    assert closing_time(holiday, T0.replace(hour=20), horizon_s=3600) is None
