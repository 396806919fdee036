"""The SMS store on SQLite and PostgreSQL: ledger chaining, outbox idempotency and claims, erasure."""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter.errors import CallCenterError, NotFoundError
from callcenter.model.records import CallRecord
from callcenter.model.vocabulary import CallOutcome, EntryPoint
from callcenter.sms.consent import (
    ALL_PROGRAMS,
    INFORMATIONAL,
    ConsentAction,
    ConsentEntry,
    ConsentSource,
    ConsentStatus,
    number_key,
    status_of,
    verify_chain,
)
from callcenter.sms.outbox import Cancelled, Deferred, Handed, Report, Sent
from callcenter.sms.records import Contact, Direction, MessageStatus, OutboundDraft, SmsMessage
from callcenter.sms.rules import MessageKind
from callcenter.store.sql_repos import SqlCallRepository
from callcenter.store.sql_sms import SqlSmsStore

T0 = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
NUMBER = "+14155550100"
KEY = number_key(NUMBER, b"test-secret")


def draft(
    key: str, *, kind: MessageKind = MessageKind.FOLLOW_UP, number: str = NUMBER, due: datetime = T0
) -> OutboundDraft:
    return OutboundDraft(
        key=key,
        number=number,
        kind=kind,
        program=INFORMATIONAL,
        text=f"text of {key}",
        due_at=due,
        created_at=T0,
    )


def entry(action: ConsentAction, minute: int = 0, text: str = "STOP") -> ConsentEntry:
    return ConsentEntry(
        program=ALL_PROGRAMS,
        action=action,
        source=ConsentSource.SMS_KEYWORD,
        actor="sms",
        at=T0 + timedelta(minutes=minute),
        evidence_ref=f"msg-{minute}",
        evidence_text=text,
    )


async def test_contacts_are_created_on_first_contact_and_editable(engine: AsyncEngine) -> None:
    store = SqlSmsStore(engine)
    assert await store.get_contact(NUMBER) is None
    first = await store.touch_contact(NUMBER, T0)
    assert first.first_contact_at == first.last_contact_at == T0
    later = await store.touch_contact(NUMBER, T0 + timedelta(hours=1))
    assert (later.first_contact_at, later.last_contact_at) == (T0, T0 + timedelta(hours=1))
    edited = await store.put_contact(
        Contact(number=NUMBER, name="Ann", language="fr", time_zone="Europe/Paris", notes="prefers texts"), T0
    )
    assert (edited.name, edited.language, edited.time_zone, edited.first_contact_at) == (
        "Ann",
        "fr",
        "Europe/Paris",
        T0,
    )


async def test_concurrent_consent_appends_form_one_unbroken_chain(engine: AsyncEngine) -> None:
    store = SqlSmsStore(engine)
    actions = [ConsentAction.OPT_OUT if i % 2 else ConsentAction.OPT_IN for i in range(8)]
    await asyncio.gather(*(store.append_consent(NUMBER, KEY, entry(a, i)) for i, a in enumerate(actions)))
    records = await store.consent_records(KEY)
    assert [r.seq for r in records] == list(range(1, 9))
    assert verify_chain(records) is None
    rows = await store.ledger(after_id=0, limit=100)
    assert [n for _, n, _ in rows] == [NUMBER] * 8


async def test_concurrent_enqueues_share_a_round_and_each_gets_its_own_answer(engine: AsyncEngine) -> None:
    store = SqlSmsStore(engine)
    before, _ = await store.enqueue(draft("old"))
    keys = ["old", *(f"new-{i}" for i in range(30)), "new-3", "new-4"]
    results = await asyncio.gather(*(store.enqueue(draft(key)) for key in keys))
    assert [created for _, created in results] == [False, *([True] * 30), False, False]
    assert results[0][0].id == before.id
    # A key given twice in one round is one message.
    assert results[-2][0].id == results[4][0].id and results[-1][0].id == results[5][0].id
    page = await store.messages(number=NUMBER, needs_person=None, cursor=None, limit=100)
    assert sorted(m.key or "" for m in page.items) == sorted(set(keys))


async def test_a_draft_the_database_refuses_fails_alone_in_its_round(engine: AsyncEngine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite does not enforce column lengths")
    store = SqlSmsStore(engine)
    bad = dataclasses.replace(draft("bad"), program="p" * 40)
    results = await asyncio.gather(
        *(store.enqueue(draft(f"good-{i}")) for i in range(5)), store.enqueue(bad), return_exceptions=True
    )
    assert all(isinstance(r, tuple) and r[1] for r in results[:5])
    assert isinstance(results[5], CallCenterError)
    page = await store.messages(number=NUMBER, needs_person=None, cursor=None, limit=100)
    assert sorted(m.key or "" for m in page.items) == [f"good-{i}" for i in range(5)]


async def test_enqueue_is_idempotent_by_key(engine: AsyncEngine) -> None:
    store = SqlSmsStore(engine)
    first, created = await store.enqueue(draft("follow-up:call-1"))
    again, created_again = await store.enqueue(draft("follow-up:call-1"))
    assert created and not created_again
    assert again.id == first.id and again.status is MessageStatus.QUEUED
    page = await store.messages(number=NUMBER, needs_person=None, cursor=None, limit=10)
    assert [m.id for m in page.items] == [first.id]


async def test_two_claimers_never_take_the_same_message(engine: AsyncEngine) -> None:
    store = SqlSmsStore(engine)
    for i in range(10):
        await store.enqueue(draft(f"k{i}"))
    a, b = await asyncio.gather(
        store.claim_due(T0, lease_s=60, limit=10), store.claim_due(T0, lease_s=60, limit=10)
    )
    ids_a, ids_b = {m.id for m in a}, {m.id for m in b}
    assert not ids_a & ids_b
    assert len(ids_a | ids_b) == 10
    assert all(m.status is MessageStatus.SENDING and m.attempts == 1 for m in (*a, *b))
    # Nothing more is due while the claims hold.
    assert await store.claim_due(T0 + timedelta(seconds=30), lease_s=60, limit=10) == ()


async def test_a_claim_takes_at_most_its_limit_oldest_first(engine: AsyncEngine) -> None:
    store = SqlSmsStore(engine)
    for i in range(10):
        await store.enqueue(draft(f"k{i}", due=T0 + timedelta(seconds=i)))
    first = await store.claim_due(T0 + timedelta(minutes=1), lease_s=60, limit=3)
    assert [m.key for m in first] == ["k0", "k1", "k2"]
    # The number has texts in flight: its later texts wait, so they cannot overtake them.
    assert await store.claim_due(T0 + timedelta(minutes=1), lease_s=60, limit=100) == ()
    for message in first:
        await store.mark_sent(message.id, "p", f"p-{message.id}", T0 + timedelta(minutes=1))
    rest = await store.claim_due(T0 + timedelta(minutes=1), lease_s=60, limit=100)
    assert [m.key for m in rest] == [f"k{i}" for i in range(3, 10)]


async def test_outcomes_of_a_batch_are_stored_in_one_go(engine: AsyncEngine) -> None:
    store = SqlSmsStore(engine)
    for i in range(5):
        await store.enqueue(dataclasses.replace(draft(f"k{i}"), number=f"+1212555{i:04d}"))
    claimed = await store.claim_due(T0, lease_s=60, limit=10)
    assert len(claimed) == 5  # different numbers: all at once
    ids = [m.id for m in claimed]
    later = T0 + timedelta(hours=1)
    await store.record_outcomes(
        [
            Sent(ids[0], "p", "p-0", T0),
            Sent(ids[1], "p", "p-1", T0),
            Cancelled(ids[2], "opted_out"),
            Deferred(ids[3], later, "quiet_hours"),
            Handed(ids[4], "p", later, claimed[4].claimed_until),
        ],
        T0,
    )
    stored = [await store.get_message(i) for i in ids]
    assert [m.status for m in stored] == [
        MessageStatus.SENT,
        MessageStatus.SENT,
        MessageStatus.CANCELLED,
        MessageStatus.QUEUED,
        MessageStatus.SENDING,
    ]
    assert stored[1].provider_id == "p-1" and stored[3].due_at == later and stored[3].attempts == 0
    assert stored[4].provider == "p"
    # A "sent" never overwrites what a delivery report or an opt-out did meanwhile.
    await store.record_outcomes([Sent(ids[2], "p", "p-2", T0)], T0)
    assert (await store.get_message(ids[2])).status is MessageStatus.CANCELLED
    # Many reports in one transaction, each answered.
    applied = await store.delivery_reports(
        [Report("p", "p-0", MessageStatus.DELIVERED), Report("p", "nope", MessageStatus.DELIVERED)], T0
    )
    assert [a.known for a in applied] == [True, False]
    assert (await store.get_message(ids[0])).status is MessageStatus.DELIVERED


async def test_a_round_of_reports_applies_each_in_order_and_skips_the_unknown_and_the_cancelled(
    engine: AsyncEngine,
) -> None:
    """Reports arriving together are one round: two on one text keep their order, an unknown id in the
    middle neither fails nor blocks the others, and a cancelled text stays cancelled."""
    store = SqlSmsStore(engine)
    for i in range(4):
        await store.enqueue(dataclasses.replace(draft(f"r{i}"), number=f"+1212555{i:04d}"))
    a, b, c, d = await store.claim_due(T0, lease_s=60, limit=10)
    await store.record_outcomes([Cancelled(c.id, "opted_out")], T0)
    later = T0 + timedelta(minutes=1)
    applied = await store.delivery_reports(
        [
            Report("kannel", a.id, MessageStatus.SENT),
            Report("kannel", b.id, MessageStatus.DELIVERED),
            Report("kannel", "no-such-text", MessageStatus.DELIVERED),
            Report("kannel", a.id, MessageStatus.DELIVERED),
            Report("kannel", c.id, MessageStatus.DELIVERED),
            Report("kannel", d.id, MessageStatus.FAILED, "undeliverable"),
            Report("kannel", b.id, MessageStatus.SENT),  # late: never moves "delivered" back
        ],
        later,
    )
    assert [(x.known, x.moved is not None) for x in applied] == [
        (True, True),
        (True, True),
        (False, False),
        (True, True),
        (True, False),
        (True, True),
        (True, False),
    ]
    assert applied[3].moved == (a.id, MessageKind.FOLLOW_UP)
    stored = {m.id: await store.get_message(m.id) for m in (a, b, c, d)}
    assert [stored[m.id].status for m in (a, b, c, d)] == [
        MessageStatus.DELIVERED,
        MessageStatus.DELIVERED,
        MessageStatus.CANCELLED,
        MessageStatus.FAILED,
    ]
    assert (stored[a.id].provider, stored[a.id].sent_at, stored[d.id].error) == (
        "kannel",
        later,
        "undeliverable",
    )
    assert (stored[c.id].provider, stored[c.id].sent_at) == ("", None)


async def test_a_claim_left_by_a_dead_worker_is_taken_again_after_its_lease(engine: AsyncEngine) -> None:
    store = SqlSmsStore(engine)
    message, _ = await store.enqueue(draft("k"))
    (claimed,) = await store.claim_due(T0, lease_s=60, limit=10)
    assert claimed.id == message.id
    (again,) = await store.claim_due(T0 + timedelta(seconds=61), lease_s=60, limit=10)
    assert again.id == message.id and again.attempts == 2


async def test_not_yet_due_messages_wait_and_deferral_is_not_an_attempt(engine: AsyncEngine) -> None:
    store = SqlSmsStore(engine)
    await store.enqueue(draft("later", due=T0 + timedelta(hours=1)))
    assert await store.claim_due(T0, lease_s=60, limit=10) == ()
    (claimed,) = await store.claim_due(T0 + timedelta(hours=1), lease_s=60, limit=10)
    await store.defer(claimed.id, T0 + timedelta(hours=10), "quiet_hours", T0 + timedelta(hours=1))
    stored = await store.get_message(claimed.id)
    assert (stored.status, stored.due_at, stored.attempts) == (
        MessageStatus.QUEUED,
        T0 + timedelta(hours=10),
        0,
    )


async def test_sent_failed_and_delivery_reports(engine: AsyncEngine) -> None:
    store = SqlSmsStore(engine)
    for key in ("a", "b"):
        await store.enqueue(draft(key))
    a, b = await store.claim_due(T0, lease_s=60, limit=10)
    await store.mark_sent(a.id, "kannel", "p-1", T0)
    await store.mark_failed(b.id, "HTTP 503", T0, retry_at=T0 + timedelta(seconds=30))
    assert (await store.get_message(b.id)).status is MessageStatus.QUEUED
    (b2,) = await store.claim_due(T0 + timedelta(seconds=30), lease_s=60, limit=10)
    await store.mark_failed(b2.id, "HTTP 400 bad number", T0, retry_at=None)
    assert (await store.get_message(b.id)).status is MessageStatus.FAILED
    assert (await store.delivery_report("kannel", "p-1", MessageStatus.DELIVERED, "", T0)).known
    assert (await store.get_message(a.id)).status is MessageStatus.DELIVERED
    # A late "sent" report does not move it back; an unknown id is reported as such.
    assert (await store.delivery_report("kannel", "p-1", MessageStatus.SENT, "", T0)).known
    assert (await store.get_message(a.id)).status is MessageStatus.DELIVERED
    assert not (await store.delivery_report("kannel", "nope", MessageStatus.DELIVERED, "", T0)).known
    assert await store.sent_times(NUMBER, T0 - timedelta(days=1)) == (T0,)


async def test_an_opt_out_cancels_what_waits_but_not_compliance_texts(engine: AsyncEngine) -> None:
    store = SqlSmsStore(engine)
    follow_up, _ = await store.enqueue(draft("f"))
    manual, _ = await store.enqueue(draft("m", kind=MessageKind.MANUAL))
    confirmation, _ = await store.enqueue(draft("c", kind=MessageKind.COMPLIANCE))
    other, _ = await store.enqueue(draft("o", number="+14155550199"))
    assert await store.cancel_pending(NUMBER, "opted_out", T0) == 2
    statuses = {
        m.id: (await store.get_message(m.id)).status for m in (follow_up, manual, confirmation, other)
    }
    assert statuses == {
        follow_up.id: MessageStatus.CANCELLED,
        manual.id: MessageStatus.CANCELLED,
        confirmation.id: MessageStatus.QUEUED,
        other.id: MessageStatus.QUEUED,
    }
    assert await store.last_follow_up(NUMBER) is None  # the cancelled one does not count
    assert await store.last_follow_up("+14155550199") == T0


def inbound(message_id: str, provider_id: str, text: str = "hello") -> SmsMessage:
    return SmsMessage(
        id=message_id,
        key=None,
        direction=Direction.INBOUND,
        number=NUMBER,
        kind=None,
        program="",
        text=text,
        status=MessageStatus.RECEIVED,
        created_at=T0,
        provider="console",
        provider_id=provider_id,
        needs_person=True,
    )


async def test_inbound_messages_are_stored_once_and_form_the_worklist(engine: AsyncEngine) -> None:
    store = SqlSmsStore(engine)
    first, created = await store.record_inbound(inbound("m1", "p1"))
    again, created_again = await store.record_inbound(inbound("m2", "p1"))
    assert created and not created_again and again.id == "m1"
    work = await store.messages(number=None, needs_person=True, cursor=None, limit=10)
    assert [m.id for m in work.items] == ["m1"]
    await store.mark_handled("m1")
    assert (await store.messages(number=None, needs_person=True, cursor=None, limit=10)).items == ()
    with pytest.raises(NotFoundError):
        await store.mark_handled("nope")


async def test_one_open_callback_request_per_number(engine: AsyncEngine) -> None:
    store = SqlSmsStore(engine)
    await store.record_inbound(inbound("m1", "p1", "1"))
    await store.record_inbound(inbound("m2", "p2", "call me"))
    (first, created), (second, created2) = await asyncio.gather(
        store.request_callback(NUMBER, "m1", T0), store.request_callback(NUMBER, "m2", T0)
    )
    assert first.id == second.id and {created, created2} == {True, False}
    cancelled = await store.cancel_callback(NUMBER, T0)
    assert cancelled is not None and cancelled.cancelled_at == T0
    assert await store.cancel_callback(NUMBER, T0) is None
    new, created = await store.request_callback(NUMBER, "m1", T0)
    assert created and new.id != first.id
    assert len(await store.callback_requests(number=NUMBER, open_only=False)) == 2


async def test_erasure_keeps_the_opt_out_and_the_counts_but_not_the_number(engine: AsyncEngine) -> None:
    store = SqlSmsStore(engine)
    calls = SqlCallRepository(engine)
    await calls.upsert(
        CallRecord(
            id="c1",
            channel_id="c1",
            linkedid="c1",
            entry_point=EntryPoint.ARI,
            caller=NUMBER,
            caller_name="Ann",
            dialled="3000",
            queue=None,
            arrived_at=T0,
            outcome=CallOutcome.ABANDONED,
        )
    )
    await store.touch_contact(NUMBER, T0)
    await store.enqueue(draft("follow-up:c1"))
    await store.record_inbound(inbound("m1", "p1", "STOP"))
    await store.append_consent(NUMBER, KEY, entry(ConsentAction.OPT_OUT, 1, "STOP"))
    erased = await store.erase(NUMBER, "erased:abc", T0)
    assert (erased.messages, erased.contacts, erased.consent_records, erased.calls) == (2, 1, 1, 1)
    assert await store.get_contact(NUMBER) is None
    assert (await store.messages(number=NUMBER, needs_person=None, cursor=None, limit=10)).items == ()
    kept = await store.messages(number="erased:abc", needs_person=None, cursor=None, limit=10)
    assert len(kept.items) == 2 and all(m.text == "" for m in kept.items)
    # The queued follow-up will never go to the pseudonym.
    assert {m.status for m in kept.items} == {MessageStatus.CANCELLED, MessageStatus.RECEIVED}
    records = await store.consent_records(KEY)
    assert status_of(records, INFORMATIONAL) is ConsentStatus.OPTED_OUT
    assert verify_chain(records) is None
    assert [n for _, n, _ in await store.ledger(after_id=0, limit=10)] == [None]
    assert (await calls.get("c1")).caller == "erased:abc"
    # The idempotency key survives: a redelivered trigger queues nothing new.
    _, created = await store.enqueue(draft("follow-up:c1"))
    assert not created


async def test_a_report_naming_our_id_lands_even_before_the_send_was_recorded(engine: AsyncEngine) -> None:
    """Kannel's dlr-url carries our id: its report can beat our commit, or outlive a dead sender."""
    store = SqlSmsStore(engine)
    await store.enqueue(draft("k"))
    (claimed,) = await store.claim_due(T0, lease_s=60, limit=10)
    assert (await store.delivery_report("kannel", claimed.id, MessageStatus.DELIVERED, "", T0)).known
    reported = await store.get_message(claimed.id)
    assert (reported.status, reported.provider, reported.provider_id, reported.sent_at) == (
        MessageStatus.DELIVERED, "kannel", claimed.id, T0,
    )  # fmt: skip
    await store.mark_sent(claimed.id, "kannel", claimed.id, T0)  # the sender's late commit
    assert (await store.get_message(claimed.id)).status is MessageStatus.DELIVERED
    # Nothing is claimed again after the lease: a restarted sender cannot send it twice.
    assert await store.claim_due(T0 + timedelta(minutes=5), lease_s=60, limit=10) == ()
    # Another provider cannot report on it.
    assert not (await store.delivery_report("twilio", claimed.id, MessageStatus.FAILED, "", T0)).known


async def test_only_the_sender_still_holding_the_claim_hands_a_text_over(engine: AsyncEngine) -> None:
    """A claim that ran out before its hand-over was taken by another sender: the first sender's
    hand-over is refused (it must not send), the second's is stored, and nobody hands it over twice."""
    store = SqlSmsStore(engine)
    await store.enqueue(draft("slow"))
    (first,) = await store.claim_due(T0, lease_s=60, limit=10)
    later = T0 + timedelta(seconds=61)
    (second,) = await store.claim_due(later, lease_s=60, limit=10)  # the first claim ran out
    assert second.id == first.id and second.claimed_until != first.claimed_until
    hold = later + timedelta(hours=1)
    assert await store.record_outcomes([Handed(first.id, "p", hold, first.claimed_until)], later) == {}
    assert (await store.get_message(first.id)).provider == ""
    assert await store.record_outcomes([Handed(second.id, "p", hold, second.claimed_until)], later) == {
        second.id: hold
    }
    stored = await store.get_message(second.id)
    assert stored.status is MessageStatus.SENDING and stored.provider == "p" and stored.claimed_until == hold
    # Once handed over, neither claim hands it over again (the first sender's retry included).
    for claim in (first.claimed_until, second.claimed_until):
        assert await store.record_outcomes([Handed(first.id, "q", hold, claim)], later) == {}
    assert (await store.get_message(first.id)).provider == "p"


async def test_two_senders_handing_over_the_same_text_at_once_store_one_hand_over(
    engine: AsyncEngine,
) -> None:
    """Both senders race their hand-overs in concurrent transactions: exactly one is stored."""
    store = SqlSmsStore(engine)
    for i in range(4):
        await store.enqueue(draft(f"race{i}", number=f"+1415555{i:04d}"))
    firsts = await store.claim_due(T0, lease_s=60, limit=10)
    later = T0 + timedelta(seconds=61)
    seconds = await store.claim_due(later, lease_s=60, limit=10)
    assert {m.id for m in seconds} == {m.id for m in firsts}
    hold = later + timedelta(hours=1)
    handed = await asyncio.gather(
        store.record_outcomes([Handed(m.id, "p", hold, m.claimed_until) for m in firsts], later),
        store.record_outcomes([Handed(m.id, "p", hold, m.claimed_until) for m in seconds], later),
    )
    assert handed == [{}, {m.id: hold for m in seconds}]


async def test_an_opt_out_cancels_texts_claimed_but_not_yet_handed_over(engine: AsyncEngine) -> None:
    """STOP wins over a text a sender has claimed (and checked) but not handed to the provider: it is
    cancelled and its hand-over then fails. A text already handed over cannot be recalled."""
    store = SqlSmsStore(engine)
    claimed_text, _ = await store.enqueue(draft("claimed"))
    (claimed,) = await store.claim_due(T0, lease_s=60, limit=10)
    assert claimed.id == claimed_text.id
    queued, _ = await store.enqueue(draft("queued"))  # waits behind the one in flight
    elsewhere = "+14155550199"
    await store.enqueue(draft("handed", number=elsewhere))
    (handed,) = await store.claim_due(T0, lease_s=60, limit=10)
    hold = T0 + timedelta(hours=1)
    assert await store.record_outcomes([Handed(handed.id, "p", hold, handed.claimed_until)], T0) == {
        handed.id: hold
    }

    assert await store.cancel_pending(NUMBER, "opted_out", T0) == 2
    for message_id in (claimed.id, queued.id):
        stored = await store.get_message(message_id)
        assert (stored.status, stored.error) == (MessageStatus.CANCELLED, "opted_out")
    assert await store.record_outcomes([Handed(claimed.id, "p", hold, claimed.claimed_until)], T0) == {}
    assert (await store.get_message(claimed.id)).status is MessageStatus.CANCELLED

    assert await store.cancel_pending(elsewhere, "opted_out", T0) == 0
    stored = await store.get_message(handed.id)
    assert stored.status is MessageStatus.SENDING and stored.provider == "p"


async def test_a_sender_giving_back_a_text_never_takes_it_from_the_sender_that_claimed_it_after(
    engine: AsyncEngine,
) -> None:
    """A stopping sender gives its unsent texts back (deferred to now) naming its claim and hold: a
    text whose claim ran out and that another sender claimed and handed over stays with that one."""
    store = SqlSmsStore(engine)
    await store.enqueue(draft("given-back"))
    (first,) = await store.claim_due(T0, lease_s=60, limit=10)
    later = T0 + timedelta(seconds=61)
    (second,) = await store.claim_due(later, lease_s=60, limit=10)
    hold = later + timedelta(hours=1)
    await store.record_outcomes([Handed(second.id, "p", hold, second.claimed_until)], later)
    first_hold = T0 + timedelta(hours=1)
    await store.record_outcomes(
        [Deferred(first.id, later, "released at shutdown", first.claimed_until, first_hold)], later
    )
    stored = await store.get_message(first.id)
    assert (stored.status, stored.provider, stored.claimed_until) == (MessageStatus.SENDING, "p", hold)
    # The sender that holds it gives it back: its own hold matches.
    await store.record_outcomes(
        [Deferred(second.id, later, "released at shutdown", second.claimed_until, hold)], later
    )
    stored = await store.get_message(second.id)
    assert (stored.status, stored.provider, stored.attempts) == (MessageStatus.QUEUED, "", 1)


async def test_the_latest_messages_of_many_numbers_are_read_at_once_newest_first(engine: AsyncEngine) -> None:
    """The texts beside each callback of an agent's worklist: each number's latest, in one read."""
    store = SqlSmsStore(engine)
    other = "+14155550101"
    for n in range(3):
        await store.record_inbound(replace(inbound(f"m{n}", f"p{n}"), created_at=T0 + timedelta(minutes=n)))
    await store.record_inbound(replace(inbound("o1", "q1"), number=other))
    await store.record_inbound(replace(inbound("x1", "r1"), number="+14155550102"))  # not asked for

    latest = await store.latest_of([NUMBER, other, "+14155550199"], 2)

    assert {number: [m.id for m in messages] for number, messages in latest.items()} == {
        NUMBER: ["m2", "m1"],
        other: ["o1"],
    }
    assert latest[NUMBER][0].text == "hello" and latest[NUMBER][0].direction is Direction.INBOUND
    assert await store.latest_of([], 2) == {}
