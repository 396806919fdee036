"""JSON in and out of handlers: object bodies, typed fields, pages and times (edge)."""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from datetime import datetime
from enum import StrEnum
from typing import TypeVar

from aiohttp import web

from callcenter.api.errors import InvalidJsonError
from callcenter.api.routing import JsonObject
from callcenter.errors import ValidationError
from callcenter.model.paging import DEFAULT_LIMIT, MAX_LIMIT, Page, check_limit

T = TypeVar("T")
E = TypeVar("E", bound=StrEnum)


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not valid JSON")


async def read_json_object(request: web.Request) -> JsonObject:
    """The request body as a JSON object.

    :raises InvalidJsonError: for an empty body, malformed JSON or JSON that is not an object.
    :raises aiohttp.web.HTTPRequestEntityTooLarge: for a body over the configured limit.
    """
    raw = await request.read()
    if not raw.strip():
        raise InvalidJsonError("the request body must be a JSON object, and it is empty")
    try:
        # Python's json accepts NaN and Infinity; JSON does not, and neither do we.
        value = json.loads(raw, parse_constant=_reject_constant)
    except UnicodeDecodeError:
        raise InvalidJsonError("the request body is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise InvalidJsonError(f"malformed JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    except ValueError as exc:
        raise InvalidJsonError(f"malformed JSON: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidJsonError(f"the request body must be a JSON object, not {_json_type(value)}")
    return value


def _json_type(value: object) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "null"


def reject_unknown_fields(body: JsonObject, allowed: Collection[str]) -> None:
    """:raises ValidationError: naming fields the route does not know (a typo must not pass silently)."""
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise ValidationError(
            f"unknown field(s): {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}"
        )


def text_field(body: JsonObject, name: str, *, default: str | None = None) -> str:
    """A string field; required unless ``default`` is given. :raises ValidationError:"""
    value = body.get(name, default)
    if value is None:
        raise ValidationError(f"{name} is required")
    if not isinstance(value, str):
        raise ValidationError(f"{name} must be a string")
    return value


def optional_text_field(body: JsonObject, name: str) -> str | None:
    """A string field that may be absent or null. :raises ValidationError:"""
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise ValidationError(f"{name} must be a string or null")
    return value


def enum_field(body: JsonObject, name: str, enum: type[E]) -> E:
    """A required field holding one of ``enum``'s values. :raises ValidationError:"""
    value = text_field(body, name)
    try:
        return enum(value)
    except ValueError:
        choices = ", ".join(member.value for member in enum)
        raise ValidationError(f"{name} must be one of {choices}") from None


def optional_time_field(body: JsonObject, name: str) -> datetime | None:
    """An ISO 8601 time with an offset, or absent/null. :raises ValidationError:"""
    value = optional_text_field(body, name)
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise ValidationError(f"{name} must be an ISO 8601 time, e.g. 2027-01-01T00:00:00+00:00") from None
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValidationError(f"{name} needs a UTC offset, e.g. 2027-01-01T00:00:00+00:00")
    return when


def iso(when: datetime | None) -> str | None:
    """A time as ISO 8601 with its offset; ``None`` stays ``None``."""
    return None if when is None else when.isoformat()


def page_params(request: web.Request) -> tuple[str | None, int]:
    """``?cursor=`` and ``?limit=`` (1..500, default 50) of a list request. :raises ValidationError:"""
    raw_limit = request.query.get("limit")
    if raw_limit is None:
        limit = DEFAULT_LIMIT
    else:
        try:
            limit = int(raw_limit)
        except ValueError:
            raise ValidationError(f"limit must be a whole number between 1 and {MAX_LIMIT}") from None
        check_limit(limit)
    cursor = request.query.get("cursor") or None
    return cursor, limit


def page_response(page: Page[T], serialize: Callable[[T], JsonObject]) -> web.Response:
    """A list answer: ``{"items": [...], "next": cursor or null}``."""
    return web.json_response({"items": [serialize(item) for item in page.items], "next": page.next})
