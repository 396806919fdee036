"""AuthService: issuing, checking, listing and revoking tokens, and what the audit log keeps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from callcenter.auth.service import AuthService
from callcenter.auth.tokens import Principal, hash_secret, looks_like_secret
from callcenter.errors import AuthenticationError, NotFoundError, StoreUnavailableError, ValidationError
from callcenter.model.vocabulary import Role
from tests.fakes.store import InMemoryAuditLog, InMemoryTokenRepository

if TYPE_CHECKING:
    from tests.conftest import FakeClock


class Harness:
    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.tokens = InMemoryTokenRepository()
        self.audit = InMemoryAuditLog()
        self.service = AuthService(self.tokens, self.audit, clock)


@pytest.fixture
def h(clock: FakeClock) -> Harness:
    return Harness(clock)


async def test_a_new_token_authenticates_as_its_role_and_agent(h: Harness) -> None:
    token, secret = await h.service.create_token(
        role=Role.AGENT, agent_id="a7", label="desk 7", expires_at=None, actor="cli"
    )
    assert looks_like_secret(secret)
    principal = await h.service.authenticate(secret)
    assert principal == Principal(token_id=token.id, role=Role.AGENT, agent_id="a7", label="desk 7")


async def test_the_store_holds_the_hash_and_the_audit_never_the_secret(h: Harness) -> None:
    token, secret = await h.service.create_token(
        role=Role.ADMIN, agent_id=None, label="ops", expires_at=None, actor="cli"
    )
    assert await h.tokens.find_by_hash(hash_secret(secret)) == token
    assert await h.tokens.find_by_hash(secret) is None
    [entry] = h.audit.entries
    assert (entry.action, entry.target, entry.actor, entry.role) == ("token.create", token.id, "cli", None)
    assert entry.detail["role"] == "admin"
    assert secret not in repr(entry) and hash_secret(secret) not in repr(entry)


async def test_a_token_created_by_an_api_caller_records_that_caller_and_role(h: Harness) -> None:
    admin = Principal(token_id="tok_admin", role=Role.ADMIN, label="ops")
    await h.service.create_token(role=Role.SUPERVISOR, agent_id=None, label="", expires_at=None, actor=admin)
    [entry] = h.audit.entries
    assert (entry.actor, entry.role) == ("token:tok_admin (ops)", Role.ADMIN)


@pytest.mark.parametrize(
    ("role", "agent_id", "label", "expires_in_s", "reason"),
    [
        (Role.AGENT, None, "", None, "needs the agent id"),
        (Role.AGENT, "  ", "", None, "needs the agent id"),
        (Role.SUPERVISOR, "a1", "", None, "not bound to an agent"),
        (Role.ADMIN, "a1", "", None, "not bound to an agent"),
        (Role.ADMIN, None, "x" * 201, None, "label is longer"),
        (Role.ADMIN, None, "", -1, "in the past"),
        (Role.ADMIN, None, "", 0, "in the past"),
    ],
)
async def test_an_invalid_token_request_is_refused_and_nothing_is_written(
    h: Harness, role: Role, agent_id: str | None, label: str, expires_in_s: int | None, reason: str
) -> None:
    expires_at = None if expires_in_s is None else h.clock.now() + timedelta(seconds=expires_in_s)
    with pytest.raises(ValidationError, match=reason):
        await h.service.create_token(
            role=role, agent_id=agent_id, label=label, expires_at=expires_at, actor="cli"
        )
    assert (await h.service.list_tokens(cursor=None, limit=50)).items == ()
    assert not h.audit.entries


async def test_an_expiry_without_offset_is_refused(h: Harness) -> None:
    with pytest.raises(ValidationError, match="offset"):
        await h.service.create_token(
            role=Role.ADMIN, agent_id=None, label="", expires_at=datetime(2030, 1, 1), actor="cli"
        )


async def test_unknown_and_malformed_secrets_are_refused(h: Harness) -> None:
    await h.service.create_token(role=Role.ADMIN, agent_id=None, label="", expires_at=None, actor="cli")
    for secret in ("cc_" + "Z" * 43, "not-a-token", ""):
        with pytest.raises(AuthenticationError, match="unknown token"):
            await h.service.authenticate(secret)


async def test_a_token_stops_working_at_its_expiry(h: Harness) -> None:
    _, secret = await h.service.create_token(
        role=Role.SUPERVISOR,
        agent_id=None,
        label="",
        expires_at=h.clock.now() + timedelta(hours=1),
        actor="cli",
    )
    h.clock.advance(3599)
    await h.service.authenticate(secret)
    h.clock.advance(1)
    with pytest.raises(AuthenticationError, match="token expired"):
        await h.service.authenticate(secret)


async def test_a_revoked_token_is_refused_as_revoked_even_once_expired(h: Harness) -> None:
    token, secret = await h.service.create_token(
        role=Role.SUPERVISOR,
        agent_id=None,
        label="",
        expires_at=h.clock.now() + timedelta(minutes=5),
        actor="cli",
    )
    await h.service.revoke(token.id, actor="cli")
    with pytest.raises(AuthenticationError, match="token revoked"):
        await h.service.authenticate(secret)
    h.clock.advance(600)
    with pytest.raises(AuthenticationError, match="token revoked"):
        await h.service.authenticate(secret)


async def test_revoking_twice_keeps_the_first_time_and_audits_once(h: Harness) -> None:
    token, _ = await h.service.create_token(
        role=Role.ADMIN, agent_id=None, label="", expires_at=None, actor="cli"
    )
    first = await h.service.revoke(token.id, actor="cli")
    h.clock.advance(60)
    second = await h.service.revoke(token.id, actor="cli")
    assert first.revoked_at == second.revoked_at == h.clock.now() - timedelta(seconds=60)
    assert [e.action for e in h.audit.entries] == ["token.create", "token.revoke"]


async def test_revoking_an_unknown_token_is_not_found_and_not_audited(h: Harness) -> None:
    with pytest.raises(NotFoundError):
        await h.service.revoke("tok_nope", actor="cli")
    assert not h.audit.entries


async def test_use_is_recorded_at_most_once_a_minute(h: Harness) -> None:
    token, secret = await h.service.create_token(
        role=Role.ADMIN, agent_id=None, label="", expires_at=None, actor="cli"
    )
    start = h.clock.now()
    await h.service.authenticate(secret)
    assert (await h.tokens.get(token.id)).last_used_at == start
    h.clock.advance(30)
    await h.service.authenticate(secret)
    assert (await h.tokens.get(token.id)).last_used_at == start
    h.clock.advance(30)
    await h.service.authenticate(secret)
    assert (await h.tokens.get(token.id)).last_used_at == start + timedelta(seconds=60)


async def test_tokens_are_listed_newest_first_across_pages(h: Harness) -> None:
    created = []
    for i in range(5):
        token, _ = await h.service.create_token(
            role=Role.ADMIN, agent_id=None, label=f"t{i}", expires_at=None, actor="cli"
        )
        created.append(token.id)
        if i % 2:
            h.clock.advance(1)  # some share a creation time: the id breaks the tie
    seen: list[str] = []
    cursor: str | None = None
    while True:
        page = await h.service.list_tokens(cursor=cursor, limit=2)
        assert len(page.items) <= 2
        seen.extend(t.id for t in page.items)
        if page.next is None:
            break
        cursor = page.next
    assert sorted(seen) == sorted(created) and len(seen) == 5
    times = [(await h.tokens.get(i)).created_at for i in seen]
    assert times == sorted(times, reverse=True)


class TouchFailsRepository(InMemoryTokenRepository):
    async def touch(self, token_id: str, at: datetime) -> None:
        raise StoreUnavailableError("database is read-only")


async def test_a_valid_token_still_works_when_its_use_cannot_be_recorded(clock: FakeClock) -> None:
    service = AuthService(TouchFailsRepository(), InMemoryAuditLog(), clock)
    token, secret = await service.create_token(
        role=Role.ADMIN, agent_id=None, label="", expires_at=None, actor="cli"
    )
    assert (await service.authenticate(secret)).token_id == token.id


@pytest.mark.parametrize("limit", [0, 501])
async def test_a_page_size_out_of_range_is_refused(h: Harness, limit: int) -> None:
    with pytest.raises(ValidationError, match="limit"):
        await h.service.list_tokens(cursor=None, limit=limit)
    with pytest.raises(ValidationError, match="limit"):
        await h.service.list_audit(cursor=None, limit=limit)


async def test_record_appends_an_entry_at_the_clock_time(h: Harness) -> None:
    h.clock.set(datetime(2027, 3, 1, 9, 30, tzinfo=UTC))
    entry = await h.service.record("cli", "queue.update", "support", {"max_wait_s": 300})
    assert entry.id == 1 and entry.at == datetime(2027, 3, 1, 9, 30, tzinfo=UTC)
    page = await h.service.list_audit(cursor=None, limit=10)
    assert page.items == (entry,)
