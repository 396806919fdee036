"""SQLAlchemy tables of the SMS engine (edge); the repository over them is ``sql_sms.py``."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy import text as sql_text
from sqlalchemy.orm import Mapped, mapped_column

from callcenter.store.sql_models import Base, SerialId


class SmsContactRow(Base):
    __tablename__ = "sms_contacts"

    number: Mapped[str] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(server_default="")
    language: Mapped[str] = mapped_column(String(16), server_default="")
    time_zone: Mapped[str] = mapped_column(String(64), server_default="")
    region: Mapped[str] = mapped_column(String(16), server_default="")
    notes: Mapped[str] = mapped_column(Text(), server_default="")
    first_contact_at: Mapped[datetime | None]
    last_contact_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]


class SmsConsentRow(Base):
    __tablename__ = "sms_consent"
    __table_args__ = (UniqueConstraint("number_key", "seq", name="uq_sms_consent_number_key_seq"),)

    id: Mapped[int] = mapped_column(SerialId, primary_key=True, autoincrement=True)
    number_key: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int] = mapped_column(Integer())
    # The readable number and the evidence text are personal data: blanked by an erasure.
    number: Mapped[str | None]
    program: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str]
    at: Mapped[datetime]
    evidence_ref: Mapped[str]
    evidence_digest: Mapped[str] = mapped_column(String(64))
    evidence_text: Mapped[str | None] = mapped_column(Text())
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class SmsMessageRow(Base):
    __tablename__ = "sms_messages"
    __table_args__ = (
        Index("ix_sms_messages_number_created_at", "number", "created_at"),
        Index("ix_sms_messages_status_due_at", "status", "due_at"),
        Index("ix_sms_messages_provider_provider_id", "provider", "provider_id"),
    )

    id: Mapped[str] = mapped_column(primary_key=True)
    # Idempotency key of outbound messages (from the trigger) and of inbound ones (provider + id).
    key: Mapped[str | None] = mapped_column(unique=True)
    direction: Mapped[str] = mapped_column(String(16))
    number: Mapped[str]
    kind: Mapped[str | None] = mapped_column(String(16))
    program: Mapped[str] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(Text())
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    due_at: Mapped[datetime | None]
    claimed_until: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    updated_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer(), server_default="0")
    provider: Mapped[str] = mapped_column(String(32), server_default="")
    provider_id: Mapped[str] = mapped_column(server_default="")
    error: Mapped[str] = mapped_column(Text(), server_default="")
    call_id: Mapped[str | None]
    intent: Mapped[str] = mapped_column(String(32), server_default="")
    segments: Mapped[int] = mapped_column(Integer(), server_default="1")
    encoding: Mapped[str] = mapped_column(String(8), server_default="gsm7")
    actor: Mapped[str] = mapped_column(server_default="")
    needs_person: Mapped[bool] = mapped_column(Boolean(), server_default=sql_text("false"))


class SmsCallbackRequestRow(Base):
    __tablename__ = "sms_callback_requests"
    __table_args__ = (
        # One open request per number, enforced by the database.
        Index(
            "uq_sms_callback_requests_open_number",
            "number",
            unique=True,
            sqlite_where=sql_text("state = 'requested'"),
            postgresql_where=sql_text("state = 'requested'"),
        ),
    )

    id: Mapped[str] = mapped_column(primary_key=True)
    number: Mapped[str]
    message_id: Mapped[str] = mapped_column(ForeignKey("sms_messages.id"))
    state: Mapped[str] = mapped_column(String(16))
    requested_at: Mapped[datetime]
    cancelled_at: Mapped[datetime | None]
