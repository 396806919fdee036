"""Live inputs from finished calls, their blend with the forecast, and a caller's estimate (never inf/NaN)."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcenter.capacity.estimate import (
    MAX_POSITION,
    ModelInputs,
    NoEstimateReason,
    OnlineInputs,
    QueueSnapshot,
    check_position,
    estimate_wait,
    model_inputs,
)
from callcenter.capacity.forecast import Basis, IntervalForecast
from callcenter.capacity.predictors import PatienceEstimate, PredictorName, QueueState, predict_ql_a
from callcenter.errors import ValidationError
from callcenter.model.events import CallEnded
from callcenter.model.vocabulary import CallOutcome, EntryPoint

T0 = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)


def ended(
    outcome: CallOutcome = CallOutcome.ANSWERED, *, wait_s: float = 30.0, talk_s: float = 120.0
) -> CallEnded:
    return CallEnded(
        event_id="c1",
        occurred_at=T0,
        call_id="c1",
        outcome=outcome,
        entry_point=EntryPoint.ARI,
        queue="sales",
        wait_s=wait_s,
        talk_s=talk_s,
    )


def learn(*calls: CallEnded, wrap_up_s: float = 10.0, memory_calls: float = 1e9) -> OnlineInputs:
    inputs = OnlineInputs()
    for c in calls:
        inputs = inputs.observe(c, wrap_up_s=wrap_up_s, memory_calls=memory_calls)
    return inputs


def prior(*, aht_s: float | None = 200.0, abandons: float = 0.0, exposure_s: float = 0.0) -> IntervalForecast:
    return IntervalForecast(
        weekday=0,
        slot=56,
        arrivals=10.0,
        basis=Basis.WEEKLY,
        occurrences=4,
        aht_s=aht_s,
        patience_unit=PatienceEstimate(abandons, exposure_s),
    )


# -- online inputs ----------------------------------------------------------------------------------


def test_an_answered_call_teaches_handle_time_asterisks_ewma_and_les() -> None:
    inputs = learn(ended(wait_s=40.0, talk_s=100.0), ended(wait_s=0.0, talk_s=200.0))

    assert inputs.handle.mean_s == pytest.approx(160.0), "talk plus 10 s wrap-up"
    assert inputs.asterisk.holdtime_s == pytest.approx((3 * 10.0 + 0.0) / 4)
    assert inputs.les_wait_s == 0.0
    assert (inputs.patience.abandons, inputs.patience.exposure_s, inputs.waiters) == (0.0, 40.0, 1.0)
    assert inputs.observed == 2


@pytest.mark.parametrize("outcome", [CallOutcome.ABANDONED, CallOutcome.SHORT_ABANDON])
def test_an_abandon_teaches_patience_only(outcome: CallOutcome) -> None:
    inputs = learn(ended(outcome, wait_s=25.0, talk_s=0.0))

    assert (inputs.patience.abandons, inputs.patience.exposure_s) == (1.0, 25.0)
    assert inputs.handle.mean_s is None and inputs.asterisk.holdtime_s == 0.0


@pytest.mark.parametrize(
    "outcome", [CallOutcome.AFTER_HOURS, CallOutcome.UNANSWERED_NO_AGENTS, CallOutcome.FAILED]
)
def test_a_call_that_never_waited_in_line_teaches_nothing_but_is_counted(outcome: CallOutcome) -> None:
    inputs = learn(ended(outcome, wait_s=12.0))

    assert inputs.patience == PatienceEstimate() and inputs.handle.mean_s is None
    assert inputs.observed == 1


@pytest.mark.parametrize("bad", [math.nan, math.inf, -1.0])
def test_unusable_durations_are_skipped(bad: float) -> None:
    inputs = learn(ended(wait_s=bad, talk_s=bad))

    assert inputs == OnlineInputs(observed=1)


def test_old_calls_are_forgotten_with_the_memory() -> None:
    inputs = learn(
        *([ended(talk_s=100.0)] * 50 + [ended(talk_s=300.0)] * 50), wrap_up_s=0.0, memory_calls=10.0
    )

    assert inputs.handle.mean_s == pytest.approx(300.0, rel=0.01)


def test_a_memory_below_one_call_is_refused() -> None:
    with pytest.raises(ValidationError, match="memory_calls"):
        OnlineInputs().observe(ended(), wrap_up_s=0.0, memory_calls=0.5)


# -- blending -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("online_talks", "prior_aht", "expected"),
    [
        ([], None, None),
        ([], 200.0, 200.0),
        ([90.0], None, 100.0),
        ([90.0] * 20, 200.0, 150.0),
    ],
)
def test_handle_time_blends_the_days_calls_with_the_forecast(
    online_talks: list[float], prior_aht: float | None, expected: float | None
) -> None:
    online = learn(*(ended(talk_s=t) for t in online_talks))

    inputs = model_inputs(online, prior(aht_s=prior_aht), prior_calls=20.0)

    assert inputs.aht_s == (None if expected is None else pytest.approx(expected))


def test_patience_blends_abandons_and_exposure_as_pseudo_counts() -> None:
    online = learn(ended(CallOutcome.ABANDONED, wait_s=30.0))

    blended = model_inputs(online, prior(abandons=0.1, exposure_s=10.0), prior_calls=20.0)
    no_prior = model_inputs(online, None, prior_calls=20.0)
    nobody_abandons = model_inputs(OnlineInputs(), prior(), prior_calls=20.0)

    assert blended.patience_s == pytest.approx((30.0 + 200.0) / (1.0 + 2.0))
    assert no_prior.patience_s == pytest.approx(30.0)
    assert math.isinf(nobody_abandons.patience_s)


# -- the estimate -----------------------------------------------------------------------------------


def snapshot(position: int = 3, *, staffed: int = 4, free: int = 0, elapsed_s: float = 5.0) -> QueueSnapshot:
    return QueueSnapshot(
        position=position, elapsed_s=elapsed_s, agents_staffed=staffed, agents_free=free, hol_wait_s=50.0
    )


def test_the_estimate_is_ql_a_with_the_baselines_beside_it() -> None:
    online = learn(ended(wait_s=40.0))
    inputs = ModelInputs(aht_s=180.0, patience_s=300.0)

    result = estimate_wait(snapshot(), inputs, online)

    expected = predict_ql_a(QueueState(ahead=2, agents_staffed=4, aht_s=180.0, patience_s=300.0))
    assert result.estimate == expected
    assert [p.predictor for p in result.baselines] == [
        PredictorName.ASTERISK,
        PredictorName.HOL,
        PredictorName.LES,
    ]
    assert [p.predictor for p in result.predictions][0] is PredictorName.QLA
    assert (result.ahead, result.reason, result.patience_s, result.aht_s) == (2, None, 300.0, 180.0)


def test_a_free_agent_ahead_shortens_the_wait() -> None:
    inputs = ModelInputs(aht_s=180.0, patience_s=math.inf)

    busy = estimate_wait(snapshot(2, free=0), inputs, OnlineInputs())
    free = estimate_wait(snapshot(2, free=2), inputs, OnlineInputs())

    assert busy.estimate is not None and free.estimate is not None
    assert free.estimate.mean_s == 0.0 < busy.estimate.mean_s
    assert busy.patience_s is None, "infinite patience is reported as none"


@pytest.mark.parametrize(
    ("snap", "inputs", "reason"),
    [
        (snapshot(staffed=0), ModelInputs(aht_s=180.0, patience_s=300.0), NoEstimateReason.NO_AGENTS),
        (
            snapshot(staffed=2001),
            ModelInputs(aht_s=180.0, patience_s=300.0),
            NoEstimateReason.TOO_MANY_AGENTS,
        ),
        (snapshot(), ModelInputs(aht_s=None, patience_s=300.0), NoEstimateReason.NO_HISTORY),
        (
            snapshot(elapsed_s=math.nan),
            ModelInputs(aht_s=180.0, patience_s=300.0),
            NoEstimateReason.DEGENERATE,
        ),
        (snapshot(), ModelInputs(aht_s=math.inf, patience_s=300.0), NoEstimateReason.DEGENERATE),
        (snapshot(), ModelInputs(aht_s=180.0, patience_s=math.nan), NoEstimateReason.DEGENERATE),
    ],
    ids=["no agents", "too many agents", "no history", "nan elapsed", "inf aht", "nan patience"],
)
def test_no_estimate_comes_with_a_reason_and_no_number(
    snap: QueueSnapshot, inputs: ModelInputs, reason: NoEstimateReason
) -> None:
    result = estimate_wait(snap, inputs, OnlineInputs())

    assert result.reason is reason and result.message
    assert result.estimate is None and result.predictions == ()


@pytest.mark.parametrize("position", [0, -1, MAX_POSITION + 1, True, 2.5, "3"])
def test_a_place_in_line_out_of_range_is_refused(position: object) -> None:
    with pytest.raises(ValidationError, match="position"):
        check_position(position)


@given(
    position=st.integers(1, 500),
    staffed=st.integers(0, 2100),
    free=st.integers(0, 50),
    aht=st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
    patience=st.floats(allow_nan=True, allow_infinity=True),
    elapsed=st.floats(allow_nan=True, allow_infinity=True),
)
def test_every_estimate_is_finite_or_absent(
    position: int, staffed: int, free: int, aht: float | None, patience: float, elapsed: float
) -> None:
    snap = QueueSnapshot(position=position, elapsed_s=elapsed, agents_staffed=staffed, agents_free=free)
    result = estimate_wait(snap, ModelInputs(aht_s=aht, patience_s=patience), OnlineInputs())

    assert (result.estimate is None) == (result.reason is not None)
    for p in result.predictions:
        assert all(math.isfinite(v) and v >= 0 for v in (p.mean_s, p.p80_s, p.p90_s))
