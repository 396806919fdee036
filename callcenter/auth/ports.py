"""Ports of the auth feature: where tokens and the audit log are kept."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from callcenter.model.paging import Page
from callcenter.model.records import ApiToken, AuditEntry


class TokenRepository(Protocol):
    """API tokens, stored by the hash of their secret (never the secret)."""

    async def add(self, token: ApiToken, secret_hash: str) -> None:
        """Store a new token. :raises ConflictError: if the id or hash exists."""
        ...

    async def find_by_hash(self, secret_hash: str) -> ApiToken | None:
        """The token whose secret hashes to ``secret_hash``, revoked or expired ones included."""
        ...

    async def get(self, token_id: str) -> ApiToken:
        """:raises NotFoundError: for an unknown id."""
        ...

    async def list(self, *, cursor: str | None, limit: int) -> Page[ApiToken]:
        """Tokens, newest first."""
        ...

    async def revoke(self, token_id: str, at: datetime) -> ApiToken:
        """Mark revoked (idempotent: a second revoke keeps the first time). :raises NotFoundError:"""
        ...

    async def touch(self, token_id: str, at: datetime) -> None:
        """Record a use of the token (best effort)."""
        ...


class AuditLog(Protocol):
    """Append-only record of writes by supervisors, admins and the CLI."""

    async def append(self, entry: AuditEntry) -> AuditEntry:
        """Store ``entry`` and return it with its id."""
        ...

    async def list(self, *, cursor: str | None, limit: int) -> Page[AuditEntry]:
        """Entries, newest first."""
        ...
