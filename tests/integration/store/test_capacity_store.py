"""Schedules and the prediction log on SQLite, PostgreSQL and in memory: one contract (integration)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from callcenter.capacity.accuracy import PredictionRecord
from callcenter.capacity.ports import PredictionLog, ScheduleRepository
from callcenter.capacity.predictors import PredictorName
from callcenter.capacity.schedules import Schedule, make_schedule, parse_shift
from callcenter.errors import NotFoundError, ValidationError
from callcenter.model.records import AgentRecord, QueueRecord
from callcenter.queue.ports import AgentRepository, QueueRepository
from callcenter.store.database import create_engine, migrate
from callcenter.store.sql_capacity import SqlPredictionLog, SqlScheduleRepository
from callcenter.store.sql_repos import SqlAgentRepository, SqlQueueRepository
from tests.fakes.capacity import InMemoryPredictionLog, InMemoryScheduleRepository
from tests.fakes.store import InMemoryStore
from tests.integration.store.conftest import ALL_BACKENDS, PostgresSchemas, open_database

T0 = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
PARIS_WINTER = timezone(timedelta(hours=1))


@dataclass(frozen=True, slots=True)
class CapacityStores:
    schedules: ScheduleRepository
    predictions: PredictionLog
    agents: AgentRepository
    queues: QueueRepository


@pytest.fixture(params=ALL_BACKENDS)
async def stores(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_schemas: PostgresSchemas
) -> AsyncIterator[CapacityStores]:
    """Queues ``sales`` and ``support``; agents a1 (sales), a2 (sales, support), a3 (support)."""
    if request.param == "memory":
        fake = InMemoryStore.create()
        yield await _seeded(
            CapacityStores(
                schedules=InMemoryScheduleRepository(fake.agents),
                predictions=InMemoryPredictionLog(),
                agents=fake.agents,
                queues=fake.queues,
            )
        )
        return
    async with open_database(request.param, tmp_path, postgres_schemas) as settings:
        await migrate(settings)
        engine = create_engine(settings)
        try:
            yield await _seeded(
                CapacityStores(
                    schedules=SqlScheduleRepository(engine),
                    predictions=SqlPredictionLog(engine),
                    agents=SqlAgentRepository(engine),
                    queues=SqlQueueRepository(engine),
                )
            )
        finally:
            await engine.dispose()


async def _seeded(stores: CapacityStores) -> CapacityStores:
    for name in ("sales", "support"):
        await stores.queues.put(QueueRecord(name=name))
    for agent_id, queues in (("a1", ("sales",)), ("a2", ("sales", "support")), ("a3", ("support",))):
        await stores.agents.add(
            AgentRecord(id=agent_id, name=agent_id, endpoint=f"PJSIP/{agent_id}", queues=queues)
        )
    return stores


def _schedule(agent_id: str, *shifts: str, at: datetime = T0, by: str = "test") -> Schedule:
    return make_schedule(agent_id, [parse_shift(s) for s in shifts], updated_at=at, updated_by=by)


# -- schedules ----------------------------------------------------------------------------------------


async def test_an_agent_without_a_schedule_has_no_shifts(stores: CapacityStores) -> None:
    schedule = await stores.schedules.get("a1")

    assert (schedule.agent_id, schedule.shifts, schedule.updated_at, schedule.updated_by) == (
        "a1",
        (),
        None,
        "",
    )


async def test_a_schedule_is_stored_in_week_order_and_read_back_in_utc(stores: CapacityStores) -> None:
    written = _schedule(
        "a1", "wed 13:00-17:00", "mon 09:00-12:00", "sun 22:00-02:00", at=T0.astimezone(PARIS_WINTER)
    )

    stored = await stores.schedules.put(written)

    assert stored == await stores.schedules.get("a1")
    assert [str(s) for s in stored.shifts] == ["mon 09:00-12:00", "wed 13:00-17:00", "sun 22:00-02:00"]
    assert stored.updated_at == T0 and stored.updated_at.tzinfo == UTC
    assert stored.updated_by == "test"


async def test_putting_a_schedule_replaces_every_shift(stores: CapacityStores) -> None:
    await stores.schedules.put(_schedule("a1", "mon 09:00-17:00", "tue 09:00-17:00"))

    await stores.schedules.put(_schedule("a1", "fri 22:00-06:00", at=T0 + timedelta(hours=1), by="cli"))

    stored = await stores.schedules.get("a1")
    assert [str(s) for s in stored.shifts] == ["fri 22:00-06:00"]
    assert (stored.updated_at, stored.updated_by) == (T0 + timedelta(hours=1), "cli")


async def test_a_schedule_for_an_unknown_agent_is_not_found(stores: CapacityStores) -> None:
    with pytest.raises(NotFoundError, match="nobody"):
        await stores.schedules.put(_schedule("nobody", "mon 09:00-17:00"))
    with pytest.raises(NotFoundError, match="nobody"):
        await stores.schedules.get("nobody")


async def test_a_schedule_needs_an_aware_update_time(stores: CapacityStores) -> None:
    with pytest.raises(ValidationError):
        await stores.schedules.put(_schedule("a1", "mon 09:00-17:00", at=datetime(2026, 11, 23, 14, 0)))
    with pytest.raises(ValidationError):
        await stores.schedules.put(Schedule(agent_id="a1", shifts=()))


async def test_the_schedules_of_a_queue_are_those_of_its_agents_with_shifts(stores: CapacityStores) -> None:
    await stores.schedules.put(_schedule("a1", "mon 09:00-17:00"))
    await stores.schedules.put(_schedule("a2", "tue 08:00-12:00", "mon 12:00-16:00"))
    await stores.schedules.put(_schedule("a3", "wed 09:00-17:00"))

    sales = await stores.schedules.for_queue("sales")
    support = await stores.schedules.for_queue("support")

    assert [(s.agent_id, [str(x) for x in s.shifts]) for s in sales] == [
        ("a1", ["mon 09:00-17:00"]),
        ("a2", ["mon 12:00-16:00", "tue 08:00-12:00"]),
    ]
    assert [s.agent_id for s in support] == ["a2", "a3"]
    assert sales[0].updated_at == T0
    assert await stores.schedules.for_queue("nobody-serves-this") == ()


async def test_an_agent_leaving_a_queue_takes_their_schedule_out_of_its_plan(stores: CapacityStores) -> None:
    await stores.schedules.put(_schedule("a2", "mon 09:00-17:00"))

    await stores.agents.set_queues("a2", ("support",))

    assert await stores.schedules.for_queue("sales") == ()
    assert [s.agent_id for s in await stores.schedules.for_queue("support")] == ["a2"]


# -- predictions ----------------------------------------------------------------------------------------


def _prediction(
    call_id: str, at: datetime, predictor: PredictorName, *, queue: str = "sales"
) -> PredictionRecord:
    return PredictionRecord(
        call_id=call_id,
        queue=queue,
        at=at,
        predictor=predictor,
        mean_s=60.5,
        p80_s=97.25,
        p90_s=139.0,
        announced=predictor is PredictorName.QLA,
    )


async def test_predictions_are_appended_and_read_back_by_queue_and_time(stores: CapacityStores) -> None:
    first = [_prediction("c1", T0, p) for p in (PredictorName.QLA, PredictorName.ASTERISK)]
    later = _prediction("c2", (T0 + timedelta(seconds=30)).astimezone(PARIS_WINTER), PredictorName.QLA)
    other_queue = _prediction("c3", T0, PredictorName.QLA, queue="support")
    await stores.predictions.add(first)
    await stores.predictions.add([later, other_queue])
    await stores.predictions.add([])

    found = await stores.predictions.between("sales", T0, T0 + timedelta(minutes=1))

    assert [(p.call_id, p.predictor, p.announced) for p in found] == [
        ("c1", PredictorName.QLA, True),
        ("c1", PredictorName.ASTERISK, False),
        ("c2", PredictorName.QLA, True),
    ]
    assert all(p.id is not None for p in found)
    assert found[2].at == T0 + timedelta(seconds=30) and found[2].at.tzinfo == UTC
    assert (found[0].mean_s, found[0].p80_s, found[0].p90_s) == (60.5, 97.25, 139.0)
    assert [
        p.call_id
        for p in await stores.predictions.between(
            "sales", T0 + timedelta(seconds=1), T0 + timedelta(minutes=1)
        )
    ] == ["c2"]
    assert await stores.predictions.between("sales", T0 - timedelta(minutes=1), T0) == ()


async def test_the_predictions_of_one_call_are_read_back_oldest_first(stores: CapacityStores) -> None:
    await stores.predictions.add([_prediction("c1", T0 + timedelta(seconds=40), PredictorName.QLA)])
    await stores.predictions.add(
        [_prediction("c1", T0, PredictorName.QLA), _prediction("c2", T0, PredictorName.QLA)]
    )

    found = await stores.predictions.for_call("c1")

    assert [p.at for p in found] == [T0, T0 + timedelta(seconds=40)]
    assert await stores.predictions.for_call("nobody") == ()


async def test_a_naive_prediction_time_is_refused(stores: CapacityStores) -> None:
    with pytest.raises(ValidationError):
        await stores.predictions.add([_prediction("c1", datetime(2026, 11, 23, 14, 0), PredictorName.QLA)])
    with pytest.raises(ValidationError):
        await stores.predictions.between("sales", datetime(2026, 11, 23), T0)
    assert await stores.predictions.for_call("c1") == ()


async def test_concurrent_prediction_logs_are_all_stored_and_a_naive_one_fails_alone(
    stores: CapacityStores,
) -> None:
    good = [stores.predictions.add([_prediction(f"c{n}", T0, PredictorName.QLA)]) for n in range(4)]
    naive = stores.predictions.add([_prediction("bad", datetime(2026, 11, 23, 14, 0), PredictorName.QLA)])

    results = await asyncio.gather(*good, naive, return_exceptions=True)

    assert results[:4] == [None] * 4
    assert isinstance(results[4], ValidationError)
    found = await stores.predictions.between("sales", T0, T0 + timedelta(seconds=1))
    assert sorted(p.call_id for p in found) == ["c0", "c1", "c2", "c3"]
