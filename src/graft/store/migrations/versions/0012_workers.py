"""Workers and their turns: who runs a turn, and whether that worker is still alive.

A ``workers`` table (one row per running ``graft`` process: its id, host, pid, start and
latest heartbeat) and a nullable ``worker_id`` column on ``turns`` (indexed), so that a
turn left ``running`` by a worker that died (``kill -9``, a crash, a lost machine) can be
marked ``interrupted`` by the others (``graft.heartbeat``). Turns stored before this revision
have no worker and are left as they are.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-20
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "workers",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", TIMESTAMP, nullable=False),
        sa.Column("heartbeat_at", TIMESTAMP, nullable=False),
    )
    # A nullable column with no default: SQLite adds it in place, no table rebuild.
    op.add_column("turns", sa.Column("worker_id", sa.String(64), nullable=True))
    op.create_index("ix_turns_worker_id", "turns", ["worker_id"])


def downgrade() -> None:
    # Not in batch mode: rebuilding ``turns`` would drop it with its messages (see 0011).
    op.drop_index("ix_turns_worker_id", table_name="turns")
    op.drop_column("turns", "worker_id")
    op.drop_table("workers")
