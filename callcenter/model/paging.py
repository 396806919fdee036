"""Keyset pagination: a page of items and the opaque cursor of the next one (pure)."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Generic, TypeVar

from callcenter.errors import ValidationError

T = TypeVar("T")

DEFAULT_LIMIT = 50
MAX_LIMIT = 500


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """Items in order, and ``next``: the cursor for the following page, ``None`` on the last one."""

    items: tuple[T, ...]
    next: str | None


def encode_cursor(key: tuple[str | int | float, ...]) -> str:
    """An opaque cursor for the sort key of the last item on a page."""
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str | int | float, ...]:
    """The sort key inside ``cursor``.

    :raises ValidationError: when the cursor was not made by :func:`encode_cursor`.
    """
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise ValidationError("invalid cursor") from exc
    if not isinstance(key, list) or not all(isinstance(k, str | int | float) for k in key):
        raise ValidationError("invalid cursor")
    return tuple(key)


def check_limit(limit: int) -> int:
    """``limit`` if it is a page size we serve, else :class:`ValidationError`."""
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationError(f"limit must be between 1 and {MAX_LIMIT}")
    return limit
