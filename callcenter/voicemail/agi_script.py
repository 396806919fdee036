"""The ``voicemail`` FastAGI script: the voicemail flow on an AGI channel, ``RECORD FILE`` into a spool (edge).

For dialplans that keep ``app_queue``: ``AGI(agi://host:4573/voicemail,<queue>)`` (without the argument,
the queue is ``CC_QUEUE``, set by ``callcenter-appqueue``). As the recording starts the script sets
``CC_VOICEMAIL=recorded`` on the channel, so the call-outcome hook records the call as ``voicemail``
(and clears it again when Asterisk cannot record after all: no message, no ``voicemail``); the voicemail is keyed by the call's ``linkedid``, as the outcome is. Asterisk writes the
recording as ``<spool>/<name>.wav`` (``CALLCENTER_VOICEMAIL_SPOOL_DIR``, the same path on both sides:
a shared volume when they run on different hosts); the script reads it, stores it with the voicemail
service (which queues its transcription) and deletes the spool copy. The flow has hung up by then (or the
caller did). A file that never appears is stored empty, so the voicemail still exists with the reason.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from pathlib import Path
from typing import Final

from callcenter.agi.channel import AgiChannel
from callcenter.agi.server import AgiSession
from callcenter.asterisk_names import VAR_QUEUE, VAR_VOICEMAIL, VOICEMAIL_RECORDED
from callcenter.voicemail.service import VoicemailService
from ivr.voicemail import VoicemailFlow, take_message

logger = logging.getLogger(__name__)

WAIT_TRIES: Final = 10
WAIT_S: Final = 0.2


class VoicemailScript:
    """The FastAGI handler: ``await script(session)`` per call."""

    def __init__(self, voicemails: VoicemailService, spool_dir: Path, flow: VoicemailFlow) -> None:
        self._voicemails = voicemails
        self._spool = spool_dir
        self._flow = flow

    async def __call__(self, session: AgiSession) -> None:
        env = session.env
        channel = AgiChannel(session)
        known = await channel.get_vars((VAR_QUEUE, "CHANNEL(linkedid)"))
        queue = (env.args[0] if env.args else env.query.get("queue")) or known[VAR_QUEUE] or None
        call_id = known["CHANNEL(linkedid)"] or env.get("agi_uniqueid") or None
        caller = env.get("agi_callerid")
        caller = "" if caller in ("", "unknown") else caller
        await asyncio.to_thread(self._spool.mkdir, parents=True, exist_ok=True)
        name = str(self._spool / f"callcenter-vm-{uuid.uuid4().hex}")

        async def recording_starts() -> None:
            # Raises ChannelHungUpError when the caller left during the greeting: no message then.
            await channel.set_var(VAR_VOICEMAIL, VOICEMAIL_RECORDED)

        async def not_recorded() -> None:
            # No message after all: the outcome hook must not report a voicemail.
            await channel.set_var(VAR_VOICEMAIL, "")

        recording = await take_message(
            channel, name, self._flow, on_record=recording_starts, on_not_recorded=not_recorded
        )
        if recording is None:
            logger.info("AGI call %s: hung up before the beep; no message", call_id)
            return
        path = Path(f"{name}.wav")
        data = await self._read(path, call_id)
        voicemail = await self._voicemails.store_recording(
            data, suffix=".wav", call_id=call_id, queue=queue, caller=caller, duration_s=recording.duration_s
        )
        await asyncio.to_thread(path.unlink, missing_ok=True)
        logger.info("AGI call %s: message of %.1fs stored as %s", call_id, recording.duration_s, voicemail.id)

    async def _read(self, path: Path, call_id: str | None) -> bytes:
        for _ in range(WAIT_TRIES):
            if await asyncio.to_thread(path.is_file):
                return await asyncio.to_thread(path.read_bytes)
            await asyncio.sleep(WAIT_S)
        logger.error("AGI call %s: recording %s never appeared in the spool", call_id, path)
        return b""
