"""The live queue: waiting callers in order, agents by state, who gets the next call, and when."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from callcenter.model.events import AgentStateChanged, CallEnded
from callcenter.model.phone import parse_phone
from callcenter.model.records import AgentRecord, QueueRecord
from callcenter.model.vocabulary import AgentState, CallOutcome
from callcenter.queue.detection import (
    AgentHungUp,
    AgentNoAnswer,
    AgentOffered,
    AnyCallFact,
    CallAnswered,
    CallArrived,
    CallerHungUp,
    CallQueued,
    ExitReason,
    IgnoreReason,
    NoAnswerReason,
    QueueExit,
)
from callcenter.queue.state import (
    AgentLoggedIn,
    AgentLoggedOut,
    AgentPaused,
    AgentPolicy,
    AgentUnpaused,
    AgentWrapUpEnded,
    AgentWrapUpStarted,
    Fact,
    QueueBoard,
    Step,
)

T0 = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def agent(
    name: str, state: AgentState = AgentState.LOGGED_OUT, queues: tuple[str, ...] = ("sales",)
) -> AgentRecord:
    return AgentRecord(id=name, name=name.title(), endpoint=f"SIP/{name}", state=state, queues=queues)


def make_board(
    policy: AgentPolicy | None = None, *, max_callers: int | None = None, join_empty: bool = False
) -> QueueBoard:
    settings = QueueRecord(name="sales", max_wait_s=60, max_callers=max_callers, join_empty=join_empty)
    return QueueBoard(queues=[settings], policy=policy or AgentPolicy(max_misses=2, wrap_up_s=10))


def logged_in(board: QueueBoard, *names: str, start: float = 0.0) -> None:
    for offset, name in enumerate(names):
        board.load_agent(agent(name), T0)
        board.apply(AgentLoggedIn(agent_id=name, at=at(start + offset)))


def call_waiting(board: QueueBoard, call: str, s: float, queue: str = "sales") -> None:
    board.apply(
        CallArrived(
            call_id=call,
            channel_id=f"ch-{call}",
            linkedid=f"ch-{call}",
            caller=parse_phone("+14155550100"),
            at=at(s),
        )
    )
    board.apply(CallQueued(call_id=call, queue=queue, at=at(s)))


def changes(steps: list[Step]) -> list[tuple[str, AgentState, AgentState]]:
    return [
        (e.agent_id, e.previous, e.state) for s in steps for e in s.events if isinstance(e, AgentStateChanged)
    ]


def apply_all(board: QueueBoard, facts: list[Fact]) -> list[Step]:
    return [board.apply(f) for f in facts]


# ---------------------------------------------------------------------------------------------
# Dispatch: the longest-idle available agent
# ---------------------------------------------------------------------------------------------


def test_longest_idle_available_agent_is_picked() -> None:
    board = make_board()
    logged_in(board, "bob", "alice", "carol")

    assert board.pick_agent("sales") == "bob"
    assert board.pick_agent("sales", exclude={"bob"}) == "alice"


def test_an_agent_back_from_a_call_goes_to_the_end_of_the_idle_line() -> None:
    board = make_board(AgentPolicy(wrap_up_s=0))
    logged_in(board, "bob", "alice")
    call_waiting(board, "c1", 5)
    apply_all(
        board,
        [
            AgentOffered(call_id="c1", agent_id="bob", at=at(5)),
            CallAnswered(call_id="c1", agent_id="bob", at=at(6)),
        ],
    )

    assert board.pick_agent("sales") == "alice"
    board.apply(CallerHungUp(call_id="c1", at=at(20)))
    assert board.pick_agent("sales") == "alice"


def test_paused_ringing_busy_logged_out_and_other_queues_agents_are_not_picked() -> None:
    board = make_board()
    logged_in(board, "ringing", "paused")
    board.load_agent(agent("away"), T0)
    board.load_agent(agent("other", AgentState.AVAILABLE, queues=("support",)), T0)
    board.apply(AgentPaused(agent_id="paused", at=at(3)))
    call_waiting(board, "c1", 4)
    board.apply(AgentOffered(call_id="c1", agent_id="ringing", at=at(4)))

    assert board.pick_agent("sales") is None
    assert board.pick_agent("support") == "other"


def test_offering_a_call_to_an_agent_who_is_not_available_is_refused() -> None:
    board = make_board()
    logged_in(board, "alice")
    board.apply(AgentPaused(agent_id="alice", at=at(1)))
    call_waiting(board, "c1", 2)

    step = board.apply(AgentOffered(call_id="c1", agent_id="alice", at=at(2)))

    assert step.ignored is IgnoreReason.AGENT_UNAVAILABLE
    track = board.call("c1")
    assert track is not None and track.ringing_agent is None


# ---------------------------------------------------------------------------------------------
# Agent states through a call
# ---------------------------------------------------------------------------------------------


def test_agent_goes_available_ringing_busy_wrap_up_available() -> None:
    board = make_board()
    board.load_agent(agent("alice"), T0)
    call_waiting(board, "c1", 1)

    steps = apply_all(
        board,
        [
            AgentLoggedIn(agent_id="alice", at=at(0)),
            AgentOffered(call_id="c1", agent_id="alice", at=at(1)),
            CallAnswered(call_id="c1", agent_id="alice", at=at(3)),
            AgentHungUp(call_id="c1", agent_id="alice", at=at(40)),
            CallerHungUp(call_id="c1", at=at(40.5)),
        ],
    )
    early = board.expire_wrap_ups(at(49.9))
    due = board.expire_wrap_ups(at(50))

    assert changes(steps) == [
        ("alice", AgentState.LOGGED_OUT, AgentState.AVAILABLE),
        ("alice", AgentState.AVAILABLE, AgentState.RINGING),
        ("alice", AgentState.RINGING, AgentState.BUSY),
        ("alice", AgentState.BUSY, AgentState.WRAP_UP),
    ]
    assert early == ()
    assert [(e.previous, e.state, e.occurred_at) for e in due] == [
        (AgentState.WRAP_UP, AgentState.AVAILABLE, at(50))
    ]
    event = steps[1].events[0]
    assert isinstance(event, AgentStateChanged)
    assert event.reason == "offered call c1"
    assert event.event_id != steps[2].events[0].event_id


def test_caller_hanging_up_first_puts_the_agent_in_wrap_up_and_the_agents_late_hang_up_changes_nothing() -> (
    None
):
    board = make_board()
    logged_in(board, "alice")
    call_waiting(board, "c1", 1)
    apply_all(
        board,
        [
            AgentOffered(call_id="c1", agent_id="alice", at=at(1)),
            CallAnswered(call_id="c1", agent_id="alice", at=at(2)),
        ],
    )

    ended = board.apply(CallerHungUp(call_id="c1", at=at(30)))
    late = board.apply(AgentHungUp(call_id="c1", agent_id="alice", at=at(30.3)))

    assert changes([ended]) == [("alice", AgentState.BUSY, AgentState.WRAP_UP)]
    assert late.ignored is IgnoreReason.ALREADY_ENDED
    assert late.events == ()


def test_without_wrap_up_time_the_agent_is_available_right_after_the_call() -> None:
    board = make_board(AgentPolicy(wrap_up_s=0))
    logged_in(board, "alice")
    call_waiting(board, "c1", 1)
    steps = apply_all(
        board,
        [
            AgentOffered(call_id="c1", agent_id="alice", at=at(1)),
            CallAnswered(call_id="c1", agent_id="alice", at=at(2)),
            AgentHungUp(call_id="c1", agent_id="alice", at=at(9)),
        ],
    )

    assert changes(steps)[-1] == ("alice", AgentState.BUSY, AgentState.AVAILABLE)


def test_wrap_up_can_be_ended_early() -> None:
    board = make_board()
    logged_in(board, "alice")
    call_waiting(board, "c1", 1)
    apply_all(
        board,
        [
            AgentOffered(call_id="c1", agent_id="alice", at=at(1)),
            CallAnswered(call_id="c1", agent_id="alice", at=at(2)),
            CallerHungUp(call_id="c1", at=at(9)),
        ],
    )

    step = board.apply(AgentWrapUpEnded(agent_id="alice", at=at(10)))
    again = board.apply(AgentWrapUpEnded(agent_id="alice", at=at(10)))

    assert changes([step]) == [("alice", AgentState.WRAP_UP, AgentState.AVAILABLE)]
    assert again.ignored is IgnoreReason.DUPLICATE


def test_agent_who_does_not_answer_is_skipped_and_paused_after_n_misses_in_a_row() -> None:
    board = make_board(AgentPolicy(max_misses=2, wrap_up_s=10))
    logged_in(board, "alice", "bob")
    call_waiting(board, "c1", 5)

    steps = apply_all(
        board,
        [
            AgentOffered(call_id="c1", agent_id="alice", at=at(5)),
            AgentNoAnswer(call_id="c1", agent_id="alice", at=at(20)),
            AgentOffered(call_id="c1", agent_id="bob", at=at(20)),
            AgentNoAnswer(call_id="c1", agent_id="bob", at=at(35), reason=NoAnswerReason.BUSY),
            AgentOffered(call_id="c1", agent_id="alice", at=at(35)),
            AgentNoAnswer(call_id="c1", agent_id="alice", at=at(50)),
        ],
    )

    alice = board.agent("alice")
    assert alice is not None and (alice.state, alice.misses) == (AgentState.PAUSED, 2)
    paused = [
        e
        for s in steps
        for e in s.events
        if isinstance(e, AgentStateChanged) and e.state is AgentState.PAUSED
    ]
    assert [e.reason for e in paused] == ["missed 2 calls in a row"]
    track = board.call("c1")
    assert track is not None and track.is_waiting
    assert board.pick_agent("sales") == "bob"


def test_an_answer_restarts_the_miss_count_and_so_does_unpausing() -> None:
    board = make_board(AgentPolicy(max_misses=2, wrap_up_s=0))
    logged_in(board, "alice")
    call_waiting(board, "c1", 1)
    apply_all(
        board,
        [
            AgentOffered(call_id="c1", agent_id="alice", at=at(1)),
            AgentNoAnswer(call_id="c1", agent_id="alice", at=at(16)),
            AgentOffered(call_id="c1", agent_id="alice", at=at(16)),
            CallAnswered(call_id="c1", agent_id="alice", at=at(18)),
        ],
    )
    alice = board.agent("alice")
    assert alice is not None and alice.misses == 0

    board.apply(CallerHungUp(call_id="c1", at=at(30)))
    call_waiting(board, "c2", 31)
    apply_all(
        board,
        [
            AgentOffered(call_id="c2", agent_id="alice", at=at(31)),
            AgentNoAnswer(call_id="c2", agent_id="alice", at=at(46)),
            AgentOffered(call_id="c2", agent_id="alice", at=at(46)),
            AgentNoAnswer(call_id="c2", agent_id="alice", at=at(61)),
        ],
    )
    paused = board.agent("alice")
    assert paused is not None and paused.state is AgentState.PAUSED

    step = board.apply(AgentUnpaused(agent_id="alice", at=at(70)))

    unpaused = board.agent("alice")
    assert changes([step]) == [("alice", AgentState.PAUSED, AgentState.AVAILABLE)]
    assert unpaused is not None and unpaused.misses == 0


def test_a_cancelled_offer_is_not_a_miss() -> None:
    board = make_board(AgentPolicy(max_misses=1))
    logged_in(board, "alice")
    call_waiting(board, "c1", 1)
    apply_all(
        board,
        [
            AgentOffered(call_id="c1", agent_id="alice", at=at(1)),
            AgentNoAnswer(call_id="c1", agent_id="alice", at=at(3), reason=NoAnswerReason.CANCELLED),
        ],
    )

    alice = board.agent("alice")
    assert alice is not None and (alice.state, alice.misses) == (AgentState.AVAILABLE, 0)


@pytest.mark.parametrize(
    ("then", "after"),
    [
        (None, AgentState.AVAILABLE),
        (AgentState.PAUSED, AgentState.PAUSED),
        (AgentState.LOGGED_OUT, AgentState.LOGGED_OUT),
    ],
)
def test_after_a_callback_the_agent_wraps_up_then_takes_what_they_asked_for_meanwhile(
    then: AgentState | None, after: AgentState
) -> None:
    """Issue #7: an agent held (paused) for a callback they talked on wraps up like after a queue call."""
    board = make_board()
    logged_in(board, "alice")
    board.apply(AgentPaused(agent_id="alice", at=at(1), reason="callback cb-1"))

    started = board.apply(AgentWrapUpStarted(agent_id="alice", at=at(60), then=then))
    call_waiting(board, "c1", 61)
    early = board.expire_wrap_ups(at(69))

    assert changes([started]) == [("alice", AgentState.PAUSED, AgentState.WRAP_UP)]
    assert board.pick_agent("sales") is None, "not offered a call during wrap-up"
    assert early == ()
    ended = board.expire_wrap_ups(at(70))
    assert [(e.previous, e.state) for e in ended] == [(AgentState.WRAP_UP, after)]


def test_a_callback_wrap_up_without_wrap_up_time_gives_the_agent_back_at_once() -> None:
    board = make_board(AgentPolicy(wrap_up_s=0))
    logged_in(board, "alice")
    board.apply(AgentPaused(agent_id="alice", at=at(1), reason="callback cb-1"))
    step = board.apply(AgentWrapUpStarted(agent_id="alice", at=at(60)))
    assert changes([step]) == [("alice", AgentState.PAUSED, AgentState.AVAILABLE)]


@pytest.mark.parametrize("state", [AgentState.LOGGED_OUT, AgentState.WRAP_UP, AgentState.RINGING])
def test_a_callback_wrap_up_of_an_agent_logged_out_wrapping_up_or_ringing_changes_nothing(
    state: AgentState,
) -> None:
    board = make_board()
    logged_in(board, "alice")
    if state is AgentState.LOGGED_OUT:
        board.apply(AgentLoggedOut(agent_id="alice", at=at(1)))
    else:
        call_waiting(board, "c1", 1)
        board.apply(AgentOffered(call_id="c1", agent_id="alice", at=at(1)))
        if state is AgentState.WRAP_UP:
            board.apply(CallAnswered(call_id="c1", agent_id="alice", at=at(2)))
            board.apply(CallerHungUp(call_id="c1", at=at(9)))
    live = board.agent("alice")
    assert live is not None and live.state is state
    step = board.apply(AgentWrapUpStarted(agent_id="alice", at=at(20)))
    assert step.ignored is IgnoreReason.DUPLICATE and step.events == ()


def test_pause_during_a_call_waits_for_the_end_of_wrap_up() -> None:
    board = make_board()
    logged_in(board, "alice")
    call_waiting(board, "c1", 1)
    apply_all(
        board,
        [
            AgentOffered(call_id="c1", agent_id="alice", at=at(1)),
            CallAnswered(call_id="c1", agent_id="alice", at=at(2)),
        ],
    )

    asked = board.apply(AgentPaused(agent_id="alice", at=at(5), reason="lunch"))
    ended = board.apply(CallerHungUp(call_id="c1", at=at(30)))
    after = board.expire_wrap_ups(at(40))

    assert asked.events == () and asked.ignored is None
    assert changes([ended]) == [("alice", AgentState.BUSY, AgentState.WRAP_UP)]
    assert [(e.previous, e.state) for e in after] == [(AgentState.WRAP_UP, AgentState.PAUSED)]


def test_unpausing_before_the_call_ends_cancels_the_pending_pause() -> None:
    board = make_board(AgentPolicy(wrap_up_s=0))
    logged_in(board, "alice")
    call_waiting(board, "c1", 1)
    apply_all(
        board,
        [
            AgentOffered(call_id="c1", agent_id="alice", at=at(1)),
            CallAnswered(call_id="c1", agent_id="alice", at=at(2)),
        ],
    )

    apply_all(board, [AgentPaused(agent_id="alice", at=at(5)), AgentUnpaused(agent_id="alice", at=at(6))])
    ended = board.apply(CallerHungUp(call_id="c1", at=at(30)))

    assert changes([ended]) == [("alice", AgentState.BUSY, AgentState.AVAILABLE)]


def test_log_out_while_ringing_applies_when_the_offer_ends() -> None:
    board = make_board()
    logged_in(board, "alice")
    call_waiting(board, "c1", 1)
    board.apply(AgentOffered(call_id="c1", agent_id="alice", at=at(1)))

    asked = board.apply(AgentLoggedOut(agent_id="alice", at=at(2)))
    missed = board.apply(AgentNoAnswer(call_id="c1", agent_id="alice", at=at(16)))

    assert asked.events == ()
    assert changes([missed]) == [("alice", AgentState.RINGING, AgentState.LOGGED_OUT)]


def test_caller_leaving_the_queue_while_an_agent_rings_frees_the_agent_without_a_miss() -> None:
    board = make_board()
    logged_in(board, "alice")
    call_waiting(board, "c1", 1)
    board.apply(AgentOffered(call_id="c1", agent_id="alice", at=at(1)))

    step = board.apply(QueueExit(call_id="c1", at=at(61), reason=ExitReason.TIMEOUT))

    alice = board.agent("alice")
    assert changes([step]) == [("alice", AgentState.RINGING, AgentState.AVAILABLE)]
    assert alice is not None and alice.misses == 0


def test_another_agent_answering_frees_the_one_still_ringing() -> None:
    board = make_board()
    logged_in(board, "alice", "bob")
    call_waiting(board, "c1", 1)
    board.apply(AgentOffered(call_id="c1", agent_id="alice", at=at(1)))

    step = board.apply(CallAnswered(call_id="c1", agent_id="bob", at=at(4)))

    assert changes([step]) == [
        ("alice", AgentState.RINGING, AgentState.AVAILABLE),
        ("bob", AgentState.AVAILABLE, AgentState.BUSY),
    ]


@pytest.mark.parametrize(
    ("facts", "reason"),
    [
        ([AgentLoggedIn(agent_id="alice", at=at(9))], IgnoreReason.DUPLICATE),
        (
            [AgentPaused(agent_id="alice", at=at(9)), AgentPaused(agent_id="alice", at=at(9))],
            IgnoreReason.DUPLICATE,
        ),
        ([AgentUnpaused(agent_id="alice", at=at(9))], IgnoreReason.DUPLICATE),
        (
            [AgentLoggedOut(agent_id="alice", at=at(9)), AgentLoggedOut(agent_id="alice", at=at(9))],
            IgnoreReason.DUPLICATE,
        ),
        (
            [AgentLoggedOut(agent_id="alice", at=at(9)), AgentPaused(agent_id="alice", at=at(9))],
            IgnoreReason.DUPLICATE,
        ),
        ([AgentWrapUpEnded(agent_id="alice", at=at(9))], IgnoreReason.DUPLICATE),
        ([AgentLoggedIn(agent_id="nobody", at=at(9))], IgnoreReason.UNKNOWN_AGENT),
    ],
)
def test_agent_requests_that_change_nothing_are_reported(facts: list[Fact], reason: IgnoreReason) -> None:
    board = make_board()
    logged_in(board, "alice")

    steps = apply_all(board, facts)

    assert steps[-1].ignored is reason
    assert steps[-1].events == ()


def test_log_in_can_set_the_queues() -> None:
    board = make_board()
    board.load_agent(agent("alice", queues=()), T0)

    board.apply(AgentLoggedIn(agent_id="alice", at=at(1), queues=("sales", "support")))

    assert board.pick_agent("support") == "alice"


def test_agents_stored_ringing_or_busy_have_no_call_after_a_restart() -> None:
    board = make_board()

    ringing = board.load_agent(agent("r", AgentState.RINGING), at(5))
    busy = board.load_agent(agent("b", AgentState.BUSY), at(5))
    paused = board.load_agent(agent("p", AgentState.PAUSED), at(5))

    assert [(e.previous, e.state) for e in ringing + busy] == [
        (AgentState.RINGING, AgentState.AVAILABLE),
        (AgentState.BUSY, AgentState.WRAP_UP),
    ]
    assert paused == ()


def test_reloading_a_known_agent_keeps_live_state_and_updates_queues() -> None:
    board = make_board()
    logged_in(board, "alice")

    board.load_agent(agent("alice", AgentState.LOGGED_OUT, queues=("support",)), at(9))

    live = board.agent("alice")
    assert live is not None and (live.state, live.queues) == (AgentState.AVAILABLE, ("support",))


# ---------------------------------------------------------------------------------------------
# Waiting lists, admission, time limits, resync
# ---------------------------------------------------------------------------------------------


def test_waiting_callers_are_listed_in_enqueue_order_with_wait_so_far() -> None:
    board = make_board()
    call_waiting(board, "late", 20)
    call_waiting(board, "early", 5)
    call_waiting(board, "middle", 10)

    waiting = board.waiting("sales", at(30))

    assert [(w.call_id, w.position, w.wait_s) for w in waiting] == [
        ("early", 1, 25.0),
        ("middle", 2, 20.0),
        ("late", 3, 10.0),
    ]
    assert board.position("middle") == 2


def test_positions_move_up_when_a_caller_ahead_leaves() -> None:
    board = make_board()
    for n, call in enumerate(["a", "b", "c"]):
        call_waiting(board, call, n)

    board.apply(CallerHungUp(call_id="a", at=at(9)))

    assert [(w.call_id, w.position) for w in board.waiting("sales", at(10))] == [("b", 1), ("c", 2)]
    assert board.position("a") is None


def test_queue_view_lists_agents_by_state() -> None:
    board = make_board()
    logged_in(board, "alice", "bob")
    board.load_agent(agent("carol"), T0)
    board.apply(AgentPaused(agent_id="bob", at=at(4)))
    call_waiting(board, "c1", 5)
    board.apply(AgentOffered(call_id="c1", agent_id="alice", at=at(5)))

    view = board.view("sales", at(12))

    assert [w.ringing_agent for w in view.waiting] == ["alice"]
    assert [a.agent_id for a in view.agents_in(AgentState.RINGING)] == ["alice"]
    assert [a.agent_id for a in view.agents_in(AgentState.PAUSED)] == ["bob"]
    assert [a.agent_id for a in view.agents_in(AgentState.LOGGED_OUT)] == ["carol"]


def test_admission_refuses_a_full_queue_and_an_empty_one() -> None:
    board = make_board(max_callers=2, join_empty=False)

    assert board.admission("sales") is ExitReason.NO_AGENTS
    logged_in(board, "alice")
    board.apply(AgentPaused(agent_id="alice", at=at(1)))
    assert board.admission("sales") is None
    call_waiting(board, "c1", 2)
    call_waiting(board, "c2", 3)
    assert board.admission("sales") is ExitReason.FULL
    assert board.admission("unknown") is None


def test_join_empty_queue_admits_with_nobody_logged_in() -> None:
    assert make_board(join_empty=True).admission("sales") is None


def test_callers_past_max_wait_are_due_for_a_timeout_exit() -> None:
    board = make_board()
    call_waiting(board, "c1", 0)
    call_waiting(board, "c2", 30)

    assert board.overdue(at(59)) == ()
    assert board.overdue(at(60)) == ("c1",)
    assert board.overdue(at(95)) == ("c1", "c2")


def test_resync_reconciles_calls_whose_channel_is_gone() -> None:
    board = make_board()
    logged_in(board, "alice")
    call_waiting(board, "gone", 1)
    call_waiting(board, "here", 2)
    board.apply(AgentOffered(call_id="gone", agent_id="alice", at=at(1)))
    board.apply(CallAnswered(call_id="gone", agent_id="alice", at=at(3)))

    facts = board.reconcile({"ch-here"}, at(100))
    steps = apply_all(board, list(facts))

    ended = [e for s in steps for e in s.events if isinstance(e, CallEnded)]
    assert [(e.call_id, e.outcome, e.reconciled, e.talk_s) for e in ended] == [
        ("gone", CallOutcome.ANSWERED, True, 97.0)
    ]
    assert changes(steps) == [("alice", AgentState.BUSY, AgentState.WRAP_UP)]
    assert [c.call_id for c in board.live_calls()] == ["here"]


def test_forgotten_calls_still_never_get_a_second_outcome() -> None:
    board = QueueBoard(ended_memory=1)
    facts: list[AnyCallFact] = []
    for call in ("a", "b"):
        facts += [
            CallArrived(call_id=call, channel_id=call, linkedid=call, caller=parse_phone("x"), at=at(0)),
            CallerHungUp(call_id=call, at=at(1)),
        ]
    apply_all(board, list(facts))

    late = board.apply(CallerHungUp(call_id="a", at=at(2)))
    recent = board.apply(CallerHungUp(call_id="b", at=at(2)))

    assert (late.ignored, late.events) == (IgnoreReason.UNKNOWN_CALL, ())
    assert (recent.ignored, recent.events) == (IgnoreReason.ALREADY_ENDED, ())


def test_the_unrung_line_is_fifo_without_the_callers_being_rung_and_resumes_past_a_place() -> None:
    board = make_board(join_empty=True)
    logged_in(board, "alice")
    call_waiting(board, "c2", 2)
    call_waiting(board, "c1", 1)
    call_waiting(board, "c3", 2)  # same enqueue time as c2: arrival order breaks the tie
    board.apply(AgentOffered(call_id="c1", agent_id="alice", at=at(3)))

    order = list(board.waiting_unrung("sales"))

    assert [place[2] for place in order] == ["c2", "c3"]  # alice is ringing for c1
    assert [place[2] for place in board.waiting_unrung("sales", after=order[0])] == ["c3"]
    assert list(board.waiting_unrung("sales", after=order[-1])) == []
    assert list(board.waiting_unrung("support")) == []
    assert [board.position(c) for c in ("c1", "c2", "c3")] == [1, 2, 3]

    board.apply(AgentNoAnswer(call_id="c1", agent_id="alice", at=at(4), reason=NoAnswerReason.NO_ANSWER))
    board.apply(CallerHungUp(call_id="c2", at=at(5)))

    assert [place[2] for place in board.waiting_unrung("sales")] == ["c1", "c3"]  # c1 back in its place
    assert [board.position(c) for c in ("c1", "c2", "c3")] == [1, None, 2]
