"""A callback dispatcher process for the crash test: ``python -m tests.system.dispatch_worker ...``.

It runs the product's dispatcher (store on PostgreSQL, lease on Redis, its own ARI application on
the simulated Asterisk) with a pool of agents that are always free: what is under test is that no
attempt is dialled twice and every callback ends once, whoever leads. It runs until killed.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from datetime import time

import aiohttp
from redis import asyncio as aioredis

from callcenter.ari.client import AriClient
from callcenter.ari.link import AriLink, LinkStatus
from callcenter.ari.originate import AriCallbackCalls, CallbackCallSettings
from callcenter.callbacks.dispatch import DispatchSettings
from callcenter.callbacks.dispatcher import CallbackDispatcher
from callcenter.clock import SystemClock
from callcenter.config import AriSettings, BusSettings, DatabaseSettings
from callcenter.model.records import QueueRecord
from callcenter.store.database import create_engine
from callcenter.store.redis_bus import RedisEventBus
from callcenter.store.redis_keys import RedisKeys
from callcenter.store.redis_lease import RedisLease, default_owner_id
from callcenter.store.sql_dispatch import SqlDispatchStore
from callcenter.wiring.dispatch import DISPATCH_ROLE, run_dispatch_loop


class PoolDesk:
    """``AgentDesk`` of agents that are always staffed; one callback each at a time (this process)."""

    def __init__(self, endpoints: list[str]) -> None:
        self._free = {endpoint.rpartition("/")[2]: endpoint for endpoint in endpoints}
        self._held: set[str] = set()

    async def free_agents(self, queue: str) -> tuple[tuple[str, str], ...]:
        return tuple((a, e) for a, e in sorted(self._free.items()) if a not in self._held)

    async def hold(self, agent_id: str, why: str, *, asked: bool = False) -> bool:
        if agent_id in self._held:
            return False
        self._held.add(agent_id)
        return True

    async def release(self, agent_id: str, *, wrap_up_in: str | None = None) -> None:
        self._held.discard(agent_id)  # no wrap-up here: the agents only stand in for people

    async def endpoint_of(self, agent_id: str) -> str:
        return self._free[agent_id]


class OneQueue:
    async def get(self, name: str) -> QueueRecord:
        return QueueRecord(name=name, business_number="+14155550199")

    async def list(self) -> tuple[QueueRecord, ...]:
        return (QueueRecord(name="sales"),)


async def main(args: argparse.Namespace) -> None:
    ari = AriSettings(url=args.ari, username=args.user, password=args.password, app="crash-callbacks")
    engine = create_engine(DatabaseSettings(url=args.db))
    redis = aioredis.from_url(args.redis)
    keys = RedisKeys(args.prefix)
    store = SqlDispatchStore(engine)
    async with aiohttp.ClientSession() as session:
        client = AriClient(session, ari)
        calls = AriCallbackCalls(
            client,
            CallbackCallSettings(
                app=ari.app,
                confirm_media=("sound:callback-confirm",),
                confirm_s=3,
                agent_ring_s=3,
                customer_ring_s=3,
                whisper=False,
            ),
        )
        lease = RedisLease(redis, keys, DISPATCH_ROLE, default_owner_id(), ttl_ms=args.ttl_ms)
        token_link: list[AriLink] = []

        def token() -> int | None:
            return lease.token if token_link and token_link[0].status is LinkStatus.UP else None

        dispatcher = CallbackDispatcher(
            store,
            calls,
            PoolDesk([f"PJSIP/agent{i}" for i in range(args.agents)]),
            OneQueue(),
            RedisEventBus(redis, keys, BusSettings()),
            SystemClock(),
            role=DISPATCH_ROLE,
            token=token,
            settings=DispatchSettings(
                retry_s=0.3,
                retry_factor=1.0,
                retry_max_s=1.0,
                max_attempts=5,
                confirm_s=3,
                agent_ring_s=3,
                customer_ring_s=3,
                poll_s=0.05,
                disposition_wait_s=0.2,
                dial_from=time(0, 0),
                dial_until=time(23, 59),
            ),
        )
        link = AriLink(
            session,
            ari,
            calls.on_event,
            on_connected=dispatcher.reconcile,
            lease=lease,
            reconnect_min_s=0.05,
            reconnect_max_s=0.5,
            standby_retry_s=0.1,
        )
        token_link.append(link)
        await run_dispatch_loop(dispatcher, link, lease, poll_s=0.05)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    for name in ("ari", "user", "password", "db", "redis", "prefix"):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--ttl-ms", type=int, default=1500)
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main(parser.parse_args()))
