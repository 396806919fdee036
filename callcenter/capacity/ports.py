"""Ports of the capacity feature: the live queue it reads, call history, schedules and the prediction log.

The queue feature's objects satisfy the first three without an adapter: ``QueueService`` is a
:class:`LiveQueueSource`, ``QueueRepository`` a :class:`QueueSettingsSource` and ``CallRepository`` a
:class:`CallHistory`. So capacity reads the queue's live board without importing the queue service.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from callcenter.capacity.accuracy import PredictionRecord
from callcenter.capacity.schedules import Schedule
from callcenter.model.paging import Page
from callcenter.model.records import CallRecord, QueueRecord
from callcenter.queue.ports import CallFilter
from callcenter.queue.state import QueueStanding, QueueView


class LiveQueue(Protocol):
    """A queue's live picture, as ``QueueService.live`` gives it."""

    @property
    def queue(self) -> QueueRecord: ...

    @property
    def at(self) -> datetime: ...

    @property
    def view(self) -> QueueView: ...


class LiveQueueSource(Protocol):
    """Where the live waiting list and agents of a queue are read (``QueueService``)."""

    async def live(self, queue: str) -> LiveQueue:
        """The queue's picture now. :raises NotFoundError: for a queue not configured."""
        ...

    async def standing(
        self, queue: str, *, call_id: str | None = None, joined_at: datetime | None = None
    ) -> QueueStanding:
        """The queue's line and staffing now in counts, with the place of ``call_id`` (``None`` when
        it is not waiting here) and the callers queued before ``joined_at``.

        :raises NotFoundError: for a queue not configured.
        """
        ...


class QueueSettingsSource(Protocol):
    """Queue settings (``QueueRepository``)."""

    async def get(self, name: str) -> QueueRecord:
        """:raises NotFoundError:"""
        ...

    async def list(self) -> tuple[QueueRecord, ...]:
        """All queues by name."""
        ...


class CallHistory(Protocol):
    """Stored calls (``CallRepository``)."""

    async def list(self, flt: CallFilter, *, cursor: str | None, limit: int) -> Page[CallRecord]:
        """Calls matching ``flt`` (``since`` inclusive, ``until`` exclusive), newest arrival first."""
        ...


class ScheduleRepository(Protocol):
    """Agents' weekly shifts. Shifts are stored as given: checking them is the service's job."""

    async def get(self, agent_id: str) -> Schedule:
        """The agent's schedule; no shifts (and ``updated_at`` ``None``) when none was set.

        :raises NotFoundError: for an unknown agent.
        """
        ...

    async def put(self, schedule: Schedule) -> Schedule:
        """Replace the agent's shifts in one transaction; return what is stored.

        :raises NotFoundError: for an unknown agent.
        :raises ValidationError: for a naive ``updated_at``.
        """
        ...

    async def for_queue(self, queue: str) -> tuple[Schedule, ...]:
        """The schedules (with at least one shift) of the agents serving ``queue``, by agent id."""
        ...


class PredictionLog(Protocol):
    """Every prediction made for a waiting caller, append-only (no foreign key: a prediction may be
    logged before the call's record is saved)."""

    async def add(self, predictions: Sequence[PredictionRecord]) -> None:
        """Append the predictions (all or none). :raises ValidationError: for a naive time."""
        ...

    async def between(self, queue: str, since: datetime, until: datetime) -> tuple[PredictionRecord, ...]:
        """The queue's predictions made in ``[since, until)``, oldest first (ties by id)."""
        ...

    async def for_call(self, call_id: str) -> tuple[PredictionRecord, ...]:
        """A call's predictions, oldest first (ties by id)."""
        ...
