"""The ``callback-offer`` FastAGI script against the scripted AGI peer: an ``app_queue`` caller who
pressed the exit key picks a later time, or goes back to the queue."""

from __future__ import annotations

from collections import deque
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest

from callcenter.agi.offers import CallbackOfferScript
from callcenter.asterisk_names import AGI_CALLBACK_OFFER
from callcenter.callbacks.service import CallbackService
from callcenter.capacity.estimate import QueueSnapshot
from callcenter.capacity.service import Estimate
from callcenter.model.vocabulary import CallbackKind, CallbackState
from callcenter.simulator.agi_peer import AgiCallModel, AgiPeer
from tests.fakes.bus import InMemoryEventBus
from tests.fakes.callbacks import FlatDayPlanner, InMemoryCallbackRepository
from tests.fakes.store import InMemoryQueueRepository
from tests.integration.agi.conftest import serve_peers
from tests.service.callbacks.conftest import MONDAY_10, SALES
from tests.service.ivr.conftest import FakeEstimator

if TYPE_CHECKING:
    from tests.conftest import FakeClock

pytestmark = [pytest.mark.integration, pytest.mark.timeout(30)]


class SnapshotEstimates(FakeEstimator):
    """``estimate_snapshot`` answering the fake's waits, remembering the snapshot it was given."""

    snapshots: list[QueueSnapshot]

    async def estimate_snapshot(
        self, queue: str, snapshot: QueueSnapshot, *, call_id: str | None = None
    ) -> Estimate:
        self.snapshots = [*getattr(self, "snapshots", []), snapshot]
        return await self.announce(queue, call_id or "")


def _peer(digits: str, **variables: str) -> AgiPeer:
    values = {
        "CC_QUEUE": "sales",
        "CALLERID(num)": "+14155550100",
        "CC_EXIT_POSITION": "4",
        "CC_QUEUE_JOINED_AT": f"{MONDAY_10.timestamp() - 180:.3f}",
        "CHANNEL(linkedid)": "1763900000.42",
        "QUEUE_MEMBER(sales,logged)": "3",
        "QUEUE_MEMBER(sales,free)": "0",
    }
    values.update(variables)
    return AgiPeer(AGI_CALLBACK_OFFER, model=AgiCallModel(variables=values, digits=deque(digits)))


async def _service(clock: FakeClock) -> tuple[CallbackService, InMemoryCallbackRepository]:
    clock.set(MONDAY_10)
    queues = InMemoryQueueRepository()
    await queues.put(SALES)
    repo = InMemoryCallbackRepository()
    service = CallbackService(repo, FlatDayPlanner(queues), queues, InMemoryEventBus(), clock)
    return service, repo


async def test_caller_who_left_app_queue_by_key_books_a_later_time_and_the_dialplan_is_told(
    clock: FakeClock,
) -> None:
    service, repo = await _service(clock)
    estimates = SnapshotEstimates()
    peer = _peer("211")
    await serve_peers({AGI_CALLBACK_OFFER: CallbackOfferScript(service, estimates, clock)}, peer)

    assert peer.model.variables.get("CC_CALLBACK") == "accepted"
    (callback,) = repo.callbacks.values()
    assert (callback.kind, callback.state, callback.number) == (
        CallbackKind.SCHEDULED,
        CallbackState.SCHEDULED,
        "+14155550100",
    )
    assert callback.window.start == datetime(2026, 11, 23, 10, 15, tzinfo=UTC)
    assert callback.call_id == "1763900000.42"
    (snapshot,) = estimates.snapshots
    assert (snapshot.position, snapshot.agents_staffed, snapshot.agents_free) == (4, 3, 0)
    streamed = [c[2] for c in peer.commands if c[:2] == ["STREAM", "FILE"]]
    assert "callcenter/offer-keep-place" not in streamed  # no live line on app_queue: no kept place
    assert "callcenter/goodbye" in streamed


async def test_caller_who_answers_nothing_goes_back_to_the_queue(clock: FakeClock) -> None:
    service, repo = await _service(clock)
    peer = _peer("")
    await serve_peers({AGI_CALLBACK_OFFER: CallbackOfferScript(service, SnapshotEstimates(), clock)}, peer)
    assert "CC_CALLBACK" not in peer.model.variables
    assert repo.callbacks == {}


async def test_a_call_without_a_queue_goes_back_to_the_dialplan_untouched(clock: FakeClock) -> None:
    service, repo = await _service(clock)
    peer = _peer("211", CC_QUEUE="")
    await serve_peers({AGI_CALLBACK_OFFER: CallbackOfferScript(service, SnapshotEstimates(), clock)}, peer)
    assert repo.callbacks == {} and "CC_CALLBACK" not in peer.model.variables


async def test_a_hang_up_in_the_menu_stores_nothing(clock: FakeClock) -> None:
    service, repo = await _service(clock)
    peer = _peer("2")
    peer.model.hangup_on = "SAY NUMBER"
    await serve_peers({AGI_CALLBACK_OFFER: CallbackOfferScript(service, SnapshotEstimates(), clock)}, peer)
    assert repo.callbacks == {}
