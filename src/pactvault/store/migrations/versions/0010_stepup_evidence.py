"""step-up evidence: signatures keep the step-up proof; signers may give a mobile number and
must meet a required identity assurance

Revision ID: 0010
Revises: 0003
Create Date: 2026-11-22 07:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMN of nullable columns: no table rebuild, so existing rows are untouched.
    op.add_column("signers", sa.Column("phone_field_id", sa.String(length=36), nullable=True))
    op.add_column(
        "signers",
        sa.Column(
            "required_assurance", sa.String(length=32), nullable=False, server_default="basic"
        ),
    )
    op.add_column("signatures", sa.Column("stepup_proof", sa.Text(), nullable=True))
    op.add_column(
        "signatures", sa.Column("stepup_proof_sha256", sa.String(length=64), nullable=True)
    )


def downgrade() -> None:
    with op.batch_alter_table("signatures") as batch:
        batch.drop_column("stepup_proof_sha256")
        batch.drop_column("stepup_proof")
    with op.batch_alter_table("signers") as batch:
        batch.drop_column("required_assurance")
        batch.drop_column("phone_field_id")
