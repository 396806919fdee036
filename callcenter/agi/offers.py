"""The FastAGI ``callback-offer`` script: the callback offer on ``app_queue`` sites (edge).

Asterisk runs it from the queue's exit context (``callcenter-appqueue-exit``) once the caller pressed
the exit key: the caller is out of ``app_queue`` and ``CC_EXIT_POSITION`` holds their place. The wait
is estimated from the dialplan's figures (the place, ``QUEUE_MEMBER(q,logged)`` and ``(q,free)``) with
what the queue's recorded calls taught (:meth:`~callcenter.capacity.service.EstimateService.estimate_snapshot`),
then the same :class:`~ivr.flows.callback_offer.CallbackOfferFlow` as on ARI runs once over an
:class:`~callcenter.agi.channel.AgiChannel`. A callback taken sets ``CC_CALLBACK=accepted``: the dialplan
thanks the caller and hangs up, and the outcome hook records ``callback_requested``. Anything else
returns to the dialplan, which puts the caller back in the queue at the same place.

Only a later time (a booked slot) is offered here: keeping a place in line needs the live line, which
``app_queue`` does not show us (ARI has no queue events; that would take AMI), so a kept place could
be neither served in order nor released when due. The caller is offered what can be kept.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import UTC, datetime
from typing import Final, Protocol

from callcenter.agi.channel import AgiChannel
from callcenter.agi.server import AgiSession
from callcenter.asterisk_names import CALLBACK_ACCEPTED, VAR_CALLBACK, VAR_EXIT_POSITION, VAR_QUEUE
from callcenter.callbacks.numbers import NumberCheck
from callcenter.callbacks.policy import WaitFigures
from callcenter.callbacks.service import Booking, CallbackOffer, CallbackService
from callcenter.callbacks.slots import SlotCapacity
from callcenter.capacity.estimate import QueueSnapshot
from callcenter.capacity.service import Estimate
from callcenter.clock import Clock
from callcenter.errors import CallCenterError, ValidationError
from callcenter.model.callbacks import Actor, Callback
from callcenter.queue.hours import zone_of
from ivr.flows.callback_offer import CallbackOfferFlow, FlowOutcome, FlowSettings, WaitingCall

logger = logging.getLogger(__name__)

_JOINED_AT: Final = "CC_QUEUE_JOINED_AT"


class SnapshotEstimator(Protocol):
    """``EstimateService.estimate_snapshot``."""

    async def estimate_snapshot(
        self, queue: str, snapshot: QueueSnapshot, *, call_id: str | None = None
    ) -> Estimate: ...


class CallbackOfferScript:
    """The ``callback-offer`` FastAGI script (see the module docstring)."""

    def __init__(
        self,
        callbacks: CallbackService,
        estimates: SnapshotEstimator,
        clock: Clock,
        *,
        settings: FlowSettings | None = None,
    ) -> None:
        self._callbacks = callbacks
        self._clock = clock
        self._estimates = estimates
        self._settings = settings

    async def __call__(self, session: AgiSession) -> None:
        channel = AgiChannel(session)
        first = await channel.get_vars(
            (VAR_QUEUE, "CALLERID(num)", VAR_EXIT_POSITION, _JOINED_AT, "CHANNEL(linkedid)")
        )
        queue = first[VAR_QUEUE]
        if not queue:
            logger.warning(
                "callback-offer: no %s on channel %s; back to the dialplan",
                VAR_QUEUE,
                session.env.get("agi_channel"),
            )
            return
        members = await channel.get_vars((f"QUEUE_MEMBER({queue},logged)", f"QUEUE_MEMBER({queue},free)"))
        call_id = first["CHANNEL(linkedid)"] or session.env.get("agi_uniqueid")
        position = _whole(first[VAR_EXIT_POSITION], default=1)
        snapshot = QueueSnapshot(
            position=max(1, position),
            agents_staffed=_whole(members[f"QUEUE_MEMBER({queue},logged)"], default=0),
            agents_free=_whole(members[f"QUEUE_MEMBER({queue},free)"], default=0),
        )
        try:
            zone = zone_of((await self._callbacks.queue_settings(queue)).time_zone)
        except CallCenterError as exc:
            logger.warning("callback-offer: queue %s: %s; back to the dialplan", queue, exc)
            return
        desk = _AppQueueDesk(self._callbacks, self._estimates, snapshot)
        call = WaitingCall(
            queue=queue,
            call_id=call_id,
            caller=first["CALLERID(num)"],
            enqueued_at=_epoch(first[_JOINED_AT], self._clock.now()),
            zone=zone,
        )

        async def accepted(callback: Callback) -> None:
            await channel.set_var(VAR_CALLBACK, CALLBACK_ACCEPTED)
            logger.info("call %s: callback %s accepted on app_queue %s", call_id, callback.id, queue)

        outcome = await CallbackOfferFlow(
            channel, desk, call, accepted=accepted, settings=self._settings
        ).offer_once()
        if outcome is not FlowOutcome.CALLBACK:
            logger.info("call %s: back to app_queue %s (%s)", call_id, queue, outcome)


class _AppQueueDesk:
    """The callback service with the wait of one ``app_queue`` caller, and a later time only."""

    def __init__(
        self, service: CallbackService, estimates: SnapshotEstimator, snapshot: QueueSnapshot
    ) -> None:
        self._service = service
        self._estimates = estimates
        self._snapshot = snapshot

    async def offer(self, queue: str, call_id: str) -> CallbackOffer:
        wait: WaitFigures | None = None
        try:
            estimate = await self._estimates.estimate_snapshot(queue, self._snapshot, call_id=call_id)
        except CallCenterError as exc:
            logger.info("callback-offer: no estimate for %s: %s", call_id, exc)
        else:
            predicted = estimate.wait.estimate
            if predicted is not None:
                wait = WaitFigures(
                    p80_s=predicted.p80_s,
                    p90_s=predicted.p90_s,
                    mean_s=predicted.mean_s,
                    position=self._snapshot.position,
                    staffed=self._snapshot.agents_staffed,
                )
        # The caller asked by pressing the exit key: no threshold, only what can be kept.
        rule = dataclasses.replace(
            self._service.settings.offer,
            wait_threshold_s=0.0,
            position_threshold=None,
            calls_per_agent=None,
            keep_place=False,
        )
        return await self._service.offer_with(queue, wait, settings=rule)

    async def open_for(self, queue: str, number: str) -> Callback | None:
        return await self._service.open_for(queue, number)

    def number_check(self, raw: str) -> NumberCheck:
        return self._service.number_check(raw)

    async def keep_place(
        self,
        queue: str,
        number: str,
        *,
        enqueued_at: datetime,
        by: datetime,
        actor: Actor,
        call_id: str | None = None,
        client_key: str | None = None,
    ) -> Booking:
        raise ValidationError("keeping a place in line is not offered on app_queue sites")

    async def next_slots(self, queue: str, *, count: int = 3) -> tuple[SlotCapacity, ...]:
        return await self._service.next_slots(queue, count=count)

    async def book(
        self,
        queue: str,
        number: str,
        slot_start: datetime,
        *,
        actor: Actor,
        client_key: str | None = None,
        call_id: str | None = None,
        reason: str = "chose a later time",
    ) -> Booking:
        return await self._service.book(
            queue, number, slot_start, actor=actor, client_key=client_key, call_id=call_id, reason=reason
        )

    async def cancel(self, callback_id: str, *, actor: Actor, reason: str = "") -> Callback:
        return await self._service.cancel(callback_id, actor=actor, reason=reason)


def _whole(text: str, *, default: int) -> int:
    try:
        return max(0, int(text.strip()))
    except ValueError:
        return default


def _epoch(text: str, now: datetime) -> datetime:
    """``CC_QUEUE_JOINED_AT`` (Unix seconds on Asterisk's clock); ``now`` when missing or garbled."""
    try:
        return datetime.fromtimestamp(float(text), UTC)
    except (ValueError, OverflowError, OSError):
        return now
