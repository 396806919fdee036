"""The estimate service: live wait estimates, their log, forecasts and agent schedules (service).

:class:`EstimateService` keeps each queue's predictor inputs current from the ``CallEnded`` events of
the bus (:meth:`~EstimateService.handle` is a consumer handler, for group :data:`CONSUMER_GROUP`) and
reads the live waiting list and agents from the queue's board through
:class:`~callcenter.capacity.ports.LiveQueueSource`. It answers "what is this caller's wait now" with
QL-A and the baselines (:mod:`callcenter.capacity.estimate`), and logs every prediction it makes for a
caller: once when the caller joins the queue (:meth:`~EstimateService.capture`, from the ticker) and
whenever the caller is told one (:meth:`~EstimateService.announce`). :meth:`~EstimateService.accuracy`
scores the log against the stored calls.

Forecasts come from the stored calls of the last :attr:`EstimateSettings.history_weeks` weeks
(:mod:`callcenter.capacity.forecast`); the one of the current interval is also the prior of the live
inputs, cached for :attr:`EstimateSettings.forecast_ttl_s`.

Several processes: each keeps its own inputs, so each needs every ``CallEnded``. The live board is
only complete in the process that holds the ARI link, which is the one whose estimates count.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Final

from callcenter.bus import Delivery
from callcenter.capacity.accuracy import AccuracyFigures, PredictionRecord, accuracy
from callcenter.capacity.estimate import (
    MAX_POSITION,
    OnlineInputs,
    QueueSnapshot,
    WaitEstimate,
    check_position,
    estimate_wait,
    model_inputs,
)
from callcenter.capacity.forecast import (
    MAX_HISTORY_DAYS,
    DayPlan,
    ForecastSettings,
    IntervalForecast,
    NoHistoryError,
    QueueForecast,
    forecast_queue,
    plan_day,
)
from callcenter.capacity.ports import (
    CallHistory,
    LiveQueueSource,
    PredictionLog,
    QueueSettingsSource,
    ScheduleRepository,
)
from callcenter.capacity.schedules import Schedule, Shift, make_schedule
from callcenter.clock import Clock
from callcenter.errors import CallCenterError, DependencyError, NotFoundError, ValidationError
from callcenter.model.events import AgentScheduleChanged, CallEnded, DomainEvent, WaitAnnounced
from callcenter.model.records import CallRecord, QueueRecord
from callcenter.model.vocabulary import AgentState
from callcenter.queue.hours import zone_of
from callcenter.queue.ports import CallFilter
from callcenter.queue.state import STAFFED_STATES, QueueStanding

logger = logging.getLogger(__name__)

#: The bus consumer group whose handler is :meth:`EstimateService.handle`.
CONSUMER_GROUP: Final = "capacity-estimates"

#: The event types :meth:`EstimateService.handle` acts on; the bus acknowledges the others unread (``only``).
HANDLED_EVENTS: Final = frozenset({CallEnded.event_type})
_PAGE: Final = 500
# CallEnded ids remembered to recognise a redelivery.
_SEEN_EVENTS: Final = 50_000
# Forecasts for days further than this from today are refused (no history can speak for them).
_MAX_DAYS_AHEAD: Final = 366


@dataclass(frozen=True, kw_only=True, slots=True)
class EstimateSettings:
    """How the service learns.

    :param history_weeks: weeks of stored calls behind every forecast (1 to 52).
    :param smoothing: ``α`` of the forecast's exponential smoothing.
    :param prior_calls: weight, in calls, of the history's figures against the day's own calls.
    :param memory_calls: the live inputs forget old calls by ``1 - 1/memory_calls`` per new one.
    :param target_service_level: default share of calls to answer within the queue's
        ``service_level_s``, for agents required.
    :param forecast_ttl_s: how long the forecast behind live estimates is reused.
    :param queue_list_ttl_s: how long :meth:`EstimateService.capture` reuses the list of queues.
    """

    history_weeks: int = 8
    smoothing: float = 0.3
    prior_calls: float = 20.0
    memory_calls: float = 200.0
    target_service_level: float = 0.8
    forecast_ttl_s: float = 900.0
    queue_list_ttl_s: float = 30.0

    def __post_init__(self) -> None:
        if isinstance(self.history_weeks, bool) or not 1 <= self.history_weeks <= 52:
            raise ValidationError(f"history_weeks must be from 1 to 52, not {self.history_weeks!r}")
        ForecastSettings(smoothing=self.smoothing, prior_calls=self.prior_calls)
        if not (math.isfinite(self.memory_calls) and self.memory_calls >= 1.0):
            raise ValidationError(f"memory_calls must be at least 1, not {self.memory_calls!r}")
        if not 0.0 < self.target_service_level < 1.0:
            raise ValidationError(
                f"target_service_level must be strictly between 0 and 1, not {self.target_service_level!r}"
            )


@dataclass(frozen=True, kw_only=True, slots=True)
class Estimate:
    """A caller's estimate at ``at``: ``wait.estimate`` is QL-A (``None`` with ``wait.reason`` set)."""

    queue: str
    at: datetime
    call_id: str | None
    wait: WaitEstimate

    @property
    def by(self) -> datetime | None:
        """When the caller is answered with 80 % probability: the time to announce."""
        if self.wait.estimate is None:
            return None
        return self.at + timedelta(seconds=self.wait.estimate.p80_s)


@dataclass(frozen=True, kw_only=True, slots=True)
class Forecast:
    """A queue's planned day and the history it came from."""

    queue: QueueRecord
    history: QueueForecast
    plan: DayPlan


@dataclass(slots=True)
class _Cached:
    forecast: QueueForecast | None
    expires_at: datetime


class EstimateService:
    """Live estimates, their log and accuracy, forecasts and schedules (see the module docstring).

    :param queues: queue settings (time zone, service-level threshold, wrap-up).
    :param calls: stored calls, the history of forecasts and the truth of accuracy.
    :param live: the queues' live boards; ``None`` in a process without them (the CLI), where
        estimates raise :class:`~callcenter.errors.DependencyError`.
    """

    def __init__(
        self,
        queues: QueueSettingsSource,
        calls: CallHistory,
        schedules: ScheduleRepository,
        predictions: PredictionLog,
        clock: Clock,
        *,
        live: LiveQueueSource | None = None,
        settings: EstimateSettings | None = None,
    ) -> None:
        self._queues = queues
        self._calls = calls
        self._schedules = schedules
        self._predictions = predictions
        self._clock = clock
        self._live = live
        self._settings = settings or EstimateSettings()
        self._online: dict[str, OnlineInputs] = {}
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._forecasts: dict[str, _Cached] = {}
        #: Publishes ``WaitAnnounced`` for the statistics' live accuracy figures; ``None``: none.
        self.publish: Callable[[DomainEvent], Awaitable[object]] | None = None
        self._captured: set[str] = set()
        self._queue_list: tuple[QueueRecord, ...] = ()
        self._queue_list_at: datetime | None = None

    @property
    def settings(self) -> EstimateSettings:
        return self._settings

    def online(self, queue: str) -> OnlineInputs:
        """What the finished calls of ``queue`` taught so far."""
        return self._online.get(queue, OnlineInputs())

    # -- learning from the bus ----------------------------------------------------------------------

    async def handle(self, delivery: Delivery) -> None:
        """Bus handler: learn from each ``CallEnded``; other events are acknowledged untouched."""
        if isinstance(delivery.event, CallEnded):
            await self.observe(delivery.event)

    async def observe(self, ended: CallEnded) -> None:
        """Learn from one finished call (idempotent: a repeated ``event_id`` is ignored)."""
        if ended.queue is None or ended.event_id in self._seen:
            return
        try:
            wrap_up_s = float((await self._queues.get(ended.queue)).wrap_up_s)
        except NotFoundError:
            wrap_up_s = 0.0
        inputs = self.online(ended.queue)
        self._online[ended.queue] = inputs.observe(
            ended, wrap_up_s=wrap_up_s, memory_calls=self._settings.memory_calls
        )
        self._seen[ended.event_id] = None
        while len(self._seen) > _SEEN_EVENTS:
            self._seen.popitem(last=False)

    # -- live estimates -----------------------------------------------------------------------------

    async def estimate(
        self, queue: str, *, position: int | None = None, call_id: str | None = None
    ) -> Estimate:
        """The estimate now, for a waiting call, a place in line, or (neither) a caller joining now.

        :raises NotFoundError: for an unknown queue, or a call not waiting in it.
        :raises ValidationError: for a position out of range, or both ``position`` and ``call_id``.
        :raises DependencyError: in a process without live boards.
        """
        if position is not None and call_id is not None:
            raise ValidationError("ask for a call_id or a position, not both")
        if position is not None:
            check_position(position)
        standing = await self._standing(queue, call_id=call_id)
        elapsed_s = 0.0
        if call_id is not None:
            if standing.position is None:
                raise NotFoundError(f"call {call_id!r} is not waiting in queue {queue!r}")
            position, elapsed_s = standing.position, standing.elapsed_s
        elif position is None:
            position = standing.waiting + 1
        return await self._estimate(standing, position=position, elapsed_s=elapsed_s, call_id=call_id)

    async def estimate_place(self, queue: str, *, joined_at: datetime, callbacks_ahead: int = 0) -> Estimate:
        """The estimate for a place in line taken at ``joined_at`` that is not a live call (a kept
        place, a callback due since then): behind the live callers who joined before it and
        ``callbacks_ahead`` callbacks dialled before it. Not logged.

        :raises NotFoundError: for an unknown queue. :raises DependencyError: no live board here.
        """
        standing = await self._standing(queue, joined_at=joined_at)
        ahead = standing.ahead + max(callbacks_ahead, 0)
        return await self._estimate(
            standing, position=min(ahead + 1, MAX_POSITION), elapsed_s=0.0, call_id=None
        )

    async def estimate_snapshot(
        self, queue: str, snapshot: QueueSnapshot, *, call_id: str | None = None
    ) -> Estimate:
        """The estimate for a caller whose situation was read elsewhere (an ``app_queue`` site's
        ``QUEUEPOSITION`` and members), with what this queue's calls taught. Not logged.

        :raises NotFoundError: for an unknown queue. :raises ValidationError: a position out of range.
        """
        record = await self._queues.get(queue)
        now = self._clock.now()
        prior = await self._prior(record, now)
        online = self.online(queue)
        inputs = model_inputs(online, prior, prior_calls=self._settings.prior_calls)
        return Estimate(queue=queue, at=now, call_id=call_id, wait=estimate_wait(snapshot, inputs, online))

    async def announce(self, queue: str, call_id: str) -> Estimate:
        """The estimate of a waiting call, logged with QL-A marked as announced (what the caller hears).

        :raises NotFoundError: for an unknown queue, or a call not waiting in it.
        """
        estimate = await self.estimate(queue, call_id=call_id)
        if estimate.wait.estimate is not None:
            await self._log(estimate, call_id, announced=True)
            self._captured.add(call_id)
        return estimate

    async def capture(self) -> int:
        """Log an estimate for every caller who joined a queue since the last run; return how many.

        Run it from the ticker: the prediction of the moment a caller joins is what the live
        accuracy is measured on. A caller for whom no estimate can be made yet (no agent staffed)
        is tried again at the next run. Failures are logged, never raised.
        """
        if self._live is None:
            return 0
        logged = 0
        waiting_now: set[str] = set()
        for queue in await self._capture_queues():
            try:
                logged += await self._capture_queue(queue.name, waiting_now)
            except CallCenterError as exc:
                logger.warning("no estimates captured for queue %s: %s", queue.name, exc)
        self._captured &= waiting_now
        return logged

    async def _capture_queues(self) -> tuple[QueueRecord, ...]:
        now = self._clock.now()
        stale = self._queue_list_at is None or (now - self._queue_list_at).total_seconds() >= (
            self._settings.queue_list_ttl_s
        )
        if stale:
            try:
                self._queue_list, self._queue_list_at = await self._queues.list(), now
            except CallCenterError as exc:
                logger.warning("estimates: cannot list queues: %s", exc)
        return self._queue_list

    async def _capture_queue(self, queue: str, waiting_now: set[str]) -> int:
        assert self._live is not None
        live = await self._live.live(queue)
        waiting = live.view.waiting
        agents = live.view.agents
        standing = QueueStanding(
            queue=live.queue,
            at=live.at,
            waiting=len(waiting),
            hol_wait_s=max(0.0, waiting[0].wait_s) if waiting else 0.0,
            staffed=sum(1 for a in agents if a.state in STAFFED_STATES),
            free=sum(1 for a in agents if a.state is AgentState.AVAILABLE),
        )
        records: list[PredictionRecord] = []
        captured: list[str] = []
        made = 0
        for caller in live.view.waiting:
            waiting_now.add(caller.call_id)
            if caller.call_id in self._captured or caller.position > MAX_POSITION:
                continue
            made += 1
            if made > 1:
                # One estimate at a time: with thousands waiting each one costs milliseconds (QL-A
                # sums a term per caller ahead), and a run of them held the loop for seconds. The
                # estimates keep the snapshot taken above, so nothing changes under them.
                await asyncio.sleep(0)
            estimate = await self._estimate(
                standing, position=caller.position, elapsed_s=caller.wait_s, call_id=caller.call_id
            )
            if estimate.wait.estimate is None:
                continue
            records += _records(estimate, caller.call_id, announced=False)
            captured.append(caller.call_id)
        if records:
            # One write for every caller of this round: at a hundred new callers a second, one
            # transaction each would keep the store busy with little else.
            await self._predictions.add(records)
        self._captured.update(captured)
        return len(captured)

    async def _standing(
        self, queue: str, *, call_id: str | None = None, joined_at: datetime | None = None
    ) -> QueueStanding:
        if self._live is None:
            raise DependencyError("live queue state is not available in this process")
        return await self._live.standing(queue, call_id=call_id, joined_at=joined_at)

    async def _estimate(
        self, standing: QueueStanding, *, position: int, elapsed_s: float, call_id: str | None
    ) -> Estimate:
        snapshot = QueueSnapshot(
            position=position,
            elapsed_s=max(0.0, elapsed_s),
            agents_staffed=standing.staffed,
            agents_free=standing.free,
            hol_wait_s=max(0.0, standing.hol_wait_s),
        )
        name = standing.queue.name
        online = self.online(name)
        prior = await self._prior(standing.queue, standing.at)
        inputs = model_inputs(online, prior, prior_calls=self._settings.prior_calls)
        return Estimate(
            queue=name, at=standing.at, call_id=call_id, wait=estimate_wait(snapshot, inputs, online)
        )

    async def _prior(self, queue: QueueRecord, now: datetime) -> IntervalForecast | None:
        """The current interval's forecast from history (cached), ``None`` without history."""
        cached = self._forecasts.get(queue.name)
        if cached is None or now >= cached.expires_at:
            try:
                zone = zone_of(queue.time_zone)
                weeks = timedelta(weeks=self._settings.history_weeks)
                forecast: QueueForecast | None = await self._history(queue, zone, now - weeks, now)
                ttl_s = self._settings.forecast_ttl_s
            except (NoHistoryError, ValidationError):
                forecast, ttl_s = None, self._settings.forecast_ttl_s
            except DependencyError as exc:
                logger.warning("estimates for %s go without history: %s", queue.name, exc)
                forecast, ttl_s = None, 60.0
            cached = _Cached(forecast, now + timedelta(seconds=ttl_s))
            self._forecasts[queue.name] = cached
        if cached.forecast is None:
            return None
        return cached.forecast.at(now, zone_of(queue.time_zone))

    async def _log(self, estimate: Estimate, call_id: str, *, announced: bool) -> None:
        records = _records(estimate, call_id, announced=announced)
        await self._predictions.add(records)
        told = next((r for r in records if r.announced), None)
        if told is not None and self.publish is not None:
            event = WaitAnnounced(
                event_id=f"wait-announced:{call_id}:{told.at.isoformat()}",
                occurred_at=told.at,
                call_id=call_id,
                queue=told.queue,
                predictor=told.predictor.value,
                mean_s=told.mean_s,
                p80_s=told.p80_s,
            )
            try:
                await self.publish(event)
            except Exception:  # the log holds the truth; only the live board misses it
                logger.exception("publishing the announced wait of %s failed", call_id)

    # -- accuracy -----------------------------------------------------------------------------------

    async def accuracy(
        self, queue: str, *, since: datetime, until: datetime, announced_only: bool = False
    ) -> tuple[AccuracyFigures, ...]:
        """How the predictions made for ``queue`` in ``[since, until)`` did (see :mod:`.accuracy`).

        :raises ValidationError: for naive times, an empty window or one over a year.
        """
        _check_window(since, until)
        predictions = await self._predictions.between(queue, since, until)
        calls = {c.id: c for c in await self._calls_between(queue, since - timedelta(days=1), until)}
        return accuracy(predictions, calls, announced_only=announced_only)

    # -- forecasts ------------------------------------------------------------------------------------

    async def forecast(
        self, queue: str, day: date | None = None, *, target_service_level: float | None = None
    ) -> Forecast:
        """The plan of ``day`` (local to the queue; today when ``None``) from history before it and
        the agents' schedules.

        History ends at the start of ``day`` or now, whichever is earlier, so a past day is forecast
        as it would have been that morning.

        :raises NotFoundError: for an unknown queue.
        :raises NoHistoryError: (a ``ValidationError``) when the queue has no calls in the window.
        :raises ValidationError: for a day more than a year away, a bad target, or schedules staffing
            more agents than the models take.
        """
        record = await self._queues.get(queue)
        zone = zone_of(record.time_zone)
        now = self._clock.now()
        today = now.astimezone(zone).date()
        day = today if day is None else day
        if abs((day - today).days) > _MAX_DAYS_AHEAD:
            raise ValidationError(
                f"date must be within {_MAX_DAYS_AHEAD} days of today, not {day.isoformat()}"
            )
        until = min(now, datetime.combine(day, time(), zone))
        since = until - timedelta(weeks=self._settings.history_weeks)
        try:
            history = await self._history(record, zone, since, until)
        except NoHistoryError as exc:
            raise NoHistoryError(
                f"queue {queue!r} has no usable call history in the {self._settings.history_weeks} weeks "
                f"before {until.isoformat(timespec='minutes')} ({exc}): nothing to forecast from"
            ) from exc
        schedules = await self._schedules.for_queue(queue)
        plan = plan_day(
            history,
            schedules,
            day=day,
            zone=zone,
            answer_within_s=float(record.service_level_s),
            target_service_level=(
                self._settings.target_service_level if target_service_level is None else target_service_level
            ),
        )
        return Forecast(queue=record, history=history, plan=plan)

    async def _history(
        self, queue: QueueRecord, zone: tzinfo, since: datetime, until: datetime
    ) -> QueueForecast:
        calls = await self._calls_between(queue.name, since, until)
        settings = ForecastSettings(
            smoothing=self._settings.smoothing,
            prior_calls=self._settings.prior_calls,
            wrap_up_s=float(queue.wrap_up_s),
        )
        return forecast_queue(calls, zone=zone, since=since, until=until, settings=settings)

    async def _calls_between(self, queue: str, since: datetime, until: datetime) -> list[CallRecord]:
        flt = CallFilter(queue=queue, since=since, until=until)
        calls: list[CallRecord] = []
        cursor: str | None = None
        while True:
            page = await self._calls.list(flt, cursor=cursor, limit=_PAGE)
            calls.extend(page.items)
            if page.next is None:
                return calls
            cursor = page.next

    # -- schedules ------------------------------------------------------------------------------------

    async def get_schedule(self, agent_id: str) -> Schedule:
        """The agent's shifts (none when never set). :raises NotFoundError: for an unknown agent."""
        return await self._schedules.get(agent_id)

    async def set_schedule(self, agent_id: str, shifts: Iterable[Shift], *, actor: str) -> Schedule:
        """Replace the agent's shifts.

        :raises ValidationError: for no shift, too many, or overlapping ones (named in the message).
        :raises NotFoundError: for an unknown agent.
        """
        schedule = make_schedule(agent_id, shifts, updated_at=self._clock.now(), updated_by=actor)
        stored = await self._schedules.put(schedule)
        logger.info(
            "schedule of agent %s set by %s: %s", agent_id, actor, ", ".join(str(s) for s in stored.shifts)
        )
        if self.publish is not None:
            # Booked callback slots are checked against the new staffing when this arrives.
            at = stored.updated_at or self._clock.now()
            event = AgentScheduleChanged(
                event_id=f"agent-schedule:{agent_id}:{at.isoformat()}",
                occurred_at=at,
                agent_id=agent_id,
                shifts=tuple(str(s) for s in stored.shifts),
                reason=f"set by {actor}",
            )
            try:
                await self.publish(event)
            except Exception:
                logger.exception("publishing the schedule change of %s failed", agent_id)
        return stored


def _check_window(since: datetime, until: datetime) -> None:
    for name, value in (("since", since), ("until", until)):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValidationError(f"{name} must be a time with a UTC offset")
    if until <= since:
        raise ValidationError("until must be after since")
    if until - since > timedelta(days=MAX_HISTORY_DAYS):
        raise ValidationError(f"the window may span at most {MAX_HISTORY_DAYS} days")


def _records(estimate: Estimate, call_id: str, *, announced: bool) -> list[PredictionRecord]:
    """The prediction log's rows of one estimate; ``announced`` marks the one told to the caller."""
    chosen = estimate.wait.estimate
    return [
        PredictionRecord.of(
            p, call_id=call_id, queue=estimate.queue, at=estimate.at, announced=announced and p is chosen
        )
        for p in estimate.wait.predictions
    ]
