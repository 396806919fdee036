"""The queue service: our queue on ARI, agents, persistence and publishing of call outcomes (service).

:class:`QueueService` drives the pure :class:`~callcenter.queue.state.QueueBoard` with the facts the
ARI link feeds it (it is the link's :class:`~callcenter.queue.ports.CallFactSink`) and with the facts
it decides itself, gives the telephony commands that follow through
:class:`~callcenter.queue.ports.CallControl`, stores every step and publishes the domain events.

Caller safety: a failure concerning a live caller hands the channel back to the dialplan or plays a
message and hangs up; a handler never raises into the ARI read loop.

Lanes: each call's facts and the telephony commands they lead to run in that call's own lane, one
after the other (:meth:`submit` queues a fact there and returns; :meth:`handle` waits for it), so the
ARI link reads on while Asterisk answers, and a slow answer holds up only its own call.

Ordering: the board changes synchronously and the step goes at once, without an await, onto one
in-order queue (write-behind). A single writer task takes everything queued and stores it as one
batch, in one transaction (:class:`~callcenter.queue.ports.StepStore`; without one, step by step with
the repositories), then publishes the batch's events in order with one round trip, so the store and
the bus see the steps in the order the board made them while the handlers never wait for the store.
A ``CallEnded`` is published only once its call record is stored (held and retried by :meth:`tick`
otherwise). :meth:`flush` waits for what is queued to be written; :meth:`close` drains at shutdown.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import itertools
import logging
import re
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from typing import Final

from callcenter.bus import EventBus
from callcenter.clock import Clock
from callcenter.errors import (
    CallCenterError,
    ChannelGoneError,
    ConflictError,
    NotFoundError,
    StoreUnavailableError,
    ValidationError,
)
from callcenter.model.events import AgentQueuesChanged, AgentStateChanged, CallEnded, DomainEvent
from callcenter.model.paging import Page
from callcenter.model.phone import parse_phone
from callcenter.model.records import AgentRecord, CallEvent, CallRecord, ExitAction, QueueRecord
from callcenter.model.vocabulary import AgentState
from callcenter.queue.detection import (
    TIMELINE_KINDS,
    AgentHungUp,
    AgentLeg,
    AgentNoAnswer,
    AgentOffered,
    AgentRinging,
    AnyCallFact,
    CallAnswered,
    CallArrived,
    CallbackAccepted,
    CallerHungUp,
    CallFact,
    CallFailed,
    CallQueued,
    CallSentToVoicemail,
    ExitReason,
    IgnoreReason,
    MessagePlayed,
    NoAnswerReason,
    QueueExit,
    Reconciled,
    close_missed_calls,
)
from callcenter.queue.hours import BusinessHours, business_hours, is_open, zone_of
from callcenter.queue.ports import (
    AgentAction,
    AgentRelay,
    AgentRepository,
    AgentRequest,
    BridgeKind,
    CallControl,
    CallFilter,
    CallRepository,
    KeptPlaces,
    QueueRepository,
    StepStore,
    StepWrite,
    TimelineEntry,
    VoicemailRequest,
    VoicemailTaker,
)
from callcenter.queue.state import (
    STAFFED_STATES,
    AgentLive,
    AgentLoggedIn,
    AgentLoggedOut,
    AgentPaused,
    AgentPolicy,
    AgentUnpaused,
    AgentWrapUpEnded,
    AgentWrapUpStarted,
    AnyAgentFact,
    Fact,
    QueueBoard,
    QueueStanding,
    QueueView,
    Step,
    WaitingKey,
)

logger = logging.getLogger(__name__)

#: Told of every fact the board applied and what it did (see :meth:`QueueService.add_step_hook`).
StepHook = Callable[[Fact, Step], None]

#: Played before hanging up on a caller we will not serve (Asterisk core sounds, asterisk-core-sounds-en).
EXIT_MESSAGES: Final[Mapping[ExitReason, tuple[str, ...]]] = {
    ExitReason.AFTER_HOURS: ("im-sorry", "please-try-call-later"),
    ExitReason.NO_AGENTS: ("tt-allbusy",),
    ExitReason.FULL: ("tt-allbusy",),
    ExitReason.TIMEOUT: ("tt-allbusy",),
}
#: Why we hung a caller up ourselves: the ``reason`` of their ``hung_up_by_us`` timeline entry.
HUNG_UP_AFTER_MESSAGE: Final = "exit_message_played"
HUNG_UP_MESSAGE_FAILED: Final = "exit_message_failed"
HUNG_UP_MESSAGE_UNREPORTED: Final = "exit_message_end_not_reported"
HUNG_UP_AGENT_LEFT: Final = "agent_hung_up"
HUNG_UP_AFTER_CALLBACK: Final = "callback_confirmed"
#: ``CallFailed.reason`` prefixes, for logs and the timeline.
UNKNOWN_QUEUE: Final = "unknown_queue"
PBX_ERROR: Final = "asterisk_error"
INTERNAL_ERROR: Final = "internal_error"

# The board's own wrap-up and miss policy is global; ours is per queue, so the service ends wrap-ups
# and pauses agents itself and the board's policy is switched off.
#: States of an agent another process decided that this one's board takes over: none with a call
#: (this board knows nothing of it) or a wrap-up (this board would end it and publish that).
_MIRRORED: Final = frozenset({AgentState.AVAILABLE, AgentState.PAUSED, AgentState.LOGGED_OUT})
_BOARD_POLICY: Final = AgentPolicy(max_misses=0, wrap_up_s=float(10**9))
_DEFAULTS: Final = QueueRecord(name="-")
_MAX_OFFERS_PER_DISPATCH: Final = 1_000
#: The reason of a voicemail the caller chose by key (exit reasons name the others).
VOICEMAIL_CHOSEN: Final = "caller_chose"
_PAGE: Final = 500

_QUEUE_NAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_AGENT_ID: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
_ENDPOINT: Final = re.compile(r"^[A-Za-z][A-Za-z0-9_]*/\S+$")
MAX_NAME_LENGTH: Final = 200


@dataclass(frozen=True, kw_only=True, slots=True)
class AgentStatus:
    """An agent as configured (``record``) and as the board sees them now (``live``)."""

    record: AgentRecord
    live: AgentLive | None = None

    @property
    def state(self) -> AgentState:
        return self.live.state if self.live is not None else self.record.state

    @property
    def since(self) -> datetime | None:
        return self.live.since if self.live is not None else self.record.state_since


@dataclass(frozen=True, kw_only=True, slots=True)
class LiveQueue:
    """``GET /api/v1/queues/{queue}/live``: the queue's settings, whether it is open, and its board."""

    queue: QueueRecord
    at: datetime
    open_now: bool
    view: QueueView


@dataclass(frozen=True, kw_only=True, slots=True)
class CallDetail:
    """One call with its timeline, oldest entry first."""

    call: CallRecord
    events: tuple[CallEvent, ...]


class _Offer(Enum):
    SKIPPED = "skipped"
    MADE = "made"
    PBX_DOWN = "pbx_down"


@dataclass(slots=True, eq=False)
class _Holding:
    """A queue's holding bridge and the calls we put in it; it lives as long as it holds a caller."""

    queue: str
    bridge_id: str
    music: bool = False
    members: set[str] = field(default_factory=set)


@dataclass(slots=True)
class _Connection:
    """The mixing bridge of an answered call and who is in it."""

    agent_id: str
    bridge_id: str | None = None
    agent_in: bool = False
    caller_in: bool = False


@dataclass(slots=True)
class _Write:
    """One step of the board (or a timeline note, or a closing of missed calls) queued for the writer."""

    record: CallRecord | None = None
    entries: tuple[tuple[datetime, str, dict[str, object]], ...] = ()
    entries_of: str = ""
    states: tuple[AgentStateChanged, ...] = ()
    events: tuple[DomainEvent, ...] = ()
    close_missed: tuple[str, datetime] | None = None

    def step(self) -> StepWrite:
        """What the store keeps of it (the events go to the bus)."""
        return StepWrite(
            record=self.record,
            entries=tuple(
                TimelineEntry(call_id=self.entries_of, at=at, kind=kind, detail=detail)
                for at, kind, detail in self.entries
            ),
            states=self.states,
            close_missed=self.close_missed,
        )


@dataclass(slots=True, eq=False)
class _Lane:
    """One call's work (its facts, its telephony), run in order by one task while there is some."""

    work: deque[tuple[Callable[[], Awaitable[None]], asyncio.Future[None] | None]] = field(
        default_factory=deque
    )
    task: asyncio.Task[None] | None = None


@dataclass(slots=True)
class _KeptBack:
    """Agents kept back in one dispatch round for the kept places at the head of their line."""

    agents: set[str] = field(default_factory=set)
    places: set[str] = field(default_factory=set)


@dataclass(slots=True)
class _Unsaved:
    record: CallRecord
    held: list[DomainEvent] = field(default_factory=list)


class QueueService:
    """Our queue: callers in, agents rung, calls bridged, outcomes stored and published.

    :param control: telephony commands (ARI, or the simulated Asterisk).
    :param calls: where calls and their timelines are kept.
    :param agents: agents and their queue membership.
    :param queues: queue settings.
    :param bus: where ``CallEnded``, ``AgentStateChanged`` and ``AgentQueuesChanged`` go.
    :param clock: the time of the facts this service decides itself, and of :meth:`tick`.
    :param default_region: region of caller ids in national format.
    :param retry_s: how long an agent who did not answer a call is not offered that call again.
    :param message_backstop_s: how long after starting an exit message the caller is hung up should
        Asterisk's ``PlaybackFinished`` of it be lost; normally the caller is hung up when it comes.
    :param ring_grace_s: how long past its ring timeout an unanswered agent leg is ended by
        :meth:`tick`, should Asterisk's report of it have been lost.
    :param new_leg_id: makes the channel id of each agent leg we originate (``CallControl.ring_agent``
        takes it, so the leg is registered before Asterisk reports on it).
    :param refresh_s: how often :meth:`tick` reads queues and agents back from the store, to pick up
        what another process (the CLI, another API process) changed there.
    :param steps: stores the writer's batches, one transaction each; without it the writer stores
        each step with the repositories, one write after the other.
    :param max_batch: the most steps the writer stores (and publishes) at once.
    """

    def __init__(
        self,
        control: CallControl,
        calls: CallRepository,
        agents: AgentRepository,
        queues: QueueRepository,
        bus: EventBus,
        clock: Clock,
        *,
        default_region: str = "US",
        retry_s: float = 5.0,
        message_backstop_s: float = 30.0,
        ring_grace_s: float = 5.0,
        refresh_s: float = 30.0,
        new_leg_id: Callable[[], str] = lambda: f"agent-{uuid.uuid4().hex}",
        steps: StepStore | None = None,
        max_batch: int = 200,
    ) -> None:
        self._control = control
        self._calls = calls
        self._agent_repo = agents
        self._queue_repo = queues
        self._bus = bus
        self._clock = clock
        self._region = default_region
        self._retry = timedelta(seconds=retry_s)
        self._message_backstop = timedelta(seconds=message_backstop_s)
        self._ring_grace = timedelta(seconds=ring_grace_s)
        self._board = QueueBoard(policy=_BOARD_POLICY)
        self._queues: dict[str, QueueRecord] = {}
        self._hours: dict[str, BusinessHours] = {}
        self._agents: dict[str, AgentRecord] = {}
        self._legs: dict[str, AgentLeg] = {}
        self._leg_started: dict[str, datetime] = {}
        self._leg_index: dict[tuple[str, str], list[str]] = {}
        self._legs_of_call: dict[str, dict[str, None]] = {}  # insertion-ordered sets
        self._holding: dict[str, _Holding] = {}
        self._held_in: dict[str, _Holding] = {}
        self._holding_locks: dict[str, asyncio.Lock] = {}
        self._connections: dict[str, _Connection] = {}
        self._skipped: dict[str, dict[str, datetime]] = {}
        self._hangups: dict[str, tuple[datetime, str]] = {}
        self._hung_up_by_us: dict[str, str] = {}
        self._ringing_noted: set[str] = set()
        self._answered: set[str] = set()
        self._wrap_queue: dict[str, str] = {}
        self._commit_lock = asyncio.Lock()
        self._pending: deque[_Write] = deque()
        self._enqueued = 0
        self._written = 0
        self._writer: asyncio.Task[None] | None = None
        self._progress = asyncio.Event()
        self._fact_lag = timedelta(0)
        self._unsaved: dict[str, _Unsaved] = {}
        self._unsaved_agents: dict[str, AgentStateChanged] = {}
        self._new_leg_id = new_leg_id
        self._steps = steps
        self._max_batch = max(1, max_batch)
        self._voicemail: VoicemailTaker | None = None
        self._refresh_every = timedelta(seconds=refresh_s)
        self._next_refresh: datetime | None = None
        self._lanes: dict[str, _Lane] = {}
        self._step_hooks: list[StepHook] = []
        self._lane_of_task: dict[asyncio.Task[None], str] = {}
        self._kept_places: KeptPlaces | None = None
        # Agents held for a callback -> what they asked for meanwhile (None: to be available).
        self._holds: dict[str, AgentPaused | AgentLoggedOut | None] = {}
        self._relay: AgentRelay | None = None
        self._runs_queue: Callable[[], bool] = lambda: True

    # ==========================================================================================
    # CallFactSink
    # ==========================================================================================

    @property
    def agent_legs(self) -> Mapping[str, AgentLeg]:
        return self._legs

    @property
    def default_region(self) -> str:
        return self._region

    async def handle(self, fact: AnyCallFact) -> None:
        """React to one fact and return once it is handled (telephony included); never raises.

        A failure is logged and the caller rescued. The fact waits for the work queued before it
        for the same call (see :meth:`submit`).
        """
        await self._in_lane(fact.call_id, self._fact_work(fact))

    def submit(self, fact: AnyCallFact) -> None:
        """Queue one fact from the ARI link and return at once; never raises.

        Each call has its own lane: its facts (and the telephony commands they lead to) are handled
        one after the other, in the order given, while the link reads on and other calls' facts are
        handled meanwhile. So a slow REST answer from Asterisk holds up only the call it concerns.
        """
        self._queue_in_lane(fact.call_id, self._fact_work(fact), None)

    def _fact_work(self, fact: AnyCallFact) -> Callable[[], Awaitable[None]]:
        async def work() -> None:
            # How far behind the link is: the fact's time is when the link received its event.
            self._fact_lag = max(timedelta(0), self._clock.now() - fact.at)
            try:
                await self._handle(fact)
            except Exception:
                logger.exception("queue: handling %s of call %s failed", type(fact).__name__, fact.call_id)
                await self._rescue(fact.call_id)

        return work

    async def _in_lane(self, call_id: str, work: Callable[[], Awaitable[None]]) -> None:
        """Run ``work`` in the call's lane, after what is queued there, and wait for it.

        From the lane's own task (a fact handled while a command of the same call is awaited) it
        runs at once: waiting for the lane there would wait for itself.
        """
        if self._current_lane() == call_id:
            await work()
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue_in_lane(call_id, work, done)
        await done

    def _queue_in_lane(
        self, call_id: str, work: Callable[[], Awaitable[None]], done: asyncio.Future[None] | None
    ) -> None:
        lane = self._lanes.get(call_id)
        if lane is None:
            lane = self._lanes[call_id] = _Lane()
        lane.work.append((work, done))
        if lane.task is None:
            lane.task = asyncio.get_running_loop().create_task(
                self._run_lane(call_id, lane), name="queue-call"
            )
            self._lane_of_task[lane.task] = call_id

    def _current_lane(self) -> str | None:
        """The call whose lane the running code is in, if any."""
        task = asyncio.current_task()
        return self._lane_of_task.get(task) if task is not None else None

    async def _run_lane(self, call_id: str, lane: _Lane) -> None:
        try:
            while lane.work:
                work, done = lane.work.popleft()
                try:
                    await work()
                except Exception:
                    logger.exception("queue: work of call %s failed", call_id)
                finally:
                    if done is not None and not done.done():
                        done.set_result(None)
        finally:
            if lane.task is not None:
                self._lane_of_task.pop(lane.task, None)
            lane.task = None
            for _, done in lane.work:  # cancelled at shutdown: nobody waits for ever
                if done is not None and not done.done():
                    done.cancel()
            lane.work.clear()
            if self._lanes.get(call_id) is lane:
                del self._lanes[call_id]

    async def _drain_lanes(self) -> None:
        """Wait until no call has work queued (facts submitted, telephony under way)."""
        while self._lanes:
            tasks = [lane.task for lane in self._lanes.values() if lane.task is not None]
            if not tasks:
                return
            await asyncio.wait(tasks)

    async def reconcile(self, present_channel_ids: frozenset[str]) -> None:
        """After the ARI link (re)connected: end what vanished while it was down; never raises."""
        # The link just listed the channels: it is not behind (the re-announced facts of the
        # resync carry the channels' creation times, which say nothing of the link's lag).
        self._fact_lag = timedelta(0)
        try:
            await self._reconcile(present_channel_ids)
        except Exception:
            logger.exception("queue: reconcile after reconnect failed")

    async def start(self) -> None:
        """Load queues and agents into the board, and take back the calls stored without an outcome.

        Call before the ARI link connects: its resync (:meth:`reconcile`) then decides the calls
        that ended while this process was down, flagged ``reconciled``.

        :raises StoreUnavailableError: when the store cannot be read.
        """
        now = self._clock.now()
        for queue in await self._queue_repo.list():
            self._set_queue(queue)
        events: list[DomainEvent] = []
        cursor: str | None = None
        while True:
            page = await self._agent_repo.list(cursor=cursor, limit=_PAGE)
            for agent in page.items:
                self._agents[agent.id] = agent
                events += self._board.load_agent(agent, now)
            if page.next is None:
                break
            cursor = page.next
        for record in await self._calls.undecided():
            events += self._restore(record)
        await self._commit(None, Step(events=tuple(events)))
        await self.flush()
        logger.info(
            "queue: %d queues, %d agents, %d live calls taken back",
            len(self._queues),
            len(self._agents),
            len(self._board.live_calls()),
        )

    async def take_back(self) -> None:
        """Before each resync: adopt the queued calls another process stored without an outcome. Never raises.

        Another process may have held the ARI link (and served calls on the same store) until we
        took its lease over. Without this its waiting callers would be re-queued by the resync as if
        they had just arrived, losing their place and their wait, and those that hung up during the
        hand-over would stay undecided for ever; taken back, they keep their enqueue time and the
        resync's reconcile decides the vanished ones (flagged ``reconciled``). Calls that never
        reached the queue are left to the resync, which runs them through the arrival path.
        """
        try:
            # Our own decided calls must be stored first, or they would read as undecided here.
            await self._drain_lanes()
            await self.flush()
            events: list[DomainEvent] = []
            for record in await self._calls.undecided():
                if record.queued_at is not None and self._board.call(record.id) is None:
                    logger.info("call %s: taken back from the store (queued by another process)", record.id)
                    events += self._restore(record)
            await self._commit(None, Step(events=tuple(events)))
        except Exception:
            logger.exception("queue: taking back stored calls before the resync failed")

    async def tick(self) -> None:
        """Time-driven work; the composition root calls it every second. Never raises.

        Retries unsaved records, ends wrap-ups, times out callers past their queue's max wait, ends
        agent legs that rang far too long, hangs up callers whose exit message's end was never
        reported, and offers waiting callers to agents again.
        """
        try:
            await self._retry_unsaved()
            now = self._clock.now()
            if self._next_refresh is None or now >= self._next_refresh:
                self._next_refresh = now + self._refresh_every
                await self.refresh()
            for call_id in self._board.overdue(now):
                await self._in_lane(call_id, functools.partial(self._time_out, call_id))
            await self._ring_backstop(now)
            await self._due_hangups(now)
            self._expire_skips(now)
            await self._dispatch()
        except Exception:
            logger.exception("queue: tick failed")

    # ==========================================================================================
    # Facts
    # ==========================================================================================

    async def _handle(self, fact: AnyCallFact) -> None:
        match fact:
            case CallArrived():
                await self._on_arrived(fact)
            case CallAnswered():
                await self._on_answered(fact)
            case AgentRinging():
                await self._on_ringing(fact)
            case MessagePlayed():
                await self._on_message_played(fact)
            case AgentNoAnswer():
                await self._on_no_answer(fact)
                await self._dispatch()
            case AgentHungUp():
                await self._on_agent_hung_up(fact)
                await self._dispatch()
            case CallerHungUp() | Reconciled():
                await self._on_caller_gone(fact)
                await self._dispatch()
            case _:
                await self._apply(fact)

    async def _on_arrived(self, fact: CallArrived) -> None:
        step = await self._apply(fact)
        if step.ignored is not None:
            return
        call_id, channel = fact.call_id, fact.channel_id
        settings = await self._queue_settings(fact.queue)
        if settings is None:
            logger.warning(
                "call %s: queue %r in the Stasis arguments is not configured; back to the dialplan",
                call_id,
                fact.queue,
            )
            await self._fail(call_id, channel, f"{UNKNOWN_QUEUE}: {fact.queue!r}")
            return
        queue = settings.name
        # The caller's place is taken now, in the order the link read the arrivals: other calls'
        # answers and holds run beside this one's and may come back first.
        joined_at = self._clock.now()
        if not is_open(self._hours[queue], joined_at):
            await self._exit(call_id, ExitReason.AFTER_HOURS, settings.after_hours_action)
            return
        refused = self._board.admission(queue)
        if refused is not None:
            await self._exit(call_id, refused, settings.no_agents_action)
            return
        if not await self._answer(call_id, channel) or not await self._hold(call_id, channel, queue):
            return
        await self._apply(CallQueued(call_id=call_id, queue=queue, at=joined_at))
        await self._dispatch()

    async def _queue_settings(self, name: str | None) -> QueueRecord | None:
        """A queue's settings; one created by another process since the last refresh is read in."""
        if not name:
            return None
        settings = self._queues.get(name)
        if settings is None:
            try:
                settings = await self._queue_repo.get(name)
            except NotFoundError:
                return None
            self._set_queue(settings)
        return settings

    async def _on_answered(self, fact: CallAnswered) -> None:
        step = await self._apply(fact)
        track = self._board.call(fact.call_id)
        if track is None or track.outcome is not None or track.agent_id != fact.agent_id:
            # Answered too late: the caller left, or was served or sent elsewhere meanwhile.
            logger.info("call %s: agent %s answered too late; ending their leg", fact.call_id, fact.agent_id)
            await self._hangup_leg(fact.call_id, fact.agent_id)
            return
        if step.ignored is None:
            self._skipped.pop(fact.call_id, None)
            if not track.caller.is_withheld:
                # In the writer, after the steps before it: the calls it closes must be stored first.
                self._enqueue(_Write(close_missed=(track.caller.display, fact.at)))
        await self._connect(fact.call_id, track.channel_id, fact.agent_id)

    async def _on_ringing(self, fact: AgentRinging) -> None:
        """The agent's phone alerts (``Dial`` RINGING, ``ChannelStateChange`` Ringing): once per leg on the timeline.

        The board counts the ring from our offer, so to it the alerting is a repeat; the timeline
        still shows when the phone actually rang (the two reports come in either order).
        """
        step = await self._apply(fact)
        channel = self._leg_channel(fact.call_id, fact.agent_id)
        if channel is None or channel in self._ringing_noted:
            return
        self._ringing_noted.add(channel)
        track = self._board.call(fact.call_id)
        if (
            step.ignored is IgnoreReason.DUPLICATE
            and track is not None
            and track.ringing_agent == fact.agent_id
        ):
            await self._note(fact.call_id, fact.at, "agent_ringing", {"agent_id": fact.agent_id})

    async def _on_message_played(self, fact: MessagePlayed) -> None:
        """A playback to a caller ended: if it was their exit message, hang up now. The board is not told."""
        pending = self._hangups.pop(fact.call_id, None)
        if pending is None:
            return
        _, channel = pending
        if fact.failed:
            # PlaybackFinished "failed": a sound file is missing (Asterisk logs "Playback failed for").
            logger.warning("call %s: the exit message failed to play; hanging up", fact.call_id)
            reason = HUNG_UP_MESSAGE_FAILED
        else:
            reason = HUNG_UP_AFTER_MESSAGE
        await self._hang_up_caller(fact.call_id, channel, reason)

    async def _on_no_answer(self, fact: AgentNoAnswer) -> None:
        track = self._board.call(fact.call_id)
        await self._apply(fact)
        self._forget_leg(fact.call_id, fact.agent_id)
        if fact.reason.is_miss:
            self._skip(fact.call_id, fact.agent_id)
        queue = track.queue if track is not None else None
        await self._pause_after_misses(fact.agent_id, queue, fact.at)

    async def _on_agent_hung_up(self, fact: AgentHungUp) -> None:
        await self._apply(fact)
        self._forget_leg(fact.call_id, fact.agent_id)
        track = self._board.call(fact.call_id)
        if (
            track is not None
            and track.outcome is None
            and track.agent_id == fact.agent_id
            # The agent leg's ChannelHangupRequest and StasisEnd both say so: one DELETE is enough.
            and fact.call_id not in self._hung_up_by_us
        ):
            # The agent ended the conversation: the caller's side ends too.
            await self._hang_up_caller(fact.call_id, track.channel_id, HUNG_UP_AGENT_LEFT)

    async def _on_caller_gone(self, fact: CallerHungUp | Reconciled) -> None:
        step = await self._apply(fact)
        if step.decided is not None:
            await self._release_call(fact.call_id)

    async def _apply(self, fact: Fact) -> Step:
        """Apply ``fact`` to the board and commit the step (store, timeline, bus) in board order."""
        step = self._board.apply(fact)
        if step.ignored is not None:
            logger.debug("queue: %s ignored (%s)", fact, step.ignored)
        if isinstance(fact, CallFact):
            track = self._board.call(fact.call_id)
            for event in step.events:
                if isinstance(event, AgentStateChanged) and event.state is AgentState.WRAP_UP:
                    if track is not None and track.queue is not None:
                        self._wrap_queue[event.agent_id] = track.queue
        await self._commit(fact, step)
        for hook in self._step_hooks:
            try:
                hook(fact, step)
            except Exception:
                logger.exception("queue: a step hook failed on %s", type(fact).__name__)
        return step

    # ==========================================================================================
    # Telephony steps
    # ==========================================================================================

    async def _answer(self, call_id: str, channel: str) -> bool:
        try:
            await self._control.answer(channel)
        except ChannelGoneError:
            logger.info("call %s: the caller hung up before we answered", call_id)
            return False
        except CallCenterError as exc:
            logger.error("call %s: answering failed: %s; back to the dialplan", call_id, exc)
            await self._fail(call_id, channel, f"{PBX_ERROR}: answer: {exc}")
            return False
        self._answered.add(call_id)
        return True

    async def _hold(self, call_id: str, channel: str, queue: str) -> bool:
        """Put the caller in the queue's holding bridge with music on hold."""
        for attempt in (1, 2):
            try:
                holding = await self._join_holding(queue, call_id)
                await self._control.add_to_bridge(holding.bridge_id, channel)
            except ChannelGoneError:
                logger.info("call %s: the caller hung up before joining the queue", call_id)
                await self._leave_holding(call_id)
                return False
            except NotFoundError:
                # The bridge itself is gone (Asterisk restarted): make a new one, once.
                self._drop_vanished_holding(call_id)
                if attempt == 1:
                    continue
                await self._fail(call_id, channel, f"{PBX_ERROR}: holding bridge of {queue} keeps vanishing")
                return False
            except CallCenterError as exc:
                logger.error(
                    "call %s: could not put the caller on hold: %s; back to the dialplan", call_id, exc
                )
                await self._fail(call_id, channel, f"{PBX_ERROR}: hold: {exc}")
                return False
            await self._start_music(holding)
            return True
        return False

    async def _join_holding(self, queue: str, call_id: str) -> _Holding:
        """The queue's holding bridge (made for the first caller of a busy spell), ``call_id`` counted in.

        Asterisk plays a bridge's music on hold through an announcer channel that is *lonely*
        (``AST_BRIDGE_CHANNEL_FLAG_LONELY``, res_stasis.c ``bridge_moh_create``): when the last caller
        leaves, the announcer leaves too and the music stops for good. So a holding bridge lives as
        long as it holds a caller, and the next caller gets a new one, with new music: a caller never
        joins an empty bridge whose music has stopped, and a new bridge's music cannot be caught
        by an announcer of the old one still on its way out.
        """
        lock = self._holding_locks.setdefault(queue, asyncio.Lock())
        async with lock:
            holding = self._holding.get(queue)
            if holding is None:
                bridge_id = await self._control.create_bridge(BridgeKind.HOLDING, f"queue-{queue}")
                holding = self._holding[queue] = _Holding(queue, bridge_id)
            holding.members.add(call_id)
            self._held_in[call_id] = holding
            return holding

    async def _leave_holding(self, call_id: str) -> None:
        """The caller left the holding bridge; the last one out destroys it (its music has stopped)."""
        holding = self._held_in.pop(call_id, None)
        if holding is None:
            return
        holding.members.discard(call_id)
        if holding.members or self._holding.get(holding.queue) is not holding:
            return
        del self._holding[holding.queue]
        try:
            await self._control.destroy_bridge(holding.bridge_id)
        except CallCenterError as exc:
            logger.info(
                "queue %s: empty holding bridge %s not destroyed: %s", holding.queue, holding.bridge_id, exc
            )

    def _drop_vanished_holding(self, call_id: str) -> None:
        holding = self._held_in.pop(call_id, None)
        if holding is not None:
            holding.members.discard(call_id)
            if self._holding.get(holding.queue) is holding:
                del self._holding[holding.queue]

    async def _start_music(self, holding: _Holding) -> None:
        if holding.music:
            return
        holding.music = True  # one POST per bridge, even with callers joining side by side
        try:
            # POST /bridges/{id}/moh answers 204 and emits no event: success is all we learn.
            await self._control.start_hold_music(holding.bridge_id)
        except CallCenterError as exc:
            holding.music = False
            logger.warning(
                "queue %s: music on hold did not start (retried at the next caller): %s", holding.queue, exc
            )

    async def _connect(self, call_id: str, caller_channel: str, agent_id: str) -> None:
        """Bridge the caller with the agent who answered; idempotent, so every answer fact retries it.

        The agent goes in first: their leg reports ``ChannelStateChange`` Up and ``Dial`` ANSWER
        before its ``StasisStart``, and a channel not yet in Stasis cannot join a bridge (ARI 422).
        Adding the caller only once the agent is in spares the caller a silent bridge, and the
        ``StasisStart`` that follows retries.
        """
        conn = self._connections.get(call_id)
        if conn is None or conn.agent_id != agent_id:
            conn = self._connections[call_id] = _Connection(agent_id)
        agent_channel = self._leg_channel(call_id, agent_id)
        if agent_channel is None or (conn.agent_in and conn.caller_in):
            return
        try:
            if conn.bridge_id is None:
                conn.bridge_id = await self._control.create_bridge(BridgeKind.MIXING, f"call-{call_id}")
            if not conn.agent_in:
                await self._control.add_to_bridge(conn.bridge_id, agent_channel)
                conn.agent_in = True
            if not conn.caller_in:
                await self._control.add_to_bridge(conn.bridge_id, caller_channel)
                conn.caller_in = True
        except ChannelGoneError as exc:
            logger.info("call %s: bridging with agent %s not done yet: %s", call_id, agent_id, exc)
        except CallCenterError as exc:
            logger.warning("call %s: bridging with agent %s failed (retried): %s", call_id, agent_id, exc)
        if conn.caller_in:
            # addChannel moved the caller out of the holding bridge (ChannelLeftBridge there).
            await self._leave_holding(call_id)

    async def _exit(self, call_id: str, reason: ExitReason, action: ExitAction) -> None:
        """The caller leaves (or never joins) the queue unserved: hand back, or message and hang-up."""
        step = await self._apply(QueueExit(call_id=call_id, reason=reason, at=self._clock.now()))
        track = self._board.call(call_id)
        if step.ignored is not None or track is None or track.outcome is not None:
            return
        await self._hangup_legs_of(call_id)
        channel = track.channel_id
        logger.info("call %s: leaves queue %s (%s): %s", call_id, track.queue, reason, action)
        if action is ExitAction.CONTINUE:
            await self._continue(call_id, channel)
            return
        if call_id not in self._answered:
            try:
                await self._control.answer(channel)
            except ChannelGoneError:
                return
            except CallCenterError as exc:
                logger.error("call %s: answering for the exit message failed: %s", call_id, exc)
                await self._continue(call_id, channel)
                return
            self._answered.add(call_id)
        if action is ExitAction.VOICEMAIL and await self._to_voicemail(call_id, channel, reason, track.queue):
            return
        # Registered before the play: its PlaybackFinished (at once for a missing sound file) can
        # reach the link before the 201 does. The timer is only a backstop for a lost event.
        self._hangups[call_id] = (self._clock.now() + self._message_backstop, channel)
        try:
            await self._control.play(channel, *EXIT_MESSAGES[reason])
        except ChannelGoneError:
            self._hangups.pop(call_id, None)
            return
        except CallCenterError as exc:
            self._hangups.pop(call_id, None)
            logger.error("call %s: exit message failed: %s; back to the dialplan", call_id, exc)
            await self._continue(call_id, channel)

    def use_kept_places(self, kept: KeptPlaces) -> None:
        """Let keep-my-place callbacks hold their place among live callers (see :meth:`_next_offer`)."""
        self._kept_places = kept

    def use_relay(self, relay: AgentRelay, *, runs_queue: Callable[[], bool]) -> None:
        """Hand agents' requests (log-in, log-out, pause, unpause, queues) to the process running the
        live queue whenever ``runs_queue()`` is false here: that process applies them as its own (a pause
        during a callback it holds the agent for is kept for after it), at once. Without an answer
        (no process runs the queue) a request is applied here and stored, as before."""
        self._relay = relay
        self._runs_queue = runs_queue

    async def serve_request(self, request: AgentRequest) -> AgentLive | None:
        """Apply a request another process handed over (:meth:`use_relay`); the agent's live state.

        :raises NotFoundError: :raises ConflictError: :raises ValidationError:
        """
        agent_id, actor = request.agent_id, request.actor
        if request.action is AgentAction.SET_QUEUES:
            status = await self._set_agent_queues(agent_id, request.queues or (), actor=actor)
        elif request.action is AgentAction.LOGIN:
            status = await self._login(agent_id, actor=actor, queues=request.queues)
        elif request.action is AgentAction.LOGOUT:
            status = await self._logout(agent_id, actor=actor)
        elif request.action is AgentAction.PAUSE:
            status = await self._pause(agent_id, actor=actor, reason=request.reason)
        else:
            status = await self._unpause(agent_id, actor=actor)
        return status.live

    async def _handed_over(self, request: AgentRequest) -> AgentStatus | None:
        """The agent as the live queue's process left them after ``request``, or ``None`` when it is
        to be applied here (this process runs the queue, or no process answered)."""
        if self._relay is None or self._runs_queue():
            return None
        live = await self._relay.forward(request)
        if live is None:
            logger.info(
                "agent %s: %s applied here (no process runs the live queue)", request.agent_id, request.action
            )
            return None
        record = await self._agent_repo.get(request.agent_id)
        self._agents[record.id] = record
        if self._board.agent(record.id) is None:
            self._board.load_agent(record, self._clock.now())
        else:
            self._board.set_agent_queues(record.id, record.queues)
        if live.state in _MIRRORED:
            self._board.mirror(live)  # read back here as the queue's process has it
        return AgentStatus(record=record, live=live)

    def use_voicemail(self, taker: VoicemailTaker) -> None:
        """Take messages with ``taker`` for the exit action ``voicemail`` (without one it is ``hangup``)."""
        self._voicemail = taker

    async def _to_voicemail(self, call_id: str, channel: str, reason: ExitReason, queue: str | None) -> bool:
        """Hand an answered caller to the voicemail flow; ``False`` when none runs here."""
        track = self._board.call(call_id)
        if self._voicemail is None or track is None:
            return False
        await self._apply(CallSentToVoicemail(call_id=call_id, at=self._clock.now()))
        return await self._start_voicemail(call_id, channel, queue, track.caller.display, reason.value)

    async def _start_voicemail(
        self, call_id: str, channel: str, queue: str | None, caller: str, reason: str
    ) -> bool:
        """Hand the caller to the voicemail taker, with the holding bridge they must leave first."""
        assert self._voicemail is not None
        holding = self._held_in.get(call_id)
        request = VoicemailRequest(
            call_id=call_id,
            channel_id=channel,
            queue=queue,
            caller=caller,
            reason=reason,
            holding_bridge_id=holding.bridge_id if holding is not None else None,
        )
        # Out of our bookkeeping now; the last caller out destroys the bridge (the channel leaves it).
        await self._leave_holding(call_id)
        return self._voicemail.start(request)

    async def choose_voicemail(self, call_id: str) -> bool:
        """A waiting caller pressed the voicemail key: they leave the line and leave a message.

        An agent ringing for them is released. The outcome is ``voicemail`` once the recording starts
        (a hang-up before the beep is an abandon, their wait counted to the key). ``False`` when they
        were no longer waiting (answered meanwhile, say) or no voicemail flow runs here.
        """
        track = self._board.call(call_id)
        if self._voicemail is None or track is None or track.outcome is not None:
            return False
        step = await self._apply(CallSentToVoicemail(call_id=call_id, at=self._clock.now()))
        if step.ignored is not None:
            return False
        await self._hangup_legs_of(call_id)
        self._skipped.pop(call_id, None)
        started = await self._start_voicemail(
            call_id, track.channel_id, track.queue, track.caller.display, VOICEMAIL_CHOSEN
        )
        await self._dispatch()
        return started

    async def _fail(self, call_id: str, channel: str, reason: str) -> None:
        """Our error or Asterisk's: record it and hand the caller back to the dialplan."""
        await self._apply(CallFailed(call_id=call_id, reason=reason, at=self._clock.now()))
        await self._hangup_legs_of(call_id)
        await self._continue(call_id, channel)

    async def _continue(self, call_id: str, channel: str) -> None:
        try:
            await self._control.continue_in_dialplan(channel)
        except ChannelGoneError:
            pass
        except CallCenterError as exc:
            logger.error("call %s: could not hand the caller back to the dialplan: %s", call_id, exc)
            return
        await self._leave_holding(call_id)

    async def _rescue(self, call_id: str) -> None:
        """After an unexpected error: a caller not yet with an agent goes back to the dialplan."""
        try:
            track = self._board.call(call_id)
            if track is None or track.outcome is not None or track.answered_at is not None:
                return
            await self._fail(call_id, track.channel_id, INTERNAL_ERROR)
        except Exception:
            logger.exception("call %s: rescue failed", call_id)

    async def _hangup(self, channel: str) -> bool:
        try:
            await self._control.hangup(channel)
        except CallCenterError as exc:
            logger.warning("hang-up of channel %s failed: %s", channel, exc)
            return False
        return True

    async def _hang_up_caller(self, call_id: str, channel: str, reason: str) -> None:
        """Hang the caller up ourselves; the hang-up Asterisk then reports goes on the timeline as ours."""
        # Noted first: the ChannelHangupRequest of our DELETE can reach the link before its 204.
        self._hung_up_by_us[call_id] = reason
        if not await self._hangup(channel):
            self._hung_up_by_us.pop(call_id, None)

    async def _hangup_leg(self, call_id: str, agent_id: str) -> None:
        channel = self._leg_channel(call_id, agent_id)
        if channel is not None:
            await self._hangup(channel)

    async def _hangup_legs_of(self, call_id: str) -> None:
        """End every agent leg still ringing or talking for ``call_id`` (their end facts follow)."""
        for channel in list(self._legs_of_call.get(call_id, ())):
            await self._hangup(channel)

    async def _release_call(self, call_id: str) -> None:
        """The caller's side ended: end the agent legs, destroy the mixing bridge, forget the call."""
        await self._hangup_legs_of(call_id)
        conn = self._connections.pop(call_id, None)
        if conn is not None and conn.bridge_id is not None:
            try:
                await self._control.destroy_bridge(conn.bridge_id)
            except CallCenterError as exc:
                logger.warning("call %s: destroying bridge %s failed: %s", call_id, conn.bridge_id, exc)
        await self._leave_holding(call_id)
        self._skipped.pop(call_id, None)
        self._hangups.pop(call_id, None)
        self._hung_up_by_us.pop(call_id, None)
        self._answered.discard(call_id)

    # ==========================================================================================
    # Dispatch
    # ==========================================================================================

    async def _dispatch(self) -> None:
        """Offer waiting callers to agents: the oldest caller first, the longest-idle agent.

        The originate of an offer runs in the offered call's lane. From a lane (a fact's handling)
        the dispatch does not wait for those of other calls; elsewhere (the ticker, a request) it
        returns once they are done.
        """
        await self._expire_wrap_ups(self._clock.now())
        started: list[asyncio.Future[None]] = []
        # Per queue, the place up to which every caller was found ringing or with no agent to
        # offer: later offers of this round take agents, they free none, so the scan goes on from there.
        resume: dict[str, WaitingKey] = {}
        kept = _KeptBack()
        for offers in range(_MAX_OFFERS_PER_DISPATCH):
            choice = self._next_offer(self._clock.now(), resume, kept)
            if choice is None:
                break
            call_id, agent_id = choice
            if await self._offer(call_id, agent_id, started) is _Offer.PBX_DOWN:
                break
            if offers % 50 == 49:
                await asyncio.sleep(0)  # a long round lets the link (and the lease's renewal) run
        else:
            logger.warning("queue: dispatch stopped after %d offers", _MAX_OFFERS_PER_DISPATCH)
        if started and self._current_lane() is None:
            await asyncio.wait(started)

    def _next_offer(
        self, now: datetime, resume: dict[str, WaitingKey], kept: _KeptBack | None = None
    ) -> tuple[str, str] | None:
        """The oldest waiting caller, over every queue, with an agent to offer, and that agent.

        Kept places (keep-my-place callbacks, :meth:`use_kept_places`) stand in line at their
        original place: when one is ahead of every caller an agent could take, that agent is kept
        back for the callback dispatcher (told at once) and never offered to a later caller.
        """
        kept = kept if kept is not None else _KeptBack()
        while True:
            best: tuple[tuple[datetime, str], str, str, str | None] | None = None
            for queue in self._queues:
                if self._board.pick_agent(queue, exclude=kept.agents) is None:
                    continue
                head = self._kept_head(queue, now, kept)
                found: tuple[tuple[datetime, str], str, str, str | None] | None = None
                # Callers an agent is ringing for are not offered again: only the others are looked at.
                for place in self._board.waiting_unrung(queue, after=resume.get(queue)):
                    enqueued_at, _, call_id = place
                    if head is not None and head[0] < (enqueued_at, call_id):
                        break  # the kept place comes first: callers from here on are behind it
                    skipped = self._skipped_agents(call_id, now)
                    agent = self._board.pick_agent(queue, exclude=skipped | kept.agents)
                    if agent is not None:
                        found = ((enqueued_at, call_id), call_id, agent, None)
                        break
                    resume[queue] = place
                if found is None and head is not None:
                    agent = self._board.pick_agent(queue, exclude=kept.agents)
                    assert agent is not None  # checked above
                    found = (head[0], head[1], agent, queue)
                if found is not None and (best is None or found[0] < best[0]):
                    best = found
            if best is None:
                return None
            _, name, agent_id, kept_in = best
            if kept_in is None:
                return name, agent_id
            # The head of the line is a kept place: hold the agent for the dispatcher, look again.
            kept.agents.add(agent_id)
            kept.places.add(name)
            assert self._kept_places is not None
            self._kept_places.reserve(kept_in, agent_id)

    def _kept_head(
        self, queue: str, now: datetime, kept: _KeptBack
    ) -> tuple[tuple[datetime, str], str] | None:
        """The first kept place of ``queue`` not yet given an agent in this round."""
        if self._kept_places is None:
            return None
        for place, callback_id in self._kept_places.waiting(queue, now):
            if callback_id not in kept.places:
                return place, callback_id
        return None

    async def _offer(self, call_id: str, agent_id: str, started: list[asyncio.Future[None]]) -> _Offer:
        """Offer the call to the agent; the originate runs now in the call's own lane, else is queued there."""
        now = self._clock.now()
        agent = self._agents.get(agent_id)
        step = None
        if agent is not None:
            step = await self._apply(AgentOffered(call_id=call_id, agent_id=agent_id, at=now))
        track = self._board.call(call_id)
        if step is None or step.ignored is not None or track is None or agent is None:
            self._skip(call_id, agent_id)
            return _Offer.SKIPPED
        settings = self._queues.get(track.queue or "")
        # The leg is known before the originate: Asterisk's events about it (a busy Dial, say) can
        # reach the link before the REST answer does.
        channel = self._new_leg_id()
        self._add_leg(channel, AgentLeg(call_id=call_id, agent_id=agent_id), now)
        ring = functools.partial(
            self._ring,
            call_id,
            agent_id,
            agent.endpoint,
            channel,
            float((settings or _DEFAULTS).ring_timeout_s),
            track.caller.display,
        )
        if self._current_lane() == call_id:
            return await ring()

        async def in_its_lane() -> None:
            try:
                await ring()
            except Exception:
                logger.exception("call %s: offering it to agent %s failed", call_id, agent_id)
                await self._rescue(call_id)

        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue_in_lane(call_id, in_its_lane, done)
        started.append(done)
        return _Offer.MADE

    async def _ring(
        self, call_id: str, agent_id: str, endpoint: str, channel: str, timeout_s: float, caller_id: str
    ) -> _Offer:
        try:
            await self._control.ring_agent(
                endpoint, call_id=call_id, timeout_s=timeout_s, caller_id=caller_id, channel_id=channel
            )
        except ChannelGoneError as exc:
            logger.warning("agent %s: endpoint %s cannot be rung: %s", agent_id, endpoint, exc)
            reason, result = NoAnswerReason.UNAVAILABLE, _Offer.MADE
        except CallCenterError as exc:
            logger.error(
                "call %s: ringing agent %s failed: %s (retried at the next tick)", call_id, agent_id, exc
            )
            reason, result = NoAnswerReason.CANCELLED, _Offer.PBX_DOWN
        else:
            track = self._board.call(call_id)
            if track is None or track.outcome is not None or track.ringing_agent != agent_id:
                # The offer was withdrawn while Asterisk was originating (the caller left, say).
                await self._hangup(channel)
            return _Offer.MADE
        self._skip(call_id, agent_id)
        await self._on_no_answer(
            AgentNoAnswer(call_id=call_id, agent_id=agent_id, at=self._clock.now(), reason=reason)
        )
        return result

    def _skip(self, call_id: str, agent_id: str) -> None:
        self._skipped.setdefault(call_id, {})[agent_id] = self._clock.now() + self._retry

    def _skipped_agents(self, call_id: str, now: datetime) -> set[str]:
        return {a for a, until in self._skipped.get(call_id, {}).items() if until > now}

    def _expire_skips(self, now: datetime) -> None:
        for call_id in list(self._skipped):
            still = {a: until for a, until in self._skipped[call_id].items() if until > now}
            if still:
                self._skipped[call_id] = still
            else:
                del self._skipped[call_id]

    async def _pause_after_misses(self, agent_id: str, queue: str | None, at: datetime) -> None:
        """Pause an agent who let ``max_misses_before_pause`` offers in a row ring out."""
        live = self._board.agent(agent_id)
        settings = self._queues.get(queue or "")
        limit = settings.max_misses_before_pause if settings is not None else 0
        if live is None or live.state is not AgentState.AVAILABLE or limit <= 0 or live.misses < limit:
            return
        await self._apply(
            AgentPaused(agent_id=agent_id, at=at, reason=f"missed {live.misses} calls in a row")
        )

    async def _expire_wrap_ups(self, now: datetime) -> None:
        for agent in self._board.agents_in(AgentState.WRAP_UP):
            if now - agent.since >= timedelta(seconds=self._wrap_up_s(agent)):
                await self._apply(AgentWrapUpEnded(agent_id=agent.agent_id, at=now))

    def _wrap_up_s(self, agent: AgentLive) -> float:
        queue = self._queues.get(self._wrap_queue.get(agent.agent_id, ""))
        if queue is not None:
            return float(queue.wrap_up_s)
        served = [self._queues[q].wrap_up_s for q in agent.queues if q in self._queues]
        return float(max(served, default=_DEFAULTS.wrap_up_s))

    # ==========================================================================================
    # Time
    # ==========================================================================================

    async def _time_out(self, call_id: str) -> None:
        track = self._board.call(call_id)
        settings = self._queues.get(track.queue or "") if track is not None else None
        action = settings.timeout_action if settings is not None else ExitAction.HANGUP
        await self._exit(call_id, ExitReason.TIMEOUT, action)

    async def _ring_backstop(self, now: datetime) -> None:
        """End the agent legs that rang past their timeout and grace with no end reported.

        Measured on the link's time, ``now`` less how late the last fact came from the link: while
        the link is behind, an answer received in time may still be waiting there to be handled.
        """
        now = now - self._fact_lag
        for channel, leg in list(self._legs.items()):
            agent = self._board.agent(leg.agent_id)
            track = self._board.call(leg.call_id)
            started = self._leg_started.get(channel, now)
            settings = self._queues.get(track.queue or "") if track is not None else None
            timeout = timedelta(seconds=settings.ring_timeout_s if settings is not None else 0)
            ringing = agent is not None and agent.state is AgentState.RINGING and agent.call_id == leg.call_id
            if ringing and now - started >= timeout + self._ring_grace:
                logger.warning(
                    "agent %s: leg %s rang past its timeout unreported; ending it", leg.agent_id, channel
                )
                await self._hangup(channel)
                await self._on_no_answer(AgentNoAnswer(call_id=leg.call_id, agent_id=leg.agent_id, at=now))

    async def _due_hangups(self, now: datetime) -> None:
        for call_id, (due, channel) in list(self._hangups.items()):
            if due <= now:
                del self._hangups[call_id]
                logger.warning("call %s: no end reported for the exit message; hanging up", call_id)
                await self._hang_up_caller(call_id, channel, HUNG_UP_MESSAGE_UNREPORTED)

    # ==========================================================================================
    # Reconcile and restore
    # ==========================================================================================

    async def _reconcile(self, present: frozenset[str]) -> None:
        await self._drain_lanes()  # the facts read before the link went down count first
        now = self._clock.now()
        for channel, leg in list(self._legs.items()):
            if channel in present:
                continue
            # Ringing or talking, we cannot tell: the board applies the one that fits.
            await self._on_no_answer(
                AgentNoAnswer(
                    call_id=leg.call_id, agent_id=leg.agent_id, at=now, reason=NoAnswerReason.CANCELLED
                )
            )
            await self._on_agent_hung_up(AgentHungUp(call_id=leg.call_id, agent_id=leg.agent_id, at=now))
            self._drop_leg(channel)
        for fact in self._board.reconcile(present, now):
            logger.info("call %s: gone while the link was down; outcome reconciled", fact.call_id)
            await self._on_caller_gone(fact)
        for call_id in [c for c, (_, channel) in self._hangups.items() if channel not in present]:
            del self._hangups[call_id]
        await self._drop_idle_holding_bridges()
        await self._dispatch()

    async def _drop_idle_holding_bridges(self) -> None:
        """Destroy the holding bridges none of our callers is in any more.

        After an Asterisk restart the bridges are gone with the channels; the next caller of the
        queue gets a new one instead of an error.
        """
        live = {track.call_id for track in self._board.live_calls()}
        for queue, holding in list(self._holding.items()):
            for call_id in holding.members - live:
                holding.members.discard(call_id)
                self._held_in.pop(call_id, None)
            if holding.members:
                continue
            del self._holding[queue]
            try:
                await self._control.destroy_bridge(holding.bridge_id)
            except CallCenterError as exc:
                logger.info(
                    "queue %s: old holding bridge %s not destroyed: %s", queue, holding.bridge_id, exc
                )

    def _restore(self, record: CallRecord) -> list[DomainEvent]:
        """Take back a call stored without an outcome: arrived, queued, answered as far as it got."""
        facts: list[Fact] = [
            CallArrived(
                call_id=record.id,
                channel_id=record.channel_id,
                linkedid=record.linkedid,
                caller=parse_phone(record.caller, self._region),
                caller_name=record.caller_name,
                dialled=record.dialled,
                queue=record.queue,
                entry_point=record.entry_point,
                at=record.arrived_at,
            )
        ]
        if record.queue is not None and record.queued_at is not None:
            facts.append(CallQueued(call_id=record.id, queue=record.queue, at=record.queued_at))
            if record.answered_at is not None and record.agent_id is not None:
                facts.append(CallAnswered(call_id=record.id, agent_id=record.agent_id, at=record.answered_at))
                self._answered.add(record.id)
        events: list[DomainEvent] = []
        for fact in facts:
            events += self._board.apply(fact).events
        return events

    async def refresh(self) -> None:
        """Read queues and agents back from the store and adopt what another process changed.

        New queues and agents are loaded and settings, endpoints and memberships replaced. A state
        stored by someone else (``callcenter agent login`` while this process serves) is applied
        when it is newer than the agent's state here and the agent is not ringing or talking.

        :raises StoreUnavailableError:
        """
        for queue in await self._queue_repo.list():
            if self._queues.get(queue.name) != queue:
                self._set_queue(queue)
        cursor: str | None = None
        await self.flush()
        while True:
            # Under the commit lock our own state writes are all in: what differs is someone else's.
            async with self._commit_lock:
                page = await self._agent_repo.list(cursor=cursor, limit=_PAGE)
            for record in page.items:
                await self._adopt_agent(record)
            if page.next is None:
                return
            cursor = page.next

    async def _adopt_agent(self, record: AgentRecord) -> None:
        now = self._clock.now()
        self._agents[record.id] = record
        live = self._board.agent(record.id)
        if live is None:
            await self._commit(None, Step(events=self._board.load_agent(record, now)))
            return
        if live.queues != record.queues:
            self._board.set_agent_queues(record.id, record.queues)
        since = record.state_since
        if (
            record.state is live.state
            or since is None
            or since <= live.since
            or live.state in (AgentState.RINGING, AgentState.BUSY)
            or record.id in self._unsaved_agents
        ):
            return
        if record.id in self._holds:
            # On a callback here: what was stored elsewhere applies when it ends, as a request would.
            self._holds[record.id] = _held_wish(record.id, record.state, now, self._holds[record.id])
            return
        fact = _external_fact(record.id, live.state, record.state, now)
        if fact is not None:
            await self._agent_request(fact, "another process")

    # ==========================================================================================
    # Persistence and publishing
    # ==========================================================================================

    async def _commit(self, fact: Fact | None, step: Step) -> None:
        """Queue ``step`` for the writer, in board order; nothing is awaited (write-behind)."""
        entries: tuple[tuple[datetime, str, dict[str, object]], ...] = ()
        entries_of = ""
        if step.record is not None and isinstance(fact, CallFact):
            entries, entries_of = self._timeline(fact, step), fact.call_id
        states = tuple(e for e in step.events if isinstance(e, AgentStateChanged))
        if step.record is None and not entries and not step.events:
            return
        self._enqueue(
            _Write(
                record=step.record, entries=entries, entries_of=entries_of, states=states, events=step.events
            )
        )

    def _enqueue(self, write: _Write) -> None:
        self._pending.append(write)
        self._enqueued += 1
        self._wake_writer()

    def _wake_writer(self) -> None:
        if self._pending and (self._writer is None or self._writer.done()):
            self._writer = asyncio.get_running_loop().create_task(self._write_all(), name="queue-writer")

    async def flush(self) -> None:
        """Wait until every step queued before this call is stored and published (or held for retry)."""
        target = self._enqueued
        while self._written < target:
            self._wake_writer()
            await self._progress.wait()

    async def close(self, *, grace_s: float = 10.0) -> None:
        """At shutdown, after the ARI link and :meth:`tick` stopped and before the store closes.

        Writes what is queued and retries once what failed, within ``grace_s``; what is left then
        is logged and dropped (the calls stay undecided in the store; the next start takes them back).
        """
        try:
            async with asyncio.timeout(grace_s):
                await self._drain_lanes()
                await self.flush()
                await self._retry_unsaved()
        except TimeoutError:
            logger.error("queue: shutdown: %d steps not stored within %.1fs", len(self._pending), grace_s)
        for lane in list(self._lanes.values()):
            if lane.task is not None:
                lane.task.cancel()
        writer, self._writer = self._writer, None
        if writer is not None and not writer.done():
            writer.cancel()
            try:
                await writer
            except asyncio.CancelledError:
                pass
            progress, self._progress = self._progress, asyncio.Event()
            progress.set()  # a flush still waiting starts a new writer
        if self._unsaved or self._unsaved_agents:
            logger.error(
                "queue: shutdown: %d calls and %d agent states not stored",
                len(self._unsaved),
                len(self._unsaved_agents),
            )

    async def _write_all(self) -> None:
        """The writer: the queued steps in order, a batch under the commit lock at a time.

        A batch is everything queued when the writer comes round (at most ``max_batch`` steps): while
        one is written the handlers queue the next, so the batches grow with the load and the store
        and the bus see one round trip per batch, not per step.
        """
        while self._pending:
            async with self._commit_lock:
                batch = list(itertools.islice(self._pending, self._max_batch))
                if self._steps is not None:
                    await self._write_batch(self._steps, batch)
                else:
                    for write in batch:
                        await self._write_one(write)
                for _ in batch:
                    self._pending.popleft()
                self._written += len(batch)
            progress, self._progress = self._progress, asyncio.Event()
            progress.set()

    async def _write_one(self, write: _Write) -> None:
        try:
            await self._write(write)
        except Exception:
            logger.exception("queue: writing a step failed")

    async def _write_batch(self, store: StepStore, batch: list[_Write]) -> None:
        """Store the batch in one transaction, then publish its events in order with one round trip.

        Should the store refuse a row (a statement failed, so nothing was committed), the steps are
        written one by one instead: the failure stays with the step it concerns and the others go
        through. Should the store be unreachable or too slow, the commit may or may not have
        happened, and timeline entries are not idempotent: the records and agent states are held and
        retried by :meth:`tick` (idempotent), each ``CallEnded`` held with its record, and the
        timeline entries are given up, as a one-by-one write would when the store is down.
        """
        try:
            missing = await store.save_steps([write.step() for write in batch])
        except StoreUnavailableError as exc:
            logger.error(
                "queue: storing %d steps failed (%s): records and agent states retried by the ticker, "
                "their timeline entries may be missing",
                len(batch),
                exc,
            )
            await self._hold_all(batch)
            return
        except Exception as exc:
            logger.warning("queue: storing %d steps at once failed (%s); one by one instead", len(batch), exc)
            for write in batch:
                await self._write_one(write)
            return
        publish: list[DomainEvent] = []
        for write in batch:
            if write.record is not None:
                unsaved = self._unsaved.pop(write.record.id, None)
                if unsaved is not None:
                    publish += unsaved.held  # older than this batch's events
            for state in write.states:
                if state.agent_id in missing:
                    logger.warning(
                        "agent %s: not in the store any more; state %s not saved", state.agent_id, state.state
                    )
                else:
                    self._unsaved_agents.pop(state.agent_id, None)
            publish += write.events
        await self._publish_all(publish)

    async def _hold_all(self, batch: list[_Write]) -> None:
        """Keep a batch the store may not have taken for :meth:`_retry_unsaved`; publish what may go."""
        publish: list[DomainEvent] = []
        for write in batch:
            events = list(write.events)
            if write.record is not None:
                unsaved = self._unsaved.get(write.record.id)
                if unsaved is None:
                    unsaved = self._unsaved[write.record.id] = _Unsaved(write.record)
                else:
                    unsaved.record = write.record
                unsaved.held += [e for e in events if isinstance(e, CallEnded)]
                events = [e for e in events if not isinstance(e, CallEnded)]
            for state in write.states:
                self._unsaved_agents[state.agent_id] = state
            if write.close_missed is not None:
                logger.warning("queue: missed calls of a caller not closed (the store did not answer)")
            publish += events
        await self._publish_all(publish)

    async def _publish_all(self, events: list[DomainEvent]) -> None:
        if not events:
            return
        try:
            await self._bus.publish_many(events)
        except Exception as exc:
            logger.warning(
                "event bus: %d events not published at once (%s); one by one instead", len(events), exc
            )
            for event in events:
                await self._publish(event)

    async def _write(self, write: _Write) -> None:
        publish = list(write.events)
        if write.record is not None:
            if await self._save_call(write.record):
                await self._append(write.entries_of, write.entries)
            else:
                # Held until the record is stored (tick retries): a CallEnded points at it.
                held = [e for e in publish if isinstance(e, CallEnded)]
                publish = [e for e in publish if not isinstance(e, CallEnded)]
                self._unsaved[write.record.id].held += held
        elif write.entries:
            await self._append(write.entries_of, write.entries)
        for state in write.states:
            await self._save_agent_state(state)
        if write.close_missed is not None:
            await self._close_missed(*write.close_missed)
        for event in publish:
            await self._publish(event)

    async def _save_call(self, record: CallRecord) -> bool:
        try:
            await self._calls.upsert(record)
        except CallCenterError as exc:
            logger.error("call %s: storing the call failed (retried): %s", record.id, exc)
            unsaved = self._unsaved.get(record.id)
            if unsaved is None:
                self._unsaved[record.id] = _Unsaved(record)
            else:
                unsaved.record = record
            return False
        unsaved = self._unsaved.pop(record.id, None)
        if unsaved is not None:
            for event in unsaved.held:
                await self._publish(event)
        return True

    async def _save_agent_state(self, event: AgentStateChanged) -> None:
        try:
            await self._agent_repo.set_state(event.agent_id, event.state, event.occurred_at)
        except NotFoundError:
            logger.warning(
                "agent %s: not in the store any more; state %s not saved", event.agent_id, event.state
            )
        except CallCenterError as exc:
            logger.error("agent %s: storing state %s failed (retried): %s", event.agent_id, event.state, exc)
            self._unsaved_agents[event.agent_id] = event
        else:
            self._unsaved_agents.pop(event.agent_id, None)

    async def _retry_unsaved(self) -> None:
        if not self._unsaved and not self._unsaved_agents:
            return
        async with self._commit_lock:
            for unsaved in list(self._unsaved.values()):
                await self._save_call(unsaved.record)
            for event in list(self._unsaved_agents.values()):
                await self._save_agent_state(event)

    def _timeline(self, fact: CallFact, step: Step) -> tuple[tuple[datetime, str, dict[str, object]], ...]:
        """The timeline entries of a step, made now: what they say (``_hung_up_by_us``) may change."""
        detail: dict[str, object] = {}
        for name in ("queue", "agent_id", "reason"):
            value = getattr(fact, name, None)
            if value is not None:
                detail[name] = str(value)
        kind = TIMELINE_KINDS.get(type(fact), type(fact).__name__)
        by_us = self._hung_up_by_us.get(fact.call_id) if isinstance(fact, CallerHungUp) else None
        if by_us is not None:
            # Asterisk reports our DELETE like any hang-up (ChannelHangupRequest cause 32 soft, StasisEnd).
            kind, detail["reason"] = "hung_up_by_us", by_us
        entries = [(fact.at, kind, detail)]
        ended = step.decided
        if ended is not None:
            # The record's wait (None for a caller never queued), not CallEnded's 0.0 stand-in.
            wait_s = step.record.wait_s if step.record is not None else ended.wait_s
            summary: dict[str, object] = {"outcome": ended.outcome.value, "wait_s": wait_s}
            if ended.position is not None:
                summary["position"] = ended.position
            if ended.reconciled:
                summary["reconciled"] = True
            entries.append((ended.occurred_at, "ended", summary))
        return tuple(entries)

    async def _append(self, call_id: str, entries: Iterable[tuple[datetime, str, dict[str, object]]]) -> None:
        try:
            for at, kind, body in entries:
                await self._calls.append_event(call_id, at, kind, body)
        except CallCenterError as exc:
            logger.warning("call %s: timeline entry not stored: %s", call_id, exc)

    async def _note(self, call_id: str, at: datetime, kind: str, detail: dict[str, object]) -> None:
        """A timeline entry that is no step of the board, written in commit order."""
        self._enqueue(_Write(entries=((at, kind, detail),), entries_of=call_id))

    async def _publish(self, event: DomainEvent) -> None:
        try:
            await self._bus.publish(event)
        except Exception as exc:
            # The store has the record; consumers needing every event rebuild from it.
            logger.error("event bus: %s %s not published: %s", event.event_type, event.event_id, exc)

    async def _close_missed(self, caller: str, reached_at: datetime) -> None:
        try:
            missed = await self._calls.open_missed(caller, before=reached_at)
            for record in close_missed_calls(missed, caller=caller, reached_at=reached_at):
                await self._calls.upsert(record)
        except CallCenterError as exc:
            logger.warning("closing the missed calls of a caller failed: %s", exc)

    # ==========================================================================================
    # Legs
    # ==========================================================================================

    def _leg_channel(self, call_id: str, agent_id: str) -> str | None:
        """The first leg still known that rings or joins ``agent_id`` for ``call_id``."""
        channels = self._leg_index.get((call_id, agent_id))
        return channels[0] if channels else None

    def _add_leg(self, channel: str, leg: AgentLeg, started: datetime) -> None:
        self._legs[channel] = leg
        self._leg_started[channel] = started
        self._leg_index.setdefault((leg.call_id, leg.agent_id), []).append(channel)
        self._legs_of_call.setdefault(leg.call_id, {})[channel] = None

    def _drop_leg(self, channel: str) -> None:
        leg = self._legs.pop(channel, None)
        self._leg_started.pop(channel, None)
        self._ringing_noted.discard(channel)
        if leg is None:
            return
        key = (leg.call_id, leg.agent_id)
        channels = self._leg_index.get(key, [])
        if channel in channels:
            channels.remove(channel)
        if not channels:
            self._leg_index.pop(key, None)
        of_call = self._legs_of_call.get(leg.call_id)
        if of_call is not None:
            of_call.pop(channel, None)
            if not of_call:
                del self._legs_of_call[leg.call_id]

    def _forget_leg(self, call_id: str, agent_id: str) -> None:
        channel = self._leg_channel(call_id, agent_id)
        if channel is not None:
            self._drop_leg(channel)

    # ==========================================================================================
    # Agents and queues (API and CLI)
    # ==========================================================================================

    async def add_agent(
        self, *, agent_id: str, name: str, endpoint: str, queues: Iterable[str] = (), actor: str
    ) -> AgentStatus:
        """Create an agent (logged out).

        :raises ValidationError: a bad id, name or endpoint, or an unknown queue.
        :raises ConflictError: the id exists.
        """
        agent_id, name, endpoint = agent_id.strip(), name.strip(), endpoint.strip()
        if not _AGENT_ID.match(agent_id):
            raise ValidationError("agent id: 1 to 64 letters, digits, '.', '_', '@' or '-'")
        if not name or len(name) > MAX_NAME_LENGTH:
            raise ValidationError(f"agent name: 1 to {MAX_NAME_LENGTH} characters")
        if not _ENDPOINT.match(endpoint):
            raise ValidationError(f"endpoint {endpoint!r}: write it as TECHNOLOGY/resource, e.g. PJSIP/1001")
        wanted = await self._require_queues(queues)
        record = AgentRecord(id=agent_id, name=name, endpoint=endpoint, queues=wanted)
        await self._agent_repo.add(record)
        stored = await self._agent_repo.get(agent_id)
        self._agents[agent_id] = stored
        now = self._clock.now()
        self._board.load_agent(stored, now)
        if stored.queues:
            # Consumers of the bus (the live statistics) learn the membership here, not only on changes.
            event = AgentQueuesChanged(
                event_id=f"agent-queues:{agent_id}:{now.isoformat()}",
                occurred_at=now,
                agent_id=agent_id,
                queues=stored.queues,
                reason=f"added by {actor}",
            )
            await self._commit(None, Step(events=(event,)))
        logger.info("agent %s added by %s", agent_id, actor)
        return self._status(stored)

    async def login(self, agent_id: str, *, actor: str, queues: Iterable[str] | None = None) -> AgentStatus:
        """Log an agent in (a repeat changes nothing); ``queues`` replaces their membership first.

        Applied by the process that runs the live queue (:meth:`use_relay`), as are :meth:`logout`,
        :meth:`pause` and :meth:`unpause`.

        :raises NotFoundError: unknown agent. :raises ValidationError: unknown queue.
        """
        wanted = tuple(queues) if queues is not None else None
        request = AgentRequest(agent_id=agent_id, action=AgentAction.LOGIN, actor=actor, queues=wanted)
        return await self._handed_over(request) or await self._login(agent_id, actor=actor, queues=wanted)

    async def _login(self, agent_id: str, *, actor: str, queues: Iterable[str] | None) -> AgentStatus:
        await self._known_agent(agent_id)
        if queues is not None:
            await self._set_agent_queues(agent_id, queues, actor=actor)
        await self._agent_request(AgentLoggedIn(agent_id=agent_id, at=self._clock.now()), actor)
        return await self.get_agent(agent_id)

    async def logout(self, agent_id: str, *, actor: str) -> AgentStatus:
        """Log an agent out (after the current call, if any). :raises NotFoundError:"""
        request = AgentRequest(agent_id=agent_id, action=AgentAction.LOGOUT, actor=actor)
        return await self._handed_over(request) or await self._logout(agent_id, actor=actor)

    async def _logout(self, agent_id: str, *, actor: str) -> AgentStatus:
        await self._known_agent(agent_id)
        if agent_id in self._holds:
            self._holds[agent_id] = AgentLoggedOut(agent_id=agent_id, at=self._clock.now())
            return await self.get_agent(agent_id)
        await self._agent_request(AgentLoggedOut(agent_id=agent_id, at=self._clock.now()), actor)
        return await self.get_agent(agent_id)

    async def pause(self, agent_id: str, *, actor: str, reason: str = "") -> AgentStatus:
        """Pause an agent (after the current call, if any).

        :raises NotFoundError: unknown agent. :raises ConflictError: the agent is logged out.
        """
        request = AgentRequest(agent_id=agent_id, action=AgentAction.PAUSE, actor=actor, reason=reason)
        return await self._handed_over(request) or await self._pause(agent_id, actor=actor, reason=reason)

    async def _pause(self, agent_id: str, *, actor: str, reason: str) -> AgentStatus:
        live = await self._known_agent(agent_id)
        if live.state is AgentState.LOGGED_OUT:
            raise ConflictError(f"agent {agent_id} is logged out: log in before pausing")
        fact = AgentPaused(agent_id=agent_id, at=self._clock.now(), reason=reason.strip() or "paused")
        if agent_id in self._holds:
            self._holds[agent_id] = fact  # on a callback: their pause starts when it ends
            logger.info("agent %s: pause by %s kept for after the callback", agent_id, actor)
            return await self.get_agent(agent_id)
        await self._agent_request(fact, actor)
        return await self.get_agent(agent_id)

    async def unpause(self, agent_id: str, *, actor: str) -> AgentStatus:
        """Back from a pause (a pause asked for during a call is cancelled).

        :raises NotFoundError: unknown agent. :raises ConflictError: the agent is logged out.
        """
        request = AgentRequest(agent_id=agent_id, action=AgentAction.UNPAUSE, actor=actor)
        return await self._handed_over(request) or await self._unpause(agent_id, actor=actor)

    async def _unpause(self, agent_id: str, *, actor: str) -> AgentStatus:
        live = await self._known_agent(agent_id)
        if live.state is AgentState.LOGGED_OUT:
            raise ConflictError(f"agent {agent_id} is logged out: log in instead")
        if agent_id in self._holds:
            self._holds[agent_id] = None  # on a callback: available when it ends
            return await self.get_agent(agent_id)
        await self._agent_request(AgentUnpaused(agent_id=agent_id, at=self._clock.now()), actor)
        return await self.get_agent(agent_id)

    async def set_agent_queues(self, agent_id: str, queues: Iterable[str], *, actor: str) -> AgentStatus:
        """Replace an agent's queue membership; applied by the process that runs the live queue
        (:meth:`use_relay`), so that a caller waiting in a new queue of an available agent is offered
        to them at once. :raises NotFoundError: :raises ValidationError:"""
        wanted = tuple(queues)
        request = AgentRequest(agent_id=agent_id, action=AgentAction.SET_QUEUES, actor=actor, queues=wanted)
        return await self._handed_over(request) or await self._set_agent_queues(agent_id, wanted, actor=actor)

    async def _set_agent_queues(self, agent_id: str, queues: Iterable[str], *, actor: str) -> AgentStatus:
        await self._known_agent(agent_id)
        wanted = await self._require_queues(queues)
        stored = await self._agent_repo.set_queues(agent_id, wanted)
        self._agents[agent_id] = stored
        self._board.set_agent_queues(agent_id, stored.queues)
        now = self._clock.now()
        event = AgentQueuesChanged(
            event_id=f"agent-queues:{agent_id}:{now.isoformat()}",
            occurred_at=now,
            agent_id=agent_id,
            queues=stored.queues,
            reason=f"set by {actor}",
        )
        await self._commit(None, Step(events=(event,)))
        await self._dispatch()
        await self.flush()
        return self._status(stored)

    async def put_queue(self, queue: QueueRecord, *, actor: str) -> QueueRecord:
        """Create or replace a queue's settings. :raises ValidationError: naming the bad setting."""
        check_queue(queue)
        await self._queue_repo.put(queue)
        stored = await self._queue_repo.get(queue.name)
        self._set_queue(stored)
        logger.info("queue %s set by %s", queue.name, actor)
        await self._dispatch()
        await self.flush()
        return stored

    async def queue_or_default(self, name: str) -> QueueRecord:
        """The stored settings of ``name``, or the defaults of a new queue of that name."""
        try:
            return await self._queue_repo.get(name)
        except NotFoundError:
            return QueueRecord(name=name)

    # -- reading -------------------------------------------------------------------------------

    async def get_agent(self, agent_id: str) -> AgentStatus:
        """:raises NotFoundError:"""
        await self.flush()
        record = await self._agent_repo.get(agent_id)
        return self._status(record)

    async def list_agents(self, *, cursor: str | None, limit: int) -> Page[AgentStatus]:
        await self.flush()
        page = await self._agent_repo.list(cursor=cursor, limit=limit)
        return Page(items=tuple(self._status(a) for a in page.items), next=page.next)

    async def list_queues(self) -> tuple[QueueRecord, ...]:
        return await self._queue_repo.list()

    async def get_queue(self, name: str) -> QueueRecord:
        """:raises NotFoundError:"""
        return await self._queue_repo.get(name)

    def is_open(self, queue: QueueRecord, now: datetime | None = None) -> bool:
        """Whether ``queue`` takes calls at ``now`` (default: the clock's now)."""
        hours = business_hours(queue.business_hours, queue.holidays, queue.time_zone)
        return is_open(hours, now or self._clock.now())

    async def live(self, queue: str) -> LiveQueue:
        """The live picture of one queue. :raises NotFoundError: for a queue not configured."""
        settings = self._queues.get(queue)
        if settings is None:
            settings = await self._queue_repo.get(queue)
            self._set_queue(settings)
        now = self._clock.now()
        return LiveQueue(
            queue=settings,
            at=now,
            open_now=is_open(self._hours[queue], now),
            view=self._board.view(queue, now),
        )

    async def standing(
        self, queue: str, *, call_id: str | None = None, joined_at: datetime | None = None
    ) -> QueueStanding:
        """The queue's line and staffing now, with the place of ``call_id`` (when it waits here) and
        the callers queued before ``joined_at``: what a wait estimate reads, in counts (each
        announcement asks; :meth:`live` would list every caller and agent for it).

        :raises NotFoundError: for a queue not configured.
        """
        settings = self._queues.get(queue)
        if settings is None:
            settings = await self._queue_repo.get(queue)
            self._set_queue(settings)
        now = self._clock.now()
        board = self._board
        position, elapsed_s = None, 0.0
        track = board.call(call_id) if call_id is not None else None
        if track is not None and track.queue == queue:
            position = board.position(track.call_id)
            elapsed_s = (track.wait_s(now) or 0.0) if position is not None else 0.0
        return QueueStanding(
            queue=settings,
            at=now,
            waiting=board.waiting_count(queue),
            hol_wait_s=board.head_wait_s(queue, now),
            staffed=board.members_in(queue, STAFFED_STATES),
            free=board.members_in(queue, (AgentState.AVAILABLE,)),
            position=position,
            elapsed_s=elapsed_s,
            ahead=board.waiting_before(queue, joined_at) if joined_at is not None else 0,
        )

    async def list_calls(self, flt: CallFilter, *, cursor: str | None, limit: int) -> Page[CallRecord]:
        await self.flush()  # what this process decided so far reads back
        return await self._calls.list(flt, cursor=cursor, limit=limit)

    async def recent_calls_of(
        self, numbers: Collection[str], limit: int
    ) -> dict[str, tuple[CallRecord, ...]]:
        """The latest ``limit`` calls from each of ``numbers``, newest first (an agent's worklist)."""
        await self.flush()  # what this process decided so far reads back
        return await self._calls.recent_of(numbers, limit)

    async def get_call(self, call_id: str) -> CallDetail:
        """:raises NotFoundError:"""
        await self.flush()
        call = await self._calls.get(call_id)
        return CallDetail(call=call, events=await self._calls.events(call_id))

    # -- internals -----------------------------------------------------------------------------

    def _status(self, record: AgentRecord) -> AgentStatus:
        return AgentStatus(record=record, live=self._board.agent(record.id))

    def _set_queue(self, queue: QueueRecord) -> None:
        self._queues[queue.name] = queue
        self._hours[queue.name] = business_hours(queue.business_hours, queue.holidays, queue.time_zone)
        self._board.set_queue(queue)

    async def _known_agent(self, agent_id: str) -> AgentLive:
        """The agent's live state, loading them from the store if this process does not know them."""
        live = self._board.agent(agent_id)
        if live is None:
            record = await self._agent_repo.get(agent_id)
            self._agents[agent_id] = record
            # Not committed: an agent stored ringing or busy may well be, in the process that
            # serves calls (this one may be the command line); only this board assumes otherwise.
            self._board.load_agent(record, self._clock.now())
            live = self._board.agent(agent_id)
            assert live is not None  # loaded just above
        return live

    async def _agent_request(self, fact: AnyAgentFact, actor: str) -> None:
        step = self._board.apply(fact)
        events = tuple(
            dataclasses.replace(e, reason=f"{e.reason} by {actor}") if isinstance(e, AgentStateChanged) else e
            for e in step.events
        )
        await self._commit(None, Step(events=events))
        if events:
            logger.info("agent %s: %s by %s", fact.agent_id, type(fact).__name__, actor)
        await self._dispatch()
        # A request (API, CLI) returns with its change stored and published.
        await self.flush()

    async def _require_queues(self, queues: Iterable[str]) -> tuple[str, ...]:
        wanted = tuple(sorted({q.strip() for q in queues}))
        missing = [q for q in wanted if q not in self._queues]
        if missing:
            for queue in await self._queue_repo.list():
                self._set_queue(queue)
            missing = [q for q in wanted if q not in self._queues]
        if missing:
            raise ValidationError(f"unknown queue(s): {', '.join(missing)}")
        return wanted

    # ==========================================================================================
    # Step hooks and callbacks (voice flows beside the queue)
    # ==========================================================================================

    def add_step_hook(self, hook: StepHook) -> None:
        """Call ``hook(fact, step)`` after each fact the board applied (synchronously: it must only
        schedule work, never await). Voice flows use it to start with a queued caller and stop when
        the caller leaves the line."""
        self._step_hooks.append(hook)

    async def accept_callback(self, call_id: str) -> bool:
        """The waiting caller accepted a callback: they leave the line (outcome ``callback_requested``
        once they hang up), any agent ringing for them is released. False if they were no longer waiting.
        """
        step = await self._apply(CallbackAccepted(call_id=call_id, at=self._clock.now()))
        if step.ignored is not None:
            return False
        await self._hangup_legs_of(call_id)
        self._skipped.pop(call_id, None)
        await self._dispatch()
        return True

    async def end_after_callback(self, call_id: str) -> None:
        """Hang up a caller who accepted a callback and heard its confirmation."""
        track = self._board.call(call_id)
        if track is not None and track.outcome is None:
            await self._hang_up_caller(call_id, track.channel_id, HUNG_UP_AFTER_CALLBACK)

    def available_agents(self, queue: str) -> tuple[tuple[str, str], ...]:
        """The available members of ``queue`` as (agent id, endpoint), the longest idle first."""
        free = [
            a
            for a in self._board.agents(queue)
            if a.state is AgentState.AVAILABLE and a.agent_id in self._agents
        ]
        free.sort(key=lambda a: (a.since, a.agent_id))
        return tuple((a.agent_id, self._agents[a.agent_id].endpoint) for a in free)

    async def hold_for_callback(
        self, agent_id: str, *, why: str, actor: str, paused_ok: bool = False
    ) -> bool:
        """Take an available agent out of the inbound line for a callback: a pause named ``why``.

        While held, the agent's own pause, unpause or log-out is kept and applied when
        :meth:`release_from_callback` gives them back. ``False`` when they are not available.

        :param paused_ok: the agent asked for the callback (working their list while paused): they
            are held as they are, and stay paused after it unless they unpause meanwhile.
        :raises NotFoundError:
        """
        live = await self._known_agent(agent_id)
        if agent_id in self._holds:
            return False
        if paused_ok and live.state is AgentState.PAUSED:
            self._holds[agent_id] = AgentPaused(agent_id=agent_id, at=self._clock.now(), reason="")
            return True
        if live.state is not AgentState.AVAILABLE:
            return False
        await self._agent_request(AgentPaused(agent_id=agent_id, at=self._clock.now(), reason=why), actor)
        now_live = self._board.agent(agent_id)
        if now_live is None or now_live.state is not AgentState.PAUSED:
            return False
        self._holds[agent_id] = None
        return True

    def held_for_callback(self, agent_id: str) -> bool:
        """Whether the agent is held for a callback now (:meth:`hold_for_callback`, not yet released)."""
        return agent_id in self._holds

    async def release_from_callback(
        self, agent_id: str, *, actor: str, orphan: bool = False, wrap_up_in: str | None = None
    ) -> AgentStatus:
        """Give back an agent held for a callback, in the state they chose meanwhile (available
        unless they paused or logged out). Giving back an agent not held changes nothing, unless
        ``orphan``: held by a dispatcher that died (its hold is not known here), then an agent still
        paused is made available.

        :param wrap_up_in: the callback's queue, when the agent talked to the customer: they wrap up
            for that queue's ``wrap_up_s`` first, as after a queue call (then the pause or log-out
            they asked for meanwhile applies).
        :raises NotFoundError:
        """
        live = await self._known_agent(agent_id)
        known = agent_id in self._holds
        if not known and not orphan:
            return await self.get_agent(agent_id)
        wanted = self._holds.pop(agent_id, None)
        if live.state is AgentState.PAUSED:
            now = self._clock.now()
            facts: list[AnyAgentFact] = [AgentUnpaused(agent_id=agent_id, at=now)]
            wrap_up = None
            if wrap_up_in is not None:
                wrap_up = self._queues.get(wrap_up_in) or await self.queue_or_default(wrap_up_in)
            if isinstance(wanted, AgentPaused) and not wanted.reason:
                facts = []  # paused before the callback they started, and still: nothing changes
            elif wrap_up is not None and wrap_up.wrap_up_s > 0:
                then = {AgentPaused: AgentState.PAUSED, AgentLoggedOut: AgentState.LOGGED_OUT}.get(
                    type(wanted)
                )
                facts = [AgentWrapUpStarted(agent_id=agent_id, at=now, then=then, reason="callback ended")]
                self._wrap_queue[agent_id] = wrap_up.name
            elif isinstance(wanted, AgentPaused):
                facts.append(dataclasses.replace(wanted, at=now))
            elif isinstance(wanted, AgentLoggedOut):
                facts = [dataclasses.replace(wanted, at=now)]
            # Applied together, before any dispatch: an agent who paused is never offered a call between.
            events: list[DomainEvent] = []
            for fact in facts:
                events += self._board.apply(fact).events
            await self._commit(None, Step(events=tuple(events)))
            logger.info(
                "agent %s given back after a callback by %s%s",
                agent_id,
                actor,
                "" if known else " (held by a stopped dispatcher)",
            )
            await self._dispatch()
            await self.flush()
        return await self.get_agent(agent_id)


def _held_wish(
    agent_id: str, stored: AgentState, at: datetime, wish: AgentPaused | AgentLoggedOut | None
) -> AgentPaused | AgentLoggedOut | None:
    """What an agent held for a callback is to be after it, given a state stored elsewhere."""
    if stored is AgentState.LOGGED_OUT:
        return AgentLoggedOut(agent_id=agent_id, at=at)
    if stored is AgentState.PAUSED:
        return (
            wish if isinstance(wish, AgentPaused) else AgentPaused(agent_id=agent_id, at=at, reason="paused")
        )
    if stored is AgentState.AVAILABLE:
        return None
    return wish


def _external_fact(
    agent_id: str, current: AgentState, wanted: AgentState, at: datetime
) -> AnyAgentFact | None:
    """The agent fact that moves an agent from ``current`` to a ``wanted`` state stored elsewhere."""
    if wanted is AgentState.LOGGED_OUT:
        return AgentLoggedOut(agent_id=agent_id, at=at)
    if wanted is AgentState.PAUSED and current is not AgentState.LOGGED_OUT:
        return AgentPaused(agent_id=agent_id, at=at)
    if wanted is AgentState.AVAILABLE:
        if current is AgentState.LOGGED_OUT:
            return AgentLoggedIn(agent_id=agent_id, at=at)
        if current is AgentState.PAUSED:
            return AgentUnpaused(agent_id=agent_id, at=at)
    return None


def check_queue(queue: QueueRecord) -> None:
    """Refuse settings the queue cannot run with. :raises ValidationError: naming the setting."""
    if not _QUEUE_NAME.match(queue.name):
        raise ValidationError("queue name: 1 to 64 letters, digits, '_' or '-' (it goes in Stasis arguments)")
    if len(queue.title) > MAX_NAME_LENGTH:
        raise ValidationError(f"title: at most {MAX_NAME_LENGTH} characters")
    for name, value, low in (
        ("max_wait_s", queue.max_wait_s, 1),
        ("service_level_s", queue.service_level_s, 0),
        ("short_abandon_s", queue.short_abandon_s, 0),
        ("ring_timeout_s", queue.ring_timeout_s, 1),
        ("wrap_up_s", queue.wrap_up_s, 0),
        ("max_misses_before_pause", queue.max_misses_before_pause, 0),
    ):
        if value < low:
            raise ValidationError(f"{name} must be at least {low}")
    if queue.max_callers is not None and queue.max_callers < 1:
        raise ValidationError("max_callers must be at least 1, or null for no limit")
    if queue.business_number is not None and not queue.business_number.startswith("+"):
        raise ValidationError("business_number must be E.164, e.g. +14155550100")
    zone_of(queue.time_zone)
    business_hours(queue.business_hours, queue.holidays, queue.time_zone)
