"""The worklist feeds' wake-up: an event wakes the feeds of its queue's agents only, one without a
queue wakes them all, other events wake none, and a change between two waits shows in the version
(service)."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime

from callcenter.api.agent import WorklistSignal
from callcenter.model.events import (
    CallbackClaimChanged,
    CallbackStateChanged,
    CallEnded,
    DomainEvent,
    SmsStatusChanged,
)
from callcenter.model.vocabulary import ActorKind, CallbackKind, CallbackState, CallOutcome, EntryPoint

T0 = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
SALES = frozenset({"sales"})


def _state(queue: str) -> CallbackStateChanged:
    return CallbackStateChanged(
        event_id=f"callback:cb:{queue}",
        occurred_at=T0,
        callback_id="cb",
        queue=queue,
        number="+14155550100",
        kind=CallbackKind.KEEP_PLACE,
        state=CallbackState.SCHEDULED,
        window_start=T0,
        window_end=T0,
        actor_kind=ActorKind.SYSTEM,
    )


async def _wakes(signal: WorklistSignal, event: DomainEvent) -> bool:
    """Whether ``event`` wakes a feed of the sales queue waiting on ``signal``."""
    waiter = asyncio.create_task(signal.wait(SALES, 5.0))
    await asyncio.sleep(0)  # the waiter registers (it runs up to its first await)
    assert signal.waiting == 1
    await signal.on_event(event)
    await asyncio.sleep(0)
    woken = waiter.done() and waiter.result()
    waiter.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await waiter
    return woken


async def test_only_the_events_of_the_agents_queues_wake_a_feed() -> None:
    signal = WorklistSignal()
    assert await _wakes(signal, _state("sales"))
    assert not await _wakes(signal, _state("support"))
    claim = CallbackClaimChanged(
        event_id="c", occurred_at=T0, callback_id="cb", queue="sales", agent_id="bob"
    )
    assert await _wakes(signal, claim)
    text = SmsStatusChanged(event_id="sms:m1:delivered", occurred_at=T0, message_id="m1", status="delivered")
    assert await _wakes(signal, text), "no queue: every feed reads its list again"
    call = CallEnded(
        event_id="c1", occurred_at=T0, call_id="c1", outcome=CallOutcome.ANSWERED, entry_point=EntryPoint.ARI
    )
    assert not await _wakes(signal, call), "not a worklist event"
    assert signal.waiting == 0


async def test_a_change_between_two_waits_shows_in_the_version() -> None:
    signal = WorklistSignal()
    seen = signal.version(SALES)
    signal.changed("support")
    assert signal.version(SALES) == seen
    signal.changed(None)
    signal.changed("sales")
    assert signal.version(SALES) == seen + 2
    assert not await signal.wait(SALES, 0.01), "nothing new: the wait times out"
