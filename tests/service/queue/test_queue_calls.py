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
        # The caller moved out of the holding bridge, now empty: its music has stopped for good.
        Command("destroy_bridge", ("bridge-1",)),
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
        Command("destroy_bridge", ("bridge-1",)),
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
    """Real Asterisk: tt-allbusy lasts 8.97 s; a hang-up on a 6 s timer cut it off."""
    h = await make_harness(agents=[agent("alice")])

    await h.arrive()

    assert h.control.names() == ["answer", "play"]
    assert h.control.of("play") == [("c1", "tt-allbusy")]
    await h.later(8)
    assert "hangup" not in h.control.names(), "the message is still playing"
    h.clock.advance(0.97)

    await h.message_played()  # PlaybackFinished "done"

    assert h.control.of("hangup") == [("c1",)]
    await h.caller_hangs_up()
    assert h.outcome() is CallOutcome.UNANSWERED_NO_AGENTS
    assert await h.timeline() == ["arrived", "queue_exit", "hung_up_by_us", "ended"]
    assert await h.entry("hung_up_by_us") == {"reason": "exit_message_played"}
    assert await h.entry("ended") == {"outcome": "unanswered_no_agents", "wait_s": None}
    assert h.call().wait_s is None


async def test_a_message_that_fails_to_play_ends_the_wait_at_once(make_harness: MakeHarness) -> None:
    """A missing sound file: 201, then PlaybackStarted and PlaybackFinished "failed" in the same ms."""
    h = await make_harness(agents=[agent("alice")])
    await h.arrive()

    await h.message_played(failed=True)

    assert h.control.of("hangup") == [("c1",)]
    await h.caller_hangs_up()
    assert await h.entry("hung_up_by_us") == {"reason": "exit_message_failed"}


async def test_the_end_of_the_message_can_overtake_the_reply_to_play(make_harness: MakeHarness) -> None:
    """Events can reach the link before the REST answer that caused them (PlaybackFinished here)."""
    h = await make_harness(agents=[agent("alice")])

    async def finished_meanwhile() -> None:
        await h.message_played(failed=True)

    h.control.during("play", finished_meanwhile)
    await h.arrive()

    assert h.control.of("hangup") == [("c1",)]


async def test_a_lost_end_of_message_is_backed_up_by_a_timer(make_harness: MakeHarness) -> None:
    h = await make_harness(agents=[agent("alice")])
    await h.arrive()
    await h.later(29)
    assert "hangup" not in h.control.names()

    await h.later(1)

    assert h.control.of("hangup") == [("c1",)]
    await h.caller_hangs_up()
    assert await h.entry("hung_up_by_us") == {"reason": "exit_message_end_not_reported"}
    await h.message_played()  # arriving after all: nothing more happens
    assert h.control.of("hangup") == [("c1",)]


async def test_a_playback_ending_for_a_caller_without_an_exit_message_hangs_nobody_up(
    make_harness: MakeHarness,
) -> None:
    h = await make_harness(agents=[agent("alice")], logged_in=["alice"])
    await h.arrive()

    await h.message_played()

    assert "hangup" not in h.control.names()
    assert h.outcome() is None and h.rung() == ["PJSIP/alice"]


async def test_a_caller_hanging_up_mid_message_is_their_own_hang_up(make_harness: MakeHarness) -> None:
    h = await make_harness(agents=[agent("alice")])
    await h.arrive()
    await h.later(3)
    await h.caller_hangs_up()

    await h.message_played(failed=True)  # a hang-up mid-playback fails the playback

    assert "hangup" not in h.control.names()
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

    assert h.control.names()[-3:] == ["hangup", "continue_in_dialplan", "destroy_bridge"]
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
    await h.later(8)
    assert "hangup" not in h.control.names()

    await h.message_played()

    assert h.control.of("hangup") == [("c1",)]
    assert "destroy_bridge" not in h.control.names(), "the caller was still in the holding bridge"
    await h.caller_hangs_up()
    assert h.control.of("destroy_bridge") == [("bridge-1",)]


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
    assert h.control.of("play") == [("c1", "im-sorry", "please-try-call-later")]
    await h.later(3)
    await h.message_played()
    assert h.control.of("hangup") == [("c1",)]
    await h.caller_hangs_up()
    assert h.outcome() is CallOutcome.AFTER_HOURS
    assert await h.entry("ended") == {"outcome": "after_hours", "wait_s": None}


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

    assert h.control.commands == [Command("hangup", (leg,)), Command("destroy_bridge", ("bridge-1",))]
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
    # The supervisor reads who ended the call: the agent, then we hung the caller up.
    assert (await h.timeline())[-3:] == ["agent_hung_up", "hung_up_by_us", "ended"]
    assert await h.entry("hung_up_by_us") == {"reason": "agent_hung_up"}


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


# ---------------------------------------------------------------------------------------------
# Found on a real Asterisk 20.20.1 (chan_sip, SIPp callers and agents)
# ---------------------------------------------------------------------------------------------


async def test_a_caller_arriving_after_the_holding_bridge_emptied_gets_music_again(
    make_harness: MakeHarness,
) -> None:
    """Real Asterisk: the music-on-hold announcer is a lonely bridge channel. When the last caller
    left ("Announcer/ARI_MOH-00000000;2 left", "Stopped music on hold") the next caller, put in the
    same bridge without a new POST /moh, waited in silence."""
    h = await make_harness(agents=[agent("alice")], logged_in=["alice"])
    await h.service.pause("alice", actor="test")
    await h.arrive("c1")
    await h.caller_hangs_up("c1")
    assert h.control.of("destroy_bridge") == [("bridge-1",)], "empty: its music has stopped for good"
    h.control.clear()

    await h.arrive("c2")

    assert h.control.commands == [
        Command("answer", ("c2",)),
        Command("create_bridge", (BridgeKind.HOLDING, "queue-sales")),
        Command("add_to_bridge", ("bridge-2", "c2")),
        Command("start_hold_music", ("bridge-2",)),
    ]


async def test_callers_joining_an_occupied_holding_bridge_share_its_music(make_harness: MakeHarness) -> None:
    h = await make_harness(agents=[agent("alice")], logged_in=["alice"])
    await h.service.pause("alice", actor="test")
    await h.arrive("c1")
    await h.arrive("c2")
    await h.caller_hangs_up("c1")  # c2 is still in: the announcer stays, the music goes on
    await h.arrive("c3")

    assert h.control.of("create_bridge") == [(BridgeKind.HOLDING, "queue-sales")]
    assert h.control.of("start_hold_music") == [("bridge-1",)]
    assert h.control.of("add_to_bridge") == [("bridge-1", "c1"), ("bridge-1", "c2"), ("bridge-1", "c3")]
    assert "destroy_bridge" not in h.control.names()
    await h.service.unpause("alice", actor="test")
    await h.agent_answers("alice", "c2")
    await h.caller_hangs_up("c3")
    assert h.control.of("destroy_bridge") == [("bridge-1",)], "the last caller out"


async def test_the_agents_phone_ringing_is_on_the_timeline_once(make_harness: MakeHarness) -> None:
    """Real Asterisk: Dial RINGING and ChannelStateChange Ringing come for the agent leg (in either
    order), yet no agent_ringing entry reached the timeline."""
    h = await make_harness(agents=[agent("alice")], logged_in=["alice"])
    await h.arrive()
    await h.later(1)

    await h.agent_rings("alice")  # ChannelStateChange Ringing
    await h.agent_rings("alice")  # Dial RINGING
    await h.later(2)
    await h.agent_answers("alice")

    assert await h.timeline() == ["arrived", "queued", "agent_offered", "agent_ringing", "answered"]
    events = await h.store.calls.events("c1")
    ringing = next(e for e in events if e.kind == "agent_ringing")
    assert ringing.detail == {"agent_id": "alice"}
    assert (ringing.at - events[2].at).total_seconds() == 1.0
    assert h.states("alice") == [A.RINGING, A.BUSY], "the board counted the ring from the offer"


async def test_a_second_offer_rings_on_the_timeline_again(make_harness: MakeHarness) -> None:
    h = await make_harness(agents=[agent("alice")], logged_in=["alice"])
    await h.arrive()
    await h.agent_rings("alice")
    await h.agent_does_not_answer("alice")
    await h.later(5)

    await h.agent_rings("alice")

    assert (await h.timeline())[2:] == [
        "agent_offered",
        "agent_ringing",
        "agent_no_answer",
        "agent_offered",
        "agent_ringing",
    ]


async def test_a_call_that_never_queued_ends_with_no_wait_on_the_timeline_as_on_the_record(
    make_harness: MakeHarness,
) -> None:
    """The timeline's ``ended`` said ``wait_s: 0.0`` while the record said ``null``."""
    h = await make_harness(agents=[agent("alice")], logged_in=["alice"])
    await h.arrive(queue="nosuchqueue")
    await h.caller_hangs_up()

    assert h.call().wait_s is None
    assert await h.entry("ended") == {"outcome": "failed", "wait_s": None}
    assert [e.wait_s for e in h.ended()] == [0.0], "CallEnded keeps its number"
