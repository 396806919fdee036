"""Agents on a callback, end to end against the simulated Asterisk 20 (issue #7): an agent who pauses
during a callback is still paused when it ends, never put back in the line as "available"."""

from __future__ import annotations

from typing import Any

import pytest

from callcenter.callbacks.attempts import customer_channel_id
from callcenter.model.vocabulary import AgentState, CallbackState
from callcenter.simulator import SimulatedAsterisk
from tests.system.conftest import QUEUE, Apps, RunningApp
from tests.system.test_callback_dispatch import (
    CUSTOMER_ENDPOINT,
    _agent,
    _follow_up,
    _press_when_answered,
    _start,
    _state,
)

pytestmark = [pytest.mark.system, pytest.mark.timeout(60)]
S = CallbackState


async def _post(running: RunningApp, path: str, body: dict[str, Any]) -> tuple[int, Any]:
    response = await running.http.post(
        f"/api/v1{path}", json=body, headers={"Authorization": f"Bearer {running.token}"}
    )
    return response.status, await response.json()


async def test_an_agent_who_pauses_during_a_callback_is_still_paused_after_it(
    apps: Apps, sim: SimulatedAsterisk
) -> None:
    running = await _start(apps, sim)
    await _agent(running, sim, "alice")
    sim.set_endpoint(CUSTOMER_ENDPOINT, answer_after_s=0.2)
    callback = (await _follow_up(running)).callback
    customer = customer_channel_id(f"{callback.id}.a1")
    await _press_when_answered(sim, customer)
    await _state(running, callback.id, S.CONNECTED)

    status, body = await _post(running, "/agents/alice/pause", {"reason": "coffee"})
    assert status == 200 and body["state"] == "paused", body
    waiting = sim.incoming_call("+14155550177", app_args=[QUEUE])  # would take her, were she available
    sim.hangup(customer)
    await _state(running, callback.id, S.COMPLETED)
    assert await running.agent_state("alice") is AgentState.PAUSED
    assert running.services.queue._board.call(waiting).ringing_agent is None  # noqa: SLF001

    status, _ = await _post(running, "/agents/alice/unpause", {})
    assert status == 200
    await running.wait_agent("alice", AgentState.RINGING)
