"""SQLAlchemy table models of the SQL store, one code path for SQLite and PostgreSQL (edge).

Rows here never leave ``store/``: the repositories in ``sql_repos.py`` turn them into ``model/`` records.
Enumerations are stored as their text value in plain string columns, so a new outcome or state needs no
enum-type migration. Every constraint and index is named by ``NAMING_CONVENTION`` so Alembic can alter
them by name on both dialects.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    TypeDecorator,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION: Final[dict[str, str]] = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware instant, stored in UTC and always read back aware in UTC.

    SQLite has no time zone type: it gets naive UTC text (fixed width, so text order is time order)
    and hands back naive values, which are marked UTC again here.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"time {value.isoformat()} has no time zone; the store keeps aware times only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


#: JSON documents: JSONB on PostgreSQL (indexable, compact), JSON text on SQLite.
JsonDocument = JSON().with_variant(JSONB(), "postgresql")

#: Append-only ids: 64-bit on PostgreSQL; SQLite autoincrements only an ``INTEGER PRIMARY KEY``.
SerialId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    """Declarative base carrying the shared metadata and its naming convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UtcDateTime(), dict[str, Any]: JsonDocument}


class CallRow(Base):
    """One inbound call (``model.records.CallRecord``)."""

    __tablename__ = "calls"

    id: Mapped[str] = mapped_column(primary_key=True)
    channel_id: Mapped[str]
    linkedid: Mapped[str] = mapped_column(index=True)
    entry_point: Mapped[str] = mapped_column(String(16))
    caller: Mapped[str] = mapped_column(index=True)
    caller_name: Mapped[str]
    dialled: Mapped[str]
    queue: Mapped[str | None] = mapped_column(index=True)
    arrived_at: Mapped[datetime] = mapped_column(index=True)
    queued_at: Mapped[datetime | None]
    answered_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    wait_s: Mapped[float | None] = mapped_column(Float())
    talk_s: Mapped[float | None] = mapped_column(Float())
    position: Mapped[int | None] = mapped_column(Integer())
    agent_id: Mapped[str | None]
    outcome: Mapped[str | None] = mapped_column(String(32), index=True)
    reconciled: Mapped[bool] = mapped_column(Boolean())
    closed_at: Mapped[datetime | None]


class CallEventRow(Base):
    """One entry of a call's timeline (what happened to it, in order)."""

    __tablename__ = "call_events"

    id: Mapped[int] = mapped_column(SerialId, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]]


class QueueRow(Base):
    """A queue's settings (``model.records.QueueRecord``)."""

    __tablename__ = "queues"

    name: Mapped[str] = mapped_column(primary_key=True)
    title: Mapped[str]
    max_wait_s: Mapped[int] = mapped_column(Integer())
    join_empty: Mapped[bool] = mapped_column(Boolean())
    service_level_s: Mapped[int] = mapped_column(Integer())
    short_abandon_s: Mapped[int] = mapped_column(Integer())
    max_callers: Mapped[int | None] = mapped_column(Integer())
    business_number: Mapped[str | None]
    time_zone: Mapped[str] = mapped_column(String(64))
    # Weekday -> ["HH:MM-HH:MM", ...] in local time; NULL is always open (``queue.hours``).
    business_hours: Mapped[dict[str, Any] | None]
    # Local dates "YYYY-MM-DD" on which the queue is closed.
    holidays: Mapped[list[str]] = mapped_column(JsonDocument, server_default=text("'[]'"))
    after_hours_action: Mapped[str] = mapped_column(String(16), server_default="hangup")
    timeout_action: Mapped[str] = mapped_column(String(16), server_default="hangup")
    no_agents_action: Mapped[str] = mapped_column(String(16), server_default="hangup")
    ring_timeout_s: Mapped[int] = mapped_column(Integer(), server_default="15")
    wrap_up_s: Mapped[int] = mapped_column(Integer(), server_default="10")
    max_misses_before_pause: Mapped[int] = mapped_column(Integer(), server_default="3")


class AgentRow(Base):
    """An agent (``model.records.AgentRecord``; queue membership lives in ``agent_queues``)."""

    __tablename__ = "agents"

    id: Mapped[str] = mapped_column(primary_key=True)
    name: Mapped[str]
    endpoint: Mapped[str]
    state: Mapped[str] = mapped_column(String(16))
    state_since: Mapped[datetime | None]


class AgentQueueRow(Base):
    """One queue an agent serves."""

    __tablename__ = "agent_queues"

    agent_id: Mapped[str] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True)
    # No cascade from queues: removing a queue that agents still serve must be a deliberate act.
    queue: Mapped[str] = mapped_column(ForeignKey("queues.name"), primary_key=True)


class ApiTokenRow(Base):
    """An API token, kept by the hash of its secret (``model.records.ApiToken``)."""

    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(primary_key=True)
    secret_hash: Mapped[str] = mapped_column(unique=True)
    role: Mapped[str] = mapped_column(String(16))
    agent_id: Mapped[str | None] = mapped_column(ForeignKey("agents.id"))
    label: Mapped[str]
    created_at: Mapped[datetime] = mapped_column(index=True)
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]


class AuditRow(Base):
    """One audited write (``model.records.AuditEntry``), append-only."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(SerialId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str]
    role: Mapped[str | None] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str]
    detail: Mapped[dict[str, Any]]


class ScheduleRow(Base):
    """An agent's weekly schedule (``capacity.schedules.Schedule``; its shifts live in ``shifts``)."""

    __tablename__ = "schedules"

    agent_id: Mapped[str] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True)
    updated_at: Mapped[datetime]
    updated_by: Mapped[str]


class ShiftRow(Base):
    """One weekly shift: weekday (0 is Monday) and minutes after local midnight (``capacity.schedules.Shift``)."""

    __tablename__ = "shifts"

    id: Mapped[int] = mapped_column(SerialId, primary_key=True, autoincrement=True)
    agent_id: Mapped[str] = mapped_column(ForeignKey("schedules.agent_id", ondelete="CASCADE"), index=True)
    weekday: Mapped[int] = mapped_column(Integer())
    start_min: Mapped[int] = mapped_column(Integer())
    end_min: Mapped[int] = mapped_column(Integer())


class PredictionRow(Base):
    """One logged wait prediction (``capacity.accuracy.PredictionRecord``), append-only.

    No foreign key to ``calls``: a prediction may be logged before the call's record is saved.
    """

    __tablename__ = "predictions"
    __table_args__ = (Index("ix_predictions_queue_at", "queue", "at"),)

    id: Mapped[int] = mapped_column(SerialId, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(index=True)
    queue: Mapped[str]
    at: Mapped[datetime]
    predictor: Mapped[str] = mapped_column(String(16))
    mean_s: Mapped[float] = mapped_column(Float())
    p80_s: Mapped[float] = mapped_column(Float())
    p90_s: Mapped[float] = mapped_column(Float())
    announced: Mapped[bool] = mapped_column(Boolean())


# The SMS engine's tables live in their own module; importing it here registers them on the metadata
# Alembic and the schema tests compare against.
from callcenter.store import sql_sms_models as _sql_sms_models  # noqa: E402, F401
