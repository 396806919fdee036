"""VoicemailService over SQLite, the media folder and an in-memory bus, with a scripted analyser.

The analyser is a typed fake of the ``SpeechAnalyser`` port (the real model is tested in
``tests/integration/media`` and by the worker test); here the job logic is under test: idempotency,
retry with backoff, permanent failures, triage, re-transcription and retention.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from callcenter.bus import Delivery
from callcenter.config import DatabaseSettings
from callcenter.errors import RedisUnavailableError, StoreUnavailableError, ValidationError
from callcenter.model.events import VoicemailRecorded, VoicemailSilent, VoicemailTranscribed
from callcenter.model.vocabulary import VoicemailStatus
from callcenter.store.database import create_engine, migrate
from callcenter.store.media_files import IntakeFolder, MediaFolder
from callcenter.store.sql_voicemails import SqlVoicemailRepository
from callcenter.tasks import where_waiting
from callcenter.voicemail.ports import SpeechResult, VoicemailFilter
from callcenter.voicemail.records import TranscriptSegment, Voicemail
from callcenter.voicemail.service import RECOVER_AFTER_S, STORE_TRIES, VoicemailService
from callcenter.wiring.voicemail import run_retention
from media.errors import AudioDecodeError
from tests.conftest import FakeClock
from tests.fakes.bus import InMemoryEventBus
from tests.waiting import eventually

AUDIO = b"RIFF....WAVEfmt fake audio bytes for the media folder"


class ScriptedAnalyser:
    """``SpeechAnalyser`` answering from a script: a result, or an exception to raise, per call."""

    def __init__(self, *script: SpeechResult | Exception) -> None:
        self.script = list(script)
        self.paths: list[str] = []

    async def analyse(self, path: str) -> SpeechResult:
        self.paths.append(path)
        step = self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        return step


def speech(text: str) -> SpeechResult:
    return SpeechResult(
        duration_s=21.5,
        speech_ratio=0.7,
        silent=False,
        text=text,
        language="en",
        confidence=0.81,
        segments=(TranscriptSegment(start_s=1.0, end_s=4.0, text=text),),
        model="tiny.en",
        seconds=0.9,
    )


SILENT = SpeechResult(duration_s=20.0, speech_ratio=0.0, silent=True, silent_reason="no speech (webrtcvad)")


class World:
    def __init__(
        self,
        service: VoicemailService,
        repo: SqlVoicemailRepository,
        bus: InMemoryEventBus,
        clock: FakeClock,
        sleeps: list[float],
        root: Path,
    ) -> None:
        self.service, self.repo, self.bus, self.clock, self.sleeps, self.root = (
            service,
            repo,
            bus,
            clock,
            sleeps,
            root,
        )
        self.intake = IntakeFolder(root / ".intake")

    async def deliver(self, event: VoicemailRecorded, deliveries: int = 1) -> None:
        await self.service.handle(Delivery(message_id="1-0", event=event, deliveries=deliveries))


@pytest.fixture
async def make_world(tmp_path: Path, clock: FakeClock) -> AsyncIterator[object]:
    settings = DatabaseSettings(url=f"sqlite+aiosqlite:///{tmp_path / 'db' / 'cc.db'}")
    await migrate(settings)
    engine = create_engine(settings)

    def build(analyser: ScriptedAnalyser, **options: object) -> World:
        bus = InMemoryEventBus()
        repo = SqlVoicemailRepository(engine)
        sleeps: list[float] = []

        async def sleep(seconds: float) -> None:
            sleeps.append(seconds)

        service = VoicemailService(
            repo,
            bus,
            MediaFolder(tmp_path / "media"),
            analyser,
            clock,
            sleep=sleep,
            intake=IntakeFolder(tmp_path / "media" / ".intake"),
            **options,  # type: ignore[arg-type]
        )
        return World(service, repo, bus, clock, sleeps, tmp_path / "media")

    yield build
    await engine.dispose()


async def test_a_recording_is_stored_transcribed_and_triaged(make_world, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    analyser = ScriptedAnalyser(
        speech("Hi, I was charged twice on my invoice, this is urgent. Call me back.")
    )
    world: World = make_world(analyser)
    voicemail = await world.service.store_recording(
        AUDIO, suffix=".wav", call_id="1700000000.42", queue="sales", caller="+14155550100", duration_s=21.0
    )
    assert voicemail.status is VoicemailStatus.RECORDED
    stored = world.root / voicemail.media_path  # type: ignore[operator]
    assert stored.read_bytes() == AUDIO
    assert voicemail.checksum == hashlib.sha256(AUDIO).hexdigest() and voicemail.size_bytes == len(AUDIO)
    (job,) = world.bus.of_type(VoicemailRecorded)
    assert isinstance(job, VoicemailRecorded) and job.voicemail_id == voicemail.id and job.revision == 1

    await world.deliver(job)

    assert analyser.paths == [str(stored.resolve())]
    done = await world.repo.get(voicemail.id)
    assert done.status is VoicemailStatus.TRANSCRIBED and done.silent is False
    assert done.intents == ("billing", "callback") and done.urgency == "urgent"
    assert done.preview.startswith("Hi, I was charged twice")
    transcript = await world.service.transcript(voicemail.id)
    assert transcript is not None and transcript.language == "en" and transcript.model == "tiny.en"
    (announced,) = world.bus.of_type(VoicemailTranscribed)
    assert isinstance(announced, VoicemailTranscribed)
    assert announced.event_id == f"voicemail-transcribed:{voicemail.id}:1"
    assert announced.intents == ("billing", "callback") and announced.caller == "+14155550100"


async def test_the_same_call_gives_one_voicemail(make_world) -> None:  # type: ignore[no-untyped-def]
    world: World = make_world(ScriptedAnalyser())
    first = await world.service.store_recording(
        AUDIO, suffix=".wav", call_id="c1", queue=None, caller="", duration_s=3
    )
    second = await world.service.store_recording(
        AUDIO, suffix=".wav", call_id="c1", queue=None, caller="", duration_s=3
    )
    assert first.id == second.id
    page = await world.service.list(
        VoicemailFilter(),
        cursor=None,
        limit=10,
    )
    assert len(page.items) == 1


class FlakyStore(SqlVoicemailRepository):
    """The SQL repository with its first ``failures`` inserts refused as an unreachable store."""

    def __init__(self, repo: SqlVoicemailRepository, failures: int) -> None:
        super().__init__(repo._engine)
        self.failures = failures

    async def add(self, voicemail: Voicemail) -> Voicemail:
        if self.failures:
            self.failures -= 1
            raise StoreUnavailableError("SQL store did not answer within 30 s while adding a voicemail")
        return await super().add(voicemail)


async def test_a_store_or_bus_blip_while_storing_a_recording_loses_nothing(make_world) -> None:  # type: ignore[no-untyped-def]
    """The store down for two tries and the bus for one: the message is stored once and its job queued once."""
    world: World = make_world(ScriptedAnalyser())
    flaky = FlakyStore(world.repo, failures=2)
    world.service._repo = flaky
    world.bus.fail_next(RedisUnavailableError("could not publish 1 events: ConnectionError()"))

    voicemail = await world.service.store_recording(
        AUDIO, suffix=".wav", call_id="c-blip", queue="sales", caller="+14155550100", duration_s=4
    )

    assert (await world.repo.get(voicemail.id)).caller == "+14155550100"
    assert [e.event_id for e in world.bus.of_type(VoicemailRecorded)] == [f"voicemail:{voicemail.id}:1"]
    assert world.sleeps == [1.0, 2.0, 1.0]  # two tries of the insert, one of the publication
    assert (world.root / voicemail.media_path).read_bytes() == AUDIO  # type: ignore[operator]


async def test_a_store_that_stays_down_fails_the_recording_after_its_tries(make_world) -> None:  # type: ignore[no-untyped-def]
    world: World = make_world(ScriptedAnalyser())
    world.service._repo = FlakyStore(world.repo, failures=STORE_TRIES)

    with pytest.raises(StoreUnavailableError):
        await world.service.store_recording(
            AUDIO, suffix=".wav", call_id="c-down", queue=None, caller="", duration_s=4
        )
    assert len(world.sleeps) == STORE_TRIES - 1
    assert max(world.sleeps) == 30.0
    assert world.bus.of_type(VoicemailRecorded) == []  # no job for a voicemail not stored


async def test_a_recording_whose_store_stays_down_is_stored_once_it_is_back(make_world) -> None:  # type: ignore[no-untyped-def]
    """The store is down through every try of the recording and the first recovery pass: the
    intake note keeps the message until a later pass stores it, once, with its job."""
    world: World = make_world(ScriptedAnalyser())
    world.service._repo = FlakyStore(world.repo, failures=STORE_TRIES + 1)
    with pytest.raises(StoreUnavailableError):
        await world.service.store_recording(
            AUDIO, suffix=".wav", call_id="c-outage", queue="sales", caller="+14155550100", duration_s=4
        )
    (owed,) = world.intake.owed()
    assert await world.service.recover() == 0, "a note this recent may still be in a live store's hands"

    world.clock.advance(RECOVER_AFTER_S + 1)
    with pytest.raises(StoreUnavailableError):
        await world.service.recover()  # still down: the note stays for the next pass
    assert [v.id for v in world.intake.owed()] == [owed.id]
    assert await world.service.recover() == 1

    stored = await world.repo.get(owed.id)
    assert (stored.caller, stored.queue, stored.call_id) == ("+14155550100", "sales", "c-outage")
    assert stored.status is VoicemailStatus.RECORDED
    assert (world.root / stored.media_path).read_bytes() == AUDIO  # type: ignore[operator]
    assert [e.event_id for e in world.bus.of_type(VoicemailRecorded)] == [f"voicemail:{owed.id}:1"]
    assert world.intake.owed() == []
    assert await world.service.recover() == 0


async def test_the_voicemail_upkeep_stores_stranded_recordings_from_start_up(make_world) -> None:  # type: ignore[no-untyped-def]
    """``serve`` (and each transcription worker) runs the upkeep loop: its first round, at start-up,
    stores what a store outage or a crash of the previous run left in the intake."""
    world: World = make_world(ScriptedAnalyser())
    world.service._repo = FlakyStore(world.repo, failures=STORE_TRIES)
    with pytest.raises(StoreUnavailableError):
        await world.service.store_recording(
            AUDIO, suffix=".wav", call_id="c-restart", queue="sales", caller="+14155550100", duration_s=4
        )
    world.clock.advance(RECOVER_AFTER_S + 1)

    upkeep = asyncio.create_task(run_retention(world.service))
    try:
        await eventually(lambda: not world.intake.owed(), what="the stranded recording stored")
        # Stopped between rounds, not in the middle of a query (as a shutdown would be, mostly).
        await eventually(lambda: "sleep" in where_waiting(upkeep.get_coro()), what="the round ended")
    finally:
        upkeep.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await upkeep
    assert [e.caller for e in world.bus.of_type(VoicemailRecorded)] == ["+14155550100"]  # type: ignore[attr-defined]


class RefusingStore(SqlVoicemailRepository):
    """The SQL repository refusing (not failing to reach) the insert of one voicemail."""

    def __init__(self, repo: SqlVoicemailRepository, refused: str) -> None:
        super().__init__(repo._engine)
        self.refused = refused

    async def add(self, voicemail: Voicemail) -> Voicemail:
        if voicemail.id == self.refused:
            raise ValidationError(f"voicemail {voicemail.id} refused")
        return await super().add(voicemail)


async def test_a_note_the_store_refuses_is_kept_and_does_not_hold_up_the_others(
    make_world, caplog: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    world: World = make_world(ScriptedAnalyser())
    world.service._repo = FlakyStore(world.repo, failures=2 * STORE_TRIES)
    for call in ("c-1", "c-2"):
        with pytest.raises(StoreUnavailableError):
            await world.service.store_recording(
                AUDIO, suffix=".wav", call_id=call, queue="q", caller="+14155550100", duration_s=4
            )
    first, second = sorted(world.intake.owed(), key=lambda v: v.call_id or "")
    world.service._repo = RefusingStore(world.repo, refused=first.id)
    world.clock.advance(RECOVER_AFTER_S + 1)

    assert await world.service.recover() == 1
    assert (await world.repo.get(second.id)).call_id == "c-2"
    assert [v.id for v in world.intake.owed()] == [first.id], "kept for a person"
    assert f"voicemail {first.id} of call c-1: the store refused its intake note" in caplog.text


async def test_a_note_left_by_a_crash_after_storing_changes_nothing_stored(make_world) -> None:  # type: ignore[no-untyped-def]
    """A crash between the store and the note's removal: the next pass finds the voicemail stored
    (and here transcribed already); it stays as it is and its job is queued again under the same id."""
    analyser = ScriptedAnalyser(speech("please call me back"))
    world: World = make_world(analyser)
    voicemail = await world.service.store_recording(
        AUDIO, suffix=".wav", call_id="c-crash", queue="q", caller="+14155550100", duration_s=3
    )
    assert world.intake.owed() == [], "the note goes once the voicemail and its job are stored"
    (job,) = world.bus.of_type(VoicemailRecorded)
    await world.deliver(job)  # type: ignore[arg-type]
    world.intake.keep(voicemail, at=world.clock.now())  # as if the process died before removing it

    world.clock.advance(RECOVER_AFTER_S + 1)
    assert await world.service.recover() == 1

    assert (await world.repo.get(voicemail.id)).status is VoicemailStatus.TRANSCRIBED
    jobs = world.bus.of_type(VoicemailRecorded)
    assert [e.event_id for e in jobs] == [job.event_id, job.event_id]
    await world.deliver(jobs[1])  # type: ignore[arg-type]
    assert len(analyser.paths) == 1, "transcribed once"
    assert world.intake.owed() == []


async def test_a_redelivered_job_is_not_transcribed_twice(make_world) -> None:  # type: ignore[no-untyped-def]
    analyser = ScriptedAnalyser(speech("please call me back"))
    world: World = make_world(analyser)
    voicemail = await world.service.store_recording(
        AUDIO, suffix=".wav", call_id="c", queue="q", caller="", duration_s=3
    )
    (job,) = world.bus.of_type(VoicemailRecorded)
    await world.deliver(job)
    await world.deliver(job, deliveries=2)  # e.g. the worker died after storing, before acknowledging
    assert len(analyser.paths) == 1
    announced = world.bus.of_type(VoicemailTranscribed)
    assert len(announced) == 2 and len({e.event_id for e in announced}) == 1, "same fact, same id"
    assert (await world.repo.get(voicemail.id)).attempts == 1


async def test_silence_is_marked_silent_without_a_transcript(make_world) -> None:  # type: ignore[no-untyped-def]
    world: World = make_world(ScriptedAnalyser(SILENT))
    voicemail = await world.service.store_recording(
        AUDIO, suffix=".wav", call_id="c", queue="q", caller="+1", duration_s=20
    )
    await world.deliver(world.bus.of_type(VoicemailRecorded)[0])  # type: ignore[arg-type]
    done = await world.repo.get(voicemail.id)
    assert done.status is VoicemailStatus.SILENT and done.silent is True and done.preview == ""
    assert await world.service.transcript(voicemail.id) is None
    (silent,) = world.bus.of_type(VoicemailSilent)
    assert isinstance(silent, VoicemailSilent) and silent.reason == "no speech (webrtcvad)"
    assert world.bus.of_type(VoicemailTranscribed) == []


async def test_transient_failures_are_retried_with_backoff(make_world) -> None:  # type: ignore[no-untyped-def]
    analyser = ScriptedAnalyser(RuntimeError("worker died"), RuntimeError("again"), speech("thanks"))
    world: World = make_world(analyser, attempts=3)
    voicemail = await world.service.store_recording(
        AUDIO, suffix=".wav", call_id="c", queue="q", caller="", duration_s=3
    )
    await world.deliver(world.bus.of_type(VoicemailRecorded)[0])  # type: ignore[arg-type]
    assert world.sleeps == [1.0, 2.0]
    done = await world.repo.get(voicemail.id)
    assert done.status is VoicemailStatus.TRANSCRIBED and done.attempts == 3 and done.error == ""


async def test_exhausted_attempts_leave_the_job_to_the_bus_then_fail_on_the_last_delivery(make_world) -> None:  # type: ignore[no-untyped-def]
    analyser = ScriptedAnalyser(*(RuntimeError(f"crash {i}") for i in range(4)))
    world: World = make_world(analyser, attempts=2, max_deliveries=2)
    voicemail = await world.service.store_recording(
        AUDIO, suffix=".wav", call_id="c", queue="q", caller="", duration_s=3
    )
    job = world.bus.of_type(VoicemailRecorded)[0]
    with pytest.raises(RuntimeError, match="crash 1"):
        await world.deliver(job, deliveries=1)  # type: ignore[arg-type]
    assert (await world.repo.get(voicemail.id)).status is VoicemailStatus.RECORDED, "still queued"
    with pytest.raises(RuntimeError, match="crash 3"):
        await world.deliver(job, deliveries=2)  # type: ignore[arg-type]
    failed = await world.repo.get(voicemail.id)
    assert failed.status is VoicemailStatus.FAILED and failed.attempts == 4 and "crash 3" in failed.error


async def test_audio_that_does_not_decode_fails_at_once(make_world) -> None:  # type: ignore[no-untyped-def]
    world: World = make_world(ScriptedAnalyser(AudioDecodeError("empty file (0 bytes)")))
    voicemail = await world.service.store_recording(
        b"", suffix=".wav", call_id="c", queue="q", caller="", duration_s=0
    )
    await world.deliver(world.bus.of_type(VoicemailRecorded)[0])  # type: ignore[arg-type]
    failed = await world.repo.get(voicemail.id)
    assert failed.status is VoicemailStatus.FAILED and "empty file" in failed.error
    assert world.sleeps == []


async def test_retranscribing_replaces_the_transcript_and_ignores_the_old_job(make_world) -> None:  # type: ignore[no-untyped-def]
    analyser = ScriptedAnalyser(speech("first"), speech("second"))
    world: World = make_world(analyser)
    voicemail = await world.service.store_recording(
        AUDIO, suffix=".wav", call_id="c", queue="q", caller="", duration_s=3
    )
    first_job = world.bus.of_type(VoicemailRecorded)[0]
    await world.deliver(first_job)  # type: ignore[arg-type]
    again = await world.service.retranscribe(voicemail.id)
    assert again.revision == 2
    second_job = world.bus.of_type(VoicemailRecorded)[1]
    await world.deliver(first_job, deliveries=2)  # type: ignore[arg-type]  # stale: does nothing
    assert len(analyser.paths) == 1
    await world.deliver(second_job)  # type: ignore[arg-type]
    transcript = await world.service.transcript(voicemail.id)
    assert transcript is not None and transcript.text == "second" and transcript.revision == 2


@pytest.mark.parametrize("keep", [True, False])
async def test_retention_deletes_old_audio(make_world, keep: bool) -> None:  # type: ignore[no-untyped-def]
    world: World = make_world(ScriptedAnalyser(speech("old news")), retention_days=30, keep_transcripts=keep)
    old = await world.service.store_recording(
        AUDIO,
        suffix=".wav",
        call_id="old",
        queue="q",
        caller="",
        duration_s=3,
        recorded_at=world.clock.now() - timedelta(days=31),
    )
    new = await world.service.store_recording(
        AUDIO, suffix=".wav", call_id="new", queue="q", caller="", duration_s=3
    )
    await world.deliver(world.bus.of_type(VoicemailRecorded)[0])  # type: ignore[arg-type]
    old_file = world.root / old.media_path  # type: ignore[operator]

    assert await world.service.purge() == 1
    assert not old_file.exists() and (world.root / new.media_path).exists()  # type: ignore[operator]
    assert (await world.repo.get(old.id)).media_path is None
    assert (await world.service.transcript(old.id) is not None) is keep
    assert await world.service.purge() == 0
