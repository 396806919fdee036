"""SQL repositories of the capacity feature: agent schedules and the prediction log (edge).

They implement ``ScheduleRepository`` and ``PredictionLog`` of ``callcenter/capacity/ports.py`` on the
same engine and with the same error mapping as ``sql_repos.py`` (unknown agent: ``NotFoundError``;
naive time: ``ValidationError``; database down: ``StoreUnavailableError``), and return capacity
records, never ORM rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Final

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter.batching import Coalescer
from callcenter.capacity.accuracy import PredictionRecord
from callcenter.capacity.predictors import PredictorName
from callcenter.capacity.schedules import Schedule, Shift
from callcenter.errors import NotFoundError, ValidationError
from callcenter.store.sql_models import AgentQueueRow, AgentRow, PredictionRow, ScheduleRow, ShiftRow
from callcenter.store.sql_repos import OPERATION_TIMEOUT_S, _SqlRepository, _upsert


def _shift(row: ShiftRow) -> Shift:
    return Shift(weekday=row.weekday, start_min=row.start_min, end_min=row.end_min)


class SqlScheduleRepository(_SqlRepository):
    """Agents' weekly shifts (``ScheduleRepository``)."""

    async def get(self, agent_id: str) -> Schedule:
        """The agent's schedule; no shifts when none was set. :raises NotFoundError: unknown agent."""
        async with self._session("reading a schedule") as session:
            if await session.get(AgentRow, agent_id) is None:
                raise NotFoundError(f"agent {agent_id!r} not found")
            row = await session.get(ScheduleRow, agent_id)
            shifts = await session.scalars(
                select(ShiftRow)
                .where(ShiftRow.agent_id == agent_id)
                .order_by(ShiftRow.weekday, ShiftRow.start_min, ShiftRow.end_min)
            )
            return Schedule(
                agent_id=agent_id,
                shifts=tuple(_shift(s) for s in shifts),
                updated_at=row.updated_at if row is not None else None,
                updated_by=row.updated_by if row is not None else "",
            )

    async def put(self, schedule: Schedule) -> Schedule:
        """Replace the agent's shifts: one transaction that starts with its write (see ``sql_repos``).

        :raises NotFoundError: for an unknown agent.
        :raises ValidationError: for a missing or naive ``updated_at``.
        """
        if schedule.updated_at is None:
            raise ValidationError("a stored schedule needs updated_at")
        async with self._session("checking an agent") as session:
            if await session.get(AgentRow, schedule.agent_id) is None:
                raise NotFoundError(f"agent {schedule.agent_id!r} not found")
        values = {
            "agent_id": schedule.agent_id,
            "updated_at": schedule.updated_at,
            "updated_by": schedule.updated_by,
        }
        async with self._session("saving a schedule", write=True) as session:
            upsert = _upsert(self._engine, ScheduleRow)
            await session.execute(
                upsert.values(**values).on_conflict_do_update(
                    index_elements=[ScheduleRow.__table__.c.agent_id],
                    set_={"updated_at": values["updated_at"], "updated_by": values["updated_by"]},
                )
            )
            await session.execute(delete(ShiftRow).where(ShiftRow.agent_id == schedule.agent_id))
            if schedule.shifts:
                await session.execute(
                    insert(ShiftRow),
                    [
                        {
                            "agent_id": schedule.agent_id,
                            "weekday": s.weekday,
                            "start_min": s.start_min,
                            "end_min": s.end_min,
                        }
                        for s in schedule.shifts
                    ],
                )
        return await self.get(schedule.agent_id)

    async def for_queue(self, queue: str) -> tuple[Schedule, ...]:
        """The schedules with shifts of the agents serving ``queue``, by agent id."""
        query = (
            select(ScheduleRow, ShiftRow)
            .join(ShiftRow, ShiftRow.agent_id == ScheduleRow.agent_id)
            .join(AgentQueueRow, AgentQueueRow.agent_id == ScheduleRow.agent_id)
            .where(AgentQueueRow.queue == queue)
            .order_by(ScheduleRow.agent_id, ShiftRow.weekday, ShiftRow.start_min, ShiftRow.end_min)
        )
        async with self._session("reading a queue's schedules") as session:
            rows = (await session.execute(query)).all()
        schedules: dict[str, tuple[ScheduleRow, list[Shift]]] = {}
        for schedule_row, shift_row in rows:
            schedules.setdefault(schedule_row.agent_id, (schedule_row, []))[1].append(_shift(shift_row))
        return tuple(
            Schedule(
                agent_id=agent_id, shifts=tuple(shifts), updated_at=row.updated_at, updated_by=row.updated_by
            )
            for agent_id, (row, shifts) in schedules.items()
        )


def _prediction(row: PredictionRow) -> PredictionRecord:
    return PredictionRecord(
        id=row.id,
        call_id=row.call_id,
        queue=row.queue,
        at=row.at,
        predictor=PredictorName(row.predictor),
        mean_s=row.mean_s,
        p80_s=row.p80_s,
        p90_s=row.p90_s,
        announced=row.announced,
    )


#: The prediction log's rows (built once: its compiled form is kept, see ``_write_rows``).
_INSERT_PREDICTIONS: Final = insert(PredictionRow)


class SqlPredictionLog(_SqlRepository):
    """Every wait prediction made for a waiting caller (``PredictionLog``), append-only.

    Concurrent :meth:`add` calls share one insert (one transaction): under load every waiting caller's
    announcement logs its predictions, and a round trip and transaction each cost more than the rows.
    """

    def __init__(self, engine: AsyncEngine, *, timeout_s: float = OPERATION_TIMEOUT_S) -> None:
        super().__init__(engine, timeout_s=timeout_s)
        self._adds: Coalescer[Sequence[PredictionRecord], None] = Coalescer(
            self._add_batch, max_batch=128, name="prediction-log"
        )

    async def add(self, predictions: Sequence[PredictionRecord]) -> None:
        """Append the predictions, with those of concurrent calls, in one statement; returns once committed.

        :raises ValidationError: for a naive time (nothing of this call is stored; other calls' are).
        :raises StoreUnavailableError: when the store did not take the batch holding them.
        """
        if not predictions:
            return
        for p in predictions:
            if p.at.tzinfo is None or p.at.utcoffset() is None:
                raise ValidationError(f"prediction time {p.at.isoformat()} has no time zone")
        await self._adds(tuple(predictions))

    async def _add_batch(self, batches: Sequence[Sequence[PredictionRecord]]) -> list[None]:
        rows = [
            {
                "call_id": p.call_id,
                "queue": p.queue,
                "at": p.at,
                "predictor": p.predictor.value,
                "mean_s": p.mean_s,
                "p80_s": p.p80_s,
                "p90_s": p.p90_s,
                "announced": p.announced,
            }
            for predictions in batches
            for p in predictions
        ]
        await self._write_rows("logging predictions", _INSERT_PREDICTIONS, rows)
        return [None] * len(batches)

    async def between(self, queue: str, since: datetime, until: datetime) -> tuple[PredictionRecord, ...]:
        """The queue's predictions made in ``[since, until)``, oldest first (ties by id).

        :raises ValidationError: for a naive ``since`` or ``until``.
        """
        query = (
            select(PredictionRow)
            .where(PredictionRow.queue == queue, PredictionRow.at >= since, PredictionRow.at < until)
            .order_by(PredictionRow.at, PredictionRow.id)
        )
        async with self._session("reading predictions") as session:
            rows = (await session.scalars(query)).all()
        return tuple(_prediction(r) for r in rows)

    async def for_call(self, call_id: str) -> tuple[PredictionRecord, ...]:
        """A call's predictions, oldest first (ties by id)."""
        query = (
            select(PredictionRow)
            .where(PredictionRow.call_id == call_id)
            .order_by(PredictionRow.at, PredictionRow.id)
        )
        async with self._session("reading a call's predictions") as session:
            rows = (await session.scalars(query)).all()
        return tuple(_prediction(r) for r in rows)
