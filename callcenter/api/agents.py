"""Handlers of ``/api/v1/agents``: create, list, read, log in/out, pause, and queue membership (edge).

An agent token may read and change only its own agent; supervisors and admins any agent.
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

from callcenter.api.auth import principal_of, require_agent_access, set_audit_detail
from callcenter.api.jsonio import (
    page_params,
    page_response,
    read_json_object,
    reject_unknown_fields,
    text_field,
)
from callcenter.api.queues import optional_json_object, queue_service, text_list_field
from callcenter.api.schemas import agent_json
from callcenter.errors import ValidationError
from callcenter.queue.service import AgentStatus

_CREATE_FIELDS: Final = frozenset({"id", "name", "endpoint", "queues"})


async def list_agents(request: web.Request) -> web.Response:
    service = queue_service(request)
    cursor, limit = page_params(request)
    return page_response(await service.list_agents(cursor=cursor, limit=limit), agent_json)


async def create_agent(request: web.Request) -> web.Response:
    service = queue_service(request)
    body = await read_json_object(request)
    reject_unknown_fields(body, _CREATE_FIELDS)
    status = await service.add_agent(
        agent_id=text_field(body, "id"),
        name=text_field(body, "name"),
        endpoint=text_field(body, "endpoint"),
        queues=text_list_field(body, "queues") or (),
        actor=principal_of(request).actor,
    )
    set_audit_detail(request, {"id": status.record.id, "endpoint": status.record.endpoint})
    return web.json_response(agent_json(status), status=201)


def _agent_id(request: web.Request) -> str:
    """The path's agent id, once the caller may act for that agent. :raises PermissionDeniedError:"""
    agent_id = request.match_info["agent_id"]
    require_agent_access(principal_of(request), agent_id)
    return agent_id


async def get_agent(request: web.Request) -> web.Response:
    agent_id = _agent_id(request)
    return _answer(await queue_service(request).get_agent(agent_id))


async def login(request: web.Request) -> web.Response:
    agent_id = _agent_id(request)
    body = await optional_json_object(request)
    reject_unknown_fields(body, {"queues"})
    queues = text_list_field(body, "queues")
    status = await queue_service(request).login(agent_id, actor=principal_of(request).actor, queues=queues)
    return _answer(status)


async def logout(request: web.Request) -> web.Response:
    agent_id = _agent_id(request)
    await _no_body(request)
    return _answer(await queue_service(request).logout(agent_id, actor=principal_of(request).actor))


async def pause(request: web.Request) -> web.Response:
    agent_id = _agent_id(request)
    body = await optional_json_object(request)
    reject_unknown_fields(body, {"reason"})
    reason = text_field(body, "reason", default="")
    if len(reason) > 200:
        raise ValidationError("reason: at most 200 characters")
    status = await queue_service(request).pause(agent_id, actor=principal_of(request).actor, reason=reason)
    return _answer(status)


async def unpause(request: web.Request) -> web.Response:
    agent_id = _agent_id(request)
    await _no_body(request)
    return _answer(await queue_service(request).unpause(agent_id, actor=principal_of(request).actor))


async def put_queues(request: web.Request) -> web.Response:
    agent_id = request.match_info["agent_id"]
    body = await read_json_object(request)
    reject_unknown_fields(body, {"queues"})
    queues = text_list_field(body, "queues")
    if queues is None:
        raise ValidationError("queues is required (a list of queue names, maybe empty)")
    status = await queue_service(request).set_agent_queues(
        agent_id, queues, actor=principal_of(request).actor
    )
    set_audit_detail(request, {"queues": list(status.record.queues)})
    return _answer(status)


async def _no_body(request: web.Request) -> None:
    """Log-out and unpause take nothing; an empty object is accepted too."""
    reject_unknown_fields(await optional_json_object(request), ())


def _answer(status: AgentStatus) -> web.Response:
    return web.json_response(agent_json(status))
