"""The queue service over typed fakes: recorded telephony, in-memory store and bus, a fake clock."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from callcenter.model.events import AgentStateChanged, CallEnded
from callcenter.model.phone import parse_phone
from callcenter.model.records import AgentRecord, CallRecord, QueueRecord
from callcenter.model.vocabulary import AgentState, CallOutcome
from callcenter.queue.detection import (
    AgentHungUp,
    AgentLeg,
    AgentNoAnswer,
    AgentRinging,
    CallAnswered,
    CallArrived,
    CallerHungUp,
    MessagePlayed,
    NoAnswerReason,
)
from callcenter.queue.service import QueueService
from tests.fakes.bus import InMemoryEventBus
from tests.fakes.store import InMemoryStepStore, InMemoryStore
from tests.fakes.telephony import RecordingCallControl

if TYPE_CHECKING:
    from tests.conftest import FakeClock

CALLER = "+14155550100"


@dataclass
class Harness:
    """The service under test and every fake behind it."""

    service: QueueService
    control: RecordingCallControl
    store: InMemoryStore
    bus: InMemoryEventBus
    clock: FakeClock

    # -- facts as the ARI link would feed them ---------------------------------------------------

    async def arrive(self, call_id: str = "c1", *, queue: str | None = "sales", caller: str = CALLER) -> None:
        self.control.live.add(call_id)
        await self.service.handle(
            CallArrived(
                call_id=call_id,
                channel_id=call_id,
                linkedid=call_id,
                caller=parse_phone(caller),
                caller_name="Caller",
                dialled="3000",
                queue=queue,
                at=self.clock.now(),
            )
        )
        await self.service.flush()

    async def caller_hangs_up(self, call_id: str = "c1") -> None:
        self.control.gone.add(call_id)
        self.control.live.discard(call_id)
        await self.service.handle(CallerHungUp(call_id=call_id, at=self.clock.now()))
        await self.service.flush()

    async def message_played(self, call_id: str = "c1", *, failed: bool = False) -> None:
        """Asterisk's ``PlaybackFinished`` of what was played to the caller (``failed``: a missing file)."""
        await self.service.handle(MessagePlayed(call_id=call_id, at=self.clock.now(), failed=failed))
        await self.service.flush()

    async def agent_rings(self, agent_id: str, call_id: str = "c1") -> None:
        """The agent's phone alerts (``Dial`` RINGING or ``ChannelStateChange`` Ringing)."""
        await self.service.handle(AgentRinging(call_id=call_id, agent_id=agent_id, at=self.clock.now()))
        await self.service.flush()

    async def agent_answers(self, agent_id: str, call_id: str = "c1") -> None:
        await self.service.handle(CallAnswered(call_id=call_id, agent_id=agent_id, at=self.clock.now()))
        await self.service.flush()

    async def agent_does_not_answer(
        self, agent_id: str, call_id: str = "c1", reason: NoAnswerReason = NoAnswerReason.NO_ANSWER
    ) -> None:
        self._leg_gone(agent_id, call_id)
        await self.service.handle(
            AgentNoAnswer(call_id=call_id, agent_id=agent_id, at=self.clock.now(), reason=reason)
        )
        await self.service.flush()

    async def agent_hangs_up(self, agent_id: str, call_id: str = "c1") -> None:
        self._leg_gone(agent_id, call_id)
        await self.service.handle(AgentHungUp(call_id=call_id, agent_id=agent_id, at=self.clock.now()))
        await self.service.flush()

    def _leg_gone(self, agent_id: str, call_id: str) -> None:
        for channel, leg in self.service.agent_legs.items():
            if leg == AgentLeg(call_id=call_id, agent_id=agent_id):
                self.control.gone.add(channel)
                self.control.live.discard(channel)

    async def later(self, seconds: float) -> None:
        """Time passes; the composition root ticks every second."""
        whole = int(seconds)
        for _ in range(whole):
            self.clock.advance(1)
            await self.service.tick()
            await self.service.flush()
        if seconds > whole:
            self.clock.advance(seconds - whole)
            await self.service.tick()
            await self.service.flush()

    # -- what happened -------------------------------------------------------------------------

    def leg(self, agent_id: str, call_id: str = "c1") -> str:
        """The channel id of the agent leg rung for ``call_id`` (it must be known to the service)."""
        for channel, leg in self.service.agent_legs.items():
            if leg == AgentLeg(call_id=call_id, agent_id=agent_id):
                return channel
        raise AssertionError(f"no leg of {agent_id} for {call_id}: {dict(self.service.agent_legs)}")

    def rung(self) -> list[str]:
        """Endpoints rung, in order."""
        return [str(args[0]) for args in self.control.of("ring_agent")]

    def ended(self) -> list[CallEnded]:
        return [e for e in self.bus.published if isinstance(e, CallEnded)]

    def outcome(self, call_id: str = "c1") -> CallOutcome | None:
        return self.store.calls.calls[call_id].outcome

    def call(self, call_id: str = "c1") -> CallRecord:
        return self.store.calls.calls[call_id]

    def states(self, agent_id: str) -> list[AgentState]:
        """The states ``agent_id`` went through, as published."""
        return [
            e.state for e in self.bus.published if isinstance(e, AgentStateChanged) and e.agent_id == agent_id
        ]

    def state(self, agent_id: str) -> AgentState:
        live = self.service._board.agent(agent_id)  # noqa: SLF001 - the board is what dispatch reads
        assert live is not None
        assert self.store.agents.agents[agent_id].state is live.state, "store and board disagree"
        return live.state

    async def timeline(self, call_id: str = "c1") -> list[str]:
        return [e.kind for e in await self.store.calls.events(call_id)]

    async def entry(self, kind: str, call_id: str = "c1") -> dict[str, object]:
        """The detail of the one timeline entry of ``kind``."""
        [detail] = [dict(e.detail) for e in await self.store.calls.events(call_id) if e.kind == kind]
        return detail


MakeHarness = Callable[..., Awaitable[Harness]]


def agent(agent_id: str, *queues: str) -> AgentRecord:
    return AgentRecord(
        id=agent_id, name=agent_id.title(), endpoint=f"PJSIP/{agent_id}", queues=queues or ("sales",)
    )


@pytest.fixture
def make_harness(clock: FakeClock) -> MakeHarness:
    """A started service with ``queues`` (default: ``sales``) and ``agents``; ``logged_in`` log in, in order."""

    async def make(
        *,
        queues: Sequence[QueueRecord] = (QueueRecord(name="sales", max_wait_s=300),),
        agents: Sequence[AgentRecord] = (),
        logged_in: Sequence[str] = (),
        start: bool = True,
        store: InMemoryStore | None = None,
        steps: InMemoryStepStore | None = None,
    ) -> Harness:
        store = store or InMemoryStore.create()
        for queue in queues:
            await store.queues.put(queue)
        for record in agents:
            await store.agents.add(record)
        control, bus = RecordingCallControl(), InMemoryEventBus()
        service = QueueService(control, store.calls, store.agents, store.queues, bus, clock, steps=steps)
        harness = Harness(service, control, store, bus, clock)
        if start:
            await service.start()
        for agent_id in logged_in:
            await service.login(agent_id, actor="test")
            clock.advance(1)
        control.clear()
        bus.published.clear()
        return harness

    return make
