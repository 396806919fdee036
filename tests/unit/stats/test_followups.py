"""The follow-up figures (callbacks, promises, closure by a callback, voicemails, SMS) on hand-made
event sequences, and the live promise figures against the callbacks' own judgement of the stored
records (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callcenter.callbacks.lifecycle import move, new_callback
from callcenter.callbacks.promise import cancelled_by_customer, keep_place_window, slot_window
from callcenter.callbacks.service import state_event
from callcenter.capacity.accuracy import PredictionRecord, accuracy
from callcenter.capacity.predictors import PredictorName
from callcenter.model.callbacks import Actor, Callback, CallbackChange
from callcenter.model.events import (
    CallbackPromiseAtRisk,
    CallEnded,
    CallLeftQueue,
    DomainEvent,
    SmsConsentChanged,
    SmsStatusChanged,
    VoicemailRecorded,
    VoicemailSilent,
    VoicemailTranscribed,
    WaitAnnounced,
    decode_event,
    encode_event,
)
from callcenter.model.records import CallRecord
from callcenter.model.vocabulary import (
    ActorKind,
    AttemptResult,
    CallbackKind,
    CallbackState,
    CallOutcome,
    EntryPoint,
)
from callcenter.stats.definitions import StatsConfig
from callcenter.stats.followups import TrackedCallback, promise_counts
from callcenter.stats.live import LiveStats

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
NUMBER = "+14155550100"
S = CallbackState
IVR = Actor(ActorKind.CUSTOMER, "ivr")
DISPATCHER = Actor(ActorKind.SYSTEM, "dispatcher")
AGENT = Actor(ActorKind.AGENT, "a1")
CUSTOMER = Actor(ActorKind.CUSTOMER, "sms")


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


class Story:
    """One callback driven through the callbacks' own lifecycle, with the events it publishes."""

    def __init__(self, callback: Callback, change: CallbackChange) -> None:
        self.callback = callback
        self.changes = [change]
        self.events: list[DomainEvent] = [state_event(callback, change)]

    @classmethod
    def keep_place(
        cls, cid: str, *, asked: float, by: float, number: str = NUMBER, queue: str = "sales"
    ) -> Story:
        window = keep_place_window(at(asked), at(by), grace_s=0)
        return cls(
            *new_callback(
                callback_id=cid,
                queue=queue,
                number=number,
                kind=CallbackKind.KEEP_PLACE,
                window=window,
                at=at(asked),
                actor=IVR,
                enqueued_at=at(asked - 1),
            )
        )

    @classmethod
    def slot(cls, cid: str, *, asked: float, start: float, end: float, queue: str = "sales") -> Story:
        story = cls(
            *new_callback(
                callback_id=cid,
                queue=queue,
                number=NUMBER,
                kind=CallbackKind.SCHEDULED,
                window=slot_window(at(start), at(end)),
                at=at(asked),
                actor=IVR,
            )
        )
        return story.to(S.SCHEDULED, asked, due=start)

    def to(
        self,
        state: CallbackState,
        minutes: float,
        *,
        actor: Actor = DISPATCHER,
        result: AttemptResult | None = None,
        due: float | None = None,
    ) -> Story:
        if state is S.DIALING and self.callback.state is S.REQUESTED:
            self.to(S.SCHEDULED, minutes)  # its place came up
        self.callback, change = move(
            self.callback,
            state,
            at=at(minutes),
            actor=actor,
            result=result,
            due_at=at(due) if due is not None else None,
        )
        self.changes.append(change)
        self.events.append(state_event(self.callback, change))
        return self

    def tracked(self) -> TrackedCallback:
        return TrackedCallback(callback=self.callback, by_customer=cancelled_by_customer(self.changes))


def board(*events: DomainEvent) -> LiveStats:
    live = LiveStats(config=StatsConfig(closure_window_s=3600))
    for event in events:
        live.apply(event)
    return live


def overall(live: LiveStats, minutes: float) -> dict[str, float | int | None]:
    return dict(live.snapshot(at(minutes)).overall)


def events_of(*stories: Story) -> list[DomainEvent]:
    return sorted((e for s in stories for e in s.events), key=lambda e: e.occurred_at)


# -- callbacks now ------------------------------------------------------------------------------------


def test_pending_due_and_overdue_callbacks_by_state_and_due_time() -> None:
    waiting_now = Story.keep_place("k1", asked=0, by=20)  # owed from its request
    slot_soon = Story.slot("s1", asked=0, start=40, end=70)  # due in 10 minutes at 30
    slot_later = Story.slot("s2", asked=0, start=75, end=105)  # due in 45 minutes at 30
    slot_far = Story.slot("s3", asked=0, start=200, end=230)
    dialing = Story.keep_place("k2", asked=0, by=60, number="+14155550101").to(S.DIALING, 25)
    late = Story.keep_place("k3", asked=0, by=10, number="+14155550102")  # window ended at 10, never dialled
    done = Story.keep_place("k4", asked=0, by=60, number="+14155550103").to(S.DIALING, 5).to(S.CONNECTED, 6)
    done.to(S.COMPLETED, 9)
    live = board(*events_of(waiting_now, slot_soon, slot_later, slot_far, dialing, late, done))

    figures = overall(live, 30)

    assert figures["callbacks_pending"] == 6  # every one but the completed
    assert figures["callbacks_due_15m"] == 3  # k1 and k3 (owed already), s1 (due at 40)
    assert figures["callbacks_due_60m"] == 4  # and s2 (due at 75)
    assert figures["callbacks_overdue"] == 2  # k1 (window ended at 20) and k3, never dialled
    assert live.snapshot(at(30)).queues["sales"]["callbacks_pending"] == 6


def test_promises_at_risk_are_listed_until_someone_dials_them_with_the_dispatchers_new_time() -> None:
    """Issue #7: supervisors see each promise about to be broken (the dispatcher's late-alert lead,
    2 minutes by default) or broken, with nobody dialled yet, and when it is now expected."""
    ends_soon = Story.keep_place("k1", asked=0, by=31)  # window ends at 31
    broken = Story.keep_place("k2", asked=0, by=25, number="+14155550101")  # ended at 25
    far = Story.keep_place("k3", asked=0, by=60, number="+14155550102")
    dialled = Story.keep_place("k4", asked=0, by=31, number="+14155550103").to(S.DIALING, 29)
    live = board(*events_of(ends_soon, broken, far, dialled))
    alert = CallbackPromiseAtRisk(
        event_id="late:k1",
        occurred_at=at(29),
        callback_id="k1",
        queue="sales",
        number=NUMBER,
        window_end=at(31),
        state=S.REQUESTED,
        expected_by=at(38),
    )
    assert live.apply(alert) is True and live.apply(alert) is False, "a repeat changes nothing"

    listed = live.snapshot(at(30)).at_risk
    assert [(r.callback_id, r.window_end, r.expected_by) for r in listed] == [
        ("k2", at(25), None),  # broken first; no alert seen for it (say, raised before a restart)
        ("k1", at(31), at(38)),
    ]
    assert listed[1].number == NUMBER and listed[1].queue == "sales"

    live.apply(ends_soon.to(S.DIALING, 30.5).events[-1])
    assert [r.callback_id for r in live.snapshot(at(31)).at_risk] == ["k2"], "dialled: no longer at risk"
    assert [r.callback_id for r in live.snapshot(at(59)).at_risk] == ["k2", "k3"]


def test_a_repeated_or_late_callback_event_changes_nothing() -> None:
    story = Story.keep_place("k1", asked=0, by=20).to(S.DIALING, 2).to(S.CONNECTED, 3)
    live = board(*story.events)
    before = overall(live, 10)

    assert live.apply(story.events[-1]) is False  # a repeat
    assert live.apply(story.events[0]) is False  # the old "requested" arriving late
    assert overall(live, 10) == before
    assert before["callbacks_pending"] == 1 and before["callbacks_due_15m"] == 0  # connected: not waiting


def test_callback_events_survive_the_wire() -> None:
    story = Story.slot("s1", asked=0, start=40, end=70)
    decoded = [decode_event(encode_event(e)) for e in story.events]

    assert decoded == story.events
    assert overall(board(*decoded), 80)["promise_kept_rate"] == 0.0  # never dialled: broken


# -- promises ---------------------------------------------------------------------------------------


def test_promise_kept_rate_follows_the_design_definition() -> None:
    early_place = Story.keep_place("k1", asked=10, by=30, number="+1").to(S.DIALING, 5)  # early: kept
    early_slot = Story.slot("s1", asked=0, start=20, end=40).to(S.DIALING, 15)  # early slot: broken
    in_slot = Story.slot("s2", asked=0, start=20, end=40).to(S.DIALING, 25)  # kept
    late = Story.keep_place("k2", asked=0, by=20, number="+2").to(S.DIALING, 21)  # broken
    retried = (
        Story.keep_place("k3", asked=0, by=20, number="+3")
        .to(S.DIALING, 5)
        .to(S.RETRY_WAIT, 6, result=AttemptResult.NO_ANSWER, due=25)
        .to(S.DIALING, 25)  # the first dial decides: kept
    )
    never = Story.keep_place("k4", asked=0, by=20, number="+4")  # broken, window passed
    by_customer = Story.keep_place("k5", asked=0, by=20, number="+5").to(S.CANCELLED, 1, actor=CUSTOMER)
    by_agent = Story.keep_place("k6", asked=0, by=20, number="+6").to(S.CANCELLED, 1, actor=AGENT)  # broken
    inbound = Story.keep_place("k7", asked=0, by=20, number="+7").to(S.COMPLETED_INBOUND, 2)  # excluded
    open_window = Story.keep_place("k8", asked=0, by=90, number="+8")  # not passed yet
    stories = (
        early_place,
        early_slot,
        in_slot,
        late,
        retried,
        never,
        by_customer,
        by_agent,
        inbound,
        open_window,
    )

    figures = overall(board(*events_of(*stories)), 60)

    assert figures["promises_counted"] == 7
    assert figures["promises_kept"] == 3
    assert figures["promise_kept_rate"] == round(3 / 7, 4)


def test_no_promise_due_yet_is_no_rate_not_zero() -> None:
    figures = overall(board(*Story.keep_place("k1", asked=0, by=90).events), 30)

    assert figures["promises_counted"] == 0
    assert figures["promise_kept_rate"] is None


@pytest.mark.timeout(60)
@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["place", "slot"]),
            st.floats(min_value=0, max_value=60),  # request
            st.floats(min_value=1, max_value=60),  # window length
            st.sampled_from(["none", "dial", "dial_retry", "cancel_customer", "cancel_agent", "inbound"]),
            st.floats(min_value=-30, max_value=120),  # first dial, from the window's start
        ),
        max_size=12,
    ),
    st.floats(min_value=0, max_value=300),
)
def test_live_promise_figures_equal_the_callbacks_judgement_of_the_stored_records(
    plans: list[tuple[str, float, float, str, float]], now_min: float
) -> None:
    stories = []
    for index, (kind, asked, length, fate, dial_offset) in enumerate(plans):
        if kind == "place":
            story = Story.keep_place(f"c{index}", asked=asked, by=asked + length, number=f"+1{index}")
            start = asked
        else:
            story = Story.slot(f"c{index}", asked=asked, start=asked + 5, end=asked + 5 + length)
            start = asked + 5
        dial = max(asked, start + dial_offset)
        if fate in ("dial", "dial_retry"):
            story.to(S.DIALING, dial)
            if fate == "dial_retry":
                story.to(S.RETRY_WAIT, dial + 1, result=AttemptResult.BUSY, due=dial + 5).to(
                    S.DIALING, dial + 5
                )
        elif fate == "cancel_customer":
            story.to(S.CANCELLED, asked + 1, actor=CUSTOMER)
        elif fate == "cancel_agent":
            story.to(S.CANCELLED, asked + 1, actor=AGENT)
        elif fate == "inbound":
            story.to(S.COMPLETED_INBOUND, asked + 1)
        stories.append(story)
    live = board(*events_of(*stories))
    now = at(now_min)

    counted, kept = promise_counts([s.tracked() for s in stories], now)
    figures = live.snapshot(now).overall

    assert (figures["promises_counted"], figures["promises_kept"]) == (counted, kept)


# -- closure by a connected callback ------------------------------------------------------------------


def missed(call_id: str, minutes: float, caller: str = NUMBER) -> CallEnded:
    return CallEnded(
        event_id=call_id,
        occurred_at=at(minutes),
        call_id=call_id,
        outcome=CallOutcome.ABANDONED,
        entry_point=EntryPoint.ARI,
        queue="sales",
        caller=caller,
        wait_s=30.0,
    )


def test_a_connected_callback_closes_the_missed_calls_of_its_number() -> None:
    story = Story.keep_place("k1", asked=2, by=30).to(S.DIALING, 10).to(S.CONNECTED, 11, actor=AGENT)
    other = missed("m2", 1, caller="+14155550199")
    live = board(missed("m1", 1), other, *story.events)

    snap = live.snapshot(at(20))
    closed = live.book.missed["m1"]

    assert snap.overall["missed_closed"] == 1
    assert snap.overall["missed_closable"] == 2
    assert snap.overall["missed_closure_rate"] == 0.5
    assert [m.call_id for m in snap.open_missed] == ["m2"]
    assert (closed.closed_at, closed.closed_by_agent, closed.closed_by_call) == (at(11), "a1", "callback:k1")
    assert live.apply(story.events[-1]) is False  # a repeat closes nothing more
    assert live.snapshot(at(20)).overall["missed_closed"] == 1


def test_a_callback_that_connects_outside_the_closure_window_closes_the_call_but_is_not_counted() -> None:
    story = Story.keep_place("k1", asked=2, by=200).to(S.DIALING, 100).to(S.CONNECTED, 101)
    live = board(missed("m1", 1), *story.events)  # closure window: 60 minutes

    snap = live.snapshot(at(120))

    assert snap.overall["missed_closed"] == 0
    assert snap.open_missed == ()  # closed in the list all the same


def test_a_callback_dialled_but_not_connected_closes_nothing() -> None:
    story = (
        Story.keep_place("k1", asked=2, by=30)
        .to(S.DIALING, 10)
        .to(S.RETRY_WAIT, 11, result=AttemptResult.NO_ANSWER, due=20)
    )
    snap = board(missed("m1", 1), *story.events).snapshot(at(20))

    assert snap.overall["missed_closed"] == 0
    assert [m.call_id for m in snap.open_missed] == ["m1"]


# -- voicemails -----------------------------------------------------------------------------------------


def recorded(vid: str, minutes: float, revision: int = 1, caller: str = NUMBER) -> VoicemailRecorded:
    return VoicemailRecorded(
        event_id=f"voicemail:{vid}:{revision}",
        occurred_at=at(minutes),
        voicemail_id=vid,
        queue="sales",
        caller=caller,
        revision=revision,
    )


def transcribed(vid: str, minutes: float, revision: int = 1) -> VoicemailTranscribed:
    return VoicemailTranscribed(
        event_id=f"voicemail-transcribed:{vid}:{revision}",
        occurred_at=at(minutes),
        voicemail_id=vid,
        queue="sales",
        caller=NUMBER,
        revision=revision,
    )


def test_voicemails_wait_for_transcription_until_transcribed_or_found_silent() -> None:
    silent = VoicemailSilent(event_id="s", occurred_at=at(3), voicemail_id="v2", queue="sales", caller="+2")
    live = board(recorded("v1", 1), recorded("v2", 1, caller="+2"), recorded("v3", 2, caller="+3"))

    assert overall(live, 5)["voicemails_untranscribed"] == 3
    live.apply(transcribed("v1", 3))
    live.apply(silent)
    assert overall(live, 5)["voicemails_untranscribed"] == 1
    assert live.snapshot(at(5)).queues["sales"]["voicemails_untranscribed"] == 1


def test_a_retranscription_waits_again_and_a_stale_transcript_does_not_end_it() -> None:
    live = board(recorded("v1", 1), transcribed("v1", 2), recorded("v1", 3, revision=2))

    assert overall(live, 5)["voicemails_untranscribed"] == 1
    assert live.apply(transcribed("v1", 4, revision=1)) is False
    assert overall(live, 5)["voicemails_untranscribed"] == 1
    live.apply(transcribed("v1", 5, revision=2))
    assert overall(live, 6)["voicemails_untranscribed"] == 0


def test_voicemails_awaiting_a_callback_are_those_with_an_open_callback_for_their_number() -> None:
    story = Story.keep_place("k1", asked=2, by=30)
    other_queue = Story.keep_place("k2", asked=2, by=30, number="+3", queue="support")
    live = board(recorded("v1", 1), recorded("v3", 1, caller="+3"), *story.events, *other_queue.events)

    assert overall(live, 5)["voicemails_awaiting_callback"] == 1  # v3's callback is another queue's
    for event in story.to(S.DIALING, 6).to(S.CONNECTED, 7).to(S.COMPLETED, 9).events[-3:]:
        live.apply(event)
    assert overall(live, 10)["voicemails_awaiting_callback"] == 0


# -- SMS ------------------------------------------------------------------------------------------------


def sms(message_id: str, status: str, minutes: float) -> SmsStatusChanged:
    return SmsStatusChanged(
        event_id=f"sms:{message_id}:{status}", occurred_at=at(minutes), message_id=message_id, status=status
    )


def consent(key: str, action: str, minutes: float) -> SmsConsentChanged:
    return SmsConsentChanged(
        event_id=f"consent:{key}:{minutes}", occurred_at=at(minutes), key=key, program="all", action=action
    )


def test_sms_sent_delivered_and_opted_out_today_once_each() -> None:
    yesterday = -24 * 60
    events = [
        sms("m0", "sent", yesterday),
        sms("m1", "sent", 1),
        sms("m1", "sent", 1),  # a repeat
        sms("m2", "sent", 2),
        sms("m3", "sent", 2),
        sms("m1", "delivered", 3),
        sms("m2", "failed", 3),
        consent("k1", "opt_out", yesterday),
        consent("k2", "opt_out", 4),
        consent("k3", "opt_in", 4),
    ]
    snap = board(*events, Story.keep_place("k1", asked=0, by=5).events[0]).snapshot(at(10))

    assert (snap.overall["sms_sent"], snap.overall["sms_delivered"], snap.overall["sms_opted_out"]) == (
        3,
        1,
        1,
    )
    assert snap.queues["sales"]["sms_sent"] is None  # numbers, not queues


def test_sms_events_survive_the_wire() -> None:
    events = [sms("m1", "delivered", 1), consent("k", "opt_out", 2)]

    assert [decode_event(encode_event(e)) for e in events] == events


# -- wait-estimate accuracy ---------------------------------------------------------------------------


def told(call_id: str, minutes: float, mean_s: float, p80_s: float) -> WaitAnnounced:
    return WaitAnnounced(
        event_id=f"wait-announced:{call_id}:{minutes}",
        occurred_at=at(minutes),
        call_id=call_id,
        queue="sales",
        predictor=PredictorName.QLA.value,
        mean_s=mean_s,
        p80_s=p80_s,
    )


def taken(call_id: str, minutes: float, agent: str | None = "a1") -> CallLeftQueue:
    return CallLeftQueue(
        event_id=f"left:{call_id}", occurred_at=at(minutes), call_id=call_id, queue="sales", agent_id=agent
    )


def test_announced_waits_are_scored_when_the_caller_is_answered() -> None:
    live = board(
        told("c1", 0, mean_s=120, p80_s=180),  # answered after 60 s: error +60, within p80
        told("c2", 0, mean_s=60, p80_s=90),  # answered after 180 s: error -120, beyond p80
        told("c2", 2, mean_s=30, p80_s=60),  # told again at 2: answered 60 s later: error -30, within
        told("c3", 0, mean_s=60, p80_s=90),  # hung up: unscored
        taken("c1", 1),
        taken("c2", 3),
        taken("c3", 1, agent=None),
    )

    live.queues.add("sales")
    figures = overall(live, 10)

    assert figures["wait_estimates_scored"] == 3
    assert figures["wait_estimate_bias_s"] == round((60 - 120 - 30) / 3, 1)
    assert figures["wait_estimate_rmse_s"] == round(((60**2 + 120**2 + 30**2) / 3) ** 0.5, 1)
    assert figures["wait_estimate_p80_coverage"] == round(2 / 3, 4)
    assert live.snapshot(at(10)).queues["sales"]["wait_estimates_scored"] == 3


def test_no_announced_wait_scored_is_no_figure() -> None:
    figures = overall(board(told("c1", 0, mean_s=60, p80_s=90)), 5)

    assert figures["wait_estimates_scored"] == 0
    assert figures["wait_estimate_rmse_s"] is None and figures["wait_estimate_p80_coverage"] is None


@pytest.mark.timeout(60)
@settings(max_examples=30, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(min_value=0, max_value=60),  # told at (minutes)
            st.floats(min_value=0, max_value=900),  # mean
            st.floats(min_value=0, max_value=900),  # extra for the p80
            st.one_of(st.none(), st.floats(min_value=0, max_value=30)),  # answered after (min); None: hung up
        ),
        max_size=15,
    )
)
def test_live_accuracy_equals_the_prediction_log_report(
    plans: list[tuple[float, float, float, float | None]],
) -> None:
    events: list[DomainEvent] = []
    records, calls = [], {}
    for index, (told_at, mean_s, extra_s, after_min) in enumerate(plans):
        call_id = f"c{index}"
        events.append(told(call_id, told_at, mean_s, mean_s + extra_s))
        records.append(
            PredictionRecord(
                call_id=call_id,
                queue="sales",
                at=at(told_at),
                predictor=PredictorName.QLA,
                mean_s=mean_s,
                p80_s=mean_s + extra_s,
                p90_s=mean_s + extra_s,
                announced=True,
            )
        )
        answered = at(told_at + after_min) if after_min is not None else None
        events.append(
            taken(
                call_id,
                told_at + (after_min if after_min is not None else 0.5),
                agent="a1" if answered else None,
            )
        )
        calls[call_id] = CallRecord(
            id=call_id,
            channel_id=call_id,
            linkedid=call_id,
            entry_point=EntryPoint.ARI,
            caller=NUMBER,
            queue="sales",
            arrived_at=at(told_at),
            answered_at=answered,
        )
    live = board(*sorted(events, key=lambda e: e.occurred_at))

    figures = overall(live, 120)
    report = accuracy(records, calls, announced_only=True)

    if not report or report[0].scored == 0:
        assert figures["wait_estimates_scored"] == 0
        return
    [mine] = report
    assert figures["wait_estimates_scored"] == mine.scored
    assert figures["wait_estimate_rmse_s"] == round(mine.rmse_s or 0.0, 1)
    assert figures["wait_estimate_bias_s"] == round(mine.bias_s or 0.0, 1)
    assert figures["wait_estimate_p80_coverage"] == round(mine.p80_coverage or 0.0, 4)
