"""``GET /api/v1/health``: the store, Redis and ARI checks, each under a short timeout (edge)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from enum import StrEnum
from typing import Final, TypeAlias

from aiohttp import hdrs, web

#: A dependency probe: returning means healthy; raising (or running past the timeout) means not.
HealthCheck: TypeAlias = Callable[[], Awaitable[object]]

#: Without these the API cannot do its job: any of them failing answers 503.
CRITICAL_CHECKS: Final = frozenset({"db", "redis"})

HEALTH_CHECKS: Final = web.AppKey[Mapping[str, HealthCheck | None]]("health_checks")
HEALTH_TIMEOUT_S: Final = web.AppKey("health_timeout_s", float)

logger = logging.getLogger(__name__)


class CheckResult(StrEnum):
    OK = "ok"
    FAIL = "fail"
    DISABLED = "disabled"


class HealthStatus(StrEnum):
    OK = "ok"
    DEGRADED = "degraded"
    FAIL = "fail"


def overall(results: Mapping[str, CheckResult]) -> tuple[HealthStatus, int]:
    """The status and HTTP status for a set of check results.

    A critical check failing is ``fail``/503; any other failing is ``degraded``/200; a check that is
    disabled (ARI not configured) degrades nothing.
    """
    if any(results.get(name) is not CheckResult.OK for name in CRITICAL_CHECKS):
        return HealthStatus.FAIL, 503
    if any(result is CheckResult.FAIL for result in results.values()):
        return HealthStatus.DEGRADED, 200
    return HealthStatus.OK, 200


async def _run(name: str, check: HealthCheck | None, timeout_s: float) -> CheckResult:
    if check is None:
        return CheckResult.DISABLED
    try:
        async with asyncio.timeout(timeout_s):
            await check()
    except Exception as exc:  # any failure of a probe, TimeoutError included, is a "fail"
        logger.warning("health check %s failed: %r", name, exc)
        return CheckResult.FAIL
    return CheckResult.OK


async def get_health(request: web.Request) -> web.Response:
    checks = request.app[HEALTH_CHECKS]
    timeout_s = request.app[HEALTH_TIMEOUT_S]
    names = list(checks)
    results = await asyncio.gather(*(_run(name, checks[name], timeout_s) for name in names))
    by_name = dict(zip(names, results, strict=True))
    status, http_status = overall(by_name)
    return web.json_response(
        {"status": status.value, "checks": {name: result.value for name, result in by_name.items()}},
        status=http_status,
        headers={hdrs.CACHE_CONTROL: "no-store"},
    )
