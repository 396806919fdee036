"""The ARI REST client maps every way Asterisk says no to our error tree, as the captures show it.

A tiny aiohttp server answers with the exact statuses, bodies and headers recorded from Asterisk 20
(``tests/data/ari/ari_misc_rest.txt`` and the ``*_rest_log.jsonl`` files).
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from pytest_aiohttp import AiohttpServer

from callcenter.ari.client import AriClient, AriRequestError, AriServerError
from callcenter.config import AriSettings
from callcenter.errors import (
    AsteriskUnavailableError,
    CallCenterError,
    ChannelGoneError,
    ConfigError,
    NotFoundError,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(20)]


@dataclass
class Canned:
    status: int
    body: bytes | None
    content_type: str | None = "application/json"


@dataclass
class FakeAri:
    """Answers each (method, path) with a canned reply; records what it was sent."""

    replies: dict[tuple[str, str], Canned] = field(default_factory=dict)
    seen: list[tuple[str, str, dict[str, str], bytes, str]] = field(default_factory=list)
    hang: asyncio.Event = field(default_factory=asyncio.Event)

    def on(
        self,
        method: str,
        path: str,
        status: int,
        body: object = None,
        *,
        raw: bytes | None = None,
        content_type: str | None = "application/json",
    ) -> None:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        self.replies[(method, path)] = Canned(status, data, content_type)

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append(
            (
                request.method,
                request.path,
                dict(request.query),
                await request.read(),
                request.headers.get("Authorization", ""),
            )
        )
        if request.path == "/ari/slow":
            await self.hang.wait()
        canned = self.replies.get((request.method, request.path))
        if canned is None:
            canned = Canned(404, b'{"message":"Resource not found"}')
        headers = {"Server": "Asterisk/20.20.1", "Cache-Control": "no-cache, no-store"}
        if canned.content_type is not None:
            # Asterisk spells it "Content-type", lowercase t.
            headers["Content-type"] = canned.content_type
        return web.Response(status=canned.status, body=canned.body, headers=headers)


@pytest.fixture
def fake() -> FakeAri:
    return FakeAri()


@pytest.fixture
async def server(aiohttp_server: AiohttpServer, fake: FakeAri) -> TestServer:
    app = web.Application()
    app.router.add_route("*", "/ari/{tail:.*}", fake.handle)
    return await aiohttp_server(app)


@pytest.fixture
async def ari(server: TestServer, fake: FakeAri) -> AsyncIterator[AriClient]:
    settings = AriSettings(url=str(server.make_url("/")).rstrip("/"), username="lab", password="lab")
    async with aiohttp.ClientSession() as session:
        yield AriClient(session, settings, timeout_s=0.5)
    fake.hang.set()


CHANNEL_JSON = {
    "id": "1795459702.2",
    "name": "SIP/sipp-00000002",
    "state": "Up",
    "protocol_id": "1-14874@127.0.0.1",
    "caller": {"name": "sipp", "number": "sipp"},
    "connected": {"name": "", "number": ""},
    "accountcode": "",
    "dialplan": {
        "context": "incoming",
        "exten": "100",
        "priority": 3,
        "app_name": "Stasis",
        "app_data": "callcenter",
    },
    "creationtime": "2026-11-23T18:48:22.311+0000",
    "language": "en",
}


async def test_a_gone_channel_is_channel_gone_with_asterisks_message(ari: AriClient, fake: FakeAri) -> None:
    fake.on("GET", "/ari/channels/1795459702.2", 404, {"message": "Channel not found"})
    with pytest.raises(ChannelGoneError, match="Channel not found"):
        await ari.get_channel("1795459702.2")


async def test_a_gone_bridge_is_not_found_but_not_a_gone_channel(ari: AriClient, fake: FakeAri) -> None:
    fake.on("DELETE", "/ari/bridges/fdc95ec6", 404, {"message": "Bridge not found"})
    with pytest.raises(NotFoundError, match="Bridge not found") as caught:
        await ari.destroy_bridge("fdc95ec6")
    assert not isinstance(caught.value, ChannelGoneError)


async def test_an_unknown_route_is_not_found_not_a_gone_channel(ari: AriClient, fake: FakeAri) -> None:
    with pytest.raises(NotFoundError, match="Resource not found") as caught:
        await ari.ring("1795459702.2")
    assert not isinstance(caught.value, ChannelGoneError)


async def test_allocation_failed_is_an_unavailable_asterisk_with_the_error_key(
    ari: AriClient, fake: FakeAri
) -> None:
    """POST /channels with an unknown technology: 500 {"error": "Allocation failed"}."""
    fake.on("POST", "/ari/channels", 500, {"error": "Allocation failed"})
    with pytest.raises(AriServerError) as caught:
        await ari.originate("Bogus/x", app="callcenter")
    assert isinstance(caught.value, AsteriskUnavailableError)
    assert (caught.value.status, caught.value.message) == (500, "Allocation failed")


async def test_not_booted_during_a_restart_is_asterisk_unavailable(ari: AriClient, fake: FakeAri) -> None:
    fake.on("GET", "/ari/asterisk/info", 503, {"message": "Asterisk not booted"})
    with pytest.raises(AsteriskUnavailableError, match="Asterisk not booted"):
        await ari.asterisk_info()


@pytest.mark.parametrize(
    ("method", "path", "status", "message"),
    [
        (
            "POST",
            "/ari/channels/c1/record",
            409,
            "Recording 'vm-test' already exists and can not be overwritten",
        ),
        ("POST", "/ari/channels", 400, "Endpoint must be specified"),
        ("POST", "/ari/channels/c1/answer", 412, "Channel in invalid state"),
        ("POST", "/ari/bridges/b1/removeChannel", 422, "Channel not in this bridge"),
    ],
)
async def test_other_refusals_are_request_errors_with_status_and_message(
    ari: AriClient, fake: FakeAri, method: str, path: str, status: int, message: str
) -> None:
    fake.on(method, path, status, {"message": message})
    calls: dict[str, Callable[[], Awaitable[object]]] = {
        "/ari/channels/c1/record": lambda: ari.record("c1", name="vm-test"),
        "/ari/channels": lambda: ari.originate("", app="callcenter"),
        "/ari/channels/c1/answer": lambda: ari.answer("c1"),
        "/ari/bridges/b1/removeChannel": lambda: ari.remove_channel("b1", "c1"),
    }
    with pytest.raises(AriRequestError) as caught:
        await calls[path]()
    assert (caught.value.status, caught.value.message) == (status, message)
    assert not isinstance(caught.value, NotFoundError | AsteriskUnavailableError)


@pytest.mark.parametrize(
    ("status", "message"),
    [(400, "Channel not found"), (422, "Channel not in Stasis application")],
)
async def test_bridging_a_channel_that_is_not_ours_any_more_is_channel_gone(
    ari: AriClient, fake: FakeAri, status: int, message: str
) -> None:
    fake.on("POST", "/ari/bridges/b1/addChannel", status, {"message": message})
    with pytest.raises(ChannelGoneError, match=message):
        await ari.add_channel("b1", "c1")


async def test_a_channel_that_left_stasis_is_channel_gone(ari: AriClient, fake: FakeAri) -> None:
    fake.on("POST", "/ari/channels/c1/continue", 409, {"message": "Channel not in Stasis application"})
    with pytest.raises(ChannelGoneError):
        await ari.continue_in_dialplan("c1")


async def test_bad_credentials_are_asterisk_unavailable_naming_the_settings(
    ari: AriClient, fake: FakeAri
) -> None:
    fake.on("GET", "/ari/asterisk/info", 401, {"message": "Authentication required"})
    with pytest.raises(AsteriskUnavailableError, match="CALLCENTER_ARI_PASSWORD"):
        await ari.asterisk_info()


async def test_a_non_json_error_body_is_quoted(ari: AriClient, fake: FakeAri) -> None:
    html = b"<html><head><title>400 Bad Request</title></head><body>missing param: [app]</body></html>"
    fake.on("GET", "/ari/channels", 400, raw=html, content_type="text/html")
    with pytest.raises(AriRequestError, match="400 Bad Request") as caught:
        await ari.list_channels()
    assert caught.value.status == 400


async def test_an_empty_error_body_is_tolerated(ari: AriClient, fake: FakeAri) -> None:
    fake.on("DELETE", "/ari/playbacks/p1", 500, raw=b"", content_type=None)
    with pytest.raises(AriServerError, match="no body"):
        await ari.stop_playback("p1")


async def test_a_success_body_that_is_not_json_is_asterisk_unavailable(ari: AriClient, fake: FakeAri) -> None:
    fake.on("GET", "/ari/channels/c1", 200, raw=b"<oops>", content_type="text/html")
    with pytest.raises(AsteriskUnavailableError, match="not JSON"):
        await ari.get_channel("c1")


async def test_an_unset_variable_is_none_but_an_unknown_channel_is_gone(
    ari: AriClient, fake: FakeAri
) -> None:
    fake.on("GET", "/ari/channels/c1/variable", 404, {"message": "Provided variable was not found"})
    fake.on("GET", "/ari/channels/nonexistent.1/variable", 404, {"message": "Provided channel was not found"})
    assert await ari.get_variable("c1", "LAB_UNSET_VAR") is None
    with pytest.raises(ChannelGoneError, match="Provided channel was not found"):
        await ari.get_variable("nonexistent.1", "CALLERID(num)")
    fake.on("GET", "/ari/channels/c1/variable", 200, {"value": "sipp"})
    assert await ari.get_variable("c1", "CALLERID(num)") == "sipp"
    assert fake.seen[-1][2] == {"variable": "CALLERID(num)"}


async def test_a_refused_connection_is_asterisk_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = AriSettings(url=f"http://127.0.0.1:{port}", username="lab", password="lab")
    async with aiohttp.ClientSession() as session:
        with pytest.raises(AsteriskUnavailableError) as caught:
            await AriClient(session, settings, timeout_s=2).list_channels()
    assert isinstance(caught.value.__cause__, aiohttp.ClientError | OSError)


async def test_a_request_after_the_session_closed_is_asterisk_unavailable() -> None:
    """At shutdown a flow may still stop its prompt; a bare RuntimeError would replace its cancellation."""
    session = aiohttp.ClientSession()
    ari = AriClient(session, AriSettings(url="http://127.0.0.1:1", username="lab", password="lab"))
    await session.close()
    with pytest.raises(AsteriskUnavailableError, match="the HTTP session is closed"):
        await ari.stop_playback("pb-1")


async def test_no_answer_within_the_timeout_is_asterisk_unavailable(ari: AriClient) -> None:
    with pytest.raises(AsteriskUnavailableError, match="no answer within 0.5s"):
        await ari._json("GET", "/slow")  # a route that never answers


async def test_no_ari_url_is_a_config_error() -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(ConfigError, match="CALLCENTER_ARI_URL"):
            AriClient(session, AriSettings(url=None))


async def test_every_mapped_error_is_a_callcenter_error(ari: AriClient, fake: FakeAri) -> None:
    fake.on("GET", "/ari/bridges", 502, raw=b"Bad Gateway", content_type="text/plain")
    with pytest.raises(CallCenterError):
        await ari.list_bridges()


# -- what goes on the wire ---------------------------------------------------------------------


async def test_requests_carry_basic_auth_and_parse_lowercase_content_type(
    ari: AriClient, fake: FakeAri
) -> None:
    fake.on("GET", "/ari/channels", 200, [CHANNEL_JSON])
    channels = await ari.list_channels()
    assert [c.id for c in channels] == ["1795459702.2"]
    assert fake.seen[-1][4] == "Basic " + base64.b64encode(b"lab:lab").decode()


async def test_an_unreadable_channel_in_a_list_is_skipped_not_fatal(ari: AriClient, fake: FakeAri) -> None:
    broken = {k: v for k, v in CHANNEL_JSON.items() if k != "dialplan"}
    fake.on("GET", "/ari/channels", 200, [broken, CHANNEL_JSON])
    assert [c.id for c in await ari.list_channels()] == ["1795459702.2"]


async def test_originate_sends_our_channel_id_app_args_and_variables_in_a_json_body(
    ari: AriClient, fake: FakeAri
) -> None:
    fake.on("POST", "/ari/channels", 200, {**CHANNEL_JSON, "id": "agent-1", "state": "Down"})
    channel = await ari.originate(
        "SIP/sipp-uas",
        app="callcenter",
        app_args=("agent", "1795459702.2"),
        channel_id="agent-1",
        timeout_s=15,
        caller_id="Queue <5551000>",
        variables={"CC_CALL": "1795459702.2"},
    )
    assert channel.id == "agent-1"
    method, path, query, body, _ = fake.seen[-1]
    assert (method, path) == ("POST", "/ari/channels")
    assert query == {
        "endpoint": "SIP/sipp-uas",
        "app": "callcenter",
        "appArgs": "agent,1795459702.2",
        "channelId": "agent-1",
        "timeout": "15",
        "callerId": "Queue <5551000>",
    }
    assert json.loads(body) == {"variables": {"CC_CALL": "1795459702.2"}}


async def test_play_sends_one_comma_separated_media_list_under_our_playback_id(
    ari: AriClient, fake: FakeAri
) -> None:
    fake.on(
        "POST",
        "/ari/channels/c1/play/pb-1",
        201,
        {
            "id": "pb-1",
            "media_uri": "sound:hello-world",
            "next_media_uri": "digits:12",
            "target_uri": "channel:c1",
            "language": "en",
            "state": "queued",
        },
    )
    playback = await ari.play("c1", ["sound:hello-world", "digits:12", "number:42"], playback_id="pb-1")
    assert (playback.id, playback.channel_id, playback.next_media_uri) == ("pb-1", "c1", "digits:12")
    assert fake.seen[-1][2] == {"media": "sound:hello-world,digits:12,number:42"}
    with pytest.raises(ValueError, match="cannot contain ','"):
        await ari.play("c1", ["sound:a,b"])


async def test_requests_beyond_the_in_flight_limit_wait_their_turn_instead_of_reaching_asterisk(
    aiohttp_server: AiohttpServer,
) -> None:
    in_flight, most, gate, two_in = 0, 0, asyncio.Event(), asyncio.Event()

    async def answer(request: web.Request) -> web.Response:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        if in_flight == 2:
            two_in.set()
        await gate.wait()
        in_flight -= 1
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/ari/channels/{id}/answer", answer)
    server = await aiohttp_server(app)
    settings = AriSettings(url=str(server.make_url("/")).rstrip("/"), username="lab", password="lab")
    async with aiohttp.ClientSession() as session:
        ari = AriClient(session, settings, timeout_s=5, max_in_flight=2)
        calls = [asyncio.create_task(ari.answer(f"ch-{n}")) for n in range(6)]
        await asyncio.wait_for(two_in.wait(), 5)
        for _ in range(20):  # give the others every chance to go out too early
            await asyncio.sleep(0)
        assert in_flight == 2 and not any(call.done() for call in calls)

        gate.set()
        await asyncio.gather(*calls)

    assert most == 2
