"""Turn citations: the passages a turn's answer cited, kept so a reloaded answer shows them.

A nullable ``citations`` column on ``turns``: a JSON list of the citations of the turn's
``cited`` event (``graft.knowledge.citations``), sealed at rest like the messages
(``graft.store.encrypted``); ``NULL`` for a turn that cited nothing, and for every turn
stored before this revision.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-10
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A nullable column with no default: SQLite adds it in place, no table rebuild.
    op.add_column("turns", sa.Column("citations", sa.Text(), nullable=True))


def downgrade() -> None:
    # Not in batch mode: rebuilding ``turns`` would drop it, and with it (foreign keys on)
    # every message, tool run, tag and rating. SQLite drops a column in place since 3.35.
    op.drop_column("turns", "citations")
