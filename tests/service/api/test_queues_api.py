"""``/api/v1/queues``: settings (supervisors), business hours, and the live picture of a queue."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from pytest_aiohttp import AiohttpClient

from callcenter.api.queues import QUEUE_FIELDS
from callcenter.api.schemas import QUEUE_PUT
from callcenter.model.phone import parse_phone
from callcenter.model.records import ExitAction
from callcenter.model.vocabulary import Role
from callcenter.queue.detection import CallArrived
from tests.service.api.conftest import AGENT_ID, MakeApi, assert_error, assert_schema
from tests.service.api.queue_api import OTHER_AGENT, QueueApi, build_queue_api

if TYPE_CHECKING:
    from tests.conftest import FakeClock


@pytest.fixture
async def api(aiohttp_client: AiohttpClient, clock: FakeClock) -> QueueApi:
    return await build_queue_api(aiohttp_client, clock)


def test_the_put_body_schema_documents_every_field_the_handler_reads() -> None:
    properties = QUEUE_PUT["properties"]
    assert isinstance(properties, dict)
    assert set(properties) == QUEUE_FIELDS


async def test_queues_are_listed_with_their_settings_and_whether_they_are_open(api: QueueApi) -> None:
    status, page = await api.call("GET", "/queues")

    assert status == 200
    assert page["next"] is None
    [sales] = page["items"]
    assert_schema("Queue", sales)
    assert (sales["name"], sales["title"], sales["open_now"], sales["business_hours"]) == (
        "sales",
        "Sales",
        True,
        None,
    )
    assert (sales["ring_timeout_s"], sales["wrap_up_s"], sales["max_misses_before_pause"]) == (15, 10, 3)


async def test_queues_are_paged_by_name(api: QueueApi) -> None:
    for name in ("billing", "support"):
        await api.call("PUT", f"/queues/{name}", body={})

    _, first = await api.call("GET", "/queues?limit=2")
    _, second = await api.call("GET", f"/queues?limit=2&cursor={first['next']}")

    assert [q["name"] for q in first["items"]] == ["billing", "sales"]
    assert [q["name"] for q in second["items"]] == ["support"] and second["next"] is None


async def test_a_supervisor_creates_a_queue_then_changes_some_settings(api: QueueApi) -> None:
    body = {
        "title": "Support",
        "max_wait_s": 120,
        "time_zone": "Europe/Paris",
        "business_hours": {"mon": ["09:00-12:00", "16:00-17:00"], "Tuesday": ["09:00-17:00"]},
        "holidays": ["2026-12-25"],
        "after_hours_action": "continue",
        "max_callers": 10,
    }

    status, queue = await api.call("PUT", "/queues/support", body=body)

    assert status == 200, queue
    assert_schema("Queue", queue)
    assert queue["business_hours"] == {"mon": ["09:00-12:00", "16:00-17:00"], "tue": ["09:00-17:00"]}
    assert queue["open_now"] is False, "the fake clock reads Monday 15:00 in Paris"
    stored = api.store.queues.queues["support"]
    assert (stored.max_wait_s, stored.after_hours_action, stored.time_zone) == (
        120,
        ExitAction.CONTINUE,
        "Europe/Paris",
    )

    status, queue = await api.call("PUT", "/queues/support", body={"max_wait_s": 90, "business_hours": None})

    assert (status, queue["max_wait_s"], queue["title"], queue["business_hours"]) == (
        200,
        90,
        "Support",
        None,
    )
    assert queue["holidays"] == ["2026-12-25"] and queue["open_now"] is True
    assert [e.detail for e in api.audit.entries] == [
        {"fields": sorted(body)},
        {"fields": ["business_hours", "max_wait_s"]},
    ]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"max_wait_s": "ten"}, "max_wait_s must be a whole number"),
        ({"max_wait_s": 0}, "max_wait_s must be at least 1"),
        ({"join_empty": "yes"}, "true or false"),
        ({"after_hours_action": "sing"}, "after_hours_action must be one of"),
        ({"time_zone": "Atlantis/City"}, "unknown time zone"),
        ({"business_hours": {"mon": ["9-5"]}}, "HH:MM-HH:MM"),
        ({"business_hours": ["mon"]}, "weekday"),
        ({"holidays": ["Christmas"]}, "YYYY-MM-DD"),
        ({"holidays": "2026-12-25"}, "list"),
        ({"colour": "blue"}, "unknown field"),
        ({"max_callers": 1.5}, "whole number"),
    ],
)
async def test_bad_queue_settings_are_refused(api: QueueApi, body: object, message: str) -> None:
    status, answer = await api.call("PUT", "/queues/sales", body=body)

    assert (status, answer["error"]) == (400, "invalid_request"), answer
    assert message in answer["message"]
    assert api.store.queues.queues["sales"].max_wait_s == 600


async def test_a_bad_queue_name_is_refused(api: QueueApi) -> None:
    status, answer = await api.call("PUT", "/queues/sales,evil", body={})

    assert (status, answer["error"]) == (400, "invalid_request")


async def test_the_live_queue_shows_waiting_callers_and_agents_by_state(api: QueueApi) -> None:
    await api.service.login(OTHER_AGENT, actor="test")
    await api.service.pause(OTHER_AGENT, actor="test")
    for offset, call_id in enumerate(("c1", "c2")):
        await api.service.handle(
            CallArrived(
                call_id=call_id,
                channel_id=call_id,
                linkedid=call_id,
                caller=parse_phone(f"+1415555010{offset}"),
                caller_name=f"Caller {offset}",
                queue="sales",
                at=api.clock.now(),
            )
        )
        api.clock.advance(10)

    status, live = await api.call("GET", "/queues/sales/live")

    assert status == 200, live
    assert_schema("QueueLive", live)
    assert [(w["call_id"], w["position"], w["wait_s"], w["caller"]) for w in live["waiting"]] == [
        ("c1", 1, 20.0, "+14155550100"),
        ("c2", 2, 10.0, "+14155550101"),
    ]
    assert [(a["agent_id"], a["state"]) for a in live["agents"]] == [
        (AGENT_ID, "logged_out"),
        (OTHER_AGENT, "paused"),
    ]
    assert live["agents_by_state"] == {
        "logged_out": 1,
        "available": 0,
        "ringing": 0,
        "busy": 0,
        "wrap_up": 0,
        "paused": 1,
    }
    assert live["open_now"] is True


async def test_live_of_an_unknown_queue_is_404_and_agents_may_not_see_it(api: QueueApi) -> None:
    status, answer = await api.call("GET", "/queues/ghost/live")
    assert (status, answer["error"]) == (404, "not_found")
    status, answer = await api.call("GET", "/queues/sales/live", role=Role.AGENT)
    assert (status, answer["error"]) == (403, "forbidden")
    status, answer = await api.call("PUT", "/queues/sales", role=Role.AGENT, body={})
    assert (status, answer["error"]) == (403, "forbidden")


async def test_without_a_queue_service_the_routes_answer_503(make_api: MakeApi) -> None:
    api = await make_api()

    response = await api.client.get("/api/v1/queues", headers=api.as_role(Role.SUPERVISOR))

    await assert_error(response, 503, "unavailable", "queue service is not running")
