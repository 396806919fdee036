"""Composition root: settings -> adapters -> services -> the aiohttp application (wiring only)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import secrets
import signal
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Final

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry
from redis import asyncio as aioredis
from sqlalchemy.ext.asyncio import AsyncEngine
from yarl import URL

from callcenter.agi.outcome import CallOutcomeRecorder, CallOutcomeScript
from callcenter.agi.server import start_agi_server
from callcenter.api.agi_outcomes import AGI_OUTCOME_RECORDER
from callcenter.api.app import build_api
from callcenter.api.callbacks import CALLBACK_SERVICE
from callcenter.api.capacity import ESTIMATE_SERVICE
from callcenter.api.dispatch import DISPATCH_STORE
from callcenter.api.queues import QUEUE_SERVICE
from callcenter.api.worklist import DISPATCHER, WORKLIST
from callcenter.app_dispatch import DispatchRuntime, build_dispatch
from callcenter.ari.callcontrol import AriCallControl
from callcenter.ari.client import AriClient
from callcenter.ari.link import AriLink
from callcenter.ari.stasis import StasisDispatcher
from callcenter.asterisk_names import AGI_CALL_OUTCOME
from callcenter.auth.service import AuthService
from callcenter.callbacks.policy import OfferSettings
from callcenter.callbacks.service import CallbackService, CallbackSettings
from callcenter.callbacks.slots import SlotSettings
from callcenter.capacity.service import CONSUMER_GROUP, EstimateService
from callcenter.clock import Clock, SystemClock
from callcenter.config import AriSettings, Settings
from callcenter.errors import ConflictError, RedisUnavailableError
from callcenter.model.records import QueueRecord
from callcenter.model.vocabulary import Role
from callcenter.queue.nopbx import NoPbxCallControl
from callcenter.queue.ports import CallControl
from callcenter.queue.service import QueueService
from callcenter.store.database import check_connection, create_engine, current_revision, upgrade
from callcenter.store.redis_bus import RedisEventBus
from callcenter.store.redis_conn import open_redis, redis_ok
from callcenter.store.redis_keys import RedisKeys
from callcenter.store.redis_lease import RedisLease, default_owner_id
from callcenter.store.sql_callbacks import SqlCallbackRepository
from callcenter.store.sql_capacity import SqlPredictionLog, SqlScheduleRepository
from callcenter.store.sql_dispatch import SqlDispatchStore
from callcenter.store.sql_repos import (
    SqlAgentRepository,
    SqlAuditLog,
    SqlCallRepository,
    SqlQueueRepository,
    SqlTokenRepository,
)

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
    dispatch: DispatchRuntime | None = None


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
        callbacks = CallbackService(
            SqlCallbackRepository(store.engine),
            estimates,
            store.queues,
            bus,
            clock,
            live=queue,
            settings=callback_settings(settings),
        )
    except BaseException:
        await stack.aclose()
        raise
    link: AriLink | None = None
    if client is not None:
        dispatcher = StasisDispatcher(queue, client, default_region=settings.default_region)
        lease = RedisLease(redis, keys, ari_lease_role(settings.ari), default_owner_id(), ARI_LEASE_TTL_MS)

        async def resync() -> None:
            # A process taking the lease over first adopts the calls its predecessor queued (they
            # keep their place and wait), so the resync does not re-queue them as new arrivals.
            await queue.take_back()
            await dispatcher.resync()

        link = AriLink(session, settings.ari, dispatcher.on_event, on_connected=resync, lease=lease)
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
        dispatch=dispatch,
    )

    async def db_check() -> None:
        await check_connection(store.engine, timeout_s=2.0)

    async def redis_check() -> None:
        if not await redis_ok(redis):
            raise RedisUnavailableError("Redis did not answer PING")

    app = build_api(
        auth=services.auth,
        health_checks={"db": db_check, "redis": redis_check, "ari": link.check if link else None},
        registry=CollectorRegistry(),
        settings=settings.http,
    )
    app[SERVICES] = services
    app[QUEUE_SERVICE] = queue
    app[ESTIMATE_SERVICE] = estimates
    app[CALLBACK_SERVICE] = callbacks
    app[DISPATCH_STORE] = dispatch.store
    app[WORKLIST] = dispatch.worklist
    app[DISPATCHER] = dispatch.dispatcher
    recorder = CallOutcomeRecorder(
        store.calls, bus, clock, queues=store.queues, default_region=settings.default_region
    )
    app[AGI_OUTCOME_RECORDER] = recorder
    app.cleanup_ctx.append(_background(services))
    if settings.agi.enabled:
        app.cleanup_ctx.append(_agi_server(settings, recorder))

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
        if services.dispatch is not None:
            tasks.append(asyncio.create_task(services.dispatch.run(services.bus), name="callback-dispatch"))
        yield
        stop.set_result(None)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # The link and ticker have stopped; the queue's writer drains what they queued before the
        # store closes (close_adapters runs later, in on_cleanup).
        await services.queue.close(grace_s=services.settings.shutdown_grace_s)

    return run


def _agi_server(
    settings: Settings, recorder: CallOutcomeRecorder
) -> Callable[[web.Application], AsyncIterator[None]]:
    """The FastAGI server for the life of the application; it stops before the store closes."""

    async def run(_: web.Application) -> AsyncIterator[None]:
        handlers = {AGI_CALL_OUTCOME: CallOutcomeScript(recorder)}
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
