"""The queue's telephony commands over ARI: ``callcenter.queue.ports.CallControl`` (edge)."""

from __future__ import annotations

import logging
import uuid

from callcenter.ari.client import AriClient, AriRequestError, AriServerError
from callcenter.ari.translate import AGENT_LEG_TAG
from callcenter.errors import ChannelGoneError, NotFoundError
from callcenter.queue.ports import BridgeKind

logger = logging.getLogger(__name__)


def new_agent_channel_id() -> str:
    """A channel id for an agent leg, chosen by us before the originate."""
    return f"{AGENT_LEG_TAG}-{uuid.uuid4().hex}"


class AriCallControl:
    """:class:`~callcenter.queue.ports.CallControl` on an :class:`AriClient`.

    :param app: our Stasis application, which originated agent legs enter when answered.
    """

    def __init__(self, client: AriClient, app: str) -> None:
        self._client = client
        self._app = app

    async def answer(self, channel_id: str) -> None:
        await self._client.answer(channel_id)

    async def create_bridge(self, kind: BridgeKind, name: str) -> str:
        return (await self._client.create_bridge(kind.value, name=name)).id

    async def add_to_bridge(self, bridge_id: str, channel_id: str) -> None:
        await self._client.add_channel(bridge_id, channel_id)

    async def start_hold_music(self, bridge_id: str) -> None:
        await self._client.start_moh(bridge_id)

    async def destroy_bridge(self, bridge_id: str) -> None:
        try:
            await self._client.destroy_bridge(bridge_id)
        except NotFoundError:
            logger.debug("bridge %s was already gone", bridge_id)

    async def ring_agent(
        self,
        endpoint: str,
        *,
        call_id: str,
        timeout_s: float,
        caller_id: str,
        channel_id: str | None = None,
    ) -> str:
        """Originate to ``endpoint`` with app args ``agent,<call_id>``; return the agent channel's id.

        :param channel_id: the id the new channel gets (default: a fresh one). Events about the leg
            (``Dial``, ``ChannelDestroyed`` of a busy endpoint) can reach the link before the REST
            answer does; a caller that registers the leg under this id before calling sees them all.
        :raises ChannelGoneError: when Asterisk does not know the endpoint.
        """
        leg_id = channel_id or new_agent_channel_id()
        try:
            channel = await self._client.originate(
                endpoint,
                app=self._app,
                app_args=(AGENT_LEG_TAG, call_id),
                channel_id=leg_id,
                # ARI's timeout is whole seconds; never round a short ring down to "no timeout".
                timeout_s=max(1, round(timeout_s)),
                caller_id=caller_id,
            )
        except AriRequestError as exc:
            # 400 "Endpoint must be specified" / "Invalid endpoint specified": no such endpoint.
            if exc.status == 400 and "endpoint" in exc.message.lower():
                raise ChannelGoneError(f"agent endpoint {endpoint!r}: {exc.message}") from exc
            raise
        except AriServerError as exc:
            # An unknown endpoint answers 500 "Allocation failed", as does a real failure: ask.
            if exc.status == 500 and not await self._endpoint_exists(endpoint):
                raise ChannelGoneError(f"agent endpoint {endpoint!r} does not exist") from exc
            raise
        return channel.id

    async def hangup(self, channel_id: str) -> None:
        try:
            await self._client.hangup(channel_id, reason="normal")
        except ChannelGoneError:
            logger.debug("channel %s was already gone", channel_id)

    async def continue_in_dialplan(self, channel_id: str) -> None:
        await self._client.continue_in_dialplan(channel_id)

    async def play(self, channel_id: str, *sounds: str) -> None:
        if sounds:
            await self._client.play(channel_id, [f"sound:{sound}" for sound in sounds])

    async def live_channel_ids(self) -> frozenset[str]:
        return frozenset(channel.id for channel in await self._client.list_channels())

    async def _endpoint_exists(self, endpoint: str) -> bool:
        technology, slash, resource = endpoint.partition("/")
        if not slash or not technology or not resource or "/" in resource:
            return True  # not a plain Tech/resource (e.g. Local/...@ctx): cannot tell
        try:
            await self._client.get_endpoint(technology, resource)
        except NotFoundError:
            return False
        return True
