"""ARI REST over the events WebSocket (Asterisk 20.14, 21.9, 22.4 and later) (edge).

Asterisk answers a ``RESTRequest`` text frame sent on the events WebSocket with a ``RESTResponse``
frame on the same socket: the same resources as over HTTP, without an HTTP request and response per
call. That costs both sides far less than HTTP (no headers to write and parse, no connection pool),
and the answers arrive on the socket the link reads anyway. :class:`WebSocketRest` is the client side;
:class:`~callcenter.ari.client.AriClient` sends through it while :meth:`WebSocketRest.usable`, and over
HTTP otherwise.

What Asterisk does, and what this class therefore does:

- **Older Asterisks read client text frames and drop them.** After each connect the link sends one
  probe (``GET asterisk/ping``); the socket carries requests only once its answer came back. Until
  then, and for good on an Asterisk that never answers, requests go over HTTP.
- **Asterisk runs a socket's requests one after the other** (``res/ari/ari_websockets.c``: the
  session thread reads a request, invokes it, sends the answer, reads the next). Requests such as
  ``answer`` and ``addChannel`` wait for the channel's own thread to run them, so one channel that is
  slow to do so holds up every request behind it. Hence **the stall guard**: while the oldest request
  in flight has waited longer than ``stall_s``, new requests go over HTTP (parallel, one Asterisk HTTP
  thread each) until the socket catches up.
- **Not everything fits in a frame.** A file (``GET /recordings/stored/{name}/file``) is refused with
  406 "Use HTTP GET", so the client fetches files over HTTP; a path holding percent-escapes goes over
  HTTP too, because Asterisk does not decode the ``uri`` of a request frame as its HTTP server does.
- **A socket that ends fails what is in flight** with :class:`AsteriskUnavailableError`, as a broken
  HTTP connection does: the request may or may not have run, and is not sent again.

Correlation is by ``request_id`` (Asterisk echoes it). Answers come in the order the requests were
sent, but nothing here relies on it.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final, Protocol

from callcenter.errors import AsteriskUnavailableError

logger = logging.getLogger(__name__)

#: How long the oldest request in flight may wait before new requests go over HTTP instead.
STALL_S: Final = 0.25
#: The request sent after each connect; the socket carries requests once it is answered.
PROBE_URI: Final = "asterisk/ping"
_PROBE_ID: Final = "probe"
# A cheap test before the JSON parse (an event frame holding the text is parsed, then left alone).
_RESPONSE_TYPE: Final = '"RESTResponse"'


class TextSocket(Protocol):
    """The part of ``aiohttp.ClientWebSocketResponse`` used here."""

    async def send_str(self, data: str) -> None: ...


@dataclass(slots=True)
class _InFlight:
    answer: asyncio.Future[tuple[int, bytes]]
    sent_s: float


class WebSocketRest:
    """REST requests over the link's events WebSocket (see the module docstring).

    :param stall_s: the stall guard's limit on the oldest request's wait.
    :param monotonic: the time source of the stall guard (tests pass their own).
    """

    def __init__(self, *, stall_s: float = STALL_S, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._stall_s = stall_s
        self._monotonic = monotonic
        self._socket: TextSocket | None = None
        self._answered = False
        self._in_flight: dict[str, _InFlight] = {}
        self._ids = itertools.count(1)
        self.sent = 0
        """Requests sent over the socket so far (the probe not counted)."""
        self.stalls = 0
        """Times the stall guard sent requests over HTTP because the socket was behind."""
        self._stalled = False

    # -- the link's side -------------------------------------------------------------------------

    async def open(self, socket: TextSocket) -> None:
        """A new events socket: probe it. Requests keep going over HTTP until the probe is answered.

        Never raises: a probe that cannot be sent leaves this socket unused.
        """
        self.close("a new events socket replaced it")
        self._socket = socket
        message = {"type": "RESTRequest", "request_id": _PROBE_ID, "method": "GET", "uri": PROBE_URI}
        try:
            await socket.send_str(json.dumps(message, separators=(",", ":")))
        except Exception as exc:  # a socket closing as we probe: the link is already on its way out
            logger.info("ARI REST over WebSocket: probe not sent (%r); requests go over HTTP", exc)

    def close(self, reason: str) -> None:
        """The socket ended: fail every request in flight and go back to HTTP."""
        self._socket = None
        self._answered = False
        in_flight, self._in_flight = self._in_flight, {}
        for request in in_flight.values():
            if not request.answer.done():
                request.answer.set_exception(
                    AsteriskUnavailableError(f"ARI events socket ended with the request in flight: {reason}")
                )

    def take(self, frame: str) -> bool:
        """Handle ``frame`` if it is a ``RESTResponse`` (return ``True``); leave events to the caller.

        A response nobody waits for (its request timed out, or another client's) is dropped.
        """
        if _RESPONSE_TYPE not in frame:
            return False
        try:
            message = json.loads(frame)
        except ValueError:
            return False
        if not isinstance(message, dict) or message.get("type") != "RESTResponse":
            return False
        request_id = message.get("request_id")
        if request_id == _PROBE_ID:
            if message.get("status_code") == 200 and not self._answered and self._socket is not None:
                self._answered = True
                logger.info(
                    "ARI REST over WebSocket: Asterisk answers it; requests go over the events socket"
                )
            return True
        request = self._in_flight.pop(request_id, None) if isinstance(request_id, str) else None
        if request is None or request.answer.done():  # unknown, or given up on (timed out)
            logger.debug("ARI REST over WebSocket: an answer nobody waits for: %.200r", frame)
            return True
        status = message.get("status_code")
        body = message.get("message_body")
        if not isinstance(status, int) or not (body is None or isinstance(body, str)):
            request.answer.set_exception(
                AsteriskUnavailableError(f"ARI REST over WebSocket: unreadable answer: {frame:.200}")
            )
            return True
        request.answer.set_result((status, body.encode() if body else b""))
        return True

    # -- the client's side -----------------------------------------------------------------------

    def usable(self) -> bool:
        """True when a request sent now goes over the socket: probed, and not behind (stall guard)."""
        if self._socket is None or not self._answered:
            return False
        oldest = next(iter(self._in_flight.values()), None)
        stalled = oldest is not None and self._monotonic() - oldest.sent_s > self._stall_s
        if stalled and not self._stalled:
            self.stalls += 1
            logger.warning(
                "ARI REST over WebSocket: a request has waited over %.2fs for Asterisk; "
                "new requests go over HTTP until the socket catches up",
                self._stall_s,
            )
        self._stalled = stalled
        return not stalled

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Mapping[str, object] | None = None,
    ) -> tuple[int, bytes]:
        """Send one request and wait for its answer: ``(status, body)`` as over HTTP.

        The caller bounds the wait (``asyncio.timeout``); a request given up on still counts for the
        stall guard until Asterisk answers it or the socket ends.

        :raises AsteriskUnavailableError: when no socket is open, or it ends before the answer.
        """
        socket = self._socket
        if socket is None:
            raise AsteriskUnavailableError(f"ARI {method} {path}: the events socket is not open")
        request_id = str(next(self._ids))
        message: dict[str, object] = {
            "type": "RESTRequest",
            "request_id": request_id,
            "method": method,
            "uri": path.lstrip("/"),
        }
        if params:
            message["query_strings"] = [{"name": name, "value": value} for name, value in params.items()]
        if json_body is not None:
            message["content_type"] = "application/json"
            message["message_body"] = json.dumps(json_body, separators=(",", ":"))
        answer: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()
        self._in_flight[request_id] = _InFlight(answer, self._monotonic())
        try:
            await socket.send_str(json.dumps(message, separators=(",", ":")))
        except BaseException as exc:
            self._in_flight.pop(request_id, None)
            if isinstance(exc, (ConnectionError, RuntimeError)):  # aiohttp: the socket closed under us
                raise AsteriskUnavailableError(f"ARI {method} {path}: events socket failed: {exc!r}") from exc
            raise
        self.sent += 1
        # Given up on (timeout, cancellation), the request stays in flight for the stall guard: Asterisk
        # still runs it before anything sent after it. Its answer, or the socket's end, removes it.
        return await answer
