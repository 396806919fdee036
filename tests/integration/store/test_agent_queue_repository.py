"""The agent and queue repository contracts on SQLite, PostgreSQL and the in-memory fake (integration)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from callcenter.errors import ConflictError, NotFoundError, ValidationError
from callcenter.model.paging import encode_cursor
from callcenter.model.records import AgentRecord, QueueRecord
from callcenter.model.vocabulary import AgentState
from tests.integration.store.conftest import Stores

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)


async def with_queues(stores: Stores, *names: str) -> None:
    for name in names:
        await stores.queues.put(QueueRecord(name=name, title=name.title()))


async def test_queue_settings_roundtrip_and_put_replaces_them(stores: Stores) -> None:
    sales = QueueRecord(
        name="sales",
        title="Sales",
        max_wait_s=300,
        join_empty=True,
        service_level_s=30,
        short_abandon_s=8,
        max_callers=12,
        business_number="+14155550199",
        time_zone="America/Los_Angeles",
    )
    await stores.queues.put(sales)
    assert await stores.queues.get("sales") == sales
    changed = QueueRecord(name="sales", title="Sales (new)")
    await stores.queues.put(changed)
    assert await stores.queues.get("sales") == changed


async def test_queues_are_listed_by_name(stores: Stores) -> None:
    await with_queues(stores, "support", "billing", "sales")
    assert [q.name for q in await stores.queues.list()] == ["billing", "sales", "support"]


async def test_unknown_queue_is_not_found(stores: Stores) -> None:
    with pytest.raises(NotFoundError, match="nope"):
        await stores.queues.get("nope")


async def test_agent_roundtrips_with_its_queues_sorted(stores: Stores) -> None:
    await with_queues(stores, "sales", "billing")
    agent = AgentRecord(
        id="a1",
        name="Ada",
        endpoint="PJSIP/1001",
        state=AgentState.AVAILABLE,
        queues=("sales", "billing", "sales"),
        state_since=T0,
    )
    await stores.agents.add(agent)
    got = await stores.agents.get("a1")
    assert got.queues == ("billing", "sales")
    assert (got.name, got.endpoint, got.state, got.state_since) == (
        "Ada",
        "PJSIP/1001",
        AgentState.AVAILABLE,
        T0,
    )


async def test_adding_an_existing_agent_id_conflicts_and_keeps_the_first(stores: Stores) -> None:
    await stores.agents.add(AgentRecord(id="a1", name="Ada", endpoint="PJSIP/1001"))
    with pytest.raises(ConflictError):
        await stores.agents.add(AgentRecord(id="a1", name="Bob", endpoint="PJSIP/1002"))
    assert (await stores.agents.get("a1")).name == "Ada"


async def test_adding_an_agent_with_an_unknown_queue_stores_nothing(stores: Stores) -> None:
    await with_queues(stores, "sales")
    with pytest.raises(NotFoundError, match="ghost"):
        await stores.agents.add(
            AgentRecord(id="a1", name="Ada", endpoint="PJSIP/1001", queues=("sales", "ghost"))
        )
    with pytest.raises(NotFoundError):
        await stores.agents.get("a1")


async def test_set_queues_replaces_membership(stores: Stores) -> None:
    await with_queues(stores, "sales", "billing", "support")
    await stores.agents.add(
        AgentRecord(id="a1", name="Ada", endpoint="PJSIP/1001", queues=("sales", "billing"))
    )
    returned = await stores.agents.set_queues("a1", ("support", "sales"))
    assert returned.queues == ("sales", "support")
    assert (await stores.agents.get("a1")).queues == ("sales", "support")
    assert (await stores.agents.set_queues("a1", ())).queues == ()


async def test_set_queues_with_an_unknown_queue_changes_nothing(stores: Stores) -> None:
    await with_queues(stores, "sales", "billing")
    await stores.agents.add(AgentRecord(id="a1", name="Ada", endpoint="PJSIP/1001", queues=("sales",)))
    with pytest.raises(NotFoundError, match="ghost"):
        await stores.agents.set_queues("a1", ("billing", "ghost"))
    assert (await stores.agents.get("a1")).queues == ("sales",)


async def test_set_queues_of_unknown_agent_is_not_found(stores: Stores) -> None:
    await with_queues(stores, "sales")
    with pytest.raises(NotFoundError, match="a404"):
        await stores.agents.set_queues("a404", ("sales",))


async def test_set_state_moves_state_since_only_when_the_state_changes(stores: Stores) -> None:
    await stores.agents.add(AgentRecord(id="a1", name="Ada", endpoint="PJSIP/1001"))
    available = await stores.agents.set_state("a1", AgentState.AVAILABLE, T0)
    assert (available.state, available.state_since) == (AgentState.AVAILABLE, T0)
    again = await stores.agents.set_state("a1", AgentState.AVAILABLE, T0 + timedelta(minutes=5))
    assert again.state_since == T0, "a repeated fact must not reset the time in state"
    busy = await stores.agents.set_state("a1", AgentState.BUSY, T0 + timedelta(minutes=6))
    assert (busy.state, busy.state_since) == (AgentState.BUSY, T0 + timedelta(minutes=6))
    assert await stores.agents.get("a1") == busy


async def test_set_state_of_unknown_agent_is_not_found(stores: Stores) -> None:
    with pytest.raises(NotFoundError, match="a404"):
        await stores.agents.set_state("a404", AgentState.AVAILABLE, T0)


async def test_agents_are_paged_by_id_with_their_queues(stores: Stores) -> None:
    await with_queues(stores, "sales")
    for agent_id in ("a3", "a1", "a5", "a2", "a4"):
        await stores.agents.add(
            AgentRecord(id=agent_id, name=agent_id, endpoint="PJSIP/" + agent_id, queues=("sales",))
        )
    first = await stores.agents.list(cursor=None, limit=2)
    second = await stores.agents.list(cursor=first.next, limit=2)
    third = await stores.agents.list(cursor=second.next, limit=2)
    assert [[a.id for a in p.items] for p in (first, second, third)] == [["a1", "a2"], ["a3", "a4"], ["a5"]]
    assert third.next is None
    assert all(a.queues == ("sales",) for p in (first, second, third) for a in p.items)


@pytest.mark.parametrize(
    "cursor", [encode_cursor(("2026-11-23T14:00:00+00:00", "a1")), encode_cursor((3,)), "!!"]
)
async def test_agents_reject_a_cursor_they_did_not_make(stores: Stores, cursor: str) -> None:
    with pytest.raises(ValidationError, match="cursor"):
        await stores.agents.list(cursor=cursor, limit=10)


async def test_concurrent_membership_changes_all_succeed_and_one_wins_whole(stores: Stores) -> None:
    await with_queues(stores, "sales", "billing", "support")
    await stores.agents.add(AgentRecord(id="a1", name="Ada", endpoint="PJSIP/1001"))
    choices = [
        ("sales", "billing"),
        ("billing", "support"),
        ("sales", "support"),
        ("sales", "billing", "support"),
    ]
    await asyncio.gather(*(stores.agents.set_queues("a1", choices[i % 4]) for i in range(8)))
    final = (await stores.agents.get("a1")).queues
    assert final in {tuple(sorted(c)) for c in choices}
