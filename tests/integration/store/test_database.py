"""Engine, connection check and migrations of the SQL store on SQLite and PostgreSQL (integration)."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

from callcenter.config import DatabaseSettings
from callcenter.errors import ConfigError, NotFoundError, StoreUnavailableError
from callcenter.model.events import AgentStateChanged
from callcenter.model.records import AgentRecord, CallRecord, QueueRecord
from callcenter.model.vocabulary import AgentState, EntryPoint
from callcenter.queue.ports import StepWrite, TimelineEntry
from callcenter.store import sql_callbacks as _sql_callbacks  # noqa: F401  (its tables join Base.metadata)
from callcenter.store import sql_dispatch as _sql_dispatch  # noqa: F401  (its tables join Base.metadata)
from callcenter.store import sql_stats  # noqa: F401  (its tables are part of the metadata)  # noqa: F401  (its tables are part of the metadata)
from callcenter.store.database import (
    check_connection,
    create_engine,
    current_revision,
    head_revision,
    migrate,
)
from callcenter.store.sql_callbacks import SqlCallbackRepository
from callcenter.store.sql_models import Base
from callcenter.store.sql_repos import SqlAgentRepository, SqlCallRepository, SqlQueueRepository, SqlStepStore
from tests.integration.store.conftest import POSTGRES_URL, PostgresSchemas, open_database, with_search_path

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
REPO_ROOT = Path(__file__).resolve().parents[3]
TABLES = {
    "calls",
    "call_events",
    "queues",
    "agents",
    "agent_queues",
    "api_tokens",
    "audit_log",
    "schedules",
    "shifts",
    "predictions",
    "callbacks",
    "callback_changes",
    "callback_slots",
    "callback_attempts",
    "callback_sources",
    "dispatch_fences",
    "do_not_call",
    "sms_contacts",
    "sms_consent",
    "sms_messages",
    "sms_callback_requests",
    "stats_intervals",
    "stats_missed",
    "stats_applied",
    "wallboard_settings",
    "callback_claims",
    "alembic_version",
    "voicemails",
    "voicemail_transcripts",
}


def _schema_differences(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


async def test_migrate_from_empty_creates_exactly_the_model_tables_at_head(
    empty_database: DatabaseSettings,
) -> None:
    engine = create_engine(empty_database)
    try:
        assert await current_revision(engine) is None
        await migrate(empty_database)
        assert await current_revision(engine) == head_revision()
        async with engine.connect() as connection:
            tables = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
            differences = await connection.run_sync(_schema_differences)
        assert tables == TABLES
        assert differences == [], "migration 0001 and sql_models disagree"
    finally:
        await engine.dispose()


async def test_second_migrate_is_a_no_op_that_keeps_data(empty_database: DatabaseSettings) -> None:
    await migrate(empty_database)
    engine = create_engine(empty_database)
    try:
        await SqlQueueRepository(engine).put(QueueRecord(name="sales", title="Sales"))
        await migrate(empty_database)
        assert await current_revision(engine) == head_revision()
        assert (await SqlQueueRepository(engine).get("sales")).title == "Sales"
    finally:
        await engine.dispose()


async def test_tasks_migrating_at_the_same_time_all_succeed(empty_database: DatabaseSettings) -> None:
    await asyncio.gather(migrate(empty_database), migrate(empty_database), migrate(empty_database))
    engine = create_engine(empty_database)
    try:
        assert await current_revision(engine) == head_revision()
    finally:
        await engine.dispose()


_MIGRATE_IN_CHILD = """
import asyncio, sys
from callcenter.config import DatabaseSettings
from callcenter.store.database import migrate
print("ready", flush=True)
sys.stdin.readline()
asyncio.run(migrate(DatabaseSettings(url=sys.argv[1])))
"""


@pytest.mark.timeout(60)
async def test_processes_starting_together_all_migrate_without_error(
    empty_database: DatabaseSettings,
) -> None:
    """Several ``callcenter serve`` processes start at once: each migrates, none fails."""
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _MIGRATE_IN_CHILD,
            empty_database.url,
            cwd=REPO_ROOT,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(3)
    ]
    # Start line: every child has paid its import time before any of them migrates.
    for child in children:
        assert child.stdout is not None
        assert await child.stdout.readline() == b"ready\n"
    results = await asyncio.gather(*(child.communicate(b"go\n") for child in children))
    assert [child.returncode for child in children] == [0, 0, 0], [err.decode()[-2000:] for _, err in results]
    engine = create_engine(empty_database)
    try:
        assert await current_revision(engine) == head_revision()
    finally:
        await engine.dispose()


@pytest.mark.timeout(30)
async def test_postgres_tables_and_alembic_version_live_in_the_configured_schema(
    tmp_path: Path, postgres_schemas: PostgresSchemas
) -> None:
    async with open_database("postgresql", tmp_path, postgres_schemas) as settings:
        await migrate(settings)
        schema = settings.url.rsplit("%3D", 1)[1]
        admin = create_engine(DatabaseSettings(url=POSTGRES_URL))
        try:
            async with admin.connect() as connection:
                found = await connection.scalars(
                    text("SELECT table_name FROM information_schema.tables WHERE table_schema = :schema"),
                    {"schema": schema},
                )
                assert set(found) == TABLES
        finally:
            await admin.dispose()


@pytest.mark.timeout(30)
async def test_postgres_url_options_become_settings_of_every_connection(
    tmp_path: Path, postgres_schemas: PostgresSchemas
) -> None:
    async with open_database("postgresql", tmp_path, postgres_schemas) as settings:
        engine = create_engine(
            DatabaseSettings(url=settings.url + "%20-c%20application_name%3Dcc-store-test")
        )
        try:
            async with engine.connect() as connection:
                assert await connection.scalar(text("SHOW application_name")) == "cc-store-test"
                assert (
                    await connection.scalar(text("SELECT current_schema()"))
                    == settings.url.rsplit("%3D", 1)[1]
                )
        finally:
            await engine.dispose()


@pytest.mark.timeout(30)
async def test_postgres_schema_that_does_not_exist_is_a_config_error() -> None:
    settings = DatabaseSettings(url=with_search_path(POSTGRES_URL, "cc_test_no_such_schema"))
    with pytest.raises(ConfigError, match="search_path"):
        await migrate(settings)


async def test_sqlite_file_gets_its_folder_wal_and_enforced_foreign_keys(tmp_path: Path) -> None:
    settings = DatabaseSettings(url=f"sqlite+aiosqlite:///{tmp_path / 'a' / 'b' / 'cc.db'}")
    await migrate(settings)
    assert (tmp_path / "a" / "b" / "cc.db").is_file()
    engine = create_engine(settings)
    try:
        async with engine.connect() as connection:
            assert await connection.scalar(text("PRAGMA journal_mode")) == "wal"
            assert await connection.scalar(text("PRAGMA foreign_keys")) == 1
    finally:
        await engine.dispose()


UNREACHABLE = [
    pytest.param("postgresql+asyncpg://postgres:Sup3rS3cret@127.0.0.1:1/test", id="postgres-port-closed"),
    pytest.param(
        "postgresql+asyncpg://postgres:Sup3rS3cret@127.0.0.1:5432/cc_no_such_database",
        id="postgres-unknown-database",
        marks=[pytest.mark.timeout(30)],
    ),
]


@pytest.mark.parametrize("url", UNREACHABLE)
async def test_unreachable_database_is_store_unavailable_and_never_shows_the_password(url: str) -> None:
    engine = create_engine(DatabaseSettings(url=url))
    try:
        failures = []
        for attempt in (
            check_connection(engine),
            current_revision(engine),
            migrate(DatabaseSettings(url=url)),
            SqlQueueRepository(engine).get("sales"),
        ):
            with pytest.raises(StoreUnavailableError) as caught:
                await attempt
            failures.append(str(caught.value))
    finally:
        await engine.dispose()
    for message in failures:
        assert "Sup3rS3cret" not in message
        assert "postgres:***@127.0.0.1" in message


async def test_sqlite_path_that_is_a_folder_is_store_unavailable(tmp_path: Path) -> None:
    engine = create_engine(DatabaseSettings(url=f"sqlite+aiosqlite:///{tmp_path}"))
    try:
        with pytest.raises(StoreUnavailableError, match="unable to open"):
            await check_connection(engine)
    finally:
        await engine.dispose()


def test_sqlite_folder_that_cannot_be_created_is_store_unavailable(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("a file where the folder should be")
    with pytest.raises(StoreUnavailableError, match="folder"):
        create_engine(DatabaseSettings(url=f"sqlite+aiosqlite:///{tmp_path / 'taken' / 'cc.db'}"))


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql+aiomysql://u:pw@host/db", "unsupported backend"),
        ("postgresql+asyncpg://u@host/db?options=search_path%3Dx", "options"),
        ("not a url", "not a database URL"),
    ],
)
def test_unusable_database_url_is_a_config_error_naming_the_setting(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        create_engine(DatabaseSettings(url=url))
    assert "CALLCENTER_DATABASE_URL" in str(caught.value)
    assert "pw" not in str(caught.value)


@pytest.mark.timeout(30)
async def test_call_stuck_behind_a_lock_times_out_and_the_pool_recovers(
    tmp_path: Path, postgres_schemas: PostgresSchemas
) -> None:
    async with open_database("postgresql", tmp_path, postgres_schemas) as settings:
        await migrate(settings)
        engine = create_engine(settings)
        try:
            agents = SqlAgentRepository(engine, timeout_s=0.5)
            await agents.add(AgentRecord(id="a1", name="Ada", endpoint="PJSIP/1001"))
            async with engine.connect() as blocker:
                await blocker.execute(text("SELECT id FROM agents WHERE id = 'a1' FOR UPDATE"))
                with pytest.raises(StoreUnavailableError, match=r"did not answer within 0\.5 s"):
                    await agents.set_state("a1", AgentState.AVAILABLE, T0)
                await blocker.rollback()
            for _ in range(6):  # the pool hands out connections in turn: none was left broken
                assert (await agents.set_state("a1", AgentState.BUSY, T0)).state is AgentState.BUSY
        finally:
            await engine.dispose()


async def _drop_pooled_connections(engine: AsyncEngine, admin: AsyncEngine) -> None:
    """Fill the pool with three connections, then have the server end them (as a restart would)."""
    held = [await engine.connect() for _ in range(3)]
    pids = [await connection.scalar(text("SELECT pg_backend_pid()")) for connection in held]
    for connection in held:
        await connection.close()
    async with admin.begin() as connection:
        for pid in pids:
            await connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})


def _queue_steps(call_id: str, at: datetime) -> list[StepWrite]:
    record = CallRecord(
        id=call_id,
        channel_id=f"ch-{call_id}",
        linkedid=f"l-{call_id}",
        entry_point=EntryPoint.ARI,
        caller="+493012345",
        queue="sales",
        arrived_at=at,
    )
    return [
        StepWrite(
            record=record,
            entries=(TimelineEntry(call_id=call_id, at=at, kind="queued", detail={"queue": "sales"}),),
            states=(
                AgentStateChanged(
                    event_id=f"a1-ringing-{call_id}",
                    occurred_at=at,
                    agent_id="a1",
                    state=AgentState.RINGING,
                    previous=AgentState.AVAILABLE,
                    reason="test",
                ),
            ),
        )
    ]


@pytest.mark.timeout(30)
async def test_a_step_batch_is_stored_once_when_the_server_dropped_the_pooled_connections(
    tmp_path: Path, postgres_schemas: PostgresSchemas
) -> None:
    """The batch runs on asyncpg's own connection: a dead one is dropped and the batch runs again."""
    async with open_database("postgresql", tmp_path, postgres_schemas) as settings:
        await migrate(settings)
        engine = create_engine(settings)
        admin = create_engine(DatabaseSettings(url=POSTGRES_URL))
        try:
            steps, calls = SqlStepStore(engine), SqlCallRepository(engine)
            await SqlQueueRepository(engine).put(QueueRecord(name="sales", title="Sales"))
            await SqlAgentRepository(engine).add(AgentRecord(id="a1", name="Ada", endpoint="PJSIP/1001"))
            await _drop_pooled_connections(engine, admin)

            assert await steps.save_steps(_queue_steps("c1", T0)) == frozenset()
            # A read on asyncpg's own connection (a caller's open callbacks) gets past dead ones too.
            await _drop_pooled_connections(engine, admin)
            assert await SqlCallbackRepository(engine).open_for_numbers(["+493012345"]) == {}

            assert (await calls.get("c1")).arrived_at == T0
            assert [event.kind for event in await calls.events("c1")] == ["queued"]
            assert (await SqlAgentRepository(engine).get("a1")).state is AgentState.RINGING
        finally:
            await admin.dispose()
            await engine.dispose()


@pytest.mark.timeout(30)
async def test_a_step_batch_that_times_out_stores_nothing_and_leaves_no_connection_in_a_transaction(
    tmp_path: Path, postgres_schemas: PostgresSchemas
) -> None:
    async with open_database("postgresql", tmp_path, postgres_schemas) as settings:
        await migrate(settings)
        engine = create_engine(settings)
        try:
            steps, calls = SqlStepStore(engine, timeout_s=0.5), SqlCallRepository(engine)
            await SqlQueueRepository(engine).put(QueueRecord(name="sales", title="Sales"))
            await SqlAgentRepository(engine).add(AgentRecord(id="a1", name="Ada", endpoint="PJSIP/1001"))
            async with engine.connect() as blocker:
                await blocker.execute(text("SELECT id FROM agents WHERE id = 'a1' FOR UPDATE"))
                with pytest.raises(StoreUnavailableError, match=r"did not answer within 0\.5 s"):
                    await steps.save_steps(_queue_steps("c1", T0))
                await blocker.rollback()
            with pytest.raises(NotFoundError):
                await calls.get("c1")
            for n in range(6):  # the pool hands out connections in turn: none was left mid-transaction
                await steps.save_steps(_queue_steps(f"d{n}", T0))
                assert (await calls.get(f"d{n}")).queue == "sales"
        finally:
            await engine.dispose()


@pytest.mark.timeout(30)
async def test_writes_recover_transparently_when_the_server_drops_the_pooled_connections(
    tmp_path: Path, postgres_schemas: PostgresSchemas
) -> None:
    """No pre-ping: the first statement finds the connection dead, and the write retries on a new one."""
    async with open_database("postgresql", tmp_path, postgres_schemas) as settings:
        await migrate(settings)
        engine = create_engine(settings)
        admin = create_engine(DatabaseSettings(url=POSTGRES_URL))
        try:
            agents, calls = SqlAgentRepository(engine), SqlCallRepository(engine)
            await SqlQueueRepository(engine).put(QueueRecord(name="sales", title="Sales"))
            await agents.add(AgentRecord(id="a1", name="Ada", endpoint="PJSIP/1001", queues=("sales",)))
            await _drop_pooled_connections(engine, admin)

            record = await agents.set_state("a1", AgentState.AVAILABLE, T0)
            assert (record.state, record.queues, record.state_since) == (AgentState.AVAILABLE, ("sales",), T0)
            call = CallRecord(
                id="c1",
                channel_id="ch1",
                linkedid="l1",
                entry_point=EntryPoint.ARI,
                caller="+493012345",
                caller_name="",
                dialled="100",
                queue="sales",
                arrived_at=T0,
            )
            await calls.upsert(call)
            event = await calls.append_event("c1", T0, "queued", {"queue": "sales"})
            assert await calls.events("c1") == (event,)
            assert (await calls.get("c1")) == call
        finally:
            await admin.dispose()
            await engine.dispose()
