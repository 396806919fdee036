"""SQL engine, connection check and schema migrations for SQLite and PostgreSQL (edge).

``CALLCENTER_DATABASE_URL`` is a SQLAlchemy async URL. For PostgreSQL it may carry libpq's
``options`` parameter, e.g. ``postgresql+asyncpg://user:pw@host/db?options=-csearch_path%3Dcallcenter``:
asyncpg has no ``options`` argument, so each ``-c name=value`` in it is handed to asyncpg as a
server setting of every connection. With ``search_path`` this puts our tables *and* Alembic's
``alembic_version`` in that schema (Alembic writes unqualified names, which PostgreSQL resolves
through ``search_path``). The schema must exist; :func:`migrate` says so clearly when it does not.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shlex
import weakref
from pathlib import Path
from typing import Any, Final

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DataError, DBAPIError, IntegrityError, StatementError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from callcenter.config import DatabaseSettings
from callcenter.errors import (
    CallCenterError,
    ConfigError,
    ConflictError,
    NotFoundError,
    StoreUnavailableError,
    ValidationError,
)

logger = logging.getLogger(__name__)

MIGRATIONS_DIR: Final = Path(__file__).resolve().parent / "migrations"

#: How long a SQLite connection waits for another writer before failing (ms).
SQLITE_BUSY_TIMEOUT_MS: Final = 5_000
#: How long opening a PostgreSQL connection may take before it counts as unreachable (s).
CONNECT_TIMEOUT_S: Final = 10.0
#: PostgreSQL connections kept open once used, and the extra ones opened (then closed) at peaks.
POOL_SIZE: Final = 20
POOL_OVERFLOW: Final = 20
#: Age after which a pooled PostgreSQL connection is replaced at its next checkout (s).
POOL_RECYCLE_S: Final = 1_800
#: Key of the PostgreSQL advisory lock that serialises migrations of processes starting together.
_MIGRATION_LOCK_KEY: Final = 0x63632D6D6967  # "cc-mig"

_OPTION = re.compile(r"^(?:-c|--)([A-Za-z_][A-Za-z0-9_.]*)=(.*)$")


def create_engine(settings: DatabaseSettings) -> AsyncEngine:
    """An async engine for ``settings.url`` (``sqlite+aiosqlite`` or ``postgresql+asyncpg``).

    SQLite: the file's folder is created, and every connection gets WAL (readers never block the
    writer), enforced foreign keys and a busy timeout. PostgreSQL: a connect timeout, connections
    recycled after ``POOL_RECYCLE_S`` and replaced when found dropped (no pre-ping round trip), and
    the URL's ``options`` as server settings.

    :raises ConfigError: when the URL is malformed or names another backend.
    """
    try:
        url = make_url(settings.url)
    except ArgumentError as exc:
        raise ConfigError(f"CALLCENTER_DATABASE_URL: not a database URL ({settings.url_redacted})") from exc
    if url.drivername == "sqlite+aiosqlite":
        return _sqlite_engine(url)
    if url.drivername == "postgresql+asyncpg":
        return _postgresql_engine(url)
    raise ConfigError(
        f"CALLCENTER_DATABASE_URL: unsupported backend {url.drivername!r} (use sqlite:// or postgresql://)"
    )


def _sqlite_engine(url: URL) -> AsyncEngine:
    database = url.database or ""
    in_memory = database in ("", ":memory:") or url.query.get("mode") == "memory"
    if not in_memory and not database.startswith("file:"):
        folder = Path(database).expanduser().parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreUnavailableError(
                f"cannot create the folder {folder} for the SQLite file: {exc}"
            ) from exc
    engine = create_async_engine(url)

    @event.listens_for(engine.sync_engine, "connect")
    def _configure(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # PRAGMAs are per connection and journal_mode/foreign_keys are ignored inside a transaction,
        # so they run here, before the pool hands the connection out.
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            if not in_memory:
                cursor.execute("PRAGMA journal_mode = WAL")
                cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    return engine


def _postgresql_engine(url: URL) -> AsyncEngine:
    server_settings = _server_settings(url.query.get("options"))
    url = url.difference_update_query(["options"])
    connect_args: dict[str, Any] = {"timeout": CONNECT_TIMEOUT_S}
    if server_settings:
        connect_args["server_settings"] = server_settings
    # No pre-ping: it costs a round trip per checkout, i.e. per repository call. A connection the
    # server dropped is found by its first statement instead; SQLAlchemy then invalidates it and every
    # older pooled connection ("optimistic" disconnect handling), and the repositories' writes retry
    # once on a fresh one (``_SqlRepository._write``). Recycling bounds a connection's age below common
    # idle cut-offs (firewalls, poolers), so an idle pool rarely holds dead connections at all.
    # A pool as deep as the app's concurrent SQL under load (the queue's writer, the bus consumers,
    # a callback offer per caller joining): past ``pool_size`` every checkout opened and closed a
    # new connection (TCP, SSL probe, authentication), the costliest thing the store did per call.
    return create_async_engine(
        url,
        pool_pre_ping=False,
        pool_recycle=POOL_RECYCLE_S,
        pool_size=POOL_SIZE,
        max_overflow=POOL_OVERFLOW,
        connect_args=connect_args,
    )


def _server_settings(options: str | tuple[str, ...] | None) -> dict[str, str]:
    """libpq's ``options`` (``-c name=value`` or ``--name=value``, space separated) as a dict."""
    if options is None:
        return {}
    joined = " ".join(options) if isinstance(options, tuple) else options
    words = shlex.split(joined)
    settings: dict[str, str] = {}
    index = 0
    while index < len(words):
        word = words[index]
        if word == "-c" and index + 1 < len(words):
            index += 1
            word = "-c" + words[index]
        match = _OPTION.match(word)
        if match is None:
            raise ConfigError(
                f"CALLCENTER_DATABASE_URL: options must be '-c name=value' entries, got {word!r}"
            )
        settings[match.group(1)] = match.group(2)
        index += 1
    return settings


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """The session factory the SQL repositories take (objects stay readable after commit)."""
    return async_sessionmaker(engine, expire_on_commit=False)


def store_error(exc: Exception, url: URL, doing: str) -> CallCenterError:
    """Our error for a database failure ``exc`` met while ``doing`` something.

    Constraint violations become :class:`ConflictError` (unique) or :class:`NotFoundError` (a
    reference to a missing row); a value we or the server refused (a naive time, text too long for its
    column) becomes :class:`ValidationError`;
    everything else means the store cannot serve us: :class:`StoreUnavailableError`. Messages name the
    URL without its password and never include statement parameters.
    """
    if isinstance(exc, IntegrityError):
        reason = _reason(exc, url)
        if _is_foreign_key_violation(exc):
            return NotFoundError(f"{doing}: refers to a row that does not exist ({reason})")
        return ConflictError(f"{doing}: already exists or contradicts a stored row ({reason})")
    if isinstance(exc, DataError):
        return ValidationError(f"{doing}: the database refused a value ({_reason(exc, url)})")
    if isinstance(exc, StatementError) and not isinstance(exc, DBAPIError):
        # Raised before anything reached the server, e.g. a naive datetime refused by UtcDateTime.
        return ValidationError(f"{doing}: {_reason(exc, url)}")
    return StoreUnavailableError(
        f"SQL store at {url.render_as_string(hide_password=True)} unavailable while {doing}: {_reason(exc, url)}"
    )


def _is_foreign_key_violation(exc: IntegrityError) -> bool:
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if sqlstate is not None:
        return bool(sqlstate == "23503")
    return "FOREIGN KEY" in str(exc.orig)


def _reason(exc: BaseException, url: URL) -> str:
    """A one-line cause without SQL parameters or the password."""
    cause = exc.orig if isinstance(exc, StatementError) and exc.orig is not None else exc
    message = str(cause).splitlines()[0] if str(cause) else ""
    # SQLAlchemy prefixes driver errors with "(module.Class)": keep only the driver's words.
    message = re.sub(r"^\([\w.]+\)\s*", "", message)
    if url.password:
        message = message.replace(str(url.password), "***")
    name = type(cause).__name__
    return f"{name}: {message}" if message else name


async def check_connection(engine: AsyncEngine, *, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Open a connection and run ``SELECT 1``.

    :raises StoreUnavailableError: naming the URL (password hidden) and the cause.
    """
    url = engine.url
    try:
        async with asyncio.timeout(timeout_s), engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except (DBAPIError, OSError, TimeoutError) as exc:
        raise store_error(exc, url, "connecting") from exc


def head_revision() -> str:
    """The newest migration this version of the code ships."""
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships 0001
        raise RuntimeError("no migrations found")
    return head


async def current_revision(engine: AsyncEngine) -> str | None:
    """The revision the database is at, ``None`` for an empty database.

    :raises StoreUnavailableError: when the database cannot be reached.
    """
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(_current_revision)
    except (DBAPIError, OSError, TimeoutError) as exc:
        raise store_error(exc, engine.url, "reading the schema revision") from exc


def _current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def migrate(settings: DatabaseSettings) -> None:
    """Bring the database named by ``settings`` to the newest schema (Alembic ``upgrade head``).

    Safe at every start: a database already at head is left untouched, and processes starting
    together take turns (see :func:`upgrade`).

    :raises StoreUnavailableError: when the database cannot be reached or refuses the migration.
    :raises ConfigError: for a bad URL, or a ``search_path`` schema that does not exist.
    """
    engine = create_engine(settings)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


async def upgrade(engine: AsyncEngine) -> None:
    """:func:`migrate` on an engine the caller owns.

    Everything runs in one transaction: on PostgreSQL behind an advisory lock, on SQLite under
    ``BEGIN IMMEDIATE`` (the write lock), so a second process waits, then finds the schema at head.
    A failed migration leaves the schema as it was.
    """
    url = engine.url
    try:
        async with _alembic_lock(), engine.connect() as connection:
            if connection.dialect.name == "postgresql":
                schema = await connection.scalar(text("SELECT current_schema()"))
                if schema is None:
                    raise ConfigError(
                        "CALLCENTER_DATABASE_URL: none of the schemas in search_path exists; "
                        "create the schema first (CREATE SCHEMA ...)"
                    )
                await connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY}
                )
            else:
                # pysqlite would only BEGIN before the first INSERT; DDL must be inside the transaction.
                await connection.exec_driver_sql("BEGIN IMMEDIATE")
            await connection.run_sync(_upgrade_to_head)
            await connection.commit()
    except CommandError as exc:
        raise StoreUnavailableError(
            f"SQL store at {url.render_as_string(hide_password=True)} cannot be migrated: {exc} "
            "(is the database from a newer release?)"
        ) from exc
    except (DBAPIError, OSError, TimeoutError) as exc:
        raise store_error(exc, url, "migrating") from exc


#: Alembic keeps the running migration in module globals (``alembic.context``, ``alembic.op``), and
#: ``run_sync`` yields to the event loop at every query: two migrations in one process must not overlap.
_ALEMBIC_LOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


def _alembic_lock() -> asyncio.Lock:
    return _ALEMBIC_LOCKS.setdefault(asyncio.get_running_loop(), asyncio.Lock())


def _upgrade_to_head(connection: Connection) -> None:
    config = _alembic_config()
    config.attributes["connection"] = connection
    before = MigrationContext.configure(connection).get_current_revision()
    command.upgrade(config, "head")
    after = MigrationContext.configure(connection).get_current_revision()
    if before != after:
        logger.info("SQL schema migrated from %s to %s", before or "empty", after)


def _alembic_config() -> Config:
    """Alembic's configuration built in code, so the installed package needs no ``alembic.ini``."""
    config = Config()
    # ConfigParser interpolation: a literal % in the path must be doubled.
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    return config
