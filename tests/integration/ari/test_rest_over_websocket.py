"""ARI REST over the events WebSocket, against the simulated Asterisk: what goes over the socket, what
falls back to HTTP, and that errors and failures read as they do over HTTP."""

from __future__ import annotations

import asyncio

import pytest

from callcenter.ari.client import AriClient, AriServerError
from callcenter.ari.events import StasisStart
from callcenter.ari.link import AriLink
from callcenter.ari.wsrest import WebSocketRest
from callcenter.errors import AsteriskUnavailableError, ChannelGoneError
from callcenter.simulator import SimulatedAsterisk
from callcenter.simulator.ari_app import RecordedRequest

from .conftest import EventLog, Links, eventually

pytestmark = [pytest.mark.integration, pytest.mark.timeout(30)]


async def linked(links: Links, client: AriClient, rest: WebSocketRest) -> tuple[AriLink, EventLog]:
    log = EventLog()
    client.use_websocket(rest)
    link = links.start(log.handle, log.resync, rest=rest)
    await link.wait_up(5)
    return link, log


async def caller_in_stasis(sim: SimulatedAsterisk, log: EventLog, **call: str) -> str:
    """A call entering our application, once the link has seen its ``StasisStart``."""
    channel_id = sim.incoming_call(app_args=["sales"], **call)
    await eventually(
        lambda: any(e.channel.id == channel_id for e in log.events(StasisStart)), what="StasisStart"
    )
    return channel_id


def last(sim: SimulatedAsterisk, method: str, suffix: str) -> RecordedRequest:
    return [r for r in sim.requests if r.method == method and r.path.endswith(suffix)][-1]


async def test_once_asterisk_answers_the_probe_requests_and_their_answers_go_over_the_events_socket(
    links: Links, sim: SimulatedAsterisk, client: AriClient
) -> None:
    rest = WebSocketRest()
    _, log = await linked(links, client, rest)
    await eventually(rest.usable, what="the probe answered")
    channel_id = await caller_in_stasis(sim, log, caller="+14155550100")

    await client.answer(channel_id)
    bridge = await client.create_bridge("mixing", name="call-1")
    await client.add_channel(bridge.id, channel_id)

    assert sim.channels[channel_id].state == "Up"
    assert sim.bridges[bridge.id].channels == [channel_id]
    assert last(sim, "POST", "/answer").websocket
    assert last(sim, "POST", "/addChannel").query == {"channel": channel_id}
    assert last(sim, "POST", "/addChannel").websocket
    assert rest.sent == 3


async def test_an_asterisk_that_drops_client_frames_gets_every_request_over_http(
    links: Links, sim: SimulatedAsterisk, client: AriClient
) -> None:
    sim.rest_over_websocket = False  # as before Asterisk 20.14: the probe is never answered
    rest = WebSocketRest()
    _, log = await linked(links, client, rest)
    channel_id = await caller_in_stasis(sim, log)

    await client.answer(channel_id)

    assert sim.channels[channel_id].state == "Up"
    assert not last(sim, "POST", "/answer").websocket
    assert not rest.usable() and rest.sent == 0


async def test_errors_over_the_socket_map_to_the_same_errors_as_over_http(
    links: Links, sim: SimulatedAsterisk, client: AriClient
) -> None:
    rest = WebSocketRest()
    await linked(links, client, rest)
    await eventually(rest.usable, what="the probe answered")

    with pytest.raises(ChannelGoneError, match="Channel not found"):
        await client.answer("no-such-channel")
    sim.fail_next("POST /ari/bridges", 500, message="Allocation failed")
    with pytest.raises(AriServerError, match="Allocation failed"):
        await client.create_bridge("holding", name="queue-sales")
    assert last(sim, "POST", "/bridges").websocket


async def test_a_recording_file_comes_over_http_where_the_socket_would_refuse_it(
    links: Links, sim: SimulatedAsterisk, client: AriClient
) -> None:
    rest = WebSocketRest()
    _, log = await linked(links, client, rest)
    await eventually(rest.usable, what="the probe answered")
    channel_id = await caller_in_stasis(sim, log)
    sim.set_caller_audio(channel_id, talk_s=30)
    await client.record(channel_id, name="vm-ws", if_exists="overwrite")
    await sim.advance(1.0)
    await client.stop_recording("vm-ws")

    data = await client.get_recording_file("vm-ws")

    assert data[:4] == b"RIFF" and len(data) == 44 + 16_000
    assert not last(sim, "GET", "/vm-ws/file").websocket
    assert last(sim, "POST", "/vm-ws/stop").websocket


async def test_a_request_in_flight_when_the_socket_drops_fails_and_the_next_goes_over_http(
    links: Links, sim: SimulatedAsterisk, client: AriClient
) -> None:
    rest = WebSocketRest(stall_s=60.0)
    await linked(links, client, rest)
    await eventually(rest.usable, what="the probe answered")
    sim.rest_over_websocket = False  # Asterisk stops answering frames: the next request hangs
    hanging = asyncio.create_task(client.create_bridge("holding", name="queue-sales"))
    await eventually(lambda: rest.sent == 1, what="the request sent")

    sim.drop_websockets()

    with pytest.raises(AsteriskUnavailableError, match="events socket ended"):
        await hanging
    bridge = await client.create_bridge("holding", name="queue-sales")  # the link is down: HTTP
    assert bridge.id in sim.bridges
    assert not last(sim, "POST", "/bridges").websocket


async def test_while_the_socket_lags_new_requests_go_over_http_and_come_back_once_it_answers(
    links: Links, sim: SimulatedAsterisk, client: AriClient
) -> None:
    rest = WebSocketRest(stall_s=0.05)
    await linked(links, client, rest)
    await eventually(rest.usable, what="the probe answered")
    sim.rest_over_websocket = False  # Asterisk busy with the first request: it gets no answer
    first = asyncio.create_task(client.create_bridge("holding", name="queue-a"))
    await eventually(lambda: rest.sent == 1, what="the first request sent")
    await asyncio.sleep(0.1)

    second = await client.create_bridge("holding", name="queue-b")

    assert second.id in sim.bridges and not last(sim, "POST", "/bridges").websocket
    assert rest.stalls == 1 and not first.done()
    first.cancel()
    sim.rest_over_websocket = True
    sim.drop_websockets()  # the link reconnects and probes again
    await eventually(rest.usable, what="the new socket answered the probe")
    third = await client.create_bridge("holding", name="queue-c")
    assert third.id in sim.bridges and last(sim, "POST", "/bridges").websocket
