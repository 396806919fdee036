"""The statistics service: live board, materialised history, missed-call list and the feed (service).

Two event paths, both from the bus:

- every process **tails** the stream (:meth:`StatsService.observe`) to keep its live board, starting
  from the stored rows of today and the stream position read just before loading them;
- one consumer group (:data:`CONSUMER_GROUP`) **materialises** ``CallEnded`` into the interval rows
  and the missed-call list (:meth:`StatsService.handle`, or :meth:`StatsService.handle_many` for the
  events read together: one transaction per run of ended calls), once per call whatever the deliveries, and
  closes missed calls whose caller a callback reached (``CallbackStateChanged`` to ``connected``).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Final

from callcenter.bus import Delivery
from callcenter.callbacks.promise import cancelled_by_customer
from callcenter.clock import Clock
from callcenter.errors import NotFoundError
from callcenter.model.events import CallbackStateChanged, CallEnded, DomainEvent
from callcenter.model.paging import Page, check_limit
from callcenter.model.vocabulary import AgentState, CallbackState, VoicemailStatus
from callcenter.stats.definitions import EndedCall, StatsConfig
from callcenter.stats.feed import SnapshotFeed
from callcenter.stats.followups import FollowUps
from callcenter.stats.history import HistoryFilter, HistoryRow, Period, rollup
from callcenter.stats.intervals import MissedCall, ended_from_event, reached_from_event
from callcenter.stats.live import LiveStats, Snapshot
from callcenter.stats.ports import CallbackReader, SmsReader, StatsRepository, VoicemailReader
from callcenter.stats.report import DailyReport, daily_report, day_bounds
from callcenter.stats.thresholds import DEFAULT_THRESHOLDS, parse_thresholds
from callcenter.voicemail.ports import VoicemailFilter

logger = logging.getLogger(__name__)

CONSUMER_GROUP: Final = "stats"

#: The event types :meth:`StatsService.handle` acts on; the bus acknowledges the others unread (``only``).
HANDLED_EVENTS: Final = frozenset({CallEnded.event_type, CallbackStateChanged.event_type})
THRESHOLDS: Final = "thresholds"
#: How far back closed callbacks are loaded at start-up (a promise made then may end today).
CALLBACK_HORIZON: Final = timedelta(days=14)
OPEN_STATES: Final = frozenset(s for s in CallbackState if s.is_open)


class StatsService:
    """Live and historical statistics (see the module docstring).

    :param repo: interval rows and missed calls.
    :param clock: the time of snapshots and of "today".
    :param config: the metric definitions' parameters.
    :param zone: the time zone of "today" on the live board.
    :param late_alert_s: how long before its window ends an undialled promise is listed as at risk.
    """

    def __init__(
        self,
        repo: StatsRepository,
        clock: Clock,
        config: StatsConfig,
        *,
        zone: tzinfo = UTC,
        late_alert_s: float = 120.0,
    ) -> None:
        self._repo = repo
        self._clock = clock
        self.config = config
        self.zone = zone
        self.live = LiveStats(config=config, zone=zone, followups=FollowUps(late_alert_s=late_alert_s))
        self.feed: SnapshotFeed | None = None
        #: Calls ended since start-up by (queue, outcome): the Prometheus counters.
        self.ended_totals: dict[tuple[str, str], int] = {}
        self.thresholds: dict[str, dict[str, float]] = dict(DEFAULT_THRESHOLDS)
        self._unpublished_since: datetime | None = None

    # -- start-up -----------------------------------------------------------------------------------

    async def load_today(self) -> None:
        """Start the live board from today's stored rows and missed calls (before tailing the stream)."""
        since = self.live.roll(self._clock.now())
        rows = await self._repo.intervals(since, since + timedelta(days=2))
        missed = await self._repo.missed_since(since)
        self.live.load(rows, missed)
        self.live.mark_seen(await self._repo.applied_since(since))
        self.live.load_agents(await self._repo.answered_by_agent_since(since))

    async def load_thresholds(self) -> None:
        stored = await self._repo.get_setting(THRESHOLDS)
        if stored is not None:
            self.thresholds = parse_thresholds(stored)

    async def set_thresholds(self, body: Mapping[str, object], *, actor: str) -> dict[str, dict[str, float]]:
        """Replace the colour thresholds (every wallboard of this process shows them at once).

        :raises ValidationError: for an unknown figure or values in the wrong order.
        """
        thresholds = parse_thresholds(body)
        await self._repo.put_setting(THRESHOLDS, dict(thresholds), self._clock.now(), actor)
        self.thresholds = thresholds
        if self.feed is not None:
            self.feed.changed()
        return thresholds

    def set_service_levels(self, thresholds: Mapping[str, float]) -> None:
        """The queues' own service-level thresholds (applied to calls counted from now on)."""
        self.config = dataclasses.replace(self.config, thresholds=dict(thresholds))
        self.live.config = self.live.book.config = self.config

    async def load_callbacks(self, reader: CallbackReader) -> int:
        """Start the follow-up figures from the stored callbacks: every open one, and the closed ones
        requested in the last :data:`CALLBACK_HORIZON` (their promise may count today). Returns how many."""
        since = self.live.roll(self._clock.now())
        seen = 0
        for state in (*sorted(OPEN_STATES), None):
            cursor: str | None = None
            while True:
                page = await reader.list_callbacks(queue=None, state=state, cursor=cursor, limit=500)
                for callback in page.items:
                    if state is None and callback.requested_at < since - CALLBACK_HORIZON:
                        return seen
                    if state is None and callback.is_open:
                        continue  # loaded by its state already
                    by_customer = False
                    if callback.state is CallbackState.CANCELLED:
                        by_customer = cancelled_by_customer((await reader.get(callback.id)).changes)
                    self.live.followups.seed(callback, by_customer=by_customer)
                    self.live.queues.add(callback.queue)
                    seen += 1
                cursor = page.next
                if cursor is None:
                    break
        return seen

    async def load_sms(self, reader: SmsReader) -> int:
        """Start the SMS figures from today's stored sends, deliveries and opt-outs (a restart keeps
        them). Returns how many records were read."""
        since = self.live.roll(self._clock.now())
        day = await reader.day_activity(since)
        self.live.followups.seed_sms(day)
        return len(day.sent) + len(day.delivered) + len(day.opt_outs)

    async def load_voicemails(self, reader: VoicemailReader) -> int:
        """Start the voicemail figures from the stored voicemails: every one still without a transcript
        (waiting, or failed for good), and those recorded today. Returns how many."""
        since = self.live.roll(self._clock.now())
        seen = 0
        for status in (VoicemailStatus.RECORDED, VoicemailStatus.FAILED, None):
            cursor: str | None = None
            while True:
                page = await reader.list(VoicemailFilter(status=status), cursor=cursor, limit=500)
                for voicemail in page.items:
                    if status is None and voicemail.recorded_at < since:
                        return seen
                    if status is None and voicemail.status in (
                        VoicemailStatus.RECORDED,
                        VoicemailStatus.FAILED,
                    ):
                        continue  # loaded by its status already
                    self.live.followups.seed_voicemail(voicemail)
                    seen += 1
                cursor = page.next
                if cursor is None:
                    break
        return seen

    def know_queues(self, names: Iterable[str]) -> None:
        self.live.queues.update(names)

    def seed_agent(self, agent_id: str, state: AgentState, since: datetime, queues: tuple[str, ...]) -> None:
        self.live.set_agent(agent_id, state, since, queues)

    # -- events -------------------------------------------------------------------------------------

    async def observe(self, event: DomainEvent) -> None:
        """The live tail: fold ``event`` into the board and wake the feed if it showed a change."""
        if not self.live.apply(event):
            return
        if self._unpublished_since is None or event.occurred_at < self._unpublished_since:
            self._unpublished_since = event.occurred_at
        if isinstance(event, CallEnded):
            key = (event.queue or "", event.outcome.value)
            self.ended_totals[key] = self.ended_totals.get(key, 0) + 1
        if self.feed is not None:
            self.feed.changed()

    async def handle(self, delivery: Delivery) -> None:
        """The materialiser (consumer group :data:`CONSUMER_GROUP`): fold ended calls into the rows."""
        event = delivery.event
        if isinstance(event, CallEnded):
            await self._repo.materialise(ended_from_event(event), self.config)
        elif isinstance(event, CallbackStateChanged):
            reached = reached_from_event(event)
            if reached is not None:
                await self._repo.materialise_reach(reached, self.config)

    async def handle_many(self, deliveries: Sequence[Delivery]) -> None:
        """The materialiser's batches: each run of ended calls is folded in one transaction; a
        reaching between two runs keeps its place (:meth:`handle` one by one)."""
        run: list[EndedCall] = []
        for delivery in deliveries:
            if isinstance(delivery.event, CallEnded):
                run.append(ended_from_event(delivery.event))
                continue
            if run:
                await self._repo.materialise_many(run, self.config)
                run = []
            await self.handle(delivery)
        if run:
            await self._repo.materialise_many(run, self.config)

    # -- reading ------------------------------------------------------------------------------------

    def take_unpublished_since(self) -> datetime | None:
        """The time of the oldest event folded since the last call (the feed's delay marker), and reset."""
        since, self._unpublished_since = self._unpublished_since, None
        return since

    def snapshot(self) -> Snapshot:
        return self.live.snapshot(self._clock.now())

    def agent_figures(self, agent_id: str) -> tuple[dict[str, float | int | None], AgentState | None]:
        """An agent's own figures today and their live state (``None`` when the board never saw them)."""
        seen = self.live.agent_state(agent_id)
        return self.live.agent_figures(agent_id, self._clock.now()), seen.state if seen else None

    def check_queue(self, queue: str) -> None:
        """:raises NotFoundError: for a queue the board does not know."""
        if queue not in self.live.queues:
            raise NotFoundError(f"queue {queue!r} not found")

    async def history(
        self, flt: HistoryFilter, period: Period, *, by_queue: bool = True
    ) -> tuple[HistoryRow, ...]:
        """Rollups of the stored interval rows. :raises NotFoundError: for an unknown queue."""
        for queue in flt.queues or ():
            self.check_queue(queue)
        rows = await self._repo.intervals(flt.since, flt.until, list(flt.queues) if flt.queues else None)
        return rollup(rows, flt, period, by_queue=by_queue)

    async def missed_calls(
        self,
        since: datetime,
        until: datetime,
        *,
        queue: str | None,
        status: str | None,
        cursor: str | None,
        limit: int,
    ) -> Page[MissedCall]:
        HistoryFilter(since=since, until=until)  # checks the range
        if queue is not None:
            self.check_queue(queue)
        return await self._repo.missed_calls(
            since, until, queue=queue, status=status, cursor=cursor, limit=check_limit(limit)
        )

    async def daily(self, day: date | None = None) -> DailyReport:
        """The daily summary of a local day (default: today) from the stored interval rows."""
        day = day or self._clock.now().astimezone(self.zone).date()
        start, end = day_bounds(day, self.zone)
        rows = await self._repo.intervals(start, end)
        return daily_report(rows, day, self.zone)

    async def rebuild(self) -> int:
        """Rebuild every stored row from the stored calls, then restart the live board from them."""
        folded = await self._repo.rebuild(self.config)
        self.live.reset_counts()
        await self.load_today()
        if self.feed is not None:
            self.feed.changed()
        return folded
