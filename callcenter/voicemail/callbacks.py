"""Voicemails become callbacks on the agents' worklist (service).

A consumer of the bus (group :data:`CONSUMER_GROUP`, in the process that serves the API and the
callback sources) turns each ``VoicemailTranscribed`` into a callback request through
``CallbackSources.from_voicemail``: a keep-my-place callback, in line from when the message was left,
its note the triage (urgency, intents) and the transcript, its source naming the voicemail so the
worklist links to the recording and the full transcript. A number that already has an open callback
in the queue gets no second one: the request is merged into that callback as one more note.

A silent voicemail (no speech: the caller hung up at the beep, or only noise) makes no callback by
default: there is nothing for an agent to act on beyond the missed call itself, which stays open on
the missed-call list (and on the wallboard) until the caller is reached. With
``CALLCENTER_VOICEMAIL_CALLBACK_SILENT=true`` it makes one too, noted as a silent message. A voicemail
without a queue, or from a number that cannot be called back (withheld, invalid), makes none; the
log says why. Nor does one recorded more than :data:`MAX_AGE` ago: the consumer group reads the bus
from the start of its stream when it is first created, and a first deployment must not turn weeks of
voicemails already dealt with into callbacks.

Idempotent across redeliveries and restarts: the request's source note names the voicemail, and
before asking, the store is asked whether this voicemail already asked for a callback (made or
merged). A redelivered event, a retranscription (a new revision) or two processes handling the same
voicemail never make a second callback.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Final

from callcenter.bus import Delivery
from callcenter.clock import Clock
from callcenter.errors import InvalidPhoneNumberError, NotFoundError
from callcenter.model.events import VoicemailSilent, VoicemailTranscribed
from callcenter.model.vocabulary import VoicemailStatus
from callcenter.voicemail.ports import CallbackRequests, VoicemailRepository
from callcenter.voicemail.records import Voicemail
from callcenter.voicemail.triage import URGENT, preview

logger = logging.getLogger(__name__)

#: The bus consumer group that turns voicemails into callbacks.
CONSUMER_GROUP: Final = "voicemail-callbacks"

#: The event types :meth:`VoicemailCallbacks.handle` acts on; the bus acknowledges the others unread (``only``).
HANDLED_EVENTS: Final = frozenset({VoicemailTranscribed.event_type, VoicemailSilent.event_type})
#: Longest note on the callback (the full transcript is on the voicemail).
NOTE_CHARS: Final = 480
#: A voicemail older than this makes no callback (see the module docstring).
MAX_AGE: Final = timedelta(days=7)


def callback_note(voicemail: Voicemail, transcript_text: str) -> str:
    """What the agent reads on the worklist: ``[urgent; billing] <transcript, on one line>``."""
    if voicemail.status is VoicemailStatus.SILENT:
        return "silent message: no words were heard"
    tags = ([URGENT] if voicemail.urgency == URGENT else []) + list(voicemail.intents)
    head = f"[{'; '.join(tags)}] " if tags else ""
    return head + preview(transcript_text or voicemail.preview, NOTE_CHARS - len(head))


class VoicemailCallbacks:
    """The bus handler that makes a callback of each voicemail (see the module docstring).

    :param silent: whether a silent voicemail makes a callback too.
    """

    def __init__(
        self,
        voicemails: VoicemailRepository,
        callbacks: CallbackRequests,
        clock: Clock,
        *,
        silent: bool = False,
    ) -> None:
        self._voicemails = voicemails
        self._callbacks = callbacks
        self._clock = clock
        self._silent = silent

    async def handle(self, delivery: Delivery) -> None:
        """Handler of :data:`CONSUMER_GROUP`; other events are acknowledged untouched.

        :raises CallCenterError: a store that cannot be reached (the bus delivers the event again).
        """
        event = delivery.event
        if isinstance(event, VoicemailTranscribed) or (isinstance(event, VoicemailSilent) and self._silent):
            await self.request(event.voicemail_id)

    async def request(self, voicemail_id: str) -> str | None:
        """Ask for the voicemail's callback once; its id, or ``None`` when it makes none."""
        try:
            voicemail = await self._voicemails.get(voicemail_id)
        except NotFoundError:
            logger.warning("voicemail %s: gone before its callback was asked for", voicemail_id)
            return None
        wanted = voicemail.status is VoicemailStatus.TRANSCRIBED or (
            self._silent and voicemail.status is VoicemailStatus.SILENT
        )
        if not wanted:
            return None  # a newer revision is pending, or silent without the setting
        existing = await self._callbacks.requested_by(voicemail.id)
        if existing is not None:
            logger.info("voicemail %s: callback %s already asked for", voicemail.id, existing)
            return existing
        if not voicemail.queue:
            logger.info("voicemail %s: no queue to call back from; no callback", voicemail.id)
            return None
        if voicemail.recorded_at < self._clock.now() - MAX_AGE:
            logger.info(
                "voicemail %s: recorded %s, too long ago for a callback", voicemail.id, voicemail.recorded_at
            )
            return None
        transcript = await self._voicemails.transcript(voicemail.id)
        note = callback_note(voicemail, transcript.text if transcript else "")
        try:
            callback_id = await self._callbacks.request(voicemail, note)
        except InvalidPhoneNumberError as exc:
            logger.info("voicemail %s: no callback (%s)", voicemail.id, exc)
            return None
        logger.info("voicemail %s: callback %s asked for in %s", voicemail.id, callback_id, voicemail.queue)
        return callback_id
