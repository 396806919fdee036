"""Browser sign-in: a token for an HttpOnly, SameSite=Strict session cookie, and pages behind it (edge).

``GET /signin`` shows a form; ``POST /session`` (form or JSON ``{"token": ...}``) checks the token and
sets the cookie; ``POST /session/logout`` ends it. The cookie then opens the pages (``/wallboard``,
later the agent worklist), their live feeds, and the JSON API for the same role as the token; a write
made with the cookie must also carry ``X-Requested-With: callcenter`` (no form on another site can
send that header, on top of SameSite=Strict). :func:`page_principal` is what a page handler calls.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from pathlib import Path
from typing import Final
from urllib.parse import quote

from aiohttp import web

from callcenter.auth.sessions import SessionService
from callcenter.auth.tokens import Principal, require_role
from callcenter.errors import AuthenticationError, PermissionDeniedError, ValidationError
from callcenter.model.vocabulary import Role

SESSION_SERVICE: Final = web.AppKey("session_service", SessionService)
COOKIE: Final = "cc_session"
CSRF_HEADER: Final = "X-Requested-With"
CSRF_VALUE: Final = "callcenter"
_MAX_FORM_BYTES: Final = 4096
#: The pages, their scripts and styles.
WEB_DIR: Final = Path(__file__).parent / "web"
#: A page runs only its own script and style, plays no media, and talks only to this origin.
PAGE_CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
    "media-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def session_service(request: web.Request) -> SessionService | None:
    return request.app.get(SESSION_SERVICE)


async def cookie_principal(request: web.Request) -> Principal | None:
    """The principal of the request's session cookie; ``None`` without a cookie or a session service.

    :raises AuthenticationError: for a cookie whose session or token is no longer valid.
    """
    sessions = session_service(request)
    session_id = request.cookies.get(COOKIE)
    if sessions is None or not session_id:
        return None
    return await sessions.principal(session_id)


def check_cookie_write(request: web.Request) -> None:
    """:raises PermissionDeniedError: for a write authenticated by cookie without the CSRF header."""
    if request.method not in ("GET", "HEAD", "OPTIONS") and request.headers.get(CSRF_HEADER) != CSRF_VALUE:
        raise PermissionDeniedError(
            f"a write signed in by cookie needs the header {CSRF_HEADER}: {CSRF_VALUE}"
        )


async def page_principal(request: web.Request, role: Role) -> Principal | web.Response:
    """The signed-in principal of a page, or the answer to send instead: a redirect to sign in, or 403."""
    try:
        principal = await cookie_principal(request)
    except AuthenticationError:
        principal = None
    if principal is None:
        raise web.HTTPSeeOther(f"/signin?next={quote(request.path_qs, safe='/')}")
    try:
        require_role(principal, role)
    except PermissionDeniedError as exc:
        return _page(
            f"<p>{html.escape(str(exc))}</p><p><a href='/signin'>Sign in with another token</a></p>", 403
        )
    return principal


async def serve_page(request: web.Request, role: Role, page: str) -> web.StreamResponse:
    """The page ``WEB_DIR/<page>`` for a principal signed in with ``role``, else a redirect or 403."""
    answer = await page_principal(request, role)
    if isinstance(answer, web.Response):
        return answer
    return web.FileResponse(
        WEB_DIR / page,
        headers={
            "Content-Security-Policy": PAGE_CSP,
            "Cache-Control": "no-store",
            "Content-Type": "text/html",
        },
    )


def serve_asset(request: web.Request, assets: Mapping[str, str]) -> web.StreamResponse:
    """The script or style ``{name}`` of the request if ``assets`` lists it (name to content type)."""
    name = request.match_info["name"]
    content_type = assets.get(name)
    if content_type is None:
        raise web.HTTPNotFound()
    return web.FileResponse(
        WEB_DIR / name, headers={"Content-Type": content_type, "Cache-Control": "max-age=300"}
    )


def _safe_next(raw: str | None) -> str:
    """Only a local path: never an open redirect to another site."""
    if not raw or not raw.startswith("/") or raw.startswith("//") or "\\" in raw:
        return "/wallboard"
    return raw


def _page(body: str, status: int = 200) -> web.Response:
    document = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        "<title>Call centre: sign in</title><link rel='stylesheet' href='/static/wallboard.css'></head>"
        f"<body class='signin'>{body}</body></html>"
    )
    return web.Response(text=document, content_type="text/html", status=status, headers=_NO_STORE)


_NO_STORE: Final = {"Cache-Control": "no-store"}


async def get_signin(request: web.Request) -> web.Response:
    target = html.escape(_safe_next(request.query.get("next")), quote=True)
    error = request.query.get("error")
    message = f"<p class='error' role='alert'>{html.escape(error)}</p>" if error else ""
    return _page(
        "<main><h1>Sign in</h1>"
        f"{message}"
        "<form method='post' action='/session'>"
        f"<input type='hidden' name='next' value='{target}'>"
        "<label for='token'>API token</label>"
        "<input id='token' name='token' type='password' autocomplete='off' required>"
        "<button type='submit'>Sign in</button></form>"
        "<p class='hint'>Ask an admin for a token (<code>callcenter token create</code>): a supervisor's "
        "opens the wallboard, an agent's their callbacks.</p></main>"
    )


async def post_session(request: web.Request) -> web.StreamResponse:
    sessions = session_service(request)
    if sessions is None:
        raise web.HTTPServiceUnavailable(text="sessions are not available in this process")
    if request.content_length is not None and request.content_length > _MAX_FORM_BYTES:
        raise ValidationError("the sign-in request is too large")
    wants_json = request.content_type == "application/json"
    if wants_json:
        body = await request.json()
        token = str(body.get("token", "")) if isinstance(body, dict) else ""
        target = _safe_next(str(body.get("next", "")) if isinstance(body, dict) else None)
    else:
        form = await request.post()
        token, target = str(form.get("token", "")), _safe_next(str(form.get("next", "")))
    try:
        session_id, principal, max_age = await sessions.open(token.strip())
    except AuthenticationError as exc:
        if wants_json:
            raise
        raise web.HTTPSeeOther(f"/signin?next={quote(target, safe='/')}&error={quote(str(exc))}") from None
    if target == "/wallboard" and principal.role is Role.AGENT:
        target = "/agent"  # the page an agent's token opens (the wallboard is for supervisors)
    response: web.StreamResponse
    if wants_json:
        response = web.json_response({"role": principal.role.value, "expires_in_s": max_age})
    else:
        response = web.HTTPSeeOther(target)
    response.set_cookie(
        COOKIE,
        session_id,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="Strict",
        secure=request.secure,
    )
    if isinstance(response, web.HTTPSeeOther):
        raise response
    return response


async def post_logout(request: web.Request) -> web.StreamResponse:
    sessions = session_service(request)
    session_id = request.cookies.get(COOKIE)
    if sessions is not None and session_id:
        await sessions.close(session_id)
    response = web.HTTPSeeOther("/signin")
    response.del_cookie(COOKIE, path="/")
    raise response


def install_session_routes(app: web.Application) -> None:
    """The sign-in routes, outside ``/api/v1`` (they speak HTML forms as well as JSON)."""
    app.router.add_get("/signin", get_signin)
    app.router.add_post("/session", post_session)
    app.router.add_post("/session/logout", post_logout)


__all__ = [
    "COOKIE",
    "CSRF_HEADER",
    "CSRF_VALUE",
    "SESSION_SERVICE",
    "check_cookie_write",
    "cookie_principal",
    "install_session_routes",
    "page_principal",
]
