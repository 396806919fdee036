"""The estimate service on a live queue: estimates, learning from CallEnded, the prediction log, accuracy."""

from __future__ import annotations

import asyncio
import math
from datetime import timedelta

import pytest

from callcenter.bus import Delivery
from callcenter.capacity.estimate import NoEstimateReason
from callcenter.capacity.predictors import PredictorName, QueueState, predict_ql_a
from callcenter.capacity.service import CONSUMER_GROUP, EstimateSettings
from callcenter.errors import DependencyError, NotFoundError, StoreUnavailableError, ValidationError
from callcenter.model.events import CallEnded
from callcenter.model.records import QueueRecord
from callcenter.model.vocabulary import CallOutcome, EntryPoint
from tests.service.capacity.conftest import Capacity, MakeCapacity, agent, past_call

WEEK = timedelta(weeks=1)


async def busy_queue(make_capacity: MakeCapacity, *, history: bool = True, **kwargs: object) -> Capacity:
    """Agents a1 and a2 on calls c1 and c2; with ``history``, four past Mondays of 100 s calls at this hour."""
    cap = await make_capacity(agents=[agent("a1"), agent("a2")], logged_in=["a1", "a2"], **kwargs)
    if history:
        now = cap.clock.now()
        await cap.history(
            [
                past_call(w * 100 + i, now - w * WEEK + timedelta(seconds=20 * i))
                for w in (1, 2, 3, 4)
                for i in range(10)
            ]
        )
    for call_id, agent_id in (("c1", "a1"), ("c2", "a2")):
        await cap.queue.arrive(call_id)
        await cap.queue.agent_answers(agent_id, call_id)
    return cap


async def test_given_two_busy_agents_when_a_caller_waits_then_they_get_ql_a_from_the_history(
    make_capacity: MakeCapacity,
) -> None:
    cap = await busy_queue(make_capacity)
    await cap.queue.arrive("c3")
    cap.clock.advance(7)

    estimate = await cap.estimates.estimate("sales", call_id="c3")

    wait = estimate.wait
    assert (wait.position, wait.elapsed_s, wait.agents_staffed, wait.agents_free) == (1, 7.0, 2, 0)
    assert wait.aht_s is not None
    assert wait.aht_s == pytest.approx(110.0), "talk 100 s plus the queue's 10 s wrap-up"
    assert wait.patience_s is None, "nobody abandoned in the history"
    assert wait.estimate == predict_ql_a(QueueState(ahead=0, agents_staffed=2, aht_s=wait.aht_s))
    assert [p.predictor for p in wait.predictions] == [
        PredictorName.QLA,
        PredictorName.ASTERISK,
        PredictorName.HOL,
        PredictorName.LES,
    ]
    assert estimate.at == cap.clock.now() and estimate.call_id == "c3"
    assert estimate.by == estimate.at + timedelta(seconds=wait.estimate.p80_s)


async def test_without_a_call_or_position_the_estimate_is_for_a_caller_joining_now(
    make_capacity: MakeCapacity,
) -> None:
    cap = await busy_queue(make_capacity)
    for call_id in ("c3", "c4"):
        await cap.queue.arrive(call_id)

    joining = await cap.estimates.estimate("sales")
    fifth = await cap.estimates.estimate("sales", position=5)

    assert (joining.wait.position, joining.call_id) == (3, None)
    assert fifth.wait.position == 5 and fifth.wait.elapsed_s == 0.0
    assert joining.wait.estimate is not None and fifth.wait.estimate is not None
    assert fifth.wait.estimate.mean_s > joining.wait.estimate.mean_s


async def test_a_place_taken_earlier_waits_behind_the_callers_who_joined_before_it_and_the_callbacks_ahead(
    make_capacity: MakeCapacity,
) -> None:
    """A late callback's expected dial time (issue #7): QL-A for its place in line, not a new model."""
    cap = await busy_queue(make_capacity)
    await cap.queue.arrive("c3")
    cap.clock.advance(30)
    kept_since = cap.clock.now()  # a kept place taken between c3 and c4
    cap.clock.advance(30)
    await cap.queue.arrive("c4")

    kept = await cap.estimates.estimate_place("sales", joined_at=kept_since)
    behind_two = await cap.estimates.estimate_place("sales", joined_at=kept_since, callbacks_ahead=2)
    first = await cap.estimates.estimate_place("sales", joined_at=kept_since - timedelta(hours=1))

    assert (kept.wait.position, kept.call_id, kept.wait.elapsed_s) == (2, None, 0.0), "behind c3, not c4"
    assert behind_two.wait.position == 4
    assert first.wait.position == 1
    assert kept.wait.estimate == (await cap.estimates.estimate("sales", position=2)).wait.estimate
    assert kept.by is not None and behind_two.by is not None and kept.by < behind_two.by
    assert not cap.predictions.rows, "an estimate for a callback is not a caller's logged prediction"


async def test_a_free_agent_makes_the_next_caller_wait_nothing(make_capacity: MakeCapacity) -> None:
    cap = await make_capacity(agents=[agent("a1")], logged_in=["a1"])
    await cap.history([past_call(1, cap.clock.now() - WEEK)])

    estimate = await cap.estimates.estimate("sales")

    assert estimate.wait.agents_free == 1
    assert estimate.wait.estimate is not None and estimate.wait.estimate.mean_s == 0.0


@pytest.mark.parametrize("logged_in", [[], ["a1"]], ids=["logged out", "paused"])
async def test_with_no_agent_staffed_there_is_no_estimate_and_a_reason(
    make_capacity: MakeCapacity, logged_in: list[str]
) -> None:
    cap = await make_capacity(
        queues=[QueueRecord(name="sales", join_empty=True)], agents=[agent("a1")], logged_in=logged_in
    )
    if logged_in:
        await cap.queue.service.pause("a1", actor="test")
    await cap.history([past_call(1, cap.clock.now() - WEEK)])
    await cap.queue.arrive("c1")

    estimate = await cap.estimates.estimate("sales", call_id="c1")

    assert estimate.wait.reason is NoEstimateReason.NO_AGENTS
    assert estimate.wait.estimate is None and estimate.by is None
    assert "no agent" in estimate.wait.message


async def test_a_queue_with_no_history_waits_for_its_first_answered_call(make_capacity: MakeCapacity) -> None:
    cap = await busy_queue(make_capacity, history=False)
    await cap.queue.arrive("c3")

    before = await cap.estimates.estimate("sales", call_id="c3")
    cap.clock.advance(90)
    await cap.queue.caller_hangs_up("c1")
    await cap.learn_published()
    after = await cap.estimates.estimate("sales", call_id="c3")

    assert before.wait.reason is NoEstimateReason.NO_HISTORY and before.wait.estimate is None
    assert after.wait.reason is None and after.wait.estimate is not None
    assert after.wait.aht_s == pytest.approx(90.0 + 10.0)
    assert math.isfinite(after.wait.estimate.p90_s)


async def test_call_ended_is_learnt_once_however_often_it_is_delivered(make_capacity: MakeCapacity) -> None:
    cap = await busy_queue(make_capacity, history=False)
    cap.clock.advance(60)
    await cap.queue.caller_hangs_up("c1")

    await cap.learn_published()
    await cap.learn_published()

    inputs = cap.estimates.online("sales")
    assert inputs.observed == 1 and inputs.handle.calls == 1.0
    assert inputs.les_wait_s == 0.0
    assert cap.estimates.online("support").observed == 0


async def test_the_bus_consumer_group_feeds_the_service(make_capacity: MakeCapacity) -> None:
    cap = await busy_queue(make_capacity, history=False)
    stop = asyncio.get_running_loop().create_future()
    handled = asyncio.Event()

    async def handler(delivery: Delivery) -> None:
        await cap.estimates.handle(delivery)
        handled.set()

    consumer = asyncio.create_task(cap.queue.bus.consume(CONSUMER_GROUP, "test", handler, stop=stop))
    cap.clock.advance(30)

    await cap.queue.caller_hangs_up("c1")
    async with asyncio.timeout(5):
        while cap.estimates.online("sales").observed == 0:
            handled.clear()
            await handled.wait()

    stop.set_result(None)
    await consumer
    assert cap.estimates.online("sales").handle.mean_s == pytest.approx(40.0)


async def test_a_call_without_a_queue_or_an_unknown_queue_is_handled_without_error(
    make_capacity: MakeCapacity,
) -> None:
    cap = await make_capacity()
    base = {"occurred_at": cap.clock.now(), "entry_point": EntryPoint.ARI, "outcome": CallOutcome.ANSWERED}

    await cap.estimates.observe(CallEnded(event_id="x1", call_id="x1", queue=None, talk_s=10.0, **base))  # type: ignore[arg-type]
    await cap.estimates.observe(CallEnded(event_id="x2", call_id="x2", queue="gone", talk_s=10.0, **base))  # type: ignore[arg-type]

    assert cap.estimates.online("gone").handle.mean_s == 10.0, "no wrap-up known for an unknown queue"


# -- the prediction log ----------------------------------------------------------------------------------


async def test_every_caller_gets_one_logged_prediction_when_they_join(make_capacity: MakeCapacity) -> None:
    cap = await busy_queue(make_capacity)
    await cap.queue.arrive("c3")
    await cap.queue.arrive("c4")

    assert await cap.estimates.capture() == 2
    cap.clock.advance(1)
    assert await cap.estimates.capture() == 0
    await cap.queue.arrive("c5")
    assert await cap.estimates.capture() == 1

    rows = cap.predictions.rows
    assert {r.call_id for r in rows} == {"c3", "c4", "c5"}
    assert [r.predictor for r in rows if r.call_id == "c4"] == [
        PredictorName.QLA,
        PredictorName.ASTERISK,
        PredictorName.HOL,
        PredictorName.LES,
    ]
    assert not any(r.announced for r in rows), "logged, not told to anyone"
    assert all(math.isfinite(r.p90_s) for r in rows)


async def test_a_caller_without_an_estimate_is_logged_once_one_can_be_made(
    make_capacity: MakeCapacity,
) -> None:
    cap = await make_capacity(
        queues=[QueueRecord(name="sales", join_empty=True)], agents=[agent("a1"), agent("a2")]
    )
    await cap.history([past_call(1, cap.clock.now() - WEEK)])
    await cap.queue.arrive("c1")

    assert await cap.estimates.capture() == 0
    await cap.queue.service.login("a1", actor="test")
    await cap.queue.agent_answers("a1", "c1")
    await cap.queue.arrive("c2")
    cap.clock.advance(1)

    assert await cap.estimates.capture() == 1
    assert {r.call_id for r in cap.predictions.rows} == {"c2"}


async def test_an_announced_estimate_is_logged_with_ql_a_marked_as_heard(make_capacity: MakeCapacity) -> None:
    cap = await busy_queue(make_capacity)
    await cap.queue.arrive("c3")

    estimate = await cap.estimates.announce("sales", "c3")

    heard = [r for r in cap.predictions.rows if r.announced]
    assert len(heard) == 1 and heard[0].predictor is PredictorName.QLA
    assert estimate.wait.estimate is not None and heard[0].mean_s == estimate.wait.estimate.mean_s
    assert await cap.estimates.capture() == 0, "already logged for this caller"
    assert len(cap.predictions.rows) == 4


async def test_the_log_failing_does_not_stop_the_capture_of_other_queues(make_capacity: MakeCapacity) -> None:
    cap = await busy_queue(make_capacity)
    await cap.queue.arrive("c3")
    cap.predictions.fail_next = StoreUnavailableError("database down")

    assert await cap.estimates.capture() == 0
    assert await cap.estimates.capture() == 1, "tried again at the next tick"


async def test_the_accuracy_of_logged_predictions_is_measured_against_the_actual_waits(
    make_capacity: MakeCapacity,
) -> None:
    cap = await busy_queue(make_capacity)
    start = cap.clock.now()
    await cap.queue.arrive("c3")
    await cap.queue.arrive("c4")
    await cap.estimates.capture()
    cap.clock.advance(45)
    await cap.queue.caller_hangs_up("c1")
    await cap.queue.later(10)  # a1's wrap-up ends: a1 is offered c3
    await cap.queue.agent_answers("a1", "c3")
    await cap.queue.caller_hangs_up("c4")

    figures = {
        f.predictor: f for f in await cap.estimates.accuracy("sales", since=start, until=cap.clock.now())
    }

    qla = figures[PredictorName.QLA]
    assert (qla.scored, qla.unscored) == (1, 1), "c3 answered, c4 abandoned"
    assert qla.mean_actual_s == pytest.approx(55.0)
    c3 = next(r for r in cap.predictions.rows if r.call_id == "c3" and r.predictor is PredictorName.QLA)
    assert qla.bias_s == pytest.approx(c3.mean_s - 55.0)
    assert set(figures) == {PredictorName.QLA, PredictorName.ASTERISK, PredictorName.HOL, PredictorName.LES}


# -- bad requests -------------------------------------------------------------------------------------------


async def test_bad_estimate_requests_are_refused_clearly(make_capacity: MakeCapacity) -> None:
    cap = await busy_queue(make_capacity)

    with pytest.raises(NotFoundError, match="queue 'nope' not found"):
        await cap.estimates.estimate("nope")
    with pytest.raises(NotFoundError, match="not waiting"):
        await cap.estimates.estimate("sales", call_id="c1")
    with pytest.raises(ValidationError, match="not both"):
        await cap.estimates.estimate("sales", call_id="c1", position=2)
    with pytest.raises(ValidationError, match="position"):
        await cap.estimates.estimate("sales", position=0)
    with pytest.raises(ValidationError, match="after since"):
        await cap.estimates.accuracy("sales", since=cap.clock.now(), until=cap.clock.now())


async def test_a_process_without_live_boards_refuses_estimates_and_captures_nothing(
    make_capacity: MakeCapacity,
) -> None:
    cap = await make_capacity(live=False)

    with pytest.raises(DependencyError, match="live queue state"):
        await cap.estimates.estimate("sales")
    assert await cap.estimates.capture() == 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"history_weeks": 0},
        {"history_weeks": 53},
        {"memory_calls": 0.5},
        {"target_service_level": 1.0},
        {"smoothing": 0.0},
    ],
)
def test_bad_settings_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValidationError):
        EstimateSettings(**kwargs)  # type: ignore[arg-type]
