"""Sentiments: one tag per turn's user message, with the conversation's owner and assistant.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "sentiments",
        sa.Column("turn_id", sa.String(64), nullable=False),
        sa.Column("conversation_id", sa.String(64), nullable=False),
        sa.Column("tenant", sa.String(255), nullable=False),
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("assistant", sa.String(255), nullable=False),
        sa.Column("label", sa.String(16), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("emotion", sa.String(32), nullable=True),
        sa.Column("backend", sa.String(255), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("turn_id", name="pk_sentiments"),
        sa.ForeignKeyConstraint(
            ["turn_id"], ["turns.id"], name="fk_sentiments_turn_id_turns", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name="fk_sentiments_conversation_id_conversations",
            ondelete="CASCADE",
        ),
    )
    op.create_index(
        "ix_sentiments_conversation_id_created_at", "sentiments", ["conversation_id", "created_at"]
    )
    op.create_index(
        "ix_sentiments_tenant_assistant_created_at",
        "sentiments",
        ["tenant", "assistant", "created_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_sentiments_tenant_assistant_created_at", table_name="sentiments")
    op.drop_index("ix_sentiments_conversation_id_created_at", table_name="sentiments")
    op.drop_table("sentiments")
