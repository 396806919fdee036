"""The queue's telephony commands over ARI, against the simulated Asterisk."""

from __future__ import annotations

import pytest

from callcenter.ari.callcontrol import AriCallControl
from callcenter.ari.client import AriClient
from callcenter.ari.events import ChannelDestroyed, Dial, DialStatus, StasisEnd, StasisStart
from callcenter.ari.link import AriLink
from callcenter.ari.translate import AGENT_LEG_TAG
from callcenter.errors import AsteriskUnavailableError, ChannelGoneError
from callcenter.queue.ports import BridgeKind, CallControl
from callcenter.simulator import EndpointBehaviour, SimulatedAsterisk

from .conftest import APP, EventLog, Links, eventually

pytestmark = [pytest.mark.integration, pytest.mark.timeout(20)]


@pytest.fixture
def control(client: AriClient) -> AriCallControl:
    port: CallControl = AriCallControl(client, APP)  # mypy checks the adapter against the port
    assert isinstance(port, AriCallControl)
    return port


@pytest.fixture
async def log(links: Links) -> EventLog:
    """Our application is registered (a link is up), so calls enter Stasis."""
    events = EventLog()
    link: AriLink = links.start(events.handle, events.resync)
    await link.wait_up(5)
    return events


async def test_answer_puts_an_inbound_channel_up(
    control: AriCallControl, sim: SimulatedAsterisk, log: EventLog
) -> None:
    channel_id = sim.incoming_call(answered=False)
    assert sim.channels[channel_id].state.value == "Ring"
    await control.answer(channel_id)
    assert sim.channels[channel_id].state.value == "Up"


async def test_a_holding_bridge_with_music_then_destroyed_twice(
    control: AriCallControl, sim: SimulatedAsterisk, log: EventLog
) -> None:
    channel_id = sim.incoming_call()
    bridge_id = await control.create_bridge(BridgeKind.HOLDING, "hold-sales")
    bridge = sim.bridges[bridge_id]
    assert (bridge.bridge_type, bridge.name) == ("holding", "hold-sales")
    await control.add_to_bridge(bridge_id, channel_id)
    assert sim.channels[channel_id].bridge_id == bridge_id
    await control.start_hold_music(bridge_id)
    assert bridge.moh_class == "default"
    await control.destroy_bridge(bridge_id)
    assert bridge_id not in sim.bridges
    await control.destroy_bridge(bridge_id)  # already gone: not an error


async def test_bridging_a_caller_who_hung_up_is_channel_gone(
    control: AriCallControl, sim: SimulatedAsterisk, log: EventLog
) -> None:
    channel_id = sim.incoming_call()
    bridge_id = await control.create_bridge(BridgeKind.MIXING, "talk")
    sim.hangup(channel_id)
    with pytest.raises(ChannelGoneError):
        await control.add_to_bridge(bridge_id, channel_id)
    with pytest.raises(ChannelGoneError):
        await control.answer(channel_id)


async def test_ring_agent_originates_with_our_channel_id_and_agent_app_args(
    control: AriCallControl, sim: SimulatedAsterisk, log: EventLog
) -> None:
    sim.set_endpoint("PJSIP/alice", behaviour=EndpointBehaviour.ANSWER, answer_after_s=2)
    call_id = sim.incoming_call()
    leg_id = await control.ring_agent(
        "PJSIP/alice", call_id=call_id, timeout_s=15, caller_id="Queue <5551000>"
    )
    assert leg_id.startswith(f"{AGENT_LEG_TAG}-") and leg_id in sim.channels
    request = [r for r in sim.requests if r.method == "POST" and r.path == "/ari/channels"][-1]
    assert request.query == {
        "endpoint": "PJSIP/alice",
        "app": APP,
        "appArgs": f"agent,{call_id}",
        "channelId": leg_id,
        "timeout": "15",
        "callerId": "Queue <5551000>",
    }
    await sim.advance(2)
    await eventually(
        lambda: any(isinstance(e, StasisStart) and e.channel.id == leg_id for e, _ in log.seen),
        what="the agent leg entering Stasis",
    )
    start = next(e for e in log.events(StasisStart) if e.channel.id == leg_id)
    assert start.args == (AGENT_LEG_TAG, call_id)


async def test_ring_agent_uses_a_channel_id_given_by_the_caller(
    control: AriCallControl, sim: SimulatedAsterisk, log: EventLog
) -> None:
    """The queue can register the leg before the originate: a busy endpoint's events can beat the 200."""
    sim.set_endpoint("PJSIP/bob", behaviour=EndpointBehaviour.BUSY)
    call_id = sim.incoming_call()
    leg_id = await control.ring_agent(
        "PJSIP/bob", call_id=call_id, timeout_s=0.2, caller_id="Queue <5551000>", channel_id="agent-bob-1"
    )
    assert leg_id == "agent-bob-1"
    # A short ring timeout is never rounded down to "no timeout".
    assert [r for r in sim.requests if r.path == "/ari/channels"][-1].query["timeout"] == "1"
    await eventually(lambda: bool(log.events(ChannelDestroyed)), what="the busy leg destroyed")
    busy = [e for e in log.events(Dial) if e.dialstatus is DialStatus.BUSY]
    assert busy and busy[0].peer.id == "agent-bob-1"


async def test_ring_agent_on_an_endpoint_that_does_not_exist_is_channel_gone(
    control: AriCallControl, sim: SimulatedAsterisk, log: EventLog
) -> None:
    call_id = sim.incoming_call()
    with pytest.raises(ChannelGoneError, match="PJSIP/nobody"):
        await control.ring_agent("PJSIP/nobody", call_id=call_id, timeout_s=15, caller_id="Q <1>")
    with pytest.raises(ChannelGoneError, match="Invalid endpoint"):
        await control.ring_agent("nobody", call_id=call_id, timeout_s=15, caller_id="Q <1>")


async def test_ring_agent_when_asterisk_fails_is_unavailable_not_a_missing_endpoint(
    control: AriCallControl, sim: SimulatedAsterisk, log: EventLog
) -> None:
    sim.set_endpoint("PJSIP/alice")
    call_id = sim.incoming_call()
    sim.fail_next("POST /ari/channels", 500, message="Allocation failed", key="error")
    with pytest.raises(AsteriskUnavailableError) as caught:
        await control.ring_agent("PJSIP/alice", call_id=call_id, timeout_s=15, caller_id="Q <1>")
    assert not isinstance(caught.value, ChannelGoneError)
    sim.fail_next("POST /ari/channels", 503, message="Asterisk not booted")
    with pytest.raises(AsteriskUnavailableError, match="not booted"):
        await control.ring_agent("PJSIP/alice", call_id=call_id, timeout_s=15, caller_id="Q <1>")


async def test_hangup_tolerates_a_channel_already_gone(
    control: AriCallControl, sim: SimulatedAsterisk, log: EventLog
) -> None:
    channel_id = sim.incoming_call()
    await control.hangup(channel_id)
    assert channel_id not in sim.channels
    await eventually(lambda: bool(log.events(StasisEnd)), what="StasisEnd")
    await control.hangup(channel_id)
    delete = [r for r in sim.requests if r.method == "DELETE"]
    assert [r.status for r in delete] == [204, 404]


async def test_continue_hands_the_channel_back_to_the_dialplan(
    control: AriCallControl, sim: SimulatedAsterisk, log: EventLog
) -> None:
    sim.add_extension("incoming", "3000", [("NoOp", ""), ("Answer", ""), ("Stasis", APP), ("Wait", "10")])
    channel_id = sim.incoming_call()
    await control.continue_in_dialplan(channel_id)
    await eventually(lambda: bool(log.events(StasisEnd)), what="StasisEnd")
    assert sim.channels[channel_id].priority == 4 and not sim.channels[channel_id].in_stasis
    with pytest.raises(ChannelGoneError):
        await control.continue_in_dialplan(channel_id)  # 409: not in Stasis any more


async def test_play_starts_one_playback_of_the_sounds_in_order(
    control: AriCallControl, sim: SimulatedAsterisk, log: EventLog
) -> None:
    channel_id = sim.incoming_call()
    await control.play(channel_id, "queue-thankyou", "queue-holdtime")
    request = [r for r in sim.requests if r.path == f"/ari/channels/{channel_id}/play"][-1]
    assert request.query == {"media": "sound:queue-thankyou,sound:queue-holdtime"}
    assert [p.media for p in sim.playbacks.values()] == [["sound:queue-thankyou", "sound:queue-holdtime"]]


async def test_live_channel_ids_lists_every_channel_on_the_pbx(
    control: AriCallControl, sim: SimulatedAsterisk, log: EventLog
) -> None:
    assert await control.live_channel_ids() == frozenset()
    first, second = sim.incoming_call(), sim.incoming_call()
    assert await control.live_channel_ids() == {first, second}
    sim.hangup(first)
    assert await control.live_channel_ids() == {second}
