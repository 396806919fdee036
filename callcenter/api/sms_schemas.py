"""JSON Schemas and serialisers of the SMS and consent routes (edge).

Listed in ``schemas.COMPONENTS`` through :data:`SMS_COMPONENTS`; each serialiser sits next to the
schema it must satisfy.
"""

from __future__ import annotations

from typing import Final

from callcenter.api.jsonio import iso
from callcenter.api.routing import JsonObject
from callcenter.sms.consent import ConsentAction, ConsentRecord, ConsentSource, ConsentStatus
from callcenter.sms.records import (
    CallbackRequest,
    CallbackRequestState,
    Contact,
    Erasure,
    MessageStatus,
    SmsMessage,
)
from callcenter.sms.rules import MessageKind
from callcenter.sms.service import ConsentView, InboundResult

_TIME: Final = {"type": "string", "format": "date-time"}
_TIME_OR_NULL: Final = {"type": ["string", "null"], "format": "date-time"}
_TEXT: Final = {"type": "string"}
_TEXT_OR_NULL: Final = {"type": ["string", "null"]}
_STATUS: Final = {"enum": [s.value for s in ConsentStatus]}


def _object(properties: JsonObject, *, required: list[str] | None = None) -> JsonObject:
    return {
        "type": "object",
        "required": list(properties) if required is None else required,
        "properties": properties,
        "additionalProperties": False,
    }


SMS_MESSAGE: Final = _object(
    {
        "id": _TEXT,
        "direction": {"enum": ["inbound", "outbound"]},
        "number": {**_TEXT, "description": "E.164; erased:<hash> after an erasure"},
        "kind": {"enum": [*(k.value for k in MessageKind), None]},
        "text": _TEXT,
        "status": {"enum": [s.value for s in MessageStatus]},
        "intent": {**_TEXT, "description": "what an inbound text asked for (opt_out, call_me, other...)"},
        "needs_person": {"type": "boolean", "description": "an inbound text waiting for a person"},
        "created_at": _TIME,
        "due_at": _TIME_OR_NULL,
        "sent_at": _TIME_OR_NULL,
        "attempts": {"type": "integer", "minimum": 0},
        "provider": _TEXT,
        "provider_id": _TEXT,
        "error": _TEXT,
        "call_id": _TEXT_OR_NULL,
        "segments": {"type": "integer", "minimum": 1},
        "encoding": {"enum": ["gsm7", "ucs2"]},
        "actor": _TEXT,
    }
)

SMS_SEND: Final = _object(
    {
        "to": {**_TEXT, "description": "the recipient, any format that parses"},
        "text": {**_TEXT, "minLength": 1, "maxLength": 1600},
        "key": {**_TEXT, "description": "idempotency key: sending twice with one key queues one text"},
    },
    required=["to", "text"],
)

SMS_RESOLVE: Final = _object(
    {
        "action": {
            "enum": ["resend", "close"],
            "description": "resend: queue it again (checks apply again); close: mark it failed, send nothing",
        }
    },
    required=["action"],
)

SMS_CONSOLE_INBOUND: Final = _object(
    {"from": _TEXT, "to": _TEXT, "text": _TEXT, "id": {**_TEXT, "description": "optional message id"}},
    required=["from", "text"],
)

CALLBACK_REQUEST: Final = _object(
    {
        "id": _TEXT,
        "number": _TEXT,
        "message_id": _TEXT,
        "state": {"enum": [s.value for s in CallbackRequestState]},
        "requested_at": _TIME,
        "cancelled_at": _TIME_OR_NULL,
    }
)

SMS_INBOUND_RESULT: Final = _object(
    {
        "message": {"$ref": "#/components/schemas/SmsMessage"},
        "intent": _TEXT,
        "replies": {"type": "array", "items": {"$ref": "#/components/schemas/SmsMessage"}},
        "callback": {"oneOf": [{"$ref": "#/components/schemas/CallbackRequest"}, {"type": "null"}]},
    }
)

CONSENT_RECORD: Final = _object(
    {
        "seq": {"type": "integer", "minimum": 1},
        "program": _TEXT,
        "action": {"enum": [a.value for a in ConsentAction]},
        "source": {"enum": [s.value for s in ConsentSource]},
        "actor": _TEXT,
        "at": _TIME,
        "evidence_ref": _TEXT,
        "evidence_digest": _TEXT,
        "prev_hash": _TEXT,
        "hash": _TEXT,
    }
)

CONSENT: Final = _object(
    {
        "number": _TEXT,
        "status": _STATUS,
        "programs": {"type": "object", "additionalProperties": _STATUS},
        "chain_ok": {"type": "boolean", "description": "the history's hash chain is unbroken"},
        "history": {"type": "array", "items": {"$ref": "#/components/schemas/ConsentRecord"}},
    }
)

CONSENT_CREATE: Final = _object(
    {
        "action": {"enum": [a.value for a in ConsentAction]},
        "program": {**_TEXT, "description": "a program name, or * for every program"},
        "source": {"enum": [s.value for s in ConsentSource if s is not ConsentSource.SMS_KEYWORD]},
        "evidence": _TEXT,
    },
    required=["action", "source"],
)

CONTACT: Final = _object(
    {
        "number": _TEXT,
        "name": _TEXT,
        "language": _TEXT,
        "time_zone": _TEXT,
        "region": _TEXT,
        "notes": _TEXT,
        "first_contact_at": _TIME_OR_NULL,
        "last_contact_at": _TIME_OR_NULL,
    }
)

CONTACT_PUT: Final = _object(
    {"name": _TEXT, "language": _TEXT, "time_zone": _TEXT, "region": _TEXT, "notes": _TEXT}, required=[]
)

ERASURE_CREATE: Final = _object({"number": _TEXT})

ERASURE: Final = _object(
    {
        "number": _TEXT,
        "pseudonym": _TEXT,
        "messages": {"type": "integer"},
        "contacts": {"type": "integer"},
        "consent_records": {"type": "integer"},
        "calls": {"type": "integer", "description": "call records pseudonymised (they still count)"},
        "callback_requests": {"type": "integer"},
        "missed_calls": {"type": "integer", "description": "missed-call statistics rows pseudonymised"},
        "voicemails": {"type": "integer", "description": "voicemail records pseudonymised, preview emptied"},
        "transcripts": {"type": "integer", "description": "voicemail transcripts deleted"},
        "audio_files": {
            "type": "integer",
            "description": "voicemail recordings deleted from the media folder",
        },
        "previews": {"type": "integer", "description": "whisper previews deleted from the shared folder"},
        "files_not_deleted": {
            "type": "array",
            "items": _TEXT,
            "description": "files that could not be deleted (logged; delete them by hand)",
        },
        "callbacks": {"type": "integer", "description": "callbacks pseudonymised"},
        "callbacks_cancelled": {
            "type": "integer",
            "description": "open callbacks cancelled (reason erased; never dialled afterwards)",
        },
        "callbacks_connected": {
            "type": "integer",
            "description": "callbacks on the line at the time: the call goes on; never dialled again",
        },
        "callback_attempts": {"type": "integer", "description": "dial attempts pseudonymised"},
        "callback_notes": {"type": "integer", "description": "callback notes and people's reasons emptied"},
        "audit_entries": {"type": "integer", "description": "audit log targets renamed to the pseudonym"},
        "do_not_call_kept": {
            "type": "boolean",
            "description": "the number stays on the do-not-call list (a legal block, kept readable)",
        },
    }
)

SMS_COMPONENTS: Final[dict[str, JsonObject]] = {
    "SmsMessage": SMS_MESSAGE,
    "SmsSend": SMS_SEND,
    "SmsResolve": SMS_RESOLVE,
    "SmsConsoleInbound": SMS_CONSOLE_INBOUND,
    "SmsInboundResult": SMS_INBOUND_RESULT,
    "CallbackRequest": CALLBACK_REQUEST,
    "ConsentRecord": CONSENT_RECORD,
    "Consent": CONSENT,
    "ConsentCreate": CONSENT_CREATE,
    "Contact": CONTACT,
    "ContactPut": CONTACT_PUT,
    "ErasureCreate": ERASURE_CREATE,
    "Erasure": ERASURE,
}


def message_json(m: SmsMessage) -> JsonObject:
    return {
        "id": m.id,
        "direction": m.direction.value,
        "number": m.number,
        "kind": m.kind.value if m.kind is not None else None,
        "text": m.text,
        "status": m.status.value,
        "intent": m.intent,
        "needs_person": m.needs_person,
        "created_at": iso(m.created_at),
        "due_at": iso(m.due_at),
        "sent_at": iso(m.sent_at),
        "attempts": m.attempts,
        "provider": m.provider,
        "provider_id": m.provider_id,
        "error": m.error,
        "call_id": m.call_id,
        "segments": m.segments,
        "encoding": m.encoding,
        "actor": m.actor,
    }


def callback_request_json(r: CallbackRequest) -> JsonObject:
    return {
        "id": r.id,
        "number": r.number,
        "message_id": r.message_id,
        "state": r.state.value,
        "requested_at": iso(r.requested_at),
        "cancelled_at": iso(r.cancelled_at),
    }


def inbound_result_json(result: InboundResult) -> JsonObject:
    return {
        "message": message_json(result.message),
        "intent": result.intent.value,
        "replies": [message_json(m) for m in result.replies],
        "callback": callback_request_json(result.callback) if result.callback is not None else None,
    }


def consent_record_json(r: ConsentRecord) -> JsonObject:
    return {
        "seq": r.seq,
        "program": r.program,
        "action": r.action.value,
        "source": r.source.value,
        "actor": r.actor,
        "at": iso(r.at),
        "evidence_ref": r.evidence_ref,
        "evidence_digest": r.evidence_digest,
        "prev_hash": r.prev_hash,
        "hash": r.hash,
    }


def consent_json(view: ConsentView, *, chain_ok: bool) -> JsonObject:
    return {
        "number": view.number,
        "status": view.status.value,
        "programs": {p: s.value for p, s in view.programs.items()},
        "chain_ok": chain_ok,
        "history": [consent_record_json(r) for r in view.history],
    }


def contact_json(c: Contact) -> JsonObject:
    return {
        "number": c.number,
        "name": c.name,
        "language": c.language,
        "time_zone": c.time_zone,
        "region": c.region,
        "notes": c.notes,
        "first_contact_at": iso(c.first_contact_at),
        "last_contact_at": iso(c.last_contact_at),
    }


def erasure_json(e: Erasure) -> JsonObject:
    return {
        "number": e.number,
        "pseudonym": e.pseudonym,
        "messages": e.messages,
        "contacts": e.contacts,
        "consent_records": e.consent_records,
        "calls": e.calls,
        "callback_requests": e.callback_requests,
        "missed_calls": e.missed_calls,
        "voicemails": e.voicemails,
        "transcripts": e.transcripts,
        "audio_files": e.audio_files,
        "previews": e.previews,
        "files_not_deleted": list(e.files_not_deleted),
        "callbacks": e.callbacks,
        "callbacks_cancelled": e.callbacks_cancelled,
        "callbacks_connected": e.callbacks_connected,
        "callback_attempts": e.callback_attempts,
        "callback_notes": e.callback_notes,
        "audit_entries": e.audit_entries,
        "do_not_call_kept": e.do_not_call_kept,
    }
