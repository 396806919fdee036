"""API tokens and the audit log: issue, authenticate, list, revoke, record (service)."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Final, TypeAlias

from callcenter.auth.ports import AuditLog, TokenRepository
from callcenter.auth.tokens import SECRET_BYTES, SECRET_PREFIX, Principal, hash_secret, looks_like_secret
from callcenter.clock import Clock
from callcenter.errors import AuthenticationError, DependencyError, NotFoundError, ValidationError
from callcenter.model.paging import Page, check_limit
from callcenter.model.records import ApiToken, AuditEntry
from callcenter.model.vocabulary import Role

logger = logging.getLogger(__name__)

#: Who did something: an authenticated API caller, or a name such as ``"cli"``.
Actor: TypeAlias = Principal | str

MAX_LABEL_LENGTH: Final = 200
#: ``last_used_at`` is refreshed at most this often, so a busy client does not cost a write per request.
TOUCH_INTERVAL: Final = timedelta(seconds=60)


class AuthService:
    """Issues and checks API tokens and keeps the audit log.

    :param tokens: where tokens are stored (by the hash of their secret).
    :param audit: the append-only audit log.
    :param clock: the time source for creation, expiry and audit times.
    """

    def __init__(self, tokens: TokenRepository, audit: AuditLog, clock: Clock) -> None:
        self._tokens = tokens
        self._audit = audit
        self._clock = clock

    async def create_token(
        self,
        *,
        role: Role,
        agent_id: str | None,
        label: str,
        expires_at: datetime | None,
        actor: Actor,
    ) -> tuple[ApiToken, str]:
        """Store a new token and return it with its secret, which is never shown again.

        :raises ValidationError: an agent token without ``agent_id``, another role with one, a label
            too long, or ``expires_at`` without an offset or not in the future.
        """
        now = self._clock.now()
        agent_id = agent_id.strip() if agent_id is not None else None
        if role is Role.AGENT and not agent_id:
            raise ValidationError("an agent token needs the agent id it acts for")
        if role is not Role.AGENT and agent_id is not None:
            raise ValidationError(f"a {role.value} token is not bound to an agent: leave agent_id out")
        label = label.strip()
        if len(label) > MAX_LABEL_LENGTH:
            raise ValidationError(f"label is longer than {MAX_LABEL_LENGTH} characters")
        if expires_at is not None:
            if expires_at.tzinfo is None or expires_at.utcoffset() is None:
                raise ValidationError("expires_at needs a UTC offset, e.g. 2027-01-01T00:00:00+00:00")
            if expires_at <= now:
                raise ValidationError("expires_at is in the past")
            expires_at = expires_at.astimezone(UTC)
        token = ApiToken(
            id=f"tok_{secrets.token_hex(8)}",
            role=role,
            agent_id=agent_id,
            label=label,
            created_at=now,
            expires_at=expires_at,
        )
        secret = SECRET_PREFIX + secrets.token_urlsafe(SECRET_BYTES)
        await self._tokens.add(token, hash_secret(secret))
        await self.record(
            actor,
            "token.create",
            token.id,
            {
                "role": role.value,
                "agent_id": agent_id,
                "label": label,
                "expires_at": expires_at.isoformat() if expires_at else None,
            },
        )
        return token, secret

    async def authenticate(self, secret: str) -> Principal:
        """The principal of a valid token, recording its use.

        :raises AuthenticationError: for an unknown, revoked or expired token (the message says which).
        """
        if not looks_like_secret(secret):
            raise AuthenticationError("unknown token")
        token = await self._tokens.find_by_hash(hash_secret(secret))
        if token is None:
            raise AuthenticationError("unknown token")
        now = self._clock.now()
        if token.revoked_at is not None:
            raise AuthenticationError("token revoked")
        if token.expires_at is not None and now >= token.expires_at:
            raise AuthenticationError("token expired")
        if token.last_used_at is None or now - token.last_used_at >= TOUCH_INTERVAL:
            try:
                await self._tokens.touch(token.id, now)
            except DependencyError as exc:
                # last_used_at is bookkeeping: a store hiccup here must not turn away a valid caller.
                logger.warning("could not record use of token %s: %s", token.id, exc)
        return Principal(token_id=token.id, role=token.role, agent_id=token.agent_id, label=token.label)

    async def principal_of_token(self, token_id: str) -> Principal:
        """The principal of a token known by id (a browser session), if it is still valid.

        :raises AuthenticationError: for an unknown, revoked or expired token.
        """
        try:
            token = await self._tokens.get(token_id)
        except NotFoundError:
            raise AuthenticationError("the session's token no longer exists: sign in again") from None
        if token.revoked_at is not None:
            raise AuthenticationError("token revoked")
        if token.expires_at is not None and self._clock.now() >= token.expires_at:
            raise AuthenticationError("token expired")
        return Principal(token_id=token.id, role=token.role, agent_id=token.agent_id, label=token.label)

    async def expiry_of(self, token_id: str) -> datetime | None:
        """When a token expires (``None``: never). :raises NotFoundError: for an unknown id."""
        return (await self._tokens.get(token_id)).expires_at

    async def list_tokens(self, *, cursor: str | None, limit: int) -> Page[ApiToken]:
        """Tokens, newest first. :raises ValidationError: for a bad ``limit`` or ``cursor``."""
        return await self._tokens.list(cursor=cursor, limit=check_limit(limit))

    async def revoke(self, token_id: str, *, actor: Actor) -> ApiToken:
        """Revoke a token; revoking it again changes nothing and is not audited twice.

        :raises NotFoundError: for an unknown id.
        """
        existing = await self._tokens.get(token_id)
        if existing.revoked_at is not None:
            return existing
        token = await self._tokens.revoke(token_id, self._clock.now())
        await self.record(actor, "token.revoke", token_id, {"role": token.role.value, "label": token.label})
        return token

    async def list_audit(self, *, cursor: str | None, limit: int) -> Page[AuditEntry]:
        """Audit entries, newest first. :raises ValidationError: for a bad ``limit`` or ``cursor``."""
        return await self._audit.list(cursor=cursor, limit=check_limit(limit))

    async def record(
        self,
        actor: Actor,
        action: str,
        target: str = "",
        detail: Mapping[str, object] | None = None,
    ) -> AuditEntry:
        """Append one entry to the audit log, now, and return it with its id.

        :param actor: the API caller (its token id, label and role are recorded) or a name like ``"cli"``.
        """
        if isinstance(actor, Principal):
            name, role = actor.actor, actor.role
        else:
            name, role = actor, None
        entry = AuditEntry(
            at=self._clock.now(),
            actor=name,
            role=role,
            action=action,
            target=target,
            detail=dict(detail or {}),
        )
        return await self._audit.append(entry)
