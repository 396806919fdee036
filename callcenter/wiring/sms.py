"""Wiring of the SMS follow-up engine: its settings, consent key, templates and provider.

Part of the composition root: ``callcenter/app.py`` calls :func:`build_sms_engine`.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from datetime import timedelta
from typing import TYPE_CHECKING, Final

import aiohttp

from callcenter.api.sms import WebhookSettings
from callcenter.callbacks.service import CallbackService
from callcenter.callbacks.sms_desk import SmsCallbackDesk
from callcenter.callbacks.sources import CallbackSources
from callcenter.clock import Clock
from callcenter.config import Settings
from callcenter.errors import ConfigError, ValidationError
from callcenter.model.vocabulary import CallOutcome
from callcenter.sms.keywords import DEFAULT_RULES as DEFAULT_KEYWORD_RULES
from callcenter.sms.keywords import KeywordRules
from callcenter.sms.ports import SmsProvider
from callcenter.sms.quiet import parse_quiet_rules
from callcenter.sms.rules import SmsRules
from callcenter.sms.service import EngineSettings, SmsEngine
from callcenter.sms.templates import Templates, parse_templates
from callcenter.sms_gateways.console import ConsoleProvider
from callcenter.sms_gateways.kannel import KannelProvider, KannelSettings
from callcenter.sms_gateways.twilio import TwilioProvider, TwilioSettings
from callcenter.store.redis_bus import RedisEventBus
from callcenter.store.sql_sms import SqlSmsStore

if TYPE_CHECKING:
    from callcenter.app import Store

logger = logging.getLogger(__name__)


#: The consent ledger's key file in the data dir when CALLCENTER_SMS_CONSENT_SECRET is empty.
CONSENT_KEY_FILE: Final = "sms-consent.key"


def consent_secret(settings: Settings) -> bytes:
    """The ledger's number-hash key: the setting, else the data dir's key file (made once, mode 0600)."""
    if settings.sms.consent_secret:
        return settings.sms.consent_secret.encode()
    path = settings.data_dir / CONSENT_KEY_FILE
    if not path.exists():
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            with open(path, "x", encoding="ascii") as handle:
                handle.write(secrets.token_hex(32))
            path.chmod(0o600)
    secret = path.read_text(encoding="ascii").strip()
    if not secret:
        raise ConfigError(f"{path}: the consent key file is empty")
    return secret.encode()


def sms_templates(settings: Settings) -> Templates:
    """The templates file named by CALLCENTER_SMS_TEMPLATES, else the shipped one; checked whole."""
    from importlib import resources

    if settings.sms.templates:
        try:
            text = open(settings.sms.templates, encoding="utf-8").read()  # noqa: SIM115
        except OSError as exc:
            raise ConfigError(
                f"CALLCENTER_SMS_TEMPLATES: cannot read {settings.sms.templates}: {exc}"
            ) from exc
    else:
        text = resources.files("callcenter.sms").joinpath("templates.toml").read_text(encoding="utf-8")
    try:
        return parse_templates(text)
    except ValidationError as exc:
        raise ConfigError(f"CALLCENTER_SMS_TEMPLATES: {exc}") from exc


def sms_engine_settings(settings: Settings) -> EngineSettings:
    """The engine's rules from CALLCENTER_SMS_*. :raises ConfigError: naming the setting at fault."""
    sms = settings.sms
    try:
        triggers = frozenset(CallOutcome(t) for t in sms.triggers)
    except ValueError as exc:
        raise ConfigError(f"CALLCENTER_SMS_TRIGGERS: {exc}") from exc
    try:
        quiet = parse_quiet_rules(sms.quiet_hours, sms.quiet_regions)
        rules = SmsRules(
            triggers=triggers,
            require_mobile=sms.require_mobile,
            resend_after=timedelta(seconds=sms.resend_after_s),
            daily_cap=sms.daily_cap,
            quiet=quiet,
        )
    except ValidationError as exc:
        raise ConfigError(f"CALLCENTER_SMS_QUIET_HOURS / _QUIET_REGIONS / _TRIGGERS: {exc}") from exc
    keywords = (
        KeywordRules.with_phrases(sms.revocation_phrases) if sms.revocation_phrases else DEFAULT_KEYWORD_RULES
    )
    return EngineSettings(
        rules=rules,
        templates=sms_templates(settings),
        keywords=keywords,
        consent_secret=consent_secret(settings),
        default_region=settings.default_region,
        promise_grace_s=settings.callback.grace_s,
        reminder_lead_s=settings.sms.reminder_lead_s,
        late_slip_s=settings.sms.late_slip_s,
    )


def sms_provider(settings: Settings, session: aiohttp.ClientSession) -> SmsProvider:
    sms = settings.sms
    if sms.provider == "kannel":
        if not sms.kannel_secret or not sms.callback_base:
            raise ConfigError(
                "the Kannel provider needs CALLCENTER_SMS_KANNEL_SECRET and CALLCENTER_SMS_CALLBACK_BASE"
            )
        return KannelProvider(
            session,
            KannelSettings(
                sendsms_url=sms.kannel_sendsms_url,
                username=sms.kannel_username,
                password=sms.kannel_password,
                sender=sms.kannel_sender,
                callback_base=f"{sms.callback_base}/api/v1/sms/kannel",
                secret=sms.kannel_secret,
            ),
        )
    if sms.provider == "twilio":
        if not (
            sms.twilio_account_sid
            and sms.twilio_auth_token
            and (sms.twilio_from or sms.twilio_messaging_service_sid)
        ):
            raise ConfigError(
                "the Twilio provider needs CALLCENTER_SMS_TWILIO_ACCOUNT_SID, _AUTH_TOKEN and _FROM "
                "(or _MESSAGING_SERVICE_SID)"
            )
        return TwilioProvider(
            session,
            TwilioSettings(
                account_sid=sms.twilio_account_sid,
                auth_token=sms.twilio_auth_token,
                sender=sms.twilio_from,
                messaging_service_sid=sms.twilio_messaging_service_sid,
                api_base=sms.twilio_api_base,
                public_base=sms.callback_base,
            ),
        )
    return ConsoleProvider()


def sms_webhook_settings(settings: Settings) -> WebhookSettings:
    sms = settings.sms
    return WebhookSettings(
        kannel_secret=sms.kannel_secret,
        kannel_allowed=sms.kannel_allowed,
        twilio_auth_token=sms.twilio_auth_token,
        twilio_public_base=sms.callback_base,
        rate_per_s=sms.webhook_rate_per_s,
        burst=max(1, int(sms.webhook_rate_per_s * 4)),
    )


def build_sms_engine(
    settings: Settings,
    store: Store,
    session: aiohttp.ClientSession,
    clock: Clock,
    *,
    bus: RedisEventBus | None = None,
) -> SmsEngine:
    """The SMS engine over the store and the configured provider; with ``bus``, it publishes the
    statistics' SMS events (sent, delivered, consent changed)."""
    engine = SmsEngine(
        SqlSmsStore(store.engine),
        sms_provider(settings, session),
        store.calls,
        store.queues,
        clock,
        sms_engine_settings(settings),
    )
    if bus is not None:
        engine.publish = bus.publish
    return engine


def attach_callbacks(
    engine: SmsEngine | None, sources: CallbackSources, callbacks: CallbackService, store: Store, clock: Clock
) -> None:
    """Let "1" and "2" replies act on the callback service (instead of stored requests); no engine
    (SMS off): nothing to do."""
    if engine is None:
        return
    from callcenter.store.sql_callbacks import SqlCallbackRepository

    engine.callbacks = SmsCallbackDesk(
        sources, callbacks, SqlCallbackRepository(store.engine), store.calls, store.queues, clock
    )
