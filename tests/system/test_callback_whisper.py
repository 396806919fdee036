"""The whisper an agent hears before a callback's customer is dialled says who, why and how long they
waited (issue #7), with prompts of our catalogue that the simulated Asterisk, like a real one, plays
only when they exist."""

from __future__ import annotations

import logging
import wave
from datetime import timedelta
from pathlib import Path
from typing import Final

import pytest

from callcenter.callbacks.attempts import customer_channel_id
from callcenter.model.callbacks import Actor
from callcenter.model.vocabulary import ActorKind, CallbackState, Role
from callcenter.simulator import SimulatedAsterisk
from media.prompts import PROMPTS
from tests import audio_corpus as corpus
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


async def _request_voicemail(running: RunningApp, tmp_path: Path) -> str:
    """A caller's message (real speech after 3 s of silence) stored as the app stores one, and the
    callback it asks for, due now: the callback's id."""
    if not corpus.available():
        pytest.fail(corpus.MISSING)
    voicemails = running.services.voicemails
    assert voicemails is not None
    pcm = corpus.join(
        [corpus.prompts()["agent-incorrect"], corpus.prompts()["agent-newlocation"]], [3.0, 0.6, 1.0]
    )
    source = corpus.telephone(tmp_path / "message.ulaw.wav", pcm)
    now = running.services.clock.now()
    left = now - timedelta(minutes=12, seconds=30)
    voicemail = await voicemails.store_recording(
        source,
        suffix=".wav",
        call_id="call-vm",
        queue=QUEUE,
        caller=CUSTOMER,
        duration_s=len(pcm) / 8000,
        recorded_at=left,
    )
    sources = _dispatch(running).sources
    made = await sources.from_voicemail(QUEUE, CUSTOMER, voicemail_id=voicemail.id, left_at=left)
    return made.callback.id


async def test_given_a_voicemail_callback_when_the_agent_answers_then_they_hear_the_start_of_the_message(
    apps: Apps, sim: SimulatedAsterisk, tmp_path: Path
) -> None:
    """After the reason, the agent hears the caller's own voice: the message's first seconds, written
    to the folder shared with Asterisk and played by absolute path (issue #7)."""
    spool = tmp_path / "spool"
    running = await _start(
        apps,
        sim,
        dispatch_whisper="true",
        dispatch_preview_s="3",  # the whisper stays within the test's wait for the customer's dial
        voicemail_spool_dir=str(spool),
        voicemail_transcribe_processes="0",
    )
    for name in PROMPTS:
        sim.set_sound(f"callcenter/{name}", 0.05)
    await _agent(running, sim, "alice")
    sim.set_endpoint(CUSTOMER_ENDPOINT, answer_after_s=0.2)
    callback_id = await _request_voicemail(running, tmp_path)

    await _press_when_answered(sim, customer_channel_id(f"{callback_id}.a1"))
    await _state(running, callback_id, S.CONNECTED)
    agent_dial, _ = _originates(sim)
    heard = sim.heard(agent_dial["channelId"])
    previews = list(spool.glob("callcenter-preview-*.wav"))
    assert len(previews) == 1, "the preview was written once, to the shared folder"
    played = f"sound:{previews[0].with_suffix('')}"
    assert [media for media, _ in heard] == [
        f"{SAID}whisper-callback",
        "digits:0100",
        f"{SAID}whisper-voicemail",
        played,
        f"{SAID}whisper-waited",
        "number:12",
        f"{SAID}minutes",
    ], "the agent heard the caller's own words after the reason"
    assert all(result == "complete" for _, result in heard), f"every item played to its end: {heard}"
    with wave.open(str(previews[0]), "rb") as preview:
        length_s = preview.getnframes() / preview.getframerate()
    assert 2.0 <= length_s <= 3.0, "CALLCENTER_DISPATCH_PREVIEW_S is the longest"
    assert sim.media_duration(played) == pytest.approx(length_s), "played for as long as the file lasts"

    # Erasing the caller's personal data deletes the preview (their voice) from the shared folder.
    _, admin = await running.services.auth.create_token(
        role=Role.ADMIN, agent_id=None, label="erasure", expires_at=None, actor="test"
    )
    erased = await running.http.post(
        "/api/v1/erasures", json={"number": CUSTOMER}, headers={"Authorization": f"Bearer {admin}"}
    )
    assert erased.status == 200, await erased.text()
    assert list(spool.iterdir()) == [], "the preview went with the number's erasure"


async def test_given_no_shared_folder_when_a_voicemail_callback_is_whispered_then_the_reason_only_and_a_log_line(
    apps: Apps, sim: SimulatedAsterisk, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Without ``CALLCENTER_VOICEMAIL_SPOOL_DIR`` Asterisk could not play a preview: none is offered
    (no failed playback), the call goes on, and the log says why."""
    running = await _start(apps, sim, dispatch_whisper="true", voicemail_transcribe_processes="0")
    for name in PROMPTS:
        sim.set_sound(f"callcenter/{name}", 0.05)
    await _agent(running, sim, "alice")
    sim.set_endpoint(CUSTOMER_ENDPOINT, answer_after_s=0.2)
    with caplog.at_level(logging.INFO, "callcenter.voicemail.preview"):
        callback_id = await _request_voicemail(running, tmp_path)
        await _press_when_answered(sim, customer_channel_id(f"{callback_id}.a1"))
        await _state(running, callback_id, S.CONNECTED)
    agent_dial, _ = _originates(sim)
    heard = sim.heard(agent_dial["channelId"])
    assert [media for media, _ in heard] == [
        f"{SAID}whisper-callback",
        "digits:0100",
        f"{SAID}whisper-voicemail",
        f"{SAID}whisper-waited",
        "number:12",
        f"{SAID}minutes",
    ]
    assert all(result == "complete" for _, result in heard), f"no failed playback: {heard}"
    assert "no preview for the whisper (CALLCENTER_VOICEMAIL_SPOOL_DIR is not set" in caplog.text
