"""The ``call-outcome`` AGI script of ``app_queue`` sites, and the recorder behind it (edge).

``dialplan/extensions_callcenter.conf`` runs ``AGI(agi://<host>:4573/call-outcome)`` from a hang-up
handler pushed when the caller enters ``callcenter-appqueue``. :class:`CallOutcomeScript` reads the
channel in one command (:data:`READ_VARIABLES`), :func:`read_report` makes the typed
:class:`~callcenter.queue.agi_outcomes.AppQueueReport`, and :class:`CallOutcomeRecorder` decides the
outcome with the same pure detection as the ARI path, stores the call, its timeline and publishes
``CallEnded``. The classic AGI program (``callcenter.agi.classic``) reads the same variables and
hands them to ``POST /api/v1/agi/call-outcome``, which uses the same :func:`read_report` and recorder.

Reporting twice for the same call (two hooks, a retry) records one outcome: the call is keyed by
its ``linkedid`` and a decided call is never decided again.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Final

from callcenter.agi import protocol
from callcenter.agi.channel import AgiChannel
from callcenter.agi.protocol import AgiProtocolError
from callcenter.agi.server import AgiSession
from callcenter.asterisk_names import (
    CALLBACK_ACCEPTED,
    VAR_ARRIVED_AT,
    VAR_CALLBACK,
    VAR_EXIT_KEY,
    VAR_EXIT_POSITION,
    VAR_FAILED,
    VAR_OUTCOME,
    VAR_QUEUE,
    VAR_QUEUE_ENTERED_AT,
    VAR_QUEUE_JOINED_AT,
    VAR_QUEUE_LEFT_AT,
    VAR_VOICEMAIL,
    VOICEMAIL_RECORDED,
)
from callcenter.bus import EventBus
from callcenter.clock import Clock
from callcenter.errors import CallCenterError, NotFoundError, ValidationError
from callcenter.model.paging import MAX_LIMIT
from callcenter.model.records import CallRecord
from callcenter.model.vocabulary import CallOutcome
from callcenter.queue.agi_outcomes import AppQueueReport, QueueStatus, decide, timeline
from callcenter.queue.detection import (
    DEFAULT_SHORT_ABANDON_S,
    CallTrack,
    close_missed_calls,
    to_call_ended,
    to_record,
)
from callcenter.queue.ports import AgentRepository, CallRepository, QueueRepository

logger = logging.getLogger(__name__)

#: Now on Asterisk's clock, Unix seconds with milliseconds (``%3q`` is Asterisk's own conversion).
NOW_EXPRESSION: Final = "STRFTIME(,,%s.%3q)"

#: What the script reads: report key -> variable or dialplan function. The keys are also the
#: fields of ``POST /api/v1/agi/call-outcome`` (``variables``).
READ_VARIABLES: Final[Mapping[str, str]] = {
    "UNIQUEID": "UNIQUEID",
    "LINKEDID": "CHANNEL(linkedid)",
    "CALLER": "CALLERID(num)",
    "CALLER_NAME": "CALLERID(name)",
    "DNID": "CALLERID(dnid)",
    "QUEUESTATUS": "QUEUESTATUS",
    "ABANDONED": "ABANDONED",
    "MEMBERINTERFACE": "MEMBERINTERFACE",
    "QEHOLDTIME": "QEHOLDTIME",
    "QUEUEWAIT_MS": "QUEUEWAIT_MS",
    "QUEUEPOSITION": "QUEUEPOSITION",
    "DIALSTATUS": "DIALSTATUS",
    "DIALEDPEERNAME": "DIALEDPEERNAME",
    VAR_QUEUE: VAR_QUEUE,
    VAR_ARRIVED_AT: VAR_ARRIVED_AT,
    VAR_QUEUE_JOINED_AT: VAR_QUEUE_JOINED_AT,
    VAR_QUEUE_ENTERED_AT: VAR_QUEUE_ENTERED_AT,
    VAR_QUEUE_LEFT_AT: VAR_QUEUE_LEFT_AT,
    VAR_EXIT_KEY: VAR_EXIT_KEY,
    VAR_EXIT_POSITION: VAR_EXIT_POSITION,
    VAR_CALLBACK: VAR_CALLBACK,
    VAR_FAILED: VAR_FAILED,
    VAR_VOICEMAIL: VAR_VOICEMAIL,
    "NOW": NOW_EXPRESSION,
}
#: The longest value accepted for one variable.
MAX_VALUE_CHARS: Final = 1024


def read_report(values: Mapping[str, str], *, received_at: datetime) -> AppQueueReport:
    """The typed report of what the script read (keys of :data:`READ_VARIABLES`).

    Unset variables read as ``""``; a time that does not parse reads as unknown. ``ended_at`` is
    Asterisk's ``NOW``, or ``received_at`` without it.

    :raises ValidationError: for an unknown key, a value too long, or no channel id at all.
    """
    unknown = sorted(set(values) - set(READ_VARIABLES))
    if unknown:
        raise ValidationError(f"unknown variable(s): {', '.join(unknown)}")
    for key, value in values.items():
        if len(value) > MAX_VALUE_CHARS:
            raise ValidationError(f"{key} is longer than {MAX_VALUE_CHARS} characters")

    def text(key: str) -> str:
        return values.get(key, "").strip()

    uniqueid, linkedid = text("UNIQUEID"), text("LINKEDID")
    if not uniqueid and not linkedid:
        raise ValidationError("UNIQUEID or LINKEDID is required")
    raw_status = text("QUEUESTATUS").upper()
    answered = bool(text("MEMBERINTERFACE")) or bool(text("QEHOLDTIME"))
    return AppQueueReport(
        linkedid=linkedid or uniqueid,
        channel_id=uniqueid or linkedid,
        caller=values.get("CALLER", ""),
        caller_name=values.get("CALLER_NAME", ""),
        dialled=text("DNID"),
        queue=text(VAR_QUEUE) or None,
        status=QueueStatus(raw_status) if raw_status in QueueStatus.__members__ else None,
        status_raw=raw_status,
        abandoned=text("ABANDONED").upper() == "TRUE",
        member_interface=text("MEMBERINTERFACE") or None,
        dial_status=text("DIALSTATUS").upper(),
        dialled_peer=text("DIALEDPEERNAME") or None,
        position=_int(text("QUEUEPOSITION") or text(VAR_EXIT_POSITION)),
        arrived_at=_epoch(text(VAR_ARRIVED_AT)),
        joined_at=_epoch(text(VAR_QUEUE_JOINED_AT)),
        entered_at=_epoch(text(VAR_QUEUE_ENTERED_AT)),
        left_at=_epoch(text(VAR_QUEUE_LEFT_AT)),
        hold_s=_hold_s(text("QUEUEWAIT_MS"), text("QEHOLDTIME")) if answered else None,
        exit_key=text(VAR_EXIT_KEY) or None,
        callback_accepted=text(VAR_CALLBACK).lower() == CALLBACK_ACCEPTED,
        voicemail_recorded=text(VAR_VOICEMAIL).lower() == VOICEMAIL_RECORDED,
        failure=text(VAR_FAILED),
        ended_at=_epoch(text("NOW")) or received_at,
    )


def _endpoint_key(endpoint: str) -> tuple[str, str]:
    """``PJSIP/1001`` and ``pjsip/1001`` are one endpoint: the technology is case-insensitive."""
    tech, _, resource = endpoint.strip().partition("/")
    return tech.upper(), resource


def _epoch(raw: str) -> datetime | None:
    """``1795459766.123`` (Unix seconds on Asterisk's clock) as a UTC time; ``None`` if it is not one."""
    try:
        seconds = float(raw)
    except ValueError:
        return None
    if not 0 < seconds < 32_503_680_000:  # before the year 3000: anything else is garbage
        return None
    return datetime.fromtimestamp(seconds, UTC)


def _int(raw: str) -> int | None:
    try:
        value = int(raw)
    except ValueError:
        return None
    return value if value > 0 else None


def _hold_s(wait_ms: str, hold_time: str) -> float | None:
    """The wait before the answer: ``QUEUEWAIT_MS`` (newer releases) or ``QEHOLDTIME`` (seconds)."""
    for raw, scale in ((wait_ms, 1000.0), (hold_time, 1.0)):
        try:
            value = float(raw) / scale
        except ValueError:
            continue
        if value >= 0:
            return value
    return None


class CallOutcomeRecorder:
    """Decides, stores and publishes the outcome of a reported ``app_queue`` call, once per call.

    Depends on the queue's ports only. Calls are recorded one at a time in this process; another
    process reporting the same call at the same moment cannot add a second outcome either (the
    repository keeps a decided outcome, and ``CallEnded`` carries the call id as its event id).

    :param queues: where a queue's ``short_abandon_s`` is read (the default applies to queues not
        configured here, as is usual on ``app_queue`` sites).
    :param agents: where the member who answered (``MEMBERINTERFACE``, e.g. ``PJSIP/1001``) is
        looked up by endpoint, so the call names our agent id as ARI calls do; a member who is no
        agent of ours (or without this repository) is named by the interface itself.
    """

    def __init__(
        self,
        calls: CallRepository,
        bus: EventBus,
        clock: Clock,
        *,
        queues: QueueRepository | None = None,
        agents: AgentRepository | None = None,
        default_region: str = "US",
    ) -> None:
        self._calls = calls
        self._bus = bus
        self._clock = clock
        self._queues = queues
        self._agents = agents
        self._region = default_region
        self._lock = asyncio.Lock()

    def now(self) -> datetime:
        return self._clock.now()

    async def record(self, report: AppQueueReport) -> CallRecord:
        """Record the call; a call already decided is returned as stored, and nothing is published.

        :raises StoreUnavailableError: when the call cannot be stored (the caller may retry).
        """
        async with self._lock:
            existing = await self._stored(report.call_id)
            if existing is not None and existing.outcome is not None:
                logger.info(
                    "call %s: outcome already recorded (%s); report ignored", existing.id, existing.outcome
                )
                return existing
            short_abandon_s = await self._short_abandon_s(report.queue)
            if report.member_interface is not None:
                agent_id = await self._agent_of(report.member_interface)
                report = dataclasses.replace(report, member_interface=agent_id)
            track = decide(report, short_abandon_s=short_abandon_s, default_region=self._region)
            record = to_record(track)
            await self._calls.upsert(record)
            await self._timeline(report, record)
            await self._publish(track)
            if record.outcome is CallOutcome.ANSWERED and record.answered_at is not None:
                await self._close_missed(record.caller, record.answered_at)
        logger.info(
            "call %s: %s from app_queue %s (QUEUESTATUS=%s)",
            record.id,
            record.outcome,
            record.queue,
            report.status_raw or "unset",
        )
        return record

    async def _stored(self, call_id: str) -> CallRecord | None:
        try:
            return await self._calls.get(call_id)
        except NotFoundError:
            return None

    async def _short_abandon_s(self, queue: str | None) -> float:
        if self._queues is None or not queue:
            return DEFAULT_SHORT_ABANDON_S
        try:
            return float((await self._queues.get(queue)).short_abandon_s)
        except NotFoundError:
            return DEFAULT_SHORT_ABANDON_S
        except CallCenterError as exc:
            logger.warning("queue %s: settings not read (%s); default short-abandon threshold", queue, exc)
            return DEFAULT_SHORT_ABANDON_S

    async def _agent_of(self, interface: str) -> str:
        """Our agent whose endpoint is ``interface`` (technology case-insensitive), else ``interface``."""
        if self._agents is None:
            return interface
        wanted = _endpoint_key(interface)
        cursor: str | None = None
        try:
            while True:
                page = await self._agents.list(cursor=cursor, limit=MAX_LIMIT)
                for agent in page.items:
                    if _endpoint_key(agent.endpoint) == wanted:
                        return agent.id
                if page.next is None:
                    return interface
                cursor = page.next
        except CallCenterError as exc:
            logger.warning("agent of member %s not looked up (%s): named by the interface", interface, exc)
            return interface

    async def _timeline(self, report: AppQueueReport, record: CallRecord) -> None:
        try:
            for at, kind, detail in timeline(report, record):
                await self._calls.append_event(record.id, at, kind, detail)
        except CallCenterError as exc:
            logger.warning("call %s: timeline not stored: %s", record.id, exc)

    async def _publish(self, track: CallTrack) -> None:
        event = to_call_ended(track)
        try:
            await self._bus.publish(event)
        except Exception as exc:
            # The store has the call; consumers needing every event rebuild from it.
            logger.error("event bus: call_ended %s not published: %s", event.event_id, exc)

    async def _close_missed(self, caller: str, reached_at: datetime) -> None:
        try:
            missed = await self._calls.open_missed(caller, before=reached_at)
            for closed in close_missed_calls(missed, caller=caller, reached_at=reached_at):
                await self._calls.upsert(closed)
        except CallCenterError as exc:
            logger.warning("closing the missed calls of a caller failed: %s", exc)


class CallOutcomeScript:
    """The FastAGI ``call-outcome`` script: read the channel, record, tell the channel the outcome."""

    def __init__(self, recorder: CallOutcomeRecorder) -> None:
        self._recorder = recorder

    async def __call__(self, session: AgiSession) -> None:
        channel = AgiChannel(session)
        names = tuple(READ_VARIABLES.values())
        read = await channel.get_vars(names)
        values = {key: read[name] for key, name in READ_VARIABLES.items()}
        report = read_report(values, received_at=self._recorder.now())
        record = await self._recorder.record(report)
        if record.outcome is not None:
            # SET VARIABLE works on a hung-up channel too (this runs in a hang-up handler).
            with contextlib.suppress(AgiProtocolError, ConnectionError):
                await session.send(protocol.set_variable(VAR_OUTCOME, record.outcome.value))
