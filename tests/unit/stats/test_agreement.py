"""The live figures (folded from the queue core's events and callbacks that connect) equal the
historical ones (rebuilt from the records the same core stores and the stored callback changes),
whatever the calls (property test)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from callcenter.model.events import CallbackStateChanged
from callcenter.model.phone import parse_phone
from callcenter.model.records import AgentRecord, CallRecord, QueueRecord
from callcenter.model.vocabulary import ActorKind, AgentState, CallbackKind, CallbackState
from callcenter.queue.detection import (
    AgentHungUp,
    AgentOffered,
    CallAnswered,
    CallArrived,
    CallbackAccepted,
    CallerHungUp,
    CallQueued,
    ExitReason,
    QueueExit,
)
from callcenter.queue.state import AgentLoggedIn, AgentPolicy, Fact, QueueBoard
from callcenter.stats.definitions import COUNTED_NAMES, StatsConfig, figures, total
from callcenter.stats.intervals import NO_QUEUE, reached_from_event, rebuild
from callcenter.stats.live import LiveStats

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
CALLERS = ("+14155550100", "+14155550101", "+14155550102", "anonymous")
CONFIG = StatsConfig(
    closure_window_s=1800, conversion_rate=0.2, average_value=50.0, thresholds={"support": 30}
)

call_plans = st.tuples(
    st.floats(min_value=0, max_value=4 * 3600),  # arrival
    st.sampled_from(CALLERS),
    st.sampled_from(["sales", "support", None]),
    st.sampled_from(["answer", "hangup", "timeout", "callback"]),
    st.floats(min_value=0, max_value=120),  # wait
    st.floats(min_value=1, max_value=600),  # talk
)


def facts_of(index: int, plan: tuple[Any, ...]) -> list[tuple[datetime, Fact]]:
    start_s, caller, queue, fate, wait_s, talk_s = plan
    call = f"c{index}"
    t = T0 + timedelta(seconds=start_s)
    out: list[tuple[datetime, Fact]] = [
        (
            t,
            CallArrived(call_id=call, channel_id=call, linkedid=call, caller=parse_phone(caller), at=t),
        )
    ]
    if queue is None:
        out.append((t + timedelta(seconds=3), CallerHungUp(call_id=call, at=t + timedelta(seconds=3))))
        return out
    q = t + timedelta(seconds=1)
    left = q + timedelta(seconds=wait_s)
    out.append((q, CallQueued(call_id=call, at=q, queue=queue)))
    if fate == "answer":
        agent = "alice" if index % 2 else "bob"
        out.append((left, AgentOffered(call_id=call, at=left, agent_id=agent)))
        out.append((left, CallAnswered(call_id=call, at=left, agent_id=agent)))
        end = left + timedelta(seconds=talk_s)
        out.append((end, AgentHungUp(call_id=call, at=end, agent_id=agent)))
        out.append((end, CallerHungUp(call_id=call, at=end)))
    elif fate == "timeout":
        out.append((left, QueueExit(call_id=call, at=left, reason=ExitReason.TIMEOUT)))
        out.append((left + timedelta(seconds=2), CallerHungUp(call_id=call, at=left + timedelta(seconds=2))))
    elif fate == "callback":
        out.append((left, CallbackAccepted(call_id=call, at=left)))
        out.append((left + timedelta(seconds=4), CallerHungUp(call_id=call, at=left + timedelta(seconds=4))))
    else:
        out.append((left, CallerHungUp(call_id=call, at=left)))
    return out


callbacks_connected = st.tuples(
    st.floats(min_value=0, max_value=5 * 3600),  # when the callback connected
    st.sampled_from(CALLERS),
)


def connected(index: int, at_s: float, caller: str) -> CallbackStateChanged:
    """A callback reaching ``connected``, as the callbacks service publishes it."""
    at = T0 + timedelta(seconds=at_s)
    return CallbackStateChanged(
        event_id=f"callback:cb{index}:connected:1",
        occurred_at=at,
        callback_id=f"cb{index}",
        queue="sales",
        number=parse_phone(caller).display,
        kind=CallbackKind.KEEP_PLACE,
        state=CallbackState.CONNECTED,
        window_start=at - timedelta(minutes=10),
        window_end=at + timedelta(minutes=10),
        attempts=1,
        actor_kind=ActorKind.AGENT,
        actor="carol",
    )


@settings(max_examples=60, deadline=None)
@given(st.lists(call_plans, max_size=40), st.lists(callbacks_connected, max_size=6))
def test_live_and_rebuilt_history_agree(
    plans: list[tuple[Any, ...]], callbacks: list[tuple[float, str]]
) -> None:
    # Many agents, so concurrent answers never find the chosen agent busy.
    board = QueueBoard(
        queues=[QueueRecord(name="sales"), QueueRecord(name="support", short_abandon_s=8)],
        policy=AgentPolicy(max_misses=0, wrap_up_s=0),
    )
    for name in ("alice", "bob"):
        board.load_agent(
            AgentRecord(id=name, name=name, endpoint=f"PJSIP/{name}", queues=("sales", "support")), T0
        )
        board.apply(AgentLoggedIn(agent_id=name, at=T0))
    timeline = sorted(
        (item for i, plan in enumerate(plans) for item in facts_of(i, plan)), key=lambda x: x[0]
    )
    stats = LiveStats(config=CONFIG)
    records: dict[str, CallRecord] = {}
    reaches = [connected(i, at_s, caller) for i, (at_s, caller) in enumerate(callbacks)]
    steps: list[tuple[datetime, Fact | CallbackStateChanged]] = [*timeline]
    steps += [(event.occurred_at, event) for event in reaches]
    for _, item in sorted(steps, key=lambda x: x[0]):
        if isinstance(item, CallbackStateChanged):
            stats.apply(item)
            continue
        step = board.apply(item)
        for event in step.events:
            stats.apply(event)
        if step.record is not None:
            records[step.record.id] = step.record
    now = T0 + timedelta(hours=6)

    snap = stats.snapshot(now)
    stored_reaches = [r for r in (reached_from_event(e) for e in reaches) if r is not None]
    book = rebuild(records.values(), CONFIG, stored_reaches)

    def historical(queue: str | None) -> dict[str, object]:
        rows = [v for k, v in book.counts.items() if queue is None or k.queue == queue]
        return dict(figures(total(rows), CONFIG))

    assert snap.overall["calls_offered"] == sum(1 for r in records.values() if r.outcome is not None)
    assert {n: snap.overall[n] for n in COUNTED_NAMES} == historical(None)
    for queue, live_figures in snap.queues.items():
        assert {n: live_figures[n] for n in COUNTED_NAMES} == historical(queue)
    assert {k for k in book.counts} == {k for k in stats.book.counts}
    assert {k.queue for k in book.counts} - {NO_QUEUE} <= set(snap.queues)
    assert snap.overall["calls_waiting"] == sum(
        1 for r in records.values() if r.outcome is None and r.queued_at
    )
    assert {c: (m.closed_at, m.closed_by_agent, m.closed_by_call) for c, m in book.missed.items()} == {
        c: (m.closed_at, m.closed_by_agent, m.closed_by_call) for c, m in stats.book.missed.items()
    }
    assert all(a.state is not AgentState.LOGGED_OUT for a in board.agents())
