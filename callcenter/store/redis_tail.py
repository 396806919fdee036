"""Fan-out tail of the event stream with XREAD (edge): every process sees every event.

The live board of each API process needs all events, not a share of them as a consumer group would
give; it starts from the stored state and the id it read just before (``position``), so nothing
between the two is lost (repeats are harmless: the live fold drops them).

Given the process's :class:`~callcenter.store.redis_bus.RedisEventBus`, a tail reads nothing itself
once it has caught up: it takes the entries the bus's one blocking read hands on (decoded once for
every tail of the process), and reads the stream itself only to catch up (at its start, after
falling behind, and when nothing came for a second, to be sure nothing slipped by).
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
from callcenter.stats.ports import EventSink
from callcenter.store.redis_bus import FeedEntry, RedisEventBus
from callcenter.store.redis_keys import RedisKeys

logger = logging.getLogger(__name__)

_BLOCK_MS: Final = 1_000
_BATCH: Final = 500
_BACKOFF_MAX_S: Final = 5.0


class RedisEventTail:
    """:class:`callcenter.stats.ports.EventTail` on the events stream."""

    def __init__(
        self,
        client: aioredis.Redis,
        keys: RedisKeys,
        *,
        bus: RedisEventBus | None = None,
        held_batches: int = 1000,
    ) -> None:
        """:param bus: the process's bus, whose one blocking read feeds this tail (without: reads of its own).
        :param held_batches: batches of the bus held for a slow sink before it catches up by reading.
        """
        self._client = client
        self._stream = keys.events
        self._bus = bus
        self._held = held_batches

    async def position(self) -> str:
        newest: Any = await self._client.xrevrange(self._stream, count=1)
        if not newest:
            return "0-0"
        return _text(newest[0][0])

    async def follow(self, after: str, sink: EventSink, *, stop: Awaitable[object]) -> None:
        stopped = asyncio.ensure_future(stop)
        try:
            if self._bus is not None:
                await self._follow_feed(self._bus, after, sink, stopped)
                return
            last, delay = after, 0.1
            while not stopped.done():
                try:
                    reply: Any = await self._client.xread({self._stream: last}, count=_BATCH, block=_BLOCK_MS)
                    delay = 0.1
                except Exception as exc:  # Redis down, or a client error under load: never dies
                    delay = await _back_off(exc, delay, stopped)
                    continue
                for entry in _entries(reply):
                    last = entry.message_id
                    await _hand_on(entry, sink)
        finally:
            # Only a future made here is ours to cancel: ``stop`` is shared with the caller's other
            # tasks (cancelling it would stop them too, and fail the caller's own set_result).
            if stopped is not stop and not stopped.done():
                stopped.cancel()

    async def _follow_feed(
        self, bus: RedisEventBus, after: str, sink: EventSink, stopped: asyncio.Future[Any]
    ) -> None:
        """Catch up by reading, then take the bus's batches; read again whenever one may be missing."""
        subscription = bus.subscribe(self._held)  # before the first read: nothing in between is missed
        try:
            ready = asyncio.ensure_future(subscription.ready.wait())
            try:
                await asyncio.wait({ready, stopped}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                ready.cancel()
            last, last_key, delay = after, _id_key(after), 0.1
            catch_up = True
            while not stopped.done():
                if catch_up or subscription.lost:
                    subscription.lost = False
                    try:
                        reply: Any = await self._client.xread({self._stream: last}, count=_BATCH)
                        delay = 0.1
                    except Exception as exc:  # Redis down, or a client error under load: never dies
                        delay = await _back_off(exc, delay, stopped)
                        continue
                    batch = _entries(reply)
                    catch_up = len(batch) >= _BATCH
                else:
                    held = await subscription.next(_BLOCK_MS / 1000, stopped)
                    if held is None:
                        catch_up = True  # quiet for a second: check nothing slipped by
                        continue
                    batch = held
                for entry in batch:
                    key = _id_key(entry.message_id)
                    if key <= last_key:
                        continue  # read while catching up, and handed on by the bus too
                    last, last_key = entry.message_id, key
                    await _hand_on(entry, sink)
        finally:
            await bus.unsubscribe(subscription)


def _entries(reply: Any) -> list[FeedEntry]:
    """The entries of an ``XREAD`` reply on one stream (none for an empty reply)."""
    rows = reply[0][1] if reply else []
    return [FeedEntry(_text(mid), fields.get(b"event") if fields else None) for mid, fields in rows]


async def _hand_on(entry: FeedEntry, sink: EventSink) -> None:
    """Give ``entry``'s event to ``sink``; an entry that is no event is skipped (logged unless it is
    empty: a deleted entry's), a failing sink logged. Neither stops the tail."""
    if entry.payload is None:
        return
    try:
        event = entry.event
    except ValidationError as exc:
        logger.warning("event tail: skipping %s: %s", entry.message_id, exc)
        return
    try:
        await sink(event)
    except Exception:
        logger.exception("event tail: the sink failed on %s", entry.message_id)


async def _back_off(exc: Exception, delay: float, stopped: asyncio.Future[Any]) -> float:
    """Wait about ``delay`` after a failed read (less if ``stopped`` completes); the next delay."""
    logger.warning("event tail: %r; retry in %.1fs", exc, delay)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(stopped), delay * random.uniform(0.8, 1.2))
    return min(delay * 2, _BACKOFF_MAX_S)


def _id_key(message_id: str) -> tuple[int, int]:
    """A stream id as a number pair, in stream order (``"0"`` and ``"0-0"`` are the start)."""
    ms, _, seq = message_id.partition("-")
    return int(ms), int(seq or 0)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
