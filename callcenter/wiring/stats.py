"""Wiring of the statistics: definitions from the settings, the service, and its start-up load and tasks.

Part of the composition root: ``callcenter/app.py`` calls :func:`build_stats` and :func:`statistics`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from aiohttp import web

from callcenter.api.stats import render_wallboard
from callcenter.clock import Clock
from callcenter.config import Settings
from callcenter.model.events import CallQueued
from callcenter.stats.definitions import StatsConfig
from callcenter.stats.feed import SnapshotFeed
from callcenter.stats.service import CONSUMER_GROUP as STATS_CONSUMER_GROUP
from callcenter.stats.service import HANDLED_EVENTS as STATS_HANDLED_EVENTS
from callcenter.stats.service import StatsService
from callcenter.store.redis_lease import default_owner_id
from callcenter.store.redis_tail import RedisEventTail
from callcenter.store.sql_stats import SqlStatsRepository
from callcenter.tasks import stop_tasks

if TYPE_CHECKING:
    from callcenter.app import Services, Store

logger = logging.getLogger(__name__)


def stats_config(settings: Settings) -> StatsConfig:
    """The metric definitions' parameters from the settings (queue thresholds come from the store)."""
    return StatsConfig(
        service_level_s=settings.stats.service_level_s,
        closure_window_s=settings.stats.closure_window_s,
        conversion_rate=settings.stats.conversion_rate,
        average_value=settings.stats.average_value,
    )


def build_stats(settings: Settings, store: Store, clock: Clock) -> StatsService:
    """The statistics service over the store, with the settings' definitions and time zone."""
    config = stats_config(settings)
    stats = StatsService(
        SqlStatsRepository(store.engine),
        clock,
        config,
        zone=ZoneInfo(settings.stats.time_zone),
        late_alert_s=settings.dispatch.late_alert_s,
    )
    stats.feed = SnapshotFeed(lambda: render_wallboard(stats))
    return stats


def statistics(services: Services, tail: RedisEventTail) -> Callable[[web.Application], AsyncIterator[None]]:
    """The live board (seeded from the store and the queue board, then the event tail), the
    materialiser of interval rows, and the wallboard feed."""

    async def run(_: web.Application) -> AsyncIterator[None]:
        stats, queue = services.stats, services.queue
        assert stats is not None and stats.feed is not None
        queues = await queue.list_queues()
        stats.set_service_levels({q.name: float(q.service_level_s) for q in queues})
        await stats.load_thresholds()
        stats.know_queues(q.name for q in queues)
        position = await tail.position()
        await stats.load_today()
        if services.callbacks is not None:
            await stats.load_callbacks(services.callbacks)
        if services.voicemails is not None:
            await stats.load_voicemails(services.voicemails)
        if services.sms is not None:
            await stats.load_sms(services.sms)
        cursor: str | None = None
        while True:
            page = await queue.list_agents(cursor=cursor, limit=500)
            for status in page.items:
                since = status.since or services.clock.now()
                stats.seed_agent(status.record.id, status.state, since, status.record.queues)
            cursor = page.next
            if cursor is None:
                break
        for record in queues:
            for caller in (await queue.live(record.name)).view.waiting:
                await stats.observe(
                    CallQueued(
                        event_id=f"queued:{caller.call_id}",
                        occurred_at=caller.enqueued_at,
                        call_id=caller.call_id,
                        queue=record.name,
                        caller=caller.caller.display,
                    )
                )
        stop: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        tasks = [
            asyncio.create_task(tail.follow(position, stats.observe, stop=stop), name="stats-tail"),
            asyncio.create_task(
                services.bus.consume(
                    STATS_CONSUMER_GROUP,
                    default_owner_id(),
                    stats.handle,
                    stop=stop,
                    only=STATS_HANDLED_EVENTS,
                    batch=stats.handle_many,
                ),
                name="stats-materialiser",
            ),
            asyncio.create_task(stats.feed.run(), name="wallboard-feed"),
        ]
        yield
        if not stop.done():
            stop.set_result(None)
        await stop_tasks(tasks, services.settings.shutdown_grace_s, what="statistics")

    return run
