"""``callcenter schedule ...`` and ``callcenter forecast ...``: agents' shifts and a queue's day plan (edge).

They run the same :class:`~callcenter.capacity.service.EstimateService` as the API, on the SQL store
alone (no Redis, no Asterisk). Output is one JSON object on stdout, in the API's shapes. Bad input
(an overlapping shift, a queue without history, a date that is not a date) exits 2 with the reason on
stderr (``callcenter.cli.main`` prints every ``CallCenterError``).

Hook (``callcenter/cli.py``): ``cli_capacity.add_subcommands(sub)`` in ``_parser()``, and in
``_dispatch`` for a command in :data:`COMMANDS`: ``return await cli_capacity.run(args, settings)``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date
from typing import Final

from callcenter.capacity.schedules import parse_shift
from callcenter.capacity.service import EstimateService
from callcenter.clock import SystemClock
from callcenter.config import Settings
from callcenter.errors import ConfigError, ValidationError

#: The top-level commands this module adds.
COMMANDS: Final = frozenset({"schedule", "forecast"})
ACTOR: Final = "cli"


def add_subcommands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``schedule`` and ``forecast`` to the ``callcenter`` command's subparsers."""
    schedule = sub.add_parser("schedule", help="agents' weekly shifts (through the store)")
    schedule_sub = schedule.add_subparsers(dest="schedule_command", required=True)
    put = schedule_sub.add_parser("set", help="replace an agent's shifts")
    put.add_argument("agent_id", metavar="AGENT")
    put.add_argument(
        "--shift",
        action="append",
        default=[],
        required=True,
        help="'mon 09:00-17:00' in the local time of the agent's queues (repeat); "
        "'fri 22:00-06:00' ends on Saturday; shifts may not overlap",
    )
    show = schedule_sub.add_parser("show", help="an agent's shifts as JSON")
    show.add_argument("agent_id", metavar="AGENT")

    forecast = sub.add_parser(
        "forecast",
        help="a day's plan per 15 minutes: arrivals, handle time, patience, agents scheduled and required",
    )
    forecast.add_argument("queue", metavar="QUEUE")
    forecast.add_argument("--date", help="YYYY-MM-DD, local to the queue (default: today)")
    forecast.add_argument(
        "--target",
        type=float,
        help="share of calls to answer within the queue's service_level_s (default 0.8)",
    )


@asynccontextmanager
async def open_estimate_service(settings: Settings) -> AsyncIterator[EstimateService]:
    """The estimate service over the SQL store, without live queues (estimates are refused)."""
    # Imported here, as cli.py does: the composition root pulls in the database drivers.
    from callcenter.app import open_store
    from callcenter.store.sql_capacity import SqlPredictionLog, SqlScheduleRepository

    async with open_store(settings) as store:
        yield EstimateService(
            store.queues,
            store.calls,
            SqlScheduleRepository(store.engine),
            SqlPredictionLog(store.engine),
            SystemClock(),
        )


async def run(args: argparse.Namespace, settings: Settings) -> int:
    """Run one ``schedule`` or ``forecast`` command; return the exit status.

    :raises CallCenterError: with a message for people (``callcenter.cli.main`` prints it, exit 2).
    """
    from callcenter.api.capacity_schemas import queue_forecast_json, schedule_json

    if args.command not in COMMANDS:
        raise ConfigError(f"not a schedule or forecast command: {args.command!r}")
    day = _date(args.date) if args.command == "forecast" else None
    shifts = (
        [parse_shift(text) for text in args.shift] if getattr(args, "schedule_command", None) == "set" else []
    )
    async with open_estimate_service(settings) as service:
        if args.command == "forecast":
            forecast = await service.forecast(args.queue, day, target_service_level=args.target)
            _print(queue_forecast_json(forecast))
        elif args.schedule_command == "set":
            _print(schedule_json(await service.set_schedule(args.agent_id, shifts, actor=ACTOR)))
        else:
            _print(schedule_json(await service.get_schedule(args.agent_id)))
    return 0


def _date(text: str | None) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValidationError(f"--date must be a date as YYYY-MM-DD, not {text!r}") from None


def _print(body: dict[str, object]) -> None:
    print(json.dumps(body, ensure_ascii=False, allow_nan=False))
