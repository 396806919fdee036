"""Migration 0002 (queue hours, exit actions, ring and wrap-up policy) and the queue service's call queries.

Run on SQLite, PostgreSQL and (for the repository contract) the in-memory fake.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from alembic import command
from sqlalchemy import Connection, inspect, text

from callcenter.config import DatabaseSettings
from callcenter.model.records import CallRecord, ExitAction, QueueRecord
from callcenter.model.vocabulary import CallOutcome, EntryPoint
from callcenter.store.database import _alembic_config, create_engine, migrate
from callcenter.store.sql_repos import SqlCallRepository, SqlQueueRepository
from tests.fakes.store import InMemoryCallRepository
from tests.integration.store.conftest import Stores

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
NEW_COLUMNS = {
    "business_hours",
    "holidays",
    "after_hours_action",
    "timeout_action",
    "no_agents_action",
    "ring_timeout_s",
    "wrap_up_s",
    "max_misses_before_pause",
}


def _queue_columns(connection: Connection) -> dict[str, bool]:
    return {c["name"]: bool(c["nullable"]) for c in inspect(connection).get_columns("queues")}


async def test_migration_0002_adds_the_queue_columns(empty_database: DatabaseSettings) -> None:
    await migrate(empty_database)
    engine = create_engine(empty_database)
    try:
        async with engine.connect() as connection:
            columns = await connection.run_sync(_queue_columns)
        assert NEW_COLUMNS <= set(columns)
        assert columns["business_hours"] is True
        assert not any(columns[name] for name in NEW_COLUMNS - {"business_hours"})
    finally:
        await engine.dispose()


def _upgrade_to(connection: Connection, revision: str) -> None:
    config = _alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


async def test_a_queue_stored_before_0002_gets_the_defaults(empty_database: DatabaseSettings) -> None:
    engine = create_engine(empty_database)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_upgrade_to, "0001")
            await connection.execute(
                text(
                    "INSERT INTO queues (name, title, max_wait_s, join_empty, service_level_s,"
                    " short_abandon_s, time_zone) VALUES ('old', 'Old', 300, false, 20, 5, 'UTC')"
                )
            )
        await migrate(empty_database)
        old = await SqlQueueRepository(engine).get("old")
        assert old == QueueRecord(name="old", title="Old", max_wait_s=300)
    finally:
        await engine.dispose()


async def test_queue_hours_actions_and_policy_roundtrip(stores: Stores) -> None:
    sales = QueueRecord(
        name="sales",
        time_zone="Europe/Paris",
        business_hours={"mon": ("09:00-12:00", "13:00-17:00"), "sat": ("10:00-12:00",)},
        holidays=(date(2026, 12, 25), date(2027, 1, 1)),
        after_hours_action=ExitAction.CONTINUE,
        timeout_action=ExitAction.HANGUP,
        no_agents_action=ExitAction.CONTINUE,
        ring_timeout_s=20,
        wrap_up_s=0,
        max_misses_before_pause=0,
    )
    await stores.queues.put(sales)
    assert await stores.queues.get("sales") == sales
    await stores.queues.put(QueueRecord(name="sales"))
    assert await stores.queues.get("sales") == QueueRecord(name="sales")


def _call(
    call_id: str, caller: str, arrived_s: float, outcome: CallOutcome | None, **kw: object
) -> CallRecord:
    return CallRecord(
        id=call_id,
        channel_id=call_id,
        linkedid=call_id,
        entry_point=EntryPoint.ARI,
        caller=caller,
        arrived_at=T0 + timedelta(seconds=arrived_s),
        outcome=outcome,
        **kw,  # type: ignore[arg-type]
    )


@pytest.fixture
async def call_queries(stores: Stores) -> SqlCallRepository | InMemoryCallRepository:
    """The call repository of ``stores`` with the queue service's queries (SQL or fake)."""
    calls = stores.calls
    assert isinstance(calls, SqlCallRepository | InMemoryCallRepository)
    return calls


async def test_open_missed_calls_of_a_caller(
    call_queries: SqlCallRepository | InMemoryCallRepository,
) -> None:
    number, other = "+14155550100", "+14155550199"
    for record in [
        _call("m1", number, 0, CallOutcome.ABANDONED),
        _call("m2", number, 10, CallOutcome.UNANSWERED_TIMEOUT),
        _call("closed", number, 20, CallOutcome.ABANDONED, closed_at=T0 + timedelta(seconds=25)),
        _call("answered", number, 30, CallOutcome.ANSWERED),
        _call("live", number, 40, None),
        _call("other", other, 5, CallOutcome.ABANDONED),
        _call("later", number, 100, CallOutcome.ABANDONED),
    ]:
        await call_queries.upsert(record)

    found = await call_queries.open_missed(number, before=T0 + timedelta(seconds=50))

    assert [c.id for c in found] == ["m1", "m2"]


async def test_undecided_calls_are_the_live_ones(
    call_queries: SqlCallRepository | InMemoryCallRepository,
) -> None:
    await call_queries.upsert(_call("done", "+14155550100", 0, CallOutcome.ANSWERED))
    await call_queries.upsert(_call("b", "+14155550100", 20, None))
    await call_queries.upsert(_call("a", "+14155550100", 10, None))

    assert [c.id for c in await call_queries.undecided()] == ["a", "b"]
