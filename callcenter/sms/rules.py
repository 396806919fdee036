"""Which missed calls get a follow-up, and whether a queued message may go now (pure).

Two moments decide: the trigger (:func:`follow_up_skip`, when ``CallEnded`` arrives) and the send
(:func:`send_verdict`, each time the outbox picks a message up). Consent is checked again at send time,
so a STOP that arrives while a message waits cancels it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

from callcenter.errors import ValidationError
from callcenter.model.phone import PhoneNumber
from callcenter.model.vocabulary import CallOutcome
from callcenter.sms.consent import ConsentPolicy, ConsentStatus
from callcenter.sms.quiet import QuietRules, Recipient, is_allowed, next_opening
from callcenter.sms.recipient import LineType, line_type

#: Outcomes that start a follow-up by default; ``short_abandon`` and ``ivr_hangup`` are opt-in.
DEFAULT_TRIGGERS: Final = frozenset(
    {
        CallOutcome.ABANDONED,
        CallOutcome.UNANSWERED_TIMEOUT,
        CallOutcome.UNANSWERED_NO_AGENTS,
        CallOutcome.UNANSWERED_FULL,
        CallOutcome.AFTER_HOURS,
        CallOutcome.VOICEMAIL,
        CallOutcome.FAILED,
    }
)
#: How far back the per-number cap counts.
CAP_PERIOD: Final = timedelta(hours=24)


class MessageKind(StrEnum):
    """Why a message goes out; decides which checks apply at send time."""

    FOLLOW_UP = "follow_up"  # after a missed call: consent policy, quiet hours, cap
    MANUAL = "manual"  # an agent's text: consent policy, quiet hours, cap
    REPLY = "reply"  # answer to the recipient's own text: not to an opted-out number
    COMPLIANCE = "compliance"  # HELP answer, the one opt-out confirmation: always
    NOTICE = "notice"  # about the recipient's own callback or voicemail: consent policy, quiet hours


#: Kinds counted by the per-number cap.
CAPPED_KINDS: Final = (MessageKind.FOLLOW_UP, MessageKind.MANUAL)


class Skip(StrEnum):
    """Why a missed call gets no follow-up."""

    OUTCOME_OFF = "outcome_off"
    WITHHELD = "withheld"
    UNPARSEABLE = "unparseable"
    NOT_MOBILE = "not_mobile"
    CLOSED = "closed"
    RECENTLY_TEXTED = "recently_texted"
    CONSENT = "consent"


@dataclass(frozen=True, kw_only=True, slots=True)
class SmsRules:
    """The configurable part of the decisions.

    :param triggers: outcomes that start a follow-up.
    :param require_mobile: skip numbers the numbering plan knows are not mobile.
    :param resend_after: no second follow-up to a number within this time of the last one.
    :param daily_cap: at most this many follow-ups and manual texts per number in 24 hours.
    """

    triggers: frozenset[CallOutcome] = DEFAULT_TRIGGERS
    require_mobile: bool = True
    resend_after: timedelta = timedelta(hours=24)
    daily_cap: int = 3
    quiet: QuietRules = field(default_factory=QuietRules)

    def __post_init__(self) -> None:
        if CallOutcome.ANSWERED in self.triggers:
            raise ValidationError("an answered call is not a missed call: it cannot trigger a follow-up")
        if self.daily_cap < 1:
            raise ValidationError(f"daily_cap must be at least 1, not {self.daily_cap}")
        if self.resend_after < timedelta(0):
            raise ValidationError("resend_after cannot be negative")


@dataclass(frozen=True, kw_only=True, slots=True)
class TriggerFacts:
    """What the store knows about the caller when a missed call ends."""

    closed: bool
    last_follow_up_at: datetime | None
    consent: ConsentStatus


def follow_up_skip_without_facts(
    outcome: CallOutcome, number: PhoneNumber, *, rules: SmsRules
) -> Skip | None:
    """The reasons :func:`follow_up_skip` checks first, which need no stored facts (no query).

    Most calls end answered: their follow-up is skipped here, before the store is asked anything.
    """
    if outcome not in rules.triggers:
        return Skip.OUTCOME_OFF
    if number.is_withheld:
        return Skip.WITHHELD
    if number.e164 is None:
        return Skip.UNPARSEABLE
    if rules.require_mobile and line_type(number.e164) in (LineType.FIXED, LineType.OTHER):
        return Skip.NOT_MOBILE
    return None


def follow_up_skip(
    outcome: CallOutcome,
    number: PhoneNumber,
    facts: TriggerFacts,
    *,
    now: datetime,
    rules: SmsRules,
    policy: ConsentPolicy,
) -> Skip | None:
    """``None`` when the missed call gets a follow-up, else the first reason it does not."""
    skip = follow_up_skip_without_facts(outcome, number, rules=rules)
    if skip is not None:
        return skip
    if facts.closed:
        return Skip.CLOSED
    if facts.last_follow_up_at is not None and now - facts.last_follow_up_at < rules.resend_after:
        return Skip.RECENTLY_TEXTED
    if not policy.allows(facts.consent):
        return Skip.CONSENT
    return None


@dataclass(frozen=True, slots=True)
class Send:
    pass


@dataclass(frozen=True, slots=True)
class Defer:
    until: datetime
    reason: str


@dataclass(frozen=True, slots=True)
class Cancel:
    reason: str


Verdict = Send | Defer | Cancel


def send_verdict(
    kind: MessageKind,
    *,
    now: datetime,
    consent: ConsentStatus,
    policy: ConsentPolicy,
    recipient: Recipient,
    recent_sends: Iterable[datetime],
    rules: SmsRules,
) -> Verdict:
    """May a queued message of ``kind`` go out at ``now``?

    :param recent_sends: when capped messages (follow-ups and manual ones) to this number went out.
    """
    if kind is MessageKind.COMPLIANCE:
        return Send()
    if consent is ConsentStatus.OPTED_OUT:
        return Cancel("opted_out")
    if kind is MessageKind.REPLY:
        return Send()
    if not policy.allows(consent):
        return Cancel("no_consent")
    window_start = now - CAP_PERIOD
    in_period = sorted(t for t in recent_sends if t > window_start)
    due = now
    reason = "quiet_hours"
    if kind in CAPPED_KINDS and len(in_period) >= rules.daily_cap:
        # The cap frees up when the oldest send in the period leaves it.
        due = in_period[len(in_period) - rules.daily_cap] + CAP_PERIOD
        reason = "daily_cap"
    if due == now and is_allowed(now, recipient, rules.quiet):
        return Send()
    return Defer(next_opening(due, recipient, rules.quiet), reason)
