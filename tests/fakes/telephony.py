"""``RecordingCallControl``: the queue's telephony port in memory, for service tests (test double of ARI).

It records every command in order, hands out bridge and channel ids, and keeps the port's contract:
commands on a channel in ``gone`` raise ``ChannelGoneError`` (``hangup`` of a gone channel is not an
error), ``ring_agent`` to an endpoint in ``unknown_endpoints`` raises ``ChannelGoneError``, and
``fail_next`` makes the next command (of a given name, or any) raise the error it is given. A hook
registered with ``during`` runs inside a command, before it returns: the way a test makes a caller
hang up while the service awaits Asterisk.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from callcenter.errors import ChannelGoneError
from callcenter.queue.ports import BridgeKind


@dataclass(frozen=True, slots=True)
class Command:
    """One command given to the PBX: its name and arguments, as the port received them."""

    name: str
    args: tuple[object, ...] = ()


Hook = Callable[[], Awaitable[None]]


class RecordingCallControl:
    """``CallControl`` that records commands instead of talking to Asterisk."""

    def __init__(self) -> None:
        self.commands: list[Command] = []
        #: Channels the PBX no longer has.
        self.gone: set[str] = set()
        #: Endpoints ``ring_agent`` cannot reach (no such endpoint).
        self.unknown_endpoints: set[str] = set()
        #: What ``live_channel_ids`` answers.
        self.live: set[str] = set()
        self.bridges: dict[str, BridgeKind] = {}
        self._failures: list[tuple[str | None, Exception]] = []
        self._hooks: dict[str, list[Hook]] = {}
        self._next_id = 0

    # -- test controls ---------------------------------------------------------------------------

    def fail_next(self, error: Exception, *, command: str | None = None) -> None:
        """Make the next command named ``command`` (any command when ``None``) raise ``error`` once."""
        self._failures.append((command, error))

    def during(self, command: str, hook: Hook) -> None:
        """Run ``hook`` inside the next ``command``, before it returns (or raises)."""
        self._hooks.setdefault(command, []).append(hook)

    def names(self) -> list[str]:
        """The names of every command so far, in order."""
        return [c.name for c in self.commands]

    def of(self, name: str) -> list[tuple[object, ...]]:
        """The arguments of every command called ``name``, in order."""
        return [c.args for c in self.commands if c.name == name]

    def clear(self) -> None:
        self.commands.clear()

    # -- the port --------------------------------------------------------------------------------

    async def answer(self, channel_id: str) -> None:
        await self._do("answer", channel_id, channel=channel_id)

    async def create_bridge(self, kind: BridgeKind, name: str) -> str:
        await self._do("create_bridge", kind, name)
        bridge_id = self._new_id("bridge")
        self.bridges[bridge_id] = kind
        return bridge_id

    async def add_to_bridge(self, bridge_id: str, channel_id: str) -> None:
        await self._do("add_to_bridge", bridge_id, channel_id, channel=channel_id)

    async def start_hold_music(self, bridge_id: str) -> None:
        await self._do("start_hold_music", bridge_id)

    async def destroy_bridge(self, bridge_id: str) -> None:
        await self._do("destroy_bridge", bridge_id)
        self.bridges.pop(bridge_id, None)

    async def ring_agent(
        self, endpoint: str, *, call_id: str, timeout_s: float, caller_id: str, channel_id: str | None = None
    ) -> str:
        """Recorded as ``(endpoint, call_id, timeout_s, caller_id)``; the id is ``channel_id`` if given."""
        channel_id = channel_id or self._new_id("agent")
        self.live.add(channel_id)
        try:
            await self._do("ring_agent", endpoint, call_id, timeout_s, caller_id)
            if endpoint in self.unknown_endpoints:
                raise ChannelGoneError(f"endpoint {endpoint} not found")
        except Exception:
            self.live.discard(channel_id)
            raise
        return channel_id

    async def hangup(self, channel_id: str) -> None:
        await self._do("hangup", channel_id)
        self.gone.add(channel_id)
        self.live.discard(channel_id)

    async def continue_in_dialplan(self, channel_id: str) -> None:
        await self._do("continue_in_dialplan", channel_id, channel=channel_id)

    async def play(self, channel_id: str, *sounds: str) -> None:
        await self._do("play", channel_id, *sounds, channel=channel_id)

    async def live_channel_ids(self) -> frozenset[str]:
        await self._do("live_channel_ids")
        return frozenset(self.live)

    # -- internals -------------------------------------------------------------------------------

    async def _do(self, name: str, *args: object, channel: str | None = None) -> None:
        self.commands.append(Command(name, args))
        for hook in self._take_hooks(name):
            await hook()
        for index, (command, error) in enumerate(self._failures):
            if command is None or command == name:
                del self._failures[index]
                raise error
        if channel is not None and channel in self.gone:
            raise ChannelGoneError(f"channel {channel} not found")

    def _take_hooks(self, name: str) -> list[Hook]:
        return self._hooks.pop(name, [])

    def _new_id(self, prefix: str) -> str:
        self._next_id += 1
        return f"{prefix}-{self._next_id}"
