"""Live accuracy of logged predictions against the calls' actual waits (RMSE, bias, coverage)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from callcenter.capacity.accuracy import PredictionRecord, accuracy, actual_remaining_s
from callcenter.capacity.predictors import PredictorName, WaitPrediction
from callcenter.errors import ValidationError
from callcenter.model.records import CallRecord
from callcenter.model.vocabulary import CallOutcome, EntryPoint

T0 = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)


def call(
    call_id: str,
    *,
    answered_after_s: float | None,
    outcome: CallOutcome = CallOutcome.ANSWERED,
    store_answered_at: bool = True,
) -> CallRecord:
    answered_at = T0 + timedelta(seconds=answered_after_s) if answered_after_s is not None else None
    return CallRecord(
        id=call_id,
        channel_id=call_id,
        linkedid=call_id,
        entry_point=EntryPoint.ARI,
        queue="sales",
        arrived_at=T0 - timedelta(seconds=5),
        queued_at=T0 - timedelta(seconds=5),
        answered_at=answered_at if store_answered_at else None,
        wait_s=answered_after_s + 5 if answered_after_s is not None else 20.0,
        outcome=outcome,
    )


def predicted(
    call_id: str, mean_s: float, *, predictor: PredictorName = PredictorName.QLA, announced: bool = True
) -> PredictionRecord:
    return PredictionRecord(
        call_id=call_id,
        queue="sales",
        at=T0,
        predictor=predictor,
        mean_s=mean_s,
        p80_s=mean_s * 1.5,
        p90_s=mean_s * 2,
        announced=announced,
    )


def test_figures_are_those_of_simulate_over_answered_callers() -> None:
    calls = {c.id: c for c in (call("c1", answered_after_s=60), call("c2", answered_after_s=100))}
    predictions = [predicted("c1", 50), predicted("c2", 60)]

    [qla] = accuracy(predictions, calls)

    errors = [50 - 60, 60 - 100]
    assert qla.predictor is PredictorName.QLA
    assert (qla.scored, qla.unscored) == (2, 0)
    assert qla.mean_actual_s == 80.0
    assert qla.rmse_s == pytest.approx(math.sqrt(sum(e * e for e in errors) / 2))
    assert qla.rel_rmse == pytest.approx(qla.rmse_s / 80.0)  # type: ignore[operator]
    assert qla.bias_s == pytest.approx(-25.0)
    assert (qla.p80_coverage, qla.p90_coverage) == (0.5, 1.0), "60 <= 75; 100 > 90 but <= 120"


def test_callers_not_answered_or_not_stored_are_unscored() -> None:
    calls = {
        "gone": call("gone", answered_after_s=None, outcome=CallOutcome.ABANDONED),
        "live": call("live", answered_after_s=None, outcome=None),  # type: ignore[arg-type]
    }
    predictions = [predicted("gone", 30), predicted("live", 30), predicted("unknown", 30)]

    [qla] = accuracy(predictions, calls)

    assert (qla.scored, qla.unscored, qla.rmse_s, qla.p80_coverage) == (0, 3, None, None)


def test_each_predictor_is_scored_apart_in_a_stable_order() -> None:
    calls = {"c1": call("c1", answered_after_s=40)}
    predictions = [
        predicted("c1", 10, predictor=PredictorName.LES, announced=False),
        predicted("c1", 40, predictor=PredictorName.QLA),
        predicted("c1", 90, predictor=PredictorName.ASTERISK, announced=False),
    ]

    figures = accuracy(predictions, calls)
    only_heard = accuracy(predictions, calls, announced_only=True)

    assert [f.predictor for f in figures] == [PredictorName.QLA, PredictorName.ASTERISK, PredictorName.LES]
    assert [f.bias_s for f in figures] == [0.0, 50.0, -30.0]
    assert [f.predictor for f in only_heard] == [PredictorName.QLA]
    assert accuracy([], calls) == ()


def test_the_actual_wait_comes_from_the_answer_time_or_else_from_the_stored_wait() -> None:
    prediction = predicted("c1", 10)

    assert actual_remaining_s(prediction, call("c1", answered_after_s=42)) == 42.0
    assert actual_remaining_s(prediction, call("c1", answered_after_s=42, store_answered_at=False)) == 42.0
    assert actual_remaining_s(prediction, call("c1", answered_after_s=-3)) == 0.0, (
        "answered as it was predicted"
    )


def test_a_prediction_of_no_finite_number_cannot_be_logged() -> None:
    with pytest.raises(ValidationError, match="mean_s"):
        predicted("c1", math.inf)
    with pytest.raises(ValidationError, match="p80_s"):
        PredictionRecord(
            call_id="c1", queue="q", at=T0, predictor=PredictorName.QLA, mean_s=1, p80_s=math.nan, p90_s=1
        )
    with pytest.raises(ValidationError, match="at least 0"):
        predicted("c1", -1)


def test_a_record_is_made_from_a_prediction() -> None:
    prediction = WaitPrediction(predictor=PredictorName.HOL, mean_s=1.0, p80_s=2.0, p90_s=3.0)

    record = PredictionRecord.of(prediction, call_id="c9", queue="sales", at=T0, announced=False)

    assert (record.call_id, record.predictor, record.mean_s, record.p90_s, record.announced, record.id) == (
        "c9",
        PredictorName.HOL,
        1.0,
        3.0,
        False,
        None,
    )


def test_a_caller_answered_and_still_talking_is_scored_already() -> None:
    talking = call("c1", answered_after_s=30, outcome=None)  # type: ignore[arg-type]

    [qla] = accuracy([predicted("c1", 30)], {"c1": talking})

    assert (qla.scored, qla.bias_s) == (1, 0.0)
