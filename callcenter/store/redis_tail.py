"""Fan-out tail of the event stream with XREAD (edge): every process sees every event.

The live board of each API process needs all events, not a share of them as a consumer group would
give; it starts from the stored state and the id it read just before (``position``), so nothing
between the two is lost (repeats are harmless: the live fold drops them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable
from typing import Any, Final

import redis.asyncio as aioredis

from callcenter.errors import ValidationError
from callcenter.model.events import decode_event
from callcenter.stats.ports import EventSink
from callcenter.store.redis_keys import RedisKeys

logger = logging.getLogger(__name__)

_BLOCK_MS: Final = 1_000
_BATCH: Final = 500
_BACKOFF_MAX_S: Final = 5.0


class RedisEventTail:
    """:class:`callcenter.stats.ports.EventTail` on the events stream."""

    def __init__(self, client: aioredis.Redis, keys: RedisKeys) -> None:
        self._client = client
        self._stream = keys.events

    async def position(self) -> str:
        newest: Any = await self._client.xrevrange(self._stream, count=1)
        if not newest:
            return "0-0"
        message_id = newest[0][0]
        return message_id.decode() if isinstance(message_id, bytes) else str(message_id)

    async def follow(self, after: str, sink: EventSink, *, stop: Awaitable[object]) -> None:
        stopped = asyncio.ensure_future(stop)
        last, delay = after, 0.1
        try:
            while not stopped.done():
                try:
                    reply: Any = await self._client.xread({self._stream: last}, count=_BATCH, block=_BLOCK_MS)
                    delay = 0.1
                except Exception as exc:  # Redis down, or a client error under load: never dies
                    logger.warning("event tail: %r; retry in %.1fs", exc, delay)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(asyncio.shield(stopped), delay * random.uniform(0.8, 1.2))
                    delay = min(delay * 2, _BACKOFF_MAX_S)
                    continue
                for _, entries in reply or ():
                    for message_id, fields in entries:
                        last = message_id.decode() if isinstance(message_id, bytes) else str(message_id)
                        payload = fields.get(b"event") if fields else None
                        if payload is None:
                            continue
                        try:
                            event = decode_event(payload)
                        except ValidationError as exc:
                            logger.warning("event tail: skipping %s: %s", last, exc)
                            continue
                        try:
                            await sink(event)
                        except Exception:
                            logger.exception("event tail: the sink failed on %s", last)
        finally:
            # Only a future made here is ours to cancel: ``stop`` is shared with the caller's other
            # tasks (cancelling it would stop them too, and fail the caller's own set_result).
            if stopped is not stop and not stopped.done():
                stopped.cancel()
