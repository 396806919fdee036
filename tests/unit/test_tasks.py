"""Shutdown stops background tasks within its grace period, even one that ignores its cancellation."""

from __future__ import annotations

import asyncio
import logging

from callcenter.tasks import stop_tasks


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
    assert logs == ["shutdown: task stubborn did not stop within 0.2 s; left behind"]
    release.set()
    tasks[0].cancel()
    await tasks[0]


async def test_a_process_with_no_background_task_stops_too() -> None:
    await stop_tasks([], 0.1, what="shutdown")  # asyncio.wait refuses an empty set
