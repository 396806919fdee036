"""Voicemail records as the store keeps them and the API shows them (pure values)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from callcenter.model.vocabulary import VoicemailStatus


@dataclass(frozen=True, kw_only=True, slots=True)
class TranscriptSegment:
    """A stretch of the transcript, times in seconds from the start of the recording."""

    start_s: float
    end_s: float
    text: str


@dataclass(frozen=True, kw_only=True, slots=True)
class VoicemailTranscript:
    """The one transcript of a voicemail; transcribing again replaces it."""

    voicemail_id: str
    text: str
    language: str
    confidence: float
    segments: tuple[TranscriptSegment, ...]
    model: str
    revision: int
    transcribed_at: datetime


@dataclass(frozen=True, kw_only=True, slots=True)
class Voicemail:
    """One caller's message.

    ``media_path`` is relative to the voicemail media folder; ``None`` once retention deleted the audio.
    ``silent`` is ``None`` until speech detection ran. ``revision`` counts transcription requests.
    """

    id: str
    call_id: str | None
    queue: str | None
    caller: str
    recorded_at: datetime
    media_path: str | None
    checksum: str
    size_bytes: int
    duration_s: float
    status: VoicemailStatus
    silent: bool | None = None
    speech_ratio: float | None = None
    revision: int = 1
    attempts: int = 0
    error: str = ""
    intents: tuple[str, ...] = ()
    urgency: str = "normal"
    preview: str = ""
    updated_at: datetime | None = None
    audio_deleted_at: datetime | None = None
