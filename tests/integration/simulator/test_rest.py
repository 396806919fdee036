"""The ARI REST side of the simulator: authentication, routing errors, originate, faults, the request log."""

from __future__ import annotations

import aiohttp
import pytest

from callcenter.simulator import SimulatedAsterisk
from tests.integration.simulator.ari_client import PASSWORD, USER, Ari

pytestmark = pytest.mark.integration


async def test_basic_auth_and_api_key_are_accepted_and_wrong_credentials_get_asterisks_401(ari: Ari) -> None:
    assert (await ari.call("GET", "/ari/asterisk/info")).status == 200  # the client sends basic auth
    # Basic auth, when sent, is the one checked (res_ari.c authenticate_user).
    wrong_basic = {"Authorization": aiohttp.encode_basic_auth(USER, "wrong")}
    assert (
        await ari.call("GET", "/ari/asterisk/info", {"api_key": f"{USER}:{PASSWORD}"}, headers=wrong_basic)
    ).status == 401

    async with aiohttp.ClientSession() as bare:
        url = ari.client.make_url("/ari/asterisk/info")
        async with bare.get(url, params={"api_key": f"{USER}:{PASSWORD}"}) as resp:
            assert resp.status == 200
        for params in ({"api_key": f"{USER}:wrong"}, {"api_key": f"nobody:{PASSWORD}"}, {}):
            async with bare.get(url, params=params) as resp:
                assert (resp.status, resp.reason, await resp.json()) == (
                    401,
                    "Unauthorized",
                    {"message": "Authentication required"},
                )
                assert resp.headers["WWW-Authenticate"] == 'Basic realm="Asterisk REST Interface"'


async def test_replies_carry_asterisks_headers(ari: Ari) -> None:
    reply = await ari.call("GET", "/ari/asterisk/info")
    assert reply.headers["Server"] == "Asterisk/20.20.1"
    assert reply.headers["Cache-Control"] == "no-cache, no-store"
    assert "Content-type" in reply.headers.keys()  # lowercase t, as Asterisk spells it
    assert reply.body["system"] == {"version": "20.20.1", "entity_id": "02:fc:00:00:00:01"}


@pytest.mark.parametrize(
    ("method", "path", "status", "body"),
    [
        ("GET", "/ari/no/such/route", 404, {"message": "Resource not found"}),
        ("GET", "/ari/channels/does-not-exist", 404, {"message": "Channel not found"}),
        ("GET", "/ari/channels/", 404, {"message": "ARI URLs do not end with a slash. Try /ari/channels"}),
        ("PUT", "/ari/channels", 405, {"message": "Invalid method"}),
        ("POST", "/ari/events", 405, {"message": "Invalid method"}),
        ("GET", "/ari/applications/callcenter", 404, {"message": "Application not found"}),
        ("DELETE", "/ari/bridges/nope", 404, {"message": "Bridge not found"}),
        ("GET", "/ari/playbacks/nope", 404, {"message": "Playback not found"}),
        ("GET", "/ari/recordings/live/nope", 404, {"message": "Recording not found"}),
        ("POST", "/ari/channels", 400, {"message": "Endpoint must be specified"}),
    ],
)
async def test_errors_answer_as_asterisk_does(
    ari: Ari, method: str, path: str, status: int, body: object
) -> None:
    reply = await ari.call(method, path)
    assert (reply.status, reply.body) == (status, body)


@pytest.mark.parametrize("endpoint", ["Bogus/thing", "PJSIP/not-registered", "PJSIP/agent-offline"])
async def test_originate_to_an_unknown_or_unavailable_endpoint_fails_with_an_error_key(
    ari: Ari, sim: SimulatedAsterisk, endpoint: str
) -> None:
    sim.set_endpoint("PJSIP/agent-offline", behaviour="unavailable")
    reply = await ari.call("POST", "/ari/channels", {"endpoint": endpoint, "app": "callcenter"})
    assert (reply.status, reply.body) == (500, {"error": "Allocation failed"})
    assert sim.channels == {}


async def test_originate_takes_json_body_variables_and_a_chosen_channel_id(
    ari: Ari, sim: SimulatedAsterisk
) -> None:
    sim.set_endpoint("PJSIP/agent1", answer_after_s=1)
    body = {
        "endpoint": "PJSIP/agent1",
        "app": "callcenter",
        "callerId": '"Queue" <5551000>',
        "variables": {"X": "1"},
    }
    created = await ari.call("POST", "/ari/channels/my-id-1", json_body=body)
    assert created.status == 200
    assert created.body["id"] == "my-id-1" and created.body["state"] == "Down"
    assert created.body["caller"] == {"name": "Queue", "number": "5551000"} == created.body["connected"]
    assert (await ari.call("GET", "/ari/channels/my-id-1/variable", {"variable": "X"})).body == {"value": "1"}
    again = await ari.call("POST", "/ari/channels/my-id-1", json_body=body)
    assert (again.status, again.body) == (409, {"message": "Channel with given unique ID already exists"})

    logged = [r for r in sim.requests if r.path == "/ari/channels/my-id-1"]
    assert [(r.method, r.status) for r in logged] == [("POST", 200), ("POST", 409)]
    assert logged[0].body == body and logged[0].query["endpoint"] == "PJSIP/agent1"


async def test_fail_next_answers_once_with_the_status_and_an_ari_error_body(
    ari: Ari, sim: SimulatedAsterisk
) -> None:
    sim.set_endpoint("PJSIP/agent1")
    sim.fail_next("POST /ari/channels", 503)
    params = {"endpoint": "PJSIP/agent1", "app": "callcenter"}

    failed = await ari.call("POST", "/ari/channels", params)
    assert (failed.status, failed.body) == (503, {"message": "Service Unavailable"})
    assert sim.channels == {}  # the request was not carried out
    assert (await ari.call("POST", "/ari/channels", params)).status == 200

    await ari.events()
    channel_id = sim.incoming_call("sipp")
    sim.fail_next("POST /ari/channels/*/answer", 500, message="Allocation failed", key="error", times=2)
    for _ in range(2):
        reply = await ari.call("POST", f"/ari/channels/{channel_id}/answer")
        assert (reply.status, reply.body) == (500, {"error": "Allocation failed"})
    assert (await ari.call("POST", f"/ari/channels/{channel_id}/answer")).status == 204


async def test_channel_operations_outside_stasis_are_refused_as_asterisk_does(
    ari: Ari, sim: SimulatedAsterisk
) -> None:
    sim.set_endpoint("PJSIP/agent1", behaviour="no_answer")
    ringing = (
        await ari.call("POST", "/ari/channels", {"endpoint": "PJSIP/agent1", "app": "callcenter"})
    ).body
    refused = await ari.call("POST", f"/ari/channels/{ringing['id']}/answer")
    assert (refused.status, refused.body) == (409, {"message": "Channel not in Stasis application"})

    await ari.events()
    caller = sim.incoming_call("sipp")
    add = await ari.call("POST", "/ari/bridges", {"type": "mixing"})
    not_in_stasis = await ari.call(
        "POST", f"/ari/bridges/{add.body['id']}/addChannel", {"channel": ringing["id"]}
    )
    assert (not_in_stasis.status, not_in_stasis.body) == (
        422,
        {"message": "Channel not in Stasis application"},
    )
    unknown = await ari.call("POST", f"/ari/bridges/{add.body['id']}/addChannel", {"channel": "nope"})
    assert (unknown.status, unknown.body) == (400, {"message": "Channel not found"})
    outside = await ari.call("POST", f"/ari/bridges/{add.body['id']}/removeChannel", {"channel": caller})
    assert (outside.status, outside.body) == (422, {"message": "Channel not in this bridge"})

    both = await ari.call("DELETE", f"/ari/channels/{caller}", {"reason": "busy", "reason_code": "17"})
    assert both.status == 400
    bad = await ari.call("DELETE", f"/ari/channels/{caller}", {"reason": "whatever"})
    assert (bad.status, bad.reason) == (400, "Invalid Reason")


async def test_endpoints_list_the_registry_with_their_channels(ari: Ari, sim: SimulatedAsterisk) -> None:
    sim.set_endpoint("PJSIP/agent1", behaviour="no_answer")
    leg = (await ari.call("POST", "/ari/channels", {"endpoint": "PJSIP/agent1", "app": "callcenter"})).body
    listed = (await ari.call("GET", "/ari/endpoints/PJSIP/agent1")).body
    assert listed == {
        "technology": "PJSIP",
        "resource": "agent1",
        "state": "unknown",
        "channel_ids": [leg["id"]],
    }
    assert (await ari.call("GET", "/ari/endpoints/PJSIP/nobody")).status == 404


async def test_global_variables_read_empty_when_unset(ari: Ari) -> None:
    assert (await ari.call("GET", "/ari/asterisk/variable", {"variable": "ASTERISK_VERSION_NUM"})).body == {
        "value": ""
    }
    assert (await ari.call("POST", "/ari/asterisk/variable", {"variable": "G", "value": "v"})).status == 204
    assert (await ari.call("GET", "/ari/asterisk/variable", {"variable": "G"})).body == {"value": "v"}
