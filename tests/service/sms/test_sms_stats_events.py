"""The SMS engine publishes what the statistics count: sent, delivered, consent changed (service)."""

from __future__ import annotations

from callcenter.model.events import DomainEvent, SmsConsentChanged, SmsStatusChanged
from callcenter.sms.consent import ALL_PROGRAMS, ConsentAction, ConsentSource
from callcenter.sms.records import MessageStatus
from callcenter.sms.service import Inbound
from callcenter.stats.definitions import StatsConfig
from callcenter.stats.live import LiveStats
from tests.service.sms.conftest import NY_MOBILE, Rig


def published_to(rig: Rig) -> list[DomainEvent]:
    events: list[DomainEvent] = []

    async def publish(event: DomainEvent) -> str:
        events.append(event)
        return "1-0"

    rig.engine.publish = publish
    return events


async def test_sent_delivered_and_opted_out_reach_the_live_board(rig: Rig) -> None:
    events = published_to(rig)
    await rig.missed("call-1")
    await rig.engine.send_due()
    provider_id = f"p-{rig.gateway.delivered[0].message_id}"  # what the recording gateway answered
    await rig.engine.delivery_report("recording", provider_id, MessageStatus.DELIVERED)
    await rig.engine.receive(Inbound(sender=NY_MOBILE, text="STOP", provider="recording", provider_id="in-1"))
    await rig.engine.receive(Inbound(sender=NY_MOBILE, text="STOP", provider="recording", provider_id="in-1"))
    live = LiveStats(config=StatsConfig())
    for event in events:
        live.apply(event)

    statuses = [(e.status, e.kind) for e in events if isinstance(e, SmsStatusChanged)]
    consent = [e for e in events if isinstance(e, SmsConsentChanged)]
    overall = live.snapshot(rig.clock.now()).overall

    assert ("sent", "follow_up") in statuses and ("delivered", "follow_up") in statuses
    assert [(c.action, c.program, c.source) for c in consent] == [
        ("opt_out", ALL_PROGRAMS, "sms_keyword")
    ]  # the redelivery adds none
    assert NY_MOBILE not in consent[0].event_id  # the number only by its keyed hash
    assert overall["sms_delivered"] == 1 and overall["sms_opted_out"] == 1
    assert overall["sms_sent"] == sum(1 for s, _ in statuses if s == "sent")


async def test_consent_recorded_by_a_person_is_published(rig: Rig) -> None:
    events = published_to(rig)

    await rig.engine.record_consent(
        NY_MOBILE, action=ConsentAction.OPT_OUT, program=ALL_PROGRAMS, source=ConsentSource.AGENT, actor="bob"
    )

    [event] = events
    assert isinstance(event, SmsConsentChanged) and (event.action, event.source) == ("opt_out", "agent")


async def test_a_failing_publisher_loses_nothing_the_store_recorded(rig: Rig) -> None:
    async def broken(event: DomainEvent) -> str:
        raise ConnectionError("redis is down")

    rig.engine.publish = broken
    await rig.missed("call-1")

    assert await rig.engine.send_due() == 1
    (message,) = (await rig.engine.messages(number=NY_MOBILE, needs_person=None, cursor=None, limit=10)).items
    assert message.status is MessageStatus.SENT


async def test_a_restarted_board_counts_the_days_texts_and_opt_outs_from_the_store(rig: Rig) -> None:
    events = published_to(rig)
    await rig.missed("call-1")
    await rig.engine.send_due()
    provider_id = f"p-{rig.gateway.delivered[0].message_id}"
    await rig.engine.delivery_report("recording", provider_id, MessageStatus.DELIVERED)
    await rig.engine.receive(Inbound(sender=NY_MOBILE, text="STOP", provider="recording", provider_id="in-1"))
    witness = LiveStats(config=StatsConfig())
    for event in events:
        witness.apply(event)

    restarted = LiveStats(config=StatsConfig())
    restarted.roll(rig.clock.now())
    restarted.followups.seed_sms(await rig.engine.day_activity(rig.clock.now().replace(hour=0, minute=0)))
    # The tail starts after the restart: the day so far comes from the store alone; a delivery
    # report's event seen again (a redelivery) adds nothing.
    restarted.apply(next(e for e in events if isinstance(e, SmsStatusChanged) and e.status == "delivered"))

    names = ("sms_sent", "sms_delivered", "sms_opted_out")
    seen_all = witness.snapshot(rig.clock.now()).overall
    after_restart = restarted.snapshot(rig.clock.now()).overall
    assert {n: after_restart[n] for n in names} == {n: seen_all[n] for n in names}
    assert (after_restart["sms_delivered"], after_restart["sms_opted_out"]) == (1, 1)
    assert after_restart["sms_sent"] >= 1
