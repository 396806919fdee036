"""SQL tables and store of the callback dispatcher: attempts, sources, fencing tokens, do-not-call (edge).

Four tables, created by migration 0008, beside the callback tables of :mod:`.sql_callbacks`:

* ``callback_attempts``: one row per attempt, written in the same transaction as the callback's
  move to ``dialing`` and before any originate; its channel ids are derived from its id.
* ``callback_sources``: where each request for a callback came from; a duplicate request for an open
  callback adds a ``merged`` row to it instead of a second callback.
* ``dispatch_fences``: the highest fencing token that recorded a dial, per lease role. Recording a
  dial raises it with ``UPDATE ... WHERE token <= :token`` in the dial's own transaction, so a
  dispatcher that lost its lease (a smaller token) cannot record a dial, hence cannot dial.
* ``do_not_call``: numbers never dialled, checked in that same transaction.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any, Final, cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    UniqueConstraint,
    and_,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import Mapped, mapped_column

from callcenter.callbacks.attempts import Attempt, CallbackSource, SourceNote
from callcenter.callbacks.dispatch_ports import (
    CallbackDetails,
    Claim,
    ClaimedError,
    DoNotCallEntry,
    DoNotCallError,
    StaleLeaderError,
)
from callcenter.callbacks.ports import CallbackExistsError, StaleCallbackError
from callcenter.model.callbacks import Callback, CallbackChange
from callcenter.model.phone import ERASED_PREFIX
from callcenter.model.vocabulary import AttemptResult, CallbackState
from callcenter.store.sql_callbacks import (
    CallbackChangeRow,
    CallbackRow,
    SqlCallbackRepository,
    _callback_values,
    _change,
)
from callcenter.store.sql_models import Base, SerialId, UtcDateTime
from callcenter.store.sql_repos import _at, _upsert

#: Ids per ``IN (...)`` of :meth:`SqlDispatchStore.details` (well under every driver's parameter limit).
_CHUNK: Final = 500
# Columns a move may change (the rest are fixed at creation).
_FIXED: Final = ("id", "queue", "number", "kind", "requested_at", "slot_start", "client_key", "call_id")


class CallbackAttemptRow(Base):
    __tablename__ = "callback_attempts"

    id: Mapped[str] = mapped_column(String, primary_key=True)
    callback_id: Mapped[str] = mapped_column(ForeignKey("callbacks.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    number: Mapped[str] = mapped_column(String(32))
    fence: Mapped[int] = mapped_column(BigInteger)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime())
    agent_id: Mapped[str | None] = mapped_column(String)
    agent_tries: Mapped[int] = mapped_column(Integer)
    customer_dialled_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    answered_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    result: Mapped[str | None] = mapped_column(String(16))
    cause: Mapped[str] = mapped_column(String)

    __table_args__ = (
        UniqueConstraint("callback_id", "seq", name="uq_callback_attempts_callback_seq"),
        Index("ix_callback_attempts_open", "ended_at"),
    )


class CallbackSourceRow(Base):
    __tablename__ = "callback_sources"

    id: Mapped[int] = mapped_column(SerialId, primary_key=True, autoincrement=True)
    callback_id: Mapped[str] = mapped_column(ForeignKey("callbacks.id", ondelete="CASCADE"), index=True)
    source: Mapped[str] = mapped_column(String(24))
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    ref: Mapped[str] = mapped_column(String)
    note: Mapped[str] = mapped_column(String)
    merged: Mapped[bool] = mapped_column(Boolean)
    owner_agent: Mapped[str | None] = mapped_column(String)
    owner_until: Mapped[datetime | None] = mapped_column(UtcDateTime())


class DispatchFenceRow(Base):
    __tablename__ = "dispatch_fences"

    role: Mapped[str] = mapped_column(String, primary_key=True)
    token: Mapped[int] = mapped_column(BigInteger)


class DoNotCallRow(Base):
    __tablename__ = "do_not_call"

    number: Mapped[str] = mapped_column(String(32), primary_key=True)
    added_at: Mapped[datetime] = mapped_column(UtcDateTime())
    added_by: Mapped[str] = mapped_column(String)
    reason: Mapped[str] = mapped_column(String)


class CallbackClaimRow(Base):
    """An agent's claim on a callback, until it expires."""

    __tablename__ = "callback_claims"

    callback_id: Mapped[str] = mapped_column(ForeignKey("callbacks.id", ondelete="CASCADE"), primary_key=True)
    agent_id: Mapped[str] = mapped_column(String)
    until: Mapped[datetime] = mapped_column(UtcDateTime())


_CLAIMS: Final = cast(Table, CallbackClaimRow.__table__)
_ATTEMPTS: Final = cast(Table, CallbackAttemptRow.__table__)
_FENCES: Final = cast(Table, DispatchFenceRow.__table__)
_CALLBACKS: Final = cast(Table, CallbackRow.__table__)


def _attempt_values(attempt: Attempt) -> dict[str, object]:
    return {
        "id": attempt.id,
        "callback_id": attempt.callback_id,
        "seq": attempt.seq,
        "number": attempt.number,
        "fence": attempt.fence,
        "started_at": attempt.started_at,
        "agent_id": attempt.agent_id,
        "agent_tries": attempt.agent_tries,
        "customer_dialled_at": attempt.customer_dialled_at,
        "answered_at": attempt.answered_at,
        "ended_at": attempt.ended_at,
        "result": attempt.result.value if attempt.result else None,
        "cause": attempt.cause,
    }


def _attempt(row: CallbackAttemptRow | Any) -> Attempt:
    return Attempt(
        id=row.id,
        callback_id=row.callback_id,
        seq=row.seq,
        number=row.number,
        fence=row.fence,
        started_at=row.started_at,
        agent_id=row.agent_id,
        agent_tries=row.agent_tries,
        customer_dialled_at=row.customer_dialled_at,
        answered_at=row.answered_at,
        ended_at=row.ended_at,
        result=AttemptResult(row.result) if row.result else None,
        cause=row.cause,
    )


def _source_values(note: SourceNote) -> dict[str, object]:
    return {
        "callback_id": note.callback_id,
        "source": note.source.value,
        "at": note.at,
        "ref": note.ref,
        "note": note.note,
        "merged": note.merged,
        "owner_agent": note.owner_agent,
        "owner_until": note.owner_until,
    }


def _entry(row: DoNotCallRow) -> DoNotCallEntry:
    return DoNotCallEntry(number=row.number, added_at=row.added_at, added_by=row.added_by, reason=row.reason)


class SqlDispatchStore(SqlCallbackRepository):
    """The callback repository plus attempts, sources, fences and the do-not-call list
    (``callcenter.callbacks.dispatch_ports.DispatchStore``)."""

    async def add_with_source(
        self, callback: Callback, changes: tuple[CallbackChange, ...], source: SourceNote
    ) -> tuple[Callback, bool]:
        async def work(connection: AsyncConnection) -> None:
            await connection.execute(insert(CallbackRow), [_callback_values(callback, None)])
            await self._insert_changes(connection, changes)
            await connection.execute(insert(CallbackSourceRow), [_source_values(source)])

        try:
            stored = await self._create(callback, "storing a callback", work)
        except CallbackExistsError as exc:
            merged = SourceNote(
                callback_id=exc.existing_id,
                source=source.source,
                at=source.at,
                ref=source.ref,
                note=source.note,
                merged=True,
                owner_agent=source.owner_agent,
                owner_until=source.owner_until,
            )

            async def attach(connection: AsyncConnection) -> None:
                await connection.execute(insert(CallbackSourceRow), [_source_values(merged)])

            await self._write("merging a callback request", attach)
            return await self.get(exc.existing_id), False
        return stored, stored.id == callback.id

    async def due(self, now: datetime) -> tuple[Callback, ...]:
        query = (
            select(CallbackRow)
            .where(
                CallbackRow.state.in_((CallbackState.SCHEDULED.value, CallbackState.RETRY_WAIT.value)),
                CallbackRow.due_at <= _at(now),
            )
            .order_by(
                CallbackRow.due_at,
                func.coalesce(CallbackRow.enqueued_at, CallbackRow.requested_at),
                CallbackRow.id,
            )
        )
        return await self._all(query, "reading due callbacks")

    async def needing_attention(
        self, states: frozenset[CallbackState], *, requested_before: datetime, window_end_by: datetime
    ) -> tuple[Callback, ...]:
        query = select(CallbackRow).where(
            CallbackRow.state.in_(sorted(s.value for s in states)),
            or_(
                CallbackRow.requested_at <= _at(requested_before),
                and_(CallbackRow.first_dial_at.is_(None), CallbackRow.window_end <= _at(window_end_by)),
            ),
        )
        return await self._all(query.order_by(CallbackRow.requested_at, CallbackRow.id), "reading callbacks")

    async def owners(self, callback_ids: Collection[str], *, now: datetime) -> dict[str, str]:
        if not callback_ids:
            return {}
        ids = sorted(set(callback_ids))
        found: dict[str, str] = {}
        async with self._session("reading callback owners") as session:
            notes = await session.execute(
                select(CallbackSourceRow.callback_id, CallbackSourceRow.owner_agent)
                .where(
                    CallbackSourceRow.callback_id.in_(ids),
                    CallbackSourceRow.owner_agent.is_not(None),
                    or_(CallbackSourceRow.owner_until.is_(None), CallbackSourceRow.owner_until > _at(now)),
                )
                .order_by(CallbackSourceRow.id)
            )
            for callback_id, agent_id in notes.all():
                if agent_id is not None:
                    found.setdefault(callback_id, agent_id)
            claims = await session.execute(
                select(_CLAIMS.c.callback_id, _CLAIMS.c.agent_id).where(
                    _CLAIMS.c.callback_id.in_(ids), _CLAIMS.c.until > _at(now)
                )
            )
            for callback_id, agent_id in claims.all():
                found[callback_id] = agent_id  # a claim comes before a follow-up's own agent
        return found

    async def sources(self, callback_id: str) -> tuple[SourceNote, ...]:
        query = (
            select(CallbackSourceRow)
            .where(CallbackSourceRow.callback_id == callback_id)
            .order_by(CallbackSourceRow.id)
        )
        async with self._session("reading a callback's sources") as session:
            return tuple(_source(r) for r in (await session.scalars(query)).all())

    async def start_attempt(
        self, callback: Callback, change: CallbackChange, attempt: Attempt, *, role: str
    ) -> Attempt:
        """Fence, do-not-call, the conditional move and the attempt, in one transaction."""
        values = _moved_values(callback)
        previous = change.previous.value if change.previous else None

        async def work(connection: AsyncConnection) -> None:
            await self._fence(connection, role, attempt.fence)
            blocked = await connection.scalar(
                select(DoNotCallRow.number).where(DoNotCallRow.number == attempt.number)
            )
            if blocked is not None:
                raise DoNotCallError(f"{attempt.number} is on the do-not-call list")
            if attempt.number.startswith(ERASED_PREFIX):
                # A callback connected while its number was erased keeps the pseudonym: never dialled.
                raise DoNotCallError(f"callback {callback.id}: its number was erased")
            await _move_from(connection, callback.id, previous, values, why=": not dialled")
            await connection.execute(insert(CallbackAttemptRow), [_attempt_values(attempt)])
            await self._insert_changes(connection, (change,))

        await self._write("recording a callback dial", work)
        return attempt

    async def _fence(self, connection: AsyncConnection, role: str, token: int) -> None:
        """Refuse a token older than one already used for ``role``; raise the stored one to ``token``.

        On PostgreSQL, a token already stored is checked under a shared row lock: the dials of one
        leader do not queue behind each other's transactions, while a newer leader's raise (an
        update, which needs the row exclusively) waits for them to commit, and every dial of the old
        leader after it sees the newer token. SQLite serialises writers anyway: the row is updated.
        :raises StaleLeaderError:
        """
        stale = StaleLeaderError(f"dispatcher token {token} is stale: a newer dispatcher holds {role!r}")
        if self._engine.dialect.name == "postgresql":
            current = select(_FENCES.c.token).where(_FENCES.c.role == role)
            if await connection.scalar(current) == token:
                # Locked only now (a lock held before the update below could deadlock two raises).
                stored = await connection.scalar(current.with_for_update(read=True))
                if stored == token:
                    return
                if stored is not None and stored > token:
                    raise stale
        ensure = _upsert(self._engine, DispatchFenceRow).values(role=role, token=token)
        await connection.execute(ensure.on_conflict_do_nothing(index_elements=[_FENCES.c.role]))
        fenced = await connection.execute(
            update(_FENCES).where(_FENCES.c.role == role, _FENCES.c.token <= token).values(token=token)
        )
        if fenced.rowcount != 1:
            raise stale

    async def save_attempt(self, attempt: Attempt) -> Attempt:
        values = _attempt_values(attempt)
        del values["id"]

        async def work(connection: AsyncConnection) -> None:
            await connection.execute(
                update(_ATTEMPTS)
                .where(_ATTEMPTS.c.id == attempt.id, _ATTEMPTS.c.ended_at.is_(None))
                .values(**values)
            )

        await self._write("saving a callback attempt", work)
        return attempt

    async def end_attempt(self, callback: Callback, change: CallbackChange, attempt: Attempt) -> Attempt:
        values = _attempt_values(attempt)
        del values["id"]
        moved_values = _moved_values(callback)
        previous = change.previous.value if change.previous else None

        async def work(connection: AsyncConnection) -> bool:
            ended = await connection.execute(
                update(_ATTEMPTS)
                .where(_ATTEMPTS.c.id == attempt.id, _ATTEMPTS.c.ended_at.is_(None))
                .values(**values)
            )
            if ended.rowcount != 1:
                return False
            await _move_from(connection, callback.id, previous, moved_values)
            await self._insert_changes(connection, (change,))
            return True

        if not await self._write("ending a callback attempt", work):
            return next(a for a in await self.attempts(attempt.callback_id) if a.id == attempt.id)
        return attempt

    async def amend_attempt(self, callback: Callback, change: CallbackChange, attempt: Attempt) -> Attempt:
        """An ended attempt's new result and the callback's move, in one transaction."""
        values = _attempt_values(attempt)
        del values["id"]
        moved_values = _moved_values(callback)
        previous = change.previous.value if change.previous else None

        async def work(connection: AsyncConnection) -> None:
            await _move_from(connection, callback.id, previous, moved_values)
            amended = await connection.execute(
                update(_ATTEMPTS)
                .where(
                    _ATTEMPTS.c.id == attempt.id,
                    _ATTEMPTS.c.callback_id == callback.id,
                    _ATTEMPTS.c.ended_at.is_not(None),
                )
                .values(**values)
            )
            if amended.rowcount != 1:
                raise StaleCallbackError(f"attempt {attempt.id} of callback {callback.id} has not ended")
            await self._insert_changes(connection, (change,))

        await self._write("amending a callback attempt", work)
        return attempt

    async def close_with_follow_up(
        self,
        callback: Callback,
        change: CallbackChange,
        follow_up: Callback,
        follow_up_changes: tuple[CallbackChange, ...],
        source: SourceNote,
    ) -> Callback:
        """The callback's move and its new follow-up, in one transaction (the open callback's row is
        closed first, so the one-open-per-number index admits the follow-up)."""
        moved_values = _moved_values(callback)
        previous = change.previous.value if change.previous else None

        async def work(connection: AsyncConnection) -> None:
            await _move_from(connection, callback.id, previous, moved_values)
            await self._insert_changes(connection, (change,))
            await connection.execute(insert(CallbackRow), [_callback_values(follow_up, None)])
            await self._insert_changes(connection, follow_up_changes)
            await connection.execute(insert(CallbackSourceRow), [_source_values(source)])

        await self._write("closing a callback with its follow-up", work)
        return follow_up

    async def attempts(self, callback_id: str) -> tuple[Attempt, ...]:
        query = (
            select(CallbackAttemptRow)
            .where(CallbackAttemptRow.callback_id == callback_id)
            .order_by(CallbackAttemptRow.seq)
        )
        async with self._session("reading callback attempts") as session:
            return tuple(_attempt(r) for r in (await session.scalars(query)).all())

    async def open_attempts(self) -> tuple[Attempt, ...]:
        query = (
            select(CallbackAttemptRow)
            .where(CallbackAttemptRow.ended_at.is_(None))
            .order_by(CallbackAttemptRow.started_at, CallbackAttemptRow.id)
        )
        async with self._session("reading open callback attempts") as session:
            return tuple(_attempt(r) for r in (await session.scalars(query)).all())

    async def block_number(self, number: str, *, by: str, reason: str, at: datetime) -> DoNotCallEntry:
        async def work(connection: AsyncConnection) -> None:
            add = _upsert(self._engine, DoNotCallRow).values(
                number=number, added_at=at, added_by=by, reason=reason
            )
            await connection.execute(add.on_conflict_do_nothing(index_elements=["number"]))

        await self._write("adding to the do-not-call list", work)
        entry = await self.blocked(number)
        assert entry is not None
        return entry

    async def unblock_number(self, number: str) -> bool:
        async def work(connection: AsyncConnection) -> bool:
            gone = await connection.execute(delete(DoNotCallRow).where(DoNotCallRow.number == number))
            return bool(gone.rowcount)

        return await self._write("removing from the do-not-call list", work)

    async def claim(self, callback_id: str, agent_id: str, *, until: datetime, now: datetime) -> Claim:
        """Take (or extend) the claim unless another agent holds one that has not expired."""

        async def work(connection: AsyncConnection) -> Claim:
            row = (
                await connection.execute(select(_CLAIMS).where(_CLAIMS.c.callback_id == callback_id))
            ).first()
            if row is None:
                await connection.execute(
                    insert(_CLAIMS).values(callback_id=callback_id, agent_id=agent_id, until=until)
                )
            else:
                taken = await connection.execute(
                    update(_CLAIMS)
                    .where(
                        _CLAIMS.c.callback_id == callback_id,
                        or_(_CLAIMS.c.agent_id == agent_id, _CLAIMS.c.until <= _at(now)),
                    )
                    .values(agent_id=agent_id, until=until)
                )
                if taken.rowcount != 1:
                    held = _claim(row)
                    raise ClaimedError(
                        f"callback {callback_id} is claimed by agent {held.agent_id} until {held.until.isoformat()}",
                        held,
                    )
            return Claim(callback_id=callback_id, agent_id=agent_id, until=until)

        await self.get(callback_id)
        return await self._write("claiming a callback", work)

    async def release_claim(self, callback_id: str, agent_id: str) -> bool:
        async def work(connection: AsyncConnection) -> bool:
            gone = await connection.execute(
                delete(_CLAIMS).where(_CLAIMS.c.callback_id == callback_id, _CLAIMS.c.agent_id == agent_id)
            )
            return bool(gone.rowcount)

        return await self._write("releasing a callback claim", work)

    async def claim_of(self, callback_id: str, *, now: datetime) -> Claim | None:
        async with self._session("reading a callback claim") as session:
            row = await session.get(CallbackClaimRow, callback_id)
            return _claim(row) if row is not None and row.until > now else None

    async def details(self, callback_ids: Sequence[str], *, now: datetime) -> Mapping[str, CallbackDetails]:
        """Four reads for any number of callbacks (in chunks of :data:`_CHUNK` ids)."""
        ids = list(dict.fromkeys(callback_ids))
        sources: dict[str, list[SourceNote]] = {i: [] for i in ids}
        attempts: dict[str, list[Attempt]] = {i: [] for i in ids}
        claims: dict[str, Claim] = {}
        firsts: dict[str, CallbackChange] = {}
        async with self._session("reading callbacks' sources, attempts and claims") as session:
            for start in range(0, len(ids), _CHUNK):
                chunk = ids[start : start + _CHUNK]
                for row in await session.scalars(
                    select(CallbackSourceRow)
                    .where(CallbackSourceRow.callback_id.in_(chunk))
                    .order_by(CallbackSourceRow.id)
                ):
                    sources[row.callback_id].append(_source(row))
                for attempt_row in await session.scalars(
                    select(CallbackAttemptRow)
                    .where(CallbackAttemptRow.callback_id.in_(chunk))
                    .order_by(CallbackAttemptRow.callback_id, CallbackAttemptRow.seq)
                ):
                    attempts[attempt_row.callback_id].append(_attempt(attempt_row))
                for claim_row in await session.scalars(
                    select(CallbackClaimRow).where(
                        CallbackClaimRow.callback_id.in_(chunk), CallbackClaimRow.until > _at(now)
                    )
                ):
                    claims[claim_row.callback_id] = _claim(claim_row)
                first_ids = (
                    select(func.min(CallbackChangeRow.id))
                    .where(CallbackChangeRow.callback_id.in_(chunk))
                    .group_by(CallbackChangeRow.callback_id)
                )
                for change_row in await session.scalars(
                    select(CallbackChangeRow).where(CallbackChangeRow.id.in_(first_ids))
                ):
                    firsts[change_row.callback_id] = _change(change_row)
        return {
            i: CallbackDetails(
                sources=tuple(sources[i]),
                attempts=tuple(attempts[i]),
                claim=claims.get(i),
                first_change=firsts.get(i),
            )
            for i in ids
        }

    async def blocked(self, number: str) -> DoNotCallEntry | None:
        async with self._session("reading the do-not-call list") as session:
            row = await session.get(DoNotCallRow, number)
            return _entry(row) if row is not None else None

    async def blocked_numbers(self) -> tuple[DoNotCallEntry, ...]:
        async with self._session("reading the do-not-call list") as session:
            rows = (await session.scalars(select(DoNotCallRow).order_by(DoNotCallRow.number))).all()
            return tuple(_entry(r) for r in rows)


def _source(row: CallbackSourceRow) -> SourceNote:
    return SourceNote(
        callback_id=row.callback_id,
        source=CallbackSource(row.source),
        at=row.at,
        ref=row.ref,
        note=row.note,
        merged=row.merged,
        owner_agent=row.owner_agent,
        owner_until=row.owner_until,
    )


def _claim(row: CallbackClaimRow | Any) -> Claim:
    return Claim(callback_id=row.callback_id, agent_id=row.agent_id, until=row.until)


def _moved_values(callback: Callback) -> dict[str, object]:
    values = _callback_values(callback, None)
    for fixed in _FIXED:
        del values[fixed]
    return values


async def _move_from(
    connection: AsyncConnection, callback_id: str, previous: str | None, values: dict[str, Any], why: str = ""
) -> None:
    """Move a callback only from the state the change was decided in.

    :raises StaleCallbackError: it moved meanwhile (cancelled, closed, taken by another process).
    """
    moved = await connection.execute(
        update(_CALLBACKS)
        .where(_CALLBACKS.c.id == callback_id, _CALLBACKS.c.state == previous)
        .values(**values)
    )
    if moved.rowcount != 1:
        raise StaleCallbackError(f"callback {callback_id} is no longer {previous}{why}")
