"""Statistics: 15-minute interval rows per queue, the missed-call list, the folded-call markers and the
wallboard's settings (migration).

New tables only. They are rebuildable from the stored calls (``callcenter stats rebuild``).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TIME = sa.DateTime(timezone=True)
_COUNTS = (
    "offered",
    "answered",
    "answered_in_sl",
    "abandoned",
    "short_abandoned",
    "missed",
    "missed_closable",
    "missed_closed",
)


def upgrade() -> None:
    op.create_table(
        "stats_intervals",
        sa.Column("queue", sa.String(), nullable=False),
        sa.Column("start", _TIME, nullable=False),
        *(sa.Column(name, sa.Integer(), nullable=False) for name in _COUNTS),
        sa.Column("wait_answered_s", sa.Float(), nullable=False),
        sa.Column("talk_s", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("queue", "start", name=op.f("pk_stats_intervals")),
    )
    op.create_index("ix_stats_intervals_start", "stats_intervals", ["start"])
    op.create_table(
        "stats_missed",
        sa.Column("call_id", sa.String(), nullable=False),
        sa.Column("queue", sa.String(), nullable=False),
        sa.Column("caller", sa.String(), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("ended_at", _TIME, nullable=False),
        sa.Column("closable", sa.Boolean(), nullable=False),
        sa.Column("closed_at", _TIME, nullable=True),
        sa.Column("closed_by_agent", sa.String(), nullable=True),
        sa.Column("closed_by_call", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("call_id", name=op.f("pk_stats_missed")),
    )
    op.create_index(op.f("ix_stats_missed_caller"), "stats_missed", ["caller"])
    op.create_index(op.f("ix_stats_missed_ended_at"), "stats_missed", ["ended_at"])
    op.create_table(
        "stats_applied",
        sa.Column("call_id", sa.String(), nullable=False),
        sa.Column("ended_at", _TIME, nullable=False),
        sa.PrimaryKeyConstraint("call_id", name=op.f("pk_stats_applied")),
    )
    op.create_index(op.f("ix_stats_applied_ended_at"), "stats_applied", ["ended_at"])
    op.create_table(
        "wallboard_settings",
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("value", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False),
        sa.Column("updated_at", _TIME, nullable=False),
        sa.Column("updated_by", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_wallboard_settings")),
    )


def downgrade() -> None:
    for table in ("wallboard_settings", "stats_applied", "stats_missed", "stats_intervals"):
        op.drop_table(table)
