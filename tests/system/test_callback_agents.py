"""Agents on a callback, end to end against the simulated Asterisk 20 (issue #7): an agent who pauses
during a callback is still paused when it ends, never put back in the line as "available"; after a
callback they talked on they wrap up, as after a queue call; a pause sent to another process than the
one running the queue and the dispatcher takes effect there."""

from __future__ import annotations

from typing import Any

import pytest

from callcenter.ari.link import LinkStatus
from callcenter.callbacks.attempts import customer_channel_id
from callcenter.model.events import AgentStateChanged
from callcenter.model.records import QueueRecord
from callcenter.model.vocabulary import AgentState, CallbackState
from callcenter.simulator import SimulatedAsterisk
from tests.system.conftest import QUEUE, Apps, RunningApp, eventually
from tests.system.test_callback_dispatch import (
    CUSTOMER_ENDPOINT,
    FAST,
    _agent,
    _events,
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
    await running.wait_agent("alice", AgentState.PAUSED)  # after the wrap-up of the queue
    assert running.services.queue._board.call(waiting).ringing_agent is None  # noqa: SLF001

    status, _ = await _post(running, "/agents/alice/unpause", {})
    assert status == 200
    await running.wait_agent("alice", AgentState.RINGING)


async def test_after_a_callback_the_agent_wraps_up_before_the_next_call_is_offered(
    apps: Apps, sim: SimulatedAsterisk
) -> None:
    running = await _start(apps, sim)
    await running.put_queue(QueueRecord(name=QUEUE, ring_timeout_s=2, wrap_up_s=2))
    await _agent(running, sim, "alice")
    sim.set_endpoint(CUSTOMER_ENDPOINT, answer_after_s=0.2)
    callback = (await _follow_up(running)).callback
    customer = customer_channel_id(f"{callback.id}.a1")
    await _press_when_answered(sim, customer)
    await _state(running, callback.id, S.CONNECTED)

    sim.hangup(customer)
    await running.wait_agent("alice", AgentState.WRAP_UP)
    caller = sim.incoming_call("+14155550177", app_args=[QUEUE])  # waits for the end of the wrap-up
    await running.wait_agent("alice", AgentState.RINGING)
    assert running.services.queue._board.call(caller).ringing_agent == "alice"  # noqa: SLF001

    moves: list[tuple[AgentState, AgentState]] = []

    async def published() -> bool:
        moves[:] = [
            (e.previous, e.state)
            for e in await _events(running, AgentStateChanged)
            if e.agent_id == "alice" and e.previous is not AgentState.LOGGED_OUT
        ]
        return len(moves) >= 4

    await eventually(published, what="alice's moves on the bus")
    assert moves[:4] == [
        (AgentState.AVAILABLE, AgentState.PAUSED),  # held for the callback
        (AgentState.PAUSED, AgentState.WRAP_UP),  # the callback ended
        (AgentState.WRAP_UP, AgentState.AVAILABLE),  # the queue's wrap-up time passed
        (AgentState.AVAILABLE, AgentState.RINGING),  # only then offered the waiting caller
    ], moves


async def _second_process(apps: Apps, first: RunningApp) -> RunningApp:
    """Another API process on the same store and Redis: its ARI link stands by (the first runs the queue)."""
    second = await apps.start(
        "app2", wait_up=False, database_url=first.services.settings.database.url, **FAST
    )
    await eventually(lambda: second.link.status is LinkStatus.STANDBY, what="the second link standing by")
    return second


async def test_a_pause_sent_to_another_process_takes_effect_at_once_where_the_queue_runs(
    apps: Apps, sim: SimulatedAsterisk
) -> None:
    first = await _start(apps, sim)
    await _agent(first, sim, "alice")
    second = await _second_process(apps, first)

    status, body = await _post(second, "/agents/alice/pause", {"reason": "lunch"})
    assert status == 200 and body["state"] == "paused", body
    board = first.services.queue._board  # noqa: SLF001
    live = board.agent("alice")
    assert live is not None and live.state is AgentState.PAUSED, (
        "applied by the queue's process before the answer"
    )
    caller = sim.incoming_call("+14155550177", app_args=[QUEUE])
    await first.calls()  # the arrival is handled
    assert board.call(caller) is None or board.call(caller).ringing_agent is None

    status, body = await _post(second, "/agents/alice/unpause", {})
    # Back, and offered the waiting caller at once by the queue's process, before the answer.
    assert status == 200 and body["state"] == "ringing", body
    assert board.call(caller).ringing_agent == "alice"

    status, body = await _post(second, "/agents/nobody/pause", {})
    assert status == 404, "the queue's process refused it: the same error here"


async def test_a_pause_sent_to_another_process_during_a_callback_is_kept_for_after_it(
    apps: Apps, sim: SimulatedAsterisk
) -> None:
    first = await _start(apps, sim)
    await _agent(first, sim, "alice")
    second = await _second_process(apps, first)
    sim.set_endpoint(CUSTOMER_ENDPOINT, answer_after_s=0.2)
    callback = (await _follow_up(first)).callback
    customer = customer_channel_id(f"{callback.id}.a1")
    await _press_when_answered(sim, customer)
    await _state(first, callback.id, S.CONNECTED)

    status, body = await _post(second, "/agents/alice/pause", {"reason": "coffee"})
    assert status == 200 and body["state"] == "paused", body
    waiting = sim.incoming_call("+14155550177", app_args=[QUEUE])  # would take her, were she available
    sim.hangup(customer)
    await _state(first, callback.id, S.COMPLETED)
    await first.wait_agent("alice", AgentState.WRAP_UP)
    await first.wait_agent("alice", AgentState.PAUSED)  # the wrap-up ended: her pause, not "available"
    assert first.services.queue._board.call(waiting).ringing_agent is None  # noqa: SLF001

    status, _ = await _post(second, "/agents/alice/unpause", {})
    assert status == 200
    await first.wait_agent("alice", AgentState.RINGING)
