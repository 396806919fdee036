"""``/api/v1/openapi.json`` covers every route the router serves under ``/api/v1``, and only those.

``/metrics`` is the one route outside ``/api/v1``: it speaks Prometheus' text format, not JSON, so
it is deliberately left out of the document; the test pins that it is the only such route.
"""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from openapi_spec_validator import validate

from callcenter.api.openapi import build_openapi
from callcenter.api.routes import ROUTES
from callcenter.api.routing import API_PREFIX, Route
from callcenter.model.vocabulary import Role
from tests.service.api.conftest import NOTE_ROUTES, Api, MakeApi

OUTSIDE_API = {("GET", "/metrics")}


async def _document(api: Api) -> dict[str, Any]:
    response = await api.client.get("/api/v1/openapi.json")
    assert response.status == 200
    return dict(await response.json())


def _served(app: web.Application) -> set[tuple[str, str]]:
    return {(r.method, r.resource.canonical) for r in app.router.routes() if r.resource is not None}


def _documented(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in document["paths"].items() for method in item}


@pytest.mark.parametrize("extra", [(), NOTE_ROUTES], ids=["production", "with-added-routes"])
async def test_every_served_api_route_is_documented_and_nothing_else(
    make_api: MakeApi, extra: tuple[Route, ...]
) -> None:
    api = await make_api(routes=extra)
    served = _served(api.app)
    in_api = {(m, p) for m, p in served if p.startswith(API_PREFIX + "/")}
    assert served - in_api == OUTSIDE_API
    assert _documented(await _document(api)) == in_api


async def test_the_document_is_valid_openapi_3_1(api: Api) -> None:
    document = await _document(api)
    assert document["openapi"] == "3.1.0"
    validate(document)


async def test_each_operation_states_its_role_and_security(api: Api) -> None:
    document = await _document(api)
    for route in ROUTES:
        op = document["paths"][route.openapi_path][route.method.lower()]
        assert op["summary"] == route.summary
        if route.role is None:
            assert op["security"] == [] and op["x-required-role"] is None
        else:
            assert op["security"] == [{"bearer": []}]
            assert op["x-required-role"] == route.role.value
            assert {"401", "403"} <= set(op["responses"])


async def test_list_routes_document_their_page_parameters(api: Api) -> None:
    op = (await _document(api))["paths"]["/api/v1/tokens"]["get"]
    assert {p["name"] for p in op["parameters"]} == {"limit", "cursor"}
    page = op["responses"]["200"]["content"]["application/json"]["schema"]
    assert page["required"] == ["items", "next"]
    assert page["properties"]["items"]["items"] == {"$ref": "#/components/schemas/Token"}


def test_path_variables_with_a_pattern_are_documented_by_name() -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.json_response({})

    route = Route(
        method="GET", path="/calls/{call_id:[a-z0-9.-]+}", handler=handler, role=Role.AGENT, summary="x"
    )
    document = build_openapi([route], version="test")
    [param] = document["paths"]["/api/v1/calls/{call_id}"]["get"]["parameters"]  # type: ignore[index]
    assert param["name"] == "call_id" and param["in"] == "path"


def test_a_route_naming_an_unknown_schema_fails_at_build_time() -> None:
    route = Route(
        method="GET", path="/x", handler=ROUTES[0].handler, role=Role.AGENT, summary="x", response="Nope"
    )
    with pytest.raises(ValueError, match="Nope"):
        build_openapi([route], version="test")


def test_two_routes_for_one_method_and_path_fail_at_build_time() -> None:
    with pytest.raises(ValueError, match="two routes for GET /api/v1/health"):
        build_openapi([ROUTES[0], ROUTES[0]], version="test")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "TRACE"}, "method"),
        ({"path": "tokens"}, "must start with '/'"),
        ({"webhook": True, "role": Role.ADMIN}, "webhook"),
        ({"paginated": True}, "item schema"),
    ],
)
def test_a_malformed_route_table_line_is_refused(kwargs: dict[str, Any], message: str) -> None:
    fields: dict[str, Any] = {
        "method": "GET",
        "path": "/x",
        "handler": ROUTES[0].handler,
        "role": None,
        "summary": "x",
    }
    with pytest.raises(ValueError, match=message):
        Route(**{**fields, **kwargs})
