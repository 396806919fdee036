"""Ports of the callback feature: where callbacks are kept, and its errors (port).

::

    ConflictError
    ├── CallbackExistsError   an open callback for the same (queue, number) exists (``existing_id``)
    ├── SlotFullError         the slot has no room left at booking time
    └── StaleCallbackError    the callback changed since it was read (a concurrent change won)
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import date, datetime
from typing import Protocol

from callcenter.capacity.service import Estimate, Forecast
from callcenter.errors import ConflictError
from callcenter.model.callbacks import Callback, CallbackChange
from callcenter.model.paging import Page
from callcenter.model.vocabulary import CallbackKind, CallbackState


class CallbackExistsError(ConflictError):
    """One open callback per (queue, number): this number already has one in this queue."""

    def __init__(self, message: str, existing_id: str) -> None:
        super().__init__(message)
        self.existing_id = existing_id


class SlotFullError(ConflictError):
    """The slot was booked full (by a concurrent booking, say): offer the next one."""


class StaleCallbackError(ConflictError):
    """The callback moved on since it was read; read it again and decide again."""


class CallbackRepository(Protocol):
    """Callback records and their change log (SQL in production, in memory in service tests).

    Every write is one transaction: the record and its change land together or not at all.
    """

    async def add(self, callback: Callback, changes: tuple[CallbackChange, ...]) -> Callback:
        """Store a new callback with its first changes (a keep-my-place request, say).

        Idempotent by ``client_key``: a repeat with the same key returns the stored callback.

        :raises CallbackExistsError: another open callback has the same (queue, number).
        :raises ConflictError: the key was used for a different request.
        """
        ...

    async def book(
        self, callback: Callback, changes: tuple[CallbackChange, ...], *, slot_start: datetime, capacity: int
    ) -> Callback:
        """Store a scheduled callback in the slot starting at ``slot_start``, atomically checked
        against ``capacity``: concurrent bookings can never take the slot past it.

        Idempotent by ``client_key`` as :meth:`add`.

        :raises SlotFullError: the slot holds ``capacity`` bookings already.
        :raises CallbackExistsError: another open callback has the same (queue, number).
        """
        ...

    async def move(self, callback: Callback, change: CallbackChange) -> Callback:
        """Store ``callback`` (already moved) if the stored one is still in ``change.previous``.

        Leaving a booked slot for a closing state (cancelled, expired, completed inbound) frees its
        place in the slot.

        :raises StaleCallbackError: the stored state is no longer ``change.previous``.
        :raises NotFoundError: for an unknown id.
        """
        ...

    async def get(self, callback_id: str) -> Callback:
        """:raises NotFoundError:"""
        ...

    async def by_client_key(self, client_key: str) -> Callback | None: ...

    async def open_for(self, queue: str, number: str) -> Callback | None:
        """The open callback of ``number`` in ``queue``, if any."""
        ...

    async def open_for_number(self, number: str) -> tuple[Callback, ...]:
        """Every open callback of ``number`` (any queue), oldest first."""
        ...

    async def open_for_numbers(self, numbers: Collection[str]) -> Mapping[str, tuple[Callback, ...]]:
        """:meth:`open_for_number` of several numbers in one read; numbers with none are absent."""
        ...

    async def changes(self, callback_id: str) -> tuple[CallbackChange, ...]:
        """The callback's changes, oldest first. :raises NotFoundError:"""
        ...

    async def booked(self, queue: str, since: datetime, until: datetime) -> Mapping[datetime, int]:
        """Bookings held per slot start in ``[since, until)``."""
        ...

    async def in_state(
        self, queue: str | None, states: frozenset[CallbackState], *, kind: CallbackKind | None = None
    ) -> tuple[Callback, ...]:
        """Callbacks in ``states`` (of ``queue``, or every queue), in line order (enqueue time, id)."""
        ...

    async def list(
        self, *, queue: str | None, state: CallbackState | None, cursor: str | None, limit: int
    ) -> Page[Callback]:
        """Callbacks newest request first. :raises ValidationError: a bad cursor or limit."""
        ...


class DayPlanner(Protocol):
    """A queue's planned day: forecast and schedules (``EstimateService.forecast``)."""

    async def forecast(
        self, queue: str, day: date | None = None, *, target_service_level: float | None = None
    ) -> Forecast:
        """:raises NotFoundError: unknown queue. :raises NoHistoryError: nothing to forecast from."""
        ...


class WaitEstimator(Protocol):
    """A waiting caller's wait now, logged as announced (``EstimateService.announce``)."""

    async def announce(self, queue: str, call_id: str) -> Estimate:
        """:raises NotFoundError: the call is not waiting. :raises DependencyError: no live board here."""
        ...
