"""Single-owner leases with fencing tokens against real Redis 6.2 (embedded) and 7.x (shared)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from callcenter.bus import Lease
from callcenter.config import RedisSettings
from callcenter.errors import LeaseLostError, RedisUnavailableError
from callcenter.store.redis_conn import EmbeddedRedis, new_client
from callcenter.store.redis_keys import RedisKeys
from callcenter.store.redis_lease import RedisLease, default_owner_id
from tests.waiting import eventually

pytestmark = [pytest.mark.integration, pytest.mark.timeout(30)]

ROLE = "callback-dispatcher"


def lease(client: aioredis.Redis, keys: RedisKeys, owner: str, ttl_ms: int = 5_000) -> RedisLease:
    port: Lease = RedisLease(client, keys, ROLE, owner, ttl_ms)  # checked by mypy against the port
    assert isinstance(port, RedisLease)
    return port


async def test_of_several_contenders_exactly_one_gets_the_lease(
    redis_client: aioredis.Redis, keys: RedisKeys
) -> None:
    contenders = [lease(redis_client, keys, f"node-{n}") for n in range(6)]
    tokens = await asyncio.gather(*(c.acquire() for c in contenders))
    winners = [c for c, token in zip(contenders, tokens, strict=True) if token is not None]
    assert len(winners) == 1
    assert winners[0].token == next(t for t in tokens if t is not None)
    assert await redis_client.get(keys.lease(ROLE)) == f"{winners[0].owner_id}:{winners[0].token}".encode()


async def test_each_acquisition_gets_a_larger_fencing_token(
    redis_client: aioredis.Redis, keys: RedisKeys
) -> None:
    a, b = lease(redis_client, keys, "a"), lease(redis_client, keys, "b")
    tokens = []
    for holder in (a, b, a, b):
        token = await holder.acquire()
        assert token is not None
        tokens.append(token)
        await holder.release()
    assert tokens == sorted(tokens) and len(set(tokens)) == 4
    # A refused attempt spends no token.
    assert await a.acquire() == tokens[-1] + 1
    assert await b.acquire() is None
    await a.release()
    assert await b.acquire() == tokens[-1] + 2


async def test_renew_extends_the_holders_lease(redis_client: aioredis.Redis, keys: RedisKeys) -> None:
    holder = lease(redis_client, keys, "a", ttl_ms=5_000)
    assert await holder.acquire() is not None
    await redis_client.pexpire(keys.lease(ROLE), 200)  # as if most of the TTL had passed
    assert await holder.renew() is True
    assert await redis_client.pttl(keys.lease(ROLE)) > 1_000
    assert not holder.lost.is_set()


async def test_an_expired_lease_passes_to_the_next_contender_and_the_stale_holder_is_refused(
    redis_client: aioredis.Redis, keys: RedisKeys
) -> None:
    stale, next_holder = (
        lease(redis_client, keys, "a", ttl_ms=100),
        lease(redis_client, keys, "b", ttl_ms=5_000),
    )
    stale_token = await stale.acquire()
    assert stale_token is not None
    assert await next_holder.acquire() is None
    new_token: list[int] = []

    async def taken_over() -> bool:
        token = await next_holder.acquire()
        if token is not None:
            new_token.append(token)
        return token is not None

    await eventually(taken_over, what="the lease expiring and passing to b")
    assert new_token[0] > stale_token
    assert await stale.check_token(stale_token) is False
    assert stale.lost.is_set()
    assert await stale.renew() is False
    assert await next_holder.check_token(new_token[0]) is True
    assert not next_holder.lost.is_set()


async def test_a_renewal_after_takeover_fails_and_signals_the_loss(
    redis_client: aioredis.Redis, keys: RedisKeys
) -> None:
    stale, next_holder = lease(redis_client, keys, "a", ttl_ms=100), lease(redis_client, keys, "b")
    assert await stale.acquire() is not None

    async def taken_over() -> bool:
        return await next_holder.acquire() is not None

    await eventually(taken_over, what="b taking the expired lease")
    assert await stale.renew() is False
    assert stale.lost.is_set() and stale.token is None
    # The stale holder cannot delete the new holder's lease either.
    await stale.release()
    assert await next_holder.renew() is True


async def test_release_lets_another_contender_acquire_at_once(
    redis_client: aioredis.Redis, keys: RedisKeys
) -> None:
    a, b = lease(redis_client, keys, "a"), lease(redis_client, keys, "b")
    assert await a.acquire() is not None
    assert await b.acquire() is None
    await a.release()
    assert await b.acquire() is not None
    assert await a.renew() is False
    assert not a.lost.is_set()  # giving it up is not losing it


async def test_only_the_holder_can_release(redis_client: aioredis.Redis, keys: RedisKeys) -> None:
    holder = lease(redis_client, keys, "a")
    same_owner_other_instance = lease(redis_client, keys, "a")
    token = await holder.acquire()
    assert token is not None
    assert await same_owner_other_instance.acquire() is None  # same owner id, but not this holding
    await same_owner_other_instance.release()
    await lease(redis_client, keys, "b").release()
    assert await holder.check_token(token) is True


async def test_acquire_by_the_holder_extends_and_keeps_its_token(
    redis_client: aioredis.Redis, keys: RedisKeys
) -> None:
    holder = lease(redis_client, keys, "a", ttl_ms=5_000)
    token = await holder.acquire()
    await redis_client.pexpire(keys.lease(ROLE), 200)
    assert await holder.acquire() == token
    assert await redis_client.pttl(keys.lease(ROLE)) > 1_000


async def test_keep_holds_the_lease_well_past_its_ttl(redis_client: aioredis.Redis, keys: RedisKeys) -> None:
    holder, rival = lease(redis_client, keys, "a", ttl_ms=150), lease(redis_client, keys, "b")
    token = await holder.acquire()
    assert token is not None
    keeper = asyncio.create_task(holder.keep())
    loop = asyncio.get_running_loop()
    until = loop.time() + 4 * 0.150
    refused = 0

    async def four_ttls_refused() -> bool:
        nonlocal refused
        assert await rival.acquire() is None, "the rival took a kept lease"
        refused += 1
        return loop.time() >= until

    try:
        await eventually(four_ttls_refused, what="four TTLs of refusals")
    finally:
        keeper.cancel()
        with pytest.raises(asyncio.CancelledError):
            await keeper
    assert refused > 1
    assert await holder.check_token(token) is True
    assert not holder.lost.is_set()


async def test_keep_signals_when_the_lease_is_taken_over(
    redis_client: aioredis.Redis, keys: RedisKeys
) -> None:
    holder, rival = lease(redis_client, keys, "a", ttl_ms=300), lease(redis_client, keys, "b")
    assert await holder.acquire() is not None
    keeper = asyncio.create_task(holder.keep())
    # A stall longer than the TTL, seen from Redis: the key expired and the rival took it.
    await redis_client.delete(keys.lease(ROLE))
    assert await rival.acquire() is not None
    with pytest.raises(LeaseLostError, match=ROLE):
        async with asyncio.timeout(5):
            await keeper
    assert holder.lost.is_set()
    assert holder.token is None


async def test_keep_without_the_lease_fails_at_once(redis_client: aioredis.Redis, keys: RedisKeys) -> None:
    holder = lease(redis_client, keys, "a")
    with pytest.raises(LeaseLostError, match="not held"):
        await holder.keep()
    assert holder.lost.is_set()


async def test_a_new_acquisition_clears_the_lost_signal(
    redis_client: aioredis.Redis, keys: RedisKeys
) -> None:
    holder = lease(redis_client, keys, "a")
    token = await holder.acquire()
    assert token is not None
    await redis_client.delete(keys.lease(ROLE))
    assert await holder.renew() is False and holder.lost.is_set()
    assert await holder.acquire() == token + 1
    assert not holder.lost.is_set()


async def test_check_token_refuses_other_tokens(redis_client: aioredis.Redis, keys: RedisKeys) -> None:
    holder = lease(redis_client, keys, "a")
    assert await holder.check_token(1) is False  # nobody holds it
    token = await holder.acquire()
    assert token is not None
    assert await holder.check_token(token + 1) is False
    assert await holder.check_token(token - 1) is False
    assert await holder.check_token(token) is True
    assert not holder.lost.is_set()


@pytest.mark.parametrize(
    "role, owner, ttl_ms, message",
    [
        ("dispatcher:1", "a", 1000, "lease role"),
        ("", "a", 1000, "lease role"),
        (ROLE, "", 1000, "owner id"),
        (ROLE, "has space", 1000, "owner id"),
        (ROLE, "a", 0, "at least 10 ms"),
    ],
)
def test_bad_lease_parameters_are_refused(role: str, owner: str, ttl_ms: int, message: str) -> None:
    client = aioredis.Redis()
    with pytest.raises(ValueError, match=message):
        RedisLease(client, RedisKeys(), role, owner, ttl_ms)


async def test_an_unreachable_redis_raises_redis_unavailable(free_tcp_port: int) -> None:
    client = new_client(RedisSettings(url=f"redis://127.0.0.1:{free_tcp_port}/0", connect_timeout_s=1))
    holder = RedisLease(client, RedisKeys(), ROLE, default_owner_id(), 1_000)
    with pytest.raises(RedisUnavailableError, match="could not acquire"):
        await holder.acquire()
    with pytest.raises(RedisUnavailableError, match="could not check token"):
        await holder.check_token(1)
    await holder.release()  # never raises: nothing held
    await client.aclose()


def test_default_owner_ids_differ_between_leases_of_one_process() -> None:
    assert default_owner_id() != default_owner_id()


async def test_keep_gives_the_lease_up_when_redis_cannot_confirm_it_within_the_ttl(tmp_path: Path) -> None:
    """A holder cut off from Redis must assume the lease expired (another process may hold it now)."""
    server = EmbeddedRedis(tmp_path / "d")
    await server.start()
    client = new_client(RedisSettings(connect_timeout_s=1), socket=server.socket_path)
    try:
        holder = RedisLease(client, RedisKeys(), ROLE, "a", ttl_ms=300)
        assert await holder.acquire() is not None
        keeper = asyncio.create_task(holder.keep())
        await server.stop()
        with pytest.raises(LeaseLostError, match="no renewal confirmed within its TTL"):
            async with asyncio.timeout(10):
                await keeper
        assert holder.lost.is_set() and holder.token is None
    finally:
        await client.aclose()
        await server.stop()
