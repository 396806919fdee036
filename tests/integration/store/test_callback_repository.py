"""The callback repository on SQLite, PostgreSQL and in memory: one open callback per (queue, number)
held by the database, idempotent client keys, and slot bookings that never overbook under a race."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from callcenter.callbacks.lifecycle import move, new_callback
from callcenter.callbacks.ports import (
    CallbackExistsError,
    CallbackRepository,
    SlotFullError,
    StaleCallbackError,
)
from callcenter.callbacks.promise import keep_place_window, slot_window
from callcenter.errors import ConflictError, NotFoundError, ValidationError
from callcenter.model.callbacks import Actor, Callback, CallbackChange
from callcenter.model.vocabulary import ActorKind, AttemptResult, CallbackKind, CallbackState
from callcenter.store.database import create_engine, migrate
from callcenter.store.sql_callbacks import SqlCallbackRepository
from tests.fakes.callbacks import InMemoryCallbackRepository
from tests.integration.store.conftest import ALL_BACKENDS, SQL_BACKENDS, PostgresSchemas, open_database

T0 = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
SLOT = T0 + timedelta(hours=2)
CALLER = Actor(ActorKind.CUSTOMER, "ivr")
SYSTEM = Actor(ActorKind.SYSTEM, "dispatcher")
S = CallbackState


@pytest.fixture(params=ALL_BACKENDS)
async def repo(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_schemas: PostgresSchemas
) -> AsyncIterator[CallbackRepository]:
    if request.param == "memory":
        yield InMemoryCallbackRepository()
        return
    async with open_database(request.param, tmp_path, postgres_schemas) as settings:
        await migrate(settings)
        engine = create_engine(settings)
        try:
            yield SqlCallbackRepository(engine)
        finally:
            await engine.dispose()


def _kept(
    callback_id: str = "cb-1", number: str = "+14155550100", queue: str = "sales", **kw: object
) -> tuple[Callback, CallbackChange]:
    return new_callback(
        callback_id=callback_id,
        queue=queue,
        number=number,
        kind=CallbackKind.KEEP_PLACE,
        window=keep_place_window(T0, T0 + timedelta(minutes=20)),
        at=T0,
        actor=CALLER,
        call_id="call-1",
        enqueued_at=T0 - timedelta(minutes=4),
        **kw,  # type: ignore[arg-type]
    )


def _slot(
    callback_id: str, number: str, *, key: str | None = None, start: datetime = SLOT
) -> tuple[Callback, tuple[CallbackChange, ...]]:
    callback, first = new_callback(
        callback_id=callback_id,
        queue="sales",
        number=number,
        kind=CallbackKind.SCHEDULED,
        window=slot_window(start, start + timedelta(minutes=15)),
        at=T0,
        actor=CALLER,
        client_key=key,
    )
    callback, second = move(callback, S.SCHEDULED, at=T0, actor=CALLER, due_at=start)
    return callback, (first, second)


async def test_callback_and_its_first_change_read_back(repo: CallbackRepository) -> None:
    callback, change = _kept()
    await repo.add(callback, (change,))
    assert await repo.get("cb-1") == callback
    assert await repo.changes("cb-1") == (change,)
    assert await repo.open_for("sales", "+14155550100") == callback
    assert await repo.open_for_number("+14155550100") == (callback,)


async def test_the_open_callbacks_of_several_numbers_come_in_one_read_oldest_first(
    repo: CallbackRepository,
) -> None:
    """What the dispatcher reads for a batch of answered inbound calls (one query, not one per call)."""
    later = T0 + timedelta(minutes=1)
    sales, change = _kept("cb-1", number="+14155550100", queue="sales")
    await repo.add(sales, (change,))
    support, change = new_callback(
        callback_id="cb-2",
        queue="support",
        number="+14155550100",
        kind=CallbackKind.KEEP_PLACE,
        window=keep_place_window(later, later + timedelta(minutes=20)),
        at=later,
        actor=CALLER,
        call_id="call-2",
        enqueued_at=later,
    )
    await repo.add(support, (change,))
    other, change = _kept("cb-3", number="+14155550199")
    await repo.add(other, (change,))
    done, change = _kept("cb-4", number="+14155550177")
    await repo.add(done, (change,))
    done, change = move(done, S.CANCELLED, at=later, actor=CALLER)
    await repo.move(done, change)

    found = await repo.open_for_numbers(["+14155550100", "+14155550199", "+14155550177", "+14155550111"])

    assert dict(found) == {"+14155550100": (sales, support), "+14155550199": (other,)}
    assert await repo.open_for_numbers([]) == {}


async def test_second_open_callback_for_the_same_queue_and_number_is_refused_naming_the_first(
    repo: CallbackRepository,
) -> None:
    first, change = _kept("cb-1")
    await repo.add(first, (change,))
    second, change2 = _kept("cb-2")
    with pytest.raises(CallbackExistsError) as raised:
        await repo.add(second, (change2,))
    assert raised.value.existing_id == "cb-1"
    other_queue, change3 = _kept("cb-3", queue="support")
    await repo.add(other_queue, (change3,))


async def test_a_closed_callback_frees_the_number_for_a_new_one(repo: CallbackRepository) -> None:
    first, change = _kept("cb-1")
    await repo.add(first, (change,))
    cancelled, cancel = move(first, S.CANCELLED, at=T0, actor=CALLER, reason="pressed 2")
    await repo.move(cancelled, cancel)
    second, change2 = _kept("cb-2")
    await repo.add(second, (change2,))
    assert (await repo.open_for("sales", "+14155550100")) == second
    assert [c.state for c in await repo.changes("cb-1")] == [S.REQUESTED, S.CANCELLED]
    assert (await repo.changes("cb-1"))[-1].actor == CALLER


async def test_move_from_a_stale_state_is_refused_and_changes_nothing(repo: CallbackRepository) -> None:
    callback, change = _kept()
    await repo.add(callback, (change,))
    scheduled, to_scheduled = move(callback, S.SCHEDULED, at=T0, actor=SYSTEM)
    await repo.move(scheduled, to_scheduled)
    cancelled, cancel = move(callback, S.CANCELLED, at=T0, actor=CALLER)  # from the old copy
    with pytest.raises(StaleCallbackError):
        await repo.move(cancelled, cancel)
    assert (await repo.get(callback.id)).state is S.SCHEDULED
    with pytest.raises(NotFoundError):
        await repo.get("nope")


async def test_attempt_fields_round_trip(repo: CallbackRepository) -> None:
    callback, change = _kept()
    await repo.add(callback, (change,))
    for state, kw in (
        (S.SCHEDULED, {}),
        (S.DIALING, {}),
        (S.RETRY_WAIT, {"result": AttemptResult.NO_ANSWER}),
    ):
        moved, step = move(callback, state, at=T0 + timedelta(minutes=1), actor=SYSTEM, **kw)  # type: ignore[arg-type]
        callback = await repo.move(moved, step)
    stored = await repo.get(callback.id)
    assert (stored.attempts, stored.last_result, stored.first_dial_at) == (
        1,
        AttemptResult.NO_ANSWER,
        T0 + timedelta(minutes=1),
    )
    assert (await repo.changes(callback.id))[-1].result is AttemptResult.NO_ANSWER


async def test_booking_is_idempotent_by_client_key(repo: CallbackRepository) -> None:
    callback, changes = _slot("cb-1", "+14155550100", key="req-1")
    first = await repo.book(callback, changes, slot_start=SLOT, capacity=5)
    again, changes2 = _slot("cb-other-id", "+14155550100", key="req-1")
    second = await repo.book(again, changes2, slot_start=SLOT, capacity=5)
    assert second.id == first.id == "cb-1"
    assert await repo.booked("sales", SLOT, SLOT + timedelta(minutes=15)) == {SLOT: 1}


async def test_a_client_key_reused_for_another_request_is_a_conflict(repo: CallbackRepository) -> None:
    callback, changes = _slot("cb-1", "+14155550100", key="req-1")
    await repo.book(callback, changes, slot_start=SLOT, capacity=5)
    other, changes2 = _slot("cb-2", "+14155550199", key="req-1")
    with pytest.raises(ConflictError, match="another callback request"):
        await repo.book(other, changes2, slot_start=SLOT, capacity=5)
    assert await repo.booked("sales", SLOT, SLOT + timedelta(hours=1)) == {SLOT: 1}


async def test_full_slot_is_refused_and_cancelling_frees_a_place(repo: CallbackRepository) -> None:
    booked = []
    for i in range(2):
        callback, changes = _slot(f"cb-{i}", f"+1415555010{i}")
        booked.append(await repo.book(callback, changes, slot_start=SLOT, capacity=2))
    extra, changes = _slot("cb-9", "+14155550109")
    with pytest.raises(SlotFullError):
        await repo.book(extra, changes, slot_start=SLOT, capacity=2)
    with pytest.raises(NotFoundError):
        await repo.get("cb-9")
    cancelled, cancel = move(booked[0], S.CANCELLED, at=T0, actor=CALLER)
    await repo.move(cancelled, cancel)
    assert await repo.booked("sales", SLOT, SLOT + timedelta(minutes=1)) == {SLOT: 1}
    await repo.book(extra, changes, slot_start=SLOT, capacity=2)


async def test_a_duplicate_booking_gives_its_place_back(repo: CallbackRepository) -> None:
    callback, change = _kept("cb-1")
    await repo.add(callback, (change,))
    same_number, changes = _slot("cb-2", "+14155550100")
    with pytest.raises(CallbackExistsError):
        await repo.book(same_number, changes, slot_start=SLOT, capacity=3)
    assert await repo.booked("sales", SLOT, SLOT + timedelta(minutes=1)) == {}


async def test_kept_places_come_in_line_order_and_lists_page_newest_first(repo: CallbackRepository) -> None:
    for i, minutes in enumerate((5, 1, 3)):
        callback, change = new_callback(
            callback_id=f"cb-{i}",
            queue="sales",
            number=f"+1415555010{i}",
            kind=CallbackKind.KEEP_PLACE,
            window=keep_place_window(T0 + timedelta(seconds=i), T0 + timedelta(minutes=20)),
            at=T0 + timedelta(seconds=i),
            actor=CALLER,
            enqueued_at=T0 - timedelta(minutes=minutes),
        )
        await repo.add(callback, (change,))
    line = await repo.in_state("sales", frozenset({S.REQUESTED}), kind=CallbackKind.KEEP_PLACE)
    assert [c.id for c in line] == ["cb-0", "cb-2", "cb-1"]
    page = await repo.list(queue="sales", state=None, cursor=None, limit=2)
    assert [c.id for c in page.items] == ["cb-2", "cb-1"]
    assert page.next is not None
    rest = await repo.list(queue="sales", state=None, cursor=page.next, limit=2)
    assert [c.id for c in rest.items] == ["cb-0"] and rest.next is None
    with pytest.raises(ValidationError):
        await repo.list(queue=None, state=None, cursor="garbage!", limit=2)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("backend", SQL_BACKENDS)
async def test_racing_bookings_from_two_processes_never_overbook(
    backend: str, tmp_path: Path, postgres_schemas: PostgresSchemas
) -> None:
    """Many bookings at once, from two engines (two processes' pools), for a slot with room for 7."""
    capacity, racers = 7, 40
    async with open_database(backend, tmp_path, postgres_schemas) as settings:
        await migrate(settings)
        engines = [create_engine(settings), create_engine(settings)]
        try:
            repos = [SqlCallbackRepository(e) for e in engines]

            async def attempt(i: int) -> bool:
                callback, changes = _slot(f"cb-{i}", f"+1415555{i:04d}")
                try:
                    await repos[i % 2].book(callback, changes, slot_start=SLOT, capacity=capacity)
                except SlotFullError:
                    return False
                return True

            results = await asyncio.gather(*(attempt(i) for i in range(racers)))
            assert sum(results) == capacity
            assert await repos[0].booked("sales", SLOT, SLOT + timedelta(minutes=1)) == {SLOT: capacity}
            scheduled = await repos[1].in_state("sales", frozenset({S.SCHEDULED}))
            assert len(scheduled) == capacity
        finally:
            for engine in engines:
                await engine.dispose()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("backend", SQL_BACKENDS)
async def test_racing_requests_for_one_number_leave_exactly_one_open_callback(
    backend: str, tmp_path: Path, postgres_schemas: PostgresSchemas
) -> None:
    async with open_database(backend, tmp_path, postgres_schemas) as settings:
        await migrate(settings)
        engine = create_engine(settings)
        try:
            repo = SqlCallbackRepository(engine)

            async def attempt(i: int) -> str:
                callback, change = _kept(f"cb-{i}")
                try:
                    await repo.add(callback, (change,))
                except CallbackExistsError as exc:
                    return f"exists:{exc.existing_id}"
                return "stored"

            results = await asyncio.gather(*(attempt(i) for i in range(12)))
            assert results.count("stored") == 1
            winner = await repo.open_for("sales", "+14155550100")
            assert winner is not None
            assert all(r == f"exists:{winner.id}" for r in results if r != "stored")
        finally:
            await engine.dispose()


async def test_concurrent_repeat_caller_checks_each_get_their_own_callback(repo: CallbackRepository) -> None:
    sales, change = _kept("cb-1", number="+14155550100")
    await repo.add(sales, (change,))
    support, change2 = _kept("cb-2", number="+14155550101", queue="support")
    await repo.add(support, (change2,))

    found = await asyncio.gather(
        repo.open_for("sales", "+14155550100"),
        repo.open_for("support", "+14155550100"),
        repo.open_for("support", "+14155550101"),
        repo.open_for("sales", "+14155550100"),
        repo.open_for("sales", "+14155550199"),
    )

    assert found == [sales, None, support, sales, None]


async def test_a_repeat_caller_check_sees_a_callback_stored_while_another_check_ran(
    repo: CallbackRepository,
) -> None:
    earlier = asyncio.create_task(repo.open_for("sales", "+14155550100"))
    callback, change = _kept("cb-1")
    await repo.add(callback, (change,))

    assert await repo.open_for("sales", "+14155550100") == callback
    assert await earlier in (None, callback)
