"""``pactvault monitor …``: the operator's view of detection rules and automatic responses.

- ``blocks`` lists the responses in force (``--all``: lifted and expired ones too): address
  blocks, suspensions, step-up requirements, slow-downs — every organisation's and the
  platform-wide ones (address blocks raised by failed sign-ins belong to no organisation);
- ``unblock`` lifts one response by id, or everything in force on an address (``--ip``);
- ``block`` blocks an address by hand for a while;
- ``rules`` shows every rule's effective settings (``--org``: as they apply to that
  organisation); ``set-rule`` / ``reset-rule`` change the platform-wide settings, or an
  organisation's (``--org``);
- ``run`` evaluates the journal entries the rules have not read yet, now.

Every change is audited under the operator's login name. Exit codes follow ``commands.common``:
0 done, 2 a usage or input error (unknown id, nothing in force), 3 an operational error.
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
from pactvault.commands.common import EXIT_USAGE, HomeOption, console, err, fail, settings_for
from pactvault.errors import PactvaultError
from pactvault.monitor.rules.settings import RuleChange

if TYPE_CHECKING:
    from pactvault.platform import Platform
    from pactvault.store.detection_models import Response

__all__ = ["app"]

app = typer.Typer(
    help="Detection rules and automatic responses: blocks, unblock, rules, run.",
    no_args_is_help=True,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")]
OrgOption = Annotated[str | None, typer.Option("--org", help="An organisation (its id)")]


def _actor() -> Actor:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = None
    return Actor(type="operator-cli", id=(user or "unknown")[:64])


@contextmanager
def _platform(home: Path | None) -> Iterator[Platform]:
    from pactvault.platform import Platform

    try:
        platform = Platform.open(settings_for(home))
    except PactvaultError as exc:
        raise fail(exc) from None
    try:
        yield platform
    except PactvaultError as exc:
        raise fail(exc) from None
    finally:
        platform.close()


def _echo(data: Any) -> None:
    typer.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def _response_dict(r: Response) -> dict[str, Any]:
    return {
        "id": r.id,
        "rule": r.rule,
        "org_id": r.org_id,
        "action": r.action,
        "target_type": r.target_type,
        "target": r.target,
        "alert_id": r.alert_id,
        "reason": r.reason,
        "created_at": r.created_at.isoformat(),
        "expires_at": r.expires_at.isoformat(),
        "lifted_at": r.lifted_at.isoformat() if r.lifted_at else None,
        "lifted_by": r.lifted_by,
    }


def _state(r: Response) -> str:
    if r.lifted_at is not None:
        return f"lifted by {r.lifted_by}"
    if r.expires_at <= datetime.now(UTC):
        return "expired"
    minutes = int((r.expires_at - datetime.now(UTC)).total_seconds() // 60) + 1
    return f"in force, {minutes} min left"


@app.command()
def blocks(
    all_: Annotated[bool, typer.Option("--all", help="Lifted and expired responses too")] = False,
    org: OrgOption = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many (1-200)")] = 50,
    json_output: JsonOption = False,
    home: HomeOption = None,
) -> None:
    """Automatic responses in force (blocks, suspensions, step-ups, slow-downs), newest first."""
    with _platform(home) as platform:
        page = platform.monitor.responses.operator_page(
            active_only=not all_, org_id=org, limit=limit
        )
    if json_output:
        _echo({"items": [_response_dict(r) for r in page.items], "total": page.total})
        return
    if not page.items:
        console.print("nothing in force" if not all_ else "no responses")
        return
    table = Table("id", "action", "target", "rule", "organisation", "state", "reason")
    for r in page.items:
        table.add_row(
            r.id,
            r.action,
            f"{r.target_type}:{r.target}" if r.target_type != "ip" else r.target,
            r.rule,
            r.org_id or "platform",
            _state(r),
            r.reason,
        )
    console.print(table)
    console.print(f"{len(page.items)} of {page.total}")


@app.command()
def unblock(
    response_id: Annotated[str | None, typer.Argument(help="The response's id")] = None,
    ip: Annotated[str | None, typer.Option("--ip", help="Lift everything on this address")] = None,
    note: Annotated[str | None, typer.Option("--note", help="Why (audited)")] = None,
    home: HomeOption = None,
) -> None:
    """Lift a response now (by id), or every response in force on an address (--ip)."""
    if (response_id is None) == (ip is None):
        err.print("[red]error:[/red] give a response id or --ip, not both")
        raise typer.Exit(EXIT_USAGE)
    with _platform(home) as platform:
        if response_id is not None:
            lifted = [platform.monitor.responses.operator_lift(_actor(), response_id, note)]
        else:
            assert ip is not None
            lifted = platform.monitor.responses.operator_unblock_address(_actor(), ip)
    if not lifted:
        err.print(f"[yellow]nothing is in force on {ip}[/yellow]", markup=False)
        raise typer.Exit(EXIT_USAGE)
    for r in lifted:
        console.print(f"lifted {r.action} of {r.target_type} {r.target} ({r.id})", markup=False)


@app.command()
def block(
    ip: Annotated[str, typer.Option("--ip", help="The address (IPv6: its /64 is blocked)")],
    minutes: Annotated[int, typer.Option("--minutes", help="For how long")] = 60,
    reason: Annotated[str, typer.Option("--reason", help="Why (audited)")] = "",
    home: HomeOption = None,
) -> None:
    """Block an address by hand: every request from it is refused (403) until it ends."""
    with _platform(home) as platform:
        r = platform.monitor.responses.block_address(_actor(), ip, minutes, reason)
    console.print(f"blocked {r.target} until {r.expires_at.isoformat()} ({r.id})", markup=False)


@app.command()
def rules(org: OrgOption = None, json_output: JsonOption = False, home: HomeOption = None) -> None:
    """Every detection rule and its effective settings (platform-wide, or for --org)."""
    with _platform(home) as platform:
        found = platform.monitor.rules.operator_list(org)
    if json_output:
        _echo(
            [
                {
                    "rule": d.name,
                    "scope": d.scope,
                    "severity": d.severity,
                    "description": d.description,
                    **s.values(),
                    "source": s.source,
                }
                for d, s in found
            ]
        )
        return
    table = Table("rule", "scope", "on", "threshold", "window", "actions", "for", "from")
    for d, s in found:
        table.add_row(
            d.name,
            d.scope,
            "yes" if s.enabled else "no",
            str(s.threshold),
            f"{s.window_minutes} min",
            ", ".join(s.actions) or "alert only",
            f"{s.action_minutes} min",
            s.source,
        )
    console.print(table)


@app.command("set-rule")
def set_rule(
    rule: Annotated[str, typer.Argument(help="The rule (see `pactvault monitor rules`)")],
    org: OrgOption = None,
    enable: Annotated[
        bool | None, typer.Option("--enable/--disable", help="Switch the rule on or off")
    ] = None,
    threshold: Annotated[int | None, typer.Option("--threshold")] = None,
    window: Annotated[int | None, typer.Option("--window", help="Minutes")] = None,
    actions: Annotated[
        str | None,
        typer.Option(
            "--actions",
            help="Comma-separated: slow-down,step-up,suspend,block-ip; 'none' for alerts only",
        ),
    ] = None,
    action_minutes: Annotated[int | None, typer.Option("--action-minutes")] = None,
    home: HomeOption = None,
) -> None:
    """Change a rule's platform-wide settings, or an organisation's (--org)."""
    chosen = None
    if actions is not None:
        chosen = (
            ()
            if actions.strip() == "none"
            else tuple(a.strip() for a in actions.split(",") if a.strip())
        )
    change = RuleChange(enable, threshold, window, chosen, action_minutes)
    with _platform(home) as platform:
        s = platform.monitor.rules.operator_change(_actor(), rule, change, org_id=org)
    console.print(
        f"{rule}: {'on' if s.enabled else 'off'}, threshold {s.threshold}, window "
        f"{s.window_minutes} min, actions {', '.join(s.actions) or 'none'} for "
        f"{s.action_minutes} min ({s.source})",
        markup=False,
    )


@app.command("reset-rule")
def reset_rule(
    rule: Annotated[str, typer.Argument()], org: OrgOption = None, home: HomeOption = None
) -> None:
    """Drop the platform-wide (or --org) settings of a rule: the defaults apply again."""
    with _platform(home) as platform:
        s = platform.monitor.rules.operator_reset(_actor(), rule, org_id=org)
    console.print(f"{rule}: back to {s.source} settings", markup=False)


@app.command()
def run(json_output: JsonOption = False, home: HomeOption = None) -> None:
    """Evaluate the journal entries the rules have not read yet (the server does this every
    second; this is for now, or when no server runs)."""
    with _platform(home) as platform:
        platform.monitor.engine.start()
        report = platform.monitor.engine.run_due()
        cursor, head = platform.monitor.engine.lag()
    events = report.events if report else 0
    detections = [(d.rule, d.key) for d in report.detections] if report else []
    if json_output:
        _echo({"events": events, "detections": detections, "cursor": cursor, "head": head})
        return
    console.print(
        f"evaluated {events} journal entr{'y' if events == 1 else 'ies'}; "
        f"{len(detections)} detection(s); read up to {cursor} of {head}"
    )
    for rule, key in detections:
        console.print(f"  {rule}: {key}", markup=False)
