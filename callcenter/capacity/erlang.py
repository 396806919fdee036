"""Erlang C (M/M/s) and Erlang A (M/M/s+M) queue measures and staffing (pure).

Method. Both models are solved exactly, in log space, so they stay finite up to :data:`MAX_AGENTS`
agents and any offered load (Erlang A only asks that ``λ·patience`` and ``agents·patience/aht``
stay below 1e9, i.e. patience shorter than weeks):

* Erlang B comes from its stable recursion ``B(k) = A·B(k-1) / (k + A·B(k-1))``; Erlang C from B.
* Erlang A is its birth–death chain. With ``μ = 1/aht``, ``θ = 1/patience``, ``a = sμ/θ`` and
  ``b = λ/θ``, the chance an arrival finds ``m`` callers already waiting is proportional to
  ``t_m = b^m / (a(a+1)…(a+m))``. A caller with ``m`` ahead is answered with probability
  ``a/(a+m+1)``, after ``Σ_{i=1..m+1} 1/(sμ+iθ)`` on average if answered. Every measure is a sum of
  positive terms ``t_m`` times such weights: no cancellation. The sums start at the most likely
  queue length and walk outwards until the terms are negligible, so heavy overload costs no more
  than light load. The service level at ``t`` uses the offered-wait density
  ``λ·π(s-1)·exp(b(1-e^{-θx}) - sμx)`` (Baccelli–Hébuterne; Garnett, Mandelbaum & Reiman 2002)
  integrated in closed form: the same kind of positive series evaluated at ``b·e^{-θt}``.

Definitions shared by both models (the same as ``callcenter simulate``):

* ``service_level``: calls answered within ``answer_within_s`` over **all** arrivals; abandoned
  calls are in the denominator and count as misses.
* ``service_level_answered``: answered within ``answer_within_s`` over answered calls only.
* ``asa_s``: mean wait of answered calls. ``mean_wait_s``: mean time in queue over all arrivals,
  abandoners counted until they hung up.
* ``occupancy``: carried load over agents, ``λ(1 - p_abandon)·aht / s``.

Erlang C with ``agents <= load`` has no steady state: it reports ``p_wait = 1``,
``service_level = 0``, infinite waits and ``occupancy = 1`` rather than raising. Erlang A has a
steady state at every load. Probabilities are exact to about 1e-11 absolute; below 1e-280 they
are reported as 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from enum import StrEnum

from callcenter.errors import ValidationError

#: The largest staffing the models accept (and the search in :func:`agents_required` tries).
MAX_AGENTS = 2000

# Series terms below this share of the running sum are dropped: under double precision's reach.
_EPS = 1e-18
# Bound on a = s·patience/aht and b = λ·patience: the sums cost about 20·sqrt(max(a, b)) terms.
_MAX_SCALE = 1e9
# Probabilities below this are reported as 0: far from anything observable, and still normal floats.
_TINY = 1e-280
# Beyond this many terms a harmonic sum is taken from the digamma function instead of added up.
_HARMONIC_DIRECT_MAX = 10_000


class QueueModel(StrEnum):
    """Which queue model a measure comes from."""

    ERLANG_C = "erlang_c"
    ERLANG_A = "erlang_a"


@dataclass(frozen=True, kw_only=True, slots=True)
class Workload:
    """Offered traffic of one queue in one interval.

    :param arrival_rate_per_s: Poisson arrival rate; 0 is a valid quiet interval.
    :param aht_s: mean handle time (agent busy time per call, wrap-up included), exponential.
    :param patience_s: mean patience of waiting callers, exponential; ``math.inf`` for callers who
        never hang up. Erlang C ignores it.
    """

    arrival_rate_per_s: float
    aht_s: float
    patience_s: float = math.inf

    def __post_init__(self) -> None:
        _require(self.arrival_rate_per_s, "arrival_rate_per_s", minimum=0.0)
        _require(self.aht_s, "aht_s", minimum=0.0, strict=True)
        _require(self.patience_s, "patience_s", minimum=0.0, strict=True, allow_inf=True)

    @classmethod
    def per_interval(
        cls, *, calls: float, interval_s: float, aht_s: float, patience_s: float = math.inf
    ) -> Workload:
        """The workload of ``calls`` arrivals spread over ``interval_s`` seconds."""
        _require(calls, "calls", minimum=0.0)
        _require(interval_s, "interval_s", minimum=0.0, strict=True)
        return cls(arrival_rate_per_s=calls / interval_s, aht_s=aht_s, patience_s=patience_s)

    @property
    def offered_load_erlangs(self) -> float:
        """Offered load ``λ·aht`` in Erlangs: the agents busy if every call were answered."""
        return self.arrival_rate_per_s * self.aht_s


@dataclass(frozen=True, kw_only=True, slots=True)
class QueueMetrics:
    """Steady-state measures of one queue at one staffing (definitions in the module docstring)."""

    model: QueueModel
    agents: int
    offered_load_erlangs: float
    answer_within_s: float
    p_wait: float
    service_level: float
    service_level_answered: float
    asa_s: float
    mean_wait_s: float
    p_abandon: float
    occupancy: float
    stable: bool


@dataclass(frozen=True, kw_only=True, slots=True)
class Staffing:
    """The fewest agents meeting a service-level target, and the measures at that staffing."""

    agents: int
    metrics: QueueMetrics


def erlang_b(agents: int, load_erlangs: float) -> float:
    """Blocking probability of the Erlang B loss system (M/M/s/s)."""
    _require_agents(agents, minimum=0)
    _require(load_erlangs, "load_erlangs", minimum=0.0)
    return math.exp(_log_erlang_b(agents, load_erlangs))


def erlang_c(workload: Workload, agents: int, *, answer_within_s: float = 20.0) -> QueueMetrics:
    """Erlang C (M/M/s, callers never abandon) measures with ``agents`` agents."""
    _require_agents(agents)
    _require(answer_within_s, "answer_within_s", minimum=0.0)
    load = workload.offered_load_erlangs
    if workload.arrival_rate_per_s == 0.0:
        return _idle(QueueModel.ERLANG_C, agents, answer_within_s)
    if load >= agents:
        return QueueMetrics(
            model=QueueModel.ERLANG_C,
            agents=agents,
            offered_load_erlangs=load,
            answer_within_s=answer_within_s,
            p_wait=1.0,
            service_level=0.0,
            service_level_answered=0.0,
            asa_s=math.inf,
            mean_wait_s=math.inf,
            p_abandon=0.0,
            occupancy=1.0,
            stable=False,
        )
    blocking = math.exp(_log_erlang_b(agents, load))
    p_wait = _flush(agents * blocking / (agents - load * (1.0 - blocking)))
    drain_per_s = (agents - load) / workload.aht_s
    service_level = 1.0 - p_wait * math.exp(-drain_per_s * answer_within_s)
    asa_s = p_wait / drain_per_s
    return QueueMetrics(
        model=QueueModel.ERLANG_C,
        agents=agents,
        offered_load_erlangs=load,
        answer_within_s=answer_within_s,
        p_wait=_clamp01(p_wait),
        service_level=_clamp01(service_level),
        service_level_answered=_clamp01(service_level),
        asa_s=asa_s,
        mean_wait_s=asa_s,
        p_abandon=0.0,
        occupancy=load / agents,
        stable=True,
    )


def erlang_a(workload: Workload, agents: int, *, answer_within_s: float = 20.0) -> QueueMetrics:
    """Erlang A (M/M/s+M, exponential patience) measures with ``agents`` agents.

    With infinite patience this is Erlang C (reported with ``model=ERLANG_A``, unstable when
    ``agents <= load``).

    :raises ValidationError: when ``agents·patience/aht`` or ``λ·patience`` exceeds 1e9 (patience of
        weeks), where the sums would take seconds: use infinite patience there.
    """
    _require_agents(agents)
    _require(answer_within_s, "answer_within_s", minimum=0.0)
    if math.isinf(workload.patience_s):
        return replace(erlang_c(workload, agents, answer_within_s=answer_within_s), model=QueueModel.ERLANG_A)
    if workload.arrival_rate_per_s == 0.0:
        return _idle(QueueModel.ERLANG_A, agents, answer_within_s)
    load = workload.offered_load_erlangs
    theta = 1.0 / workload.patience_s
    serve_rate = agents / workload.aht_s
    a = agents * workload.patience_s / workload.aht_s
    b = workload.arrival_rate_per_s * workload.patience_s
    if max(a, b) > _MAX_SCALE:
        raise ValidationError(
            "patience_s is too long for Erlang A at this staffing and load "
            f"(agents·patience/aht and λ·patience must stay below {_MAX_SCALE:.0e}); "
            "use patience_s=math.inf (Erlang C)"
        )
    sums = _waiting_sums(a, b)
    log_odds_wait = math.log(b) + sums.log_total + _log_erlang_b(agents - 1, load)
    # Both sides of the odds, so that a P(no wait) near 0 keeps its digits.
    p_wait, p_no_wait = _flush(_sigmoid(log_odds_wait)), _sigmoid(-log_odds_wait)
    p_answered_if_wait = sums.answered / sums.total
    p_abandon_if_wait = sums.abandoned / sums.total
    answered_wait_if_wait_s = sums.answered_wait / (theta * sums.total)
    # Answered calls whose wait runs past t: the tail of the answered offered-wait mass.
    log_late = (
        -(serve_rate + theta) * answer_within_s
        - b * math.expm1(-theta * answer_within_s)
        + _log_kummer(a + 1.0, b * math.exp(-theta * answer_within_s))
    )
    log_answered = _log_kummer(a + 1.0, b)
    within_if_wait = p_answered_if_wait * max(0.0, -math.expm1(min(0.0, log_late - log_answered)))
    p_abandon = p_wait * p_abandon_if_wait
    p_answered = 1.0 - p_abandon
    service_level = p_no_wait + p_wait * within_if_wait
    return QueueMetrics(
        model=QueueModel.ERLANG_A,
        agents=agents,
        offered_load_erlangs=load,
        answer_within_s=answer_within_s,
        p_wait=_clamp01(p_wait),
        service_level=_clamp01(service_level),
        service_level_answered=_clamp01(service_level / p_answered),
        asa_s=p_wait * answered_wait_if_wait_s / p_answered,
        # Abandons happen at rate θ per waiting caller, so (Little) E[wait] = P(abandon) / θ.
        mean_wait_s=p_abandon * workload.patience_s,
        p_abandon=_clamp01(p_abandon),
        occupancy=_clamp01(load * p_answered / agents),
        stable=True,
    )


def queue_metrics(
    workload: Workload, agents: int, *, answer_within_s: float = 20.0, model: QueueModel = QueueModel.ERLANG_A
) -> QueueMetrics:
    """The measures of ``model`` (:func:`erlang_a` or :func:`erlang_c`)."""
    if model is QueueModel.ERLANG_C:
        return erlang_c(workload, agents, answer_within_s=answer_within_s)
    return erlang_a(workload, agents, answer_within_s=answer_within_s)


def agents_required(
    workload: Workload,
    *,
    target_service_level: float,
    answer_within_s: float,
    model: QueueModel = QueueModel.ERLANG_A,
    max_agents: int = MAX_AGENTS,
) -> Staffing:
    """The smallest staffing whose ``service_level`` (over all arrivals) reaches the target.

    A quiet interval (no arrivals) needs 0 agents. Raw positions: shrinkage is the caller's job.

    :param target_service_level: share of all arrivals to answer within ``answer_within_s``, in (0, 1).
    :raises ValidationError: on bad input, or when even ``max_agents`` agents miss the target.
    """
    _require(target_service_level, "target_service_level", minimum=0.0, strict=True)
    if target_service_level >= 1.0:
        raise ValidationError("target_service_level must be below 1")
    _require(answer_within_s, "answer_within_s", minimum=0.0)
    _require_agents(max_agents)
    if workload.arrival_rate_per_s == 0.0:
        return Staffing(agents=0, metrics=_idle(model, 0, answer_within_s))

    def measure(agents: int) -> QueueMetrics:
        return queue_metrics(workload, agents, answer_within_s=answer_within_s, model=model)

    # The service level rises with agents. Double from the offered load (a staffing far below
    # max_agents is found without measuring max_agents agents, each measure costing O(agents)), then
    # bisect: the invariant is low fails (no agents answer nobody), best.agents meets.
    low, high = 0, max(1, math.ceil(workload.offered_load_erlangs))
    while True:
        if high >= max_agents:
            best = measure(max_agents)
            if best.service_level < target_service_level:
                raise ValidationError(
                    f"{max_agents} agents reach a service level of {best.service_level:.3f} only, "
                    f"below the target {target_service_level}"
                )
            break
        best = measure(high)
        if best.service_level >= target_service_level:
            break
        low, high = high, 2 * high
    while best.agents - low > 1:
        middle = (low + best.agents) // 2
        metrics = measure(middle)
        if metrics.service_level >= target_service_level:
            best = metrics
        else:
            low = middle
    return Staffing(agents=best.agents, metrics=best)


@dataclass(frozen=True, slots=True)
class _WaitingSums:
    """Sums over queue lengths met on arrival, scaled by ``exp(-log_scale)``."""

    log_scale: float
    total: float
    answered: float
    abandoned: float
    answered_wait: float

    @property
    def log_total(self) -> float:
        return self.log_scale + math.log(self.total)


def _waiting_sums(a: float, b: float) -> _WaitingSums:
    """Σ t_m, weighted by P(answered | m ahead), P(abandoned | m ahead) and θ·E[wait; answered | m].

    ``t_m = b^m / (a)_{m+1}`` where ``(a)_{m+1} = a(a+1)…(a+m)``.
    """
    mode = max(0, math.ceil(b - a - 1.0))
    log_mode = _log_term(a, b, mode)
    harmonic_mode = _harmonic(a + 1.0, mode)
    total = answered = abandoned = answered_wait = 0.0

    def add(m: int, term: float, harmonic: float) -> None:
        nonlocal total, answered, abandoned, answered_wait
        share_answered = a / (a + m + 1.0)
        total += term
        answered += term * share_answered
        abandoned += term * (m + 1.0) / (a + m + 1.0)
        answered_wait += term * share_answered * harmonic

    m, term, harmonic = mode, 1.0, harmonic_mode
    while True:
        add(m, term, harmonic)
        m += 1
        ratio = b / (a + m)
        term *= ratio
        harmonic += 1.0 / (a + 1.0 + m)
        # Past the mode the ratios only shrink, so term/(1-ratio) bounds everything left.
        if ratio < 1.0 and term < _EPS * total * (1.0 - ratio):
            break
    m, term, harmonic = mode, 1.0, harmonic_mode
    while m > 0:
        ratio = (a + m) / b
        term *= ratio
        harmonic -= 1.0 / (a + 1.0 + m)
        m -= 1
        if ratio < 1.0 and term < _EPS * total * (1.0 - ratio):
            break
        add(m, term, harmonic)
    return _WaitingSums(
        log_scale=log_mode, total=total, answered=answered, abandoned=abandoned, answered_wait=answered_wait
    )


def _log_kummer(s: float, x: float) -> float:
    """``ln Σ_{m≥0} x^m / (s)_{m+1}``, which is ``ln(x^-s e^x γ(s, x))`` (lower incomplete gamma)."""
    if x == 0.0:
        return -math.log(s)
    mode = max(0, math.ceil(x - s - 1.0))
    log_mode = _log_term(s, x, mode)
    total = 0.0
    m, term = mode, 1.0
    while True:
        total += term
        m += 1
        ratio = x / (s + m)
        term *= ratio
        if ratio < 1.0 and term < _EPS * total * (1.0 - ratio):
            break
    m, term = mode, 1.0
    while m > 0:
        ratio = (s + m) / x
        term *= ratio
        m -= 1
        if ratio < 1.0 and term < _EPS * total * (1.0 - ratio):
            break
        total += term
    return log_mode + math.log(total)


def _log_term(s: float, x: float, m: int) -> float:
    """``ln(x^m / (s)_{m+1})`` for ``m`` at the mode (``s+m+1`` within 1 of ``x``), to ~1e-14 relative.

    The textbook ``m·ln x - (lgamma(s+m+1) - lgamma(s))`` subtracts numbers far larger than the
    result when s and x run into the millions. Loader's saddle-point form (as for the Poisson
    density), ``D(s, x) - D(s+m+1, x) + ½ln((s+m+1)/s) - ln x + δ(s) - δ(s+m+1)`` with ``D`` the
    deviance and ``δ`` Stirling's error, keeps every part no larger than the result at the mode.
    """
    if m == 0:
        return -math.log(s)
    z = s + m + 1.0
    return (
        _deviance(s, x)
        - _deviance(z, x)
        + 0.5 * math.log1p((m + 1.0) / s)
        - math.log(x)
        + _stirling_error(s)
        - _stirling_error(z)
    )


def _deviance(x: float, y: float) -> float:
    """``x·ln(x/y) + y - x`` (≥ 0) without cancellation when x is near y (Loader's bd0)."""
    if abs(x - y) < 0.1 * (x + y):
        v = (x - y) / (x + y)
        v2 = v * v
        total = (x - y) * v
        power = 2.0 * x * v
        j = 1
        while True:
            power *= v2
            term = power / (2 * j + 1)
            if total + term == total:
                return total
            total += term
            j += 1
    return x * math.log(x / y) + y - x


def _stirling_error(z: float) -> float:
    """``lgamma(z) - ((z-½)ln z - z + ½ln 2π)``."""
    if z < 15.0:
        return math.lgamma(z) - ((z - 0.5) * math.log(z) - z + 0.5 * math.log(2.0 * math.pi))
    inv2 = 1.0 / (z * z)
    return (1 / 12 - inv2 * (1 / 360 - inv2 * (1 / 1260 - inv2 * (1 / 1680 - inv2 / 1188)))) / z


def _log_erlang_b(agents: int, load: float) -> float:
    """``ln B(agents, load)`` by the recursion on B, carried in logs so tiny values keep their digits."""
    if agents == 0:
        return 0.0
    if load == 0.0:
        return -math.inf
    log_load = math.log(load)
    log_b = 0.0
    for k in range(1, agents + 1):
        log_b = log_load + log_b - math.log(k + math.exp(log_load + log_b))
    return log_b


def _harmonic(s: float, m: int) -> float:
    """``Σ_{j=0..m} 1/(s+j)``."""
    if m < _HARMONIC_DIRECT_MAX:
        return math.fsum(1.0 / (s + j) for j in range(m + 1))
    return _digamma(s + m + 1.0) - _digamma(s)


def _digamma(x: float) -> float:
    """ψ(x) for x > 0: recurrence up to 10, then the asymptotic series (error below 1e-15)."""
    shift = 0.0
    while x < 10.0:
        shift -= 1.0 / x
        x += 1.0
    inv2 = 1.0 / (x * x)
    series = inv2 * (1 / 12 - inv2 * (1 / 120 - inv2 * (1 / 252 - inv2 * (1 / 240 - inv2 / 132))))
    return shift + math.log(x) - 0.5 / x - series


def _sigmoid(log_odds: float) -> float:
    if log_odds >= 0.0:
        return 1.0 / (1.0 + math.exp(-log_odds))
    odds = math.exp(log_odds)
    return odds / (1.0 + odds)


def _idle(model: QueueModel, agents: int, answer_within_s: float) -> QueueMetrics:
    return QueueMetrics(
        model=model,
        agents=agents,
        offered_load_erlangs=0.0,
        answer_within_s=answer_within_s,
        p_wait=0.0,
        service_level=1.0,
        service_level_answered=1.0,
        asa_s=0.0,
        mean_wait_s=0.0,
        p_abandon=0.0,
        occupancy=0.0,
        stable=True,
    )


def _flush(probability: float) -> float:
    """0 for a probability so small that products of it would lose their digits (subnormal floats)."""
    return 0.0 if probability < _TINY else probability


def _clamp01(value: float) -> float:
    return min(1.0, max(0.0, value))


def _require_agents(agents: int, *, minimum: int = 1) -> None:
    if isinstance(agents, bool) or not isinstance(agents, int):
        raise ValidationError(f"agents must be a whole number, not {agents!r}")
    if not minimum <= agents <= MAX_AGENTS:
        raise ValidationError(f"agents must be between {minimum} and {MAX_AGENTS}, not {agents}")


def _require(
    value: float, name: str, *, minimum: float, strict: bool = False, allow_inf: bool = False
) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(f"{name} must be a number, not {value!r}")
    if math.isnan(value) or (math.isinf(value) and not (allow_inf and value > 0)):
        raise ValidationError(f"{name} must be a finite number, not {value!r}")
    if value < minimum or (strict and value == minimum):
        relation = "above" if strict else "at least"
        raise ValidationError(f"{name} must be {relation} {minimum:g}, not {value!r}")
