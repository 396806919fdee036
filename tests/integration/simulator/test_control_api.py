"""The simulator's Python control API: calls, digits, hang-ups, endpoints, dialplan, time modes."""

from __future__ import annotations

import wave
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from callcenter.simulator import PbxChange, SimulatedAsterisk, SimulatorError
from tests.conftest import FakeClock
from tests.integration.simulator.ari_client import BASIC, PASSWORD, USER, Ari
from tests.integration.simulator.conftest import AiohttpClient

pytestmark = pytest.mark.integration


def _types(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


async def test_incoming_call_without_a_connected_app_fails_in_the_dialplan_and_reaches_nobody(
    sim: SimulatedAsterisk,
) -> None:
    channel_id = sim.incoming_call("+14155550100", exten="3000", app_args=["sales"])

    assert not channel_id.entered_stasis
    assert channel_id not in sim.channels
    visited = [(v.priority, v.app, v.data) for v in sim.dialplan_log if v.channel_id == channel_id]
    assert visited == [(1, "NoOp", ""), (2, "Answer", ""), (3, "Stasis", "callcenter,sales")]


async def test_incoming_call_reaches_stasis_with_caller_and_queue(ari: Ari, sim: SimulatedAsterisk) -> None:
    stream = await ari.events()
    channel_id = sim.incoming_call("+14155550100", caller_name="Ada", exten="3000", app_args=["sales"])
    assert channel_id.entered_stasis
    [start] = await stream.sync(sim)
    assert start["type"] == "StasisStart" and start["args"] == ["sales"]
    assert start["channel"]["caller"] == {"name": "Ada", "number": "+14155550100"}
    assert start["channel"]["dialplan"] == {
        "context": "incoming",
        "exten": "3000",
        "priority": 3,
        "app_name": "Stasis",
        "app_data": "callcenter,sales",
    }
    assert start["channel"]["state"] == "Up"


async def test_endpoint_answer_delay_runs_on_virtual_time(ari: Ari, sim: SimulatedAsterisk) -> None:
    stream = await ari.events()
    sim.set_endpoint("PJSIP/agent1", answer_after_s=3.0)
    leg = (await ari.call("POST", "/ari/channels", {"endpoint": "PJSIP/agent1", "app": "callcenter"})).body
    assert leg["name"] == "PJSIP/agent1-00000000"

    await sim.advance(2.999)
    assert _types(await stream.sync(sim)) == ["Dial", "ChannelStateChange", "Dial"]
    await sim.advance(0.001)
    events = await stream.sync(sim)
    assert _types(events)[3:] == ["ChannelStateChange", "Dial", "ChannelVarset", "StasisStart"]
    assert events[-1]["channel"]["dialplan"]["app_data"] == "callcenter"


async def test_agent_rejecting_while_ringing_gives_dial_busy_then_destroyed(
    ari: Ari, sim: SimulatedAsterisk
) -> None:
    stream = await ari.events()
    sim.set_endpoint("PJSIP/agent1", behaviour="no_answer")
    leg = (await ari.call("POST", "/ari/channels", {"endpoint": "PJSIP/agent1", "app": "callcenter"})).body
    sim.hangup(leg["id"], cause=17)
    events = await stream.sync(sim)
    assert [(e["type"], e.get("dialstatus"), e.get("cause")) for e in events][-2:] == [
        ("Dial", "BUSY", None),
        ("ChannelDestroyed", None, 17),
    ]


async def test_digit_in_terminate_on_is_delivered_then_ends_the_recording_stored_as_wav(
    ari: Ari, sim: SimulatedAsterisk
) -> None:
    stream = await ari.events()
    channel_id = sim.incoming_call("sipp")
    speech = bytes(range(256)) * 200  # 1.6 s of 16-bit PCM the caller "says"
    sim.set_caller_audio(channel_id, talk_s=10, pcm=speech)
    params = {"name": "vm-1", "format": "wav", "terminateOn": "#", "maxSilenceSeconds": "2"}
    assert (await ari.call("POST", f"/ari/channels/{channel_id}/record", params)).status == 201
    await sim.advance(1.5)
    sim.press(channel_id, "#", duration_ms=120)

    events = await stream.sync(sim)
    assert _types(events) == ["StasisStart", "RecordingStarted", "ChannelDtmfReceived", "RecordingFinished"]
    assert events[-1]["recording"] == {
        "name": "vm-1",
        "format": "wav",
        "state": "done",
        "target_uri": f"channel:{channel_id}",
        "duration": 1,
        "talking_duration": 1,
        "silence_duration": 0,
    }
    wav = await ari.call("GET", "/ari/recordings/stored/vm-1/file")
    assert wav.headers["Content-Type"] == "audio/wav"
    assert wav.raw[44:] == speech[:24000]  # 1.5 s at 16000 bytes/s


async def test_hangup_during_a_recording_still_completes_it(ari: Ari, sim: SimulatedAsterisk) -> None:
    stream = await ari.events()
    channel_id = sim.incoming_call("sipp")
    await ari.call("POST", f"/ari/channels/{channel_id}/record", {"name": "vm-2", "format": "wav"})
    sim.hangup(channel_id)
    events = await stream.sync(sim)
    assert _types(events)[-3:] == ["ChannelHangupRequest", "RecordingFinished", "StasisEnd"]
    assert events[-2]["recording"]["state"] == "done"
    assert "vm-2" in sim.stored_recordings


async def test_recording_a_bridged_channel_fails_after_the_201(ari: Ari, sim: SimulatedAsterisk) -> None:
    stream = await ari.events()
    channel_id = sim.incoming_call("sipp")
    bridge = (await ari.call("POST", "/ari/bridges", {"type": "holding"})).body
    await ari.call("POST", f"/ari/bridges/{bridge['id']}/addChannel", {"channel": channel_id})
    reply = await ari.call("POST", f"/ari/channels/{channel_id}/record", {"name": "vm-3", "format": "wav"})
    assert reply.status == 201
    failed = (await stream.sync(sim))[-1]
    assert failed["type"] == "RecordingFailed"
    assert failed["recording"]["cause"] == "Cannot record channel while in bridge"


async def test_continue_without_a_matching_extension_hangs_up_out_of_the_apps_sight(
    ari: Ari, sim: SimulatedAsterisk
) -> None:
    stream = await ari.events()
    channel_id = sim.incoming_call("sipp")
    params = {"context": "after-hours", "extension": "s"}
    assert (await ari.call("POST", f"/ari/channels/{channel_id}/continue", params)).status == 204
    assert _types(await stream.sync(sim)) == ["StasisStart", "StasisEnd"]
    assert channel_id not in sim.channels
    assert [(v.context, v.exten) for v in sim.dialplan_log if v.channel_id == channel_id][-1] == (
        "after-hours",
        "s",
    )


async def test_destroying_an_occupied_bridge_lets_its_channels_leave_first(
    ari: Ari, sim: SimulatedAsterisk
) -> None:
    stream = await ari.events()
    channel_id = sim.incoming_call("sipp")
    bridge = (await ari.call("POST", "/ari/bridges", {"type": "mixing"})).body
    await ari.call("POST", f"/ari/bridges/{bridge['id']}/addChannel", {"channel": channel_id})
    assert (await ari.call("DELETE", f"/ari/bridges/{bridge['id']}")).status == 204
    assert _types(await stream.sync(sim))[-2:] == ["ChannelLeftBridge", "BridgeDestroyed"]
    assert sim.channels[channel_id].bridge_id is None


async def test_observers_see_bridge_membership(ari: Ari, sim: SimulatedAsterisk) -> None:
    seen: list[PbxChange] = []
    sim.observe(seen.append)
    await ari.events()
    channel_id = sim.incoming_call("sipp")
    bridge = (await ari.call("POST", "/ari/bridges", {"type": "holding"})).body
    await ari.call("POST", f"/ari/bridges/{bridge['id']}/addChannel", {"channel": channel_id})
    sim.hangup(channel_id)
    assert [(c.kind, c.bridge_id) for c in seen] == [
        ("stasis_start", None),
        ("entered_bridge", bridge["id"]),
        ("left_bridge", bridge["id"]),
        ("stasis_end", None),
        ("gone", None),
    ]


async def test_a_settable_clock_follows_virtual_time(clock: FakeClock, aiohttp_client: AiohttpClient) -> None:
    start = clock.now()
    sim = SimulatedAsterisk(users={USER: PASSWORD}, clock=clock)
    ari = Ari(sim, await aiohttp_client(sim.app, headers=BASIC))
    stream = await ari.events()
    await sim.advance(5.25)
    sim.incoming_call("sipp")
    [start_event] = await stream.sync(sim)
    assert clock.now() == start + timedelta(seconds=5.25)
    assert start_event["timestamp"] == (start + timedelta(seconds=5.25)).strftime(
        "%Y-%m-%dT%H:%M:%S.250+0000"
    )
    await ari.close()


async def test_realtime_mode_fires_timers_on_the_event_loop(aiohttp_client: AiohttpClient) -> None:
    sim = SimulatedAsterisk(users={USER: PASSWORD}, realtime=True)
    ari = Ari(sim, await aiohttp_client(sim.app, headers=BASIC))
    stream = await ari.events()
    sim.set_endpoint("PJSIP/agent1", answer_after_s=0.05)
    await ari.call("POST", "/ari/channels", {"endpoint": "PJSIP/agent1", "app": "callcenter"})
    await stream.wait_for(lambda: any(e["type"] == "StasisStart" for e in stream.events))
    with pytest.raises(SimulatorError):
        await sim.advance(1)
    await ari.close()


async def test_control_api_rejects_unknown_channels_and_bad_digits(ari: Ari, sim: SimulatedAsterisk) -> None:
    await ari.events()
    channel_id = sim.incoming_call("sipp")
    with pytest.raises(SimulatorError):
        sim.press(channel_id, "1x")
    with pytest.raises(SimulatorError):
        sim.hangup("no-such-channel")


# ---------------------------------------------------------------------------------------------
# Music on hold and sounds, as a real Asterisk 20.20.1 plays them
# ---------------------------------------------------------------------------------------------


async def test_bridge_music_stops_for_good_when_the_last_channel_leaves(
    ari: Ari, sim: SimulatedAsterisk
) -> None:
    """res_stasis.c bridge_moh_create: the announcer is a lonely channel; it leaves with the last caller."""
    stream = await ari.events()
    first, second = sim.incoming_call("sipp"), sim.incoming_call("sipp")
    bridge = (await ari.call("POST", "/ari/bridges", {"type": "holding"})).body
    await ari.call("POST", f"/ari/bridges/{bridge['id']}/addChannel", {"channel": first})
    assert (await ari.call("POST", f"/ari/bridges/{bridge['id']}/moh")).status == 204
    assert sim.hears_music(first)
    # The announcer is internal: ARI lists and reports only the caller (ari_answered_bridge).
    assert (await ari.call("GET", f"/ari/bridges/{bridge['id']}")).body["channels"] == [first]
    assert _types(await stream.sync(sim)) == ["StasisStart", "StasisStart", "ChannelEnteredBridge"]

    sim.hangup(first)

    assert [t for t in _types(await stream.sync(sim))[3:] if t != "ChannelVarset"] == [
        "ChannelHangupRequest",
        "ChannelLeftBridge",
        "StasisEnd",
    ], "no event says the announcer left"
    await ari.call("POST", f"/ari/bridges/{bridge['id']}/addChannel", {"channel": second})
    assert not sim.hears_music(second), "a later caller waits in silence"
    stop = await ari.call("DELETE", f"/ari/bridges/{bridge['id']}/moh")
    assert (stop.status, stop.body) == (409, {"message": "Bridge isn't playing music"})
    assert (await ari.call("POST", f"/ari/bridges/{bridge['id']}/moh")).status == 204
    assert sim.hears_music(second)


async def test_bridge_music_plays_on_while_a_caller_remains_and_stops_when_the_last_moves_out(
    ari: Ari, sim: SimulatedAsterisk
) -> None:
    await ari.events()
    first, second = sim.incoming_call("sipp"), sim.incoming_call("sipp")
    holding = (await ari.call("POST", "/ari/bridges", {"type": "holding"})).body["id"]
    mixing = (await ari.call("POST", "/ari/bridges", {"type": "mixing"})).body["id"]
    await ari.call("POST", f"/ari/bridges/{holding}/addChannel", {"channel": f"{first},{second}"})
    await ari.call("POST", f"/ari/bridges/{holding}/moh")

    sim.hangup(first)
    assert sim.hears_music(second)
    await ari.call("POST", f"/ari/bridges/{mixing}/addChannel", {"channel": second})

    assert sim.bridges[holding].moh_class is None and not sim.hears_music(second)


async def test_core_sounds_play_for_their_real_length_and_unknown_ones_fail_at_once(
    ari: Ari, sim: SimulatedAsterisk
) -> None:
    """Missing file: 201, then PlaybackStarted and PlaybackFinished "failed" in the same ms
    (WARNING res_stasis_playback.c: Playback failed for sound:...)."""
    stream = await ari.events()
    channel_id = sim.incoming_call("sipp")
    reply = await ari.call("POST", f"/ari/channels/{channel_id}/play", {"media": "sound:pls-try-call-later"})
    assert reply.status == 201
    events = (await stream.sync(sim))[1:]
    assert [(e["type"], e["playback"]["state"]) for e in events] == [
        ("PlaybackStarted", "playing"),
        ("PlaybackFinished", "failed"),
    ]
    assert events[0]["timestamp"] == events[1]["timestamp"]

    await ari.call("POST", f"/ari/channels/{channel_id}/play", {"media": "sound:tt-allbusy"})
    await sim.advance(8.96)
    assert _types(await stream.sync(sim))[3:] == ["PlaybackStarted"]
    await sim.advance(0.01)
    assert _types(await stream.sync(sim))[3:] == ["PlaybackStarted", "PlaybackFinished"]
    assert sim.heard(channel_id) == [
        ("sound:pls-try-call-later", "missing"),
        ("sound:tt-allbusy", "complete"),
    ]


async def test_a_sound_by_absolute_path_plays_the_file_for_its_length_and_a_missing_one_fails(
    ari: Ari, sim: SimulatedAsterisk, tmp_path: Path
) -> None:
    """``sound:/path/name`` plays ``/path/name.wav`` from Asterisk's disk (the whisper's voicemail
    preview) for as long as the file lasts; a file that is not there fails like any missing sound,
    even where unknown catalogue sounds are given a default length."""
    sim.default_sound_s = 0.5
    with wave.open(str(tmp_path / "preview.wav"), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\x00\x00" * 8000 * 2)  # 2 s
    stream = await ari.events()
    channel_id = sim.incoming_call("sipp")

    await ari.call("POST", f"/ari/channels/{channel_id}/play", {"media": f"sound:{tmp_path}/preview"})
    await sim.advance(1.99)
    assert _types(await stream.sync(sim))[1:] == ["PlaybackStarted"]
    await sim.advance(0.02)
    await ari.call("POST", f"/ari/channels/{channel_id}/play", {"media": f"sound:{tmp_path}/gone"})

    events = (await stream.sync(sim))[1:]
    assert [(e["type"], e["playback"]["state"]) for e in events] == [
        ("PlaybackStarted", "playing"),
        ("PlaybackFinished", "done"),
        ("PlaybackStarted", "playing"),
        ("PlaybackFinished", "failed"),
    ]
    assert sim.heard(channel_id) == [
        (f"sound:{tmp_path}/preview", "complete"),
        (f"sound:{tmp_path}/gone", "missing"),
    ]


async def test_a_missing_item_of_a_media_list_is_skipped_and_only_a_missing_last_item_fails_the_playback(
    ari: Ari, sim: SimulatedAsterisk
) -> None:
    """res_stasis_playback.c playback_final_update: a failed item that is not the last one continues."""
    stream = await ari.events()
    channel_id = sim.incoming_call("sipp")

    await ari.call("POST", f"/ari/channels/{channel_id}/play", {"media": "sound:nope,sound:im-sorry"})
    await sim.advance(1.03)
    await ari.call("POST", f"/ari/channels/{channel_id}/play", {"media": "sound:im-sorry,sound:nope"})
    await sim.advance(1.03)

    events = (await stream.sync(sim))[1:]
    assert [(e["type"], e["playback"]["media_uri"], e["playback"]["state"]) for e in events] == [
        ("PlaybackStarted", "sound:nope", "playing"),
        ("PlaybackContinuing", "sound:nope", "continuing"),
        ("PlaybackStarted", "sound:im-sorry", "playing"),
        ("PlaybackFinished", "sound:im-sorry", "done"),
        ("PlaybackStarted", "sound:im-sorry", "playing"),
        ("PlaybackContinuing", "sound:im-sorry", "continuing"),
        ("PlaybackStarted", "sound:nope", "playing"),
        ("PlaybackFinished", "sound:nope", "failed"),
    ]


async def test_what_a_caller_heard_records_cut_and_stopped_playbacks(
    ari: Ari, sim: SimulatedAsterisk
) -> None:
    await ari.events()
    channel_id = sim.incoming_call("sipp")
    await ari.call("POST", f"/ari/channels/{channel_id}/play/pb-1", {"media": "sound:tt-allbusy"})
    await sim.advance(1)
    await ari.call("DELETE", "/ari/playbacks/pb-1")
    await ari.call("POST", f"/ari/channels/{channel_id}/play", {"media": "sound:tt-allbusy"})
    await sim.advance(6)

    sim.hangup(channel_id)

    assert sim.heard(channel_id) == [("sound:tt-allbusy", "stopped"), ("sound:tt-allbusy", "cut")]


async def test_dialplan_playback_of_a_list_stops_at_the_first_missing_file(sim: SimulatedAsterisk) -> None:
    sim.add_extension("incoming", "700", [("Playback", "im-sorry&nope&tt-allbusy"), ("Hangup", "")])
    channel_id = sim.incoming_call("sipp", exten="700")

    await sim.advance(1.0)
    assert channel_id in sim.channels
    await sim.advance(0.03)
    assert channel_id not in sim.channels
