"""Handlers of ``/api/v1/voicemails``: voicemails with their triage and transcripts, audio, re-transcription (edge).

:data:`VOICEMAIL_SERVICE` is the app key the composition root sets; without it these routes answer 503.
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

from callcenter.api.jsonio import page_params, page_response
from callcenter.api.voicemail_schemas import transcript_json, voicemail_json
from callcenter.errors import ConflictError, DependencyError, NotFoundError, ValidationError
from callcenter.model.vocabulary import VoicemailStatus
from callcenter.voicemail.ports import VoicemailFilter
from callcenter.voicemail.service import VoicemailService

VOICEMAIL_SERVICE: Final = web.AppKey("voicemail_service", VoicemailService)

_AUDIO_TYPES: Final = {
    ".wav": "audio/wav",
    ".gsm": "audio/x-gsm",
    ".mp3": "audio/mpeg",
    ".ulaw": "audio/basic",
    ".sln": "audio/L16;rate=8000",
}


def voicemail_service(request: web.Request) -> VoicemailService:
    """:raises DependencyError: (503) when this process runs no voicemail service."""
    service = request.app.get(VOICEMAIL_SERVICE)
    if service is None:
        raise DependencyError("the voicemail service is not running in this process")
    return service


def voicemail_filter(request: web.Request) -> VoicemailFilter:
    """The filters of ``GET /voicemails``. :raises ValidationError:"""
    status = None
    if "status" in request.query:
        try:
            status = VoicemailStatus(request.query["status"].strip())
        except ValueError:
            choices = ", ".join(s.value for s in VoicemailStatus)
            raise ValidationError(f"status must be one of {choices}") from None
    return VoicemailFilter(status=status, queue=request.query.get("queue", "").strip() or None)


async def list_voicemails(request: web.Request) -> web.Response:
    cursor, limit = page_params(request)
    page = await voicemail_service(request).list(voicemail_filter(request), cursor=cursor, limit=limit)
    return page_response(page, voicemail_json)


async def get_voicemail(request: web.Request) -> web.Response:
    service = voicemail_service(request)
    voicemail_id = request.match_info["voicemail_id"]
    voicemail = await service.get(voicemail_id)
    transcript = await service.transcript(voicemail_id)
    return web.json_response(
        {
            "voicemail": voicemail_json(voicemail),
            "transcript": transcript_json(transcript) if transcript is not None else None,
        }
    )


async def get_transcript(request: web.Request) -> web.Response:
    voicemail_id = request.match_info["voicemail_id"]
    transcript = await voicemail_service(request).transcript(voicemail_id)
    if transcript is None:
        raise NotFoundError(
            f"voicemail {voicemail_id!r} has no transcript (pending, silent, failed or deleted)"
        )
    return web.json_response(transcript_json(transcript))


async def get_audio(request: web.Request) -> web.StreamResponse:
    service = voicemail_service(request)
    voicemail = await service.get(request.match_info["voicemail_id"])
    if voicemail.media_path is None:
        raise ConflictError(f"the audio of voicemail {voicemail.id!r} was deleted (retention)")
    path = service.audio_path(voicemail)
    suffix = path.suffix.lower()
    return web.FileResponse(
        path, headers={"Content-Type": _AUDIO_TYPES.get(suffix, "application/octet-stream")}
    )


async def post_transcribe(request: web.Request) -> web.Response:
    voicemail = await voicemail_service(request).retranscribe(request.match_info["voicemail_id"])
    return web.json_response(voicemail_json(voicemail), status=202)
