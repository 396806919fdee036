"""The callback state machine: which changes are allowed, and what each one records (pure).

::

    requested ──► scheduled ──► dialing ──► connected ──► completed | failed (wrong number)
        │             │            │              └──► retry_wait (the agent found nobody there)
        │             │            │
        │             │            ├──► retry_wait ──► dialing   (attempt ended: no_answer, busy,
        │             │            │         │                    machine or error)
        │             │            └──► failed ◄──┘               (attempts exhausted)
        └─────────────┴─── any open state ──► cancelled | expired | completed_inbound

A keep-my-place callback stays ``requested`` while its place is in line and becomes ``scheduled``
(due) when the place reaches the head; a booked slot goes ``requested -> scheduled`` at once. The
first move to ``dialing`` stamps ``first_dial_at``, which measures the promise. Every change returns
a :class:`~callcenter.model.callbacks.CallbackChange` naming its actor.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime
from typing import Final

from callcenter.errors import ConflictError, ValidationError
from callcenter.model.callbacks import Actor, Callback, CallbackChange, PromiseWindow
from callcenter.model.vocabulary import AttemptResult, CallbackKind, CallbackState

S = CallbackState

_CLOSING: Final = frozenset({S.CANCELLED, S.EXPIRED, S.COMPLETED_INBOUND})

#: Every allowed change, by the state it leaves.
TRANSITIONS: Final[Mapping[CallbackState, frozenset[CallbackState]]] = {
    S.REQUESTED: frozenset({S.SCHEDULED}) | _CLOSING,
    S.SCHEDULED: frozenset({S.DIALING}) | _CLOSING,
    S.DIALING: frozenset({S.CONNECTED, S.RETRY_WAIT, S.FAILED}) | _CLOSING,
    # failed: the agent found a wrong number; retry_wait: the agent found nobody on the line
    S.CONNECTED: frozenset({S.COMPLETED, S.FAILED, S.RETRY_WAIT}),
    S.RETRY_WAIT: frozenset({S.DIALING, S.FAILED}) | _CLOSING,
    S.COMPLETED: frozenset(),
    S.FAILED: frozenset(),
    S.CANCELLED: frozenset(),
    S.EXPIRED: frozenset(),
    S.COMPLETED_INBOUND: frozenset(),
}

# An attempt that did not connect carries its result into these states.
_NEEDS_RESULT: Final = frozenset({S.RETRY_WAIT})
_FAILED_ATTEMPTS: Final = frozenset(
    {AttemptResult.NO_ANSWER, AttemptResult.BUSY, AttemptResult.MACHINE, AttemptResult.ERROR}
)


def can_move(previous: CallbackState, state: CallbackState) -> bool:
    return state in TRANSITIONS[previous]


def new_callback(
    *,
    callback_id: str,
    queue: str,
    number: str,
    kind: CallbackKind,
    window: PromiseWindow,
    at: datetime,
    actor: Actor,
    call_id: str | None = None,
    enqueued_at: datetime | None = None,
    client_key: str | None = None,
    handle_s: float = 0.0,
    reason: str = "",
) -> tuple[Callback, CallbackChange]:
    """A callback just asked for (``requested``) and the change that records who asked.

    :raises ValidationError: a keep-my-place callback without its original enqueue time, or a
        scheduled one whose window is not a slot (``early_ok``).
    """
    if kind is CallbackKind.KEEP_PLACE and enqueued_at is None:
        raise ValidationError("a keep-my-place callback needs the caller's original enqueue time")
    if kind is CallbackKind.SCHEDULED and window.early_ok:
        raise ValidationError("a booked slot is never kept by an early call")
    callback = Callback(
        id=callback_id,
        queue=queue,
        number=number,
        kind=kind,
        state=S.REQUESTED,
        window=window,
        requested_at=at,
        updated_at=at,
        call_id=call_id,
        enqueued_at=enqueued_at,
        client_key=client_key,
        handle_s=handle_s,
    )
    change = CallbackChange(
        callback_id=callback_id, at=at, previous=None, state=S.REQUESTED, actor=actor, reason=reason
    )
    return callback, change


def move(
    callback: Callback,
    state: CallbackState,
    *,
    at: datetime,
    actor: Actor,
    reason: str = "",
    result: AttemptResult | None = None,
    due_at: datetime | None = None,
) -> tuple[Callback, CallbackChange]:
    """The callback after moving to ``state``, and the change that records it.

    ``scheduled`` and ``retry_wait`` set ``due_at`` (``at`` when not given); ``dialing`` counts an
    attempt and stamps ``first_dial_at`` the first time; ``retry_wait`` needs the attempt's
    ``result`` (not ``connected``), which ``failed`` may also carry.

    :raises ConflictError: the change is not allowed from the current state.
    :raises ValidationError: a missing or wrong ``result``.
    """
    previous = callback.state
    if not can_move(previous, state):
        raise ConflictError(f"callback {callback.id} is {previous.value}: it cannot become {state.value}")
    if state in _NEEDS_RESULT and result is None:
        raise ValidationError(f"{state.value} needs the result of the attempt")
    if result is not None and result not in _FAILED_ATTEMPTS:
        raise ValidationError(f"{result.value} is not the result of an attempt that did not connect")
    changes: dict[str, object] = {"state": state, "updated_at": max(at, callback.updated_at)}
    if state in (S.SCHEDULED, S.RETRY_WAIT):
        changes["due_at"] = due_at or at
    if state is S.DIALING:
        changes["attempts"] = callback.attempts + 1
        if callback.first_dial_at is None:
            changes["first_dial_at"] = at
    if result is not None:
        changes["last_result"] = result
    moved = dataclasses.replace(callback, **changes)  # type: ignore[arg-type]
    change = CallbackChange(
        callback_id=callback.id,
        at=at,
        previous=previous,
        state=state,
        actor=actor,
        reason=reason,
        result=result,
    )
    return moved, change
