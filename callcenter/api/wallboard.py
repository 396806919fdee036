"""The supervisor wallboard page, its live feed (server-sent events) and its local assets (edge).

``GET /wallboard`` and ``GET /wallboard/feed`` need a signed-in supervisor (session cookie, see
``api/session.py``); the feed sends the current snapshot at once, then each coalesced snapshot the
:class:`~callcenter.stats.feed.SnapshotFeed` publishes (at most 4 a second). A client that stops
reading is dropped when its buffer fills. ``/static/<file>`` serves the page's own CSS and JavaScript:
no CDN, nothing fetched from elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Final

from aiohttp import web

from callcenter.api.session import page_principal, serve_asset, serve_page
from callcenter.api.stats import STATS_SERVICE
from callcenter.errors import AuthenticationError, DependencyError
from callcenter.model.vocabulary import Role
from callcenter.stats.feed import SnapshotFeed

STATIC: Final[dict[str, str]] = {
    "wallboard.css": "text/css",
    "wallboard.js": "text/javascript",
}
#: How often a long-lived feed checks that its session (and token) is still valid.
RECHECK_S: Final = 30.0
_KEEPALIVE: Final = b": keep-alive\n\n"


def _feed(request: web.Request) -> SnapshotFeed:
    service = request.app.get(STATS_SERVICE)
    if service is None or service.feed is None:
        raise DependencyError("the statistics service is not running in this process")
    return service.feed


async def get_wallboard(request: web.Request) -> web.StreamResponse:
    return await serve_page(request, Role.SUPERVISOR, "wallboard.html")


async def get_feed(request: web.Request) -> web.StreamResponse:
    answer = await page_principal(request, Role.SUPERVISOR)
    if isinstance(answer, web.Response):
        return answer
    feed = _feed(request)
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    subscription = feed.subscribe()
    loop = asyncio.get_running_loop()
    recheck_at = loop.time() + RECHECK_S
    try:
        while True:
            try:
                async with asyncio.timeout(15.0):
                    payload = await subscription.next()
            except TimeoutError:
                await response.write(_KEEPALIVE)
                payload = b""
            if payload is None:
                break  # dropped: it fell behind; the page reconnects and starts from a fresh snapshot
            if payload:
                await response.write(b"data: " + payload + b"\n\n")
            if loop.time() >= recheck_at:
                recheck_at = loop.time() + RECHECK_S
                try:
                    await page_principal(request, Role.SUPERVISOR)
                except (AuthenticationError, web.HTTPException):
                    break
    except ConnectionResetError:
        return response  # the client went away: nothing more to send
    finally:
        feed.unsubscribe(subscription)
    with contextlib.suppress(ConnectionResetError):
        await response.write_eof()
    return response


async def get_static(request: web.Request) -> web.StreamResponse:
    return serve_asset(request, STATIC)


def install_wallboard_routes(app: web.Application) -> None:
    app.router.add_get("/wallboard", get_wallboard)
    app.router.add_get("/wallboard/feed", get_feed)
    app.router.add_get("/static/{name}", get_static)
