"""evidence ledger: leaves, tiles, head, checkpoints

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 05:14:31.773357
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import pactvault.store.base

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APPEND_ONLY_MESSAGE = "ledger is append-only"
EMPTY_ROOT_HEX = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"  # SHA-256("")
TILE_BYTES = 30 * 32  # a full tile: 16 + 8 + 4 + 2 hashes of 32 bytes


def upgrade() -> None:
    op.create_table(
        "ledger_checkpoints",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("origin", sa.String(length=255), nullable=False),
        sa.Column("tree_size", sa.BigInteger(), nullable=False),
        sa.Column("root_hash", sa.LargeBinary(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column(
            "published_at", pactvault.store.base.UTCDateTime(timezone=True), nullable=False
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_ledger_checkpoints")),
    )
    with op.batch_alter_table("ledger_checkpoints", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ledger_checkpoints_tree_size"), ["tree_size"], unique=False
        )

    op.create_table(
        "ledger_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("tree_size", sa.BigInteger(), nullable=False),
        sa.Column("root_hash", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_head")),
    )
    op.create_table(
        "ledger_leaves",
        sa.Column(
            "leaf_index",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=False,
            nullable=False,
        ),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("leaf_index", name=op.f("pk_ledger_leaves")),
    )
    op.create_table(
        "ledger_tiles",
        sa.Column(
            "tile_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=False,
            nullable=False,
        ),
        sa.Column("hashes", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("tile_id", name=op.f("pk_ledger_tiles")),
    )

    # The empty tree; appends lock this row to stay linear.
    head = sa.table(
        "ledger_head",
        sa.column("id", sa.Integer()),
        sa.column("tree_size", sa.BigInteger()),
        sa.column("root_hash", sa.LargeBinary()),
    )
    op.bulk_insert(head, [{"id": 1, "tree_size": 0, "root_hash": bytes.fromhex(EMPTY_ROOT_HEX)}])
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_guards()
    else:
        _postgresql_guards()


def _sqlite_guards() -> None:
    """Leaves and checkpoints never change; tiles only grow; the head never shrinks."""
    abort = f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY_MESSAGE}'); END"
    for table in ("ledger_leaves", "ledger_checkpoints"):
        op.execute(f"CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table} {abort}")
    for table in ("ledger_leaves", "ledger_checkpoints", "ledger_tiles", "ledger_head"):
        op.execute(f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} {abort}")
    op.execute(
        "CREATE TRIGGER ledger_tiles_only_grow BEFORE UPDATE ON ledger_tiles "
        "WHEN NEW.tile_id IS NOT OLD.tile_id "
        f"OR length(NEW.hashes) < length(OLD.hashes) OR length(NEW.hashes) > {TILE_BYTES} "
        "OR substr(NEW.hashes, 1, length(OLD.hashes)) IS NOT OLD.hashes "
        f"{abort}"
    )
    op.execute(
        "CREATE TRIGGER ledger_head_only_grows BEFORE UPDATE ON ledger_head "
        "WHEN NEW.id IS NOT OLD.id OR NEW.tree_size < OLD.tree_size "
        "OR (NEW.tree_size = OLD.tree_size AND NEW.root_hash IS NOT OLD.root_hash) "
        f"{abort}"
    )


def _postgresql_guards() -> None:
    raise_it = f"RAISE EXCEPTION '{APPEND_ONLY_MESSAGE}';"
    op.execute(
        "CREATE FUNCTION pactvault_ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS "
        f"$$ BEGIN {raise_it} END $$"
    )
    op.execute(
        "CREATE FUNCTION pactvault_ledger_tile_grows() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "BEGIN IF NEW.tile_id <> OLD.tile_id "
        f"OR length(NEW.hashes) < length(OLD.hashes) OR length(NEW.hashes) > {TILE_BYTES} "
        "OR substring(NEW.hashes FROM 1 FOR length(OLD.hashes)) <> OLD.hashes "
        f"THEN {raise_it} END IF; RETURN NEW; END $$"
    )
    op.execute(
        "CREATE FUNCTION pactvault_ledger_head_grows() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "BEGIN IF NEW.id <> OLD.id OR NEW.tree_size < OLD.tree_size "
        "OR (NEW.tree_size = OLD.tree_size AND NEW.root_hash <> OLD.root_hash) "
        f"THEN {raise_it} END IF; RETURN NEW; END $$"
    )
    for table in ("ledger_leaves", "ledger_checkpoints"):
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION pactvault_ledger_append_only()"
        )
    for table in ("ledger_tiles", "ledger_head"):
        op.execute(
            f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION pactvault_ledger_append_only()"
        )
    op.execute(
        "CREATE TRIGGER ledger_tiles_only_grow BEFORE UPDATE ON ledger_tiles "
        "FOR EACH ROW EXECUTE FUNCTION pactvault_ledger_tile_grows()"
    )
    op.execute(
        "CREATE TRIGGER ledger_head_only_grows BEFORE UPDATE ON ledger_head "
        "FOR EACH ROW EXECUTE FUNCTION pactvault_ledger_head_grows()"
    )
    for table in ("ledger_leaves", "ledger_checkpoints", "ledger_tiles", "ledger_head"):
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION pactvault_ledger_append_only()"
        )


def downgrade() -> None:
    # Dropping the tables drops their triggers with them; only the PostgreSQL functions remain.
    op.drop_table("ledger_tiles")
    op.drop_table("ledger_leaves")
    op.drop_table("ledger_head")
    with op.batch_alter_table("ledger_checkpoints", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ledger_checkpoints_tree_size"))
    op.drop_table("ledger_checkpoints")
    if op.get_bind().dialect.name != "sqlite":
        for function in ("append_only", "tile_grows", "head_grows"):
            op.execute(f"DROP FUNCTION IF EXISTS pactvault_ledger_{function}()")
