"""The traffic driver against the simulator, with a minimal queue application on the ARI side.

The little app below answers ``sales`` callers (mixing bridge, originate to an agent, bridge on answer)
and leaves ``support`` callers waiting in Stasis. With virtual time, every caller's fate is known from
the seeded model: support callers hang up exactly when their patience runs out; sales callers either
abandon the same way before the agent answers, or are answered and the call ends after its handle time.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from typing import Any

import aiohttp
import pytest

from callcenter.simulator import SimulatedAsterisk
from callcenter.simulator.traffic import (
    Arrival,
    HandleDistribution,
    TrafficModel,
    TrafficProfile,
    run_traffic,
)
from tests.integration.simulator.ari_client import Ari

pytestmark = pytest.mark.integration

PROFILE = TrafficProfile.flat(
    1800,
    patience_mean_s=15.0,
    handle_mean_s=20.0,
    handle_distribution=HandleDistribution.EXPONENTIAL,
    agent_answer_mean_s=3.0,
    agent_no_answer_rate=0.0,
    queues=(("sales", 1.0), ("support", 1.0)),
)


def _ts(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()


class MiniQueue:
    """Answers sales callers with an agent; reacts to each event before acknowledging a sync marker."""

    def __init__(self, ari: Ari, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ari = ari
        self.ws = ws
        self.log: list[dict[str, Any]] = []
        self._synced: dict[int, asyncio.Event] = {}
        self._n = 0
        self._legs: dict[str, str] = {}  # caller -> agent leg
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def idle(self) -> None:
        """Return once every event sent so far has been handled (REST calls included)."""
        self._n += 1
        done = self._synced[self._n] = asyncio.Event()
        self.ari.sim.send_raw(json.dumps({"type": "__sync__", "n": self._n}))
        await done.wait()

    async def _loop(self) -> None:
        async for msg in self.ws:
            event = json.loads(msg.data)
            if event["type"] == "__sync__":
                self._synced[event["n"]].set()
                continue
            self.log.append(event)
            await self._handle(event)

    async def _handle(self, event: dict[str, Any]) -> None:
        channel = event.get("channel", {}).get("id")
        if event["type"] == "StasisStart" and event["args"] == ["sales"]:
            created = await self.ari.call(
                "POST",
                "/ari/channels",
                {"endpoint": "PJSIP/agent1", "app": "callcenter", "appArgs": f"agent,{channel}"},
            )
            self._legs[channel] = created.body["id"]
        elif event["type"] == "StasisStart" and event["args"][:1] == ["agent"]:
            caller = event["args"][1]
            if caller in self.ari.sim.channels:
                bridge = (await self.ari.call("POST", "/ari/bridges", {"type": "mixing"})).body
                await self.ari.call(
                    "POST", f"/ari/bridges/{bridge['id']}/addChannel", {"channel": f"{caller},{channel}"}
                )
            else:
                await self.ari.call("DELETE", f"/ari/channels/{channel}")
        elif event["type"] == "StasisEnd" and channel in self._legs:
            leg = self._legs.pop(channel)
            if leg in self.ari.sim.channels:
                await self.ari.call("DELETE", f"/ari/channels/{leg}")
        elif event["type"] == "StasisEnd":
            for caller, leg in list(self._legs.items()):
                if leg == channel and caller in self.ari.sim.channels:
                    del self._legs[caller]
                    await self.ari.call("DELETE", f"/ari/channels/{caller}")

    async def close(self) -> None:
        await self.ws.close()
        await self._task


async def test_driver_abandons_impatient_callers_and_ends_answered_calls_after_their_handle_time(
    ari: Ari, sim: SimulatedAsterisk
) -> None:
    sim.set_endpoint("PJSIP/agent1", answer_after_s=1.0)
    ws = await ari.client.ws_connect("/ari/events?app=callcenter&api_key=asterisk:s3cret")
    app = MiniQueue(ari, ws)
    start = sim.scheduler.now()
    expected = {a.caller: a for a in _arrivals_until(TrafficModel(PROFILE, seed=7), start, 90.0)}

    stop = asyncio.Event()
    driver = asyncio.create_task(run_traffic(sim, TrafficModel(PROFILE, seed=7), stop))
    await asyncio.sleep(0)  # let the driver schedule its first arrival
    await sim.advance(90.0, after_each=app.idle)
    stop.set()
    await sim.advance(600.0, after_each=app.idle)  # no new callers; the calls in progress end
    stats = await driver
    await app.idle()

    callers = _caller_lifecycles(app.log)
    assert set(callers) == set(expected) and stats.arrived == len(expected) > 20
    abandoned = answered = 0
    for number, life in callers.items():
        arrival = expected[number]
        assert life["start"] - _ts_of(start) == _approx(arrival.offset_s)
        if "bridged" not in life:
            abandoned += 1
            assert life["end"] - life["start"] == _approx(arrival.patience_s), number
            assert life["hangup_cause"] is None  # a remote BYE alone: ChannelHangupRequest without cause
        else:
            answered += 1
            assert arrival.queue == "sales"
            assert life["bridged"] - life["start"] < arrival.patience_s
            assert life["end"] - life["bridged"] == _approx(arrival.handle_s), number
    assert all(expected[n].queue == "sales" for n, life in callers.items() if "bridged" in life)
    assert (stats.abandoned, stats.answered, stats.completed) == (abandoned, answered, answered)
    assert abandoned > 0 and answered > 0
    assert stats.agent_legs >= answered and stats.failed == 0
    assert sim.channels == {}
    await app.close()


def _approx(value: float) -> Any:
    return pytest.approx(value, abs=0.002)  # event timestamps are in milliseconds


def _ts_of(when: datetime) -> float:
    return when.timestamp()


def _arrivals_until(model: TrafficModel, start: datetime, horizon_s: float) -> list[Arrival]:
    arrivals = []
    for arrival in model.arrivals(start):
        if arrival.offset_s > horizon_s:
            break
        arrivals.append(arrival)
    return arrivals


def _caller_lifecycles(log: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per caller number: Stasis start, bridging with an agent, end (StasisEnd) and hang-up cause."""
    by_channel: dict[str, dict[str, Any]] = {}
    number_of: dict[str, str] = {}
    for event in log:
        channel = event.get("channel", {})
        if event["type"] == "StasisStart" and event["args"][:1] != ["agent"]:
            number_of[channel["id"]] = channel["caller"]["number"]
            by_channel[channel["id"]] = {"start": _ts(event["timestamp"])}
        if event["type"] == "ChannelEnteredBridge" and len(event["bridge"]["channels"]) == 2:
            for member in event["bridge"]["channels"]:
                if member in by_channel:
                    by_channel[member].setdefault("bridged", _ts(event["timestamp"]))
        life = by_channel.get(channel.get("id", ""))
        if life is None:
            continue
        if event["type"] == "ChannelHangupRequest":
            life["hangup_cause"] = event.get("cause")
        elif event["type"] == "StasisEnd":
            life["end"] = _ts(event["timestamp"])
    return {number_of[c]: life for c, life in by_channel.items()}
