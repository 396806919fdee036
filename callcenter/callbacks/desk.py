"""Agents for callbacks, taken from the live queue: free ones, held by a pause while they call (service).

An agent making a callback must not be offered an inbound call meanwhile: :class:`QueueAgentDesk`
holds them with a pause whose reason names the callback (the wallboard shows it), and gives them back
when the attempt or the call is over, in the state they chose meanwhile (a pause or log-out they
asked for during the callback is kept, never overwritten by "available"). Only an available agent
is held. After a call they talked on, they wrap up first (the queue's ``wrap_up_s``), as after a
queue call.
"""

from __future__ import annotations

import logging
from typing import Final

from callcenter.errors import CallCenterError
from callcenter.queue.service import QueueService

logger = logging.getLogger(__name__)

ACTOR: Final = "callback-dispatcher"


class QueueAgentDesk:
    """:class:`~callcenter.callbacks.dispatch_ports.AgentDesk` over the queue service."""

    def __init__(self, queue: QueueService) -> None:
        self._queue = queue
        self._held: set[str] = set()

    async def free_agents(self, queue: str) -> tuple[tuple[str, str], ...]:
        return tuple((a, e) for a, e in self._queue.available_agents(queue) if a not in self._held)

    async def hold(self, agent_id: str, why: str, *, asked: bool = False) -> bool:
        if agent_id in self._held:
            return False
        try:
            held = await self._queue.hold_for_callback(agent_id, why=why, actor=ACTOR, paused_ok=asked)
        except CallCenterError as exc:
            logger.info("agent %s not held for %s: %s", agent_id, why, exc)
            return False
        if held:
            self._held.add(agent_id)
        return held

    async def release(self, agent_id: str, *, wrap_up_in: str | None = None) -> None:
        # Not held here: a dispatcher that died held them (the reconcile gives them back).
        orphan = agent_id not in self._held
        self._held.discard(agent_id)
        try:
            await self._queue.release_from_callback(
                agent_id, actor=ACTOR, orphan=orphan, wrap_up_in=wrap_up_in
            )
        except CallCenterError as exc:
            logger.warning("agent %s not given back after a callback: %s", agent_id, exc)

    async def endpoint_of(self, agent_id: str) -> str:
        return (await self._queue.get_agent(agent_id)).record.endpoint
