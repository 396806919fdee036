"""The callback service on typed fakes: callback store, planner, queue settings, bus, live board, clock."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from callcenter.callbacks.service import CallbackService, CallbackSettings
from callcenter.errors import NotFoundError
from callcenter.model.phone import parse_phone
from callcenter.model.records import QueueRecord
from callcenter.model.vocabulary import AgentState
from callcenter.queue.state import STAFFED_STATES, AgentLive, QueueStanding, QueueView, WaitingCaller
from tests.fakes.bus import InMemoryEventBus
from tests.fakes.callbacks import FlatDayPlanner, InMemoryCallbackRepository
from tests.fakes.store import InMemoryQueueRepository

if TYPE_CHECKING:
    from tests.conftest import FakeClock

#: Monday 23 November 2026, 10:00 UTC: the queue is open 09:00-17:00 on weekdays.
MONDAY_10 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
SALES = QueueRecord(
    name="sales",
    service_level_s=20,
    wrap_up_s=30,
    business_hours={d: ("09:00-17:00",) for d in ("mon", "tue", "wed", "thu", "fri")},
)


@dataclass
class LiveBoard:
    """``LiveQueueSource`` with a board set by the test."""

    queues: InMemoryQueueRepository
    clock: FakeClock
    waiting: list[WaitingCaller] = field(default_factory=list)
    agents: list[AgentLive] = field(default_factory=list)

    async def live(self, queue: str) -> _Live:
        record = await self.queues.get(queue)
        if record is None:  # pragma: no cover - get raises
            raise NotFoundError(queue)
        return _Live(
            queue=record,
            at=self.clock.now(),
            view=QueueView(queue=queue, waiting=tuple(self.waiting), agents=tuple(self.agents)),
        )

    async def standing(
        self, queue: str, *, call_id: str | None = None, joined_at: datetime | None = None
    ) -> QueueStanding:
        """The counts of the same board, as ``QueueService.standing`` gives them."""
        live = await self.live(queue)
        waiting, agents = live.view.waiting, live.view.agents
        asked = next((w for w in waiting if w.call_id == call_id), None)
        return QueueStanding(
            queue=live.queue,
            at=live.at,
            waiting=len(waiting),
            hol_wait_s=waiting[0].wait_s if waiting else 0.0,
            staffed=sum(1 for a in agents if a.state in STAFFED_STATES),
            free=sum(1 for a in agents if a.state is AgentState.AVAILABLE),
            position=asked.position if asked is not None else None,
            elapsed_s=asked.wait_s if asked is not None else 0.0,
            ahead=sum(1 for w in waiting if joined_at is not None and w.enqueued_at < joined_at),
        )

    def caller(self, call_id: str, enqueued_s_ago: float, *, ringing: str | None = None) -> None:
        now = self.clock.now()
        self.waiting.append(
            WaitingCaller(
                call_id=call_id,
                caller=parse_phone("+14155550999"),
                caller_name="",
                queue="sales",
                enqueued_at=now - timedelta(seconds=enqueued_s_ago),
                wait_s=enqueued_s_ago,
                position=len(self.waiting) + 1,
                ringing_agent=ringing,
            )
        )

    def agent(self, agent_id: str, state: AgentState, since_s_ago: float = 60.0) -> None:
        self.agents.append(
            AgentLive(
                agent_id=agent_id,
                state=state,
                since=self.clock.now() - timedelta(seconds=since_s_ago),
                queues=("sales",),
            )
        )


@dataclass(frozen=True)
class _Live:
    queue: QueueRecord
    at: datetime
    view: QueueView


@dataclass
class Callbacks:
    service: CallbackService
    repo: InMemoryCallbackRepository
    planner: FlatDayPlanner
    queues: InMemoryQueueRepository
    bus: InMemoryEventBus
    board: LiveBoard
    clock: FakeClock


@pytest.fixture
async def callbacks(clock: FakeClock) -> Callbacks:
    clock.set(MONDAY_10)
    queues = InMemoryQueueRepository()
    await queues.put(SALES)
    repo = InMemoryCallbackRepository()
    planner = FlatDayPlanner(queues)
    bus = InMemoryEventBus()
    board = LiveBoard(queues, clock)
    counter = iter(range(1, 10_000))
    service = CallbackService(
        repo,
        planner,
        queues,
        bus,
        clock,
        live=board,
        settings=CallbackSettings(),
        new_id=lambda: f"cb-{next(counter)}",
    )
    return Callbacks(service, repo, planner, queues, bus, board, clock)
