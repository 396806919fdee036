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
import csv
import hashlib
import io
import logging
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo

from callcenter.bus import Delivery
from callcenter.clock import Clock
from callcenter.errors import CallCenterError, ConflictError, NotFoundError, ValidationError
from callcenter.model.events import CallEnded, DomainEvent, SmsConsentChanged, SmsStatusChanged
from callcenter.model.paging import Page
from callcenter.model.phone import mask_number, parse_phone
from callcenter.model.vocabulary import CallOutcome
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
from callcenter.sms.ports import Outgoing, ProviderError, SmsDay, SmsProvider, SmsStore
from callcenter.sms.quiet import Recipient
from callcenter.sms.recipient import recipient_for
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
    Cancel,
    Defer,
    MessageKind,
    SmsRules,
    TriggerFacts,
    follow_up_skip,
    send_verdict,
)
from callcenter.sms.templates import Personal, Reply, Templates

logger = logging.getLogger(__name__)

#: The bus consumer group whose handler is :meth:`SmsEngine.handle`.
CONSUMER_GROUP: Final = "sms-follow-up"
#: Longest inbound text we store (a long concatenated SMS is about 1,600 characters).
MAX_INBOUND_CHARS: Final = 2_000
MAX_OUTBOUND_CHARS: Final = 1_600
_SENDER = re.compile(r"^[+\w][\w .()+-]{0,31}$")


@dataclass(frozen=True, kw_only=True, slots=True)
class EngineSettings:
    """How the engine behaves.

    :param consent_secret: key of the ledger's number hash (keep it: a new key forgets opt-outs).
    :param lease_s: how long a claimed message is reserved for the sender that claimed it.
    :param max_attempts: provider attempts before a message fails for good.
    :param retry_base_s: first retry delay; doubled per attempt up to ``retry_max_s``.
    :param send_concurrency: provider requests in flight at once (texts to one number stay in order).
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
        #: Publishes the statistics' SMS events (sent, delivered, consent changed); ``None``: none.
        self.publish: Callable[[DomainEvent], Awaitable[object]] | None = None

    @property
    def provider_name(self) -> str:
        return self._provider.name

    # -- triggers ---------------------------------------------------------------------------------

    async def handle(self, delivery: Delivery) -> None:
        """Bus handler: follow up a missed call (other events are acknowledged and ignored)."""
        if isinstance(delivery.event, CallEnded):
            await self.on_call_ended(delivery.event)

    async def on_call_ended(self, event: CallEnded) -> SmsMessage | None:
        """Queue the follow-up of a missed call, once per call; ``None`` when the rules skip it."""
        now = self._clock.now()
        number = parse_phone(event.caller, self._settings.default_region)
        policy = policy_for(self._settings.program, self._settings.policies)
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
            self._wake.set()
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
            request, _ = await self._store.request_callback(sender, message.id, now)
            replies = (await self._reply(sender, message, Reply.CALLBACK_REQUESTED, MessageKind.REPLY, now),)
            return InboundResult(message=message, intent=intent, replies=replies, callback=request)
        if intent is Intent.CANCEL_CALLBACK:
            cancelled = await self._store.cancel_callback(sender, now)
            kind = Reply.CALLBACK_CANCELLED if cancelled is not None else Reply.NO_OPEN_CALLBACK
            replies = (await self._reply(sender, message, kind, MessageKind.REPLY, now),)
            return InboundResult(message=message, intent=intent, replies=replies, callback=cancelled)
        # Anything else waits for a person (the worklist): no automatic answer pretends to be one.
        return InboundResult(message=message, intent=intent, replies=())

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
        self, number: str, message: SmsMessage, kind: Reply, message_kind: MessageKind, now: datetime
    ) -> SmsMessage:
        contact = await self._store.get_contact(number) if number.startswith("+") else None
        text = self._settings.templates.reply(
            kind,
            language=contact.language if contact is not None and contact.language else None,
            personal=Personal(name=contact.name if contact is not None else ""),
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
            self._wake.set()
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
            self._wake.set()
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

    async def mark_handled(self, message_id: str) -> SmsMessage:
        return await self._store.mark_handled(message_id)

    async def erase(self, raw: str) -> Erasure:
        """Erase a number's personal data; its opt-out (by keyed hash) stays in force."""
        number = self._number(raw)
        pseudonym = "erased:" + self._key(number)[:16]
        return await self._store.erase(number, pseudonym, self._clock.now())

    async def delivery_report(
        self, provider: str, provider_id: str, status: MessageStatus, error: str = ""
    ) -> bool:
        """Apply ``provider``'s report on a message it sent; ``False`` when it sent no such message."""
        applied = await self._store.delivery_report(provider, provider_id, status, error, self._clock.now())
        if applied.moved is not None:
            message_id, kind = applied.moved
            await self._announce_status(message_id, status, kind)
        return applied.known

    # -- the outbox sender ------------------------------------------------------------------------

    async def send_due(self) -> int:
        """Claim due messages and act on each; returns how many were claimed."""
        now = self._clock.now()
        claimed = await self._store.claim_due(now, lease_s=self._settings.lease_s, limit=self._settings.batch)
        gate = asyncio.Semaphore(self._settings.send_concurrency)

        async def one(message: SmsMessage) -> None:
            async with gate:
                try:
                    await self._send_one(message, now)
                except CallCenterError:
                    # The claim expires and another pass takes it again; nothing is lost.
                    logger.exception("sending message %s failed; it will be retried", message.id)

        # Texts to one number go in order; different numbers go side by side.
        by_number: dict[str, list[SmsMessage]] = {}
        for message in claimed:
            by_number.setdefault(message.number, []).append(message)

        async def in_order(messages: list[SmsMessage]) -> None:
            for message in messages:
                await one(message)

        async with asyncio.TaskGroup() as group:
            for messages in by_number.values():
                group.create_task(in_order(messages))
        return len(claimed)

    async def _send_one(self, message: SmsMessage, now: datetime) -> None:
        if message.attempts > 1:
            # A sender may have died after the provider took it: ask before sending again.
            earlier = await self._provider.sent_before(message.id)
            if earlier is not None:
                await self._store.mark_sent(message.id, self._provider.name, earlier, now)
                await self._announce_status(message.id, MessageStatus.SENT, message.kind)
                return
        verdict = await self._verdict(message, now)
        if isinstance(verdict, Cancel):
            await self._store.cancel(message.id, verdict.reason, now)
            logger.info(
                "message %s to %s cancelled: %s", message.id, mask_number(message.number), verdict.reason
            )
            return
        if isinstance(verdict, Defer):
            await self._store.defer(message.id, verdict.until, verdict.reason, now)
            return
        try:
            provider_id = await self._provider.send(Outgoing(message.id, message.number, message.text))
        except ProviderError as exc:
            retry = not exc.permanent and message.attempts < self._settings.max_attempts
            retry_at = now + timedelta(seconds=self._backoff(message)) if retry else None
            await self._store.mark_failed(message.id, str(exc), now, retry_at=retry_at)
            logger.warning(
                "provider refused message %s (%s); %s", message.id, exc, "retrying" if retry else "giving up"
            )
            return
        await self._store.mark_sent(message.id, self._provider.name, provider_id, self._clock.now())
        await self._announce_status(message.id, MessageStatus.SENT, message.kind)

    async def _verdict(self, message: SmsMessage, now: datetime) -> Cancel | Defer | None:
        kind = message.kind or MessageKind.REPLY
        if (
            kind is MessageKind.FOLLOW_UP
            and message.call_id is not None
            and await self._closed(message.call_id)
        ):
            return Cancel("closed")
        since = min(now - CAP_PERIOD, now - self._settings.rules.resend_after)
        facts = await self._store.send_facts(message.number, self._key(message.number), since)
        if kind is MessageKind.FOLLOW_UP:
            resend_from = now - self._settings.rules.resend_after
            if any(t > resend_from for t in facts.follow_up_sends):
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
                recent_sends=facts.capped_sends,
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
        self._wake.set()

    async def run(self) -> None:
        """Send due messages until cancelled: at once when something is queued, else every ``poll_s``."""
        while True:
            try:
                while await self.send_due() >= self._settings.batch:
                    pass
            except CallCenterError:
                logger.exception("the SMS outbox pass failed; retrying")
            self._wake.clear()
            try:
                async with asyncio.timeout(self._settings.poll_s):
                    await self._wake.wait()
            except TimeoutError:
                pass

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


def _csv_line(values: tuple[str, ...]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(values)
    return buffer.getvalue()
