"""Agents after a callback and agents' requests from other processes (issue #7): wrap-up after a
callback they talked on; a log-in, pause or unpause that reaches a process not running the live queue
is applied by the one that does, where a hold for a callback keeps it for after the call."""

from __future__ import annotations

from typing import TYPE_CHECKING

from callcenter.model.records import QueueRecord
from callcenter.model.vocabulary import AgentState
from callcenter.queue.ports import AgentAction, AgentRequest
from callcenter.queue.service import QueueService
from callcenter.queue.state import AgentLive
from tests.service.queue.conftest import Harness, MakeHarness, agent

if TYPE_CHECKING:
    from tests.conftest import FakeClock

SALES = QueueRecord(name="sales", max_wait_s=300, wrap_up_s=5)


class ToQueueProcess:
    """``AgentRelay`` straight into the service of the process running the queue (``None``: nobody)."""

    def __init__(self, target: QueueService | None) -> None:
        self.target = target
        self.forwarded: list[AgentRequest] = []

    async def forward(self, request: AgentRequest) -> AgentLive | None:
        self.forwarded.append(request)
        return None if self.target is None else await self.target.serve_request(request)


def _live(h: Harness, agent_id: str) -> AgentState:
    live = h.service._board.agent(agent_id)  # noqa: SLF001 - what the queue offers calls from
    assert live is not None
    return live.state


async def test_after_a_callback_talked_on_the_agent_wraps_up_before_the_next_offer(
    make_harness: MakeHarness, clock: FakeClock
) -> None:
    h = await make_harness(queues=[SALES], agents=[agent("alice")], logged_in=["alice"])
    assert await h.service.hold_for_callback("alice", why="callback cb-1", actor="dispatcher")
    await h.arrive("c1")
    await h.service.release_from_callback("alice", actor="dispatcher", wrap_up_in="sales")
    assert h.state("alice") is AgentState.WRAP_UP
    await h.later(4)
    assert h.rung() == [], "not offered a call during the queue's wrap-up"
    await h.later(1)
    assert h.rung() == ["PJSIP/alice"]
    assert h.states("alice") == [
        AgentState.PAUSED,
        AgentState.WRAP_UP,
        AgentState.AVAILABLE,
        AgentState.RINGING,
    ]


async def test_a_pause_asked_for_during_the_callback_follows_its_wrap_up(
    make_harness: MakeHarness, clock: FakeClock
) -> None:
    h = await make_harness(queues=[SALES], agents=[agent("alice")], logged_in=["alice"])
    assert await h.service.hold_for_callback("alice", why="callback cb-1", actor="dispatcher")
    await h.service.pause("alice", actor="alice", reason="lunch")
    await h.service.release_from_callback("alice", actor="dispatcher", wrap_up_in="sales")
    assert h.state("alice") is AgentState.WRAP_UP
    await h.arrive("c1")
    await h.later(6)
    assert h.state("alice") is AgentState.PAUSED and h.rung() == []


async def test_a_queue_without_wrap_up_gives_the_agent_back_at_once(
    make_harness: MakeHarness, clock: FakeClock
) -> None:
    quick = QueueRecord(name="sales", max_wait_s=300, wrap_up_s=0)
    h = await make_harness(queues=[quick], agents=[agent("alice")], logged_in=["alice"])
    assert await h.service.hold_for_callback("alice", why="callback cb-1", actor="dispatcher")
    await h.arrive("c1")
    await h.service.release_from_callback("alice", actor="dispatcher", wrap_up_in="sales")
    assert h.rung() == ["PJSIP/alice"]


async def test_a_pause_sent_to_another_process_is_applied_by_the_queue_s_and_kept_during_a_callback(
    make_harness: MakeHarness, clock: FakeClock
) -> None:
    runs = await make_harness(queues=[SALES], agents=[agent("alice")], logged_in=["alice"])
    other = await make_harness(store=runs.store, queues=[SALES])
    relay = ToQueueProcess(runs.service)
    other.service.use_relay(relay, runs_queue=lambda: False)
    assert await runs.service.hold_for_callback("alice", why="callback cb-1", actor="dispatcher")

    status = await other.service.pause("alice", actor="alice", reason="coffee")
    assert status.state is AgentState.PAUSED
    assert [(r.action, r.reason) for r in relay.forwarded] == [(AgentAction.PAUSE, "coffee")]
    await runs.arrive("c1")
    await runs.service.release_from_callback("alice", actor="dispatcher")
    assert _live(runs, "alice") is AgentState.PAUSED and runs.rung() == [], "her pause, not available"

    assert _live(other, "alice") is AgentState.PAUSED, "read back the same in the other process"
    status = await other.service.unpause("alice", actor="alice")
    assert status.state is AgentState.RINGING, "answered as the queue's process has her"
    assert runs.rung() == ["PJSIP/alice"]


async def test_without_a_process_running_the_queue_a_request_is_applied_where_it_arrived(
    make_harness: MakeHarness, clock: FakeClock
) -> None:
    h = await make_harness(queues=[SALES], agents=[agent("alice")], logged_in=["alice"])
    relay = ToQueueProcess(None)
    h.service.use_relay(relay, runs_queue=lambda: False)
    status = await h.service.pause("alice", actor="alice", reason="meeting")
    assert status.state is AgentState.PAUSED and h.state("alice") is AgentState.PAUSED
    assert len(relay.forwarded) == 1


async def test_the_process_running_the_queue_applies_its_requests_itself(
    make_harness: MakeHarness, clock: FakeClock
) -> None:
    h = await make_harness(queues=[SALES], agents=[agent("alice")], logged_in=["alice"])
    relay = ToQueueProcess(None)
    h.service.use_relay(relay, runs_queue=lambda: True)
    await h.service.pause("alice", actor="alice", reason="meeting")
    assert relay.forwarded == [] and h.state("alice") is AgentState.PAUSED


async def test_a_state_stored_elsewhere_during_a_callback_waits_for_its_end(
    make_harness: MakeHarness, clock: FakeClock
) -> None:
    """An unpause applied by a process that could not hand it over is adopted on the refresh: never
    while the agent is on a callback (she would be offered calls mid-call), at its end."""
    runs = await make_harness(queues=[SALES], agents=[agent("alice")], logged_in=["alice"])
    assert await runs.service.hold_for_callback("alice", why="callback cb-1", actor="dispatcher")
    other = await make_harness(store=runs.store, queues=[SALES])  # sees her paused (held)
    clock.advance(1)
    await other.service.unpause("alice", actor="alice")
    assert runs.store.agents.agents["alice"].state is AgentState.AVAILABLE

    await runs.arrive("c1")
    await runs.service.refresh()
    assert _live(runs, "alice") is AgentState.PAUSED and runs.rung() == [], "still on the callback"
    await runs.service.release_from_callback("alice", actor="dispatcher")
    assert runs.rung() == ["PJSIP/alice"]


async def test_queues_given_in_another_process_offer_a_waiting_caller_to_the_agent_at_once(
    make_harness: MakeHarness, clock: FakeClock
) -> None:
    support = QueueRecord(name="support", max_wait_s=300, join_empty=True)  # nobody in it yet
    runs = await make_harness(queues=[SALES, support], agents=[agent("alice")], logged_in=["alice"])
    other = await make_harness(store=runs.store, queues=[SALES, support])
    relay = ToQueueProcess(runs.service)
    other.service.use_relay(relay, runs_queue=lambda: False)
    await runs.arrive("c1", queue="support")
    assert runs.rung() == [], "alice is not in support yet"

    status = await other.service.set_agent_queues("alice", ["sales", "support"], actor="supervisor")
    assert [(r.action, r.queues) for r in relay.forwarded] == [(AgentAction.SET_QUEUES, ("sales", "support"))]
    assert runs.rung() == ["PJSIP/alice"], "offered now, not at the queue process's next refresh"
    assert status.record.queues == ("sales", "support") and status.state is AgentState.RINGING
    assert runs.store.agents.agents["alice"].queues == ("sales", "support")
