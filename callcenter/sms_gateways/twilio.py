"""Twilio's Messages REST API with aiohttp, and the signature of its webhooks (edge).

Outbound: ``POST {base}/2010-04-01/Accounts/{sid}/Messages.json`` with basic auth; 201 answers the
message's ``sid``. Twilio's 4xx answers are permanent (invalid number, unsubscribed recipient) except
429; 5xx and connection errors are retried.

Inbound and status webhooks carry ``X-Twilio-Signature``: base64 of HMAC-SHA1, keyed by the auth
token, over the full URL Twilio called followed by every POST parameter name and value, sorted by name.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass, field

import aiohttp

from callcenter.sms.ports import Outgoing, ProviderError


@dataclass(frozen=True, kw_only=True, slots=True)
class TwilioSettings:
    """:param public_base: our API as Twilio reaches it (signatures are over this URL)."""

    account_sid: str
    auth_token: str = field(repr=False)
    sender: str = ""
    messaging_service_sid: str = ""
    api_base: str = "https://api.twilio.com"
    public_base: str = ""
    timeout_s: float = 10.0

    @property
    def status_url(self) -> str:
        return f"{self.public_base}/api/v1/sms/twilio/status"


def signature(auth_token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """The ``X-Twilio-Signature`` of a POST to ``url`` with form ``params``."""
    payload = url + "".join(f"{k}{v}" for k, v in sorted(params))
    digest = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def signature_ok(auth_token: str, url: str, params: Iterable[tuple[str, str]], given: str) -> bool:
    return bool(given) and hmac.compare_digest(signature(auth_token, url, params), given)


class TwilioProvider:
    """Sends through Twilio's Messages API."""

    name = "twilio"

    def __init__(self, session: aiohttp.ClientSession, settings: TwilioSettings) -> None:
        self._session = session
        self._settings = settings

    async def send(self, message: Outgoing) -> str:
        cfg = self._settings
        form = {"To": message.to, "Body": message.text}
        if cfg.messaging_service_sid:
            form["MessagingServiceSid"] = cfg.messaging_service_sid
        else:
            form["From"] = cfg.sender
        if cfg.public_base:
            form["StatusCallback"] = cfg.status_url
        url = f"{cfg.api_base}/2010-04-01/Accounts/{cfg.account_sid}/Messages.json"
        try:
            async with asyncio.timeout(cfg.timeout_s):
                credentials = base64.b64encode(f"{cfg.account_sid}:{cfg.auth_token}".encode()).decode()
                headers = {"Authorization": f"Basic {credentials}"}
                async with self._session.post(url, data=form, headers=headers) as response:
                    status = response.status
                    try:
                        body = await response.json(content_type=None)
                    except ValueError:
                        body = None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ProviderError(f"Twilio unreachable: {exc!r}", permanent=False) from exc
        if status in (200, 201) and isinstance(body, dict) and isinstance(body.get("sid"), str):
            return str(body["sid"])
        detail = ""
        if isinstance(body, dict):
            detail = f" {body.get('code', '')} {body.get('message', '')}".rstrip()
        permanent = 400 <= status < 500 and status != 429
        raise ProviderError(f"Twilio answered {status}{detail}", permanent=permanent)

    async def sent_before(self, message_id: str) -> str | None:
        # The Messages API takes no idempotency key; nothing to ask.
        return None


#: Twilio's MessageStatus values mapped to ours (others, such as "sending", change nothing).
TWILIO_STATUS = {"sent": "sent", "delivered": "delivered", "undelivered": "failed", "failed": "failed"}
