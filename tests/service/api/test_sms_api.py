"""The SMS, consent, contact and erasure routes and the provider webhooks, over the engine on SQLite."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client import CollectorRegistry
from pytest_aiohttp import AiohttpClient
from sqlalchemy import func, select

from callcenter.api.app import build_api
from callcenter.api.sms import SMS_HTTP, SmsHttp, WebhookSettings
from callcenter.auth.service import AuthService
from callcenter.config import DatabaseSettings, HttpSettings
from callcenter.model.vocabulary import Role
from callcenter.sms.service import EngineSettings, SmsEngine
from callcenter.sms_gateways.console import ConsoleProvider
from callcenter.sms_gateways.twilio import signature
from callcenter.store.database import create_engine, migrate
from callcenter.store.sql_repos import SqlCallRepository, SqlQueueRepository
from callcenter.store.sql_sms import SqlSmsStore
from callcenter.store.sql_sms_models import SmsConsentRow, SmsMessageRow
from tests.conftest import FakeClock
from tests.fakes.store import InMemoryAuditLog, InMemoryTokenRepository
from tests.service.api.conftest import assert_error, assert_schema, healthy
from tests.service.sms.conftest import START, TEMPLATES

NUMBER = "+12125550123"
KANNEL_SECRET = "kannel-s3cret"
TWILIO_TOKEN = "twilio-token"


@dataclass
class SmsApi:
    client: TestClient[web.Request, web.Application]
    engine: SmsEngine
    store: SqlSmsStore
    secrets: dict[Role, str] = field(default_factory=dict)

    def as_role(self, role: Role) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secrets[role]}"}

    async def rows(self, table: Any) -> int:
        async with self.store._engine.connect() as connection:  # noqa: SLF001 - counting rows in a test
            return int((await connection.execute(select(func.count()).select_from(table))).scalar_one())


async def _make(
    aiohttp_client: AiohttpClient, tmp_path: Path, webhooks: WebhookSettings
) -> AsyncIterator[SmsApi]:
    database = DatabaseSettings(url=f"sqlite+aiosqlite:///{tmp_path / 'api.db'}")
    await migrate(database)
    sql = create_engine(database)
    clock = FakeClock(START)
    store = SqlSmsStore(sql)
    engine = SmsEngine(
        store,
        ConsoleProvider(),
        SqlCallRepository(sql),
        SqlQueueRepository(sql),
        clock,
        EngineSettings(templates=TEMPLATES, consent_secret=b"k"),
    )
    auth = AuthService(InMemoryTokenRepository(), InMemoryAuditLog(), clock)
    app = build_api(
        auth=auth,
        health_checks={"db": healthy, "redis": healthy, "ari": None},
        registry=CollectorRegistry(),
        settings=HttpSettings(max_body_bytes=64 * 1024),
    )
    app[SMS_HTTP] = SmsHttp(engine=engine, webhooks=webhooks)
    api = SmsApi(await aiohttp_client(app), engine, store)
    for role in Role:
        _, api.secrets[role] = await auth.create_token(
            role=role, agent_id="a1" if role is Role.AGENT else None, label="", expires_at=None, actor="test"
        )
    try:
        yield api
    finally:
        await sql.dispose()


@pytest.fixture
async def api(aiohttp_client: AiohttpClient, tmp_path: Path) -> AsyncIterator[SmsApi]:
    async for made in _make(
        aiohttp_client, tmp_path, WebhookSettings(kannel_secret=KANNEL_SECRET, twilio_auth_token=TWILIO_TOKEN)
    ):
        yield made


async def test_console_inbound_stop_updates_consent_for_a_supervisor_only(api: SmsApi) -> None:
    body = {"from": "(212) 555-0123", "to": "+15550000", "text": "  Stop. "}
    refused = await api.client.post("/api/v1/sms/inbound/console", json=body, headers=api.as_role(Role.AGENT))
    await assert_error(refused, 403, "forbidden")
    response = await api.client.post(
        "/api/v1/sms/inbound/console", json=body, headers=api.as_role(Role.SUPERVISOR)
    )
    assert response.status == 200, await response.text()
    result = await response.json()
    assert_schema("SmsInboundResult", result)
    assert result["intent"] == "opt_out" and result["replies"][0]["kind"] == "compliance"
    consent = await api.client.get(
        f"/api/v1/consent/{NUMBER.replace('+', '%2B')}", headers=api.as_role(Role.AGENT)
    )
    body = await consent.json()
    assert_schema("Consent", body)
    assert (body["number"], body["status"], body["chain_ok"]) == (NUMBER, "opted_out", True)
    assert [h["action"] for h in body["history"]] == ["opt_out"]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("not json", "invalid_json"),
        ({"from": NUMBER}, "invalid_request"),
        ({"from": NUMBER, "text": 5}, "invalid_request"),
        ({"from": NUMBER, "text": "hi", "extra": 1}, "invalid_request"),
        ({"from": "anonymous", "text": "STOP"}, "invalid_request"),
        ({"from": NUMBER, "text": "x" * 5000}, "invalid_request"),
    ],
)
async def test_bad_console_input_is_a_clear_400_and_stores_nothing(api: SmsApi, body: Any, code: str) -> None:
    headers = api.as_role(Role.SUPERVISOR)
    if isinstance(body, str):
        response = await api.client.post("/api/v1/sms/inbound/console", data=body, headers=headers)
    else:
        response = await api.client.post("/api/v1/sms/inbound/console", json=body, headers=headers)
    await assert_error(response, 400, code)
    assert await api.rows(SmsMessageRow) == 0 and await api.rows(SmsConsentRow) == 0


async def test_an_oversized_body_is_refused_not_a_500(api: SmsApi) -> None:
    response = await api.client.post(
        "/api/v1/sms/inbound/console",
        data=b'{"from": "+12125550123", "text": "' + b"x" * 100_000 + b'"}',
        headers={**api.as_role(Role.SUPERVISOR), "Content-Type": "application/json"},
    )
    assert response.status == 413
    assert await api.rows(SmsMessageRow) == 0


async def test_manual_send_thread_and_list(api: SmsApi) -> None:
    headers = api.as_role(Role.AGENT)
    sent = await api.client.post(
        "/api/v1/sms/messages", json={"to": "212-555-0123", "text": "Ready 🙂"}, headers=headers
    )
    assert sent.status == 202, await sent.text()
    message = await sent.json()
    assert_schema("SmsMessage", message)
    assert (message["number"], message["encoding"], message["status"], message["actor"]) == (
        NUMBER, "ucs2", "queued", "agent:a1",
    )  # fmt: skip
    await api.engine.send_due()
    listed = await (
        await api.client.get("/api/v1/sms/messages?number=%2B12125550123", headers=headers)
    ).json()
    assert [m["status"] for m in listed["items"]] == ["sent"]
    thread = await (await api.client.get("/api/v1/sms/threads/%2B12125550123", headers=headers)).json()
    assert thread["items"][0]["text"] == "Ready 🙂"
    await assert_error(
        await api.client.get("/api/v1/sms/messages?number=abc", headers=headers), 400, "invalid_request"
    )
    await api.client.post(
        "/api/v1/sms/inbound/console",
        json={"from": NUMBER, "text": "STOP"},
        headers=api.as_role(Role.SUPERVISOR),
    )
    refused = await api.client.post(
        "/api/v1/sms/messages", json={"to": NUMBER, "text": "more"}, headers=headers
    )
    await assert_error(refused, 409, "conflict", "consent")


async def test_worklist_and_callback_requests(api: SmsApi) -> None:
    sup = api.as_role(Role.SUPERVISOR)
    for text in ("When do you open?", "1"):
        await api.client.post("/api/v1/sms/inbound/console", json={"from": NUMBER, "text": text}, headers=sup)
    work = await (await api.client.get("/api/v1/sms/messages?needs_person=true", headers=sup)).json()
    assert [m["text"] for m in work["items"]] == ["When do you open?"]
    done = await api.client.post(f"/api/v1/sms/messages/{work['items'][0]['id']}/handled", headers=sup)
    assert done.status == 200
    requests = await (await api.client.get("/api/v1/sms/callback-requests", headers=sup)).json()
    assert [r["number"] for r in requests["items"]] == [NUMBER]
    assert_schema("CallbackRequest", requests["items"][0])


def kannel_url(path: str, **params: str) -> str:
    return f"/api/v1/sms/kannel/{path}?{urlencode(params)}"


async def test_kannel_inbound_needs_the_secret_and_valid_fields(api: SmsApi) -> None:
    await assert_error(
        await api.client.get(kannel_url("inbound", secret="wrong", **{"from": NUMBER, "text": "STOP"})),
        403,
        "forbidden",
    )
    await assert_error(
        await api.client.get(kannel_url("inbound", **{"from": NUMBER, "text": "STOP"})), 403, "forbidden"
    )
    await assert_error(
        await api.client.get(kannel_url("inbound", secret=KANNEL_SECRET, text="STOP")), 400, "invalid_request"
    )
    assert await api.rows(SmsMessageRow) == 0
    ok = await api.client.get(
        kannel_url("inbound", secret=KANNEL_SECRET, id="k-1", **{"from": NUMBER, "text": "STOP"})
    )
    assert ok.status == 200 and await ok.text() == ""
    assert (await api.engine.consent(NUMBER)).status.value == "opted_out"


async def test_kannel_delivery_reports(api: SmsApi) -> None:
    message = await api.engine.send_manual(NUMBER, "hello", actor="t")
    await api.engine.send_due()
    sent = await api.store.get_message(message.id)
    missing = await api.client.get(kannel_url("dlr", secret=KANNEL_SECRET, id="nope", type="1"))
    await assert_error(missing, 400, "invalid_request")
    await assert_error(
        await api.client.get(kannel_url("dlr", secret=KANNEL_SECRET, id="x", type="abc")),
        400,
        "invalid_request",
    )
    # Console messages are not Kannel's: a DLR cannot name them.
    response = await api.client.get(kannel_url("dlr", secret=KANNEL_SECRET, id=sent.provider_id, type="1"))
    await assert_error(response, 400, "invalid_request")


async def test_kannel_callbacks_from_an_address_not_allowed_are_refused(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    webhooks = WebhookSettings(kannel_secret=KANNEL_SECRET, kannel_allowed=("10.0.0.0/8",))
    async for api in _make(aiohttp_client, tmp_path, webhooks):
        response = await api.client.get(
            kannel_url("inbound", secret=KANNEL_SECRET, **{"from": NUMBER, "text": "STOP"})
        )
        await assert_error(response, 403, "forbidden", "address")


async def test_webhooks_are_rate_limited(aiohttp_client: AiohttpClient, tmp_path: Path) -> None:
    webhooks = WebhookSettings(kannel_secret=KANNEL_SECRET, rate_per_s=0.001, burst=2)
    async for api in _make(aiohttp_client, tmp_path, webhooks):
        statuses = [
            (
                await api.client.get(
                    kannel_url("inbound", secret=KANNEL_SECRET, **{"from": NUMBER, "text": f"hi {i}"})
                )
            ).status
            for i in range(3)
        ]
        assert statuses == [200, 200, 429]


def twilio_post(api: SmsApi, path: str, form: dict[str, str], *, token: str = TWILIO_TOKEN) -> Any:
    url = str(api.client.make_url(path))
    return api.client.post(
        path, data=form, headers={"X-Twilio-Signature": signature(token, url, form.items())}
    )


async def test_twilio_inbound_checks_the_signature(api: SmsApi) -> None:
    form = {"From": NUMBER, "To": "+15550000", "Body": "please stop texting me", "MessageSid": "SM1"}
    await assert_error(
        await twilio_post(api, "/api/v1/sms/twilio/inbound", form, token="forged"), 403, "forbidden"
    )
    unsigned = await api.client.post("/api/v1/sms/twilio/inbound", data=form)
    await assert_error(unsigned, 403, "forbidden")
    assert await api.rows(SmsMessageRow) == 0
    ok = await twilio_post(api, "/api/v1/sms/twilio/inbound", form)
    assert ok.status == 200 and "<Response>" in await ok.text()
    assert (await api.engine.consent(NUMBER)).status.value == "opted_out"
    missing = await twilio_post(api, "/api/v1/sms/twilio/inbound", {"From": NUMBER, "MessageSid": "SM2"})
    await assert_error(missing, 400, "invalid_request")
    status = await twilio_post(
        api, "/api/v1/sms/twilio/status", {"MessageSid": "SMunknown", "MessageStatus": "delivered"}
    )
    await assert_error(status, 400, "invalid_request")


async def test_contacts_consent_records_export_and_erasure(api: SmsApi) -> None:
    agent, sup, admin = (api.as_role(r) for r in (Role.AGENT, Role.SUPERVISOR, Role.ADMIN))
    put = await api.client.put(
        "/api/v1/contacts/%2B12125550123", json={"name": "Ann", "time_zone": "America/Chicago"}, headers=agent
    )
    assert put.status == 200, await put.text()
    assert_schema("Contact", await put.json())
    bad = await api.client.put(
        "/api/v1/contacts/%2B12125550123", json={"time_zone": "Mars/Base"}, headers=agent
    )
    await assert_error(bad, 400, "invalid_request", "IANA")
    assert (await (await api.client.get("/api/v1/contacts/%2B12125550123", headers=agent)).json())[
        "name"
    ] == "Ann"
    recorded = await api.client.post(
        "/api/v1/consent/%2B12125550123",
        json={"action": "opt_in", "program": "marketing", "source": "agent"},
        headers=sup,
    )
    assert recorded.status == 201
    assert (await recorded.json())["programs"]["marketing"] == "opted_in"
    sneaky = await api.client.post(
        "/api/v1/consent/%2B12125550123", json={"action": "opt_in", "source": "sms_keyword"}, headers=sup
    )
    await assert_error(sneaky, 400, "invalid_request")
    csv_text = await (await api.client.get("/api/v1/sms/consent-ledger", headers=sup)).text()
    assert csv_text.splitlines()[0].startswith("id,number,number_key") and len(csv_text.splitlines()) == 2
    await assert_error(
        await api.client.post("/api/v1/erasures", json={"number": NUMBER}, headers=sup), 403, "forbidden"
    )
    erased = await api.client.post("/api/v1/erasures", json={"number": NUMBER}, headers=admin)
    body = await erased.json()
    assert_schema("Erasure", body)
    assert body["contacts"] == 1 and body["pseudonym"].startswith("erased:")
    await assert_error(
        await api.client.get("/api/v1/contacts/%2B12125550123", headers=agent), 404, "not_found"
    )
    assert (await (await api.client.get("/api/v1/consent/%2B12125550123", headers=agent)).json())[
        "status"
    ] == "opted_in"


async def test_a_supervisor_decides_on_a_text_whose_outcome_is_unknown(api: SmsApi) -> None:
    from callcenter.sms.outbox import Handed, Unknown

    sent = await api.client.post(
        "/api/v1/sms/messages", json={"to": NUMBER, "text": "did it go?"}, headers=api.as_role(Role.AGENT)
    )
    message_id = (await sent.json())["id"]
    path = f"/api/v1/sms/messages/{message_id}/resolve"
    supervisor = api.as_role(Role.SUPERVISOR)
    await assert_error(
        await api.client.post(path, json={"action": "resend"}, headers=supervisor),
        409,
        "conflict",
        "not unknown",
    )
    (claimed,) = await api.store.claim_due(START, lease_s=60, limit=5)
    await api.store.record_outcomes([Handed(claimed.id, "console", START, claimed.claimed_until)], START)
    await api.store.record_outcomes([Unknown(claimed.id, "no report")], START)
    await assert_error(
        await api.client.post(path, json={"action": "resend"}, headers=api.as_role(Role.AGENT)),
        403,
        "forbidden",
    )
    await assert_error(
        await api.client.post(path, json={"action": "again"}, headers=supervisor), 400, "invalid_request"
    )
    closed = await api.client.post(path, json={"action": "close"}, headers=supervisor)
    assert closed.status == 200, await closed.text()
    body = await closed.json()
    assert_schema("SmsMessage", body)
    assert (body["status"], body["needs_person"]) == ("failed", False) and "may or may not" in body["error"]
    await assert_error(
        await api.client.post(path, json={"action": "close"}, headers=supervisor), 409, "conflict"
    )
