"""The exception tree of the call centre (shared, no HTTP or protocol knowledge).

::

    CallCenterError
    ├── ConfigError                   a setting is missing or invalid (names the variable)
    ├── ValidationError               input we cannot accept (a body, a phone number, a query)
    │   └── InvalidPhoneNumberError
    ├── NotFoundError                 an id or name we do not know
    │   └── ChannelGoneError          the channel hung up (or never existed) on the PBX
    ├── ConflictError                 the request contradicts the current state
    ├── AuthError
    │   ├── AuthenticationError       no token, unknown, expired or revoked token
    │   └── PermissionDeniedError     a valid token whose role is too low
    ├── DependencyError               something we run on is not reachable
    │   ├── StoreUnavailableError
    │   ├── RedisUnavailableError
    │   └── AsteriskUnavailableError
    └── LeaseLostError                a single-owner role was taken by another process

``callcenter.api.errors`` holds the one table from these types to HTTP statuses.
"""

from __future__ import annotations


class CallCenterError(Exception):
    """Base of every error this project raises on purpose."""


class ConfigError(CallCenterError):
    """A setting is missing or invalid; the message names the variable."""


class ValidationError(CallCenterError):
    """Input that cannot be accepted as it is."""


class InvalidPhoneNumberError(ValidationError):
    """A phone number that does not parse or is not a valid number."""


class NotFoundError(CallCenterError):
    """An id or name that is not known."""


class ChannelGoneError(NotFoundError):
    """A telephony command named a channel the PBX no longer has (the caller hung up meanwhile)."""


class ConflictError(CallCenterError):
    """The request contradicts the current state."""


class AuthError(CallCenterError):
    """Base of authentication and authorisation failures."""


class AuthenticationError(AuthError):
    """No token, or an unknown, expired or revoked token."""


class PermissionDeniedError(AuthError):
    """A valid token whose role is too low for the request."""


class DependencyError(CallCenterError):
    """A service we depend on cannot be reached."""


class StoreUnavailableError(DependencyError):
    """The SQL store cannot be reached or refused the operation."""


class RedisUnavailableError(DependencyError):
    """Redis cannot be reached."""


class AsteriskUnavailableError(DependencyError):
    """Asterisk's ARI cannot be reached."""


class LeaseLostError(CallCenterError):
    """This process no longer holds a lease (another process took it over)."""
