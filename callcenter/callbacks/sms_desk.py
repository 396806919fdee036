"""Text replies acting on callbacks: "1" asks for one, "2" cancels (core).

The SMS engine's :class:`~callcenter.sms.ports.CallbackDesk`, over the callback service and its
sources: a "1" becomes ``CallbackSources.from_sms_reply`` in the queue of the caller's latest missed
call (else the first queue by name), a "2" cancels every open callback of the number, as the customer;
a text that is no keyword becomes ``CallbackSources.from_sms_text`` in that queue (the worklist item a
person reads and acts on).
Composed in ``callcenter/wiring/sms.py``.
"""

from __future__ import annotations

from datetime import datetime

from callcenter.callbacks.ports import CallbackRepository
from callcenter.callbacks.service import CallbackService
from callcenter.callbacks.sources import CallbackSources
from callcenter.clock import Clock
from callcenter.errors import ConflictError, ValidationError
from callcenter.model.callbacks import Actor, Callback
from callcenter.model.vocabulary import ActorKind, CallbackKind
from callcenter.queue.ports import CallRepository, QueueRepository
from callcenter.sms.ports import CallbackTicket


class SmsCallbackDesk:
    """The SMS engine's "1" and "2" (:class:`~callcenter.sms.ports.CallbackDesk`) on the callback
    service: "1" is ``CallbackSources.from_sms_reply`` in the queue of the caller's latest missed
    call (else the first queue by name); "2" cancels every open callback of the number, by the customer."""

    def __init__(
        self,
        sources: CallbackSources,
        callbacks: CallbackService,
        repository: CallbackRepository,
        calls: CallRepository,
        queues: QueueRepository,
        clock: Clock,
    ) -> None:
        self._sources = sources
        self._callbacks = callbacks
        self._repository = repository
        self._calls = calls
        self._queues = queues
        self._clock = clock

    async def request(
        self, number: str, *, message_id: str, received_at: datetime, text: str
    ) -> CallbackTicket:
        queue = await self._queue_for(number)
        if queue is None:
            raise ValidationError("no queue is configured to call back from")
        sourced = await self._sources.from_sms_reply(
            queue, number, message_id=message_id, received_at=received_at, text=text
        )
        return _ticket(sourced.callback, created=sourced.created)

    async def attend(
        self, number: str, *, message_id: str, received_at: datetime, text: str
    ) -> CallbackTicket:
        queue = await self._queue_for(number)
        if queue is None:
            raise ValidationError("no queue is configured to call back from")
        sourced = await self._sources.from_sms_text(
            queue, number, message_id=message_id, received_at=received_at, text=text
        )
        return _ticket(sourced.callback, created=sourced.created)

    async def cancel(self, number: str, *, message_id: str) -> CallbackTicket | None:
        cancelled: CallbackTicket | None = None
        for callback in await self._repository.open_for_number(number):
            try:
                stored = await self._callbacks.cancel(
                    callback.id, actor=Actor(ActorKind.CUSTOMER, "sms"), reason=f"reply 2 ({message_id})"
                )
            except ConflictError:
                continue  # connected right now: too late to cancel
            cancelled = _ticket(stored, created=False)
        return cancelled

    async def _queue_for(self, number: str) -> str | None:
        missed = await self._calls.open_missed(number, before=self._clock.now())
        with_queue = sorted((c for c in missed if c.queue), key=lambda c: c.arrived_at)
        if with_queue:
            return with_queue[-1].queue
        queues = sorted(q.name for q in await self._queues.list())
        return queues[0] if queues else None


def _ticket(callback: Callback, *, created: bool) -> CallbackTicket:
    return CallbackTicket(
        callback_id=callback.id,
        queue=callback.queue,
        keep_place=callback.kind is CallbackKind.KEEP_PLACE,
        window_start=callback.window.start,
        window_end=callback.window.end,
        created=created,
    )
