"""Benchmark: the wallboard feed under load, event to client delay and the app's CPU (issue 10).

The real app from :func:`callcenter.app.build_app` (SQLite in a temporary data dir, Redis at
``BENCH_REDIS_URL`` or 127.0.0.1:6379 under a key prefix of its own, no Asterisk) runs in this process.
A child process publishes domain events on the app's bus at ``--rate`` calls a second (each call: one
``call_queued``, one ``call_left_queue`` after a wait of 0.5 to 3.5 s, one ``call_ended`` after 2 to 8 s
of talk: three events per call). Another child process holds ``--clients`` wallboard feeds
(``GET /wallboard/feed``, server-sent events, signed in with one supervisor session cookie). Each
snapshot names the time of the oldest event it is the first to show (``oldest_event_at``, stamped by
the publisher just before it published, same machine); its age when a client reads the snapshot is
one delay sample (the worst of the events coalesced into that snapshot), for every client.

Phases with the same event load, each on a fresh app: a short warm-up (discarded), no clients, then
``--clients``, then no clients again (the baseline is the mean of the two, and both are reported: on a
shared machine their spread is the noise floor). ``cpu_s`` is the app process's CPU from the start of
the load until every call is on the live board and in the interval rows (``time.process_time``);
``extra_cpu_fraction`` is how much more the clients cost.
Targets (issue 10): ``p99_delay_ms`` under 1,000 and ``extra_cpu_fraction`` under 0.10, each with a
pass/fail boolean. Progress on stderr; the last line of stdout is one JSON object.

Run from a checkout: ``callcenter bench wallboard --json`` (``--quick``: 10 s, 50 clients).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import re
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

HERE = Path(__file__).resolve()
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
_EVENT_AT = re.compile(rb'^data: \{"oldest_event_at":"([^"]+)"')


def log(message: str) -> None:
    print(f"[bench wallboard] {message}", file=sys.stderr, flush=True)


def percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
    return ordered[index]


# -- child: the event publisher ------------------------------------------------------------------------


async def publish_events(prefix: str, rate: float, duration_s: float, seed: int) -> None:
    from redis import asyncio as aioredis

    from callcenter.config import BusSettings
    from callcenter.model.events import CallEnded, CallLeftQueue, CallQueued, DomainEvent
    from callcenter.model.vocabulary import CallOutcome, EntryPoint
    from callcenter.store.redis_bus import RedisEventBus
    from callcenter.store.redis_keys import RedisKeys

    client = aioredis.Redis.from_url(REDIS_URL)
    bus = RedisEventBus(client, RedisKeys(prefix), BusSettings())
    rng = random.Random(seed)
    loop = asyncio.get_running_loop()
    start = loop.time()
    due: list[tuple[float, int, str]] = []  # (loop time, call index, what)
    next_arrival, index = start, 0
    while loop.time() < start + duration_s or due:
        now = loop.time()
        while next_arrival <= now and next_arrival < start + duration_s:
            wait, talk = rng.uniform(0.5, 3.5), rng.uniform(2.0, 8.0)
            due += [(next_arrival, index, "queued"), (next_arrival + wait, index, "left")]
            due.append((next_arrival + wait + talk, index, "ended"))
            index += 1
            next_arrival += rng.expovariate(rate)
        due.sort()
        while due and due[0][0] <= now:
            _, i, what = due.pop(0)
            at = datetime.now(UTC)
            call_id = f"b{i}"
            event: DomainEvent
            if what == "queued":
                event = CallQueued(
                    event_id=f"queued:{call_id}", occurred_at=at, call_id=call_id, queue="bench"
                )
            elif what == "left":
                event = CallLeftQueue(
                    event_id=f"left:{call_id}", occurred_at=at, call_id=call_id, queue="bench", agent_id="a"
                )
            else:
                event = CallEnded(
                    event_id=call_id,
                    occurred_at=at,
                    call_id=call_id,
                    outcome=CallOutcome.ANSWERED,
                    entry_point=EntryPoint.ARI,
                    queue="bench",
                    caller=f"+1415555{i % 10000:04d}",
                    wait_s=2.0,
                    talk_s=5.0,
                    agent_id="a",
                )
            await bus.publish(event)  # in order, one at a time: the app's own writer publishes so too
        await asyncio.sleep(0.005)
    await client.aclose()
    print(json.dumps({"calls": index}), flush=True)


# -- child: the wallboard clients ----------------------------------------------------------------------


async def run_clients(url: str, cookie: str, clients: int, duration_s: float) -> None:
    delays: list[float] = []
    messages = [0]
    closed = [0]

    async def one(session: aiohttp.ClientSession) -> None:
        try:
            async with session.get(
                f"{url}/wallboard/feed", timeout=aiohttp.ClientTimeout(total=None)
            ) as resp:
                assert resp.status == 200, resp.status
                async for line in resp.content:
                    if not line.startswith(b"data: "):
                        continue
                    now = time.time()
                    messages[0] += 1
                    match = _EVENT_AT.match(line)
                    if match is not None:
                        delays.append(now - datetime.fromisoformat(match.group(1).decode()).timestamp())
        except (TimeoutError, aiohttp.ClientError):
            pass
        closed[0] += 1

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, cookies={"cc_session": cookie}) as session:
        tasks = [asyncio.create_task(one(session)) for _ in range(clients)]
        await asyncio.sleep(duration_s)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    print(
        json.dumps({"delays": delays, "messages": messages[0], "closed_early": closed[0]}),
        flush=True,
    )


# -- the app and the phases ----------------------------------------------------------------------------


async def phase(clients: int, rate: float, duration_s: float) -> dict[str, Any]:
    from aiohttp import web

    from callcenter.app import SERVICES, build_app
    from callcenter.config import Settings
    from callcenter.model.vocabulary import Role
    from callcenter.store.sql_stats import SqlStatsRepository

    prefix = f"ccbench-wb:{uuid.uuid4().hex[:10]}:"
    with tempfile.TemporaryDirectory(prefix="cc-bench-wallboard-") as data_dir:
        settings = Settings.from_env(
            {
                "CALLCENTER_DATA_DIR": data_dir,
                "CALLCENTER_REDIS_URL": REDIS_URL,
                "CALLCENTER_REDIS_KEY_PREFIX": prefix,
                "CALLCENTER_LOG_LEVEL": "WARNING",
            }
        )
        app = await build_app(settings)
        services = app[SERVICES]
        stats = services.stats
        assert stats is not None and stats.feed is not None
        # Split the delay: event -> folded on the board (bus and tail), and the time to render a snapshot.
        board_delays: list[float] = []
        render_s: list[float] = []
        observe, publish = stats.observe, stats.feed.publish

        async def timed_observe(event: Any) -> None:
            if event.event_type == "call_queued":
                board_delays.append(time.time() - event.occurred_at.timestamp())
            await observe(event)

        def timed_publish() -> None:
            started = time.perf_counter()
            publish()
            render_s.append(time.perf_counter() - started)

        stats.observe = timed_observe  # type: ignore[method-assign]
        stats.feed.publish = timed_publish  # type: ignore[method-assign]
        runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=2)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        url = f"http://{host}:{port}"
        _, secret = await services.auth.create_token(
            role=Role.SUPERVISOR, agent_id=None, label="bench", expires_at=None, actor="bench"
        )
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{url}/session", json={"token": secret}) as response:
                assert response.status == 200, await response.text()
                cookie = response.cookies["cc_session"].value
        here = str(HERE)
        env = {**os.environ, "PYTHONPATH": str(HERE.parents[1])}
        client_proc = None
        if clients:
            client_proc = await asyncio.create_subprocess_exec(
                sys.executable,
                here,
                "--client-mode",
                url,
                cookie,
                str(clients),
                str(duration_s + 4),
                stdout=subprocess.PIPE,
                env=env,
            )
            await asyncio.sleep(2.0)  # let the clients connect before the load starts
        publisher = await asyncio.create_subprocess_exec(
            sys.executable,
            here,
            "--publisher-mode",
            prefix,
            str(rate),
            str(duration_s),
            stdout=subprocess.PIPE,
            env=env,
        )
        feed = services.stats.feed if services.stats is not None else None
        published_before = feed.published if feed else 0
        cpu0, wall0 = time.process_time(), time.monotonic()
        out, _ = await publisher.communicate()
        calls = json.loads(out.decode().strip().splitlines()[-1])["calls"]
        # CPU counts until the app has done all the work of the load: every call on the live board and
        # folded into the interval rows (a loaded app may lag behind the publisher).
        rows = SqlStatsRepository(services.store.engine)
        window = (datetime.now(UTC) - timedelta(days=1), datetime.now(UTC) + timedelta(days=1))
        drain_started = time.monotonic()
        while time.monotonic() - drain_started < 120:
            on_board = stats.snapshot().overall["calls_offered"]
            stored = sum(c.offered for _, c in await rows.intervals(*window))
            if on_board == calls and stored == calls:
                break
            await asyncio.sleep(0.2)
        cpu_s, wall_s = time.process_time() - cpu0, time.monotonic() - wall0
        result: dict[str, Any] = {
            "clients": clients,
            "calls": calls,
            "events": calls * 3,
            "cpu_s": round(cpu_s, 3),
            "wall_s": round(wall_s, 2),
            "cpu_fraction": round(cpu_s / wall_s, 4),
            "snapshots_published": (feed.published - published_before) if feed else 0,
            "clients_dropped": feed.dropped if feed else 0,
            "drain_s": round(time.monotonic() - drain_started, 2),
            "p99_event_to_board_ms": round((percentile(board_delays, 0.99) or 0) * 1000, 1),
            "p99_publish_ms": round((percentile(render_s, 0.99) or 0) * 1000, 2),
        }
        if client_proc is not None:
            out, _ = await client_proc.communicate()
            report = json.loads(out.decode().strip().splitlines()[-1])
            delays = [d * 1000 for d in report["delays"]]
            result.update(
                samples=len(delays),
                messages=report["messages"],
                p50_delay_ms=round(percentile(delays, 0.5) or 0, 1),
                p99_delay_ms=round(percentile(delays, 0.99) or 0, 1),
                max_delay_ms=round(max(delays, default=0), 1),
            )
        await runner.cleanup()
        redis = services.redis
        with contextlib.suppress(Exception):
            keys = [k async for k in redis.scan_iter(match=f"{prefix}*")]
            if keys:
                await redis.delete(*keys)
        return result


async def run(args: argparse.Namespace) -> dict[str, Any]:
    log("warm-up: 3 s without clients (imports, first statements), discarded")
    await phase(0, args.rate, 3.0)
    baselines = []
    for round_ in (1, 2):
        log(f"no clients, run {round_}: {args.rate} calls/s for {args.duration_s} s")
        baselines.append(await phase(0, args.rate, args.duration_s))
        log(f"  {baselines[-1]}")
        if round_ == 1:
            log(f"{args.clients} clients in another process, same load")
            loaded = await phase(args.clients, args.rate, args.duration_s)
            log(f"  {loaded}")
    alone = {"cpu_s": round(sum(b["cpu_s"] for b in baselines) / len(baselines), 3)}
    extra = (loaded["cpu_s"] - alone["cpu_s"]) / alone["cpu_s"] if alone["cpu_s"] else None
    p99 = loaded.get("p99_delay_ms")
    return {
        "benchmark": "wallboard",
        "clients": args.clients,
        "calls_per_s": args.rate,
        "events_per_s": args.rate * 3,
        "duration_s": args.duration_s,
        "p50_delay_ms": loaded.get("p50_delay_ms"),
        "p99_delay_ms": p99,
        "max_delay_ms": loaded.get("max_delay_ms"),
        "delay_samples": loaded.get("samples"),
        "snapshots_per_s": round(loaded["snapshots_published"] / loaded["wall_s"], 2),
        "clients_dropped": loaded["clients_dropped"],
        "p99_event_to_board_ms": loaded["p99_event_to_board_ms"],
        "p99_publish_ms": loaded["p99_publish_ms"],
        "cpu_s_no_clients": alone["cpu_s"],
        "cpu_s_no_clients_runs": [b["cpu_s"] for b in baselines],
        "cpu_s_with_clients": loaded["cpu_s"],
        "extra_cpu_fraction": round(extra, 4) if extra is not None else None,
        "p99_under_1s": p99 is not None and p99 < 1000,
        "extra_cpu_under_10pct": extra is not None and extra < 0.10,
        "phases": {"no_clients": baselines, "with_clients": loaded},
    }


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "--client-mode":
        url, cookie, clients, duration = argv[1:5]
        asyncio.run(run_clients(url, cookie, int(clients), float(duration)))
        return 0
    if argv and argv[0] == "--publisher-mode":
        prefix, rate, duration = argv[1:4]
        asyncio.run(publish_events(prefix, float(rate), float(duration), seed=1))
        return 0
    parser = argparse.ArgumentParser(prog="callcenter bench wallboard", description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--rate", type=float, default=100.0, help="new calls a second")
    parser.add_argument("--duration-s", type=float, default=30.0)
    parser.add_argument("--quick", action="store_true", help="10 s and 50 clients")
    parser.add_argument("--json", action="store_true", help="(the last stdout line is JSON anyway)")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration_s, args.clients = 10.0, 50
    result = asyncio.run(run(args))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
