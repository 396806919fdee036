"""The callback offer to a waiting caller, written once over ``VoiceChannel`` (ivr flow).

Run by the ARI driver for callers in our queue (periodically, :meth:`CallbackOfferFlow.run`) and by the
FastAGI driver from an ``app_queue`` exit context (once, :meth:`CallbackOfferFlow.offer_once`):

1. a caller with an open callback in this queue is offered to keep it (1, and hang up) or cancel it
   (2, and wait in line);
2. position and wait, re-estimated every round: "there are N callers ahead of you", "your wait should
   be between X and Y minutes" (mean to 90th percentile); no estimate: nothing is said (the music
   plays on) and nothing is offered;
3. when the offer rule says so: 1 = keep my place and be called back by about <time>; 2 = a later
   time (the next offerable slots, 1 to 3 to pick); anything else or nothing, twice = stay in line;
4. the number: the caller id read back (1 confirm, 2 key another); a withheld or unusable caller id
   must key one; invalid, premium and foreign numbers are refused with a prompt saying so;
5. the callback is stored, ``accepted`` is called at once (the queue marks the call
   ``callback_requested`` before anything else can happen), then the promised window and goodbye;
6. with a voicemail key (:attr:`FlowSettings.voicemail_key`), every round also says "to leave a
   message instead, press <key>", and that key, pressed during the announcements, in the pause
   between them or in the offer menu, ends the flow with :attr:`FlowOutcome.VOICEMAIL`: the driver
   hands the caller to the voicemail flow. Inside the later-time and number menus keys mean what
   those menus say (the default key, 9, is none of theirs).

A slot that fills while the caller chooses is announced and the next slots are offered. A hang-up
anywhere ends the flow with :attr:`FlowOutcome.HUNG_UP` (an abandon like any other, unless the
callback was already stored).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, tzinfo
from enum import StrEnum
from typing import Final, Protocol

from callcenter.callbacks.numbers import NumberCheck, NumberRefusal, keyed_number
from callcenter.callbacks.policy import OfferDecision, WaitFigures
from callcenter.callbacks.ports import CallbackExistsError, SlotFullError
from callcenter.callbacks.slots import SlotCapacity
from callcenter.errors import CallCenterError, ConflictError
from callcenter.model.callbacks import Actor, Callback
from callcenter.model.vocabulary import ActorKind, CallbackKind
from ivr.channel import ChannelHungUpError, Media, MediaKind, VoiceChannel
from media.prompts import sound

#: Who a change made in the IVR is recorded as.
CALLER: Final = Actor(ActorKind.CUSTOMER, "ivr")
_WEEKDAYS: Final = ("day-mon", "day-tue", "day-wed", "day-thu", "day-fri", "day-sat", "day-sun")
_REFUSAL_PROMPTS: Final = {
    NumberRefusal.WITHHELD: "number-invalid",
    NumberRefusal.INVALID: "number-invalid",
    NumberRefusal.PREMIUM: "number-premium",
    NumberRefusal.REGION: "number-region",
}


class FlowOutcome(StrEnum):
    STAYED = "stayed"  # the caller keeps waiting in line
    CALLBACK = "callback"  # the caller leaves the queue with a callback: callback_requested
    HUNG_UP = "hung_up"  # the caller hung up in the flow: an abandon like any other
    VOICEMAIL = "voicemail"  # the caller pressed the voicemail key: they leave a message instead


class OfferView(Protocol):
    """What :meth:`CallbackDesk.offer` answers (``CallbackService.offer``'s ``CallbackOffer``)."""

    @property
    def at(self) -> datetime: ...

    @property
    def wait(self) -> WaitFigures | None: ...

    @property
    def decision(self) -> OfferDecision: ...

    @property
    def recheck_in_s(self) -> float | None:
        """When to ask again at the latest (the closing-time sweep), ``None``: at the usual pace."""
        ...


class BookingView(Protocol):
    @property
    def callback(self) -> Callback: ...


class CallbackDesk(Protocol):
    """The callback service as the flow uses it (``CallbackService`` satisfies it)."""

    async def offer(self, queue: str, call_id: str) -> OfferView: ...

    async def open_for(self, queue: str, number: str) -> Callback | None: ...

    def number_check(self, raw: str) -> NumberCheck: ...

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
    ) -> BookingView: ...

    async def next_slots(self, queue: str, *, count: int = 3) -> tuple[SlotCapacity, ...]: ...

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
    ) -> BookingView: ...

    async def cancel(self, callback_id: str, *, actor: Actor, reason: str = "") -> Callback: ...


@dataclass(frozen=True, kw_only=True, slots=True)
class WaitingCall:
    """The caller the flow talks to: their call, raw caller id, place in line and the queue's zone."""

    queue: str
    call_id: str
    caller: str
    enqueued_at: datetime
    zone: tzinfo


@dataclass(frozen=True, kw_only=True, slots=True)
class FlowSettings:
    """:param tries: answers asked for before the caller is left waiting (invalid or none each time).
    :param voicemail_key: the key that leaves a message instead of waiting; empty: not offered."""

    digit_timeout_s: float = 6.0
    number_timeout_s: float = 8.0
    tries: int = 2
    slot_choices: int = 3
    max_number_digits: int = 16
    voicemail_key: str = ""


Accepted = Callable[[Callback], Awaitable[None]]


class CallbackOfferFlow:
    """One waiting caller's announcements and callback offer (see the module docstring).

    :param accepted: called as soon as a callback is stored for the caller (or their open one kept):
        the queue takes the call out of line with outcome ``callback_requested``.
    """

    def __init__(
        self,
        channel: VoiceChannel,
        desk: CallbackDesk,
        call: WaitingCall,
        *,
        accepted: Accepted,
        settings: FlowSettings | None = None,
    ) -> None:
        self._channel = channel
        self._desk = desk
        self._call = call
        self._accepted = accepted
        self._settings = settings or FlowSettings()
        self._number: str | None = None

    async def run(self, *, every_s: float, rounds: int | None = None) -> FlowOutcome:
        """The repeat-caller check, then an announcement (and the offer when due) every ``every_s``.

        Ends when the caller leaves with a callback or hangs up; otherwise runs until cancelled (the
        queue cancels it when the caller is put through) or ``rounds`` rounds are done.
        """
        try:
            if await self._repeat_caller() is FlowOutcome.CALLBACK:
                return FlowOutcome.CALLBACK
            done = 0
            while rounds is None or done < rounds:
                outcome, recheck_in_s = await self._round()
                if outcome in (FlowOutcome.CALLBACK, FlowOutcome.VOICEMAIL):
                    return outcome
                done += 1
                if rounds is None or done < rounds:
                    # The wait between rounds (shorter when the closing-time sweep is due sooner);
                    # a key pressed meanwhile answers nothing, but the voicemail key.
                    pause_s = every_s if recheck_in_s is None else max(1.0, min(every_s, recheck_in_s))
                    if self._is_voicemail(await self._channel.get_digits(1, pause_s)):
                        return FlowOutcome.VOICEMAIL
            return FlowOutcome.STAYED
        except ChannelHungUpError:
            return FlowOutcome.HUNG_UP

    async def offer_once(self) -> FlowOutcome:
        """The repeat-caller check, then one announcement and offer (an ``app_queue`` exit context)."""
        try:
            if await self._repeat_caller() is FlowOutcome.CALLBACK:
                return FlowOutcome.CALLBACK
            return (await self._round())[0]
        except ChannelHungUpError:
            return FlowOutcome.HUNG_UP

    # -- rounds -------------------------------------------------------------------------------------

    async def _round(self) -> tuple[FlowOutcome, float | None]:
        """One announcement and offer; the outcome, and when the sweep wants the next round."""
        try:
            offer = await self._desk.offer(self._call.queue, self._call.call_id)
        except CallCenterError:
            # No estimate: nothing said that could be wrong; the voicemail key is still offered.
            await self._say_voicemail_option()
            return FlowOutcome.STAYED, None
        announcement = self._announcement(offer.wait)
        if not offer.decision.offer:
            announcement += self._voicemail_option()
        if announcement:  # nothing without an estimate: the music plays on
            await self._channel.play(*announcement)
        if not offer.decision.offer:
            return FlowOutcome.STAYED, offer.recheck_in_s
        return await self._menu(offer.decision, offer.at), None

    def _is_voicemail(self, key: str) -> bool:
        return bool(self._settings.voicemail_key) and key == self._settings.voicemail_key

    def _voicemail_option(self) -> list[Media]:
        """ "To leave a message instead, press 9." (nothing without a voicemail key)."""
        if not self._settings.voicemail_key:
            return []
        return [_p("leave-message"), Media(MediaKind.DIGITS, self._settings.voicemail_key)]

    async def _say_voicemail_option(self) -> None:
        option = self._voicemail_option()
        if option:
            await self._channel.play(*option)

    def _announcement(self, wait: WaitFigures | None) -> list[Media]:
        if wait is None:
            return []
        items = (
            [_p("you-are-next")]
            if wait.position <= 1
            else [_p("there-are"), _n(wait.position - 1), _p("callers-ahead")]
        )
        low = max(1, math.floor(wait.mean_s / 60.0))
        high = max(2, math.ceil(wait.p90_s / 60.0))
        if high <= 2:
            items += [_p("wait-less-than"), _n(2), _p("minutes")]
        else:
            items += [_p("wait-between"), _n(min(low, high - 1)), _p("and"), _n(high), _p("minutes")]
        return items

    async def _menu(self, decision: OfferDecision, now: datetime) -> FlowOutcome:
        menu: list[Media] = []
        if decision.keep_place and decision.by is not None:
            menu += [_p("offer-keep-place"), *self._time(decision.by, now), _p("press-1")]
        if decision.later:
            menu.append(_p("offer-later"))
        menu += self._voicemail_option()
        menu.append(_p("offer-stay"))
        for attempt in range(self._settings.tries):
            await self._channel.play(*menu)
            key = await self._channel.get_digits(1, self._settings.digit_timeout_s)
            if key == "1" and decision.keep_place and decision.by is not None:
                return await self._keep_place(decision.by, now)
            if key == "2" and decision.later:
                return await self._later(now)
            if self._is_voicemail(key):
                return FlowOutcome.VOICEMAIL
            if attempt + 1 < self._settings.tries:
                await self._channel.play(_p("not-understood"))
        await self._channel.play(_p("keep-waiting"))
        return FlowOutcome.STAYED

    # -- keep my place ------------------------------------------------------------------------------

    async def _keep_place(self, by: datetime, now: datetime) -> FlowOutcome:
        number = await self._confirm_number()
        if number is None:
            return await self._stay()
        try:
            booking = await self._desk.keep_place(
                self._call.queue,
                number,
                enqueued_at=self._call.enqueued_at,
                by=by,
                actor=CALLER,
                call_id=self._call.call_id,
                client_key=f"ivr:{self._call.call_id}",
            )
        except CallbackExistsError:
            return await self._already_booked(number, now)
        except CallCenterError:
            return await self._stay()
        await self._accepted(booking.callback)
        await self._channel.play(_p("confirm-by"), *self._time(by, now), _p("goodbye"))
        return FlowOutcome.CALLBACK

    # -- a later time -------------------------------------------------------------------------------

    async def _later(self, now: datetime) -> FlowOutcome:
        number: str | None = None
        for _ in range(self._settings.tries):
            slot = await self._choose_slot(now)
            if slot is None:
                return await self._stay()
            number = number or await self._confirm_number()
            if number is None:
                return await self._stay()
            try:
                booking = await self._desk.book(
                    self._call.queue,
                    number,
                    slot.start,
                    actor=CALLER,
                    client_key=f"ivr:{self._call.call_id}",
                    call_id=self._call.call_id,
                )
            except SlotFullError:
                await self._channel.play(_p("time-taken"))
                continue
            except CallbackExistsError:
                return await self._already_booked(number, now)
            except CallCenterError:
                return await self._stay()
            await self._accepted(booking.callback)
            await self._channel.play(
                _p("confirm-between"),
                *self._time(slot.start, now),
                _p("and"),
                *self._time(slot.end, now),
                _p("goodbye"),
            )
            return FlowOutcome.CALLBACK
        return await self._stay()

    async def _choose_slot(self, now: datetime) -> SlotCapacity | None:
        try:
            slots = await self._desk.next_slots(self._call.queue, count=self._settings.slot_choices)
        except CallCenterError:
            slots = ()
        if not slots:
            await self._channel.play(_p("no-later-time"))
            return None
        menu: list[Media] = [_p("choose-time")]
        for index, slot in enumerate(slots, start=1):
            menu += [
                _p("for"),
                *self._time(slot.start, now),
                _p("press"),
                Media(MediaKind.DIGITS, str(index)),
            ]
        for attempt in range(self._settings.tries):
            await self._channel.play(*menu)
            key = await self._channel.get_digits(1, self._settings.digit_timeout_s)
            if key.isdigit() and 1 <= int(key) <= len(slots):
                return slots[int(key) - 1]
            if attempt + 1 < self._settings.tries:
                await self._channel.play(_p("not-understood"))
        return None

    # -- the number ---------------------------------------------------------------------------------

    async def _confirm_number(self) -> str | None:
        """The caller id confirmed, or a keyed number that passes the checks; ``None`` after two misses."""
        if self._number is not None:
            return self._number
        checked = self._desk.number_check(self._call.caller)
        if checked.e164 is not None:
            for attempt in range(self._settings.tries):
                await self._channel.play(_p("we-will-call"), _digits(checked.e164), _p("confirm-or-change"))
                key = await self._channel.get_digits(1, self._settings.digit_timeout_s)
                if key == "1":
                    self._number = checked.e164
                    return self._number
                if key == "2":
                    break
                if attempt + 1 < self._settings.tries:
                    await self._channel.play(_p("not-understood"))
            else:
                return None
        self._number = await self._key_number()
        return self._number

    async def _key_number(self) -> str | None:
        for _ in range(self._settings.tries):
            await self._channel.play(_p("enter-number"))
            keyed = await self._channel.get_digits(
                self._settings.max_number_digits, self._settings.number_timeout_s
            )
            if not keyed:
                await self._channel.play(_p("not-understood"))
                continue
            checked = self._desk.number_check(keyed_number(keyed))
            if checked.e164 is not None:
                await self._channel.play(_p("we-will-call"), _digits(checked.e164))
                return checked.e164
            assert checked.refusal is not None
            await self._channel.play(_p(_REFUSAL_PROMPTS[checked.refusal]))
        return None

    # -- a caller with a callback already -------------------------------------------------------------

    async def _repeat_caller(self) -> FlowOutcome | None:
        checked = self._desk.number_check(self._call.caller)
        if checked.e164 is None:
            return None
        try:
            existing = await self._desk.open_for(self._call.queue, checked.e164)
        except CallCenterError:
            return None
        if existing is None:
            return None
        now = self._call.enqueued_at  # the caller joined minutes ago: the same day
        for attempt in range(self._settings.tries):
            await self._channel.play(
                _p("have-callback"), *self._promised(existing, now), _p("keep-or-cancel")
            )
            key = await self._channel.get_digits(1, self._settings.digit_timeout_s)
            if key == "1":
                await self._accepted(existing)
                await self._channel.play(_p("callback-kept"), _p("goodbye"))
                return FlowOutcome.CALLBACK
            if key == "2":
                try:
                    await self._desk.cancel(
                        existing.id, actor=CALLER, reason="cancelled by the caller, calling again"
                    )
                except ConflictError:
                    pass  # it moved on meanwhile (already dialing): nothing to cancel
                await self._channel.play(_p("callback-cancelled"), _p("keep-waiting"))
                return None
            if attempt + 1 < self._settings.tries:
                await self._channel.play(_p("not-understood"))
        await self._channel.play(_p("callback-kept"), _p("keep-waiting"))
        return None

    async def _already_booked(self, number: str, now: datetime) -> FlowOutcome:
        """The number has an open callback in this queue (made meanwhile): keep that one."""
        existing = await self._desk.open_for(self._call.queue, number)
        if existing is None:
            return await self._stay()
        await self._accepted(existing)
        await self._channel.play(
            _p("have-callback"), *self._promised(existing, now), _p("callback-kept"), _p("goodbye")
        )
        return FlowOutcome.CALLBACK

    async def _stay(self) -> FlowOutcome:
        await self._channel.play(_p("keep-waiting"))
        return FlowOutcome.STAYED

    # -- times ----------------------------------------------------------------------------------------

    def _promised(self, callback: Callback, now: datetime) -> list[Media]:
        if callback.kind is CallbackKind.SCHEDULED:
            return self._time(callback.window.start, now)
        return self._time(callback.window.end, now)

    def _time(self, when: datetime, now: datetime) -> list[Media]:
        """``when`` on the queue's clock: "[tomorrow | on Friday] 2 25 p m" ("2 o'clock", "2 oh 5")."""
        local = when.astimezone(self._call.zone)
        days = (local.date() - now.astimezone(self._call.zone).date()).days
        items: list[Media] = []
        if days == 1:
            items.append(_p("tomorrow"))
        elif days > 1:
            items.append(_p(_WEEKDAYS[local.weekday()]))
        hour = local.hour % 12 or 12
        items.append(_n(hour))
        if local.minute == 0:
            items.append(_p("oclock"))
        elif local.minute < 10:
            items += [_p("oh"), _n(local.minute)]
        else:
            items.append(_n(local.minute))
        items.append(_p("am" if local.hour < 12 else "pm"))
        return items


def _p(name: str) -> Media:
    return Media(MediaKind.SOUND, sound(name))


def _n(value: int) -> Media:
    return Media(MediaKind.NUMBER, str(value))


def _digits(e164: str) -> Media:
    return Media(MediaKind.DIGITS, e164.lstrip("+"))
