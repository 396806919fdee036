"""``callcenter sms ...``: texts, threads, consent and the ledger export from the shell (edge).

The same engine and checks as the API (``/api/v1/sms/...``, ``/api/v1/consent/...``):

* ``send NUMBER TEXT [--key K]``: queue an agent's text; refused when consent forbids it, and sent by
  the running service when quiet hours and the per-number cap allow (this command does not send).
* ``messages [--number N] [--needs-person] [--limit N]``: newest first, one JSON object a line.
* ``thread NUMBER``: one number's conversation, oldest first.
* ``consent NUMBER [--opt-in | --opt-out] [--program P] [--source S] [--evidence TEXT]``: the current
  status and history, after appending a record when asked (an opt-out cancels what is queued).
* ``export``: the consent ledger as CSV on stdout, for audits.
* ``resolve MESSAGE_ID (--resend | --close)``: a person's decision on a text whose outcome is
  ``unknown`` (handed to the provider by a sender that died; no delivery report came).

Output is JSON lines in the API's shapes (CSV for ``export``). Records made here name the actor ``cli``.
Hook (``callcenter/cli.py``): ``add_subcommands(sub)`` in ``_parser()``, and in ``_dispatch`` for a
command in :data:`COMMANDS`: ``return await cli_sms.run(args, settings)``.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Final

from callcenter.config import Settings
from callcenter.sms.consent import ALL_PROGRAMS, ConsentAction, ConsentSource, verify_chain
from callcenter.sms.records import SmsMessage

COMMANDS: Final = frozenset({"sms"})
ACTOR: Final = "cli"


def add_subcommands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``sms`` to the ``callcenter`` command's subparsers."""
    sms = sub.add_parser("sms", help="texts, threads, consent and the consent ledger")
    sms_sub = sms.add_subparsers(dest="sms_command", required=True)
    send = sms_sub.add_parser("send", help="queue a text (consent, quiet hours and cap checked)")
    send.add_argument("number", metavar="NUMBER")
    send.add_argument("text", metavar="TEXT")
    send.add_argument("--key", help="idempotency key: the same key never queues a second text")
    messages = sms_sub.add_parser("messages", help="messages newest first, one JSON object a line")
    messages.add_argument("--number", help="only this number's messages")
    messages.add_argument("--needs-person", action="store_true", help="only those waiting for a person")
    messages.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    thread = sms_sub.add_parser("thread", help="one number's conversation, oldest first")
    thread.add_argument("number", metavar="NUMBER")
    consent = sms_sub.add_parser("consent", help="a number's consent: status and history")
    consent.add_argument("number", metavar="NUMBER")
    change = consent.add_mutually_exclusive_group()
    change.add_argument("--opt-in", action="store_true", help="append an opt-in record first")
    change.add_argument("--opt-out", action="store_true", help="append an opt-out record first")
    consent.add_argument("--program", default=ALL_PROGRAMS, help="program of the record (default: all)")
    consent.add_argument(
        "--source",
        default=ConsentSource.API.value,
        choices=[s.value for s in ConsentSource if s is not ConsentSource.SMS_KEYWORD],
        help="where the consent was given (default api)",
    )
    consent.add_argument("--evidence", default="", help="what the customer said or signed")
    sms_sub.add_parser("export", help="the consent ledger as CSV on stdout")
    resolve = sms_sub.add_parser("resolve", help="decide on a text whose outcome is unknown")
    resolve.add_argument("message_id", metavar="MESSAGE_ID")
    decision = resolve.add_mutually_exclusive_group(required=True)
    decision.add_argument("--resend", action="store_true", help="send it again (checks apply again)")
    decision.add_argument("--close", action="store_true", help="close it as failed; nothing is sent")


async def run(args: argparse.Namespace, settings: Settings) -> int:
    """Run one ``sms`` command. :raises CallCenterError: (``cli.main`` prints it, exit 2)."""
    import aiohttp

    from callcenter.api.sms_schemas import consent_json, message_json
    from callcenter.app import open_store
    from callcenter.clock import SystemClock
    from callcenter.wiring.sms import build_sms_engine

    async with open_store(settings) as store, aiohttp.ClientSession() as session:
        engine = build_sms_engine(settings, store, session, SystemClock())
        command = args.sms_command
        if command == "send":
            message = await engine.send_manual(args.number, args.text, actor=ACTOR, key=args.key)
            print(json.dumps(message_json(message)))
        elif command in ("messages", "thread"):
            number = args.number
            needs_person = True if command == "messages" and args.needs_person else None
            limit = args.limit if command == "messages" else None
            found: list[SmsMessage] = []
            cursor: str | None = None
            while limit is None or len(found) < limit:
                page = await engine.messages(
                    number=number, needs_person=needs_person, cursor=cursor, limit=200
                )
                found.extend(page.items)
                if page.next is None:
                    break
                cursor = page.next
            shown = found[:limit] if limit is not None else list(reversed(found))
            for message in shown:
                print(json.dumps(message_json(message)))
        elif command == "consent":
            if args.opt_in or args.opt_out:
                view = await engine.record_consent(
                    args.number,
                    action=ConsentAction.OPT_IN if args.opt_in else ConsentAction.OPT_OUT,
                    program=args.program,
                    source=ConsentSource(args.source),
                    actor=ACTOR,
                    evidence=args.evidence,
                )
            else:
                view = await engine.consent(args.number)
            print(json.dumps(consent_json(view, chain_ok=verify_chain(view.history) is None)))
        elif command == "export":
            async for line in engine.export_ledger():
                sys.stdout.write(line)
        else:
            message = await engine.resolve_unknown(args.message_id, resend=args.resend, actor=ACTOR)
            print(json.dumps(message_json(message)))
    return 0
