"""Ports of the callback dispatcher: attempts and the do-not-call list, agents, the dialler (port).

::

    ConflictError
    ├── StaleLeaderError    a dial recorded with a fencing token older than one already used
    ├── DoNotCallError      the number is on the do-not-call list (checked when the dial is recorded)
    └── ClaimedError        another agent holds an unexpired claim on the callback
"""

from __future__ import annotations

from collections.abc import Awaitable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from callcenter.callbacks.attempts import Attempt, SourceNote
from callcenter.callbacks.ports import CallbackRepository
from callcenter.callbacks.reasons import Reason
from callcenter.capacity.service import Estimate
from callcenter.errors import ConflictError
from callcenter.model.callbacks import Callback, CallbackChange
from callcenter.model.vocabulary import AttemptResult, CallbackState


class StaleLeaderError(ConflictError):
    """A newer dispatcher holds the lease: this one must not dial."""


class DoNotCallError(ConflictError):
    """The number must never be dialled."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Claim:
    """An agent's claim on a callback: only they are connected to it until ``until``."""

    callback_id: str
    agent_id: str
    until: datetime


@dataclass(frozen=True, kw_only=True, slots=True)
class CallbackDetails:
    """What a worklist shows of a callback beside the record: its request sources, attempts,
    unexpired claim and first change (who asked, why)."""

    sources: tuple[SourceNote, ...] = ()
    attempts: tuple[Attempt, ...] = ()
    claim: Claim | None = None
    first_change: CallbackChange | None = None


class ClaimedError(ConflictError):
    """Another agent holds an unexpired claim on the callback (``claim``)."""

    def __init__(self, message: str, claim: Claim) -> None:
        super().__init__(message)
        self.claim = claim


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

    async def due(self, now: datetime) -> tuple[Callback, ...]:
        """``scheduled`` and ``retry_wait`` callbacks due by ``now``, by due time then place in line."""
        ...

    async def needing_attention(
        self, states: frozenset[CallbackState], *, requested_before: datetime, window_end_by: datetime
    ) -> tuple[Callback, ...]:
        """Callbacks in ``states`` requested at or before ``requested_before`` (old enough to expire),
        or never dialled with a window ending by ``window_end_by`` (promises at risk)."""
        ...

    async def owners(self, callback_ids: Collection[str], *, now: datetime) -> dict[str, str]:
        """The agent each callback waits for now: an unexpired claim, else a follow-up's own agent
        before its deadline. Callbacks any agent may take are left out. One round trip, any number."""
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

    async def amend_attempt(self, callback: Callback, change: CallbackChange, attempt: Attempt) -> Attempt:
        """Give an ended attempt a new result (an agent found nobody on a connected call) with the
        callback's change, in one transaction. :raises StaleCallbackError: the callback changed since
        it was read, or the attempt has not ended."""
        ...

    async def close_with_follow_up(
        self,
        callback: Callback,
        change: CallbackChange,
        follow_up: Callback,
        follow_up_changes: tuple[CallbackChange, ...],
        source: SourceNote,
    ) -> Callback:
        """Record a callback's change and store its follow-up (a new callback with its source note),
        in one transaction: both or neither. :raises StaleCallbackError:"""
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

    async def claim(self, callback_id: str, agent_id: str, *, until: datetime, now: datetime) -> Claim:
        """Claim a callback for an agent until ``until`` (a repeat by the same agent extends it).

        :raises ClaimedError: another agent's claim has not expired. :raises NotFoundError:
        """
        ...

    async def release_claim(self, callback_id: str, agent_id: str) -> bool:
        """Drop the agent's claim; ``False`` when they held none."""
        ...

    async def claim_of(self, callback_id: str, *, now: datetime) -> Claim | None:
        """The unexpired claim on a callback, if any."""
        ...

    async def details(self, callback_ids: Sequence[str], *, now: datetime) -> Mapping[str, CallbackDetails]:
        """:class:`CallbackDetails` of many callbacks in a few reads (ids unknown are left out)."""
        ...

    async def blocked(self, number: str) -> DoNotCallEntry | None: ...

    async def blocked_numbers(self) -> tuple[DoNotCallEntry, ...]: ...


class AgentDesk(Protocol):
    """Agents free for a callback, and holding one while it runs (the queue service)."""

    async def free_agents(self, queue: str) -> tuple[tuple[str, str], ...]:
        """Available agents of ``queue`` as (agent id, endpoint), the longest idle first."""
        ...

    async def hold(self, agent_id: str, why: str, *, asked: bool = False) -> bool:
        """Take the agent out of the inbound queue for a callback; ``False`` if no longer free.

        :param asked: the agent started this callback themselves (the worklist): a paused agent
            may be held too, and is paused again after it.
        """
        ...

    async def release(self, agent_id: str, *, wrap_up_in: str | None = None) -> None:
        """Give the agent back to the queue.

        :param wrap_up_in: the queue of the callback the agent talked on: they wrap up first, for
            that queue's ``wrap_up_s``, as after a queue call.
        """
        ...

    async def endpoint_of(self, agent_id: str) -> str:
        """The endpoint the agent is rung on. :raises NotFoundError:"""
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


@dataclass(frozen=True, kw_only=True, slots=True)
class Whisper:
    """What the agent hears before the customer is dialled: who, why, how long they waited.

    :param reason: why the callback is owed (``None`` when it could not be read: not said).
    :param preview: for a voicemail's callback, the start of the caller's message as Asterisk names
        the file (an absolute path without its extension), played after the reason; ``None``: none.
    """

    number: str
    waited_s: float
    reason: Reason | None = None
    preview: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class CallJob:
    """One attempt to run: whom to call, as whom, and what to tell the agent.

    :param customer_first: dial the customer first, then the agent (a queue option).
    :param reason: why the callback is owed, being read while the agent's phone rings: awaited only
        when the whisper is about to play (``None`` resolved: not said), so no dial waits for it.
    :param preview: the voicemail preview (:attr:`Whisper.preview`), found or rendered the same way.
    """

    attempt: Attempt
    queue: str
    caller_id: str
    whisper: Whisper
    customer_first: bool = False
    reason: Awaitable[Reason | None] | None = None
    preview: Awaitable[str | None] | None = None


class PlaceEstimator(Protocol):
    """The wait of a place in a queue's line (``EstimateService.estimate_place``: QL-A, the model the
    callback offers announce)."""

    async def estimate_place(self, queue: str, *, joined_at: datetime, callbacks_ahead: int = 0) -> Estimate:
        """:raises NotFoundError: unknown queue. :raises DependencyError: no live board in this process."""
        ...


class VoicemailPreviews(Protocol):
    """The start of a voicemail as a file Asterisk can play (rendered once, off the event loop)."""

    async def sound(self, voicemail_id: str) -> str | None:
        """The preview's sound name (absolute path without extension), rendering it if need be;
        ``None`` when there is none (no shared folder, audio deleted, voicemail erased, no speech:
        the reason is logged). Never raises for a missing or bad recording."""
        ...


@dataclass(frozen=True, kw_only=True, slots=True)
class CallEnd:
    """How an attempt ended: ``connected`` means agent and customer are bridged (the call goes on)."""

    result: AttemptResult
    cause: str
    agent_id: str | None = None


class AgentPicker(Protocol):
    """Gives the flow the next free agent (held for it), skipping those already tried."""

    async def next(self, tried: frozenset[str]) -> tuple[str, str] | None:
        """(agent id, endpoint) of a free agent now held, or ``None`` when no agent is free."""
        ...


class Progress(Protocol):
    async def __call__(self, attempt: Attempt) -> None:
        """Persist the attempt's progress (agent rung, customer about to be dialled)."""
        ...


class CallbackCalls(Protocol):
    """Places the calls of an attempt on the PBX (ARI in production)."""

    async def run(self, job: CallJob, agents: AgentPicker, progress: Progress) -> CallEnd:
        """Ring an agent, whisper, dial the customer, confirm a person, bridge.

        Persists through ``progress`` before each originate (the agent tried, the customer about to
        be dialled). Returns when the result is known: for ``connected`` the call goes on (see
        :meth:`conversation`). Never raises for a telephony failure: that is an ``error`` result.
        """
        ...

    async def conversation(self, attempt_id: str) -> float:
        """Wait until the bridged call of a connected attempt ends; its length in seconds."""
        ...

    async def present(self) -> dict[str, frozenset[str]]:
        """Channels of our attempts now on the PBX: attempt id -> channel ids."""
        ...

    async def hang_up(self, channel_ids: frozenset[str]) -> None:
        """Hang up what is left of an attempt (channels already gone are ignored)."""
        ...
