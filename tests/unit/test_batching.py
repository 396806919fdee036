"""Concurrent requests served by one batched call: each caller gets its own answer, or its batch's error."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from callcenter.batching import Coalescer


class Doubler:
    """A batch function that records its batches; ``gate`` holds a batch in flight until set."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail_next: Exception | None = None

    async def __call__(self, requests: Sequence[int]) -> list[int]:
        self.batches.append(list(requests))
        await self.gate.wait()
        if self.fail_next is not None:
            exc, self.fail_next = self.fail_next, None
            raise exc
        return [2 * r for r in requests]


async def test_concurrent_requests_share_one_batch_and_each_gets_its_own_answer() -> None:
    run = Doubler()
    double = Coalescer(run)

    results = await asyncio.gather(*(double(n) for n in range(5)))

    assert results == [0, 2, 4, 6, 8]
    assert run.batches == [[0, 1, 2, 3, 4]]


async def test_a_request_made_while_a_batch_is_in_flight_goes_in_the_next_batch() -> None:
    run = Doubler()
    run.gate.clear()
    double = Coalescer(run)
    first = asyncio.create_task(double(1))
    await asyncio.sleep(0.01)  # the first batch is in flight, held by the gate
    later = [asyncio.create_task(double(n)) for n in (2, 3)]
    await asyncio.sleep(0.01)
    assert run.batches == [[1]]

    run.gate.set()

    assert await first == 2
    assert [await t for t in later] == [4, 6]
    assert run.batches == [[1], [2, 3]]


async def test_a_failed_batch_fails_each_of_its_requests_and_the_next_batch_still_runs() -> None:
    run = Doubler()
    run.gate.clear()
    double = Coalescer(run)
    failing = [asyncio.create_task(double(n)) for n in (1, 2)]
    await asyncio.sleep(0.01)
    following = asyncio.create_task(double(3))
    run.fail_next = OSError("store down")
    run.gate.set()

    for task in failing:
        with pytest.raises(OSError, match="store down"):
            await task
    assert await following == 6


async def test_a_request_cancelled_before_its_batch_started_is_left_out_of_it() -> None:
    run = Doubler()
    run.gate.clear()
    double = Coalescer(run)
    first = asyncio.create_task(double(1))
    await asyncio.sleep(0.01)
    dropped = asyncio.create_task(double(2))
    kept = asyncio.create_task(double(3))
    await asyncio.sleep(0.01)
    dropped.cancel()
    run.gate.set()

    assert (await first, await kept) == (2, 6)
    assert dropped.cancelled()
    assert run.batches == [[1], [3]]


async def test_batches_hold_at_most_max_batch_requests_in_arrival_order() -> None:
    run = Doubler()
    double = Coalescer(run, max_batch=2)

    assert await asyncio.gather(*(double(n) for n in range(5))) == [0, 2, 4, 6, 8]
    assert run.batches == [[0, 1], [2, 3], [4]]


async def test_a_batch_answering_the_wrong_number_of_results_fails_its_requests() -> None:
    async def short(requests: Sequence[int]) -> list[int]:
        return list(requests)[1:]

    broken = Coalescer(short)

    results = await asyncio.gather(broken(1), broken(2), return_exceptions=True)

    assert all(isinstance(r, RuntimeError) for r in results)


def test_max_batch_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_batch"):
        Coalescer(Doubler(), max_batch=0)


async def test_a_batch_whose_callers_all_gave_up_is_cancelled_and_the_next_one_runs() -> None:
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def hanging(requests: Sequence[int]) -> list[int]:
        if requests == [1]:
            started.set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled.set()
                raise
        return list(requests)

    echo = Coalescer(hanging)
    first = asyncio.create_task(echo(1))
    await started.wait()
    following = asyncio.create_task(echo(2))
    await asyncio.sleep(0)
    first.cancel()

    assert await following == 2
    assert cancelled.is_set() and first.cancelled()
