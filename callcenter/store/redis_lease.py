"""Single-owner leases with fencing tokens on Redis (edge).

The lease of a role is one key, ``<prefix>lease:<role>``, holding ``<owner>:<token>`` with a TTL. The
token comes from a per-role counter, ``<prefix>fence:<role>``, that never expires, so every
acquisition gets a larger token than any before it. Take, renew and release are Lua scripts (atomic):
a token is spent only when the lease is actually taken, and only the holder of the exact
``<owner>:<token>`` may renew or release. Whatever the lease guards should carry the token and
refuse a smaller one: a holder paused past its TTL (GC, a stalled loop, a network split) may still
believe it holds the lease for a moment, and the token is what turns its late writes away.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from typing import Final, NoReturn

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from callcenter.errors import LeaseLostError, RedisUnavailableError
from callcenter.store.redis_keys import RedisKeys

logger = logging.getLogger(__name__)

_RETRYABLE: Final = (RedisError, OSError, TimeoutError)
_MAX_OP_TIMEOUT_S: Final = 5.0

# KEYS: lease, fence. ARGV: owner, ttl ms, the value we hold now ("" if none).
# Returns the token, or nil when another holder has it. Re-acquiring what we hold extends it.
_ACQUIRE: Final = """
local current = redis.call('GET', KEYS[1])
if current then
  if current == ARGV[3] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return tonumber(string.match(current, ':(%d+)$'))
  end
  return false
end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. token, 'PX', ARGV[2])
return token
"""

# KEYS: lease. ARGV: the exact value we hold, ttl ms. 1 when extended, 0 when no longer ours.
_RENEW: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

# KEYS: lease. ARGV: the exact value we hold. 1 when deleted, 0 when it was no longer ours.
_RELEASE: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def default_owner_id() -> str:
    """An owner id unique to this process: ``<host>:<pid>:<random>``."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class RedisLease:
    """:class:`callcenter.bus.Lease` on Redis.

    :param role: the single-owner role, e.g. ``callback-dispatcher`` or ``ari-link.pbx1``.
    :param owner_id: unique per process (:func:`default_owner_id`); it shows who holds the lease.
    :param ttl_ms: how long the lease lives without renewal; :meth:`keep` renews every third of it.
    :raises ValueError: for a bad role or owner id, or a TTL under 10 ms.

    ``acquire``, ``renew`` and ``check_token`` raise :class:`RedisUnavailableError` when Redis cannot
    answer: the caller must then treat the lease as not confirmed. ``release`` never raises (an
    unreleased lease expires within its TTL).
    """

    def __init__(
        self, client: aioredis.Redis, keys: RedisKeys, role: str, owner_id: str, ttl_ms: int
    ) -> None:
        if ttl_ms < 10:
            raise ValueError(f"lease TTL must be at least 10 ms, got {ttl_ms!r}")
        if not owner_id or len(owner_id) > 200 or not owner_id.isprintable() or " " in owner_id:
            raise ValueError(f"lease owner id {owner_id!r} must be 1-200 printable characters without spaces")
        self._lease_key = keys.lease(role)
        self._fence_key = keys.lease_fence(role)
        self._role = role
        self._owner = owner_id
        self._ttl_ms = ttl_ms
        self._op_timeout_s = min(ttl_ms / 1000, _MAX_OP_TIMEOUT_S)
        self._acquire = client.register_script(_ACQUIRE)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)
        self._client = client
        self._value: str | None = None  # "<owner>:<token>" while we believe we hold the lease
        self._token: int | None = None
        self._valid_until = 0.0  # loop time up to which the lease is surely still ours
        self._lost = asyncio.Event()

    @property
    def role(self) -> str:
        return self._role

    @property
    def owner_id(self) -> str:
        return self._owner

    @property
    def token(self) -> int | None:
        """The fencing token of the lease this object holds, or ``None``."""
        return self._token

    @property
    def lost(self) -> asyncio.Event:
        return self._lost

    async def acquire(self) -> int | None:
        """Take the lease if free (or extend it if this object holds it); the token, or ``None``."""
        started = asyncio.get_running_loop().time()
        try:
            async with asyncio.timeout(self._op_timeout_s):
                token = await self._acquire(
                    keys=[self._lease_key, self._fence_key],
                    args=[self._owner, self._ttl_ms, self._value or ""],
                )
        except _RETRYABLE as exc:
            raise RedisUnavailableError(f"lease {self._role}: could not acquire: {exc!r}") from exc
        if token is None:
            if self._value is not None:
                self._mark_lost("another holder has it")
            return None
        self._token = int(token)
        self._value = f"{self._owner}:{self._token}"
        self._valid_until = started + self._ttl_ms / 1000
        self._lost.clear()
        logger.info("lease %s acquired by %s with token %d", self._role, self._owner, self._token)
        return self._token

    async def renew(self) -> bool:
        if self._value is None:
            return False
        started = asyncio.get_running_loop().time()
        try:
            async with asyncio.timeout(self._op_timeout_s):
                renewed = await self._renew(keys=[self._lease_key], args=[self._value, self._ttl_ms])
        except _RETRYABLE as exc:
            raise RedisUnavailableError(f"lease {self._role}: could not renew: {exc!r}") from exc
        if not renewed:
            self._mark_lost("expired or taken over")
            return False
        self._valid_until = started + self._ttl_ms / 1000
        return True

    async def release(self) -> None:
        value, self._value, self._token = self._value, None, None
        if value is None:
            return
        try:
            async with asyncio.timeout(self._op_timeout_s):
                await self._release(keys=[self._lease_key], args=[value])
        except _RETRYABLE as exc:
            logger.warning(
                "lease %s: release failed (%r); it expires within %d ms", self._role, exc, self._ttl_ms
            )
            return
        logger.info("lease %s released by %s", self._role, self._owner)

    async def check_token(self, token: int) -> bool:
        try:
            async with asyncio.timeout(self._op_timeout_s):
                current = await self._client.get(self._lease_key)
        except _RETRYABLE as exc:
            raise RedisUnavailableError(f"lease {self._role}: could not check token: {exc!r}") from exc
        current_token = _token_of(current)
        if token == self._token and current_token != token:
            self._mark_lost(f"token {token} is no longer current")
        return current_token is not None and current_token == token

    async def keep(self) -> NoReturn:
        if self._value is None:
            self._lost.set()
            raise LeaseLostError(f"lease {self._role} is not held by {self._owner}")
        loop = asyncio.get_running_loop()
        every_s = self._ttl_ms / 3000
        wait_s = every_s
        while True:
            await asyncio.sleep(wait_s)
            wait_s = every_s
            if self._value is None:
                raise LeaseLostError(f"lease {self._role} was released or lost while kept")
            try:
                if await self.renew():
                    continue
            except RedisUnavailableError as exc:
                remaining = self._valid_until - loop.time()
                if remaining > 0:
                    # Still surely ours for `remaining`: retry sooner than usual, before it can lapse.
                    logger.warning("lease %s: %s; retrying", self._role, exc)
                    wait_s = min(every_s, remaining / 2)
                    continue
                self._mark_lost("no renewal confirmed within its TTL")
                raise LeaseLostError(f"lease {self._role}: no renewal confirmed within its TTL") from exc
            raise LeaseLostError(f"lease {self._role} was lost by {self._owner}")

    def _mark_lost(self, why: str) -> None:
        if self._value is not None:
            logger.warning("lease %s lost by %s (token %s): %s", self._role, self._owner, self._token, why)
        self._value = None
        self._token = None
        self._lost.set()


def _token_of(value: bytes | str | None) -> int | None:
    if value is None:
        return None
    text = value.decode() if isinstance(value, bytes) else value
    _, _, token = text.rpartition(":")
    return int(token) if token.isdigit() else None
