"""SMS "1" and "2" on the real callback service and stores (SQLite and PostgreSQL): a text asking for a
call makes one kept-place callback (a repeat merges), "2" cancels it by the customer, and the callback
events that follow send no second text (issue 9 step 4, issue 7 step 1)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import pytest

from callcenter.bus import Delivery
from callcenter.callbacks.attempts import CallbackSource
from callcenter.callbacks.service import CallbackService
from callcenter.callbacks.sms_desk import SmsCallbackDesk
from callcenter.callbacks.sources import CallbackSources
from callcenter.model.events import CallbackStateChanged
from callcenter.model.records import QueueRecord
from callcenter.model.vocabulary import ActorKind, CallbackKind, CallbackState
from callcenter.sms.keywords import Intent
from callcenter.sms.service import EngineSettings, Inbound, SmsEngine
from callcenter.sms.templates import parse_templates
from callcenter.store.database import create_engine, migrate
from callcenter.store.sql_dispatch import SqlDispatchStore
from callcenter.store.sql_repos import SqlCallRepository
from callcenter.store.sql_sms import SqlSmsStore
from tests.conftest import FakeClock
from tests.fakes.bus import InMemoryEventBus
from tests.fakes.callbacks import FlatDayPlanner
from tests.fakes.sms import RecordingSmsGateway
from tests.fakes.store import InMemoryQueueRepository
from tests.integration.store.conftest import SQL_BACKENDS, PostgresSchemas, open_database

T0 = datetime(2026, 11, 23, 16, 0, tzinfo=UTC)  # 11:00 in New York
NUMBER = "+12125550123"
TEMPLATES = parse_templates(resources.files("callcenter.sms").joinpath("templates.toml").read_text("utf-8"))


@dataclass
class Env:
    engine: SmsEngine
    callbacks: SqlDispatchStore
    bus: InMemoryEventBus
    gateway: RecordingSmsGateway


@pytest.fixture(params=SQL_BACKENDS)
async def env(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_schemas: PostgresSchemas
) -> AsyncIterator[Env]:
    clock = FakeClock(T0)
    queues = InMemoryQueueRepository()
    await queues.put(QueueRecord(name="support"))
    await queues.put(QueueRecord(name="sales"))
    bus = InMemoryEventBus()
    async with open_database(request.param, tmp_path, postgres_schemas) as settings:
        await migrate(settings)
        sql = create_engine(settings)
        try:
            store = SqlDispatchStore(sql)
            service = CallbackService(store, FlatDayPlanner(queues), queues, bus, clock)
            sources = CallbackSources(store, service, bus, clock)
            calls = SqlCallRepository(sql)
            gateway = RecordingSmsGateway(clock)
            engine = SmsEngine(
                SqlSmsStore(sql),
                gateway,
                calls,
                queues,
                clock,
                EngineSettings(templates=TEMPLATES, consent_secret=b"k"),
            )
            engine.callbacks = SmsCallbackDesk(sources, service, store, calls, queues, clock)
            yield Env(engine, store, bus, gateway)
        finally:
            await sql.dispose()


def text(words: str, provider_id: str) -> Inbound:
    return Inbound(sender=NUMBER, text=words, provider="recording", provider_id=provider_id)


async def test_one_makes_a_kept_place_callback_a_repeat_merges_and_two_cancels_it(env: Env) -> None:
    first = await env.engine.receive(text("Call me", "a"))
    assert first.intent is Intent.CALL_ME and first.ticket is not None and first.ticket.created
    (open_callback,) = await env.callbacks.open_for_number(NUMBER)
    assert open_callback.id == first.ticket.callback_id
    assert (open_callback.queue, open_callback.kind) == ("sales", CallbackKind.KEEP_PLACE)  # first by name
    (note,) = await env.callbacks.sources(open_callback.id)
    assert note.source is CallbackSource.SMS_REPLY and note.ref == first.message.id
    again = await env.engine.receive(text("1", "b"))
    assert again.ticket is not None and again.ticket.callback_id == open_callback.id
    assert len(await env.callbacks.open_for_number(NUMBER)) == 1
    cancelled = await env.engine.receive(text("2", "c"))
    assert cancelled.ticket is not None and cancelled.ticket.callback_id == open_callback.id
    assert await env.callbacks.open_for_number(NUMBER) == ()
    assert (await env.callbacks.get(open_callback.id)).state is CallbackState.CANCELLED
    # The callback's own events reach the SMS engine: no confirmation on top of the reply, nothing
    # after the cancellation.
    for event in env.bus.of_type(CallbackStateChanged):
        assert isinstance(event, CallbackStateChanged)
        if event.state is CallbackState.CANCELLED:
            assert event.actor_kind is ActorKind.CUSTOMER
        await env.engine.handle(Delivery(message_id="1-0", event=event, deliveries=1))
    await env.engine.send_due()
    sent = [d.text for d in env.gateway.to(NUMBER)]
    assert len(sent) == 3  # "we will call you back by ...", the same for the repeat, "cancelled"
    assert "we will call you back by 15:00" in sent[0] and "Reply 2 to cancel" in sent[0]
    assert "your callback is cancelled" in sent[2]
