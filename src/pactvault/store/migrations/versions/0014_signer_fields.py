"""signers get their date, text and seal fields (beyond the one signature field)

Revision ID: 0014
Revises: 0003
Create Date: 2026-11-22 09:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("signers", sa.Column("extra_fields", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("signers") as batch:
        batch.drop_column("extra_fields")
