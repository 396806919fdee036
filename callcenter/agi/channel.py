"""A caller's channel over FastAGI as an ``ivr.channel.VoiceChannel`` (edge).

:class:`AgiChannel` turns the port's methods into AGI commands on one :class:`AgiSession`, so the
voice flows written for ARI run unchanged on ``app_queue`` sites. Differences from ARI, by nature of
AGI:

* a key pressed during :meth:`~AgiChannel.play` stops the playback (Asterisk's escape digits) and
  counts as the first digit of the next :meth:`~AgiChannel.get_digits`; on ARI the prompt plays on;
* an empty variable reads as ``None`` (see :meth:`~AgiChannel.get_var`);
* :meth:`~AgiChannel.continue_in_dialplan` ends the script: the server closes the connection and
  Asterisk runs the next priority.

Queue position and free agents on ``app_queue`` sites come from dialplan functions through
:meth:`~AgiChannel.get_var`: ``QUEUE_WAITING_COUNT(support)``, ``QUEUE_MEMBER(support,free)``, and
``QUEUEPOSITION`` once the caller left the queue by key.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from typing import Final

from callcenter.agi import protocol
from callcenter.agi.protocol import AgiCommandError, AgiReply
from callcenter.agi.server import AgiSession
from ivr.channel import ChannelHungUpError, Media, MediaKind, Recording

logger = logging.getLogger(__name__)

#: Keys that stop a prompt (and are kept for the next digit entry).
DTMF_KEYS: Final = "0123456789*#"
#: The key that ends a digit entry early (as Asterisk's Read() and GET DATA do).
_END_OF_ENTRY: Final = "#"
#: ``RECORD FILE`` writes 8 kHz signed linear for ``wav``: ``endpos`` counts those samples.
_WAV_RATE: Final = 8000
_TERMINATE_ON: Final = {"none": "", "any": DTMF_KEYS, "*": "*", "#": "#"}


class AgiChannel:
    """:class:`ivr.channel.VoiceChannel` over one FastAGI session.

    :param media_timeout_s: the longest a single prompt may play before we give up on the session
        (a prompt has no length we can know in advance).
    """

    def __init__(self, session: AgiSession, *, media_timeout_s: float = 600.0) -> None:
        self._session = session
        self._media_timeout_s = media_timeout_s
        self._digits: deque[str] = deque()
        self._gone: str | None = None
        self._handed_back = False

    @property
    def session(self) -> AgiSession:
        return self._session

    @property
    def channel_id(self) -> str:
        return self._session.env.uniqueid

    @property
    def hung_up(self) -> bool:
        return self._gone is not None or self._session.hung_up

    # -- VoiceChannel ----------------------------------------------------------------------------

    async def play(self, *media: Media) -> None:
        """Play the items in order; a key pressed stops them and is kept for :meth:`get_digits`.

        A file that does not play (missing) is logged, not raised: the flow goes on.
        """
        for item in media:
            self._ensure_alive()
            if self._digits:
                return  # the caller already answered: do not make them listen to the rest
            reply = await self._send(_media_command(item), timeout_s=self._media_timeout_s)
            code = reply.result_int
            if code is not None and code > 0:
                self._digits.append(chr(code))
            elif code is None or code < 0:
                await self._after_failure(f"{item.kind.value} {item.value!r} did not play")

    async def get_digits(self, max_digits: int, timeout_s: float) -> str:
        """Up to ``max_digits`` digits; ``timeout_s`` is the wait for each digit (the first included).

        A key pressed during the last prompt counts first. ``#`` ends the entry early and is not
        returned. ``""`` when no digit came in time.
        """
        self._ensure_alive()
        collected = ""
        timeout_ms = max(1, math.ceil(timeout_s * 1000))
        while len(collected) < max_digits:
            if self._digits:
                digit = self._digits.popleft()
            else:
                reply = await self._send(protocol.wait_for_digit(timeout_ms), timeout_s=timeout_s + 30)
                code = reply.result_int
                if code is None or code < 0:
                    raise self._hung_up_error("hung up while waiting for a digit")
                if code == 0:
                    break
                digit = chr(code)
            if digit == _END_OF_ENTRY:
                break
            collected += digit
        return collected

    async def record(
        self, name: str, max_s: float, max_silence_s: float, *, beep: bool = True, terminate_on: str = "#"
    ) -> Recording:
        """Record ``name``.wav until silence, ``max_s``, a terminating key or the caller hanging up.

        AGI reports ``(timeout)`` for both the time limit and silence, so ``ended_by`` is
        ``max_length`` when the kept audio reaches ``max_s - max_silence_s`` (silence is trimmed off
        the end, so a silence end keeps less), else ``silence``. A hang-up returns what was kept
        (a voicemail often ends that way); :class:`ChannelHungUpError` only when nothing was.

        :raises AgiCommandError: when Asterisk could not record (``(writefile)``, ``(randomerror)``).
        """
        escape = _TERMINATE_ON.get(terminate_on or "none")
        if escape is None:
            raise ValueError(f"terminate_on must be one of {sorted(_TERMINATE_ON)}, got {terminate_on!r}")
        self._ensure_alive()
        self._digits.clear()  # a key pressed before the beep is no answer to what follows
        timeout_ms = math.ceil(max_s * 1000) if max_s > 0 else -1
        silence_s = math.ceil(max_silence_s) if max_silence_s > 0 else 0
        line = protocol.record_file(name, "wav", escape, timeout_ms, beep=beep, silence_s=silence_s)
        reply = await self._send(line, timeout_s=(max_s if max_s > 0 else self._media_timeout_s) + 30)
        kept_s = max(reply.endpos or 0, 0) / _WAV_RATE
        match reply.data:
            case "dtmf":
                ended_by = "dtmf"
            case "hangup":
                self._gone = "hung up during the recording"
                if kept_s <= 0:
                    raise self._hung_up_error(f"hung up during recording {name}; nothing kept")
                ended_by = "hangup"
            case "timeout":
                long_enough = max_s > 0 and kept_s >= max_s - max(max_silence_s, 0.0) - 0.5
                ended_by = "silence" if max_silence_s > 0 and not long_enough else "max_length"
            case _:
                raise AgiCommandError(f"recording {name} failed: {reply.data or reply.result}", reply)
        return Recording(name=name, duration_s=kept_s, ended_by=ended_by)

    async def set_var(self, name: str, value: str) -> None:
        """Set a channel variable (control characters in ``value`` become spaces: AGI is line-based)."""
        self._ensure_alive()
        await self._send(protocol.set_variable(name, value))

    async def get_var(self, name: str) -> str | None:
        """A variable or dialplan function (``QUEUE_MEMBER(support,free)``); ``None`` when empty or unset.

        Read base64-encoded (:func:`callcenter.agi.protocol.read_expression`), so a value holding a
        line break cannot spoil the session; that read cannot tell unset from empty.
        """
        values = await self.get_vars((name,))
        return values[name] or None

    async def get_vars(self, names: tuple[str, ...]) -> dict[str, str]:
        """Several variables in one command; ``""`` for unset ones.

        Works after the caller hung up too (Asterisk allows it, as in a hang-up handler).
        """
        if self._handed_back:
            raise self._hung_up_error("handed back to the dialplan")
        nonce = protocol.new_nonce()
        reply = await self._send(protocol.get_full_variable(protocol.read_expression(names, nonce)))
        return protocol.decode_read(reply.data, names, nonce)

    async def hangup(self) -> None:
        """Hang up; a channel already gone is not an error."""
        if self._gone is not None or self._session.hung_up:
            self._gone = self._gone or "hung up"
            return
        reply = await self._session.send(protocol.hangup())
        if not reply.ok and not reply.dead_channel:
            raise AgiCommandError(f"HANGUP refused: {reply.code} {reply.message}", reply)
        self._gone = "hung up by us"

    async def continue_in_dialplan(self) -> None:
        """Hand the channel back to the dialplan: the script ends and Asterisk runs the next priority."""
        self._ensure_alive()
        self._handed_back = True
        self._gone = "handed back to the dialplan"

    # -- internals --------------------------------------------------------------------------------

    async def _send(self, line: bytes, *, timeout_s: float | None = None) -> AgiReply:
        """Send a command; a refusal or a dead channel becomes our error."""
        reply = await self._session.send(line, timeout_s=timeout_s)
        if reply.dead_channel:
            raise self._hung_up_error("hung up")
        if not reply.ok:
            detail = "; ".join(reply.usage) or reply.message
            raise AgiCommandError(f"{line.decode(errors='replace').strip()!r}: {reply.code} {detail}", reply)
        return reply

    async def _after_failure(self, what: str) -> None:
        """After ``result=-1``: the caller hung up, or the command failed (a missing sound file).

        Asterisk answers both alike; the next reply tells them apart (``HANGUP`` precedes it, or a
        ``511`` answers a live-channel command).
        """
        if not self._session.hung_up:
            await self._session.send(protocol.channel_status())
        if self._session.hung_up:
            raise self._hung_up_error("hung up")
        logger.warning("channel %s: %s (missing sound file?)", self.channel_id, what)

    def _ensure_alive(self) -> None:
        if self._gone is not None:
            raise self._hung_up_error(self._gone)
        if self._session.hung_up:
            raise self._hung_up_error("hung up")

    def _hung_up_error(self, why: str) -> ChannelHungUpError:
        if self._gone is None:
            self._gone = why
        return ChannelHungUpError(f"channel {self.channel_id}: {why}")


def _media_command(item: Media) -> bytes:
    """The command playing one item; a key stops it (its code is the result)."""
    if item.kind is MediaKind.DIGITS:
        return protocol.say_digits(item.value, DTMF_KEYS)
    if item.kind is MediaKind.NUMBER:
        return protocol.say_number(int(item.value), DTMF_KEYS)
    return protocol.stream_file(item.value, DTMF_KEYS)
