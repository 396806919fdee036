"""``callcenter stats rebuild`` on a SQLite store (integration, no Redis, no Asterisk)."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from callcenter.cli_stats import add_subcommands, run
from callcenter.config import Settings
from callcenter.model.records import CallRecord, QueueRecord
from callcenter.model.vocabulary import CallOutcome, EntryPoint
from callcenter.store.sql_stats import SqlStatsRepository

pytestmark = [pytest.mark.integration, pytest.mark.timeout(30)]
T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


async def test_rebuild_folds_the_stored_calls_with_each_queues_threshold(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from callcenter.app import open_store

    settings = Settings.from_env({"CALLCENTER_DATA_DIR": str(tmp_path / "data")})
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    async with open_store(settings) as store:
        await store.queues.put(QueueRecord(name="sales", service_level_s=30))
        for i, (outcome, wait) in enumerate([(CallOutcome.ANSWERED, 25.0), (CallOutcome.ABANDONED, 40.0)]):
            at = T0 + timedelta(minutes=i)
            await store.calls.upsert(
                CallRecord(
                    id=f"c{i}",
                    channel_id="x",
                    linkedid="x",
                    entry_point=EntryPoint.ARI,
                    caller="+14155550100",
                    queue="sales",
                    arrived_at=at,
                    queued_at=at,
                    answered_at=at + timedelta(seconds=wait) if outcome is CallOutcome.ANSWERED else None,
                    ended_at=at + timedelta(seconds=wait + 60),
                    wait_s=wait,
                    talk_s=60.0 if outcome is CallOutcome.ANSWERED else None,
                    outcome=outcome,
                )
            )
    parser = argparse.ArgumentParser()
    add_subcommands(parser.add_subparsers(dest="command", required=True))

    assert await run(parser.parse_args(["stats", "rebuild"]), settings) == 0
    assert json.loads(capsys.readouterr().out) == {"calls": 2}

    async with open_store(settings) as store:
        [(key, counts)] = await SqlStatsRepository(store.engine).intervals(T0, T0 + timedelta(hours=1))
    assert (key.queue, counts.offered, counts.answered, counts.abandoned) == ("sales", 2, 1, 1)
    assert counts.answered_in_sl == 1  # 25 s is inside the queue's 30 s, not the default 20 s
