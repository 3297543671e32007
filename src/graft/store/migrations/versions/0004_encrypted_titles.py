"""Titles are encrypted at rest: PostgreSQL's conversations.title becomes TEXT.

A title is the first user message, up to 80 characters; sealed (``graft.crypto``), it
takes up to about 480. SQLite does not enforce a VARCHAR length, so its column stays as it
is (rebuilding the table there would also cascade-delete every message of every
conversation while foreign keys are on). VARCHAR to TEXT rewrites nothing on PostgreSQL.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column(
            "conversations",
            "title",
            type_=sa.Text(),
            existing_type=sa.String(255),
            existing_nullable=False,
        )


def downgrade() -> None:
    # Fails while a sealed title longer than 255 characters is stored.
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column(
            "conversations",
            "title",
            type_=sa.String(255),
            existing_type=sa.Text(),
            existing_nullable=False,
        )
