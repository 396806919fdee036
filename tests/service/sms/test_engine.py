"""The SMS engine end to end on its store: follow-ups, replies that act, consent at send time, outbox."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from callcenter.errors import ConflictError, StoreUnavailableError, ValidationError
from callcenter.model.records import CallRecord
from callcenter.model.vocabulary import CallOutcome
from callcenter.sms.consent import ALL_PROGRAMS, ConsentAction, ConsentSource, ConsentStatus, verify_chain
from callcenter.sms.keywords import Intent
from callcenter.sms.outbox import Handed
from callcenter.sms.ports import Outgoing, ProviderError
from callcenter.sms.records import Contact, MessageStatus
from callcenter.sms.service import Inbound, SmsEngine
from callcenter.store.sql_repos import SqlCallRepository
from tests.conftest import FakeClock
from tests.fakes.sms import RecordingSmsGateway, SenderCrashed
from tests.service.sms.conftest import NY_MOBILE, Rig


def inbound(text: str, sender: str = NY_MOBILE, provider_id: str = "") -> Inbound:
    return Inbound(sender=sender, text=text, provider="recording", provider_id=provider_id)


async def test_a_missed_call_gets_one_kind_follow_up(rig: Rig) -> None:
    event = await rig.missed("call-1")
    await rig.engine.on_call_ended(event)  # redelivered by the bus
    assert await rig.engine.send_due() == 1
    (text,) = rig.gateway.to(NY_MOBILE)
    assert text.text.startswith("Hi, sorry we missed your call to Example Co.") and "STOP" in text.text
    (message,) = (await rig.engine.messages(number=NY_MOBILE, needs_person=None, cursor=None, limit=10)).items
    assert message.status is MessageStatus.SENT and message.call_id == "call-1"
    # A second missed call the same day: recently texted, nothing more.
    rig.clock.advance(3600)
    await rig.missed("call-2")
    assert await rig.engine.send_due() == 0
    assert len(rig.gateway.delivered) == 1


async def test_a_known_contact_is_greeted_in_their_language(rig: Rig) -> None:
    await rig.engine.put_contact(Contact(number=NY_MOBILE, name="Ann", language="fr"))
    await rig.missed("call-1", outcome=CallOutcome.VOICEMAIL)
    await rig.engine.send_due()
    (text,) = rig.gateway.to(NY_MOBILE)
    assert text.text.startswith("Bonjour Ann, Example Co a bien reçu votre message")


@pytest.mark.parametrize(
    ("caller", "outcome"),
    [
        ("anonymous", CallOutcome.ABANDONED),
        ("12", CallOutcome.ABANDONED),
        ("+33142345678", CallOutcome.ABANDONED),  # a landline
        (NY_MOBILE, CallOutcome.ANSWERED),
        (NY_MOBILE, CallOutcome.SHORT_ABANDON),
    ],
)
async def test_calls_that_get_no_text(rig: Rig, caller: str, outcome: CallOutcome) -> None:
    await rig.missed("call-1", caller=caller, outcome=outcome)
    assert await rig.engine.send_due() == 0
    assert rig.gateway.delivered == []


async def test_a_call_closed_before_the_text_goes_cancels_it(rig: Rig) -> None:
    rig.clock.set(datetime(2026, 11, 24, 3, 0, tzinfo=UTC))  # 22:00 in New York: deferred
    await rig.missed("call-1")
    await rig.engine.send_due()
    call = await rig.calls.get("call-1")
    await rig.calls.upsert(dataclasses.replace(call, closed_at=rig.clock.now()))
    rig.clock.set(datetime(2026, 11, 24, 13, 0, tzinfo=UTC))  # 08:00 New York
    await rig.engine.send_due()
    assert rig.gateway.delivered == []
    (message,) = (await rig.engine.messages(number=NY_MOBILE, needs_person=None, cursor=None, limit=10)).items
    assert (message.status, message.error) == (MessageStatus.CANCELLED, "closed")


async def test_a_late_call_is_texted_at_eight_the_next_morning_local_time(rig: Rig) -> None:
    rig.clock.set(datetime(2026, 11, 24, 3, 0, tzinfo=UTC))  # 22:00 in New York
    await rig.missed("call-1")
    await rig.engine.send_due()
    assert rig.gateway.delivered == []
    (message,) = (await rig.engine.messages(number=NY_MOBILE, needs_person=None, cursor=None, limit=10)).items
    assert message.due_at == datetime(2026, 11, 24, 13, 0, tzinfo=UTC)  # 08:00 EST
    rig.clock.set(datetime(2026, 11, 24, 12, 59, tzinfo=UTC))
    await rig.engine.send_due()
    assert rig.gateway.delivered == []
    rig.clock.set(datetime(2026, 11, 24, 13, 0, tzinfo=UTC))
    await rig.engine.send_due()
    assert [d.at for d in rig.gateway.delivered] == [datetime(2026, 11, 24, 13, 0, tzinfo=UTC)]


async def test_stop_while_a_message_waits_cancels_it_and_confirms_once(rig: Rig) -> None:
    rig.clock.set(datetime(2026, 11, 24, 3, 0, tzinfo=UTC))  # night: the follow-up waits
    await rig.missed("call-1")
    await rig.engine.send_due()
    result = await rig.engine.receive(inbound("Stop!", provider_id="in-1"))
    assert result.intent is Intent.OPT_OUT
    again = await rig.engine.receive(inbound("Stop!", provider_id="in-1"))  # webhook redelivered
    assert [r.id for r in again.replies] == [r.id for r in result.replies]
    await rig.engine.receive(inbound("STOP", provider_id="in-2"))  # a second STOP: no second confirmation
    await rig.engine.send_due()
    rig.clock.set(datetime(2026, 11, 24, 15, 0, tzinfo=UTC))
    await rig.engine.send_due()
    texts = [d.text for d in rig.gateway.to(NY_MOBILE)]
    assert texts == [
        "Example Co: you are opted out and will get no more messages. Reply START to opt back in."
    ]
    view = await rig.engine.consent(NY_MOBILE)
    assert view.status is ConsentStatus.OPTED_OUT
    assert [r.action for r in view.history] == [ConsentAction.OPT_OUT, ConsentAction.OPT_OUT]
    assert verify_chain(view.history) is None
    # The next missed call sends nothing.
    await rig.missed("call-2")
    rig.clock.advance(86400 * 2)
    await rig.missed("call-3")
    await rig.engine.send_due()
    assert len(rig.gateway.to(NY_MOBILE)) == 1


async def test_start_opts_back_in_and_help_answers_even_when_opted_out(rig: Rig) -> None:
    await rig.engine.receive(inbound("unsubscribe", provider_id="a"))
    await rig.engine.receive(inbound("HELP", provider_id="b"))
    await rig.engine.send_due()
    assert "Msg & data rates may apply" in rig.gateway.delivered[-1].text
    await rig.engine.receive(inbound("start", provider_id="c"))
    await rig.engine.send_due()
    assert rig.gateway.delivered[-1].text.startswith("Example Co: you are opted back in.")
    assert (await rig.engine.consent(NY_MOBILE)).status is ConsentStatus.OPTED_IN


async def test_one_asks_for_a_call_and_two_cancels_it(rig: Rig) -> None:
    called = await rig.engine.receive(inbound("1", provider_id="a"))
    assert called.intent is Intent.CALL_ME and called.callback is not None
    assert [r.number for r in await rig.engine.callback_requests(number=NY_MOBILE, open_only=True)] == [
        NY_MOBILE
    ]
    again = await rig.engine.receive(inbound("call me", provider_id="b"))
    assert again.callback is not None and again.callback.id == called.callback.id
    cancelled = await rig.engine.receive(inbound("2", provider_id="c"))
    assert cancelled.callback is not None and cancelled.callback.cancelled_at is not None
    nothing = await rig.engine.receive(inbound("2", provider_id="d"))
    assert nothing.callback is None
    await rig.engine.send_due()
    texts = [d.text for d in rig.gateway.to(NY_MOBILE)]
    assert texts[-2].startswith("Example Co: your callback is cancelled")
    assert texts[-1].startswith("Example Co: there is no callback waiting")
    assert await rig.engine.callback_requests(number=NY_MOBILE, open_only=True) == ()


async def test_anything_else_waits_for_a_person_without_an_automatic_answer(rig: Rig) -> None:
    result = await rig.engine.receive(inbound("Are you open on Saturday? 🙂", provider_id="a"))
    assert result.intent is Intent.OTHER and result.replies == ()
    work = await rig.engine.messages(number=None, needs_person=True, cursor=None, limit=10)
    assert [m.text for m in work.items] == ["Are you open on Saturday? 🙂"]
    assert work.items[0].encoding == "ucs2"
    await rig.engine.mark_handled(work.items[0].id)
    assert (await rig.engine.messages(number=None, needs_person=True, cursor=None, limit=10)).items == ()


async def test_a_stop_from_a_number_we_never_saw_or_cannot_parse_is_honoured(rig: Rig) -> None:
    await rig.engine.receive(inbound("STOP", sender="+14155550142"))
    assert (await rig.engine.consent("+1 (415) 555-0142")).status is ConsentStatus.OPTED_OUT
    short_code = await rig.engine.receive(inbound("STOP", sender="55555"))
    assert short_code.message.number == "55555"
    with pytest.raises(ValidationError):
        await rig.engine.receive(inbound("STOP", sender="anonymous"))
    with pytest.raises(ValidationError):
        await rig.engine.receive(inbound("x" * 5000))


async def test_manual_sends_are_consent_and_quiet_hours_checked(rig: Rig) -> None:
    sent = await rig.engine.send_manual(NY_MOBILE, "Your order is ready", actor="agent:alice")
    await rig.engine.send_manual(NY_MOBILE, "Your order is ready", actor="agent:alice", key="k1")
    await rig.engine.send_manual(NY_MOBILE, "Your order is ready", actor="agent:alice", key="k1")
    await rig.engine.send_due()
    assert [d.message_id for d in rig.gateway.delivered][0] == sent.id
    assert len(rig.gateway.delivered) == 2
    await rig.engine.record_consent(
        NY_MOBILE,
        action=ConsentAction.OPT_OUT,
        program=ALL_PROGRAMS,
        source=ConsentSource.AGENT,
        actor="agent:alice",
    )
    with pytest.raises(ConflictError):
        await rig.engine.send_manual(NY_MOBILE, "hello", actor="agent:alice")
    with pytest.raises(ValidationError):
        await rig.engine.send_manual("not a number", "hello", actor="agent:alice")


async def test_the_daily_cap_holds_manual_texts_back(rig: Rig) -> None:
    for i in range(4):
        await rig.engine.send_manual(NY_MOBILE, f"note {i}", actor="agent:alice")
    await rig.engine.send_due()
    assert len(rig.gateway.delivered) == 3
    rig.clock.advance(86400)
    await rig.engine.send_due()
    assert len(rig.gateway.delivered) == 4


async def test_provider_errors_retry_with_backoff_and_permanent_ones_stop(rig: Rig) -> None:
    rig.gateway.fail_next(ProviderError("HTTP 503", permanent=False), times=2)
    await rig.missed("call-1")
    await rig.engine.send_due()
    await rig.engine.send_due()
    assert rig.gateway.delivered == []
    rig.clock.advance(10)
    await rig.engine.send_due()
    assert rig.gateway.delivered == []  # second failure: the wait doubled
    rig.clock.advance(20)
    await rig.engine.send_due()
    assert len(rig.gateway.delivered) == 1
    rig.gateway.fail_next(ProviderError("HTTP 400 invalid destination", permanent=True))
    message = await rig.engine.send_manual("+12125550199", "hello", actor="a")
    await rig.engine.send_due()
    rig.clock.advance(3600)
    await rig.engine.send_due()
    stored = (
        await rig.engine.messages(number="+12125550199", needs_person=None, cursor=None, limit=1)
    ).items[0]
    assert (
        stored.id == message.id
        and stored.status is MessageStatus.FAILED
        and "invalid destination" in stored.error
    )


async def test_delivery_reports_update_the_status(rig: Rig) -> None:
    await rig.missed("call-1")
    await rig.engine.send_due()
    (message,) = (await rig.engine.messages(number=NY_MOBILE, needs_person=None, cursor=None, limit=1)).items
    assert await rig.engine.delivery_report("recording", message.provider_id, MessageStatus.DELIVERED)
    assert (await rig.store.get_message(message.id)).status is MessageStatus.DELIVERED
    assert not await rig.engine.delivery_report("recording", "unknown", MessageStatus.DELIVERED)


async def test_a_delivery_report_without_a_usable_id_is_refused_and_moves_nothing(rig: Rig) -> None:
    """An empty id would name every text handed over and not yet answered; control characters name
    no message (and PostgreSQL refuses a NUL, which would fail the other reports of its round)."""
    message = await rig.engine.send_manual(NY_MOBILE, "hello", actor="t")
    (claimed,) = await rig.store.claim_due(rig.clock.now(), lease_s=60, limit=10)
    hold = rig.clock.now() + timedelta(minutes=10)
    await rig.store.record_outcomes(
        [Handed(claimed.id, "recording", hold, claimed.claimed_until)], rig.clock.now()
    )
    for bad in ("", "a\x00b", "x\ny"):
        with pytest.raises(ValidationError):
            await rig.engine.delivery_report("recording", bad, MessageStatus.DELIVERED)
    assert (await rig.store.get_message(message.id)).status is MessageStatus.SENDING
    # Reports arriving together with a bad one are applied.
    results = await asyncio.gather(
        rig.engine.delivery_report("recording", "a\x00b", MessageStatus.DELIVERED),
        rig.engine.delivery_report("recording", message.id, MessageStatus.DELIVERED),
        rig.engine.delivery_report("recording", "no-such-text", MessageStatus.DELIVERED),
        return_exceptions=True,
    )
    assert isinstance(results[0], ValidationError) and results[1:] == [True, False]
    assert (await rig.store.get_message(message.id)).status is MessageStatus.DELIVERED


async def test_a_claim_whose_checks_cannot_be_made_leaves_its_texts_queued(rig: Rig) -> None:
    """The claim, the send-time checks and the hand-over are one transaction: when a check cannot be
    made (here the calls store is down), nothing of the claim holds, and the text goes at the next
    pass rather than when its claim expires."""
    await rig.missed("call-1")

    class CallsDown(SqlCallRepository):
        async def get(self, call_id: str) -> CallRecord:
            raise StoreUnavailableError("the calls store is down")

    down = SmsEngine(rig.store, rig.gateway, CallsDown(rig.sql), None, rig.clock, rig.settings)
    with pytest.raises(StoreUnavailableError):
        await down.send_due()
    (waiting,) = (await rig.engine.messages(number=NY_MOBILE, needs_person=None, cursor=None, limit=10)).items
    assert (waiting.status, waiting.attempts, waiting.provider) == (MessageStatus.QUEUED, 0, "")
    assert await rig.engine.send_due() == 1  # at once: no lease to wait out
    assert len(rig.gateway.to(NY_MOBILE)) == 1


@pytest.mark.parametrize("crash_point", ["before_claim", "after_claim", "after_provider_took_it"])
async def test_outbox_crash_and_restart_loses_nothing_and_sends_nothing_twice(
    rig: Rig, crash_point: str
) -> None:
    event = await rig.missed("call-1")
    phone_network = rig.gateway
    if crash_point == "after_claim":
        await rig.store.claim_due(rig.clock.now(), lease_s=rig.settings.lease_s, limit=10)
    elif crash_point == "after_provider_took_it":
        phone_network.crash_after_accept()
        # The sender's task group passes the crash up wrapped in a group.
        with pytest.raises(BaseExceptionGroup) as crashed:
            await rig.engine.send_due()
        assert crashed.group_contains(SenderCrashed)
    # A new process: a new engine over the same store and phone network; the bus redelivers.
    restarted = rig.make(phone_network)
    await restarted.on_call_ended(event)
    await restarted.send_due()
    # A text handed to the provider is held for its delivery report, longer than a plain claim.
    rig.clock.advance(max(rig.settings.lease_s, rig.settings.report_wait_s) + 1)
    await restarted.send_due()
    assert len(phone_network.to(NY_MOBILE)) == 1
    (message,) = (await restarted.messages(number=NY_MOBILE, needs_person=None, cursor=None, limit=10)).items
    assert message.status is MessageStatus.SENT


async def test_a_text_handed_over_by_a_sender_that_died_is_not_resent_blindly(rig: Rig) -> None:
    """Issue 9, step 6: the provider took it, the sender died, the provider cannot say and no report came."""
    await rig.missed("call-1")
    phone_network = RecordingSmsGateway(rig.clock, knows_sent=False)
    phone_network.crash_after_accept()
    with pytest.raises(BaseExceptionGroup):
        await rig.make(phone_network).send_due()
    restarted = rig.make(phone_network)
    rig.clock.advance(rig.settings.lease_s + 1)
    assert await restarted.send_due() == 0  # still waiting for its delivery report
    rig.clock.advance(rig.settings.report_wait_s)
    assert await restarted.send_due() == 1
    rig.clock.advance(rig.settings.report_wait_s * 10)
    await restarted.send_due()
    assert len(phone_network.to(NY_MOBILE)) == 1  # on the phone once; never a second time
    (message,) = (await restarted.messages(number=NY_MOBILE, needs_person=True, cursor=None, limit=10)).items
    assert message.status is MessageStatus.UNKNOWN and "may or may not" in message.error
    # The report arrives after all: it settles the message and takes it off the person's list.
    assert await restarted.delivery_report("recording", message.id, MessageStatus.DELIVERED)
    (settled,) = (await restarted.messages(number=NY_MOBILE, needs_person=None, cursor=None, limit=10)).items
    assert settled.status is MessageStatus.DELIVERED and not settled.needs_person


async def test_a_report_that_comes_while_the_text_is_held_settles_it(rig: Rig) -> None:
    await rig.missed("call-1")
    phone_network = RecordingSmsGateway(rig.clock, knows_sent=False)
    phone_network.crash_after_accept()
    with pytest.raises(BaseExceptionGroup):
        await rig.make(phone_network).send_due()
    (held,) = (await rig.engine.messages(number=NY_MOBILE, needs_person=None, cursor=None, limit=10)).items
    assert held.status is MessageStatus.SENDING and held.provider == "recording"
    assert await rig.engine.delivery_report("recording", held.id, MessageStatus.DELIVERED)
    rig.clock.advance(rig.settings.report_wait_s * 2)
    assert await rig.make(phone_network).send_due() == 0
    assert len(phone_network.to(NY_MOBILE)) == 1


async def test_erasure_forgets_the_number_but_keeps_the_opt_out(rig: Rig) -> None:
    await rig.missed("call-1")
    await rig.engine.send_due()
    await rig.engine.receive(inbound("stop texting me", provider_id="a"))
    await rig.engine.send_due()
    await rig.engine.receive(inbound("and who are you anyway", provider_id="b"))
    erased = await rig.engine.erase(NY_MOBILE)
    assert erased.messages == 4 and erased.calls == 1
    assert (await rig.engine.messages(number=NY_MOBILE, needs_person=None, cursor=None, limit=10)).items == ()
    assert (await rig.engine.consent(NY_MOBILE)).status is ConsentStatus.OPTED_OUT
    rig.clock.advance(86400 * 3)
    await rig.missed("call-9")
    await rig.engine.send_due()
    assert len(rig.gateway.to(NY_MOBILE)) == 2  # the follow-up and the confirmation, nothing after


async def test_ledger_export_is_csv_with_the_chain(rig: Rig) -> None:
    await rig.engine.receive(inbound("STOP", provider_id="a"))
    await rig.engine.receive(inbound("START", provider_id="b"))
    lines = [line async for line in rig.engine.export_ledger()]
    assert lines[0].startswith("id,number,number_key,seq,program,action,source")
    assert len(lines) == 3 and NY_MOBILE in lines[1] and ",opt_out,sms_keyword," in lines[1]


async def test_unrelated_provider_gateway_is_independent(rig: Rig) -> None:
    other = RecordingSmsGateway(rig.clock, knows_sent=False)
    engine = rig.make(other)
    await engine.send_manual(NY_MOBILE, "hi", actor="a")
    await engine.send_due()
    assert len(other.delivered) == 1 and rig.gateway.delivered == []


async def test_a_sender_dying_mid_batch_leaves_at_most_twice_its_concurrency_handed_over(rig: Rig) -> None:
    """Texts are handed over (stored as such) before their request, at most ``2 * send_concurrency``
    ahead of the answers, also those the claim itself hands over: a process dying now would leave
    that many for a person, and the rest of the batch to be sent again by itself."""
    numbers = [f"+1212555{i:04d}" for i in range(6)]
    for i, number in enumerate(numbers):
        await rig.engine.send_manual(number, f"text {i}", actor="test")
    entered, release = asyncio.Event(), asyncio.Event()

    class StuckNetwork(RecordingSmsGateway):
        async def send(self, message: Outgoing) -> str:
            entered.set()
            await release.wait()  # the provider answers late: the process could die meanwhile
            return await super().send(message)

    one_at_a_time = dataclasses.replace(rig.settings, send_concurrency=1)
    engine = SmsEngine(rig.store, StuckNetwork(rig.clock), rig.calls, None, rig.clock, one_at_a_time)
    sender = asyncio.create_task(engine.send_due())
    await asyncio.wait_for(entered.wait(), 5)
    for _ in range(20):  # the other texts' tasks run as far as they can
        await asyncio.sleep(0)
    stored = (await rig.engine.messages(number=None, needs_person=None, cursor=None, limit=10)).items
    assert sorted(m.status.value for m in stored) == ["sending"] * 6
    assert len([m for m in stored if m.provider]) == 2
    sender.cancel()
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await sender


async def test_a_stopped_sender_finishes_its_requests_in_flight_and_gives_back_the_rest(rig: Rig) -> None:
    """A clean stop (SIGTERM): the text with the provider is finished and stored as sent; texts not
    started are queued again at once (no wait for their claim, no attempt counted), none sent twice."""
    import asyncio

    numbers = [f"+1212555{i:04d}" for i in range(3)]
    for i, number in enumerate(numbers):
        await rig.engine.send_manual(number, f"text {i}", actor="test")
    entered, release = asyncio.Event(), asyncio.Event()

    class SlowNetwork(RecordingSmsGateway):
        async def send(self, message: Outgoing) -> str:
            entered.set()
            await release.wait()
            return await super().send(message)

    network = SlowNetwork(rig.clock)
    one_at_a_time = dataclasses.replace(rig.settings, send_concurrency=1)
    engine = SmsEngine(rig.store, network, rig.calls, None, rig.clock, one_at_a_time)
    sender = asyncio.create_task(engine.send_due())
    await asyncio.wait_for(entered.wait(), 5)
    sender.cancel()
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await sender
    stored = {
        m.number: m
        for m in (await rig.engine.messages(number=None, needs_person=None, cursor=None, limit=10)).items
    }
    (done,) = [m for m in stored.values() if m.status is MessageStatus.SENT]
    assert [d.to for d in network.delivered] == [done.number]
    given_back = [m for m in stored.values() if m.status is MessageStatus.QUEUED]
    # One of them was already handed over (stored as such) while it waited for the request slot:
    # given back too, as not handed over, since its request never started.
    assert len(given_back) == 2 and all(m.attempts == 0 and not m.provider for m in given_back)
    await rig.make(network).send_due()  # at once: no claim to wait for
    assert sorted(d.to for d in network.delivered) == sorted(numbers)


class _StallFirst(RecordingSmsGateway):
    """A phone network whose first request hangs until ``release`` (a slow provider); later ones,
    from any sender, go through at once."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock)
        self.entered, self.release = asyncio.Event(), asyncio.Event()

    async def send(self, message: Outgoing) -> str:
        if not self.entered.is_set():
            self.entered.set()
            await self.release.wait()
        return await super().send(message)


async def _stalled_pass(rig: Rig, count: int) -> tuple[_StallFirst, asyncio.Task[int], list[str], str]:
    """``count`` texts to as many numbers; a sender (one request at a time) claims them all and hangs
    on its first request. Returns the network, the pass, the numbers and the id of the one text the
    claim could not hand over yet (it waits for a texts-ahead permit)."""
    numbers = [f"+1212555{i:04d}" for i in range(count)]
    for i, number in enumerate(numbers):
        await rig.engine.send_manual(number, f"text {i}", actor="test")
    network = _StallFirst(rig.clock)
    one_at_a_time = dataclasses.replace(rig.settings, send_concurrency=1)
    engine = SmsEngine(rig.store, network, rig.calls, None, rig.clock, one_at_a_time)
    sender = asyncio.create_task(engine.send_due())
    await asyncio.wait_for(network.entered.wait(), 5)
    for _ in range(20):  # the other texts' tasks run as far as they can
        await asyncio.sleep(0)
    stored = (await rig.engine.messages(number=None, needs_person=None, cursor=None, limit=10)).items
    (waiting,) = [m for m in stored if m.status is MessageStatus.SENDING and not m.provider]
    return network, sender, numbers, waiting.id


async def test_a_slow_provider_never_gets_a_text_twice_when_its_claim_runs_out(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 9: a claimed text waits so long behind a slow request that its claim runs out; another
    sender claims and sends it. The first sender's hand-over is refused: it does not send it (and
    says so), and the phone network gets it once."""
    network, first, _, waiting = await _stalled_pass(rig, 3)
    rig.clock.advance(rig.settings.lease_s + 1)  # the claim ran out; the handed-over ones are held
    second = rig.make(network)
    assert await second.send_due() == 1
    assert [d.message_id for d in network.delivered] == [waiting]
    network.release.set()
    assert await asyncio.wait_for(first, 5) == 3
    assert sorted(d.message_id for d in network.delivered).count(waiting) == 1
    assert len(network.delivered) == 3
    assert (await rig.store.get_message(waiting)).status is MessageStatus.SENT
    assert any("not sent by this pass" in r.getMessage() for r in caplog.records)
    await rig.make(network).send_due()
    assert len(network.delivered) == 3


async def test_stop_between_the_claim_and_the_hand_over_cancels_the_text(rig: Rig) -> None:
    """Issue 9: opt-out wins at every moment. STOP arrives after a sender claimed and checked a text
    (consent was fine then) but before it handed it to the provider: it is cancelled, never sent."""
    network, sender, numbers, waiting = await _stalled_pass(rig, 3)
    number = (await rig.store.get_message(waiting)).number
    await rig.engine.receive(inbound("STOP", sender=number))
    assert (await rig.store.get_message(waiting)).status is MessageStatus.CANCELLED
    network.release.set()
    assert await asyncio.wait_for(sender, 5) == 3
    assert waiting not in {d.message_id for d in network.delivered}
    stored = await rig.store.get_message(waiting)
    assert (stored.status, stored.error, stored.provider) == (MessageStatus.CANCELLED, "opted_out", "")
    # Later passes send the opt-out confirmation only, never the cancelled text.
    rig.clock.advance(rig.settings.report_wait_s + 1)
    await rig.make(network).send_due()
    assert waiting not in {d.message_id for d in network.delivered}
    assert sorted(d.to for d in network.delivered if d.text.startswith("text")) == sorted(
        n for n in numbers if n != number
    )


async def test_a_stopping_sender_whose_claim_ran_out_leaves_the_text_to_the_sender_holding_it(
    rig: Rig,
) -> None:
    """The sender that lost its claim is stopped (SIGTERM) while the text waits: it gives back only
    what is still its own, so the text another sender handed over is not queued again and sent twice."""
    slow, first, _, waiting = await _stalled_pass(rig, 3)
    rig.clock.advance(rig.settings.lease_s + 1)
    stuck = _StallFirst(rig.clock)  # the second sender's request hangs too
    second = asyncio.create_task(rig.make(stuck).send_due())
    await asyncio.wait_for(stuck.entered.wait(), 5)
    assert (await rig.store.get_message(waiting)).provider == "recording"  # handed over by the second
    first.cancel()
    slow.release.set()  # the first sender finishes its request in flight, then stops
    with pytest.raises(asyncio.CancelledError):
        await first
    assert (await rig.store.get_message(waiting)).status is MessageStatus.SENDING
    third = RecordingSmsGateway(rig.clock)
    await rig.make(third).send_due()
    stuck.release.set()
    assert await asyncio.wait_for(second, 5) == 1
    got = [d.message_id for n in (slow, stuck, third) for d in n.delivered]
    assert got.count(waiting) == 1
    assert (await rig.store.get_message(waiting)).status is MessageStatus.SENT
