"""The console provider of the embedded demo: prints each text instead of sending it (edge).

Inbound texts come from a person playing the customer through ``POST /api/v1/sms/inbound/console``.
"""

from __future__ import annotations

import sys
from typing import TextIO

from callcenter.model.phone import mask_number
from callcenter.sms.ports import Outgoing


class ConsoleProvider:
    """Writes ``SMS to <number>: <text>`` lines to ``stream`` (stderr by default)."""

    name = "console"

    def __init__(self, stream: TextIO | None = None, *, mask: bool = False) -> None:
        self._stream = stream
        self._mask = mask
        self._sent: dict[str, str] = {}

    async def send(self, message: Outgoing) -> str:
        to = mask_number(message.to) if self._mask else message.to
        print(f"SMS to {to}: {message.text}", file=self._stream or sys.stderr, flush=True)
        provider_id = f"console-{message.message_id}"
        self._sent[message.message_id] = provider_id
        return provider_id

    async def sent_before(self, message_id: str) -> str | None:
        return self._sent.get(message_id)
