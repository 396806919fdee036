"""``callcenter worker --transcribe`` processes on a real Redis and SQLite with the real model.

A worker killed (SIGKILL, with its model process) in the middle of a job loses nothing: another worker
re-claims the job from the bus and transcribes it; the voicemail gets exactly one transcript and one
``VoicemailTranscribed`` fact.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis
from sqlalchemy import func, select

from callcenter.clock import SystemClock
from callcenter.config import Settings
from callcenter.model.events import VoicemailTranscribed, decode_event
from callcenter.model.vocabulary import VoicemailStatus
from callcenter.store.database import create_engine, migrate
from callcenter.store.media_files import MediaFolder
from callcenter.store.redis_bus import RedisEventBus
from callcenter.store.redis_keys import RedisKeys
from callcenter.store.sql_voicemails import SqlVoicemailRepository, VoicemailTranscriptRow
from callcenter.voicemail.service import CONSUMER_GROUP, VoicemailService
from media.text import wer
from tests import audio_corpus as corpus
from tests.waiting import eventually

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    prefix = f"cc-test-{uuid.uuid4().hex[:10]}:"
    values = {
        "CALLCENTER_DATA_DIR": str(tmp_path / "data"),
        "CALLCENTER_REDIS_URL": REDIS_URL,
        "CALLCENTER_REDIS_KEY_PREFIX": prefix,
        "CALLCENTER_BUS_CLAIM_IDLE_MS": "1500",
        "CALLCENTER_BUS_BLOCK_MS": "200",
        "CALLCENTER_WHISPER_CPU_THREADS": "1",
        "CALLCENTER_LOG_LEVEL": "INFO",
    }
    yield values
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=RedisKeys(prefix).pattern()))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


class Worker:
    """One ``callcenter worker --transcribe`` process in a process group of its own."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("CALLCENTER_")} | env
        self._out = log.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "callcenter", "worker", "--transcribe"],
            env=full_env,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL the worker and its model process: nothing gets to clean up."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)
        self._out.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        self._out.close()


@pytest.fixture
async def world(
    env: dict[str, str], tmp_path: Path
) -> AsyncIterator[tuple[Settings, VoicemailService, RedisEventBus]]:
    settings = Settings.from_env(env)
    await migrate(settings.database)
    engine = create_engine(settings.database)
    client = aioredis.Redis.from_url(REDIS_URL)
    bus = RedisEventBus(client, RedisKeys(settings.redis.key_prefix), settings.bus)
    service = VoicemailService(
        SqlVoicemailRepository(engine), bus, MediaFolder(settings.voicemail_dir), None, SystemClock()
    )
    try:
        yield settings, service, bus
    finally:
        await client.aclose()
        await engine.dispose()


async def _transcribed_facts(
    bus: RedisEventBus, client_url: str, settings: Settings, voicemail_id: str
) -> list[str]:
    client = aioredis.Redis.from_url(client_url)
    try:
        rows = await client.xrange(RedisKeys(settings.redis.key_prefix).events)
    finally:
        await client.aclose()
    events = [decode_event(fields[b"event"]) for _, fields in rows]
    return [
        e.event_id for e in events if isinstance(e, VoicemailTranscribed) and e.voicemail_id == voicemail_id
    ]


async def test_a_worker_killed_mid_job_loses_and_duplicates_nothing(
    world: tuple[Settings, VoicemailService, RedisEventBus], env: dict[str, str], tmp_path: Path
) -> None:
    settings, service, bus = world
    prompts = corpus.prompts()
    parts = [
        prompts[n]
        for n in ("vm-nobodyavail", "cannot-complete-as-dialed", "conf-waitforleader", "demo-thanks")
    ]
    audio = corpus.telephone(
        tmp_path / "message.ulaw.wav", corpus.join(parts, [1.0, 0.8, 0.8, 0.8, 1.5], seed=5)
    )
    voicemail = await service.store_recording(
        audio, suffix=".wav", call_id="1700000000.7", queue="sales", caller="+14155550100", duration_s=20.0
    )

    first = Worker(env, tmp_path / "worker1.log")
    try:
        await eventually(
            lambda: f"voicemail {voicemail.id}: transcribing" in first.text(),
            timeout_s=60,
            poll_s=0.05,
            what="worker 1 to start the job",
        )
    finally:
        first.kill()
    assert (await service.get(voicemail.id)).status is VoicemailStatus.RECORDED, "killed before it finished"

    second = Worker(env, tmp_path / "worker2.log")
    try:

        async def done() -> bool:
            # The transcript is stored, then announced: wait for both (a worker stopped in between
            # leaves the job pending, and the next one to re-claim it announces it).
            stored = (await service.get(voicemail.id)).status is not VoicemailStatus.RECORDED
            return stored and bool(await _transcribed_facts(bus, REDIS_URL, settings, voicemail.id))

        await eventually(done, timeout_s=150, poll_s=0.2, what="worker 2 to finish and announce the job")
    finally:
        second.stop()

    stored = await service.get(voicemail.id)
    assert stored.status is VoicemailStatus.TRANSCRIBED, second.text()[-3000:]
    transcript = await service.transcript(voicemail.id)
    assert transcript is not None
    assert wer(" ".join(p.text for p in parts), transcript.text) <= 0.1
    engine = create_engine(settings.database)
    try:
        async with engine.connect() as connection:
            rows = await connection.scalar(
                select(func.count()).where(VoicemailTranscriptRow.voicemail_id == voicemail.id)
            )
    finally:
        await engine.dispose()
    assert rows == 1
    assert await _transcribed_facts(bus, REDIS_URL, settings, voicemail.id) == [
        f"voicemail-transcribed:{voicemail.id}:1"
    ]
    assert "re-claimed" in second.text()
    assert await bus.pending_count(CONSUMER_GROUP) == 0
    assert await bus.dead_letters() == []
