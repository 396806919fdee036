"""``/api/v1``: a queue's callback slots, booking (idempotent by client key), reading and cancelling."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client import CollectorRegistry
from pytest_aiohttp import AiohttpClient

from callcenter.api.app import build_api
from callcenter.api.callbacks import CALLBACK_SERVICE
from callcenter.auth.service import AuthService
from callcenter.callbacks.service import CallbackService
from callcenter.config import HttpSettings
from callcenter.model.vocabulary import ActorKind, CallbackState, Role
from tests.fakes.bus import InMemoryEventBus
from tests.fakes.callbacks import FlatDayPlanner, InMemoryCallbackRepository
from tests.fakes.store import InMemoryAuditLog, InMemoryQueueRepository, InMemoryTokenRepository
from tests.service.api.conftest import AGENT_ID, assert_error, assert_schema, healthy
from tests.service.callbacks.conftest import MONDAY_10, SALES

if TYPE_CHECKING:
    from tests.conftest import FakeClock

SLOT = "2026-11-23T14:00:00+00:00"


@dataclass
class CallbackApi:
    client: TestClient[web.Request, web.Application]
    repo: InMemoryCallbackRepository
    planner: FlatDayPlanner
    audit: InMemoryAuditLog
    secrets: dict[Role, str] = field(default_factory=dict)

    async def call(
        self, method: str, path: str, *, role: Role = Role.AGENT, body: object = None
    ) -> tuple[int, Any]:
        kwargs: dict[str, Any] = {"headers": {"Authorization": f"Bearer {self.secrets[role]}"}}
        if body is not None:
            kwargs["json"] = body
        response = await self.client.request(method, "/api/v1" + path, **kwargs)
        return response.status, json.loads(await response.text())


@pytest.fixture
async def api(aiohttp_client: AiohttpClient, clock: FakeClock) -> CallbackApi:
    clock.set(MONDAY_10)
    queues = InMemoryQueueRepository()
    await queues.put(SALES)
    repo, planner, audit = InMemoryCallbackRepository(), FlatDayPlanner(queues), InMemoryAuditLog()
    counter = iter(range(1, 1000))
    service = CallbackService(
        repo, planner, queues, InMemoryEventBus(), clock, new_id=lambda: f"cb-{next(counter)}"
    )
    auth = AuthService(InMemoryTokenRepository(), audit, clock)
    app = build_api(
        auth=auth,
        health_checks={"db": healthy, "redis": healthy, "ari": None},
        registry=CollectorRegistry(),
        settings=HttpSettings(),
    )
    app[CALLBACK_SERVICE] = service
    result = CallbackApi(await aiohttp_client(app), repo, planner, audit)
    for role in Role:
        _, result.secrets[role] = await auth.create_token(
            role=role,
            agent_id=AGENT_ID if role is Role.AGENT else None,
            label=role.value,
            expires_at=None,
            actor="t",
        )
    return result


async def test_an_agent_reads_the_offerable_slots_of_today(api: CallbackApi) -> None:
    status, body = await api.call("GET", "/queues/sales/callback-slots")
    assert status == 200, body
    assert_schema("CallbackSlots", body)
    assert body["date"] == "2026-11-23" and body["next"] is None
    assert body["items"][0]["start"] == "2026-11-23T10:15:00+00:00"
    assert all(item["offerable"] and item["remaining"] > 0 for item in body["items"])
    status, every = await api.call("GET", "/queues/sales/callback-slots?date=2026-11-24&all=true")
    assert status == 200 and len(every["items"]) == 96
    assert not every["items"][0]["offerable"]


async def test_bad_slot_queries_are_refused(api: CallbackApi) -> None:
    for query, message in (
        ("?date=tomorrow", "YYYY-MM-DD"),
        ("?all=maybe", "true or false"),
        ("?date=2027-06-01", "days ahead"),
    ):
        response = await api.client.get(
            "/api/v1/queues/sales/callback-slots" + query,
            headers={"Authorization": f"Bearer {api.secrets[Role.AGENT]}"},
        )
        await assert_error(response, 400, "invalid_request", message)
    status, body = await api.call("GET", "/queues/nope/callback-slots")
    assert (status, body["error"]) == (404, "not_found")


async def test_booking_answers_201_with_the_promise_then_200_for_the_same_client_key(
    api: CallbackApi,
) -> None:
    request = {"queue": "sales", "number": "+1 415 555 0100", "slot_start": SLOT, "client_key": "crm-42"}
    status, body = await api.call("POST", "/callbacks", body=request)
    assert status == 201, body
    assert_schema("Callback", body)
    assert body["state"] == "scheduled" and body["number"] == "+14155550100"
    assert body["promise"] == {"start": SLOT, "end": "2026-11-23T14:15:00+00:00", "early_ok": False}
    status, again = await api.call("POST", "/callbacks", body=request)
    assert (status, again["id"]) == (200, body["id"])
    assert len(api.repo.callbacks) == 1


async def test_booking_errors_are_clear(api: CallbackApi) -> None:
    base = {"queue": "sales", "number": "+14155550100", "slot_start": SLOT}
    cases = [
        ({**base, "number": "+19005550123"}, 400, "invalid_phone_number", "premium"),
        ({**base, "slot_start": "2026-11-23T14:00:00"}, 400, "invalid_request", "UTC offset"),
        ({**base, "slot_start": "2026-11-23T14:05:00+00:00"}, 400, "invalid_request", "no callback slot"),
        ({**base, "colour": "red"}, 400, "invalid_request", "unknown field"),
        ({"queue": "sales", "number": "+14155550100"}, 400, "invalid_request", "slot_start is required"),
    ]
    for body, status, code, message in cases:
        response = await api.client.post(
            "/api/v1/callbacks", json=body, headers={"Authorization": f"Bearer {api.secrets[Role.AGENT]}"}
        )
        await assert_error(response, status, code, message)
    assert api.repo.callbacks == {}


async def test_a_full_slot_and_a_second_open_callback_are_409_with_their_own_codes(api: CallbackApi) -> None:
    slots = (await api.call("GET", "/queues/sales/callback-slots"))[1]["items"]
    slot = next(s for s in slots if s["start"] == SLOT)
    for i in range(slot["remaining"]):
        status, _ = await api.call(
            "POST", "/callbacks", body={"queue": "sales", "number": f"+1415555{i:04d}", "slot_start": SLOT}
        )
        assert status == 201
    status, body = await api.call(
        "POST", "/callbacks", body={"queue": "sales", "number": "+14155559999", "slot_start": SLOT}
    )
    assert (status, body["error"]) == (409, "slot_full")
    status, body = await api.call(
        "POST",
        "/callbacks",
        body={"queue": "sales", "number": "+14155550000", "slot_start": "2026-11-23T15:00:00+00:00"},
    )
    assert (status, body["error"]) == (409, "callback_exists")


async def test_read_shows_every_change_and_cancel_on_the_customers_behalf_counts_as_theirs(
    api: CallbackApi,
) -> None:
    status, booked = await api.call(
        "POST", "/callbacks", body={"queue": "sales", "number": "+14155550100", "slot_start": SLOT}
    )
    path = f"/callbacks/{booked['id']}"
    status, detail = await api.call("GET", path)
    assert status == 200
    assert_schema("CallbackDetail", detail)
    assert [c["state"] for c in detail["changes"]] == ["requested", "scheduled"]
    assert detail["changes"][0]["actor"]["kind"] == "agent"
    status, cancelled = await api.call(
        "DELETE", path, role=Role.SUPERVISOR, body={"reason": "customer phoned back", "customer_asked": True}
    )
    assert (status, cancelled["state"]) == (200, "cancelled")
    change = api.repo.log[booked["id"]][-1]
    assert change.actor.kind is ActorKind.CUSTOMER and "customer phoned back" == change.reason
    status, again = await api.call("DELETE", path)
    assert (status, again["state"]) == (200, "cancelled")
    status, missing = await api.call("GET", "/callbacks/nope")
    assert (status, missing["error"]) == (404, "not_found")


async def test_supervisors_list_callbacks_by_queue_and_state(api: CallbackApi) -> None:
    for i in range(3):
        start = f"2026-11-23T1{4 + i}:00:00+00:00"
        body = {"queue": "sales", "number": f"+141555501{i:02d}", "slot_start": start}
        assert (await api.call("POST", "/callbacks", body=body))[0] == 201
    status, page = await api.call(
        "GET", "/callbacks?queue=sales&state=scheduled&limit=2", role=Role.SUPERVISOR
    )
    assert status == 200 and len(page["items"]) == 2 and page["next"]
    for item in page["items"]:
        assert_schema("Callback", item)
    status, rest = await api.call(
        "GET", f"/callbacks?queue=sales&state=scheduled&limit=2&cursor={page['next']}", role=Role.SUPERVISOR
    )
    assert len(rest["items"]) == 1 and rest["next"] is None
    status, body = await api.call("GET", "/callbacks?state=lost", role=Role.SUPERVISOR)
    assert (status, body["error"]) == (400, "invalid_request")
    assert {c.state for c in api.repo.callbacks.values()} == {CallbackState.SCHEDULED}


async def test_a_process_without_the_service_answers_503(
    aiohttp_client: AiohttpClient, clock: FakeClock
) -> None:
    auth = AuthService(InMemoryTokenRepository(), InMemoryAuditLog(), clock)
    app = build_api(
        auth=auth,
        health_checks={"db": healthy, "redis": healthy},
        registry=CollectorRegistry(),
        settings=HttpSettings(),
    )
    client = await aiohttp_client(app)
    _, secret = await auth.create_token(role=Role.ADMIN, agent_id=None, label="a", expires_at=None, actor="t")
    response = await client.get("/api/v1/callbacks/cb-1", headers={"Authorization": f"Bearer {secret}"})
    await assert_error(response, 503, "unavailable", "callback service")
