"""Bearer token values: secret format, hashing, header parsing and the caller's principal (pure)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Final

from callcenter.errors import AuthenticationError, PermissionDeniedError
from callcenter.model.vocabulary import Role

#: Every secret starts with this, so a leaked one is recognisable (secret scanners, logs).
SECRET_PREFIX: Final = "cc_"
#: ``secrets.token_urlsafe(32)``: 32 random bytes, 43 url-safe base64 characters without padding.
SECRET_BYTES: Final = 32
_SECRET_RE: Final = re.compile(r"cc_[A-Za-z0-9_-]{43}")


def looks_like_secret(secret: str) -> bool:
    """True when ``secret`` has the shape of a secret we issue (``cc_`` and 43 url-safe characters)."""
    return _SECRET_RE.fullmatch(secret) is not None


def hash_secret(secret: str) -> str:
    """The hex SHA-256 of ``secret``: what the store keeps instead of the secret.

    A plain fast hash is enough here: our secrets carry 256 random bits, so there is no dictionary to
    guess from and a slow password KDF (bcrypt, scrypt) would only add latency to every request.
    """
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_bearer(header: str | None) -> str:
    """The token inside an ``Authorization: Bearer <token>`` header value.

    :raises AuthenticationError: when the header is missing, uses another scheme or holds no token.
    """
    if header is None or not header.strip():
        raise AuthenticationError("missing bearer token: send 'Authorization: Bearer <token>'")
    scheme, _, token = header.strip().partition(" ")
    # RFC 7235: the scheme name is case-insensitive.
    if scheme.lower() != "bearer":
        raise AuthenticationError("unsupported authorization scheme: use 'Authorization: Bearer <token>'")
    token = token.strip()
    if not token or " " in token:
        raise AuthenticationError("malformed bearer token")
    return token


@dataclass(frozen=True, kw_only=True, slots=True)
class Principal:
    """Who is calling: the token that authenticated, its role, and the agent an agent token is bound to."""

    token_id: str
    role: Role
    agent_id: str | None = None
    label: str = ""

    @property
    def actor(self) -> str:
        """How the audit log names this caller: the token id, with its label when it has one."""
        return f"token:{self.token_id} ({self.label})" if self.label else f"token:{self.token_id}"

    def has_role(self, required: Role) -> bool:
        return self.role.includes(required)


def require_role(principal: Principal, required: Role) -> None:
    """:raises PermissionDeniedError: when ``principal``'s role is below ``required``."""
    if not principal.has_role(required):
        raise PermissionDeniedError(
            f"this needs a {required.value} token or higher (yours: {principal.role})"
        )


def require_agent_access(principal: Principal, agent_id: str) -> None:
    """Allow supervisors and admins for any agent, and an agent token only for its own agent.

    :raises PermissionDeniedError: for an agent token bound to another agent (or to none).
    """
    if principal.has_role(Role.SUPERVISOR):
        return
    if principal.agent_id is None or principal.agent_id != agent_id:
        raise PermissionDeniedError("an agent token may only act for its own agent")
