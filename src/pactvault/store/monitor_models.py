"""Tables of security monitoring (``pactvault.monitor``): alerts, their delivery outbox, job leases.

* ``alerts``: one row per *problem*, not per detection. ``fingerprint`` names the problem (kind,
  organisation and the exact object); ``open_fingerprint`` carries the same value while the alert
  is not resolved and is unique, so the database itself guarantees at most one unresolved alert
  per problem even when several processes detect it at once — a repeat bumps ``count`` and
  ``last_seen_at`` instead. Resolving clears ``open_fingerprint``, so a problem that comes back
  later opens a new alert. ``details`` holds object ids and hashes only, never content or
  secrets. ``org_id`` is deliberately not a foreign key: an alert about a damaged row (whose
  organisation id may itself be wrong) must always be storable.
* ``alert_deliveries``: the transactional outbox of notifications. A row is written in the same
  transaction as the alert it announces, so raising an alert never waits on the network, and
  ``deliver_pending`` sends (and retries) later. It names the endpoint, not its URL: webhook URLs
  are often capabilities themselves and stay in the configuration with their secrets.
* ``scheduled_jobs``: one row per periodic job (the integrity audit), holding who runs it now
  (a lease that expires, so a crashed process does not block it forever) and how the last run
  ended, so any number of processes can call ``run_if_due`` and exactly one runs it.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from pactvault.store.base import Base, UTCDateTime, utcnow

__all__ = [
    "ALERT_STATUSES",
    "DELIVERY_STATUSES",
    "SEVERITIES",
    "Alert",
    "AlertDelivery",
    "ScheduledJob",
]

SEVERITIES = ("info", "warning", "critical")
ALERT_STATUSES = ("open", "acknowledged", "resolved")
DELIVERY_STATUSES = ("pending", "delivered", "failed")


def _new_id() -> str:
    return str(uuid.uuid4())


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Alert(Base):
    __tablename__ = "alerts"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=_new_id)
    #: None: platform-wide (instance operators only); else the organisation whose object it is.
    org_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    kind: Mapped[str] = mapped_column(String(64))  # integrity.blob-mismatch, monitor.…
    severity: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(String(300))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    fingerprint: Mapped[str] = mapped_column(String(64), index=True)
    open_fingerprint: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True)
    count: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(16), default="open")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    acknowledged_by: Mapped[str | None] = mapped_column(String(140), nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    resolved_by: Mapped[str | None] = mapped_column(String(140), nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (
        CheckConstraint(_in("severity", SEVERITIES), name="severity"),
        CheckConstraint(_in("status", ALERT_STATUSES), name="status"),
        CheckConstraint("count >= 1", name="count_positive"),
        Index("ix_alerts_org_status", "org_id", "status", "created_at"),
    )


class AlertDelivery(Base):
    __tablename__ = "alert_deliveries"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=_new_id)
    alert_id: Mapped[str] = mapped_column(ForeignKey("alerts.id"), index=True)
    channel: Mapped[str] = mapped_column(String(16))  # webhook | email (monitor/alert_mail.py)
    endpoint: Mapped[str] = mapped_column(String(64))  # the configured endpoint's name
    #: The exact bytes that are signed and sent (canonical JSON; ids and hashes only).
    payload: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(300), nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (
        CheckConstraint(_in("status", DELIVERY_STATUSES), name="status"),
        Index("ix_alert_deliveries_due", "status", "next_attempt_at"),
    )


class ScheduledJob(Base):
    __tablename__ = "scheduled_jobs"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: Random token of the process running the job now; None when nobody is.
    holder: Mapped[str | None] = mapped_column(String(36), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_outcome: Mapped[str | None] = mapped_column(String(16), nullable=True)
    last_summary: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
