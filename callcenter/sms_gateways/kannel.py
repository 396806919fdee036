"""Kannel over HTTP: ``sendsms`` out, ``sms-service`` get-url in, delivery reports by ``dlr-url`` (edge).

Kannel's callbacks cannot carry headers, so they carry a shared secret in their URL and are accepted
only from allowed addresses (:func:`callcenter.api.sms.kannel_inbound`). Our message id travels in the
``dlr-url``; Kannel's ``sendsms`` answers no id of its own, so ours is the provider id too.

``sendsms`` answers 202 ``0: Accepted for delivery`` (or ``3: Queued for later delivery``); 4xx answers
mean the request itself is wrong (bad credentials, missing ``to``) and are not retried; 5xx and
connection errors are.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import urlencode

import aiohttp

from callcenter.sms.encoding import Encoding, encoding_of
from callcenter.sms.ports import Outgoing, ProviderError

#: Kannel's dlr-mask bits: delivered 1, undeliverable 2, buffered 4, SMSC accepted 8, SMSC rejected 16.
DLR_MASK: Final = 31
#: Placeholders Kannel fills in the dlr-url (``%d`` the report type, ``%A`` the SMSC's answer).
DLR_QUERY: Final = "type=%d&answer=%A"
#: Placeholders for the get-url of an ``sms-service`` (``%p`` sender, ``%P`` receiver, ``%a`` the
#: words of the text, ``%I`` Kannel's message id).
INBOUND_QUERY: Final = "from=%p&to=%P&text=%a&id=%I"


@dataclass(frozen=True, kw_only=True, slots=True)
class KannelSettings:
    """Where ``sendsms`` listens and how our callbacks are reached.

    :param callback_base: our API as Kannel reaches it, e.g. ``http://127.0.0.1:8080/api/v1/sms/kannel``.
    :param secret: the shared secret carried in the callback URLs.
    """

    sendsms_url: str
    username: str
    password: str = field(repr=False)
    sender: str = ""
    callback_base: str = ""
    secret: str = field(default="", repr=False)
    timeout_s: float = 10.0

    def dlr_url(self, message_id: str) -> str:
        return f"{self.callback_base}/dlr?{urlencode({'secret': self.secret, 'id': message_id})}&{DLR_QUERY}"

    def inbound_url(self) -> str:
        """The get-url to write into kannel.conf's ``sms-service`` group."""
        return f"{self.callback_base}/inbound?{urlencode({'secret': self.secret})}&{INBOUND_QUERY}"


class KannelProvider:
    """Sends through Kannel's ``sendsms`` interface on a shared aiohttp session."""

    name = "kannel"

    def __init__(self, session: aiohttp.ClientSession, settings: KannelSettings) -> None:
        self._session = session
        self._settings = settings

    async def send(self, message: Outgoing) -> str:
        cfg = self._settings
        params = {
            "username": cfg.username,
            "password": cfg.password,
            "to": message.to,
            "text": message.text,
            "charset": "UTF-8",
            "dlr-mask": str(DLR_MASK),
            "dlr-url": cfg.dlr_url(message.message_id),
        }
        if encoding_of(message.text) is Encoding.UCS2:
            params["coding"] = "2"
        if cfg.sender:
            params["from"] = cfg.sender
        try:
            async with asyncio.timeout(cfg.timeout_s):
                async with self._session.get(cfg.sendsms_url, params=params) as response:
                    body = (await response.text(errors="replace")).strip()
                    status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ProviderError(f"Kannel unreachable: {exc!r}", permanent=False) from exc
        if status in (200, 202):
            return message.message_id
        permanent = 400 <= status < 500 and status not in (408, 429)
        raise ProviderError(f"Kannel answered {status}: {body[:200]}", permanent=permanent)

    async def sent_before(self, message_id: str) -> str | None:
        # sendsms has no lookup: a message whose sender died mid-send may go twice (see README).
        return None


def dlr_status(report_type: str) -> str | None:
    """Our status name for Kannel's dlr type, or ``None`` for types that change nothing."""
    return {"1": "delivered", "2": "failed", "16": "failed", "8": "sent", "4": "sent"}.get(report_type)
