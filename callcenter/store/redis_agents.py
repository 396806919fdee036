"""Agents' requests handed over Redis to the process that runs the live queue (edge).

Only the process that holds the ARI link sees the live queue (its board is what Asterisk's events
drive) and holds agents for callbacks. A log-in, log-out, pause, unpause or change of an agent's
queues that reaches another process (an API process, the agent page behind another load-balanced
worker) is published on the channel ``<prefix>agents:requests``; the process running the queue,
subscribed while its link is up, applies it as its own request and pushes the agent's live state to
a reply list that the sender awaits with ``BLPOP``. ``PUBLISH`` says how many processes heard: none means nobody runs the queue,
and the sender applies the request itself (stored, adopted by the next owner at its start).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Final, NoReturn

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from callcenter.errors import CallCenterError, ConflictError, NotFoundError, ValidationError
from callcenter.model.vocabulary import AgentState
from callcenter.queue.ports import AgentAction, AgentRequest
from callcenter.queue.state import AgentLive
from callcenter.store.redis_keys import RedisKeys

logger = logging.getLogger(__name__)

#: The refusals a sender raises again as the queue's process raised them (others: applied locally).
_ERRORS: Final[dict[str, type[CallCenterError]]] = {
    "not_found": NotFoundError,
    "conflict": ConflictError,
    "invalid": ValidationError,
}
_REPLY_TTL_S: Final = 60

Handler = Callable[[AgentRequest], Awaitable[AgentLive | None]]


class RedisAgentRelay:
    """:class:`~callcenter.queue.ports.AgentRelay` over Redis pub/sub, and its serving side.

    :param timeout_s: how long a sender waits for the queue's process to answer before applying a
        request itself (kept under the client's socket timeout, which bounds a blocking read).
    """

    def __init__(self, redis: aioredis.Redis, keys: RedisKeys, *, timeout_s: float = 5.0) -> None:
        self._redis = redis
        self._keys = keys
        socket_timeout = redis.connection_pool.connection_kwargs.get("socket_timeout")
        if isinstance(socket_timeout, int | float) and socket_timeout > 0:
            timeout_s = min(timeout_s, 0.8 * socket_timeout)
        self._timeout_s = max(timeout_s, 1.0)

    # -- the sender ---------------------------------------------------------------------------------

    async def forward(self, request: AgentRequest) -> AgentLive | None:
        request_id = uuid.uuid4().hex
        reply_key = self._keys.agent_reply(request_id)
        payload = json.dumps(
            {
                "id": request_id,
                "agent_id": request.agent_id,
                "action": request.action.value,
                "actor": request.actor,
                "reason": request.reason,
                "queues": list(request.queues) if request.queues is not None else None,
            }
        )
        try:
            async with asyncio.timeout(self._timeout_s + 2.0):
                heard = await self._redis.publish(self._keys.agent_requests, payload)
                if not heard:
                    return None
                answer = await self._redis.blpop([reply_key], timeout=self._timeout_s)
        except (RedisError, OSError, TimeoutError) as exc:
            logger.warning("agent %s: %s not handed over (%r)", request.agent_id, request.action, exc)
            return None
        if answer is None:
            logger.warning(
                "agent %s: the live queue's process did not answer %s within %.0f s",
                request.agent_id,
                request.action,
                self._timeout_s,
            )
            return None
        return _reply(json.loads(answer[1]))

    # -- the queue's process ------------------------------------------------------------------------

    async def serve(self, handler: Handler, *, gate: Callable[[], bool], check_s: float = 0.2) -> NoReturn:
        """Answer requests with ``handler`` while ``gate()`` holds (this process runs the live queue),
        until cancelled; subscribed only meanwhile, so senders elsewhere see nobody otherwise."""
        while True:
            if not gate():
                await asyncio.sleep(check_s)
                continue
            pubsub = self._redis.pubsub()
            try:
                await pubsub.subscribe(self._keys.agent_requests)
                while gate():
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=check_s)
                    if message is not None and message.get("type") == "message":
                        await self._answer(handler, message["data"])
            except (RedisError, OSError) as exc:
                if _cancelling():
                    # A cancel that met a read's own timeout comes out as redis' TimeoutError: shut down.
                    raise asyncio.CancelledError from exc
                logger.warning("agent requests: subscription lost (%r); again in 1 s", exc)
                await asyncio.sleep(1.0)
            finally:
                # Closing the connection ends the subscription; bounded, so a shutdown never waits on it.
                with contextlib.suppress(RedisError, OSError, TimeoutError):
                    async with asyncio.timeout(2.0):
                        await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _answer(self, handler: Handler, data: bytes | str) -> None:
        """Apply one request and push its answer; a malformed request is logged and dropped. One its
        sender stopped waiting for is applied all the same: requests are idempotent, both agree."""
        try:
            body = json.loads(data)
            request = AgentRequest(
                agent_id=str(body["agent_id"]),
                action=AgentAction(body["action"]),
                actor=str(body["actor"]),
                reason=str(body.get("reason") or ""),
                queues=tuple(body["queues"]) if body.get("queues") is not None else None,
            )
            reply_key = self._keys.agent_reply(str(body["id"]))
        except (ValueError, KeyError, TypeError) as exc:
            logger.warning("agent requests: a malformed request dropped (%r)", exc)
            return
        reply: dict[str, Any]
        try:
            live = await handler(request)
            reply = {"live": _live_json(live) if live is not None else None}
        except CallCenterError as exc:
            code = next((c for c, kind in _ERRORS.items() if isinstance(exc, kind)), "failed")
            reply = {"error": code, "message": str(exc)}
        except Exception as exc:
            logger.exception("agent %s: %s failed here", request.agent_id, request.action)
            reply = {"error": "failed", "message": repr(exc)}
        async with self._redis.pipeline(transaction=True) as pipe:
            # In a pipeline a command only queues (its "awaitable" is the pipeline).
            _ = pipe.rpush(reply_key, json.dumps(reply))
            _ = pipe.expire(reply_key, _REPLY_TTL_S)
            await pipe.execute()


def _cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _live_json(live: AgentLive) -> dict[str, Any]:
    return {
        "agent_id": live.agent_id,
        "state": live.state.value,
        "since": live.since.isoformat(),
        "queues": list(live.queues),
        "call_id": live.call_id,
        "misses": live.misses,
        "pending": live.pending.value if live.pending is not None else None,
    }


def _reply(body: dict[str, Any]) -> AgentLive | None:
    """The agent's live state from an answer; raises the queue process's refusal again."""
    error = body.get("error")
    if error in _ERRORS:
        raise _ERRORS[error](str(body.get("message") or error))
    if error is not None:
        logger.warning("agent request failed in the live queue's process: %s", body.get("message"))
        return None
    live = body.get("live")
    if live is None:
        return None
    return AgentLive(
        agent_id=str(live["agent_id"]),
        state=AgentState(live["state"]),
        since=datetime.fromisoformat(live["since"]),
        queues=tuple(live["queues"]),
        call_id=live.get("call_id"),
        misses=int(live.get("misses", 0)),
        pending=AgentState(live["pending"]) if live.get("pending") else None,
    )
