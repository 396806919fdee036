"""ARI REST client over aiohttp: typed calls, errors mapped at the boundary (edge).

Every request runs under ``asyncio.timeout`` and maps what goes wrong to our error tree:

* 404 on a channel (``/channels/{id}...``) -> :class:`~callcenter.errors.ChannelGoneError`; on any
  other resource -> :class:`~callcenter.errors.NotFoundError`. Both carry Asterisk's message.
* Asterisk's ways of saying "that channel is not yours any more" on other routes also give
  :class:`ChannelGoneError`: 400 ``Channel not found`` (bridge add/remove) and 409/422
  ``Channel not in Stasis application``.
* 5xx -> :class:`AriServerError` (an :class:`~callcenter.errors.AsteriskUnavailableError`); connection
  errors, timeouts, 401/403 and unreadable bodies -> :class:`~callcenter.errors.AsteriskUnavailableError`.
* Any other 4xx (400, 409, 412, 422) -> :class:`AriRequestError` with status and message.

Asterisk answers errors as ``{"message": ...}`` and sometimes ``{"error": ...}`` (``POST /channels``
with an unknown technology: 500 ``Allocation failed``); non-JSON bodies (the HTML 400 of a bad
WebSocket upgrade) are tolerated and quoted.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Final, TypeVar
from urllib.parse import quote

import aiohttp

from callcenter.ari.events import (
    Bridge,
    Channel,
    LiveRecording,
    MalformedAriEventError,
    Playback,
    PlaybackState,
    RecordingState,
    parse_bridge,
    parse_channel,
    parse_time,
)
from callcenter.ari.wsrest import WebSocketRest
from callcenter.config import AriSettings
from callcenter.errors import (
    AsteriskUnavailableError,
    CallCenterError,
    ChannelGoneError,
    ConfigError,
    NotFoundError,
)

logger = logging.getLogger(__name__)

# Messages Asterisk uses when a channel named in the request is not (or no longer) ours.
_CHANNEL_GONE_MESSAGES: Final = ("channel not found", "channel not in stasis application")


class AriRequestError(CallCenterError):
    """ARI refused a request (400, 409, 412, 422 ...): a bad argument or a state conflict, not an outage.

    :ivar status: the HTTP status. :ivar message: Asterisk's message. :ivar method, path: the request.
    """

    def __init__(self, method: str, path: str, status: int, message: str) -> None:
        super().__init__(f"ARI {method} {path} answered {status}: {message}")
        self.method = method
        self.path = path
        self.status = status
        self.message = message


class AriServerError(AsteriskUnavailableError):
    """ARI answered 5xx (503 ``Asterisk not booted`` during a restart, 500 ``Allocation failed``)."""

    def __init__(self, method: str, path: str, status: int, message: str) -> None:
        super().__init__(f"ARI {method} {path} answered {status}: {message}")
        self.method = method
        self.path = path
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class StoredRecording:
    """A finished recording on Asterisk's disk (``GET /recordings/stored/{name}``: no size, no duration)."""

    name: str
    format: str


@dataclass(frozen=True, kw_only=True, slots=True)
class AriApplication:
    """A registered Stasis application; 404 while no WebSocket holds it."""

    name: str
    channel_ids: tuple[str, ...]
    bridge_ids: tuple[str, ...]
    endpoint_ids: tuple[str, ...] = ()
    #: The event types of its filter (``PUT /applications/{name}/eventFilter``); empty: no filter.
    events_allowed: tuple[str, ...] = ()
    events_disallowed: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True, slots=True)
class AsteriskInfo:
    """What ``GET /asterisk/info`` tells about the PBX."""

    version: str
    entity_id: str
    startup_time: datetime | None


@dataclass(frozen=True, kw_only=True, slots=True)
class AriEndpoint:
    """An endpoint (``SIP/alice``) and the channels it has now."""

    technology: str
    resource: str
    state: str
    channel_ids: tuple[str, ...]


def ari_base_url(settings: AriSettings) -> str:
    """``<url>/ari`` for the configured ARI URL (which may or may not end in ``/ari``).

    :raises ConfigError: when no ARI URL is configured.
    """
    if not settings.url:
        raise ConfigError("CALLCENTER_ARI_URL: no Asterisk is configured")
    base = settings.url.rstrip("/")
    return base if base.endswith("/ari") else base + "/ari"


def ari_auth_headers(settings: AriSettings) -> dict[str, str]:
    """The basic-auth header for the ARI user (in a header, never in a URL that could be logged).

    :raises ConfigError: for a user name holding ``:``.
    """
    try:
        return {"Authorization": aiohttp.encode_basic_auth(settings.username, settings.password)}
    except ValueError as exc:
        raise ConfigError(f"CALLCENTER_ARI_USERNAME: {exc}") from None


def _seg(value: str) -> str:
    """One path segment, percent-encoded (channel ids hold dots, names may hold anything)."""
    return quote(value, safe="")


def _flag(value: bool) -> str:
    return "true" if value else "false"


class AriClient:
    """The ARI REST calls we use, with basic auth on a shared :class:`aiohttp.ClientSession`.

    :param timeout_s: the limit of each request once sent, connection included.
    :param max_in_flight: HTTP requests sent at once; later ones wait their turn (their ``timeout_s``
        starts when they are sent). A burst of calls then queues here instead of timing out
        together, and Asterisk's HTTP server (``sessionlimit``, 100 by default) is not flooded.
        Requests over the events socket (:meth:`use_websocket`) are not counted: Asterisk runs those
        one at a time anyway, and the stall guard sends new ones over HTTP when they pile up.

    Channel methods raise :class:`ChannelGoneError` when the channel is gone; every method raises
    :class:`AsteriskUnavailableError` when ARI cannot be reached or answers 5xx, and
    :class:`AriRequestError` for other refusals (see the module docstring).
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        settings: AriSettings,
        *,
        timeout_s: float = 5.0,
        max_in_flight: int = 32,
    ) -> None:
        self._session = session
        self._slots = asyncio.Semaphore(max(1, max_in_flight))
        self._base = ari_base_url(settings)
        self._headers = ari_auth_headers(settings)
        self._timeout_s = timeout_s
        self._websocket: WebSocketRest | None = None

    def use_websocket(self, rest: WebSocketRest) -> None:
        """Send requests over the events socket behind ``rest`` while it is usable (HTTP otherwise)."""
        self._websocket = rest

    @property
    def base_url(self) -> str:
        return self._base

    # -- channels --------------------------------------------------------------------------------

    async def list_channels(self) -> tuple[Channel, ...]:
        """Every channel Asterisk has now (all of them, not only our application's).

        A channel object we cannot read is logged and left out: one odd channel must not stop a resync.
        """
        body = await self._json("GET", "/channels")
        channels: list[Channel] = []
        for item in _list(body, "GET /channels"):
            try:
                channels.append(parse_channel(_obj(item, "GET /channels item")))
            except (MalformedAriEventError, AsteriskUnavailableError) as exc:
                logger.warning("ARI GET /channels: skipped an unreadable channel: %s", exc)
        return tuple(channels)

    async def get_channel(self, channel_id: str) -> Channel:
        return _parsed_channel(await self._json("GET", f"/channels/{_seg(channel_id)}"), "GET /channels/{id}")

    async def answer(self, channel_id: str) -> None:
        await self._call("POST", f"/channels/{_seg(channel_id)}/answer")

    async def ring(self, channel_id: str) -> None:
        """Indicate ringing to the caller (180); Asterisk emits no event for it."""
        await self._call("POST", f"/channels/{_seg(channel_id)}/ring")

    async def hangup(self, channel_id: str, *, reason: str | None = None) -> None:
        """Hang a channel up. ``reason`` is ARI's (``normal``, ``busy``, ``congestion``, ``no_answer`` ...).

        The ``ChannelHangupRequest`` this causes carries ``cause: 32, soft: true``, whatever the reason.
        """
        params = {"reason": reason} if reason else None
        await self._call("DELETE", f"/channels/{_seg(channel_id)}", params=params)

    async def continue_in_dialplan(
        self,
        channel_id: str,
        *,
        context: str | None = None,
        extension: str | None = None,
        priority: int | None = None,
        label: str | None = None,
    ) -> None:
        """Leave Stasis; without arguments the dialplan resumes at the next priority."""
        params: dict[str, str] = {}
        if context is not None:
            params["context"] = context
        if extension is not None:
            params["extension"] = extension
        if priority is not None:
            params["priority"] = str(priority)
        if label is not None:
            params["label"] = label
        await self._call("POST", f"/channels/{_seg(channel_id)}/continue", params=params or None)

    async def play(
        self,
        channel_id: str,
        media: Sequence[str],
        *,
        playback_id: str | None = None,
        lang: str | None = None,
    ) -> Playback:
        """Start one playback of a media list (``sound:x``, ``digits:12``, ``number:42``).

        The list goes as ONE comma-separated ``media=`` value: Asterisk plays only the last of repeated
        ``media=`` keys. A missing sound file is not an error here: the 201 comes, then
        ``PlaybackFinished`` with state ``failed``. With ``playback_id`` (ours) the events can be
        matched even when they overtake this response.
        """
        if not media:
            raise ValueError("play needs at least one media item")
        if any("," in item for item in media):
            raise ValueError(f"a media item cannot contain ',' (it separates the list): {list(media)!r}")
        params = {"media": ",".join(media)}
        if lang:
            params["lang"] = lang
        path = f"/channels/{_seg(channel_id)}/play"
        if playback_id is not None:
            path += f"/{_seg(playback_id)}"
        return _playback(await self._json("POST", path, params=params), f"POST {path}")

    async def record(
        self,
        channel_id: str,
        *,
        name: str,
        format: str = "wav",
        max_duration_s: int = 0,
        max_silence_s: int = 0,
        beep: bool = False,
        terminate_on: str = "none",
        if_exists: str = "fail",
    ) -> LiveRecording:
        """Start recording a channel into ``name`` (0 means no limit; ``terminate_on``: none, any, * or #).

        The 201's state is ``queued`` or ``recording`` (it races with ``RecordingStarted``).
        ``if_exists=fail`` on an existing name gives :class:`AriRequestError` 409.
        """
        params = {
            "name": name,
            "format": format,
            "maxDurationSeconds": str(max_duration_s),
            "maxSilenceSeconds": str(max_silence_s),
            "beep": _flag(beep),
            "terminateOn": terminate_on,
            "ifExists": if_exists,
        }
        path = f"/channels/{_seg(channel_id)}/record"
        return _recording(await self._json("POST", path, params=params), f"POST {path}")

    async def send_dtmf(
        self, channel_id: str, dtmf: str, *, between_ms: int = 100, duration_ms: int = 100
    ) -> None:
        """Send DTMF to the channel (no event comes back to the application)."""
        params = {"dtmf": dtmf, "between": str(between_ms), "duration": str(duration_ms)}
        await self._call("POST", f"/channels/{_seg(channel_id)}/dtmf", params=params)

    async def get_variable(self, channel_id: str, name: str) -> str | None:
        """A channel variable or dialplan function (``CALLERID(num)``); ``None`` when unset.

        :raises ChannelGoneError: for an unknown channel.
        """
        path = f"/channels/{_seg(channel_id)}/variable"
        status, raw = await self._send("GET", path, params={"variable": name})
        if status == 404:
            message = _error_message(raw)
            # 404 "Provided variable was not found" means unset; an unknown channel is also 404, but
            # "Provided channel was not found" (not the usual "Channel not found").
            if "variable" in message.lower():
                return None
            raise ChannelGoneError(f"ARI GET {path} answered 404: {message}")
        body = _check("GET", path, status, raw)
        value = _obj(body, f"GET {path}").get("value")
        if not isinstance(value, str):
            raise AsteriskUnavailableError(f"ARI GET {path}: no string 'value' in the answer")
        return value

    async def set_variable(self, channel_id: str, name: str, value: str) -> None:
        """Set a channel variable (``CALLERID(name)`` gives ``ChannelCallerId``, others ``ChannelVarset``)."""
        params = {"variable": name, "value": value}
        await self._call("POST", f"/channels/{_seg(channel_id)}/variable", params=params)

    async def originate(
        self,
        endpoint: str,
        *,
        app: str,
        app_args: Sequence[str] = (),
        channel_id: str | None = None,
        timeout_s: int | None = None,
        caller_id: str | None = None,
        variables: Mapping[str, str] | None = None,
    ) -> Channel:
        """``POST /channels``: dial ``endpoint`` (``SIP/alice``); it enters ``app`` when answered.

        Choose ``channel_id`` to match the ``Dial``/``ChannelDestroyed`` events that can reach the
        WebSocket before this response. A ring ``timeout_s`` that expires gives only
        ``ChannelDestroyed`` cause 19. An unknown technology answers 500 ``{"error": "Allocation failed"}``.
        """
        params = {"endpoint": endpoint, "app": app}
        if app_args:
            params["appArgs"] = ",".join(app_args)
        if channel_id is not None:
            params["channelId"] = channel_id
        if timeout_s is not None:
            params["timeout"] = str(timeout_s)
        if caller_id is not None:
            params["callerId"] = caller_id
        # Variables can only go in a JSON body: {"variables": {...}}.
        json_body = {"variables": dict(variables)} if variables else None
        body = await self._json("POST", "/channels", params=params, json_body=json_body)
        return _parsed_channel(body, "POST /channels")

    # -- bridges ---------------------------------------------------------------------------------

    async def create_bridge(
        self, bridge_type: str, *, name: str = "", bridge_id: str | None = None
    ) -> Bridge:
        """Create a ``holding`` or ``mixing`` bridge (200, and no ``BridgeCreated`` event)."""
        params = {"type": bridge_type}
        if name:
            params["name"] = name
        if bridge_id is not None:
            params["bridgeId"] = bridge_id
        body = await self._json("POST", "/bridges", params=params)
        return _parsed_bridge(body, "POST /bridges")

    async def list_bridges(self) -> tuple[Bridge, ...]:
        body = await self._json("GET", "/bridges")
        return tuple(_parsed_bridge(item, "GET /bridges item") for item in _list(body, "GET /bridges"))

    async def get_bridge(self, bridge_id: str) -> Bridge:
        return _parsed_bridge(await self._json("GET", f"/bridges/{_seg(bridge_id)}"), "GET /bridges/{id}")

    async def add_channel(self, bridge_id: str, *channel_ids: str) -> None:
        """Add channels to a bridge; a channel already in another bridge is moved (Left, then Entered)."""
        params = {"channel": ",".join(channel_ids)}
        await self._call("POST", f"/bridges/{_seg(bridge_id)}/addChannel", params=params)

    async def remove_channel(self, bridge_id: str, *channel_ids: str) -> None:
        params = {"channel": ",".join(channel_ids)}
        await self._call("POST", f"/bridges/{_seg(bridge_id)}/removeChannel", params=params)

    async def destroy_bridge(self, bridge_id: str) -> None:
        """Destroy a bridge (:class:`NotFoundError` when it is already gone)."""
        await self._call("DELETE", f"/bridges/{_seg(bridge_id)}")

    async def start_moh(self, bridge_id: str, moh_class: str | None = None) -> None:
        """Music on hold to the bridge (204, no event)."""
        params = {"mohClass": moh_class} if moh_class else None
        await self._call("POST", f"/bridges/{_seg(bridge_id)}/moh", params=params)

    async def stop_moh(self, bridge_id: str) -> None:
        await self._call("DELETE", f"/bridges/{_seg(bridge_id)}/moh")

    # -- playbacks and recordings ----------------------------------------------------------------

    async def get_playback(self, playback_id: str) -> Playback:
        """A running playback (:class:`NotFoundError` once it finished: playbacks vanish at once)."""
        path = f"/playbacks/{_seg(playback_id)}"
        return _playback(await self._json("GET", path), f"GET {path}")

    async def stop_playback(self, playback_id: str) -> None:
        """Stop a playback; its ``PlaybackFinished`` says ``done``, not stopped."""
        await self._call("DELETE", f"/playbacks/{_seg(playback_id)}")

    async def get_live_recording(self, name: str) -> LiveRecording:
        """A recording in progress (:class:`NotFoundError` once it finished)."""
        path = f"/recordings/live/{_seg(name)}"
        return _recording(await self._json("GET", path), f"GET {path}")

    async def stop_recording(self, name: str) -> None:
        """Stop a live recording and keep its file."""
        await self._call("POST", f"/recordings/live/{_seg(name)}/stop")

    async def cancel_recording(self, name: str) -> None:
        """Stop a live recording and delete its file (``RecordingFinished`` still says ``done``)."""
        await self._call("DELETE", f"/recordings/live/{_seg(name)}")

    async def get_stored_recording(self, name: str) -> StoredRecording:
        path = f"/recordings/stored/{_seg(name)}"
        body = _obj(await self._json("GET", path), f"GET {path}")
        name_value, fmt = body.get("name"), body.get("format")
        if not isinstance(name_value, str) or not isinstance(fmt, str):
            raise AsteriskUnavailableError(f"ARI GET {path}: unreadable stored recording")
        return StoredRecording(name=name_value, format=fmt)

    async def get_recording_file(self, name: str) -> bytes:
        """The stored file's bytes (a WAV is 16-bit signed PCM, 8 kHz, mono after a 44-byte header)."""
        path = f"/recordings/stored/{_seg(name)}/file"
        status, raw = await self._send("GET", path, http_only=True)  # Asterisk sends no file in a frame
        _check("GET", path, status, raw, decode=False)
        return raw

    async def delete_stored_recording(self, name: str) -> None:
        await self._call("DELETE", f"/recordings/stored/{_seg(name)}")

    # -- applications, endpoints, the PBX --------------------------------------------------------

    async def get_application(self, name: str) -> AriApplication:
        """Our Stasis application as Asterisk sees it (:class:`NotFoundError` while no WebSocket holds it)."""
        path = f"/applications/{_seg(name)}"
        return _application(await self._json("GET", path), f"GET {path}")

    async def set_event_filter(
        self, name: str, *, allowed: Sequence[str] | None = None, disallowed: Sequence[str] | None = None
    ) -> AriApplication:
        """``PUT /applications/{name}/eventFilter`` (Asterisk 13.26, 16.3 and later): which event types
        the application's WebSocket gets.

        Only the lists given are replaced (an empty one clears that list); an empty ``allowed`` list
        means every type, and ``disallowed`` wins over ``allowed``. The filter belongs to the
        application: it lasts until Asterisk restarts or forgets the application, so set it after
        every connect. :raises NotFoundError: while no WebSocket holds the application (or on an
        Asterisk without the route). :raises AriRequestError: 400 for a list Asterisk refuses.
        """
        body: dict[str, object] = {}
        if allowed is not None:
            body["allowed"] = [{"type": kind} for kind in allowed]
        if disallowed is not None:
            body["disallowed"] = [{"type": kind} for kind in disallowed]
        if not body:
            raise ValueError("give allowed, disallowed or both (an empty body would clear the filter)")
        path = f"/applications/{_seg(name)}/eventFilter"
        return _application(await self._json("PUT", path, json_body=body), f"PUT {path}")

    async def get_endpoint(self, technology: str, resource: str) -> AriEndpoint:
        """:raises NotFoundError: for an endpoint Asterisk does not know."""
        path = f"/endpoints/{_seg(technology)}/{_seg(resource)}"
        body = _obj(await self._json("GET", path), f"GET {path}")
        try:
            return AriEndpoint(
                technology=_text(body, "technology"),
                resource=_text(body, "resource"),
                state=_text(body, "state", required=False),
                channel_ids=_texts(body, "channel_ids", required=False),
            )
        except ValueError as exc:
            raise AsteriskUnavailableError(f"ARI GET {path}: {exc}") from exc

    async def asterisk_info(self) -> AsteriskInfo:
        """``GET /asterisk/info``; 503 ``Asterisk not booted`` while Asterisk restarts."""
        body = _obj(await self._json("GET", "/asterisk/info"), "GET /asterisk/info")
        system = body.get("system")
        status = body.get("status")
        version = entity = ""
        if isinstance(system, Mapping):
            version = str(system.get("version", ""))
            entity = str(system.get("entity_id", ""))
        startup: datetime | None = None
        if isinstance(status, Mapping) and isinstance(status.get("startup_time"), str):
            try:
                startup = parse_time(str(status["startup_time"]))
            except MalformedAriEventError:
                startup = None
        return AsteriskInfo(version=version, entity_id=entity, startup_time=startup)

    # -- transport -------------------------------------------------------------------------------

    async def _call(self, method: str, path: str, *, params: Mapping[str, str] | None = None) -> None:
        status, raw = await self._send(method, path, params=params)
        _check(method, path, status, raw, decode=False)

    async def _json(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Mapping[str, object] | None = None,
    ) -> object:
        status, raw = await self._send(method, path, params=params, json_body=json_body)
        return _check(method, path, status, raw)

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Mapping[str, object] | None = None,
        http_only: bool = False,
    ) -> tuple[int, bytes]:
        rest = self._websocket
        # Asterisk does not percent-decode a request frame's uri: such paths go over HTTP.
        if rest is not None and not http_only and "%" not in path and rest.usable():
            try:
                async with asyncio.timeout(self._timeout_s):
                    return await rest.request(method, path, params=params, json_body=json_body)
            except TimeoutError as exc:
                raise AsteriskUnavailableError(
                    f"ARI {method} {path}: no answer within {self._timeout_s:g}s (events socket)"
                ) from exc
        url = self._base + path
        if self._session.closed:
            # At shutdown, flows still running (an offer stopping its prompt) meet a closed session;
            # aiohttp raises a bare RuntimeError then, which would replace their cancellation.
            raise AsteriskUnavailableError(f"ARI {method} {path}: the HTTP session is closed")
        try:
            async with self._slots, asyncio.timeout(self._timeout_s):
                async with self._session.request(
                    method, url, params=params, json=json_body, headers=self._headers
                ) as response:
                    return response.status, await response.read()
        except TimeoutError as exc:
            raise AsteriskUnavailableError(
                f"ARI {method} {path}: no answer within {self._timeout_s:g}s"
            ) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise AsteriskUnavailableError(f"ARI {method} {path}: {exc!r}") from exc


def _check(method: str, path: str, status: int, raw: bytes, *, decode: bool = True) -> object:
    """The decoded body of a 2xx answer, or the mapped error."""
    if 200 <= status < 300:
        if not decode or not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise AsteriskUnavailableError(f"ARI {method} {path}: answer is not JSON ({exc})") from exc
    raise _error(method, path, status, _error_message(raw))


def _error(method: str, path: str, status: int, message: str) -> CallCenterError:
    what = f"ARI {method} {path} answered {status}: {message}"
    if status == 404:
        # 404 "Resource not found" is an unknown route, not a missing channel.
        on_channel = path.startswith("/channels/") and message != "Resource not found"
        return ChannelGoneError(what) if on_channel else NotFoundError(what)
    if status in (400, 409, 422) and message.lower().rstrip(".") in _CHANNEL_GONE_MESSAGES:
        # bridges addChannel/removeChannel: 400 "Channel not found"; any channel command on a channel
        # that left our application (continue, another app): 409/422 "Channel not in Stasis application".
        return ChannelGoneError(what)
    if status in (401, 403):
        return AsteriskUnavailableError(f"{what} (check CALLCENTER_ARI_USERNAME and CALLCENTER_ARI_PASSWORD)")
    if status >= 500:
        return AriServerError(method, path, status, message)
    return AriRequestError(method, path, status, message)


def _error_message(raw: bytes) -> str:
    """Asterisk's error text: ``{"message": ...}`` or ``{"error": ...}``, else the body's start."""
    text = raw.decode("utf-8", "replace").strip()
    try:
        body = json.loads(text) if text else None
    except ValueError:
        body = None
    if isinstance(body, Mapping):
        for key in ("message", "error"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return value
    return text[:200] if text else "(no body)"


def _obj(body: object, what: str) -> Mapping[str, object]:
    if not isinstance(body, Mapping):
        raise AsteriskUnavailableError(f"ARI {what}: expected a JSON object, got {type(body).__name__}")
    return body


def _list(body: object, what: str) -> list[object]:
    if not isinstance(body, list):
        raise AsteriskUnavailableError(f"ARI {what}: expected a JSON list, got {type(body).__name__}")
    return body


def _text(body: Mapping[str, object], key: str, *, required: bool = True) -> str:
    value = body.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"expected a string at {key!r}")
    return value


def _texts(body: Mapping[str, object], key: str, *, required: bool = True) -> tuple[str, ...]:
    value = body.get(key)
    if value is None and not required:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"expected a list of strings at {key!r}")
    return tuple(value)


def _application(body: object, what: str) -> AriApplication:
    obj = _obj(body, what)
    try:
        return AriApplication(
            name=_text(obj, "name"),
            channel_ids=_texts(obj, "channel_ids"),
            bridge_ids=_texts(obj, "bridge_ids"),
            endpoint_ids=_texts(obj, "endpoint_ids", required=False),
            events_allowed=_filter_types(obj, "events_allowed"),
            events_disallowed=_filter_types(obj, "events_disallowed"),
        )
    except ValueError as exc:
        raise AsteriskUnavailableError(f"ARI {what}: {exc}") from exc


def _filter_types(body: Mapping[str, object], key: str) -> tuple[str, ...]:
    """The ``type`` of each entry of an Application's ``events_allowed``/``events_disallowed``."""
    value = body.get(key)
    if value is None:
        return ()  # before Asterisk 13.26 and 16.3 there are no filters
    if not isinstance(value, list) or not all(isinstance(item, Mapping) for item in value):
        raise ValueError(f"expected a list of objects at {key!r}")
    return tuple(str(item.get("type", "")) for item in value)


def _parsed_channel(body: object, what: str) -> Channel:
    try:
        return parse_channel(_obj(body, what))
    except MalformedAriEventError as exc:
        raise AsteriskUnavailableError(f"ARI {what}: unreadable channel: {exc}") from exc


def _parsed_bridge(body: object, what: str) -> Bridge:
    try:
        return parse_bridge(_obj(body, what))
    except MalformedAriEventError as exc:
        raise AsteriskUnavailableError(f"ARI {what}: unreadable bridge: {exc}") from exc


def _playback(body: object, what: str) -> Playback:
    obj = _obj(body, what)
    try:
        state = _text(obj, "state")
        next_media = _text(obj, "next_media_uri", required=False)
        return Playback(
            id=_text(obj, "id"),
            media_uri=_text(obj, "media_uri"),
            target_uri=_text(obj, "target_uri"),
            state=_enum(PlaybackState, state, PlaybackState.UNKNOWN),
            language=_text(obj, "language", required=False),
            next_media_uri=next_media or None,
        )
    except ValueError as exc:
        raise AsteriskUnavailableError(f"ARI {what}: unreadable playback: {exc}") from exc


def _recording(body: object, what: str) -> LiveRecording:
    obj = _obj(body, what)
    try:
        state = _text(obj, "state")
        return LiveRecording(
            name=_text(obj, "name"),
            format=_text(obj, "format"),
            target_uri=_text(obj, "target_uri", required=False),
            state=_enum(RecordingState, state, RecordingState.UNKNOWN),
        )
    except ValueError as exc:
        raise AsteriskUnavailableError(f"ARI {what}: unreadable recording: {exc}") from exc


_E = TypeVar("_E", bound=StrEnum)


def _enum(cls: type[_E], value: str, fallback: _E) -> _E:
    try:
        return cls(value)
    except ValueError:
        return fallback
