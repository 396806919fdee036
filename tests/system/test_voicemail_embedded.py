"""Voicemail on the embedded default: ``serve``'s child process transcribes; the API shows the result.

The whole app (SQLite, private Redis, the real tiny.en model in a child process with one CPU thread):
a stored recording becomes a transcribed, triaged voicemail readable by an agent token, a noise-only
recording becomes ``silent``, and roles and errors follow the API conventions.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from callcenter.app import SERVICES, build_app
from callcenter.config import Settings
from callcenter.model.vocabulary import Role, VoicemailStatus
from media.text import normalise_words
from tests import audio_corpus as corpus
from tests.waiting import eventually

pytestmark = [pytest.mark.system, pytest.mark.timeout(180)]

Http = TestClient[Any, Any]


@pytest.fixture
async def client(make_settings: Callable[..., Settings]) -> AsyncIterator[Http]:
    app = await build_app(make_settings(bus_claim_idle_ms="2000", bus_block_ms="200"))
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def _token(client: Http, role: Role) -> dict[str, str]:
    services = client.app[SERVICES]
    agent_id = None
    if role is Role.AGENT:
        await services.queue.add_agent(
            agent_id="a1", name="Ann", endpoint="PJSIP/1001", queues=[], actor="test"
        )
        agent_id = "a1"
    _, secret = await services.auth.create_token(
        role=role, agent_id=agent_id, label=role.value, expires_at=None, actor="test"
    )
    return {"Authorization": f"Bearer {secret}"}


async def test_a_voicemail_is_transcribed_in_a_child_process_and_listed_for_agents(
    client: Http, tmp_path: Path
) -> None:
    services = client.app[SERVICES]
    assert services.voicemails is not None and services.speech is not None
    prompts = corpus.prompts()
    parts = [prompts["vm-nobodyavail"], prompts["check-number-dial-again"]]
    audio = corpus.telephone(tmp_path / "vm.gsm", corpus.join(parts, [1.0, 0.8, 1.2]))
    spoken = await services.voicemails.store_recording(
        audio, suffix=".gsm", call_id="1700000000.1", queue="sales", caller="+14155550100", duration_s=8.0
    )
    noise = corpus.telephone(tmp_path / "noise.ulaw.wav", corpus.noise(6.0, -23))
    silent = await services.voicemails.store_recording(
        noise, suffix=".wav", call_id="1700000000.2", queue="sales", caller="+14155550101", duration_s=6.0
    )

    async def both_done() -> bool:
        statuses = {(await services.voicemails.get(v.id)).status for v in (spoken, silent)}  # type: ignore[union-attr]
        return VoicemailStatus.RECORDED not in statuses

    await eventually(both_done, timeout_s=150, poll_s=0.2, what="both voicemails processed")

    agent = await _token(client, Role.AGENT)
    listing = await client.get("/api/v1/voicemails", headers=agent)
    assert listing.status == 200
    items = (await listing.json())["items"]
    assert [item["id"] for item in items] == [silent.id, spoken.id]  # newest first
    by_id = {item["id"]: item for item in items}
    assert by_id[spoken.id]["status"] == "transcribed" and by_id[spoken.id]["silent"] is False
    assert by_id[silent.id]["status"] == "silent" and by_id[silent.id]["silent"] is True
    assert by_id[silent.id]["preview"] == ""

    detail = await (await client.get(f"/api/v1/voicemails/{spoken.id}", headers=agent)).json()
    expected = normalise_words(" ".join(p.text for p in parts))
    assert normalise_words(detail["transcript"]["text"]) == expected
    assert detail["voicemail"]["has_audio"] is True and detail["voicemail"]["checksum"] == spoken.checksum
    transcript = await (await client.get(f"/api/v1/voicemails/{spoken.id}/transcript", headers=agent)).json()
    assert transcript["segments"] and transcript["language"] == "en"
    audio_response = await client.get(f"/api/v1/voicemails/{spoken.id}/audio", headers=agent)
    assert audio_response.status == 200 and await audio_response.read() == audio.read_bytes()

    missing = await client.get(f"/api/v1/voicemails/{silent.id}/transcript", headers=agent)
    assert missing.status == 404 and (await missing.json())["error"]
    filtered = await (await client.get("/api/v1/voicemails?status=silent", headers=agent)).json()
    assert [item["id"] for item in filtered["items"]] == [silent.id]
    assert (await client.get("/api/v1/voicemails?status=nope", headers=agent)).status == 400
    assert (await client.get("/api/v1/voicemails/vm-unknown", headers=agent)).status == 404
    assert (await client.get("/api/v1/voicemails")).status == 401
    assert (await client.post(f"/api/v1/voicemails/{spoken.id}/transcribe", headers=agent)).status == 403

    supervisor = await _token(client, Role.SUPERVISOR)
    again = await client.post(f"/api/v1/voicemails/{spoken.id}/transcribe", headers=supervisor)
    assert again.status == 202 and (await again.json())["revision"] == 2

    async def redone() -> bool:
        return (await services.voicemails.get(spoken.id)).status is VoicemailStatus.TRANSCRIBED  # type: ignore[union-attr]

    await eventually(redone, timeout_s=120, poll_s=0.2, what="re-transcription")
    again_detail = await (await client.get(f"/api/v1/voicemails/{spoken.id}", headers=agent)).json()
    assert again_detail["transcript"]["revision"] == 2
    assert normalise_words(again_detail["transcript"]["text"]) == expected
