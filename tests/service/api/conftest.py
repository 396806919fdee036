"""A running API over the in-memory auth fakes, with one token per role, and test-only routes."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from jsonschema import Draft202012Validator
from prometheus_client import CollectorRegistry
from pytest_aiohttp import AiohttpClient

from callcenter.api.app import build_api
from callcenter.api.auth import principal_of, set_audit_detail
from callcenter.api.health import HealthCheck
from callcenter.api.jsonio import read_json_object
from callcenter.api.routes import ROUTES
from callcenter.api.routing import Route
from callcenter.api.schemas import COMPONENTS
from callcenter.auth.service import AuthService
from callcenter.config import HttpSettings
from callcenter.errors import ConflictError
from callcenter.model.vocabulary import Role
from tests.fakes.store import InMemoryAuditLog, InMemoryTokenRepository

if TYPE_CHECKING:
    from tests.conftest import FakeClock

#: The agent the agent token is bound to; path parameters named agent_id are filled with it.
AGENT_ID = "a1"


async def healthy() -> None:
    """A dependency probe that succeeds."""


async def refused() -> None:
    """A dependency probe whose peer refuses the connection."""
    raise ConnectionRefusedError("connection refused")


@dataclass
class Api:
    """The API under test and the fakes behind it."""

    client: TestClient[web.Request, web.Application]
    app: web.Application
    auth: AuthService
    tokens: InMemoryTokenRepository
    audit: InMemoryAuditLog
    clock: FakeClock
    secrets: dict[Role, str] = field(default_factory=dict)

    async def token_ids(self) -> list[str]:
        """Ids of every stored token, newest first."""
        return [t.id for t in (await self.auth.list_tokens(cursor=None, limit=500)).items]

    def as_role(self, role: Role) -> dict[str, str]:
        """Headers of a request made with the token of ``role``."""
        return {"Authorization": f"Bearer {self.secrets[role]}"}


MakeApi = Callable[..., Awaitable[Api]]


@pytest.fixture
def make_api(aiohttp_client: AiohttpClient, clock: FakeClock) -> MakeApi:
    """Build and start the API; ``routes`` adds lines to the production route table."""

    async def make(
        *,
        settings: HttpSettings | None = None,
        health: Mapping[str, HealthCheck | None] | None = None,
        routes: Sequence[Route] = (),
        health_timeout_s: float = 2.0,
        audit: InMemoryAuditLog | None = None,
    ) -> Api:
        tokens, audit = InMemoryTokenRepository(), audit or InMemoryAuditLog()
        auth = AuthService(tokens, audit, clock)
        app = build_api(
            auth=auth,
            health_checks=health if health is not None else {"db": healthy, "redis": healthy, "ari": None},
            registry=CollectorRegistry(),
            settings=settings or HttpSettings(),
            routes=(*ROUTES, *routes),
            health_timeout_s=health_timeout_s,
        )
        api = Api(await aiohttp_client(app), app, auth, tokens, audit, clock)
        for role in Role:
            _, api.secrets[role] = await auth.create_token(
                role=role,
                agent_id=AGENT_ID if role is Role.AGENT else None,
                label=f"{role.value} test token",
                expires_at=None,
                actor="test-setup",
            )
        return api

    return make


@pytest.fixture
async def api(make_api: MakeApi) -> Api:
    return await make_api()


def assert_schema(component: str, body: Any) -> None:
    """Fail unless ``body`` satisfies the named schema of ``api.schemas.COMPONENTS``."""
    schema = {"$ref": f"#/components/schemas/{component}", "components": {"schemas": COMPONENTS}}
    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(body)]
    assert not errors, f"{component}: {errors}"


async def assert_error(response: Any, status: int, code: str, message: str = "") -> dict[str, str]:
    """Fail unless ``response`` is the error envelope with this status and code (and message part)."""
    text = await response.text()
    assert response.status == status, text
    assert response.content_type == "application/json", text
    body = json.loads(text)
    assert_schema("Error", body)
    assert body["error"] == code, body
    assert message in body["message"], body
    return dict(body)


# --- test-only routes: lines a later issue would add to the table, exercising the middlewares ---


async def _write_note(request: web.Request) -> web.Response:
    body = await read_json_object(request)
    if body.get("conflict"):
        raise ConflictError("note already closed")
    set_audit_detail(request, {"text": body.get("text")})
    return web.json_response({"id": request.match_info["note_id"]}, status=201)


async def _answer_422(request: web.Request) -> web.Response:
    return web.json_response({"error": "rejected", "message": "handler answered without raising"}, status=422)


async def _read_note(request: web.Request) -> web.Response:
    return web.json_response({"id": request.match_info["note_id"], "by": principal_of(request).token_id})


NOTE_ROUTES = (
    Route(
        method="POST",
        path="/test/notes/{note_id}",
        handler=_write_note,
        role=Role.AGENT,
        summary="test: a write any role may make",
    ),
    Route(
        method="PUT",
        path="/test/notes/{note_id}",
        handler=_answer_422,
        role=Role.AGENT,
        summary="test: a write answering 422 without raising",
    ),
    Route(
        method="GET",
        path="/test/notes/{note_id}",
        handler=_read_note,
        role=Role.AGENT,
        summary="test: a read",
    ),
)
