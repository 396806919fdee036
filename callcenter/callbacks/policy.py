"""Callback policy: when a kept place is due, when to offer a callback, and the closing-time sweep (pure).

Keep-my-place. Live callers and keep-my-place callbacks form ONE line ordered by original enqueue
time, then call id for ties (a kept place uses the id of the call it left:
:func:`~callcenter.callbacks.line.line_key`). With ``f`` agents predicted free, the first ``f`` entries of that line are
served now: the live callers among them go to agents the usual way, the callbacks among them are due.
So a callback is due exactly when its place reaches the head and an agent is predicted free: never
ahead of an earlier caller (who would be served first), never behind a later one (who cannot be
served while it waits). Live callers already ringing an agent hold that agent and are not in line;
callbacks due but not yet with an agent hold one each (``reserved``).

The offer. A caller is offered a callback when the predicted wait passes a threshold (the estimate's
80th percentile, the position, or callers per staffed agent) and a callback can actually be kept:
keep-my-place only when its "by" time plus grace falls before closing, a later time only when a slot
has room. No estimate (no agents, no history, the predictor unavailable): no offer.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

from callcenter.callbacks.line import line_key
from callcenter.callbacks.promise import DEFAULT_GRACE_S, announced_by
from callcenter.errors import ValidationError
from callcenter.model.callbacks import Callback
from callcenter.model.vocabulary import AgentState, CallbackKind, CallbackState
from callcenter.queue.hours import BusinessHours, is_open

# -- keep my place -------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class LiveCaller:
    """A caller waiting in the queue; ``offered`` while an agent is being rung for them."""

    call_id: str
    enqueued_at: datetime
    offered: bool = False


@dataclass(frozen=True, kw_only=True, slots=True)
class AgentNow:
    """An agent of the queue as the board shows them: state and since when."""

    state: AgentState
    since: datetime


@dataclass(frozen=True, kw_only=True, slots=True)
class DueDecision:
    """Who the predicted free agents go to now, in line order."""

    due: tuple[str, ...]  # callback ids to schedule now
    live: tuple[str, ...]  # live callers served ahead of or beside them
    free: int


def predicted_free_agents(
    agents: Iterable[AgentNow], *, now: datetime, wrap_up_s: float, lead_s: float, reserved: int = 0
) -> int:
    """Agents free now or within ``lead_s`` (wrap-ups ending by then), less the ``reserved`` ones."""
    horizon = now + timedelta(seconds=lead_s)
    free = 0
    for agent in agents:
        if agent.state is AgentState.AVAILABLE:
            free += 1
        elif agent.state is AgentState.WRAP_UP and agent.since + timedelta(seconds=wrap_up_s) <= horizon:
            free += 1
    return max(0, free - reserved)


def in_line(callback: Callback) -> bool:
    """A keep-my-place callback still holding its place (not yet due)."""
    return callback.kind is CallbackKind.KEEP_PLACE and callback.state is CallbackState.REQUESTED


def due_callbacks(live: Iterable[LiveCaller], callbacks: Iterable[Callback], *, free: int) -> DueDecision:
    """Which kept places are due with ``free`` agents predicted free (see the module docstring)."""
    line: list[tuple[tuple[datetime, str], str, bool]] = []
    for caller in live:
        if not caller.offered:
            line.append(((caller.enqueued_at, caller.call_id), caller.call_id, False))
    for callback in callbacks:
        if in_line(callback):
            line.append((line_key(callback), callback.id, True))
    line.sort(key=lambda entry: entry[0])
    served = line[: max(0, free)]
    return DueDecision(
        due=tuple(name for _, name, is_callback in served if is_callback),
        live=tuple(name for _, name, is_callback in served if not is_callback),
        free=max(0, free),
    )


def place_in_line(
    live: Iterable[LiveCaller], callbacks: Iterable[Callback], key: tuple[datetime, str]
) -> int:
    """1-based place of the entry with order ``key`` in the joint line (``offered`` callers excluded)."""
    ahead = sum(1 for c in live if not c.offered and (c.enqueued_at, c.call_id) < key)
    ahead += sum(1 for c in callbacks if in_line(c) and line_key(c) < key)
    return ahead + 1


# -- the offer -----------------------------------------------------------------------------------


class NoOfferReason(StrEnum):
    """Why a caller is not offered a callback (stable codes)."""

    NO_ESTIMATE = "no_estimate"
    BELOW_THRESHOLD = "below_threshold"
    CANNOT_KEEP = "cannot_keep"
    DISABLED = "disabled"


@dataclass(frozen=True, kw_only=True, slots=True)
class OfferSettings:
    """When the offer is made.

    :param wait_threshold_s: offer when the 80th percentile of the wait reaches this (``None``: off).
    :param position_threshold: offer from this place in line (``None``: off).
    :param calls_per_agent: offer when callers in line per staffed agent reach this (``None``: off).
    :param by_quantile: ``0.8`` or ``0.9``: which percentile of the wait the "by" time uses.
    """

    wait_threshold_s: float | None = 120.0
    position_threshold: int | None = None
    calls_per_agent: float | None = None
    keep_place: bool = True
    later: bool = True
    by_quantile: float = 0.9
    grace_s: float = DEFAULT_GRACE_S
    round_min: int = 5

    def __post_init__(self) -> None:
        if self.by_quantile not in (0.8, 0.9):
            raise ValidationError(f"by_quantile must be 0.8 or 0.9, not {self.by_quantile!r}")
        if self.wait_threshold_s is not None and not (
            math.isfinite(self.wait_threshold_s) and self.wait_threshold_s >= 0
        ):
            raise ValidationError("wait_threshold_s must be a number of seconds of at least 0")
        if self.position_threshold is not None and self.position_threshold < 1:
            raise ValidationError("position_threshold must be at least 1")
        if self.calls_per_agent is not None and not (
            math.isfinite(self.calls_per_agent) and self.calls_per_agent > 0
        ):
            raise ValidationError("calls_per_agent must be above 0")


@dataclass(frozen=True, kw_only=True, slots=True)
class WaitFigures:
    """The caller's predicted remaining wait (from the predictor) at ``position`` with ``staffed`` agents."""

    p80_s: float
    p90_s: float
    position: int
    staffed: int
    mean_s: float = 0.0


@dataclass(frozen=True, kw_only=True, slots=True)
class OfferDecision:
    """Whether to offer, which choices, and the "by" time a kept place would be promised."""

    offer: bool
    keep_place: bool = False
    later: bool = False
    by: datetime | None = None
    reason: NoOfferReason | None = None


def offer_decision(
    wait: WaitFigures | None,
    *,
    now: datetime,
    closes_at: datetime | None,
    slot_available: bool,
    settings: OfferSettings,
) -> OfferDecision:
    """The offer for a waiting caller (see the module docstring).

    :param closes_at: when the queue next closes (``None``: it does not within the horizon).
    """
    if not (settings.keep_place or settings.later):
        return OfferDecision(offer=False, reason=NoOfferReason.DISABLED)
    if wait is None or not (math.isfinite(wait.p80_s) and math.isfinite(wait.p90_s)):
        return OfferDecision(offer=False, reason=NoOfferReason.NO_ESTIMATE)
    if not _over_threshold(wait, settings):
        return OfferDecision(offer=False, reason=NoOfferReason.BELOW_THRESHOLD)
    wait_s = wait.p90_s if settings.by_quantile == 0.9 else wait.p80_s
    by = announced_by(now, wait_s, round_min=settings.round_min)
    keep = settings.keep_place and (
        closes_at is None or by + timedelta(seconds=settings.grace_s) <= closes_at
    )
    later = settings.later and slot_available
    if not (keep or later):
        return OfferDecision(offer=False, reason=NoOfferReason.CANNOT_KEEP)
    return OfferDecision(offer=True, keep_place=keep, later=later, by=by if keep else None)


def _over_threshold(wait: WaitFigures, settings: OfferSettings) -> bool:
    if settings.wait_threshold_s is not None and wait.p80_s >= settings.wait_threshold_s:
        return True
    if settings.position_threshold is not None and wait.position >= settings.position_threshold:
        return True
    if settings.calls_per_agent is not None:
        if wait.staffed <= 0:
            return True
        if wait.position / wait.staffed >= settings.calls_per_agent:
            return True
    return False


# -- closing time --------------------------------------------------------------------------------

#: How long before the predicted end of the wait the sweep still gives the caller to choose.
SWEEP_LEAD_S: Final = 120.0


def closing_sweep(
    waits: Iterable[tuple[str, float]],
    *,
    now: datetime,
    closes_at: datetime | None,
    lead_s: float = SWEEP_LEAD_S,
) -> tuple[str, ...]:
    """The waiting callers (``(call_id, p80 wait)``) whose wait runs past closing: offer them now.

    A caller is swept when ``now + wait + lead_s`` reaches closing time: early enough to answer a
    menu, instead of being dropped at the bell. Callers with no finite estimate are swept too once
    closing is within ``lead_s``.
    """
    if closes_at is None:
        return ()
    swept = []
    for call_id, wait_s in waits:
        left_s = (closes_at - now).total_seconds()
        if not math.isfinite(wait_s):
            if left_s <= lead_s:
                swept.append(call_id)
        elif wait_s + lead_s >= left_s:
            swept.append(call_id)
    return tuple(swept)


def closing_time(hours: BusinessHours, now: datetime, *, horizon_s: float = 86400.0) -> datetime | None:
    """When a queue open at ``now`` next closes, to the minute; ``None`` if it stays open past the horizon
    (or is closed now: nothing closes)."""
    if not is_open(hours, now):
        return None
    if hours.weekly is None and not hours.holidays:
        return None  # always open
    first = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    # The minutes looked at are those up to the horizon's own minute: the same for every caller
    # offered a callback within one minute, so the answer is computed once a minute, not per caller.
    last = (now + timedelta(seconds=horizon_s)).replace(second=0, microsecond=0)
    return _first_closed_minute(hours, first, last)


@functools.lru_cache(maxsize=64)
def _first_closed_minute(hours: BusinessHours, first: datetime, last: datetime) -> datetime | None:
    step = timedelta(minutes=1)
    at = first
    while at <= last:
        if not is_open(hours, at):
            return at
        at += step
    return None
