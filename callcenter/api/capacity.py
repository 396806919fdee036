"""Handlers of the capacity routes: a caller's wait estimate, a queue's forecast, agents' schedules (edge).

``GET /queues/{queue}/estimate`` and ``GET /queues/{queue}/forecast``, ``GET`` and ``PUT
/agents/{agent_id}/schedule``, all for supervisors. :data:`ESTIMATE_SERVICE` is the app key the
composition root sets; without it these routes answer 503. Bad input answers 400 with the reason;
no estimate (no agent staffed, no history) is a 200 whose ``available`` is false, with the reason.
"""

from __future__ import annotations

import math
from datetime import date
from typing import Final

from aiohttp import web

from callcenter.api.auth import principal_of, set_audit_detail
from callcenter.api.capacity_schemas import queue_forecast_json, schedule_json, wait_estimate_json
from callcenter.api.jsonio import read_json_object, reject_unknown_fields
from callcenter.capacity.schedules import MAX_SHIFTS, Shift, parse_shift, shift_of
from callcenter.capacity.service import EstimateService
from callcenter.errors import DependencyError, ValidationError

#: The estimate service of this process; the capacity routes answer 503 where it is not set.
ESTIMATE_SERVICE: Final = web.AppKey("estimate_service", EstimateService)

_SHIFT_FIELDS: Final = frozenset({"day", "start", "end"})


def estimate_service(request: web.Request) -> EstimateService:
    """:raises DependencyError: (503) when this process runs no estimate service."""
    service = request.app.get(ESTIMATE_SERVICE)
    if service is None:
        raise DependencyError("the estimate service is not running in this process")
    return service


def _query_int(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise ValidationError(f"{name} must be a whole number, not {raw!r}") from None


def _query_share(request: web.Request, name: str) -> float | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ValidationError(f"{name} must be a number between 0 and 1, not {raw!r}") from None
    if not math.isfinite(value) or not 0.0 < value < 1.0:
        raise ValidationError(f"{name} must be strictly between 0 and 1, not {raw!r}")
    return value


def _query_date(request: web.Request, name: str) -> date | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise ValidationError(f"{name} must be a date as YYYY-MM-DD, not {raw!r}") from None


async def get_estimate(request: web.Request) -> web.Response:
    service = estimate_service(request)
    estimate = await service.estimate(
        request.match_info["queue"],
        position=_query_int(request, "position"),
        call_id=request.query.get("call_id") or None,
    )
    return web.json_response(wait_estimate_json(estimate))


async def get_forecast(request: web.Request) -> web.Response:
    service = estimate_service(request)
    forecast = await service.forecast(
        request.match_info["queue"],
        _query_date(request, "date"),
        target_service_level=_query_share(request, "target"),
    )
    return web.json_response(queue_forecast_json(forecast))


async def get_schedule(request: web.Request) -> web.Response:
    schedule = await estimate_service(request).get_schedule(request.match_info["agent_id"])
    return web.json_response(schedule_json(schedule))


def read_shifts(value: object) -> list[Shift]:
    """The ``shifts`` of a ``PUT`` body: objects ``{day, start, end}`` or strings ``'mon 09:00-17:00'``.

    :raises ValidationError: naming the shift at fault.
    """
    if not isinstance(value, list):
        raise ValidationError("shifts is required: a list of {day, start, end} or 'mon 09:00-17:00'")
    if len(value) > MAX_SHIFTS:
        raise ValidationError(f"a schedule holds at most {MAX_SHIFTS} shifts, not {len(value)}")
    shifts = []
    for index, item in enumerate(value):
        try:
            if isinstance(item, dict):
                reject_unknown_fields(item, _SHIFT_FIELDS)
                shifts.append(shift_of(item.get("day"), item.get("start"), item.get("end")))
            else:
                shifts.append(parse_shift(item))
        except ValidationError as exc:
            raise ValidationError(f"shifts[{index}]: {exc}") from None
    return shifts


async def put_schedule(request: web.Request) -> web.Response:
    service = estimate_service(request)
    body = await read_json_object(request)
    reject_unknown_fields(body, {"shifts"})
    schedule = await service.set_schedule(
        request.match_info["agent_id"], read_shifts(body.get("shifts")), actor=principal_of(request).actor
    )
    set_audit_detail(request, {"shifts": [str(s) for s in schedule.shifts]})
    return web.json_response(schedule_json(schedule))
