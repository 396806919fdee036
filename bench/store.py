"""Benchmark: the SQL repositories' hot writes, one at a time, on PostgreSQL.

What the queue service does per call event: ``SqlCallRepository.upsert`` (half new calls, half
updates of a live call, then its ending), ``SqlAgentRepository.set_state`` (alternating states, so
``state_since`` moves) and ``SqlCallRepository.append_event``. Each runs ``--n`` times in sequence
(a single caller, as the ARI link handler is), in a schema of its own on 127.0.0.1:5432 database
``test`` (``BENCH_POSTGRES_URL`` overrides), dropped after. The last line of stdout is one JSON object
of operations per second.

Then the queue's step batches (``SqlStepStore.save_steps``: 7 call rows, 10 timeline entries and 6
agent states in one transaction, as a batch under load holds), each ``--n // 5`` times: on asyncpg's
own connection (what the store does on PostgreSQL), and as the baseline through SQLAlchemy (the
store's SQLite path, here on PostgreSQL), with the CPU each batch costs this process.

Run from a checkout: ``callcenter bench store`` (``--n 2000``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from callcenter.model.events import AgentStateChanged
from callcenter.model.records import AgentRecord, CallRecord, QueueRecord
from callcenter.model.vocabulary import AgentState, CallOutcome, EntryPoint
from callcenter.queue.ports import StepWrite, TimelineEntry
from callcenter.store.database import create_engine
from callcenter.store.sql_repos import SqlAgentRepository, SqlCallRepository, SqlQueueRepository, SqlStepStore

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _postgres import scratch_schema  # noqa: E402

T0 = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)


def _call(index: int, *, ended: bool) -> CallRecord:
    at = T0 + timedelta(seconds=index)
    return CallRecord(
        id=f"c{index}",
        channel_id=f"ch{index}",
        linkedid=f"l{index}",
        entry_point=EntryPoint.ARI,
        caller=f"+4930{index:07d}",
        caller_name="Bench",
        dialled="100",
        queue="bench",
        arrived_at=at,
        queued_at=at,
        answered_at=at + timedelta(seconds=2) if ended else None,
        ended_at=at + timedelta(seconds=9) if ended else None,
        wait_s=2.0 if ended else None,
        talk_s=7.0 if ended else None,
        agent_id="a1" if ended else None,
        outcome=CallOutcome.ANSWERED if ended else None,
    )


def _batch(index: int) -> list[StepWrite]:
    """A step batch as the writer takes it under load: 7 calls' rows, 10 timeline entries, 6 agent states."""
    at = T0 + timedelta(seconds=index)
    steps = [StepWrite(record=_call(1_000_000 + index * 7 + k, ended=k % 3 == 2)) for k in range(7)]
    steps += [
        StepWrite(
            entries=(
                TimelineEntry(
                    call_id=f"c{1_000_000 + index * 7 + k % 7}", at=at, kind="queued", detail={"k": k}
                ),
            )
        )
        for k in range(10)
    ]
    states = (AgentState.RINGING, AgentState.BUSY)
    steps += [
        StepWrite(
            states=(
                AgentStateChanged(
                    event_id=f"s{index}-{k}",
                    occurred_at=at,
                    agent_id=f"a{k + 1}",
                    state=states[(index + k) % 2],
                    previous=states[(index + k + 1) % 2],
                    reason="bench",
                ),
            )
        )
        for k in range(6)
    ]
    return steps


async def _step_batches(steps: SqlStepStore, first: int, count: int) -> tuple[float, float]:
    """Batches per second and CPU ms per batch of ``count`` batches from number ``first`` on."""
    for index in range(first, first + 10):  # warm the pool and the statements
        await steps.save_steps(_batch(index))
    started, cpu = time.perf_counter(), time.process_time()
    for index in range(first + 10, first + 10 + count):
        await steps.save_steps(_batch(index))
    elapsed, cpu_s = time.perf_counter() - started, time.process_time() - cpu
    return round(count / elapsed, 1), round(1000 * cpu_s / count, 3)


async def _run(n: int) -> dict[str, object]:
    async with scratch_schema("store") as settings:
        engine = create_engine(settings)
        try:
            calls, agents = SqlCallRepository(engine), SqlAgentRepository(engine)
            await SqlQueueRepository(engine).put(QueueRecord(name="bench", title="Bench"))
            await agents.add(AgentRecord(id="a1", name="Ada", endpoint="PJSIP/1001", queues=("bench",)))
            for index in range(20):  # warm the pool and the statement caches
                await calls.upsert(_call(-1 - index, ended=False))
            report: dict[str, object] = {"n": n}

            started = time.perf_counter()
            for index in range(n):
                # New call, its update, its ending: the service's pattern.
                await calls.upsert(_call(index // 3, ended=index % 3 == 2))
            report["upserts_per_s"] = round(n / (time.perf_counter() - started), 1)

            states = (AgentState.AVAILABLE, AgentState.BUSY)
            started = time.perf_counter()
            for index in range(n):
                await agents.set_state("a1", states[index % 2], T0 + timedelta(seconds=index))
            report["set_state_per_s"] = round(n / (time.perf_counter() - started), 1)

            started = time.perf_counter()
            for index in range(n):
                await calls.append_event(f"c{index % (n // 3)}", T0, "queued", {"queue": "bench"})
            report["append_event_per_s"] = round(n / (time.perf_counter() - started), 1)

            for k in range(2, 7):  # a1 exists
                await agents.add(AgentRecord(id=f"a{k}", name=f"Agent {k}", endpoint=f"PJSIP/2{k:03d}"))
            batches = max(n // 5, 10)
            steps = SqlStepStore(engine)
            report["step_batches_per_s"], report["step_batch_cpu_ms"] = await _step_batches(steps, 0, batches)
            baseline = SqlStepStore(engine)
            baseline._driver = None  # noqa: SLF001  (the SQLAlchemy path, for the baseline only)
            (
                report["baseline_step_batches_per_s"],
                report["baseline_step_batch_cpu_ms"],
            ) = await _step_batches(baseline, 100_000, batches)
            return report
        finally:
            await engine.dispose()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="callcenter bench store", description=__doc__)
    parser.add_argument("--n", type=int, default=2000, help="operations of each kind (at least 3)")
    parser.add_argument("--json", action="store_true", help="accepted for symmetry: the output is JSON")
    args = parser.parse_args(argv)
    print(json.dumps(asyncio.run(_run(max(args.n, 3)))))
    return 0
