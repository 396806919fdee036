"""Callbacks, their change log and slot bookings (migration).

New tables only. The partial unique index keeps one open callback per (queue, number) on both
dialects; its condition lists the open states of ``CallbackState``.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TIME = sa.DateTime(timezone=True)
_SERIAL = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
# Written out, not imported: a migration must not change when the code does.
_OPEN = "state IN ('connected', 'dialing', 'requested', 'retry_wait', 'scheduled')"


def upgrade() -> None:
    op.create_table(
        "callbacks",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("queue", sa.String(), nullable=False),
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=24), nullable=False),
        sa.Column("call_id", sa.String(), nullable=True),
        sa.Column("requested_at", _TIME, nullable=False),
        sa.Column("updated_at", _TIME, nullable=False),
        sa.Column("enqueued_at", _TIME, nullable=True),
        sa.Column("due_at", _TIME, nullable=True),
        sa.Column("window_start", _TIME, nullable=False),
        sa.Column("window_end", _TIME, nullable=False),
        sa.Column("window_early_ok", sa.Boolean(), nullable=False),
        sa.Column("slot_start", _TIME, nullable=True),
        sa.Column("client_key", sa.String(length=128), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_result", sa.String(length=16), nullable=True),
        sa.Column("first_dial_at", _TIME, nullable=True),
        sa.Column("handle_s", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_callbacks")),
        sa.UniqueConstraint("client_key", name=op.f("uq_callbacks_client_key")),
    )
    op.create_index(op.f("ix_callbacks_call_id"), "callbacks", ["call_id"])
    op.create_index("ix_callbacks_queue_state", "callbacks", ["queue", "state"])
    op.create_index("ix_callbacks_number", "callbacks", ["number"])
    op.create_index("ix_callbacks_requested_at", "callbacks", ["requested_at"])
    op.create_index(
        "uq_callbacks_open_queue_number",
        "callbacks",
        ["queue", "number"],
        unique=True,
        postgresql_where=sa.text(_OPEN),
        sqlite_where=sa.text(_OPEN),
    )

    op.create_table(
        "callback_changes",
        sa.Column("id", _SERIAL, autoincrement=True, nullable=False),
        sa.Column("callback_id", sa.String(), nullable=False),
        sa.Column("at", _TIME, nullable=False),
        sa.Column("previous", sa.String(length=24), nullable=True),
        sa.Column("state", sa.String(length=24), nullable=False),
        sa.Column("actor_kind", sa.String(length=16), nullable=False),
        sa.Column("actor_name", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("result", sa.String(length=16), nullable=True),
        sa.ForeignKeyConstraint(
            ["callback_id"],
            ["callbacks.id"],
            name=op.f("fk_callback_changes_callback_id_callbacks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_callback_changes")),
    )
    op.create_index(op.f("ix_callback_changes_callback_id"), "callback_changes", ["callback_id"])

    op.create_table(
        "callback_slots",
        sa.Column("queue", sa.String(), nullable=False),
        sa.Column("start", _TIME, nullable=False),
        sa.Column("booked", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("queue", "start", name=op.f("pk_callback_slots")),
    )


def downgrade() -> None:
    for table in ("callback_slots", "callback_changes", "callbacks"):
        op.drop_table(table)
