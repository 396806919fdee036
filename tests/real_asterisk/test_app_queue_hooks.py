"""``app_queue`` sites against a real Asterisk: real SIP calls into ``Queue()`` with our outcome hook.

The caller (SIPp) dials an extension of :data:`~tests.real_asterisk.conftest.APP_QUEUE_EXTENS`, which
enters ``Gosub(callcenter-appqueue,...)`` of the repository's ``dialplan/extensions_callcenter.conf``:
Asterisk's ``app_queue`` rings the agent's phone (SIPp), and when the caller's channel hangs up its
hang-up handler runs our outcome hook: the FastAGI ``call-outcome`` script of the app under test, or
(``classic``) the ``callcenter-outcome`` AGI program posting to the app's API. Each test checks what
Asterisk itself reported (``QUEUESTATUS`` and ``ABANDONED`` as ``ChannelVarset`` events seen over ARI)
against the outcome the app stored, i.e. the ``QUEUESTATUS`` table of
``callcenter/queue/agi_outcomes.py``, and what the caller and the agent's phone saw.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Final

import pytest

from tests.real_asterisk.conftest import (
    AGI_TOKEN_FILE,
    APP_QUEUE_EXTENS,
    LEAVE_QUEUE_DEVICE,
    SIP_CALLER_PORT,
    SKIP_REASON,
    AriObserver,
    Caller,
    Lab,
)
from tests.system.conftest import eventually

pytestmark = [
    pytest.mark.real_asterisk,
    pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or ""),
    pytest.mark.timeout(60),
]

FASTAGI: Final = "fastagi"
CLASSIC: Final = pytest.param(
    "classic",
    marks=pytest.mark.skipif(
        not AGI_TOKEN_FILE,
        reason="CALLCENTER_TEST_AGI_TOKEN_FILE is not set (the token file of the Asterisk's "
        "callcenter-outcome AGI program)",
    ),
)
BOTH_HOOKS: Final = [FASTAGI, CLASSIC]


def kinds(call: dict[str, Any]) -> list[str]:
    return [event["kind"] for event in call["events"]]


def details(call: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [event["detail"] for event in call["events"] if event["kind"] == kind]


def queuestatus(observer: AriObserver, channel_id: str) -> list[str]:
    """What ``app_queue`` set ``QUEUESTATUS`` to on the channel (our dialplan clears it first: skipped)."""
    return [value for value in observer.variable(channel_id, "QUEUESTATUS") if value]


def ended(call: dict[str, Any]) -> dict[str, Any]:
    """The ``ended`` timeline entry: the outcome and what ``app_queue`` said."""
    [summary] = details(call, "ended")
    return summary


async def recorded(lab: Lab, observer: AriObserver, caller: Caller, hook: str) -> dict[str, Any]:
    """The caller's call as stored once the hook reported it, after checking the hook that ran."""
    call_id = await lab.call_id(caller)
    call = await lab.app.decided(call_id)
    assert call["entry_point"] == "agi" and call["id"] == call_id
    agi_runs = [data for app, data in observer.apps_run(call_id) if app == "AGI"]
    if hook == "classic":
        assert any(data.startswith("callcenter-outcome,") for data in agi_runs), agi_runs
    else:
        assert any(data.endswith("/call-outcome") for data in agi_runs), agi_runs
    # The hook tells the channel what it recorded (for CDRs and the dialplan log).
    await eventually(
        lambda: observer.variable(call_id, "CC_OUTCOME") == [call["outcome"]],
        what=f"CC_OUTCOME={call['outcome']} set on {call_id}",
    )
    assert [e.outcome for e in await lab.app.published(call_id)] == [call["outcome"]]
    return call


# ---------------------------------------------------------------------------------------------
# Answered
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("hook", BOTH_HOOKS)
async def test_given_agent_answers_in_queue_when_caller_hangs_up_then_answered_by_member(
    lab: Lab, observer: AriObserver, hook: str
) -> None:
    await lab.use_hook(hook)
    first = lab.phones[0]
    phone = await lab.phone(first, ring_ms=1000)

    caller = await lab.call(hold_ms=6000, exten=APP_QUEUE_EXTENS["cc-lab"])

    assert await caller.finished() == "LOCAL_BYE"
    call = await recorded(lab, observer, caller, hook)
    assert (call["outcome"], call["missed"], call["agent_id"]) == ("answered", False, first.agent_id)
    assert (call["queue"], call["caller"], call["position"]) == ("cc-lab", caller.stored_number, 1)
    assert 1 <= call["wait_s"] <= 3, "QEHOLDTIME: whole seconds of ringing before the answer"
    assert 2 < call["talk_s"] < 7
    assert {"arrived", "queued", "answered", "ended"} <= set(kinds(call))
    summary = ended(call)
    assert (summary["queuestatus"], summary["abandoned"]) == (None, False)
    assert queuestatus(observer, call["id"]) == [], "Queue() did not return: no QUEUESTATUS"
    # app_queue names the member by interface; the app names our agent with that endpoint.
    assert observer.variable(call["id"], "MEMBERINTERFACE") == [first.endpoint]
    assert phone.count("ANSWERED") == 1
    await eventually(lambda: phone.count("REMOTE_BYE") == 1, what="the agent's phone hung up by Asterisk")


async def test_given_queue_option_c_when_agent_hangs_up_first_then_continue_and_answered(
    lab: Lab, observer: AriObserver
) -> None:
    first = lab.phones[0]
    phone = await lab.phone(first, ring_ms=1000, talk_ms=3000)

    caller = await lab.call(hold_ms=30_000, exten=APP_QUEUE_EXTENS["continue"])

    # Queue() returns CONTINUE; the site's dialplan apologises and hangs up.
    assert await caller.finished() == "REMOTE_BYE"
    assert phone.count("AGENT_BYE") == 1
    call = await recorded(lab, observer, caller, FASTAGI)
    assert (call["outcome"], call["agent_id"], call["missed"]) == ("answered", first.agent_id, False)
    assert "agent_hung_up" in kinds(call)
    assert ended(call)["queuestatus"] == "CONTINUE"
    assert queuestatus(observer, call["id"]) == ["CONTINUE"]


# ---------------------------------------------------------------------------------------------
# Abandoned
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("hook", BOTH_HOOKS)
async def test_given_agent_ringing_when_caller_hangs_up_then_abandoned(
    lab: Lab, observer: AriObserver, hook: str
) -> None:
    await lab.use_hook(hook)
    phone = await lab.silent_phone(lab.phones[0])

    caller = await lab.call(hold_ms=7000, exten=APP_QUEUE_EXTENS["cc-lab"])

    assert await caller.finished() == "LOCAL_BYE"
    call = await recorded(lab, observer, caller, hook)
    assert (call["outcome"], call["agent_id"], call["answered_at"]) == ("abandoned", None, None)
    assert (call["position"], call["missed"]) == (1, True)
    assert 5 <= call["wait_s"] < 9
    summary = ended(call)
    assert (summary["queuestatus"], summary["abandoned"]) == (None, True)
    assert observer.variable(call["id"], "ABANDONED")[-1:] == ["TRUE"]
    assert queuestatus(observer, call["id"]) == []
    # app_queue rang the member (4 s, then again after 1 s) and cancelled the ringing at the hang-up.
    await eventually(lambda: phone.count("CANCELLED while ringing") >= 1, what="the agent's INVITE cancelled")
    assert phone.count("ANSWERED") == 0


async def test_given_caller_queued_when_hangs_up_under_threshold_then_short_abandon(
    lab: Lab, observer: AriObserver
) -> None:
    await lab.silent_phone(lab.phones[0])

    caller = await lab.call(hold_ms=2000, exten=APP_QUEUE_EXTENS["cc-lab"])

    assert await caller.finished() == "LOCAL_BYE"
    call = await recorded(lab, observer, caller, FASTAGI)
    assert (call["outcome"], call["position"], call["missed"]) == ("short_abandon", 1, True)
    assert 0 <= call["wait_s"] < 5
    assert ended(call)["abandoned"] is True


async def test_given_caller_keys_out_of_queue_when_hangs_up_later_then_abandoned_with_exit_key(
    lab: Lab, observer: AriObserver
) -> None:
    phone = await lab.silent_phone(lab.phones[0])

    caller = await lab.call(hold_ms=7000, key_after_ms=2000, exten=APP_QUEUE_EXTENS["cc-lab"])

    assert await caller.finished() == "LOCAL_BYE"
    assert caller.sipp.count("KEY_SENT 1") == 1
    call = await recorded(lab, observer, caller, FASTAGI)
    assert (call["outcome"], call["agent_id"], call["missed"]) == ("abandoned", None, True)
    assert call["wait_s"] >= 8 and call["position"] == 1
    summary = ended(call)
    assert (summary["exit_key"], summary["queuestatus"]) == ("1", None)
    assert queuestatus(observer, call["id"]) == [], "leaving by a key sets no QUEUESTATUS"
    # The key took the caller to the exit context (QUEUEPOSITION set), which ran the callback offer.
    assert observer.variable(call["id"], "CC_EXIT_POSITION") == ["1"]
    runs = observer.apps_run(call["id"])
    assert any(app == "AGI" and data.endswith("/callback-offer") for app, data in runs), runs
    if observer.variable(call["id"], "CC_CALLBACK") == []:
        # No callback taken: back into the queue at the same place, ringing the agent again.
        assert [app for app, _ in runs].count("Queue") == 2, runs
        await eventually(lambda: phone.count("INVITE received") >= 2, what="the agent rung again")


# ---------------------------------------------------------------------------------------------
# Unanswered: Queue() returned with a QUEUESTATUS
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("hook", BOTH_HOOKS)
async def test_given_max_wait_passes_when_agent_never_answers_then_timeout(
    lab: Lab, observer: AriObserver, hook: str
) -> None:
    await lab.use_hook(hook)
    phone = await lab.silent_phone(lab.phones[0])

    caller = await lab.call(hold_ms=30_000, exten=APP_QUEUE_EXTENS["timeout"])

    assert await caller.finished() == "REMOTE_BYE", "the site's dialplan apologises and hangs up"
    call = await recorded(lab, observer, caller, hook)
    assert (call["outcome"], call["position"], call["missed"]) == ("unanswered_timeout", 1, True)
    assert 5 <= call["wait_s"] < 9 and call["agent_id"] is None
    assert ended(call)["queuestatus"] == "TIMEOUT"
    assert queuestatus(observer, call["id"]) == ["TIMEOUT"]
    # app_queue marks a timed-out caller ABANDONED too: the outcome follows QUEUESTATUS, not that.
    assert observer.variable(call["id"], "ABANDONED")[-1:] == ["TRUE"] and ended(call)["abandoned"] is True
    assert ("Playback", "im-sorry&please-try-call-later") in observer.apps_run(call["id"])
    await eventually(lambda: phone.count("CANCELLED while ringing") >= 1, what="the agent's INVITE cancelled")


@pytest.fixture
async def agent_state(lab: Lab) -> AsyncIterator[Callable[[str], Awaitable[None]]]:
    """Sets the device state of ``cc-lab-leave``'s member; deleted at the end."""

    async def set_state(state: str) -> None:
        await lab.ari.set_device_state(LEAVE_QUEUE_DEVICE, state)

    try:
        yield set_state
    finally:
        await lab.ari.set_device_state(LEAVE_QUEUE_DEVICE, None)


@pytest.mark.parametrize("hook", BOTH_HOOKS)
async def test_given_queue_without_members_when_caller_arrives_then_joinempty_and_no_agents(
    lab: Lab, observer: AriObserver, hook: str
) -> None:
    await lab.use_hook(hook)

    caller = await lab.call(hold_ms=30_000, exten=APP_QUEUE_EXTENS["empty"])

    assert await caller.finished() == "REMOTE_BYE"
    call = await recorded(lab, observer, caller, hook)
    assert (call["outcome"], call["queue"], call["missed"]) == ("unanswered_no_agents", "cc-lab-empty", True)
    assert (call["queued_at"], call["position"]) == (None, None), "refused at the door: never queued"
    assert ended(call)["queuestatus"] == "JOINEMPTY"
    assert queuestatus(observer, call["id"]) == ["JOINEMPTY"]


async def test_given_only_member_unavailable_when_caller_arrives_then_joinempty_not_joinunavail(
    lab: Lab, observer: AriObserver, agent_state: Callable[[str], Awaitable[None]]
) -> None:
    await agent_state("UNAVAILABLE")

    caller = await lab.call(hold_ms=30_000, exten=APP_QUEUE_EXTENS["leave"])

    assert await caller.finished() == "REMOTE_BYE"
    call = await recorded(lab, observer, caller, FASTAGI)
    assert (call["outcome"], call["queued_at"]) == ("unanswered_no_agents", None)
    # joinempty=unavailable refuses; Asterisk 20 reports it as JOINEMPTY (JOINUNAVAIL is never set).
    assert queuestatus(observer, call["id"]) == ["JOINEMPTY"]


async def test_given_caller_waiting_when_only_member_becomes_unavailable_then_leaveempty_and_no_agents(
    lab: Lab, observer: AriObserver, agent_state: Callable[[str], Awaitable[None]]
) -> None:
    await agent_state("NOT_INUSE")
    phone = await lab.silent_phone(lab.phones[0])

    caller = await lab.call(hold_ms=30_000, exten=APP_QUEUE_EXTENS["leave"])
    await eventually(lambda: phone.count("INVITE received") >= 1, what="the agent rung")
    await agent_state("UNAVAILABLE")

    # After the ring (3 s) app_queue finds nobody left (leavewhenempty=unavailable,...) and returns.
    assert await caller.finished() == "REMOTE_BYE"
    call = await recorded(lab, observer, caller, FASTAGI)
    assert (call["outcome"], call["position"], call["missed"]) == ("unanswered_no_agents", 1, True)
    assert call["queued_at"] is not None and call["agent_id"] is None
    assert ended(call)["queuestatus"] == "LEAVEEMPTY"
    assert queuestatus(observer, call["id"]) == ["LEAVEEMPTY"]


async def test_given_queue_full_when_second_caller_arrives_then_full_and_first_still_waits(
    lab: Lab, observer: AriObserver
) -> None:
    await lab.silent_phone(lab.phones[0])
    waiting = await lab.call(hold_ms=12_000, exten=APP_QUEUE_EXTENS["full"])

    def first_in_queue() -> bool:
        channel = observer.channel_of_caller(waiting.number)
        return channel is not None and any(app == "Queue" for app, _ in observer.apps_run(channel))

    await eventually(first_in_queue, what="the first caller waiting in cc-lab-full")
    refused = await lab.call(hold_ms=30_000, exten=APP_QUEUE_EXTENS["full"], port=SIP_CALLER_PORT + 1)

    assert await refused.finished() == "REMOTE_BYE"
    call = await recorded(lab, observer, refused, FASTAGI)
    assert (call["outcome"], call["queued_at"], call["position"]) == ("unanswered_full", None, None)
    assert ended(call)["queuestatus"] == "FULL"
    assert queuestatus(observer, call["id"]) == ["FULL"]
    # The caller already waiting is not disturbed: they abandon later, from position 1.
    assert waiting.sipp.process.returncode is None
    assert await waiting.finished() == "LOCAL_BYE"
    first = await recorded(lab, observer, waiting, FASTAGI)
    assert (first["outcome"], first["position"]) == ("abandoned", 1)


# ---------------------------------------------------------------------------------------------
# Before the queue
# ---------------------------------------------------------------------------------------------


async def test_given_queue_app_queue_does_not_know_when_caller_arrives_then_apology_and_failed(
    lab: Lab, observer: AriObserver
) -> None:
    caller = await lab.call(hold_ms=30_000, exten=APP_QUEUE_EXTENS["unknown"])

    assert await caller.finished() == "REMOTE_BYE"
    call = await recorded(lab, observer, caller, FASTAGI)
    assert (call["outcome"], call["queued_at"]) == ("failed", None)
    [failed] = details(call, "failed")
    assert failed["reason"] == "unknown_queue"
    runs = observer.apps_run(call["id"])
    assert ("Playback", "im-sorry&please-try-call-later") in runs
    assert "Queue" not in [app for app, _ in runs]
