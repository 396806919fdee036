"""The agent's callback worklist: what is waiting for me, claiming it, and saying how it went (service).

An agent sees the open callbacks of their queues and their own follow-ups (another agent's follow-up
only after its personal deadline: :func:`personal_owner`), due and overdue first, each with why it was
asked for (:func:`reason_of`), its promise and how early or late it is (:func:`promise_timing`), its
attempts, the caller's recent calls, and the voicemail and text messages behind it. A claim is a lock
that expires: while it holds, the dispatcher connects the callback to the claiming agent only (when it
is due and they are free).

Dispositions of a connected callback, each one transaction: ``resolved`` completes it; ``wrong_number``
fails it with that reason; ``no_answer`` (nobody was really on the line) gives the attempt that result
and applies the retry rules (:func:`next_retry`); ``follow_up`` completes it and books the agent's
follow-up at the time they chose, as a new ``scheduled`` callback with its own window, in the same
transaction (a crash between the two can neither lose the follow-up nor leave the call open).

A waiting callback the agent has claimed can be closed without a call (:meth:`Worklist.close`):
``answered_by_text`` or ``no_action`` cancel it as the agent, with the notes as the reason; that is
how a text that needs a person (reason ``sms_text``) is dealt with when calling is not the answer.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Final, Protocol

from callcenter.callbacks.attempts import Attempt, CallbackSource, SourceNote, retry_delay
from callcenter.callbacks.dispatch import DispatchSettings, quiet_until
from callcenter.callbacks.dispatch_ports import CallbackDetails, Claim, DispatchStore
from callcenter.callbacks.lifecycle import move
from callcenter.callbacks.reasons import Reason, reason_of
from callcenter.callbacks.service import CallbackService, state_event
from callcenter.callbacks.sources import CallbackSources
from callcenter.clock import Clock
from callcenter.errors import ConflictError, NotFoundError, ValidationError
from callcenter.model.callbacks import Actor, Callback, PromiseWindow
from callcenter.model.events import CallbackAttemptEnded, CallbackClaimChanged, DomainEvent
from callcenter.model.records import CallRecord
from callcenter.model.vocabulary import ActorKind, AttemptResult, CallbackState

logger = logging.getLogger(__name__)

S = CallbackState
_LISTED: Final = frozenset({S.REQUESTED, S.SCHEDULED, S.RETRY_WAIT, S.DIALING, S.CONNECTED})
_CLAIMABLE: Final = frozenset({S.REQUESTED, S.SCHEDULED, S.RETRY_WAIT})
_MAX_NOTES: Final = 500


class Disposition(StrEnum):
    """What the agent says of a connected callback."""

    RESOLVED = "resolved"  # -> completed
    WRONG_NUMBER = "wrong_number"  # -> failed, with that reason
    FOLLOW_UP = "follow_up"  # -> completed, and a follow-up of the agent's at the time they chose
    NO_ANSWER = "no_answer"  # nobody on the line: the attempt is no_answer, retry rules apply
    # Without a call, for a waiting callback the agent has claimed (:meth:`Worklist.close`):
    ANSWERED_BY_TEXT = "answered_by_text"  # -> cancelled by the agent: they answered by text
    NO_ACTION = "no_action"  # -> cancelled by the agent: nothing to do (a "thanks", a wrong thread)


#: Dispositions that close a waiting callback without calling.
WITHOUT_A_CALL: Final = frozenset({Disposition.ANSWERED_BY_TEXT, Disposition.NO_ACTION})
_CLOSING_REASONS: Final = {
    Disposition.ANSWERED_BY_TEXT: "answered by text",
    Disposition.NO_ACTION: "no action needed",
}


class Timing(StrEnum):
    EARLY = "early"  # before the promised window opens
    ON_TIME = "on_time"  # inside the window
    LATE = "late"  # the window has closed


@dataclass(frozen=True, slots=True)
class PromiseTiming:
    """Where ``now`` stands against the promise: ``seconds`` until it opens (early), left in it
    (on time) or since it closed (late)."""

    status: Timing
    seconds: float


def promise_timing(window: PromiseWindow, now: datetime) -> PromiseTiming:
    """Early, on time or late against the promised window (pure)."""
    if now < window.start:
        return PromiseTiming(Timing.EARLY, (window.start - now).total_seconds())
    if now < window.end:
        return PromiseTiming(Timing.ON_TIME, (window.end - now).total_seconds())
    return PromiseTiming(Timing.LATE, (now - window.end).total_seconds())


def personal_owner(sources: Sequence[SourceNote], now: datetime) -> str | None:
    """The agent a personal callback (an agent's follow-up) still belongs to at ``now``; ``None``
    once its deadline passed (it falls back to the queue) or when it was never personal (pure)."""
    for note in sources:
        if note.owner_agent is not None and (note.owner_until is None or now < note.owner_until):
            return note.owner_agent
    return None


def next_retry(
    number: str, attempts: Sequence[Attempt], now: datetime, settings: DispatchSettings
) -> datetime | None:
    """When a callback whose attempt did not reach anyone is dialled again, or ``None`` when its
    dials are used up (it fails); the dispatcher's retry rules: back-off, the customer's quiet hours
    (pure)."""
    dials = sum(1 for a in attempts if a.customer_dialled_at is not None)
    if dials >= settings.max_attempts or len(attempts) >= 3 * settings.max_attempts:
        return None
    s = settings
    at = now + retry_delay(max(dials, 1), first_s=s.retry_s, factor=s.retry_factor, max_s=s.retry_max_s)
    return quiet_until(number, at, s) or at


@dataclass(frozen=True, kw_only=True, slots=True)
class Disposed:
    callback: Callback
    follow_up: Callback | None = None


class AgentQueues(Protocol):
    async def queues_of(self, agent_id: str) -> tuple[str, ...]:
        """The queues the agent serves. :raises NotFoundError: unknown agent."""
        ...


class CallerHistory(Protocol):
    async def recent_calls_of(
        self, numbers: Collection[str], limit: int
    ) -> Mapping[str, Sequence[CallRecord]]:
        """Each caller's latest ``limit`` inbound calls, newest first (a number without calls may be
        left out), read at once."""
        ...


@dataclass(frozen=True, kw_only=True, slots=True)
class VoicemailNote:
    """A voicemail behind a callback: what the caller said, when transcribed.

    :param status: the voicemail's transcription status (``pending``, ``done``, ``failed``...).
    :param silent: ``True`` when no speech was found; ``None`` until analysed.
    """

    id: str
    recorded_at: datetime
    duration_s: float
    status: str
    transcript: str = ""
    silent: bool | None = None
    urgency: str = "normal"


@dataclass(frozen=True, kw_only=True, slots=True)
class TextLine:
    """One text message to or from the caller (``direction`` is ``in`` or ``out``)."""

    id: str
    at: datetime
    direction: str
    text: str
    status: str


class VoicemailReader(Protocol):
    async def voicemails(self, voicemail_ids: Collection[str]) -> Mapping[str, VoicemailNote]:
        """The voicemails with their transcripts, read at once; one gone (erased) is left out."""
        ...


class TextReader(Protocol):
    async def threads(self, numbers: Collection[str], limit: int) -> Mapping[str, Sequence[TextLine]]:
        """The latest ``limit`` text messages with each number, oldest first (a number without texts
        may be left out), read at once."""
        ...


@dataclass(frozen=True, kw_only=True, slots=True)
class WorkItem:
    """One callback on an agent's worklist."""

    callback: Callback
    due: bool
    overdue: bool
    reason: str
    kind: Reason
    timing: PromiseTiming
    sources: tuple[SourceNote, ...]
    attempts: tuple[Attempt, ...]
    claim: Claim | None
    history: tuple[CallRecord, ...]
    owner: str | None = None
    voicemails: tuple[VoicemailNote, ...] = ()
    texts: tuple[TextLine, ...] = ()


class Worklist:
    """:param claim_s: how long a claim holds without renewal.
    :param publish: where the changes it makes are announced (the event bus).
    :param dispatch: the dispatcher's retry rules (for ``no_answer``).
    :param callbacks: the callback service, which cancels (for :meth:`close`)."""

    def __init__(
        self,
        store: DispatchStore,
        agents: AgentQueues,
        history: CallerHistory,
        clock: Clock,
        *,
        sources: CallbackSources | None = None,
        claim_s: float = 300.0,
        history_limit: int = 5,
        voicemails: VoicemailReader | None = None,
        texts: TextReader | None = None,
        texts_limit: int = 20,
        publish: Callable[[DomainEvent], Awaitable[object]] | None = None,
        dispatch: DispatchSettings | None = None,
        callbacks: CallbackService | None = None,
    ) -> None:
        self._store = store
        self._callbacks = callbacks
        self._sources = sources
        self._agents = agents
        self._history = history
        self._clock = clock
        self._claim_s = claim_s
        self._history_limit = history_limit
        self._voicemails = voicemails
        self._texts = texts
        self._texts_limit = texts_limit
        self._publish = publish
        self._dispatch = dispatch or DispatchSettings()

    @property
    def claim_s(self) -> float:
        return self._claim_s

    async def queues_of(self, agent_id: str) -> tuple[str, ...]:
        """:raises NotFoundError: unknown agent."""
        return await self._agents.queues_of(agent_id)

    async def items(self, agent_id: str) -> tuple[WorkItem, ...]:
        """The agent's worklist: overdue first, then due, then by due time. :raises NotFoundError:"""
        return (await self.listing(agent_id))[0]

    async def listing(self, agent_id: str) -> tuple[tuple[WorkItem, ...], datetime | None]:
        """:meth:`items`, and the next moment another agent's follow-up falls back to the queue (it
        then appears on this list without any event saying so). :raises NotFoundError:

        Everything is read for the whole list at once: the callbacks' own details, then the callers'
        calls, the voicemails and the texts side by side (a query each, however long the list).
        """
        queues = await self._agents.queues_of(agent_id)
        now = self._clock.now()
        callbacks = [c for queue in queues for c in await self._store.in_state(queue, _LISTED)]
        details = await self._store.details([c.id for c in callbacks], now=now)
        shown: list[tuple[Callback, CallbackDetails, str | None]] = []
        reveal: datetime | None = None
        for callback in callbacks:
            detail = details.get(callback.id, CallbackDetails())
            owner = personal_owner(detail.sources, now)
            if owner is None or owner == agent_id:
                shown.append((callback, detail, owner))
                continue
            # Another agent's follow-up, still theirs: hidden until its deadline.
            until = [n.owner_until for n in detail.sources if n.owner_agent == owner and n.owner_until]
            if until and (reveal is None or min(until) < reveal):
                reveal = min(until)
        numbers = {callback.number for callback, _, _ in shown}
        refs = {callback.id: _voicemail_refs(detail.sources) for callback, detail, _ in shown}
        voicemail_ids = {ref for ids in refs.values() for ref in ids}
        history, voicemails, texts = await asyncio.gather(
            self._history.recent_calls_of(numbers, self._history_limit),
            self._voicemails.voicemails(voicemail_ids) if self._voicemails and voicemail_ids else _nothing(),
            self._texts.threads(numbers, self._texts_limit) if self._texts and numbers else _nothing(),
        )
        found = [
            self._item(
                callback,
                detail,
                owner,
                now,
                history=history.get(callback.number, ()),
                voicemails=tuple(voicemails[r] for r in refs[callback.id] if r in voicemails),
                texts=texts.get(callback.number, ()),
            )
            for callback, detail, owner in shown
        ]
        found.sort(key=lambda i: (not i.overdue, not i.due, i.callback.due_at or i.callback.window.end))
        return tuple(found), reveal

    def _item(
        self,
        callback: Callback,
        detail: CallbackDetails,
        owner: str | None,
        now: datetime,
        *,
        history: Sequence[CallRecord],
        voicemails: tuple[VoicemailNote, ...],
        texts: Sequence[TextLine],
    ) -> WorkItem:
        first = detail.first_change
        return WorkItem(
            callback=callback,
            due=callback.due_at is not None and callback.due_at <= now,
            overdue=callback.window.passed(now),
            reason=first.reason if first else "",
            kind=reason_of(callback, detail.sources, first),
            timing=promise_timing(callback.window, now),
            sources=detail.sources,
            attempts=detail.attempts,
            claim=detail.claim,
            history=tuple(history),
            owner=owner,
            voicemails=voicemails,
            texts=tuple(texts),
        )

    async def claim(self, callback_id: str, agent_id: str) -> Claim:
        """Claim a waiting callback for ``claim_s`` (a repeat by the same agent renews it).

        :raises NotFoundError: :raises ConflictError: it is being dialled, connected or closed, or it
            is another agent's follow-up. :raises ClaimedError: another agent holds it.
        :raises ValidationError: the agent does not serve its queue.
        """
        callback = await self._store.get(callback_id)
        if callback.state not in _CLAIMABLE:
            raise ConflictError(f"callback {callback_id} is {callback.state.value}: it cannot be claimed")
        if callback.queue not in await self._agents.queues_of(agent_id):
            raise ValidationError(f"agent {agent_id} does not serve queue {callback.queue!r}")
        now = self._clock.now()
        owner = personal_owner(await self._store.sources(callback_id), now)
        if owner is not None and owner != agent_id:
            raise ConflictError(f"callback {callback_id} is agent {owner}'s follow-up for now")
        held = await self._store.claim(
            callback_id, agent_id, until=now + timedelta(seconds=self._claim_s), now=now
        )
        await self._announce(
            CallbackClaimChanged(
                event_id=f"callback-claim:{callback_id}:{agent_id}:{held.until.isoformat()}",
                occurred_at=now,
                callback_id=callback_id,
                queue=callback.queue,
                agent_id=agent_id,
                until=held.until,
            )
        )
        return held

    async def release(self, callback_id: str, agent_id: str) -> None:
        """Give a claim back. :raises NotFoundError: the agent holds no claim on it."""
        if not await self._store.release_claim(callback_id, agent_id):
            raise NotFoundError(f"agent {agent_id} holds no claim on callback {callback_id}")
        callback = await self._store.get(callback_id)
        now = self._clock.now()
        await self._announce(
            CallbackClaimChanged(
                event_id=f"callback-claim:{callback_id}:{agent_id}:released:{now.isoformat()}",
                occurred_at=now,
                callback_id=callback_id,
                queue=callback.queue,
                agent_id=agent_id,
            )
        )

    async def dispose(
        self,
        callback_id: str,
        agent_id: str,
        disposition: Disposition,
        *,
        notes: str = "",
        follow_up_at: datetime | None = None,
    ) -> Disposed:
        """The agent's disposition of a connected callback, with notes (kept as the change's reason).

        :raises NotFoundError: :raises ConflictError: the callback is not connected (e.g. already
            completed after ``disposition_wait_s``), or the agent was not on its call.
        :raises ValidationError: a follow-up without a time (or at a past time), or a time given
            with another outcome.
        """
        if disposition in WITHOUT_A_CALL:
            if follow_up_at is not None:
                raise ValidationError(
                    f"follow_up_at goes with the outcome follow_up, not {disposition.value}"
                )
            return await self.close(callback_id, agent_id, disposition, notes=notes)
        if disposition is Disposition.FOLLOW_UP and follow_up_at is None:
            raise ValidationError("a follow-up needs follow_up_at (ISO 8601 with an offset)")
        if disposition is not Disposition.FOLLOW_UP and follow_up_at is not None:
            raise ValidationError(f"follow_up_at goes with the outcome follow_up, not {disposition.value}")
        callback = await self._store.get(callback_id)
        if callback.state is not S.CONNECTED:
            raise ConflictError(
                f"callback {callback_id} is {callback.state.value}: only a connected call takes a disposition"
            )
        attempts = await self._store.attempts(callback_id)
        if not attempts or attempts[-1].agent_id != agent_id:
            raise ConflictError(f"agent {agent_id} was not on the call of callback {callback_id}")
        now = self._clock.now()
        actor = Actor(ActorKind.AGENT, agent_id)
        notes = notes.strip()[:_MAX_NOTES]
        if disposition is Disposition.NO_ANSWER:
            return await self._no_answer(callback, attempts, actor, notes, now)
        reason = {
            Disposition.RESOLVED: "resolved",
            Disposition.WRONG_NUMBER: "wrong number",
            Disposition.FOLLOW_UP: f"follow up at {follow_up_at.isoformat() if follow_up_at else ''}",
        }[disposition]
        state = S.FAILED if disposition is Disposition.WRONG_NUMBER else S.COMPLETED
        moved, change = move(
            callback, state, at=now, actor=actor, reason=f"{reason}: {notes}" if notes else reason
        )
        if disposition is Disposition.FOLLOW_UP and follow_up_at is not None:
            if self._sources is None:
                raise ValidationError("follow-ups are not available in this process")
            follow_up, changes, source = self._sources.draft_follow_up(
                agent_id, callback.queue, callback.number, at=follow_up_at, note=notes
            )
            await self._store.close_with_follow_up(moved, change, follow_up, changes, source)
            await self._announce(state_event(moved, change))
            for made in changes:
                await self._announce(state_event(follow_up, made))
            return Disposed(callback=moved, follow_up=await self._store.get(follow_up.id))
        stored = await self._store.move(moved, change)
        await self._announce(state_event(stored, change))
        return Disposed(callback=stored)

    async def close(
        self, callback_id: str, agent_id: str, disposition: Disposition, *, notes: str = ""
    ) -> Disposed:
        """Close a waiting callback without calling (``answered_by_text``, ``no_action``): cancelled by
        the agent, the notes kept in the reason. The agent must hold its claim, so two agents never
        act on one item. A repeat on a callback this agent already closed this way returns it.

        :raises NotFoundError: :raises ConflictError: it is being dialled, connected or closed, or the
            agent does not hold its claim. :raises ValidationError: another disposition.
        """
        if disposition not in WITHOUT_A_CALL:
            raise ValidationError(f"{disposition.value} needs a connected call: use dispose")
        if self._callbacks is None:
            raise ValidationError("closing without a call is not available in this process")
        callback = await self._store.get(callback_id)
        reason = _CLOSING_REASONS[disposition]
        notes = notes.strip()[:_MAX_NOTES]
        if callback.state is S.CANCELLED:
            last = (await self._callbacks.get(callback_id)).changes[-1]
            if last.actor == Actor(ActorKind.AGENT, agent_id) and last.reason.startswith(reason):
                return Disposed(callback=callback)
        if callback.state not in _CLAIMABLE:
            raise ConflictError(
                f"callback {callback_id} is {callback.state.value}: only a waiting callback closes without a call"
            )
        now = self._clock.now()
        claim = (await self._store.details([callback_id], now=now)).get(callback_id, CallbackDetails()).claim
        if claim is None or claim.agent_id != agent_id or claim.until <= now:
            raise ConflictError(f"claim callback {callback_id} first: agent {agent_id} does not hold it")
        closed = await self._callbacks.cancel(
            callback_id,
            actor=Actor(ActorKind.AGENT, agent_id),
            reason=f"{reason}: {notes}" if notes else reason,
        )
        await self._store.release_claim(callback_id, agent_id)
        return Disposed(callback=closed)

    async def _no_answer(
        self, callback: Callback, attempts: tuple[Attempt, ...], actor: Actor, notes: str, now: datetime
    ) -> Disposed:
        """Nobody was on the line after all: the attempt ends ``no_answer`` and the retry rules apply."""
        last = attempts[-1]
        cause = f"agent {actor.name}: nobody on the line" + (f" ({notes})" if notes else "")
        amended = dataclasses.replace(last, result=AttemptResult.NO_ANSWER, cause=cause)
        retry_at = next_retry(callback.number, attempts, now, self._dispatch)
        if retry_at is None:
            moved, change = move(
                callback,
                S.FAILED,
                at=now,
                actor=actor,
                reason=f"{cause}; {self._dispatch.max_attempts} dials made",
                result=AttemptResult.NO_ANSWER,
            )
        else:
            moved, change = move(
                callback,
                S.RETRY_WAIT,
                at=now,
                actor=actor,
                reason=f"{cause}; retry at {retry_at.isoformat()}",
                result=AttemptResult.NO_ANSWER,
                due_at=retry_at,
            )
        await self._store.amend_attempt(moved, change, amended)
        await self._announce(
            CallbackAttemptEnded(
                event_id=f"callback-attempt:{last.id}:amended",
                occurred_at=now,
                callback_id=callback.id,
                attempt_id=last.id,
                queue=callback.queue,
                number=callback.number,
                seq=last.seq,
                result=AttemptResult.NO_ANSWER,
                cause=cause,
                agent_id=last.agent_id,
            )
        )
        await self._announce(state_event(moved, change))
        return Disposed(callback=moved)

    async def _announce(self, event: DomainEvent) -> None:
        """Publish after the store write; a bus failure does not undo what the agent did."""
        if self._publish is None:
            return
        try:
            await self._publish(event)
        except Exception:  # the store holds the truth; the pages refresh on their next event
            logger.exception("worklist: %s %s not published", event.event_type, event.event_id)


def _voicemail_refs(sources: Sequence[SourceNote]) -> list[str]:
    """The voicemails behind a callback, each once, in the order its sources name them."""
    return list(dict.fromkeys(s.ref for s in sources if s.source is CallbackSource.VOICEMAIL and s.ref))


async def _nothing() -> Mapping[str, Any]:
    return {}
