"""Every route of the table against every role: 401 without a token, 403 below its role.

Parametrized over ``ROUTES`` itself, so a route added to the table is covered without a new test.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from callcenter.api.routes import ROUTES
from callcenter.api.routing import Route
from callcenter.model.vocabulary import Role
from tests.service.api.conftest import AGENT_ID, Api, MakeApi, assert_error

#: The only routes DESIGN.md lets answer without a token (besides provider webhooks).
PUBLIC = {("GET", "/api/v1/health"), ("GET", "/api/v1/openapi.json")}


def _url(route: Route) -> str:
    # An agent token may act for its own agent only: give it that agent, so "enough role" passes.
    return re.sub(
        r"\{([A-Za-z_]\w*)[^}]*\}",
        lambda m: AGENT_ID if m.group(1) == "agent_id" else "x",
        route.full_path,
    )


async def _call(api: Api, route: Route, headers: dict[str, str]) -> tuple[int, str]:
    body: dict[str, object] | None = {} if route.is_write else None
    response = await api.client.request(route.method, _url(route), headers=headers, json=body)
    return response.status, await response.text()


def _name(route: Route) -> str:
    return f"{route.method} {route.path}"


PROTECTED = [r for r in ROUTES if r.role is not None]
OPEN = [r for r in ROUTES if r.role is None]


def test_only_health_openapi_and_provider_webhooks_are_public() -> None:
    assert {(r.method, r.full_path) for r in OPEN if not r.webhook} <= PUBLIC


@pytest.mark.parametrize("route", PROTECTED, ids=_name)
async def test_a_protected_route_without_a_token_is_unauthenticated(make_api: MakeApi, route: Route) -> None:
    api = await make_api()
    response = await api.client.request(route.method, _url(route))
    await assert_error(response, 401, "unauthenticated", "missing bearer token")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("route", PROTECTED, ids=_name)
async def test_a_protected_route_refuses_a_token_it_does_not_know(make_api: MakeApi, route: Route) -> None:
    api = await make_api()
    headers = {"Authorization": "Bearer cc_" + "Q" * 43}
    response = await api.client.request(route.method, _url(route), headers=headers)
    await assert_error(response, 401, "unauthenticated", "unknown token")


@pytest.mark.parametrize("route", PROTECTED, ids=_name)
@pytest.mark.parametrize("role", list(Role))
async def test_each_role_is_refused_below_the_route_role_and_let_through_at_or_above(
    make_api: MakeApi, route: Route, role: Role
) -> None:
    assert route.role is not None
    api = await make_api()
    status, text = await _call(api, route, api.as_role(role))
    if role.includes(route.role):
        assert status not in (401, 403), text
    else:
        assert status == 403, text
        assert '"error": "forbidden"' in text


@pytest.mark.parametrize("route", OPEN, ids=_name)
async def test_a_public_route_answers_without_a_token(make_api: MakeApi, route: Route) -> None:
    api = await make_api()
    status, text = await _call(api, route, {})
    assert status not in (401, 403), text


async def test_an_expired_token_is_refused_as_expired(make_api: MakeApi) -> None:
    api = await make_api()
    _, secret = await api.auth.create_token(
        role=Role.ADMIN,
        agent_id=None,
        label="",
        expires_at=api.clock.now() + timedelta(minutes=1),
        actor="test",
    )
    headers = {"Authorization": f"Bearer {secret}"}
    assert (await api.client.get("/api/v1/me", headers=headers)).status == 200
    api.clock.advance(60)
    await assert_error(await api.client.get("/api/v1/me", headers=headers), 401, "unauthenticated", "expired")


async def test_a_revoked_token_is_refused_as_revoked(make_api: MakeApi) -> None:
    api = await make_api()
    token, secret = await api.auth.create_token(
        role=Role.SUPERVISOR, agent_id=None, label="", expires_at=None, actor="test"
    )
    headers = {"Authorization": f"Bearer {secret}"}
    assert (await api.client.get("/api/v1/me", headers=headers)).status == 200
    await api.auth.revoke(token.id, actor="test")
    await assert_error(await api.client.get("/api/v1/me", headers=headers), 401, "unauthenticated", "revoked")


@pytest.mark.parametrize(
    "header", ["Basic YWRtaW46YWRtaW4=", "Bearer", "Token cc_" + "Q" * 43], ids=["basic", "empty", "scheme"]
)
async def test_a_malformed_authorization_header_is_unauthenticated(make_api: MakeApi, header: str) -> None:
    api = await make_api()
    response = await api.client.get("/api/v1/me", headers={"Authorization": header})
    await assert_error(response, 401, "unauthenticated")


async def test_me_tells_the_caller_who_they_are(make_api: MakeApi) -> None:
    api = await make_api()
    response = await api.client.get("/api/v1/me", headers=api.as_role(Role.AGENT))
    body = await response.json()
    assert (body["role"], body["agent_id"], body["label"]) == ("agent", AGENT_ID, "agent test token")
