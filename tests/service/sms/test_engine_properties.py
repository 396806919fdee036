"""Property over the real engine and SQL store: whatever the interleaving of missed calls, replies,
opt-outs, redeliveries and clock moves, no text goes to an opted-out number, none outside the quiet-hours
window, and none twice."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete

from callcenter.config import DatabaseSettings
from callcenter.model.events import CallEnded
from callcenter.model.vocabulary import CallOutcome, EntryPoint
from callcenter.sms.consent import INFORMATIONAL, ConsentStatus, number_key, status_of
from callcenter.sms.quiet import is_allowed
from callcenter.sms.recipient import recipient_for
from callcenter.sms.rules import MessageKind, SmsRules
from callcenter.sms.service import EngineSettings, Inbound, SmsEngine
from callcenter.sms.templates import parse_templates
from callcenter.store.database import create_engine, migrate
from callcenter.store.sql_models import CallRow
from callcenter.store.sql_repos import SqlCallRepository
from callcenter.store.sql_sms import SqlSmsStore
from callcenter.store.sql_sms_models import SmsCallbackRequestRow, SmsConsentRow, SmsContactRow, SmsMessageRow
from tests.conftest import FakeClock
from tests.fakes.sms import RecordingSmsGateway

TEMPLATES = parse_templates(resources.files("callcenter.sms").joinpath("templates.toml").read_text("utf-8"))
NUMBERS = ("+12125550123", "+14155550100", "+13055550199", "+33612345678")
REPLIES = ("STOP", "please stop texting me", "1", "2", "HELP", "START", "what time?", "Cancel")
SECRET = b"property"

step = st.one_of(
    st.tuples(
        st.just("call"), st.integers(0, 5), st.sampled_from(NUMBERS), st.sampled_from(list(CallOutcome))
    ),
    st.tuples(st.just("reply"), st.integers(0, 8), st.sampled_from(NUMBERS), st.sampled_from(REPLIES)),
    st.tuples(st.just("manual"), st.integers(0, 3), st.sampled_from(NUMBERS), st.none()),
    st.tuples(st.just("clock"), st.integers(1, 60 * 20), st.none(), st.none()),
    st.tuples(st.just("send"), st.none(), st.none(), st.none()),
)


async def _run(path: Path, start: datetime, steps: list[tuple[object, ...]]) -> None:
    sql = create_engine(DatabaseSettings(url=f"sqlite+aiosqlite:///{path}"))
    try:
        async with sql.begin() as connection:
            for table in (SmsCallbackRequestRow, SmsMessageRow, SmsConsentRow, SmsContactRow, CallRow):
                await connection.execute(delete(table))
        clock = FakeClock(start)
        gateway = RecordingSmsGateway(clock)
        store = SqlSmsStore(sql)
        rules = SmsRules(daily_cap=2)
        engine = SmsEngine(
            store,
            gateway,
            SqlCallRepository(sql),
            None,
            clock,
            EngineSettings(templates=TEMPLATES, consent_secret=SECRET, rules=rules),
        )
        for kind, a, b, c in steps:
            # Every step at its own instant, so "consent when it was sent" is well defined.
            clock.advance(0.001)
            if kind == "call":
                assert isinstance(b, str) and isinstance(c, CallOutcome)
                event = CallEnded(
                    event_id=f"call-{a}", occurred_at=clock.now(), call_id=f"call-{a}",
                    outcome=c, entry_point=EntryPoint.ARI, caller=b,
                )  # fmt: skip
                await engine.on_call_ended(event)
            elif kind == "reply":
                assert isinstance(b, str) and isinstance(c, str)
                await engine.receive(Inbound(sender=b, text=c, provider="recording", provider_id=f"in-{a}"))
            elif kind == "manual":
                assert isinstance(b, str)
                try:
                    await engine.send_manual(b, "a note", actor="agent", key=f"m-{a}")
                except Exception as exc:  # refused for consent: fine, that is the point
                    assert "consent" in str(exc)
            elif kind == "clock":
                assert isinstance(a, int)
                clock.advance(a * 60)
            else:
                await engine.send_due()
        ids = [d.message_id for d in gateway.delivered]
        assert len(ids) == len(set(ids)), "a message went out twice"
        for delivered in gateway.delivered:
            message = await store.get_message(delivered.message_id)
            if message.kind is MessageKind.COMPLIANCE:
                continue
            records = await store.consent_records(number_key(delivered.to, SECRET))
            then = [r for r in records if r.at <= delivered.at]
            assert status_of(then, INFORMATIONAL) is not ConsentStatus.OPTED_OUT, "texted an opted-out number"
            if message.kind in (MessageKind.FOLLOW_UP, MessageKind.MANUAL):
                assert is_allowed(delivered.at, recipient_for(delivered.to), rules.quiet), (
                    "texted in quiet hours"
                )
    finally:
        await sql.dispose()


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sms-property") / "sms.db"
    asyncio.run(migrate(DatabaseSettings(url=f"sqlite+aiosqlite:///{path}")))
    return path


@pytest.mark.timeout(300)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2026, 12, 31)),
    st.lists(step, max_size=30),
)
def test_engine_never_texts_an_opted_out_number_in_quiet_hours_or_twice(
    database: Path, start: datetime, steps: list[tuple[object, ...]]
) -> None:
    asyncio.run(_run(database, start.replace(tzinfo=UTC), steps))
