"""SMS values the store keeps and the API shows: contacts, messages, callback requests (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from callcenter.model.callbacks import Callback, CallbackChange
from callcenter.sms.rules import MessageKind


class Direction(StrEnum):
    OUTBOUND = "outbound"
    INBOUND = "inbound"


class MessageStatus(StrEnum):
    """An outbound message's life: queued -> sending -> sent -> delivered | failed, or cancelled.

    ``unknown``: handed to a provider that cannot say whether it sent it (its sender died), and no
    delivery report came within the wait: a person decides (resend or close); a late report settles it.
    Inbound messages are ``received``.
    """

    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"
    CANCELLED = "cancelled"
    RECEIVED = "received"
    UNKNOWN = "unknown"

    @property
    def is_final(self) -> bool:
        return self in (MessageStatus.DELIVERED, MessageStatus.FAILED, MessageStatus.CANCELLED)


@dataclass(frozen=True, kw_only=True, slots=True)
class Contact:
    """What we know of a number's owner; ``time_zone`` (IANA) and ``region`` feed quiet hours."""

    number: str
    name: str = ""
    language: str = ""
    time_zone: str = ""
    region: str = ""
    notes: str = ""
    first_contact_at: datetime | None = None
    last_contact_at: datetime | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class OutboundDraft:
    """A message to queue; ``key`` is its idempotency key, derived from what triggered it."""

    key: str
    number: str
    kind: MessageKind
    program: str
    text: str
    due_at: datetime
    created_at: datetime
    call_id: str | None = None
    actor: str = "sms"


@dataclass(frozen=True, kw_only=True, slots=True)
class SmsMessage:
    """One stored message, either direction."""

    id: str
    key: str | None
    direction: Direction
    number: str
    kind: MessageKind | None
    program: str
    text: str
    status: MessageStatus
    created_at: datetime
    due_at: datetime | None = None
    sent_at: datetime | None = None
    updated_at: datetime | None = None
    attempts: int = 0
    provider: str = ""
    provider_id: str = ""
    error: str = ""
    call_id: str | None = None
    intent: str = ""
    segments: int = 1
    encoding: str = "gsm7"
    actor: str = ""
    needs_person: bool = False
    #: While ``sending``: until when its claim (or, once handed over, the wait for its report) holds.
    #: Each claim sets a later value than the one before, so it also names the claim.
    claimed_until: datetime | None = None


class CallbackRequestState(StrEnum):
    REQUESTED = "requested"
    CANCELLED = "cancelled"


@dataclass(frozen=True, kw_only=True, slots=True)
class CallbackRequest:
    """A caller's "call me" by text, kept until the callback service takes it over."""

    id: str
    number: str
    message_id: str
    state: CallbackRequestState
    requested_at: datetime
    cancelled_at: datetime | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Erasure:
    """What an erasure removed (counts of rows changed; a repeat finds less or nothing to do).

    The SQL part is one transaction; the files go after its commit: ``audio_paths`` (relative to the
    voicemail media folder) and the previews of ``voicemail_ids`` are what the store handed over for
    deletion, ``audio_files``/``previews`` what was deleted and ``files_not_deleted`` what could not be
    (logged, reported, never silently kept). ``cancelled`` are the open callbacks the erasure closed, for
    their state events; ``callbacks_connected`` were on the line and keep going (pseudonymised, never
    dialled again). ``do_not_call_kept``: the number stays on the do-not-call list (a legal block).
    """

    number: str
    pseudonym: str
    messages: int
    contacts: int
    consent_records: int
    calls: int
    callback_requests: int
    missed_calls: int = 0
    voicemails: int = 0
    transcripts: int = 0
    callbacks: int = 0
    callbacks_cancelled: int = 0
    callbacks_connected: int = 0
    callback_attempts: int = 0
    callback_notes: int = 0
    audit_entries: int = 0
    do_not_call_kept: bool = False
    audio_files: int = 0
    previews: int = 0
    files_not_deleted: tuple[str, ...] = ()
    audio_paths: tuple[str, ...] = ()
    voicemail_ids: tuple[str, ...] = ()
    cancelled: tuple[tuple[Callback, CallbackChange], ...] = ()
