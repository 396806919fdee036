"""The statistics routes and /metrics over a real statistics service on SQLite (service)."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client import CollectorRegistry
from pytest_aiohttp import AiohttpClient

from callcenter.api.app import build_api
from callcenter.api.stats import STATS_SERVICE
from callcenter.api.stats_metrics import StatsCollector
from callcenter.auth.service import AuthService
from callcenter.bus import Delivery
from callcenter.config import DatabaseSettings, HttpSettings
from callcenter.model.events import (
    CallbackStateChanged,
    CallEnded,
    CallQueued,
    DomainEvent,
    SmsConsentChanged,
    SmsStatusChanged,
    VoicemailRecorded,
)
from callcenter.model.vocabulary import ActorKind, CallbackKind, CallbackState, CallOutcome, EntryPoint, Role
from callcenter.stats.definitions import StatsConfig
from callcenter.stats.service import StatsService
from callcenter.store.database import create_engine, migrate
from callcenter.store.sql_stats import SqlStatsRepository
from tests.conftest import FakeClock
from tests.fakes.store import InMemoryAuditLog, InMemoryTokenRepository
from tests.service.api.conftest import assert_error, assert_schema, healthy

T0 = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)


@dataclass
class StatsApi:
    client: TestClient[web.Request, web.Application]
    stats: StatsService
    clock: FakeClock
    secrets: dict[Role, str] = field(default_factory=dict)

    async def get(self, path: str, role: Role = Role.SUPERVISOR) -> tuple[int, Any]:
        response = await self.client.get(
            f"/api/v1{path}", headers={"Authorization": f"Bearer {self.secrets[role]}"}
        )
        if response.content_type == "application/json":
            return response.status, await response.json()
        return response.status, await response.text()

    async def event(self, event: DomainEvent) -> None:
        """What the tail and the materialiser do with one event."""
        await self.stats.observe(event)
        await self.stats.handle(Delivery(message_id="1-0", event=event, deliveries=1))


def ended(call_id: str, outcome: CallOutcome, at: datetime, **kw: Any) -> CallEnded:
    return CallEnded(
        event_id=call_id,
        occurred_at=at,
        call_id=call_id,
        outcome=outcome,
        entry_point=EntryPoint.ARI,
        queue=kw.pop("queue", "sales"),
        caller=kw.pop("caller", "+14155550100"),
        **kw,
    )


@pytest.fixture
async def api(aiohttp_client: AiohttpClient, tmp_path: Path) -> AsyncIterator[StatsApi]:
    settings = DatabaseSettings(url=f"sqlite+aiosqlite:///{tmp_path / 'cc.db'}")
    await migrate(settings)
    engine = create_engine(settings)
    clock = FakeClock(T0)
    stats = StatsService(SqlStatsRepository(engine), clock, StatsConfig(average_value=100.0))
    stats.know_queues(["sales", "support"])
    await stats.load_today()
    auth = AuthService(InMemoryTokenRepository(), InMemoryAuditLog(), clock)
    registry = CollectorRegistry()
    registry.register(StatsCollector(stats))
    app = build_api(
        auth=auth,
        health_checks={"db": healthy, "redis": healthy, "ari": None},
        registry=registry,
        settings=HttpSettings(),
    )
    app[STATS_SERVICE] = stats
    result = StatsApi(await aiohttp_client(app), stats, clock)
    for role in Role:
        _, result.secrets[role] = await auth.create_token(
            role=role, agent_id="a1" if role is Role.AGENT else None, label="t", expires_at=None, actor="test"
        )
    yield result
    await engine.dispose()


async def test_live_figures_by_the_dictionary_names(api: StatsApi) -> None:
    await api.event(
        CallQueued(event_id="queued:w1", occurred_at=T0 - timedelta(seconds=30), call_id="w1", queue="sales")
    )
    await api.event(
        ended("a1", CallOutcome.ANSWERED, T0 - timedelta(minutes=5), wait_s=10, talk_s=60, agent_id="bob")
    )
    await api.event(
        ended("m1", CallOutcome.ABANDONED, T0 - timedelta(minutes=4), wait_s=40, caller="+14155550111")
    )

    status, body = await api.get("/stats/live")

    assert status == 200, body
    assert_schema("StatsLive", body)
    assert set(body) == {"overall", "queues", "at"}
    assert body["overall"]["calls_waiting"] == 1 and body["overall"]["longest_wait_s"] == 30.0
    sales = body["queues"]["sales"]
    assert (sales["calls_offered"], sales["calls_answered"], sales["calls_abandoned"]) == (2, 1, 1)
    assert sales["service_level"] == 0.5 and sales["revenue_at_risk"] == 10.0
    assert body["queues"]["support"]["service_level"] is None
    assert body["overall"]["wait_estimate_rmse_s"] is None  # no announced wait scored: no figure


async def test_unknown_queue_answers_404(api: StatsApi) -> None:
    response = await api.client.get(
        "/api/v1/stats/live?queue=nope", headers={"Authorization": f"Bearer {api.secrets[Role.SUPERVISOR]}"}
    )
    await assert_error(response, 404, "not_found", "nope")
    status, _ = await api.get("/stats/intervals?queue=sales,nope")
    assert status == 404


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("since=2026-11-23T10:00:00%2B00:00&until=2026-11-23T09:00:00%2B00:00", "until must be after since"),
        ("since=2020-01-01T00:00:00%2B00:00&until=2026-01-01T00:00:00%2B00:00", "longer than 366 days"),
        ("since=2026-11-23T10:00:00", "needs a UTC offset"),
        ("since=yesterday", "ISO 8601"),
        ("weekday=mon,funday", "weekday"),
        ("hours=9-17", "hours must look like"),
        ("hours=17:00-09:00", "ends before"),
        ("period=year", "period must be one of"),
        ("by=agent", "by must be"),
    ],
)
async def test_malformed_history_filters_answer_400(api: StatsApi, query: str, message: str) -> None:
    response = await api.client.get(
        f"/api/v1/stats/intervals?{query}",
        headers={"Authorization": f"Bearer {api.secrets[Role.SUPERVISOR]}"},
    )
    await assert_error(response, 400, "invalid_request", message)


async def test_intervals_rollups_filters_and_csv(api: StatsApi) -> None:
    # Monday 23 November: two calls at 09:05 and 14:20; Tuesday: one at 10:00.
    await api.event(ended("a1", CallOutcome.ANSWERED, T0.replace(hour=9, minute=5), wait_s=5, talk_s=30))
    await api.event(ended("a2", CallOutcome.ANSWERED, T0.replace(hour=14, minute=20), wait_s=50, talk_s=30))
    await api.event(
        ended("a3", CallOutcome.ABANDONED, T0.replace(hour=14, minute=21), wait_s=50, caller="+1415555")
    )
    await api.event(
        ended("t1", CallOutcome.ANSWERED, T0 + timedelta(hours=20), wait_s=1, talk_s=10, queue="support")
    )
    week = "since=2026-11-23T00:00:00%2B00:00&until=2026-11-30T00:00:00%2B00:00"

    _, intervals = await api.get(f"/stats/intervals?{week}")
    _, days = await api.get(f"/stats/intervals?{week}&period=day&by=all")
    _, mondays_pm = await api.get(f"/stats/intervals?{week}&weekday=mon&hours=12:00-18:00&queue=sales")
    _, text = await api.get(f"/stats/intervals.csv?{week}&period=week")

    assert_schema("StatsIntervals", intervals)
    assert [(r["queue"], r["start"][11:16], r["calls_offered"]) for r in intervals["items"]] == [
        ("sales", "09:00", 1),
        ("sales", "14:15", 2),
        ("support", "10:00", 1),
    ]
    assert [(r["start"][:10], r["calls_offered"], r["service_level"]) for r in days["items"]] == [
        ("2026-11-23", 3, round(1 / 3, 4)),
        ("2026-11-24", 1, 1.0),
    ]
    assert [(r["calls_offered"], r["calls_answered"]) for r in mondays_pm["items"]] == [(2, 1)]
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [(r["queue"], r["calls_offered"], r["service_level_answered"]) for r in rows] == [
        ("sales", "3", "0.5"),
        ("support", "1", "1.0"),
    ]


async def test_missed_list_with_closure_and_who_closed_it(api: StatsApi) -> None:
    await api.event(
        ended("m1", CallOutcome.ABANDONED, T0 - timedelta(hours=2), wait_s=40, caller="+14155550100")
    )
    await api.event(
        ended(
            "m2", CallOutcome.UNANSWERED_TIMEOUT, T0 - timedelta(hours=1), wait_s=600, caller="+14155550199"
        )
    )
    await api.event(
        ended("r1", CallOutcome.ANSWERED, T0 - timedelta(minutes=30), wait_s=3, talk_s=60, agent_id="bob")
    )

    _, everything = await api.get("/stats/missed")
    _, still_open = await api.get("/stats/missed?status=open")
    status, bad = await api.get("/stats/missed?status=maybe")

    for item in everything["items"]:
        assert_schema("MissedCall", item)
    closed = {i["call_id"]: i for i in everything["items"]}["m1"]
    assert (closed["status"], closed["closed_by_agent"], closed["closed_by_call"]) == ("closed", "bob", "r1")
    assert [i["call_id"] for i in still_open["items"]] == ["m2"]
    assert status == 400 and "status" in bad["message"]


async def test_a_redelivered_event_is_counted_once_in_history(api: StatsApi) -> None:
    event = ended("a1", CallOutcome.ANSWERED, T0 - timedelta(minutes=5), wait_s=5, talk_s=30)
    for _ in range(3):
        await api.event(event)

    _, body = await api.get("/stats/intervals")

    assert [r["calls_offered"] for r in body["items"]] == [1]


async def test_rebuild_is_for_admins_and_keeps_the_figures(api: StatsApi) -> None:
    await api.event(ended("a1", CallOutcome.ANSWERED, T0 - timedelta(minutes=5), wait_s=5, talk_s=30))
    response = await api.client.post(
        "/api/v1/stats/rebuild", headers={"Authorization": f"Bearer {api.secrets[Role.SUPERVISOR]}"}
    )
    assert response.status == 403


async def test_metrics_export_live_gauges_per_queue_and_no_null_figures(api: StatsApi) -> None:
    await api.event(
        CallQueued(event_id="queued:w1", occurred_at=T0 - timedelta(seconds=30), call_id="w1", queue="sales")
    )
    await api.event(ended("a1", CallOutcome.ANSWERED, T0 - timedelta(minutes=5), wait_s=5, talk_s=30))

    text = await (await api.client.get("/metrics")).text()

    assert 'callcenter_stats_calls_waiting{queue="sales"} 1.0' in text
    assert 'callcenter_stats_calls_waiting{queue=""} 1.0' in text
    assert 'callcenter_stats_service_level_answered{queue="sales"} 1.0' in text
    assert 'callcenter_stats_service_level{queue="support"}' not in text
    assert 'callcenter_calls_ended_total{outcome="answered",queue="sales"} 1.0' in text


async def test_the_daily_report_is_html_with_a_png_chart(api: StatsApi) -> None:
    await api.event(ended("a1", CallOutcome.ANSWERED, T0 - timedelta(hours=2), wait_s=5, talk_s=30))
    await api.event(
        ended("m1", CallOutcome.ABANDONED, T0 - timedelta(hours=1), wait_s=40, caller="+14155550111")
    )

    status, page = await api.get("/reports/daily?date=2026-11-23")
    chart = await api.client.get(
        "/api/v1/reports/daily.png?date=2026-11-23",
        headers={"Authorization": f"Bearer {api.secrets[Role.SUPERVISOR]}"},
    )
    bad, body = await api.get("/reports/daily?date=23/11/2026")

    assert status == 200 and "Daily summary, Monday 23 November 2026" in page
    assert "/api/v1/reports/daily.png?date=2026-11-23" in page
    assert "€" not in page and "1000" not in page
    assert chart.status == 200 and chart.content_type == "image/png"
    assert (await chart.read())[:8] == b"\x89PNG\r\n\x1a\n"
    assert bad == 400 and "YYYY-MM-DD" in body["message"]


async def test_an_agent_sees_their_own_figures_and_no_one_elses(api: StatsApi) -> None:
    await api.event(
        ended("a1", CallOutcome.ANSWERED, T0 - timedelta(minutes=5), wait_s=5, talk_s=40, agent_id="a1")
    )
    await api.event(
        ended("a2", CallOutcome.ANSWERED, T0 - timedelta(minutes=4), wait_s=5, talk_s=80, agent_id="a1")
    )

    status, own = await api.get("/agents/a1/stats", Role.AGENT)
    other, _ = await api.get("/agents/bob/stats", Role.AGENT)
    supervisor, bob = await api.get("/agents/bob/stats")

    assert status == 200, own
    assert_schema("AgentStats", own)
    assert (own["agent_calls_answered"], own["agent_talk_s"], own["agent_aht_s"]) == (2, 120.0, 60.0)
    assert other == 403
    assert supervisor == 200 and bob["agent_calls_answered"] == 0 and bob["agent_aht_s"] is None


def callback(state: CallbackState, at: datetime, attempts: int = 0, **kw: Any) -> CallbackStateChanged:
    return CallbackStateChanged(
        event_id=f"callback:cb1:{state.value}:{attempts}",
        occurred_at=at,
        callback_id="cb1",
        queue="sales",
        number="+14155550100",
        kind=CallbackKind.KEEP_PLACE,
        state=state,
        window_start=T0 - timedelta(hours=2),
        window_end=T0 - timedelta(hours=1),
        attempts=attempts,
        actor_kind=kw.pop("actor_kind", ActorKind.SYSTEM),
        actor=kw.pop("actor", "dispatcher"),
        **kw,
    )


async def test_follow_up_figures_in_the_live_json_the_missed_list_and_metrics(api: StatsApi) -> None:
    await api.event(
        ended("m1", CallOutcome.ABANDONED, T0 - timedelta(hours=3), wait_s=40, caller="+14155550100")
    )
    await api.event(callback(CallbackState.REQUESTED, T0 - timedelta(hours=2)))
    await api.event(
        VoicemailRecorded(
            event_id="voicemail:v1:1",
            occurred_at=T0 - timedelta(minutes=90),
            voicemail_id="v1",
            queue="sales",
            caller="+14155550100",
        )
    )
    status, before = await api.get("/stats/live")
    await api.event(callback(CallbackState.SCHEDULED, T0 - timedelta(minutes=50)))
    await api.event(callback(CallbackState.DIALING, T0 - timedelta(minutes=45), attempts=1))
    await api.event(
        callback(
            CallbackState.CONNECTED,
            T0 - timedelta(minutes=44),
            attempts=1,
            actor_kind=ActorKind.AGENT,
            actor="bob",
        )
    )
    for event in (
        SmsStatusChanged(event_id="sms:s1:sent", occurred_at=T0, message_id="s1", status="sent"),
        SmsStatusChanged(event_id="sms:s1:delivered", occurred_at=T0, message_id="s1", status="delivered"),
        SmsConsentChanged(event_id="consent:k:1", occurred_at=T0, key="k", program="all", action="opt_out"),
    ):
        await api.event(event)

    _, after = await api.get("/stats/live")
    _, missed = await api.get("/stats/missed")
    text = await (await api.client.get("/metrics")).text()

    assert status == 200
    assert_schema("StatsLive", after)
    sales = before["queues"]["sales"]
    assert (sales["callbacks_pending"], sales["callbacks_due_15m"], sales["callbacks_overdue"]) == (1, 1, 1)
    assert (sales["voicemails_untranscribed"], sales["voicemails_awaiting_callback"]) == (1, 1)
    assert sales["promise_kept_rate"] == 0.0  # its window ended an hour ago, not dialled yet
    sales = after["queues"]["sales"]
    assert (sales["callbacks_pending"], sales["callbacks_overdue"], sales["missed_closed"]) == (1, 0, 1)
    assert sales["promise_kept_rate"] == 0.0  # dialled after the window: still broken
    assert (after["overall"]["sms_sent"], after["overall"]["sms_delivered"]) == (1, 1)
    assert after["overall"]["sms_opted_out"] == 1 and sales["sms_sent"] is None
    [item] = missed["items"]
    assert (item["status"], item["closed_by_agent"], item["closed_by_call"]) == (
        "closed",
        "bob",
        "callback:cb1",
    )
    assert 'callcenter_stats_callbacks_pending{queue="sales"} 1.0' in text
    assert 'callcenter_stats_sms_delivered{queue=""} 1.0' in text
    assert 'callcenter_stats_promise_kept_rate{queue="sales"} 0.0' in text
    assert "callcenter_stats_wait_estimate_rmse_s{" not in text  # nothing scored: left out, not 0
