"""The queue simulation: Erlang C and A within sampling error, profiles, predictor scores, bad input."""

from __future__ import annotations

import math
import random
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callcenter.capacity.erlang import QueueModel, Workload, erlang_a, erlang_c
from callcenter.capacity.predictors import PredictorName
from callcenter.capacity.simulate import (
    SCORE_ALL_UP_TO,
    CallbackPolicy,
    DurationKind,
    DurationLaw,
    Interval,
    LoadProfile,
    SimulationConfig,
    SimulationResult,
    simulate,
)
from callcenter.errors import ValidationError

# Simulations and many-example properties are CPU-bound: allow for a loaded machine.
pytestmark = pytest.mark.timeout(120)

#: Two-sided 99.9 % quantile of Student's t with 11 degrees of freedom (12 replications).
T_9995_DF11 = 4.437
REPLICATIONS = 12


def _config(
    *,
    agents: int = 5,
    rate_per_hour: float = 240.0,
    aht_s: float = 60.0,
    patience: DurationLaw | None = None,
    arrivals: int = 2000,
    seed: int = 0,
    warm_up: int = 0,
    score: bool = True,
) -> SimulationConfig:
    return SimulationConfig(
        profile=LoadProfile.flat(rate_per_hour=rate_per_hour, agents=agents),
        handle=DurationLaw.exponential(aht_s),
        patience=patience or DurationLaw.exponential(math.inf),
        arrivals=arrivals,
        seed=seed,
        warm_up=warm_up,
        score_predictors=score,
    )


def _replicate(**kwargs: object) -> list[SimulationResult]:
    """Independent replications (one seed each), each started empty and warmed up."""
    return [
        simulate(_config(seed=seed, arrivals=20_000, warm_up=1_000, score=False, **kwargs))  # type: ignore[arg-type]
        for seed in range(REPLICATIONS)
    ]


def _assert_within_sampling_error(
    results: list[SimulationResult], field: str, expected: float, resolution: float
) -> None:
    """The replication mean is within the 99.9 % t-interval of ``expected``.

    Successive callers' waits are correlated, so the error is estimated across independent
    replications, not from the count of callers. ``resolution`` bounds the interval's half-width:
    the check must be able to see an error of that size.
    """
    values = [float(getattr(r, field)) for r in results]
    half_width = T_9995_DF11 * statistics.stdev(values) / math.sqrt(len(values))
    assert half_width < resolution, (
        f"{field}: the test cannot resolve {resolution} (half-width {half_width:.4f})"
    )
    assert statistics.fmean(values) == pytest.approx(expected, abs=half_width), field


# --- Erlang C and Erlang A within sampling error ----------------------------------------------------


def test_with_a_very_large_patience_the_simulation_reproduces_erlang_c() -> None:
    """M/M/3 at load 0.7 (126 calls/h, 60 s handle time); a mean patience of 10¹² s: nobody hangs up."""
    results = _replicate(agents=3, rate_per_hour=126.0, patience=DurationLaw.exponential(1e12))
    expected = erlang_c(Workload(arrival_rate_per_s=126 / 3600, aht_s=60.0), 3, answer_within_s=20.0)

    assert sum(r.abandoned for r in results) == 0
    # Beyond Erlang A's numerical range the analytical block falls back on its limit, Erlang C.
    assert results[0].erlang.model is QueueModel.ERLANG_C
    assert results[0].erlang.service_level == pytest.approx(expected.service_level)
    _assert_within_sampling_error(results, "p_wait", expected.p_wait, 0.03)
    _assert_within_sampling_error(results, "service_level", expected.service_level, 0.03)
    _assert_within_sampling_error(results, "asa_s", expected.asa_s, 0.15 * expected.asa_s)
    _assert_within_sampling_error(results, "occupancy", expected.occupancy, 0.02)


def test_with_exponential_patience_the_simulation_reproduces_erlang_a() -> None:
    """M/M/5+M at load 1.0 (300 calls/h, 60 s handle time), mean patience 120 s: about 15 % abandon."""
    results = _replicate(rate_per_hour=300.0, patience=DurationLaw.exponential(120.0))
    expected = erlang_a(Workload(arrival_rate_per_s=300 / 3600, aht_s=60.0, patience_s=120.0), 5)

    assert results[0].erlang.model is QueueModel.ERLANG_A and results[0].erlang.exact
    assert results[0].erlang.service_level == pytest.approx(expected.service_level)
    _assert_within_sampling_error(results, "p_wait", expected.p_wait, 0.03)
    _assert_within_sampling_error(results, "service_level", expected.service_level, 0.03)
    _assert_within_sampling_error(results, "abandon_rate", expected.p_abandon, 0.01)
    _assert_within_sampling_error(results, "asa_s", expected.asa_s, 0.1 * expected.asa_s)
    _assert_within_sampling_error(results, "mean_wait_s", expected.mean_wait_s, 0.1 * expected.mean_wait_s)
    _assert_within_sampling_error(results, "occupancy", expected.occupancy, 0.02)


def test_infinite_patience_compares_with_erlang_c_and_nobody_abandons() -> None:
    result = simulate(_config(arrivals=3000))

    assert result.abandoned == 0 and result.answered == result.arrivals == 3000
    assert result.erlang.model is QueueModel.ERLANG_C and result.erlang.exact and result.erlang.stable


def test_an_overloaded_queue_without_abandonment_has_no_erlang_steady_state() -> None:
    result = simulate(_config(agents=2, rate_per_hour=300.0, arrivals=2000, score=False))

    assert not result.erlang.stable and math.isinf(result.erlang.asa_s)
    assert result.service_level < 0.2 and result.asa_s is not None and result.asa_s > 1000


# --- determinism and common random numbers ----------------------------------------------------------


def test_the_same_seed_gives_the_same_run_and_another_seed_another() -> None:
    patience = DurationLaw.lognormal(90.0, 0.8)
    first = simulate(_config(patience=patience, seed=7))

    assert simulate(_config(patience=patience, seed=7)) == first
    assert simulate(_config(patience=patience, seed=8)) != first


def test_staffing_changes_leave_the_arrivals_untouched() -> None:
    """Arrivals, patience and handle times come from their own streams: what-ifs differ by staffing only."""

    def profile(agents: tuple[int, int]) -> SimulationConfig:
        return SimulationConfig(
            profile=LoadProfile(
                interval_s=900.0, intervals=tuple(Interval(rate_per_hour=300.0, agents=a) for a in agents)
            ),
            handle=DurationLaw.exponential(60.0),
            patience=DurationLaw.exponential(120.0),
            arrivals=3000,
        )

    lean, staffed = simulate(profile((3, 4))), simulate(profile((5, 7)))

    assert [i.arrivals for i in lean.intervals] == [i.arrivals for i in staffed.intervals]
    assert staffed.service_level > lean.service_level and staffed.abandoned < lean.abandoned


# --- profiles -------------------------------------------------------------------------------------------


def test_arrivals_follow_the_profile_and_staffing_follows_its_intervals() -> None:
    profile = LoadProfile(
        interval_s=900.0,
        intervals=(
            Interval(rate_per_hour=60.0, agents=2),
            Interval(rate_per_hour=240.0, agents=2),
            Interval(rate_per_hour=0.0, agents=1),
            Interval(rate_per_hour=240.0, agents=8),
        ),
    )
    config = SimulationConfig(
        profile=profile,
        handle=DurationLaw.exponential(60.0),
        patience=DurationLaw.exponential(120.0),
        arrivals=10_000,
        score_predictors=False,
    )
    result = simulate(config)
    counts = [i.arrivals for i in result.intervals]

    # Poisson counts: each interval's share of arrivals within 5 standard deviations of its rate's share.
    total_rate = sum(i.rate_per_hour for i in profile.intervals)
    for count, interval in zip(counts, profile.intervals, strict=True):
        expected = result.arrivals * interval.rate_per_hour / total_rate
        assert abs(count - expected) <= 5 * math.sqrt(expected) + 1e-9
    assert counts[2] == 0 and result.intervals[2].service_level is None
    # Same rate, four times the agents: the last interval does far better than the second.
    busy, staffed = result.intervals[1], result.intervals[3]
    assert staffed.service_level is not None and busy.service_level is not None
    assert staffed.service_level > busy.service_level + 0.3
    assert result.erlang.model is QueueModel.ERLANG_A and not result.erlang.exact


def test_a_profile_of_equal_intervals_is_the_flat_rate() -> None:
    flat = _config(patience=DurationLaw.exponential(120.0))
    repeated = SimulationConfig(
        profile=LoadProfile(interval_s=600.0, intervals=(Interval(rate_per_hour=240.0, agents=5),) * 3),
        handle=flat.handle,
        patience=flat.patience,
        arrivals=flat.arrivals,
    )

    assert repeated.profile.is_flat
    assert simulate(repeated) == simulate(flat)


# --- predictors ---------------------------------------------------------------------------------------


def test_qla_scores_best_and_its_p80_covers_about_80_percent() -> None:
    """ANCHORS.md §2.1 scenario (s=10, load 0.95, AHT 180 s, patience 300 s), a moderate run."""
    result = simulate(
        SimulationConfig(
            profile=LoadProfile.flat(rate_per_hour=190.0, agents=10),
            handle=DurationLaw.exponential(180.0),
            patience=DurationLaw.exponential(300.0),
            arrivals=20_000,
            seed=3,
            warm_up=500,
        )
    )
    scores = {s.predictor: s for s in result.predictors}
    rel_rmse = {name: s.rel_rmse for name, s in scores.items()}
    qla = scores[PredictorName.QLA]

    assert list(scores) == [PredictorName.QLA, PredictorName.ASTERISK, PredictorName.HOL, PredictorName.LES]
    assert qla.scored > 5000 and all(s.scored == qla.scored for s in scores.values())
    assert min(rel_rmse, key=lambda name: rel_rmse[name] or math.inf) is PredictorName.QLA
    assert qla.rel_rmse is not None and qla.rel_rmse < 0.62
    # Coverage is a share of about 8,000 correlated callers: allow ±0.05.
    assert qla.p80_coverage is not None and 0.75 <= qla.p80_coverage <= 0.85
    assert qla.p90_coverage is not None and 0.85 <= qla.p90_coverage <= 0.95
    assert qla.bias_s is not None and qla.mean_actual_s is not None
    assert abs(qla.bias_s) < 0.08 * qla.mean_actual_s
    # Asterisk's position-blind EWMA under-announces.
    asterisk = scores[PredictorName.ASTERISK]
    assert asterisk.bias_s is not None and asterisk.bias_s < 0


def test_long_queues_are_scored_on_a_weighted_sample() -> None:
    """Twice the load one agent can carry, nobody hangs up: the queue grows far past the sampling point."""
    result = simulate(_config(agents=1, rate_per_hour=120.0, arrivals=2000))
    qla = result.predictor(PredictorName.QLA)

    assert qla.scored < result.answered - SCORE_ALL_UP_TO
    assert qla.rel_rmse is not None and qla.rel_rmse < 0.2  # hundreds ahead: the wait is nearly certain
    assert qla.p80_coverage is not None and 0.6 <= qla.p80_coverage <= 0.95


def test_without_scoring_the_predictors_report_nothing() -> None:
    result = simulate(_config(score=False))

    for score in result.predictors:
        assert score.scored == 0 and score.rel_rmse is None and score.p80_coverage is None
    assert result.callbacks.offered == 0 and result.callbacks.kept_rate is None


# --- invariants -----------------------------------------------------------------------------------------

laws = st.one_of(
    st.builds(DurationLaw.exponential, st.floats(5.0, 600.0)),
    st.builds(DurationLaw.deterministic, st.floats(5.0, 600.0)),
    st.builds(DurationLaw.lognormal, st.floats(5.0, 600.0), st.floats(0.1, 3.0)),
    st.builds(DurationLaw.gamma, st.floats(5.0, 600.0), st.floats(0.1, 3.0)),
)


@settings(max_examples=30, deadline=None)
@given(
    agents=st.integers(1, 20),
    rate_per_hour=st.floats(10.0, 2000.0),
    handle=laws,
    patience=st.one_of(laws, st.just(DurationLaw.exponential(math.inf))),
    seed=st.integers(0, 2**32),
    threshold_s=st.floats(0.0, 120.0),
)
def test_every_caller_is_answered_or_abandons_and_the_shares_agree(
    agents: int,
    rate_per_hour: float,
    handle: DurationLaw,
    patience: DurationLaw,
    seed: int,
    threshold_s: float,
) -> None:
    result = simulate(
        SimulationConfig(
            profile=LoadProfile.flat(rate_per_hour=rate_per_hour, agents=agents),
            handle=handle,
            patience=patience,
            arrivals=400,
            seed=seed,
            answer_within_s=threshold_s,
            warm_up=50,
        )
    )

    assert result.arrivals == 350 and result.answered + result.abandoned == 350
    assert result.abandon_rate == pytest.approx(result.abandoned / 350)
    # Callers who never waited were answered at once; the service level counts them and no abandoner.
    assert 1.0 - result.p_wait - 1e-12 <= result.service_level <= 1.0 - result.abandon_rate + 1e-12
    if math.isinf(patience.mean_s):
        assert result.abandoned == 0
    assert result.occupancy is None or 0.0 <= result.occupancy <= 1.0
    assert result.mean_wait_s >= 0.0
    for score in result.predictors:
        if score.scored:
            assert score.p80_coverage is not None and score.p90_coverage is not None
            assert 0.0 <= score.p80_coverage <= score.p90_coverage <= 1.0


@pytest.mark.parametrize(
    ("law", "cv"),
    [
        (DurationLaw.exponential(100.0), 1.0),
        (DurationLaw.lognormal(100.0, 0.5), 0.5),
        (DurationLaw.lognormal(100.0), 1.0),
        (DurationLaw.gamma(100.0, 2.0), 2.0),
        (DurationLaw.deterministic(100.0), 0.0),
    ],
)
def test_duration_laws_have_the_mean_and_cv_asked_for(law: DurationLaw, cv: float) -> None:
    draw = law.sampler(random.Random(1))
    sample = [draw() for _ in range(20_000)]
    # The sample mean's standard error is cv·mean/sqrt(n): allow 5 of them.
    assert statistics.fmean(sample) == pytest.approx(
        100.0, abs=5 * cv * 100.0 / math.sqrt(len(sample)) + 1e-9
    )
    assert statistics.pstdev(sample) / statistics.fmean(sample) == pytest.approx(cv, rel=0.15, abs=1e-9)


# --- bad input ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: DurationLaw.exponential(0.0), "mean_s must be above 0"),
        (lambda: DurationLaw.exponential(-5.0), "mean_s must be above 0"),
        (lambda: DurationLaw.exponential(math.nan), "mean_s must be a finite number"),
        (lambda: DurationLaw(kind=DurationKind.EXPONENTIAL, mean_s=60.0, cv=0.5), "cv 1"),
        (
            lambda: DurationLaw.deterministic(60.0).__class__(
                kind=DurationKind.DETERMINISTIC, mean_s=1.0, cv=1.0
            ),
            "cv 0",
        ),
        (lambda: DurationLaw.lognormal(60.0, 0.0), "cv of a lognormal"),
        (lambda: DurationLaw.gamma(60.0, 50.0), "cv of a gamma"),
        (lambda: Interval(rate_per_hour=-1.0, agents=3), "rate_per_hour must be at least 0"),
        (lambda: Interval(rate_per_hour=math.nan, agents=3), "rate_per_hour must be a finite number"),
        (lambda: Interval(rate_per_hour=10.0, agents=0), "agents must be between 1 and 2000"),
        (lambda: Interval(rate_per_hour=10.0, agents=2001), "agents must be between 1 and 2000"),
        (lambda: LoadProfile.flat(rate_per_hour=0.0, agents=3), "rate_per_hour must be above 0"),
        (lambda: LoadProfile(interval_s=900.0, intervals=()), "1 to"),
        (
            lambda: LoadProfile(interval_s=900.0, intervals=(Interval(rate_per_hour=0.0, agents=1),)),
            "at least one interval",
        ),
        (
            lambda: LoadProfile(interval_s=0.0, intervals=(Interval(rate_per_hour=1.0, agents=1),)),
            "interval_s",
        ),
        (lambda: _config(arrivals=0), "arrivals must be between"),
        (lambda: _config(arrivals=100, warm_up=100), "warm_up must be between"),
        (
            lambda: SimulationConfig(
                profile=LoadProfile.flat(rate_per_hour=10.0, agents=1),
                handle=DurationLaw.exponential(math.inf),
                patience=DurationLaw.exponential(60.0),
                arrivals=10,
            ),
            "handle time mean_s must be finite",
        ),
    ],
)
def test_impossible_inputs_are_refused(build: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        build()  # type: ignore[operator]


@pytest.mark.parametrize("policy", [CallbackPolicy.KEEP_PLACE, CallbackPolicy.SLOTS])
def test_callback_policies_other_than_none_are_refused_until_the_offer_issue(policy: CallbackPolicy) -> None:
    with pytest.raises(ValidationError, match="callback-offer issue"):
        SimulationConfig(
            profile=LoadProfile.flat(rate_per_hour=10.0, agents=1),
            handle=DurationLaw.exponential(60.0),
            patience=DurationLaw.exponential(60.0),
            arrivals=10,
            callback_policy=policy,
        )
