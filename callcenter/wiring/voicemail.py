"""Wiring of the voicemail service: triage rules, the service over the store, retention, and the
consumer that makes each voicemail a callback on the worklist (``CallbackSources.from_voicemail``).

Part of the composition root (``callcenter/app.py``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final

from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter.callbacks.sources import CallbackSources
from callcenter.clock import Clock
from callcenter.config import Settings
from callcenter.errors import ConfigError, DependencyError
from callcenter.store.media_files import IntakeFolder, MediaFolder
from callcenter.store.redis_bus import RedisEventBus
from callcenter.store.sql_voicemails import SqlVoicemailCallbackLinks, SqlVoicemailRepository
from callcenter.voicemail.callbacks import VoicemailCallbacks
from callcenter.voicemail.ports import SpeechAnalyser
from callcenter.voicemail.preview import VoicemailPreviews
from callcenter.voicemail.records import Voicemail
from callcenter.voicemail.service import VoicemailService
from callcenter.voicemail.triage import DEFAULT_RULES as DEFAULT_TRIAGE_RULES
from callcenter.voicemail.triage import TriageRules, parse_rules

logger = logging.getLogger(__name__)


#: How often retention looks for voicemail audio past its time.
RETENTION_EVERY_S: Final = 3600.0
#: How often recordings not yet stored (their intake notes) are looked for.
RECOVER_EVERY_S: Final = 60.0
#: The intake notes' folder, inside the media folder (the same disk as the audio).
INTAKE_FOLDER: Final = ".intake"


def triage_rules(settings: Settings) -> TriageRules:
    """The triage rules: the file named by ``CALLCENTER_VOICEMAIL_TRIAGE_RULES``, else the built-in ones.

    :raises ConfigError: naming the setting, for a file that cannot be read or parsed.
    """
    path = settings.voicemail.triage_rules
    if path is None:
        return DEFAULT_TRIAGE_RULES
    source = f"CALLCENTER_VOICEMAIL_TRIAGE_RULES={str(path)!r}"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{source}: {exc.strerror or exc}") from exc
    return parse_rules(text, source)


def voicemail_service_for(
    settings: Settings, engine: AsyncEngine, bus: RedisEventBus, clock: Clock, speech: SpeechAnalyser | None
) -> VoicemailService:
    """The voicemail service over the store, the bus and the media folder; ``speech`` may be absent."""
    repository = SqlVoicemailRepository(engine)
    media = MediaFolder(settings.voicemail_dir)
    return VoicemailService(
        repository,
        bus,
        media,
        speech,
        clock,
        rules=triage_rules(settings),
        attempts=settings.voicemail.attempts,
        max_deliveries=settings.bus.max_deliveries,
        retention_days=settings.voicemail.retention_days,
        keep_transcripts=settings.voicemail.keep_transcripts,
        previews=VoicemailPreviews(
            repository, media, settings.voicemail.spool_dir, max_s=settings.dispatch.preview_s
        ),
        intake=IntakeFolder(settings.voicemail_dir / INTAKE_FOLDER),
    )


async def run_retention(voicemails: VoicemailService) -> None:
    """From start-up: recordings not yet stored every minute (:meth:`VoicemailService.recover`);
    every hour, the files erasures left (:meth:`VoicemailService.finish_erasures`) and retention."""
    loop = asyncio.get_running_loop()
    purge_at = loop.time()
    while True:
        try:
            await voicemails.recover()
        except DependencyError as exc:
            logger.warning("voicemail intake: recordings not stored yet, trying again later: %s", exc)
        except Exception:
            logger.exception("voicemail intake failed; trying again later")
        if loop.time() >= purge_at:
            purge_at = loop.time() + RETENTION_EVERY_S
            try:
                await voicemails.finish_erasures()
                await voicemails.purge()
            except Exception:
                logger.exception("voicemail retention failed; trying again later")
        await asyncio.sleep(RECOVER_EVERY_S)


class SourcesCallbackRequests:
    """:class:`callcenter.voicemail.ports.CallbackRequests` through the callback sources and their notes."""

    def __init__(self, sources: CallbackSources, links: SqlVoicemailCallbackLinks) -> None:
        self._sources = sources
        self._links = links

    async def requested_by(self, voicemail_id: str) -> str | None:
        return await self._links.requested_by(voicemail_id)

    async def request(self, voicemail: Voicemail, note: str) -> str:
        assert voicemail.queue is not None, "a voicemail without a queue makes no callback"
        made = await self._sources.from_voicemail(
            voicemail.queue,
            voicemail.caller,
            voicemail_id=voicemail.id,
            left_at=voicemail.recorded_at,
            preview=note,
        )
        return made.callback.id


def voicemail_callbacks_for(
    settings: Settings, engine: AsyncEngine, sources: CallbackSources, clock: Clock
) -> VoicemailCallbacks:
    """The handler that makes each voicemail a callback (``CALLCENTER_VOICEMAIL_CALLBACK_SILENT``)."""
    return VoicemailCallbacks(
        SqlVoicemailRepository(engine),
        SourcesCallbackRequests(sources, SqlVoicemailCallbackLinks(engine)),
        clock,
        silent=settings.voicemail.callback_silent,
    )
