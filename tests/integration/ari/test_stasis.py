"""The glue between link and queue: recorded Asterisk streams become facts; resync rebuilds the view."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest

from callcenter.ari.client import AriClient
from callcenter.ari.events import (
    ChannelDtmfReceived,
    ChannelHangupRequest,
    PlaybackFinished,
    PlaybackStarted,
    StasisEnd,
    parse_event,
)
from callcenter.ari.link import ReceivedAt
from callcenter.ari.stasis import UNUSED_EVENT_TYPES, LinkResynced, StasisDispatcher
from callcenter.config import AriSettings
from callcenter.queue.detection import (
    AgentHungUp,
    AgentLeg,
    AgentRinging,
    CallAnswered,
    CallArrived,
    CallerHungUp,
)
from callcenter.simulator import EndpointBehaviour, SimulatedAsterisk

from .conftest import APP, ARI_PASSWORD, ARI_USER, Links, RecordingSink, eventually

pytestmark = [pytest.mark.integration, pytest.mark.timeout(20)]

DATA = Path(__file__).parents[2] / "data" / "ari_events"
CALLER = "1795461546.38"
AGENT = "1795461547.41"
T0 = datetime(2026, 11, 23, 20, 0, tzinfo=UTC)


async def replay(dispatcher: StasisDispatcher, name: str) -> list[ReceivedAt]:
    """Feed a captured stream as the link would, each event received 10 ms after the previous."""
    stamps: list[ReceivedAt] = []
    for n, line in enumerate(text for text in (DATA / name).read_text().splitlines() if text.strip()):
        received = ReceivedAt(wall=T0 + timedelta(milliseconds=10 * n), monotonic_s=float(n))
        stamps.append(received)
        await dispatcher.on_event(parse_event(line), received)
    return stamps


async def test_an_answered_agent_call_stream_gives_the_queue_its_facts(client: AriClient) -> None:
    sink = RecordingSink(legs={AGENT: AgentLeg(call_id=CALLER, agent_id="alice")})
    dispatcher = StasisDispatcher(sink, client, default_region="US")
    stamps = await replay(dispatcher, "ari_agent_answer.jsonl")

    arrived = sink.of(CallArrived)
    assert len(arrived) == 1
    assert arrived[0].call_id == CALLER and arrived[0].queue is None
    assert [f.agent_id for f in sink.of(AgentRinging)] == ["alice", "alice"]
    assert {(f.call_id, f.agent_id) for f in sink.of(CallAnswered)} == {(CALLER, "alice")}
    assert [f.call_id for f in sink.of(CallerHungUp)] == [CALLER, CALLER]
    assert {f.call_id for f in sink.of(AgentHungUp)} == {CALLER}
    # Times are the link's receipt times (the benchmark measures from there), not Asterisk's.
    receipt_times = {s.wall for s in stamps}
    assert all(f.at in receipt_times for f in sink.facts if not isinstance(f, CallArrived))
    # The agent leg never reads as a new inbound call.
    assert all(f.call_id != AGENT for f in sink.facts)


async def test_a_caller_abandon_while_the_agent_rings(client: AriClient) -> None:
    sink = RecordingSink()
    dispatcher = StasisDispatcher(sink, client)
    await replay(dispatcher, "ari_abandon.jsonl")
    assert [type(f).__name__ for f in sink.facts] == ["CallArrived", "CallerHungUp", "CallerHungUp"]


async def test_a_sink_failing_on_one_fact_still_gets_the_others(client: AriClient) -> None:
    sink = RecordingSink(fail_on=CallArrived)
    dispatcher = StasisDispatcher(sink, client)
    await replay(dispatcher, "ari_abandon.jsonl")
    assert [type(f).__name__ for f in sink.facts] == ["CallArrived", "CallerHungUp", "CallerHungUp"]


async def test_channel_subscribers_get_their_channels_media_dtmf_and_hang_up_events_only(
    client: AriClient,
) -> None:
    dispatcher = StasisDispatcher(RecordingSink(), client)
    channel_id = parse_event((DATA / "ari_dtmf_info.jsonl").read_text().splitlines()[0]).channel.id  # type: ignore[union-attr]
    with dispatcher.subscribe(channel_id) as mine, dispatcher.subscribe("someone-else") as theirs:
        await replay(dispatcher, "ari_dtmf_info.jsonl")
        got = []
        while (notice := mine.get_nowait()) is not None:
            got.append(notice)
        assert theirs.get_nowait() is None
    assert [n.digit for n in got if isinstance(n, ChannelDtmfReceived)] == ["1", "#", "5", "9"]
    assert any(isinstance(n, PlaybackStarted) for n in got)
    assert isinstance(got[-1], StasisEnd)
    assert dispatcher.subscriber_count(channel_id) == 0


async def test_playback_events_reach_the_played_channel(client: AriClient) -> None:
    dispatcher = StasisDispatcher(RecordingSink(), client)
    lines = (DATA / "ari_playback.jsonl").read_text().splitlines()
    channel_id = parse_event(lines[0]).channel.id  # type: ignore[union-attr]
    with dispatcher.subscribe(channel_id) as mine:
        await replay(dispatcher, "ari_playback.jsonl")
        got = []
        while (notice := mine.get_nowait()) is not None:
            got.append(notice)
    finished = [n for n in got if isinstance(n, PlaybackFinished)]
    assert finished and all(n.playback.channel_id == channel_id for n in finished)
    assert any(isinstance(n, ChannelHangupRequest) for n in got)


# -- resync against the simulator ------------------------------------------------------------------


async def test_resync_re_announces_live_calls_answered_legs_and_reconciles_the_rest(
    links: Links, sim: SimulatedAsterisk, client: AriClient
) -> None:
    sink = RecordingSink()
    dispatcher = StasisDispatcher(sink, client)
    link = links.start(dispatcher.on_event, dispatcher.resync)
    await link.wait_up(5)
    assert sink.reconciled == [frozenset()]

    waiting = sim.incoming_call(caller="+14155550100", app_args=["sales"])
    talking = sim.incoming_call(caller="+14155550101", app_args=["support"])
    sim.set_endpoint("PJSIP/alice", behaviour=EndpointBehaviour.ANSWER, answer_after_s=1)
    sim.set_endpoint("PJSIP/bob", behaviour=EndpointBehaviour.NO_ANSWER)
    alice = (await client.originate("PJSIP/alice", app="callcenter", app_args=("agent", talking))).id
    bob = (await client.originate("PJSIP/bob", app="callcenter", app_args=("agent", waiting))).id
    sink.legs[alice] = AgentLeg(call_id=talking, agent_id="alice")
    sink.legs[bob] = AgentLeg(call_id=waiting, agent_id="bob")
    await sim.advance(1)
    await eventually(lambda: bool(sink.of(CallAnswered)), what="alice answering")

    # The link drops and comes back: the resync tells the sink what is live now.
    sink.facts.clear()
    with dispatcher.subscribe(waiting) as subscription:
        sim.drop_websockets()
        await eventually(lambda: len(sink.reconciled) == 2, what="the resync")
        assert subscription.get_nowait() == LinkResynced(channel_id=waiting, present=True)

    present = sink.reconciled[-1]
    assert {waiting, talking, alice, bob} <= present
    arrived = {f.call_id: f for f in sink.of(CallArrived)}
    assert set(arrived) == {waiting, talking}  # agent legs never read as inbound calls
    assert (arrived[waiting].queue, arrived[talking].queue) == ("sales", "support")
    assert [(f.call_id, f.agent_id) for f in sink.of(CallAnswered)] == [(talking, "alice")]
    assert link.connects == 2

    # A call that ended while the link was down is missing from the next resync's present ids.
    sim.drop_websockets()
    sim.hangup(waiting)
    await eventually(lambda: len(sink.reconciled) == 3, what="the next resync")
    assert waiting not in sink.reconciled[-1] and talking in sink.reconciled[-1]


async def test_filter_events_asks_asterisk_to_drop_the_unused_types_and_never_raises(
    client: AriClient, sim: SimulatedAsterisk, session: aiohttp.ClientSession, ari_settings: AriSettings
) -> None:
    dispatcher = StasisDispatcher(RecordingSink(), client)
    # No WebSocket holds the application: Asterisk answers 404, the link goes on unfiltered.
    assert not await dispatcher.filter_events(APP)

    url = f"{ari_settings.url}/ari/events"
    async with session.ws_connect(url, params={"app": APP, "api_key": f"{ARI_USER}:{ARI_PASSWORD}"}) as ws:
        assert await dispatcher.filter_events(APP)
        application = await client.get_application(APP)
        assert application.events_disallowed == UNUSED_EVENT_TYPES
        assert application.events_allowed == ()
        assert "StasisStart" not in UNUSED_EVENT_TYPES and "ApplicationReplaced" not in UNUSED_EVENT_TYPES

        channel = sim.incoming_call("+14155550100")
        sim.hangup(channel)
        seen: list[str] = []
        while "StasisEnd" not in seen:
            message = await asyncio.wait_for(ws.receive(), 5.0)
            seen.append(json.loads(message.data)["type"])
        assert seen == ["StasisStart", "ChannelHangupRequest", "StasisEnd"]  # no ChannelVarset
