"""The voice channel over FastAGI (``AgiChannel``) on a real Asterisk: what voice flows do on app_queue sites.

The caller (SIPp) dials :data:`~tests.real_asterisk.conftest.VOICE_LAB_EXTEN`, which answers and runs
``AGI(${CC_AGI_URL}/voice-lab)``; the test points ``CC_AGI_URL`` at a FastAGI server of its own whose
``voice-lab`` script is the flow under test, driving the call through :class:`AgiChannel` alone. What
the flow saw (digits, variables, errors) is checked against what Asterisk did (ARI events) and what the
caller's SIPp saw.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from callcenter.agi.channel import AgiChannel
from callcenter.agi.server import AgiServer, AgiSession
from callcenter.asterisk_names import GLOBAL_AGI_URL
from ivr.channel import ChannelHungUpError, Media, MediaKind
from tests.real_asterisk.conftest import AGI_HOST, SKIP_REASON, VOICE_LAB_EXTEN, AriObserver, Lab
from tests.system.conftest import eventually

pytestmark = [
    pytest.mark.real_asterisk,
    pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or ""),
    pytest.mark.timeout(60),
]

Flow = Callable[[AgiChannel], Awaitable[dict[str, Any]]]


@dataclass
class VoiceLab:
    """The test's FastAGI server: runs :attr:`flow` for ``voice-lab`` and keeps what it returned."""

    flow: Flow | None = None
    results: list[dict[str, Any]] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)

    async def script(self, session: AgiSession) -> None:
        assert self.flow is not None, "no flow set"
        try:
            self.results.append(await self.flow(AgiChannel(session)))
        except Exception as exc:
            self.errors.append(exc)
            raise

    async def outcome(self) -> dict[str, Any]:
        await eventually(lambda: bool(self.results or self.errors), what="the voice-lab flow done")
        assert not self.errors, self.errors
        return self.results[0]


@pytest.fixture
async def voice_lab(lab: Lab) -> AsyncIterator[VoiceLab]:
    with socket.socket() as probe:
        probe.bind((AGI_HOST, 0))
        port = int(probe.getsockname()[1])
    bench = VoiceLab()
    server = AgiServer({"voice-lab": bench.script}, host=AGI_HOST, port=port)
    await server.start()
    await lab.ari.set_global(GLOBAL_AGI_URL, f"agi://{AGI_HOST}:{port}")
    try:
        yield bench
    finally:
        await server.close()


async def test_given_key_pressed_during_prompt_when_flow_reads_digits_then_key_counts_and_dialplan_goes_on(
    lab: Lab, observer: AriObserver, voice_lab: VoiceLab
) -> None:
    async def flow(channel: AgiChannel) -> dict[str, Any]:
        # tt-allbusy lasts 9 s: the caller's key (at 2 s) stops it and is the first digit read.
        await channel.play(Media(MediaKind.SOUND, "tt-allbusy"))
        digits = await channel.get_digits(1, 5.0)
        await channel.play(Media(MediaKind.NUMBER, "42"), Media(MediaKind.DIGITS, "123"))
        # A caller-controlled value with a line break and quotes cannot inject a command.
        await channel.set_var("CC_LAB_VALUE", 'x" \nHANGUP\n"y')
        value = await channel.get_var("CC_LAB_VALUE")
        waiting = await channel.get_var("QUEUE_WAITING_COUNT(cc-lab)")
        free = await channel.get_var("QUEUE_MEMBER(cc-lab,free)")
        unset = await channel.get_var("CC_LAB_NEVER_SET")
        await channel.continue_in_dialplan()
        return {"digits": digits, "value": value, "waiting": waiting, "free": free, "unset": unset}

    voice_lab.flow = flow

    caller = await lab.call(hold_ms=20_000, key_after_ms=2000, exten=VOICE_LAB_EXTEN)

    result = await voice_lab.outcome()
    assert result == {"digits": "1", "value": 'x"  HANGUP "y', "waiting": "0", "free": "1", "unset": None}
    # The script ended; Asterisk went on with the next priority and hung up at the end of the dialplan.
    assert await caller.finished() == "REMOTE_BYE"
    assert caller.sipp.count("KEY_SENT 1") == 1
    channel_id = observer.channel_of_caller(caller.number)
    assert channel_id is not None
    assert observer.variable(channel_id, "CC_LAB_VALUE") == ['x"  HANGUP "y']
    assert observer.variable(channel_id, "CC_LAB_AFTER") == ["SUCCESS"]
    assert ("Playback", "vm-goodbye") in observer.apps_run(channel_id)


async def test_given_caller_hangs_up_when_flow_waits_for_digits_then_hung_up_error(
    lab: Lab, observer: AriObserver, voice_lab: VoiceLab
) -> None:
    async def flow(channel: AgiChannel) -> dict[str, Any]:
        try:
            await channel.get_digits(4, 20.0)
        except ChannelHungUpError as exc:
            return {"hung_up": str(exc), "channel_hung_up": channel.hung_up}
        return {"hung_up": None}

    voice_lab.flow = flow

    caller = await lab.call(hold_ms=2000, exten=VOICE_LAB_EXTEN)

    assert await caller.finished() == "LOCAL_BYE"
    result = await voice_lab.outcome()
    assert result["hung_up"] is not None and result["channel_hung_up"] is True
    channel_id = observer.channel_of_caller(caller.number)
    assert channel_id is not None
    # The dialplan after AGI() did not run for a caller who is gone.
    assert ("Playback", "vm-goodbye") not in observer.apps_run(channel_id)


async def test_given_flow_hangs_up_when_prompt_played_then_caller_hung_up_by_asterisk(
    lab: Lab, observer: AriObserver, voice_lab: VoiceLab
) -> None:
    async def flow(channel: AgiChannel) -> dict[str, Any]:
        await channel.play(Media(MediaKind.SOUND, "auth-thankyou"), Media(MediaKind.SOUND, "no-such-sound-x"))
        await channel.hangup()
        return {"hung_up": channel.hung_up}

    voice_lab.flow = flow

    caller = await lab.call(hold_ms=20_000, exten=VOICE_LAB_EXTEN)

    assert await caller.finished() == "REMOTE_BYE"
    assert await voice_lab.outcome() == {"hung_up": True}, "a missing sound is logged, not raised"
    channel_id = observer.channel_of_caller(caller.number)
    assert channel_id is not None
    assert any(e["type"] == "ChannelHangupRequest" for e in observer.of_channel(channel_id))
    assert ("Playback", "vm-goodbye") not in observer.apps_run(channel_id)
