"""ownership and classification: contracts know their creating account, level and amount;
members hold a clearance

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 06:50:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LEVELS = "('public', 'internal', 'confidential', 'secret')"


def upgrade() -> None:
    # Batch mode: SQLite cannot add a foreign key or CHECK constraint to an existing table in place.
    with op.batch_alter_table("contracts") as batch:
        batch.add_column(sa.Column("created_by_user_id", sa.String(length=36), nullable=True))
        batch.add_column(
            sa.Column(
                "classification",
                sa.String(length=16),
                nullable=False,
                server_default="internal",
            )
        )
        batch.add_column(sa.Column("amount_minor", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("currency", sa.String(length=3), nullable=True))
        batch.create_foreign_key(
            op.f("fk_contracts_created_by_user_id_users"), "users", ["created_by_user_id"], ["id"]
        )
        batch.create_index(
            op.f("ix_contracts_created_by_user_id"), ["created_by_user_id"], unique=False
        )
        batch.create_check_constraint(
            op.f("ck_contracts_classification"), f"classification IN {LEVELS}"
        )
        batch.create_check_constraint(
            op.f("ck_contracts_amount_not_negative"), "amount_minor IS NULL OR amount_minor >= 0"
        )
    with op.batch_alter_table("memberships") as batch:
        batch.add_column(
            sa.Column("clearance", sa.String(length=16), nullable=False, server_default="internal")
        )
        batch.create_check_constraint(op.f("ck_memberships_clearance"), f"clearance IN {LEVELS}")
    # The defaults served existing rows; new rows get theirs from the application.
    with op.batch_alter_table("contracts") as batch:
        batch.alter_column("classification", server_default=None)
    with op.batch_alter_table("memberships") as batch:
        batch.alter_column("clearance", server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("memberships") as batch:
        batch.drop_constraint(op.f("ck_memberships_clearance"), type_="check")
        batch.drop_column("clearance")
    with op.batch_alter_table("contracts") as batch:
        batch.drop_constraint(op.f("ck_contracts_amount_not_negative"), type_="check")
        batch.drop_constraint(op.f("ck_contracts_classification"), type_="check")
        batch.drop_index(op.f("ix_contracts_created_by_user_id"))
        batch.drop_constraint(op.f("fk_contracts_created_by_user_id_users"), type_="foreignkey")
        batch.drop_column("currency")
        batch.drop_column("amount_minor")
        batch.drop_column("classification")
        batch.drop_column("created_by_user_id")
