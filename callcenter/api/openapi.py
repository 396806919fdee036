"""``/api/v1/openapi.json``: the OpenAPI 3.1 document, generated from the route table (edge)."""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus
from typing import Final

from aiohttp import web

from callcenter.api.routing import JsonObject, Param, Route
from callcenter.api.schemas import COMPONENTS
from callcenter.model.paging import DEFAULT_LIMIT, MAX_LIMIT

OPENAPI_DOCUMENT: Final = web.AppKey[JsonObject]("openapi_document")

_PAGE_PARAMS: Final = (
    Param(
        name="limit",
        description=f"items per page, 1 to {MAX_LIMIT}",
        schema={"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
    ),
    Param(name="cursor", description="the `next` value of the previous page"),
)


def _ref(name: str) -> JsonObject:
    if name not in COMPONENTS:
        raise ValueError(f"no schema named {name!r} in api.schemas.COMPONENTS")
    return {"$ref": f"#/components/schemas/{name}"}


def _json_content(schema: JsonObject) -> JsonObject:
    return {"application/json": {"schema": schema}}


def _error(description: str) -> JsonObject:
    return {"description": description, "content": _json_content(_ref("Error"))}


def _parameters(route: Route) -> list[JsonObject]:
    params: list[JsonObject] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in route.path_params
    ]
    query = (*route.query, *_PAGE_PARAMS) if route.paginated else route.query
    params.extend(
        {
            "name": p.name,
            "in": "query",
            "required": p.required,
            "description": p.description,
            "schema": p.schema,
        }
        for p in query
    )
    return params


def _success(route: Route) -> JsonObject:
    response: JsonObject = {"description": HTTPStatus(route.status).phrase}
    if route.response is None:
        return response
    schema = _ref(route.response)
    if route.paginated:
        schema = {
            "type": "object",
            "required": ["items", "next"],
            "properties": {"items": {"type": "array", "items": schema}, "next": {"type": ["string", "null"]}},
            "additionalProperties": False,
        }
    response["content"] = _json_content(schema)
    return response


def operation(route: Route) -> JsonObject:
    """The OpenAPI operation object of one route."""
    responses: JsonObject = {str(route.status): _success(route)}
    if route.body is not None or route.query or route.paginated:
        responses["400"] = _error("invalid request, malformed JSON or a bad cursor")
    if route.role is not None:
        responses["401"] = _error("missing, unknown, expired or revoked token")
        responses["403"] = _error("the token's role is too low")
    if route.path_params:
        responses["404"] = _error("no such resource")
    if route.body is not None:
        responses["413"] = _error("the request body is too large")
    responses["default"] = _error("any other error, in the same envelope")
    op: JsonObject = {
        "operationId": route.operation_id,
        "summary": route.summary,
        "tags": list(route.tags),
        "parameters": _parameters(route),
        "responses": responses,
        "security": [{"bearer": []}] if route.role is not None else [],
        "x-required-role": route.role.value if route.role is not None else None,
    }
    if route.description:
        op["description"] = route.description
    if route.webhook:
        op["x-provider-webhook"] = True
    if route.body is not None:
        op["requestBody"] = {"required": True, "content": _json_content(_ref(route.body))}
    return op


def build_openapi(routes: Sequence[Route], *, version: str) -> JsonObject:
    """The OpenAPI 3.1 document of the routes under ``/api/v1``.

    :raises ValueError: when two routes share a method and path, or name a schema that does not exist.
    """
    paths: dict[str, JsonObject] = {}
    for route in routes:
        if not route.in_api:
            continue
        item = paths.setdefault(route.openapi_path, {})
        method = route.method.lower()
        if method in item:
            raise ValueError(f"two routes for {route.method} {route.full_path}")
        item[method] = operation(route)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Call centre API",
            "version": version,
            "description": (
                "Errors answer {error, message}; lists answer {items, next}; times are ISO 8601 with "
                "an offset. Roles nest: admin includes supervisor includes agent."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": dict(COMPONENTS),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


async def get_openapi(request: web.Request) -> web.Response:
    return web.json_response(request.app[OPENAPI_DOCUMENT])
