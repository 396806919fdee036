"""Handlers and JSON of the statistics routes: live figures, intervals and rollups, CSV, missed calls (edge).

Every figure is named as in ``docs/metrics.md``. :data:`STATS_SERVICE` is the app key the composition
root sets; without it these routes answer 503. Unknown queues answer 404; reversed or longer than a
year ranges, unknown weekdays, malformed hours or periods answer 400.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from typing import Final

from aiohttp import web

from callcenter.api.auth import principal_of, require_agent_access, set_audit_detail
from callcenter.api.jsonio import iso, page_params, page_response, read_json_object
from callcenter.api.routing import JsonObject
from callcenter.errors import DependencyError, ValidationError
from callcenter.stats.definitions import COUNTED_NAMES, LIVE_NAMES, figures
from callcenter.stats.history import HistoryFilter, HistoryRow, Period, parse_hours, parse_weekdays, to_csv
from callcenter.stats.intervals import MissedCall
from callcenter.stats.live import Snapshot
from callcenter.stats.report import chart_png, report_html
from callcenter.stats.service import StatsService

STATS_SERVICE: Final = web.AppKey("stats_service", StatsService)

_STATUSES: Final = ("open", "closed")


def stats_service(request: web.Request) -> StatsService:
    """:raises DependencyError: (503) when this process runs no statistics service."""
    service = request.app.get(STATS_SERVICE)
    if service is None:
        raise DependencyError("the statistics service is not running in this process")
    return service


# -- JSON ---------------------------------------------------------------------------------------------


def live_json(snapshot: Snapshot) -> JsonObject:
    """``GET /stats/live``: ``{"overall": {...}, "queues": {"<q>": {...}}, "at": "..."}``."""
    return {
        "overall": dict(snapshot.overall),
        "queues": {name: dict(values) for name, values in snapshot.queues.items()},
        "at": snapshot.at.isoformat(),
    }


def missed_json(missed: MissedCall) -> JsonObject:
    return {
        "call_id": missed.call_id,
        "queue": missed.queue or None,
        "caller": missed.caller,
        "outcome": missed.outcome.value,
        "ended_at": missed.ended_at.isoformat(),
        "closable": missed.closable,
        "status": "closed"
        if missed.closed_at is not None
        else ("open" if missed.closable else "unreachable"),
        "closed_at": iso(missed.closed_at),
        "closed_by_agent": missed.closed_by_agent,
        "closed_by_call": missed.closed_by_call,
    }


def wallboard_json(snapshot: Snapshot, *, waiting: int = 50, missed: int = 50) -> JsonObject:
    """What the wallboard feed sends: the live figures, the longest ``waiting`` callers, the newest
    ``missed`` open missed calls, the promised callbacks at risk, and today's charts."""
    body = live_json(snapshot)
    body["since"] = snapshot.since.isoformat()
    body["waiting"] = [
        {
            "call_id": w.call_id,
            "queue": w.queue,
            "caller": w.caller,
            "since": w.since.isoformat(),
            "wait_s": round((snapshot.at - w.since).total_seconds(), 1),
        }
        for w in snapshot.waiting[:waiting]
    ]
    body["open_missed"] = [missed_json(m) for m in snapshot.open_missed[-missed:]]
    body["at_risk"] = [
        {
            "callback_id": r.callback_id,
            "queue": r.queue,
            "number": r.number,
            "window_end": r.window_end.isoformat(),
            "ends_in_s": round((r.window_end - snapshot.at).total_seconds()),
            "expected_by": iso(r.expected_by),
        }
        for r in snapshot.at_risk
    ]
    body["day"] = [
        {
            "start": p.start.isoformat(),
            "offered": p.offered,
            "answered": p.answered,
            "abandoned": p.abandoned,
            "service_level": p.service_level,
            "peak_waiting": p.peak_waiting,
        }
        for p in snapshot.day
    ]
    return body


#: A wall screen shows the longest waiting callers; the count of all of them is ``calls_waiting``.
WAITING_SHOWN: Final = 50
MISSED_SHOWN: Final = 50


def render_wallboard(service: StatsService) -> bytes:
    """One snapshot serialised once for every feed client (with the colour thresholds).

    ``oldest_event_at`` (first, so a client reads it cheaply) is when the oldest event this snapshot
    is the first to show happened: its age on arrival is the feed's delay.
    """
    since = service.take_unpublished_since()
    snapshot = service.snapshot()
    body: JsonObject = {"oldest_event_at": since.isoformat() if since is not None else None}
    body.update(wallboard_json(snapshot, waiting=WAITING_SHOWN, missed=MISSED_SHOWN))
    body["thresholds"] = service.thresholds
    return json.dumps(body, separators=(",", ":")).encode()


def history_json(row: HistoryRow, service: StatsService) -> JsonObject:
    return {
        "queue": row.queue,
        "start": row.start.isoformat(),
        "end": row.end.isoformat(),
        **figures(row.counts, service.config),
    }


# -- query parsing ----------------------------------------------------------------------------------


def _time(request: web.Request, name: str, default: datetime) -> datetime:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise ValidationError(f"{name} must be an ISO 8601 time with offset, not {raw!r}") from None
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValidationError(f"{name} needs a UTC offset, e.g. 2026-11-23T00:00:00+00:00")
    return value


def _queues(request: web.Request) -> tuple[str, ...] | None:
    raw = request.query.get("queue")
    if raw is None or raw == "":
        return None
    names = tuple(sorted({n.strip() for n in raw.split(",") if n.strip()}))
    if not names:
        raise ValidationError("queue must name at least one queue")
    return names


def _filter(request: web.Request, service: StatsService) -> HistoryFilter:
    today = service.live.roll(service.snapshot().at)
    weekday = request.query.get("weekday")
    hours = request.query.get("hours")
    return HistoryFilter(
        since=_time(request, "since", today),
        until=_time(request, "until", today + timedelta(days=1)),
        zone=service.zone,
        queues=_queues(request),
        weekdays=parse_weekdays(weekday) if weekday else None,
        hours=parse_hours(hours) if hours else None,
    )


def _period(request: web.Request) -> Period:
    raw = request.query.get("period") or Period.INTERVAL.value
    try:
        return Period(raw)
    except ValueError:
        raise ValidationError(
            f"period must be one of {', '.join(p.value for p in Period)}, not {raw!r}"
        ) from None


def _by_queue(request: web.Request) -> bool:
    raw = request.query.get("by") or "queue"
    if raw not in ("queue", "all"):
        raise ValidationError(f"by must be queue or all, not {raw!r}")
    return raw == "queue"


# -- handlers ---------------------------------------------------------------------------------------


async def get_live(request: web.Request) -> web.Response:
    service = stats_service(request)
    snapshot = service.snapshot()
    queue = request.query.get("queue")
    if queue:
        service.check_queue(queue)
    body = live_json(snapshot)
    if queue:
        body["queues"] = {queue: dict(snapshot.queues.get(queue, {}))}
    return web.json_response(body)


async def get_agent_stats(request: web.Request) -> web.Response:
    agent_id = request.match_info["agent_id"]
    require_agent_access(principal_of(request), agent_id)
    figures_today, state = stats_service(request).agent_figures(agent_id)
    return web.json_response(
        {
            "agent_id": agent_id,
            "state": state.value if state is not None else None,
            **figures_today,
            "at": stats_service(request).snapshot().at.isoformat(),
        }
    )


async def _history(request: web.Request) -> tuple[StatsService, tuple[HistoryRow, ...]]:
    service = stats_service(request)
    rows = await service.history(_filter(request, service), _period(request), by_queue=_by_queue(request))
    return service, rows


async def get_intervals(request: web.Request) -> web.Response:
    service, rows = await _history(request)
    return web.json_response({"items": [history_json(r, service) for r in rows], "next": None})


async def get_intervals_csv(request: web.Request) -> web.Response:
    service, rows = await _history(request)
    return web.Response(
        text=to_csv(rows, service.config),
        content_type="text/csv",
        headers={"Content-Disposition": 'attachment; filename="intervals.csv"'},
    )


async def get_missed(request: web.Request) -> web.Response:
    service = stats_service(request)
    now = service.snapshot().at
    status = request.query.get("status") or None
    if status is not None and status not in _STATUSES:
        raise ValidationError(f"status must be open or closed, not {status!r}")
    cursor, limit = page_params(request)
    page = await service.missed_calls(
        _time(request, "since", now - timedelta(days=7)),
        _time(request, "until", now + timedelta(seconds=1)),
        queue=request.query.get("queue") or None,
        status=status,
        cursor=cursor,
        limit=limit,
    )
    return page_response(page, missed_json)


async def get_thresholds(request: web.Request) -> web.Response:
    return web.json_response(stats_service(request).thresholds)


async def put_thresholds(request: web.Request) -> web.Response:
    service = stats_service(request)
    body = await read_json_object(request)
    thresholds = await service.set_thresholds(body, actor=principal_of(request).actor)
    set_audit_detail(request, {"thresholds": thresholds})
    return web.json_response(thresholds)


def _day(request: web.Request) -> date | None:
    raw = request.query.get("date")
    if raw is None or raw == "":
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise ValidationError(f"date must be YYYY-MM-DD, not {raw!r}") from None


async def get_daily_report(request: web.Request) -> web.Response:
    service = stats_service(request)
    report = await service.daily(_day(request))
    chart = f"/api/v1/reports/daily.png?date={report.day.isoformat()}"
    return web.Response(
        text=report_html(report, service.config, chart_url=chart),
        content_type="text/html",
        headers={"Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'"},
    )


async def get_daily_chart(request: web.Request) -> web.Response:
    report = await stats_service(request).daily(_day(request))
    return web.Response(body=chart_png(report), content_type="image/png")


async def post_rebuild(request: web.Request) -> web.Response:
    folded = await stats_service(request).rebuild()
    return web.json_response({"calls": folded})


# -- schemas ----------------------------------------------------------------------------------------

_NUMBER_OR_NULL: Final = {"type": ["number", "null"]}
_FIGURES: Final[JsonObject] = {
    "type": "object",
    "required": [*LIVE_NAMES, *COUNTED_NAMES],
    "properties": {name: _NUMBER_OR_NULL for name in (*LIVE_NAMES, *COUNTED_NAMES)},
    "additionalProperties": False,
}
_HISTORY_FIGURES: Final[JsonObject] = {name: _NUMBER_OR_NULL for name in COUNTED_NAMES}

#: The named schemas of the statistics routes (``schemas.COMPONENTS`` includes them).
STATS_COMPONENTS: Final[dict[str, JsonObject]] = {
    "StatsFigures": _FIGURES,
    "StatsLive": {
        "type": "object",
        "required": ["overall", "queues", "at"],
        "properties": {
            "overall": {"$ref": "#/components/schemas/StatsFigures"},
            "queues": {
                "type": "object",
                "additionalProperties": {"$ref": "#/components/schemas/StatsFigures"},
            },
            "at": {"type": "string", "format": "date-time"},
        },
        "additionalProperties": False,
    },
    "StatsInterval": {
        "type": "object",
        "required": ["queue", "start", "end", *COUNTED_NAMES],
        "properties": {
            "queue": {"type": ["string", "null"], "description": "null: all queues"},
            "start": {"type": "string", "format": "date-time"},
            "end": {"type": "string", "format": "date-time"},
            **_HISTORY_FIGURES,
        },
        "additionalProperties": False,
    },
    "StatsIntervals": {
        "type": "object",
        "required": ["items", "next"],
        "properties": {
            "items": {"type": "array", "items": {"$ref": "#/components/schemas/StatsInterval"}},
            "next": {"type": "null"},
        },
        "additionalProperties": False,
    },
    "MissedCall": {
        "type": "object",
        "required": [
            "call_id",
            "queue",
            "caller",
            "outcome",
            "ended_at",
            "closable",
            "status",
            "closed_at",
            "closed_by_agent",
            "closed_by_call",
        ],
        "properties": {
            "call_id": {"type": "string"},
            "queue": {"type": ["string", "null"]},
            "caller": {"type": "string"},
            "outcome": {"type": "string"},
            "ended_at": {"type": "string", "format": "date-time"},
            "closable": {"type": "boolean"},
            "status": {"enum": ["open", "closed", "unreachable"]},
            "closed_at": {"type": ["string", "null"], "format": "date-time"},
            "closed_by_agent": {"type": ["string", "null"]},
            "closed_by_call": {"type": ["string", "null"]},
        },
        "additionalProperties": False,
    },
    "WallboardThresholds": {
        "type": "object",
        "description": "figure -> {warn, alert}: amber from warn, red from alert (see docs/metrics.md)",
        "additionalProperties": {
            "type": "object",
            "required": ["warn", "alert"],
            "properties": {
                "warn": {"type": "number", "minimum": 0},
                "alert": {"type": "number", "minimum": 0},
            },
            "additionalProperties": False,
        },
    },
    "AgentStats": {
        "type": "object",
        "required": ["agent_id", "state", "agent_calls_answered", "agent_talk_s", "agent_aht_s", "at"],
        "properties": {
            "agent_id": {"type": "string"},
            "state": {"type": ["string", "null"]},
            "agent_calls_answered": {"type": "integer", "minimum": 0},
            "agent_talk_s": {"type": "number", "minimum": 0},
            "agent_aht_s": {"type": ["number", "null"]},
            "at": {"type": "string", "format": "date-time"},
        },
        "additionalProperties": False,
    },
    "StatsRebuilt": {
        "type": "object",
        "required": ["calls"],
        "properties": {"calls": {"type": "integer", "minimum": 0}},
        "additionalProperties": False,
    },
}
