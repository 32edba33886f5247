"""The organisation's security and integrity alerts: list with filters, one alert with its
notification log, acknowledge and resolve.

The same service calls as ``api/routes/alerts.py``: ``alert.read`` to see them (administrators
and auditors), ``alert.manage`` to handle them. Another organisation's alert and a platform-wide
one (the instance operator's, handled with ``pactvault alerts``) answer exactly like a missing
id. The deliveries name the configured webhook endpoint, never its URL or secret.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from fastapi import APIRouter, Form, Path, Query, Request
from starlette.responses import Response

from pactvault.api.deps import Caller, PlatformDep
from pactvault.errors import InvalidInputError, PactvaultError
from pactvault.monitor.alerts import ALERT_MANAGE_PERMISSION, ALERT_READ_PERMISSION
from pactvault.platform import Platform
from pactvault.store.monitor_models import SEVERITIES
from pactvault.web.pages import PageRoute, redirect, translator
from pactvault.web.routes.organisation import failed, org_render
from pactvault.web.security import page_allow

router = APIRouter(route_class=PageRoute, include_in_schema=False)

AlertReader = Annotated[Caller, page_allow(ALERT_READ_PERMISSION)]
AlertManager = Annotated[Caller, page_allow(ALERT_MANAGE_PERMISSION)]
AlertId = Annotated[str, Path(min_length=1, max_length=36)]
Note = Annotated[str, Form(max_length=2000)]
ALERTS = "/organisation/alerts"
PAGE_SIZE = 25
#: The status filter's choices: the statuses each stands for ("unresolved" is the default view).
STATUS_VIEWS: dict[str, tuple[str, ...] | None] = {
    "unresolved": ("open", "acknowledged"),
    "open": ("open",),
    "acknowledged": ("acknowledged",),
    "resolved": ("resolved",),
    "all": None,
}
STATUS_VIEW_KEYS = {
    "unresolved": "alerts.view.unresolved",
    "open": "alerts.status.open",
    "acknowledged": "alerts.status.acknowledged",
    "resolved": "alerts.status.resolved",
    "all": "alerts.view.all",
}


@router.get(ALERTS)
def alert_list(
    request: Request,
    who: AlertReader,
    platform: PlatformDep,
    view: Annotated[
        Literal["unresolved", "open", "acknowledged", "resolved", "all"], Query()
    ] = "unresolved",
    severity: Annotated[Literal["info", "warning", "critical", ""], Query()] = "",
    kind: Annotated[str, Query(max_length=66)] = "",
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
) -> Response:
    """The organisation's alerts, newest first."""
    items: list[object] = []
    total = 0
    error = None
    try:
        found = platform.alerts.alert_page(
            who.principal,
            status=STATUS_VIEWS[view],
            severity=severity or None,
            kind=kind.strip() or None,
            limit=PAGE_SIZE,
            offset=(page - 1) * PAGE_SIZE,
            actor=who.actor,
        )
        items, total = list(found.items), found.total
    except InvalidInputError:
        error = translator(request)("alerts.bad_kind")
    query = {"view": view, "severity": severity, "kind": kind}
    return org_render(
        request,
        "alerts.html",
        {
            "items": items,
            "total": total,
            "page": page,
            "pages": max(1, math.ceil(total / PAGE_SIZE)),
            "view": view,
            "views": STATUS_VIEW_KEYS,
            "severity": severity,
            "severities": SEVERITIES,
            "kind": kind,
            "query": query,
            "error": error,
        },
        status=422 if error else 200,
    )


def render_alert(
    request: Request,
    platform: Platform,
    who: Caller,
    alert_id: str,
    *,
    error: str | None = None,
    status: int = 200,
) -> Response:
    detail = platform.alerts.get_alert(who.principal, alert_id, who.actor)
    return org_render(
        request,
        "alert.html",
        {"alert": detail.alert, "deliveries": detail.deliveries, "error": error},
        status=status,
    )


@router.get(ALERTS + "/{alert_id}")
def alert_page(
    alert_id: AlertId, request: Request, who: AlertReader, platform: PlatformDep
) -> Response:
    return render_alert(request, platform, who, alert_id)


@router.post(ALERTS + "/{alert_id}/acknowledge")
def acknowledge(
    alert_id: AlertId, request: Request, who: AlertManager, platform: PlatformDep, note: Note = ""
) -> Response:
    """Someone is on it: the alert stays listed, and keeps counting, until resolved."""
    try:
        platform.alerts.acknowledge(who.principal, alert_id, note or None, who.actor)
    except PactvaultError as exc:
        return failed(
            request, exc, lambda **kw: render_alert(request, platform, who, alert_id, **kw)
        )
    return redirect(request, f"{ALERTS}/{alert_id}", flash="flash.alerts.acknowledged")


@router.post(ALERTS + "/{alert_id}/resolve")
def resolve(
    alert_id: AlertId, request: Request, who: AlertManager, platform: PlatformDep, note: Note = ""
) -> Response:
    """Closed; if the problem is detected again, a new alert opens."""
    try:
        platform.alerts.resolve(who.principal, alert_id, note or None, who.actor)
    except PactvaultError as exc:
        return failed(
            request, exc, lambda **kw: render_alert(request, platform, who, alert_id, **kw)
        )
    return redirect(request, f"{ALERTS}/{alert_id}", flash="flash.alerts.resolved")
