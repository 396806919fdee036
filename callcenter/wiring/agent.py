"""Wiring of the agent's worklist page: the worklist with its read models, and the page's live feed.

Part of the composition root: ``callcenter/app.py`` calls :func:`install_agent_page`. The worklist reads
the callbacks through the dispatcher's store, the callers' calls through the queue service, voicemails
(with their transcripts) through the voicemail service and the SMS thread through the SMS store; the
page's feed follows the event bus (a tail, like the wallboard's: every process sees every event).
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping, Sequence
from typing import Protocol

from aiohttp import web
from redis import asyncio as aioredis
from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter.api.agent import WorklistSignal, install_agent_routes
from callcenter.api.worklist import WORKLIST
from callcenter.bus import EventBus
from callcenter.callbacks.worklist import TextLine, VoicemailNote, Worklist
from callcenter.clock import Clock
from callcenter.config import Settings
from callcenter.model.records import CallRecord
from callcenter.queue.service import QueueService
from callcenter.sms.records import Direction
from callcenter.store.redis_bus import RedisEventBus
from callcenter.store.redis_keys import RedisKeys
from callcenter.store.redis_tail import RedisEventTail
from callcenter.store.sql_sms import SqlSmsStore
from callcenter.voicemail.records import Voicemail, VoicemailTranscript
from callcenter.voicemail.service import VoicemailService
from callcenter.wiring.dispatch import DispatchRuntime, dispatch_settings


class QueueAgents:
    """Agents' queues and callers' recent calls, read through the queue service."""

    def __init__(self, queue: QueueService) -> None:
        self._queue = queue

    async def queues_of(self, agent_id: str) -> tuple[str, ...]:
        return (await self._queue.get_agent(agent_id)).record.queues

    async def recent_calls_of(
        self, numbers: Collection[str], limit: int
    ) -> Mapping[str, Sequence[CallRecord]]:
        return await self._queue.recent_calls_of(numbers, limit)


class _VoicemailsWithTranscripts(Protocol):
    async def with_transcripts(
        self, voicemail_ids: Collection[str]
    ) -> dict[str, tuple[Voicemail, VoicemailTranscript | None]]: ...


class VoicemailNotes:
    """Voicemails and their transcripts, through the voicemail service (or its repository)."""

    def __init__(self, voicemails: _VoicemailsWithTranscripts) -> None:
        self._voicemails = voicemails

    async def voicemails(self, voicemail_ids: Collection[str]) -> Mapping[str, VoicemailNote]:
        return {
            voicemail.id: VoicemailNote(
                id=voicemail.id,
                recorded_at=voicemail.recorded_at,
                duration_s=voicemail.duration_s,
                status=voicemail.status.value,
                transcript=transcript.text if transcript is not None else "",
                silent=voicemail.silent,
                urgency=voicemail.urgency,
            )
            for voicemail, transcript in (await self._voicemails.with_transcripts(voicemail_ids)).values()
        }


class SmsThreads:
    """The texts with numbers, from the SMS store (whether or not this process sends texts)."""

    def __init__(self, store: SqlSmsStore) -> None:
        self._store = store

    async def threads(self, numbers: Collection[str], limit: int) -> Mapping[str, Sequence[TextLine]]:
        return {
            number: tuple(
                TextLine(
                    id=m.id,
                    at=m.created_at,
                    direction="in" if m.direction is Direction.INBOUND else "out",
                    text=m.text,
                    status=m.status.value,
                )
                for m in reversed(messages)  # newest first from the store; a thread reads oldest first
            )
            for number, messages in (await self._store.latest_of(numbers, limit)).items()
        }


def install_agent_page(
    app: web.Application,
    settings: Settings,
    *,
    dispatch: DispatchRuntime,
    queue: QueueService,
    voicemails: VoicemailService,
    engine: AsyncEngine,
    bus: EventBus,
    redis: aioredis.Redis,
    keys: RedisKeys,
    clock: Clock,
) -> Worklist:
    """The worklist (as ``app[WORKLIST]``), the page's routes and the bus tail feeding its feed."""
    agents = QueueAgents(queue)
    worklist = Worklist(
        dispatch.store,
        agents,
        agents,
        clock,
        sources=dispatch.sources,
        voicemails=VoicemailNotes(voicemails),
        texts=SmsThreads(SqlSmsStore(engine)),
        publish=bus.publish,
        dispatch=dispatch_settings(settings),
        callbacks=dispatch.callbacks,
    )
    app[WORKLIST] = worklist
    signal = WorklistSignal()
    tail = RedisEventTail(redis, keys, bus=bus if isinstance(bus, RedisEventBus) else None)

    async def follow() -> None:
        never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await tail.follow(await tail.position(), signal.on_event, stop=never)

    install_agent_routes(app, signal=signal, clock=clock, tail=follow)
    return worklist
