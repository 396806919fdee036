"""Ports of the queue feature: where calls, agents and queue settings are kept."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from callcenter.model.paging import Page
from callcenter.model.records import AgentRecord, CallEvent, CallRecord, QueueRecord
from callcenter.model.vocabulary import AgentState, CallOutcome


@dataclass(frozen=True, kw_only=True, slots=True)
class CallFilter:
    """Filters of ``GET /api/v1/calls``; ``None`` means no filter."""

    outcome: CallOutcome | None = None
    queue: str | None = None
    caller: str | None = None
    since: datetime | None = None
    until: datetime | None = None


class CallRepository(Protocol):
    """Inbound calls. Writes are idempotent: facts arrive at least once."""

    async def upsert(self, call: CallRecord) -> None:
        """Insert or replace the call with ``call.id``.

        A call whose outcome is already stored keeps it: an outcome is decided once.
        """
        ...

    async def get(self, call_id: str) -> CallRecord:
        """:raises NotFoundError: for an unknown id."""
        ...

    async def list(self, flt: CallFilter, *, cursor: str | None, limit: int) -> Page[CallRecord]:
        """Calls matching ``flt``, newest arrival first."""
        ...

    async def append_event(
        self, call_id: str, at: datetime, kind: str, detail: dict[str, object] | None = None
    ) -> CallEvent:
        """Add an entry to the call's timeline (not de-duplicated). :raises NotFoundError: unknown call."""
        ...

    async def events(self, call_id: str) -> tuple[CallEvent, ...]:
        """The call's timeline, oldest first. :raises NotFoundError: unknown call."""
        ...


class AgentRepository(Protocol):
    """Agents and their queue membership."""

    async def add(self, agent: AgentRecord) -> None:
        """:raises ConflictError: if the id exists."""
        ...

    async def get(self, agent_id: str) -> AgentRecord:
        """:raises NotFoundError:"""
        ...

    async def list(self, *, cursor: str | None, limit: int) -> Page[AgentRecord]:
        """Agents ordered by id."""
        ...

    async def set_state(self, agent_id: str, state: AgentState, at: datetime) -> AgentRecord:
        """:raises NotFoundError:"""
        ...

    async def set_queues(self, agent_id: str, queues: tuple[str, ...]) -> AgentRecord:
        """Replace the agent's queue membership. :raises NotFoundError: for the agent or a queue."""
        ...


class QueueRepository(Protocol):
    """Queue settings."""

    async def put(self, queue: QueueRecord) -> None:
        """Create or replace a queue's settings."""
        ...

    async def get(self, name: str) -> QueueRecord:
        """:raises NotFoundError:"""
        ...

    async def list(self) -> tuple[QueueRecord, ...]:
        """All queues by name."""
        ...
