"""The simulated Asterisk's application event filter (``PUT /applications/{name}/eventFilter``).

As res/ari/resource_applications.c ``ast_ari_applications_filter`` and res/stasis/app.c
``app_event_filter_set`` / ``stasis_app_event_allowed`` behave in Asterisk 20: the filter belongs to
the Stasis application (not the socket), ``disallowed`` wins over ``allowed``, an empty ``allowed``
list lets everything through, and only the lists named in the body change.
"""

from __future__ import annotations

from typing import Any

import pytest

from callcenter.simulator import SimulatedAsterisk
from tests.integration.simulator.ari_client import Ari

pytestmark = pytest.mark.integration

FILTER = "/ari/applications/callcenter/eventFilter"


def types(events: list[dict[str, Any]]) -> list[str]:
    """Event types in order, without the ``ChannelVarset`` of the channels' RTP figures."""
    return [e["type"] for e in events if e["type"] != "ChannelVarset"]


def kinds(listing: list[dict[str, Any]]) -> list[str]:
    return [entry["type"] for entry in listing]


async def test_a_disallowed_type_is_not_sent_and_the_application_shows_the_filter(
    ari: Ari, sim: SimulatedAsterisk
) -> None:
    stream = await ari.events()
    body = {"disallowed": [{"type": "ChannelHangupRequest"}, {"type": "ChannelVarset"}]}
    reply = await ari.call("PUT", FILTER, json_body=body)

    assert reply.status == 200
    assert reply.body["name"] == "callcenter"
    assert kinds(reply.body["events_disallowed"]) == ["ChannelHangupRequest", "ChannelVarset"]
    assert reply.body["events_allowed"] == []
    channel = sim.incoming_call("sipp")
    sim.hangup(channel)
    assert [e["type"] for e in await stream.sync(sim)] == ["StasisStart", "StasisEnd"]
    shown = (await ari.call("GET", "/ari/applications/callcenter")).body
    assert kinds(shown["events_disallowed"]) == ["ChannelHangupRequest", "ChannelVarset"]


async def test_an_allowed_list_lets_only_its_types_through_and_disallowed_wins(
    ari: Ari, sim: SimulatedAsterisk
) -> None:
    stream = await ari.events()
    body = {
        "allowed": [{"type": "StasisStart"}, {"type": "StasisEnd"}],
        "disallowed": [{"type": "StasisStart"}],
    }
    assert (await ari.call("PUT", FILTER, json_body=body)).status == 200

    channel = sim.incoming_call("sipp")
    sim.hangup(channel)
    assert types(await stream.sync(sim)) == ["StasisEnd"]


async def test_one_list_given_leaves_the_other_and_an_empty_body_resets_both(
    ari: Ari, sim: SimulatedAsterisk
) -> None:
    await ari.events()
    await ari.call("PUT", FILTER, json_body={"disallowed": [{"type": "StasisEnd"}]})
    reply = await ari.call("PUT", FILTER, json_body={"allowed": [{"type": "StasisStart", "note": "kept"}]})
    assert kinds(reply.body["events_disallowed"]) == ["StasisEnd"]
    assert reply.body["events_allowed"] == [{"type": "StasisStart", "note": "kept"}]  # stored as given

    cleared = await ari.call("PUT", FILTER, json_body={"allowed": []})
    assert cleared.body["events_allowed"] == [] and kinds(cleared.body["events_disallowed"]) == ["StasisEnd"]

    empties: tuple[dict[str, object] | None, ...] = ({}, None)
    for empty in empties:
        await ari.call("PUT", FILTER, json_body={"disallowed": [{"type": "StasisEnd"}]})
        reset = await ari.call("PUT", FILTER, json_body=empty)
        assert reset.status == 200
        assert (reset.body["events_allowed"], reset.body["events_disallowed"]) == ([], [])


@pytest.mark.parametrize(
    "body",
    [
        {"allowed": {"type": "StasisStart"}},
        {"allowed": None},
        {"allowed": [{"kind": "StasisStart"}]},
        {"allowed": [{"type": ""}]},
        {"allowed": ["StasisStart"]},
        5,
    ],
)
async def test_a_malformed_list_is_refused_after_the_disallowed_list_was_set(
    ari: Ari, sim: SimulatedAsterisk, body: object
) -> None:
    """``stasis_app_event_filter_set`` sets ``disallowed`` first: a bad ``allowed`` leaves it set."""
    await ari.events()
    full = {"disallowed": [{"type": "StasisEnd"}], **body} if isinstance(body, dict) else body
    reply = await ari.call("PUT", FILTER, json_body=full)

    assert (reply.status, reply.body) == (400, {"message": "Invalid format definition"})
    shown = (await ari.call("GET", "/ari/applications/callcenter")).body
    assert shown["events_allowed"] == []
    assert kinds(shown["events_disallowed"]) == (["StasisEnd"] if isinstance(body, dict) else [])


async def test_a_body_that_is_not_json_and_an_unknown_application_are_refused(ari: Ari) -> None:
    bad = await ari.call("PUT", FILTER, headers={"Content-Type": "application/json"})
    assert (bad.status, bad.body) == (404, {"message": "Application not found"})  # no socket yet
    await ari.events()
    async with ari.client.put(
        FILTER, data=b"{not json", headers={"Content-Type": "application/json"}
    ) as resp:
        assert resp.status == 400
        assert await resp.json() == {"message": "Error parsing request body"}


async def test_the_filter_outlives_a_reconnect_while_a_call_holds_the_application_not_a_restart(
    ari: Ari, sim: SimulatedAsterisk
) -> None:
    first = await ari.events()
    await ari.call("PUT", FILTER, json_body={"disallowed": [{"type": "StasisEnd"}]})
    waiting = sim.incoming_call("sipp")
    await first.sync(sim)
    sim.drop_websockets()
    await first.wait_closed()

    again = await ari.events()  # the app object lived on with its channel: same filter
    sim.hangup(waiting)
    assert types(await again.sync(sim)) == ["ChannelHangupRequest"]

    await sim.restart()
    await again.wait_closed()
    after_restart = await ari.events()
    shown = (await ari.call("GET", "/ari/applications/callcenter")).body
    assert shown["events_disallowed"] == []
    sim.hangup(sim.incoming_call("sipp"))
    assert types(await after_restart.sync(sim)) == ["StasisStart", "ChannelHangupRequest", "StasisEnd"]


async def test_an_application_nothing_holds_any_more_starts_again_without_a_filter(
    ari: Ari, sim: SimulatedAsterisk
) -> None:
    first = await ari.events()
    await ari.call("PUT", FILTER, json_body={"disallowed": [{"type": "StasisStart"}]})
    await first.close()

    second = await ari.events()
    assert (await ari.call("GET", "/ari/applications/callcenter")).body["events_disallowed"] == []
    sim.incoming_call("sipp")
    assert types(await second.sync(sim)) == ["StasisStart"]
