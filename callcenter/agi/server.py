"""FastAGI server: Asterisk connects once per ``AGI(agi://host:4573/<script>)`` (edge).

Each connection is one :class:`AgiSession`: the ``agi_*`` block is read (bounded in size and time),
the script named by its path runs, then the server closes the socket, because Asterisk never does
(it waits, even after the caller hung up). A path with no script, or a script that fails while the
caller is still there, is answered with ``FAILURE``: Asterisk sets ``AGISTATUS=FAILURE`` and the
call goes on in the dialplan, so nobody is left in silence.

Connections are independent tasks: a peer that sends garbage, stalls or floods us only ends its
own session. :meth:`AgiServer.close` stops accepting, lets running scripts finish within the grace
period, then cancels them (their sockets close, so Asterisk continues those calls in the dialplan).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Final, Protocol

from callcenter.agi import protocol
from callcenter.agi.protocol import (
    AgiConnectionClosedError,
    AgiEnvironment,
    AgiProtocolError,
    AgiReply,
    EnvironmentReader,
    ReplyReader,
)
from callcenter.asterisk_names import AGI_DEFAULT_PORT
from ivr.channel import ChannelHungUpError

logger = logging.getLogger(__name__)

#: What runs for one script path; it returns when done (the server then closes the connection).
ScriptHandler = Callable[["AgiSession"], Awaitable[None]]

_WRITE_TIMEOUT_S: Final = 10.0
_CLOSE_TIMEOUT_S: Final = 2.0


class AgiListenSettings(Protocol):
    """Where the server listens (``config.AgiSettings`` has these)."""

    @property
    def host(self) -> str: ...

    @property
    def port(self) -> int: ...


class AgiSession:
    """One FastAGI connection as a script sees it: the environment and one command at a time.

    :param reply_timeout_s: how long :meth:`send` waits for a reply unless told otherwise.
    """

    def __init__(
        self,
        env: AgiEnvironment,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        peer: str = "",
        reply_timeout_s: float = 60.0,
    ) -> None:
        self.env = env
        self.peer = peer
        self._reader = reader
        self._writer = writer
        self._reply_timeout_s = reply_timeout_s
        self._lock = asyncio.Lock()
        self._hung_up = False
        self._closed = False  # no more commands: over, or no longer in step with the peer
        self._lost = False  # the connection itself is gone

    @property
    def hung_up(self) -> bool:
        """True once Asterisk said the caller hung up (the ``HANGUP`` line, or a ``511`` reply)."""
        return self._hung_up

    @property
    def closed(self) -> bool:
        """True once the connection is over (closed by either side, or handed back with FAILURE)."""
        return self._closed

    async def send(self, line: bytes, *, timeout_s: float | None = None) -> AgiReply:
        """Send one command (from :mod:`callcenter.agi.protocol`) and return Asterisk's reply.

        :param timeout_s: the longest wait for the reply; commands that play or record pass their
            own, longer than the media.
        :raises AgiConnectionClosedError: the peer closed the connection or did not answer in time
            (the session is then over).
        :raises AgiProtocolError: the peer answered garbage (the session is then over).
        """
        if self._closed:
            raise AgiConnectionClosedError("the AGI session is over")
        async with self._lock:
            try:
                async with asyncio.timeout(timeout_s if timeout_s is not None else self._reply_timeout_s):
                    self._writer.write(line)
                    await self._writer.drain()
                    return await self._read_reply()
            except TimeoutError:
                self._closed = True
                raise AgiConnectionClosedError(f"no reply to {line[:40]!r} in time") from None
            except (ConnectionError, AgiConnectionClosedError):
                self._closed = self._lost = True
                raise
            except AgiProtocolError:
                self._closed = True
                raise

    async def fail(self, reason: str) -> None:
        """End the AGI with ``AGISTATUS=FAILURE``: the dialplan continues at its next priority.

        ``reason`` goes to Asterisk's console first (VERBOSE) while the session is in step. Also
        after a garbled reply: Asterisk reads ``FAILURE`` as the next command line. Never raises.
        """
        if not self._closed:
            with contextlib.suppress(AgiProtocolError, ConnectionError):
                await self.send(protocol.verbose(f"callcenter: {reason}", 1), timeout_s=5.0)
        if self._lost:
            return
        self._closed = self._lost = True
        with contextlib.suppress(ConnectionError, TimeoutError):
            self._writer.write((protocol.FAILURE_LINE + "\n").encode())
            async with asyncio.timeout(_WRITE_TIMEOUT_S):
                await self._writer.drain()

    async def _read_reply(self) -> AgiReply:
        replies = ReplyReader()
        while True:
            raw = await _read_line(self._reader)
            if not raw:
                raise AgiConnectionClosedError("Asterisk closed the connection")
            if not raw.endswith(b"\n"):
                raise AgiConnectionClosedError("connection ended inside a reply")
            reply = replies.feed(protocol.decode_line(raw))
            if replies.hangup_seen:
                self._hung_up = True
            if reply is not None:
                if reply.dead_channel:
                    self._hung_up = True
                return reply


async def _read_line(reader: asyncio.StreamReader) -> bytes:
    """One line, LF included (without it at EOF). :raises AgiProtocolError: over the stream's limit."""
    try:
        return await reader.readline()
    except ValueError as exc:  # asyncio: a line longer than the StreamReader limit
        raise AgiProtocolError(f"line over {protocol.MAX_LINE_BYTES} bytes") from exc


class AgiServer:
    """The FastAGI server: scripts by path, one task per connection, graceful close.

    :param handlers: script path (``call-outcome``, no leading ``/``) to what runs it.
    :param env_timeout_s: the longest time for the whole ``agi_*`` block to arrive.
    :param reply_timeout_s: the default longest wait for the reply to a command.
    :param shutdown_grace_s: how long :meth:`close` lets running scripts finish before cancelling.
    """

    def __init__(
        self,
        handlers: Mapping[str, ScriptHandler],
        *,
        host: str = "127.0.0.1",
        port: int = AGI_DEFAULT_PORT,
        env_timeout_s: float = 5.0,
        reply_timeout_s: float = 60.0,
        shutdown_grace_s: float = 10.0,
        max_env_lines: int = protocol.MAX_ENV_LINES,
        max_env_bytes: int = protocol.MAX_ENV_BYTES,
    ) -> None:
        self._handlers = dict(handlers)
        self._host = host
        self._port = port
        self._env_timeout_s = env_timeout_s
        self._reply_timeout_s = reply_timeout_s
        self._grace_s = shutdown_grace_s
        self._max_env_lines = max_env_lines
        self._max_env_bytes = max_env_bytes
        self._server: asyncio.Server | None = None
        self._sessions: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        """The bound port (useful when started on port 0)."""
        if self._server is None or not self._server.sockets:
            return self._port
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def active_sessions(self) -> int:
        return len(self._sessions)

    async def start(self) -> None:
        """Listen. :raises OSError: when the address cannot be bound."""
        self._server = await asyncio.start_server(
            self._connection, self._host, self._port, limit=protocol.MAX_LINE_BYTES
        )
        logger.info("FastAGI server on %s:%d (scripts: %s)", self._host, self.port, ", ".join(self._handlers))

    async def close(self) -> None:
        """Stop accepting; let sessions finish within the grace period, then cancel the rest."""
        if self._server is not None:
            self._server.close()
        if self._sessions:
            _, pending = await asyncio.wait(set(self._sessions), timeout=self._grace_s)
            for task in pending:
                task.cancel()
            if pending:
                logger.warning("FastAGI: %d session(s) cancelled at shutdown", len(pending))
                await asyncio.gather(*pending, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> AgiServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._sessions.add(task)
        peer = _peer_name(writer)
        try:
            await self._run_session(reader, writer, peer)
        except Exception:
            # One misbehaving peer or script must never reach the server's accept loop.
            logger.exception("FastAGI %s: session failed", peer)
        finally:
            self._sessions.discard(task)
            await _close(writer)

    async def _run_session(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str
    ) -> None:
        try:
            env = await self._read_environment(reader)
        except (AgiProtocolError, TimeoutError, ConnectionError) as exc:
            logger.warning(
                "FastAGI %s: no valid agi_* block (%s); closing", peer, str(exc) or type(exc).__name__
            )
            return
        session = AgiSession(env, reader, writer, peer=peer, reply_timeout_s=self._reply_timeout_s)
        script = env.script
        handler = self._handlers.get(script)
        if handler is None:
            logger.warning("FastAGI %s: no AGI script %r (channel %s)", peer, script, env.channel)
            await session.fail(f"no AGI script named {script!r} here")
            return
        try:
            await handler(session)
        except ChannelHungUpError as exc:
            logger.info("FastAGI %s %s: caller hung up (%s)", peer, script, exc)
        except (AgiProtocolError, ConnectionError) as exc:
            logger.warning("FastAGI %s %s: session lost: %s", peer, script, exc)
            if not session.hung_up:
                await session.fail(f"AGI session with {script!r} broke")
        except Exception:
            logger.exception("FastAGI %s %s: script failed (channel %s)", peer, script, env.channel)
            if not session.hung_up:
                await session.fail(f"AGI script {script!r} failed")

    async def _read_environment(self, reader: asyncio.StreamReader) -> AgiEnvironment:
        block = EnvironmentReader(max_lines=self._max_env_lines, max_bytes=self._max_env_bytes)
        async with asyncio.timeout(self._env_timeout_s):
            while True:
                env = block.feed(await _read_line(reader))
                if env is not None:
                    return env


def _peer_name(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer)


async def _close(writer: asyncio.StreamWriter) -> None:
    """Close our side; Asterisk waits for it (it never closes a FastAGI socket itself)."""
    writer.close()
    with contextlib.suppress(ConnectionError, TimeoutError):
        async with asyncio.timeout(_CLOSE_TIMEOUT_S):
            await writer.wait_closed()


@contextlib.asynccontextmanager
async def start_agi_server(
    settings: AgiListenSettings,
    handlers: Mapping[str, ScriptHandler],
    *,
    shutdown_grace_s: float = 10.0,
    reply_timeout_s: float = 60.0,
) -> AsyncIterator[AgiServer]:
    """The FastAGI server listening on ``settings.host:settings.port`` for the life of the block.

    For the composition root (``app.cleanup_ctx``). :raises OSError: when the address cannot be bound.
    """
    server = AgiServer(
        handlers,
        host=settings.host,
        port=settings.port,
        shutdown_grace_s=shutdown_grace_s,
        reply_timeout_s=reply_timeout_s,
    )
    await server.start()
    try:
        yield server
    finally:
        await server.close()
