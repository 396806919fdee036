"""15-minute interval counts per queue and the missed-call list, folded from ended calls (pure).

:class:`IntervalBook` is the one fold both sides use: the live board feeds it ``CallEnded`` events as
they arrive, the historical rebuild feeds it the stored calls in the order they ended, and the SQL
materialiser applies the :class:`BookChange` it returns. A call counts in the interval it ended in;
closing a missed call later adds to that same interval.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Final

from callcenter.model.events import CallbackStateChanged, CallEnded
from callcenter.model.records import CallRecord
from callcenter.model.vocabulary import ActorKind, CallbackState, CallOutcome
from callcenter.stats.definitions import (
    INTERVAL_S,
    Counts,
    EndedCall,
    StatsConfig,
    closure_contribution,
    contribution,
)

#: The queue key of calls that never reached a queue (they count in the overall figures only).
NO_QUEUE: Final = ""


def interval_start(at: datetime) -> datetime:
    """The start (UTC) of the 15-minute interval holding ``at``."""
    utc = at.astimezone(UTC)
    seconds = (utc.minute * 60 + utc.second) // INTERVAL_S * INTERVAL_S
    return utc.replace(minute=seconds // 60, second=0, microsecond=0)


@dataclass(frozen=True, kw_only=True, slots=True)
class IntervalKey:
    queue: str
    start: datetime


@dataclass(frozen=True, kw_only=True, slots=True)
class MissedCall:
    """One missed call in the missed-call list, with whether and by whom the caller was reached."""

    call_id: str
    queue: str
    caller: str
    outcome: CallOutcome
    ended_at: datetime
    closable: bool
    closed_at: datetime | None = None
    closed_by_agent: str | None = None
    closed_by_call: str | None = None

    @property
    def is_open(self) -> bool:
        return self.closable and self.closed_at is None


@dataclass(frozen=True, kw_only=True, slots=True)
class BookChange:
    """What one ended call changed: count deltas by interval, a new missed call, missed calls closed."""

    deltas: tuple[tuple[IntervalKey, Counts], ...] = ()
    missed: MissedCall | None = None
    closed: tuple[MissedCall, ...] = ()


def ended_from_event(event: CallEnded) -> EndedCall:
    return EndedCall(
        call_id=event.call_id,
        queue=event.queue,
        outcome=event.outcome,
        ended_at=event.occurred_at,
        caller=event.caller,
        wait_s=event.wait_s,
        talk_s=event.talk_s,
        agent_id=event.agent_id,
    )


def ended_from_record(record: CallRecord) -> EndedCall | None:
    """The stored call as the fold sees it; ``None`` while it is live (no outcome yet)."""
    if record.outcome is None or record.ended_at is None:
        return None
    return EndedCall(
        call_id=record.id,
        queue=record.queue,
        outcome=record.outcome,
        ended_at=record.ended_at,
        caller=record.caller,
        wait_s=record.wait_s or 0.0,
        talk_s=record.talk_s or 0.0,
        agent_id=record.agent_id,
    )


@dataclass(slots=True)
class IntervalBook:
    """Interval counts and missed calls folded from ended calls, each call once.

    :param config: the definitions' parameters (thresholds, closure window).
    :param memory: how many call ids are remembered to drop repeats (facts arrive at least once).
    """

    config: StatsConfig
    memory: int = 200_000
    counts: dict[IntervalKey, Counts] = field(default_factory=dict)
    missed: dict[str, MissedCall] = field(default_factory=dict)
    _open_by_caller: dict[str, list[str]] = field(default_factory=dict)
    _seen: OrderedDict[str, None] = field(default_factory=OrderedDict)

    def has_seen(self, call_id: str) -> bool:
        return call_id in self._seen

    def remember(self, call_ids: Iterable[str]) -> None:
        """Calls already counted elsewhere (stored rows loaded at start-up): their repeats change nothing."""
        for call_id in call_ids:
            self._seen[call_id] = None
        while len(self._seen) > self.memory:
            self._seen.popitem(last=False)

    def apply(self, call: EndedCall) -> BookChange:
        """Fold one ended call; a repeat of a call already folded changes nothing."""
        if call.call_id in self._seen:
            return BookChange()
        self.remember((call.call_id,))
        key = IntervalKey(queue=call.queue or NO_QUEUE, start=interval_start(call.ended_at))
        deltas = [(key, contribution(call, self.config))]
        new_missed = missed_of(call)
        closed: list[MissedCall] = []
        if new_missed is not None:
            self.add_missed(new_missed)
        elif call.caller:
            open_ids = self._open_by_caller.pop(call.caller, [])
            closed = list(close_missed((self.missed[i] for i in open_ids), call))
            for item in closed:
                self.missed[item.call_id] = item
                deltas.append(
                    (closure_key(item), closure_contribution(item.ended_at, call.reached_at, self.config))
                )
            still_open = [i for i in open_ids if self.missed[i].is_open]
            if still_open:
                self._open_by_caller[call.caller] = still_open
        for delta_key, delta in deltas:
            self.counts[delta_key] = self.counts.get(delta_key, Counts()) + delta
        return BookChange(deltas=tuple(deltas), missed=new_missed, closed=tuple(closed))

    def reach(self, reached: Reached) -> BookChange:
        """Close the open missed calls of ``reached.number`` that ended before it was reached (a
        callback connected); a repeat closes nothing more."""
        open_ids = self._open_by_caller.pop(reached.number, [])
        closed = list(close_reached((self.missed[i] for i in open_ids), reached))
        deltas = []
        for item in closed:
            self.missed[item.call_id] = item
            deltas.append((closure_key(item), closure_contribution(item.ended_at, reached.at, self.config)))
        still_open = [i for i in open_ids if self.missed[i].is_open]
        if still_open:
            self._open_by_caller[reached.number] = still_open
        for delta_key, delta in deltas:
            self.counts[delta_key] = self.counts.get(delta_key, Counts()) + delta
        return BookChange(deltas=tuple(deltas), closed=tuple(closed))

    def add_missed(self, missed: MissedCall) -> None:
        """Know a missed call (folded here, or loaded from the store at start-up)."""
        self.missed[missed.call_id] = missed
        if missed.is_open:
            self._open_by_caller.setdefault(missed.caller, []).append(missed.call_id)

    def forget_before(self, start: datetime) -> None:
        """Drop intervals and missed calls that ended before ``start`` (the live board's day rolls over)."""
        self.counts = {k: v for k, v in self.counts.items() if k.start >= start}
        for call_id in [c for c, m in self.missed.items() if m.ended_at < start]:
            missed = self.missed.pop(call_id)
            ids = self._open_by_caller.get(missed.caller)
            if ids and call_id in ids:
                ids.remove(call_id)
                if not ids:
                    del self._open_by_caller[missed.caller]

    def window(self, since: datetime, until: datetime) -> Iterable[tuple[IntervalKey, Counts]]:
        return ((k, v) for k, v in self.counts.items() if since <= k.start < until)


def missed_of(call: EndedCall) -> MissedCall | None:
    """The missed-call list entry of a call, ``None`` for an answered one."""
    if not call.outcome.is_missed:
        return None
    return MissedCall(
        call_id=call.call_id,
        queue=call.queue or NO_QUEUE,
        caller=call.caller,
        outcome=call.outcome,
        ended_at=call.ended_at,
        closable=call.closable,
    )


def close_missed(candidates: Iterable[MissedCall], call: EndedCall) -> Iterator[MissedCall]:
    """The open missed calls an answered ``call`` closes, closed: same number, ended before it was reached."""
    if call.outcome is not CallOutcome.ANSWERED or not call.caller:
        return
    for missed in candidates:
        if missed.is_open and missed.caller == call.caller and missed.ended_at < call.reached_at:
            yield dataclasses.replace(
                missed, closed_at=call.reached_at, closed_by_agent=call.agent_id, closed_by_call=call.call_id
            )


@dataclass(frozen=True, kw_only=True, slots=True)
class Reached:
    """A caller reached by a callback: its attempt reached ``connected`` at ``at``.

    ``by`` names what closed the missed calls in the list (``callback:<id>``).
    """

    number: str
    at: datetime
    by: str
    agent_id: str | None = None


def reached_from_event(event: CallbackStateChanged) -> Reached | None:
    """The reaching a callback event tells of: a move to ``connected``, else ``None``."""
    if event.state is not CallbackState.CONNECTED or not event.number:
        return None
    agent = event.actor if event.actor_kind is ActorKind.AGENT and event.actor else None
    return Reached(
        number=event.number, at=event.occurred_at, by=f"callback:{event.callback_id}", agent_id=agent
    )


def close_reached(candidates: Iterable[MissedCall], reached: Reached) -> Iterator[MissedCall]:
    """The open missed calls a connected callback closes, closed: same number, ended before it connected."""
    for missed in candidates:
        if missed.is_open and missed.caller == reached.number and missed.ended_at < reached.at:
            yield dataclasses.replace(
                missed, closed_at=reached.at, closed_by_agent=reached.agent_id, closed_by_call=reached.by
            )


def closure_key(missed: MissedCall) -> IntervalKey:
    """The interval a closure counts in: the one the missed call ended in."""
    return IntervalKey(queue=missed.queue, start=interval_start(missed.ended_at))


def rebuild(
    records: Iterable[CallRecord], config: StatsConfig, reaches: Iterable[Reached] = ()
) -> IntervalBook:
    """Fold stored calls in the order they ended, and the callbacks that connected in the order they
    did (``reaches``): the interval rows they make, and the missed-call list."""
    book = IntervalBook(config=config)
    calls = [c for c in (ended_from_record(r) for r in records) if c is not None]
    # At equal times calls come before reachings, and each keeps its given order (a stable sort), as
    # the live board saw them: sorting ties by id would reorder "c10" before "c8".
    steps: list[tuple[datetime, int, EndedCall | Reached]] = [(c.ended_at, 0, c) for c in calls]
    steps += [(r.at, 1, r) for r in reaches]
    for _, _, step in sorted(steps, key=lambda s: (s[0], s[1])):
        if isinstance(step, Reached):
            book.reach(step)
        else:
            book.apply(step)
    return book


def day_start(now: datetime, zone: tzinfo) -> datetime:
    """The start (UTC) of the local day in ``zone`` holding ``now``."""
    local = now.astimezone(zone)
    return local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)
