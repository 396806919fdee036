"""``/api/v1/calls``: outcomes filtered and paged, and one call's timeline (supervisors)."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import pytest
from pytest_aiohttp import AiohttpClient

from callcenter.model.phone import parse_phone
from callcenter.model.records import CallRecord
from callcenter.model.vocabulary import CallOutcome, EntryPoint, Role
from callcenter.queue.detection import CallAnswered, CallArrived, CallerHungUp
from tests.service.api.conftest import AGENT_ID, assert_schema
from tests.service.api.queue_api import QueueApi, build_queue_api

if TYPE_CHECKING:
    from tests.conftest import FakeClock

NUMBER = "+14155550100"


@pytest.fixture
async def api(aiohttp_client: AiohttpClient, clock: FakeClock) -> QueueApi:
    api = await build_queue_api(aiohttp_client, clock)
    t0 = clock.now()
    rows = [
        ("c1", NUMBER, "sales", 0, CallOutcome.ANSWERED),
        ("c2", NUMBER, "sales", 60, CallOutcome.ABANDONED),
        ("c3", "+14155550199", "support", 120, CallOutcome.ABANDONED),
        ("c4", "anonymous", "sales", 180, None),
    ]
    for call_id, caller, queue, offset, outcome in rows:
        await api.store.calls.upsert(
            CallRecord(
                id=call_id,
                channel_id=call_id,
                linkedid=call_id,
                entry_point=EntryPoint.ARI,
                caller=caller,
                queue=queue,
                arrived_at=t0 + timedelta(seconds=offset),
                outcome=outcome,
            )
        )
    return api


async def _ids(api: QueueApi, query: str) -> list[str]:
    status, page = await api.call("GET", "/calls" + query)
    assert status == 200, page
    return [item["id"] for item in page["items"]]


async def test_calls_are_listed_newest_first_in_pages(api: QueueApi) -> None:
    status, first = await api.call("GET", "/calls?limit=3")
    assert status == 200
    assert [c["id"] for c in first["items"]] == ["c4", "c3", "c2"]
    _, second = await api.call("GET", f"/calls?limit=3&cursor={first['next']}")
    assert [c["id"] for c in second["items"]] == ["c1"] and second["next"] is None
    for item in first["items"] + second["items"]:
        assert_schema("Call", item)
    assert first["items"][0]["outcome"] is None and first["items"][0]["missed"] is None
    assert first["items"][1]["missed"] is True and second["items"][0]["missed"] is False


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("?outcome=abandoned", ["c3", "c2"]),
        ("?queue=sales", ["c4", "c2", "c1"]),
        ("?number=%2B14155550100", ["c2", "c1"]),
        ("?number=+14155550100", ["c2", "c1"]),
        ("?number=%2B14155550100&outcome=answered", ["c1"]),
        ("?since=2026-11-23T14:01:00%2B00:00", ["c4", "c3", "c2"]),
        ("?since=2026-11-23T15:01:00+01:00", ["c4", "c3", "c2"]),
        ("?until=2026-11-23T14:01:00Z", ["c1"]),
        ("?since=2026-11-23T14:00:30Z&until=2026-11-23T14:02:00Z", ["c2"]),
        ("?queue=nothing", []),
    ],
)
async def test_calls_are_filtered(api: QueueApi, query: str, expected: list[str]) -> None:
    assert await _ids(api, query) == expected


@pytest.mark.parametrize(
    ("query", "code", "message"),
    [
        ("?outcome=lost", "invalid_request", "outcome must be one of"),
        ("?number=4155550100", "invalid_phone_number", "E.164"),
        ("?number=%2B1", "invalid_phone_number", "not a valid phone number"),
        ("?number=abc", "invalid_phone_number", "E.164"),
        ("?since=yesterday", "invalid_request", "ISO 8601"),
        ("?since=2026-11-23T14:00:00", "invalid_request", "offset"),
        ("?since=2026-11-23T15:00:00Z&until=2026-11-23T14:00:00Z", "invalid_request", "until"),
        ("?limit=0", "invalid_request", "limit"),
        ("?cursor=garbage", "invalid_request", "cursor"),
    ],
)
async def test_bad_filters_are_refused(api: QueueApi, query: str, code: str, message: str) -> None:
    status, answer = await api.call("GET", "/calls" + query)

    assert (status, answer["error"]) == (400, code), answer
    assert message in answer["message"]


async def test_a_call_is_shown_with_its_timeline(api: QueueApi) -> None:
    await api.service.login(AGENT_ID, actor="test")
    now = api.clock.now()
    await api.service.handle(
        CallArrived(
            call_id="live-1",
            channel_id="live-1",
            linkedid="live-1",
            caller=parse_phone(NUMBER),
            queue="sales",
            at=now,
        )
    )
    api.clock.advance(3)
    await api.service.handle(CallAnswered(call_id="live-1", agent_id=AGENT_ID, at=api.clock.now()))
    api.clock.advance(30)
    await api.service.handle(CallerHungUp(call_id="live-1", at=api.clock.now()))

    status, call = await api.call("GET", "/calls/live-1")

    assert status == 200, call
    assert_schema("CallDetail", call)
    assert (call["outcome"], call["agent_id"], call["wait_s"], call["talk_s"]) == (
        "answered",
        AGENT_ID,
        3.0,
        30.0,
    )
    assert [e["kind"] for e in call["events"]] == [
        "arrived",
        "queued",
        "agent_offered",
        "answered",
        "caller_hung_up",
        "ended",
    ]
    assert call["events"][-1]["detail"]["outcome"] == "answered"
    assert call["closed_at"] is None


async def test_the_older_missed_calls_of_an_answered_caller_show_closed(api: QueueApi) -> None:
    await api.service.login(AGENT_ID, actor="test")
    await api.service.handle(
        CallArrived(
            call_id="again",
            channel_id="again",
            linkedid="again",
            caller=parse_phone(NUMBER),
            queue="sales",
            at=api.clock.now() + timedelta(minutes=5),
        )
    )
    await api.service.handle(
        CallAnswered(call_id="again", agent_id=AGENT_ID, at=api.clock.now() + timedelta(minutes=5))
    )

    _, missed = await api.call("GET", "/calls/c2")

    assert missed["closed_at"] is not None and missed["missed"] is True


async def test_an_unknown_call_is_404_and_agents_may_not_read_calls(api: QueueApi) -> None:
    status, answer = await api.call("GET", "/calls/nope")
    assert (status, answer["error"]) == (404, "not_found")
    status, answer = await api.call("GET", "/calls", role=Role.AGENT)
    assert (status, answer["error"]) == (403, "forbidden")
