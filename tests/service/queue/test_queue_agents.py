"""Agents and queue settings through the queue service (what the API and CLI call), and the live view."""

from __future__ import annotations

import pytest

from callcenter.errors import ConflictError, NotFoundError, ValidationError
from callcenter.model.events import AgentQueuesChanged, AgentStateChanged
from callcenter.model.records import AgentRecord, ExitAction, QueueRecord
from callcenter.model.vocabulary import AgentState
from tests.service.queue.conftest import MakeHarness, agent

A = AgentState


async def test_an_added_agent_is_logged_out_until_they_log_in(make_harness: MakeHarness) -> None:
    h = await make_harness()

    added = await h.service.add_agent(
        agent_id="alice", name=" Alice ", endpoint="PJSIP/1001", queues=["sales"], actor="cli"
    )

    assert (added.record.name, added.record.queues, added.state) == ("Alice", ("sales",), A.LOGGED_OUT)
    assert h.store.agents.agents["alice"].endpoint == "PJSIP/1001"
    status = await h.service.login("alice", actor="cli")
    assert status.state is A.AVAILABLE
    membership, event = h.bus.published
    assert isinstance(membership, AgentQueuesChanged) and membership.queues == ("sales",)
    assert isinstance(event, AgentStateChanged)
    assert (event.previous, event.state, event.reason) == (A.LOGGED_OUT, A.AVAILABLE, "logged in by cli")


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"agent_id": "bad id"}, ValidationError, "agent id"),
        ({"name": ""}, ValidationError, "agent name"),
        ({"endpoint": "1001"}, ValidationError, "TECHNOLOGY/resource"),
        ({"queues": ["ghost"]}, ValidationError, "unknown queue"),
        ({"agent_id": "alice"}, ConflictError, "exists"),
    ],
)
async def test_adding_an_agent_refuses_bad_input(
    make_harness: MakeHarness, kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    h = await make_harness(agents=[agent("alice")])
    values: dict[str, object] = {
        "agent_id": "bob",
        "name": "Bob",
        "endpoint": "PJSIP/1002",
        "queues": ["sales"],
    }
    values.update(kwargs)

    with pytest.raises(error, match=message):
        await h.service.add_agent(actor="test", **values)  # type: ignore[arg-type]


async def test_login_logout_pause_unpause_publish_with_the_actor(make_harness: MakeHarness) -> None:
    h = await make_harness(agents=[agent("alice")])

    await h.service.login("alice", actor="token:t1")
    await h.service.pause("alice", actor="token:t1", reason="lunch")
    await h.service.unpause("alice", actor="token:t2")
    await h.service.logout("alice", actor="cli")

    changes = [e for e in h.bus.published if isinstance(e, AgentStateChanged)]
    assert [(e.state, e.reason) for e in changes] == [
        (A.AVAILABLE, "logged in by token:t1"),
        (A.PAUSED, "lunch by token:t1"),
        (A.AVAILABLE, "unpaused by token:t2"),
        (A.LOGGED_OUT, "logged out by cli"),
    ]
    assert h.store.agents.agents["alice"].state is A.LOGGED_OUT


async def test_repeated_requests_change_nothing_and_a_logged_out_agent_cannot_pause(
    make_harness: MakeHarness,
) -> None:
    h = await make_harness(agents=[agent("alice")])
    with pytest.raises(ConflictError, match="logged out"):
        await h.service.pause("alice", actor="test")
    with pytest.raises(ConflictError, match="logged out"):
        await h.service.unpause("alice", actor="test")
    await h.service.logout("alice", actor="test")
    await h.service.login("alice", actor="test")
    await h.service.login("alice", actor="test")
    await h.service.unpause("alice", actor="test")

    assert [e.state for e in h.bus.published if isinstance(e, AgentStateChanged)] == [A.AVAILABLE]


async def test_unknown_agents_are_not_found(make_harness: MakeHarness) -> None:
    h = await make_harness()
    service = h.service
    for request in (service.login, service.logout, service.pause, service.unpause):
        with pytest.raises(NotFoundError):
            await request("ghost", actor="test")
    with pytest.raises(NotFoundError):
        await service.get_agent("ghost")
    with pytest.raises(NotFoundError):
        await service.set_agent_queues("ghost", ["sales"], actor="test")


async def test_a_pause_asked_during_a_call_waits_for_its_end(make_harness: MakeHarness) -> None:
    h = await make_harness(agents=[agent("alice")], logged_in=["alice"])
    await h.arrive()
    await h.agent_answers("alice")

    status = await h.service.pause("alice", actor="test")

    assert status.state is A.BUSY
    assert status.live is not None and status.live.pending is A.PAUSED
    await h.caller_hangs_up()
    await h.later(10)
    assert h.state("alice") is A.PAUSED


async def test_logging_in_with_queues_replaces_membership_and_serves_waiting_callers(
    make_harness: MakeHarness,
) -> None:
    h = await make_harness(
        queues=[QueueRecord(name="sales", join_empty=True), QueueRecord(name="support", join_empty=True)],
        agents=[agent("alice", "sales")],
    )
    await h.arrive("c1", queue="support")

    status = await h.service.login("alice", actor="test", queues=["support"])

    assert status.record.queues == ("support",)
    assert h.rung() == ["PJSIP/alice"]
    [changed] = [e for e in h.bus.published if isinstance(e, AgentQueuesChanged)]
    assert changed.queues == ("support",) and changed.reason == "set by test"


async def test_set_agent_queues_refuses_unknown_queues(make_harness: MakeHarness) -> None:
    h = await make_harness(agents=[agent("alice")])
    with pytest.raises(ValidationError, match="ghost"):
        await h.service.set_agent_queues("alice", ["sales", "ghost"], actor="test")
    assert h.store.agents.agents["alice"].queues == ("sales",)


async def test_a_queue_created_after_start_is_usable_at_once(make_harness: MakeHarness) -> None:
    h = await make_harness(agents=[agent("alice")], logged_in=["alice"])
    await h.store.queues.put(QueueRecord(name="billing"))  # another process (the CLI) created it

    await h.service.set_agent_queues("alice", ["billing"], actor="test")
    await h.arrive(queue="billing")

    assert h.rung() == ["PJSIP/alice"]


async def test_put_queue_stores_checks_and_applies_settings(make_harness: MakeHarness) -> None:
    h = await make_harness(agents=[agent("alice")], logged_in=["alice"])

    stored = await h.service.put_queue(
        QueueRecord(name="sales", max_wait_s=30, after_hours_action=ExitAction.CONTINUE), actor="test"
    )

    assert stored == h.store.queues.queues["sales"]
    await h.service.pause("alice", actor="test")
    await h.arrive()
    await h.later(30)
    assert h.control.of("play") == [("c1", "tt-allbusy")]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"name": "sales,evil"}, "queue name"),
        ({"max_wait_s": 0}, "max_wait_s"),
        ({"ring_timeout_s": 0}, "ring_timeout_s"),
        ({"wrap_up_s": -1}, "wrap_up_s"),
        ({"max_callers": 0}, "max_callers"),
        ({"time_zone": "Moon/Base"}, "time zone"),
        ({"business_hours": {"mon": ("17:00-09:00",)}}, "midnight"),
        ({"business_number": "4155550100"}, "E.164"),
    ],
)
async def test_put_queue_refuses_settings_it_cannot_run(
    make_harness: MakeHarness, changes: dict[str, object], message: str
) -> None:
    h = await make_harness()
    with pytest.raises(ValidationError, match=message):
        await h.service.put_queue(QueueRecord(**{"name": "sales", **changes}), actor="test")  # type: ignore[arg-type]


async def test_the_live_view_shows_waiting_callers_in_order_and_agents_by_state(
    make_harness: MakeHarness,
) -> None:
    h = await make_harness(agents=[agent("alice"), agent("bob"), agent("carol")], logged_in=["alice", "bob"])
    await h.arrive("c1")
    await h.later(5)
    await h.arrive("c2", caller="+14155550111")
    await h.later(3)

    live = await h.service.live("sales")

    assert live.open_now and live.at == h.clock.now()
    assert [(w.call_id, w.position, w.wait_s, w.ringing_agent) for w in live.view.waiting] == [
        ("c1", 1, 8.0, "alice"),
        ("c2", 2, 3.0, "bob"),
    ]
    assert [(a.agent_id, a.state) for a in live.view.agents] == [
        ("alice", A.RINGING),
        ("bob", A.RINGING),
        ("carol", A.LOGGED_OUT),
    ]
    with pytest.raises(NotFoundError):
        await h.service.live("ghost")


async def test_listing_agents_merges_the_live_state(make_harness: MakeHarness) -> None:
    h = await make_harness(agents=[agent("alice"), agent("bob")], logged_in=["alice"])
    await h.arrive()

    page = await h.service.list_agents(cursor=None, limit=10)

    assert [(s.record.id, s.state) for s in page.items] == [("alice", A.RINGING), ("bob", A.LOGGED_OUT)]


async def test_an_agent_added_by_another_process_can_log_in(make_harness: MakeHarness) -> None:
    h = await make_harness()
    await h.store.agents.add(AgentRecord(id="dave", name="Dave", endpoint="PJSIP/dave", queues=("sales",)))

    status = await h.service.login("dave", actor="test")

    assert status.state is A.AVAILABLE


async def test_changes_made_by_another_process_are_adopted_at_the_next_refresh(
    make_harness: MakeHarness,
) -> None:
    h = await make_harness(agents=[agent("alice")], queues=[QueueRecord(name="sales", join_empty=True)])
    await h.later(1)
    cli = await make_harness(store=h.store, queues=(), agents=())
    await h.arrive()
    h.clock.advance(1)

    await cli.service.login("alice", actor="cli")
    await cli.service.put_queue(QueueRecord(name="sales", join_empty=True, ring_timeout_s=25), actor="cli")
    await h.later(28)
    assert h.rung() == []
    await h.later(1)

    assert h.state("alice") is A.RINGING
    assert h.control.of("ring_agent") == [("PJSIP/alice", "c1", 25.0, "+14155550100")]
    assert [(e.state, e.reason) for e in h.bus.published if isinstance(e, AgentStateChanged)][0] == (
        A.AVAILABLE,
        "logged in by another process",
    )
