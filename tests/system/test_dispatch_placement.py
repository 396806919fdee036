"""The callback dispatcher runs in the process that owns the ARI link, and moves with it (issue #7):
its view of free agents is that process's live queue, the only one Asterisk's events drive."""

from __future__ import annotations

import asyncio

import pytest

from callcenter.ari.link import LinkStatus
from callcenter.model.records import QueueRecord
from callcenter.model.vocabulary import CallbackState
from callcenter.simulator import SimulatedAsterisk
from callcenter.wiring.dispatch import DISPATCH_ROLE
from tests.system.conftest import QUEUE, Apps, eventually
from tests.system.test_callback_dispatch import CUSTOMER_ENDPOINT, FAST, _auto_confirm, _dispatch, _state

pytestmark = [pytest.mark.system, pytest.mark.timeout(90)]


async def test_the_dispatcher_leads_only_where_the_ari_link_is_up_and_follows_it(
    apps: Apps, sim: SimulatedAsterisk
) -> None:
    first = await apps.start("app1", **FAST)
    second = await apps.start(
        "app2", wait_up=False, database_url=first.services.settings.database.url, **FAST
    )
    await eventually(lambda: second.link.status is LinkStatus.STANDBY, what="the second ARI link standing by")
    first_dispatch, second_dispatch = _dispatch(first), _dispatch(second)
    assert first_dispatch.link is not None and second_dispatch.link is not None
    await first_dispatch.link.wait_up(10.0)

    # Free the dispatcher lease: only the process with the ARI link may take it back.
    await first.services.redis.delete(first.keys.lease(DISPATCH_ROLE))
    for _ in range(10):  # several standby retries of both processes
        await asyncio.sleep(0.5)
        assert second_dispatch.link.status is not LinkStatus.UP, "the standby process must not dispatch"
    await first_dispatch.link.wait_up(15.0)

    await first.stop()  # the ARI link moves to the second process, and the dispatcher with it
    await second.link.wait_up(15.0)
    await second_dispatch.link.wait_up(15.0)

    await second.put_queue(QueueRecord(name=QUEUE, ring_timeout_s=2, wrap_up_s=1))
    sim.set_sound("callback-confirm", 0.3)
    sim.set_endpoint(CUSTOMER_ENDPOINT, answer_after_s=0.2)
    _auto_confirm(sim)
    await second.add_agent("alice")
    sim.set_endpoint("PJSIP/alice", answer_after_s=0.2)
    sources = second_dispatch.sources
    request = await sources.follow_up("boss", QUEUE, "+14155550100", at=second.services.clock.now())
    await _state(second, request.callback.id, CallbackState.COMPLETED, timeout_s=30.0)
