"""The intake notes on disk (``IntakeFolder``): what a crash leaves is read back whole, and a note
that cannot be read is set aside for a person, never deleted and never in the way of the others."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from callcenter.model.vocabulary import VoicemailStatus
from callcenter.store.media_files import IntakeFolder
from callcenter.voicemail.records import Voicemail

AT = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)


def voicemail(n: int, **fields: object) -> Voicemail:
    values: dict[str, object] = {
        "id": f"vm-{n:032x}",
        "call_id": f"1700000000.{n}",
        "queue": "sales",
        "caller": "+14155550100",
        "recorded_at": AT,
        "media_path": f"2026/11/24/vm-{n:032x}.wav",
        "checksum": "ab" * 32,
        "size_bytes": 1234,
        "duration_s": 12.5,
        "status": VoicemailStatus.RECORDED,
        "updated_at": AT,
    }
    values.update(fields)
    return Voicemail(**values)  # type: ignore[arg-type]


def test_a_kept_note_reads_back_as_the_voicemail_it_holds(tmp_path: Path) -> None:
    intake = IntakeFolder(tmp_path / ".intake")
    kept = voicemail(1, call_id=None, queue=None, caller="anonymous")
    intake.keep(kept, at=AT)

    assert intake.has(kept.id)
    assert intake.owed() == [kept]
    assert [p.name for p in (tmp_path / ".intake").iterdir()] == [f"{kept.id}.json"], "no temporary left"

    intake.done(kept.id)
    intake.done(kept.id)  # again: nothing to do
    assert not intake.has(kept.id) and intake.owed() == []


def test_owed_notes_come_oldest_first_and_only_those_kept_by_the_limit(tmp_path: Path) -> None:
    intake = IntakeFolder(tmp_path / ".intake")
    intake.keep(voicemail(2), at=AT + timedelta(minutes=2))
    intake.keep(voicemail(1), at=AT + timedelta(minutes=5))
    intake.keep(voicemail(3), at=AT)

    assert [v.id for v in intake.owed()] == [voicemail(n).id for n in (3, 2, 1)]
    assert [v.id for v in intake.owed(kept_by=AT + timedelta(minutes=3))] == [voicemail(n).id for n in (3, 2)]
    assert IntakeFolder(tmp_path / "never-written").owed() == []


@pytest.mark.parametrize(
    "content",
    [
        b'{"version": 1, "kept_at": "2026-11-24T09:30:00+00:00", "voicemail": {"id": "vm-',  # cut short
        b'{"version": 2, "kept_at": "2026-11-24T09:30:00+00:00", "voicemail": {}}',
        b'{"version": 1, "kept_at": "2026-11-24T09:30:00", "voicemail": {}}',  # no offset
        b"\xff\xfe not json",
    ],
)
def test_a_note_that_cannot_be_read_is_set_aside_and_named(
    tmp_path: Path, content: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    intake = IntakeFolder(tmp_path / ".intake")
    good = voicemail(1)
    intake.keep(good, at=AT)
    bad = tmp_path / ".intake" / f"{voicemail(2).id}.json"
    bad.write_bytes(content)

    with caplog.at_level(logging.ERROR):
        assert intake.owed() == [good]

    aside = bad.with_name(bad.name + ".unreadable")
    assert not bad.exists() and aside.read_bytes() == content, "kept for a person, not deleted"
    assert str(bad) in caplog.text
    assert intake.owed() == [good], "not read again"


def test_a_note_naming_another_voicemail_than_its_file_is_set_aside(tmp_path: Path) -> None:
    intake = IntakeFolder(tmp_path / ".intake")
    intake.keep(voicemail(1), at=AT)
    moved = tmp_path / ".intake" / f"{voicemail(9).id}.json"
    (tmp_path / ".intake" / f"{voicemail(1).id}.json").rename(moved)

    assert intake.owed() == []
    assert moved.with_name(moved.name + ".unreadable").exists()
