"""SQL tables and repository of voicemails and their transcripts (edge).

``voicemails`` holds one row per message (the audio lives in the media folder, named by a path
relative to it, with its SHA-256); ``voicemail_transcripts`` at most one row per voicemail, replaced
when the voicemail is transcribed again. Both follow ``sql_models``' conventions (text enums, UTC
times, named constraints) and are imported by the Alembic environment through ``sql_models``.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    delete,
    select,
    update,
)
from sqlalchemy.orm import Mapped, mapped_column

from callcenter.callbacks.attempts import CallbackSource
from callcenter.errors import ConflictError, NotFoundError, ValidationError
from callcenter.model.paging import Page, check_limit
from callcenter.model.vocabulary import VoicemailStatus
from callcenter.store.sql_dispatch import CallbackSourceRow
from callcenter.store.sql_models import Base, JsonDocument
from callcenter.store.sql_repos import _newest_first, _page, _SqlRepository, _upsert
from callcenter.voicemail.ports import VoicemailFilter
from callcenter.voicemail.records import TranscriptSegment, Voicemail, VoicemailTranscript


class VoicemailRow(Base):
    """One voicemail (``voicemail.records.Voicemail``)."""

    __tablename__ = "voicemails"
    __table_args__ = (Index("ix_voicemails_recorded_at_id", "recorded_at", "id"),)

    id: Mapped[str] = mapped_column(primary_key=True)
    # No foreign key to calls: a recording may be stored before its call's record is written.
    call_id: Mapped[str | None] = mapped_column(index=True)
    queue: Mapped[str | None] = mapped_column(index=True)
    caller: Mapped[str]
    recorded_at: Mapped[datetime]
    media_path: Mapped[str | None]
    checksum: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(Integer())
    duration_s: Mapped[float] = mapped_column(Float())
    status: Mapped[str] = mapped_column(String(16), index=True)
    silent: Mapped[bool | None] = mapped_column(Boolean())
    speech_ratio: Mapped[float | None] = mapped_column(Float())
    revision: Mapped[int] = mapped_column(Integer())
    attempts: Mapped[int] = mapped_column(Integer())
    error: Mapped[str] = mapped_column(Text())
    intents: Mapped[list[str]] = mapped_column(JsonDocument)
    urgency: Mapped[str] = mapped_column(String(16))
    preview: Mapped[str] = mapped_column(Text())
    updated_at: Mapped[datetime]
    audio_deleted_at: Mapped[datetime | None]


class VoicemailTranscriptRow(Base):
    """The transcript of one voicemail (``voicemail.records.VoicemailTranscript``)."""

    __tablename__ = "voicemail_transcripts"

    voicemail_id: Mapped[str] = mapped_column(
        ForeignKey("voicemails.id", ondelete="CASCADE"), primary_key=True
    )
    text: Mapped[str] = mapped_column(Text())
    language: Mapped[str] = mapped_column(String(16))
    confidence: Mapped[float] = mapped_column(Float())
    segments: Mapped[list[dict[str, Any]]] = mapped_column(JsonDocument)
    model: Mapped[str]
    revision: Mapped[int] = mapped_column(Integer())
    transcribed_at: Mapped[datetime]


def _voicemail(row: VoicemailRow) -> Voicemail:
    return Voicemail(
        id=row.id,
        call_id=row.call_id,
        queue=row.queue,
        caller=row.caller,
        recorded_at=row.recorded_at,
        # An erased voicemail keeps its path on the row until its file is deleted; it has no audio.
        media_path=row.media_path if row.audio_deleted_at is None else None,
        checksum=row.checksum,
        size_bytes=row.size_bytes,
        duration_s=row.duration_s,
        status=VoicemailStatus(row.status),
        silent=row.silent,
        speech_ratio=row.speech_ratio,
        revision=row.revision,
        attempts=row.attempts,
        error=row.error,
        intents=tuple(row.intents),
        urgency=row.urgency,
        preview=row.preview,
        updated_at=row.updated_at,
        audio_deleted_at=row.audio_deleted_at,
    )


def _transcript(row: VoicemailTranscriptRow) -> VoicemailTranscript:
    return VoicemailTranscript(
        voicemail_id=row.voicemail_id,
        text=row.text,
        language=row.language,
        confidence=row.confidence,
        segments=tuple(
            TranscriptSegment(start_s=float(s["start_s"]), end_s=float(s["end_s"]), text=str(s["text"]))
            for s in row.segments
        ),
        model=row.model,
        revision=row.revision,
        transcribed_at=row.transcribed_at,
    )


class SqlVoicemailRepository(_SqlRepository):
    """:class:`callcenter.voicemail.ports.VoicemailRepository` on SQLite or PostgreSQL."""

    async def add(self, voicemail: Voicemail) -> Voicemail:
        """Insert ``voicemail``; an id already stored returns the stored row unchanged."""
        if voicemail.updated_at is None:
            raise ValidationError("a stored voicemail needs updated_at")
        values = {
            "id": voicemail.id,
            "call_id": voicemail.call_id,
            "queue": voicemail.queue,
            "caller": voicemail.caller,
            "recorded_at": voicemail.recorded_at,
            "media_path": voicemail.media_path,
            "checksum": voicemail.checksum,
            "size_bytes": voicemail.size_bytes,
            "duration_s": voicemail.duration_s,
            "status": voicemail.status.value,
            "silent": voicemail.silent,
            "speech_ratio": voicemail.speech_ratio,
            "revision": voicemail.revision,
            "attempts": voicemail.attempts,
            "error": voicemail.error,
            "intents": list(voicemail.intents),
            "urgency": voicemail.urgency,
            "preview": voicemail.preview,
            "updated_at": voicemail.updated_at,
            "audio_deleted_at": voicemail.audio_deleted_at,
        }
        async with self._session("storing a voicemail", write=True) as session:
            await session.execute(
                _upsert(self._engine, VoicemailRow)
                .values(**values)
                .on_conflict_do_nothing(index_elements=["id"])
            )
        return await self.get(voicemail.id)

    async def get(self, voicemail_id: str) -> Voicemail:
        async with self._session("reading a voicemail") as session:
            row = await session.get(VoicemailRow, voicemail_id)
            if row is None:
                raise NotFoundError(f"voicemail {voicemail_id!r} not found")
            return _voicemail(row)

    async def list(self, flt: VoicemailFilter, *, cursor: str | None, limit: int) -> Page[Voicemail]:
        """Newest first (ties by id, descending). :raises ValidationError: for a bad cursor or limit."""
        check_limit(limit)
        query = select(VoicemailRow)
        if flt.status is not None:
            query = query.where(VoicemailRow.status == flt.status.value)
        if flt.queue is not None:
            query = query.where(VoicemailRow.queue == flt.queue)
        query = _newest_first(query, VoicemailRow.recorded_at, VoicemailRow.id, cursor, limit)
        async with self._session("listing voicemails") as session:
            rows = (await session.scalars(query)).all()
        kept, after = _page(rows, limit, lambda r: (r.recorded_at.isoformat(), r.id))
        return Page(items=tuple(_voicemail(r) for r in kept), next=after)

    async def transcript(self, voicemail_id: str) -> VoicemailTranscript | None:
        async with self._session("reading a transcript") as session:
            row = await session.get(VoicemailTranscriptRow, voicemail_id)
            return _transcript(row) if row is not None else None

    async def with_transcripts(
        self, voicemail_ids: Collection[str]
    ) -> dict[str, tuple[Voicemail, VoicemailTranscript | None]]:
        if not voicemail_ids:
            return {}
        query = (
            select(VoicemailRow, VoicemailTranscriptRow)
            .outerjoin(VoicemailTranscriptRow, VoicemailTranscriptRow.voicemail_id == VoicemailRow.id)
            .where(VoicemailRow.id.in_(set(voicemail_ids)))
        )
        async with self._session("reading voicemails with their transcripts") as session:
            rows = (await session.execute(query)).all()
        found: dict[str, tuple[Voicemail, VoicemailTranscript | None]] = {}
        for voicemail, transcript in rows:
            text: VoicemailTranscriptRow | None = transcript  # None where the outer join found none
            found[voicemail.id] = (_voicemail(voicemail), _transcript(text) if text is not None else None)
        return found

    async def save_result(self, voicemail: Voicemail, transcript: VoicemailTranscript | None) -> bool:
        """Write the result of ``voicemail.revision`` if it is still the current, unfinished request."""
        async with self._session("storing a transcription", write=True) as session:
            done = await session.execute(
                update(VoicemailRow)
                .where(
                    VoicemailRow.id == voicemail.id,
                    VoicemailRow.revision == voicemail.revision,
                    VoicemailRow.status == VoicemailStatus.RECORDED.value,
                )
                .values(
                    status=voicemail.status.value,
                    silent=voicemail.silent,
                    speech_ratio=voicemail.speech_ratio,
                    duration_s=voicemail.duration_s,
                    attempts=voicemail.attempts,
                    error=voicemail.error,
                    intents=list(voicemail.intents),
                    urgency=voicemail.urgency,
                    preview=voicemail.preview,
                    updated_at=voicemail.updated_at,
                )
            )
            if done.rowcount != 1:  # type: ignore[attr-defined]
                return False
            if transcript is None:
                await session.execute(
                    delete(VoicemailTranscriptRow).where(VoicemailTranscriptRow.voicemail_id == voicemail.id)
                )
                return True
            values = {
                "voicemail_id": voicemail.id,
                "text": transcript.text,
                "language": transcript.language,
                "confidence": transcript.confidence,
                "segments": [
                    {"start_s": s.start_s, "end_s": s.end_s, "text": s.text} for s in transcript.segments
                ],
                "model": transcript.model,
                "revision": transcript.revision,
                "transcribed_at": transcript.transcribed_at,
            }
            upsert = _upsert(self._engine, VoicemailTranscriptRow).values(**values)
            await session.execute(
                upsert.on_conflict_do_update(
                    index_elements=["voicemail_id"],
                    set_={k: v for k, v in values.items() if k != "voicemail_id"},
                )
            )
            return True

    async def set_attempt(
        self,
        voicemail_id: str,
        revision: int,
        *,
        attempts: int,
        error: str,
        status: VoicemailStatus,
        at: datetime,
    ) -> None:
        async with self._session("recording a transcription attempt", write=True) as session:
            await session.execute(
                update(VoicemailRow)
                .where(
                    VoicemailRow.id == voicemail_id,
                    VoicemailRow.revision == revision,
                    VoicemailRow.status == VoicemailStatus.RECORDED.value,
                )
                .values(attempts=attempts, error=error[:2000], status=status.value, updated_at=at)
            )

    async def request_revision(self, voicemail_id: str, at: datetime) -> Voicemail:
        async with self._session("queueing a transcription", write=True) as session:
            row = await session.get(VoicemailRow, voicemail_id, with_for_update=True)
            if row is None:
                raise NotFoundError(f"voicemail {voicemail_id!r} not found")
            if row.media_path is None or row.audio_deleted_at is not None:
                raise ConflictError(
                    f"voicemail {voicemail_id!r} has no audio any more (retention or erasure)"
                )
            row.revision += 1
            row.status = VoicemailStatus.RECORDED.value
            row.attempts = 0
            row.error = ""
            row.updated_at = at
            await session.flush()
            return _voicemail(row)

    async def audio_older_than(self, before: datetime, limit: int) -> tuple[Voicemail, ...]:
        query = (
            select(VoicemailRow)
            .where(
                VoicemailRow.recorded_at < before,
                VoicemailRow.media_path.is_not(None),
                VoicemailRow.audio_deleted_at.is_(None),
            )
            .order_by(VoicemailRow.recorded_at, VoicemailRow.id)
            .limit(limit)
        )
        async with self._session("finding voicemails past retention") as session:
            return tuple(_voicemail(r) for r in (await session.scalars(query)).all())

    async def ids_of_caller(self, number: str) -> tuple[str, ...]:
        query = select(VoicemailRow.id).where(VoicemailRow.caller == number).order_by(VoicemailRow.id)
        async with self._session("finding a caller's voicemails") as session:
            return tuple((await session.scalars(query)).all())

    async def audio_deleted(self, voicemail_id: str, at: datetime, *, drop_transcript: bool) -> None:
        async with self._session("recording deleted audio", write=True) as session:
            await session.execute(
                update(VoicemailRow)
                .where(VoicemailRow.id == voicemail_id)
                .values(media_path=None, audio_deleted_at=at, updated_at=at)
            )
            if drop_transcript:
                # The preview quotes the transcript: it goes with it.
                await session.execute(
                    update(VoicemailRow).where(VoicemailRow.id == voicemail_id).values(preview="")
                )
                await session.execute(
                    delete(VoicemailTranscriptRow).where(VoicemailTranscriptRow.voicemail_id == voicemail_id)
                )

    async def erased_audio(
        self, voicemail_ids: Collection[str] | None, limit: int | None
    ) -> tuple[tuple[str, str], ...]:
        query = select(VoicemailRow.id, VoicemailRow.media_path).where(
            VoicemailRow.audio_deleted_at.is_not(None), VoicemailRow.media_path.is_not(None)
        )
        if voicemail_ids is not None:
            query = query.where(VoicemailRow.id.in_(list(voicemail_ids)))
        query = query.order_by(VoicemailRow.audio_deleted_at, VoicemailRow.id).limit(limit)
        async with self._reading("finding erased audio") as connection:
            return tuple((row.id, row.media_path) for row in (await connection.execute(query)).all())

    async def audio_gone(self, voicemail_ids: Collection[str]) -> None:
        if not voicemail_ids:
            return
        async with self._session("forgetting deleted audio", write=True) as session:
            await session.execute(
                update(VoicemailRow)
                .where(VoicemailRow.id.in_(list(voicemail_ids)), VoicemailRow.audio_deleted_at.is_not(None))
                .values(media_path=None)
            )


class SqlVoicemailCallbackLinks(_SqlRepository):
    """Which callback a voicemail asked for, read from the callbacks' source notes.

    ``CallbackSources.from_voicemail`` stores a note with ``source='voicemail'`` and ``ref`` the
    voicemail's id, on the callback it made or on the open one it merged into: that note is the
    durable link, written in the same transaction as the callback.
    """

    async def requested_by(self, voicemail_id: str) -> str | None:
        """The id of the callback ``voicemail_id`` asked for (the first, if asked twice), else ``None``."""
        query = (
            select(CallbackSourceRow.callback_id)
            .where(
                CallbackSourceRow.source == CallbackSource.VOICEMAIL.value,
                CallbackSourceRow.ref == voicemail_id,
            )
            .order_by(CallbackSourceRow.id)
            .limit(1)
        )
        async with self._session("reading the callback of a voicemail") as session:
            return (await session.execute(query)).scalar_one_or_none()
