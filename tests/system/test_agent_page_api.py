"""The agent page's routes and the worklist's read models in the whole app (voicemail transcript and
SMS thread from their real stores): signing in, whose list a page may show, the live feed, and the
API's clear errors (system)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from datetime import timedelta
from typing import Any

import pytest
from aiohttp import ClientResponse

from callcenter.model.vocabulary import Role, VoicemailStatus
from callcenter.sms.records import Direction, MessageStatus, SmsMessage
from callcenter.store.sql_sms import SqlSmsStore
from callcenter.store.sql_voicemails import SqlVoicemailRepository
from callcenter.voicemail.records import Voicemail, VoicemailTranscript
from tests.system.conftest import QUEUE, RunningApp

pytestmark = [pytest.mark.system, pytest.mark.timeout(60)]

NUMBER = "+14155550177"


async def _token(running: RunningApp, role: Role, agent: str | None = None) -> str:
    _, secret = await running.services.auth.create_token(
        role=role, agent_id=agent, label=agent or role.value, expires_at=None, actor="test"
    )
    return secret


async def _sign_in(running: RunningApp, token: str) -> None:
    running.http.session.cookie_jar.clear()
    response = await running.http.post("/session", json={"token": token})
    assert response.status == 200, await response.text()


async def _next_message(response: ClientResponse) -> dict[str, Any]:
    """The next ``data:`` message of a server-sent event stream."""
    while True:
        line = await response.content.readline()
        assert line, "the feed ended"
        if line.startswith(b"data: "):
            message: dict[str, Any] = json.loads(line[len(b"data: ") :])
            return message


async def _voicemail_and_texts(running: RunningApp) -> str:
    """A transcribed voicemail, a text from the caller and our reply, stored as their services do."""
    engine = running.services.store.engine
    now = running.services.clock.now()
    voicemails = SqlVoicemailRepository(engine)
    recorded = await voicemails.add(
        Voicemail(
            id="vm-agent-page",
            call_id=None,
            queue=QUEUE,
            caller=NUMBER,
            recorded_at=now - timedelta(minutes=3),
            media_path="vm-agent-page.wav",
            checksum="0" * 64,
            size_bytes=1000,
            duration_s=14.2,
            status=VoicemailStatus.RECORDED,
            updated_at=now,
        )
    )
    await voicemails.save_result(
        dataclasses.replace(recorded, status=VoicemailStatus.TRANSCRIBED, silent=False, updated_at=now),
        VoicemailTranscript(
            voicemail_id=recorded.id,
            text="my boiler is leaking, please call me back",
            language="en",
            confidence=0.9,
            segments=(),
            model="tiny.en",
            revision=1,
            transcribed_at=now,
        ),
    )
    sms = SqlSmsStore(engine)
    await sms.record_inbound(
        SmsMessage(
            id="sms-in-1",
            key=None,
            direction=Direction.INBOUND,
            number=NUMBER,
            kind=None,
            program="",
            text="Is anyone there?",
            status=MessageStatus.RECEIVED,
            created_at=now - timedelta(minutes=2),
            provider="console",
            provider_id="p-1",
        )
    )
    return recorded.id


async def test_an_item_carries_the_voicemail_transcript_and_the_sms_thread(system: RunningApp) -> None:
    voicemail_id = await _voicemail_and_texts(system)
    dispatch = system.services.dispatch
    assert dispatch is not None
    callback = (
        await dispatch.sources.from_voicemail(
            QUEUE, NUMBER, voicemail_id=voicemail_id, left_at=system.services.clock.now()
        )
    ).callback
    await system.add_agent("alice")
    token = await _token(system, Role.AGENT, "alice")
    response = await system.http.get("/api/v1/worklist", headers={"Authorization": f"Bearer {token}"})
    assert response.status == 200, await response.text()
    [item] = (await response.json())["items"]
    assert item["callback"]["id"] == callback.id
    assert item["reason_kind"] == "voicemail"
    assert item["timing"]["status"] in ("early", "on_time")
    [voicemail] = item["voicemails"]
    assert voicemail["transcript"] == "my boiler is leaking, please call me back"
    assert (voicemail["duration_s"], voicemail["status"]) == (14.2, "transcribed")
    assert [(t["direction"], t["text"]) for t in item["texts"]] == [("in", "Is anyone there?")]


async def test_the_page_signs_in_and_shows_only_whom_the_token_may_see(system: RunningApp) -> None:
    await system.add_agent("alice")
    await system.add_agent("bob")
    page = await system.http.get("/agent", allow_redirects=False)
    assert (page.status, page.headers["Location"]) == (303, "/signin?next=/agent")

    # Signing in on the sign-in page itself: an agent's token opens the agent's page, not the wallboard.
    alice = await _token(system, Role.AGENT, "alice")
    form = await system.http.post(
        "/session", data={"token": alice, "next": "/wallboard"}, allow_redirects=False
    )
    assert (form.status, form.headers["Location"]) == (303, "/agent")
    await _sign_in(system, alice)
    page = await system.http.get("/agent")
    assert page.status == 200 and "default-src 'none'" in page.headers["Content-Security-Policy"]
    assert '<script src="/agent/assets/agent.js"' in await page.text()
    asset = await system.http.get("/agent/assets/agent.js")
    assert asset.status == 200 and "AudioContext" in await asset.text()
    assert (await system.http.get("/agent/assets/../session.py")).status == 404
    me = await (await system.http.get("/agent/me")).json()
    assert (me["role"], me["agent"], me["queues"]) == ("agent", "alice", [QUEUE])
    other = await system.http.get("/agent/me?agent=bob")
    assert other.status == 403 and (await other.json())["message"] == "an agent sees only their own worklist"
    assert (await system.http.get("/agent/feed?agent=bob")).status == 403

    await _sign_in(system, await _token(system, Role.SUPERVISOR))
    me = await (await system.http.get("/agent/me")).json()
    assert (me["role"], me["agent"]) == ("supervisor", None), "a supervisor picks the agent"
    assert (await (await system.http.get("/agent/me?agent=bob")).json())["agent"] == "bob"
    missing = await system.http.get("/agent/me?agent=ghost")
    assert missing.status == 404
    assert (await system.http.get("/agent/feed")).status == 400


async def test_the_feed_sends_the_list_then_each_change(system: RunningApp) -> None:
    for agent in ("alice", "bob"):
        await system.add_agent(agent)
        # Working the list, not taking calls: the dispatcher dials nothing by itself here.
        await system.services.queue.pause(agent, actor="test", reason="working the list")
    dispatch = system.services.dispatch
    assert dispatch is not None
    await _sign_in(system, await _token(system, Role.AGENT, "alice"))
    feed = await system.http.get("/agent/feed")
    assert feed.status == 200 and feed.headers["Content-Type"] == "text/event-stream"
    first = await _next_message(feed)
    assert (first["agent"], first["items"]) == ("alice", [])

    callback = (
        await dispatch.sources.from_voicemail(
            QUEUE, NUMBER, voicemail_id="vm-x", left_at=system.services.clock.now()
        )
    ).callback
    arrived = await _next_message(feed)
    assert [i["callback"]["id"] for i in arrived["items"]] == [callback.id]

    # Bob claims it (in his own session: the claim is announced on the bus, alice's feed follows).
    bob = await _token(system, Role.AGENT, "bob")
    claimed = await system.http.post(
        f"/api/v1/callbacks/{callback.id}/claim", headers={"Authorization": f"Bearer {bob}"}
    )
    assert claimed.status == 200, await claimed.text()
    seen = await _next_message(feed)
    assert seen["items"][0]["claim"]["agent_id"] == "bob"

    # Alice's page acts with its cookie: a write needs the page's header, and a held claim is refused.
    path = f"/api/v1/callbacks/{callback.id}/claim"
    assert (await system.http.post(path)).status == 403
    refused = await system.http.post(path, headers={"X-Requested-With": "callcenter"})
    body = await refused.json()
    assert refused.status == 409 and body["message"].startswith(
        f"callback {callback.id} is claimed by agent bob"
    )
    not_due = await system.http.post(
        f"/api/v1/callbacks/{callback.id}/start", headers={"X-Requested-With": "callcenter"}
    )
    assert not_due.status == 409, await not_due.text()
    wrong_state = await system.http.post(
        f"/api/v1/callbacks/{callback.id}/disposition",
        json={"outcome": "resolved"},
        headers={"X-Requested-With": "callcenter"},
    )
    assert wrong_state.status == 409
    assert "only a connected call takes a disposition" in (await wrong_state.json())["message"]
    claim = await dispatch.store.claim_of(callback.id, now=system.services.clock.now())
    assert claim is not None and claim.agent_id == "bob", "the refused requests changed nothing"

    # A follow-up of alice's in two seconds: listed at once, not due; then due, with no event saying so.
    later = (
        await dispatch.sources.follow_up(
            "alice", QUEUE, "+14155550178", at=system.services.clock.now() + timedelta(seconds=2)
        )
    ).callback
    listed = await _next_message(feed)
    assert {i["callback"]["id"]: i["due"] for i in listed["items"]}[later.id] is False
    async with asyncio.timeout(10):
        while not {i["callback"]["id"]: i["due"] for i in (await _next_message(feed))["items"]}[later.id]:
            pass  # other changes of the list may come first
    feed.close()
