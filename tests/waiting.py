"""Waiting on a condition under a deadline, for tests that talk to real peers (no fixed sleeps)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest


async def eventually(
    condition: Callable[[], Awaitable[bool] | bool],
    *,
    timeout_s: float = 10.0,
    what: str = "condition",
    poll_s: float = 0.01,
) -> None:
    """Poll ``condition`` until true; fail the test naming ``what`` after ``timeout_s``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            pytest.fail(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(poll_s)
