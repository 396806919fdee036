"""The estimate service publishes the wait it announces, and the live board scores it (service)."""

from __future__ import annotations

from datetime import timedelta

from callcenter.model.events import CallLeftQueue, DomainEvent, WaitAnnounced
from callcenter.stats.definitions import StatsConfig
from callcenter.stats.live import LiveStats
from tests.service.capacity.conftest import MakeCapacity
from tests.service.capacity.test_estimate_service import busy_queue


async def test_the_announced_wait_is_published_as_logged_and_scored_at_the_answer(
    make_capacity: MakeCapacity,
) -> None:
    cap = await busy_queue(make_capacity)
    published: list[DomainEvent] = []

    async def publish(event: DomainEvent) -> str:
        published.append(event)
        return "1-0"

    cap.estimates.publish = publish
    await cap.queue.arrive("c3")
    await cap.estimates.capture()  # logged, not announced: nothing published

    estimate = await cap.estimates.announce("sales", "c3")

    heard = [r for r in cap.predictions.rows if r.announced]
    [event] = published
    assert isinstance(event, WaitAnnounced)
    assert (event.call_id, event.queue, event.predictor) == ("c3", "sales", heard[0].predictor.value)
    assert (event.mean_s, event.p80_s, event.occurred_at) == (heard[0].mean_s, heard[0].p80_s, heard[0].at)
    assert estimate.wait.estimate is not None
    live = LiveStats(config=StatsConfig())
    live.apply(event)
    live.apply(
        CallLeftQueue(
            event_id="left:c3",
            occurred_at=event.occurred_at + timedelta(seconds=30),
            call_id="c3",
            queue="sales",
            agent_id="a1",
        )
    )
    figures = live.snapshot(cap.clock.now()).overall
    assert figures["wait_estimates_scored"] == 1
    assert figures["wait_estimate_bias_s"] == round(event.mean_s - 30.0, 1)


async def test_a_failing_publisher_does_not_fail_the_announcement(make_capacity: MakeCapacity) -> None:
    cap = await busy_queue(make_capacity)

    async def broken(event: DomainEvent) -> str:
        raise ConnectionError("redis is down")

    cap.estimates.publish = broken
    await cap.queue.arrive("c3")

    await cap.estimates.announce("sales", "c3")

    assert [r.call_id for r in cap.predictions.rows if r.announced] == ["c3"]
