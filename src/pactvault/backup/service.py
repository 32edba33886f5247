"""Taking, listing, verifying and pruning backups of a running instance (``BackupService``).

One backup run, while the platform keeps serving:

1. **destinations** — each must be free or already hold *this* instance's backups (marker file
   ``pactvault-backups.json``); the manifest verification key is published next to the backups;
2. **snapshot** — the database, consistently (``backup.snapshot``), with the facts the manifest
   promises (ledger size and root, audit head, counts, and every blob the snapshot refers to);
3. **encrypt** — the snapshot and the blob catalog under a fresh data key sealed by the root key
   (``backup.archive``);
4. **blobs** — per destination, one listing of what it already has; only objects it lacks (or
   holds with the wrong size) are copied, each first re-hashed and checked against the SHA-256
   the database recorded for it (a damaged live blob is never passed off as good);
5. **confirm** — every uploaded object is confirmed (size and SHA-256, see
   ``backup.destinations``), the destination is re-listed to prove every object the backup needs
   is there, then the signature and finally the manifest are written and confirmed.

A backup *counts* only when every **required** destination confirmed it; otherwise the run says
so, the failure is audited and raised as a critical alert (``backup.failed``), and the CLI exits
3. Blobs the database refers to but that are missing or damaged in the live store are listed in
the (encrypted) catalog, counted in the manifest and alerted (``backup.blobs-missing``); the rest
of the backup still completes — one lost document must not stop everything else being saved.

Runs, prunes and scheduled runs of all processes share one lease (``backup``), so they never
overlap; drills have their own (``backup-drill``). Pruning (``backup.retention``) deletes the
manifest of an expired backup first, then its files, and deletes a blob object only when no kept
manifest at that destination lists it and it is older than a grace period (so an object a
concurrent backup just uploaded is never taken). If any kept manifest cannot be read and verified,
nothing at that destination is deleted.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from pactvault import __version__
from pactvault.audit.journal import Actor, record
from pactvault.backup import manifest as layout
from pactvault.backup.archive import (
    RootSealer,
    encrypt_file,
    file_context,
    new_data_key,
    open_data_key,
)
from pactvault.backup.destinations import TRANSFER_WORKERS, Destination, parse_destinations
from pactvault.backup.errors import BackupError, BackupIntegrityError
from pactvault.backup.identity import BackupIdentity, BackupKeys, TrustedKey, fingerprint
from pactvault.backup.manifest import BlobObject, Manifest, StoredFile
from pactvault.backup.progress import Progress, Step, ignore
from pactvault.backup.retention import RetentionPolicy, select_kept
from pactvault.backup.snapshot import DatabaseFacts, PgTools, snapshot_postgres, snapshot_sqlite
from pactvault.config import Settings
from pactvault.crypto.hashing import equal
from pactvault.errors import ConflictError, InvalidInputError, NotFoundError, PactvaultError
from pactvault.keys.service import KeyService
from pactvault.monitor.alerts import AlertService
from pactvault.monitor.lease import JobLease
from pactvault.store.base import utcnow
from pactvault.store.blobs import BlobStore
from pactvault.store.db import Database

__all__ = [
    "BackupResult",
    "BackupService",
    "ListedBackup",
    "PruneReport",
    "VerifyReport",
    "fetch_manifest",
    "list_backup_ids",
]

T = TypeVar("T")
BACKUP_JOB = "backup"
DRILL_JOB = "backup-drill"
DESTINATION_FORMAT = "pactvault-backup-destination"
#: Objects younger than this are never pruned: a backup running elsewhere may have just
#: uploaded them and not written its manifest yet.
PRUNE_GRACE = timedelta(hours=24)
_CATALOG_FORMAT = "pactvault-backup-catalog"
MAX_NAMED = 20
_READ = 1 << 20


@dataclass
class DestinationOutcome:
    label: str
    required: bool
    confirmed: bool = False
    error: str | None = None
    objects_uploaded: int = 0
    bytes_uploaded: int = 0
    objects_present: int = 0


@dataclass
class BackupResult:
    backup_id: str
    created_at: datetime
    manifest_sha256: str
    total_bytes: int
    blobs: int
    missing_blobs: int
    destinations: list[DestinationOutcome]
    seconds: float
    facts: DatabaseFacts | None = field(default=None, repr=False)
    #: Blob keys the database refers to that were missing or damaged (operator's eyes only).
    missing_keys: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Every required destination confirmed the backup (it counts)."""
        return all(d.confirmed for d in self.destinations if d.required) and any(
            d.confirmed for d in self.destinations
        )

    @property
    def ok(self) -> bool:
        """Complete, every optional destination too, and no blob missing."""
        return (
            self.complete
            and all(d.confirmed for d in self.destinations)
            and not (self.missing_blobs)
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "backup_id": self.backup_id,
            "created_at": self.created_at.isoformat(),
            "manifest_sha256": self.manifest_sha256,
            "complete": self.complete,
            "ok": self.ok,
            "total_bytes": self.total_bytes,
            "blobs": self.blobs,
            "missing_blobs": self.missing_blobs,
            "missing_keys": self.missing_keys[:MAX_NAMED],
            "seconds": round(self.seconds, 3),
            "counts": dict(self.facts.counts) if self.facts else {},
            "ledger": (
                {"tree_size": self.facts.ledger_size, "root_hash": self.facts.ledger_root}
                if self.facts
                else None
            ),
            "destinations": [vars(d) for d in self.destinations],
        }


@dataclass(frozen=True)
class ListedBackup:
    backup_id: str
    created_at: datetime
    destinations: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "backup_id": self.backup_id,
            "created_at": self.created_at.isoformat(),
            "destinations": list(self.destinations),
        }


@dataclass
class ObjectProblem:
    destination: str
    name: str
    problem: str


@dataclass
class VerifyReport:
    backups: list[str] = field(default_factory=list)
    destinations: list[str] = field(default_factory=list)
    objects_checked: int = 0
    bytes_checked: int = 0
    problems: list[ObjectProblem] = field(default_factory=list)
    #: Backups that have at least one good copy of every object somewhere.
    restorable: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and set(self.restorable) == set(self.backups)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "backups": self.backups,
            "restorable": self.restorable,
            "destinations": self.destinations,
            "objects_checked": self.objects_checked,
            "bytes_checked": self.bytes_checked,
            "problems": [vars(p) for p in self.problems],
        }


@dataclass
class PrunedDestination:
    label: str
    kept: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    objects_deleted: int = 0
    bytes_freed: int = 0
    partial_deleted: int = 0
    error: str | None = None


@dataclass
class PruneReport:
    policy: str
    dry_run: bool
    destinations: list[PrunedDestination] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(d.error is None for d in self.destinations)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "policy": self.policy,
            "dry_run": self.dry_run,
            "destinations": [vars(d) for d in self.destinations],
        }


def parallel(work: Callable[[T], object], items: Sequence[T]) -> Iterator[T]:
    """Run ``work`` on every item with a few threads; yields items as they finish. The first
    failure stops the rest (nothing new starts) and is raised."""
    if not items:
        return
    with ThreadPoolExecutor(max_workers=TRANSFER_WORKERS) as pool:
        futures = {pool.submit(work, item): item for item in items}
        try:
            for future in as_completed(futures):
                future.result()
                yield futures[future]
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def time_of(backup_id: str) -> datetime:
    return datetime.strptime(backup_id[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


def list_backup_ids(destination: Destination) -> list[str]:
    """The ids of the backups whose manifest is at ``destination`` (oldest first)."""
    ids = []
    for info in destination.list(layout.BACKUPS_PREFIX):
        parts = info.name.split("/")
        if len(parts) == 3 and parts[2] == "manifest.json" and layout.BACKUP_ID.fullmatch(parts[1]):
            ids.append(parts[1])
    return sorted(ids)


def fetch_manifest(
    destination: Destination, backup_id: str, trusted: TrustedKey | BackupIdentity
) -> tuple[Manifest, bytes]:
    """Read a manifest and check its signature against the trusted key; returns it and its
    exact bytes. Anything wrong → BackupIntegrityError naming the backup and destination."""
    where = f"backup {backup_id} at {destination.label}"
    body = destination.get_bytes(layout.manifest_name(backup_id))
    signature = destination.get_bytes(layout.signature_name(backup_id), limit=1024)
    if body is None:
        raise BackupIntegrityError(f"{where}: the manifest is missing")
    if signature is None:
        raise BackupIntegrityError(f"{where}: the manifest signature is missing")
    manifest = Manifest.from_bytes(body, expected_id=backup_id)
    if not trusted.accepts(manifest.signing_key):
        raise BackupIntegrityError(
            f"{where}: the manifest is signed by key {fingerprint(manifest.signing_key)}, "
            f"not by the trusted backup key {trusted.fingerprint}"
        )
    signer = Ed25519PublicKey.from_public_bytes(manifest.signing_key)
    BackupIdentity(manifest.instance_id, signer).verify(
        body, signature, what=f"{where}: the manifest"
    )
    return manifest, body


class BackupService:
    """Backups of one instance; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        blob_store: BlobStore,
        keys: KeyService,
        sealer: RootSealer,
        alerts: AlertService,
        *,
        clock: Any = utcnow,
        lease_ttl: timedelta = timedelta(hours=2),
    ) -> None:
        self.settings = settings
        self.db = db
        self.blob_store = blob_store
        self.sealer = sealer
        self.alerts = alerts
        self.destinations: list[Destination] = parse_destinations(
            settings.backup_destinations,
            s3_access_key_id=settings.backup_s3_access_key_id,
            s3_secret_access_key=settings.backup_s3_secret_access_key,
        )
        home = settings.home.resolve()
        for destination in self.destinations:
            root = getattr(destination, "root", None)
            if root is not None and Path(root).resolve().is_relative_to(home):
                raise InvalidInputError(
                    f"backup destination {destination.label} is inside the data directory: "
                    "it would be lost with it"
                )
        self.retention = RetentionPolicy.parse(settings.backup_retention)
        self.keys = BackupKeys(db, keys)
        self.pg = PgTools(settings.backup_pg_bindir)
        self.clock = clock
        self.lease = JobLease(db, BACKUP_JOB, ttl=lease_ttl)
        self.drill_lease = JobLease(db, DRILL_JOB, ttl=lease_ttl)

    # -- the identity --------------------------------------------------------------------------

    def identity(self) -> BackupIdentity:
        return self.keys.identity()

    def _require_destinations(self) -> list[Destination]:
        if not self.destinations:
            raise InvalidInputError(
                "no backup destination is configured (PACTVAULT_BACKUP_DESTINATIONS)"
            )
        return self.destinations

    @contextlib.contextmanager
    def _leased(self, progress: Progress) -> Iterator[Progress]:
        now = self.clock()
        token = self.lease.try_acquire(now, interval=timedelta(0))
        if token is None:
            raise ConflictError("another backup or prune of this instance is running now")
        outcome = {"outcome": "error"}
        try:
            yield self._renewing(token, progress)
            outcome["outcome"] = "done"
        finally:
            self.lease.release(token, self.clock(), outcome=outcome["outcome"])

    def _renewing(self, token: str, progress: Progress) -> Progress:
        every = self.lease.ttl.total_seconds() / 3
        last = time.monotonic()

        def report(step: Step) -> None:
            nonlocal last
            if time.monotonic() - last >= every:
                self.lease.renew(token, self.clock())
                last = time.monotonic()
            progress(step)

        return report

    # -- run -----------------------------------------------------------------------------------

    def run(self, *, progress: Progress | None = None, actor: Actor | None = None) -> BackupResult:
        """Take one backup to every configured destination now."""
        destinations = self._require_destinations()
        with self._leased(progress or ignore) as report:
            return self._run(destinations, report, actor or Actor.system())

    def _run(
        self, destinations: Sequence[Destination], progress: Progress, actor: Actor
    ) -> BackupResult:
        started = time.monotonic()
        identity = self.identity()
        outcomes = {d.label: DestinationOutcome(d.label, d.required) for d in destinations}
        present: dict[str, dict[str, int]] = {}
        usable: list[Destination] = []
        for destination in destinations:
            try:
                self._prepare(destination, identity)
                present[destination.label] = {
                    info.name: info.size for info in destination.list(layout.OBJECTS_PREFIX)
                }
                usable.append(destination)
            except PactvaultError as exc:
                outcomes[destination.label].error = exc.detail
        self.settings.home.mkdir(parents=True, exist_ok=True)
        # Under the lease no other backup of this instance runs: what a crashed run left
        # behind here (a plaintext snapshot among it) goes now.
        for leftover in self.settings.home.glob(".backup-*"):
            shutil.rmtree(leftover, ignore_errors=True)
        staging = Path(tempfile.mkdtemp(prefix=".backup-", dir=self.settings.home))
        missing: list[str] = []
        try:
            created_at = self.clock()
            backup_id = layout.backup_id_for(created_at, secrets.token_hex(4))
            progress(Step("snapshot", 0, 1))
            plain = staging / "database"
            facts = self._snapshot(plain)
            progress(Step("snapshot", 1, 1))
            blobs, sources, mapping, missing = self._collect_blobs(facts, usable, present, progress)
            catalog = staging / "catalog"
            catalog.write_bytes(
                json.dumps(
                    {"format": _CATALOG_FORMAT, "blobs": mapping, "missing": sorted(missing)},
                    sort_keys=True,
                ).encode()
            )
            manifest, body = self._seal(
                identity, backup_id, created_at, facts, blobs, missing, staging, progress
            )
            signature = self.keys.sign(body)
            for destination in usable:
                outcome = outcomes[destination.label]
                try:
                    self._store(
                        destination,
                        manifest,
                        body,
                        signature,
                        staging,
                        present[destination.label],
                        sources,
                        outcome,
                        progress,
                    )
                    outcome.confirmed = True
                except PactvaultError as exc:
                    outcome.error = exc.detail
            result = BackupResult(
                backup_id=backup_id,
                created_at=created_at,
                manifest_sha256=hashlib.sha256(body).hexdigest(),
                total_bytes=manifest.total_bytes,
                blobs=len(manifest.blobs),
                missing_blobs=len(missing),
                destinations=list(outcomes.values()),
                seconds=time.monotonic() - started,
                facts=facts,
                missing_keys=sorted(missing),
            )
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        self._report(result, actor)
        return result

    def _prepare(self, destination: Destination, identity: BackupIdentity) -> None:
        """Claim the destination for this instance (or check it is ours) and publish the key."""
        check_owner(destination, identity)
        if destination.get_bytes(layout.MARKER_NAME, limit=64 * 1024) is None:
            marker = {
                "format": DESTINATION_FORMAT,
                "instance_id": identity.instance_id,
                "signing_key_fingerprint": identity.fingerprint,
            }
            destination.put_bytes(
                layout.MARKER_NAME, json.dumps(marker, indent=2, sort_keys=True).encode() + b"\n"
            )
        pem = identity.pem()
        if destination.get_bytes(layout.PUBLIC_KEY_NAME, limit=64 * 1024) != pem:
            destination.put_bytes(layout.PUBLIC_KEY_NAME, pem)

    def _snapshot(self, target: Path) -> DatabaseFacts:
        if self.db.is_sqlite:
            database = self.db.engine.url.database
            if not database or database == ":memory:":
                raise BackupError("an in-memory database cannot be backed up")
            return snapshot_sqlite(Path(database), target)
        return snapshot_postgres(self.db, target, self.pg)

    def _collect_blobs(
        self,
        facts: DatabaseFacts,
        usable: Sequence[Destination],
        present: dict[str, dict[str, int]],
        progress: Progress,
    ) -> tuple[dict[str, BlobObject], dict[str, str], dict[str, str], list[str]]:
        """The objects the snapshot needs: (objects by hash, a live key per hash, catalog
        key → hash, keys missing or damaged). A blob some destination lacks is re-hashed now;
        one every destination already holds was hash-confirmed when it was uploaded."""
        blobs: dict[str, BlobObject] = {}
        sources: dict[str, str] = {}
        mapping: dict[str, str] = {}
        missing: list[str] = []
        total = len(facts.blobs)
        progress(Step("blobs", 0, total))
        for done, ref in enumerate(facts.blobs, start=1):
            name = layout.object_name(ref.sha256)
            if ref.sha256 in blobs:
                mapping[ref.key] = ref.sha256
                continue
            size = self._blob_size(ref.key)
            held = {present[d.label].get(name) for d in usable}
            if size is None or (held != {size} and self._live_hash(ref.key) != ref.sha256):
                # Lost or damaged here: still backed up if every destination holds it already.
                sizes = held - {None}
                if len(sizes) == 1 and None not in held:
                    blobs[ref.sha256] = BlobObject(ref.sha256, sizes.pop())  # type: ignore[arg-type]
                    mapping[ref.key] = ref.sha256
                else:
                    missing.append(ref.key)
            else:
                blobs[ref.sha256] = BlobObject(ref.sha256, size)
                sources[ref.sha256] = ref.key
                mapping[ref.key] = ref.sha256
            if done % 200 == 0 or done == total:
                progress(Step("blobs", done, total))
        return blobs, sources, mapping, missing

    def _blob_size(self, key: str) -> int | None:
        try:
            with self.blob_store.open(key) as stream:
                stream.seek(0, 2)
                return int(stream.tell())
        except NotFoundError:
            return None

    def _live_hash(self, key: str) -> str | None:
        try:
            with self.blob_store.open(key) as stream:
                digest = hashlib.sha256()
                while block := stream.read(_READ):
                    digest.update(block)
                return digest.hexdigest()
        except NotFoundError:
            return None

    def _seal(
        self,
        identity: BackupIdentity,
        backup_id: str,
        created_at: datetime,
        facts: DatabaseFacts,
        blobs: dict[str, BlobObject],
        missing: list[str],
        staging: Path,
        progress: Progress,
    ) -> tuple[Manifest, bytes]:
        """Encrypt the snapshot and the catalog; build the manifest."""
        created_iso = created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        key, root_version, sealed = new_data_key(
            self.sealer, identity.instance_id, backup_id, created_iso
        )
        files = []
        progress(Step("encrypt", 0, 2))
        for role in layout.FILE_ROLES:
            source = staging / role
            encrypted = encrypt_file(
                key,
                source,
                staging / f"{role}.pvbk",
                aad=file_context(identity.instance_id, backup_id, role),
            )
            source.unlink()  # the plaintext goes as soon as its ciphertext exists
            name = (
                layout.database_name(backup_id)
                if role == "database"
                else layout.catalog_name(backup_id)
            )
            files.append(
                StoredFile(
                    role,
                    name,
                    encrypted.sha256,
                    encrypted.size,
                    encrypted.plaintext_sha256,
                    encrypted.plaintext_size,
                )
            )
            progress(Step("encrypt", len(files), 2))
        manifest = Manifest(
            backup_id=backup_id,
            instance_id=identity.instance_id,
            created_at=created_at,
            pactvault_version=__version__,
            database_kind=facts.kind,
            schema_heads=facts.schema_heads,
            ledger_size=facts.ledger_size,
            ledger_root=facts.ledger_root,
            audit_seq=facts.audit_seq,
            audit_head=facts.audit_head,
            counts=facts.counts,
            root_key_version=root_version,
            wrapped_data_key=sealed,
            signing_key=identity.raw_public_key,
            files=tuple(files),
            blobs=tuple(sorted(blobs.values(), key=lambda b: b.sha256)),
            missing_blobs=len(missing),
        )
        return manifest, manifest.to_bytes()

    def _store(
        self,
        destination: Destination,
        manifest: Manifest,
        body: bytes,
        signature: bytes,
        staging: Path,
        present: dict[str, int],
        sources: dict[str, str],
        outcome: DestinationOutcome,
        progress: Progress,
    ) -> None:
        label = destination.label
        needed = [b for b in manifest.blobs if present.get(b.name) != b.size]
        outcome.objects_present = len(manifest.blobs) - len(needed)
        phase = f"upload {label}"
        total = len(needed) + len(manifest.files)
        progress(Step(phase, 0, total))
        done = 0

        def upload(blob: BlobObject) -> None:
            key = sources.get(blob.sha256)
            if key is None:  # cannot happen: only objects every destination holds lack a source
                raise BackupError(f"no live copy of {blob.name} to upload to {label}")
            with self.blob_store.open(key) as stream:
                destination.put_stream(blob.name, stream, sha256=blob.sha256, size=blob.size)
            destination.confirm(blob.name, sha256=blob.sha256, size=blob.size)

        for blob in parallel(upload, needed):
            outcome.objects_uploaded += 1
            outcome.bytes_uploaded += blob.size
            done += 1
            if done % 50 == 0 or done == len(needed):
                progress(Step(phase, done, total))
        for stored in manifest.files:
            source = staging / f"{stored.role}.pvbk"
            destination.put_file(stored.name, source, sha256=stored.sha256, size=stored.size)
            destination.confirm(stored.name, sha256=stored.sha256, size=stored.size)
            outcome.objects_uploaded += 1
            outcome.bytes_uploaded += stored.size
            done += 1
            progress(Step(phase, done, total))
        # Durable, then re-listed: every object the backup needs must be there with its size —
        # including those earlier backups uploaded — before the manifest makes the backup exist.
        destination.flush()
        listed = {info.name: info.size for info in destination.list(layout.OBJECTS_PREFIX)}
        for blob in manifest.blobs:
            if listed.get(blob.name) != blob.size:
                raise BackupIntegrityError(f"{blob.name} is not complete at {label}")
        for name, data in (
            (layout.signature_name(manifest.backup_id), signature),
            (layout.manifest_name(manifest.backup_id), body),
        ):
            destination.put_bytes(name, data)
            destination.confirm(name, sha256=hashlib.sha256(data).hexdigest(), size=len(data))

    def _report(self, result: BackupResult, actor: Actor) -> None:
        """Audit the run; alert on what needs an operator."""
        details = {
            "backup_id": result.backup_id,
            "manifest_sha256": result.manifest_sha256,
            "complete": result.complete,
            "confirmed": [d.label for d in result.destinations if d.confirmed],
            "failed": {d.label: d.error for d in result.destinations if not d.confirmed},
            "blobs": result.blobs,
            "missing_blobs": result.missing_blobs,
            "bytes": result.total_bytes,
        }
        with self.db.write() as session:
            record(session, actor, "backup.run", object_type="backup", details=details)
        for outcome in result.destinations:
            if outcome.confirmed:
                continue
            self.alerts.raise_alert(
                "backup.failed",
                severity="critical" if outcome.required else "warning",
                title=f"Backup {result.backup_id} was not confirmed by {outcome.label}"[:300],
                details={
                    "backup_id": result.backup_id,
                    "destination": outcome.label,
                    "required": outcome.required,
                    "error": (outcome.error or "")[:500],
                },
                subject={"destination": outcome.label},
                actor=actor,
            )
        if result.missing_blobs:
            self.alerts.raise_alert(
                "backup.blobs-missing",
                severity="critical",
                title=(
                    f"{result.missing_blobs} stored object(s) the database refers to are missing "
                    "or damaged and could not be backed up"
                ),
                details={
                    "backup_id": result.backup_id,
                    "missing": result.missing_blobs,
                    "blob_keys": result.missing_keys[:MAX_NAMED],
                },
                subject={},
                actor=actor,
            )

    # -- listing and verifying -----------------------------------------------------------------

    def list(self) -> list[ListedBackup]:
        """Every backup at any destination (by manifest presence), newest first."""
        where: dict[str, list[str]] = {}
        for destination in self._require_destinations():
            for backup_id in list_backup_ids(destination):
                where.setdefault(backup_id, []).append(destination.label)
        return [
            ListedBackup(backup_id, time_of(backup_id), tuple(labels))
            for backup_id, labels in sorted(where.items(), reverse=True)
        ]

    def verify(
        self,
        backup_id: str | None = None,
        *,
        all_backups: bool = False,
        deep: bool = True,
        progress: Progress | None = None,
    ) -> VerifyReport:
        """Check manifests (signature) and objects (size; with ``deep`` every SHA-256) of the
        latest backup, one backup, or all, at every destination; also that the root key opens
        each backup's data key. Objects shared by several backups are checked once."""
        progress = progress or ignore
        identity = self.identity()
        destinations = self._require_destinations()
        listed = {d.label: list_backup_ids(d) for d in destinations}
        known = sorted({i for ids in listed.values() for i in ids})
        if backup_id is not None:
            layout.check_backup_id(backup_id)
            if backup_id not in known:
                raise NotFoundError(f"no backup {backup_id} at any destination")
            chosen = [backup_id]
        elif all_backups:
            chosen = known
        else:
            if not known:
                raise NotFoundError("there is no backup at any destination yet")
            chosen = [known[-1]]
        report = VerifyReport(backups=chosen, destinations=[d.label for d in destinations])
        checked: dict[tuple[str, str], str | None] = {}
        for current in chosen:
            good: dict[str, bool] = {}
            names: list[tuple[str, str, int]] | None = None
            for destination in destinations:
                if current not in listed[destination.label]:
                    report.problems.append(
                        ObjectProblem(destination.label, layout.manifest_name(current), "missing")
                    )
                    continue
                try:
                    manifest, _ = fetch_manifest(destination, current, identity)
                    created = manifest.created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
                    open_data_key(
                        self.sealer,
                        instance_id=manifest.instance_id,
                        backup_id=current,
                        created_at=created,
                        root_key_version=manifest.root_key_version,
                        sealed=manifest.wrapped_data_key,
                    )
                except PactvaultError as exc:
                    report.problems.append(
                        ObjectProblem(destination.label, layout.manifest_name(current), exc.detail)
                    )
                    continue
                names = manifest.objects()
                phase = f"verify {current} {destination.label}"
                sizes = {i.name: i.size for i in destination.list(layout.OBJECTS_PREFIX)}
                sizes |= {
                    i.name: i.size for i in destination.list(f"{layout.BACKUPS_PREFIX}{current}/")
                }
                todo = [item for item in names if (destination.label, item[0]) not in checked]
                results = self._check_all(destination, todo, sizes, deep, phase, progress)
                for name, (problem, hashed) in results.items():
                    checked[(destination.label, name)] = problem
                    if hashed:
                        report.objects_checked += 1
                        report.bytes_checked += hashed
                for name, _sha, _size in names:
                    problem = checked[(destination.label, name)]
                    if problem is None:
                        good[name] = True
                    else:
                        good.setdefault(name, False)
                        report.problems.append(ObjectProblem(destination.label, name, problem))
            if names is not None and all(good.get(name) for name, _, _ in names):
                report.restorable.append(current)
        return report

    def _check_all(
        self,
        destination: Destination,
        items: list[tuple[str, str, int]],
        sizes: dict[str, int],
        deep: bool,
        phase: str,
        progress: Progress,
    ) -> dict[str, tuple[str | None, int]]:
        results: dict[str, tuple[str | None, int]] = {}

        def check(item: tuple[str, str, int]) -> None:
            name, sha, size = item
            results[name] = self._check_object(destination, name, sha, size, sizes, deep)

        for done, _item in enumerate(parallel(check, items), start=1):
            if done % 100 == 0 or done == len(items):
                progress(Step(phase, done, len(items)))
        return results

    @staticmethod
    def _check_object(
        destination: Destination,
        name: str,
        sha256: str,
        size: int,
        sizes: dict[str, int],
        deep: bool,
    ) -> tuple[str | None, int]:
        """(the problem or None, bytes re-hashed)."""
        if name not in sizes:
            return "missing", 0
        if sizes[name] != size:
            return f"has {sizes[name]} bytes, expected {size}", 0
        if not deep:
            return None, 0
        try:
            hashed = destination.hash_object(name)
        except PactvaultError as exc:
            return exc.detail, 0
        if hashed is None:
            return "missing", 0
        if not equal(hashed[0], sha256):
            return "SHA-256 differs from the manifest", hashed[1]
        return None, hashed[1]

    # -- pruning -------------------------------------------------------------------------------

    def prune(self, *, dry_run: bool = False, actor: Actor | None = None) -> PruneReport:
        """Apply the retention policy at every destination (see the module docstring)."""
        destinations = self._require_destinations()
        with self._leased(ignore):
            return self._prune(destinations, dry_run=dry_run, actor=actor or Actor.system())

    def _prune(
        self, destinations: Sequence[Destination], *, dry_run: bool, actor: Actor
    ) -> PruneReport:
        identity = self.identity()
        report = PruneReport(self.retention.describe(), dry_run)
        now = self.clock()
        for destination in destinations:
            outcome = PrunedDestination(destination.label)
            report.destinations.append(outcome)
            try:
                self._prune_one(destination, identity, outcome, now=now, dry_run=dry_run)
            except PactvaultError as exc:
                outcome.error = exc.detail
        if not dry_run:
            with self.db.write() as session:
                record(
                    session,
                    actor,
                    "backup.prune",
                    object_type="backup",
                    details={
                        "policy": report.policy,
                        "deleted": {d.label: d.deleted for d in report.destinations},
                        "objects_deleted": sum(d.objects_deleted for d in report.destinations),
                        "errors": {d.label: d.error for d in report.destinations if d.error},
                    },
                )
        return report

    def _prune_one(
        self,
        destination: Destination,
        identity: BackupIdentity,
        outcome: PrunedDestination,
        *,
        now: datetime,
        dry_run: bool,
    ) -> None:
        check_owner(destination, identity)
        ids = list_backup_ids(destination)
        keep = select_kept([(i, time_of(i)) for i in ids], self.retention)
        outcome.kept = sorted(keep)
        referenced: set[str] = set()
        for backup_id in sorted(keep):
            # Any doubt about what a kept backup needs → delete nothing here.
            manifest, _ = fetch_manifest(destination, backup_id, identity)
            referenced |= {b.name for b in manifest.blobs}
        expired = [i for i in ids if i not in keep]
        outcome.deleted = expired
        files_by_backup: dict[str, list[Any]] = {}
        for info in destination.list(layout.BACKUPS_PREFIX):
            parts = info.name.split("/")
            if len(parts) == 3:
                files_by_backup.setdefault(parts[1], []).append(info)
        cutoff = now - PRUNE_GRACE
        for backup_id, infos in files_by_backup.items():
            names = {info.name for info in infos}
            has_manifest = (
                layout.manifest_name(backup_id) in names
                if layout.BACKUP_ID.fullmatch(backup_id)
                else False
            )
            if backup_id in expired:
                ordered = sorted(infos, key=lambda i: not i.name.endswith("manifest.json"))
            elif not has_manifest and all(
                info.modified is not None and info.modified < cutoff for info in infos
            ):
                ordered = list(infos)  # a backup that never finished, long ago
                outcome.partial_deleted += 1
            else:
                continue
            for info in ordered:  # the manifest first: the backup stops existing at once
                outcome.bytes_freed += info.size
                if not dry_run:
                    destination.delete(info.name)
        for info in destination.list(layout.OBJECTS_PREFIX):
            if info.name in referenced:
                continue
            if info.modified is None or info.modified >= cutoff:
                continue
            outcome.objects_deleted += 1
            outcome.bytes_freed += info.size
            if not dry_run:
                destination.delete(info.name)

    # -- scheduling ----------------------------------------------------------------------------

    def run_due(self, now: datetime | None = None) -> list[str]:
        """For the maintenance loop: a backup (then pruning) and a drill when due, each taken by
        exactly one process; returns what happened, for the log."""
        now = now or self.clock()
        happened: list[str] = []
        if not self.destinations:
            return happened
        if self.settings.backup_interval_minutes:
            interval = timedelta(minutes=self.settings.backup_interval_minutes)
            token = self.lease.try_acquire(now, interval=interval)
            if token is not None:
                happened.append(self._scheduled_backup(token))
        if self.settings.backup_drill_interval_hours:
            interval = timedelta(hours=self.settings.backup_drill_interval_hours)
            token = self.drill_lease.try_acquire(now, interval=interval)
            if token is not None:
                outcome = "error"
                try:
                    drill = self.drill()
                    outcome = "ok" if drill.ok else "failed"
                    happened.append(f"drill {outcome}: {drill.summary()}")
                finally:
                    self.drill_lease.release(token, self.clock(), outcome=outcome)
        return happened

    def _scheduled_backup(self, token: str) -> str:
        outcome = "error"
        summary: dict[str, Any] = {}
        try:
            result = self._run(self.destinations, self._renewing(token, ignore), Actor.system())
            summary = {"backup_id": result.backup_id, "complete": result.complete}
            outcome = "ok" if result.ok else ("incomplete" if not result.complete else "warnings")
            if result.complete:
                pruned = self._prune(self.destinations, dry_run=False, actor=Actor.system())
                summary["pruned"] = sum(len(d.deleted) for d in pruned.destinations)
            return f"backup {result.backup_id}: {outcome}"
        except Exception as exc:
            self.alerts.raise_alert(
                "backup.failed",
                severity="critical",
                title="The scheduled backup could not run",
                details={"error": type(exc).__name__, "detail": str(exc)[:300]},
                subject={"scheduled": True},
            )
            raise
        finally:
            self.lease.release(token, self.clock(), outcome=outcome, summary=summary)

    # -- drills --------------------------------------------------------------------------------

    def drill(self, *, progress: Progress | None = None, actor: Actor | None = None) -> Any:
        """Restore the latest backup into a scratch place, verify it, report RPO and RTO."""
        from pactvault.backup.drill import run_drill

        return run_drill(self, progress=progress or ignore, actor=actor or Actor.system())


def check_owner(destination: Destination, identity: BackupIdentity) -> None:
    """Refuse a destination whose marker names another instance or another signing key."""
    raw = destination.get_bytes(layout.MARKER_NAME, limit=64 * 1024)
    if raw is None:
        return
    try:
        found = json.loads(raw)
        owner = found["instance_id"]
        key = found["signing_key_fingerprint"]
    except (ValueError, KeyError, TypeError):
        raise BackupError(f"{destination.label} has an unreadable {layout.MARKER_NAME}") from None
    if owner != identity.instance_id:
        raise BackupError(
            f"{destination.label} holds the backups of another instance ({owner}): give every "
            "instance its own directory or prefix"
        )
    if key != identity.fingerprint:
        raise BackupError(
            f"{destination.label} names another backup signing key ({key}) for this instance; "
            "refusing to mix keys"
        )
