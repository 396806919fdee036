"""A waiting caller's estimate now: the predictors' inputs kept online, and the estimate itself (pure).

:class:`OnlineInputs` is what one queue's finished calls taught us, with exponential forgetting (each
new call multiplies the weight of the older ones by ``1 - 1/memory_calls``): handle times, censored
waits for patience, Asterisk's hold-time EWMA and the wait of the last caller answered (the LES
baseline; it is known when that call ends, so it lags by one talk time).

:func:`model_inputs` blends them with the forecast of the current interval from stored history, which
weighs as ``prior_calls`` calls: at start-up the history speaks, and after a busy hour the day's own
calls do. With neither, there is no handle time and no estimate.

:func:`estimate_wait` returns QL-A, the estimate we announce, with the baselines beside it, and never
a NaN or an infinity: no agent staffed, no handle time known, more agents than the models take, or
inputs that are not finite give no estimate and a :class:`NoEstimateReason` instead.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from callcenter.capacity.erlang import MAX_AGENTS
from callcenter.capacity.forecast import MIN_DURATION_S, IntervalForecast, patience_of, scaled, usable_seconds
from callcenter.capacity.predictors import (
    MAX_AHEAD,
    AsteriskEwma,
    HandleTimeEstimate,
    PatienceEstimate,
    QueueState,
    WaitPrediction,
    predict_hol,
    predict_les,
    predict_ql_a,
)
from callcenter.errors import ValidationError
from callcenter.model.events import CallEnded
from callcenter.model.vocabulary import CallOutcome

#: The highest position a caller can ask about (1 is next).
MAX_POSITION: Final = MAX_AHEAD + 1

_ABANDONS: Final = frozenset({CallOutcome.ABANDONED, CallOutcome.SHORT_ABANDON})
_LEFT_QUEUE: Final = _ABANDONS | {
    CallOutcome.ANSWERED,
    CallOutcome.UNANSWERED_TIMEOUT,
    CallOutcome.CALLBACK_REQUESTED,
    CallOutcome.VOICEMAIL,
}


class NoEstimateReason(StrEnum):
    """Why no estimate is given (stable codes: the API and the IVR read them)."""

    NO_AGENTS = "no_agents"
    NO_HISTORY = "no_history"
    TOO_MANY_AGENTS = "too_many_agents"
    DEGENERATE = "degenerate"


@dataclass(frozen=True, slots=True)
class OnlineInputs:
    """One queue's predictor inputs learnt from its finished calls (see the module docstring).

    :param waiters: weighted count of callers behind ``patience`` (those who waited).
    :param les_wait_s: the wait of the last caller answered (0 before any).
    """

    handle: HandleTimeEstimate = HandleTimeEstimate()
    patience: PatienceEstimate = PatienceEstimate()
    waiters: float = 0.0
    asterisk: AsteriskEwma = AsteriskEwma()
    les_wait_s: float = 0.0
    observed: int = 0

    def observe(self, ended: CallEnded, *, wrap_up_s: float, memory_calls: float) -> OnlineInputs:
        """The inputs once ``ended`` (a call of this queue) is taken into account.

        Durations that are negative or not finite are skipped (the rest of the call still counts).
        """
        if memory_calls < 1.0 or not math.isfinite(memory_calls):
            raise ValidationError(f"memory_calls must be a finite number of at least 1, not {memory_calls!r}")
        keep = 1.0 - 1.0 / memory_calls
        inputs = self
        answered = ended.outcome is CallOutcome.ANSWERED
        if answered and usable_seconds(ended.talk_s) and usable_seconds(wrap_up_s):
            handle = inputs.handle.decayed(keep) if keep > 0.0 else HandleTimeEstimate()
            inputs = dataclasses.replace(inputs, handle=handle.update(ended.talk_s + wrap_up_s))
        if usable_seconds(ended.wait_s):
            if ended.outcome in _LEFT_QUEUE and ended.wait_s > 0.0:
                patience = inputs.patience.decayed(keep) if keep > 0.0 else PatienceEstimate()
                inputs = dataclasses.replace(
                    inputs,
                    patience=patience.update(ended.wait_s, abandoned=ended.outcome in _ABANDONS),
                    waiters=inputs.waiters * keep + 1.0,
                )
            if answered:
                inputs = dataclasses.replace(
                    inputs, asterisk=inputs.asterisk.update(ended.wait_s), les_wait_s=ended.wait_s
                )
        return dataclasses.replace(inputs, observed=inputs.observed + 1)


@dataclass(frozen=True, kw_only=True, slots=True)
class ModelInputs:
    """Handle time (``None``: unknown) and patience (``math.inf``: nobody abandoned) to predict with."""

    aht_s: float | None
    patience_s: float


def model_inputs(online: OnlineInputs, prior: IntervalForecast | None, *, prior_calls: float) -> ModelInputs:
    """The day's own calls blended with the interval's forecast from history (see the module docstring)."""
    handle = online.handle
    patience = online.patience
    if prior is not None and prior.aht_s is not None:
        handle = handle.merged(HandleTimeEstimate.with_prior(prior.aht_s, prior_calls))
    if prior is not None:
        patience = patience.merged(scaled(prior.patience_unit, prior_calls))
    aht = handle.mean_s
    return ModelInputs(
        aht_s=None if aht is None else max(MIN_DURATION_S, aht),
        patience_s=patience_of(patience),
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class QueueSnapshot:
    """What the live queue tells about one caller's situation.

    :param position: the caller's place in line (1 is next).
    :param elapsed_s: how long they have waited already.
    :param hol_wait_s: how long the caller at the head of the line has waited (0 with nobody waiting).
    """

    position: int
    elapsed_s: float = 0.0
    agents_staffed: int
    agents_free: int
    hol_wait_s: float = 0.0


@dataclass(frozen=True, kw_only=True, slots=True)
class WaitEstimate:
    """The estimate for one caller: QL-A in ``estimate`` and the baselines, or why there is none.

    Every number here is finite.
    """

    position: int
    elapsed_s: float
    agents_staffed: int
    agents_free: int
    aht_s: float | None
    patience_s: float | None
    estimate: WaitPrediction | None
    baselines: tuple[WaitPrediction, ...] = ()
    reason: NoEstimateReason | None = None
    message: str = ""

    @property
    def ahead(self) -> int:
        return self.position - 1

    @property
    def predictions(self) -> tuple[WaitPrediction, ...]:
        """QL-A first, then the baselines (nothing without an estimate)."""
        return (self.estimate, *self.baselines) if self.estimate is not None else ()


def check_position(position: object) -> int:
    """``position`` if it is a place in line we can predict for. :raises ValidationError:"""
    if isinstance(position, bool) or not isinstance(position, int) or not 1 <= position <= MAX_POSITION:
        raise ValidationError(
            f"position must be a whole number from 1 (next) to {MAX_POSITION}, not {position!r}"
        )
    return position


def estimate_wait(snapshot: QueueSnapshot, inputs: ModelInputs, online: OnlineInputs) -> WaitEstimate:
    """QL-A and the baselines for the caller of ``snapshot`` (see the module docstring).

    :raises ValidationError: for a position out of range (the caller's mistake, unlike staffing).
    """
    check_position(snapshot.position)
    patience = inputs.patience_s if math.isfinite(inputs.patience_s) else None
    base = WaitEstimate(
        position=snapshot.position,
        elapsed_s=snapshot.elapsed_s,
        agents_staffed=snapshot.agents_staffed,
        agents_free=snapshot.agents_free,
        aht_s=inputs.aht_s,
        patience_s=patience,
        estimate=None,
    )
    if snapshot.agents_staffed <= 0:
        return _none(base, NoEstimateReason.NO_AGENTS, "no agent is staffed on this queue")
    if snapshot.agents_staffed > MAX_AGENTS:
        return _none(
            base,
            NoEstimateReason.TOO_MANY_AGENTS,
            f"{snapshot.agents_staffed} agents are staffed; the models take at most {MAX_AGENTS}",
        )
    if inputs.aht_s is None:
        return _none(base, NoEstimateReason.NO_HISTORY, "no answered call yet: the handle time is unknown")
    try:
        state = QueueState(
            ahead=snapshot.position - 1,
            agents_staffed=snapshot.agents_staffed,
            agents_free=min(snapshot.agents_free, snapshot.agents_staffed),
            aht_s=inputs.aht_s,
            patience_s=inputs.patience_s,
            elapsed_s=snapshot.elapsed_s,
            hol_wait_s=snapshot.hol_wait_s,
            les_wait_s=online.les_wait_s,
        )
        announced = predict_ql_a(state)
    except (ValidationError, ArithmeticError) as exc:
        return _none(base, NoEstimateReason.DEGENERATE, f"the queue's figures are not usable: {exc}")
    if not _finite(announced):
        return _none(base, NoEstimateReason.DEGENERATE, "the prediction is not a finite number")
    baselines = tuple(
        p
        for p in (online.asterisk.predict(snapshot.elapsed_s), predict_hol(state), predict_les(state))
        if _finite(p)
    )
    return dataclasses.replace(base, estimate=announced, baselines=baselines)


def _none(base: WaitEstimate, reason: NoEstimateReason, message: str) -> WaitEstimate:
    return dataclasses.replace(base, reason=reason, message=message)


def _finite(prediction: WaitPrediction) -> bool:
    return all(math.isfinite(v) and v >= 0.0 for v in (prediction.mean_s, prediction.p80_s, prediction.p90_s))
