"""Kept places among live callers: a free agent is kept back for a keep-my-place callback at the head
of the line, never given to a later caller, and never taken from an earlier one (issues #6 and #7).
Also: an agent held for a callback gets back the state they chose meanwhile."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from callcenter.callbacks.line import CallbackLine, KeptPlace
from callcenter.model.records import AgentRecord, QueueRecord
from callcenter.model.vocabulary import AgentState
from tests.service.queue.conftest import Harness, MakeHarness, agent

if TYPE_CHECKING:
    from tests.conftest import FakeClock

TWO_QUEUES = (QueueRecord(name="sales", max_wait_s=300), QueueRecord(name="support", max_wait_s=300))


def _line(clock: FakeClock, *places: KeptPlace) -> tuple[CallbackLine, list[tuple[str, str]]]:
    line = CallbackLine(ttl_s=60)
    reserved: list[tuple[str, str]] = []
    line.listen(lambda queue, agent_id: reserved.append((queue, agent_id)))
    line.replace(places, now=clock.now())
    return line, reserved


async def _paused(make_harness: MakeHarness, *agents: AgentRecord, **kw: Any) -> Harness:
    """Agents logged in (so callers may queue) and paused (so nobody is offered yet)."""
    h = await make_harness(agents=list(agents), logged_in=[a.id for a in agents], **kw)
    for record in agents:
        await h.service.pause(record.id, actor="test")
    h.control.clear()
    return h


def _kept(clock: FakeClock, seconds_ago: float, call_id: str, queue: str = "sales") -> KeptPlace:
    return KeptPlace(
        key=(clock.now() - timedelta(seconds=seconds_ago), call_id), callback_id=f"cb-{call_id}", queue=queue
    )


async def test_a_freed_agent_is_kept_back_for_an_earlier_kept_place_not_given_to_a_later_caller(
    make_harness: MakeHarness, clock: FakeClock
) -> None:
    h = await _paused(make_harness, agent("alice"), agent("bob"))
    line, reserved = _line(clock, _kept(clock, 30, "c0"))
    h.service.use_kept_places(line)
    await h.arrive("c2")  # queued after the kept place
    await h.service.unpause("alice", actor="test")
    assert h.rung() == [], "alice must not ring for the later caller"
    assert reserved and set(reserved) == {("sales", "alice")}, "the dispatcher is told at once"
    assert h.state("alice") is AgentState.AVAILABLE

    # The dispatcher takes her; the next free agent goes to the live caller.
    line.remove("cb-c0")
    assert await h.service.hold_for_callback("alice", why="callback cb-c0", actor="dispatcher")
    await h.service.unpause("bob", actor="test")
    assert h.rung() == ["PJSIP/bob"]


async def test_a_kept_place_never_takes_the_agent_of_an_earlier_live_caller(
    make_harness: MakeHarness, clock: FakeClock
) -> None:
    h = await _paused(make_harness, agent("alice"))
    await h.arrive("c1")
    clock.advance(5)
    line, reserved = _line(clock, _kept(clock, 1, "c9"))  # queued 4 s after c1
    h.service.use_kept_places(line)
    await h.service.unpause("alice", actor="test")
    assert h.rung() == ["PJSIP/alice"], "the earlier caller is served first"
    assert reserved == []


async def test_with_two_free_agents_the_kept_place_takes_one_and_the_later_caller_the_other(
    make_harness: MakeHarness, clock: FakeClock
) -> None:
    h = await _paused(make_harness, agent("alice"), agent("bob"))
    line, reserved = _line(clock, _kept(clock, 30, "c0"))
    h.service.use_kept_places(line)
    await h.arrive("c2")
    await h.service.unpause("alice", actor="test")
    await h.service.unpause("bob", actor="test")
    assert h.rung() == ["PJSIP/bob"], "alice (longest idle) is kept for the kept place, bob rings"
    assert ("sales", "alice") in reserved and ("sales", "bob") not in reserved


async def test_equal_enqueue_times_are_ordered_by_call_id(
    make_harness: MakeHarness, clock: FakeClock
) -> None:
    """Ties: the kept place stands where its call (by id) would have stood."""
    for kept_call, kept_first in (("c3", False), ("c1", True)):
        h = await _paused(make_harness, agent("alice"))
        await h.arrive("c2")
        enqueued_at = h.call("c2").queued_at
        assert enqueued_at is not None
        place = KeptPlace(key=(enqueued_at, kept_call), callback_id=f"cb-{kept_call}", queue="sales")
        line, reserved = _line(clock, place)
        h.service.use_kept_places(line)
        await h.service.unpause("alice", actor="test")
        if kept_first:
            assert h.rung() == [], f"{kept_call} before c2: alice is kept for the kept place"
            assert reserved == [("sales", "alice")]
        else:
            assert h.rung() == ["PJSIP/alice"], f"c2 before {kept_call}: the live caller rings"
            assert reserved == []


async def test_a_stale_view_of_kept_places_never_blocks_live_callers(
    make_harness: MakeHarness, clock: FakeClock
) -> None:
    """A dispatcher that stopped refreshing its view (crashed, lost its lease) keeps no agent back."""
    h = await _paused(make_harness, agent("alice"))
    line = CallbackLine(ttl_s=5)
    line.replace([_kept(clock, 30, "c0")], now=clock.now())
    h.service.use_kept_places(line)
    await h.arrive("c2")
    clock.advance(6)
    await h.service.unpause("alice", actor="test")
    assert h.rung() == ["PJSIP/alice"]


async def test_across_queues_the_oldest_wins_kept_place_or_live_caller(
    make_harness: MakeHarness, clock: FakeClock
) -> None:
    h = await _paused(make_harness, agent("alice", "sales", "support"), queues=TWO_QUEUES)
    await h.arrive("c1", queue="support")  # the oldest of all
    clock.advance(5)
    line, reserved = _line(clock, _kept(clock, 2, "c5", queue="sales"))
    h.service.use_kept_places(line)
    await h.arrive("c7", queue="sales")
    await h.service.unpause("alice", actor="test")
    assert h.rung() == ["PJSIP/alice"] and h.call("c1").agent_id is None
    assert h.service._board.call("c1").ringing_agent == "alice"  # noqa: SLF001 - who she rings for
    assert reserved == []


async def test_an_agent_own_pause_during_a_callback_is_kept_after_it(
    make_harness: MakeHarness, clock: FakeClock
) -> None:
    """Issue #7: the agent paused while on the callback: after it they stay paused, not available."""
    h = await make_harness(agents=[agent("alice")], logged_in=["alice"])
    assert await h.service.hold_for_callback("alice", why="callback cb-1", actor="dispatcher")
    assert h.state("alice") is AgentState.PAUSED
    status = await h.service.pause("alice", actor="alice", reason="lunch")
    assert status.state is AgentState.PAUSED
    await h.arrive("c1")
    await h.service.release_from_callback("alice", actor="dispatcher")
    assert h.state("alice") is AgentState.PAUSED
    assert h.rung() == [], "a paused agent is not offered the waiting caller"
    [last] = [e for e in h.bus.published if getattr(e, "agent_id", None) == "alice"][-1:]
    assert "lunch" in getattr(last, "reason", ""), "the wallboard shows their own reason"


async def test_without_a_choice_of_their_own_the_agent_is_available_after_a_callback(
    make_harness: MakeHarness, clock: FakeClock
) -> None:
    h = await make_harness(agents=[agent("alice")], logged_in=["alice"])
    assert await h.service.hold_for_callback("alice", why="callback cb-1", actor="dispatcher")
    await h.arrive("c1")
    assert h.rung() == []
    await h.service.release_from_callback("alice", actor="dispatcher")
    assert h.rung() == ["PJSIP/alice"]


async def test_a_pause_then_unpause_during_a_callback_and_a_log_out_are_kept(
    make_harness: MakeHarness, clock: FakeClock
) -> None:
    h = await make_harness(agents=[agent("alice"), agent("bob")], logged_in=["alice", "bob"])
    assert await h.service.hold_for_callback("alice", why="callback cb-1", actor="dispatcher")
    await h.service.pause("alice", actor="alice", reason="break")
    await h.service.unpause("alice", actor="alice")
    await h.service.release_from_callback("alice", actor="dispatcher")
    assert h.state("alice") is AgentState.AVAILABLE

    assert await h.service.hold_for_callback("bob", why="callback cb-2", actor="dispatcher")
    await h.service.logout("bob", actor="bob")
    assert h.state("bob") is AgentState.PAUSED, "still on the callback"
    await h.service.release_from_callback("bob", actor="dispatcher")
    assert h.state("bob") is AgentState.LOGGED_OUT


async def test_only_an_available_agent_is_held(make_harness: MakeHarness, clock: FakeClock) -> None:
    h = await make_harness(agents=[agent("alice")], logged_in=["alice"])
    await h.service.pause("alice", actor="alice", reason="meeting")
    assert not await h.service.hold_for_callback("alice", why="callback cb-1", actor="dispatcher")
    assert h.state("alice") is AgentState.PAUSED


async def test_an_agent_working_their_list_while_paused_stays_paused_after_the_callback(
    make_harness: MakeHarness, clock: FakeClock
) -> None:
    """The worklist's start: a paused agent may start a callback, and is still paused after it."""
    h = await make_harness(agents=[agent("alice")], logged_in=["alice"])
    await h.service.pause("alice", actor="alice", reason="working the list")
    assert await h.service.hold_for_callback("alice", why="callback cb-1", actor="dispatcher", paused_ok=True)
    assert not await h.service.hold_for_callback("alice", why="callback cb-2", actor="dispatcher")
    await h.arrive("c1")
    await h.service.release_from_callback("alice", actor="dispatcher")
    assert h.state("alice") is AgentState.PAUSED
    assert h.rung() == []

    assert await h.service.hold_for_callback("alice", why="callback cb-3", actor="dispatcher", paused_ok=True)
    await h.service.unpause("alice", actor="alice")  # back to the line once this one ends
    await h.service.release_from_callback("alice", actor="dispatcher")
    assert h.rung() == ["PJSIP/alice"]
