"""Stopping background tasks at shutdown within a grace period, and where a task waits."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

logger = logging.getLogger(__name__)


async def stop_tasks(tasks: Collection[asyncio.Task[Any]], grace_s: float, *, what: str) -> None:
    """Cancel ``tasks`` and wait at most ``grace_s`` for them to end.

    A task still running then is logged and left behind rather than holding the shutdown: a task that
    does not take its cancellation (a blocking Redis read of redis-py's asyncio client was seen doing
    so under overload) must not keep the process from stopping. Failures of the tasks that ended are
    consumed here (they were logged where they happened).
    """
    for task in tasks:
        task.cancel()
    if not tasks:
        return
    done, pending = await asyncio.wait(tasks, timeout=grace_s)
    for task in done:
        if not task.cancelled():
            task.exception()  # retrieved: no "exception was never retrieved" at exit
    for task in sorted(pending, key=lambda t: t.get_name()):
        logger.error(
            "%s: task %s did not stop within %.1f s; left behind waiting at %s",
            what,
            task.get_name(),
            grace_s,
            where_waiting(task.get_coro()),
        )


def await_frames(awaitable: Any) -> Iterator[FrameType]:
    """The frames of a coroutine, generator or async generator and of what each awaits, outermost
    first: where a suspended task (or an async generator such as an aiohttp cleanup context) waits."""
    while awaitable is not None:
        frame = (
            getattr(awaitable, "cr_frame", None)
            or getattr(awaitable, "gi_frame", None)
            or getattr(awaitable, "ag_frame", None)
        )
        if frame is not None:
            yield frame
        awaitable = (
            getattr(awaitable, "cr_await", None)
            or getattr(awaitable, "gi_yieldfrom", None)
            or getattr(awaitable, "ag_await", None)
        )


def where_waiting(awaitable: Any, depth: int = 4) -> str:
    """The innermost ``depth`` frames of :func:`await_frames`, as ``file:line function`` from the
    outside in (``"?"`` when nothing is suspended)."""
    frames = list(await_frames(awaitable))[-depth:]
    return (
        " > ".join(f"{Path(f.f_code.co_filename).name}:{f.f_lineno} {f.f_code.co_name}" for f in frames)
        or "?"
    )
