"""Voicemails and their transcripts (migration).

New tables only: nothing stored by earlier revisions changes.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TIME = sa.DateTime(timezone=True)
_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "voicemails",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("call_id", sa.String(), nullable=True),
        sa.Column("queue", sa.String(), nullable=True),
        sa.Column("caller", sa.String(), nullable=False),
        sa.Column("recorded_at", _TIME, nullable=False),
        sa.Column("media_path", sa.String(), nullable=True),
        sa.Column("checksum", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("silent", sa.Boolean(), nullable=True),
        sa.Column("speech_ratio", sa.Float(), nullable=True),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("intents", _JSON, nullable=False),
        sa.Column("urgency", sa.String(length=16), nullable=False),
        sa.Column("preview", sa.Text(), nullable=False),
        sa.Column("updated_at", _TIME, nullable=False),
        sa.Column("audio_deleted_at", _TIME, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_voicemails")),
    )
    op.create_index(op.f("ix_voicemails_call_id"), "voicemails", ["call_id"])
    op.create_index(op.f("ix_voicemails_queue"), "voicemails", ["queue"])
    op.create_index(op.f("ix_voicemails_status"), "voicemails", ["status"])
    op.create_index("ix_voicemails_recorded_at_id", "voicemails", ["recorded_at", "id"])

    op.create_table(
        "voicemail_transcripts",
        sa.Column("voicemail_id", sa.String(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("language", sa.String(length=16), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("segments", _JSON, nullable=False),
        sa.Column("model", sa.String(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("transcribed_at", _TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["voicemail_id"],
            ["voicemails.id"],
            name=op.f("fk_voicemail_transcripts_voicemail_id_voicemails"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("voicemail_id", name=op.f("pk_voicemail_transcripts")),
    )


def downgrade() -> None:
    op.drop_table("voicemail_transcripts")
    op.drop_table("voicemails")
