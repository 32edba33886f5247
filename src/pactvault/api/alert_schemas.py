"""Bodies of the alert routes.

Built field by field from the stored rows (never ``from_attributes`` on the whole row), so a
column added later cannot leak by accident: deliveries name the configured endpoint, never its
URL (often a capability itself) or its signing secret, and the signed payload is not repeated.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from pactvault.monitor.alerts import MAX_NOTE, AlertDetail
from pactvault.store.monitor_models import Alert, AlertDelivery


class AlertOut(BaseModel):
    id: str
    kind: str
    severity: str
    title: str
    details: dict[str, Any] = Field(description="Object ids and hashes: what differs, exactly")
    count: int = Field(description="How many times the problem was detected while unresolved")
    status: str
    created_at: datetime
    last_seen_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None
    resolved_by: str | None
    note: str | None

    @classmethod
    def of(cls, a: Alert) -> AlertOut:
        return cls(
            id=a.id,
            kind=a.kind,
            severity=a.severity,
            title=a.title,
            details=dict(a.details or {}),
            count=a.count,
            status=a.status,
            created_at=a.created_at,
            last_seen_at=a.last_seen_at,
            acknowledged_at=a.acknowledged_at,
            acknowledged_by=a.acknowledged_by,
            resolved_at=a.resolved_at,
            resolved_by=a.resolved_by,
            note=a.note,
        )


class DeliveryOut(BaseModel):
    """One notification of an alert and how it went."""

    id: str = Field(description="Sent as the webhook-id header; the same on every retry")
    channel: str
    endpoint: str = Field(
        description="webhook: the configured endpoint's name (not its URL); email: "
        "user:<user id> or operator:<n> (never the address)"
    )
    status: str = Field(description="pending, delivered or failed (given up)")
    attempts: int
    last_attempt_at: datetime | None
    next_attempt_at: datetime | None = Field(description="When it is retried; null unless pending")
    last_status_code: int | None
    last_error: str | None
    delivered_at: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, d: AlertDelivery) -> DeliveryOut:
        return cls(
            id=d.id,
            channel=d.channel,
            endpoint=d.endpoint,
            status=d.status,
            attempts=d.attempts,
            last_attempt_at=d.last_attempt_at,
            next_attempt_at=d.next_attempt_at if d.status == "pending" else None,
            last_status_code=d.last_status_code,
            last_error=d.last_error,
            delivered_at=d.delivered_at,
            created_at=d.created_at,
        )


class AlertDetailOut(AlertOut):
    deliveries: list[DeliveryOut]

    @classmethod
    def of_detail(cls, detail: AlertDetail) -> AlertDetailOut:
        return cls(
            **AlertOut.of(detail.alert).model_dump(),
            deliveries=[DeliveryOut.of(d) for d in detail.deliveries],
        )


class AlertPageOut(BaseModel):
    items: list[AlertOut]
    total: int
    limit: int
    offset: int


class AlertNoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str | None = Field(
        default=None, max_length=MAX_NOTE, description="Why: kept with the alert and audited"
    )
