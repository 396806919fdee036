"""``callcenter stats rebuild``: rebuild the interval rows and the missed-call list from the stored calls (edge).

Runs on the SQL store alone (no Redis, no Asterisk), with the same definitions as the service
(``CALLCENTER_STATS_*`` and each queue's ``service_level_s``). Prints one JSON object on stdout.

Hook (``callcenter/cli.py``): ``cli_stats.add_subcommands(sub)`` in ``_parser()``, and in ``_dispatch``
for a command in :data:`COMMANDS`: ``return await cli_stats.run(args, settings)``.
"""

from __future__ import annotations

import argparse
import json
from typing import Final

from callcenter.config import Settings

COMMANDS: Final = frozenset({"stats"})


def add_subcommands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``stats`` to the ``callcenter`` command's subparsers."""
    stats = sub.add_parser("stats", help="statistics: rebuild the interval rows from the stored calls")
    stats_sub = stats.add_subparsers(dest="stats_command", required=True)
    stats_sub.add_parser("rebuild", help="replace every interval row and the missed-call list (idempotent)")


async def run(args: argparse.Namespace, settings: Settings) -> int:
    import dataclasses

    import callcenter.app as app
    from callcenter.store.sql_stats import SqlStatsRepository
    from callcenter.wiring.stats import stats_config

    async with app.open_store(settings) as store:
        config = stats_config(settings)
        queues = await store.queues.list()
        config = dataclasses.replace(config, thresholds={q.name: float(q.service_level_s) for q in queues})
        folded = await SqlStatsRepository(store.engine).rebuild(config)
    print(json.dumps({"calls": folded}))
    return 0
