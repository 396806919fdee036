"""SQL store of the SMS engine: contacts, consent ledger, outbox and threads, callback requests (edge).

Implements :class:`callcenter.sms.ports.SmsStore` on the engine of ``sql_repos.py`` with its error
mapping. The consent ledger is append-only: rows are inserted and, on erasure, only their readable
number and evidence text are blanked (the chain covers the keyed hash and a digest, which stay). The
outbox row is written before anything is sent; its unique ``key`` makes a redelivered trigger queue
nothing new, and claims move a row from ``queued`` to ``sending`` with a conditional UPDATE, so two
workers never take the same message.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import Any, Final, cast

from sqlalchemy import (
    ColumnElement,
    Integer,
    String,
    and_,
    bindparam,
    case,
    column,
    delete,
    func,
    insert,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.orm import aliased
from sqlalchemy.sql import Select
from sqlalchemy.sql.dml import Update

from callcenter.errors import CallCenterError, ConflictError, NotFoundError
from callcenter.model.paging import Page, check_limit
from callcenter.sms.consent import (
    ConsentAction,
    ConsentEntry,
    ConsentRecord,
    ConsentSource,
    chain,
    consent_event_id,
)
from callcenter.sms.encoding import segment_info
from callcenter.sms.outbox import (
    Cancelled,
    Deferred,
    Failed,
    GroupCommit,
    Handed,
    Outcome,
    Report,
    Sent,
    Unknown,
)
from callcenter.sms.ports import ClaimChecks, ReportApplied, SendFacts, SmsDay
from callcenter.sms.records import (
    CallbackRequest,
    CallbackRequestState,
    Contact,
    Direction,
    Erasure,
    MessageStatus,
    OutboundDraft,
    SmsMessage,
)
from callcenter.sms.rules import CAPPED_KINDS, MessageKind
from callcenter.store.sql_erasure import erase_outside_sms
from callcenter.store.sql_models import CallRow
from callcenter.store.sql_repos import _latest_of_each, _newest_first, _page, _SqlRepository, _upsert
from callcenter.store.sql_sms_models import SmsCallbackRequestRow, SmsConsentRow, SmsContactRow, SmsMessageRow

#: Kinds an opt-out cancels while they wait (compliance texts go regardless).
_CANCELLED_BY_OPT_OUT: Final = (
    MessageKind.FOLLOW_UP.value,
    MessageKind.MANUAL.value,
    MessageKind.REPLY.value,
    MessageKind.NOTICE.value,
)


def _contact(row: SmsContactRow) -> Contact:
    return Contact(
        number=row.number,
        name=row.name,
        language=row.language,
        time_zone=row.time_zone,
        region=row.region,
        notes=row.notes,
        first_contact_at=row.first_contact_at,
        last_contact_at=row.last_contact_at,
    )


def _consent(row: SmsConsentRow) -> ConsentRecord:
    return ConsentRecord(
        number_key=row.number_key,
        seq=row.seq,
        program=row.program,
        action=ConsentAction(row.action),
        source=ConsentSource(row.source),
        actor=row.actor,
        at=row.at,
        evidence_ref=row.evidence_ref,
        evidence_digest=row.evidence_digest,
        prev_hash=row.prev_hash,
        hash=row.hash,
    )


def _message(row: SmsMessageRow) -> SmsMessage:
    return SmsMessage(
        id=row.id,
        key=row.key,
        direction=Direction(row.direction),
        number=row.number,
        kind=MessageKind(row.kind) if row.kind else None,
        program=row.program,
        text=row.text,
        status=MessageStatus(row.status),
        created_at=row.created_at,
        due_at=row.due_at,
        sent_at=row.sent_at,
        updated_at=row.updated_at,
        attempts=row.attempts,
        provider=row.provider,
        provider_id=row.provider_id,
        error=row.error,
        call_id=row.call_id,
        intent=row.intent,
        segments=row.segments,
        encoding=row.encoding,
        actor=row.actor,
        needs_person=row.needs_person,
        claimed_until=row.claimed_until,
    )


#: What one queued draft came to: the message and whether it is new, or why its round failed.
Queued = tuple[SmsMessage, bool] | CallCenterError


def _queued(draft: OutboundDraft, message_id: str) -> SmsMessage:
    """The message a draft becomes when queued."""
    info = segment_info(draft.text)
    return SmsMessage(
        id=message_id,
        key=draft.key,
        direction=Direction.OUTBOUND,
        number=draft.number,
        kind=draft.kind,
        program=draft.program,
        text=draft.text,
        status=MessageStatus.QUEUED,
        created_at=draft.created_at,
        due_at=draft.due_at,
        updated_at=draft.created_at,
        call_id=draft.call_id,
        segments=info.segments,
        encoding=info.encoding.value,
        actor=draft.actor,
    )


def _queued_row(message: SmsMessage) -> dict[str, object]:
    return {
        "id": message.id,
        "key": message.key,
        "direction": message.direction.value,
        "number": message.number,
        "kind": message.kind.value if message.kind is not None else None,
        "program": message.program,
        "text": message.text,
        "status": message.status.value,
        "created_at": message.created_at,
        "due_at": message.due_at,
        "updated_at": message.updated_at,
        "call_id": message.call_id,
        "segments": message.segments,
        "encoding": message.encoding,
        "actor": message.actor,
    }


def _request(row: SmsCallbackRequestRow) -> CallbackRequest:
    return CallbackRequest(
        id=row.id,
        number=row.number,
        message_id=row.message_id,
        state=CallbackRequestState(row.state),
        requested_at=row.requested_at,
        cancelled_at=row.cancelled_at,
    )


class SqlSmsStore(_SqlRepository):
    """The SMS engine's store (:class:`~callcenter.sms.ports.SmsStore`)."""

    def __init__(self, engine: AsyncEngine, **kwargs: float) -> None:
        super().__init__(engine, **kwargs)
        self._ids = itertools.count()
        self._enqueues: GroupCommit[OutboundDraft, Queued] = GroupCommit(self._enqueue_round)

    def _new_id(self) -> str:
        """Outbound ids sort in queueing order (time, then a counter), so texts due together go in order."""
        return f"{time.time_ns():x}{next(self._ids) % 0xFFFF:04x}{uuid.uuid4().hex[:12]}"

    # -- contacts ---------------------------------------------------------------------------------

    async def get_contact(self, number: str) -> Contact | None:
        async with self._session("reading a contact") as session:
            row = await session.get(SmsContactRow, number)
            return _contact(row) if row is not None else None

    async def touch_contact(self, number: str, at: datetime) -> Contact:
        async def work(connection: AsyncConnection) -> None:
            upsert = _upsert(self._engine, SmsContactRow)
            await connection.execute(
                upsert.values(
                    number=number, first_contact_at=at, last_contact_at=at, updated_at=at
                ).on_conflict_do_update(
                    index_elements=[SmsContactRow.__table__.c.number],
                    set_={"last_contact_at": at},
                )
            )

        await self._write("recording a contact", work)
        contact = await self.get_contact(number)
        assert contact is not None
        return contact

    async def put_contact(self, contact: Contact, at: datetime) -> Contact:
        fields = {
            "name": contact.name,
            "language": contact.language,
            "time_zone": contact.time_zone,
            "region": contact.region,
            "notes": contact.notes,
            "updated_at": at,
        }

        async def work(connection: AsyncConnection) -> None:
            upsert = _upsert(self._engine, SmsContactRow)
            await connection.execute(
                upsert.values(number=contact.number, **fields).on_conflict_do_update(
                    index_elements=[SmsContactRow.__table__.c.number], set_=fields
                )
            )

        await self._write("saving a contact", work)
        stored = await self.get_contact(contact.number)
        assert stored is not None
        return stored

    # -- consent ledger ---------------------------------------------------------------------------

    async def consent_records(self, key: str) -> tuple[ConsentRecord, ...]:
        query = select(SmsConsentRow).where(SmsConsentRow.number_key == key).order_by(SmsConsentRow.seq)
        async with self._session("reading consent") as session:
            return tuple(_consent(row) for row in await session.scalars(query))

    async def append_consent(self, number: str | None, key: str, entry: ConsentEntry) -> ConsentRecord:
        # Chaining reads the last record; a concurrent append makes our (key, seq) collide with
        # theirs, and we chain again after it.
        for _ in range(20):
            records = await self.consent_records(key)
            record = chain(records[-1] if records else None, key, entry)

            async def work(connection: AsyncConnection, record: ConsentRecord = record) -> None:
                await connection.execute(
                    insert(SmsConsentRow).values(
                        number_key=record.number_key,
                        seq=record.seq,
                        number=number,
                        program=record.program,
                        action=record.action.value,
                        source=record.source.value,
                        actor=record.actor,
                        at=record.at,
                        evidence_ref=record.evidence_ref,
                        evidence_digest=record.evidence_digest,
                        evidence_text=entry.evidence_text or None,
                        prev_hash=record.prev_hash,
                        hash=record.hash,
                    )
                )

            try:
                await self._write("appending consent", work)
            except ConflictError:
                continue
            return record
        raise ConflictError("consent ledger: too many concurrent appends for one number")

    async def ledger(self, *, after_id: int, limit: int) -> Sequence[tuple[int, str | None, ConsentRecord]]:
        query = (
            select(SmsConsentRow).where(SmsConsentRow.id > after_id).order_by(SmsConsentRow.id).limit(limit)
        )
        async with self._session("reading the consent ledger") as session:
            return [(row.id, row.number, _consent(row)) for row in await session.scalars(query)]

    # -- outbox -----------------------------------------------------------------------------------

    async def enqueue(self, draft: OutboundDraft) -> tuple[SmsMessage, bool]:
        """Queue ``draft`` once per key. Concurrent calls share one transaction (a group commit: one
        multi-row insert); when that round fails, each of its drafts is tried in its own, so one bad
        draft fails alone."""
        result = await self._enqueues.submit(draft)
        if isinstance(result, CallCenterError):
            raise result
        return result

    async def _enqueue_round(self, drafts: Sequence[OutboundDraft]) -> list[Queued]:
        if len(drafts) > 1:
            try:
                return list(await self._enqueue_many(drafts))
            except CallCenterError:
                pass  # tried again one by one below: only the faulty draft fails
        results: list[Queued] = []
        for draft in drafts:
            try:
                results.extend(await self._enqueue_many((draft,)))
            except CallCenterError as exc:
                results.append(exc)
        return results

    async def _enqueue_many(self, drafts: Sequence[OutboundDraft]) -> list[tuple[SmsMessage, bool]]:
        """Insert the drafts whose key is new in one statement; the others are read back as stored."""
        first: dict[str, SmsMessage] = {}
        for draft in drafts:
            if draft.key not in first:
                first[draft.key] = _queued(draft, self._new_id())
        rows = [_queued_row(m) for m in first.values()]

        async def work(connection: AsyncConnection) -> tuple[set[str], dict[str, SmsMessageRow]]:
            # One statement built once, run for all the rows (SQLAlchemy's "insertmanyvalues" sends
            # them as one multi-row INSERT): no statement to build and compile per round.
            statement = _ENQUEUE[self._engine.dialect.name == "postgresql"]
            inserted = {row.key for row in await connection.execute(statement, rows)}
            existing: dict[str, SmsMessageRow] = {}
            missing = [key for key in first if key not in inserted]
            if missing:
                query = select(SmsMessageRow).where(SmsMessageRow.key.in_(missing))
                for row in await connection.execute(query):
                    existing[row.key] = cast(SmsMessageRow, row)
            return inserted, existing

        inserted, existing = await self._write("queueing messages", work)
        results: list[tuple[SmsMessage, bool]] = []
        taken: set[str] = set()
        for draft in drafts:
            key = draft.key
            if key in inserted and key not in taken:
                taken.add(key)
                # Stored as given: no need to read it back.
                results.append((first[key], True))
            elif key in inserted:
                results.append((first[key], False))  # the same key twice in one round
            else:
                results.append((_message(existing[key]), False))
        return results

    async def claim_due(
        self, now: datetime, *, lease_s: float, limit: int, checks: ClaimChecks | None = None
    ) -> tuple[SmsMessage, ...]:
        claim = _CLAIM[self._engine.dialect.name == "postgresql"]
        params = {"c_now": now, "c_until": now + timedelta(seconds=lease_s), "c_limit": limit}

        async def work(connection: AsyncConnection) -> tuple[SmsMessage, ...]:
            # The claiming statement returns the rows: no second read per batch.
            rows = await connection.execute(claim, params)
            messages = tuple(
                sorted(
                    (_message(cast(SmsMessageRow, row)) for row in rows),
                    key=lambda m: (m.due_at or m.created_at, m.id),
                )
            )
            fresh = [m for m in messages if not m.provider]
            if checks is not None and fresh:
                targets = [(m.number, checks.key(m.number)) for m in fresh]
                facts = await _read_facts(connection, targets, checks.since)
                outcomes = await checks.decide(fresh, facts)
                await _store_outcomes(connection, outcomes, now)
            return messages

        return await self._write("claiming due messages", work)

    async def record_outcomes(self, outcomes: Sequence[Outcome], at: datetime) -> dict[str, datetime]:
        """Store what the sender did with a batch of claimed messages, in one transaction; returns the
        ids of the :class:`Handed` messages whose hand-over was stored, each with the ``claimed_until``
        it now has (its hold).

        Each kind of outcome is one executemany; every update is conditional on the message still
        being ``sending`` (or ``queued``, for a late "sent"), so a report or an opt-out that moved it
        meanwhile is never overwritten. A hand-over also needs the claim it names to be the message's
        (``claimed_until`` as claimed, nothing handed over yet): one statement with ``RETURNING``
        says which were stored.
        """
        if not outcomes:
            return {}
        return await self._write("recording what the sender did", lambda c: _store_outcomes(c, outcomes, at))

    async def _set(self, doing: str, message_id: str, *conditions: object, **values: object) -> int:
        async def work(connection: AsyncConnection) -> int:
            result = await connection.execute(
                update(SmsMessageRow).where(SmsMessageRow.id == message_id, *conditions).values(**values)  # type: ignore[arg-type]
            )
            return int(result.rowcount)

        return await self._write(doing, work)

    async def defer(self, message_id: str, until: datetime, reason: str, at: datetime) -> None:
        await self.record_outcomes([Deferred(message_id, until, reason)], at)

    async def mark_sent(self, message_id: str, provider: str, provider_id: str, at: datetime) -> None:
        await self.record_outcomes([Sent(message_id, provider, provider_id, at)], at)

    async def mark_failed(
        self, message_id: str, error: str, at: datetime, *, retry_at: datetime | None
    ) -> None:
        await self.record_outcomes([Failed(message_id, error, retry_at)], at)

    async def cancel(self, message_id: str, reason: str, at: datetime) -> None:
        await self.record_outcomes([Cancelled(message_id, reason)], at)

    async def cancel_pending(self, number: str, reason: str, at: datetime) -> int:
        """Cancel ``number``'s capped and reply messages not yet handed to a provider (an opt-out).

        That is the queued ones and those a sender has claimed (even checked) but not handed over:
        the sender's hand-over then finds the text cancelled and does not send it. A text already
        handed over (``provider`` set) may be on its way and cannot be recalled.
        """

        async def work(connection: AsyncConnection) -> int:
            result = await connection.execute(
                update(SmsMessageRow)
                .where(
                    SmsMessageRow.number == number,
                    or_(
                        SmsMessageRow.status == MessageStatus.QUEUED.value,
                        and_(SmsMessageRow.status == _SENDING, SmsMessageRow.provider == ""),
                    ),
                    SmsMessageRow.kind.in_(_CANCELLED_BY_OPT_OUT),
                )
                .values(status=MessageStatus.CANCELLED.value, error=reason, updated_at=at, claimed_until=None)
            )
            return int(result.rowcount)

        return await self._write("cancelling pending messages", work)

    async def cancel_queued(
        self, number: str, prefixes: Sequence[str], keep: str, reason: str, at: datetime
    ) -> int:
        """Cancel ``number``'s queued messages whose key starts with one of ``prefixes`` (but ``keep``)."""
        if not prefixes:
            return 0

        async def work(connection: AsyncConnection) -> int:
            result = await connection.execute(
                update(SmsMessageRow)
                .where(
                    SmsMessageRow.number == number,
                    SmsMessageRow.status == MessageStatus.QUEUED.value,
                    or_(*(SmsMessageRow.key.startswith(p, autoescape=True) for p in prefixes)),
                    SmsMessageRow.key != keep,
                )
                .values(status=MessageStatus.CANCELLED.value, error=reason, updated_at=at)
            )
            return int(result.rowcount)

        return await self._write("cancelling queued notices", work)

    async def delivery_report(
        self, provider: str, provider_id: str, status: MessageStatus, error: str, at: datetime
    ) -> ReportApplied:
        (applied,) = await self.delivery_reports([Report(provider, provider_id, status, error)], at)
        return applied

    async def delivery_reports(self, reports: Sequence[Report], at: datetime) -> list[ReportApplied]:
        """Each report applied in arrival order, in one transaction: on PostgreSQL as one statement
        per round (two when a round holds two reports on one message), elsewhere one per report."""
        if not reports:
            return []
        if self._engine.dialect.name == "postgresql":
            return await self._write("applying delivery reports", lambda c: _apply_round(c, reports, at))
        # Rows are locked in one order (by id) so two processes' batches never deadlock each other.
        order = sorted(range(len(reports)), key=lambda i: reports[i].provider_id)

        async def work(connection: AsyncConnection) -> list[ReportApplied]:
            applied: dict[int, ReportApplied] = {}
            for i in order:
                applied[i] = await _apply_report(connection, reports[i], at)
            return [applied[i] for i in range(len(reports))]

        return await self._write("applying delivery reports", work)

    async def sent_times(
        self, number: str, since: datetime, *, kinds: tuple[MessageKind, ...] = CAPPED_KINDS
    ) -> tuple[datetime, ...]:
        query = select(SmsMessageRow.sent_at).where(
            SmsMessageRow.number == number,
            SmsMessageRow.kind.in_([k.value for k in kinds]),
            SmsMessageRow.sent_at.is_not(None),
            SmsMessageRow.sent_at > since,
        )
        async with self._session("counting sent messages") as session:
            return tuple(t for t in await session.scalars(query) if t is not None)

    async def send_facts(self, number: str, key: str, since: datetime) -> SendFacts:
        consent = select(SmsConsentRow).where(SmsConsentRow.number_key == key).order_by(SmsConsentRow.seq)
        sends = select(SmsMessageRow.kind, SmsMessageRow.sent_at).where(
            SmsMessageRow.number == number,
            SmsMessageRow.kind.in_([k.value for k in (*CAPPED_KINDS, MessageKind.FOLLOW_UP)]),
            SmsMessageRow.sent_at > since,
        )
        async with self._session("reading what a send depends on") as session:
            records = tuple(_consent(r) for r in await session.scalars(consent))
            contact = await session.get(SmsContactRow, number)
            sent = (await session.execute(sends)).all()
        capped = {k.value for k in CAPPED_KINDS}
        return SendFacts(
            consent=records,
            contact=_contact(contact) if contact is not None else None,
            capped_sends=tuple(at for kind, at in sent if kind in capped and at is not None),
            follow_up_sends=tuple(
                at for kind, at in sent if kind == MessageKind.FOLLOW_UP.value and at is not None
            ),
        )

    async def send_facts_many(
        self, targets: Sequence[tuple[str, str]], since: datetime
    ) -> dict[str, SendFacts]:
        """:meth:`send_facts` of many ``(number, key)`` at once (three queries), keyed by number."""
        if not targets:
            return {}
        async with self._session("reading what a batch of sends depends on") as session:
            return await _read_facts(await session.connection(), targets, since)

    async def last_follow_up(self, number: str) -> datetime | None:
        query = select(func.max(SmsMessageRow.created_at)).where(
            SmsMessageRow.number == number,
            SmsMessageRow.kind == MessageKind.FOLLOW_UP.value,
            SmsMessageRow.status != MessageStatus.CANCELLED.value,
        )
        async with self._session("reading the last follow-up") as session:
            value = await session.scalar(query)
        # func.max bypasses the column type on SQLite: restore an aware time.
        return CallRow.__table__.c.arrived_at.type.process_result_value(value, self._engine.dialect)  # type: ignore[attr-defined,no-any-return]

    # -- inbound and threads ----------------------------------------------------------------------

    async def record_inbound(self, message: SmsMessage) -> tuple[SmsMessage, bool]:
        key = f"in:{message.provider}:{message.provider_id}" if message.provider_id else f"in:{message.id}"
        info = segment_info(message.text)

        async def work(connection: AsyncConnection) -> int:
            upsert = _upsert(self._engine, SmsMessageRow)
            result = await connection.execute(
                upsert.values(
                    id=message.id,
                    key=key,
                    direction=Direction.INBOUND.value,
                    number=message.number,
                    kind=None,
                    program=message.program,
                    text=message.text,
                    status=MessageStatus.RECEIVED.value,
                    created_at=message.created_at,
                    updated_at=message.created_at,
                    provider=message.provider,
                    provider_id=message.provider_id,
                    intent=message.intent,
                    segments=info.segments,
                    encoding=info.encoding.value,
                    actor=message.actor,
                    needs_person=message.needs_person,
                ).on_conflict_do_nothing(index_elements=[SmsMessageRow.__table__.c.key])
            )
            return int(result.rowcount)

        created = await self._write("recording an inbound message", work) == 1
        async with self._session("reading a message") as session:
            row = (await session.scalars(select(SmsMessageRow).where(SmsMessageRow.key == key))).one()
            return _message(row), created

    async def get_message(self, message_id: str) -> SmsMessage:
        async with self._session("reading a message") as session:
            row = await session.get(SmsMessageRow, message_id)
            if row is None:
                raise NotFoundError(f"message {message_id!r} not found")
            return _message(row)

    async def messages(
        self, *, number: str | None, needs_person: bool | None, cursor: str | None, limit: int
    ) -> Page[SmsMessage]:
        check_limit(limit)
        query = select(SmsMessageRow)
        if number is not None:
            query = query.where(SmsMessageRow.number == number)
        if needs_person is not None:
            query = query.where(SmsMessageRow.needs_person.is_(needs_person))
        query = _newest_first(query, SmsMessageRow.created_at, SmsMessageRow.id, cursor, limit)
        async with self._session("listing messages") as session:
            rows = list(await session.scalars(query))
        kept, next_cursor = _page(rows, limit, lambda r: (r.created_at.isoformat(), r.id))
        return Page(items=tuple(_message(r) for r in kept), next=next_cursor)

    async def latest_of(self, numbers: Collection[str], limit: int) -> dict[str, tuple[SmsMessage, ...]]:
        """The latest ``limit`` messages with each of ``numbers``, newest first (ties by id,
        descending), in one query; a number without messages is left out."""
        if not numbers:
            return {}
        model = SmsMessageRow
        query = _latest_of_each(model, model.number, model.created_at, model.id, numbers, limit)
        async with self._session("reading numbers' latest messages") as session:
            rows = list(await session.scalars(query))
        latest: dict[str, list[SmsMessage]] = {}
        for row in rows:
            latest.setdefault(row.number, []).append(_message(row))
        return {number: tuple(messages) for number, messages in latest.items()}

    async def mark_handled(self, message_id: str) -> SmsMessage:
        if await self._set("marking a message handled", message_id, needs_person=False) == 0:
            raise NotFoundError(f"message {message_id!r} not found")
        return await self.get_message(message_id)

    async def resolve_unknown(self, message_id: str, *, resend: bool, actor: str, at: datetime) -> bool:
        values: dict[str, object] = {"needs_person": False, "updated_at": at, "claimed_until": None}
        if resend:
            values |= {"status": MessageStatus.QUEUED.value, "due_at": at, "provider": ""}
            values["error"] = f"re-sent by {actor} after an unknown outcome"[:500]
        else:
            values |= {"status": MessageStatus.FAILED.value}
            values["error"] = f"closed by {actor}: may or may not have reached the phone"[:500]
        return (
            await self._set(
                "deciding on an unknown message",
                message_id,
                SmsMessageRow.status == MessageStatus.UNKNOWN.value,
                **values,
            )
            == 1
        )

    async def mark_needs_person(self, message_id: str, note: str) -> None:
        await self._set("putting a message before a person", message_id, needs_person=True, error=note[:500])

    async def day_activity(self, since: datetime) -> SmsDay:
        outbound = SmsMessageRow.direction == Direction.OUTBOUND.value
        sent = select(SmsMessageRow.id, SmsMessageRow.sent_at).where(outbound, SmsMessageRow.sent_at >= since)
        delivered = select(SmsMessageRow.id, SmsMessageRow.updated_at).where(
            outbound,
            SmsMessageRow.status == MessageStatus.DELIVERED.value,
            SmsMessageRow.updated_at >= since,
        )
        opt_outs = select(SmsConsentRow.number_key, SmsConsentRow.evidence_ref, SmsConsentRow.at).where(
            SmsConsentRow.action == ConsentAction.OPT_OUT.value, SmsConsentRow.at >= since
        )
        async with self._session("reading the day's texts and opt-outs") as session:
            sent_rows = (await session.execute(sent)).all()
            delivered_rows = (await session.execute(delivered)).all()
            opt_out_rows = (await session.execute(opt_outs)).all()
        return SmsDay(
            sent=tuple((r.id, r.sent_at) for r in sent_rows if r.sent_at is not None),
            delivered=tuple((r.id, r.updated_at) for r in delivered_rows if r.updated_at is not None),
            opt_outs=tuple((consent_event_id(r.number_key, r.evidence_ref), r.at) for r in opt_out_rows),
        )

    # -- callback requests ------------------------------------------------------------------------

    async def request_callback(
        self, number: str, message_id: str, at: datetime
    ) -> tuple[CallbackRequest, bool]:
        request_id = uuid.uuid4().hex

        async def work(connection: AsyncConnection) -> None:
            await connection.execute(
                insert(SmsCallbackRequestRow).values(
                    id=request_id,
                    number=number,
                    message_id=message_id,
                    state=CallbackRequestState.REQUESTED.value,
                    requested_at=at,
                )
            )

        created = True
        try:
            await self._write("storing a callback request", work)
        except ConflictError:
            created = False
        (request,) = await self.callback_requests(number=number, open_only=True) or (None,)
        if request is None:  # cancelled between our conflict and the read: store ours again
            return await self.request_callback(number, message_id, at)
        return request, created

    async def cancel_callback(self, number: str, at: datetime) -> CallbackRequest | None:
        open_requests = await self.callback_requests(number=number, open_only=True)
        if not open_requests:
            return None

        async def work(connection: AsyncConnection) -> int:
            result = await connection.execute(
                update(SmsCallbackRequestRow)
                .where(
                    SmsCallbackRequestRow.id == open_requests[0].id,
                    SmsCallbackRequestRow.state == CallbackRequestState.REQUESTED.value,
                )
                .values(state=CallbackRequestState.CANCELLED.value, cancelled_at=at)
            )
            return int(result.rowcount)

        if await self._write("cancelling a callback request", work) == 0:
            return None
        async with self._session("reading a callback request") as session:
            row = await session.get(SmsCallbackRequestRow, open_requests[0].id)
            assert row is not None
            return _request(row)

    async def callback_requests(self, *, number: str | None, open_only: bool) -> tuple[CallbackRequest, ...]:
        query = select(SmsCallbackRequestRow)
        if number is not None:
            query = query.where(SmsCallbackRequestRow.number == number)
        if open_only:
            query = query.where(SmsCallbackRequestRow.state == CallbackRequestState.REQUESTED.value)
        query = query.order_by(SmsCallbackRequestRow.requested_at.desc(), SmsCallbackRequestRow.id)
        async with self._session("listing callback requests") as session:
            return tuple(_request(r) for r in await session.scalars(query))

    # -- erasure ----------------------------------------------------------------------------------

    async def erase(self, number: str, pseudonym: str, at: datetime) -> Erasure:
        async def work(connection: AsyncConnection) -> Erasure:
            async def run(statement: object) -> int:
                result = await connection.execute(statement)  # type: ignore[call-overload]
                return int(result.rowcount)

            # An open "call me" would be taken over to dial the pseudonym: it is closed first.
            await run(
                update(SmsCallbackRequestRow)
                .where(
                    SmsCallbackRequestRow.number == number,
                    SmsCallbackRequestRow.state == CallbackRequestState.REQUESTED.value,
                )
                .values(state=CallbackRequestState.CANCELLED.value, cancelled_at=at)
            )
            requests = await run(
                update(SmsCallbackRequestRow)
                .where(SmsCallbackRequestRow.number == number)
                .values(number=pseudonym)
            )
            # Nothing may still go to a number being forgotten (it would go to the pseudonym).
            await run(
                update(SmsMessageRow)
                .where(
                    SmsMessageRow.number == number,
                    SmsMessageRow.status.in_([MessageStatus.QUEUED.value, MessageStatus.SENDING.value]),
                )
                .values(status=MessageStatus.CANCELLED.value, error="erased", claimed_until=None)
            )
            # Messages keep their row (idempotency keys, counts) without the number or the words.
            messages = await run(
                update(SmsMessageRow)
                .where(SmsMessageRow.number == number)
                .values(number=pseudonym, text="", updated_at=at)
            )
            contacts = await run(delete(SmsContactRow).where(SmsContactRow.number == number))
            consent = await run(
                update(SmsConsentRow)
                .where(SmsConsentRow.number == number)
                .values(number=None, evidence_text=None)
            )
            calls = await run(
                update(CallRow).where(CallRow.caller == number).values(caller=pseudonym, caller_name="")
            )
            # Voicemails, callbacks and statistics, in this same transaction (all or nothing).
            outside = await erase_outside_sms(connection, number, pseudonym, at)
            return Erasure(
                number=number,
                pseudonym=pseudonym,
                messages=messages,
                contacts=contacts,
                consent_records=consent,
                calls=calls,
                callback_requests=requests,
                missed_calls=outside.missed_calls,
                voicemails=outside.voicemails,
                transcripts=outside.transcripts,
                callbacks=outside.callbacks,
                callbacks_cancelled=len(outside.cancelled),
                callbacks_connected=outside.connected,
                callback_attempts=outside.callback_attempts,
                callback_notes=outside.callback_notes,
                audit_entries=outside.audit_entries,
                do_not_call_kept=outside.do_not_call_kept,
                audio_paths=outside.audio_paths,
                voicemail_ids=outside.voicemail_ids,
                cancelled=outside.cancelled,
            )

        return await self._write("erasing a number", work)


def _claim_statement(*, skip_locked: bool) -> Update:
    """The claim (bound: c_now, c_until, c_limit), built once per dialect: PostgreSQL's locks the rows
    it takes and skips those another claimer holds (``skip_locked``); SQLite's is one plain UPDATE."""
    now = bindparam("c_now", type_=SmsMessageRow.due_at.type)
    other = aliased(SmsMessageRow)
    # A number with a text in flight (claimed, its claim alive) is left alone: its texts go in order.
    in_flight = (
        select(other.id)
        .where(
            other.number == SmsMessageRow.number,
            other.status == MessageStatus.SENDING.value,
            other.claimed_until >= now,
        )
        .exists()
    )
    due = and_(
        or_(
            and_(SmsMessageRow.status == MessageStatus.QUEUED.value, SmsMessageRow.due_at <= now),
            and_(SmsMessageRow.status == MessageStatus.SENDING.value, SmsMessageRow.claimed_until < now),
        ),
        ~in_flight,
    )
    candidates = (
        select(SmsMessageRow.id)
        .where(due)
        .order_by(SmsMessageRow.due_at, SmsMessageRow.id)
        .limit(bindparam("c_limit", type_=Integer()))
    )
    values = {
        "status": MessageStatus.SENDING.value,
        "claimed_until": bindparam("c_until", type_=SmsMessageRow.claimed_until.type),
        "attempts": SmsMessageRow.attempts + 1,
        "updated_at": now,
    }
    claim: Update
    if skip_locked:  # PostgreSQL
        # A locking CTE runs once (an IN subquery with LIMIT may be re-scanned and take more rows);
        # concurrent claimers skip each other's rows instead of queueing behind them.
        chosen = candidates.with_for_update(skip_locked=True).cte("chosen")
        claim = update(SmsMessageRow).where(SmsMessageRow.id == chosen.c.id).values(**values)
    else:
        # SQLite has one writer at a time: the statement is the claim.
        claim = (
            update(SmsMessageRow)
            .where(SmsMessageRow.id.in_(candidates.scalar_subquery()), due)
            .values(**values)
        )
    return claim.returning(*SmsMessageRow.__table__.c)


#: The claim and the enqueue of each dialect (key: is it PostgreSQL), built once: SQLAlchemy finds
#: them compiled in its cache instead of building and keying a new statement per call.
_CLAIM: Final = {True: _claim_statement(skip_locked=True), False: _claim_statement(skip_locked=False)}
_ENQUEUE: Final = {
    is_postgresql: insert_of(SmsMessageRow)
    .on_conflict_do_nothing(index_elements=[SmsMessageRow.__table__.c.key])
    .returning(SmsMessageRow.key)
    for is_postgresql, insert_of in ((True, postgresql.insert), (False, sqlite.insert))
}

_SENDING: Final = MessageStatus.SENDING.value


async def _store_outcomes(
    connection: AsyncConnection, outcomes: Sequence[Outcome], at: datetime
) -> dict[str, datetime]:
    """Each kind of outcome as one executemany, the hand-overs as one statement per provider; returns
    the ids of those handed over with their hold (see :meth:`SqlSmsStore.record_outcomes`); one
    hand-over statement per provider and hold (a sender's texts of one claim share theirs)."""
    by_kind: dict[type, list[dict[str, object]]] = {}
    handed: dict[tuple[str, datetime], list[Handed]] = {}
    for outcome in outcomes:
        if isinstance(outcome, Handed):
            handed.setdefault((outcome.provider, outcome.hold_until), []).append(outcome)
        else:
            by_kind.setdefault(type(outcome), []).append(_outcome_params(outcome))
    stored: dict[str, datetime] = {}
    for (provider, hold), hand_overs in handed.items():
        # One statement (PostgreSQL locks its rows in scan order, not by id): the rows it can match
        # are this sender's own live claims, which no other sender's round updates meanwhile.
        hand_over = {
            "h_claims": [(h.message_id, h.claim) for h in hand_overs],
            "h_provider": provider,
            "h_until": hold,
            "h_now": at,
        }
        stored.update((row.id, hold) for row in await connection.execute(_HAND_OVER, hand_over))
    for kind, params in by_kind.items():
        # Rows are locked in one order (by id) so concurrent senders never deadlock.
        params.sort(key=lambda p: str(p["m_id"]))
        for p in params:
            p["m_now"] = at
        await connection.execute(_OUTCOME_UPDATES[kind], params)
    return stored


#: What a send depends on (:func:`_read_facts`), built once; bound: f_keys, f_numbers, f_since.
_FACT_KINDS: Final = [k.value for k in (*CAPPED_KINDS, MessageKind.FOLLOW_UP)]
_CAPPED: Final = frozenset(k.value for k in CAPPED_KINDS)
_FACTS_CONSENT: Final = (
    select(SmsConsentRow.__table__)
    .where(SmsConsentRow.number_key.in_(bindparam("f_keys", expanding=True)))
    .order_by(SmsConsentRow.number_key, SmsConsentRow.seq)
)
_FACTS_CONTACTS: Final = select(SmsContactRow.__table__).where(
    SmsContactRow.number.in_(bindparam("f_numbers", expanding=True))
)
_FACTS_SENDS: Final = select(SmsMessageRow.number, SmsMessageRow.kind, SmsMessageRow.sent_at).where(
    SmsMessageRow.number.in_(bindparam("f_numbers", expanding=True)),
    SmsMessageRow.kind.in_(_FACT_KINDS),
    SmsMessageRow.sent_at > bindparam("f_since", type_=SmsMessageRow.sent_at.type),
)


async def _read_facts(
    connection: AsyncConnection, targets: Sequence[tuple[str, str]], since: datetime
) -> dict[str, SendFacts]:
    """The send facts of ``(number, key)`` pairs (three queries on ``connection``), keyed by number."""
    numbers = sorted({number for number, _ in targets})
    params = {"f_keys": sorted({key for _, key in targets}), "f_numbers": numbers, "f_since": since}
    records: dict[str, list[ConsentRecord]] = {}
    for row in await connection.execute(_FACTS_CONSENT, params):
        records.setdefault(row.number_key, []).append(_consent(cast(SmsConsentRow, row)))
    known = {
        row.number: _contact(cast(SmsContactRow, row))
        for row in await connection.execute(_FACTS_CONTACTS, params)
    }
    capped: dict[str, list[datetime]] = {}
    follow_ups: dict[str, list[datetime]] = {}
    for number, kind, at in await connection.execute(_FACTS_SENDS, params):
        if at is None:
            continue
        if kind in _CAPPED:
            capped.setdefault(number, []).append(at)
        if kind == MessageKind.FOLLOW_UP.value:
            follow_ups.setdefault(number, []).append(at)
    return {
        number: SendFacts(
            consent=tuple(records.get(key, ())),
            contact=known.get(number),
            capped_sends=tuple(capped.get(number, ())),
            follow_up_sends=tuple(follow_ups.get(number, ())),
        )
        for number, key in targets
    }


_m = SmsMessageRow


def _outcome_update(*allowed: str, condition: ColumnElement[bool] | None = None, **values: object) -> Update:
    statement = update(SmsMessageRow).where(
        # Plain equalities: an IN list would be an "expanding" parameter, which executemany refuses.
        SmsMessageRow.id == bindparam("m_id"),
        or_(*(SmsMessageRow.status == a for a in allowed)),
    )
    if condition is not None:
        statement = statement.where(condition)
    return statement.values(**values)


#: A deferral's claim and hold (see :class:`Deferred`): none, or what ``claimed_until`` may be.
_DEFER_CLAIM: Final = bindparam("m_claim", type_=_m.claimed_until.type)
_DEFER_HOLD: Final = bindparam("m_hold", type_=_m.claimed_until.type)


#: The hand-over of a round's texts to one provider (bound: h_claims, a list of (id, claimed_until as
#: claimed), h_provider, h_until, h_now): stored only for a text still ``sending`` under the claim the
#: sender made and not handed over yet. A claim that ran out and was taken by another sender, or a
#: text an opt-out cancelled, does not match: its sender learns it from the ids returned.
_HAND_OVER: Final = (
    update(SmsMessageRow)
    .where(
        tuple_(SmsMessageRow.id, SmsMessageRow.claimed_until).in_(bindparam("h_claims", expanding=True)),
        SmsMessageRow.status == _SENDING,
        SmsMessageRow.provider == "",
    )
    .values(
        provider=bindparam("h_provider"),
        claimed_until=bindparam("h_until", type_=_m.claimed_until.type),
        updated_at=bindparam("h_now", type_=_m.updated_at.type),
    )
    .returning(SmsMessageRow.id)
)

#: One UPDATE per other kind of outcome, run with executemany (parameters from :func:`_outcome_params`);
#: built once, so SQLAlchemy finds each compiled in its cache without rebuilding it.
_OUTCOME_UPDATES: Final[dict[type, Update]] = {
    Sent: _outcome_update(
        _SENDING,
        MessageStatus.QUEUED.value,
        MessageStatus.UNKNOWN.value,
        status=MessageStatus.SENT.value,
        provider=bindparam("m_provider"),
        provider_id=bindparam("m_provider_id"),
        sent_at=bindparam("m_at"),
        claimed_until=None,
        needs_person=False,
        error="",
        updated_at=bindparam("m_now"),
    ),
    Failed: _outcome_update(
        _SENDING,
        status=bindparam("m_status"),
        due_at=func.coalesce(bindparam("m_until", type_=_m.due_at.type), _m.due_at),
        provider="",  # the provider refused it: a retry is a fresh send
        error=bindparam("m_error"),
        claimed_until=None,
        updated_at=bindparam("m_now"),
    ),
    Cancelled: _outcome_update(
        _SENDING,
        MessageStatus.QUEUED.value,
        status=MessageStatus.CANCELLED.value,
        error=bindparam("m_error"),
        claimed_until=None,
        updated_at=bindparam("m_now"),
    ),
    Deferred: _outcome_update(
        _SENDING,
        condition=or_(
            and_(_DEFER_CLAIM.is_(None), _DEFER_HOLD.is_(None)),
            SmsMessageRow.claimed_until == _DEFER_CLAIM,
            SmsMessageRow.claimed_until == _DEFER_HOLD,
        ),
        status=MessageStatus.QUEUED.value,
        due_at=bindparam("m_until"),
        claimed_until=None,
        error=bindparam("m_error"),
        updated_at=bindparam("m_now"),
        # Never requested from the provider (deferred before, or handed over and given back by a
        # stopping sender before its request): not handed over any more.
        provider="",
        # A deferral is not an attempt.
        attempts=SmsMessageRow.attempts - 1,
    ),
    Unknown: _outcome_update(
        _SENDING,
        status=MessageStatus.UNKNOWN.value,
        error=bindparam("m_error"),
        claimed_until=None,
        needs_person=True,
        updated_at=bindparam("m_now"),
    ),
}


def _outcome_params(outcome: Outcome) -> dict[str, object]:
    match outcome:
        case Handed():  # pragma: no cover - stored by _HAND_OVER
            raise AssertionError("a hand-over is not an executemany outcome")
        case Sent(message_id, provider, provider_id, sent_at):
            return {"m_id": message_id, "m_provider": provider, "m_provider_id": provider_id, "m_at": sent_at}
        case Failed(message_id, error, retry_at):
            status = MessageStatus.FAILED if retry_at is None else MessageStatus.QUEUED
            return {"m_id": message_id, "m_status": status.value, "m_until": retry_at, "m_error": error[:500]}
        case Cancelled(message_id, reason):
            return {"m_id": message_id, "m_error": reason[:500]}
        case Deferred(message_id, until, reason, claim, hold):
            error = f"deferred: {reason}"[:500]
            return {"m_id": message_id, "m_until": until, "m_error": error, "m_claim": claim, "m_hold": hold}
        case Unknown(message_id, reason):
            return {"m_id": message_id, "m_error": reason[:500]}


def _report_update(
    provider: ColumnElement[str],
    provider_id: ColumnElement[str],
    status: ColumnElement[str],
    error: ColumnElement[str],
) -> tuple[Update, ColumnElement[bool]]:
    """A report's UPDATE (without its RETURNING) and its "do we know it" condition, for a report's
    fields given as bound parameters (one report) or as the columns of a list of them (a round)."""
    # Providers that carry our id (Kannel's dlr-url) may report before we recorded the send, or
    # after its sender died: the report then names our id and the row is still "sending".
    named = and_(
        SmsMessageRow.direction == Direction.OUTBOUND.value,
        or_(
            and_(SmsMessageRow.provider == provider, SmsMessageRow.provider_id == provider_id),
            and_(
                SmsMessageRow.id == provider_id,
                or_(SmsMessageRow.provider == "", SmsMessageRow.provider == provider),
            ),
        ),
    )
    # A report never moves a message backwards (a late "sent" after "delivered" is ignored; only a
    # "failed" may follow "delivered"). An "unknown" message (handed over, no report in time) is
    # settled by a report however late. A cancelled, failed or queued message is not moved.
    allowed = or_(
        SmsMessageRow.status.in_(
            [MessageStatus.SENDING.value, MessageStatus.SENT.value, MessageStatus.UNKNOWN.value]
        ),
        and_(
            SmsMessageRow.status == MessageStatus.DELIVERED.value,
            status == MessageStatus.FAILED.value,
        ),
    )
    now = bindparam("r_now", type_=SmsMessageRow.updated_at.type)
    statement = (
        update(SmsMessageRow)
        .where(named, allowed)
        .values(
            status=status,
            error=error,
            updated_at=now,
            claimed_until=None,
            needs_person=False,
            provider=provider,
            provider_id=case((SmsMessageRow.provider_id == "", provider_id), else_=SmsMessageRow.provider_id),
            sent_at=func.coalesce(SmsMessageRow.sent_at, now),
        )
    )
    return statement, named


def _report_statements() -> tuple[Any, Select[Any]]:
    """One report's UPDATE and its "do we know it" SELECT, built once (bound: r_provider, r_id,
    r_status, r_error, r_now)."""
    statement, named = _report_update(
        bindparam("r_provider", type_=String()),
        bindparam("r_id", type_=String()),
        bindparam("r_status", type_=String()),
        bindparam("r_error", type_=String()),
    )
    return statement.returning(SmsMessageRow.id, SmsMessageRow.kind), select(SmsMessageRow.id).where(named)


def _round_statements() -> tuple[Any, Select[Any]]:
    """A round of reports as one UPDATE (PostgreSQL): the reports are arrays unnested into rows
    (bound: r_providers, r_ids, r_statuses, r_errors, r_ords, r_now); it returns each moved message
    with the position of its report (``ord``). Its SELECT gives the positions of the reports that
    name a message we sent."""
    rows = (
        func.unnest(
            bindparam("r_providers", type_=ARRAY(String())),
            bindparam("r_ids", type_=ARRAY(String())),
            bindparam("r_statuses", type_=ARRAY(String())),
            bindparam("r_errors", type_=ARRAY(String())),
            bindparam("r_ords", type_=ARRAY(Integer())),
        )
        .table_valued(
            column("provider", String()),
            column("provider_id", String()),
            column("status", String()),
            column("error", String()),
            column("ord", Integer()),
        )
        .render_derived(name="r")
    )
    r = rows.c
    statement, named = _report_update(r.provider, r.provider_id, r.status, r.error)
    # The rows are locked first, in id order, as the sender's writes lock theirs: one statement's
    # join would lock them in whatever order its plan visits them, and deadlock with a sender's
    # "sent" round holding some of them (PostgreSQL then aborts one after a second).
    locked = (
        select(SmsMessageRow.id)
        .select_from(rows)
        .join(SmsMessageRow, named)
        .order_by(SmsMessageRow.id)
        .with_for_update(of=SmsMessageRow)
        .cte("locked")
    )
    returning = statement.where(SmsMessageRow.id.in_(select(locked.c.id))).returning(
        SmsMessageRow.id, SmsMessageRow.kind, r.ord
    )
    return returning, select(r.ord).select_from(rows).join(SmsMessageRow, named)


_REPORT, _REPORT_KNOWN = _report_statements()
_ROUND, _ROUND_KNOWN = _round_statements()


async def _apply_report(connection: AsyncConnection, report: Report, at: datetime) -> ReportApplied:
    params = {
        "r_provider": report.provider,
        "r_id": report.provider_id,
        "r_status": report.status.value,
        "r_error": report.error[:500],
        "r_now": at,
    }
    moved = (await connection.execute(_REPORT, params)).first()
    if moved is not None:
        return ReportApplied(known=True, moved=(moved.id, MessageKind(moved.kind) if moved.kind else None))
    # Nothing changed: a report we already have (fine) or a message we never sent.
    known = (await connection.execute(_REPORT_KNOWN, params)).first() is not None
    return ReportApplied(known=known)


async def _apply_round(
    connection: AsyncConnection, reports: Sequence[Report], at: datetime
) -> list[ReportApplied]:
    """Every report of a round in one UPDATE (PostgreSQL), in layers: a statement changes a row once,
    so the second report on the same message in a round (Kannel's "accepted", then "delivered") goes
    in the next statement, after the first; one SELECT then tells the reports that moved nothing
    apart (known and already applied, or naming no message of ours)."""
    layers: list[list[int]] = []
    seen: dict[tuple[str, str], int] = {}
    for i, report in enumerate(reports):
        which = (report.provider, report.provider_id)
        depth = seen.get(which, 0)
        seen[which] = depth + 1
        if depth == len(layers):
            layers.append([])
        layers[depth].append(i)
    moved: dict[int, tuple[str, MessageKind | None]] = {}
    for layer in layers:
        # Rows are locked in one order (by the id the reports name) so two processes' rounds never
        # deadlock each other.
        layer.sort(key=lambda i: (reports[i].provider_id, i))
        result = await connection.execute(_ROUND, _round_params(reports, layer, at))
        for row in result:
            if row.ord not in moved:
                moved[row.ord] = (row.id, MessageKind(row.kind) if row.kind else None)
    unmoved = [i for i in range(len(reports)) if i not in moved]
    known: set[int] = set()
    if unmoved:
        known = set((await connection.execute(_ROUND_KNOWN, _round_params(reports, unmoved, at))).scalars())
    return [
        ReportApplied(known=True, moved=moved[i]) if i in moved else ReportApplied(known=i in known)
        for i in range(len(reports))
    ]


def _round_params(reports: Sequence[Report], which: Sequence[int], at: datetime) -> dict[str, object]:
    return {
        "r_providers": [reports[i].provider for i in which],
        "r_ids": [reports[i].provider_id for i in which],
        "r_statuses": [reports[i].status.value for i in which],
        "r_errors": [reports[i].error[:500] for i in which],
        "r_ords": list(which),
        "r_now": at,
    }
