"""Ports of the event bus and of single-owner leases (shared).

The Redis adapters live in ``callcenter/store/redis_bus.py`` and ``redis_lease.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from typing import NoReturn, Protocol

from callcenter.model.events import DomainEvent


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event handed to a consumer: ``message_id`` is the bus's id, ``deliveries`` counts attempts."""

    message_id: str
    event: DomainEvent
    deliveries: int


#: A consumer's handler: return normally to acknowledge; raise to leave the event for redelivery.
Handler = Callable[[Delivery], Awaitable[None]]
#: A consumer's handler of several events at once, in stream order: all or nothing (see ``consume``).
BatchHandler = Callable[[Sequence[Delivery]], Awaitable[None]]


class EventBus(Protocol):
    """At-least-once delivery of domain events to named consumer groups."""

    async def publish(self, event: DomainEvent) -> str:
        """Append ``event`` to the events stream (one stream, in publish order); return the message id."""
        ...

    async def publish_many(self, events: Sequence[DomainEvent]) -> list[str]:
        """Append ``events`` in order, in one round trip where the bus allows; return their message ids.

        On an error some of them may have been appended: a retry may duplicate those (consumers
        de-duplicate, as for :meth:`publish`).
        """
        ...

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
        """Deliver events to ``handler`` until ``stop`` completes.

        With ``only`` (event types, ``DomainEvent.event_type``), events of other types are acknowledged
        without being decoded or handed to ``handler``, as if it had returned at once. Each event is
        acknowledged after ``handler`` returns. Events a dead consumer left pending are
        re-claimed after the configured idle time; an event that failed ``max_deliveries`` times goes
        to the dead-letter stream and is acknowledged.

        With ``batch``, the events read together (two or more) go to ``batch`` in one call, in
        stream order, and are acknowledged together when it returns. Should it raise, they are
        handed to ``handler`` one by one instead, so a failure stays with its event (and only that
        one is redelivered or dead-lettered). What ``batch`` did before it raised is therefore done
        again: it must be idempotent, as ``handler`` must be for redeliveries.
        """
        ...


class Lease(Protocol):
    """A single-owner role (the ARI link, the callback dispatcher) held with a fencing token."""

    async def acquire(self) -> int | None:
        """Take the lease if free; return the new fencing token (strictly increasing) or ``None``."""
        ...

    async def renew(self) -> bool:
        """Extend the lease; ``False`` when it was lost (expired and taken, or released)."""
        ...

    async def release(self) -> None:
        """Give the lease up if still held."""
        ...

    async def check_token(self, token: int) -> bool:
        """True when ``token`` is the current holder's: a stale holder's token is refused."""
        ...

    @property
    def lost(self) -> asyncio.Event:
        """Set once the lease was taken from this holder; cleared by the next successful :meth:`acquire`.

        Taken means a renewal was refused, or none was confirmed within the TTL. A voluntary
        :meth:`release` does not set it.
        """
        ...

    async def keep(self) -> NoReturn:
        """Renew the held lease every third of its TTL for as long as it is held.

        Run it beside the work the lease guards (in an ``asyncio.TaskGroup`` its error cancels that
        work); cancel it to stop renewing. Never returns.

        :raises LeaseLostError: once the lease is lost (``lost`` is set first), or at once when it is
            not held.
        """
        ...
