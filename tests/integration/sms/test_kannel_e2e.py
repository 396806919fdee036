"""End to end through a real Kannel with its fake SMSC: missed call -> text at the phone -> STOP from the
phone -> ledger updated -> the next missed call sends nothing. The whole app runs (``build_app``: bus,
consumer group, outbox, webhooks on a real port); skipped only where Kannel is not installed."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp import web

from callcenter.app import SERVICES, build_app
from callcenter.config import Settings
from callcenter.model.events import CallEnded
from callcenter.model.vocabulary import CallOutcome, EntryPoint
from callcenter.sms.consent import ConsentStatus, verify_chain
from callcenter.sms.records import MessageStatus
from callcenter.sms_gateways.kannel_lab import PASSWORD, USERNAME, free_port, kannel_lab, missing_binaries
from tests.conftest import FakeClock
from tests.waiting import eventually

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(90),
    pytest.mark.skipif(
        bool(missing_binaries()),
        reason=f"Kannel is not installed ({', '.join(missing_binaries())}): apt-get install kannel kannel-extras",
    ),
]

CALLER = "+12125550123"
OTHER = "+13125550188"
SHORT_CODE = "5550"
SECRET = "e2e-callback-secret"


def missed(call_id: str, caller: str, at: datetime) -> CallEnded:
    return CallEnded(
        event_id=call_id,
        occurred_at=at,
        call_id=call_id,
        outcome=CallOutcome.ABANDONED,
        entry_point=EntryPoint.ARI,
        queue=None,
        caller=caller,
    )


async def test_missed_call_text_stop_from_the_phone_and_silence_after(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    get_url = f"{base}/api/v1/sms/kannel/inbound?secret={SECRET}&from=%p&to=%P&text=%a&id=%I"
    async with kannel_lab(tmp_path / "kannel", get_url) as lab:
        settings = make_settings(
            http_port=str(port),
            sms_provider="kannel",
            sms_kannel_sendsms_url=lab.sendsms_url,
            sms_kannel_username=USERNAME,
            sms_kannel_password=PASSWORD,
            sms_kannel_sender=SHORT_CODE,
            sms_kannel_secret=SECRET,
            sms_callback_base=base,
            bus_block_ms="100",
        )
        clock = FakeClock(datetime(2026, 11, 23, 16, 0, tzinfo=UTC))  # 11:00 in New York and Chicago
        app = await build_app(settings, clock=clock)
        runner = web.AppRunner(app)
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", port).start()
            services = app[SERVICES]
            engine = services.sms
            assert engine is not None

            # A missed call: the follow-up reaches the phone through Kannel, and its DLR comes back.
            await services.bus.publish(missed("call-1", CALLER, clock.now()))
            (text,) = await lab.wait_for(1)
            assert (text.to, text.sender) == (CALLER, SHORT_CODE)
            assert text.text.startswith("Hi, sorry we missed your call to Example Co.")

            async def delivered() -> bool:
                page = await engine.messages(number=CALLER, needs_person=None, cursor=None, limit=10)
                return [m.status for m in page.items] == [MessageStatus.DELIVERED]

            await eventually(delivered, timeout_s=10, what="the delivery report")

            # STOP from the phone, through the fake SMSC and Kannel's get-url.
            await lab.inject(CALLER, SHORT_CODE, "STOP")

            async def opted_out() -> bool:
                return (await engine.consent(CALLER)).status is ConsentStatus.OPTED_OUT

            await eventually(opted_out, timeout_s=10, what="the opt-out in the ledger")
            view = await engine.consent(CALLER)
            assert verify_chain(view.history) is None
            assert view.history[-1].source.value == "sms_keyword"
            confirmation = (await lab.wait_for(2))[1]
            assert confirmation.to == CALLER and "opted out" in confirmation.text

            # Two days on (past the resend window), the caller misses us again: nothing is sent. A
            # missed call from someone else after it proves the consumer got that far.
            clock.advance(2 * 86400)
            await services.bus.publish(missed("call-2", CALLER, clock.now()))
            await services.bus.publish(missed("call-3", OTHER, clock.now()))
            await lab.wait_for(3)
            assert lab.received[2].to == OTHER
            assert [t.text for t in lab.to(CALLER)] == [text.text, confirmation.text]
        finally:
            await runner.cleanup()
