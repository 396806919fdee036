"""``POST /api/v1/erasures`` with voicemails and callbacks: the answer counts what went, per kind."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from prometheus_client import CollectorRegistry
from pytest_aiohttp import AiohttpClient

from callcenter.api.app import build_api
from callcenter.api.sms import SMS_HTTP, SmsHttp, WebhookSettings
from callcenter.api.voicemails import VOICEMAIL_SERVICE
from callcenter.auth.service import AuthService
from callcenter.callbacks.service import CallbackService
from callcenter.callbacks.sources import CallbackSources
from callcenter.config import DatabaseSettings, HttpSettings
from callcenter.model.records import QueueRecord
from callcenter.model.vocabulary import CallbackState, Role
from callcenter.sms.service import EngineSettings, SmsEngine
from callcenter.sms_gateways.console import ConsoleProvider
from callcenter.store.database import create_engine, migrate
from callcenter.store.media_files import IntakeFolder, MediaFolder
from callcenter.store.sql_dispatch import SqlDispatchStore
from callcenter.store.sql_repos import SqlCallRepository, SqlQueueRepository
from callcenter.store.sql_sms import SqlSmsStore
from callcenter.store.sql_voicemails import SqlVoicemailRepository
from callcenter.voicemail.service import VoicemailService
from tests.conftest import FakeClock
from tests.fakes.bus import InMemoryEventBus
from tests.fakes.callbacks import FlatDayPlanner
from tests.fakes.store import InMemoryAuditLog, InMemoryQueueRepository, InMemoryTokenRepository
from tests.service.api.conftest import assert_error, assert_schema, healthy
from tests.service.sms.conftest import START, TEMPLATES

NUMBER = "+12125550123"


async def test_the_answer_counts_the_voicemails_audio_and_callbacks_erased(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    database = DatabaseSettings(url=f"sqlite+aiosqlite:///{tmp_path / 'api.db'}")
    await migrate(database)
    sql = create_engine(database)
    try:
        clock = FakeClock(START)
        bus = InMemoryEventBus()
        engine = SmsEngine(
            SqlSmsStore(sql),
            ConsoleProvider(),
            SqlCallRepository(sql),
            SqlQueueRepository(sql),
            clock,
            EngineSettings(templates=TEMPLATES, consent_secret=b"k"),
        )
        engine.publish = bus.publish
        media = MediaFolder(tmp_path / "media")
        intake = IntakeFolder(tmp_path / "media" / ".intake")
        repository = SqlVoicemailRepository(sql)
        voicemails = VoicemailService(repository, bus, media, None, clock, intake=intake)
        queues = InMemoryQueueRepository()
        await queues.put(QueueRecord(name="sales"))
        callbacks = SqlDispatchStore(sql)
        sources = CallbackSources(
            callbacks, CallbackService(callbacks, FlatDayPlanner(queues), queues, bus, clock), bus, clock
        )
        auth = AuthService(InMemoryTokenRepository(), InMemoryAuditLog(), clock)
        app = build_api(
            auth=auth,
            health_checks={"db": healthy, "redis": healthy, "ari": None},
            registry=CollectorRegistry(),
            settings=HttpSettings(max_body_bytes=64 * 1024),
        )
        app[SMS_HTTP] = SmsHttp(engine=engine, webhooks=WebhookSettings())
        app[VOICEMAIL_SERVICE] = voicemails
        client = await aiohttp_client(app)
        _, secret = await auth.create_token(
            role=Role.ADMIN, agent_id=None, label="", expires_at=None, actor="test"
        )
        admin = {"Authorization": f"Bearer {secret}"}

        voicemail = await voicemails.store_recording(
            b"RIFF audio", suffix=".wav", call_id="call-1", queue="sales", caller=NUMBER, duration_s=3.0
        )
        assert voicemail.media_path is not None and media.path(voicemail.media_path).exists()
        callback = (await sources.follow_up("a1", "sales", NUMBER, at=START, note="quote")).callback
        # A second message whose audio is saved but whose record is not stored yet (the store was
        # down while it was recorded): only its intake note knows of it.
        saved = media.save(b"RIFF later", name="vm-" + "0" * 31 + "2", suffix=".wav", at=START)
        pending = dataclasses.replace(
            voicemail, id="vm-" + "0" * 31 + "2", call_id="call-2", media_path=saved.relative_path
        )
        intake.keep(pending, at=START)

        response = await client.post("/api/v1/erasures", json={"number": "(212) 555-0123"}, headers=admin)
        assert response.status == 200, await response.text()
        body = await response.json()
        assert_schema("Erasure", body)
        assert body["number"] == NUMBER and body["pseudonym"].startswith("erased:")
        assert (body["voicemails"], body["audio_files"], body["files_not_deleted"]) == (2, 2, [])
        assert not media.path(saved.relative_path).exists() and intake.owed() == []
        assert (await repository.get(pending.id)).caller == body["pseudonym"], "stored, then erased"
        assert (body["callbacks"], body["callbacks_cancelled"], body["callbacks_connected"]) == (1, 1, 0)
        assert body["do_not_call_kept"] is False
        assert not media.path(voicemail.media_path).exists()
        assert (await callbacks.get(callback.id)).state is CallbackState.CANCELLED

        again = await (await client.post("/api/v1/erasures", json={"number": NUMBER}, headers=admin)).json()
        assert (again["voicemails"], again["audio_files"], again["callbacks_cancelled"]) == (0, 0, 0)
        assert again["pseudonym"] == body["pseudonym"]
        await assert_error(
            await client.post("/api/v1/erasures", json={"number": "not a number"}, headers=admin),
            400,
            "invalid_request",
        )
    finally:
        await sql.dispose()
