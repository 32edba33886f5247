"""``pactvault ledger …``: checkpoints, proof bundles, exports and offline verification.

``verify`` and ``verify-bundle`` need no instance at all — only the files and the log key you
trust — so an auditor can run them anywhere. Exit codes: 0 valid, 1 invalid, 2 usage or input
error, 3 operational error.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from pactvault.commands.common import (
    EXIT_INVALID,
    EXIT_USAGE,
    HomeOption,
    console,
    err,
    fail,
    settings_for,
)
from pactvault.errors import PactvaultError

if TYPE_CHECKING:
    from pactvault.ledger.service import LedgerService
    from pactvault.platform import Platform

app = typer.Typer(help="Evidence ledger: checkpoints, proofs, exports, verification.")

KeyOption = Annotated[
    str,
    typer.Option("--key", help="The log's verifier key you trust (the string, or a file with it)"),
]


@contextmanager
def _instance(home: Path | None) -> Iterator[tuple[Platform, LedgerService]]:
    from pactvault.platform import Platform

    try:
        platform = Platform.open(settings_for(home))
    except PactvaultError as exc:
        raise fail(exc) from None
    try:
        yield platform, platform.ledger
    except PactvaultError as exc:
        raise fail(exc) from None
    finally:
        platform.close()


def _trusted_key(value: str) -> str:
    """The key string itself, or the first non-empty line of a file holding it."""
    from pactvault.ledger.note import parse_verifier_key

    candidate = Path(value)
    if "+" not in value or candidate.is_file():
        try:
            lines = [line.strip() for line in candidate.read_text("utf-8").splitlines()]
        except (OSError, UnicodeDecodeError):
            err.print(f"[red]error:[/red] cannot read a verifier key from {value}")
            raise typer.Exit(EXIT_USAGE) from None
        value = next((line for line in lines if line), "")
    try:
        parse_verifier_key(value.strip())
    except PactvaultError as exc:
        err.print(f"[red]error:[/red] --key is not a log verifier key: {exc.detail}")
        raise typer.Exit(EXIT_USAGE) from None
    return value.strip()


@contextmanager
def _progress(description: str) -> Iterator[Callable[[int, int], None]]:
    """A rich progress bar on stderr (stdout stays clean for the result)."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=err, transient=True) as progress:
        task = progress.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total or None)

        yield update


@app.command()
def checkpoint(
    publish: Annotated[
        bool, typer.Option("--publish", help="Sign the current tree head first if it grew")
    ] = False,
    home: HomeOption = None,
) -> None:
    """Print the latest signed checkpoint (the text served at /ledger/checkpoint)."""
    with _instance(home) as (_, ledger):
        latest = ledger.publish_checkpoint() if publish else ledger.latest_checkpoint()
    if latest is None:
        err.print("[red]error:[/red] no checkpoint has been published yet (use --publish)")
        raise typer.Exit(EXIT_USAGE)
    typer.echo(latest.note, nl=False)  # byte-for-byte the signed note


@app.command()
def key(home: HomeOption = None) -> None:
    """Print the log's verifier key (give it to whoever verifies our checkpoints)."""
    with _instance(home) as (_, ledger):
        typer.echo(ledger.verifier_key())


@app.command()
def anchor(home: HomeOption = None) -> None:
    """Anchor the audit journal in the ledger now (the maintenance loop does it on schedule)."""
    with _instance(home) as (_, ledger):
        done = ledger.anchor_audit()
    if done is None:
        console.print("nothing to anchor: the journal has not grown since the last anchor")
    else:
        console.print(
            f"anchored audit entry {done.audit_seq} ({done.audit_hash}) as leaf {done.leaf_index}"
        )


@app.command("check-anchors")
def check_anchors(home: HomeOption = None) -> None:
    """Re-derive every anchored audit entry; exit 1 if any was edited or deleted."""
    with _instance(home) as (_, ledger):
        report = ledger.check_anchors()
    if report.ok:
        console.print(
            f"[green]intact[/green]: {report.anchors} anchor(s) over {report.entries} audit "
            f"entries, {report.leaves} leaves"
        )
        return
    for problem in report.problems:
        err.print(f"[red]✗[/red] {problem}")
    raise typer.Exit(EXIT_INVALID)


@app.command()
def proof(
    contract: Annotated[str, typer.Option("--contract", help="Contract id")],
    out: Annotated[Path, typer.Option("--out", help="Where to write the bundle (JSON)")],
    home: HomeOption = None,
) -> None:
    """Write the proof bundle of one contract: its evidence leaves, proofs and checkpoint."""
    from pactvault.evidence.export import build_bundle

    with _instance(home) as (_, ledger):
        bundle = build_bundle(ledger, contract)
    out.write_text(json.dumps(bundle, indent=2, ensure_ascii=False) + "\n", "utf-8")
    console.print(
        f"{len(bundle['leaves'])} evidence leaves of contract {contract} written to {out}"
    )


@app.command()
def export(
    directory: Annotated[Path, typer.Argument(help="A new or empty directory")],
    home: HomeOption = None,
) -> None:
    """Export every leaf, every checkpoint and the log key for offline verification."""
    from pactvault.evidence.export import export_log

    with _instance(home) as (platform, _), _progress("exporting leaves") as update:
        summary = export_log(platform.db, directory, progress=update)
    console.print(
        f"exported {summary.tree_size} leaves and {summary.checkpoints} checkpoints of "
        f"{summary.origin} to {summary.directory}\nverify with: pactvault ledger verify "
        f"{summary.directory} --key '{summary.verifier_key}'"
    )


@app.command()
def verify(
    directory: Annotated[
        Path, typer.Argument(exists=True, file_okay=False, help="An exported ledger")
    ],
    key: KeyOption,
) -> None:
    """Check an exported ledger against its checkpoints, offline; exit 1 if anything is off."""
    from pactvault.evidence.offline import verify_exported_log

    trusted = _trusted_key(key)
    with _progress("verifying leaves") as update:
        report = verify_exported_log(directory, trusted, progress=update)
    if report.ok:
        console.print(
            f"[green]VALID[/green]: {report.leaves} leaves, {report.verified_checkpoints} "
            f"checkpoints of {report.origin}, all consistent"
        )
        return
    console.print(f"[red]NOT VALID[/red]: {len(report.problems)} problem(s)")
    for problem in report.problems:
        console.print(f"  [red]✗[/red] {problem}")
    raise typer.Exit(EXIT_INVALID)


@app.command("verify-bundle")
def verify_bundle(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="A proof bundle")],
    key: KeyOption,
    pdf: Annotated[
        Path | None,
        typer.Option("--pdf", exists=True, dir_okay=False, help="The final signed PDF"),
    ] = None,
) -> None:
    """Check one contract's proof bundle offline; exit 1 if it does not verify."""
    from pactvault.evidence.bundle import BundleError
    from pactvault.evidence.bundle import verify_bundle as check

    trusted = _trusted_key(key)
    try:
        result = check(file.read_bytes(), trusted, pdf.read_bytes() if pdf else None)
    except BundleError as exc:
        console.print(f"[red]NOT VALID[/red]: {exc.detail}")
        raise typer.Exit(EXIT_INVALID) from None
    console.print(
        f"[green]VALID[/green]: {len(result.records)} evidence record(s) of contract "
        f"{result.contract_id} are in {result.checkpoint.origin} at size "
        f"{result.checkpoint.size}"
    )
    if result.final_document_sha256:
        matched = " — matches the PDF" if result.pdf_checked else ""
        console.print(f"  final document SHA-256 {result.final_document_sha256}{matched}")
