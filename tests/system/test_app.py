"""The whole service on the embedded default: one process, SQLite and a private Redis."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from callcenter.app import SERVICES, build_app, open_auth
from callcenter.config import Settings
from callcenter.errors import StoreUnavailableError
from callcenter.model.vocabulary import Role

pytestmark = [pytest.mark.system, pytest.mark.timeout(60)]


@pytest.fixture
async def client(make_settings: Callable[..., Settings]) -> AsyncIterator[TestClient]:  # type: ignore[type-arg]
    app = await build_app(make_settings())
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def test_embedded_service_starts_healthy_with_store_and_redis_in_the_data_dir(
    client: TestClient,  # type: ignore[type-arg]
    make_settings: Callable[..., Settings],
) -> None:
    response = await client.get("/api/v1/health")

    assert response.status == 200
    assert await response.json() == {"status": "ok", "checks": {"db": "ok", "redis": "ok", "ari": "disabled"}}
    data_dir = make_settings().data_dir
    assert (data_dir / "callcenter.db").is_file()
    assert any(data_dir.rglob("*.sock")), "the embedded Redis socket lives in the data dir"


async def test_token_made_like_the_cli_opens_the_api_and_the_write_is_audited(
    client: TestClient,  # type: ignore[type-arg]
) -> None:
    services = client.app[SERVICES]
    _, secret = await services.auth.create_token(
        role=Role.ADMIN, agent_id=None, label="ops", expires_at=None, actor="cli"
    )
    headers = {"Authorization": f"Bearer {secret}"}

    assert (await client.get("/api/v1/tokens")).status == 401
    created = await client.post(
        "/api/v1/tokens", json={"role": "supervisor", "label": "wallboard"}, headers=headers
    )
    assert created.status == 201
    listing = await (await client.get("/api/v1/tokens", headers=headers)).json()
    audit = await (await client.get("/api/v1/audit", headers=headers)).json()

    assert {t["label"] for t in listing["items"]} == {"ops", "wallboard"}
    newest, first = audit["items"]
    assert (newest["action"], newest["role"], newest["detail"]["label"]) == (
        "token.create",
        "admin",
        "wallboard",
    )
    assert newest["actor"].endswith("(ops)")
    assert (first["action"], first["actor"]) == ("token.create", "cli")
    assert secret not in json.dumps(audit)


async def test_bus_round_trips_an_event_through_the_embedded_redis(
    client: TestClient,  # type: ignore[type-arg]
) -> None:
    from datetime import UTC, datetime

    from callcenter.bus import Delivery
    from callcenter.model.events import CallEnded
    from callcenter.model.vocabulary import CallOutcome, EntryPoint

    bus = client.app[SERVICES].bus
    event = CallEnded(
        event_id="c-1",
        occurred_at=datetime.now(UTC),
        call_id="c-1",
        outcome=CallOutcome.ABANDONED,
        entry_point=EntryPoint.ARI,
        queue="sales",
    )
    await bus.publish(event)
    got: asyncio.Future[Delivery] = asyncio.get_running_loop().create_future()
    stop: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def handler(delivery: Delivery) -> None:
        if not got.done():
            got.set_result(delivery)
        stop.set_result(None) if not stop.done() else None

    await asyncio.wait_for(bus.consume("test", "c1", handler, stop=stop), timeout=10)

    assert got.result().event == event


async def test_unreachable_database_fails_start_up_without_showing_the_password(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(database_url="postgresql://cc:hunter2@127.0.0.1:1/cc")

    with pytest.raises(StoreUnavailableError) as err:
        await build_app(settings)

    assert "hunter2" not in str(err.value)
    assert "127.0.0.1" in str(err.value)


async def test_open_auth_works_without_redis(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(redis_url="redis://127.0.0.1:1/0", redis_connect_timeout_s="0.5")

    async with open_auth(settings) as auth:
        token, secret = await auth.create_token(
            role=Role.SUPERVISOR, agent_id=None, label="x", expires_at=None, actor="cli"
        )
        principal = await auth.authenticate(secret)

    assert principal.role is Role.SUPERVISOR and principal.token_id == token.id


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "callcenter", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.timeout(180)  # six CLI runs and a server start: many process start-ups
async def test_cli_token_serve_and_graceful_stop(tmp_path: Path) -> None:
    """The README's flow: a token from the CLI opens the API of `callcenter serve`; SIGTERM stops it."""
    port = _free_port()
    env = {**os.environ, "CALLCENTER_DATA_DIR": str(tmp_path / "data"), "CALLCENTER_LOG_FORMAT": "json"}

    migrated = _cli(env, "migrate")
    assert migrated.returncode == 0, migrated.stderr
    assert "database at revision" in migrated.stderr
    created = _cli(env, "token", "create", "--role", "admin", "--label", "readme")
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip()
    assert secret.startswith("cc_") and "\n" not in secret

    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "callcenter", "serve", "--port", str(port),
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert server.stderr is not None
        async with asyncio.timeout(30):
            while b"serving on" not in (line := await server.stderr.readline()):
                assert line, "server exited before serving"
        async with aiohttp.ClientSession() as http:
            async with http.get(
                f"http://127.0.0.1:{port}/api/v1/tokens", headers={"Authorization": f"Bearer {secret}"}
            ) as response:
                body = await response.json()
        assert response.status == 200
        assert [t["label"] for t in body["items"]] == ["readme"]
    finally:
        server.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            status = await server.wait()
    assert status == 0

    listed = _cli(env, "token", "list")
    token_id = json.loads(listed.stdout.splitlines()[0])["id"]
    assert _cli(env, "token", "revoke", token_id).returncode == 0
    assert json.loads(_cli(env, "token", "list").stdout.splitlines()[0])["revoked_at"] is not None


async def test_serve_trims_events_older_than_the_bus_age_limit(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Events name callers' numbers: ``serve`` drops those older than ``CALLCENTER_BUS_MAX_AGE_H``
    (168 h by default) from Redis, at start-up and then every minute (here every 50 ms)."""
    from datetime import UTC, datetime, timedelta

    from callcenter import app as app_module
    from callcenter.model.events import CallEnded
    from callcenter.model.vocabulary import CallOutcome, EntryPoint
    from callcenter.store.redis_keys import RedisKeys
    from tests.conftest import FakeClock
    from tests.waiting import eventually

    monkeypatch.setattr(app_module, "BUS_TRIM_EVERY_S", 0.05)
    a_week_on = FakeClock(datetime.now(UTC) + timedelta(hours=168, minutes=1))
    app = await build_app(make_settings(), clock=a_week_on)
    async with TestClient(TestServer(app)) as client:
        services = client.app[SERVICES]
        events = RedisKeys(services.settings.redis.key_prefix).events
        await services.bus.publish(
            CallEnded(
                event_id="c-1",
                occurred_at=a_week_on.now(),
                call_id="c-1",
                outcome=CallOutcome.ABANDONED,
                entry_point=EntryPoint.ARI,
                queue="sales",
            )
        )

        async def trimmed() -> bool:
            return await services.redis.xlen(events) == 0

        await eventually(trimmed, what="the week-old event trimmed")
