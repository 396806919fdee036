"""Browser sign-in (session cookie), the wallboard page, its SSE feed, thresholds and local assets (service)."""

from __future__ import annotations

import asyncio
import json
import re
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
from callcenter.api.session import COOKIE, SESSION_SERVICE, WEB_DIR, install_session_routes
from callcenter.api.stats import STATS_SERVICE, render_wallboard
from callcenter.api.wallboard import install_wallboard_routes
from callcenter.auth.service import AuthService
from callcenter.auth.sessions import RECHECK_S, SessionService
from callcenter.config import DatabaseSettings, HttpSettings
from callcenter.model.events import CallQueued
from callcenter.model.vocabulary import Role
from callcenter.stats.definitions import StatsConfig
from callcenter.stats.feed import SnapshotFeed
from callcenter.stats.service import StatsService
from callcenter.store.database import create_engine, migrate
from callcenter.store.sql_stats import SqlStatsRepository
from tests.conftest import FakeClock
from tests.fakes.store import InMemoryAuditLog, InMemoryTokenRepository
from tests.service.api.conftest import assert_error, healthy

T0 = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)


class InMemorySessionStore:
    """The ``SessionStore`` port in memory, expiring on the fake clock."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.items: dict[str, tuple[str, datetime]] = {}
        self.reads = 0

    async def put(self, session_hash: str, token_id: str, ttl_s: int) -> None:
        self.items[session_hash] = (token_id, self.clock.now() + timedelta(seconds=ttl_s))

    async def get(self, session_hash: str) -> str | None:
        self.reads += 1
        await asyncio.sleep(0)  # a real store answers later: concurrent checks overlap
        item = self.items.get(session_hash)
        if item is None or self.clock.now() >= item[1]:
            return None
        return item[0]

    async def delete(self, session_hash: str) -> None:
        self.items.pop(session_hash, None)


@dataclass
class Pages:
    client: TestClient[web.Request, web.Application]
    auth: AuthService
    audit: InMemoryAuditLog
    stats: StatsService
    clock: FakeClock
    sessions: InMemorySessionStore
    secrets: dict[Role, str] = field(default_factory=dict)

    async def sign_in(self, role: Role = Role.SUPERVISOR) -> str:
        response = await self.client.post(
            "/session", data={"token": self.secrets[role], "next": "/wallboard"}, allow_redirects=False
        )
        assert response.status == 303, await response.text()
        return response.cookies[COOKIE].value


@pytest.fixture
async def pages(aiohttp_client: AiohttpClient, tmp_path: Path) -> AsyncIterator[Pages]:
    settings = DatabaseSettings(url=f"sqlite+aiosqlite:///{tmp_path / 'cc.db'}")
    await migrate(settings)
    engine = create_engine(settings)
    clock = FakeClock(T0)
    stats = StatsService(SqlStatsRepository(engine), clock, StatsConfig())
    stats.know_queues(["sales"])
    stats.feed = SnapshotFeed(lambda: render_wallboard(stats), min_interval_s=0.01)
    audit = InMemoryAuditLog()
    auth = AuthService(InMemoryTokenRepository(), audit, clock)
    store = InMemorySessionStore(clock)
    app = build_api(
        auth=auth,
        health_checks={"db": healthy, "redis": healthy, "ari": None},
        registry=CollectorRegistry(),
        settings=HttpSettings(),
    )
    app[STATS_SERVICE] = stats
    app[SESSION_SERVICE] = SessionService(store, auth, clock, ttl_s=3600)
    install_session_routes(app)
    install_wallboard_routes(app)
    feed_task = asyncio.create_task(stats.feed.run())
    result = Pages(await aiohttp_client(app), auth, audit, stats, clock, store)
    for role in Role:
        _, result.secrets[role] = await auth.create_token(
            role=role,
            agent_id="a1" if role is Role.AGENT else None,
            label=role.value,
            expires_at=None,
            actor="t",
        )
    audit.entries.clear()
    yield result
    feed_task.cancel()
    await asyncio.gather(feed_task, return_exceptions=True)
    await engine.dispose()


async def test_the_wallboard_without_a_session_redirects_to_sign_in(pages: Pages) -> None:
    response = await pages.client.get("/wallboard", allow_redirects=False)

    assert response.status == 303
    assert response.headers["Location"] == "/signin?next=/wallboard"
    form = await (await pages.client.get("/signin?next=/wallboard")).text()
    assert "name='token'" in form and "type='password'" in form


async def test_sign_in_sets_an_httponly_strict_cookie_that_opens_the_page(pages: Pages) -> None:
    response = await pages.client.post(
        "/session",
        data={"token": pages.secrets[Role.SUPERVISOR], "next": "/wallboard"},
        allow_redirects=False,
    )

    assert response.status == 303 and response.headers["Location"] == "/wallboard"
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    assert pages.secrets[Role.SUPERVISOR] not in cookie
    page = await pages.client.get("/wallboard")
    assert page.status == 200
    assert "Content-Security-Policy" in page.headers
    html = await page.text()
    assert 'src="/static/wallboard.js"' in html and 'id="tile-calls_waiting"' in html


async def test_a_bad_token_returns_to_the_form_with_the_reason_and_no_cookie(pages: Pages) -> None:
    response = await pages.client.post(
        "/session", data={"token": "cc_" + "Q" * 43, "next": "/wallboard"}, allow_redirects=False
    )

    assert response.status == 303 and "error=unknown" in response.headers["Location"]
    assert COOKIE not in response.cookies


async def test_sign_in_never_redirects_to_another_site(pages: Pages) -> None:
    response = await pages.client.post(
        "/session",
        data={"token": pages.secrets[Role.SUPERVISOR], "next": "//evil.example/x"},
        allow_redirects=False,
    )

    assert response.headers["Location"] == "/wallboard"


async def test_an_agent_session_is_refused_the_wallboard(pages: Pages) -> None:
    await pages.sign_in(Role.AGENT)

    page = await pages.client.get("/wallboard")
    feed = await pages.client.get("/wallboard/feed")

    assert page.status == 403 and feed.status == 403
    assert "supervisor" in await page.text()


async def test_the_cookie_opens_the_json_api_for_its_role_and_ends_with_its_token(pages: Pages) -> None:
    await pages.sign_in()
    assert (await pages.client.get("/api/v1/stats/live")).status == 200
    assert (await pages.client.get("/api/v1/tokens")).status == 403  # supervisor, not admin

    tokens = await pages.auth.list_tokens(cursor=None, limit=50)
    supervisor = next(t for t in tokens.items if t.role is Role.SUPERVISOR)
    await pages.auth.revoke(supervisor.id, actor="test")
    pages.clock.advance(RECHECK_S)  # sessions re-read their token at most this often

    await assert_error(await pages.client.get("/api/v1/stats/live"), 401, "unauthenticated", "revoked")
    assert (await pages.client.get("/wallboard", allow_redirects=False)).status == 303


async def test_sign_out_ends_the_session(pages: Pages) -> None:
    await pages.sign_in()
    response = await pages.client.post("/session/logout", allow_redirects=False)

    assert response.status == 303
    assert not pages.sessions.items
    assert (await pages.client.get("/wallboard", allow_redirects=False)).status == 303


async def test_a_session_expires(pages: Pages) -> None:
    await pages.sign_in()
    pages.clock.advance(3601)

    assert (await pages.client.get("/api/v1/stats/live")).status == 401


async def test_thresholds_by_cookie_need_the_csrf_header_and_are_audited(pages: Pages) -> None:
    await pages.sign_in()
    body = {"calls_waiting": {"warn": 2, "alert": 5}, "service_level": {"warn": 0.9, "alert": 0.7}}

    refused = await pages.client.put("/api/v1/wallboard/thresholds", json=body)
    await assert_error(refused, 403, "forbidden", "X-Requested-With")
    saved = await pages.client.put(
        "/api/v1/wallboard/thresholds", json=body, headers={"X-Requested-With": "callcenter"}
    )

    assert saved.status == 200, await saved.text()
    assert (await pages.client.get("/api/v1/wallboard/thresholds")).status == 200
    assert pages.stats.thresholds["calls_waiting"] == {"warn": 2.0, "alert": 5.0}
    [entry] = pages.audit.entries
    assert entry.action == "PUT /api/v1/wallboard/thresholds" and entry.role is Role.SUPERVISOR


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"nonsense": {"warn": 1, "alert": 2}}, "not a figure"),
        ({"calls_waiting": {"warn": 5, "alert": 2}}, "alert must be at least warn"),
        ({"service_level": {"warn": 0.6, "alert": 0.8}}, "alert must not exceed warn"),
        ({"calls_waiting": {"warn": "x", "alert": 2}}, "finite number"),
        ({"calls_waiting": {"warn": 1}}, "expected"),
    ],
)
async def test_bad_thresholds_answer_400(pages: Pages, body: dict[str, Any], message: str) -> None:
    response = await pages.client.put(
        "/api/v1/wallboard/thresholds",
        json=body,
        headers={"Authorization": f"Bearer {pages.secrets[Role.SUPERVISOR]}"},
    )
    await assert_error(response, 400, "invalid_request", message)


async def _next_message(stream: Any) -> dict[str, Any]:
    async with asyncio.timeout(5):
        while True:
            line = await stream.content.readline()
            if line.startswith(b"data: "):
                return dict(json.loads(line[6:]))


async def test_the_feed_sends_a_snapshot_then_the_change_after_an_event(pages: Pages) -> None:
    await pages.sign_in()
    stream = await pages.client.get("/wallboard/feed")
    assert stream.headers["Content-Type"].startswith("text/event-stream")

    first = await _next_message(stream)
    await pages.stats.observe(
        CallQueued(event_id="queued:c1", occurred_at=T0, call_id="c1", queue="sales", caller="+14155550100")
    )
    while (update := await _next_message(stream))["overall"]["calls_waiting"] != 1:
        pass

    assert first["overall"]["calls_waiting"] == 0
    assert [w["call_id"] for w in update["waiting"]] == ["c1"]
    assert update["thresholds"]["calls_waiting"] == {"warn": 3, "alert": 8}
    stream.close()


async def test_the_feed_needs_a_supervisor_session(pages: Pages) -> None:
    response = await pages.client.get("/wallboard/feed", allow_redirects=False)

    assert response.status == 303


async def test_assets_are_local_and_nothing_else_is_served(pages: Pages) -> None:
    for name in ("wallboard.js", "wallboard.css"):
        assert (await pages.client.get(f"/static/{name}")).status == 200
    assert (await pages.client.get("/static/..%2Fsession.py")).status == 404
    assert (await pages.client.get("/static/secret.txt")).status == 404
    for path in WEB_DIR.iterdir():
        text = path.read_text()
        assert not re.search(r"(src|href)=\"?(https?:)?//", text), f"{path.name} loads from another site"
        assert "https://" not in text and "http://" not in text, path.name


async def test_many_clients_of_one_session_cost_one_store_read(pages: Pages) -> None:
    """200 wall screens reconnecting at once must not exhaust the store's connections."""
    session_id = await pages.sign_in()
    sessions = pages.client.app[SESSION_SERVICE]
    pages.clock.advance(RECHECK_S)
    reads = pages.sessions.reads

    principals = await asyncio.gather(*(sessions.principal(session_id) for _ in range(200)))

    assert {p.role for p in principals} == {Role.SUPERVISOR}
    assert pages.sessions.reads == reads + 1
