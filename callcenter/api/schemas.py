"""JSON Schemas of the API's bodies and the serialisers that produce them, side by side (edge).

Each serialiser sits next to the schema it must satisfy; the service tests validate real responses
against these schemas, so the two cannot drift apart unnoticed.
"""

from __future__ import annotations

from typing import Final

from callcenter.agi.outcome import MAX_VALUE_CHARS, READ_VARIABLES
from callcenter.api.callbacks import CALLBACK_COMPONENTS
from callcenter.api.capacity_schemas import CAPACITY_COMPONENTS
from callcenter.api.dispatch import DISPATCH_COMPONENTS
from callcenter.api.jsonio import iso
from callcenter.api.routing import JsonObject
from callcenter.api.sms_schemas import SMS_COMPONENTS
from callcenter.api.stats import STATS_COMPONENTS
from callcenter.api.voicemail_schemas import VOICEMAIL_COMPONENTS
from callcenter.auth.tokens import Principal
from callcenter.model.records import (
    ApiToken,
    AuditEntry,
    CallEvent,
    CallRecord,
    ExitAction,
    QueueRecord,
    queue_settings,
)
from callcenter.model.vocabulary import AgentState, CallOutcome, EntryPoint, Role
from callcenter.queue.service import AgentStatus, CallDetail, LiveQueue
from callcenter.queue.state import AgentLive, WaitingCaller

_ROLES: Final = [role.value for role in Role]
_OUTCOMES: Final = [outcome.value for outcome in CallOutcome]
_AGENT_STATES: Final = [state.value for state in AgentState]
_ACTIONS: Final = [action.value for action in ExitAction]
_TIME: Final = {"type": "string", "format": "date-time"}
_TIME_OR_NULL: Final = {"type": ["string", "null"], "format": "date-time"}
_TEXT_OR_NULL: Final = {"type": ["string", "null"]}
_SECONDS_OR_NULL: Final = {"type": ["number", "null"], "minimum": 0}
_INT_OR_NULL: Final = {"type": ["integer", "null"]}
_TEXTS: Final = {"type": "array", "items": {"type": "string"}}
_DATE: Final = {"type": "string", "format": "date"}


def _object(properties: JsonObject, *, required: list[str] | None = None, closed: bool = True) -> JsonObject:
    schema: JsonObject = {
        "type": "object",
        "required": list(properties) if required is None else required,
        "properties": properties,
    }
    if closed:
        schema["additionalProperties"] = False
    return schema


ERROR: Final = _object(
    {
        "error": {"type": "string", "description": "stable machine-readable code, e.g. not_found"},
        "message": {"type": "string", "description": "what went wrong, for people"},
    }
)

HEALTH: Final = _object(
    {
        "status": {"enum": ["ok", "degraded", "fail"]},
        "checks": {
            "type": "object",
            "required": ["db", "redis", "ari"],
            "additionalProperties": {"enum": ["ok", "fail", "disabled"]},
        },
    }
)

PRINCIPAL: Final = _object(
    {
        "token_id": {"type": "string"},
        "role": {"enum": _ROLES},
        "agent_id": _TEXT_OR_NULL,
        "label": {"type": "string"},
    }
)

TOKEN: Final = _object(
    {
        "id": {"type": "string"},
        "role": {"enum": _ROLES},
        "agent_id": _TEXT_OR_NULL,
        "label": {"type": "string"},
        "created_at": _TIME,
        "expires_at": _TIME_OR_NULL,
        "revoked_at": _TIME_OR_NULL,
        "last_used_at": _TIME_OR_NULL,
    }
)

TOKEN_CREATE: Final = _object(
    {
        "role": {"enum": _ROLES},
        "agent_id": {**_TEXT_OR_NULL, "description": "required for agent tokens, refused for others"},
        "label": {"type": "string", "maxLength": 200},
        "expires_at": {**_TIME_OR_NULL, "description": "ISO 8601 with offset; null never expires"},
    },
    required=["role"],
)

TOKEN_CREATED: Final = _object(
    {
        "token": {"$ref": "#/components/schemas/Token"},
        "secret": {
            "type": "string",
            "pattern": "^cc_[A-Za-z0-9_-]{43}$",
            "description": "the bearer secret; shown this once and never again",
        },
    }
)

AUDIT_ENTRY: Final = _object(
    {
        "id": {"type": "integer"},
        "at": _TIME,
        "actor": {"type": "string"},
        "role": {"enum": [*_ROLES, None]},
        "action": {"type": "string", "description": "token.create, or METHOD /path-template"},
        "target": {"type": "string"},
        "detail": {"type": "object"},
    }
)

OPENAPI_DOCUMENT: Final[JsonObject] = {"type": "object", "description": "this document (OpenAPI 3.1)"}

_CALL_PROPERTIES: Final[JsonObject] = {
    "id": {"type": "string", "description": "our call id: the caller's Asterisk channel id"},
    "channel_id": {"type": "string"},
    "linkedid": {"type": "string"},
    "entry_point": {"enum": [e.value for e in EntryPoint]},
    "caller": {"type": "string", "description": "E.164 where it parses, the raw caller id otherwise"},
    "caller_name": {"type": "string"},
    "dialled": {"type": "string"},
    "queue": _TEXT_OR_NULL,
    "arrived_at": _TIME,
    "queued_at": _TIME_OR_NULL,
    "answered_at": _TIME_OR_NULL,
    "ended_at": _TIME_OR_NULL,
    "wait_s": _SECONDS_OR_NULL,
    "talk_s": _SECONDS_OR_NULL,
    "position": {**_INT_OR_NULL, "description": "place in the queue when the caller left it (1 is next)"},
    "agent_id": _TEXT_OR_NULL,
    "outcome": {"enum": [*_OUTCOMES, None], "description": "null while the call is live"},
    "missed": {"type": ["boolean", "null"], "description": "any outcome but answered; null while live"},
    "reconciled": {"type": "boolean", "description": "decided after a reconnect, from what was missing"},
    "closed_at": {**_TIME_OR_NULL, "description": "when a missed caller was reached later"},
}

CALL: Final = _object(_CALL_PROPERTIES)

CALL_EVENT: Final = _object(
    {
        "id": _INT_OR_NULL,
        "at": _TIME,
        "kind": {"type": "string", "description": "arrived, queued, agent_offered, answered, ended, ..."},
        "detail": {"type": "object"},
    }
)

CALL_DETAIL: Final = _object(
    {**_CALL_PROPERTIES, "events": {"type": "array", "items": {"$ref": "#/components/schemas/CallEvent"}}}
)

AGI_CALL_OUTCOME: Final = _object(
    {
        "variables": {
            "type": "object",
            "description": "channel variables as the call-outcome hook read them; unset ones may be "
            "left out or empty; UNIQUEID or LINKEDID is required",
            "properties": {name: {"type": "string", "maxLength": MAX_VALUE_CHARS} for name in READ_VARIABLES},
            "additionalProperties": False,
        }
    }
)

AGENT: Final = _object(
    {
        "id": {"type": "string"},
        "name": {"type": "string"},
        "endpoint": {"type": "string", "description": "what we ring, e.g. PJSIP/1001"},
        "queues": _TEXTS,
        "state": {"enum": _AGENT_STATES},
        "state_since": _TIME_OR_NULL,
        "call_id": {**_TEXT_OR_NULL, "description": "the call the agent rings for or talks to"},
        "pending": {
            "enum": [AgentState.PAUSED.value, AgentState.LOGGED_OUT.value, None],
            "description": "a pause or log-out asked for during a call, applied when it ends",
        },
        "misses": {"type": "integer", "minimum": 0, "description": "offers in a row not answered"},
    }
)

AGENT_CREATE: Final = _object(
    {
        "id": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$"},
        "name": {"type": "string", "minLength": 1, "maxLength": 200},
        "endpoint": {"type": "string", "description": "TECHNOLOGY/resource, e.g. PJSIP/1001"},
        "queues": _TEXTS,
    },
    required=["id", "name", "endpoint"],
)

AGENT_LOGIN: Final = _object(
    {"queues": {**_TEXTS, "description": "replace the agent's queues first (the body may be omitted)"}},
    required=[],
)

AGENT_PAUSE: Final = _object(
    {"reason": {"type": "string", "maxLength": 200, "description": "the body may be omitted"}}, required=[]
)

AGENT_QUEUES: Final = _object({"queues": _TEXTS})

_WEEKLY: Final[JsonObject] = {
    "type": ["object", "null"],
    "description": "weekday (mon..sun) -> open intervals HH:MM-HH:MM in local time; null is always open",
    "additionalProperties": {
        "type": "array",
        "items": {"type": "string", "pattern": "^\\d{1,2}:\\d{2}-\\d{1,2}:\\d{2}$"},
    },
}

_QUEUE_SETTINGS: Final[JsonObject] = {
    "title": {"type": "string", "maxLength": 200},
    "max_wait_s": {"type": "integer", "minimum": 1},
    "join_empty": {"type": "boolean", "description": "callers may wait while nobody is logged in"},
    "service_level_s": {"type": "integer", "minimum": 0},
    "short_abandon_s": {"type": "integer", "minimum": 0},
    "max_callers": {**_INT_OR_NULL, "minimum": 1},
    "business_number": {**_TEXT_OR_NULL, "description": "E.164"},
    "time_zone": {"type": "string", "description": "IANA name, e.g. Europe/Paris"},
    "business_hours": _WEEKLY,
    "holidays": {"type": "array", "items": _DATE, "description": "local dates closed all day"},
    "after_hours_action": {"enum": _ACTIONS},
    "timeout_action": {"enum": _ACTIONS},
    "no_agents_action": {"enum": _ACTIONS, "description": "also when the queue is full"},
    "ring_timeout_s": {"type": "integer", "minimum": 1},
    "wrap_up_s": {"type": "integer", "minimum": 0},
    "max_misses_before_pause": {"type": "integer", "minimum": 0, "description": "0 never pauses"},
}

QUEUE: Final = _object(
    {
        "name": {"type": "string"},
        **_QUEUE_SETTINGS,
        "open_now": {"type": "boolean", "description": "within business hours at the time of the answer"},
    }
)

QUEUE_PUT: Final = _object(dict(_QUEUE_SETTINGS), required=[])

WAITING_CALLER: Final = _object(
    {
        "call_id": {"type": "string"},
        "caller": {"type": "string"},
        "caller_name": {"type": "string"},
        "enqueued_at": _TIME,
        "wait_s": {"type": "number", "minimum": 0},
        "position": {"type": "integer", "minimum": 1},
        "ringing_agent": _TEXT_OR_NULL,
    }
)

LIVE_AGENT: Final = _object(
    {
        "agent_id": {"type": "string"},
        "state": {"enum": _AGENT_STATES},
        "since": _TIME,
        "call_id": _TEXT_OR_NULL,
        "pending": {"enum": [AgentState.PAUSED.value, AgentState.LOGGED_OUT.value, None]},
    }
)

QUEUE_LIVE: Final = _object(
    {
        "queue": {"type": "string"},
        "at": _TIME,
        "open_now": {"type": "boolean"},
        "waiting": {"type": "array", "items": {"$ref": "#/components/schemas/WaitingCaller"}},
        "agents": {"type": "array", "items": {"$ref": "#/components/schemas/LiveAgent"}},
        "agents_by_state": {
            "type": "object",
            "required": _AGENT_STATES,
            "properties": {state: {"type": "integer", "minimum": 0} for state in _AGENT_STATES},
            "additionalProperties": False,
        },
    }
)

#: Named schemas; routes refer to them by name and ``/api/v1/openapi.json`` publishes them all.
COMPONENTS: Final[dict[str, JsonObject]] = {
    "Error": ERROR,
    "Health": HEALTH,
    "Principal": PRINCIPAL,
    "Token": TOKEN,
    "TokenCreate": TOKEN_CREATE,
    "TokenCreated": TOKEN_CREATED,
    "AuditEntry": AUDIT_ENTRY,
    "OpenApiDocument": OPENAPI_DOCUMENT,
    "Call": CALL,
    "CallEvent": CALL_EVENT,
    "CallDetail": CALL_DETAIL,
    "AgiCallOutcome": AGI_CALL_OUTCOME,
    "Agent": AGENT,
    "AgentCreate": AGENT_CREATE,
    "AgentLogin": AGENT_LOGIN,
    "AgentPause": AGENT_PAUSE,
    "AgentQueues": AGENT_QUEUES,
    "Queue": QUEUE,
    "QueuePut": QUEUE_PUT,
    "WaitingCaller": WAITING_CALLER,
    "LiveAgent": LIVE_AGENT,
    "QueueLive": QUEUE_LIVE,
    **CAPACITY_COMPONENTS,
    **CALLBACK_COMPONENTS,
    **SMS_COMPONENTS,
    **VOICEMAIL_COMPONENTS,
    **STATS_COMPONENTS,
    **DISPATCH_COMPONENTS,
}


def principal_json(principal: Principal) -> JsonObject:
    return {
        "token_id": principal.token_id,
        "role": principal.role.value,
        "agent_id": principal.agent_id,
        "label": principal.label,
    }


def token_json(token: ApiToken) -> JsonObject:
    """A token as the API shows it: never its secret, nor the secret's hash."""
    return {
        "id": token.id,
        "role": token.role.value,
        "agent_id": token.agent_id,
        "label": token.label,
        "created_at": iso(token.created_at),
        "expires_at": iso(token.expires_at),
        "revoked_at": iso(token.revoked_at),
        "last_used_at": iso(token.last_used_at),
    }


def audit_json(entry: AuditEntry) -> JsonObject:
    return {
        "id": entry.id,
        "at": iso(entry.at),
        "actor": entry.actor,
        "role": entry.role.value if entry.role is not None else None,
        "action": entry.action,
        "target": entry.target,
        "detail": entry.detail,
    }


def call_json(call: CallRecord) -> JsonObject:
    return {
        "id": call.id,
        "channel_id": call.channel_id,
        "linkedid": call.linkedid,
        "entry_point": call.entry_point.value,
        "caller": call.caller,
        "caller_name": call.caller_name,
        "dialled": call.dialled,
        "queue": call.queue,
        "arrived_at": iso(call.arrived_at),
        "queued_at": iso(call.queued_at),
        "answered_at": iso(call.answered_at),
        "ended_at": iso(call.ended_at),
        "wait_s": call.wait_s,
        "talk_s": call.talk_s,
        "position": call.position,
        "agent_id": call.agent_id,
        "outcome": call.outcome.value if call.outcome is not None else None,
        "missed": call.outcome.is_missed if call.outcome is not None else None,
        "reconciled": call.reconciled,
        "closed_at": iso(call.closed_at),
    }


def call_event_json(event: CallEvent) -> JsonObject:
    return {"id": event.id, "at": iso(event.at), "kind": event.kind, "detail": event.detail}


def call_detail_json(detail: CallDetail) -> JsonObject:
    return {**call_json(detail.call), "events": [call_event_json(e) for e in detail.events]}


def agent_json(status: AgentStatus) -> JsonObject:
    record, live = status.record, status.live
    return {
        "id": record.id,
        "name": record.name,
        "endpoint": record.endpoint,
        "queues": list(record.queues),
        "state": status.state.value,
        "state_since": iso(status.since),
        "call_id": live.call_id if live is not None else None,
        "pending": live.pending.value if live is not None and live.pending is not None else None,
        "misses": live.misses if live is not None else 0,
    }


def queue_json(queue: QueueRecord, *, open_now: bool) -> JsonObject:
    return {**queue_settings(queue), "open_now": open_now}


def _waiting_json(caller: WaitingCaller) -> JsonObject:
    return {
        "call_id": caller.call_id,
        "caller": caller.caller.display,
        "caller_name": caller.caller_name,
        "enqueued_at": iso(caller.enqueued_at),
        "wait_s": caller.wait_s,
        "position": caller.position,
        "ringing_agent": caller.ringing_agent,
    }


def _live_agent_json(agent: AgentLive) -> JsonObject:
    return {
        "agent_id": agent.agent_id,
        "state": agent.state.value,
        "since": iso(agent.since),
        "call_id": agent.call_id,
        "pending": agent.pending.value if agent.pending is not None else None,
    }


def queue_live_json(live: LiveQueue) -> JsonObject:
    view = live.view
    return {
        "queue": view.queue,
        "at": iso(live.at),
        "open_now": live.open_now,
        "waiting": [_waiting_json(w) for w in view.waiting],
        "agents": [_live_agent_json(a) for a in view.agents],
        "agents_by_state": {state.value: len(view.agents_in(state)) for state in AgentState},
    }
