"""A keep-my-place callback released exactly in line order among live callers, end to end against the
simulated Asterisk 20 (issues #6 and #7): never ahead of a caller who queued before it, never behind one
who queued after it, even though the live callers are served the instant an agent frees up."""

from __future__ import annotations

from datetime import timedelta

import pytest

from callcenter.callbacks.attempts import leg_of
from callcenter.model.callbacks import Actor
from callcenter.model.vocabulary import ActorKind, AgentState, CallbackState
from callcenter.simulator import SimulatedAsterisk
from callcenter.simulator.pbx import EndpointConfig
from tests.system.conftest import QUEUE, Apps, RunningApp, eventually
from tests.system.test_callback_dispatch import _agent, _auto_confirm, _originates, _start, _state

pytestmark = [pytest.mark.system, pytest.mark.timeout(90)]

S = CallbackState


async def _waiting(running: RunningApp, *channel_ids: str) -> None:
    async def queued() -> bool:
        live = await running.services.queue.live(QUEUE)
        return set(channel_ids) <= {w.call_id for w in live.view.waiting}

    await eventually(queued, timeout_s=10.0, what=f"{channel_ids} waiting in line")


async def _answered_by(running: RunningApp, call_id: str, agent_id: str) -> None:
    async def answered() -> bool:
        track = running.services.queue._board.call(call_id)  # noqa: SLF001 - the live board
        return track is not None and track.answered_at is not None and track.agent_id == agent_id

    await eventually(answered, timeout_s=15.0, what=f"{call_id} answered by {agent_id}")


async def test_a_kept_place_is_dialled_exactly_in_line_order_among_live_callers(
    apps: Apps, sim: SimulatedAsterisk
) -> None:
    running = await _start(apps, sim)
    sim.set_dial_policy(lambda e: EndpointConfig(answer_after_s=0.2) if e.endswith("@trunk") else None)
    _auto_confirm(sim, talk_s=0.5)
    alice = await _agent(running, sim, "alice")
    callbacks = running.services.callbacks
    assert callbacks is not None

    on_call = sim.incoming_call("+14155550001", app_args=[QUEUE])
    await _answered_by(running, on_call, "alice")
    before = sim.incoming_call("+14155550002", app_args=[QUEUE])  # queued before the kept place
    await _waiting(running, before)
    now = running.services.clock.now()
    kept = await callbacks.keep_place(
        QUEUE,
        "+14152000001",
        enqueued_at=now,
        by=now + timedelta(minutes=30),
        actor=Actor(ActorKind.CUSTOMER, "ivr"),
        call_id="kept-caller",
    )
    after = sim.incoming_call("+14155550003", app_args=[QUEUE])  # queued after it
    await _waiting(running, before, after)

    sim.hangup(on_call)  # alice wraps up, then: the caller who queued first, not the kept place
    await _answered_by(running, before, "alice")
    assert (await running.services.callbacks.get(kept.callback.id)).callback.state is S.REQUESTED  # type: ignore[union-attr]

    sim.hangup(before)  # now the kept place is at the head: alice is kept for it, not given to `after`
    done = await _state(running, kept.callback.id, S.COMPLETED, timeout_s=30.0)
    assert done.first_dial_at is not None
    await _answered_by(running, after, "alice")

    legs = [q["channelId"] for q in _originates(sim, alice)]
    kinds = ["callback" if leg_of(channel) else "queue" for channel in legs]
    assert kinds == ["queue", "queue", "callback", "queue"], legs
    after_track = running.services.queue._board.call(after)  # noqa: SLF001
    assert after_track is not None and after_track.answered_at is not None
    assert after_track.answered_at > done.first_dial_at, "the later caller waited for the kept place"
    await running.wait_agent("alice", AgentState.BUSY)
