"""JSON Schemas and serialisers of the voicemail routes (edge).

Kept beside ``schemas.py``, which lists them in ``COMPONENTS`` through :data:`VOICEMAIL_COMPONENTS`.
"""

from __future__ import annotations

from typing import Final

from callcenter.api.jsonio import iso
from callcenter.api.routing import JsonObject
from callcenter.model.vocabulary import VoicemailStatus
from callcenter.voicemail.records import Voicemail, VoicemailTranscript

_TIME: Final = {"type": "string", "format": "date-time"}
_TIME_OR_NULL: Final = {"type": ["string", "null"], "format": "date-time"}
_TEXT_OR_NULL: Final = {"type": ["string", "null"]}
_SECONDS: Final = {"type": "number", "minimum": 0}


def _object(properties: JsonObject) -> JsonObject:
    return {
        "type": "object",
        "required": list(properties),
        "properties": properties,
        "additionalProperties": False,
    }


VOICEMAIL: Final = _object(
    {
        "id": {"type": "string"},
        "call_id": _TEXT_OR_NULL,
        "queue": _TEXT_OR_NULL,
        "caller": {"type": "string"},
        "recorded_at": _TIME,
        "duration_s": _SECONDS,
        "status": {"enum": [s.value for s in VoicemailStatus]},
        "silent": {"type": ["boolean", "null"], "description": "null until speech detection ran"},
        "speech_ratio": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
        "intents": {"type": "array", "items": {"type": "string"}},
        "urgency": {"enum": ["normal", "urgent"]},
        "preview": {"type": "string", "description": "the transcript on one line, cut to 120 characters"},
        "has_audio": {"type": "boolean", "description": "false once retention deleted the audio"},
        "checksum": {"type": "string", "description": "SHA-256 of the audio file"},
        "size_bytes": {"type": "integer", "minimum": 0},
        "revision": {"type": "integer", "minimum": 1},
        "attempts": {"type": "integer", "minimum": 0},
        "error": {"type": "string"},
        "updated_at": _TIME_OR_NULL,
        "audio_deleted_at": _TIME_OR_NULL,
    }
)

TRANSCRIPT_SEGMENT: Final = _object({"start_s": _SECONDS, "end_s": _SECONDS, "text": {"type": "string"}})

VOICEMAIL_TRANSCRIPT: Final = _object(
    {
        "voicemail_id": {"type": "string"},
        "text": {"type": "string"},
        "language": {"type": "string"},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        "segments": {"type": "array", "items": {"$ref": "#/components/schemas/TranscriptSegment"}},
        "model": {"type": "string"},
        "revision": {"type": "integer", "minimum": 1},
        "transcribed_at": _TIME,
    }
)

VOICEMAIL_DETAIL: Final = _object(
    {
        "voicemail": {"$ref": "#/components/schemas/Voicemail"},
        "transcript": {
            "oneOf": [{"$ref": "#/components/schemas/VoicemailTranscript"}, {"type": "null"}],
            "description": "null while pending, and for silent or failed voicemails",
        },
    }
)

VOICEMAIL_COMPONENTS: Final[dict[str, JsonObject]] = {
    "Voicemail": VOICEMAIL,
    "VoicemailDetail": VOICEMAIL_DETAIL,
    "VoicemailTranscript": VOICEMAIL_TRANSCRIPT,
    "TranscriptSegment": TRANSCRIPT_SEGMENT,
}


def voicemail_json(voicemail: Voicemail) -> JsonObject:
    return {
        "id": voicemail.id,
        "call_id": voicemail.call_id,
        "queue": voicemail.queue,
        "caller": voicemail.caller,
        "recorded_at": iso(voicemail.recorded_at),
        "duration_s": voicemail.duration_s,
        "status": voicemail.status.value,
        "silent": voicemail.silent,
        "speech_ratio": voicemail.speech_ratio,
        "intents": list(voicemail.intents),
        "urgency": voicemail.urgency,
        "preview": voicemail.preview,
        "has_audio": voicemail.media_path is not None,
        "checksum": voicemail.checksum,
        "size_bytes": voicemail.size_bytes,
        "revision": voicemail.revision,
        "attempts": voicemail.attempts,
        "error": voicemail.error,
        "updated_at": iso(voicemail.updated_at),
        "audio_deleted_at": iso(voicemail.audio_deleted_at),
    }


def transcript_json(transcript: VoicemailTranscript) -> JsonObject:
    return {
        "voicemail_id": transcript.voicemail_id,
        "text": transcript.text,
        "language": transcript.language,
        "confidence": transcript.confidence,
        "segments": [{"start_s": s.start_s, "end_s": s.end_s, "text": s.text} for s in transcript.segments],
        "model": transcript.model,
        "revision": transcript.revision,
        "transcribed_at": iso(transcript.transcribed_at),
    }
