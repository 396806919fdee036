"""``ScriptedVoiceChannel``: the VoiceChannel port answering from a script, for flow tests (test double).

``keys`` are the answers to successive ``get_digits`` calls (``""`` is silence until the timeout);
every ``play`` is recorded with its media. ``hang_up_after`` makes the channel hang up once that many
operations have run, so every later call raises ``ChannelHungUpError`` as the drivers do.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from types import TracebackType

from ivr.channel import ChannelHungUpError, Media, MediaKind, Recording


class ScriptedVoiceChannel:
    def __init__(
        self, keys: Iterable[str] = (), *, hang_up_after: int | None = None, hold: bool = False
    ) -> None:
        """:param hold: once the keys are used up, ``get_digits`` waits until cancelled (a caller
        listening to the music) instead of answering silence at once."""
        self.keys = list(keys)
        self.hold = hold
        self.closed = False
        self.played: list[tuple[Media, ...]] = []
        self.asked: list[tuple[int, float]] = []
        self.variables: dict[str, str] = {}
        self.hung_up = False
        self.continued = False
        self._operations = 0
        self._hang_up_after = hang_up_after

    def _step(self) -> None:
        if self.hung_up:
            raise ChannelHungUpError("scripted caller hung up")
        self._operations += 1
        if self._hang_up_after is not None and self._operations > self._hang_up_after:
            self.hung_up = True
            raise ChannelHungUpError("scripted caller hung up")

    async def play(self, *media: Media) -> None:
        self._step()
        self.played.append(media)

    async def get_digits(self, max_digits: int, timeout_s: float) -> str:
        self._step()
        self.asked.append((max_digits, timeout_s))
        if not self.keys and self.hold:
            await asyncio.Event().wait()
        await asyncio.sleep(0)
        answer = self.keys.pop(0) if self.keys else ""
        return answer[:max_digits]

    async def record(
        self, name: str, max_s: float, max_silence_s: float, *, beep: bool = True, terminate_on: str = "#"
    ) -> Recording:
        self._step()
        return Recording(name=name, duration_s=0.0, ended_by="silence")

    async def set_var(self, name: str, value: str) -> None:
        self._step()
        self.variables[name] = value

    async def get_var(self, name: str) -> str | None:
        self._step()
        return self.variables.get(name)

    async def hangup(self) -> None:
        self.hung_up = True

    async def continue_in_dialplan(self) -> None:
        self._step()
        self.continued = True

    def __enter__(self) -> ScriptedVoiceChannel:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.closed = True

    # -- reading what was said ----------------------------------------------------------------------

    def sounds(self) -> list[str]:
        """Every sound played, in order, without the folder (``you-are-next``)."""
        return [
            m.value.split("/", 1)[-1] for batch in self.played for m in batch if m.kind is MediaKind.SOUND
        ]

    def spoken(self) -> list[str]:
        """Everything played, in order: sounds by name, numbers as ``#N``, digits as ``*D``."""
        out = []
        for batch in self.played:
            for m in batch:
                if m.kind is MediaKind.SOUND:
                    out.append(m.value.split("/", 1)[-1])
                elif m.kind is MediaKind.NUMBER:
                    out.append(f"#{m.value}")
                else:
                    out.append(f"*{m.value}")
        return out
