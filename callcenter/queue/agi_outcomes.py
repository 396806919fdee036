"""Outcomes of calls from ``app_queue`` sites: what the dialplan reported, as call facts (pure).

The call-outcome AGI script (``callcenter.agi.outcome``) runs from a hang-up handler and reads the
channel: ``QUEUESTATUS``, ``ABANDONED``, ``MEMBERINTERFACE``, ``QUEUEPOSITION``, ``DIALSTATUS`` and
the times our dialplan wrote. :func:`report_facts` turns that :class:`AppQueueReport` into the same
facts the ARI path feeds :func:`callcenter.queue.detection.advance`, so an ``app_queue`` call gets its
outcome by the same rules and lands in the same calls table with the same ``CallEnded``.

``QUEUESTATUS`` is set by ``Queue()`` only when it returns to the dialplan (``app_queue.c``,
``set_queue_result``); a caller who hangs up inside ``Queue()``, or leaves it by a key of the queue's
``context``, leaves it unset (``Queue()`` does not clear an earlier value: our dialplan does). The
table, with what a real Asterisk 20.20 reported in ``tests/real_asterisk/test_app_queue_hooks.py``:

| ``QUEUESTATUS``  | what happened                                          | outcome                    |
|------------------|--------------------------------------------------------|----------------------------|
| ``TIMEOUT``      | the queue's max wait passed                            | ``unanswered_timeout``     |
| ``FULL``         | ``maxlen`` callers already waiting: never joined       | ``unanswered_full``        |
| ``JOINEMPTY``    | ``joinempty``: no member could take calls (whichever   | ``unanswered_no_agents``   |
|                  | ``joinempty`` condition, or no member at all)          |                            |
| ``JOINUNAVAIL``  | never set by Asterisk 20's ``app_queue`` (older        | ``unanswered_no_agents``   |
|                  | releases); kept so such a report still decides         |                            |
| ``LEAVEEMPTY``   | ``leavewhenempty``: the members went while waiting     | ``unanswered_no_agents``   |
| ``LEAVEUNAVAIL`` | as ``JOINUNAVAIL``: never set by Asterisk 20           | ``unanswered_no_agents``   |
| ``CONTINUE``     | answered; the agent hung up and option ``c`` went on   | ``answered``               |
| ``WITHDRAW``     | taken out by AMI ``QueueWithdrawCaller``               | as unset (below)           |
| unset            | answered (``MEMBERINTERFACE`` or ``QEHOLDTIME`` set),  | ``answered``               |
|                  | then the caller hung up                                |                            |
| unset            | hung up while waiting (``ABANDONED=TRUE``), or after   | ``abandoned`` or           |
|                  | leaving by the exit key without a callback             | ``short_abandon`` by wait  |
| unset            | hung up before ``Queue()``                             | ``ivr_hangup``             |

A callback the caller accepted on the exit key (``CC_CALLBACK=accepted``) makes the call
``callback_requested`` whatever ``QUEUESTATUS`` says. A message the caller left through our
``voicemail`` script (``CC_VOICEMAIL=recorded``, set as the recording starts: by the voicemail key, after
``TIMEOUT``, ``FULL``, ``JOINEMPTY`` or with no queue at all) makes it ``voicemail``, the last stage
reached, unless an agent answered first. A caller who left the queue unanswered and was
then reached by the site's own ``Dial()`` (``DIALSTATUS=ANSWER``: an overflow to a ring group) is
``answered``; other ``DIALSTATUS`` values change nothing and are kept in the timeline. A caller
refused at the door (``FULL``, ``JOIN*``) keeps that outcome: the detection has no path from a refused
join to an answer. ``CC_FAILED`` (the dialplan could not serve the call: ``unknown_queue``) makes it
``failed`` unless it was served. The answer signals need ``setinterfacevar=yes`` or ``setqueueentryvar=yes`` in ``queues.conf``.

``ABANDONED=TRUE`` is kept in the timeline only: ``app_queue`` sets it on ``TIMEOUT`` and
``LEAVEEMPTY`` too, not only when the caller hangs up while waiting. ``QUEUEWAIT_MS`` is whole seconds
times 1000 on Asterisk 20 and is set when ``Queue()`` ends whether or not anyone answered, so it is
read only for an answered call (where it is set at the answer).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

from callcenter.model.phone import parse_phone
from callcenter.model.records import CallRecord
from callcenter.model.vocabulary import CallOutcome, EntryPoint
from callcenter.queue.detection import (
    DEFAULT_SHORT_ABANDON_S,
    TIMELINE_KINDS,
    AgentHungUp,
    AnyCallFact,
    CallAnswered,
    CallArrived,
    CallbackAccepted,
    CallerHungUp,
    CallFailed,
    CallQueued,
    CallTrack,
    ExitReason,
    QueueExit,
    VoicemailRecorded,
    advance,
)


class QueueStatus(StrEnum):
    """``QUEUESTATUS`` as ``app_queue`` sets it when ``Queue()`` returns."""

    TIMEOUT = "TIMEOUT"
    FULL = "FULL"
    JOINEMPTY = "JOINEMPTY"
    LEAVEEMPTY = "LEAVEEMPTY"
    JOINUNAVAIL = "JOINUNAVAIL"
    LEAVEUNAVAIL = "LEAVEUNAVAIL"
    CONTINUE = "CONTINUE"
    WITHDRAW = "WITHDRAW"


#: Statuses with which the caller never joined the queue.
REFUSED_AT_JOIN: Final = frozenset({QueueStatus.FULL, QueueStatus.JOINEMPTY, QueueStatus.JOINUNAVAIL})

#: Why the caller left (or never joined) the queue without an agent, by ``QUEUESTATUS``.
EXIT_REASONS: Final[Mapping[QueueStatus, ExitReason]] = {
    QueueStatus.TIMEOUT: ExitReason.TIMEOUT,
    QueueStatus.FULL: ExitReason.FULL,
    QueueStatus.JOINEMPTY: ExitReason.NO_AGENTS,
    QueueStatus.JOINUNAVAIL: ExitReason.NO_AGENTS,
    QueueStatus.LEAVEEMPTY: ExitReason.NO_AGENTS,
    QueueStatus.LEAVEUNAVAIL: ExitReason.NO_AGENTS,
}

#: The documented table, for a status alone (no callback, no Dial() answer): ``None`` means the
#: outcome depends on the wait (``abandoned`` or ``short_abandon``).
QUEUESTATUS_OUTCOMES: Final[Mapping[QueueStatus, CallOutcome | None]] = {
    QueueStatus.TIMEOUT: CallOutcome.UNANSWERED_TIMEOUT,
    QueueStatus.FULL: CallOutcome.UNANSWERED_FULL,
    QueueStatus.JOINEMPTY: CallOutcome.UNANSWERED_NO_AGENTS,
    QueueStatus.JOINUNAVAIL: CallOutcome.UNANSWERED_NO_AGENTS,
    QueueStatus.LEAVEEMPTY: CallOutcome.UNANSWERED_NO_AGENTS,
    QueueStatus.LEAVEUNAVAIL: CallOutcome.UNANSWERED_NO_AGENTS,
    QueueStatus.CONTINUE: CallOutcome.ANSWERED,
    QueueStatus.WITHDRAW: None,
}

#: ``DIALSTATUS`` of a ``Dial()`` that reached someone.
DIAL_ANSWERED: Final = "ANSWER"
#: The agent of an answered call whose member interface is unknown (``setinterfacevar`` off).
UNKNOWN_AGENT: Final = "unknown"


@dataclass(frozen=True, kw_only=True, slots=True)
class AppQueueReport:
    """What the call-outcome script read from the caller's channel when it hung up.

    Times are on Asterisk's clock. ``entered_at`` is the start of the latest ``Queue()`` (the caller
    may go back into the queue after the exit key), ``joined_at`` of the first. ``hold_s`` is set
    only when an agent answered: the wait before the answer counted from ``entered_at``
    (``QEHOLDTIME``, whole seconds, set on answer by ``setqueueentryvar=yes``; ``QUEUEWAIT_MS`` where
    the Asterisk release has it).
    """

    linkedid: str
    channel_id: str
    caller: str = ""
    caller_name: str = ""
    dialled: str = ""
    queue: str | None = None
    status: QueueStatus | None = None
    status_raw: str = ""
    abandoned: bool = False
    member_interface: str | None = None
    dial_status: str = ""
    dialled_peer: str | None = None
    position: int | None = None
    arrived_at: datetime | None = None
    joined_at: datetime | None = None
    entered_at: datetime | None = None
    left_at: datetime | None = None
    hold_s: float | None = None
    exit_key: str | None = None
    callback_accepted: bool = False
    voicemail_recorded: bool = False
    failure: str = ""
    ended_at: datetime

    @property
    def call_id(self) -> str:
        """The call is keyed by its ``linkedid``: a second report of the same call is the same call."""
        return self.linkedid or self.channel_id

    @property
    def answered_at(self) -> datetime | None:
        """When an agent answered, from the latest ``Queue()`` start and the hold time."""
        start = self.entered_at or self.joined_at
        if start is None or self.hold_s is None:
            return None
        return start + timedelta(seconds=self.hold_s)

    @property
    def answered_in_queue(self) -> bool:
        """An agent took the call: ``app_queue`` sets these only when a member answers."""
        return (
            self.member_interface is not None
            or self.hold_s is not None
            or self.status is QueueStatus.CONTINUE
        )


def report_facts(report: AppQueueReport, *, default_region: str = "US") -> tuple[AnyCallFact, ...]:
    """The call facts the report stands for, in order, ending with the caller's hang-up."""
    call_id, end = report.call_id, report.ended_at
    arrived = _first(report.arrived_at, report.joined_at, end)
    facts: list[AnyCallFact] = [
        CallArrived(
            call_id=call_id,
            channel_id=report.channel_id,
            linkedid=report.linkedid or report.channel_id,
            caller=parse_phone(report.caller, default_region),
            caller_name=report.caller_name,
            dialled=report.dialled,
            queue=report.queue,
            entry_point=EntryPoint.AGI,
            at=arrived,
        )
    ]
    joined = report.joined_at
    if report.status in REFUSED_AT_JOIN:
        facts.append(QueueExit(call_id=call_id, reason=EXIT_REASONS[report.status], at=_first(joined, end)))
    elif joined is not None and report.queue:
        facts.append(CallQueued(call_id=call_id, queue=report.queue, at=joined))
        facts += _in_queue(report, call_id)
    if report.voicemail_recorded and not report.answered_in_queue and not report.callback_accepted:
        # Left after the queue (or without one): the last stage reached wins.
        facts.append(VoicemailRecorded(call_id=call_id, at=_first(report.left_at, end)))
    if report.failure:
        facts.append(CallFailed(call_id=call_id, reason=report.failure, at=_first(report.left_at, end)))
    facts.append(CallerHungUp(call_id=call_id, at=end))
    return tuple(facts)


def _in_queue(report: AppQueueReport, call_id: str) -> list[AnyCallFact]:
    """Facts between joining the queue and the hang-up."""
    left = _first(report.left_at, report.ended_at)
    if report.callback_accepted:
        return [CallbackAccepted(call_id=call_id, at=left)]
    if report.answered_in_queue:
        agent = report.member_interface or UNKNOWN_AGENT
        answered: list[AnyCallFact] = [
            CallAnswered(call_id=call_id, agent_id=agent, at=_first(report.answered_at, left))
        ]
        if report.status is QueueStatus.CONTINUE:
            answered.append(AgentHungUp(call_id=call_id, agent_id=agent, at=left))
        return answered
    if report.dial_status == DIAL_ANSWERED:
        # The site's own Dial() after the queue (an overflow to a ring group) reached someone.
        return [CallAnswered(call_id=call_id, agent_id=report.dialled_peer or UNKNOWN_AGENT, at=left)]
    reason = EXIT_REASONS.get(report.status) if report.status is not None else None
    if reason is not None:
        return [QueueExit(call_id=call_id, reason=reason, at=left)]
    return []  # hung up while waiting (ABANDONED=TRUE), after the exit key, or withdrawn


def decide(
    report: AppQueueReport,
    *,
    short_abandon_s: float = DEFAULT_SHORT_ABANDON_S,
    default_region: str = "US",
) -> CallTrack:
    """The decided call of a report: its facts run through :func:`~callcenter.queue.detection.advance`.

    Facts the detection ignores (out of order: a report that contradicts itself) are skipped, as on
    the ARI path; the result always has an outcome.
    """
    facts = report_facts(report, default_region=default_region)
    first = facts[0]
    assert isinstance(first, CallArrived)
    track = CallTrack.start(first)
    for fact in facts[1:]:
        # The position is kept by whichever fact takes the caller out of the waiting list.
        track, _ = advance(track, fact, position=report.position, short_abandon_s=short_abandon_s)
    assert track.outcome is not None
    return track


def _first(*times: datetime | None) -> datetime:
    for when in times:
        if when is not None:
            return when
    raise ValueError("no time given")


#: Timeline kinds of the facts, as the ARI path names them (``GET /api/v1/calls/{id}``).
TimelineEntry = tuple[datetime, str, dict[str, object]]


def timeline(report: AppQueueReport, record: CallRecord) -> tuple[TimelineEntry, ...]:
    """The call's timeline entries: one per fact, then ``ended`` with the outcome and what
    ``app_queue`` said (``QUEUESTATUS``, ``DIALSTATUS``, ``ABANDONED``)."""
    entries: list[TimelineEntry] = []
    for fact in report_facts(report):
        detail: dict[str, object] = {}
        for name in ("queue", "agent_id", "reason"):
            value = getattr(fact, name, None)
            if value is not None:
                detail[name] = str(value)
        entries.append((fact.at, TIMELINE_KINDS[type(fact)], detail))
    summary: dict[str, object] = {
        "outcome": record.outcome.value if record.outcome is not None else None,
        "wait_s": record.wait_s,
        "queuestatus": report.status_raw or None,
        "dialstatus": report.dial_status or None,
        "abandoned": report.abandoned,
    }
    if record.position is not None:
        summary["position"] = record.position
    if report.exit_key is not None:
        summary["exit_key"] = report.exit_key
    entries.append((record.ended_at or report.ended_at, "ended", summary))
    return tuple(entries)
