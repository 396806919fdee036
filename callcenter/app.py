"""Composition root: settings -> adapters -> services -> the aiohttp application (wiring only)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Final

from aiohttp import web
from prometheus_client import CollectorRegistry
from redis import asyncio as aioredis
from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter.api.app import build_api
from callcenter.auth.service import AuthService
from callcenter.clock import Clock, SystemClock
from callcenter.config import Settings
from callcenter.errors import RedisUnavailableError
from callcenter.store.database import check_connection, create_engine, current_revision, upgrade
from callcenter.store.redis_bus import RedisEventBus
from callcenter.store.redis_conn import open_redis, redis_ok
from callcenter.store.redis_keys import RedisKeys
from callcenter.store.sql_repos import (
    SqlAgentRepository,
    SqlAuditLog,
    SqlCallRepository,
    SqlQueueRepository,
    SqlTokenRepository,
)

logger = logging.getLogger(__name__)


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
    clock: Clock


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
    except BaseException:
        await stack.aclose()
        raise
    keys = RedisKeys(settings.redis.key_prefix)
    services = Services(
        settings=settings,
        store=store,
        redis=redis,
        bus=RedisEventBus(redis, keys, settings.bus),
        auth=AuthService(store.tokens, store.audit, clock),
        clock=clock,
    )

    async def db_check() -> None:
        await check_connection(store.engine, timeout_s=2.0)

    async def redis_check() -> None:
        if not await redis_ok(redis):
            raise RedisUnavailableError("Redis did not answer PING")

    app = build_api(
        auth=services.auth,
        health_checks={"db": db_check, "redis": redis_check, "ari": None},
        registry=CollectorRegistry(),
        settings=settings.http,
    )
    app[SERVICES] = services

    async def close_adapters(_: web.Application) -> None:
        await stack.aclose()

    app.on_cleanup.append(close_adapters)
    return app


async def serve(settings: Settings, *, host: str | None = None, port: int | None = None) -> None:
    """``callcenter serve``: run until SIGTERM or SIGINT, then shut down within the grace period."""
    app = await build_app(settings)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=settings.shutdown_grace_s)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        site = web.TCPSite(
            runner, host or settings.http.host, port if port is not None else settings.http.port
        )
        await site.start()
        for address in runner.addresses:
            print(f"serving on http://{address[0]}:{address[1]}", file=sys.stderr, flush=True)
        await stop.wait()
        logger.info("shutting down")
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await runner.cleanup()
