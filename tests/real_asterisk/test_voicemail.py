"""Voicemail over ARI on a real call: Asterisk records the caller's real speech, the app stores it.

A caller reaches our queue with nobody logged in and the exit action ``voicemail``: they hear the
greeting and the beep, Asterisk records (``POST /channels/{id}/record``), the caller (``sipp/
uac_cued.xml``) speaks a sentence of Asterisk's core sounds as G.711 RTP once the recording started,
then stays silent until the silence ends the message; the app fetches the file
(``GET /recordings/stored/{name}/file``), stores it, deletes Asterisk's copy, the call's outcome is
``voicemail`` and the message is transcribed (the real tiny.en in the embedded child process) to the
words the caller said. A caller who hangs up after speaking keeps the message; one sent to voicemail by
the maximum wait (from the holding bridge, while an agent's phone rang) too.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import wave
from typing import Any, Final

import numpy as np
import pytest

from callcenter.model.records import ExitAction
from callcenter.model.vocabulary import AgentState, VoicemailStatus
from callcenter.voicemail.ports import VoicemailFilter
from media.text import normalise_words
from tests import audio_corpus as corpus
from tests.real_asterisk import rtp_pcap
from tests.real_asterisk.conftest import REAL_QUEUE, SKIP_REASON, AriObserver, Lab
from tests.system.conftest import eventually

pytestmark = [
    pytest.mark.real_asterisk,
    pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or ""),
    pytest.mark.skipif(not corpus.available(), reason=corpus.MISSING),
    pytest.mark.timeout(180),
]

#: "The number you have dialed cannot be completed as dialed..." (a human recording with a transcript).
SPEECH: Final = "cannot-complete-as-dialed"
VOICEMAIL_QUEUE: Final = dataclasses.replace(REAL_QUEUE, no_agents_action=ExitAction.VOICEMAIL)


@pytest.fixture
def app_overrides() -> dict[str, str]:
    """Two seconds of silence end a message; the embedded transcription child on (the default)."""
    return {"voicemail_max_silence_s": "2", "voicemail_max_s": "60", "dispatch_enabled": "false"}


def recording_events(observer: AriObserver, channel_id: str) -> list[dict[str, Any]]:
    target = f"channel:{channel_id}"
    return [
        e
        for e in observer.events
        if e["type"].startswith("Recording") and e.get("recording", {}).get("target_uri") == target
    ]


async def test_given_nobody_logged_in_and_exit_voicemail_when_caller_speaks_then_voicemail_stored_and_transcribed(
    lab: Lab, observer: AriObserver
) -> None:
    await lab.app.put_queue(VOICEMAIL_QUEUE)
    prompt = corpus.prompts()[SPEECH]
    speech = corpus.join([prompt], [0.4, 0.0], noise_dbfs=-60.0)
    silence = np.zeros(int(4.0 * rtp_pcap.RATE), dtype=np.int16)  # RTP goes on: the silence ends it
    pcap = rtp_pcap.write_pcap(
        lab.workdir / "speech.pcap", rtp_pcap.speech_packets(np.concatenate([speech, silence]))
    )
    caller = await lab.cued_call(pcap=pcap)
    call_id = await lab.call_id(caller)

    def recording_started() -> bool:
        return any(e["type"] == "RecordingStarted" for e in recording_events(observer, call_id))

    await eventually(recording_started, timeout_s=30, what="Asterisk recording the caller (after the beep)")
    greeting = [
        e["playback"]["media_uri"] for e in observer.of_channel(call_id) if e["type"] == "PlaybackStarted"
    ]
    assert greeting[:1] == ["sound:vm-intro"], greeting
    await caller.speak()

    assert await caller.finished(timeout_s=60) == "REMOTE_BYE", "thanked and hung up after the message"
    finished = [e for e in recording_events(observer, call_id) if e["type"] == "RecordingFinished"]
    assert len(finished) == 1, recording_events(observer, call_id)
    recording = finished[0]["recording"]
    assert recording["format"] == "wav" and recording["name"].startswith("callcenter-vm-")
    spoken_s = len(speech) / rtp_pcap.RATE
    assert spoken_s - 1.5 <= float(recording.get("duration", 0)) <= spoken_s + 3, recording
    call = await lab.app.decided(call_id, timeout_s=20)
    assert (call["outcome"], call["missed"], call["caller"]) == ("voicemail", True, caller.stored_number)
    assert (await lab.one_call_ended(call_id)).outcome == "voicemail"

    voicemails = lab.app.services.voicemails
    assert voicemails is not None and lab.app.services.speech is not None

    async def of_call() -> list[Any]:
        page = await voicemails.list(VoicemailFilter(), cursor=None, limit=10)
        return [v for v in page.items if v.call_id == call_id]

    async def stored() -> bool:
        return bool(await of_call())

    await eventually(stored, timeout_s=20, what="the voicemail stored")
    [voicemail] = await of_call()
    assert (voicemail.queue, voicemail.caller) == (VOICEMAIL_QUEUE.name, caller.stored_number)

    response = await lab.app.http.get(
        f"/api/v1/voicemails/{voicemail.id}/audio", headers={"Authorization": f"Bearer {lab.app.token}"}
    )
    assert response.status == 200
    with wave.open(io.BytesIO(await response.read()), "rb") as audio:
        assert (audio.getframerate(), audio.getnchannels()) == (8000, 1)
        assert audio.getnframes() / 8000 >= spoken_s - 1.0, "the caller's words are in the stored audio"

    async def asterisk_copy_deleted() -> bool:
        return not await lab.ari.stored_recording(recording["name"])

    await eventually(asterisk_copy_deleted, timeout_s=10, what="Asterisk's copy of the recording deleted")

    async def transcribed() -> bool:
        current = await voicemails.get(voicemail.id)
        return current.status is not VoicemailStatus.RECORDED

    await eventually(transcribed, timeout_s=120, what="the transcription")
    done = await voicemails.get(voicemail.id)
    assert done.status is VoicemailStatus.TRANSCRIBED, done
    transcript = await voicemails.transcript(voicemail.id)
    assert transcript is not None
    assert normalise_words(transcript.text) == normalise_words(prompt.text), transcript.text


@pytest.mark.parametrize(
    "app_overrides",
    [{"voicemail_max_silence_s": "10", "voicemail_max_s": "60", "dispatch_enabled": "false"}],
    ids=["silence-10s"],
)
async def test_given_caller_recording_when_they_hang_up_after_speaking_then_the_message_is_kept(
    lab: Lab, observer: AriObserver
) -> None:
    await lab.app.put_queue(VOICEMAIL_QUEUE)
    prompt = corpus.prompts()[SPEECH]
    speech = corpus.join([prompt], [0.4, 0.0], noise_dbfs=-60.0)
    silence = np.zeros(int(20.0 * rtp_pcap.RATE), dtype=np.int16)
    pcap = rtp_pcap.write_pcap(
        lab.workdir / "speech.pcap", rtp_pcap.speech_packets(np.concatenate([speech, silence]))
    )
    caller = await lab.cued_call(pcap=pcap)
    call_id = await lab.call_id(caller)

    def recording_started() -> bool:
        return any(e["type"] == "RecordingStarted" for e in recording_events(observer, call_id))

    await eventually(recording_started, timeout_s=30, what="Asterisk recording the caller (after the beep)")
    await caller.speak()
    await asyncio.sleep(len(speech) / rtp_pcap.RATE + 1.0)  # the caller says it, then hangs up
    await caller.hang_up()

    call = await lab.app.decided(call_id, timeout_s=20)
    assert call["outcome"] == "voicemail", call
    voicemails = lab.app.services.voicemails
    assert voicemails is not None

    async def of_call() -> list[Any]:
        page = await voicemails.list(VoicemailFilter(), cursor=None, limit=10)
        return [v for v in page.items if v.call_id == call_id]

    async def stored() -> bool:
        return bool(await of_call())

    await eventually(stored, timeout_s=20, what="the voicemail stored")
    [voicemail] = await of_call()
    assert voicemail.duration_s >= 1.0, voicemail

    async def transcribed() -> bool:
        return (await voicemails.get(voicemail.id)).status is not VoicemailStatus.RECORDED

    await eventually(transcribed, timeout_s=120, what="the transcription")
    transcript = await voicemails.transcript(voicemail.id)
    assert transcript is not None
    assert normalise_words(transcript.text) == normalise_words(prompt.text), transcript.text
    played = [
        e["playback"]["media_uri"] for e in observer.of_channel(call_id) if e["type"] == "PlaybackStarted"
    ]
    assert "sound:vm-msgsaved" not in played, "nobody is thanked after hanging up"


async def test_given_agent_ringing_when_max_wait_reached_with_exit_voicemail_then_ringing_cancelled_and_message_taken(
    lab: Lab, observer: AriObserver
) -> None:
    queue = dataclasses.replace(
        REAL_QUEUE, max_wait_s=5, ring_timeout_s=30, timeout_action=ExitAction.VOICEMAIL
    )
    await lab.app.put_queue(queue)
    first = lab.phones[0]
    phone = await lab.silent_phone(first)
    await lab.login(first)
    prompt = corpus.prompts()[SPEECH]
    speech = corpus.join([prompt], [0.4, 0.0], noise_dbfs=-60.0)
    silence = np.zeros(int(20.0 * rtp_pcap.RATE), dtype=np.int16)
    pcap = rtp_pcap.write_pcap(
        lab.workdir / "speech.pcap", rtp_pcap.speech_packets(np.concatenate([speech, silence]))
    )
    caller = await lab.cued_call(pcap=pcap)
    call_id = await lab.call_id(caller)

    def recording_started() -> bool:
        return any(e["type"] == "RecordingStarted" for e in recording_events(observer, call_id))

    await eventually(recording_started, timeout_s=30, what="Asterisk recording the caller after the max wait")
    assert phone.count("CANCELLED while ringing") == 1, "the agent's ringing ended before the greeting"
    await caller.speak()
    await asyncio.sleep(len(speech) / rtp_pcap.RATE + 0.5)  # the caller says it, then hangs up
    await caller.hang_up()

    call = await lab.app.decided(call_id, timeout_s=20)
    assert (call["outcome"], call["agent_id"]) == ("voicemail", None)
    assert call["wait_s"] >= 5
    voicemails = lab.app.services.voicemails
    assert voicemails is not None

    async def stored() -> bool:
        page = await voicemails.list(VoicemailFilter(), cursor=None, limit=10)
        return any(v.call_id == call_id and v.size_bytes > 16_000 for v in page.items)  # over 0.5 s

    await eventually(stored, timeout_s=20, what="the voicemail stored with its audio")
    await lab.app.wait_agent(first.agent_id, AgentState.AVAILABLE)
