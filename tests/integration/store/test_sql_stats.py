"""Interval rows materialised as calls end equal the rows rebuilt from the stored calls and the live
board's, on SQLite and PostgreSQL (integration)."""

from __future__ import annotations

import dataclasses
import random
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter.bus import Delivery
from callcenter.callbacks.lifecycle import move, new_callback
from callcenter.callbacks.promise import keep_place_window
from callcenter.callbacks.service import state_event
from callcenter.errors import ValidationError
from callcenter.model.callbacks import Actor
from callcenter.model.events import CallbackStateChanged, CallEnded, DomainEvent
from callcenter.model.records import CallRecord
from callcenter.model.vocabulary import ActorKind, CallbackKind, CallbackState, CallOutcome, EntryPoint
from callcenter.stats.definitions import Counts, StatsConfig
from callcenter.stats.intervals import IntervalKey, ended_from_event, reached_from_event
from callcenter.stats.live import LiveStats
from callcenter.stats.service import StatsService
from callcenter.store.sql_callbacks import SqlCallbackRepository
from callcenter.store.sql_repos import SqlCallRepository
from callcenter.store.sql_stats import SqlStatsRepository
from tests.conftest import FakeClock

T0 = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
CONFIG = StatsConfig(closure_window_s=3600, thresholds={"support": 40})
CALLERS = ("+14155550100", "+14155550101", "+14155550102", "+14155550103", "anonymous")
OUTCOMES = (
    CallOutcome.ANSWERED,
    CallOutcome.ANSWERED,
    CallOutcome.ANSWERED,
    CallOutcome.ABANDONED,
    CallOutcome.SHORT_ABANDON,
    CallOutcome.UNANSWERED_TIMEOUT,
    CallOutcome.CALLBACK_REQUESTED,
    CallOutcome.IVR_HANGUP,
)


def calls(n: int, seed: int) -> list[CallRecord]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        arrived = T0 + timedelta(seconds=rng.uniform(0, 5 * 3600))
        outcome = rng.choice(OUTCOMES)
        queue = None if outcome is CallOutcome.IVR_HANGUP else rng.choice(["sales", "support"])
        wait = rng.uniform(0, 90) if queue else None
        talk = rng.uniform(10, 400) if outcome is CallOutcome.ANSWERED else None
        answered = arrived + timedelta(seconds=wait or 0) if talk is not None else None
        ended = arrived + timedelta(seconds=(wait or 3) + (talk or 0))
        out.append(
            CallRecord(
                id=f"call-{i:03d}",
                channel_id=f"ch-{i}",
                linkedid=f"ch-{i}",
                entry_point=EntryPoint.ARI,
                caller=rng.choice(CALLERS),
                queue=queue,
                arrived_at=arrived,
                queued_at=arrived if queue else None,
                answered_at=answered,
                ended_at=ended,
                wait_s=wait,
                talk_s=talk,
                agent_id=rng.choice(["alice", "bob"]) if talk is not None else None,
                outcome=outcome,
            )
        )
    return out


def call_ended(record: CallRecord) -> CallEnded:
    assert record.outcome is not None and record.ended_at is not None
    return CallEnded(
        event_id=record.id,
        occurred_at=record.ended_at,
        call_id=record.id,
        outcome=record.outcome,
        entry_point=record.entry_point,
        queue=record.queue,
        caller=record.caller,
        wait_s=record.wait_s or 0.0,
        talk_s=record.talk_s or 0.0,
        agent_id=record.agent_id,
    )


def connected_by_agent(callback_id: str, number: str, at: datetime, agent: str) -> CallbackStateChanged:
    """A keep-my-place callback of ``number`` reaching ``connected`` (agent ``agent``) at ``at``."""
    return CallbackStateChanged(
        event_id=f"callback:{callback_id}:connected:1",
        occurred_at=at,
        callback_id=callback_id,
        queue="sales",
        number=number,
        kind=CallbackKind.KEEP_PLACE,
        state=CallbackState.CONNECTED,
        window_start=T0,
        window_end=T0 + timedelta(minutes=40),
        attempts=1,
        actor_kind=ActorKind.AGENT,
        actor=agent,
    )


@pytest.mark.timeout(60)
async def test_materialised_rows_equal_live_and_rebuilt_rows(engine: AsyncEngine) -> None:
    records = calls(120, seed=7)
    store = SqlCallRepository(engine)
    for record in records:
        await store.upsert(record)
    stats = SqlStatsRepository(engine)
    live = LiveStats(config=CONFIG)
    events = [call_ended(r) for r in sorted(records, key=lambda r: (r.ended_at or T0, r.id))]

    folded = []
    for event in events:
        folded.append(await stats.materialise(ended_from_event(event), CONFIG))
        assert await stats.materialise(ended_from_event(event), CONFIG) is False  # a redelivery
        live.apply(event)
    assert all(folded)
    window = (T0 - timedelta(days=1), T0 + timedelta(days=1))
    materialised = dict(await stats.intervals(*window))
    missed_page = await stats.missed_calls(*window, limit=500)

    assert materialised == live.book.counts
    assert sum(c.offered for c in materialised.values()) == len(records)
    assert {m.call_id: m for m in missed_page.items} == live.book.missed
    assert any(m.closed_by_agent for m in missed_page.items), "the seed closes some missed calls"

    assert await stats.rebuild(CONFIG) == len(records)
    assert dict(await stats.intervals(*window)) == materialised
    rebuilt = await stats.missed_calls(*window, limit=500)
    assert {m.call_id: m for m in rebuilt.items} == live.book.missed


@pytest.mark.timeout(60)
async def test_calls_folded_in_batches_give_the_rows_of_one_by_one_and_repeats_count_once(
    engine: AsyncEngine,
) -> None:
    """The materialiser's batches (a missed call and its closing answered call may share one, a batch
    may repeat a call or hold calls folded before) leave what the live board folds one by one."""
    records = calls(150, seed=21)
    stats = SqlStatsRepository(engine)
    live = LiveStats(config=CONFIG)
    events = [call_ended(r) for r in sorted(records, key=lambda r: (r.ended_at or T0, r.id))]
    for event in events:
        live.apply(event)
    rng = random.Random(5)
    new = 0
    position = 0
    while position < len(events):
        size = rng.randint(1, 25)
        batch = events[position : position + size]
        repeats = rng.sample(events[: position + size], k=min(3, position + size))  # redeliveries
        new += await stats.materialise_many([ended_from_event(e) for e in batch + repeats], CONFIG)
        position += size
    window = (T0 - timedelta(days=1), T0 + timedelta(days=1))

    def rounded(counts: dict[IntervalKey, Counts]) -> dict[IntervalKey, tuple[float, ...]]:
        # A batch sums its seconds before adding them: the same sum, up to the last float bit.
        return {key: tuple(round(float(v), 6) for v in dataclasses.astuple(c)) for key, c in counts.items()}

    assert new == len(records)
    assert rounded(dict(await stats.intervals(*window))) == rounded(live.book.counts)
    missed = await stats.missed_calls(*window, limit=500)
    assert {m.call_id: m for m in missed.items} == live.book.missed
    assert any(m.closed_by_agent for m in missed.items), "the seed closes some missed calls"
    assert await stats.materialise_many([ended_from_event(e) for e in events[:10]], CONFIG) == 0


async def test_the_missed_list_filters_and_pages(engine: AsyncEngine) -> None:
    stats = SqlStatsRepository(engine)
    records = calls(60, seed=3)
    for record in sorted(records, key=lambda r: (r.ended_at or T0, r.id)):
        await stats.materialise(ended_from_event(call_ended(record)), CONFIG)
    window = (T0, T0 + timedelta(days=1))

    everything = (await stats.missed_calls(*window, limit=500)).items
    opened = (await stats.missed_calls(*window, status="open", limit=500)).items
    closed = (await stats.missed_calls(*window, status="closed", limit=500)).items
    sales = (await stats.missed_calls(*window, queue="sales", limit=500)).items

    assert opened and closed
    assert all(m.is_open for m in opened) and all(m.closed_at is not None for m in closed)
    assert all(m.queue == "sales" for m in sales) and sales
    assert [m.ended_at for m in everything] == sorted((m.ended_at for m in everything), reverse=True)
    pages, cursor = [], None
    while True:
        page = await stats.missed_calls(*window, cursor=cursor, limit=7)
        pages += page.items
        cursor = page.next
        if cursor is None:
            break
    assert pages == list(everything)
    with pytest.raises(ValidationError):
        await stats.missed_calls(*window, cursor="bm9wZQ", limit=7)


async def test_intervals_filter_by_queue_and_range(engine: AsyncEngine) -> None:
    stats = SqlStatsRepository(engine)
    for record in calls(40, seed=5):
        await stats.materialise(ended_from_event(call_ended(record)), CONFIG)

    rows = await stats.intervals(T0 + timedelta(hours=1), T0 + timedelta(hours=2), ["support"])

    assert rows
    assert all(k.queue == "support" for k, _ in rows)
    assert all(T0 + timedelta(hours=1) <= k.start < T0 + timedelta(hours=2) for k, _ in rows)


async def test_agents_answered_calls_are_read_back_for_the_live_board(engine: AsyncEngine) -> None:
    records = calls(50, seed=11)
    store, stats = SqlCallRepository(engine), SqlStatsRepository(engine)
    for record in sorted(records, key=lambda r: (r.ended_at or T0, r.id)):
        await store.upsert(record)
        await stats.materialise(ended_from_event(call_ended(record)), CONFIG)

    by_agent = await stats.answered_by_agent_since(T0)

    expected: dict[str, tuple[int, float]] = {}
    for r in records:
        if r.outcome is CallOutcome.ANSWERED and r.agent_id:
            calls_, talk = expected.get(r.agent_id, (0, 0.0))
            expected[r.agent_id] = (calls_ + 1, talk + (r.talk_s or 0.0))
    assert by_agent.keys() == expected.keys()
    for agent, (n, talk) in expected.items():
        assert by_agent[agent][0] == n and abs(by_agent[agent][1] - talk) < 1e-6


async def test_a_connected_callback_closes_the_same_missed_calls_stored_and_live(engine: AsyncEngine) -> None:
    stats = SqlStatsRepository(engine)
    live = LiveStats(config=CONFIG)
    number = "+14155550177"
    missed = [
        CallEnded(
            event_id=f"m{i}",
            occurred_at=T0 + timedelta(minutes=i),
            call_id=f"m{i}",
            outcome=CallOutcome.ABANDONED,
            entry_point=EntryPoint.ARI,
            queue="sales",
            caller=number,
            wait_s=40.0,
        )
        for i in range(2)
    ]
    connected = connected_by_agent("cb1", number, T0 + timedelta(minutes=30), "a7")
    for event in missed:
        await stats.materialise(ended_from_event(event), CONFIG)
        live.apply(event)
    reached = reached_from_event(connected)
    assert reached is not None

    assert await stats.materialise_reach(reached, CONFIG) == 2
    assert await stats.materialise_reach(reached, CONFIG) == 0  # a redelivery closes nothing more
    live.apply(connected)

    stored = dict(await stats.intervals(T0, T0 + timedelta(hours=1)))
    assert stored == live.book.counts
    assert sum(c.missed_closed for c in stored.values()) == 2
    rows = await stats.missed_since(T0)
    assert {(m.call_id, m.closed_by_agent, m.closed_by_call) for m in rows} == {
        ("m0", "a7", "callback:cb1"),
        ("m1", "a7", "callback:cb1"),
    }


async def test_the_materialisers_batch_keeps_a_reaching_in_its_place_between_ended_calls(
    engine: AsyncEngine,
) -> None:
    """``StatsService.handle_many``: calls before a connected callback are folded before it, calls
    after it after it, as one by one: the callback closes the caller's missed calls, not the answered
    call that came after it (folded first, that call would have closed them)."""
    stats = StatsService(SqlStatsRepository(engine), FakeClock(T0), CONFIG)
    live = LiveStats(config=CONFIG)
    number = "+14155550166"

    def ended(i: int, minute: int) -> CallEnded:
        return CallEnded(
            event_id=f"e{i}",
            occurred_at=T0 + timedelta(minutes=minute),
            call_id=f"e{i}",
            outcome=CallOutcome.ABANDONED,
            entry_point=EntryPoint.ARI,
            queue="sales",
            caller=number,
            wait_s=30.0,
        )

    connected = connected_by_agent("cb2", number, T0 + timedelta(minutes=20), "a8")
    answered = dataclasses.replace(
        ended(2, 25), outcome=CallOutcome.ANSWERED, wait_s=5.0, talk_s=60.0, agent_id="a9"
    )
    events: list[DomainEvent] = [ended(0, 1), ended(1, 2), connected, answered, ended(3, 26)]
    deliveries = [Delivery(message_id=f"{n}-0", event=e, deliveries=1) for n, e in enumerate(events)]

    await stats.handle_many(deliveries)
    await stats.handle_many(deliveries)  # redelivered: nothing counts twice
    for event in events:
        live.apply(event)

    assert dict(await stats_repo_intervals(engine)) == live.book.counts
    rows = {m.call_id: m.closed_by_call for m in await SqlStatsRepository(engine).missed_since(T0)}
    assert rows == {"e0": "callback:cb2", "e1": "callback:cb2", "e3": None}


async def stats_repo_intervals(engine: AsyncEngine) -> list[tuple[IntervalKey, Counts]]:
    return list(await SqlStatsRepository(engine).intervals(T0, T0 + timedelta(hours=1)))


async def test_a_rebuild_keeps_the_closures_by_connected_callbacks(engine: AsyncEngine) -> None:
    records = calls(60, seed=11)
    lonely = ("+14155550188", "+14155550189")  # callers only a callback reaches
    records += [
        dataclasses.replace(
            records[0],
            id=f"lonely-{i}",
            channel_id=f"lonely-{i}",
            linkedid=f"lonely-{i}",
            caller=number,
            queue="sales",
            outcome=CallOutcome.ABANDONED,
            arrived_at=T0 + timedelta(minutes=10 + i),
            queued_at=T0 + timedelta(minutes=10 + i),
            answered_at=None,
            ended_at=T0 + timedelta(minutes=11 + i),
            wait_s=60.0,
            talk_s=None,
            agent_id=None,
        )
        for i, number in enumerate(lonely)
    ]
    store = SqlCallRepository(engine)
    for record in records:
        await store.upsert(record)
    callbacks = SqlCallbackRepository(engine)
    stats = SqlStatsRepository(engine)
    live = LiveStats(config=CONFIG)
    customer, agent = Actor(ActorKind.CUSTOMER, "ivr"), Actor(ActorKind.AGENT, "a9")
    events: list[CallEnded | CallbackStateChanged] = [
        call_ended(r) for r in sorted(records, key=lambda r: (r.ended_at or T0, r.id))
    ]
    for index, (number, connect_h) in enumerate(zip(lonely, (0.5, 4.5), strict=True)):
        connect = T0 + timedelta(hours=connect_h)
        callback, change = new_callback(
            callback_id=f"cb{index}",
            queue="sales",
            number=number,
            kind=CallbackKind.KEEP_PLACE,
            window=keep_place_window(connect - timedelta(minutes=20), connect + timedelta(minutes=10)),
            at=connect - timedelta(minutes=20),
            actor=customer,
            enqueued_at=connect - timedelta(minutes=21),
        )
        await callbacks.add(callback, (change,))
        events.append(state_event(callback, change))
        for state, minutes in (
            (CallbackState.SCHEDULED, -2.0),
            (CallbackState.DIALING, -1.0),
            (CallbackState.CONNECTED, 0.0),
        ):
            callback, change = move(callback, state, at=connect + timedelta(minutes=minutes), actor=agent)
            await callbacks.move(callback, change)
            events.append(state_event(callback, change))
    for event in sorted(events, key=lambda e: e.occurred_at):
        if isinstance(event, CallEnded):
            await stats.materialise(ended_from_event(event), CONFIG)
        elif (reached := reached_from_event(event)) is not None:
            await stats.materialise_reach(reached, CONFIG)
        live.apply(event)
    window = (T0 - timedelta(days=1), T0 + timedelta(days=1))
    materialised = dict(await stats.intervals(*window))
    by_callback = [m for m in live.book.missed.values() if (m.closed_by_call or "").startswith("callback:")]

    assert materialised == live.book.counts
    assert by_callback, "the seed leaves missed calls for the callbacks to close"
    assert await stats.rebuild(CONFIG) == len(records)
    assert dict(await stats.intervals(*window)) == materialised
    rebuilt = await stats.missed_calls(*window, limit=500)
    assert {m.call_id: m for m in rebuilt.items} == live.book.missed


async def test_a_fold_batch_with_a_naive_time_is_refused_and_stores_nothing(engine: AsyncEngine) -> None:
    records = calls(4, seed=3)
    stats = SqlStatsRepository(engine)
    ended = [ended_from_event(call_ended(r)) for r in records]
    naive = dataclasses.replace(ended[-1], ended_at=ended[-1].ended_at.replace(tzinfo=None))

    with pytest.raises(ValidationError, match="time zone"):
        await stats.materialise_many([*ended[:-1], naive], CONFIG)

    window = (T0 - timedelta(days=1), T0 + timedelta(days=1))
    assert dict(await stats.intervals(*window)) == {}
    assert await stats.materialise_many(ended, CONFIG) == len(ended)  # nothing was marked folded
