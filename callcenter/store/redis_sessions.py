"""Browser sessions in Redis, expiring by themselves (edge): ``<prefix>session:<hash of the id>`` -> token id."""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from callcenter.errors import RedisUnavailableError
from callcenter.store.redis_keys import RedisKeys


class RedisSessionStore:
    """:class:`callcenter.auth.sessions.SessionStore` on Redis (every process of the service shares it)."""

    def __init__(self, client: aioredis.Redis, keys: RedisKeys) -> None:
        self._client = client
        self._prefix = f"{keys.prefix}session:"

    async def put(self, session_hash: str, token_id: str, ttl_s: int) -> None:
        try:
            await self._client.set(self._prefix + session_hash, token_id.encode(), ex=ttl_s)
        except (RedisError, OSError) as exc:
            raise RedisUnavailableError(f"could not store the session: {exc}") from exc

    async def get(self, session_hash: str) -> str | None:
        try:
            value = await self._client.get(self._prefix + session_hash)
        except (RedisError, OSError) as exc:
            raise RedisUnavailableError(f"could not read the session: {exc}") from exc
        if value is None:
            return None
        return value.decode() if isinstance(value, bytes) else str(value)

    async def delete(self, session_hash: str) -> None:
        try:
            await self._client.delete(self._prefix + session_hash)
        except (RedisError, OSError) as exc:
            raise RedisUnavailableError(f"could not end the session: {exc}") from exc
