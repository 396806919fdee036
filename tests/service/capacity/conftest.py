"""The estimate service over a real queue service, both on typed fakes: store, bus, telephony, clock."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from callcenter.bus import Delivery
from callcenter.capacity.ports import LiveQueueSource
from callcenter.capacity.service import EstimateService, EstimateSettings
from callcenter.model.records import AgentRecord, CallRecord, QueueRecord
from callcenter.model.vocabulary import CallOutcome, EntryPoint
from callcenter.queue.service import QueueService
from tests.fakes.bus import InMemoryEventBus
from tests.fakes.capacity import InMemoryPredictionLog, InMemoryScheduleRepository
from tests.fakes.store import InMemoryStore
from tests.fakes.telephony import RecordingCallControl
from tests.service.queue.conftest import Harness

if TYPE_CHECKING:
    from tests.conftest import FakeClock


@dataclass
class Capacity:
    """The estimate service under test, the queue service whose board it reads, and their fakes."""

    estimates: EstimateService
    queue: Harness
    schedules: InMemoryScheduleRepository
    predictions: InMemoryPredictionLog

    @property
    def store(self) -> InMemoryStore:
        return self.queue.store

    @property
    def clock(self) -> FakeClock:
        return self.queue.clock

    async def learn_published(self) -> None:
        """Hand every event the queue published so far to the estimate service, as the bus would."""
        for event in self.queue.bus.published:
            await self.estimates.handle(Delivery(message_id="1-0", event=event, deliveries=1))

    async def history(self, records: Sequence[CallRecord]) -> None:
        for record in records:
            await self.store.calls.upsert(record)


MakeCapacity = Callable[..., Awaitable[Capacity]]


def agent(agent_id: str, *queues: str) -> AgentRecord:
    return AgentRecord(
        id=agent_id, name=agent_id.title(), endpoint=f"PJSIP/{agent_id}", queues=queues or ("sales",)
    )


def past_call(
    number: int,
    arrived_at: datetime,
    *,
    outcome: CallOutcome = CallOutcome.ANSWERED,
    wait_s: float = 20.0,
    talk_s: float = 100.0,
    queue: str = "sales",
) -> CallRecord:
    """A decided call of the history."""
    answered = outcome is CallOutcome.ANSWERED
    return CallRecord(
        id=f"h{number}",
        channel_id=f"h{number}",
        linkedid=f"h{number}",
        entry_point=EntryPoint.ARI,
        queue=queue,
        arrived_at=arrived_at,
        queued_at=arrived_at,
        answered_at=arrived_at + timedelta(seconds=wait_s) if answered else None,
        ended_at=arrived_at + timedelta(seconds=wait_s + (talk_s if answered else 0.0)),
        wait_s=wait_s,
        talk_s=talk_s if answered else None,
        outcome=outcome,
    )


@pytest.fixture
def make_capacity(clock: FakeClock) -> MakeCapacity:
    """A started queue service with ``queues`` and ``agents`` (``logged_in`` log in), and the estimate
    service reading it; ``live=False`` leaves the estimate service without a live board (the CLI's)."""

    async def make(
        *,
        queues: Sequence[QueueRecord] = (QueueRecord(name="sales", max_wait_s=600, wrap_up_s=10),),
        agents: Sequence[AgentRecord] = (),
        logged_in: Sequence[str] = (),
        settings: EstimateSettings | None = None,
        live: bool = True,
    ) -> Capacity:
        store = InMemoryStore.create()
        for queue in queues:
            await store.queues.put(queue)
        for record in agents:
            await store.agents.add(record)
        control, bus = RecordingCallControl(), InMemoryEventBus()
        service = QueueService(control, store.calls, store.agents, store.queues, bus, clock)
        await service.start()
        for agent_id in logged_in:
            await service.login(agent_id, actor="test")
        control.clear()
        bus.published.clear()
        board: LiveQueueSource = service  # QueueService is the port as it is: no adapter
        schedules, predictions = InMemoryScheduleRepository(store.agents), InMemoryPredictionLog()
        estimates = EstimateService(
            store.queues,
            store.calls,
            schedules,
            predictions,
            clock,
            live=board if live else None,
            settings=settings,
        )
        return Capacity(estimates, Harness(service, control, store, bus, clock), schedules, predictions)

    return make
