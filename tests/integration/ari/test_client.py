"""The ARI REST client's calls round-trip against the simulated Asterisk (shapes as Asterisk 20 sends them)."""

from __future__ import annotations

import pytest

from callcenter.ari.client import AriClient, AriRequestError
from callcenter.ari.events import PlaybackState, RecordingState
from callcenter.errors import ChannelGoneError, NotFoundError
from callcenter.simulator import SimulatedAsterisk

from .conftest import APP, EventLog, Links, eventually

pytestmark = [pytest.mark.integration, pytest.mark.timeout(20)]


@pytest.fixture
async def log(links: Links) -> EventLog:
    events = EventLog()
    await links.start(events.handle, events.resync).wait_up(5)
    return events


async def test_asterisk_info_application_and_endpoints(
    client: AriClient, sim: SimulatedAsterisk, log: EventLog
) -> None:
    info = await client.asterisk_info()
    assert info.version.startswith("20.") and info.startup_time is not None
    channel_id = sim.incoming_call()
    app = await client.get_application(APP)
    assert (app.name, app.channel_ids) == (APP, (channel_id,))
    sim.set_endpoint("PJSIP/alice")
    endpoint = await client.get_endpoint("PJSIP", "alice")
    assert (endpoint.technology, endpoint.resource, endpoint.channel_ids) == ("PJSIP", "alice", ())
    with pytest.raises(NotFoundError, match="Endpoint not found"):
        await client.get_endpoint("PJSIP", "nobody")


async def test_channels_bridges_and_music_on_hold(
    client: AriClient, sim: SimulatedAsterisk, log: EventLog
) -> None:
    first, second = sim.incoming_call(answered=False), sim.incoming_call()
    await client.ring(first)
    channel = await client.get_channel(first)
    assert channel.state.value == "Ring" and channel.dialplan.app_name == "Stasis"
    bridge = await client.create_bridge("mixing", name="talk")
    await client.add_channel(bridge.id, second)
    assert (await client.get_bridge(bridge.id)).channels == (second,)
    assert [b.id for b in await client.list_bridges()] == [bridge.id]
    await client.start_moh(bridge.id)
    await client.stop_moh(bridge.id)
    with pytest.raises(AriRequestError) as caught:
        await client.stop_moh(bridge.id)  # 409: not playing music
    assert caught.value.status == 409
    await client.remove_channel(bridge.id, second)
    assert (await client.get_bridge(bridge.id)).channels == ()
    await client.send_dtmf(second, "12")
    await client.destroy_bridge(bridge.id)
    with pytest.raises(NotFoundError):
        await client.get_bridge(bridge.id)
    await client.hangup(first, reason="busy")
    with pytest.raises(ChannelGoneError):
        await client.get_channel(first)


async def test_playbacks_vanish_once_stopped(
    client: AriClient, sim: SimulatedAsterisk, log: EventLog
) -> None:
    channel_id = sim.incoming_call()
    playback = await client.play(channel_id, ["sound:demo-congrats"], playback_id="pb-1")
    assert (playback.id, playback.state) == ("pb-1", PlaybackState.QUEUED)
    assert (await client.get_playback("pb-1")).state is PlaybackState.PLAYING
    await client.stop_playback("pb-1")
    with pytest.raises(NotFoundError, match="Playback not found"):
        await client.get_playback("pb-1")


async def test_recordings_live_stop_then_stored_file_then_delete(
    client: AriClient, sim: SimulatedAsterisk, log: EventLog
) -> None:
    channel_id = sim.incoming_call()
    sim.set_caller_audio(channel_id, talk_s=30)
    live = await client.record(channel_id, name="vm-stop", if_exists="overwrite")
    assert (live.name, live.format, live.channel_id) == ("vm-stop", "wav", channel_id)
    assert (await client.get_live_recording("vm-stop")).state is RecordingState.RECORDING
    await sim.advance(1.5)
    await client.stop_recording("vm-stop")
    with pytest.raises(NotFoundError):
        await client.get_live_recording("vm-stop")
    stored = await client.get_stored_recording("vm-stop")
    assert (stored.name, stored.format) == ("vm-stop", "wav")
    data = await client.get_recording_file("vm-stop")
    assert data[:4] == b"RIFF" and len(data) == 44 + 24_000  # 1.5 s of 16-bit 8 kHz PCM (no beep)
    with pytest.raises(AriRequestError, match="already exists") as caught:
        await client.record(channel_id, name="vm-stop", if_exists="fail")
    assert caught.value.status == 409
    await client.delete_stored_recording("vm-stop")
    with pytest.raises(NotFoundError, match="Recording not found"):
        await client.delete_stored_recording("vm-stop")

    await client.record(channel_id, name="vm-cancel")
    await client.cancel_recording("vm-cancel")  # the file is deleted too
    await eventually(lambda: "vm-cancel" not in sim.live_recordings, what="cancelled")
    with pytest.raises(NotFoundError):
        await client.get_stored_recording("vm-cancel")
