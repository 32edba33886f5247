"""detection rules, automatic responses, shared rate-limit counters

Revision ID: 0013
Revises: 0003
Create Date: 2026-12-02 09:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import pactvault.store.base

revision: str = "0013"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_DATETIME = pactvault.store.base.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "monitor_cursors",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_monitor_cursors")),
    )

    op.create_table(
        "monitor_observations",
        sa.Column("rule", sa.String(length=40), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("key", sa.String(length=120), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=True),
        sa.Column("item", sa.String(length=120), nullable=False),
        sa.Column("occurred_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("rule", "seq", "key", name=op.f("pk_monitor_observations")),
    )
    with op.batch_alter_table("monitor_observations", schema=None) as batch_op:
        batch_op.create_index(
            "ix_monitor_observations_window", ["rule", "key", "occurred_at"], unique=False
        )
        batch_op.create_index("ix_monitor_observations_occurred_at", ["occurred_at"], unique=False)

    op.create_table(
        "monitor_known_networks",
        sa.Column("subject", sa.String(length=80), nullable=False),
        sa.Column("network", sa.String(length=64), nullable=False),
        sa.Column("first_seen_at", UTC_DATETIME, nullable=False),
        sa.Column("last_seen_at", UTC_DATETIME, nullable=False),
        sa.Column("seen", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("subject", "network", name=op.f("pk_monitor_known_networks")),
    )

    op.create_table(
        "monitor_activity_hours",
        sa.Column("subject", sa.String(length=80), nullable=False),
        sa.Column("hour", sa.Integer(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.CheckConstraint("hour >= 0 AND hour <= 23", name=op.f("ck_monitor_activity_hours_hour")),
        sa.PrimaryKeyConstraint("subject", "hour", name=op.f("pk_monitor_activity_hours")),
    )

    op.create_table(
        "monitor_rule_settings",
        sa.Column("scope", sa.String(length=36), nullable=False),
        sa.Column("rule", sa.String(length=40), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("threshold", sa.Integer(), nullable=False),
        sa.Column("window_minutes", sa.Integer(), nullable=False),
        sa.Column("actions", sa.JSON(), nullable=False),
        sa.Column("action_minutes", sa.Integer(), nullable=False),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
        sa.Column("updated_by", sa.String(length=140), nullable=False),
        sa.CheckConstraint("threshold >= 0", name=op.f("ck_monitor_rule_settings_threshold")),
        sa.CheckConstraint("window_minutes >= 1", name=op.f("ck_monitor_rule_settings_window")),
        sa.CheckConstraint(
            "action_minutes >= 1", name=op.f("ck_monitor_rule_settings_action_minutes")
        ),
        sa.PrimaryKeyConstraint("scope", "rule", name=op.f("pk_monitor_rule_settings")),
    )

    op.create_table(
        "monitor_responses",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("rule", sa.String(length=40), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=True),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("target_type", sa.String(length=16), nullable=False),
        sa.Column("target", sa.String(length=80), nullable=False),
        sa.Column("alert_id", sa.String(length=36), nullable=True),
        sa.Column("reason", sa.String(length=300), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("expires_at", UTC_DATETIME, nullable=False),
        sa.Column("lifted_at", UTC_DATETIME, nullable=True),
        sa.Column("lifted_by", sa.String(length=140), nullable=True),
        sa.CheckConstraint(
            "action IN ('slow-down', 'step-up', 'suspend', 'block-ip')",
            name=op.f("ck_monitor_responses_action"),
        ),
        sa.CheckConstraint(
            "target_type IN ('ip', 'user', 'token', 'signer')",
            name=op.f("ck_monitor_responses_target_type"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_monitor_responses")),
    )
    with op.batch_alter_table("monitor_responses", schema=None) as batch_op:
        batch_op.create_index(
            "ix_monitor_responses_active", ["lifted_at", "expires_at"], unique=False
        )
        batch_op.create_index(
            "ix_monitor_responses_target", ["target_type", "target"], unique=False
        )
        batch_op.create_index("ix_monitor_responses_org", ["org_id", "created_at"], unique=False)

    op.create_table(
        "rate_limit_counters",
        sa.Column("key", sa.String(length=160), nullable=False),
        sa.Column("window_start", sa.BigInteger(), nullable=False),
        sa.Column("window_seconds", sa.Integer(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("prev_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_rate_limit_counters")),
    )
    with op.batch_alter_table("rate_limit_counters", schema=None) as batch_op:
        batch_op.create_index("ix_rate_limit_counters_window", ["window_start"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("rate_limit_counters", schema=None) as batch_op:
        batch_op.drop_index("ix_rate_limit_counters_window")
    op.drop_table("rate_limit_counters")
    with op.batch_alter_table("monitor_responses", schema=None) as batch_op:
        batch_op.drop_index("ix_monitor_responses_org")
        batch_op.drop_index("ix_monitor_responses_target")
        batch_op.drop_index("ix_monitor_responses_active")
    op.drop_table("monitor_responses")
    op.drop_table("monitor_rule_settings")
    op.drop_table("monitor_activity_hours")
    op.drop_table("monitor_known_networks")
    with op.batch_alter_table("monitor_observations", schema=None) as batch_op:
        batch_op.drop_index("ix_monitor_observations_occurred_at")
        batch_op.drop_index("ix_monitor_observations_window")
    op.drop_table("monitor_observations")
    op.drop_table("monitor_cursors")
