"""In-memory fakes of the capacity ports, for service tests (test doubles of ``store/sql_capacity.py``).

They keep the SQL contract (the same tests run against both in ``tests/integration/store``): an unknown
agent is ``NotFoundError``, times must be aware and come back in UTC, shifts come back in week order,
predictions oldest first with ids from 1.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime

from callcenter.capacity.accuracy import PredictionRecord
from callcenter.capacity.schedules import Schedule
from callcenter.errors import NotFoundError, ValidationError
from tests.fakes.store import InMemoryAgentRepository


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValidationError(f"time {value.isoformat()} has no time zone; the store keeps aware times only")
    return value.astimezone(UTC)


class InMemoryScheduleRepository:
    """``ScheduleRepository``; agents and their queues are those of ``agents`` (as the SQL joins read them)."""

    def __init__(self, agents: InMemoryAgentRepository) -> None:
        self.schedules: dict[str, Schedule] = {}
        self._agents = agents

    def _require_agent(self, agent_id: str) -> None:
        if agent_id not in self._agents.agents:
            raise NotFoundError(f"agent {agent_id!r} not found")

    async def get(self, agent_id: str) -> Schedule:
        self._require_agent(agent_id)
        return self.schedules.get(agent_id) or Schedule(agent_id=agent_id, shifts=())

    async def put(self, schedule: Schedule) -> Schedule:
        if schedule.updated_at is None:
            raise ValidationError("a stored schedule needs updated_at")
        self._require_agent(schedule.agent_id)
        stored = dataclasses.replace(
            schedule, shifts=tuple(sorted(schedule.shifts)), updated_at=_utc(schedule.updated_at)
        )
        self.schedules[schedule.agent_id] = stored
        return stored

    async def for_queue(self, queue: str) -> tuple[Schedule, ...]:
        return tuple(
            self.schedules[agent_id]
            for agent_id in sorted(self.schedules)
            if self.schedules[agent_id].shifts
            and agent_id in self._agents.agents
            and queue in self._agents.agents[agent_id].queues
        )


class InMemoryPredictionLog:
    """``PredictionLog``: append-only, ids from 1."""

    def __init__(self) -> None:
        self.rows: list[PredictionRecord] = []
        self.fail_next: Exception | None = None

    async def add(self, predictions: Sequence[PredictionRecord]) -> None:
        if self.fail_next is not None:
            error, self.fail_next = self.fail_next, None
            raise error
        stored = [dataclasses.replace(p, at=_utc(p.at)) for p in predictions]
        for prediction in stored:
            self.rows.append(dataclasses.replace(prediction, id=len(self.rows) + 1))

    async def between(self, queue: str, since: datetime, until: datetime) -> tuple[PredictionRecord, ...]:
        since, until = _utc(since), _utc(until)
        chosen = [p for p in self.rows if p.queue == queue and since <= p.at < until]
        return tuple(sorted(chosen, key=lambda p: (p.at, p.id or 0)))

    async def for_call(self, call_id: str) -> tuple[PredictionRecord, ...]:
        chosen = [p for p in self.rows if p.call_id == call_id]
        return tuple(sorted(chosen, key=lambda p: (p.at, p.id or 0)))
