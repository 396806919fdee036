"""The SQL part of erasing a number's personal data, in the caller's transaction (edge).

:meth:`callcenter.store.sql_sms.SqlSmsStore.erase` runs :func:`erase_outside_sms` in the same
transaction as its own SMS tables, so an erasure is all or nothing. What it does, table by table:

* ``voicemails``: the caller becomes the pseudonym, the triage preview is emptied, and the audio is
  marked deleted (``audio_deleted_at`` set: from then on the voicemail has no audio to anyone); the
  files themselves are deleted by the voicemail service after the commit. The row keeps its
  ``media_path`` until the file is known to be gone, so a crash (or a failed deletion) in between is
  finished by the voicemail upkeep instead of leaving the voice on disk, unreferenced.
  ``voicemail_transcripts``: deleted.
* ``callbacks``: every callback to the number gets the pseudonym; an open one is cancelled first (a
  ``callback_changes`` row by the system actor ``erasure``, reason ``erased``; a booked slot gets its
  place back, an agent's claim goes). The dispatcher dials only through a conditional move from the
  state it read, so a cancelled callback is never dialled. A ``connected`` callback (an agent is on the
  line with the person) cannot be cancelled: the call goes on, the record gets the pseudonym, and
  should it come back for a retry the dial is refused as do-not-call
  (:meth:`~callcenter.store.sql_dispatch.SqlDispatchStore.start_attempt` never dials a pseudonym), which
  cancels it. ``callback_attempts``: the dialled number becomes the pseudonym.
  ``callback_sources`` notes and the reasons people wrote on ``callback_changes`` are emptied.
* ``stats_missed``: the caller becomes the pseudonym (the counts stay).
* ``do_not_call``: kept as it is (see :data:`do_not_call_kept`): it is a legal block whose only use is
  to recognise the number when a callback to it comes again, and the dispatcher's dial check (one
  transaction with the dial) compares readable numbers; a keyed hash there would need the consent
  secret in the dispatcher.

``audit_log``: a target naming the number (``number=<it>``, the path of a contact, consent or
do-not-call write) names the pseudonym instead; who did what and when stays.

The call timeline (``call_events``) holds no number (queue, agent, reason, outcome), so it is left alone.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from callcenter.callbacks.lifecycle import move
from callcenter.errors import ConflictError
from callcenter.model.callbacks import Actor, Callback, CallbackChange
from callcenter.model.vocabulary import ActorKind, CallbackState
from callcenter.store.sql_callbacks import CallbackChangeRow, CallbackRow, CallbackSlotRow, _callback
from callcenter.store.sql_dispatch import (
    CallbackAttemptRow,
    CallbackClaimRow,
    CallbackSourceRow,
    DoNotCallRow,
)
from callcenter.store.sql_models import AuditRow
from callcenter.store.sql_stats import StatsMissedRow
from callcenter.store.sql_voicemails import VoicemailRow, VoicemailTranscriptRow

#: Who cancels the open callbacks of an erased number, and why (``callback_changes``).
ERASURE_ACTOR = Actor(ActorKind.SYSTEM, "erasure")
ERASED_REASON = "erased"
#: The changes whose reason a person wrote (a disposition note); the system's reasons are codes.
_PEOPLE = (ActorKind.AGENT.value, ActorKind.SUPERVISOR.value, ActorKind.CUSTOMER.value)


@dataclass(frozen=True, kw_only=True, slots=True)
class OutsideSms:
    """What :func:`erase_outside_sms` changed."""

    missed_calls: int
    voicemails: int
    transcripts: int
    audio_paths: tuple[str, ...]
    voicemail_ids: tuple[str, ...]
    callbacks: int
    callback_attempts: int
    callback_notes: int
    do_not_call_kept: bool
    connected: int
    audit_entries: int
    cancelled: tuple[tuple[Callback, CallbackChange], ...]


async def erase_outside_sms(
    connection: AsyncConnection, number: str, pseudonym: str, at: datetime
) -> OutsideSms:
    """Erase ``number`` from the voicemail, callback and statistics tables (see the module)."""

    async def run(statement: object) -> int:
        result = await connection.execute(statement)  # type: ignore[call-overload]
        return int(result.rowcount)

    # -- callbacks: close the open ones, then forget the number --
    rows = (
        await connection.execute(
            # Locked (PostgreSQL): a dial or move waits for the erasure, then finds the state changed.
            select(CallbackRow)
            .where(CallbackRow.number == number)
            .order_by(CallbackRow.requested_at)
            .with_for_update()
        )
    ).all()
    callbacks = [_callback(row) for row in rows]
    slot_of = {row.id: row.slot_start for row in rows}
    connected = sum(1 for c in callbacks if c.state is CallbackState.CONNECTED)
    cancelled: list[tuple[Callback, CallbackChange]] = []
    for callback in callbacks:
        if not callback.state.is_open or callback.state is CallbackState.CONNECTED:
            continue
        moved, change = move(
            callback, CallbackState.CANCELLED, at=at, actor=ERASURE_ACTOR, reason=ERASED_REASON
        )
        done = await run(
            update(CallbackRow)
            .where(CallbackRow.id == callback.id, CallbackRow.state == callback.state.value)
            .values(state=moved.state.value, updated_at=moved.updated_at, due_at=moved.due_at)
        )
        if done != 1:  # pragma: no cover - the row is locked by this transaction
            raise ConflictError(f"callback {callback.id} changed during the erasure: try again")
        slot_start = slot_of[callback.id]
        if slot_start is not None:
            await run(
                update(CallbackSlotRow)
                .where(
                    CallbackSlotRow.queue == callback.queue,
                    CallbackSlotRow.start == slot_start,
                    CallbackSlotRow.booked > 0,
                )
                .values(booked=CallbackSlotRow.booked - 1)
            )
        await run(delete(CallbackClaimRow).where(CallbackClaimRow.callback_id == callback.id))
        await connection.execute(
            CallbackChangeRow.__table__.insert().values(  # type: ignore[attr-defined]
                callback_id=change.callback_id,
                at=change.at,
                previous=change.previous.value if change.previous else None,
                state=change.state.value,
                actor_kind=change.actor.kind.value,
                actor_name=change.actor.name,
                reason=change.reason,
                result=None,
            )
        )
        cancelled.append((dataclasses.replace(moved, number=pseudonym), change))
    ids = [c.id for c in callbacks]
    notes = 0
    if ids:
        notes += await run(
            update(CallbackSourceRow)
            .where(CallbackSourceRow.callback_id.in_(ids), CallbackSourceRow.note != "")
            .values(note="")
        )
        notes += await run(
            update(CallbackChangeRow)
            .where(
                CallbackChangeRow.callback_id.in_(ids),
                CallbackChangeRow.actor_kind.in_(_PEOPLE),
                CallbackChangeRow.reason != "",
            )
            .values(reason="")
        )
    callback_count = await run(
        update(CallbackRow).where(CallbackRow.number == number).values(number=pseudonym)
    )
    attempts = await run(
        update(CallbackAttemptRow).where(CallbackAttemptRow.number == number).values(number=pseudonym)
    )

    # -- voicemails: the records keep their counts; voice and words go --
    voicemail_rows = (
        await connection.execute(
            select(VoicemailRow.id, VoicemailRow.media_path, VoicemailRow.audio_deleted_at).where(
                VoicemailRow.caller == number
            )
        )
    ).all()
    voicemail_ids = tuple(row.id for row in voicemail_rows)
    audio_paths = tuple(
        row.media_path for row in voicemail_rows if row.media_path and not row.audio_deleted_at
    )
    transcripts = 0
    if voicemail_ids:
        transcripts = await run(
            delete(VoicemailTranscriptRow).where(VoicemailTranscriptRow.voicemail_id.in_(voicemail_ids))
        )
        await run(
            update(VoicemailRow)
            .where(
                VoicemailRow.id.in_(voicemail_ids),
                VoicemailRow.media_path.is_not(None),
                VoicemailRow.audio_deleted_at.is_(None),
            )
            .values(audio_deleted_at=at)
        )
    voicemails = await run(
        update(VoicemailRow)
        .where(VoicemailRow.caller == number)
        .values(caller=pseudonym, preview="", updated_at=at)
    )

    missed = await run(update(StatsMissedRow).where(StatsMissedRow.caller == number).values(caller=pseudonym))
    # The audit trail keeps who did what and when, naming the number by its pseudonym (``number=…``).
    audited = 0
    for entry_id, target in (
        await connection.execute(select(AuditRow.id, AuditRow.target).where(AuditRow.target.contains(number)))
    ).all():
        parts = target.split(",")
        renamed = [
            f"{name}={pseudonym}" if value == number else f"{name}={value}"
            for name, _, value in (part.partition("=") for part in parts)
        ]
        if renamed != parts:
            audited += await run(
                update(AuditRow).where(AuditRow.id == entry_id).values(target=",".join(renamed))
            )
    blocked = await connection.scalar(select(DoNotCallRow.number).where(DoNotCallRow.number == number))
    return OutsideSms(
        missed_calls=missed,
        voicemails=voicemails,
        transcripts=transcripts,
        audio_paths=audio_paths,
        voicemail_ids=voicemail_ids,
        callbacks=callback_count,
        callback_attempts=attempts,
        callback_notes=notes,
        do_not_call_kept=blocked is not None,
        connected=connected,
        audit_entries=audited,
        cancelled=tuple(cancelled),
    )
