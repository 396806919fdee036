"""Erasing a number on SQLite and PostgreSQL: the SMS engine, the callback and voicemail stores and the
media folder together, as ``POST /api/v1/erasures`` runs them."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path

import pytest
from sqlalchemy import String, Text, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter.callbacks.attempts import start_attempt
from callcenter.callbacks.dispatch_ports import DoNotCallError
from callcenter.callbacks.lifecycle import move
from callcenter.callbacks.ports import StaleCallbackError
from callcenter.callbacks.service import CallbackService
from callcenter.callbacks.sources import CallbackSources
from callcenter.errors import ConflictError
from callcenter.model.callbacks import Actor
from callcenter.model.events import CallbackStateChanged, CallEnded
from callcenter.model.records import AuditEntry, CallRecord, QueueRecord
from callcenter.model.vocabulary import (
    ActorKind,
    AttemptResult,
    CallbackState,
    CallOutcome,
    EntryPoint,
    Role,
    VoicemailStatus,
)
from callcenter.sms.consent import ConsentStatus
from callcenter.sms.records import CallbackRequestState, Erasure
from callcenter.sms.service import EngineSettings, Inbound, SmsEngine
from callcenter.sms.templates import parse_templates
from callcenter.store.media_files import MediaFolder
from callcenter.store.sql_dispatch import SqlDispatchStore
from callcenter.store.sql_models import Base, CallRow
from callcenter.store.sql_repos import SqlAuditLog, SqlCallRepository, SqlQueueRepository
from callcenter.store.sql_sms import SqlSmsStore
from callcenter.store.sql_voicemails import SqlVoicemailRepository
from callcenter.voicemail.records import TranscriptSegment, VoicemailTranscript
from callcenter.voicemail.service import VoicemailService
from tests.conftest import FakeClock
from tests.fakes.bus import InMemoryEventBus
from tests.fakes.callbacks import FlatDayPlanner
from tests.fakes.sms import RecordingSmsGateway
from tests.fakes.store import InMemoryQueueRepository

TEMPLATES = parse_templates(resources.files("callcenter.sms").joinpath("templates.toml").read_text("utf-8"))
#: 11:00 in New York.
T0 = datetime(2026, 11, 23, 16, 0, tzinfo=UTC)
NUMBER = "+12125550123"
OTHER = "+12125550199"
DISPATCHER = Actor(ActorKind.SYSTEM, "dispatcher")
ROLE = "callback-dispatcher"


@dataclass
class World:
    sql: AsyncEngine
    clock: FakeClock
    bus: InMemoryEventBus
    sms: SmsEngine
    gateway: RecordingSmsGateway
    calls: SqlCallRepository
    callbacks: SqlDispatchStore
    sources: CallbackSources
    voicemails: VoicemailService
    voicemail_repo: SqlVoicemailRepository
    media: MediaFolder

    async def call(self, call_id: str, caller: str = NUMBER) -> None:
        now = self.clock.now()
        await self.calls.upsert(
            CallRecord(
                id=call_id,
                channel_id=call_id,
                linkedid=call_id,
                entry_point=EntryPoint.ARI,
                caller=caller,
                caller_name="Ann Example" if caller == NUMBER else "Bob Other",
                dialled="3000",
                queue=None,
                arrived_at=now,
                ended_at=now,
                outcome=CallOutcome.VOICEMAIL,
            )
        )

    async def voicemail(self, call_id: str, caller: str = NUMBER) -> str:
        name = "Ann" if caller == NUMBER else "Bob"
        voicemail = await self.voicemails.store_recording(
            b"RIFF fake audio of " + caller.encode(),
            suffix=".wav",
            call_id=call_id,
            queue="sales",
            caller=caller,
            duration_s=4.0,
        )
        done = dataclasses.replace(
            voicemail, status=VoicemailStatus.TRANSCRIBED, silent=False, preview="please call me back"
        )
        transcript = VoicemailTranscript(
            voicemail_id=voicemail.id,
            text=f"hi this is {name} please call me back",
            language="en",
            confidence=0.9,
            segments=(TranscriptSegment(start_s=0.0, end_s=2.0, text=f"hi this is {name}"),),
            model="tiny.en",
            revision=voicemail.revision,
            transcribed_at=self.clock.now(),
        )
        assert await self.voicemail_repo.save_result(done, transcript)
        assert voicemail.media_path is not None
        return voicemail.media_path

    async def erase(self, number: str = NUMBER) -> Erasure:
        """What ``POST /api/v1/erasures`` does: the SQL part, then the files after the commit."""
        erasure = await self.sms.erase(number)
        audio, previews, failed = await self.voicemails.erase_files(erasure.voicemail_ids)
        return dataclasses.replace(erasure, audio_files=audio, previews=previews, files_not_deleted=failed)


@pytest.fixture
async def world(engine: AsyncEngine, tmp_path: Path) -> AsyncIterator[World]:
    clock = FakeClock(T0)
    bus = InMemoryEventBus()
    queues = InMemoryQueueRepository()
    await queues.put(QueueRecord(name="sales"))
    await queues.put(QueueRecord(name="support"))
    callbacks = SqlDispatchStore(engine)
    service = CallbackService(callbacks, FlatDayPlanner(queues), queues, bus, clock)
    calls = SqlCallRepository(engine)
    gateway = RecordingSmsGateway(clock)
    sms = SmsEngine(
        SqlSmsStore(engine),
        gateway,
        calls,
        SqlQueueRepository(engine),
        clock,
        EngineSettings(templates=TEMPLATES, consent_secret=b"test-secret"),
    )
    sms.publish = bus.publish
    media = MediaFolder(tmp_path / "media")
    repo = SqlVoicemailRepository(engine)
    voicemails = VoicemailService(repo, bus, media, None, clock)
    yield World(
        engine,
        clock,
        bus,
        sms,
        gateway,
        calls,
        callbacks,
        CallbackSources(callbacks, service, bus, clock),
        voicemails,
        repo,
        media,
    )


def _ended(call_id: str, at: datetime) -> CallEnded:
    return CallEnded(
        event_id=call_id,
        occurred_at=at,
        call_id=call_id,
        outcome=CallOutcome.VOICEMAIL,
        entry_point=EntryPoint.ARI,
        caller=NUMBER,
    )


async def _rows_naming(sql: AsyncEngine, text: str) -> dict[str, int]:
    """How many rows of every table hold ``text`` in a text column, by table."""
    found: dict[str, int] = {}
    async with sql.connect() as connection:
        for table in Base.metadata.sorted_tables:
            columns = [c for c in table.columns if isinstance(c.type, String | Text)]
            for column in columns:
                count = await connection.scalar(
                    select(func.count()).select_from(table).where(column.contains(text))
                )
                if count:
                    found[f"{table.name}.{column.name}"] = int(count)
    return found


async def test_erasure_leaves_no_row_or_file_with_the_number_and_keeps_the_counts(world: World) -> None:
    # The person called, left a voicemail, got texts, replied STOP, and is owed two callbacks.
    await world.call("call-1")
    audio = await world.voicemail("call-1")
    await world.call("call-2", caller=OTHER)
    other_audio = await world.voicemail("call-2", caller=OTHER)
    await world.sms.receive(Inbound(sender=NUMBER, text="1", provider="recording", provider_id="in-0"))
    assert len(await world.sms.callback_requests(number=NUMBER, open_only=True)) == 1
    await world.sms.receive(Inbound(sender=NUMBER, text="STOP", provider="recording", provider_id="in-1"))
    await world.sms.send_due()
    sent_before = len(world.gateway.to(NUMBER))
    due = await world.sources.follow_up("a1", "sales", NUMBER, at=T0, note="Ann wants a quote for 3 rooms")
    dialled = (await world.sources.follow_up("a1", "support", NUMBER, at=T0, note="broken boiler")).callback
    moved, change, attempt = start_attempt(dialled, at=T0, fence=1, actor=DISPATCHER)
    await world.callbacks.start_attempt(moved, change, attempt, role=ROLE)
    await world.callbacks.block_number(NUMBER, by="supervisor:sue", reason="asked by phone", at=T0)
    audit = SqlAuditLog(world.sql)
    for target in (f"number={NUMBER}", f"number={NUMBER}9"):  # the second is another number
        await audit.append(
            AuditEntry(at=T0, actor="token:sue", role=Role.SUPERVISOR, action="PUT /contacts", target=target)
        )
    assert await _rows_naming(world.sql, NUMBER)  # the scan below can see the number

    world.clock.advance(60)
    erased = await world.erase()

    assert erased.calls == 1 and erased.voicemails == 1 and erased.transcripts == 1
    assert erased.audio_files == 1 and erased.files_not_deleted == ()
    assert (erased.callbacks, erased.callbacks_cancelled, erased.callback_attempts) == (2, 2, 1)
    assert erased.callback_notes >= 2 and erased.do_not_call_kept and erased.audit_entries == 1
    # No row anywhere still holds the number, but the do-not-call list (a legal block, kept on purpose)
    # and the audit entry about another number that begins with it.
    assert await _rows_naming(world.sql, NUMBER) == {"do_not_call.number": 1, "audit_log.target": 1}
    targets = {e.target for e in (await audit.list(cursor=None, limit=10)).items}
    assert targets == {f"number={erased.pseudonym}", f"number={NUMBER}9"}
    assert await _rows_naming(world.sql, "Ann") == {}, "no name, note, preview or transcript is left"
    assert not world.media.path(audio).exists()
    assert world.media.path(other_audio).exists(), "another caller's voicemail is untouched"

    # The open callbacks are closed by the erasure and published as any other cancellation.
    for callback_id in (due.callback.id, dialled.id):
        stored = await world.callbacks.get(callback_id)
        assert stored.state is CallbackState.CANCELLED and stored.number == erased.pseudonym
        last = (await world.callbacks.changes(callback_id))[-1]
        assert (last.actor, last.reason) == (Actor(ActorKind.SYSTEM, "erasure"), "erased")
    events = [
        e
        for e in world.bus.of_type(CallbackStateChanged)
        if isinstance(e, CallbackStateChanged) and e.state is CallbackState.CANCELLED
    ]
    assert {e.callback_id for e in events} == {due.callback.id, dialled.id}
    assert all(e.number == erased.pseudonym for e in events)
    # The dispatcher, holding the callback it read before the erasure, cannot dial it (even with the
    # number off the do-not-call list, which would refuse the dial by itself).
    assert await world.callbacks.unblock_number(NUMBER)
    moved, change, attempt = start_attempt(due.callback, at=T0, fence=1, actor=DISPATCHER)
    with pytest.raises(StaleCallbackError):
        await world.callbacks.start_attempt(moved, change, attempt, role=ROLE)
    assert await world.callbacks.open_for_number(erased.pseudonym) == ()
    assert erased.callback_requests == 1
    (request,) = await SqlSmsStore(world.sql).callback_requests(number=erased.pseudonym, open_only=False)
    assert request.state is CallbackRequestState.CANCELLED, "an open request by text is closed too"

    # The calls still count: same rows, same outcomes, under the pseudonym.
    async with world.sql.connect() as connection:
        outcomes = (
            await connection.execute(select(CallRow.caller, CallRow.outcome).order_by(CallRow.id))
        ).all()
    assert [tuple(o) for o in outcomes] == [(erased.pseudonym, "voicemail"), (OTHER, "voicemail")]
    assert (await world.voicemail_repo.get(erased.voicemail_ids[0])).caller == erased.pseudonym

    # The opt-out still holds: a new missed call from the number is texted nothing.
    assert (await world.sms.consent(NUMBER)).status is ConsentStatus.OPTED_OUT
    world.clock.advance(86400 * 3)
    await world.call("call-9")
    await world.sms.on_call_ended(_ended("call-9", world.clock.now()))
    await world.sms.send_due()
    assert len(world.gateway.to(NUMBER)) == sent_before

    # Erasing again is harmless: only the call made since is pseudonymised.
    again = await world.erase()
    assert again.pseudonym == erased.pseudonym
    assert (again.calls, again.voicemails, again.transcripts, again.callbacks, again.audio_files) == (
        1,
        0,
        0,
        0,
        0,
    )
    assert (again.callbacks_cancelled, again.files_not_deleted) == (0, ())


async def test_a_connected_callback_goes_on_and_is_never_dialled_again(world: World) -> None:
    callback = (await world.sources.follow_up("a1", "sales", NUMBER, at=T0, note="quote")).callback
    moved, change, attempt = start_attempt(callback, at=T0, fence=1, actor=DISPATCHER)
    await world.callbacks.start_attempt(moved, change, attempt, role=ROLE)
    connected, change = move(moved, CallbackState.CONNECTED, at=T0, actor=DISPATCHER)
    await world.callbacks.move(connected, change)
    erased = await world.erase()
    assert (erased.callbacks, erased.callbacks_connected, erased.callbacks_cancelled) == (1, 1, 0)
    stored = await world.callbacks.get(callback.id)
    assert (stored.state, stored.number) == (CallbackState.CONNECTED, erased.pseudonym)
    # The agent found nobody on the line: the retry would dial the pseudonym, and is refused.
    retry, change = move(
        stored, CallbackState.RETRY_WAIT, at=T0, actor=DISPATCHER, result=AttemptResult.NO_ANSWER
    )
    await world.callbacks.move(retry, change)
    moved, change, attempt = start_attempt(retry, at=T0, fence=1, actor=DISPATCHER)
    with pytest.raises(DoNotCallError, match="erased"):
        await world.callbacks.start_attempt(moved, change, attempt, role=ROLE)
    assert (await world.callbacks.get(callback.id)).state is CallbackState.RETRY_WAIT, "nothing dialled"


async def test_a_file_that_cannot_be_deleted_is_reported_and_the_rest_erased(world: World) -> None:
    audio = await world.voicemail("call-1")
    path = world.media.path(audio)
    path.unlink()
    path.mkdir()  # something the erasure cannot unlink where the recording was
    (path / "keep").write_bytes(b"x")
    erased = await world.erase()
    assert erased.files_not_deleted == (audio,) and erased.audio_files == 0
    assert erased.voicemails == 1 and await _rows_naming(world.sql, NUMBER) == {}

    # The upkeep tries again until the file goes (here the obstacle is cleared, the voice is back).
    assert await world.voicemails.finish_erasures() == 0
    shutil.rmtree(path)
    path.write_bytes(b"RIFF the voice")
    assert await world.voicemails.finish_erasures() == 1
    assert not path.exists()
    assert await world.voicemails.finish_erasures() == 0, "done: the row no longer names the file"


async def test_a_crash_between_the_erasure_commit_and_the_file_deletion_leaves_no_voice(world: World) -> None:
    audio = await world.voicemail("call-1")
    erasure = await world.sms.erase(NUMBER)  # committed; the process dies before deleting the files
    (voicemail_id,) = erasure.voicemail_ids

    stored = await world.voicemail_repo.get(voicemail_id)
    assert stored.media_path is None, "from the commit on, nobody gets the audio"
    with pytest.raises(ConflictError):
        world.voicemails.audio_path(stored)
    with pytest.raises(ConflictError):
        await world.voicemails.retranscribe(voicemail_id)
    assert await world.voicemail_repo.audio_older_than(T0 + timedelta(days=3650), 10) == ()
    assert world.media.path(audio).exists()

    assert await world.voicemails.finish_erasures() == 1  # the upkeep, after the restart
    assert not world.media.path(audio).exists()
    assert await world.voicemails.finish_erasures() == 0
