"""The ARI adapters against the simulated Asterisk on loopback: fixtures and small typed fakes.

The simulator runs in virtual time (``sim.advance(s)`` moves playbacks, recordings and ring timers);
our link, client and channel run on the real event loop against it, unmodified.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

import aiohttp
import pytest
import redis
import redis.asyncio as aioredis
from aiohttp.test_utils import TestServer
from pytest_aiohttp import AiohttpServer

from callcenter.ari.client import AriClient
from callcenter.ari.events import AriEvent
from callcenter.ari.link import AriLink, EventHandler, ReceivedAt
from callcenter.ari.wsrest import WebSocketRest
from callcenter.bus import Lease
from callcenter.config import AriSettings
from callcenter.queue.detection import AgentLeg, AnyCallFact
from callcenter.queue.ports import CallFactSink
from callcenter.simulator import SimulatedAsterisk
from callcenter.store.redis_keys import RedisKeys
from callcenter.store.redis_lease import RedisLease
from tests.waiting import eventually as wait_until

ARI_USER = "callcenter"
ARI_PASSWORD = "s3cret"
APP = "callcenter"
SHARED_REDIS_URL = "redis://127.0.0.1:6379/0"

E = TypeVar("E")
F = TypeVar("F")


async def eventually(
    condition: Callable[[], Awaitable[bool] | bool], *, timeout_s: float = 5.0, what: str = "condition"
) -> None:
    """:func:`tests.waiting.eventually` with this suite's 5 s default and a 5 ms poll."""
    await wait_until(condition, timeout_s=timeout_s, what=what, poll_s=0.005)


@pytest.fixture
def sim() -> SimulatedAsterisk:
    return SimulatedAsterisk(users={ARI_USER: ARI_PASSWORD})


@pytest.fixture
async def ari_server(aiohttp_server: AiohttpServer, sim: SimulatedAsterisk) -> TestServer:
    return await aiohttp_server(sim.app)


@pytest.fixture
def ari_settings(ari_server: TestServer) -> AriSettings:
    return AriSettings(
        url=str(ari_server.make_url("/")).rstrip("/"), username=ARI_USER, password=ARI_PASSWORD, app=APP
    )


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as http:
        yield http


@pytest.fixture
def client(session: aiohttp.ClientSession, ari_settings: AriSettings) -> AriClient:
    return AriClient(session, ari_settings, timeout_s=2.0)


# ---------------------------------------------------------------------------------------------
# Typed fakes
# ---------------------------------------------------------------------------------------------


@dataclass
class RecordingSink:
    """A :class:`CallFactSink` that keeps what it is given; it can be told to fail on a fact type."""

    legs: dict[str, AgentLeg] = field(default_factory=dict)
    facts: list[AnyCallFact] = field(default_factory=list)
    reconciled: list[frozenset[str]] = field(default_factory=list)
    fail_on: type | None = None

    @property
    def agent_legs(self) -> Mapping[str, AgentLeg]:
        return self.legs

    async def handle(self, fact: AnyCallFact) -> None:
        self.facts.append(fact)
        if self.fail_on is not None and isinstance(fact, self.fail_on):
            raise RuntimeError(f"sink told to fail on {type(fact).__name__}")

    def submit(self, fact: AnyCallFact) -> None:
        self.facts.append(fact)
        if self.fail_on is not None and isinstance(fact, self.fail_on):
            raise RuntimeError(f"sink told to fail on {type(fact).__name__}")

    async def reconcile(self, present_channel_ids: frozenset[str]) -> None:
        self.reconciled.append(present_channel_ids)

    def of(self, kind: type[F]) -> list[F]:
        return [fact for fact in self.facts if isinstance(fact, kind)]


def _typed_sink() -> CallFactSink:
    return RecordingSink()  # mypy checks the fake against the port


@dataclass
class EventLog:
    """A link handler and resync that record what they saw, in order."""

    seen: list[tuple[AriEvent, ReceivedAt]] = field(default_factory=list)
    order: list[str] = field(default_factory=list)
    resyncs: int = 0
    resync_gate: asyncio.Event | None = None
    resync_entered: asyncio.Event = field(default_factory=asyncio.Event)
    fail_types: tuple[type, ...] = ()

    async def handle(self, event: AriEvent, received: ReceivedAt) -> None:
        self.seen.append((event, received))
        self.order.append(type(event).__name__)
        if isinstance(event, self.fail_types):
            raise RuntimeError(f"handler told to fail on {type(event).__name__}")

    async def resync(self) -> None:
        self.resyncs += 1
        self.order.append("resync")
        self.resync_entered.set()
        if self.resync_gate is not None:
            await self.resync_gate.wait()

    def events(self, kind: type[E]) -> list[E]:
        return [event for event, _ in self.seen if isinstance(event, kind)]


def _typed_handler(log: EventLog) -> EventHandler:
    return log.handle


# ---------------------------------------------------------------------------------------------
# Running links
# ---------------------------------------------------------------------------------------------


class Links:
    """Starts ``AriLink.run`` tasks and makes sure none outlives its test or died on its own."""

    def __init__(self, session: aiohttp.ClientSession, settings: AriSettings) -> None:
        self._session = session
        self._settings = settings
        self._running: list[tuple[AriLink, asyncio.Task[None]]] = []

    def start(
        self,
        handler: EventHandler,
        on_connected: Callable[[], Awaitable[None]],
        *,
        lease: Lease | None = None,
        settings: AriSettings | None = None,
        rest: WebSocketRest | None = None,
        **options: float,
    ) -> AriLink:
        options = {"heartbeat_s": 5.0, "reconnect_min_s": 0.01, "reconnect_max_s": 0.05, **options}
        link = AriLink(
            self._session,
            settings or self._settings,
            handler,
            on_connected=on_connected,
            lease=lease,
            rest=rest,
            **options,  # type: ignore[arg-type]
        )
        self._running.append((link, asyncio.create_task(self._run(link))))
        return link

    @staticmethod
    async def _run(link: AriLink) -> None:
        await link.run()

    async def stop(self, link: AriLink | None = None) -> None:
        """Cancel one link (or all); a link that ended by itself fails the test."""
        chosen = [(lk, task) for lk, task in self._running if link is None or lk is link]
        for _, task in chosen:
            if task.done():
                task.result()  # a link must never end by itself: re-raise what killed it
                raise AssertionError("AriLink.run returned")
            task.cancel()
        for entry in chosen:
            self._running.remove(entry)
            with pytest.raises(asyncio.CancelledError):
                async with asyncio.timeout(5):
                    await entry[1]


@pytest.fixture
async def links(session: aiohttp.ClientSession, ari_settings: AriSettings) -> AsyncIterator[Links]:
    running = Links(session, ari_settings)
    yield running
    await running.stop()


# ---------------------------------------------------------------------------------------------
# Leases on the shared Redis 7 (skipped without it), under a key prefix of the test's own
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def shared_redis_url() -> str:
    probe = redis.Redis.from_url(SHARED_REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
    try:
        probe.ping()
    except redis.RedisError as exc:
        pytest.skip(f"no Redis server at {SHARED_REDIS_URL} ({exc}); CI provides one")
    finally:
        probe.close()
    return SHARED_REDIS_URL


@pytest.fixture
async def redis_client(shared_redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(shared_redis_url, socket_timeout=5)
    yield client
    await client.aclose()


@pytest.fixture
async def lease_keys(redis_client: aioredis.Redis) -> AsyncIterator[RedisKeys]:
    """A key prefix of this test's own; its keys (and only they) are deleted afterwards."""
    keys = RedisKeys(f"cctest-ari:{uuid.uuid4().hex[:12]}:")
    yield keys
    async for key in redis_client.scan_iter(match=keys.pattern(), count=500):
        await redis_client.delete(key)


@pytest.fixture
async def leased_links(
    session: aiohttp.ClientSession,
    ari_settings: AriSettings,
    redis_client: aioredis.Redis,
    lease_keys: RedisKeys,
) -> AsyncIterator[Links]:
    """Like ``links``, but stopped before the Redis client closes (a stopping link releases its lease)."""
    running = Links(session, ari_settings)
    yield running
    await running.stop()


@pytest.fixture
def make_lease(redis_client: aioredis.Redis, lease_keys: RedisKeys) -> Iterator[Callable[..., RedisLease]]:
    def build(owner: str, ttl_ms: int = 600) -> RedisLease:
        return RedisLease(redis_client, lease_keys, "ari-link.test", owner, ttl_ms)

    yield build
