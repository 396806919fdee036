"""The callback dispatcher: dials what is due, once, while it holds the lease (service).

Exactly one dispatcher is active: the composition root runs :meth:`CallbackDispatcher.tick` only
while this process holds the dispatcher lease, and every dial is recorded with the lease's fencing
token (:meth:`~callcenter.callbacks.dispatch_ports.DispatchStore.start_attempt` refuses a token older
than one already used), so a process that lost the lease without knowing cannot dial.

Each tick:

1. once a second, expires open callbacks older than ``expire_after_s`` and raises
   ``CallbackPromiseAtRisk`` for promises about to be broken (reading only those two kinds), with
   when the callback is now expected to be dialled (:meth:`CallbackDispatcher._expected_by`);
2. takes the due callbacks in dial order (:func:`~callcenter.callbacks.dispatch.dial_order`: kept
   places at their place in line, others at their due time) and, for each whose queue is open and
   has a free agent, and whose customer is not in quiet hours, holds the agent and starts a task
   that records the move to ``dialing`` with a new attempt (fenced, and checked against the
   do-not-call list in the same transaction) before it places the attempt's calls. The tick itself
   makes two reads (due callbacks, their owners), never a write per callback;
3. shows the queue the kept places waiting for an agent (:class:`~callcenter.callbacks.line.CallbackLine`).

An attempt ends ``connected`` (a person pressed 1 and is bridged to the agent; ``completed`` when the
call ends) or with ``no_answer``/``busy``/``machine``/``error``: ``retry_wait`` with back-off, outside
the customer's quiet hours, or ``failed`` once ``max_attempts`` customer dials were made.

:meth:`reconcile` runs when the lease is taken (before any tick): attempts left open by a dispatcher
that died are ended as ``error`` (their channels hung up, never re-dialled: a retry is a new
attempt), the agents they held are given back, and connected calls are watched to their end.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from callcenter.bus import Delivery, EventBus
from callcenter.callbacks.attempts import Attempt, end_attempt, retry_delay, start_attempt
from callcenter.callbacks.dispatch import (
    DispatchSettings,
    callbacks_ahead,
    dial_order,
    expected_dial_at,
    is_expired,
    is_late,
    place_in_line,
    quiet_until,
)
from callcenter.callbacks.dispatch_ports import (
    AgentDesk,
    CallbackCalls,
    CallbackDetails,
    CallEnd,
    CallJob,
    DispatchStore,
    DoNotCallError,
    PlaceEstimator,
    StaleLeaderError,
    VoicemailPreviews,
    Whisper,
)
from callcenter.callbacks.lifecycle import move
from callcenter.callbacks.line import CallbackLine, KeptPlace, line_key
from callcenter.callbacks.ports import StaleCallbackError
from callcenter.callbacks.reasons import Reason, reason_of, voicemail_of
from callcenter.callbacks.service import state_event
from callcenter.capacity.ports import QueueSettingsSource
from callcenter.clock import Clock
from callcenter.errors import CallCenterError, ConflictError, DependencyError
from callcenter.model.callbacks import Actor, Callback, CallbackChange
from callcenter.model.events import CallbackAttemptEnded, CallbackPromiseAtRisk, CallEnded, DomainEvent
from callcenter.model.records import QueueRecord
from callcenter.model.vocabulary import ActorKind, AttemptResult, CallbackKind, CallbackState, CallOutcome
from callcenter.queue.hours import business_hours, is_open, next_open

logger = logging.getLogger(__name__)

DISPATCHER: Final = Actor(ActorKind.SYSTEM, "dispatcher")
EXPIRY: Final = Actor(ActorKind.SYSTEM, "expiry")
DO_NOT_CALL: Final = Actor(ActorKind.SYSTEM, "do-not-call")
INBOUND: Final = Actor(ActorKind.SYSTEM, "inbound-call")
S = CallbackState
_WATCHED: Final = frozenset({S.REQUESTED, S.SCHEDULED, S.RETRY_WAIT, S.DIALING, S.CONNECTED})
_KEPT_WAITING: Final = frozenset({S.REQUESTED, S.SCHEDULED})
_SWEEP_S: Final = 1.0


def _late_id(callback: Callback) -> str:
    """The id of a callback's late-promise alert: one per callback and promise."""
    return f"callback-late:{callback.id}:{callback.window.end.isoformat()}"


@dataclass(frozen=True, kw_only=True, slots=True)
class CallerIds:
    """The number our callbacks present: the queue's business number, else ``per_queue``, else
    ``default`` (``CALLCENTER_DISPATCH_CALLER_ID``)."""

    default: str = ""
    per_queue: Mapping[str, str] = field(default_factory=dict)

    def of(self, queue: QueueRecord) -> str:
        return self.per_queue.get(queue.name) or queue.business_number or self.default


class _HeldAgents:
    """The agent picker of one attempt: the agent held by the tick first, then other free ones."""

    def __init__(
        self, desk: AgentDesk, queue: str, first: tuple[str, str], why: str, *, only: bool = False
    ) -> None:
        self._only = only  # a personal callback: its owner or nobody
        self._desk = desk
        self._queue = queue
        self._first: tuple[str, str] | None = first
        self._why = why
        self.held: list[str] = [first[0]]

    async def next(self, tried: frozenset[str]) -> tuple[str, str] | None:
        if self._first is not None and self._first[0] not in tried:
            first, self._first = self._first, None
            return first
        if self._only:
            return None
        for agent_id, endpoint in await self._desk.free_agents(self._queue):
            if agent_id in tried or agent_id in self.held:
                continue
            if await self._desk.hold(agent_id, self._why):
                self.held.append(agent_id)
                return agent_id, endpoint
        return None


class CallbackDispatcher:
    """Dials due callbacks (see the module docstring).

    :param token: the fencing token of the dispatcher lease now held, or ``None`` when not held.
    :param customer_first: queues whose callbacks dial the customer before the agent.
    :param line: where the kept places waiting for an agent are shown to the queue (refreshed by
        every tick, emptied when this process stops leading).
    :param previews: the voicemail previews the whisper plays (``None``: the reason only).
    :param estimator: predicts when a late callback will be dialled, for its alert (``None``: no
        prediction, the SMS late notice falls back to a fixed slip).
    """

    def __init__(
        self,
        store: DispatchStore,
        calls: CallbackCalls,
        desk: AgentDesk,
        queues: QueueSettingsSource,
        bus: EventBus,
        clock: Clock,
        *,
        role: str,
        token: Callable[[], int | None],
        settings: DispatchSettings | None = None,
        caller_ids: CallerIds | None = None,
        customer_first: frozenset[str] = frozenset(),
        line: CallbackLine | None = None,
        previews: VoicemailPreviews | None = None,
        estimator: PlaceEstimator | None = None,
    ) -> None:
        self._store = store
        self._previews = previews
        self._estimator = estimator
        self._line = line
        self._calls = calls
        self._desk = desk
        self._queues = queues
        self._bus = bus
        self._clock = clock
        self._role = role
        self._token = token
        self._settings = settings or DispatchSettings()
        self._caller_ids = caller_ids or CallerIds()
        self._customer_first = customer_first
        self._running: dict[str, asyncio.Task[None]] = {}  # callback id -> its attempt or watch
        self._alerted: set[str] = set()
        self._next_sweep: datetime | None = None
        self._saved: dict[str, Attempt] = {}  # attempt id -> as last stored, while it runs
        self._next_due: datetime | None = None
        self._events: asyncio.Queue[DomainEvent] = asyncio.Queue()
        self._publisher: asyncio.Task[None] | None = None

    @property
    def settings(self) -> DispatchSettings:
        return self._settings

    def pause_s(self, poll_s: float) -> float:
        """How long the loop may sleep before the next tick: ``poll_s``, or less when a callback
        falls due sooner (seen by the last tick)."""
        if self._next_due is None:
            return poll_s
        return max(0.0, min(poll_s, (self._next_due - self._clock.now()).total_seconds()))

    @property
    def running(self) -> int:
        """Attempts and connected calls this process is running now."""
        return len(self._running)

    # -- the tick -----------------------------------------------------------------------------------

    async def tick(self) -> int:
        """Expire, alert, and start the attempts that may start now; how many started. Never raises."""
        token = self._token()
        if token is None:
            if self._line is not None:
                self._line.clear()
            return 0
        try:
            now = self._clock.now()
            if self._next_sweep is None or now >= self._next_sweep:
                # The full sweep (expiry, late promises) reads every open callback: once a second.
                self._next_sweep = now + timedelta(seconds=_SWEEP_S)
                await self._expire_and_alert(
                    await self._store.needing_attention(
                        _WATCHED,
                        requested_before=now - timedelta(seconds=self._settings.expire_after_s),
                        window_end_by=now + timedelta(seconds=self._settings.late_alert_s),
                    ),
                    now,
                )
            # Read a poll ahead: the loop then wakes when the next one falls due, not a poll later.
            soon = await self._store.due(now + timedelta(seconds=self._settings.poll_s))
            later = [c.due_at for c in soon if c.due_at is not None and c.due_at > now]
            self._next_due = min(later, default=None)
            due = [c for c in soon if not is_expired(c, now, self._settings)]
            started = await self._start_due(due, now, token)
            await self._refresh_line(now)
            return started
        except StaleLeaderError as exc:
            logger.warning("callback dispatcher: %s; not dialling", exc)
        except Exception:
            logger.exception("callback dispatcher: tick failed")
        return 0

    async def _expire_and_alert(self, callbacks: tuple[Callback, ...], now: datetime) -> list[Callback]:
        alive: list[Callback] = []
        due: tuple[Callback, ...] | None = None  # read once, and only for a new alert
        for callback in callbacks:
            if callback.id not in self._running and is_expired(callback, now, self._settings):
                age_h = (now - callback.requested_at).total_seconds() / 3600
                await self._move(
                    callback, S.EXPIRED, EXPIRY, f"not reached within {age_h:.1f} h of the request"
                )
                continue
            alive.append(callback)
            if is_late(callback, now, self._settings) and _late_id(callback) not in self._alerted:
                if due is None and self._estimator is not None:
                    due = await self._store.due(now)  # its place among the callbacks due before it
                await self._alert_late(callback, now, due or ())
        return alive

    async def _alert_late(self, callback: Callback, now: datetime, due: tuple[Callback, ...]) -> None:
        event_id = _late_id(callback)
        if event_id in self._alerted:
            return
        self._alerted.add(event_id)
        left_s = (callback.window.end - now).total_seconds()
        reason = (
            f"promise ends in {left_s:.0f} s and nobody was dialled"
            if left_s > 0
            else f"promise ended {-left_s:.0f} s ago and nobody was dialled"
        )
        expected_by = await self._expected_by(callback, now, due)
        expected = f"; expected to be dialled by {expected_by.isoformat()}" if expected_by is not None else ""
        logger.warning("callback %s of %s: %s%s", callback.id, callback.queue, reason, expected)
        await self._publish(
            CallbackPromiseAtRisk(
                event_id=event_id,
                occurred_at=now,
                callback_id=callback.id,
                queue=callback.queue,
                number=callback.number,
                window_end=callback.window.end,
                state=callback.state,
                reason=reason,
                expected_by=expected_by,
            )
        )

    async def _expected_by(
        self, callback: Callback, now: datetime, due: tuple[Callback, ...]
    ) -> datetime | None:
        """When this callback is now expected to be dialled (80 % sure), from its place in line behind
        the live callers and the due callbacks before it, the queue's agents and handle times (the
        estimator of the callback offers), then the queue's hours and the customer's quiet hours;
        ``None`` (logged) when no estimate can be made."""
        if self._estimator is None:
            logger.info("callback %s: no wait estimator in this process; no expected dial time", callback.id)
            return None
        try:
            estimate = await self._estimator.estimate_place(
                callback.queue,
                joined_at=place_in_line(callback),
                callbacks_ahead=callbacks_ahead(callback, due, now),
            )
            record = await self._queues.get(callback.queue)
        except CallCenterError as exc:
            logger.info("callback %s: no expected dial time (%s)", callback.id, exc)
            return None
        if estimate.by is None:
            logger.info("callback %s: no expected dial time (%s)", callback.id, estimate.wait.message)
            return None
        opens_at = next_open(business_hours(record.business_hours, record.holidays, record.time_zone), now)
        if opens_at is None:
            logger.info(
                "callback %s: no expected dial time (queue %s never opens)", callback.id, callback.queue
            )
            return None
        at = expected_dial_at(
            max(estimate.by, now),
            callback.number,
            self._settings,
            opens_at=opens_at,
            fallback_zone=record.time_zone,
        )
        if at is None:
            logger.info(
                "callback %s: no expected dial time (the customer's quiet hours never end)", callback.id
            )
        return at

    async def _start_due(self, callbacks: list[Callback], now: datetime, token: int) -> int:
        """Hold an agent for each callback that may be dialled now, in dial order, and launch its
        attempt. No store round trip per callback here: each attempt records its start (with the
        fence) in its own task before its first originate, so one slow write delays only that one."""
        started = 0
        closed: set[str] = set()  # queues with no free agent (or closed): later ones wait their turn
        records: dict[str, QueueRecord] = {}
        free: dict[str, bool] = {}  # queues with an agent free, read once a tick
        ordered = [c for c in dial_order(callbacks, now) if c.id not in self._running]
        owners = await self._store.owners([c.id for c in ordered], now=now) if ordered else {}
        for callback in ordered:
            if callback.queue in closed:
                continue
            if callback.queue not in free:
                free[callback.queue] = bool(await self._desk.free_agents(callback.queue))
            if not free[callback.queue]:
                closed.add(callback.queue)  # nobody free: later callbacks of the queue wait too
                continue
            record = records.get(callback.queue)
            if record is None:
                record = records[callback.queue] = await self._queues.get(callback.queue)
            hours = business_hours(record.business_hours, record.holidays, record.time_zone)
            if not is_open(hours, now):
                closed.add(callback.queue)
                continue
            allowed = quiet_until(callback.number, now, self._settings, fallback_zone=record.time_zone)
            if allowed != now:
                # Quiet hours are the customer's: this one waits, others of the queue may be dialled.
                logger.debug("callback %s: quiet hours of %s until %s", callback.id, callback.number, allowed)
                continue
            owner = owners.get(callback.id)
            if self._line is not None:
                self._line.remove(callback.id)  # the agent the queue kept back for it is taken now
            agent = await self._hold_free_agent(callback, only=owner)
            if agent is None:
                if owner is None:
                    closed.add(callback.queue)
                continue  # a personal callback waits for its agent; the queue's others go on
            self._launch(callback, record, agent, token, now, personal=owner is not None)
            started += 1
            free.pop(callback.queue, None)
        return started

    async def _refresh_line(self, now: datetime) -> None:
        """Show the queue the kept places that wait for an agent and could be dialled now."""
        if self._line is None:
            return
        waiting = await self._store.in_state(None, _KEPT_WAITING, kind=CallbackKind.KEEP_PLACE)
        places: list[KeptPlace] = []
        records: dict[str, QueueRecord] = {}
        released = [c.id for c in waiting if c.state is S.SCHEDULED]
        owners = await self._store.owners(released, now=now) if released else {}
        for callback in waiting:
            if callback.id in self._running or is_expired(callback, now, self._settings):
                continue
            if callback.state is S.SCHEDULED and (callback.due_at is None or callback.due_at > now):
                continue
            record = records.get(callback.queue)
            if record is None:
                record = records[callback.queue] = await self._queues.get(callback.queue)
            if not is_open(business_hours(record.business_hours, record.holidays, record.time_zone), now):
                continue
            if quiet_until(callback.number, now, self._settings, fallback_zone=record.time_zone) != now:
                continue  # the customer may not be called now: the line goes on without them
            if callback.id in owners:
                continue  # it waits for the agent who claimed it, not for any agent
            places.append(KeptPlace(key=line_key(callback), callback_id=callback.id, queue=callback.queue))
        self._line.replace(places, now=now)

    async def _hold_free_agent(self, callback: Callback, *, only: str | None) -> tuple[str, str] | None:
        for agent_id, endpoint in await self._desk.free_agents(callback.queue):
            if only is not None and agent_id != only:
                continue
            if await self._desk.hold(agent_id, f"callback {callback.id}"):
                return agent_id, endpoint
        return None

    def _prepare(
        self, callback: Callback, record: QueueRecord, agent: tuple[str, str], token: int, now: datetime
    ) -> tuple[Callback, CallbackChange, CallJob]:
        moved, change, attempt = start_attempt(callback, at=now, fence=token, actor=DISPATCHER)
        customer_first = callback.queue in self._customer_first
        # Agent first: the held agent is rung first, so their try is recorded with the start.
        attempt = dataclasses.replace(attempt, agent_id=agent[0], agent_tries=0 if customer_first else 1)
        waited_s = (now - (callback.enqueued_at or callback.requested_at)).total_seconds()
        job = CallJob(
            attempt=attempt,
            queue=callback.queue,
            caller_id=self._caller_ids.of(record),
            whisper=Whisper(number=callback.number, waited_s=max(waited_s, 0.0)),
            customer_first=customer_first,
        )
        return moved, change, job

    def _whisper_read(self, callback: Callback, job: CallJob) -> tuple[CallJob, Callable[[], None]]:
        """Start reading why the callback is owed and, for a voicemail's, finding its preview (for
        the whisper; customer first has none): the job carrying both, and how to cancel them."""
        if job.customer_first:
            return job, lambda: None
        details = asyncio.ensure_future(self._details_of(callback))
        reason = asyncio.ensure_future(self._reason_of(callback, details))
        preview = asyncio.ensure_future(self._preview_of(callback, details)) if self._previews else None

        def cancel() -> None:
            for task in (details, reason, preview):
                if task is not None:
                    task.cancel()

        return dataclasses.replace(job, reason=reason, preview=preview), cancel

    async def _details_of(self, callback: Callback) -> CallbackDetails | None:
        """The callback's sources and first change; ``None`` (nothing whispered) on a read error."""
        try:
            return (await self._store.details([callback.id], now=self._clock.now())).get(callback.id)
        except Exception as exc:
            logger.warning("callback %s: its reason was not read (%s); not whispered", callback.id, exc)
            return None

    async def _reason_of(
        self, callback: Callback, details: asyncio.Future[CallbackDetails | None]
    ) -> Reason | None:
        """Why the callback is owed, as the worklist says it; ``None`` (not whispered) on a read error."""
        detail = await details
        if detail is None:
            return None
        return reason_of(callback, detail.sources, detail.first_change)

    async def _preview_of(
        self, callback: Callback, details: asyncio.Future[CallbackDetails | None]
    ) -> str | None:
        """The start of the voicemail the callback was made for, as a sound Asterisk plays; ``None``
        for other callbacks and when there is no preview (the previews log why)."""
        detail = await details
        voicemail_id = voicemail_of(detail.sources) if detail is not None else None
        if voicemail_id is None or self._previews is None:
            return None
        try:
            return await self._previews.sound(voicemail_id)
        except Exception:
            logger.exception("callback %s: the preview of voicemail %s failed", callback.id, voicemail_id)
            return None

    async def _record_start(
        self, callback: Callback, moved: Callback, change: CallbackChange, job: CallJob, agent_id: str
    ) -> bool:
        """Persist the move to dialing with its attempt (fenced); the held agent is released if not."""
        try:
            await self._store.start_attempt(moved, change, job.attempt, role=self._role)
        except DoNotCallError as exc:
            await self._desk.release(agent_id)
            await self._move(callback, S.CANCELLED, DO_NOT_CALL, str(exc))
            return False
        except StaleCallbackError as exc:
            await self._desk.release(agent_id)
            logger.info("callback %s: %s", callback.id, exc)
            return False
        except StaleLeaderError as exc:
            await self._desk.release(agent_id)
            logger.warning("callback dispatcher: %s; callback %s not dialled", exc, callback.id)
            return False
        except BaseException:
            await self._desk.release(agent_id)
            raise
        self._saved[job.attempt.id] = job.attempt
        await self._publish(state_event(moved, change))
        logger.info("callback %s: attempt %s started (agent %s)", callback.id, job.attempt.id, agent_id)
        return True

    def _launch(
        self,
        callback: Callback,
        record: QueueRecord,
        agent: tuple[str, str],
        token: int,
        now: datetime,
        *,
        personal: bool,
    ) -> None:
        """Run one attempt in a task of its own: record its start, then place its calls."""
        moved, change, job = self._prepare(callback, record, agent, token, now)
        picker = _HeldAgents(self._desk, callback.queue, agent, f"callback {callback.id}", only=personal)

        async def attempt() -> None:
            # Why it is owed (for the whisper) is read while the start is written and the agent's
            # phone rings: no dial waits for it.
            read, cancel = self._whisper_read(callback, job)
            try:
                recorded = await self._record_start(callback, moved, change, job, agent[0])
            except asyncio.CancelledError:
                cancel()
                raise
            except Exception:
                cancel()
                logger.exception("callback %s: its dial was not recorded; not dialled", callback.id)
                return
            if recorded:
                await self._run_attempt(moved, read, picker)
            else:
                cancel()

        self._track(callback.id, attempt(), f"callback-{job.attempt.id}")

    async def _start(
        self,
        callback: Callback,
        record: QueueRecord,
        agent: tuple[str, str],
        token: int,
        now: datetime,
        *,
        personal: bool = False,
    ) -> bool:
        """Record the start now (the caller waits for it), then run the attempt in its own task."""
        moved, change, job = self._prepare(callback, record, agent, token, now)
        job, cancel = self._whisper_read(callback, job)
        if not await self._record_start(callback, moved, change, job, agent[0]):
            cancel()
            return False
        picker = _HeldAgents(self._desk, callback.queue, agent, f"callback {callback.id}", only=personal)
        self._track(callback.id, self._run_attempt(moved, job, picker), f"callback-{job.attempt.id}")
        return True

    async def start_now(self, callback_id: str, agent_id: str) -> Attempt:
        """An agent starts a due callback now (from the worklist): ring them, then the customer.

        :raises DependencyError: this process does not hold the dispatcher lease.
        :raises ConflictError: the callback is not due, or already being dialled.
        :raises NotFoundError: unknown callback or agent.
        """
        token = self._token()
        if token is None:
            raise DependencyError("the callback dispatcher runs in another process (or is not connected)")
        callback = await self._store.get(callback_id)
        now = self._clock.now()
        if callback.id in self._running or callback.state not in (S.SCHEDULED, S.RETRY_WAIT):
            raise ConflictError(f"callback {callback_id} is {callback.state.value}: it cannot be started")
        if callback.due_at is None or callback.due_at > now:
            due = callback.due_at.isoformat() if callback.due_at else "when its place reaches the head"
            raise ConflictError(f"callback {callback_id} is not due yet (due {due})")
        endpoint = await self._desk.endpoint_of(agent_id)
        if not await self._desk.hold(agent_id, f"callback {callback.id}", asked=True):
            raise ConflictError(f"agent {agent_id} is on another call")
        record = await self._queues.get(callback.queue)
        if not await self._start(callback, record, (agent_id, endpoint), token, now, personal=True):
            raise ConflictError(f"callback {callback_id} was not started (changed meanwhile, or do not call)")
        return (await self._store.attempts(callback.id))[-1]

    # -- one attempt --------------------------------------------------------------------------------

    async def _run_attempt(self, callback: Callback, job: CallJob, picker: _HeldAgents) -> None:
        attempt = job.attempt
        released: set[str] = set()
        try:
            try:
                end = await self._calls.run(job, picker, self._save_progress)
            except Exception as exc:
                logger.exception("callback %s: attempt %s failed", callback.id, attempt.id)
                end = CallEnd(result=AttemptResult.ERROR, cause=f"dispatcher error: {exc}")
            # Agents tried but not on the call go back to the queue now, not when the call ends.
            for agent_id in picker.held:
                if end.result is not AttemptResult.CONNECTED or agent_id != end.agent_id:
                    released.add(agent_id)
                    await self._desk.release(agent_id)
            stored = await self._finish(callback, attempt, end)
            if stored is not None and stored.state is S.CONNECTED:
                await self._watch(stored, attempt.id, end.agent_id, released)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("callback %s: attempt %s not recorded", callback.id, attempt.id)
        finally:
            self._saved.pop(attempt.id, None)
            for agent_id in picker.held:
                if agent_id not in released:
                    await self._desk.release(agent_id)

    async def _save_progress(self, attempt: Attempt) -> None:
        if self._saved.get(attempt.id) == attempt:
            return  # already stored as it is (the first agent is recorded with the start)
        await self._store.save_attempt(attempt)
        self._saved[attempt.id] = attempt

    async def _finish(self, callback: Callback, attempt: Attempt, end: CallEnd) -> Callback | None:
        """Record the attempt's end with the callback's move. ``callback`` is the one this process
        moved to ``dialing`` (no read before the write: the write is conditional on that state)."""
        now = self._clock.now()
        current = self._saved.pop(attempt.id, attempt)
        current = dataclasses.replace(current, agent_id=end.agent_id or current.agent_id)
        retry_at = None
        if end.result is not AttemptResult.CONNECTED:
            retry_at = self._retry_at(callback, await self._store.attempts(callback.id), now, current)
        moved, change, ended = end_attempt(
            callback, current, end.result, at=now, actor=DISPATCHER, cause=end.cause, retry_at=retry_at
        )
        if retry_at is None and end.result is not AttemptResult.CONNECTED:
            change = dataclasses.replace(
                change, reason=f"{end.cause}; {self._settings.max_attempts} dials made"
            )
        try:
            await self._store.end_attempt(moved, change, ended)
        except StaleCallbackError:
            # Cancelled (or closed inbound) while the attempt ran: keep the attempt's end only.
            await self._store.save_attempt(ended)
            return await self._store.get(callback.id)
        logger.info(
            "callback %s: attempt %s ended %s (%s)", callback.id, attempt.id, end.result.value, end.cause
        )
        await self._publish(
            CallbackAttemptEnded(
                event_id=f"callback-attempt:{attempt.id}",
                occurred_at=now,
                callback_id=callback.id,
                attempt_id=attempt.id,
                queue=callback.queue,
                number=callback.number,
                seq=attempt.seq,
                result=end.result,
                cause=end.cause,
                agent_id=ended.agent_id,
            )
        )
        await self._publish(state_event(moved, change))
        return moved

    def _retry_at(
        self, callback: Callback, attempts: tuple[Attempt, ...], now: datetime, current: Attempt
    ) -> datetime | None:
        attempts = tuple(current if a.id == current.id else a for a in attempts)
        dials = sum(1 for a in attempts if a.customer_dialled_at is not None)
        # Attempts that never reached the customer (no agent answered) are not counted against
        # them, but a callback that keeps failing that way still ends.
        if dials >= self._settings.max_attempts or len(attempts) >= 3 * self._settings.max_attempts:
            return None
        s = self._settings
        at = now + retry_delay(max(dials, 1), first_s=s.retry_s, factor=s.retry_factor, max_s=s.retry_max_s)
        allowed = quiet_until(callback.number, at, s)
        return allowed or at

    async def _watch(
        self,
        callback: Callback,
        attempt_id: str,
        agent_id: str | None = None,
        released: set[str] | None = None,
    ) -> None:
        """Until the call ends; then the agent is given back (once: noted in ``released``), after
        the wrap-up of the callback's queue, and has ``disposition_wait_s`` to give a disposition
        before the callback is completed without one."""
        length_s = await self._calls.conversation(attempt_id)
        if agent_id is not None:
            if released is not None:
                released.add(agent_id)
            await self._desk.release(agent_id, wrap_up_in=callback.queue)
        # No polling meanwhile: the move is conditional on `connected`, so a disposition given in
        # time (which moves the callback on) makes it a no-op.
        await asyncio.sleep(self._settings.disposition_wait_s)
        await self._move(
            callback, S.COMPLETED, DISPATCHER, f"the call ended after {length_s:.0f} s; no disposition given"
        )

    # -- inbound calls close callbacks ---------------------------------------------------------------

    async def handle(self, delivery: Delivery) -> None:
        """Bus handler: a caller answered inbound closes their waiting callbacks (``completed_inbound``).

        Callbacks being dialled or connected are left to their attempt. Idempotent: a redelivered
        event finds nothing left to close.
        """
        await self.handle_many((delivery,))

    async def handle_many(self, deliveries: Sequence[Delivery]) -> None:
        """:meth:`handle` of the events read together, with one read of their callers' callbacks."""
        answered = [
            d.event
            for d in deliveries
            if isinstance(d.event, CallEnded)
            and d.event.outcome is CallOutcome.ANSWERED
            and d.event.caller.startswith("+")
        ]
        if not answered:
            return
        open_by_number = await self._store.open_for_numbers({ended.caller for ended in answered})
        closed: set[str] = set()
        for ended in answered:
            for callback in open_by_number.get(ended.caller, ()):
                if (
                    callback.state in (S.DIALING, S.CONNECTED)
                    or callback.id in self._running
                    or callback.id in closed
                ):
                    continue
                reason = f"the caller called in and was answered (call {ended.call_id})"
                await self._move(callback, S.COMPLETED_INBOUND, INBOUND, reason)
                closed.add(callback.id)

    # -- after taking the lease ---------------------------------------------------------------------

    async def reconcile(self) -> None:
        """End attempts a dead dispatcher left open; watch connected calls (see the module docstring)."""
        present = await self._calls.present()
        now = self._clock.now()
        for attempt in await self._store.open_attempts():
            if attempt.callback_id in self._running:
                continue
            channels = present.get(attempt.id, frozenset())
            if channels:
                await self._calls.hang_up(channels)
            callback = await self._store.get(attempt.callback_id)
            cause = "the dispatcher stopped during the attempt" + (
                f" ({len(channels)} channel(s) hung up)" if channels else ""
            )
            if attempt.agent_id is not None:
                await self._desk.release(attempt.agent_id)
            if callback.state is not S.DIALING:
                ended = dataclasses.replace(attempt, ended_at=now, result=AttemptResult.ERROR, cause=cause)
                await self._store.save_attempt(ended)
                continue
            try:
                self._saved[attempt.id] = attempt
                await self._finish(callback, attempt, CallEnd(result=AttemptResult.ERROR, cause=cause))
            except CallCenterError as exc:
                logger.warning("callback %s: open attempt %s not ended: %s", callback.id, attempt.id, exc)
        for callback in await self._store.in_state(None, frozenset({S.CONNECTED})):
            if callback.id in self._running:
                continue
            attempts = await self._store.attempts(callback.id)
            last = attempts[-1].id if attempts else ""
            if present.get(last):
                self._track(
                    callback.id,
                    self._watch(callback, last, attempts[-1].agent_id),
                    f"callback-watch-{callback.id}",
                )
            else:
                await self._move(
                    callback, S.COMPLETED, DISPATCHER, "the call ended while no dispatcher watched it"
                )

    async def stop(self) -> None:
        """Cancel the attempts this process runs (at shutdown or when the lease is lost), then
        publish the events already decided (within a few seconds)."""
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.flush_events(timeout_s=5.0)
        if self._publisher is not None:
            self._publisher.cancel()
            await asyncio.gather(self._publisher, return_exceptions=True)
            self._publisher = None

    async def flush_events(self, *, timeout_s: float) -> None:
        """Wait until the events queued so far are published (or ``timeout_s`` passed)."""
        if self._publisher is None or self._publisher.done():
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._events.join()

    # -- helpers ------------------------------------------------------------------------------------

    def _track(self, callback_id: str, work: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(work, name=name)
        self._running[callback_id] = task

        def done(_: asyncio.Task[None]) -> None:
            if self._running.get(callback_id) is task:
                del self._running[callback_id]

        task.add_done_callback(done)

    async def _move(self, callback: Callback, state: CallbackState, actor: Actor, reason: str) -> None:
        try:
            moved, change = move(callback, state, at=self._clock.now(), actor=actor, reason=reason)
            stored = await self._store.move(moved, change)
        except CallCenterError as exc:
            logger.info("callback %s not moved to %s: %s", callback.id, state.value, exc)
            return
        await self._publish(state_event(stored, change))

    async def _publish(self, event: DomainEvent) -> None:
        """Queue an event for the bus: published in order by one task, so no attempt waits for Redis
        before it dials. The store already holds the change (it is the truth); a failed publish is
        logged."""
        self._events.put_nowait(event)
        if self._publisher is None or self._publisher.done():
            self._publisher = asyncio.create_task(self._publish_queued(), name="callback-events")

    async def _publish_queued(self) -> None:
        while True:
            event = await self._events.get()
            try:
                await self._bus.publish(event)
            except Exception as exc:
                logger.error("event bus: %s %s not published: %s", event.event_type, event.event_id, exc)
            finally:
                self._events.task_done()
