"""Wait-time predictors: QL-A against hand-computed laws, the baselines, the online estimators."""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callcenter.capacity.predictors import (
    AsteriskEwma,
    HandleTimeEstimate,
    PatienceEstimate,
    PredictorName,
    QueueState,
    WaitPrediction,
    predict_hol,
    predict_les,
    predict_ql,
    predict_ql_a,
    wait_quantile_s,
    wait_survival,
)
from callcenter.errors import ValidationError

LN5, LN10 = math.log(5.0), math.log(10.0)


def _bisect(f: Callable[[float], float], low: float, high: float) -> float:
    """The root of a decreasing ``f`` between ``low`` and ``high``."""
    for _ in range(200):
        middle = (low + high) / 2
        if f(middle) > 0:
            low = middle
        else:
            high = middle
    return (low + high) / 2


# --- QL-A and QL against known laws -------------------------------------------------------------


@pytest.mark.parametrize(
    ("ahead", "p80_over_mean", "p90_over_mean"),
    [
        (0, 1.61, 2.30),
        (1, 1.50, 1.94),
        (3, 1.38, 1.67),
        (5, 1.32, 1.55),
        (8, 1.26, 1.44),
        (10, 1.24, 1.40),
        (15, 1.20, 1.33),
        (24, 1.16, 1.26),
        (49, 1.12, 1.18),
        (99, 1.08, 1.13),
    ],
)
def test_ql_quantiles_match_the_erlang_law_table_of_anchors(
    ahead: int, p80_over_mean: float, p90_over_mean: float
) -> None:
    """ANCHORS.md §2.1: with no abandonment the wait is Erlang(n+1, sμ)."""
    state = QueueState(ahead=ahead, agents_staffed=4, aht_s=200.0)
    prediction = predict_ql(state)
    assert prediction.mean_s == pytest.approx((ahead + 1) * 200.0 / 4)
    assert round(prediction.p80_s / prediction.mean_s, 2) == p80_over_mean
    assert round(prediction.p90_s / prediction.mean_s, 2) == p90_over_mean


def test_ql_a_with_one_ahead_and_patience_equal_to_the_service_rate_is_hand_computed() -> None:
    """sμ = θ = 0.02/s, one caller ahead: rates θ and 2θ, so P(V > v) = 2y - y² with y = e^{-θv}."""
    state = QueueState(ahead=1, agents_staffed=2, aht_s=100.0, patience_s=50.0)
    theta = 0.02
    offered = predict_ql_a(state, given_answered=False)
    assert offered.mean_s == pytest.approx(1 / theta + 1 / (2 * theta))  # 75 s
    assert offered.p80_s == pytest.approx(-math.log(1 - math.sqrt(0.8)) / theta, rel=1e-9)  # 112.42 s
    assert offered.p90_s == pytest.approx(-math.log(1 - math.sqrt(0.9)) / theta, rel=1e-9)
    assert wait_survival(state, offered.p80_s, given_answered=False) == pytest.approx(0.2, rel=1e-9)

    # Answered callers: every rate raised by θ, so 2θ and 3θ and P(V > v) = 3y² - 2y³.
    answered = predict_ql_a(state)
    assert answered.predictor is PredictorName.QLA
    assert answered.mean_s == pytest.approx(1 / (2 * theta) + 1 / (3 * theta))  # 41.67 s

    def survival(p: float) -> Callable[[float], float]:
        return lambda v: 3 * math.exp(-2 * theta * v) - 2 * math.exp(-3 * theta * v) - (1 - p)

    assert answered.p80_s == pytest.approx(_bisect(survival(0.8), 0.0, 1e4), rel=1e-9)
    assert answered.p90_s == pytest.approx(_bisect(survival(0.9), 0.0, 1e4), rel=1e-9)


def test_ql_a_mean_with_abandonment_is_the_sum_of_head_departure_times() -> None:
    state = QueueState(ahead=4, agents_staffed=3, aht_s=180.0, patience_s=240.0)
    rates = [3 / 180 + i / 240 for i in range(5)]
    assert predict_ql_a(state, given_answered=False).mean_s == pytest.approx(sum(1 / r for r in rates))
    assert predict_ql_a(state).mean_s == pytest.approx(sum(1 / (r + 1 / 240) for r in rates))


@pytest.mark.parametrize(
    ("ahead", "free", "expected_mean_s"),
    [
        (0, 1, 0.0),  # an agent is free for this caller
        (2, 3, 0.0),
        (3, 3, 45.0),  # the free agents take those ahead: one departure at 4/180 per second
        (5, 2, 4 * 45.0),
        (0, 0, 45.0),
    ],
)
def test_free_agents_take_callers_ahead_first(ahead: int, free: int, expected_mean_s: float) -> None:
    state = QueueState(ahead=ahead, agents_staffed=4, agents_free=free, aht_s=180.0)
    prediction = predict_ql_a(state)
    assert prediction.mean_s == pytest.approx(expected_mean_s)
    if expected_mean_s == 0.0:
        assert prediction == WaitPrediction(predictor=PredictorName.QLA, mean_s=0.0, p80_s=0.0, p90_s=0.0)
        assert wait_survival(state, 1.0) == 0.0


def test_a_single_departure_has_exponential_quantiles() -> None:
    state = QueueState(ahead=0, agents_staffed=2, aht_s=100.0, patience_s=200.0)
    rate = 2 / 100 + 1 / 200
    assert wait_quantile_s(state, 0.5) == pytest.approx(math.log(2) / rate)
    assert predict_ql_a(state).p90_s == pytest.approx(LN10 / rate)


def test_ql_a_stays_finite_at_the_extremes() -> None:
    crowded = predict_ql_a(QueueState(ahead=100_000, agents_staffed=1, aht_s=180.0, patience_s=1e9))
    assert math.isfinite(crowded.p90_s) and crowded.mean_s < crowded.p80_s < crowded.p90_s
    impatient = predict_ql_a(QueueState(ahead=100_000, agents_staffed=2000, aht_s=1.0, patience_s=1e-3))
    assert 0.0 < impatient.mean_s < impatient.p80_s < impatient.p90_s < 1.0


# --- properties ---------------------------------------------------------------------------------

states = st.builds(
    QueueState,
    ahead=st.integers(0, 300),
    agents_staffed=st.integers(1, 2000),
    aht_s=st.floats(1.0, 3600.0),
    patience_s=st.one_of(st.floats(1.0, 1e6), st.just(math.inf)),
)


@settings(max_examples=200, deadline=None)
@given(states, st.booleans())
def test_mean_p80_p90_are_ordered_and_p80_leaves_a_fifth(state: QueueState, given_answered: bool) -> None:
    prediction = predict_ql_a(state, given_answered=given_answered)
    assert 0.0 < prediction.mean_s <= prediction.p80_s <= prediction.p90_s < math.inf
    assert wait_survival(state, prediction.p80_s, given_answered=given_answered) == pytest.approx(
        0.2, rel=1e-6
    )
    assert wait_survival(state, prediction.p90_s, given_answered=given_answered) == pytest.approx(
        0.1, rel=1e-6
    )


@settings(max_examples=150, deadline=None)
@given(states)
def test_more_callers_ahead_means_a_longer_wait(state: QueueState) -> None:
    later = QueueState(
        ahead=state.ahead + 1,
        agents_staffed=state.agents_staffed,
        aht_s=state.aht_s,
        patience_s=state.patience_s,
    )
    now, then = predict_ql_a(state), predict_ql_a(later)
    assert then.mean_s > now.mean_s
    assert then.p80_s > now.p80_s and then.p90_s > now.p90_s


@settings(max_examples=150, deadline=None)
@given(states.filter(lambda s: s.agents_staffed < 2000))
def test_more_agents_means_a_shorter_wait(state: QueueState) -> None:
    more = QueueState(
        ahead=state.ahead,
        agents_staffed=state.agents_staffed + 1,
        aht_s=state.aht_s,
        patience_s=state.patience_s,
    )
    now, then = predict_ql_a(state), predict_ql_a(more)
    assert then.mean_s < now.mean_s
    assert then.p80_s < now.p80_s and then.p90_s < now.p90_s


@settings(max_examples=150, deadline=None)
@given(states)
def test_without_abandonment_ql_a_is_the_plain_queue_length_predictor(state: QueueState) -> None:
    patient = QueueState(ahead=state.ahead, agents_staffed=state.agents_staffed, aht_s=state.aht_s)
    qla, ql = predict_ql_a(patient), predict_ql(state)
    expected = (state.ahead + 1) * state.aht_s / state.agents_staffed
    assert qla.mean_s == pytest.approx(expected, rel=1e-12)
    assert ql.mean_s == pytest.approx(expected, rel=1e-12)
    assert (qla.p80_s, qla.p90_s) == pytest.approx((ql.p80_s, ql.p90_s), rel=1e-9)


@settings(max_examples=150, deadline=None)
@given(states.filter(lambda s: math.isfinite(s.patience_s)))
def test_abandonment_ahead_and_being_answered_both_shorten_the_wait(state: QueueState) -> None:
    offered = predict_ql_a(state, given_answered=False)
    answered = predict_ql_a(state)
    ql = predict_ql(state)
    assert answered.mean_s < offered.mean_s <= ql.mean_s
    assert answered.p80_s < offered.p80_s <= ql.p80_s * (1 + 1e-12)


# --- baselines ----------------------------------------------------------------------------------


def test_asterisk_ewma_follows_app_queue_and_ignores_position() -> None:
    ewma = AsteriskEwma()
    assert ewma.update(60.0) == AsteriskEwma(15.0)  # (3·0 + 60)/4
    ewma = ewma.update(60.0).update(100.0)  # 0 -> 15 -> (45 + 100)/4
    assert ewma.holdtime_s == 36.25
    announced = ewma.predict(elapsed_s=10.0)
    assert announced == WaitPrediction(
        predictor=PredictorName.ASTERISK, mean_s=26.25, p80_s=26.25 * LN5, p90_s=26.25 * LN10
    )
    assert ewma.predict(elapsed_s=50.0).mean_s == 0.0  # floored, never negative


@pytest.mark.parametrize(
    ("hol_wait_s", "les_wait_s", "elapsed_s", "hol_mean_s", "les_mean_s"),
    [
        (90.0, 40.0, 0.0, 90.0, 40.0),
        (90.0, 40.0, 30.0, 60.0, 10.0),
        (90.0, 40.0, 60.0, 30.0, 0.0),
        (0.0, 0.0, 0.0, 0.0, 0.0),  # empty queue, nobody served yet
    ],
)
def test_hol_and_les_are_delay_history_less_own_wait(
    hol_wait_s: float, les_wait_s: float, elapsed_s: float, hol_mean_s: float, les_mean_s: float
) -> None:
    state = QueueState(
        ahead=2,
        agents_staffed=3,
        aht_s=180.0,
        elapsed_s=elapsed_s,
        hol_wait_s=hol_wait_s,
        les_wait_s=les_wait_s,
    )
    hol, les = predict_hol(state), predict_les(state)
    assert (hol.predictor, hol.mean_s) == (PredictorName.HOL, hol_mean_s)
    assert (hol.p80_s, hol.p90_s) == pytest.approx((hol_mean_s * LN5, hol_mean_s * LN10))
    assert (les.predictor, les.mean_s) == (PredictorName.LES, les_mean_s)
    assert (les.p80_s, les.p90_s) == pytest.approx((les_mean_s * LN5, les_mean_s * LN10))


# --- online estimators --------------------------------------------------------------------------


def test_patience_is_the_censored_exponential_mle() -> None:
    estimate = PatienceEstimate()
    assert estimate.mean_s is None
    estimate = estimate.update(20.0, abandoned=False)
    assert estimate.mean_s == math.inf  # waits seen, nobody hung up yet
    estimate = estimate.update(10.0, abandoned=True).update(30.0, abandoned=True).update(0.0, abandoned=False)
    # 60 s of waiting in all, 2 abandons: the answered caller's 20 s counts as exposure too.
    assert estimate == PatienceEstimate(2.0, 60.0)
    assert estimate.mean_s == 30.0
    assert estimate.decayed(0.5) == PatienceEstimate(1.0, 30.0)
    assert estimate.merged(PatienceEstimate(1.0, 90.0)).mean_s == 50.0
    assert PatienceEstimate.with_prior(300.0, 2.0).update(100.0, abandoned=True).mean_s == pytest.approx(
        700 / 3
    )


def test_handle_time_is_a_running_mean_with_prior_and_forgetting() -> None:
    estimate = HandleTimeEstimate()
    assert estimate.mean_s is None
    estimate = estimate.update(100.0).update(200.0)
    assert estimate.mean_s == 150.0
    assert estimate.decayed(0.5).update(300.0).mean_s == pytest.approx((150 + 300) / 2)  # 150 s over 1 call
    assert estimate.merged(HandleTimeEstimate(2.0, 100.0)).mean_s == 100.0
    assert HandleTimeEstimate.with_prior(180.0, 3.0).update(60.0).mean_s == pytest.approx(150.0)


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {"agents_staffed": 0},
        {"agents_staffed": 2001},
        {"agents_staffed": True},
        {"agents_free": 4},
        {"agents_free": -1},
        {"ahead": -1},
        {"ahead": 100_001},
        {"ahead": 1.5},
        {"aht_s": 0.0},
        {"aht_s": math.nan},
        {"aht_s": math.inf},
        {"patience_s": -5.0},
        {"patience_s": 0.0},
        {"patience_s": math.nan},
        {"elapsed_s": -1.0},
        {"hol_wait_s": math.inf},
        {"les_wait_s": "10"},
    ],
)
def test_impossible_queue_states_are_refused(fields: dict[str, object]) -> None:
    base: dict[str, object] = {"ahead": 1, "agents_staffed": 3, "aht_s": 180.0}
    with pytest.raises(ValidationError):
        QueueState(**{**base, **fields})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "call",
    [
        lambda: AsteriskEwma(-1.0),
        lambda: AsteriskEwma().update(math.nan),
        lambda: AsteriskEwma().predict(-3.0),
        lambda: HandleTimeEstimate().update(-1.0),
        lambda: HandleTimeEstimate().decayed(0.0),
        lambda: HandleTimeEstimate.with_prior(0.0, 1.0),
        lambda: PatienceEstimate().update(math.inf, abandoned=True),
        lambda: PatienceEstimate().decayed(1.5),
        lambda: wait_quantile_s(QueueState(ahead=1, agents_staffed=1, aht_s=60.0), 1.0),
        lambda: wait_survival(QueueState(ahead=1, agents_staffed=1, aht_s=60.0), -1.0),
    ],
)
def test_bad_observations_are_refused(call) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValidationError):
        call()


# --- a simulated M/M/s+M queue ------------------------------------------------------------------


@dataclass
class _Waiting:
    arrived_at: float
    gives_up_at: float
    qla: WaitPrediction
    asterisk: WaitPrediction
    hol: WaitPrediction
    les: WaitPrediction
    scored: bool


@dataclass
class _Outcome:
    actual: list[float]
    predicted: dict[PredictorName, list[WaitPrediction]]
    handle: HandleTimeEstimate
    patience: PatienceEstimate


def _simulate(
    *, seed: int, agents: int, load: float, aht_s: float, patience_s: float, arrivals: int, warm_up: int
) -> _Outcome:
    """One FCFS M/M/s+M queue, event by event; predictors fed only what a live system would see."""
    rng = random.Random(seed)
    arrival_rate = load / aht_s
    busy: list[tuple[float, float]] = []  # (ends_at, handle_s) per busy agent
    queue: deque[_Waiting] = deque()
    # Deliberately wrong cold-start guesses: the online estimators must correct them.
    handle = HandleTimeEstimate.with_prior(120.0, 5.0)
    patience = PatienceEstimate.with_prior(600.0, 5.0)
    ewma, les_wait = AsteriskEwma(), 0.0
    outcome = _Outcome([], {name: [] for name in PredictorName}, handle, patience)
    arrived, next_arrival = 0, rng.expovariate(arrival_rate)

    def start(now: float) -> None:
        handle_s = rng.expovariate(1 / aht_s)
        heapq.heappush(busy, (now + handle_s, handle_s))

    while arrived < arrivals or queue:
        next_end = busy[0][0] if busy else math.inf
        now = next_arrival if arrived < arrivals and next_arrival <= next_end else next_end
        for caller in [c for c in queue if c.gives_up_at <= now]:
            queue.remove(caller)
            patience = patience.update(caller.gives_up_at - caller.arrived_at, abandoned=True)
        if now == next_arrival and arrived < arrivals:
            arrived += 1
            next_arrival = now + rng.expovariate(arrival_rate)
            if len(busy) < agents:
                start(now)
                ewma = ewma.update(0.0)
                continue
            state = QueueState(
                ahead=len(queue),
                agents_staffed=agents,
                aht_s=handle.mean_s or aht_s,
                patience_s=patience.mean_s or math.inf,
                hol_wait_s=now - queue[0].arrived_at if queue else 0.0,
                les_wait_s=les_wait,
            )
            queue.append(
                _Waiting(
                    arrived_at=now,
                    gives_up_at=now + rng.expovariate(1 / patience_s),
                    qla=predict_ql_a(state),
                    asterisk=ewma.predict(),
                    hol=predict_hol(state),
                    les=predict_les(state),
                    scored=arrived > warm_up,
                )
            )
        else:
            _, handle_s = heapq.heappop(busy)
            handle = handle.update(handle_s)
            if queue:
                caller = queue.popleft()
                les_wait = now - caller.arrived_at
                ewma = ewma.update(les_wait)
                patience = patience.update(les_wait, abandoned=False)
                start(now)
                if caller.scored:
                    outcome.actual.append(les_wait)
                    for name, prediction in [
                        (PredictorName.QLA, caller.qla),
                        (PredictorName.ASTERISK, caller.asterisk),
                        (PredictorName.HOL, caller.hol),
                        (PredictorName.LES, caller.les),
                    ]:
                        outcome.predicted[name].append(prediction)
    outcome.handle, outcome.patience = handle, patience
    return outcome


def test_ql_a_beats_asterisk_on_a_simulated_queue_and_its_p80_covers_about_80_percent() -> None:
    """ANCHORS.md §2.1: s=10, load 0.95, AHT 180 s, patience 300 s; scored on waiting, answered callers."""
    outcome = _simulate(
        seed=5, agents=10, load=9.5, aht_s=180.0, patience_s=300.0, arrivals=5000, warm_up=300
    )
    actual = outcome.actual
    assert len(actual) > 1000

    def rmse(name: PredictorName) -> float:
        errors = [(p.mean_s - a) ** 2 for p, a in zip(outcome.predicted[name], actual, strict=True)]
        return math.sqrt(sum(errors) / len(errors))

    def coverage(name: PredictorName, attribute: str) -> float:
        hits = [
            a <= float(getattr(p, attribute)) for p, a in zip(outcome.predicted[name], actual, strict=True)
        ]
        return sum(hits) / len(hits)

    mean_wait = sum(actual) / len(actual)
    qla = rmse(PredictorName.QLA)
    assert qla < rmse(PredictorName.ASTERISK)
    assert 1 - (qla / rmse(PredictorName.ASTERISK)) ** 2 > 0.45  # issue 5: at least 45 % lower MSE
    assert qla < rmse(PredictorName.HOL) and qla < rmse(PredictorName.LES)
    assert qla / mean_wait < 0.62  # the analytic floor here is about 0.55
    assert 0.7 <= coverage(PredictorName.QLA, "p80_s") <= 0.9
    assert 0.8 <= coverage(PredictorName.QLA, "p90_s") <= 0.97
    bias = sum(p.mean_s for p in outcome.predicted[PredictorName.QLA]) / len(actual) - mean_wait
    assert abs(bias) < 0.08 * mean_wait
    # The online estimators recovered the true means from their wrong cold start.
    assert outcome.handle.mean_s == pytest.approx(180.0, rel=0.05)
    assert outcome.patience.mean_s == pytest.approx(300.0, rel=0.1)


def test_a_patience_so_long_that_theta_times_the_wait_underflows_still_gives_a_finite_prediction() -> None:
    """Found by the estimate property test: θ·v underflowed to 0 and ln(0) raised (session 3)."""
    state = QueueState(
        ahead=1, agents_staffed=2, aht_s=3.5185932293773684e-146, patience_s=1.4243423961956524e178
    )
    prediction = predict_ql_a(state)
    assert all(math.isfinite(x) and x >= 0.0 for x in (prediction.mean_s, prediction.p80_s, prediction.p90_s))
    assert 0.0 <= wait_survival(state, prediction.mean_s) <= 1.0
