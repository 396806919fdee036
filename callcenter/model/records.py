"""Records the store keeps, as plain frozen values (pure).

Repositories return these, never ORM rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum

from callcenter.model.vocabulary import AgentState, CallOutcome, EntryPoint, Role


@dataclass(frozen=True, kw_only=True, slots=True)
class CallRecord:
    """One inbound call and what became of it.

    ``caller`` is E.164 where it parses, the raw caller id otherwise. ``outcome`` is ``None`` while
    the call is live. ``closed_at`` is set on a missed call once the caller was reached later.
    """

    id: str
    channel_id: str
    linkedid: str
    entry_point: EntryPoint
    caller: str = ""
    caller_name: str = ""
    dialled: str = ""
    queue: str | None = None
    arrived_at: datetime
    queued_at: datetime | None = None
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    wait_s: float | None = None
    talk_s: float | None = None
    position: int | None = None
    agent_id: str | None = None
    outcome: CallOutcome | None = None
    reconciled: bool = False
    closed_at: datetime | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class CallEvent:
    """One entry of a call's timeline (``GET /api/v1/calls/{id}``): what happened, when.

    ``kind`` is a short name such as ``queued`` or ``agent_ringing``; ``detail`` is JSON data.
    """

    id: int | None = None
    call_id: str
    at: datetime
    kind: str
    detail: dict[str, object] = field(default_factory=dict)


class ExitAction(StrEnum):
    """What a queue does with a caller it will not serve (after hours, max wait, nobody logged in).

    ``hangup`` plays a short message, then hangs up; ``continue`` hands the channel back to the
    dialplan at its next priority; ``voicemail`` takes a message (over ARI; where no voicemail flow
    runs, it falls back to ``hangup``).
    """

    HANGUP = "hangup"
    CONTINUE = "continue"
    VOICEMAIL = "voicemail"


@dataclass(frozen=True, kw_only=True, slots=True)
class QueueRecord:
    """A queue as configured: its service-level and short-abandon thresholds and limits.

    ``business_hours`` maps a weekday (``mon`` .. ``sun``) to its open intervals in local time
    (``"09:00-17:30"``) in ``time_zone``; ``None`` is always open. ``holidays`` are local dates on
    which the queue is closed all day. ``callcenter.queue.hours`` reads and checks both.
    ``no_agents_action`` also applies when the queue is full.
    """

    name: str
    title: str = ""
    max_wait_s: int = 600
    join_empty: bool = False
    service_level_s: int = 20
    short_abandon_s: int = 5
    max_callers: int | None = None
    business_number: str | None = None
    time_zone: str = "UTC"
    business_hours: Mapping[str, tuple[str, ...]] | None = None
    holidays: tuple[date, ...] = ()
    after_hours_action: ExitAction = ExitAction.HANGUP
    timeout_action: ExitAction = ExitAction.HANGUP
    no_agents_action: ExitAction = ExitAction.HANGUP
    ring_timeout_s: int = 15
    wrap_up_s: int = 10
    max_misses_before_pause: int = 3


@dataclass(frozen=True, kw_only=True, slots=True)
class AgentRecord:
    """An agent, the endpoint we ring, and the queues they serve."""

    id: str
    name: str
    endpoint: str
    state: AgentState = AgentState.LOGGED_OUT
    queues: tuple[str, ...] = ()
    state_since: datetime | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ApiToken:
    """An API token as stored: never the secret itself, only its hash."""

    id: str
    role: Role
    agent_id: str | None = None
    label: str = ""
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None

    def is_valid_at(self, now: datetime) -> bool:
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or now < self.expires_at


@dataclass(frozen=True, kw_only=True, slots=True)
class AuditEntry:
    """One write made by a supervisor or admin (or the CLI), append-only."""

    id: int | None = None
    at: datetime
    actor: str
    role: Role | None
    action: str
    target: str = ""
    detail: dict[str, object] = field(default_factory=dict)


def queue_settings(queue: QueueRecord) -> dict[str, object]:
    """A queue's settings as plain JSON-ready values: the store's row and the API's body both use it."""
    hours = queue.business_hours
    return {
        "name": queue.name,
        "title": queue.title,
        "max_wait_s": queue.max_wait_s,
        "join_empty": queue.join_empty,
        "service_level_s": queue.service_level_s,
        "short_abandon_s": queue.short_abandon_s,
        "max_callers": queue.max_callers,
        "business_number": queue.business_number,
        "time_zone": queue.time_zone,
        "business_hours": None if hours is None else {day: list(spans) for day, spans in hours.items()},
        "holidays": [day.isoformat() for day in queue.holidays],
        "after_hours_action": queue.after_hours_action.value,
        "timeout_action": queue.timeout_action.value,
        "no_agents_action": queue.no_agents_action.value,
        "ring_timeout_s": queue.ring_timeout_s,
        "wrap_up_s": queue.wrap_up_s,
        "max_misses_before_pause": queue.max_misses_before_pause,
    }
