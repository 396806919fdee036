"""``callcenter agent ...`` and ``callcenter queue ...``: agents and queue settings from the shell (edge).

They run through the same :class:`~callcenter.queue.service.QueueService` as the API, on the store
and the bus, without Asterisk. A running ``callcenter serve`` picks the changes up at its next
refresh (``QueueService.refresh``, every 30 s); agent state changes are published on the bus.
Output is one JSON object a line on stdout, in the API's shapes.

Hook (``callcenter/cli.py``): ``add_subcommands(sub)`` in ``_parser()``, and in ``_dispatch`` for a
command in :data:`COMMANDS`: ``return await cli_agents.run(args, settings)``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
from pathlib import Path
from typing import Final

from callcenter.config import Settings
from callcenter.errors import ConfigError, ValidationError
from callcenter.model.records import ExitAction
from callcenter.queue.service import QueueService

logger = logging.getLogger(__name__)

#: The top-level commands this module adds.
COMMANDS: Final = frozenset({"agent", "queue"})
ACTOR: Final = "cli"

_ACTIONS: Final = [action.value for action in ExitAction]


def add_subcommands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``agent`` and ``queue`` to the ``callcenter`` command's subparsers."""
    agent = sub.add_parser("agent", help="manage agents (through the store; no Asterisk needed)")
    agent_sub = agent.add_subparsers(dest="agent_command", required=True)
    add = agent_sub.add_parser("add", help="create an agent (logged out)")
    add.add_argument("agent_id", metavar="ID")
    add.add_argument("--name", required=True)
    add.add_argument("--endpoint", required=True, help="what we ring, e.g. PJSIP/1001")
    add.add_argument("--queue", action="append", default=[], help="a queue the agent serves (repeat)")
    agent_sub.add_parser("list", help="list agents, one JSON object a line")
    for action in ("login", "logout", "pause", "unpause"):
        command = agent_sub.add_parser(action, help=f"{action} an agent")
        command.add_argument("agent_id", metavar="ID")
        if action == "pause":
            command.add_argument("--reason", default="", help="shown in the agent's state change")
    queues = agent_sub.add_parser("queues", help="replace the queues an agent serves")
    queues.add_argument("agent_id", metavar="ID")
    queues.add_argument("--queue", action="append", default=[], help="a queue (repeat; none: no queue)")

    queue = sub.add_parser("queue", help="manage queues")
    queue_sub = queue.add_subparsers(dest="queue_command", required=True)
    queue_sub.add_parser("list", help="list queues with their settings, one JSON object a line")
    put = queue_sub.add_parser("set", help="create a queue or change its settings (others keep their value)")
    put.add_argument("name", metavar="NAME")
    put.add_argument("--title")
    put.add_argument("--max-wait-s", type=int)
    put.add_argument("--join-empty", choices=["yes", "no"], help="may callers wait while nobody is logged in")
    put.add_argument("--service-level-s", type=int)
    put.add_argument("--short-abandon-s", type=int)
    put.add_argument("--max-callers", help="a number, or 'none' for no limit")
    put.add_argument("--business-number", help="E.164, or 'none'")
    put.add_argument("--time-zone", help="IANA name, e.g. Europe/Paris")
    put.add_argument(
        "--hours",
        help='JSON or a JSON file: {"mon": ["09:00-17:00"], ...}, or '
        '{"time_zone": ..., "weekly": {...} or null, "holidays": ["2026-12-25"]}',
    )
    put.add_argument("--holidays", help="comma-separated YYYY-MM-DD dates ('' for none)")
    put.add_argument("--after-hours-action", choices=_ACTIONS)
    put.add_argument("--timeout-action", choices=_ACTIONS)
    put.add_argument("--no-agents-action", choices=_ACTIONS, help="also used when the queue is full")
    put.add_argument("--ring-timeout-s", type=int)
    put.add_argument("--wrap-up-s", type=int)
    put.add_argument("--max-misses-before-pause", type=int, help="0 never pauses")


async def run(args: argparse.Namespace, settings: Settings) -> int:
    """Run one ``agent`` or ``queue`` command; return the exit status.

    :raises CallCenterError: with a message for people (``callcenter.cli.main`` prints it, exit 2).
    """
    # Imported here, as cli.py does: the composition root pulls in the database drivers.
    from callcenter.app import open_queue_service

    async with open_queue_service(settings) as service:
        if args.command == "agent":
            await _agent(service, args)
        elif args.command == "queue":
            await _queue(service, args)
        else:
            raise ConfigError(f"not an agent or queue command: {args.command!r}")
    return 0


async def _agent(service: QueueService, args: argparse.Namespace) -> None:
    from callcenter.api.schemas import agent_json

    command = args.agent_command
    if command == "list":
        cursor: str | None = None
        while True:
            page = await service.list_agents(cursor=cursor, limit=500)
            for status in page.items:
                _print(agent_json(status))
            if page.next is None:
                return
            cursor = page.next
    if command == "add":
        status = await service.add_agent(
            agent_id=args.agent_id, name=args.name, endpoint=args.endpoint, queues=args.queue, actor=ACTOR
        )
    elif command == "login":
        status = await service.login(args.agent_id, actor=ACTOR)
    elif command == "logout":
        status = await service.logout(args.agent_id, actor=ACTOR)
    elif command == "pause":
        status = await service.pause(args.agent_id, actor=ACTOR, reason=args.reason)
    elif command == "unpause":
        status = await service.unpause(args.agent_id, actor=ACTOR)
    else:
        status = await service.set_agent_queues(args.agent_id, args.queue, actor=ACTOR)
    _print(agent_json(status))


async def _queue(service: QueueService, args: argparse.Namespace) -> None:
    import dataclasses

    from callcenter.api.queues import queue_changes
    from callcenter.api.schemas import queue_json

    if args.queue_command == "list":
        for queue in await service.list_queues():
            _print(queue_json(queue, open_now=service.is_open(queue)))
        return
    changes = queue_changes(await _settings_body(args))
    current = await service.queue_or_default(args.name)
    stored = await service.put_queue(dataclasses.replace(current, **changes), actor=ACTOR)  # type: ignore[arg-type]
    _print(queue_json(stored, open_now=service.is_open(stored)))


async def _settings_body(args: argparse.Namespace) -> dict[str, object]:
    """The options given to ``queue set``, as the JSON body of ``PUT /api/v1/queues/{name}``."""
    from callcenter.queue.hours import parse_hours_document

    body: dict[str, object] = {}
    for name in (
        "title",
        "max_wait_s",
        "service_level_s",
        "short_abandon_s",
        "time_zone",
        "after_hours_action",
        "timeout_action",
        "no_agents_action",
        "ring_timeout_s",
        "wrap_up_s",
        "max_misses_before_pause",
    ):
        value = getattr(args, name)
        if value is not None:
            body[name] = value
    if args.join_empty is not None:
        body["join_empty"] = args.join_empty == "yes"
    if args.max_callers is not None:
        body["max_callers"] = (
            None if args.max_callers.lower() == "none" else _whole("--max-callers", args.max_callers)
        )
    if args.business_number is not None:
        body["business_number"] = None if args.business_number.lower() == "none" else args.business_number
    if args.hours is not None:
        document = parse_hours_document(await _json_or_file("--hours", args.hours))
        if document.weekly_given:
            body["business_hours"] = (
                None if document.weekly is None else {k: list(v) for k, v in document.weekly.items()}
            )
        if document.holidays is not None:
            body["holidays"] = [day.isoformat() for day in document.holidays]
        if document.time_zone is not None:
            body["time_zone"] = document.time_zone
    if args.holidays is not None:
        body["holidays"] = [day.strip() for day in args.holidays.split(",") if day.strip()]
    return body


def _whole(option: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValidationError(f"{option}: a whole number or 'none', not {text!r}") from None


async def _json_or_file(option: str, value: str) -> object:
    text = value
    if not value.lstrip().startswith(("{", "[")):
        try:
            text = await asyncio.to_thread(_read_text, value)
        except OSError as exc:
            raise ValidationError(
                f"{option}: neither JSON nor a readable file ({exc.strerror}): {value}"
            ) from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ValidationError(f"{option}: not valid JSON: {exc}") from None


def _read_text(path: str) -> str:
    return Path(path).expanduser().read_text(encoding="utf-8")


def _print(body: dict[str, object]) -> None:
    print(json.dumps(body, ensure_ascii=False))
