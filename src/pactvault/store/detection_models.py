"""Tables of detection rules, automatic responses and shared rate limits (``pactvault.monitor``).

The audit journal is the single source of truth; everything here is *derived* from it or is
operational state that may be lost without losing evidence:

* ``monitor_cursors``: how far the detection engine has read the journal (``audit_events.seq``).
  Several API processes share one cursor; a lease (``scheduled_jobs``) makes one of them read at
  a time, and the cursor only moves after the batch's alerts and responses are committed, so a
  crash re-reads a batch (alerts are de-duplicated, responses are idempotent) and loses nothing.
* ``monitor_observations``: the journal events a rule counts, one row per (rule, event, key),
  the primary key making a re-read batch harmless. Windows are counted here (``COUNT(DISTINCT
  item)`` over ``occurred_at``), not in process memory; rows older than the longest window are
  pruned.
* ``monitor_known_networks`` / ``monitor_activity_hours``: per user or token, the networks (/24
  IPv4, /48 IPv6 — GeoIP is not available offline) and the hours of the day (UTC) it has been
  seen acting from: the history the "new network" and "unusual hours" rules compare with.
* ``monitor_rule_settings``: thresholds, windows and automatic actions per rule, for the
  platform (``scope`` ``*``) or one organisation (``scope`` = its id); defaults live in code.
* ``monitor_responses``: every automatic (or manual) action — slow down, require step-up, suspend,
  block an address — with its target, expiry and who lifted it. Enforcement reads the active
  ones (``lifted_at`` null, ``expires_at`` in the future) from here, so every process agrees.
* ``rate_limit_counters``: one row per limited key with the counts of the current and previous
  fixed windows (a sliding-window estimate), updated by one atomic upsert per request.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Index,
    Integer,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from pactvault.store.base import Base, UTCDateTime, utcnow

__all__ = [
    "RESPONSE_ACTIONS",
    "RESPONSE_TARGETS",
    "ActivityHour",
    "KnownNetwork",
    "MonitorCursor",
    "Observation",
    "RateLimitCounter",
    "Response",
    "RuleSetting",
]

RESPONSE_ACTIONS = ("slow-down", "step-up", "suspend", "block-ip")
RESPONSE_TARGETS = ("ip", "user", "token", "signer")
#: ``monitor_rule_settings.scope`` of the platform-wide row (organisation ids are UUIDs).
PLATFORM_SCOPE = "*"


def _new_id() -> str:
    return str(uuid.uuid4())


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class MonitorCursor(Base):
    __tablename__ = "monitor_cursors"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Observation(Base):
    __tablename__ = "monitor_observations"

    rule: Mapped[str] = mapped_column(String(40), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    key: Mapped[str] = mapped_column(String(120), primary_key=True)
    org_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    #: What is counted distinctly (a contract id, an account digest); the event id otherwise.
    item: Mapped[str] = mapped_column(String(120))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index("ix_monitor_observations_window", "rule", "key", "occurred_at"),
        Index("ix_monitor_observations_occurred_at", "occurred_at"),
    )


class KnownNetwork(Base):
    __tablename__ = "monitor_known_networks"

    subject: Mapped[str] = mapped_column(String(80), primary_key=True)  # user:<id> | token:<id>
    network: Mapped[str] = mapped_column(String(64), primary_key=True)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    seen: Mapped[int] = mapped_column(Integer, default=1)


class ActivityHour(Base):
    __tablename__ = "monitor_activity_hours"

    subject: Mapped[str] = mapped_column(String(80), primary_key=True)
    hour: Mapped[int] = mapped_column(Integer, primary_key=True)  # 0..23, UTC
    count: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (CheckConstraint("hour >= 0 AND hour <= 23", name="hour"),)


class RuleSetting(Base):
    __tablename__ = "monitor_rule_settings"

    scope: Mapped[str] = mapped_column(String(36), primary_key=True)
    rule: Mapped[str] = mapped_column(String(40), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    threshold: Mapped[int] = mapped_column(Integer)
    window_minutes: Mapped[int] = mapped_column(Integer)
    actions: Mapped[list[str]] = mapped_column(JSON, default=list)
    action_minutes: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(140))

    __table_args__ = (
        CheckConstraint("threshold >= 0", name="threshold"),
        CheckConstraint("window_minutes >= 1", name="window"),
        CheckConstraint("action_minutes >= 1", name="action_minutes"),
    )


class Response(Base):
    __tablename__ = "monitor_responses"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=_new_id)
    #: The rule that took it, or ``manual`` for an operator's block.
    rule: Mapped[str] = mapped_column(String(40))
    #: None: platform-wide (an address, seen before any organisation is known): operator only.
    org_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    action: Mapped[str] = mapped_column(String(16))
    target_type: Mapped[str] = mapped_column(String(16))
    target: Mapped[str] = mapped_column(String(80))
    alert_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    reason: Mapped[str] = mapped_column(String(300))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    lifted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    lifted_by: Mapped[str | None] = mapped_column(String(140), nullable=True)

    __table_args__ = (
        CheckConstraint(_in("action", RESPONSE_ACTIONS), name="action"),
        CheckConstraint(_in("target_type", RESPONSE_TARGETS), name="target_type"),
        Index("ix_monitor_responses_active", "lifted_at", "expires_at"),
        Index("ix_monitor_responses_target", "target_type", "target"),
        Index("ix_monitor_responses_org", "org_id", "created_at"),
    )


class RateLimitCounter(Base):
    __tablename__ = "rate_limit_counters"

    key: Mapped[str] = mapped_column(String(160), primary_key=True)
    #: Start of the current fixed window, in whole seconds since the epoch, and its length.
    window_start: Mapped[int] = mapped_column(BigInteger)
    window_seconds: Mapped[int] = mapped_column(Integer)
    count: Mapped[int] = mapped_column(Integer, default=0)
    #: The previous window's count, weighted into the sliding estimate.
    prev_count: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (Index("ix_rate_limit_counters_window", "window_start"),)
