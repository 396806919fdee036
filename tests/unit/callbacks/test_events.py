"""Callback events survive the bus unchanged: the dispatcher and the wallboard read them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from callcenter.callbacks.lifecycle import move, new_callback
from callcenter.callbacks.promise import keep_place_window
from callcenter.callbacks.service import state_event
from callcenter.model.callbacks import Actor
from callcenter.model.events import CallbackSlotOverCommitted, decode_event, encode_event
from callcenter.model.vocabulary import ActorKind, AttemptResult, CallbackKind, CallbackState

T0 = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)


def test_state_change_round_trips_with_its_window_actor_and_result() -> None:
    callback, _ = new_callback(
        callback_id="cb-1",
        queue="sales",
        number="+14155550100",
        kind=CallbackKind.KEEP_PLACE,
        window=keep_place_window(T0, T0 + timedelta(minutes=15)),
        at=T0,
        actor=Actor(ActorKind.CUSTOMER, "ivr"),
        enqueued_at=T0 - timedelta(minutes=2),
        call_id="call-1",
    )
    system = Actor(ActorKind.SYSTEM, "dispatcher")
    callback, _ = move(callback, CallbackState.SCHEDULED, at=T0, actor=system)
    callback, _ = move(callback, CallbackState.DIALING, at=T0, actor=system)
    callback, change = move(
        callback, CallbackState.RETRY_WAIT, at=T0, actor=system, result=AttemptResult.BUSY
    )
    event = state_event(callback, change)
    assert decode_event(encode_event(event)) == event
    body = json.loads(encode_event(event))
    assert body["type"] == "callback_state_changed"
    assert (body["state"], body["previous"], body["result"], body["attempts"]) == (
        "retry_wait",
        "dialing",
        "busy",
        1,
    )
    assert body["window_end"] == "2026-11-23T14:17:00+00:00"
    assert event.event_id == "callback:cb-1:retry_wait:1"


def test_over_commitment_alert_round_trips() -> None:
    event = CallbackSlotOverCommitted(
        event_id="x",
        occurred_at=T0,
        queue="sales",
        slot_start=T0,
        slot_end=T0 + timedelta(minutes=15),
        booked=5,
        capacity=2,
    )
    assert decode_event(encode_event(event)) == event
