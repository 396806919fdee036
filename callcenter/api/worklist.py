"""Agent worklist routes: my callbacks, claiming one and giving it back, starting it, its disposition (edge).

``GET /worklist[?agent=ID]``, ``POST /callbacks/{callback_id}/claim``,
``DELETE /callbacks/{callback_id}/claim``, ``POST /callbacks/{callback_id}/start`` and
``POST /callbacks/{callback_id}/disposition``. An agent token acts for its own agent; a supervisor names
the agent with ``?agent=``. :data:`WORKLIST` is the app key the composition root sets.
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

from callcenter.api.auth import principal_of
from callcenter.api.callbacks import callback_json
from callcenter.api.dispatch import attempt_json, source_json
from callcenter.api.jsonio import (
    iso,
    optional_time_field,
    read_json_object,
    reject_unknown_fields,
    text_field,
)
from callcenter.api.routing import JsonObject
from callcenter.api.schemas import call_json
from callcenter.callbacks.dispatch_ports import Claim
from callcenter.callbacks.dispatcher import CallbackDispatcher
from callcenter.callbacks.worklist import Disposition, TextLine, VoicemailNote, WorkItem, Worklist
from callcenter.errors import DependencyError, PermissionDeniedError, ValidationError
from callcenter.model.vocabulary import Role

#: The worklist service of this process.
WORKLIST: Final = web.AppKey("worklist", Worklist)
#: The callback dispatcher of this process (``start`` needs the one holding the lease).
DISPATCHER: Final = web.AppKey("callback_dispatcher", CallbackDispatcher)

_DISPOSE_FIELDS: Final = frozenset({"outcome", "notes", "follow_up_at"})


def _worklist(request: web.Request) -> Worklist:
    worklist = request.app.get(WORKLIST)
    if worklist is None:
        raise DependencyError("the worklist is not served by this process")
    return worklist


def _agent(request: web.Request) -> str:
    """The agent acted for: the token's own agent, or ``?agent=`` for supervisors."""
    principal = principal_of(request)
    named = request.query.get("agent")
    if principal.role is Role.AGENT:
        if principal.agent_id is None:
            raise PermissionDeniedError("this agent token is not bound to an agent")
        if named is not None and named != principal.agent_id:
            raise PermissionDeniedError("an agent sees only their own worklist")
        return principal.agent_id
    if not named:
        raise ValidationError("name the agent with ?agent=")
    return named


def claim_json(claim: Claim) -> JsonObject:
    return {"callback_id": claim.callback_id, "agent_id": claim.agent_id, "until": iso(claim.until)}


def voicemail_note_json(note: VoicemailNote) -> JsonObject:
    return {
        "id": note.id,
        "recorded_at": iso(note.recorded_at),
        "duration_s": round(note.duration_s, 1),
        "status": note.status,
        "transcript": note.transcript,
        "silent": note.silent,
        "urgency": note.urgency,
    }


def text_line_json(line: TextLine) -> JsonObject:
    return {
        "id": line.id,
        "at": iso(line.at),
        "direction": line.direction,
        "text": line.text,
        "status": line.status,
    }


def item_json(item: WorkItem) -> JsonObject:
    """One worklist item: ``reason_kind`` says why in one word, ``timing`` where now stands against
    the promise (``early``: seconds until it opens, ``on_time``: seconds left, ``late``: seconds since)."""
    return {
        "callback": callback_json(item.callback),
        "due": item.due,
        "overdue": item.overdue,
        "reason": item.reason,
        "reason_kind": item.kind.value,
        "timing": {"status": item.timing.status.value, "seconds": round(item.timing.seconds)},
        "owner": item.owner,
        "sources": [source_json(s) for s in item.sources],
        "attempts": [attempt_json(a) for a in item.attempts],
        "claim": claim_json(item.claim) if item.claim is not None else None,
        "history": [call_json(c) for c in item.history],
        "voicemails": [voicemail_note_json(v) for v in item.voicemails],
        "texts": [text_line_json(t) for t in item.texts],
    }


async def get_worklist(request: web.Request) -> web.Response:
    items = await _worklist(request).items(_agent(request))
    return web.json_response({"items": [item_json(i) for i in items], "next": None})


async def claim(request: web.Request) -> web.Response:
    held = await _worklist(request).claim(request.match_info["callback_id"], _agent(request))
    return web.json_response(claim_json(held))


async def start(request: web.Request) -> web.Response:
    """Start a due callback now: the agent is rung, then the customer (agent-first)."""
    dispatcher = request.app.get(DISPATCHER)
    if dispatcher is None:
        raise DependencyError("the callback dispatcher is not running in this process")
    agent = _agent(request)
    callback_id = request.match_info["callback_id"]
    await _worklist(request).claim(callback_id, agent)  # it is ours while it is dialled
    attempt = await dispatcher.start_now(callback_id, agent)
    return web.json_response(attempt_json(attempt), status=202)


async def dispose(request: web.Request) -> web.Response:
    body = await read_json_object(request)
    reject_unknown_fields(body, _DISPOSE_FIELDS)
    raw = text_field(body, "outcome")
    try:
        disposition = Disposition(raw)
    except ValueError:
        choices = ", ".join(d.value for d in Disposition)
        raise ValidationError(f"outcome must be one of {choices}, not {raw!r}") from None
    done = await _worklist(request).dispose(
        request.match_info["callback_id"],
        _agent(request),
        disposition,
        notes=text_field(body, "notes", default=""),
        follow_up_at=optional_time_field(body, "follow_up_at"),
    )
    return web.json_response(
        {
            "callback": callback_json(done.callback),
            "follow_up": callback_json(done.follow_up) if done.follow_up is not None else None,
        }
    )


async def release(request: web.Request) -> web.Response:
    await _worklist(request).release(request.match_info["callback_id"], _agent(request))
    return web.Response(status=204)
