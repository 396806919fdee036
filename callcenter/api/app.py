"""``build_api``: the aiohttp application of ``/api/v1`` and ``/metrics`` (edge).

The composition root builds the dependencies (auth service, health probes, metrics registry,
settings) and hands them in; nothing here opens a connection of its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from importlib import metadata

from aiohttp import web
from prometheus_client import CollectorRegistry

from callcenter.api.auth import AUTH_SERVICE, audit_middleware, auth_middleware
from callcenter.api.errors import error_middleware
from callcenter.api.health import CRITICAL_CHECKS, HEALTH_CHECKS, HEALTH_TIMEOUT_S, HealthCheck
from callcenter.api.metrics import HTTP_METRICS, HttpMetrics, get_metrics, metrics_middleware
from callcenter.api.openapi import OPENAPI_DOCUMENT, build_openapi
from callcenter.api.routes import ROUTES
from callcenter.api.routing import HTTP_SETTINGS, ROUTE_SPECS, Route
from callcenter.auth.service import AuthService
from callcenter.config import HttpSettings
from callcenter.model.vocabulary import Role


def _version() -> str:
    try:
        return metadata.version("callcenter-asterisk")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def metrics_route(settings: HttpSettings) -> Route:
    """``GET /metrics``: open, or for supervisors and up when the setting asks for a token."""
    return Route(
        method="GET",
        path="/metrics",
        handler=get_metrics,
        role=Role.SUPERVISOR if settings.metrics_require_token else None,
        summary="Prometheus metrics",
        prefix="",
    )


def build_api(
    *,
    auth: AuthService,
    health_checks: Mapping[str, HealthCheck | None],
    registry: CollectorRegistry,
    settings: HttpSettings,
    routes: Sequence[Route] = ROUTES,
    health_timeout_s: float = 2.0,
) -> web.Application:
    """The HTTP application: the routes of ``routes`` under ``/api/v1``, plus ``/metrics``.

    :param health_checks: probes by name; ``db`` and ``redis`` are required (their failure answers
        503), others such as ``ari`` may be ``None`` when not configured (reported ``disabled``).
    :param registry: the process's Prometheus registry; the API adds its HTTP series to it.
    :param routes: the route table (tests may extend it; production uses the default).
    :raises ValueError: for a missing critical check, or a route table OpenAPI cannot describe.
    """
    missing = sorted(name for name in CRITICAL_CHECKS if health_checks.get(name) is None)
    if missing:
        raise ValueError(f"health checks {', '.join(missing)} are required")
    every_route = (*routes, metrics_route(settings))
    document = build_openapi(every_route, version=_version())

    # Middlewares run outermost first: metrics see the final status of every answer, errors turn
    # every failure below into the envelope, auth sets the principal the audit needs.
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[metrics_middleware, error_middleware, auth_middleware, audit_middleware],
    )
    specs: dict[web.AbstractRoute, Route] = {}
    for route in every_route:
        specs[app.router.add_route(route.method, route.full_path, route.handler)] = route
    app[ROUTE_SPECS] = specs
    app[HTTP_SETTINGS] = settings
    app[AUTH_SERVICE] = auth
    app[HEALTH_CHECKS] = dict(health_checks)
    app[HEALTH_TIMEOUT_S] = health_timeout_s
    app[HTTP_METRICS] = HttpMetrics(registry)
    app[OPENAPI_DOCUMENT] = document
    return app
