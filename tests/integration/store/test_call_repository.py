"""The call repository contract on SQLite, PostgreSQL and the in-memory fake (integration)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone

import pytest

from callcenter.errors import NotFoundError, ValidationError
from callcenter.model.paging import encode_cursor
from callcenter.model.records import CallRecord
from callcenter.model.vocabulary import CallOutcome, EntryPoint
from callcenter.queue.ports import CallFilter
from tests.integration.store.conftest import Stores

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
PARIS = timezone(timedelta(hours=1))


def call(call_id: str, **fields: object) -> CallRecord:
    values: dict[str, object] = {
        "id": call_id,
        "channel_id": f"chan-{call_id}",
        "linkedid": f"linked-{call_id}",
        "entry_point": EntryPoint.ARI,
        "caller": "+14155550100",
        "queue": "sales",
        "arrived_at": T0,
    }
    values.update(fields)
    return CallRecord(**values)  # type: ignore[arg-type]


async def all_pages(stores: Stores, flt: CallFilter, limit: int) -> list[list[str]]:
    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        page = await stores.calls.list(flt, cursor=cursor, limit=limit)
        pages.append([c.id for c in page.items])
        if page.next is None:
            return pages
        cursor = page.next


async def test_call_roundtrips_every_field_with_times_back_in_utc(stores: Stores) -> None:
    arrived = datetime(2026, 11, 23, 15, 0, 0, 123456, tzinfo=PARIS)
    stored = call(
        "c1",
        entry_point=EntryPoint.AGI,
        caller_name="Ada",
        dialled="3000",
        arrived_at=arrived,
        queued_at=arrived + timedelta(seconds=2),
        answered_at=arrived + timedelta(seconds=20),
        ended_at=arrived + timedelta(seconds=80),
        wait_s=18.5,
        talk_s=60.0,
        position=3,
        agent_id="a1",
        outcome=CallOutcome.ANSWERED,
        reconciled=True,
        closed_at=arrived + timedelta(minutes=5),
    )
    await stores.calls.upsert(stored)
    got = await stores.calls.get("c1")
    assert got == stored
    assert got.arrived_at.utcoffset() == timedelta(0)
    assert got.arrived_at == datetime(2026, 11, 23, 14, 0, 0, 123456, tzinfo=UTC)


async def test_naive_time_is_rejected_and_nothing_is_stored(stores: Stores) -> None:
    with pytest.raises(ValidationError, match="time zone"):
        await stores.calls.upsert(call("c1", arrived_at=datetime(2026, 11, 23, 14, 0)))
    with pytest.raises(NotFoundError):
        await stores.calls.get("c1")


async def test_unknown_call_is_not_found(stores: Stores) -> None:
    with pytest.raises(NotFoundError, match="c404"):
        await stores.calls.get("c404")


async def test_upserting_the_same_fact_twice_changes_nothing(stores: Stores) -> None:
    record = call("c1", outcome=CallOutcome.ABANDONED, wait_s=40.0)
    await stores.calls.upsert(record)
    await stores.calls.upsert(record)
    assert await stores.calls.get("c1") == record
    page = await stores.calls.list(CallFilter(), cursor=None, limit=10)
    assert [c.id for c in page.items] == ["c1"]


async def test_live_call_is_replaced_by_newer_facts(stores: Stores) -> None:
    await stores.calls.upsert(call("c1", position=4))
    newer = call("c1", position=1, queued_at=T0 + timedelta(seconds=3), agent_id="a7")
    await stores.calls.upsert(newer)
    assert await stores.calls.get("c1") == newer


async def test_outcome_is_decided_once_and_later_facts_only_fill_empty_fields(stores: Stores) -> None:
    ended = call("c1", outcome=CallOutcome.ABANDONED, wait_s=40.0, ended_at=T0 + timedelta(seconds=40))
    await stores.calls.upsert(ended)
    closed = T0 + timedelta(hours=1)
    await stores.calls.upsert(
        call(
            "c1",
            outcome=CallOutcome.ANSWERED,
            wait_s=12.0,
            ended_at=T0 + timedelta(seconds=99),
            agent_id="a1",
            closed_at=closed,
            caller_name="Ada",
        )
    )
    await stores.calls.upsert(call("c1"))  # a late live update must not reopen the call either
    got = await stores.calls.get("c1")
    assert (got.outcome, got.wait_s, got.ended_at) == (
        CallOutcome.ABANDONED,
        40.0,
        T0 + timedelta(seconds=40),
    )
    assert (got.agent_id, got.closed_at, got.caller_name) == ("a1", closed, "Ada")


@pytest.mark.parametrize("already_stored", [True, False], ids=["live-call", "new-call"])
async def test_concurrent_endings_store_one_outcome_with_its_own_figures(
    stores: Stores, already_stored: bool
) -> None:
    if already_stored:
        await stores.calls.upsert(call("c1"))
    outcomes = list(CallOutcome)[:8]
    endings = [call("c1", outcome=o, wait_s=float(i), position=i) for i, o in enumerate(outcomes)]
    await asyncio.gather(*(stores.calls.upsert(e) for e in endings))
    got = await stores.calls.get("c1")
    assert got.outcome is not None
    winner = outcomes.index(got.outcome)
    assert (got.wait_s, got.position) == (float(winner), winner), "fields of two endings were mixed"
    await stores.calls.upsert(call("c1", outcome=CallOutcome.FAILED, wait_s=99.0))
    assert await stores.calls.get("c1") == got


async def test_list_walks_pages_newest_first_with_ties_broken_by_id(stores: Stores) -> None:
    arrivals = {"c1": 0, "c2": 1, "c3": 2, "c4a": 3, "c4b": 3, "c5": 4, "c6": 5}
    for call_id, minute in arrivals.items():
        await stores.calls.upsert(call(call_id, arrived_at=T0 + timedelta(minutes=minute)))
    pages = await all_pages(stores, CallFilter(), limit=3)
    assert pages == [["c6", "c5", "c4b"], ["c4a", "c3", "c2"], ["c1"]]


async def test_exactly_full_last_page_has_no_next_cursor(stores: Stores) -> None:
    for i in range(4):
        await stores.calls.upsert(call(f"c{i}", arrived_at=T0 + timedelta(minutes=i)))
    assert await all_pages(stores, CallFilter(), limit=2) == [["c3", "c2"], ["c1", "c0"]]


FILTERS = [
    pytest.param(CallFilter(outcome=CallOutcome.ABANDONED), ["late", "early"], id="outcome"),
    pytest.param(CallFilter(queue="support"), ["support"], id="queue"),
    pytest.param(CallFilter(caller="+442071838750"), ["uk"], id="caller"),
    pytest.param(
        CallFilter(since=T0 + timedelta(minutes=1)), ["late", "support", "uk"], id="since-inclusive"
    ),
    pytest.param(CallFilter(until=T0 + timedelta(minutes=1)), ["early"], id="until-exclusive"),
    pytest.param(
        CallFilter(outcome=CallOutcome.ABANDONED, since=T0 + timedelta(minutes=1), queue="sales"),
        ["late"],
        id="combined",
    ),
]


@pytest.mark.parametrize(("flt", "expected"), FILTERS)
async def test_list_filters_calls(stores: Stores, flt: CallFilter, expected: list[str]) -> None:
    await stores.calls.upsert(call("early", outcome=CallOutcome.ABANDONED, arrived_at=T0))
    await stores.calls.upsert(call("uk", caller="+442071838750", arrived_at=T0 + timedelta(minutes=1)))
    await stores.calls.upsert(call("support", queue="support", arrived_at=T0 + timedelta(minutes=2)))
    await stores.calls.upsert(
        call("late", outcome=CallOutcome.ABANDONED, arrived_at=T0 + timedelta(minutes=3))
    )
    expected_pages = [expected[i : i + 2] for i in range(0, len(expected), 2)]
    assert await all_pages(stores, flt, limit=2) == expected_pages


BAD_CURSORS = [
    pytest.param("%%not-a-cursor%%", id="not-base64"),
    pytest.param(encode_cursor(("2026-11-23T14:00:00+00:00",)), id="too-short"),
    pytest.param(encode_cursor((1, "c1")), id="time-not-text"),
    pytest.param(encode_cursor(("yesterday", "c1")), id="time-unreadable"),
    pytest.param(encode_cursor(("2026-11-23T14:00:00", "c1")), id="time-naive"),
    pytest.param(encode_cursor(("2026-11-23T14:00:00+00:00", 7)), id="id-not-text"),
]


@pytest.mark.parametrize("cursor", BAD_CURSORS)
async def test_bad_cursor_is_a_validation_error(stores: Stores, cursor: str) -> None:
    await stores.calls.upsert(call("c1"))
    with pytest.raises(ValidationError, match="cursor"):
        await stores.calls.list(CallFilter(), cursor=cursor, limit=10)


@pytest.mark.parametrize("limit", [0, 501])
async def test_limit_outside_what_we_serve_is_a_validation_error(stores: Stores, limit: int) -> None:
    with pytest.raises(ValidationError, match="limit"):
        await stores.calls.list(CallFilter(), cursor=None, limit=limit)


async def test_naive_filter_time_is_a_validation_error(stores: Stores) -> None:
    with pytest.raises(ValidationError, match="time zone"):
        await stores.calls.list(CallFilter(since=datetime(2026, 11, 23)), cursor=None, limit=10)


async def test_timeline_lists_events_oldest_first_with_their_detail(stores: Stores) -> None:
    await stores.calls.upsert(call("c1"))
    await stores.calls.upsert(call("c2"))
    later = await stores.calls.append_event("c1", T0 + timedelta(seconds=9), "answered", {"agent_id": "a1"})
    first = await stores.calls.append_event("c1", T0, "queued", {"position": 2, "tags": ["vip"]})
    tie = await stores.calls.append_event("c1", T0, "announced")
    await stores.calls.append_event("c2", T0, "queued")
    assert first.id is not None and later.id is not None and first.id != later.id
    events = await stores.calls.events("c1")
    assert [(e.kind, e.detail) for e in events] == [
        ("queued", {"position": 2, "tags": ["vip"]}),
        ("announced", {}),
        ("answered", {"agent_id": "a1"}),
    ]
    assert events[1].id == tie.id
    assert all(e.call_id == "c1" and e.at.utcoffset() == timedelta(0) for e in events)


async def test_timeline_of_unknown_call_is_not_found(stores: Stores) -> None:
    with pytest.raises(NotFoundError):
        await stores.calls.append_event("c404", T0, "queued")
    with pytest.raises(NotFoundError):
        await stores.calls.events("c404")


async def test_timeline_detail_that_is_not_json_is_rejected(stores: Stores) -> None:
    await stores.calls.upsert(call("c1"))
    with pytest.raises(ValidationError):
        await stores.calls.append_event("c1", T0, "queued", {"when": object()})
    assert await stores.calls.events("c1") == ()


async def test_recent_calls_of_many_callers_are_each_callers_latest_newest_first(stores: Stores) -> None:
    """What an agent's worklist shows beside each callback, read for the whole list at once."""
    ada, bob, eve = "+14155550100", "+14155550101", "+14155550102"
    for n in range(4):  # Ada called four times; the same time twice, then the id breaks the tie
        await stores.calls.upsert(call(f"a{n}", caller=ada, arrived_at=T0 + timedelta(minutes=min(n, 2))))
    await stores.calls.upsert(call("b0", caller=bob, arrived_at=T0))
    await stores.calls.upsert(call("e0", caller=eve, arrived_at=T0))  # not asked for

    recent = await stores.calls.recent_of([ada, bob, "+14155550199"], 3)

    assert {caller: [c.id for c in calls] for caller, calls in recent.items()} == {
        ada: ["a3", "a2", "a1"],
        bob: ["b0"],
    }
    assert await stores.calls.recent_of([], 3) == {}
