"""The voicemail flow over ARI against the simulated Asterisk, end to end.

A caller turned away (after hours, or the maximum wait) with the exit action ``voicemail`` hears the
greeting, the beep, speaks (the simulator records real speech from Asterisk's core sounds into a WAV);
the recording is fetched over ARI, stored, transcribed in the embedded child process, and the call's
outcome is ``voicemail``.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from callcenter.model.records import ExitAction
from callcenter.model.vocabulary import VoicemailStatus
from callcenter.simulator import SimulatedAsterisk
from callcenter.voicemail.ports import VoicemailFilter
from media.text import normalise_words
from tests import audio_corpus as corpus
from tests.system.conftest import FAST_QUEUE, Apps, RunningApp
from tests.system.test_call_scenarios import call_in, requested
from tests.waiting import eventually

pytestmark = [pytest.mark.system, pytest.mark.timeout(120)]

SPEECH = "cannot-complete-as-dialed"


def played(sim: SimulatedAsterisk, channel: str) -> list[str]:
    """What was played to ``channel``, once each playback ended (the flow names its playbacks)."""
    return [uri for uri, _ in sim.heard(channel)]


def _closed_today() -> tuple[datetime, ...]:
    today = datetime.now(UTC).date()
    return tuple(today + timedelta(days=d) for d in (-1, 0, 1))  # type: ignore[misc]


@pytest.fixture
async def system(apps: Apps, sim: SimulatedAsterisk) -> RunningApp:
    sim.set_sound("vm-intro", 0.5)  # the real prompt is 5.7 s: keep the test short
    running = await apps.start(voicemail_max_silence_s="1", voicemail_max_s="30")
    return running


async def _voicemail_of(system: RunningApp, call_id: str):  # type: ignore[no-untyped-def]
    assert system.services.voicemails is not None
    page = await system.services.voicemails.list(VoicemailFilter(), cursor=None, limit=50)
    return next((v for v in page.items if v.call_id == call_id), None)


async def test_after_hours_caller_leaves_a_message_that_is_transcribed(
    sim: SimulatedAsterisk, system: RunningApp
) -> None:
    queue = dataclasses.replace(FAST_QUEUE, holidays=_closed_today(), after_hours_action=ExitAction.VOICEMAIL)
    await system.put_queue(queue)
    prompt = corpus.prompts()[SPEECH]
    pcm = corpus.join([prompt], [0.3, 0.3])

    caller = call_in(sim)
    sim.set_caller_audio(caller, len(pcm) / 8000, pcm.astype("<i2").tobytes())

    call = await system.decided(caller, timeout_s=30)
    assert call["outcome"] == "voicemail" and call["missed"] is True
    assert played(sim, caller)[0] == "sound:vm-intro"
    (record,) = requested(sim, "POST", f"/ari/channels/{caller}/record")
    assert record.query["beep"] == "true" and record.query["terminateOn"] == "#"
    assert record.query["maxSilenceSeconds"] == "1" and record.query["format"] == "wav"
    name = record.query["name"]

    async def stored() -> bool:
        return await _voicemail_of(system, caller) is not None

    await eventually(stored, timeout_s=20, what="the voicemail stored")
    assert requested(sim, "GET", f"/ari/recordings/stored/{name}/file")
    voicemail = await _voicemail_of(system, caller)
    assert voicemail.queue == queue.name and voicemail.caller == "+14155550100"

    async def transcribed() -> bool:
        current = await _voicemail_of(system, caller)
        return current is not None and current.status is not VoicemailStatus.RECORDED

    await eventually(transcribed, timeout_s=90, poll_s=0.2, what="the transcription")
    voicemail = await _voicemail_of(system, caller)
    assert voicemail.status is VoicemailStatus.TRANSCRIBED, voicemail
    transcript = await system.services.voicemails.transcript(voicemail.id)  # type: ignore[union-attr]
    assert transcript is not None
    assert normalise_words(transcript.text) == normalise_words(prompt.text)
    status, listed = await system.get("/voicemails")
    assert status == 200 and listed["items"][0]["call_id"] == caller
    assert requested(sim, "DELETE", f"/ari/recordings/stored/{name}"), "Asterisk's copy is removed"


async def test_a_caller_hanging_up_during_the_greeting_leaves_no_message(
    sim: SimulatedAsterisk, system: RunningApp
) -> None:
    sim.set_sound("vm-intro", 5.0)
    await system.put_queue(
        dataclasses.replace(FAST_QUEUE, holidays=_closed_today(), after_hours_action=ExitAction.VOICEMAIL)
    )
    caller = call_in(sim)

    def greeting_started() -> bool:
        return any(
            r.method == "POST" and r.path.startswith(f"/ari/channels/{caller}/play") for r in sim.requests
        )

    await eventually(greeting_started, timeout_s=10, what="the greeting")
    sim.hangup(caller)
    call = await system.decided(caller)
    assert call["outcome"] == "after_hours"
    assert not requested(sim, "POST", f"/ari/channels/{caller}/record")
    assert await _voicemail_of(system, caller) is None


async def test_max_wait_reached_sends_the_caller_to_voicemail(
    sim: SimulatedAsterisk, system: RunningApp
) -> None:
    await system.put_queue(dataclasses.replace(FAST_QUEUE, timeout_action=ExitAction.VOICEMAIL))
    sim.set_endpoint(await system.add_agent("alice", login=False))
    await system.add_agent("bob")  # logged in, but nobody answers: his phone is not registered
    caller = call_in(sim)
    sim.set_caller_audio(caller, 1.0, None)

    call = await system.decided(caller, timeout_s=40)
    assert call["outcome"] == "voicemail"
    assert "sound:vm-intro" in played(sim, caller)
    # The caller waited in the holding bridge, where Asterisk refuses to record ("Cannot record channel
    # while in bridge", seen on a real Asterisk 20): they are taken out of it, and the message is kept.
    removed = [r for r in sim.requests if r.method == "POST" and r.path.endswith("/removeChannel")]
    assert [r.query["channel"] for r in removed] == [caller]

    async def stored() -> bool:
        voicemail = await _voicemail_of(system, caller)
        return voicemail is not None and voicemail.size_bytes > 44

    await eventually(stored, timeout_s=20, what="the message stored with its audio")
    voicemail = await _voicemail_of(system, caller)
    assert voicemail is not None and voicemail.duration_s == pytest.approx(1.0, abs=0.1)


async def test_when_asterisk_cannot_record_no_voicemail_is_claimed_and_the_caller_is_told(
    sim: SimulatedAsterisk, system: RunningApp
) -> None:
    """Found by reading: the call was ``voicemail`` as the recording started, so a refused recording
    (Asterisk's disk, or a bridged channel) left a call whose caller was texted "we got your voicemail"
    and put on nobody's worklist. Now it is the exit's outcome, a missed call like any other."""
    await system.put_queue(
        dataclasses.replace(FAST_QUEUE, holidays=_closed_today(), after_hours_action=ExitAction.VOICEMAIL)
    )
    sim.fail_next("POST /ari/channels/*/record", 500, message="Internal Server Error")
    caller = call_in(sim)

    call = await system.decided(caller, timeout_s=20)
    assert call["outcome"] == "after_hours" and call["missed"] is True
    assert played(sim, caller) == ["sound:vm-intro", "sound:im-sorry", "sound:please-try-call-later"]
    assert [e["kind"] for e in call["events"] if "voicemail" in e["kind"]] == [
        "sent_to_voicemail",
        "voicemail_recorded",
        "voicemail_not_recorded",
    ]
    assert await _voicemail_of(system, caller) is None
    assert caller not in sim.channels, "hung up after the apology, never left in silence"
