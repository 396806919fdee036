"""``callcenter agent ...`` and ``callcenter queue ...`` on a SQLite store (integration, no Asterisk)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from callcenter.cli_agents import COMMANDS, add_subcommands, run
from callcenter.config import Settings
from callcenter.errors import ConflictError, NotFoundError, ValidationError

pytestmark = [pytest.mark.integration, pytest.mark.timeout(30)]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="callcenter")
    add_subcommands(parser.add_subparsers(dest="command", required=True))
    return parser


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.from_env({"CALLCENTER_DATA_DIR": str(tmp_path / "data")})


async def cli(settings: Settings, capsys: pytest.CaptureFixture[str], *argv: str) -> list[dict[str, object]]:
    """Run one command; return the JSON lines it printed."""
    args = _parser().parse_args(argv)
    assert args.command in COMMANDS
    assert await run(args, settings) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


async def test_queues_and_agents_from_the_command_line(
    settings: Settings, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    hours = tmp_path / "hours.json"
    hours.write_text(json.dumps({"time_zone": "Europe/Paris", "weekly": {"mon": ["09:00-17:00"]}}))

    [sales] = await cli(
        settings, capsys, "queue", "set", "sales", "--max-wait-s", "300", "--hours", str(hours)
    )
    assert (sales["max_wait_s"], sales["time_zone"], sales["business_hours"]) == (
        300,
        "Europe/Paris",
        {"mon": ["09:00-17:00"]},
    )
    [sales] = await cli(
        settings,
        capsys,
        "queue",
        "set",
        "sales",
        "--join-empty",
        "yes",
        "--holidays",
        "2026-12-25",
        "--no-agents-action",
        "continue",
        "--hours",
        '{"weekly": null}',
    )
    assert (sales["max_wait_s"], sales["join_empty"], sales["holidays"], sales["business_hours"]) == (
        300,
        True,
        ["2026-12-25"],
        None,
    )
    await cli(settings, capsys, "queue", "set", "support")
    assert [q["name"] for q in await cli(settings, capsys, "queue", "list")] == ["sales", "support"]

    [added] = await cli(
        settings,
        capsys,
        "agent",
        "add",
        "a1",
        "--name",
        "Ada",
        "--endpoint",
        "PJSIP/1001",
        "--queue",
        "sales",
    )
    assert (added["state"], added["queues"]) == ("logged_out", ["sales"])
    [agent] = await cli(settings, capsys, "agent", "login", "a1")
    assert agent["state"] == "available"
    [agent] = await cli(settings, capsys, "agent", "pause", "a1", "--reason", "lunch")
    assert agent["state"] == "paused"
    [agent] = await cli(settings, capsys, "agent", "unpause", "a1")
    [agent] = await cli(settings, capsys, "agent", "queues", "a1", "--queue", "support", "--queue", "sales")
    assert agent["queues"] == ["sales", "support"]
    [agent] = await cli(settings, capsys, "agent", "logout", "a1")
    assert agent["state"] == "logged_out"
    [listed] = await cli(settings, capsys, "agent", "list")
    assert (listed["id"], listed["state"], listed["endpoint"]) == ("a1", "logged_out", "PJSIP/1001")


@pytest.mark.parametrize(
    ("argv", "error", "message"),
    [
        (("queue", "set", "sales", "--hours", '{"mon": ["9-5"]}'), ValidationError, "HH:MM-HH:MM"),
        (("queue", "set", "sales", "--hours", "/no/such/file.json"), ValidationError, "readable file"),
        (("queue", "set", "sales", "--max-callers", "many"), ValidationError, "--max-callers"),
        (("queue", "set", "sales", "--max-wait-s", "0"), ValidationError, "max_wait_s"),
        (
            ("agent", "add", "a1", "--name", "Ada", "--endpoint", "1001"),
            ValidationError,
            "TECHNOLOGY/resource",
        ),
        (
            ("agent", "add", "a1", "--name", "Ada", "--endpoint", "SIP/1", "--queue", "x"),
            ValidationError,
            "x",
        ),
        (("agent", "login", "ghost"), NotFoundError, "ghost"),
    ],
)
async def test_bad_commands_fail_with_a_message(
    settings: Settings, argv: tuple[str, ...], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        await run(_parser().parse_args(argv), settings)


async def test_adding_an_agent_twice_conflicts(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    await cli(settings, capsys, "agent", "add", "a1", "--name", "Ada", "--endpoint", "PJSIP/1001")
    with pytest.raises(ConflictError):
        await run(
            _parser().parse_args(["agent", "add", "a1", "--name", "Ada", "--endpoint", "PJSIP/1"]), settings
        )
