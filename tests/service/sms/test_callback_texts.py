"""Texts about callbacks and voicemails, and replies that act on callbacks (issue 9 step 1 and 4, #7, #8).

The engine runs on its real SQLite store; the callback service is a typed in-memory desk of its port.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest

from callcenter.bus import Delivery
from callcenter.config import Settings
from callcenter.errors import InvalidPhoneNumberError
from callcenter.model.events import (
    CallbackPromiseAtRisk,
    CallbackStateChanged,
    DomainEvent,
    VoicemailRecorded,
    VoicemailTranscribed,
)
from callcenter.model.vocabulary import ActorKind, CallbackKind, CallbackState, CallOutcome
from callcenter.sms.keywords import Intent
from callcenter.sms.ports import CallbackTicket
from callcenter.sms.records import Contact, MessageStatus
from callcenter.sms.service import Inbound, SmsEngine
from callcenter.wiring.sms import sms_engine_settings
from tests.service.sms.conftest import NY_MOBILE, START, Rig

S = CallbackState


def changed(
    state: CallbackState,
    previous: CallbackState | None,
    *,
    kind: CallbackKind = CallbackKind.KEEP_PLACE,
    start: datetime = START,
    end: datetime = START + timedelta(minutes=22),  # "by 11:20" and the 2-minute grace
    actor: str = "ivr",
    callback_id: str = "cb-1",
) -> CallbackStateChanged:
    return CallbackStateChanged(
        event_id=f"callback:{callback_id}:{state.value}:{uuid.uuid4().hex[:6]}",
        occurred_at=START,
        callback_id=callback_id,
        queue="sales",
        number=NY_MOBILE,
        kind=kind,
        state=state,
        previous=previous,
        window_start=start,
        window_end=end,
        actor_kind=ActorKind.CUSTOMER,
        actor=actor,
    )


async def deliver(rig: Rig, event: DomainEvent) -> None:
    await rig.engine.handle(Delivery(message_id="1-0", event=event, deliveries=1))


async def texts(rig: Rig) -> list[str]:
    await rig.engine.send_due()
    return [d.text for d in rig.gateway.to(NY_MOBILE)]


async def test_a_kept_place_is_confirmed_once_with_its_promise_in_local_time(rig: Rig) -> None:
    await rig.engine.put_contact(Contact(number=NY_MOBILE, name="Ann"))
    event = changed(S.REQUESTED, None)
    await deliver(rig, event)
    await deliver(rig, event)  # redelivered by the bus
    (text,) = await texts(rig)
    # 16:20 UTC is 11:20 in New York.
    assert "thanks Ann, you keep your place in line" in text and "by 11:20" in text
    assert "Reply 2 to cancel" in text and "STOP" in text


async def test_a_chosen_time_is_confirmed_then_reminded_before_its_window(rig: Rig) -> None:
    start = START + timedelta(hours=3)  # 14:00 in New York
    kind = CallbackKind.SCHEDULED
    await deliver(rig, changed(S.REQUESTED, None, kind=kind, start=start, end=start + timedelta(minutes=30)))
    await deliver(
        rig, changed(S.SCHEDULED, S.REQUESTED, kind=kind, start=start, end=start + timedelta(minutes=30))
    )
    (confirmation,) = await texts(rig)
    assert "your callback is booked between 14:00 and 14:30" in confirmation
    rig.clock.set(start - timedelta(minutes=16))
    assert len(await texts(rig)) == 1  # not yet
    rig.clock.set(start - timedelta(minutes=15))
    reminder = (await texts(rig))[-1]
    assert reminder.startswith("Example Co: reminder, we will call you between 14:00 and 14:30")
    assert "Reply 2 to cancel" in reminder


async def test_a_moved_time_replaces_the_reminder_and_a_cancelled_callback_takes_it_back(rig: Rig) -> None:
    kind = CallbackKind.SCHEDULED
    first = START + timedelta(hours=3)
    second = START + timedelta(hours=5)
    await deliver(
        rig, changed(S.SCHEDULED, S.REQUESTED, kind=kind, start=first, end=first + timedelta(minutes=30))
    )
    await deliver(
        rig, changed(S.SCHEDULED, S.SCHEDULED, kind=kind, start=second, end=second + timedelta(minutes=30))
    )
    rig.clock.set(first)
    sent = await texts(rig)
    assert len(sent) == 2 and "between 16:00 and 16:30" in sent[1]  # the new time, confirmed
    await deliver(
        rig, changed(S.CANCELLED, S.SCHEDULED, kind=kind, start=second, end=second + timedelta(minutes=30))
    )
    rig.clock.set(second)
    assert len(await texts(rig)) == 2  # no reminder for either time


async def test_a_promise_at_risk_gets_an_honest_late_notice_with_a_new_time_once(rig: Rig) -> None:
    await deliver(rig, changed(S.REQUESTED, None, actor="sms"))  # asked by text: no confirmation
    risk = CallbackPromiseAtRisk(
        event_id="callback-late:cb-1:x",
        occurred_at=START,
        callback_id="cb-1",
        queue="sales",
        number=NY_MOBILE,
        window_end=START + timedelta(minutes=5),  # 11:05 in New York
        state=S.REQUESTED,
        reason="promise ends in 300 s and nobody was dialled",
    )
    await deliver(rig, risk)
    await deliver(rig, risk)
    (text,) = await texts(rig)
    assert "we are running late and will not call you by 11:05 as promised" in text
    # No prediction on the event: the promise plus the 30-minute slip, up to the quarter hour.
    assert "We now expect to call you by 11:45" in text and "Reply 2 to cancel" in text


@pytest.mark.parametrize(
    ("expected_by", "said"),
    [
        (START + timedelta(minutes=47), "by 12:00"),  # 11:47 in New York: up to the quarter hour
        (START + timedelta(minutes=60), "by 12:00"),  # on a quarter hour already
        (START - timedelta(minutes=3), "by 11:00"),  # a prediction already past: never earlier than now
        (START + timedelta(hours=10, minutes=20), "on 24/11 by 08:00"),  # 21:20 is quiet: when they end
    ],
)
async def test_a_late_notice_gives_the_dispatchers_predicted_time(
    rig: Rig, expected_by: datetime, said: str
) -> None:
    """Issue #7: the new time is when the dispatcher expects to dial, not the promise plus a slip."""
    risk = CallbackPromiseAtRisk(
        event_id="callback-late:cb-1:p",
        occurred_at=START,
        callback_id="cb-1",
        queue="sales",
        number=NY_MOBILE,
        window_end=START + timedelta(minutes=5),  # 11:05 in New York
        state=S.REQUESTED,
        expected_by=expected_by,
    )
    await deliver(rig, risk)
    (text,) = await texts(rig)
    assert "will not call you by 11:05 as promised" in text
    assert f"We now expect to call you {said}" in text, text


async def test_a_late_notice_deferred_by_quiet_hours_is_dropped_once_the_callback_is_dialled(
    rig: Rig,
) -> None:
    rig.clock.set(START + timedelta(hours=11))  # 22:00 in New York
    risk = CallbackPromiseAtRisk(
        event_id="late",
        occurred_at=rig.clock.now(),
        callback_id="cb-1",
        queue="sales",
        number=NY_MOBILE,
        window_end=rig.clock.now(),
        state=S.SCHEDULED,
    )
    await deliver(rig, risk)
    assert await texts(rig) == []  # deferred to 08:00
    await deliver(rig, changed(S.DIALING, S.SCHEDULED))
    rig.clock.set(START + timedelta(hours=22))
    assert await texts(rig) == []
    (message,) = (await rig.engine.messages(number=NY_MOBILE, needs_person=None, cursor=None, limit=5)).items
    assert message.status is MessageStatus.CANCELLED


async def test_a_failed_callback_is_told_with_a_way_to_try_again(rig: Rig) -> None:
    await rig.engine.put_contact(Contact(number=NY_MOBILE, language="fr"))
    failed = changed(S.FAILED, S.RETRY_WAIT)
    await deliver(rig, failed)
    await deliver(rig, failed)
    (text,) = await texts(rig)
    assert text.startswith("Example Co : nous avons essayé de vous rappeler sans vous joindre. Répondez 1")


async def test_an_opted_out_number_gets_no_callback_notice(rig: Rig) -> None:
    await rig.engine.receive(Inbound(sender=NY_MOBILE, text="STOP", provider="recording", provider_id="s"))
    await rig.engine.send_due()
    await deliver(rig, changed(S.REQUESTED, None))
    await deliver(rig, changed(S.FAILED, S.RETRY_WAIT))
    sent = await texts(rig)
    assert len(sent) == 1 and "opted out" in sent[0]  # only the STOP confirmation


async def test_a_voicemail_is_acknowledged_once_whichever_event_comes_first(rig: Rig) -> None:
    recorded = VoicemailRecorded(
        event_id="vm-1:1", occurred_at=START, voicemail_id="vm-1", call_id="call-7", caller=NY_MOBILE
    )
    transcribed = VoicemailTranscribed(
        event_id="vm-1:t", occurred_at=START, voicemail_id="vm-1", call_id="call-7", caller=NY_MOBILE
    )
    await deliver(rig, transcribed)
    await deliver(rig, recorded)
    await rig.missed("call-7", outcome=CallOutcome.VOICEMAIL)  # the call's own follow-up: the same text
    (text,) = await texts(rig)
    assert "got your voicemail" in text


@dataclass
class FakeDesk:
    """The callback service's port as a dict of open callbacks per number."""

    open: dict[str, CallbackTicket] = field(default_factory=dict)
    refuse: bool = False
    requests: list[str] = field(default_factory=list)
    attended: list[str] = field(default_factory=list)

    async def attend(
        self, number: str, *, message_id: str, received_at: datetime, text: str
    ) -> CallbackTicket:
        if self.refuse:
            raise InvalidPhoneNumberError("on the do-not-call list")
        self.attended.append(message_id)
        return self.open.get(number) or CallbackTicket(
            callback_id=f"cb-text-{len(self.attended)}",
            queue="sales",
            keep_place=True,
            window_start=received_at,
            window_end=received_at + timedelta(hours=4),
        )

    async def request(
        self, number: str, *, message_id: str, received_at: datetime, text: str
    ) -> CallbackTicket:
        if self.refuse:
            raise InvalidPhoneNumberError("on the do-not-call list")
        self.requests.append(message_id)
        if number in self.open:  # one open callback per number: a repeat merges
            return self.open[number]
        ticket = CallbackTicket(
            callback_id=f"cb-{len(self.requests)}",
            queue="sales",
            keep_place=True,
            window_start=received_at,
            window_end=received_at + timedelta(hours=4, minutes=2),  # the promise and its grace
        )
        self.open[number] = ticket
        return ticket

    async def cancel(self, number: str, *, message_id: str) -> CallbackTicket | None:
        return self.open.pop(number, None)


@pytest.fixture
def desk(rig: Rig) -> FakeDesk:
    rig.engine.callbacks = desk = FakeDesk()
    return desk


def reply(text: str, provider_id: str) -> Inbound:
    return Inbound(sender=NY_MOBILE, text=text, provider="recording", provider_id=provider_id)


@pytest.mark.parametrize("text", ["1", "CALL", "call me", "Callback!", " 1 "])
async def test_a_reply_asking_for_a_call_creates_a_callback_and_says_by_when(
    rig: Rig, desk: FakeDesk, text: str
) -> None:
    result = await rig.engine.receive(reply(text, "a"))
    assert result.intent is Intent.CALL_ME and result.ticket is not None
    assert desk.open[NY_MOBILE].callback_id == result.ticket.callback_id
    (sent,) = await texts(rig)
    assert "we will call you back by 15:00" in sent and "Reply 2 to cancel" in sent  # 20:00 UTC


async def test_two_cancels_the_senders_open_callback_and_cancel_stays_an_opt_out(
    rig: Rig, desk: FakeDesk
) -> None:
    await rig.engine.receive(reply("1", "a"))
    result = await rig.engine.receive(reply("2", "b"))
    assert result.intent is Intent.CANCEL_CALLBACK and result.ticket is not None
    assert desk.open == {}
    again = await rig.engine.receive(reply("2", "c"))
    assert again.ticket is None
    sent = await texts(rig)
    assert "your callback is cancelled" in sent[1] and "no callback waiting" in sent[2]
    out = await rig.engine.receive(reply("CANCEL", "d"))
    assert out.intent is Intent.OPT_OUT


async def test_a_stop_in_the_same_message_as_a_call_request_wins(rig: Rig, desk: FakeDesk) -> None:
    result = await rig.engine.receive(reply("1 STOP", "a"))
    assert result.intent is Intent.OPT_OUT and desk.requests == []
    assert (await rig.engine.consent(NY_MOBILE)).status.value == "opted_out"


async def test_an_opted_out_number_asking_for_a_call_gets_the_call_but_no_text(
    rig: Rig, desk: FakeDesk
) -> None:
    """Decision: "1" from an opted-out number is an express request for a call, not for texts."""
    await rig.engine.receive(reply("STOP", "a"))
    await rig.engine.send_due()
    result = await rig.engine.receive(reply("1", "b"))
    assert result.ticket is not None and NY_MOBILE in desk.open
    sent = await texts(rig)
    assert len(sent) == 1  # the STOP confirmation only; the "we will call you" reply is cancelled
    assert (await rig.engine.consent(NY_MOBILE)).status.value == "opted_out"


async def test_a_call_request_the_callback_service_refuses_goes_to_a_person(rig: Rig, desk: FakeDesk) -> None:
    desk.refuse = True
    result = await rig.engine.receive(reply("1", "a"))
    assert result.replies == () and result.ticket is None
    (waiting,) = (await rig.engine.messages(number=NY_MOBILE, needs_person=True, cursor=None, limit=5)).items
    assert "do-not-call" in waiting.error


async def test_anything_else_joins_the_thread_for_a_person_with_no_automatic_answer(
    rig: Rig, desk: FakeDesk
) -> None:
    result = await rig.engine.receive(reply("Can you call after 5pm? It's about my invoice", "a"))
    assert result.intent is Intent.OTHER and result.replies == () and desk.requests == []
    # An item on the worklist (not a request for a call: a person decides), and listed under SMS.
    assert desk.attended == [result.message.id] and result.ticket is not None
    (waiting,) = (await rig.engine.messages(number=NY_MOBILE, needs_person=True, cursor=None, limit=5)).items
    assert waiting.text.startswith("Can you call after 5pm")
    assert waiting.error == f"on the worklist: callback {result.ticket.callback_id}"
    assert await texts(rig) == []


async def test_a_text_from_a_number_we_do_not_call_stays_listed_for_a_person(
    rig: Rig, desk: FakeDesk
) -> None:
    desk.refuse = True
    result = await rig.engine.receive(reply("hello?", "a"))
    assert result.intent is Intent.OTHER and result.ticket is None and result.replies == ()
    (waiting,) = (await rig.engine.messages(number=NY_MOBILE, needs_person=True, cursor=None, limit=5)).items
    assert waiting.error.startswith("not on the worklist:")


async def test_the_reminder_lead_and_the_late_slip_are_settings(rig: Rig) -> None:
    """CALLCENTER_SMS_REMINDER_LEAD_S and CALLCENTER_SMS_LATE_SLIP_S reach the engine (issue 9)."""
    configured = sms_engine_settings(
        Settings.from_env(
            {
                "CALLCENTER_SMS_CONSENT_SECRET": "test-secret",
                "CALLCENTER_SMS_REMINDER_LEAD_S": "1800",
                "CALLCENTER_SMS_LATE_SLIP_S": "3600",
            }
        )
    )
    assert (configured.reminder_lead_s, configured.late_slip_s) == (1800.0, 3600.0)
    engine = SmsEngine(
        rig.store,
        rig.gateway,
        rig.calls,
        None,
        rig.clock,
        dataclasses.replace(
            rig.settings, reminder_lead_s=configured.reminder_lead_s, late_slip_s=configured.late_slip_s
        ),
    )
    start = START + timedelta(hours=3)  # 14:00 in New York
    kind = CallbackKind.SCHEDULED
    scheduled = changed(S.SCHEDULED, S.REQUESTED, kind=kind, start=start, end=start + timedelta(minutes=30))
    await engine.handle(Delivery(message_id="1-0", event=scheduled, deliveries=1))
    rig.clock.set(start - timedelta(minutes=31))
    await engine.send_due()
    assert len(rig.gateway.to(NY_MOBILE)) == 1  # the confirmation only
    rig.clock.set(start - timedelta(minutes=30))
    await engine.send_due()
    assert rig.gateway.to(NY_MOBILE)[-1].text.startswith("Example Co: reminder")
    risk = CallbackPromiseAtRisk(
        event_id="callback-late:cb-1:y",
        occurred_at=rig.clock.now(),
        callback_id="cb-1",
        queue="sales",
        number=NY_MOBILE,
        window_end=start + timedelta(minutes=30),  # 14:30 in New York
        state=S.SCHEDULED,
    )
    await engine.handle(Delivery(message_id="1-1", event=risk, deliveries=1))
    await engine.send_due()
    assert "We now expect to call you by 15:30" in rig.gateway.to(NY_MOBILE)[-1].text
