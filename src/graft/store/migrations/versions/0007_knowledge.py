"""Document knowledge: documents with their readers, and their chunks (graft.knowledge).

The full-text index (SQLite FTS5) is not here: it is derived from the chunks and made by
``graft.knowledge.index`` when it first starts.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)
ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "knowledge_documents",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("tenant", sa.String(255), nullable=False),
        sa.Column("collection", sa.String(255), nullable=False),
        sa.Column("source", sa.String(2048), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("media_type", sa.String(128), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("modified_at", TIMESTAMP, nullable=True),
        sa.Column("ingested_at", TIMESTAMP, nullable=False),
        sa.Column("everyone", sa.Boolean(), nullable=False),
        sa.Column("chunk_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_knowledge_documents"),
        sa.UniqueConstraint(
            "tenant",
            "collection",
            "source",
            name="uq_knowledge_documents_tenant_collection_source",
        ),
    )
    op.create_table(
        "knowledge_readers",
        sa.Column("document_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.PrimaryKeyConstraint("document_id", "kind", "name", name="pk_knowledge_readers"),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["knowledge_documents.id"],
            name="fk_knowledge_readers_document_id_knowledge_documents",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_knowledge_readers_kind_name", "knowledge_readers", ["kind", "name"])
    op.create_table(
        "knowledge_chunks",
        sa.Column("id", ROW_ID, autoincrement=True, nullable=False),
        sa.Column("document_id", sa.String(64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("heading", sa.Text(), nullable=False),
        sa.Column("page", sa.Integer(), nullable=True),
        sa.Column("char_start", sa.Integer(), nullable=False),
        sa.Column("char_end", sa.Integer(), nullable=False),
        sa.Column("embedding", sa.LargeBinary(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_knowledge_chunks"),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["knowledge_documents.id"],
            name="fk_knowledge_chunks_document_id_knowledge_documents",
            ondelete="CASCADE",
        ),
    )
    op.create_index(
        "ix_knowledge_chunks_document_id_position",
        "knowledge_chunks",
        ["document_id", "position"],
    )


def downgrade() -> None:
    op.drop_table("knowledge_chunks")
    op.drop_table("knowledge_readers")
    op.drop_table("knowledge_documents")
