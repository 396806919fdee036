"""Shutdown stops background tasks within its grace period, even one that ignores its cancellation."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from callcenter.tasks import await_frames, stop_tasks, where_waiting


async def test_a_task_that_takes_no_cancellation_is_left_behind_and_named() -> None:
    release = asyncio.Event()

    async def stubborn() -> None:  # as a Redis read was seen doing under overload
        while not release.is_set():
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                continue

    async def polite() -> None:
        await asyncio.sleep(3600)

    async def failed() -> None:
        raise RuntimeError("boom")

    tasks = [
        asyncio.create_task(stubborn(), name="stubborn"),
        asyncio.create_task(polite(), name="polite"),
        asyncio.create_task(failed(), name="failed"),
    ]
    await asyncio.sleep(0)
    logs: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: logs.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger("callcenter.tasks").addHandler(handler)
    try:
        async with asyncio.timeout(30):  # a guard against the old hang, not a measure of speed
            await stop_tasks(tasks, 0.2, what="shutdown")
    finally:
        logging.getLogger("callcenter.tasks").removeHandler(handler)
    assert tasks[1].cancelled() and isinstance(tasks[2].exception(), RuntimeError)
    assert not tasks[0].done()
    [line] = logs
    prefix = "shutdown: task stubborn did not stop within 0.2 s; left behind waiting at test_tasks.py:"
    assert line.startswith(prefix), line
    assert " stubborn > " in line and line.endswith(" sleep"), "down to the sleep it waits in"
    release.set()
    tasks[0].cancel()
    await tasks[0]


async def test_a_process_with_no_background_task_stops_too() -> None:
    await stop_tasks([], 0.1, what="shutdown")  # asyncio.wait refuses an empty set


async def test_where_an_async_generator_waits_is_followed_down_its_awaits() -> None:
    """As an aiohttp cleanup context waits inside its generator (the bench's task dump walks those)."""
    gate = asyncio.Event()

    async def ready() -> None:
        await gate.wait()

    async def context() -> AsyncIterator[None]:
        await ready()
        yield None

    generator = context()
    step = asyncio.create_task(anext(generator))  # type: ignore[arg-type]
    await asyncio.sleep(0)
    assert [frame.f_code.co_name for frame in await_frames(generator)] == ["context", "ready", "wait"]
    outer, inner = where_waiting(generator, depth=2).split(" > ")
    assert outer.startswith("test_tasks.py:") and outer.endswith(" ready") and inner.endswith(" wait")
    gate.set()
    await step
    await generator.aclose()
    assert where_waiting(generator) == "?", "a finished generator waits nowhere"
