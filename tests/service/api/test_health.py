"""``GET /api/v1/health``: ok, degraded while ARI is down, 503 when the store or Redis is."""

from __future__ import annotations

import asyncio

import pytest

from callcenter.api.health import HealthCheck
from tests.service.api.conftest import MakeApi, assert_schema, healthy, refused


async def _hangs() -> None:
    """A probe whose peer never answers."""
    await asyncio.Event().wait()


@pytest.mark.parametrize(
    ("checks", "status", "http_status"),
    [
        ({"db": healthy, "redis": healthy, "ari": healthy}, "ok", 200),
        ({"db": healthy, "redis": healthy, "ari": None}, "ok", 200),
        ({"db": healthy, "redis": healthy, "ari": refused}, "degraded", 200),
        ({"db": refused, "redis": healthy, "ari": healthy}, "fail", 503),
        ({"db": healthy, "redis": refused, "ari": None}, "fail", 503),
        ({"db": refused, "redis": refused, "ari": refused}, "fail", 503),
    ],
)
async def test_health_reports_each_check_and_the_overall_status(
    make_api: MakeApi, checks: dict[str, HealthCheck | None], status: str, http_status: int
) -> None:
    api = await make_api(health=checks)
    response = await api.client.get("/api/v1/health")
    body = await response.json()
    assert_schema("Health", body)
    assert response.status == http_status
    assert body["status"] == status
    expected = {
        name: "disabled" if c is None else "fail" if c is refused else "ok" for name, c in checks.items()
    }
    assert body["checks"] == expected


async def test_a_check_that_hangs_fails_after_the_timeout(make_api: MakeApi) -> None:
    api = await make_api(health={"db": healthy, "redis": _hangs, "ari": _hangs}, health_timeout_s=0.05)
    response = await api.client.get("/api/v1/health")
    assert response.status == 503
    assert (await response.json())["checks"] == {"db": "ok", "redis": "fail", "ari": "fail"}


async def test_the_api_cannot_be_built_without_store_and_redis_checks(make_api: MakeApi) -> None:
    with pytest.raises(ValueError, match="redis"):
        await make_api(health={"db": healthy, "redis": None, "ari": None})
