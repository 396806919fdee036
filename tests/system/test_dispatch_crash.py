"""Crash test of the callback dispatcher: two dispatcher processes on the machine's Redis and
PostgreSQL, 500 callbacks, the leader killed with SIGKILL at random moments at least ten times.
Every callback must end in exactly one terminal state, and the simulated Asterisk must never have
been asked to dial the same attempt twice (a retry is a new attempt with a new channel id)."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Final

import pytest
from redis import asyncio as aioredis

from callcenter.callbacks.attempts import leg_of
from callcenter.callbacks.service import CallbackService
from callcenter.callbacks.sources import CallbackSources, SourceSettings
from callcenter.clock import SystemClock
from callcenter.config import DatabaseSettings
from callcenter.model.records import QueueRecord
from callcenter.model.vocabulary import CallbackState
from callcenter.simulator import SimulatedAsterisk
from callcenter.simulator.pbx import EndpointConfig, PbxChange
from callcenter.store.database import create_engine, migrate
from callcenter.store.redis_keys import RedisKeys
from callcenter.store.sql_dispatch import SqlDispatchStore
from callcenter.wiring.dispatch import DISPATCH_ROLE
from tests.fakes.bus import InMemoryEventBus
from tests.fakes.callbacks import FlatDayPlanner
from tests.fakes.store import InMemoryQueueRepository
from tests.integration.store.conftest import PostgresSchemas, open_database
from tests.waiting import eventually

pytestmark = [pytest.mark.system, pytest.mark.integration, pytest.mark.timeout(900)]

REDIS_URL: Final = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
CALLBACKS: Final = 500
AGENTS: Final = 50
KILLS: Final = 10
TERMINAL: Final = frozenset(
    {S for S in CallbackState if not S.is_open}  # completed, failed, cancelled, expired, completed_inbound
)
ROOT: Final = Path(__file__).resolve().parents[2]


class Workers:
    """Dispatcher processes; the leader is read from the lease key (``<host>:<pid>:<rand>:<token>``)."""

    def __init__(self, argv: list[str], redis: aioredis.Redis, lease_key: str) -> None:
        self._argv = argv
        self._redis = redis
        self._lease_key = lease_key
        self.procs: dict[int, asyncio.subprocess.Process] = {}

    async def start(self) -> None:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.system.dispatch_worker", *self._argv, cwd=ROOT
        )
        self.procs[proc.pid] = proc

    async def leader(self) -> int | None:
        value = await self._redis.get(self._lease_key)
        if value is None:
            return None
        pid = int(value.decode().split(":")[1])
        return pid if pid in self.procs else None

    async def kill(self, pid: int) -> None:
        proc = self.procs.pop(pid)
        proc.send_signal(signal.SIGKILL)
        await proc.wait()

    async def close(self) -> None:
        for pid in list(self.procs):
            await self.kill(pid)


@pytest.fixture
async def postgres_url(tmp_path: Path) -> AsyncIterator[str]:
    schemas = PostgresSchemas()
    async with open_database("postgresql", tmp_path, schemas) as settings:
        await migrate(settings)
        yield settings.url


def _customers_confirm(sim: SimulatedAsterisk) -> None:
    """A person answers every customer call, presses 1, talks briefly and hangs up."""
    loop = asyncio.get_running_loop()

    def safely(action: object, *args: object) -> None:
        try:
            action(*args)  # type: ignore[operator]
        except Exception:  # the channel may be gone (its dispatcher was killed and it was hung up)
            return

    def on_change(change: PbxChange) -> None:
        leg = leg_of(change.channel_id)
        if change.kind == "answered" and leg is not None and change.channel_id.startswith("cbcu-"):
            loop.call_later(0.2, safely, sim.press, change.channel_id, "1")
            loop.call_later(0.8, safely, sim.hangup, change.channel_id)

    sim.observe(on_change)


async def test_leader_killed_ten_times_every_callback_ends_once_and_no_attempt_is_dialled_twice(
    postgres_url: str,
) -> None:
    sim = SimulatedAsterisk(users={"cc": "pw"}, realtime=True, max_recorded_requests=2_000_000)
    url = await sim.start("127.0.0.1", 0)
    sim.set_sound("callback-confirm", 0.2)
    for i in range(AGENTS):
        sim.set_endpoint(f"PJSIP/agent{i}", answer_after_s=0.1)
    sim.set_dial_policy(
        lambda endpoint: EndpointConfig(answer_after_s=0.2) if endpoint.endswith("@trunk") else None
    )
    _customers_confirm(sim)

    prefix = f"cctest-crash:{os.getpid()}:{random.getrandbits(32):08x}:"
    redis = aioredis.from_url(REDIS_URL)
    engine = create_engine(DatabaseSettings(url=postgres_url))
    store = SqlDispatchStore(engine)
    workers = Workers(
        [
            "--ari",
            url,
            "--user",
            "cc",
            "--password",
            "pw",
            "--db",
            postgres_url,
            "--redis",
            REDIS_URL,
            "--prefix",
            prefix,
            "--agents",
            str(AGENTS),
            "--ttl-ms",
            "1500",
        ],
        redis,
        RedisKeys(prefix).lease(DISPATCH_ROLE),
    )
    try:
        queues = InMemoryQueueRepository()
        await queues.put(QueueRecord(name="sales"))
        clock = SystemClock()
        bus = InMemoryEventBus()
        sources = CallbackSources(
            store,
            CallbackService(store, FlatDayPlanner(queues), queues, bus, clock),
            bus,
            clock,
            settings=SourceSettings(personal_s=0.0),  # the queue's callbacks: any agent may call
        )
        ids = []
        for i in range(CALLBACKS):
            request = await sources.follow_up("boss", "sales", f"+1415{2000000 + i:07d}", at=clock.now())
            ids.append(request.callback.id)

        async def has_leader() -> bool:
            return await workers.leader() is not None

        await workers.start()
        await workers.start()
        rng = random.Random(7)
        kills = 0
        while kills < KILLS:
            await eventually(has_leader, timeout_s=30.0, what="a leader")
            await asyncio.sleep(rng.uniform(0.3, 2.0))
            leader = await workers.leader()
            if leader is None:
                continue
            await workers.kill(leader)
            kills += 1
            await workers.start()

        async def all_ended() -> bool:
            page = await store.in_state(None, frozenset(s for s in CallbackState if s.is_open))
            return len(page) == 0

        await eventually(all_ended, timeout_s=600.0, what="every callback in a terminal state", poll_s=1.0)
    finally:
        await workers.close()
        await sim.stop()
        async for key in redis.scan_iter(f"{prefix}*"):
            await redis.delete(key)
        await redis.aclose()

    states: Counter[CallbackState] = Counter()
    interrupted = 0
    for callback_id in ids:
        callback = await store.get(callback_id)
        states[callback.state] += 1
        assert callback.state in TERMINAL
        interrupted += sum("dispatcher stopped" in a.cause for a in await store.attempts(callback_id))
        changes = await store.changes(callback_id)
        terminal = [c for c in changes if c.state in TERMINAL]
        assert len(terminal) == 1 and changes[-1] is terminal[0], (
            f"{callback_id}: {[c.state for c in changes]}"
        )
    dials = Counter(
        r.query.get("channelId")
        for r in sim.requests
        if r.method == "POST" and r.path.rstrip("/") == "/ari/channels"
    )
    twice = {channel: n for channel, n in dials.items() if n > 1}
    assert twice == {}, f"channels dialled more than once: {twice}"
    customer_dials = sum(1 for channel in dials if channel and channel.startswith("cbcu-"))
    assert customer_dials >= CALLBACKS
    assert states[CallbackState.COMPLETED] > CALLBACKS * 0.9, states
    # The kills hit attempts under way (else this test would prove nothing about recovery).
    assert interrupted >= 1
    await engine.dispose()
