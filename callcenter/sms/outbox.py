"""What the outbox sender records about each message it claimed, and the group commit that writes it (service).

The sender works a claimed batch at a time: it reads what the send-time checks need for the whole
batch in one go, decides each message, then writes what happened. The writes go through
:class:`GroupCommit`: every sender task hands in its outcome and waits; one of them writes everything
handed in meanwhile in one transaction, so ten texts in flight cost one commit, not ten, and no task
goes on before its own outcome is stored.

A message is marked :class:`Handed` (committed) *before* the provider gets it. After a crash, a
``sending`` message that was never handed over is sent again safely; one that was handed over may
already be on the customer's phone, so it is not sent again blindly (see ``SmsEngine.send_due``).
The hand-over is stored only under the claim that made it (:attr:`Handed.claim`): a sender whose
claim ran out meanwhile, or whose text an opt-out cancelled, is told so and does not send.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from callcenter.errors import StoreUnavailableError
from callcenter.sms.records import MessageStatus


@dataclass(frozen=True, slots=True)
class Handed:
    """About to go to ``provider``; the claim now lasts until ``hold_until`` (the wait for a report).

    ``claim`` is the message's ``claimed_until`` as the sender's claim set it: the hand-over is stored
    only while that claim is still the message's (not expired and taken by another sender, not
    cancelled by an opt-out), so exactly one sender ever hands a text over.
    """

    message_id: str
    provider: str
    hold_until: datetime
    claim: datetime | None


@dataclass(frozen=True, slots=True)
class Sent:
    message_id: str
    provider: str
    provider_id: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Failed:
    """The provider refused it: queued again at ``retry_at``, or ``failed`` for good when ``None``."""

    message_id: str
    error: str
    retry_at: datetime | None


@dataclass(frozen=True, slots=True)
class Cancelled:
    message_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class Deferred:
    """Back to ``queued`` until ``until`` (quiet hours, the cap); not counted as an attempt.

    With ``claim`` (and ``hold``), only while the message's ``claimed_until`` is still one of them
    (the sender's own claim, or its own hand-over's hold): a sender giving texts back never takes one
    from another sender whose claim came after its own ran out.
    """

    message_id: str
    until: datetime
    reason: str
    claim: datetime | None = None
    hold: datetime | None = None


@dataclass(frozen=True, slots=True)
class Unknown:
    """Handed to a provider that cannot tell whether it sent it, and no report came: a person decides."""

    message_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class Report:
    """A provider's delivery report on one of our messages (``provider_id`` may be our own id)."""

    provider: str
    provider_id: str
    status: MessageStatus
    error: str = ""


Outcome = Handed | Sent | Failed | Cancelled | Deferred | Unknown

T = TypeVar("T")
R = TypeVar("R")


class GroupCommit(Generic[T, R]):
    """Coalesces concurrent :meth:`submit` calls into one ``write`` per round (see the module docstring).

    :param write: stores a sequence of items in one transaction and returns one result per item
        (``SmsStore.record_outcomes``, ``SmsStore.delivery_reports``).
    """

    def __init__(self, write: Callable[[Sequence[T]], Awaitable[Sequence[R]]]) -> None:
        self._write = write
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._flushing = False

    async def submit(self, item: T) -> R:
        """Return ``item``'s result once it is stored. :raises CallCenterError: when its round failed."""
        (result,) = await self.submit_all((item,))
        return result

    async def submit_all(self, items: Sequence[T]) -> list[R]:
        """Return once every one of ``items`` is stored (in the same round where possible)."""
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[R]] = []
        for item in items:
            futures.append(loop.create_future())
            self._pending.append((item, futures[-1]))
        if not self._flushing:
            await self._flush()
        return [await future for future in futures]

    async def _flush(self) -> None:
        self._flushing = True
        batch: list[tuple[T, asyncio.Future[R]]] = []
        try:
            # One turn of the event loop first: the tasks already woken with this one (a batch's
            # texts, the requests that just ended) hand in theirs too, and share this round.
            await asyncio.sleep(0)
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    results = await self._write([item for item, _ in batch])
                except Exception as exc:
                    _fail(batch, exc)
                else:
                    for (_, future), result in zip(batch, results, strict=True):
                        if not future.done():
                            future.set_result(result)
                batch = []
        except BaseException:
            # The flushing task was cancelled mid-write: the others must not wait for ever. Whether
            # the write committed is unknown; their messages' claims expire and are looked at again.
            _fail(batch + self._pending, StoreUnavailableError("the outbox write was interrupted"))
            self._pending = []
            raise
        finally:
            self._flushing = False


def _fail(batch: Sequence[tuple[object, asyncio.Future[R]]], error: Exception) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(error)
            future.exception()  # marks it retrieved: a cancelled submitter never awaits its own
