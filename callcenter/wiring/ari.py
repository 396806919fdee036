"""Wiring of the ARI link of one Asterisk: the lease, our Stasis application, callback offers and voicemail.

Part of the composition root: ``callcenter/app.py`` calls :func:`ari_link`.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Final

import aiohttp
from redis import asyncio as aioredis
from yarl import URL

from callcenter.ari.client import AriClient
from callcenter.ari.link import AriLink
from callcenter.ari.offers import AriCallbackOffers, ari_channels
from callcenter.ari.stasis import StasisDispatcher
from callcenter.ari.wsrest import WebSocketRest
from callcenter.callbacks.service import CallbackService
from callcenter.clock import Clock
from callcenter.config import AriSettings, Settings
from callcenter.queue.service import QueueService
from callcenter.store.redis_keys import RedisKeys
from callcenter.store.redis_lease import RedisLease, default_owner_id
from callcenter.voicemail.capture import AriVoicemailTaker
from callcenter.voicemail.service import VoicemailService
from ivr.flows.callback_offer import FlowSettings
from ivr.voicemail import VoicemailFlow

if TYPE_CHECKING:
    from callcenter.app import Store

logger = logging.getLogger(__name__)


#: Lifetime of the ARI link's lease; it is renewed every third of it.
ARI_LEASE_TTL_MS: Final = 10_000


def ari_lease_role(settings: AriSettings) -> str:
    """The lease name of the ARI link of one Asterisk: one process per Asterisk holds its events socket."""
    assert settings.url is not None
    url = URL(settings.url)
    return f"ari-link.{url.host or 'asterisk'}.{url.port or 0}.{settings.app}"


def ari_link(
    settings: Settings,
    session: aiohttp.ClientSession,
    client: AriClient,
    redis: aioredis.Redis,
    keys: RedisKeys,
    queue: QueueService,
    callbacks: CallbackService,
    voicemails: VoicemailService,
    store: Store,
    clock: Clock,
    stack: contextlib.AsyncExitStack,
) -> tuple[AriLink, AriVoicemailTaker]:
    """The ARI link feeding our queue, under the lease, with callback offers and voicemail hooked in."""
    dispatcher = StasisDispatcher(queue, client, default_region=settings.default_region)
    lease = RedisLease(redis, keys, ari_lease_role(settings.ari), default_owner_id(), ARI_LEASE_TTL_MS)
    offers: AriCallbackOffers | None = None
    if settings.callback.ivr_offers:
        offers = AriCallbackOffers(
            ari_channels(client, dispatcher),
            queue,
            callbacks,
            store.queues,
            every_s=settings.callback.announce_every_s,
            settings=FlowSettings(voicemail_key=settings.voicemail.key),
        )
        queue.add_step_hook(offers.on_step)
        stack.push_async_callback(offers.close)

    async def resync() -> None:
        await dispatcher.filter_events(settings.ari.app)
        # A process taking the lease over first adopts the calls its predecessor queued (they
        # keep their place and wait), so the resync does not re-queue them as new arrivals.
        await queue.take_back()
        await dispatcher.resync()
        if offers is not None:
            await offers.adopt(queue)  # restored callers are not queued again: no step starts them

    rest: WebSocketRest | None = None
    if settings.ari.rest_over_websocket:
        rest = WebSocketRest()
        client.use_websocket(rest)  # the queue's, the flows' and the dispatcher's requests
    link = AriLink(session, settings.ari, dispatcher.on_event, on_connected=resync, lease=lease, rest=rest)
    flow = VoicemailFlow(max_s=settings.voicemail.max_s, max_silence_s=settings.voicemail.max_silence_s)
    taker = AriVoicemailTaker(client, dispatcher, queue, voicemails, clock, flow)
    queue.use_voicemail(taker)
    return link, taker
