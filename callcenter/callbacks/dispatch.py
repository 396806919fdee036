"""What the callback dispatcher may dial now: quiet hours, order, expiry and late promises (pure).

Quiet hours are the customer's: the local time comes from the number (``phonenumbers`` maps it to
the time zones its range covers). A number that spans several zones (a mobile range, a toll-free
number) is dialled only when the hour is allowed in every one of them: the most restrictive zone
wins. A number whose zone is unknown uses the queue's zone.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from functools import lru_cache
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as phone_timezone

from callcenter.callbacks.line import line_key
from callcenter.errors import ValidationError
from callcenter.model.callbacks import Callback
from callcenter.model.vocabulary import CallbackKind, CallbackState

_UNKNOWN_ZONE: Final = "Etc/Unknown"
#: How far ahead :func:`quiet_until` looks for an allowed minute.
_LOOKAHEAD: Final = timedelta(hours=48)
_STEP: Final = timedelta(minutes=5)
DUE_STATES: Final = frozenset({CallbackState.SCHEDULED, CallbackState.RETRY_WAIT})


@dataclass(frozen=True, kw_only=True, slots=True)
class DispatchSettings:
    """How callbacks are dialled (``CALLCENTER_DISPATCH_*``).

    :param dial_from: earliest local time of the customer at which we dial.
    :param dial_until: we do not dial at or after this local time.
    :param max_attempts: customer dials before a callback ``failed``.
    :param retry_s: wait after the first failed dial; each further one waits ``retry_factor``
        times longer, at most ``retry_max_s``.
    :param expire_after_s: an open callback older than this (from its request) is ``expired``.
    :param late_alert_s: alert supervisors when a promise ends within this and nobody was dialled.
    :param confirm_s: how long the customer has to press 1 before the attempt is ``machine``.
    :param agent_ring_s: how long an agent's phone rings before the next agent is tried.
    :param customer_ring_s: how long the customer's phone rings (``no_answer`` after).
    :param max_agent_tries: agents tried for one attempt before it ends as ``error``.
    :param disposition_wait_s: after a connected call ends, how long the agent has to give its
        disposition before the callback is ``completed`` without one.
    """

    dial_from: time = time(8, 0)
    dial_until: time = time(21, 0)
    max_attempts: int = 3
    retry_s: float = 300.0
    retry_factor: float = 2.0
    retry_max_s: float = 3600.0
    expire_after_s: float = 2 * 86400.0
    late_alert_s: float = 120.0
    confirm_s: float = 8.0
    agent_ring_s: int = 15
    customer_ring_s: int = 30
    max_agent_tries: int = 3
    poll_s: float = 0.5
    disposition_wait_s: float = 120.0

    def __post_init__(self) -> None:
        if self.dial_until <= self.dial_from:
            raise ValidationError("dial_until must be after dial_from (the same local day)")
        if self.max_attempts < 1 or self.max_agent_tries < 1:
            raise ValidationError("max_attempts and max_agent_tries must be at least 1")
        if self.agent_ring_s < 1 or self.customer_ring_s < 1:
            raise ValidationError("ring times must be at least 1 s")
        for name in (
            "retry_s",
            "retry_max_s",
            "expire_after_s",
            "late_alert_s",
            "confirm_s",
            "poll_s",
            "disposition_wait_s",
        ):
            value = getattr(self, name)
            if not math.isfinite(value) or value <= 0.0:
                raise ValidationError(f"{name} must be above 0, not {value!r}")
        if not math.isfinite(self.retry_factor) or self.retry_factor < 1.0:
            raise ValidationError(f"retry_factor must be at least 1, not {self.retry_factor!r}")


@lru_cache(maxsize=4096)
def number_zones(number: str) -> tuple[str, ...]:
    """The IANA zones of an E.164 number's range (empty when unknown)."""
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return ()
    zones = tuple(z for z in phone_timezone.time_zones_for_number(parsed) if z != _UNKNOWN_ZONE)
    known = []
    for name in zones:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            continue
        known.append(name)
    return tuple(known)


def _allowed(zones: Sequence[ZoneInfo], at: datetime, settings: DispatchSettings) -> bool:
    for zone in zones:
        local = at.astimezone(zone).time()
        if not settings.dial_from <= local < settings.dial_until:
            return False
    return True


def quiet_until(
    number: str, now: datetime, settings: DispatchSettings, *, fallback_zone: str = "UTC"
) -> datetime | None:
    """``now`` when the customer may be dialled now; else the first allowed moment (to 5 minutes)
    within 48 hours, or ``None`` when the number's zones never share an allowed hour."""
    names = number_zones(number) or (fallback_zone,)
    zones = [ZoneInfo(n) for n in names]
    if _allowed(zones, now, settings):
        return now
    # Five-minute steps from the next whole five minutes: exact enough for "not before 8".
    probe = now.replace(second=0, microsecond=0)
    probe += timedelta(minutes=(5 - probe.minute % 5) % 5 or 5)
    end = now + _LOOKAHEAD
    while probe <= end:
        if _allowed(zones, probe, settings):
            return probe
        probe += _STEP
    return None


def dial_order(callbacks: Iterable[Callback], now: datetime) -> tuple[Callback, ...]:
    """Due callbacks (``scheduled``/``retry_wait`` with ``due_at <= now``) in the order to dial.

    A released kept place stands at its place in line (original enqueue time, then its call's id),
    whenever it was released; any other callback (a booked slot, a retry) at the time it became due.
    So kept places are dialled in line order, and a slot booked for 10:00 goes after callers who
    queued before 10:00 and before those who queued after.
    """
    due = [c for c in callbacks if c.state in DUE_STATES and c.due_at is not None and c.due_at <= now]
    return tuple(sorted(due, key=_dial_key))


def _dial_key(callback: Callback) -> tuple[datetime, str, str]:
    if callback.kind is CallbackKind.KEEP_PLACE and callback.state is CallbackState.SCHEDULED:
        at, name = line_key(callback)
        return (at, name, callback.id)
    assert callback.due_at is not None
    return (callback.due_at, callback.call_id or callback.id, callback.id)


def is_expired(callback: Callback, now: datetime, settings: DispatchSettings) -> bool:
    """An open, not connected callback older than ``expire_after_s``."""
    if not callback.is_open or callback.state in (CallbackState.CONNECTED, CallbackState.DIALING):
        return False
    return now - callback.requested_at >= timedelta(seconds=settings.expire_after_s)


def is_late(callback: Callback, now: datetime, settings: DispatchSettings) -> bool:
    """Nobody dialled yet and the promise ends within ``late_alert_s`` (or has ended)."""
    return promise_at_risk(callback, now, settings.late_alert_s)


def promise_at_risk(callback: Callback, now: datetime, lead_s: float) -> bool:
    """An open callback nobody has dialled yet whose promised window ends within ``lead_s`` of
    ``now``, or has ended: what the dispatcher alerts on and the wallboard lists."""
    if not callback.is_open or callback.first_dial_at is not None:
        return False
    return callback.window.end - now <= timedelta(seconds=lead_s)


def place_in_line(callback: Callback) -> datetime:
    """When the callback took its place in its queue's line: a kept place at the caller's enqueue
    time (released or not), any other when it fell due (else when it was asked for)."""
    if callback.kind is CallbackKind.KEEP_PLACE and callback.state in (
        CallbackState.REQUESTED,
        CallbackState.SCHEDULED,
    ):
        return line_key(callback)[0]
    return callback.due_at or callback.requested_at


def callbacks_ahead(callback: Callback, due: Iterable[Callback], now: datetime) -> int:
    """How many of the ``due`` callbacks of its queue are dialled before ``callback`` (dial order)."""
    at = place_in_line(callback)
    key = (at, callback.call_id or callback.id, callback.id)
    return sum(
        1
        for other in dial_order(due, now)
        if other.queue == callback.queue and other.id != callback.id and _dial_key(other) < key
    )


def expected_dial_at(
    by: datetime,
    number: str,
    settings: DispatchSettings,
    *,
    opens_at: datetime | None,
    fallback_zone: str = "UTC",
) -> datetime | None:
    """When a callback an agent is expected to take by ``by`` can be dialled: not before the queue
    opens (``opens_at``), nor in the customer's quiet hours; ``None`` when they never allow it."""
    at = max(by, opens_at) if opens_at is not None else by
    return quiet_until(number, at, settings, fallback_zone=fallback_zone)
