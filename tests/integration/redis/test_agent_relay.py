"""Agents' requests handed over Redis to the process running the live queue (issue #7), against real
Redis: answered while that process serves, refused the same way, and nobody heard otherwise."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import redis.asyncio as aioredis

from callcenter.errors import ConflictError, NotFoundError
from callcenter.model.vocabulary import AgentState
from callcenter.queue.ports import AgentAction, AgentRequest
from callcenter.queue.state import AgentLive
from callcenter.store.redis_agents import RedisAgentRelay
from callcenter.store.redis_keys import RedisKeys
from tests.waiting import eventually

pytestmark = [pytest.mark.integration, pytest.mark.timeout(30)]

SINCE = datetime(2026, 11, 24, 5, 0, tzinfo=UTC)


class QueueProcess:
    """The handler of the process running the queue: pauses alice, knows nobody else."""

    def __init__(self) -> None:
        self.seen: list[AgentRequest] = []

    async def __call__(self, request: AgentRequest) -> AgentLive | None:
        self.seen.append(request)
        if request.agent_id != "alice":
            raise NotFoundError(f"no agent {request.agent_id}")
        if request.action is AgentAction.LOGIN:
            raise ConflictError("already logged in")
        return AgentLive(
            agent_id="alice",
            state=AgentState.PAUSED,
            since=SINCE,
            queues=("sales",),
            pending=AgentState.LOGGED_OUT,
        )


@contextlib.asynccontextmanager
async def serving(relay: RedisAgentRelay, handler: QueueProcess, gate: list[bool]) -> AsyncIterator[None]:
    task = asyncio.create_task(relay.serve(handler, gate=lambda: gate[0], check_s=0.05))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _subscribers(client: aioredis.Redis, keys: RedisKeys) -> int:
    counts = await client.pubsub_numsub(keys.agent_requests)
    return int(counts[0][1]) if counts else 0


async def _until_subscribed(client: aioredis.Redis, keys: RedisKeys, n: int) -> None:
    async def subscribed() -> bool:
        return await _subscribers(client, keys) == n

    await eventually(subscribed, timeout_s=5.0, what=f"{n} process(es) serving agents' requests")


async def test_nobody_running_the_queue_means_the_request_is_applied_where_it_arrived(
    redis_client: aioredis.Redis, keys: RedisKeys
) -> None:
    relay = RedisAgentRelay(redis_client, keys)
    request = AgentRequest(agent_id="alice", action=AgentAction.PAUSE, actor="alice")
    assert await relay.forward(request) is None


async def test_the_queue_s_process_answers_with_the_agent_and_refuses_as_it_would_itself(
    redis_client: aioredis.Redis, keys: RedisKeys
) -> None:
    relay, handler, gate = RedisAgentRelay(redis_client, keys), QueueProcess(), [True]
    async with serving(relay, handler, gate):
        await _until_subscribed(redis_client, keys, 1)
        pause = AgentRequest(agent_id="alice", action=AgentAction.PAUSE, actor="alice", reason="lunch")
        live = await relay.forward(pause)
        assert live == AgentLive(
            agent_id="alice",
            state=AgentState.PAUSED,
            since=SINCE,
            queues=("sales",),
            pending=AgentState.LOGGED_OUT,
        )
        assert handler.seen == [pause]
        login = AgentRequest(
            agent_id="alice", action=AgentAction.LOGIN, actor="boss", queues=("sales", "vip")
        )
        with pytest.raises(ConflictError, match="already logged in"):
            await relay.forward(login)
        assert handler.seen[-1] == login, "the queues travel with a log-in"
        with pytest.raises(NotFoundError):
            await relay.forward(AgentRequest(agent_id="bob", action=AgentAction.UNPAUSE, actor="bob"))

        gate[0] = False  # the ARI link went down here: no longer serving
        await _until_subscribed(redis_client, keys, 0)
        assert await relay.forward(pause) is None
