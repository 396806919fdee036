"""The wallboard feed: coalesced snapshots serialised once and fanned out to bounded client buffers (service).

Changes only mark the feed dirty. At most ``1 / min_interval_s`` times a second (4 by default) the
feed renders one snapshot to bytes and appends the same bytes to every subscriber's buffer. A
subscriber whose buffer is full (a client that does not read) is dropped, so one slow client never
holds memory or time of the others.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Final

logger = logging.getLogger(__name__)

DEFAULT_MIN_INTERVAL_S: Final = 0.25
DEFAULT_BUFFER: Final = 8
#: Time-based figures (longest wait) move without events: refresh at least this often.
DEFAULT_REFRESH_S: Final = 1.0


class Subscription:
    """One client's buffer of rendered snapshots; ``dropped`` once it fell too far behind."""

    def __init__(self, limit: int) -> None:
        self._items: deque[bytes] = deque()
        self._limit = limit
        self._ready = asyncio.Event()
        self.dropped = False

    def offer(self, payload: bytes) -> bool:
        """Append ``payload``; ``False`` (and dropped) when the buffer is full."""
        if self.dropped:
            return False
        if len(self._items) >= self._limit:
            self.dropped = True
            self._items.clear()
            self._ready.set()
            return False
        self._items.append(payload)
        self._ready.set()
        return True

    def close(self) -> None:
        """End the subscription: its reader gets ``None`` (the server is shutting down)."""
        self.dropped = True
        self._items.clear()
        self._ready.set()

    async def next(self) -> bytes | None:
        """The oldest unread snapshot, waiting for one; ``None`` once dropped."""
        while not self._items:
            if self.dropped:
                return None
            self._ready.clear()
            await self._ready.wait()
        if self.dropped:
            return None
        return self._items.popleft()


class SnapshotFeed:
    """Coalesces changes into rendered snapshots for every subscriber.

    :param render: makes the current snapshot's bytes (called once per publication, for all clients).
    :param min_interval_s: the least time between two publications.
    :param buffer: snapshots a client may leave unread before it is dropped.
    """

    def __init__(
        self,
        render: Callable[[], bytes],
        *,
        min_interval_s: float = DEFAULT_MIN_INTERVAL_S,
        buffer: int = DEFAULT_BUFFER,
        refresh_s: float = DEFAULT_REFRESH_S,
    ) -> None:
        self._render = render
        self._min_interval_s = min_interval_s
        self._buffer = buffer
        self._refresh_s = refresh_s
        self._subscribers: set[Subscription] = set()
        self._dirty = asyncio.Event()
        self._latest: bytes | None = None
        self.published = 0
        self.dropped = 0

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def changed(self) -> None:
        """Something a snapshot shows changed: publish soon (coalesced with other changes)."""
        self._dirty.set()

    def subscribe(self) -> Subscription:
        """A new client: it gets the latest snapshot at once, then every publication."""
        sub = Subscription(self._buffer)
        if self._latest is None or not self._subscribers:
            self._latest = self._render()  # nobody kept it fresh meanwhile
        sub.offer(self._latest)
        self._subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subscribers.discard(sub)

    def close(self) -> None:
        """End every subscription, so long-lived feed responses finish (at shutdown)."""
        for sub in self._subscribers:
            sub.close()
        self._subscribers.clear()

    def publish(self) -> None:
        """Render once and hand the bytes to every subscriber, dropping those that are full."""
        self._dirty.clear()
        payload = self._render()
        self._latest = payload
        self.published += 1
        for sub in list(self._subscribers):
            if not sub.offer(payload):
                self._subscribers.discard(sub)
                self.dropped += 1
                logger.info("wallboard feed: dropped a client that stopped reading")

    async def run(self) -> None:
        """Publish on changes, at most once per ``min_interval_s``, and at least once per ``refresh_s``."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                async with asyncio.timeout(self._refresh_s):
                    await self._dirty.wait()
            except TimeoutError:
                pass
            started = loop.time()
            if self._subscribers:
                try:
                    self.publish()
                except Exception:
                    logger.exception("wallboard feed: rendering failed")
            else:
                self._dirty.clear()  # nobody watching: render nothing (a new client renders its own)
            await asyncio.sleep(max(0.0, self._min_interval_s - (loop.time() - started)))
