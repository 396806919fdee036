"""The callback record, its promise window and the log of its state changes (pure).

A :class:`Callback` is its own record, linked to the call (or voicemail, or message) that asked for
it. Its life is a state machine (:mod:`callcenter.callbacks.lifecycle`); every change is kept as a
:class:`CallbackChange` saying who or what caused it. The :class:`PromiseWindow` is what we told the
caller: for keep-my-place, from the request to the announced "by" time plus a grace; for a scheduled
callback, the booked slot.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from callcenter.model.vocabulary import ActorKind, AttemptResult, CallbackKind, CallbackState


@dataclass(frozen=True, slots=True)
class Actor:
    """Who or what caused a change: a kind and a name (``ivr``, a token label, ``due-policy``)."""

    kind: ActorKind
    name: str = ""

    def __str__(self) -> str:
        return f"{self.kind.value}:{self.name}" if self.name else self.kind.value


@dataclass(frozen=True, slots=True)
class PromiseWindow:
    """The window ``[start, end)`` we told the caller.

    :param early_ok: a first dial before ``start`` still keeps the promise (keep-my-place: the caller
        is waiting for us); never for a booked slot.
    """

    start: datetime
    end: datetime
    early_ok: bool = False

    def __post_init__(self) -> None:
        for name, value in (("start", self.start), ("end", self.end)):
            if value.tzinfo is None or value.utcoffset() is None:
                raise ValueError(f"promise window {name} must be timezone-aware")
        if self.end <= self.start:
            raise ValueError("a promise window ends after it starts")

    def keeps(self, first_dial_at: datetime) -> bool:
        """Whether a first dial starting at ``first_dial_at`` keeps this promise."""
        if first_dial_at >= self.end:
            return False
        return self.early_ok or first_dial_at >= self.start

    def passed(self, now: datetime) -> bool:
        return now >= self.end


@dataclass(frozen=True, kw_only=True, slots=True)
class Callback:
    """One callback owed to a caller.

    :param number: E.164; at most one open callback per (``queue``, ``number``).
    :param call_id: the call that asked for it (``None`` when it came from elsewhere: API, SMS).
    :param enqueued_at: keep-my-place: the caller's original enqueue time, its place in line.
    :param due_at: when the dispatcher may dial: the slot's start, the moment a kept place reached
        the head, or a retry time; ``None`` while a kept place is still in line.
    :param client_key: the idempotency key of the request that created it.
    :param first_dial_at: when the first dial to the customer started (measures the promise).
    """

    id: str
    queue: str
    number: str
    kind: CallbackKind
    state: CallbackState
    window: PromiseWindow
    requested_at: datetime
    updated_at: datetime
    call_id: str | None = None
    enqueued_at: datetime | None = None
    due_at: datetime | None = None
    client_key: str | None = None
    attempts: int = 0
    last_result: AttemptResult | None = None
    first_dial_at: datetime | None = None
    handle_s: float = 0.0

    @property
    def is_open(self) -> bool:
        return self.state.is_open

    @property
    def order_key(self) -> tuple[datetime, str]:
        """Place in line among live callers and other callbacks: original enqueue time, then id."""
        return (self.enqueued_at or self.requested_at, self.id)


@dataclass(frozen=True, kw_only=True, slots=True)
class CallbackChange:
    """One state change of a callback, with who or what caused it (append-only)."""

    callback_id: str
    at: datetime
    previous: CallbackState | None
    state: CallbackState
    actor: Actor
    reason: str = ""
    result: AttemptResult | None = None
