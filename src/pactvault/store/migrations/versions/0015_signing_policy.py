"""organisation signing policy: minimum identity assurance of every signer

Revision ID: 0015
Revises: 0003
Create Date: 2026-11-22 08:55:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import pactvault.store.base

revision: str = "0015"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "org_signing_policies",
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("min_signer_assurance", sa.String(length=32), nullable=False),
        sa.Column(
            "updated_at", pactvault.store.base.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column("updated_by", sa.String(length=100), nullable=True),
        sa.CheckConstraint(
            "min_signer_assurance IN ('basic', 'verified-document', 'verified-3-factor', "
            "'verified-4-factor', 'verified-face')",
            name=op.f("ck_org_signing_policies_assurance_known"),
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organisations.id"],
            name=op.f("fk_org_signing_policies_org_id_organisations"),
        ),
        sa.PrimaryKeyConstraint("org_id", name=op.f("pk_org_signing_policies")),
    )


def downgrade() -> None:
    op.drop_table("org_signing_policies")
