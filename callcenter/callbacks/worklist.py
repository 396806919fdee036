"""The agent's callback worklist: what is waiting for me, and claiming it (service).

An agent sees the open callbacks of their queues and their own follow-ups (another agent's follow-up
only after its personal deadline), due and overdue first, each with why it was asked for, its
promise, its attempts and the caller's recent calls. A claim is a lock that expires: while it holds,
the dispatcher connects the callback to the claiming agent only (when it is due and they are free).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Protocol

from callcenter.callbacks.attempts import Attempt, SourceNote
from callcenter.callbacks.dispatch_ports import Claim, DispatchStore
from callcenter.clock import Clock
from callcenter.errors import ConflictError, NotFoundError, ValidationError
from callcenter.model.callbacks import Callback
from callcenter.model.records import CallRecord
from callcenter.model.vocabulary import CallbackState

S = CallbackState
_LISTED: Final = frozenset({S.REQUESTED, S.SCHEDULED, S.RETRY_WAIT, S.DIALING, S.CONNECTED})
_CLAIMABLE: Final = frozenset({S.REQUESTED, S.SCHEDULED, S.RETRY_WAIT})


class AgentQueues(Protocol):
    async def queues_of(self, agent_id: str) -> tuple[str, ...]:
        """The queues the agent serves. :raises NotFoundError: unknown agent."""
        ...


class CallerHistory(Protocol):
    async def recent_calls(self, number: str, limit: int) -> Sequence[CallRecord]:
        """The caller's latest inbound calls, newest first."""
        ...


@dataclass(frozen=True, kw_only=True, slots=True)
class WorkItem:
    """One callback on an agent's worklist."""

    callback: Callback
    due: bool
    overdue: bool
    reason: str
    sources: tuple[SourceNote, ...]
    attempts: tuple[Attempt, ...]
    claim: Claim | None
    history: tuple[CallRecord, ...]


class Worklist:
    """:param claim_s: how long a claim holds without renewal."""

    def __init__(
        self,
        store: DispatchStore,
        agents: AgentQueues,
        history: CallerHistory,
        clock: Clock,
        *,
        claim_s: float = 300.0,
        history_limit: int = 5,
    ) -> None:
        self._store = store
        self._agents = agents
        self._history = history
        self._clock = clock
        self._claim_s = claim_s
        self._history_limit = history_limit

    async def items(self, agent_id: str) -> tuple[WorkItem, ...]:
        """The agent's worklist: overdue first, then due, then by due time. :raises NotFoundError:"""
        queues = await self._agents.queues_of(agent_id)
        now = self._clock.now()
        found: list[WorkItem] = []
        for queue in queues:
            for callback in await self._store.in_state(queue, _LISTED):
                item = await self._item(callback, agent_id, now)
                if item is not None:
                    found.append(item)
        found.sort(key=lambda i: (not i.overdue, not i.due, i.callback.due_at or i.callback.window.end))
        return tuple(found)

    async def _item(self, callback: Callback, agent_id: str, now: datetime) -> WorkItem | None:
        sources = await self._store.sources(callback.id)
        owner = next(
            (
                n
                for n in sources
                if n.owner_agent is not None and (n.owner_until is None or now < n.owner_until)
            ),
            None,
        )
        if owner is not None and owner.owner_agent != agent_id:
            return None  # another agent's follow-up, still theirs
        changes = await self._store.changes(callback.id)
        due = callback.due_at is not None and callback.due_at <= now
        return WorkItem(
            callback=callback,
            due=due,
            overdue=callback.window.passed(now) or (due and callback.window.end - now < timedelta(0)),
            reason=changes[0].reason if changes else "",
            sources=sources,
            attempts=await self._store.attempts(callback.id),
            claim=await self._store.claim_of(callback.id, now=now),
            history=tuple(await self._history.recent_calls(callback.number, self._history_limit)),
        )

    async def claim(self, callback_id: str, agent_id: str) -> Claim:
        """Claim a waiting callback for ``claim_s`` (a repeat by the same agent renews it).

        :raises NotFoundError: :raises ConflictError: it is being dialled, connected or closed.
        :raises ClaimedError: another agent holds it.
        """
        callback = await self._store.get(callback_id)
        if callback.state not in _CLAIMABLE:
            raise ConflictError(f"callback {callback_id} is {callback.state.value}: it cannot be claimed")
        if callback.queue not in await self._agents.queues_of(agent_id):
            raise ValidationError(f"agent {agent_id} does not serve queue {callback.queue!r}")
        now = self._clock.now()
        return await self._store.claim(
            callback_id, agent_id, until=now + timedelta(seconds=self._claim_s), now=now
        )

    async def release(self, callback_id: str, agent_id: str) -> None:
        """Give a claim back. :raises NotFoundError: the agent holds no claim on it."""
        if not await self._store.release_claim(callback_id, agent_id):
            raise NotFoundError(f"agent {agent_id} holds no claim on callback {callback_id}")
