"""``callcenter do-not-call ...``: the callback dispatcher's do-not-call list from the shell (edge).

``add NUMBER [--reason R]``, ``remove NUMBER`` and ``list``; numbers are checked and written in E.164
as the API does. Output is one JSON object a line on stdout, in the API's shapes. The list is read by
the dispatcher when each dial is recorded, so a change applies to the next dial of every process.

Hook (``callcenter/cli.py``): ``add_subcommands(sub)`` in ``_parser()``, and in ``_dispatch`` for a
command in :data:`COMMANDS`: ``return await cli_dispatch.run(args, settings)``.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import Final

from callcenter.callbacks.numbers import NumberRefusal, check_callback_number
from callcenter.config import Settings
from callcenter.errors import InvalidPhoneNumberError, NotFoundError

COMMANDS: Final = frozenset({"do-not-call"})
ACTOR: Final = "cli"


def add_subcommands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``do-not-call`` to the ``callcenter`` command's subparsers."""
    dnc = sub.add_parser("do-not-call", help="numbers the callback dispatcher never dials")
    dnc_sub = dnc.add_subparsers(dest="dnc_command", required=True)
    add = dnc_sub.add_parser("add", help="put a number on the list (a repeat keeps the first entry)")
    add.add_argument("number", metavar="NUMBER")
    add.add_argument("--reason", default="")
    remove = dnc_sub.add_parser("remove", help="take a number off the list")
    remove.add_argument("number", metavar="NUMBER")
    dnc_sub.add_parser("list", help="the list, one JSON object a line")


def _e164(raw: str, settings: Settings) -> str:
    checked = check_callback_number(raw, default_region=settings.default_region, allowed_regions=())
    if checked.e164 is None:
        why = "withheld" if checked.refusal is NumberRefusal.WITHHELD else "not a valid phone number"
        raise InvalidPhoneNumberError(f"{raw.strip()[:32]!r}: {why}")
    return checked.e164


async def run(args: argparse.Namespace, settings: Settings) -> int:
    """Run one ``do-not-call`` command. :raises CallCenterError: (``cli.main`` prints it, exit 2)."""
    from callcenter.api.dispatch import entry_json
    from callcenter.app import open_store
    from callcenter.store.sql_dispatch import SqlDispatchStore

    async with open_store(settings) as store:
        dispatch = SqlDispatchStore(store.engine)
        if args.dnc_command == "list":
            for entry in await dispatch.blocked_numbers():
                print(json.dumps(entry_json(entry)))
        elif args.dnc_command == "add":
            number = _e164(args.number, settings)
            entry = await dispatch.block_number(
                number, by=ACTOR, reason=args.reason[:500], at=datetime.now(UTC)
            )
            print(json.dumps(entry_json(entry)))
        else:
            number = _e164(args.number, settings)
            if not await dispatch.unblock_number(number):
                raise NotFoundError(f"{number} is not on the do-not-call list")
            print(json.dumps({"number": number, "removed": True}))
    return 0
