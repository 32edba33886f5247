"""witnessing: witness key and witnessed logs; our witnesses' state and their cosignatures

Revision ID: 0011
Revises: 0003
Create Date: 2026-11-22 09:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import pactvault.store.base

revision: str = "0011"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
GUARD_MESSAGE = "a witness never forgets or rewinds a log it witnessed"


def upgrade() -> None:
    op.create_table(
        "witness_keys",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("public_key", sa.LargeBinary(), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=False),
        sa.Column("sealed_private_key", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", pactvault.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_witness_keys_single")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_witness_keys")),
    )
    op.create_table(
        "witnessed_logs",
        sa.Column("origin", sa.String(length=255), nullable=False),
        sa.Column("tree_size", sa.BigInteger(), nullable=False),
        sa.Column("root_hash", sa.LargeBinary(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("cosigned_at", pactvault.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("tree_size >= 0", name=op.f("ck_witnessed_logs_size_not_negative")),
        sa.PrimaryKeyConstraint("origin", name=op.f("pk_witnessed_logs")),
    )
    op.create_table(
        "ledger_witness_state",
        sa.Column("witness_name", sa.String(length=255), nullable=False),
        sa.Column("witness_key_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("cosigned_size", sa.BigInteger(), nullable=False),
        sa.Column(
            "last_attempt_at", pactvault.store.base.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column(
            "last_success_at", pactvault.store.base.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("last_error", sa.String(length=300), nullable=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "witness_name", "witness_key_id", name=op.f("pk_ledger_witness_state")
        ),
    )
    op.create_table(
        "ledger_cosignatures",
        sa.Column("id", _SEQ, autoincrement=True, nullable=False),
        sa.Column("checkpoint_seq", _SEQ, nullable=False),
        sa.Column("witness_name", sa.String(length=255), nullable=False),
        sa.Column("witness_key_id", sa.BigInteger(), nullable=False),
        sa.Column("tree_size", sa.BigInteger(), nullable=False),
        sa.Column("root_hash", sa.LargeBinary(), nullable=False),
        sa.Column("signature", sa.LargeBinary(), nullable=False),
        sa.Column("cosigned_at", pactvault.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("received_at", pactvault.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["checkpoint_seq"],
            ["ledger_checkpoints.seq"],
            name=op.f("fk_ledger_cosignatures_checkpoint_seq_ledger_checkpoints"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_cosignatures")),
        sa.UniqueConstraint(
            "checkpoint_seq",
            "witness_name",
            "witness_key_id",
            name=op.f("uq_ledger_cosignatures_checkpoint_seq"),
        ),
    )
    with op.batch_alter_table("ledger_cosignatures", schema=None) as batch_op:
        batch_op.create_index("ix_ledger_cosignatures_tree_size", ["tree_size"], unique=False)
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_guards()
    else:
        _postgresql_guards()


def _sqlite_guards() -> None:
    """A witnessed log's row only moves forward, and is never deleted."""
    abort = f"BEGIN SELECT RAISE(ABORT, '{GUARD_MESSAGE}'); END"
    op.execute(
        "CREATE TRIGGER witnessed_logs_only_grow BEFORE UPDATE ON witnessed_logs "
        "WHEN NEW.origin IS NOT OLD.origin OR NEW.tree_size < OLD.tree_size "
        "OR (NEW.tree_size = OLD.tree_size AND NEW.root_hash IS NOT OLD.root_hash) "
        f"{abort}"
    )
    op.execute(f"CREATE TRIGGER witnessed_logs_no_delete BEFORE DELETE ON witnessed_logs {abort}")


def _postgresql_guards() -> None:
    raise_it = f"RAISE EXCEPTION '{GUARD_MESSAGE}';"
    op.execute(
        "CREATE FUNCTION pactvault_witnessed_log_grows() RETURNS trigger LANGUAGE plpgsql AS $$ "
        f"BEGIN IF TG_OP <> 'UPDATE' THEN {raise_it} END IF; "
        "IF NEW.origin <> OLD.origin OR NEW.tree_size < OLD.tree_size "
        "OR (NEW.tree_size = OLD.tree_size AND NEW.root_hash <> OLD.root_hash) "
        f"THEN {raise_it} END IF; RETURN NEW; END $$"
    )
    op.execute(
        "CREATE TRIGGER witnessed_logs_only_grow BEFORE UPDATE OR DELETE ON witnessed_logs "
        "FOR EACH ROW EXECUTE FUNCTION pactvault_witnessed_log_grows()"
    )
    op.execute(
        "CREATE TRIGGER witnessed_logs_no_truncate BEFORE TRUNCATE ON witnessed_logs "
        "FOR EACH STATEMENT EXECUTE FUNCTION pactvault_witnessed_log_grows()"
    )


def downgrade() -> None:
    op.drop_table("ledger_cosignatures")
    op.drop_table("ledger_witness_state")
    op.drop_table("witnessed_logs")
    op.drop_table("witness_keys")
    if op.get_bind().dialect.name != "sqlite":
        op.execute("DROP FUNCTION IF EXISTS pactvault_witnessed_log_grows()")
