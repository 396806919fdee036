"""Benchmark: SMS through a real Kannel on loopback, our outbox against a bare sender, and opt-out latency.

* ``bare``: the same texts posted straight to Kannel's sendsms by ``--concurrency`` concurrent
  requests, each with a dlr-url; the rate counts texts whose "delivered" report came back.
* ``outbox``: the texts queued in our outbox (PostgreSQL, 127.0.0.1:5432 database ``test``, a schema
  of its own; ``BENCH_POSTGRES_URL`` overrides) and sent by the engine's sender through
  ``KannelProvider``; delivery reports come back through our Kannel webhook and mark them delivered.
  The rate counts texts queued to texts delivered (persistence and consent, quiet-hours and cap checks
  included). ``ratio`` is outbox over the mean of the bare runs just before and just after it, in
  the same run (``bare``, ``bare_between``): the bare rate drifts with the machine between runs.
* ``restart``: the outbox again, with the sender killed (its task cancelled mid-flight) when half are
  delivered and a new engine started on the same store: duplicates and losses are counted at the phone
  (the fake SMSC), where every text is unique; ``restart_ratio`` is over ``bare_between`` and
  ``bare_after``.
* ``opt_out``: STOPs posted to our Kannel inbound webhook as Kannel would, timed from the request to
  the answer, after which the number is checked blocked (a manual text is refused); and a few STOPs
  through Kannel itself (fakesmsc -> bearerbox -> smsbox get-url), timed from injecting them to the
  number being blocked.

Run from a checkout: ``callcenter bench sms --json`` (``--n 400 --concurrency 10``). The last line of
stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry
from sqlalchemy import func, select

from callcenter.api.app import build_api
from callcenter.api.sms import SMS_HTTP, SmsHttp, WebhookSettings
from callcenter.auth.service import AuthService
from callcenter.config import DatabaseSettings, HttpSettings
from callcenter.errors import ConflictError
from callcenter.model.events import DomainEvent, SmsStatusChanged
from callcenter.sms.consent import INFORMATIONAL
from callcenter.sms.records import MessageStatus, OutboundDraft
from callcenter.sms.rules import MessageKind, SmsRules
from callcenter.sms.service import EngineSettings, SmsEngine
from callcenter.sms.templates import parse_templates
from callcenter.sms_gateways.kannel import DLR_MASK, KannelProvider, KannelSettings
from callcenter.sms_gateways.kannel_lab import (
    PASSWORD,
    USERNAME,
    PhoneText,
    free_port,
    kannel_lab,
    missing_binaries,
)
from callcenter.store.database import create_engine
from callcenter.store.sql_repos import SqlAuditLog, SqlCallRepository, SqlTokenRepository
from callcenter.store.sql_sms import SqlSmsStore
from callcenter.store.sql_sms_models import SmsMessageRow

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _postgres import scratch_schema  # noqa: E402

SECRET = "bench-secret"
SENDER = "5550"


class DaytimeClock:
    """Real elapsed time from a Monday 16:00 UTC (11:00 in New York): quiet hours never interfere."""

    def __init__(self) -> None:
        self._base = datetime(2026, 11, 23, 16, 0, tzinfo=UTC)
        self._t0 = time.monotonic()

    def now(self) -> datetime:
        return self._base + timedelta(seconds=time.monotonic() - self._t0)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def number(index: int) -> str:
    return f"+1212{2000000 + index:07d}"


async def _bare(
    lab_url: str, n: int, concurrency: int, lab_received: Sequence[PhoneText], label: str = "bare"
) -> dict[str, object]:
    """Post ``n`` texts straight to Kannel; time until every "delivered" report came back."""
    delivered: set[str] = set()
    done = asyncio.Event()

    async def dlr(request: web.Request) -> web.Response:
        if request.query.get("type") == "1":
            delivered.add(request.query["id"])
            if len(delivered) >= n:
                done.set()
        return web.Response(text="")

    app = web.Application()
    app.router.add_get("/dlr", dlr)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    gate = asyncio.Semaphore(concurrency)
    before = len(lab_received)
    try:
        async with aiohttp.ClientSession() as session:

            async def send(i: int) -> None:
                params = {
                    "username": USERNAME,
                    "password": PASSWORD,
                    "from": SENDER,
                    "to": number(i),
                    "text": f"{label} {i}",
                    "charset": "UTF-8",
                    "dlr-mask": str(DLR_MASK),
                    "dlr-url": f"http://127.0.0.1:{port}/dlr?id={label}{i}&type=%d",
                }
                async with gate, session.get(lab_url, params=params) as response:
                    await response.read()
                    if response.status not in (200, 202):
                        raise RuntimeError(f"Kannel refused a bare send: {response.status}")

            started, cpu = time.perf_counter(), time.process_time()
            await asyncio.gather(*(send(i) for i in range(n)))
            async with asyncio.timeout(120):
                await done.wait()
            elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        await runner.cleanup()
    return {
        "n": n,
        "seconds": round(elapsed, 3),
        "cpu_s": round(cpu, 3),
        "per_s": round(n / elapsed, 1),
        "phone_got": len(lab_received) - before,
    }


class Deliveries:
    """The ids our webhook engine reported delivered (its status events), so waiting costs no query."""

    def __init__(self) -> None:
        self.ids: set[str] = set()
        self.changed = asyncio.Event()

    async def publish(self, event: DomainEvent) -> None:
        if isinstance(event, SmsStatusChanged) and event.status == MessageStatus.DELIVERED.value:
            self.ids.add(event.message_id)
            self.changed.set()

    async def wait_for(self, ids: set[str], count: int) -> int:
        while len(ids & self.ids) < count:
            self.changed.clear()
            await self.changed.wait()
        return len(ids & self.ids)


async def _outbox(
    store: SqlSmsStore,
    make_engine: Callable[[], SmsEngine],
    deliveries: Deliveries,
    label: str,
    n: int,
    *,
    restart: bool,
    lab_received: Sequence[PhoneText],
) -> dict[str, object]:
    """Queue ``n`` texts and run the sender until every one is delivered (optionally killed halfway)."""
    clock = DaytimeClock()
    engine: SmsEngine = make_engine()
    runner = asyncio.create_task(engine.run())
    started, cpu = time.perf_counter(), time.process_time()
    gate = asyncio.Semaphore(20)

    async def queue(i: int) -> None:
        now = clock.now()
        draft = OutboundDraft(
            key=f"{label}:{i}",
            number=number(i),
            kind=MessageKind.MANUAL,
            program=INFORMATIONAL,
            text=f"{label} {i}",
            due_at=now,
            created_at=now,
        )
        async with gate:
            message, _ = await store.enqueue(draft)
        ids.add(message.id)
        engine.wake()

    ids: set[str] = set()
    await asyncio.gather(*(queue(i) for i in range(n)))
    restarted = False
    async with asyncio.timeout(180):
        if restart:
            done = await deliveries.wait_for(ids, n // 2)
            # The sender dies mid-flight: claims and requests in the air are abandoned.
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
            engine = make_engine()
            runner = asyncio.create_task(engine.run())
            restarted = True
            log(f"  {label}: sender killed and restarted at {done} delivered")
        await deliveries.wait_for(ids, n)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    stored = await _delivered(store, label)
    if stored != n:
        raise RuntimeError(f"{label}: {stored} of {n} texts are delivered in the store")
    # Give late duplicates a moment to show up at the phone before counting.
    await asyncio.sleep(1.0)
    runner.cancel()
    await asyncio.gather(runner, return_exceptions=True)
    counts = collections.Counter(t.text for t in lab_received if t.text.startswith(f"{label} "))
    return {
        "n": n,
        "seconds": round(elapsed, 3),
        "cpu_s": round(cpu, 3),
        "per_s": round(n / elapsed, 1),
        "duplicates": sum(c - 1 for c in counts.values() if c > 1),
        "losses": n - len(counts),
        "restarted": restarted,
    }


async def _delivered(store: SqlSmsStore, label: str) -> int:
    async with store._engine.connect() as connection:  # noqa: SLF001 - a benchmark's direct count
        query = select(func.count()).where(
            SmsMessageRow.key.like(f"{label}:%"), SmsMessageRow.status == MessageStatus.DELIVERED.value
        )
        return int((await connection.execute(query)).scalar_one())


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def _opt_out(engine: SmsEngine, api_base: str, lab, m: int, k: int) -> dict[str, object]:  # type: ignore[no-untyped-def]
    latencies: list[float] = []
    async with aiohttp.ClientSession() as session:
        for i in range(m):
            who = f"+1646{3000000 + i:07d}"
            params = {"secret": SECRET, "from": who, "to": SENDER, "text": "STOP", "id": f"stop-{i}"}
            started = time.perf_counter()
            async with session.get(f"{api_base}/api/v1/sms/kannel/inbound", params=params) as response:
                await response.read()
                assert response.status == 200, response.status
            latencies.append((time.perf_counter() - started) * 1000)
            try:
                await engine.send_manual(who, "are you blocked?", actor="bench")
                raise AssertionError(f"{who} was not blocked after its STOP was answered")
            except ConflictError:
                pass
    through: list[float] = []
    for i in range(k):
        who = f"+1718{4000000 + i:07d}"
        started = time.perf_counter()
        await lab.inject(who, SENDER, "STOP")
        while True:
            try:
                await engine.send_manual(
                    who, "are you blocked?", actor="bench", key=f"probe-{i}-{time.monotonic_ns()}"
                )
            except ConflictError:
                break
            await asyncio.sleep(0.002)
        through.append((time.perf_counter() - started) * 1000)
    return {
        "webhook_n": m,
        "webhook_p50_ms": round(statistics.median(latencies), 2),
        "webhook_p99_ms": round(_percentile(latencies, 0.99), 2),
        "webhook_max_ms": round(max(latencies), 2),
        "through_kannel_n": k,
        "through_kannel_p50_ms": round(statistics.median(through), 1),
        "through_kannel_p99_ms": round(_percentile(through, 0.99), 1),
    }


async def _run(n: int, concurrency: int, stops: int, kannel_stops: int) -> dict[str, object]:
    missing = missing_binaries()
    if missing:
        raise SystemExit(
            f"Kannel is not installed ({', '.join(missing)}): apt-get install kannel kannel-extras"
        )
    async with scratch_schema("sms") as settings:
        return await _run_in(settings, n, concurrency, stops, kannel_stops)


async def _run_in(
    settings: DatabaseSettings, n: int, concurrency: int, stops: int, kannel_stops: int
) -> dict[str, object]:
    api_port = free_port()
    api_base = f"http://127.0.0.1:{api_port}"
    get_url = f"{api_base}/api/v1/sms/kannel/inbound?secret={SECRET}&from=%p&to=%P&text=%a&id=%I"
    report: dict[str, object] = {"n": n, "concurrency": concurrency}
    sql = create_engine(settings)
    with tempfile.TemporaryDirectory(prefix="bench-sms-") as scratch:
        async with (
            kannel_lab(Path(scratch) / "kannel", get_url) as lab,
            aiohttp.ClientSession() as session,
        ):
            store = SqlSmsStore(sql)
            provider = KannelProvider(
                session,
                KannelSettings(
                    sendsms_url=lab.sendsms_url,
                    username=USERNAME,
                    password=PASSWORD,
                    sender=SENDER,
                    callback_base=f"{api_base}/api/v1/sms/kannel",
                    secret=SECRET,
                ),
            )
            templates = parse_templates(
                resources.files("callcenter.sms").joinpath("templates.toml").read_text(encoding="utf-8")
            )
            engine_settings = EngineSettings(
                rules=SmsRules(daily_cap=1_000_000),
                templates=templates,
                consent_secret=b"bench",
                lease_s=15.0,
                batch=100,
                send_concurrency=concurrency,
                poll_s=0.05,
            )
            clock = DaytimeClock()

            def make_engine() -> SmsEngine:
                return SmsEngine(store, provider, SqlCallRepository(sql), None, clock, engine_settings)

            webhook_engine = make_engine()
            deliveries = Deliveries()
            webhook_engine.publish = deliveries.publish
            app = build_api(
                auth=AuthService(SqlTokenRepository(sql), SqlAuditLog(sql), clock),
                health_checks={"db": _ok, "redis": _ok, "ari": None},
                registry=CollectorRegistry(),
                settings=HttpSettings(),
            )
            app[SMS_HTTP] = SmsHttp(
                engine=webhook_engine,
                webhooks=WebhookSettings(kannel_secret=SECRET, rate_per_s=1e6, burst=1_000_000),
            )
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", api_port).start()
            try:
                log(f"bare: {n} texts straight to Kannel, {concurrency} at a time")
                # Both paths warm up first (connections, compiled statements), then run back to back.
                warm = min(50, n)
                await _bare(lab.sendsms_url, warm, concurrency, lab.received, label="warm-bare")
                await _outbox(
                    store, make_engine, deliveries, "warm", warm, restart=False, lab_received=lab.received
                )
                report["bare"] = await _bare(lab.sendsms_url, n, concurrency, lab.received)
                log(f"  {report['bare']}")
                log(f"outbox: {n} texts through our outbox")
                report["outbox"] = await _outbox(
                    store, make_engine, deliveries, "outbox", n, restart=False, lab_received=lab.received
                )
                log(f"  {report['outbox']}")
                # The bare rate drifts with the machine by more than the margins measured here: each
                # outbox phase is compared with the bare runs just before and just after it.
                report["bare_between"] = await _bare(lab.sendsms_url, n, concurrency, lab.received, "bare2-")
                log(f"  {report['bare_between']}")
                log(f"restart: {n} texts, sender killed halfway")
                report["restart"] = await _outbox(
                    store, make_engine, deliveries, "restart", n, restart=True, lab_received=lab.received
                )
                log(f"  {report['restart']}")
                report["bare_after"] = await _bare(lab.sendsms_url, n, concurrency, lab.received, "bare3-")
                log(f"  {report['bare_after']}")

                def rate(phase: str) -> float:
                    return float(report[phase]["per_s"])  # type: ignore[index]

                report["ratio"] = round(
                    rate("outbox") / statistics.mean((rate("bare"), rate("bare_between"))), 3
                )
                report["restart_ratio"] = round(
                    rate("restart") / statistics.mean((rate("bare_between"), rate("bare_after"))), 3
                )
                log(f"opt-out: {stops} STOPs at the webhook, {kannel_stops} through Kannel")
                sender = make_engine()
                sending = asyncio.create_task(sender.run())  # confirmations go out meanwhile
                try:
                    report["opt_out"] = await _opt_out(webhook_engine, api_base, lab, stops, kannel_stops)
                finally:
                    sending.cancel()
                    await asyncio.gather(sending, return_exceptions=True)
                log(f"  {report['opt_out']}")
            finally:
                await runner.cleanup()
    await sql.dispose()
    return report


async def _ok() -> None:
    """Health probes are not benchmarked."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="callcenter bench sms", description=__doc__)
    parser.add_argument("--n", type=int, default=400, help="texts per run (bare, outbox, restart)")
    parser.add_argument("--concurrency", type=int, default=10, help="requests in flight to Kannel")
    parser.add_argument("--stops", type=int, default=300, help="STOPs posted to the webhook")
    parser.add_argument("--kannel-stops", type=int, default=10, help="STOPs sent through Kannel")
    parser.add_argument("--json", action="store_true", help="accepted for symmetry: the output is JSON")
    args = parser.parse_args(argv)
    result = asyncio.run(
        _run(max(args.n, 10), max(args.concurrency, 1), max(args.stops, 1), max(args.kannel_stops, 1))
    )
    print(json.dumps(result))
    return 0
