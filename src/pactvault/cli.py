"""The ``pactvault`` command: run the platform, initialise it, verify PDFs, run the demo.

Errors from the services are turned into readable messages and exit codes here (and only here):
0 success, 1 a verification that failed, 2 a usage or input error, 3 an operational error.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from cryptography import x509

from pactvault.commands import alerts as alerts_commands
from pactvault.commands import backup as backup_commands
from pactvault.commands import ledger as ledger_commands
from pactvault.commands import monitor as monitor_commands
from pactvault.commands.common import (
    EXIT_INVALID,
    HomeOption,
    console,
    err,
)
from pactvault.commands.common import fail as _fail
from pactvault.commands.common import settings_for as _settings
from pactvault.commands.integrity import integrity as integrity_command
from pactvault.config import Settings
from pactvault.errors import InvalidInputError, PactvaultError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="pactvault: self-hostable electronic contract signing.",
)
audit_app = typer.Typer(help="Audit journal checks.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")
app.add_typer(ledger_commands.app, name="ledger")
app.add_typer(alerts_commands.app, name="alerts")
app.add_typer(monitor_commands.app, name="monitor")
app.add_typer(backup_commands.app, name="backup")
audit_app.command("integrity")(integrity_command)


def _print_init(result, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    for warning in result.warnings:
        err.print(f"[yellow]warning:[/yellow] {warning}")
    if result.created:
        console.print(f"Initialised a new instance in [bold]{settings.home}[/bold]")
    if result.setup_token:
        console.print(
            "\n[bold]First administrator set-up[/bold] (shown once, valid 7 days):\n"
            f"  token: [bold]{result.setup_token}[/bold]\n"
            f"  POST {settings.public_url}/api/v1/setup with "
            '{"setup_token": "…", "organisation_name": "…"} to get the admin API token.\n'
        )


@app.command()
def init(home: HomeOption = None) -> None:
    """Create (or upgrade) the data directory, keys, database, CA and TSA."""
    from pactvault.platform import Platform

    settings = _settings(home)
    try:
        platform, result = Platform.initialise(settings)
    except PactvaultError as exc:
        raise _fail(exc) from None
    platform.close()
    _print_init(result, settings)
    if not result.created and not result.setup_token:
        console.print(f"Instance in {settings.home} is initialised and up to date.")


@app.command()
def run(
    home: HomeOption = None,
    host: Annotated[str | None, typer.Option(help="Listen address")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port")] = None,
) -> None:
    """Initialise on first start, then serve the API and the web pages."""
    import uvicorn

    from pactvault.api.app import create_app
    from pactvault.observability.logs import configure_json_logging
    from pactvault.pdf.fonts import prepare_base_font
    from pactvault.platform import Platform

    overrides: dict[str, object] = {}
    if host:
        overrides["host"] = host
    if port:
        overrides["port"] = port
    settings = _settings(home, **overrides)
    try:
        platform, result = Platform.initialise(settings)
    except PactvaultError as exc:
        raise _fail(exc) from None
    _print_init(result, settings)
    # Build the reduced CJK stamp font in the background now, not during the first signatures.
    prepare_base_font(wait=False)
    console.print(
        f"pactvault listening on http://{settings.host}:{settings.port} "
        f"(API docs: /docs, data: {settings.home})"
    )
    # Our own JSON access log (route templates, request ids, no secrets) replaces uvicorn's,
    # which would print raw paths with their query strings.
    configure_json_logging()
    uvicorn.run(
        create_app(platform),
        host=settings.host,
        port=settings.port,
        log_level="info",
        access_log=False,
        # X-Forwarded-For is believed only from PACTVAULT_TRUSTED_PROXIES (api/middleware/
        # guard.py); uvicorn's own handling would trust any local peer's header.
        proxy_headers=False,
    )


app.command("serve", help="Same as `run`.")(run)


@app.command()
def verify(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Signed PDF")],
    trust: Annotated[
        list[Path] | None,
        typer.Option("--trust", help="Trusted root certificate (PEM or DER); repeatable"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable report")] = False,
    home: HomeOption = None,
) -> None:
    """Check every signature of FILE; exit 0 only if all are valid."""
    from pactvault.pdf.validate import verify_pdf

    try:
        roots = [_load_certificate(p) for p in trust] if trust else _instance_roots(home)
        report = verify_pdf(file.read_bytes(), trust_roots=roots)
    except PactvaultError as exc:
        raise _fail(exc) from None
    if as_json:
        sys.stdout.write(
            json.dumps(
                {"valid": report.valid, **report.to_dict()},
                indent=2,
                ensure_ascii=False,
                default=str,
            )
            + "\n"
        )
    else:
        _print_report(report)
    raise typer.Exit(0 if report.valid else EXIT_INVALID)


def _load_certificate(path: Path) -> x509.Certificate:
    data = path.read_bytes()
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError:
        raise InvalidInputError(f"{path} is not an X.509 certificate") from None


def _instance_roots(home: Path | None) -> list[x509.Certificate]:
    from pactvault.platform import Platform

    settings = _settings(home)
    if not (settings.key_dir / "root-key.json").exists():
        raise InvalidInputError(
            "no trust root: pass --trust ROOT.pem (or run inside an instance's PACTVAULT_HOME)"
        )
    platform = Platform.open(settings)
    try:
        with platform.db.read() as session:
            return platform.trust_roots(session)
    finally:
        platform.close()


def _print_report(report) -> None:  # type: ignore[no-untyped-def]
    verdict = "[green]VALID[/green]" if report.valid else "[red]NOT VALID[/red]"
    console.print(
        f"{verdict} — {len(report.signatures)} signature(s), SHA-256 {report.document_sha256}"
    )
    for problem in report.problems:
        console.print(f"  [red]✗[/red] {problem}")
    for sig in report.signatures:
        mark = "[green]✓[/green]" if sig.valid else "[red]✗[/red]"
        console.print(
            f"\n{mark} {sig.field_name}: {sig.signer_name or '?'} <{sig.signer_email or '-'}>"
            f" {sig.organisation or ''}"
        )
        console.print(f"    chain: {' → '.join(sig.chain)}")
        console.print(
            f"    trusted: {sig.trusted}   intact: {sig.intact}   "
            f"signature valid: {sig.signature_valid}   revocation: {sig.revocation}"
        )
        console.print(
            f"    timestamp: {sig.timestamp_time} by {sig.timestamp_tsa} "
            f"(valid: {sig.timestamp_valid})"
        )
        console.print(
            f"    coverage: {sig.coverage}   modified after signing: {sig.modified_after}"
            f"   certification: {sig.is_certification}"
        )
        for problem in sig.problems:
            console.print(f"    [red]✗[/red] {problem}")


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", help="Where to write signed.pdf and ca-root.pem")],
    pdf: Annotated[
        Path | None, typer.Option("--pdf", exists=True, dir_okay=False, help="Your own PDF")
    ] = None,
    home: HomeOption = None,
) -> None:
    """Run a two-party contract through the public API and write the signed result."""
    from pactvault.demo import run_demo
    from pactvault.platform import Platform

    settings = _settings(home)
    try:
        platform, result = Platform.initialise(settings)
        _print_init(result, settings)
        outcome = run_demo(
            platform,
            out,
            pdf.read_bytes() if pdf else None,
            progress=lambda m: console.print(f"• {m}"),
        )
    except PactvaultError as exc:
        raise _fail(exc) from None
    platform.close()
    verdict = "valid" if outcome.verification.get("valid") else "NOT valid"
    console.print(f"\nContract {outcome.contract_id} completed; signatures are {verdict}.")
    console.print(f"  signed PDF: {outcome.signed_pdf}\n  CA root:    {outcome.ca_root}")
    console.print(
        f"Check it yourself: pactvault verify {outcome.signed_pdf} --trust {outcome.ca_root}"
    )
    if not outcome.verification.get("valid"):
        raise typer.Exit(EXIT_INVALID)


@audit_app.command("verify")
def audit_verify(home: HomeOption = None) -> None:
    """Recompute the audit journal's hash chain; exit 1 if any entry was altered or removed."""
    from pactvault.audit.journal import verify_chain
    from pactvault.platform import Platform

    try:
        platform = Platform.open(_settings(home))
    except PactvaultError as exc:
        raise _fail(exc) from None
    with platform.db.read() as session:
        report = verify_chain(session)
    platform.close()
    if report.ok:
        console.print(f"[green]intact[/green]: {report.entries} entries, head {report.head_hash}")
        return
    for problem in report.problems:
        err.print(f"[red]✗[/red] {problem}")
    raise typer.Exit(EXIT_INVALID)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
