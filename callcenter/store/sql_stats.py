"""SQL store of the statistics: 15-minute interval rows per queue and the missed-call list (edge).

Rows are materialised as ``CallEnded`` events arrive (:meth:`SqlStatsRepository.materialise`, once per
call whatever the deliveries: a marker row in ``stats_applied`` makes it idempotent in the same
transaction) and can be rebuilt from the stored calls (:meth:`SqlStatsRepository.rebuild`). Both go
through the pure fold of ``callcenter/stats/intervals.py``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Final, Protocol

import asyncpg
from sqlalchemy import (
    Boolean,
    Float,
    Index,
    Integer,
    String,
    any_,
    bindparam,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.orm import Mapped, mapped_column

from callcenter.errors import ValidationError
from callcenter.model.paging import Page, decode_cursor
from callcenter.model.vocabulary import ActorKind, CallbackState, CallOutcome
from callcenter.stats.definitions import (
    COUNT_FIELDS,
    Counts,
    EndedCall,
    StatsConfig,
    closure_contribution,
)
from callcenter.stats.intervals import (
    IntervalBook,
    IntervalKey,
    MissedCall,
    Reached,
    close_reached,
    closure_key,
    missed_of,
    rebuild,
)
from callcenter.store.pg_driver import DriverStatement, driver_transaction
from callcenter.store.sql_callbacks import CallbackChangeRow, CallbackRow
from callcenter.store.sql_models import Base, CallRow, UtcDateTime
from callcenter.store.sql_repos import OPERATION_TIMEOUT_S, _call_record, _page, _SqlRepository, _upsert


class StatsIntervalRow(Base):
    """Counts of one queue's calls that ended in one 15-minute interval (``stats.definitions.Counts``)."""

    __tablename__ = "stats_intervals"

    queue: Mapped[str] = mapped_column(String(), primary_key=True)
    start: Mapped[datetime] = mapped_column(primary_key=True)
    offered: Mapped[int] = mapped_column(Integer())
    answered: Mapped[int] = mapped_column(Integer())
    answered_in_sl: Mapped[int] = mapped_column(Integer())
    abandoned: Mapped[int] = mapped_column(Integer())
    short_abandoned: Mapped[int] = mapped_column(Integer())
    missed: Mapped[int] = mapped_column(Integer())
    missed_closable: Mapped[int] = mapped_column(Integer())
    missed_closed: Mapped[int] = mapped_column(Integer())
    wait_answered_s: Mapped[float] = mapped_column(Float())
    talk_s: Mapped[float] = mapped_column(Float())

    __table_args__ = (Index("ix_stats_intervals_start", "start"),)


class StatsMissedRow(Base):
    """One missed call and whether, when and by whom its caller was reached."""

    __tablename__ = "stats_missed"

    call_id: Mapped[str] = mapped_column(primary_key=True)
    queue: Mapped[str] = mapped_column(String())
    caller: Mapped[str] = mapped_column(String(), index=True)
    outcome: Mapped[str] = mapped_column(String(32))
    ended_at: Mapped[datetime] = mapped_column(index=True)
    closable: Mapped[bool] = mapped_column(Boolean())
    closed_at: Mapped[datetime | None]
    closed_by_agent: Mapped[str | None]
    closed_by_call: Mapped[str | None]


class StatsAppliedRow(Base):
    """A call whose ``CallEnded`` was folded into the rows above (repeats are recognised by it)."""

    __tablename__ = "stats_applied"

    call_id: Mapped[str] = mapped_column(primary_key=True)
    ended_at: Mapped[datetime] = mapped_column(index=True)


class WallboardSettingRow(Base):
    """One named wallboard setting (the colour thresholds), a JSON document."""

    __tablename__ = "wallboard_settings"

    name: Mapped[str] = mapped_column(primary_key=True)
    value: Mapped[dict[str, Any]]
    updated_at: Mapped[datetime]
    updated_by: Mapped[str]


def _counts(row: StatsIntervalRow) -> Counts:
    return Counts(**{name: getattr(row, name) for name in COUNT_FIELDS})


def _missed(row: StatsMissedRow) -> MissedCall:
    return MissedCall(
        call_id=row.call_id,
        queue=row.queue,
        caller=row.caller,
        outcome=CallOutcome(row.outcome),
        ended_at=row.ended_at,
        closable=row.closable,
        closed_at=row.closed_at,
        closed_by_agent=row.closed_by_agent,
        closed_by_call=row.closed_by_call,
    )


def _count_values(key: IntervalKey, delta: Counts) -> dict[str, Any]:
    """The parameters of the interval upsert: the row's key and the counts to add."""
    return {"queue": key.queue, "start": key.start, **{name: getattr(delta, name) for name in COUNT_FIELDS}}


def _missed_values(missed: MissedCall) -> dict[str, Any]:
    return {
        "call_id": missed.call_id,
        "queue": missed.queue,
        "caller": missed.caller,
        "outcome": missed.outcome.value,
        "ended_at": missed.ended_at,
        "closable": missed.closable,
        "closed_at": missed.closed_at,
        "closed_by_agent": missed.closed_by_agent,
        "closed_by_call": missed.closed_by_call,
    }


_NEW_MISSED: Final = insert(StatsMissedRow)


class _FoldStatements(Protocol):
    """What folding a batch of ended calls runs, inside its transaction."""

    async def mark(self, rows: list[dict[str, Any]]) -> set[str]:
        """Insert the markers; the calls not marked before."""

    async def open_missed(self, callers: Sequence[str]) -> list[MissedCall]: ...

    async def write(
        self, counts: list[dict[str, Any]], new_missed: list[dict[str, Any]], closings: list[dict[str, Any]]
    ) -> None:
        """Add to the intervals' counts, insert the new missed calls, close the reached ones."""


class _FoldOnCore:
    """Folding through SQLAlchemy (SQLite)."""

    def __init__(self, connection: AsyncConnection, repository: SqlStatsRepository) -> None:
        self._connection = connection
        self._repository = repository

    async def mark(self, rows: list[dict[str, Any]]) -> set[str]:
        return set((await self._connection.execute(self._repository._mark, rows)).scalars().all())

    async def open_missed(self, callers: Sequence[str]) -> list[MissedCall]:
        rows = await self._connection.execute(
            select(StatsMissedRow).where(
                StatsMissedRow.caller.in_(callers), StatsMissedRow.closed_at.is_(None)
            )
        )
        return [_missed(StatsMissedRow(**row._mapping)) for row in rows.all()]

    async def write(
        self, counts: list[dict[str, Any]], new_missed: list[dict[str, Any]], closings: list[dict[str, Any]]
    ) -> None:
        for statement, rows in (
            (self._repository._add_counts, counts),
            (_NEW_MISSED, new_missed),
            (self._repository._close_missed, closings),
        ):
            if rows:
                await self._connection.execute(statement, rows)


class _FoldDriverStatements:
    """Folding's statements compiled once for asyncpg (PostgreSQL).

    The markers go in one ``INSERT ... SELECT unnest(...)`` (asyncpg's executemany returns no rows):
    ``ON CONFLICT DO NOTHING RETURNING`` names the calls not folded before, as the per-row form does.
    """

    def __init__(self, repository: SqlStatsRepository, dialect: Dialect) -> None:
        applied = StatsAppliedRow.__table__.c
        unnested = select(
            func.unnest(bindparam("call_ids", type_=ARRAY(String()))),
            func.unnest(bindparam("ended_ats", type_=ARRAY(UtcDateTime()))),
        )
        mark = (
            postgresql.insert(StatsAppliedRow)
            .from_select([applied.call_id, applied.ended_at], unnested)
            .on_conflict_do_nothing(index_elements=["call_id"])
            .returning(applied.call_id)
        )
        self.mark = DriverStatement(mark, dialect)
        missed = StatsMissedRow.__table__.c
        self.open_missed = DriverStatement(
            select(StatsMissedRow.__table__).where(
                missed.caller == any_(bindparam("callers", type_=ARRAY(String()))), missed.closed_at.is_(None)
            ),
            dialect,
        )
        self.add_counts = DriverStatement(repository._add_counts, dialect)
        self.new_missed = DriverStatement(
            _NEW_MISSED, dialect, column_keys=[c.name for c in StatsMissedRow.__table__.c]
        )
        self.close_missed = DriverStatement(repository._close_missed, dialect)


class _FoldOnDriver:
    """Folding on asyncpg's connection, inside its transaction (PostgreSQL)."""

    def __init__(self, connection: asyncpg.Connection, statements: _FoldDriverStatements) -> None:
        self._connection = connection
        self._statements = statements

    async def mark(self, rows: list[dict[str, Any]]) -> set[str]:
        marked = await self._statements.mark.fetch(
            self._connection,
            {"call_ids": [row["call_id"] for row in rows], "ended_ats": [row["ended_at"] for row in rows]},
        )
        return {record[0] for record in marked}

    async def open_missed(self, callers: Sequence[str]) -> list[MissedCall]:
        records = await self._statements.open_missed.fetch(self._connection, {"callers": list(callers)})
        return [_missed(StatsMissedRow(**dict(record))) for record in records]

    async def write(
        self, counts: list[dict[str, Any]], new_missed: list[dict[str, Any]], closings: list[dict[str, Any]]
    ) -> None:
        statements = self._statements
        await statements.add_counts.many(self._connection, counts)
        await statements.new_missed.many(self._connection, new_missed)
        await statements.close_missed.many(self._connection, closings)


class SqlStatsRepository(_SqlRepository):
    """Interval rows and the missed-call list (``callcenter.stats.ports.StatsRepository``).

    The statements :meth:`materialise` runs for every ended call are built once, with bound
    parameters: building and keying a new statement per call cost more than running it.
    """

    def __init__(self, engine: AsyncEngine, *, timeout_s: float = OPERATION_TIMEOUT_S) -> None:
        super().__init__(engine, timeout_s=timeout_s)
        marker = _upsert(engine, StatsAppliedRow).values(
            call_id=bindparam("call_id"), ended_at=bindparam("ended_at")
        )
        self._mark = marker.on_conflict_do_nothing(index_elements=["call_id"]).returning(
            StatsAppliedRow.call_id
        )
        add = _upsert(engine, StatsIntervalRow).values(
            {name: bindparam(name) for name in ("queue", "start", *COUNT_FIELDS)}
        )
        table = StatsIntervalRow.__table__.c
        self._add_counts = add.on_conflict_do_update(
            index_elements=[table.queue, table.start],
            set_={name: table[name] + add.excluded[name] for name in COUNT_FIELDS},
        )
        self._close_missed = (
            update(StatsMissedRow)
            .where(StatsMissedRow.call_id == bindparam("target"))
            .values(
                closed_at=bindparam("closed_at"),
                closed_by_agent=bindparam("closed_by_agent"),
                closed_by_call=bindparam("closed_by_call"),
            )
        )
        self._open_missed_of = select(StatsMissedRow).where(
            StatsMissedRow.caller == bindparam("caller"), StatsMissedRow.closed_at.is_(None)
        )
        self._driver = (
            _FoldDriverStatements(self, engine.dialect) if engine.dialect.name == "postgresql" else None
        )

    async def materialise(self, call: EndedCall, config: StatsConfig) -> bool:
        """Fold one ended call into the rows, once: ``False`` when it was folded before.

        One transaction: the marker, the call's interval, its missed-call entry, and the closing of
        the caller's earlier missed calls with their intervals (:meth:`materialise_many` of one).
        """
        return await self.materialise_many([call], config) == 1

    async def materialise_many(self, calls: Sequence[EndedCall], config: StatsConfig) -> int:
        """Fold ``calls`` in this order, each once, in one transaction; return how many were new.

        The same rows as :meth:`materialise` for each call in turn, in a few statements for the lot:
        the markers (one insert, which names the calls not folded before), one upsert per interval
        touched (the calls' contributions summed first), the new missed calls, one read of the
        answered callers' open missed calls, and the closings. A missed call ended earlier in the
        batch is closed by a later answered call of the same caller, as one by one.
        """
        if not calls:
            return 0

        async def work(statements: _FoldStatements) -> int:
            fresh_ids = await statements.mark([{"call_id": c.call_id, "ended_at": c.ended_at} for c in calls])
            fresh: list[EndedCall] = []
            for call in calls:  # in order, once each (a batch may repeat a call)
                if call.call_id in fresh_ids:
                    fresh_ids.discard(call.call_id)
                    fresh.append(call)
            callers = sorted({c.caller for c in fresh if c.caller and missed_of(c) is None})
            open_missed = await statements.open_missed(callers) if callers else []
            # The pure fold, over the callers' open missed calls: what it adds is what to store.
            book = IntervalBook(config=config)
            for missed in open_missed:
                book.add_missed(missed)
            stored = set(book.missed)
            for call in fresh:
                book.apply(call)
            new_missed = [m for call_id, m in book.missed.items() if call_id not in stored]
            closed = [m for call_id, m in book.missed.items() if call_id in stored and not m.is_open]
            await statements.write(
                [_count_values(key, delta) for key, delta in book.counts.items() if not delta.is_empty],
                [_missed_values(m) for m in new_missed],
                [
                    {
                        "target": m.call_id,
                        "closed_at": m.closed_at,
                        "closed_by_agent": m.closed_by_agent,
                        "closed_by_call": m.closed_by_call,
                    }
                    for m in closed
                ],
            )
            return len(fresh)

        doing = "folding calls into the statistics"
        driver = self._driver
        if driver is not None:
            return await driver_transaction(
                self._engine,
                doing,
                lambda connection: work(_FoldOnDriver(connection, driver)),
                timeout_s=self._timeout_s,
            )
        return await self._write(doing, lambda connection: work(_FoldOnCore(connection, self)))

    async def materialise_reach(self, reached: Reached, config: StatsConfig) -> int:
        """Close the open missed calls of the number a callback reached, with their intervals'
        ``missed_closed``; a row closed meanwhile (by a call or a repeat) is not counted twice."""

        async def work(connection: AsyncConnection) -> int:
            rows = await connection.execute(self._open_missed_of, {"caller": reached.number})
            candidates = [_missed(StatsMissedRow(**r._mapping)) for r in rows.all()]
            closed = 0
            for item in close_reached(candidates, reached):
                result = await connection.execute(
                    update(StatsMissedRow)
                    .where(StatsMissedRow.call_id == item.call_id, StatsMissedRow.closed_at.is_(None))
                    .values(
                        closed_at=item.closed_at,
                        closed_by_agent=item.closed_by_agent,
                        closed_by_call=item.closed_by_call,
                    )
                )
                if result.rowcount:
                    closed += 1
                    delta = closure_contribution(item.ended_at, reached.at, config)
                    await self._add(connection, closure_key(item), delta)
            return closed

        return await self._write("closing missed calls by a callback", work)

    async def _add(self, connection: AsyncConnection, key: IntervalKey, delta: Counts) -> None:
        if not delta.is_empty:
            await connection.execute(self._add_counts, _count_values(key, delta))

    async def rebuild(self, config: StatsConfig) -> int:
        """Replace every row by the fold of the stored calls in the order they ended, with the missed
        calls closed by callbacks that connected; returns the calls folded."""
        async with self._session("reading the stored calls") as session:
            rows = (await session.scalars(select(CallRow).where(CallRow.outcome.is_not(None)))).all()
            records = [_call_record(r) for r in rows]
            connected = await session.execute(
                select(CallbackRow.id, CallbackRow.number, CallbackChangeRow.at, CallbackChangeRow.actor_kind)
                .add_columns(CallbackChangeRow.actor_name)
                .join(CallbackChangeRow, CallbackChangeRow.callback_id == CallbackRow.id)
                .where(CallbackChangeRow.state == CallbackState.CONNECTED.value)
            )
            reaches = [
                Reached(
                    number=number,
                    at=at,
                    by=f"callback:{callback_id}",
                    agent_id=name if kind == ActorKind.AGENT.value and name else None,
                )
                for callback_id, number, at, kind, name in connected.all()
            ]
        book = rebuild(records, config, reaches)
        folded = [r for r in records if r.ended_at is not None]

        async def work(connection: AsyncConnection) -> int:
            for table in (StatsIntervalRow, StatsMissedRow, StatsAppliedRow):
                await connection.execute(delete(table))
            if book.counts:
                await connection.execute(
                    insert(StatsIntervalRow),
                    [
                        {"queue": k.queue, "start": k.start, **{n: getattr(v, n) for n in COUNT_FIELDS}}
                        for k, v in book.counts.items()
                    ],
                )
            if book.missed:
                await connection.execute(
                    insert(StatsMissedRow), [_missed_values(m) for m in book.missed.values()]
                )
            if folded:
                await connection.execute(
                    insert(StatsAppliedRow), [{"call_id": r.id, "ended_at": r.ended_at} for r in folded]
                )
            return len(folded)

        return await self._write("rebuilding the statistics", work)

    async def intervals(
        self, since: datetime, until: datetime, queues: Sequence[str] | None = None
    ) -> tuple[tuple[IntervalKey, Counts], ...]:
        """Rows whose start lies in ``[since, until)``, by start then queue; all queues when ``None``."""
        query = select(StatsIntervalRow).where(
            StatsIntervalRow.start >= since, StatsIntervalRow.start < until
        )
        if queues is not None:
            query = query.where(StatsIntervalRow.queue.in_(list(queues)))
        query = query.order_by(StatsIntervalRow.start, StatsIntervalRow.queue)
        async with self._session("reading interval statistics") as session:
            rows = (await session.scalars(query)).all()
        return tuple((IntervalKey(queue=r.queue, start=r.start), _counts(r)) for r in rows)

    async def missed_calls(
        self,
        since: datetime,
        until: datetime,
        *,
        queue: str | None = None,
        status: str | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> Page[MissedCall]:
        """Missed calls that ended in ``[since, until)``, newest first; ``status`` ``open`` or ``closed``.

        :raises ValidationError: for a bad cursor.
        """
        query = select(StatsMissedRow).where(
            StatsMissedRow.ended_at >= since, StatsMissedRow.ended_at < until
        )
        if queue is not None:
            query = query.where(StatsMissedRow.queue == queue)
        if status == "open":
            query = query.where(StatsMissedRow.closed_at.is_(None), StatsMissedRow.closable.is_(True))
        elif status == "closed":
            query = query.where(StatsMissedRow.closed_at.is_not(None))
        if cursor is not None:
            key = decode_cursor(cursor)
            try:
                at, call_id = datetime.fromisoformat(str(key[0])), str(key[1])
            except (IndexError, ValueError) as exc:
                raise ValidationError("invalid cursor") from exc
            query = query.where(
                (StatsMissedRow.ended_at < at)
                | ((StatsMissedRow.ended_at == at) & (StatsMissedRow.call_id < call_id))
            )
        query = query.order_by(StatsMissedRow.ended_at.desc(), StatsMissedRow.call_id.desc()).limit(limit + 1)
        async with self._session("reading missed calls") as session:
            rows = (await session.scalars(query)).all()
        kept, next_cursor = _page(rows, limit, lambda r: (r.ended_at.isoformat(), r.call_id))
        return Page(items=tuple(_missed(r) for r in kept), next=next_cursor)

    async def missed_since(self, since: datetime) -> tuple[MissedCall, ...]:
        """Every missed call that ended at or after ``since`` (the live board's start)."""
        query = select(StatsMissedRow).where(StatsMissedRow.ended_at >= since)
        async with self._session("reading missed calls") as session:
            rows = (await session.scalars(query)).all()
        return tuple(_missed(r) for r in rows)

    async def get_setting(self, name: str) -> dict[str, Any] | None:
        """A wallboard setting's JSON document, ``None`` when never set."""
        async with self._session("reading a wallboard setting") as session:
            row = await session.get(WallboardSettingRow, name)
            return dict(row.value) if row is not None else None

    async def put_setting(self, name: str, value: dict[str, Any], at: datetime, by: str) -> None:
        """Replace a wallboard setting."""
        async with self._session("saving a wallboard setting", write=True) as session:
            statement = _upsert(self._engine, WallboardSettingRow).values(
                name=name, value=value, updated_at=at, updated_by=by
            )
            await session.execute(
                statement.on_conflict_do_update(
                    index_elements=[WallboardSettingRow.__table__.c.name],
                    set_={"value": value, "updated_at": at, "updated_by": by},
                )
            )

    async def answered_by_agent_since(self, since: datetime) -> dict[str, tuple[int, float]]:
        """Per agent: answered calls folded here that ended at or after ``since``, and their talk time."""
        query = (
            select(CallRow.agent_id, func.count(), func.coalesce(func.sum(CallRow.talk_s), 0.0))
            .join(StatsAppliedRow, StatsAppliedRow.call_id == CallRow.id)
            .where(
                StatsAppliedRow.ended_at >= since,
                CallRow.outcome == CallOutcome.ANSWERED.value,
                CallRow.agent_id.is_not(None),
            )
            .group_by(CallRow.agent_id)
        )
        async with self._session("reading agents' answered calls") as session:
            rows = (await session.execute(query)).all()
        return {str(agent): (int(calls), float(talk or 0.0)) for agent, calls, talk in rows}

    async def applied_since(self, since: datetime) -> tuple[str, ...]:
        """Ids of the calls folded into the rows that ended at or after ``since``."""
        query = select(StatsAppliedRow.call_id).where(StatsAppliedRow.ended_at >= since)
        async with self._session("reading folded calls") as session:
            return tuple((await session.scalars(query)).all())


def as_rows(items: Iterable[tuple[IntervalKey, Counts]]) -> dict[IntervalKey, Counts]:
    """Interval rows as a mapping (tests compare a rebuild with what was materialised)."""
    return dict(items)
