"""System tier fixtures: the whole app (``build_app``) against a simulated Asterisk 20 on loopback.

The simulator runs in real time (wall-clock timers), because the app under test does too: its link,
ticker and queue service run unmodified. Every test gets its own data dir (SQLite), its own
``redis-server`` (the embedded 6.2, started in ``tmp_path``) under a key prefix of its own, and short
queue timings so calls take seconds. Apps are built by :class:`Apps`, which can start a second process
of the service on the same Redis (the ARI lease test).

``real_asterisk``: the ``asterisk`` fixture is parametrized over the simulator and a real Asterisk
named by ``CALLCENTER_ARI_URL`` (with ``CALLCENTER_ARI_USERNAME``/``_PASSWORD``/``_APP``), the latter
marked ``real_asterisk`` and skipped without the variable. Scenarios that place, answer or hang up
calls, or inject faults, need the simulator's control API (the ``sim`` fixture): on a real Asterisk that
takes a SIP client driving calls, so they skip there with that reason.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Final

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from callcenter.app import SERVICES, Services, build_app
from callcenter.ari.link import AriLink
from callcenter.config import Settings
from callcenter.model.events import CallEnded, decode_event
from callcenter.model.records import CallRecord, QueueRecord
from callcenter.model.vocabulary import AgentState, CallOutcome, EntryPoint, Role
from callcenter.simulator import SimulatedAsterisk
from callcenter.store.redis_conn import EmbeddedRedis
from callcenter.store.redis_keys import RedisKeys
from tests.hangs import dump_tasks
from tests.waiting import eventually as wait_until

ARI_USER: Final = "callcenter"
ARI_PASSWORD: Final = "s3cret"
QUEUE: Final = "sales"
CALLER: Final = "+14155550100"

#: Short timings: calls ring out, wrap up and time out in seconds (the ticker runs every second).
FAST_QUEUE: Final = QueueRecord(name=QUEUE, ring_timeout_s=2, wrap_up_s=1, max_wait_s=4)

# Read before the autouse ``clean_environ`` fixture hides the shell's CALLCENTER_* variables.
_REAL_ARI_ENV: Final[Mapping[str, str]] = {
    k: v for k, v in os.environ.items() if k.startswith("CALLCENTER_ARI_") and v
}

NEEDS_SIP_CLIENT: Final = (
    "this scenario places, answers and hangs up calls (or injects faults) through the simulated "
    "Asterisk's control API; on a real Asterisk that needs a SIP client driving calls (e.g. SIPp with "
    "agent phones and an inbound trunk into Stasis(callcenter,sales)): tests/real_asterisk runs these "
    "scenarios that way"
)

Http = TestClient[Any, Any]


async def eventually(
    condition: Callable[[], Awaitable[bool] | bool], *, timeout_s: float = 10.0, what: str = "condition"
) -> None:
    """:func:`tests.waiting.eventually` with a 20 ms poll (whole apps are slower to change)."""
    await wait_until(condition, timeout_s=timeout_s, what=what, poll_s=0.02)


# ---------------------------------------------------------------------------------------------
# The PBX: the simulator, or a real Asterisk
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AsteriskTarget:
    """Where the app's ARI link points; ``sim`` is ``None`` for a real Asterisk."""

    url: str
    username: str
    password: str
    app: str
    sim: SimulatedAsterisk | None = None


@pytest.fixture(params=["simulator", pytest.param("real_asterisk", marks=pytest.mark.real_asterisk)])
async def asterisk(request: pytest.FixtureRequest) -> AsyncIterator[AsteriskTarget]:
    if request.param == "real_asterisk":
        url = _REAL_ARI_ENV.get("CALLCENTER_ARI_URL")
        if url is None:
            pytest.skip("set CALLCENTER_ARI_URL (and _USERNAME/_PASSWORD) to run against a real Asterisk")
        yield AsteriskTarget(
            url=url,
            username=_REAL_ARI_ENV.get("CALLCENTER_ARI_USERNAME", "callcenter"),
            password=_REAL_ARI_ENV.get("CALLCENTER_ARI_PASSWORD", ""),
            app=_REAL_ARI_ENV.get("CALLCENTER_ARI_APP", "callcenter"),
        )
        return
    sim = SimulatedAsterisk(users={ARI_USER: ARI_PASSWORD}, realtime=True)
    url = await sim.start("127.0.0.1", 0)
    try:
        yield AsteriskTarget(url=url, username=ARI_USER, password=ARI_PASSWORD, app="callcenter", sim=sim)
    finally:
        await sim.stop()


@pytest.fixture
def sim(asterisk: AsteriskTarget) -> SimulatedAsterisk:
    """The simulator's control API; scenarios that need it skip on a real Asterisk."""
    if asterisk.sim is None:
        pytest.skip(NEEDS_SIP_CLIENT)
    return asterisk.sim


# ---------------------------------------------------------------------------------------------
# The app
# ---------------------------------------------------------------------------------------------


@dataclass
class RunningApp:
    """One process of the service: its aiohttp app served on loopback, and a supervisor token."""

    http: Http
    services: Services
    token: str
    stopped: bool = False

    @property
    def link(self) -> AriLink:
        assert self.services.ari_link is not None, "the app was built without CALLCENTER_ARI_URL"
        return self.services.ari_link

    @property
    def keys(self) -> RedisKeys:
        return RedisKeys(self.services.settings.redis.key_prefix)

    async def get(self, path: str, **params: str) -> tuple[int, Any]:
        """``GET /api/v1{path}`` with the supervisor token: status and JSON body."""
        response = await self.http.get(
            f"/api/v1{path}", params=params, headers={"Authorization": f"Bearer {self.token}"}
        )
        return response.status, await response.json()

    async def health(self) -> tuple[int, Any]:
        response = await self.http.get("/api/v1/health")
        return response.status, await response.json()

    async def call(self, call_id: str) -> dict[str, Any]:
        """The stored call as the API shows it (with its timeline)."""
        status, body = await self.get(f"/calls/{call_id}")
        assert status == 200, body
        return dict(body)

    async def decided(self, call_id: str, *, timeout_s: float = 10.0) -> dict[str, Any]:
        """The stored call once it has an outcome."""

        async def has_outcome() -> bool:
            status, body = await self.get(f"/calls/{call_id}")
            return status == 200 and body["outcome"] is not None

        await eventually(has_outcome, timeout_s=timeout_s, what=f"an outcome for call {call_id}")
        return await self.call(call_id)

    async def calls(self, **filters: str) -> list[dict[str, Any]]:
        status, body = await self.get("/calls", **filters)
        assert status == 200, body
        return list(body["items"])

    async def published(self, call_id: str) -> list[CallEnded]:
        """Every ``CallEnded`` of ``call_id`` on the bus (the events stream), oldest first."""
        rows = await self.services.redis.xrange(self.keys.events) or []
        events = [decode_event(fields[b"event"]) for _, fields in rows if fields is not None]
        return [e for e in events if isinstance(e, CallEnded) and e.call_id == call_id]

    async def agent_state(self, agent_id: str) -> AgentState:
        return (await self.services.queue.get_agent(agent_id)).state

    async def wait_agent(self, agent_id: str, state: AgentState, *, timeout_s: float = 10.0) -> None:
        async def reached() -> bool:
            return await self.agent_state(agent_id) is state

        await eventually(reached, timeout_s=timeout_s, what=f"agent {agent_id} {state}")

    async def put_queue(self, queue: QueueRecord = FAST_QUEUE) -> QueueRecord:
        return await self.services.queue.put_queue(queue, actor="test")

    async def add_agent(
        self,
        agent_id: str,
        *,
        endpoint: str | None = None,
        queues: tuple[str, ...] = (QUEUE,),
        login: bool = True,
    ) -> str:
        """Create (and log in) an agent; returns their endpoint (``PJSIP/<id>`` by default)."""
        endpoint = endpoint or f"PJSIP/{agent_id}"
        await self.services.queue.add_agent(
            agent_id=agent_id, name=agent_id.title(), endpoint=endpoint, queues=queues, actor="test"
        )
        if login:
            await self.services.queue.login(agent_id, actor="test")
        return endpoint

    async def answered_history(self, queue: str = QUEUE) -> None:
        """Answered calls of the last two weeks in ``queue``: the wait estimate knows the handle time
        (100 s), so a waiting caller is told a wait and may be offered a callback."""
        now = self.services.clock.now()
        for week in (1, 2):
            for i in range(20):
                at = now - timedelta(weeks=week, minutes=i)
                await self.services.store.calls.upsert(
                    CallRecord(
                        id=f"h{week}-{i}",
                        channel_id="h",
                        linkedid="h",
                        entry_point=EntryPoint.ARI,
                        caller="+14155550999",
                        queue=queue,
                        arrived_at=at,
                        queued_at=at,
                        answered_at=at + timedelta(seconds=10),
                        ended_at=at + timedelta(seconds=110),
                        wait_s=10.0,
                        talk_s=100.0,
                        outcome=CallOutcome.ANSWERED,
                    )
                )

    async def stop(self) -> None:
        """Shut the process down (cleanup: link cancelled, lease released, adapters closed)."""
        if not self.stopped:
            self.stopped = True
            await self.http.close()


@dataclass
class Apps:
    """Builds processes of the service against one PBX and one Redis, each with its own data dir."""

    asterisk: AsteriskTarget
    tmp_path: Path
    redis_url: str
    key_prefix: str
    running: list[RunningApp] = field(default_factory=list)

    def settings(self, name: str, **overrides: str) -> Settings:
        env = {
            "CALLCENTER_DATA_DIR": str(self.tmp_path / name),
            "CALLCENTER_REDIS_URL": self.redis_url,
            "CALLCENTER_REDIS_KEY_PREFIX": self.key_prefix,
            "CALLCENTER_ARI_URL": self.asterisk.url,
            "CALLCENTER_ARI_USERNAME": self.asterisk.username,
            "CALLCENTER_ARI_PASSWORD": self.asterisk.password,
            "CALLCENTER_ARI_APP": self.asterisk.app,
        }
        env.update({f"CALLCENTER_{k.upper()}": v for k, v in overrides.items()})
        return Settings.from_env(env)

    async def start(self, name: str = "app1", *, wait_up: bool = True, **overrides: str) -> RunningApp:
        app: web.Application = await build_app(self.settings(name, **overrides))
        http: Http = TestClient(TestServer(app))
        await http.start_server()
        services = app[SERVICES]
        _, token = await services.auth.create_token(
            role=Role.SUPERVISOR, agent_id=None, label="system-test", expires_at=None, actor="test"
        )
        running = RunningApp(http=http, services=services, token=token)
        self.running.append(running)
        if wait_up:
            await running.link.wait_up(10.0)
        return running

    async def close(self) -> None:
        for running in reversed(self.running):
            await running.stop()


@pytest.fixture(autouse=True)
async def tasks_shown_before_timeout(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """Shortly before pytest-timeout fails a test, show what each task awaits (set up first, so it
    also covers the other fixtures' teardown, where a hung shutdown would show)."""
    marker = request.node.get_closest_marker("timeout")
    limit = float(marker.args[0]) if marker and marker.args else float(request.config.getini("timeout"))
    shown = asyncio.get_running_loop().call_later(max(limit - 2.0, 1.0), dump_tasks, request.node.nodeid)
    yield
    shown.cancel()


@pytest.fixture
async def redis_url(tmp_path: Path) -> AsyncIterator[str]:
    """A private redis-server (the embedded 6.2) every app of the test shares, as a second host would."""
    async with EmbeddedRedis(tmp_path / "shared-redis") as server:
        yield server.url


@pytest.fixture
async def apps(asterisk: AsteriskTarget, tmp_path: Path, redis_url: str) -> AsyncIterator[Apps]:
    factory = Apps(asterisk, tmp_path, redis_url, key_prefix=f"cctest-sys:{uuid.uuid4().hex[:12]}:")
    try:
        yield factory
    finally:
        await factory.close()


@pytest.fixture
async def system(apps: Apps) -> RunningApp:
    """The service, its ARI link up, with the ``sales`` queue on short timings."""
    running = await apps.start()
    await running.put_queue()
    return running
