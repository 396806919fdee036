"""SMS "1" and "2" on the real callback service and stores (SQLite and PostgreSQL): a text asking for a
call makes one kept-place callback (a repeat merges), "2" cancels it by the customer, and the callback
events that follow send no second text (issue 9 step 4, issue 7 step 1)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Mapping, Sequence
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
from callcenter.callbacks.worklist import Disposition, Reason, Worklist
from callcenter.errors import ConflictError
from callcenter.model.events import CallbackStateChanged
from callcenter.model.records import CallRecord, QueueRecord
from callcenter.model.vocabulary import ActorKind, CallbackKind, CallbackState
from callcenter.sms.keywords import Intent
from callcenter.sms.service import EngineSettings, Inbound, SmsEngine
from callcenter.sms.templates import parse_templates
from callcenter.store.database import create_engine, migrate
from callcenter.store.sql_dispatch import SqlDispatchStore
from callcenter.store.sql_repos import SqlCallRepository
from callcenter.store.sql_sms import SqlSmsStore
from callcenter.wiring.agent import SmsThreads
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
    worklist: Worklist
    clock: FakeClock


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
            worklist = Worklist(
                store,
                Agents(),
                Agents(),
                clock,
                sources=sources,
                texts=SmsThreads(SqlSmsStore(sql)),
                publish=bus.publish,
                callbacks=service,
            )
            yield Env(engine, store, bus, gateway, worklist, clock)
        finally:
            await sql.dispose()


class Agents:
    """Alice serves both queues; nobody has called before."""

    async def queues_of(self, agent_id: str) -> tuple[str, ...]:
        return ("sales", "support")

    async def recent_calls_of(
        self, numbers: Collection[str], limit: int
    ) -> Mapping[str, Sequence[CallRecord]]:
        return {}


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


async def test_a_text_that_is_no_keyword_is_an_item_on_the_worklist_closable_without_a_call(env: Env) -> None:
    """A person must read it (issue 9 step 4): it is the number's callback, reason sms_text, with the
    thread; nothing is sent back automatically; an agent who holds it closes it answered by text."""
    got = await env.engine.receive(text("Is the shop open on Sunday?", "q"))
    assert got.intent is Intent.OTHER and got.replies == () and got.ticket is not None
    (item,) = await env.worklist.items("alice")
    assert item.callback.id == got.ticket.callback_id and item.kind is Reason.SMS_TEXT
    assert [(t.direction, t.text) for t in item.texts] == [("in", "Is the shop open on Sunday?")]
    (note,) = item.sources
    assert note.source is CallbackSource.SMS_TEXT and note.ref == got.message.id
    # Still listed under SMS as needing a person, saying where it went.
    (listed,) = (await env.engine.messages(number=NUMBER, needs_person=True, cursor=None, limit=5)).items
    assert listed.id == got.message.id and got.ticket.callback_id in listed.error
    # A second text, then a "1": still one open callback for the number in the queue.
    await env.engine.receive(text("Or Saturday?", "q2"))
    asked = await env.engine.receive(text("1", "q3"))
    assert asked.ticket is not None and asked.ticket.callback_id == item.callback.id
    assert len(await env.callbacks.open_for_number(NUMBER)) == 1
    # Closing needs the claim; then it closes as the agent, with the notes, and leaves the list.
    with pytest.raises(ConflictError):
        await env.worklist.dispose(item.callback.id, "alice", Disposition.ANSWERED_BY_TEXT)
    await env.worklist.claim(item.callback.id, "alice")
    done = await env.worklist.dispose(
        item.callback.id, "alice", Disposition.ANSWERED_BY_TEXT, notes="open 10-16 on Saturdays"
    )
    assert done.callback.state is CallbackState.CANCELLED
    again = await env.worklist.dispose(item.callback.id, "alice", Disposition.ANSWERED_BY_TEXT)
    assert again.callback.state is CallbackState.CANCELLED  # a repeat changes nothing
    assert await env.worklist.items("alice") == ()
    (closing,) = [e for e in env.bus.of_type(CallbackStateChanged) if e.state is CallbackState.CANCELLED]
    assert isinstance(closing, CallbackStateChanged) and closing.actor_kind is ActorKind.AGENT
    # No text goes out for the closing (the agent answered by text themselves): only the "1" reply.
    for event in env.bus.of_type(CallbackStateChanged):
        assert isinstance(event, CallbackStateChanged)
        await env.engine.handle(Delivery(message_id="1-0", event=event, deliveries=1))
    await env.engine.send_due()
    assert len(env.gateway.to(NUMBER)) == 1
