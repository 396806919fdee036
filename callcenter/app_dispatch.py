"""Composition of the callback dispatcher: its lease, its own ARI application and its loop (wiring).

Part of the composition root (``app.py`` calls :func:`build_dispatch`). The dispatcher holds the
lease ``callback-dispatcher`` through its own ARI events socket (application ``<app>-callbacks``):
the link connects only while the lease is held, runs :meth:`CallbackDispatcher.reconcile` after each
connect, and the loop ticks only while the link is up, with the lease's fencing token.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import time
from typing import Final

import aiohttp
from redis import asyncio as aioredis

from callcenter.ari.client import AriClient
from callcenter.ari.link import AriLink, LinkStatus
from callcenter.ari.originate import AriCallbackCalls, CallbackCallSettings
from callcenter.bus import EventBus
from callcenter.callbacks.desk import QueueAgentDesk
from callcenter.callbacks.dispatch import DispatchSettings
from callcenter.callbacks.dispatch_ports import AgentPicker, CallEnd, CallJob, Progress
from callcenter.callbacks.dispatcher import CallbackDispatcher, CallerIds
from callcenter.callbacks.service import CallbackService
from callcenter.callbacks.sources import CallbackSources, SourceSettings
from callcenter.callbacks.worklist import Worklist
from callcenter.clock import Clock
from callcenter.config import Settings
from callcenter.model.records import CallRecord, QueueRecord
from callcenter.model.vocabulary import AttemptResult
from callcenter.queue.ports import CallFilter
from callcenter.queue.service import QueueService
from callcenter.store.redis_keys import RedisKeys
from callcenter.store.redis_lease import RedisLease, default_owner_id
from callcenter.store.sql_dispatch import SqlDispatchStore

logger = logging.getLogger(__name__)

DISPATCH_ROLE: Final = "callback-dispatcher"
DISPATCH_LEASE_TTL_MS: Final = 10_000
#: The bus consumer group that closes callbacks of callers answered inbound.
CONSUMER_GROUP: Final = "callback-dispatch"


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


@dataclass
class DispatchRuntime:
    """The dispatcher of this process, its store, its link and the other sources of callbacks."""

    dispatcher: CallbackDispatcher
    store: SqlDispatchStore
    sources: CallbackSources
    worklist: Worklist
    link: AriLink | None
    lease: RedisLease | None
    poll_s: float

    async def run(self, bus: EventBus) -> None:
        """The link (lease and events), the tick loop and the inbound-call consumer, until cancelled."""
        never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        consumer = asyncio.create_task(
            bus.consume(CONSUMER_GROUP, default_owner_id(), self.dispatcher.handle, stop=never),
            name="callback-inbound-consumer",
        )
        try:
            if self.link is not None and self.lease is not None:
                await run_dispatch_loop(self.dispatcher, self.link, self.lease, poll_s=self.poll_s)
            else:
                await never
        finally:
            consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await consumer


async def run_dispatch_loop(
    dispatcher: CallbackDispatcher, link: AriLink, lease: RedisLease, *, poll_s: float
) -> None:
    """Run the dispatcher's link (which holds the lease) and tick while it is up, until cancelled.

    When the lease is lost the attempts this process runs are cancelled: the next holder's
    reconcile ends them (their channels hung up) and dials again as new attempts.
    """
    link_task = asyncio.create_task(link.run(), name="dispatch-link")
    was_leading = False
    try:
        while True:
            leading = link.status is LinkStatus.UP and lease.token is not None
            if was_leading and not leading:
                logger.warning("callback dispatcher: lease lost; stopping the attempts of this process")
                await dispatcher.stop()
            was_leading = leading
            if leading:
                await dispatcher.tick()
            await asyncio.sleep(poll_s)
    finally:
        link_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await link_task
        await dispatcher.stop()


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
) -> DispatchRuntime:
    """The dispatcher runtime; without ARI (or with ``CALLCENTER_DISPATCH_ENABLED=false``) it never
    dials, but its store and the callback sources still serve the API."""
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
    lease: RedisLease | None = None
    link: AriLink | None = None
    if client is not None and config.enabled:
        lease = RedisLease(
            redis,
            RedisKeys(settings.redis.key_prefix),
            DISPATCH_ROLE,
            default_owner_id(),
            DISPATCH_LEASE_TTL_MS,
        )
    held = lease

    def token() -> int | None:
        if held is None or link is None or link.status is not LinkStatus.UP:
            return None
        return held.token

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
    )
    if lease is not None and ari_calls is not None:
        link = AriLink(
            session,
            dataclasses.replace(settings.ari, app=app),
            ari_calls.on_event,
            on_connected=dispatcher.reconcile,
            lease=lease,
        )
    worklist = Worklist(store, _QueueAgents(queue), _QueueAgents(queue), clock, sources=sources)
    return DispatchRuntime(
        dispatcher=dispatcher,
        store=store,
        sources=sources,
        worklist=worklist,
        link=link,
        lease=lease,
        poll_s=dispatch.poll_s,
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

    async def recent_calls(self, number: str, limit: int) -> Sequence[CallRecord]:
        return (await self._queue.list_calls(CallFilter(caller=number), cursor=None, limit=limit)).items


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
