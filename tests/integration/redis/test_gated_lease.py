"""The dispatcher's lease, taken and kept only while this process's ARI link is up (issue #7: the
dispatcher runs in the process that owns the ARI link), against real Redis."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from callcenter.bus import Lease
from callcenter.errors import LeaseLostError
from callcenter.store.redis_keys import RedisKeys
from callcenter.store.redis_lease import RedisLease
from callcenter.wiring.dispatch import DISPATCH_ROLE, GatedLease

pytestmark = [pytest.mark.integration, pytest.mark.timeout(30)]


def _lease(client: aioredis.Redis, keys: RedisKeys, owner: str) -> RedisLease:
    return RedisLease(client, keys, DISPATCH_ROLE, owner, 3_000)


async def test_a_closed_gate_never_takes_a_free_lease(redis_client: aioredis.Redis, keys: RedisKeys) -> None:
    link_up = False
    gated: Lease = GatedLease(_lease(redis_client, keys, "standby-process"), lambda: link_up)
    assert await gated.acquire() is None, "no ARI link here: the dispatcher lease is left to its owner"
    assert await redis_client.get(keys.lease(DISPATCH_ROLE)) is None
    link_up = True
    token = await gated.acquire()
    assert token is not None
    assert await redis_client.get(keys.lease(DISPATCH_ROLE)) == f"standby-process:{token}".encode()
    await gated.release()


async def test_the_lease_is_given_up_when_the_gate_closes_and_another_process_takes_it(
    redis_client: aioredis.Redis, keys: RedisKeys
) -> None:
    link_up = True
    inner = _lease(redis_client, keys, "was-owner")
    gated = GatedLease(inner, lambda: link_up, check_s=0.05)
    first = await gated.acquire()
    assert first is not None and gated.token == first
    keeper = asyncio.create_task(gated.keep())
    await asyncio.sleep(0.1)
    assert not keeper.done()

    link_up = False  # the ARI link moved to another process
    assert gated.token is None, "no token while the link is not up here: nothing is dialled"
    with pytest.raises(LeaseLostError):
        async with asyncio.timeout(5):
            await keeper
    assert await redis_client.get(keys.lease(DISPATCH_ROLE)) is None, "released at once, not left to expire"
    new_owner = _lease(redis_client, keys, "new-owner")
    second = await new_owner.acquire()
    assert second is not None and second > first, "the fencing token still grows"
    await new_owner.release()
