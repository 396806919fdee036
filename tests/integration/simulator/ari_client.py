"""A small ARI test client for the simulator tests: REST calls and an events WebSocket reader."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient

from callcenter.simulator import SimulatedAsterisk

USER = "asterisk"
PASSWORD = "s3cret"
BASIC = {"Authorization": aiohttp.encode_basic_auth(USER, PASSWORD)}
_SYNC = itertools.count()


@dataclass(frozen=True)
class Reply:
    """One REST reply: status, reason phrase, decoded JSON (or None), headers and raw body."""

    status: int
    reason: str
    body: Any
    headers: Mapping[str, str]
    raw: bytes


class EventStream:
    """Reads one events WebSocket in the background; frames are kept in arrival order."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.frames: list[str] = []
        self.end: aiohttp.WSMessage | None = None
        self._changed = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        while True:
            msg = await self.ws.receive()
            if msg.type is WSMsgType.TEXT:
                self.frames.append(msg.data)
                self._changed.set()
                continue
            if msg.type in (WSMsgType.PING, WSMsgType.PONG):
                continue
            self.end = msg
            self._changed.set()
            return

    @property
    def events(self) -> list[dict[str, Any]]:
        """Decoded frames, without the sync markers."""
        decoded = [json.loads(f) for f in self.frames if '"__sync__"' not in f]
        return [e for e in decoded if isinstance(e, dict)]

    async def wait_for(self, condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
        async with asyncio.timeout(timeout_s):
            while not condition():
                self._changed.clear()
                if condition():
                    return
                await self._changed.wait()

    async def wait_closed(self, timeout_s: float = 5.0) -> aiohttp.WSMessage:
        await self.wait_for(lambda: self.end is not None, timeout_s)
        assert self.end is not None
        return self.end

    async def sync(self, sim: SimulatedAsterisk) -> list[dict[str, Any]]:
        """Return every event sent so far: a marker frame queued after them comes back last."""
        marker = json.dumps({"type": "__sync__", "n": next(_SYNC)})
        sim.send_raw(marker)
        await self.wait_for(lambda: marker in self.frames)
        return self.events

    async def close(self) -> None:
        if not self.ws.closed:
            await self.ws.close()
        await self._task


class Ari:
    """REST and WebSocket access to a simulator served by pytest-aiohttp."""

    def __init__(self, sim: SimulatedAsterisk, client: TestClient[Any, Any]) -> None:
        self.sim = sim
        self.client = client
        self.streams: list[EventStream] = []

    async def call(
        self,
        method: str,
        path: str,
        params: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
        json_body: object = None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        kwargs: dict[str, Any] = {}
        if params:
            kwargs["params"] = params
        if json_body is not None:
            kwargs["json"] = json_body
        if headers is not None:
            kwargs["headers"] = headers
        async with self.client.request(method, path, **kwargs) as resp:
            raw = await resp.read()
            body: Any = None
            if raw and resp.headers.get("Content-Type", "").startswith("application/json"):
                body = json.loads(raw)
            return Reply(resp.status, resp.reason or "", body, resp.headers, raw)

    async def events(self, app: str = "callcenter", *, auth: str = "api_key", **kwargs: Any) -> EventStream:
        """Open ``/ari/events?app=...`` (``api_key`` in the URL, or ``basic`` auth) and read it."""
        if auth == "api_key":
            ws = await self.client.ws_connect(f"/ari/events?app={app}&api_key={USER}:{PASSWORD}", **kwargs)
        else:
            ws = await self.client.ws_connect(f"/ari/events?app={app}", headers=BASIC, **kwargs)
        stream = EventStream(ws)
        self.streams.append(stream)
        return stream

    async def close(self) -> None:
        for stream in self.streams:
            await stream.close()
