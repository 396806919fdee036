"""The dispatcher's pure rules: attempt ids and channels, retries with back-off, quiet hours of the
customer's zone (the most restrictive of a number's zones), dial order, expiry and late promises."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, time, timedelta

import pytest

from callcenter.callbacks.attempts import (
    Leg,
    agent_channel_id,
    attempt_id,
    customer_channel_id,
    end_attempt,
    leg_of,
    retry_delay,
    start_attempt,
)
from callcenter.callbacks.dispatch import (
    DispatchSettings,
    callbacks_ahead,
    dial_order,
    expected_dial_at,
    is_expired,
    is_late,
    number_zones,
    place_in_line,
    quiet_until,
)
from callcenter.callbacks.lifecycle import move, new_callback
from callcenter.callbacks.promise import keep_place_window, slot_window
from callcenter.errors import ConflictError, ValidationError
from callcenter.model.callbacks import Actor, Callback
from callcenter.model.vocabulary import ActorKind, AttemptResult, CallbackKind, CallbackState

T0 = datetime(2026, 11, 23, 18, 0, tzinfo=UTC)  # 10:00 in San Francisco, 19:00 in Paris
SYSTEM = Actor(ActorKind.SYSTEM, "dispatcher")
S = CallbackState


def _scheduled(
    callback_id: str = "cb-1", *, due: datetime = T0, enqueued: datetime | None = None
) -> Callback:
    callback, _ = new_callback(
        callback_id=callback_id,
        queue="sales",
        number="+14155550100",
        kind=CallbackKind.KEEP_PLACE,
        window=keep_place_window(T0 - timedelta(minutes=5), T0 + timedelta(minutes=10)),
        at=T0 - timedelta(minutes=5),
        actor=SYSTEM,
        enqueued_at=enqueued or T0 - timedelta(minutes=6),
    )
    return move(callback, S.SCHEDULED, at=due, actor=SYSTEM, due_at=due)[0]


def test_channel_ids_are_derived_from_the_attempt_and_read_back() -> None:
    attempt = attempt_id("cb-1", 2)
    assert attempt == "cb-1.a2"
    assert leg_of(agent_channel_id(attempt, 3)) == (Leg.AGENT, attempt)
    assert leg_of(customer_channel_id(attempt)) == (Leg.CUSTOMER, attempt)
    for foreign in ("1700000000.42", "cbag-x-", "cbcu-", "cbag--cb-1.a1"):
        assert leg_of(foreign) is None


def test_an_attempt_moves_to_dialing_and_ends_in_retry_failed_or_connected() -> None:
    callback = _scheduled()
    dialing, change, attempt = start_attempt(callback, at=T0, fence=4, actor=SYSTEM)
    assert (dialing.state, dialing.attempts, dialing.first_dial_at) == (S.DIALING, 1, T0)
    assert (attempt.id, attempt.seq, attempt.fence, change.actor) == ("cb-1.a1", 1, 4, SYSTEM)
    retry = T0 + timedelta(minutes=5)
    waiting, change, ended = end_attempt(
        dialing, attempt, AttemptResult.MACHINE, at=T0, actor=SYSTEM, cause="no key", retry_at=retry
    )
    assert (waiting.state, waiting.due_at, ended.result, change.result) == (
        S.RETRY_WAIT,
        retry,
        AttemptResult.MACHINE,
        AttemptResult.MACHINE,
    )
    failed, _, _ = end_attempt(
        dialing, attempt, AttemptResult.NO_ANSWER, at=T0, actor=SYSTEM, cause="no answer", retry_at=None
    )
    assert failed.state is S.FAILED
    connected, _, ended = end_attempt(
        dialing, attempt, AttemptResult.CONNECTED, at=T0, actor=SYSTEM, cause="pressed 1", retry_at=None
    )
    assert connected.state is S.CONNECTED and ended.answered_at == T0
    with pytest.raises(ValidationError):
        end_attempt(dialing, ended, AttemptResult.BUSY, at=T0, actor=SYSTEM, cause="", retry_at=None)
    with pytest.raises(ConflictError):
        start_attempt(dialing, at=T0, fence=4, actor=SYSTEM)


@pytest.mark.parametrize(("dials", "seconds"), [(1, 60), (2, 120), (3, 240), (6, 600)])
def test_retries_back_off_up_to_a_ceiling(dials: int, seconds: float) -> None:
    assert retry_delay(dials, first_s=60, factor=2, max_s=600) == timedelta(seconds=seconds)


SETTINGS = DispatchSettings(dial_from=time(8), dial_until=time(21))


@pytest.mark.parametrize(
    ("number", "now", "expected"),
    [
        ("+14155550100", T0, T0),  # 10:00 in California: now
        ("+33612345678", T0 + timedelta(hours=2), datetime(2026, 11, 24, 7, 0, tzinfo=UTC)),  # 21:00 Paris
        (
            "+14155550100",
            datetime(2026, 11, 23, 15, 2, tzinfo=UTC),
            datetime(2026, 11, 23, 16, 0, tzinfo=UTC),
        ),
    ],
)
def test_quiet_hours_follow_the_customers_zone(number: str, now: datetime, expected: datetime) -> None:
    assert quiet_until(number, now, SETTINGS) == expected


def test_a_number_spanning_zones_is_dialled_only_when_every_zone_allows() -> None:
    # Australian mobiles span the Cocos Islands (UTC+6:30) to Lord Howe (UTC+11 in November).
    assert {"Indian/Cocos", "Australia/Lord_Howe"} <= set(number_zones("+61412345678"))
    at = datetime(2026, 11, 23, 21, 0, tzinfo=UTC)  # 08:00 Lord Howe, 03:30 Cocos
    # 08:00 on the Cocos Islands, the last of the zones to wake.
    assert quiet_until("+61412345678", at, SETTINGS) == datetime(2026, 11, 24, 1, 30, tzinfo=UTC)


def test_an_unknown_zone_uses_the_queues_zone() -> None:
    assert number_zones("+15555550100") == ()
    night_in_paris = datetime(2026, 11, 23, 23, 0, tzinfo=UTC)
    assert quiet_until("+15555550100", night_in_paris, SETTINGS, fallback_zone="UTC") is not None
    assert quiet_until("+15555550100", T0, SETTINGS, fallback_zone="Europe/Paris") == T0


def test_dial_order_puts_kept_places_in_line_order_whenever_released() -> None:
    """Issue #6/#7: a kept place released later but queued earlier is dialled first."""
    later_place = _scheduled("cb-late", enqueued=T0 - timedelta(minutes=2))
    earlier_place = _scheduled("cb-early", enqueued=T0 - timedelta(minutes=9))
    not_due = _scheduled("cb-future", due=T0 + timedelta(minutes=1))
    released_first = _scheduled("cb-first", due=T0 - timedelta(minutes=1), enqueued=T0 - timedelta(minutes=1))
    order = dial_order([later_place, not_due, earlier_place, released_first], T0)
    assert [c.id for c in order] == ["cb-early", "cb-late", "cb-first"]


def test_dial_order_puts_a_slot_at_its_start_among_kept_places() -> None:
    kept_before = _scheduled("cb-kept-before", enqueued=T0 - timedelta(minutes=9))
    kept_after = _scheduled("cb-kept-after", enqueued=T0 - timedelta(minutes=1))
    slot, _ = new_callback(
        callback_id="cb-slot",
        queue="sales",
        number="+14155550101",
        kind=CallbackKind.SCHEDULED,
        window=slot_window(T0 - timedelta(minutes=5), T0 + timedelta(minutes=10)),
        at=T0 - timedelta(hours=2),
        actor=SYSTEM,
    )
    slot, _ = move(
        slot, S.SCHEDULED, at=T0 - timedelta(hours=2), actor=SYSTEM, due_at=T0 - timedelta(minutes=5)
    )
    order = dial_order([kept_after, slot, kept_before], T0)
    assert [c.id for c in order] == ["cb-kept-before", "cb-slot", "cb-kept-after"]


def test_dial_order_ties_on_the_same_enqueue_time_go_by_call_id() -> None:
    """Two kept places queued in the same instant keep the order of their calls' ids."""
    at = T0 - timedelta(minutes=3)
    b = dataclasses.replace(_scheduled("cb-1", enqueued=at), call_id="1700000000.20")
    a = dataclasses.replace(_scheduled("cb-2", enqueued=at), call_id="1700000000.10")
    assert [c.id for c in dial_order([b, a], T0)] == ["cb-2", "cb-1"]


def test_a_late_callback_waits_behind_the_due_callbacks_of_its_queue_dialled_before_it() -> None:
    """Its place for the expected dial time of a late-promise alert (issue #7)."""
    first = _scheduled("cb-a", enqueued=T0 - timedelta(minutes=9))
    second = _scheduled("cb-b", enqueued=T0 - timedelta(minutes=6))
    third = _scheduled("cb-c", enqueued=T0 - timedelta(minutes=2))
    elsewhere = dataclasses.replace(_scheduled("cb-x", enqueued=T0 - timedelta(minutes=20)), queue="support")
    due = [third, elsewhere, first, second]
    assert [callbacks_ahead(c, due, T0) for c in (first, second, third)] == [0, 1, 2]
    # A kept place not released yet stands at its caller's enqueue time too.
    waiting, _ = new_callback(
        callback_id="cb-w",
        queue="sales",
        number="+14155550102",
        kind=CallbackKind.KEEP_PLACE,
        window=keep_place_window(T0 - timedelta(minutes=4), T0 + timedelta(minutes=1)),
        at=T0 - timedelta(minutes=4),
        actor=SYSTEM,
        enqueued_at=T0 - timedelta(minutes=5),
    )
    assert place_in_line(waiting) == T0 - timedelta(minutes=5)
    assert callbacks_ahead(waiting, due, T0) == 2
    retry = dataclasses.replace(first, state=S.RETRY_WAIT, due_at=T0 - timedelta(minutes=1))
    assert place_in_line(retry) == T0 - timedelta(minutes=1), "a retry is due at its retry time"
    assert callbacks_ahead(retry, [retry, second, third], T0) == 2


@pytest.mark.parametrize(
    ("by", "opens_at", "expected"),
    [
        (T0 + timedelta(minutes=7), T0, T0 + timedelta(minutes=7)),  # 10:07 in California: as predicted
        (T0 + timedelta(minutes=7), T0 + timedelta(hours=1), T0 + timedelta(hours=1)),  # when the queue opens
        # 21:10 in California is the customer's quiet time: 08:00 the next morning.
        (datetime(2026, 11, 24, 5, 10, tzinfo=UTC), T0, datetime(2026, 11, 24, 16, 0, tzinfo=UTC)),
        (T0, None, T0),
    ],
)
def test_the_expected_dial_time_respects_opening_and_quiet_hours(
    by: datetime, opens_at: datetime | None, expected: datetime
) -> None:
    assert expected_dial_at(by, "+14155550100", SETTINGS, opens_at=opens_at) == expected


def test_expiry_and_late_promises() -> None:
    callback = _scheduled()
    assert not is_expired(callback, T0, SETTINGS)
    assert is_expired(callback, callback.requested_at + timedelta(days=2), SETTINGS)
    assert not is_late(callback, T0, SETTINGS)
    assert is_late(callback, callback.window.end - timedelta(seconds=60), SETTINGS)
    dialled = start_attempt(callback, at=T0, fence=1, actor=SYSTEM)[0]
    assert not is_late(dialled, callback.window.end, SETTINGS)
    assert not is_expired(dialled, T0 + timedelta(days=9), SETTINGS), "a dial under way is never expired"
    slot = slot_window(T0, T0 + timedelta(minutes=30))
    assert slot.end > T0


def test_settings_refuse_nonsense() -> None:
    with pytest.raises(ValidationError):
        DispatchSettings(dial_from=time(21), dial_until=time(8))
    with pytest.raises(ValidationError):
        DispatchSettings(max_attempts=0)
    with pytest.raises(ValidationError):
        DispatchSettings(retry_factor=0.5)
