"""The voicemail repository on SQLite and PostgreSQL: one transcript per voicemail, revisions, retention."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter.errors import ConflictError, NotFoundError
from callcenter.model.vocabulary import VoicemailStatus
from callcenter.store.sql_voicemails import SqlVoicemailRepository, VoicemailTranscriptRow
from callcenter.voicemail.ports import VoicemailFilter
from callcenter.voicemail.records import TranscriptSegment, Voicemail, VoicemailTranscript

T0 = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)


def _voicemail(n: int, *, at: datetime = T0, queue: str = "sales") -> Voicemail:
    return Voicemail(
        id=f"vm-{n:03d}",
        call_id=f"call-{n}",
        queue=queue,
        caller="+14155550100",
        recorded_at=at,
        media_path=f"2026/11/23/vm-{n:03d}.wav",
        checksum="ab" * 32,
        size_bytes=1000 + n,
        duration_s=12.5,
        status=VoicemailStatus.RECORDED,
        updated_at=at,
    )


def _transcript(voicemail: Voicemail, text: str) -> VoicemailTranscript:
    return VoicemailTranscript(
        voicemail_id=voicemail.id,
        text=text,
        language="en",
        confidence=0.8,
        segments=(TranscriptSegment(start_s=0.5, end_s=3.25, text=text),),
        model="tiny.en",
        revision=voicemail.revision,
        transcribed_at=T0 + timedelta(minutes=1),
    )


async def _transcript_rows(engine: AsyncEngine, voicemail_id: str) -> int:
    async with engine.connect() as connection:
        count = await connection.scalar(
            select(func.count()).where(VoicemailTranscriptRow.voicemail_id == voicemail_id)
        )
    return int(count or 0)


async def test_add_get_and_list_newest_first(engine: AsyncEngine) -> None:
    repo = SqlVoicemailRepository(engine)
    for n in range(5):
        await repo.add(_voicemail(n, at=T0 + timedelta(minutes=n), queue="sales" if n % 2 else "support"))
    again = await repo.add(replace(_voicemail(1), caller="+19999999999"))
    assert again.caller == "+14155550100", "adding the same id again keeps the stored voicemail"
    assert await repo.get("vm-003") == replace(_voicemail(3, at=T0 + timedelta(minutes=3)), queue="sales")

    first = await repo.list(VoicemailFilter(), cursor=None, limit=2)
    assert [v.id for v in first.items] == ["vm-004", "vm-003"]
    assert first.next is not None
    rest = await repo.list(VoicemailFilter(), cursor=first.next, limit=10)
    assert [v.id for v in rest.items] == ["vm-002", "vm-001", "vm-000"] and rest.next is None
    sales = await repo.list(VoicemailFilter(queue="sales"), cursor=None, limit=10)
    assert [v.id for v in sales.items] == ["vm-003", "vm-001"]
    with pytest.raises(NotFoundError):
        await repo.get("vm-nope")


async def test_one_transcript_per_voicemail_replaced_by_a_new_revision(engine: AsyncEngine) -> None:
    repo = SqlVoicemailRepository(engine)
    voicemail = await repo.add(_voicemail(1))
    done = replace(
        voicemail, status=VoicemailStatus.TRANSCRIBED, silent=False, intents=("billing",), preview="hi"
    )
    assert await repo.save_result(done, _transcript(voicemail, "first words"))
    # A second delivery of the same job finds the work done and writes nothing.
    assert not await repo.save_result(done, _transcript(voicemail, "other words"))
    assert (await repo.transcript(voicemail.id)).text == "first words"  # type: ignore[union-attr]
    assert (await repo.get(voicemail.id)).intents == ("billing",)

    again = await repo.request_revision(voicemail.id, T0 + timedelta(hours=1))
    assert again.revision == 2 and again.status is VoicemailStatus.RECORDED
    assert not await repo.save_result(done, _transcript(voicemail, "stale")), "revision 1 is superseded"
    done2 = replace(again, status=VoicemailStatus.TRANSCRIBED, silent=False)
    assert await repo.save_result(done2, _transcript(again, "second words"))
    stored = await repo.transcript(voicemail.id)
    assert stored is not None and stored.text == "second words" and stored.revision == 2
    assert stored.segments == (TranscriptSegment(start_s=0.5, end_s=3.25, text="second words"),)
    assert await _transcript_rows(engine, voicemail.id) == 1


async def test_a_silent_result_removes_any_old_transcript(engine: AsyncEngine) -> None:
    repo = SqlVoicemailRepository(engine)
    voicemail = await repo.add(_voicemail(1))
    await repo.save_result(
        replace(voicemail, status=VoicemailStatus.TRANSCRIBED), _transcript(voicemail, "x")
    )
    again = await repo.request_revision(voicemail.id, T0)
    assert await repo.save_result(replace(again, status=VoicemailStatus.SILENT, silent=True), None)
    assert await repo.transcript(voicemail.id) is None
    assert (await repo.get(voicemail.id)).silent is True


async def test_attempts_and_failure(engine: AsyncEngine) -> None:
    repo = SqlVoicemailRepository(engine)
    voicemail = await repo.add(_voicemail(1))
    await repo.set_attempt(voicemail.id, 1, attempts=1, error="boom", status=VoicemailStatus.RECORDED, at=T0)
    await repo.set_attempt(voicemail.id, 1, attempts=2, error="boom 2", status=VoicemailStatus.FAILED, at=T0)
    stored = await repo.get(voicemail.id)
    assert (stored.attempts, stored.error, stored.status) == (2, "boom 2", VoicemailStatus.FAILED)
    failed = await repo.list(VoicemailFilter(status=VoicemailStatus.FAILED), cursor=None, limit=5)
    assert [v.id for v in failed.items] == [voicemail.id]


@pytest.mark.parametrize("drop", [False, True])
async def test_retention_deletes_audio_and_optionally_transcripts(engine: AsyncEngine, drop: bool) -> None:
    repo = SqlVoicemailRepository(engine)
    old = await repo.add(_voicemail(1, at=T0 - timedelta(days=100)))
    await repo.add(_voicemail(2, at=T0 - timedelta(days=10)))
    done = replace(old, status=VoicemailStatus.TRANSCRIBED, preview="please call me")
    await repo.save_result(done, _transcript(old, "please call me"))

    due = await repo.audio_older_than(T0 - timedelta(days=90), 10)
    assert [v.id for v in due] == [old.id]
    await repo.audio_deleted(old.id, T0, drop_transcript=drop)
    stored = await repo.get(old.id)
    assert stored.media_path is None and stored.audio_deleted_at == T0
    assert (await repo.transcript(old.id) is None) is drop
    assert stored.preview == ("" if drop else "please call me")
    assert await repo.audio_older_than(T0 - timedelta(days=90), 10) == ()
    with pytest.raises(ConflictError, match="no audio"):
        await repo.request_revision(old.id, T0)


async def test_voicemails_are_read_with_their_transcripts_at_once(engine: AsyncEngine) -> None:
    """The voicemails behind an agent's callbacks: one read for the list, a gone one left out."""
    repo = SqlVoicemailRepository(engine)
    spoken = await repo.add(_voicemail(1))
    await repo.save_result(
        replace(spoken, status=VoicemailStatus.TRANSCRIBED), _transcript(spoken, "call me")
    )
    pending = await repo.add(_voicemail(2))

    found = await repo.with_transcripts(["vm-001", "vm-002", "vm-gone"])

    assert set(found) == {"vm-001", "vm-002"}
    voicemail, transcript = found["vm-001"]
    assert voicemail.status is VoicemailStatus.TRANSCRIBED
    assert transcript is not None and transcript.text == "call me"
    assert found["vm-002"] == (pending, None)
    assert await repo.with_transcripts([]) == {}
