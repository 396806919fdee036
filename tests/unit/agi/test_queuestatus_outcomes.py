"""The QUEUESTATUS table: what an app_queue call reported becomes the same outcome as on ARI (pure).

Also :func:`callcenter.agi.outcome.read_report`: the channel variables the hook read, typed.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from callcenter.agi.outcome import READ_VARIABLES, read_report
from callcenter.errors import ValidationError
from callcenter.model.vocabulary import CallOutcome, EntryPoint
from callcenter.queue.agi_outcomes import (
    QUEUESTATUS_OUTCOMES,
    AppQueueReport,
    QueueStatus,
    decide,
    report_facts,
    timeline,
)
from callcenter.queue.detection import to_call_ended, to_record

T0 = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def _report(**changes: object) -> AppQueueReport:
    """A caller who arrived at 0 s, joined "sales" at 2 s and hung up at 62 s, nothing else said."""
    base = AppQueueReport(
        linkedid="1795459766.10",
        channel_id="1795459766.10",
        caller="+14155550100",
        caller_name="Ann",
        dialled="3001",
        queue="sales",
        arrived_at=_at(0),
        joined_at=_at(2),
        entered_at=_at(2),
        ended_at=_at(62),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def _left_at(status: QueueStatus) -> dict[str, object]:
    refused = status in (QueueStatus.FULL, QueueStatus.JOINEMPTY, QueueStatus.JOINUNAVAIL)
    left = _at(2) if refused else _at(40)
    return {"status": status, "status_raw": status.value, "left_at": left, "abandoned": True}


# -- the documented table, one row per QUEUESTATUS ---------------------------------------------


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (QueueStatus.TIMEOUT, CallOutcome.UNANSWERED_TIMEOUT),
        (QueueStatus.FULL, CallOutcome.UNANSWERED_FULL),
        (QueueStatus.JOINEMPTY, CallOutcome.UNANSWERED_NO_AGENTS),
        (QueueStatus.LEAVEEMPTY, CallOutcome.UNANSWERED_NO_AGENTS),
        (QueueStatus.JOINUNAVAIL, CallOutcome.UNANSWERED_NO_AGENTS),
        (QueueStatus.LEAVEUNAVAIL, CallOutcome.UNANSWERED_NO_AGENTS),
    ],
)
def test_each_unanswered_queuestatus_has_its_outcome(status: QueueStatus, outcome: CallOutcome) -> None:
    track = decide(_report(**_left_at(status)))

    assert track.outcome is outcome
    assert QUEUESTATUS_OUTCOMES[status] is outcome
    assert track.entry_point is EntryPoint.AGI


def test_continue_is_answered_and_the_talk_ends_when_the_agent_hung_up() -> None:
    report = _report(
        status=QueueStatus.CONTINUE,
        status_raw="CONTINUE",
        member_interface="PJSIP/1001",
        hold_s=8.0,
        left_at=_at(50),
    )

    track = decide(report)

    assert track.outcome is CallOutcome.ANSWERED
    assert QUEUESTATUS_OUTCOMES[QueueStatus.CONTINUE] is CallOutcome.ANSWERED
    assert track.agent_id == "PJSIP/1001"
    assert track.answered_at == _at(10)
    assert track.wait_s() == 8.0
    assert track.talk_s == 40.0  # answered at 10 s, the agent hung up at 50 s


def test_join_refusals_never_count_as_queued() -> None:
    track = decide(_report(**_left_at(QueueStatus.FULL)))
    assert track.queued_at is None and track.wait_s() is None


def test_a_timeout_waits_until_the_queue_let_go() -> None:
    track = decide(_report(**_left_at(QueueStatus.TIMEOUT), position=3))
    assert track.wait_s() == 38.0
    assert track.position == 3


# -- unset QUEUESTATUS ----------------------------------------------------------------------------


def test_a_caller_who_hangs_up_in_the_queue_abandons() -> None:
    track = decide(_report(abandoned=True, position=2))

    assert track.outcome is CallOutcome.ABANDONED
    assert track.wait_s() == 60.0
    assert track.position == 2


def test_a_caller_who_hangs_up_within_the_threshold_is_a_short_abandon() -> None:
    report = _report(abandoned=True, ended_at=_at(5))

    assert decide(report).outcome is CallOutcome.SHORT_ABANDON  # 3 s of waiting < 5 s
    assert decide(report, short_abandon_s=2.0).outcome is CallOutcome.ABANDONED


def test_answered_then_the_caller_hung_up_is_answered() -> None:
    track = decide(_report(member_interface="PJSIP/1002", hold_s=12.0))

    assert track.outcome is CallOutcome.ANSWERED
    assert track.answered_at == _at(14)
    assert track.talk_s == 48.0


def test_qeholdtime_alone_is_enough_to_know_it_was_answered() -> None:
    track = decide(_report(hold_s=4.0))
    assert track.outcome is CallOutcome.ANSWERED
    assert track.agent_id == "unknown"


def test_a_caller_who_never_reached_the_queue_is_an_ivr_hangup() -> None:
    track = decide(_report(joined_at=None, entered_at=None, ended_at=_at(3)))
    assert track.outcome is CallOutcome.IVR_HANGUP


def test_withdraw_counts_as_the_caller_leaving() -> None:
    track = decide(_report(status=QueueStatus.WITHDRAW, status_raw="WITHDRAW", left_at=_at(30)))
    assert track.outcome is CallOutcome.ABANDONED
    assert QUEUESTATUS_OUTCOMES[QueueStatus.WITHDRAW] is None


def test_an_unknown_queuestatus_reads_as_unset() -> None:
    report = read_report(_variables(QUEUESTATUS="SOMETHINGNEW"), received_at=T0)
    assert report.status is None and report.status_raw == "SOMETHINGNEW"


# -- the exit key, overflow, failures ------------------------------------------------------------


def test_a_callback_accepted_on_the_exit_key_is_callback_requested() -> None:
    track = decide(_report(exit_key="1", callback_accepted=True, left_at=_at(20), position=4))

    assert track.outcome is CallOutcome.CALLBACK_REQUESTED
    assert track.wait_s() == 18.0
    assert track.position == 4


def test_the_exit_key_without_a_callback_then_a_hang_up_is_an_abandon() -> None:
    track = decide(_report(exit_key="1", left_at=_at(20)))
    assert track.outcome is CallOutcome.ABANDONED


@pytest.mark.parametrize(
    "how",
    [
        {"exit_key": "9", "left_at": _at(20)},  # the voicemail key while waiting
        _left_at(QueueStatus.TIMEOUT),  # the dialplan sends TIMEOUT callers to the voicemail script
        _left_at(QueueStatus.FULL),
        _left_at(QueueStatus.JOINEMPTY),
        {"joined_at": None, "entered_at": None},  # voicemail without a queue (after hours, say)
    ],
    ids=["voicemail-key", "TIMEOUT", "FULL", "JOINEMPTY", "no-queue"],
)
def test_a_message_left_through_the_voicemail_script_is_voicemail(how: dict[str, object]) -> None:
    """Issue 8: the AGI path's outcome is voicemail once the caller left a message (CC_VOICEMAIL)."""
    track = decide(_report(**how, voicemail_recorded=True))
    assert track.outcome is CallOutcome.VOICEMAIL
    assert decide(_report(**how)).outcome is not CallOutcome.VOICEMAIL


def test_an_answer_or_a_callback_wins_over_a_voicemail_flag() -> None:
    answered = _report(member_interface="PJSIP/1001", hold_s=5.0, voicemail_recorded=True)
    assert decide(answered).outcome is CallOutcome.ANSWERED
    callback = _report(exit_key="1", callback_accepted=True, left_at=_at(20), voicemail_recorded=True)
    assert decide(callback).outcome is CallOutcome.CALLBACK_REQUESTED


def test_a_dial_answered_after_the_queue_let_go_is_answered() -> None:
    report = _report(**_left_at(QueueStatus.TIMEOUT), dial_status="ANSWER", dialled_peer="PJSIP/2000")

    track = decide(report)

    assert track.outcome is CallOutcome.ANSWERED
    assert track.agent_id == "PJSIP/2000"


def test_other_dialstatus_values_change_nothing() -> None:
    report = _report(**_left_at(QueueStatus.TIMEOUT), dial_status="NOANSWER")
    assert decide(report).outcome is CallOutcome.UNANSWERED_TIMEOUT


def test_an_unknown_queue_is_failed() -> None:
    report = _report(queue="nope", joined_at=None, entered_at=None, failure="unknown_queue", ended_at=_at(4))
    assert decide(report).outcome is CallOutcome.FAILED


def test_a_failure_after_the_answer_keeps_the_answer() -> None:
    report = _report(member_interface="PJSIP/1001", hold_s=3.0, failure="something")
    assert decide(report).outcome is CallOutcome.ANSWERED


# -- the record, the event and the timeline ------------------------------------------------------


def test_the_record_and_event_are_those_of_the_ari_path_keyed_by_linkedid() -> None:
    track = decide(_report(linkedid="L.1", channel_id="C.2", abandoned=True))

    record, event = to_record(track), to_call_ended(track)

    assert record.id == "L.1" and record.linkedid == "L.1" and record.channel_id == "C.2"
    assert record.caller == "+14155550100"
    assert record.entry_point is EntryPoint.AGI
    assert event.event_id == "L.1" and event.outcome is CallOutcome.ABANDONED


def test_the_timeline_lists_the_facts_and_ends_with_what_app_queue_said() -> None:
    report = _report(**_left_at(QueueStatus.TIMEOUT), dial_status="NOANSWER")
    record = to_record(decide(report))

    entries = timeline(report, record)

    assert [kind for _, kind, _ in entries] == ["arrived", "queued", "queue_exit", "caller_hung_up", "ended"]
    assert entries[-1][2]["queuestatus"] == "TIMEOUT"
    assert entries[-1][2]["dialstatus"] == "NOANSWER"
    assert entries[-1][2]["outcome"] == "unanswered_timeout"


def test_facts_end_with_the_hang_up() -> None:
    facts = report_facts(_report())
    assert type(facts[-1]).__name__ == "CallerHungUp" and facts[-1].at == _at(62)


# -- read_report: the variables as read ----------------------------------------------------------


def _variables(**values: str) -> dict[str, str]:
    base = {key: "" for key in READ_VARIABLES}
    base.update(
        {
            "UNIQUEID": "1795459766.10",
            "LINKEDID": "1795459766.10",
            "CALLER": "+14155550100",
            "CALLER_NAME": "Ann",
            "DNID": "3001",
            "CC_QUEUE": "sales",
            "CC_ARRIVED_AT": "1795459760.000",
            "CC_QUEUE_JOINED_AT": "1795459762.500",
            "CC_QUEUE_ENTERED_AT": "1795459762.500",
            "NOW": "1795459822.250",
        }
    )
    base.update(values)
    return base


def test_read_report_types_every_value() -> None:
    report = read_report(
        _variables(
            QUEUESTATUS="timeout", ABANDONED="TRUE", QUEUEPOSITION="3", CC_QUEUE_LEFT_AT="1795459800.000"
        ),
        received_at=T0,
    )

    assert report.status is QueueStatus.TIMEOUT
    assert report.abandoned and report.position == 3
    assert report.joined_at == datetime.fromtimestamp(1795459762.5, UTC)
    assert report.left_at == datetime.fromtimestamp(1795459800, UTC)
    assert report.ended_at == datetime.fromtimestamp(1795459822.25, UTC)
    assert report.hold_s is None  # nobody answered
    assert report.call_id == "1795459766.10"


def test_hold_time_prefers_milliseconds_and_counts_only_when_answered() -> None:
    both = read_report(
        _variables(MEMBERINTERFACE="PJSIP/1001", QEHOLDTIME="7", QUEUEWAIT_MS="7420"), received_at=T0
    )
    seconds = read_report(_variables(MEMBERINTERFACE="PJSIP/1001", QEHOLDTIME="7"), received_at=T0)
    not_answered = read_report(_variables(QUEUEWAIT_MS="7420"), received_at=T0)

    assert both.hold_s == 7.42
    assert seconds.hold_s == 7.0
    assert not_answered.hold_s is None


def test_garbage_times_read_as_unknown_and_the_end_falls_back_to_now() -> None:
    report = read_report(_variables(CC_QUEUE_JOINED_AT="yesterday", NOW="-1"), received_at=T0)
    assert report.joined_at is None
    assert report.ended_at == T0


def test_the_voicemail_flag_is_read_from_cc_voicemail() -> None:
    base = {"UNIQUEID": "1795459766.10"}
    assert read_report({**base, "CC_VOICEMAIL": "recorded"}, received_at=T0).voicemail_recorded
    assert not read_report({**base, "CC_VOICEMAIL": ""}, received_at=T0).voicemail_recorded
    assert not read_report(base, received_at=T0).voicemail_recorded


def test_the_callback_flag_and_exit_position() -> None:
    report = read_report(
        _variables(CC_CALLBACK="accepted", CC_EXIT_KEY="1", CC_EXIT_POSITION="2"), received_at=T0
    )
    assert report.callback_accepted and report.exit_key == "1" and report.position == 2


def test_queueposition_after_going_back_in_wins_over_the_exit_position() -> None:
    report = read_report(_variables(CC_EXIT_POSITION="2", QUEUEPOSITION="1"), received_at=T0)
    assert report.position == 1


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"UNIQUEID": "", "LINKEDID": ""}, "UNIQUEID or LINKEDID is required"),
        ({"CALLER_NAME": "x" * 2000}, "longer than"),
    ],
)
def test_read_report_refuses_what_it_cannot_use(values: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        read_report(_variables(**values), received_at=T0)


def test_read_report_refuses_unknown_variables() -> None:
    with pytest.raises(ValidationError, match="unknown variable"):
        read_report({**_variables(), "EVIL": "1"}, received_at=T0)
