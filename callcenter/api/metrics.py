"""``/metrics`` in Prometheus format, and HTTP request counters by route template (edge).

Labels carry route templates, methods and statuses only: never raw paths, which may hold phone
numbers or ids, so the exposition stays free of personal data and of unbounded label sets.
"""

from __future__ import annotations

import time
from typing import Final

from aiohttp import hdrs, web
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import choose_encoder

from callcenter.api.routing import WRITE_METHODS, Handler, route_of

_KNOWN_METHODS: Final = WRITE_METHODS | {"GET", "HEAD", "OPTIONS"}
_UNMATCHED: Final = "unmatched"


class HttpMetrics:
    """The API's own series, registered in the application's registry (never the global default)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.requests = Counter(
            "callcenter_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=registry,
        )
        self.duration = Histogram(
            "callcenter_http_request_duration_seconds",
            "Time to answer HTTP requests, by method and route template.",
            ["method", "route"],
            registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
        )

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        method = method if method in _KNOWN_METHODS else "other"
        self.requests.labels(method, route, str(status)).inc()
        self.duration.labels(method, route).observe(seconds)


HTTP_METRICS: Final = web.AppKey("http_metrics", HttpMetrics)


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count and time every answer, errors included (it runs outside the error middleware)."""
    started = time.perf_counter()
    response = await handler(request)
    route = route_of(request)
    template = route.full_path if route is not None else _UNMATCHED
    request.app[HTTP_METRICS].observe(
        request.method, template, response.status, time.perf_counter() - started
    )
    return response


async def get_metrics(request: web.Request) -> web.Response:
    encoder, content_type = choose_encoder(request.headers.get(hdrs.ACCEPT, ""))
    body = encoder(request.app[HTTP_METRICS].registry)
    return web.Response(body=body, headers={hdrs.CONTENT_TYPE: content_type})
