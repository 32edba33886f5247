"""``pactvault ledger …``: checkpoints, proof bundles, exports and offline verification.

``verify`` and ``verify-bundle`` need no instance at all — only the files and the log key you
trust (and, to require a witness quorum, the witness keys you trust) — so an auditor can run them
anywhere. ``ledger witness …`` shows this instance's witness key and the logs it witnesses, and
the cosignatures our own checkpoints collected. Exit codes: 0 valid, 1 invalid (or a witness
quorum not met), 2 usage or input error, 3 operational error.
"""

from __future__ import annotations

import base64
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
    from pactvault.ledger.cosigning import CosigningReport, WitnessStatus
    from pactvault.ledger.service import LedgerService
    from pactvault.platform import Platform

app = typer.Typer(help="Evidence ledger: checkpoints, proofs, exports, verification.")

KeyOption = Annotated[
    str,
    typer.Option("--key", help="The log's verifier key you trust (the string, or a file with it)"),
]
WitnessOption = Annotated[
    list[str] | None,
    typer.Option(
        "--witness",
        help="A witness key you trust (string, or a file with one per line); repeatable",
    ),
]
QuorumOption = Annotated[
    int | None,
    typer.Option("--quorum", min=0, help="Cosignatures required (default: every --witness)"),
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


def _trusted_witnesses(values: list[str] | None, quorum: int | None) -> tuple[list[str], int]:
    """Witness key strings (each given directly or as a file of keys) and the quorum to require."""
    from pactvault.ledger.witness import parse_cosigner_key

    keys: list[str] = []
    for value in values or ():
        candidate = Path(value)
        if "+" not in value or candidate.is_file():
            try:
                lines = candidate.read_text("utf-8").splitlines()
            except (OSError, UnicodeDecodeError):
                err.print(f"[red]error:[/red] cannot read witness keys from {value}")
                raise typer.Exit(EXIT_USAGE) from None
            keys += [line.strip() for line in lines if line.strip()]
        else:
            keys.append(value.strip())
    for vkey in keys:
        try:
            parse_cosigner_key(vkey)
        except PactvaultError as exc:
            err.print(f"[red]error:[/red] --witness is not a witness key: {exc.detail}")
            raise typer.Exit(EXIT_USAGE) from None
    required = len(keys) if quorum is None else quorum
    if required > len(keys):
        err.print(f"[red]error:[/red] --quorum {required} needs at least {required} --witness keys")
        raise typer.Exit(EXIT_USAGE)
    return keys, required


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

    with _instance(home) as (platform, ledger):
        bundle = build_bundle(ledger, platform.db, contract)
        # With witnesses configured, have a newly published checkpoint cosigned before it is
        # written into the bundle (a witness that does not answer leaves it without).
        cosigned = platform.cosigning.run_due()
        if cosigned is not None and any(outcome.ok for outcome in cosigned.outcomes):
            bundle = build_bundle(ledger, platform.db, contract)
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
    witness: WitnessOption = None,
    quorum: QuorumOption = None,
) -> None:
    """Check an exported ledger against its checkpoints, offline; exit 1 if anything is off.

    With --witness keys, the newest checkpoint must also be cosigned by --quorum of them."""
    from pactvault.evidence.offline import verify_exported_log

    trusted = _trusted_key(key)
    witnesses, required = _trusted_witnesses(witness, quorum)
    with _progress("verifying leaves") as update:
        report = verify_exported_log(
            directory, trusted, progress=update, witnesses=witnesses, quorum=required
        )
    if report.ok:
        console.print(
            f"[green]VALID[/green]: {report.leaves} leaves, {report.verified_checkpoints} "
            f"checkpoints of {report.origin}, all consistent"
        )
        if required:
            console.print(
                f"  size {report.witnessed_size} cosigned by at least {required} trusted "
                "witness(es)"
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
    witness: WitnessOption = None,
    quorum: QuorumOption = None,
) -> None:
    """Check one contract's proof bundle offline; exit 1 if it does not verify.

    With --witness keys, its checkpoint must also be cosigned by --quorum of them."""
    from pactvault.errors import VerificationError
    from pactvault.evidence.bundle import verify_bundle as check
    from pactvault.evidence.offline import require_cosignatures

    trusted = _trusted_key(key)
    witnesses, required = _trusted_witnesses(witness, quorum)
    data = file.read_bytes()
    try:
        result = check(data, trusted, pdf.read_bytes() if pdf else None)
        if required:
            note = json.loads(data)["checkpoint"]  # verify_bundle checked it is a string
            cosigned = require_cosignatures(note, trusted, witnesses, required)
    except VerificationError as exc:  # BundleError included
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
    if required:
        names = ", ".join(sig.name for sig in cosigned.cosignatures)
        console.print(f"  checkpoint cosigned by {len(cosigned.cosignatures)} witness(es): {names}")


# -- witnessing ---------------------------------------------------------------------------------

witness_app = typer.Typer(
    help="Witnessing (c2sp.org/tlog-witness): our witness key and the logs we witness; the "
    "witnesses that cosign our checkpoints."
)
app.add_typer(witness_app, name="witness")


@witness_app.command("key")
def witness_key(home: HomeOption = None) -> None:
    """Print this instance's witness key (give it to the logs it witnesses and their clients)."""
    with _instance(home) as (platform, _):
        typer.echo(platform.witness.verifier_key())


@witness_app.command("logs")
def witness_logs(home: HomeOption = None) -> None:
    """The logs this instance witnesses (PACTVAULT_WITNESS_LOGS) and what it last cosigned."""
    from rich.table import Table

    with _instance(home) as (platform, _):
        origins = platform.witness.origins
        held = {state.origin: state for state in platform.witness.logs()}
    if not origins:
        console.print("this instance witnesses no logs (set PACTVAULT_WITNESS_LOGS)")
        return
    table = Table("log origin", "cosigned size", "root hash", "cosigned at")
    for origin in origins:
        state = held.get(origin)
        if state is None:
            table.add_row(origin, "—", "—", "never")
        else:
            root = base64.b64encode(state.root_hash).decode("ascii")
            table.add_row(origin, str(state.tree_size), root, state.cosigned_at.isoformat())
    console.print(table)


@witness_app.command("status")
def witness_status(home: HomeOption = None) -> None:
    """Cosignatures of our latest checkpoint, and each configured witness's state.

    Exit 1 if the latest checkpoint has fewer cosignatures than the quorum."""
    with _instance(home) as (platform, _):
        report = platform.cosigning.report()
        states = platform.cosigning.status()
    if not states:
        console.print("no witnesses are configured (set PACTVAULT_LEDGER_WITNESSES)")
        return
    _print_cosignatures(report)
    _print_witnesses(states)
    if report is not None and not report.quorum_met:
        raise typer.Exit(EXIT_INVALID)


@witness_app.command("request")
def witness_request(
    publish: Annotated[
        bool, typer.Option("--publish", help="Sign the current tree head first if it grew")
    ] = False,
    home: HomeOption = None,
) -> None:
    """Ask the witnesses now to cosign the latest checkpoint (the maintenance loop does it on
    schedule). Exit 1 if the quorum is still not met."""
    with _instance(home) as (platform, ledger):
        if not platform.cosigning.witnesses:
            err.print("[red]error:[/red] no witnesses are configured (PACTVAULT_LEDGER_WITNESSES)")
            raise typer.Exit(EXIT_USAGE)
        if publish:
            ledger.publish_checkpoint()
        report = platform.cosigning.run_due()
    if report is None:
        err.print("[red]error:[/red] no checkpoint has been published yet (use --publish)")
        raise typer.Exit(EXIT_USAGE)
    for outcome in report.outcomes:
        mark = "[green]✓[/green]" if outcome.ok else "[red]✗[/red]"
        console.print(f"{mark} {outcome.witness}: {outcome.detail}")
    if not report.outcomes:
        console.print("every witness has already cosigned the latest checkpoint")
    _print_cosignatures(report)
    if not report.quorum_met:
        raise typer.Exit(EXIT_INVALID)


def _print_cosignatures(report: CosigningReport | None) -> None:
    if report is None or report.checkpoint is None:
        console.print("no checkpoint has been published yet")
        return
    cp = report.checkpoint.checkpoint
    verdict = "[green]met[/green]" if report.quorum_met else "[red]not met[/red]"
    console.print(
        f"checkpoint #{report.checkpoint.seq} (size {cp.size}): {len(report.cosignatures)} "
        f"cosignature(s), quorum {report.quorum} {verdict}"
    )
    for cosignature in report.cosignatures:
        console.print(f"  {cosignature.signature.name} at {cosignature.cosigned_at.isoformat()}")


def _print_witnesses(states: list[WitnessStatus]) -> None:
    from rich.table import Table

    table = Table("witness", "URL", "cosigned size", "latest", "last success", "last error")
    for state in states:
        table.add_row(
            state.name,
            state.url,
            str(state.cosigned_size),
            "yes" if state.cosigned_latest else "no",
            state.last_success_at.isoformat() if state.last_success_at else "never",
            f"{state.last_error} (×{state.failures})" if state.last_error else "",
        )
    console.print(table)
