"""The metric dictionary in code: additive counts per call, and every figure defined once from them (pure).

A figure is never computed twice in two ways. Each ended call contributes additive :class:`Counts`
(:func:`contribution`), a later closure of a missed call adds to the counts of the interval that call
ended in (:func:`closure_contribution`), and every rate or average is a function of summed counts
(:func:`figures`). The live board sums today's interval counts, the historical views sum stored
interval rows: both end in :func:`figures`, so they cannot disagree on the same calls.

``docs/metrics.md`` describes each entry of :data:`METRICS`; a test keeps the two in step.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

from callcenter.model.phone import PhoneNumber
from callcenter.model.vocabulary import CallOutcome

DEFAULT_SERVICE_LEVEL_S: Final = 20
DEFAULT_CLOSURE_WINDOW_S: Final = 4 * 3600
INTERVAL_S: Final = 15 * 60


class MetricKind(StrEnum):
    """Where a figure comes from: counts of ended calls (live and historical), or the live board only."""

    COUNTED = "counted"
    LIVE = "live"
    AGENT = "agent"
    PENDING = "pending"


@dataclass(frozen=True, kw_only=True, slots=True)
class Metric:
    """One entry of the dictionary. ``pending`` names the issue whose events it waits for."""

    name: str
    kind: MetricKind
    unit: str
    summary: str
    pending: str = ""


def _m(name: str, kind: MetricKind, unit: str, summary: str, pending: str = "") -> Metric:
    return Metric(name=name, kind=kind, unit=unit, summary=summary, pending=pending)


_C, _L, _P = MetricKind.COUNTED, MetricKind.LIVE, MetricKind.PENDING

#: Every figure, in the order the wallboard and docs/metrics.md show them.
METRICS: Final[tuple[Metric, ...]] = (
    _m("calls_waiting", _L, "calls", "callers in a waiting list now"),
    _m("longest_wait_s", _L, "s", "wait so far of the caller waiting longest now"),
    _m("agents_logged_in", _L, "agents", "agents not logged out"),
    _m("agents_available", _L, "agents", "agents available"),
    _m("agents_ringing", _L, "agents", "agents being offered a call"),
    _m("agents_busy", _L, "agents", "agents talking"),
    _m("agents_wrap_up", _L, "agents", "agents in wrap-up"),
    _m("agents_paused", _L, "agents", "agents paused"),
    _m("calls_offered", _C, "calls", "calls that ended in the window"),
    _m("calls_answered", _C, "calls", "of those, answered"),
    _m("calls_missed", _C, "calls", "of those, missed (any outcome but answered)"),
    _m("calls_abandoned", _C, "calls", "of those, abandoned after the short-abandon threshold"),
    _m("calls_short_abandoned", _C, "calls", "of those, abandoned before the short-abandon threshold"),
    _m("calls_answered_in_sl", _C, "calls", "answered within the service-level threshold"),
    _m("service_level", _C, "fraction", "answered in threshold / (answered + abandoned)"),
    _m("service_level_answered", _C, "fraction", "answered in threshold / answered"),
    _m("abandon_rate", _C, "fraction", "abandoned / (offered - short abandoned)"),
    _m("short_abandon_rate", _C, "fraction", "short abandoned / offered"),
    _m("missed_rate", _C, "fraction", "missed / offered"),
    _m("asa_s", _C, "s", "average speed of answer: queue wait of answered calls / answered"),
    _m("aht_s", _C, "s", "average handle time: talk time of answered calls / answered"),
    _m("missed_closable", _C, "calls", "missed calls from a number we can call back"),
    _m("missed_closed", _C, "calls", "of those, closed within the closure window"),
    _m("missed_closure_rate", _C, "fraction", "missed closed in window / missed closable"),
    _m("revenue_at_risk", _C, "currency", "missed x conversion rate x average value"),
    _m("agent_calls_answered", MetricKind.AGENT, "calls", "calls the agent answered that ended today"),
    _m("agent_talk_s", MetricKind.AGENT, "s", "the agent's talk time on those calls"),
    _m("agent_aht_s", MetricKind.AGENT, "s", "the agent's average handle time: talk time / calls answered"),
    _m("callbacks_pending", _L, "callbacks", "open callbacks now"),
    _m("callbacks_due_15m", _L, "callbacks", "callbacks waiting for a dial, due within 15 minutes"),
    _m("callbacks_due_60m", _L, "callbacks", "callbacks waiting for a dial, due within 60 minutes"),
    _m("callbacks_overdue", _L, "callbacks", "open callbacks past their promise with no dial"),
    _m("promises_counted", _L, "callbacks", "promises whose window ended today (exclusions apart)"),
    _m("promises_kept", _L, "callbacks", "of those, first dial inside the window"),
    _m("promise_kept_rate", _L, "fraction", "promises kept / promises counted"),
    _m("wait_estimates_scored", _L, "predictions", "announced waits of callers answered today"),
    _m("wait_estimate_rmse_s", _L, "s", "RMSE of announced wait estimates"),
    _m("wait_estimate_bias_s", _L, "s", "mean announced - actual wait"),
    _m("wait_estimate_p80_coverage", _L, "fraction", "share answered by the announced p80"),
    _m("voicemails_untranscribed", _L, "voicemails", "waiting for a transcript"),
    _m("voicemails_awaiting_callback", _L, "voicemails", "from a number with an open callback"),
    _m("sms_sent", _L, "messages", "SMS handed to the provider today"),
    _m("sms_delivered", _L, "messages", "SMS reported delivered today"),
    _m("sms_opted_out", _L, "numbers", "opt-outs recorded today"),
)

COUNTED_NAMES: Final = tuple(m.name for m in METRICS if m.kind is MetricKind.COUNTED)
LIVE_NAMES: Final = tuple(m.name for m in METRICS if m.kind is MetricKind.LIVE)


@dataclass(frozen=True, kw_only=True, slots=True)
class StatsConfig:
    """What the figures depend on beyond the calls.

    :param service_level_s: default threshold of the service level; a queue's own
        ``service_level_s`` wins (see ``thresholds``).
    :param closure_window_s: a missed call counts as closed in :func:`figures` when the caller was
        reached within this many seconds of the call's end.
    :param conversion_rate: share of calls that would have bought something.
    :param average_value: what one sale is worth; ``0`` leaves revenue at risk out (not configured).
    :param thresholds: service-level thresholds by queue.
    """

    service_level_s: float = DEFAULT_SERVICE_LEVEL_S
    closure_window_s: float = DEFAULT_CLOSURE_WINDOW_S
    conversion_rate: float = 0.1
    average_value: float = 0.0
    thresholds: Mapping[str, float] = dataclasses.field(default_factory=dict)

    def threshold(self, queue: str | None) -> float:
        if queue is not None and queue in self.thresholds:
            return self.thresholds[queue]
        return self.service_level_s


@dataclass(frozen=True, kw_only=True, slots=True)
class Counts:
    """Additive counts of one interval (or any sum of intervals). Times are sums in seconds."""

    offered: int = 0
    answered: int = 0
    answered_in_sl: int = 0
    abandoned: int = 0
    short_abandoned: int = 0
    missed: int = 0
    missed_closable: int = 0
    missed_closed: int = 0
    wait_answered_s: float = 0.0
    talk_s: float = 0.0

    def __add__(self, other: Counts) -> Counts:
        return Counts(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in _FIELDS})

    @property
    def is_empty(self) -> bool:
        return all(not getattr(self, f.name) for f in _FIELDS)


_FIELDS: Final = dataclasses.fields(Counts)
COUNT_FIELDS: Final = tuple(f.name for f in _FIELDS)


def total(counts: Iterable[Counts]) -> Counts:
    result = Counts()
    for item in counts:
        result = result + item
    return result


@dataclass(frozen=True, kw_only=True, slots=True)
class EndedCall:
    """What the figures need of one decided call, from a ``CallEnded`` or a stored call alike.

    ``reached_at`` (answered calls) is when the caller was reached: the end minus the talk time, the
    same from both sources.
    """

    call_id: str
    queue: str | None
    outcome: CallOutcome
    ended_at: datetime
    caller: str = ""
    wait_s: float = 0.0
    talk_s: float = 0.0
    agent_id: str | None = None

    @property
    def reached_at(self) -> datetime:
        return self.ended_at - timedelta(seconds=self.talk_s)

    @property
    def closable(self) -> bool:
        """A missed call we could call back: the number is known and not withheld."""
        return self.outcome.is_missed and bool(self.caller) and not _withheld(self.caller)


def contribution(call: EndedCall, config: StatsConfig) -> Counts:
    """The counts one ended call adds to the interval it ended in."""
    outcome = call.outcome
    answered = outcome is CallOutcome.ANSWERED
    return Counts(
        offered=1,
        answered=int(answered),
        answered_in_sl=int(answered and call.wait_s <= config.threshold(call.queue)),
        abandoned=int(outcome is CallOutcome.ABANDONED),
        short_abandoned=int(outcome is CallOutcome.SHORT_ABANDON),
        missed=int(outcome.is_missed),
        missed_closable=int(call.closable),
        wait_answered_s=call.wait_s if answered else 0.0,
        talk_s=call.talk_s if answered else 0.0,
    )


def closure_contribution(missed_ended_at: datetime, reached_at: datetime, config: StatsConfig) -> Counts:
    """What closing a missed call adds to the interval it ended in: one when inside the window."""
    in_window = (reached_at - missed_ended_at).total_seconds() <= config.closure_window_s
    return Counts(missed_closed=int(in_window))


def figures(counts: Counts, config: StatsConfig) -> dict[str, float | int | None]:
    """Every counted figure of :data:`METRICS` from summed counts; ``None`` where a denominator is 0."""
    c = counts
    revenue: float | None = None
    if config.average_value > 0:
        revenue = round(c.missed * config.conversion_rate * config.average_value, 2)
    return {
        "calls_offered": c.offered,
        "calls_answered": c.answered,
        "calls_missed": c.missed,
        "calls_abandoned": c.abandoned,
        "calls_short_abandoned": c.short_abandoned,
        "calls_answered_in_sl": c.answered_in_sl,
        "service_level": _ratio(c.answered_in_sl, c.answered + c.abandoned),
        "service_level_answered": _ratio(c.answered_in_sl, c.answered),
        "abandon_rate": _ratio(c.abandoned, c.offered - c.short_abandoned),
        "short_abandon_rate": _ratio(c.short_abandoned, c.offered),
        "missed_rate": _ratio(c.missed, c.offered),
        "asa_s": _ratio(c.wait_answered_s, c.answered, digits=1),
        "aht_s": _ratio(c.talk_s, c.answered, digits=1),
        "missed_closable": c.missed_closable,
        "missed_closed": c.missed_closed,
        "missed_closure_rate": _ratio(c.missed_closed, c.missed_closable),
        "revenue_at_risk": revenue,
    }


def _ratio(numerator: float, denominator: float, *, digits: int = 4) -> float | None:
    if denominator <= 0:
        return None
    return round(numerator / denominator, digits)


def _withheld(caller: str) -> bool:
    return PhoneNumber(raw=caller, e164=None).is_withheld
