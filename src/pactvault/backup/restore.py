"""Restoring a backup into a new data directory (SQLite) or an empty PostgreSQL database.

What a restore needs — and all it needs — besides the backups themselves:

* the **root key**, rebuilt from the key ceremony's shares (``pactvault backup import-root-key``
  writes it as ``keys/root-key.json`` of the new data directory, sealed under
  ``PACTVAULT_PASSPHRASE`` when set), or an offline copy of the old ``keys/root-key.json`` (with
  its passphrase);
* the **backup verification key** it trusts: pinned by ``import-root-key`` from the shares
  (``keys/backup-signing-key.pem``), or given as ``--trust-key`` (a PEM file or the
  ``SHA256:…`` fingerprint printed on every share sheet);
* the same ``PACTVAULT_PUBLIC_URL`` as before (it names the evidence ledger and is in every
  certificate; the ledger refuses to open under another name).

The order is strict, so nothing is installed from a backup that does not verify:

1. the target must be empty (no database file, no blobs; an empty PostgreSQL database) and of the
   backup's database kind;
2. the backup is chosen — the latest, ``backup_id``, or the newest taken at or before ``at`` —
   and its manifest is read from the first destination where its signature verifies against the
   trusted key (others' failures are reported); a backup made by a newer pactvault (unknown
   schema revision) is refused;
3. the per-backup data key is opened with the root key;
4. **every** object is fetched and its size and SHA-256 checked against the manifest; an object
   that fails at one destination is taken from the next one that has a good copy; one that no
   destination has intact stops the restore, naming the object and what each destination had;
5. only then: the database is decrypted (all-or-nothing, plaintext hash checked) and installed
   (SQLite file + ``integrity_check``, or ``pg_restore`` in one transaction), blobs are written
   into the blob store under their keys from the (decrypted) catalog, and the restored database
   must show exactly the manifest's ledger root, audit head, schema and counts;
6. the platform is opened on the result (schema migrated to this version) and
   ``backup.checks.verify_restored`` runs; the restore is written to the restored instance's own
   audit journal (``backup.restore``).

A failure in steps 1-4 leaves the target untouched; in step 5 it removes what it installed.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from pactvault.audit.journal import Actor, record
from pactvault.backup import manifest as layout
from pactvault.backup.archive import RootSealer, decrypt_file, file_context, open_data_key
from pactvault.backup.checks import RestoreChecks, verify_restored
from pactvault.backup.destinations import Destination, write_file
from pactvault.backup.errors import BackupIntegrityError, RestoreTargetError
from pactvault.backup.identity import BackupIdentity, TrustedKey
from pactvault.backup.manifest import Manifest
from pactvault.backup.progress import Progress, Step, ignore
from pactvault.backup.service import fetch_manifest, list_backup_ids, parallel, time_of
from pactvault.backup.snapshot import (
    DatabaseFacts,
    PgTools,
    check_sqlite,
    database_is_empty,
    postgres_facts,
    restore_postgres,
    sqlite_facts,
)
from pactvault.config import Settings
from pactvault.errors import NotFoundError, PactvaultError
from pactvault.store.blobs import FilesystemBlobStore, validate_key

__all__ = ["RestoreReport", "choose_backup", "restore"]

_READ = 1 << 20


@dataclass
class RestoreReport:
    backup_id: str
    created_at: datetime
    source: str
    objects: int = 0
    bytes: int = 0
    #: Objects (or manifests) taken from a later destination, and why the earlier ones failed.
    fallbacks: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    checks: RestoreChecks | None = None

    @property
    def seconds(self) -> float:
        return sum(self.timings.values())

    @property
    def ok(self) -> bool:
        return self.checks is None or self.checks.ok

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "backup_id": self.backup_id,
            "created_at": self.created_at.isoformat(),
            "manifest_from": self.source,
            "objects": self.objects,
            "bytes": self.bytes,
            "fallbacks": self.fallbacks,
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
            "seconds": round(self.seconds, 3),
            "verified": self.checks is not None,
            "checks": self.checks.to_dict() if self.checks else [],
        }


def _is_sqlite(settings: Settings) -> bool:
    return settings.resolved_database_url.startswith("sqlite")


def _sqlite_path(settings: Settings) -> Path:
    database = make_url(settings.resolved_database_url).database
    if not database or database == ":memory:":
        raise RestoreTargetError("restore needs a database file, not an in-memory database")
    return Path(database)


def check_target(settings: Settings) -> None:
    """Refuse a target that already holds an instance (nothing is ever overwritten)."""
    if _is_sqlite(settings):
        path = _sqlite_path(settings)
        for candidate in (path, Path(f"{path}-wal"), Path(f"{path}-journal")):
            if candidate.exists():
                raise RestoreTargetError(
                    f"{candidate} exists: restore into a new, empty data directory"
                )
    elif not database_is_empty(settings.resolved_database_url):
        raise RestoreTargetError(
            "the target PostgreSQL database is not empty: restore into a new, empty database"
        )
    blob_dir = settings.blob_dir
    if blob_dir.exists() and any(blob_dir.iterdir()):
        raise RestoreTargetError(f"{blob_dir} is not empty: restore into a new data directory")


def choose_backup(
    destinations: Sequence[Destination],
    *,
    backup_id: str | None = None,
    at: datetime | None = None,
) -> tuple[str, dict[str, list[str]]]:
    """The backup to restore and which destinations list it; listing failures are skipped
    (a destination that cannot even be listed is simply not a source)."""
    listed: dict[str, list[str]] = {}
    for destination in destinations:
        try:
            listed[destination.label] = list_backup_ids(destination)
        except PactvaultError:
            listed[destination.label] = []
    known = sorted({i for ids in listed.values() for i in ids})
    if backup_id is not None:
        layout.check_backup_id(backup_id)
        if backup_id not in known:
            raise NotFoundError(f"no backup {backup_id} at any destination")
        return backup_id, listed
    if at is not None:
        if at.tzinfo is None:
            raise RestoreTargetError("--at needs a time zone (e.g. 2026-05-01T12:00:00+08:00)")
        earlier = [i for i in known if time_of(i) <= at]
        if not earlier:
            raise NotFoundError(f"no backup was taken at or before {at.isoformat()}")
        return earlier[-1], listed
    if not known:
        raise NotFoundError("there is no backup at any destination")
    return known[-1], listed


def read_manifest(
    destinations: Sequence[Destination],
    backup_id: str,
    listed: dict[str, list[str]],
    trusted: TrustedKey | BackupIdentity,
    fallbacks: list[str],
) -> tuple[Manifest, str]:
    failures = []
    for destination in destinations:
        if backup_id not in listed.get(destination.label, []):
            continue
        try:
            manifest, _ = fetch_manifest(destination, backup_id, trusted)
        except PactvaultError as exc:
            failures.append(exc.detail)
            continue
        fallbacks.extend(f"manifest: {failure}" for failure in failures)
        return manifest, destination.label
    raise BackupIntegrityError(
        f"no destination has a manifest of backup {backup_id} that verifies: "
        + "; ".join(failures or ["none lists it"])
    )


def _check_schema(manifest: Manifest) -> None:
    from alembic.script import ScriptDirectory

    from pactvault.store.migrate import alembic_config

    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    known = {revision.revision for revision in script.walk_revisions()}
    unknown = sorted(set(manifest.schema_heads) - known)
    if unknown:
        raise RestoreTargetError(
            f"backup {manifest.backup_id} was made by a newer pactvault (schema "
            f"{', '.join(unknown)}); upgrade pactvault before restoring it"
        )


def _fetch_all(
    manifest: Manifest,
    destinations: Sequence[Destination],
    staging: Path,
    report: RestoreReport,
    progress: Progress,
) -> dict[str, Path]:
    """Every object into ``staging``, each size- and hash-checked, falling back across
    destinations. Returns object name → staged file."""
    objects = manifest.objects()
    progress(Step("fetch", 0, len(objects)))
    failed: dict[str, str] = {}
    notes: dict[str, str] = {}

    def fetch(item: tuple[str, str, int]) -> None:
        name, sha256, size = item
        target = staging / sha256
        failures: list[str] = []
        for destination in destinations:
            try:
                found_sha, found_size = destination.download(name, target)
            except PactvaultError as exc:
                failures.append(f"{destination.label}: {exc.detail}")
                continue
            if found_size == size and found_sha == sha256:
                if failures:
                    notes[name] = "; ".join(failures)
                return
            target.unlink(missing_ok=True)
            failures.append(
                f"{destination.label}: {name} has "
                + (f"{found_size} bytes, expected {size}" if found_size != size else "another hash")
            )
        failed[name] = "; ".join(failures)

    for done, (_name, _sha, size) in enumerate(parallel(fetch, objects), start=1):
        report.objects += 1
        report.bytes += size
        if done % 100 == 0 or done == len(objects):
            progress(Step("fetch", done, len(objects)))
    if failed:
        name = sorted(failed)[0]
        raise BackupIntegrityError(
            f"{name} of backup {manifest.backup_id} has no intact copy at any destination: "
            + failed[name]
            + (f" (and {len(failed) - 1} more object(s))" if len(failed) > 1 else "")
        )
    report.fallbacks += [f"{name}: {note}" for name, note in sorted(notes.items())]
    return {name: staging / sha256 for name, sha256, _size in objects}


def _chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while block := handle.read(_READ):
            yield block


def _facts_match(manifest: Manifest, facts: DatabaseFacts) -> None:
    expected = (
        manifest.schema_heads,
        manifest.ledger_size,
        manifest.ledger_root,
        manifest.audit_seq,
        manifest.audit_head,
        manifest.counts,
    )
    found = (
        facts.schema_heads,
        facts.ledger_size,
        facts.ledger_root,
        facts.audit_seq,
        facts.audit_head,
        facts.counts,
    )
    names = ("schema heads", "ledger size", "ledger root", "audit entries", "audit head", "counts")
    differ = [n for n, a, b in zip(names, expected, found, strict=True) if a != b]
    if differ:
        raise BackupIntegrityError(
            f"the restored database of backup {manifest.backup_id} does not match its manifest "
            f"({', '.join(differ)})"
        )


def restore(
    settings: Settings,
    destinations: Sequence[Destination],
    sealer: RootSealer,
    trusted: TrustedKey | BackupIdentity,
    *,
    backup_id: str | None = None,
    at: datetime | None = None,
    verify: bool = True,
    progress: Progress | None = None,
    actor: Actor | None = None,
    pg_tools: PgTools | None = None,
) -> RestoreReport:
    """Restore a backup into the (empty) instance ``settings`` describes; see the module doc."""
    progress = progress or ignore
    actor = actor or Actor(type="operator-cli", id="pactvault backup restore")
    pg_tools = pg_tools or PgTools(settings.backup_pg_bindir)
    clock = time.monotonic()
    check_target(settings)
    chosen, listed = choose_backup(destinations, backup_id=backup_id, at=at)
    fallbacks: list[str] = []
    manifest, source = read_manifest(destinations, chosen, listed, trusted, fallbacks)
    if at is not None and manifest.created_at > at:
        raise BackupIntegrityError(f"backup {chosen} is newer than its id says")
    report = RestoreReport(chosen, manifest.created_at, source, fallbacks=fallbacks)
    _check_schema(manifest)
    kind = "sqlite" if _is_sqlite(settings) else "postgresql"
    if manifest.database_kind != kind:
        into = (
            "a data directory without PACTVAULT_DATABASE_URL"
            if manifest.database_kind == "sqlite"
            else "an empty PostgreSQL database (PACTVAULT_DATABASE_URL)"
        )
        raise RestoreTargetError(
            f"backup {chosen} holds a {manifest.database_kind} database; restore it into {into}"
        )
    created = manifest.created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    key = open_data_key(
        sealer,
        instance_id=manifest.instance_id,
        backup_id=chosen,
        created_at=created,
        root_key_version=manifest.root_key_version,
        sealed=manifest.wrapped_data_key,
    )
    settings.home.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(settings.home, 0o700)
    staging = Path(tempfile.mkdtemp(prefix=".restore-", dir=settings.home))
    try:
        staged = _fetch_all(manifest, destinations, staging, report, progress)
        report.timings["fetch"] = time.monotonic() - clock
        clock = time.monotonic()
        _install(settings, manifest, key, staged, staging, pg_tools, progress)
        report.timings["install"] = time.monotonic() - clock
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if not verify:
        return report
    clock = time.monotonic()
    from pactvault.platform import Platform

    platform = Platform.open(settings)
    try:
        report.timings["open"] = time.monotonic() - clock
        clock = time.monotonic()
        report.checks = verify_restored(platform, manifest, actor=actor, progress=progress)
        report.timings["verify"] = time.monotonic() - clock
        with platform.db.write() as session:
            record(
                session,
                actor,
                "backup.restore",
                object_type="backup",
                details={
                    "backup_id": chosen,
                    "created_at": manifest.created_at,
                    "manifest_from": source,
                    "fallbacks": len(report.fallbacks),
                    "verified": report.checks.ok,
                    "checks": {r.name: r.ok for r in report.checks.results},
                },
            )
    finally:
        platform.close()
    return report


def _install(
    settings: Settings,
    manifest: Manifest,
    key: bytes,
    staged: dict[str, Path],
    staging: Path,
    pg_tools: PgTools,
    progress: Progress,
) -> None:
    installed: list[Path] = []
    sqlite = _is_sqlite(settings)
    try:
        catalog_file = manifest.file("catalog")
        catalog_plain = staging / "catalog.json"
        decrypt_file(
            key,
            staged[catalog_file.name],
            catalog_plain,
            aad=file_context(manifest.instance_id, manifest.backup_id, "catalog"),
            plaintext_sha256=catalog_file.plaintext_sha256,
            what=f"{catalog_file.name} of backup {manifest.backup_id}",
        )
        mapping = _catalog(catalog_plain, manifest)
        database = manifest.file("database")
        progress(Step("install database", 0, 1))
        if sqlite:
            target = _sqlite_path(settings)
            target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            installed.append(target)
            decrypt_file(
                key,
                staged[database.name],
                target,
                aad=file_context(manifest.instance_id, manifest.backup_id, "database"),
                plaintext_sha256=database.plaintext_sha256,
                what=f"{database.name} of backup {manifest.backup_id}",
            )
            check_sqlite(target)
            facts = sqlite_facts(target)
        else:
            dump = staging / "database.dump"
            decrypt_file(
                key,
                staged[database.name],
                dump,
                aad=file_context(manifest.instance_id, manifest.backup_id, "database"),
                plaintext_sha256=database.plaintext_sha256,
                what=f"{database.name} of backup {manifest.backup_id}",
            )
            restore_postgres(dump, settings.resolved_database_url, pg_tools)
            facts = postgres_facts(settings.resolved_database_url)
        progress(Step("install database", 1, 1))
        _facts_match(manifest, facts)
        if not settings.blob_dir.exists():
            installed.append(settings.blob_dir)
        store = FilesystemBlobStore(settings.blob_dir)
        progress(Step("install blobs", 0, len(mapping)))
        moved: dict[str, Path] = {}
        for done, (blob_key, sha256) in enumerate(sorted(mapping.items()), start=1):
            # The store's documented layout (key "a/b/c" is the file root/a/b/c): a verified
            # staged object is renamed into place — no second copy of every byte.
            path = store.root.joinpath(*validate_key(blob_key).split("/"))
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            source = staged[layout.object_name(sha256)]
            if sha256 in moved:  # two keys, one content: cannot happen with random data keys
                write_file(path, _chunks(moved[sha256]), sync=False)
            else:
                os.replace(source, path)
                moved[sha256] = path
            if done % 500 == 0 or done == len(mapping):
                progress(Step("install blobs", done, len(mapping)))
        os.sync()  # one durability barrier for every file written above
        for blob_key in mapping:
            if not store.exists(blob_key):
                raise BackupIntegrityError(f"blob {blob_key} did not land in the blob store")
    except BaseException:
        if not sqlite:
            _empty_postgres(settings.resolved_database_url)
        for path in installed:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
                    leftover.unlink(missing_ok=True)
        raise


def _catalog(path: Path, manifest: Manifest) -> dict[str, str]:
    try:
        document = json.loads(path.read_bytes())
        mapping = document["blobs"]
        if document["format"] != "pactvault-backup-catalog" or not isinstance(mapping, dict):
            raise ValueError("not a catalog")
        mapping = {str(k): str(v) for k, v in mapping.items()}
    except (ValueError, KeyError, TypeError):
        raise BackupIntegrityError(
            f"the catalog of backup {manifest.backup_id} is malformed"
        ) from None
    listed = {b.sha256 for b in manifest.blobs}
    if set(mapping.values()) != listed:
        raise BackupIntegrityError(
            f"the catalog of backup {manifest.backup_id} does not match its manifest"
        )
    return mapping


def _empty_postgres(url: str) -> None:
    """Undo a partial PostgreSQL install (pg_restore itself is one transaction; this covers a
    failure after it, e.g. a facts mismatch), so the target is empty again."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
    except Exception:  # noqa: S110 - best effort; the original error is what matters
        pass
    finally:
        engine.dispose()
