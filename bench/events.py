"""Benchmark: the whole app against the simulated Asterisk, hang-up to outcome and saturation (issue 3).

The real app from :func:`callcenter.app.build_app` on PostgreSQL (127.0.0.1:5432, database ``test``,
a schema of its own) and Redis (127.0.0.1:6379, a key prefix of its own), its ARI link connected to a
realtime simulated Asterisk on 127.0.0.1. Each phase gets a fresh world (simulator, schema, prefix,
app, agents), removed after it: a phase that overloads the app leaves a backlog the next must not
inherit. The simulator and its traffic run in a child process by default (``--inline-sim`` puts them
on the app's event loop): a real Asterisk is another process too, and on two cores the simulator in
the app's loop would take loop time the app would not spend in production. The queue (``bench``,
wrap-up 0 s) and its agents (1,300: about 1,000 open calls plus slack) are created through the
:class:`QueueService`; every agent's endpoint answers after an exponential delay (mean 1 s), callers
are patient (mean 120 s) and talk for a lognormal handle time (mean 9 s in phase 1).

Phase 1: ``--rate`` new calls/s (100) for ``--duration-s`` (60), so about 1,000 calls are open at once.
Hang-up to outcome is measured per call from the ``ReceivedAt`` of the first ``ChannelHangupRequest``
or ``StasisEnd`` of the caller's channel (stamped by the link when it read the frame) to the return of
the bus ``publish`` of that call's ``CallEnded``, which the queue service calls only after the call
record is committed to the store. Both ends are measured by wrapping, at composition time, the link's
event handler and the bus's ``publish``; no product code changes. Counted are the caller hang-ups read
while arrivals ran; the phase then winds down (bounded) so their outcomes are in. A hang-up handled but
still undecided counts with its age; one the simulator sent that the app never handled is counted
apart (``hangups_never_handled``); either fails the p99 target. ``cpu_s_per_1000_calls`` is the app
process's CPU from the first arrival to the end of the wind-down per 1,000 calls decided (an app that
cannot keep up spends it on calls it never decides; ``cpu_s_per_1000_calls_at_saturation`` is the
same ratio in the highest ramp step the app sustained). The awaits
the handler makes are timed too (``wall_time_breakdown``: store, bus, ARI REST), to show where the
serial handler's time goes.

Phase 2: the ramp. The call rate steps through ``--ramp-rates`` every ``--ramp-step-s`` (10 s) while
the handle time shrinks so that about 1,000 calls stay open (the same agents serve every step; what
grows is the event rate). A step passes when, at its end: the frames the simulator sent that the app
has not handled are at most half a second's worth (or 100, if that is more); the open calls are under
1.5 times the ~1,000 expected; the p99 of the step's hang-ups is under 1 s with none sent over a
second ago still unhandled; and the load generator kept up (90 % of the arrivals due, less three
Poisson standard deviations). ``max_calls_per_s`` is the highest passing rate before the first failing
step; ``events_per_s`` the event rate the app handled in that step.

``baseline_events_per_s``: ``json.loads`` alone over up to 50,000 frames captured from phase 1's
event stream, in the same run (``typed_parse_events_per_s`` adds our ``parse_event``).
``peak_rss_mb`` is the app's process (the simulator child's is reported beside it).

Targets on the 2-core CI machine: ``p99_ms`` at most 50 at 100 calls/s and ``max_calls_per_s`` at
least 200, each with a pass/fail boolean. Progress and the app's logs (repeated warnings counted, not
repeated) on stderr; the last line of stdout is one JSON object.

The app sends its ARI requests as it does by default: over the events WebSocket, which the simulator
answers as Asterisk 20.14 and later do (``--ari-rest http``: over HTTP only, the other half of an A/B
run; ``phase1.link`` counts the requests the socket carried and its stalls).

Run from a checkout: ``callcenter bench events --json`` (``--quick``: 10 s at 20 calls/s and a short
ramp). ``BENCH_POSTGRES_URL`` and ``BENCH_REDIS_URL`` override the servers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import dataclasses
import gc
import json
import logging
import math
import os
import pstats
import resource
import secrets
import signal
import sys
import tempfile
import threading
import time
import traceback
import types
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from aiohttp import web
from redis import asyncio as aioredis

from callcenter.app import SERVICES, Services, build_app, settle_garbage_collector
from callcenter.ari.events import AriEvent, ChannelHangupRequest, StasisEnd, StasisStart, parse_event
from callcenter.ari.link import AriLink, ReceivedAt
from callcenter.ari.translate import ORIGINATED_TAGS
from callcenter.config import LogSettings, Settings
from callcenter.logs import configure_logging
from callcenter.model.events import CallEnded, DomainEvent
from callcenter.model.records import QueueRecord
from callcenter.queue.detection import AgentLeg
from callcenter.tasks import where_waiting

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _load import CallProfile, ChildSim, InlineSim, SimControl  # noqa: E402
from _postgres import scratch_schema  # noqa: E402

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")

TARGET_P99_MS = 50.0
TARGET_MAX_CALLS_PER_S = 200.0
TARGET_RATE = 100.0
TARGET_DURATION_S = 60.0

QUEUE = "bench"
OPEN_CALLS = 1_000  # calls open at once, by design of both phases
AGENT_SLACK = 1.3  # agents per open call
ANSWER_MEAN_S = 1.0
PHASE1_HANDLE_S = 9.0
MIN_HANDLE_S = 0.5
SATURATION_P99_MS = 1_000.0
BACKLOG_MAX_S = 0.5  # frames behind, in seconds of the step's event rate
OPEN_CALLS_MAX_FACTOR = 1.5
GENERATOR_MIN_SHARE = 0.9
CAPTURE_FRAMES = 50_000
WIND_DOWN_MAX_S = 240.0
WIND_DOWN_STALL_S = 30.0
#: Longest wait, after the agents are made, for the background consumers to catch up with their events.
BUS_SETTLE_MAX_S = 180.0
CLEANUP_MAX_S = 60.0  # the app's own shutdown grace is 10 s a stage
DEFAULT_RAMP = "5,10,15,20,25,30,40,50,75,100,125,150,200,250,300,400,500"
QUICK_RAMP = "5,10,20,40"
ARI_COMMANDS = (
    "answer",
    "create_bridge",
    "add_to_bridge",
    "start_hold_music",
    "destroy_bridge",
    "ring_agent",
    "hangup",
    "continue_in_dialplan",
    "play",
)


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------ probe


class Probe:
    """What the wrapped link handler and bus publish saw.

    Plain classes, not dataclasses, in this file: ``callcenter bench`` executes it without
    registering it in ``sys.modules``, where ``dataclasses`` looks a class's module up.
    """

    def __init__(self, legs: Mapping[str, AgentLeg], breakdown: Breakdown) -> None:
        self.legs = legs
        self.breakdown = breakdown
        self.handled = 0
        self.hangup_at: dict[str, float] = {}  # caller channel -> when the first hang-up was read
        self.open_calls: set[str] = set()
        self.ended: set[str] = set()
        self.samples: list[tuple[float, float]] = []  # (hang-up read, latency s)
        self.ended_without_hangup = 0
        self.lag_max_s = 0.0  # longest wait of a frame between the link reading it and its handler
        self.sent_hangups: dict[str, float] = {}  # caller channel -> when the simulator sent its hang-up

    def wrap_handler(
        self, handler: Callable[[AriEvent, ReceivedAt], Awaitable[None]]
    ) -> Callable[[AriEvent, ReceivedAt], Awaitable[None]]:
        async def measured(event: AriEvent, received: ReceivedAt) -> None:
            self.handled += 1
            lag = time.monotonic() - received.monotonic_s
            if lag > self.lag_max_s:
                self.lag_max_s = lag
            if isinstance(event, ChannelHangupRequest | StasisEnd):
                call_id = event.channel.id
                if call_id in self.open_calls and call_id not in self.hangup_at:
                    self.hangup_at[call_id] = received.monotonic_s
            elif isinstance(event, StasisStart):
                call_id = event.channel.id
                originated = bool(event.args) and event.args[0] in ORIGINATED_TAGS
                if call_id not in self.legs and not originated and call_id not in self.ended:
                    self.open_calls.add(call_id)
            started = time.perf_counter()
            try:
                await handler(event, received)
            finally:
                self.breakdown.add("link.handler", time.perf_counter() - started)

        return measured

    def wrap_publish(
        self, publish: Callable[[DomainEvent], Awaitable[str]]
    ) -> Callable[[DomainEvent], Awaitable[str]]:
        async def measured(event: DomainEvent) -> str:
            message_id = await publish(event)
            if isinstance(event, CallEnded):
                self._ended_now(event.call_id)
            return message_id

        return measured

    def wrap_publish_many(
        self, publish_many: Callable[[Sequence[DomainEvent]], Awaitable[list[str]]]
    ) -> Callable[[Sequence[DomainEvent]], Awaitable[list[str]]]:
        async def measured(events: Sequence[DomainEvent]) -> list[str]:
            message_ids = await publish_many(events)
            for event in events:
                if isinstance(event, CallEnded):
                    self._ended_now(event.call_id)
            return message_ids

        return measured

    def _ended_now(self, call_id: str) -> None:
        if call_id in self.ended:
            return
        done = time.monotonic()
        self.ended.add(call_id)
        self.open_calls.discard(call_id)
        heard = self.hangup_at.pop(call_id, None)
        if heard is None:
            self.ended_without_hangup += 1
        else:
            self.samples.append((heard, done - heard))

    def take_lag_max(self) -> float:
        lag, self.lag_max_s = self.lag_max_s, 0.0
        return lag

    def record_sent(self, hangups: Sequence[tuple[str, float]]) -> None:
        """Caller hang-ups as the simulator sent them: (channel id, ``time.monotonic()``)."""
        for call_id, sent in hangups:
            self.sent_hangups.setdefault(call_id, sent)

    def latencies_ms(self, start: float, end: float, now: float, *, in_flight_s: float = 0.0) -> Latencies:
        """Hang-up to outcome of the caller hang-ups of ``[start, end)``.

        A hang-up handled but not decided yet counts with its age at ``now`` (a lower bound). One the
        simulator sent in the interval that the app has not even handled is counted in ``unhandled``
        and not in the latencies (its reading time is unknown), unless it was sent less than
        ``in_flight_s`` before ``now``: then it may simply be on its way.
        """
        done = [lat * 1000 for heard, lat in self.samples if start <= heard < end]
        waiting = [(now - heard) * 1000 for heard in self.hangup_at.values() if start <= heard < end]
        unhandled = sum(
            1
            for call_id, sent in self.sent_hangups.items()
            if start <= sent < min(end, now - in_flight_s)
            and call_id not in self.ended
            and call_id not in self.hangup_at
        )
        return Latencies(sorted(done + waiting), len(waiting), unhandled)


class Latencies:
    def __init__(self, values_ms: list[float], undecided: int, unhandled: int) -> None:
        self.values_ms = values_ms
        self.undecided = undecided
        self.unhandled = unhandled

    @property
    def complete(self) -> bool:
        """Every hang-up of the interval was handled and decided."""
        return self.undecided == 0 and self.unhandled == 0

    def p(self, q: float) -> float | None:
        return percentile(self.values_ms, q)


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile of sorted ``values``."""
    if not values:
        return None
    rank = max(1, math.ceil(q * len(values)))
    return values[min(rank, len(values)) - 1]


class Breakdown:
    """Wall time spent awaiting each wrapped operation (store, bus, ARI REST) and the handler itself.

    The link hands events to its handler one at a time, so the handler's wall time per event bounds
    the event rate; the wrapped operations show which awaits it is made of.
    """

    def __init__(self) -> None:
        self.totals: dict[str, list[float]] = {}  # name -> [count, seconds]

    def add(self, name: str, seconds: float) -> None:
        entry = self.totals.setdefault(name, [0, 0.0])
        entry[0] += 1
        entry[1] += seconds

    def wrap(self, name: str, fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await fn(*args, **kwargs)
            finally:
                self.add(name, time.perf_counter() - started)

        return timed

    def instrument(self, target: object, prefix: str, names: Sequence[str]) -> None:
        for name in names:
            setattr(target, name, self.wrap(f"{prefix}.{name}", getattr(target, name)))

    def snapshot(self) -> dict[str, tuple[int, float]]:
        return {name: (int(count), seconds) for name, (count, seconds) in self.totals.items()}

    @staticmethod
    def busy(before: dict[str, tuple[int, float]], after: dict[str, tuple[int, float]], name: str) -> float:
        """Seconds spent in ``name`` between two snapshots."""
        return after.get(name, (0, 0.0))[1] - before.get(name, (0, 0.0))[1]

    @staticmethod
    def between(
        before: dict[str, tuple[int, float]], after: dict[str, tuple[int, float]], events: int
    ) -> dict[str, dict[str, float]]:
        rows: dict[str, dict[str, float]] = {}
        for name, (count, seconds) in sorted(after.items(), key=lambda kv: -kv[1][1]):
            count -= before.get(name, (0, 0.0))[0]
            seconds -= before.get(name, (0, 0.0))[1]
            if count:
                rows[name] = {
                    "calls": count,
                    "total_s": round(seconds, 3),
                    "mean_ms": round(1000 * seconds / count, 3),
                    "ms_per_event": round(1000 * seconds / events, 3) if events else 0.0,
                }
        return rows


class StallTracer:
    """Diagnostics (``--stall-trace S``): where the event loop was when it stalled for more than S seconds.

    A loop task stamps a heartbeat every 50 ms; a daemon thread (diagnostics only, it drives nothing)
    looks every 50 ms and, when the heartbeat is older than the threshold, takes the loop thread's
    stack once per stall. The stacks are counted by their innermost project frames and printed at
    the end, with how long each stall lasted.
    """

    def __init__(self, threshold_s: float) -> None:
        self.threshold_s = threshold_s
        self.beat = time.monotonic()
        self.stalls: list[tuple[float, str]] = []  # (stall length s, stack summary)
        self._thread_id = threading.get_ident()
        self._done = threading.Event()
        self._current: list[str] | None = None
        self._started = 0.0

    def _gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
            return
        took = time.perf_counter() - self._gc_started
        generation = info.get("generation", 0)
        count, total, longest = self.gc_pauses.get(generation, (0, 0.0, 0.0))
        self.gc_pauses[generation] = (count + 1, total + took, max(longest, took))

    async def heartbeat(self) -> None:
        thread = threading.Thread(target=self._watch, name="stall-tracer", daemon=True)
        thread.start()
        self.gc_pauses: dict[int, tuple[int, float, float]] = {}
        self._gc_started = 0.0
        gc.callbacks.append(self._gc)
        try:
            while True:
                now = time.monotonic()
                if self._current is not None:
                    self.stalls.append((now - self._started, " <- ".join(self._current)))
                    self._current = None
                self.beat = now
                await asyncio.sleep(0.05)
        finally:
            gc.callbacks.remove(self._gc)
            self._done.set()

    def _watch(self) -> None:
        while not self._done.wait(0.05):
            if self._current is None and time.monotonic() - self.beat > self.threshold_s:
                frame = sys._current_frames().get(self._thread_id)
                if frame is None:
                    continue
                stack = traceback.extract_stack(frame)
                project = [f for f in stack if "/callcenter/" in f.filename or "/ivr/" in f.filename]
                chosen = [stack[-1], *reversed(project[-6:])]
                self._started = self.beat
                self._current = [f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in chosen]

    def report(self) -> None:
        for generation, (count, total, longest) in sorted(getattr(self, "gc_pauses", {}).items()):
            progress(
                f"gc generation {generation}: {count} collections, {total:.2f} s in all, longest {longest * 1000:.0f} ms"
            )
        if not self.stalls:
            progress(f"stall trace: no stall over {self.threshold_s:g} s")
            return
        progress(f"stall trace: {len(self.stalls)} stalls over {self.threshold_s:g} s (longest first):")
        for length, stack in sorted(self.stalls, reverse=True)[:25]:
            progress(f"  {length:6.2f} s  {stack}")


# ------------------------------------------------------------------------------------------ world


class Snapshot:
    def __init__(
        self, t: float, sim: dict[str, Any], handled: int, skipped: int, open_calls: int, cpu_s: float
    ) -> None:
        self.t = t
        self.sim = sim
        self.handled = handled
        self.skipped = skipped
        self.open_calls = open_calls
        self.cpu_s = cpu_s

    @property
    def backlog(self) -> int:
        """Frames the simulator sent that the app has not handled yet (in TCP, buffers, the link's inbox)."""
        return int(self.sim["frames_sent"]) - self.handled - self.skipped

    @property
    def arrived(self) -> int:
        return int(self.sim["traffic"]["arrived"])


class World:
    """One app against one simulator, with its own schema, Redis prefix and agents (one per phase)."""

    def __init__(
        self, sim: SimControl, services: Services, link: AriLink, probe: Probe, data_dir: Path
    ) -> None:
        self.sim = sim
        self.services = services
        self.link = link
        self.probe = probe
        self.data_dir = data_dir
        self._hangups_seen = 0
        self.loop_late_max_s = 0.0  # longest the event loop ran a timer late (a stall), since the start

    async def snapshot(self) -> Snapshot:
        sent = await self.sim.hangups(self._hangups_seen)
        self._hangups_seen += len(sent)
        self.probe.record_sent(sent)
        sim = await self.sim.stats()
        return Snapshot(
            t=time.monotonic(),
            sim=sim,
            handled=self.probe.handled,
            skipped=self.link.frames_skipped,
            open_calls=len(self.probe.open_calls),
            cpu_s=time.process_time(),
        )

    def work_left(self, snap: Snapshot) -> int:
        return max(snap.backlog, 0) + snap.open_calls + int(snap.sim["channels"])

    async def wind_down(self, label: str) -> dict[str, Any]:
        """Stop arrivals and wait until the app has handled every frame and decided every call.

        Waits while the work left keeps shrinking (an overloaded app drains its backlog late), at most
        ``WIND_DOWN_MAX_S``, and gives up after ``WIND_DOWN_STALL_S`` without progress: the world is
        thrown away after the phase anyway, and what is left undecided is reported as such.
        """
        await self.sim.stop_arrivals()
        started = time.monotonic()
        best, best_at = -1, started
        while True:
            snap = await self.snapshot()
            left = self.work_left(snap)
            if left == 0 and snap.sim["idle"]:
                break
            now = time.monotonic()
            if best < 0 or left < best:
                best, best_at = left, now
            if now - best_at > WIND_DOWN_STALL_S or now - started > WIND_DOWN_MAX_S:
                progress(f"{label}: gave up waiting ({left} frames, calls and channels left)")
                break
            await asyncio.sleep(0.5)
        elapsed = time.monotonic() - started
        snap = await self.snapshot()
        progress(f"{label}: wound down in {elapsed:.1f} s (left: {self.work_left(snap)})")
        return {"seconds": round(elapsed, 1), "settled": self.work_left(snap) == 0}


def call_profile(handle_mean_s: float) -> dict[str, Any]:
    return dataclasses.asdict(
        CallProfile(queue=QUEUE, handle_mean_s=handle_mean_s, agent_answer_mean_s=ANSWER_MEAN_S)
    )


def generator_floor(expected: float) -> float:
    """The fewest arrivals that still mean the generator kept up: Poisson noise (3 sigma) aside, 90 %."""
    return GENERATOR_MIN_SHARE * expected - 3 * math.sqrt(expected)


def ramp_handle_s(rate: float, open_target: float) -> float:
    """Handle time that keeps about ``open_target`` calls open at ``rate`` (ring time included)."""
    return max(MIN_HANDLE_S, min(PHASE1_HANDLE_S, open_target / rate - ANSWER_MEAN_S))


async def settle_bus(prefix: str, label: str) -> None:
    """Wait until every consumer group has read and acknowledged every event on the bus.

    Making the agents publishes two events per agent (2,600 for 1,300), and the background consumers
    (the dispatcher checks each queue's bookings for each change of queues) take a while to work
    through them. Calls start only after: the phase measures calls, not the set-up's backlog.
    """
    client = aioredis.from_url(REDIS_URL)
    stream = f"{prefix}events"
    started = time.monotonic()
    try:
        while True:
            last = (await client.xinfo_stream(stream))["last-generated-id"]
            groups = await client.xinfo_groups(stream)
            behind = [g["name"].decode() for g in groups if g["last-delivered-id"] != last or g["pending"]]
            if not behind or time.monotonic() - started > BUS_SETTLE_MAX_S:
                break
            await asyncio.sleep(0.5)
    finally:
        await client.aclose()
    state = f"still behind: {', '.join(behind)}" if behind else f"{len(groups)} groups"
    progress(
        f"{label}: consumers caught up with the set-up's events in {time.monotonic() - started:.1f} s ({state})"
    )


async def delete_keys(prefix: str) -> int:
    client = aioredis.from_url(REDIS_URL)
    try:
        pattern = prefix.replace("*", r"\*") + "*"
        names = [name async for name in client.scan_iter(match=pattern, count=1000)]
        if names:
            await client.delete(*names)
        return len(names)
    finally:
        await client.aclose()


async def add_agents(services: Services, sim: SimControl, count: int) -> list[str]:
    queue = services.queue
    await queue.put_queue(
        QueueRecord(
            name=QUEUE,
            title="Benchmark",
            max_wait_s=600,
            wrap_up_s=0,
            ring_timeout_s=15,
            max_misses_before_pause=0,
        ),
        actor="bench",
    )
    endpoints = [f"PJSIP/bench{i:05d}" for i in range(count)]
    await sim.endpoints(endpoints)
    started = time.monotonic()

    async def add(i: int, endpoint: str) -> None:
        agent_id = f"bench{i:05d}"
        await queue.add_agent(
            agent_id=agent_id, name=agent_id, endpoint=endpoint, queues=[QUEUE], actor="bench"
        )
        await queue.login(agent_id, actor="bench")

    chunk = 50  # side by side: their state writes share the queue writer's batches
    for first in range(0, len(endpoints), chunk):
        await asyncio.gather(*(add(i, e) for i, e in enumerate(endpoints[first : first + chunk], first)))
        done = min(first + chunk, len(endpoints))
        if done % 250 == 0:
            progress(f"  {done} agents created and logged in ({time.monotonic() - started:.1f} s)")
    return endpoints


# ------------------------------------------------------------------------------------------ phases


class PhaseOne:
    def __init__(self, rate: float, duration_s: float) -> None:
        self.rate = rate
        self.duration_s = duration_s
        self.calls = 0
        self.events = 0
        self.hangups = 0
        self.undecided = 0
        self.unhandled = 0
        self.decided = 0
        self.p50_ms: float | None = None
        self.p99_ms: float | None = None
        self.max_ms: float | None = None
        self.cpu_s = 0.0
        self.sim_cpu_s = 0.0
        self.open_calls_mean = 0.0
        self.open_calls_max = 0
        self.backlog_max = 0
        self.wind_down: dict[str, Any] = {}
        self.events_in_window = 0
        self.cpu_share_in_window = 0.0
        self.breakdown: dict[str, dict[str, float]] = {}


async def monitor(world: World, label: str, every_s: float, samples: list[Snapshot]) -> None:
    """Sample once a second, print progress every ``every_s``."""
    last = await world.snapshot()
    samples.append(last)
    printed = last.t
    while True:
        await asyncio.sleep(1.0)
        snap = await world.snapshot()
        samples.append(snap)
        lag = world.probe.take_lag_max()
        late, world.link.loop_late_max_s = world.link.loop_late_max_s, 0.0
        world.loop_late_max_s = max(world.loop_late_max_s, late)
        if snap.t - printed >= every_s - 0.01:
            dt = snap.t - last.t
            p99 = world.probe.latencies_ms(last.t, snap.t, snap.t).p(0.99)
            progress(
                f"  [{label}] rate {snap.sim['rate']:.0f}/s arrived {snap.arrived} "
                f"events {(snap.handled - last.handled) / dt:.0f}/s backlog {snap.backlog} "
                f"open {snap.open_calls} (sim {snap.sim['channels']} ch) "
                f"p99 {p99 if p99 is None else round(p99, 1)} ms lag {lag * 1000:.0f} ms "
                f"loop late {late * 1000:.0f} ms "
                f"cpu {(snap.cpu_s - last.cpu_s) / dt:.2f} sim-cpu {(snap.sim['cpu_s'] - last.sim['cpu_s']) / dt:.2f}"
            )
            printed = snap.t
            last = snap


async def phase_one(
    world: World, rate: float, duration_s: float, profiler: cProfile.Profile | None
) -> PhaseOne:
    result = PhaseOne(rate=rate, duration_s=duration_s)
    progress(f"phase 1: {rate:g} calls/s for {duration_s:g} s, handle {PHASE1_HANDLE_S:g} s")
    await world.sim.capture(CAPTURE_FRAMES)
    samples: list[Snapshot] = []
    start = await world.snapshot()
    ended_before = len(world.probe.ended)
    timings = world.probe.breakdown.snapshot()
    if profiler is not None:
        profiler.enable()
    await world.sim.traffic(rate, call_profile(PHASE1_HANDLE_S))
    watcher = asyncio.create_task(monitor(world, "phase 1", 5.0, samples))
    try:
        await asyncio.sleep(duration_s)
        end = await world.snapshot()
        result.breakdown = Breakdown.between(
            timings, world.probe.breakdown.snapshot(), end.handled - start.handled
        )
    finally:
        if profiler is not None:
            profiler.disable()
    await world.sim.capture(0)
    progress("phase 1: arrivals stopped; winding down")
    try:
        result.wind_down = await world.wind_down("phase 1")
    finally:
        watcher.cancel()
    settled = await world.snapshot()
    # Every event and every CPU second of the phase's calls: from the first arrival until the last
    # outcome (the wind-down's idle seconds add little next to the calls' work).
    result.calls = end.arrived - start.arrived
    result.events = settled.handled - start.handled
    result.events_in_window = end.handled - start.handled
    result.cpu_s = settled.cpu_s - start.cpu_s
    result.sim_cpu_s = float(settled.sim["cpu_s"]) - float(start.sim["cpu_s"])
    result.cpu_share_in_window = (end.cpu_s - start.cpu_s) / (end.t - start.t)
    lats = world.probe.latencies_ms(start.t, end.t, settled.t)
    result.hangups, result.undecided, result.unhandled = len(lats.values_ms), lats.undecided, lats.unhandled
    result.p50_ms, result.p99_ms, result.max_ms = lats.p(0.5), lats.p(0.99), lats.p(1.0)
    result.decided = len(world.probe.ended) - ended_before
    # Steady state: the second half of the phase (the first holds the build-up of open calls).
    steady = [s for s in samples if start.t + duration_s / 2 <= s.t <= end.t]
    if steady:
        result.open_calls_mean = sum(s.open_calls for s in steady) / len(steady)
    window = [s for s in samples if s.t <= end.t]
    result.open_calls_max = max((s.open_calls for s in window), default=0)
    result.backlog_max = max((s.backlog for s in window), default=0)
    return result


class Step:
    def __init__(self, rate: float, handle_mean_s: float) -> None:
        self.rate = rate
        self.handle_mean_s = handle_mean_s
        self.arrived = 0
        self.events_per_s = 0.0
        self.backlog = 0
        self.open_calls = 0
        self.hangups = 0
        self.undecided = 0
        self.unhandled = 0
        self.handler_busy_share = 0.0
        self.p99_ms: float | None = None
        self.cpu_share = 0.0
        self.sim_cpu_share = 0.0
        self.sim_apart = True  # the simulator's CPU is its own (child process), not the app's
        self.checks: dict[str, bool] = {}

    @property
    def passed(self) -> bool:
        return all(self.checks.values())

    def as_json(self) -> dict[str, Any]:
        return {
            "rate_calls_per_s": self.rate,
            "handle_mean_s": round(self.handle_mean_s, 3),
            "arrived": self.arrived,
            "events_per_s": self.events_per_s,
            "backlog_frames": self.backlog,
            "open_calls": self.open_calls,
            "hangups": self.hangups,
            "undecided": self.undecided,
            "unhandled": self.unhandled,
            "p99_ms": self.p99_ms,
            "handler_busy_share": self.handler_busy_share,
            "app_cpu_share": self.cpu_share,
            "sim_cpu_share": self.sim_cpu_share if self.sim_apart else None,
            "checks": self.checks,
            "pass": self.passed,
        }


async def phase_two(world: World, rates: Sequence[float], step_s: float, open_target: float) -> list[Step]:
    progress(f"phase 2: ramp through {', '.join(f'{r:g}' for r in rates)} calls/s, {step_s:g} s a step")
    steps: list[Step] = []
    samples: list[Snapshot] = []
    watcher = asyncio.create_task(monitor(world, "ramp", 2.0, samples))
    try:
        for i, rate in enumerate(rates):
            handle = ramp_handle_s(rate, open_target)
            if i == 0:
                await world.sim.traffic(rate, call_profile(handle))
            else:
                await world.sim.rate(rate, handle)
            before = await world.snapshot()
            timings = world.probe.breakdown.snapshot()
            await asyncio.sleep(step_s)
            after = await world.snapshot()
            dt = after.t - before.t
            step = Step(rate=rate, handle_mean_s=handle)
            step.arrived = after.arrived - before.arrived
            step.events_per_s = (after.handled - before.handled) / dt
            step.backlog = after.backlog
            step.open_calls = after.open_calls
            lats = world.probe.latencies_ms(before.t, after.t, after.t, in_flight_s=SATURATION_P99_MS / 1000)
            step.hangups, step.undecided, step.unhandled = len(lats.values_ms), lats.undecided, lats.unhandled
            step.p99_ms = lats.p(0.99)
            step.handler_busy_share = (
                Breakdown.busy(timings, world.probe.breakdown.snapshot(), "link.handler") / dt
            )
            step.cpu_share = (after.cpu_s - before.cpu_s) / dt
            step.sim_cpu_share = (float(after.sim["cpu_s"]) - float(before.sim["cpu_s"])) / dt
            step.sim_apart = isinstance(world.sim, ChildSim)
            sent_per_s = (int(after.sim["frames_sent"]) - int(before.sim["frames_sent"])) / dt
            step.checks = {
                "events_bounded": step.backlog <= max(100.0, BACKLOG_MAX_S * sent_per_s),
                "open_calls_bounded": step.open_calls <= OPEN_CALLS_MAX_FACTOR * open_target,
                "p99_under_1s": step.p99_ms is not None
                and step.p99_ms < SATURATION_P99_MS
                and step.unhandled == 0,
                "generator_kept_up": step.arrived >= generator_floor(rate * step_s),
            }
            steps.append(step)
            verdict = (
                "pass" if step.passed else "FAIL " + ",".join(k for k, v in step.checks.items() if not v)
            )
            progress(
                f"ramp {rate:g}/s (handle {handle:.2f} s): arrived {step.arrived}, "
                f"{step.events_per_s:.0f} events/s, backlog {step.backlog}, open {step.open_calls}, "
                f"p99 {step.p99_ms if step.p99_ms is None else round(step.p99_ms, 1)} ms "
                f"({step.undecided} undecided, {step.unhandled} unhandled), "
                f"handler busy {step.handler_busy_share:.2f}, app cpu {step.cpu_share:.2f}, sim cpu {step.sim_cpu_share:.2f}: "
                f"{verdict}"
            )
            if not step.passed:
                break
    finally:
        watcher.cancel()
        await world.sim.stop_arrivals()
    return steps


def baseline(frames: list[str]) -> tuple[float, float]:
    """``json.loads`` alone, then our ``parse_event``, over the captured frames: events per second."""

    def rate(decode: Callable[[str], object]) -> float:
        done, started = 0, time.perf_counter()
        while True:
            for frame in frames:
                decode(frame)
            done += len(frames)
            elapsed = time.perf_counter() - started
            if elapsed >= 1.0:
                return done / elapsed

    return rate(json.loads), rate(parse_event)


# ------------------------------------------------------------------------------------------ main


@contextlib.asynccontextmanager
async def open_world(args: argparse.Namespace, agents: int, label: str) -> AsyncIterator[World]:
    """A fresh world for one phase: simulator, schema, Redis prefix, the app, its agents; all removed after.

    Each phase starts clean: a phase that overloads the app leaves a backlog no later phase should
    inherit.
    """
    password = secrets.token_urlsafe(12)
    prefix = f"bench-events-{uuid.uuid4().hex[:10]}:"
    opener = InlineSim if args.inline_sim else ChildSim
    sim: SimControl = await opener.open(users={"bench": password}, seed=args.seed)
    progress(f"{label}: simulated Asterisk at {sim.url} ({sim.where}); Redis prefix {prefix}")
    try:
        async with scratch_schema("events", migrated=False) as database:  # the app migrates
            database_url = database.url
            with tempfile.TemporaryDirectory(prefix="bench-events-") as data_dir:
                settings = Settings.from_env(
                    {
                        # Other settings from the environment apply (an A/B run of one of them).
                        **{k: v for k, v in os.environ.items() if k.startswith("CALLCENTER_")},
                        "CALLCENTER_DATA_DIR": data_dir,
                        "CALLCENTER_DATABASE_URL": database_url,
                        "CALLCENTER_REDIS_URL": REDIS_URL,
                        "CALLCENTER_REDIS_KEY_PREFIX": prefix,
                        "CALLCENTER_ARI_URL": sim.url,
                        "CALLCENTER_ARI_USERNAME": "bench",
                        "CALLCENTER_ARI_PASSWORD": password,
                        "CALLCENTER_LOG_LEVEL": args.log_level,
                        "CALLCENTER_ARI_REST_OVER_WEBSOCKET": str(args.ari_rest == "websocket").lower(),
                    }
                )
                try:
                    async with running_app(settings, sim, Path(data_dir)) as world:
                        progress(f"{label}: creating {agents} agents through the queue service")
                        t0 = time.monotonic()
                        await add_agents(world.services, sim, agents)
                        progress(f"{label}: {agents} agents ready in {time.monotonic() - t0:.1f} s")
                        await settle_bus(prefix, label)
                        settle_garbage_collector()  # as `callcenter serve` does once started
                        yield world
                finally:
                    removed = await delete_keys(prefix)
                    progress(f"{label}: deleted {removed} Redis keys under {prefix}")
    finally:
        await sim.close()


@contextlib.asynccontextmanager
async def running_app(settings: Settings, sim: SimControl, data_dir: Path) -> AsyncIterator[World]:
    """The app from ``build_app``, instrumented, with its background tasks running and its link up."""
    app = await build_app(settings)
    services = app[SERVICES]
    link = services.ari_link
    assert link is not None
    breakdown = Breakdown()
    probe = Probe(services.queue.agent_legs, breakdown)
    # Instrumentation at composition time, no product code changed: the link's handler and the bus's
    # publish (the two ends of hang-up to outcome), and the awaits the queue service makes (the
    # repositories, and its CallControl, reached through a private attribute: diagnostics only).
    breakdown.instrument(services.store.calls, "store.calls", ("upsert", "append_event", "open_missed"))
    breakdown.instrument(services.store.agents, "store.agents", ("set_state",))
    breakdown.instrument(services.bus, "bus", ("publish", "publish_many"))
    if services.queue._steps is not None:  # noqa: SLF001
        breakdown.instrument(services.queue._steps, "store.steps", ("save_steps",))  # noqa: SLF001
    breakdown.instrument(services.queue._control, "ari", ARI_COMMANDS)  # noqa: SLF001
    link._handler = probe.wrap_handler(link._handler)  # noqa: SLF001
    services.bus.publish = probe.wrap_publish(services.bus.publish)  # type: ignore[method-assign,assignment]
    services.bus.publish_many = probe.wrap_publish_many(services.bus.publish_many)  # type: ignore[method-assign,assignment]
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    try:
        await link.wait_up(30)
        yield World(sim=sim, services=services, link=link, probe=probe, data_dir=data_dir)
    finally:
        await bounded_cleanup(runner)


async def bounded_cleanup(runner: web.AppRunner) -> None:
    """The app's teardown, given at most ``CLEANUP_MAX_S``: a benchmark always ends and prints its JSON.

    An app that has not shut down by then is reported (with where each of its tasks waits) and
    abandoned: its schema, Redis keys and simulator are still removed by the callers.
    """
    cleanup = asyncio.create_task(runner.cleanup(), name="bench-app-cleanup")
    done, _ = await asyncio.wait({cleanup}, timeout=CLEANUP_MAX_S)
    if cleanup in done:
        if not cleanup.cancelled() and cleanup.exception() is not None:
            progress(f"app cleanup failed: {cleanup.exception()!r}")
        return
    progress(f"app cleanup still running after {CLEANUP_MAX_S:g} s; where its tasks wait:")
    dump_tasks()
    cleanup.cancel()
    done, _ = await asyncio.wait({cleanup}, timeout=10.0)
    progress("app cleanup cancelled" if done else "app cleanup ignored its cancellation; abandoned")


def dump_tasks() -> None:
    """Every pending task of the loop and suspended async generator with where it waits (diagnostics,
    on stderr)."""
    for task in asyncio.all_tasks():
        if task is asyncio.current_task() or task.done():
            continue
        progress(f"  task {task.get_name()}: {where_waiting(task.get_coro(), depth=6)}")
    # A cleanup context waits inside its async generator, which the task's await chain does not show.
    gc.unfreeze()  # the app's generators were frozen with it at start (gc.get_objects skips those)
    for obj in gc.get_objects():
        if isinstance(obj, types.AsyncGeneratorType) and obj.ag_await is not None and obj.ag_frame:
            progress(f"  async generator {obj.ag_code.co_name}: {where_waiting(obj, depth=6)}")


class LogTally(logging.Filter):
    """Counts the app's warnings and errors by message template; prints only the first few of each."""

    def __init__(self, shown_per_template: int = 3) -> None:
        super().__init__()
        self.counts: dict[str, int] = {}
        self._shown = shown_per_template

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        key = f"{record.levelname} {record.name}: {record.msg}"
        count = self.counts[key] = self.counts.get(key, 0) + 1
        if count == self._shown + 1:
            record.msg = f"{record.msg} (further ones counted, not shown)"
        return count <= self._shown + 1


async def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    rates = [float(r) for r in args.ramp_rates.split(",") if r.strip()]
    agents = args.agents or math.ceil(
        max(OPEN_CALLS, args.rate * (ANSWER_MEAN_S + PHASE1_HANDLE_S)) * AGENT_SLACK
    )
    if args.quick and not args.agents:
        agents = math.ceil(args.rate * (ANSWER_MEAN_S + PHASE1_HANDLE_S) * AGENT_SLACK) + 20
    configure_logging(LogSettings(level=args.log_level))
    tally = LogTally()
    for handler in logging.getLogger().handlers:
        handler.addFilter(tally)

    async with open_world(args, agents, "phase 1") as world:
        profiler = cProfile.Profile() if args.cprofile else None
        tracer = StallTracer(args.stall_trace) if args.stall_trace else None
        beating = asyncio.create_task(tracer.heartbeat()) if tracer is not None else None
        try:
            one = await phase_one(world, args.rate, args.duration_s, profiler)
        finally:
            if beating is not None and tracer is not None:
                beating.cancel()
                tracer.report()
        if profiler is not None:
            profiler.dump_stats(args.cprofile)
            pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(30)
            progress(f"cProfile of phase 1 written to {args.cprofile}")
        capture = world.data_dir / "frames.jsonl"
        captured = await world.sim.dump(str(capture))
        frames = capture.read_text(encoding="utf-8").splitlines()
        sim_one = await world.sim.stats()
        link_one = {
            "frames_skipped": world.link.frames_skipped,
            "handler_errors": world.link.handler_errors,
            "connects": world.link.connects,
            "loop_late_max_s": round(max(world.loop_late_max_s, world.link.loop_late_max_s), 3),
        }
        if world.link.rest is not None:
            link_one["rest_over_websocket_sent"] = world.link.rest.sent
            link_one["rest_over_websocket_stalls"] = world.link.rest.stalls
        ended_without_hangup = world.probe.ended_without_hangup
    progress(
        f"phase 1: {one.calls} calls, {one.events} events, p50 {one.p50_ms} ms, p99 {one.p99_ms} ms "
        f"({one.hangups} hang-ups, {one.undecided} undecided, {one.unhandled} unhandled)"
    )

    steps: list[Step] = []
    if not args.skip_ramp:
        async with open_world(args, agents, "phase 2") as world:
            steps = await phase_two(world, rates, args.ramp_step_s, agents / AGENT_SLACK)

    json_per_s, typed_per_s = baseline(frames) if frames else (0.0, 0.0)
    progress(
        f"baseline over {captured} captured frames: "
        f"json.loads {json_per_s:,.0f}/s, parse_event {typed_per_s:,.0f}/s"
    )
    passing: Step | None = None
    for step in steps:
        if not step.passed:
            break
        passing = step
    max_calls = passing.rate if passing is not None else 0.0
    p99_ok = (
        one.p99_ms is not None and one.p99_ms <= TARGET_P99_MS and one.undecided == 0 and one.unhandled == 0
    )
    targets: dict[str, dict[str, Any]] = {
        "p99_ms": {
            "value": one.p99_ms,
            "target": f"<= {TARGET_P99_MS:g} at {TARGET_RATE:g} calls/s",
            "pass": p99_ok,
        },
        "max_calls_per_s": {
            "value": max_calls,
            "target": f">= {TARGET_MAX_CALLS_PER_S:g}",
            "pass": max_calls >= TARGET_MAX_CALLS_PER_S,
        },
    }
    return {
        "benchmark": "events",
        "calls": one.calls,
        "events": one.events,
        "p50_ms": one.p50_ms,
        "p99_ms": one.p99_ms,
        "max_calls_per_s": max_calls,
        "events_per_s": passing.events_per_s if passing is not None else 0.0,
        "cpu_s_per_1000_calls": 1000 * one.cpu_s / one.decided if one.decided else None,
        "cpu_s_per_1000_calls_at_saturation": 1000 * passing.cpu_share / passing.rate if passing else None,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "baseline_events_per_s": json_per_s,
        "typed_parse_events_per_s": typed_per_s,
        "phase1": {
            "rate_calls_per_s": one.rate,
            "duration_s": one.duration_s,
            "events_per_call": one.events / one.calls if one.calls else None,
            "events_per_s_while_arriving": one.events_in_window / one.duration_s,
            "hangups_measured": one.hangups,
            "calls_decided": one.decided,
            "undecided_at_end": one.undecided,
            "hangups_never_handled": one.unhandled,
            "max_ms": one.max_ms,
            "open_calls_mean_second_half": one.open_calls_mean,
            "open_calls_max": one.open_calls_max,
            "backlog_frames_max": one.backlog_max,
            "app_cpu_share_while_arriving": one.cpu_share_in_window,
            "sim_cpu_s_per_1000_calls": 1000 * one.sim_cpu_s / one.calls
            if one.calls and not args.inline_sim
            else None,
            "sim_peak_rss_mb": sim_one["peak_rss_mb"] if not args.inline_sim else None,
            "traffic": sim_one["traffic"],
            "link": link_one,
            "ended_without_hangup_event": ended_without_hangup,
            "wind_down": one.wind_down,
            "wall_time_breakdown": one.breakdown,
        },
        "ramp": {
            "step_s": args.ramp_step_s,
            "rates": rates,
            "reached_top_rate_without_saturating": bool(steps)
            and steps[-1].passed
            and len(steps) == len(rates),
            "steps": [step.as_json() for step in steps],
        },
        "scenario": {
            "agents": agents,
            "queue_wrap_up_s": 0,
            "agent_answer_mean_s": ANSWER_MEAN_S,
            "phase1_handle_mean_s": PHASE1_HANDLE_S,
            "patience_mean_s": CallProfile().patience_mean_s,
            "simulator": "same process" if args.inline_sim else "child process",
            "ari_rest": args.ari_rest,
            "store": "postgresql",
            "bus": "redis",
            "quick": bool(args.quick),
            "seed": args.seed,
            "captured_frames": captured,
        },
        "app_warnings": tally.counts,
        "targets": targets,
        "targets_apply": one.rate >= TARGET_RATE and one.duration_s >= TARGET_DURATION_S,
        "pass": all(bool(t["pass"]) for t in targets.values()),
        "elapsed_s": time.monotonic() - started,
    }


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="callcenter bench events", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=None, help="phase 1 calls/s (100)")
    parser.add_argument("--duration-s", type=float, default=None, help="phase 1 length (60 s)")
    parser.add_argument("--ramp-rates", default=None, help=f"comma-separated calls/s ({DEFAULT_RAMP})")
    parser.add_argument("--ramp-step-s", type=float, default=None, help="seconds per ramp step (10)")
    parser.add_argument(
        "--agents", type=int, default=None, help="agents (default: enough for ~1,000 open calls)"
    )
    parser.add_argument("--skip-ramp", action="store_true", help="phase 1 only")
    parser.add_argument("--inline-sim", action="store_true", help="run the simulator on the app's event loop")
    parser.add_argument("--quick", action="store_true", help="smoke run: 10 s at 20 calls/s, short ramp")
    parser.add_argument("--cprofile", metavar="PATH", help="cProfile the app process during phase 1")
    parser.add_argument(
        "--stall-trace",
        type=float,
        metavar="S",
        default=None,
        help="diagnostics: print where the event loop was in each stall longer than S seconds (phase 1)",
    )
    parser.add_argument(
        "--ari-rest",
        choices=("websocket", "http"),
        default="websocket",
        help="how the app sends ARI requests: over the events WebSocket (the default, where Asterisk "
        "answers it) or HTTP only (CALLCENTER_ARI_REST_OVER_WEBSOCKET=false)",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--log-level", default="WARNING")
    parser.add_argument(
        "--json", action="store_true", help="accepted for symmetry: the last line is JSON anyway"
    )
    args = parser.parse_args(argv)
    quick = args.quick
    args.rate = args.rate if args.rate is not None else (20.0 if quick else TARGET_RATE)
    args.duration_s = (
        args.duration_s if args.duration_s is not None else (10.0 if quick else TARGET_DURATION_S)
    )
    args.ramp_rates = args.ramp_rates or (QUICK_RAMP if quick else DEFAULT_RAMP)
    args.ramp_step_s = args.ramp_step_s if args.ramp_step_s is not None else (5.0 if quick else 10.0)
    if args.rate <= 0 or args.duration_s <= 0 or args.ramp_step_s <= 0:
        parser.error("rates and durations must be positive")
    # SIGTERM unwinds like Ctrl-C, so the phase's schema, Redis keys and simulator are removed.
    signal.signal(signal.SIGTERM, _interrupt)
    report = asyncio.run(run(args))
    for name, target in report["targets"].items():
        verdict = "pass" if target["pass"] else "FAIL"
        progress(f"  {name}: {target['value']} (target {target['target']}) {verdict}")
    print(json.dumps(report, allow_nan=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
