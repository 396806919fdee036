"""Real Asterisk event streams become the queue facts that decide each call's one outcome."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from callcenter.ari.events import (
    AriEvent,
    ChannelStateChange,
    Dial,
    DialStatus,
    PlaybackFinished,
    StasisStart,
    parse_channel,
    parse_event,
)
from callcenter.ari.translate import (
    SHUTDOWN_FAILURE,
    reconcile_agent_legs,
    stasis_args,
    translate,
)
from callcenter.model.events import AgentStateChanged, CallEnded
from callcenter.model.records import AgentRecord, QueueRecord
from callcenter.model.vocabulary import AgentState, CallOutcome, EntryPoint
from callcenter.queue.detection import (
    AgentHungUp,
    AgentLeg,
    AgentNoAnswer,
    AgentOffered,
    AgentRinging,
    AnyCallFact,
    CallAnswered,
    CallArrived,
    CallerHungUp,
    CallFailed,
    CallQueued,
    IgnoreReason,
    MessagePlayed,
    NoAnswerReason,
)
from callcenter.queue.state import AgentPolicy, QueueBoard, Step

DATA = Path(__file__).parents[2] / "data" / "ari_events"
T0 = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)


def events(name: str) -> list[AriEvent]:
    return [parse_event(line) for line in (DATA / name).read_text().splitlines() if line.strip()]


def raw_event(name: str, event_type: str, index: int = 0) -> dict[str, Any]:
    found = [json.loads(line) for line in (DATA / name).read_text().splitlines() if f'"{event_type}"' in line]
    body = [b for b in found if b["type"] == event_type][index]
    assert isinstance(body, dict)
    return body


# ---------------------------------------------------------------------------------------------
# Replaying captured calls through translate and the board, as the queue service will
# ---------------------------------------------------------------------------------------------


@dataclass
class Replay:
    board: QueueBoard
    steps: list[tuple[AnyCallFact, Step]] = field(default_factory=list)

    @property
    def ended(self) -> list[CallEnded]:
        return [e for _, s in self.steps for e in s.events if isinstance(e, CallEnded)]

    @property
    def agent_states(self) -> list[AgentState]:
        return [e.state for _, s in self.steps for e in s.events if isinstance(e, AgentStateChanged)]


def replay(name: str) -> Replay:
    """Feed a capture to a board with one agent, alice, doing what the service does around it:
    queue each arriving call and offer it to alice when we originate (the ``Dial ""`` of our leg)."""
    board = QueueBoard(
        queues=[QueueRecord(name="sales", short_abandon_s=2)], policy=AgentPolicy(wrap_up_s=10)
    )
    board.load_agent(
        AgentRecord(
            id="alice", name="Alice", endpoint="SIP/sipp-uas", state=AgentState.AVAILABLE, queues=("sales",)
        ),
        T0,
    )
    run = Replay(board)
    legs: dict[str, AgentLeg] = {}

    def apply(fact: AnyCallFact) -> None:
        run.steps.append((fact, board.apply(fact)))

    for event in events(name):
        live = board.live_calls()
        if isinstance(event, Dial) and event.dialstatus is DialStatus.PENDING and live:
            legs[event.peer.id] = AgentLeg(call_id=live[0].call_id, agent_id="alice")
            apply(AgentOffered(call_id=live[0].call_id, agent_id="alice", at=event.timestamp))
        for fact in translate(event, legs):
            apply(fact)
            if isinstance(fact, CallArrived) and isinstance(event, StasisStart):
                apply(CallQueued(call_id=fact.call_id, queue="sales", at=event.timestamp))
    return run


@pytest.mark.parametrize(
    ("capture", "outcome", "wait_s", "talk_s"),
    [
        ("ari_abandon.jsonl", CallOutcome.ABANDONED, 2.507, 0.0),
        ("ari_preanswer_abandon.jsonl", CallOutcome.ABANDONED, None, 0.0),
        ("ari_agent_answer.jsonl", CallOutcome.ANSWERED, None, 5.996),
        ("ari_agent_hangs_up.jsonl", CallOutcome.ANSWERED, None, 3.004),
        ("ari_agent_noanswer.jsonl", CallOutcome.ABANDONED, None, 0.0),
        ("ari_agent_busy.jsonl", CallOutcome.SHORT_ABANDON, 1.012, 0.0),
        ("ari_agent_caller_abandon.jsonl", CallOutcome.ABANDONED, 2.505, 0.0),
        ("ari_agent_no_uas.jsonl", CallOutcome.ABANDONED, None, 0.0),
        ("ari_playback.jsonl", CallOutcome.ABANDONED, None, 0.0),
        ("ws_restart_run3_events.jsonl", CallOutcome.FAILED, None, 0.0),
    ],
)
def test_captured_call_gets_exactly_one_outcome(
    capture: str, outcome: CallOutcome, wait_s: float | None, talk_s: float
) -> None:
    run = replay(capture)

    (ended,) = run.ended
    assert ended.outcome is outcome
    assert ended.talk_s == pytest.approx(talk_s, abs=1e-6)
    if wait_s is not None:
        assert ended.wait_s == pytest.approx(wait_s, abs=1e-6)
    assert ended.wait_s >= 0
    assert ended.entry_point is EntryPoint.ARI
    assert not run.board.live_calls()


def test_captured_answer_moves_alice_ringing_busy_then_wrap_up() -> None:
    run = replay("ari_agent_answer.jsonl")

    assert run.agent_states == [AgentState.RINGING, AgentState.BUSY, AgentState.WRAP_UP]
    (ended,) = run.ended
    assert ended.agent_id == "alice"
    assert ended.position == 1


def test_captured_agent_hang_up_ends_the_talk_time_before_the_caller_leaves() -> None:
    run = replay("ari_agent_hangs_up.jsonl")

    wrap = [e for _, s in run.steps for e in s.events if isinstance(e, AgentStateChanged)][-1]
    (ended,) = run.ended
    assert wrap.state is AgentState.WRAP_UP
    assert wrap.occurred_at < ended.occurred_at


def test_captured_ring_timeout_counts_one_miss_and_frees_alice() -> None:
    run = replay("ari_agent_noanswer.jsonl")

    alice = run.board.agent("alice")
    assert alice is not None
    assert (alice.state, alice.misses) == (AgentState.AVAILABLE, 1)
    assert run.agent_states == [AgentState.RINGING, AgentState.AVAILABLE]


def test_captured_busy_agent_counts_one_miss() -> None:
    run = replay("ari_agent_busy.jsonl")

    no_answers = [f for f, _ in run.steps if isinstance(f, AgentNoAnswer)]
    alice = run.board.agent("alice")
    assert {f.reason for f in no_answers} == {NoAnswerReason.BUSY}
    assert alice is not None and alice.misses == 1


def test_captured_caller_abandon_while_ringing_frees_alice_without_a_miss() -> None:
    """The app's cancel of the ringing leg arrives after the caller's end and decides nothing."""
    run = replay("ari_agent_caller_abandon.jsonl")

    late = [(f, s) for f, s in run.steps if isinstance(f, AgentNoAnswer)]
    alice = run.board.agent("alice")
    assert late
    assert all(s.ignored is IgnoreReason.ALREADY_ENDED and not s.events for _, s in late)
    assert alice is not None and (alice.state, alice.misses) == (AgentState.AVAILABLE, 0)


def test_captured_hang_up_is_reported_twice_and_decided_once() -> None:
    run = replay("ari_abandon.jsonl")

    hangups = [s for f, s in run.steps if isinstance(f, CallerHungUp)]
    assert len(hangups) == 2
    assert hangups[0].decided is not None
    assert hangups[1].ignored is IgnoreReason.ALREADY_ENDED


def test_captured_continue_ends_the_call_for_us_and_the_return_to_stasis_is_ignored() -> None:
    run = replay("ari_continue.jsonl")

    arrivals = [s for f, s in run.steps if isinstance(f, CallArrived)]
    assert len(run.ended) == 1
    assert arrivals[1].ignored is IgnoreReason.ALREADY_ENDED


def test_captured_arrival_reads_caller_dialled_and_creation_time() -> None:
    (start,) = [e for e in events("ari_abandon.jsonl") if isinstance(e, StasisStart)]

    (fact,) = translate(start, {})

    assert isinstance(fact, CallArrived)
    assert fact.call_id == fact.channel_id == fact.linkedid == "1795459692.1"
    assert fact.caller.raw == "sipp"
    assert fact.caller.e164 is None
    assert (fact.caller_name, fact.dialled, fact.queue) == ("sipp", "100", None)
    assert fact.at == start.channel.creationtime


# ---------------------------------------------------------------------------------------------
# One event at a time
# ---------------------------------------------------------------------------------------------

AGENT_CHANNEL = "1795461572.45"
LEGS = {AGENT_CHANNEL: AgentLeg(call_id="call-1", agent_id="bob")}


def test_queue_and_linkedid_come_from_stasis_args_and_channelvars() -> None:
    body = raw_event("ari_abandon.jsonl", "StasisStart")
    body["args"] = ["sales"]
    body["channel"]["caller"]["number"] = "+14155550100"
    body["channel"]["channelvars"] = {"CHANNEL(linkedid)": "1795459600.0"}

    (fact,) = translate(parse_event(body), {})

    assert isinstance(fact, CallArrived)
    assert fact.queue == "sales"
    assert fact.linkedid == "1795459600.0"
    assert fact.caller.e164 == "+14155550100"


@pytest.mark.parametrize("args", [["agent", "1.2"], ["outbound", "lab"]])
def test_channels_we_originate_are_never_taken_for_inbound_calls(args: list[str]) -> None:
    body = raw_event("ari_abandon.jsonl", "StasisStart")
    body["args"] = args

    assert translate(parse_event(body), {}) == ()


def test_agent_leg_entering_stasis_is_the_answer() -> None:
    body = raw_event("ari_agent_answer.jsonl", "StasisStart", 1)

    (fact,) = translate(
        parse_event(body), {body["channel"]["id"]: AgentLeg(call_id="call-1", agent_id="bob")}
    )

    assert fact == CallAnswered(call_id="call-1", agent_id="bob", at=parse_event(body).timestamp)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("", None),
        ("PROGRESS", None),
        ("SOMETHING_NEW", None),
        ("RINGING", AgentRinging),
        ("ANSWER", CallAnswered),
        ("BUSY", NoAnswerReason.BUSY),
        ("NOANSWER", NoAnswerReason.NO_ANSWER),
        ("CANCEL", NoAnswerReason.CANCELLED),
        ("CHANUNAVAIL", NoAnswerReason.UNAVAILABLE),
        ("CONGESTION", NoAnswerReason.UNAVAILABLE),
    ],
)
def test_dial_status_of_an_agent_leg(status: str, expected: object) -> None:
    body = raw_event("ari_agent_noanswer.jsonl", "Dial")
    body["dialstatus"] = status

    facts = translate(parse_event(body), LEGS)

    if expected is None:
        assert facts == ()
    elif isinstance(expected, NoAnswerReason):
        (fact,) = facts
        assert isinstance(fact, AgentNoAnswer)
        assert (fact.call_id, fact.agent_id, fact.reason) == ("call-1", "bob", expected)
    else:
        (fact,) = facts
        assert type(fact) is expected


def test_dial_of_a_channel_that_is_not_our_agent_leg_says_nothing() -> None:
    assert translate(parse_event(raw_event("ari_agent_noanswer.jsonl", "Dial", 1)), {}) == ()


@pytest.mark.parametrize(
    ("state", "cause", "expected"),
    [
        ("Ringing", 19, NoAnswerReason.NO_ANSWER),
        ("Down", 19, NoAnswerReason.NO_ANSWER),
        ("Down", 17, NoAnswerReason.BUSY),
        ("Ringing", 16, NoAnswerReason.CANCELLED),
        ("Down", 0, NoAnswerReason.UNAVAILABLE),
        ("Down", 34, NoAnswerReason.UNAVAILABLE),
        ("Up", 16, None),
    ],
)
def test_agent_leg_destroyed_by_cause_and_state(
    state: str, cause: int, expected: NoAnswerReason | None
) -> None:
    body = raw_event("ari_agent_noanswer.jsonl", "ChannelDestroyed")
    body["channel"]["state"] = state
    body["cause"] = cause

    (fact,) = translate(parse_event(body), LEGS)

    if expected is None:
        assert isinstance(fact, AgentHungUp)
    else:
        assert isinstance(fact, AgentNoAnswer)
        assert fact.reason is expected


@pytest.mark.parametrize(
    ("state", "expected"), [("Ringing", AgentRinging), ("Up", CallAnswered), ("Down", None), ("Busy", None)]
)
def test_agent_leg_state_changes(state: str, expected: type[Any] | None) -> None:
    body = raw_event("ari_agent_noanswer.jsonl", "ChannelStateChange")
    body["channel"]["state"] = state

    facts = translate(parse_event(body), LEGS)

    assert [type(f) for f in facts] == ([] if expected is None else [expected])


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, [CallerHungUp]),
        ({"cause": 16}, [CallerHungUp]),
        ({"cause": 32, "soft": True}, [CallerHungUp]),
        ({"cause": 4, "soft": True}, [CallFailed, CallerHungUp]),
        ({"cause": 2, "soft": True}, []),
    ],
)
def test_caller_hang_up_requests(changes: dict[str, Any], expected: list[type[Any]]) -> None:
    body = raw_event("ari_abandon.jsonl", "ChannelHangupRequest")
    body.update(changes)

    facts = translate(parse_event(body), {})

    assert [type(f) for f in facts] == expected
    assert all(f.call_id == body["channel"]["id"] for f in facts)
    failures = [f for f in facts if isinstance(f, CallFailed)]
    assert all(f.reason == SHUTDOWN_FAILURE for f in failures)


def test_hang_up_request_on_a_ringing_agent_leg_is_our_cancel_and_says_nothing() -> None:
    body = raw_event("ari_agent_caller_abandon.jsonl", "ChannelHangupRequest", 1)
    leg_id = body["channel"]["id"]
    assert body["channel"]["state"] == "Ringing"

    assert translate(parse_event(body), {leg_id: AgentLeg(call_id="c", agent_id="bob")}) == ()


def test_answered_agent_leg_hang_up_request_is_the_agent_hanging_up() -> None:
    body = raw_event("ari_agent_hangs_up.jsonl", "ChannelHangupRequest")
    leg = {body["channel"]["id"]: AgentLeg(call_id="c", agent_id="bob")}

    assert [type(f) for f in translate(parse_event(body), leg)] == [AgentHungUp]


def test_received_at_moves_fact_times_onto_our_clock_keeping_intervals() -> None:
    start = parse_event(raw_event("ari_abandon.jsonl", "StasisStart"))
    assert isinstance(start, StasisStart)
    received = start.timestamp + timedelta(seconds=3)

    (fact,) = translate(start, {}, received_at=received)

    assert fact.at == start.channel.creationtime + timedelta(seconds=3)
    assert received - fact.at == start.timestamp - start.channel.creationtime


def test_events_that_say_nothing_about_calls_give_no_facts() -> None:
    quiet = [
        e
        for e in events("ari_playback.jsonl")
        if type(e).__name__.startswith(("Playback", "ChannelVarset")) and not isinstance(e, PlaybackFinished)
    ]

    assert quiet
    assert all(translate(e, {}) == () for e in quiet)


def test_every_captured_playback_end_tells_the_callers_call_that_a_message_was_played() -> None:
    """ari_playback: done (played out, or stopped by DELETE), failed (missing file, hang-up mid-play)."""
    finished = [e for e in events("ari_playback.jsonl") if isinstance(e, PlaybackFinished)]
    received = T0 + timedelta(hours=1)

    facts = [f for e in finished for f in translate(e, {}, received_at=received)]

    channel = finished[0].playback.channel_id
    assert channel is not None and len(facts) == len(finished)
    assert all(isinstance(f, MessagePlayed) and f.call_id == channel and f.at == received for f in facts)
    assert [f.failed for f in facts if isinstance(f, MessagePlayed)] == [
        e.playback.state == "failed" for e in finished
    ]
    assert any(f.failed for f in facts if isinstance(f, MessagePlayed))
    assert not all(f.failed for f in facts if isinstance(f, MessagePlayed))


def test_a_playback_end_on_an_agent_leg_or_a_bridge_says_nothing() -> None:
    body = raw_event("ari_playback.jsonl", "PlaybackFinished")
    leg_id = body["playback"]["target_uri"].removeprefix("channel:")
    assert translate(parse_event(body), {leg_id: AgentLeg(call_id="c", agent_id="bob")}) == ()
    body["playback"]["target_uri"] = "bridge:6b7a"
    assert translate(parse_event(body), {}) == ()


def test_a_message_played_moves_no_call_on_the_board() -> None:
    board = QueueBoard(queues=[QueueRecord(name="sales")])
    arrived = translate(parse_event(raw_event("ari_abandon.jsonl", "StasisStart")), {})[0]
    board.apply(arrived)

    step = board.apply(MessagePlayed(call_id=arrived.call_id, at=T0, failed=True))

    assert (step.ignored, step.events, step.record) == (IgnoreReason.NOT_A_STEP, (), None)
    track = board.call(arrived.call_id)
    assert track is not None and track.outcome is None


@pytest.mark.parametrize("ringing_first", [False, True], ids=["dial-first", "ringing-first"])
def test_an_agent_leg_rings_and_answers_whichever_of_dial_and_ringing_comes_first(
    ringing_first: bool,
) -> None:
    """On a real Asterisk 20.20.1, 4 originates in 12 reported ChannelStateChange Ringing before the
    Dial with dialstatus "" (the captures show the Dial first)."""
    captured = events("ari_agent_answer.jsonl")
    leg_events = [
        e
        for e in captured
        if (isinstance(e, Dial) and e.peer.id == "1795461547.41")
        or (isinstance(e, ChannelStateChange) and e.channel.id == "1795461547.41")
    ]
    dial_pending, state_ringing = leg_events[0], leg_events[1]
    assert isinstance(dial_pending, Dial) and dial_pending.dialstatus is DialStatus.PENDING
    assert isinstance(state_ringing, ChannelStateChange) and state_ringing.channel.state.value == "Ringing"
    if ringing_first:
        leg_events[0], leg_events[1] = state_ringing, dial_pending
    board = QueueBoard(queues=[QueueRecord(name="sales")], policy=AgentPolicy(wrap_up_s=10))
    board.load_agent(
        AgentRecord(
            id="alice", name="A", endpoint="SIP/sipp-uas", state=AgentState.AVAILABLE, queues=("sales",)
        ),
        T0,
    )
    legs = {"1795461547.41": AgentLeg(call_id="1795461546.38", agent_id="alice")}
    for fact in translate(captured[0], {}):
        board.apply(fact)
    board.apply(CallQueued(call_id="1795461546.38", queue="sales", at=T0))
    # The service registers the leg and applies the offer before it originates.
    board.apply(AgentOffered(call_id="1795461546.38", agent_id="alice", at=T0))

    facts = [f for e in leg_events for f in translate(e, legs)]
    steps = [board.apply(f) for f in facts]

    assert [type(f) for f in facts] == [AgentRinging, AgentRinging, CallAnswered, CallAnswered]
    states = [e.state for s in steps for e in s.events if isinstance(e, AgentStateChanged)]
    assert states == [AgentState.BUSY]
    track = board.call("1795461546.38")
    assert track is not None and track.agent_id == "alice" and track.answered_at is not None


def test_stasis_args_of_channels_listed_at_resync() -> None:
    replies = [json.loads(line) for line in (DATA / "ari_resync_rest_log.jsonl").read_text().splitlines()]
    listed = next(r["body"] for r in replies if r["method"] == "GET" and r["path"] == "/ari/channels")
    channel = parse_channel(listed[0])
    other = parse_channel({**listed[0], "dialplan": {**listed[0]["dialplan"], "app_data": "otherapp,x"}})
    with_queue = parse_channel(
        {**listed[0], "dialplan": {**listed[0]["dialplan"], "app_data": "callcenter,sales"}}
    )
    in_dialplan = parse_channel({**listed[0], "dialplan": {**listed[0]["dialplan"], "app_name": "Playback"}})

    assert stasis_args(channel) == ()
    assert stasis_args(with_queue) == ("sales",)
    assert stasis_args(other) is None
    assert stasis_args(in_dialplan) is None


def test_vanished_agent_legs_get_a_cancel_and_a_hang_up_and_present_ones_nothing() -> None:
    legs = {"1.1": AgentLeg(call_id="c1", agent_id="alice"), "1.2": AgentLeg(call_id="c2", agent_id="bob")}

    facts = reconcile_agent_legs(legs, {"1.2"}, T0)

    assert facts == (
        AgentNoAnswer(call_id="c1", agent_id="alice", at=T0, reason=NoAnswerReason.CANCELLED),
        AgentHungUp(call_id="c1", agent_id="alice", at=T0),
    )
