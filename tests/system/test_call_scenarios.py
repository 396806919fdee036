"""Call scenarios end to end: the whole app against the simulated Asterisk, asserting what users see.

Each scenario reads its result where a supervisor, a consumer or a caller would notice it: the stored
call through ``GET /api/v1/calls``, the ``CallEnded`` on the bus, the agents' states, and what the
simulated Asterisk did to the channels and bridges. Timings are short (ring timeout 2 s, wrap-up 1 s)
and every wait is on a condition under a deadline.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from callcenter.ari.client import ari_auth_headers
from callcenter.ari.link import LinkStatus
from callcenter.config import AriSettings
from callcenter.model.events import CallEnded
from callcenter.model.vocabulary import AgentState
from callcenter.simulator import EndpointBehaviour, RecordedRequest, SimulatedAsterisk
from callcenter.simulator.pbx import Bridge
from tests.system.conftest import (
    CALLER,
    FAST_QUEUE,
    QUEUE,
    Apps,
    AsteriskTarget,
    RunningApp,
    eventually,
)

pytestmark = [pytest.mark.system, pytest.mark.timeout(30)]


# ---------------------------------------------------------------------------------------------
# What the simulated Asterisk shows
# ---------------------------------------------------------------------------------------------


def call_in(sim: SimulatedAsterisk, queue: str = QUEUE, *, caller: str = CALLER) -> str:
    """A caller dials in and reaches ``Stasis(callcenter,<queue>)``; returns the caller's channel id."""
    channel = sim.incoming_call(caller, app_args=[queue])
    assert channel.entered_stasis, "no app holds the Stasis application"
    return channel


def bridge_of(sim: SimulatedAsterisk, channel: str, kind: str) -> Bridge | None:
    """The ``holding`` or ``mixing`` bridge ``channel`` is in, if any."""
    return next((b for b in sim.bridges.values() if channel in b.channels and b.bridge_type == kind), None)


def agent_channels(sim: SimulatedAsterisk, endpoint: str) -> list[str]:
    """Live channels the app originated to ``endpoint`` (``PJSIP/alice-00000003``...)."""
    return [c.id for c in sim.channels.values() if c.originated and c.name.startswith(endpoint + "-")]


def requested(sim: SimulatedAsterisk, method: str, path: str) -> list[RecordedRequest]:
    """The REST calls the app made to ``method path``."""
    return [r for r in sim.requests if r.method == method and r.path == path]


def played(sim: SimulatedAsterisk, channel: str) -> list[str]:
    """Media the app asked Asterisk to play to ``channel`` (one comma-separated ``media`` per play)."""
    plays = requested(sim, "POST", f"/ari/channels/{channel}/play")
    return [uri for request in plays for uri in request.query.get("media", "").split(",") if uri]


def ever_bridged(sim: SimulatedAsterisk, channel: str) -> bool:
    """Whether the app ever asked Asterisk to put ``channel`` in a bridge."""
    return any(
        r.method == "POST"
        and r.path.endswith("/addChannel")
        and channel in r.query.get("channel", "").split(",")
        for r in sim.requests
    )


async def waiting(app: RunningApp, queue: str = QUEUE) -> list[dict[str, Any]]:
    """The waiting list of the wallboard (``GET /api/v1/queues/{queue}/live``)."""
    status, body = await app.get(f"/queues/{queue}/live")
    assert status == 200, body
    return list(body["waiting"])


async def queued(app: RunningApp, call_id: str, *, min_wait_s: float = 0.0) -> dict[str, Any]:
    """Wait until ``call_id`` is in the waiting list with at least ``min_wait_s`` of wait; its entry."""
    found: dict[str, Any] = {}

    async def in_list() -> bool:
        for entry in await waiting(app):
            if entry["call_id"] == call_id and entry["wait_s"] >= min_wait_s:
                found.update(entry)
                return True
        return False

    await eventually(in_list, what=f"call {call_id} waiting {min_wait_s}s")
    return found


def kinds(call: dict[str, Any]) -> list[str]:
    return [event["kind"] for event in call["events"]]


async def one_call_ended(app: RunningApp, call_id: str) -> CallEnded:
    """The one ``CallEnded`` of ``call_id`` on the bus (it is published right after the store commit)."""

    async def published() -> bool:
        return bool(await app.published(call_id))

    await eventually(published, what=f"CallEnded of {call_id} on the bus")
    events = await app.published(call_id)
    assert len(events) == 1, events
    return events[0]


# ---------------------------------------------------------------------------------------------
# Answered
# ---------------------------------------------------------------------------------------------


async def test_given_agent_available_when_caller_arrives_then_bridged_answered_and_agent_wraps_up(
    sim: SimulatedAsterisk, system: RunningApp
) -> None:
    sim.set_endpoint(await system.add_agent("alice"), answer_after_s=0.2)

    caller = call_in(sim)
    await eventually(
        lambda: (b := bridge_of(sim, caller, "mixing")) is not None and len(b.channels) == 2,
        what="caller and agent in one mixing bridge",
    )
    mixing = bridge_of(sim, caller, "mixing")
    [leg] = agent_channels(sim, "PJSIP/alice")
    assert mixing is not None and leg in mixing.channels
    await system.wait_agent("alice", AgentState.BUSY)
    sim.hangup(caller)

    call = await system.decided(caller)
    assert call["outcome"] == "answered" and call["missed"] is False
    assert call["agent_id"] == "alice" and call["queue"] == QUEUE and call["caller"] == CALLER
    assert call["position"] == 1 and 0 <= call["wait_s"] < 5
    assert call["talk_s"] > 0 and call["answered_at"] <= call["ended_at"]
    assert call["reconciled"] is False
    assert kinds(call)[0] == "arrived" and {"queued", "answered", "ended"} <= set(kinds(call))
    # Dial RINGING and ChannelStateChange Ringing of the agent's leg: the phone rang, once on the timeline.
    assert kinds(call).count("agent_ringing") == 1
    assert (
        kinds(call).index("agent_offered")
        < kinds(call).index("agent_ringing")
        < kinds(call).index("answered")
    )
    ended = await one_call_ended(system, caller)
    assert (ended.outcome, ended.agent_id, ended.position) == ("answered", "alice", 1)
    # The app ends the agent's leg and the bridge; the agent wraps up (1 s), then takes calls again.
    await eventually(lambda: not agent_channels(sim, "PJSIP/alice"), what="agent leg hung up")
    await eventually(lambda: mixing.id not in sim.bridges, what="mixing bridge destroyed")
    await system.wait_agent("alice", AgentState.WRAP_UP)
    await system.wait_agent("alice", AgentState.AVAILABLE)


# ---------------------------------------------------------------------------------------------
# Abandons
# ---------------------------------------------------------------------------------------------


async def test_given_two_callers_waiting_when_second_hangs_up_after_threshold_then_abandoned_with_wait_and_position(
    sim: SimulatedAsterisk, system: RunningApp
) -> None:
    await system.put_queue(dataclasses.replace(FAST_QUEUE, join_empty=True, short_abandon_s=1))
    first, second = call_in(sim), call_in(sim, caller="+14155550101")
    await queued(system, first)
    entry = await queued(system, second, min_wait_s=1.2)
    assert entry["position"] == 2
    # Waiting callers hear music in the queue's holding bridge: never silence.
    holding = bridge_of(sim, second, "holding")
    assert holding is not None and first in holding.channels and holding.moh_class is not None

    sim.hangup(second)

    call = await system.decided(second)
    assert (call["outcome"], call["position"], call["missed"]) == ("abandoned", 2, True)
    assert call["wait_s"] >= 1.2 and call["answered_at"] is None and call["agent_id"] is None
    ended = await one_call_ended(system, second)
    assert (ended.outcome, ended.position) == ("abandoned", 2) and ended.wait_s >= 1.2
    [still] = await waiting(system)
    assert (still["call_id"], still["position"]) == (first, 1)
    sim.hangup(first)
    assert (await system.decided(first))["outcome"] == "abandoned"


async def test_given_holding_bridge_emptied_when_next_caller_waits_then_music_plays_again(
    sim: SimulatedAsterisk, system: RunningApp
) -> None:
    """Real Asterisk: the music-on-hold announcer leaves with the last caller (lonely bridge channel);
    a later caller put in the same bridge waited in silence."""
    await system.put_queue(dataclasses.replace(FAST_QUEUE, join_empty=True, max_wait_s=60))
    first = call_in(sim)
    await queued(system, first)
    await eventually(lambda: sim.hears_music(first), what="music for the first caller")
    sim.hangup(first)
    await system.decided(first)

    second = call_in(sim, caller="+14155550101")

    await queued(system, second)
    await eventually(lambda: sim.hears_music(second), what="music for the caller after the first left")
    sim.hangup(second)
    await system.decided(second)


async def test_given_caller_queued_when_hangs_up_under_5s_then_short_abandon(
    sim: SimulatedAsterisk, system: RunningApp
) -> None:
    await system.put_queue(dataclasses.replace(FAST_QUEUE, join_empty=True))  # default threshold: 5 s
    caller = call_in(sim)
    await queued(system, caller)

    sim.hangup(caller)

    call = await system.decided(caller)
    assert (call["outcome"], call["position"], call["missed"]) == ("short_abandon", 1, True)
    assert 0 <= call["wait_s"] < 5
    assert (await one_call_ended(system, caller)).outcome == "short_abandon"
    assert await waiting(system) == []


# ---------------------------------------------------------------------------------------------
# Unanswered: nobody logged in, max wait, after hours
# ---------------------------------------------------------------------------------------------


async def test_given_no_agent_logged_in_when_caller_arrives_then_message_hangup_and_unanswered_no_agents(
    sim: SimulatedAsterisk, system: RunningApp
) -> None:
    await system.add_agent("alice", login=False)  # a member, logged out

    caller = call_in(sim)

    # Not left in silence: a message, then the app hangs up itself once it has played (8.97 s).
    await eventually(lambda: "sound:tt-allbusy" in played(sim, caller), what="the all-busy message")
    # (A REST call is recorded once answered, after its events: wait for the record itself.)
    await eventually(
        lambda: bool(requested(sim, "DELETE", f"/ari/channels/{caller}")), timeout_s=15, what="the hang-up"
    )
    assert caller not in sim.channels
    assert sim.heard(caller) == [("sound:tt-allbusy", "complete")], "the whole message, not cut off"
    call = await system.decided(caller)
    assert (call["outcome"], call["queued_at"], call["position"]) == ("unanswered_no_agents", None, None)
    [by_us] = [e for e in call["events"] if e["kind"] == "hung_up_by_us"]
    assert by_us["detail"] == {"reason": "exit_message_played"}
    assert "caller_hung_up" not in kinds(call)
    assert (await one_call_ended(system, caller)).outcome == "unanswered_no_agents"
    assert not requested(sim, "POST", "/ari/channels"), "nobody to ring"


async def test_given_caller_waiting_when_max_wait_reached_then_message_and_unanswered_timeout(
    sim: SimulatedAsterisk, system: RunningApp
) -> None:
    await system.put_queue(dataclasses.replace(FAST_QUEUE, join_empty=True, max_wait_s=2))
    caller = call_in(sim)
    await queued(system, caller)

    await eventually(lambda: "sound:tt-allbusy" in played(sim, caller), what="the timeout message")
    assert await waiting(system) == [], "out of the waiting list while the message plays"
    sim.hangup(caller)  # the caller hangs up on hearing it

    call = await system.decided(caller)
    assert (call["outcome"], call["position"], call["missed"]) == ("unanswered_timeout", 1, True)
    assert call["wait_s"] >= 2
    assert (await one_call_ended(system, caller)).outcome == "unanswered_timeout"


async def test_given_queue_closed_today_when_caller_arrives_then_closed_message_and_after_hours(
    sim: SimulatedAsterisk, system: RunningApp
) -> None:
    today = datetime.now(UTC).date()
    holidays = tuple(today + timedelta(days=d) for d in (-1, 0, 1))  # whatever the clock says meanwhile
    await system.put_queue(dataclasses.replace(FAST_QUEUE, holidays=holidays))
    sim.set_endpoint(await system.add_agent("alice"))  # staffed: it is the hours that turn callers away
    status, live = await system.get(f"/queues/{QUEUE}/live")
    assert status == 200 and live["open_now"] is False

    caller = call_in(sim)

    # The whole message (a missing sound file would fail at once), then our hang-up.
    call = await system.decided(caller)
    assert played(sim, caller) == ["sound:im-sorry", "sound:please-try-call-later"]
    assert sim.heard(caller) == [("sound:im-sorry", "complete"), ("sound:please-try-call-later", "complete")]
    assert (call["outcome"], call["queued_at"], call["wait_s"]) == ("after_hours", None, None)
    assert kinds(call)[-2:] == ["hung_up_by_us", "ended"]
    assert call["events"][-1]["detail"] == {"outcome": "after_hours", "wait_s": None}
    assert (await one_call_ended(system, caller)).outcome == "after_hours"
    assert (
        not requested(sim, "POST", "/ari/channels")
        and await system.agent_state("alice") is AgentState.AVAILABLE
    )


# ---------------------------------------------------------------------------------------------
# Before the queue
# ---------------------------------------------------------------------------------------------


async def test_given_unknown_queue_in_stasis_args_when_caller_arrives_then_handed_back_to_dialplan(
    sim: SimulatedAsterisk, system: RunningApp
) -> None:
    # The dialplan goes on after Stasis() returns: a goodbye, then a hang-up (never dead air).
    sim.add_extension(
        "incoming",
        "3000",
        [
            ("NoOp", ""),
            ("Answer", ""),
            ("Stasis", "callcenter,nosuchqueue"),
            ("Playback", "vm-goodbye"),
            ("Hangup", ""),
        ],
    )

    caller = sim.incoming_call(CALLER, exten="3000", context="incoming")

    await eventually(lambda: caller not in sim.channels, what="the dialplan playing on, then hanging up")
    call = await system.decided(caller)
    assert requested(sim, "POST", f"/ari/channels/{caller}/continue")
    visits = [(v.priority, v.app) for v in sim.dialplan_log if v.channel_id == caller]
    assert visits[-2:] == [(4, "Playback"), (5, "Hangup")]
    assert (call["outcome"], call["queue"], call["queued_at"]) == ("failed", "nosuchqueue", None)
    failed = [e for e in call["events"] if e["kind"] == "failed"]
    assert failed and "unknown_queue" in failed[0]["detail"]["reason"]
    assert (await one_call_ended(system, caller)).outcome == "failed"


async def test_given_caller_in_stasis_when_hangs_up_before_being_queued_then_ivr_hangup(
    sim: SimulatedAsterisk, system: RunningApp
) -> None:
    await system.put_queue(dataclasses.replace(FAST_QUEUE, join_empty=True))
    caller = call_in(sim)
    sim.hangup(caller)  # in the same instant: gone before the app answers

    call = await system.decided(caller)
    assert (call["outcome"], call["queued_at"], call["position"], call["missed"]) == (
        "ivr_hangup",
        None,
        None,
        True,
    )
    assert (await one_call_ended(system, caller)).outcome == "ivr_hangup"
    assert requested(sim, "POST", f"/ari/channels/{caller}/answer")[0].status == 404
    assert not ever_bridged(sim, caller)


# ---------------------------------------------------------------------------------------------
# Agents ringing
# ---------------------------------------------------------------------------------------------


async def test_given_first_agent_does_not_answer_when_ring_times_out_then_next_agent_answers(
    sim: SimulatedAsterisk, system: RunningApp
) -> None:
    # alice logs in first, so she is the longest idle and rung first.
    sim.set_endpoint(await system.add_agent("alice"), behaviour=EndpointBehaviour.NO_ANSWER)
    sim.set_endpoint(await system.add_agent("bob"), answer_after_s=0.2)

    caller = call_in(sim)
    await eventually(
        lambda: (b := bridge_of(sim, caller, "mixing")) is not None and len(b.channels) == 2,
        timeout_s=15,
        what="caller bridged with the second agent",
    )

    assert not agent_channels(sim, "PJSIP/alice"), "alice's leg rang out (2 s ring timeout)"
    await system.wait_agent("bob", AgentState.BUSY)
    assert await system.agent_state("alice") is AgentState.AVAILABLE  # one miss: not paused
    sim.hangup(caller)
    call = await system.decided(caller)
    assert (call["outcome"], call["agent_id"], call["position"]) == ("answered", "bob", 1)
    no_answer = [e for e in call["events"] if e["kind"] == "agent_no_answer"]
    assert [e["detail"]["agent_id"] for e in no_answer] == ["alice"]
    assert (await one_call_ended(system, caller)).agent_id == "bob"


async def test_given_agent_ringing_when_caller_hangs_up_then_abandoned_and_agent_leg_hung_up(
    sim: SimulatedAsterisk, system: RunningApp
) -> None:
    await system.put_queue(dataclasses.replace(FAST_QUEUE, short_abandon_s=1, ring_timeout_s=10))
    sim.set_endpoint(await system.add_agent("alice"), behaviour=EndpointBehaviour.NO_ANSWER)
    caller = call_in(sim)
    await system.wait_agent("alice", AgentState.RINGING)
    entry = await queued(system, caller, min_wait_s=1.2)
    assert entry["ringing_agent"] == "alice"
    [leg] = agent_channels(sim, "PJSIP/alice")

    sim.hangup(caller)

    call = await system.decided(caller)
    assert (call["outcome"], call["agent_id"], call["answered_at"]) == ("abandoned", None, None)
    assert call["wait_s"] >= 1.2 and call["position"] == 1
    await eventually(lambda: bool(requested(sim, "DELETE", f"/ari/channels/{leg}")), what="leg hung up")
    assert leg not in sim.channels
    await system.wait_agent("alice", AgentState.AVAILABLE)
    assert (await one_call_ended(system, caller)).outcome == "abandoned"


# ---------------------------------------------------------------------------------------------
# The ARI link: outages, restarts, a second process
# ---------------------------------------------------------------------------------------------


async def test_given_call_in_progress_when_websocket_drops_and_caller_hangs_up_meanwhile_then_reconciled_once(
    sim: SimulatedAsterisk, system: RunningApp
) -> None:
    sim.set_endpoint(await system.add_agent("alice"), answer_after_s=0.2)
    caller = call_in(sim)
    await system.wait_agent("alice", AgentState.BUSY)
    await eventually(lambda: (b := bridge_of(sim, caller, "mixing")) is not None and len(b.channels) == 2)
    [leg] = agent_channels(sim, "PJSIP/alice")
    behind = call_in(sim, caller="+14155550101")
    await queued(system, behind)
    connects = system.link.connects

    sim.drop_websockets()
    sim.hangup(caller)  # in the same instant: no socket holds the app, the events are lost
    sim.hangup(behind)

    await eventually(lambda: system.link.connects > connects and system.link.status is LinkStatus.UP)
    call = await system.decided(caller)
    assert (call["outcome"], call["agent_id"], call["reconciled"]) == ("answered", "alice", True)
    assert "reconciled" in kinds(call) and kinds(call).count("ended") == 1
    ended = await one_call_ended(system, caller)
    assert ended.reconciled is True and ended.outcome == "answered"
    waited = await system.decided(behind)
    assert (waited["outcome"], waited["position"], waited["reconciled"]) == ("short_abandon", 1, True)
    assert (await one_call_ended(system, behind)).reconciled is True
    # The resync also ends what the caller left behind: the agent's leg, then the wrap-up.
    await eventually(lambda: leg not in sim.channels, what="agent leg hung up after the resync")
    await system.wait_agent("alice", AgentState.AVAILABLE)
    assert [c["id"] for c in await system.calls(outcome="answered")] == [caller]


async def test_given_asterisk_restarts_when_link_returns_then_app_reregistered_and_live_state_rebuilt(
    sim: SimulatedAsterisk, system: RunningApp
) -> None:
    sim.set_endpoint(await system.add_agent("alice"), answer_after_s=0.2)
    first = call_in(sim)
    await system.wait_agent("alice", AgentState.BUSY)
    connects = system.link.connects

    await sim.restart(booting_s=1.0)  # every call cut; 503 "Asterisk not booted" for a second

    await eventually(
        lambda: system.link.connects > connects and system.link.status is LinkStatus.UP, timeout_s=15
    )
    assert sim.app_registered("callcenter")
    assert await system.health() == (
        200,
        {"status": "ok", "checks": {"db": "ok", "redis": "ok", "ari": "ok"}},
    )
    cut = await system.decided(first)
    assert cut["outcome"] == "answered" and "failed" in kinds(cut)  # served, then Asterisk shut down
    await system.wait_agent("alice", AgentState.AVAILABLE)
    assert await waiting(system) == []
    # A new caller is served: a fresh holding bridge, the agent rung on the restarted Asterisk.
    second = call_in(sim)
    await eventually(lambda: (b := bridge_of(sim, second, "mixing")) is not None and len(b.channels) == 2)
    sim.hangup(second)
    assert (await system.decided(second))["outcome"] == "answered"
    assert len(await system.published(first)) == 1


async def test_given_lease_held_when_second_process_starts_then_it_stands_by_and_takes_over_at_shutdown(
    sim: SimulatedAsterisk, system: RunningApp, apps: Apps
) -> None:
    second = await apps.start("app2", wait_up=False)
    await second.put_queue(dataclasses.replace(FAST_QUEUE, join_empty=True))
    await system.put_queue(dataclasses.replace(FAST_QUEUE, join_empty=True))

    await eventually(lambda: second.link.status is LinkStatus.STANDBY, what="the second link standing by")
    assert sim.websockets_of("callcenter") == 1 and system.link.status is LinkStatus.UP
    # The callback dispatcher's own application is held by one process too (its own lease, taken
    # once that process's ARI link is up).
    await eventually(lambda: sim.websockets_of("callcenter-callbacks") == 1, what="the dispatcher's socket")
    assert (await second.health())[1]["checks"]["ari"] == "ok"  # standing by, Asterisk answers REST
    caller = call_in(sim)
    await queued(system, caller)
    sim.hangup(caller)
    assert (await system.decided(caller))["outcome"] == "short_abandon"
    assert await second.calls() == [], "only the lease holder sees calls"
    assert sim.websockets_of("callcenter") == 1

    await system.stop()  # releases the lease

    await eventually(lambda: second.link.status is LinkStatus.UP, timeout_s=10, what="the takeover")
    assert sim.websockets_of("callcenter") == 1 and sim.app_registered("callcenter")
    assert (await second.health())[1]["checks"]["ari"] == "ok"
    late = call_in(sim, caller="+14155550102")
    await queued(second, late)
    sim.hangup(late)
    assert (await second.decided(late))["outcome"] == "short_abandon"


async def test_given_callers_waiting_when_lease_holder_shuts_down_then_next_process_keeps_their_place_and_decides_the_lost(
    sim: SimulatedAsterisk, system: RunningApp, apps: Apps
) -> None:
    """Production shape: two processes on one store and one Redis; the lease holder serves the calls.

    Found a bug: the process taking over re-queued waiting callers as new arrivals (wait and place
    lost), and a caller who hung up during the hand-over stayed undecided for ever.
    """
    await system.put_queue(dataclasses.replace(FAST_QUEUE, join_empty=True))
    sim.set_endpoint(await system.add_agent("alice", login=False), answer_after_s=0.2)
    second = await apps.start("app2", wait_up=False, database_url=system.services.settings.database.url)
    await eventually(lambda: second.link.status is LinkStatus.STANDBY, what="the second link standing by")
    first, lost = call_in(sim), call_in(sim, caller="+14155550101")
    await queued(system, lost)
    queued_at = (await system.call(first))["queued_at"]

    # The first process goes away and, meanwhile, one caller hangs up unseen (no socket holds the app).
    ari_users = dict(sim.users)
    sim.users.clear()  # 401 for a while: the old holder cannot reconnect before it is gone
    sim.drop_websockets()
    sim.hangup(lost)
    await system.stop()
    sim.users.update(ari_users)

    await eventually(lambda: second.link.status is LinkStatus.UP, timeout_s=10, what="the takeover")
    gone = await second.decided(lost)
    assert (gone["reconciled"], gone["position"]) == (True, 2)
    assert gone["outcome"] in ("short_abandon", "abandoned")
    assert (await waiting(second))[0]["call_id"] == first  # still first in line
    await second.services.queue.login("alice", actor="test")
    await eventually(lambda: (b := bridge_of(sim, first, "mixing")) is not None and len(b.channels) == 2)
    sim.hangup(first)
    call = await second.decided(first)
    assert (call["outcome"], call["agent_id"], call["queued_at"]) == ("answered", "alice", queued_at)
    assert len(await second.published(first)) == len(await second.published(lost)) == 1


async def test_given_call_decided_when_duplicate_and_out_of_order_events_arrive_then_no_second_outcome(
    sim: SimulatedAsterisk, system: RunningApp
) -> None:
    await system.put_queue(dataclasses.replace(FAST_QUEUE, join_empty=True))
    caller = call_in(sim)
    await queued(system, caller)
    snapshot = sim.channels[caller].json()
    sim.hangup(caller)
    decided = await system.decided(caller)
    assert decided["outcome"] == "short_abandon"

    def frame(kind: str, extra: str = "") -> str:
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")
        return (
            f'{{"type":"{kind}","timestamp":"{stamp}",{extra}"channel":{snapshot},'
            f'"asterisk_id":"02:fc:00:00:00:01","application":"callcenter"}}'
        )

    sim.send_raw(frame("StasisEnd"))  # a duplicate end
    sim.send_raw(frame("ChannelHangupRequest", '"cause":16,'))  # an end that overtook nothing
    sim.send_raw(frame("StasisStart", f'"args":{json.dumps([QUEUE])},'))  # a start after the end
    # Frames are handled in order: once a later call is decided, the three above were handled.
    marker = call_in(sim, caller="+14155550109")
    sim.hangup(marker)
    await system.decided(marker)

    again = await system.call(caller)
    assert {k: again[k] for k in ("outcome", "ended_at", "wait_s", "position")} == {
        k: decided[k] for k in ("outcome", "ended_at", "wait_s", "position")
    }
    assert kinds(again).count("ended") == 1
    assert len(await system.published(caller)) == 1
    assert await waiting(system) == [], "the late StasisStart queued nobody"
    assert system.link.handler_errors == 0
    assert not requested(sim, "POST", f"/ari/channels/{caller}/answer")[1:], "answered at most once"


async def test_given_asterisk_stopped_when_health_asked_then_ari_fail_degraded_and_api_keeps_serving(
    sim: SimulatedAsterisk, system: RunningApp, asterisk: AsteriskTarget
) -> None:
    assert await system.health() == (
        200,
        {"status": "ok", "checks": {"db": "ok", "redis": "ok", "ari": "ok"}},
    )
    port = int(asterisk.url.rsplit(":", 1)[1])

    await sim.stop()

    await eventually(lambda: system.link.status is LinkStatus.DOWN, what="the link noticing")
    assert await system.health() == (
        200,
        {"status": "degraded", "checks": {"db": "ok", "redis": "ok", "ari": "fail"}},
    )
    assert (await system.get("/calls"))[0] == 200
    assert (await system.get(f"/queues/{QUEUE}/live"))[0] == 200
    # Asterisk back on the same address: the link returns by itself.
    await sim.start("127.0.0.1", port)
    await eventually(lambda: system.link.status is LinkStatus.UP, timeout_s=15, what="the link returning")
    assert (await system.health())[1]["checks"]["ari"] == "ok"


# ---------------------------------------------------------------------------------------------
# Runs on a real Asterisk too (CALLCENTER_ARI_URL and -m real_asterisk)
# ---------------------------------------------------------------------------------------------


async def test_given_asterisk_reachable_when_app_starts_then_link_up_app_registered_and_health_ok(
    asterisk: AsteriskTarget, system: RunningApp
) -> None:
    assert system.link.status is LinkStatus.UP
    status, body = await system.health()
    assert (status, body["checks"]["ari"]) == (200, "ok")
    settings = AriSettings(
        url=asterisk.url, username=asterisk.username, password=asterisk.password, app=asterisk.app
    )
    async with aiohttp.ClientSession(headers=ari_auth_headers(settings)) as http:
        async with http.get(f"{asterisk.url}/ari/applications/{asterisk.app}") as response:
            assert response.status == 200, "the Stasis application is registered by our socket"
    assert await system.calls() == []
