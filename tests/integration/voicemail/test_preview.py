"""Voicemail previews in the folder shared with Asterisk: rendered once from the stored audio, absent
(with a log line saying why) when they cannot be, and deleted by retention and by a number's
erasure (issue #7). Over SQLite, the media folder and real audio."""

from __future__ import annotations

import logging
import wave
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from callcenter.config import DatabaseSettings
from callcenter.store.database import create_engine, migrate
from callcenter.store.media_files import MediaFolder
from callcenter.store.sql_voicemails import SqlVoicemailRepository
from callcenter.voicemail.preview import VoicemailPreviews
from callcenter.voicemail.records import Voicemail
from callcenter.voicemail.service import VoicemailService
from tests import audio_corpus as corpus
from tests.conftest import FakeClock
from tests.fakes.bus import InMemoryEventBus

pytestmark = pytest.mark.integration

CALLER = "+14155550100"


class World:
    def __init__(
        self,
        service: VoicemailService,
        previews: VoicemailPreviews,
        spool: Path,
        repo: SqlVoicemailRepository,
        media: MediaFolder,
        clock: FakeClock,
    ) -> None:
        self.service, self.previews, self.spool = service, previews, spool
        self.repo, self.media, self.clock = repo, media, clock

    async def message(
        self, call_id: str, *, caller: str = CALLER, days_ago: int = 0, speech: bool = True
    ) -> Voicemail:
        if not corpus.available():
            pytest.fail(corpus.MISSING)
        parts = [corpus.prompts()["agent-incorrect"]] if speech else []
        pcm = (
            corpus.join(parts, [2.0, 1.0])
            if speech
            else corpus.add_noise(np.zeros(4 * corpus.RATE, np.int16), -70)
        )
        source = corpus.telephone(self.spool.parent / f"{call_id}.ulaw.wav", pcm)
        return await self.service.store_recording(
            source,
            suffix=".wav",
            call_id=call_id,
            queue="support",
            caller=caller,
            duration_s=len(pcm) / corpus.RATE,
            recorded_at=self.clock.now() - timedelta(days=days_ago),
        )


@pytest.fixture
async def world(tmp_path: Path, clock: FakeClock) -> AsyncIterator[World]:
    settings = DatabaseSettings(url=f"sqlite+aiosqlite:///{tmp_path / 'db' / 'cc.db'}")
    await migrate(settings)
    engine = create_engine(settings)
    repo = SqlVoicemailRepository(engine)
    media = MediaFolder(tmp_path / "media")
    spool = tmp_path / "spool"
    previews = VoicemailPreviews(repo, media, spool, max_s=6.0)
    service = VoicemailService(
        repo, InMemoryEventBus(), media, None, clock, retention_days=30, previews=previews
    )
    yield World(service, previews, spool, repo, media, clock)
    await engine.dispose()


async def test_a_preview_is_rendered_once_into_the_shared_folder(world: World) -> None:
    voicemail = await world.message("c1")

    sound = await world.previews.sound(voicemail.id)

    path = world.spool / f"callcenter-preview-{voicemail.id}.wav"
    assert sound == str(path.with_suffix("")), "Asterisk names a file by its absolute path without extension"
    with wave.open(str(path), "rb") as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
        assert 1.0 <= w.getnframes() / 8000 <= 6.0
    first = path.stat().st_mtime_ns
    assert await world.previews.sound(voicemail.id) == sound
    assert path.stat().st_mtime_ns == first, "the file is written once, then found"


async def test_no_preview_for_a_message_without_speech(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    voicemail = await world.message("c2", speech=False)
    with caplog.at_level(logging.INFO, "callcenter.voicemail.preview"):
        assert await world.previews.sound(voicemail.id) is None
    assert "no speech" in caplog.text
    assert list(world.spool.glob("*")) == []


async def test_no_preview_for_an_unknown_voicemail(world: World, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, "callcenter.voicemail.preview"):
        assert await world.previews.sound("vm-gone") is None
    assert "erased" in caplog.text


async def test_without_a_shared_folder_there_is_no_preview_and_the_log_says_why(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    voicemail = await world.message("c3")
    unshared = VoicemailPreviews(world.repo, world.media, None)
    with caplog.at_level(logging.INFO, "callcenter.voicemail.preview"):
        assert await unshared.sound(voicemail.id) is None
    assert "CALLCENTER_VOICEMAIL_SPOOL_DIR is not set" in caplog.text


async def test_retention_deletes_the_preview_with_the_audio(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    old = await world.message("old", days_ago=31)
    new = await world.message("new")
    assert await world.previews.sound(old.id) is not None
    assert await world.previews.sound(new.id) is not None

    assert await world.service.purge() == 1

    assert not (world.spool / f"callcenter-preview-{old.id}.wav").exists()
    assert (world.spool / f"callcenter-preview-{new.id}.wav").exists()
    with caplog.at_level(logging.INFO, "callcenter.voicemail.preview"):
        assert await world.previews.sound(old.id) is None, "not rendered again from deleted audio"
    assert "retention" in caplog.text


async def test_erasing_a_number_deletes_the_previews_of_its_messages(world: World) -> None:
    mine = [await world.message("m1"), await world.message("m2")]
    other = await world.message("o1", caller="+14155550199")
    for voicemail in [*mine, other]:
        assert await world.previews.sound(voicemail.id) is not None

    assert await world.service.erase_caller(CALLER) == 2

    assert sorted(p.name for p in world.spool.iterdir()) == [f"callcenter-preview-{other.id}.wav"]
