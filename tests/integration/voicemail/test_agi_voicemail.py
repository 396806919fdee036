"""The ``voicemail`` FastAGI script against the scripted Asterisk peer: ``RECORD FILE`` into the spool."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from callcenter.asterisk_names import AGI_VOICEMAIL
from callcenter.config import DatabaseSettings
from callcenter.model.events import VoicemailRecorded
from callcenter.simulator.agi_peer import AgiCallModel, AgiPeer
from callcenter.simulator.pbx import wav_bytes
from callcenter.store.database import create_engine, migrate
from callcenter.store.media_files import MediaFolder
from callcenter.store.sql_voicemails import SqlVoicemailRepository
from callcenter.voicemail.agi_script import VoicemailScript
from callcenter.voicemail.ports import VoicemailFilter
from callcenter.voicemail.service import VoicemailService
from ivr.voicemail import VoicemailFlow
from tests import audio_corpus as corpus
from tests.conftest import FakeClock
from tests.fakes.bus import InMemoryEventBus
from tests.integration.agi.conftest import serve_peers

pytestmark = [pytest.mark.integration, pytest.mark.timeout(30)]


@pytest.fixture
async def service(
    tmp_path: Path, clock: FakeClock
) -> AsyncIterator[tuple[VoicemailService, InMemoryEventBus]]:
    settings = DatabaseSettings(url=f"sqlite+aiosqlite:///{tmp_path / 'db' / 'cc.db'}")
    await migrate(settings)
    engine = create_engine(settings)
    bus = InMemoryEventBus()
    yield (
        VoicemailService(SqlVoicemailRepository(engine), bus, MediaFolder(tmp_path / "media"), None, clock),
        bus,
    )
    await engine.dispose()


def _peer(model: AgiCallModel) -> AgiPeer:
    return AgiPeer(
        AGI_VOICEMAIL,
        model=model,
        args=["sales"],
        env={"agi_uniqueid": "1795459760.41", "agi_callerid": "+14155550100"},
    )


async def test_a_message_recorded_by_asterisk_is_stored_and_queued(
    service: tuple[VoicemailService, InMemoryEventBus], tmp_path: Path
) -> None:
    voicemails, bus = service
    pcm = corpus.read_pcm(corpus.prompts()["vm-nobodyavail"].path).astype("<i2").tobytes()
    spool = tmp_path / "spool"
    peer = _peer(AgiCallModel(record_pcm=pcm))
    script = VoicemailScript(voicemails, spool, VoicemailFlow(max_s=60, max_silence_s=3))

    await serve_peers({AGI_VOICEMAIL: script}, peer)

    verbs = [" ".join(c[:2]).upper() for c in peer.commands]
    assert verbs[0] == "GET FULL"  # the call's linkedid and CC_QUEUE, in one read
    assert verbs[1] == "STREAM FILE" and peer.commands[1][2] == "vm-intro"
    # Set as the recording starts: the outcome hook then records the call as voicemail.
    assert verbs.index("SET VARIABLE") < verbs.index("RECORD FILE")
    assert peer.model.variables["CC_VOICEMAIL"] == "recorded"
    (record,) = [c for c in peer.commands if " ".join(c[:2]).upper() == "RECORD FILE"]
    assert record[2].startswith(str(spool / "callcenter-vm-")) and record[3] == "wav"
    assert record[4] == "#" and record[5] == "60000" and "BEEP" in record and "s=3" in record
    (voicemail,) = (await voicemails.list(VoicemailFilter(), cursor=None, limit=5)).items
    assert (voicemail.call_id, voicemail.queue, voicemail.caller) == (
        "1795459760.41",
        "sales",
        "+14155550100",
    )
    assert (tmp_path / "media" / voicemail.media_path).read_bytes() == wav_bytes(pcm)  # type: ignore[operator]
    assert voicemail.duration_s == pytest.approx(len(pcm) / 16000, abs=0.01)
    assert not list(spool.iterdir()), "the spool copy is deleted"
    assert peer.lines[-3:] == [
        'STREAM FILE "vm-msgsaved" "0123456789*#"',
        'STREAM FILE "vm-goodbye" "0123456789*#"',
        "HANGUP",
    ]
    assert [e.voicemail_id for e in bus.of_type(VoicemailRecorded)] == [voicemail.id]  # type: ignore[attr-defined]


async def test_a_caller_hanging_up_during_the_greeting_leaves_nothing(
    service: tuple[VoicemailService, InMemoryEventBus], tmp_path: Path
) -> None:
    voicemails, bus = service
    peer = _peer(AgiCallModel(hangup_on="STREAM FILE", record_pcm=b"\x00\x00" * 800))
    await serve_peers({AGI_VOICEMAIL: VoicemailScript(voicemails, tmp_path / "spool", VoicemailFlow())}, peer)
    assert not any(" ".join(c[:2]).upper() == "RECORD FILE" for c in peer.commands)
    assert (await voicemails.list(VoicemailFilter(), cursor=None, limit=5)).items == ()
    assert bus.published == []
    assert "CC_VOICEMAIL" not in peer.model.variables, "no message: the outcome stays the queue's"


async def test_the_voicemail_is_keyed_by_the_linkedid_and_takes_the_queue_from_the_dialplan(
    service: tuple[VoicemailService, InMemoryEventBus], tmp_path: Path
) -> None:
    """Keyed as the call-outcome hook keys the call, so the voicemail and the call's outcome meet."""
    voicemails, _ = service
    model = AgiCallModel(
        record_pcm=b"\x00\x00" * 8000,
        variables={"CHANNEL(linkedid)": "1795459760.40", "CC_QUEUE": "support", "UNIQUEID": "1795459760.41"},
    )
    peer = AgiPeer(AGI_VOICEMAIL, model=model, env={"agi_callerid": "+14155550100"})
    await serve_peers({AGI_VOICEMAIL: VoicemailScript(voicemails, tmp_path / "spool", VoicemailFlow())}, peer)
    (voicemail,) = (await voicemails.list(VoicemailFilter(), cursor=None, limit=5)).items
    assert (voicemail.call_id, voicemail.queue) == ("1795459760.40", "support")


async def test_when_asterisk_cannot_write_the_recording_no_voicemail_is_reported(
    service: tuple[VoicemailService, InMemoryEventBus], tmp_path: Path
) -> None:
    voicemails, bus = service
    peer = _peer(AgiCallModel(record_end="writefile"))
    script = VoicemailScript(voicemails, tmp_path / "spool", VoicemailFlow())

    await serve_peers({AGI_VOICEMAIL: script}, peer)

    assert any(" ".join(c[:2]).upper() == "RECORD FILE" for c in peer.commands)
    # Set as the recording started, then cleared: the outcome hook reports the queue's outcome.
    assert peer.model.variables["CC_VOICEMAIL"] == ""
    after_record = peer.lines[[" ".join(c[:2]).upper() for c in peer.commands].index("RECORD FILE") + 1 :]
    assert after_record[:4] == [
        'SET VARIABLE "CC_VOICEMAIL" ""',
        'STREAM FILE "im-sorry" "0123456789*#"',
        'STREAM FILE "please-try-call-later" "0123456789*#"',
        "HANGUP",
    ]
    assert (await voicemails.list(VoicemailFilter(), cursor=None, limit=5)).items == ()
    assert bus.published == []
