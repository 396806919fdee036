"""What every asyncio task awaits, written to stderr: a hung test shows where it hangs.

pytest-timeout's report shows only the main thread, which for an asyncio test is the event loop's
``select``; the hang is in some task's ``await``. :func:`dump_tasks` follows each task's chain of
awaits (``cr_await``) down to the innermost frame.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from types import FrameType
from typing import Any


def _await_chain(awaitable: Any) -> Iterator[FrameType]:
    """The frames of ``awaitable`` and of what it awaits, outermost first."""
    while awaitable is not None:
        frame = getattr(awaitable, "cr_frame", None) or getattr(awaitable, "gi_frame", None)
        if frame is not None:
            yield frame
        awaitable = getattr(awaitable, "cr_await", None) or getattr(awaitable, "gi_yieldfrom", None)


def dump_tasks(title: str) -> None:
    """Write every task of the running loop and where it waits to stderr (pytest shows it on failure)."""
    lines = [f"--- asyncio tasks: {title} ---"]
    for task in sorted(asyncio.all_tasks(), key=lambda t: t.get_name()):
        lines.append(f"task {task.get_name()}:")
        for frame in _await_chain(task.get_coro()):
            code = frame.f_code
            lines.append(f"    {code.co_filename}:{frame.f_lineno} in {code.co_qualname}")
    print("\n".join(lines), file=sys.stderr, flush=True)
