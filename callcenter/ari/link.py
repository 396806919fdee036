"""ARI event WebSocket supervisor: one events socket, heartbeat, capped backoff with jitter, resync (edge).

:class:`AriLink` keeps the events WebSocket of our Stasis application open for the life of the
process. With a :class:`~callcenter.bus.Lease` it connects only while it holds the lease (ARI gives an
application to one WebSocket, the newer wins, so exactly one process may connect); a process without
it stands by and retries. After every connect it runs ``on_connected`` (the resync: events were missed)
before it dispatches any event; frames that arrive meanwhile are buffered, not dropped. Each frame is
stamped with the moment the link received it, which is what the handler gets with the event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import NoReturn, TypeAlias

import aiohttp

from callcenter.ari.client import AriClient, ari_auth_headers, ari_base_url
from callcenter.ari.events import (
    ApplicationReplaced,
    AriEvent,
    MalformedAriEventError,
    UnknownEvent,
    parse_event,
)
from callcenter.ari.wsrest import WebSocketRest
from callcenter.bus import Lease
from callcenter.clock import Clock, SystemClock
from callcenter.config import AriSettings
from callcenter.errors import AsteriskUnavailableError, LeaseLostError

logger = logging.getLogger(__name__)

#: How often the link checks that the event loop runs on time, and the lateness it warns about.
LOOP_PROBE_S = 0.25
LOOP_LATE_WARN_S = 1.0


class LinkStatus(StrEnum):
    """``up``: connected and resynced; ``down``: not connected (retrying); ``standby``: another process
    holds the lease, so this one does not connect."""

    UP = "up"
    DOWN = "down"
    STANDBY = "standby"


@dataclass(frozen=True, slots=True)
class ReceivedAt:
    """When our link received a frame: wall clock (UTC, from the link's clock) and ``time.monotonic()``."""

    wall: datetime
    monotonic_s: float


#: What the link calls for every event, in the order Asterisk sent them.
EventHandler: TypeAlias = Callable[[AriEvent, ReceivedAt], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class _Frame:
    data: str
    received: ReceivedAt


@dataclass(frozen=True, slots=True)
class _End:
    reason: str


class AriLink:
    """Supervisor of the ARI events WebSocket.

    :param handler: called for each parsed event with its :class:`ReceivedAt`; its exceptions are
        logged and the next event is dispatched.
    :param on_connected: the resync, awaited after every connect before any event is dispatched; if
        it fails the socket is closed and the link reconnects after a backoff.
    :param lease: when given, the link connects only while holding it (renewed by ``keep()`` beside
        the socket); on loss the socket is closed and the link goes back to trying to acquire it.
    :param heartbeat_s: ping period; Asterisk answers pings but never sends any, so this is what
        notices a dead peer (no PONG within half of it closes the socket).
    :param reconnect_min_s, reconnect_max_s: the capped exponential backoff (with jitter).
    :param standby_retry_s: how often a standby process tries to take the lease.
    :param rest: REST over this socket (:mod:`callcenter.ari.wsrest`): the link probes it after every
        connect, hands it the ``RESTResponse`` frames as they are read (ahead of the events queued for
        the handler), and closes it when the socket ends.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        settings: AriSettings,
        handler: EventHandler,
        *,
        on_connected: Callable[[], Awaitable[None]],
        lease: Lease | None = None,
        heartbeat_s: float = 10.0,
        reconnect_min_s: float = 0.5,
        reconnect_max_s: float = 30.0,
        connect_timeout_s: float = 10.0,
        resync_timeout_s: float = 60.0,
        standby_retry_s: float = 2.0,
        clock: Clock | None = None,
        rest: WebSocketRest | None = None,
    ) -> None:
        if not 0 < reconnect_min_s <= reconnect_max_s:
            raise ValueError("need 0 < reconnect_min_s <= reconnect_max_s")
        self._session = session
        self._app = settings.app
        self._events_url = ari_base_url(settings) + "/events"
        self._headers = ari_auth_headers(settings)
        self._handler = handler
        self._on_connected = on_connected
        self._lease = lease
        self._heartbeat_s = heartbeat_s
        self._reconnect_min_s = reconnect_min_s
        self._reconnect_max_s = reconnect_max_s
        self._connect_timeout_s = connect_timeout_s
        self._resync_timeout_s = resync_timeout_s
        self._standby_retry_s = standby_retry_s
        self._clock = clock or SystemClock()
        self._rest = rest
        self._probe = AriClient(session, settings, timeout_s=min(connect_timeout_s, 3.0))
        self._status = LinkStatus.DOWN
        self._changed = asyncio.Event()
        self._replaced = False
        self._last_error: str | None = None
        self.connects = 0
        """Sockets opened so far (a reconnect adds one)."""
        self.frames_skipped = 0
        """Frames dropped because they could not be parsed."""
        self.handler_errors = 0
        """Events whose handler raised."""
        self.loop_late_max_s = 0.0
        """The longest the event loop ran a timer late while the link ran (a stall of the whole process)."""

    @property
    def status(self) -> LinkStatus:
        return self._status

    @property
    def rest(self) -> WebSocketRest | None:
        """REST over this link's socket, when it was given one."""
        return self._rest

    @property
    def last_error(self) -> str | None:
        """Why the socket last ended or failed to open, for logs and health."""
        return self._last_error

    async def wait_status(self, status: LinkStatus, timeout_s: float) -> None:
        """Return once the link is in ``status``. :raises TimeoutError: after ``timeout_s``."""
        async with asyncio.timeout(timeout_s):
            while True:
                changed = self._changed
                if self._status is status:
                    return
                await changed.wait()

    async def wait_up(self, timeout_s: float) -> None:
        """Return once connected and resynced. :raises TimeoutError: after ``timeout_s``."""
        await self.wait_status(LinkStatus.UP, timeout_s)

    async def check(self) -> None:
        """Health probe: returns when the link is up, or when standing by and ARI answers REST.

        :raises AsteriskUnavailableError: when the link is down (or, standing by, ARI does not answer).
        """
        if self._status is LinkStatus.UP:
            return
        if self._status is LinkStatus.STANDBY:
            await self._probe.asterisk_info()
            return
        raise AsteriskUnavailableError(f"ARI link down: {self._last_error or 'not connected yet'}")

    async def run(self) -> NoReturn:
        """Keep the events socket open until cancelled (cancel the task to stop; the lease is released)."""
        watcher = asyncio.get_running_loop().create_task(self._watch_loop(), name="ari-link-loop-watch")
        try:
            if self._lease is None:
                await self._connect_forever()
            while True:
                if await self._try_acquire(self._lease):
                    await self._run_while_leased(self._lease)
                    continue  # lost: try again at once (we get None if another process took it)
                self._set_status(LinkStatus.STANDBY)
                await asyncio.sleep(_jittered(self._standby_retry_s))
        finally:
            watcher.cancel()
            self._set_status(LinkStatus.DOWN)
            if self._lease is not None:
                try:
                    await self._lease.release()
                except Exception:  # release is best effort: the lease expires by itself
                    logger.exception("ARI link: could not release the lease")

    async def _watch_loop(self) -> NoReturn:
        """Measure how late the loop runs a timer: a stall holds the lease's renewal and the events.

        The lease lapses when no renewal runs within its TTL; a warning well before that names the
        stall (with its length) in the log, where a lost lease alone would not say why.
        """
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + LOOP_PROBE_S
            await asyncio.sleep(LOOP_PROBE_S)
            late = loop.time() - due
            if late > self.loop_late_max_s:
                self.loop_late_max_s = late
            if late >= LOOP_LATE_WARN_S:
                logger.warning(
                    "ARI link: the event loop ran %.1f s late (events and lease renewal waited)", late
                )

    # -- lease -----------------------------------------------------------------------------------

    async def _try_acquire(self, lease: Lease) -> bool:
        try:
            token = await lease.acquire()
        except Exception as exc:  # RedisUnavailableError, or any lease backend failure: not held
            self._last_error = f"lease not confirmed: {exc}"
            logger.warning("ARI link: could not acquire the lease: %s", exc)
            return False
        if token is None:
            logger.debug("ARI link: lease held by another process; standing by")
            return False
        logger.info("ARI link: lease acquired (token %d)", token)
        return True

    async def _run_while_leased(self, lease: Lease) -> None:
        # Two tasks rather than an asyncio.TaskGroup: 3.11's TaskGroup drops a cancellation that
        # arrives while a child fails (the lease lost as the process stops), and the link then stood
        # by for ever instead of stopping.
        keeper = asyncio.create_task(lease.keep(), name="ari-link-lease")
        socket = asyncio.create_task(self._connect_forever(), name="ari-link-socket")
        try:
            done, _ = await asyncio.wait({keeper, socket}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            keeper.cancel()
            socket.cancel()
            await asyncio.gather(keeper, socket, return_exceptions=True)
        for ended in done:
            failure = None if ended.cancelled() else ended.exception()
            if isinstance(failure, LeaseLostError):
                logger.warning("ARI link: %s; events socket closed, standing by", failure)
            else:
                logger.error("ARI link: %s ended; standing by", ended.get_name(), exc_info=failure)
        self._last_error = "lease lost"
        self._set_status(LinkStatus.STANDBY)

    # -- socket ----------------------------------------------------------------------------------

    async def _connect_forever(self) -> NoReturn:
        delay = self._reconnect_min_s
        while True:
            self._replaced = False
            was_up = False
            try:
                was_up = await self._connect_once()
            except aiohttp.WSServerHandshakeError as exc:
                # e.g. 503 while Asterisk boots, 401 on bad credentials, 400 without an app.
                self._last_error = f"WebSocket upgrade refused: {exc.status} {exc.message}"
                logger.warning("ARI link: %s", self._last_error)
            except (aiohttp.ClientError, OSError, TimeoutError, AsteriskUnavailableError) as exc:
                self._last_error = f"{type(exc).__name__}: {exc}"
                logger.warning("ARI link: connection failed: %s", self._last_error)
            except Exception as exc:  # a resync bug must not end the supervisor
                self._last_error = f"{type(exc).__name__}: {exc}"
                logger.exception("ARI link: unexpected failure; reconnecting")
            self._set_status(LinkStatus.DOWN)
            if was_up:
                delay = self._reconnect_min_s
            if self._replaced:
                delay = self._reconnect_max_s
            pause_s = _jittered(delay)
            logger.info("ARI link: reconnecting in %.2fs", pause_s)
            await asyncio.sleep(pause_s)
            if self._replaced and self._lease is not None and not await self._lease.renew():
                # The new socket is the new lease holder's: taking the application back would leave
                # Asterisk with no application at all once our keeper closes it (calls then fail
                # into the dialplan's fallback).
                raise LeaseLostError("the application was taken by the new holder of the ARI lease")
            delay = min(delay * 2, self._reconnect_max_s)

    async def _connect_once(self) -> bool:
        """One socket from open to end; ``True`` if it got as far as being up (resynced)."""
        async with asyncio.timeout(self._connect_timeout_s):
            ws = await self._session.ws_connect(
                self._events_url,
                params={"app": self._app, "subscribeAll": "false"},
                headers=self._headers,
                heartbeat=self._heartbeat_s,
                timeout=aiohttp.ClientWSTimeout(ws_close=self._connect_timeout_s),
            )
        self.connects += 1
        logger.info("ARI link: events socket open for application %s (%s)", self._app, self._events_url)
        inbox: asyncio.Queue[_Frame | _End] = asyncio.Queue()
        reader = asyncio.create_task(self._read(ws, inbox), name="ari-link-reader")
        try:
            if self._rest is not None:
                await self._rest.open(ws)
            async with asyncio.timeout(self._resync_timeout_s):
                await self._on_connected()
            self._set_status(LinkStatus.UP)
            await self._dispatch_until_end(inbox)
            return True
        finally:
            if self._rest is not None:
                self._rest.close(self._last_error or "socket closed")
            reader.cancel()
            await asyncio.wait([reader])
            with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                async with asyncio.timeout(self._connect_timeout_s):
                    await ws.close()

    async def _read(self, ws: aiohttp.ClientWebSocketResponse, inbox: asyncio.Queue[_Frame | _End]) -> None:
        reason = "socket closed"
        try:
            while True:
                msg = await ws.receive()
                if msg.type is aiohttp.WSMsgType.TEXT:
                    if self._rest is None or not self._rest.take(msg.data):
                        inbox.put_nowait(_Frame(msg.data, self._stamp()))
                    continue
                if msg.type is aiohttp.WSMsgType.ERROR:
                    # A missing PONG lands here (ServerTimeoutError), as do broken connections.
                    reason = f"socket error: {ws.exception()!r}"
                elif msg.type in (
                    aiohttp.WSMsgType.CLOSE,
                    aiohttp.WSMsgType.CLOSING,
                    aiohttp.WSMsgType.CLOSED,
                ):
                    # On "core restart" Asterisk drops TCP without a close frame: that reads as CLOSED.
                    reason = f"socket closed by Asterisk (code {ws.close_code})"
                else:
                    reason = f"unexpected {msg.type.name} frame"
                return
        except (aiohttp.ClientError, OSError, RuntimeError) as exc:
            reason = f"socket failed: {exc!r}"
        finally:
            inbox.put_nowait(_End(reason))

    async def _dispatch_until_end(self, inbox: asyncio.Queue[_Frame | _End]) -> None:
        while True:
            item = await inbox.get()
            if isinstance(item, _End):
                self._last_error = item.reason
                logger.warning("ARI link: %s", item.reason)
                return
            if not await self._dispatch(item):
                return

    async def _dispatch(self, frame: _Frame) -> bool:
        """Parse and hand one frame to the handler; never raises. ``False``: drop this socket."""
        try:
            event = parse_event(frame.data)
        except MalformedAriEventError as exc:
            self.frames_skipped += 1
            logger.warning(
                "ARI link: skipped a malformed frame (%s; type=%s key=%s): %.300r",
                exc,
                exc.event_type,
                exc.key,
                frame.data,
            )
            return True
        if isinstance(event, UnknownEvent):
            # Includes RESTResponse frames when the link has no WebSocketRest to take them.
            logger.debug(
                "ARI link: skipped an event of unknown type %s (keys %s)", event.raw_type, event.keys
            )
            return True
        if isinstance(event, ApplicationReplaced):
            # Another WebSocket took the application (the newer one wins): this socket gets no more
            # events. Leave it, and come back only after the longest backoff so two processes
            # without a lease do not keep taking it from each other.
            self._replaced = True
            self._last_error = "application taken over by another WebSocket"
            logger.error("ARI link: application %s was taken over by another WebSocket", self._app)
            return False
        try:
            await self._handler(event, frame.received)
        except Exception:
            self.handler_errors += 1
            logger.exception("ARI link: the handler failed on %s; going on", type(event).__name__)
        return True

    def _stamp(self) -> ReceivedAt:
        return ReceivedAt(wall=self._clock.now(), monotonic_s=time.monotonic())

    def _set_status(self, status: LinkStatus) -> None:
        if status is self._status:
            return
        logger.info("ARI link: %s -> %s", self._status.value, status.value)
        self._status = status
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()


def _jittered(delay_s: float) -> float:
    """Half the delay plus a random share of the other half: spreads reconnects after a restart."""
    return delay_s / 2 + random.uniform(0, delay_s / 2)
