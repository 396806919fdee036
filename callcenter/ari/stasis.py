"""Glue between the ARI link and the queue: events to call facts, channel events to waiting channels (edge).

:class:`StasisDispatcher` is the link's handler and its resync. Every event is translated into queue
facts for the :class:`~callcenter.queue.ports.CallFactSink`; the events a voice flow waits on (DTMF,
playback and recording ends, hang-up) are also handed to whoever subscribed to that channel
(:class:`~callcenter.ari.channel.AriChannel`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Final, TypeAlias

from callcenter.ari.client import AriClient
from callcenter.ari.events import (
    AriEvent,
    ChannelDestroyed,
    ChannelDtmfReceived,
    ChannelHangupRequest,
    ChannelState,
    PlaybackContinuing,
    PlaybackFinished,
    PlaybackStarted,
    RecordingFailed,
    RecordingFinished,
    RecordingStarted,
    StasisEnd,
    StasisStart,
)
from callcenter.ari.link import ReceivedAt
from callcenter.ari.translate import ORIGINATED_TAGS, call_arrived, stasis_args, translate
from callcenter.clock import Clock, SystemClock
from callcenter.errors import CallCenterError
from callcenter.queue.detection import AnyCallFact, CallAnswered
from callcenter.queue.ports import CallFactSink

logger = logging.getLogger(__name__)

#: Event types neither the queue nor a voice flow acts on. Asterisk is asked not to send them
#: (:meth:`StasisDispatcher.filter_events`): ``ChannelVarset`` alone is half of a call's events (the
#: ``BRIDGEPEER`` rounds of every bridging, five ``RTPAUDIOQOS*`` per channel at hang-up).
UNUSED_EVENT_TYPES: Final = (
    "ChannelVarset",
    "ChannelDialplan",
    "ChannelCallerId",
    "ChannelConnectedLine",
    "ChannelEnteredBridge",
    "ChannelLeftBridge",
    "ChannelHold",
    "ChannelUnhold",
    "ChannelTalkingStarted",
    "ChannelTalkingFinished",
    "BridgeCreated",
    "BridgeDestroyed",
    "BridgeMerged",
    "DeviceStateChanged",
)


@dataclass(frozen=True, slots=True)
class LinkResynced:
    """Told to channel subscribers after a reconnect: events may have been missed meanwhile.

    ``present`` is whether the channel is still on the PBX; a waiter re-reads what it waits for
    (a playback or recording that vanished finished while the link was down).
    """

    channel_id: str
    present: bool


#: What a channel subscription receives.
ChannelNotice: TypeAlias = (
    ChannelDtmfReceived
    | ChannelHangupRequest
    | ChannelDestroyed
    | StasisStart
    | StasisEnd
    | PlaybackStarted
    | PlaybackContinuing
    | PlaybackFinished
    | RecordingStarted
    | RecordingFinished
    | RecordingFailed
    | LinkResynced
)


class ChannelSubscription:
    """The notices of one channel, in arrival order. Close it (or use ``with``) when done."""

    def __init__(self, channel_id: str) -> None:
        self.channel_id = channel_id
        self._queue: asyncio.Queue[ChannelNotice] = asyncio.Queue()

    def put(self, notice: ChannelNotice) -> None:
        self._queue.put_nowait(notice)

    async def get(self) -> ChannelNotice:
        """The next notice (waits; put it under a timeout)."""
        return await self._queue.get()

    def get_nowait(self) -> ChannelNotice | None:
        try:
            return self._queue.get_nowait()
        except asyncio.QueueEmpty:
            return None


class StasisDispatcher:
    """The link's event handler (:meth:`on_event`) and resync (:meth:`resync`).

    :param sink: the queue service.
    :param client: for the resync's ``GET /channels``.
    :param default_region: region of caller ids in national format.
    :param clock: stamps the facts the resync makes (the queue service's clock).
    """

    def __init__(
        self,
        sink: CallFactSink,
        client: AriClient,
        *,
        default_region: str = "US",
        clock: Clock | None = None,
    ) -> None:
        self._sink = sink
        self._client = client
        self._region = default_region
        self._clock = clock or SystemClock()
        self._subscribers: dict[str, list[ChannelSubscription]] = {}

    @contextmanager
    def subscribe(self, channel_id: str) -> Iterator[ChannelSubscription]:
        """Receive the channel's notices from now on, until the ``with`` block ends."""
        subscription = ChannelSubscription(channel_id)
        self._subscribers.setdefault(channel_id, []).append(subscription)
        try:
            yield subscription
        finally:
            subscribers = self._subscribers.get(channel_id, [])
            if subscription in subscribers:
                subscribers.remove(subscription)
            if not subscribers:
                self._subscribers.pop(channel_id, None)

    def subscriber_count(self, channel_id: str) -> int:
        return len(self._subscribers.get(channel_id, ()))

    async def on_event(self, event: AriEvent, received_at: ReceivedAt) -> None:
        """Hand the event to its channel's subscribers, then its facts to the sink's queue (one by one)."""
        self._notify(event)
        facts = translate(
            event, self._sink.agent_legs, default_region=self._region, received_at=received_at.wall
        )
        # Queued, not awaited: the link reads on while the sink answers Asterisk (each call in order).
        for fact in facts:
            try:
                self._sink.submit(fact)
            except Exception:
                logger.exception("queue sink refused %s for call %s", type(fact).__name__, fact.call_id)

    async def filter_events(self, app: str) -> bool:
        """Ask Asterisk not to send ``app`` the :data:`UNUSED_EVENT_TYPES`; never raises.

        Call it after every connect: the filter lives with the application in Asterisk, which forgets
        it on a restart. Events already on their way still come and are parsed as before; an Asterisk
        that refuses (older than 13.26 and 16.3: no such route) costs only the saving.
        """
        try:
            application = await self._client.set_event_filter(app, disallowed=UNUSED_EVENT_TYPES)
        except CallCenterError as exc:
            logger.warning("ARI: events of %s not filtered at Asterisk (all are read): %s", app, exc)
            return False
        logger.debug("ARI: %s gets no %s events", app, ", ".join(application.events_disallowed))
        return True

    async def resync(self) -> None:
        """After a (re)connect: rebuild the sink's view from ``GET /channels``, then reconcile.

        Inbound calls sitting in our application are re-announced (``CallArrived`` is idempotent, so a
        call the sink knows changes nothing); answered agent legs are re-announced as answered; then
        ``reconcile`` decides the calls whose channels vanished while the link was down. Channel
        subscribers are told to re-check what they wait on.
        """
        channels = await self._client.list_channels()
        present = frozenset(channel.id for channel in channels)
        legs = self._sink.agent_legs
        now = self._clock.now()
        facts: list[AnyCallFact] = []
        for channel in channels:
            args = stasis_args(channel)
            if args is None:
                continue  # not in our application (an agent leg still ringing, another app's channel)
            leg = legs.get(channel.id)
            if leg is not None:
                if channel.state is ChannelState.UP:
                    facts.append(CallAnswered(call_id=leg.call_id, agent_id=leg.agent_id, at=now))
                continue
            if args and args[0] in ORIGINATED_TAGS:
                continue
            queue = args[0] if args and args[0] else None
            facts.append(call_arrived(channel, queue, default_region=self._region))
        await self._handle_all(facts)
        await self._sink.reconcile(present)
        for channel_id, subscribers in list(self._subscribers.items()):
            for subscription in subscribers:
                subscription.put(LinkResynced(channel_id=channel_id, present=channel_id in present))
        logger.info("ARI resync: %d channels on the PBX, %d facts re-announced", len(present), len(facts))

    async def _handle_all(self, facts: tuple[AnyCallFact, ...] | list[AnyCallFact]) -> None:
        for fact in facts:
            try:
                await self._sink.handle(fact)
            except Exception:
                # The sink promises not to raise; if it does, the other facts still go through.
                logger.exception("queue sink failed on %s for call %s", type(fact).__name__, fact.call_id)

    def _notify(self, event: AriEvent) -> None:
        match event:
            case (
                ChannelDtmfReceived(channel=channel)
                | ChannelHangupRequest(channel=channel)
                | ChannelDestroyed(channel=channel)
                | StasisStart(channel=channel)
                | StasisEnd(channel=channel)
            ):
                self._deliver(channel.id, event)
            case PlaybackStarted() | PlaybackContinuing() | PlaybackFinished():
                if event.playback.channel_id is not None:
                    self._deliver(event.playback.channel_id, event)
            case RecordingStarted() | RecordingFinished() | RecordingFailed():
                if event.recording.channel_id is not None:
                    self._deliver(event.recording.channel_id, event)

    def _deliver(self, channel_id: str, notice: ChannelNotice) -> None:
        for subscription in self._subscribers.get(channel_id, ()):
            subscription.put(notice)
