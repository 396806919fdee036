"""Bearer-token and audit middlewares, and the principal handlers act for (edge)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Final

from aiohttp import hdrs, web

from callcenter.api.routing import Handler, route_of
from callcenter.api.session import check_cookie_write, cookie_principal
from callcenter.auth.service import AuthService
from callcenter.auth.tokens import Principal, parse_bearer, require_agent_access, require_role
from callcenter.errors import AuthenticationError, CallCenterError
from callcenter.model.vocabulary import Role

__all__ = [
    "AUTH_SERVICE",
    "audit_middleware",
    "auth_middleware",
    "principal_of",
    "require_agent_access",
    "set_audit_detail",
]

logger = logging.getLogger(__name__)

AUTH_SERVICE: Final = web.AppKey("auth_service", AuthService)
_PRINCIPAL: Final = web.RequestKey("principal", Principal)
_AUDIT_DETAIL: Final = web.RequestKey[Mapping[str, object]]("audit_detail")


def principal_of(request: web.Request) -> Principal:
    """The caller of a route that needs a token.

    :raises AuthenticationError: on a public route, where nobody was authenticated.
    """
    if _PRINCIPAL not in request:
        raise AuthenticationError("this route has no authenticated caller")
    return request[_PRINCIPAL]


def set_audit_detail(request: web.Request, detail: Mapping[str, object]) -> None:
    """What the audit entry of this write should say beyond action and target: JSON values, no secrets."""
    request[_AUDIT_DETAIL] = detail


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """401 without a valid bearer token and 403 below the route's role; public routes pass through."""
    route = route_of(request)
    # Unknown paths and wrong methods (route None) fall through to the router's 404/405.
    if route is not None and route.role is not None:
        header = request.headers.get(hdrs.AUTHORIZATION)
        # A signed-in browser page (session cookie) may call the API as its token's role.
        principal = await cookie_principal(request) if header is None else None
        if principal is not None:
            check_cookie_write(request)
        else:
            principal = await request.app[AUTH_SERVICE].authenticate(parse_bearer(header))
        require_role(principal, route.role)
        request[_PRINCIPAL] = principal
    return await handler(request)


@web.middleware
async def audit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Append every successful write by a supervisor or admin to the audit log.

    Runs inside the auth middleware. A write that raises or answers non-2xx is not recorded.
    """
    response = await handler(request)
    route = route_of(request)
    principal = request[_PRINCIPAL] if _PRINCIPAL in request else None
    if (
        route is None
        or not route.is_write
        or route.audited_by_service
        or principal is None
        or not principal.has_role(Role.SUPERVISOR)
        or not 200 <= response.status < 300
    ):
        return response
    action = f"{request.method} {route.full_path}"
    target = ",".join(f"{name}={request.match_info[name]}" for name in route.path_params)
    try:
        await request.app[AUTH_SERVICE].record(
            principal, action, target, request[_AUDIT_DETAIL] if _AUDIT_DETAIL in request else None
        )
    except CallCenterError:
        # The write is done and cannot be undone here; answering an error would make the client
        # retry a write that happened. Keep the trail in the log instead.
        logger.exception("audit log append failed for %s by %s on %s", action, principal.actor, target)
    return response
