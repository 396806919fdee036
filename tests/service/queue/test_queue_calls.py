"""Our queue, call by call: what the service tells Asterisk, stores and publishes (issue 3 scenarios)."""

from __future__ import annotations

from datetime import date

from callcenter.errors import ChannelGoneError
from callcenter.model.events import AgentStateChanged, CallEnded
from callcenter.model.records import ExitAction, QueueRecord
from callcenter.model.vocabulary import AgentState, CallOutcome
from callcenter.queue.detection import NoAnswerReason
from callcenter.queue.ports import BridgeKind
from tests.fakes.telephony import Command
from tests.service.queue.conftest import CALLER, MakeHarness, agent

A = AgentState


async def test_given_an_available_agent_when_a_call_arrives_then_it_is_held_rung_bridged_and_answered(
    make_harness: MakeHarness,
) -> None:
    h = await make_harness(agents=[agent("alice")], logged_in=["alice"])

    await h.arrive()

    assert h.control.commands == [
        Command("answer", ("c1",)),
        Command("create_bridge", (BridgeKind.HOLDING, "queue-sales")),
        Command("add_to_bridge", ("bridge-1", "c1")),
        Command("start_hold_music", ("bridge-1",)),
        Command("ring_agent", ("PJSIP/alice", "c1", 15.0, CALLER)),
    ]
    leg = h.leg("alice")
    h.control.clear()
    h.clock.advance(4)

    await h.agent_answers("alice")

    assert h.control.commands == [
        Command("create_bridge", (BridgeKind.MIXING, "call-c1")),
        Command("add_to_bridge", ("bridge-2", leg)),
        Command("add_to_bridge", ("bridge-2", "c1")),
    ]
    h.control.clear()
    h.clock.advance(60)

    await h.caller_hangs_up()

    assert h.control.commands == [Command("hangup", (leg,)), Command("destroy_bridge", ("bridge-2",))]
    [ended] = h.ended()
    assert (ended.outcome, ended.agent_id, ended.wait_s, ended.talk_s) == (
        CallOutcome.ANSWERED,
        "alice",
        4.0,
        60.0,
    )
    call = h.call()
    assert (call.outcome, call.agent_id, call.position, call.wait_s) == (
        CallOutcome.ANSWERED,
        "alice",
        1,
        4.0,
    )
    assert await h.timeline() == ["arrived", "queued", "agent_offered", "answered", "caller_hung_up", "ended"]
    assert h.states("alice") == [A.RINGING, A.BUSY, A.WRAP_UP]

    await h.later(9)
    assert h.state("alice") is A.WRAP_UP
    await h.later(1)
    assert h.state("alice") is A.AVAILABLE
    assert h.states("alice")[-1] is A.AVAILABLE


async def test_the_agent_leg_joins_once_it_is_in_stasis_and_repeated_answers_bridge_once(
    make_harness: MakeHarness,
) -> None:
    """ChannelStateChange Up and Dial ANSWER precede the agent's StasisStart; addChannel fails until then."""
    h = await make_harness(agents=[agent("alice")], logged_in=["alice"])
    await h.arrive()
    leg = h.leg("alice")
    h.control.clear()
    # The ARI adapter maps 422 "Channel not in Stasis application" to ChannelGoneError.
    h.control.fail_next(ChannelGoneError("Channel not in Stasis application"), command="add_to_bridge")
    await h.agent_answers("alice")  # ChannelStateChange Up
    await h.agent_answers("alice")  # Dial ANSWER
    await h.agent_answers("alice")  # StasisStart

    assert h.control.commands == [
        Command("create_bridge", (BridgeKind.MIXING, "call-c1")),
        Command("add_to_bridge", ("bridge-2", leg)),
        Command("add_to_bridge", ("bridge-2", leg)),
        Command("add_to_bridge", ("bridge-2", "c1")),
    ]
    assert h.states("alice") == [A.RINGING, A.BUSY]


async def test_given_no_free_agent_when_the_caller_hangs_up_after_30s_then_abandoned(
    make_harness: MakeHarness,
) -> None:
    h = await make_harness(agents=[agent("alice")], logged_in=["alice"])
    await h.service.pause("alice", actor="test")
    await h.arrive()
    await h.later(30)

    await h.caller_hangs_up()

    [ended] = h.ended()
    assert (ended.outcome, ended.wait_s, ended.position) == (CallOutcome.ABANDONED, 30.0, 1)
    assert h.rung() == []


async def test_a_caller_hanging_up_after_2s_is_a_short_abandon(make_harness: MakeHarness) -> None:
    h = await make_harness(agents=[agent("alice")], logged_in=["alice"])
    await h.service.pause("alice", actor="test")
    await h.arrive()
    await h.later(2)

    await h.caller_hangs_up()

    assert h.outcome() is CallOutcome.SHORT_ABANDON


async def test_given_no_agent_logged_in_then_a_message_is_played_and_the_caller_hung_up(
    make_harness: MakeHarness,
) -> None:
    h = await make_harness(agents=[agent("alice")])

    await h.arrive()

    assert h.control.names() == ["answer", "play"]
    assert h.control.of("play") == [("c1", "tt-allbusy")]
    await h.later(5)
    assert "hangup" not in h.control.names()
    await h.later(1)
    assert h.control.of("hangup") == [("c1",)]
    await h.caller_hangs_up()
    assert h.outcome() is CallOutcome.UNANSWERED_NO_AGENTS
    assert await h.timeline() == ["arrived", "queue_exit", "caller_hung_up", "ended"]


async def test_a_full_queue_refuses_the_caller_with_its_no_agents_action(make_harness: MakeHarness) -> None:
    sales = QueueRecord(name="sales", max_callers=1, no_agents_action=ExitAction.CONTINUE)
    h = await make_harness(queues=[sales], agents=[agent("alice")], logged_in=["alice"])
    await h.service.pause("alice", actor="test")
    await h.arrive("c1")
    h.control.clear()

    await h.arrive("c2")

    assert h.control.commands == [Command("continue_in_dialplan", ("c2",))]
    await h.caller_hangs_up("c2")
    assert h.outcome("c2") is CallOutcome.UNANSWERED_FULL


async def test_join_empty_lets_callers_wait_with_nobody_logged_in(make_harness: MakeHarness) -> None:
    h = await make_harness(queues=[QueueRecord(name="sales", join_empty=True)], agents=[agent("alice")])

    await h.arrive()
    await h.service.login("alice", actor="test")

    assert h.rung() == ["PJSIP/alice"]


async def test_a_caller_past_max_wait_leaves_on_tick_with_the_timeout_action(
    make_harness: MakeHarness,
) -> None:
    sales = QueueRecord(name="sales", max_wait_s=60, ring_timeout_s=120, timeout_action=ExitAction.CONTINUE)
    h = await make_harness(queues=[sales], agents=[agent("alice")], logged_in=["alice"])
    await h.arrive()
    leg = h.leg("alice")
    await h.later(59)
    assert "continue_in_dialplan" not in h.control.names()

    await h.later(1)

    assert h.control.names()[-2:] == ["hangup", "continue_in_dialplan"]
    assert h.control.of("hangup") == [(leg,)]
    assert h.state("alice") is A.AVAILABLE
    await h.caller_hangs_up()
    assert h.outcome() is CallOutcome.UNANSWERED_TIMEOUT
    assert h.call().wait_s == 60.0


async def test_max_wait_with_the_hangup_action_plays_the_message_then_hangs_up(
    make_harness: MakeHarness,
) -> None:
    h = await make_harness(
        queues=[QueueRecord(name="sales", max_wait_s=30)], agents=[agent("alice")], logged_in=["alice"]
    )
    await h.service.pause("alice", actor="test")
    await h.arrive()
    await h.later(30)
    assert h.control.of("play") == [("c1", "tt-allbusy")]

    await h.later(6)

    assert h.control.of("hangup") == [("c1",)]


async def test_after_hours_the_caller_gets_the_after_hours_action(make_harness: MakeHarness) -> None:
    # The fake clock starts on Monday 2026-11-23 14:00 UTC, 15:00 in Paris.
    closed = QueueRecord(
        name="sales",
        time_zone="Europe/Paris",
        business_hours={"mon": ("08:00-12:00",)},
        after_hours_action=ExitAction.CONTINUE,
    )
    h = await make_harness(queues=[closed], agents=[agent("alice")], logged_in=["alice"])

    await h.arrive()

    assert h.control.commands == [Command("continue_in_dialplan", ("c1",))]
    await h.caller_hangs_up()
    assert h.outcome() is CallOutcome.AFTER_HOURS


async def test_a_holiday_is_after_hours_and_the_default_action_plays_the_closed_message(
    make_harness: MakeHarness,
) -> None:
    holiday = QueueRecord(name="sales", holidays=(date(2026, 11, 23),))
    h = await make_harness(queues=[holiday], agents=[agent("alice")], logged_in=["alice"])

    await h.arrive()

    assert h.control.names() == ["answer", "play"]
    assert h.control.of("play") == [("c1", "im-sorry", "pls-try-call-later")]
    await h.caller_hangs_up()
    assert h.outcome() is CallOutcome.AFTER_HOURS


async def test_an_unknown_queue_hands_the_caller_back_to_the_dialplan_as_failed(
    make_harness: MakeHarness,
) -> None:
    h = await make_harness(agents=[agent("alice")], logged_in=["alice"])

    await h.arrive(queue="nosuchqueue")

    assert h.control.commands == [Command("continue_in_dialplan", ("c1",))]
    await h.caller_hangs_up()
    assert h.outcome() is CallOutcome.FAILED
    events = await h.store.calls.events("c1")
    assert events[1].kind == "failed" and "unknown_queue" in str(events[1].detail["reason"])


async def test_a_caller_hanging_up_while_we_answer_never_reached_the_queue(make_harness: MakeHarness) -> None:
    h = await make_harness(agents=[agent("alice")], logged_in=["alice"])
    h.control.gone.add("c1")

    await h.arrive()
    await h.caller_hangs_up()

    assert h.control.names() == ["answer"]
    assert h.outcome() is CallOutcome.IVR_HANGUP


async def test_an_agent_who_does_not_answer_is_skipped_and_another_answers(make_harness: MakeHarness) -> None:
    h = await make_harness(agents=[agent("alice"), agent("bob")], logged_in=["alice", "bob"])
    await h.arrive()
    assert h.rung() == ["PJSIP/alice"]
    await h.later(15)

    await h.agent_does_not_answer("alice")

    assert h.rung() == ["PJSIP/alice", "PJSIP/bob"]
    await h.later(5)
    await h.agent_answers("bob")
    await h.later(40)
    await h.caller_hangs_up()
    [ended] = h.ended()
    assert (ended.outcome, ended.agent_id, ended.wait_s) == (CallOutcome.ANSWERED, "bob", 20.0)
    assert h.states("alice") == [A.RINGING, A.AVAILABLE]
    assert await h.timeline() == [
        "arrived",
        "queued",
        "agent_offered",
        "agent_no_answer",
        "agent_offered",
        "answered",
        "caller_hung_up",
        "ended",
    ]


async def test_a_lone_agent_who_does_not_answer_is_rung_again_after_the_retry_delay(
    make_harness: MakeHarness,
) -> None:
    h = await make_harness(agents=[agent("alice")], logged_in=["alice"])
    await h.arrive()
    await h.agent_does_not_answer("alice")
    assert h.rung() == ["PJSIP/alice"]

    await h.later(4)
    assert h.rung() == ["PJSIP/alice"]
    await h.later(1)
    assert h.rung() == ["PJSIP/alice", "PJSIP/alice"]


async def test_an_agent_missing_n_calls_in_a_row_is_paused(make_harness: MakeHarness) -> None:
    sales = QueueRecord(name="sales", max_misses_before_pause=2)
    h = await make_harness(queues=[sales], agents=[agent("alice")], logged_in=["alice"])
    await h.arrive()
    await h.agent_does_not_answer("alice")
    await h.later(5)

    await h.agent_does_not_answer("alice")

    assert h.state("alice") is A.PAUSED
    assert h.states("alice")[-1] is A.PAUSED
    [paused] = [e for e in h.bus.published if isinstance(e, AgentStateChanged) and e.state is A.PAUSED]
    assert "missed 2 calls" in paused.reason
    await h.later(10)
    assert h.rung() == ["PJSIP/alice", "PJSIP/alice"]


async def test_a_busy_agent_or_a_cancelled_ring_is_not_a_miss(make_harness: MakeHarness) -> None:
    sales = QueueRecord(name="sales", max_misses_before_pause=1)
    h = await make_harness(queues=[sales], agents=[agent("alice")], logged_in=["alice"])
    await h.arrive()

    await h.agent_does_not_answer("alice", reason=NoAnswerReason.CANCELLED)

    assert A.PAUSED not in h.states("alice")
    assert h.rung() == ["PJSIP/alice", "PJSIP/alice"], "a cancelled ring is offered again at once"


async def test_a_caller_hanging_up_while_the_agent_rings_is_abandoned_and_the_leg_hung_up(
    make_harness: MakeHarness,
) -> None:
    h = await make_harness(agents=[agent("alice")], logged_in=["alice"])
    await h.arrive()
    leg = h.leg("alice")
    await h.later(12)
    h.control.clear()

    await h.caller_hangs_up()

    assert h.control.commands == [Command("hangup", (leg,))]
    [ended] = h.ended()
    assert (ended.outcome, ended.wait_s, ended.agent_id) == (CallOutcome.ABANDONED, 12.0, None)
    assert h.state("alice") is A.AVAILABLE
    # What Asterisk then reports for the leg (Dial NOANSWER, ChannelDestroyed) changes nothing.
    await h.agent_does_not_answer("alice", reason=NoAnswerReason.NO_ANSWER)
    assert h.state("alice") is A.AVAILABLE
    assert len(h.ended()) == 1


async def test_the_agent_hanging_up_first_hangs_up_the_caller(make_harness: MakeHarness) -> None:
    h = await make_harness(agents=[agent("alice")], logged_in=["alice"])
    await h.arrive()
    await h.agent_answers("alice")
    await h.later(30)
    h.control.clear()

    await h.agent_hangs_up("alice")

    assert h.control.commands == [Command("hangup", ("c1",))]
    assert h.state("alice") is A.WRAP_UP
    await h.caller_hangs_up()
    [ended] = h.ended()
    assert (ended.outcome, ended.talk_s) == (CallOutcome.ANSWERED, 30.0)
    assert h.control.names()[-1] == "destroy_bridge"


async def test_wrap_up_of_zero_makes_the_agent_available_at_once_for_the_next_caller(
    make_harness: MakeHarness,
) -> None:
    sales = QueueRecord(name="sales", wrap_up_s=0)
    h = await make_harness(queues=[sales], agents=[agent("alice")], logged_in=["alice"])
    await h.arrive("c1")
    await h.agent_answers("alice", "c1")
    await h.arrive("c2")
    assert h.rung() == ["PJSIP/alice"]

    await h.caller_hangs_up("c1")

    assert h.rung() == ["PJSIP/alice", "PJSIP/alice"]
    assert h.states("alice")[-3:] == [A.WRAP_UP, A.AVAILABLE, A.RINGING]


async def test_callers_are_served_first_come_first_served_by_the_longest_idle_agent(
    make_harness: MakeHarness,
) -> None:
    h = await make_harness(agents=[agent("alice"), agent("bob")], logged_in=["bob", "alice"])
    await h.service.pause("alice", actor="test")
    await h.service.pause("bob", actor="test")
    await h.arrive("c1")
    h.clock.advance(1)
    await h.arrive("c2")

    await h.service.unpause("alice", actor="test")
    await h.service.unpause("bob", actor="test")

    assert [args[:2] for args in h.control.of("ring_agent")] == [("PJSIP/alice", "c1"), ("PJSIP/bob", "c2")]


async def test_duplicate_and_late_facts_never_decide_twice(make_harness: MakeHarness) -> None:
    h = await make_harness(agents=[agent("alice")], logged_in=["alice"])
    await h.arrive()
    await h.arrive()
    await h.agent_answers("alice")
    await h.agent_answers("alice")
    await h.caller_hangs_up()
    await h.caller_hangs_up()
    await h.agent_hangs_up("alice")
    await h.agent_does_not_answer("alice")

    assert h.control.names().count("answer") == 1
    assert h.control.names().count("ring_agent") == 1
    assert h.control.names().count("create_bridge") == 2
    assert len(h.ended()) == 1 and h.outcome() is CallOutcome.ANSWERED
    assert h.states("alice") == [A.RINGING, A.BUSY, A.WRAP_UP]


async def test_an_answer_arriving_after_the_caller_left_ends_the_agent_leg(make_harness: MakeHarness) -> None:
    h = await make_harness(agents=[agent("alice")], logged_in=["alice"])
    await h.arrive()
    leg = h.leg("alice")
    await h.caller_hangs_up()
    h.control.gone.discard(leg)
    h.control.clear()

    await h.agent_answers("alice")

    assert h.control.of("hangup") == [(leg,)]
    assert h.outcome() is CallOutcome.SHORT_ABANDON


async def test_a_missed_call_is_closed_when_a_later_call_from_the_number_is_answered(
    make_harness: MakeHarness,
) -> None:
    h = await make_harness(agents=[agent("alice")], logged_in=["alice"])
    await h.service.pause("alice", actor="test")
    await h.arrive("c1")
    await h.later(40)
    await h.caller_hangs_up("c1")
    assert h.call("c1").closed_at is None
    await h.service.unpause("alice", actor="test")
    await h.arrive("c2", caller="+1 415 555 0100")
    await h.later(3)

    await h.agent_answers("alice", "c2")

    assert h.call("c1").closed_at == h.clock.now()
    assert h.call("c1").outcome is CallOutcome.ABANDONED
    assert h.call("c2").closed_at is None


async def test_a_call_ended_event_is_published_after_its_record_is_stored(make_harness: MakeHarness) -> None:
    h = await make_harness(agents=[agent("alice")], logged_in=["alice"])
    await h.arrive()
    seen: list[CallOutcome | None] = []
    publish = h.bus.publish

    async def checking_publish(event: object) -> str:
        if isinstance(event, CallEnded):
            seen.append(h.store.calls.calls[event.call_id].outcome)
        return await publish(event)  # type: ignore[arg-type]

    h.bus.publish = checking_publish  # type: ignore[method-assign]
    await h.caller_hangs_up()

    assert seen == [CallOutcome.SHORT_ABANDON]
