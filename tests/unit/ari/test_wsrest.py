"""WebSocketRest on its own: the frames it sends, how answers find their request, the probe and the
stall guard, with a socket that records what is sent and a clock the test moves."""

from __future__ import annotations

import asyncio
import json

import pytest

from callcenter.ari.wsrest import WebSocketRest
from callcenter.errors import AsteriskUnavailableError


class Socket:
    def __init__(self) -> None:
        self.frames: list[dict[str, object]] = []
        self.grew = asyncio.Event()

    async def send_str(self, data: str) -> None:
        self.frames.append(json.loads(data))
        self.grew.set()


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def response(request_id: str, status: int, body: str | None = None) -> str:
    message: dict[str, object] = {"type": "RESTResponse", "transaction_id": "", "request_id": request_id}
    message.update({"status_code": status, "reason_phrase": "x", "uri": "u"})
    if body is not None:
        message.update({"content_type": "application/json", "message_body": body})
    message.update({"application": "callcenter", "timestamp": "2026-11-24T12:00:00.000+0000"})
    return json.dumps(message, separators=(",", ":"))


async def opened(rest: WebSocketRest, *, answer_probe: bool = True) -> Socket:
    socket = Socket()
    await rest.open(socket)
    assert socket.frames == [
        {"type": "RESTRequest", "request_id": "probe", "method": "GET", "uri": "asterisk/ping"}
    ]
    if answer_probe:
        assert rest.take(response("probe", 200, '{"ping":"pong"}'))
    return socket


async def sent(socket: Socket, count: int) -> dict[str, object]:
    async with asyncio.timeout(5):
        while len(socket.frames) < count:
            socket.grew.clear()
            await socket.grew.wait()
    return socket.frames[-1]


async def test_the_socket_carries_nothing_until_asterisk_answers_the_probe() -> None:
    rest = WebSocketRest()
    assert not rest.usable()
    await opened(rest, answer_probe=False)
    assert not rest.usable()
    assert rest.take(response("probe", 400, '{"message":"Unknown request type."}'))
    assert not rest.usable()
    assert rest.take(response("probe", 200))
    assert rest.usable()


async def test_a_request_is_framed_with_its_query_and_json_body_and_gets_its_own_answer() -> None:
    rest = WebSocketRest()
    socket = await opened(rest)
    first = asyncio.create_task(
        rest.request("POST", "/channels", params={"endpoint": "SIP/a"}, json_body={"v": 1})
    )
    second = asyncio.create_task(rest.request("DELETE", "/bridges/b1"))
    frame = await sent(socket, 3)
    one = socket.frames[1]
    assert one["method"] == "POST" and one["uri"] == "channels"
    assert one["query_strings"] == [{"name": "endpoint", "value": "SIP/a"}]
    assert (one["content_type"], one["message_body"]) == ("application/json", '{"v":1}')
    assert frame["uri"] == "bridges/b1" and "message_body" not in frame

    assert rest.take(response(str(frame["request_id"]), 204))  # answered out of order: no body
    assert rest.take(response(str(one["request_id"]), 200, '{"id":"c1"}'))

    assert await second == (204, b"")
    assert await first == (200, b'{"id":"c1"}')


def test_events_are_left_to_the_link() -> None:
    rest = WebSocketRest()
    assert not rest.take('{"type":"StasisStart","application":"callcenter"}')
    assert not rest.take('{"type":"ChannelVarset","variable":"X","value":"\\"RESTResponse\\""}')
    assert not rest.take("not json")


async def test_an_answer_is_recognised_whatever_the_order_of_its_keys() -> None:
    rest = WebSocketRest()
    socket = await opened(rest)
    pending = asyncio.create_task(rest.request("GET", "/asterisk/ping"))
    frame = await sent(socket, 2)
    reordered = {"request_id": frame["request_id"], "status_code": 200, "type": "RESTResponse"}
    assert rest.take(
        json.dumps(reordered | {"message_body": '{"ping":"pong"}', "content_type": "application/json"})
    )
    assert await pending == (200, b'{"ping":"pong"}')


async def test_an_unreadable_answer_fails_its_request_and_an_unknown_one_is_dropped() -> None:
    rest = WebSocketRest()
    socket = await opened(rest)
    pending = asyncio.create_task(rest.request("GET", "/channels"))
    frame = await sent(socket, 2)
    assert rest.take(response("no-such-request", 200, "[]"))
    assert rest.take(
        json.dumps({"type": "RESTResponse", "request_id": frame["request_id"], "status_code": "200"})
    )
    with pytest.raises(AsteriskUnavailableError, match="unreadable answer"):
        await pending


async def test_a_socket_that_ends_fails_what_is_in_flight_and_leaves_requests_to_http() -> None:
    rest = WebSocketRest()
    socket = await opened(rest)
    pending = asyncio.create_task(rest.request("POST", "/channels/c1/answer"))
    await sent(socket, 2)
    rest.close("socket closed by Asterisk (code 1006)")
    with pytest.raises(AsteriskUnavailableError, match="code 1006"):
        await pending
    assert not rest.usable()
    with pytest.raises(AsteriskUnavailableError, match="not open"):
        await rest.request("GET", "/channels")


async def test_the_stall_guard_counts_a_request_given_up_on_until_asterisk_answers_it() -> None:
    clock = Clock()
    rest = WebSocketRest(stall_s=0.25, monotonic=clock)
    socket = await opened(rest)
    slow = asyncio.create_task(rest.request("POST", "/bridges/b1/addChannel", params={"channel": "c1"}))
    frame = await sent(socket, 2)
    clock.now += 0.2
    assert rest.usable()
    clock.now += 0.1
    assert not rest.usable() and rest.stalls == 1
    slow.cancel()  # the caller's timeout: Asterisk still runs it before anything sent later
    with pytest.raises(asyncio.CancelledError):
        await slow
    assert not rest.usable() and rest.stalls == 1  # one stall, counted once

    assert rest.take(response(str(frame["request_id"]), 204))

    assert rest.usable()
