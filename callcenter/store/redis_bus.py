"""The event bus on Redis Streams with consumer groups: at-least-once delivery (edge).

One stream (``RedisKeys.events``) holds every domain event in publish order, one field ``event`` with
the JSON of :func:`callcenter.model.events.encode_event` and one field ``type`` with its event type (a
group handling only some types skips the others without parsing them; entries without it are
peeked), trimmed to about ``stream_maxlen`` entries.
Each consumer group sees every event; inside a group each event goes to one consumer and is
acknowledged (XACK) only after the handler returned (one XACK for the handled entries of each batch read).

What a consumer does, in order, until ``stop`` completes:

1. creates its group if missing, **from the start of the stream** (``0``, not ``$``), so events
   published before the first consumer of a group ever ran are delivered, not skipped. A group added
   later to a long-lived stream therefore replays what the stream still holds: handlers are
   idempotent (facts arrive at least once);
2. re-reads its own pending entries (``XREADGROUP ... 0``): what this consumer name had read but not
   acknowledged before a crash or restart;
3. every ``claim_idle_ms / 2`` takes over entries idle longer than ``claim_idle_ms`` in any consumer of
   the group (XAUTOCLAIM: a dead consumer's entries, and failed deliveries, which stay pending);
4. otherwise reads new entries (``>``) without blocking and, finding none, waits up to ``block_ms``
   for the bus's waker: the consumer loops of one bus share their round trips (see
   :class:`_SharedReads`: one blocking ``XREAD`` per bus wakes them all, at most once per
   ``linger_ms``; their reads and acknowledgements go to Redis in one pipeline).

While entries are in hand a background task touches them (XCLAIM JUSTID) every ``claim_idle_ms / 3``,
so a slow handler keeps its entries and no other consumer duplicates them. An entry delivered more than
``max_deliveries`` times, or failing on its last allowed delivery, or that does not decode, goes to the
dead-letter stream (``RedisKeys.dead_letters``) with the error text and is acknowledged, both in
one Lua script so it is never lost between the two. Connection errors are retried with capped,
jittered backoff; handler errors are logged and never stop the loop; cancellation propagates.

Pending entries trimmed away before they were handled are dead-lettered with an empty payload, so the
loss shows. A group that falls more than ``stream_maxlen`` events behind without reading them loses
the oldest silently (Redis keeps no record of them): size ``BUS_STREAM_MAXLEN`` for the longest outage
of a consumer you want to survive. The same holds for ``BUS_MAX_AGE_H``: :meth:`RedisEventBus.trim_before`
(run every minute by ``serve``) drops events and dead letters older than that, as events name callers'
numbers and an erasure cannot edit a stream.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
from collections.abc import Awaitable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from callcenter.batching import Coalescer
from callcenter.bus import BatchHandler, Delivery, Handler
from callcenter.config import BusSettings
from callcenter.errors import RedisUnavailableError, ValidationError
from callcenter.model.events import DomainEvent, decode_event, encode_event, peek_event_type
from callcenter.store.redis_keys import RedisKeys

logger = logging.getLogger(__name__)

_FIELD: Final = b"event"
#: The event's type beside its JSON, so a group that handles only some types skips the others unparsed.
_TYPE_FIELD: Final = b"type"
_OP_TIMEOUT_S: Final = 10.0
_BACKOFF_MIN_S: Final = 0.1
_BACKOFF_MAX_S: Final = 5.0
_MAX_ERROR_CHARS: Final = 4000
#: Redis is unreachable or refused the command: back off and try again.
_RETRYABLE: Final = (RedisError, OSError, TimeoutError)

# Dead-letter and acknowledge in one step: never lost between the two, never both kept.
_DEAD_LETTER_SCRIPT: Final = """
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', unpack(ARGV, 4))
return redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
"""

# Delivery counts of entries, 0 for one no longer pending under this consumer. An XPENDING reply row
# is [id, consumer, idle ms, deliveries].
_COUNTS_SCRIPT: Final = """
local out = {}
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if #p > 0 and p[1][2] == ARGV[2] then out[#out + 1] = p[1][4] else out[#out + 1] = 0 end
end
return out
"""

# Re-touch only entries still pending under this consumer: never steal back one that another consumer
# re-claimed while we were stalled (it is theirs now; ours will be refused at XACK time anyway).
_TOUCH_SCRIPT: Final = """
local touched = 0
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1, ARGV[2])
  if #p > 0 then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
    touched = touched + 1
  end
end
return touched
"""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An event no consumer of ``group`` could handle, as kept in the dead-letter stream.

    ``payload`` is the original wire text (empty when the entry was trimmed before anyone handled it).
    """

    dead_letter_id: str
    original_id: str
    group: str
    consumer: str
    error: str
    deliveries: int
    payload: str


@dataclass(frozen=True, slots=True)
class _Entry:
    message_id: str
    fields: dict[bytes, bytes] | None  # None or empty: the entry was deleted (trimmed) from the stream


class RedisEventBus:
    """:class:`callcenter.bus.EventBus` on Redis Streams.

    :param client: a ``redis.asyncio.Redis`` returning bytes (``decode_responses=False``, as
        :func:`callcenter.store.redis_conn.open_redis` makes it).
    :param batch_size: entries read or claimed per command.
    :raises ValueError: for a client that decodes replies, or settings that are not positive.
    """

    def __init__(
        self, client: aioredis.Redis, keys: RedisKeys, settings: BusSettings, *, batch_size: int = 32
    ) -> None:
        if client.connection_pool.connection_kwargs.get("decode_responses"):
            raise ValueError("RedisEventBus needs a client with decode_responses=False (bytes replies)")
        for name in ("stream_maxlen", "max_deliveries", "claim_idle_ms", "block_ms"):
            if getattr(settings, name) <= 0:
                raise ValueError(f"BusSettings.{name} must be positive, got {getattr(settings, name)!r}")
        for name in ("linger_ms", "max_age_h"):
            if getattr(settings, name) < 0:
                raise ValueError(f"BusSettings.{name} must not be negative, got {getattr(settings, name)!r}")
        if batch_size <= 0:
            raise ValueError("batch_size must be positive")
        self._client = client
        self._keys = keys
        self._settings = settings
        self._batch = batch_size
        self._block_ms = settings.block_ms
        # redis-py applies socket_timeout (5 s by default) to blocking reads too: block for less, or
        # every quiet XREADGROUP would end in a TimeoutError and a reconnect.
        socket_timeout = client.connection_pool.connection_kwargs.get("socket_timeout")
        if isinstance(socket_timeout, int | float) and socket_timeout > 0:
            cap_ms = max(int(socket_timeout * 800), 1)
            if self._block_ms > cap_ms:
                logger.warning(
                    "BUS_BLOCK_MS=%d exceeds the Redis client's socket timeout (%gs): blocking %d ms",
                    settings.block_ms,
                    socket_timeout,
                    cap_ms,
                )
                self._block_ms = cap_ms
        self._touch = client.register_script(_TOUCH_SCRIPT)
        self._dead_letter_script = client.register_script(_DEAD_LETTER_SCRIPT)
        self._counts_script = client.register_script(_COUNTS_SCRIPT)
        self._shared = _SharedReads(self)
        self._publishes: Coalescer[DomainEvent, str] = Coalescer(
            self._append, max_batch=256, name="bus-publish"
        )

    @property
    def settings(self) -> BusSettings:
        return self._settings

    @property
    def block_ms(self) -> int:
        """How long a read blocks: ``block_ms``, capped below the client's socket timeout."""
        return self._block_ms

    async def publish(self, event: DomainEvent) -> str:
        """Append ``event`` (XADD, MAXLEN ~ ``stream_maxlen``) and return its message id.

        Publications made at about the same time share one pipeline (one round trip), in call order.

        :raises RedisUnavailableError: when Redis does not take it; the event was then perhaps
            published (the reply was lost), so a retry may duplicate it: consumers de-duplicate.
        """
        try:
            return await self._publishes(event)
        except RedisUnavailableError as exc:
            raise RedisUnavailableError(
                f"could not publish {event.event_type} {event.event_id}: {exc}"
            ) from exc

    async def publish_many(self, events: Sequence[DomainEvent]) -> list[str]:
        """Append ``events`` in order with one pipeline of XADDs (one round trip); return their ids.

        :raises RedisUnavailableError: when Redis does not take them; some may have been appended.
        """
        return await self._append(events)

    async def _append(self, events: Sequence[DomainEvent]) -> list[str]:
        if not events:
            return []
        payloads = [(encode_event(event).encode(), event.event_type.encode()) for event in events]
        try:
            async with asyncio.timeout(_OP_TIMEOUT_S):
                async with self._client.pipeline(transaction=False) as pipe:
                    for payload, kind in payloads:
                        # In a pipeline XADD only queues the command (its "awaitable" is the pipeline).
                        _ = pipe.xadd(
                            self._keys.events,
                            {_FIELD: payload, _TYPE_FIELD: kind},
                            maxlen=self._settings.stream_maxlen,
                            approximate=True,
                        )
                    replies = await pipe.execute()
        except _RETRYABLE as exc:
            raise RedisUnavailableError(f"could not publish {len(events)} events: {exc!r}") from exc
        return [_text(reply) for reply in replies]

    async def trim_before(self, before: datetime) -> int:
        """Delete the events and dead letters added before ``before`` (exactly, by stream id); return
        how many went. An entry still pending in a group is dead-lettered with an empty payload when
        that group next reads it (see the module docstring).

        :raises RedisUnavailableError: when Redis does not answer.
        """
        min_id = f"{max(int(before.timestamp() * 1000), 0)}-0"
        try:
            async with asyncio.timeout(_OP_TIMEOUT_S):
                async with self._client.pipeline(transaction=False) as pipe:
                    for key in (self._keys.events, self._keys.dead_letters):
                        _ = pipe.xtrim(key, minid=min_id, approximate=False)
                    trimmed = await pipe.execute()
        except _RETRYABLE as exc:
            raise RedisUnavailableError(f"could not trim the event streams: {exc!r}") from exc
        return sum(int(n) for n in trimmed)

    async def consume(
        self,
        group: str,
        consumer: str,
        handler: Handler,
        *,
        stop: Awaitable[object],
        only: Collection[str] | None = None,
        batch: BatchHandler | None = None,
    ) -> None:
        """Deliver events to ``handler`` (or ``batch``, see :class:`callcenter.bus.EventBus`) until
        ``stop`` completes (see the module docstring).

        With ``only``, entries of other event types are acknowledged with the batch, undecoded (each
        group reads every event: most of them concern only one or two groups).

        ``stop`` is honoured between events: a running handler is not interrupted (cancel the task
        for that). Entries read but not handled when it stops stay pending and are delivered again.

        :raises ValueError: for an empty or oversized group or consumer name.
        """
        stop_future = asyncio.ensure_future(stop)
        try:
            _check_label(group, "consumer group")
            _check_label(consumer, "consumer name")
            wanted = frozenset(only) if only is not None else None
            await _ConsumerLoop(self, group, consumer, handler, stop_future, wanted, batch).run()
        finally:
            if stop_future is not stop:
                stop_future.cancel()

    def subscribe(self, limit: int = 1000) -> Subscription:
        """Entries as this bus's one blocking read takes them, for a tail of this process
        (:class:`callcenter.store.redis_tail.RedisEventTail`); end with :meth:`unsubscribe`."""
        return self._shared.subscribe(limit)

    async def unsubscribe(self, subscription: Subscription) -> None:
        await self._shared.unsubscribe(subscription)

    async def dead_letters(self, count: int = 100) -> list[DeadLetter]:
        """The oldest ``count`` entries of the dead-letter stream (for tools, tests and operators)."""
        if count <= 0:
            raise ValueError("count must be positive")
        async with asyncio.timeout(_OP_TIMEOUT_S):
            rows = await self._client.xrange(self._keys.dead_letters, count=count) or []
        return [_dead_letter(_text(row_id), fields or {}) for row_id, fields in rows]

    async def pending_count(self, group: str) -> int:
        """How many events ``group`` has been handed and not yet acknowledged (0 for an unknown group)."""
        try:
            async with asyncio.timeout(_OP_TIMEOUT_S):
                summary = await self._client.xpending(self._keys.events, group)
        except ResponseError as exc:
            if _is_nogroup(exc):
                return 0
            raise
        return int(summary["pending"])

    # --- used by the consumer loop ---

    async def _dead_letter(
        self, group: str, consumer: str, entry: _Entry, deliveries: int, error: str
    ) -> None:
        """Move ``entry`` to the dead-letter stream and acknowledge it, atomically."""
        payload = (entry.fields or {}).get(_FIELD, b"")
        fields = (
            (_FIELD, payload),
            (b"original_id", entry.message_id.encode()),
            (b"group", group.encode()),
            (b"consumer", consumer.encode()),
            (b"error", error[:_MAX_ERROR_CHARS].encode("utf-8", "replace")),
            (b"deliveries", str(deliveries).encode()),
        )
        args: list[bytes | str | int] = [group, entry.message_id, self._settings.stream_maxlen]
        args.extend(part for pair in fields for part in pair)
        async with asyncio.timeout(_OP_TIMEOUT_S):
            await self._dead_letter_script(keys=[self._keys.events, self._keys.dead_letters], args=args)
        logger.error(
            "event %s of group %s dead-lettered after %d deliveries: %s",
            entry.message_id,
            group,
            deliveries,
            error,
        )


class FeedEntry:
    """One entry of the stream as the bus's waker read it: its id, its payload, and the event decoded
    once for every tail of the process that asks (:attr:`event`)."""

    __slots__ = ("_event", "message_id", "payload")

    def __init__(self, message_id: str, payload: bytes | None) -> None:
        self.message_id = message_id
        self.payload = payload
        self._event: DomainEvent | None = None

    @property
    def event(self) -> DomainEvent:
        """:raises ValidationError: for a payload that is not an event (or a deleted entry's)."""
        if self._event is None:
            if self.payload is None:
                raise ValidationError(f"entry {self.message_id} has no event")
            self._event = decode_event(self.payload)
        return self._event


class Subscription:
    """Batches of entries handed on by the bus's waker, up to ``limit`` batches held.

    Past that (a subscriber that cannot keep up) the held batches are dropped and :attr:`lost` is
    set: the subscriber reads the stream itself from its last entry until it has caught up.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._batches: collections.deque[list[FeedEntry]] = collections.deque()
        self._arrived: asyncio.Future[None] | None = None
        self.lost = False
        self.ready = asyncio.Event()
        """Set once the waker knows where it starts: read the stream to catch up only after that."""

    def push(self, batch: list[FeedEntry]) -> None:
        if len(self._batches) >= self._limit:
            self._batches.clear()
            self.lost = True
        else:
            self._batches.append(batch)
        if self._arrived is not None and not self._arrived.done():
            self._arrived.set_result(None)

    async def next(self, timeout_s: float, stop: asyncio.Future[Any]) -> list[FeedEntry] | None:
        """The oldest batch held, waiting up to ``timeout_s`` for one; ``None`` when none came."""
        if not self._batches and not self.lost:
            self._arrived = asyncio.get_running_loop().create_future()
            await asyncio.wait({self._arrived, stop}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        return self._batches.popleft() if self._batches else None


class _SharedReads:
    r"""The round trips of one process's consumer loops on a bus, shared (one per :class:`RedisEventBus`).

    Each group still reads, acknowledges and claims for itself (its own pending list, its own
    at-least-once delivery), but none blocks in a read of its own: one *waker* task per bus blocks in
    ``XREAD`` on the stream and, when entries arrive, wakes every waiting loop; their non-blocking
    ``XREADGROUP``\ s and their ``XACK``\ s, made at about the same time, go to Redis together in one
    pipeline (:class:`~callcenter.batching.Coalescer`). Seven groups cost about two round trips per
    wake-up instead of fourteen. A loop waits for the waker at most ``block_ms`` before it reads anyway,
    so a waker that cannot reach Redis only makes delivery poll.
    """

    def __init__(self, bus: RedisEventBus) -> None:
        self._bus = bus
        self._generation = 0
        self._bumped: asyncio.Future[None] | None = None
        self._waker: asyncio.Task[None] | None = None
        self._users = 0
        self._ready = asyncio.Event()
        self._subscribers: set[Subscription] = set()
        self._commands: Coalescer[tuple[str, tuple[Any, ...]], object] = Coalescer(
            self._pipeline, max_batch=64, name="bus-commands"
        )

    @property
    def generation(self) -> int:
        """Bumped whenever the waker saw new entries: take it *before* a read that may find nothing."""
        return self._generation

    def enter(self) -> None:
        loop = asyncio.get_running_loop()
        if self._waker is not None and self._waker.get_loop() is not loop:
            self._waker, self._users = None, 0  # its loop is gone (a bus reused across loops: tests)
        self._users += 1
        if self._waker is None or self._waker.done():
            self._ready = asyncio.Event()
            self._waker = asyncio.create_task(self._wake(self._ready), name="bus-waker")

    def subscribe(self, limit: int = 1000) -> Subscription:
        """Every entry the waker reads from now on, in batches (a process's tail). A read of the
        stream made once ``ready`` is set leaves no gap before the first batch handed on.

        Call :meth:`unsubscribe` when done.
        """
        subscription = Subscription(limit)
        self._subscribers.add(subscription)
        self.enter()
        subscription.ready = self._ready
        return subscription

    async def unsubscribe(self, subscription: Subscription) -> None:
        if subscription in self._subscribers:
            self._subscribers.discard(subscription)
            await self.leave()

    async def leave(self) -> None:
        self._users -= 1
        if self._users > 0 or self._waker is None:
            return
        waker, self._waker = self._waker, None
        waker.cancel()
        # Bounded: redis-py's blocking read was seen ignoring its cancellation under overload.
        await asyncio.wait({waker}, timeout=1.0)

    async def wait_newer(self, generation: int, timeout_s: float, stop: asyncio.Future[object]) -> None:
        """Until the waker saw entries after ``generation``, ``stop`` completes, or ``timeout_s`` passed."""
        if self._generation > generation:
            return
        if self._bumped is None or self._bumped.done():
            self._bumped = asyncio.get_running_loop().create_future()
        waiters: set[asyncio.Future[Any]] = {self._bumped, stop}
        await asyncio.wait(waiters, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)

    async def read_new(self, group: str, consumer: str) -> list[_Entry]:
        """``XREADGROUP ... >`` without blocking, in the next shared pipeline."""
        reply = await self._command("xreadgroup", group, consumer)
        return _entries_of(reply)

    async def ack(self, group: str, ids: Sequence[str]) -> None:
        """``XACK`` of ``ids`` in the next shared pipeline."""
        await self._command("xack", group, *ids)

    async def _command(self, name: str, *args: Any) -> object:
        reply = await self._commands((name, args))
        if isinstance(reply, Exception):
            raise reply
        return reply

    async def _pipeline(self, commands: Sequence[tuple[str, tuple[Any, ...]]]) -> list[object]:
        """One round trip for ``commands``; each gets its own reply, or its own error as a value."""
        bus = self._bus
        try:
            async with asyncio.timeout(_OP_TIMEOUT_S):
                async with bus._client.pipeline(transaction=False) as pipe:
                    for name, args in commands:
                        if name == "xreadgroup":
                            _ = pipe.xreadgroup(args[0], args[1], {bus._keys.events: ">"}, count=bus._batch)
                        else:
                            _ = pipe.xack(bus._keys.events, args[0], *args[1:])
                    replies: list[object] = await pipe.execute(raise_on_error=False)
        except _RETRYABLE as exc:
            return [exc] * len(commands)
        return replies

    async def _wake(self, ready: asyncio.Event) -> None:
        """Block in ``XREAD`` from the newest entry seen; bump the generation whenever entries arrive,
        and hand them to the subscribers (the process's tails).

        It starts from the newest entry at its start (``ready`` is set once that is known) and after a
        Redis error goes on from the last entry it saw: subscribers miss nothing in between.

        After each wake-up it lets ``linger_ms`` pass before it reads again: what arrives meanwhile
        wakes the loops once, as one batch. Under load each group then reads, handles (a batch
        handler in one transaction) and acknowledges many entries per round trip instead of one or
        two; an idle bus still wakes them as soon as an entry comes.
        """
        bus = self._bus
        client, stream = bus._client, bus._keys.events
        linger_s = bus._settings.linger_ms / 1000
        last: str | None = None
        delay = _BACKOFF_MIN_S
        while True:
            try:
                if last is None:
                    async with asyncio.timeout(_OP_TIMEOUT_S):
                        newest: Any = await client.xrevrange(stream, count=1)
                    last = _text(newest[0][0]) if newest else "0-0"
                    ready.set()
                async with asyncio.timeout(bus.block_ms / 1000 + _OP_TIMEOUT_S):
                    reply: Any = await client.xread({stream: last}, count=1000, block=bus.block_ms)
                delay = _BACKOFF_MIN_S
            except _RETRYABLE as exc:
                logger.debug("bus waker: %r; retrying in %.2fs (consumers poll meanwhile)", exc, delay)
                await asyncio.sleep(delay * random.uniform(0.8, 1.2))
                delay = min(delay * 2, _BACKOFF_MAX_S)
                continue
            if not reply:
                continue
            rows = reply[0][1]
            last = _text(rows[-1][0])
            self._generation += 1
            if self._bumped is not None and not self._bumped.done():
                self._bumped.set_result(None)
            if self._subscribers:
                batch = [
                    FeedEntry(_text(mid), fields.get(_FIELD) if fields else None) for mid, fields in rows
                ]
                for subscriber in tuple(self._subscribers):
                    subscriber.push(batch)
            if linger_s:
                await asyncio.sleep(linger_s)


class _ConsumerLoop:
    """One ``consume`` call: the read, claim and deliver loop of one consumer in one group."""

    def __init__(
        self,
        bus: RedisEventBus,
        group: str,
        consumer: str,
        handler: Handler,
        stop: asyncio.Future[object],
        only: frozenset[str] | None = None,
        batch: BatchHandler | None = None,
    ) -> None:
        self._bus = bus
        self._client = bus._client
        self._stream = bus._keys.events
        self._settings = bus._settings
        self._group = group
        self._consumer = consumer
        self._handler = handler
        self._batch = batch
        self._stop = stop
        self._only = only
        self._in_hand: set[str] = set()
        self._claim_every_s = max(self._settings.claim_idle_ms / 2000, 0.01)
        self._touch_every_s = max(self._settings.claim_idle_ms / 3000, 0.005)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        delay = _BACKOFF_MIN_S
        group_ready = False
        backlog_from: str | None = "0"  # our own pending entries first: a restart re-delivers them
        next_claim = loop.time()
        toucher = asyncio.create_task(self._keep_in_hand(), name=f"bus-touch-{self._group}-{self._consumer}")
        shared = self._bus._shared
        shared.enter()
        try:
            while not self._stop.done():
                try:
                    if not group_ready:
                        await self._ensure_group()
                        group_ready = True
                    if loop.time() >= next_claim:
                        await self._claim_idle()
                        next_claim = loop.time() + self._claim_every_s
                    if backlog_from is not None:
                        backlog_from = await self._read_backlog(backlog_from)
                    else:
                        wait_ms = int(min(self._bus.block_ms / 1000, next_claim - loop.time()) * 1000)
                        await self._read_new(max(wait_ms, 1))
                    delay = _BACKOFF_MIN_S
                except _RETRYABLE as exc:
                    group_ready, backlog_from = False, "0"
                    if isinstance(exc, ResponseError) and _is_nogroup(exc):
                        # The stream or group vanished (deleted, or a Redis without persistence restarted).
                        logger.warning("consumer group %s is gone (%s); recreating it", self._group, exc)
                        continue
                    # Unreachable, or refusing for now (OOM, READONLY after a failover, LOADING).
                    logger.warning(
                        "bus consumer %s/%s: Redis error %r; retrying in %.2fs",
                        self._group,
                        self._consumer,
                        exc,
                        delay,
                    )
                    await self._pause(delay * random.uniform(0.8, 1.2))
                    delay = min(delay * 2, _BACKOFF_MAX_S)
        finally:
            toucher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await toucher
            await shared.leave()

    async def _pause(self, seconds: float) -> None:
        """Sleep ``seconds`` unless ``stop`` completes first."""
        await asyncio.wait({self._stop}, timeout=seconds)

    async def _ensure_group(self) -> None:
        try:
            async with asyncio.timeout(_OP_TIMEOUT_S):
                await self._client.xgroup_create(self._stream, self._group, id="0", mkstream=True)
            logger.info(
                "created consumer group %s on %s from the start of the stream", self._group, self._stream
            )
        except ResponseError as exc:
            if not str(exc).startswith("BUSYGROUP"):
                raise

    async def _read_backlog(self, after: str) -> str | None:
        """Deliver our own pending entries after id ``after``; the next id to read from, None when done."""
        async with asyncio.timeout(_OP_TIMEOUT_S):
            reply = await self._client.xreadgroup(
                self._group, self._consumer, {self._stream: after}, count=self._bus._batch
            )
        entries = _entries_of(reply)
        if not entries:
            return None
        await self._deliver_all(entries, await self._delivery_counts(entries))
        return entries[-1].message_id

    async def _read_new(self, block_ms: int) -> None:
        """New entries for this consumer (a shared, non-blocking read); none: wait for the waker."""
        shared = self._bus._shared
        generation = shared.generation  # before the read: entries arriving after it bump it
        entries = await shared.read_new(self._group, self._consumer)
        if entries:
            await self._deliver_all(entries, {entry.message_id: 1 for entry in entries})
        if len(entries) < self._bus._batch:
            # Drained as of the read: what came since bumped the generation (no read to learn it).
            await shared.wait_newer(generation, block_ms / 1000, self._stop)

    async def _claim_idle(self) -> None:
        """Take over entries idle longer than ``claim_idle_ms`` anywhere in the group, and deliver them."""
        start = "0-0"
        for _ in range(16):  # bounded work per claim round; the rest waits for the next round
            async with asyncio.timeout(_OP_TIMEOUT_S):
                reply = await self._client.xautoclaim(
                    self._stream,
                    self._group,
                    self._consumer,
                    min_idle_time=self._settings.claim_idle_ms,
                    start_id=start,
                    count=self._bus._batch,
                )
            # Redis 6.2 answers [cursor, entries]; 7.x adds the ids of entries deleted from the stream
            # (and drops them from the pending list itself). 6.2 instead returns a nil entry (redis-py
            # gives (None, None)) and keeps the id pending: see _settle_vanished.
            cursor = _text(reply[0])
            claimed = [_Entry(_text(mid), fields) for mid, fields in reply[1] if mid is not None]
            vanished_on_62 = sum(1 for mid, _ in reply[1] if mid is None)
            deleted = [_Entry(_text(mid), None) for mid in (reply[2] if len(reply) > 2 else [])]
            for entry in deleted:
                await self._record_trimmed(entry, 0)
            if claimed:
                logger.info(
                    "group %s: %s re-claimed %d idle entries", self._group, self._consumer, len(claimed)
                )
                await self._deliver_all(claimed, await self._delivery_counts(claimed))
            if vanished_on_62:
                await self._settle_vanished(start, {entry.message_id for entry in claimed})
            if cursor == "0-0" or self._stop.done():
                return
            start = cursor

    async def _settle_vanished(self, start: str, seen: set[str]) -> None:
        """Redis 6.2: acknowledge entries we now own whose stream entry no longer exists (trimmed)."""
        async with asyncio.timeout(_OP_TIMEOUT_S):
            pending = await self._client.xpending_range(
                self._stream,
                self._group,
                min=start,
                max="+",
                count=self._bus._batch * 4,
                consumername=self._consumer,
            )
        candidates = [_text(row["message_id"]) for row in pending if _text(row["message_id"]) not in seen]
        for message_id in candidates:
            async with asyncio.timeout(_OP_TIMEOUT_S):
                exists = await self._client.xrange(self._stream, min=message_id, max=message_id)
            if not exists:  # acknowledging an entry that no longer exists loses nothing
                await self._record_trimmed(_Entry(message_id, None), 0)

    async def _delivery_counts(self, entries: Sequence[_Entry]) -> dict[str, int]:
        """Delivery counts (this delivery included) of entries we own; absent when no longer ours."""
        ids = [entry.message_id for entry in entries]
        async with asyncio.timeout(_OP_TIMEOUT_S):
            replies = await self._bus._counts_script(
                keys=[self._stream], args=[self._group, self._consumer, *ids]
            )
        return {message_id: int(n) for message_id, n in zip(ids, replies, strict=True) if int(n) > 0}

    async def _deliver_all(self, entries: Iterable[_Entry], counts: dict[str, int]) -> None:
        batch = [entry for entry in entries if entry.message_id in counts]
        self._in_hand.update(entry.message_id for entry in batch)
        handled: list[str] = []
        try:
            one_by_one = batch
            if self._batch is not None and len(batch) > 1:
                one_by_one = await self._deliver_together(batch, counts, handled)
            for entry in one_by_one:
                if self._stop.done():
                    return  # the rest stays pending and is delivered again
                if await self._deliver(entry, counts[entry.message_id]):
                    handled.append(entry.message_id)
        finally:
            try:
                if handled:
                    # One XACK for the batch's handled entries (they stay in hand, touched, until
                    # then): a round trip per batch instead of per event and group.
                    await self._bus._shared.ack(self._group, handled)
            finally:
                self._in_hand.difference_update(entry.message_id for entry in batch)

    async def _deliver_together(
        self, entries: list[_Entry], counts: dict[str, int], handled: list[str]
    ) -> list[_Entry]:
        """Hand the entries to the batch handler in one call; return those left to deliver one by one.

        Entries settled without the handler (other types, undecodable, over the limit) are added to
        ``handled`` or dead-lettered as :meth:`_deliver` would. When the batch handler raises, every
        entry it was given is returned, for the single handler.
        """
        assert self._batch is not None
        deliveries: list[Delivery] = []
        given: list[_Entry] = []
        for entry in entries:
            prepared = await self._prepare(entry, counts[entry.message_id])
            if isinstance(prepared, Delivery):
                deliveries.append(prepared)
                given.append(entry)
            elif prepared:
                handled.append(entry.message_id)
        if not deliveries or self._stop.done():
            return given
        try:
            await self._batch(deliveries)
        except Exception:
            logger.warning(
                "batch handler of group %s (consumer %s) failed on %d events; handing them over one by one",
                self._group,
                self._consumer,
                len(deliveries),
                exc_info=True,
            )
            return given
        handled.extend(entry.message_id for entry in given)
        return []

    async def _prepare(self, entry: _Entry, deliveries: int) -> Delivery | bool:
        """The entry's delivery; or, settled without the handler, ``True`` to acknowledge it (not this
        group's type) or ``False`` (dead-lettered, or trimmed)."""
        max_deliveries = self._settings.max_deliveries
        if not entry.fields:
            await self._record_trimmed(entry, deliveries)
            return False
        payload = entry.fields.get(_FIELD, b"")
        if self._only is not None:
            stored_kind = entry.fields.get(_TYPE_FIELD)
            kind = stored_kind.decode() if stored_kind is not None else peek_event_type(payload)
            if kind is not None and kind not in self._only:
                return True  # not this group's business: acknowledged, as a handler ignoring it would
        try:
            event = decode_event(payload)
        except ValidationError as exc:
            await self._bus._dead_letter(
                self._group, self._consumer, entry, deliveries, f"undecodable: {exc}"
            )
            return False
        if deliveries > max_deliveries:
            # The previous holder died or timed out on its last allowed delivery: no error text exists.
            error = f"not acknowledged after {deliveries - 1} deliveries (consumer died or timed out)"
            await self._bus._dead_letter(self._group, self._consumer, entry, deliveries, error)
            return False
        return Delivery(message_id=entry.message_id, event=event, deliveries=deliveries)

    async def _deliver(self, entry: _Entry, deliveries: int) -> bool:
        """Hand one entry to the handler; ``True`` when it is to be acknowledged (the caller does that)."""
        max_deliveries = self._settings.max_deliveries
        prepared = await self._prepare(entry, deliveries)
        if not isinstance(prepared, Delivery):
            return prepared
        event = prepared.event
        try:
            await self._handler(prepared)
        except Exception as exc:
            logger.exception(
                "handler of group %s (consumer %s) failed on %s %s, message %s, delivery %d of %d",
                self._group,
                self._consumer,
                event.event_type,
                event.event_id,
                entry.message_id,
                deliveries,
                max_deliveries,
            )
            if deliveries >= max_deliveries:
                error = f"{type(exc).__name__}: {exc}"
                await self._bus._dead_letter(self._group, self._consumer, entry, deliveries, error)
            # Otherwise it stays pending: re-claimed once idle for claim_idle_ms, then delivered again.
            self._in_hand.discard(entry.message_id)
            return False
        return True

    async def _record_trimmed(self, entry: _Entry, deliveries: int) -> None:
        # Lost for good: trimmed by MAXLEN before this group handled it. Say so loudly, where it shows.
        error = "trimmed from the stream before it was handled (is BUS_STREAM_MAXLEN too small?)"
        await self._bus._dead_letter(self._group, self._consumer, entry, deliveries, error)

    async def _keep_in_hand(self) -> None:
        """Every ``claim_idle_ms / 3`` reset the idle time of entries we are still working on."""
        while True:
            await asyncio.sleep(self._touch_every_s)
            ids = list(self._in_hand)
            if not ids:
                continue
            try:
                async with asyncio.timeout(_OP_TIMEOUT_S):
                    await self._bus._touch(keys=[self._stream], args=[self._group, self._consumer, *ids])
            except _RETRYABLE as exc:
                logger.debug("could not touch in-hand entries of %s: %r", self._group, exc)


def _entries_of(reply: Any) -> list[_Entry]:
    """The entries of an XREADGROUP reply (RESP2, one stream) as values; an empty reply gives []."""
    if not reply:
        return []
    rows = reply[0][1]
    return [_Entry(_text(mid), dict(fields) if fields else None) for mid, fields in rows]


def _dead_letter(row_id: str, fields: Mapping[Any, Any]) -> DeadLetter:
    def get(name: bytes) -> str:
        value = fields.get(name, b"")
        return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)

    return DeadLetter(
        dead_letter_id=row_id,
        original_id=get(b"original_id"),
        group=get(b"group"),
        consumer=get(b"consumer"),
        error=get(b"error"),
        deliveries=int(get(b"deliveries") or 0),
        payload=get(_FIELD),
    )


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _is_nogroup(exc: ResponseError) -> bool:
    return str(exc).startswith("NOGROUP")


def _check_label(value: str, what: str) -> None:
    if not value or len(value) > 200 or not value.isprintable() or value.strip() != value:
        raise ValueError(f"{what} {value!r} must be 1-200 printable characters without surrounding spaces")
