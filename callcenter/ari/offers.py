"""Callback offers to the callers waiting in our queue, over their ARI channels (edge).

:class:`AriCallbackOffers` is a step hook of the queue service
(:meth:`~callcenter.queue.service.QueueService.add_step_hook`): when a caller joins the line it starts
the :class:`~ivr.flows.callback_offer.CallbackOfferFlow` on an :class:`~callcenter.ari.channel.AriChannel`
of their channel, and it stops the flow the moment the caller leaves the line any other way (answered,
hung up, timed out, failed): a prompt never plays on into a conversation. A caller who accepts a
callback is taken out of the line at once (``callback_requested``), hears the confirmation and is hung up.
A caller who presses the voicemail key (``CALLCENTER_VOICEMAIL_KEY``) is handed to the voicemail flow
(:meth:`~callcenter.queue.service.QueueService.choose_voicemail`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Final, Protocol

from callcenter.ari.channel import AriChannel
from callcenter.ari.client import AriClient
from callcenter.ari.stasis import StasisDispatcher
from callcenter.capacity.ports import QueueSettingsSource
from callcenter.errors import CallCenterError
from callcenter.model.callbacks import Callback
from callcenter.model.records import CallRecord, QueueRecord
from callcenter.queue.detection import (
    CallAnswered,
    CallerHungUp,
    CallFailed,
    CallQueued,
    QueueExit,
    Reconciled,
)
from callcenter.queue.hours import zone_of
from callcenter.queue.state import Fact, QueueView, Step
from ivr.channel import VoiceChannel
from ivr.flows.callback_offer import CallbackDesk, CallbackOfferFlow, FlowOutcome, FlowSettings, WaitingCall

logger = logging.getLogger(__name__)

# Facts after which the caller is no longer in line for a reason of its own: the flow stops.
_LEFT_LINE: Final = (CallAnswered, CallerHungUp, Reconciled, QueueExit, CallFailed)


class CallbackQueue(Protocol):
    """What the offers need of the queue service."""

    async def accept_callback(self, call_id: str) -> bool: ...

    async def end_after_callback(self, call_id: str) -> None: ...

    async def choose_voicemail(self, call_id: str) -> bool: ...


class _Detail(Protocol):
    @property
    def call(self) -> CallRecord: ...


class _Live(Protocol):
    @property
    def view(self) -> QueueView: ...


class WaitingLines(Protocol):
    """The queue service's lines, to adopt the callers waiting after a restart or a take-over."""

    async def list_queues(self) -> tuple[QueueRecord, ...]: ...

    async def live(self, queue: str) -> _Live: ...

    async def get_call(self, call_id: str) -> _Detail: ...


class FlowChannel(VoiceChannel, AbstractContextManager["FlowChannel"], Protocol):
    """A voice channel that is closed when the flow is done (``AriChannel``)."""


def ari_channels(client: AriClient, dispatcher: StasisDispatcher) -> Callable[[str], FlowChannel]:
    """Open an :class:`AriChannel` per caller channel (subscribed to its events at once)."""

    def open_channel(channel_id: str) -> FlowChannel:
        return AriChannel(client, dispatcher, channel_id)

    return open_channel


class AriCallbackOffers:
    """Runs one offer flow per waiting caller (see the module docstring).

    :param every_s: time between two announcements to the same caller (each re-estimated).
    :param first_after_s: time from joining the line to the first announcement.
    """

    def __init__(
        self,
        open_channel: Callable[[str], FlowChannel],
        queue: CallbackQueue,
        desk: CallbackDesk,
        queues: QueueSettingsSource,
        *,
        every_s: float = 60.0,
        first_after_s: float = 0.0,
        settings: FlowSettings | None = None,
    ) -> None:
        self._open_channel = open_channel
        self._queue = queue
        self._desk = desk
        self._queues = queues
        self._every_s = every_s
        self._first_after_s = first_after_s
        self._settings = settings
        self._flows: dict[str, asyncio.Task[FlowOutcome]] = {}
        self._accepting: set[str] = set()

    @property
    def running(self) -> frozenset[str]:
        """The calls with a flow running."""
        return frozenset(self._flows)

    def on_step(self, fact: Fact, step: Step) -> None:
        """The queue's step hook: start a flow for a caller who joined the line, stop it when they left."""
        if step.ignored is not None:
            return
        if isinstance(fact, CallQueued) and step.record is not None:
            record = step.record
            if fact.call_id in self._flows or record.queued_at is None:
                return
            self._start(fact.call_id, fact.queue, record.channel_id, record.caller, record.queued_at)
        elif isinstance(fact, _LEFT_LINE) and fact.call_id not in self._accepting:
            task = self._flows.pop(fact.call_id, None)
            if task is not None:
                task.cancel()

    async def adopt(self, lines: WaitingLines) -> int:
        """Start flows for the callers waiting without one (after a restart or a take-over, whose
        callers were restored, not queued again); return how many. Never raises."""
        started = 0
        try:
            for queue in await lines.list_queues():
                for waiting in (await lines.live(queue.name)).view.waiting:
                    if waiting.call_id in self._flows or waiting.ringing_agent is not None:
                        continue
                    record = (await lines.get_call(waiting.call_id)).call
                    if record.outcome is None and record.queued_at is not None and record.queue is not None:
                        self._start(
                            record.id, record.queue, record.channel_id, record.caller, record.queued_at
                        )
                        started += 1
        except CallCenterError as exc:
            logger.warning("callback offers: waiting callers not adopted: %s", exc)
        return started

    def _start(self, call_id: str, queue: str, channel_id: str, caller: str, enqueued_at: datetime) -> None:
        self._flows[call_id] = asyncio.get_running_loop().create_task(
            self._run(call_id, queue, channel_id, caller, enqueued_at), name=f"callback-offer-{call_id}"
        )

    async def close(self) -> None:
        """Stop every flow (at shutdown)."""
        tasks = list(self._flows.values())
        self._flows.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(
        self, call_id: str, queue: str, channel_id: str, caller: str, enqueued_at: datetime
    ) -> FlowOutcome:
        outcome = FlowOutcome.STAYED
        try:
            # Subscribed at once: a key pressed from now on counts for the first menu.
            with self._open_channel(channel_id) as channel:
                if self._first_after_s > 0:
                    await channel.get_digits(1, self._first_after_s)
                zone = zone_of((await self._queues.get(queue)).time_zone)
                call = WaitingCall(
                    queue=queue, call_id=call_id, caller=caller, enqueued_at=enqueued_at, zone=zone
                )

                async def accepted(callback: Callback) -> None:
                    self._accepting.add(call_id)
                    if not await self._queue.accept_callback(call_id):
                        logger.info(
                            "call %s: left the line before its callback %s was accepted", call_id, callback.id
                        )

                flow = CallbackOfferFlow(
                    channel, self._desk, call, accepted=accepted, settings=self._settings
                )
                outcome = await flow.run(every_s=self._every_s)
            if outcome is FlowOutcome.CALLBACK:
                await self._queue.end_after_callback(call_id)
            elif outcome is FlowOutcome.VOICEMAIL and not await self._queue.choose_voicemail(call_id):
                logger.info("call %s: pressed the voicemail key but left the line meanwhile", call_id)
        except asyncio.CancelledError:
            raise
        except CallCenterError as exc:
            logger.warning("call %s: callback offers stopped: %s", call_id, exc)
        except Exception:
            logger.exception("call %s: callback offer flow failed; the caller keeps waiting", call_id)
        finally:
            self._flows.pop(call_id, None)
            self._accepting.discard(call_id)
        return outcome
