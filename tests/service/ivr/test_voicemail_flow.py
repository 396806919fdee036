"""The voicemail flow over a scripted VoiceChannel: what the caller hears, when the outcome is reported."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from callcenter.errors import CallCenterError
from ivr.channel import ChannelHungUpError, Media, Recording
from ivr.voicemail import GREETING, NOT_RECORDED, SAVED, VoicemailFlow, take_message


@dataclass
class ScriptedVoiceChannel:
    """A ``VoiceChannel`` that logs what it was asked and hangs up where told."""

    hang_up_during: str | None = None  # "greeting" or "recording"
    record_fails: bool = False  # Asterisk refuses to record (RecordingFailed, or an error answer)
    ended_by: str = "silence"
    log: list[str] = field(default_factory=list)
    gone: bool = False

    async def play(self, *media: Media) -> None:
        if self.gone:
            raise ChannelHungUpError("gone")
        self.log.append("play " + ",".join(m.value for m in media))
        if self.hang_up_during == "greeting" and media == GREETING:
            self.gone = True

    async def get_digits(self, max_digits: int, timeout_s: float) -> str:
        raise AssertionError("the flow reads no digits")

    async def record(
        self, name: str, max_s: float, max_silence_s: float, *, beep: bool = True, terminate_on: str = "#"
    ) -> Recording:
        if self.gone:
            raise ChannelHungUpError("gone")
        self.log.append(
            f"record {name} max={max_s:g} silence={max_silence_s:g} beep={beep} end={terminate_on}"
        )
        if self.record_fails:
            raise CallCenterError("Cannot record channel while in bridge")
        if self.hang_up_during == "recording":
            self.gone = True
            return Recording(name=name, duration_s=7.5, ended_by="hangup")
        return Recording(name=name, duration_s=7.5, ended_by=self.ended_by)

    async def set_var(self, name: str, value: str) -> None:
        raise AssertionError("not used")

    async def get_var(self, name: str) -> str | None:
        raise AssertionError("not used")

    async def hangup(self) -> None:
        if self.gone:
            raise ChannelHungUpError("gone")
        self.log.append("hangup")
        self.gone = True

    async def continue_in_dialplan(self) -> None:
        raise AssertionError("not used")


FLOW = VoicemailFlow(max_s=90, max_silence_s=4)


async def _take(
    channel: ScriptedVoiceChannel, reported: list[str] | None = None
) -> tuple[Recording | None, list[str]]:
    reported = [] if reported is None else reported

    async def on_record() -> None:
        if channel.gone:
            raise ChannelHungUpError("gone before the beep")
        reported.append("recording starts")

    async def on_not_recorded() -> None:
        reported.append("not recorded")

    recording = await take_message(
        channel, "vm-1", FLOW, on_record=on_record, on_not_recorded=on_not_recorded
    )
    return recording, reported


@pytest.mark.parametrize("ended_by", ["silence", "dtmf", "max_length"])
async def test_greeting_beep_record_thanks_and_hang_up(ended_by: str) -> None:
    channel = ScriptedVoiceChannel(ended_by=ended_by)
    recording, reported = await _take(channel)
    assert recording == Recording(name="vm-1", duration_s=7.5, ended_by=ended_by)
    assert reported == ["recording starts"]
    assert channel.log == [
        "play vm-intro",
        "record vm-1 max=90 silence=4 beep=True end=#",
        "play " + ",".join(m.value for m in SAVED),
        "hangup",
    ]


async def test_a_caller_hanging_up_to_end_the_message_keeps_it() -> None:
    channel = ScriptedVoiceChannel(hang_up_during="recording")
    recording, reported = await _take(channel)
    assert recording is not None and recording.ended_by == "hangup"
    assert reported == ["recording starts"]
    assert channel.log[-1].startswith("record vm-1")


async def test_a_caller_gone_during_the_greeting_leaves_no_message_and_no_outcome() -> None:
    channel = ScriptedVoiceChannel(hang_up_during="greeting")
    recording, reported = await _take(channel)
    assert recording is None and reported == []
    assert channel.log == ["play vm-intro"]


async def test_when_asterisk_cannot_record_the_caller_hears_an_apology_and_no_message_is_claimed() -> None:
    channel = ScriptedVoiceChannel(record_fails=True)
    reported: list[str] = []
    with pytest.raises(CallCenterError, match="Cannot record"):
        await _take(channel, reported)
    # The outcome said "voicemail" as the recording started; it is taken back before the caller goes.
    assert reported == ["recording starts", "not recorded"]
    assert channel.log[0] == "play vm-intro" and channel.log[1].startswith("record vm-1")
    assert channel.log[2:] == ["play " + ",".join(m.value for m in NOT_RECORDED), "hangup"]
    assert NOT_RECORDED != SAVED, "never 'your message has been saved'"
