"""Taking voicemails over ARI: the flow on an ARI channel, the file fetched from Asterisk, stored (edge).

The queue hands a caller over with the exit action ``voicemail`` or when they pressed the voicemail
key while waiting (:class:`VoicemailRequest`); the flow runs as a background task of its own, after
taking the caller out of the queue's holding bridge (Asterisk records no channel in a bridge). Asterisk keeps the recording on its disk: we fetch it with
``GET /recordings/stored/{name}/file`` (retrying briefly: the file can appear a moment after
``RecordingFinished``), store it with the voicemail service, which queues its transcription, and
delete Asterisk's copy. A recording that never arrives is stored empty, so the voicemail still exists
(``failed``, with the reason) and the call stays visible as a message to follow up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Final

from callcenter.ari.channel import AriChannel
from callcenter.ari.client import AriClient
from callcenter.ari.stasis import StasisDispatcher
from callcenter.clock import Clock
from callcenter.errors import CallCenterError, DependencyError
from callcenter.queue.detection import VoicemailNotRecorded, VoicemailRecorded
from callcenter.queue.ports import CallFactSink, VoicemailRequest
from callcenter.voicemail.service import VoicemailService
from ivr.channel import ChannelHungUpError
from ivr.voicemail import VoicemailFlow, take_message

logger = logging.getLogger(__name__)

FETCH_TRIES: Final = 5
FETCH_BACKOFF_S: Final = 0.2


class AriVoicemailTaker:
    """:class:`callcenter.queue.ports.VoicemailTaker` over ARI."""

    def __init__(
        self,
        client: AriClient,
        dispatcher: StasisDispatcher,
        queue: CallFactSink,
        voicemails: VoicemailService,
        clock: Clock,
        flow: VoicemailFlow,
    ) -> None:
        self._client = client
        self._dispatcher = dispatcher
        self._queue = queue
        self._voicemails = voicemails
        self._clock = clock
        self._flow = flow
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, request: VoicemailRequest) -> bool:
        task = asyncio.create_task(self._take(request), name=f"voicemail-{request.call_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def close(self, grace_s: float) -> None:
        """Let messages being taken finish within ``grace_s``, then cancel the rest."""
        if not self._tasks:
            return
        _, pending = await asyncio.wait(set(self._tasks), timeout=grace_s)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _take(self, request: VoicemailRequest) -> None:
        name = f"callcenter-vm-{uuid.uuid4().hex}"
        if request.holding_bridge_id is not None:
            # res_stasis_recording refuses a bridged channel ("Cannot record channel while in bridge",
            # RecordingFailed after the 201): take the caller out of the holding bridge first. A bridge
            # already destroyed (they were its last caller) answers 404: they are out already.
            with contextlib.suppress(CallCenterError):
                await self._client.remove_channel(request.holding_bridge_id, request.channel_id)
        try:
            with AriChannel(self._client, self._dispatcher, request.channel_id) as channel:
                if request.holding_bridge_id is None:
                    await self._out_of_bridges(request.channel_id)  # a bridge the queue did not name

                async def recording_starts() -> None:
                    # A hang-up during the greeting can end its playback normally (PlaybackFinished
                    # follows ChannelHangupRequest): no message then, and the outcome stays the exit's.
                    if channel.hung_up:
                        raise ChannelHungUpError(f"call {request.call_id} hung up during the greeting")
                    await self._queue.handle(VoicemailRecorded(call_id=request.call_id, at=self._clock.now()))

                async def not_recorded() -> None:
                    # No message after all: decided as if none was left (the exit's outcome), so the
                    # caller gets the missed-call follow-up, not "we got your voicemail".
                    await self._queue.handle(
                        VoicemailNotRecorded(call_id=request.call_id, at=self._clock.now())
                    )

                recording = await take_message(
                    channel, name, self._flow, on_record=recording_starts, on_not_recorded=not_recorded
                )
        except Exception:
            # Caller safety: never leave them in dead air after our failure.
            logger.exception("call %s: the voicemail flow failed; hanging up", request.call_id)
            with contextlib.suppress(CallCenterError):
                await self._client.hangup(request.channel_id)
            return
        if recording is None:
            logger.info("call %s: hung up before the beep; no message", request.call_id)
            return
        data = await self._fetch(name, request.call_id)
        try:
            await self._voicemails.store_recording(
                data,
                suffix=".wav",
                call_id=request.call_id,
                queue=request.queue,
                caller=request.caller,
                duration_s=recording.duration_s,
            )
        except DependencyError as exc:
            # The audio and its intake note are in the media folder: the voicemail upkeep stores it
            # once the store is back. Asterisk's copy stays too.
            logger.error(
                "call %s: message of %.1fs not stored yet (%s); kept for the voicemail upkeep, and as %s on Asterisk",
                request.call_id,
                recording.duration_s,
                exc,
                name,
            )
            return
        logger.info(
            "call %s: message of %.1fs taken (%s); %d bytes stored",
            request.call_id,
            recording.duration_s,
            recording.ended_by,
            len(data),
        )
        if data:
            with contextlib.suppress(CallCenterError):
                await self._client.delete_stored_recording(name)

    async def _out_of_bridges(self, channel_id: str) -> None:
        """Take the caller out of the bridge they wait in (the queue's holding bridge, after the max
        wait): Asterisk refuses to record a bridged channel ("Cannot record channel while in bridge")."""
        for bridge in await self._client.list_bridges():
            if channel_id in bridge.channels:
                await self._client.remove_channel(bridge.id, channel_id)

    async def _fetch(self, name: str, call_id: str) -> bytes:
        for attempt in range(FETCH_TRIES):
            try:
                return await self._client.get_recording_file(name)
            except CallCenterError as exc:
                if attempt == FETCH_TRIES - 1:
                    logger.error("call %s: recording %s never arrived from Asterisk: %s", call_id, name, exc)
                    return b""
                await asyncio.sleep(FETCH_BACKOFF_S * 2**attempt)
        return b""
