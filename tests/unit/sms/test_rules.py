"""Trigger rules for missed calls and the send-time verdict (consent, quiet hours, caps)."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from callcenter.errors import ValidationError
from callcenter.model.phone import parse_phone
from callcenter.model.vocabulary import CallOutcome
from callcenter.sms.consent import INFORMATIONAL, MARKETING, ConsentStatus, policy_for
from callcenter.sms.quiet import Recipient
from callcenter.sms.rules import (
    Cancel,
    Defer,
    MessageKind,
    Send,
    Skip,
    SmsRules,
    TriggerFacts,
    follow_up_skip,
    send_verdict,
)

NY = ZoneInfo("America/New_York")
NOON = datetime(2026, 11, 23, 12, 0, tzinfo=NY)
RULES = SmsRules()
FRESH = TriggerFacts(closed=False, last_follow_up_at=None, consent=ConsentStatus.UNKNOWN)
MOBILE = parse_phone("+33612345678")


def skip(
    outcome: CallOutcome = CallOutcome.ABANDONED,
    number=MOBILE,
    facts=FRESH,
    rules=RULES,
    program=INFORMATIONAL,
):  # type: ignore[no-untyped-def]
    return follow_up_skip(outcome, number, facts, now=NOON, rules=rules, policy=policy_for(program))


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [
        (CallOutcome.ABANDONED, None),
        (CallOutcome.UNANSWERED_TIMEOUT, None),
        (CallOutcome.UNANSWERED_NO_AGENTS, None),
        (CallOutcome.UNANSWERED_FULL, None),
        (CallOutcome.AFTER_HOURS, None),
        (CallOutcome.VOICEMAIL, None),
        (CallOutcome.FAILED, None),
        (CallOutcome.SHORT_ABANDON, Skip.OUTCOME_OFF),
        (CallOutcome.IVR_HANGUP, Skip.OUTCOME_OFF),
        (CallOutcome.ANSWERED, Skip.OUTCOME_OFF),
        (CallOutcome.CALLBACK_REQUESTED, Skip.OUTCOME_OFF),
    ],
)
def test_which_outcomes_trigger_by_default(outcome: CallOutcome, expected: Skip | None) -> None:
    assert skip(outcome) is expected


def test_short_abandons_can_be_switched_on_but_answered_never() -> None:
    rules = SmsRules(triggers=frozenset({CallOutcome.SHORT_ABANDON}))
    assert skip(CallOutcome.SHORT_ABANDON, rules=rules) is None
    with pytest.raises(ValidationError):
        SmsRules(triggers=frozenset({CallOutcome.ANSWERED}))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("anonymous", Skip.WITHHELD),
        ("", Skip.WITHHELD),
        ("12", Skip.UNPARSEABLE),
        ("not a number", Skip.UNPARSEABLE),
        ("+33142345678", Skip.NOT_MOBILE),  # a Paris landline
        ("+18005550100", Skip.NOT_MOBILE),  # toll-free
        ("+14155550100", None),  # North America: the plan cannot tell, so we text
        ("(415) 555-0100", None),
        ("06 12 34 56 78", Skip.UNPARSEABLE),  # national French format with the US default region
    ],
)
def test_numbers_that_cannot_or_should_not_get_a_text(raw: str, expected: Skip | None) -> None:
    assert skip(number=parse_phone(raw)) is expected


def test_landlines_are_texted_when_the_mobile_check_is_off() -> None:
    assert skip(number=parse_phone("+33142345678"), rules=SmsRules(require_mobile=False)) is None


def test_closed_recent_and_consent() -> None:
    assert (
        skip(facts=TriggerFacts(closed=True, last_follow_up_at=None, consent=ConsentStatus.UNKNOWN))
        is Skip.CLOSED
    )
    recent = TriggerFacts(
        closed=False, last_follow_up_at=NOON - timedelta(hours=23), consent=ConsentStatus.UNKNOWN
    )
    assert skip(facts=recent) is Skip.RECENTLY_TEXTED
    old = TriggerFacts(
        closed=False, last_follow_up_at=NOON - timedelta(hours=24), consent=ConsentStatus.UNKNOWN
    )
    assert skip(facts=old) is None
    out = TriggerFacts(closed=False, last_follow_up_at=None, consent=ConsentStatus.OPTED_OUT)
    assert skip(facts=out) is Skip.CONSENT
    assert skip(program=MARKETING) is Skip.CONSENT


def verdict(
    kind=MessageKind.FOLLOW_UP,
    now=NOON,
    consent=ConsentStatus.UNKNOWN,
    recent=(),
    program=INFORMATIONAL,
    region=None,
):  # type: ignore[no-untyped-def]
    return send_verdict(
        kind,
        now=now,
        consent=consent,
        policy=policy_for(program),
        recipient=Recipient(zones=(NY,), region=region),
        recent_sends=recent,
        rules=RULES,
    )


def test_send_inside_the_window() -> None:
    assert verdict() == Send()


def test_defer_outside_the_window_to_the_next_opening() -> None:
    late = datetime(2026, 11, 23, 22, 0, tzinfo=NY)
    assert verdict(now=late) == Defer(datetime(2026, 11, 24, 8, 0, tzinfo=NY), "quiet_hours")
    assert verdict(now=datetime(2026, 11, 23, 20, 30, tzinfo=NY), region="US-FL") == Defer(
        datetime(2026, 11, 24, 8, 0, tzinfo=NY), "quiet_hours"
    )


def test_an_opt_out_cancels_everything_but_compliance_texts() -> None:
    for kind in (MessageKind.FOLLOW_UP, MessageKind.MANUAL, MessageKind.REPLY):
        assert verdict(kind=kind, consent=ConsentStatus.OPTED_OUT) == Cancel("opted_out")
    assert verdict(kind=MessageKind.COMPLIANCE, consent=ConsentStatus.OPTED_OUT) == Send()


def test_replies_go_at_night_because_the_recipient_just_wrote() -> None:
    assert verdict(kind=MessageKind.REPLY, now=datetime(2026, 11, 23, 23, 0, tzinfo=NY)) == Send()


def test_marketing_needs_an_opt_in() -> None:
    assert verdict(program=MARKETING) == Cancel("no_consent")
    assert verdict(program=MARKETING, consent=ConsentStatus.OPTED_IN) == Send()


def test_the_daily_cap_defers_until_the_oldest_send_leaves_the_period() -> None:
    sends = [NOON - timedelta(hours=h) for h in (20, 5, 1)]
    assert verdict(recent=sends) == Defer(NOON + timedelta(hours=4), "daily_cap")
    assert verdict(recent=sends[1:]) == Send()
    # The cap frees up at night: the message waits for the morning.
    night = [NOON - timedelta(hours=h) for h in (14, 5, 1)]  # the oldest leaves the period at 22:00
    assert verdict(recent=night) == Defer(datetime(2026, 11, 24, 8, 0, tzinfo=NY), "daily_cap")
