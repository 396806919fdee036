"""The voicemail flow: greeting, beep, recording, thanks (voice flow over the VoiceChannel port).

Written once, run on ARI (``callcenter.ari.channel.AriChannel``) or FastAGI channels. The recording
ends on silence, at the maximum length, on ``#`` or when the caller hangs up (the usual way: what was
said is kept).
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final

from callcenter.errors import CallCenterError
from ivr.channel import ChannelHungUpError, Media, MediaKind, Recording, VoiceChannel

#: "Please leave your message after the tone. When done, hang up or press the pound key."
GREETING: Final = (Media(MediaKind.SOUND, "vm-intro"),)
#: "Your message has been saved." "Goodbye."
SAVED: Final = (Media(MediaKind.SOUND, "vm-msgsaved"), Media(MediaKind.SOUND, "vm-goodbye"))
#: "I'm sorry." "Please try your call again later." (Asterisk could not record: no message was taken.)
NOT_RECORDED: Final = (Media(MediaKind.SOUND, "im-sorry"), Media(MediaKind.SOUND, "please-try-call-later"))


@dataclass(frozen=True, kw_only=True, slots=True)
class VoicemailFlow:
    """How a message is taken.

    :param max_s: longest message, in seconds.
    :param max_silence_s: silence that ends the message.
    :param greeting: played before the beep (the beep is the recording's own).
    """

    max_s: float = 120.0
    max_silence_s: float = 5.0
    terminate_on: str = "#"
    greeting: tuple[Media, ...] = field(default=GREETING)
    saved: tuple[Media, ...] = field(default=SAVED)
    not_recorded: tuple[Media, ...] = field(default=NOT_RECORDED)


async def take_message(
    channel: VoiceChannel,
    name: str,
    flow: VoicemailFlow,
    *,
    on_record: Callable[[], Awaitable[None]] | None = None,
    on_not_recorded: Callable[[], Awaitable[None]] | None = None,
) -> Recording | None:
    """Greet, record into ``name`` and thank the caller; ``None`` when they hung up before the beep.

    ``on_record`` runs as the recording starts (the call's outcome becomes ``voicemail`` then: most
    callers end a message by hanging up, and the outcome is decided at the hang-up); it raises
    :class:`ChannelHungUpError` when the caller is already gone. The channel is hung up at the end
    unless the caller already did.

    When Asterisk cannot record (it refuses the channel, or its disk), no message was left:
    ``on_not_recorded`` takes back what ``on_record`` said, the caller hears an apology and is hung
    up, and the error is raised.
    """
    try:
        await channel.play(*flow.greeting)
    except ChannelHungUpError:
        return None
    try:
        if on_record is not None:
            await on_record()  # may raise ChannelHungUpError: the caller left during the greeting
        recording = await channel.record(
            name, flow.max_s, flow.max_silence_s, beep=True, terminate_on=flow.terminate_on
        )
    except ChannelHungUpError:
        return None
    except CallCenterError:
        if on_record is not None and on_not_recorded is not None:
            await on_not_recorded()
        with contextlib.suppress(CallCenterError):  # the caller may be gone; the error is what counts
            await channel.play(*flow.not_recorded)
            await channel.hangup()
        raise
    if recording.ended_by != "hangup":
        try:
            await channel.play(*flow.saved)
            await channel.hangup()
        except ChannelHungUpError:
            pass
    return recording
