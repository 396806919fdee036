"""``callcenter sms ...`` on a SQLite store with the console provider (integration, no Redis)."""

from __future__ import annotations

import argparse
import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from callcenter.cli_sms import add_subcommands, run
from callcenter.config import Settings
from callcenter.errors import ConflictError, ValidationError
from callcenter.sms.outbox import Handed, Unknown

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]
NUMBER = "+12125550123"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    settings = Settings.from_env({"CALLCENTER_DATA_DIR": str(tmp_path / "data")})
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return settings


async def sms(settings: Settings, capsys: pytest.CaptureFixture[str], *argv: str) -> list[str]:
    parser = argparse.ArgumentParser()
    add_subcommands(parser.add_subparsers(dest="command", required=True))
    assert await run(parser.parse_args(["sms", *argv]), settings) == 0
    return capsys.readouterr().out.splitlines()


async def test_send_list_thread_and_a_repeat_key(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    (line,) = await sms(settings, capsys, "send", "(212) 555-0123", "Your parcel is ready", "--key", "k1")
    queued = json.loads(line)
    assert (queued["number"], queued["status"], queued["actor"]) == (NUMBER, "queued", "cli")
    (again,) = await sms(settings, capsys, "send", NUMBER, "Your parcel is ready", "--key", "k1")
    assert json.loads(again)["id"] == queued["id"]  # the same key queues nothing new
    await sms(settings, capsys, "send", NUMBER, "Second text")
    listed = [json.loads(x) for x in await sms(settings, capsys, "messages", "--number", NUMBER)]
    thread = [json.loads(x) for x in await sms(settings, capsys, "thread", NUMBER)]
    assert [m["text"] for m in thread] == ["Your parcel is ready", "Second text"]
    assert [m["id"] for m in listed] == [m["id"] for m in reversed(thread)]
    assert await sms(settings, capsys, "messages", "--needs-person") == []


async def test_consent_opt_out_blocks_sending_and_shows_in_the_export(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    (before,) = await sms(settings, capsys, "consent", NUMBER)
    assert json.loads(before)["status"] == "unknown"
    await sms(settings, capsys, "send", NUMBER, "queued before the opt-out")
    (after,) = await sms(
        settings,
        capsys,
        "consent",
        NUMBER,
        "--opt-out",
        "--source",
        "agent",
        "--evidence",
        "asked on the phone",
    )
    view = json.loads(after)
    assert view["status"] == "opted_out" and len(view["history"]) == 1 and view["chain_ok"] is True
    (cancelled,) = [json.loads(x) for x in await sms(settings, capsys, "thread", NUMBER)]
    assert cancelled["status"] == "cancelled"  # the opt-out cancelled what was queued
    with pytest.raises(ConflictError, match="consent forbids"):
        await sms(settings, capsys, "send", NUMBER, "after the opt-out")
    rows = list(csv.DictReader(io.StringIO("\n".join(await sms(settings, capsys, "export")))))
    assert [(r["number"], r["action"], r["source"], r["actor"]) for r in rows] == [
        (NUMBER, "opt_out", "agent", "cli")
    ]


async def test_bad_numbers_are_refused_clearly(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ValidationError, match="not a valid phone number"):
        await sms(settings, capsys, "send", "12", "hello")
    with pytest.raises(ValidationError):
        await sms(settings, capsys, "consent", "not a number")


async def test_a_person_resolves_a_text_whose_outcome_is_unknown(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    from callcenter.app import open_store
    from callcenter.store.sql_sms import SqlSmsStore

    (line,) = await sms(settings, capsys, "send", NUMBER, "did this go?")
    message_id = json.loads(line)["id"]
    with pytest.raises(ConflictError, match="not unknown"):
        await sms(settings, capsys, "resolve", message_id, "--resend")
    now = datetime.now(UTC)
    async with open_store(settings) as store:
        sql = SqlSmsStore(store.engine)
        (claimed,) = await sql.claim_due(now + timedelta(seconds=1), lease_s=60, limit=5)
        await sql.record_outcomes([Handed(claimed.id, "console", now, claimed.claimed_until)], now)
        await sql.record_outcomes([Unknown(claimed.id, "no report")], now)
    (waiting,) = [json.loads(x) for x in await sms(settings, capsys, "messages", "--needs-person")]
    assert (waiting["id"], waiting["status"]) == (message_id, "unknown")
    (resent,) = await sms(settings, capsys, "resolve", message_id, "--resend")
    assert json.loads(resent)["status"] == "queued" and json.loads(resent)["provider"] == ""
    assert await sms(settings, capsys, "messages", "--needs-person") == []
