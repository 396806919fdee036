"""Promise windows and whether they were kept (pure).

A keep-my-place promise runs from the request to the announced "by" time plus a grace (default two
minutes) and an early call keeps it: the caller is waiting for us. A booked slot's promise is the slot,
and only a first dial inside it keeps it. The "by" time is rounded up to whole minutes on the clock
(five by default), so what the caller hears is a time they can remember, never a falsely precise one.

The kept rate counts every callback whose window has passed, except those the customer cancelled and
those closed as ``completed_inbound`` (the caller called in and was answered meanwhile).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

from callcenter.errors import ValidationError
from callcenter.model.callbacks import Callback, CallbackChange, PromiseWindow
from callcenter.model.vocabulary import ActorKind, CallbackState

#: The grace after an announced "by" time (DESIGN.md: default 2 minutes).
DEFAULT_GRACE_S: Final = 120.0


class PromiseOutcome(StrEnum):
    KEPT = "kept"
    BROKEN = "broken"
    PENDING = "pending"  # the window has not passed yet
    EXCLUDED = "excluded"  # cancelled by the customer, or completed inbound


def announced_by(now: datetime, wait_s: float, *, round_min: int = 5) -> datetime:
    """The "by" time to announce for a wait of ``wait_s`` from ``now``: rounded up to ``round_min``.

    :raises ValidationError: for a wait that is negative or not finite, or a bad rounding.
    """
    if not math.isfinite(wait_s) or wait_s < 0.0:
        raise ValidationError(f"a wait to announce must be a finite number of seconds, not {wait_s!r}")
    if not 1 <= round_min <= 60 or 60 % round_min:
        raise ValidationError(f"round_min must divide an hour, not {round_min!r}")
    target = now + timedelta(seconds=wait_s)
    step = round_min * 60
    # Whole-minute steps on the epoch are whole minutes on every clock (offsets are whole minutes).
    epoch_s = target.timestamp()
    rounded = math.ceil(epoch_s / step) * step
    return target + timedelta(seconds=rounded - epoch_s)


def keep_place_window(
    requested_at: datetime, by: datetime, *, grace_s: float = DEFAULT_GRACE_S
) -> PromiseWindow:
    """From the request to ``by`` plus the grace; an early call keeps it."""
    if grace_s < 0.0 or not math.isfinite(grace_s):
        raise ValidationError(f"grace_s must be at least 0, not {grace_s!r}")
    return PromiseWindow(start=requested_at, end=by + timedelta(seconds=grace_s), early_ok=True)


def slot_window(start: datetime, end: datetime) -> PromiseWindow:
    """A booked slot: only a first dial inside it keeps it."""
    return PromiseWindow(start=start, end=end, early_ok=False)


def cancelled_by_customer(changes: Iterable[CallbackChange]) -> bool:
    """Whether the change that cancelled the callback came from the customer."""
    return any(c.state is CallbackState.CANCELLED and c.actor.kind is ActorKind.CUSTOMER for c in changes)


def promise_outcome(callback: Callback, now: datetime, *, by_customer: bool = False) -> PromiseOutcome:
    """Whether ``callback``'s promise was kept, as known at ``now``.

    :param by_customer: the callback was cancelled by the customer (see :func:`cancelled_by_customer`).
    """
    if callback.state is CallbackState.COMPLETED_INBOUND:
        return PromiseOutcome.EXCLUDED
    if callback.state is CallbackState.CANCELLED and by_customer:
        return PromiseOutcome.EXCLUDED
    if not callback.window.passed(now):
        return PromiseOutcome.PENDING
    if callback.first_dial_at is not None and callback.window.keeps(callback.first_dial_at):
        return PromiseOutcome.KEPT
    return PromiseOutcome.BROKEN


@dataclass(frozen=True, slots=True)
class KeptRate:
    """Promises counted (window passed, not excluded) and kept; ``rate`` is ``None`` with none counted."""

    counted: int
    kept: int

    @property
    def rate(self) -> float | None:
        return self.kept / self.counted if self.counted else None


def kept_rate(outcomes: Iterable[PromiseOutcome]) -> KeptRate:
    counted = kept = 0
    for outcome in outcomes:
        if outcome in (PromiseOutcome.KEPT, PromiseOutcome.BROKEN):
            counted += 1
            kept += outcome is PromiseOutcome.KEPT
    return KeptRate(counted=counted, kept=kept)
