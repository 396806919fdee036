"""Logged wait predictions and their live accuracy against the calls' actual waits (pure).

Every prediction we make for a waiting caller is logged as a :class:`PredictionRecord` (one row per
predictor: QL-A and the baselines beside it, ``announced`` set on the one the caller heard). Once the
call is answered, its actual remaining wait is known: the time from the prediction to the answer.

:func:`accuracy` scores them the way ``callcenter simulate`` does, on callers who were answered:
RMSE, RMSE over the mean actual wait (``rel_rmse``), bias (mean of predicted minus actual) and the
share answered by the predicted p80 and p90 times (coverage). Predictions of calls that were not
answered (they abandoned, or are still waiting) are counted as ``unscored``; a caller answered and
still talking is scored already.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from callcenter.capacity.predictors import PredictorName, WaitPrediction
from callcenter.errors import ValidationError
from callcenter.model.records import CallRecord
from callcenter.model.vocabulary import CallOutcome


@dataclass(frozen=True, kw_only=True, slots=True)
class PredictionRecord:
    """One logged prediction of a caller's remaining wait, made at ``at``."""

    id: int | None = None
    call_id: str
    queue: str
    at: datetime
    predictor: PredictorName
    mean_s: float
    p80_s: float
    p90_s: float
    announced: bool = False

    def __post_init__(self) -> None:
        for name in ("mean_s", "p80_s", "p90_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ValidationError(f"{name} must be a finite number, not {value!r}")
            if value < 0.0:
                raise ValidationError(f"{name} must be at least 0, not {value!r}")

    @classmethod
    def of(
        cls, prediction: WaitPrediction, *, call_id: str, queue: str, at: datetime, announced: bool
    ) -> PredictionRecord:
        return cls(
            call_id=call_id,
            queue=queue,
            at=at,
            predictor=prediction.predictor,
            mean_s=prediction.mean_s,
            p80_s=prediction.p80_s,
            p90_s=prediction.p90_s,
            announced=announced,
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class AccuracyFigures:
    """How one predictor did on answered callers (``None`` figures when none was scored)."""

    predictor: PredictorName
    scored: int
    unscored: int
    mean_actual_s: float | None
    rmse_s: float | None
    rel_rmse: float | None
    bias_s: float | None
    p80_coverage: float | None
    p90_coverage: float | None


def actual_remaining_s(prediction: PredictionRecord, call: CallRecord) -> float | None:
    """Seconds from the prediction to the answer, ``None`` while (or if) the call is not answered.

    From ``answered_at`` when stored (a call being talked is scored already), else, for a call decided
    ``answered``, from ``queued_at + wait_s``; never below 0 (the answer may have been recorded a
    moment before the prediction).
    """
    answered_at = call.answered_at
    if answered_at is None and call.outcome is CallOutcome.ANSWERED:
        if call.queued_at is not None and call.wait_s is not None and math.isfinite(call.wait_s):
            answered_at = call.queued_at + timedelta(seconds=call.wait_s)
    if answered_at is None:
        return None
    return max(0.0, (answered_at - prediction.at).total_seconds())


class _Tally:
    __slots__ = ("scored", "unscored", "actual", "error", "error2", "hits80", "hits90")

    def __init__(self) -> None:
        self.scored = self.unscored = 0
        self.actual = self.error = self.error2 = self.hits80 = self.hits90 = 0.0

    def add(self, prediction: PredictionRecord, actual_s: float) -> None:
        error = prediction.mean_s - actual_s
        self.scored += 1
        self.actual += actual_s
        self.error += error
        self.error2 += error * error
        self.hits80 += 1.0 if actual_s <= prediction.p80_s else 0.0
        self.hits90 += 1.0 if actual_s <= prediction.p90_s else 0.0

    def figures(self, predictor: PredictorName) -> AccuracyFigures:
        if self.scored == 0:
            return AccuracyFigures(
                predictor=predictor,
                scored=0,
                unscored=self.unscored,
                mean_actual_s=None,
                rmse_s=None,
                rel_rmse=None,
                bias_s=None,
                p80_coverage=None,
                p90_coverage=None,
            )
        mean_actual = self.actual / self.scored
        rmse = math.sqrt(self.error2 / self.scored)
        return AccuracyFigures(
            predictor=predictor,
            scored=self.scored,
            unscored=self.unscored,
            mean_actual_s=mean_actual,
            rmse_s=rmse,
            rel_rmse=rmse / mean_actual if mean_actual > 0.0 else None,
            bias_s=self.error / self.scored,
            p80_coverage=self.hits80 / self.scored,
            p90_coverage=self.hits90 / self.scored,
        )


def accuracy(
    predictions: Iterable[PredictionRecord],
    calls: Mapping[str, CallRecord],
    *,
    announced_only: bool = False,
) -> tuple[AccuracyFigures, ...]:
    """Each predictor's figures over ``predictions``, in :class:`PredictorName` order.

    :param calls: the stored calls by id; a prediction whose call is missing or not answered is unscored.
    :param announced_only: score only what callers heard.
    """
    tallies: dict[PredictorName, _Tally] = {}
    for prediction in predictions:
        if announced_only and not prediction.announced:
            continue
        tally = tallies.setdefault(prediction.predictor, _Tally())
        call = calls.get(prediction.call_id)
        actual = actual_remaining_s(prediction, call) if call is not None else None
        if actual is None:
            tally.unscored += 1
        else:
            tally.add(prediction, actual)
    return tuple(tallies[name].figures(name) for name in PredictorName if name in tallies)
