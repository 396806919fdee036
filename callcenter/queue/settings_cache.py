"""Queue settings read through a short-lived cache in front of the queue repository (service).

Every call reads its queue's settings several times (the callback offer, the wait estimates, the
missed-call text, the statistics): at a hundred calls a second, one SQL round trip each would keep the
store busy with reads of rows that change a few times a day. :class:`CachedQueueRepository` answers
them from memory for ``ttl_s`` seconds. Writes through it are seen at once (the entry is dropped
before the write returns); a change made by another process (``callcenter`` from the command line,
another API process) is seen within ``ttl_s``, as the queue service's own periodic refresh does.
An unknown queue is never cached: a queue created elsewhere is found at the next read.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable

from callcenter.model.records import QueueRecord
from callcenter.queue.ports import QueueRepository

#: How long a read is reused: short enough that another process's change shows quickly.
DEFAULT_TTL_S = 2.0


class CachedQueueRepository:
    """A :class:`~callcenter.queue.ports.QueueRepository` that reuses reads for ``ttl_s`` seconds.

    :param repo: the repository read and written through.
    :param now_s: a monotonic clock in seconds (the cache's own: it decides nothing about calls).
    """

    def __init__(
        self,
        repo: QueueRepository,
        *,
        ttl_s: float = DEFAULT_TTL_S,
        now_s: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl_s < 0:
            raise ValueError("ttl_s must not be negative")
        self._repo = repo
        self._ttl_s = ttl_s
        self._now_s = now_s
        self._by_name: dict[str, tuple[float, QueueRecord]] = {}
        self._all: tuple[float, tuple[QueueRecord, ...]] | None = None
        self._generation = 0  # bumped by every write: a read begun before it is not kept
        self._reading: dict[str, asyncio.Future[QueueRecord]] = {}

    async def put(self, queue: QueueRecord) -> None:
        """Create or replace a queue's settings; later reads here see the new ones."""
        self._forget()
        try:
            await self._repo.put(queue)
        finally:
            self._forget()

    async def get(self, name: str) -> QueueRecord:
        """:raises NotFoundError: (never cached)"""
        now = self._now_s()
        cached = self._by_name.get(name)
        if cached is not None and cached[0] > now:
            return cached[1]
        # Callers missing together (the entry just expired under load) share one read.
        reading = self._reading.get(name)
        if reading is None:
            reading = self._reading[name] = asyncio.ensure_future(self._read(name, now))
            reading.add_done_callback(functools.partial(self._read_done, name))
        return await asyncio.shield(reading)

    def _read_done(self, name: str, reading: asyncio.Future[QueueRecord]) -> None:
        if self._reading.get(name) is reading:
            del self._reading[name]
        if not reading.cancelled():
            reading.exception()  # retrieved: every waiter may have gone (cancelled) meanwhile

    async def _read(self, name: str, now: float) -> QueueRecord:
        generation = self._generation
        record = await self._repo.get(name)
        if generation == self._generation:
            self._by_name[name] = (now + self._ttl_s, record)
        return record

    async def list(self) -> tuple[QueueRecord, ...]:
        """All queues by name."""
        now = self._now_s()
        if self._all is not None and self._all[0] > now:
            return self._all[1]
        generation = self._generation
        records = await self._repo.list()
        if generation == self._generation:
            expires = now + self._ttl_s
            self._all = (expires, records)
            self._by_name = {record.name: (expires, record) for record in records}
        return records

    def _forget(self) -> None:
        self._generation += 1
        self._reading.clear()  # a read begun before the write must not answer later callers
        self._by_name.clear()
        self._all = None
