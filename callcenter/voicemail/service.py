"""The voicemail service: store recordings, run their transcription jobs, triage, retention (service).

A voicemail's transcription job is its :class:`VoicemailRecorded` event on the bus (Redis Streams):
the consumer group :data:`CONSUMER_GROUP` (``serve``'s child process pool in the embedded default,
``callcenter worker --transcribe`` processes in production) hands each job to one worker, acknowledges
it only after the result is stored, re-claims it from a worker that died, and dead-letters it after
``CALLCENTER_BUS_MAX_DELIVERIES``. Within one delivery a transient failure is retried
``CALLCENTER_VOICEMAIL_ATTEMPTS`` times with capped exponential backoff.

Jobs are idempotent: a result is stored only for the voicemail's current revision while it is still
``recorded``, in one transaction with its one transcript row; a job delivered again after that
publishes the same outcome event again (same ``event_id``: consumers de-duplicate) and does nothing else.

A recording is never lost to a store that is down or a process that dies while storing it: once its
audio is in the media folder, an intake note (:class:`VoicemailIntake`) holds the voicemail until its
record and job are stored. :meth:`VoicemailService.recover` (at start-up, then every minute) stores
what such notes still hold.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Collection, Iterable
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final, TypeVar

from callcenter.bus import Delivery, EventBus
from callcenter.clock import Clock
from callcenter.errors import CallCenterError, ConflictError, DependencyError
from callcenter.model.events import VoicemailRecorded, VoicemailSilent, VoicemailTranscribed
from callcenter.model.paging import Page
from callcenter.model.vocabulary import VoicemailStatus
from callcenter.voicemail.ports import (
    MediaStorage,
    SpeechAnalyser,
    SpeechResult,
    VoicemailFilter,
    VoicemailIntake,
    VoicemailRepository,
)
from callcenter.voicemail.preview import VoicemailPreviews
from callcenter.voicemail.records import Voicemail, VoicemailTranscript
from callcenter.voicemail.triage import DEFAULT_RULES, TriageRules, triage
from media.errors import AudioDecodeError, EmptyAudioError

logger = logging.getLogger(__name__)

R = TypeVar("R")

#: The bus consumer group of transcription workers.
CONSUMER_GROUP: Final = "voicemail-transcription"

#: The event types :meth:`VoicemailService.handle` acts on; the bus acknowledges the others unread (``only``).
HANDLED_EVENTS: Final = frozenset({VoicemailRecorded.event_type})
BACKOFF_MIN_S: Final = 1.0
BACKOFF_MAX_S: Final = 30.0
#: Tries to store a recording's voicemail, and to queue its job, while the store or the bus cannot
#: be reached (with the backoff above: about a minute and a half in all).
STORE_TRIES: Final = 8
#: How many voicemails one retention pass deletes at most (the next pass continues).
PURGE_BATCH: Final = 500
#: How old an intake note must be before :meth:`VoicemailService.recover` takes it over: longer than
#: :meth:`VoicemailService.store_recording` keeps trying (about 90 s), so it never races a live store.
RECOVER_AFTER_S: Final = 180.0


class VoicemailService:
    """Voicemails from recording to triaged transcript.

    :param media: the media folder (its blocking calls run in a thread).
    :param attempts: tries per delivery of a job before the bus redelivers it.
    :param sleep: how backoff waits (tests pass a fake).
    :param previews: the whispers' voicemail previews (deleted with the audio by retention).
    :param intake: notes of recordings not yet stored (see the module docstring); without it a
        recording whose store stays down is lost to the product.
    """

    def __init__(
        self,
        repository: VoicemailRepository,
        bus: EventBus,
        media: MediaStorage,
        analyser: SpeechAnalyser | None,
        clock: Clock,
        *,
        rules: TriageRules = DEFAULT_RULES,
        attempts: int = 3,
        max_deliveries: int = 5,
        retention_days: int = 90,
        keep_transcripts: bool = True,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        previews: VoicemailPreviews | None = None,
        intake: VoicemailIntake | None = None,
    ) -> None:
        self._previews = previews
        self._intake = intake
        self._repo = repository
        self._bus = bus
        self._media = media
        self._analyser = analyser
        self._clock = clock
        self._rules = rules
        self._attempts = attempts
        self._max_deliveries = max_deliveries
        self._retention_days = retention_days
        self._keep_transcripts = keep_transcripts
        self._sleep = sleep

    # --- recording ---

    async def store_recording(
        self,
        source: Path | bytes,
        *,
        suffix: str,
        call_id: str | None,
        queue: str | None,
        caller: str,
        duration_s: float,
        recorded_at: datetime | None = None,
    ) -> Voicemail:
        """Keep the audio, store the voicemail and queue its transcription.

        One voicemail per call: storing the same call's recording again returns the first voicemail
        (its id is derived from the call id), and its job is published again (harmless).

        A store or bus that cannot be reached is tried again with backoff (:data:`STORE_TRIES`), so a
        blip does not lose the message; both steps are idempotent. From the moment the audio is saved
        an intake note holds the voicemail until both are done, so a store that stays down longer, or
        a crash in between, is made good by :meth:`recover`.

        :raises DependencyError: the store or the bus stayed unreachable. The audio and the note are
            in the media folder (:meth:`recover` stores them later), and the caller still holds its
            source (Asterisk's copy, the spool file).
        """
        at = recorded_at or self._clock.now()
        voicemail_id = (
            f"vm-{uuid.uuid5(uuid.NAMESPACE_URL, 'call:' + call_id).hex}"
            if call_id
            else f"vm-{uuid.uuid4().hex}"
        )
        stored = await asyncio.to_thread(self._media.save, source, name=voicemail_id, suffix=suffix, at=at)
        relative, checksum, size = stored.relative_path, stored.checksum, stored.size_bytes
        voicemail = Voicemail(
            id=voicemail_id,
            call_id=call_id,
            queue=queue,
            caller=caller,
            recorded_at=at,
            media_path=relative,
            checksum=checksum,
            size_bytes=size,
            duration_s=round(duration_s, 3),
            status=VoicemailStatus.RECORDED,
            updated_at=self._clock.now(),
        )
        if self._intake is not None:
            await asyncio.to_thread(self._intake.keep, voicemail, at=self._clock.now())
        stored_voicemail = await self._persisting(
            "storing it", voicemail_id, lambda: self._repo.add(voicemail)
        )
        await self._persisting(
            "queueing its transcription", voicemail_id, lambda: self._publish_job(stored_voicemail)
        )
        if self._intake is not None:
            await asyncio.to_thread(self._intake.done, voicemail_id)
        return stored_voicemail

    async def recover(self, *, older_than_s: float = RECOVER_AFTER_S) -> int:
        """Store the voicemails that intake notes still hold (kept more than ``older_than_s`` ago):
        their record, then their transcription job, then the note goes. Returns how many.

        Both steps are idempotent, so processes recovering side by side, or a store that finished
        just before, do no harm: a voicemail already stored is kept as stored (an erased caller stays
        erased) and its job is queued again under the same event id.

        A note the store refuses (anything but unreachable) is logged and kept for a person; the
        others go on.

        :raises DependencyError: the store or the bus is still unreachable (the notes stay, for the
            next pass; those stored before the failure are done).
        """
        if self._intake is None:
            return 0
        kept_by = self._clock.now() - timedelta(seconds=older_than_s)
        owed = await asyncio.to_thread(self._intake.owed, kept_by=kept_by)
        recovered = 0
        for voicemail in owed:
            if not await asyncio.to_thread(self._intake.has, voicemail.id):
                continue  # stored meanwhile
            try:
                stored = await self._repo.add(voicemail)
            except DependencyError:
                raise
            except CallCenterError as exc:
                logger.error(
                    "voicemail %s of call %s: the store refused its intake note (%s); the note is kept",
                    voicemail.id,
                    voicemail.call_id,
                    exc,
                )
                continue
            await self._publish_job(stored)
            await asyncio.to_thread(self._intake.done, voicemail.id)
            logger.warning(
                "voicemail %s of call %s (recorded %s): stored from its intake note",
                voicemail.id,
                voicemail.call_id,
                voicemail.recorded_at.isoformat(),
            )
            recovered += 1
        return recovered

    async def _persisting(self, doing: str, voicemail_id: str, step: Callable[[], Awaitable[R]]) -> R:
        """``step`` (idempotent), tried again with backoff while the store or the bus is unreachable."""
        delay = BACKOFF_MIN_S
        for attempt in range(1, STORE_TRIES + 1):
            try:
                return await step()
            except DependencyError as exc:
                if attempt == STORE_TRIES:
                    logger.error("voicemail %s: %s failed %d times: %s", voicemail_id, doing, attempt, exc)
                    raise
                logger.warning(
                    "voicemail %s: %s failed (%s); trying again in %.0fs", voicemail_id, doing, exc, delay
                )
                await self._sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX_S)
        raise AssertionError("unreachable")  # pragma: no cover

    async def retranscribe(self, voicemail_id: str) -> Voicemail:
        """Queue a voicemail for transcription again (a better model, a fixed failure); idempotent per request."""
        voicemail = await self._repo.request_revision(voicemail_id, self._clock.now())
        await self._publish_job(voicemail)
        return voicemail

    async def _publish_job(self, voicemail: Voicemail) -> None:
        await self._bus.publish(
            VoicemailRecorded(
                event_id=f"voicemail:{voicemail.id}:{voicemail.revision}",
                occurred_at=self._clock.now(),
                voicemail_id=voicemail.id,
                call_id=voicemail.call_id,
                queue=voicemail.queue,
                caller=voicemail.caller,
                duration_s=voicemail.duration_s,
                revision=voicemail.revision,
            )
        )

    # --- the transcription job ---

    async def handle(self, delivery: Delivery) -> None:
        """The bus handler of :data:`CONSUMER_GROUP`: runs voicemail jobs, acknowledges other events."""
        event = delivery.event
        if isinstance(event, VoicemailRecorded):
            await self.transcribe(
                event.voicemail_id, event.revision, last_delivery=delivery.deliveries >= self._max_deliveries
            )

    async def transcribe(self, voicemail_id: str, revision: int, *, last_delivery: bool = False) -> None:
        """Run the job of ``revision`` of a voicemail (see the module docstring).

        :raises Exception: the last transient error when every attempt of this delivery failed, so the
            bus redelivers the job (on the last delivery the voicemail is marked ``failed`` first).
        """
        if self._analyser is None:
            raise RuntimeError("this process has no speech analyser")
        voicemail = await self._repo.get(voicemail_id)
        if voicemail.revision != revision:
            logger.info(
                "voicemail %s: job of revision %d superseded by %d",
                voicemail_id,
                revision,
                voicemail.revision,
            )
            return
        if voicemail.status is not VoicemailStatus.RECORDED:
            await self._announce(voicemail)  # done before (a redelivery): announce again, same event id
            return
        if voicemail.media_path is None:
            await self._fail(voicemail, "the audio was deleted before it was transcribed", final=True)
            return
        path = str(self._media.path(voicemail.media_path))
        attempts = voicemail.attempts
        for attempt in range(1, self._attempts + 1):
            logger.info(
                "voicemail %s: transcribing (revision %d, attempt %d)", voicemail_id, revision, attempts + 1
            )
            try:
                result = await self._analyser.analyse(path)
            except EmptyAudioError as exc:
                # A recording of nothing (the caller hung up at the beep): no speech, not a fault.
                empty = SpeechResult(
                    duration_s=0.0, speech_ratio=0.0, silent=True, silent_reason=f"empty: {exc}"
                )
                await self._finish(replace(voicemail, attempts=attempts + 1), empty)
                return
            except AudioDecodeError as exc:
                await self._fail(voicemail, f"not decodable audio: {exc}", final=True)
                return
            except Exception as exc:
                attempts += 1
                final = last_delivery and attempt == self._attempts
                await self._repo.set_attempt(
                    voicemail_id,
                    revision,
                    attempts=attempts,
                    error=f"{type(exc).__name__}: {exc}",
                    status=VoicemailStatus.FAILED if final else VoicemailStatus.RECORDED,
                    at=self._clock.now(),
                )
                if attempt == self._attempts:
                    raise
                delay = min(BACKOFF_MIN_S * 2 ** (attempt - 1), BACKOFF_MAX_S)
                logger.warning(
                    "voicemail %s: attempt failed (%r); retrying in %.1fs", voicemail_id, exc, delay
                )
                await self._sleep(delay)
                continue
            await self._finish(replace(voicemail, attempts=attempts + 1), result)
            return

    async def _finish(self, voicemail: Voicemail, result: SpeechResult) -> None:
        now = self._clock.now()
        transcript: VoicemailTranscript | None = None
        if result.silent or not result.text:
            done = replace(
                voicemail,
                status=VoicemailStatus.SILENT,
                silent=True,
                speech_ratio=result.speech_ratio,
                duration_s=result.duration_s,
                error="",
                intents=(),
                urgency="normal",
                preview="",
                updated_at=now,
            )
        else:
            found = triage(result.text, self._rules)
            done = replace(
                voicemail,
                status=VoicemailStatus.TRANSCRIBED,
                silent=False,
                speech_ratio=result.speech_ratio,
                duration_s=result.duration_s,
                error="",
                intents=found.intents,
                urgency=found.urgency,
                preview=found.preview,
                updated_at=now,
            )
            transcript = VoicemailTranscript(
                voicemail_id=voicemail.id,
                text=result.text,
                language=result.language,
                confidence=result.confidence,
                segments=result.segments,
                model=result.model,
                revision=voicemail.revision,
                transcribed_at=now,
            )
        if await self._repo.save_result(done, transcript):
            logger.info(
                "voicemail %s: %s (%.1fs of audio in %.1fs)",
                voicemail.id,
                done.status.value,
                result.duration_s,
                result.seconds,
            )
            await self._announce(done, reason=result.silent_reason)
        else:
            logger.info(
                "voicemail %s: result of revision %d not stored (superseded)",
                voicemail.id,
                voicemail.revision,
            )

    async def _fail(self, voicemail: Voicemail, error: str, *, final: bool) -> None:
        logger.error("voicemail %s: %s", voicemail.id, error)
        await self._repo.set_attempt(
            voicemail.id,
            voicemail.revision,
            attempts=voicemail.attempts + 1,
            error=error,
            status=VoicemailStatus.FAILED if final else VoicemailStatus.RECORDED,
            at=self._clock.now(),
        )

    async def _announce(self, voicemail: Voicemail, *, reason: str = "") -> None:
        """Publish the outcome event of a finished voicemail (stable ids: a repeat is a duplicate)."""
        if voicemail.status is VoicemailStatus.TRANSCRIBED:
            transcript = await self._repo.transcript(voicemail.id)
            await self._bus.publish(
                VoicemailTranscribed(
                    event_id=f"voicemail-transcribed:{voicemail.id}:{voicemail.revision}",
                    occurred_at=voicemail.updated_at or self._clock.now(),
                    voicemail_id=voicemail.id,
                    call_id=voicemail.call_id,
                    queue=voicemail.queue,
                    caller=voicemail.caller,
                    language=transcript.language if transcript else "",
                    preview=voicemail.preview,
                    intents=voicemail.intents,
                    urgency=voicemail.urgency,
                    revision=voicemail.revision,
                )
            )
        elif voicemail.status is VoicemailStatus.SILENT:
            await self._bus.publish(
                VoicemailSilent(
                    event_id=f"voicemail-silent:{voicemail.id}:{voicemail.revision}",
                    occurred_at=voicemail.updated_at or self._clock.now(),
                    voicemail_id=voicemail.id,
                    call_id=voicemail.call_id,
                    queue=voicemail.queue,
                    caller=voicemail.caller,
                    reason=reason,
                    revision=voicemail.revision,
                )
            )

    @property
    def previews(self) -> VoicemailPreviews | None:
        """The previews of voicemails that the dispatcher's whisper plays, when set up."""
        return self._previews

    async def erase_caller(self, number: str) -> int:
        """Delete what a number's erasure must remove beside the voicemail records: the previews of
        its messages in the folder shared with Asterisk. How many files went."""
        return await self._previews.erase_number(number) if self._previews is not None else 0

    async def erase_files(self, voicemail_ids: Collection[str]) -> tuple[int, int, tuple[str, ...]]:
        """Delete the files of an erased number's voicemails, after the erasure's commit: the audio
        and the whispers' previews.

        A file that cannot be deleted is logged and returned (it is never silently kept); the others
        are still deleted, and the upkeep (:meth:`finish_erasures`) tries that one again. Files
        already gone count for nothing (a repeat is harmless).
        Returns (audio files deleted, previews deleted, the files not deleted).
        """
        audio, failed = await self._delete_erased_audio(await self._repo.erased_audio(voicemail_ids, None))
        previews = 0
        if self._previews is not None:
            for voicemail_id in voicemail_ids:
                try:
                    previews += await self._previews.delete(voicemail_id)
                except OSError as exc:
                    logger.error("erasure: preview of voicemail %s not deleted: %s", voicemail_id, exc)
                    failed.append(f"preview:{voicemail_id}")
        return audio, previews, tuple(failed)

    async def finish_erasures(self) -> int:
        """Delete the audio erasures left on disk (a crash between an erasure's commit and its file
        deletion, or a file that could not be deleted then), with its previews. How many files went."""
        left = await self._repo.erased_audio(None, PURGE_BATCH)
        deleted, failed = await self._delete_erased_audio(left)
        if self._previews is not None:
            for voicemail_id, _ in left:
                try:
                    await self._previews.delete(voicemail_id)
                except OSError as exc:
                    logger.error("erasure: preview of voicemail %s not deleted: %s", voicemail_id, exc)
        if left:
            logger.warning(
                "erasure: %d voicemail file(s) an erasure had left deleted now, %d still not",
                deleted,
                len(failed),
            )
        return deleted

    async def _delete_erased_audio(self, erased: Iterable[tuple[str, str]]) -> tuple[int, list[str]]:
        """Delete each (voicemail id, audio path) and forget the paths of those gone; returns (files
        deleted, paths not deleted)."""
        deleted = 0
        gone: list[str] = []
        failed: list[str] = []
        for voicemail_id, relative in erased:
            try:
                deleted += await asyncio.to_thread(self._media.delete, relative)
            except (OSError, CallCenterError) as exc:
                logger.error("erasure: voicemail audio %s not deleted: %s", relative, exc)
                failed.append(relative)
            else:
                gone.append(voicemail_id)
        await self._repo.audio_gone(gone)
        return deleted, failed

    # --- reading ---

    async def list(self, flt: VoicemailFilter, *, cursor: str | None, limit: int) -> Page[Voicemail]:
        return await self._repo.list(flt, cursor=cursor, limit=limit)

    async def get(self, voicemail_id: str) -> Voicemail:
        return await self._repo.get(voicemail_id)

    def audio_path(self, voicemail: Voicemail) -> Path:
        """Where the voicemail's audio is. :raises ConflictError: once retention deleted it."""
        if voicemail.media_path is None:
            raise ConflictError(f"the audio of voicemail {voicemail.id!r} was deleted (retention)")
        return self._media.path(voicemail.media_path)

    async def with_transcripts(
        self, voicemail_ids: Collection[str]
    ) -> dict[str, tuple[Voicemail, VoicemailTranscript | None]]:
        """The voicemails of ``voicemail_ids`` with their transcripts; ids not stored are left out."""
        return await self._repo.with_transcripts(voicemail_ids)

    async def transcript(self, voicemail_id: str) -> VoicemailTranscript | None:
        """:raises NotFoundError: for an unknown voicemail."""
        await self._repo.get(voicemail_id)
        return await self._repo.transcript(voicemail_id)

    # --- retention ---

    async def purge(self) -> int:
        """Delete audio older than the retention period (and, by setting, transcripts); return how many."""
        if self._retention_days <= 0:
            return 0
        now = self._clock.now()
        before = now - timedelta(days=self._retention_days)
        due = await self._repo.audio_older_than(before, PURGE_BATCH)
        for voicemail in due:
            assert voicemail.media_path is not None
            await asyncio.to_thread(self._media.delete, voicemail.media_path)
            if self._previews is not None:
                await self._previews.delete(voicemail.id)  # the start of the same message
            await self._repo.audio_deleted(voicemail.id, now, drop_transcript=not self._keep_transcripts)
        if due:
            logger.info(
                "retention: deleted the audio of %d voicemail(s) older than %s", len(due), before.isoformat()
            )
        return len(due)
