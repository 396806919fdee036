"""SMS follow-up: contacts, the consent ledger, the outbox and threads, callback requests (migration).

New tables only: nothing stored by earlier revisions changes.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TIME = sa.DateTime(timezone=True)
_SERIAL = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "sms_contacts",
        sa.Column("number", sa.String(), nullable=False),
        sa.Column("name", sa.String(), server_default="", nullable=False),
        sa.Column("language", sa.String(16), server_default="", nullable=False),
        sa.Column("time_zone", sa.String(64), server_default="", nullable=False),
        sa.Column("region", sa.String(16), server_default="", nullable=False),
        sa.Column("notes", sa.Text(), server_default="", nullable=False),
        sa.Column("first_contact_at", _TIME, nullable=True),
        sa.Column("last_contact_at", _TIME, nullable=True),
        sa.Column("updated_at", _TIME, nullable=False),
        sa.PrimaryKeyConstraint("number", name=op.f("pk_sms_contacts")),
    )
    op.create_table(
        "sms_consent",
        sa.Column("id", _SERIAL, autoincrement=True, nullable=False),
        sa.Column("number_key", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(), nullable=True),
        sa.Column("program", sa.String(32), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("at", _TIME, nullable=False),
        sa.Column("evidence_ref", sa.String(), nullable=False),
        sa.Column("evidence_digest", sa.String(64), nullable=False),
        sa.Column("evidence_text", sa.Text(), nullable=True),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sms_consent")),
        sa.UniqueConstraint("number_key", "seq", name="uq_sms_consent_number_key_seq"),
    )
    op.create_table(
        "sms_messages",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("key", sa.String(), nullable=True),
        sa.Column("direction", sa.String(16), nullable=False),
        sa.Column("number", sa.String(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=True),
        sa.Column("program", sa.String(32), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("due_at", _TIME, nullable=True),
        sa.Column("claimed_until", _TIME, nullable=True),
        sa.Column("sent_at", _TIME, nullable=True),
        sa.Column("updated_at", _TIME, nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("provider", sa.String(32), server_default="", nullable=False),
        sa.Column("provider_id", sa.String(), server_default="", nullable=False),
        sa.Column("error", sa.Text(), server_default="", nullable=False),
        sa.Column("call_id", sa.String(), nullable=True),
        sa.Column("intent", sa.String(32), server_default="", nullable=False),
        sa.Column("segments", sa.Integer(), server_default="1", nullable=False),
        sa.Column("encoding", sa.String(8), server_default="gsm7", nullable=False),
        sa.Column("actor", sa.String(), server_default="", nullable=False),
        sa.Column("needs_person", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sms_messages")),
        sa.UniqueConstraint("key", name=op.f("uq_sms_messages_key")),
    )
    op.create_index("ix_sms_messages_number_created_at", "sms_messages", ["number", "created_at"])
    op.create_index("ix_sms_messages_status_due_at", "sms_messages", ["status", "due_at"])
    op.create_index("ix_sms_messages_provider_provider_id", "sms_messages", ["provider", "provider_id"])
    op.create_table(
        "sms_callback_requests",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("number", sa.String(), nullable=False),
        sa.Column("message_id", sa.String(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("requested_at", _TIME, nullable=False),
        sa.Column("cancelled_at", _TIME, nullable=True),
        sa.ForeignKeyConstraint(
            ["message_id"], ["sms_messages.id"], name=op.f("fk_sms_callback_requests_message_id_sms_messages")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sms_callback_requests")),
    )
    op.create_index(
        "uq_sms_callback_requests_open_number",
        "sms_callback_requests",
        ["number"],
        unique=True,
        sqlite_where=sa.text("state = 'requested'"),
        postgresql_where=sa.text("state = 'requested'"),
    )


def downgrade() -> None:
    op.drop_index("uq_sms_callback_requests_open_number", table_name="sms_callback_requests")
    op.drop_table("sms_callback_requests")
    op.drop_index("ix_sms_messages_provider_provider_id", table_name="sms_messages")
    op.drop_index("ix_sms_messages_status_due_at", table_name="sms_messages")
    op.drop_index("ix_sms_messages_number_created_at", table_name="sms_messages")
    op.drop_table("sms_messages")
    op.drop_table("sms_consent")
    op.drop_table("sms_contacts")
