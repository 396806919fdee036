"""Domain events as frozen values with a stable JSON form for the bus (pure).

Every event carries ``event_id`` (stable for the fact it reports, so consumers can de-duplicate: facts
arrive at least once) and ``occurred_at``. The wire form is one JSON object::

    {"type": "call_ended", "v": 1, "event_id": "...", "occurred_at": "2026-11-23T18:47:33.542000+00:00", ...}

Adding a field with a default is compatible; renaming or removing one needs a new ``v``.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

from callcenter.errors import ValidationError
from callcenter.model.vocabulary import (
    ActorKind,
    AgentState,
    AttemptResult,
    CallbackKind,
    CallbackState,
    CallOutcome,
    EntryPoint,
)

WIRE_VERSION = 1


@dataclass(frozen=True, kw_only=True, slots=True)
class DomainEvent:
    """Base of every domain event."""

    event_type: ClassVar[str] = ""

    event_id: str
    occurred_at: datetime


@dataclass(frozen=True, kw_only=True, slots=True)
class CallEnded(DomainEvent):
    """A caller hung up and the call's one outcome is decided.

    ``event_id`` is the call id, so a duplicate decision for the same call is recognisable anywhere.
    """

    event_type: ClassVar[str] = "call_ended"

    call_id: str
    outcome: CallOutcome
    entry_point: EntryPoint
    queue: str | None = None
    caller: str = ""
    wait_s: float = 0.0
    talk_s: float = 0.0
    position: int | None = None
    agent_id: str | None = None
    reconciled: bool = False


@dataclass(frozen=True, kw_only=True, slots=True)
class AgentStateChanged(DomainEvent):
    """An agent moved from one state to another, with who or what caused it."""

    event_type: ClassVar[str] = "agent_state_changed"

    agent_id: str
    state: AgentState
    previous: AgentState
    reason: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class AgentQueuesChanged(DomainEvent):
    """An agent's queue membership was replaced (``queues`` sorted), with who asked for it."""

    event_type: ClassVar[str] = "agent_queues_changed"

    agent_id: str
    queues: tuple[str, ...]
    reason: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class VoicemailRecorded(DomainEvent):
    """A caller's message is stored and waits for transcription (the transcription worker's job).

    ``revision`` counts transcription requests of this voicemail (1 for the recording itself); the
    worker handles the newest only. ``event_id`` is ``voicemail:<id>:<revision>``.
    """

    event_type: ClassVar[str] = "voicemail_recorded"

    voicemail_id: str
    call_id: str | None = None
    queue: str | None = None
    caller: str = ""
    duration_s: float = 0.0
    revision: int = 1


@dataclass(frozen=True, kw_only=True, slots=True)
class VoicemailTranscribed(DomainEvent):
    """A voicemail's words are stored, with its triage (``event_id`` ``voicemail-transcribed:<id>:<revision>``)."""

    event_type: ClassVar[str] = "voicemail_transcribed"

    voicemail_id: str
    call_id: str | None = None
    queue: str | None = None
    caller: str = ""
    language: str = ""
    preview: str = ""
    intents: tuple[str, ...] = ()
    urgency: str = "normal"
    revision: int = 1


@dataclass(frozen=True, kw_only=True, slots=True)
class VoicemailSilent(DomainEvent):
    """A voicemail holds no speech: no transcript is made, and it stays a missed call to follow up."""

    event_type: ClassVar[str] = "voicemail_silent"

    voicemail_id: str
    call_id: str | None = None
    queue: str | None = None
    caller: str = ""
    reason: str = ""
    revision: int = 1


@dataclass(frozen=True, kw_only=True, slots=True)
class CallQueued(DomainEvent):
    """A caller joined a queue's waiting list at ``occurred_at`` (``event_id`` ``queued:<call id>``)."""

    event_type: ClassVar[str] = "call_queued"

    call_id: str
    queue: str
    caller: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class CallLeftQueue(DomainEvent):
    """A caller left a queue's waiting list (answered, exited or hung up) after ``wait_s`` seconds.

    ``agent_id`` is the agent who answered; ``None`` when the caller left unanswered. ``event_id`` is
    ``left:<call id>``.
    """

    event_type: ClassVar[str] = "call_left_queue"

    call_id: str
    queue: str
    wait_s: float = 0.0
    agent_id: str | None = None


EVENT_TYPES: typing.Final[dict[str, type[DomainEvent]]] = {
    cls.event_type: cls
    for cls in (
        CallEnded,
        AgentStateChanged,
        AgentQueuesChanged,
        CallQueued,
        CallLeftQueue,
        VoicemailRecorded,
        VoicemailTranscribed,
        VoicemailSilent,
    )
}


# -- callbacks --------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class CallbackStateChanged(DomainEvent):
    """A callback was created (``previous`` is ``None``) or changed state, with who or what caused it.

    Carries what the dispatcher and the wallboard need without a read: queue, number, kind, the
    promise window and when it is due. ``event_id`` is ``callback:<id>:<state>:<attempts>``.
    """

    event_type: ClassVar[str] = "callback_state_changed"

    callback_id: str
    queue: str
    number: str
    kind: CallbackKind
    state: CallbackState
    previous: CallbackState | None = None
    window_start: datetime
    window_end: datetime
    due_at: datetime | None = None
    enqueued_at: datetime | None = None
    call_id: str | None = None
    attempts: int = 0
    actor_kind: ActorKind
    actor: str = ""
    reason: str = ""
    result: AttemptResult | None = None
    #: Whether a first dial before ``window_start`` keeps the promise (``None``: from ``kind``).
    early_ok: bool | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class CallbackSlotOverCommitted(DomainEvent):
    """A slot holds more booked callbacks than staffing and forecast now leave room for (an alert).

    The bookings stay: the promises were made. ``event_id`` names the slot and both counts, so the
    alert is raised once per situation.
    """

    event_type: ClassVar[str] = "callback_slot_over_committed"

    queue: str
    slot_start: datetime
    slot_end: datetime
    booked: int
    capacity: int


EVENT_TYPES.update({cls.event_type: cls for cls in (CallbackStateChanged, CallbackSlotOverCommitted)})


# -- callback dispatcher ------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class CallbackAttemptEnded(DomainEvent):
    """One attempt of a callback ended with its result and cause (``event_id`` is the attempt id)."""

    event_type: ClassVar[str] = "callback_attempt_ended"

    callback_id: str
    attempt_id: str
    queue: str
    number: str
    seq: int
    result: AttemptResult
    cause: str = ""
    agent_id: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class CallbackPromiseAtRisk(DomainEvent):
    """Nobody has dialled a callback yet and its promised window ends within the alert lead (or has
    ended): an alert for supervisors, raised once per callback and window end.

    ``expected_by`` is when the dispatcher now expects to dial it (80 % sure: its place in line, the
    queue's agents and handle times, the customer's quiet hours and the queue's opening hours);
    ``None`` when no estimate could be made (no agent staffed, no handle time known yet).
    """

    event_type: ClassVar[str] = "callback_promise_at_risk"

    callback_id: str
    queue: str
    number: str
    window_end: datetime
    state: CallbackState
    reason: str = ""
    expected_by: datetime | None = None


EVENT_TYPES.update({cls.event_type: cls for cls in (CallbackAttemptEnded, CallbackPromiseAtRisk)})


@dataclass(frozen=True, kw_only=True, slots=True)
class CallbackClaimChanged(DomainEvent):
    """An agent claimed a callback until ``until``, or gave the claim back (``until`` is ``None``):
    the agents' worklist pages show who holds it."""

    event_type: ClassVar[str] = "callback_claim_changed"

    callback_id: str
    queue: str
    agent_id: str
    until: datetime | None = None


EVENT_TYPES[CallbackClaimChanged.event_type] = CallbackClaimChanged


# -- SMS and announced waits (statistics) -------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class SmsStatusChanged(DomainEvent):
    """An outbound SMS was handed to the provider (``sent``) or reported ``delivered`` or ``failed``.

    ``status`` is the SMS engine's message status; ``event_id`` is ``sms:<message id>:<status>``.
    """

    event_type: ClassVar[str] = "sms_status_changed"

    message_id: str
    status: str
    kind: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class SmsConsentChanged(DomainEvent):
    """The consent ledger got an entry: ``action`` ``opt_in`` or ``opt_out`` for ``program``.

    The number is named by its keyed hash only. ``event_id`` is ``consent:<key>:<evidence>``.
    """

    event_type: ClassVar[str] = "sms_consent_changed"

    key: str
    program: str
    action: str
    source: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class WaitAnnounced(DomainEvent):
    """A waiting caller was told a predicted wait (the estimate logged as announced), made at
    ``occurred_at``. ``event_id`` is ``wait-announced:<call id>:<time>``."""

    event_type: ClassVar[str] = "wait_announced"

    call_id: str
    queue: str
    predictor: str
    mean_s: float
    p80_s: float


EVENT_TYPES.update({cls.event_type: cls for cls in (SmsStatusChanged, SmsConsentChanged, WaitAnnounced)})


# -- staffing ---------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class AgentScheduleChanged(DomainEvent):
    """An agent's weekly shifts were replaced (``shifts`` as ``"mon 09:00-17:00"``), with who did it.

    Booked callback slots are checked against the new staffing when it comes.
    """

    event_type: ClassVar[str] = "agent_schedule_changed"

    agent_id: str
    shifts: tuple[str, ...]
    reason: str = ""


EVENT_TYPES.update({AgentScheduleChanged.event_type: AgentScheduleChanged})


#: Each event class's resolved field types, once: resolving the string annotations compiles them,
#: which cost more than the rest of decoding (found with bench/wallboard.py).
_FIELD_TYPES: typing.Final[dict[type[DomainEvent], dict[str, Any]]] = {
    cls: typing.get_type_hints(cls) for cls in EVENT_TYPES.values()
}


def encode_event(event: DomainEvent) -> str:
    """The stable JSON text of ``event``."""
    body: dict[str, Any] = {"type": event.event_type, "v": WIRE_VERSION}
    for field in dataclasses.fields(event):
        body[field.name] = _to_json_value(getattr(event, field.name))
    return json.dumps(body, separators=(",", ":"), sort_keys=True)


def peek_event_type(text: str | bytes) -> str | None:
    """The ``type`` of an encoded event without building it (``None`` when it is not a JSON object)."""
    try:
        body = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    kind = body.get("type") if isinstance(body, dict) else None
    return kind if isinstance(kind, str) else None


def decode_event(text: str | bytes) -> DomainEvent:
    """Parse the JSON text made by :func:`encode_event`.

    :raises ValidationError: for malformed JSON, an unknown type or version, or a bad field.
    """
    try:
        body = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValidationError(f"event is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise ValidationError("event is not a JSON object")
    cls = EVENT_TYPES.get(str(body.get("type")))
    if cls is None:
        raise ValidationError(f"unknown event type {body.get('type')!r}")
    if body.get("v") != WIRE_VERSION:
        raise ValidationError(f"unsupported event version {body.get('v')!r}")
    hints = _FIELD_TYPES[cls]
    values: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        if field.name not in body:
            if field.default is dataclasses.MISSING:
                raise ValidationError(f"{cls.event_type}: missing field {field.name!r}")
            continue
        try:
            values[field.name] = _from_json_value(hints[field.name], body[field.name])
        except (TypeError, ValueError) as exc:
            raise ValidationError(f"{cls.event_type}.{field.name}: {exc}") from exc
    return cls(**values)


def _to_json_value(value: object) -> object:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("event times must be timezone-aware")
        return value.isoformat()
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, tuple):
        return [_to_json_value(item) for item in value]
    return value


def _from_json_value(hint: Any, value: object) -> object:
    """Convert one JSON value to the field's declared type (only the types events use)."""
    if isinstance(hint, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            return None
        (hint,) = args
    if typing.get_origin(hint) is tuple:
        if not isinstance(value, list):
            raise TypeError("expected a list")
        (item_hint, _) = typing.get_args(hint)
        return tuple(_from_json_value(item_hint, item) for item in value)
    if hint is datetime:
        if not isinstance(value, str):
            raise TypeError("expected an ISO 8601 time")
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            raise ValueError("time has no offset")
        return parsed
    if isinstance(hint, type) and issubclass(hint, StrEnum):
        if not isinstance(value, str):
            raise TypeError(f"expected one of {[m.value for m in hint]}")
        return hint(value)
    if hint is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if hint in (str, int, bool) and type(value) is hint:
        return value
    raise TypeError(f"expected {getattr(hint, '__name__', hint)}, got {type(value).__name__}")
