"""JSON Schemas and serialisers of the capacity routes: estimates, forecasts, schedules (edge).

Kept beside ``schemas.py`` (which lists them in ``COMPONENTS`` through :data:`CAPACITY_COMPONENTS`)
the same way: each serialiser next to the schema it must satisfy. No number here is ever NaN or
infinite: an infinite patience (nobody abandoned) is ``null``.
"""

from __future__ import annotations

import math
from typing import Final

from callcenter.api.jsonio import iso
from callcenter.api.routing import JsonObject
from callcenter.capacity.estimate import MAX_POSITION, NoEstimateReason
from callcenter.capacity.forecast import Basis, IntervalPlan
from callcenter.capacity.predictors import PredictorName, WaitPrediction
from callcenter.capacity.schedules import MAX_SHIFTS, WEEKDAYS, Schedule, Shift
from callcenter.capacity.service import Estimate, Forecast

_TIME: Final = {"type": "string", "format": "date-time"}
_TIME_OR_NULL: Final = {"type": ["string", "null"], "format": "date-time"}
_SECONDS: Final = {"type": "number", "minimum": 0}
_SECONDS_OR_NULL: Final = {"type": ["number", "null"], "minimum": 0}
_SHARE: Final = {"type": "number", "minimum": 0, "maximum": 1}
_CLOCK: Final = "^\\d{1,2}:\\d{2}$"
_PATIENCE: Final = {
    **_SECONDS_OR_NULL,
    "description": "mean patience; null: nobody abandoned (never hangs up)",
}


def _object(properties: JsonObject, *, required: list[str] | None = None) -> JsonObject:
    return {
        "type": "object",
        "required": list(properties) if required is None else required,
        "properties": properties,
        "additionalProperties": False,
    }


WAIT_PREDICTION: Final = _object(
    {
        "predictor": {"enum": [p.value for p in PredictorName]},
        "mean_s": {**_SECONDS, "description": "mean remaining wait"},
        "p80_s": {**_SECONDS, "description": "answered within this with 80 % probability"},
        "p90_s": {**_SECONDS, "description": "answered within this with 90 % probability"},
    }
)

WAIT_ESTIMATE: Final = _object(
    {
        "queue": {"type": "string"},
        "at": _TIME,
        "call_id": {"type": ["string", "null"], "description": "the waiting call asked about, if any"},
        "position": {"type": "integer", "minimum": 1, "maximum": MAX_POSITION, "description": "1 is next"},
        "ahead": {"type": "integer", "minimum": 0},
        "elapsed_s": {**_SECONDS, "description": "how long the caller has waited already"},
        "agents_staffed": {"type": "integer", "minimum": 0},
        "agents_free": {"type": "integer", "minimum": 0},
        "aht_s": {**_SECONDS_OR_NULL, "description": "mean handle time used; null: unknown"},
        "patience_s": _PATIENCE,
        "available": {"type": "boolean", "description": "false: no estimate, see reason"},
        "reason": {"enum": [*(r.value for r in NoEstimateReason), None]},
        "message": {"type": "string"},
        "estimate": {
            "oneOf": [{"$ref": "#/components/schemas/WaitPrediction"}, {"type": "null"}],
            "description": "QL-A, the estimate to announce",
        },
        "by": {**_TIME_OR_NULL, "description": "at + estimate.p80_s: the time to announce"},
        "baselines": {
            "type": "array",
            "items": {"$ref": "#/components/schemas/WaitPrediction"},
            "description": "Asterisk's EWMA, head of line and last to enter service, for comparison",
        },
    }
)

_STAFFING_SEGMENT: Final = _object(
    {"agents": {"type": "integer", "minimum": 0}, "minutes": {"type": "integer", "minimum": 1, "maximum": 15}}
)

FORECAST_INTERVAL: Final = _object(
    {
        "start": _TIME,
        "end": _TIME,
        "arrivals": {**_SECONDS, "description": "expected calls in the interval"},
        "basis": {"enum": [b.value for b in Basis], "description": "weekly, or a cold-start fallback"},
        "aht_s": {**_SECONDS_OR_NULL, "description": "null: no answered call in the history"},
        "patience_s": _PATIENCE,
        "staffed_agents": {**_SECONDS, "description": "agents scheduled, averaged over the interval"},
        "staffing": {"type": "array", "items": _STAFFING_SEGMENT},
        "agents_required": {
            "type": ["integer", "null"],
            "minimum": 0,
            "description": "fewest agents meeting the target (Erlang A); null: see note",
        },
        "service_level": {
            "oneOf": [_SHARE, {"type": "null"}],
            "description": "predicted share answered within answer_within_s with the staffing scheduled",
        },
        "note": {"type": "string"},
    }
)

QUEUE_FORECAST: Final = _object(
    {
        "queue": {"type": "string"},
        "date": {"type": "string", "format": "date"},
        "time_zone": {"type": "string"},
        "answer_within_s": _SECONDS,
        "target_service_level": _SHARE,
        "history": _object(
            {
                "since": _TIME,
                "until": _TIME,
                "calls": {"type": "integer", "minimum": 1},
                "answered": {"type": "integer", "minimum": 0},
                "waited": {"type": "integer", "minimum": 0},
                "aht_s": _SECONDS_OR_NULL,
                "patience_s": _PATIENCE,
            }
        ),
        "intervals": {"type": "array", "items": {"$ref": "#/components/schemas/ForecastInterval"}},
    }
)

SHIFT: Final = _object(
    {
        "day": {"enum": list(WEEKDAYS)},
        "start": {"type": "string", "pattern": _CLOCK, "description": "local time of the queue, HH:MM"},
        "end": {
            "type": "string",
            "pattern": _CLOCK,
            "description": "HH:MM, 24:00 for midnight; before start: ends the next day",
        },
    }
)

SCHEDULE: Final = _object(
    {
        "agent_id": {"type": "string"},
        "shifts": {"type": "array", "items": {"$ref": "#/components/schemas/Shift"}},
        "hours_per_week": _SECONDS,
        "updated_at": _TIME_OR_NULL,
        "updated_by": {"type": "string"},
    }
)

SCHEDULE_PUT: Final = _object(
    {
        "shifts": {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_SHIFTS,
            "items": {
                "oneOf": [
                    {"$ref": "#/components/schemas/Shift"},
                    {"type": "string", "description": "the CLI form, e.g. 'mon 09:00-17:00'"},
                ]
            },
            "description": "replaces every shift; none may overlap another",
        }
    }
)

#: The named schemas of the capacity routes (``schemas.COMPONENTS`` includes them).
CAPACITY_COMPONENTS: Final[dict[str, JsonObject]] = {
    "WaitPrediction": WAIT_PREDICTION,
    "WaitEstimate": WAIT_ESTIMATE,
    "ForecastInterval": FORECAST_INTERVAL,
    "QueueForecast": QUEUE_FORECAST,
    "Shift": SHIFT,
    "Schedule": SCHEDULE,
    "SchedulePut": SCHEDULE_PUT,
}


def _finite_or_none(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def wait_prediction_json(prediction: WaitPrediction) -> JsonObject:
    return {
        "predictor": prediction.predictor.value,
        "mean_s": prediction.mean_s,
        "p80_s": prediction.p80_s,
        "p90_s": prediction.p90_s,
    }


def wait_estimate_json(estimate: Estimate) -> JsonObject:
    wait = estimate.wait
    return {
        "queue": estimate.queue,
        "at": iso(estimate.at),
        "call_id": estimate.call_id,
        "position": wait.position,
        "ahead": wait.ahead,
        "elapsed_s": wait.elapsed_s if math.isfinite(wait.elapsed_s) else 0.0,
        "agents_staffed": wait.agents_staffed,
        "agents_free": wait.agents_free,
        "aht_s": _finite_or_none(wait.aht_s),
        "patience_s": _finite_or_none(wait.patience_s),
        "available": wait.estimate is not None,
        "reason": wait.reason.value if wait.reason is not None else None,
        "message": wait.message,
        "estimate": wait_prediction_json(wait.estimate) if wait.estimate is not None else None,
        "by": iso(estimate.by),
        "baselines": [wait_prediction_json(p) for p in wait.baselines],
    }


def _interval_json(interval: IntervalPlan) -> JsonObject:
    forecast = interval.forecast
    return {
        "start": iso(interval.start),
        "end": iso(interval.end),
        "arrivals": forecast.arrivals,
        "basis": forecast.basis.value,
        "aht_s": _finite_or_none(forecast.aht_s),
        "patience_s": _finite_or_none(forecast.patience_s),
        "staffed_agents": interval.staffing.mean_agents,
        "staffing": [
            {"agents": agents, "minutes": minutes} for agents, minutes in interval.staffing.segments
        ],
        "agents_required": interval.agents_required,
        "service_level": interval.service_level,
        "note": interval.note,
    }


def queue_forecast_json(forecast: Forecast) -> JsonObject:
    history = forecast.history
    return {
        "queue": forecast.queue.name,
        "date": forecast.plan.day.isoformat(),
        "time_zone": forecast.queue.time_zone,
        "answer_within_s": forecast.plan.answer_within_s,
        "target_service_level": forecast.plan.target_service_level,
        "history": {
            "since": iso(history.since),
            "until": iso(history.until),
            "calls": history.calls,
            "answered": history.answered,
            "waited": history.waited,
            "aht_s": _finite_or_none(history.aht_s),
            "patience_s": _finite_or_none(history.patience_s),
        },
        "intervals": [_interval_json(i) for i in forecast.plan.intervals],
    }


def shift_json(shift: Shift) -> JsonObject:
    return {"day": shift.day, "start": shift.start, "end": shift.end}


def schedule_json(schedule: Schedule) -> JsonObject:
    return {
        "agent_id": schedule.agent_id,
        "shifts": [shift_json(s) for s in schedule.shifts],
        "hours_per_week": schedule.hours_per_week,
        "updated_at": iso(schedule.updated_at),
        "updated_by": schedule.updated_by,
    }
