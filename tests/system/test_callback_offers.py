"""The callback offer from our queue over the ARI driver, the whole app against the simulated Asterisk.

A caller waiting behind a busy agent hears their place and wait, presses 1 to keep their place, 1 to
confirm the caller id, hears the promised time and is hung up: the call is ``callback_requested``
and a keep-my-place callback holds their original enqueue time; once the agent is free again the
callback becomes due (``scheduled``) in its place.
"""

from __future__ import annotations

import pytest

from callcenter.model.records import QueueRecord
from callcenter.model.vocabulary import AgentState
from callcenter.simulator import SimulatedAsterisk
from media.prompts import PROMPTS
from tests.system.conftest import CALLER, QUEUE, Apps, eventually
from tests.system.test_call_scenarios import bridge_of, call_in

pytestmark = [pytest.mark.system, pytest.mark.timeout(90)]

PATIENT_QUEUE = QueueRecord(name=QUEUE, ring_timeout_s=5, wrap_up_s=1, max_wait_s=300)


def played(sim: SimulatedAsterisk, channel: str) -> list[str]:
    """Media the app asked to play to ``channel``, with or without a playback id in the path."""
    prefix = f"/ari/channels/{channel}/play"
    plays = [r for r in sim.requests if r.method == "POST" and r.path.startswith(prefix)]
    return [uri for request in plays for uri in request.query.get("media", "").split(",") if uri]


def _heard(sim: SimulatedAsterisk, channel: str, prompt: str) -> bool:
    return f"sound:callcenter/{prompt}" in played(sim, channel)


async def test_given_caller_waiting_behind_a_busy_agent_when_they_keep_their_place_then_callback_requested_and_due_later(
    sim: SimulatedAsterisk, apps: Apps
) -> None:
    for name in PROMPTS:
        sim.set_sound(f"callcenter/{name}", 0.05)
    # Customers may be dialled at any hour here: the release must not hang on the time of day.
    app = await apps.start(
        callback_offer_wait_s="0",
        callback_announce_every_s="120",
        dispatch_dial_from="00:00",
        dispatch_dial_until="23:59",
    )
    await app.put_queue(PATIENT_QUEUE)
    await app.answered_history()
    sim.set_endpoint(await app.add_agent("alice"), answer_after_s=0.2)
    first = call_in(sim, caller="+14155550111")
    await eventually(lambda: (b := bridge_of(sim, first, "mixing")) is not None and len(b.channels) == 2)
    await app.wait_agent("alice", AgentState.BUSY)

    caller = call_in(sim)
    await eventually(lambda: _heard(sim, caller, "offer-keep-place"), timeout_s=30, what="the offer")
    media = played(sim, caller)
    assert media[0] == "sound:callcenter/you-are-next"
    assert media[1] in ("sound:callcenter/wait-between", "sound:callcenter/wait-less-than")
    assert "sound:callcenter/offer-later" not in media  # no schedules: no slot capacity
    sim.press(caller, "1")
    await eventually(
        lambda: _heard(sim, caller, "confirm-or-change"), timeout_s=30, what="the number read back"
    )
    assert "digits:14155550100" in played(sim, caller)
    sim.press(caller, "1")

    call = await app.decided(caller, timeout_s=30)
    assert call["outcome"] == "callback_requested"
    kinds = [e["kind"] for e in call["events"]]
    assert "callback_accepted" in kinds and kinds[-1] == "ended"
    assert _heard(sim, caller, "confirm-by") and _heard(sim, caller, "goodbye")
    assert caller not in sim.channels  # hung up by the app after the goodbye

    status, page = await app.get("/callbacks", queue=QUEUE)
    assert status == 200, page
    [callback] = page["items"]
    assert (callback["kind"], callback["state"], callback["number"]) == ("keep_place", "requested", CALLER)
    assert callback["call_id"] == caller and callback["enqueued_at"] == call["queued_at"]
    assert callback["promise"]["early_ok"] is True

    # The agent frees up: the kept place is at the head of the line, so it becomes due.
    sim.hangup(first)

    async def released() -> bool:
        _, body = await app.get(f"/callbacks/{callback['id']}")
        return bool(body["callback"]["state"] != "requested")

    # The dispatcher may dial it at once (here it cannot reach the customer), so "scheduled" can be
    # brief: the change log shows the release.
    await eventually(released, timeout_s=15, what="the kept place released")
    _, detail = await app.get(f"/callbacks/{callback['id']}")
    [change] = [c for c in detail["changes"] if c["state"] == "scheduled"][:1]
    # Released by the system: the queue keeps the freed agent back and wakes the dispatcher at once,
    # or the callback service's due check gets there first.
    assert change["actor"]["kind"] == "system"
    assert change["actor"]["name"] in ("dispatcher", "keep-place-due")


async def test_given_caller_hearing_a_prompt_when_an_agent_answers_then_the_prompt_is_stopped(
    sim: SimulatedAsterisk, apps: Apps
) -> None:
    for name in PROMPTS:
        sim.set_sound(f"callcenter/{name}", 30.0)  # long prompts: still playing when the agent answers
    app = await apps.start(callback_offer_wait_s="0", callback_announce_every_s="120")
    await app.put_queue(PATIENT_QUEUE)
    await app.answered_history()
    sim.set_endpoint(await app.add_agent("alice"), answer_after_s=0.2)
    first = call_in(sim, caller="+14155550111")
    await app.wait_agent("alice", AgentState.BUSY)
    caller = call_in(sim)
    await eventually(lambda: _heard(sim, caller, "you-are-next"), timeout_s=20, what="the announcement")

    sim.hangup(first)  # alice wraps up (1 s), then is rung for the caller and answers
    await eventually(lambda: (b := bridge_of(sim, caller, "mixing")) is not None and len(b.channels) == 2)

    def stopped() -> bool:
        return any(r.method == "DELETE" and r.path.startswith("/ari/playbacks/pb-") for r in sim.requests)

    await eventually(stopped, what="the announcement stopped")
    sim.hangup(caller)
    assert (await app.decided(caller))["outcome"] == "answered"
    _, page = await app.get("/callbacks", queue=QUEUE)
    assert page["items"] == []
