"""Every Redis key name we use, built from the configured prefix (edge).

No other module spells a key: adapters take a :class:`RedisKeys` and ask it. Keeping the names in
one place is what lets two deployments (or two test runs) share one Redis server under different
prefixes, and lets tests delete exactly their own keys with :meth:`RedisKeys.pattern`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from callcenter.config import RedisSettings

#: Roles and other name parts that end up inside keys: no ':' so one name can never read as another.
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}")
_GLOB_SPECIAL: Final = re.compile(r"([*?\[\]\\])")


@dataclass(frozen=True, slots=True)
class RedisKeys:
    """Key names under one prefix (``cc:`` by default).

    :param prefix: non-empty and ending with ``:`` (``CALLCENTER_REDIS_KEY_PREFIX`` is validated the same way).
    :raises ValueError: for a prefix that is empty or does not end with ``:``.
    """

    prefix: str = "cc:"

    def __post_init__(self) -> None:
        if not self.prefix or not self.prefix.endswith(":"):
            raise ValueError(f"Redis key prefix {self.prefix!r} must be non-empty and end with ':'")

    @classmethod
    def from_settings(cls, settings: RedisSettings) -> RedisKeys:
        return cls(settings.key_prefix)

    @property
    def events(self) -> str:
        """The one stream of domain events (consumer groups hang off it)."""
        return f"{self.prefix}events"

    @property
    def dead_letters(self) -> str:
        """Events no consumer could handle, with the reason."""
        return f"{self.prefix}events:dead"

    @property
    def agent_requests(self) -> str:
        """The pub/sub channel of agents' requests for the process that runs the live queue."""
        return f"{self.prefix}agents:requests"

    def agent_reply(self, request_id: str) -> str:
        """The list one answer to an agent's request is pushed to (it expires)."""
        return f"{self.prefix}agents:reply:{check_name(request_id, 'request id')}"

    def lease(self, role: str) -> str:
        """The lease of a single-owner ``role``; its value is ``<owner>:<fencing token>``."""
        return f"{self.prefix}lease:{check_name(role, 'lease role')}"

    def lease_fence(self, role: str) -> str:
        """The fencing counter of ``role``: never expires, so tokens only grow."""
        return f"{self.prefix}fence:{check_name(role, 'lease role')}"

    def pattern(self) -> str:
        """A ``SCAN MATCH`` pattern for every key under this prefix (glob characters escaped)."""
        return _GLOB_SPECIAL.sub(r"\\\1", self.prefix) + "*"


def check_name(name: str, what: str) -> str:
    """Return ``name`` if it is safe inside a key (letters, digits, ``_ . -``; 1 to 100 characters).

    :raises ValueError: naming ``what`` and the bad value.
    """
    if not _NAME.fullmatch(name):
        raise ValueError(f"{what} {name!r} must be 1-100 letters, digits, '_', '.' or '-'")
    return name
