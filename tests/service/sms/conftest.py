"""The SMS engine on a real SQLite store, a recording gateway and a fake clock."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter.config import DatabaseSettings
from callcenter.model.events import CallEnded
from callcenter.model.records import CallRecord
from callcenter.model.vocabulary import CallOutcome, EntryPoint
from callcenter.sms.service import EngineSettings, SmsEngine
from callcenter.sms.templates import parse_templates
from callcenter.store.database import create_engine, migrate
from callcenter.store.sql_repos import SqlCallRepository, SqlQueueRepository
from callcenter.store.sql_sms import SqlSmsStore
from tests.conftest import FakeClock
from tests.fakes.sms import RecordingSmsGateway

TEMPLATES = parse_templates(resources.files("callcenter.sms").joinpath("templates.toml").read_text("utf-8"))
#: 11:00 in New York, 08:00 in Los Angeles, 17:00 in Paris.
START = datetime(2026, 11, 23, 16, 0, tzinfo=UTC)
NY_MOBILE = "+12125550123"


@dataclass
class Rig:
    engine: SmsEngine
    store: SqlSmsStore
    calls: SqlCallRepository
    gateway: RecordingSmsGateway
    clock: FakeClock
    settings: EngineSettings
    make: Callable[[RecordingSmsGateway], SmsEngine]
    sql: AsyncEngine

    async def missed(
        self, call_id: str, caller: str = NY_MOBILE, outcome: CallOutcome = CallOutcome.ABANDONED
    ) -> CallEnded:
        now = self.clock.now()
        await self.calls.upsert(
            CallRecord(
                id=call_id,
                channel_id=call_id,
                linkedid=call_id,
                entry_point=EntryPoint.ARI,
                caller=caller,
                caller_name="",
                dialled="3000",
                queue=None,
                arrived_at=now,
                ended_at=now,
                outcome=outcome,
            )
        )
        event = CallEnded(
            event_id=call_id,
            occurred_at=now,
            call_id=call_id,
            outcome=outcome,
            entry_point=EntryPoint.ARI,
            caller=caller,
        )
        await self.engine.on_call_ended(event)
        return event


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    database = DatabaseSettings(url=f"sqlite+aiosqlite:///{tmp_path / 'sms.db'}")
    await migrate(database)
    sql = create_engine(database)
    clock = FakeClock(START)
    store = SqlSmsStore(sql)
    calls = SqlCallRepository(sql)
    queues = SqlQueueRepository(sql)
    settings = EngineSettings(templates=TEMPLATES, consent_secret=b"test-secret")

    def make(gateway: RecordingSmsGateway) -> SmsEngine:
        return SmsEngine(store, gateway, calls, queues, clock, settings)

    gateway = RecordingSmsGateway(clock)
    try:
        yield Rig(make(gateway), store, calls, gateway, clock, settings, make, sql)
    finally:
        await sql.dispose()
