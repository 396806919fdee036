"""Our queue when things go wrong: races, Asterisk errors, a lost link, a restart, store and bus failures."""

from __future__ import annotations

import pytest

from callcenter.errors import (
    AsteriskUnavailableError,
    NotFoundError,
    RedisUnavailableError,
    StoreUnavailableError,
)
from callcenter.model.events import AgentStateChanged, CallEnded
from callcenter.model.records import CallRecord, QueueRecord
from callcenter.model.vocabulary import AgentState, CallOutcome
from callcenter.queue.detection import CallerHungUp, CallFailed, NoAnswerReason
from tests.fakes.store import InMemoryStore
from tests.fakes.telephony import Command
from tests.service.queue.conftest import MakeHarness, agent

A = AgentState


async def test_asterisk_failing_the_answer_hands_the_caller_back_and_the_call_fails(
    make_harness: MakeHarness,
) -> None:
    h = await make_harness(agents=[agent("alice")], logged_in=["alice"])
    h.control.fail_next(AsteriskUnavailableError("ARI answered 503"), command="answer")

    await h.arrive()

    assert h.control.commands == [Command("answer", ("c1",)), Command("continue_in_dialplan", ("c1",))]
    await h.caller_hangs_up()
    assert h.outcome() is CallOutcome.FAILED
    assert h.rung() == []
    assert h.state("alice") is A.AVAILABLE


async def test_asterisk_failing_the_holding_bridge_hands_the_caller_back(make_harness: MakeHarness) -> None:
    h = await make_harness(agents=[agent("alice")], logged_in=["alice"])
    h.control.fail_next(AsteriskUnavailableError("ARI answered 500"), command="create_bridge")

    await h.arrive()

    assert h.control.names() == ["answer", "create_bridge", "continue_in_dialplan"]
    await h.caller_hangs_up()
    assert h.outcome() is CallOutcome.FAILED


async def test_a_vanished_holding_bridge_is_made_again(make_harness: MakeHarness) -> None:
    h = await make_harness(agents=[agent("alice")], logged_in=["alice"])
    await h.service.pause("alice", actor="test")
    await h.arrive("c1")
    h.control.fail_next(NotFoundError("Bridge not found"), command="add_to_bridge")

    await h.arrive("c2")

    assert h.control.of("add_to_bridge")[-2:] == [("bridge-1", "c2"), ("bridge-2", "c2")]
    assert h.control.of("start_hold_music") == [("bridge-1",), ("bridge-2",)]


async def test_music_on_hold_that_fails_to_start_is_retried_with_the_next_caller(
    make_harness: MakeHarness,
) -> None:
    h = await make_harness(agents=[agent("alice")], logged_in=["alice"])
    await h.service.pause("alice", actor="test")
    h.control.fail_next(AsteriskUnavailableError("500"), command="start_hold_music")
    await h.arrive("c1")
    await h.arrive("c2")
    await h.arrive("c3")

    assert h.control.of("start_hold_music") == [("bridge-1",), ("bridge-1",)]


async def test_an_agent_endpoint_that_does_not_exist_is_skipped_and_counts_as_a_miss(
    make_harness: MakeHarness,
) -> None:
    sales = QueueRecord(name="sales", max_misses_before_pause=1)
    h = await make_harness(queues=[sales], agents=[agent("alice"), agent("bob")], logged_in=["alice", "bob"])
    h.control.unknown_endpoints.add("PJSIP/alice")

    await h.arrive()

    assert h.rung() == ["PJSIP/alice", "PJSIP/bob"]
    assert h.state("alice") is A.PAUSED
    assert h.state("bob") is A.RINGING


async def test_asterisk_down_while_ringing_keeps_the_caller_waiting_and_retries_on_tick(
    make_harness: MakeHarness,
) -> None:
    h = await make_harness(agents=[agent("alice"), agent("bob")], logged_in=["alice", "bob"])
    h.control.fail_next(AsteriskUnavailableError("connection refused"), command="ring_agent")

    await h.arrive()

    assert h.rung() == ["PJSIP/alice"], "no ring storm while Asterisk is down"
    assert h.state("alice") is A.AVAILABLE and h.states("alice") == [A.RINGING, A.AVAILABLE]
    await h.later(1)
    assert h.rung() == ["PJSIP/alice", "PJSIP/bob"]


async def test_the_caller_hanging_up_while_the_agent_is_being_rung_ends_the_new_leg(
    make_harness: MakeHarness,
) -> None:
    h = await make_harness(agents=[agent("alice")], logged_in=["alice"])

    async def caller_leaves() -> None:
        await h.caller_hangs_up()

    h.control.during("ring_agent", caller_leaves)
    await h.arrive()

    [leg] = [c for c, leg in h.service.agent_legs.items() if leg.agent_id == "alice"]
    # Hung up when the caller left, and again once the originate returned: the first may have
    # reached Asterisk before the channel existed.
    assert h.control.commands[-1] == Command("hangup", (leg,))
    assert set(h.control.of("hangup")) == {(leg,)}
    assert h.outcome() is CallOutcome.SHORT_ABANDON
    assert h.state("alice") is A.AVAILABLE


async def test_the_caller_hanging_up_while_we_bridge_with_the_agent_ends_cleanly(
    make_harness: MakeHarness,
) -> None:
    h = await make_harness(agents=[agent("alice")], logged_in=["alice"])
    await h.arrive()
    leg = h.leg("alice")
    h.control.gone.add("c1")

    await h.agent_answers("alice")
    await h.caller_hangs_up()

    assert h.control.of("add_to_bridge")[-2:] == [("bridge-2", leg), ("bridge-2", "c1")]
    assert h.control.names()[-3:] == ["hangup", "destroy_bridge", "destroy_bridge"]
    assert h.control.of("destroy_bridge") == [("bridge-2",), ("bridge-1",)], "mixing, then holding"
    assert h.outcome() is CallOutcome.ANSWERED


async def test_an_agent_leg_whose_end_was_never_reported_is_ended_by_tick(make_harness: MakeHarness) -> None:
    h = await make_harness(agents=[agent("alice")], logged_in=["alice"])
    await h.arrive()
    leg = h.leg("alice")

    await h.later(19)
    assert "hangup" not in h.control.names()
    await h.later(1)

    assert h.control.of("hangup") == [(leg,)]
    assert h.states("alice")[:2] == [A.RINGING, A.AVAILABLE]


async def test_after_a_reconnect_calls_that_ended_meanwhile_are_reconciled_once(
    make_harness: MakeHarness,
) -> None:
    h = await make_harness(agents=[agent("alice")], logged_in=["alice"])
    await h.service.pause("alice", actor="test")
    await h.arrive("waiting")
    await h.arrive("stays")
    await h.service.unpause("alice", actor="test")
    talking_leg = h.leg("alice", "waiting")
    await h.agent_answers("alice", "waiting")
    await h.later(20)
    # The link is down; meanwhile the answered call and its agent leg end.
    h.control.live -= {"waiting", talking_leg}

    await h.service.reconcile(frozenset(h.control.live))
    await h.service.flush()

    ended = {e.call_id: e for e in h.ended()}
    assert set(ended) == {"waiting"}
    assert (ended["waiting"].outcome, ended["waiting"].reconciled) == (CallOutcome.ANSWERED, True)
    assert h.call("waiting").reconciled is True
    assert h.state("alice") is A.WRAP_UP
    # The late events of the outage change nothing, and nothing is counted twice.
    await h.caller_hangs_up("waiting")
    await h.agent_hangs_up("alice", "waiting")
    assert len(h.ended()) == 1
    assert h.outcome("stays") is None
    await h.later(10)
    assert h.leg("alice", "stays")


async def test_reconcile_ends_a_waiting_caller_gone_and_ends_a_ringing_leg_gone(
    make_harness: MakeHarness,
) -> None:
    h = await make_harness(agents=[agent("alice")], logged_in=["alice"])
    await h.arrive("c1")
    leg = h.leg("alice", "c1")
    await h.later(40)
    h.control.live -= {leg}

    await h.service.reconcile(frozenset(h.control.live))
    await h.service.flush()

    assert h.outcome("c1") is None
    assert h.state("alice") is A.RINGING, "ringing leg gone, caller still there: offered again"
    assert h.leg("alice", "c1") != leg
    h.control.live.discard("c1")
    await h.service.reconcile(frozenset(h.control.live))
    await h.service.flush()
    [ended] = h.ended()
    assert (ended.outcome, ended.reconciled, ended.wait_s) == (CallOutcome.ABANDONED, True, 40.0)


async def test_after_an_asterisk_restart_the_next_caller_gets_a_new_holding_bridge(
    make_harness: MakeHarness,
) -> None:
    h = await make_harness(agents=[agent("alice")], logged_in=["alice"])
    await h.service.pause("alice", actor="test")
    await h.arrive("c1")
    h.control.live.clear()

    await h.service.reconcile(frozenset())
    await h.service.flush()
    await h.arrive("c2")

    assert h.control.of("destroy_bridge") == [("bridge-1",)]
    assert h.control.of("add_to_bridge")[-1] == ("bridge-2", "c2")
    assert h.outcome("c1") is CallOutcome.SHORT_ABANDON


async def test_a_restarted_service_takes_back_live_calls_and_the_resync_decides_them(
    make_harness: MakeHarness,
) -> None:
    h = await make_harness(agents=[agent("alice"), agent("bob")], logged_in=["alice", "bob"])
    await h.arrive("talking")
    await h.agent_answers("alice", "talking")
    await h.service.pause("bob", actor="test")
    await h.arrive("waiting")
    await h.later(30)

    again = await make_harness(store=h.store, queues=(), agents=())

    assert again.state("alice") is A.BUSY
    assert [w.call_id for w in (await again.service.live("sales")).view.waiting] == ["waiting"]
    await again.service.reconcile(frozenset({"waiting"}))
    await again.service.flush()
    [ended] = again.ended()
    assert (ended.call_id, ended.outcome, ended.reconciled) == ("talking", CallOutcome.ANSWERED, True)
    assert again.state("alice") is A.WRAP_UP
    assert again.outcome("waiting") is None


async def test_a_bus_failure_is_logged_and_the_record_still_stored(
    make_harness: MakeHarness, caplog: pytest.LogCaptureFixture
) -> None:
    h = await make_harness(agents=[agent("alice")], logged_in=["alice"])
    await h.arrive()
    h.bus.fail_next(RedisUnavailableError("redis down"))  # CallLeftQueue
    h.bus.fail_next(RedisUnavailableError("redis down"))  # the ringing agent's release
    h.bus.fail_next(RedisUnavailableError("redis down"))  # CallEnded

    await h.caller_hangs_up()

    assert h.outcome() is CallOutcome.SHORT_ABANDON
    assert "not published" in caplog.text
    assert h.ended() == []
    await h.arrive("c2")
    assert h.call("c2").queued_at is not None


async def test_a_store_failure_keeps_the_outcome_and_publishes_it_once_stored(
    make_harness: MakeHarness,
) -> None:
    h = await make_harness(agents=[agent("alice")], logged_in=["alice"])
    await h.arrive()
    upsert = h.store.calls.upsert
    failures = [StoreUnavailableError("database down")]

    async def flaky_upsert(call: CallRecord) -> None:
        if failures:
            raise failures.pop()
        await upsert(call)

    h.store.calls.upsert = flaky_upsert  # type: ignore[method-assign]
    await h.caller_hangs_up()
    assert h.outcome() is None and h.ended() == []

    await h.later(1)

    assert h.outcome() is CallOutcome.SHORT_ABANDON
    assert [e.call_id for e in h.ended()] == ["c1"]


async def test_an_unexpected_error_hands_a_waiting_caller_back_to_the_dialplan(
    make_harness: MakeHarness, caplog: pytest.LogCaptureFixture
) -> None:
    h = await make_harness(agents=[agent("alice")], logged_in=["alice"])
    h.control.fail_next(RuntimeError("bug"), command="ring_agent")

    await h.arrive()

    # Back to the dialplan, out of the holding bridge, which nobody else is in.
    assert h.control.names()[-2:] == ["continue_in_dialplan", "destroy_bridge"]
    assert "handling CallArrived of call c1 failed" in caplog.text
    await h.caller_hangs_up()
    assert h.outcome() is CallOutcome.FAILED


async def test_asterisk_shutting_down_under_a_call_fails_it(make_harness: MakeHarness) -> None:
    h = await make_harness(agents=[agent("alice")], logged_in=["alice"])
    await h.arrive()
    await h.agent_answers("alice")
    await h.later(5)

    await h.service.handle(CallFailed(call_id="c1", at=h.clock.now(), reason="asterisk_shutdown"))
    await h.service.flush()
    await h.service.handle(CallerHungUp(call_id="c1", at=h.clock.now()))
    await h.service.flush()

    assert h.outcome() is CallOutcome.ANSWERED, "a served caller stays answered"
    assert "failed" in await h.timeline()


async def test_unknown_calls_and_agent_channels_are_ignored(make_harness: MakeHarness) -> None:
    h = await make_harness(agents=[agent("alice")], logged_in=["alice"])

    await h.service.handle(CallerHungUp(call_id="agent-77", at=h.clock.now()))
    await h.service.flush()

    assert h.control.commands == [] and h.bus.published == []


async def test_agent_state_changes_are_published_in_the_order_they_happened(
    make_harness: MakeHarness,
) -> None:
    h = await make_harness(agents=[agent("alice")], logged_in=["alice"])
    await h.arrive()
    await h.agent_answers("alice")
    await h.caller_hangs_up()
    await h.later(10)

    changes = [e for e in h.bus.published if isinstance(e, AgentStateChanged)]
    assert [(e.previous, e.state) for e in changes] == [
        (A.AVAILABLE, A.RINGING),
        (A.RINGING, A.BUSY),
        (A.BUSY, A.WRAP_UP),
        (A.WRAP_UP, A.AVAILABLE),
    ]
    assert [type(e) for e in h.bus.published[-3:]] == [AgentStateChanged, CallEnded, AgentStateChanged]


def test_fakes_are_typed_by_the_ports() -> None:
    from callcenter.bus import EventBus
    from callcenter.queue.ports import CallControl, CallRepository
    from tests.fakes.bus import InMemoryEventBus
    from tests.fakes.telephony import RecordingCallControl

    control: CallControl = RecordingCallControl()
    bus: EventBus = InMemoryEventBus()
    calls: CallRepository = InMemoryStore.create().calls
    names = [type(x).__name__ for x in (control, bus, calls)]
    assert names == ["RecordingCallControl", "InMemoryEventBus", "InMemoryCallRepository"]


async def test_a_busy_report_overtaking_the_originate_answer_is_not_lost(make_harness: MakeHarness) -> None:
    """Asterisk's ``Dial BUSY`` for a leg can reach the link before ``POST /channels`` answers."""
    h = await make_harness(agents=[agent("alice"), agent("bob")], logged_in=["alice", "bob"])

    async def busy() -> None:
        await h.agent_does_not_answer("alice", reason=NoAnswerReason.BUSY)

    h.control.during("ring_agent", busy)
    await h.arrive()

    assert h.rung() == ["PJSIP/alice", "PJSIP/bob"]
    assert h.state("alice") is A.AVAILABLE and h.state("bob") is A.RINGING
