"""Typed ARI events to queue facts: what callers' and agents' channels did, in detection's terms (edge, pure).

The queue service calls :func:`translate` for every event with the agent legs it originated
(channel id to call and agent: only it knows them) and applies the facts to its
:class:`~callcenter.queue.state.QueueBoard`. Facts the service decides itself (queued, offered,
exits, voicemail, callback, failures) do not come from here. Repeated facts are expected: Asterisk
reports one end several ways (``ChannelHangupRequest``, ``StasisEnd``, ``ChannelDestroyed``), and the
board ignores the repeats.

Conventions: a call's id is its caller channel's id; ``Stasis(callcenter,<queue>)`` carries the
queue as the first argument; channels we originate enter Stasis with a first argument in
:data:`ORIGINATED_TAGS` (``agent,<caller channel id>``), so they are never taken for inbound calls.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime, timedelta

from callcenter.ari.events import (
    AriEvent,
    Channel,
    ChannelDestroyed,
    ChannelHangupRequest,
    ChannelState,
    ChannelStateChange,
    Dial,
    DialStatus,
    HangupCause,
    PlaybackFinished,
    PlaybackState,
    SoftHangupFlag,
    StasisEnd,
    StasisStart,
)
from callcenter.asterisk_names import STASIS_APP
from callcenter.model.phone import parse_phone
from callcenter.model.vocabulary import EntryPoint
from callcenter.queue.detection import (
    AgentHungUp,
    AgentLeg,
    AgentNoAnswer,
    AgentRinging,
    AnyCallFact,
    CallAnswered,
    CallArrived,
    CallerHungUp,
    CallFailed,
    MessagePlayed,
    NoAnswerReason,
)

#: First ``Stasis`` argument of an agent leg we originate: ``agent,<caller channel id>``.
AGENT_LEG_TAG = "agent"
#: First ``Stasis`` arguments of channels we originate ourselves (agent legs, callbacks).
ORIGINATED_TAGS = frozenset({AGENT_LEG_TAG, "outbound"})
#: The ``channelvars`` entry carrying the linkedid (``ari.conf``: ``channelvars = CHANNEL(linkedid)``).
LINKEDID_VAR = "CHANNEL(linkedid)"
#: ``CallFailed.reason`` when Asterisk shut down under a live call.
SHUTDOWN_FAILURE = "asterisk_shutdown"


def translate(
    event: AriEvent,
    agent_legs: Mapping[str, AgentLeg],
    *,
    default_region: str = "US",
    received_at: datetime | None = None,
) -> tuple[AnyCallFact, ...]:
    """The queue facts one ARI event stands for (often none).

    :param agent_legs: agent channels we originated, by channel id.
    :param default_region: region for caller ids in national format.
    :param received_at: when our link received the event. When given, every fact time is moved by
        ``received_at - event.timestamp``, so facts keep Asterisk's intervals but read on our clock,
        next to the facts the service stamps itself. Without it, Asterisk's times are used.
    """
    match event:
        case StasisStart(channel=channel, args=args):
            skew = _skew(event.timestamp, received_at)
            leg = agent_legs.get(channel.id)
            if leg is not None:
                return (CallAnswered(call_id=leg.call_id, agent_id=leg.agent_id, at=event.timestamp + skew),)
            if args and args[0] in ORIGINATED_TAGS:
                return ()
            queue = args[0] if args and args[0] else None
            return (call_arrived(channel, queue, default_region=default_region, skew=skew),)
        case StasisEnd(channel=channel):
            at = _at(event.timestamp, received_at)
            leg = agent_legs.get(channel.id)
            if leg is not None:
                return (AgentHungUp(call_id=leg.call_id, agent_id=leg.agent_id, at=at),)
            # StasisEnd is the last event of a dialplan-entered channel (no ChannelDestroyed follows).
            return (CallerHungUp(call_id=channel.id, at=at),)
        case ChannelHangupRequest():
            return _hangup_request(event, agent_legs.get(event.channel.id), _at(event.timestamp, received_at))
        case ChannelDestroyed(channel=channel, cause=cause):
            at = _at(event.timestamp, received_at)
            leg = agent_legs.get(channel.id)
            if leg is None:
                return (CallerHungUp(call_id=channel.id, at=at),)
            return (_agent_leg_gone(leg, channel, cause, at),)
        case Dial(peer=peer, dialstatus=status):
            leg = agent_legs.get(peer.id)
            return () if leg is None else _dial(leg, status, _at(event.timestamp, received_at))
        case ChannelStateChange(channel=channel):
            leg = agent_legs.get(channel.id)
            return () if leg is None else _agent_state(leg, channel.state, _at(event.timestamp, received_at))
        case PlaybackFinished(playback=playback):
            # PlaybackFinished ends a whole media list (PlaybackContinuing separates its items), "done"
            # when played out or stopped, "failed" for a missing sound file (after the 201 and a
            # PlaybackStarted in the same ms), a failing last item, or a hang-up mid-playback (between
            # ChannelHangupRequest and StasisEnd). Only plays to a channel ("channel:<id>") concern a
            # caller, and we play nothing to agent legs.
            channel_id = playback.channel_id
            if channel_id is None or channel_id in agent_legs:
                return ()
            failed = playback.state is PlaybackState.FAILED
            return (MessagePlayed(call_id=channel_id, at=_at(event.timestamp, received_at), failed=failed),)
    return ()


def call_arrived(
    channel: Channel, queue: str | None, *, default_region: str = "US", skew: timedelta = timedelta(0)
) -> CallArrived:
    """The arrival of the inbound call on ``channel`` (from ``StasisStart``, or a channel found at resync).

    The call arrived when Asterisk created the channel, before any dialplan ran.
    """
    return CallArrived(
        call_id=channel.id,
        channel_id=channel.id,
        # Asterisk 20 channel snapshots carry no linkedid; a dialplan-entered channel is its own.
        linkedid=channel.var(LINKEDID_VAR) or channel.id,
        caller=parse_phone(channel.caller.number, default_region),
        caller_name=channel.caller.name,
        dialled=channel.dialplan.exten,
        queue=queue,
        entry_point=EntryPoint.ARI,
        at=channel.creationtime + skew,
    )


def stasis_args(channel: Channel) -> tuple[str, ...] | None:
    """The ``Stasis(callcenter,...)`` arguments of a channel snapshot running our application.

    For channels listed by ``GET /channels`` at resync, where no ``StasisStart`` tells the arguments.
    ``None`` when the channel is not in ``Stasis`` for our application.
    """
    if channel.dialplan.app_name != "Stasis":
        return None
    app, *args = channel.dialplan.app_data.split(",")
    return tuple(args) if app == STASIS_APP else None


def reconcile_agent_legs(
    agent_legs: Mapping[str, AgentLeg], present_channel_ids: Collection[str], now: datetime
) -> tuple[AnyCallFact, ...]:
    """After a resync: end the agent legs whose channel is gone.

    We cannot know whether a vanished leg was still ringing or answered, so each gets both a cancelled
    no-answer and a hang-up: the board applies the one that fits its state and ignores the other.
    """
    facts: list[AnyCallFact] = []
    for channel_id, leg in agent_legs.items():
        if channel_id not in present_channel_ids:
            facts.append(
                AgentNoAnswer(
                    call_id=leg.call_id, agent_id=leg.agent_id, at=now, reason=NoAnswerReason.CANCELLED
                )
            )
            facts.append(AgentHungUp(call_id=leg.call_id, agent_id=leg.agent_id, at=now))
    return tuple(facts)


def _skew(timestamp: datetime, received_at: datetime | None) -> timedelta:
    return timedelta(0) if received_at is None else received_at - timestamp


def _at(timestamp: datetime, received_at: datetime | None) -> datetime:
    return timestamp if received_at is None else received_at


def _hangup_request(
    event: ChannelHangupRequest, leg: AgentLeg | None, at: datetime
) -> tuple[AnyCallFact, ...]:
    flags = event.soft_flags
    if leg is not None:
        # A hang-up request on a ringing agent leg is our own cancel: Dial/ChannelDestroyed report it.
        if event.channel.state is not ChannelState.UP:
            return ()
        return (AgentHungUp(call_id=leg.call_id, agent_id=leg.agent_id, at=at),)
    call_id = event.channel.id
    if flags == SoftHangupFlag.ASYNCGOTO:
        # A redirect, not an end: the StasisEnd that follows says the channel left us.
        return ()
    if flags is not None and SoftHangupFlag.SHUTDOWN in flags:
        # ChannelHangupRequest cause 4 with soft=true: Asterisk is shutting down (core restart).
        return (
            CallFailed(call_id=call_id, at=at, reason=SHUTDOWN_FAILURE),
            CallerHungUp(call_id=call_id, at=at),
        )
    return (CallerHungUp(call_id=call_id, at=at),)


_DIAL_NO_ANSWER = {
    # Dial NOANSWER appears when the ringing leg is hung up by the app; a ring timeout set on the
    # originate gives only ChannelDestroyed cause 19.
    DialStatus.NOANSWER: NoAnswerReason.NO_ANSWER,
    DialStatus.BUSY: NoAnswerReason.BUSY,
    DialStatus.CANCEL: NoAnswerReason.CANCELLED,
    DialStatus.CONGESTION: NoAnswerReason.UNAVAILABLE,
    DialStatus.CHANUNAVAIL: NoAnswerReason.UNAVAILABLE,
    DialStatus.DONTCALL: NoAnswerReason.UNAVAILABLE,
    DialStatus.TORTURE: NoAnswerReason.UNAVAILABLE,
    DialStatus.INVALIDARGS: NoAnswerReason.UNAVAILABLE,
}


def _dial(leg: AgentLeg, status: DialStatus, at: datetime) -> tuple[AnyCallFact, ...]:
    if status is DialStatus.RINGING:
        return (AgentRinging(call_id=leg.call_id, agent_id=leg.agent_id, at=at),)
    if status is DialStatus.ANSWER:
        return (CallAnswered(call_id=leg.call_id, agent_id=leg.agent_id, at=at),)
    reason = _DIAL_NO_ANSWER.get(status)
    if reason is None:
        return ()
    return (AgentNoAnswer(call_id=leg.call_id, agent_id=leg.agent_id, at=at, reason=reason),)


def _agent_state(leg: AgentLeg, state: ChannelState, at: datetime) -> tuple[AnyCallFact, ...]:
    # Originated legs go Down -> Ringing -> Up (never "Ring", which is an inbound channel).
    if state is ChannelState.RINGING:
        return (AgentRinging(call_id=leg.call_id, agent_id=leg.agent_id, at=at),)
    if state is ChannelState.UP:
        return (CallAnswered(call_id=leg.call_id, agent_id=leg.agent_id, at=at),)
    return ()


_CAUSE_NO_ANSWER: dict[int, NoAnswerReason] = {
    HangupCause.NO_ANSWER: NoAnswerReason.NO_ANSWER,
    HangupCause.NO_USER_RESPONSE: NoAnswerReason.NO_ANSWER,
    HangupCause.USER_BUSY: NoAnswerReason.BUSY,
    # Normal clearing of a leg never answered: we hung it up (the caller left, or another agent answered).
    HangupCause.NORMAL_CLEARING: NoAnswerReason.CANCELLED,
}


def _agent_leg_gone(leg: AgentLeg, channel: Channel, cause: int, at: datetime) -> AnyCallFact:
    if channel.state is ChannelState.UP:
        return AgentHungUp(call_id=leg.call_id, agent_id=leg.agent_id, at=at)
    # ChannelDestroyed of a leg that never answered: cause 19 after a ring timeout (in state Ringing,
    # or Down when the endpoint never replied), 17 when busy.
    reason = _CAUSE_NO_ANSWER.get(cause, NoAnswerReason.UNAVAILABLE)
    return AgentNoAnswer(call_id=leg.call_id, agent_id=leg.agent_id, at=at, reason=reason)
