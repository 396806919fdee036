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
from enum import StrEnum
from typing import Final, Protocol

from callcenter.callbacks.attempts import Attempt, SourceNote
from callcenter.callbacks.dispatch_ports import Claim, DispatchStore
from callcenter.callbacks.lifecycle import move
from callcenter.callbacks.sources import CallbackSources
from callcenter.clock import Clock
from callcenter.errors import ConflictError, NotFoundError, ValidationError
from callcenter.model.callbacks import Actor, ActorKind, Callback
from callcenter.model.records import CallRecord
from callcenter.model.vocabulary import CallbackState

S = CallbackState
_LISTED: Final = frozenset({S.REQUESTED, S.SCHEDULED, S.RETRY_WAIT, S.DIALING, S.CONNECTED})
_CLAIMABLE: Final = frozenset({S.REQUESTED, S.SCHEDULED, S.RETRY_WAIT})


class Disposition(StrEnum):
    """What the agent says of a connected callback."""

    RESOLVED = "resolved"  # -> completed
    WRONG_NUMBER = "wrong_number"  # -> failed, with that reason
    FOLLOW_UP = "follow_up"  # -> completed, and a follow-up of the agent's at the time they chose
    NO_ANSWER = "no_answer"  # recorded by the dispatcher from the call itself, never by hand


@dataclass(frozen=True, kw_only=True, slots=True)
class Disposed:
    callback: Callback
    follow_up: Callback | None = None


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
        sources: CallbackSources | None = None,
        claim_s: float = 300.0,
        history_limit: int = 5,
    ) -> None:
        self._store = store
        self._sources = sources
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

    async def dispose(
        self,
        callback_id: str,
        agent_id: str,
        disposition: Disposition,
        *,
        notes: str = "",
        follow_up_at: datetime | None = None,
    ) -> Disposed:
        """The agent's disposition of a connected callback, with notes (kept as the change's reason).

        :raises NotFoundError: :raises ConflictError: the callback is not connected (e.g. already
            completed after ``disposition_wait_s``), or the agent was not on its call.
        :raises ValidationError: ``no_answer`` (the dispatcher records it), or a follow-up without a time.
        """
        if disposition is Disposition.NO_ANSWER:
            raise ValidationError(
                "no_answer is recorded by the dispatcher from the call; it cannot be set by hand"
            )
        if disposition is Disposition.FOLLOW_UP and follow_up_at is None:
            raise ValidationError("a follow-up needs follow_up_at (ISO 8601 with an offset)")
        callback = await self._store.get(callback_id)
        if callback.state is not S.CONNECTED:
            raise ConflictError(
                f"callback {callback_id} is {callback.state.value}: only a connected call takes a disposition"
            )
        attempts = await self._store.attempts(callback_id)
        if not attempts or attempts[-1].agent_id != agent_id:
            raise ConflictError(f"agent {agent_id} was not on the call of callback {callback_id}")
        now = self._clock.now()
        actor = Actor(ActorKind.AGENT, agent_id)
        notes = notes.strip()[:500]
        reason = {
            Disposition.RESOLVED: "resolved",
            Disposition.WRONG_NUMBER: "wrong number",
            Disposition.FOLLOW_UP: f"follow up at {follow_up_at.isoformat() if follow_up_at else ''}",
        }[disposition]
        state = S.FAILED if disposition is Disposition.WRONG_NUMBER else S.COMPLETED
        moved, change = move(
            callback, state, at=now, actor=actor, reason=f"{reason}: {notes}" if notes else reason
        )
        stored = await self._store.move(moved, change)
        follow_up = None
        if disposition is Disposition.FOLLOW_UP and follow_up_at is not None:
            if self._sources is None:
                raise ValidationError("follow-ups are not available in this process")
            follow_up = (
                await self._sources.follow_up(
                    agent_id, callback.queue, callback.number, at=follow_up_at, note=notes
                )
            ).callback
        return Disposed(callback=stored, follow_up=follow_up)
