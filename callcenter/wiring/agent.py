"""Wiring of the agent's worklist page: the worklist with its read models, and the page's live feed.

Part of the composition root: ``callcenter/app.py`` calls :func:`install_agent_page`. The worklist reads
the callbacks through the dispatcher's store, the callers' calls through the queue service, voicemails
(with their transcripts) through the voicemail service and the SMS thread through the SMS store; the
page's feed follows the event bus (a tail, like the wallboard's: every process sees every event).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from aiohttp import web
from redis import asyncio as aioredis
from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter.api.agent import WorklistSignal, install_agent_routes
from callcenter.api.worklist import WORKLIST
from callcenter.bus import EventBus
from callcenter.callbacks.worklist import TextLine, VoicemailNote, Worklist
from callcenter.clock import Clock
from callcenter.config import Settings
from callcenter.errors import NotFoundError
from callcenter.model.records import CallRecord
from callcenter.queue.ports import CallFilter
from callcenter.queue.service import QueueService
from callcenter.sms.records import Direction
from callcenter.store.redis_bus import RedisEventBus
from callcenter.store.redis_keys import RedisKeys
from callcenter.store.redis_tail import RedisEventTail
from callcenter.store.sql_sms import SqlSmsStore
from callcenter.voicemail.service import VoicemailService
from callcenter.wiring.dispatch import DispatchRuntime, dispatch_settings


class QueueAgents:
    """Agents' queues and callers' recent calls, read through the queue service."""

    def __init__(self, queue: QueueService) -> None:
        self._queue = queue

    async def queues_of(self, agent_id: str) -> tuple[str, ...]:
        return (await self._queue.get_agent(agent_id)).record.queues

    async def recent_calls(self, number: str, limit: int) -> Sequence[CallRecord]:
        return (await self._queue.list_calls(CallFilter(caller=number), cursor=None, limit=limit)).items


class VoicemailNotes:
    """A voicemail and its transcript, through the voicemail service."""

    def __init__(self, voicemails: VoicemailService) -> None:
        self._voicemails = voicemails

    async def voicemail(self, voicemail_id: str) -> VoicemailNote | None:
        try:
            voicemail = await self._voicemails.get(voicemail_id)
        except NotFoundError:
            return None
        transcript = await self._voicemails.transcript(voicemail_id)
        return VoicemailNote(
            id=voicemail.id,
            recorded_at=voicemail.recorded_at,
            duration_s=voicemail.duration_s,
            status=voicemail.status.value,
            transcript=transcript.text if transcript is not None else "",
            silent=voicemail.silent,
            urgency=voicemail.urgency,
        )


class SmsThread:
    """The texts with a number, from the SMS store (whether or not this process sends texts)."""

    def __init__(self, store: SqlSmsStore) -> None:
        self._store = store

    async def thread(self, number: str, limit: int) -> Sequence[TextLine]:
        page = await self._store.messages(number=number, needs_person=None, cursor=None, limit=limit)
        return tuple(
            TextLine(
                id=m.id,
                at=m.created_at,
                direction="in" if m.direction is Direction.INBOUND else "out",
                text=m.text,
                status=m.status.value,
            )
            for m in reversed(page.items)  # newest first from the store; a thread reads oldest first
        )


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
        texts=SmsThread(SqlSmsStore(engine)),
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
