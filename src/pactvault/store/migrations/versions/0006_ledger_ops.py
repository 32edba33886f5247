"""ledger operations: log key, leaf lookup index, audit anchors

Revision ID: 0006
Revises: 0003
Create Date: 2026-11-22 08:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import pactvault.store.base

revision: str = "0006"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_LEAF_INDEX = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "ledger_keys",
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("public_key", sa.LargeBinary(), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=False),
        sa.Column("sealed_private_key", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", pactvault.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("role IN ('log')", name=op.f("ck_ledger_keys_role")),
        sa.PrimaryKeyConstraint("role", name=op.f("pk_ledger_keys")),
    )
    op.create_table(
        "ledger_leaf_index",
        sa.Column("leaf_index", _LEAF_INDEX, autoincrement=False, nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(), nullable=False),
        sa.Column("event_type", sa.String(length=32), nullable=False),
        sa.Column("contract_id", sa.String(length=36), nullable=True),
        sa.PrimaryKeyConstraint("leaf_index", name=op.f("pk_ledger_leaf_index")),
    )
    with op.batch_alter_table("ledger_leaf_index", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ledger_leaf_index_contract_id"), ["contract_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_ledger_leaf_index_leaf_hash"), ["leaf_hash"], unique=False
        )
    op.create_table(
        "ledger_anchors",
        sa.Column("leaf_index", _LEAF_INDEX, autoincrement=False, nullable=False),
        sa.Column("audit_seq", sa.BigInteger(), nullable=False),
        sa.Column("audit_hash", sa.String(length=64), nullable=False),
        sa.Column("anchored_at", pactvault.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("leaf_index", name=op.f("pk_ledger_anchors")),
        sa.UniqueConstraint("audit_seq", name=op.f("uq_ledger_anchors_audit_seq")),
    )


def downgrade() -> None:
    op.drop_table("ledger_anchors")
    with op.batch_alter_table("ledger_leaf_index", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ledger_leaf_index_leaf_hash"))
        batch_op.drop_index(batch_op.f("ix_ledger_leaf_index_contract_id"))
    op.drop_table("ledger_leaf_index")
    op.drop_table("ledger_keys")
