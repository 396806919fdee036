"""``RecordingSmsGateway``: the SMS provider port as a phone network that keeps every text it took.

``fail_next`` scripts provider errors; ``crash_after_accept`` makes the next send take the message and
then kill the sender (a process dying between the provider's answer and our commit). ``knows_sent``
decides whether ``sent_before`` can tell, as some real providers cannot.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from callcenter.clock import Clock
from callcenter.sms.ports import Outgoing, ProviderError


class SenderCrashed(BaseException):
    """Stands for the process dying mid-send (not an Exception: nothing in the engine may catch it)."""


@dataclass
class Delivered:
    message_id: str
    to: str
    text: str
    at: datetime


@dataclass
class RecordingSmsGateway:
    clock: Clock
    name: str = "recording"
    knows_sent: bool = True
    delivered: list[Delivered] = field(default_factory=list)
    _failures: list[ProviderError] = field(default_factory=list)
    _crash_next: bool = False

    def fail_next(self, error: ProviderError, times: int = 1) -> None:
        self._failures.extend([error] * times)

    def crash_after_accept(self) -> None:
        self._crash_next = True

    def to(self, number: str) -> list[Delivered]:
        return [d for d in self.delivered if d.to == number]

    async def send(self, message: Outgoing) -> str:
        if self._failures:
            raise self._failures.pop(0)
        self.delivered.append(Delivered(message.message_id, message.to, message.text, self.clock.now()))
        if self._crash_next:
            self._crash_next = False
            raise SenderCrashed()
        return f"p-{message.message_id}"

    async def sent_before(self, message_id: str) -> str | None:
        if self.knows_sent and any(d.message_id == message_id for d in self.delivered):
            return f"p-{message_id}"
        return None
