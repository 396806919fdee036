"""Stopping background tasks at shutdown within a grace period."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection
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
        logger.error("%s: task %s did not stop within %.1f s; left behind", what, task.get_name(), grace_s)
