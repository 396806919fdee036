"""Ports of the statistics feature: where interval rows and the missed-call list are kept, and the
live tail of the event stream."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, Protocol

from callcenter.callbacks.service import CallbackDetail
from callcenter.model.callbacks import Callback
from callcenter.model.events import DomainEvent
from callcenter.model.paging import Page
from callcenter.model.vocabulary import CallbackState
from callcenter.sms.ports import SmsDay
from callcenter.stats.definitions import Counts, EndedCall, StatsConfig
from callcenter.stats.intervals import IntervalKey, MissedCall, Reached
from callcenter.voicemail.ports import VoicemailFilter
from callcenter.voicemail.records import Voicemail


class StatsRepository(Protocol):
    """Interval rows per queue and the missed-call list, folded from ended calls."""

    async def materialise(self, call: EndedCall, config: StatsConfig) -> bool:
        """Fold one ended call once (idempotent); ``False`` when it was folded before."""
        ...

    async def materialise_many(self, calls: Sequence[EndedCall], config: StatsConfig) -> int:
        """Fold ``calls`` in order, each once, all or nothing; return how many were new."""
        ...

    async def materialise_reach(self, reached: Reached, config: StatsConfig) -> int:
        """Close the open missed calls a connected callback reached (idempotent); return how many."""
        ...

    async def rebuild(self, config: StatsConfig) -> int:
        """Replace every row by the fold of the stored calls; return how many calls were folded."""
        ...

    async def intervals(
        self, since: datetime, until: datetime, queues: Sequence[str] | None = None
    ) -> tuple[tuple[IntervalKey, Counts], ...]:
        """Rows whose start lies in ``[since, until)``, by start then queue."""
        ...

    async def missed_calls(
        self,
        since: datetime,
        until: datetime,
        *,
        queue: str | None = None,
        status: str | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> Page[MissedCall]:
        """Missed calls that ended in ``[since, until)``, newest first. :raises ValidationError: bad cursor."""
        ...

    async def missed_since(self, since: datetime) -> tuple[MissedCall, ...]:
        """Every missed call that ended at or after ``since``."""
        ...

    async def get_setting(self, name: str) -> dict[str, Any] | None:
        """A wallboard setting's JSON document, ``None`` when never set."""
        ...

    async def put_setting(self, name: str, value: dict[str, Any], at: datetime, by: str) -> None:
        """Replace a wallboard setting."""
        ...

    async def answered_by_agent_since(self, since: datetime) -> dict[str, tuple[int, float]]:
        """Per agent: answered calls folded into the rows that ended at or after ``since``, and their
        talk seconds."""
        ...

    async def applied_since(self, since: datetime) -> tuple[str, ...]:
        """Ids of the folded calls that ended at or after ``since``."""
        ...


#: Called with each event of the live tail; never raises into the tail.
EventSink = Callable[[DomainEvent], Awaitable[None]]


class CallbackReader(Protocol):
    """The stored callbacks the live board starts from (``CallbackService``)."""

    async def list_callbacks(
        self, *, queue: str | None, state: CallbackState | None, cursor: str | None, limit: int
    ) -> Page[Callback]:
        """Callbacks newest request first."""
        ...

    async def get(self, callback_id: str) -> CallbackDetail:
        """One callback with its stored changes."""
        ...


class VoicemailReader(Protocol):
    """The stored voicemails the live board starts from (``VoicemailService``)."""

    async def list(self, flt: VoicemailFilter, *, cursor: str | None, limit: int) -> Page[Voicemail]:
        """Voicemails newest first."""
        ...


class SmsReader(Protocol):
    """The day's stored texts and opt-outs the live board starts from (``SmsEngine``)."""

    async def day_activity(self, since: datetime) -> SmsDay:
        """Sends, deliveries and opt-outs since ``since``."""
        ...


class EventTail(Protocol):
    """Every event published from now on, to every process that tails (fan-out, not a consumer group)."""

    async def position(self) -> str:
        """The id of the newest event now (tail from here after loading the stored state)."""
        ...

    async def follow(self, after: str, sink: EventSink, *, stop: Awaitable[object]) -> None:
        """Hand each event published after ``after`` to ``sink`` until ``stop`` completes."""
        ...
