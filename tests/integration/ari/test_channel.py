"""A voice flow's channel over ARI (``AriChannel``), against the simulated Asterisk in virtual time."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import TypeVar

import pytest

from callcenter.ari.channel import AriChannel
from callcenter.ari.client import AriClient
from callcenter.ari.link import AriLink
from callcenter.ari.stasis import StasisDispatcher
from callcenter.queue.detection import CallArrived
from callcenter.simulator import SimulatedAsterisk
from ivr.channel import ChannelHungUpError, Media, MediaKind, Recording, VoiceChannel

from .conftest import APP, Links, RecordingSink, eventually

pytestmark = [pytest.mark.integration, pytest.mark.timeout(20)]

T = TypeVar("T")


@dataclass
class Rig:
    sim: SimulatedAsterisk
    client: AriClient
    dispatcher: StasisDispatcher
    sink: RecordingSink
    link: AriLink

    async def call(self, **kwargs: object) -> tuple[str, AriChannel]:
        """An inbound call in our application and its channel, created at its StasisStart."""
        channel_id = self.sim.incoming_call(**kwargs)  # type: ignore[arg-type]
        await eventually(
            lambda: any(isinstance(f, CallArrived) and f.call_id == channel_id for f in self.sink.facts),
            what="the call's StasisStart",
        )
        return channel_id, AriChannel(self.client, self.dispatcher, channel_id, poll_s=5)


@pytest.fixture
async def rig(links: Links, sim: SimulatedAsterisk, client: AriClient) -> AsyncIterator[Rig]:
    sink = RecordingSink()
    dispatcher = StasisDispatcher(sink, client)
    link = links.start(dispatcher.on_event, dispatcher.resync)
    await link.wait_up(5)
    yield Rig(sim, client, dispatcher, sink, link)


async def started(task: Awaitable[T]) -> asyncio.Task[T]:
    """Run ``task`` in the background and let it send its request."""
    running = asyncio.ensure_future(task)
    await asyncio.sleep(0)
    return running


async def finish(task: asyncio.Task[T]) -> T:
    async with asyncio.timeout(5):
        return await task


def _port(channel: AriChannel) -> VoiceChannel:
    return channel  # mypy checks the adapter against the port


# -- play ----------------------------------------------------------------------------------------


async def test_play_sends_one_media_list_and_returns_when_it_finished(rig: Rig) -> None:
    channel_id, channel = await rig.call()
    task = await started(
        channel.play(
            Media(MediaKind.SOUND, "hello-world"),
            Media(MediaKind.DIGITS, "12"),
            Media(MediaKind.NUMBER, "42"),
        )
    )
    await eventually(lambda: len(rig.sim.playbacks) == 1, what="the playback")
    (playback,) = rig.sim.playbacks.values()
    assert playback.media == ["sound:hello-world", "digits:12", "number:42"]
    await rig.sim.advance(2)  # hello-world (1.42 s) is done, the digits are still playing
    await asyncio.sleep(0.05)
    assert not task.done()
    await rig.sim.advance(5)
    await finish(task)
    assert rig.sim.playbacks == {}


async def test_a_failed_playback_is_logged_not_raised(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    rig.sim.set_sound("no-such-sound-file", None)
    _, channel = await rig.call()
    with caplog.at_level(logging.WARNING, logger="callcenter.ari.channel"):
        await finish(await started(channel.play(Media(MediaKind.SOUND, "no-such-sound-file"))))
    assert any("failed" in r.getMessage() and "no-such-sound-file" in r.getMessage() for r in caplog.records)


async def test_a_hang_up_during_play_raises_channel_hung_up(rig: Rig) -> None:
    channel_id, channel = await rig.call()
    task = await started(channel.play(Media(MediaKind.SOUND, "demo-congrats")))
    await eventually(lambda: len(rig.sim.playbacks) == 1, what="the playback")
    rig.sim.hangup(channel_id)
    with pytest.raises(ChannelHungUpError):
        await finish(task)
    with pytest.raises(ChannelHungUpError):
        await channel.set_var("AFTER", "x")
    await channel.hangup()  # already gone: no error


async def test_playing_to_a_channel_that_is_already_gone_raises_channel_hung_up(rig: Rig) -> None:
    channel_id, channel = await rig.call()
    rig.sim.hangup(channel_id)  # whether its events or the REST 404 tell first, the answer is the same
    with pytest.raises(ChannelHungUpError):
        await channel.play(Media(MediaKind.SOUND, "hello-world"))


# -- digits --------------------------------------------------------------------------------------


async def test_digits_pressed_during_a_prompt_count(rig: Rig) -> None:
    channel_id, channel = await rig.call()
    task = await started(channel.play(Media(MediaKind.SOUND, "hello-world")))
    await eventually(lambda: len(rig.sim.playbacks) == 1, what="the playback")
    rig.sim.press(channel_id, "12")  # DTMF does not stop an ARI playback
    await rig.sim.advance(2)
    await finish(task)
    assert await channel.get_digits(2, timeout_s=0.5) == "12"


async def test_get_digits_waits_for_digits_and_stops_at_the_maximum(rig: Rig) -> None:
    channel_id, channel = await rig.call()
    task = await started(channel.get_digits(3, timeout_s=2))
    rig.sim.press(channel_id, "4")
    await asyncio.sleep(0.05)
    assert not task.done()
    rig.sim.press(channel_id, "56")
    assert await finish(task) == "456"
    rig.sim.press(channel_id, "7")
    assert await finish(await started(channel.get_digits(1, timeout_s=2))) == "7"


async def test_get_digits_gives_up_after_the_timeout(rig: Rig) -> None:
    channel_id, channel = await rig.call()
    assert await channel.get_digits(1, timeout_s=0.05) == ""
    task = await started(channel.get_digits(4, timeout_s=0.2))
    rig.sim.press(channel_id, "9")
    assert await finish(task) == "9"  # no second digit within the inter-digit timeout


async def test_pound_ends_the_entry(rig: Rig) -> None:
    channel_id, channel = await rig.call()
    rig.sim.press(channel_id, "42#7")
    assert await finish(await started(channel.get_digits(6, timeout_s=1))) == "42"
    assert await channel.get_digits(1, timeout_s=0.5) == "7"


async def test_a_hang_up_while_waiting_for_digits_raises_channel_hung_up(rig: Rig) -> None:
    channel_id, channel = await rig.call()
    task = await started(channel.get_digits(4, timeout_s=5))
    rig.sim.hangup(channel_id)
    with pytest.raises(ChannelHungUpError):
        await finish(task)


# -- record --------------------------------------------------------------------------------------


async def record(rig: Rig, channel: AriChannel, **kwargs: object) -> asyncio.Task[Recording]:
    params: dict[str, object] = {"name": "vm-test", "max_s": 10.0, "max_silence_s": 2.0, **kwargs}
    task = await started(channel.record(**params))  # type: ignore[arg-type]
    await eventually(lambda: str(params["name"]) in rig.sim.live_recordings, what="the recording")
    return task


async def test_a_recording_ended_by_silence(rig: Rig) -> None:
    channel_id, channel = await rig.call()
    rig.sim.set_caller_audio(channel_id, talk_s=1.2)
    task = await record(rig, channel)
    await rig.sim.advance(4)  # beep 0.44 s + 1.2 s speech + 2 s silence
    result = await finish(task)
    assert result == Recording(name="vm-test", duration_s=1.0, ended_by="silence")
    request = [r for r in rig.sim.requests if r.path == f"/ari/channels/{channel_id}/record"][-1]
    assert request.query == {
        "name": "vm-test",
        "format": "wav",
        "maxDurationSeconds": "10",
        "maxSilenceSeconds": "2",
        "beep": "true",
        "terminateOn": "#",
        "ifExists": "overwrite",
    }
    assert "vm-test" in rig.sim.stored_recordings


async def test_a_recording_ended_by_its_maximum_length(rig: Rig) -> None:
    channel_id, channel = await rig.call()
    rig.sim.set_caller_audio(channel_id, talk_s=30)
    task = await record(rig, channel, max_s=4.0, max_silence_s=2.0)
    await rig.sim.advance(5)
    assert await finish(task) == Recording(name="vm-test", duration_s=4.0, ended_by="max_length")


async def test_a_recording_without_audio_ends_by_its_maximum_length(rig: Rig) -> None:
    """No RTP (the SIPp capture): silence detection never runs, duration 0, only the clock ends it."""
    _, channel = await rig.call()
    task = await record(rig, channel, max_s=4.0, max_silence_s=2.0)
    await rig.sim.advance(5)
    assert await finish(task) == Recording(name="vm-test", duration_s=0.0, ended_by="max_length")


async def test_a_recording_ended_by_the_key_and_the_key_is_not_a_menu_answer(rig: Rig) -> None:
    channel_id, channel = await rig.call()
    rig.sim.set_caller_audio(channel_id, talk_s=30)
    task = await record(rig, channel, max_silence_s=0.0)
    await rig.sim.advance(2.5)
    rig.sim.press(channel_id, "#")
    result = await finish(task)
    assert (result.ended_by, result.duration_s) == ("dtmf", 2.0)
    assert await channel.get_digits(1, timeout_s=0.05) == ""


async def test_a_hang_up_during_a_recording_returns_what_was_kept(rig: Rig) -> None:
    channel_id, channel = await rig.call()
    rig.sim.set_caller_audio(channel_id, talk_s=30)
    task = await record(rig, channel)
    await rig.sim.advance(3.6)  # beep, then 3.16 s recorded
    rig.sim.hangup(channel_id)
    assert await finish(task) == Recording(name="vm-test", duration_s=3.0, ended_by="hangup")
    assert "vm-test" in rig.sim.stored_recordings
    with pytest.raises(ChannelHungUpError):
        await channel.get_digits(1, timeout_s=0.05)


# -- variables, hang-up, continue -------------------------------------------------------------------


async def test_variables_set_read_and_unset(rig: Rig) -> None:
    _, channel = await rig.call(caller="+14155550100")
    await channel.set_var("CC_QUEUE", "sales")
    assert await channel.get_var("CC_QUEUE") == "sales"
    assert await channel.get_var("CC_NEVER_SET") is None
    assert await channel.get_var("CALLERID(num)") == "+14155550100"


async def test_hangup_ends_the_call_and_later_calls_raise(rig: Rig) -> None:
    channel_id, channel = await rig.call()
    await channel.hangup()
    assert channel_id not in rig.sim.channels
    await channel.hangup()  # twice is fine
    with pytest.raises(ChannelHungUpError):
        await channel.play(Media(MediaKind.SOUND, "hello-world"))


async def test_continue_hands_the_channel_back_and_it_is_no_longer_ours(rig: Rig) -> None:
    rig.sim.add_extension("incoming", "3000", [("NoOp", ""), ("Answer", ""), ("Stasis", APP), ("Wait", "10")])
    channel_id, channel = await rig.call()
    await channel.continue_in_dialplan()
    assert not rig.sim.channels[channel_id].in_stasis
    with pytest.raises(ChannelHungUpError, match="dialplan"):
        await channel.get_var("CC_QUEUE")


async def test_closing_the_channel_ends_its_subscription(rig: Rig) -> None:
    channel_id, channel = await rig.call()
    other = AriChannel(rig.client, rig.dispatcher, channel_id)
    with channel:
        assert rig.dispatcher.subscriber_count(channel_id) == 2
    assert rig.dispatcher.subscriber_count(channel_id) == 1
    other.close()
    assert rig.dispatcher.subscriber_count(channel_id) == 0


# -- events missed while the link was down ----------------------------------------------------------


async def test_a_playback_that_finished_while_the_link_was_down_ends_play_after_the_resync(rig: Rig) -> None:
    _, channel = await rig.call()
    task = await started(channel.play(Media(MediaKind.SOUND, "hello-world")))
    await eventually(lambda: len(rig.sim.playbacks) == 1, what="the playback")
    rig.sim.drop_websockets()
    await rig.sim.advance(2)  # PlaybackFinished is sent to nobody
    await finish(task)
    assert rig.link.connects == 2


async def test_a_recording_that_finished_while_the_link_was_down_is_returned_after_the_resync(
    rig: Rig,
) -> None:
    channel_id, channel = await rig.call()
    rig.sim.set_caller_audio(channel_id, talk_s=1.2)
    task = await record(rig, channel)
    rig.sim.drop_websockets()
    await rig.sim.advance(4)
    result = await finish(task)
    assert (result.name, result.ended_by) == ("vm-test", "silence")


async def test_a_caller_gone_while_the_link_was_down_raises_channel_hung_up_after_the_resync(
    rig: Rig,
) -> None:
    channel_id, channel = await rig.call()
    task = await started(channel.get_digits(1, timeout_s=5))
    rig.sim.drop_websockets()
    rig.sim.hangup(channel_id)  # its StasisEnd is sent to nobody
    with pytest.raises(ChannelHungUpError, match="link was down"):
        await finish(task)
