"""Ports of the callback dispatcher: attempts and the do-not-call list, agents, the dialler (port).

::

    ConflictError
    ├── StaleLeaderError    a dial recorded with a fencing token older than one already used
    └── DoNotCallError      the number is on the do-not-call list (checked when the dial is recorded)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from callcenter.callbacks.attempts import Attempt, SourceNote
from callcenter.callbacks.ports import CallbackRepository
from callcenter.errors import ConflictError
from callcenter.model.callbacks import Callback, CallbackChange
from callcenter.model.vocabulary import AttemptResult


class StaleLeaderError(ConflictError):
    """A newer dispatcher holds the lease: this one must not dial."""


class DoNotCallError(ConflictError):
    """The number must never be dialled."""


@dataclass(frozen=True, kw_only=True, slots=True)
class DoNotCallEntry:
    number: str
    added_at: datetime
    added_by: str
    reason: str = ""


class DispatchStore(CallbackRepository, Protocol):
    """Callbacks (the callback repository) plus their attempts, sources and the do-not-call list.

    Every write is one transaction.
    """

    async def add_with_source(
        self, callback: Callback, changes: tuple[CallbackChange, ...], source: SourceNote
    ) -> tuple[Callback, bool]:
        """Store a new callback and its source note, or, when the number already has an open
        callback in that queue, attach the note to it (``merged``). The stored callback, and whether
        it was created."""
        ...

    async def sources(self, callback_id: str) -> tuple[SourceNote, ...]:
        """Where the callback's requests came from, oldest first."""
        ...

    async def start_attempt(
        self, callback: Callback, change: CallbackChange, attempt: Attempt, *, role: str
    ) -> Attempt:
        """Record the move to ``dialing`` with its attempt, before any originate.

        :raises StaleLeaderError: ``attempt.fence`` is older than a token already used for ``role``.
        :raises DoNotCallError: the number is on the do-not-call list (nothing is stored).
        :raises StaleCallbackError: the callback changed since it was read.
        """
        ...

    async def save_attempt(self, attempt: Attempt) -> Attempt:
        """Store progress of an open attempt (agent rung, customer dialled, answered)."""
        ...

    async def end_attempt(self, callback: Callback, change: CallbackChange, attempt: Attempt) -> Attempt:
        """Record an attempt's end with the callback's change. Idempotent: an attempt already
        ended is returned as stored. :raises StaleCallbackError:"""
        ...

    async def attempts(self, callback_id: str) -> tuple[Attempt, ...]:
        """The callback's attempts, first first."""
        ...

    async def open_attempts(self) -> tuple[Attempt, ...]:
        """Attempts not ended (what a restarted dispatcher reconciles)."""
        ...

    async def block_number(self, number: str, *, by: str, reason: str, at: datetime) -> DoNotCallEntry:
        """Put a number on the do-not-call list (idempotent: a repeat keeps the first entry)."""
        ...

    async def unblock_number(self, number: str) -> bool:
        """Take a number off the list; ``False`` when it was not on it."""
        ...

    async def blocked(self, number: str) -> DoNotCallEntry | None: ...

    async def blocked_numbers(self) -> tuple[DoNotCallEntry, ...]: ...


class AgentDesk(Protocol):
    """Agents free for a callback, and holding one while it runs (the queue service)."""

    async def free_agents(self, queue: str) -> tuple[tuple[str, str], ...]:
        """Available agents of ``queue`` as (agent id, endpoint), the longest idle first."""
        ...

    async def hold(self, agent_id: str, why: str) -> bool:
        """Take the agent out of the inbound queue for a callback; ``False`` if no longer free."""
        ...

    async def release(self, agent_id: str) -> None:
        """Give the agent back to the queue."""
        ...


class DialOutcome(StrEnum):
    """How one originate ended before a person took part."""

    ANSWERED = "answered"
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    FAILED = "failed"  # could not be dialled at all (ARI 404/500, unknown endpoint)


ATTEMPT_RESULT_OF = {
    DialOutcome.NO_ANSWER: AttemptResult.NO_ANSWER,
    DialOutcome.BUSY: AttemptResult.BUSY,
    DialOutcome.FAILED: AttemptResult.ERROR,
}
