"""Agent schedules and their shifts, and the log of wait predictions (migration).

New tables only: nothing stored by 0001 and 0002 changes.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TIME = sa.DateTime(timezone=True)
_SERIAL = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "schedules",
        sa.Column("agent_id", sa.String(), nullable=False),
        sa.Column("updated_at", _TIME, nullable=False),
        sa.Column("updated_by", sa.String(), nullable=False),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agents.id"], name=op.f("fk_schedules_agent_id_agents"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("agent_id", name=op.f("pk_schedules")),
    )

    op.create_table(
        "shifts",
        sa.Column("id", _SERIAL, autoincrement=True, nullable=False),
        sa.Column("agent_id", sa.String(), nullable=False),
        sa.Column("weekday", sa.Integer(), nullable=False),
        sa.Column("start_min", sa.Integer(), nullable=False),
        sa.Column("end_min", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["schedules.agent_id"],
            name=op.f("fk_shifts_agent_id_schedules"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shifts")),
    )
    op.create_index(op.f("ix_shifts_agent_id"), "shifts", ["agent_id"])

    op.create_table(
        "predictions",
        sa.Column("id", _SERIAL, autoincrement=True, nullable=False),
        sa.Column("call_id", sa.String(), nullable=False),
        sa.Column("queue", sa.String(), nullable=False),
        sa.Column("at", _TIME, nullable=False),
        sa.Column("predictor", sa.String(length=16), nullable=False),
        sa.Column("mean_s", sa.Float(), nullable=False),
        sa.Column("p80_s", sa.Float(), nullable=False),
        sa.Column("p90_s", sa.Float(), nullable=False),
        sa.Column("announced", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_predictions")),
    )
    op.create_index(op.f("ix_predictions_call_id"), "predictions", ["call_id"])
    op.create_index("ix_predictions_queue_at", "predictions", ["queue", "at"])


def downgrade() -> None:
    for table in ("predictions", "shifts", "schedules"):
        op.drop_table(table)
