"""Handlers of the SMS, consent, contact and erasure routes, and the providers' webhooks (edge).

Webhooks answer without a token but authenticate the provider their own way: Kannel's callbacks carry
a secret in their URL and must come from an allowed address; Twilio's carry ``X-Twilio-Signature``.
Each is rate limited per client address. Every field is checked before the engine is called, so a
refused request stores nothing.
"""

from __future__ import annotations

import dataclasses
import functools
import hmac
import ipaddress
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aiohttp import web

from callcenter.api.auth import principal_of, set_audit_detail
from callcenter.api.jsonio import (
    optional_text_field,
    page_params,
    page_response,
    read_json_object,
    reject_unknown_fields,
    text_field,
)
from callcenter.api.sms_schemas import (
    callback_request_json,
    consent_json,
    contact_json,
    erasure_json,
    inbound_result_json,
    message_json,
)
from callcenter.api.voicemails import VOICEMAIL_SERVICE
from callcenter.errors import (
    ConflictError,
    DependencyError,
    NotFoundError,
    PermissionDeniedError,
    ValidationError,
)
from callcenter.sms.consent import ALL_PROGRAMS, ConsentAction, ConsentSource, verify_chain
from callcenter.sms.records import Contact, MessageStatus
from callcenter.sms.service import MAX_INBOUND_CHARS, Inbound, SmsEngine
from callcenter.sms_gateways.kannel import dlr_status
from callcenter.sms_gateways.twilio import TWILIO_STATUS, signature_ok

_MAX_FIELD: Final = 200
_TWIML_EMPTY: Final = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


class RateLimiter:
    """A token bucket per client address: ``rate_per_s`` sustained, ``burst`` at once."""

    def __init__(self, rate_per_s: float, burst: int) -> None:
        self._rate = rate_per_s
        self._burst = float(burst)
        self._buckets: dict[str, tuple[float, float]] = {}

    def allow(self, client: str) -> bool:
        now = time.monotonic()
        tokens, last = self._buckets.get(client, (self._burst, now))
        tokens = min(self._burst, tokens + (now - last) * self._rate)
        if len(self._buckets) > 10_000:
            self._buckets.clear()  # bounded memory under a spray of addresses
        if tokens < 1.0:
            self._buckets[client] = (tokens, now)
            return False
        self._buckets[client] = (tokens - 1.0, now)
        return True


@dataclass(frozen=True, kw_only=True, slots=True)
class WebhookSettings:
    """How provider callbacks are authenticated."""

    kannel_secret: str = field(default="", repr=False)
    kannel_allowed: tuple[str, ...] = ("127.0.0.1/32", "::1/128")
    twilio_auth_token: str = field(default="", repr=False)
    twilio_public_base: str = ""
    rate_per_s: float = 50.0
    burst: int = 200

    def kannel_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        return _networks(self.kannel_allowed)


@functools.lru_cache(maxsize=8)
def _networks(allowed: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """Parsed once per setting, not per callback (parsing them was a tenth of a report's CPU)."""
    return tuple(ipaddress.ip_network(n, strict=False) for n in allowed)


@dataclass(slots=True)
class SmsHttp:
    """What the SMS routes need: the engine, the webhook settings and the rate limiter."""

    engine: SmsEngine
    webhooks: WebhookSettings
    limiter: RateLimiter = field(init=False)

    def __post_init__(self) -> None:
        self.limiter = RateLimiter(self.webhooks.rate_per_s, self.webhooks.burst)


#: Set by the composition root; without it the SMS routes answer 503.
SMS_HTTP: Final = web.AppKey("sms_http", SmsHttp)


def _sms(request: web.Request) -> SmsHttp:
    sms = request.app.get(SMS_HTTP)
    if sms is None:
        raise DependencyError("the SMS engine is not running in this process")
    return sms


def _limited(request: web.Request, sms: SmsHttp) -> None:
    if not sms.limiter.allow(request.remote or "unknown"):
        raise web.HTTPTooManyRequests(reason="too many webhook requests; slow down")


def _field(values: Mapping[str, str], name: str, *, required: bool = True, limit: int = _MAX_FIELD) -> str:
    value = values.get(name)
    if value is None:
        if required:
            raise ValidationError(f"{name} is required")
        return ""
    if len(value) > limit:
        raise ValidationError(f"{name} is longer than {limit} characters")
    return value


# -- webhooks ------------------------------------------------------------------------------------


async def kannel_inbound(request: web.Request) -> web.Response:
    """Kannel's ``sms-service`` get-url: an inbound text. Answers an empty 200 (max-messages = 0)."""
    sms = _sms(request)
    _limited(request, sms)
    _kannel_authenticated(request, sms.webhooks)
    query = request.query
    inbound = Inbound(
        sender=_field(query, "from"),
        text=_field(query, "text", limit=MAX_INBOUND_CHARS),
        provider="kannel",
        provider_id=_field(query, "id", required=False),
        to=_field(query, "to", required=False),
    )
    result = await sms.engine.receive(inbound)
    sms.engine.wake()
    return web.Response(text="", headers={"X-Intent": result.intent.value})


async def kannel_dlr(request: web.Request) -> web.Response:
    """Kannel's dlr-url: a delivery report for one of our messages."""
    sms = _sms(request)
    _limited(request, sms)
    _kannel_authenticated(request, sms.webhooks)
    message_id = _field(request.query, "id")
    report_type = _field(request.query, "type")
    status = dlr_status(report_type)
    if not report_type.isdigit():
        raise ValidationError("type must be Kannel's numeric dlr type")
    if status is not None:
        answer = _field(request.query, "answer", required=False, limit=500)
        error = answer if status == "failed" else ""
        if not await sms.engine.delivery_report("kannel", message_id, MessageStatus(status), error):
            raise ValidationError(f"no message {message_id!r} was sent through Kannel")
    return web.Response(text="")


def _kannel_authenticated(request: web.Request, settings: WebhookSettings) -> None:
    if not settings.kannel_secret:
        raise ConflictError("Kannel callbacks are not configured (CALLCENTER_SMS_KANNEL_SECRET)")
    try:
        remote = ipaddress.ip_address(request.remote or "")
    except ValueError:
        raise PermissionDeniedError("callbacks from this address are not accepted") from None
    if not any(remote in network for network in settings.kannel_networks()):
        raise PermissionDeniedError("callbacks from this address are not accepted")
    given = request.query.get("secret", "")
    if not hmac.compare_digest(given.encode(), settings.kannel_secret.encode()):
        raise PermissionDeniedError("bad or missing callback secret")


async def _twilio_form(request: web.Request, sms: SmsHttp) -> Mapping[str, str]:
    settings = sms.webhooks
    if not settings.twilio_auth_token:
        raise ConflictError("Twilio webhooks are not configured (CALLCENTER_SMS_TWILIO_AUTH_TOKEN)")
    if request.content_type != "application/x-www-form-urlencoded":
        raise ValidationError("Twilio webhooks post application/x-www-form-urlencoded")
    form = await request.post()
    params = [(k, v) for k, v in form.items() if isinstance(v, str)]
    url = (settings.twilio_public_base + request.path_qs) if settings.twilio_public_base else str(request.url)
    if not signature_ok(
        settings.twilio_auth_token, url, params, request.headers.get("X-Twilio-Signature", "")
    ):
        raise PermissionDeniedError("bad or missing X-Twilio-Signature")
    return dict(params)


async def twilio_inbound(request: web.Request) -> web.Response:
    """Twilio's incoming-message webhook; answers empty TwiML (our replies go through the outbox)."""
    sms = _sms(request)
    _limited(request, sms)
    form = await _twilio_form(request, sms)
    inbound = Inbound(
        sender=_field(form, "From"),
        text=_field(form, "Body", limit=MAX_INBOUND_CHARS),
        provider="twilio",
        provider_id=_field(form, "MessageSid"),
        to=_field(form, "To", required=False),
    )
    await sms.engine.receive(inbound)
    sms.engine.wake()
    return web.Response(text=_TWIML_EMPTY, content_type="text/xml")


async def twilio_status(request: web.Request) -> web.Response:
    """Twilio's status callback for a message we sent."""
    sms = _sms(request)
    _limited(request, sms)
    form = await _twilio_form(request, sms)
    sid = _field(form, "MessageSid")
    status = TWILIO_STATUS.get(_field(form, "MessageStatus"))
    if status is not None:
        error = _field(form, "ErrorCode", required=False)
        if not await sms.engine.delivery_report("twilio", sid, MessageStatus(status), error):
            raise ValidationError(f"no message {sid!r} was sent through Twilio")
    return web.Response(text=_TWIML_EMPTY, content_type="text/xml")


async def console_inbound(request: web.Request) -> web.Response:
    """A person playing the customer on the console provider."""
    sms = _sms(request)
    if sms.engine.provider_name != "console":
        raise ConflictError("the console inbound route works only with the console provider")
    body = await read_json_object(request)
    reject_unknown_fields(body, ("from", "to", "text", "id"))
    text = text_field(body, "text")
    inbound = Inbound(
        sender=text_field(body, "from"),
        text=text,
        provider="console",
        provider_id=optional_text_field(body, "id") or "",
        to=optional_text_field(body, "to") or "",
    )
    result = await sms.engine.receive(inbound)
    sms.engine.wake()
    return web.json_response(inbound_result_json(result))


# -- messages, threads, callback requests --------------------------------------------------------


def _bool_query(request: web.Request, name: str) -> bool | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    if raw in ("true", "1"):
        return True
    if raw in ("false", "0"):
        return False
    raise ValidationError(f"{name} must be true or false")


async def list_messages(request: web.Request) -> web.Response:
    sms = _sms(request)
    cursor, limit = page_params(request)
    page = await sms.engine.messages(
        number=request.query.get("number") or None,
        needs_person=_bool_query(request, "needs_person"),
        cursor=cursor,
        limit=limit,
    )
    return page_response(page, message_json)


async def get_thread(request: web.Request) -> web.Response:
    sms = _sms(request)
    cursor, limit = page_params(request)
    page = await sms.engine.messages(
        number=request.match_info["number"], needs_person=None, cursor=cursor, limit=limit
    )
    return page_response(page, message_json)


async def send_message(request: web.Request) -> web.Response:
    sms = _sms(request)
    body = await read_json_object(request)
    reject_unknown_fields(body, ("to", "text", "key"))
    principal = principal_of(request)
    actor = f"agent:{principal.agent_id}" if principal.agent_id else f"token:{principal.token_id}"
    message = await sms.engine.send_manual(
        text_field(body, "to"), text_field(body, "text"), actor=actor, key=optional_text_field(body, "key")
    )
    set_audit_detail(request, {"message_id": message.id})
    return web.json_response(message_json(message), status=202)


async def resolve_unknown(request: web.Request) -> web.Response:
    """A person's decision on a text whose outcome is unknown (handed over by a sender that died)."""
    sms = _sms(request)
    body = await read_json_object(request)
    reject_unknown_fields(body, ("action",))
    action = text_field(body, "action")
    if action not in ("resend", "close"):
        raise ValidationError("action must be resend or close")
    principal = principal_of(request)
    actor = f"agent:{principal.agent_id}" if principal.agent_id else f"token:{principal.token_id}"
    message = await sms.engine.resolve_unknown(
        request.match_info["message_id"], resend=action == "resend", actor=actor
    )
    return web.json_response(message_json(message))


async def mark_handled(request: web.Request) -> web.Response:
    sms = _sms(request)
    return web.json_response(message_json(await sms.engine.mark_handled(request.match_info["message_id"])))


async def list_callback_requests(request: web.Request) -> web.Response:
    sms = _sms(request)
    requests = await sms.engine.callback_requests(
        number=request.query.get("number") or None, open_only=_bool_query(request, "open") is not False
    )
    return web.json_response({"items": [callback_request_json(r) for r in requests], "next": None})


# -- consent, contacts, erasure ------------------------------------------------------------------


async def get_consent(request: web.Request) -> web.Response:
    sms = _sms(request)
    view = await sms.engine.consent(request.match_info["number"])
    return web.json_response(consent_json(view, chain_ok=verify_chain(view.history) is None))


def _enum(value: str, enum: Iterable[str], name: str) -> str:
    allowed = list(enum)
    if value not in allowed:
        raise ValidationError(f"{name} must be one of {', '.join(allowed)}")
    return value


async def post_consent(request: web.Request) -> web.Response:
    sms = _sms(request)
    body = await read_json_object(request)
    reject_unknown_fields(body, ("action", "program", "source", "evidence"))
    action = ConsentAction(_enum(text_field(body, "action"), (a.value for a in ConsentAction), "action"))
    sources = (s.value for s in ConsentSource if s is not ConsentSource.SMS_KEYWORD)
    source = ConsentSource(_enum(text_field(body, "source"), sources, "source"))
    program = text_field(body, "program", default=ALL_PROGRAMS)
    if not program or len(program) > 32:
        raise ValidationError("program must be 1 to 32 characters")
    principal = principal_of(request)
    view = await sms.engine.record_consent(
        request.match_info["number"],
        action=action,
        program=program,
        source=source,
        actor=f"token:{principal.token_id}",
        evidence=text_field(body, "evidence", default=""),
    )
    set_audit_detail(request, {"action": action.value, "program": program, "source": source.value})
    return web.json_response(consent_json(view, chain_ok=verify_chain(view.history) is None), status=201)


async def export_ledger(request: web.Request) -> web.StreamResponse:
    """The consent ledger as CSV, streamed in append order."""
    sms = _sms(request)
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": 'attachment; filename="consent-ledger.csv"',
        }
    )
    await response.prepare(request)
    async for line in sms.engine.export_ledger():
        await response.write(line.encode())
    await response.write_eof()
    return response


async def get_contact(request: web.Request) -> web.Response:
    sms = _sms(request)
    return web.json_response(contact_json(await sms.engine.contact(request.match_info["number"])))


async def put_contact(request: web.Request) -> web.Response:
    sms = _sms(request)
    body = await read_json_object(request)
    fields = ("name", "language", "time_zone", "region", "notes")
    reject_unknown_fields(body, fields)
    number = sms.engine.normalise(request.match_info["number"])
    try:
        current = await sms.engine.contact(number)
    except NotFoundError:
        current = Contact(number=number)
    values = {name: text_field(body, name, default=getattr(current, name)) for name in fields}
    if any(len(v) > (2000 if k == "notes" else _MAX_FIELD) for k, v in values.items()):
        raise ValidationError("a contact field is too long")
    if values["time_zone"]:
        try:
            ZoneInfo(values["time_zone"])
        except (ZoneInfoNotFoundError, ValueError):
            raise ValidationError(f"time_zone {values['time_zone']!r} is not an IANA zone") from None
    contact = await sms.engine.put_contact(
        Contact(
            number=number,
            name=values["name"],
            language=values["language"],
            time_zone=values["time_zone"],
            region=values["region"],
            notes=values["notes"],
        )
    )
    return web.json_response(contact_json(contact))


async def post_erasure(request: web.Request) -> web.Response:
    sms = _sms(request)
    body = await read_json_object(request)
    reject_unknown_fields(body, ("number",))
    number = text_field(body, "number")
    voicemails = request.app.get(VOICEMAIL_SERVICE)
    if voicemails is not None:
        # Messages recorded but not yet stored (held by intake notes) are stored first, so that
        # the erasure finds them (a store that is down answers 503: nothing is erased yet).
        await voicemails.recover(older_than_s=0.0)
    erasure = await sms.engine.erase(number)
    if voicemails is not None:
        # After the commit: the recorded audio, and the whisper's previews in the folder shared
        # with Asterisk. A file that stays is logged and reported in the answer.
        audio, previews, failed = await voicemails.erase_files(erasure.voicemail_ids)
        erasure = dataclasses.replace(erasure, audio_files=audio, previews=previews, files_not_deleted=failed)
    elif erasure.audio_paths:
        # No voicemail service in this process: the files are not deleted here, and the answer says so.
        erasure = dataclasses.replace(erasure, files_not_deleted=erasure.audio_paths)
    # The audit entry keeps the pseudonym, never the erased number.
    set_audit_detail(request, {"pseudonym": erasure.pseudonym})
    return web.json_response(erasure_json(erasure))
