"""Dispatcher routes: the do-not-call list and a callback's attempts and sources (edge).

``GET /do-not-call``, ``PUT /do-not-call/{number}``, ``DELETE /do-not-call/{number}`` (supervisors)
and ``GET /callbacks/{callback_id}/attempts`` (agents). Numbers in paths are E.164, percent-encoded
(``%2B14155550100``) or with a raw ``+``. :data:`DISPATCH_STORE` is the app key the composition root
sets; without it these routes answer 503.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

from aiohttp import web

from callcenter.api.auth import principal_of
from callcenter.api.callbacks import callback_service
from callcenter.api.jsonio import iso, read_json_object, reject_unknown_fields, text_field
from callcenter.api.routing import JsonObject
from callcenter.callbacks.attempts import Attempt, SourceNote
from callcenter.callbacks.dispatch_ports import DispatchStore, DoNotCallEntry
from callcenter.errors import DependencyError, NotFoundError

#: The dispatcher's store of this process.
DISPATCH_STORE: Final = web.AppKey("dispatch_store", DispatchStore)

_BLOCK_FIELDS: Final = frozenset({"reason"})
_TIME_OR_NULL: Final = {"type": ["string", "null"], "format": "date-time"}


def _object(properties: JsonObject, *, required: list[str] | None = None) -> JsonObject:
    return {
        "type": "object",
        "required": list(properties) if required is None else required,
        "properties": properties,
        "additionalProperties": False,
    }


DO_NOT_CALL: Final = _object(
    {
        "number": {"type": "string", "description": "E.164"},
        "added_at": {"type": "string", "format": "date-time"},
        "added_by": {"type": "string"},
        "reason": {"type": "string"},
    }
)
DO_NOT_CALL_PUT: Final = _object({"reason": {"type": "string"}}, required=[])
CALLBACK_ATTEMPT: Final = _object(
    {
        "id": {"type": "string"},
        "seq": {"type": "integer"},
        "started_at": {"type": "string", "format": "date-time"},
        "agent_id": {"type": ["string", "null"]},
        "agent_tries": {"type": "integer"},
        "customer_dialled_at": _TIME_OR_NULL,
        "answered_at": _TIME_OR_NULL,
        "ended_at": _TIME_OR_NULL,
        "result": {
            "type": ["string", "null"],
            "enum": ["connected", "no_answer", "busy", "machine", "error", None],
        },
        "cause": {"type": "string"},
    }
)
CALLBACK_SOURCE: Final = _object(
    {
        "source": {"type": "string", "enum": ["call", "voicemail", "sms_reply", "agent_follow_up", "api"]},
        "at": {"type": "string", "format": "date-time"},
        "ref": {"type": "string"},
        "note": {"type": "string"},
        "merged": {"type": "boolean", "description": "a duplicate request merged into this callback"},
        "owner_agent": {"type": ["string", "null"]},
        "owner_until": _TIME_OR_NULL,
    }
)
CALLBACK_ATTEMPTS: Final = _object(
    {
        "callback_id": {"type": "string"},
        "attempts": {"type": "array", "items": {"$ref": "#/components/schemas/CallbackAttempt"}},
        "sources": {"type": "array", "items": {"$ref": "#/components/schemas/CallbackSource"}},
    }
)

CLAIM: Final = {
    "type": "object",
    "required": ["callback_id", "agent_id", "until"],
    "properties": {
        "callback_id": {"type": "string"},
        "agent_id": {"type": "string"},
        "until": {"type": "string", "format": "date-time"},
    },
    "additionalProperties": False,
}
WORK_ITEM: Final = {
    "type": "object",
    "required": ["callback", "due", "overdue", "reason", "sources", "attempts", "claim", "history"],
    "properties": {
        "callback": {"$ref": "#/components/schemas/Callback"},
        "due": {"type": "boolean"},
        "overdue": {"type": "boolean", "description": "its promised window has passed"},
        "reason": {"type": "string"},
        "sources": {"type": "array", "items": {"$ref": "#/components/schemas/CallbackSource"}},
        "attempts": {"type": "array", "items": {"$ref": "#/components/schemas/CallbackAttempt"}},
        "claim": {"oneOf": [{"$ref": "#/components/schemas/CallbackClaim"}, {"type": "null"}]},
        "history": {"type": "array", "items": {"$ref": "#/components/schemas/Call"}},
        "reason_kind": {
            "type": "string",
            "enum": ["missed_call", "kept_place", "chosen_time", "voicemail", "sms_reply", "follow_up"],
        },
        "timing": {
            "type": "object",
            "description": "early: seconds until the promise opens; on_time: seconds left; late: since it closed",
            "properties": {
                "status": {"type": "string", "enum": ["early", "on_time", "late"]},
                "seconds": {"type": "integer"},
            },
        },
        "owner": {
            "type": ["string", "null"],
            "description": "the agent a personal follow-up belongs to until its deadline",
        },
        "voicemails": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "id": {"type": "string"},
                    "recorded_at": {"type": "string", "format": "date-time"},
                    "duration_s": {"type": "number"},
                    "status": {"type": "string"},
                    "transcript": {"type": "string"},
                    "silent": {"type": ["boolean", "null"]},
                    "urgency": {"type": "string"},
                },
            },
        },
        "texts": {
            "type": "array",
            "description": "the SMS thread with the number, oldest first",
            "items": {
                "type": "object",
                "properties": {
                    "id": {"type": "string"},
                    "at": {"type": "string", "format": "date-time"},
                    "direction": {"type": "string", "enum": ["in", "out"]},
                    "text": {"type": "string"},
                    "status": {"type": "string"},
                },
            },
        },
    },
    "additionalProperties": False,
}


#: The named schemas of these routes and the worklist's (``schemas.COMPONENTS`` includes them).
DISPATCH_COMPONENTS: Final[dict[str, JsonObject]] = {
    "DoNotCall": DO_NOT_CALL,
    "DoNotCallPut": DO_NOT_CALL_PUT,
    "CallbackAttempt": CALLBACK_ATTEMPT,
    "CallbackSource": CALLBACK_SOURCE,
    "CallbackAttempts": CALLBACK_ATTEMPTS,
    "CallbackClaim": CLAIM,
    "WorkItem": WORK_ITEM,
    "CallbackDisposition": {
        "type": "object",
        "required": ["outcome"],
        "properties": {
            "outcome": {
                "type": "string",
                "enum": [
                    "resolved",
                    "wrong_number",
                    "follow_up",
                    "no_answer",
                    "answered_by_text",
                    "no_action",
                ],
            },
            "notes": {"type": "string"},
            "follow_up_at": {"type": "string", "format": "date-time"},
        },
        "additionalProperties": False,
    },
    "CallbackDisposed": {
        "type": "object",
        "required": ["callback", "follow_up"],
        "properties": {
            "callback": {"$ref": "#/components/schemas/Callback"},
            "follow_up": {"oneOf": [{"$ref": "#/components/schemas/Callback"}, {"type": "null"}]},
        },
        "additionalProperties": False,
    },
}


def _store(request: web.Request) -> DispatchStore:
    store = request.app.get(DISPATCH_STORE)
    if store is None:
        raise DependencyError("the callback dispatcher's store is not open in this process")
    return store


def entry_json(entry: DoNotCallEntry) -> JsonObject:
    return {
        "number": entry.number,
        "added_at": iso(entry.added_at),
        "added_by": entry.added_by,
        "reason": entry.reason,
    }


def attempt_json(attempt: Attempt) -> JsonObject:
    return {
        "id": attempt.id,
        "seq": attempt.seq,
        "started_at": iso(attempt.started_at),
        "agent_id": attempt.agent_id,
        "agent_tries": attempt.agent_tries,
        "customer_dialled_at": iso(attempt.customer_dialled_at),
        "answered_at": iso(attempt.answered_at),
        "ended_at": iso(attempt.ended_at),
        "result": attempt.result.value if attempt.result else None,
        "cause": attempt.cause,
    }


def source_json(note: SourceNote) -> JsonObject:
    return {
        "source": note.source.value,
        "at": iso(note.at),
        "ref": note.ref,
        "note": note.note,
        "merged": note.merged,
        "owner_agent": note.owner_agent,
        "owner_until": iso(note.owner_until),
    }


async def list_do_not_call(request: web.Request) -> web.Response:
    entries = await _store(request).blocked_numbers()
    return web.json_response({"items": [entry_json(e) for e in entries], "next": None})


async def put_do_not_call(request: web.Request) -> web.Response:
    """Add a number (idempotent: a repeat answers the first entry). :raises InvalidPhoneNumberError:"""
    number = callback_service(request).check_number(request.match_info["number"])
    body = await read_json_object(request) if request.can_read_body else {}
    reject_unknown_fields(body, _BLOCK_FIELDS)
    reason = text_field(body, "reason", default="")[:500]
    entry = await _store(request).block_number(
        number, by=principal_of(request).actor, reason=reason, at=datetime.now(UTC)
    )
    return web.json_response(entry_json(entry))


async def delete_do_not_call(request: web.Request) -> web.Response:
    number = callback_service(request).check_number(request.match_info["number"])
    if not await _store(request).unblock_number(number):
        raise NotFoundError(f"{number} is not on the do-not-call list")
    return web.Response(status=204)


async def callback_attempts(request: web.Request) -> web.Response:
    store = _store(request)
    callback_id = request.match_info["callback_id"]
    await store.get(callback_id)  # 404 for an unknown id
    attempts = await store.attempts(callback_id)
    sources = await store.sources(callback_id)
    return web.json_response(
        {
            "callback_id": callback_id,
            "attempts": [attempt_json(a) for a in attempts],
            "sources": [source_json(s) for s in sources],
        }
    )
