"""Kannel and Twilio adapters against local aiohttp servers playing them (never the internet)."""

from __future__ import annotations

import base64
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpServer

from callcenter.sms.ports import Outgoing, ProviderError
from callcenter.sms_gateways.kannel import KannelProvider, KannelSettings, dlr_status
from callcenter.sms_gateways.twilio import TwilioProvider, TwilioSettings, signature, signature_ok

pytestmark = pytest.mark.integration


class Recorder:
    def __init__(self, status: int, body: Any) -> None:
        self.status, self.body = status, body
        self.requests: list[dict[str, Any]] = []


async def _serve(aiohttp_server: AiohttpServer, method: str, path: str, recorder: Recorder) -> str:
    async def handle(request: web.Request) -> web.Response:
        form = dict(await request.post()) if request.method == "POST" else {}
        recorder.requests.append(
            {"query": dict(request.query), "form": form, "auth": request.headers.get("Authorization")}
        )
        if isinstance(recorder.body, dict):
            return web.json_response(recorder.body, status=recorder.status)
        return web.Response(text=recorder.body, status=recorder.status)

    app = web.Application()
    app.router.add_route(method, path, handle)
    server = await aiohttp_server(app, host="127.0.0.1")
    return str(server.make_url(""))


def kannel(base: str) -> KannelSettings:
    return KannelSettings(
        sendsms_url=f"{base}/cgi-bin/sendsms",
        username="u",
        password="p",
        sender="5550",
        callback_base="http://127.0.0.1:8080/api/v1/sms/kannel",
        secret="s3",
    )


async def test_kannel_sendsms_carries_our_id_in_the_dlr_url(aiohttp_server: AiohttpServer) -> None:
    recorder = Recorder(202, "0: Accepted for delivery")
    base = await _serve(aiohttp_server, "GET", "/cgi-bin/sendsms", recorder)
    async with aiohttp.ClientSession() as session:
        provider = KannelProvider(session, kannel(base))
        assert await provider.send(Outgoing("m1", "+12125550123", "Hi 🙂")) == "m1"
        assert await provider.send(Outgoing("m2", "+12125550123", "plain")) == "m2"
    first, second = (r["query"] for r in recorder.requests)
    assert (first["username"], first["password"], first["to"], first["text"], first["from"]) == (
        "u", "p", "+12125550123", "Hi 🙂", "5550",
    )  # fmt: skip
    assert first["coding"] == "2" and "coding" not in second
    assert first["dlr-mask"] == "31"
    assert first["dlr-url"] == "http://127.0.0.1:8080/api/v1/sms/kannel/dlr?secret=s3&id=m1&type=%d&answer=%A"


@pytest.mark.parametrize(
    ("status", "permanent"), [(403, True), (400, True), (503, False), (500, False), (429, False)]
)
async def test_kannel_errors(aiohttp_server: AiohttpServer, status: int, permanent: bool) -> None:
    base = await _serve(aiohttp_server, "GET", "/cgi-bin/sendsms", Recorder(status, "Authorization failed"))
    async with aiohttp.ClientSession() as session:
        with pytest.raises(ProviderError) as caught:
            await KannelProvider(session, kannel(base)).send(Outgoing("m1", "+12125550123", "x"))
    assert caught.value.permanent is permanent


async def test_kannel_down_is_a_transient_error(unused_tcp_port: int) -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(ProviderError) as caught:
            await KannelProvider(session, kannel(f"http://127.0.0.1:{unused_tcp_port}")).send(
                Outgoing("m1", "+12125550123", "x")
            )
    assert not caught.value.permanent


def test_kannel_dlr_types() -> None:
    assert [dlr_status(t) for t in ("1", "2", "4", "8", "16", "99")] == [
        "delivered", "failed", "sent", "sent", "failed", None,
    ]  # fmt: skip


def twilio(base: str) -> TwilioSettings:
    return TwilioSettings(
        account_sid="AC123",
        auth_token="tok",
        sender="+15550001",
        api_base=base,
        public_base="https://cc.example",
    )


async def test_twilio_messages_api(aiohttp_server: AiohttpServer) -> None:
    recorder = Recorder(201, {"sid": "SM42", "status": "queued"})
    base = await _serve(aiohttp_server, "POST", "/2010-04-01/Accounts/AC123/Messages.json", recorder)
    async with aiohttp.ClientSession() as session:
        assert (
            await TwilioProvider(session, twilio(base)).send(Outgoing("m1", "+12125550123", "Hi")) == "SM42"
        )
    (request,) = recorder.requests
    assert request["auth"] == "Basic " + base64.b64encode(b"AC123:tok").decode()
    assert request["form"] == {
        "To": "+12125550123",
        "Body": "Hi",
        "From": "+15550001",
        "StatusCallback": "https://cc.example/api/v1/sms/twilio/status",
    }


@pytest.mark.parametrize(
    ("status", "body", "permanent"),
    [
        (400, {"code": 21211, "message": "Invalid 'To' Phone Number"}, True),
        (400, {"code": 21610, "message": "Attempt to send to unsubscribed recipient"}, True),
        (401, {"code": 20003, "message": "Authenticate"}, True),
        (429, {"code": 20429, "message": "Too Many Requests"}, False),
        (503, "Service Unavailable", False),
        (201, {"no": "sid"}, False),
    ],
)
async def test_twilio_errors(aiohttp_server: AiohttpServer, status: int, body: Any, permanent: bool) -> None:
    base = await _serve(
        aiohttp_server, "POST", "/2010-04-01/Accounts/AC123/Messages.json", Recorder(status, body)
    )
    async with aiohttp.ClientSession() as session:
        with pytest.raises(ProviderError) as caught:
            await TwilioProvider(session, twilio(base)).send(Outgoing("m1", "+12125550123", "x"))
    assert caught.value.permanent is permanent


def test_twilio_signature_matches_the_documented_example() -> None:
    """Twilio's own example from its security docs (auth token 12345)."""
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Caller": "+12349013030",
        "Digits": "1234",
        "From": "+12349013030",
        "To": "+18005551212",
    }
    assert signature("12345", url, params.items()) == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    assert signature_ok("12345", url, params.items(), "0/KCTR6DLpKmkAf8muzZqo1nDgQ=")
    assert not signature_ok("12345", url, {**params, "Digits": "9"}.items(), "0/KCTR6DLpKmkAf8muzZqo1nDgQ=")
    assert not signature_ok("12345", url, params.items(), "")
