"""The simulated Asterisk's ARI: REST resources and the events WebSocket over aiohttp (edge).

:class:`SimulatedAsterisk` is a :class:`~callcenter.simulator.pbx.Pbx` with a network face: its
:attr:`~SimulatedAsterisk.app` serves the ARI subset our link uses under ``/ari/`` (run it with
pytest-aiohttp's ``aiohttp_server`` or :meth:`~SimulatedAsterisk.start`), and its methods are the
control API tests and the demo drive: calls arriving, digits, hang-ups, endpoint behaviour, faults.

Validation and error bodies follow ``res/ari/resource_*.c`` of Asterisk 20 and the recorded replies
(``tests/data/ari/ari_misc_rest.txt`` and the ``*_rest_log.jsonl`` files): ``{"message": ...}`` almost
everywhere, ``{"error": "Allocation failed"}`` when a channel cannot be created, resource-specific
messages (``Channel not found`` here, ``Provided channel was not found`` there) and reason phrases.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import fnmatch
import http
import json
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final
from urllib.parse import parse_qsl

from aiohttp import WSMsgType, web

from callcenter.clock import Clock
from callcenter.simulator.pbx import (
    ASTERISK_VERSION,
    RECORDING_FORMATS,
    Bridge,
    Channel,
    ChannelState,
    LiveRecording,
    LoopScheduler,
    Pbx,
    Scheduler,
    SettableClock,
    SimulatorError,
    VirtualScheduler,
    ari_timestamp,
    atoi,
)

logger = logging.getLogger(__name__)

_SERVER = f"Asterisk/{ASTERISK_VERSION}"
# Asterisk spells the header ``Content-type`` (lowercase t); a case-sensitive client would notice.
_JSON_HEADERS: Final = {
    "Server": _SERVER,
    "Cache-Control": "no-cache, no-store",
    "Content-type": "application/json",
}
_PLAIN_HEADERS: Final = {"Server": _SERVER, "Cache-Control": "no-cache, no-store"}
_REALM = "Asterisk REST Interface"
_HANGUP_REASONS: Final = {
    "normal": 16,
    "busy": 17,
    "congestion": 34,
    "no_answer": 19,
    "timeout": 18,
    "rejected": 21,
    "unallocated": 1,
    "normal_unspecified": 31,
    "number_incomplete": 28,
    "codec_mismatch": 58,
    "interworking": 127,
    "failure": 38,
    "answered_elsewhere": 26,
}
_MISSING_APP_HTML = (
    '<!DOCTYPE HTML PUBLIC "-//IETF//DTD HTML 2.0//EN">\r\n<html><head>\r\n<title>400 Bad Request</title>\r\n'
    "</head><body>\r\n<h1>Bad Request</h1>\r\n<p>HTTP request is missing param: [app]</p>\r\n<hr />\r\n"
    f"<address>{_SERVER}</address>\r\n</body></html>\r\n"
)


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One REST call the simulator received (``sim.requests``)."""

    method: str
    path: str
    query: dict[str, str]
    body: object
    status: int
    websocket: bool = False
    """Sent as a ``RESTRequest`` frame on the events WebSocket rather than over HTTP."""


@dataclass(slots=True)
class _Fault:
    method: str
    pattern: str
    status: int
    body: str
    remaining: int


@dataclass(slots=True)
class _Reply:
    status: int
    reason: str
    text: str | None = None  # JSON text
    body: bytes | None = None  # raw body (recording files)
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


class _HttpError(Exception):
    """An ARI error reply raised inside a resource handler."""

    def __init__(self, status: int, reason: str, message: str, *, key: str = "message") -> None:
        super().__init__(message)
        self.reply = _Reply(status, reason, json.dumps({key: message}, separators=(",", ":")))


@dataclass(slots=True)
class _Ctx:
    method: str
    params: dict[str, str]
    body: object
    path: dict[str, str]

    def get(self, name: str, default: str = "") -> str:
        return self.params.get(name, default)


_Handler = Callable[[_Ctx], _Reply]


class _Node:
    __slots__ = ("children", "wildcard", "wildname", "methods")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        self.wildcard: _Node | None = None
        self.wildname = ""
        self.methods: dict[str, _Handler] = {}


def _no_content() -> _Reply:
    return _Reply(204, "No Content")


def _ok(text: str, status: int = 200, reason: str = "OK") -> _Reply:
    return _Reply(status, reason, text)


def _true(text: str) -> bool:
    """``ast_true``: yes, true, y, t, 1, on."""
    return text.strip().lower() in ("yes", "true", "y", "t", "1", "on")


_EOF: Final = object()


class _EventSocket:
    """One events WebSocket: an outbox drained by its own writer task, in order."""

    def __init__(self, ws: web.WebSocketResponse, request: web.Request, apps: list[str]) -> None:
        self.ws = ws
        self.request = request
        self.apps = apps
        self.queue: deque[object] = deque()
        self.idle = asyncio.Event()
        self.idle.set()
        self._waiter: asyncio.Future[None] | None = None
        self.sink = self.push  # one bound method: the identity the PBX registration compares
        self.task = asyncio.get_running_loop().create_task(self._write())

    def push(self, text: object) -> None:
        self.queue.append(text)
        self.idle.clear()
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def eof(self) -> None:
        """Close TCP after what is queued, without a close frame (what ``core restart now`` does)."""
        self.push(_EOF)

    async def _write(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                while self.queue:
                    item = self.queue.popleft()
                    if item is _EOF:
                        transport = self.request.transport
                        if transport is not None:
                            transport.close()
                        self.queue.clear()
                        return
                    await self.ws.send_str(item)  # type: ignore[arg-type]
                self.idle.set()
                self._waiter = loop.create_future()
                await self._waiter
                self._waiter = None
        except (ConnectionResetError, RuntimeError) as exc:
            logger.debug("event socket write ended: %r", exc)
        finally:
            self.queue.clear()
            self.idle.set()


class SimulatedAsterisk(Pbx):
    """A stateful simulated Asterisk 20 speaking ARI, with a Python control API.

    :param users: ARI users and passwords (``ari.conf``); basic auth or ``api_key=user:pass``.
    :param realtime: timers run on the event loop in wall-clock time (demo, benchmark) instead of
        the default virtual time that only moves in :meth:`advance`.
    :param clock: the time source; with virtual time, a settable clock (``FakeClock``) is moved along.
    :param start: where virtual time starts when no clock is given.
    :param max_recorded_requests: how many REST calls :attr:`requests` keeps (0 keeps none), over HTTP
        and over the events WebSocket alike (:attr:`RecordedRequest.websocket` tells which).
    :param rest_over_websocket: answer ``RESTRequest`` frames on the events WebSocket, as Asterisk 20.14,
        21.9, 22.4 and later do; ``False`` reads and drops client text frames, as older ones do.
    """

    def __init__(
        self,
        *,
        users: dict[str, str] | None = None,
        realtime: bool = False,
        clock: Clock | None = None,
        start: datetime | None = None,
        seed: int = 0,
        inbound_tech: str = "PJSIP",
        inbound_trunk: str = "trunk",
        default_sound_s: float | None = None,
        max_recorded_requests: int = 10_000,
        rest_over_websocket: bool = True,
    ) -> None:
        scheduler: Scheduler
        if realtime:
            scheduler = LoopScheduler(clock)
        else:
            if clock is not None and not isinstance(clock, SettableClock):
                raise SimulatorError("virtual time needs a settable clock (with .set) or none")
            scheduler = VirtualScheduler(start, clock)
        super().__init__(
            scheduler=scheduler,
            seed=seed,
            inbound_tech=inbound_tech,
            inbound_trunk=inbound_trunk,
            default_sound_s=default_sound_s,
        )
        self.users = dict(users) if users is not None else {"asterisk": "asterisk"}
        self.requests: deque[RecordedRequest] = deque(maxlen=max_recorded_requests or None)
        self._record_requests = max_recorded_requests > 0
        self.rest_over_websocket = rest_over_websocket
        self._sockets: set[_EventSocket] = set()
        self._faults: list[_Fault] = []
        self._ponging = True
        self._booting_until: float | None = None
        self._app: web.Application | None = None
        self._runner: web.AppRunner | None = None
        self._root = _Node()
        self._routes()

    # ------------------------------------------------------------------ serving

    @property
    def app(self) -> web.Application:
        """The aiohttp application serving ``/ari/...`` (create once, serve once)."""
        if self._app is None:
            app = web.Application()
            app.router.add_route("*", "/ari/{tail:.*}", self._handle)
            app.on_shutdown.append(self._on_shutdown)
            self._app = app
        return self._app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on ``host:port`` (0 picks a free port); returns the base URL, e.g. ``http://127.0.0.1:8088``."""
        runner = web.AppRunner(self.app, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        self._runner = runner
        bound = runner.addresses[0]
        return f"http://{bound[0]}:{bound[1]}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _on_shutdown(self, app: web.Application) -> None:
        sockets = list(self._sockets)
        for sock in sockets:
            sock.eof()
        if sockets:
            # A client that stopped reading must not hold the shutdown: flush briefly, then cut.
            _, stuck = await asyncio.wait([s.task for s in sockets], timeout=1.0)
            for sock in sockets:
                if sock.task in stuck and sock.request.transport is not None:
                    sock.request.transport.abort()
                    sock.task.cancel()

    # ------------------------------------------------------------------ control API: time

    async def advance(
        self, seconds: float, *, after_each: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        """Move virtual time by ``seconds``, firing timers in due order and flushing their events.

        :param after_each: awaited after each timer's events are written, before time moves on; a test
            client passes a coroutine that returns once it has handled them, so its REST calls happen
            at that simulated moment.
        """
        scheduler = self._virtual()
        target = scheduler.monotonic() + seconds
        while scheduler.fire_next(target):
            await self.drain()
            if after_each is not None:
                await after_each()
        scheduler.set_time(target)
        await self.drain()

    async def drain(self) -> None:
        """Wait until every event emitted so far has been written to its WebSocket.

        A client that does not read its socket can make this wait for as long as it does not.
        """
        for sock in list(self._sockets):
            await sock.idle.wait()

    # ------------------------------------------------------------------ control API: faults

    @property
    def websockets(self) -> int:
        """How many events WebSockets are open."""
        return len(self._sockets)

    def websockets_of(self, app: str) -> int:
        """How many open events WebSockets subscribe ``app``."""
        return sum(1 for sock in self._sockets if app in sock.apps)

    def drop_websockets(self) -> None:
        """Cut every events WebSocket (TCP closed, no close frame); their applications unregister."""
        for sock in list(self._sockets):
            for app in sock.apps:
                self.unregister_app(app, sock.sink)
            sock.eof()

    async def restart(self, *, booting_s: float = 0.0) -> None:
        """``core restart now``: calls in Stasis are cut (HangupRequest cause 4, StasisEnd), sockets end
        with TCP EOF and no close frame, channels and bridges are gone, applications unregistered.

        :param booting_s: afterwards, for this long (simulated time), every request answers
            503 ``{"message":"Asterisk not booted"}``.
        """
        self.shutdown()
        for sock in list(self._sockets):
            sock.eof()
        for sock in list(self._sockets):
            await sock.task
        self.boot()
        if booting_s > 0:
            self._booting_until = self.scheduler.monotonic() + booting_s

    def stop_ponging(self) -> None:
        """Stop answering WebSocket pings (a client heartbeat then detects a dead peer)."""
        self._ponging = False

    def start_ponging(self) -> None:
        self._ponging = True

    def send_raw(self, text: str, *, app: str | None = None) -> None:
        """Send ``text`` as-is as a TEXT frame, after the events already queued."""
        for sock in self._sockets:
            if app is None or app in sock.apps:
                sock.push(text)

    def fail_next(
        self, route: str, status: int, *, message: str | None = None, key: str = "message", times: int = 1
    ) -> None:
        """Answer the next ``times`` matching requests with ``status`` and an ARI error body, untouched.

        :param route: ``"POST /ari/channels"``; the path may use ``*`` (``"POST /ari/channels/*/answer"``).
        :param key: ``message`` (most resources) or ``error`` (as the allocation failure body).
        """
        method, _, pattern = route.partition(" ")
        phrase = http.HTTPStatus(status).phrase
        body = json.dumps({key: message if message is not None else phrase}, separators=(",", ":"))
        self._faults.append(_Fault(method.upper(), pattern, status, body, times))

    # ------------------------------------------------------------------ HTTP entry

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        tail = request.match_info["tail"]
        if tail == "events" and request.method == "GET":
            return await self._events(request)
        params: dict[str, str] = {}
        for key, value in request.query.items():
            params[key] = value  # a repeated key keeps the last value, as ARI's generated parser does
        body: object = None
        if request.body_exists:
            raw = await request.read()
            body = self._parse_body(request.content_type, raw, params)
        reply = self._gate(request) or self._fault(request.method, request.path)
        if reply is None:
            pushed = self._pushed_marker()
            reply = self._dispatch(request.method, tail, params, body)
            if self._pushed_marker() != pushed:
                # Let the event writers run first: events overtake the REST response that caused them.
                await asyncio.sleep(0)
        self._record(request.method, request.path, params, body, reply.status)
        return self._to_response(reply)

    def _record(
        self,
        method: str,
        path: str,
        params: dict[str, str],
        body: object,
        status: int,
        *,
        websocket: bool = False,
    ) -> None:
        if self._record_requests:
            query = {k: v for k, v in params.items() if k != "api_key"}
            self.requests.append(RecordedRequest(method, path, query, body, status, websocket))

    def _pushed_marker(self) -> int:
        return sum(len(sock.queue) for sock in self._sockets)

    @staticmethod
    def _parse_body(content_type: str, raw: bytes, params: dict[str, str]) -> object:
        if not raw:
            return None
        if content_type == "application/x-www-form-urlencoded":
            form = dict(parse_qsl(raw.decode(errors="replace"), keep_blank_values=True))
            params.update(form)
            return form
        try:
            body = json.loads(raw)
        except ValueError:
            return raw.decode(errors="replace")
        if isinstance(body, dict):
            for key, value in body.items():
                if key == "variables":
                    continue
                if isinstance(value, bool):
                    params[key] = "true" if value else "false"
                elif isinstance(value, (str, int, float)):
                    params[key] = str(value)
        return body

    def _authenticate(self, request: web.Request) -> bool:
        """Basic auth when the header is there, else ``api_key=user:pass`` (res_ari.c authenticate_user)."""
        header = request.headers.get("Authorization")
        if header is not None:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "basic":
                return False
            try:
                user, _, password = base64.b64decode(token, validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return False
        else:
            api_key = request.query.get("api_key")
            if api_key is None:
                return False
            user, _, password = api_key.partition(":")
        return user in self.users and self.users[user] == password

    def _gate(self, request: web.Request) -> _Reply | None:
        """Authentication, then boot state, in res_ari.c's order."""
        if not self._authenticate(request):
            reply = _Reply(401, "Unauthorized", '{"message":"Authentication required"}')
            reply.headers["WWW-Authenticate"] = f'Basic realm="{_REALM}"'
            return reply
        if self._booting_until is not None:
            if self.scheduler.monotonic() < self._booting_until:
                return _Reply(503, "Service Unavailable", '{"message":"Asterisk not booted"}')
            self._booting_until = None
        return None

    def _fault(self, method: str, path: str) -> _Reply | None:
        for fault in self._faults:
            if fault.method == method and fnmatch.fnmatchcase(path, fault.pattern):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
                return _Reply(fault.status, http.HTTPStatus(fault.status).phrase, fault.body)
        return None

    @staticmethod
    def _to_response(reply: _Reply) -> web.Response:
        if reply.text is not None:
            headers = dict(_JSON_HEADERS)
            headers.update(reply.headers)
            return web.Response(
                status=reply.status, reason=reply.reason, body=reply.text.encode(), headers=headers
            )
        headers = dict(_PLAIN_HEADERS)
        headers.update(reply.headers)
        if reply.body is not None:
            headers["Content-Type"] = reply.content_type
            return web.Response(status=reply.status, reason=reply.reason, body=reply.body, headers=headers)
        return web.Response(status=reply.status, reason=reply.reason, headers=headers)

    def _dispatch(self, method: str, tail: str, params: dict[str, str], body: object) -> _Reply:
        if tail.endswith("/"):
            slashless = tail.rstrip("/")
            return _Reply(
                404,
                "Not Found",
                json.dumps({"message": f"ARI URLs do not end with a slash. Try /ari/{slashless}"}),
            )
        node = self._root
        path_vars: dict[str, str] = {}
        for segment in tail.split("/"):
            if not segment:
                break
            child = node.children.get(segment)
            if child is None and node.wildcard is not None:
                path_vars[node.wildname] = segment
                child = node.wildcard
            if child is None:
                return _Reply(404, "Not Found", '{"message":"Resource not found"}')
            node = child
        handler = node.methods.get(method)
        if handler is None:
            reply = _Reply(405, "Method Not Allowed", '{"message":"Invalid method"}')
            reply.headers["Allow"] = ",".join(sorted(node.methods))
            return reply
        try:
            return handler(_Ctx(method, params, body, path_vars))
        except _HttpError as err:
            return err.reply

    # ------------------------------------------------------------------ events WebSocket

    async def _events(self, request: web.Request) -> web.StreamResponse:
        reply = self._gate(request)
        if reply is not None:
            return self._to_response(reply)
        apps = [a for a in request.query.get("app", "").split(",") if a]
        if not apps:
            return web.Response(
                status=400,
                reason="Bad Request",
                text=_MISSING_APP_HTML,
                content_type="text/html",
                headers=_PLAIN_HEADERS,
            )
        # Asterisk never pings (autoping off, no heartbeat); it answers pings unless told not to.
        ws = web.WebSocketResponse(autoping=False, heartbeat=None)
        await ws.prepare(request)
        sock = _EventSocket(ws, request, apps)
        self._sockets.add(sock)
        for app in apps:
            self.register_app(app, sock.sink)
        try:
            async for msg in ws:
                if msg.type is WSMsgType.PING:
                    if self._ponging:
                        await ws.pong(msg.data)
                elif msg.type is WSMsgType.TEXT and self.rest_over_websocket:
                    # Asterisk 20.14 and later treat client text frames as REST-over-WebSocket requests
                    # and run them one after the other (older ones read and drop them).
                    sock.push(self._rest_over_ws(msg.data, apps[0]))
                elif msg.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
                    break
        finally:
            for app in apps:
                self.unregister_app(app, sock.sink)
            self._sockets.discard(sock)
            if not sock.task.done():
                sock.eof()
                await sock.task
        return ws

    def _rest_over_ws(self, data: str, app: str) -> str:
        base = {"type": "RESTResponse", "transaction_id": "", "request_id": "", "status_code": 400}
        try:
            message = json.loads(data)
        except ValueError:
            base.update({"reason_phrase": "Failed to parse request message JSON", "uri": ""})
            return self._ws_reply(base, None, app)
        if not isinstance(message, dict):
            message = {}
        base["transaction_id"] = str(message.get("transaction_id") or "")
        base["request_id"] = str(message.get("request_id") or "")
        uri = str(message.get("uri") or "")
        base["uri"] = uri
        error: str | None = None
        method = str(message.get("method") or "").upper()
        if not message.get("type"):
            error = "No 'type' property."
        elif message.get("type") != "RESTRequest":
            error = "Unknown request type."
        elif not uri:
            error = "Empty or missing 'uri' property."
        elif method not in ("GET", "POST", "PUT", "DELETE", "OPTIONS", "HEAD"):
            error = "Unknown or missing 'method' property."
        if error is not None:
            base["reason_phrase"] = "Bad request"
            return self._ws_reply(base, json.dumps({"message": error}, separators=(",", ":")), app)
        path, _, query = uri.lstrip("/").partition("?")
        params = dict(parse_qsl(query, keep_blank_values=True))
        for pair in message.get("query_strings") or []:
            if isinstance(pair, dict) and "name" in pair:
                params[str(pair["name"])] = str(pair.get("value", ""))
        body: object = None
        if message.get("message_body"):
            body = self._parse_body(
                str(message.get("content_type") or ""), str(message["message_body"]).encode(), params
            )
        reply = self._fault(method, f"/ari/{path}") or self._dispatch(method, path, params, body)
        if reply.body is not None:
            # ari_websockets.c send_rest_response: a file answer cannot go in a frame.
            reply = _Reply(406, "Not Acceptable.  Use HTTP GET")
        self._record(method, f"/ari/{path}", params, body, reply.status, websocket=True)
        base["status_code"] = reply.status
        base["reason_phrase"] = reply.reason
        return self._ws_reply(base, reply.text, app)

    def _ws_reply(self, base: dict[str, object], body: str | None, app: str) -> str:
        if body is not None:
            base["content_type"] = "application/json"
            base["message_body"] = body
        base["application"] = app
        base["timestamp"] = ari_timestamp(self.scheduler.now())
        base["asterisk_id"] = self.asterisk_id
        return json.dumps(base, separators=(",", ":"))

    # ------------------------------------------------------------------ routes

    def _route(self, method: str, pattern: str, handler: _Handler) -> None:
        node = self._root
        for segment in pattern.split("/"):
            if segment.startswith("{"):
                if node.wildcard is None:
                    node.wildcard = _Node()
                    node.wildname = segment.strip("{}")
                node = node.wildcard
            else:
                node = node.children.setdefault(segment, _Node())
        node.methods[method] = handler

    def _routes(self) -> None:
        r = self._route
        r("GET", "events", self._events_from_websocket)
        r("GET", "asterisk/info", self._asterisk_info)
        r("GET", "asterisk/ping", self._asterisk_ping)
        r("GET", "asterisk/variable", self._global_get)
        r("POST", "asterisk/variable", self._global_set)
        r("GET", "applications", self._apps_list)
        r("GET", "applications/{applicationName}", self._app_get)
        r("PUT", "applications/{applicationName}/eventFilter", self._app_filter)
        r("GET", "endpoints", self._endpoints_list)
        r("GET", "endpoints/{tech}", self._endpoints_by_tech)
        r("GET", "endpoints/{tech}/{resource}", self._endpoint_get)
        r("GET", "channels", self._channels_list)
        r("POST", "channels", self._originate)
        r("POST", "channels/create", self._not_modelled)
        r("GET", "channels/{channelId}", self._channel_get)
        r("POST", "channels/{channelId}", self._originate)
        r("DELETE", "channels/{channelId}", self._channel_hangup)
        r("POST", "channels/{channelId}/answer", self._channel_answer)
        r("POST", "channels/{channelId}/ring", self._channel_ring)
        r("DELETE", "channels/{channelId}/ring", self._channel_ring)
        r("POST", "channels/{channelId}/continue", self._channel_continue)
        r("POST", "channels/{channelId}/play", self._channel_play)
        r("POST", "channels/{channelId}/play/{playbackId}", self._channel_play)
        r("POST", "channels/{channelId}/record", self._channel_record)
        r("POST", "channels/{channelId}/dtmf", self._channel_dtmf)
        r("GET", "channels/{channelId}/variable", self._channel_var_get)
        r("POST", "channels/{channelId}/variable", self._channel_var_set)
        for sub in ("moh", "silence"):
            r("POST", f"channels/{{channelId}}/{sub}", self._channel_no_event)
            r("DELETE", f"channels/{{channelId}}/{sub}", self._channel_no_event)
        r("GET", "bridges", self._bridges_list)
        r("POST", "bridges", self._bridge_create)
        r("GET", "bridges/{bridgeId}", self._bridge_get)
        r("POST", "bridges/{bridgeId}", self._bridge_create)
        r("DELETE", "bridges/{bridgeId}", self._bridge_destroy)
        r("POST", "bridges/{bridgeId}/addChannel", self._bridge_add)
        r("POST", "bridges/{bridgeId}/removeChannel", self._bridge_remove)
        r("POST", "bridges/{bridgeId}/moh", self._bridge_moh_start)
        r("DELETE", "bridges/{bridgeId}/moh", self._bridge_moh_stop)
        r("GET", "playbacks/{playbackId}", self._playback_get)
        r("DELETE", "playbacks/{playbackId}", self._playback_stop)
        r("POST", "playbacks/{playbackId}/control", self._playback_control)
        r("GET", "recordings/stored", self._stored_list)
        r("GET", "recordings/stored/{recordingName}", self._stored_get)
        r("DELETE", "recordings/stored/{recordingName}", self._stored_delete)
        r("GET", "recordings/stored/{recordingName}/file", self._stored_file)
        r("GET", "recordings/live/{recordingName}", self._live_get)
        r("DELETE", "recordings/live/{recordingName}", self._live_cancel)
        r("POST", "recordings/live/{recordingName}/stop", self._live_stop)
        r("POST", "recordings/live/{recordingName}/pause", self._live_pause)
        r("DELETE", "recordings/live/{recordingName}/pause", self._live_unpause)
        r("POST", "recordings/live/{recordingName}/mute", self._live_mute)
        r("DELETE", "recordings/live/{recordingName}/mute", self._live_unmute)

    def _events_from_websocket(self, ctx: _Ctx) -> _Reply:
        # Only reached through REST-over-WebSocket: an HTTP GET is upgraded in _handle.
        raise _HttpError(400, "Bad request", "Can't upgrade to websocket from a websocket")

    def _not_modelled(self, ctx: _Ctx) -> _Reply:
        raise _HttpError(501, "Not Implemented", "Not modelled by the simulated Asterisk")

    # ------------------------------------------------------------------ asterisk, applications, endpoints

    def _asterisk_info(self, ctx: _Ctx) -> _Reply:
        return _ok(
            json.dumps(
                {
                    "build": {
                        "os": "Linux",
                        "kernel": "6.18.44-fc-v669",
                        "machine": "x86_64",
                        "options": "OPTIONAL_API",
                        "date": "2026-11-23 18:41:11 UTC",
                        "user": "root",
                    },
                    "system": {"version": ASTERISK_VERSION, "entity_id": self.asterisk_id},
                    "config": {"name": "", "default_language": "en", "setid": {"user": "", "group": ""}},
                    "status": {"startup_time": self.startup_time, "last_reload_time": self.startup_time},
                },
                separators=(",", ":"),
            )
        )

    def _asterisk_ping(self, ctx: _Ctx) -> _Reply:
        return _ok(
            json.dumps(
                {
                    "ping": "pong",
                    "timestamp": ari_timestamp(self.scheduler.now()),
                    "asterisk_id": self.asterisk_id,
                },
                separators=(",", ":"),
            )
        )

    def _global_get(self, ctx: _Ctx) -> _Reply:
        name = ctx.get("variable")
        if not name:
            raise _HttpError(400, "Bad Request", "Variable name is required")
        # An unknown global reads as empty (ASTERISK_VERSION_NUM gave {"value":""} in the capture).
        return _ok(json.dumps({"value": self.global_variables.get(name, "")}))

    def _global_set(self, ctx: _Ctx) -> _Reply:
        name = ctx.get("variable")
        if not name:
            raise _HttpError(400, "Bad Request", "Variable name is required")
        if "value" in ctx.params:
            self.global_variables[name] = ctx.params["value"]
        else:
            self.global_variables.pop(name, None)
        return _no_content()

    def _apps_list(self, ctx: _Ctx) -> _Reply:
        return _ok("[" + ",".join(self.app_json(name) for name in self.app_names()) + "]")

    def _app_get(self, ctx: _Ctx) -> _Reply:
        name = ctx.path["applicationName"]
        if not self.app_registered(name):
            # 404 while no WebSocket holds the application, even if its channels are still in Stasis.
            raise _HttpError(404, "Not Found", "Application not found")
        return _ok(self.app_json(name))

    def _app_filter(self, ctx: _Ctx) -> _Reply:
        """res/ari/resource_applications.c ``ast_ari_applications_filter``: 200 with the Application."""
        name = ctx.path["applicationName"]
        if not self.app_registered(name):
            raise _HttpError(404, "Not Found", "Application not found")
        body = ctx.body
        if isinstance(body, str):
            try:
                body = json.loads(body)
            except ValueError:
                # res_ari.c refuses a JSON body it cannot parse before any resource sees it.
                raise _HttpError(400, "Bad Request", "Error parsing request body") from None
        if not self.set_event_filter(name, body):
            raise _HttpError(400, "Bad Request", "Invalid format definition")
        return _ok(self.app_json(name))

    def _endpoint_dicts(self) -> list[dict[str, object]]:
        names = [f"{self.inbound_tech}/{self.inbound_trunk}", *self.endpoints]
        result: list[dict[str, object]] = []
        for name in names:
            tech, _, resource = name.partition("/")
            ids = [c.id for c in self.channels.values() if c.tech == tech and c.resource == resource]
            result.append({"technology": tech, "resource": resource, "state": "unknown", "channel_ids": ids})
        return result

    def _endpoints_list(self, ctx: _Ctx) -> _Reply:
        return _ok(json.dumps(self._endpoint_dicts(), separators=(",", ":")))

    def _endpoints_by_tech(self, ctx: _Ctx) -> _Reply:
        tech = ctx.path["tech"]
        found = [e for e in self._endpoint_dicts() if e["technology"] == tech]
        if not found:
            raise _HttpError(404, "Not Found", f"No Endpoints found - invalid tech {tech}")
        return _ok(json.dumps(found, separators=(",", ":")))

    def _endpoint_get(self, ctx: _Ctx) -> _Reply:
        for e in self._endpoint_dicts():
            if e["technology"] == ctx.path["tech"] and e["resource"] == ctx.path["resource"]:
                return _ok(json.dumps(e, separators=(",", ":")))
        raise _HttpError(404, "Not Found", "Endpoint not found")

    # ------------------------------------------------------------------ channels

    def _channel(self, channel_id: str) -> Channel:
        channel = self.channels.get(channel_id)
        if channel is None:
            raise _HttpError(404, "Not Found", "Channel not found")
        return channel

    def _control(self, channel_id: str, *, state_check: bool = True) -> Channel:
        """``find_control`` then ``channel_state_invalid`` of resource_channels.c."""
        channel = self._channel(channel_id)
        if not channel.in_stasis:
            raise _HttpError(409, "Conflict", "Channel not in Stasis application")
        if state_check and channel.state in (ChannelState.DOWN, ChannelState.RINGING):
            raise _HttpError(412, "Precondition Failed", "Channel in invalid state")
        return channel

    def _channels_list(self, ctx: _Ctx) -> _Reply:
        return _ok("[" + ",".join(c.json() for c in self.channels.values()) + "]")

    def _channel_get(self, ctx: _Ctx) -> _Reply:
        return _ok(self._channel(ctx.path["channelId"]).json())

    def _originate(self, ctx: _Ctx) -> _Reply:
        endpoint = ctx.get("endpoint")
        if not endpoint:
            raise _HttpError(400, "Bad Request", "Endpoint must be specified")
        tech, _, resource = endpoint.partition("/")
        if not tech or not resource:
            raise _HttpError(400, "Bad Request", "Invalid endpoint specified")
        app = ctx.get("app") or None
        if app is None and not ctx.get("extension"):
            raise _HttpError(400, "Bad Request", "Application or extension must be specified")
        channel_id = ctx.path.get("channelId") or ctx.get("channelId") or None
        if channel_id is not None and channel_id in self.channels:
            raise _HttpError(409, "Conflict", "Channel with given unique ID already exists")
        timeout = atoi(ctx.get("timeout", "30"))
        # ari_channels_handle_originate_with_id: >0 as given, -1 forever, anything else 30 s.
        timeout_s = timeout if timeout > 0 else (0 if timeout == -1 else 30)
        variables: dict[str, str] = {}
        if isinstance(ctx.body, dict) and isinstance(ctx.body.get("variables"), dict):
            variables = {str(k): str(v) for k, v in ctx.body["variables"].items()}
        created = self.originate(
            endpoint,
            app=app,
            app_args=ctx.get("appArgs"),
            caller_id=ctx.get("callerId"),
            timeout_s=timeout_s,
            variables=variables,
            channel_id=channel_id,
            context=ctx.get("context") or None,
            extension=ctx.get("extension") or None,
            priority=atoi(ctx.get("priority", "1")) or 1,
        )
        if created is None:
            # Unknown technology, unknown or unregistered endpoint: ast_dial_prerun fails and ARI
            # answers ast_ari_response_alloc_failed, the one body keyed "error".
            raise _HttpError(500, "Internal Server Error", "Allocation failed", key="error")
        return _ok(created[1])

    def _channel_hangup(self, ctx: _Ctx) -> _Reply:
        channel = self._channel(ctx.path["channelId"])
        reason, code = ctx.get("reason"), ctx.get("reason_code")
        if reason and code:
            raise _HttpError(400, "Bad Request", "The reason and reason_code can't both be specified")
        cause = 16
        if code:
            if not code.strip().lstrip("-").isdigit():
                raise _HttpError(400, "Invalid Reason Code", "Invalid reason for hangup reason code provided")
            cause = atoi(code)
        elif reason:
            if reason not in _HANGUP_REASONS:
                raise _HttpError(400, "Invalid Reason", "Invalid reason for hangup reason provided")
            cause = _HANGUP_REASONS[reason]
        self.hangup_channel(channel, cause)
        return _no_content()

    def _channel_answer(self, ctx: _Ctx) -> _Reply:
        self.answer(self._control(ctx.path["channelId"]))
        return _no_content()

    def _channel_ring(self, ctx: _Ctx) -> _Reply:
        # Ringing indication goes to the caller only: no ChannelStateChange (ari_preanswer_abandon).
        self._control(ctx.path["channelId"])
        return _no_content()

    def _channel_no_event(self, ctx: _Ctx) -> _Reply:
        # Channel MOH and silence produce no ARI event.
        self._control(ctx.path["channelId"])
        return _no_content()

    def _channel_continue(self, ctx: _Ctx) -> _Reply:
        channel = self._control(ctx.path["channelId"])
        context, extension, label = ctx.get("context"), ctx.get("extension"), ctx.get("label")
        if not context:
            ctx_name, exten = channel.context, extension or channel.exten
        else:
            ctx_name, exten = context, extension or "s"
        priority = atoi(ctx.get("priority", "0"))
        if label:
            if not label.strip().lstrip("-").isdigit():
                raise _HttpError(404, "Not Found", "Requested label can not be found")
            priority = atoi(label)
            if priority == 0:
                raise _HttpError(400, "Bad Request", "Requested priority is illegal")
        elif not priority:
            # No context, extension or priority: resume at the next priority.
            priority = channel.priority + 1 if not context and not extension else 1
        self.continue_in_dialplan(channel, ctx_name, exten, priority)
        return _no_content()

    def _channel_play(self, ctx: _Ctx) -> _Reply:
        channel = self._control(ctx.path["channelId"])
        if atoi(ctx.get("skipms", "3000")) < 0:
            raise _HttpError(400, "Bad Request", "skipms cannot be negative")
        if atoi(ctx.get("offsetms", "0")) < 0:
            raise _HttpError(400, "Bad Request", "offsetms cannot be negative")
        # One comma-separated media list; a repeated media= key keeps only the last value.
        media = ctx.get("media").split(",") if ctx.get("media") else []
        if not media or any(not m for m in media):
            raise _HttpError(500, "Internal Server Error", "Failed to queue media for playback")
        playback_id = ctx.path.get("playbackId") or ctx.get("playbackId") or None
        playback = self.play(channel, media, ctx.get("lang") or channel.language, playback_id)
        reply = _Reply(201, "Created", playback.json("queued"))
        reply.headers["Location"] = f"/playbacks/{playback.id}"
        return reply

    def _channel_record(self, ctx: _Ctx) -> _Reply:
        max_duration, max_silence = (
            atoi(ctx.get("maxDurationSeconds", "0")),
            atoi(ctx.get("maxSilenceSeconds", "0")),
        )
        if max_duration < 0:
            raise _HttpError(400, "Bad Request", "max_duration_seconds cannot be negative")
        if max_silence < 0:
            raise _HttpError(400, "Bad Request", "max_silence_seconds cannot be negative")
        channel = self._control(ctx.path["channelId"], state_check=False)
        terminate = ctx.get("terminateOn", "none") or "none"
        if terminate not in ("none", "any", "*", "#"):
            raise _HttpError(400, "Bad Request", "terminateOn invalid")
        if_exists = ctx.get("ifExists", "fail") or "fail"
        if if_exists not in ("fail", "overwrite", "append"):
            raise _HttpError(400, "Bad Request", "ifExists invalid")
        fmt, name = ctx.get("format"), ctx.get("name")
        if fmt not in RECORDING_FORMATS:
            raise _HttpError(422, "Unprocessable Entity", "specified format is unknown on this system")
        if not name:
            raise _HttpError(500, "Internal Server Error", "Error parsing request")
        if ".." in name.split("/"):
            raise _HttpError(400, "Bad Request", "Recording name invalid")
        if (if_exists == "fail" and name in self.stored_recordings) or name in self.live_recordings:
            raise _HttpError(409, "Conflict", f"Recording '{name}' already exists and can not be overwritten")
        recording = self.record(
            channel,
            name=name,
            fmt=fmt,
            max_duration_s=max_duration,
            max_silence_s=max_silence,
            beep=_true(ctx.get("beep", "false")),
            terminate_on=terminate,
            if_exists=if_exists,
        )
        # The 201 body says "queued" though RecordingStarted may already be on the socket.
        body = json.loads(recording.json())
        body["state"] = "queued"
        reply = _Reply(201, "Created", json.dumps(body, separators=(",", ":")))
        reply.headers["Location"] = f"/recordings/live/{name}"
        return reply

    def _channel_dtmf(self, ctx: _Ctx) -> _Reply:
        self._control(ctx.path["channelId"])
        if not ctx.get("dtmf"):
            raise _HttpError(400, "Bad Request", "DTMF is required")
        return _no_content()  # sent to the far end: no event reaches the app

    def _channel_var_get(self, ctx: _Ctx) -> _Reply:
        name = ctx.get("variable")
        if not name:
            raise _HttpError(400, "Bad Request", "Variable name is required")
        channel = self.channels.get(ctx.path["channelId"])
        if channel is None:
            # Not "Channel not found": this resource words it differently (ari_resync rest log).
            raise _HttpError(404, "Channel Not Found", "Provided channel was not found")
        if name.endswith(")") and not self.is_known_function(name):
            raise _HttpError(500, "Error With Function", "Unable to read provided function")
        value = self.get_variable(channel, name)
        if value is None:
            raise _HttpError(404, "Variable Not Found", "Provided variable was not found")
        return _ok(json.dumps({"value": value}))

    def _channel_var_set(self, ctx: _Ctx) -> _Reply:
        name = ctx.get("variable")
        if not name:
            raise _HttpError(400, "Bad Request", "Variable name is required")
        channel = self._control(ctx.path["channelId"], state_check=False)
        if name.endswith(")") and not self.is_known_function(name):
            raise _HttpError(400, "Bad Request", "Failed to execute function")
        self.set_variable(channel, name, ctx.params.get("value"))
        return _no_content()

    # ------------------------------------------------------------------ bridges

    def _bridge(self, bridge_id: str) -> Bridge:
        bridge = self.bridges.get(bridge_id)
        if bridge is None:
            raise _HttpError(404, "Not found", "Bridge not found")
        return bridge

    def _bridge_channels(self, ctx: _Ctx) -> list[Channel]:
        """``control_list_create`` of resource_bridges.c: 400 for an unknown channel, 422 outside Stasis."""
        ids = [c for c in ctx.get("channel").split(",") if c]
        if not ids:
            raise _HttpError(400, "Bad Request", "Missing parameter channel")
        found = []
        for channel_id in ids:
            channel = self.channels.get(channel_id)
            if channel is None:
                raise _HttpError(400, "Bad Request", "Channel not found")
            if not channel.in_stasis:
                raise _HttpError(422, "Unprocessable Entity", "Channel not in Stasis application")
            found.append(channel)
        return found

    def _bridges_list(self, ctx: _Ctx) -> _Reply:
        return _ok("[" + ",".join(b.json() for b in self.bridges.values()) + "]")

    def _bridge_create(self, ctx: _Ctx) -> _Reply:
        bridge_id = ctx.path.get("bridgeId") or ctx.get("bridgeId") or None
        if bridge_id is not None and bridge_id in self.bridges:
            raise _HttpError(409, "Conflict", f"Bridge with id '{bridge_id}' already exists")
        bridge = self.create_bridge(ctx.get("type", "mixing") or "mixing", ctx.get("name"), bridge_id)
        # 200, not 201, and no BridgeCreated event (no app is subscribed to a new bridge).
        return _ok(bridge.json())

    def _bridge_get(self, ctx: _Ctx) -> _Reply:
        bridge = self.bridges.get(ctx.path["bridgeId"])
        if bridge is None:
            raise _HttpError(404, "Not Found", "Bridge not found")
        return _ok(bridge.json())

    def _bridge_destroy(self, ctx: _Ctx) -> _Reply:
        self.destroy_bridge(self._bridge(ctx.path["bridgeId"]))
        return _no_content()

    def _bridge_add(self, ctx: _Ctx) -> _Reply:
        bridge = self._bridge(ctx.path["bridgeId"])
        self.add_to_bridge(bridge, self._bridge_channels(ctx))
        return _no_content()

    def _bridge_remove(self, ctx: _Ctx) -> _Reply:
        bridge = self._bridge(ctx.path["bridgeId"])
        channels = self._bridge_channels(ctx)
        if any(c.bridge_id != bridge.id for c in channels):
            raise _HttpError(422, "Unprocessable Entity", "Channel not in this bridge")
        self.remove_from_bridge(bridge, channels)
        return _no_content()

    def _bridge_moh_start(self, ctx: _Ctx) -> _Reply:
        self.start_moh(self._bridge(ctx.path["bridgeId"]), ctx.get("mohClass") or "default")
        return _no_content()

    def _bridge_moh_stop(self, ctx: _Ctx) -> _Reply:
        if not self.stop_moh(self._bridge(ctx.path["bridgeId"])):
            raise _HttpError(409, "Conflict", "Bridge isn't playing music")
        return _no_content()

    # ------------------------------------------------------------------ playbacks

    def _playback_get(self, ctx: _Ctx) -> _Reply:
        playback = self.playbacks.get(ctx.path["playbackId"])
        if playback is None:
            raise _HttpError(404, "Not Found", "Playback not found")
        return _ok(playback.json())

    def _playback_stop(self, ctx: _Ctx) -> _Reply:
        playback = self.playbacks.get(ctx.path["playbackId"])
        if playback is None:
            raise _HttpError(404, "Not Found", "Playback not found")
        self.stop_playback(playback)
        return _no_content()

    def _playback_control(self, ctx: _Ctx) -> _Reply:
        operation = ctx.get("operation")
        if not operation:
            raise _HttpError(400, "Bad Request", "Missing operation")
        if operation not in ("unpause", "pause", "restart", "reverse", "forward"):
            raise _HttpError(400, "Bad Request", f"Invalid operation {operation}")
        playback = self.playbacks.get(ctx.path["playbackId"])
        if playback is None:
            raise _HttpError(404, "Not Found", "Playback not found")
        if not self.control_playback(playback, operation):
            raise _HttpError(409, "Conflict", f"Can only {operation} while media is playing")
        return _no_content()

    # ------------------------------------------------------------------ recordings

    def _stored_list(self, ctx: _Ctx) -> _Reply:
        return _ok(
            json.dumps([{"name": s.name, "format": s.format} for s in self.stored_recordings.values()])
        )

    def _stored(self, name: str) -> tuple[str, str, bytes]:
        stored = self.stored_recordings.get(name)
        if stored is None:
            raise _HttpError(404, "Not Found", "Recording not found")
        return stored.name, stored.format, stored.data

    def _stored_get(self, ctx: _Ctx) -> _Reply:
        name, fmt, _ = self._stored(ctx.path["recordingName"])
        return _ok(json.dumps({"name": name, "format": fmt}))

    def _stored_delete(self, ctx: _Ctx) -> _Reply:
        self._stored(ctx.path["recordingName"])
        del self.stored_recordings[ctx.path["recordingName"]]
        return _no_content()

    def _stored_file(self, ctx: _Ctx) -> _Reply:
        _, fmt, data = self._stored(ctx.path["recordingName"])
        content_type = "audio/wav" if fmt in ("wav", "wav16") else "application/octet-stream"
        return _Reply(200, "OK", body=data, content_type=content_type)

    def _live(self, name: str) -> LiveRecording:
        recording = self.live_recordings.get(name)
        if recording is None:
            raise _HttpError(404, "Not Found", "Recording not found")
        return recording

    def _live_get(self, ctx: _Ctx) -> _Reply:
        return _ok(self._live(ctx.path["recordingName"]).json())

    def _live_cancel(self, ctx: _Ctx) -> _Reply:
        self.stop_recording(self._live(ctx.path["recordingName"]), keep=False)
        return _no_content()

    def _live_stop(self, ctx: _Ctx) -> _Reply:
        self.stop_recording(self._live(ctx.path["recordingName"]), keep=True)
        return _no_content()

    def _live_pause(self, ctx: _Ctx) -> _Reply:
        recording = self._live(ctx.path["recordingName"])
        if recording.state == "queued":
            raise _HttpError(409, "Conflict", "Recording not in session")
        self.pause_recording(recording, True)  # 204 and no event; GET shows "paused"
        return _no_content()

    def _live_unpause(self, ctx: _Ctx) -> _Reply:
        recording = self._live(ctx.path["recordingName"])
        if recording.state == "queued":
            raise _HttpError(409, "Conflict", "Recording not in session")
        self.pause_recording(recording, False)
        return _no_content()

    def _live_mute(self, ctx: _Ctx) -> _Reply:
        self._live(ctx.path["recordingName"]).muted = True
        return _no_content()

    def _live_unmute(self, ctx: _Ctx) -> _Reply:
        self._live(ctx.path["recordingName"]).muted = False
        return _no_content()


def make_ari_app(sim: SimulatedAsterisk) -> web.Application:
    """The aiohttp application of ``sim`` (for ``aiohttp_server(make_ari_app(sim))``)."""
    return sim.app
