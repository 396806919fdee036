"""Composition of the callback dispatcher: its lease, its own ARI application and its loop (wiring).

Part of the composition root (``callcenter/app.py`` calls :func:`build_dispatch`). The dispatcher holds the
lease ``callback-dispatcher`` through its own ARI events socket (application ``<app>-callbacks``):
the link connects only while the lease is held, runs :meth:`CallbackDispatcher.reconcile` after each
connect, and the loop ticks only while the link is up, with the lease's fencing token.

The dispatcher picks agents from the live queue, which only the process holding the ARI link's lease
sees (its ``QueueService`` is the one Asterisk's events drive). So the dispatcher lease is taken and
kept only while this process's ARI link is up (:class:`GatedLease`): the dispatcher runs in the
process that owns the ARI link, and moves with it. Its fencing token still guards every dial.

Kept places are shown to the queue through one :class:`~callcenter.callbacks.line.CallbackLine`:
the dispatcher refreshes it each tick, the queue keeps a free agent back for a kept place at the head
of the line and wakes the loop, which releases the kept place and dials it at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import time
from typing import Final, NoReturn

import aiohttp
from redis import asyncio as aioredis

from callcenter.ari.client import AriClient
from callcenter.ari.link import AriLink, LinkStatus
from callcenter.ari.originate import AriCallbackCalls, CallbackCallSettings
from callcenter.bus import Delivery, EventBus
from callcenter.callbacks.desk import QueueAgentDesk
from callcenter.callbacks.dispatch import DispatchSettings
from callcenter.callbacks.dispatch_ports import (
    AgentPicker,
    CallEnd,
    CallJob,
    PlaceEstimator,
    Progress,
    VoicemailPreviews,
)
from callcenter.callbacks.dispatcher import CallbackDispatcher, CallerIds
from callcenter.callbacks.line import CallbackLine
from callcenter.callbacks.service import CallbackService
from callcenter.callbacks.sources import CallbackSources, SourceSettings
from callcenter.callbacks.worklist import Worklist
from callcenter.clock import Clock
from callcenter.config import Settings
from callcenter.errors import LeaseLostError
from callcenter.model.events import AgentQueuesChanged, AgentScheduleChanged, CallEnded
from callcenter.model.records import CallRecord, QueueRecord
from callcenter.model.vocabulary import AttemptResult
from callcenter.queue.service import QueueService
from callcenter.store.redis_keys import RedisKeys
from callcenter.store.redis_lease import RedisLease, default_owner_id
from callcenter.store.sql_dispatch import SqlDispatchStore

logger = logging.getLogger(__name__)

DISPATCH_ROLE: Final = "callback-dispatcher"
DISPATCH_LEASE_TTL_MS: Final = 10_000
#: The bus consumer group that closes callbacks of callers answered inbound.
CONSUMER_GROUP: Final = "callback-dispatch"

#: The event types :meth:`DispatchRuntime.handle` acts on; the bus acknowledges the others unread (``only``).
HANDLED_EVENTS: Final = frozenset(
    {CallEnded.event_type, AgentQueuesChanged.event_type, AgentScheduleChanged.event_type}
)


def dispatch_settings(settings: Settings) -> DispatchSettings:
    """``DispatchSettings`` from ``CALLCENTER_DISPATCH_*``. :raises ValidationError:"""
    config = settings.dispatch
    return DispatchSettings(
        dial_from=time.fromisoformat(config.dial_from),
        dial_until=time.fromisoformat(config.dial_until),
        max_attempts=config.max_attempts,
        retry_s=config.retry_s,
        retry_factor=config.retry_factor,
        retry_max_s=config.retry_max_s,
        expire_after_s=config.expire_after_s,
        late_alert_s=config.late_alert_s,
        confirm_s=config.confirm_s,
        agent_ring_s=config.agent_ring_s,
        customer_ring_s=config.customer_ring_s,
        poll_s=config.poll_s,
        disposition_wait_s=config.disposition_wait_s,
    )


class GatedLease:
    """A :class:`RedisLease` taken and kept only while ``gate()`` is true (the ARI link is up here).

    When the gate closes, :meth:`keep` gives the lease up and raises :class:`LeaseLostError`, so the
    dispatcher's link stands by and the process that now owns the ARI link takes the dispatcher over.
    """

    def __init__(self, inner: RedisLease, gate: Callable[[], bool], *, check_s: float = 0.2) -> None:
        self._inner = inner
        self._gate = gate
        self._check_s = check_s

    @property
    def token(self) -> int | None:
        return self._inner.token if self._gate() else None

    @property
    def lost(self) -> asyncio.Event:
        return self._inner.lost

    async def acquire(self) -> int | None:
        if not self._gate():
            return None
        return await self._inner.acquire()

    async def renew(self) -> bool:
        return await self._inner.renew()

    async def release(self) -> None:
        await self._inner.release()

    async def check_token(self, token: int) -> bool:
        return await self._inner.check_token(token)

    async def keep(self) -> NoReturn:
        keeper = asyncio.create_task(self._inner.keep(), name="dispatch-lease-keeper")
        try:
            while True:
                if not self._gate():
                    await self._inner.release()
                    raise LeaseLostError("the ARI link is not up in this process: dispatcher lease given up")
                done, _ = await asyncio.wait({keeper}, timeout=self._check_s)
                if done:
                    keeper.result()  # raises LeaseLostError: keep() never returns
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError, LeaseLostError):
                await keeper


@dataclass
class DispatchRuntime:
    """The dispatcher of this process, its store, its link and the other sources of callbacks."""

    dispatcher: CallbackDispatcher
    store: SqlDispatchStore
    sources: CallbackSources
    worklist: Worklist
    link: AriLink | None
    lease: RedisLease | GatedLease | None
    poll_s: float
    line: CallbackLine | None = None
    callbacks: CallbackService | None = None
    wake: asyncio.Event | None = None

    async def run(self, bus: EventBus) -> None:
        """The link (lease and events), the tick loop and the inbound-call consumer, until cancelled."""
        never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        consumer = asyncio.create_task(
            bus.consume(
                CONSUMER_GROUP,
                default_owner_id(),
                self.handle,
                stop=never,
                only=HANDLED_EVENTS,
                batch=self.handle_many,
            ),
            name="callback-inbound-consumer",
        )
        try:
            if self.link is not None and self.lease is not None:
                release = self.callbacks.release_due if self.callbacks is not None else None
                await run_dispatch_loop(
                    self.dispatcher,
                    self.link,
                    self.lease,
                    poll_s=self.poll_s,
                    wake=self.wake,
                    on_wake=release,
                )
            else:
                await never
        finally:
            consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await consumer

    async def handle(self, delivery: Delivery) -> None:
        """Bus handler: inbound answers close callbacks; staffing changes check booked slots at once."""
        await self.handle_many((delivery,))

    async def handle_many(self, deliveries: Sequence[Delivery]) -> None:
        """:meth:`handle` of the events read together (the callers' callbacks read at once)."""
        await self.dispatcher.handle_many(deliveries)
        if self.callbacks is not None:
            for delivery in deliveries:
                await self.callbacks.handle_staffing(delivery.event)


async def run_dispatch_loop(
    dispatcher: CallbackDispatcher,
    link: AriLink,
    lease: RedisLease | GatedLease,
    *,
    poll_s: float,
    wake: asyncio.Event | None = None,
    on_wake: Callable[[], Awaitable[object]] | None = None,
) -> None:
    """Run the dispatcher's link (which holds the lease) and tick while it is up, until cancelled.

    Ticks every ``poll_s``, sooner when a callback falls due before that (the dispatcher reads a poll
    ahead), and at once when ``wake`` is set (the queue kept an agent back for a kept place): then
    ``on_wake`` runs first (it releases the kept place).

    When the lease is lost the attempts this process runs are cancelled: the next holder's
    reconcile ends them (their channels hung up) and dials again as new attempts.
    """
    link_task = asyncio.create_task(link.run(), name="dispatch-link")
    was_leading = False
    woken = False
    try:
        while True:
            leading = link.status is LinkStatus.UP and lease.token is not None
            if was_leading and not leading:
                logger.warning("callback dispatcher: lease lost; stopping the attempts of this process")
                await dispatcher.stop()
            was_leading = leading
            if leading:
                if woken and on_wake is not None:
                    try:
                        await on_wake()
                    except Exception:
                        logger.exception("callback dispatcher: release on wake-up failed")
                await dispatcher.tick()
            woken = await _pause(dispatcher.pause_s(poll_s) if leading else poll_s, wake)
    finally:
        link_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await link_task
        await dispatcher.stop()


async def _pause(poll_s: float, wake: asyncio.Event | None) -> bool:
    """Sleep ``poll_s`` or until ``wake`` is set; whether it was."""
    if wake is None:
        await asyncio.sleep(poll_s)
        return False
    if not wake.is_set():
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(poll_s):
                await wake.wait()
    woken = wake.is_set()
    wake.clear()
    return woken


def build_dispatch(
    settings: Settings,
    *,
    session: aiohttp.ClientSession,
    client: AriClient | None,
    redis: aioredis.Redis,
    store: SqlDispatchStore,
    queue: QueueService,
    callbacks: CallbackService,
    bus: EventBus,
    clock: Clock,
    ari_link: AriLink | None = None,
    previews: VoicemailPreviews | None = None,
    estimator: PlaceEstimator | None = None,
) -> DispatchRuntime:
    """The dispatcher runtime; without ARI (or with ``CALLCENTER_DISPATCH_ENABLED=false``) it never
    dials, but its store and the callback sources still serve the API.

    :param ari_link: this process's link to Asterisk: the dispatcher leads only while it is up here.
    :param previews: the voicemail previews the whisper plays (``CALLCENTER_DISPATCH_PREVIEW_S``).
    :param estimator: the queue's wait estimator: a late callback's alert says when it is now expected.
    """
    config = settings.dispatch
    dispatch = dispatch_settings(settings)
    sources = CallbackSources(
        store, callbacks, bus, clock, settings=SourceSettings(personal_s=config.personal_s)
    )
    app = f"{settings.ari.app}-callbacks"
    calls: AriCallbackCalls | NoPbxCalls = NoPbxCalls()
    ari_calls: AriCallbackCalls | None = None
    if client is not None:
        calls = ari_calls = AriCallbackCalls(
            client,
            CallbackCallSettings(
                app=app,
                customer_endpoint=config.customer_endpoint,
                confirm_media=config.confirm_media,
                confirm_s=config.confirm_s,
                agent_ring_s=config.agent_ring_s,
                customer_ring_s=config.customer_ring_s,
                whisper=config.whisper,
            ),
            clock=clock,
        )
    lease: GatedLease | None = None
    link: AriLink | None = None
    if client is not None and config.enabled and ari_link is not None:
        queue_link = ari_link
        lease = GatedLease(
            RedisLease(
                redis,
                RedisKeys(settings.redis.key_prefix),
                DISPATCH_ROLE,
                default_owner_id(),
                DISPATCH_LEASE_TTL_MS,
            ),
            lambda: queue_link.status is LinkStatus.UP,
        )
    held = lease

    def token() -> int | None:
        if held is None or link is None or link.status is not LinkStatus.UP:
            return None
        return held.token

    # Kept places shown to this process's queue; a view older than a few ticks counts for nothing.
    line = CallbackLine(ttl_s=max(5.0, 10 * dispatch.poll_s))
    wake = asyncio.Event()
    line.listen(lambda _queue, _agent: wake.set())
    queue.use_kept_places(line)
    callbacks.use_line(line)

    dispatcher = CallbackDispatcher(
        store,
        calls,
        QueueAgentDesk(queue),
        _QueueSettings(queue),
        bus,
        clock,
        role=DISPATCH_ROLE,
        token=token,
        settings=dispatch,
        caller_ids=CallerIds(default=config.caller_id),
        customer_first=frozenset(config.customer_first_queues),
        line=line,
        previews=previews,
        estimator=estimator,
    )
    if lease is not None and ari_calls is not None:
        link = AriLink(
            session,
            dataclasses.replace(settings.ari, app=app),
            ari_calls.on_event,
            on_connected=dispatcher.reconcile,
            lease=lease,
            # While the gate is closed a retry costs nothing (no Redis call): take the lease soon
            # after this process's ARI link comes up.
            standby_retry_s=0.5,
        )
    worklist = Worklist(
        store, _QueueAgents(queue), _QueueAgents(queue), clock, sources=sources, callbacks=callbacks
    )
    return DispatchRuntime(
        dispatcher=dispatcher,
        store=store,
        sources=sources,
        worklist=worklist,
        link=link,
        lease=lease,
        poll_s=dispatch.poll_s,
        line=line,
        callbacks=callbacks,
        wake=wake,
    )


class _QueueSettings:
    """Queue settings read through the queue service (its cache follows API changes)."""

    def __init__(self, queue: QueueService) -> None:
        self._queue = queue

    async def get(self, name: str) -> QueueRecord:
        return await self._queue.queue_or_default(name)

    async def list(self) -> tuple[QueueRecord, ...]:
        return await self._queue.list_queues()


class _QueueAgents:
    """Agents' queues and callers' recent calls, read through the queue service."""

    def __init__(self, queue: QueueService) -> None:
        self._queue = queue

    async def queues_of(self, agent_id: str) -> tuple[str, ...]:
        return (await self._queue.get_agent(agent_id)).record.queues

    async def recent_calls_of(
        self, numbers: Collection[str], limit: int
    ) -> Mapping[str, Sequence[CallRecord]]:
        return await self._queue.recent_calls_of(numbers, limit)


class NoPbxCalls:
    """``CallbackCalls`` of a process without Asterisk: nothing can be dialled (it never leads)."""

    async def run(self, job: CallJob, agents: AgentPicker, progress: Progress) -> CallEnd:
        return CallEnd(result=AttemptResult.ERROR, cause="no Asterisk is configured (CALLCENTER_ARI_URL)")

    async def conversation(self, attempt_id: str) -> float:
        return 0.0

    async def present(self) -> dict[str, frozenset[str]]:
        return {}

    async def hang_up(self, channel_ids: frozenset[str]) -> None:
        return None
