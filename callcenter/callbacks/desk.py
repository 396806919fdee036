"""Agents for callbacks, taken from the live queue: free ones, held by a pause while they call (service).

An agent making a callback must not be offered an inbound call meanwhile: :class:`QueueAgentDesk`
holds them with a pause whose reason names the callback (the wallboard shows it), and unpauses them
when the attempt or the call is over. A pause asked while the agent started ringing for an inbound
call would only apply after that call, so such an agent is not held.
"""

from __future__ import annotations

import logging
from typing import Final

from callcenter.errors import CallCenterError
from callcenter.model.vocabulary import AgentState
from callcenter.queue.service import QueueService

logger = logging.getLogger(__name__)

ACTOR: Final = "callback-dispatcher"


class QueueAgentDesk:
    """:class:`~callcenter.callbacks.dispatch_ports.AgentDesk` over the queue service."""

    def __init__(self, queue: QueueService) -> None:
        self._queue = queue
        self._held: set[str] = set()

    async def free_agents(self, queue: str) -> tuple[tuple[str, str], ...]:
        live = await self._queue.live(queue)
        free = sorted(
            (a for a in live.view.agents if a.state is AgentState.AVAILABLE and a.agent_id not in self._held),
            key=lambda a: (a.since, a.agent_id),
        )
        found = []
        for agent in free:
            status = await self._queue.get_agent(agent.agent_id)
            found.append((agent.agent_id, status.record.endpoint))
        return tuple(found)

    async def hold(self, agent_id: str, why: str) -> bool:
        if agent_id in self._held:
            return False
        try:
            status = await self._queue.pause(agent_id, actor=ACTOR, reason=why)
        except CallCenterError as exc:
            logger.info("agent %s not held for %s: %s", agent_id, why, exc)
            return False
        if status.state is not AgentState.PAUSED:
            await self._unpause(agent_id)
            return False
        self._held.add(agent_id)
        return True

    async def release(self, agent_id: str) -> None:
        self._held.discard(agent_id)
        await self._unpause(agent_id)

    async def endpoint_of(self, agent_id: str) -> str:
        return (await self._queue.get_agent(agent_id)).record.endpoint

    async def _unpause(self, agent_id: str) -> None:
        try:
            status = await self._queue.get_agent(agent_id)
            if status.state is AgentState.PAUSED:
                await self._queue.unpause(agent_id, actor=ACTOR)
        except CallCenterError as exc:
            logger.warning("agent %s not given back after a callback: %s", agent_id, exc)
