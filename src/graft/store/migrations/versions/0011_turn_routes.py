"""Turn routes: which route a turn's model came by, and how soon the model answered.

Two nullable columns on ``turns`` for the model registry (``graft.model_routing``):
``route`` (``primary``, ``canary``, or ``fallback`` when a canary failed and the primary
answered; the ``model`` column already names the model that answered) and
``first_token_ms`` (from the agent loop's start to its first event). ``NULL`` for every
turn stored before this revision. An index on ``started_at`` serves the per-model
reports (``graft models stats``), which read a time window of every conversation's turns.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-14
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable columns with no default: SQLite adds them in place, no table rebuild.
    op.add_column("turns", sa.Column("route", sa.String(16), nullable=True))
    op.add_column("turns", sa.Column("first_token_ms", sa.Float(), nullable=True))
    op.create_index("ix_turns_started_at", "turns", ["started_at"])


def downgrade() -> None:
    # Not in batch mode: rebuilding ``turns`` would drop it, and with it (foreign keys on)
    # every message, tool run, tag and rating. SQLite drops a column in place since 3.35.
    op.drop_index("ix_turns_started_at", table_name="turns")
    op.drop_column("turns", "first_token_ms")
    op.drop_column("turns", "route")
