"""What a wait estimate reads of the live queue (``QueueService.standing``): the same line and staffing
as the whole board (``live``) shows, in counts."""

from __future__ import annotations

from typing import TYPE_CHECKING

from callcenter.model.records import QueueRecord
from callcenter.model.vocabulary import AgentState
from callcenter.queue.state import STAFFED_STATES
from tests.service.queue.conftest import MakeHarness, agent

if TYPE_CHECKING:
    from tests.conftest import FakeClock

SALES = QueueRecord(name="sales", max_wait_s=3600, join_empty=True)
SUPPORT = QueueRecord(name="support", max_wait_s=3600, join_empty=True)


async def test_the_standing_of_each_caller_matches_the_whole_board(
    make_harness: MakeHarness, clock: FakeClock
) -> None:
    h = await make_harness(
        queues=[SALES, SUPPORT],
        agents=[
            agent("ann", "sales"),
            agent("bob", "sales", "support"),
            agent("cy", "sales"),
            agent("dee", "support"),
        ],
        logged_in=["ann", "bob", "cy", "dee"],
    )
    await h.service.pause("cy", actor="test", reason="lunch")
    await h.service.logout("dee", actor="test")
    for index, (call_id, queue) in enumerate(
        [
            ("s1", "sales"),
            ("u1", "support"),
            ("s2", "sales"),
            ("s3", "sales"),
            ("u2", "support"),
            ("s4", "sales"),
        ]
    ):
        await h.arrive(call_id, queue=queue, caller=f"+1415555020{index}")
        clock.advance(3)
    await h.agent_rings("ann", "s1")
    await h.agent_answers("ann", "s1")  # s1 leaves the line; ann is busy

    for queue in ("sales", "support"):
        live = await h.service.live(queue)
        waiting, agents = live.view.waiting, live.view.agents
        middle = waiting[len(waiting) // 2].enqueued_at
        for caller in waiting:
            standing = await h.service.standing(queue, call_id=caller.call_id, joined_at=middle)
            assert (standing.position, standing.elapsed_s) == (caller.position, caller.wait_s)
            assert standing.waiting == len(waiting) and standing.hol_wait_s == waiting[0].wait_s
            assert standing.staffed == sum(1 for a in agents if a.state in STAFFED_STATES)
            assert standing.free == sum(1 for a in agents if a.state is AgentState.AVAILABLE)
            assert standing.ahead == sum(1 for w in waiting if w.enqueued_at < middle)
        gone = await h.service.standing(queue, call_id="s1")
        assert gone.position is None and gone.elapsed_s == 0.0, "answered: no longer in line"
    other = await h.service.standing("support", call_id="s2")
    assert other.position is None, "waiting, but in another queue"
    sales = await h.service.standing("sales")
    assert (sales.staffed, sales.free) == (2, 0), "ann busy, bob ringing for s2, cy paused"
