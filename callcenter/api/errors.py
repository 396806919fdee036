"""The one table from exceptions to HTTP statuses, and the middleware answering every error (edge).

Every error leaves as ``{"error": "<stable_code>", "message": "<human text>"}``. Messages of our own
exceptions are written for the caller; anything unexpected answers a generic 500 and is logged with
its traceback, which never reaches the body.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from http import HTTPStatus
from typing import Final

from aiohttp import hdrs, web

from callcenter.api.routing import HTTP_SETTINGS, Handler, route_of
from callcenter.callbacks.ports import CallbackExistsError, SlotFullError
from callcenter.errors import (
    AuthenticationError,
    CallCenterError,
    ConflictError,
    DependencyError,
    InvalidPhoneNumberError,
    LeaseLostError,
    NotFoundError,
    PermissionDeniedError,
    ValidationError,
)

logger = logging.getLogger(__name__)


class InvalidJsonError(ValidationError):
    """A request body that is not JSON, or not the JSON object the route expects."""


@dataclass(frozen=True, slots=True)
class ErrorKind:
    """How one exception type answers: status, stable code, and the message when it has none."""

    status: int
    code: str
    default_message: str


_BEARER_CHALLENGE: Final[dict[str, str]] = {"WWW-Authenticate": 'Bearer realm="callcenter"'}
_INTERNAL: Final = ErrorKind(500, "internal_error", "internal server error")

#: Exception type -> answer. Looked up along the exception's MRO, so the most specific type wins.
ERROR_TABLE: Final[dict[type[Exception], ErrorKind]] = {
    InvalidJsonError: ErrorKind(400, "invalid_json", "the request body must be a JSON object"),
    InvalidPhoneNumberError: ErrorKind(400, "invalid_phone_number", "invalid phone number"),
    ValidationError: ErrorKind(400, "invalid_request", "invalid request"),
    AuthenticationError: ErrorKind(401, "unauthenticated", "a valid bearer token is required"),
    PermissionDeniedError: ErrorKind(403, "forbidden", "your token's role may not do this"),
    NotFoundError: ErrorKind(404, "not_found", "not found"),
    SlotFullError: ErrorKind(409, "slot_full", "the slot is fully booked: offer the next one"),
    CallbackExistsError: ErrorKind(409, "callback_exists", "the number already has an open callback"),
    ConflictError: ErrorKind(409, "conflict", "the request conflicts with the current state"),
    DependencyError: ErrorKind(503, "unavailable", "a service we depend on is unavailable"),
    LeaseLostError: ErrorKind(503, "unavailable", "this process lost its lease; retry"),
    # Any other CallCenterError reaching HTTP (ConfigError, say) is our bug, not the caller's.
    CallCenterError: _INTERNAL,
}

#: aiohttp's own HTTP errors (router, body size, ...) -> stable codes.
HTTP_ERROR_CODES: Final[dict[int, str]] = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    408: "request_timeout",
    411: "length_required",
    413: "payload_too_large",
    414: "uri_too_long",
    415: "unsupported_media_type",
    429: "too_many_requests",
    503: "unavailable",
}


def kind_of(exc: Exception) -> ErrorKind:
    """The table entry for ``exc``: its closest listed base class, else a 500."""
    for cls in type(exc).__mro__:
        kind = ERROR_TABLE.get(cls)
        if kind is not None:
            return kind
    return _INTERNAL


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    """The envelope every error answers with."""
    response = web.json_response({"error": code, "message": message}, status=status, headers=headers)
    response.headers[hdrs.CACHE_CONTROL] = "no-store"
    return response


def _from_http_exception(request: web.Request, exc: web.HTTPException) -> web.Response:
    code = HTTP_ERROR_CODES.get(exc.status, "http_error" if exc.status < 500 else "internal_error")
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        limit = request.app[HTTP_SETTINGS].max_body_bytes
        message = f"the request body is larger than {limit} bytes"
    elif isinstance(exc, web.HTTPMethodNotAllowed):
        message = f"{exc.method} is not allowed here; allowed: {', '.join(sorted(exc.allowed_methods))}"
    elif isinstance(exc, web.HTTPNotFound):
        message = "no such route"
    else:
        message = exc.reason or HTTPStatus(exc.status).phrase
    # Keep what the exception says about the retry (Allow, Retry-After...), not its text body.
    headers = {k: v for k, v in exc.headers.items() if k.lower() not in ("content-type", "content-length")}
    if exc.status == 401:
        headers.update(_BEARER_CHALLENGE)
    return error_response(exc.status, code, message, headers)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer every failure below it with the error envelope."""
    limit = request.app[HTTP_SETTINGS].max_body_bytes
    try:
        # A declared length over the limit is refused before anyone reads (or authenticates) it.
        if request.content_length is not None and request.content_length > limit:
            raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise  # redirects and the like are answers, not errors
        return _from_http_exception(request, exc)
    except CallCenterError as exc:
        kind = kind_of(exc)
        if kind is _INTERNAL:
            _log_unexpected(request, exc)
            return error_response(kind.status, kind.code, kind.default_message)
        if kind.status >= 500:
            logger.warning("%s %s: %s", request.method, _template(request), exc)
        headers = dict(_BEARER_CHALLENGE) if kind.status == 401 else None
        return error_response(kind.status, kind.code, str(exc) or kind.default_message, headers)
    except Exception as exc:
        _log_unexpected(request, exc)
        return error_response(_INTERNAL.status, _INTERNAL.code, _INTERNAL.default_message)


def _template(request: web.Request) -> str:
    # The template, not the raw path: paths may carry phone numbers.
    route = route_of(request)
    return route.full_path if route is not None else "(unmatched route)"


def _log_unexpected(request: web.Request, exc: Exception) -> None:
    logger.error("unhandled error on %s %s", request.method, _template(request), exc_info=exc)
