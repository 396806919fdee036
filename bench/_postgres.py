"""A PostgreSQL schema of a benchmark's own, dropped after: ``scratch_schema``.

Benchmarks run on the machine's PostgreSQL (``BENCH_POSTGRES_URL``, default 127.0.0.1:5432 database
``test``), each in a fresh schema so that runs never see each other's rows or leave any behind.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from urllib.parse import quote

from sqlalchemy import text

from callcenter.config import DatabaseSettings
from callcenter.store.database import create_engine, migrate

POSTGRES_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")


@contextlib.asynccontextmanager
async def scratch_schema(name: str, *, migrated: bool = True) -> AsyncIterator[DatabaseSettings]:
    """Settings of a database whose search path is a new schema ``cc_bench_<name>_<random>``, with our
    tables in it unless ``migrated`` is false (an app that migrates at start); dropped on the way out."""
    schema = f"cc_bench_{name}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(DatabaseSettings(url=POSTGRES_URL))
    try:
        async with admin.begin() as connection:
            await connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        separator = "&" if "?" in POSTGRES_URL else "?"
        settings = DatabaseSettings(
            url=f"{POSTGRES_URL}{separator}options={quote(f'-csearch_path={schema}', safe='')}"
        )
        if migrated:
            await migrate(settings)
        yield settings
    finally:
        async with admin.begin() as connection:
            await connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        await admin.dispose()
