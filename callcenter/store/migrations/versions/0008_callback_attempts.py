"""Callback attempts, sources, claims, the dispatcher's fencing tokens and the do-not-call list (migration).

New tables only.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TIME = sa.DateTime(timezone=True)
_SERIAL = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "callback_attempts",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("callback_id", sa.String(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("fence", sa.BigInteger(), nullable=False),
        sa.Column("started_at", _TIME, nullable=False),
        sa.Column("agent_id", sa.String(), nullable=True),
        sa.Column("agent_tries", sa.Integer(), nullable=False),
        sa.Column("customer_dialled_at", _TIME, nullable=True),
        sa.Column("answered_at", _TIME, nullable=True),
        sa.Column("ended_at", _TIME, nullable=True),
        sa.Column("result", sa.String(length=16), nullable=True),
        sa.Column("cause", sa.String(), nullable=False),
        sa.ForeignKeyConstraint(
            ["callback_id"],
            ["callbacks.id"],
            name=op.f("fk_callback_attempts_callback_id_callbacks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_callback_attempts")),
        sa.UniqueConstraint("callback_id", "seq", name="uq_callback_attempts_callback_seq"),
    )
    op.create_index("ix_callback_attempts_open", "callback_attempts", ["ended_at"])
    op.create_table(
        "callback_sources",
        sa.Column("id", _SERIAL, autoincrement=True, nullable=False),
        sa.Column("callback_id", sa.String(), nullable=False),
        sa.Column("source", sa.String(length=24), nullable=False),
        sa.Column("at", _TIME, nullable=False),
        sa.Column("ref", sa.String(), nullable=False),
        sa.Column("note", sa.String(), nullable=False),
        sa.Column("merged", sa.Boolean(), nullable=False),
        sa.Column("owner_agent", sa.String(), nullable=True),
        sa.Column("owner_until", _TIME, nullable=True),
        sa.ForeignKeyConstraint(
            ["callback_id"],
            ["callbacks.id"],
            name=op.f("fk_callback_sources_callback_id_callbacks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_callback_sources")),
    )
    op.create_index(op.f("ix_callback_sources_callback_id"), "callback_sources", ["callback_id"])
    op.create_table(
        "dispatch_fences",
        sa.Column("role", sa.String(), nullable=False),
        sa.Column("token", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("role", name=op.f("pk_dispatch_fences")),
    )
    op.create_table(
        "do_not_call",
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("added_at", _TIME, nullable=False),
        sa.Column("added_by", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("number", name=op.f("pk_do_not_call")),
    )

    op.create_table(
        "callback_claims",
        sa.Column("callback_id", sa.String(), nullable=False),
        sa.Column("agent_id", sa.String(), nullable=False),
        sa.Column("until", _TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["callback_id"],
            ["callbacks.id"],
            name=op.f("fk_callback_claims_callback_id_callbacks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("callback_id", name=op.f("pk_callback_claims")),
    )


def downgrade() -> None:
    for table in (
        "callback_claims",
        "do_not_call",
        "dispatch_fences",
        "callback_sources",
        "callback_attempts",
    ):
        op.drop_table(table)
