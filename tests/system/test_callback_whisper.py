"""The whisper an agent hears before a callback's customer is dialled says who, why and how long they
waited (issue #7), with prompts of our catalogue that the simulated Asterisk, like a real one, plays
only when they exist."""

from __future__ import annotations

from datetime import timedelta
from typing import Final

import pytest

from callcenter.callbacks.attempts import customer_channel_id
from callcenter.model.callbacks import Actor
from callcenter.model.vocabulary import ActorKind, CallbackState
from callcenter.simulator import SimulatedAsterisk
from media.prompts import PROMPTS
from tests.system.conftest import QUEUE, Apps, RunningApp
from tests.system.test_callback_dispatch import (
    CUSTOMER,
    CUSTOMER_ENDPOINT,
    _agent,
    _dispatch,
    _originates,
    _press_when_answered,
    _start,
    _state,
)

pytestmark = [pytest.mark.system, pytest.mark.timeout(60)]

S = CallbackState
SAID: Final = "sound:callcenter/"


async def _request(running: RunningApp, reason: str) -> str:
    """A callback due now for ``reason``; its id."""
    now = running.services.clock.now()
    sources = _dispatch(running).sources
    if reason == "kept_place":
        callbacks = running.services.callbacks
        assert callbacks is not None
        kept = await callbacks.keep_place(
            QUEUE,
            CUSTOMER,
            enqueued_at=now - timedelta(minutes=5, seconds=10),
            by=now + timedelta(minutes=30),
            actor=Actor(ActorKind.CUSTOMER, "ivr"),
        )
        return kept.callback.id
    if reason == "voicemail":
        left = now - timedelta(minutes=12, seconds=30)
        return (await sources.from_voicemail(QUEUE, CUSTOMER, voicemail_id="vm-1", left_at=left)).callback.id
    if reason == "sms_reply":
        received = now - timedelta(minutes=1, seconds=5)
        sms = await sources.from_sms_reply(QUEUE, CUSTOMER, message_id="sms-1", received_at=received)
        return sms.callback.id
    return (await sources.follow_up("boss", QUEUE, CUSTOMER, at=now, note="quote")).callback.id


@pytest.mark.parametrize(
    ("reason", "why", "wait"),
    [
        (
            "kept_place",
            "whisper-kept-place",
            ["sound:callcenter/whisper-waited", "number:5", f"{SAID}minutes"],
        ),
        (
            "voicemail",
            "whisper-voicemail",
            ["sound:callcenter/whisper-waited", "number:12", f"{SAID}minutes"],
        ),
        ("sms_reply", "whisper-sms-reply", ["sound:callcenter/whisper-waited", "number:1", f"{SAID}minute"]),
        ("follow_up", "whisper-follow-up", [f"{SAID}whisper-waited-under-minute"]),
    ],
)
async def test_given_a_due_callback_when_the_agent_answers_then_they_hear_who_why_and_how_long(
    apps: Apps, sim: SimulatedAsterisk, reason: str, why: str, wait: list[str]
) -> None:
    running = await _start(apps, sim, dispatch_whisper="true")
    for name in PROMPTS:  # our prompts, rendered into Asterisk's sounds (callcenter prompts build)
        sim.set_sound(f"callcenter/{name}", 0.05)
    await _agent(running, sim, "alice")
    sim.set_endpoint(CUSTOMER_ENDPOINT, answer_after_s=0.2)
    callback_id = await _request(running, reason)

    await _press_when_answered(sim, customer_channel_id(f"{callback_id}.a1"))
    await _state(running, callback_id, S.CONNECTED)
    agent_dial, customer_dial = _originates(sim)
    heard = sim.heard(agent_dial["channelId"])
    assert [media for media, _ in heard] == [
        f"{SAID}whisper-callback",
        "digits:0100",
        f"{SAID}{why}",
        *wait,
    ], "the agent heard who, why and how long, before the customer was dialled"
    assert all(result == "complete" for _, result in heard), f"every item played to its end: {heard}"
    assert customer_dial["endpoint"] == CUSTOMER_ENDPOINT


async def test_given_prompts_not_rendered_when_whispered_then_the_missing_ones_are_skipped_and_the_call_goes_on(
    apps: Apps, sim: SimulatedAsterisk
) -> None:
    """An Asterisk without our rendered prompts skips them (``PlaybackContinuing``) and says the digits
    and the wait: the customer is still called."""
    running = await _start(apps, sim, dispatch_whisper="true")
    await _agent(running, sim, "alice")
    sim.set_endpoint(CUSTOMER_ENDPOINT, answer_after_s=0.2)
    callback_id = await _request(running, "follow_up")
    await _press_when_answered(sim, customer_channel_id(f"{callback_id}.a1"))
    await _state(running, callback_id, S.CONNECTED)
    agent_dial, _ = _originates(sim)
    heard = dict(sim.heard(agent_dial["channelId"]))
    assert heard["digits:0100"] == "complete"
    assert heard[f"{SAID}whisper-follow-up"] == "missing"
