"""The audit middleware: successful writes by supervisors and admins are logged; nothing else is."""

from __future__ import annotations

import logging

import pytest

from callcenter.errors import StoreUnavailableError
from callcenter.model.records import AuditEntry
from callcenter.model.vocabulary import Role
from tests.fakes.store import InMemoryAuditLog
from tests.service.api.conftest import NOTE_ROUTES, Api, MakeApi


class UnreachableAuditLog(InMemoryAuditLog):
    """An audit log whose store goes away once ``down`` is set."""

    down = False

    async def append(self, entry: AuditEntry) -> AuditEntry:
        if self.down:
            raise StoreUnavailableError("audit table unreachable")
        return await super().append(entry)


@pytest.fixture
async def notes_api(make_api: MakeApi) -> Api:
    return await make_api(routes=NOTE_ROUTES)


@pytest.mark.parametrize("role", [Role.SUPERVISOR, Role.ADMIN])
async def test_a_successful_write_by_a_supervisor_or_admin_is_audited(notes_api: Api, role: Role) -> None:
    api = notes_api
    me = await (await api.client.get("/api/v1/me", headers=api.as_role(role))).json()
    before = len(api.audit.entries)
    api.clock.advance(5)
    response = await api.client.post(
        "/api/v1/test/notes/n1", json={"text": "hello"}, headers=api.as_role(role)
    )
    assert response.status == 201
    [entry] = api.audit.entries[before:]
    assert entry.action == "POST /api/v1/test/notes/{note_id}"
    assert entry.target == "note_id=n1"
    assert entry.detail == {"text": "hello"}
    assert entry.role is role
    assert entry.actor == f"token:{me['token_id']} ({role.value} test token)"
    assert entry.at == api.clock.now()


async def test_an_audited_write_is_listed_by_the_audit_route(notes_api: Api) -> None:
    api = notes_api
    await api.client.post("/api/v1/test/notes/n2", json={"text": "x"}, headers=api.as_role(Role.SUPERVISOR))
    body = await (await api.client.get("/api/v1/audit?limit=1", headers=api.as_role(Role.ADMIN))).json()
    [item] = body["items"]
    assert (item["action"], item["target"], item["role"]) == (
        "POST /api/v1/test/notes/{note_id}",
        "note_id=n2",
        "supervisor",
    )


async def test_a_write_that_fails_is_not_audited(notes_api: Api) -> None:
    api = notes_api
    before = tuple(api.audit.entries)
    failed = await api.client.post(
        "/api/v1/test/notes/n1", json={"conflict": True}, headers=api.as_role(Role.ADMIN)
    )
    assert failed.status == 409
    malformed = await api.client.post("/api/v1/test/notes/n1", data=b"{", headers=api.as_role(Role.ADMIN))
    assert malformed.status == 400
    answered_422 = await api.client.put("/api/v1/test/notes/n1", json={}, headers=api.as_role(Role.ADMIN))
    assert answered_422.status == 422
    assert tuple(api.audit.entries) == before


async def test_reads_and_agent_writes_are_not_audited(notes_api: Api) -> None:
    api = notes_api
    before = tuple(api.audit.entries)
    read = await api.client.get("/api/v1/test/notes/n1", headers=api.as_role(Role.ADMIN))
    assert read.status == 200
    write = await api.client.post("/api/v1/test/notes/n1", json={}, headers=api.as_role(Role.AGENT))
    assert write.status == 201
    assert tuple(api.audit.entries) == before


async def test_a_refused_write_is_not_audited(notes_api: Api) -> None:
    api = notes_api
    before = tuple(api.audit.entries)
    response = await api.client.post(
        "/api/v1/tokens", json={"role": "admin"}, headers=api.as_role(Role.SUPERVISOR)
    )
    assert response.status == 403
    assert tuple(api.audit.entries) == before


async def test_a_done_write_whose_audit_fails_still_succeeds_and_is_logged(
    make_api: MakeApi, caplog: pytest.LogCaptureFixture
) -> None:
    audit = UnreachableAuditLog()
    api = await make_api(routes=NOTE_ROUTES, audit=audit)
    audit.down = True
    with caplog.at_level(logging.ERROR, logger="callcenter.api.auth"):
        response = await api.client.post("/api/v1/test/notes/n3", json={}, headers=api.as_role(Role.ADMIN))
    # Answering an error would make the client retry a write that happened.
    assert response.status == 201
    [record] = [r for r in caplog.records if r.name == "callcenter.api.auth"]
    assert "POST /api/v1/test/notes/{note_id}" in record.getMessage()
    assert "note_id=n3" in record.getMessage()
