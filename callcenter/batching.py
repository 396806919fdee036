"""Many concurrent single requests served by one batched call (shared, no I/O of its own).

Under load the hot path asks the store the same kind of small thing for many calls at once (a repeat
caller's open callback, a prediction to log). :class:`Coalescer` turns those into one statement per
batch: a request waits while a batch is in flight, then goes out with every request queued meanwhile.
An idle system pays one loop iteration of delay; a loaded one pays a round trip per batch instead of
per request.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

K = TypeVar("K")
V = TypeVar("V")


class Coalescer(Generic[K, V]):
    """Serve ``await coalescer(request)`` with ``run_batch(requests)``, one batch at a time.

    ``run_batch`` gets up to ``max_batch`` requests in arrival order and returns one result per
    request, in the same order. Each caller gets its own result, or the batch's exception (every
    request of a failed batch fails with it: nothing is retried here, as a single call would not be).
    A caller cancelled while waiting is dropped from its batch if the batch had not started; once it
    has, the batch runs to its end for the others, and is cancelled when every caller of it was.

    :param name: names the flushing task (diagnostics).
    :raises ValueError: for a ``max_batch`` below 1.
    """

    def __init__(
        self,
        run_batch: Callable[[Sequence[K]], Awaitable[Sequence[V]]],
        *,
        max_batch: int = 256,
        name: str = "coalescer",
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch!r}")
        self._run_batch = run_batch
        self._max_batch = max_batch
        self._name = name
        self._queued: list[tuple[K, asyncio.Future[V]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._running: asyncio.Future[Sequence[V]] | None = None
        self._in_flight: list[asyncio.Future[V]] = []
        self.batches = 0
        """Batches run so far (diagnostics and tests)."""

    async def __call__(self, request: K) -> V:
        loop = asyncio.get_running_loop()
        if self._flusher is not None and self._flusher.get_loop() is not loop:
            # Its loop is gone (an object reused across loops: tests): so are its requests.
            self._flusher, self._running, self._in_flight = None, None, []
            self._queued = [(r, f) for r, f in self._queued if f.get_loop() is loop]
        future: asyncio.Future[V] = loop.create_future()
        self._queued.append((request, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name=self._name)
        try:
            return await future
        except asyncio.CancelledError:
            # A batch nobody waits for any more is cancelled, as each caller's own call would have been
            # (its connection is given back at once, not left to a task nobody awaits).
            running = self._running
            if running is not None and all(f.cancelled() for f in self._in_flight):
                running.cancel()
            raise

    async def _flush(self) -> None:
        await asyncio.sleep(0)  # requests made in this loop iteration join the first batch
        while self._queued:
            batch = [
                (request, future) for request, future in self._queued[: self._max_batch] if not future.done()
            ]
            del self._queued[: self._max_batch]
            if not batch:
                continue
            self.batches += 1
            self._in_flight = [future for _, future in batch]
            self._running = asyncio.ensure_future(self._run_batch([request for request, _ in batch]))
            try:
                results = await self._running
                if len(results) != len(batch):
                    raise RuntimeError(
                        f"{self._name}: the batch of {len(batch)} requests returned {len(results)} results"
                    )
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    self._running.cancel()
                    for _, future in batch:
                        future.cancel()
                    for _, future in self._queued:
                        future.cancel()
                    self._queued.clear()
                    raise
                continue  # the batch itself was cancelled: every caller of it had given up
            except Exception as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            finally:
                self._running, self._in_flight = None, []
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)
