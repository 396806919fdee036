"""Composition root: settings -> adapters -> services -> the aiohttp application (wiring only)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import logging
import secrets
import signal
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Final

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry
from redis import asyncio as aioredis
from sqlalchemy.ext.asyncio import AsyncEngine

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
from callcenter.api.sms import SMS_HTTP, SmsHttp
from callcenter.api.stats import STATS_SERVICE
from callcenter.api.stats_metrics import StatsCollector
from callcenter.api.voicemails import VOICEMAIL_SERVICE
from callcenter.api.wallboard import install_wallboard_routes
from callcenter.api.worklist import DISPATCHER
from callcenter.ari.callcontrol import AriCallControl
from callcenter.ari.client import AriClient
from callcenter.ari.link import AriLink, LinkStatus
from callcenter.asterisk_names import AGI_CALL_OUTCOME, AGI_CALLBACK_OFFER, AGI_VOICEMAIL
from callcenter.auth.service import AuthService
from callcenter.auth.sessions import SessionService
from callcenter.callbacks.service import CallbackService
from callcenter.capacity.service import CONSUMER_GROUP, HANDLED_EVENTS, EstimateService
from callcenter.clock import Clock, SystemClock
from callcenter.config import AriSettings, Settings
from callcenter.errors import ConflictError, RedisUnavailableError
from callcenter.model.records import QueueRecord
from callcenter.model.vocabulary import Role
from callcenter.queue.nopbx import NoPbxCallControl
from callcenter.queue.ports import CallControl
from callcenter.queue.service import QueueService
from callcenter.queue.settings_cache import CachedQueueRepository
from callcenter.sms.service import CONSUMER_GROUP as SMS_CONSUMER_GROUP
from callcenter.sms.service import HANDLED_EVENTS as SMS_HANDLED_EVENTS
from callcenter.sms.service import SmsEngine
from callcenter.stats.service import StatsService
from callcenter.store.database import check_connection, create_engine, current_revision, upgrade
from callcenter.store.redis_agents import RedisAgentRelay
from callcenter.store.redis_bus import RedisEventBus
from callcenter.store.redis_conn import open_redis, redis_ok
from callcenter.store.redis_keys import RedisKeys
from callcenter.store.redis_lease import default_owner_id
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
from callcenter.tasks import stop_tasks
from callcenter.voicemail import service as voicemail_service
from callcenter.voicemail.agi_script import VoicemailScript
from callcenter.voicemail.callbacks import CONSUMER_GROUP as VOICEMAIL_CALLBACKS
from callcenter.voicemail.callbacks import HANDLED_EVENTS as VOICEMAIL_CALLBACK_EVENTS
from callcenter.voicemail.capture import AriVoicemailTaker
from callcenter.voicemail.pool import ProcessPoolAnalyser
from callcenter.voicemail.service import VoicemailService
from callcenter.wiring.agent import install_agent_page
from callcenter.wiring.ari import ari_link
from callcenter.wiring.callbacks import callback_settings, callback_tick
from callcenter.wiring.dispatch import DispatchRuntime, build_dispatch
from callcenter.wiring.sms import attach_callbacks, build_sms_engine, sms_webhook_settings
from callcenter.wiring.stats import build_stats, statistics
from callcenter.wiring.voicemail import run_retention, voicemail_callbacks_for, voicemail_service_for
from ivr.voicemail import VoicemailFlow
from media.prompts import PROMPTS, sound, spoken_s

if TYPE_CHECKING:
    from callcenter.simulator import SimulatedAsterisk

logger = logging.getLogger(__name__)

#: How often the queue service's time-driven work runs (wrap-ups, max wait, ring backstops).
TICK_S: Final = 1.0
#: How often ``serve`` trims events older than ``CALLCENTER_BUS_MAX_AGE_H`` from the bus.
BUS_TRIM_EVERY_S: Final = 60.0
#: Collections of the middle generation before a full one, once started (Python's default is 10).
FULL_COLLECTION_AFTER: Final = 100


@dataclass(frozen=True, slots=True)
class Store:
    """The SQL engine and the repositories over it."""

    engine: AsyncEngine
    calls: SqlCallRepository
    agents: SqlAgentRepository
    queues: CachedQueueRepository
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
    agent_relay: RedisAgentRelay | None = None


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
            # Settings are read several times per call: served from memory (see settings_cache).
            queues=CachedQueueRepository(SqlQueueRepository(engine)),
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
        # Agents' requests go to the process running the live queue, if one does (applied here if not).
        queue.use_relay(
            RedisAgentRelay(redis, RedisKeys(settings.redis.key_prefix)), runs_queue=lambda: False
        )
        try:
            yield queue
        finally:
            await queue.close(grace_s=settings.shutdown_grace_s)


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
        link, taker = ari_link(
            settings, session, client, redis, keys, queue, callbacks, voicemails, store, clock, stack
        )
    # Agents' requests reaching a process that does not run the live queue are handed to the one that
    # does (its ARI link is up): it holds agents for callbacks and sees their calls.
    relay = RedisAgentRelay(redis, keys)
    queue.use_relay(relay, runs_queue=lambda: link is not None and link.status is LinkStatus.UP)
    stats = build_stats(settings, store, clock)
    # The callback dispatcher: its own lease and ARI application, led only where the ARI link is up
    # (callcenter/wiring/dispatch.py).
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
        ari_link=link,
        previews=voicemails.previews,
        estimator=estimates,
    )
    attach_callbacks(sms, dispatch.sources, callbacks, store, clock)  # SMS "1"/"2" act on callbacks
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
        agent_relay=relay,
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
    app.cleanup_ctx.append(statistics(services, RedisEventTail(redis, keys, bus=bus)))
    app[SERVICES] = services
    app[QUEUE_SERVICE] = queue
    app[ESTIMATE_SERVICE] = estimates
    app[CALLBACK_SERVICE] = callbacks
    app[VOICEMAIL_SERVICE] = voicemails
    app[DISPATCH_STORE] = dispatch.store
    # The agents' worklist with its read models, its page and live feed (callcenter/wiring/agent.py).
    install_agent_page(
        app,
        settings,
        dispatch=dispatch,
        queue=queue,
        voicemails=voicemails,
        engine=store.engine,
        bus=bus,
        redis=redis,
        keys=keys,
        clock=clock,
    )
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


def _background(services: Services) -> Callable[[web.Application], AsyncIterator[None]]:
    """The long-running tasks: the ARI link and the queue's ticker, cancelled at shutdown."""

    async def run(_: web.Application) -> AsyncIterator[None]:
        stop: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        tasks = [
            asyncio.create_task(_tick(services.queue), name="queue-tick"),
            asyncio.create_task(
                services.bus.consume(
                    CONSUMER_GROUP,
                    default_owner_id(),
                    services.estimates.handle,
                    stop=stop,
                    only=HANDLED_EVENTS,
                ),
                name="capacity-consumer",
            ),
            # Its own task: the first estimate of a queue reads weeks of history.
            asyncio.create_task(_capture(services.estimates), name="capacity-capture"),
        ]
        if services.settings.bus.max_age_h > 0:
            tasks.append(
                asyncio.create_task(
                    _trim_bus(services.bus, services.clock, services.settings.bus.max_age_h), name="bus-trim"
                )
            )
        if services.callbacks is not None:
            tasks.append(asyncio.create_task(callback_tick(services.callbacks), name="callback-tick"))
        if services.ari_link is not None:
            tasks.append(asyncio.create_task(services.ari_link.run(), name="ari-link"))
            if services.agent_relay is not None:
                link = services.ari_link
                tasks.append(
                    asyncio.create_task(
                        services.agent_relay.serve(
                            services.queue.serve_request, gate=lambda: link.status is LinkStatus.UP
                        ),
                        name="agent-requests",
                    )
                )
        if services.sms is not None:
            tasks += [
                asyncio.create_task(
                    services.bus.consume(
                        SMS_CONSUMER_GROUP,
                        default_owner_id(),
                        services.sms.handle,
                        stop=stop,
                        only=SMS_HANDLED_EVENTS,
                    ),
                    name="sms-consumer",
                ),
                asyncio.create_task(services.sms.run(), name="sms-outbox"),
            ]
        if services.voicemails is not None:
            tasks.append(asyncio.create_task(run_retention(services.voicemails), name="voicemail-retention"))
            if services.speech is not None:  # transcription in child processes, jobs from the bus
                tasks.append(
                    asyncio.create_task(
                        services.bus.consume(
                            voicemail_service.CONSUMER_GROUP,
                            default_owner_id(),
                            services.voicemails.handle,
                            stop=stop,
                            only=voicemail_service.HANDLED_EVENTS,
                        ),
                        name="voicemail-transcription",
                    )
                )
        if services.dispatch is not None:
            tasks.append(asyncio.create_task(services.dispatch.run(services.bus), name="callback-dispatch"))
            if services.voicemails is not None and services.settings.voicemail.callbacks:
                # Each voicemail becomes a callback on the worklist (callcenter/voicemail/callbacks.py).
                handler = voicemail_callbacks_for(
                    services.settings, services.store.engine, services.dispatch.sources, services.clock
                )
                tasks.append(
                    asyncio.create_task(
                        services.bus.consume(
                            VOICEMAIL_CALLBACKS,
                            default_owner_id(),
                            handler.handle,
                            stop=stop,
                            only=VOICEMAIL_CALLBACK_EVENTS,
                        ),
                        name="voicemail-callbacks",
                    )
                )
        yield
        if not stop.done():
            stop.set_result(None)
        await stop_tasks(tasks, services.settings.shutdown_grace_s, what="shutdown")
        if services.voicemail_taker is not None:
            await services.voicemail_taker.close(services.settings.shutdown_grace_s)
        # The link and ticker have stopped; the queue's writer drains what they queued before the
        # store closes (close_adapters runs later, in on_cleanup).
        await services.queue.close(grace_s=services.settings.shutdown_grace_s)

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


async def _trim_bus(bus: RedisEventBus, clock: Clock, max_age_h: int) -> None:
    """From start-up, every :data:`BUS_TRIM_EVERY_S`: drop the bus's events older than ``max_age_h``."""
    while True:
        try:
            trimmed = await bus.trim_before(clock.now() - timedelta(hours=max_age_h))
            if trimmed:
                logger.info("event bus: %d event(s) older than %d h trimmed", trimmed, max_age_h)
        except RedisUnavailableError as exc:
            logger.warning("event bus: old events not trimmed, trying again later: %s", exc)
        await asyncio.sleep(BUS_TRIM_EVERY_S)


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
                    bus.consume(
                        voicemail_service.CONSUMER_GROUP,
                        consumer,
                        voicemails.handle,
                        stop=stop,
                        only=voicemail_service.HANDLED_EVENTS,
                    ),
                    name="voicemail-transcription",
                ),
                asyncio.create_task(run_retention(voicemails), name="voicemail-retention"),
            ]
            print(f"transcription worker {consumer} ready", file=sys.stderr, flush=True)
            try:
                await _until_signalled()
            finally:
                if not stop.done():
                    stop.set_result(None)
                await stop_tasks(tasks, settings.shutdown_grace_s, what="transcription worker")
    finally:
        speech.close()


async def serve(settings: Settings, *, host: str | None = None, port: int | None = None) -> None:
    """``callcenter serve``: run until SIGTERM or SIGINT, then shut down within the grace period."""
    app = await build_app(settings)
    async with _running(app, settings, host or settings.http.host, port) as url:
        settle_garbage_collector()
        print(f"serving on {url}", file=sys.stderr, flush=True)
        await _until_signalled()


def settle_garbage_collector() -> None:
    """Once started: move every object made so far out of the collector's reach (``gc.freeze``), and
    make full collections rarer (:data:`FULL_COLLECTION_AFTER`).

    Modules, settings, queues and agents live as long as the process; a full collection would scan
    them all again each time, a pause of hundreds of milliseconds on the event loop under load. What
    the calls make afterwards is still scanned by each full collection: at 100 calls/s Python's default
    (one after every 10 collections of the middle generation) ran one every 5 s, each stopping the event
    loop for 10 to 20 ms, the largest single cause of the slowest outcomes (``bench/README.md``).
    """
    gc.collect()
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_COLLECTION_AFTER)


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

    # The simulator plays only the sounds it knows (as a real Asterisk after `callcenter prompts build`).
    for name in PROMPTS:
        sim.set_sound(sound(name), spoken_s(name))
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
