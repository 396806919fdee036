"""Fixtures of the SQL store tests: an empty or migrated database on SQLite and PostgreSQL.

PostgreSQL is the server on 127.0.0.1:5432 (database ``test``; ``TEST_POSTGRES_URL`` overrides it).
Each test gets a schema of its own, named ``cc_test_<session>_<test>``, reached through the URL's
``options=-csearch_path=...`` exactly as an operator would configure it; it is dropped after the test,
and any left by a crashed test are dropped at the end of the session. Nothing else is touched.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter.auth.ports import AuditLog, TokenRepository
from callcenter.config import DatabaseSettings
from callcenter.queue.ports import AgentRepository, CallRepository, QueueRepository
from callcenter.store.database import create_engine, migrate
from callcenter.store.sql_repos import (
    SqlAgentRepository,
    SqlAuditLog,
    SqlCallRepository,
    SqlQueueRepository,
    SqlTokenRepository,
)
from tests.fakes.store import InMemoryStore

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")

#: PostgreSQL runs are integration tests against a shared server: a little more time each.
POSTGRES = pytest.param("postgresql", marks=[pytest.mark.integration, pytest.mark.timeout(30)])
SQL_BACKENDS = ["sqlite", POSTGRES]
ALL_BACKENDS = ["sqlite", POSTGRES, "memory"]


def with_search_path(url: str, schema: str) -> str:
    """``url`` with libpq's ``options=-csearch_path=<schema>``, percent-encoded."""
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options={quote(f'-csearch_path={schema}', safe='')}"


class PostgresSchemas:
    """Names the per-test schemas of this session and drops the leftovers at its end."""

    def __init__(self) -> None:
        self.prefix = f"cc_test_{uuid.uuid4().hex[:8]}"
        self.used = False

    def new_name(self) -> str:
        self.used = True
        return f"{self.prefix}_{uuid.uuid4().hex[:8]}"

    async def drop_leftovers(self) -> None:
        admin = create_engine(DatabaseSettings(url=POSTGRES_URL))
        try:
            async with admin.begin() as connection:
                names = await connection.scalars(
                    text("SELECT nspname FROM pg_namespace WHERE starts_with(nspname, :prefix)"),
                    {"prefix": self.prefix + "_"},
                )
                for name in list(names):
                    await connection.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
        finally:
            await admin.dispose()


@pytest.fixture(scope="session")
def postgres_schemas() -> Iterator[PostgresSchemas]:
    schemas = PostgresSchemas()
    yield schemas
    if schemas.used:
        asyncio.run(schemas.drop_leftovers())


@asynccontextmanager
async def open_database(
    backend: str, tmp_path: Path, schemas: PostgresSchemas
) -> AsyncIterator[DatabaseSettings]:
    """Settings of an empty database of ``backend`` that exists only for the ``with`` block."""
    if backend == "sqlite":
        # A folder that does not exist yet: create_engine must make it.
        yield DatabaseSettings(url=f"sqlite+aiosqlite:///{tmp_path / 'store' / 'callcenter.db'}")
        return
    schema = schemas.new_name()
    admin = create_engine(DatabaseSettings(url=POSTGRES_URL))
    try:
        async with admin.begin() as connection:
            await connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        yield DatabaseSettings(url=with_search_path(POSTGRES_URL, schema))
    finally:
        async with admin.begin() as connection:
            await connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        await admin.dispose()


@pytest.fixture(params=SQL_BACKENDS)
async def empty_database(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_schemas: PostgresSchemas
) -> AsyncIterator[DatabaseSettings]:
    """An empty SQLite file or PostgreSQL schema (nothing migrated)."""
    async with open_database(request.param, tmp_path, postgres_schemas) as settings:
        yield settings


@pytest.fixture
async def engine(empty_database: DatabaseSettings) -> AsyncIterator[AsyncEngine]:
    """An engine on a freshly migrated database."""
    await migrate(empty_database)
    engine = create_engine(empty_database)
    try:
        yield engine
    finally:
        await engine.dispose()


@dataclass(frozen=True, slots=True)
class Stores:
    """One implementation of every repository port, typed by the ports (so mypy checks conformance)."""

    calls: CallRepository
    queues: QueueRepository
    agents: AgentRepository
    tokens: TokenRepository
    audit: AuditLog


@pytest.fixture(params=ALL_BACKENDS)
async def stores(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_schemas: PostgresSchemas
) -> AsyncIterator[Stores]:
    """The repositories on SQLite, on PostgreSQL and in memory: one contract, three implementations."""
    if request.param == "memory":
        fake = InMemoryStore.create()
        yield Stores(
            calls=fake.calls, queues=fake.queues, agents=fake.agents, tokens=fake.tokens, audit=fake.audit
        )
        return
    async with open_database(request.param, tmp_path, postgres_schemas) as settings:
        await migrate(settings)
        engine = create_engine(settings)
        try:
            yield Stores(
                calls=SqlCallRepository(engine),
                queues=SqlQueueRepository(engine),
                agents=SqlAgentRepository(engine),
                tokens=SqlTokenRepository(engine),
                audit=SqlAuditLog(engine),
            )
        finally:
            await engine.dispose()
