"""Queue business hours, holidays, exit actions, ring timeout, wrap-up and the miss policy (migration).

Every new column has a server default, so queues stored by 0001 keep working: always open, hang up
with a message at every exit, 15 s ring timeout, 10 s wrap-up, pause after 3 misses.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("queues") as batch:
        batch.add_column(sa.Column("business_hours", _JSON, nullable=True))
        batch.add_column(sa.Column("holidays", _JSON, nullable=False, server_default=sa.text("'[]'")))
        for action in ("after_hours_action", "timeout_action", "no_agents_action"):
            batch.add_column(sa.Column(action, sa.String(length=16), nullable=False, server_default="hangup"))
        batch.add_column(sa.Column("ring_timeout_s", sa.Integer(), nullable=False, server_default="15"))
        batch.add_column(sa.Column("wrap_up_s", sa.Integer(), nullable=False, server_default="10"))
        batch.add_column(
            sa.Column("max_misses_before_pause", sa.Integer(), nullable=False, server_default="3")
        )


def downgrade() -> None:
    with op.batch_alter_table("queues") as batch:
        for column in (
            "max_misses_before_pause",
            "wrap_up_s",
            "ring_timeout_s",
            "no_agents_action",
            "timeout_action",
            "after_hours_action",
            "holidays",
            "business_hours",
        ):
            batch.drop_column(column)
