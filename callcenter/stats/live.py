"""Live statistics folded incrementally from domain events, per queue and overall (pure).

:class:`LiveStats` never reads a store or the clock: it is fed domain events (``CallQueued``,
``CallLeftQueue``, ``CallEnded``, ``AgentStateChanged``, ``AgentQueuesChanged``) and asked for a
:class:`Snapshot` at ``now``. Counted figures come from today's :class:`IntervalBook` through
:func:`~callcenter.stats.definitions.figures`, exactly as the historical views compute them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo

from callcenter.model.events import (
    AgentQueuesChanged,
    AgentStateChanged,
    CallbackStateChanged,
    CallEnded,
    CallLeftQueue,
    CallQueued,
    DomainEvent,
    VoicemailRecorded,
)
from callcenter.model.vocabulary import AgentState, CallOutcome
from callcenter.stats.definitions import Counts, StatsConfig, figures, total
from callcenter.stats.followups import AtRisk, FollowUps
from callcenter.stats.intervals import (
    NO_QUEUE,
    IntervalBook,
    IntervalKey,
    MissedCall,
    day_start,
    ended_from_event,
    interval_start,
    reached_from_event,
)

Figures = dict[str, float | int | None]

_AGENT_FIGURES = {
    AgentState.AVAILABLE: "agents_available",
    AgentState.RINGING: "agents_ringing",
    AgentState.BUSY: "agents_busy",
    AgentState.WRAP_UP: "agents_wrap_up",
    AgentState.PAUSED: "agents_paused",
}


@dataclass(frozen=True, kw_only=True, slots=True)
class Waiting:
    """One caller waiting now."""

    call_id: str
    queue: str
    caller: str
    since: datetime


@dataclass(frozen=True, kw_only=True, slots=True)
class AgentSeen:
    state: AgentState
    since: datetime
    queues: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True, slots=True)
class IntervalPoint:
    """One 15-minute interval of today's charts (all queues)."""

    start: datetime
    offered: int
    answered: int
    abandoned: int
    service_level: float | None
    peak_waiting: int


@dataclass(frozen=True, kw_only=True, slots=True)
class Snapshot:
    """The wallboard's picture at ``at``: figures by the dictionary's names, and the lists behind them."""

    at: datetime
    since: datetime
    overall: Figures
    queues: Mapping[str, Figures]
    waiting: tuple[Waiting, ...]
    open_missed: tuple[MissedCall, ...]
    day: tuple[IntervalPoint, ...]
    #: Promised callbacks about to be (or already) broken with nobody dialled yet.
    at_risk: tuple[AtRisk, ...] = ()


@dataclass(slots=True)
class LiveStats:
    """Today's live figures from the events seen so far.

    :param config: the definitions' parameters.
    :param zone: the time zone whose midnight starts "today".
    :param queues: the queues to show even before they saw a call.
    """

    config: StatsConfig
    zone: tzinfo = UTC
    queues: set[str] = field(default_factory=set)
    book: IntervalBook = field(init=False)
    _day: datetime | None = None
    _waiting: dict[str, Waiting] = field(default_factory=dict)
    _agents: dict[str, AgentSeen] = field(default_factory=dict)
    _peaks: dict[datetime, int] = field(default_factory=dict)
    # Per agent, today: (calls answered, talk seconds), from the CallEnded events folded here.
    _answered_by: dict[str, tuple[int, float]] = field(default_factory=dict)
    followups: FollowUps = field(default_factory=FollowUps)

    def __post_init__(self) -> None:
        self.book = IntervalBook(config=self.config)

    # -- feeding ------------------------------------------------------------------------------------

    def load(self, counts: Iterable[tuple[IntervalKey, Counts]], missed: Iterable[MissedCall]) -> None:
        """Start from stored interval rows and missed calls (today's), before events are applied."""
        for key, value in counts:
            self.book.counts[key] = self.book.counts.get(key, Counts()) + value
        for item in missed:
            self.book.add_missed(item)

    def load_agents(self, answered: dict[str, tuple[int, float]]) -> None:
        """Start the agents' own figures from the stored calls of today (before events are applied)."""
        self._answered_by = dict(answered)

    def reset_counts(self) -> None:
        """Forget every count and missed call (before loading rebuilt rows); live gauges stay."""
        self.book = IntervalBook(config=self.config)

    def mark_seen(self, call_ids: Iterable[str]) -> None:
        """Calls already in the loaded rows: their ``CallEnded``, if it comes again, is a repeat."""
        self.book.remember(call_ids)

    def set_agent(self, agent_id: str, state: AgentState, since: datetime, queues: tuple[str, ...]) -> None:
        self._agents[agent_id] = AgentSeen(state=state, since=since, queues=queues)

    def apply(self, event: DomainEvent) -> bool:
        """Fold one event; ``True`` when it changed what a snapshot shows. Repeats change nothing."""
        match event:
            case CallQueued():
                if event.call_id in self._waiting or self.book.has_seen(event.call_id):
                    return False
                self.queues.add(event.queue)
                self._waiting[event.call_id] = Waiting(
                    call_id=event.call_id, queue=event.queue, caller=event.caller, since=event.occurred_at
                )
                self._note_peak(event.occurred_at)
                return True
            case CallLeftQueue():
                scored = self.followups.apply(event)
                return self._waiting.pop(event.call_id, None) is not None or scored
            case CallEnded():
                self.followups.apply(event)
                self._waiting.pop(event.call_id, None)
                if event.queue:
                    self.queues.add(event.queue)
                folded = bool(self.book.apply(ended_from_event(event)).deltas)
                if folded and event.outcome is CallOutcome.ANSWERED and event.agent_id:
                    self._note_answer(event)
                return folded
            case AgentStateChanged():
                known = self._agents.get(event.agent_id)
                if known is not None and known.state is event.state and known.since >= event.occurred_at:
                    return False
                queues = known.queues if known is not None else ()
                self._agents[event.agent_id] = AgentSeen(
                    state=event.state, since=event.occurred_at, queues=queues
                )
                return True
            case AgentQueuesChanged():
                known = self._agents.get(event.agent_id)
                state = known.state if known is not None else AgentState.LOGGED_OUT
                since = known.since if known is not None else event.occurred_at
                self._agents[event.agent_id] = AgentSeen(state=state, since=since, queues=event.queues)
                self.queues.update(event.queues)
                return True
            case CallbackStateChanged():
                self.queues.add(event.queue)
                reached = reached_from_event(event)
                closed = reached is not None and bool(self.book.reach(reached).closed)
                return self.followups.apply(event) or closed
            case VoicemailRecorded() if event.queue:
                self.queues.add(event.queue)
        return self.followups.apply(event)

    def _note_answer(self, event: CallEnded) -> None:
        if self._day is not None and event.occurred_at < self._day:
            return
        assert event.agent_id is not None
        calls, talk = self._answered_by.get(event.agent_id, (0, 0.0))
        self._answered_by[event.agent_id] = (calls + 1, talk + event.talk_s)

    def agent_figures(self, agent_id: str, now: datetime) -> Figures:
        """An agent's own figures today (``agent_*`` in the dictionary) and their state now."""
        self.roll(now)
        calls, talk = self._answered_by.get(agent_id, (0, 0.0))
        return {
            "agent_calls_answered": calls,
            "agent_talk_s": round(talk, 1),
            "agent_aht_s": round(talk / calls, 1) if calls else None,
        }

    def agent_state(self, agent_id: str) -> AgentSeen | None:
        return self._agents.get(agent_id)

    def _note_peak(self, at: datetime) -> None:
        start = interval_start(at)
        self._peaks[start] = max(self._peaks.get(start, 0), len(self._waiting))

    # -- reading ------------------------------------------------------------------------------------

    def roll(self, now: datetime) -> datetime:
        """Forget what ended before today's start (local midnight); return that start."""
        start = day_start(now, self.zone)
        if self._day != start:
            if self._day is not None:
                self._answered_by = {}  # a new day (the first roll keeps what was loaded)
            self._day = start
            self.book.forget_before(start)
            self.followups.forget_before(start)
            self._peaks = {k: v for k, v in self._peaks.items() if k >= start}
        return start

    def snapshot(self, now: datetime) -> Snapshot:
        since = self.roll(now)
        until = since + timedelta(days=2)
        rows = list(self.book.window(since, until))
        names = sorted(self.queues | {k.queue for k, _ in rows if k.queue != NO_QUEUE})
        queues = {
            name: self._figures(name, [v for k, v in rows if k.queue == name], now, since) for name in names
        }
        overall = self._figures(None, [v for _, v in rows], now, since)
        waiting = tuple(sorted(self._waiting.values(), key=lambda w: (w.since, w.call_id)))
        open_missed = tuple(
            sorted(
                (m for m in self.book.missed.values() if m.is_open and m.ended_at >= since),
                key=lambda m: m.ended_at,
            )
        )
        return Snapshot(
            at=now,
            since=since,
            overall=overall,
            queues=queues,
            waiting=waiting,
            open_missed=open_missed,
            day=self._day_points(rows),
            at_risk=self.followups.at_risk(now),
        )

    def _figures(self, queue: str | None, counts: list[Counts], now: datetime, since: datetime) -> Figures:
        waiting = [w for w in self._waiting.values() if queue is None or w.queue == queue]
        agents = [a for a in self._agents.values() if queue is None or queue in a.queues]
        live: Figures = {
            "calls_waiting": len(waiting),
            "longest_wait_s": round(max(((now - w.since).total_seconds() for w in waiting), default=0.0), 1),
            "agents_logged_in": sum(1 for a in agents if a.state is not AgentState.LOGGED_OUT),
        }
        for state, name in _AGENT_FIGURES.items():
            live[name] = sum(1 for a in agents if a.state is state)
        return {**live, **self.followups.figures(queue, now, since), **figures(total(counts), self.config)}

    def _day_points(self, rows: list[tuple[IntervalKey, Counts]]) -> tuple[IntervalPoint, ...]:
        by_start: dict[datetime, Counts] = {}
        for key, value in rows:
            by_start[key.start] = by_start.get(key.start, Counts()) + value
        starts = sorted(set(by_start) | set(self._peaks))
        points = []
        for start in starts:
            c = by_start.get(start, Counts())
            sl = figures(c, self.config)["service_level"]
            points.append(
                IntervalPoint(
                    start=start,
                    offered=c.offered,
                    answered=c.answered,
                    abandoned=c.abandoned + c.short_abandoned,
                    service_level=float(sl) if sl is not None else None,
                    peak_waiting=self._peaks.get(start, 0),
                )
            )
        return tuple(points)
