"""The ``callcenter`` command: serve, migrate, tokens, settings and benchmarks (edge)."""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import re
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from callcenter import (
    cli_agents,
    cli_capacity,
    cli_dispatch,
    cli_prompts,
    cli_simulate,
    cli_sms,
    cli_stats,
    cli_transcribe,
)
from callcenter.config import Settings, settings_markdown
from callcenter.errors import CallCenterError, ConfigError
from callcenter.logs import configure_logging
from callcenter.model.vocabulary import Role

_DURATION = re.compile(r"^(\d+)([smhdw])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_expiry(text: str, now: datetime) -> datetime:
    """``30d``, ``12h``, ``90m`` from ``now``, or an ISO 8601 time with an offset.

    :raises ConfigError: for anything else.
    """
    match = _DURATION.match(text.strip())
    if match:
        return now + timedelta(seconds=int(match.group(1)) * _UNIT_S[match.group(2)])
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(f"--expires {text!r}: use a duration such as 30d or 12h, or an ISO time") from None
    if when.tzinfo is None:
        raise ConfigError(f"--expires {text!r}: the time needs an offset, e.g. 2027-01-01T00:00:00+00:00")
    return when


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="callcenter", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the API (and, when configured, the ARI link)")
    serve.add_argument("--host", help="address to bind (default CALLCENTER_HTTP_HOST)")
    serve.add_argument("--port", type=int, help="port to bind (default CALLCENTER_HTTP_PORT)")

    demo = sub.add_parser("demo", help="run the service against the built-in simulated Asterisk with traffic")
    demo.add_argument("--port", type=int, help="port to bind on 127.0.0.1 (default CALLCENTER_HTTP_PORT)")

    sub.add_parser("migrate", help="bring the SQL store to the newest schema")

    token = sub.add_parser("token", help="manage API tokens")
    token_sub = token.add_subparsers(dest="token_command", required=True)
    create = token_sub.add_parser("create", help="create a token; prints the secret alone on stdout")
    create.add_argument("--role", required=True, choices=[r.value for r in Role])
    create.add_argument("--agent", help="agent id (required for --role agent)")
    create.add_argument("--expires", help="30d, 12h, or an ISO 8601 time with offset")
    create.add_argument("--label", default="", help="a note to recognise the token by")
    token_sub.add_parser("list", help="list tokens (never their secrets)")
    revoke = token_sub.add_parser("revoke", help="revoke a token by id")
    revoke.add_argument("token_id")

    settings = sub.add_parser("settings", help="show the effective settings, secrets hidden")
    settings.add_argument("--markdown", action="store_true", help="print the table of every variable")

    bench = sub.add_parser("bench", help="run bench/<name>.py from a checkout")
    bench.add_argument("name")
    bench.add_argument("args", nargs=argparse.REMAINDER)

    cli_simulate.add_subcommand(sub)
    cli_agents.add_subcommands(sub)
    cli_capacity.add_subcommands(sub)
    cli_transcribe.add_subcommand(sub)
    worker = sub.add_parser("worker", help="run background work from the bus (production: beside serve)")
    worker.add_argument(
        "--transcribe", action="store_true", help="transcribe voicemails (the model runs in a child process)"
    )
    cli_prompts.add_subcommands(sub)
    cli_dispatch.add_subcommands(sub)
    cli_stats.add_subcommands(sub)
    cli_sms.add_subcommands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return the process exit status."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "settings" and args.markdown:
            print(settings_markdown())
            return 0
        if args.command == "bench":
            return _run_bench(args.name, args.args)
        if args.command == "simulate":
            return cli_simulate.run(args)
        if args.command == "prompts":
            return cli_prompts.run(args)
        settings = Settings.from_os_environ()
        configure_logging(settings.log)
        if args.command in cli_transcribe.COMMANDS:
            return cli_transcribe.run(args, settings)  # blocking work, no event loop
        return asyncio.run(_dispatch(args, settings))
    except CallCenterError as exc:
        print(f"callcenter: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


async def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    # Imported here so `callcenter settings` and `--help` start fast and need no database driver.
    import callcenter.app as app

    if args.command == "serve":
        await app.serve(settings, host=args.host, port=args.port)
        return 0
    if args.command == "demo":
        await app.demo(settings, port=args.port)
        return 0
    if args.command == "migrate":
        revision = await app.migrate(settings)
        print(f"database at revision {revision} ({settings.database.url_redacted})", file=sys.stderr)
        return 0
    if args.command == "settings":
        print(repr(settings))
        return 0
    if args.command == "worker":
        if not args.transcribe:
            raise ConfigError("worker: name the work to do (--transcribe)")
        await app.run_transcription_worker(settings)
        return 0
    if args.command == "token":
        return await _token(args, settings)
    if args.command in cli_agents.COMMANDS:
        return await cli_agents.run(args, settings)
    if args.command in cli_capacity.COMMANDS:
        return await cli_capacity.run(args, settings)
    if args.command in cli_dispatch.COMMANDS:
        return await cli_dispatch.run(args, settings)
    if args.command in cli_stats.COMMANDS:
        return await cli_stats.run(args, settings)
    if args.command in cli_sms.COMMANDS:
        return await cli_sms.run(args, settings)
    raise AssertionError(args.command)


async def _token(args: argparse.Namespace, settings: Settings) -> int:
    import callcenter.app as app

    async with app.open_auth(settings) as auth:
        if args.token_command == "create":
            now = datetime.now(UTC)
            expires_at = parse_expiry(args.expires, now) if args.expires else None
            _, secret = await auth.create_token(
                role=Role(args.role),
                agent_id=args.agent,
                label=args.label,
                expires_at=expires_at,
                actor="cli",
            )
            print(secret)
        elif args.token_command == "list":
            cursor: str | None = None
            while True:
                page = await auth.list_tokens(cursor=cursor, limit=500)
                for token in page.items:
                    print(
                        json.dumps(
                            {
                                "id": token.id,
                                "role": token.role.value,
                                "agent_id": token.agent_id,
                                "label": token.label,
                                "created_at": token.created_at.isoformat(),
                                "expires_at": token.expires_at.isoformat() if token.expires_at else None,
                                "revoked_at": token.revoked_at.isoformat() if token.revoked_at else None,
                            }
                        )
                    )
                if page.next is None:
                    break
                cursor = page.next
        else:
            token = await auth.revoke(args.token_id, actor="cli")
            print(f"revoked {token.id}", file=sys.stderr)
    return 0


def _run_bench(name: str, args: Sequence[str]) -> int:
    """Load ``bench/<name>.py`` from the checkout (benchmarks are not installed) and run its ``main``."""
    if not re.fullmatch(r"[a-z0-9_]+", name):
        raise ConfigError(f"bench {name!r}: a benchmark name is lowercase letters, digits and _")
    candidates = [Path.cwd() / "bench", Path(__file__).resolve().parents[1] / "bench"]
    for folder in candidates:
        path = folder / f"{name}.py"
        if path.is_file():
            break
    else:
        available = sorted(
            {p.stem for f in candidates if f.is_dir() for p in f.glob("*.py") if p.stem[0] != "_"}
        )
        raise ConfigError(f"no benchmark {name!r} in bench/ (available: {', '.join(available) or 'none'})")
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Registered before it runs: dataclasses and pickling look their module up in sys.modules.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    result = module.main(list(args))
    return int(result or 0)
