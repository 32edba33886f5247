"""Backups to two destinations (a directory and an S3 server), disaster, restore, and proof that
everything came back — on SQLite and PostgreSQL — plus the ways a restore must refuse.

The S3 destination is moto's standalone server on loopback (``backup_kit.S3Server``), a stand-in
for MinIO / AWS S3 speaking the real S3 HTTP API: the same boto3 code talks to any S3 endpoint.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text

from alerts_kit import blob_path, draft_contract
from backup_kit import (
    S3Server,
    capture,
    flip_byte,
    populate,
    recreate_postgres_database,
    running_s3,
    s3_settings,
)
from flows import sign_as
from pactvault.backup.destinations import parse_destinations
from pactvault.backup.errors import BackupIntegrityError, RestoreTargetError
from pactvault.backup.identity import TrustedKey, fingerprint
from pactvault.backup.manifest import manifest_name
from pactvault.backup.restore import restore
from pactvault.backup.rootkey import CeremonyKeyStore, install_root_key
from pactvault.backup.shares import EscrowRecord, RootKeyMaterial, combine_shares, split_record
from pactvault.config import Settings
from pactvault.errors import KeyServiceError, NotFoundError
from pactvault.ledger.proofs import verify_inclusion
from pactvault.notify import MemoryMailer
from pactvault.platform import Platform
from pactvault.store.ledger_models import LedgerCheckpoint
from pactvault.store.models import AuditEvent
from pactvault.store.monitor_models import Alert


@pytest.fixture(scope="module")
def s3_server() -> Iterator[S3Server]:
    yield from running_s3()


def _settings(
    tmp_path: Path, database_url: str | None, specs: list[str], **extra: object
) -> Settings:
    return Settings(
        home=tmp_path / "data",
        database_url=database_url,
        public_url="http://127.0.0.1:8000",
        backup_destinations=tuple(specs),
        **s3_settings(),  # type: ignore[arg-type]
        **extra,  # type: ignore[arg-type]
    )


def _ceremony(platform: Platform, shares: int = 5, threshold: int = 3) -> list[str]:
    identity = platform.backups.identity()
    settings = platform.settings
    material = CeremonyKeyStore(settings.key_dir, settings.passphrase).open().material()
    record = EscrowRecord(
        identity.instance_id, "2026-01-01T00:00:00Z", identity.raw_public_key, material
    )
    return split_record(record, shares=shares, threshold=threshold)


@pytest.fixture
def instance(
    tmp_path: Path,
    s3_server: S3Server,
    mailer: MemoryMailer,
) -> Iterator[tuple[Platform, Settings]]:
    """A populated SQLite instance backing up to a directory and an S3 bucket."""
    specs = [str(tmp_path / "vault"), s3_server.spec(s3_server.new_bucket())]
    settings = _settings(tmp_path, None, specs)
    platform, _ = Platform.initialise(settings, mailer=mailer)
    try:
        yield platform, settings
    finally:
        platform.close()


def _new_home(
    tmp_path: Path, settings: Settings, name: str, material: RootKeyMaterial
) -> tuple[Settings, object]:
    target = replace(settings, home=tmp_path / name)
    return target, install_root_key(target.key_dir, target.passphrase, material)


def test_backup_to_a_directory_and_s3_survives_losing_everything(
    tmp_path: Path,
    database_url: str,
    s3_server: S3Server,
    mailer: MemoryMailer,
) -> None:
    bucket = s3_server.new_bucket()
    specs = [str(tmp_path / "vault"), s3_server.spec(bucket)]
    settings = _settings(tmp_path, database_url, specs, passphrase="a long test passphrase")
    platform, _ = Platform.initialise(settings, mailer=mailer)
    population = populate(platform, mailer)
    checkpoint = platform.ledger.publish_checkpoint().checkpoint
    before = capture(platform)
    result = platform.backups.run()
    assert result.complete and result.ok, result.to_dict()
    assert [d.confirmed for d in result.destinations] == [True, True]
    assert result.facts is not None and result.facts.counts["signatures"] == 3
    shares = _ceremony(platform)
    platform.close()

    # The disaster: the data directory is gone, and so is the PostgreSQL database.
    shutil.rmtree(settings.home)
    sqlite = database_url.startswith("sqlite")
    if sqlite:
        for leftover in tmp_path.glob("pactvault.db*"):
            leftover.unlink()
    else:
        recreate_postgres_database(database_url)

    # A new machine: three custodians bring their shares; the backups are read back.
    escrow = combine_shares([shares[4], shares[0], shares[2]])
    target = replace(
        settings, home=tmp_path / "restored", database_url=None if sqlite else database_url
    )
    key_store = install_root_key(target.key_dir, target.passphrase, escrow.material)
    trusted = TrustedKey(fingerprint(escrow.backup_public_key))
    report = restore(target, parse_destinations(specs, **_creds()), key_store, trusted)
    assert report.ok, report.to_dict()
    assert report.checks is not None
    assert {c.name for c in report.checks.results} == {
        "integrity auditor",
        "audit journal head",
        "ledger proofs",
        "signatures",
    }
    assert report.fallbacks == []

    restored = Platform.open(target, mailer=mailer)
    try:
        after = capture(restored)
        assert after.contracts == before.contracts
        assert after.signers == before.signers
        assert after.signatures == before.signatures
        assert after.revisions == before.revisions
        assert after.documents == before.documents  # every revision decrypts to the same bytes
        # The journal is the backed-up one, plus the entries the restore itself wrote.
        assert after.audit[: len(before.audit)] == before.audit
        assert after.ledger[: len(before.ledger)] == before.ledger
        with restored.db.read() as session:
            actions = (
                session.execute(select(AuditEvent.action).where(AuditEvent.seq > len(before.audit)))
                .scalars()
                .all()
            )
            published = session.execute(select(LedgerCheckpoint)).scalars().all()
        assert "backup.restore" in actions
        assert [c.tree_size for c in published] == [checkpoint.size]
        # A ledger proof from the restored log verifies against the root published before.
        proof = restored.ledger.inclusion_proof(0, checkpoint.size)
        verify_inclusion(
            _leaf_hash(before.ledger[0]),
            0,
            checkpoint.size,
            proof.hashes,
            checkpoint.root_hash,
        )
        # And it is a working platform: the signer who had not signed yet signs now.
        sign_as(restored, population.pending_token)
        assert restored.contracts.get(population.org_id, population.partial).status == "completed"
    finally:
        restored.close()


def _leaf_hash(data: bytes) -> bytes:
    from pactvault.ledger.merkle import leaf_hash

    return leaf_hash(data)


def _creds() -> dict[str, str]:
    values = s3_settings()
    return {
        "s3_access_key_id": values["backup_s3_access_key_id"],
        "s3_secret_access_key": values["backup_s3_secret_access_key"],
    }


def test_a_damaged_copy_is_taken_from_the_other_destination_and_named_when_none_is_left(
    tmp_path: Path,
    instance: tuple[Platform, Settings],
    s3_server: S3Server,
    mailer: MemoryMailer,
) -> None:
    platform, settings = instance
    populate(platform, mailer)
    result = platform.backups.run()
    assert result.complete
    identity = platform.backups.identity()
    material = CeremonyKeyStore(settings.key_dir, None).open().material()
    destinations = parse_destinations(settings.backup_destinations, **_creds())

    # One blob object rots on the directory: the restore takes S3's copy and says so.
    victim = next(p for p in (tmp_path / "vault" / "objects").rglob("*") if p.is_file())
    name = victim.relative_to(tmp_path / "vault").as_posix()
    flip_byte(victim)
    target, keys = _new_home(tmp_path, settings, "first", material)
    report = restore(target, destinations, keys, identity)
    assert report.ok
    assert len(report.fallbacks) == 1
    assert name in report.fallbacks[0] and "dir:" in report.fallbacks[0]

    # Now S3's copy is damaged too: the restore names the object and installs nothing.
    s3 = destinations[1]
    assert s3.get_bytes(name) is not None
    s3.put_bytes(name, b"not the object")
    target, keys = _new_home(tmp_path, settings, "second", material)
    with pytest.raises(BackupIntegrityError) as refused:
        restore(target, destinations, keys, identity)
    message = refused.value.detail
    assert name in message and "dir:" in message and "s3://" in message
    assert not (target.home / "pactvault.db").exists()
    assert not target.blob_dir.exists() or not any(target.blob_dir.iterdir())
    # ... and `verify` reports both copies as bad.
    check = platform.backups.verify()
    assert not check.ok and check.restorable == []
    assert {p.destination for p in check.problems if p.name == name} == {
        d.label for d in destinations
    }


def test_a_forged_or_altered_manifest_is_refused(
    tmp_path: Path, instance: tuple[Platform, Settings], mailer: MemoryMailer
) -> None:
    platform, settings = instance
    populate(platform, mailer)
    result = platform.backups.run()
    identity = platform.backups.identity()
    material = CeremonyKeyStore(settings.key_dir, None).open().material()
    destinations = parse_destinations(settings.backup_destinations, **_creds())

    # A restore that trusts another key refuses every manifest.
    stranger = TrustedKey(fingerprint(b"\x01" * 32))
    target, keys = _new_home(tmp_path, settings, "a", material)
    with pytest.raises(BackupIntegrityError, match="not by the trusted backup key"):
        restore(target, destinations, keys, stranger)

    # The directory's manifest is edited (counts changed, signature kept): S3's copy is used.
    path = tmp_path / "vault" / manifest_name(result.backup_id)
    path.write_bytes(path.read_bytes().replace(b'"contracts":3', b'"contracts":4'))
    report = restore(target, destinations, keys, identity)
    assert report.ok
    assert any("signature does not verify" in note for note in report.fallbacks)

    # Edited everywhere: refused, nothing installed.
    destinations[1].put_bytes(manifest_name(result.backup_id), path.read_bytes())
    target, keys = _new_home(tmp_path, settings, "b", material)
    with pytest.raises(BackupIntegrityError, match="no destination has a manifest"):
        restore(target, destinations, keys, identity)
    assert not (target.home / "pactvault.db").exists()


def test_restore_refuses_a_used_target_and_a_foreign_root_key(
    tmp_path: Path, instance: tuple[Platform, Settings], mailer: MemoryMailer
) -> None:
    platform, settings = instance
    populate(platform, mailer)
    platform.backups.run()
    identity = platform.backups.identity()
    destinations = parse_destinations(settings.backup_destinations, **_creds())
    # Into the live instance's own directory: refused before anything is read.
    with pytest.raises(RestoreTargetError, match="exists"):
        restore(settings, destinations, platform.backups.sealer, identity)
    # With another root key (a stolen backup and a guessed key): the data key does not open.
    other = RootKeyMaterial(1, {1: b"\x07" * 32})
    target, keys = _new_home(tmp_path, settings, "foreign", other)
    with pytest.raises(BackupIntegrityError, match="does not open with this root key"):
        restore(target, destinations, keys, identity)
    # Shares of a ceremony held before a root key rotation lack the newer version.
    rotated = RootKeyMaterial(2, {2: b"\x08" * 32})
    target, keys = _new_home(tmp_path, settings, "rotated", rotated)
    with pytest.raises(KeyServiceError, match="root key version 1"):
        restore(target, destinations, keys, identity)


def test_point_in_time_restore_and_incremental_blobs(
    tmp_path: Path, instance: tuple[Platform, Settings], mailer: MemoryMailer
) -> None:
    platform, settings = instance
    population = populate(platform, mailer)
    service = platform.backups
    monday = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    service.clock = lambda: monday
    first = service.run()
    sign_as(platform, population.pending_token)  # the partial contract completes on Tuesday
    service.clock = lambda: monday + timedelta(days=1)
    second = service.run()
    # Only what is new travelled the second time: the new revision and the backup's own files.
    for outcome in second.destinations:
        assert outcome.objects_present == first.blobs
        assert outcome.objects_uploaded == second.blobs - first.blobs + 2
    assert [b.backup_id for b in service.list()] == [second.backup_id, first.backup_id]

    identity = service.identity()
    material = CeremonyKeyStore(settings.key_dir, None).open().material()
    destinations = parse_destinations(settings.backup_destinations, **_creds())
    target, keys = _new_home(tmp_path, settings, "monday", material)
    report = restore(
        target, destinations, keys, identity, at=monday + timedelta(hours=12), verify=False
    )
    assert report.backup_id == first.backup_id
    restored = Platform.open(target, mailer=mailer)
    try:
        partial = restored.contracts.get(population.org_id, population.partial)
        assert partial.status == "partially_signed"
    finally:
        restored.close()
    target, keys = _new_home(tmp_path, settings, "sunday", material)
    with pytest.raises(NotFoundError, match="no backup was taken at or before"):
        restore(target, destinations, keys, identity, at=monday - timedelta(days=1))


def test_drill_reports_rpo_and_rto_and_alerts_when_the_backup_is_not_restorable(
    tmp_path: Path, instance: tuple[Platform, Settings], mailer: MemoryMailer
) -> None:
    platform, settings = instance
    populate(platform, mailer)
    service = platform.backups
    scratch = tmp_path / "scratch"
    service.settings = replace(settings, backup_scratch_dir=scratch)
    backup = service.run()
    drill = service.drill()
    assert drill.ok, drill.to_dict()
    assert drill.backup_id == backup.backup_id
    assert drill.rpo_seconds is not None and 0 <= drill.rpo_seconds < 300
    assert drill.rto_seconds is not None and drill.rto_seconds > 0
    assert drill.restore is not None and drill.restore.checks is not None
    assert drill.restore.checks.ok
    assert list(scratch.iterdir()) == []  # the scratch data is gone again

    # Every copy of one object is lost: the drill fails and raises a critical alert.
    for destination in service.destinations:
        for info in destination.list("objects/"):
            destination.delete(info.name)
            break
    failed = service.drill()
    assert not failed.ok
    assert failed.error and "objects/sha256/" in failed.error
    with platform.db.read() as session:
        alerts = session.execute(select(Alert).where(Alert.kind == "backup.drill-failed")).scalars()
        alert = alerts.one()
        actions = (
            session.execute(select(AuditEvent.action).where(AuditEvent.action == "backup.drill"))
            .scalars()
            .all()
        )
    assert alert.severity == "critical" and alert.status == "open"
    assert len(actions) == 2


def test_scheduled_backups_and_drills_run_once_per_interval(
    tmp_path: Path,
    s3_server: S3Server,
    mailer: MemoryMailer,
) -> None:
    specs = [str(tmp_path / "vault")]
    settings = _settings(
        tmp_path, None, specs, backup_interval_minutes=60, backup_drill_interval_hours=24
    )
    platform, _ = Platform.initialise(settings, mailer=mailer)
    try:
        populate(platform, mailer)
        service = platform.backups
        now = datetime.now(UTC).replace(minute=0)
        service.clock = lambda: now
        happened = service.run_due(now)
        assert len(happened) == 2 and happened[0].endswith(": ok"), happened
        assert happened[1].startswith("drill ok")
        assert service.run_due(now + timedelta(minutes=5)) == []
        now += timedelta(minutes=61)
        later = service.run_due(now)
        assert len(later) == 1 and later[0].startswith("backup ")
        assert len(service.list()) == 2  # one an hour is kept (hourly=48)
        with platform.db.read() as session:
            actions = (
                session.execute(select(AuditEvent.action).where(AuditEvent.action.like("backup.%")))
                .scalars()
                .all()
            )
        assert actions.count("backup.run") == 2 and actions.count("backup.prune") == 2
        assert actions.count("backup.drill") == 1
    finally:
        platform.close()


def test_missing_or_damaged_live_blobs_are_reported_and_the_rest_is_backed_up(
    tmp_path: Path, instance: tuple[Platform, Settings], mailer: MemoryMailer
) -> None:
    platform, _settings = instance
    population = populate(platform, mailer)
    assert platform.backups.run().ok
    # A blob lost after it was backed up: later backups still carry the saved copy.
    blob_path(platform, population.draft).unlink()
    again = platform.backups.run()
    assert again.ok and again.missing_blobs == 0
    # A new document damaged before any backup saw it: left out, counted, alerted.
    fresh = draft_contract(platform, population.org_id)
    flip_byte(blob_path(platform, fresh))
    result = platform.backups.run()
    assert result.complete and not result.ok
    assert result.missing_blobs == 1 and result.blobs == again.blobs
    damaged = blob_path(platform, fresh).relative_to(platform.settings.blob_dir).as_posix()
    assert result.missing_keys == [damaged]
    with platform.db.read() as session:
        alert = session.execute(
            select(Alert).where(Alert.kind == "backup.blobs-missing")
        ).scalar_one()
    assert alert.severity == "critical" and alert.details["blob_keys"] == [damaged]


def test_a_required_destination_that_fails_means_the_backup_does_not_count(
    tmp_path: Path,
    s3_server: S3Server,
    mailer: MemoryMailer,
) -> None:
    missing_bucket = s3_server.spec("pv-no-such-bucket-here")
    specs = [str(tmp_path / "vault"), missing_bucket]
    settings = _settings(tmp_path, None, specs)
    platform, _ = Platform.initialise(settings, mailer=mailer)
    try:
        result = platform.backups.run()
        assert not result.complete
        s3 = result.destinations[1]
        assert not s3.confirmed and s3.error and "NoSuchBucket" in s3.error
        assert result.destinations[0].confirmed
        with platform.db.read() as session:
            alert = session.execute(select(Alert).where(Alert.kind == "backup.failed")).scalar_one()
        assert alert.severity == "critical"
    finally:
        platform.close()
    # The same failure at an optional destination: the backup counts, with a warning.
    optional = replace(
        settings,
        home=tmp_path / "other",
        backup_destinations=(str(tmp_path / "vault2"), "optional:" + missing_bucket),
    )
    platform, _ = Platform.initialise(optional, mailer=mailer)
    try:
        result = platform.backups.run()
        assert result.complete and not result.ok
    finally:
        platform.close()


def test_a_destination_holding_another_instance_is_refused(
    tmp_path: Path, mailer: MemoryMailer
) -> None:
    shared = str(tmp_path / "shared")
    first, _ = Platform.initialise(_settings(tmp_path / "a", None, [shared]), mailer=mailer)
    second, _ = Platform.initialise(_settings(tmp_path / "b", None, [shared]), mailer=mailer)
    try:
        assert first.backups.run().complete
        refused = second.backups.run()
        assert not refused.complete
        assert "another instance" in (refused.destinations[0].error or "")
    finally:
        first.close()
        second.close()


def test_a_destination_inside_the_data_directory_is_refused(tmp_path: Path) -> None:
    settings = _settings(tmp_path, None, [str(tmp_path / "data" / "backups")])
    with pytest.raises(Exception, match="inside the data directory"):
        Platform.initialise(settings)


@pytest.mark.postgres
def test_a_drill_on_postgresql_restores_into_a_scratch_database(
    tmp_path: Path,
    postgres,  # type: ignore[no-untyped-def]
    mailer: MemoryMailer,
) -> None:
    url = postgres.create_database()
    settings = _settings(tmp_path, url, [str(tmp_path / "vault")])
    platform, _ = Platform.initialise(settings, mailer=mailer)
    try:
        populate(platform, mailer)
        assert platform.backups.run().complete
        drill = platform.backups.drill()
        assert drill.ok, drill.to_dict()
        assert drill.restore is not None and drill.restore.checks is not None
        assert {c.name: c.ok for c in drill.restore.checks.results}["signatures"]
        engine = create_engine(postgres.url(), isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as connection:
                left = connection.execute(
                    text("SELECT datname FROM pg_database WHERE datname LIKE 'pactvault_drill_%'")
                ).all()
        finally:
            engine.dispose()
        assert left == []  # the scratch database was dropped
    finally:
        platform.close()


def test_a_backup_taken_while_contracts_are_written_is_one_consistent_moment(
    tmp_path: Path, instance: tuple[Platform, Settings], mailer: MemoryMailer
) -> None:
    platform, settings = instance
    population = populate(platform, mailer)
    stop = threading.Event()
    created: list[str] = []

    def writer() -> None:
        while not stop.is_set():
            created.append(draft_contract(platform, population.org_id))

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        while len(created) < 5:
            time.sleep(0.01)
        result = platform.backups.run()
        during = len(created)
    finally:
        stop.set()
        thread.join()
    assert result.complete and result.ok
    assert result.facts is not None
    assert 3 + 5 <= result.facts.counts["contracts"] <= 3 + during
    material = CeremonyKeyStore(settings.key_dir, None).open().material()
    target, keys = _new_home(tmp_path, settings, "moment", material)
    destinations = parse_destinations(settings.backup_destinations, **_creds())
    report = restore(target, destinations, keys, platform.backups.identity())
    assert report.ok, report.to_dict()  # every row's blob is there; ledger and journal agree
