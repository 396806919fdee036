"""``callcenter schedule ...`` and ``callcenter forecast ...`` on a SQLite store (integration, no Asterisk)."""

from __future__ import annotations

import argparse
import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from callcenter.capacity.forecast import NoHistoryError
from callcenter.cli_capacity import COMMANDS, add_subcommands, run
from callcenter.config import Settings
from callcenter.errors import NotFoundError, ValidationError
from callcenter.model.records import AgentRecord, CallRecord, QueueRecord
from callcenter.model.vocabulary import CallOutcome, EntryPoint

pytestmark = [pytest.mark.integration, pytest.mark.timeout(30)]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="callcenter")
    add_subcommands(parser.add_subparsers(dest="command", required=True))
    return parser


@pytest.fixture
async def settings(tmp_path: Path) -> Settings:
    """A SQLite store with queue ``sales`` (agents a1, a2) and ``empty``, and two weeks of sales calls."""
    from callcenter.app import open_store

    settings = Settings.from_env({"CALLCENTER_DATA_DIR": str(tmp_path / "data")})
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    async with open_store(settings) as store:
        await store.queues.put(QueueRecord(name="sales", wrap_up_s=5))
        await store.queues.put(QueueRecord(name="empty"))
        for agent_id in ("a1", "a2"):
            await store.agents.add(
                AgentRecord(id=agent_id, name=agent_id, endpoint=f"PJSIP/{agent_id}", queues=("sales",))
            )
        # The last two Mondays 10:00-10:15 (UTC) that are over.
        now = datetime.now(UTC)
        monday_ten = now.replace(hour=10, minute=0, second=0, microsecond=0) - timedelta(days=now.weekday())
        if monday_ten + timedelta(minutes=15) > now:
            monday_ten -= timedelta(weeks=1)
        for week in (0, 1):
            for i in range(8):
                at = monday_ten - timedelta(weeks=week) + timedelta(seconds=60 * i)
                abandoned = i == 0
                await store.calls.upsert(
                    CallRecord(
                        id=f"w{week}-{i}",
                        channel_id="x",
                        linkedid="x",
                        entry_point=EntryPoint.ARI,
                        queue="sales",
                        arrived_at=at,
                        queued_at=at,
                        wait_s=30.0,
                        talk_s=None if abandoned else 95.0,
                        outcome=CallOutcome.ABANDONED if abandoned else CallOutcome.ANSWERED,
                    )
                )
    return settings


async def cli(settings: Settings, capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, object]:
    """Run one command; return the JSON object it printed."""
    args = _parser().parse_args(argv)
    assert args.command in COMMANDS
    assert await run(args, settings) == 0
    [line] = capsys.readouterr().out.splitlines()
    body = json.loads(line)
    assert isinstance(body, dict)
    return body


async def test_schedules_are_set_and_shown_from_the_command_line(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    stored = await cli(
        settings,
        capsys,
        "schedule",
        "set",
        "a1",
        "--shift",
        "tue 09:00-17:00",
        "--shift",
        "Monday 22:00-06:00",
    )
    shown = await cli(settings, capsys, "schedule", "show", "a1")

    assert stored == shown
    assert shown["shifts"] == [
        {"day": "mon", "start": "22:00", "end": "06:00"},
        {"day": "tue", "start": "09:00", "end": "17:00"},
    ]
    assert (shown["updated_by"], shown["hours_per_week"]) == ("cli", 16.0)
    assert (await cli(settings, capsys, "schedule", "show", "a2"))["shifts"] == []


async def test_a_forecast_is_printed_as_one_json_object(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    await cli(settings, capsys, "schedule", "set", "a1", "--shift", "mon 08:00-18:00")
    next_monday = (datetime.now(UTC) + timedelta(days=7 - datetime.now(UTC).weekday())).date()

    body = await cli(
        settings, capsys, "forecast", "sales", "--date", next_monday.isoformat(), "--target", "0.9"
    )

    assert (body["queue"], body["date"], body["target_service_level"]) == (
        "sales",
        next_monday.isoformat(),
        0.9,
    )
    intervals = body["intervals"]
    assert isinstance(intervals, list) and len(intervals) == 96
    ten = intervals[40]
    assert ten["arrivals"] == pytest.approx(8.0) and ten["aht_s"] == pytest.approx(100.0)
    assert ten["staffed_agents"] == 1.0 and isinstance(ten["service_level"], float)
    assert math.isfinite(ten["patience_s"])


@pytest.mark.parametrize(
    ("argv", "error", "message"),
    [
        (
            ["schedule", "set", "a1", "--shift", "mon 09:00-17:00", "--shift", "mon 12:00-13:00"],
            ValidationError,
            "overlap",
        ),
        (["schedule", "set", "a1", "--shift", "mon 9-5"], ValidationError, "reads like"),
        (
            ["schedule", "set", "nobody", "--shift", "mon 09:00-17:00"],
            NotFoundError,
            "agent 'nobody' not found",
        ),
        (["schedule", "show", "nobody"], NotFoundError, "agent 'nobody' not found"),
        (["forecast", "empty"], NoHistoryError, "queue 'empty' has no usable call history"),
        (["forecast", "nope"], NotFoundError, "queue 'nope' not found"),
        (["forecast", "sales", "--date", "tomorrow"], ValidationError, "--date must be a date"),
        (["forecast", "sales", "--target", "1.2"], ValidationError, "target_service_level"),
        (["forecast", "sales", "--target", "nan"], ValidationError, "target_service_level"),
    ],
)
async def test_bad_input_is_an_error_with_the_reason(
    settings: Settings, argv: list[str], error: type[Exception], message: str
) -> None:
    args = _parser().parse_args(argv)

    with pytest.raises(error, match=message):
        await run(args, settings)


def test_a_schedule_without_a_shift_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        _parser().parse_args(["schedule", "set", "a1"])

    assert exited.value.code == 2
    assert "--shift" in capsys.readouterr().err
