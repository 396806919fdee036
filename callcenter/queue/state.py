"""Live queue state: waiting callers, agents by state, dispatch choice and call outcomes (pure core).

:class:`QueueBoard` is the one mutable aggregate the queue service drives. It never reads the clock
or does I/O: every method takes the facts and ``now`` it needs and returns values (domain events to
publish, the call record to store, or why a fact was ignored).
"""

from __future__ import annotations

import bisect
import dataclasses
import heapq
import itertools
from collections import OrderedDict
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, TypeAlias

from callcenter.model.events import AgentStateChanged, CallEnded, CallLeftQueue, DomainEvent
from callcenter.model.events import CallQueued as CallQueuedEvent
from callcenter.model.phone import PhoneNumber
from callcenter.model.records import AgentRecord, CallRecord, QueueRecord
from callcenter.model.vocabulary import AgentState
from callcenter.queue.detection import (
    DEFAULT_SHORT_ABANDON_S,
    AgentHungUp,
    AgentNoAnswer,
    AgentOffered,
    AgentRinging,
    AnyCallFact,
    CallAnswered,
    CallArrived,
    CallQueued,
    CallTrack,
    ExitReason,
    IgnoreReason,
    Reconciled,
    advance,
    to_call_ended,
    to_record,
)

# ---------------------------------------------------------------------------------------------
# Agent facts and policy
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class AgentFact:
    """A change an agent (or a supervisor on their behalf) asked for, at ``at``."""

    agent_id: str
    at: datetime


@dataclass(frozen=True, kw_only=True, slots=True)
class AgentLoggedIn(AgentFact):
    """The agent logged in; ``queues`` replaces their membership when given."""

    queues: tuple[str, ...] | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class AgentLoggedOut(AgentFact):
    """The agent logged out (after the current call, if any)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class AgentPaused(AgentFact):
    """The agent paused (after the current call, if any)."""

    reason: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class AgentUnpaused(AgentFact):
    """The agent is back from a pause; their miss count restarts."""


@dataclass(frozen=True, kw_only=True, slots=True)
class AgentWrapUpEnded(AgentFact):
    """The agent ended wrap-up early (the policy's wrap-up time ends it otherwise)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class AgentWrapUpStarted(AgentFact):
    """A call the agent made outside the queue (a callback, held by a pause) ended: wrap-up, then
    ``then`` (a pause or log-out they asked for during the call) or available."""

    then: AgentState | None = None
    reason: str = "call ended"


AnyAgentFact: TypeAlias = (
    AgentLoggedIn | AgentLoggedOut | AgentPaused | AgentUnpaused | AgentWrapUpEnded | AgentWrapUpStarted
)

#: Everything :meth:`QueueBoard.apply` accepts.
Fact: TypeAlias = AnyCallFact | AnyAgentFact

#: A waiting call's place: enqueue time, arrival sequence (ties), call id.
WaitingKey: TypeAlias = tuple[datetime, int, str]


@dataclass(frozen=True, kw_only=True, slots=True)
class AgentPolicy:
    """How agents are handled.

    :param max_misses: pause an agent after this many offers in a row went unanswered (0: never).
    :param wrap_up_s: seconds of wrap-up after each call before the agent is offered calls again.
    """

    max_misses: int = 3
    wrap_up_s: float = 10.0


# ---------------------------------------------------------------------------------------------
# Views
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class AgentLive:
    """An agent's live state. ``since`` is when they entered ``state`` (for AVAILABLE: idle since).

    ``call_id`` is the call they ring for or talk to; ``pending`` a pause or log-out asked for during
    a call, applied when it ends.
    """

    agent_id: str
    state: AgentState
    since: datetime
    queues: tuple[str, ...] = ()
    call_id: str | None = None
    misses: int = 0
    pending: AgentState | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class WaitingCaller:
    """One caller in a waiting list, with their wait so far and place (1 is next)."""

    call_id: str
    caller: PhoneNumber
    caller_name: str
    queue: str
    enqueued_at: datetime
    wait_s: float
    position: int
    ringing_agent: str | None


#: Agents in these states serve their queues (free or on a call); paused and logged-out ones do not.
STAFFED_STATES: Final = frozenset(
    {AgentState.AVAILABLE, AgentState.RINGING, AgentState.BUSY, AgentState.WRAP_UP}
)


@dataclass(frozen=True, kw_only=True, slots=True)
class QueueStanding:
    """A queue's line and staffing at ``at``, as a wait estimate reads them: counts only, without the
    list of every caller and agent that :class:`QueueView` builds.

    :param waiting: callers waiting. :param hol_wait_s: how long the first of them has waited (0: none).
    :param staffed: members in :data:`STAFFED_STATES`. :param free: members available now.
    :param position: the asked call's place in line (1 is next); ``None`` when it is not waiting here.
    :param elapsed_s: how long the asked call has waited.
    :param ahead: callers waiting who joined before the asked time.
    """

    queue: QueueRecord
    at: datetime
    waiting: int
    hol_wait_s: float
    staffed: int
    free: int
    position: int | None = None
    elapsed_s: float = 0.0
    ahead: int = 0


@dataclass(frozen=True, kw_only=True, slots=True)
class QueueView:
    """A queue's live picture: waiting callers in order, and its agents by state."""

    queue: str
    waiting: tuple[WaitingCaller, ...]
    agents: tuple[AgentLive, ...]

    def agents_in(self, state: AgentState) -> tuple[AgentLive, ...]:
        return tuple(agent for agent in self.agents if agent.state is state)


@dataclass(frozen=True, kw_only=True, slots=True)
class Step:
    """What one fact did: events to publish (in order), the call record to store, or why it was ignored."""

    events: tuple[DomainEvent, ...] = ()
    record: CallRecord | None = None
    ignored: IgnoreReason | None = None

    @property
    def decided(self) -> CallEnded | None:
        """The ``CallEnded`` this fact decided, if it did."""
        return next((e for e in self.events if isinstance(e, CallEnded)), None)


# ---------------------------------------------------------------------------------------------
# The board
# ---------------------------------------------------------------------------------------------

_IN_CALL = frozenset({AgentState.RINGING, AgentState.BUSY})
# Facts after which a waiting call is still waiting.
_STAYS_WAITING = (CallArrived, CallQueued, AgentOffered, AgentRinging, AgentNoAnswer, AgentHungUp)


class QueueBoard:
    """Live calls, waiting lists and agents of every queue served by one process.

    :param queues: queue settings (thresholds, limits); unknown queues use the defaults.
    :param policy: the agent policy (pause after misses, wrap-up time).
    :param ended_memory: how many decided calls are remembered so that late facts for them are
        recognised as such; older ones are forgotten (their late facts then read as unknown calls, and
        the store keeps a decided outcome anyway).
    """

    def __init__(
        self,
        *,
        queues: Iterable[QueueRecord] = (),
        policy: AgentPolicy | None = None,
        ended_memory: int = 50_000,
    ) -> None:
        self._queues: dict[str, QueueRecord] = {q.name: q for q in queues}
        self._policy = policy or AgentPolicy()
        self._ended_memory = ended_memory
        self._calls: dict[str, CallTrack] = {}
        self._ended: OrderedDict[str, CallTrack] = OrderedDict()
        self._agents: dict[str, AgentLive] = {}
        # Indexes over _agents, kept by _put: per queue a heap of (idle since, id) of available
        # members (entries that no longer match the agent are dropped when met), the members
        # logged in, and the agents in each state.
        self._idle: dict[str, list[tuple[datetime, str]]] = {}
        self._idle_key: dict[str, tuple[datetime, tuple[str, ...]]] = {}
        self._logged_in: dict[str, set[str]] = {}
        self._members: dict[str, set[str]] = {}  # every member, logged in or not
        self._in_state: dict[AgentState, set[str]] = {state: set() for state in AgentState}
        self._members_in_state: dict[tuple[str, AgentState], int] = {}  # (queue, state): members
        # Per queue: (enqueued_at, arrival sequence, call_id), kept sorted: FIFO by enqueue time.
        self._waiting: dict[str, list[WaitingKey]] = {}
        # The same, of the waiting calls no agent is ringing for: what the dispatcher looks through.
        self._unrung: dict[str, list[WaitingKey]] = {}
        self._place_of: dict[str, WaitingKey] = {}  # call_id: its key in the lists above
        self._sequence = itertools.count()

    # -- configuration -------------------------------------------------------------------------

    def set_queue(self, queue: QueueRecord) -> None:
        """Add or replace a queue's settings."""
        self._queues[queue.name] = queue

    def load_agent(self, agent: AgentRecord, now: datetime) -> tuple[AgentStateChanged, ...]:
        """Add or refresh an agent from the store (at start-up or after a resync).

        An agent stored as ringing or busy has no call here: ringing becomes available, busy becomes
        wrap-up, and the change is returned as events. A known agent keeps their live state and call.
        """
        known = self._agents.get(agent.id)
        if known is not None:
            self._put(dataclasses.replace(known, queues=agent.queues))
            return ()
        since = agent.state_since or now
        self._put(AgentLive(agent_id=agent.id, state=agent.state, since=since, queues=agent.queues))
        if agent.state is AgentState.RINGING:
            return self._set(agent.id, AgentState.AVAILABLE, now, "no call after restart")
        if agent.state is AgentState.BUSY:
            return self._set(agent.id, AgentState.WRAP_UP, now, "no call after restart")
        return ()

    def mirror(self, live: AgentLive) -> None:
        """Take an agent's live state as another process decided it (the one running the live
        queue); an agent unknown here is ignored."""
        if live.agent_id in self._agents:
            self._put(live)

    def set_agent_queues(self, agent_id: str, queues: tuple[str, ...]) -> None:
        """Replace an agent's queue membership. :raises KeyError: for an unknown agent."""
        self._put(dataclasses.replace(self._agents[agent_id], queues=queues))

    def remove_agent(self, agent_id: str) -> None:
        """Forget an agent (deleted from the store); unknown ids are ignored."""
        agent = self._agents.pop(agent_id, None)
        if agent is not None:
            self._unindex(agent)
            self._idle_key.pop(agent_id, None)

    def _put(self, agent: AgentLive) -> AgentLive:
        """Store an agent's new live state and keep the indexes in step."""
        old = self._agents.get(agent.agent_id)
        if old is not None:
            self._unindex(old)
        self._agents[agent.agent_id] = agent
        self._in_state[agent.state].add(agent.agent_id)
        for queue in dict.fromkeys(agent.queues):
            self._members.setdefault(queue, set()).add(agent.agent_id)
            counted = (queue, agent.state)
            self._members_in_state[counted] = self._members_in_state.get(counted, 0) + 1
        if agent.state is not AgentState.LOGGED_OUT:
            for queue in agent.queues:
                self._logged_in.setdefault(queue, set()).add(agent.agent_id)
        if agent.state is AgentState.AVAILABLE:
            key = (agent.since, agent.queues)
            if self._idle_key.get(agent.agent_id) != key:
                self._idle_key[agent.agent_id] = key
                for queue in agent.queues:
                    heap = self._idle.setdefault(queue, [])
                    heapq.heappush(heap, (agent.since, agent.agent_id))
                    if len(heap) > 2 * len(self._logged_in.get(queue, ())) + 64:
                        self._compact_idle(queue)
        else:
            self._idle_key.pop(agent.agent_id, None)
        return agent

    def _compact_idle(self, queue: str) -> None:
        """Drop the stale entries of a queue's heap (churning agents leave some below its top)."""
        heap = sorted({entry for entry in self._idle[queue] if self._is_idle_entry(queue, *entry)})
        self._idle[queue] = heap  # a sorted list is a heap

    def _unindex(self, agent: AgentLive) -> None:
        self._in_state[agent.state].discard(agent.agent_id)
        for queue in dict.fromkeys(agent.queues):
            members = self._logged_in.get(queue)
            if members is not None:
                members.discard(agent.agent_id)
            self._members.get(queue, set()).discard(agent.agent_id)
            self._members_in_state[(queue, agent.state)] -= 1

    def _is_idle_entry(self, queue: str, since: datetime, agent_id: str) -> bool:
        agent = self._agents.get(agent_id)
        return (
            agent is not None
            and agent.state is AgentState.AVAILABLE
            and agent.since == since
            and queue in agent.queues
            and self._idle_key.get(agent_id) == (since, agent.queues)
        )

    # -- reading -------------------------------------------------------------------------------

    def call(self, call_id: str) -> CallTrack | None:
        """A live or remembered decided call."""
        return self._calls.get(call_id) or self._ended.get(call_id)

    def live_calls(self) -> tuple[CallTrack, ...]:
        """Calls not decided yet, in arrival order."""
        return tuple(self._calls.values())

    def agent(self, agent_id: str) -> AgentLive | None:
        return self._agents.get(agent_id)

    def agents(self, queue: str | None = None) -> tuple[AgentLive, ...]:
        """All agents, or the members of ``queue``, by id."""
        if queue is None:
            return tuple(self._agents[a] for a in sorted(self._agents))
        # From the membership index: the live estimates read this for every caller.
        return tuple(self._agents[a] for a in sorted(self._members.get(queue, ())))

    def position(self, call_id: str) -> int | None:
        """The call's place in its waiting list (1 is next), ``None`` when it is not waiting."""
        track = self._calls.get(call_id)
        place = self._place_of.get(call_id)
        if track is None or not track.is_waiting or track.queue is None or place is None:
            return None
        return bisect.bisect_left(self._waiting.get(track.queue, []), place) + 1

    def waiting(self, queue: str, now: datetime) -> tuple[WaitingCaller, ...]:
        """The queue's waiting callers in FIFO order of enqueue time, with their wait so far."""
        callers = []
        for index, (enqueued_at, _, call_id) in enumerate(self._waiting.get(queue, ())):
            track = self._calls[call_id]
            callers.append(
                WaitingCaller(
                    call_id=call_id,
                    caller=track.caller,
                    caller_name=track.caller_name,
                    queue=queue,
                    enqueued_at=enqueued_at,
                    wait_s=track.wait_s(now) or 0.0,
                    position=index + 1,
                    ringing_agent=track.ringing_agent,
                )
            )
        return tuple(callers)

    def waiting_unrung(self, queue: str, *, after: WaitingKey | None = None) -> Iterator[WaitingKey]:
        """The places of the queue's waiting calls no agent is ringing for, in FIFO order (from their
        own index: with agents slow to answer, most of the line may be ringing).

        The key is ``(enqueued_at, arrival sequence, call_id)``; ``after`` starts past that place.
        Lazy, for the dispatcher: iterate without changing the board meanwhile.
        """
        entries = self._unrung.get(queue, [])
        start = 0 if after is None else bisect.bisect_right(entries, after)
        for index in range(start, len(entries)):
            yield entries[index]

    def members_in(self, queue: str, states: Collection[AgentState]) -> int:
        """How many members of ``queue`` are in one of ``states`` (counts kept on each change, no scan:
        every announcement's estimate asks)."""
        return sum(self._members_in_state.get((queue, state), 0) for state in states)

    def waiting_count(self, queue: str) -> int:
        return len(self._waiting.get(queue, ()))

    def head_wait_s(self, queue: str, now: datetime) -> float:
        """How long the first caller waiting in ``queue`` has waited (0 with nobody waiting)."""
        entries = self._waiting.get(queue)
        if not entries:
            return 0.0
        return self._calls[entries[0][2]].wait_s(now) or 0.0

    def waiting_before(self, queue: str, at: datetime) -> int:
        """Callers waiting in ``queue`` who were queued before ``at``."""
        return bisect.bisect_left(self._waiting.get(queue, []), (at,))

    def view(self, queue: str, now: datetime) -> QueueView:
        """What ``GET /api/v1/queues/{queue}/live`` shows."""
        return QueueView(queue=queue, waiting=self.waiting(queue, now), agents=self.agents(queue))

    def pick_agent(self, queue: str, *, exclude: Collection[str] = ()) -> str | None:
        """The longest-idle available member of ``queue`` (earliest ``since``; ties by id), or ``None``."""
        heap = self._idle.get(queue)
        if not heap:
            return None
        passed: list[tuple[datetime, str]] = []
        found: str | None = None
        while heap:
            since, agent_id = heap[0]
            if not self._is_idle_entry(queue, since, agent_id):
                heapq.heappop(heap)  # stale: the agent changed since it was pushed
            elif agent_id in exclude:
                passed.append(heapq.heappop(heap))
            else:
                found = agent_id
                break
        for entry in passed:
            heapq.heappush(heap, entry)
        return found

    def agents_in(self, state: AgentState) -> tuple[AgentLive, ...]:
        """The agents in ``state``, by id."""
        return tuple(self._agents[a] for a in sorted(self._in_state[state]))

    def logged_in(self, queue: str) -> int:
        """Members of ``queue`` who are logged in (paused ones included)."""
        return len(self._logged_in.get(queue, ()))

    def admission(self, queue: str) -> ExitReason | None:
        """Why a new caller may not join ``queue`` now (full, or nobody logged in), else ``None``.

        Business hours are decided by the caller of this method; an unknown queue has no limits.
        """
        settings = self._queues.get(queue)
        if settings is None:
            return None
        if settings.max_callers is not None and len(self._waiting.get(queue, ())) >= settings.max_callers:
            return ExitReason.FULL
        if not settings.join_empty and self.logged_in(queue) == 0:
            return ExitReason.NO_AGENTS
        return None

    def overdue(self, now: datetime) -> tuple[str, ...]:
        """Waiting calls that reached their queue's max wait (oldest first): send them ``QueueExit``."""
        due: list[tuple[datetime, str]] = []
        for queue, entries in self._waiting.items():
            settings = self._queues.get(queue)
            if settings is None:
                continue
            limit = timedelta(seconds=settings.max_wait_s)
            due.extend((at, call_id) for at, _, call_id in entries if now - at >= limit)
        return tuple(call_id for _, call_id in sorted(due))

    def reconcile(self, present_channel_ids: Collection[str], now: datetime) -> tuple[Reconciled, ...]:
        """After a resync: the live calls whose caller channel is no longer in ``GET /channels``."""
        return tuple(
            Reconciled(call_id=t.call_id, at=now)
            for t in self._calls.values()
            if t.channel_id not in present_channel_ids
        )

    # -- time ----------------------------------------------------------------------------------

    def expire_wrap_ups(self, now: datetime) -> tuple[AgentStateChanged, ...]:
        """End the wrap-up of every agent whose wrap-up time has passed at ``now``."""
        limit = timedelta(seconds=self._policy.wrap_up_s)
        events: list[AgentStateChanged] = []
        for agent in sorted(self._agents.values(), key=lambda a: a.agent_id):
            if agent.state is AgentState.WRAP_UP and now - agent.since >= limit:
                events += self._release(agent.agent_id, now, "wrap-up ended")
        return tuple(events)

    # -- facts ---------------------------------------------------------------------------------

    def apply(self, fact: Fact) -> Step:
        """Apply one fact. Facts arrive at least once and maybe late: repeats change nothing."""
        if isinstance(fact, AgentFact):
            return self._apply_agent_fact(fact)
        return self._apply_call_fact(fact)

    def _apply_call_fact(self, fact: AnyCallFact) -> Step:
        track = self._calls.get(fact.call_id)
        if track is None:
            if fact.call_id in self._ended:
                return self._with_agent_side(fact, IgnoreReason.ALREADY_ENDED)
            if isinstance(fact, CallArrived):
                track = CallTrack.start(fact)
                self._calls[fact.call_id] = track
                return Step(record=to_record(track))
            return self._with_agent_side(fact, IgnoreReason.UNKNOWN_CALL)
        if isinstance(fact, AgentOffered) and not self._can_offer(fact.agent_id, fact.call_id):
            return Step(ignored=IgnoreReason.AGENT_UNAVAILABLE)
        short_s = self._short_abandon_s(track.queue)
        # The place in the waiting list is kept when the call leaves it; only those facts need it.
        position = None if isinstance(fact, _STAYS_WAITING) else self.position(track.call_id)
        new, ignored = advance(track, fact, position=position, short_abandon_s=short_s)
        if ignored is not None:
            return self._with_agent_side(fact, ignored)
        self._sync_waiting(track, new)
        events: list[DomainEvent] = list(_waiting_events(track, new, fact.at))
        events += self._agents_follow_call(track, new, fact)
        if new.outcome is not None:
            del self._calls[new.call_id]
            self._remember_ended(new)
            events.append(to_call_ended(new))
        else:
            self._calls[new.call_id] = new
        return Step(events=tuple(events), record=to_record(new))

    def _with_agent_side(self, fact: AnyCallFact, ignored: IgnoreReason) -> Step:
        """A fact the call ignored may still end an agent's ring or talk that we have not closed."""
        events = self._agent_leg_ended(fact)
        return Step(events=events) if events else Step(ignored=ignored)

    def _short_abandon_s(self, queue: str | None) -> float:
        settings = self._queues.get(queue) if queue is not None else None
        return float(settings.short_abandon_s) if settings is not None else DEFAULT_SHORT_ABANDON_S

    def _can_offer(self, agent_id: str, call_id: str) -> bool:
        agent = self._agents.get(agent_id)
        if agent is None or agent.state is AgentState.AVAILABLE:
            return True
        return agent.state is AgentState.RINGING and agent.call_id == call_id

    def _remember_ended(self, track: CallTrack) -> None:
        self._ended[track.call_id] = track
        while len(self._ended) > self._ended_memory:
            self._ended.popitem(last=False)

    def _sync_waiting(self, old: CallTrack, new: CallTrack) -> None:
        """Keep the waiting lists (every waiting call, and those no agent rings for) in step."""
        place = self._place_of.get(old.call_id)
        if old.is_waiting and old.queue is not None and place is not None:
            was_unrung = old.ringing_agent is None
            if not new.is_waiting:
                del self._place_of[old.call_id]
                _discard(self._waiting.get(old.queue, []), place)
                if was_unrung:
                    _discard(self._unrung.get(old.queue, []), place)
            elif was_unrung and new.ringing_agent is not None:
                _discard(self._unrung.get(old.queue, []), place)
            elif not was_unrung and new.ringing_agent is None:
                bisect.insort(self._unrung.setdefault(old.queue, []), place)
        if new.is_waiting and not old.is_waiting and new.queue is not None and new.queued_at is not None:
            place = (new.queued_at, next(self._sequence), new.call_id)
            self._place_of[new.call_id] = place
            bisect.insort(self._waiting.setdefault(new.queue, []), place)
            if new.ringing_agent is None:
                bisect.insort(self._unrung.setdefault(new.queue, []), place)

    # -- agents following calls -----------------------------------------------------------------

    def _agents_follow_call(
        self, old: CallTrack, new: CallTrack, fact: AnyCallFact
    ) -> tuple[AgentStateChanged, ...]:
        """Agent changes caused by a call's accepted step."""
        events: list[AgentStateChanged] = []
        at = fact.at
        previous = old.ringing_agent
        if previous is not None and previous != new.ringing_agent and not _concerns(fact, previous):
            # The offer to `previous` was withdrawn (another agent, an exit, the caller left): no miss.
            events += self._release_if(previous, AgentState.RINGING, new.call_id, at, "offer withdrawn")
        if isinstance(fact, AgentOffered | AgentRinging) and new.ringing_agent == fact.agent_id:
            agent = self._agents.get(fact.agent_id)
            if agent is not None and agent.state is AgentState.AVAILABLE:
                events += self._set(
                    fact.agent_id, AgentState.RINGING, at, f"offered call {new.call_id}", new.call_id
                )
        elif isinstance(fact, CallAnswered) and fact.agent_id in self._agents:
            events += self._set(
                fact.agent_id, AgentState.BUSY, at, f"answered call {new.call_id}", new.call_id
            )
            self._put(dataclasses.replace(self._agents[fact.agent_id], misses=0))
        if new.outcome is not None and new.agent_id is not None:
            events += self._end_talk(new.agent_id, new.call_id, at, "caller hung up")
        events += self._agent_leg_ended(fact)
        return tuple(events)

    def _agent_leg_ended(self, fact: AnyCallFact) -> tuple[AgentStateChanged, ...]:
        """An agent's ring or talk for this call ended, whatever the call made of the fact."""
        if isinstance(fact, AgentNoAnswer):
            agent = self._agents.get(fact.agent_id)
            if agent is None or agent.state is not AgentState.RINGING or agent.call_id != fact.call_id:
                return ()
            return self._missed(agent, fact)
        if isinstance(fact, AgentHungUp):
            return self._end_talk(fact.agent_id, fact.call_id, fact.at, "agent hung up")
        return ()

    def _missed(self, agent: AgentLive, fact: AgentNoAnswer) -> tuple[AgentStateChanged, ...]:
        misses = agent.misses + (1 if fact.reason.is_miss else 0)
        self._put(dataclasses.replace(agent, misses=misses))
        limit = self._policy.max_misses
        if (
            fact.reason.is_miss
            and limit > 0
            and misses >= limit
            and agent.pending is not AgentState.LOGGED_OUT
        ):
            reason = f"missed {misses} calls in a row"
            return self._set(agent.agent_id, AgentState.PAUSED, fact.at, reason, clear_pending=True)
        return self._release(agent.agent_id, fact.at, f"no answer ({fact.reason})")

    def _end_talk(
        self, agent_id: str, call_id: str, at: datetime, reason: str
    ) -> tuple[AgentStateChanged, ...]:
        agent = self._agents.get(agent_id)
        if agent is None or agent.state is not AgentState.BUSY or agent.call_id != call_id:
            return ()
        if self._policy.wrap_up_s > 0:
            return self._set(agent_id, AgentState.WRAP_UP, at, reason)
        return self._release(agent_id, at, reason)

    def _release_if(
        self, agent_id: str, state: AgentState, call_id: str, at: datetime, reason: str
    ) -> tuple[AgentStateChanged, ...]:
        agent = self._agents.get(agent_id)
        if agent is None or agent.state is not state or agent.call_id != call_id:
            return ()
        return self._release(agent_id, at, reason)

    def _release(self, agent_id: str, at: datetime, reason: str) -> tuple[AgentStateChanged, ...]:
        """Back to available, or to the pause or log-out asked for meanwhile."""
        pending = self._agents[agent_id].pending
        return self._set(agent_id, pending or AgentState.AVAILABLE, at, reason, clear_pending=True)

    def _set(
        self,
        agent_id: str,
        state: AgentState,
        at: datetime,
        reason: str,
        call_id: str | None = None,
        *,
        clear_pending: bool = False,
    ) -> tuple[AgentStateChanged, ...]:
        """Move an agent to ``state``; ``since`` restarts only when the state changes."""
        agent = self._agents[agent_id]
        self._put(
            dataclasses.replace(
                agent,
                state=state,
                since=at if state is not agent.state else agent.since,
                call_id=call_id if state in _IN_CALL else None,
                pending=None if clear_pending else agent.pending,
            )
        )
        if state is agent.state:
            return ()
        return (
            AgentStateChanged(
                event_id=f"agent:{agent_id}:{at.isoformat()}:{state}",
                occurred_at=at,
                agent_id=agent_id,
                state=state,
                previous=agent.state,
                reason=reason,
            ),
        )

    # -- agent facts ---------------------------------------------------------------------------

    def _apply_agent_fact(self, fact: AnyAgentFact) -> Step:
        agent = self._agents.get(fact.agent_id)
        if agent is None:
            return Step(ignored=IgnoreReason.UNKNOWN_AGENT)
        if isinstance(fact, AgentLoggedIn) and fact.queues is not None:
            agent = self._put(dataclasses.replace(agent, queues=fact.queues))
        events = self._agent_transition(agent, fact)
        if events is None:
            return Step(ignored=IgnoreReason.DUPLICATE)
        return Step(events=events)

    def _agent_transition(self, agent: AgentLive, fact: AnyAgentFact) -> tuple[AgentStateChanged, ...] | None:
        """The events of an agent fact, or ``None`` when it changes nothing."""
        state, at, busy = agent.state, fact.at, agent.state in _IN_CALL
        match fact:
            case AgentLoggedIn():
                if state is not AgentState.LOGGED_OUT:
                    return None
                self._put(dataclasses.replace(agent, misses=0))
                return self._set(agent.agent_id, AgentState.AVAILABLE, at, "logged in", clear_pending=True)
            case AgentLoggedOut():
                if state is AgentState.LOGGED_OUT or agent.pending is AgentState.LOGGED_OUT:
                    return None
                return self._defer_or_set(agent, AgentState.LOGGED_OUT, at, "logged out", busy)
            case AgentPaused(reason=reason):
                if state in (AgentState.PAUSED, AgentState.LOGGED_OUT) or agent.pending is not None:
                    return None
                return self._defer_or_set(agent, AgentState.PAUSED, at, reason or "paused", busy)
            case AgentUnpaused():
                if agent.pending is AgentState.PAUSED:
                    self._put(dataclasses.replace(agent, pending=None))
                    return ()
                if state is not AgentState.PAUSED:
                    return None
                self._put(dataclasses.replace(agent, misses=0))
                return self._set(agent.agent_id, AgentState.AVAILABLE, at, "unpaused")
            case AgentWrapUpEnded():
                if state is not AgentState.WRAP_UP:
                    return None
                return self._release(agent.agent_id, at, "wrap-up ended")
            case AgentWrapUpStarted():
                return self._wrap_up_after(agent, fact)
        return None

    def _wrap_up_after(
        self, agent: AgentLive, fact: AgentWrapUpStarted
    ) -> tuple[AgentStateChanged, ...] | None:
        """Wrap-up after a call outside the queue, then ``fact.then`` (the wrap-up ends it)."""
        if agent.state in (AgentState.LOGGED_OUT, AgentState.WRAP_UP) or agent.state in _IN_CALL:
            return None
        if self._policy.wrap_up_s <= 0:
            return self._set(
                agent.agent_id, fact.then or AgentState.AVAILABLE, fact.at, fact.reason, clear_pending=True
            )
        events = self._set(agent.agent_id, AgentState.WRAP_UP, fact.at, fact.reason, clear_pending=True)
        self._put(dataclasses.replace(self._agents[agent.agent_id], pending=fact.then))
        return events

    def _defer_or_set(
        self, agent: AgentLive, state: AgentState, at: datetime, reason: str, busy: bool
    ) -> tuple[AgentStateChanged, ...]:
        if busy:
            # Ringing or talking: the request waits for the end of the call.
            self._put(dataclasses.replace(agent, pending=state))
            return ()
        return self._set(agent.agent_id, state, at, reason, clear_pending=True)


def _waiting_events(old: CallTrack, new: CallTrack, at: datetime) -> tuple[DomainEvent, ...]:
    """``CallQueued`` when a call starts waiting, ``CallLeftQueue`` when it stops (the live board's feed)."""
    if new.is_waiting and not old.is_waiting and new.queue is not None and new.queued_at is not None:
        return (
            CallQueuedEvent(
                event_id=f"queued:{new.call_id}",
                occurred_at=new.queued_at,
                call_id=new.call_id,
                queue=new.queue,
                caller=new.caller.display,
            ),
        )
    if old.is_waiting and not new.is_waiting and old.queue is not None:
        return (
            CallLeftQueue(
                event_id=f"left:{new.call_id}",
                occurred_at=at,
                call_id=new.call_id,
                queue=old.queue,
                wait_s=new.wait_s(at) or 0.0,
                agent_id=new.agent_id if new.answered_at is not None else None,
            ),
        )
    return ()


def _concerns(fact: AnyCallFact, agent_id: str) -> bool:
    """True when ``fact`` itself settles ``agent_id``'s offer (their own no-answer or answer)."""
    return isinstance(fact, AgentNoAnswer | CallAnswered) and fact.agent_id == agent_id


def _discard(entries: list[WaitingKey], place: WaitingKey) -> None:
    """Remove ``place`` from the sorted ``entries`` if it is there."""
    index = bisect.bisect_left(entries, place)
    if index < len(entries) and entries[index] == place:
        del entries[index]
