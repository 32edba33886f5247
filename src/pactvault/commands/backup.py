"""``pactvault backup …``: backups, restores, drills and the root key ceremony, for the operator.

- ``run``      take a backup now to every configured destination
  (``PACTVAULT_BACKUP_DESTINATIONS``);
- ``list``     the backups at the destinations, newest first;
- ``verify``   check manifests and every object's SHA-256 (``--quick``: sizes only) of the latest
  backup, one (``BACKUP_ID``) or ``--all``;
- ``restore``  into a new data directory (``--home``) or an empty PostgreSQL database
  (``PACTVAULT_DATABASE_URL``): the latest backup, ``--backup ID`` or ``--at TIME``;
- ``drill``    restore the latest backup into scratch space, verify it, report RPO and RTO;
- ``prune``    apply the retention policy (``--dry-run`` shows what would go);
- ``export-root-key --shares N --threshold M`` the key ceremony: the root key in M-of-N shares;
- ``import-root-key`` rebuild it from any M shares into a new data directory (``--check``: only
  compare with this instance's root key).

Exit codes follow ``commands.common``: 0 done; 1 a verification failed (a backup object, a
manifest, a post-restore check, a drill; or ``run`` succeeded with warnings: an optional
destination failed, or stored objects were missing); 2 a usage or input error (bad shares, a
non-empty restore target); 3 an operational error (a required destination did not confirm the
backup). ``--json`` prints machine-readable output on stdout and nothing else there; progress bars
go to stderr.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

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

from pactvault.audit.journal import Actor, record
from pactvault.backup.errors import BackupIntegrityError
from pactvault.backup.progress import Step
from pactvault.commands.common import (
    EXIT_ERROR,
    EXIT_INVALID,
    HomeOption,
    console,
    err,
    fail,
    settings_for,
)
from pactvault.errors import InvalidInputError, PactvaultError

if TYPE_CHECKING:
    from pactvault.platform import Platform

__all__ = ["app"]

app = typer.Typer(
    help="Encrypted, signed backups: run, list, verify, restore, drill, prune; root key shares.",
    no_args_is_help=True,
)

JsonOption = Annotated[
    bool, typer.Option("--json", help="Print JSON on stdout (no progress bars).")
]
CLI_ACTOR = Actor(type="operator-cli", id="pactvault backup")


def _emit(data: Any) -> None:
    typer.echo(json.dumps(data, ensure_ascii=False, indent=2, sort_keys=True, default=str))


@contextmanager
def _platform(home: Path | None) -> Iterator[Platform]:
    from pactvault.platform import Platform

    try:
        platform = Platform.open(settings_for(home))
    except PactvaultError as exc:
        raise fail(exc) from None
    try:
        yield platform
    finally:
        platform.close()


def _failure(exc: PactvaultError) -> typer.Exit:
    """A failed verification exits 1, everything else as ``commands.common.fail``."""
    if isinstance(exc, BackupIntegrityError):
        err.print(f"[red]refused:[/red] {exc.detail}", markup=True, highlight=False)
        return typer.Exit(EXIT_INVALID)
    return fail(exc)


class _Bars:
    """One progress bar per phase, on stderr, created when the phase first reports."""

    def __init__(self, enabled: bool) -> None:
        self._enabled = enabled
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description:<40}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
            transient=False,
        )
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> _Bars:
        if self._enabled:
            self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._enabled:
            self._progress.__exit__(*exc)  # type: ignore[arg-type]

    def update(self, step: Step) -> None:
        if not self._enabled:
            return
        task = self._tasks.get(step.phase)
        if task is None:
            task = self._progress.add_task(step.phase[:40], total=step.total)
            self._tasks[step.phase] = task
        self._progress.update(task, completed=step.done, total=step.total)


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count} B"


# -- run / list / verify / prune -------------------------------------------------------------


@app.command("run")
def run_backup(home: HomeOption = None, json_output: JsonOption = False) -> None:
    """Take a backup now; it counts only when every required destination confirmed it."""
    with _platform(home) as platform:
        try:
            with _Bars(not json_output) as bars:
                result = platform.backups.run(progress=bars.update, actor=CLI_ACTOR)
        except PactvaultError as exc:
            raise _failure(exc) from None
    if json_output:
        _emit(result.to_dict())
    else:
        table = Table(title=f"Backup {result.backup_id}", header_style="bold")
        table.add_column("destination")
        table.add_column("required")
        table.add_column("result")
        table.add_column("uploaded", justify="right")
        table.add_column("already there", justify="right")
        for d in result.destinations:
            verdict = "[green]confirmed[/green]" if d.confirmed else f"[red]{d.error}[/red]"
            table.add_row(
                d.label,
                "yes" if d.required else "no",
                verdict,
                f"{d.objects_uploaded} ({_size(d.bytes_uploaded)})",
                str(d.objects_present),
            )
        console.print(table)
        counts = result.facts.counts if result.facts else {}
        console.print(
            f"{counts.get('contracts', 0)} contracts, {counts.get('signatures', 0)} signatures, "
            f"{result.blobs} stored objects, {_size(result.total_bytes)}; "
            f"{result.seconds:.1f} s"
        )
        if result.missing_blobs:
            console.print(
                f"[red]✗ {result.missing_blobs} stored object(s) are missing or damaged in the "
                "live store[/red] (alert raised; run `pactvault audit integrity`)"
            )
            for key in result.missing_keys[:20]:
                console.print(f"    {key}", markup=False)
        if result.complete:
            console.print(f"[green]✓[/green] backup {result.backup_id} is complete")
        else:
            console.print(
                f"[red]✗ backup {result.backup_id} does NOT count: a required destination did "
                "not confirm it[/red]"
            )
    if not result.complete:
        raise typer.Exit(EXIT_ERROR)
    if not result.ok:
        raise typer.Exit(EXIT_INVALID)


def _mark(present: bool) -> str:
    return "[green]✓[/green]" if present else "[red]—[/red]"


@app.command("list")
def list_backups(home: HomeOption = None, json_output: JsonOption = False) -> None:
    """The backups at the configured destinations, newest first."""
    with _platform(home) as platform:
        try:
            found = platform.backups.list()
        except PactvaultError as exc:
            raise _failure(exc) from None
        labels = [d.label for d in platform.backups.destinations]
    if json_output:
        _emit({"backups": [b.to_dict() for b in found]})
        return
    table = Table(title="Backups", header_style="bold")
    table.add_column("backup id")
    table.add_column("taken (UTC)")
    for label in labels:
        table.add_column(label)
    for backup in found:
        table.add_row(
            backup.backup_id,
            f"{backup.created_at:%Y-%m-%d %H:%M:%S}",
            *(_mark(label in backup.destinations) for label in labels),
        )
    console.print(table)
    if not found:
        console.print("no backups yet (`pactvault backup run`)")


@app.command("verify")
def verify_backups(
    backup_id: Annotated[str | None, typer.Argument(help="A backup id (default: latest)")] = None,
    all_backups: Annotated[bool, typer.Option("--all", help="Every backup")] = False,
    quick: Annotated[
        bool, typer.Option("--quick", help="Sizes only; do not re-read every object")
    ] = False,
    home: HomeOption = None,
    json_output: JsonOption = False,
) -> None:
    """Check manifest signatures and every object's SHA-256 at every destination."""
    with _platform(home) as platform:
        try:
            with _Bars(not json_output) as bars:
                report = platform.backups.verify(
                    backup_id, all_backups=all_backups, deep=not quick, progress=bars.update
                )
        except PactvaultError as exc:
            raise _failure(exc) from None
    if json_output:
        _emit(report.to_dict())
    else:
        for problem in report.problems[:50]:
            console.print(
                f"[red]✗[/red] {problem.destination}: {problem.name}: {problem.problem}",
                highlight=False,
            )
        if len(report.problems) > 50:
            console.print(f"… and {len(report.problems) - 50} more")
        console.print(
            f"{len(report.backups)} backup(s), {report.objects_checked} objects re-hashed "
            f"({_size(report.bytes_checked)}); restorable: {len(report.restorable)}"
        )
        if report.ok:
            console.print("[green]✓ every copy verified[/green]")
    if not report.ok:
        raise typer.Exit(EXIT_INVALID)


@app.command("prune")
def prune_backups(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only show what would go")] = False,
    home: HomeOption = None,
    json_output: JsonOption = False,
) -> None:
    """Delete backups the retention policy no longer keeps, and objects nothing kept needs."""
    with _platform(home) as platform:
        try:
            report = platform.backups.prune(dry_run=dry_run, actor=CLI_ACTOR)
        except PactvaultError as exc:
            raise _failure(exc) from None
    if json_output:
        _emit(report.to_dict())
    else:
        verb = "would delete" if dry_run else "deleted"
        console.print(f"retention {report.policy}")
        for d in report.destinations:
            if d.error:
                console.print(f"[red]✗ {d.label}: {d.error}[/red] (nothing deleted there)")
                continue
            console.print(
                f"{d.label}: kept {len(d.kept)}, {verb} {len(d.deleted)} backup(s), "
                f"{d.objects_deleted} object(s), {d.partial_deleted} unfinished; "
                f"{_size(d.bytes_freed)}"
            )
    if not report.ok:
        raise typer.Exit(EXIT_ERROR)


# -- restore and drill -----------------------------------------------------------------------


def _parse_time(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInputError(f"--at {value!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise InvalidInputError("--at needs a time zone, e.g. 2026-05-01T12:00:00+08:00")
    return moment.astimezone(UTC)


@app.command("restore")
def restore_backup(
    home: HomeOption = None,
    backup_id: Annotated[str | None, typer.Option("--backup", help="Restore this backup")] = None,
    at: Annotated[
        str | None, typer.Option("--at", help="The newest backup taken at or before this time")
    ] = None,
    source: Annotated[
        list[str] | None,
        typer.Option("--from", help="Destination to read from (repeatable; default: configured)"),
    ] = None,
    trust_key: Annotated[
        str | None,
        typer.Option(
            "--trust-key",
            help="Backup verification key: PEM file or SHA256:… fingerprint (default: the key "
            "pinned by import-root-key)",
        ),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Restore into a new data directory (or empty PostgreSQL database), then verify it all."""
    from pactvault.backup.destinations import parse_destinations
    from pactvault.backup.errors import RestoreTargetError
    from pactvault.backup.identity import load_trusted_key
    from pactvault.backup.restore import restore
    from pactvault.backup.rootkey import pinned_key_path
    from pactvault.keys.local import LocalKeyStore

    settings = settings_for(home)
    try:
        if backup_id and at:
            raise InvalidInputError("give --backup or --at, not both")
        moment = _parse_time(at) if at else None
        destinations = parse_destinations(
            source or settings.backup_destinations,
            s3_access_key_id=settings.backup_s3_access_key_id,
            s3_secret_access_key=settings.backup_s3_secret_access_key,
        )
        if not destinations:
            raise InvalidInputError(
                "no destination to restore from: set PACTVAULT_BACKUP_DESTINATIONS or use --from"
            )
        key_store = LocalKeyStore(settings.key_dir, settings.passphrase)
        if not key_store.exists():
            raise RestoreTargetError(
                f"no root key in {settings.key_dir}: rebuild it first with "
                f"`pactvault backup import-root-key --home {settings.home}`"
            )
        key_store.open()
        pinned = pinned_key_path(settings.key_dir)
        if trust_key:
            trusted = load_trusted_key(trust_key)
        elif pinned.exists():
            trusted = load_trusted_key(pinned)
        else:
            raise RestoreTargetError(
                "no trusted backup key: pass --trust-key (the PEM file or the SHA256:… "
                "fingerprint from a share sheet)"
            )
        with _Bars(not json_output) as bars:
            report = restore(
                settings,
                destinations,
                key_store,
                trusted,
                backup_id=backup_id,
                at=moment,
                progress=bars.update,
                actor=CLI_ACTOR,
            )
    except PactvaultError as exc:
        raise _failure(exc) from None
    if json_output:
        _emit(report.to_dict())
    else:
        console.print(
            f"Restored backup [bold]{report.backup_id}[/bold] (taken "
            f"{report.created_at:%Y-%m-%d %H:%M:%S} UTC) into {settings.home}: "
            f"{report.objects} objects, "
            f"{_size(report.bytes)} in {report.seconds:.1f} s"
        )
        for note in report.fallbacks:
            console.print(f"[yellow]![/yellow] used another copy — {note}", highlight=False)
        _print_checks(report)
    if not report.ok:
        raise typer.Exit(EXIT_INVALID)


def _print_checks(report: Any) -> None:
    if report.checks is None:
        return
    for check in report.checks.results:
        mark = "[green]✓[/green]" if check.ok else "[red]✗[/red]"
        console.print(f"{mark} {check.name}: {check.detail}", highlight=False)
        for problem in check.problems:
            console.print(f"    {problem}", markup=False)
    if report.checks.ok:
        console.print("[green]✓ the restored instance verified completely[/green]")
    else:
        console.print("[red]✗ the restored instance did NOT verify: do not put it in service[/red]")


@app.command("drill")
def drill(home: HomeOption = None, json_output: JsonOption = False) -> None:
    """Restore the latest backup into scratch space, verify it, report RPO and RTO."""
    with _platform(home) as platform:
        try:
            with _Bars(not json_output) as bars:
                report = platform.backups.drill(progress=bars.update, actor=CLI_ACTOR)
        except PactvaultError as exc:
            raise _failure(exc) from None
    if json_output:
        _emit(report.to_dict())
    else:
        if report.restore is not None:
            _print_checks(report.restore)
        if report.ok:
            console.print(
                f"[green]✓ drill passed[/green]: backup {report.backup_id}; "
                f"RPO {report.rpo_seconds:.0f} s (age of the newest restorable data), "
                f"RTO {report.rto_seconds:.1f} s (to a verified, working platform)"
            )
        else:
            console.print(f"[red]✗ drill FAILED[/red]: {report.error}", highlight=False)
            console.print("a critical alert (backup.drill-failed) was raised")
    if not report.ok:
        raise typer.Exit(EXIT_INVALID)


# -- the key ceremony ------------------------------------------------------------------------


def _sheet(number: int, count: int, threshold: int, share: str, facts: dict[str, str]) -> str:
    lines = [
        f"pactvault ROOT KEY SHARE {number} of {count}: "
        f"any {threshold} shares rebuild the root key",
        "",
        f"instance:               {facts['instance_id']}",
        f"share set:              {facts['set_id']}",
        f"created:                {facts['created_at']}",
        f"root key versions:      {facts['versions']}",
        f"backup verification key {facts['fingerprint']}",
        "",
        share,
        "",
        "Keep this sheet offline and private; never store two shares together.",
        "To restore: pactvault backup import-root-key --home NEW_DATA_DIR (asks for the shares),",
        "then: pactvault backup restore --home NEW_DATA_DIR",
    ]
    return "\n".join(lines) + "\n"


@app.command("export-root-key")
def export_root_key(
    shares: Annotated[int, typer.Option("--shares", help="How many custodians (N)")],
    threshold: Annotated[int, typer.Option("--threshold", help="How many rebuild the key (M)")],
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write one sheet per custodian into this new directory"),
    ] = None,
    home: HomeOption = None,
    json_output: JsonOption = False,
) -> None:
    """The key ceremony: split the root key into M-of-N shares for custodians."""
    from pactvault.backup.rootkey import CeremonyKeyStore
    from pactvault.backup.shares import EscrowRecord, parse_share, split_record

    with _platform(home) as platform:
        try:
            settings = platform.settings
            identity = platform.backups.identity()
            material = CeremonyKeyStore(settings.key_dir, settings.passphrase).open().material()
            created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            escrow = EscrowRecord(identity.instance_id, created, identity.raw_public_key, material)
            texts = split_record(escrow, shares=shares, threshold=threshold)
            set_id = parse_share(texts[0]).set_label
            with platform.db.write() as session:
                record(
                    session,
                    CLI_ACTOR,
                    "backup.root-key.export",
                    object_type="backup",
                    details={
                        "share_set": set_id,
                        "shares": shares,
                        "threshold": threshold,
                        "root_key_versions": sorted(material.keys),
                        "backup_key": identity.fingerprint,
                    },
                )
            facts = {
                "instance_id": identity.instance_id,
                "set_id": set_id,
                "created_at": created,
                "versions": ", ".join(
                    f"{v}{' (active)' if v == material.active_version else ''}"
                    for v in sorted(material.keys)
                ),
                "fingerprint": identity.fingerprint,
            }
            pem = identity.pem().decode("ascii")
            if out is not None:
                _write_sheets(out, texts, threshold, facts, pem)
        except PactvaultError as exc:
            raise _failure(exc) from None
    if json_output:
        _emit({**facts, "threshold": threshold, "shares": texts, "public_key_pem": pem})
        return
    if out is not None:
        console.print(
            f"Wrote {shares} share sheets and backup-signing-key.pem to {out} — print each sheet "
            "for its custodian, then delete the files."
        )
    else:
        for number, text in enumerate(texts, start=1):
            console.print(_sheet(number, shares, threshold, text, facts), markup=False)
            console.print("-" * 72)
    console.print(
        f"Backup verification key {identity.fingerprint} (also at every destination as "
        "backup-signing-key.pem). Re-run this ceremony after rotating the root key."
    )


def _write_sheets(
    out: Path, texts: list[str], threshold: int, facts: dict[str, str], pem: str
) -> None:
    try:
        out.mkdir(mode=0o700, parents=True, exist_ok=False)
    except FileExistsError:
        raise InvalidInputError(f"{out} exists: give a new directory for the sheets") from None
    for number, text in enumerate(texts, start=1):
        path = out / f"share-{number}-of-{len(texts)}.txt"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(_sheet(number, len(texts), threshold, text, facts))
    (out / "backup-signing-key.pem").write_text(pem, encoding="ascii")


def _read_shares(shares: list[str] | None, files: list[Path] | None) -> list[str]:
    found = list(shares or [])
    for path in files or []:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise InvalidInputError(f"cannot read {path}: {exc.strerror}") from None
        found += [line.strip() for line in text.splitlines() if _is_share(line)]
    if found:
        return found
    if sys.stdin.isatty():
        from pactvault.backup.shares import parse_share

        first = typer.prompt("share 1", hide_input=True)
        needed = parse_share(first, position=1).threshold
        found = [first]
        for number in range(2, needed + 1):
            found.append(typer.prompt(f"share {number} of {needed}", hide_input=True))
        return found
    return [line.strip() for line in sys.stdin if _is_share(line)]


def _is_share(line: str) -> bool:
    return line.strip().upper().startswith("PVK1")


@app.command("import-root-key")
def import_root_key(
    share: Annotated[
        list[str] | None,
        typer.Option("--share", help="A share (repeatable; prefer files or the prompt)"),
    ] = None,
    shares_file: Annotated[
        list[Path] | None,
        typer.Option("--shares-file", help="A file with shares, e.g. a sheet (repeatable)"),
    ] = None,
    check: Annotated[
        bool,
        typer.Option("--check", help="Only compare with this instance's root key; write nothing"),
    ] = False,
    home: HomeOption = None,
    json_output: JsonOption = False,
) -> None:
    """Rebuild the root key from any M shares into a new data directory's key store."""
    from pactvault.backup.rootkey import CeremonyKeyStore, install_root_key, pinned_key_path
    from pactvault.backup.shares import combine_shares

    settings = settings_for(home)
    try:
        escrow = combine_shares(_read_shares(share, shares_file))
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        from pactvault.backup.identity import BackupIdentity

        identity = BackupIdentity(
            escrow.instance_id, Ed25519PublicKey.from_public_bytes(escrow.backup_public_key)
        )
        result: dict[str, Any] = {
            "instance_id": escrow.instance_id,
            "root_key_versions": sorted(escrow.material.keys),
            "backup_key": identity.fingerprint,
        }
        if check:
            live = CeremonyKeyStore(settings.key_dir, settings.passphrase).open().material()
            with _platform(home) as platform:
                live_identity = platform.backups.identity()
            result["matches"] = escrow.material.same_as(live) and (
                live_identity.fingerprint == identity.fingerprint
                and live_identity.instance_id == escrow.instance_id
            )
        else:
            install_root_key(settings.key_dir, settings.passphrase, escrow.material)
            pinned_key_path(settings.key_dir).write_bytes(identity.pem())
            result["written"] = str(settings.key_dir)
            result["protected"] = bool(settings.passphrase)
    except PactvaultError as exc:
        raise _failure(exc) from None
    if json_output:
        _emit(result)
    elif check:
        if result["matches"]:
            console.print("[green]✓ the shares rebuild this instance's root key[/green]")
        else:
            console.print("[red]✗ the shares rebuild a DIFFERENT root key[/red]")
    else:
        protection = (
            "sealed under PACTVAULT_PASSPHRASE"
            if settings.passphrase
            else "NOT passphrase-protected: set PACTVAULT_PASSPHRASE"
        )
        console.print(
            f"Root key of instance {escrow.instance_id} written to {settings.key_dir} "
            f"({protection}); "
            f"backup verification key {identity.fingerprint} pinned.\n"
            f"Next: pactvault backup restore --home {settings.home}"
        )
    if check and not result["matches"]:
        raise typer.Exit(EXIT_INVALID)
