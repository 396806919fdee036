"""Kept places in the live line: the dispatcher's view the queue asks before it offers an agent (core).

A keep-my-place callback keeps the caller's place in their queue's line. :class:`CallbackLine` holds,
per queue, the kept places that wait for an agent (still in line, or released and not yet dialled)
and that the dispatcher would dial now (the customer is outside quiet hours, the queue is open, no
agent has claimed it), each at its place: the caller's original enqueue time, then the id of the
call they left (:func:`line_key`), the same key as a live caller's, so ties fall the same way.

The queue service asks :meth:`CallbackLine.waiting` before it offers a free agent: when a kept place
is ahead of every live caller that agent could take, the agent is kept back for the dispatcher and
the dispatcher is told at once (:meth:`CallbackLine.reserve`). The dispatcher refreshes the view
every tick (:meth:`replace`); a view not refreshed within ``ttl_s`` reads as empty, so a dispatcher
that stopped never keeps agents from live callers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from callcenter.model.callbacks import Callback

#: A place in line: original enqueue time, then the call id (a kept place uses its call's id).
LineKey = tuple[datetime, str]


def line_key(callback: Callback) -> LineKey:
    """The place of a callback in its queue's line among live callers (see the module docstring)."""
    return (callback.enqueued_at or callback.requested_at, callback.call_id or callback.id)


@dataclass(frozen=True, slots=True)
class KeptPlace:
    """One kept place waiting for an agent."""

    key: LineKey
    callback_id: str
    queue: str


class CallbackLine:
    """The kept places of every queue that wait for an agent, in line order (see the module docstring).

    :param ttl_s: how long a :meth:`replace` is trusted; older views read as empty.
    """

    def __init__(self, *, ttl_s: float = 5.0) -> None:
        self._ttl = timedelta(seconds=ttl_s)
        self._by_queue: dict[str, list[KeptPlace]] = {}
        self._queue_of: dict[str, str] = {}
        self._valid_until: datetime | None = None
        self._listeners: list[Callable[[str, str], None]] = []

    def listen(self, listener: Callable[[str, str], None]) -> None:
        """Call ``listener(queue, agent_id)`` whenever the queue keeps an agent back for a kept place
        (synchronously, from the queue's dispatch: it must only schedule work)."""
        self._listeners.append(listener)

    # -- the dispatcher's side ----------------------------------------------------------------------

    def replace(self, places: Iterable[KeptPlace], *, now: datetime) -> None:
        """The whole view, read now; trusted until ``now + ttl_s``."""
        self._by_queue = {}
        self._queue_of = {}
        for place in sorted(places, key=lambda p: (p.key, p.callback_id)):
            self._by_queue.setdefault(place.queue, []).append(place)
            self._queue_of[place.callback_id] = place.queue
        self._valid_until = now + self._ttl

    def add(self, place: KeptPlace) -> None:
        """A kept place just requested, shown before the next refresh (while the view is fresh)."""
        if place.callback_id in self._queue_of:
            return
        entries = self._by_queue.setdefault(place.queue, [])
        entries.append(place)
        entries.sort(key=lambda p: (p.key, p.callback_id))
        self._queue_of[place.callback_id] = place.queue

    def remove(self, callback_id: str) -> None:
        """The callback no longer waits for an agent (being dialled, cancelled, closed)."""
        queue = self._queue_of.pop(callback_id, None)
        if queue is not None:
            self._by_queue[queue] = [p for p in self._by_queue[queue] if p.callback_id != callback_id]

    def clear(self) -> None:
        """Nothing is known (the dispatcher stopped leading)."""
        self._by_queue = {}
        self._queue_of = {}
        self._valid_until = None

    def fresh(self, now: datetime) -> bool:
        return self._valid_until is not None and now <= self._valid_until

    def ids(self, now: datetime) -> frozenset[str] | None:
        """The callbacks in the view, or ``None`` when it is stale."""
        return frozenset(self._queue_of) if self.fresh(now) else None

    # -- the queue's side (:class:`callcenter.queue.ports.KeptPlaces`) -------------------------------

    def waiting(self, queue: str, now: datetime) -> tuple[tuple[LineKey, str], ...]:
        """(place, callback id) of the queue's kept places waiting for an agent, first in line first;
        empty when the view is stale."""
        if not self.fresh(now):
            return ()
        return tuple((p.key, p.callback_id) for p in self._by_queue.get(queue, ()))

    def reserve(self, queue: str, agent_id: str) -> None:
        """The queue kept ``agent_id`` back for the head kept place of ``queue``: tell the dispatcher."""
        for listener in self._listeners:
            listener(queue, agent_id)
