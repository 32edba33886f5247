"""The organisation's security and integrity alerts: list, read, acknowledge, resolve.

Administrators and auditors (``alert.read``) see the alerts about their organisation's objects;
``alert.manage`` acknowledges and resolves them. Another organisation's alert and a platform-wide
one (the ledger, the audit journal) answer exactly like a missing id, and the refusal is audited:
platform-wide alerts are the instance operator's, handled with ``pactvault alerts`` on the server.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from pactvault.api.alert_schemas import (
    AlertDetailOut,
    AlertNoteIn,
    AlertOut,
    AlertPageOut,
)
from pactvault.api.deps import Caller, PlatformDep, allow
from pactvault.api.query import IsoDateTime, Offset
from pactvault.monitor.alerts import ALERT_MANAGE_PERMISSION, ALERT_READ_PERMISSION

router = APIRouter(prefix="/api/v1/org/alerts", tags=["alerts"])
AlertReader = Annotated[Caller, allow(ALERT_READ_PERMISSION)]
AlertManager = Annotated[Caller, allow(ALERT_MANAGE_PERMISSION)]


@router.get("", response_model=AlertPageOut)
def list_alerts(
    who: AlertReader,
    platform: PlatformDep,
    status: Annotated[
        list[str] | None,
        Query(description="open, acknowledged, resolved; repeat for several"),
    ] = None,
    severity: Annotated[
        list[str] | None, Query(description="info, warning, critical; repeat for several")
    ] = None,
    kind: Annotated[
        str | None,
        Query(max_length=66, description="One kind, or a prefix: integrity.*"),
    ] = None,
    since: Annotated[
        IsoDateTime | None,
        Query(description="Raised or seen again at or after this time (with a time zone)"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Offset = 0,
) -> AlertPageOut:
    """The organisation's alerts, newest first, with the number matching the filters."""
    page = platform.alerts.alert_page(
        who.principal,
        status=status,
        severity=severity,
        kind=kind,
        since=since,
        limit=limit,
        offset=offset,
        actor=who.actor,
    )
    return AlertPageOut(
        items=[AlertOut.of(a) for a in page.items], total=page.total, limit=limit, offset=offset
    )


@router.get("/{alert_id}", response_model=AlertDetailOut)
def get_alert(alert_id: str, who: AlertReader, platform: PlatformDep) -> AlertDetailOut:
    """One alert with its webhook deliveries (status, attempts, last error, next attempt)."""
    return AlertDetailOut.of_detail(platform.alerts.get_alert(who.principal, alert_id, who.actor))


@router.post("/{alert_id}/acknowledge", response_model=AlertOut)
def acknowledge_alert(
    alert_id: str,
    who: AlertManager,
    platform: PlatformDep,
    body: AlertNoteIn | None = None,
) -> AlertOut:
    """Someone is on it: the alert stays listed, and keeps counting detections, until resolved.
    Acknowledging twice, or a resolved alert, is a conflict (409)."""
    note = body.note if body else None
    return AlertOut.of(platform.alerts.acknowledge(who.principal, alert_id, note, who.actor))


@router.post("/{alert_id}/resolve", response_model=AlertOut)
def resolve_alert(
    alert_id: str,
    who: AlertManager,
    platform: PlatformDep,
    body: AlertNoteIn | None = None,
) -> AlertOut:
    """Closed. If the problem is detected again, a new alert opens. Resolving twice is a 409."""
    note = body.note if body else None
    return AlertOut.of(platform.alerts.resolve(who.principal, alert_id, note, who.actor))
