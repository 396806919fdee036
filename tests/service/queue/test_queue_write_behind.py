"""Write-behind: handlers do not wait for the store; the writer keeps board order; nothing is lost."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from callcenter.model.events import AgentStateChanged, CallEnded, DomainEvent
from callcenter.model.phone import parse_phone
from callcenter.model.records import CallRecord
from callcenter.model.vocabulary import AgentState, CallOutcome
from callcenter.queue.detection import AgentRinging, CallAnswered, CallArrived, CallerHungUp
from tests.service.queue.conftest import CALLER, MakeHarness, agent

A = AgentState


async def test_a_handler_returns_while_the_store_is_slow_and_the_writer_catches_up_in_order(
    make_harness: MakeHarness,
) -> None:
    h = await make_harness(agents=[agent("alice")], logged_in=["alice"])
    upsert, release = h.store.calls.upsert, asyncio.Event()

    async def slow_upsert(call: CallRecord) -> None:
        await release.wait()
        await upsert(call)

    h.store.calls.upsert = slow_upsert  # type: ignore[method-assign]
    async with asyncio.timeout(1):
        h.control.live.add("c1")
        await h.service.handle(
            CallArrived(
                call_id="c1",
                channel_id="c1",
                linkedid="c1",
                caller=parse_phone(CALLER),
                queue="sales",
                at=h.clock.now(),
            )
        )
        await h.service.handle(CallAnswered(call_id="c1", agent_id="alice", at=h.clock.now()))
        h.control.gone.add("c1")
        await h.service.handle(CallerHungUp(call_id="c1", at=h.clock.now()))

    # The telephony went ahead; nothing is stored or published yet.
    assert h.rung() == ["PJSIP/alice"]
    assert "c1" not in h.store.calls.calls
    assert h.ended() == []

    release.set()
    await h.service.flush()

    assert h.outcome() is CallOutcome.ANSWERED
    assert await h.timeline() == ["arrived", "queued", "agent_offered", "answered", "caller_hung_up", "ended"]
    assert [e.call_id for e in h.ended()] == ["c1"]
    assert h.states("alice") == [A.RINGING, A.BUSY, A.WRAP_UP]
    assert h.state("alice") is A.WRAP_UP


async def test_close_drains_what_is_queued_and_call_ended_follows_its_stored_record(
    make_harness: MakeHarness,
) -> None:
    h = await make_harness(agents=[agent("alice")], logged_in=["alice"])
    publish = h.bus.publish
    seen: list[tuple[str, CallOutcome | None]] = []

    async def checking_publish(event: DomainEvent) -> str:
        if isinstance(event, CallEnded):
            stored = h.store.calls.calls.get(event.call_id)
            seen.append((event.call_id, stored.outcome if stored is not None else None))
        return await publish(event)

    h.bus.publish = checking_publish  # type: ignore[method-assign]
    await h.arrive("c1")
    await h.arrive("c2")
    # Fed as the link would, no flush: the steps are only queued.
    await h.service.handle(CallerHungUp(call_id="c2", at=h.clock.now()))
    await h.service.handle(CallerHungUp(call_id="c1", at=h.clock.now()))

    await h.service.close(grace_s=1)

    assert seen == [("c2", CallOutcome.SHORT_ABANDON), ("c1", CallOutcome.SHORT_ABANDON)]
    assert h.outcome("c1") is CallOutcome.SHORT_ABANDON and h.outcome("c2") is CallOutcome.SHORT_ABANDON
    assert await h.timeline("c2") == ["arrived", "queued", "caller_hung_up", "ended"]
    changes = [e for e in h.bus.published if isinstance(e, AgentStateChanged)]
    assert [e.state for e in changes] == [A.RINGING, A.AVAILABLE]


async def test_the_ring_backstop_waits_while_the_link_is_behind(make_harness: MakeHarness) -> None:
    h = await make_harness(agents=[agent("alice")], logged_in=["alice"])
    await h.arrive()
    leg = h.leg("alice")
    offered = h.clock.now()

    # The link is 29 s behind: the ring timeout (15 s) and grace (5 s) have passed on the wall clock,
    # but the alerting (and the answer after it) were received in time and still wait in the link.
    h.clock.advance(30)
    await h.service.handle(AgentRinging(call_id="c1", agent_id="alice", at=offered + timedelta(seconds=1)))
    await h.service.tick()
    await h.service.flush()

    assert "hangup" not in h.control.names()
    await h.service.handle(CallAnswered(call_id="c1", agent_id="alice", at=offered + timedelta(seconds=2)))
    await h.service.flush()

    assert h.state("alice") is A.BUSY
    assert [args[1] for args in h.control.of("add_to_bridge")][-2:] == [leg, "c1"]
    assert "hangup" not in h.control.names()


async def test_the_ring_backstop_still_ends_a_lost_leg_once_the_link_caught_up(
    make_harness: MakeHarness,
) -> None:
    h = await make_harness(agents=[agent("alice")], logged_in=["alice"])
    await h.arrive()
    leg = h.leg("alice")
    h.clock.advance(30)
    await h.service.handle(
        AgentRinging(call_id="c1", agent_id="alice", at=h.clock.now() - timedelta(seconds=29))
    )
    await h.service.flush()
    assert "hangup" not in h.control.names()

    # A fact received just now: the link is not behind any more, so the end of the leg was lost.
    await h.caller_hangs_up("other")
    await h.later(1)

    assert h.control.of("hangup") == [(leg,)]
    assert h.states("alice")[:2] == [A.RINGING, A.AVAILABLE]
