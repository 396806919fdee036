"""Each voicemail becomes one callback on the agents' worklist, on SQLite and PostgreSQL (issue 8).

The real callback sources, service and stores; the bus handler is fed the events the transcription
worker publishes. A redelivered event, a restarted process, two handlers at once, or the callback
closed meanwhile never make a second callback for the same voicemail.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter.bus import Delivery
from callcenter.callbacks.attempts import CallbackSource
from callcenter.callbacks.service import CallbackService
from callcenter.callbacks.sources import CallbackSources
from callcenter.config import Settings
from callcenter.model.callbacks import Actor
from callcenter.model.events import VoicemailSilent, VoicemailTranscribed
from callcenter.model.records import QueueRecord
from callcenter.model.vocabulary import ActorKind, CallbackKind, CallbackState, VoicemailStatus
from callcenter.store.database import create_engine, migrate
from callcenter.store.sql_dispatch import SqlDispatchStore
from callcenter.store.sql_voicemails import SqlVoicemailRepository
from callcenter.voicemail.callbacks import VoicemailCallbacks
from callcenter.voicemail.records import Voicemail, VoicemailTranscript
from callcenter.wiring.voicemail import voicemail_callbacks_for
from tests.conftest import FakeClock
from tests.fakes.bus import InMemoryEventBus
from tests.fakes.callbacks import FlatDayPlanner
from tests.fakes.store import InMemoryQueueRepository
from tests.integration.store.conftest import SQL_BACKENDS, PostgresSchemas, open_database
from tests.integration.store.conftest import postgres_schemas as postgres_schemas  # noqa: F401 (the fixture)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

T0 = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
NUMBER = "+14155550100"
TEXT = "Hi, this is Ann. I was charged twice on my last invoice, please call me back as soon as possible."


@dataclass
class Env:
    engine: AsyncEngine
    store: SqlDispatchStore
    voicemails: SqlVoicemailRepository
    service: CallbackService
    sources: CallbackSources
    clock: FakeClock

    def handler(self, **settings: str) -> VoicemailCallbacks:
        """A handler as ``serve`` builds it (a new one per call: as after a restart)."""
        config = Settings.from_env({f"CALLCENTER_{k.upper()}": v for k, v in settings.items()})
        return voicemail_callbacks_for(config, self.engine, self.sources, self.clock)

    async def callbacks(self) -> list[str]:
        return [c.id for c in (await self.store.list(queue=None, state=None, cursor=None, limit=50)).items]


@pytest.fixture(params=SQL_BACKENDS)
async def env(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_schemas: PostgresSchemas
) -> AsyncIterator[Env]:
    clock = FakeClock(T0)
    queues = InMemoryQueueRepository()
    await queues.put(QueueRecord(name="sales"))
    bus = InMemoryEventBus()
    async with open_database(request.param, tmp_path, postgres_schemas) as settings:
        await migrate(settings)
        engine = create_engine(settings)
        try:
            store = SqlDispatchStore(engine)
            service = CallbackService(store, FlatDayPlanner(queues), queues, bus, clock)
            sources = CallbackSources(store, service, bus, clock)
            yield Env(engine, store, SqlVoicemailRepository(engine), service, sources, clock)
        finally:
            await engine.dispose()


async def _voicemail(
    env: Env, vm_id: str = "vm-1", *, caller: str = NUMBER, text: str = TEXT, queue: str | None = "sales"
) -> Voicemail:
    """A voicemail left 10 minutes ago and transcribed (silent when ``text`` is empty)."""
    left = T0 - timedelta(minutes=10)
    stored = await env.voicemails.add(
        Voicemail(
            id=vm_id,
            call_id=f"call-{vm_id}",
            queue=queue,
            caller=caller,
            recorded_at=left,
            media_path=f"{vm_id}.wav",
            checksum="0" * 64,
            size_bytes=1000,
            duration_s=12.0,
            status=VoicemailStatus.RECORDED,
            updated_at=left,
        )
    )
    silent = not text
    done = Voicemail(
        **{
            **{f: getattr(stored, f) for f in stored.__slots__},
            "status": VoicemailStatus.SILENT if silent else VoicemailStatus.TRANSCRIBED,
            "silent": silent,
            "intents": () if silent else ("billing", "callback"),
            "urgency": "normal" if silent else "urgent",
            "preview": text[:40],
            "updated_at": T0,
        }
    )
    transcript = (
        None
        if silent
        else VoicemailTranscript(
            voicemail_id=vm_id,
            text=text,
            language="en",
            confidence=0.9,
            segments=(),
            model="tiny.en",
            revision=1,
            transcribed_at=T0,
        )
    )
    assert await env.voicemails.save_result(done, transcript)
    return done


def _delivery(voicemail: Voicemail, *, n: int = 1) -> Delivery:
    event_type = VoicemailSilent if voicemail.silent else VoicemailTranscribed
    event = event_type(
        event_id=f"{event_type.event_type}:{voicemail.id}:1",
        occurred_at=T0,
        voicemail_id=voicemail.id,
        call_id=voicemail.call_id,
        queue=voicemail.queue,
        caller=voicemail.caller,
    )
    return Delivery(message_id=f"1-{n}", event=event, deliveries=n)


async def test_a_transcribed_voicemail_becomes_a_callback_in_line_from_when_it_was_left(env: Env) -> None:
    voicemail = await _voicemail(env)
    await env.handler().handle(_delivery(voicemail))

    (callback_id,) = await env.callbacks()
    callback = await env.store.get(callback_id)
    assert (callback.queue, callback.number, callback.kind) == ("sales", NUMBER, CallbackKind.KEEP_PLACE)
    assert callback.state is CallbackState.REQUESTED
    assert callback.enqueued_at == voicemail.recorded_at, "served in line from when the message was left"
    (note,) = await env.store.sources(callback_id)
    assert (note.source, note.ref, note.merged) == (CallbackSource.VOICEMAIL, voicemail.id, False)
    # The agent reads the urgency, the intents and the words, without opening the voicemail.
    assert note.note == f"[urgent; billing; callback] {TEXT}"


async def test_redelivered_restarted_or_concurrent_handling_never_makes_a_second_callback(env: Env) -> None:
    voicemail = await _voicemail(env)
    await env.handler().handle(_delivery(voicemail))
    await env.handler().handle(_delivery(voicemail, n=2))  # redelivered, to a restarted process
    await asyncio.gather(*(env.handler().handle(_delivery(voicemail, n=3)) for _ in range(2)))

    (callback_id,) = await env.callbacks()
    assert [n.ref for n in await env.store.sources(callback_id)] == [voicemail.id]


async def test_a_callback_closed_meanwhile_is_not_made_again_by_a_late_redelivery(env: Env) -> None:
    voicemail = await _voicemail(env)
    handler = env.handler()
    await handler.handle(_delivery(voicemail))
    (callback_id,) = await env.callbacks()
    await env.service.cancel(callback_id, actor=Actor(ActorKind.AGENT, "a1"), reason="reached by email")

    assert await handler.request(voicemail.id) == callback_id
    assert await env.callbacks() == [callback_id]


async def test_a_number_with_an_open_callback_gets_the_voicemail_as_a_note_on_it(env: Env) -> None:
    first = await _voicemail(env, "vm-1")
    second = await _voicemail(env, "vm-2", text="It's Ann again, about the invoice.")
    handler = env.handler()
    await handler.handle(_delivery(first))
    await handler.handle(_delivery(second))
    await handler.handle(_delivery(second, n=2))

    (callback_id,) = await env.callbacks()
    notes = await env.store.sources(callback_id)
    assert [(n.ref, n.merged) for n in notes] == [("vm-1", False), ("vm-2", True)]


async def test_a_silent_voicemail_stays_a_missed_call_unless_the_setting_asks_for_a_callback(
    env: Env,
) -> None:
    voicemail = await _voicemail(env, text="")
    await env.handler().handle(_delivery(voicemail))
    assert await env.callbacks() == []

    await env.handler(voicemail_callback_silent="true").handle(_delivery(voicemail))
    (callback_id,) = await env.callbacks()
    (note,) = await env.store.sources(callback_id)
    assert note.note == "silent message: no words were heard"


async def test_a_voicemail_from_long_ago_makes_no_callback(env: Env) -> None:
    """A first deployment reads the bus from the start: old voicemails must not flood the worklist."""
    voicemail = await _voicemail(env)
    env.clock.set(voicemail.recorded_at + timedelta(days=8))
    await env.handler().handle(_delivery(voicemail))
    assert await env.callbacks() == []


async def test_withheld_numbers_and_voicemails_without_a_queue_make_no_callback_and_no_error(
    env: Env,
) -> None:
    withheld = await _voicemail(env, "vm-1", caller="")
    nowhere = await _voicemail(env, "vm-2", queue=None)
    handler = env.handler()
    await handler.handle(_delivery(withheld))
    await handler.handle(_delivery(nowhere))
    assert await env.callbacks() == []
