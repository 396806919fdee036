"""The API token and audit log contracts on SQLite, PostgreSQL and the in-memory fake (integration)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from callcenter.errors import ConflictError, NotFoundError, ValidationError
from callcenter.model.paging import encode_cursor
from callcenter.model.records import AgentRecord, ApiToken, AuditEntry
from callcenter.model.vocabulary import Role
from tests.integration.store.conftest import Stores

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)


def token(token_id: str, **fields: object) -> ApiToken:
    values: dict[str, object] = {
        "id": token_id,
        "role": Role.SUPERVISOR,
        "label": f"label {token_id}",
        "created_at": T0,
    }
    values.update(fields)
    return ApiToken(**values)  # type: ignore[arg-type]


async def test_token_is_found_by_the_hash_of_its_secret(stores: Stores) -> None:
    await stores.agents.add(AgentRecord(id="a1", name="Ada", endpoint="PJSIP/1001"))
    stored = token("t1", role=Role.AGENT, agent_id="a1", expires_at=T0 + timedelta(days=30))
    await stores.tokens.add(stored, "hash-1")
    assert await stores.tokens.find_by_hash("hash-1") == stored
    assert await stores.tokens.get("t1") == stored
    assert await stores.tokens.find_by_hash("hash-unknown") is None


@pytest.mark.parametrize(
    ("second_id", "second_hash"), [("t1", "hash-2"), ("t2", "hash-1")], ids=["same-id", "same-hash"]
)
async def test_token_with_an_existing_id_or_hash_conflicts(
    stores: Stores, second_id: str, second_hash: str
) -> None:
    await stores.tokens.add(token("t1"), "hash-1")
    with pytest.raises(ConflictError):
        await stores.tokens.add(token(second_id, label="intruder"), second_hash)
    assert (await stores.tokens.get("t1")).label == "label t1"
    assert (await stores.tokens.find_by_hash("hash-1")) == await stores.tokens.get("t1")


async def test_token_bound_to_an_unknown_agent_is_not_stored(stores: Stores) -> None:
    with pytest.raises(NotFoundError):
        await stores.tokens.add(token("t1", role=Role.AGENT, agent_id="a404"), "hash-1")
    assert await stores.tokens.find_by_hash("hash-1") is None


async def test_unknown_token_is_not_found(stores: Stores) -> None:
    with pytest.raises(NotFoundError, match="t404"):
        await stores.tokens.get("t404")
    with pytest.raises(NotFoundError, match="t404"):
        await stores.tokens.revoke("t404", T0)


async def test_revoke_is_idempotent_and_keeps_the_first_time(stores: Stores) -> None:
    await stores.tokens.add(token("t1"), "hash-1")
    first = await stores.tokens.revoke("t1", T0 + timedelta(hours=1))
    second = await stores.tokens.revoke("t1", T0 + timedelta(hours=2))
    assert first.revoked_at == second.revoked_at == T0 + timedelta(hours=1)
    found = await stores.tokens.find_by_hash("hash-1")
    assert found is not None and not found.is_valid_at(T0 + timedelta(hours=1))


async def test_touch_keeps_the_latest_use_and_ignores_unknown_tokens(stores: Stores) -> None:
    await stores.tokens.add(token("t1"), "hash-1")
    await stores.tokens.touch("t1", T0 + timedelta(minutes=5))
    await stores.tokens.touch("t1", T0 + timedelta(minutes=2))  # a slower request finishing late
    await stores.tokens.touch("t404", T0)
    assert (await stores.tokens.get("t1")).last_used_at == T0 + timedelta(minutes=5)


async def test_tokens_are_listed_newest_first_across_pages(stores: Stores) -> None:
    created = {"t1": 0, "t2": 1, "t3a": 2, "t3b": 2, "t4": 3}
    for index, (token_id, minute) in enumerate(created.items()):
        await stores.tokens.add(token(token_id, created_at=T0 + timedelta(minutes=minute)), f"hash-{index}")
    seen: list[list[str]] = []
    cursor: str | None = None
    while True:
        page = await stores.tokens.list(cursor=cursor, limit=2)
        seen.append([t.id for t in page.items])
        if page.next is None:
            break
        cursor = page.next
    assert seen == [["t4", "t3b"], ["t3a", "t2"], ["t1"]]


async def test_audit_entries_get_ids_and_list_newest_first(stores: Stores) -> None:
    appended = [
        await stores.audit.append(
            AuditEntry(
                at=T0 + timedelta(minutes=i),
                actor="admin-token",
                role=Role.ADMIN,
                action="queue.put",
                target=f"queue/q{i}",
                detail={"changes": {"max_wait_s": [600, 300 + i]}},
            )
        )
        for i in range(5)
    ]
    ids = [e.id for e in appended]
    assert None not in ids and len(set(ids)) == 5
    first = await stores.audit.list(cursor=None, limit=3)
    second = await stores.audit.list(cursor=first.next, limit=3)
    assert second.next is None
    listed = list(first.items) + list(second.items)
    assert listed == appended[::-1]
    assert listed[0].detail == {"changes": {"max_wait_s": [600, 304]}}


async def test_audit_entry_from_the_cli_has_no_role(stores: Stores) -> None:
    entry = await stores.audit.append(AuditEntry(at=T0, actor="cli", role=None, action="token.create"))
    page = await stores.audit.list(cursor=None, limit=10)
    assert page.items == (entry,)
    assert page.items[0].role is None and page.items[0].target == "" and page.items[0].detail == {}


async def test_audit_entries_at_the_same_instant_keep_append_order_newest_first(stores: Stores) -> None:
    first = await stores.audit.append(AuditEntry(at=T0, actor="x", role=Role.SUPERVISOR, action="one"))
    second = await stores.audit.append(AuditEntry(at=T0, actor="x", role=Role.SUPERVISOR, action="two"))
    page_one = await stores.audit.list(cursor=None, limit=1)
    page_two = await stores.audit.list(cursor=page_one.next, limit=1)
    assert (page_one.items, page_two.items, page_two.next) == ((second,), (first,), None)


@pytest.mark.parametrize(
    "cursor",
    [encode_cursor(("2026-11-23T14:00:00+00:00", "t1")), encode_cursor(("2026-11-23T14:00:00", 1)), "@@"],
    ids=["token-cursor", "naive-time", "garbage"],
)
async def test_audit_log_rejects_a_cursor_it_did_not_make(stores: Stores, cursor: str) -> None:
    with pytest.raises(ValidationError, match="cursor"):
        await stores.audit.list(cursor=cursor, limit=10)


async def test_audit_entry_with_a_naive_time_is_rejected(stores: Stores) -> None:
    with pytest.raises(ValidationError, match="time zone"):
        await stores.audit.append(AuditEntry(at=datetime(2026, 11, 23), actor="x", role=None, action="y"))
    assert (await stores.audit.list(cursor=None, limit=10)).items == ()
