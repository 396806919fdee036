"""The callback dispatcher: dials what is due, once, while it holds the lease (service).

Exactly one dispatcher is active: the composition root runs :meth:`CallbackDispatcher.tick` only
while this process holds the dispatcher lease, and every dial is recorded with the lease's fencing
token (:meth:`~callcenter.callbacks.dispatch_ports.DispatchStore.start_attempt` refuses a token older
than one already used), so a process that lost the lease without knowing cannot dial.

Each tick:

1. expires open callbacks older than ``expire_after_s`` and raises ``CallbackPromiseAtRisk`` for
   promises about to be broken;
2. takes the due callbacks in order (due time, then place in line) and, for each whose queue is open
   and has a free agent, and whose customer is not in quiet hours, holds the agent, records the move
   to ``dialing`` with a new attempt (checked against the do-not-call list in the same
   transaction), then runs the attempt's calls in a task of its own.

An attempt ends ``connected`` (a person pressed 1 and is bridged to the agent; ``completed`` when the
call ends) or with ``no_answer``/``busy``/``machine``/``error``: ``retry_wait`` with back-off, outside
the customer's quiet hours, or ``failed`` once ``max_attempts`` customer dials were made.

:meth:`reconcile` runs when the lease is taken (before any tick): attempts left open by a dispatcher
that died are ended as ``error`` (their channels hung up, never re-dialled: a retry is a new
attempt), the agents they held are given back, and connected calls are watched to their end.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from callcenter.bus import Delivery, EventBus
from callcenter.callbacks.attempts import Attempt, end_attempt, retry_delay, start_attempt
from callcenter.callbacks.dispatch import DispatchSettings, dial_order, is_expired, is_late, quiet_until
from callcenter.callbacks.dispatch_ports import (
    AgentDesk,
    CallbackCalls,
    CallEnd,
    CallJob,
    DispatchStore,
    DoNotCallError,
    StaleLeaderError,
    Whisper,
)
from callcenter.callbacks.lifecycle import move
from callcenter.callbacks.ports import StaleCallbackError
from callcenter.callbacks.service import state_event
from callcenter.capacity.ports import QueueSettingsSource
from callcenter.clock import Clock
from callcenter.errors import CallCenterError, ConflictError, DependencyError
from callcenter.model.callbacks import Actor, ActorKind, Callback
from callcenter.model.events import CallbackAttemptEnded, CallbackPromiseAtRisk, CallEnded, DomainEvent
from callcenter.model.records import QueueRecord
from callcenter.model.vocabulary import AttemptResult, CallbackState, CallOutcome
from callcenter.queue.hours import business_hours, is_open

logger = logging.getLogger(__name__)

DISPATCHER: Final = Actor(ActorKind.SYSTEM, "dispatcher")
EXPIRY: Final = Actor(ActorKind.SYSTEM, "expiry")
DO_NOT_CALL: Final = Actor(ActorKind.SYSTEM, "do-not-call")
INBOUND: Final = Actor(ActorKind.SYSTEM, "inbound-call")
S = CallbackState
_WATCHED: Final = frozenset({S.REQUESTED, S.SCHEDULED, S.RETRY_WAIT, S.DIALING, S.CONNECTED})
_SWEEP_S: Final = 1.0


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
    ) -> None:
        self._store = store
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

    @property
    def settings(self) -> DispatchSettings:
        return self._settings

    @property
    def running(self) -> int:
        """Attempts and connected calls this process is running now."""
        return len(self._running)

    # -- the tick -----------------------------------------------------------------------------------

    async def tick(self) -> int:
        """Expire, alert, and start the attempts that may start now; how many started. Never raises."""
        token = self._token()
        if token is None:
            return 0
        try:
            now = self._clock.now()
            if self._next_sweep is None or now >= self._next_sweep:
                # The full sweep (expiry, late promises) reads every open callback: once a second.
                self._next_sweep = now + timedelta(seconds=_SWEEP_S)
                await self._expire_and_alert(await self._store.in_state(None, _WATCHED), now)
            due = [c for c in await self._store.due(now) if not is_expired(c, now, self._settings)]
            return await self._start_due(due, now, token)
        except StaleLeaderError as exc:
            logger.warning("callback dispatcher: %s; not dialling", exc)
        except Exception:
            logger.exception("callback dispatcher: tick failed")
        return 0

    async def _expire_and_alert(self, callbacks: tuple[Callback, ...], now: datetime) -> list[Callback]:
        alive: list[Callback] = []
        for callback in callbacks:
            if callback.id not in self._running and is_expired(callback, now, self._settings):
                age_h = (now - callback.requested_at).total_seconds() / 3600
                await self._move(
                    callback, S.EXPIRED, EXPIRY, f"not reached within {age_h:.1f} h of the request"
                )
                continue
            alive.append(callback)
            if is_late(callback, now, self._settings):
                await self._alert_late(callback, now)
        return alive

    async def _alert_late(self, callback: Callback, now: datetime) -> None:
        event_id = f"callback-late:{callback.id}:{callback.window.end.isoformat()}"
        if event_id in self._alerted:
            return
        self._alerted.add(event_id)
        left_s = (callback.window.end - now).total_seconds()
        reason = (
            f"promise ends in {left_s:.0f} s and nobody was dialled"
            if left_s > 0
            else f"promise ended {-left_s:.0f} s ago and nobody was dialled"
        )
        logger.warning("callback %s of %s: %s", callback.id, callback.queue, reason)
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
            )
        )

    async def _start_due(self, callbacks: list[Callback], now: datetime, token: int) -> int:
        started = 0
        closed: set[str] = set()  # queues with no free agent (or closed): later ones wait their turn
        records: dict[str, QueueRecord] = {}
        free: dict[str, bool] = {}  # queues with an agent free, read once a tick
        for callback in dial_order(callbacks, now):
            if callback.id in self._running or callback.queue in closed:
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
            owner = await self._owner(callback, now)
            agent = await self._hold_free_agent(callback, only=owner)
            if agent is None:
                if owner is None:
                    closed.add(callback.queue)
                continue  # a personal callback waits for its agent; the queue's others go on
            if await self._start(callback, record, agent, token, now, personal=owner is not None):
                started += 1
            free.pop(callback.queue, None)
        return started

    async def _owner(self, callback: Callback, now: datetime) -> str | None:
        """The agent a callback waits for: the claiming agent, or a follow-up's own agent until its
        deadline; ``None`` when any agent may take it."""
        claim = await self._store.claim_of(callback.id, now=now)
        if claim is not None:
            return claim.agent_id
        for note in await self._store.sources(callback.id):
            if note.owner_agent is not None and (note.owner_until is None or now < note.owner_until):
                return note.owner_agent
        return None

    async def _hold_free_agent(self, callback: Callback, *, only: str | None) -> tuple[str, str] | None:
        for agent_id, endpoint in await self._desk.free_agents(callback.queue):
            if only is not None and agent_id != only:
                continue
            if await self._desk.hold(agent_id, f"callback {callback.id}"):
                return agent_id, endpoint
        return None

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
        moved, change, attempt = start_attempt(callback, at=now, fence=token, actor=DISPATCHER)
        attempt = dataclasses.replace(attempt, agent_id=agent[0])
        try:
            await self._store.start_attempt(moved, change, attempt, role=self._role)
        except DoNotCallError as exc:
            await self._desk.release(agent[0])
            await self._move(callback, S.CANCELLED, DO_NOT_CALL, str(exc))
            return False
        except StaleCallbackError as exc:
            await self._desk.release(agent[0])
            logger.info("callback %s: %s", callback.id, exc)
            return False
        except BaseException:
            await self._desk.release(agent[0])
            raise
        await self._publish(state_event(moved, change))
        waited_s = (now - (callback.enqueued_at or callback.requested_at)).total_seconds()
        job = CallJob(
            attempt=attempt,
            queue=callback.queue,
            caller_id=self._caller_ids.of(record),
            whisper=Whisper(number=callback.number, waited_s=max(waited_s, 0.0), reason=change.reason),
            customer_first=callback.queue in self._customer_first,
        )
        picker = _HeldAgents(self._desk, callback.queue, agent, f"callback {callback.id}", only=personal)
        self._track(callback.id, self._run_attempt(moved, job, picker), f"callback-{attempt.id}")
        logger.info("callback %s: attempt %s started (agent %s)", callback.id, attempt.id, agent[0])
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
        if not await self._desk.hold(agent_id, f"callback {callback.id}"):
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
                await self._watch(stored, attempt.id, end.agent_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("callback %s: attempt %s not recorded", callback.id, attempt.id)
        finally:
            for agent_id in picker.held:
                if agent_id not in released:
                    await self._desk.release(agent_id)

    async def _save_progress(self, attempt: Attempt) -> None:
        await self._store.save_attempt(attempt)

    async def _finish(self, callback: Callback, attempt: Attempt, end: CallEnd) -> Callback | None:
        now = self._clock.now()
        fresh = await self._store.get(callback.id)
        attempts = await self._store.attempts(callback.id)
        current = next((a for a in attempts if a.id == attempt.id), attempt)
        current = dataclasses.replace(current, agent_id=end.agent_id or current.agent_id)
        if fresh.state is not S.DIALING:
            # Cancelled (or closed inbound) while the attempt ran: keep the attempt's end only.
            await self._store.save_attempt(
                dataclasses.replace(current, ended_at=now, result=end.result, cause=end.cause)
            )
            return fresh
        retry_at = None if end.result is AttemptResult.CONNECTED else self._retry_at(fresh, attempts, now)
        moved, change, ended = end_attempt(
            fresh, current, end.result, at=now, actor=DISPATCHER, cause=end.cause, retry_at=retry_at
        )
        if retry_at is None and end.result is not AttemptResult.CONNECTED:
            change = dataclasses.replace(
                change, reason=f"{end.cause}; {self._settings.max_attempts} dials made"
            )
        await self._store.end_attempt(moved, change, ended)
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

    def _retry_at(self, callback: Callback, attempts: tuple[Attempt, ...], now: datetime) -> datetime | None:
        dials = sum(1 for a in attempts if a.customer_dialled_at is not None)
        # Attempts that never reached the customer (no agent answered) are not counted against
        # them, but a callback that keeps failing that way still ends.
        if dials >= self._settings.max_attempts or len(attempts) >= 3 * self._settings.max_attempts:
            return None
        s = self._settings
        at = now + retry_delay(max(dials, 1), first_s=s.retry_s, factor=s.retry_factor, max_s=s.retry_max_s)
        allowed = quiet_until(callback.number, at, s)
        return allowed or at

    async def _watch(self, callback: Callback, attempt_id: str, agent_id: str | None = None) -> None:
        """Until the call ends; then the agent is given back and has ``disposition_wait_s`` to give
        a disposition before the callback is completed without one."""
        length_s = await self._calls.conversation(attempt_id)
        if agent_id is not None:
            await self._desk.release(agent_id)
        deadline = self._clock.now() + timedelta(seconds=self._settings.disposition_wait_s)
        while self._clock.now() < deadline:
            if (await self._store.get(callback.id)).state is not S.CONNECTED:
                return  # the agent gave a disposition
            await asyncio.sleep(min(0.5, self._settings.disposition_wait_s))
        await self._move(
            callback, S.COMPLETED, DISPATCHER, f"the call ended after {length_s:.0f} s; no disposition given"
        )

    # -- inbound calls close callbacks ---------------------------------------------------------------

    async def handle(self, delivery: Delivery) -> None:
        """Bus handler: a caller answered inbound closes their waiting callbacks (``completed_inbound``).

        Callbacks being dialled or connected are left to their attempt. Idempotent: a redelivered
        event finds nothing left to close.
        """
        ended = delivery.event
        if not isinstance(ended, CallEnded) or ended.outcome is not CallOutcome.ANSWERED:
            return
        if not ended.caller.startswith("+"):
            return
        for callback in await self._store.open_for_number(ended.caller):
            if callback.state in (S.DIALING, S.CONNECTED) or callback.id in self._running:
                continue
            reason = f"the caller called in and was answered (call {ended.call_id})"
            await self._move(callback, S.COMPLETED_INBOUND, INBOUND, reason)

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
        """Cancel the attempts this process runs (at shutdown or when the lease is lost)."""
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

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
        try:
            await self._bus.publish(event)
        except Exception as exc:
            logger.error("event bus: %s %s not published: %s", event.event_type, event.event_id, exc)
