"""Ports of the SMS engine: its store and the SMS provider (shared).

The SQL store is ``callcenter/store/sql_sms.py``; providers are in ``callcenter/sms_providers/``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from callcenter.errors import CallCenterError
from callcenter.model.paging import Page
from callcenter.sms.consent import ConsentEntry, ConsentRecord
from callcenter.sms.outbox import Outcome, Report
from callcenter.sms.records import (
    CallbackRequest,
    Contact,
    Erasure,
    MessageStatus,
    OutboundDraft,
    SmsMessage,
)
from callcenter.sms.rules import CAPPED_KINDS, MessageKind


@dataclass(frozen=True, kw_only=True, slots=True)
class SendFacts:
    """What the sender checks before a text goes: the number's ledger, its contact, recent sends."""

    consent: tuple[ConsentRecord, ...]
    contact: Contact | None
    capped_sends: tuple[datetime, ...]
    follow_up_sends: tuple[datetime, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class ClaimChecks:
    """The send-time checks :meth:`SmsStore.claim_due` runs in the claim's own transaction.

    The facts of the claimed messages not yet handed to a provider are read (the ledger of
    ``key(number)``, the contact, the sends since ``since``); ``decide`` turns them into outcomes
    (cancelled, deferred, or :class:`~callcenter.sms.outbox.Handed` for those about to go), which
    are stored before the claim commits: one transaction between a due text and its request. If
    the transaction fails, nothing of it holds (the messages stay queued). ``decide`` may be called
    again when the store retries the transaction on a fresh connection.
    """

    since: datetime
    key: Callable[[str], str]
    decide: Callable[[Sequence[SmsMessage], Mapping[str, SendFacts]], Awaitable[Sequence[Outcome]]]


@dataclass(frozen=True, kw_only=True, slots=True)
class ReportApplied:
    """What a delivery report did: ``known`` when it names a message we sent; ``moved`` names the
    message (id, kind) when the report changed its status (a repeated or stale report moves nothing)."""

    known: bool
    moved: tuple[str, MessageKind | None] | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class SmsDay:
    """What the statistics count of SMS since a moment, as the engine's events would have told it:
    messages sent and delivered (id, when) and opt-outs written to the ledger (event id, when)."""

    sent: tuple[tuple[str, datetime], ...] = ()
    delivered: tuple[tuple[str, datetime], ...] = ()
    opt_outs: tuple[tuple[str, datetime], ...] = ()


class SmsStore(Protocol):
    """Contacts, the consent ledger, the outbox, the threads and callback requests.

    Every write is idempotent where a fact may arrive twice: :meth:`enqueue` by the draft's key,
    :meth:`record_inbound` by the provider's message id.
    """

    async def get_contact(self, number: str) -> Contact | None: ...

    async def touch_contact(self, number: str, at: datetime) -> Contact:
        """Create the number's contact on first contact, else move ``last_contact_at``."""
        ...

    async def put_contact(self, contact: Contact, at: datetime) -> Contact:
        """Create or replace the editable fields (name, language, time zone, region, notes)."""
        ...

    async def consent_records(self, key: str) -> tuple[ConsentRecord, ...]:
        """One number's records in ``seq`` order."""
        ...

    async def append_consent(self, number: str | None, key: str, entry: ConsentEntry) -> ConsentRecord:
        """Chain ``entry`` after the number's last record, atomically (concurrent appends never fork)."""
        ...

    async def ledger(self, *, after_id: int, limit: int) -> Sequence[tuple[int, str | None, ConsentRecord]]:
        """Every record in append order: ``(row id, number or None once erased, record)``."""
        ...

    async def enqueue(self, draft: OutboundDraft) -> tuple[SmsMessage, bool]:
        """Queue ``draft`` unless its key is known; returns the stored message and whether it is new."""
        ...

    async def claim_due(
        self, now: datetime, *, lease_s: float, limit: int, checks: ClaimChecks | None = None
    ) -> tuple[SmsMessage, ...]:
        """Move due queued messages (and ``sending`` ones whose claim expired) to ``sending``.

        A message is handed to one claimer only; its claim lasts ``lease_s``. With ``checks``, the
        send-time checks run and their outcomes are stored in the same transaction (see
        :class:`ClaimChecks`).
        """
        ...

    async def record_outcomes(self, outcomes: Sequence[Outcome], at: datetime) -> dict[str, datetime]:
        """Store what the sender did with claimed messages, all in one transaction; returns the ids of
        the :class:`~callcenter.sms.outbox.Handed` messages whose hand-over was stored, each with the
        hold it now has (its ``claimed_until``).

        Updates only messages still ``sending`` (a "sent" also settles ``queued`` and ``unknown``), so
        a delivery report or an opt-out that moved one meanwhile wins. A hand-over is stored only
        while the claim it names (``Handed.claim``) is the message's and nothing was handed over
        yet: a sender whose claim ran out, or whose text an opt-out cancelled, finds its id missing
        and must not send it.
        """
        ...

    async def defer(self, message_id: str, until: datetime, reason: str, at: datetime) -> None: ...

    async def mark_sent(self, message_id: str, provider: str, provider_id: str, at: datetime) -> None: ...

    async def mark_failed(
        self, message_id: str, error: str, at: datetime, *, retry_at: datetime | None
    ) -> None:
        """Record a failed attempt: back to ``queued`` at ``retry_at``, or ``failed`` for good."""
        ...

    async def cancel(self, message_id: str, reason: str, at: datetime) -> None: ...

    async def cancel_pending(self, number: str, reason: str, at: datetime) -> int:
        """Cancel every capped or reply message to ``number`` not yet handed to a provider (an
        opt-out): queued, or claimed by a sender and not handed over (its hand-over then fails and it
        is not sent); returns how many. One already handed over cannot be recalled."""
        ...

    async def cancel_queued(
        self, number: str, prefixes: Sequence[str], keep: str, reason: str, at: datetime
    ) -> int:
        """Cancel ``number``'s queued messages whose key starts with one of ``prefixes``, except the one
        keyed ``keep``; returns how many (a callback's notices that no longer apply)."""
        ...

    async def delivery_report(
        self, provider: str, provider_id: str, status: MessageStatus, error: str, at: datetime
    ) -> ReportApplied:
        """Apply a provider's delivery report (one statement); not ``known`` for a message it never sent.

        ``provider_id`` may also be our own message id, for providers that carry it (Kannel).
        """
        ...

    async def delivery_reports(self, reports: Sequence[Report], at: datetime) -> list[ReportApplied]:
        """:meth:`delivery_report` of each of ``reports`` (in order), all in one transaction."""
        ...

    async def sent_times(
        self, number: str, since: datetime, *, kinds: tuple[MessageKind, ...] = CAPPED_KINDS
    ) -> tuple[datetime, ...]:
        """When messages of ``kinds`` (by default the capped ones) to ``number`` went out since ``since``."""
        ...

    async def send_facts(self, number: str, key: str, since: datetime) -> SendFacts:
        """The ledger of ``key``, the contact of ``number`` and its sends since ``since``, in one go."""
        ...

    async def send_facts_many(
        self, targets: Sequence[tuple[str, str]], since: datetime
    ) -> dict[str, SendFacts]:
        """:meth:`send_facts` for many ``(number, key)`` pairs in one read, keyed by number."""
        ...

    async def last_follow_up(self, number: str) -> datetime | None:
        """When the latest follow-up to ``number`` was queued (any status but cancelled)."""
        ...

    async def record_inbound(self, message: SmsMessage) -> tuple[SmsMessage, bool]:
        """Store an inbound message unless its (provider, provider id) is known."""
        ...

    async def get_message(self, message_id: str) -> SmsMessage:
        """:raises NotFoundError: for an unknown id."""
        ...

    async def messages(
        self, *, number: str | None, needs_person: bool | None, cursor: str | None, limit: int
    ) -> Page[SmsMessage]:
        """Messages newest first, optionally of one number or only those waiting for a person."""
        ...

    async def mark_handled(self, message_id: str) -> SmsMessage: ...

    async def resolve_unknown(self, message_id: str, *, resend: bool, actor: str, at: datetime) -> bool:
        """An ``unknown`` message back to ``queued`` (``resend``) or to ``failed``; ``False`` when it
        is not ``unknown`` (one statement: two people deciding at once cannot both win)."""
        ...

    async def mark_needs_person(self, message_id: str, note: str) -> None:
        """Put an inbound message on the list a person works, saying why."""
        ...

    async def day_activity(self, since: datetime) -> SmsDay:
        """Sends, deliveries and opt-outs since ``since`` (the statistics reload them at start-up)."""
        ...

    async def request_callback(
        self, number: str, message_id: str, at: datetime
    ) -> tuple[CallbackRequest, bool]:
        """Store a "call me" request; an open one for the number is returned instead of a second."""
        ...

    async def cancel_callback(self, number: str, at: datetime) -> CallbackRequest | None:
        """Cancel the number's open request; ``None`` when it has none."""
        ...

    async def callback_requests(
        self, *, number: str | None, open_only: bool
    ) -> tuple[CallbackRequest, ...]: ...

    async def erase(self, number: str, pseudonym: str, at: datetime) -> Erasure:
        """Erase the number's personal data (see :class:`~callcenter.sms.records.Erasure`)."""
        ...


class ProviderError(CallCenterError):
    """The provider did not take the message; ``permanent`` errors are not retried."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True, slots=True)
class Outgoing:
    """What a provider needs to send one message; ``message_id`` is ours (delivery reports name it)."""

    message_id: str
    to: str
    text: str


class SmsProvider(Protocol):
    """An SMS gateway."""

    name: str

    async def send(self, message: Outgoing) -> str:
        """Hand ``message`` over; return the provider's id for it.

        :raises ProviderError: when it was not taken (``permanent`` says whether a retry may help).
        """
        ...

    async def sent_before(self, message_id: str) -> str | None:
        """The provider id of our ``message_id`` if the provider can tell it already took it, else ``None``.

        Asked about a message that was handed over by a sender that then died, once its delivery
        report is overdue. ``None`` is not "it never went": such a message is marked ``unknown``
        for a person, never re-sent blindly.
        """
        ...


@dataclass(frozen=True, kw_only=True, slots=True)
class CallbackTicket:
    """A callback the callback service holds for a number (new, or the open one a request merged into)."""

    callback_id: str
    queue: str
    keep_place: bool
    window_start: datetime
    window_end: datetime
    created: bool = True


class CallbackDesk(Protocol):
    """The callback service as the SMS engine uses it: "1" asks for a callback, "2" cancels one, and
    a text that is no keyword goes before a person (an item on the agents' worklist)."""

    async def request(
        self, number: str, *, message_id: str, received_at: datetime, text: str
    ) -> CallbackTicket:
        """Create (or merge into) the number's callback. :raises ValidationError: a number we do not call."""
        ...

    async def cancel(self, number: str, *, message_id: str) -> CallbackTicket | None:
        """Cancel the number's open callback(s), by the customer; ``None`` when it had none."""
        ...

    async def attend(
        self, number: str, *, message_id: str, received_at: datetime, text: str
    ) -> CallbackTicket:
        """Put a text that needs a person on the worklist: the number's callback (new, or the open
        one it joins), reason ``sms_text``. :raises ValidationError: a number we do not call."""
        ...
