"""Voicemail previews: the start of the caller's message, where Asterisk can play it (service).

The dispatcher's whisper plays the first seconds of a voicemail to the agent before the customer is
dialled (:mod:`media.preview`). Asterisk plays files from its own disk, so a preview is written to the
folder both sides share, ``CALLCENTER_VOICEMAIL_SPOOL_DIR`` (the same path on both sides, as for
FastAGI voicemail), as ``<spool>/callcenter-preview-<voicemail id>.wav``, and played as
``sound:<that path without .wav>``. It is rendered once, from the stored audio, the first time it is
asked for (decoding runs in a thread, never on the event loop); later asks find the file.

There is no preview, and a log line says why, when no shared folder is set, the voicemail's audio
was deleted (retention) or is missing, or it holds no speech. Retention deletes the preview with the
audio (:meth:`VoicemailService.purge`), and erasing a number's personal data deletes the previews of
its voicemails (:meth:`VoicemailPreviews.erase_number`).
"""

from __future__ import annotations

import asyncio
import logging
import math
from pathlib import Path
from typing import Final

from callcenter.errors import NotFoundError, ValidationError
from callcenter.voicemail.ports import MediaStorage, VoicemailRepository
from media.errors import AudioDecodeError, EmptyAudioError
from media.preview import render_preview

logger = logging.getLogger(__name__)

PREFIX: Final = "callcenter-preview-"


class VoicemailPreviews:
    """Previews of voicemails in the shared folder (see the module docstring).

    :param spool_dir: the folder Asterisk and we share; ``None``: no previews (logged once per ask).
    :param max_s: longest preview, in seconds; 0 turns previews off.
    """

    def __init__(
        self,
        voicemails: VoicemailRepository,
        media: MediaStorage,
        spool_dir: Path | None,
        *,
        max_s: float = 8.0,
    ) -> None:
        if not math.isfinite(max_s) or max_s < 0:
            raise ValidationError(f"the preview length must be 0 (off) or more, not {max_s!r}")
        self._voicemails = voicemails
        self._media = media
        self._spool = spool_dir
        self._max_s = max_s
        self._rendering: dict[str, asyncio.Future[Path | None]] = {}

    def path_of(self, voicemail_id: str) -> Path | None:
        """Where the voicemail's preview is (or would be); ``None`` with no shared folder."""
        if self._spool is None:
            return None
        if not voicemail_id or "/" in voicemail_id or voicemail_id.startswith("."):
            raise ValidationError(f"not a voicemail id: {voicemail_id!r}")
        return self._spool / f"{PREFIX}{voicemail_id}.wav"

    async def sound(self, voicemail_id: str) -> str | None:
        """The preview as Asterisk names it (absolute path without ``.wav``), rendered if need be;
        ``None`` (logged) when there is none. Never raises for a missing or bad recording."""
        path = await self.ensure(voicemail_id)
        return str(path.with_suffix("")) if path is not None else None

    async def ensure(self, voicemail_id: str) -> Path | None:
        """The preview file, rendered once (concurrent asks share one render); ``None`` when none."""
        if self._max_s == 0:
            return None
        if self._spool is None:
            logger.info(
                "voicemail %s: no preview for the whisper (CALLCENTER_VOICEMAIL_SPOOL_DIR is not set, "
                "so Asterisk could not play it)",
                voicemail_id,
            )
            return None
        running = self._rendering.get(voicemail_id)
        if running is None:
            running = asyncio.ensure_future(self._ensure(voicemail_id))
            self._rendering[voicemail_id] = running
            running.add_done_callback(lambda _: self._rendering.pop(voicemail_id, None))
        return await asyncio.shield(running)

    async def _ensure(self, voicemail_id: str) -> Path | None:
        dest = self.path_of(voicemail_id)
        assert dest is not None
        try:
            voicemail = await self._voicemails.get(voicemail_id)
        except NotFoundError:
            logger.info("voicemail %s: no preview (the voicemail was erased)", voicemail_id)
            return None
        if voicemail.media_path is None:
            await asyncio.to_thread(dest.unlink, missing_ok=True)
            logger.info("voicemail %s: no preview (its audio was deleted by retention)", voicemail_id)
            return None
        if await asyncio.to_thread(dest.is_file):
            return dest
        try:
            source = self._media.path(voicemail.media_path)
            rendered = await asyncio.to_thread(self._render, source, dest)
        except (AudioDecodeError, EmptyAudioError, ValidationError) as exc:
            logger.info("voicemail %s: no preview (its audio cannot be read: %s)", voicemail_id, exc)
            return None
        except OSError as exc:
            logger.warning("voicemail %s: no preview (%s could not be written: %s)", voicemail_id, dest, exc)
            return None
        if rendered is None:
            logger.info("voicemail %s: no preview (no speech in the message)", voicemail_id)
        return rendered

    def _render(self, source: Path, dest: Path) -> Path | None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        preview = render_preview(source, dest, max_s=self._max_s)
        if preview is None:
            return None
        logger.info(
            "voicemail preview %s: %.1f s from %.1f s into the message",
            dest.name,
            preview.duration_s,
            preview.start_s,
        )
        return preview.path

    async def delete(self, voicemail_id: str) -> bool:
        """Delete the voicemail's preview; ``False`` when there was none."""
        path = self.path_of(voicemail_id)
        if path is None:
            return False
        existed = await asyncio.to_thread(path.is_file)
        await asyncio.to_thread(path.unlink, missing_ok=True)
        return existed

    async def erase_number(self, number: str) -> int:
        """Delete the previews of every voicemail left by ``number``; how many files went."""
        if self._spool is None:
            return 0
        deleted = 0
        for voicemail_id in await self._voicemails.ids_of_caller(number):
            deleted += await self.delete(voicemail_id)
        return deleted
