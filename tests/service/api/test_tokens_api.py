"""``/api/v1/tokens`` and ``/api/v1/audit``: create, list across pages, revoke; secrets shown once."""

from __future__ import annotations

import pytest

from callcenter.auth.tokens import hash_secret
from callcenter.model.paging import encode_cursor
from callcenter.model.vocabulary import Role
from tests.service.api.conftest import Api, assert_error, assert_schema


async def test_an_admin_creates_a_token_that_works_at_once(api: Api) -> None:
    response = await api.client.post(
        "/api/v1/tokens",
        json={
            "role": "agent",
            "agent_id": "a9",
            "label": "desk 9",
            "expires_at": "2027-01-01T00:00:00+01:00",
        },
        headers=api.as_role(Role.ADMIN),
    )
    assert response.status == 201, await response.text()
    assert response.headers["Cache-Control"] == "no-store"
    body = await response.json()
    assert_schema("TokenCreated", body)
    assert body["token"]["expires_at"] == "2026-12-31T23:00:00+00:00"
    me = await api.client.get("/api/v1/me", headers={"Authorization": f"Bearer {body['secret']}"})
    assert (await me.json())["agent_id"] == "a9"


async def test_listing_tokens_never_shows_a_secret_or_its_hash(api: Api) -> None:
    response = await api.client.get("/api/v1/tokens", headers=api.as_role(Role.ADMIN))
    text = await response.text()
    body = await response.json()
    assert len(body["items"]) == 3 and body["next"] is None
    for item in body["items"]:
        assert_schema("Token", item)
    for secret in api.secrets.values():
        assert secret not in text and hash_secret(secret) not in text


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "role is required"),
        ({"role": "root"}, "role must be one of agent, supervisor, admin"),
        ({"role": 3}, "role must be a string"),
        ({"role": "agent"}, "needs the agent id"),
        ({"role": "admin", "agent_id": "a1"}, "not bound to an agent"),
        ({"role": "admin", "expires_at": "tomorrow"}, "ISO 8601"),
        ({"role": "admin", "expires_at": "2030-01-01T00:00:00"}, "UTC offset"),
        ({"role": "admin", "expires_at": "2020-01-01T00:00:00+00:00"}, "in the past"),
        ({"role": "admin", "label": None}, "label is required"),
        ({"role": "admin", "expire_at": "2030-01-01T00:00:00+00:00"}, "unknown field(s): expire_at"),
    ],
)
async def test_a_bad_token_request_is_refused_and_nothing_is_written(
    api: Api, body: dict[str, object], message: str
) -> None:
    before_tokens, before_audit = await api.token_ids(), tuple(api.audit.entries)
    response = await api.client.post("/api/v1/tokens", json=body, headers=api.as_role(Role.ADMIN))
    await assert_error(response, 400, "invalid_request", message)
    assert await api.token_ids() == before_tokens
    assert tuple(api.audit.entries) == before_audit


async def test_tokens_are_listed_newest_first_page_by_page(api: Api) -> None:
    for i in range(6):
        api.clock.advance(1 if i % 2 else 0)  # pairs share a creation time: the id orders them
        await api.auth.create_token(
            role=Role.SUPERVISOR, agent_id=None, label=f"t{i}", expires_at=None, actor="t"
        )
    expected = await api.token_ids()
    assert len(expected) == 9
    seen: list[str] = []
    url = "/api/v1/tokens?limit=4"
    pages = 0
    while True:
        body = await (await api.client.get(url, headers=api.as_role(Role.ADMIN))).json()
        pages += 1
        seen.extend(item["id"] for item in body["items"])
        if body["next"] is None:
            break
        url = f"/api/v1/tokens?limit=4&cursor={body['next']}"
    assert pages == 3 and seen == expected


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("limit=0", "limit must be between 1 and 500"),
        ("limit=501", "limit must be between 1 and 500"),
        ("limit=ten", "limit must be a whole number"),
        ("cursor=not-a-cursor", "invalid cursor"),
        (f"cursor={encode_cursor(('x',))}", "invalid cursor"),
        (f"cursor={encode_cursor((42,))}", "invalid cursor"),
    ],
)
async def test_a_bad_page_request_is_refused(api: Api, query: str, message: str) -> None:
    response = await api.client.get(f"/api/v1/tokens?{query}", headers=api.as_role(Role.ADMIN))
    await assert_error(response, 400, "invalid_request", message)


async def test_the_default_page_holds_fifty(api: Api) -> None:
    for i in range(50):
        await api.auth.create_token(role=Role.ADMIN, agent_id=None, label=f"t{i}", expires_at=None, actor="t")
    body = await (await api.client.get("/api/v1/tokens", headers=api.as_role(Role.ADMIN))).json()
    assert len(body["items"]) == 50 and body["next"] is not None


async def test_an_admin_revokes_a_token_and_it_stops_working(api: Api) -> None:
    token, secret = await api.auth.create_token(
        role=Role.SUPERVISOR, agent_id=None, label="", expires_at=None, actor="t"
    )
    response = await api.client.delete(f"/api/v1/tokens/{token.id}", headers=api.as_role(Role.ADMIN))
    body = await response.json()
    assert response.status == 200 and body["revoked_at"] == api.clock.now().isoformat()
    assert_schema("Token", body)
    again = await api.client.delete(f"/api/v1/tokens/{token.id}", headers=api.as_role(Role.ADMIN))
    assert (await again.json())["revoked_at"] == body["revoked_at"]
    denied = await api.client.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"})
    await assert_error(denied, 401, "unauthenticated", "revoked")


async def test_revoking_an_unknown_token_is_not_found(api: Api) -> None:
    response = await api.client.delete("/api/v1/tokens/tok_nope", headers=api.as_role(Role.ADMIN))
    await assert_error(response, 404, "not_found", "tok_nope")


async def test_token_writes_are_audited_once_each_under_the_admin(api: Api) -> None:
    admin = await (await api.client.get("/api/v1/me", headers=api.as_role(Role.ADMIN))).json()
    before = len(api.audit.entries)
    created = await api.client.post("/api/v1/tokens", json={"role": "admin"}, headers=api.as_role(Role.ADMIN))
    token_id = (await created.json())["token"]["id"]
    await api.client.delete(f"/api/v1/tokens/{token_id}", headers=api.as_role(Role.ADMIN))
    new = api.audit.entries[before:]
    assert [(e.action, e.target, e.role) for e in new] == [
        ("token.create", token_id, Role.ADMIN),
        ("token.revoke", token_id, Role.ADMIN),
    ]
    assert all(e.actor == f"token:{admin['token_id']} (admin test token)" for e in new)


async def test_the_audit_log_is_listed_newest_first_across_pages(api: Api) -> None:
    for i in range(4):
        await api.auth.record("cli", "test.write", f"thing{i}")
    total = len(api.audit.entries)
    ids: list[int] = []
    url = "/api/v1/audit?limit=2"
    while True:
        body = await (await api.client.get(url, headers=api.as_role(Role.ADMIN))).json()
        for item in body["items"]:
            assert_schema("AuditEntry", item)
        ids.extend(item["id"] for item in body["items"])
        if body["next"] is None:
            break
        url = f"/api/v1/audit?limit=2&cursor={body['next']}"
    assert ids == list(range(total, 0, -1))
