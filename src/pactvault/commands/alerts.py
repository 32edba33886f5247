"""``pactvault alerts …``: the instance operator's view of alerts, on the server machine.

Organisation administrators handle their alerts over the API; platform-wide alerts (the evidence
ledger, the audit journal) have no API reader and are the operator's. So:

- ``list`` shows every alert (``--org`` one organisation's, ``--platform`` only platform-wide);
- ``show`` prints one alert with its webhook deliveries (status, attempts, last error, next try);
- ``ack`` / ``resolve`` handle a platform-wide alert, or an organisation's only when ``--org``
  names that organisation, so a mistyped id never closes another tenant's alert;
- ``deliver`` sends the notifications that are due now and shows how each went.

Exit codes follow ``commands.common``: 0 done, 2 a usage or input error (unknown id, a resolved
alert, a bad filter), 3 an operational error — including ``deliver`` when a notification did not
go through. ``--json`` prints machine-readable output on stdout and nothing else there.
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from pactvault.audit.journal import Actor
from pactvault.commands.common import (
    EXIT_ERROR,
    EXIT_USAGE,
    HomeOption,
    console,
    err,
    fail,
    settings_for,
)
from pactvault.errors import PactvaultError
from pactvault.monitor.alerts import AlertDetail, AlertScopeError, AlertService

if TYPE_CHECKING:
    from pactvault.store.monitor_models import Alert, AlertDelivery

__all__ = ["app"]

app = typer.Typer(
    help="Security and integrity alerts: list, show, acknowledge, resolve, deliver webhooks.",
    no_args_is_help=True,
)

SEVERITY_STYLE = {"critical": "red", "warning": "yellow", "info": "cyan"}
STATUS_STYLE = {"open": "bold", "acknowledged": "yellow", "resolved": "green"}
DELIVERY_STYLE = {"pending": "yellow", "delivered": "green", "failed": "red"}

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")]
OrgOption = Annotated[
    str | None, typer.Option("--org", help="The organisation (id) the alert belongs to")
]
NoteOption = Annotated[
    str | None, typer.Option("--note", help="Why: kept with the alert and audited")
]
AlertId = Annotated[str, typer.Argument(help="The alert's id")]


def _actor() -> Actor:
    """Who handled it, for the journal: the operator's account on this machine."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = None
    return Actor(type="operator-cli", id=(user or "unknown")[:64])


@contextmanager
def _alerts(home: Path | None) -> Iterator[AlertService]:
    """The instance's own alert service: same database and webhook configuration as the server."""
    from pactvault.platform import Platform

    try:
        platform = Platform.open(settings_for(home))
    except PactvaultError as exc:
        raise fail(exc) from None
    try:
        yield platform.alerts
    except AlertScopeError as exc:
        err.print(f"[red]error:[/red] {exc.detail}")
        where = f"--org {exc.org_id}" if exc.org_id else "no --org (it is platform-wide)"
        err.print(f"  handle it with {where}", markup=False)
        raise typer.Exit(EXIT_USAGE) from None
    except PactvaultError as exc:
        raise fail(exc) from None
    finally:
        platform.close()


def _since(value: str | None) -> datetime | None:
    """An ISO 8601 time; without an offset it is read as UTC."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        err.print(f"[red]error:[/red] --since is not an ISO 8601 time: {value!r}", markup=False)
        raise typer.Exit(EXIT_USAGE) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


# -- commands ----------------------------------------------------------------------------------


@app.command("list")
def list_alerts(
    org: Annotated[
        str | None, typer.Option("--org", help="Only this organisation's alerts (its id)")
    ] = None,
    platform_only: Annotated[
        bool, typer.Option("--platform", help="Only platform-wide alerts (ledger, journal)")
    ] = False,
    status: Annotated[
        list[str] | None,
        typer.Option("--status", help="open, acknowledged or resolved; repeatable"),
    ] = None,
    severity: Annotated[
        list[str] | None,
        typer.Option("--severity", help="info, warning or critical; repeatable"),
    ] = None,
    kind: Annotated[
        str | None, typer.Option("--kind", help="One kind, or a prefix such as integrity.*")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", help="Raised or seen again since (ISO 8601; UTC if no offset)"),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many (1-500)")] = 50,
    offset: Annotated[int, typer.Option("--offset", help="Skip this many")] = 0,
    json_output: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Alerts, newest first: every organisation's and the platform-wide ones."""
    with _alerts(home) as alerts:
        page = alerts.operator_page(
            status=status,
            severity=severity,
            kind=kind,
            since=_since(since),
            org_id=org,
            platform_only=platform_only,
            limit=limit,
            offset=offset,
        )
    if json_output:
        _echo_json(
            {
                "items": [_alert_dict(a) for a in page.items],
                "total": page.total,
                "limit": limit,
                "offset": offset,
            }
        )
        return
    if not page.items:
        console.print(f"no alerts here ({page.total} match)" if page.total else "no alerts")
        return
    console.print(
        f"[bold]Alerts {offset + 1}-{offset + len(page.items)} of {page.total}[/bold], newest first"
    )
    for alert in page.items:
        _print_summary(alert)


@app.command()
def show(alert_id: AlertId, json_output: JsonOption = False, home: HomeOption = None) -> None:
    """One alert: what differs, who handled it, and each webhook delivery's state."""
    with _alerts(home) as alerts:
        detail = alerts.operator_get(alert_id)
    if json_output:
        _echo_json(_detail_dict(detail))
        return
    _print_detail(detail)


@app.command("ack")
def acknowledge(
    alert_id: AlertId,
    note: NoteOption = None,
    org: OrgOption = None,
    home: HomeOption = None,
) -> None:
    """Acknowledge an alert: someone is on it (it stays listed until resolved)."""
    with _alerts(home) as alerts:
        alert = alerts.operator_acknowledge(_actor(), alert_id, note, org_id=org)
    console.print(f"acknowledged alert {alert.id} ({alert.kind})", markup=False)


@app.command()
def resolve(
    alert_id: AlertId,
    note: NoteOption = None,
    org: OrgOption = None,
    home: HomeOption = None,
) -> None:
    """Resolve an alert; if the problem is detected again, a new alert opens."""
    with _alerts(home) as alerts:
        alert = alerts.operator_resolve(_actor(), alert_id, note, org_id=org)
    console.print(f"resolved alert {alert.id} ({alert.kind})", markup=False)


@app.command()
def deliver(json_output: JsonOption = False, home: HomeOption = None) -> None:
    """Send the webhook notifications due now and show how each went.

    The server's maintenance loop does this every minute; this is for now, or when no server
    runs. Exit 3 if any notification did not go through (it is retried later, or given up)."""
    with _alerts(home) as alerts:
        unknown = alerts.unconfigured_endpoints()
        if unknown:
            # Without the server's webhook settings this shell would give them up for good.
            err.print(
                "[red]error:[/red] pending notifications are for webhook endpoint(s) not "
                f"configured here: {', '.join(unknown)}. Run with the server's settings "
                "(PACTVAULT_ALERT_WEBHOOK_URL and PACTVAULT_ALERT_WEBHOOK_SECRET); "
                "nothing was sent."
            )
            raise typer.Exit(EXIT_USAGE)
        stats = alerts.deliver_pending()
        attempted = alerts.operator_deliveries(ids=stats.attempted)
        waiting = [
            d
            for d in alerts.operator_deliveries(status="pending")
            if d.id not in set(stats.attempted)
        ]
    ok = not stats.retrying and not stats.failed
    if json_output:
        _echo_json(
            {
                "delivered": stats.delivered,
                "retrying": stats.retrying,
                "failed": stats.failed,
                "attempted": [_delivery_dict(d) for d in attempted],
                "waiting": [_delivery_dict(d) for d in waiting],
            }
        )
    elif not attempted and not waiting:
        console.print("nothing to deliver")
    else:
        if attempted:
            console.print("[bold]Sent now[/bold]")
            _print_deliveries(attempted, with_alert=True)
        if waiting:
            console.print("[bold]Waiting for their next attempt[/bold]")
            _print_deliveries(waiting, with_alert=True)
        console.print(_counts(stats.delivered, stats.retrying, stats.failed, len(waiting)))
        if not attempted:
            console.print("nothing was due now")
        elif ok:
            console.print("[green]✓[/green] every notification sent now went through")
        else:
            console.print("[red]✗[/red] some notifications did not go through")
    if not ok:
        raise typer.Exit(EXIT_ERROR)


# -- output ------------------------------------------------------------------------------------


def _when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ") if moment else "—"


def _styled(value: str, styles: dict[str, str]) -> str:
    style = styles.get(value)
    return f"[{style}]{value}[/{style}]" if style else value


def _print_summary(alert: Alert) -> None:
    # A block per alert, not a table row: ids must stay whole for copy and paste on any terminal.
    console.print(
        f"\n{_styled(alert.severity, SEVERITY_STYLE)} {_styled(alert.status, STATUS_STYLE)} "
        f"[bold]{alert.kind}[/bold] ×{alert.count}, last seen {_when(alert.last_seen_at)}"
    )
    where = f"organisation {alert.org_id}" if alert.org_id else "platform-wide"
    console.print(f"  {alert.id}  {where}", markup=False, highlight=False)
    console.print(f"  {alert.title}", markup=False, highlight=False)


def _print_detail(detail: AlertDetail) -> None:
    a = detail.alert
    console.print(
        f"{_styled(a.severity, SEVERITY_STYLE)} {_styled(a.status, STATUS_STYLE)} "
        f"[bold]{a.kind}[/bold]"
    )
    lines = [
        ("id", a.id),
        ("title", a.title),
        ("organisation", a.org_id or "platform-wide"),
        ("raised", _when(a.created_at)),
        ("last seen", f"{_when(a.last_seen_at)} ({a.count} detection(s))"),
    ]
    if a.acknowledged_at:
        lines.append(("acknowledged", f"{_when(a.acknowledged_at)} by {a.acknowledged_by}"))
    if a.resolved_at:
        lines.append(("resolved", f"{_when(a.resolved_at)} by {a.resolved_by}"))
    if a.note:
        lines.append(("note", a.note))
    width = max(len(k) for k, _ in lines)
    for key, value in lines:
        console.print(f"{key:<{width}}  {value}", markup=False, highlight=False)
    if a.details:
        # What differs, exactly: ids and hashes, whole (lines, not a table, so nothing is cut).
        console.print("[bold]details[/bold]")
        for key, value in a.details.items():
            shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            console.print(f"  {key}: {shown}", markup=False, highlight=False)
    if not detail.deliveries:
        console.print("no webhook notifications (none was configured when it was raised)")
        return
    console.print("[bold]Webhook deliveries[/bold]")
    _print_deliveries(detail.deliveries)


def _print_deliveries(deliveries: list[AlertDelivery], *, with_alert: bool = False) -> None:
    for d in deliveries:
        head = f"  {_styled(d.status, DELIVERY_STYLE)} to [bold]{d.endpoint}[/bold]"
        console.print(f"{head}, {d.attempts} attempt(s)")
        facts = [f"delivery {d.id}"]
        if with_alert:
            facts.append(f"alert {d.alert_id}")
        if d.last_attempt_at:
            result = d.last_error or (f"HTTP {d.last_status_code}" if d.last_status_code else "")
            facts.append(
                f"last attempt {_when(d.last_attempt_at)}{': ' + result if result else ''}"
            )
        if d.status == "pending":
            facts.append(f"next attempt {_when(d.next_attempt_at)}")
        if d.delivered_at:
            facts.append(f"delivered {_when(d.delivered_at)}")
        for fact in facts:
            console.print(f"    {fact}", markup=False, highlight=False)


def _counts(delivered: int, retrying: int, failed: int, waiting: int) -> Table:
    table = Table(title="Webhook notifications", header_style="bold")
    table.add_column("outcome")
    table.add_column("count", justify="right")
    table.add_row("[green]delivered now[/green]", str(delivered))
    table.add_row("[yellow]failed, will retry[/yellow]", str(retrying))
    table.add_row("[red]failed, given up[/red]", str(failed))
    table.add_row("waiting for a later attempt", str(waiting))
    return table


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat() if moment else None


def _alert_dict(a: Alert) -> dict[str, Any]:
    return {
        "id": a.id,
        "org_id": a.org_id,
        "kind": a.kind,
        "severity": a.severity,
        "title": a.title,
        "details": a.details,
        "fingerprint": a.fingerprint,
        "count": a.count,
        "status": a.status,
        "created_at": _iso(a.created_at),
        "last_seen_at": _iso(a.last_seen_at),
        "acknowledged_at": _iso(a.acknowledged_at),
        "acknowledged_by": a.acknowledged_by,
        "resolved_at": _iso(a.resolved_at),
        "resolved_by": a.resolved_by,
        "note": a.note,
    }


def _delivery_dict(d: AlertDelivery) -> dict[str, Any]:
    # The endpoint's name only: its URL and secret stay in the configuration.
    return {
        "id": d.id,
        "alert_id": d.alert_id,
        "channel": d.channel,
        "endpoint": d.endpoint,
        "status": d.status,
        "attempts": d.attempts,
        "last_attempt_at": _iso(d.last_attempt_at),
        "next_attempt_at": _iso(d.next_attempt_at) if d.status == "pending" else None,
        "last_status_code": d.last_status_code,
        "last_error": d.last_error,
        "delivered_at": _iso(d.delivered_at),
        "created_at": _iso(d.created_at),
    }


def _detail_dict(detail: AlertDetail) -> dict[str, Any]:
    return {
        **_alert_dict(detail.alert),
        "deliveries": [_delivery_dict(d) for d in detail.deliveries],
    }


def _echo_json(value: object) -> None:
    typer.echo(json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True))
