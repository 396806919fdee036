"""The agent's worklist page, its live feed (server-sent events) and its local assets (edge).

``GET /agent`` and ``GET /agent/feed`` need a signed-in agent (session cookie, see ``api/session.py``):
an agent token shows its own agent's worklist; a supervisor names any agent with ``?agent=``. The feed
sends the worklist at once, then again whenever it changed: on the bus events that change callbacks
(state, attempts, claims, promises at risk, voicemail transcripts, texts), and at the moments a
callback becomes due or a claim or a personal deadline runs out, which no event announces. A client
that stops reading is dropped. ``/agent/assets/<file>`` serves the page's own CSS and JavaScript: no
CDN, nothing fetched from elsewhere. The page acts through the JSON API (``/api/v1/worklist``,
``/api/v1/callbacks/{id}/claim|start|disposition``) with the same cookie.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import datetime
from typing import Final

from aiohttp import web

from callcenter.api.jsonio import iso
from callcenter.api.session import page_principal, serve_asset, serve_page
from callcenter.api.worklist import WORKLIST, item_json
from callcenter.auth.tokens import Principal
from callcenter.callbacks.worklist import WorkItem, Worklist
from callcenter.clock import Clock
from callcenter.errors import (
    CallCenterError,
    DependencyError,
    PermissionDeniedError,
    ValidationError,
)
from callcenter.model.events import (
    CallbackAttemptEnded,
    CallbackClaimChanged,
    CallbackPromiseAtRisk,
    CallbackStateChanged,
    DomainEvent,
    SmsStatusChanged,
    VoicemailSilent,
    VoicemailTranscribed,
)
from callcenter.model.vocabulary import Role
from callcenter.tasks import stop_tasks

logger = logging.getLogger(__name__)

ASSETS: Final[dict[str, str]] = {"agent.css": "text/css", "agent.js": "text/javascript"}
#: Events after which a worklist may read differently.
WORKLIST_EVENTS: Final = (
    CallbackStateChanged,
    CallbackAttemptEnded,
    CallbackClaimChanged,
    CallbackPromiseAtRisk,
    VoicemailTranscribed,
    VoicemailSilent,
    SmsStatusChanged,
)
#: The least time between two renders of one client's list (changes in between are coalesced).
MIN_INTERVAL_S: Final = 0.25
#: A list is read again at least this often (a claim taken in another process, a missed event).
REFRESH_S: Final = 30.0
#: How often a long-lived feed checks that its session (and token) is still valid.
RECHECK_S: Final = 30.0
_KEEPALIVE_S: Final = 15.0
#: How long the shutdown waits for the bus tail feeding the page's feeds.
TAIL_STOP_S: Final = 5.0


class WorklistSignal:
    """Wakes the open worklist feeds whose lists an event may change (service).

    An event naming a queue wakes the feeds of that queue's agents only; one without a queue (an SMS
    status, a voicemail of no queue) wakes them all.
    """

    def __init__(self) -> None:
        self._waiting: dict[asyncio.Event, frozenset[str]] = {}
        self._versions: dict[str | None, int] = {}  # changes per queue (None: of every queue)

    def version(self, queues: frozenset[str]) -> int:
        """A number that grows with each change concerning ``queues``."""
        return self._versions.get(None, 0) + sum(self._versions.get(q, 0) for q in queues)

    def changed(self, queue: str | None = None) -> None:
        self._versions[queue] = self._versions.get(queue, 0) + 1
        for event, queues in self._waiting.items():
            if queue is None or queue in queues:
                event.set()

    async def wait(self, queues: frozenset[str], timeout_s: float) -> bool:
        """Until a change that concerns ``queues`` (``True``) or ``timeout_s`` passed (``False``)."""
        event = asyncio.Event()
        self._waiting[event] = queues
        try:
            async with asyncio.timeout(max(timeout_s, 0.0)):
                await event.wait()
            return True
        except TimeoutError:
            return False
        finally:
            del self._waiting[event]

    @property
    def waiting(self) -> int:
        """Feeds waiting now."""
        return len(self._waiting)

    async def on_event(self, event: DomainEvent) -> None:
        """Event sink for the bus tail: callback, voicemail and SMS events wake the feeds."""
        if isinstance(event, WORKLIST_EVENTS):
            self.changed(getattr(event, "queue", None))


#: The signal of this process's open feeds (set by the composition root).
WORKLIST_SIGNAL: Final = web.AppKey("worklist_signal", WorklistSignal)
#: The clock the feed schedules its next read with.
AGENT_CLOCK: Final = web.AppKey("agent_clock", Clock)


def next_change(items: tuple[WorkItem, ...], now: datetime) -> datetime | None:
    """The next moment a list changes without an event: an item becomes due or late, a claim or a
    personal deadline runs out."""
    moments: list[datetime] = []
    for item in items:
        callback = item.callback
        if callback.due_at is not None and not item.due:
            moments.append(callback.due_at)
        moments.append(callback.window.end)
        if item.claim is not None:
            moments.append(item.claim.until)
        moments.extend(n.owner_until for n in item.sources if n.owner_until is not None)
    later = [m for m in moments if m > now]
    return min(later) if later else None


def _worklist(request: web.Request) -> Worklist:
    worklist = request.app.get(WORKLIST)
    if worklist is None:
        raise DependencyError("the worklist is not served by this process")
    return worklist


def viewed_agent(principal: Principal, named: str | None) -> str | None:
    """Whose list a page shows: an agent's own; for a supervisor the agent named (``None``: pick one).

    :raises PermissionDeniedError: an agent naming another agent, or a token bound to no agent.
    """
    if principal.role is Role.AGENT:
        if principal.agent_id is None:
            raise PermissionDeniedError("this agent token is not bound to an agent")
        if named and named != principal.agent_id:
            raise PermissionDeniedError("an agent sees only their own worklist")
        return principal.agent_id
    return named or None


async def get_agent_page(request: web.Request) -> web.StreamResponse:
    return await serve_page(request, Role.AGENT, "agent.html")


async def get_agent_me(request: web.Request) -> web.Response:
    """Who the page is signed in as, and whose list it shows (the page reads it first)."""
    answer = await page_principal(request, Role.AGENT)
    if isinstance(answer, web.Response):
        return answer
    agent = viewed_agent(answer, request.query.get("agent"))
    queues: tuple[str, ...] = ()
    if agent is not None:
        queues = await _worklist(request).queues_of(agent)  # NotFoundError: no such agent
    return web.json_response(
        {
            "role": answer.role.value,
            "own_agent": answer.agent_id,
            "agent": agent,
            "queues": list(queues),
            "claim_s": _worklist(request).claim_s,
        },
        headers={"Cache-Control": "no-store"},
    )


def render(items: tuple[WorkItem, ...], agent: str, now: datetime) -> tuple[bytes, str]:
    """The feed's message and the part of it that tells whether the list changed (without ``now``
    and the countdowns, which the page keeps itself)."""
    rendered = [item_json(i) for i in items]
    key = json.dumps([{k: v for k, v in r.items() if k != "timing"} for r in rendered], sort_keys=True)
    message = {"agent": agent, "now": iso(now), "items": rendered}
    return json.dumps(message, separators=(",", ":")).encode(), key


async def get_agent_feed(request: web.Request) -> web.StreamResponse:
    answer = await page_principal(request, Role.AGENT)
    if isinstance(answer, web.Response):
        return answer
    agent = viewed_agent(answer, request.query.get("agent"))
    if agent is None:
        raise ValidationError("name the agent with ?agent=")
    worklist = _worklist(request)
    signal = request.app.get(WORKLIST_SIGNAL)
    clock = request.app.get(AGENT_CLOCK)
    if signal is None or clock is None:
        raise DependencyError("the worklist feed is not running in this process")
    await worklist.queues_of(agent)  # an unknown agent is a 404 before the stream starts
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    )
    await response.prepare(request)
    try:
        await _stream(request, response, worklist, signal, clock, agent)
    except ConnectionResetError:
        return response  # the client went away
    with contextlib.suppress(ConnectionResetError):
        await response.write_eof()
    return response


async def _stream(
    request: web.Request,
    response: web.StreamResponse,
    worklist: Worklist,
    signal: WorklistSignal,
    clock: Clock,
    agent: str,
) -> None:
    loop = asyncio.get_running_loop()
    recheck_at = loop.time() + RECHECK_S
    last_key: str | None = None
    last_write = loop.time()
    queues = frozenset(await worklist.queues_of(agent))
    while not request.app.get(_CLOSING, _NOT_CLOSING).is_set():
        started = loop.time()
        seen = signal.version(queues)  # a change while the list is read is not missed: read it again
        now = clock.now()
        reveal: datetime | None = None
        try:
            items, reveal = await worklist.listing(agent)
        except CallCenterError as exc:
            payload = json.dumps({"error": "unavailable", "message": str(exc)}).encode()
            await response.write(b"event: problem\ndata: " + payload + b"\n\n")
            items, key = (), last_key
        else:
            payload, key = render(items, agent, now)
            if key != last_key:
                await response.write(b"data: " + payload + b"\n\n")
                last_write = loop.time()
        last_key = key
        wake = min((m for m in (next_change(items, now), reveal) if m is not None and m > now), default=None)
        wait_s = REFRESH_S if wake is None else min(REFRESH_S, (wake - now).total_seconds() + 0.05)
        if loop.time() - last_write >= _KEEPALIVE_S:
            await response.write(b": keep-alive\n\n")
            last_write = loop.time()
        if signal.version(queues) == seen:
            await signal.wait(queues, min(wait_s, _KEEPALIVE_S))
        await asyncio.sleep(max(0.0, MIN_INTERVAL_S - (loop.time() - started)))
        if loop.time() >= recheck_at:
            recheck_at = loop.time() + RECHECK_S
            try:
                checked = await page_principal(request, Role.AGENT)
                queues = frozenset(await worklist.queues_of(agent))  # the agent's queues may change
            except (CallCenterError, web.HTTPException):
                return  # signed out, token revoked, or the agent is gone
            if isinstance(checked, web.Response):
                return


class _Closing:
    """Set at shutdown so open feeds end instead of holding the shutdown's grace period."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def set(self) -> None:
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()


_CLOSING: Final = web.AppKey("agent_feeds_closing", _Closing)
_NOT_CLOSING: Final = _Closing()


async def get_asset(request: web.Request) -> web.StreamResponse:
    return serve_asset(request, ASSETS)


def install_agent_routes(
    app: web.Application,
    *,
    signal: WorklistSignal,
    clock: Clock,
    tail: Callable[[], Coroutine[object, object, None]] | None,
) -> None:
    """The page, its feed and assets; ``tail`` (the bus follower feeding ``signal``) runs with the app."""
    app[WORKLIST_SIGNAL] = signal
    app[AGENT_CLOCK] = clock
    closing = _Closing()
    app[_CLOSING] = closing
    app.router.add_get("/agent", get_agent_page)
    app.router.add_get("/agent/me", get_agent_me)
    app.router.add_get("/agent/feed", get_agent_feed)
    app.router.add_get("/agent/assets/{name}", get_asset)

    async def close_feeds(_: web.Application) -> None:
        closing.set()
        signal.changed()  # wake them all now

    app.on_shutdown.append(close_feeds)
    if tail is not None:
        follow = tail

        async def follow_bus(_: web.Application) -> AsyncIterator[None]:
            task = asyncio.create_task(follow(), name="worklist-feed-tail")
            yield
            await stop_tasks([task], TAIL_STOP_S, what="agent page")

        app.cleanup_ctx.append(follow_bus)
