"""The FastAGI server and its scripts against the scripted AGI peer on loopback: helpers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from callcenter.agi.channel import AgiChannel
from callcenter.agi.server import AgiServer, AgiSession, ScriptHandler
from callcenter.simulator.agi_peer import AgiPeer

HOST = "127.0.0.1"


async def serve_peers(
    handlers: Mapping[str, ScriptHandler], *peers: AgiPeer, **server_options: Any
) -> AgiServer:
    """Run ``peers`` at once against a server with ``handlers``; return the (closed) server."""
    async with AgiServer(handlers, host=HOST, port=0, **server_options) as server:
        async with asyncio.timeout(15):
            await asyncio.gather(*(peer.run(HOST, server.port) for peer in peers))
    return server


async def run_on_channel(
    flow: Callable[[AgiChannel], Awaitable[object]], peer: AgiPeer, **server_options: Any
) -> object:
    """Run ``flow`` on an :class:`AgiChannel` of ``peer``'s session; its result or the exception it raised."""
    outcome: asyncio.Future[object] = asyncio.get_running_loop().create_future()

    async def script(session: AgiSession) -> None:
        try:
            outcome.set_result(await flow(AgiChannel(session)))
        except Exception as exc:
            outcome.set_result(exc)
            raise

    await serve_peers({peer.script: script}, peer, **server_options)
    return outcome.result()


async def raw_session(port: int, data: bytes, *, close: bool = False, timeout_s: float = 10.0) -> bytes:
    """Send ``data`` as a peer would (garbage included); all the server sent until it closed."""
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        writer.write(data)
        await writer.drain()
        if close:
            writer.write_eof()
        received = b""
        async with asyncio.timeout(timeout_s):
            try:
                while chunk := await reader.read(65536):
                    received += chunk
            except ConnectionResetError:
                pass  # closed by the server with our data unread: a reset instead of a FIN
        return received
    finally:
        writer.close()


def env_block(script: str, **extra: str) -> bytes:
    """A minimal ``agi_*`` block for ``script``."""
    lines = {"agi_network": "yes", "agi_network_script": script, "agi_request": f"agi://{HOST}/{script}"}
    lines.update(extra)
    return ("".join(f"{k}: {v}\n" for k, v in lines.items()) + "\n").encode()
