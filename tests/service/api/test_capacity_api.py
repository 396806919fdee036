"""``/api/v1``: a caller's estimate, a queue's forecast and agents' schedules, over the in-memory fakes."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client import CollectorRegistry
from pytest_aiohttp import AiohttpClient

from callcenter.api.app import build_api
from callcenter.api.capacity import ESTIMATE_SERVICE
from callcenter.api.queues import QUEUE_SERVICE
from callcenter.auth.service import AuthService
from callcenter.capacity.service import EstimateService
from callcenter.config import HttpSettings
from callcenter.model.records import AgentRecord, CallRecord, QueueRecord
from callcenter.model.vocabulary import CallOutcome, EntryPoint, Role
from callcenter.queue.service import QueueService
from tests.fakes.bus import InMemoryEventBus
from tests.fakes.capacity import InMemoryPredictionLog, InMemoryScheduleRepository
from tests.fakes.store import InMemoryAuditLog, InMemoryStore, InMemoryTokenRepository
from tests.fakes.telephony import RecordingCallControl
from tests.service.api.conftest import AGENT_ID, MakeApi, assert_error, assert_schema, healthy
from tests.service.queue.conftest import Harness

if TYPE_CHECKING:
    from tests.conftest import FakeClock

OTHER_AGENT = "a2"


def _no_constants(name: str) -> object:
    raise AssertionError(f"the API answered {name}, which is not JSON")


@dataclass
class CapacityApi:
    client: TestClient[web.Request, web.Application]
    queue: Harness
    estimates: EstimateService
    schedules: InMemoryScheduleRepository
    audit: InMemoryAuditLog
    secrets: dict[Role, str] = field(default_factory=dict)

    async def call(
        self, method: str, path: str, *, role: Role = Role.SUPERVISOR, body: object = None
    ) -> tuple[int, Any]:
        kwargs: dict[str, Any] = {"headers": {"Authorization": f"Bearer {self.secrets[role]}"}}
        if body is not None:
            kwargs["json"] = body
        response = await self.client.request(method, "/api/v1" + path, **kwargs)
        return response.status, json.loads(await response.text(), parse_constant=_no_constants)

    async def history(self, weeks: int = 4, *, talk_s: float = 100.0) -> None:
        """Ten answered calls at this hour on each of the last ``weeks`` same weekdays."""
        now = self.queue.clock.now()
        for week in range(1, weeks + 1):
            for i in range(10):
                at = now - timedelta(weeks=week) + timedelta(seconds=30 * i)
                await self.queue.store.calls.upsert(
                    CallRecord(
                        id=f"h{week}-{i}",
                        channel_id="h",
                        linkedid="h",
                        entry_point=EntryPoint.ARI,
                        queue="sales",
                        arrived_at=at,
                        queued_at=at,
                        answered_at=at + timedelta(seconds=20),
                        wait_s=20.0,
                        talk_s=talk_s,
                        outcome=CallOutcome.ANSWERED,
                    )
                )


@pytest.fixture
async def api(aiohttp_client: AiohttpClient, clock: FakeClock) -> CapacityApi:
    """Queue ``sales`` (10 s wrap-up), agents a1 and a2 logged in; the queue and estimate services running."""
    store = InMemoryStore.create()
    await store.queues.put(QueueRecord(name="sales", wrap_up_s=10))
    for agent_id in (AGENT_ID, OTHER_AGENT):
        await store.agents.add(
            AgentRecord(id=agent_id, name=agent_id.upper(), endpoint=f"PJSIP/{agent_id}", queues=("sales",))
        )
    control, bus, audit = RecordingCallControl(), InMemoryEventBus(), InMemoryAuditLog()
    queue = QueueService(control, store.calls, store.agents, store.queues, bus, clock)
    await queue.start()
    for agent_id in (AGENT_ID, OTHER_AGENT):
        await queue.login(agent_id, actor="test")
    schedules = InMemoryScheduleRepository(store.agents)
    estimates = EstimateService(
        store.queues, store.calls, schedules, InMemoryPredictionLog(), clock, live=queue
    )
    auth = AuthService(InMemoryTokenRepository(), audit, clock)
    app = build_api(
        auth=auth,
        health_checks={"db": healthy, "redis": healthy, "ari": None},
        registry=CollectorRegistry(),
        settings=HttpSettings(),
    )
    app[QUEUE_SERVICE] = queue
    app[ESTIMATE_SERVICE] = estimates
    harness = Harness(queue, control, store, bus, clock)
    result = CapacityApi(await aiohttp_client(app), harness, estimates, schedules, audit)
    for role in Role:
        _, result.secrets[role] = await auth.create_token(
            role=role,
            agent_id=AGENT_ID if role is Role.AGENT else None,
            label=role.value,
            expires_at=None,
            actor="test-setup",
        )
    audit.entries.clear()
    return result


async def _both_agents_busy(api: CapacityApi) -> None:
    for call_id, agent_id in (("c1", AGENT_ID), ("c2", OTHER_AGENT)):
        await api.queue.arrive(call_id)
        await api.queue.agent_answers(agent_id, call_id)


# -- estimate -----------------------------------------------------------------------------------------------


async def test_a_supervisor_reads_the_estimate_of_a_waiting_caller(api: CapacityApi) -> None:
    await api.history()
    await _both_agents_busy(api)
    await api.queue.arrive("c3")
    api.queue.clock.advance(12)

    status, body = await api.call("GET", "/queues/sales/estimate?call_id=c3")

    assert status == 200, body
    assert_schema("WaitEstimate", body)
    assert (body["available"], body["reason"], body["position"], body["ahead"]) == (True, None, 1, 0)
    assert (body["agents_staffed"], body["agents_free"], body["elapsed_s"]) == (2, 0, 12.0)
    assert body["aht_s"] == pytest.approx(110.0) and body["patience_s"] is None
    qla = body["estimate"]
    assert qla["predictor"] == "qla" and 0 < qla["mean_s"] < qla["p80_s"] < qla["p90_s"]
    assert datetime.fromisoformat(body["by"]) == api.queue.clock.now() + timedelta(seconds=qla["p80_s"])
    assert [b["predictor"] for b in body["baselines"]] == ["asterisk", "hol", "les"]


async def test_an_estimate_for_a_place_in_line_grows_with_the_place(api: CapacityApi) -> None:
    await api.history()
    await _both_agents_busy(api)

    _, second = await api.call("GET", "/queues/sales/estimate?position=2")
    _, tenth = await api.call("GET", "/queues/sales/estimate?position=10")
    _, joining = await api.call("GET", "/queues/sales/estimate")

    assert second["estimate"]["mean_s"] < tenth["estimate"]["mean_s"]
    assert joining["position"] == 1 and joining["call_id"] is None


async def test_with_nobody_staffed_the_estimate_is_unavailable_with_a_reason_not_infinite(
    api: CapacityApi,
) -> None:
    await api.history()
    for agent_id in (AGENT_ID, OTHER_AGENT):
        await api.queue.service.logout(agent_id, actor="test")

    status, body = await api.call("GET", "/queues/sales/estimate")

    assert status == 200
    assert_schema("WaitEstimate", body)
    assert (body["available"], body["reason"], body["estimate"], body["by"]) == (
        False,
        "no_agents",
        None,
        None,
    )
    assert "no agent" in body["message"] and body["baselines"] == []


async def test_a_queue_without_history_has_no_estimate_until_a_call_is_answered(api: CapacityApi) -> None:
    await _both_agents_busy(api)

    _, body = await api.call("GET", "/queues/sales/estimate")

    assert (body["available"], body["reason"], body["aht_s"]) == (False, "no_history", None)


@pytest.mark.parametrize(
    ("query", "status", "code", "message"),
    [
        ("position=abc", 400, "invalid_request", "position must be a whole number"),
        ("position=0", 400, "invalid_request", "position must be a whole number from 1"),
        ("position=100002", 400, "invalid_request", "to 100001"),
        ("position=-3", 400, "invalid_request", "position"),
        ("position=2&call_id=c1", 400, "invalid_request", "not both"),
        ("call_id=nobody", 404, "not_found", "not waiting"),
    ],
)
async def test_bad_estimate_requests_answer_the_error_envelope(
    api: CapacityApi, query: str, status: int, code: str, message: str
) -> None:
    response = await api.client.get(
        f"/api/v1/queues/sales/estimate?{query}",
        headers={"Authorization": f"Bearer {api.secrets[Role.ADMIN]}"},
    )
    await assert_error(response, status, code, message)


async def test_an_unknown_queue_has_no_estimate_and_no_forecast(api: CapacityApi) -> None:
    headers = {"Authorization": f"Bearer {api.secrets[Role.SUPERVISOR]}"}
    for path in ("estimate", "forecast"):
        response = await api.client.get(f"/api/v1/queues/nope/{path}", headers=headers)
        await assert_error(response, 404, "not_found", "queue 'nope' not found")


# -- forecast -------------------------------------------------------------------------------------------------


async def test_a_supervisor_reads_a_days_forecast_with_the_staffing_scheduled(api: CapacityApi) -> None:
    await api.history()
    await api.call("PUT", f"/agents/{AGENT_ID}/schedule", body={"shifts": ["mon 08:00-16:00"]})
    await api.call(
        "PUT",
        f"/agents/{OTHER_AGENT}/schedule",
        body={"shifts": [{"day": "mon", "start": "14:00", "end": "22:00"}]},
    )

    status, body = await api.call("GET", "/queues/sales/forecast?date=2026-11-30&target=0.9")

    assert status == 200, body
    assert_schema("QueueForecast", body)
    assert (body["date"], body["time_zone"], body["target_service_level"], body["answer_within_s"]) == (
        "2026-11-30",
        "UTC",
        0.9,
        20.0,
    )
    assert body["history"]["calls"] == 40 and body["history"]["aht_s"] == pytest.approx(110.0)
    intervals = body["intervals"]
    assert len(intervals) == 96
    two_pm = intervals[56]
    assert two_pm["start"] == "2026-11-30T14:00:00+00:00"
    assert two_pm["arrivals"] == pytest.approx(10.0) and two_pm["basis"] == "weekly"
    assert two_pm["staffed_agents"] == 2.0 and two_pm["staffing"] == [{"agents": 2, "minutes": 15}]
    assert two_pm["agents_required"] >= 1 and 0 < two_pm["service_level"] <= 1
    assert intervals[0]["staffed_agents"] == 0.0 and intervals[0]["service_level"] == 1.0


async def test_without_a_date_the_forecast_is_for_today(api: CapacityApi) -> None:
    await api.history()

    _, body = await api.call("GET", "/queues/sales/forecast")

    assert body["date"] == api.queue.clock.now().date().isoformat()


async def test_a_queue_without_history_has_no_forecast_and_says_why(api: CapacityApi) -> None:
    response = await api.client.get(
        "/api/v1/queues/sales/forecast", headers={"Authorization": f"Bearer {api.secrets[Role.SUPERVISOR]}"}
    )

    await assert_error(response, 400, "invalid_request", "queue 'sales' has no usable call history")


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("date=30/11/2026", "date must be a date as YYYY-MM-DD"),
        ("date=2030-01-01", "within 366 days"),
        ("target=1.5", "target must be strictly between 0 and 1"),
        ("target=0", "target must be strictly between 0 and 1"),
        ("target=nan", "target must be strictly between 0 and 1"),
        ("target=high", "target must be a number"),
    ],
)
async def test_bad_forecast_requests_answer_400_with_the_reason(
    api: CapacityApi, query: str, message: str
) -> None:
    await api.history()
    response = await api.client.get(
        f"/api/v1/queues/sales/forecast?{query}",
        headers={"Authorization": f"Bearer {api.secrets[Role.SUPERVISOR]}"},
    )

    await assert_error(response, 400, "invalid_request", message)


# -- schedules -----------------------------------------------------------------------------------------------


async def test_a_supervisor_sets_and_reads_an_agents_schedule_and_it_is_audited(api: CapacityApi) -> None:
    body = {"shifts": [{"day": "Tuesday", "start": "9:00", "end": "17:00"}, "mon 22:00-06:00"]}

    status, stored = await api.call("PUT", f"/agents/{AGENT_ID}/schedule", body=body)
    _, read = await api.call("GET", f"/agents/{AGENT_ID}/schedule")

    assert status == 200, stored
    assert_schema("Schedule", stored)
    assert stored == read
    assert stored["shifts"] == [
        {"day": "mon", "start": "22:00", "end": "06:00"},
        {"day": "tue", "start": "09:00", "end": "17:00"},
    ]
    assert stored["hours_per_week"] == 16.0 and stored["updated_by"].startswith("token:")
    [entry] = api.audit.entries
    assert entry.action == "PUT /api/v1/agents/{agent_id}/schedule"
    assert entry.detail == {"shifts": ["mon 22:00-06:00", "tue 09:00-17:00"]}


async def test_an_agent_never_scheduled_has_no_shifts(api: CapacityApi) -> None:
    status, body = await api.call("GET", f"/agents/{OTHER_AGENT}/schedule")

    assert status == 200
    assert_schema("Schedule", body)
    assert (body["shifts"], body["updated_at"], body["hours_per_week"]) == ([], None, 0.0)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"shifts": ["mon 09:00-17:00", "mon 16:00-18:00"]}, "mon 09:00-17:00 and mon 16:00-18:00 overlap"),
        ({"shifts": ["sun 22:00-02:00", {"day": "mon", "start": "01:00", "end": "03:00"}]}, "overlap"),
        ({"shifts": []}, "at least one shift"),
        ({}, "shifts is required"),
        ({"shifts": "mon 09:00-17:00"}, "shifts is required"),
        ({"shifts": ["mon 09:00-09:00"]}, "shifts[0]: shift mon 09:00-09:00 is empty"),
        (
            {"shifts": ["mon 09:00-17:00", {"day": "funday", "start": "09:00", "end": "10:00"}]},
            "shifts[1]: day",
        ),
        ({"shifts": [{"day": "mon", "start": "09:00"}]}, "shifts[0]: end must be HH:MM"),
        (
            {"shifts": [{"day": "mon", "start": "09:00", "end": "10:00", "queue": "x"}]},
            "unknown field(s): queue",
        ),
        ({"shifts": [42]}, "shifts[0]: a shift reads like"),
        ({"shifts": ["mon 09:00-17:00"], "agent": "a1"}, "unknown field(s): agent"),
        ({"shifts": [f"mon {h:02d}:00-{h:02d}:30" for h in range(24)] * 3}, "at most 50 shifts"),
    ],
)
async def test_a_bad_schedule_is_refused_with_the_reason_and_the_old_one_kept(
    api: CapacityApi, body: dict[str, object], message: str
) -> None:
    await api.call("PUT", f"/agents/{AGENT_ID}/schedule", body={"shifts": ["wed 09:00-17:00"]})
    headers = {"Authorization": f"Bearer {api.secrets[Role.SUPERVISOR]}"}

    response = await api.client.put(f"/api/v1/agents/{AGENT_ID}/schedule", json=body, headers=headers)

    await assert_error(response, 400, "invalid_request", message)
    _, kept = await api.call("GET", f"/agents/{AGENT_ID}/schedule")
    assert kept["shifts"] == [{"day": "wed", "start": "09:00", "end": "17:00"}]


async def test_the_schedule_of_an_unknown_agent_is_not_found(api: CapacityApi) -> None:
    headers = {"Authorization": f"Bearer {api.secrets[Role.SUPERVISOR]}"}

    get = await api.client.get("/api/v1/agents/nobody/schedule", headers=headers)
    put = await api.client.put(
        "/api/v1/agents/nobody/schedule", json={"shifts": ["mon 09:00-17:00"]}, headers=headers
    )

    await assert_error(get, 404, "not_found", "agent 'nobody' not found")
    await assert_error(put, 404, "not_found", "agent 'nobody' not found")


async def test_an_agent_may_not_read_even_their_own_schedule(api: CapacityApi) -> None:
    response = await api.client.get(
        f"/api/v1/agents/{AGENT_ID}/schedule", headers={"Authorization": f"Bearer {api.secrets[Role.AGENT]}"}
    )

    await assert_error(response, 403, "forbidden")


async def test_without_an_estimate_service_the_capacity_routes_are_unavailable(make_api: MakeApi) -> None:
    plain = await make_api()
    headers = plain.as_role(Role.ADMIN)

    for method, path in (
        ("GET", "/api/v1/queues/sales/estimate"),
        ("GET", "/api/v1/queues/sales/forecast"),
        ("GET", "/api/v1/agents/a1/schedule"),
        ("PUT", "/api/v1/agents/a1/schedule"),
    ):
        response = await plain.client.request(
            method, path, headers=headers, json={"shifts": ["mon 09:00-17:00"]}
        )
        await assert_error(response, 503, "unavailable", "estimate service is not running")
