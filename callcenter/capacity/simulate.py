"""Discrete-event simulation of one FCFS queue in virtual time, scoring the wait predictors (pure).

The model. Callers arrive as a Poisson process whose rate per hour is piecewise constant over the
intervals of a :class:`LoadProfile` (one interval: a constant rate); the profile repeats until
``arrivals`` callers have come. Each interval also sets the agents staffed: an agent who is on a
call when staffing drops finishes it, then leaves. Callers are served first come, first served;
a caller whose patience runs out while waiting hangs up (abandons). Handle times and patience
are drawn from :class:`DurationLaw` (exponential, lognormal, gamma or deterministic). Arrival
times, handle times and patience come from three independent streams of :class:`random.Random`
seeded from ``seed``: the ``i``-th caller has the same arrival time, patience and handle time
whatever the staffing, so two what-if runs differ by staffing only (common random numbers).
At equal times, staffing changes come first, then ends of service, then abandons, then arrivals.

Prediction. Every caller who finds no free agent gets a prediction from each predictor, from what
a live system would know at that moment: callers ahead, agents staffed (none free), the mean
handle time and mean patience estimated online (:class:`HandleTimeEstimate` and
:class:`PatienceEstimate`, started from the configured means with a weight of
:data:`PRIOR_WEIGHT` observations), the Asterisk EWMA over answered waits, the head-of-line
caller's wait so far and the wait of the last caller to enter service from the queue. The state is
captured at arrival; the predictions, pure functions of it, are computed when the caller is
answered, so callers who abandon (never scored) cost nothing. Scores are over callers who waited
and were answered. QL-A costs one term per caller ahead, so beyond :data:`SCORE_ALL_UP_TO` callers ahead
one caller in ``ceil(ahead / SCORE_ALL_UP_TO)``, by arrival number, is scored and weighted by that
stride: an unbiased estimate whose cost per arrival stays bounded however long the queue grows.

Measures (the definitions of :mod:`callcenter.capacity.erlang`). The first ``warm_up`` arrivals
are simulated but neither counted nor scored. ``occupancy`` is agent busy time over agent time
present (staffed, plus agents finishing a call after their shift) between the first counted
arrival and the last arrival. The analytical comparison is Erlang A (Erlang C with infinite
patience) at the configured means; for a profile of several intervals it is the arrival-weighted
mix of each interval's steady state (SIPP), which ignores the queue carried across boundaries.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import partial

from callcenter.capacity.erlang import MAX_AGENTS, QueueMetrics, QueueModel, Workload, queue_metrics
from callcenter.capacity.predictors import (
    MAX_AHEAD,
    AsteriskEwma,
    HandleTimeEstimate,
    PatienceEstimate,
    PredictorName,
    QueueState,
    WaitPrediction,
    predict_hol,
    predict_les,
    predict_ql_a,
)
from callcenter.errors import ValidationError

#: The most arrivals one run accepts.
MAX_ARRIVALS = 10_000_000
#: The most intervals a profile may have (a week of 1-minute intervals).
MAX_INTERVALS = 10_080
#: The highest arrival rate accepted, per hour (about 2,800 calls a second).
MAX_RATE_PER_HOUR = 1e7
#: The highest coefficient of variation accepted for lognormal and gamma laws.
MAX_CV = 20.0
#: The online estimators start as if this many observations of the configured means had been seen.
PRIOR_WEIGHT = 20.0
#: Up to this many callers ahead every waiting caller is scored; beyond it, a weighted sample.
SCORE_ALL_UP_TO = 30
#: The predictors scored, in the order they are reported.
SCORED_PREDICTORS: tuple[PredictorName, ...] = (
    PredictorName.QLA,
    PredictorName.ASTERISK,
    PredictorName.HOL,
    PredictorName.LES,
)


class DurationKind(StrEnum):
    """The shape of a random duration."""

    EXPONENTIAL = "exponential"
    LOGNORMAL = "lognormal"
    GAMMA = "gamma"
    DETERMINISTIC = "deterministic"


class CallbackPolicy(StrEnum):
    """What waiting callers are offered. Only ``none`` is simulated yet."""

    NONE = "none"
    KEEP_PLACE = "keep-place"
    SLOTS = "slots"


@dataclass(frozen=True, kw_only=True, slots=True)
class DurationLaw:
    """A random duration: its shape, mean and coefficient of variation (standard deviation / mean).

    ``mean_s`` may be ``math.inf`` (a patience that never runs out). Exponential laws have ``cv = 1``
    and deterministic ones ``cv = 0``; lognormal and gamma take any ``cv`` in (0, :data:`MAX_CV`].
    """

    kind: DurationKind = DurationKind.EXPONENTIAL
    mean_s: float
    cv: float = 1.0

    def __post_init__(self) -> None:
        _require_number(self.mean_s, "mean_s", positive=True, allow_inf=True)
        _require_number(self.cv, "cv")
        if self.kind is DurationKind.EXPONENTIAL and self.cv != 1.0:
            raise ValidationError(f"an exponential law has cv 1, not {self.cv!r}")
        if self.kind is DurationKind.DETERMINISTIC and self.cv != 0.0:
            raise ValidationError(f"a deterministic law has cv 0, not {self.cv!r}")
        if self.kind in (DurationKind.LOGNORMAL, DurationKind.GAMMA) and not 0.0 < self.cv <= MAX_CV:
            raise ValidationError(
                f"cv of a {self.kind} law must be above 0 and at most {MAX_CV:g}, not {self.cv!r}"
            )

    @classmethod
    def exponential(cls, mean_s: float) -> DurationLaw:
        return cls(kind=DurationKind.EXPONENTIAL, mean_s=mean_s, cv=1.0)

    @classmethod
    def deterministic(cls, mean_s: float) -> DurationLaw:
        return cls(kind=DurationKind.DETERMINISTIC, mean_s=mean_s, cv=0.0)

    @classmethod
    def lognormal(cls, mean_s: float, cv: float = 1.0) -> DurationLaw:
        return cls(kind=DurationKind.LOGNORMAL, mean_s=mean_s, cv=cv)

    @classmethod
    def gamma(cls, mean_s: float, cv: float = 1.0) -> DurationLaw:
        return cls(kind=DurationKind.GAMMA, mean_s=mean_s, cv=cv)

    def sampler(self, rng: random.Random) -> Callable[[], float]:
        """A function drawing one duration from ``rng`` per call."""
        mean = self.mean_s
        if math.isinf(mean):
            return partial(float, "inf")
        if self.kind is DurationKind.EXPONENTIAL:
            return partial(rng.expovariate, 1.0 / mean)
        if self.kind is DurationKind.LOGNORMAL:
            sigma2 = math.log1p(self.cv * self.cv)
            return partial(rng.lognormvariate, math.log(mean) - sigma2 / 2.0, math.sqrt(sigma2))
        if self.kind is DurationKind.GAMMA:
            shape = 1.0 / (self.cv * self.cv)
            return partial(rng.gammavariate, shape, mean / shape)
        return partial(float, mean)


@dataclass(frozen=True, kw_only=True, slots=True)
class Interval:
    """One interval of a load profile: the arrival rate during it and the agents staffed."""

    rate_per_hour: float
    agents: int

    def __post_init__(self) -> None:
        _require_number(self.rate_per_hour, "rate_per_hour")
        if self.rate_per_hour > MAX_RATE_PER_HOUR:
            raise ValidationError(
                f"rate_per_hour must be at most {MAX_RATE_PER_HOUR:g}, not {self.rate_per_hour!r}"
            )
        _require_count(self.agents, "agents", 1, MAX_AGENTS)


@dataclass(frozen=True, kw_only=True, slots=True)
class LoadProfile:
    """Arrival rates and staffing per interval of ``interval_s`` seconds, repeated cyclically."""

    interval_s: float
    intervals: tuple[Interval, ...]

    def __post_init__(self) -> None:
        _require_number(self.interval_s, "interval_s", positive=True)
        if not 1 <= len(self.intervals) <= MAX_INTERVALS:
            raise ValidationError(
                f"a profile needs 1 to {MAX_INTERVALS} intervals, not {len(self.intervals)}"
            )
        if all(interval.rate_per_hour == 0.0 for interval in self.intervals):
            raise ValidationError("a profile needs at least one interval with a rate above 0")

    @classmethod
    def flat(cls, *, rate_per_hour: float, agents: int) -> LoadProfile:
        """A constant rate and staffing."""
        _require_number(rate_per_hour, "rate_per_hour", positive=True)
        return cls(interval_s=3600.0, intervals=(Interval(rate_per_hour=rate_per_hour, agents=agents),))

    @property
    def is_flat(self) -> bool:
        first = self.intervals[0]
        return all(
            i.rate_per_hour == first.rate_per_hour and i.agents == first.agents for i in self.intervals
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class SimulationConfig:
    """One simulation run.

    :param answer_within_s: the service-level threshold (answered within this many seconds).
    :param warm_up: arrivals simulated before counting and scoring starts.
    :param score_predictors: ``False`` skips the predictors (queue measures only, faster).
    """

    profile: LoadProfile
    handle: DurationLaw
    patience: DurationLaw
    arrivals: int
    seed: int = 0
    answer_within_s: float = 20.0
    warm_up: int = 0
    callback_policy: CallbackPolicy = CallbackPolicy.NONE
    score_predictors: bool = True

    def __post_init__(self) -> None:
        if math.isinf(self.handle.mean_s):
            raise ValidationError("handle time mean_s must be finite")
        _require_count(self.arrivals, "arrivals", 1, MAX_ARRIVALS)
        _require_count(self.warm_up, "warm_up", 0, self.arrivals - 1)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValidationError(f"seed must be a whole number, not {self.seed!r}")
        _require_number(self.answer_within_s, "answer_within_s")
        if self.callback_policy is not CallbackPolicy.NONE:
            raise ValidationError(
                f"callback policy {self.callback_policy.value!r} is not simulated yet: it comes with the "
                "callback-offer issue; use 'none'"
            )


@dataclass(frozen=True, kw_only=True, slots=True)
class PredictorScore:
    """How one predictor did on the callers who waited and were answered (``None`` when none were).

    :param scored: callers whose prediction was scored (a weighted sample beyond
        :data:`SCORE_ALL_UP_TO` callers ahead).
    :param rel_rmse: RMSE over the mean actual wait of the same callers.
    :param bias_s: mean of predicted minus actual wait.
    :param p80_coverage: share of callers answered by the predicted p80 time.
    """

    predictor: PredictorName
    scored: int
    mean_actual_s: float | None
    rmse_s: float | None
    rel_rmse: float | None
    bias_s: float | None
    p80_coverage: float | None
    p90_coverage: float | None


@dataclass(frozen=True, kw_only=True, slots=True)
class CallbackStats:
    """Callbacks offered, accepted and kept (all zero until the callback-offer issue lands)."""

    offered: int = 0
    accepted: int = 0
    kept: int = 0
    kept_rate: float | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class AnalyticalMetrics:
    """The Erlang model's measures for the same inputs, to read beside the simulated ones.

    :param exact: the simulated model is the analytical one (exponential handle time and patience,
        constant rate and staffing); otherwise the figures are an approximation at the same means.
    :param stable: ``False`` when Erlang C has no steady state in some interval (waits unbounded).
    """

    model: QueueModel
    exact: bool
    stable: bool
    p_wait: float
    service_level: float
    service_level_answered: float
    abandon_rate: float
    asa_s: float
    mean_wait_s: float
    occupancy: float


@dataclass(frozen=True, kw_only=True, slots=True)
class IntervalResult:
    """Simulated measures of the callers who arrived in one interval of the profile (all cycles)."""

    index: int
    start_s: float
    rate_per_hour: float
    agents: int
    arrivals: int
    answered: int
    abandoned: int
    service_level: float | None
    abandon_rate: float | None
    asa_s: float | None


@dataclass(frozen=True, kw_only=True, slots=True)
class SimulationResult:
    """The measures of one run over its counted arrivals (definitions in the module docstring)."""

    arrivals: int
    warm_up: int
    answered: int
    abandoned: int
    answer_within_s: float
    service_level: float
    service_level_answered: float | None
    p_wait: float
    abandon_rate: float
    asa_s: float | None
    mean_wait_s: float
    occupancy: float | None
    duration_s: float
    callbacks: CallbackStats
    predictors: tuple[PredictorScore, ...]
    erlang: AnalyticalMetrics
    intervals: tuple[IntervalResult, ...]

    def predictor(self, name: PredictorName) -> PredictorScore:
        """The score of one predictor."""
        for score in self.predictors:
            if score.predictor is name:
                return score
        raise KeyError(name)


def simulate(
    config: SimulationConfig, *, on_progress: Callable[[int], None] | None = None
) -> SimulationResult:
    """Run the simulation; ``on_progress(arrived)`` is called every 10,000 arrivals if given."""
    run = _Run(config, on_progress)
    run.run()
    return run.result()


def analytical_metrics(config: SimulationConfig) -> AnalyticalMetrics:
    """Erlang A (Erlang C for infinite patience) at the configured means, mixed over intervals."""
    profile = config.profile
    exact = (
        profile.is_flat
        and config.handle.kind is DurationKind.EXPONENTIAL
        and (config.patience.kind is DurationKind.EXPONENTIAL or math.isinf(config.patience.mean_s))
    )
    per_interval = [_interval_metrics(config, interval) for interval in profile.intervals]
    models = {m.model for m in per_interval}
    weights = [i.rate_per_hour for i in profile.intervals]
    answered = [w * (1.0 - m.p_abandon) for w, m in zip(weights, per_interval, strict=True)]
    agent_time = [float(i.agents) for i in profile.intervals]

    def mix(values: Sequence[float], over: Sequence[float]) -> float:
        total = math.fsum(over)
        if total == 0.0:
            return 0.0
        return math.fsum(v * w for v, w in zip(values, over, strict=True) if w > 0.0) / total

    within = [w * m.service_level for w, m in zip(weights, per_interval, strict=True)]
    return AnalyticalMetrics(
        model=QueueModel.ERLANG_A if QueueModel.ERLANG_A in models else QueueModel.ERLANG_C,
        exact=exact,
        stable=all(m.stable for m in per_interval),
        p_wait=mix([m.p_wait for m in per_interval], weights),
        service_level=mix([m.service_level for m in per_interval], weights),
        service_level_answered=min(1.0, math.fsum(within) / math.fsum(answered)),
        abandon_rate=mix([m.p_abandon for m in per_interval], weights),
        asa_s=mix([m.asa_s for m in per_interval], answered),
        mean_wait_s=mix([m.mean_wait_s for m in per_interval], weights),
        occupancy=mix([m.occupancy for m in per_interval], agent_time),
    )


def _interval_metrics(config: SimulationConfig, interval: Interval) -> QueueMetrics:
    workload = Workload(
        arrival_rate_per_s=interval.rate_per_hour / 3600.0,
        aht_s=config.handle.mean_s,
        patience_s=config.patience.mean_s,
    )
    within = config.answer_within_s
    if math.isinf(workload.patience_s):
        return queue_metrics(workload, interval.agents, answer_within_s=within, model=QueueModel.ERLANG_C)
    try:
        return queue_metrics(workload, interval.agents, answer_within_s=within, model=QueueModel.ERLANG_A)
    except ValidationError:
        # Patience of weeks: beyond Erlang A's range, and indistinguishable from its limit, Erlang C.
        return queue_metrics(workload, interval.agents, answer_within_s=within, model=QueueModel.ERLANG_C)


# --- the event loop -------------------------------------------------------------------------------


class _Caller:
    """A caller who found no free agent (mutable: the loop marks them done)."""

    __slots__ = ("arrived_at", "handle_s", "slot", "counted", "done", "state", "asterisk", "weight")

    def __init__(self, arrived_at: float, handle_s: float, slot: int, counted: bool) -> None:
        self.arrived_at = arrived_at
        self.handle_s = handle_s
        self.slot = slot
        self.counted = counted
        self.done = False
        self.state: QueueState | None = None
        self.asterisk: AsteriskEwma | None = None
        self.weight = 1


class _Score:
    """Weighted running sums of one predictor's errors."""

    __slots__ = ("count", "weight", "actual", "error", "error2", "hits80", "hits90")

    def __init__(self) -> None:
        self.count = 0
        self.weight = self.actual = self.error = self.error2 = self.hits80 = self.hits90 = 0.0

    def add(self, prediction: WaitPrediction, actual_s: float, weight: float) -> None:
        error = prediction.mean_s - actual_s
        self.count += 1
        self.weight += weight
        self.actual += weight * actual_s
        self.error += weight * error
        self.error2 += weight * error * error
        if actual_s <= prediction.p80_s:
            self.hits80 += weight
        if actual_s <= prediction.p90_s:
            self.hits90 += weight

    def result(self, name: PredictorName) -> PredictorScore:
        if self.count == 0:
            return PredictorScore(
                predictor=name,
                scored=0,
                mean_actual_s=None,
                rmse_s=None,
                rel_rmse=None,
                bias_s=None,
                p80_coverage=None,
                p90_coverage=None,
            )
        mean_actual = self.actual / self.weight
        rmse = math.sqrt(self.error2 / self.weight)
        return PredictorScore(
            predictor=name,
            scored=self.count,
            mean_actual_s=mean_actual,
            rmse_s=rmse,
            rel_rmse=rmse / mean_actual if mean_actual > 0.0 else None,
            bias_s=self.error / self.weight,
            p80_coverage=self.hits80 / self.weight,
            p90_coverage=self.hits90 / self.weight,
        )


class _Tally:
    """Counts per interval slot of the profile (slot 0 only for a flat profile)."""

    __slots__ = ("arrivals", "answered", "within", "abandoned", "waited", "answered_wait", "total_wait")

    def __init__(self, slots: int) -> None:
        self.arrivals = [0] * slots
        self.answered = [0] * slots
        self.within = [0] * slots
        self.abandoned = [0] * slots
        self.waited = [0] * slots
        self.answered_wait = [0.0] * slots
        self.total_wait = [0.0] * slots


_PROGRESS_EVERY = 10_000


class _Run:
    """The state of one run; :meth:`run` advances it to the end."""

    def __init__(self, config: SimulationConfig, on_progress: Callable[[int], None] | None) -> None:
        self.config = config
        self.on_progress = on_progress
        profile = config.profile
        seed = config.seed
        self.arrival_rng = random.Random(f"{seed}:arrivals")
        self.draw_handle = config.handle.sampler(random.Random(f"{seed}:handle"))
        self.draw_patience = config.patience.sampler(random.Random(f"{seed}:patience"))
        self.interval_s = profile.interval_s
        self.rates_per_s = [i.rate_per_hour / 3600.0 for i in profile.intervals]
        self.staffing = [i.agents for i in profile.intervals]
        self.flat = profile.is_flat
        self.slots = 1 if self.flat else len(profile.intervals)
        # Arrival clock: which interval (counted over all cycles) the next arrival search is in.
        self.arrival_interval = 0
        # Staffing clock: the next interval boundary where staffing may change.
        self.next_boundary = math.inf if self.flat else profile.interval_s
        self.boundary_index = 0
        self.agents = self.staffing[0]
        self.busy = 0
        self.leaving = 0
        self.ends: list[tuple[float, float]] = []
        self.abandons: list[tuple[float, int, _Caller]] = []
        self.queue: deque[_Caller] = deque()
        self.waiting = 0
        self.arrived = 0
        self.handle_estimate = HandleTimeEstimate.with_prior(config.handle.mean_s, PRIOR_WEIGHT)
        if math.isinf(config.patience.mean_s):
            self.patience_estimate = PatienceEstimate()
        else:
            self.patience_estimate = PatienceEstimate.with_prior(config.patience.mean_s, PRIOR_WEIGHT)
        self.ewma = AsteriskEwma()
        self.les_wait_s = 0.0
        self.scores = {name: _Score() for name in SCORED_PREDICTORS}
        self.tally = _Tally(self.slots)
        # Occupancy window: from the first counted arrival to the last arrival.
        self.measuring = False
        self.clock = 0.0
        self.window_start = 0.0
        self.window_end = 0.0
        self.busy_time = 0.0
        self.present_time = 0.0

    # -- the loop ----------------------------------------------------------------------------------

    def run(self) -> None:
        total = self.config.arrivals
        next_arrival = self._next_arrival(0.0)
        ends, abandons = self.ends, self.abandons
        inf = math.inf
        while True:
            arrival = next_arrival if self.arrived < total else inf
            end = ends[0][0] if ends else inf
            abandon = abandons[0][0] if abandons else inf
            boundary = self.next_boundary
            if boundary <= end and boundary <= abandon and boundary <= arrival:
                if boundary == inf:
                    return
                self._advance(boundary)
                self._restaff()
            elif end <= abandon and end <= arrival:
                self._advance(end)
                self._end_service()
            elif abandon <= arrival:
                self._advance(abandon)
                self._abandon()
            else:
                self._advance(arrival)
                self._arrive(arrival)
                if self.arrived < total:
                    next_arrival = self._next_arrival(arrival)
            if self.arrived >= total and self.waiting == 0:
                return

    def _advance(self, now: float) -> None:
        if self.measuring:
            elapsed = now - self.clock
            self.busy_time += self.busy * elapsed
            self.present_time += (self.agents + self.leaving) * elapsed
        self.clock = now

    def _next_arrival(self, after: float) -> float:
        """The next arrival time of the Poisson process with piecewise-constant rate (by inversion)."""
        if self.flat:
            return after + self.arrival_rng.expovariate(self.rates_per_s[0])
        work = self.arrival_rng.expovariate(1.0)
        rates, n, length = self.rates_per_s, len(self.rates_per_s), self.interval_s
        t = after
        while True:
            rate = rates[self.arrival_interval % n]
            end = (self.arrival_interval + 1) * length
            if rate * (end - t) >= work:
                return t + work / rate
            work -= rate * (end - t)
            t = end
            self.arrival_interval += 1

    def _arrive(self, now: float) -> None:
        config = self.config
        index = self.arrived
        self.arrived = index + 1
        counted = index >= config.warm_up
        if index == config.warm_up:
            self.measuring, self.window_start = True, now
        if self.arrived == config.arrivals:
            self.measuring, self.window_end = False, now
        if self.on_progress is not None and self.arrived % _PROGRESS_EVERY == 0:
            self.on_progress(self.arrived)
        slot = 0 if self.flat else int(now // self.interval_s) % self.slots
        handle_s = self.draw_handle()
        patience_s = self.draw_patience()
        if counted:
            self.tally.arrivals[slot] += 1
        if self.busy - self.leaving < self.agents:
            self._start(handle_s, now)
            self.ewma = self.ewma.update(0.0)
            if counted:
                self.tally.answered[slot] += 1
                self.tally.within[slot] += 1
            return
        caller = _Caller(now, handle_s, slot, counted)
        if counted:
            self.tally.waited[slot] += 1
            if config.score_predictors:
                self._capture(caller, index, now)
        self.queue.append(caller)
        self.waiting += 1
        if patience_s != math.inf:
            heapq.heappush(self.abandons, (now + patience_s, index, caller))

    def _capture(self, caller: _Caller, index: int, now: float) -> None:
        """Record what a live system knows as this caller joins the queue."""
        ahead = self.waiting
        if ahead > SCORE_ALL_UP_TO:
            stride = -(-ahead // SCORE_ALL_UP_TO)
            if index % stride or ahead > MAX_AHEAD:
                return
            caller.weight = stride
        queue = self.queue
        while queue and queue[0].done:
            queue.popleft()
        caller.state = QueueState(
            ahead=ahead,
            agents_staffed=self.agents,
            agents_free=0,
            aht_s=self.handle_estimate.mean_s or self.config.handle.mean_s,
            patience_s=self.patience_estimate.mean_s or math.inf,
            hol_wait_s=now - queue[0].arrived_at if queue else 0.0,
            les_wait_s=self.les_wait_s,
        )
        caller.asterisk = self.ewma

    def _start(self, handle_s: float, now: float) -> None:
        self.busy += 1
        heapq.heappush(self.ends, (now + handle_s, handle_s))

    def _end_service(self) -> None:
        now, handle_s = heapq.heappop(self.ends)
        self.handle_estimate = self.handle_estimate.update(handle_s)
        self.busy -= 1
        if self.leaving:
            self.leaving -= 1
            return
        if self.waiting:
            self._answer_next(now)

    def _answer_next(self, now: float) -> None:
        queue = self.queue
        caller = queue.popleft()
        while caller.done:
            caller = queue.popleft()
        caller.done = True
        self.waiting -= 1
        wait_s = now - caller.arrived_at
        self._start(caller.handle_s, now)
        self.ewma = self.ewma.update(wait_s)
        self.les_wait_s = wait_s
        self.patience_estimate = self.patience_estimate.update(wait_s, abandoned=False)
        if not caller.counted:
            return
        tally, slot = self.tally, caller.slot
        tally.answered[slot] += 1
        tally.answered_wait[slot] += wait_s
        tally.total_wait[slot] += wait_s
        if wait_s <= self.config.answer_within_s:
            tally.within[slot] += 1
        state, asterisk = caller.state, caller.asterisk
        if state is not None and asterisk is not None:
            weight, scores = caller.weight, self.scores
            scores[PredictorName.QLA].add(predict_ql_a(state), wait_s, weight)
            scores[PredictorName.ASTERISK].add(asterisk.predict(), wait_s, weight)
            scores[PredictorName.HOL].add(predict_hol(state), wait_s, weight)
            scores[PredictorName.LES].add(predict_les(state), wait_s, weight)

    def _abandon(self) -> None:
        now, _, caller = heapq.heappop(self.abandons)
        if caller.done:
            return
        caller.done = True
        self.waiting -= 1
        wait_s = now - caller.arrived_at
        self.patience_estimate = self.patience_estimate.update(wait_s, abandoned=True)
        if caller.counted:
            self.tally.abandoned[caller.slot] += 1
            self.tally.total_wait[caller.slot] += wait_s

    def _restaff(self) -> None:
        self.boundary_index += 1
        self.next_boundary = (self.boundary_index + 1) * self.interval_s
        target = self.staffing[self.boundary_index % len(self.staffing)]
        now = self.clock
        if target > self.agents:
            self.leaving -= min(self.leaving, target - self.agents)
            self.agents = target
            while self.waiting and self.busy - self.leaving < self.agents:
                self._answer_next(now)
        elif target < self.agents:
            free = self.agents - (self.busy - self.leaving)
            self.leaving += max(0, self.agents - target - free)
            self.agents = target

    # -- the result --------------------------------------------------------------------------------

    def result(self) -> SimulationResult:
        config, tally = self.config, self.tally
        arrivals = sum(tally.arrivals)
        answered = sum(tally.answered)
        abandoned = sum(tally.abandoned)
        within = sum(tally.within)
        return SimulationResult(
            arrivals=arrivals,
            warm_up=config.warm_up,
            answered=answered,
            abandoned=abandoned,
            answer_within_s=config.answer_within_s,
            service_level=within / arrivals,
            service_level_answered=within / answered if answered else None,
            p_wait=sum(tally.waited) / arrivals,
            abandon_rate=abandoned / arrivals,
            asa_s=math.fsum(tally.answered_wait) / answered if answered else None,
            mean_wait_s=math.fsum(tally.total_wait) / arrivals,
            occupancy=self.busy_time / self.present_time if self.present_time > 0.0 else None,
            duration_s=self.window_end - self.window_start,
            callbacks=CallbackStats(),
            predictors=tuple(self.scores[name].result(name) for name in SCORED_PREDICTORS),
            erlang=analytical_metrics(config),
            intervals=self._intervals(),
        )

    def _intervals(self) -> tuple[IntervalResult, ...]:
        if self.flat:
            return ()
        tally, profile = self.tally, self.config.profile
        results = []
        for index, interval in enumerate(profile.intervals):
            arrivals = tally.arrivals[index]
            answered = tally.answered[index]
            results.append(
                IntervalResult(
                    index=index,
                    start_s=index * profile.interval_s,
                    rate_per_hour=interval.rate_per_hour,
                    agents=interval.agents,
                    arrivals=arrivals,
                    answered=answered,
                    abandoned=tally.abandoned[index],
                    service_level=tally.within[index] / arrivals if arrivals else None,
                    abandon_rate=tally.abandoned[index] / arrivals if arrivals else None,
                    asa_s=tally.answered_wait[index] / answered if answered else None,
                )
            )
        return tuple(results)


# --- validation -----------------------------------------------------------------------------------


def _require_count(value: int, name: str, minimum: int, maximum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"{name} must be a whole number, not {value!r}")
    if not minimum <= value <= maximum:
        raise ValidationError(f"{name} must be between {minimum} and {maximum}, not {value}")


def _require_number(value: float, name: str, *, positive: bool = False, allow_inf: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(f"{name} must be a number, not {value!r}")
    if math.isnan(value) or (math.isinf(value) and not (allow_inf and value > 0)):
        raise ValidationError(f"{name} must be a finite number, not {value!r}")
    if value < 0 or (positive and value == 0):
        raise ValidationError(f"{name} must be {'above' if positive else 'at least'} 0, not {value!r}")
