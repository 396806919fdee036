"""A caller's channel in our Stasis application as an ``ivr.channel.VoiceChannel`` (edge).

:class:`AriChannel` drives one channel by REST and learns what happened from the events the
:class:`~callcenter.ari.stasis.StasisDispatcher` hands to its subscription. Create it when the
channel enters the application (``StasisStart``): DTMF is collected from then on, so digits pressed
during a prompt count for the next :meth:`AriChannel.get_digits` (Asterisk does not stop a playback
on DTMF). Close it (or use ``with``) when the flow is done.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from dataclasses import dataclass
from types import TracebackType
from typing import Final

from callcenter.ari.client import AriClient
from callcenter.ari.events import (
    ChannelDestroyed,
    ChannelDtmfReceived,
    ChannelHangupRequest,
    PlaybackFinished,
    PlaybackState,
    RecordingFailed,
    RecordingFinished,
    RecordingStarted,
    SoftHangupFlag,
    StasisEnd,
)
from callcenter.ari.stasis import ChannelNotice, LinkResynced, StasisDispatcher
from callcenter.errors import AsteriskUnavailableError, CallCenterError, ChannelGoneError, NotFoundError
from ivr.channel import ChannelHungUpError, Media, Recording

logger = logging.getLogger(__name__)

#: ``terminateOn`` values ARI accepts.
_TERMINATE_ON: Final = frozenset({"none", "any", "*", "#"})
#: The key that ends a digit entry early (as Asterisk's Read() and AGI GET DATA do).
_END_OF_ENTRY: Final = "#"


class AriRecordingError(CallCenterError):
    """Asterisk reported ``RecordingFailed`` (``cause`` says why), or the recording vanished unsaved."""


class AriChannel:
    """:class:`ivr.channel.VoiceChannel` over ARI.

    :param poll_s: while waiting for a playback or recording to end, how often to ask ARI whether it
        still runs, in case the event was missed (a link outage; the resync also triggers a check).
    :param hangup_grace_s: after a hang-up during a recording, how long to wait for its
        ``RecordingFinished`` (the file is kept: a voicemail often ends with the caller hanging up).
    """

    def __init__(
        self,
        client: AriClient,
        dispatcher: StasisDispatcher,
        channel_id: str,
        *,
        poll_s: float = 30.0,
        hangup_grace_s: float = 2.0,
    ) -> None:
        self._client = client
        self._id = channel_id
        self._poll_s = poll_s
        self._hangup_grace_s = hangup_grace_s
        self._stack = ExitStack()
        self._subscription = self._stack.enter_context(dispatcher.subscribe(channel_id))
        self._digits: deque[str] = deque()
        self._gone: str | None = None  # why we can no longer use the channel
        self._recording: str | None = None  # name of the recording under way
        self._recording_digits: list[str] = []

    @property
    def channel_id(self) -> str:
        return self._id

    @property
    def hung_up(self) -> bool:
        """True once the channel hung up or left the application."""
        self._drain()
        return self._gone is not None

    def close(self) -> None:
        """Stop receiving the channel's events."""
        self._stack.close()

    def __enter__(self) -> AriChannel:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- VoiceChannel ----------------------------------------------------------------------------

    async def play(self, *media: Media) -> None:
        """Play the items as ONE playback (``sound:a,digits:12,number:42``) and wait for its end.

        A ``failed`` playback (a missing sound file) is logged, not raised: the flow goes on.
        """
        if not media:
            return
        self._ensure_alive()
        playback_id = f"pb-{uuid.uuid4().hex}"
        items = [f"{item.kind.value}:{item.value}" for item in media]
        try:
            await self._client.play(self._id, items, playback_id=playback_id)
        except ChannelGoneError as exc:
            raise self._hung_up_error(str(exc)) from exc
        try:
            await self._wait_playback(playback_id, items)
        except asyncio.CancelledError:
            # The flow was stopped (the caller was put through): the prompt must not play on into
            # the conversation. Asterisk keeps a playback running until it ends or is stopped.
            with contextlib.suppress(CallCenterError):
                await self._client.stop_playback(playback_id)
            raise

    async def _wait_playback(self, playback_id: str, items: list[str]) -> None:
        while True:
            notice = await self._next(self._poll_s)
            self._check_gone()
            match notice:
                case PlaybackFinished(playback=playback) if playback.id == playback_id:
                    if playback.state is PlaybackState.FAILED:
                        logger.warning(
                            "channel %s: playback %s of %s failed (missing sound file?)",
                            self._id,
                            playback_id,
                            ",".join(items),
                        )
                    return
                case None | LinkResynced():
                    if not await self._still_running(self._client.get_playback, playback_id):
                        return  # finished while we were not listening

    async def get_digits(self, max_digits: int, timeout_s: float) -> str:
        """Up to ``max_digits`` digits; ``timeout_s`` is the wait for each digit (the first included).

        Digits pressed since the last call (during a prompt) count first. ``#`` ends the entry early
        and is not returned, as with Asterisk's ``Read()``. ``""`` when no digit came in time.
        """
        self._ensure_alive()
        loop = asyncio.get_running_loop()
        collected = ""
        deadline = loop.time() + timeout_s
        while len(collected) < max_digits:
            if self._digits:
                digit = self._digits.popleft()
                if digit == _END_OF_ENTRY:
                    break
                collected += digit
                deadline = loop.time() + timeout_s
                continue
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            notice = await self._next(remaining)
            self._check_gone()
            if notice is None:
                break
        return collected

    async def record(
        self, name: str, max_s: float, max_silence_s: float, *, beep: bool = True, terminate_on: str = "#"
    ) -> Recording:
        """Record into ``name`` (wav, overwriting) until silence, ``max_s``, a terminating key or hang-up.

        ``RecordingFinished`` never says why a recording ended, so ``ended_by`` is inferred:

        * ``hangup``: the channel hung up before the recording finished;
        * ``dtmf``: a ``terminate_on`` key arrived during the recording (Asterisk reports it too);
        * ``max_length``: ``max_s`` elapsed since ``RecordingStarted`` (which precedes the beep), or the
          kept audio is longer than ``max_s - max_silence_s``, which a silence end cannot produce
          (trailing silence is trimmed, so ``duration`` is the time up to the last speech);
        * ``silence``: otherwise, with ``max_silence_s`` set; without it, ``max_length``.

        ``duration_s`` is Asterisk's (whole seconds of kept audio), or our elapsed time when the
        ``RecordingFinished`` was missed. A hang-up during the recording returns the recording (a
        voicemail commonly ends that way); :class:`ChannelHungUpError` only if nothing was kept.

        :raises AriRecordingError: on ``RecordingFailed``.
        """
        terminate = terminate_on or "none"
        if terminate not in _TERMINATE_ON:
            raise ValueError(f"terminate_on must be one of {sorted(_TERMINATE_ON)}, got {terminate_on!r}")
        self._ensure_alive()
        loop = asyncio.get_running_loop()
        started = loop.time()
        self._recording, self._recording_digits = name, []
        try:
            try:
                await self._client.record(
                    self._id,
                    name=name,
                    format="wav",
                    max_duration_s=math.ceil(max_s),
                    max_silence_s=math.ceil(max_silence_s),
                    beep=beep,
                    terminate_on=terminate,
                    if_exists="overwrite",
                )
            except ChannelGoneError as exc:
                raise self._hung_up_error(str(exc)) from exc
            end = await self._wait_recording(name)
            elapsed = end.elapsed_s if end.elapsed_s is not None else loop.time() - started
            ended_by = self._ended_by(end, terminate, max_s, max_silence_s, elapsed)
            kept_s = end.finished.recording.duration_s if end.finished is not None else None
            duration = elapsed if kept_s is None else float(kept_s)
            return Recording(name=name, duration_s=duration, ended_by=ended_by)
        finally:
            # The key that ended the recording (and any other) is no answer to the next menu.
            self._recording, self._recording_digits = None, []

    async def set_var(self, name: str, value: str) -> None:
        self._ensure_alive()
        try:
            await self._client.set_variable(self._id, name, value)
        except ChannelGoneError as exc:
            raise self._hung_up_error(str(exc)) from exc

    async def get_var(self, name: str) -> str | None:
        """A variable or dialplan function; ``None`` when unset (ARI: 404 "Provided variable was not found")."""
        self._ensure_alive()
        try:
            return await self._client.get_variable(self._id, name)
        except ChannelGoneError as exc:
            raise self._hung_up_error(str(exc)) from exc

    async def hangup(self) -> None:
        """Hang up; a channel already gone is not an error."""
        self._drain()
        if self._gone is not None:
            return
        try:
            await self._client.hangup(self._id, reason="normal")
        except ChannelGoneError:
            pass
        self._gone = "hung up by us"

    async def continue_in_dialplan(self) -> None:
        """Hand the channel back to the dialplan at its next priority; the channel is no longer ours."""
        self._ensure_alive()
        try:
            await self._client.continue_in_dialplan(self._id)
        except ChannelGoneError as exc:
            raise self._hung_up_error(str(exc)) from exc
        self._gone = "handed back to the dialplan"

    # -- events ----------------------------------------------------------------------------------

    async def _next(self, timeout_s: float | None) -> ChannelNotice | None:
        """The next notice (already absorbed into our state), or ``None`` after ``timeout_s``."""
        try:
            async with asyncio.timeout(timeout_s):
                notice = await self._subscription.get()
        except TimeoutError:
            return None
        self._absorb(notice)
        return notice

    def _drain(self) -> None:
        while (notice := self._subscription.get_nowait()) is not None:
            self._absorb(notice)

    def _absorb(self, notice: ChannelNotice) -> None:
        match notice:
            case ChannelDtmfReceived(digit=digit):
                if self._recording is not None:
                    self._recording_digits.append(digit)
                else:
                    self._digits.append(digit)
            case ChannelHangupRequest():
                # A soft hang-up with only ASYNCGOTO set is a redirect, not an end.
                if notice.soft_flags != SoftHangupFlag.ASYNCGOTO and self._gone is None:
                    self._gone = "hung up"
            case StasisEnd() | ChannelDestroyed():
                if self._gone is None:
                    self._gone = "hung up (left the application)"
            case LinkResynced(present=False):
                if self._gone is None:
                    self._gone = "gone while the ARI link was down"

    def _ensure_alive(self) -> None:
        """Before an operation: catch up on what happened meanwhile, then fail if the channel is gone."""
        self._drain()
        self._check_gone()

    def _check_gone(self) -> None:
        # While waiting, never drain: the notice waited for may be among the queued ones.
        if self._gone is not None:
            raise self._hung_up_error(self._gone)

    def _hung_up_error(self, why: str) -> ChannelHungUpError:
        if self._gone is None:
            self._gone = why
        return ChannelHungUpError(f"channel {self._id}: {why}")

    async def _still_running(self, probe: Callable[[str], Awaitable[object]], object_id: str) -> bool:
        """Ask ARI whether a playback or recording still runs (``False`` once it 404s)."""
        try:
            await probe(object_id)
        except NotFoundError:
            return False
        except AsteriskUnavailableError as exc:
            logger.warning("channel %s: cannot check %s (%s); still waiting", self._id, object_id, exc)
        return True

    async def _wait_recording(self, name: str) -> _RecordingEnd:
        """Wait for the end of recording ``name``; ``finished`` is ``None`` when it ended unseen."""
        loop = asyncio.get_running_loop()
        started: RecordingStarted | None = None
        hung_up_at: float | None = None
        while True:
            if hung_up_at is None and self._gone is not None:
                hung_up_at = loop.time()
            timeout = self._poll_s if hung_up_at is None else hung_up_at + self._hangup_grace_s - loop.time()
            notice = await self._next(max(timeout, 0.0))
            match notice:
                case RecordingFinished(recording=recording) if recording.name == name:
                    return _RecordingEnd(notice, started, hung_up=hung_up_at is not None)
                case RecordingFailed(recording=recording) if recording.name == name:
                    raise AriRecordingError(
                        f"channel {self._id}: recording {name} failed: {recording.cause or 'no cause given'}"
                    )
                case RecordingStarted(recording=recording) if recording.name == name:
                    started = notice
                case None | LinkResynced():
                    if hung_up_at is not None or self._gone is not None:
                        await self._recording_kept(name)
                        return _RecordingEnd(None, started, hung_up=True)
                    if not await self._still_running(self._client.get_live_recording, name):
                        return _RecordingEnd(None, started, hung_up=False)

    async def _recording_kept(self, name: str) -> None:
        """After a hang-up with no ``RecordingFinished``: the file is there, or nothing was recorded."""
        try:
            await self._client.get_stored_recording(name)
        except NotFoundError as exc:
            raise self._hung_up_error(f"hung up during recording {name}; nothing kept") from exc

    def _ended_by(
        self, end: _RecordingEnd, terminate: str, max_s: float, max_silence_s: float, elapsed_s: float
    ) -> str:
        if end.hung_up:
            return "hangup"
        if any(terminate == "any" or digit == terminate for digit in self._recording_digits):
            return "dtmf"
        kept_s = end.finished.recording.duration_s if end.finished is not None else None
        if max_s > 0 and (
            elapsed_s >= max_s
            or (max_silence_s > 0 and kept_s is not None and kept_s > max_s - max_silence_s)
        ):
            return "max_length"
        return "silence" if max_silence_s > 0 else "max_length"


@dataclass(frozen=True, slots=True)
class _RecordingEnd:
    finished: RecordingFinished | None
    started: RecordingStarted | None
    hung_up: bool

    @property
    def elapsed_s(self) -> float | None:
        """Started to finished on Asterisk's clock (the beep included), when both events were seen."""
        if self.finished is None or self.started is None:
            return None
        return (self.finished.timestamp - self.started.timestamp).total_seconds()
