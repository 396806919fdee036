"""Handlers of ``/api/v1/queues``: settings and the live picture of each queue (edge).

Also home of :data:`QUEUE_SERVICE`, the app key the composition root sets for every queue, agent and
call route, and of the small body readers those handlers share.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Final

from aiohttp import web

from callcenter.api.auth import principal_of, set_audit_detail
from callcenter.api.jsonio import page_params, read_json_object, reject_unknown_fields
from callcenter.api.routing import JsonObject
from callcenter.api.schemas import queue_json, queue_live_json
from callcenter.errors import DependencyError, ValidationError
from callcenter.model.paging import Page, check_limit, decode_cursor, encode_cursor
from callcenter.model.records import ExitAction, QueueRecord
from callcenter.queue.hours import normalise_weekly, parse_holidays
from callcenter.queue.service import QueueService

#: The queue service of this process; routes answer 503 where it is not set.
QUEUE_SERVICE: Final = web.AppKey("queue_service", QueueService)


def queue_service(request: web.Request) -> QueueService:
    """:raises DependencyError: (503) when this process runs no queue service."""
    service = request.app.get(QUEUE_SERVICE)
    if service is None:
        raise DependencyError("the queue service is not running in this process")
    return service


async def optional_json_object(request: web.Request) -> JsonObject:
    """The body as a JSON object; an empty body reads as ``{}``. :raises ValidationError:"""
    if not (await request.read()).strip():
        return {}
    return await read_json_object(request)


def text_list_field(body: JsonObject, name: str) -> tuple[str, ...] | None:
    """A list of strings, or ``None`` when absent. :raises ValidationError:"""
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValidationError(f"{name} must be a list of strings")
    return tuple(value)


# -- PUT /queues/{queue} ---------------------------------------------------------------------------


def _int(name: str, value: object) -> int:
    if type(value) is not int:
        raise ValidationError(f"{name} must be a whole number")
    return value


def _optional_int(name: str, value: object) -> int | None:
    return None if value is None else _int(name, value)


def _bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ValidationError(f"{name} must be true or false")
    return value


def _text(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise ValidationError(f"{name} must be a string")
    return value.strip()


def _optional_text(name: str, value: object) -> str | None:
    return None if value is None else _text(name, value) or None


def _action(name: str, value: object) -> ExitAction:
    try:
        return ExitAction(_text(name, value))
    except ValueError:
        raise ValidationError(f"{name} must be one of {', '.join(a.value for a in ExitAction)}") from None


def _weekly(name: str, value: object) -> object:
    if value is not None and not isinstance(value, dict):
        raise ValidationError(f"{name} must be an object of weekday -> list of HH:MM-HH:MM, or null")
    return normalise_weekly(value)


def _holidays(name: str, value: object) -> object:
    if not isinstance(value, list):
        raise ValidationError(f"{name} must be a list of YYYY-MM-DD dates")
    return parse_holidays(value)


_READERS: Final[dict[str, Callable[[str, object], object]]] = {
    "title": _text,
    "max_wait_s": _int,
    "join_empty": _bool,
    "service_level_s": _int,
    "short_abandon_s": _int,
    "max_callers": _optional_int,
    "business_number": _optional_text,
    "time_zone": _text,
    "business_hours": _weekly,
    "holidays": _holidays,
    "after_hours_action": _action,
    "timeout_action": _action,
    "no_agents_action": _action,
    "ring_timeout_s": _int,
    "wrap_up_s": _int,
    "max_misses_before_pause": _int,
}
#: The fields ``PUT /queues/{queue}`` takes (the ``QueuePut`` schema documents the same ones).
QUEUE_FIELDS: Final = frozenset(_READERS)


def queue_changes(body: JsonObject) -> dict[str, object]:
    """The settings a ``PUT /queues/{queue}`` body gives, typed. :raises ValidationError:"""
    reject_unknown_fields(body, _READERS)
    return {name: _READERS[name](name, value) for name, value in body.items()}


async def put_queue(request: web.Request) -> web.Response:
    service = queue_service(request)
    changes = queue_changes(await read_json_object(request))
    current = await service.queue_or_default(request.match_info["queue"])
    stored = await service.put_queue(dataclasses.replace(current, **changes), actor=_actor(request))  # type: ignore[arg-type]
    set_audit_detail(request, {"fields": sorted(changes)})
    return web.json_response(queue_json(stored, open_now=service.is_open(stored)))


# -- reads -----------------------------------------------------------------------------------------


async def list_queues(request: web.Request) -> web.Response:
    service = queue_service(request)
    cursor, limit = page_params(request)
    queues = await service.list_queues()
    page = _page_by_name(queues, cursor, limit)
    return web.json_response(
        {"items": [queue_json(q, open_now=service.is_open(q)) for q in page.items], "next": page.next}
    )


def _page_by_name(queues: tuple[QueueRecord, ...], cursor: str | None, limit: int) -> Page[QueueRecord]:
    check_limit(limit)
    if cursor is not None:
        key = decode_cursor(cursor)
        if len(key) != 1 or not isinstance(key[0], str):
            raise ValidationError("invalid cursor")
        queues = tuple(q for q in queues if q.name > key[0])
    kept = queues[:limit]
    more = len(queues) > limit
    return Page(items=kept, next=encode_cursor((kept[-1].name,)) if more else None)


async def get_live(request: web.Request) -> web.Response:
    live = await queue_service(request).live(request.match_info["queue"])
    return web.json_response(queue_live_json(live))


def _actor(request: web.Request) -> str:
    return principal_of(request).actor
