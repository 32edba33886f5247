"""``pactvault audit integrity``: run the integrity auditor now, with progress and a summary.

Exit codes follow ``commands.common``: 0 when everything checked out, 1 when anything was found
(each finding is also stored as an alert, which the summary says), 2/3 when the run could not
be made. ``--json`` prints the machine-readable report on stdout and nothing else there.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from pactvault.audit.journal import Actor
from pactvault.commands.common import (
    EXIT_INVALID,
    HomeOption,
    console,
    err,
    fail,
    settings_for,
)
from pactvault.errors import PactvaultError
from pactvault.monitor.findings import Finding, IntegrityReport, ProgressUpdate
from pactvault.monitor.integrity import PHASES, IntegrityAuditor

if TYPE_CHECKING:
    from pactvault.platform import Platform

__all__ = ["integrity"]

CLI_ACTOR = Actor(type="operator-cli", id="pactvault audit integrity")

JsonOption = Annotated[
    bool, typer.Option("--json", help="Print the report as JSON on stdout (no progress bar).")
]


def integrity(home: HomeOption = None, json_output: JsonOption = False) -> None:
    """Re-read and re-hash every stored document, the evidence ledger, its checkpoints and the
    audit journal; exit 1 if anything differs (each finding is also raised as an alert)."""
    from pactvault.platform import Platform

    try:
        platform = Platform.open(settings_for(home))
    except PactvaultError as exc:
        raise fail(exc) from None
    try:
        auditor = _auditor(platform)
        if json_output:
            report = auditor.run(actor=CLI_ACTOR)
        else:
            with _PhaseBars() as bars:
                report = auditor.run(progress=bars.update, actor=CLI_ACTOR)
    except PactvaultError as exc:
        raise fail(exc) from None
    finally:
        platform.close()
    if json_output:
        typer.echo(json.dumps(report.to_dict(), ensure_ascii=False, indent=2, sort_keys=True))
    else:
        _print_report(report)
    if not report.ok:
        raise typer.Exit(EXIT_INVALID)


def _auditor(platform: Platform) -> IntegrityAuditor:
    """The platform's own auditor: same alert store, webhooks and log key as the server."""
    return platform.integrity


class _PhaseBars:
    """One progress bar per phase on stderr, created when the phase reports first."""

    def __init__(self) -> None:
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description:<14}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
            transient=False,
        )
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> _PhaseBars:
        self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.__exit__(*exc)  # type: ignore[arg-type]

    def update(self, update: ProgressUpdate) -> None:
        task = self._tasks.get(update.phase)
        if task is None:
            task = self._progress.add_task(update.phase, total=update.total)
            self._tasks[update.phase] = task
        self._progress.update(task, completed=update.done, total=update.total)


def _print_report(report: IntegrityReport) -> None:
    checked = Table(title="Integrity audit", show_header=True, header_style="bold")
    checked.add_column("checked")
    checked.add_column("count", justify="right")
    rows = dict(
        zip(
            PHASES,
            (report.audit_entries, report.ledger_leaves, report.checkpoints, report.revisions),
            strict=True,
        )
    )
    labels = {
        "audit journal": "audit journal entries",
        "ledger": "evidence ledger leaves",
        "checkpoints": "published checkpoints",
        "documents": "document revisions",
    }
    for phase, count in rows.items():
        checked.add_row(labels[phase], str(count))
    if report.revisions_shredded:
        checked.add_row("  of which crypto-shredded", str(report.revisions_shredded))
    console.print(checked)
    if report.ok:
        console.print("[green]intact[/green]: every check passed")
        return
    # One block per finding, not a table: ids and hashes must stay whole for copy and paste.
    for finding in report.findings:
        colour = "red" if finding.severity == "critical" else "yellow"
        console.print(f"\n[{colour}]✗ {finding.severity}[/{colour}] [bold]{finding.kind}[/bold]")
        console.print(f"  {_object(finding)}", markup=False)
        for line in _differs(finding):
            console.print(f"  {line}", markup=False)
    if report.findings_total > len(report.findings):
        console.print(
            f"\n… and {report.findings_total - len(report.findings)} more (see the alerts)"
        )
    console.print(
        f"\n[red]✗[/red] {report.findings_total} finding(s); alerts raised: "
        f"{report.alerts_created} new, {report.alerts_repeated} already open"
    )


def _object(finding: Finding) -> str:
    s = finding.subject
    if "contract_id" in s:
        return f"contract {s['contract_id']} revision {s.get('version')}"
    if "leaf_index" in s:
        return f"ledger leaf {s['leaf_index']}"
    if "seq" in s:
        return f"audit entry {s['seq']}"
    if "checkpoint_seq" in s:
        return f"checkpoint {s['checkpoint_seq']}"
    if "fork_size" in s:
        return f"checkpoints of size {s['fork_size']}"
    return finding.title


def _differs(finding: Finding) -> list[str]:
    details = finding.details
    parts = []
    if details.get("problem"):
        parts.append(str(details["problem"]))
    if details.get("blob_key"):
        parts.append(f"blob {details['blob_key']}")
    for key, value in details.items():
        if key.startswith("expected_"):
            name = key.removeprefix("expected_")
            found = details.get(f"found_{name}")
            parts.append(f"{name}: expected {value}, found {found}")
    return parts or [finding.title]
