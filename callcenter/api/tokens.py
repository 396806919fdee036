"""Handlers of ``/api/v1/tokens``, ``/api/v1/audit`` and ``/api/v1/me`` (edge)."""

from __future__ import annotations

from typing import Final

from aiohttp import hdrs, web

from callcenter.api.auth import AUTH_SERVICE, principal_of
from callcenter.api.jsonio import (
    enum_field,
    optional_text_field,
    optional_time_field,
    page_params,
    page_response,
    read_json_object,
    reject_unknown_fields,
    text_field,
)
from callcenter.api.schemas import audit_json, principal_json, token_json
from callcenter.model.vocabulary import Role

_CREATE_FIELDS: Final = frozenset({"role", "agent_id", "label", "expires_at"})


async def list_tokens(request: web.Request) -> web.Response:
    cursor, limit = page_params(request)
    page = await request.app[AUTH_SERVICE].list_tokens(cursor=cursor, limit=limit)
    return page_response(page, token_json)


async def create_token(request: web.Request) -> web.Response:
    principal = principal_of(request)
    body = await read_json_object(request)
    reject_unknown_fields(body, _CREATE_FIELDS)
    token, secret = await request.app[AUTH_SERVICE].create_token(
        role=enum_field(body, "role", Role),
        agent_id=optional_text_field(body, "agent_id"),
        label=text_field(body, "label", default=""),
        expires_at=optional_time_field(body, "expires_at"),
        actor=principal,
    )
    # The secret is in this body and nowhere else: no cache may keep a copy.
    return web.json_response(
        {"token": token_json(token), "secret": secret}, status=201, headers={hdrs.CACHE_CONTROL: "no-store"}
    )


async def revoke_token(request: web.Request) -> web.Response:
    principal = principal_of(request)
    token = await request.app[AUTH_SERVICE].revoke(request.match_info["token_id"], actor=principal)
    return web.json_response(token_json(token))


async def list_audit(request: web.Request) -> web.Response:
    cursor, limit = page_params(request)
    page = await request.app[AUTH_SERVICE].list_audit(cursor=cursor, limit=limit)
    return page_response(page, audit_json)


async def get_me(request: web.Request) -> web.Response:
    return web.json_response(principal_json(principal_of(request)))
