"""``InMemoryEventBus``: the event bus port in memory, for service tests (test double of Redis Streams).

Every published event goes through the wire codec (``encode_event``/``decode_event``), so an event
the real bus would refuse (a naive time, say) fails here too. ``fail_next`` makes the next
``publish`` raise, as Redis being down would.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Collection, Sequence

from callcenter.bus import BatchHandler, Delivery, Handler
from callcenter.model.events import DomainEvent, decode_event, encode_event


class InMemoryEventBus:
    """``EventBus`` keeping published events in ``published``, in order."""

    def __init__(self) -> None:
        self.published: list[DomainEvent] = []
        self._failures: list[Exception] = []
        self._positions: dict[str, int] = {}
        self._changed = asyncio.Event()

    def fail_next(self, error: Exception) -> None:
        """The next ``publish`` raises ``error`` (and publishes nothing)."""
        self._failures.append(error)

    def of_type(self, kind: type[DomainEvent]) -> list[DomainEvent]:
        return [e for e in self.published if isinstance(e, kind)]

    async def publish(self, event: DomainEvent) -> str:
        if self._failures:
            raise self._failures.pop(0)
        self.published.append(decode_event(encode_event(event)))
        self._changed.set()
        return f"{len(self.published)}-0"

    async def publish_many(self, events: Sequence[DomainEvent]) -> list[str]:
        """One :meth:`publish` per event, in order (a test replacing ``publish`` sees them all)."""
        return [await self.publish(event) for event in events]

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
        """Deliver every event published (before or during the call) to ``handler``, once per group
        (with ``only``, those of the types named); with ``batch``, those waiting together in one call,
        one by one should it raise (as the Redis bus does)."""
        stopping = asyncio.ensure_future(stop)
        try:
            while not stopping.done():
                position = self._positions.get(group, 0)
                waiting = [
                    Delivery(message_id=f"{index + 1}-0", event=event, deliveries=1)
                    for index, event in enumerate(self.published[position:], start=position)
                    if only is None or event.event_type in only
                ]
                self._positions[group] = len(self.published)
                together = batch is not None and len(waiting) > 1
                if together:
                    assert batch is not None
                    try:
                        await batch(waiting)
                    except Exception:
                        together = False
                if not together:
                    for delivery in waiting:
                        await handler(delivery)
                self._changed.clear()
                if self._positions[group] < len(self.published):
                    continue
                woken = asyncio.ensure_future(self._changed.wait())
                await asyncio.wait({woken, stopping}, return_when=asyncio.FIRST_COMPLETED)
                woken.cancel()
        finally:
            if stopping is not stop and not stopping.done():  # a shared stop is its owner's
                stopping.cancel()
