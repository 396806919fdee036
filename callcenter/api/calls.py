"""Handlers of ``/api/v1/calls``: inbound calls with their outcomes, filtered, and one call's timeline (edge)."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web

from callcenter.api.jsonio import page_params, page_response
from callcenter.api.queues import queue_service
from callcenter.api.schemas import call_detail_json, call_json
from callcenter.errors import InvalidPhoneNumberError, ValidationError
from callcenter.model.phone import require_e164
from callcenter.model.vocabulary import CallOutcome
from callcenter.queue.ports import CallFilter


def number_param(raw: str, default_region: str) -> str:
    """The E.164 number of ``?number=``: percent-encoded (``%2B1415...``) or with a raw ``+``.

    A raw ``+`` in a query string decodes as a space (form encoding); it is read back as ``+``.

    :raises InvalidPhoneNumberError: for anything but a valid E.164 number.
    """
    text = raw.strip()
    if raw[:1] == " " and text[:1].isdigit():
        text = "+" + text
    if not text.startswith("+"):
        raise InvalidPhoneNumberError(
            f"number must be E.164, e.g. +14155550100 (send the + as %2B): {raw.strip()!r}"
        )
    return require_e164(text, default_region)


def time_param(name: str, raw: str) -> datetime:
    """An ISO 8601 time with an offset from the query string (a raw ``+`` read back). :raises ValidationError:"""
    text = raw.strip()
    for candidate in (text, "+".join(text.rsplit(" ", 1))):
        try:
            when = datetime.fromisoformat(candidate)
        except ValueError:
            continue
        if when.tzinfo is None or when.utcoffset() is None:
            raise ValidationError(f"{name} needs a UTC offset, e.g. 2026-11-23T14:00:00+00:00")
        return when
    raise ValidationError(f"{name} must be an ISO 8601 time, e.g. 2026-11-23T14:00:00Z")


def call_filter(request: web.Request, default_region: str) -> CallFilter:
    """The filters of ``GET /calls``. :raises ValidationError:"""
    query = request.query
    outcome = None
    if "outcome" in query:
        try:
            outcome = CallOutcome(query["outcome"].strip())
        except ValueError:
            choices = ", ".join(o.value for o in CallOutcome)
            raise ValidationError(f"outcome must be one of {choices}") from None
    since = time_param("since", query["since"]) if "since" in query else None
    until = time_param("until", query["until"]) if "until" in query else None
    if since is not None and until is not None and until <= since:
        raise ValidationError("until must come after since")
    return CallFilter(
        outcome=outcome,
        queue=query.get("queue", "").strip() or None,
        caller=number_param(query["number"], default_region) if "number" in query else None,
        since=since,
        until=until,
    )


async def list_calls(request: web.Request) -> web.Response:
    service = queue_service(request)
    flt = call_filter(request, service.default_region)
    cursor, limit = page_params(request)
    return page_response(await service.list_calls(flt, cursor=cursor, limit=limit), call_json)


async def get_call(request: web.Request) -> web.Response:
    detail = await queue_service(request).get_call(request.match_info["call_id"])
    return web.json_response(call_detail_json(detail))
