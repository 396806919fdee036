"""The events WebSocket of the simulator: lifecycle as recorded (ws_restart_run3), takeover, faults."""

from __future__ import annotations

import json

import aiohttp
import pytest
from aiohttp import WSMsgType

from callcenter.simulator import SimulatedAsterisk
from tests.integration.simulator.ari_client import BASIC, PASSWORD, USER, Ari

pytestmark = pytest.mark.integration

EVENTS = f"/ari/events?app=callcenter&api_key={USER}:{PASSWORD}"


async def test_pings_get_pongs_with_the_same_payload_and_the_server_never_pings(ari: Ari) -> None:
    ws = await ari.client.ws_connect(EVENTS, autoping=False)
    await ws.ping(b"lab-ping-1")
    assert (await ws.receive()).data == b"lab-ping-1"
    await ws.ping(b"")
    pong = await ws.receive()
    assert pong.type is WSMsgType.PONG and pong.data == b""
    await ws.pong(b"unsolicited-pong")  # ignored: no reply, the socket stays open
    ari.sim.send_raw('{"type":"after"}')
    assert (await ws.receive()).data == '{"type":"after"}'
    await ws.close()


async def test_client_text_frames_are_answered_as_rest_over_websocket(ari: Ari) -> None:
    stream = await ari.events()
    ari.sim.incoming_call("sipp")
    await stream.ws.send_str('{"type":"hello-from-client"}')
    await stream.ws.send_str("not json at all")
    await stream.ws.send_str(
        json.dumps({"type": "RESTRequest", "request_id": "r1", "method": "GET", "uri": "channels"})
    )
    await stream.wait_for(lambda: len(stream.events) == 4)
    hello, garbage, listing = [e for e in stream.events if e["type"] == "RESTResponse"]

    assert hello["status_code"] == 400 and hello["reason_phrase"] == "Bad request"
    assert json.loads(hello["message_body"]) == {"message": "Unknown request type."}
    assert (
        garbage["reason_phrase"] == "Failed to parse request message JSON" and "message_body" not in garbage
    )
    assert listing["status_code"] == 200 and listing["request_id"] == "r1"
    assert [c["name"] for c in json.loads(listing["message_body"])] == ["SIP/sipp-00000000"]


async def test_a_file_is_refused_over_the_socket_and_requests_are_recorded_like_http_ones(ari: Ari) -> None:
    """ari_websockets.c send_rest_response: an answer that is a file gets 406 "Use HTTP GET"."""
    stream = await ari.events()
    channel = ari.sim.incoming_call("sipp")
    ari.sim.set_caller_audio(channel, talk_s=30)
    await ari.call("POST", f"/ari/channels/{channel}/record", {"name": "vm-1", "format": "wav"})
    await ari.sim.advance(0.5)
    await ari.call("POST", "/ari/recordings/live/vm-1/stop")
    ari.sim.fail_next("POST /ari/bridges", 500)
    for request_id, method, uri in (
        ("file", "GET", "recordings/stored/vm-1/file"),
        ("bridge", "POST", "bridges?type=holding"),
    ):
        message = {"type": "RESTRequest", "request_id": request_id, "method": method, "uri": uri}
        await stream.ws.send_str(json.dumps(message))
    await stream.wait_for(lambda: sum(e["type"] == "RESTResponse" for e in stream.events) == 2)
    file, bridge = [e for e in stream.events if e["type"] == "RESTResponse"]

    assert (file["status_code"], file["reason_phrase"]) == (406, "Not Acceptable.  Use HTTP GET")
    assert "message_body" not in file
    assert bridge["status_code"] == 500  # fail_next applies over the socket too
    recorded = [(r.method, r.path, r.status, r.websocket) for r in ari.sim.requests][-2:]
    assert recorded == [
        ("GET", "/ari/recordings/stored/vm-1/file", 406, True),
        ("POST", "/ari/bridges", 500, True),
    ]


async def test_an_asterisk_older_than_20_14_reads_client_frames_and_drops_them(ari: Ari) -> None:
    ari.sim.rest_over_websocket = False
    stream = await ari.events()
    await stream.ws.send_str(
        json.dumps({"type": "RESTRequest", "request_id": "r1", "method": "GET", "uri": "channels"})
    )
    ari.sim.send_raw('{"type":"after"}')
    await stream.wait_for(lambda: len(stream.events) == 1)
    assert stream.events == [{"type": "after"}]


async def test_core_restart_cuts_calls_ends_the_socket_without_close_frame_and_boots_again(
    ari: Ari, sim: SimulatedAsterisk
) -> None:
    """As ws_restart_run3: HangupRequest cause 4 soft, StasisEnd, EOF; 503 while booting; app 404 until reconnect."""
    stream = await ari.events()
    sim.incoming_call("sipp")
    bridge = (await ari.call("POST", "/ari/bridges", {"type": "holding"})).body
    await stream.wait_for(lambda: len(stream.events) == 1)

    await sim.restart(booting_s=0.4)

    end = await stream.wait_closed()
    assert end.type is WSMsgType.CLOSED  # EOF, not a CLOSE frame
    assert [(e["type"], e.get("cause"), e.get("soft")) for e in stream.events[1:]] == [
        ("ChannelHangupRequest", 4, True),
        ("StasisEnd", None, None),
    ]
    for path in ("/ari/asterisk/info", "/ari/applications/callcenter"):
        booting = await ari.call("GET", path)
        assert (booting.status, booting.body) == (503, {"message": "Asterisk not booted"})

    await sim.advance(0.4)
    assert (await ari.call("GET", "/ari/asterisk/info")).status == 200
    assert (await ari.call("GET", "/ari/applications/callcenter")).body == {
        "message": "Application not found"
    }
    assert (await ari.call("GET", "/ari/channels")).body == []
    assert (await ari.call("GET", f"/ari/bridges/{bridge['id']}")).status == 404

    again = await ari.events()
    app = (await ari.call("GET", "/ari/applications/callcenter")).body
    assert app["channel_ids"] == [] and app["bridge_ids"] == []
    channel_id = sim.incoming_call("sipp")
    assert channel_id.endswith(".0") and sim.channels[channel_id].name == "SIP/sipp-00000000"
    await again.wait_for(lambda: len(again.events) == 1)

    await again.ws.close(code=1000, message=b"bye")
    assert again.ws.close_code == 1000
    assert (await ari.call("GET", "/ari/applications/callcenter")).status == 404


async def test_newer_socket_takes_the_application_and_the_older_gets_application_replaced(
    ari: Ari, sim: SimulatedAsterisk
) -> None:
    """res/stasis/app.c app_update: the old socket stays open but no longer gets the app's events."""
    older = await ari.events()
    newer = await ari.events()
    await older.wait_for(lambda: len(older.events) == 1)
    replaced = older.events[0]
    assert replaced["type"] == "ApplicationReplaced" and replaced["application"] == "callcenter"

    sim.incoming_call("sipp")
    assert [e["type"] for e in await newer.sync(sim)] == ["StasisStart"]
    assert [e["type"] for e in await older.sync(sim)] == ["ApplicationReplaced"]
    assert not older.ws.closed

    await older.close()
    assert (await ari.call("GET", "/ari/applications/callcenter")).status == 200  # still held by the newer
    await newer.close()
    assert (await ari.call("GET", "/ari/applications/callcenter")).status == 404


async def test_drop_websockets_closes_the_socket_and_unregisters_while_calls_stay_in_stasis(
    ari: Ari, sim: SimulatedAsterisk
) -> None:
    stream = await ari.events()
    waiting = sim.incoming_call("sipp")
    await stream.wait_for(lambda: len(stream.events) == 1)

    sim.drop_websockets()
    lost = sim.incoming_call("sipp")  # at once: the application is already gone

    assert not lost.entered_stasis and lost not in sim.channels  # Stasis() failed in the dialplan
    assert (await stream.wait_closed()).type is WSMsgType.CLOSED
    assert stream.events[-1]["type"] == "StasisStart"  # nothing about the lost call reached the socket
    assert (await ari.call("GET", "/ari/applications/callcenter")).status == 404
    assert [c["id"] for c in (await ari.call("GET", "/ari/channels")).body] == [waiting]

    # After a reconnect the app sees the old call again (resync) and its later events.
    again = await ari.events()
    app = (await ari.call("GET", "/ari/applications/callcenter")).body
    assert app["channel_ids"] == [waiting]
    sim.hangup(waiting)
    assert [e["type"] for e in await again.sync(sim)][-2:] == ["ChannelHangupRequest", "StasisEnd"]


async def test_stop_ponging_lets_a_client_heartbeat_detect_the_dead_peer(
    ari: Ari, sim: SimulatedAsterisk
) -> None:
    sim.stop_ponging()
    ws = await ari.client.ws_connect(EVENTS, heartbeat=0.2)
    msg = await ws.receive(timeout=5)
    assert msg.type is WSMsgType.ERROR and isinstance(msg.data, aiohttp.ServerTimeoutError)
    assert ws.closed


async def test_send_raw_delivers_the_text_as_is(ari: Ari, sim: SimulatedAsterisk) -> None:
    stream = await ari.events()
    sim.send_raw("not json")
    await stream.wait_for(lambda: "not json" in stream.frames)
    assert stream.frames == ["not json"]


async def test_events_upgrade_checks_credentials_and_needs_an_app(ari: Ari) -> None:
    async with aiohttp.ClientSession() as bare:
        with pytest.raises(aiohttp.WSServerHandshakeError) as denied:
            await bare.ws_connect(ari.client.make_url(f"/ari/events?app=callcenter&api_key={USER}:wrong"))
    assert denied.value.status == 401
    async with aiohttp.ClientSession(
        headers={"Authorization": aiohttp.encode_basic_auth(USER, "x")}
    ) as wrong:
        with pytest.raises(aiohttp.WSServerHandshakeError) as denied:
            await wrong.ws_connect(ari.client.make_url("/ari/events?app=callcenter"))
    assert denied.value.status == 401

    missing = await ari.call("GET", "/ari/events")
    assert missing.status == 400 and missing.headers["Content-Type"].startswith("text/html")
    assert b"HTTP request is missing param: [app]" in missing.raw

    basic = await ari.events(auth="basic")
    ari.sim.incoming_call("sipp")
    assert [e["type"] for e in await basic.sync(ari.sim)] == ["StasisStart"]


async def test_one_socket_can_hold_several_applications(ari: Ari, sim: SimulatedAsterisk) -> None:
    stream = await ari.events("callcenter,other")
    sim.incoming_call("sipp", app="other")
    events = await stream.sync(sim)
    assert [(e["type"], e["application"]) for e in events] == [("StasisStart", "other")]
    names = {a["name"] for a in (await ari.call("GET", "/ari/applications", headers=BASIC)).body}
    assert names == {"callcenter", "other"}
