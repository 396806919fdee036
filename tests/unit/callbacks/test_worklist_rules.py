"""The worklist's pure rules: why a callback is owed, early or late against its promise, when a personal
follow-up falls back to the queue, and when "nobody on the line" is dialled again."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, time, timedelta

import pytest

from callcenter.callbacks.attempts import Attempt, CallbackSource, SourceNote
from callcenter.callbacks.dispatch import DispatchSettings
from callcenter.callbacks.lifecycle import new_callback
from callcenter.callbacks.promise import keep_place_window, slot_window
from callcenter.callbacks.reasons import Reason, reason_of, voicemail_of
from callcenter.callbacks.worklist import Timing, next_retry, personal_owner, promise_timing
from callcenter.model.callbacks import Actor, Callback, CallbackChange, PromiseWindow
from callcenter.model.vocabulary import ActorKind, CallbackKind

T0 = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
NUMBER = "+14155550100"


def _callback(
    kind: CallbackKind, actor: Actor, *, call_id: str | None = None
) -> tuple[Callback, CallbackChange]:
    window = (
        keep_place_window(T0, T0 + timedelta(minutes=10), grace_s=120)
        if kind is CallbackKind.KEEP_PLACE
        else slot_window(T0 + timedelta(hours=1), T0 + timedelta(hours=1, minutes=30))
    )
    return new_callback(
        callback_id="cb-1",
        queue="sales",
        number=NUMBER,
        kind=kind,
        window=window,
        at=T0,
        actor=actor,
        call_id=call_id,
        enqueued_at=T0 if kind is CallbackKind.KEEP_PLACE else None,
    )


def _note(
    source: CallbackSource, *, merged: bool = False, owner: str | None = None, until: datetime | None = None
) -> SourceNote:
    return SourceNote(
        callback_id="cb-1", source=source, at=T0, merged=merged, owner_agent=owner, owner_until=until
    )


IVR = Actor(ActorKind.CUSTOMER, "ivr")
API = Actor(ActorKind.CUSTOMER, "via wallboard-token")


@pytest.mark.parametrize(
    ("kind", "actor", "call_id", "notes", "expected"),
    [
        (CallbackKind.KEEP_PLACE, IVR, "c1", (), Reason.KEPT_PLACE),
        (CallbackKind.SCHEDULED, IVR, "c1", (), Reason.CHOSEN_TIME),
        (CallbackKind.SCHEDULED, API, "c1", (), Reason.MISSED_CALL),
        (CallbackKind.KEEP_PLACE, API, None, (), Reason.KEPT_PLACE),  # no call to follow: as asked
        (
            CallbackKind.KEEP_PLACE,
            Actor(ActorKind.SYSTEM, "voicemail"),
            None,
            (CallbackSource.VOICEMAIL,),
            Reason.VOICEMAIL,
        ),
        (
            CallbackKind.KEEP_PLACE,
            Actor(ActorKind.CUSTOMER, "sms"),
            None,
            (CallbackSource.SMS_REPLY,),
            Reason.SMS_REPLY,
        ),
        (
            CallbackKind.SCHEDULED,
            Actor(ActorKind.AGENT, "a1"),
            None,
            (CallbackSource.AGENT_FOLLOW_UP,),
            Reason.FOLLOW_UP,
        ),
        (CallbackKind.KEEP_PLACE, IVR, "c1", (CallbackSource.CALL,), Reason.KEPT_PLACE),
    ],
)
def test_the_reason_comes_from_the_first_source_then_from_how_it_was_asked(
    kind: CallbackKind, actor: Actor, call_id: str | None, notes: tuple[CallbackSource, ...], expected: Reason
) -> None:
    callback, first = _callback(kind, actor, call_id=call_id)
    assert reason_of(callback, tuple(_note(s) for s in notes), first) is expected


def test_the_whispered_voicemail_is_the_one_the_callback_was_made_for() -> None:
    """Its preview plays in the whisper; a message merged into another callback does not."""
    made_for = dataclasses.replace(_note(CallbackSource.VOICEMAIL), ref="vm-1")
    merged = dataclasses.replace(_note(CallbackSource.VOICEMAIL, merged=True), ref="vm-2")
    assert voicemail_of((made_for, merged)) == "vm-1"
    assert voicemail_of((merged, made_for)) == "vm-1"
    assert voicemail_of((_note(CallbackSource.CALL), made_for)) is None
    assert voicemail_of((merged,)) is None
    assert voicemail_of(()) is None


def test_a_merged_request_does_not_change_the_reason() -> None:
    callback, first = _callback(CallbackKind.KEEP_PLACE, IVR, call_id="c1")
    merged = (_note(CallbackSource.VOICEMAIL, merged=True),)
    assert reason_of(callback, merged, first) is Reason.KEPT_PLACE


@pytest.mark.parametrize(
    ("at", "status", "seconds"),
    [
        (T0 - timedelta(minutes=5), Timing.EARLY, 300),
        (T0, Timing.ON_TIME, 600),
        (T0 + timedelta(minutes=9), Timing.ON_TIME, 60),
        (T0 + timedelta(minutes=10), Timing.LATE, 0),
        (T0 + timedelta(minutes=25), Timing.LATE, 900),
    ],
)
def test_promise_timing_says_how_early_or_late(at: datetime, status: Timing, seconds: float) -> None:
    window = PromiseWindow(start=T0, end=T0 + timedelta(minutes=10))
    timing = promise_timing(window, at)
    assert (timing.status, timing.seconds) == (status, seconds)


def test_a_personal_follow_up_falls_back_to_the_queue_at_its_deadline() -> None:
    deadline = T0 + timedelta(minutes=30)
    notes = (_note(CallbackSource.AGENT_FOLLOW_UP, owner="bob", until=deadline),)
    assert personal_owner(notes, T0) == "bob"
    assert personal_owner(notes, deadline - timedelta(seconds=1)) == "bob"
    assert personal_owner(notes, deadline) is None, "the queue's from the deadline on"
    assert personal_owner((_note(CallbackSource.CALL),), T0) is None, "never personal"
    assert (
        personal_owner((_note(CallbackSource.AGENT_FOLLOW_UP, owner="bob"),), T0 + timedelta(days=9)) == "bob"
    )


def _attempt(seq: int, *, dialled: bool = True) -> Attempt:
    return Attempt(
        id=f"cb-1.a{seq}",
        callback_id="cb-1",
        seq=seq,
        number=NUMBER,
        fence=1,
        started_at=T0,
        customer_dialled_at=T0 if dialled else None,
    )


SETTINGS = DispatchSettings(
    dial_from=time(0, 0),
    dial_until=time(23, 59),
    max_attempts=3,
    retry_s=300,
    retry_factor=2,
    retry_max_s=3600,
)


def test_nobody_on_the_line_is_dialled_again_with_back_off_until_the_dials_are_used_up() -> None:
    assert next_retry(NUMBER, (_attempt(1),), T0, SETTINGS) == T0 + timedelta(seconds=300)
    assert next_retry(NUMBER, (_attempt(1), _attempt(2)), T0, SETTINGS) == T0 + timedelta(seconds=600)
    assert next_retry(NUMBER, (_attempt(1), _attempt(2), _attempt(3)), T0, SETTINGS) is None


def test_the_retry_waits_for_the_end_of_the_customers_quiet_hours() -> None:
    office = DispatchSettings(dial_from=time(9, 0), dial_until=time(20, 0), retry_s=300)
    # 03:58 UTC is 19:58 in San Francisco (UTC-8): five minutes later is quiet until 09:00 there.
    evening = datetime(2026, 11, 24, 3, 58, tzinfo=UTC)
    retry = next_retry(NUMBER, (_attempt(1),), evening, office)
    assert retry is not None and retry == datetime(2026, 11, 24, 17, 0, tzinfo=UTC)
