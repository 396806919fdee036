"""Benchmark: the CPU one process spends on the event bus per event, as the app uses it (issue 3).

One process runs what the app runs on its bus: seven consumer groups (four handling ``call_ended``,
one ``call_queued``, one a type never published, one every type: the app's statistics, SMS, capacity,
dispatch, voicemail... groups, each with its ``only`` filter) and two tails (the statistics' live
board and the agent page), on Redis at ``BENCH_REDIS_URL`` or 127.0.0.1:6379 under a key prefix of its
own (removed after). The same process publishes ``--events`` events (``call_queued`` and ``call_ended``
alternately) ten at a time with ``publish_many`` at about ``--rate`` events a second, as the queue's
writer does, until every group and tail has had every event it wants. Handlers only count.

``cpu_us_per_event``: the process's CPU (``time.process_time``) from the first publication until the
last delivery, per event published (publishing, reading, decoding, acknowledging, tailing). The
app's share is this times its events per call (about 17 in ``bench events``). Progress on stderr; the
last line of stdout is one JSON object.

Run from a checkout: ``callcenter bench bus --json`` (``--quick``: 5,000 events).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis

from callcenter.bus import Delivery
from callcenter.config import BusSettings
from callcenter.model.events import CallEnded, CallQueued, DomainEvent
from callcenter.model.vocabulary import CallOutcome, EntryPoint
from callcenter.store.redis_bus import RedisEventBus
from callcenter.store.redis_keys import RedisKeys
from callcenter.store.redis_tail import RedisEventTail

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
GROUPS: dict[str, frozenset[str] | None] = {
    "stats": frozenset({"call_ended"}),
    "sms": frozenset({"call_ended"}),
    "dispatch": frozenset({"call_ended"}),
    "capacity": frozenset({"call_ended"}),
    "board": frozenset({"call_queued"}),
    "voicemail": frozenset({"voicemail_recorded"}),
    "everything": None,
}


def _events(first: int, now: datetime) -> list[DomainEvent]:
    out: list[DomainEvent] = []
    for n in range(first, first + 10):
        if n % 2:
            out.append(CallQueued(event_id=f"q{n}", occurred_at=now, call_id=f"c{n}", queue="sales"))
        else:
            out.append(
                CallEnded(
                    event_id=f"e{n}",
                    occurred_at=now,
                    call_id=f"c{n}",
                    queue="sales",
                    outcome=CallOutcome.ANSWERED,
                    entry_point=EntryPoint.ARI,
                    caller="+14155550100",
                )
            )
    return out


async def run(args: argparse.Namespace) -> dict[str, Any]:
    client = aioredis.Redis.from_url(REDIS_URL, decode_responses=False)
    keys = RedisKeys(f"bench-bus-{uuid.uuid4().hex[:10]}:")
    bus = RedisEventBus(client, keys, BusSettings())
    counts = dict.fromkeys(GROUPS, 0)
    tailed = [0, 0]
    total = args.events - args.events % 10
    wanted = {group: total if only is None else total // 2 for group, only in GROUPS.items()}
    wanted["voicemail"] = 0
    all_in = asyncio.Event()
    stop: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def check() -> None:
        if counts == wanted and tailed == [total, total]:
            all_in.set()

    def counter(group: str) -> Any:
        async def handle(_: Delivery) -> None:
            counts[group] += 1
            check()

        return handle

    tasks = [
        asyncio.create_task(bus.consume(group, "bench", counter(group), stop=stop, only=only))
        for group, only in GROUPS.items()
    ]
    for index in range(2):
        tail = RedisEventTail(client, keys, bus=bus)

        async def sink(_: DomainEvent, index: int = index) -> None:
            tailed[index] += 1
            check()

        tasks.append(asyncio.create_task(tail.follow(await tail.position(), sink, stop=stop)))
    try:
        await asyncio.sleep(0.5)
        now = datetime.now(UTC)
        t0, cpu0 = time.monotonic(), time.process_time()
        for first in range(0, total, 10):
            await bus.publish_many(_events(first, now))
            await asyncio.sleep(max(0.0, t0 + (first + 10) / args.rate - time.monotonic()))
        await all_in.wait()
        wall, cpu = time.monotonic() - t0, time.process_time() - cpu0
    finally:
        stop.set_result(None)
        await asyncio.gather(*tasks, return_exceptions=True)
        found = [key async for key in client.scan_iter(match=f"{keys.prefix}*")]
        if found:
            await client.delete(*found)
        await client.aclose()
    print(f"bus: {total} events in {wall:.1f} s, {cpu:.2f} CPU-s", file=sys.stderr)
    return {
        "benchmark": "bus",
        "events": total,
        "groups": len(GROUPS),
        "tails": 2,
        "rate_events_per_s": args.rate,
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 3),
        "cpu_us_per_event": round(1e6 * cpu / total, 1),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="callcenter bench bus", description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=2_000.0, help="events published a second")
    parser.add_argument("--quick", action="store_true", help="5,000 events")
    parser.add_argument("--json", action="store_true", help="(the last stdout line is JSON anyway)")
    args = parser.parse_args(argv)
    if args.quick:
        args.events = 5_000
    print(json.dumps(asyncio.run(run(args))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
