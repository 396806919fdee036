"""Property: over any interleaving of missed calls, replies, opt-outs and clock moves, no message goes to
an opted-out number, none outside the quiet-hours window, and none twice.

The harness keeps the ledger and the outbox in lists and decides with the real pure functions only
(:func:`follow_up_skip` at the trigger, :func:`classify` for replies, :func:`send_verdict` at every
send attempt). The SQL store and the engine service are checked against the same rules in
``tests/integration/sms``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callcenter.model.phone import parse_phone
from callcenter.model.vocabulary import CallOutcome
from callcenter.sms.consent import (
    ALL_PROGRAMS,
    INFORMATIONAL,
    ConsentAction,
    ConsentEntry,
    ConsentRecord,
    ConsentSource,
    ConsentStatus,
    chain,
    policy_for,
    status_of,
)
from callcenter.sms.keywords import Intent, classify
from callcenter.sms.quiet import is_allowed
from callcenter.sms.recipient import recipient_for
from callcenter.sms.rules import (
    Cancel,
    Defer,
    MessageKind,
    Send,
    SmsRules,
    TriggerFacts,
    follow_up_skip,
    send_verdict,
)

NUMBERS = ("+14155550100", "+12125550123", "+13055550199", "+33612345678", "+61412345678")
REPLIES = ("STOP", "stop please", "1", "2", "HELP", "START", "yes", "what time do you open?", "Remove me")
RULES = SmsRules(daily_cap=2)
POLICY = policy_for(INFORMATIONAL)


@dataclass
class Queued:
    key: str
    number: str
    kind: MessageKind
    due: datetime
    state: str = "queued"


@dataclass
class World:
    now: datetime
    ledger: dict[str, list[ConsentRecord]] = field(default_factory=dict)
    outbox: dict[str, Queued] = field(default_factory=dict)
    sent: list[tuple[str, Queued, datetime]] = field(default_factory=list)
    last_follow_up: dict[str, datetime] = field(default_factory=dict)

    def consent(self, number: str) -> ConsentStatus:
        return status_of(self.ledger.get(number, []), INFORMATIONAL)

    def record(self, number: str, action: ConsentAction, text: str) -> None:
        records = self.ledger.setdefault(number, [])
        entry = ConsentEntry(
            program=ALL_PROGRAMS,
            action=action,
            source=ConsentSource.SMS_KEYWORD,
            actor="sms",
            at=self.now,
            evidence_text=text,
        )
        records.append(chain(records[-1] if records else None, number, entry))

    def enqueue(self, key: str, number: str, kind: MessageKind) -> None:
        # The idempotency key: a trigger seen twice queues one message.
        self.outbox.setdefault(key, Queued(key, number, kind, self.now))

    def missed_call(self, call_id: str, number: str, outcome: CallOutcome) -> None:
        facts = TriggerFacts(
            closed=False, last_follow_up_at=self.last_follow_up.get(number), consent=self.consent(number)
        )
        if (
            follow_up_skip(outcome, parse_phone(number), facts, now=self.now, rules=RULES, policy=POLICY)
            is None
        ):
            self.last_follow_up[number] = self.now
            self.enqueue(f"follow-up:{call_id}", number, MessageKind.FOLLOW_UP)

    def reply(self, message_id: str, number: str, text: str) -> None:
        intent = classify(text)
        if intent is Intent.OPT_OUT:
            already = self.consent(number) is ConsentStatus.OPTED_OUT
            self.record(number, ConsentAction.OPT_OUT, text)
            if not already:
                self.enqueue(f"opt-out:{message_id}", number, MessageKind.COMPLIANCE)
        elif intent is Intent.OPT_IN:
            self.record(number, ConsentAction.OPT_IN, text)
            self.enqueue(f"opt-in:{message_id}", number, MessageKind.REPLY)
        elif intent is Intent.HELP:
            self.enqueue(f"help:{message_id}", number, MessageKind.COMPLIANCE)
        elif intent is Intent.CALL_ME:
            self.enqueue(f"callback:{message_id}", number, MessageKind.REPLY)

    def run_outbox(self) -> None:
        for message in sorted(self.outbox.values(), key=lambda m: m.due):
            if message.state != "queued" or message.due > self.now:
                continue
            recent = [
                t for _, m, t in self.sent if m.number == message.number and m.kind is MessageKind.FOLLOW_UP
            ]
            verdict = send_verdict(
                message.kind,
                now=self.now,
                consent=self.consent(message.number),
                policy=POLICY,
                recipient=recipient_for(message.number),
                recent_sends=recent,
                rules=RULES,
            )
            if isinstance(verdict, Send):
                message.state = "sent"
                self.sent.append((message.key, message, self.now))
            elif isinstance(verdict, Defer):
                message.due = verdict.until
            else:
                assert isinstance(verdict, Cancel)
                message.state = "cancelled"


step = st.one_of(
    st.tuples(
        st.just("call"),
        st.integers(0, 6),
        st.sampled_from(NUMBERS),
        st.sampled_from(
            [CallOutcome.ABANDONED, CallOutcome.VOICEMAIL, CallOutcome.AFTER_HOURS, CallOutcome.ANSWERED]
        ),
    ),
    st.tuples(st.just("reply"), st.integers(0, 1000), st.sampled_from(NUMBERS), st.sampled_from(REPLIES)),
    st.tuples(st.just("clock"), st.integers(1, 60 * 30), st.none(), st.none()),
    st.tuples(st.just("send"), st.none(), st.none(), st.none()),
)


@pytest.mark.timeout(120)
@settings(max_examples=120, deadline=None)
@given(
    st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 1, 1)), st.lists(step, max_size=40)
)
def test_never_to_an_opted_out_number_never_outside_the_window_never_twice(
    start: datetime, steps: list
) -> None:  # type: ignore[type-arg]
    world = World(now=start.replace(tzinfo=UTC))
    checked = 0
    for kind, a, b, c in steps:
        if kind == "call":
            world.missed_call(f"call-{a}", b, c)
        elif kind == "reply":
            world.reply(f"in-{a}", b, c)
        elif kind == "clock":
            world.now += timedelta(minutes=a)
        else:
            world.run_outbox()
        for _, message, at in world.sent[checked:]:
            if message.kind is not MessageKind.COMPLIANCE:
                # Consent at the moment of sending, derived from the ledger as it stood then.
                then = [r for r in world.ledger.get(message.number, []) if r.at <= at]
                assert status_of(then, INFORMATIONAL) is not ConsentStatus.OPTED_OUT
            if message.kind is MessageKind.FOLLOW_UP:
                assert is_allowed(at, recipient_for(message.number), RULES.quiet)
        checked = len(world.sent)
    keys = [key for key, _, _ in world.sent]
    assert len(keys) == len(set(keys))
    # A compliance text is only ever the one opt-out confirmation or a HELP answer.
    confirmations = [m for _, m, _ in world.sent if m.key.startswith("opt-out:")]
    for number in NUMBERS:
        outs = [r for r in world.ledger.get(number, []) if r.action is ConsentAction.OPT_OUT]
        assert len([m for m in confirmations if m.number == number]) <= len(outs)
