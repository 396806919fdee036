"""SQL repositories for calls, agents, queues, API tokens and the audit log (edge).

Each class implements a port of ``callcenter/queue/ports.py`` or ``callcenter/auth/ports.py`` on an
:class:`AsyncEngine`, returns ``model/`` records (never ORM rows) and maps database failures at this
boundary (:func:`callcenter.store.database.store_error`): unique violations to ``ConflictError``,
missing references and unknown ids to ``NotFoundError``, naive datetimes and other refused values to
``ValidationError``, an unreachable database to ``StoreUnavailableError``.

SQLite note: its driver opens a transaction only at the first write, and a WAL transaction that read
before writing can fail at once instead of waiting for the write lock. So every write is one statement,
or starts with its write, or reads only before it (those reads then run outside the transaction, and a
foreign key or unique constraint backs what they checked). PostgreSQL gets ``FOR UPDATE`` where a read
decides a write.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import date, datetime
from typing import Any, Final, Protocol, TypeVar, cast

import asyncpg
from sqlalchemy import (
    ColumnElement,
    CursorResult,
    String,
    Table,
    Text,
    Update,
    and_,
    any_,
    bindparam,
    case,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy import cast as cast_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql import Select
from sqlalchemy.sql.dml import UpdateBase

from callcenter.errors import NotFoundError, StoreUnavailableError, ValidationError
from callcenter.model.paging import Page, check_limit, decode_cursor, encode_cursor
from callcenter.model.records import (
    AgentRecord,
    ApiToken,
    AuditEntry,
    CallEvent,
    CallRecord,
    ExitAction,
    QueueRecord,
    queue_settings,
)
from callcenter.model.vocabulary import AgentState, CallOutcome, EntryPoint, Role
from callcenter.queue.detection import close_missed_calls
from callcenter.queue.ports import CallFilter, StepWrite
from callcenter.store.database import session_factory, store_error
from callcenter.store.pg_driver import DriverStatement, driver_transaction
from callcenter.store.sql_models import (
    AgentQueueRow,
    AgentRow,
    ApiTokenRow,
    AuditRow,
    CallEventRow,
    CallRow,
    QueueRow,
    UtcDateTime,
)

R = TypeVar("R")

#: Default bound on one repository call; a hung database becomes StoreUnavailableError, not a hang.
OPERATION_TIMEOUT_S: Final = 30.0


class _SqlRepository:
    def __init__(self, engine: AsyncEngine, *, timeout_s: float = OPERATION_TIMEOUT_S) -> None:
        """:param timeout_s: the longest one call may take, waiting for a connection included."""
        self._engine = engine
        self._sessions = session_factory(engine)
        # Reads on PostgreSQL run without a transaction: under READ COMMITTED each statement sees its
        # own snapshot either way, and it saves the BEGIN and the ROLLBACK, a round trip each.
        self._reads = (
            engine.execution_options(isolation_level="AUTOCOMMIT")
            if engine.dialect.name == "postgresql"
            else engine
        )
        self._read_sessions = session_factory(self._reads)
        self._timeout_s = timeout_s
        self._compiled: dict[tuple[UpdateBase, tuple[str, ...]], DriverStatement] = {}

    @asynccontextmanager
    async def _bounded(self, doing: str) -> AsyncIterator[None]:
        """At most ``timeout_s``; a timeout or a driver error becomes the store's own error."""
        try:
            async with asyncio.timeout(self._timeout_s):
                yield
        except TimeoutError as exc:
            where = self._engine.url.render_as_string(hide_password=True)
            raise StoreUnavailableError(
                f"SQL store at {where} did not answer within {self._timeout_s:g} s while {doing}"
            ) from exc
        except (StatementError, OSError) as exc:
            raise store_error(exc, self._engine.url, doing) from exc

    @asynccontextmanager
    async def _session(self, doing: str, *, write: bool = False) -> AsyncIterator[AsyncSession]:
        """A session; with ``write`` it is one transaction, committed on success, else rolled back.

        Without ``write`` it only reads: on PostgreSQL outside a transaction (see ``__init__``).
        """
        if not write:
            async with self._bounded(doing), self._read_sessions() as session:
                yield session
            return
        async with self._bounded(doing), self._sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def _reading(self, doing: str) -> AsyncIterator[AsyncConnection]:
        """A plain connection for reads (Core statements: no ORM session's cost on the hot path)."""
        async with self._bounded(doing), self._reads.connect() as connection:
            yield connection

    async def _write_rows(
        self, doing: str, statement: UpdateBase, rows: Sequence[Mapping[str, object]]
    ) -> None:
        """``statement`` for each of ``rows`` (one executemany) in one transaction, committed on success.

        On PostgreSQL on asyncpg's own connection (:mod:`callcenter.store.pg_driver`), at half the CPU.
        ``statement`` is built once (a module constant): its compiled form is kept per row shape.
        """
        if not rows:
            return
        if self._engine.dialect.name != "postgresql":
            await self._write(doing, lambda connection: connection.execute(statement, rows))
            return
        keys = tuple(rows[0])
        compiled = self._compiled.get((statement, keys))
        if compiled is None:
            compiled = self._compiled[(statement, keys)] = DriverStatement(
                statement, self._engine.dialect, column_keys=keys
            )
        await driver_transaction(
            self._engine, doing, lambda connection: compiled.many(connection, rows), timeout_s=self._timeout_s
        )

    async def _write(self, doing: str, work: Callable[[AsyncConnection], Awaitable[R]]) -> R:
        """``work`` in one transaction on a plain connection (no ORM session), committed on success.

        Without a pre-ping, a connection the server dropped (a restart, an idle timeout) is found
        broken by its first statement: SQLAlchemy then invalidates it and every older pooled connection.
        When that happens before ``work`` has finished, nothing was committed (the server rolled the
        transaction back with the connection), so ``work`` runs once more on a fresh connection. A failure
        while committing is never retried: the commit may have happened.
        """
        try:
            async with asyncio.timeout(self._timeout_s):
                for attempt in (1, 2):
                    async with self._engine.connect() as connection:
                        worked = False
                        try:
                            async with connection.begin():
                                result = await work(connection)
                                worked = True  # the commit follows, on leaving the block
                        except DBAPIError as exc:
                            if attempt == 1 and not worked and exc.connection_invalidated:
                                continue
                            raise
                        return result
                raise AssertionError("unreachable")  # pragma: no cover
        except TimeoutError as exc:
            where = self._engine.url.render_as_string(hide_password=True)
            raise StoreUnavailableError(
                f"SQL store at {where} did not answer within {self._timeout_s:g} s while {doing}"
            ) from exc
        except (StatementError, OSError) as exc:
            raise store_error(exc, self._engine.url, doing) from exc


def _upsert(engine: AsyncEngine, table: type[Any]) -> postgresql.Insert | sqlite.Insert:
    """The dialect's ``INSERT ... ON CONFLICT`` (one atomic statement on both dialects)."""
    if engine.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def _at(value: datetime) -> ColumnElement[datetime]:
    """A bound time that goes through ``UtcDateTime`` even where SQL cannot infer the type."""
    return literal(value, UtcDateTime())


def _page(
    rows: Sequence[R], limit: int, key: Callable[[R], tuple[str | int | float, ...]]
) -> tuple[Sequence[R], str | None]:
    """The first ``limit`` rows of ``limit + 1`` fetched, and the cursor after them if more exist."""
    if len(rows) <= limit:
        return rows, None
    kept = rows[:limit]
    return kept, encode_cursor(key(kept[-1]))


def _newest_first(
    query: Select[Any],
    at: InstrumentedAttribute[datetime],
    key: InstrumentedAttribute[Any],
    cursor: str | None,
    limit: int,
    *,
    second: type[str] | type[int] = str,
) -> Select[Any]:
    """``query`` newest first by ``at`` (ties by ``key``, descending), from after ``cursor`` (a
    ``(time, key)`` cursor :func:`_page` made), at most ``limit + 1`` rows: keyset paging.

    :raises ValidationError: for a cursor we did not make.
    """
    if cursor is not None:
        after_at, after_key = _time_cursor(cursor, second)
        query = query.where(or_(at < after_at, and_(at == after_at, key < after_key)))
    return query.order_by(at.desc(), key.desc()).limit(limit + 1)


def _latest_of_each(
    model: type[Any],
    group: InstrumentedAttribute[str],
    at: InstrumentedAttribute[datetime],
    key: InstrumentedAttribute[Any],
    groups: Collection[str],
    limit: int,
) -> Select[Any]:
    """The rows of ``model`` whose ``group`` is one of ``groups``, at most ``limit`` of each: the newest
    by ``at`` (ties by ``key``, descending), ordered by group and then newest first, in one query (a
    window function ranks each group's rows)."""
    newest_first = (at.desc(), key.desc())
    rank = func.row_number().over(partition_by=group, order_by=newest_first).label("rank")
    ranked = select(key, rank).where(group.in_(set(groups))).subquery()
    return (
        select(model)
        .join(ranked, ranked.c[key.key] == key)
        .where(ranked.c.rank <= limit)
        .order_by(group, *newest_first)
    )


def _time_cursor(cursor: str, second: type[str] | type[int]) -> tuple[datetime, Any]:
    """Decode a ``(time, id)`` cursor. :raises ValidationError: for anything we did not make."""
    key = decode_cursor(cursor)
    if len(key) != 2 or not isinstance(key[0], str) or type(key[1]) is not second:
        raise ValidationError("invalid cursor")
    try:
        at = datetime.fromisoformat(key[0])
    except ValueError as exc:
        raise ValidationError("invalid cursor") from exc
    if at.tzinfo is None:
        raise ValidationError("invalid cursor")
    return at, key[1]


# -- calls ---------------------------------------------------------------------------------------


def _call_values(call: CallRecord) -> dict[str, object]:
    return {
        "id": call.id,
        "channel_id": call.channel_id,
        "linkedid": call.linkedid,
        "entry_point": call.entry_point.value,
        "caller": call.caller,
        "caller_name": call.caller_name,
        "dialled": call.dialled,
        "queue": call.queue,
        "arrived_at": call.arrived_at,
        "queued_at": call.queued_at,
        "answered_at": call.answered_at,
        "ended_at": call.ended_at,
        "wait_s": call.wait_s,
        "talk_s": call.talk_s,
        "position": call.position,
        "agent_id": call.agent_id,
        "outcome": call.outcome.value if call.outcome is not None else None,
        "reconciled": call.reconciled,
        "closed_at": call.closed_at,
    }


def _call_record(row: CallRow) -> CallRecord:
    return CallRecord(
        id=row.id,
        channel_id=row.channel_id,
        linkedid=row.linkedid,
        entry_point=EntryPoint(row.entry_point),
        caller=row.caller,
        caller_name=row.caller_name,
        dialled=row.dialled,
        queue=row.queue,
        arrived_at=row.arrived_at,
        queued_at=row.queued_at,
        answered_at=row.answered_at,
        ended_at=row.ended_at,
        wait_s=row.wait_s,
        talk_s=row.talk_s,
        position=row.position,
        agent_id=row.agent_id,
        outcome=CallOutcome(row.outcome) if row.outcome is not None else None,
        reconciled=row.reconciled,
        closed_at=row.closed_at,
    )


#: One timeline entry, its id returned (``INSERT ... RETURNING`` on both dialects).
_EVENTS_TABLE: Final = cast(Table, CallEventRow.__table__)
_APPEND_EVENT: Final = insert(_EVENTS_TABLE).returning(_EVENTS_TABLE.c.id)


def _call_event(row: CallEventRow) -> CallEvent:
    return CallEvent(id=row.id, call_id=row.call_id, at=row.at, kind=row.kind, detail=dict(row.detail))


@functools.cache
def _call_upsert(dialect: str) -> postgresql.Insert | sqlite.Insert:
    """``INSERT INTO calls ... ON CONFLICT (id) DO UPDATE`` for ``dialect``, values left to bind.

    Built once: the 19 ``CASE`` expressions cost more CPU to build (and to derive SQLAlchemy's cache key
    from) than the database spends running the statement. A statement object reused keeps its cache key.
    """
    table = cast(Table, CallRow.__table__)
    insert = postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
    stored = table.c
    live = stored.outcome.is_(None)
    changes: dict[str, Any] = {}
    for column in stored:
        name = column.name
        if name == "id":
            continue
        new = insert.excluded[name]
        if name == "reconciled":
            changes[name] = case((live, new), else_=column)
            continue
        empty: ColumnElement[bool] = column.is_(None)
        if isinstance(column.type, String):
            empty = or_(empty, column == "")
        # SET expressions all see the row as it was, so `live` is the old outcome everywhere.
        changes[name] = case((or_(live, empty), new), else_=column)
    return insert.on_conflict_do_update(index_elements=[stored.id], set_=changes)


def _open_missed(caller: str, before: datetime) -> tuple[ColumnElement[bool], ...]:
    """Where a call is one of ``caller``'s missed calls not closed yet that arrived before ``before``."""
    return (
        CallRow.caller == caller,
        CallRow.outcome.is_not(None),
        CallRow.outcome != CallOutcome.ANSWERED.value,
        CallRow.closed_at.is_(None),
        CallRow.arrived_at < before,
    )


class SqlCallRepository(_SqlRepository):
    """Inbound calls (``CallRepository``) and, beyond the port, each call's event timeline."""

    async def upsert(self, call: CallRecord) -> None:
        """Insert or replace the call, in one ``INSERT ... ON CONFLICT`` statement.

        While the stored call has no outcome, every field is replaced. Once it has one, the outcome and
        every filled field stay as stored (they describe how the call ended); only empty fields (``None``
        or ``""``) are filled in, such as ``closed_at``. Concurrent upserts cannot mix two endings:
        the database applies them one after the other.

        The statement is built once per dialect (:func:`_call_upsert`); each call only binds values.

        :raises ValidationError: for a naive datetime.
        """
        statement = _call_upsert(self._engine.dialect.name)
        values = _call_values(call)

        async def work(connection: AsyncConnection) -> None:
            await connection.execute(statement, values)

        await self._write("saving a call", work)

    async def get(self, call_id: str) -> CallRecord:
        """:raises NotFoundError: for an unknown id."""
        async with self._session("reading a call") as session:
            row = await session.get(CallRow, call_id)
            if row is None:
                raise NotFoundError(f"call {call_id!r} not found")
            return _call_record(row)

    async def list(self, flt: CallFilter, *, cursor: str | None, limit: int) -> Page[CallRecord]:
        """Calls matching ``flt``, newest arrival first (ties by id, descending).

        ``since`` is inclusive and ``until`` exclusive, both on ``arrived_at``; ``caller`` matches exactly.

        :raises ValidationError: for a bad cursor or limit, or a naive ``since``/``until``.
        """
        check_limit(limit)
        query = select(CallRow)
        if flt.outcome is not None:
            query = query.where(CallRow.outcome == flt.outcome.value)
        if flt.queue is not None:
            query = query.where(CallRow.queue == flt.queue)
        if flt.caller is not None:
            query = query.where(CallRow.caller == flt.caller)
        if flt.since is not None:
            query = query.where(CallRow.arrived_at >= flt.since)
        if flt.until is not None:
            query = query.where(CallRow.arrived_at < flt.until)
        query = _newest_first(query, CallRow.arrived_at, CallRow.id, cursor, limit)
        async with self._session("listing calls") as session:
            rows = (await session.scalars(query)).all()
        kept, after = _page(rows, limit, lambda r: (r.arrived_at.isoformat(), r.id))
        return Page(items=tuple(_call_record(r) for r in kept), next=after)

    async def recent_of(self, callers: Collection[str], limit: int) -> dict[str, tuple[CallRecord, ...]]:
        """The latest ``limit`` calls of each of ``callers``, newest first (ties by id, descending),
        in one query; a caller without calls is left out."""
        if not callers:
            return {}
        query = _latest_of_each(CallRow, CallRow.caller, CallRow.arrived_at, CallRow.id, callers, limit)
        async with self._session("reading callers' recent calls") as session:
            rows = (await session.scalars(query)).all()
        recent: dict[str, list[CallRecord]] = {}
        for row in rows:
            recent.setdefault(row.caller, []).append(_call_record(row))
        return {caller: tuple(calls) for caller, calls in recent.items()}

    async def append_event(
        self, call_id: str, at: datetime, kind: str, detail: dict[str, object] | None = None
    ) -> CallEvent:
        """Add an entry to the call's timeline and return it with its id.

        Not de-duplicated: two entries of the same kind at the same instant can both be real (two
        agents rung at once).

        :raises NotFoundError: for an unknown call.
        :raises ValidationError: for a naive ``at`` or a ``detail`` that is not JSON.
        """
        body = dict(detail or {})
        values = {"call_id": call_id, "at": at, "kind": kind, "detail": body}

        async def work(connection: AsyncConnection) -> int:
            # One INSERT: an unknown call is the foreign key's violation, mapped to NotFoundError.
            return int((await connection.execute(_APPEND_EVENT, values)).scalar_one())

        event_id = await self._write("adding a call event", work)
        return CallEvent(id=event_id, call_id=call_id, at=at, kind=kind, detail=body)

    async def events(self, call_id: str) -> tuple[CallEvent, ...]:
        """The call's timeline, oldest first (ties in insertion order).

        :raises NotFoundError: for an unknown call.
        """
        async with self._session("reading a call's events") as session:
            if await session.get(CallRow, call_id) is None:
                raise NotFoundError(f"call {call_id!r} not found")
            rows = await session.scalars(
                select(CallEventRow)
                .where(CallEventRow.call_id == call_id)
                .order_by(CallEventRow.at, CallEventRow.id)
            )
            return tuple(_call_event(r) for r in rows)

    async def open_missed(self, caller: str, *, before: datetime) -> tuple[CallRecord, ...]:
        """The caller's missed calls not closed yet that arrived before ``before``, oldest first.

        Missed: decided with any outcome but ``answered``. Beyond the ``CallRepository`` port (proposed
        there): the queue service closes these once the caller is reached.

        :raises ValidationError: for a naive ``before``.
        """
        query = select(CallRow).where(*_open_missed(caller, before)).order_by(CallRow.arrived_at, CallRow.id)
        async with self._session("reading a caller's open missed calls") as session:
            rows = (await session.scalars(query)).all()
        return tuple(_call_record(r) for r in rows)

    async def undecided(self) -> tuple[CallRecord, ...]:
        """Calls with no outcome yet (live when this process stopped), oldest arrival first.

        Beyond the ``CallRepository`` port (proposed there): the queue service takes them back at
        start-up, so the resync after the ARI link connects decides them instead of losing them.
        """
        query = select(CallRow).where(CallRow.outcome.is_(None)).order_by(CallRow.arrived_at, CallRow.id)
        async with self._session("reading undecided calls") as session:
            rows = (await session.scalars(query)).all()
        return tuple(_call_record(r) for r in rows)


# -- queues --------------------------------------------------------------------------------------


def _queue_record(row: QueueRow) -> QueueRecord:
    hours = row.business_hours
    return QueueRecord(
        name=row.name,
        title=row.title,
        max_wait_s=row.max_wait_s,
        join_empty=row.join_empty,
        service_level_s=row.service_level_s,
        short_abandon_s=row.short_abandon_s,
        max_callers=row.max_callers,
        business_number=row.business_number,
        time_zone=row.time_zone,
        business_hours=None if hours is None else {day: tuple(spans) for day, spans in hours.items()},
        holidays=tuple(date.fromisoformat(day) for day in row.holidays),
        after_hours_action=ExitAction(row.after_hours_action),
        timeout_action=ExitAction(row.timeout_action),
        no_agents_action=ExitAction(row.no_agents_action),
        ring_timeout_s=row.ring_timeout_s,
        wrap_up_s=row.wrap_up_s,
        max_misses_before_pause=row.max_misses_before_pause,
    )


class SqlQueueRepository(_SqlRepository):
    """Queue settings (``QueueRepository``)."""

    async def put(self, queue: QueueRecord) -> None:
        """Create or replace the queue's settings (one atomic statement)."""
        values = queue_settings(queue)
        async with self._session("saving a queue", write=True) as session:
            insert = _upsert(self._engine, QueueRow).values(**values)
            changes = {name: insert.excluded[name] for name in values if name != "name"}
            await session.execute(insert.on_conflict_do_update(index_elements=["name"], set_=changes))

    async def get(self, name: str) -> QueueRecord:
        """:raises NotFoundError:"""
        async with self._session("reading a queue") as session:
            row = await session.get(QueueRow, name)
            if row is None:
                raise NotFoundError(f"queue {name!r} not found")
            return _queue_record(row)

    async def list(self) -> tuple[QueueRecord, ...]:
        """All queues by name."""
        async with self._session("listing queues") as session:
            rows = await session.scalars(select(QueueRow).order_by(QueueRow.name))
            return tuple(_queue_record(r) for r in rows)


# -- agents --------------------------------------------------------------------------------------


class SqlAgentRepository(_SqlRepository):
    """Agents and their queue membership (``AgentRepository``).

    ``AgentRecord.queues`` comes back sorted by name, without duplicates.
    """

    async def add(self, agent: AgentRecord) -> None:
        """Store a new agent with its queues, all or nothing.

        :raises ConflictError: if the id exists.
        :raises NotFoundError: naming the queues that do not exist.
        """
        queues = sorted(set(agent.queues))
        async with self._session("adding an agent", write=True) as session:
            await _require_queues(session, queues)
            session.add(
                AgentRow(
                    id=agent.id,
                    name=agent.name,
                    endpoint=agent.endpoint,
                    state=agent.state.value,
                    state_since=agent.state_since,
                )
            )
            # Flush the agent first: the membership rows refer to it.
            await session.flush()
            session.add_all(AgentQueueRow(agent_id=agent.id, queue=q) for q in queues)

    async def get(self, agent_id: str) -> AgentRecord:
        """:raises NotFoundError:"""
        async with self._session("reading an agent") as session:
            return await _agent(session, agent_id)

    async def list(self, *, cursor: str | None, limit: int) -> Page[AgentRecord]:
        """Agents ordered by id. :raises ValidationError: for a bad cursor or limit."""
        check_limit(limit)
        query = select(AgentRow).order_by(AgentRow.id).limit(limit + 1)
        if cursor is not None:
            key = decode_cursor(cursor)
            if len(key) != 1 or not isinstance(key[0], str):
                raise ValidationError("invalid cursor")
            query = query.where(AgentRow.id > key[0])
        async with self._session("listing agents") as session:
            rows = (await session.scalars(query)).all()
            kept, after = _page(rows, limit, lambda r: (r.id,))
            memberships = await _memberships(session, [r.id for r in kept])
        return Page(items=tuple(_agent_record(r, memberships.get(r.id, ())) for r in kept), next=after)

    async def set_state(self, agent_id: str, state: AgentState, at: datetime) -> AgentRecord:
        """Set the agent's state; ``state_since`` moves to ``at`` only when the state changes.

        Repeating the same state (a fact delivered twice) keeps the time the agent entered it.

        :raises NotFoundError:
        """
        statement = _set_agent_state(self._engine.dialect.name)
        params = {"agent": agent_id, "new_state": state.value, "at": at}

        async def work(connection: AsyncConnection) -> AgentRecord:
            row = (await connection.execute(statement, params)).one_or_none()
            if row is None:
                raise NotFoundError(f"agent {agent_id!r} not found")
            return AgentRecord(
                id=row.id,
                name=row.name,
                endpoint=row.endpoint,
                state=AgentState(row.state),
                queues=tuple(sorted(set(json.loads(row.queues or "[]")))),
                state_since=row.state_since,
            )

        return await self._write("changing an agent's state", work)

    async def set_queues(self, agent_id: str, queues: tuple[str, ...]) -> AgentRecord:
        """Replace the agent's queue membership, all or nothing.

        :raises NotFoundError: for the agent or a queue (naming the missing ones); nothing changes.
        """
        wanted = sorted(set(queues))
        async with self._session("changing an agent's queues", write=True) as session:
            # FOR UPDATE serialises concurrent replacements on PostgreSQL; SQLite's single writer does.
            found = await session.scalar(select(AgentRow.id).where(AgentRow.id == agent_id).with_for_update())
            if found is None:
                raise NotFoundError(f"agent {agent_id!r} not found")
            await _require_queues(session, wanted)
            await session.execute(delete(AgentQueueRow).where(AgentQueueRow.agent_id == agent_id))
            session.add_all(AgentQueueRow(agent_id=agent_id, queue=q) for q in wanted)
            await session.flush()
            return await _agent(session, agent_id)


def _agent_state_update() -> Update:
    """``UPDATE agents``: parameters ``agent``, ``new_state`` and ``at``; ``state_since`` moves on a change."""
    agents = cast(Table, AgentRow.__table__)
    new_state = bindparam("new_state", type_=String())
    unchanged = and_(agents.c.state == new_state, agents.c.state_since.is_not(None))
    return (
        update(agents)
        .where(agents.c.id == bindparam("agent", type_=String()))
        .values(
            state=new_state,
            state_since=case((unchanged, agents.c.state_since), else_=bindparam("at", type_=UtcDateTime())),
        )
    )


@functools.cache
def _set_agent_states(dialect: str) -> Update:
    """:func:`_agent_state_update` without ``RETURNING``, for many agents at once (executemany)."""
    return _agent_state_update()


@functools.cache
def _set_agent_state(dialect: str) -> Update:
    """``UPDATE agents ... RETURNING`` the agent and its queues (a JSON array), in one round trip.

    Parameters ``agent``, ``new_state`` and ``at``. ``state_since`` moves to ``at`` only when the state
    changes. The queues come from a subquery of the RETURNING clause; no row back means no such agent.
    """
    agents, memberships = cast(Table, AgentRow.__table__), cast(Table, AgentQueueRow.__table__)
    aggregate = func.json_agg if dialect == "postgresql" else func.json_group_array
    queues = (
        select(cast_(aggregate(memberships.c.queue), Text()))
        .where(memberships.c.agent_id == agents.c.id)
        .correlate(agents)
        .scalar_subquery()
    )
    return _agent_state_update().returning(
        agents.c.id,
        agents.c.name,
        agents.c.endpoint,
        agents.c.state,
        agents.c.state_since,
        queues.label("queues"),
    )


# -- queue steps, many at once ------------------------------------------------------------------


#: Many timeline entries at once (executemany: no ``RETURNING``, ids assigned in order).
_APPEND_EVENTS: Final = insert(_EVENTS_TABLE)
_CALLS_TABLE: Final = cast(Table, CallRow.__table__)


class SqlStepStore(_SqlRepository):
    """The queue service's write-behind batches in one transaction each (``StepStore``).

    One commit (one WAL flush on PostgreSQL) per batch instead of one per row, and each kind of row
    written with one multi-row statement (executemany) per stretch of the batch. On PostgreSQL the
    batch runs on asyncpg's own connection (:mod:`callcenter.store.pg_driver`): the same statements,
    at half the CPU; this runs for nearly every call.
    """

    def __init__(self, engine: AsyncEngine, *, timeout_s: float = OPERATION_TIMEOUT_S) -> None:
        super().__init__(engine, timeout_s=timeout_s)
        self._known_agents: set[str] = set()
        dialect = engine.dialect
        self._driver = _DriverStatements(dialect) if dialect.name == "postgresql" else None

    async def save_steps(self, steps: Sequence[StepWrite]) -> frozenset[str]:
        """Store ``steps`` in order, in one transaction; return the agent ids not in the store.

        The rows of a stretch of steps go as one statement per table: call rows (the same
        ``INSERT ... ON CONFLICT`` as :meth:`SqlCallRepository.upsert`, so the same rules), then
        timeline entries (their call rows are in by then), then agent states (the same rule as
        :meth:`SqlAgentRepository.set_state`). Each statement applies its rows in order, so a call or
        agent appearing twice ends as one after the other would. A stretch ends before a closing of
        missed calls whose caller has rows not yet written: that closing reads the store and must
        see every step before it.

        :raises StoreUnavailableError, ValidationError, NotFoundError: nothing was stored.
        """
        agent_ids = {state.agent_id for step in steps for state in step.states}

        async def work(statements: _StepStatements) -> frozenset[str]:
            # Only agents not seen stored before are looked up: one query less per batch. An agent
            # deleted since is then updated in vain (no row), only its warning is lost.
            missing = await statements.missing_agents(agent_ids - self._known_agents)
            batch = _StepRows(statements)
            for step in steps:
                if step.record is not None:
                    batch.add_call(step.record)
                batch.entries += (
                    {"call_id": e.call_id, "at": e.at, "kind": e.kind, "detail": dict(e.detail)}
                    for e in step.entries
                )
                batch.states += (
                    {"agent": s.agent_id, "new_state": s.state.value, "at": s.occurred_at}
                    for s in step.states
                    if s.agent_id not in missing
                )
                if step.close_missed is not None:
                    await batch.close_missed(*step.close_missed)
            await batch.flush()
            return missing

        doing = f"saving {len(steps)} queue steps"
        driver = self._driver
        if driver is not None:
            missing = await driver_transaction(
                self._engine,
                doing,
                lambda connection: work(_OnDriver(connection, driver)),
                timeout_s=self._timeout_s,
            )
        else:
            dialect = self._engine.dialect.name
            missing = await self._write(doing, lambda connection: work(_OnCore(connection, dialect)))
        self._known_agents |= agent_ids - missing
        return missing


def _missed_calls_query(callers: ColumnElement[bool], before: ColumnElement[datetime]) -> Select[Any]:
    """Decided missed calls of some callers, not closed, that arrived before a time; oldest first."""
    return (
        select(*_CALLS_TABLE.c)
        .where(
            callers,
            CallRow.outcome.is_not(None),
            CallRow.outcome != CallOutcome.ANSWERED.value,
            CallRow.closed_at.is_(None),
            CallRow.arrived_at < before,
        )
        .order_by(CallRow.arrived_at, CallRow.id)
    )


class _StepStatements(Protocol):
    """What a step batch runs, inside its transaction."""

    async def missing_agents(self, agent_ids: set[str]) -> frozenset[str]: ...

    async def missed_calls(self, callers: set[str], before: datetime) -> list[CallRecord]: ...

    async def write(
        self,
        calls: list[dict[str, object]],
        entries: list[dict[str, object]],
        states: list[dict[str, object]],
    ) -> None:
        """Call rows, then timeline entries, then agent states, each kind as one executemany."""


class _OnCore:
    """A step batch's statements through SQLAlchemy (SQLite)."""

    def __init__(self, connection: AsyncConnection, dialect: str) -> None:
        self._connection = connection
        self._upsert = _call_upsert(dialect)
        self._set_state = _set_agent_states(dialect)

    async def missing_agents(self, agent_ids: set[str]) -> frozenset[str]:
        return await _missing_agents(self._connection, agent_ids)

    async def missed_calls(self, callers: set[str], before: datetime) -> list[CallRecord]:
        query = _missed_calls_query(CallRow.caller.in_(callers), literal(before, UtcDateTime()))
        # A Core row has the ORM row's attribute names and types: what _call_record reads.
        return [_call_record(cast(CallRow, row)) for row in (await self._connection.execute(query)).all()]

    async def write(
        self,
        calls: list[dict[str, object]],
        entries: list[dict[str, object]],
        states: list[dict[str, object]],
    ) -> None:
        if calls:
            await self._connection.execute(self._upsert, calls)
        if entries:
            await self._connection.execute(_APPEND_EVENTS, entries)
        if states:
            await self._connection.execute(self._set_state, states)


class _DriverStatements:
    """The step batch's statements compiled once for asyncpg (PostgreSQL)."""

    def __init__(self, dialect: Dialect) -> None:
        agents = cast(Table, AgentRow.__table__)
        names = bindparam("ids", type_=ARRAY(String()))
        self.known_agents = DriverStatement(select(agents.c.id).where(agents.c.id == any_(names)), dialect)
        self.missed_calls = DriverStatement(
            _missed_calls_query(
                CallRow.caller == any_(bindparam("callers", type_=ARRAY(String()))),
                bindparam("before", type_=UtcDateTime()),
            ),
            dialect,
        )
        self.upsert = DriverStatement(_call_upsert(dialect.name), dialect)
        self.append = DriverStatement(
            _APPEND_EVENTS, dialect, column_keys=("call_id", "at", "kind", "detail")
        )
        self.set_state = DriverStatement(_set_agent_states(dialect.name), dialect)


class _OnDriver:
    """A step batch's statements on asyncpg's connection, inside its transaction (PostgreSQL)."""

    def __init__(self, connection: asyncpg.Connection, statements: _DriverStatements) -> None:
        self._connection = connection
        self._statements = statements

    async def missing_agents(self, agent_ids: set[str]) -> frozenset[str]:
        if not agent_ids:
            return frozenset()
        rows = await self._statements.known_agents.fetch(self._connection, {"ids": list(agent_ids)})
        return frozenset(agent_ids - {row[0] for row in rows})

    async def missed_calls(self, callers: set[str], before: datetime) -> list[CallRecord]:
        rows = await self._statements.missed_calls.fetch(
            self._connection, {"callers": sorted(callers), "before": before}
        )
        return [_call_record(cast(CallRow, _Attributes(row))) for row in rows]

    async def write(
        self,
        calls: list[dict[str, object]],
        entries: list[dict[str, object]],
        states: list[dict[str, object]],
    ) -> None:
        statements = self._statements
        await statements.upsert.many(self._connection, calls)
        await statements.append.many(self._connection, entries)
        await statements.set_state.many(self._connection, states)


class _Attributes:
    """An asyncpg record read by attribute, as a SQLAlchemy Core row is (times come back aware in UTC)."""

    __slots__ = ("_record",)

    def __init__(self, record: asyncpg.Record) -> None:
        self._record = record

    def __getattr__(self, name: str) -> object:
        try:
            return self._record[name]
        except KeyError:
            raise AttributeError(name) from None


class _StepRows:
    """The rows of a stretch of steps not written yet, on the batch's statements.

    Closings of missed calls are deferred and read together, with one query, when the stretch is
    written: what they read (a caller's decided missed calls not closed) is what the store held
    at the last write, as long as no row waiting in the stretch is a missed call of that caller;
    when one is, the stretch is written first.
    """

    def __init__(self, statements: _StepStatements) -> None:
        self._statements = statements
        self.calls: list[dict[str, object]] = []
        self.missed_callers: set[str] = set()
        self.closings: list[tuple[str, datetime]] = []
        self.entries: list[dict[str, object]] = []
        self.states: list[dict[str, object]] = []

    def add_call(self, record: CallRecord) -> None:
        self.calls.append(_call_values(record))
        if record.outcome is not None and record.outcome.is_missed:
            self.missed_callers.add(record.caller)

    async def close_missed(self, caller: str, reached_at: datetime) -> None:
        """Close the caller's open missed calls, as the store holds them after every step before."""
        if caller in self.missed_callers:
            await self.flush()
        self.closings.append((caller, reached_at))

    async def flush(self) -> None:
        await self._close()
        await self._statements.write(self.calls, self.entries, self.states)
        self.calls, self.entries, self.states = [], [], []
        self.missed_callers.clear()

    async def _close(self) -> None:
        closings, self.closings = self.closings, []
        if not closings:
            return
        missed = await self._statements.missed_calls(
            {caller for caller, _ in closings}, max(at for _, at in closings)
        )
        # In order: a call closed by an earlier closing keeps that time (the upsert keeps a filled
        # closed_at), as if each closing had read the store after the one before.
        for caller, reached_at in closings:
            for record in close_missed_calls(missed, caller=caller, reached_at=reached_at):
                self.calls.append(_call_values(record))


async def _missing_agents(connection: AsyncConnection, agent_ids: set[str]) -> frozenset[str]:
    if not agent_ids:
        return frozenset()
    agents = cast(Table, AgentRow.__table__)
    found = set((await connection.execute(select(agents.c.id).where(agents.c.id.in_(agent_ids)))).scalars())
    return frozenset(agent_ids - found)


async def _require_queues(session: AsyncSession, names: Sequence[str]) -> None:
    if not names:
        return
    known = set(await session.scalars(select(QueueRow.name).where(QueueRow.name.in_(names))))
    missing = [n for n in names if n not in known]
    if missing:
        raise NotFoundError(f"unknown queue(s): {', '.join(missing)}")


async def _memberships(session: AsyncSession, agent_ids: Sequence[str]) -> dict[str, tuple[str, ...]]:
    if not agent_ids:
        return {}
    rows = await session.execute(
        select(AgentQueueRow.agent_id, AgentQueueRow.queue)
        .where(AgentQueueRow.agent_id.in_(agent_ids))
        .order_by(AgentQueueRow.agent_id, AgentQueueRow.queue)
    )
    grouped: dict[str, list[str]] = {}
    for agent_id, queue in rows:
        grouped.setdefault(agent_id, []).append(queue)
    return {k: tuple(v) for k, v in grouped.items()}


async def _agent(session: AsyncSession, agent_id: str) -> AgentRecord:
    row = await session.get(AgentRow, agent_id, populate_existing=True)
    if row is None:
        raise NotFoundError(f"agent {agent_id!r} not found")
    memberships = await _memberships(session, [agent_id])
    return _agent_record(row, memberships.get(agent_id, ()))


def _agent_record(row: AgentRow, queues: tuple[str, ...]) -> AgentRecord:
    return AgentRecord(
        id=row.id,
        name=row.name,
        endpoint=row.endpoint,
        state=AgentState(row.state),
        queues=queues,
        state_since=row.state_since,
    )


# -- API tokens ----------------------------------------------------------------------------------


def _token(row: ApiTokenRow) -> ApiToken:
    return ApiToken(
        id=row.id,
        role=Role(row.role),
        agent_id=row.agent_id,
        label=row.label,
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
    )


class SqlTokenRepository(_SqlRepository):
    """API tokens by the hash of their secret (``TokenRepository``)."""

    async def add(self, token: ApiToken, secret_hash: str) -> None:
        """:raises ConflictError: if the id or hash exists. :raises NotFoundError: for an unknown agent."""
        async with self._session("adding an API token", write=True) as session:
            session.add(
                ApiTokenRow(
                    id=token.id,
                    secret_hash=secret_hash,
                    role=token.role.value,
                    agent_id=token.agent_id,
                    label=token.label,
                    created_at=token.created_at,
                    expires_at=token.expires_at,
                    revoked_at=token.revoked_at,
                    last_used_at=token.last_used_at,
                )
            )

    async def find_by_hash(self, secret_hash: str) -> ApiToken | None:
        """The token whose secret hashes to ``secret_hash``, revoked or expired ones included."""
        async with self._session("looking up an API token") as session:
            row = await session.scalar(select(ApiTokenRow).where(ApiTokenRow.secret_hash == secret_hash))
            return _token(row) if row is not None else None

    async def get(self, token_id: str) -> ApiToken:
        """:raises NotFoundError: for an unknown id."""
        async with self._session("reading an API token") as session:
            row = await session.get(ApiTokenRow, token_id)
            if row is None:
                raise NotFoundError(f"token {token_id!r} not found")
            return _token(row)

    async def list(self, *, cursor: str | None, limit: int) -> Page[ApiToken]:
        """Tokens, newest first (by ``created_at``, ties by id descending)."""
        check_limit(limit)
        query = _newest_first(select(ApiTokenRow), ApiTokenRow.created_at, ApiTokenRow.id, cursor, limit)
        async with self._session("listing API tokens") as session:
            rows = (await session.scalars(query)).all()
        kept, after = _page(rows, limit, lambda r: (r.created_at.isoformat(), r.id))
        return Page(items=tuple(_token(r) for r in kept), next=after)

    async def revoke(self, token_id: str, at: datetime) -> ApiToken:
        """Mark revoked; a second revoke keeps the first time. :raises NotFoundError:"""
        async with self._session("revoking an API token", write=True) as session:
            result = await session.execute(
                update(ApiTokenRow)
                .where(ApiTokenRow.id == token_id)
                .values(revoked_at=func.coalesce(ApiTokenRow.revoked_at, _at(at)))
                .execution_options(synchronize_session=False)
            )
            if cast(CursorResult[Any], result).rowcount == 0:
                raise NotFoundError(f"token {token_id!r} not found")
            row = await session.get(ApiTokenRow, token_id, populate_existing=True)
            assert row is not None  # updated just above, inside this transaction
            return _token(row)

    async def touch(self, token_id: str, at: datetime) -> None:
        """Record a use (best effort: an unknown id is ignored; times never move backwards)."""
        async with self._session("recording an API token use", write=True) as session:
            await session.execute(
                update(ApiTokenRow)
                .where(
                    ApiTokenRow.id == token_id,
                    or_(ApiTokenRow.last_used_at.is_(None), ApiTokenRow.last_used_at < at),
                )
                .values(last_used_at=at)
                .execution_options(synchronize_session=False)
            )


# -- audit log -----------------------------------------------------------------------------------


def _audit_entry(row: AuditRow) -> AuditEntry:
    return AuditEntry(
        id=row.id,
        at=row.at,
        actor=row.actor,
        role=Role(row.role) if row.role is not None else None,
        action=row.action,
        target=row.target,
        detail=dict(row.detail),
    )


class SqlAuditLog(_SqlRepository):
    """Append-only audit log (``AuditLog``)."""

    async def append(self, entry: AuditEntry) -> AuditEntry:
        """Store ``entry`` (its ``id`` is ignored) and return it with the id it was given.

        :raises ValidationError: for a naive ``at`` or a ``detail`` that is not JSON.
        """
        async with self._session("writing the audit log", write=True) as session:
            row = AuditRow(
                at=entry.at,
                actor=entry.actor,
                role=entry.role.value if entry.role is not None else None,
                action=entry.action,
                target=entry.target,
                detail=dict(entry.detail),
            )
            session.add(row)
            await session.flush()
            return dataclasses.replace(entry, id=row.id)

    async def list(self, *, cursor: str | None, limit: int) -> Page[AuditEntry]:
        """Entries, newest first (by ``at``, ties by id descending)."""
        check_limit(limit)
        query = _newest_first(select(AuditRow), AuditRow.at, AuditRow.id, cursor, limit, second=int)
        async with self._session("reading the audit log") as session:
            rows = (await session.scalars(query)).all()
        kept, after = _page(rows, limit, lambda r: (r.at.isoformat(), r.id))
        return Page(items=tuple(_audit_entry(r) for r in kept), next=after)
