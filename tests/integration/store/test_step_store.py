"""The queue's batch writer on SQLite and PostgreSQL: many steps in one transaction (integration)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter.errors import NotFoundError, ValidationError
from callcenter.model.events import AgentStateChanged
from callcenter.model.records import AgentRecord, CallRecord, QueueRecord
from callcenter.model.vocabulary import AgentState, CallOutcome, EntryPoint
from callcenter.queue.ports import StepWrite, TimelineEntry
from callcenter.store.sql_repos import (
    SqlAgentRepository,
    SqlCallRepository,
    SqlQueueRepository,
    SqlStepStore,
)

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
CALLER = "+14155550100"


def call(call_id: str, *, at: datetime = T0, **fields: object) -> CallRecord:
    values: dict[str, object] = {
        "id": call_id,
        "channel_id": f"chan-{call_id}",
        "linkedid": f"linked-{call_id}",
        "entry_point": EntryPoint.ARI,
        "caller": CALLER,
        "queue": "sales",
        "arrived_at": at,
    }
    values.update(fields)
    return CallRecord(**values)  # type: ignore[arg-type]


def state(agent_id: str, new: AgentState, previous: AgentState, at: datetime) -> AgentStateChanged:
    return AgentStateChanged(
        event_id=f"agent:{agent_id}:{at.isoformat()}:{new}",
        occurred_at=at,
        agent_id=agent_id,
        state=new,
        previous=previous,
        reason="test",
    )


def entry(call_id: str, kind: str, at: datetime) -> TimelineEntry:
    return TimelineEntry(call_id=call_id, at=at, kind=kind, detail={"n": kind})


@pytest.fixture
async def repos(engine: AsyncEngine) -> tuple[SqlStepStore, SqlCallRepository, SqlAgentRepository]:
    await SqlQueueRepository(engine).put(QueueRecord(name="sales"))
    agents = SqlAgentRepository(engine)
    await agents.add(AgentRecord(id="alice", name="Alice", endpoint="PJSIP/alice", queues=("sales",)))
    await agents.set_state("alice", AgentState.AVAILABLE, T0 - timedelta(hours=1))
    return SqlStepStore(engine), SqlCallRepository(engine), agents


Repos = tuple[SqlStepStore, SqlCallRepository, SqlAgentRepository]


async def test_a_whole_call_in_one_batch_ends_as_its_steps_one_after_the_other(repos: Repos) -> None:
    steps, calls, agents = repos
    t = [T0 + timedelta(seconds=s) for s in range(6)]
    answered = call("c1", queued_at=t[1], answered_at=t[3], agent_id="alice")
    batch = [
        StepWrite(record=call("c1"), entries=(entry("c1", "arrived", t[0]),)),
        StepWrite(record=call("c1", queued_at=t[1]), entries=(entry("c1", "queued", t[1]),)),
        StepWrite(states=(state("alice", AgentState.RINGING, AgentState.AVAILABLE, t[2]),)),
        StepWrite(
            record=answered,
            entries=(entry("c1", "answered", t[3]),),
            states=(state("alice", AgentState.BUSY, AgentState.RINGING, t[3]),),
        ),
        StepWrite(
            record=call(
                "c1",
                queued_at=t[1],
                answered_at=t[3],
                agent_id="alice",
                ended_at=t[5],
                outcome=CallOutcome.ANSWERED,
            ),
            entries=(entry("c1", "caller_hung_up", t[5]), entry("c1", "ended", t[5])),
            states=(state("alice", AgentState.AVAILABLE, AgentState.BUSY, t[5]),),
        ),
    ]

    assert await steps.save_steps(batch) == frozenset()

    stored = await calls.get("c1")
    assert (stored.outcome, stored.answered_at, stored.agent_id) == (CallOutcome.ANSWERED, t[3], "alice")
    assert [e.kind for e in await calls.events("c1")] == [
        "arrived",
        "queued",
        "answered",
        "caller_hung_up",
        "ended",
    ]
    alice = await agents.get("alice")
    # Available before and after, but she rang and talked in between: available since the end.
    assert (alice.state, alice.state_since) == (AgentState.AVAILABLE, t[5])


async def test_a_decided_outcome_stays_when_a_later_batch_brings_another(repos: Repos) -> None:
    steps, calls, _ = repos
    await steps.save_steps([StepWrite(record=call("c1", ended_at=T0, outcome=CallOutcome.ABANDONED))])

    await steps.save_steps([StepWrite(record=call("c1", ended_at=T0, outcome=CallOutcome.ANSWERED))])

    assert (await calls.get("c1")).outcome is CallOutcome.ABANDONED


async def test_a_batch_that_fails_stores_nothing_of_it(repos: Repos) -> None:
    steps, calls, agents = repos
    batch = [
        StepWrite(record=call("c1"), states=(state("alice", AgentState.PAUSED, AgentState.AVAILABLE, T0),)),
        StepWrite(entries=(entry("nobody", "agent_ringing", T0),)),  # no such call
    ]

    with pytest.raises(NotFoundError):
        await steps.save_steps(batch)

    with pytest.raises(NotFoundError):
        await calls.get("c1")
    assert (await agents.get("alice")).state is AgentState.AVAILABLE


async def test_states_of_agents_no_longer_stored_are_skipped_and_named(repos: Repos) -> None:
    steps, calls, agents = repos
    batch = [
        StepWrite(
            record=call("c1"),
            states=(
                state("ghost", AgentState.RINGING, AgentState.AVAILABLE, T0),
                state("alice", AgentState.RINGING, AgentState.AVAILABLE, T0),
            ),
        )
    ]

    assert await steps.save_steps(batch) == frozenset({"ghost"})

    assert (await agents.get("alice")).state is AgentState.RINGING
    assert (await calls.get("c1")).id == "c1"


async def test_closing_missed_calls_sees_the_steps_before_it_in_the_batch_and_not_those_after(
    repos: Repos,
) -> None:
    steps, calls, _ = repos
    await steps.save_steps(
        [StepWrite(record=call("old", ended_at=T0, outcome=CallOutcome.ABANDONED, wait_s=30.0))]
    )
    reached = T0 + timedelta(minutes=10)
    batch = [
        # Missed before the caller was reached, decided in this same batch: closed.
        StepWrite(
            record=call("m1", at=T0 + timedelta(minutes=1), ended_at=reached, outcome=CallOutcome.ABANDONED)
        ),
        StepWrite(record=call("live", at=T0 + timedelta(minutes=2))),
        StepWrite(close_missed=(CALLER, reached)),
        # Decided after the closing (the caller's other line was still waiting): stays open.
        StepWrite(
            record=call("live", at=T0 + timedelta(minutes=2), ended_at=reached, outcome=CallOutcome.ABANDONED)
        ),
    ]

    await steps.save_steps(batch)

    assert (await calls.get("old")).closed_at == reached
    assert (await calls.get("m1")).closed_at == reached
    live = await calls.get("live")
    assert (live.outcome, live.closed_at) == (CallOutcome.ABANDONED, None)


async def test_two_closings_of_one_caller_in_a_batch_each_close_what_was_missed_before_them(
    repos: Repos,
) -> None:
    steps, calls, _ = repos
    await steps.save_steps([StepWrite(record=call("old", ended_at=T0, outcome=CallOutcome.ABANDONED))])
    first, second = T0 + timedelta(minutes=10), T0 + timedelta(minutes=20)
    batch = [
        StepWrite(close_missed=(CALLER, first)),
        # Missed, decided after the first closing: only the second one closes it.
        StepWrite(
            record=call("m2", at=T0 + timedelta(minutes=1), ended_at=first, outcome=CallOutcome.ABANDONED)
        ),
        StepWrite(close_missed=(CALLER, second)),
    ]

    await steps.save_steps(batch)

    assert (await calls.get("old")).closed_at == first
    assert (await calls.get("m2")).closed_at == second


async def test_a_step_with_a_naive_time_is_refused_and_nothing_of_its_batch_is_stored(repos: Repos) -> None:
    steps, calls, agents = repos
    naive = datetime(2026, 11, 23, 14, 0)
    batch = [
        StepWrite(record=call("c1"), states=(state("alice", AgentState.PAUSED, AgentState.AVAILABLE, T0),)),
        StepWrite(entries=(entry("c1", "queued", naive),)),
    ]

    with pytest.raises(ValidationError, match="time zone"):
        await steps.save_steps(batch)

    with pytest.raises(NotFoundError):
        await calls.get("c1")
    assert (await agents.get("alice")).state is AgentState.AVAILABLE
