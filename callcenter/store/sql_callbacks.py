"""SQL tables and repository of callbacks: records, their change log and slot bookings (edge).

Three tables, created by migration 0004:

* ``callbacks``: one row per callback. ``call_id`` names the call that asked for it without a foreign
  key: the queue service stores calls behind (write-behind), and a callback promised to a caller must
  never be refused because the call's row is a moment late. The partial unique index
  ``uq_callbacks_open_queue_number`` holds one open callback per (queue, number) on both dialects;
  ``client_key`` is unique (NULLs do not collide), which makes booking idempotent.
* ``callback_changes``: every state change with who or what caused it, append-only.
* ``callback_slots``: bookings held per (queue, slot start). A booking raises ``booked`` with one
  conditional ``UPDATE ... WHERE booked < capacity``: PostgreSQL re-checks the condition on the
  locked row after a concurrent update commits, SQLite runs one writer at a time, so concurrent
  bookings never take a slot past its capacity. The callback's insert is in the same transaction,
  so a refused insert (duplicate, key reuse) gives the place back.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any, Final, cast

from sqlalchemy import (
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    any_,
    bindparam,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.orm import Mapped, mapped_column

from callcenter.batching import Coalescer
from callcenter.callbacks.ports import CallbackExistsError, SlotFullError, StaleCallbackError
from callcenter.errors import ConflictError, NotFoundError
from callcenter.model.callbacks import Actor, Callback, CallbackChange, PromiseWindow
from callcenter.model.paging import Page, check_limit
from callcenter.model.vocabulary import ActorKind, AttemptResult, CallbackKind, CallbackState
from callcenter.store.pg_driver import DriverStatement, driver_read
from callcenter.store.sql_models import Base, SerialId, UtcDateTime
from callcenter.store.sql_repos import (
    OPERATION_TIMEOUT_S,
    _Attributes,
    _newest_first,
    _page,
    _SqlRepository,
    _upsert,
)

#: The states of an open callback as SQL text (the partial unique index's condition).
OPEN_STATES: Final = tuple(sorted(s.value for s in CallbackState if s.is_open))
_OPEN_SQL: Final = "state IN (" + ", ".join(f"'{s}'" for s in OPEN_STATES) + ")"
# Leaving a booked slot for these gives its place back.
_FREES_SLOT: Final = frozenset(
    {CallbackState.CANCELLED, CallbackState.EXPIRED, CallbackState.COMPLETED_INBOUND}
)
_OPEN_INDEX: Final = "uq_callbacks_open_queue_number"


class CallbackRow(Base):
    """One callback (``model.callbacks.Callback``)."""

    __tablename__ = "callbacks"

    id: Mapped[str] = mapped_column(String, primary_key=True)
    queue: Mapped[str] = mapped_column(String)
    number: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(24))
    call_id: Mapped[str | None] = mapped_column(String, index=True)
    requested_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())
    enqueued_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    due_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    window_start: Mapped[datetime] = mapped_column(UtcDateTime())
    window_end: Mapped[datetime] = mapped_column(UtcDateTime())
    window_early_ok: Mapped[bool] = mapped_column(Boolean)
    slot_start: Mapped[datetime | None] = mapped_column(UtcDateTime())
    client_key: Mapped[str | None] = mapped_column(String(128), unique=True)
    attempts: Mapped[int] = mapped_column(Integer)
    last_result: Mapped[str | None] = mapped_column(String(16))
    first_dial_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    handle_s: Mapped[float] = mapped_column(Float)

    __table_args__ = (
        Index(
            _OPEN_INDEX,
            "queue",
            "number",
            unique=True,
            postgresql_where=text(_OPEN_SQL),
            sqlite_where=text(_OPEN_SQL),
        ),
        Index("ix_callbacks_queue_state", "queue", "state"),
        Index("ix_callbacks_number", "number"),
        Index("ix_callbacks_requested_at", "requested_at"),
    )


class CallbackChangeRow(Base):
    """One state change of a callback, with its actor (``model.callbacks.CallbackChange``)."""

    __tablename__ = "callback_changes"

    id: Mapped[int] = mapped_column(SerialId, primary_key=True, autoincrement=True)
    callback_id: Mapped[str] = mapped_column(ForeignKey("callbacks.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    previous: Mapped[str | None] = mapped_column(String(24))
    state: Mapped[str] = mapped_column(String(24))
    actor_kind: Mapped[str] = mapped_column(String(16))
    actor_name: Mapped[str] = mapped_column(String)
    reason: Mapped[str] = mapped_column(String)
    result: Mapped[str | None] = mapped_column(String(16))


class CallbackSlotRow(Base):
    """Bookings held in one slot of one queue."""

    __tablename__ = "callback_slots"

    queue: Mapped[str] = mapped_column(String, primary_key=True)
    start: Mapped[datetime] = mapped_column(UtcDateTime(), primary_key=True)
    booked: Mapped[int] = mapped_column(Integer)


_CALLBACKS: Final = cast(Table, CallbackRow.__table__)
_SLOTS: Final = cast(Table, CallbackSlotRow.__table__)


def _callback(row: CallbackRow | Any) -> Callback:
    return Callback(
        id=row.id,
        queue=row.queue,
        number=row.number,
        kind=CallbackKind(row.kind),
        state=CallbackState(row.state),
        window=PromiseWindow(start=row.window_start, end=row.window_end, early_ok=row.window_early_ok),
        requested_at=row.requested_at,
        updated_at=row.updated_at,
        call_id=row.call_id,
        enqueued_at=row.enqueued_at,
        due_at=row.due_at,
        client_key=row.client_key,
        attempts=row.attempts,
        last_result=AttemptResult(row.last_result) if row.last_result else None,
        first_dial_at=row.first_dial_at,
        handle_s=row.handle_s,
    )


def _callback_values(callback: Callback, slot_start: datetime | None) -> dict[str, object]:
    return {
        "id": callback.id,
        "queue": callback.queue,
        "number": callback.number,
        "kind": callback.kind.value,
        "state": callback.state.value,
        "call_id": callback.call_id,
        "requested_at": callback.requested_at,
        "updated_at": callback.updated_at,
        "enqueued_at": callback.enqueued_at,
        "due_at": callback.due_at,
        "window_start": callback.window.start,
        "window_end": callback.window.end,
        "window_early_ok": callback.window.early_ok,
        "slot_start": slot_start,
        "client_key": callback.client_key,
        "attempts": callback.attempts,
        "last_result": callback.last_result.value if callback.last_result else None,
        "first_dial_at": callback.first_dial_at,
        "handle_s": callback.handle_s,
    }


def _change_values(change: CallbackChange) -> dict[str, object]:
    return {
        "callback_id": change.callback_id,
        "at": change.at,
        "previous": change.previous.value if change.previous else None,
        "state": change.state.value,
        "actor_kind": change.actor.kind.value,
        "actor_name": change.actor.name,
        "reason": change.reason,
        "result": change.result.value if change.result else None,
    }


def _change(row: CallbackChangeRow) -> CallbackChange:
    return CallbackChange(
        callback_id=row.callback_id,
        at=row.at,
        previous=CallbackState(row.previous) if row.previous else None,
        state=CallbackState(row.state),
        actor=Actor(ActorKind(row.actor_kind), row.actor_name),
        reason=row.reason,
        result=AttemptResult(row.result) if row.result else None,
    )


class SqlCallbackRepository(_SqlRepository):
    """Callbacks, their change log and slot bookings (``callcenter.callbacks.ports.CallbackRepository``)."""

    def __init__(self, engine: AsyncEngine, *, timeout_s: float = OPERATION_TIMEOUT_S) -> None:
        super().__init__(engine, timeout_s=timeout_s)
        self._open_for: Coalescer[tuple[str, str], Callback | None] = Coalescer(
            self._open_for_batch, max_batch=256, name="open-callbacks"
        )
        self._open_of: DriverStatement | None = None
        if engine.dialect.name == "postgresql":
            table = CallbackRow.__table__.c
            self._open_of = DriverStatement(
                select(CallbackRow.__table__)
                .where(
                    table.number == any_(bindparam("numbers", type_=ARRAY(String()))),
                    table.state == any_(bindparam("open", value=list(OPEN_STATES), type_=ARRAY(String()))),
                )
                .order_by(table.requested_at, table.id),
                engine.dialect,
            )

    async def add(self, callback: Callback, changes: tuple[CallbackChange, ...]) -> Callback:
        """Insert a new callback and its changes in one transaction (see the port)."""

        async def work(connection: AsyncConnection) -> None:
            await connection.execute(insert(CallbackRow), [_callback_values(callback, None)])
            await self._insert_changes(connection, changes)

        return await self._create(callback, "storing a callback", work)

    async def book(
        self, callback: Callback, changes: tuple[CallbackChange, ...], *, slot_start: datetime, capacity: int
    ) -> Callback:
        """Take a place in the slot and insert the callback, in one transaction (see the module docstring)."""
        table = _SLOTS

        async def work(connection: AsyncConnection) -> None:
            # The write comes first: on SQLite the transaction then holds the write lock throughout.
            ensure = _upsert(self._engine, CallbackSlotRow).values(
                queue=callback.queue, start=slot_start, booked=0
            )
            await connection.execute(
                ensure.on_conflict_do_nothing(index_elements=[table.c.queue, table.c.start])
            )
            taken = await connection.execute(
                update(table)
                .where(
                    table.c.queue == callback.queue, table.c.start == slot_start, table.c.booked < capacity
                )
                .values(booked=table.c.booked + 1)
            )
            if taken.rowcount != 1:
                raise SlotFullError(
                    f"the slot at {slot_start.isoformat()} of queue {callback.queue!r} is fully booked"
                )
            await connection.execute(insert(CallbackRow), [_callback_values(callback, slot_start)])
            await self._insert_changes(connection, changes)

        return await self._create(callback, "booking a callback slot", work)

    async def _create(self, callback: Callback, doing: str, work: Any) -> Callback:
        try:
            await self._write(doing, work)
        except ConflictError as exc:
            if isinstance(exc, SlotFullError | CallbackExistsError):
                raise
            return await self._explain_conflict(callback, exc)
        return callback

    async def _explain_conflict(self, callback: Callback, exc: ConflictError) -> Callback:
        """After a unique violation: the same request again, or a second open callback."""
        if callback.client_key is not None:
            same = await self.by_client_key(callback.client_key)
            if same is not None:
                if (same.queue, same.number, same.kind, same.window.start) != (
                    callback.queue,
                    callback.number,
                    callback.kind,
                    callback.window.start,
                ):
                    raise ConflictError(
                        f"client key {callback.client_key!r} was used for another callback request"
                    ) from exc
                return same
        existing = await self.open_for(callback.queue, callback.number)
        if existing is not None:
            raise CallbackExistsError(
                f"number {callback.number} already has an open callback ({existing.id}) in queue {callback.queue!r}",
                existing.id,
            ) from exc
        raise exc

    async def _insert_changes(self, connection: AsyncConnection, changes: Sequence[CallbackChange]) -> None:
        if changes:
            await connection.execute(insert(CallbackChangeRow), [_change_values(c) for c in changes])

    async def move(self, callback: Callback, change: CallbackChange) -> Callback:
        """Store the moved callback if the stored state is still ``change.previous`` (see the port)."""
        table = _CALLBACKS
        slots = _SLOTS
        values = _callback_values(callback, None)
        for fixed in ("id", "queue", "number", "kind", "requested_at", "slot_start", "client_key", "call_id"):
            del values[fixed]
        previous = change.previous.value if change.previous else None

        async def work(connection: AsyncConnection) -> bool:
            moved = await connection.execute(
                update(table).where(table.c.id == callback.id, table.c.state == previous).values(**values)
            )
            if moved.rowcount != 1:
                return False
            if change.state in _FREES_SLOT:
                slot = (
                    await connection.execute(
                        select(table.c.queue, table.c.slot_start).where(table.c.id == callback.id)
                    )
                ).one()
                if slot.slot_start is not None:
                    await connection.execute(
                        update(slots)
                        .where(
                            slots.c.queue == slot.queue, slots.c.start == slot.slot_start, slots.c.booked > 0
                        )
                        .values(booked=slots.c.booked - 1)
                    )
            await self._insert_changes(connection, (change,))
            return True

        if not await self._write("changing a callback", work):
            stored = await self.get(callback.id)
            raise StaleCallbackError(
                f"callback {callback.id} is {stored.state.value} now, not {previous}: read it again"
            )
        return callback

    async def get(self, callback_id: str) -> Callback:
        async with self._session("reading a callback") as session:
            row = await session.get(CallbackRow, callback_id)
            if row is None:
                raise NotFoundError(f"callback {callback_id!r} not found")
            return _callback(row)

    async def by_client_key(self, client_key: str) -> Callback | None:
        return await self._one(select(CallbackRow).where(CallbackRow.client_key == client_key))

    async def open_for(self, queue: str, number: str) -> Callback | None:
        """The number's open callback in ``queue`` (the oldest, should there be several).

        Concurrent calls share one query (every arriving caller is checked): a call made while a
        query is in flight goes with the next one, so it sees everything committed before it was made.
        """
        return await self._open_for((queue, number))

    async def _open_for_batch(self, keys: Sequence[tuple[str, str]]) -> list[Callback | None]:
        wanted = set(keys)
        found: dict[tuple[str, str], Callback] = {}
        numbers = {number for _, number in wanted}
        for row in await self._open_of_numbers("reading repeat callers' callbacks", numbers):
            if (row.queue, row.number) in wanted:
                found.setdefault((row.queue, row.number), _callback(row))
        return [found.get(key) for key in keys]

    async def _open_of_numbers(self, doing: str, numbers: Collection[str]) -> list[Any]:
        """The open callbacks of ``numbers`` in every queue, oldest first (rows read by attribute).

        On PostgreSQL one statement on asyncpg's own connection (:mod:`callcenter.store.pg_driver`):
        every arriving caller is checked.
        """
        if self._open_of is None:
            table = CallbackRow.__table__.c
            query = (
                select(CallbackRow.__table__)
                .where(table.number.in_(sorted(numbers)), table.state.in_(OPEN_STATES))
                .order_by(table.requested_at, table.id)
            )
            async with self._reading(doing) as connection:
                return list((await connection.execute(query)).all())
        statement, wanted = self._open_of, {"numbers": sorted(numbers)}
        records = await driver_read(
            self._engine,
            doing,
            lambda connection: statement.fetch(connection, wanted),
            timeout_s=self._timeout_s,
        )
        return [_Attributes(record) for record in records]

    async def open_for_number(self, number: str) -> tuple[Callback, ...]:
        return (await self.open_for_numbers((number,))).get(number, ())

    async def open_for_numbers(self, numbers: Collection[str]) -> dict[str, tuple[Callback, ...]]:
        if not numbers:
            return {}
        found: dict[str, list[Callback]] = {}
        for row in await self._open_of_numbers("reading numbers' callbacks", set(numbers)):
            found.setdefault(row.number, []).append(_callback(row))
        return {number: tuple(callbacks) for number, callbacks in found.items()}

    async def changes(self, callback_id: str) -> tuple[CallbackChange, ...]:
        await self.get(callback_id)
        query = (
            select(CallbackChangeRow)
            .where(CallbackChangeRow.callback_id == callback_id)
            .order_by(CallbackChangeRow.id)
        )
        async with self._session("reading a callback's changes") as session:
            return tuple(_change(r) for r in (await session.scalars(query)).all())

    async def booked(self, queue: str, since: datetime, until: datetime) -> Mapping[datetime, int]:
        query = select(CallbackSlotRow).where(
            CallbackSlotRow.queue == queue, CallbackSlotRow.start >= since, CallbackSlotRow.start < until
        )
        async with self._session("reading slot bookings") as session:
            return {row.start: row.booked for row in (await session.scalars(query)).all() if row.booked}

    async def in_state(
        self, queue: str | None, states: frozenset[CallbackState], *, kind: CallbackKind | None = None
    ) -> tuple[Callback, ...]:
        query = select(CallbackRow).where(CallbackRow.state.in_(sorted(s.value for s in states)))
        if queue is not None:
            query = query.where(CallbackRow.queue == queue)
        if kind is not None:
            query = query.where(CallbackRow.kind == kind.value)
        query = query.order_by(
            func.coalesce(CallbackRow.enqueued_at, CallbackRow.requested_at), CallbackRow.id
        )
        return await self._all(query, "reading callbacks")

    async def list(
        self, *, queue: str | None, state: CallbackState | None, cursor: str | None, limit: int
    ) -> Page[Callback]:
        check_limit(limit)
        query = select(CallbackRow)
        if queue is not None:
            query = query.where(CallbackRow.queue == queue)
        if state is not None:
            query = query.where(CallbackRow.state == state.value)
        query = _newest_first(query, CallbackRow.requested_at, CallbackRow.id, cursor, limit)
        async with self._session("listing callbacks") as session:
            rows = (await session.scalars(query)).all()
        kept, after = _page(rows, limit, lambda r: (r.requested_at.isoformat(), r.id))
        return Page(items=tuple(_callback(r) for r in kept), next=after)

    async def _one(self, query: Any) -> Callback | None:
        async with self._session("reading a callback") as session:
            row = (await session.scalars(query)).first()
            return _callback(row) if row is not None else None

    async def _all(self, query: Any, doing: str) -> tuple[Callback, ...]:
        async with self._session(doing) as session:
            return tuple(_callback(r) for r in (await session.scalars(query)).all())
