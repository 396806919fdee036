"""Callbacks on a real Asterisk: the offer to a caller waiting in our ARI queue, and the dispatcher's calls.

The offer (``callcenter/ari/offers.py`` running ``ivr/flows/callback_offer.py`` over ``AriChannel``): a
caller waiting behind a busy agent hears their place and wait, then the offer, presses 1 (keep my
place), hears their number read back, presses 1 to confirm, hears the promise and is hung up: the call
is ``callback_requested`` and a keep-my-place callback holds their number and original enqueue time.
The caller (``sipp/uac_cued.xml``) presses each key as a SIP INFO when the test has seen, over ARI,
the prompt it answers end, as a person would. A caller still hearing the offer when the agent frees up
is put through and the offer stops: its last items never play into the conversation.

The dispatcher (``callcenter/ari/originate.py``), agent first: the agent's phone answers, hears the
whisper, the customer's phone (``sipp/uas_customer.xml``) is dialled with the queue's business number,
answers, hears the confirmation and presses 1 as RFC 4733 events in its RTP: both are bridged, the
attempt is ``connected`` and the callback ``completed`` after the customer hangs up. A customer who
presses nothing is ``machine``.

Needs our prompts rendered into the Asterisk's sounds (``callcenter prompts build``), the ``customer``
peer and the settings of ``README.md``.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final

import numpy as np
import pytest

from callcenter.callbacks.attempts import customer_channel_id
from callcenter.model.vocabulary import AgentState, AttemptResult, CallbackState
from callcenter.wiring.dispatch import DispatchRuntime
from tests import audio_corpus as corpus
from tests.real_asterisk import rtp_pcap
from tests.real_asterisk.conftest import (
    CUSTOMER_DIAL,
    QUEUE,
    REAL_QUEUE,
    SIP_CALLER_PORT,
    SKIP_REASON,
    SPOOL_DIR,
    AriObserver,
    Lab,
    new_caller_number,
)
from tests.system.conftest import RunningApp, eventually

pytestmark = [
    pytest.mark.real_asterisk,
    pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or ""),
    pytest.mark.timeout(120),
]

S = CallbackState
BUSINESS: Final = "+14155550199"
PATIENT_QUEUE: Final = dataclasses.replace(REAL_QUEUE, max_wait_s=300, business_number=BUSINESS)
#: The confirmation the customer hears (one of our rendered prompts: "press 1.").
CONFIRM_MEDIA: Final = "sound:callcenter/press-1"


#: Offers to every caller at once (no wait threshold); the dispatcher on short timings.
SETTINGS: Final = {
    "callback_offer_wait_s": "0",
    "callback_announce_every_s": "120",
    "dispatch_poll_s": "0.2",
    "dispatch_dial_from": "00:00",
    "dispatch_dial_until": "23:59",
    "dispatch_customer_endpoint": CUSTOMER_DIAL,
    "dispatch_confirm_media": CONFIRM_MEDIA,
    "dispatch_personal_s": "0",
    "dispatch_disposition_wait_s": "0.5",
    "dispatch_retry_s": "600",
}


@pytest.fixture
def app_overrides() -> dict[str, str]:
    return dict(SETTINGS)


# ---------------------------------------------------------------------------------------------
# What the caller heard (ARI playback events)
# ---------------------------------------------------------------------------------------------


def playbacks(observer: AriObserver, channel_id: str) -> dict[str, list[dict[str, Any]]]:
    """The playback events on ``channel_id`` by playback id, oldest first."""
    found: dict[str, list[dict[str, Any]]] = {}
    for event in observer.of_channel(channel_id):
        if event["type"].startswith("Playback"):
            found.setdefault(event["playback"]["id"], []).append(event)
    return found


def media_of(events: list[dict[str, Any]]) -> list[str]:
    """The media of one playback in the order played: Asterisk sends ``PlaybackStarted`` for each item
    of a media list (``PlaybackContinuing`` names the item that ended)."""
    return [e["playback"]["media_uri"] for e in events if e["type"] == "PlaybackStarted"]


async def heard(
    observer: AriObserver, channel_id: str, first: str, *, timeout_s: float = 40.0
) -> list[dict[str, Any]]:
    """Wait until a playback starting with ``first`` ended on ``channel_id``; its events.

    Fails when it ended ``failed`` (the sound is missing on the Asterisk: render our prompts there).
    """
    found: list[list[dict[str, Any]]] = []

    def ended() -> bool:
        found[:] = [
            events
            for events in playbacks(observer, channel_id).values()
            if media_of(events)[:1] == [first] and events[-1]["type"] == "PlaybackFinished"
        ]
        return bool(found)

    await eventually(ended, timeout_s=timeout_s, what=f"{first} played to {channel_id}")
    events = found[0]
    assert events[-1]["playback"]["state"] == "done", f"{first} did not play: {events[-1]}"
    return events


def silence_pcap(workdir: Path) -> Path:
    """A caller who says nothing (the cued scenario needs a pcap to load)."""
    return rtp_pcap.write_pcap(
        workdir / "silence.pcap", rtp_pcap.speech_packets(np.zeros(1600, dtype=np.int16))
    )


def key_1_pcap(workdir: Path) -> Path:
    """Key 1 in RTP: 200 ms of silence (Asterisk learns the stream), then the RFC 4733 events."""
    silence = rtp_pcap.speech_packets(np.zeros(1600, dtype=np.int16))
    key = [(0.2 + at, packet) for at, packet in _renumbered(rtp_pcap.key_packets("1"), len(silence))]
    return rtp_pcap.write_pcap(workdir / "key-1.pcap", [*silence, *key])


def _renumbered(packets: list[tuple[float, bytes]], after: int) -> list[tuple[float, bytes]]:
    """RTP sequence numbers continued after ``after`` packets of the same stream."""
    out = []
    for at, packet in packets:
        seq = int.from_bytes(packet[2:4], "big") + after
        out.append((at, packet[:2] + (seq & 0xFFFF).to_bytes(2, "big") + packet[4:]))
    return out


# ---------------------------------------------------------------------------------------------
# The offer to a waiting caller
# ---------------------------------------------------------------------------------------------


async def test_given_caller_waiting_behind_a_busy_agent_when_they_press_1_twice_then_callback_keeps_their_place(
    lab: Lab, observer: AriObserver
) -> None:
    await lab.app.put_queue(PATIENT_QUEUE)
    await lab.app.answered_history(QUEUE)
    first = lab.phones[0]
    await lab.phone(first, ring_ms=500)
    await lab.login(first)
    talking = await lab.call(hold_ms=110_000)
    await lab.call_id(talking)
    await lab.app.wait_agent(first.agent_id, AgentState.BUSY, timeout_s=15)

    caller = await lab.cued_call(pcap=silence_pcap(lab.workdir), port=SIP_CALLER_PORT + 1)
    call_id = await lab.call_id(caller)
    announcement = await heard(observer, call_id, "sound:callcenter/you-are-next")
    assert media_of(announcement)[1] in ("sound:callcenter/wait-between", "sound:callcenter/wait-less-than")
    offer = await heard(observer, call_id, "sound:callcenter/offer-keep-place")
    assert "sound:callcenter/press-1" in media_of(offer)
    assert "sound:callcenter/offer-later" not in media_of(offer), "no schedules: no later slots offered"

    await caller.press("1")  # keep my place
    read_back = await heard(observer, call_id, "sound:callcenter/we-will-call")
    assert f"digits:{caller.number}" in media_of(read_back), media_of(read_back)
    await caller.press("1")  # that number is right

    promise = await heard(observer, call_id, "sound:callcenter/confirm-by")
    assert media_of(promise)[-1] == "sound:callcenter/goodbye"
    assert await caller.finished() == "REMOTE_BYE", "the app hangs up after the goodbye"
    call = await lab.app.decided(call_id, timeout_s=15)
    assert (call["outcome"], call["caller"], call["agent_id"]) == (
        "callback_requested",
        caller.stored_number,
        None,
    )
    assert "callback_accepted" in [e["kind"] for e in call["events"]]
    assert (await lab.one_call_ended(call_id)).outcome == "callback_requested"

    status, page = await lab.app.get("/callbacks", queue=QUEUE)
    assert status == 200, page
    [callback] = page["items"]
    assert (callback["kind"], callback["state"], callback["number"]) == (
        "keep_place",
        "requested",
        caller.stored_number,
    )
    assert callback["call_id"] == call_id and callback["enqueued_at"] == call["queued_at"]
    assert await lab.app.agent_state(first.agent_id) is AgentState.BUSY, "the first call goes on"


async def test_given_caller_hearing_the_offer_when_an_agent_answers_then_the_prompt_stops_before_the_conversation(
    lab: Lab, observer: AriObserver
) -> None:
    await lab.app.put_queue(PATIENT_QUEUE)
    await lab.app.answered_history(QUEUE)
    first = lab.phones[0]
    await lab.phone(first, ring_ms=500)
    await lab.login(first)
    talking = await lab.call(hold_ms=110_000)
    talking_id = await lab.call_id(talking)
    await lab.app.wait_agent(first.agent_id, AgentState.BUSY, timeout_s=15)
    caller = await lab.cued_call(pcap=silence_pcap(lab.workdir), port=SIP_CALLER_PORT + 1)
    call_id = await lab.call_id(caller)

    def menu_started() -> bool:
        return any(
            media_of(events)[:1] == ["sound:callcenter/offer-keep-place"]
            for events in playbacks(observer, call_id).values()
        )

    await eventually(menu_started, timeout_s=40, what="the offer playing")
    # The first caller hangs up: the agent wraps up (1 s) and is rung for this caller while the
    # offer (about 10 s: "... by about 2 25 p m, press 1. Or stay on the line ...") still plays.
    await lab.ari.hang_up(talking_id)
    leg: list[str] = []

    async def bridged() -> bool:
        leg[:] = await lab.ari.legs_of(first)
        mixing = await lab.ari.bridge_of(call_id, "mixing")
        return bool(leg) and mixing is not None and set(mixing["channels"]) == {call_id, leg[0]}

    await eventually(bridged, timeout_s=20, what="the caller put through to the agent")
    [menu] = [
        e
        for e in playbacks(observer, call_id).values()
        if media_of(e)[:1] == ["sound:callcenter/offer-keep-place"]
    ]

    def menu_over() -> bool:
        return menu[-1]["type"] == "PlaybackFinished"

    await eventually(menu_over, what="the offer stopped")
    assert "sound:callcenter/offer-stay" not in media_of(menu), "the rest of the offer is never played"
    started = [e for e in observer.of_channel(call_id) if e["type"] == "PlaybackStarted"]
    assert started[-1]["playback"]["id"] == menu[0]["playback"]["id"], "nothing plays after the offer"
    await lab.ari.hang_up(call_id)
    call = await lab.app.decided(call_id)
    assert (call["outcome"], call["agent_id"]) == ("answered", first.agent_id)
    status, page = await lab.app.get("/callbacks", queue=QUEUE)
    assert status == 200 and page["items"] == [], page


# ---------------------------------------------------------------------------------------------
# The dispatcher, agent first
# ---------------------------------------------------------------------------------------------


def _dispatch(app: RunningApp) -> DispatchRuntime:
    assert app.services.dispatch is not None
    return app.services.dispatch


async def _state(app: RunningApp, callback_id: str, *states: CallbackState, timeout_s: float = 40.0) -> Any:
    store = _dispatch(app).store

    async def reached() -> bool:
        return (await store.get(callback_id)).state in states

    await eventually(reached, timeout_s=timeout_s, what=f"callback {callback_id} in {states}")
    return await store.get(callback_id)


async def _due_follow_up(app: RunningApp) -> tuple[str, str]:
    """A follow-up due now for a number no other call of the run uses: (callback id, E.164 number)."""
    dispatch = _dispatch(app)
    assert dispatch.link is not None
    await dispatch.link.wait_up(10.0)
    number = "+" + new_caller_number()
    sourced = await dispatch.sources.follow_up("boss", QUEUE, number, at=app.services.clock.now(), note="lab")
    return sourced.callback.id, number


async def test_given_a_due_callback_when_agent_and_customer_answer_and_customer_presses_1_then_bridged_connected_and_completed(
    lab: Lab, observer: AriObserver
) -> None:
    await lab.app.put_queue(PATIENT_QUEUE)
    first = lab.phones[0]
    agent_phone = await lab.phone(first, ring_ms=500)
    customer = await lab.customer_phone(key_pcap=key_1_pcap(lab.workdir), ring_ms=500)
    await lab.login(first)
    callback_id, number = await _due_follow_up(lab.app)
    attempt_id = f"{callback_id}.a1"
    customer_leg = customer_channel_id(attempt_id)

    # The agent answers first and hears who it is (the whisper), then the customer is dialled.
    await eventually(lambda: customer.sipp.count("ANSWERED") == 1, timeout_s=30, what="the customer answered")
    assert agent_phone.count("ANSWERED") == 1
    assert await lab.app.agent_state(first.agent_id) is AgentState.PAUSED, "the agent is on the callback"
    [agent_leg] = [c for c in observer.channels_named(first.endpoint + "-")]
    whisper = [media for events in playbacks(observer, agent_leg).values() for media in media_of(events)]
    assert f"digits:{number[-4:]}" in whisper, whisper
    assert "sound:callcenter/whisper-follow-up" in whisper, "the agent hears why (rendered prompts)"
    invite = (lab.workdir / "customer.msg").read_text(errors="replace")
    assert f"<sip:{BUSINESS}@" in invite, "the customer sees the queue's business number"

    def confirmation_started() -> bool:
        return any(
            media_of(events)[:1] == [CONFIRM_MEDIA] for events in playbacks(observer, customer_leg).values()
        )

    await eventually(confirmation_started, what="the confirmation playing to the customer")
    await customer.press_1()
    connected = await _state(lab.app, callback_id, S.CONNECTED)
    assert connected.attempts == 1

    async def bridged() -> bool:
        mixing = await lab.ari.bridge_of(customer_leg, "mixing")
        return mixing is not None and set(mixing["channels"]) == {customer_leg, agent_leg}

    await eventually(bridged, what="the agent and the customer in one mixing bridge")

    await customer.hang_up()
    await _state(lab.app, callback_id, S.COMPLETED)
    [attempt] = await _dispatch(lab.app).store.attempts(callback_id)
    assert (attempt.result, attempt.agent_id) == (AttemptResult.CONNECTED, first.agent_id)
    assert attempt.customer_dialled_at is not None
    changes = await _dispatch(lab.app).store.changes(callback_id)
    assert [c.state for c in changes] == [S.REQUESTED, S.SCHEDULED, S.DIALING, S.CONNECTED, S.COMPLETED]
    await eventually(lambda: agent_phone.count("REMOTE_BYE") == 1, what="the agent's leg hung up by the app")
    await lab.app.wait_agent(first.agent_id, AgentState.AVAILABLE, timeout_s=15)


@pytest.mark.skipif(not SPOOL_DIR, reason="CALLCENTER_TEST_SPOOL_DIR is not set (a folder Asterisk reads)")
@pytest.mark.skipif(not corpus.available(), reason=corpus.MISSING)
@pytest.mark.parametrize(
    "app_overrides",
    [
        SETTINGS
        | {
            "voicemail_spool_dir": SPOOL_DIR,
            "voicemail_transcribe_processes": "0",
            "dispatch_preview_s": "4",
        }
    ],
    ids=["shared-spool"],
)
async def test_given_a_voicemail_callback_when_the_agent_answers_then_the_whisper_plays_the_start_of_the_message(
    lab: Lab, observer: AriObserver
) -> None:
    """The agent hears the caller's own first words after the reason: a WAV the app wrote to the
    folder it shares with Asterisk, played as ``sound:<absolute path>`` in the whisper's media list."""
    await lab.app.put_queue(PATIENT_QUEUE)
    first = lab.phones[0]
    agent_phone = await lab.phone(first, ring_ms=500)
    customer = await lab.customer_phone(key_pcap=key_1_pcap(lab.workdir), ring_ms=500)
    voicemails = lab.app.services.voicemails
    assert voicemails is not None
    number = "+" + new_caller_number()
    pcm = corpus.join([corpus.prompts()["cannot-complete-as-dialed"]], [2.0, 1.0])
    left = lab.app.services.clock.now()
    voicemail = await voicemails.store_recording(
        corpus.telephone(lab.workdir / "message.ulaw.wav", pcm),
        suffix=".wav",
        call_id=f"lab-{number}",
        queue=QUEUE,
        caller=number,
        duration_s=len(pcm) / corpus.RATE,
        recorded_at=left,
    )
    dispatch = _dispatch(lab.app)
    assert dispatch.link is not None
    await dispatch.link.wait_up(10.0)
    await lab.login(first)
    made = await dispatch.sources.from_voicemail(QUEUE, number, voicemail_id=voicemail.id, left_at=left)
    callback_id = made.callback.id
    preview = f"sound:{Path(SPOOL_DIR) / f'callcenter-preview-{voicemail.id}'}"

    await eventually(lambda: customer.sipp.count("ANSWERED") == 1, timeout_s=40, what="the customer answered")
    [agent_leg] = [c for c in observer.channels_named(first.endpoint + "-")]
    events = await heard(observer, agent_leg, "sound:callcenter/whisper-callback")
    played = media_of(events)
    assert played[:3] == [
        "sound:callcenter/whisper-callback",
        f"digits:{number[-4:]}",
        "sound:callcenter/whisper-voicemail",
    ]
    assert played[3] == preview, f"the caller's own words after the reason: {played}"
    # A missing file in the middle of a list is skipped at once (PlaybackContinuing in the same
    # millisecond); a played one lasts about its length (at least a second here).
    item = [e for e in events if e["playback"]["media_uri"] == preview]
    started, ended = item[0]["timestamp"], item[-1]["timestamp"]
    assert [e["type"] for e in item] == ["PlaybackStarted", "PlaybackContinuing"], item
    assert datetime.fromisoformat(ended) - datetime.fromisoformat(started) >= timedelta(seconds=1), item

    await customer.press_1()
    await _state(lab.app, callback_id, S.CONNECTED)
    await customer.hang_up()
    await _state(lab.app, callback_id, S.COMPLETED)
    await eventually(lambda: agent_phone.count("REMOTE_BYE") == 1, what="the agent's leg hung up by the app")
    await lab.app.wait_agent(first.agent_id, AgentState.AVAILABLE, timeout_s=15)


#: A confirmation of about 12 s ("press 1." and the voicemail greeting twice): pressed at its start.
LONG_CONFIRM: Final = f"{CONFIRM_MEDIA},sound:vm-intro,sound:vm-intro"


@pytest.mark.parametrize(
    "app_overrides", [SETTINGS | {"dispatch_confirm_media": LONG_CONFIRM}], ids=["long-confirmation"]
)
async def test_given_a_long_confirmation_when_the_customer_presses_1_at_once_then_it_stops_and_they_are_put_through(
    lab: Lab, observer: AriObserver
) -> None:
    """Asterisk adds a channel to a bridge only after the playback running on it ends (seen on 20.20.1:
    ``addChannel`` answered 5 s later, when the prompt ended): the dispatcher stops the confirmation
    when the customer presses 1, so they do not hear the rest and the bridge is made at once."""
    await lab.app.put_queue(PATIENT_QUEUE)
    first = lab.phones[0]
    await lab.phone(first, ring_ms=500)
    customer = await lab.customer_phone(key_pcap=key_1_pcap(lab.workdir), ring_ms=500)
    await lab.login(first)
    callback_id, _ = await _due_follow_up(lab.app)
    customer_leg = customer_channel_id(f"{callback_id}.a1")

    def confirmation() -> list[dict[str, Any]]:
        return next(
            (e for e in playbacks(observer, customer_leg).values() if media_of(e)[:1] == [CONFIRM_MEDIA]), []
        )

    await eventually(lambda: bool(confirmation()), timeout_s=30, what="the confirmation playing")
    await customer.press_1()
    await _state(lab.app, callback_id, S.CONNECTED, timeout_s=20)
    await eventually(lambda: confirmation()[-1]["type"] == "PlaybackFinished", what="the confirmation over")
    assert media_of(confirmation()).count("sound:vm-intro") <= 1, "the rest of the confirmation is not played"
    [attempt] = await _dispatch(lab.app).store.attempts(callback_id)
    assert attempt.result is AttemptResult.CONNECTED, attempt
    mixing = await lab.ari.bridge_of(customer_leg, "mixing")
    assert mixing is not None and len(mixing["channels"]) == 2
    await customer.hang_up()
    await _state(lab.app, callback_id, S.COMPLETED)


@pytest.mark.parametrize(
    "app_overrides",
    [SETTINGS | {"dispatch_confirm_s": "3", "dispatch_max_attempts": "1"}],
    ids=["confirm-3s-one-attempt"],
)
async def test_given_a_due_callback_when_the_customer_presses_nothing_then_machine_and_both_hung_up(
    lab: Lab, observer: AriObserver
) -> None:
    await lab.app.put_queue(PATIENT_QUEUE)
    first = lab.phones[0]
    agent_phone = await lab.phone(first, ring_ms=500)
    customer = await lab.customer_phone(key_pcap=key_1_pcap(lab.workdir), ring_ms=500)
    await lab.login(first)
    callback_id, _ = await _due_follow_up(lab.app)

    failed = await _state(lab.app, callback_id, S.FAILED)
    assert failed.last_result is AttemptResult.MACHINE
    [attempt] = await _dispatch(lab.app).store.attempts(callback_id)
    assert attempt.result is AttemptResult.MACHINE and "no key" in attempt.cause, attempt
    customer_leg = customer_channel_id(f"{callback_id}.a1")
    assert any(
        media_of(events)[:1] == [CONFIRM_MEDIA] for events in playbacks(observer, customer_leg).values()
    )
    assert customer.sipp.count("ANSWERED") == 1 and customer.sipp.count("KEY_SENT") == 0
    await eventually(lambda: customer.sipp.count("REMOTE_BYE") == 1, what="the customer hung up by the app")
    await eventually(lambda: agent_phone.count("REMOTE_BYE") == 1, what="the agent hung up by the app")
    await lab.app.wait_agent(first.agent_id, AgentState.AVAILABLE, timeout_s=15)


@pytest.mark.parametrize(
    ("app_overrides", "line", "result", "cause"),
    [
        (SETTINGS | {"dispatch_customer_ring_s": "4"}, "busy", AttemptResult.BUSY, "(cause 17)"),
        (SETTINGS | {"dispatch_customer_ring_s": "4"}, "silent", AttemptResult.NO_ANSWER, "(cause 19)"),
    ],
    ids=["busy-486", "no-answer"],
)
async def test_given_a_due_callback_when_the_customer_is_busy_or_does_not_answer_then_retried_later(
    lab: Lab, line: str, result: AttemptResult, cause: str
) -> None:
    await lab.app.put_queue(PATIENT_QUEUE)
    first = lab.phones[0]
    agent_phone = await lab.phone(first, ring_ms=500)
    customer = await lab.customer_line(line)
    await lab.login(first)
    callback_id, _ = await _due_follow_up(lab.app)

    waiting = await _state(lab.app, callback_id, S.RETRY_WAIT)
    assert waiting.last_result is result, waiting
    [attempt] = await _dispatch(lab.app).store.attempts(callback_id)
    assert (attempt.result, attempt.agent_id) == (result, first.agent_id)
    assert attempt.cause.endswith(cause), attempt.cause  # what chan_sip reports: 486 -> 17, ring out -> 19
    assert customer.count("INVITE received") == 1
    if line == "silent":
        await eventually(lambda: customer.count("CANCELLED while ringing") == 1, what="the ringing cancelled")
    await eventually(lambda: agent_phone.count("REMOTE_BYE") == 1, what="the agent hung up by the app")
    await lab.app.wait_agent(first.agent_id, AgentState.AVAILABLE, timeout_s=15)
