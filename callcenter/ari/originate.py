"""Callback calls over ARI: ring the agent, whisper, dial the customer, confirm a person, bridge (edge).

:class:`AriCallbackCalls` places the calls of one attempt in its own Stasis application (the
dispatcher's events socket, held with the dispatcher lease). Every channel id is derived from the
attempt id (:mod:`callcenter.callbacks.attempts`), so the events of an attempt's channels are routed to
it even when they overtake the originate's response, and a restarted dispatcher finds what Asterisk
still has of an attempt in ``GET /channels``.

Agent-first (the default): originate to the agent (the next free agent on no answer), whisper the
last digits of the number, why the callback is owed and how long they waited (:mod:`ivr.whisper`,
prompts of our catalogue: render them into Asterisk's sounds), then originate to the customer with the
queue's business number as caller id. The customer hears the confirmation prompt ("This is ...
returning your call; press 1 to be connected") and must press 1 within ``confirm_s``: no key is
``machine``, never ``connected``. Customer-first dials the customer, confirms, then rings agents.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Final

from callcenter.ari.client import AriClient
from callcenter.ari.events import (
    AriEvent,
    ChannelDestroyed,
    ChannelDtmfReceived,
    ChannelHangupRequest,
    PlaybackFinished,
    StasisEnd,
    StasisStart,
)
from callcenter.ari.link import ReceivedAt
from callcenter.callbacks.attempts import Attempt, agent_channel_id, leg_of
from callcenter.callbacks.dispatch_ports import AgentPicker, CallEnd, CallJob, DialOutcome, Progress
from callcenter.clock import Clock, SystemClock
from callcenter.errors import CallCenterError, NotFoundError
from callcenter.model.vocabulary import AttemptResult
from ivr.whisper import whisper_media

logger = logging.getLogger(__name__)

_BUSY_CAUSES: Final = frozenset({17, 21})  # user busy; call rejected (a 603 Decline)
# Unallocated number, no route, out of order, invalid format, congestion and the like: our error.
_ERROR_CAUSES: Final = frozenset({1, 2, 3, 22, 27, 28, 34, 38, 41, 42, 44, 50, 58, 66, 88})
_EXTRA_WAIT_S: Final = 10.0  # beyond the ring timeout Asterisk enforces, before we give up waiting
_QUIET_CHECK_S: Final = 5.0  # a connected call with no event for this long is checked by listing
_REASON_WAIT_S: Final = 2.0  # an agent on the line waits at most this for the whisper's reason
_PREVIEW_WAIT_S: Final = 3.0  # and this for the voicemail preview (its first render decodes the message)


@dataclass(frozen=True, kw_only=True, slots=True)
class CallbackCallSettings:
    """How callback calls are placed.

    :param app: the dispatcher's Stasis application (its own events socket).
    :param customer_endpoint: the dial string of a customer, ``{number}`` replaced by the E.164 number.
    :param confirm_media: what the customer hears before pressing 1 (a sound of your own saying
        "This is <business> returning your call; press 1 to be connected").
    :param whisper: whisper the number's last digits, the reason and the wait to the agent.
    """

    app: str
    customer_endpoint: str = "PJSIP/{number}@trunk"
    confirm_media: tuple[str, ...] = ("sound:callback-confirm",)
    confirm_s: float = 8.0
    agent_ring_s: int = 15
    customer_ring_s: int = 30
    max_agent_tries: int = 3
    whisper: bool = True


@dataclass(slots=True)
class _Attempt:
    inbox: asyncio.Queue[AriEvent]
    gone: set[str]
    bridged: tuple[str, str] | None = None  # (agent, customer) channels of a connected call


class AriCallbackCalls:
    """:class:`~callcenter.callbacks.dispatch_ports.CallbackCalls` over ARI; :meth:`on_event` is the
    dispatcher link's handler."""

    def __init__(
        self, client: AriClient, settings: CallbackCallSettings, *, clock: Clock | None = None
    ) -> None:
        self._client = client
        self._settings = settings
        self._clock = clock or SystemClock()
        self._attempts: dict[str, _Attempt] = {}

    # -- events ---------------------------------------------------------------------------------------

    async def on_event(self, event: AriEvent, received_at: ReceivedAt) -> None:
        """Route a channel event of one of our attempts to it (others are ignored)."""
        match event:
            case (
                StasisStart(channel=channel)
                | StasisEnd(channel=channel)
                | ChannelDestroyed(channel=channel)
                | ChannelDtmfReceived(channel=channel)
                | ChannelHangupRequest(channel=channel)
            ):
                channel_id = channel.id
            case PlaybackFinished(playback=playback) if playback.channel_id is not None:
                channel_id = playback.channel_id
            case _:
                return
        leg = leg_of(channel_id)
        if leg is None:
            return
        running = self._attempts.get(leg[1])
        if running is not None:
            running.inbox.put_nowait(event)

    @contextlib.asynccontextmanager
    async def _routed(self, attempt_id: str) -> AsyncIterator[_Attempt]:
        running = self._attempts.setdefault(attempt_id, _Attempt(asyncio.Queue(), set()))
        try:
            yield running
        finally:
            self._attempts.pop(attempt_id, None)

    # -- one attempt ----------------------------------------------------------------------------------

    async def run(self, job: CallJob, agents: AgentPicker, progress: Progress) -> CallEnd:
        attempt_id = job.attempt.id
        running = self._attempts.setdefault(attempt_id, _Attempt(asyncio.Queue(), set()))
        end: CallEnd | None = None
        try:
            if job.customer_first:
                end = await self._customer_first(job, agents, progress, running)
            else:
                end = await self._agent_first(job, agents, progress, running)
            return end
        finally:
            # A connected call keeps its routing: a hang-up before conversation() starts is not lost.
            if end is None or end.result is not AttemptResult.CONNECTED:
                self._attempts.pop(attempt_id, None)

    async def _agent_first(
        self, job: CallJob, agents: AgentPicker, progress: Progress, running: _Attempt
    ) -> CallEnd:
        attempt, agent = await self._ring_agents(job, agents, progress, running, customer=None)
        if agent is None:
            return CallEnd(result=AttemptResult.ERROR, cause=self._no_agent_cause(attempt))
        agent_id, agent_channel = agent
        if self._settings.whisper and not await self._play(running, agent_channel, await _whisper(job)):
            return CallEnd(
                result=AttemptResult.ERROR, cause="the agent hung up during the whisper", agent_id=agent_id
            )
        attempt = dataclasses.replace(attempt, customer_dialled_at=self._clock.now())
        await progress(attempt)
        customer = attempt.customer_channel_id
        outcome, cause = await self._dial(
            running,
            customer,
            self._settings.customer_endpoint.format(number=job.attempt.number),
            caller_id=job.caller_id,
            ring_s=self._settings.customer_ring_s,
            watch=agent_channel,
        )
        if outcome is not DialOutcome.ANSWERED:
            await self._hang_up(running, agent_channel, customer)
            return CallEnd(result=_result_of(outcome), cause=cause, agent_id=agent_id)
        confirmed, cause = await self._confirm(running, customer, watch=agent_channel)
        if not confirmed:
            await self._hang_up(running, agent_channel, customer)
            return CallEnd(
                result=AttemptResult.MACHINE if "key" in cause else AttemptResult.ERROR,
                cause=cause,
                agent_id=agent_id,
            )
        return await self._bridge(job.attempt.id, running, agent_id, agent_channel, customer)

    async def _customer_first(
        self, job: CallJob, agents: AgentPicker, progress: Progress, running: _Attempt
    ) -> CallEnd:
        attempt = dataclasses.replace(job.attempt, customer_dialled_at=self._clock.now())
        await progress(attempt)
        customer = attempt.customer_channel_id
        outcome, cause = await self._dial(
            running,
            customer,
            self._settings.customer_endpoint.format(number=job.attempt.number),
            caller_id=job.caller_id,
            ring_s=self._settings.customer_ring_s,
            watch=None,
        )
        if outcome is not DialOutcome.ANSWERED:
            return CallEnd(result=_result_of(outcome), cause=cause)
        confirmed, cause = await self._confirm(running, customer, watch=None)
        if not confirmed:
            await self._hang_up(running, customer)
            return CallEnd(
                result=AttemptResult.MACHINE if "key" in cause else AttemptResult.ERROR, cause=cause
            )
        attempt, agent = await self._ring_agents(job, agents, progress, running, customer=customer)
        if agent is None:
            await self._hang_up(running, customer)
            return CallEnd(result=AttemptResult.ERROR, cause=self._no_agent_cause(attempt))
        return await self._bridge(job.attempt.id, running, agent[0], agent[1], customer)

    async def _ring_agents(
        self,
        job: CallJob,
        agents: AgentPicker,
        progress: Progress,
        running: _Attempt,
        *,
        customer: str | None,
    ) -> tuple[Attempt, tuple[str, str] | None]:
        attempt = job.attempt
        tried: set[str] = set()
        while len(tried) < self._settings.max_agent_tries:
            picked = await agents.next(frozenset(tried))
            if picked is None:
                break
            agent_id, endpoint = picked
            tried.add(agent_id)
            attempt = dataclasses.replace(attempt, agent_id=agent_id, agent_tries=len(tried))
            await progress(attempt)
            channel = agent_channel_id(attempt.id, len(tried))
            outcome, cause = await self._dial(
                running,
                channel,
                endpoint,
                caller_id=f'"Callback" <{job.attempt.number}>',
                ring_s=self._settings.agent_ring_s,
                watch=customer,
            )
            if outcome is DialOutcome.ANSWERED:
                return attempt, (agent_id, channel)
            if customer is not None and customer in running.gone:
                break
            logger.info("callback attempt %s: agent %s did not take it (%s)", attempt.id, agent_id, cause)
        return attempt, None

    def _no_agent_cause(self, attempt: Attempt) -> str:
        if attempt.agent_tries == 0:
            return "no agent free"
        return f"no agent answered ({attempt.agent_tries} tried)"

    async def _dial(
        self,
        running: _Attempt,
        channel_id: str,
        endpoint: str,
        *,
        caller_id: str,
        ring_s: int,
        watch: str | None,
    ) -> tuple[DialOutcome, str]:
        """Originate and wait for the answer (``StasisStart``) or the end (``ChannelDestroyed``)."""
        if watch is not None and watch in running.gone:
            return DialOutcome.FAILED, "the other party hung up"
        try:
            await self._client.originate(
                endpoint,
                app=self._settings.app,
                app_args=("callback",),
                channel_id=channel_id,
                timeout_s=ring_s,
                caller_id=caller_id or None,
            )
        except CallCenterError as exc:
            # ARI 400/404/409/500 (unknown or unregistered endpoint, a bad dial string) or no answer.
            return DialOutcome.FAILED, f"could not dial {endpoint}: {exc}"
        deadline = time.monotonic() + ring_s + _EXTRA_WAIT_S
        while True:
            event = await self._next(running, deadline)
            if event is None:
                await self._hang_up(running, channel_id)
                return DialOutcome.NO_ANSWER, f"no answer from {endpoint} within {ring_s} s"
            match event:
                case StasisStart(channel=channel) if channel.id == channel_id:
                    return DialOutcome.ANSWERED, "answered"
                case ChannelDestroyed(channel=channel, cause=cause, cause_txt=text) if (
                    channel.id == channel_id
                ):
                    return _dial_outcome(cause), f"{endpoint}: {text or 'hung up'} (cause {cause})"
                case ChannelDestroyed() | StasisEnd() if watch is not None and watch in running.gone:
                    await self._hang_up(running, channel_id)
                    return DialOutcome.FAILED, "the other party hung up while this one was ringing"

    async def _confirm(self, running: _Attempt, customer: str, *, watch: str | None) -> tuple[bool, str]:
        """Play the confirmation prompt and wait for 1; digits pressed during the prompt count.

        On 1 the prompt is stopped: the customer does not hear the rest, and Asterisk adds a channel to
        a bridge only once the playback running on it ends (``addChannel`` answers when it does).
        """
        try:
            playback = await self._client.play(customer, self._settings.confirm_media)
        except CallCenterError as exc:
            return False, f"could not play the confirmation: {exc}"
        deadline = time.monotonic() + self._settings.confirm_s
        while True:
            event = await self._next(running, deadline)
            if event is None:
                return False, f"no key pressed within {self._settings.confirm_s:g} s of the prompt"
            if customer in running.gone:
                return False, "answered, then hung up without pressing a key"
            if watch is not None and watch in running.gone:
                return False, "the agent hung up before the customer confirmed"
            if isinstance(event, ChannelDtmfReceived) and event.channel.id == customer and event.digit == "1":
                with contextlib.suppress(CallCenterError):  # already over: nothing to stop
                    await self._client.stop_playback(playback.id)
                return True, "customer pressed 1"

    async def _play(self, running: _Attempt, channel_id: str, media: tuple[str, ...]) -> bool:
        """Play to a channel and wait for the end; ``False`` when the channel hung up meanwhile."""
        try:
            playback = await self._client.play(channel_id, media)
        except CallCenterError as exc:
            logger.warning("callback: could not play to %s: %s", channel_id, exc)
            return channel_id not in running.gone
        deadline = time.monotonic() + 60.0
        while channel_id not in running.gone:
            event = await self._next(running, deadline)
            if event is None:
                return True
            if isinstance(event, PlaybackFinished) and event.playback.id == playback.id:
                return channel_id not in running.gone
        return False

    async def _bridge(
        self, attempt_id: str, running: _Attempt, agent_id: str, agent_channel: str, customer: str
    ) -> CallEnd:
        bridge_id = _bridge_id(attempt_id)
        try:
            await self._client.create_bridge("mixing", name=f"callback {attempt_id}", bridge_id=bridge_id)
            await self._client.add_channel(bridge_id, agent_channel, customer)
        except CallCenterError as exc:
            await self._hang_up(running, agent_channel, customer)
            return CallEnd(
                result=AttemptResult.ERROR, cause=f"could not bridge the call: {exc}", agent_id=agent_id
            )
        if running.gone & {agent_channel, customer}:
            await self._hang_up(running, agent_channel, customer)
            return CallEnd(
                result=AttemptResult.ERROR, cause="a party hung up while being bridged", agent_id=agent_id
            )
        running.bridged = (agent_channel, customer)
        return CallEnd(
            result=AttemptResult.CONNECTED,
            cause="customer pressed 1; bridged to the agent",
            agent_id=agent_id,
        )

    async def conversation(self, attempt_id: str) -> float:
        """Wait until either party of a connected attempt hangs up; hang up the other, end the bridge."""
        started = time.monotonic()
        async with self._routed(attempt_id) as running:
            if running.bridged is not None:
                await self._until_one_leaves(running, attempt_id, running.bridged)
            else:
                await self._until_one_leaves_listed(running, attempt_id)
        with contextlib.suppress(CallCenterError):
            await self._client.destroy_bridge(_bridge_id(attempt_id))
        return time.monotonic() - started

    async def _until_one_leaves(self, running: _Attempt, attempt_id: str, channels: tuple[str, str]) -> None:
        """The call this process bridged: its two channels are known, so only their events are
        awaited (no channel listing per event); a quiet call is checked against ``GET /channels``
        now and then, should an end have been missed."""
        while True:
            if running.gone & set(channels):
                await self._hang_up(running, *channels)
                return
            event = await self._next(running, time.monotonic() + _QUIET_CHECK_S)
            if event is None:
                left = (await self.present()).get(attempt_id, frozenset())
                if len(left & set(channels)) < 2:
                    await self.hang_up(left)
                    return
            elif isinstance(event, ChannelHangupRequest) and event.channel.id in channels:
                await self._hang_up(running, *channels)
                return

    async def _until_one_leaves_listed(self, running: _Attempt, attempt_id: str) -> None:
        """A call this process did not bridge (found by reconcile): follow it by listing channels."""
        while True:
            present = (await self.present()).get(attempt_id, frozenset())
            if len(present) < 2:
                await self.hang_up(present)
                return
            event = await self._next(running, time.monotonic() + 5.0)
            if isinstance(event, ChannelDestroyed | StasisEnd | ChannelHangupRequest):
                await self.hang_up(await self._channels_of(attempt_id))
                return

    # -- reconcile ------------------------------------------------------------------------------------

    async def present(self) -> dict[str, frozenset[str]]:
        found: dict[str, set[str]] = {}
        for channel in await self._client.list_channels():
            leg = leg_of(channel.id)
            if leg is not None:
                found.setdefault(leg[1], set()).add(channel.id)
        return {attempt: frozenset(ids) for attempt, ids in found.items()}

    async def hang_up(self, channel_ids: frozenset[str]) -> None:
        for channel_id in channel_ids:
            with contextlib.suppress(NotFoundError):
                try:
                    await self._client.hangup(channel_id)
                except CallCenterError as exc:
                    if not isinstance(exc, NotFoundError):
                        logger.warning("callback: could not hang up %s: %s", channel_id, exc)

    async def _channels_of(self, attempt_id: str) -> frozenset[str]:
        return (await self.present()).get(attempt_id, frozenset())

    # -- helpers --------------------------------------------------------------------------------------

    async def _next(self, running: _Attempt, deadline: float) -> AriEvent | None:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        try:
            async with asyncio.timeout(left):
                event = await running.inbox.get()
        except TimeoutError:
            return None
        if isinstance(event, ChannelDestroyed | StasisEnd):
            running.gone.add(event.channel.id)
        return event

    async def _hang_up(self, running: _Attempt, *channel_ids: str) -> None:
        await self.hang_up(frozenset(c for c in channel_ids if c not in running.gone))


def _dial_outcome(cause: int) -> DialOutcome:
    if cause in _BUSY_CAUSES:
        return DialOutcome.BUSY
    if cause in _ERROR_CAUSES:
        return DialOutcome.FAILED
    return DialOutcome.NO_ANSWER  # 16 before an answer, 18 no response, 19 no answer, 31 ...


def _result_of(outcome: DialOutcome) -> AttemptResult:
    return {
        DialOutcome.NO_ANSWER: AttemptResult.NO_ANSWER,
        DialOutcome.BUSY: AttemptResult.BUSY,
    }.get(outcome, AttemptResult.ERROR)


def _bridge_id(attempt_id: str) -> str:
    return f"cbbr-{attempt_id}"


async def _whisper(job: CallJob) -> tuple[str, ...]:
    """The whisper's media list as ARI media URIs (``sound:callcenter/...``, ``digits:``, ``number:``,
    ``sound:/spool/callcenter-preview-...``), with the reason and the voicemail preview once ready
    (normally long done: they were read and rendered while the agent's phone rang)."""
    whisper = job.whisper
    if job.reason is not None:
        try:
            async with asyncio.timeout(_REASON_WAIT_S):
                whisper = dataclasses.replace(whisper, reason=await job.reason)
        except TimeoutError:
            logger.warning(
                "callback attempt %s: its reason was not read in time; not whispered", job.attempt.id
            )
    if job.preview is not None:
        try:
            async with asyncio.timeout(_PREVIEW_WAIT_S):
                whisper = dataclasses.replace(whisper, preview=await job.preview)
        except TimeoutError:
            # The preview is still written (the next attempt plays it); this agent has waited enough.
            logger.warning(
                "callback attempt %s: the voicemail preview was not ready in time; not played", job.attempt.id
            )
    return tuple(f"{item.kind.value}:{item.value}" for item in whisper_media(whisper))
