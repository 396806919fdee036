"""The callback state machine: allowed changes only, each recorded with who or what caused it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcenter.callbacks.lifecycle import TRANSITIONS, can_move, move, new_callback
from callcenter.callbacks.promise import keep_place_window, slot_window
from callcenter.errors import ConflictError, ValidationError
from callcenter.model.callbacks import Actor, Callback
from callcenter.model.vocabulary import ActorKind, AttemptResult, CallbackKind, CallbackState

T0 = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
S = CallbackState
CALLER = Actor(ActorKind.CUSTOMER, "ivr")
SYSTEM = Actor(ActorKind.SYSTEM, "dispatcher")


def _keep_place() -> Callback:
    callback, _ = new_callback(
        callback_id="cb-1",
        queue="sales",
        number="+14155550100",
        kind=CallbackKind.KEEP_PLACE,
        window=keep_place_window(T0, T0 + timedelta(minutes=15)),
        at=T0,
        actor=CALLER,
        call_id="call-1",
        enqueued_at=T0 - timedelta(minutes=3),
    )
    return callback


def test_new_callback_is_requested_and_its_first_change_names_the_caller() -> None:
    callback, change = new_callback(
        callback_id="cb-1",
        queue="sales",
        number="+14155550100",
        kind=CallbackKind.SCHEDULED,
        window=slot_window(T0 + timedelta(hours=1), T0 + timedelta(hours=1, minutes=15)),
        at=T0,
        actor=CALLER,
        reason="chose a later time",
    )
    assert callback.state is S.REQUESTED
    assert (change.previous, change.state, change.actor, change.reason) == (
        None,
        S.REQUESTED,
        CALLER,
        "chose a later time",
    )


def test_keep_place_callback_needs_its_original_enqueue_time() -> None:
    with pytest.raises(ValidationError, match="enqueue time"):
        new_callback(
            callback_id="cb-1",
            queue="sales",
            number="+14155550100",
            kind=CallbackKind.KEEP_PLACE,
            window=keep_place_window(T0, T0 + timedelta(minutes=10)),
            at=T0,
            actor=CALLER,
        )


def test_a_slot_window_that_accepts_early_calls_is_refused() -> None:
    with pytest.raises(ValidationError, match="early"):
        new_callback(
            callback_id="cb-1",
            queue="sales",
            number="+14155550100",
            kind=CallbackKind.SCHEDULED,
            window=keep_place_window(T0, T0 + timedelta(minutes=10)),
            at=T0,
            actor=CALLER,
        )


def test_happy_path_records_every_change_and_stamps_the_first_dial() -> None:
    callback = _keep_place()
    log = []
    for state, at in (
        (S.SCHEDULED, T0 + timedelta(minutes=5)),
        (S.DIALING, T0 + timedelta(minutes=6)),
        (S.CONNECTED, T0 + timedelta(minutes=7)),
        (S.COMPLETED, T0 + timedelta(minutes=12)),
    ):
        callback, change = move(callback, state, at=at, actor=SYSTEM, reason=f"to {state}")
        log.append(change)
    assert callback.state is S.COMPLETED
    assert callback.due_at == T0 + timedelta(minutes=5)
    assert callback.first_dial_at == T0 + timedelta(minutes=6)
    assert callback.attempts == 1
    assert [(c.previous, c.state) for c in log] == [
        (S.REQUESTED, S.SCHEDULED),
        (S.SCHEDULED, S.DIALING),
        (S.DIALING, S.CONNECTED),
        (S.CONNECTED, S.COMPLETED),
    ]
    assert all(c.actor == SYSTEM for c in log)


def test_retry_keeps_the_first_dial_time_and_counts_attempts() -> None:
    callback = _keep_place()
    callback, _ = move(callback, S.SCHEDULED, at=T0, actor=SYSTEM)
    callback, _ = move(callback, S.DIALING, at=T0 + timedelta(minutes=1), actor=SYSTEM)
    retry_at = T0 + timedelta(minutes=10)
    callback, change = move(
        callback,
        S.RETRY_WAIT,
        at=T0 + timedelta(minutes=2),
        actor=SYSTEM,
        result=AttemptResult.BUSY,
        due_at=retry_at,
    )
    assert change.result is AttemptResult.BUSY
    assert callback.due_at == retry_at
    callback, _ = move(callback, S.DIALING, at=retry_at, actor=SYSTEM)
    assert callback.first_dial_at == T0 + timedelta(minutes=1)
    assert callback.attempts == 2
    assert callback.last_result is AttemptResult.BUSY


def test_retry_wait_without_the_attempt_result_is_refused() -> None:
    callback = _keep_place()
    callback, _ = move(callback, S.SCHEDULED, at=T0, actor=SYSTEM)
    callback, _ = move(callback, S.DIALING, at=T0, actor=SYSTEM)
    with pytest.raises(ValidationError, match="result"):
        move(callback, S.RETRY_WAIT, at=T0, actor=SYSTEM)
    with pytest.raises(ValidationError, match="did not connect"):
        move(callback, S.RETRY_WAIT, at=T0, actor=SYSTEM, result=AttemptResult.CONNECTED)


@pytest.mark.parametrize("closing", [S.CANCELLED, S.EXPIRED, S.COMPLETED_INBOUND])
def test_closing_states_are_final(closing: CallbackState) -> None:
    callback, _ = move(_keep_place(), closing, at=T0, actor=CALLER)
    for state in S:
        assert not can_move(callback.state, state)
    with pytest.raises(ConflictError, match="cannot become"):
        move(callback, S.SCHEDULED, at=T0, actor=SYSTEM)


def test_a_connected_callback_cannot_be_cancelled() -> None:
    callback = _keep_place()
    for state in (S.SCHEDULED, S.DIALING, S.CONNECTED):
        callback, _ = move(callback, state, at=T0, actor=SYSTEM)
    with pytest.raises(ConflictError):
        move(callback, S.CANCELLED, at=T0, actor=CALLER)


def test_the_transition_table_covers_every_state_and_only_open_states_leave() -> None:
    assert set(TRANSITIONS) == set(S)
    for state, targets in TRANSITIONS.items():
        assert bool(targets) == state.is_open


@given(
    st.lists(st.sampled_from(list(S)), max_size=12), st.lists(st.integers(0, 600), min_size=12, max_size=12)
)
def test_any_sequence_of_requests_keeps_the_machine_consistent(
    states: list[CallbackState], gaps: list[int]
) -> None:
    callback = _keep_place()
    at = T0
    for state, gap in zip(states, gaps, strict=False):
        at += timedelta(seconds=gap)
        result = AttemptResult.NO_ANSWER if state in (S.RETRY_WAIT, S.FAILED) else None
        before = callback
        try:
            callback, change = move(callback, state, at=at, actor=SYSTEM, result=result)
        except ConflictError:
            assert not can_move(before.state, state)
            assert callback is before
            continue
        assert can_move(before.state, state)
        assert change.previous is before.state and change.state is state
        assert callback.updated_at >= before.updated_at
        assert callback.attempts >= before.attempts
        if before.first_dial_at is not None:
            assert callback.first_dial_at == before.first_dial_at
    if callback.attempts:
        assert callback.first_dial_at is not None
