"""Follow-up figures folded from events: callbacks and their promises, voicemails, SMS (pure).

:class:`FollowUps` is fed ``CallbackStateChanged``, ``VoicemailRecorded``/``Transcribed``/``Silent``,
``SmsStatusChanged`` and ``SmsConsentChanged`` and answers the follow-up figures of
``docs/metrics.md`` per queue at ``now``. Whether a promise was kept is not decided here: each
callback is rebuilt as the :class:`~callcenter.model.callbacks.Callback` the events describe and
handed to :func:`~callcenter.callbacks.promise.promise_outcome`, the callbacks' own definition, which
:func:`promise_counts` also applies to stored callbacks (the historical side).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Final

from callcenter.callbacks.dispatch import promise_at_risk
from callcenter.callbacks.promise import kept_rate, promise_outcome
from callcenter.model.callbacks import Callback, PromiseWindow
from callcenter.model.events import (
    CallbackPromiseAtRisk,
    CallbackStateChanged,
    CallEnded,
    CallLeftQueue,
    DomainEvent,
    SmsConsentChanged,
    SmsStatusChanged,
    VoicemailRecorded,
    VoicemailSilent,
    VoicemailTranscribed,
    WaitAnnounced,
)
from callcenter.model.vocabulary import ActorKind, CallbackKind, CallbackState, VoicemailStatus
from callcenter.sms.ports import SmsDay
from callcenter.voicemail.records import Voicemail

Figures = dict[str, float | int | None]

#: The states a callback waits in for its next dial (it is "due" from its due time on).
_WAITING_FOR_DIAL: Final = frozenset(
    {CallbackState.REQUESTED, CallbackState.SCHEDULED, CallbackState.RETRY_WAIT}
)

#: The names of the follow-up figures, in the dictionary's order.
FOLLOW_UP_NAMES: Final = (
    "callbacks_pending",
    "callbacks_due_15m",
    "callbacks_due_60m",
    "callbacks_overdue",
    "promises_counted",
    "promises_kept",
    "promise_kept_rate",
    "voicemails_untranscribed",
    "voicemails_awaiting_callback",
    "sms_sent",
    "sms_delivered",
    "sms_opted_out",
    "wait_estimates_scored",
    "wait_estimate_rmse_s",
    "wait_estimate_bias_s",
    "wait_estimate_p80_coverage",
)


@dataclass(frozen=True, kw_only=True, slots=True)
class Announced:
    """A wait told to a waiting caller at ``at``: the mean and the 80th percentile."""

    queue: str
    at: datetime
    mean_s: float
    p80_s: float


@dataclass(frozen=True, kw_only=True, slots=True)
class Scored:
    """An announced wait scored when its caller was answered: error = announced mean - actual remaining."""

    queue: str
    answered_at: datetime
    error_s: float
    within_p80: bool


def score(announced: Announced, answered_at: datetime) -> Scored:
    """The same scoring as ``capacity.accuracy``: actual = answer - prediction time, never below 0."""
    actual = max(0.0, (answered_at - announced.at).total_seconds())
    return Scored(
        queue=announced.queue,
        answered_at=answered_at,
        error_s=announced.mean_s - actual,
        within_p80=actual <= announced.p80_s,
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class TrackedCallback:
    """A callback as its events describe it: the record :func:`promise_outcome` judges, and who cancelled."""

    callback: Callback
    by_customer: bool = False


@dataclass(frozen=True, kw_only=True, slots=True)
class AtRisk:
    """A promise about to be broken (or broken) with nobody dialled yet: a line of the wallboard's
    alert list. ``expected_by``: when the dispatcher now expects to dial it (its latest alert)."""

    callback_id: str
    queue: str
    number: str
    window_end: datetime
    expected_by: datetime | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class TrackedVoicemail:
    queue: str
    caller: str
    recorded_at: datetime
    revision: int
    transcribed: bool = False


def promise_counts(callbacks: Iterable[TrackedCallback], now: datetime) -> tuple[int, int]:
    """(counted, kept) promises of ``callbacks`` at ``now``, by the callbacks' own definition."""
    rate = kept_rate(promise_outcome(t.callback, now, by_customer=t.by_customer) for t in callbacks)
    return rate.counted, rate.kept


def due_at(callback: Callback) -> datetime:
    """When a callback waiting for a dial may be dialled: its due time, else its window's start.

    A keep-my-place callback has no due time of its own until its place comes up; it is owed from
    the request (the start of its window), as the caller is waiting for us.
    """
    return callback.due_at or callback.window.start


def callback_from_event(event: CallbackStateChanged, known: Callback | None) -> Callback:
    """The callback after ``event``: ``first_dial_at`` is the time of the first ``dialing`` seen."""
    early_ok = event.early_ok if event.early_ok is not None else event.kind is CallbackKind.KEEP_PLACE
    first_dial = known.first_dial_at if known is not None else None
    if first_dial is None and event.state is CallbackState.DIALING:
        first_dial = event.occurred_at
    return Callback(
        id=event.callback_id,
        queue=event.queue,
        number=event.number,
        kind=event.kind,
        state=event.state,
        window=PromiseWindow(start=event.window_start, end=event.window_end, early_ok=early_ok),
        requested_at=known.requested_at if known is not None else event.occurred_at,
        updated_at=event.occurred_at,
        call_id=event.call_id,
        enqueued_at=event.enqueued_at,
        due_at=event.due_at,
        attempts=event.attempts,
        last_result=event.result,
        first_dial_at=first_dial,
    )


@dataclass(slots=True)
class FollowUps:
    """Callbacks, voicemails and SMS seen today (see the module docstring).

    :param late_alert_s: a promise is listed as at risk from this long before its window ends (the
        dispatcher's ``CALLCENTER_DISPATCH_LATE_ALERT_S``), as long as nobody has dialled it.
    """

    late_alert_s: float = 120.0
    callbacks: dict[str, TrackedCallback] = field(default_factory=dict)
    #: The dispatcher's latest expected dial time per callback at risk (``CallbackPromiseAtRisk``).
    expected: dict[str, datetime | None] = field(default_factory=dict)
    voicemails: dict[str, TrackedVoicemail] = field(default_factory=dict)
    #: SMS events of the day: (message id, status) -> (queue, at); opt-outs: event id -> at.
    sms: dict[tuple[str, str], datetime] = field(default_factory=dict)
    opt_outs: dict[str, datetime] = field(default_factory=dict)
    #: Announced waits of callers still waiting, by call; scored ones of today.
    announced: dict[str, dict[datetime, Announced]] = field(default_factory=dict)
    scored: list[Scored] = field(default_factory=list)

    def apply(self, event: DomainEvent) -> bool:
        """Fold one event; ``True`` when it changed a figure's inputs. Repeats and stale events change nothing."""
        match event:
            case CallbackStateChanged():
                return self._callback(event)
            case CallbackPromiseAtRisk():
                if (
                    event.callback_id in self.expected
                    and self.expected[event.callback_id] == event.expected_by
                ):
                    return False
                self.expected[event.callback_id] = event.expected_by
                return True
            case VoicemailRecorded() | VoicemailTranscribed() | VoicemailSilent():
                return self._voicemail(event)
            case WaitAnnounced() | CallLeftQueue() | CallEnded():
                return self._wait(event)
            case SmsStatusChanged():
                key = (event.message_id, event.status)
                if key in self.sms:
                    return False
                self.sms[key] = event.occurred_at
                return True
            case SmsConsentChanged():
                if event.action != "opt_out" or event.event_id in self.opt_outs:
                    return False
                self.opt_outs[event.event_id] = event.occurred_at
                return True
        return False

    def _voicemail(self, event: VoicemailRecorded | VoicemailTranscribed | VoicemailSilent) -> bool:
        known = self.voicemails.get(event.voicemail_id)
        if isinstance(event, VoicemailRecorded):
            if known is not None and known.revision >= event.revision:
                return False
            self.voicemails[event.voicemail_id] = TrackedVoicemail(
                queue=event.queue or "",
                caller=event.caller,
                recorded_at=known.recorded_at if known is not None else event.occurred_at,
                revision=event.revision,
            )
            return True
        if known is None:
            known = TrackedVoicemail(
                queue=event.queue or "",
                caller=event.caller,
                recorded_at=event.occurred_at,
                revision=event.revision,
            )
        elif known.revision > event.revision or known.transcribed:
            return False
        self.voicemails[event.voicemail_id] = replace(known, revision=event.revision, transcribed=True)
        return True

    def _wait(self, event: WaitAnnounced | CallLeftQueue | CallEnded) -> bool:
        """Announced waits kept per waiting caller, scored when an agent takes the call (the answer)."""
        if isinstance(event, WaitAnnounced):
            told = self.announced.setdefault(event.call_id, {})
            if event.occurred_at not in told:
                told[event.occurred_at] = Announced(
                    queue=event.queue, at=event.occurred_at, mean_s=event.mean_s, p80_s=event.p80_s
                )
            return False  # nothing shown changes until the caller is answered
        told_waits = self.announced.pop(event.call_id, {})
        if not isinstance(event, CallLeftQueue) or event.agent_id is None or not told_waits:
            return False  # left unanswered, or ended without an answer from the queue: unscored
        self.scored.extend(score(a, event.occurred_at) for a in told_waits.values())
        return True

    def seed(self, callback: Callback, *, by_customer: bool = False) -> None:
        """Know a stored callback (start-up); later events about it update it as usual."""
        self.callbacks[callback.id] = TrackedCallback(callback=callback, by_customer=by_customer)

    def seed_sms(self, day: SmsDay) -> None:
        """Start the SMS figures from the store (what the events of the day would have told)."""
        for message_id, at in day.sent:
            self.sms.setdefault((message_id, "sent"), at)
        for message_id, at in day.delivered:
            self.sms.setdefault((message_id, "delivered"), at)
        for event_id, at in day.opt_outs:
            self.opt_outs.setdefault(event_id, at)

    def seed_voicemail(self, voicemail: Voicemail) -> None:
        """Know a stored voicemail (start-up). One that failed for good has no transcript either: no
        event tells the live board of that failure, so both sides count it as untranscribed."""
        self.voicemails[voicemail.id] = TrackedVoicemail(
            queue=voicemail.queue or "",
            caller=voicemail.caller,
            recorded_at=voicemail.recorded_at,
            revision=voicemail.revision,
            transcribed=voicemail.status in (VoicemailStatus.TRANSCRIBED, VoicemailStatus.SILENT),
        )

    def _callback(self, event: CallbackStateChanged) -> bool:
        known = self.callbacks.get(event.callback_id)
        if known is not None:
            last = known.callback
            if (last.updated_at, last.attempts) > (event.occurred_at, event.attempts):
                return False  # an older change arriving late
            same = (last.state, last.attempts, last.due_at, last.window.end)
            if same == (event.state, event.attempts, event.due_at, event.window_end):
                return False  # a repeat
        callback = callback_from_event(event, known.callback if known is not None else None)
        by_customer = event.state is CallbackState.CANCELLED and event.actor_kind is ActorKind.CUSTOMER
        self.callbacks[event.callback_id] = TrackedCallback(callback=callback, by_customer=by_customer)
        return True

    def forget_before(self, start: datetime) -> None:
        """Drop what no longer counts today: closed callbacks whose window ended and voicemails
        transcribed before ``start``, SMS events before it. Open callbacks and waiting voicemails stay."""
        self.callbacks = {
            k: t for k, t in self.callbacks.items() if t.callback.is_open or t.callback.window.end >= start
        }
        self.expected = {k: at for k, at in self.expected.items() if k in self.callbacks}
        self.voicemails = {
            k: v
            for k, v in self.voicemails.items()
            if not v.transcribed or v.recorded_at >= start or self._open_callback(v.queue, v.caller)
        }
        self.sms = {k: at for k, at in self.sms.items() if at >= start}
        self.opt_outs = {k: at for k, at in self.opt_outs.items() if at >= start}
        self.scored = [s for s in self.scored if s.answered_at >= start]
        self.announced = {
            c: told for c, told in self.announced.items() if max(told) >= start - timedelta(days=1)
        }

    def at_risk(self, now: datetime) -> tuple[AtRisk, ...]:
        """The promises at risk at ``now`` (every queue), the soonest broken first."""
        listed = (
            t.callback for t in self.callbacks.values() if promise_at_risk(t.callback, now, self.late_alert_s)
        )
        return tuple(
            AtRisk(
                callback_id=c.id,
                queue=c.queue,
                number=c.number,
                window_end=c.window.end,
                expected_by=self.expected.get(c.id),
            )
            for c in sorted(listed, key=lambda c: (c.window.end, c.id))
        )

    def _open_callback(self, queue: str, number: str) -> bool:
        return any(
            t.callback.is_open and t.callback.number == number and (not queue or t.callback.queue == queue)
            for t in self.callbacks.values()
        )

    def figures(self, queue: str | None, now: datetime, since: datetime) -> Figures:
        """The follow-up figures of ``queue`` (``None``: overall) at ``now``; today starts at ``since``."""
        tracked = [t for t in self.callbacks.values() if queue is None or t.callback.queue == queue]
        open_ = [t.callback for t in tracked if t.callback.is_open]
        waiting = [c for c in open_ if c.state in _WAITING_FOR_DIAL]
        # The kept rate of today: promises whose window ended today (and the open ones, which count
        # once their window passes).
        today = [t for t in tracked if t.callback.window.end >= since]
        counted, kept = promise_counts(today, now)
        voicemails = [v for v in self.voicemails.values() if queue is None or v.queue == queue]
        open_numbers = {(c.queue, c.number) for c in open_}
        awaiting = sum(
            1
            for v in voicemails
            if (v.queue, v.caller) in open_numbers
            or (not v.queue and any(n == v.caller for _, n in open_numbers))
        )
        sms: Figures = {"sms_sent": None, "sms_delivered": None, "sms_opted_out": None}
        if queue is None:  # messages and consent belong to numbers, not queues
            sms = {
                "sms_sent": sum(1 for (_, s), at in self.sms.items() if s == "sent" and at >= since),
                "sms_delivered": sum(
                    1 for (_, s), at in self.sms.items() if s == "delivered" and at >= since
                ),
                "sms_opted_out": sum(1 for at in self.opt_outs.values() if at >= since),
            }
        scored = [s for s in self.scored if s.answered_at >= since and (queue is None or s.queue == queue)]
        return {
            **_accuracy(scored),
            "callbacks_pending": len(open_),
            "callbacks_due_15m": sum(1 for c in waiting if due_at(c) <= now + timedelta(minutes=15)),
            "callbacks_due_60m": sum(1 for c in waiting if due_at(c) <= now + timedelta(minutes=60)),
            "callbacks_overdue": sum(1 for c in open_ if c.first_dial_at is None and c.window.passed(now)),
            "promises_counted": counted,
            "promises_kept": kept,
            "promise_kept_rate": round(kept / counted, 4) if counted else None,
            "voicemails_untranscribed": sum(1 for v in voicemails if not v.transcribed),
            "voicemails_awaiting_callback": awaiting,
            **sms,
        }


def _accuracy(scored: list[Scored]) -> Figures:
    n = len(scored)
    if n == 0:
        return {
            "wait_estimates_scored": 0,
            "wait_estimate_rmse_s": None,
            "wait_estimate_bias_s": None,
            "wait_estimate_p80_coverage": None,
        }
    return {
        "wait_estimates_scored": n,
        "wait_estimate_rmse_s": round(math.sqrt(sum(s.error_s**2 for s in scored) / n), 1),
        "wait_estimate_bias_s": round(sum(s.error_s for s in scored) / n, 1),
        "wait_estimate_p80_coverage": round(sum(1 for s in scored if s.within_p80) / n, 4),
    }
