"""Benchmark: callback release latency, from the moment a callback is due to its agent's originate.

``--n`` callbacks (1,000) become due evenly over ``--span-s`` (60 s); ``--agents`` simulated agents
(50) answer after 0.2 s and every customer answers, presses 1 and talks a second. The product's
dispatcher runs with its Redis lease (127.0.0.1:6379, a key prefix of its own), its store on
PostgreSQL (127.0.0.1:5432 database ``test``, a schema of its own, dropped after), its fencing
token, do-not-call and quiet-hours checks and its own ARI application on a realtime simulated
Asterisk in this process. Latency is wall-clock time from a callback's due time to the moment the
``POST /channels`` of its first agent leg reaches the simulator.

The baseline, in the same run and on the same schedule, is a bare loop over the same table: SELECT
the due rows, UPDATE each to ``dialing``, originate to an agent (no lease, no fence, no checks, no
attempt records, no agent holding). The last stdout line is one JSON object.

Both loops poll every ``--poll-s`` (default: the product's 0.5 s).

Run from a checkout: ``callcenter bench callbacks --json`` (``--n 200 --span-s 10`` for a quick look).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from redis import asyncio as aioredis
from sqlalchemy import select, update

from callcenter.ari.client import AriClient
from callcenter.ari.link import AriLink, LinkStatus
from callcenter.ari.originate import AriCallbackCalls, CallbackCallSettings
from callcenter.callbacks.attempts import leg_of
from callcenter.callbacks.dispatch import DispatchSettings
from callcenter.callbacks.dispatcher import CallbackDispatcher
from callcenter.callbacks.lifecycle import move, new_callback
from callcenter.callbacks.promise import slot_window
from callcenter.clock import SystemClock
from callcenter.config import AriSettings, BusSettings, DatabaseSettings
from callcenter.model.callbacks import Actor
from callcenter.model.records import QueueRecord
from callcenter.model.vocabulary import ActorKind, CallbackKind, CallbackState
from callcenter.simulator import SimulatedAsterisk
from callcenter.simulator.pbx import EndpointConfig, PbxChange
from callcenter.store.database import create_engine
from callcenter.store.redis_bus import RedisEventBus
from callcenter.store.redis_keys import RedisKeys
from callcenter.store.redis_lease import RedisLease, default_owner_id
from callcenter.store.sql_callbacks import CallbackRow
from callcenter.store.sql_dispatch import SqlDispatchStore
from callcenter.wiring.dispatch import DISPATCH_ROLE, run_dispatch_loop

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _postgres import scratch_schema  # noqa: E402

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
ACTOR = Actor(ActorKind.SYSTEM, "bench")
#: The dispatcher's and the baseline's polling interval (``--poll-s``): the product's default
#: (``CALLCENTER_DISPATCH_POLL_S``). The dispatcher also wakes when the next callback falls due, so a
#: longer poll costs it no latency; a shorter one only adds store reads.
POLL_S = DispatchSettings().poll_s


class _Agents:
    """``AgentDesk``: ``n`` agents, each on one callback at a time."""

    def __init__(self, n: int) -> None:
        self._all = {f"agent{i}": f"PJSIP/agent{i}" for i in range(n)}
        self._held: set[str] = set()

    async def free_agents(self, queue: str) -> tuple[tuple[str, str], ...]:
        return tuple((a, e) for a, e in self._all.items() if a not in self._held)

    async def hold(self, agent_id: str, why: str, *, asked: bool = False) -> bool:
        if agent_id in self._held:
            return False
        self._held.add(agent_id)
        return True

    async def release(self, agent_id: str, *, wrap_up_in: str | None = None) -> None:
        self._held.discard(agent_id)  # no wrap-up here: the agents only stand in for people

    async def endpoint_of(self, agent_id: str) -> str:
        return self._all[agent_id]


class _Queue:
    async def get(self, name: str) -> QueueRecord:
        return QueueRecord(name=name, business_number="+14155550199")

    async def list(self) -> tuple[QueueRecord, ...]:
        return (QueueRecord(name="bench"),)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


async def _schedule(
    store: SqlDispatchStore, queue: str, n: int, start: datetime, span_s: float
) -> dict[str, float]:
    """``n`` callbacks of ``queue`` due evenly from ``start``; their due times (epoch s) by id."""
    due: dict[str, float] = {}
    for i in range(n):
        at = start + timedelta(seconds=span_s * i / n)
        callback, first = new_callback(
            callback_id=f"cb-{queue}-{i:05d}",
            queue=queue,
            number=f"+1415{2000000 + i:07d}",
            kind=CallbackKind.SCHEDULED,
            window=slot_window(at, at + timedelta(minutes=30)),
            at=start - timedelta(seconds=1),
            actor=ACTOR,
        )
        callback, second = move(callback, CallbackState.SCHEDULED, at=start, actor=ACTOR, due_at=at)
        await store.add(callback, (first, second))
        due[callback.id] = at.timestamp()
    return due


def _percentiles(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    p50 = statistics.median(ordered)
    p99 = ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]
    return round(p50 * 1000, 1), round(p99 * 1000, 1)


async def _run(n: int, span_s: float, agents: int, poll_s: float = POLL_S) -> dict[str, Any]:
    async with scratch_schema("callbacks") as db:
        return await _run_in(db, n, span_s, agents, poll_s)


async def _run_in(db: DatabaseSettings, n: int, span_s: float, agents: int, poll_s: float) -> dict[str, Any]:
    prefix = f"cc-bench-callbacks:{uuid.uuid4().hex[:8]}:"
    redis = aioredis.from_url(REDIS_URL)
    sim = SimulatedAsterisk(users={"bench": "bench"}, realtime=True, max_recorded_requests=0)
    originated: dict[str, float] = {}
    real_originate = sim.originate

    def timed_originate(endpoint: str, **kw: Any) -> Any:
        channel_id = kw.get("channel_id")
        if channel_id is not None and channel_id not in originated:
            originated[channel_id] = time.time()
        return real_originate(endpoint, **kw)

    sim.originate = timed_originate  # type: ignore[method-assign]
    try:
        engine = create_engine(db)
        store = SqlDispatchStore(engine)
        url = await sim.start("127.0.0.1", 0)
        sim.set_sound("callback-confirm", 0.2)
        for i in range(agents):
            sim.set_endpoint(f"PJSIP/agent{i}", answer_after_s=0.2)
        sim.set_endpoint("PJSIP/baseline", behaviour="busy")
        sim.set_dial_policy(lambda e: EndpointConfig(answer_after_s=0.2) if e.endswith("@trunk") else None)
        loop = asyncio.get_running_loop()

        def confirm(change: PbxChange) -> None:
            if change.kind == "answered" and change.channel_id.startswith("cbcu-"):
                loop.call_later(0.2, _quietly, sim.press, change.channel_id, "1")
                loop.call_later(1.2, _quietly, sim.hangup, change.channel_id)

        sim.observe(confirm)
        report: dict[str, Any] = {"n": n, "span_s": span_s, "agents": agents}

        report.update(
            await _dispatcher_phase(store, redis, prefix, url, n, span_s, agents, originated, poll_s)
        )
        report.update(await _baseline_phase(engine, store, url, n, span_s, originated, poll_s))
        report["poll_s"] = poll_s
        await engine.dispose()
        return report
    finally:
        await sim.stop()
        async for key in redis.scan_iter(f"{prefix}*"):
            await redis.delete(key)
        await redis.aclose()


async def _dispatcher_phase(
    store: SqlDispatchStore,
    redis: aioredis.Redis,
    prefix: str,
    url: str,
    n: int,
    span_s: float,
    agents: int,
    originated: dict[str, float],
    poll_s: float,
) -> dict[str, Any]:
    """The product's dispatcher: release latency of each callback's first agent leg."""
    # Due times start once every row is written (about 10 ms a row on PostgreSQL here).
    start = datetime.now(UTC) + timedelta(seconds=5 + 0.02 * n)
    due = await _schedule(store, "bench", n, start, span_s)
    ari = AriSettings(url=url, username="bench", password="bench", app="bench-callbacks")
    async with aiohttp.ClientSession() as session:
        calls = AriCallbackCalls(
            AriClient(session, ari),
            CallbackCallSettings(app=ari.app, confirm_s=3, agent_ring_s=5, customer_ring_s=5, whisper=False),
        )
        lease = RedisLease(redis, RedisKeys(prefix), DISPATCH_ROLE, default_owner_id(), ttl_ms=5000)
        links: list[AriLink] = []
        dispatcher = CallbackDispatcher(
            store,
            calls,
            _Agents(agents),
            _Queue(),
            RedisEventBus(redis, RedisKeys(prefix), BusSettings()),
            SystemClock(),
            role=DISPATCH_ROLE,
            token=lambda: lease.token if links and links[0].status is LinkStatus.UP else None,
            settings=DispatchSettings(
                dial_from=datetime.min.time(),
                dial_until=datetime.max.time().replace(microsecond=0),
                poll_s=poll_s,
                disposition_wait_s=0.1,
                confirm_s=3,
            ),
        )
        links.append(AriLink(session, ari, calls.on_event, on_connected=dispatcher.reconcile, lease=lease))
        runner = asyncio.create_task(run_dispatch_loop(dispatcher, links[0], lease, poll_s=poll_s))
        _log(f"dispatcher: {n} callbacks due over {span_s:g} s")
        deadline = time.time() + span_s + 120
        while time.time() < deadline:
            first_legs = {
                leg_of(c)[1].rpartition(".a")[0] for c in originated if c.startswith("cbag-1-") and leg_of(c)
            }
            if len(first_legs & due.keys()) >= n:
                break
            await asyncio.sleep(0.5)
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
    latencies = []
    for channel_id, at in originated.items():
        leg = leg_of(channel_id)
        if leg is None or not channel_id.startswith("cbag-1-"):
            continue
        callback_id, _, seq = leg[1].rpartition(".a")
        if seq == "1" and callback_id in due:
            latencies.append(max(at - due[callback_id], 0.0))
    p50, p99 = _percentiles(latencies)
    return {"released": len(latencies), "release_p50_ms": p50, "release_p99_ms": p99}


async def _baseline_phase(
    engine: Any,
    store: SqlDispatchStore,
    url: str,
    n: int,
    span_s: float,
    originated: dict[str, float],
    poll_s: float,
) -> dict[str, Any]:
    """The bare SELECT/UPDATE/originate loop on the same schedule."""
    ari = AriSettings(url=url, username="bench", password="bench", app="bench-callbacks")
    start = datetime.now(UTC) + timedelta(seconds=5 + 0.02 * n)
    base_due = await _schedule(store, "baseline", n, start, span_s)
    base_seen: dict[str, float] = {}
    table = CallbackRow.__table__
    async with aiohttp.ClientSession() as session:
        client = AriClient(session, ari)
        _log("baseline: the bare loop")
        deadline = time.time() + span_s + 60
        while len(base_seen) < n and time.time() < deadline:
            now = datetime.now(UTC)
            async with engine.begin() as connection:
                rows = (
                    await connection.execute(
                        select(table.c.id)
                        .where(
                            table.c.queue == "baseline",
                            table.c.state == "scheduled",
                            table.c.due_at <= now,
                        )
                        .order_by(table.c.due_at)
                    )
                ).all()
            for (callback_id,) in rows:
                async with engine.begin() as connection:
                    await connection.execute(
                        update(table)
                        .where(table.c.id == callback_id, table.c.state == "scheduled")
                        .values(state="dialing")
                    )
                channel_id = f"base-{callback_id}"
                await client.originate(
                    "PJSIP/baseline", app="bench-baseline", channel_id=channel_id, timeout_s=5
                )
                base_seen[callback_id] = originated.get(channel_id, time.time())
            await asyncio.sleep(poll_s)
    base = [max(at - base_due[c], 0.0) for c, at in base_seen.items()]
    p50, p99 = _percentiles(base)
    return {"baseline_released": len(base), "baseline_p50_ms": p50, "baseline_p99_ms": p99}


def _quietly(action: Any, *args: Any) -> None:
    try:
        action(*args)
    except Exception:  # the channel may be gone already
        return


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="callcenter bench callbacks", description=__doc__)
    parser.add_argument("--n", type=int, default=1000, help="callbacks becoming due")
    parser.add_argument("--span-s", type=float, default=60.0, help="over this many seconds")
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--poll-s", type=float, default=POLL_S, help="polling interval of both loops")
    parser.add_argument("--json", action="store_true", help="accepted for symmetry: the output is JSON")
    args = parser.parse_args(argv)
    poll_s = min(max(args.poll_s, 0.01), 5.0)
    print(json.dumps(asyncio.run(_run(max(args.n, 2), max(args.span_s, 1.0), max(args.agents, 1), poll_s))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
