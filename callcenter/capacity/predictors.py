"""Wait-time predictors for one caller from the live queue state, and their online inputs (pure).

QL-A, the queue-length predictor corrected for abandonment, is the one we announce. The others are
the baselines it is judged against: Asterisk's own hold-time EWMA, head-of-line (HOL) and
last-to-enter-service (LES) (Ibrahim & Whitt 2009).

QL-A. A caller with ``n`` callers ahead and ``f`` free agents needs ``k + 1`` departures from the
head of the queue, ``k = n - f`` (none if ``k < 0``). With ``s`` agents busy and ``i`` callers still
ahead, the head moves at rate ``sμ + iθ`` (service plus abandonment of those ahead), so the wait
if one holds on is the sum ``V`` of independent exponentials of rates ``sμ + iθ``, ``i = k…0``. Its
survival function has an exact finite form with positive terms only, with ``g(v) = (1-e^{-θv})/θ``
(``g = v`` when ``θ = 0``, where it is the Erlang survival ``Σ e^{-sμv}(sμv)^j/j!``)::

    P(V > v) = e^{-sμv} · Σ_{j=0..k} g(v)^j/j! · Π_{i<j} (sμ + iθ)

(``1 - e^{-θV}`` is Beta(k+1, sμ/θ)-distributed; the sum is that Beta's negative-binomial tail.)

By default we predict the wait of a caller *who is answered*: with exponential patience ``θ`` of
their own, ``V`` given ``V < patience`` is the same law with every rate raised by ``θ``. That is the
population on which announced waits are scored (answered callers), so it is the calibrated one;
``given_answered=False`` gives the offered wait ``V`` itself. The law is memoryless in the caller's
own elapsed time, which QL-A therefore ignores. Quantiles are found by Newton's method on
``ln P(V > v)``, which is concave (sums of exponentials have an increasing hazard), so iterates
converge monotonically from the right of the root.

Baselines carry a point estimate only; their p80/p90 treat it as the mean of an exponential wait,
so every predictor's "by" times can be scored the same way.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from enum import StrEnum

from callcenter.capacity.erlang import MAX_AGENTS
from callcenter.errors import ValidationError

#: Callers ahead beyond which we refuse to predict (QL-A costs one term per caller ahead).
MAX_AHEAD = 100_000

_LN5 = math.log(5.0)
_LN10 = math.log(10.0)


class PredictorName(StrEnum):
    """Stable predictor names, as used in simulation and benchmark JSON."""

    QLA = "qla"
    QL = "ql"
    ASTERISK = "asterisk"
    HOL = "hol"
    LES = "les"


@dataclass(frozen=True, kw_only=True, slots=True)
class WaitPrediction:
    """A predicted remaining wait: its mean and the times by which 80 % and 90 % are answered."""

    predictor: PredictorName
    mean_s: float
    p80_s: float
    p90_s: float


@dataclass(frozen=True, kw_only=True, slots=True)
class QueueState:
    """What is known about the queue when one caller's wait is predicted.

    :param ahead: callers ahead of this one (0: this caller is at the head of the line).
    :param agents_staffed: agents serving the queue, busy or free.
    :param agents_free: staffed agents free to take a call now.
    :param aht_s: mean handle time (agent busy time per call).
    :param patience_s: mean patience of waiting callers; ``math.inf`` for none observed.
    :param elapsed_s: how long this caller has waited already.
    :param hol_wait_s: how long the caller at the head of the line has waited (0 with nobody waiting).
    :param les_wait_s: the wait of the last caller to enter service (0 before anyone did).
    """

    ahead: int
    agents_staffed: int
    agents_free: int = 0
    aht_s: float
    patience_s: float = math.inf
    elapsed_s: float = 0.0
    hol_wait_s: float = 0.0
    les_wait_s: float = 0.0

    def __post_init__(self) -> None:
        _require_count(self.ahead, "ahead", 0, MAX_AHEAD)
        _require_count(self.agents_staffed, "agents_staffed", 1, MAX_AGENTS)
        _require_count(self.agents_free, "agents_free", 0, self.agents_staffed)
        _require_seconds(self.aht_s, "aht_s", positive=True)
        _require_seconds(self.patience_s, "patience_s", positive=True, allow_inf=True)
        _require_seconds(self.elapsed_s, "elapsed_s")
        _require_seconds(self.hol_wait_s, "hol_wait_s")
        _require_seconds(self.les_wait_s, "les_wait_s")


def predict_ql_a(state: QueueState, *, given_answered: bool = True) -> WaitPrediction:
    """The queue-length predictor corrected for abandonment (see the module docstring)."""
    law = _HeadDepartures.of(state, given_answered=given_answered)
    return WaitPrediction(
        predictor=PredictorName.QLA, mean_s=law.mean_s(), p80_s=law.quantile_s(0.8), p90_s=law.quantile_s(0.9)
    )


def predict_ql(state: QueueState) -> WaitPrediction:
    """The plain queue-length predictor: ``k + 1`` services at rate ``sμ``, abandonment ignored."""
    law = _HeadDepartures.of(state, given_answered=False, ignore_abandonment=True)
    return WaitPrediction(
        predictor=PredictorName.QL, mean_s=law.mean_s(), p80_s=law.quantile_s(0.8), p90_s=law.quantile_s(0.9)
    )


def wait_quantile_s(state: QueueState, p: float, *, given_answered: bool = True) -> float:
    """The QL-A time by which this caller is answered with probability ``p`` (0 < p < 1)."""
    _require_probability(p)
    return _HeadDepartures.of(state, given_answered=given_answered).quantile_s(p)


def wait_survival(state: QueueState, after_s: float, *, given_answered: bool = True) -> float:
    """The QL-A probability that this caller still waits ``after_s`` seconds from now."""
    _require_seconds(after_s, "after_s")
    return math.exp(_HeadDepartures.of(state, given_answered=given_answered).log_survival(after_s)[0])


def predict_hol(state: QueueState) -> WaitPrediction:
    """Head of line: the wait so far of the caller at the head, less this caller's own wait."""
    return _point(PredictorName.HOL, state.hol_wait_s - state.elapsed_s)


def predict_les(state: QueueState) -> WaitPrediction:
    """Last to enter service: that caller's wait, less this caller's own wait."""
    return _point(PredictorName.LES, state.les_wait_s - state.elapsed_s)


@dataclass(frozen=True, slots=True)
class AsteriskEwma:
    """Asterisk's ``announce-holdtime`` estimate: ``holdtime = (3·old + new)/4`` over answered calls.

    Position- and agent-blind; the caller hears ``holdtime`` minus their own wait, floored at 0.
    Asterisk (``app_queue.c`` ``recalc_holdtime``) keeps whole seconds and truncates; we keep the
    fraction, which only flatters the baseline.
    """

    holdtime_s: float = 0.0

    def __post_init__(self) -> None:
        _require_seconds(self.holdtime_s, "holdtime_s")

    def update(self, answered_wait_s: float) -> AsteriskEwma:
        """The estimate after a caller was answered having waited ``answered_wait_s``."""
        _require_seconds(answered_wait_s, "answered_wait_s")
        return AsteriskEwma((3.0 * self.holdtime_s + answered_wait_s) / 4.0)

    def predict(self, elapsed_s: float = 0.0) -> WaitPrediction:
        """What Asterisk would announce to a caller who has waited ``elapsed_s``."""
        _require_seconds(elapsed_s, "elapsed_s")
        return _point(PredictorName.ASTERISK, self.holdtime_s - elapsed_s)


@dataclass(frozen=True, slots=True)
class HandleTimeEstimate:
    """Online mean handle time of one queue and interval: a (possibly down-weighted) running mean.

    Weights are floats so that a prior (:meth:`with_prior`) and forgetting (:meth:`decayed`) fit in.
    """

    calls: float = 0.0
    total_s: float = 0.0

    def __post_init__(self) -> None:
        _require_seconds(self.calls, "calls")
        _require_seconds(self.total_s, "total_s")

    @classmethod
    def with_prior(cls, mean_s: float, weight_calls: float) -> HandleTimeEstimate:
        """Start as if ``weight_calls`` calls of ``mean_s`` had been seen (a cold-start guess)."""
        _require_seconds(mean_s, "mean_s", positive=True)
        return cls(weight_calls, weight_calls * mean_s)

    def update(self, handle_s: float) -> HandleTimeEstimate:
        """Add one completed call's agent busy time (talk plus wrap-up)."""
        _require_seconds(handle_s, "handle_s")
        return HandleTimeEstimate(self.calls + 1.0, self.total_s + handle_s)

    def decayed(self, factor: float) -> HandleTimeEstimate:
        """Every past call's weight multiplied by ``factor`` in (0, 1]: exponential forgetting."""
        _require_factor(factor)
        return HandleTimeEstimate(self.calls * factor, self.total_s * factor)

    def merged(self, other: HandleTimeEstimate) -> HandleTimeEstimate:
        """The estimate from both sets of calls (e.g. two intervals)."""
        return HandleTimeEstimate(self.calls + other.calls, self.total_s + other.total_s)

    @property
    def mean_s(self) -> float | None:
        """The mean handle time, ``None`` before any call."""
        if self.calls == 0.0:
            return None
        return self.total_s / self.calls


@dataclass(frozen=True, slots=True)
class PatienceEstimate:
    """Online mean patience of one queue and interval from censored waits.

    Every caller who waited contributes their time in queue to ``exposure_s``; answered callers are
    censored (their patience was longer than their wait), abandoners add one to ``abandons``. For
    exponential patience the maximum-likelihood rate is ``abandons / exposure_s``: the mean is
    ``exposure_s / abandons``. Counting only abandoners' waits would bias it low.
    """

    abandons: float = 0.0
    exposure_s: float = 0.0

    def __post_init__(self) -> None:
        _require_seconds(self.abandons, "abandons")
        _require_seconds(self.exposure_s, "exposure_s")

    @classmethod
    def with_prior(cls, mean_s: float, weight_abandons: float) -> PatienceEstimate:
        """Start as if ``weight_abandons`` abandons had been seen over ``weight_abandons·mean_s``."""
        _require_seconds(mean_s, "mean_s", positive=True)
        return cls(weight_abandons, weight_abandons * mean_s)

    def update(self, wait_s: float, *, abandoned: bool) -> PatienceEstimate:
        """Add one caller who left the queue after ``wait_s``, answered or abandoned."""
        _require_seconds(wait_s, "wait_s")
        return PatienceEstimate(self.abandons + (1.0 if abandoned else 0.0), self.exposure_s + wait_s)

    def decayed(self, factor: float) -> PatienceEstimate:
        """Every past caller's weight multiplied by ``factor`` in (0, 1]: exponential forgetting."""
        _require_factor(factor)
        return PatienceEstimate(self.abandons * factor, self.exposure_s * factor)

    def merged(self, other: PatienceEstimate) -> PatienceEstimate:
        """The estimate from both sets of callers (e.g. two intervals)."""
        return PatienceEstimate(self.abandons + other.abandons, self.exposure_s + other.exposure_s)

    @property
    def mean_s(self) -> float | None:
        """The mean patience; ``math.inf`` while nobody abandoned, ``None`` before any wait."""
        if self.abandons == 0.0:
            return None if self.exposure_s == 0.0 else math.inf
        return self.exposure_s / self.abandons


@dataclass(frozen=True, slots=True)
class _HeadDepartures:
    """The sum of exponentials of rates ``base + iθ``, ``i = 0…stages-1`` (no stages: always 0)."""

    stages: int
    base_rate: float
    theta: float

    @classmethod
    def of(
        cls, state: QueueState, *, given_answered: bool, ignore_abandonment: bool = False
    ) -> _HeadDepartures:
        theta = 0.0 if ignore_abandonment else 1.0 / state.patience_s
        base = state.agents_staffed / state.aht_s + (theta if given_answered else 0.0)
        return cls(max(0, state.ahead - state.agents_free + 1), base, theta)

    def mean_s(self) -> float:
        return math.fsum(1.0 / (self.base_rate + i * self.theta) for i in range(self.stages))

    def log_survival(self, v: float) -> tuple[float, float]:
        """``(ln P(V > v), ln density(v))``."""
        if self.stages == 0:
            return (-math.inf, -math.inf) if v > 0.0 else (0.0, -math.inf)
        if v <= 0.0:
            return 0.0, (math.log(self.base_rate) if self.stages == 1 else -math.inf)
        # θ·v can underflow to 0 (a patience of 1e178 s): then g is v, its limit as θ → 0.
        theta_v = self.theta * v
        g = v if theta_v == 0.0 else -math.expm1(-theta_v) / self.theta
        log_g = math.log(g)
        log_term = -self.base_rate * v
        logs = [log_term]
        # The logarithms of the rates and factorials do not depend on v: computed once for the law
        # (and shared by every caller of the queue), the same sums in the same order as before.
        log_rates, log_counts = _log_steps(self.base_rate, self.theta, _capacity(self.stages - 1))
        for j in range(self.stages - 1):
            log_term += log_rates[j] + log_g - log_counts[j]
            logs.append(log_term)
        peak = max(logs)
        log_s = peak + math.log(math.fsum(math.exp(x - peak) for x in logs))
        log_f = log_term + math.log(self.base_rate + (self.stages - 1) * self.theta)
        return log_s, log_f

    def quantile_s(self, p: float) -> float:
        if self.stages == 0:
            return 0.0
        if self.stages == 1:
            return -math.log1p(-p) / self.base_rate
        target = math.log1p(-p)
        v = self.mean_s()
        for _ in range(100):
            log_s, log_f = self.log_survival(v)
            # Newton on ln S(v) - ln(1-p); the derivative of ln S is minus the hazard f/S.
            step = (log_s - target) / math.exp(log_f - log_s)
            v += step
            if abs(step) <= 1e-12 * v:
                break
        return v


def _capacity(steps: int) -> int:
    """``steps`` rounded up to a power of two (at least 64): few cached lists serve every line length."""
    return max(64, 1 << max(0, steps - 1).bit_length())


@functools.lru_cache(maxsize=16)
def _log_steps(base_rate: float, theta: float, size: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """``ln(base + jθ)`` and ``ln(j + 1)`` for ``j < size``: the terms of :meth:`_HeadDepartures.log_survival`."""
    return (
        tuple(math.log(base_rate + j * theta) for j in range(size)),
        tuple(math.log(j + 1.0) for j in range(size)),
    )


def _point(name: PredictorName, remaining_s: float) -> WaitPrediction:
    mean = max(0.0, remaining_s)
    return WaitPrediction(predictor=name, mean_s=mean, p80_s=mean * _LN5, p90_s=mean * _LN10)


def _require_count(value: int, name: str, minimum: int, maximum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"{name} must be a whole number, not {value!r}")
    if not minimum <= value <= maximum:
        raise ValidationError(f"{name} must be between {minimum} and {maximum}, not {value}")


def _require_seconds(value: float, name: str, *, positive: bool = False, allow_inf: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(f"{name} must be a number, not {value!r}")
    if math.isnan(value) or (math.isinf(value) and not (allow_inf and value > 0)):
        raise ValidationError(f"{name} must be a finite number, not {value!r}")
    if value < 0 or (positive and value == 0):
        raise ValidationError(f"{name} must be {'above' if positive else 'at least'} 0, not {value!r}")


def _require_probability(p: float) -> None:
    _require_seconds(p, "p")
    if not 0.0 < p < 1.0:
        raise ValidationError(f"p must be strictly between 0 and 1, not {p!r}")


def _require_factor(factor: float) -> None:
    _require_seconds(factor, "factor")
    if not 0.0 < factor <= 1.0:
        raise ValidationError(f"factor must be in (0, 1], not {factor!r}")
