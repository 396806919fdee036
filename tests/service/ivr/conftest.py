"""The callback offer flow over a scripted channel and the real callback service on typed fakes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from callcenter.callbacks.service import CallbackService, CallbackSettings
from callcenter.capacity.estimate import WaitEstimate
from callcenter.capacity.predictors import PredictorName, WaitPrediction
from callcenter.capacity.service import Estimate
from callcenter.errors import DependencyError
from callcenter.model.callbacks import Callback
from ivr.flows.callback_offer import CallbackOfferFlow, FlowOutcome, FlowSettings, WaitingCall
from tests.fakes.bus import InMemoryEventBus
from tests.fakes.callbacks import FlatDayPlanner, InMemoryCallbackRepository
from tests.fakes.store import InMemoryQueueRepository
from tests.fakes.voice import ScriptedVoiceChannel
from tests.service.callbacks.conftest import MONDAY_10, SALES
from tests.service.queue.conftest import make_harness as make_harness  # the queue service's harness

if TYPE_CHECKING:
    from tests.conftest import FakeClock


@dataclass
class FakeEstimator:
    """``WaitEstimator``: the waits to announce, one per call (the last one repeats); or failing."""

    waits: list[tuple[int, float, float, float]] = field(default_factory=lambda: [(6, 400.0, 700.0, 800.0)])
    fail: bool = False
    asked: int = 0

    async def announce(self, queue: str, call_id: str) -> Estimate:
        self.asked += 1
        if self.fail:
            raise DependencyError("no live board")
        position, mean, p80, p90 = self.waits[min(self.asked, len(self.waits)) - 1]
        prediction = WaitPrediction(predictor=PredictorName.QLA, mean_s=mean, p80_s=p80, p90_s=p90)
        wait = WaitEstimate(
            position=position,
            elapsed_s=30.0,
            agents_staffed=3,
            agents_free=0,
            aht_s=240.0,
            patience_s=300.0,
            estimate=prediction,
        )
        return Estimate(queue=queue, at=datetime.now(UTC), call_id=call_id, wait=wait)


@dataclass
class Offer:
    service: CallbackService
    repo: InMemoryCallbackRepository
    planner: FlatDayPlanner
    estimator: FakeEstimator
    queues: InMemoryQueueRepository
    clock: FakeClock
    accepted: list[Callback] = field(default_factory=list)

    def flow(
        self,
        channel: ScriptedVoiceChannel,
        *,
        caller: str = "+14155550100",
        settings: FlowSettings | None = None,
    ) -> CallbackOfferFlow:
        call = WaitingCall(
            queue="sales",
            call_id="call-1",
            caller=caller,
            enqueued_at=self.clock.now() - timedelta(minutes=3),
            zone=UTC,
        )

        async def accepted(callback: Callback) -> None:
            self.accepted.append(callback)

        return CallbackOfferFlow(channel, self.service, call, accepted=accepted, settings=settings)

    async def run_once(self, keys: list[str], **kw: object) -> tuple[FlowOutcome, ScriptedVoiceChannel]:
        channel = ScriptedVoiceChannel(keys, **kw)  # type: ignore[arg-type]
        return await self.flow(channel).offer_once(), channel


@pytest.fixture
async def offer(clock: FakeClock) -> Offer:
    clock.set(MONDAY_10)
    queues = InMemoryQueueRepository()
    await queues.put(SALES)
    repo, estimator = InMemoryCallbackRepository(), FakeEstimator()
    planner = FlatDayPlanner(queues)
    counter = iter(range(1, 1000))
    service = CallbackService(
        repo,
        planner,
        queues,
        InMemoryEventBus(),
        clock,
        estimates=estimator,
        settings=CallbackSettings(),
        new_id=lambda: f"cb-{next(counter)}",
    )
    return Offer(service, repo, planner, estimator, queues, clock)
