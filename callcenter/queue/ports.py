"""Ports of the queue feature: where calls, agents and queue settings are kept."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from callcenter.model.events import AgentStateChanged
from callcenter.model.paging import Page
from callcenter.model.records import AgentRecord, CallEvent, CallRecord, QueueRecord
from callcenter.model.vocabulary import AgentState, CallOutcome
from callcenter.queue.detection import AgentLeg, AnyCallFact
from callcenter.queue.state import AgentLive


@dataclass(frozen=True, kw_only=True, slots=True)
class CallFilter:
    """Filters of ``GET /api/v1/calls``; ``None`` means no filter."""

    outcome: CallOutcome | None = None
    queue: str | None = None
    caller: str | None = None
    since: datetime | None = None
    until: datetime | None = None


class CallRepository(Protocol):
    """Inbound calls. Writes are idempotent: facts arrive at least once."""

    async def upsert(self, call: CallRecord) -> None:
        """Insert or replace the call with ``call.id``.

        A call whose outcome is already stored keeps it: an outcome is decided once.
        """
        ...

    async def get(self, call_id: str) -> CallRecord:
        """:raises NotFoundError: for an unknown id."""
        ...

    async def list(self, flt: CallFilter, *, cursor: str | None, limit: int) -> Page[CallRecord]:
        """Calls matching ``flt``, newest arrival first."""
        ...

    async def recent_of(self, callers: Collection[str], limit: int) -> dict[str, tuple[CallRecord, ...]]:
        """The latest ``limit`` calls of each of ``callers``, newest first; callers without calls left out."""
        ...

    async def append_event(
        self, call_id: str, at: datetime, kind: str, detail: dict[str, object] | None = None
    ) -> CallEvent:
        """Add an entry to the call's timeline (not de-duplicated). :raises NotFoundError: unknown call."""
        ...

    async def events(self, call_id: str) -> tuple[CallEvent, ...]:
        """The call's timeline, oldest first. :raises NotFoundError: unknown call."""
        ...

    async def open_missed(self, caller: str, *, before: datetime) -> tuple[CallRecord, ...]:
        """The caller's missed calls not closed yet that arrived before ``before``."""
        ...

    async def undecided(self) -> tuple[CallRecord, ...]:
        """Calls without an outcome (live when the process stopped)."""
        ...


@dataclass(frozen=True, kw_only=True, slots=True)
class TimelineEntry:
    """One entry for a call's timeline (``CallRepository.append_event``'s arguments)."""

    call_id: str
    at: datetime
    kind: str
    detail: Mapping[str, object]


@dataclass(frozen=True, kw_only=True, slots=True)
class StepWrite:
    """What one step of the queue stores: the call record, then its timeline entries, then agent states.

    ``close_missed`` is ``(caller, reached_at)``: the caller was reached, so their open missed calls
    that arrived before then are closed (:func:`~callcenter.queue.detection.close_missed_calls`).
    """

    record: CallRecord | None = None
    entries: tuple[TimelineEntry, ...] = ()
    states: tuple[AgentStateChanged, ...] = ()
    close_missed: tuple[str, datetime] | None = None


class StepStore(Protocol):
    """Stores many steps of the queue in one transaction: the write-behind's batches."""

    async def save_steps(self, steps: Sequence[StepWrite]) -> frozenset[str]:
        """Store ``steps`` as if one after the other (``CallRepository.upsert``, ``append_event``,
        ``AgentRepository.set_state``), all in one transaction: all of them or none.

        Returns the ids of agents not in the store (their states were skipped, as ``set_state``
        would have refused them).

        :raises CallCenterError: and nothing was stored: ``StoreUnavailableError``, ``ValidationError``
            (a naive time, a detail that is not JSON), ``NotFoundError`` (an entry of an unknown call).
        """
        ...


class AgentRepository(Protocol):
    """Agents and their queue membership."""

    async def add(self, agent: AgentRecord) -> None:
        """:raises ConflictError: if the id exists."""
        ...

    async def get(self, agent_id: str) -> AgentRecord:
        """:raises NotFoundError:"""
        ...

    async def list(self, *, cursor: str | None, limit: int) -> Page[AgentRecord]:
        """Agents ordered by id."""
        ...

    async def set_state(self, agent_id: str, state: AgentState, at: datetime) -> AgentRecord:
        """:raises NotFoundError:"""
        ...

    async def set_queues(self, agent_id: str, queues: tuple[str, ...]) -> AgentRecord:
        """Replace the agent's queue membership. :raises NotFoundError: for the agent or a queue."""
        ...


class QueueRepository(Protocol):
    """Queue settings."""

    async def put(self, queue: QueueRecord) -> None:
        """Create or replace a queue's settings."""
        ...

    async def get(self, name: str) -> QueueRecord:
        """:raises NotFoundError:"""
        ...

    async def list(self) -> tuple[QueueRecord, ...]:
        """All queues by name."""
        ...


class BridgeKind(StrEnum):
    """A holding bridge keeps waiting callers on music; a mixing bridge joins caller and agent."""

    HOLDING = "holding"
    MIXING = "mixing"


class CallControl(Protocol):
    """The telephony commands our queue gives (ARI in production, the simulated Asterisk in tests).

    Every method raises :class:`~callcenter.errors.ChannelGoneError` when a channel it names no longer
    exists (the caller hung up meanwhile: a normal race, not a failure) and
    :class:`~callcenter.errors.AsteriskUnavailableError` when the PBX cannot be reached or answers 5xx.
    """

    async def answer(self, channel_id: str) -> None:
        """Answer an inbound channel."""
        ...

    async def create_bridge(self, kind: BridgeKind, name: str) -> str:
        """Create a bridge and return its id."""
        ...

    async def add_to_bridge(self, bridge_id: str, channel_id: str) -> None:
        """Put a channel into a bridge (it leaves any other bridge it was in)."""
        ...

    async def start_hold_music(self, bridge_id: str) -> None:
        """Play music on hold to everyone in a holding bridge."""
        ...

    async def destroy_bridge(self, bridge_id: str) -> None:
        """Destroy a bridge; an already destroyed bridge is not an error."""
        ...

    async def ring_agent(
        self, endpoint: str, *, call_id: str, timeout_s: float, caller_id: str, channel_id: str | None = None
    ) -> str:
        """Originate a channel to an agent's endpoint for ``call_id``; return the new channel's id.

        The channel enters our Stasis application when the agent answers; if nobody answers within
        ``timeout_s`` it is destroyed by the PBX. Pass ``channel_id`` (chosen by the caller and
        registered as an agent leg first) because the PBX's events about the new channel, a busy
        ``Dial`` for one, can arrive before this call returns. :raises ChannelGoneError: for an
        endpoint that does not exist.
        """
        ...

    async def hangup(self, channel_id: str) -> None:
        """Hang a channel up; an already gone channel is not an error."""
        ...

    async def continue_in_dialplan(self, channel_id: str) -> None:
        """Hand a channel back to the dialplan at its next priority."""
        ...

    async def play(self, channel_id: str, *sounds: str) -> None:
        """Start playing sound files (names without extension) in order; returns once started."""
        ...

    async def live_channel_ids(self) -> frozenset[str]:
        """Ids of every channel the PBX has now (for the resync after a reconnect)."""
        ...


class CallFactSink(Protocol):
    """What the ARI link feeds: the queue service, seen from the edge."""

    @property
    def agent_legs(self) -> Mapping[str, AgentLeg]:
        """The agent channels we originated, by channel id (``translate`` needs them)."""
        ...

    async def handle(self, fact: AnyCallFact) -> None:
        """React to one fact about a call (idempotent: facts may repeat or arrive late); never raises."""
        ...

    def submit(self, fact: AnyCallFact) -> None:
        """Like :meth:`handle`, but queued and returning at once; a call's facts keep their order."""
        ...

    async def reconcile(self, present_channel_ids: frozenset[str]) -> None:
        """After a reconnect: decide every call whose channels are gone (flagged ``reconciled``)."""
        ...


@dataclass(frozen=True, kw_only=True, slots=True)
class VoicemailRequest:
    """A caller the queue sends to leave a message (the exit action ``voicemail``, or the voicemail key)."""

    call_id: str
    channel_id: str
    queue: str | None
    caller: str
    reason: str
    #: The holding bridge the caller is in (Asterisk records no channel in a bridge: leave it first).
    holding_bridge_id: str | None = None


class VoicemailTaker(Protocol):
    """Takes a caller's message in the background (the voicemail flow over ARI)."""

    def start(self, request: VoicemailRequest) -> bool:
        """Begin taking the message; ``False`` when it cannot (the queue then plays its exit message).

        The taker reports ``VoicemailRecorded`` to the queue once a recording started and hangs up.
        """
        ...


class KeptPlaces(Protocol):
    """Callers who left the line with a keep-my-place callback and still hold their place in it
    (the callback dispatcher's view, :class:`callcenter.callbacks.line.CallbackLine`).

    Both methods are synchronous and cheap: the queue asks them while it chooses whom to offer an agent.
    """

    def waiting(self, queue: str, now: datetime) -> Sequence[tuple[tuple[datetime, str], str]]:
        """The queue's kept places waiting for an agent as (place, callback id), first in line first.

        A place is (original enqueue time, id of the call), ordered like a live caller's.
        """
        ...

    def reserve(self, queue: str, agent_id: str) -> None:
        """The queue keeps ``agent_id`` back (available, not offered) for the first kept place of
        ``queue``: the dispatcher should take them now. Must not block."""
        ...


class AgentAction(StrEnum):
    """What an agent (or a supervisor for them) asks of the live queue."""

    LOGIN = "login"
    LOGOUT = "logout"
    PAUSE = "pause"
    UNPAUSE = "unpause"
    #: Replace the agent's queue membership with ``queues``.
    SET_QUEUES = "set_queues"


@dataclass(frozen=True, kw_only=True, slots=True)
class AgentRequest:
    """An agent's request, as handed to the process that runs the live queue.

    :param queues: the new queue membership of a log-in (``None``: unchanged) or of ``SET_QUEUES``.
    """

    agent_id: str
    action: AgentAction
    actor: str
    reason: str = ""
    queues: tuple[str, ...] | None = None


class AgentRelay(Protocol):
    """Hands agents' requests to the one process that runs the live queue (the ARI link's owner),
    which applies them as its own: a pause asked for during a callback there is kept for after it.
    """

    async def forward(self, request: AgentRequest) -> AgentLive | None:
        """The agent's live state once the queue's process applied ``request``; ``None`` when no
        process runs the live queue or none answered in time (then the caller applies it itself).

        :raises NotFoundError: :raises ConflictError: :raises ValidationError: as the queue's process
            refused it.
        """
        ...
