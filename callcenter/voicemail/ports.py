"""Ports of the voicemail feature: its repository and the speech analysis it runs (port)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from callcenter.model.paging import Page
from callcenter.model.vocabulary import VoicemailStatus
from callcenter.voicemail.records import TranscriptSegment, Voicemail, VoicemailTranscript


@dataclass(frozen=True, kw_only=True, slots=True)
class SpeechResult:
    """What analysing one recording gave (``text`` empty and ``segments`` empty when silent)."""

    duration_s: float
    speech_ratio: float
    silent: bool
    silent_reason: str = ""
    text: str = ""
    language: str = ""
    confidence: float = 0.0
    segments: tuple[TranscriptSegment, ...] = ()
    model: str = ""
    seconds: float = 0.0


@dataclass(frozen=True, kw_only=True, slots=True)
class VoicemailFilter:
    """Filters of the voicemail list; ``None`` matches anything."""

    status: VoicemailStatus | None = None
    queue: str | None = None


@dataclass(frozen=True, slots=True)
class StoredMedia:
    """Where a file went in the media folder (relative path), its SHA-256 and size."""

    relative_path: str
    checksum: str
    size_bytes: int


class MediaStorage(Protocol):
    """The voicemail media folder. Blocking: call it in a thread."""

    def save(self, source: Path | bytes, *, name: str, suffix: str, at: datetime) -> StoredMedia:
        """Copy ``source`` in under ``name``; the same name again replaces the file."""
        ...

    def path(self, relative: str) -> Path:
        """The absolute path of a stored file. :raises ValidationError: for one leaving the folder."""
        ...

    def delete(self, relative: str) -> bool:
        """Delete a stored file; ``False`` when it was already gone."""
        ...


class VoicemailIntake(Protocol):
    """Durable notes of voicemails whose audio is in the media folder but whose record or
    transcription job may not be stored yet (the store was down, or the process died in between).
    Blocking: call it in a thread."""

    def keep(self, voicemail: Voicemail, *, at: datetime) -> None:
        """Note ``voicemail`` as owed, durably (it survives a crash once this returns)."""
        ...

    def done(self, voicemail_id: str) -> None:
        """Forget the note (a note already gone is fine)."""
        ...

    def has(self, voicemail_id: str) -> bool: ...

    def owed(self, *, kept_by: datetime | None = None) -> list[Voicemail]:
        """The noted voicemails (only those kept at or before ``kept_by`` when given), oldest first.
        A note that cannot be read is set aside, named in the log, and left out."""
        ...


class SpeechAnalyser(Protocol):
    """Speech detection and transcription of one stored recording, off the event loop."""

    async def analyse(self, path: str) -> SpeechResult:
        """Analyse the recording at ``path``.

        :raises media.errors.AudioDecodeError: when it is not decodable audio (permanent).
        :raises Exception: anything else is transient (a worker process died, the model crashed).
        """
        ...


class VoicemailRepository(Protocol):
    """Voicemails and their one transcript each. Times are aware; every write is one transaction."""

    async def add(self, voicemail: Voicemail) -> Voicemail:
        """Store a new voicemail; the same id again returns the stored one (idempotent)."""
        ...

    async def get(self, voicemail_id: str) -> Voicemail:
        """:raises NotFoundError: for an unknown id."""
        ...

    async def list(self, flt: VoicemailFilter, *, cursor: str | None, limit: int) -> Page[Voicemail]:
        """Newest recording first. :raises ValidationError: for a bad cursor or limit."""
        ...

    async def transcript(self, voicemail_id: str) -> VoicemailTranscript | None:
        """The voicemail's transcript, ``None`` when it has none (silent, pending, failed, dropped)."""
        ...

    async def with_transcripts(
        self, voicemail_ids: Collection[str]
    ) -> dict[str, tuple[Voicemail, VoicemailTranscript | None]]:
        """The voicemails of ``voicemail_ids`` with their transcripts, in one read; unknown ids left out."""
        ...

    async def save_result(
        self,
        voicemail: Voicemail,
        transcript: VoicemailTranscript | None,
    ) -> bool:
        """Store the outcome of transcribing ``voicemail.revision``, and its transcript (replacing any).

        Nothing is written, and ``False`` returned, when the stored revision is newer (a newer
        request supersedes this one) or the stored status is no longer ``recorded``.
        """
        ...

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
        """Record a failed attempt (``status`` ``failed`` when it was the last) for ``revision``."""
        ...

    async def request_revision(self, voicemail_id: str, at: datetime) -> Voicemail:
        """Queue the voicemail for transcription again: revision + 1, status ``recorded``.

        :raises NotFoundError: for an unknown id.
        :raises ConflictError: when its audio was already deleted.
        """
        ...

    async def audio_older_than(self, before: datetime, limit: int) -> tuple[Voicemail, ...]:
        """Voicemails recorded before ``before`` whose audio is still kept, oldest first."""
        ...

    async def ids_of_caller(self, number: str) -> tuple[str, ...]:
        """The ids of every voicemail left by ``number`` (for erasing what is kept beside them)."""
        ...

    async def audio_deleted(self, voicemail_id: str, at: datetime, *, drop_transcript: bool) -> None:
        """Record that the audio is gone; with ``drop_transcript`` delete the transcript as well."""
        ...

    async def erased_audio(
        self, voicemail_ids: Collection[str] | None, limit: int | None
    ) -> tuple[tuple[str, str], ...]:
        """(voicemail id, audio path) of erased voicemails whose file is not known to be deleted yet:
        of ``voicemail_ids`` (of any when ``None``), at most ``limit``, the earliest erased first.
        Such a voicemail shows no audio (``media_path`` ``None``); its row keeps the path until
        :meth:`audio_gone`."""
        ...

    async def audio_gone(self, voicemail_ids: Collection[str]) -> None:
        """Forget the audio paths of these erased voicemails: their files are deleted."""
        ...


class CallbackRequests(Protocol):
    """The callback service as a voicemail asks it for a callback (``CallbackSources.from_voicemail``)."""

    async def requested_by(self, voicemail_id: str) -> str | None:
        """The callback this voicemail already asked for (made for it, or merged into), else ``None``."""
        ...

    async def request(self, voicemail: Voicemail, note: str) -> str:
        """Ask for a callback to the voicemail's caller in its queue, in line from when it was left.

        A number with an open callback in the queue gets no second one: the request is merged into it.
        Returns the callback's id.

        :raises InvalidPhoneNumberError: a number that cannot be called back (withheld, invalid).
        """
        ...
