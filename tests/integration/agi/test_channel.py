"""``AgiChannel``: the VoiceChannel port over FastAGI, against the scripted AGI peer."""

from __future__ import annotations

import logging
from collections import deque

import pytest

from callcenter.agi.channel import AgiChannel
from callcenter.agi.protocol import AgiCommandError
from callcenter.simulator.agi_peer import AgiCallModel, AgiPeer
from ivr.channel import ChannelHungUpError, Media, MediaKind, Recording, VoiceChannel
from tests.integration.agi.conftest import run_on_channel

pytestmark = [pytest.mark.integration, pytest.mark.timeout(30)]

SOUND = Media(MediaKind.SOUND, "queue-thankyou")


def _peer(**model: object) -> AgiPeer:
    digits = model.pop("digits", "")
    assert isinstance(digits, str)
    return AgiPeer("ivr", model=AgiCallModel(digits=deque(digits), **model))  # type: ignore[arg-type]


def test_agi_channel_is_a_voice_channel() -> None:
    def check(channel: AgiChannel) -> VoiceChannel:
        return channel  # mypy checks the structural match

    assert callable(check)


# -- play ----------------------------------------------------------------------------------------


async def test_play_streams_sounds_and_says_digits_and_numbers_in_order() -> None:
    peer = _peer()

    async def flow(channel: AgiChannel) -> None:
        await channel.play(SOUND, Media(MediaKind.DIGITS, "042"), Media(MediaKind.NUMBER, "17"))

    assert await run_on_channel(flow, peer) is None
    assert peer.commands == [
        ["STREAM", "FILE", "queue-thankyou", "0123456789*#"],
        ["SAY", "DIGITS", "042", "0123456789*#"],
        ["SAY", "NUMBER", "17", "0123456789*#"],
    ]


async def test_a_key_during_a_prompt_stops_it_and_counts_as_the_first_digit() -> None:
    peer = _peer(digits="1")

    async def flow(channel: AgiChannel) -> str:
        await channel.play(SOUND, Media(MediaKind.SOUND, "more"))
        return await channel.get_digits(1, timeout_s=5)

    assert await run_on_channel(flow, peer) == "1"
    assert [c[:3] for c in peer.commands] == [["STREAM", "FILE", "queue-thankyou"]]  # "more" skipped


async def test_a_missing_sound_file_is_logged_and_the_flow_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    peer = _peer(missing_sounds=frozenset({"nope"}))

    async def flow(channel: AgiChannel) -> None:
        await channel.play(Media(MediaKind.SOUND, "nope"), SOUND)

    with caplog.at_level(logging.WARNING):
        assert await run_on_channel(flow, peer) is None
    assert [c[0] for c in peer.commands] == ["STREAM", "CHANNEL", "STREAM"]
    assert "did not play" in caplog.text


async def test_a_hang_up_during_a_prompt_raises_channel_hung_up() -> None:
    peer = _peer(hangup_on="STREAM FILE")

    async def flow(channel: AgiChannel) -> None:
        await channel.play(SOUND, SOUND)

    error = await run_on_channel(flow, peer)

    assert isinstance(error, ChannelHungUpError)
    assert not peer.failure  # a hung-up caller is not handed back with FAILURE


# -- get_digits ----------------------------------------------------------------------------------


async def test_get_digits_waits_for_each_digit_and_hash_ends_the_entry() -> None:
    peer = _peer(digits="42#9")

    async def flow(channel: AgiChannel) -> str:
        return await channel.get_digits(4, timeout_s=2.5)

    assert await run_on_channel(flow, peer) == "42"
    assert peer.commands == [["WAIT", "FOR", "DIGIT", "2500"]] * 3


async def test_get_digits_returns_empty_on_timeout() -> None:
    peer = _peer()

    async def flow(channel: AgiChannel) -> str:
        return await channel.get_digits(3, timeout_s=1)

    assert await run_on_channel(flow, peer) == ""


async def test_get_digits_stops_at_max_digits() -> None:
    peer = _peer(digits="12345")

    async def flow(channel: AgiChannel) -> str:
        return await channel.get_digits(3, timeout_s=1)

    assert await run_on_channel(flow, peer) == "123"


async def test_a_hang_up_while_waiting_for_a_digit_raises() -> None:
    peer = _peer(hangup_on="WAIT FOR DIGIT")

    async def flow(channel: AgiChannel) -> str:
        return await channel.get_digits(1, timeout_s=1)

    assert isinstance(await run_on_channel(flow, peer), ChannelHungUpError)


# -- record --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("end", "samples", "max_silence_s", "ended_by"),
    [
        ("timeout", 16000, 3.0, "silence"),  # 2 s kept of 60 s: silence ended it
        ("timeout", 8000 * 58, 3.0, "max_length"),  # 58 s kept: the limit ended it
        ("timeout", 16000, 0.0, "max_length"),  # no silence detection: only the limit can end it
        ("dtmf", 24000, 3.0, "dtmf"),
        ("hangup", 32000, 3.0, "hangup"),  # a voicemail that ends with the caller hanging up
    ],
)
async def test_record_says_how_the_recording_ended(
    end: str, samples: int, max_silence_s: float, ended_by: str
) -> None:
    peer = _peer(record_end=end, record_samples=samples, digits="#")

    async def flow(channel: AgiChannel) -> Recording:
        return await channel.record("vm-1", 60, max_silence_s)

    recording = await run_on_channel(flow, peer)

    assert recording == Recording(name="vm-1", duration_s=samples / 8000, ended_by=ended_by)
    silence = ["s=3"] if max_silence_s else []
    assert peer.commands[0] == ["RECORD", "FILE", "vm-1", "wav", "#", "60000", "BEEP", *silence]


async def test_a_hang_up_before_anything_was_recorded_raises() -> None:
    peer = _peer(record_end="hangup", record_samples=0)

    async def flow(channel: AgiChannel) -> Recording:
        return await channel.record("vm-1", 60, 3, beep=False, terminate_on="none")

    assert isinstance(await run_on_channel(flow, peer), ChannelHungUpError)
    assert peer.commands[0] == ["RECORD", "FILE", "vm-1", "wav", "", "60000", "s=3"]


async def test_a_recording_asterisk_cannot_write_is_an_error() -> None:
    peer = AgiPeer(
        "ivr", rules=[lambda line, argv: ["200 result=-1 (writefile)"] if argv[0] == "RECORD" else None]
    )

    async def flow(channel: AgiChannel) -> Recording:
        return await channel.record("vm-1", 10, 0)

    error = await run_on_channel(flow, peer)
    assert isinstance(error, AgiCommandError) and "writefile" in str(error)
    assert peer.failure  # the caller is still there: handed back to the dialplan


async def test_record_refuses_an_unknown_terminating_key() -> None:
    async def flow(channel: AgiChannel) -> Recording:
        return await channel.record("vm-1", 10, 0, terminate_on="5")

    assert isinstance(await run_on_channel(flow, _peer()), ValueError)


# -- variables -----------------------------------------------------------------------------------


async def test_set_and_get_variables_round_trip_hostile_values() -> None:
    hostile = 'Eve "the" \\ (caller)\nHANGUP\n200 result=1 (x)'
    peer = AgiPeer(
        "ivr",
        model=AgiCallModel(variables={"CALLERID(name)": hostile, "QUEUE_MEMBER(support,free)": "2"}),
        env={"agi_calleridname": "Eve"},  # the block itself: see test_server's injection test
    )

    async def flow(channel: AgiChannel) -> tuple[str | None, str | None, str | None]:
        await channel.set_var("CC_NOTE", hostile)
        name = await channel.get_var("CALLERID(name)")
        free = await channel.get_var("QUEUE_MEMBER(support,free)")
        unset = await channel.get_var("NOT_SET")
        return name, free, unset

    assert await run_on_channel(flow, peer) == (hostile, "2", None)
    # One SET VARIABLE and three reads: the line breaks added no command and spoiled no reply.
    assert [c[:2] for c in peer.commands] == [["SET", "VARIABLE"]] + [["GET", "FULL"]] * 3
    assert peer.model.variables["CC_NOTE"] == hostile.replace("\n", " ")


async def test_a_variable_name_that_is_an_expression_is_refused() -> None:
    async def flow(channel: AgiChannel) -> str | None:
        return await channel.get_var("${SHELL(rm -rf /)}")

    assert isinstance(await run_on_channel(flow, _peer()), ValueError)


# -- hangup, continue, refusals ------------------------------------------------------------------


async def test_hangup_then_every_method_raises_channel_hung_up() -> None:
    peer = _peer()

    async def flow(channel: AgiChannel) -> list[str]:
        await channel.hangup()
        await channel.hangup()  # harmless
        errors = []
        for call in (channel.play(SOUND), channel.get_digits(1, 1), channel.set_var("X", "1")):
            try:
                await call
            except ChannelHungUpError as exc:
                errors.append(type(exc).__name__)
        return errors

    assert await run_on_channel(flow, peer) == ["ChannelHungUpError"] * 3
    assert peer.lines == ["HANGUP"]


async def test_continue_in_dialplan_ends_the_script_without_failure() -> None:
    peer = _peer()

    async def flow(channel: AgiChannel) -> str:
        await channel.continue_in_dialplan()
        try:
            await channel.play(SOUND)
        except ChannelHungUpError as exc:
            return str(exc)
        return "played"

    assert "handed back" in str(await run_on_channel(flow, peer))
    assert peer.lines == [] and not peer.failure and peer.closed_by_server


async def test_a_usage_reply_is_a_command_error_with_the_usage_text() -> None:
    peer = AgiPeer(
        "ivr",
        rules=[
            lambda line, argv: (
                [
                    "520-Invalid command syntax.  Proper usage follows:",
                    " Usage: SAY NUMBER <number> <escape digits>",
                    "520 End of proper usage.",
                ]
                if argv[0] == "SAY"
                else None
            )
        ],
    )

    async def flow(channel: AgiChannel) -> None:
        await channel.play(Media(MediaKind.NUMBER, "12"))

    error = await run_on_channel(flow, peer)
    assert isinstance(error, AgiCommandError) and "Usage: SAY NUMBER" in str(error)


async def test_an_unknown_command_is_a_command_error() -> None:
    peer = AgiPeer("ivr", rules=[lambda line, argv: ["510 Invalid or unknown command"]])

    async def flow(channel: AgiChannel) -> None:
        await channel.set_var("X", "1")

    error = await run_on_channel(flow, peer)
    assert isinstance(error, AgiCommandError) and "510" in str(error)
