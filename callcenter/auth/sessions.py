"""Browser sessions: a page signs in once with a token and gets a session id for an HttpOnly cookie
(service).

The session id is a random secret shown only to the browser (in its cookie); the store keeps its hash
and the token id it stands for, with a time to live that never outlasts the token. The session and its
token are checked again at most every :data:`RECHECK_S` seconds, so revoking the token ends its
sessions within that time; signing out ends the session at once.
"""

from __future__ import annotations

import asyncio
import math
import secrets
from datetime import datetime
from typing import Final, Protocol

from callcenter.auth.service import AuthService
from callcenter.auth.tokens import Principal, hash_secret
from callcenter.clock import Clock
from callcenter.errors import AuthenticationError

SESSION_BYTES: Final = 32
#: A session and its token are read again after this long (revoking a token ends its sessions within it).
RECHECK_S: Final = 5.0
MAX_REMEMBERED: Final = 10_000


class SessionStore(Protocol):
    """Session ids (by hash) and the token each stands for, expiring by themselves."""

    async def put(self, session_hash: str, token_id: str, ttl_s: int) -> None:
        """Keep the session for ``ttl_s`` seconds."""
        ...

    async def get(self, session_hash: str) -> str | None:
        """The token id of a live session, ``None`` when unknown or expired."""
        ...

    async def delete(self, session_hash: str) -> None:
        """End the session (ending an unknown one is harmless)."""
        ...


class SessionService:
    """Opens, checks and closes browser sessions.

    :param ttl_s: the longest a session lives; it is cut to the token's own expiry.
    """

    def __init__(
        self,
        store: SessionStore,
        auth: AuthService,
        clock: Clock,
        *,
        ttl_s: float,
        recheck_s: float = RECHECK_S,
    ) -> None:
        self._store = store
        self._auth = auth
        self._clock = clock
        self._ttl_s = ttl_s
        self._recheck_s = recheck_s
        # session hash -> (principal, when checked): many tabs or wall screens sharing one session
        # (and a burst of reconnects) cost one store and token read per ``recheck_s``, not one each.
        self._checked: dict[str, tuple[Principal, datetime]] = {}
        self._inflight: dict[str, asyncio.Future[Principal]] = {}

    async def open(self, secret: str) -> tuple[str, Principal, int]:
        """Sign in with an API token: the new session id, who it is, and its lifetime in seconds.

        :raises AuthenticationError: for an unknown, revoked or expired token.
        """
        principal = await self._auth.authenticate(secret)
        ttl = self._ttl_s
        expires_at = await self._auth.expiry_of(principal.token_id)
        if expires_at is not None:
            ttl = min(ttl, (expires_at - self._clock.now()).total_seconds())
        seconds = max(1, math.floor(ttl))
        session_id = secrets.token_urlsafe(SESSION_BYTES)
        await self._store.put(hash_secret(session_id), principal.token_id, seconds)
        return session_id, principal, seconds

    async def principal(self, session_id: str) -> Principal:
        """Who a session acts for, checked against the store and the token at most every ``recheck_s``.

        Concurrent checks of one session share a single read.

        :raises AuthenticationError: for an unknown or expired session, or a revoked or expired token.
        """
        if not session_id or len(session_id) > 128:
            raise AuthenticationError("no session: sign in again")
        key = hash_secret(session_id)
        now = self._clock.now()
        checked = self._checked.get(key)
        if checked is not None and (now - checked[1]).total_seconds() < self._recheck_s:
            return checked[0]
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Principal] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            principal = await self._check(key)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            self._checked.pop(key, None)
            future.set_exception(exc)
            future.exception()  # retrieved here: waiters re-raise it, nobody else must
            raise
        else:
            future.set_result(principal)
            self._remember(key, principal, now)
            return principal
        finally:
            del self._inflight[key]

    async def _check(self, key: str) -> Principal:
        token_id = await self._store.get(key)
        if token_id is None:
            raise AuthenticationError("session expired or unknown: sign in again")
        return await self._auth.principal_of_token(token_id)

    def _remember(self, key: str, principal: Principal, now: datetime) -> None:
        if len(self._checked) >= MAX_REMEMBERED:
            self._checked.clear()
        self._checked[key] = (principal, now)

    async def close(self, session_id: str) -> None:
        key = hash_secret(session_id)
        self._checked.pop(key, None)
        await self._store.delete(key)
