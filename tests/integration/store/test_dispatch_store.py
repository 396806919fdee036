"""The dispatcher's store on SQLite and PostgreSQL: a stale leader cannot record a dial, the
do-not-call list is checked with the dial, attempts end once with their cause, and requests from
voicemail, SMS and agents merge into an open callback instead of making a second one."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter.callbacks.attempts import CallbackSource, end_attempt, start_attempt
from callcenter.callbacks.dispatch_ports import ClaimedError, DoNotCallError, StaleLeaderError
from callcenter.callbacks.lifecycle import move
from callcenter.callbacks.ports import StaleCallbackError
from callcenter.callbacks.service import CallbackService
from callcenter.callbacks.sources import CallbackSources
from callcenter.errors import InvalidPhoneNumberError, ValidationError
from callcenter.model.callbacks import Actor, Callback
from callcenter.model.records import QueueRecord
from callcenter.model.vocabulary import ActorKind, AttemptResult, CallbackState
from callcenter.store.sql_dispatch import SqlDispatchStore
from tests.conftest import FakeClock
from tests.fakes.bus import InMemoryEventBus
from tests.fakes.callbacks import FlatDayPlanner
from tests.fakes.store import InMemoryQueueRepository

T0 = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
ROLE = "callback-dispatcher"
DISPATCHER = Actor(ActorKind.SYSTEM, "dispatcher")
NUMBER = "+14155550100"
S = CallbackState


class Env:
    def __init__(self, store: SqlDispatchStore, sources: CallbackSources, clock: FakeClock) -> None:
        self.store = store
        self.sources = sources
        self.clock = clock


@pytest.fixture
async def env(engine: AsyncEngine) -> AsyncIterator[Env]:
    """The callback store on a migrated database (SQLite and PostgreSQL: the ``engine`` fixture)."""
    clock = FakeClock(T0)
    queues = InMemoryQueueRepository()
    await queues.put(QueueRecord(name="sales"))
    bus = InMemoryEventBus()
    store = SqlDispatchStore(engine)
    service = CallbackService(store, FlatDayPlanner(queues), queues, bus, clock)
    yield Env(store, CallbackSources(store, service, bus, clock), clock)


async def _due(env: Env, number: str = NUMBER) -> Callback:
    """A follow-up due now."""
    request = await env.sources.follow_up("a1", "sales", number, at=env.clock.now(), note="quote")
    return request.callback


async def test_a_dial_is_recorded_with_its_attempt_and_a_stale_token_is_refused(env: Env) -> None:
    callback = await _due(env)
    moved, change, attempt = start_attempt(callback, at=T0, fence=7, actor=DISPATCHER)
    await env.store.start_attempt(moved, change, attempt, role=ROLE)
    assert (await env.store.get(callback.id)).state is S.DIALING
    assert [a.id for a in await env.store.open_attempts()] == [attempt.id]

    other = await _due(env, "+14155550101")
    moved, change, stale = start_attempt(other, at=T0, fence=6, actor=DISPATCHER)
    with pytest.raises(StaleLeaderError):
        await env.store.start_attempt(moved, change, stale, role=ROLE)
    assert (await env.store.get(other.id)).state is S.SCHEDULED, "nothing of the stale dial is stored"
    assert await env.store.attempts(other.id) == ()


async def test_one_leader_dials_concurrently_and_a_newer_leader_fences_it_off(env: Env) -> None:
    """Dials of one token run side by side (no queue on the fence row); after a newer token
    recorded a dial, the older token's dials are refused."""
    numbers = [f"+1415555020{i}" for i in range(6)]
    callbacks = [await _due(env, n) for n in numbers]

    async def dial(callback: Callback, fence: int) -> None:
        moved, change, attempt = start_attempt(callback, at=T0, fence=fence, actor=DISPATCHER)
        await env.store.start_attempt(moved, change, attempt, role=ROLE)

    await asyncio.gather(*(dial(c, 3) for c in callbacks[:4]))
    assert [(await env.store.get(c.id)).state for c in callbacks[:4]] == [S.DIALING] * 4
    await dial(callbacks[4], 4)
    with pytest.raises(StaleLeaderError):
        await dial(callbacks[5], 3)
    assert (await env.store.get(callbacks[5].id)).state is S.SCHEDULED


async def test_the_do_not_call_list_is_checked_when_the_dial_is_recorded(env: Env) -> None:
    callback = await _due(env)
    entry = await env.store.block_number(NUMBER, by="supervisor:ann", reason="asked us", at=T0)
    again = await env.store.block_number(NUMBER, by="someone else", reason="", at=T0 + timedelta(hours=1))
    assert again == entry
    moved, change, attempt = start_attempt(callback, at=T0, fence=1, actor=DISPATCHER)
    with pytest.raises(DoNotCallError):
        await env.store.start_attempt(moved, change, attempt, role=ROLE)
    assert (await env.store.get(callback.id)).state is S.SCHEDULED
    assert await env.store.unblock_number(NUMBER) is True
    assert await env.store.unblock_number(NUMBER) is False
    await env.store.start_attempt(moved, change, attempt, role=ROLE)


async def test_a_dial_of_a_callback_changed_meanwhile_is_refused(env: Env) -> None:
    callback = await _due(env)
    cancelled, cancel = move(callback, S.CANCELLED, at=T0, actor=Actor(ActorKind.CUSTOMER, "api"))
    await env.store.move(cancelled, cancel)
    moved, change, attempt = start_attempt(callback, at=T0, fence=1, actor=DISPATCHER)
    with pytest.raises(StaleCallbackError):
        await env.store.start_attempt(moved, change, attempt, role=ROLE)
    assert await env.store.open_attempts() == ()


async def test_an_attempt_ends_once_with_its_result_and_cause(env: Env) -> None:
    callback = await _due(env)
    dialing, change, attempt = start_attempt(callback, at=T0, fence=1, actor=DISPATCHER)
    await env.store.start_attempt(dialing, change, attempt, role=ROLE)
    retry_at = T0 + timedelta(minutes=5)
    waiting, change, ended = end_attempt(
        dialing,
        attempt,
        AttemptResult.BUSY,
        at=T0,
        actor=DISPATCHER,
        cause="busy (cause 17)",
        retry_at=retry_at,
    )
    await env.store.end_attempt(waiting, change, ended)
    # A repeat (a second worker, a replay after a crash) changes nothing.
    assert await env.store.end_attempt(waiting, change, ended) == ended
    stored = await env.store.get(callback.id)
    assert (stored.state, stored.due_at, stored.last_result) == (S.RETRY_WAIT, retry_at, AttemptResult.BUSY)
    changes = await env.store.changes(callback.id)
    assert [c.state for c in changes] == [S.REQUESTED, S.SCHEDULED, S.DIALING, S.RETRY_WAIT]
    assert changes[-1].reason.startswith("busy (cause 17)") and changes[-1].actor == DISPATCHER
    [kept] = await env.store.attempts(callback.id)
    assert (kept.result, kept.cause, kept.fence) == (AttemptResult.BUSY, "busy (cause 17)", 1)
    assert await env.store.open_attempts() == ()

    dialing, change, second = start_attempt(stored, at=retry_at, fence=2, actor=DISPATCHER)
    await env.store.start_attempt(dialing, change, second, role=ROLE)
    connected, change, ended = end_attempt(
        dialing,
        second,
        AttemptResult.CONNECTED,
        at=retry_at,
        actor=DISPATCHER,
        cause="pressed 1",
        retry_at=None,
    )
    await env.store.end_attempt(connected, change, ended)
    assert (await env.store.get(callback.id)).state is S.CONNECTED
    assert [a.seq for a in await env.store.attempts(callback.id)] == [1, 2]


async def test_voicemail_and_sms_requests_of_one_number_merge_into_one_callback(env: Env) -> None:
    left = T0 - timedelta(minutes=10)
    first = await env.sources.from_voicemail(
        "sales", "(415) 555-0100", voicemail_id="vm-1", left_at=left, preview="about my order"
    )
    second = await env.sources.from_sms_reply(
        "sales", NUMBER, message_id="sms-9", received_at=T0, text="please call"
    )
    assert first.created and not second.created
    assert second.callback.id == first.callback.id
    assert first.callback.enqueued_at == left, "a voicemail keeps its place from when it was left"
    notes = await env.store.sources(first.callback.id)
    assert [(n.source, n.ref, n.merged) for n in notes] == [
        (CallbackSource.VOICEMAIL, "vm-1", False),
        (CallbackSource.SMS_REPLY, "sms-9", True),
    ]
    changes = await env.store.changes(first.callback.id)
    assert changes[0].actor == Actor(ActorKind.SYSTEM, "voicemail")


async def test_an_agent_follow_up_is_theirs_then_the_queues(env: Env) -> None:
    at = T0 + timedelta(hours=2)
    request = await env.sources.follow_up("a7", "sales", NUMBER, at=at, note="send the quote first")
    callback = request.callback
    assert (callback.state, callback.due_at, callback.window.start) == (S.SCHEDULED, at, at)
    [note] = await env.store.sources(callback.id)
    assert note.owner_agent == "a7" and note.owner_until is not None and note.owner_until > at
    assert (await env.store.changes(callback.id))[0].actor == Actor(ActorKind.AGENT, "a7")


async def test_bad_requests_are_refused_and_store_nothing(env: Env) -> None:
    with pytest.raises(InvalidPhoneNumberError):
        await env.sources.from_voicemail("sales", "anonymous", voicemail_id="vm", left_at=T0)
    with pytest.raises(ValidationError):
        await env.sources.follow_up("a1", "sales", NUMBER, at=T0 - timedelta(hours=1))
    assert (await env.store.list(queue=None, state=None, cursor=None, limit=10)).items == ()


async def test_a_claim_is_a_lock_that_expires(env: Env) -> None:
    callback = await _due(env)
    held = await env.store.claim(callback.id, "alice", until=T0 + timedelta(minutes=5), now=T0)
    assert (held.agent_id, await env.store.claim_of(callback.id, now=T0)) == ("alice", held)
    with pytest.raises(ClaimedError) as refused:
        await env.store.claim(
            callback.id, "bob", until=T0 + timedelta(minutes=5), now=T0 + timedelta(minutes=1)
        )
    assert refused.value.claim.agent_id == "alice"
    renewed = await env.store.claim(callback.id, "alice", until=T0 + timedelta(minutes=9), now=T0)
    assert renewed.until == T0 + timedelta(minutes=9)
    later = T0 + timedelta(minutes=10)
    assert await env.store.claim_of(callback.id, now=later) is None, "an expired claim holds nothing"
    taken = await env.store.claim(callback.id, "bob", until=later + timedelta(minutes=5), now=later)
    assert taken.agent_id == "bob"
    assert await env.store.release_claim(callback.id, "alice") is False
    assert await env.store.release_claim(callback.id, "bob") is True
    assert await env.store.claim_of(callback.id, now=later) is None
