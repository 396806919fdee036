"""Benchmark: reading an agent's worklist, as each open worklist page does after every change.

``--callbacks`` open callbacks (default 200) of one queue on PostgreSQL (a schema of its own on
127.0.0.1:5432 database ``test``, ``BENCH_POSTGRES_URL`` overrides; dropped after): each asked for by
a voicemail (a stored voicemail with its transcript), a third of them with a busy attempt behind them
(waiting to retry), a fifth claimed, every number with two earlier calls and an SMS exchange. The
worklist is the real :class:`~callcenter.callbacks.worklist.Worklist` over the real SQL stores (calls,
voicemails, SMS). ``--reads`` reads of the whole list (``Worklist.items``) are timed one after the
other; the baseline, in the same run, is the bare SELECT of the same rows (``in_state``), the least
any list must cost. Reported: ``read_p50_ms``, ``read_p99_ms``, the baseline's, and their ratio.
No target is set by the issue; the figure says what one page refresh costs the database.

Run from a checkout: ``callcenter bench worklist --json`` (``--callbacks 200 --reads 30``).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import math
import os
import sys
import time
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter.callbacks.attempts import end_attempt, start_attempt
from callcenter.callbacks.dispatch import DispatchSettings
from callcenter.callbacks.lifecycle import move
from callcenter.callbacks.service import CallbackService
from callcenter.callbacks.sources import CallbackSources
from callcenter.callbacks.worklist import Worklist
from callcenter.model.callbacks import Actor
from callcenter.model.records import CallRecord, QueueRecord
from callcenter.model.vocabulary import (
    ActorKind,
    AttemptResult,
    CallbackState,
    CallOutcome,
    EntryPoint,
    VoicemailStatus,
)
from callcenter.sms.records import Direction, MessageStatus, SmsMessage
from callcenter.store.database import create_engine
from callcenter.store.sql_dispatch import SqlDispatchStore
from callcenter.store.sql_repos import SqlCallRepository, SqlQueueRepository
from callcenter.store.sql_sms import SqlSmsStore
from callcenter.store.sql_voicemails import SqlVoicemailRepository
from callcenter.voicemail.records import Voicemail, VoicemailTranscript
from callcenter.wiring.agent import SmsThreads, VoicemailNotes

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _postgres import scratch_schema  # noqa: E402

QUEUE = "bench"
S = CallbackState
LISTED = frozenset({S.REQUESTED, S.SCHEDULED, S.RETRY_WAIT, S.DIALING, S.CONNECTED})
DISPATCHER = Actor(ActorKind.SYSTEM, "dispatcher")


def log(message: str) -> None:
    print(f"[bench worklist] {message}", file=sys.stderr, flush=True)


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


class _Clock:
    def __init__(self) -> None:
        self.at = datetime.now(UTC)

    def now(self) -> datetime:
        return self.at


class _Agents:
    """The agent's queues, and callers' calls from the call store (the queue service reads the same)."""

    def __init__(self, calls: SqlCallRepository) -> None:
        self._calls = calls

    async def queues_of(self, agent_id: str) -> tuple[str, ...]:
        return (QUEUE,)

    async def recent_calls_of(
        self, numbers: Collection[str], limit: int
    ) -> Mapping[str, Sequence[CallRecord]]:
        return await self._calls.recent_of(numbers, limit)


class _Planner:
    """Slots are not used here (every callback comes from a voicemail)."""

    async def capacity(self, *args: object, **kwargs: object) -> object:  # pragma: no cover
        raise NotImplementedError


async def _seed(engine: AsyncEngine, n: int, clock: _Clock) -> tuple[SqlDispatchStore, Worklist]:
    queues = SqlQueueRepository(engine)
    await queues.put(QueueRecord(name=QUEUE, title="Bench"))
    store = SqlDispatchStore(engine)
    calls = SqlCallRepository(engine)
    voicemails = SqlVoicemailRepository(engine)
    sms = SqlSmsStore(engine)
    service = CallbackService(store, _Planner(), queues, _NoBus(), clock)  # type: ignore[arg-type]
    sources = CallbackSources(store, service, _NoBus(), clock)  # type: ignore[arg-type]
    now = clock.now()
    for index in range(n):
        number = f"+1415555{index:04d}"
        for k in range(2):
            await calls.upsert(
                CallRecord(
                    id=f"call-{index}-{k}",
                    channel_id=f"ch-{index}-{k}",
                    linkedid=f"ch-{index}-{k}",
                    entry_point=EntryPoint.ARI,
                    caller=number,
                    dialled="3000",
                    queue=QUEUE,
                    arrived_at=now - timedelta(hours=k + 1),
                    ended_at=now - timedelta(hours=k + 1) + timedelta(minutes=2),
                    outcome=CallOutcome.ABANDONED,
                )
            )
        voicemail = await voicemails.add(
            Voicemail(
                id=f"vm-{index}",
                call_id=f"call-{index}-0",
                queue=QUEUE,
                caller=number,
                recorded_at=now - timedelta(minutes=50),
                media_path=f"vm-{index}.wav",
                checksum="0" * 64,
                size_bytes=1000,
                duration_s=20.0,
                status=VoicemailStatus.RECORDED,
                updated_at=now,
            )
        )
        await voicemails.save_result(
            dataclasses.replace(voicemail, status=VoicemailStatus.TRANSCRIBED, silent=False),
            VoicemailTranscript(
                voicemail_id=voicemail.id,
                text="please call me back about my order",
                language="en",
                confidence=0.9,
                segments=(),
                model="tiny.en",
                revision=1,
                transcribed_at=now,
            ),
        )
        await sms.record_inbound(
            SmsMessage(
                id=f"sms-{index}",
                key=None,
                direction=Direction.INBOUND,
                number=number,
                kind=None,
                program="",
                text="1",
                status=MessageStatus.RECEIVED,
                created_at=now - timedelta(minutes=40),
                provider="console",
                provider_id=f"p-{index}",
            )
        )
        callback = (
            await sources.from_voicemail(
                QUEUE, number, voicemail_id=voicemail.id, left_at=now - timedelta(minutes=50)
            )
        ).callback
        if index % 3 == 0:
            due, change = move(callback, S.SCHEDULED, at=now, actor=DISPATCHER)
            due = await store.move(due, change)
            dialing, change, attempt = start_attempt(due, at=now, fence=1, actor=DISPATCHER)
            attempt = dataclasses.replace(attempt, agent_id="a1", customer_dialled_at=now)
            await store.start_attempt(dialing, change, attempt, role="bench")
            waiting, change, ended = end_attempt(
                dialing,
                attempt,
                AttemptResult.BUSY,
                at=now,
                actor=DISPATCHER,
                cause="busy",
                retry_at=now + timedelta(minutes=5),
            )
            await store.end_attempt(waiting, change, ended)
        if index % 5 == 0:
            await store.claim(callback.id, "a1", until=now + timedelta(minutes=5), now=now)
    agents = _Agents(calls)
    worklist = Worklist(
        store,
        agents,
        agents,
        clock,
        sources=sources,
        voicemails=VoicemailNotes(voicemails),
        texts=SmsThreads(sms),
        dispatch=DispatchSettings(),
    )
    return store, worklist


class _NoBus:
    async def publish(self, event: object) -> str:
        return "0-0"


async def _run(n: int, reads: int) -> dict[str, object]:
    async with scratch_schema("worklist") as settings:
        engine = create_engine(settings)
        try:
            clock = _Clock()
            log(f"seeding {n} callbacks")
            store, worklist = await _seed(engine, n, clock)
            listed = len(await store.in_state(QUEUE, LISTED))
            items = await worklist.items("a1")  # warm up
            assert len(items) == listed == n, (len(items), listed, n)
            assert all(i.voicemails and i.texts and i.history for i in items)
            baseline: list[float] = []
            measured: list[float] = []
            for _ in range(reads):  # interleaved: the machine's load falls on both alike
                started = time.perf_counter()
                await store.in_state(QUEUE, LISTED)
                baseline.append((time.perf_counter() - started) * 1000)
                started = time.perf_counter()
                await worklist.items("a1")
                measured.append((time.perf_counter() - started) * 1000)
            log(f"{reads} reads of {n} items done")
            return {
                "callbacks": n,
                "reads": reads,
                "read_p50_ms": round(percentile(measured, 0.5), 1),
                "read_p99_ms": round(percentile(measured, 0.99), 1),
                "baseline_p50_ms": round(percentile(baseline, 0.5), 2),
                "baseline_p99_ms": round(percentile(baseline, 0.99), 2),
                "ratio_p50": round(percentile(measured, 0.5) / max(percentile(baseline, 0.5), 1e-6), 1),
                "load_1m": round(os.getloadavg()[0], 2),
            }
        finally:
            await engine.dispose()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="callcenter bench worklist", description=__doc__)
    parser.add_argument("--callbacks", type=int, default=200, help="open callbacks on the list")
    parser.add_argument("--reads", type=int, default=30, help="timed reads of the whole list")
    parser.add_argument("--json", action="store_true", help="accepted for symmetry: the output is JSON")
    args = parser.parse_args(argv)
    print(json.dumps(asyncio.run(_run(max(args.callbacks, 1), max(args.reads, 1)))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
