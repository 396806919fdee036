"""Callback routes: a queue's offerable slots, booking, reading and cancelling callbacks (edge).

``GET /queues/{queue}/callback-slots``, ``POST /callbacks`` (idempotent by ``client_key``),
``GET /callbacks``, ``GET /callbacks/{callback_id}`` and ``DELETE /callbacks/{callback_id}``. Every
callback is shown with its promise window. :data:`CALLBACK_SERVICE` is the app key the composition
root sets; without it these routes answer 503. Schemas and serialisers sit here beside the handlers.
"""

from __future__ import annotations

from datetime import date
from typing import Final

from aiohttp import web

from callcenter.api.auth import principal_of, set_audit_detail
from callcenter.api.jsonio import (
    iso,
    optional_text_field,
    optional_time_field,
    page_params,
    page_response,
    read_json_object,
    reject_unknown_fields,
    text_field,
)
from callcenter.api.routing import JsonObject
from callcenter.callbacks.service import CallbackDetail, CallbackService, DaySlots
from callcenter.callbacks.slots import SlotCapacity
from callcenter.errors import DependencyError, ValidationError
from callcenter.model.callbacks import Actor, Callback, CallbackChange
from callcenter.model.vocabulary import ActorKind, AttemptResult, CallbackKind, CallbackState, Role

#: The callback service of this process; the callback routes answer 503 where it is not set.
CALLBACK_SERVICE: Final = web.AppKey("callback_service", CallbackService)

_BOOK_FIELDS: Final = frozenset({"queue", "number", "slot_start", "client_key", "call_id"})
_CANCEL_FIELDS: Final = frozenset({"reason", "customer_asked"})
_ROLE_ACTORS: Final = {
    Role.AGENT: ActorKind.AGENT,
    Role.SUPERVISOR: ActorKind.SUPERVISOR,
    Role.ADMIN: ActorKind.SUPERVISOR,
}

# -- schemas ---------------------------------------------------------------------------------------

_TIME: Final = {"type": "string", "format": "date-time"}
_TIME_OR_NULL: Final = {"type": ["string", "null"], "format": "date-time"}
_STATES: Final = [s.value for s in CallbackState]


def _object(properties: JsonObject, *, required: list[str] | None = None) -> JsonObject:
    return {
        "type": "object",
        "required": list(properties) if required is None else required,
        "properties": properties,
        "additionalProperties": False,
    }


PROMISE: Final = _object(
    {
        "start": _TIME,
        "end": {**_TIME, "description": "the first dial must start before this"},
        "early_ok": {"type": "boolean", "description": "a call before start keeps it (keep-my-place)"},
    }
)
CALLBACK: Final = _object(
    {
        "id": {"type": "string"},
        "queue": {"type": "string"},
        "number": {"type": "string", "description": "E.164"},
        "kind": {"enum": [k.value for k in CallbackKind]},
        "state": {"enum": _STATES},
        "promise": {"$ref": "#/components/schemas/CallbackPromise"},
        "call_id": {"type": ["string", "null"]},
        "requested_at": _TIME,
        "updated_at": _TIME,
        "enqueued_at": {**_TIME_OR_NULL, "description": "keep-my-place: the original place in line"},
        "due_at": {
            **_TIME_OR_NULL,
            "description": "when it may be dialled; null while a kept place is in line",
        },
        "attempts": {"type": "integer", "minimum": 0},
        "last_result": {"enum": [*(r.value for r in AttemptResult), None]},
        "first_dial_at": _TIME_OR_NULL,
    }
)
CALLBACK_CHANGE: Final = _object(
    {
        "at": _TIME,
        "previous": {"enum": [*_STATES, None]},
        "state": {"enum": _STATES},
        "actor": _object({"kind": {"enum": [k.value for k in ActorKind]}, "name": {"type": "string"}}),
        "reason": {"type": "string"},
        "result": {"enum": [*(r.value for r in AttemptResult), None]},
    }
)
CALLBACK_DETAIL: Final = _object(
    {
        "callback": {"$ref": "#/components/schemas/Callback"},
        "changes": {"type": "array", "items": {"$ref": "#/components/schemas/CallbackChange"}},
    }
)
CALLBACK_SLOT: Final = _object(
    {
        "start": _TIME,
        "end": _TIME,
        "capacity": {"type": "integer", "minimum": 0, "description": "callbacks the slot can take"},
        "booked": {"type": "integer", "minimum": 0},
        "remaining": {"type": "integer", "minimum": 0},
        "offerable": {"type": "boolean", "description": "may be booked now"},
        "free_agent_s": {"type": "number", "minimum": 0, "description": "agent time left after inbound"},
        "note": {"type": "string"},
    }
)
CALLBACK_SLOTS: Final = _object(
    {
        "queue": {"type": "string"},
        "date": {"type": "string", "format": "date"},
        "note": {"type": "string", "description": "why nothing is offered, when that is so"},
        "items": {"type": "array", "items": {"$ref": "#/components/schemas/CallbackSlot"}},
        "next": {"type": "null"},
    }
)
CALLBACK_BOOK: Final = _object(
    {
        "queue": {"type": "string"},
        "number": {"type": "string", "description": "the number to call back (E.164 or national)"},
        "slot_start": {**_TIME, "description": "the start of an offerable slot"},
        "client_key": {
            "type": ["string", "null"],
            "maxLength": 128,
            "description": "idempotency key: a repeat returns the first booking (200 instead of 201)",
        },
        "call_id": {"type": ["string", "null"], "description": "the call the request came from"},
    },
    required=["queue", "number", "slot_start"],
)
CALLBACK_CANCEL: Final = _object(
    {
        "reason": {"type": "string"},
        "customer_asked": {
            "type": "boolean",
            "description": "the customer asked for it (not counted against the promises kept)",
        },
    },
    required=[],
)

#: The named schemas of the callback routes (``schemas.COMPONENTS`` includes them).
CALLBACK_COMPONENTS: Final[dict[str, JsonObject]] = {
    "CallbackPromise": PROMISE,
    "Callback": CALLBACK,
    "CallbackChange": CALLBACK_CHANGE,
    "CallbackDetail": CALLBACK_DETAIL,
    "CallbackSlot": CALLBACK_SLOT,
    "CallbackSlots": CALLBACK_SLOTS,
    "CallbackBook": CALLBACK_BOOK,
    "CallbackCancel": CALLBACK_CANCEL,
}


def callback_json(callback: Callback) -> JsonObject:
    window = callback.window
    return {
        "id": callback.id,
        "queue": callback.queue,
        "number": callback.number,
        "kind": callback.kind.value,
        "state": callback.state.value,
        "promise": {"start": iso(window.start), "end": iso(window.end), "early_ok": window.early_ok},
        "call_id": callback.call_id,
        "requested_at": iso(callback.requested_at),
        "updated_at": iso(callback.updated_at),
        "enqueued_at": iso(callback.enqueued_at),
        "due_at": iso(callback.due_at),
        "attempts": callback.attempts,
        "last_result": callback.last_result.value if callback.last_result else None,
        "first_dial_at": iso(callback.first_dial_at),
    }


def change_json(change: CallbackChange) -> JsonObject:
    return {
        "at": iso(change.at),
        "previous": change.previous.value if change.previous else None,
        "state": change.state.value,
        "actor": {"kind": change.actor.kind.value, "name": change.actor.name},
        "reason": change.reason,
        "result": change.result.value if change.result else None,
    }


def detail_json(detail: CallbackDetail) -> JsonObject:
    return {"callback": callback_json(detail.callback), "changes": [change_json(c) for c in detail.changes]}


def slots_json(slots: DaySlots, *, offerable_only: bool) -> JsonObject:
    offerable = set(slots.offerable)

    def one(slot: SlotCapacity) -> JsonObject:
        return {
            "start": iso(slot.start),
            "end": iso(slot.end),
            "capacity": slot.capacity,
            "booked": slot.booked,
            "remaining": slot.remaining,
            "offerable": slot in offerable,
            "free_agent_s": slot.free_agent_s,
            "note": slot.note,
        }

    shown = slots.offerable if offerable_only else slots.slots
    return {
        "queue": slots.queue,
        "date": slots.day.isoformat(),
        "note": slots.note,
        "items": [one(s) for s in shown],
        "next": None,
    }


# -- handlers --------------------------------------------------------------------------------------


def callback_service(request: web.Request) -> CallbackService:
    """:raises DependencyError: (503) when this process runs no callback service."""
    service = request.app.get(CALLBACK_SERVICE)
    if service is None:
        raise DependencyError("the callback service is not running in this process")
    return service


def _actor(request: web.Request, *, customer: bool = False) -> Actor:
    principal = principal_of(request)
    if customer:
        return Actor(ActorKind.CUSTOMER, f"via {principal.actor}")
    return Actor(_ROLE_ACTORS[principal.role], principal.actor)


async def get_slots(request: web.Request) -> web.Response:
    service = callback_service(request)
    raw = request.query.get("date") or None
    try:
        day = date.fromisoformat(raw) if raw is not None else None
    except ValueError:
        raise ValidationError(f"date must be a date as YYYY-MM-DD, not {raw!r}") from None
    show = request.query.get("all", "false").lower()
    if show not in ("true", "false"):
        raise ValidationError("all must be true or false")
    slots = await service.day_slots(request.match_info["queue"], day)
    return web.json_response(slots_json(slots, offerable_only=show == "false"))


async def book(request: web.Request) -> web.Response:
    service = callback_service(request)
    body = await read_json_object(request)
    reject_unknown_fields(body, _BOOK_FIELDS)
    slot_start = optional_time_field(body, "slot_start")
    if slot_start is None:
        raise ValidationError("slot_start is required: the start of an offerable slot")
    booking = await service.book(
        text_field(body, "queue"),
        text_field(body, "number"),
        slot_start,
        actor=_actor(request),
        client_key=optional_text_field(body, "client_key"),
        call_id=optional_text_field(body, "call_id"),
        reason="booked through the API",
    )
    set_audit_detail(request, {"callback_id": booking.callback.id, "slot_start": slot_start.isoformat()})
    return web.json_response(callback_json(booking.callback), status=201 if booking.created else 200)


async def list_callbacks(request: web.Request) -> web.Response:
    service = callback_service(request)
    cursor, limit = page_params(request)
    raw_state = request.query.get("state") or None
    try:
        state = CallbackState(raw_state) if raw_state is not None else None
    except ValueError:
        raise ValidationError(f"state must be one of {', '.join(_STATES)}") from None
    page = await service.list_callbacks(
        queue=request.query.get("queue") or None, state=state, cursor=cursor, limit=limit
    )
    return page_response(page, callback_json)


async def get_callback(request: web.Request) -> web.Response:
    detail = await callback_service(request).get(request.match_info["callback_id"])
    return web.json_response(detail_json(detail))


async def cancel(request: web.Request) -> web.Response:
    service = callback_service(request)
    body = await read_json_object(request) if request.can_read_body else {}
    reject_unknown_fields(body, _CANCEL_FIELDS)
    customer = body.get("customer_asked", False)
    if not isinstance(customer, bool):
        raise ValidationError("customer_asked must be true or false")
    reason = text_field(body, "reason", default="cancelled through the API")
    callback = await service.cancel(
        request.match_info["callback_id"], actor=_actor(request, customer=customer), reason=reason[:500]
    )
    set_audit_detail(request, {"customer_asked": customer})
    return web.json_response(callback_json(callback))
