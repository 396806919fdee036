"""The fan-out tail of the events stream (``RedisEventTail``) beside the bus consumers that share its stop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import pytest
import redis.asyncio as aioredis

from callcenter.model.events import DomainEvent
from callcenter.store.redis_keys import RedisKeys
from callcenter.store.redis_tail import RedisEventTail
from tests.waiting import eventually

from .conftest import Recorder, call_ended
from .test_redis_bus import make_bus


async def test_tail_hands_on_every_event_after_its_position(
    redis_client: aioredis.Redis, keys: RedisKeys
) -> None:
    bus = make_bus(redis_client, keys)
    await bus.publish(call_ended(0))  # before the position: not handed on
    tail = RedisEventTail(redis_client, keys)
    position = await tail.position()
    seen: list[DomainEvent] = []

    async def sink(event: DomainEvent) -> None:
        seen.append(event)

    stop: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(tail.follow(position, sink, stop=stop))
    try:
        events = [call_ended(n) for n in range(1, 4)]
        await bus.publish_many(events)
        await eventually(lambda: len(seen) == 3, what="three events tailed")
        assert seen == events
    finally:
        stop.set_result(None)
        await asyncio.wait_for(task, 5)


async def test_a_tail_that_ends_leaves_the_stop_it_shares_with_consumers_alone(
    redis_client: aioredis.Redis, keys: RedisKeys
) -> None:
    """The statistics run a tail and a consumer group on one stop: the tail ending must not stop the other.

    (It used to cancel the shared future on its way out: the materialiser stopped with it and the
    shutdown's ``set_result`` failed, leaving the statistics' tasks running.)
    """
    bus = make_bus(redis_client, keys)
    tail = RedisEventTail(redis_client, keys)

    async def sink(event: DomainEvent) -> None:
        return None

    stop: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    recorder = Recorder()
    materialiser = asyncio.create_task(bus.consume("stats", "stats-1", recorder, stop=stop))
    task = asyncio.create_task(tail.follow(await tail.position(), sink, stop=stop))
    try:
        await asyncio.sleep(0.05)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert not stop.done()
        await bus.publish(call_ended(1))
        await eventually(lambda: len(recorder.deliveries) == 1, what="the consumer still delivering")
    finally:
        stop.set_result(None)  # the owner's stop still works
        await asyncio.wait_for(materialiser, 5)


async def test_tails_fed_by_the_bus_each_get_every_event_after_their_position_in_order(
    redis_client: aioredis.Redis, keys: RedisKeys
) -> None:
    """Two tails of one process on the bus's one read: the events before they started (read to catch
    up), and those after (handed on by the bus), each once and in order."""
    bus = make_bus(redis_client, keys)
    await bus.publish(call_ended(0))  # before the position: not handed on
    tails = [RedisEventTail(redis_client, keys, bus=bus) for _ in range(2)]
    position = await tails[0].position()
    await bus.publish_many([call_ended(n) for n in range(1, 4)])  # after it, before the tails start
    seen: list[list[DomainEvent]] = [[], []]

    def sink_for(into: list[DomainEvent]) -> Callable[[DomainEvent], Awaitable[None]]:
        async def sink(event: DomainEvent) -> None:
            into.append(event)

        return sink

    stop: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    tasks = [
        asyncio.create_task(t.follow(position, sink_for(s), stop=stop))
        for t, s in zip(tails, seen, strict=True)
    ]
    try:
        for n in range(4, 40):
            await bus.publish(call_ended(n))
        await bus.publish_many([call_ended(n) for n in range(40, 60)])
        await eventually(lambda: all(len(s) >= 59 for s in seen), what="59 events in each tail")
        await asyncio.sleep(0.2)
        for tail_seen in seen:
            assert [e.event_id for e in tail_seen] == [f"call-{n}" for n in range(1, 60)]
    finally:
        stop.set_result(None)
        await asyncio.wait_for(asyncio.gather(*tasks), 5)


async def test_a_tail_too_slow_for_the_bus_catches_up_by_reading_and_loses_nothing(
    redis_client: aioredis.Redis, keys: RedisKeys
) -> None:
    bus = make_bus(redis_client, keys)
    tail = RedisEventTail(redis_client, keys, bus=bus, held_batches=2)
    position = await tail.position()
    seen: list[DomainEvent] = []
    release = asyncio.Event()

    async def slow_sink(event: DomainEvent) -> None:
        await release.wait()  # stuck while the bus hands on batch after batch
        seen.append(event)

    stop: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(tail.follow(position, slow_sink, stop=stop))
    try:
        await asyncio.sleep(0.1)
        for n in range(30):
            await bus.publish(call_ended(n))  # one batch each: far more than the two held
        await asyncio.sleep(0.3)
        release.set()
        await eventually(lambda: len(seen) >= 30, what="all thirty tailed")
        assert [e.event_id for e in seen] == [f"call-{n}" for n in range(30)]
    finally:
        stop.set_result(None)
        await asyncio.wait_for(task, 5)


@pytest.mark.parametrize("fed_by_the_bus", [False, True], ids=["reading", "fed-by-the-bus"])
async def test_a_tail_skips_an_entry_that_is_no_event_and_outlives_a_failing_sink(
    redis_client: aioredis.Redis, keys: RedisKeys, fed_by_the_bus: bool
) -> None:
    bus = make_bus(redis_client, keys)
    tail = RedisEventTail(redis_client, keys, bus=bus if fed_by_the_bus else None)
    position = await tail.position()
    seen: list[DomainEvent] = []

    async def sink(event: DomainEvent) -> None:
        seen.append(event)
        if len(seen) == 1:
            raise RuntimeError("the live board refused it")

    stop: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(tail.follow(position, sink, stop=stop))
    try:
        await bus.publish(call_ended(1))  # the sink fails on it
        await redis_client.xadd(keys.events, {b"event": b"{not json", b"type": b"call_ended"})
        await redis_client.xadd(keys.events, {b"note": b"no event field"})
        await bus.publish(call_ended(2))
        await eventually(lambda: len(seen) == 2, what="the events on both sides of the bad entries")
        assert seen == [call_ended(1), call_ended(2)]
        assert not task.done()
    finally:
        stop.set_result(None)
        await asyncio.wait_for(task, 5)
