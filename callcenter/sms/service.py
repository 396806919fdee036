"""The SMS engine: follow-ups for missed calls, replies that act, the outbox sender (service).

:meth:`SmsEngine.handle` consumes ``CallEnded`` from the bus (group :data:`CONSUMER_GROUP`) and queues
a follow-up where the rules allow (:mod:`callcenter.sms.rules`). :meth:`SmsEngine.receive` takes an
inbound text from any provider: an opt-out is written to the ledger first, then everything still
queued for the number is cancelled and one confirmation goes out. :meth:`SmsEngine.send_due` is the
outbox sender: it claims due messages, checks consent, the call's state, quiet hours and caps *now*,
and hands them to the provider; errors retry with capped backoff, permanent ones stop.

Every step is idempotent, so a redelivered event or webhook, or a restart in the middle, neither loses
nor repeats a message: follow-ups are keyed by call id, replies by the inbound message they answer, and
the consent record of an opt-out names its message (``evidence_ref``).
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import hashlib
import io
import logging
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo

from callcenter.bus import Delivery
from callcenter.callbacks.service import state_event
from callcenter.clock import Clock
from callcenter.errors import CallCenterError, ConflictError, NotFoundError, ValidationError
from callcenter.model.events import (
    CallbackPromiseAtRisk,
    CallbackStateChanged,
    CallEnded,
    DomainEvent,
    SmsConsentChanged,
    SmsStatusChanged,
    VoicemailRecorded,
    VoicemailTranscribed,
)
from callcenter.model.paging import Page
from callcenter.model.phone import ERASED_PREFIX, mask_number, parse_phone
from callcenter.model.vocabulary import CallbackKind, CallbackState, CallOutcome, EntryPoint
from callcenter.queue.hours import business_hours, is_open
from callcenter.queue.ports import CallRepository, QueueRepository
from callcenter.sms.consent import (
    ALL_PROGRAMS,
    DEFAULT_POLICIES,
    INFORMATIONAL,
    ConsentAction,
    ConsentEntry,
    ConsentPolicy,
    ConsentRecord,
    ConsentSource,
    ConsentStatus,
    consent_event_id,
    number_key,
    overall_status,
    policy_for,
    status_of,
)
from callcenter.sms.keywords import DEFAULT_RULES, Intent, KeywordRules, classify
from callcenter.sms.outbox import (
    Cancelled,
    Deferred,
    Failed,
    GroupCommit,
    Handed,
    Outcome,
    Report,
    Sent,
    Unknown,
)
from callcenter.sms.ports import (
    CallbackDesk,
    CallbackTicket,
    ClaimChecks,
    Outgoing,
    ProviderError,
    ReportApplied,
    SendFacts,
    SmsDay,
    SmsProvider,
    SmsStore,
)
from callcenter.sms.quiet import Recipient, is_allowed, next_opening
from callcenter.sms.recipient import LineType, line_type, recipient_for
from callcenter.sms.records import (
    CallbackRequest,
    Contact,
    Direction,
    Erasure,
    MessageStatus,
    OutboundDraft,
    SmsMessage,
)
from callcenter.sms.rules import (
    CAP_PERIOD,
    CAPPED_KINDS,
    Cancel,
    Defer,
    MessageKind,
    SmsRules,
    TriggerFacts,
    follow_up_skip,
    follow_up_skip_without_facts,
    send_verdict,
)
from callcenter.sms.templates import Notice, Personal, Reply, Templates, describe_window

logger = logging.getLogger(__name__)

#: A late notice's new time is rounded up to this many minutes on the clock.
_LATE_ROUND_MIN: Final = 15

#: The bus consumer group whose handler is :meth:`SmsEngine.handle`.
CONSUMER_GROUP: Final = "sms-follow-up"

#: The event types :meth:`SmsEngine.handle` acts on; the bus acknowledges the others unread (``only``).
HANDLED_EVENTS: Final = frozenset(
    {
        CallEnded.event_type,
        VoicemailRecorded.event_type,
        VoicemailTranscribed.event_type,
        CallbackStateChanged.event_type,
        CallbackPromiseAtRisk.event_type,
    }
)
#: Longest inbound text we store (a long concatenated SMS is about 1,600 characters).
MAX_INBOUND_CHARS: Final = 2_000
MAX_OUTBOUND_CHARS: Final = 1_600
#: Callback states in which somebody is already being dialled: notices waiting for it are moot.
_DIALLED: Final = frozenset({CallbackState.DIALING, CallbackState.CONNECTED})
#: Callbacks whose request already got its own text: by SMS (the reply) or by voicemail (the ack).
_OWN_TEXT_ACTORS: Final = frozenset({"sms", "voicemail"})
_SENDER = re.compile(r"^[+\w][\w .()+-]{0,31}$")


@dataclass(frozen=True, kw_only=True, slots=True)
class EngineSettings:
    """How the engine behaves.

    :param consent_secret: key of the ledger's number hash (keep it: a new key forgets opt-outs).
    :param lease_s: how long a claimed message is reserved for the sender that claimed it.
    :param max_attempts: provider attempts before a message fails for good.
    :param retry_base_s: first retry delay; doubled per attempt up to ``retry_max_s``.
    :param send_concurrency: provider requests in flight at once (texts to one number stay in order).
    :param reminder_lead_s: a chosen-time callback is reminded of this long before its window
        (``CALLCENTER_SMS_REMINDER_LEAD_S``).
    :param promise_grace_s: a kept place's window ends this long after the "by" time we announced
        (``CALLCENTER_CALLBACK_GRACE_S``): texts say the announced time.
    :param late_slip_s: a late notice's new time when the dispatcher predicted none: this long after
        the promise it misses (or now) (``CALLCENTER_SMS_LATE_SLIP_S``).
    :param passes: claimed batches being started at once by :meth:`SmsEngine.run` (a batch whose texts
        are all under way no longer counts); all share ``send_concurrency``.
    :param report_wait_s: how long a text handed to the provider is held for its delivery report
        before a sender that died with it is presumed lost: it is then asked about (``sent_before``) or
        marked ``unknown``, never re-sent blindly.
    """

    rules: SmsRules = field(default_factory=SmsRules)
    templates: Templates
    keywords: KeywordRules = DEFAULT_RULES
    consent_secret: bytes = field(repr=False)
    program: str = INFORMATIONAL
    policies: Mapping[str, ConsentPolicy] = field(default_factory=lambda: dict(DEFAULT_POLICIES))
    default_region: str = "US"
    lease_s: float = 60.0
    batch: int = 50
    max_attempts: int = 6
    retry_base_s: float = 5.0
    retry_max_s: float = 600.0
    poll_s: float = 1.0
    send_concurrency: int = 10
    report_wait_s: float = 600.0
    reminder_lead_s: float = 900.0
    promise_grace_s: float = 120.0
    late_slip_s: float = 1800.0
    passes: int = 2


@dataclass(frozen=True, kw_only=True, slots=True)
class Inbound:
    """An inbound text as a provider's webhook gave it (already typed by the edge)."""

    sender: str
    text: str
    provider: str
    provider_id: str = ""
    to: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class InboundResult:
    message: SmsMessage
    intent: Intent
    replies: tuple[SmsMessage, ...]
    callback: CallbackRequest | None = None
    #: The callback service's callback a "1" created (or merged into) or a "2" cancelled.
    ticket: CallbackTicket | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ConsentView:
    number: str
    status: ConsentStatus
    programs: Mapping[str, ConsentStatus]
    history: tuple[ConsentRecord, ...]


class SmsEngine:
    """See the module docstring."""

    def __init__(
        self,
        store: SmsStore,
        provider: SmsProvider,
        calls: CallRepository,
        queues: QueueRepository | None,
        clock: Clock,
        settings: EngineSettings,
    ) -> None:
        self._store = store
        self._provider = provider
        self._calls = calls
        self._queues = queues
        self._clock = clock
        self._settings = settings
        self._wake = asyncio.Event()
        #: A claim is wanted (:meth:`wake`): the first pass to see it takes it, the others wait on.
        self._wanted = False
        self._reports: GroupCommit[Report, ReportApplied] = GroupCommit(self._store_reports)
        self._gate = asyncio.Semaphore(settings.send_concurrency)
        #: Texts handed over (committed) and not yet answered: those in flight and as many waiting.
        self._ahead = asyncio.Semaphore(2 * settings.send_concurrency)
        self._claiming = asyncio.Lock()
        #: The callback service for "1" and "2" replies; ``None``: requests are stored for the API.
        self.callbacks: CallbackDesk | None = None
        #: Publishes the statistics' SMS events (sent, delivered, consent changed); ``None``: none.
        self.publish: Callable[[DomainEvent], Awaitable[object]] | None = None

    @property
    def provider_name(self) -> str:
        return self._provider.name

    # -- triggers ---------------------------------------------------------------------------------

    async def handle(self, delivery: Delivery) -> None:
        """Bus handler: follow up a missed call, acknowledge a voicemail, tell a customer about their
        callback (other events are acknowledged and ignored)."""
        event = delivery.event
        if isinstance(event, CallEnded):
            await self.on_call_ended(event)
        elif isinstance(event, VoicemailRecorded | VoicemailTranscribed):
            await self.on_voicemail(event.voicemail_id, event.call_id, event.caller, event.occurred_at)
        elif isinstance(event, CallbackStateChanged):
            await self.on_callback_changed(event)
        elif isinstance(event, CallbackPromiseAtRisk):
            await self.on_promise_at_risk(event)

    # -- voicemails and callbacks -------------------------------------------------------------------

    async def on_voicemail(
        self, voicemail_id: str, call_id: str | None, caller: str, left_at: datetime
    ) -> SmsMessage | None:
        """Acknowledge a voicemail once: the same text (and key) as the call's ``voicemail`` follow-up,
        so a voicemail whose call already got its follow-up gets nothing more."""
        return await self.on_call_ended(
            CallEnded(
                event_id=f"voicemail:{voicemail_id}",
                occurred_at=left_at,
                call_id=call_id or f"voicemail:{voicemail_id}",
                outcome=CallOutcome.VOICEMAIL,
                entry_point=EntryPoint.ARI,
                caller=caller,
            )
        )

    async def on_callback_changed(self, event: CallbackStateChanged) -> SmsMessage | None:
        """Confirm a new callback, remind before a chosen time, say so when every attempt failed; a
        callback that is dialled or closed takes its queued notices back."""
        if not event.state.is_open or event.state in _DIALLED:
            await self._withdraw_notices(event.number, event.callback_id)
        if event.state is CallbackState.FAILED:
            return await self._notice(
                event.number, f"callback-failed:{event.callback_id}", Notice.FAILED, event, None
            )
        if event.previous is not None and event.state is not CallbackState.SCHEDULED:
            return None
        if event.actor in _OWN_TEXT_ACTORS:
            # Asked for by text (its reply says the window) or by voicemail (acknowledged already).
            return None
        scheduled = event.kind is CallbackKind.SCHEDULED
        confirmation: SmsMessage | None = None
        if event.previous is None or scheduled:
            notice = Notice.CONFIRM_SCHEDULED if scheduled else Notice.CONFIRM_KEEP_PLACE
            confirmation = await self._notice(
                event.number,
                f"callback-confirm:{event.callback_id}:{event.window_start.isoformat()}",
                notice,
                event,
                None,
            )
        if scheduled and event.state is CallbackState.SCHEDULED:
            await self._remind(event)
        return confirmation

    async def _remind(self, event: CallbackStateChanged) -> None:
        now = self._clock.now()
        lead = timedelta(seconds=self._settings.reminder_lead_s)
        key = f"callback-reminder:{event.callback_id}:{event.window_start.isoformat()}"
        # A new time replaces the reminder of the old one.
        await self._store.cancel_queued(
            event.number, [f"callback-reminder:{event.callback_id}:"], key, "callback moved", now
        )
        if event.window_start - now > lead * 2:
            await self._notice(event.number, key, Notice.REMINDER, event, event.window_start - lead)

    async def on_promise_at_risk(self, event: CallbackPromiseAtRisk) -> SmsMessage | None:
        """An honest late notice with a new time, once per callback and promise (the event's id).

        The new time is the dispatcher's prediction (``expected_by``), else, when it could make none,
        ``late_slip_s`` after the missed promise; never before now, rounded up to the quarter hour,
        and moved out of the customer's quiet hours (to when they end).
        """
        if not event.state.is_open or event.state in _DIALLED:
            return None
        now = self._clock.now()
        if event.expected_by is not None:
            new_by = max(now, event.expected_by)
        else:
            logger.info(
                "callback %s: no predicted dial time; the late notice says the promise plus %.0f s",
                event.callback_id,
                self._settings.late_slip_s,
            )
            new_by = max(now, event.window_end) + timedelta(seconds=self._settings.late_slip_s)
        new_by = _round_up(new_by, minutes=_LATE_ROUND_MIN)
        number = parse_phone(event.number, self._settings.default_region).e164
        if number is not None:
            contact = await self._store.get_contact(number)
            recipient = recipient_for(
                number, zone=contact.time_zone if contact and contact.time_zone else None
            )
            if not is_allowed(new_by, recipient, self._settings.rules.quiet):
                new_by = _round_up(
                    next_opening(new_by, recipient, self._settings.rules.quiet), minutes=_LATE_ROUND_MIN
                )
        return await self._notice(
            event.number,
            f"callback-late:{event.callback_id}:{event.window_end.isoformat()}",
            Notice.LATE,
            event,
            None,
            window=(event.window_end, new_by),
        )

    def _announced_end(self, start: datetime, end: datetime, *, keep_place: bool) -> datetime:
        """The "by" time a kept place was told (its window ends a grace later); a slot's own end."""
        if not keep_place:
            return end
        return max(start, end - timedelta(seconds=self._settings.promise_grace_s))

    async def _withdraw_notices(self, raw: str, callback_id: str) -> None:
        number = parse_phone(raw, self._settings.default_region).e164
        if number is None:
            return
        prefixes = [f"callback-{what}:{callback_id}" for what in ("confirm", "reminder", "late")]
        await self._store.cancel_queued(number, prefixes, "", "callback moved on", self._clock.now())

    async def _notice(
        self,
        raw: str,
        key: str,
        notice: Notice,
        event: CallbackStateChanged | CallbackPromiseAtRisk,
        due_at: datetime | None,
        *,
        window: tuple[datetime, datetime] | None = None,
    ) -> SmsMessage | None:
        """Queue a callback notice keyed by its trigger; checked again (consent, quiet hours) at send."""
        number = parse_phone(raw, self._settings.default_region)
        if number.e164 is None:
            return None
        if self._settings.rules.require_mobile and line_type(number.e164) in (LineType.FIXED, LineType.OTHER):
            return None
        now = self._clock.now()
        contact = await self._store.get_contact(number.e164)
        language = self._settings.templates.language_of(contact.language if contact is not None else None)
        zone = recipient_for(
            number.e164, zone=contact.time_zone if contact is not None and contact.time_zone else None
        ).zones[0]
        was = ""
        if window is not None:
            promised, new_by = window
            was = describe_window(promised, promised, by_only=True, zone=zone, now=now, language=language)
            words = describe_window(now, new_by, by_only=True, zone=zone, now=now, language=language)
        elif isinstance(event, CallbackStateChanged):
            keep_place = event.kind is CallbackKind.KEEP_PLACE
            words = describe_window(
                event.window_start,
                self._announced_end(event.window_start, event.window_end, keep_place=keep_place),
                by_only=keep_place,
                zone=zone,
                now=now,
                language=language,
            )
        else:
            words = ""
        text = self._settings.templates.notice(
            notice,
            language=language,
            personal=Personal(name=contact.name if contact is not None else "", window=words, was=was),
        )
        message, created = await self._store.enqueue(
            OutboundDraft(
                key=key,
                number=number.e164,
                kind=MessageKind.NOTICE,
                program=self._settings.program,
                text=text,
                due_at=due_at or now,
                created_at=now,
            )
        )
        if created:
            self.wake()
        return message

    async def on_call_ended(self, event: CallEnded) -> SmsMessage | None:
        """Queue the follow-up of a missed call, once per call; ``None`` when the rules skip it."""
        now = self._clock.now()
        number = parse_phone(event.caller, self._settings.default_region)
        policy = policy_for(self._settings.program, self._settings.policies)
        early = follow_up_skip_without_facts(event.outcome, number, rules=self._settings.rules)
        if early is not None:  # answered, withheld...: decided without a query
            logger.info("no follow-up for call %s from %s: %s", event.call_id, number.masked, early.value)
            return None
        closed = await self._closed(event.call_id)
        if number.e164 is not None:
            facts = TriggerFacts(
                closed=closed,
                last_follow_up_at=await self._store.last_follow_up(number.e164),
                consent=await self._status(number.e164, self._settings.program),
            )
        else:
            facts = TriggerFacts(closed=closed, last_follow_up_at=None, consent=ConsentStatus.UNKNOWN)
        skip = follow_up_skip(
            event.outcome, number, facts, now=now, rules=self._settings.rules, policy=policy
        )
        if skip is not None:
            logger.info("no follow-up for call %s from %s: %s", event.call_id, number.masked, skip.value)
            return None
        assert number.e164 is not None
        contact = await self._store.touch_contact(number.e164, now)
        text = self._settings.templates.follow_up(
            event.outcome.value,
            open_now=await self._open_at(event),
            language=contact.language or None,
            personal=Personal(name=contact.name),
        )
        message, created = await self._store.enqueue(
            OutboundDraft(
                key=f"follow-up:{event.call_id}",
                number=number.e164,
                kind=MessageKind.FOLLOW_UP,
                program=self._settings.program,
                text=text,
                due_at=now,
                created_at=now,
                call_id=event.call_id,
            )
        )
        if created:
            self.wake()
        return message

    async def _closed(self, call_id: str) -> bool:
        try:
            return (await self._calls.get(call_id)).closed_at is not None
        except NotFoundError:
            return False

    async def _open_at(self, event: CallEnded) -> bool:
        if event.outcome is CallOutcome.AFTER_HOURS:
            return False
        if event.queue is None or self._queues is None:
            return True
        try:
            queue = await self._queues.get(event.queue)
            hours = business_hours(queue.business_hours, queue.holidays, queue.time_zone)
        except (NotFoundError, ValidationError):
            return True
        return is_open(hours, event.occurred_at)

    # -- inbound ----------------------------------------------------------------------------------

    async def receive(self, inbound: Inbound) -> InboundResult:
        """Act on an inbound text (see the module docstring); a redelivery acts again harmlessly.

        :raises ValidationError: for an empty or implausible sender or an oversized text.
        """
        sender = self._sender(inbound.sender)
        if len(inbound.text) > MAX_INBOUND_CHARS:
            raise ValidationError(f"text longer than {MAX_INBOUND_CHARS} characters")
        now = self._clock.now()
        intent = classify(inbound.text, self._settings.keywords)
        message_id = (
            hashlib.sha256(f"{inbound.provider}\n{inbound.provider_id}".encode()).hexdigest()[:32]
            if inbound.provider_id
            else uuid.uuid4().hex
        )
        message, _ = await self._store.record_inbound(
            SmsMessage(
                id=message_id,
                key=None,
                direction=Direction.INBOUND,
                number=sender,
                kind=None,
                program="",
                text=inbound.text,
                status=MessageStatus.RECEIVED,
                created_at=now,
                provider=inbound.provider,
                provider_id=inbound.provider_id,
                intent=intent.value,
                actor=inbound.provider,
                needs_person=intent is Intent.OTHER,
            )
        )
        if sender.startswith("+"):
            await self._store.touch_contact(sender, now)
        if intent is Intent.OPT_OUT:
            replies = await self._opt_out(sender, message, now)
            return InboundResult(message=message, intent=intent, replies=replies)
        if intent is Intent.OPT_IN:
            await self._append_once(sender, message, ConsentAction.OPT_IN, now)
            replies = (await self._reply(sender, message, Reply.OPT_IN, MessageKind.REPLY, now),)
            return InboundResult(message=message, intent=intent, replies=replies)
        if intent is Intent.HELP:
            replies = (await self._reply(sender, message, Reply.HELP, MessageKind.COMPLIANCE, now),)
            return InboundResult(message=message, intent=intent, replies=replies)
        if intent is Intent.CALL_ME:
            return await self._call_me(sender, message, now)
        if intent is Intent.CANCEL_CALLBACK:
            return await self._cancel_callback(sender, message, now)
        # Anything else waits for a person (the worklist): no automatic answer pretends to be one.
        return await self._for_a_person(sender, message, now)

    async def _for_a_person(self, sender: str, message: SmsMessage, now: datetime) -> InboundResult:
        """A text that is no keyword: an item on the agents' worklist (the number's callback, reason
        ``sms_text``, with the thread), else it stays listed under SMS as needing a person."""
        intent = Intent.OTHER
        if self.callbacks is None or not sender.startswith("+"):
            return InboundResult(message=message, intent=intent, replies=())
        try:
            ticket = await self.callbacks.attend(
                sender, message_id=message.id, received_at=now, text=message.text
            )
        except ValidationError as exc:
            logger.info("text from %s not put on the worklist: %s", mask_number(sender), exc)
            await self._store.mark_needs_person(message.id, f"not on the worklist: {exc}")
            return InboundResult(message=message, intent=intent, replies=())
        await self._store.mark_needs_person(message.id, f"on the worklist: callback {ticket.callback_id}")
        return InboundResult(message=message, intent=intent, replies=(), ticket=ticket)

    async def _call_me(self, sender: str, message: SmsMessage, now: datetime) -> InboundResult:
        """ "1": a callback through the callback service (one per number: a repeat merges), else a
        stored request. An opted-out number that asks for a call gets the call it asked for, but no
        text back: the reply is a text, and its opt-out holds until it opts back in."""
        if self.callbacks is None or not sender.startswith("+"):
            request, _ = await self._store.request_callback(sender, message.id, now)
            reply = await self._reply(sender, message, Reply.CALLBACK_REQUESTED, MessageKind.REPLY, now)
            return InboundResult(message=message, intent=Intent.CALL_ME, replies=(reply,), callback=request)
        try:
            ticket = await self.callbacks.request(
                sender, message_id=message.id, received_at=now, text=message.text
            )
        except ValidationError as exc:
            # A number we do not call back (premium, do-not-call...): a person answers.
            logger.info("callback by text from %s refused: %s", mask_number(sender), exc)
            await self._store.mark_needs_person(message.id, f"callback refused: {exc}")
            return InboundResult(message=message, intent=Intent.CALL_ME, replies=())
        contact = await self._store.get_contact(sender)
        language = self._settings.templates.language_of(contact.language if contact is not None else None)
        zone = recipient_for(sender, zone=contact.time_zone if contact and contact.time_zone else None).zones[
            0
        ]
        words = describe_window(
            ticket.window_start,
            self._announced_end(ticket.window_start, ticket.window_end, keep_place=ticket.keep_place),
            by_only=ticket.keep_place,
            zone=zone,
            now=now,
            language=language,
        )
        reply = await self._reply(
            sender, message, Reply.CALLBACK_REQUESTED, MessageKind.REPLY, now, window=words
        )
        return InboundResult(message=message, intent=Intent.CALL_ME, replies=(reply,), ticket=ticket)

    async def _cancel_callback(self, sender: str, message: SmsMessage, now: datetime) -> InboundResult:
        """ "2": cancel the sender's open callback (by the customer) and say so."""
        intent = Intent.CANCEL_CALLBACK
        if self.callbacks is None or not sender.startswith("+"):
            cancelled = await self._store.cancel_callback(sender, now)
            kind = Reply.CALLBACK_CANCELLED if cancelled is not None else Reply.NO_OPEN_CALLBACK
            replies = (await self._reply(sender, message, kind, MessageKind.REPLY, now),)
            return InboundResult(message=message, intent=intent, replies=replies, callback=cancelled)
        ticket = await self.callbacks.cancel(sender, message_id=message.id)
        # A stored request from before the callback service existed is cancelled too.
        stored = await self._store.cancel_callback(sender, now)
        kind = (
            Reply.CALLBACK_CANCELLED if ticket is not None or stored is not None else Reply.NO_OPEN_CALLBACK
        )
        replies = (await self._reply(sender, message, kind, MessageKind.REPLY, now),)
        return InboundResult(message=message, intent=intent, replies=replies, callback=stored, ticket=ticket)

    def _sender(self, raw: str) -> str:
        number = parse_phone(raw, self._settings.default_region)
        if number.e164 is not None:
            return number.e164
        text = raw.strip()
        # A sender we cannot read as a number (a short code, an odd format) is still honoured by its
        # text: a STOP from it must hold.
        if number.is_withheld or not _SENDER.match(text):
            raise ValidationError(f"sender {raw[:40]!r} is not a phone number")
        return text

    async def _opt_out(self, number: str, message: SmsMessage, now: datetime) -> tuple[SmsMessage, ...]:
        records = await self._store.consent_records(self._key(number))
        mine = next((r for r in records if r.evidence_ref == message.id), None)
        # Whether the number was already out before this message: a redelivered STOP must neither
        # append twice nor lose the one confirmation it owes.
        was_out = (
            overall_status(r for r in records if mine is None or r.seq < mine.seq) is ConsentStatus.OPTED_OUT
        )
        if mine is None:
            await self._append(number, message, ConsentAction.OPT_OUT, now)
        cancelled = await self._store.cancel_pending(number, "opted_out", now)
        logger.info("opt-out from %s; %d queued message(s) cancelled", mask_number(number), cancelled)
        if was_out:
            return ()
        return (await self._reply(number, message, Reply.OPT_OUT, MessageKind.COMPLIANCE, now),)

    async def _append_once(
        self, number: str, message: SmsMessage, action: ConsentAction, now: datetime
    ) -> None:
        records = await self._store.consent_records(self._key(number))
        if not any(r.evidence_ref == message.id for r in records):
            await self._append(number, message, action, now)

    async def _append(self, number: str, message: SmsMessage, action: ConsentAction, now: datetime) -> None:
        await self._store.append_consent(
            number,
            self._key(number),
            ConsentEntry(
                program=ALL_PROGRAMS,
                action=action,
                source=ConsentSource.SMS_KEYWORD,
                actor=message.provider or "sms",
                at=now,
                evidence_ref=message.id,
                evidence_text=message.text,
            ),
        )
        await self._announce_consent(
            self._key(number), ALL_PROGRAMS, action, ConsentSource.SMS_KEYWORD, message.id, now
        )

    async def _reply(
        self,
        number: str,
        message: SmsMessage,
        kind: Reply,
        message_kind: MessageKind,
        now: datetime,
        *,
        window: str = "",
    ) -> SmsMessage:
        contact = await self._store.get_contact(number) if number.startswith("+") else None
        text = self._settings.templates.reply(
            kind,
            language=contact.language if contact is not None and contact.language else None,
            personal=Personal(name=contact.name if contact is not None else "", window=window),
        )
        reply, created = await self._store.enqueue(
            OutboundDraft(
                key=f"reply:{message.id}",
                number=number,
                kind=message_kind,
                program=self._settings.program,
                text=text,
                due_at=now,
                created_at=now,
            )
        )
        if created:
            self.wake()
        return reply

    # -- consent ----------------------------------------------------------------------------------

    def _key(self, number: str) -> str:
        return number_key(number, self._settings.consent_secret)

    async def _status(self, number: str, program: str) -> ConsentStatus:
        return status_of(await self._store.consent_records(self._key(number)), program)

    async def _status_all(self, number: str) -> ConsentStatus:
        return overall_status(await self._store.consent_records(self._key(number)))

    def _number(self, raw: str) -> str:
        """The E.164 form of an API number, or the text of one we could not parse but know."""
        number = parse_phone(raw, self._settings.default_region)
        if number.e164 is None:
            raise ValidationError(f"not a valid phone number: {raw[:40]!r}")
        return number.e164

    async def consent(self, raw: str) -> ConsentView:
        """Current consent (overall and per program) and the ledger history of one number."""
        number = self._number(raw)
        records = await self._store.consent_records(self._key(number))
        programs = {
            p: status_of(records, p)
            for p in sorted({*self._settings.policies, *(r.program for r in records)} - {ALL_PROGRAMS})
        }
        return ConsentView(number=number, status=overall_status(records), programs=programs, history=records)

    async def record_consent(
        self,
        raw: str,
        *,
        action: ConsentAction,
        program: str,
        source: ConsentSource,
        actor: str,
        evidence: str = "",
    ) -> ConsentView:
        """Append a consent record given by a person (API, agent, IVR, import); an opt-out cancels."""
        number = self._number(raw)
        if source is ConsentSource.SMS_KEYWORD:
            raise ValidationError("SMS keyword records come from inbound texts only")
        if len(evidence) > MAX_INBOUND_CHARS:
            raise ValidationError("evidence too long")
        now = self._clock.now()
        ref = f"{source.value}:{uuid.uuid4().hex}"
        await self._store.append_consent(
            number,
            self._key(number),
            ConsentEntry(
                program=program,
                action=action,
                source=source,
                actor=actor,
                at=now,
                evidence_ref=ref,
                evidence_text=evidence,
            ),
        )
        await self._announce_consent(self._key(number), program, action, source, ref, now)
        if action is ConsentAction.OPT_OUT and program == ALL_PROGRAMS:
            await self._store.cancel_pending(number, "opted_out", now)
        return await self.consent(number)

    async def export_ledger(self) -> AsyncIterator[str]:
        """The whole ledger as CSV lines (header first), in append order."""
        columns = (
            "id", "number", "number_key", "seq", "program", "action", "source", "actor", "at",
            "evidence_ref", "evidence_digest", "prev_hash", "hash",
        )  # fmt: skip
        yield _csv_line(columns)
        after = 0
        while True:
            rows = await self._store.ledger(after_id=after, limit=500)
            if not rows:
                return
            for row_id, number, r in rows:
                yield _csv_line(
                    (
                        str(row_id),
                        number or "",
                        r.number_key,
                        str(r.seq),
                        r.program,
                        r.action.value,
                        r.source.value,
                        r.actor,
                        r.at.isoformat(),
                        r.evidence_ref,
                        r.evidence_digest,
                        r.prev_hash,
                        r.hash,
                    )  # fmt: skip
                )
                after = row_id

    # -- manual sends, contacts, threads, erasure ------------------------------------------------

    async def send_manual(self, raw: str, text: str, *, actor: str, key: str | None = None) -> SmsMessage:
        """Queue an agent's text; it goes when consent, quiet hours and the cap allow.

        :raises ValidationError: for a bad number or text. :raises ConflictError: when consent forbids it.
        """
        number = self._number(raw)
        if not text.strip() or len(text) > MAX_OUTBOUND_CHARS:
            raise ValidationError(f"text must be 1 to {MAX_OUTBOUND_CHARS} characters")
        status = await self._status(number, self._settings.program)
        if not policy_for(self._settings.program, self._settings.policies).allows(status):
            raise ConflictError(f"consent forbids texting this number ({status.value})")
        now = self._clock.now()
        message, created = await self._store.enqueue(
            OutboundDraft(
                key=f"manual:{key or uuid.uuid4().hex}",
                number=number,
                kind=MessageKind.MANUAL,
                program=self._settings.program,
                text=text,
                due_at=now,
                created_at=now,
                actor=actor,
            )
        )
        if created:
            self.wake()
        return message

    async def messages(
        self, *, number: str | None, needs_person: bool | None, cursor: str | None, limit: int
    ) -> Page[SmsMessage]:
        e164 = self._number(number) if number is not None else None
        return await self._store.messages(number=e164, needs_person=needs_person, cursor=cursor, limit=limit)

    async def contact(self, raw: str) -> Contact:
        number = self._number(raw)
        contact = await self._store.get_contact(number)
        if contact is None:
            raise NotFoundError(f"no contact for {mask_number(number)}")
        return contact

    async def put_contact(self, contact: Contact) -> Contact:
        return await self._store.put_contact(contact, self._clock.now())

    def normalise(self, raw: str) -> str:
        """The E.164 form of ``raw``. :raises ValidationError: when it does not parse."""
        return self._number(raw)

    async def callback_requests(self, *, number: str | None, open_only: bool) -> tuple[CallbackRequest, ...]:
        e164 = self._number(number) if number is not None else None
        return await self._store.callback_requests(number=e164, open_only=open_only)

    async def day_activity(self, since: datetime) -> SmsDay:
        """Sends, deliveries and opt-outs since ``since`` (for the statistics at start-up)."""
        return await self._store.day_activity(since)

    async def resolve_unknown(self, message_id: str, *, resend: bool, actor: str) -> SmsMessage:
        """A person's decision on an ``unknown`` message (handed over by a sender that died, no report):
        send it again (consent, quiet hours and cap are checked again) or close it as ``failed``.

        :raises NotFoundError: :raises ConflictError: the message is not ``unknown`` (a late report
            settled it, or someone decided already).
        """
        now = self._clock.now()
        if not await self._store.resolve_unknown(message_id, resend=resend, actor=actor, at=now):
            message = await self._store.get_message(message_id)
            raise ConflictError(f"message {message_id} is {message.status.value}, not unknown")
        if resend:
            self.wake()
        return await self._store.get_message(message_id)

    async def mark_handled(self, message_id: str) -> SmsMessage:
        return await self._store.mark_handled(message_id)

    async def erase(self, raw: str) -> Erasure:
        """Erase a number's personal data; its opt-out (by keyed hash) stays in force.

        The open callbacks it cancelled publish their ``CallbackStateChanged`` (with the pseudonym),
        as any other cancellation. The voicemail audio and previews it hands back in the
        :class:`Erasure` are for the caller to delete (:meth:`VoicemailService.erase_files`).

        A callback connected at that moment goes on under the pseudonym (the dispatcher never
        dials a pseudonym again).

        :raises ConflictError: a callback to the number changed during the erasure (nothing is
            erased; try again).
        """
        number = self._number(raw)
        pseudonym = ERASED_PREFIX + self._key(number)[:16]
        erasure = await self._store.erase(number, pseudonym, self._clock.now())
        if self.publish is not None:
            for callback, change in erasure.cancelled:
                try:
                    await self.publish(state_event(callback, change))
                except Exception as exc:  # the store is the truth: a lost event is logged, not raised
                    logger.error("event bus: callback %s cancellation not published: %s", callback.id, exc)
        return erasure

    async def delivery_report(
        self, provider: str, provider_id: str, status: MessageStatus, error: str = ""
    ) -> bool:
        """Apply ``provider``'s report on a message it sent; ``False`` when it sent no such message.

        Reports arriving together (a provider reports many texts at once) are stored in one transaction.

        :raises ValidationError: for an empty id or one with control characters (it could name no
            message, and an empty one would match every text not yet answered).
        """
        if not provider_id or not provider_id.isprintable():
            raise ValidationError("a delivery report must name a message id (printable characters)")
        applied = await self._reports.submit(Report(provider, provider_id, status, error))
        if applied.moved is not None:
            message_id, kind = applied.moved
            await self._announce_status(message_id, status, kind)
        return applied.known

    async def _store_reports(self, reports: Sequence[Report]) -> Sequence[ReportApplied]:
        return await self._store.delivery_reports(reports, self._clock.now())

    # -- the outbox sender ------------------------------------------------------------------------

    async def send_due(self) -> int:
        """Claim due messages and act on each; returns how many were claimed, once all are settled.

        The claim, the send-time checks of the whole batch (one read of its facts, decided in
        memory) and the hand-over of its first texts are one transaction (:class:`ClaimChecks`);
        messages to different numbers go side by side (``send_concurrency``), those to one number in
        order; every later outcome is written through a group commit (:mod:`callcenter.sms.outbox`).
        """
        return await self._send_due(None)

    async def _send_due(self, background: asyncio.TaskGroup | None) -> int:
        """:meth:`send_due`; with ``background``, the batch goes on in a task of that group and this
        returns as soon as every text of it is under way (its pass is free to claim again)."""
        now = self._clock.now()
        plan = _Plan()
        checks = ClaimChecks(
            since=min(now - CAP_PERIOD, now - self._settings.rules.resend_after),
            key=self._key,
            decide=lambda fresh, facts: self._plan(plan, fresh, facts, now),
        )
        try:
            async with self._claiming:  # one claim at a time: the next one sees what this one took
                claimed = await self._store.claim_due(
                    now, lease_s=self._settings.lease_s, limit=self._settings.batch, checks=checks
                )
        except BaseException:
            # The claim's transaction failed: nothing was handed over.
            self._give_back(plan.spare + len(plan.held))
            raise
        # Permits the claim took for texts it did not hand over after all (a retried transaction
        # that found fewer to send); those it handed over belong to the texts (``plan.held``).
        self._give_back(plan.spare)
        plan.spare = 0
        if not claimed:
            return 0
        full = len(claimed) >= self._settings.batch
        if background is None:
            await self._work(claimed, plan, full=full, under_way=None)
            return len(claimed)
        under_way = asyncio.Event()
        batch = background.create_task(self._work_logged(claimed, plan, full=full, under_way=under_way))
        waiting = asyncio.ensure_future(under_way.wait())
        try:
            await asyncio.wait((batch, waiting), return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiting.cancel()
        return len(claimed)

    def _give_back(self, permits: int) -> None:
        for _ in range(permits):
            self._ahead.release()

    async def _plan(
        self, plan: _Plan, fresh: Sequence[SmsMessage], facts: Mapping[str, SendFacts], now: datetime
    ) -> list[Outcome]:
        """Inside the claim's transaction: each fresh message's verdict, and the hand-over of those to
        send, as many as the texts-ahead limit allows without waiting (the others are handed over
        when a permit frees up, as before)."""
        verdicts = await self._decide(fresh, facts, now)
        to_send = [m for m in fresh if verdicts[m.id] is None]
        # A retried transaction reuses the permits its first attempt took.
        permits = plan.spare + len(plan.held)
        # Never waits: a permit is taken only while one is free (and nobody queues for one).
        while permits < len(to_send) and not self._ahead.locked():
            await self._ahead.acquire()
            permits += 1
        handed = to_send[:permits]
        plan.verdicts = verdicts
        plan.held = {m.id for m in handed}
        plan.spare = permits - len(handed)
        hold = plan.hold = now + self._hold()
        outcomes: list[Outcome] = [o for o in verdicts.values() if o is not None]
        outcomes += [Handed(m.id, self._provider.name, hold, m.claimed_until) for m in handed]
        return outcomes

    def _hold(self) -> timedelta:
        """How long a handed-over text's claim lasts: the wait for its delivery report."""
        return timedelta(seconds=max(self._settings.lease_s, self._settings.report_wait_s))

    def _hold_of(self, message: SmsMessage) -> datetime:
        """The hold of a text handed over after its claim: counted from the claim's end (the hand-over
        comes before it, or not at all), so at least the wait for a report from the hand-over."""
        return (message.claimed_until or self._clock.now()) + self._hold()

    async def _work_logged(
        self, claimed: tuple[SmsMessage, ...], plan: _Plan, *, full: bool, under_way: asyncio.Event
    ) -> None:
        """:meth:`_work` in the background: a failure is logged (its texts' claims expire and another
        pass looks at them again), never the end of the sender."""
        try:
            await self._work(claimed, plan, full=full, under_way=under_way)
        except CallCenterError:
            logger.exception("an SMS outbox batch failed; its texts will be looked at again")
        finally:
            under_way.set()

    async def _work(
        self,
        claimed: tuple[SmsMessage, ...],
        plan: _Plan,
        *,
        full: bool,
        under_way: asyncio.Event | None,
    ) -> None:
        """Send a claimed batch; ``under_way`` is set once every text of it has started."""
        commit: GroupCommit[Outcome, datetime | None] = GroupCommit(self._record)
        started: set[str] = set()
        try:
            to_send = await self._settle(claimed, plan, commit)
            # A full batch: more may be due. The next claim starts when only a round of requests is
            # left to start in this batch, so its texts are checked and ready before this batch ends.
            early = max(1, len(to_send) - self._settings.send_concurrency) if full else None
            if full and not to_send:
                self.wake()
            if not to_send and under_way is not None:
                under_way.set()

            def on_start() -> None:
                if len(started) == early:
                    self.wake()
                if len(started) == len(to_send) and under_way is not None:
                    under_way.set()

            # Texts to one number go in order; different numbers go side by side.
            by_number: dict[str, list[SmsMessage]] = {}
            for message in to_send:
                by_number.setdefault(message.number, []).append(message)

            async def in_order(messages: list[SmsMessage]) -> None:
                for message in messages:
                    try:
                        await self._send_one(message, commit, started, plan, on_start)
                    except CallCenterError:
                        # The claim expires and another pass looks at it again; nothing is lost.
                        logger.exception("sending message %s failed; it will be looked at again", message.id)

            async with asyncio.TaskGroup() as group:
                for messages in by_number.values():
                    group.create_task(in_order(messages))
        except asyncio.CancelledError:
            # Not requested (never claimed before, never started, or handed over by this claim
            # and not started): safe to give back now.
            await self._release(
                [
                    (m.id, m.claimed_until, plan.hold if m.id in plan.held else None)
                    for m in claimed
                    if not m.provider and m.id not in started
                ]
            )
            raise
        finally:
            # Texts handed over by the claim whose sending never started hold a permit each.
            self._give_back(len(plan.held))
            plan.held = set()

    async def _settle(
        self, claimed: tuple[SmsMessage, ...], plan: _Plan, commit: GroupCommit[Outcome, datetime | None]
    ) -> list[SmsMessage]:
        """Announce what the claim's checks decided, settle texts a dead sender had handed over;
        returns the messages to send."""
        for outcome in plan.verdicts.values():
            if isinstance(outcome, Cancelled):
                logger.info("message %s cancelled: %s", outcome.message_id, outcome.reason)
        overdue = [await self._overdue(m) for m in claimed if m.provider]
        if overdue:
            await commit.submit_all(overdue)
        for outcome in overdue:
            if isinstance(outcome, Sent):
                await self._announce_status(outcome.message_id, MessageStatus.SENT, _kind(claimed, outcome))
        return [
            m for m in claimed if not m.provider and m.id in plan.verdicts and plan.verdicts[m.id] is None
        ]

    async def _release(self, unsent: list[tuple[str, datetime | None, datetime | None]]) -> None:
        """Shutting down: texts not yet requested are given back at once rather than when their
        claim expires (best effort: if this write is lost, the claim still expires). Each comes with
        the ``claimed_until`` values this sender gave it (its claim, its hand-over's hold if any): one
        whose claim ran out and was taken by another sender meanwhile is that sender's, not given back."""
        if not unsent:
            return
        now = self._clock.now()
        release = [Deferred(i, now, "released at shutdown", claim, hold) for i, claim, hold in unsent]
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await asyncio.shield(self._store.record_outcomes(release, self._clock.now()))

    async def _record(self, outcomes: Sequence[Outcome]) -> list[datetime | None]:
        """One round of outcomes; a hand-over's answer is the hold it got, ``None`` if it was refused
        (see :meth:`SmsStore.record_outcomes`); the others' answers are ``None`` (nobody reads them)."""
        handed = await self._store.record_outcomes(outcomes, self._clock.now())
        return [handed.get(o.message_id) if isinstance(o, Handed) else None for o in outcomes]

    async def _overdue(self, message: SmsMessage) -> Outcome:
        """A message handed to the provider whose sender died and whose report is overdue."""
        earlier = await self._provider.sent_before(message.id)
        if earlier is not None:
            return Sent(message.id, message.provider or self._provider.name, earlier, self._clock.now())
        logger.warning(
            "message %s to %s was handed to %s by a sender that died, and no delivery report came: "
            "marked unknown for a person (not re-sent blindly)",
            message.id,
            mask_number(message.number),
            message.provider,
        )
        return Unknown(
            message.id, f"handed to {message.provider}; no delivery report; may or may not have gone"
        )

    async def _send_one(
        self,
        message: SmsMessage,
        commit: GroupCommit[Outcome, datetime | None],
        started: set[str],
        plan: _Plan,
        on_start: Callable[[], None],
    ) -> None:
        outcome: Outcome
        # Up to ``send_concurrency`` texts are handed over ahead of those in flight, so a free request
        # slot never waits for a hand-over commit; ``_gate`` covers the provider's request only, and
        # the "sent" write waits outside both. A text the claim handed over holds its permit already.
        handed = message.id in plan.held
        # The claimed_until values this text has while it is this sender's (see :meth:`_release`): a
        # hand-over's hold counts from the claim, so each sender's is its own and known in advance.
        hold = plan.hold if handed else self._hold_of(message)
        if handed:
            plan.held.discard(message.id)
        else:
            await self._ahead.acquire()
        try:
            started.add(message.id)
            on_start()
            try:
                if not handed:
                    # Stored before the provider gets it: after a crash this text is not re-sent
                    # blindly. Stored only under this pass's claim: one that ran out meanwhile (the
                    # text may be another sender's now) or a text an opt-out cancelled is not sent.
                    hand_over = Handed(
                        message.id, self._provider.name, self._hold_of(message), message.claimed_until
                    )
                    if await commit.submit(hand_over) is None:
                        logger.warning(
                            "message %s to %s not sent by this pass: its claim ran out before the "
                            "hand-over, or an opt-out cancelled it",
                            message.id,
                            mask_number(message.number),
                        )
                        return
                await self._gate.acquire()
            except (asyncio.CancelledError, CallCenterError):
                # Never requested (the hand-over may or may not be stored): a stopping sender gives
                # it back, if it is still its own (its claim, or its hand-over's hold). A sender that
                # dies right here leaves it handed over: it waits for its report, then becomes
                # ``unknown`` for a person, never sent twice.
                await self._release([(message.id, message.claimed_until, hold)])
                raise
            try:
                try:
                    provider_id = await self._finish_on_shutdown(message)
                except ProviderError as exc:
                    retry = not exc.permanent and message.attempts < self._settings.max_attempts
                    retry_at = (
                        self._clock.now() + timedelta(seconds=self._backoff(message)) if retry else None
                    )
                    outcome = Failed(message.id, str(exc), retry_at)
                    logger.warning(
                        "provider refused message %s (%s); %s",
                        message.id,
                        exc,
                        "retrying" if retry else "giving up",
                    )
                else:
                    outcome = Sent(message.id, self._provider.name, provider_id, self._clock.now())
            finally:
                self._gate.release()
        finally:
            self._ahead.release()
        await commit.submit(outcome)
        if isinstance(outcome, Sent):
            await self._announce_status(message.id, MessageStatus.SENT, message.kind)

    async def _finish_on_shutdown(self, message: SmsMessage) -> str:
        """The provider request of a handed-over text; if the sender is stopped meanwhile, the request
        is finished (bounded by the provider's own timeout) and its outcome stored before stopping:
        the provider may already have the text, and only the answer says so."""
        request = asyncio.ensure_future(
            self._provider.send(Outgoing(message.id, message.number, message.text))
        )
        try:
            return await asyncio.shield(request)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                try:
                    provider_id = await request
                except ProviderError as exc:
                    outcome: Outcome = Failed(message.id, str(exc), self._clock.now())
                else:
                    outcome = Sent(message.id, self._provider.name, provider_id, self._clock.now())
                await self._store.record_outcomes([outcome], self._clock.now())
            raise

    async def _decide(
        self, messages: Sequence[SmsMessage], facts: Mapping[str, SendFacts], now: datetime
    ) -> dict[str, Outcome | None]:
        """Each message's fate from one read of the batch's facts: an outcome, or ``None`` to send it."""
        closed = {
            m.call_id: await self._closed(m.call_id)
            for m in messages
            if m.kind is MessageKind.FOLLOW_UP and m.call_id is not None
        }
        decided: dict[str, Outcome | None] = {}
        # Sends decided earlier in this batch count for the cap and the resend window of the next.
        planned: dict[str, list[tuple[MessageKind, datetime]]] = {}
        for message in messages:
            kind = message.kind or MessageKind.REPLY
            mine = planned.setdefault(message.number, [])
            verdict = self._verdict(message, facts[message.number], mine, closed, now)
            if isinstance(verdict, Cancel):
                decided[message.id] = Cancelled(message.id, verdict.reason)
            elif isinstance(verdict, Defer):
                decided[message.id] = Deferred(
                    message.id, verdict.until, verdict.reason, message.claimed_until
                )
            else:
                decided[message.id] = None
                mine.append((kind, now))
        return decided

    def _verdict(
        self,
        message: SmsMessage,
        facts: SendFacts,
        planned: list[tuple[MessageKind, datetime]],
        closed: Mapping[str, bool],
        now: datetime,
    ) -> Cancel | Defer | None:
        kind = message.kind or MessageKind.REPLY
        if kind is MessageKind.FOLLOW_UP and message.call_id is not None and closed.get(message.call_id):
            return Cancel("closed")
        capped = (*facts.capped_sends, *(at for k, at in planned if k in CAPPED_KINDS))
        if kind is MessageKind.FOLLOW_UP:
            resend_from = now - self._settings.rules.resend_after
            follow_ups = (*facts.follow_up_sends, *(at for k, at in planned if k is MessageKind.FOLLOW_UP))
            if any(t > resend_from for t in follow_ups):
                return Cancel("recently_texted")
        if message.number.startswith("+"):
            contact = facts.contact
            recipient = recipient_for(
                message.number,
                zone=contact.time_zone if contact is not None else None,
                region=contact.region if contact is not None and contact.region else None,
            )
        elif kind in (MessageKind.FOLLOW_UP, MessageKind.MANUAL):
            return Cancel("no_time_zone")
        else:
            # A reply to a sender we cannot place (a short code): replies ignore quiet hours anyway.
            recipient = Recipient(zones=(ZoneInfo("UTC"),))
        try:
            verdict = send_verdict(
                kind,
                now=now,
                consent=status_of(facts.consent, message.program),
                policy=policy_for(message.program, self._settings.policies),
                recipient=recipient,
                recent_sends=capped,
                rules=self._settings.rules,
            )
        except ValidationError as exc:
            return Cancel(f"no_allowed_hours: {exc}")
        return verdict if isinstance(verdict, Cancel | Defer) else None

    def _backoff(self, message: SmsMessage) -> float:
        delay = min(
            self._settings.retry_max_s, self._settings.retry_base_s * 2 ** max(0, message.attempts - 1)
        )
        # Deterministic jitter per message: retries of many messages do not stampede together.
        spread = int(hashlib.sha256(message.id.encode()).hexdigest()[:4], 16) / 0xFFFF
        return float(delay * (0.8 + 0.4 * spread))

    def wake(self) -> None:
        """Something may be due: one waiting pass claims (at once, or when one is free)."""
        self._wanted = True
        self._wake.set()

    async def run(self) -> None:
        """Send due messages until cancelled: at once when something is queued, else every ``poll_s``.

        Up to ``passes`` claims are being started at once, so the next batch is claimed and checked
        while the last texts of the previous one are still with the provider; a pass is free again
        once every text of its batch is under way (the batch finishes in the background). All share
        one limit of ``send_concurrency`` requests in flight, and a claim never takes a number that
        has a text in flight (texts to one number stay in order). A wake starts one claim, not one
        per pass: a new text wakes one, and a full batch wakes the next one when only a round of
        requests is left to start in it, so the batches follow each other without a gap.
        """
        self.wake()
        async with asyncio.TaskGroup() as group:
            for index in range(max(1, self._settings.passes)):
                group.create_task(self._pass_loop(group, polls=index == 0))

    async def _pass_loop(self, group: asyncio.TaskGroup, *, polls: bool) -> None:
        """One pass: a claim per wake taken (see :meth:`run`); only the first pass also polls (an
        empty claim costs a write). A pass is free again once every text of its batch is under way
        (the rest of the batch goes on in ``group``), not when the last one is answered."""
        while True:
            polled = False
            try:
                async with asyncio.timeout(self._settings.poll_s if polls else None):
                    while not self._wanted:
                        await self._wake.wait()
                        self._wake.clear()
            except TimeoutError:
                polled = True
            if not (self._wanted or polled):
                continue
            self._wanted = False
            try:
                await self._send_due(group)
            except CallCenterError:
                logger.exception("the SMS outbox pass failed; retrying")

    # -- the statistics' SMS events (issue 10) ------------------------------------------------------

    async def _announce_status(
        self, message_id: str, status: MessageStatus, kind: MessageKind | None
    ) -> None:
        """Publish a ``sent``, ``delivered`` or ``failed`` after the store recorded it."""
        if status in (MessageStatus.SENT, MessageStatus.DELIVERED, MessageStatus.FAILED):
            await self._announce(
                SmsStatusChanged(
                    event_id=f"sms:{message_id}:{status.value}",
                    occurred_at=self._clock.now(),
                    message_id=message_id,
                    status=status.value,
                    kind=kind.value if kind is not None else "",
                )
            )

    async def _announce_consent(
        self,
        key: str,
        program: str,
        action: ConsentAction,
        source: ConsentSource,
        evidence: str,
        now: datetime,
    ) -> None:
        """Publish a consent-ledger entry (the number by its keyed hash only)."""
        await self._announce(
            SmsConsentChanged(
                event_id=consent_event_id(key, evidence),
                occurred_at=now,
                key=key,
                program=program,
                action=action.value,
                source=source.value,
            )
        )

    async def _announce(self, event: DomainEvent) -> None:
        """A failed publish is logged and lost for the live board only: the store holds the truth."""
        if self.publish is None:
            return
        try:
            await self.publish(event)
        except Exception:
            logger.exception("publishing %s failed; the live board misses it", event.event_type)


@dataclass(slots=True)
class _Plan:
    """What one claim's checks decided (filled inside its transaction, see :meth:`SmsEngine._plan`).

    ``verdicts``: each fresh message's outcome, ``None`` to send it; ``held``: the texts the claim
    handed over whose sending has not started, each holding one of the texts-ahead permits;
    ``spare``: permits taken beyond those (given back once the claim is done).
    """

    verdicts: dict[str, Outcome | None] = field(default_factory=dict)
    held: set[str] = field(default_factory=set)
    spare: int = 0
    #: The hold the claim's hand-overs got (their ``claimed_until``).
    hold: datetime | None = None


def _round_up(at: datetime, *, minutes: int) -> datetime:
    step = minutes * 60
    seconds = at.minute * 60 + at.second + at.microsecond / 1e6
    extra = (-seconds) % step
    return (at + timedelta(seconds=extra)).replace(microsecond=0)


def _kind(claimed: tuple[SmsMessage, ...], outcome: Sent) -> MessageKind | None:
    return next((m.kind for m in claimed if m.id == outcome.message_id), None)


def _csv_line(values: tuple[str, ...]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(values)
    return buffer.getvalue()
