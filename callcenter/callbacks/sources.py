"""The other sources of callbacks: a voicemail, an SMS reply or text, an agent's own follow-up (service).

Each request is stored with a :class:`~callcenter.callbacks.attempts.SourceNote` saying where it came
from. A number that already has an open callback in the queue does not get a second one: the request
is merged into the open callback as one more note (DESIGN.md: one open callback per queue and number).

* A voicemail, an SMS reply "1" or a text that is no keyword (a person must read it) keeps the place
  of the moment it arrived: it is served in line with live callers from that moment
  (keep-my-place), promised within ``reply_within_s``.
* A follow-up is booked by an agent at a time of their choosing (no slot capacity: it is their
  time), personal to them until ``personal_s`` after that time, then the queue's.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from callcenter.bus import EventBus
from callcenter.callbacks.attempts import CallbackSource, SourceNote
from callcenter.callbacks.dispatch_ports import DispatchStore
from callcenter.callbacks.lifecycle import move, new_callback
from callcenter.callbacks.promise import keep_place_window, slot_window
from callcenter.callbacks.service import CallbackService, state_event
from callcenter.clock import Clock
from callcenter.errors import ValidationError
from callcenter.model.callbacks import Actor, Callback, CallbackChange
from callcenter.model.vocabulary import ActorKind, CallbackKind, CallbackState

logger = logging.getLogger(__name__)

_MAX_TEXT: Final = 500


@dataclass(frozen=True, kw_only=True, slots=True)
class SourceSettings:
    """:param reply_within_s: the promise for a voicemail or SMS request, from when it arrives.
    :param follow_up_window_s: a follow-up's promise runs from its time for this long.
    :param personal_s: a follow-up stays its agent's for this long after its time, then the queue's."""

    reply_within_s: float = 4 * 3600.0
    follow_up_window_s: float = 1800.0
    personal_s: float = 1800.0


@dataclass(frozen=True, kw_only=True, slots=True)
class SourcedRequest:
    """A stored request: the callback (new or the open one it merged into) and whether it is new."""

    callback: Callback
    created: bool


class CallbackSources:
    """Requests from voicemails, SMS replies and agents' follow-ups (see the module docstring)."""

    def __init__(
        self,
        store: DispatchStore,
        callbacks: CallbackService,
        bus: EventBus,
        clock: Clock,
        *,
        settings: SourceSettings | None = None,
        new_id: Callable[[], str] = lambda: f"cb-{uuid.uuid4().hex}",
    ) -> None:
        self._store = store
        self._callbacks = callbacks
        self._bus = bus
        self._clock = clock
        self._settings = settings or SourceSettings()
        self._new_id = new_id

    async def from_voicemail(
        self, queue: str, number: str, *, voicemail_id: str, left_at: datetime, preview: str = ""
    ) -> SourcedRequest:
        """A caller left a message: call them back in their place in line from ``left_at``.

        :raises InvalidPhoneNumberError: a number we do not call back (withheld, premium, invalid).
        """
        return await self._kept(
            queue,
            number,
            since=left_at,
            actor=Actor(ActorKind.SYSTEM, "voicemail"),
            source=CallbackSource.VOICEMAIL,
            ref=voicemail_id,
            note=preview,
        )

    async def from_sms_reply(
        self, queue: str, number: str, *, message_id: str, received_at: datetime, text: str = ""
    ) -> SourcedRequest:
        """A customer asked by SMS to be called: served in line from ``received_at``.

        :raises InvalidPhoneNumberError:
        """
        return await self._kept(
            queue,
            number,
            since=received_at,
            actor=Actor(ActorKind.CUSTOMER, "sms"),
            source=CallbackSource.SMS_REPLY,
            ref=message_id,
            note=text,
        )

    async def from_sms_text(
        self, queue: str, number: str, *, message_id: str, received_at: datetime, text: str = ""
    ) -> SourcedRequest:
        """A customer wrote something that is no keyword: a person reads the thread and answers,
        by calling them back in their place in line from ``received_at`` or by closing the item
        (``answered_by_text``, ``no_action``: :meth:`Worklist.close`).

        :raises InvalidPhoneNumberError:
        """
        return await self._kept(
            queue,
            number,
            since=received_at,
            actor=Actor(ActorKind.CUSTOMER, "sms"),
            source=CallbackSource.SMS_TEXT,
            ref=message_id,
            note=text,
        )

    async def follow_up(
        self, agent_id: str, queue: str, number: str, *, at: datetime, note: str = ""
    ) -> SourcedRequest:
        """An agent's own follow-up at ``at``: theirs until ``personal_s`` after it, then the queue's.

        :raises InvalidPhoneNumberError: :raises ValidationError: a time already past.
        """
        callback, changes, source = self.draft_follow_up(agent_id, queue, number, at=at, note=note)
        return await self._store_request(callback, changes, source)

    def draft_follow_up(
        self, agent_id: str, queue: str, number: str, *, at: datetime, note: str = ""
    ) -> tuple[Callback, tuple[CallbackChange, ...], SourceNote]:
        """The follow-up :meth:`follow_up` stores, not stored: for a caller that stores it in the
        same transaction as another change (the agent's disposition of the call it follows).

        :raises InvalidPhoneNumberError: :raises ValidationError: a time already past.
        """
        e164 = self._callbacks.check_number(number)
        now = self._clock.now()
        if at.tzinfo is None:
            raise ValidationError("a follow-up time needs its offset (ISO 8601 with an offset)")
        if at < now - timedelta(minutes=1):
            raise ValidationError(f"the follow-up time {at.isoformat()} is already past")
        at = max(at, now)
        actor = Actor(ActorKind.AGENT, agent_id)
        callback, first = new_callback(
            callback_id=self._new_id(),
            queue=queue,
            number=e164,
            kind=CallbackKind.SCHEDULED,
            window=slot_window(at, at + timedelta(seconds=self._settings.follow_up_window_s)),
            at=now,
            actor=actor,
            handle_s=self._callbacks.settings.slots.callback_handle_s,
            reason=_clip(f"agent follow-up: {note}" if note else "agent follow-up"),
        )
        callback, second = move(
            callback, CallbackState.SCHEDULED, at=now, actor=actor, reason="follow-up time set", due_at=at
        )
        source = SourceNote(
            callback_id=callback.id,
            source=CallbackSource.AGENT_FOLLOW_UP,
            at=now,
            note=_clip(note),
            owner_agent=agent_id,
            owner_until=at + timedelta(seconds=self._settings.personal_s),
        )
        return callback, (first, second), source

    async def _kept(
        self,
        queue: str,
        number: str,
        *,
        since: datetime,
        actor: Actor,
        source: CallbackSource,
        ref: str,
        note: str,
    ) -> SourcedRequest:
        e164 = self._callbacks.check_number(number)
        now = self._clock.now()
        if since.tzinfo is None:
            raise ValidationError("the time a request arrived needs its offset")
        since = min(since, now)
        by = now + timedelta(seconds=self._settings.reply_within_s)
        callback, first = new_callback(
            callback_id=self._new_id(),
            queue=queue,
            number=e164,
            kind=CallbackKind.KEEP_PLACE,
            window=keep_place_window(now, by, grace_s=self._callbacks.settings.grace_s),
            at=now,
            actor=actor,
            enqueued_at=since,
            handle_s=self._callbacks.settings.slots.callback_handle_s,
            reason=f"{source.value} {ref}".strip(),
        )
        note_row = SourceNote(callback_id=callback.id, source=source, at=now, ref=ref, note=_clip(note))
        return await self._store_request(callback, (first,), note_row)

    async def _store_request(
        self, callback: Callback, changes: tuple[CallbackChange, ...], source: SourceNote
    ) -> SourcedRequest:
        stored, created = await self._store.add_with_source(callback, changes, source)
        if created:
            for change in changes:
                try:
                    await self._bus.publish(state_event(stored, change))
                except Exception as exc:
                    logger.error("event bus: callback %s change not published: %s", stored.id, exc)
            logger.info("callback %s requested by %s in %s", stored.id, source.source.value, stored.queue)
        else:
            logger.info("%s request merged into open callback %s", source.source.value, stored.id)
        return SourcedRequest(callback=stored, created=created)


def _clip(text: str) -> str:
    return text.strip()[:_MAX_TEXT]
