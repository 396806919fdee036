"""Alembic environment of the SQL store (edge): migrates the connection ``database.upgrade`` hands over.

``callcenter migrate`` and start-up call :func:`callcenter.store.database.migrate`, which passes an
open connection in ``config.attributes["connection"]``. For writing a new revision by hand, Alembic's
command line also works with ``sqlalchemy.url`` set (``alembic -c <ini> revision --autogenerate``) or
offline (``--sql``) to print the DDL.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import create_async_engine

import callcenter.store.sql_voicemails  # noqa: F401  (registers the voicemail tables on Base.metadata)
from callcenter.store import sql_callbacks as _sql_callbacks  # noqa: F401  (its tables join Base.metadata)
from callcenter.store import sql_dispatch as _sql_dispatch  # noqa: F401  (its tables join Base.metadata)
from callcenter.store import sql_stats  # noqa: F401  (registers the statistics tables)
from callcenter.store.sql_models import Base

config = context.config
target_metadata = Base.metadata


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things in place; batch mode copies the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def _run_on(connection: Connection) -> None:
    _configure(connection)
    with context.begin_transaction():
        context.run_migrations()


async def _run_on_url(url: str) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_run_on)
    finally:
        await engine.dispose()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run_on(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("set sqlalchemy.url, or migrate with callcenter.store.database.migrate()")
    asyncio.run(_run_on_url(url))


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
