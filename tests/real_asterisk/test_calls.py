"""Call scenarios against a real Asterisk: real SIP calls (SIPp) into ``Stasis(callcenter,<queue>)``.

The system scenarios of ``tests/system/test_call_scenarios.py``, asserted where a supervisor, a consumer
or a caller would notice them: the stored call through ``GET /api/v1/calls``, the ``CallEnded`` on the
bus, the agents' states, what the SIP phones saw (answered, cancelled, hung up on) and, through ARI,
Asterisk's own channels, bridges and events. Skipped unless ``CALLCENTER_ARI_URL`` is set and ``sipp``
is on PATH (see ``conftest.py`` and ``README.md``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from callcenter.model.vocabulary import AgentState
from tests.real_asterisk.conftest import (
    QUEUE,
    REAL_QUEUE,
    SKIP_REASON,
    UNKNOWN_QUEUE_EXTEN,
    AriObserver,
    Lab,
)
from tests.system.conftest import eventually

pytestmark = [
    pytest.mark.real_asterisk,
    pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or ""),
    pytest.mark.timeout(60),
]


def kinds(call: dict[str, Any]) -> list[str]:
    return [event["kind"] for event in call["events"]]


def details(call: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [event["detail"] for event in call["events"] if event["kind"] == kind]


async def waiting(lab: Lab) -> list[dict[str, Any]]:
    status, body = await lab.app.get(f"/queues/{QUEUE}/live")
    assert status == 200, body
    return list(body["waiting"])


def exit_message_played_whole(observer: AriObserver, call_id: str, media: str) -> bool:
    """``media`` started and finished on the caller's channel before anyone asked to hang it up."""
    seen = [(e["type"], e.get("playback", {}).get("media_uri")) for e in observer.of_channel(call_id)]
    started = ("PlaybackStarted", media) in seen
    finished = seen.index(("PlaybackFinished", media)) if ("PlaybackFinished", media) in seen else None
    hang_up = next((i for i, (kind, _) in enumerate(seen) if kind == "ChannelHangupRequest"), None)
    return started and finished is not None and (hang_up is None or finished < hang_up)


# ---------------------------------------------------------------------------------------------
# Answered
# ---------------------------------------------------------------------------------------------


async def test_given_agent_answers_when_caller_hangs_up_then_answered_agent_leg_ended_and_agent_wraps_up(
    lab: Lab,
) -> None:
    await lab.app.put_queue(dataclasses.replace(REAL_QUEUE, wrap_up_s=3))
    first = lab.phones[0]
    phone = await lab.phone(first, ring_ms=1000)
    await lab.login(first)

    caller = await lab.call(hold_ms=8000)
    call_id = await lab.call_id(caller)
    await lab.app.wait_agent(first.agent_id, AgentState.BUSY, timeout_s=10)
    [leg] = await lab.ari.legs_of(first)

    async def bridged() -> bool:
        mixing = await lab.ari.bridge_of(call_id, "mixing")
        return mixing is not None and set(mixing["channels"]) == {call_id, leg}

    await eventually(bridged, what="the caller and the agent's leg in one mixing bridge")

    assert await caller.finished() == "LOCAL_BYE"
    await lab.app.wait_agent(first.agent_id, AgentState.WRAP_UP)
    call = await lab.app.decided(call_id)
    assert (call["outcome"], call["missed"], call["agent_id"]) == ("answered", False, first.agent_id)
    assert (call["queue"], call["caller"], call["position"]) == (QUEUE, caller.stored_number, 1)
    assert 0 < call["wait_s"] < 4 and 5 < call["talk_s"] < 9
    assert call["reconciled"] is False
    assert kinds(call)[0] == "arrived" and {"queued", "answered", "ended"} <= set(kinds(call))
    ended = await lab.one_call_ended(call_id)
    assert (ended.outcome, ended.agent_id, ended.position) == ("answered", first.agent_id, 1)
    # The app hangs up the agent's leg (a BYE to the phone) and the bridge goes.
    await eventually(lambda: phone.count("REMOTE_BYE") == 1, what="the agent's phone hung up by Asterisk")
    assert await lab.ari.bridge_of(call_id, "mixing") is None
    await lab.app.wait_agent(first.agent_id, AgentState.AVAILABLE, timeout_s=10)


async def test_given_asterisk_answers_rest_over_its_events_socket_then_the_queue_sends_its_requests_there(
    lab: Lab,
) -> None:
    """Asterisk 20.14, 21.9, 22.4 and later: an answered call's requests (answer, bridges, originate,
    hang-up) travel as frames on the link's socket, with no stall; older ones get them over HTTP."""
    if (await lab.ari.version())[:2] < (20, 14):
        pytest.skip("this Asterisk predates ARI REST over WebSocket")
    rest = lab.app.link.rest
    assert rest is not None, "CALLCENTER_ARI_REST_OVER_WEBSOCKET is on by default"
    await eventually(rest.usable, what="Asterisk answered the link's probe")
    first = lab.phones[0]
    await lab.phone(first, ring_ms=500)
    await lab.login(first)
    sent_before = rest.sent

    caller = await lab.call(hold_ms=3000)
    call_id = await lab.call_id(caller)

    assert await caller.finished() == "LOCAL_BYE"
    call = await lab.app.decided(call_id)
    assert (call["outcome"], call["agent_id"]) == ("answered", first.agent_id)
    # answer, holding bridge (create, add, music), originate, mixing bridge (create, add x2), hang-up...
    assert rest.sent - sent_before >= 8 and rest.stalls == 0
    await lab.app.wait_agent(first.agent_id, AgentState.AVAILABLE, timeout_s=10)


async def test_given_agent_hangs_up_first_when_talking_then_answered_and_caller_hung_up(lab: Lab) -> None:
    first = lab.phones[0]
    phone = await lab.phone(first, ring_ms=1000, talk_ms=3000)
    await lab.login(first)

    caller = await lab.call(hold_ms=30_000)
    call_id = await lab.call_id(caller)

    assert await caller.finished() == "REMOTE_BYE", "the app hangs the caller up after the agent left"
    assert phone.count("AGENT_BYE") == 1
    call = await lab.app.decided(call_id)
    assert (call["outcome"], call["agent_id"], call["missed"]) == ("answered", first.agent_id, False)
    assert 2 < call["talk_s"] < 6
    assert "agent_hung_up" in kinds(call)
    assert {"reason": "agent_hung_up"} in details(call, "hung_up_by_us")
    assert (await lab.one_call_ended(call_id)).outcome == "answered"
    await lab.app.wait_agent(first.agent_id, AgentState.AVAILABLE, timeout_s=10)


# ---------------------------------------------------------------------------------------------
# Abandons
# ---------------------------------------------------------------------------------------------


async def test_given_agent_ringing_when_caller_hangs_up_then_abandoned_and_agent_leg_cancelled(
    lab: Lab,
) -> None:
    await lab.app.put_queue(dataclasses.replace(REAL_QUEUE, ring_timeout_s=20))
    first = lab.phones[0]
    phone = await lab.silent_phone(first)
    await lab.login(first)

    caller = await lab.call(hold_ms=7000)
    call_id = await lab.call_id(caller)
    await lab.app.wait_agent(first.agent_id, AgentState.RINGING, timeout_s=10)
    [entry] = await waiting(lab)
    assert (entry["call_id"], entry["ringing_agent"]) == (call_id, first.agent_id)
    await eventually(lambda: _legs(lab, 1), what="the agent's leg ringing")

    assert await caller.finished() == "LOCAL_BYE"
    call = await lab.app.decided(call_id)
    assert (call["outcome"], call["agent_id"], call["answered_at"]) == ("abandoned", None, None)
    assert call["wait_s"] >= 5 and call["position"] == 1 and call["missed"] is True
    assert (await lab.one_call_ended(call_id)).outcome == "abandoned"
    # The app ends the ringing leg: Asterisk CANCELs the INVITE to the phone.
    await eventually(lambda: phone.count("CANCELLED while ringing") == 1, what="the agent's INVITE cancelled")
    assert phone.count("ANSWERED") == 0
    await eventually(lambda: _legs(lab, 0), what="the agent's leg gone")
    await lab.app.wait_agent(first.agent_id, AgentState.AVAILABLE)


async def _legs(lab: Lab, count: int) -> bool:
    return len(await lab.ari.legs_of(lab.phones[0])) == count


async def test_given_caller_queued_when_hangs_up_under_threshold_then_short_abandon(lab: Lab) -> None:
    await lab.app.put_queue(dataclasses.replace(REAL_QUEUE, join_empty=True))  # nobody logged in

    caller = await lab.call(hold_ms=2000)
    call_id = await lab.call_id(caller)
    await eventually(lambda: _in_holding_bridge(lab, call_id), what="the caller in the holding bridge")

    assert await caller.finished() == "LOCAL_BYE"
    call = await lab.app.decided(call_id)
    assert (call["outcome"], call["position"], call["missed"]) == ("short_abandon", 1, True)
    assert 0 <= call["wait_s"] < 5
    assert (await lab.one_call_ended(call_id)).outcome == "short_abandon"
    assert await waiting(lab) == []


async def _in_holding_bridge(lab: Lab, call_id: str) -> bool:
    return await lab.ari.bridge_of(call_id, "holding") is not None


# ---------------------------------------------------------------------------------------------
# Unanswered
# ---------------------------------------------------------------------------------------------


async def test_given_no_agent_logged_in_when_caller_arrives_then_message_hangup_and_unanswered_no_agents(
    lab: Lab, observer: AriObserver
) -> None:
    caller = await lab.call(hold_ms=30_000)  # agents exist, all logged out
    call_id = await lab.call_id(caller)

    assert await caller.finished() == "REMOTE_BYE", "the app hangs up after its message"
    call = await lab.app.decided(call_id)
    assert (call["outcome"], call["queued_at"], call["position"]) == ("unanswered_no_agents", None, None)
    assert {"reason": "exit_message_played"} in details(call, "hung_up_by_us")
    assert (await lab.one_call_ended(call_id)).outcome == "unanswered_no_agents"
    assert exit_message_played_whole(observer, call_id, "sound:tt-allbusy"), observer.of_channel(call_id)
    assert not observer.channels_named(tuple(p.endpoint + "-" for p in lab.phones)), "nobody to ring"


async def test_given_caller_waiting_when_max_wait_reached_then_ringing_cancelled_message_and_unanswered_timeout(
    lab: Lab, observer: AriObserver
) -> None:
    await lab.app.put_queue(dataclasses.replace(REAL_QUEUE, max_wait_s=6, ring_timeout_s=30))
    first = lab.phones[0]
    phone = await lab.silent_phone(first)
    await lab.login(first)

    caller = await lab.call(hold_ms=40_000)
    call_id = await lab.call_id(caller)
    await lab.app.wait_agent(first.agent_id, AgentState.RINGING, timeout_s=10)

    assert await caller.finished() == "REMOTE_BYE", "the app hangs up after its message"
    call = await lab.app.decided(call_id)
    assert (call["outcome"], call["position"], call["missed"]) == ("unanswered_timeout", 1, True)
    assert call["wait_s"] >= 6 and call["agent_id"] is None
    assert (await lab.one_call_ended(call_id)).outcome == "unanswered_timeout"
    assert exit_message_played_whole(observer, call_id, "sound:tt-allbusy"), observer.of_channel(call_id)
    assert phone.count("CANCELLED while ringing") == 1 and phone.count("ANSWERED") == 0
    await lab.app.wait_agent(first.agent_id, AgentState.AVAILABLE)


# ---------------------------------------------------------------------------------------------
# Agents ringing
# ---------------------------------------------------------------------------------------------


async def test_given_first_agent_never_answers_when_ring_times_out_then_second_agent_answers(
    lab: Lab,
) -> None:
    first, second = lab.phones[0], lab.phones[1]
    silent = await lab.silent_phone(first)
    answering = await lab.phone(second, ring_ms=1000)
    await lab.login(first, second)  # the first logged in is the longest idle: rung first

    caller = await lab.call(hold_ms=14_000)
    call_id = await lab.call_id(caller)
    await lab.app.wait_agent(second.agent_id, AgentState.BUSY, timeout_s=15)
    assert silent.count("CANCELLED while ringing") == 1, "the first agent's leg rang out (4 s)"
    assert await lab.app.agent_state(first.agent_id) is AgentState.AVAILABLE  # misses never pause here

    assert await caller.finished() == "LOCAL_BYE"
    call = await lab.app.decided(call_id)
    assert (call["outcome"], call["agent_id"], call["position"]) == ("answered", second.agent_id, 1)
    assert 4 <= call["wait_s"] < 9
    no_answer = details(call, "agent_no_answer")
    assert [(d["agent_id"], d["reason"]) for d in no_answer] == [(first.agent_id, "no_answer")]
    assert (await lab.one_call_ended(call_id)).agent_id == second.agent_id
    await eventually(lambda: answering.count("REMOTE_BYE") == 1, what="the second agent's leg hung up")


async def test_given_first_agent_busy_when_rung_then_second_agent_answers(lab: Lab) -> None:
    first, second = lab.phones[0], lab.phones[1]
    busy = await lab.busy_phone(first)
    await lab.phone(second, ring_ms=1000)
    await lab.login(first, second)

    caller = await lab.call(hold_ms=8000)
    call_id = await lab.call_id(caller)
    await lab.app.wait_agent(second.agent_id, AgentState.BUSY, timeout_s=10)
    assert busy.count("answering 486") == 1

    assert await caller.finished() == "LOCAL_BYE"
    call = await lab.app.decided(call_id)
    assert (call["outcome"], call["agent_id"], call["position"]) == ("answered", second.agent_id, 1)
    assert call["wait_s"] < 4, "a busy phone is not waited on for the ring timeout"
    no_answer = details(call, "agent_no_answer")
    assert [(d["agent_id"], d["reason"]) for d in no_answer] == [(first.agent_id, "busy")]
    assert (await lab.one_call_ended(call_id)).agent_id == second.agent_id
    assert await lab.app.agent_state(first.agent_id) is AgentState.AVAILABLE


# ---------------------------------------------------------------------------------------------
# Before the queue
# ---------------------------------------------------------------------------------------------


async def test_given_unknown_queue_in_stasis_args_when_caller_arrives_then_failed_and_dialplan_goes_on(
    lab: Lab, observer: AriObserver
) -> None:
    caller = await lab.call(hold_ms=30_000, exten=UNKNOWN_QUEUE_EXTEN)
    call_id = await lab.call_id(caller)

    assert await caller.finished() == "REMOTE_BYE", "the dialplan after Stasis() hangs up"
    call = await lab.app.decided(call_id)
    assert (call["outcome"], call["queued_at"], call["position"]) == ("failed", None, None)
    assert call["queue"] != QUEUE
    [failed] = details(call, "failed")
    assert "unknown_queue" in failed["reason"]
    assert (await lab.one_call_ended(call_id)).outcome == "failed"
    # Asterisk went on in the dialplan after Stasis() returned (the app's `continue`), and the app
    # did not hang the caller up itself.
    events = observer.of_channel(call_id)
    ran = [e["dialplan_app"] for e in events if e["type"] == "ChannelDialplan"]
    assert "Stasis" in ran and "Stasis" not in ran[ran.index("Stasis") + 1 :], events
    assert "hung_up_by_us" not in kinds(call)
