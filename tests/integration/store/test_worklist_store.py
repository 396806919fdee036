"""The worklist over the dispatcher's SQL store, on SQLite and PostgreSQL: dispositions are one
transaction each (the follow-up with the call it follows: both or neither), "nobody on the line" ends
the attempt ``no_answer`` under the retry rules, bad requests change nothing, and each change is
announced on the bus for the agents' pages."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from datetime import UTC, datetime, time, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter.callbacks.attempts import end_attempt, start_attempt
from callcenter.callbacks.dispatch import DispatchSettings
from callcenter.callbacks.dispatch_ports import ClaimedError
from callcenter.callbacks.lifecycle import move
from callcenter.callbacks.reasons import Reason
from callcenter.callbacks.service import CallbackService
from callcenter.callbacks.sources import CallbackSources, SourceSettings
from callcenter.callbacks.worklist import Disposition, TextLine, VoicemailNote, Worklist
from callcenter.errors import ConflictError, NotFoundError, ValidationError
from callcenter.model.callbacks import Actor, Callback
from callcenter.model.events import CallbackAttemptEnded, CallbackClaimChanged, CallbackStateChanged
from callcenter.model.records import CallRecord, QueueRecord
from callcenter.model.vocabulary import ActorKind, AttemptResult, CallbackState
from callcenter.store.sql_dispatch import SqlDispatchStore
from tests.conftest import FakeClock
from tests.fakes.bus import InMemoryEventBus
from tests.fakes.callbacks import FlatDayPlanner
from tests.fakes.store import InMemoryQueueRepository

T0 = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
NUMBER = "+14155550100"
DISPATCHER = Actor(ActorKind.SYSTEM, "dispatcher")
S = CallbackState
SETTINGS = DispatchSettings(dial_from=time(0, 0), dial_until=time(23, 59), max_attempts=2, retry_s=60)


class Agents:
    """Which queues agents serve, and nobody has called before (the queue service in production)."""

    queues = {"alice": ("sales",), "bob": ("sales",), "carl": ("support",)}

    async def queues_of(self, agent_id: str) -> tuple[str, ...]:
        if agent_id not in self.queues:
            raise NotFoundError(f"no agent {agent_id}")
        return self.queues[agent_id]

    async def recent_calls_of(
        self, numbers: Collection[str], limit: int
    ) -> Mapping[str, Sequence[CallRecord]]:
        return {}


class Voicemails:
    async def voicemails(self, voicemail_ids: Collection[str]) -> Mapping[str, VoicemailNote]:
        # Only vm-1 is stored: one deleted (erased) leaves the item without it, not an error.
        note = VoicemailNote(
            id="vm-1", recorded_at=T0, duration_s=12.0, status="done", transcript="call me back"
        )
        return {"vm-1": note} if "vm-1" in voicemail_ids else {}


class Texts:
    async def threads(self, numbers: Collection[str], limit: int) -> Mapping[str, Sequence[TextLine]]:
        return {
            n: (TextLine(id=f"m-{n}", at=T0, direction="in", text=f"1 from {n}", status="received"),)
            for n in numbers
        }


class Env:
    def __init__(
        self,
        store: SqlDispatchStore,
        sources: CallbackSources,
        worklist: Worklist,
        clock: FakeClock,
        bus: InMemoryEventBus,
    ) -> None:
        self.store, self.sources, self.worklist, self.clock, self.bus = store, sources, worklist, clock, bus


@pytest.fixture
async def env(engine: AsyncEngine) -> AsyncIterator[Env]:
    """The callback store on a migrated database (SQLite and PostgreSQL: the ``engine`` fixture)."""
    clock = FakeClock(T0)
    queues = InMemoryQueueRepository()
    await queues.put(QueueRecord(name="sales"))
    bus = InMemoryEventBus()
    store = SqlDispatchStore(engine)
    service = CallbackService(store, FlatDayPlanner(queues), queues, bus, clock)
    sources = CallbackSources(store, service, bus, clock, settings=SourceSettings(personal_s=600))
    worklist = Worklist(
        store,
        Agents(),
        Agents(),
        clock,
        sources=sources,
        voicemails=Voicemails(),
        texts=Texts(),
        publish=bus.publish,
        dispatch=SETTINGS,
    )
    yield Env(store, sources, worklist, clock, bus)


async def _connected(env: Env, agent: str = "alice", number: str = NUMBER) -> Callback:
    """A callback whose attempt by ``agent`` connected (the dispatcher's part, done by hand)."""
    callback = (await env.sources.from_voicemail("sales", number, voicemail_id="vm-1", left_at=T0)).callback
    scheduled = await env.store.get(callback.id)
    if scheduled.state is S.REQUESTED:
        due, change = move(scheduled, S.SCHEDULED, at=env.clock.now(), actor=DISPATCHER)
        scheduled = await env.store.move(due, change)
    dialing, change, attempt = start_attempt(scheduled, at=env.clock.now(), fence=1, actor=DISPATCHER)
    attempt = dataclasses.replace(attempt, agent_id=agent, customer_dialled_at=env.clock.now())
    await env.store.start_attempt(dialing, change, attempt, role="callback-dispatcher")
    connected, change, ended = end_attempt(
        dialing,
        attempt,
        AttemptResult.CONNECTED,
        at=env.clock.now(),
        actor=DISPATCHER,
        cause="pressed 1",
        retry_at=None,
    )
    await env.store.end_attempt(connected, change, ended)
    return connected


async def test_each_item_gets_its_own_callers_voicemail_and_texts_read_for_the_whole_list(env: Env) -> None:
    other = "+14155550177"
    mine = (await env.sources.from_voicemail("sales", NUMBER, voicemail_id="vm-1", left_at=T0)).callback
    theirs = (await env.sources.from_voicemail("sales", other, voicemail_id="vm-gone", left_at=T0)).callback

    items = {item.callback.id: item for item in await env.worklist.items("alice")}

    assert [v.id for v in items[mine.id].voicemails] == ["vm-1"]
    assert items[theirs.id].voicemails == ()  # erased: the item stays, without it
    assert [t.text for t in items[mine.id].texts] == [f"1 from {NUMBER}"]
    assert [t.text for t in items[theirs.id].texts] == [f"1 from {other}"]


async def test_an_item_shows_why_with_the_voicemail_and_the_texts(env: Env) -> None:
    callback = (await env.sources.from_voicemail("sales", NUMBER, voicemail_id="vm-1", left_at=T0)).callback
    await env.sources.from_voicemail("sales", NUMBER, voicemail_id="vm-gone", left_at=T0)  # merged
    [item] = await env.worklist.items("alice")
    assert item.callback.id == callback.id
    assert item.kind is Reason.VOICEMAIL
    assert [v.transcript for v in item.voicemails] == ["call me back"]
    assert [t.text for t in item.texts] == [f"1 from {NUMBER}"]
    assert item.timing.status.value == "on_time"
    assert await env.worklist.items("carl") == (), "another queue's agent does not see it"
    with pytest.raises(NotFoundError):
        await env.worklist.items("nobody")


async def test_another_agents_follow_up_is_hidden_and_unclaimable_until_its_deadline(env: Env) -> None:
    at = T0 + timedelta(minutes=5)
    follow_up = (await env.sources.follow_up("bob", "sales", NUMBER, at=at)).callback
    items, reveal = await env.worklist.listing("alice")
    assert items == () and reveal == at + timedelta(seconds=600)
    with pytest.raises(ConflictError, match="bob's follow-up"):
        await env.worklist.claim(follow_up.id, "alice")
    [mine] = await env.worklist.items("bob")
    assert (mine.kind, mine.owner) == (Reason.FOLLOW_UP, "bob")
    env.clock.set(at + timedelta(seconds=600))
    [fallen] = await env.worklist.items("alice")
    assert (fallen.callback.id, fallen.owner) == (follow_up.id, None), "the queue's after the deadline"
    assert (await env.worklist.claim(follow_up.id, "alice")).agent_id == "alice"


async def test_a_claim_held_by_another_agent_is_refused_and_announced_when_taken(env: Env) -> None:
    callback = (await env.sources.from_voicemail("sales", NUMBER, voicemail_id="vm-1", left_at=T0)).callback
    held = await env.worklist.claim(callback.id, "alice")
    with pytest.raises(ClaimedError, match="claimed by agent alice"):
        await env.worklist.claim(callback.id, "bob")
    assert await env.store.claim_of(callback.id, now=T0) == held
    with pytest.raises(NotFoundError):
        await env.worklist.release(callback.id, "bob")
    await env.worklist.release(callback.id, "alice")
    claims = [e for e in env.bus.of_type(CallbackClaimChanged) if isinstance(e, CallbackClaimChanged)]
    assert [(c.agent_id, c.until) for c in claims] == [("alice", held.until), ("alice", None)]


async def test_a_follow_up_disposition_closes_the_call_and_books_the_follow_up_together(env: Env) -> None:
    callback = await _connected(env)
    later = T0 + timedelta(days=1)
    done = await env.worklist.dispose(
        callback.id, "alice", Disposition.FOLLOW_UP, notes="send the quote", follow_up_at=later
    )
    assert done.callback.state is S.COMPLETED
    assert done.follow_up is not None and (done.follow_up.state, done.follow_up.due_at) == (
        S.SCHEDULED,
        later,
    )
    assert done.follow_up.window.start == later
    stored = await env.store.get(callback.id)
    assert stored.state is S.COMPLETED
    assert (await env.store.changes(callback.id))[
        -1
    ].reason == f"follow up at {later.isoformat()}: send the quote"
    [note] = await env.store.sources(done.follow_up.id)
    assert (note.owner_agent, note.note) == ("alice", "send the quote")
    states = [
        (e.callback_id, e.state)
        for e in env.bus.of_type(CallbackStateChanged)
        if isinstance(e, CallbackStateChanged)
    ]
    assert (callback.id, S.COMPLETED) in states and (done.follow_up.id, S.SCHEDULED) in states
    with pytest.raises(ConflictError, match="completed"):
        await env.worklist.dispose(callback.id, "alice", Disposition.FOLLOW_UP, follow_up_at=later)
    assert len([c for c in await env.store.in_state("sales", frozenset({S.SCHEDULED}))]) == 1, (
        "no second follow-up"
    )


async def test_a_follow_up_that_cannot_be_stored_leaves_the_call_open(env: Env) -> None:
    """Both or neither: the follow-up's insert fails (its id is taken), the call stays connected."""
    callback = await _connected(env)
    taken = (await env.sources.follow_up("bob", "sales", "+14155550101", at=T0)).callback
    moved_sources = CallbackSources(
        env.store,
        CallbackService(
            env.store,
            FlatDayPlanner(InMemoryQueueRepository()),
            InMemoryQueueRepository(),
            env.bus,
            env.clock,
        ),
        env.bus,
        env.clock,
        new_id=lambda: taken.id,
    )
    worklist = Worklist(env.store, Agents(), Agents(), env.clock, sources=moved_sources, dispatch=SETTINGS)
    with pytest.raises(ConflictError):
        await worklist.dispose(
            callback.id, "alice", Disposition.FOLLOW_UP, follow_up_at=T0 + timedelta(hours=1)
        )
    assert (await env.store.get(callback.id)).state is S.CONNECTED, "nothing of the disposition is stored"
    assert [c.state for c in await env.store.changes(callback.id)][-1] is S.CONNECTED


async def test_nobody_on_the_line_retries_then_fails_when_the_dials_are_used_up(env: Env) -> None:
    callback = await _connected(env)
    done = await env.worklist.dispose(callback.id, "alice", Disposition.NO_ANSWER, notes="silence")
    assert (done.callback.state, done.callback.due_at) == (S.RETRY_WAIT, T0 + timedelta(seconds=60))
    assert done.callback.last_result is AttemptResult.NO_ANSWER
    [attempt] = await env.store.attempts(callback.id)
    assert (attempt.result, attempt.cause) == (
        AttemptResult.NO_ANSWER,
        "agent alice: nobody on the line (silence)",
    )
    ended = [e for e in env.bus.of_type(CallbackAttemptEnded) if isinstance(e, CallbackAttemptEnded)]
    assert ended[-1].result is AttemptResult.NO_ANSWER

    # The second (last) dial connects too, and again nobody is there: failed.
    env.clock.advance(60)
    waiting = await env.store.get(callback.id)
    dialing, change, second = start_attempt(waiting, at=env.clock.now(), fence=1, actor=DISPATCHER)
    second = dataclasses.replace(second, agent_id="alice", customer_dialled_at=env.clock.now())
    await env.store.start_attempt(dialing, change, second, role="callback-dispatcher")
    connected, change, over = end_attempt(
        dialing,
        second,
        AttemptResult.CONNECTED,
        at=env.clock.now(),
        actor=DISPATCHER,
        cause="pressed 1",
        retry_at=None,
    )
    await env.store.end_attempt(connected, change, over)
    failed = await env.worklist.dispose(callback.id, "alice", Disposition.NO_ANSWER)
    assert failed.callback.state is S.FAILED
    assert (await env.store.changes(callback.id))[-1].reason.endswith("2 dials made")


async def test_bad_dispositions_change_nothing(env: Env) -> None:
    waiting = (await env.sources.follow_up("alice", "sales", NUMBER, at=T0)).callback
    with pytest.raises(ConflictError, match="only a connected call"):
        await env.worklist.dispose(waiting.id, "alice", Disposition.RESOLVED)
    callback = await _connected(env, number="+14155550102")
    with pytest.raises(ConflictError, match="was not on the call"):
        await env.worklist.dispose(callback.id, "bob", Disposition.RESOLVED)
    with pytest.raises(ValidationError, match="needs follow_up_at"):
        await env.worklist.dispose(callback.id, "alice", Disposition.FOLLOW_UP)
    with pytest.raises(ValidationError, match="goes with the outcome follow_up"):
        await env.worklist.dispose(callback.id, "alice", Disposition.RESOLVED, follow_up_at=T0)
    with pytest.raises(ValidationError, match="already past"):
        await env.worklist.dispose(
            callback.id, "alice", Disposition.FOLLOW_UP, follow_up_at=T0 - timedelta(hours=1)
        )
    with pytest.raises(ConflictError, match="cannot be claimed"):
        await env.worklist.claim(callback.id, "alice")
    assert (await env.store.get(callback.id)).state is S.CONNECTED
    [attempt] = await env.store.attempts(callback.id)
    assert attempt.result is AttemptResult.CONNECTED
    resolved = await env.worklist.dispose(callback.id, "alice", Disposition.RESOLVED, notes="done")
    assert resolved.callback.state is S.COMPLETED
