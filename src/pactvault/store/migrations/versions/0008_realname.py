"""real-name verification: encrypted personal data fields, index keys, verifications, evidence

Revision ID: 0008
Revises: 0003
Create Date: 2026-11-22 08:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import pactvault.store.base

revision: str = "0008"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LEVELS = "('public', 'internal', 'confidential', 'secret')"
SUBJECTS = "('user', 'signer')"


def upgrade() -> None:
    op.create_table(
        "personal_data_index_keys",
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", pactvault.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organisations.id"],
            name=op.f("fk_personal_data_index_keys_org_id_organisations"),
        ),
        sa.PrimaryKeyConstraint("org_id", name=op.f("pk_personal_data_index_keys")),
    )
    op.create_table(
        "personal_data",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("owner_type", sa.String(length=16), nullable=False),
        sa.Column("owner_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=False),
        sa.Column("search_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", pactvault.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(f"owner_type IN {SUBJECTS}", name=op.f("ck_personal_data_owner_type")),
        sa.CheckConstraint(
            "kind IN ('name', 'id_number', 'phone', 'bank_card', 'email')",
            name=op.f("ck_personal_data_kind"),
        ),
        sa.CheckConstraint(f"level IN {LEVELS}", name=op.f("ck_personal_data_level")),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organisations.id"],
            name=op.f("fk_personal_data_org_id_organisations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_personal_data")),
    )
    with op.batch_alter_table("personal_data", schema=None) as batch_op:
        batch_op.create_index(
            "ix_personal_data_owner", ["org_id", "owner_type", "owner_id"], unique=False
        )
        batch_op.create_index(
            "ix_personal_data_search", ["org_id", "kind", "search_hash"], unique=False
        )

    op.create_table(
        "identity_verifications",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("subject_type", sa.String(length=16), nullable=False),
        sa.Column("subject_id", sa.String(length=36), nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("method", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("assurance_level", sa.String(length=32), nullable=True),
        sa.Column("provider_reference", sa.String(length=200), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("name_field_id", sa.String(length=36), nullable=False),
        sa.Column("id_number_field_id", sa.String(length=36), nullable=False),
        sa.Column("phone_field_id", sa.String(length=36), nullable=True),
        sa.Column("bank_card_field_id", sa.String(length=36), nullable=True),
        sa.Column("email_field_id", sa.String(length=36), nullable=True),
        sa.Column("requested_by", sa.String(length=140), nullable=False),
        sa.Column("reviewer_user_id", sa.String(length=36), nullable=True),
        sa.Column("created_at", pactvault.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("checked_at", pactvault.store.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("decided_at", pactvault.store.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("expires_at", pactvault.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            f"subject_type IN {SUBJECTS}", name=op.f("ck_identity_verifications_subject_type")
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'verified', 'rejected', 'expired')",
            name=op.f("ck_identity_verifications_status"),
        ),
        sa.CheckConstraint(
            "status != 'verified' OR assurance_level IS NOT NULL",
            name=op.f("ck_identity_verifications_verified_has_level"),
        ),
        sa.ForeignKeyConstraint(
            ["bank_card_field_id"],
            ["personal_data.id"],
            name=op.f("fk_identity_verifications_bank_card_field_id_personal_data"),
        ),
        sa.ForeignKeyConstraint(
            ["email_field_id"],
            ["personal_data.id"],
            name=op.f("fk_identity_verifications_email_field_id_personal_data"),
        ),
        sa.ForeignKeyConstraint(
            ["id_number_field_id"],
            ["personal_data.id"],
            name=op.f("fk_identity_verifications_id_number_field_id_personal_data"),
        ),
        sa.ForeignKeyConstraint(
            ["name_field_id"],
            ["personal_data.id"],
            name=op.f("fk_identity_verifications_name_field_id_personal_data"),
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organisations.id"],
            name=op.f("fk_identity_verifications_org_id_organisations"),
        ),
        sa.ForeignKeyConstraint(
            ["phone_field_id"],
            ["personal_data.id"],
            name=op.f("fk_identity_verifications_phone_field_id_personal_data"),
        ),
        sa.ForeignKeyConstraint(
            ["reviewer_user_id"],
            ["users.id"],
            name=op.f("fk_identity_verifications_reviewer_user_id_users"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity_verifications")),
    )
    with op.batch_alter_table("identity_verifications", schema=None) as batch_op:
        batch_op.create_index(
            "ix_identity_verifications_status", ["status", "expires_at"], unique=False
        )
        batch_op.create_index(
            "ix_identity_verifications_subject",
            ["org_id", "subject_type", "subject_id"],
            unique=False,
        )

    op.create_table(
        "identity_evidence",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("verification_id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("media_type", sa.String(length=100), nullable=False),
        sa.Column("blob_key", sa.String(length=300), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=False),
        sa.Column("plaintext_size", sa.BigInteger(), nullable=False),
        sa.Column("plaintext_sha256", sa.String(length=64), nullable=False),
        sa.Column("ciphertext_sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", pactvault.store.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organisations.id"],
            name=op.f("fk_identity_evidence_org_id_organisations"),
        ),
        sa.ForeignKeyConstraint(
            ["verification_id"],
            ["identity_verifications.id"],
            name=op.f("fk_identity_evidence_verification_id_identity_verifications"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity_evidence")),
    )
    with op.batch_alter_table("identity_evidence", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_identity_evidence_verification_id"),
            ["verification_id"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("identity_evidence", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_identity_evidence_verification_id"))
    op.drop_table("identity_evidence")
    with op.batch_alter_table("identity_verifications", schema=None) as batch_op:
        batch_op.drop_index("ix_identity_verifications_subject")
        batch_op.drop_index("ix_identity_verifications_status")
    op.drop_table("identity_verifications")
    with op.batch_alter_table("personal_data", schema=None) as batch_op:
        batch_op.drop_index("ix_personal_data_search")
        batch_op.drop_index("ix_personal_data_owner")
    op.drop_table("personal_data")
    op.drop_table("personal_data_index_keys")
