"""A CallControl for processes with no Asterisk: every command refused (service layer)."""

from __future__ import annotations

from callcenter.errors import AsteriskUnavailableError
from callcenter.queue.ports import BridgeKind


class NoPbxCallControl:
    """``CallControl`` of a process with no Asterisk (the CLI, or ``serve`` without ``CALLCENTER_ARI_URL``).

    Every command is refused with :class:`AsteriskUnavailableError`: without a PBX nothing can be done
    to a channel, and saying otherwise would be a lie.
    """

    def __init__(self, reason: str = "no Asterisk is configured") -> None:
        self._reason = reason

    async def _refuse(self) -> None:
        raise AsteriskUnavailableError(self._reason)

    async def answer(self, channel_id: str) -> None:
        await self._refuse()

    async def create_bridge(self, kind: BridgeKind, name: str) -> str:
        await self._refuse()
        return ""

    async def add_to_bridge(self, bridge_id: str, channel_id: str) -> None:
        await self._refuse()

    async def start_hold_music(self, bridge_id: str) -> None:
        await self._refuse()

    async def destroy_bridge(self, bridge_id: str) -> None:
        await self._refuse()

    async def ring_agent(
        self, endpoint: str, *, call_id: str, timeout_s: float, caller_id: str, channel_id: str | None = None
    ) -> str:
        await self._refuse()
        return ""

    async def hangup(self, channel_id: str) -> None:
        await self._refuse()

    async def continue_in_dialplan(self, channel_id: str) -> None:
        await self._refuse()

    async def play(self, channel_id: str, *sounds: str) -> None:
        await self._refuse()

    async def live_channel_ids(self) -> frozenset[str]:
        await self._refuse()
        return frozenset()
