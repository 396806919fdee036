"""The Redis Streams event bus against real Redis 6.2 (embedded) and 7.x (shared)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis.typing import EncodableT, FieldT

from callcenter.bus import Delivery, EventBus
from callcenter.config import BusSettings, RedisSettings
from callcenter.errors import RedisUnavailableError
from callcenter.model.events import CallEnded, CallQueued, DomainEvent, decode_event, encode_event
from callcenter.store.redis_bus import RedisEventBus
from callcenter.store.redis_conn import EmbeddedRedis, new_client
from callcenter.store.redis_keys import RedisKeys
from tests.waiting import eventually

from .conftest import Consumers, Recorder, RedisTarget, call_ended

pytestmark = [pytest.mark.integration, pytest.mark.timeout(30)]

FAST = BusSettings(stream_maxlen=10_000, max_deliveries=3, claim_idle_ms=200, block_ms=50)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def make_bus(client: aioredis.Redis, keys: RedisKeys, settings: BusSettings = FAST) -> RedisEventBus:
    bus: EventBus = RedisEventBus(client, keys, settings)  # checked by mypy against the port
    assert isinstance(bus, RedisEventBus)
    return bus


async def test_targets_are_redis_6_2_and_7(target: RedisTarget, redis_client: aioredis.Redis) -> None:
    """The parametrization really covers both reply dialects (XAUTOCLAIM differs between them)."""
    version = (await redis_client.info("server"))["redis_version"]
    assert str(version).split(".")[0] == target.major_minor.split(".")[0]
    assert str(version).startswith(target.major_minor)


async def test_consumer_gets_published_events_in_order_and_acknowledges_them(
    redis_client: aioredis.Redis, keys: RedisKeys, consumers: Consumers
) -> None:
    bus = make_bus(redis_client, keys)
    events = [call_ended(n) for n in range(5)]
    ids = [await bus.publish(event) for event in events[:3]]  # before the group exists: not lost
    recorder = Recorder()
    consumers.start(bus, "stats", "stats-1", recorder)
    ids += [await bus.publish(event) for event in events[3:]]

    await eventually(lambda: len(recorder.deliveries) >= 5, what="five deliveries")
    assert [d.event for d in recorder.deliveries] == events
    assert [d.message_id for d in recorder.deliveries] == ids
    assert [d.deliveries for d in recorder.deliveries] == [1] * 5

    async def all_acked() -> bool:
        return await bus.pending_count("stats") == 0

    await eventually(all_acked, what="every event acknowledged")
    assert await bus.dead_letters() == []


async def test_events_published_many_at_once_arrive_in_order_after_single_ones(
    redis_client: aioredis.Redis, keys: RedisKeys, consumers: Consumers
) -> None:
    bus = make_bus(redis_client, keys)
    events = [call_ended(n) for n in range(6)]
    ids = [await bus.publish(events[0])]
    ids += await bus.publish_many(events[1:5])
    ids += await bus.publish_many([])
    ids += [await bus.publish(events[5])]
    recorder = Recorder()
    consumers.start(bus, "stats", "stats-1", recorder)

    await eventually(lambda: len(recorder.deliveries) >= 6, what="six deliveries")
    assert [d.event for d in recorder.deliveries] == events
    assert [d.message_id for d in recorder.deliveries] == ids


async def test_a_batch_handler_gets_the_events_read_together_and_a_failed_batch_goes_one_by_one(
    redis_client: aioredis.Redis, keys: RedisKeys, consumers: Consumers
) -> None:
    bus = make_bus(redis_client, keys)
    batches: list[list[str]] = []
    fail_batches = [True]

    async def batch(deliveries: Sequence[Delivery]) -> None:
        batches.append([d.event.event_id for d in deliveries])
        if fail_batches[0]:
            raise RuntimeError("the batch's transaction failed")

    single = Recorder(fail_with=lambda d: RuntimeError("poison") if d.event.event_id == "call-2" else None)
    await bus.publish_many([call_ended(n) for n in range(4)])  # before the group exists: read together
    consumers.start(bus, "stats", "stats-1", single, batch=batch)

    await eventually(lambda: len(single.deliveries) >= 4, what="the failed batch handed over one by one")
    assert batches == [["call-0", "call-1", "call-2", "call-3"]]
    assert single.event_ids[:4] == ["call-0", "call-1", "call-2", "call-3"]

    fail_batches[0] = False
    await bus.publish_many([call_ended(n) for n in range(4, 7)])
    await eventually(lambda: ["call-4", "call-5", "call-6"] in batches, what="a batch that succeeds")

    async def only_the_poison_left() -> bool:
        return await bus.pending_count("stats") == 0 and len(await bus.dead_letters()) == 1

    await eventually(only_the_poison_left, timeout_s=10, what="acknowledged, the poison dead-lettered")
    assert "call-4" not in single.event_ids  # a batch that succeeded is not delivered again
    assert [decode_event(d.payload).event_id for d in await bus.dead_letters()] == ["call-2"]


async def test_events_published_while_the_bus_lingers_reach_a_batch_handler_together(
    redis_client: aioredis.Redis, keys: RedisKeys, consumers: Consumers
) -> None:
    """After waking its consumers the bus lets ``linger_ms`` pass before it reads again: events
    published one by one meanwhile are handled as one batch (one transaction for the statistics)."""
    bus = make_bus(
        redis_client, keys, dataclasses.replace(FAST, claim_idle_ms=60_000, block_ms=5_000, linger_ms=2_000)
    )
    batches: list[list[str]] = []

    async def batch(deliveries: Sequence[Delivery]) -> None:
        batches.append([d.event.event_id for d in deliveries])

    single = Recorder()
    consumers.start(bus, "stats", "stats-1", single, batch=batch)
    await eventually(lambda: bus._shared._ready.is_set(), what="the bus's waker reading")
    await bus.publish(call_ended(0))
    await eventually(lambda: single.event_ids == ["call-0"], what="the first event, alone")
    await asyncio.sleep(0.3)  # the consumer may have read it before the bus woke for it: let both pass
    for n in range(1, 4):
        await bus.publish(call_ended(n))
        await asyncio.sleep(0.05)  # each alone, were the bus not lingering

    await eventually(lambda: bool(batches), what="the next three")
    assert batches == [["call-1", "call-2", "call-3"]]
    assert single.event_ids == ["call-0"]


async def test_events_a_batch_handled_are_let_go_and_no_longer_kept_in_hand(
    redis_client: aioredis.Redis, keys: RedisKeys, consumers: Consumers
) -> None:
    """Entries are kept in hand (their idle time reset every claim_idle_ms / 3) only while handled:
    once a batch is acknowledged the consumer stops touching them (it used to touch them for ever,
    holding every id it ever handled in memory)."""
    bus = make_bus(redis_client, keys)
    touched: list[str] = []
    touch = bus._touch

    async def recording_touch(*, keys: list[str], args: list[str]) -> object:
        touched.extend(args[2:])
        return await touch(keys=keys, args=args)

    bus._touch = recording_touch  # type: ignore[method-assign,assignment]
    handled: list[list[str]] = []

    async def batch(deliveries: Sequence[Delivery]) -> None:
        handled.append([d.event.event_id for d in deliveries])

    ids = await bus.publish_many([call_ended(n) for n in range(4)])  # read together at the start
    consumers.start(bus, "stats", "stats-1", Recorder(), batch=batch)

    async def acknowledged() -> bool:
        return bool(handled) and await bus.pending_count("stats") == 0

    await eventually(acknowledged, what="the batch handled and acknowledged")
    await asyncio.sleep(0.1)  # a touch round may be under way as the batch ends
    touched.clear()
    await asyncio.sleep(FAST.claim_idle_ms / 1000)  # three touch rounds

    assert not set(touched) & set(ids)


async def test_publish_many_to_an_unreachable_redis_raises_redis_unavailable(free_tcp_port: int) -> None:
    client = new_client(RedisSettings(url=f"redis://127.0.0.1:{free_tcp_port}/0", connect_timeout_s=1))
    bus = make_bus(client, RedisKeys("cctest:"))
    with pytest.raises(RedisUnavailableError, match="could not publish 2 events"):
        await bus.publish_many([call_ended(1), call_ended(2)])
    await client.aclose()


async def test_every_group_gets_every_event_and_a_group_shares_them_out(
    redis_client: aioredis.Redis, keys: RedisKeys, consumers: Consumers
) -> None:
    bus = make_bus(redis_client, keys)
    stats, sms_a, sms_b = Recorder(), Recorder(), Recorder()
    consumers.start(bus, "stats", "stats-1", stats)
    consumers.start(bus, "sms", "sms-a", sms_a)
    consumers.start(bus, "sms", "sms-b", sms_b)
    events = [call_ended(n) for n in range(20)]
    for event in events:
        await bus.publish(event)

    await eventually(lambda: len(stats.deliveries) == 20, what="all events in group stats")
    await eventually(
        lambda: len(sms_a.deliveries) + len(sms_b.deliveries) == 20, what="all events in group sms"
    )
    assert stats.event_ids == [e.event_id for e in events]
    assert sorted(sms_a.event_ids + sms_b.event_ids) == sorted(e.event_id for e in events)


async def test_a_group_given_only_some_types_gets_those_and_the_rest_is_acknowledged(
    redis_client: aioredis.Redis, keys: RedisKeys, consumers: Consumers
) -> None:
    bus = make_bus(redis_client, keys)
    everything, answered_only = Recorder(), Recorder()
    consumers.start(bus, "board", "board-1", everything)
    consumers.start(bus, "stats", "stats-1", answered_only, only=frozenset({CallEnded.event_type}))
    queued = CallQueued(
        event_id="queued:c1", occurred_at=call_ended(0).occurred_at, call_id="c1", queue="sales"
    )
    events: list[DomainEvent] = [queued, call_ended(1), queued, call_ended(2)]
    await bus.publish_many(events)

    await eventually(lambda: len(everything.deliveries) == 4, what="all four in the group without a filter")
    await eventually(lambda: len(answered_only.deliveries) == 2, what="the two CallEnded")
    assert answered_only.event_ids == [call_ended(1).event_id, call_ended(2).event_id]

    async def all_acked() -> bool:
        return await bus.pending_count("stats") == 0

    await eventually(all_acked, what="the skipped events acknowledged too (nothing left pending)")
    assert await bus.dead_letters() == []


async def test_entries_published_without_their_type_field_are_filtered_by_their_json(
    redis_client: aioredis.Redis, keys: RedisKeys, consumers: Consumers
) -> None:
    """Entries an older publisher wrote (only the ``event`` field) still reach the right groups."""
    bus = make_bus(redis_client, keys)
    queued = CallQueued(
        event_id="queued:c1", occurred_at=call_ended(0).occurred_at, call_id="c1", queue="sales"
    )
    for event in (queued, call_ended(1)):
        await redis_client.xadd(keys.events, {b"event": encode_event(event).encode()})
    answered_only = Recorder()
    consumers.start(bus, "stats", "stats-1", answered_only, only=frozenset({CallEnded.event_type}))

    await eventually(lambda: len(answered_only.deliveries) == 1, what="the CallEnded")
    assert answered_only.event_ids == [call_ended(1).event_id]

    async def all_acked() -> bool:
        return await bus.pending_count("stats") == 0

    await eventually(all_acked, what="the CallQueued acknowledged unhandled")


@pytest.mark.parametrize("how", ["handler raises", "consumer cancelled mid-handling"])
async def test_events_of_a_consumer_that_died_are_reclaimed_by_another(
    redis_client: aioredis.Redis, keys: RedisKeys, consumers: Consumers, how: str
) -> None:
    bus = make_bus(redis_client, keys)
    if how == "handler raises":
        dying = Recorder(fail_with=lambda _: RuntimeError("database gone"))
    else:
        dying = Recorder(hang=True)
    first = consumers.start(bus, "dispatch", "worker-1", dying)
    message_id = await bus.publish(call_ended(1))
    async with asyncio.timeout(10):
        await dying.arrived.wait()
    if how == "handler raises":
        await first.stop()
    else:
        first.task.cancel()
        with pytest.raises(asyncio.CancelledError):  # cancellation is never swallowed
            await first.task
    assert await bus.pending_count("dispatch") == 1

    survivor = Recorder()
    consumers.start(bus, "dispatch", "worker-2", survivor)
    await eventually(lambda: len(survivor.deliveries) == 1, what="the event re-claimed by worker-2")
    redelivered = survivor.deliveries[0]
    assert (redelivered.message_id, redelivered.event, redelivered.deliveries) == (
        message_id,
        call_ended(1),
        2,
    )

    async def acked() -> bool:
        return await bus.pending_count("dispatch") == 0

    await eventually(acked, what="the re-claimed event acknowledged")


async def test_a_restarted_consumer_gets_its_own_unacknowledged_events_again(
    redis_client: aioredis.Redis, keys: RedisKeys, consumers: Consumers
) -> None:
    # Claiming would take a minute: only the read of our own pending entries can deliver in time.
    settings = BusSettings(stream_maxlen=10_000, max_deliveries=3, claim_idle_ms=60_000, block_ms=50)
    bus = make_bus(redis_client, keys, settings)
    await bus.publish(call_ended(1))
    await bus.publish(call_ended(2))
    crashed = Recorder(hang=True)
    first = consumers.start(bus, "dispatch", "dispatcher", crashed)  # reads both in one batch
    async with asyncio.timeout(10):
        await crashed.arrived.wait()
    first.task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first.task

    restarted = Recorder()
    consumers.start(bus, "dispatch", "dispatcher", restarted)
    await eventually(lambda: len(restarted.deliveries) == 2, what="both events delivered after the restart")
    assert restarted.event_ids == ["call-1", "call-2"]
    # call-1 was being handled at the crash; call-2 had been read in the same batch and never handled.
    assert [d.deliveries for d in restarted.deliveries] == [2, 2]


async def test_an_event_failing_every_delivery_goes_to_dead_letter_with_its_error(
    redis_client: aioredis.Redis, keys: RedisKeys, consumers: Consumers
) -> None:
    bus = make_bus(redis_client, keys)
    recorder = Recorder(
        fail_with=lambda d: (
            ValueError(f"cannot handle {d.event.event_id}") if d.event.event_id == "call-1" else None
        )
    )
    consumers.start(bus, "sms", "sms-1", recorder)
    poisoned = await bus.publish(call_ended(1))

    async def dead_lettered() -> bool:
        return len(await bus.dead_letters()) == 1

    await eventually(dead_lettered, what="the failing event in the dead-letter stream")
    (letter,) = await bus.dead_letters()
    assert letter.original_id == poisoned
    assert letter.group == "sms" and letter.consumer == "sms-1"
    assert letter.error == "ValueError: cannot handle call-1"
    assert letter.deliveries == FAST.max_deliveries
    assert decode_event(letter.payload) == call_ended(1)
    assert [d.deliveries for d in recorder.deliveries] == [1, 2, 3]  # exactly max_deliveries attempts
    assert await bus.pending_count("sms") == 0

    await bus.publish(call_ended(2))  # the loop is still alive
    await eventually(lambda: "call-2" in recorder.event_ids, what="the next event delivered")
    assert recorder.event_ids.count("call-1") == 3


async def test_undecodable_entries_go_to_dead_letter_and_the_loop_goes_on(
    redis_client: aioredis.Redis, keys: RedisKeys, consumers: Consumers
) -> None:
    bus = make_bus(redis_client, keys)
    bad: list[dict[FieldT, EncodableT]] = [
        {b"event": b"\xff\xfe not json"},
        {b"event": b'{"type": "call_teleported", "v": 1}'},
        {b"event": encode_event(call_ended(9)).replace('"v":1', '"v":99').encode()},
        {b"something": b"else"},
    ]
    bad_ids = [_text(await redis_client.xadd(keys.events, fields)) for fields in bad]
    recorder = Recorder()
    consumers.start(bus, "stats", "stats-1", recorder)
    await bus.publish(call_ended(1))

    await eventually(lambda: len(recorder.deliveries) == 1, what="the valid event delivered")
    assert recorder.event_ids == ["call-1"]
    letters = await bus.dead_letters()
    assert [letter.original_id for letter in letters] == bad_ids
    assert all(letter.error.startswith("undecodable: ") for letter in letters)
    assert "not JSON" in letters[0].error
    assert "call_teleported" in letters[1].error
    assert "version" in letters[2].error
    assert letters[1].payload == '{"type": "call_teleported", "v": 1}'
    assert all(letter.deliveries == 1 for letter in letters)

    async def acked() -> bool:
        return await bus.pending_count("stats") == 0

    await eventually(acked, what="bad and good entries all acknowledged")


async def test_the_stream_stays_near_its_configured_length(
    redis_client: aioredis.Redis, keys: RedisKeys
) -> None:
    settings = BusSettings(stream_maxlen=100, max_deliveries=3, claim_idle_ms=200, block_ms=50)
    bus = make_bus(redis_client, keys, settings)
    for n in range(400):
        await bus.publish(call_ended(n))
    length = await redis_client.xlen(keys.events)
    # MAXLEN ~ trims whole radix-tree nodes (stream-node-max-entries, 100 by default): never below the
    # cap, at most one node above it.
    assert 100 <= length <= 200


async def test_consume_returns_soon_after_stop_even_while_blocked_reading(
    target: RedisTarget, redis_client: aioredis.Redis, keys: RedisKeys, consumers: Consumers
) -> None:
    settings = BusSettings(stream_maxlen=1000, max_deliveries=3, claim_idle_ms=120_000, block_ms=60_000)
    # No socket timeout on this client: its blocking read (the bus's waker, XREAD) really blocks for 60 s.
    name = keys.prefix.replace(":", "-") + "blocking"
    blocking_client = target.client(socket_timeout=None, name=name)
    try:
        bus = make_bus(blocking_client, keys, settings)
        assert bus.block_ms == 60_000
        running = consumers.start(bus, "stats", "stats-1", Recorder())

        async def blocked_in_read() -> bool:
            clients = await redis_client.client_list()
            return any(c["name"] == name and c["cmd"] == "xread" and "b" in c["flags"] for c in clients)

        await eventually(blocked_in_read, what="the bus blocked in XREAD")
        await running.stop()  # within 5 s, although its read blocks for 60 s
        assert running.task.exception() is None
    finally:
        await blocking_client.aclose()


async def test_reads_block_for_less_than_the_client_socket_timeout(target: RedisTarget) -> None:
    """redis-py times out blocking reads at socket_timeout: the bus must not block longer."""
    client = target.client(socket_timeout=5)
    bus = make_bus(client, RedisKeys("cctest:"), BusSettings(block_ms=60_000))
    assert bus.block_ms == 4_000
    await client.aclose()


async def test_a_slow_handler_keeps_its_event_from_other_consumers(
    redis_client: aioredis.Redis, keys: RedisKeys, consumers: Consumers
) -> None:
    """A handler working longer than claim_idle_ms is not duplicated by a peer's XAUTOCLAIM."""
    bus = make_bus(redis_client, keys)
    loop = asyncio.get_running_loop()
    peer_started = asyncio.Event()
    peer_since: list[float] = []
    peer, slow_recorder = Recorder(), Recorder()

    async def slow_handler(delivery: Delivery) -> None:
        await slow_recorder(delivery)
        await peer_started.wait()
        # Work for four claim periods while the peer keeps claiming idle entries.
        four_periods = peer_since[0] + 4 * FAST.claim_idle_ms / 1000
        await eventually(lambda: loop.time() >= four_periods, what="four claim periods")

    consumers.start(bus, "transcribe", "worker-1", slow_handler)
    await bus.publish(call_ended(1))
    async with asyncio.timeout(10):
        await slow_recorder.arrived.wait()
    consumers.start(bus, "transcribe", "worker-2", peer)
    peer_since.append(loop.time())
    peer_started.set()

    async def acked() -> bool:
        return await bus.pending_count("transcribe") == 0

    await eventually(acked, what="the slow handler's acknowledgement")
    assert peer.deliveries == []
    assert [d.deliveries for d in slow_recorder.deliveries] == [1]


async def test_the_bus_refuses_a_client_that_decodes_replies() -> None:
    client = aioredis.Redis(decode_responses=True)
    with pytest.raises(ValueError, match="decode_responses=False"):
        RedisEventBus(client, RedisKeys("cctest:"), FAST)
    await client.aclose()


async def test_the_bus_refuses_settings_that_are_not_positive() -> None:
    client = aioredis.Redis()
    with pytest.raises(ValueError, match="BusSettings.claim_idle_ms must be positive"):
        RedisEventBus(client, RedisKeys("cctest:"), BusSettings(claim_idle_ms=0))
    await client.aclose()


@pytest.mark.parametrize("group, consumer", [("", "c"), ("g", ""), ("g", " padded "), ("g\n", "c")])
async def test_consume_refuses_bad_group_or_consumer_names(
    redis_client: aioredis.Redis, keys: RedisKeys, group: str, consumer: str
) -> None:
    bus = make_bus(redis_client, keys)
    with pytest.raises(ValueError, match="must be 1-200 printable"):
        await bus.consume(group, consumer, Recorder(), stop=asyncio.sleep(0))


async def test_publish_to_an_unreachable_redis_raises_redis_unavailable(free_tcp_port: int) -> None:
    client = new_client(RedisSettings(url=f"redis://127.0.0.1:{free_tcp_port}/0", connect_timeout_s=1))
    bus = make_bus(client, RedisKeys("cctest:"))
    with pytest.raises(RedisUnavailableError, match="could not publish call_ended call-1"):
        await bus.publish(call_ended(1))
    await client.aclose()


async def test_consumer_carries_on_after_the_embedded_server_restarts(
    tmp_path: Path, consumers: Consumers
) -> None:
    """The loop backs off while Redis is down, then resumes; what was published before is kept (AOF)."""
    data_dir = tmp_path / "d"
    server = EmbeddedRedis(data_dir)
    await server.start()
    client = new_client(RedisSettings(connect_timeout_s=1), socket=server.socket_path)
    try:
        bus = make_bus(client, RedisKeys("cc:"))
        recorder = Recorder()
        consumers.start(bus, "stats", "stats-1", recorder)
        await bus.publish(call_ended(1))
        await eventually(lambda: recorder.event_ids == ["call-1"], what="the first event")

        await server.stop()
        with pytest.raises(RedisUnavailableError):
            await bus.publish(call_ended(2))
        await server.start()
        await bus.publish(call_ended(3))
        await eventually(
            lambda: recorder.event_ids == ["call-1", "call-3"], what="delivery after the restart"
        )
        assert await bus.pending_count("stats") <= 1  # the ack of call-3 may still be in flight
    finally:
        await consumers.close()
        await client.aclose()
        await server.stop()


async def test_pending_events_trimmed_from_the_stream_are_reported_as_dead_letters(
    redis_client: aioredis.Redis, keys: RedisKeys, consumers: Consumers
) -> None:
    """Redis 7 lists deleted ids in XAUTOCLAIM's reply; 6.2 returns nil entries and keeps them pending."""
    settings = BusSettings(stream_maxlen=100, max_deliveries=3, claim_idle_ms=200, block_ms=50)
    bus = make_bus(redis_client, keys, settings)
    first_ids = [await bus.publish(call_ended(n)) for n in range(32)]
    stuck = Recorder(hang=True)
    first = consumers.start(bus, "sms", "sms-1", stuck)  # reads all 32 in one batch, hangs on the first
    async with asyncio.timeout(10):
        await stuck.arrived.wait()
    first.task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first.task
    for n in range(32, 400):  # pushes the first radix-tree node, and the 32 pending entries, out
        await bus.publish(call_ended(n))
    assert await redis_client.xrange(keys.events, min=first_ids[0], max=first_ids[-1]) == []

    consumers.start(bus, "sms", "sms-2", Recorder())

    async def all_reported() -> bool:
        return len(await bus.dead_letters(count=1000)) == 32

    await eventually(all_reported, what="the 32 trimmed entries reported")
    letters = await bus.dead_letters(count=1000)
    assert sorted(letter.original_id for letter in letters) == sorted(first_ids)
    assert all("trimmed from the stream" in letter.error and letter.payload == "" for letter in letters)

    async def nothing_pending() -> bool:
        return await bus.pending_count("sms") == 0

    await eventually(nothing_pending, what="no entry left pending")


async def test_a_handler_stuck_in_one_group_does_not_hold_up_the_other_groups(
    redis_client: aioredis.Redis, keys: RedisKeys, consumers: Consumers
) -> None:
    """The groups of one bus share their reads and acknowledgements, not their progress."""
    bus = make_bus(redis_client, keys)
    stuck = Recorder(hang=True)
    stuck_loop = consumers.start(bus, "sms", "sms-1", stuck)
    others = {group: Recorder() for group in ("stats", "dispatch", "capacity")}
    for group, recorder in others.items():
        consumers.start(bus, group, f"{group}-1", recorder)
    await bus.publish(call_ended(0))
    async with asyncio.timeout(10):
        await stuck.arrived.wait()

    later = await bus.publish_many([call_ended(n) for n in range(1, 6)])

    for group, recorder in others.items():
        await eventually(lambda r=recorder: len(r.deliveries) == 6, what=f"group {group} got all six")  # type: ignore[misc]
        assert recorder.event_ids == [f"call-{n}" for n in range(6)]

    async def others_acknowledged() -> bool:
        return all([await bus.pending_count(group) == 0 for group in others])

    await eventually(others_acknowledged, what="the other groups acknowledged everything")
    assert stuck.event_ids == ["call-0"]
    assert await bus.pending_count("sms") >= 1 and len(later) == 5
    stuck_loop.task.cancel()  # stop is honoured between events only; this one never ends


async def test_an_event_published_while_every_consumer_waits_is_delivered_before_their_poll_is_due(
    target: RedisTarget, keys: RedisKeys, consumers: Consumers
) -> None:
    """The bus's one blocking read wakes the waiting consumers; they do not wait out ``block_ms``."""
    settings = BusSettings(stream_maxlen=1000, max_deliveries=3, claim_idle_ms=120_000, block_ms=60_000)
    client = target.client(socket_timeout=None, name=keys.prefix.replace(":", "-") + "waker")
    try:
        bus = make_bus(client, keys, settings)
        recorders = [Recorder(), Recorder()]
        consumers.start(bus, "stats", "stats-1", recorders[0])
        consumers.start(bus, "sms", "sms-1", recorders[1])
        await asyncio.sleep(0.3)  # both found the stream empty and wait (a poll would be 60 s away)

        await bus.publish(call_ended(7))

        async with asyncio.timeout(10):
            for recorder in recorders:
                await recorder.arrived.wait()
        assert [r.event_ids for r in recorders] == [["call-7"], ["call-7"]]
        await consumers.close()
    finally:
        await client.aclose()


async def test_a_consumer_cancelled_mid_batch_gets_only_the_unhandled_events_again(
    redis_client: aioredis.Redis, keys: RedisKeys, consumers: Consumers
) -> None:
    """Handled events of a batch are acknowledged even when the loop is cancelled in the middle of it."""
    settings = BusSettings(stream_maxlen=10_000, max_deliveries=3, claim_idle_ms=60_000, block_ms=50)
    bus = make_bus(redis_client, keys, settings)
    await bus.publish_many([call_ended(n) for n in range(1, 4)])
    hang_on = asyncio.Event()

    async def handler(delivery: Delivery) -> None:
        if delivery.event.event_id == "call-2":
            hang_on.set()
            await asyncio.Event().wait()

    first = consumers.start(bus, "dispatch", "dispatcher", handler)  # one batch of three
    async with asyncio.timeout(10):
        await hang_on.wait()
    first.task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first.task

    restarted = Recorder()
    consumers.start(bus, "dispatch", "dispatcher", restarted)
    await eventually(lambda: len(restarted.deliveries) == 2, what="the two unhandled events again")
    assert restarted.event_ids == ["call-2", "call-3"]


async def test_concurrent_publications_each_get_their_own_id_in_call_order(
    redis_client: aioredis.Redis, keys: RedisKeys, consumers: Consumers
) -> None:
    bus = make_bus(redis_client, keys)
    events = [call_ended(n) for n in range(8)]

    ids = await asyncio.gather(*(bus.publish(event) for event in events))

    assert len(set(ids)) == 8
    rows = await redis_client.xrange(keys.events)
    assert [_text(row_id) for row_id, _ in rows] == ids
    assert [decode_event(fields[b"event"]).event_id for _, fields in rows] == [e.event_id for e in events]


async def test_events_and_dead_letters_past_the_age_limit_are_trimmed_and_the_rest_kept(
    redis_client: aioredis.Redis, keys: RedisKeys
) -> None:
    """Events name callers' numbers: past ``BUS_MAX_AGE_H`` they leave Redis, dead letters too."""
    bus = make_bus(redis_client, keys)
    old = encode_event(call_ended(1)).encode()
    await redis_client.xadd(keys.events, {b"event": old, b"type": b"call_ended"}, id="1000-0")
    await redis_client.xadd(keys.events, {b"event": old, b"type": b"call_ended"}, id="2500-0")
    await redis_client.xadd(keys.dead_letters, {b"payload": old, b"error": b"boom"}, id="1500-0")
    fresh = await bus.publish(call_ended(2))

    assert await bus.trim_before(datetime.fromtimestamp(1, UTC)) == 0, "nothing is older than 1 s"
    assert await bus.trim_before(datetime.fromtimestamp(2, UTC)) == 2

    kept = [_text(entry_id) for entry_id, _ in await redis_client.xrange(keys.events)]
    assert kept == ["2500-0", fresh]
    assert await redis_client.xlen(keys.dead_letters) == 0
    assert await bus.trim_before(datetime.now(UTC) - timedelta(hours=1)) == 1, "the other 1970 entry goes"
    assert [_text(entry_id) for entry_id, _ in await redis_client.xrange(keys.events)] == [fresh]


async def test_trimming_with_redis_down_says_so(keys: RedisKeys) -> None:
    client = aioredis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    try:
        with pytest.raises(RedisUnavailableError, match="could not trim"):
            await make_bus(client, keys).trim_before(datetime.now(UTC))
    finally:
        await client.aclose()


def test_a_negative_age_limit_is_refused(redis_client: aioredis.Redis, keys: RedisKeys) -> None:
    with pytest.raises(ValueError, match="max_age_h"):
        make_bus(redis_client, keys, dataclasses.replace(FAST, max_age_h=-1))
