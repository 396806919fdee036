"""Composition root: settings -> adapters -> services -> the aiohttp application (wiring only)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import secrets
import signal
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Final
from zoneinfo import ZoneInfo

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry
from redis import asyncio as aioredis
from sqlalchemy.ext.asyncio import AsyncEngine
from yarl import URL

from callcenter.agi.offers import CallbackOfferScript
from callcenter.agi.outcome import CallOutcomeRecorder, CallOutcomeScript
from callcenter.agi.server import ScriptHandler, start_agi_server
from callcenter.api.agi_outcomes import AGI_OUTCOME_RECORDER
from callcenter.api.app import build_api
from callcenter.api.callbacks import CALLBACK_SERVICE
from callcenter.api.capacity import ESTIMATE_SERVICE
from callcenter.api.dispatch import DISPATCH_STORE
from callcenter.api.queues import QUEUE_SERVICE
from callcenter.api.session import SESSION_SERVICE, install_session_routes
from callcenter.api.sms import SMS_HTTP, SmsHttp, WebhookSettings
from callcenter.api.stats import STATS_SERVICE, render_wallboard
from callcenter.api.stats_metrics import StatsCollector
from callcenter.api.voicemails import VOICEMAIL_SERVICE
from callcenter.api.wallboard import install_wallboard_routes
from callcenter.api.worklist import DISPATCHER, WORKLIST
from callcenter.app_dispatch import DispatchRuntime, build_dispatch
from callcenter.ari.callcontrol import AriCallControl
from callcenter.ari.client import AriClient
from callcenter.ari.link import AriLink
from callcenter.ari.offers import AriCallbackOffers, ari_channels
from callcenter.ari.stasis import StasisDispatcher
from callcenter.asterisk_names import AGI_CALL_OUTCOME, AGI_CALLBACK_OFFER, AGI_VOICEMAIL
from callcenter.auth.service import AuthService
from callcenter.auth.sessions import SessionService
from callcenter.callbacks.policy import OfferSettings
from callcenter.callbacks.service import CallbackService, CallbackSettings
from callcenter.callbacks.slots import SlotSettings
from callcenter.capacity.service import CONSUMER_GROUP, EstimateService
from callcenter.clock import Clock, SystemClock
from callcenter.config import AriSettings, Settings
from callcenter.errors import ConfigError, ConflictError, RedisUnavailableError, ValidationError
from callcenter.model.events import CallQueued
from callcenter.model.records import QueueRecord
from callcenter.model.vocabulary import CallOutcome, Role
from callcenter.queue.nopbx import NoPbxCallControl
from callcenter.queue.ports import CallControl
from callcenter.queue.service import QueueService
from callcenter.sms.keywords import DEFAULT_RULES as DEFAULT_KEYWORD_RULES
from callcenter.sms.keywords import KeywordRules
from callcenter.sms.ports import SmsProvider
from callcenter.sms.quiet import parse_quiet_rules
from callcenter.sms.rules import SmsRules
from callcenter.sms.service import CONSUMER_GROUP as SMS_CONSUMER_GROUP
from callcenter.sms.service import EngineSettings, SmsEngine
from callcenter.sms.templates import Templates, parse_templates
from callcenter.sms_gateways.console import ConsoleProvider
from callcenter.sms_gateways.kannel import KannelProvider, KannelSettings
from callcenter.sms_gateways.twilio import TwilioProvider, TwilioSettings
from callcenter.stats.definitions import StatsConfig
from callcenter.stats.feed import SnapshotFeed
from callcenter.stats.service import CONSUMER_GROUP as STATS_CONSUMER_GROUP
from callcenter.stats.service import StatsService
from callcenter.store.database import check_connection, create_engine, current_revision, upgrade
from callcenter.store.media_files import MediaFolder
from callcenter.store.redis_bus import RedisEventBus
from callcenter.store.redis_conn import open_redis, redis_ok
from callcenter.store.redis_keys import RedisKeys
from callcenter.store.redis_lease import RedisLease, default_owner_id
from callcenter.store.redis_sessions import RedisSessionStore
from callcenter.store.redis_tail import RedisEventTail
from callcenter.store.sql_callbacks import SqlCallbackRepository
from callcenter.store.sql_capacity import SqlPredictionLog, SqlScheduleRepository
from callcenter.store.sql_dispatch import SqlDispatchStore
from callcenter.store.sql_repos import (
    SqlAgentRepository,
    SqlAuditLog,
    SqlCallRepository,
    SqlQueueRepository,
    SqlStepStore,
    SqlTokenRepository,
)
from callcenter.store.sql_sms import SqlSmsStore
from callcenter.store.sql_stats import SqlStatsRepository
from callcenter.store.sql_voicemails import SqlVoicemailRepository
from callcenter.voicemail import service as voicemail_service
from callcenter.voicemail.agi_script import VoicemailScript
from callcenter.voicemail.capture import AriVoicemailTaker
from callcenter.voicemail.pool import ProcessPoolAnalyser
from callcenter.voicemail.ports import SpeechAnalyser
from callcenter.voicemail.service import VoicemailService
from callcenter.voicemail.triage import DEFAULT_RULES as DEFAULT_TRIAGE_RULES
from callcenter.voicemail.triage import TriageRules, parse_rules
from ivr.voicemail import VoicemailFlow

if TYPE_CHECKING:
    from callcenter.simulator import SimulatedAsterisk

logger = logging.getLogger(__name__)

#: How often the queue service's time-driven work runs (wrap-ups, max wait, ring backstops).
TICK_S: Final = 1.0
#: Lifetime of the ARI link's lease; it is renewed every third of it.
ARI_LEASE_TTL_MS: Final = 10_000


@dataclass(frozen=True, slots=True)
class Store:
    """The SQL engine and the repositories over it."""

    engine: AsyncEngine
    calls: SqlCallRepository
    agents: SqlAgentRepository
    queues: SqlQueueRepository
    tokens: SqlTokenRepository
    audit: SqlAuditLog


@dataclass(frozen=True, slots=True)
class Services:
    """What the running process holds, for the routes and workers of later features."""

    settings: Settings
    store: Store
    redis: aioredis.Redis
    bus: RedisEventBus
    auth: AuthService
    queue: QueueService
    estimates: EstimateService
    clock: Clock
    ari_link: AriLink | None
    callbacks: CallbackService | None = None
    sms: SmsEngine | None = None
    voicemails: VoicemailService | None = None
    speech: ProcessPoolAnalyser | None = None
    stats: StatsService | None = None
    dispatch: DispatchRuntime | None = None
    voicemail_taker: AriVoicemailTaker | None = None


SERVICES: Final = web.AppKey("services", Services)


@contextlib.asynccontextmanager
async def open_store(settings: Settings) -> AsyncIterator[Store]:
    """The store for the life of the block: connected, and migrated unless auto-migrate is off.

    :raises StoreUnavailableError: when the database does not connect (the password never shown).
    """
    engine = create_engine(settings.database)
    try:
        await check_connection(engine)
        if settings.database.auto_migrate:
            await upgrade(engine)
        yield Store(
            engine=engine,
            calls=SqlCallRepository(engine),
            agents=SqlAgentRepository(engine),
            queues=SqlQueueRepository(engine),
            tokens=SqlTokenRepository(engine),
            audit=SqlAuditLog(engine),
        )
    finally:
        await engine.dispose()


async def migrate(settings: Settings) -> str | None:
    """``callcenter migrate``: upgrade to head and return the revision the store is now at."""
    engine = create_engine(settings.database)
    try:
        await upgrade(engine)
        return await current_revision(engine)
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def open_auth(settings: Settings) -> AsyncIterator[AuthService]:
    """The auth service over the store alone (the CLI's token commands need no Redis)."""
    async with open_store(settings) as store:
        yield AuthService(store.tokens, store.audit, SystemClock())


@contextlib.asynccontextmanager
async def open_queue_service(settings: Settings) -> AsyncIterator[QueueService]:
    """The queue service over the store and the bus, without Asterisk (the CLI's agent and queue commands)."""
    async with open_store(settings) as store, open_redis(settings.redis, settings.data_dir) as redis:
        bus = RedisEventBus(redis, RedisKeys(settings.redis.key_prefix), settings.bus)
        queue = QueueService(
            NoPbxCallControl("the command line does not talk to Asterisk"),
            store.calls,
            store.agents,
            store.queues,
            bus,
            SystemClock(),
            default_region=settings.default_region,
            steps=SqlStepStore(store.engine),
        )
        try:
            yield queue
        finally:
            await queue.close(grace_s=settings.shutdown_grace_s)


def ari_lease_role(settings: AriSettings) -> str:
    """The lease name of the ARI link of one Asterisk: one process per Asterisk holds its events socket."""
    assert settings.url is not None
    url = URL(settings.url)
    return f"ari-link.{url.host or 'asterisk'}.{url.port or 0}.{settings.app}"


async def build_app(settings: Settings, *, clock: Clock | None = None) -> web.Application:
    """Open every adapter, build the services and return the application.

    The adapters are opened here rather than in ``cleanup_ctx`` because the API's route table needs
    the auth service when it is built; they are closed, newest first, in ``on_cleanup``.

    :raises StoreUnavailableError, RedisUnavailableError: after bounded retries, naming what failed.
    """
    clock = clock or SystemClock()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    stack = contextlib.AsyncExitStack()
    try:
        store = await stack.enter_async_context(open_store(settings))
        redis = await stack.enter_async_context(open_redis(settings.redis, settings.data_dir))
        session = aiohttp.ClientSession()
        stack.push_async_callback(session.close)
        keys = RedisKeys(settings.redis.key_prefix)
        bus = RedisEventBus(redis, keys, settings.bus)
        control: CallControl
        client: AriClient | None = None
        if settings.ari.url is not None:
            client = AriClient(session, settings.ari)
            control = AriCallControl(client, settings.ari.app)
        else:
            control = NoPbxCallControl("no Asterisk is configured (CALLCENTER_ARI_URL)")
        queue = QueueService(
            control,
            store.calls,
            store.agents,
            store.queues,
            bus,
            clock,
            default_region=settings.default_region,
            steps=SqlStepStore(store.engine),
        )
        # Before the link connects: its first resync then decides calls that ended while we were down.
        await queue.start()
        estimates = EstimateService(
            store.queues,
            store.calls,
            SqlScheduleRepository(store.engine),
            SqlPredictionLog(store.engine),
            clock,
            live=queue,
        )
        estimates.publish = bus.publish  # announced waits, for the live accuracy figures
        callbacks = CallbackService(
            SqlCallbackRepository(store.engine),
            estimates,
            store.queues,
            bus,
            clock,
            live=queue,
            estimates=estimates,
            settings=callback_settings(settings),
        )
        sms = build_sms_engine(settings, store, session, clock, bus=bus) if settings.sms.enabled else None
        speech: ProcessPoolAnalyser | None = None
        if settings.voicemail.transcribe_processes > 0:
            speech = ProcessPoolAnalyser(settings.transcription, settings.voicemail.transcribe_processes)
            stack.callback(speech.close)
        voicemails = voicemail_service_for(settings, store.engine, bus, clock, speech)
    except BaseException:
        await stack.aclose()
        raise
    link: AriLink | None = None
    taker: AriVoicemailTaker | None = None
    if client is not None:
        link, taker = _ari_link(
            settings, session, client, redis, keys, queue, callbacks, voicemails, store, clock, stack
        )
    stats = build_stats(settings, store, clock)
    # The callback dispatcher: its own lease and ARI application (callcenter/app_dispatch.py).
    dispatch = build_dispatch(
        settings,
        session=session,
        client=client,
        redis=redis,
        store=SqlDispatchStore(store.engine),
        queue=queue,
        callbacks=callbacks,
        bus=bus,
        clock=clock,
    )
    services = Services(
        settings=settings,
        store=store,
        redis=redis,
        bus=bus,
        auth=AuthService(store.tokens, store.audit, clock),
        queue=queue,
        estimates=estimates,
        clock=clock,
        ari_link=link,
        callbacks=callbacks,
        sms=sms,
        voicemails=voicemails,
        speech=speech,
        stats=stats,
        dispatch=dispatch,
        voicemail_taker=taker,
    )

    async def db_check() -> None:
        await check_connection(store.engine, timeout_s=2.0)

    async def redis_check() -> None:
        if not await redis_ok(redis):
            raise RedisUnavailableError("Redis did not answer PING")

    registry = CollectorRegistry()
    registry.register(StatsCollector(stats))
    app = build_api(
        auth=services.auth,
        health_checks={"db": db_check, "redis": redis_check, "ari": link.check if link else None},
        registry=registry,
        settings=settings.http,
    )
    app[STATS_SERVICE] = stats
    app[SESSION_SERVICE] = SessionService(
        RedisSessionStore(redis, keys), services.auth, clock, ttl_s=settings.stats.session_ttl_s
    )
    install_session_routes(app)
    install_wallboard_routes(app)

    async def close_feeds(_: web.Application) -> None:
        # Open feeds (server-sent events) would hold the shutdown for its whole grace period.
        if stats.feed is not None:
            stats.feed.close()

    app.on_shutdown.append(close_feeds)
    app.cleanup_ctx.append(_statistics(services, RedisEventTail(redis, keys)))
    app[SERVICES] = services
    app[QUEUE_SERVICE] = queue
    app[ESTIMATE_SERVICE] = estimates
    app[CALLBACK_SERVICE] = callbacks
    app[VOICEMAIL_SERVICE] = voicemails
    app[DISPATCH_STORE] = dispatch.store
    app[WORKLIST] = dispatch.worklist
    app[DISPATCHER] = dispatch.dispatcher
    recorder = CallOutcomeRecorder(
        store.calls,
        bus,
        clock,
        queues=store.queues,
        agents=store.agents,
        default_region=settings.default_region,
    )
    app[AGI_OUTCOME_RECORDER] = recorder
    if sms is not None:
        app[SMS_HTTP] = SmsHttp(engine=sms, webhooks=sms_webhook_settings(settings))
    app.cleanup_ctx.append(_background(services))
    if settings.agi.enabled:
        offer_script = CallbackOfferScript(callbacks, estimates, clock)
        app.cleanup_ctx.append(
            _agi_server(settings, recorder, {AGI_CALLBACK_OFFER: offer_script}, voicemails=voicemails)
        )

    async def close_adapters(_: web.Application) -> None:
        await stack.aclose()

    app.on_cleanup.append(close_adapters)
    return app


def _ari_link(
    settings: Settings,
    session: aiohttp.ClientSession,
    client: AriClient,
    redis: aioredis.Redis,
    keys: RedisKeys,
    queue: QueueService,
    callbacks: CallbackService,
    voicemails: VoicemailService,
    store: Store,
    clock: Clock,
    stack: contextlib.AsyncExitStack,
) -> tuple[AriLink, AriVoicemailTaker]:
    """The ARI link feeding our queue, under the lease, with callback offers and voicemail hooked in."""
    dispatcher = StasisDispatcher(queue, client, default_region=settings.default_region)
    lease = RedisLease(redis, keys, ari_lease_role(settings.ari), default_owner_id(), ARI_LEASE_TTL_MS)
    offers: AriCallbackOffers | None = None
    if settings.callback.ivr_offers:
        offers = AriCallbackOffers(
            ari_channels(client, dispatcher),
            queue,
            callbacks,
            store.queues,
            every_s=settings.callback.announce_every_s,
        )
        queue.add_step_hook(offers.on_step)
        stack.push_async_callback(offers.close)

    async def resync() -> None:
        # A process taking the lease over first adopts the calls its predecessor queued (they
        # keep their place and wait), so the resync does not re-queue them as new arrivals.
        await queue.take_back()
        await dispatcher.resync()
        if offers is not None:
            await offers.adopt(queue)  # restored callers are not queued again: no step starts them

    link = AriLink(session, settings.ari, dispatcher.on_event, on_connected=resync, lease=lease)
    flow = VoicemailFlow(max_s=settings.voicemail.max_s, max_silence_s=settings.voicemail.max_silence_s)
    taker = AriVoicemailTaker(client, dispatcher, queue, voicemails, clock, flow)
    queue.use_voicemail(taker)
    return link, taker


def _background(services: Services) -> Callable[[web.Application], AsyncIterator[None]]:
    """The long-running tasks: the ARI link and the queue's ticker, cancelled at shutdown."""

    async def run(_: web.Application) -> AsyncIterator[None]:
        stop: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        tasks = [
            asyncio.create_task(_tick(services.queue), name="queue-tick"),
            asyncio.create_task(
                services.bus.consume(
                    CONSUMER_GROUP, default_owner_id(), services.estimates.handle, stop=stop
                ),
                name="capacity-consumer",
            ),
            # Its own task: the first estimate of a queue reads weeks of history.
            asyncio.create_task(_capture(services.estimates), name="capacity-capture"),
        ]
        if services.callbacks is not None:
            tasks.append(asyncio.create_task(_callback_tick(services.callbacks), name="callback-tick"))
        if services.ari_link is not None:
            tasks.append(asyncio.create_task(services.ari_link.run(), name="ari-link"))
        if services.sms is not None:
            tasks += [
                asyncio.create_task(
                    services.bus.consume(
                        SMS_CONSUMER_GROUP, default_owner_id(), services.sms.handle, stop=stop
                    ),
                    name="sms-consumer",
                ),
                asyncio.create_task(services.sms.run(), name="sms-outbox"),
            ]
        if services.voicemails is not None:
            tasks.append(asyncio.create_task(_retention(services.voicemails), name="voicemail-retention"))
            if services.speech is not None:  # transcription in child processes, jobs from the bus
                tasks.append(
                    asyncio.create_task(
                        services.bus.consume(
                            voicemail_service.CONSUMER_GROUP,
                            default_owner_id(),
                            services.voicemails.handle,
                            stop=stop,
                        ),
                        name="voicemail-transcription",
                    )
                )
        if services.dispatch is not None:
            tasks.append(asyncio.create_task(services.dispatch.run(services.bus), name="callback-dispatch"))
        yield
        stop.set_result(None)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if services.voicemail_taker is not None:
            await services.voicemail_taker.close(services.settings.shutdown_grace_s)
        # The link and ticker have stopped; the queue's writer drains what they queued before the
        # store closes (close_adapters runs later, in on_cleanup).
        await services.queue.close(grace_s=services.settings.shutdown_grace_s)

    return run


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
        SqlStatsRepository(store.engine), clock, config, zone=ZoneInfo(settings.stats.time_zone)
    )
    stats.feed = SnapshotFeed(lambda: render_wallboard(stats))
    return stats


def _statistics(services: Services, tail: RedisEventTail) -> Callable[[web.Application], AsyncIterator[None]]:
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
                services.bus.consume(STATS_CONSUMER_GROUP, default_owner_id(), stats.handle, stop=stop),
                name="stats-materialiser",
            ),
            asyncio.create_task(stats.feed.run(), name="wallboard-feed"),
        ]
        yield
        stop.set_result(None)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    return run


def _agi_server(
    settings: Settings,
    recorder: CallOutcomeRecorder,
    more: Mapping[str, ScriptHandler] | None = None,
    voicemails: VoicemailService | None = None,
) -> Callable[[web.Application], AsyncIterator[None]]:
    """The FastAGI server for the life of the application; it stops before the store closes."""

    async def run(_: web.Application) -> AsyncIterator[None]:
        handlers: dict[str, ScriptHandler] = {AGI_CALL_OUTCOME: CallOutcomeScript(recorder), **(more or {})}
        if voicemails is not None and settings.voicemail.spool_dir is not None:
            flow = VoicemailFlow(
                max_s=settings.voicemail.max_s, max_silence_s=settings.voicemail.max_silence_s
            )
            handlers[AGI_VOICEMAIL] = VoicemailScript(voicemails, settings.voicemail.spool_dir, flow)
        async with start_agi_server(settings.agi, handlers, shutdown_grace_s=settings.shutdown_grace_s):
            yield

    return run


async def _tick(queue: QueueService) -> None:
    while True:
        await asyncio.sleep(TICK_S)
        await queue.tick()


async def _capture(estimates: EstimateService) -> None:
    """Log each newly queued caller's predictions, so their accuracy is measured live."""
    while True:
        await asyncio.sleep(TICK_S)
        try:
            await estimates.capture()  # logs its own store errors; this guards against bugs only
        except Exception:
            logger.exception("capacity capture failed")


#: How often kept places are checked against the line (and bookings, now and then, against the plan).
CALLBACK_TICK_S: Final = 2.0


def callback_settings(settings: Settings) -> CallbackSettings:
    """The callback service's settings from ``CALLCENTER_CALLBACK_*``. :raises ValidationError:"""
    config = settings.callback
    return CallbackSettings(
        slots=SlotSettings(
            length_min=config.slot_min,
            callback_handle_s=config.handle_s,
            safety_margin=config.safety_margin,
            target_service_level=config.target_service_level,
            min_lead_s=config.min_lead_s,
        ),
        offer=OfferSettings(
            wait_threshold_s=config.offer_wait_s,
            position_threshold=config.offer_position,
            calls_per_agent=config.offer_calls_per_agent,
            grace_s=config.grace_s,
        ),
        grace_s=config.grace_s,
        horizon_days=config.horizon_days,
        default_region=settings.default_region,
        allowed_regions=config.allowed_regions,
    )


async def _callback_tick(callbacks: CallbackService) -> None:
    while True:
        await asyncio.sleep(CALLBACK_TICK_S)
        await callbacks.tick()  # never raises


#: How often retention looks for voicemail audio past its time.
RETENTION_EVERY_S: Final = 3600.0


def triage_rules(settings: Settings) -> TriageRules:
    """The triage rules: the file named by ``CALLCENTER_VOICEMAIL_TRIAGE_RULES``, else the built-in ones.

    :raises ConfigError: naming the setting, for a file that cannot be read or parsed.
    """
    path = settings.voicemail.triage_rules
    if path is None:
        return DEFAULT_TRIAGE_RULES
    source = f"CALLCENTER_VOICEMAIL_TRIAGE_RULES={str(path)!r}"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{source}: {exc.strerror or exc}") from exc
    return parse_rules(text, source)


def voicemail_service_for(
    settings: Settings, engine: AsyncEngine, bus: RedisEventBus, clock: Clock, speech: SpeechAnalyser | None
) -> VoicemailService:
    """The voicemail service over the store, the bus and the media folder; ``speech`` may be absent."""
    return VoicemailService(
        SqlVoicemailRepository(engine),
        bus,
        MediaFolder(settings.voicemail_dir),
        speech,
        clock,
        rules=triage_rules(settings),
        attempts=settings.voicemail.attempts,
        max_deliveries=settings.bus.max_deliveries,
        retention_days=settings.voicemail.retention_days,
        keep_transcripts=settings.voicemail.keep_transcripts,
    )


async def _retention(voicemails: VoicemailService) -> None:
    while True:
        try:
            await voicemails.purge()
        except Exception:
            logger.exception("voicemail retention failed; trying again later")
        await asyncio.sleep(RETENTION_EVERY_S)


async def run_transcription_worker(settings: Settings) -> None:
    """``callcenter worker --transcribe``: consume transcription jobs until SIGTERM or SIGINT.

    Jobs come from the bus (consumer group ``voicemail-transcription``); the model runs in a child
    process with ``CALLCENTER_WHISPER_CPU_THREADS`` threads. Stopping leaves an unfinished job pending:
    another worker re-claims it.
    """
    clock = SystemClock()
    speech = ProcessPoolAnalyser(settings.transcription, 1)
    try:
        async with open_store(settings) as store, open_redis(settings.redis, settings.data_dir) as redis:
            bus = RedisEventBus(redis, RedisKeys(settings.redis.key_prefix), settings.bus)
            voicemails = voicemail_service_for(settings, store.engine, bus, clock, speech)
            stop: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            consumer = default_owner_id()
            tasks = [
                asyncio.create_task(
                    bus.consume(voicemail_service.CONSUMER_GROUP, consumer, voicemails.handle, stop=stop),
                    name="voicemail-transcription",
                ),
                asyncio.create_task(_retention(voicemails), name="voicemail-retention"),
            ]
            print(f"transcription worker {consumer} ready", file=sys.stderr, flush=True)
            try:
                await _until_signalled()
            finally:
                stop.set_result(None)
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        speech.close()


async def serve(settings: Settings, *, host: str | None = None, port: int | None = None) -> None:
    """``callcenter serve``: run until SIGTERM or SIGINT, then shut down within the grace period."""
    app = await build_app(settings)
    async with _running(app, settings, host or settings.http.host, port) as url:
        print(f"serving on {url}", file=sys.stderr, flush=True)
        await _until_signalled()


@contextlib.asynccontextmanager
async def _running(
    app: web.Application, settings: Settings, host: str, port: int | None
) -> AsyncIterator[str]:
    """Serve ``app`` for the life of the block; yields its URL. Shuts down within the grace period."""
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=settings.shutdown_grace_s)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port if port is not None else settings.http.port)
        await site.start()
        address = runner.addresses[0]
        yield f"http://{address[0]}:{address[1]}"
    finally:
        await runner.cleanup()


async def _until_signalled() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
        logger.info("shutting down")
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


#: The demo's world: one queue, four agents whose phones the simulator answers.
DEMO_QUEUE: Final = "sales"
DEMO_AGENTS: Final = (("alice", "Alice"), ("bob", "Bob"), ("carol", "Carol"), ("dave", "Dave"))


async def demo(settings: Settings, *, port: int | None = None, seed: int = 1) -> None:
    """``callcenter demo``: the service on the embedded default against the simulated Asterisk.

    Starts the simulator on 127.0.0.1 with a traffic model busier than four agents can serve, so the
    first minute already holds answered and abandoned calls. Prints the URL and, on a line of its own,
    ``token: <admin token>``. Runs until SIGTERM or SIGINT.
    """
    # The simulator is demo and test wiring only: nothing else in the service imports it.
    from callcenter.simulator import SimulatedAsterisk
    from callcenter.simulator.traffic import TrafficModel, TrafficProfile, run_traffic

    password = secrets.token_urlsafe(16)
    sim = SimulatedAsterisk(realtime=True, users={"callcenter": password}, seed=seed)
    sim_url = await sim.start("127.0.0.1", 0)
    settings = dataclasses.replace(
        settings,
        ari=AriSettings(url=sim_url, username="callcenter", password=password, app=settings.ari.app),
    )
    try:
        app = await build_app(settings)
        services = app[SERVICES]
        async with _running(app, settings, "127.0.0.1", port) as url:
            await _seed_demo(services, sim)
            _, secret = await services.auth.create_token(
                role=Role.ADMIN,
                agent_id=None,
                label="demo",
                expires_at=services.clock.now() + timedelta(days=1),
                actor="demo",
            )
            print(f"callcenter demo on {url} (simulated Asterisk at {sim_url})", flush=True)
            print(f"token: {secret}", flush=True)
            print(
                f"try: curl -H 'Authorization: Bearer {secret}' {url}/api/v1/calls",
                file=sys.stderr,
                flush=True,
            )
            assert services.ari_link is not None
            await services.ari_link.wait_up(30)
            profile = TrafficProfile.flat(
                600,  # calls per hour: one every 6 s, more than four agents at 45 s each can take
                patience_mean_s=20.0,
                handle_mean_s=45.0,
                agent_answer_mean_s=3.0,
                agent_no_answer_rate=0.1,
                queues=((DEMO_QUEUE, 1.0),),
            )
            stop_traffic = asyncio.Event()
            traffic = asyncio.create_task(
                run_traffic(sim, TrafficModel(profile, seed=seed), stop_traffic, drain=False)
            )
            try:
                await _until_signalled()
            finally:
                stop_traffic.set()
                await asyncio.gather(traffic, return_exceptions=True)
    finally:
        await sim.stop()


async def _seed_demo(services: Services, sim: SimulatedAsterisk) -> None:
    """Create the demo queue and agents (again on later runs: nothing is duplicated) and log them in."""
    from callcenter.simulator import EndpointBehaviour

    queue = services.queue
    await queue.put_queue(QueueRecord(name=DEMO_QUEUE, title="Sales", max_wait_s=120), actor="demo")
    for agent_id, name in DEMO_AGENTS:
        endpoint = f"PJSIP/{agent_id}"
        sim.set_endpoint(endpoint, behaviour=EndpointBehaviour.ANSWER, answer_after_s=3.0)
        with contextlib.suppress(ConflictError):
            await queue.add_agent(
                agent_id=agent_id, name=name, endpoint=endpoint, queues=[DEMO_QUEUE], actor="demo"
            )
        await queue.login(agent_id, actor="demo", queues=[DEMO_QUEUE])


# -- SMS follow-up (issue 9) --------------------------------------------------------------------------

#: The consent ledger's key file in the data dir when CALLCENTER_SMS_CONSENT_SECRET is empty.
CONSENT_KEY_FILE: Final = "sms-consent.key"


def consent_secret(settings: Settings) -> bytes:
    """The ledger's number-hash key: the setting, else the data dir's key file (made once, mode 0600)."""
    if settings.sms.consent_secret:
        return settings.sms.consent_secret.encode()
    path = settings.data_dir / CONSENT_KEY_FILE
    if not path.exists():
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            with open(path, "x", encoding="ascii") as handle:
                handle.write(secrets.token_hex(32))
            path.chmod(0o600)
    secret = path.read_text(encoding="ascii").strip()
    if not secret:
        raise ConfigError(f"{path}: the consent key file is empty")
    return secret.encode()


def sms_templates(settings: Settings) -> Templates:
    """The templates file named by CALLCENTER_SMS_TEMPLATES, else the shipped one; checked whole."""
    from importlib import resources

    if settings.sms.templates:
        try:
            text = open(settings.sms.templates, encoding="utf-8").read()  # noqa: SIM115
        except OSError as exc:
            raise ConfigError(
                f"CALLCENTER_SMS_TEMPLATES: cannot read {settings.sms.templates}: {exc}"
            ) from exc
    else:
        text = resources.files("callcenter.sms").joinpath("templates.toml").read_text(encoding="utf-8")
    try:
        return parse_templates(text)
    except ValidationError as exc:
        raise ConfigError(f"CALLCENTER_SMS_TEMPLATES: {exc}") from exc


def sms_engine_settings(settings: Settings) -> EngineSettings:
    """The engine's rules from CALLCENTER_SMS_*. :raises ConfigError: naming the setting at fault."""
    sms = settings.sms
    try:
        triggers = frozenset(CallOutcome(t) for t in sms.triggers)
    except ValueError as exc:
        raise ConfigError(f"CALLCENTER_SMS_TRIGGERS: {exc}") from exc
    try:
        quiet = parse_quiet_rules(sms.quiet_hours, sms.quiet_regions)
        rules = SmsRules(
            triggers=triggers,
            require_mobile=sms.require_mobile,
            resend_after=timedelta(seconds=sms.resend_after_s),
            daily_cap=sms.daily_cap,
            quiet=quiet,
        )
    except ValidationError as exc:
        raise ConfigError(f"CALLCENTER_SMS_QUIET_HOURS / _QUIET_REGIONS / _TRIGGERS: {exc}") from exc
    keywords = (
        KeywordRules.with_phrases(sms.revocation_phrases) if sms.revocation_phrases else DEFAULT_KEYWORD_RULES
    )
    return EngineSettings(
        rules=rules,
        templates=sms_templates(settings),
        keywords=keywords,
        consent_secret=consent_secret(settings),
        default_region=settings.default_region,
    )


def sms_provider(settings: Settings, session: aiohttp.ClientSession) -> SmsProvider:
    sms = settings.sms
    if sms.provider == "kannel":
        if not sms.kannel_secret or not sms.callback_base:
            raise ConfigError(
                "the Kannel provider needs CALLCENTER_SMS_KANNEL_SECRET and CALLCENTER_SMS_CALLBACK_BASE"
            )
        return KannelProvider(
            session,
            KannelSettings(
                sendsms_url=sms.kannel_sendsms_url,
                username=sms.kannel_username,
                password=sms.kannel_password,
                sender=sms.kannel_sender,
                callback_base=f"{sms.callback_base}/api/v1/sms/kannel",
                secret=sms.kannel_secret,
            ),
        )
    if sms.provider == "twilio":
        if not (
            sms.twilio_account_sid
            and sms.twilio_auth_token
            and (sms.twilio_from or sms.twilio_messaging_service_sid)
        ):
            raise ConfigError(
                "the Twilio provider needs CALLCENTER_SMS_TWILIO_ACCOUNT_SID, _AUTH_TOKEN and _FROM "
                "(or _MESSAGING_SERVICE_SID)"
            )
        return TwilioProvider(
            session,
            TwilioSettings(
                account_sid=sms.twilio_account_sid,
                auth_token=sms.twilio_auth_token,
                sender=sms.twilio_from,
                messaging_service_sid=sms.twilio_messaging_service_sid,
                api_base=sms.twilio_api_base,
                public_base=sms.callback_base,
            ),
        )
    return ConsoleProvider()


def sms_webhook_settings(settings: Settings) -> WebhookSettings:
    sms = settings.sms
    return WebhookSettings(
        kannel_secret=sms.kannel_secret,
        kannel_allowed=sms.kannel_allowed,
        twilio_auth_token=sms.twilio_auth_token,
        twilio_public_base=sms.callback_base,
        rate_per_s=sms.webhook_rate_per_s,
        burst=max(1, int(sms.webhook_rate_per_s * 4)),
    )


def build_sms_engine(
    settings: Settings,
    store: Store,
    session: aiohttp.ClientSession,
    clock: Clock,
    *,
    bus: RedisEventBus | None = None,
) -> SmsEngine:
    """The SMS engine over the store and the configured provider; with ``bus``, it publishes the
    statistics' SMS events (sent, delivered, consent changed)."""
    engine = SmsEngine(
        SqlSmsStore(store.engine),
        sms_provider(settings, session),
        store.calls,
        store.queues,
        clock,
        sms_engine_settings(settings),
    )
    if bus is not None:
        engine.publish = bus.publish
    return engine
