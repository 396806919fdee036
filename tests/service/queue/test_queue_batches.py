"""The writer's batches and each call's lane: one transaction per batch, one call's wait holds up no other."""

from __future__ import annotations

import asyncio

from callcenter.errors import StoreUnavailableError, ValidationError
from callcenter.model.events import AgentStateChanged, CallEnded, DomainEvent
from callcenter.model.phone import parse_phone
from callcenter.model.vocabulary import AgentState, CallOutcome
from callcenter.queue.detection import CallAnswered, CallArrived, CallerHungUp
from callcenter.queue.ports import StepWrite
from tests.fakes.store import InMemoryStepStore, InMemoryStore
from tests.service.queue.conftest import CALLER, MakeHarness, agent

A = AgentState


def arrived(call_id: str, at: object) -> CallArrived:
    return CallArrived(
        call_id=call_id,
        channel_id=call_id,
        linkedid=call_id,
        caller=parse_phone(CALLER),
        queue="sales",
        at=at,  # type: ignore[arg-type]
    )


async def test_steps_queued_while_the_store_is_busy_are_stored_in_one_batch_in_board_order(
    make_harness: MakeHarness,
) -> None:
    store = InMemoryStore.create()
    steps = InMemoryStepStore(store.calls, store.agents)
    h = await make_harness(agents=[agent("alice")], logged_in=["alice"], store=store, steps=steps)
    save, release = steps.save_steps, asyncio.Event()

    async def busy_then_save(batch: list[StepWrite]) -> frozenset[str]:
        await release.wait()
        return await save(batch)

    steps.save_steps = busy_then_save  # type: ignore[assignment,method-assign]
    steps.batches.clear()
    h.control.live.add("c1")
    await h.service.handle(arrived("c1", h.clock.now()))
    await h.service.handle(CallAnswered(call_id="c1", agent_id="alice", at=h.clock.now()))
    h.control.gone.add("c1")
    await h.service.handle(CallerHungUp(call_id="c1", at=h.clock.now()))
    assert h.ended() == []

    release.set()
    await h.service.flush()

    # The first step went alone (the writer took it at once); the rest waited and went together.
    assert len(steps.batches) == 2 and steps.batches[1] > 1
    assert h.outcome() is CallOutcome.ANSWERED
    assert await h.timeline() == ["arrived", "queued", "agent_offered", "answered", "caller_hung_up", "ended"]
    assert h.states("alice") == [A.RINGING, A.BUSY, A.WRAP_UP]
    assert h.state("alice") is A.WRAP_UP
    assert [e.call_id for e in h.ended()] == ["c1"]


async def test_call_ended_is_published_only_after_the_batch_with_its_record_is_stored(
    make_harness: MakeHarness,
) -> None:
    store = InMemoryStore.create()
    steps = InMemoryStepStore(store.calls, store.agents)
    h = await make_harness(agents=[agent("alice")], logged_in=["alice"], store=store, steps=steps)
    seen: list[CallOutcome | None] = []
    publish_many = h.bus.publish_many

    async def checking(events: list[DomainEvent]) -> list[str]:
        for event in events:
            if isinstance(event, CallEnded):
                stored = store.calls.calls.get(event.call_id)
                seen.append(stored.outcome if stored is not None else None)
        return await publish_many(events)

    h.bus.publish_many = checking  # type: ignore[assignment,method-assign]
    await h.arrive()
    await h.caller_hangs_up()
    await h.service.flush()

    assert seen == [CallOutcome.SHORT_ABANDON]


async def test_a_batch_the_store_refuses_is_stored_step_by_step_and_nothing_is_lost_or_doubled(
    make_harness: MakeHarness,
) -> None:
    store = InMemoryStore.create()
    steps = InMemoryStepStore(store.calls, store.agents)
    h = await make_harness(agents=[agent("alice")], logged_in=["alice"], store=store, steps=steps)
    steps.fail_next(ValidationError("a row the store refused: nothing was committed"))

    await h.arrive()
    await h.caller_hangs_up()
    await h.service.flush()

    assert h.outcome() is CallOutcome.SHORT_ABANDON
    assert await h.timeline() == ["arrived", "queued", "agent_offered", "caller_hung_up", "ended"]
    assert [e.call_id for e in h.ended()] == ["c1"]
    changes = [e.state for e in h.bus.published if isinstance(e, AgentStateChanged)]
    assert changes == [A.RINGING, A.AVAILABLE]


async def test_a_call_waiting_on_asterisk_holds_up_no_other_call(make_harness: MakeHarness) -> None:
    """Facts are submitted as the link reads them; only the slow call's own facts wait for it."""
    h = await make_harness(agents=[agent("alice")], logged_in=["alice"])
    await h.arrive("c1")
    answering, release = asyncio.Event(), asyncio.Event()

    async def slow_answer() -> None:
        answering.set()
        await release.wait()

    h.control.during("answer", slow_answer)
    h.service.submit(arrived("c2", h.clock.now()))
    await asyncio.wait_for(answering.wait(), 1)
    h.control.gone.add("c1")
    h.service.submit(CallerHungUp(call_id="c1", at=h.clock.now()))
    h.service.submit(CallerHungUp(call_id="c2", at=h.clock.now()))  # waits behind c2's answer

    async def c1_decided() -> None:
        while h.outcome("c1") is None:
            await h.service.flush()
            await asyncio.sleep(0)

    await asyncio.wait_for(c1_decided(), 1)
    assert h.outcome("c1") is CallOutcome.SHORT_ABANDON
    assert h.outcome("c2") is None

    release.set()
    await h.service.close(grace_s=1)
    assert h.outcome("c2") is not None
    assert [e.call_id for e in h.ended()] == ["c1", "c2"]


async def test_while_the_store_does_not_answer_records_are_held_and_call_ended_waits_for_its_record(
    make_harness: MakeHarness,
) -> None:
    store = InMemoryStore.create()
    steps = InMemoryStepStore(store.calls, store.agents)
    h = await make_harness(agents=[agent("alice")], logged_in=["alice"], store=store, steps=steps)
    for _ in range(10):
        steps.fail_next(StoreUnavailableError("no answer within 30 s (the commit may have happened)"))

    await h.arrive()
    await h.caller_hangs_up()
    await h.service.flush()

    assert "c1" not in store.calls.calls
    assert h.ended() == []
    steps.recover()

    await h.later(1)  # the ticker retries what is held

    assert h.outcome() is CallOutcome.SHORT_ABANDON
    assert [e.call_id for e in h.ended()] == ["c1"]
    assert h.state("alice") is A.AVAILABLE
