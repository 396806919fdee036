"""Statistics of the whole app against the simulated Asterisk: the live board follows the calls through
the event stream, the interval rows are materialised, and a rebuild from the stored calls equals them."""

from __future__ import annotations

from typing import Any

import pytest

from callcenter.model.vocabulary import Role
from callcenter.simulator import SimulatedAsterisk
from tests.system.conftest import QUEUE, RunningApp, eventually

pytestmark = [pytest.mark.system, pytest.mark.timeout(40)]


async def live(app: RunningApp) -> dict[str, Any]:
    status, body = await app.get("/stats/live")
    assert status == 200, body
    return dict(body)


async def test_live_board_and_history_follow_a_call_and_a_rebuild_agrees(
    sim: SimulatedAsterisk, system: RunningApp
) -> None:
    # Alice's phone rings 1 s before she answers (her ring timeout is 2 s): the caller waits meanwhile.
    sim.set_endpoint(await system.add_agent("alice"), answer_after_s=1.0)

    async def figure(name: str, value: object, scope: str = QUEUE) -> bool:
        return (await live(system))["queues"][scope][name] == value

    caller = sim.incoming_call("+14155550123", app_args=[QUEUE])
    await eventually(lambda: figure("calls_waiting", 1), what="one caller waiting on the live board")
    await eventually(lambda: figure("calls_waiting", 0), what="the answered caller off the board")
    await eventually(lambda: figure("agents_busy", 1), what="alice busy on the board")
    sim.hangup(caller)
    await eventually(lambda: figure("calls_answered", 1), what="the answered call counted")

    async def materialised() -> list[dict[str, Any]]:
        status, body = await system.get("/stats/intervals")
        assert status == 200, body
        return list(body["items"])

    await eventually(
        lambda: _offered(materialised()), what="the interval row materialised by the consumer group"
    )
    rows_before = await materialised()
    _, admin = await system.services.auth.create_token(
        role=Role.ADMIN, agent_id=None, label="admin", expires_at=None, actor="test"
    )
    response = await system.http.post("/api/v1/stats/rebuild", headers={"Authorization": f"Bearer {admin}"})
    assert response.status == 200, await response.text()
    assert (await response.json())["calls"] == 1
    assert await materialised() == rows_before
    board = await live(system)
    assert board["queues"][QUEUE]["calls_offered"] == rows_before[0]["calls_offered"] == 1


async def _offered(rows: Any) -> bool:
    items = await rows
    return bool(items) and items[0]["calls_offered"] == 1
