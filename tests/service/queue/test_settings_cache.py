"""Queue settings read through the cache: reused for a while, fresh after our own writes, never a stale miss."""

from __future__ import annotations

import asyncio

import pytest

from callcenter.errors import NotFoundError
from callcenter.model.records import QueueRecord
from callcenter.queue.settings_cache import CachedQueueRepository
from tests.fakes.store import InMemoryQueueRepository


class CountingQueues(InMemoryQueueRepository):
    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    async def get(self, name: str) -> QueueRecord:
        self.reads += 1
        return await super().get(name)

    async def list(self) -> tuple[QueueRecord, ...]:
        self.reads += 1
        return await super().list()


class Seconds:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store() -> CountingQueues:
    return CountingQueues()


@pytest.fixture
def clock() -> Seconds:
    return Seconds()


async def test_reads_are_reused_until_the_ttl_then_read_again(store: CountingQueues, clock: Seconds) -> None:
    await store.put(QueueRecord(name="sales", wrap_up_s=5))
    cached = CachedQueueRepository(store, ttl_s=2.0, now_s=clock)

    for _ in range(10):
        assert (await cached.get("sales")).wrap_up_s == 5
    assert store.reads == 1

    await store.put(QueueRecord(name="sales", wrap_up_s=9))  # another process changes it
    clock.now += 1.9
    assert (await cached.get("sales")).wrap_up_s == 5
    clock.now += 0.2
    assert (await cached.get("sales")).wrap_up_s == 9
    assert store.reads == 2


async def test_a_write_through_the_cache_is_read_back_at_once(store: CountingQueues, clock: Seconds) -> None:
    cached = CachedQueueRepository(store, ttl_s=60.0, now_s=clock)
    await cached.put(QueueRecord(name="sales", wrap_up_s=5))
    assert [q.name for q in await cached.list()] == ["sales"]
    assert (await cached.get("sales")).wrap_up_s == 5

    await cached.put(QueueRecord(name="sales", wrap_up_s=7))
    await cached.put(QueueRecord(name="support"))
    assert (await cached.get("sales")).wrap_up_s == 7
    assert [q.name for q in await cached.list()] == ["sales", "support"]


async def test_an_unknown_queue_is_not_cached(store: CountingQueues, clock: Seconds) -> None:
    cached = CachedQueueRepository(store, ttl_s=60.0, now_s=clock)
    with pytest.raises(NotFoundError):
        await cached.get("later")
    await store.put(QueueRecord(name="later"))  # created by another process
    assert (await cached.get("later")).name == "later"


async def test_the_list_fills_the_single_reads(store: CountingQueues, clock: Seconds) -> None:
    await store.put(QueueRecord(name="sales"))
    await store.put(QueueRecord(name="support"))
    cached = CachedQueueRepository(store, ttl_s=2.0, now_s=clock)
    await cached.list()
    await cached.get("sales")
    await cached.get("support")
    assert store.reads == 1


async def test_callers_missing_together_share_one_read(store: CountingQueues, clock: Seconds) -> None:
    await store.put(QueueRecord(name="sales"))
    cached = CachedQueueRepository(store, ttl_s=2.0, now_s=clock)
    records = await asyncio.gather(*(cached.get("sales") for _ in range(20)))
    assert {r.name for r in records} == {"sales"} and store.reads == 1
    with pytest.raises(NotFoundError):
        await asyncio.gather(*(cached.get("nope") for _ in range(3)))
    assert store.reads == 2
