"""What every asyncio task awaits, written to stderr: a hung test shows where it hangs.

pytest-timeout's report shows only the main thread, which for an asyncio test is the event loop's
``select``; the hang is in some task's ``await``. :func:`dump_tasks` follows each task's chain of
awaits down to the innermost frame (:func:`callcenter.tasks.await_frames`).
"""

from __future__ import annotations

import asyncio
import sys

from callcenter.tasks import await_frames


def dump_tasks(title: str) -> None:
    """Write every task of the running loop and where it waits to stderr (pytest shows it on failure)."""
    lines = [f"--- asyncio tasks: {title} ---"]
    for task in sorted(asyncio.all_tasks(), key=lambda t: t.get_name()):
        lines.append(f"task {task.get_name()}:")
        for frame in await_frames(task.get_coro()):
            code = frame.f_code
            lines.append(f"    {code.co_filename}:{frame.f_lineno} in {code.co_qualname}")
    print("\n".join(lines), file=sys.stderr, flush=True)
