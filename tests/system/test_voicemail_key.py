"""Voicemail by key while waiting in our ARI queue, the whole app against the simulated Asterisk (issue 8).

A caller waiting behind a busy agent hears their place and wait and "to leave a message instead,
press 9"; they press 9, leave the line (the holding bridge too: Asterisk records no bridged channel),
hear the greeting and the beep and speak; the message is fetched, stored and transcribed, the call's
outcome is ``voicemail``, and the voicemail becomes a callback on the agents' worklist with its words.
"""

from __future__ import annotations

from datetime import datetime

import pytest

from callcenter.model.vocabulary import AgentState, VoicemailStatus
from callcenter.simulator import SimulatedAsterisk
from callcenter.voicemail.ports import VoicemailFilter
from media.prompts import PROMPTS
from media.text import normalise_words
from tests import audio_corpus as corpus
from tests.system.conftest import CALLER, QUEUE, Apps, RunningApp
from tests.system.test_call_scenarios import bridge_of, call_in, requested
from tests.system.test_callback_offers import PATIENT_QUEUE, _heard, played
from tests.waiting import eventually

pytestmark = [pytest.mark.system, pytest.mark.timeout(150)]

SPEECH = "cannot-complete-as-dialed"


async def _busy_queue(sim: SimulatedAsterisk, apps: Apps, *, voicemail_key: str = "9") -> RunningApp:
    """Our queue with alice talking to a first caller: the next caller waits."""
    for name in PROMPTS:
        sim.set_sound(f"callcenter/{name}", 0.05)
    sim.set_sound("vm-intro", 0.3)
    app = await apps.start(
        callback_offer_wait_s="0",
        callback_announce_every_s="120",
        voicemail_max_silence_s="1",
        voicemail_max_s="30",
        voicemail_key=voicemail_key,
    )
    await app.put_queue(PATIENT_QUEUE)
    await app.answered_history()
    sim.set_endpoint(await app.add_agent("alice"), answer_after_s=0.2)
    first = call_in(sim, caller="+14155550111")
    await eventually(lambda: (b := bridge_of(sim, first, "mixing")) is not None and len(b.channels) == 2)
    await app.wait_agent("alice", AgentState.BUSY)
    return app


async def test_given_caller_waiting_when_they_press_the_voicemail_key_then_message_taken_and_callback_listed(
    sim: SimulatedAsterisk, apps: Apps
) -> None:
    app = await _busy_queue(sim, apps)
    prompt = corpus.prompts()[SPEECH]
    pcm = corpus.join([prompt], [0.3, 0.3])
    caller = call_in(sim)
    sim.set_caller_audio(caller, len(pcm) / 8000, pcm.astype("<i2").tobytes())

    await eventually(lambda: _heard(sim, caller, "leave-message"), timeout_s=30, what="the voicemail option")
    media = played(sim, caller)
    option = media.index("sound:callcenter/leave-message")
    assert media[option + 1] == "digits:9", "the key is said after the option"
    assert bridge_of(sim, caller, "holding") is not None, "waiting with music"
    sim.press(caller, "9")

    call = await app.decided(caller, timeout_s=40)
    assert call["outcome"] == "voicemail"
    kinds = [e["kind"] for e in call["events"]]
    assert "sent_to_voicemail" in kinds and "voicemail_recorded" in kinds
    assert "sound:vm-intro" in played(sim, caller)
    (record,) = requested(sim, "POST", f"/ari/channels/{caller}/record")
    assert record.query["beep"] == "true"
    assert app.services.voicemails is not None

    async def transcribed() -> bool:
        page = await app.services.voicemails.list(VoicemailFilter(), cursor=None, limit=10)  # type: ignore[union-attr]
        return any(v.call_id == caller and v.status is VoicemailStatus.TRANSCRIBED for v in page.items)

    await eventually(transcribed, timeout_s=90, poll_s=0.2, what="the message transcribed")
    page = await app.services.voicemails.list(VoicemailFilter(), cursor=None, limit=10)
    (voicemail,) = [v for v in page.items if v.call_id == caller]
    assert voicemail.queue == QUEUE and voicemail.duration_s > 1.0

    async def listed() -> bool:
        _, body = await app.get("/callbacks", queue=QUEUE)
        return bool(body["items"])

    await eventually(listed, timeout_s=20, what="the voicemail's callback")
    _, body = await app.get("/callbacks", queue=QUEUE)
    [callback] = body["items"]
    assert (callback["kind"], callback["state"], callback["number"]) == ("keep_place", "requested", CALLER)
    assert datetime.fromisoformat(callback["enqueued_at"]) == voicemail.recorded_at
    # Where the request came from, as the worklist shows it: the voicemail, and its words.
    status, detail = await app.get(f"/callbacks/{callback['id']}/attempts")
    assert status == 200, detail
    [source] = detail["sources"]
    assert (source["source"], source["ref"]) == ("voicemail", voicemail.id)
    assert normalise_words(source["note"]) == normalise_words(prompt.text)


async def test_given_voicemail_key_disabled_when_caller_presses_9_then_they_keep_waiting(
    sim: SimulatedAsterisk, apps: Apps
) -> None:
    app = await _busy_queue(sim, apps, voicemail_key="")
    caller = call_in(sim)
    await eventually(lambda: _heard(sim, caller, "you-are-next"), timeout_s=30, what="the announcement")
    assert not _heard(sim, caller, "leave-message")
    sim.press(caller, "9")
    await eventually(lambda: _heard(sim, caller, "offer-stay"), timeout_s=30, what="the offer menu")
    assert not requested(sim, "POST", f"/ari/channels/{caller}/record")
    assert bridge_of(sim, caller, "holding") is not None, "still waiting in line"
    sim.hangup(caller)
    assert (await app.decided(caller))["outcome"] in ("abandoned", "short_abandon")
