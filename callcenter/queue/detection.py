"""Call outcome detection: typed facts about one inbound call decide its one outcome (pure core).

The queue service feeds facts (from ARI events through ``callcenter.ari.translate``, and from its own
decisions) to :class:`callcenter.queue.state.QueueBoard`, which keeps one :class:`CallTrack` per live
call and moves it with :func:`advance`. The outcome is decided once, when the caller's side ends,
following DESIGN.md: the last stage reached wins.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Final, TypeAlias

from callcenter.model.events import CallEnded
from callcenter.model.phone import PhoneNumber
from callcenter.model.records import CallRecord
from callcenter.model.vocabulary import CallOutcome, EntryPoint

#: The short-abandon threshold when a queue does not set one (DESIGN.md).
DEFAULT_SHORT_ABANDON_S = 5.0


class ExitReason(StrEnum):
    """Why a caller left (or never joined) the queue unanswered."""

    TIMEOUT = "timeout"
    NO_AGENTS = "no_agents"
    FULL = "full"
    AFTER_HOURS = "after_hours"


class NoAnswerReason(StrEnum):
    """Why an offered agent did not take the call."""

    NO_ANSWER = "no_answer"
    BUSY = "busy"
    UNAVAILABLE = "unavailable"
    #: We withdrew the offer (the caller left, another agent answered, a link outage): not a miss.
    CANCELLED = "cancelled"

    @property
    def is_miss(self) -> bool:
        """Counted against the agent for the pause-after-N-misses policy."""
        return self is not NoAnswerReason.CANCELLED


class IgnoreReason(StrEnum):
    """Why a fact changed nothing; the service logs it and moves on."""

    UNKNOWN_CALL = "unknown_call"
    ALREADY_ENDED = "already_ended"
    DUPLICATE = "duplicate"
    OUT_OF_ORDER = "out_of_order"
    UNKNOWN_AGENT = "unknown_agent"
    AGENT_UNAVAILABLE = "agent_unavailable"
    #: The fact moves no call: it is news for the service only (:class:`MessagePlayed`).
    NOT_A_STEP = "not_a_step"


class Stage(StrEnum):
    """How far a call got; the last stage reached decides the outcome."""

    IVR = "ivr"
    QUEUED = "queued"
    RINGING = "ringing"
    ANSWERED = "answered"
    CALLBACK = "callback"
    EXITED = "exited"
    VOICEMAIL = "voicemail"
    VOICEMAIL_RECORDED = "voicemail_recorded"
    FAILED = "failed"


#: Stages in which the caller is in the waiting list.
WAITING_STAGES = frozenset({Stage.QUEUED, Stage.RINGING})

# Stages that keep their meaning when a failure follows them: the caller was served or promised.
_SERVED_STAGES = frozenset({Stage.ANSWERED, Stage.CALLBACK, Stage.VOICEMAIL_RECORDED})


# ---------------------------------------------------------------------------------------------
# Facts
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class CallFact:
    """Something that happened to call ``call_id`` at ``at``."""

    call_id: str
    at: datetime


@dataclass(frozen=True, kw_only=True, slots=True)
class CallArrived(CallFact):
    """An inbound call reached us (``at`` is when the channel was created)."""

    channel_id: str
    linkedid: str
    caller: PhoneNumber
    caller_name: str = ""
    dialled: str = ""
    queue: str | None = None
    entry_point: EntryPoint = EntryPoint.ARI


@dataclass(frozen=True, kw_only=True, slots=True)
class CallQueued(CallFact):
    """The caller joined the waiting list of ``queue``."""

    queue: str


@dataclass(frozen=True, kw_only=True, slots=True)
class AgentOffered(CallFact):
    """We started ringing ``agent_id`` for the call (originate sent)."""

    agent_id: str


@dataclass(frozen=True, kw_only=True, slots=True)
class AgentRinging(CallFact):
    """The agent's phone is alerting."""

    agent_id: str


@dataclass(frozen=True, kw_only=True, slots=True)
class AgentNoAnswer(CallFact):
    """The offer to ``agent_id`` ended without an answer; the caller keeps waiting."""

    agent_id: str
    reason: NoAnswerReason = NoAnswerReason.NO_ANSWER


@dataclass(frozen=True, kw_only=True, slots=True)
class CallAnswered(CallFact):
    """``agent_id`` answered the call."""

    agent_id: str


@dataclass(frozen=True, kw_only=True, slots=True)
class AgentHungUp(CallFact):
    """The agent's leg of an answered call ended."""

    agent_id: str


@dataclass(frozen=True, kw_only=True, slots=True)
class CallSentToVoicemail(CallFact):
    """The caller was taken to leave a message."""


@dataclass(frozen=True, kw_only=True, slots=True)
class VoicemailRecorded(CallFact):
    """A recording was taken (whether it holds speech is decided later, by transcription)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class VoicemailNotRecorded(CallFact):
    """Asterisk could not record after all (it refused the channel, or its disk): no message was left,
    so the call is decided as if the caller had not reached the recording."""


@dataclass(frozen=True, kw_only=True, slots=True)
class CallbackAccepted(CallFact):
    """The caller accepted a callback and left the queue."""


@dataclass(frozen=True, kw_only=True, slots=True)
class QueueExit(CallFact):
    """The caller left the queue, or was refused it, without an agent."""

    reason: ExitReason


@dataclass(frozen=True, kw_only=True, slots=True)
class CallFailed(CallFact):
    """Our error or Asterisk's ended the normal path of the call."""

    reason: str


@dataclass(frozen=True, kw_only=True, slots=True)
class MessagePlayed(CallFact):
    """A playback to the caller's channel ended (to its end, or ``failed``: a missing sound file).

    It moves no call: the service uses it to hang up a caller once their exit message is over.
    """

    failed: bool = False


@dataclass(frozen=True, kw_only=True, slots=True)
class CallerHungUp(CallFact):
    """The caller's channel ended (or left our application): the outcome is decided now."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Reconciled(CallFact):
    """After a reconnect the caller's channel was found gone; decide as at ``at``, flagged."""


AnyCallFact: TypeAlias = (
    CallArrived
    | CallQueued
    | AgentOffered
    | AgentRinging
    | AgentNoAnswer
    | CallAnswered
    | AgentHungUp
    | CallSentToVoicemail
    | VoicemailRecorded
    | VoicemailNotRecorded
    | CallbackAccepted
    | QueueExit
    | CallFailed
    | MessagePlayed
    | CallerHungUp
    | Reconciled
)


# ---------------------------------------------------------------------------------------------
# One call
# ---------------------------------------------------------------------------------------------


#: The call timeline's name for each fact (``GET /api/v1/calls/{id}``), shared by the ARI and AGI paths.
TIMELINE_KINDS: Final[Mapping[type[CallFact], str]] = {
    CallArrived: "arrived",
    CallQueued: "queued",
    AgentOffered: "agent_offered",
    AgentRinging: "agent_ringing",
    AgentNoAnswer: "agent_no_answer",
    CallAnswered: "answered",
    AgentHungUp: "agent_hung_up",
    CallSentToVoicemail: "sent_to_voicemail",
    VoicemailRecorded: "voicemail_recorded",
    VoicemailNotRecorded: "voicemail_not_recorded",
    CallbackAccepted: "callback_accepted",
    QueueExit: "queue_exit",
    CallFailed: "failed",
    CallerHungUp: "caller_hung_up",
    Reconciled: "reconciled",
}


@dataclass(frozen=True, kw_only=True, slots=True)
class AgentLeg:
    """A channel we originated to ring an agent for a call."""

    call_id: str
    agent_id: str


@dataclass(frozen=True, kw_only=True, slots=True)
class CallTrack:
    """What we know of one call. ``position`` is its place when it left the waiting list."""

    call_id: str
    channel_id: str
    linkedid: str
    caller: PhoneNumber
    caller_name: str = ""
    dialled: str = ""
    entry_point: EntryPoint = EntryPoint.ARI
    queue: str | None = None
    arrived_at: datetime
    stage: Stage = Stage.IVR
    queued_at: datetime | None = None
    left_queue_at: datetime | None = None
    position: int | None = None
    ringing_agent: str | None = None
    answered_at: datetime | None = None
    agent_id: str | None = None
    talk_ended_at: datetime | None = None
    exit_reason: ExitReason | None = None
    failure: str = ""
    ended_at: datetime | None = None
    outcome: CallOutcome | None = None
    reconciled: bool = False

    @classmethod
    def start(cls, fact: CallArrived) -> CallTrack:
        return cls(
            call_id=fact.call_id,
            channel_id=fact.channel_id,
            linkedid=fact.linkedid,
            caller=fact.caller,
            caller_name=fact.caller_name,
            dialled=fact.dialled,
            entry_point=fact.entry_point,
            queue=fact.queue,
            arrived_at=fact.at,
        )

    @property
    def is_waiting(self) -> bool:
        return self.stage in WAITING_STAGES and self.outcome is None

    def wait_s(self, now: datetime | None = None) -> float | None:
        """Seconds from joining the queue to leaving it (or to ``now`` while waiting); never negative."""
        if self.queued_at is None:
            return None
        end = self.left_queue_at or self.ended_at or now
        return None if end is None else _seconds(self.queued_at, end)

    @property
    def talk_s(self) -> float | None:
        """Seconds from the answer to the first hang-up of either side; never negative."""
        if self.answered_at is None:
            return None
        end = self.talk_ended_at or self.ended_at
        return None if end is None else _seconds(self.answered_at, end)


def _seconds(start: datetime, end: datetime) -> float:
    return max(0.0, (end - start).total_seconds())


def advance(
    track: CallTrack,
    fact: AnyCallFact,
    *,
    position: int | None = None,
    short_abandon_s: float = DEFAULT_SHORT_ABANDON_S,
) -> tuple[CallTrack, IgnoreReason | None]:
    """Apply one fact to a call.

    :param position: the call's current place in its waiting list (1 is next), kept when it leaves.
    :param short_abandon_s: the queue's threshold under which a hang-up while waiting is short.
    :returns: the new track and ``None``, or the unchanged track and why the fact was ignored. A
        decided call ignores everything, so a second outcome can never happen.
    """
    if track.outcome is not None:
        return track, IgnoreReason.ALREADY_ENDED
    if isinstance(fact, MessagePlayed):
        return track, IgnoreReason.NOT_A_STEP
    if isinstance(fact, CallerHungUp | Reconciled):
        return _end(track, fact, position, short_abandon_s), None
    moved = _move(track, fact, position)
    if moved is None:
        return track, IgnoreReason.OUT_OF_ORDER
    if moved == track:
        return track, IgnoreReason.DUPLICATE
    return moved, None


def _move(t: CallTrack, fact: AnyCallFact, position: int | None) -> CallTrack | None:
    """The track after ``fact``, the same track for a repeat, ``None`` when it does not fit."""
    if isinstance(fact, AgentOffered | AgentRinging | AgentNoAnswer | CallAnswered | AgentHungUp):
        return _move_agent(t, fact, position)
    return _move_flow(t, fact, position)


def _move_agent(
    t: CallTrack,
    fact: AgentOffered | AgentRinging | AgentNoAnswer | CallAnswered | AgentHungUp,
    position: int | None,
) -> CallTrack | None:
    replace, stage, agent = dataclasses.replace, t.stage, fact.agent_id
    match fact:
        case AgentOffered():
            return replace(t, stage=Stage.RINGING, ringing_agent=agent) if stage in WAITING_STAGES else None
        case AgentRinging():
            if stage is Stage.RINGING:
                return t if t.ringing_agent == agent else None
            return replace(t, stage=Stage.RINGING, ringing_agent=agent) if stage is Stage.QUEUED else None
        case AgentNoAnswer():
            if stage is Stage.RINGING and t.ringing_agent == agent:
                return replace(t, stage=Stage.QUEUED, ringing_agent=None)
            return None
        case CallAnswered():
            if stage is Stage.ANSWERED:
                return t if t.agent_id == agent else None
            if stage not in WAITING_STAGES:
                return None
            left = _leave_queue(t, fact.at, position)
            return replace(left, stage=Stage.ANSWERED, answered_at=fact.at, agent_id=agent)
        case AgentHungUp():
            if stage is Stage.ANSWERED and t.agent_id == agent:
                return replace(t, talk_ended_at=t.talk_ended_at or fact.at)
            return None


def _move_flow(t: CallTrack, fact: AnyCallFact, position: int | None) -> CallTrack | None:
    replace, stage = dataclasses.replace, t.stage
    match fact:
        case CallArrived():
            return t
        case CallQueued(queue=queue):
            if stage is Stage.IVR:
                return replace(t, stage=Stage.QUEUED, queued_at=fact.at, queue=queue)
            return t if stage in WAITING_STAGES and t.queue == queue else None
        case CallSentToVoicemail():
            return _to_stage(t, fact.at, position, Stage.VOICEMAIL, {Stage.IVR, Stage.EXITED})
        case VoicemailRecorded():
            allowed = {Stage.IVR, Stage.EXITED, Stage.VOICEMAIL}
            return _to_stage(t, fact.at, position, Stage.VOICEMAIL_RECORDED, allowed)
        case VoicemailNotRecorded():
            return replace(t, stage=Stage.VOICEMAIL) if stage is Stage.VOICEMAIL_RECORDED else None
        case CallbackAccepted():
            return _to_stage(t, fact.at, position, Stage.CALLBACK, {Stage.IVR, Stage.EXITED, Stage.VOICEMAIL})
        case QueueExit(reason=reason):
            if stage is Stage.EXITED:
                return t
            moved = _to_stage(t, fact.at, position, Stage.EXITED, {Stage.IVR})
            return None if moved is None else replace(moved, exit_reason=reason)
        case CallFailed(reason=reason):
            if t.failure:
                return t
            if stage in _SERVED_STAGES:
                return replace(t, failure=reason)
            return replace(_leave_queue(t, fact.at, position), stage=Stage.FAILED, failure=reason)
    return None


def _to_stage(
    t: CallTrack, at: datetime, position: int | None, stage: Stage, also_from: Collection[Stage]
) -> CallTrack | None:
    """Move to ``stage`` from the waiting stages or ``also_from``; a repeat keeps the track."""
    if t.stage is stage:
        return t
    if t.stage not in WAITING_STAGES and t.stage not in also_from:
        return None
    return dataclasses.replace(_leave_queue(t, at, position), stage=stage)


def _leave_queue(t: CallTrack, at: datetime, position: int | None) -> CallTrack:
    if t.stage not in WAITING_STAGES:
        return t
    return dataclasses.replace(t, left_queue_at=at, position=position, ringing_agent=None)


def _end(t: CallTrack, fact: CallerHungUp | Reconciled, position: int | None, short_s: float) -> CallTrack:
    ended = _leave_queue(t, fact.at, position)
    if ended.stage is Stage.ANSWERED and ended.talk_ended_at is None:
        ended = dataclasses.replace(ended, talk_ended_at=fact.at)
    ended = dataclasses.replace(ended, ended_at=fact.at, reconciled=isinstance(fact, Reconciled))
    return dataclasses.replace(ended, outcome=decide_outcome(ended, short_abandon_s=short_s))


_EXIT_OUTCOMES = {
    ExitReason.TIMEOUT: CallOutcome.UNANSWERED_TIMEOUT,
    ExitReason.NO_AGENTS: CallOutcome.UNANSWERED_NO_AGENTS,
    ExitReason.FULL: CallOutcome.UNANSWERED_FULL,
    ExitReason.AFTER_HOURS: CallOutcome.AFTER_HOURS,
}

_STAGE_OUTCOMES = {
    Stage.ANSWERED: CallOutcome.ANSWERED,
    Stage.CALLBACK: CallOutcome.CALLBACK_REQUESTED,
    Stage.VOICEMAIL_RECORDED: CallOutcome.VOICEMAIL,
    Stage.FAILED: CallOutcome.FAILED,
}


def decide_outcome(track: CallTrack, *, short_abandon_s: float = DEFAULT_SHORT_ABANDON_S) -> CallOutcome:
    """The outcome of a call whose caller side ended, from the last stage it reached.

    A hang-up while waiting (an agent ringing included) is ``short_abandon`` when the wait was under
    ``short_abandon_s``, else ``abandoned``. Sent to voicemail without leaving a message falls back to
    the reason that sent the caller there.
    """
    stage = track.stage
    if stage in _STAGE_OUTCOMES:
        return _STAGE_OUTCOMES[stage]
    if track.exit_reason is not None and stage in (Stage.EXITED, Stage.VOICEMAIL):
        return _EXIT_OUTCOMES[track.exit_reason]
    if track.queued_at is None:
        return CallOutcome.IVR_HANGUP
    wait = track.wait_s() or 0.0
    return CallOutcome.SHORT_ABANDON if wait < short_abandon_s else CallOutcome.ABANDONED


def to_record(track: CallTrack) -> CallRecord:
    """The call as the store keeps it (``outcome`` is ``None`` while the call is live)."""
    return CallRecord(
        id=track.call_id,
        channel_id=track.channel_id,
        linkedid=track.linkedid,
        entry_point=track.entry_point,
        caller=track.caller.display,
        caller_name=track.caller_name,
        dialled=track.dialled,
        queue=track.queue,
        arrived_at=track.arrived_at,
        queued_at=track.queued_at,
        answered_at=track.answered_at,
        ended_at=track.ended_at,
        wait_s=track.wait_s(),
        talk_s=track.talk_s,
        position=track.position,
        agent_id=track.agent_id,
        outcome=track.outcome,
        reconciled=track.reconciled,
    )


def to_call_ended(track: CallTrack) -> CallEnded:
    """The ``CallEnded`` event of a decided call; its ``event_id`` is the call id.

    :raises ValueError: if the call is not decided yet.
    """
    if track.outcome is None or track.ended_at is None:
        raise ValueError(f"call {track.call_id} has no outcome yet")
    return CallEnded(
        event_id=track.call_id,
        occurred_at=track.ended_at,
        call_id=track.call_id,
        outcome=track.outcome,
        entry_point=track.entry_point,
        queue=track.queue,
        caller=track.caller.display,
        wait_s=track.wait_s() or 0.0,
        talk_s=track.talk_s or 0.0,
        position=track.position,
        agent_id=track.agent_id,
        reconciled=track.reconciled,
    )


def close_missed_calls(
    missed: Iterable[CallRecord], *, caller: str, reached_at: datetime
) -> tuple[CallRecord, ...]:
    """Mark the caller's open missed calls closed, now that the caller was reached at ``reached_at``.

    The caller is reached when a later inbound call from the number is answered, or a callback attempt
    reaches ``connected``. Calls that are not missed, already closed, from another or a withheld
    number, or that arrived after ``reached_at`` are left out of the result.

    :param caller: the number as stored in ``CallRecord.caller`` (E.164 where it parsed).
    """
    if PhoneNumber(raw=caller, e164=None).is_withheld:
        return ()
    return tuple(
        dataclasses.replace(record, closed_at=reached_at)
        for record in missed
        if record.caller == caller
        and record.outcome is not None
        and record.outcome.is_missed
        and record.closed_at is None
        and record.arrived_at < reached_at
    )
