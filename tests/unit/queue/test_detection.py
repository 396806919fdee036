"""Each call gets exactly one outcome from the DESIGN.md vocabulary: the last stage reached wins."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from callcenter.model.events import CallEnded
from callcenter.model.phone import parse_phone
from callcenter.model.records import AgentRecord, CallRecord, QueueRecord
from callcenter.model.vocabulary import AgentState, CallOutcome, EntryPoint
from callcenter.queue.detection import (
    AgentHungUp,
    AgentNoAnswer,
    AgentOffered,
    AgentRinging,
    AnyCallFact,
    CallAnswered,
    CallArrived,
    CallbackAccepted,
    CallerHungUp,
    CallFailed,
    CallQueued,
    CallSentToVoicemail,
    CallTrack,
    ExitReason,
    IgnoreReason,
    NoAnswerReason,
    QueueExit,
    Reconciled,
    Stage,
    VoicemailNotRecorded,
    VoicemailRecorded,
    advance,
    close_missed_calls,
    decide_outcome,
    to_call_ended,
)
from callcenter.queue.state import AgentPolicy, QueueBoard, Step

T0 = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
CALLER = "+14155550100"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def arrived(s: float = 0.0, call: str = "c1", caller: str = CALLER) -> CallArrived:
    return CallArrived(
        call_id=call,
        channel_id=f"ch-{call}",
        linkedid=f"ch-{call}",
        caller=parse_phone(caller),
        caller_name="Ada",
        dialled="3000",
        queue="sales",
        at=at(s),
    )


def queued(s: float, call: str = "c1") -> CallQueued:
    return CallQueued(call_id=call, queue="sales", at=at(s))


def offered(s: float, agent: str = "alice", call: str = "c1") -> AgentOffered:
    return AgentOffered(call_id=call, agent_id=agent, at=at(s))


def ringing(s: float, agent: str = "alice", call: str = "c1") -> AgentRinging:
    return AgentRinging(call_id=call, agent_id=agent, at=at(s))


def no_answer(
    s: float, agent: str = "alice", reason: NoAnswerReason = NoAnswerReason.NO_ANSWER
) -> AgentNoAnswer:
    return AgentNoAnswer(call_id="c1", agent_id=agent, at=at(s), reason=reason)


def answered(s: float, agent: str = "alice", call: str = "c1") -> CallAnswered:
    return CallAnswered(call_id=call, agent_id=agent, at=at(s))


def agent_hung_up(s: float, agent: str = "alice") -> AgentHungUp:
    return AgentHungUp(call_id="c1", agent_id=agent, at=at(s))


def hung_up(s: float, call: str = "c1") -> CallerHungUp:
    return CallerHungUp(call_id=call, at=at(s))


def exited(s: float, reason: ExitReason) -> QueueExit:
    return QueueExit(call_id="c1", at=at(s), reason=reason)


def to_voicemail(s: float) -> CallSentToVoicemail:
    return CallSentToVoicemail(call_id="c1", at=at(s))


def recorded(s: float) -> VoicemailRecorded:
    return VoicemailRecorded(call_id="c1", at=at(s))


def not_recorded(s: float) -> VoicemailNotRecorded:
    return VoicemailNotRecorded(call_id="c1", at=at(s))


def board(short_abandon_s: int = 5) -> QueueBoard:
    settings = QueueRecord(name="sales", max_wait_s=60, short_abandon_s=short_abandon_s)
    result = QueueBoard(queues=[settings], policy=AgentPolicy(wrap_up_s=10))
    for name in ("alice", "bob"):
        result.load_agent(
            AgentRecord(
                id=name, name=name, endpoint=f"SIP/{name}", state=AgentState.AVAILABLE, queues=("sales",)
            ),
            T0,
        )
    return result


def run(facts: list[AnyCallFact], b: QueueBoard | None = None) -> tuple[QueueBoard, list[Step]]:
    b = b or board()
    return b, [b.apply(f) for f in facts]


def ended_events(steps: list[Step]) -> list[CallEnded]:
    return [e for s in steps for e in s.events if isinstance(e, CallEnded)]


@dataclass(frozen=True)
class Case:
    name: str
    facts: list[AnyCallFact]
    outcome: CallOutcome
    wait_s: float = 0.0
    talk_s: float = 0.0
    position: int | None = None
    agent: str | None = None


CASES = [
    Case(
        "answered",
        [arrived(), queued(1), offered(1), ringing(1.5), answered(4), agent_hung_up(64), hung_up(64.5)],
        CallOutcome.ANSWERED,
        wait_s=3,
        talk_s=60,
        position=1,
        agent="alice",
    ),
    Case(
        "answered, caller hangs up first",
        [arrived(), queued(1), offered(1), answered(4), hung_up(34)],
        CallOutcome.ANSWERED,
        wait_s=3,
        talk_s=30,
        position=1,
        agent="alice",
    ),
    Case(
        "abandon after 30 s",
        [arrived(), queued(1), hung_up(31)],
        CallOutcome.ABANDONED,
        wait_s=30,
        position=1,
    ),
    Case(
        "short abandon 2 s",
        [arrived(), queued(1), hung_up(3)],
        CallOutcome.SHORT_ABANDON,
        wait_s=2,
        position=1,
    ),
    Case(
        "5 s exactly is not short",
        [arrived(), queued(1), hung_up(6)],
        CallOutcome.ABANDONED,
        wait_s=5,
        position=1,
    ),
    Case(
        "just under 5 s is short",
        [arrived(), queued(1), hung_up(5.999)],
        CallOutcome.SHORT_ABANDON,
        4.999,
        0,
        1,
    ),
    Case(
        "no agent logged in",
        [arrived(), exited(1, ExitReason.NO_AGENTS), hung_up(6)],
        CallOutcome.UNANSWERED_NO_AGENTS,
    ),
    Case(
        "all agents left while waiting",
        [arrived(), queued(1), exited(20, ExitReason.NO_AGENTS), hung_up(25)],
        CallOutcome.UNANSWERED_NO_AGENTS,
        wait_s=19,
        position=1,
    ),
    Case(
        "max-wait timeout",
        [arrived(), queued(1), exited(61, ExitReason.TIMEOUT), hung_up(70)],
        CallOutcome.UNANSWERED_TIMEOUT,
        wait_s=60,
        position=1,
    ),
    Case("queue full", [arrived(), exited(1, ExitReason.FULL), hung_up(4)], CallOutcome.UNANSWERED_FULL),
    Case("after hours", [arrived(), exited(1, ExitReason.AFTER_HOURS), hung_up(9)], CallOutcome.AFTER_HOURS),
    Case(
        "after hours, sent to voicemail, leaves a message",
        [arrived(), exited(1, ExitReason.AFTER_HOURS), to_voicemail(8), recorded(30), hung_up(31)],
        CallOutcome.VOICEMAIL,
    ),
    Case(
        "after hours, sent to voicemail, no message",
        [arrived(), exited(1, ExitReason.AFTER_HOURS), to_voicemail(8), hung_up(12)],
        CallOutcome.AFTER_HOURS,
    ),
    Case(
        "after hours, sent to voicemail, Asterisk could not record",
        [
            arrived(),
            exited(1, ExitReason.AFTER_HOURS),
            to_voicemail(8),
            recorded(9),
            not_recorded(9),
            hung_up(12),
        ],
        CallOutcome.AFTER_HOURS,
    ),
    Case(
        "timeout, then a message",
        [arrived(), queued(1), exited(61, ExitReason.TIMEOUT), to_voicemail(62), recorded(80), hung_up(80)],
        CallOutcome.VOICEMAIL,
        wait_s=60,
        position=1,
    ),
    Case(
        "chose voicemail while waiting, left no message",
        [arrived(), queued(1), to_voicemail(11), hung_up(15)],
        CallOutcome.ABANDONED,
        wait_s=10,
        position=1,
    ),
    Case("hang-up before the queue", [arrived(), hung_up(7)], CallOutcome.IVR_HANGUP),
    Case(
        "agent does not answer, another answers",
        [
            arrived(),
            queued(1),
            offered(1),
            ringing(1.2),
            no_answer(16),
            offered(16, "bob"),
            answered(20, "bob"),
            hung_up(80),
        ],
        CallOutcome.ANSWERED,
        wait_s=19,
        talk_s=60,
        position=1,
        agent="bob",
    ),
    Case(
        "caller hangs up while the agent rings",
        [arrived(), queued(1), offered(1), ringing(1.5), hung_up(12)],
        CallOutcome.ABANDONED,
        wait_s=11,
        position=1,
    ),
    Case(
        "caller hangs up 2 s in while the agent rings",
        [arrived(), queued(1), offered(1), hung_up(3)],
        CallOutcome.SHORT_ABANDON,
        wait_s=2,
        position=1,
    ),
    Case(
        "callback accepted while waiting",
        [arrived(), queued(1), CallbackAccepted(call_id="c1", at=at(46)), hung_up(50)],
        CallOutcome.CALLBACK_REQUESTED,
        wait_s=45,
        position=1,
    ),
    Case(
        "timeout, then a callback",
        [
            arrived(),
            queued(1),
            exited(61, ExitReason.TIMEOUT),
            CallbackAccepted(call_id="c1", at=at(70)),
            hung_up(71),
        ],
        CallOutcome.CALLBACK_REQUESTED,
        wait_s=60,
        position=1,
    ),
    Case(
        "our error while waiting",
        [arrived(), queued(1), CallFailed(call_id="c1", at=at(9), reason="originate 500"), hung_up(10)],
        CallOutcome.FAILED,
        wait_s=8,
        position=1,
    ),
    Case(
        "an error after the answer keeps it answered",
        [arrived(), queued(1), answered(2), CallFailed(call_id="c1", at=at(9), reason="x"), hung_up(10)],
        CallOutcome.ANSWERED,
        wait_s=1,
        talk_s=8,
        position=1,
        agent="alice",
    ),
    Case(
        "after hours, message, then failure keeps the voicemail",
        [
            arrived(),
            exited(1, ExitReason.AFTER_HOURS),
            recorded(20),
            CallFailed(call_id="c1", at=at(21), reason="x"),
            hung_up(22),
        ],
        CallOutcome.VOICEMAIL,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_outcome(case: Case) -> None:
    b, steps = run(case.facts)

    (ended,) = ended_events(steps)
    assert ended.outcome is case.outcome
    assert ended.wait_s == pytest.approx(case.wait_s)
    assert ended.talk_s == pytest.approx(case.talk_s)
    assert ended.position == case.position
    assert ended.agent_id == case.agent
    assert ended.event_id == ended.call_id == "c1"
    assert ended.occurred_at == case.facts[-1].at
    assert ended.caller == CALLER
    assert ended.queue == "sales"
    assert not ended.reconciled
    assert steps[-1].decided == ended
    assert steps[-1].record is not None and steps[-1].record.outcome is case.outcome
    assert b.live_calls() == ()


def test_every_outcome_our_queue_can_reach_is_covered() -> None:
    assert {c.outcome for c in CASES} == set(CallOutcome)


def test_the_record_to_store_holds_the_whole_call() -> None:
    _, steps = run([arrived(), queued(1), offered(1), answered(4), agent_hung_up(64), hung_up(64.5)])

    record = steps[-1].record
    assert record == CallRecord(
        id="c1",
        channel_id="ch-c1",
        linkedid="ch-c1",
        entry_point=EntryPoint.ARI,
        caller=CALLER,
        caller_name="Ada",
        dialled="3000",
        queue="sales",
        arrived_at=at(0),
        queued_at=at(1),
        answered_at=at(4),
        ended_at=at(64.5),
        wait_s=3.0,
        talk_s=60.0,
        position=1,
        agent_id="alice",
        outcome=CallOutcome.ANSWERED,
    )


def test_a_live_call_is_stored_without_outcome_at_each_stage() -> None:
    _, steps = run([arrived(), queued(1)])

    assert [s.record.outcome if s.record else "none" for s in steps] == [None, None]
    assert steps[1].record is not None and steps[1].record.queued_at == at(1)


def test_unparseable_caller_id_is_kept_raw() -> None:
    _, steps = run([arrived(caller="sipp"), hung_up(1)])

    (ended,) = ended_events(steps)
    assert ended.caller == "sipp"


def test_queue_short_abandon_threshold_is_the_queues_own() -> None:
    b = board(short_abandon_s=10)

    _, steps = run([arrived(), queued(1), hung_up(9)], b)

    assert ended_events(steps)[0].outcome is CallOutcome.SHORT_ABANDON


def test_position_at_hang_up_counts_callers_ahead_in_enqueue_order() -> None:
    facts: list[AnyCallFact] = [arrived(0, "a"), arrived(0, "b"), arrived(0, "c")]
    facts += [queued(1, "a"), queued(2, "b"), queued(3, "c"), hung_up(30, "c")]
    facts += [answered(31, "alice", "a"), hung_up(40, "b")]

    _, steps = run(facts)

    assert [(e.call_id, e.position) for e in ended_events(steps)] == [("c", 3), ("b", 1)]


def test_reconciled_call_is_decided_as_at_the_resync_and_flagged() -> None:
    _, steps = run([arrived(), queued(1), Reconciled(call_id="c1", at=at(40))])

    (ended,) = ended_events(steps)
    assert (ended.outcome, ended.wait_s, ended.reconciled) == (CallOutcome.ABANDONED, 39, True)
    assert steps[-1].record is not None and steps[-1].record.reconciled


# ---------------------------------------------------------------------------------------------
# Duplicate, late and out-of-order facts
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("facts", "reason"),
    [
        ([arrived(), hung_up(5), hung_up(5)], IgnoreReason.ALREADY_ENDED),
        ([arrived(), queued(1), hung_up(9), answered(10)], IgnoreReason.ALREADY_ENDED),
        ([arrived(), hung_up(5), Reconciled(call_id="c1", at=at(50))], IgnoreReason.ALREADY_ENDED),
        ([arrived(), hung_up(5), arrived()], IgnoreReason.ALREADY_ENDED),
        ([hung_up(5)], IgnoreReason.UNKNOWN_CALL),
        ([answered(5)], IgnoreReason.UNKNOWN_CALL),
        ([arrived(), arrived()], IgnoreReason.DUPLICATE),
        ([arrived(), queued(1), queued(1)], IgnoreReason.DUPLICATE),
        ([arrived(), queued(1), offered(1), offered(1)], IgnoreReason.DUPLICATE),
        ([arrived(), queued(1), offered(1), ringing(2), ringing(2)], IgnoreReason.DUPLICATE),
        ([arrived(), queued(1), answered(2), answered(2)], IgnoreReason.DUPLICATE),
        (
            [arrived(), exited(1, ExitReason.AFTER_HOURS), exited(1, ExitReason.AFTER_HOURS)],
            IgnoreReason.DUPLICATE,
        ),
        ([arrived(), queued(1), answered(2), queued(1)], IgnoreReason.OUT_OF_ORDER),
        ([arrived(), offered(1)], IgnoreReason.OUT_OF_ORDER),
        ([arrived(), queued(1), answered(2), answered(2, "bob")], IgnoreReason.OUT_OF_ORDER),
        ([arrived(), queued(1), answered(2), exited(3, ExitReason.TIMEOUT)], IgnoreReason.OUT_OF_ORDER),
        ([arrived(), queued(1), agent_hung_up(3)], IgnoreReason.OUT_OF_ORDER),
        ([arrived(), queued(1), offered(1), no_answer(9, "bob")], IgnoreReason.OUT_OF_ORDER),
        ([arrived(), queued(1), offered(1, "zed"), ringing(2, "bob")], IgnoreReason.OUT_OF_ORDER),
    ],
)
def test_repeats_and_misfits_are_ignored_with_a_reason_and_decide_nothing(
    facts: list[AnyCallFact], reason: IgnoreReason
) -> None:
    b, steps = run(facts)
    before = b.call("c1")

    last = steps[-1]
    assert last.ignored is reason
    assert last.events == ()
    assert last.record is None
    assert len(ended_events(steps)) <= 1
    assert b.call("c1") == before


def test_outcome_stays_once_decided_whatever_comes_late() -> None:
    late: list[AnyCallFact] = [
        answered(20),
        recorded(21),
        not_recorded(21),
        CallbackAccepted(call_id="c1", at=at(22)),
        CallFailed(call_id="c1", at=at(23), reason="x"),
        exited(24, ExitReason.TIMEOUT),
        hung_up(25),
    ]
    b, steps = run([arrived(), queued(1), hung_up(9), *late])

    assert [e.outcome for e in ended_events(steps)] == [CallOutcome.ABANDONED]
    track = b.call("c1")
    assert track is not None and track.outcome is CallOutcome.ABANDONED


def test_out_of_order_times_never_make_waits_negative() -> None:
    _, steps = run([arrived(10), queued(10), offered(10), answered(5), agent_hung_up(2), hung_up(1)])

    (ended,) = ended_events(steps)
    assert ended.outcome is CallOutcome.ANSWERED
    assert (ended.wait_s, ended.talk_s) == (0.0, 0.0)


# ---------------------------------------------------------------------------------------------
# The pure functions under the board
# ---------------------------------------------------------------------------------------------


def _track(**changes: Any) -> CallTrack:
    return dataclasses.replace(CallTrack.start(arrived()), **changes)


def test_advance_on_a_decided_track_is_ignored() -> None:
    done = _track(outcome=CallOutcome.ABANDONED, ended_at=at(5))

    assert advance(done, hung_up(6)) == (done, IgnoreReason.ALREADY_ENDED)


def test_decide_outcome_falls_back_to_ivr_hangup_when_never_queued() -> None:
    assert decide_outcome(_track(stage=Stage.VOICEMAIL, ended_at=at(5))) is CallOutcome.IVR_HANGUP


def test_to_call_ended_refuses_a_live_call() -> None:
    with pytest.raises(ValueError, match="no outcome"):
        to_call_ended(_track())


def _missed(call: str, arrived_s: float, outcome: CallOutcome, caller: str = CALLER) -> CallRecord:
    return CallRecord(
        id=call,
        channel_id=call,
        linkedid=call,
        entry_point=EntryPoint.ARI,
        caller=caller,
        arrived_at=at(arrived_s),
        outcome=outcome,
    )


def test_a_later_answer_closes_the_callers_open_missed_calls_only() -> None:
    records = [
        _missed("a", 0, CallOutcome.ABANDONED),
        _missed("b", 10, CallOutcome.CALLBACK_REQUESTED),
        _missed("c", 20, CallOutcome.ANSWERED),
        _missed("e", 30, CallOutcome.VOICEMAIL, caller="+14155550199"),
        _missed("f", 500, CallOutcome.ABANDONED),
    ]

    closed = close_missed_calls(records, caller=CALLER, reached_at=at(100))

    assert [(r.id, r.closed_at) for r in closed] == [("a", at(100)), ("b", at(100))]


def test_closing_ignores_already_closed_and_withheld_numbers() -> None:
    closed_one = _missed("a", 0, CallOutcome.ABANDONED)
    closed_one = CallRecord(
        **{**{f: getattr(closed_one, f) for f in closed_one.__dataclass_fields__}, "closed_at": at(1)}
    )
    anonymous = _missed("b", 0, CallOutcome.ABANDONED, caller="anonymous")

    assert close_missed_calls([closed_one], caller=CALLER, reached_at=at(100)) == ()
    assert close_missed_calls([anonymous], caller="anonymous", reached_at=at(100)) == ()
