"""The VoiceChannel port: what a voice flow may do with a caller's channel (port).

One method list for every driver: ARI (``callcenter.ari.channel``) and FastAGI
(``callcenter.agi.channel``). Flows are written once against it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from callcenter.errors import CallCenterError


class MediaKind(StrEnum):
    """What a :class:`Media` item asks the driver to play."""

    SOUND = "sound"  # a sound file name without extension, e.g. "queue-thankyou"
    DIGITS = "digits"  # say each digit
    NUMBER = "number"  # say a whole number


@dataclass(frozen=True, slots=True)
class Media:
    """One item of a playback list."""

    kind: MediaKind
    value: str


@dataclass(frozen=True, slots=True)
class Recording:
    """What ``record`` produced: the recording's name and how it ended."""

    name: str
    duration_s: float
    ended_by: str  # "silence", "max_length", "dtmf", "hangup"


class ChannelHungUpError(CallCenterError):
    """The caller hung up while a flow was using the channel."""


class VoiceChannel(Protocol):
    """A caller's channel as a voice flow sees it.

    Every method raises :class:`ChannelHungUpError` once the caller has hung up.
    """

    async def play(self, *media: Media) -> None:
        """Play the items in order and return when the last one finished."""
        ...

    async def get_digits(self, max_digits: int, timeout_s: float) -> str:
        """Collect up to ``max_digits`` DTMF digits; ``""`` when none came within ``timeout_s``."""
        ...

    async def record(
        self, name: str, max_s: float, max_silence_s: float, *, beep: bool = True, terminate_on: str = "#"
    ) -> Recording:
        """Record the caller into ``name`` until silence, the maximum length or a terminating key."""
        ...

    async def set_var(self, name: str, value: str) -> None:
        """Set a channel variable."""
        ...

    async def get_var(self, name: str) -> str | None:
        """A channel variable, ``None`` when unset."""
        ...

    async def hangup(self) -> None:
        """Hang the channel up."""
        ...

    async def continue_in_dialplan(self) -> None:
        """Hand the channel back to the dialplan (the next priority)."""
        ...
