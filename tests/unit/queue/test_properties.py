"""Whatever order, repetition or nonsense facts come in, a call is decided at most once and stays so."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callcenter.model.events import AgentStateChanged, CallEnded
from callcenter.model.phone import parse_phone
from callcenter.model.records import AgentRecord, QueueRecord
from callcenter.model.vocabulary import AgentState, CallOutcome
from callcenter.queue.detection import (
    WAITING_STAGES,
    AgentHungUp,
    AgentNoAnswer,
    AgentOffered,
    AgentRinging,
    CallAnswered,
    CallArrived,
    CallbackAccepted,
    CallerHungUp,
    CallFailed,
    CallQueued,
    CallSentToVoicemail,
    ExitReason,
    MessagePlayed,
    NoAnswerReason,
    QueueExit,
    Reconciled,
    Stage,
    VoicemailNotRecorded,
    VoicemailRecorded,
)
from callcenter.queue.state import (
    AgentLoggedIn,
    AgentLoggedOut,
    AgentPaused,
    AgentPolicy,
    AgentUnpaused,
    AgentWrapUpEnded,
    Fact,
    QueueBoard,
)

# Simulations and many-example properties are CPU-bound: allow for a loaded machine.
pytestmark = pytest.mark.timeout(120)

T0 = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
CALLS = ("c1", "c2")
AGENTS = ("alice", "bob", "zoe")  # zoe is not a known agent

times = st.floats(min_value=0, max_value=300, allow_nan=False).map(lambda s: T0 + timedelta(seconds=s))
calls = st.sampled_from(CALLS)
agents = st.sampled_from(AGENTS)


def _arrived(call: str, at: datetime) -> CallArrived:
    return CallArrived(
        call_id=call,
        channel_id=f"ch-{call}",
        linkedid=f"ch-{call}",
        caller=parse_phone("+14155550100"),
        at=at,
    )


call_facts: st.SearchStrategy[Fact] = st.one_of(
    st.builds(_arrived, calls, times),
    st.builds(CallQueued, call_id=calls, at=times, queue=st.sampled_from(["sales", "support"])),
    st.builds(AgentOffered, call_id=calls, at=times, agent_id=agents),
    st.builds(AgentRinging, call_id=calls, at=times, agent_id=agents),
    st.builds(
        AgentNoAnswer, call_id=calls, at=times, agent_id=agents, reason=st.sampled_from(NoAnswerReason)
    ),
    st.builds(CallAnswered, call_id=calls, at=times, agent_id=agents),
    st.builds(AgentHungUp, call_id=calls, at=times, agent_id=agents),
    st.builds(CallSentToVoicemail, call_id=calls, at=times),
    st.builds(VoicemailRecorded, call_id=calls, at=times),
    st.builds(VoicemailNotRecorded, call_id=calls, at=times),
    st.builds(CallbackAccepted, call_id=calls, at=times),
    st.builds(QueueExit, call_id=calls, at=times, reason=st.sampled_from(ExitReason)),
    st.builds(CallFailed, call_id=calls, at=times, reason=st.just("boom")),
    st.builds(CallerHungUp, call_id=calls, at=times),
    st.builds(Reconciled, call_id=calls, at=times),
    st.builds(MessagePlayed, call_id=calls, at=times, failed=st.booleans()),
)
agent_facts: st.SearchStrategy[Fact] = st.one_of(
    st.builds(AgentLoggedIn, agent_id=agents, at=times),
    st.builds(AgentLoggedOut, agent_id=agents, at=times),
    st.builds(AgentPaused, agent_id=agents, at=times),
    st.builds(AgentUnpaused, agent_id=agents, at=times),
    st.builds(AgentWrapUpEnded, agent_id=agents, at=times),
)


@st.composite
def scripts(draw: Any) -> list[Fact]:
    """Mostly plausible call flows (arrival first), then any facts in any order and repeated."""
    script: list[Fact] = []
    for call in CALLS:
        if draw(st.booleans()):
            script.append(_arrived(call, T0))
    script += draw(st.lists(st.one_of(call_facts, call_facts, agent_facts), max_size=40))
    return script


def new_board(max_misses: int = 2, wrap_up_s: float = 10.0) -> QueueBoard:
    board = QueueBoard(
        queues=[QueueRecord(name="sales", short_abandon_s=5), QueueRecord(name="support", short_abandon_s=0)],
        policy=AgentPolicy(max_misses=max_misses, wrap_up_s=wrap_up_s),
    )
    for name in ("alice", "bob"):
        record = AgentRecord(
            id=name, name=name, endpoint="SIP/x", state=AgentState.AVAILABLE, queues=("sales", "support")
        )
        board.load_agent(record, T0)
    return board


def check_invariants(board: QueueBoard) -> None:
    live = {t.call_id: t for t in board.live_calls()}
    for agent in board.agents():
        if agent.state in (AgentState.RINGING, AgentState.BUSY):
            assert agent.call_id in live, agent
            track = live[agent.call_id]
            if agent.state is AgentState.RINGING:
                assert (track.stage, track.ringing_agent) == (Stage.RINGING, agent.agent_id), (agent, track)
            else:
                assert (track.stage, track.agent_id) == (Stage.ANSWERED, agent.agent_id), (agent, track)
        else:
            assert agent.call_id is None, agent
        if agent.pending is not None:
            assert agent.state in (AgentState.RINGING, AgentState.BUSY, AgentState.WRAP_UP), agent
    for queue in ("sales", "support"):
        waiting = board.waiting(queue, T0 + timedelta(seconds=400))
        assert [w.position for w in waiting] == list(range(1, len(waiting) + 1))
        assert all(
            live[w.call_id].stage in WAITING_STAGES and live[w.call_id].queue == queue for w in waiting
        )
        assert all(w.wait_s >= 0 for w in waiting)
    listed = {w.call_id for q in ("sales", "support") for w in board.waiting(q, T0)}
    assert listed == {c for c, t in live.items() if t.is_waiting}


@settings(max_examples=400, deadline=None)
@given(scripts())
def test_at_most_one_outcome_per_call_and_it_never_changes(script: list[Fact]) -> None:
    board = new_board()
    decided: dict[str, CallOutcome] = {}
    for fact in script:
        step = board.apply(fact)
        for event in step.events:
            if isinstance(event, CallEnded):
                assert event.call_id not in decided, f"second outcome for {event.call_id}"
                decided[event.call_id] = event.outcome
                assert event.wait_s >= 0 and event.talk_s >= 0
                assert event.position is None or event.position >= 1
        if step.record is not None:
            record = step.record
            assert record.id not in decided or record.outcome is decided[record.id], "outcome changed"
            assert record.wait_s is None or record.wait_s >= 0
            assert record.talk_s is None or record.talk_s >= 0
        if step.ignored is not None:
            assert step.events == () and step.record is None
        for call_id, outcome in decided.items():
            track = board.call(call_id)
            assert track is not None and track.outcome is outcome
        check_invariants(board)
        board.expire_wrap_ups(T0 + timedelta(seconds=150))
        check_invariants(board)


@settings(max_examples=300, deadline=None)
@given(scripts())
def test_every_fact_delivered_twice_gives_the_same_result_as_once(script: list[Fact]) -> None:
    once, twice = new_board(), new_board()
    once_events = [e for fact in script for e in once.apply(fact).events]
    twice_events = [e for fact in script for e in (twice.apply(fact).events + twice.apply(fact).events)]

    assert once_events == twice_events
    assert once.agents() == twice.agents()
    assert once.live_calls() == twice.live_calls()


@settings(max_examples=200, deadline=None)
@given(scripts())
def test_agent_state_changes_chain_and_never_repeat_a_state(script: list[Fact]) -> None:
    board = new_board(max_misses=1, wrap_up_s=0)
    last = {a.agent_id: a.state for a in board.agents()}
    for fact in script:
        for event in board.apply(fact).events:
            if isinstance(event, AgentStateChanged):
                assert event.previous is last[event.agent_id], event
                assert event.state is not event.previous, event
                last[event.agent_id] = event.state
    assert {a.agent_id: a.state for a in board.agents()} == last


@settings(max_examples=200, deadline=None)
@given(scripts(), st.lists(st.tuples(calls, times, st.booleans()), max_size=10))
def test_messages_played_disturb_nothing(script: list[Fact], played: list[tuple[str, Any, bool]]) -> None:
    plain, noisy = new_board(), new_board()
    extra = [MessagePlayed(call_id=c, at=at, failed=failed) for c, at, failed in played]
    plain_events = [e for fact in script for e in plain.apply(fact).events]
    noisy_events: list[object] = []
    for index, fact in enumerate(script):
        noisy_events += noisy.apply(fact).events
        for message in extra[index : index + 1]:
            step = noisy.apply(message)
            assert step.events == () and step.record is None and step.ignored is not None

    assert plain_events == noisy_events
    assert plain.agents() == noisy.agents()
    assert plain.live_calls() == noisy.live_calls()


@settings(max_examples=200, deadline=None)
@given(scripts(), st.sets(agents, max_size=2))
def test_the_agent_indexes_agree_with_a_scan_of_every_agent(script: list[Fact], exclude: set[str]) -> None:
    """pick_agent, logged_in, agents_in, members_in, the unrung line and positions read indexes kept
    on each change; a full scan must agree."""
    board = new_board()
    for fact in script:
        board.apply(fact)
        every = board.agents()
        for queue in ("sales", "support"):
            idle = [
                a
                for a in every
                if a.state is AgentState.AVAILABLE and queue in a.queues and a.agent_id not in exclude
            ]
            best = min(idle, key=lambda a: (a.since, a.agent_id)).agent_id if idle else None
            assert board.pick_agent(queue, exclude=exclude) == best
            logged = [a for a in every if queue in a.queues and a.state is not AgentState.LOGGED_OUT]
            assert board.logged_in(queue) == len(logged)
        for state in AgentState:
            assert board.agents_in(state) == tuple(a for a in every if a.state is state)
            for queue in ("sales", "support"):
                members = [a for a in every if queue in a.queues and a.state is state]
                assert board.members_in(queue, (state,)) == len(members)
        for queue in ("sales", "support"):
            line = board.waiting(queue, T0)
            unrung = [place[2] for place in board.waiting_unrung(queue)]
            assert unrung == [w.call_id for w in line if w.ringing_agent is None]
            assert [board.position(w.call_id) for w in line] == list(range(1, len(line) + 1))
