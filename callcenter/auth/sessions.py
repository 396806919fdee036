"""Browser sessions: a page signs in once with a token and gets a session id for an HttpOnly cookie
(service).

The session id is a random secret shown only to the browser (in its cookie); the store keeps its hash
and the token id it stands for, with a time to live that never outlasts the token. Every use checks the
token again, so revoking the token ends its sessions at once.
"""

from __future__ import annotations

import math
import secrets
from typing import Final, Protocol

from callcenter.auth.service import AuthService
from callcenter.auth.tokens import Principal, hash_secret
from callcenter.clock import Clock
from callcenter.errors import AuthenticationError

SESSION_BYTES: Final = 32


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

    def __init__(self, store: SessionStore, auth: AuthService, clock: Clock, *, ttl_s: float) -> None:
        self._store = store
        self._auth = auth
        self._clock = clock
        self._ttl_s = ttl_s

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
        """Who a session acts for, checked against the token now.

        :raises AuthenticationError: for an unknown or expired session, or a revoked or expired token.
        """
        if not session_id or len(session_id) > 128:
            raise AuthenticationError("no session: sign in again")
        token_id = await self._store.get(hash_secret(session_id))
        if token_id is None:
            raise AuthenticationError("session expired or unknown: sign in again")
        return await self._auth.principal_of_token(token_id)

    async def close(self, session_id: str) -> None:
        await self._store.delete(hash_secret(session_id))
