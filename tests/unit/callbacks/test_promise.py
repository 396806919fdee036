"""Promise windows: an honest "by" time, early calls kept only for kept places, and the kept rate."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcenter.callbacks.lifecycle import move, new_callback
from callcenter.callbacks.promise import (
    PromiseOutcome,
    announced_by,
    cancelled_by_customer,
    keep_place_window,
    kept_rate,
    promise_outcome,
    slot_window,
)
from callcenter.errors import ValidationError
from callcenter.model.callbacks import Actor, Callback, PromiseWindow
from callcenter.model.vocabulary import ActorKind, CallbackKind, CallbackState

T0 = datetime(2026, 11, 23, 14, 2, 10, tzinfo=UTC)
SYSTEM = Actor(ActorKind.SYSTEM, "dispatcher")
CUSTOMER = Actor(ActorKind.CUSTOMER, "ivr")
SUPERVISOR = Actor(ActorKind.SUPERVISOR, "alice")


@pytest.mark.parametrize(
    ("wait_s", "expected"),
    [
        (0.0, datetime(2026, 11, 23, 14, 5, tzinfo=UTC)),
        (170.0, datetime(2026, 11, 23, 14, 5, tzinfo=UTC)),
        (171.0, datetime(2026, 11, 23, 14, 10, tzinfo=UTC)),
        (3600.0, datetime(2026, 11, 23, 15, 5, tzinfo=UTC)),
    ],
)
def test_by_time_is_rounded_up_to_five_minutes(wait_s: float, expected: datetime) -> None:
    assert announced_by(T0, wait_s) == expected


def test_by_time_rounds_on_the_local_clock_of_a_half_hour_zone() -> None:
    now = datetime(2026, 11, 23, 19, 31, tzinfo=ZoneInfo("Asia/Kolkata"))
    by = announced_by(now, 60.0).astimezone(ZoneInfo("Asia/Kolkata"))
    assert (by.hour, by.minute, by.second) == (19, 35, 0)


@given(st.floats(0, 86400), st.integers(0, 10**6))
def test_by_time_is_never_earlier_than_the_wait_and_at_most_one_step_later(
    wait_s: float, offset_s: int
) -> None:
    now = T0 + timedelta(seconds=offset_s)
    by = announced_by(now, wait_s)
    target = now + timedelta(seconds=wait_s)
    assert target <= by < target + timedelta(minutes=5)
    assert by.timestamp() % 300 == 0


@pytest.mark.parametrize("wait_s", [-1.0, float("inf"), float("nan")])
def test_a_wait_that_is_no_duration_is_refused(wait_s: float) -> None:
    with pytest.raises(ValidationError):
        announced_by(T0, wait_s)


def test_keep_place_window_keeps_early_calls_and_ends_after_the_grace() -> None:
    window = keep_place_window(T0, T0 + timedelta(minutes=10))
    assert window.keeps(T0 - timedelta(minutes=1))
    assert window.keeps(T0 + timedelta(minutes=11, seconds=59))
    assert not window.keeps(T0 + timedelta(minutes=12))


def test_slot_window_is_kept_only_inside_the_slot() -> None:
    window = slot_window(T0, T0 + timedelta(minutes=15))
    assert not window.keeps(T0 - timedelta(seconds=1))
    assert window.keeps(T0)
    assert not window.keeps(T0 + timedelta(minutes=15))


def test_naive_or_empty_windows_are_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        PromiseWindow(start=T0.replace(tzinfo=None), end=T0)
    with pytest.raises(ValueError, match="ends after"):
        PromiseWindow(start=T0, end=T0)


def _slot_callback() -> Callback:
    callback, _ = new_callback(
        callback_id="cb-1",
        queue="sales",
        number="+14155550100",
        kind=CallbackKind.SCHEDULED,
        window=slot_window(T0, T0 + timedelta(minutes=15)),
        at=T0 - timedelta(hours=1),
        actor=CUSTOMER,
    )
    callback, _ = move(
        callback, CallbackState.SCHEDULED, at=T0 - timedelta(hours=1), actor=CUSTOMER, due_at=T0
    )
    return callback


def test_promise_is_pending_until_the_window_passes_then_kept_or_broken() -> None:
    callback = _slot_callback()
    dialled, _ = move(callback, CallbackState.DIALING, at=T0 + timedelta(minutes=3), actor=SYSTEM)
    assert promise_outcome(dialled, T0 + timedelta(minutes=5)) is PromiseOutcome.PENDING
    assert promise_outcome(dialled, T0 + timedelta(minutes=15)) is PromiseOutcome.KEPT
    late, _ = move(callback, CallbackState.DIALING, at=T0 + timedelta(minutes=16), actor=SYSTEM)
    assert promise_outcome(late, T0 + timedelta(minutes=20)) is PromiseOutcome.BROKEN
    never = callback
    assert promise_outcome(never, T0 + timedelta(minutes=20)) is PromiseOutcome.BROKEN


def test_customer_cancellations_and_inbound_completions_are_not_counted_but_others_are() -> None:
    callback = _slot_callback()
    by_customer, change = move(
        callback, CallbackState.CANCELLED, at=T0 - timedelta(minutes=30), actor=CUSTOMER
    )
    assert cancelled_by_customer([change])
    assert promise_outcome(by_customer, T0 + timedelta(hours=1), by_customer=True) is PromiseOutcome.EXCLUDED
    by_supervisor, change = move(callback, CallbackState.CANCELLED, at=T0, actor=SUPERVISOR)
    assert not cancelled_by_customer([change])
    assert promise_outcome(by_supervisor, T0 + timedelta(hours=1)) is PromiseOutcome.BROKEN
    inbound, _ = move(callback, CallbackState.COMPLETED_INBOUND, at=T0, actor=SYSTEM)
    assert promise_outcome(inbound, T0 + timedelta(hours=1)) is PromiseOutcome.EXCLUDED


def test_kept_rate_counts_only_decided_promises() -> None:
    figures = kept_rate(
        [
            PromiseOutcome.KEPT,
            PromiseOutcome.KEPT,
            PromiseOutcome.BROKEN,
            PromiseOutcome.PENDING,
            PromiseOutcome.EXCLUDED,
        ]
    )
    assert (figures.counted, figures.kept) == (3, 2)
    assert figures.rate == pytest.approx(2 / 3)
    assert kept_rate([]).rate is None
