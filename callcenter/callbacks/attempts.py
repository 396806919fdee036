"""Callback attempts and sources: what each dial did, and where a callback came from (pure).

An :class:`Attempt` is one try to reach the customer: persisted (``dialing``, with its id) before any
originate, so a crash can never make the same attempt twice. Its channel ids are derived from its
id, which lets a dispatcher that restarts find what Asterisk still has of it. A :class:`SourceNote`
records where a request came from (the call, a voicemail, an SMS reply, an agent's follow-up); a
duplicate request for an open callback is merged into it as one more note.

The state changes themselves are :func:`callcenter.callbacks.lifecycle.move`; this module decides
which change an attempt's start and end make, with their cause.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

from callcenter.callbacks.lifecycle import move
from callcenter.errors import ValidationError
from callcenter.model.callbacks import Actor, Callback, CallbackChange
from callcenter.model.vocabulary import AttemptResult, CallbackState

_AGENT_LEG: Final = "cbag"
_CUSTOMER_LEG: Final = "cbcu"


class CallbackSource(StrEnum):
    """What asked for a callback."""

    CALL = "call"  # the IVR of a waiting caller (keep my place, a chosen slot)
    VOICEMAIL = "voicemail"
    SMS_REPLY = "sms_reply"  # a "1" (call me) by text
    SMS_TEXT = "sms_text"  # a text that is no keyword: a person reads the thread and acts
    AGENT_FOLLOW_UP = "agent_follow_up"
    API = "api"


class Leg(StrEnum):
    AGENT = "agent"
    CUSTOMER = "customer"


@dataclass(frozen=True, kw_only=True, slots=True)
class SourceNote:
    """Where a request came from: ``ref`` names the voicemail, message or call; ``merged`` when it
    was a duplicate attached to an open callback instead of creating one.

    :param owner_agent: a personal callback's agent (a follow-up), served by them until
        ``owner_until``, then by the queue.
    """

    callback_id: str
    source: CallbackSource
    at: datetime
    ref: str = ""
    note: str = ""
    merged: bool = False
    owner_agent: str | None = None
    owner_until: datetime | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Attempt:
    """One try to reach the customer of a callback.

    :param seq: 1 for the first attempt of the callback, then 2, ...
    :param fence: the dispatcher lease's fencing token the dial was recorded with.
    :param agent_tries: agents rung for this attempt (the next agent is tried on no answer).
    :param customer_dialled_at: when the originate to the customer was recorded (``None``: the
        customer was never dialled in this attempt, e.g. no agent answered).
    :param cause: why it ended, in words (a hang-up cause, "no key pressed").
    """

    id: str
    callback_id: str
    seq: int
    number: str
    fence: int
    started_at: datetime
    agent_id: str | None = None
    agent_tries: int = 0
    customer_dialled_at: datetime | None = None
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    result: AttemptResult | None = None
    cause: str = ""

    @property
    def open(self) -> bool:
        return self.ended_at is None

    @property
    def agent_channel_id(self) -> str:
        """The channel id of this attempt's current agent leg."""
        return agent_channel_id(self.id, max(self.agent_tries, 1))

    @property
    def customer_channel_id(self) -> str:
        return customer_channel_id(self.id)


def attempt_id(callback_id: str, seq: int) -> str:
    """The id of a callback's ``seq``-th attempt (the same id every time it is asked)."""
    return f"{callback_id}.a{seq}"


def agent_channel_id(attempt: str, try_no: int) -> str:
    return f"{_AGENT_LEG}-{try_no}-{attempt}"


def customer_channel_id(attempt: str) -> str:
    return f"{_CUSTOMER_LEG}-{attempt}"


def leg_of(channel_id: str) -> tuple[Leg, str] | None:
    """Which leg of which attempt a channel id names, or ``None`` for a channel not ours."""
    head, _, rest = channel_id.partition("-")
    if head == _CUSTOMER_LEG and rest:
        return Leg.CUSTOMER, rest
    if head == _AGENT_LEG:
        number, _, attempt = rest.partition("-")
        if number.isdigit() and attempt:
            return Leg.AGENT, attempt
    return None


def start_attempt(
    callback: Callback, *, at: datetime, fence: int, actor: Actor, reason: str = ""
) -> tuple[Callback, CallbackChange, Attempt]:
    """The move to ``dialing`` and the attempt it opens (persist both before any originate).

    :raises ConflictError: the callback is not due (not ``scheduled`` or ``retry_wait``).
    """
    moved, change = move(
        callback,
        CallbackState.DIALING,
        at=at,
        actor=actor,
        reason=reason or f"attempt {callback.attempts + 1}",
    )
    attempt = Attempt(
        id=attempt_id(callback.id, moved.attempts),
        callback_id=callback.id,
        seq=moved.attempts,
        number=callback.number,
        fence=fence,
        started_at=at,
    )
    return moved, change, attempt


def end_attempt(
    callback: Callback,
    attempt: Attempt,
    result: AttemptResult,
    *,
    at: datetime,
    actor: Actor,
    cause: str,
    retry_at: datetime | None,
) -> tuple[Callback, CallbackChange, Attempt]:
    """The change an attempt's end makes: ``connected``, ``retry_wait`` (at ``retry_at``), or
    ``failed`` when ``retry_at`` is ``None`` (attempts exhausted, or the number must not be called).

    :raises ConflictError: the callback is not ``dialing``.
    :raises ValidationError: the attempt is already over, or belongs to another callback.
    """
    if attempt.callback_id != callback.id or not attempt.open:
        raise ValidationError(f"attempt {attempt.id} is over or not of callback {callback.id}")
    ended = dataclasses.replace(attempt, ended_at=at, result=result, cause=cause)
    if result is AttemptResult.CONNECTED:
        ended = dataclasses.replace(ended, answered_at=attempt.answered_at or at)
        moved, change = move(callback, CallbackState.CONNECTED, at=at, actor=actor, reason=cause)
        return moved, change, ended
    if retry_at is None:
        moved, change = move(callback, CallbackState.FAILED, at=at, actor=actor, reason=cause, result=result)
        return moved, change, ended
    moved, change = move(
        callback,
        CallbackState.RETRY_WAIT,
        at=at,
        actor=actor,
        reason=f"{cause}; retry at {retry_at.isoformat()}",
        result=result,
        due_at=retry_at,
    )
    return moved, change, ended


def retry_delay(customer_dials: int, *, first_s: float, factor: float, max_s: float) -> timedelta:
    """Wait before the next attempt after ``customer_dials`` dials: ``first_s``, backing off by
    ``factor`` each time, never over ``max_s``."""
    exponent = max(customer_dials - 1, 0)
    return timedelta(seconds=min(first_s * factor**exponent, max_s))
