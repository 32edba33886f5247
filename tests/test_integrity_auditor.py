"""The integrity auditor on SQLite and PostgreSQL: a clean instance passes, and each kind of
tampering — a flipped blob byte, a substituted document, a deleted or re-hashed audit entry, a
rewritten ledger leaf, a rebuilt forged tree — is reported as exactly that object, with an alert."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import shutil
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import create_engine, select, text, update
from typer.testing import CliRunner

from flows import SENDER, sent_contract, sign_as
from pactvault.access.decision import AccessControl
from pactvault.audit.journal import _record_of, entry_hash, verify_chain
from pactvault.commands.integrity import integrity
from pactvault.config import Settings
from pactvault.contracts.service import SignerSpec
from pactvault.demo import sample_pdf
from pactvault.errors import IntegrityError
from pactvault.identity.principal import Principal
from pactvault.ledger import CheckpointStore, Ed25519NoteSigner, Ledger
from pactvault.ledger.merkle import root_of
from pactvault.ledger.tiles import grow, tile_id, tile_of
from pactvault.monitor.alerts import AlertService
from pactvault.monitor.findings import Finding, IntegrityReport, ProgressUpdate
from pactvault.monitor.integrity import PHASES, IntegrityAuditor
from pactvault.notify import MemoryMailer
from pactvault.platform import Platform
from pactvault.store.models import AuditChainHead, AuditEvent, DocumentRevision

ORIGIN = "pactvault.test/ledger"


@dataclass
class World:
    """An instance with one completed contract (revisions 1-4) and one draft (revision 1),
    a published checkpoint, and an auditor that knows the log key."""

    platform: Platform
    org_id: str
    signed: str
    draft: str
    alerts: AlertService
    auditor: IntegrityAuditor
    log_signer: Ed25519NoteSigner

    @property
    def admin(self) -> Principal:
        return Principal(
            org_id=self.org_id,
            user_id="admin",
            session_id="session",
            permissions=frozenset({"alert.read"}),
        )

    def revision(self, contract_id: str, version: int) -> DocumentRevision:
        with self.platform.db.read() as session:
            return session.execute(
                select(DocumentRevision).where(
                    DocumentRevision.contract_id == contract_id,
                    DocumentRevision.version == version,
                )
            ).scalar_one()

    def blob_path(self, revision: DocumentRevision) -> Path:
        return self.platform.settings.blob_dir / revision.blob_key

    def leaf_recording(self, document_sha256: str) -> int:
        with self.platform.db.read() as session:
            for leaf in Ledger(session).leaves():
                if leaf.record().document_sha256 == document_sha256:
                    return leaf.index
        raise AssertionError("no leaf records that document")

    def event(self, action: str) -> AuditEvent:
        with self.platform.db.read() as session:
            event = (
                session.execute(
                    select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq)
                )
                .scalars()
                .first()
            )
        assert event is not None, f"no {action} entry"
        return event

    def run_events(self) -> list[AuditEvent]:
        with self.platform.db.read() as session:
            return list(
                session.execute(
                    select(AuditEvent).where(AuditEvent.action == "integrity.run")
                ).scalars()
            )


@dataclass(frozen=True)
class Template:
    """A signed instance built once per database kind; each test works on a copy of it."""

    home: Path
    org_id: str
    signed: str
    draft: str
    log_key: Ed25519PrivateKey
    clone_database: Callable[[], str]


def _build(settings: Settings) -> tuple[str, str, str, Ed25519PrivateKey]:
    mailer = MemoryMailer()
    platform, _ = Platform.initialise(settings, mailer=mailer)
    try:
        org_id, signed, tokens = sent_contract(
            platform, mailer, [SignerSpec(name="张三", email="zhang@example.com")]
        )
        for token in tokens.values():
            sign_as(platform, token)
        draft = platform.contracts.create(
            SENDER,
            org_id,
            title="Draft",
            pdf=sample_pdf(),
            signers=[SignerSpec("Li", "li@x.example")],
        ).id
        log_key = Ed25519PrivateKey.generate()
        with platform.db.write() as session:
            CheckpointStore(ORIGIN).publish(session, Ed25519NoteSigner(ORIGIN, log_key))
        return org_id, signed, draft, log_key
    finally:
        platform.close()


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def template(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Template:
    """Signing is the slow part, so it happens once per database kind: the template database is
    cloned (PostgreSQL ``CREATE DATABASE … TEMPLATE``, or a file copy) with the data directory
    for every test."""
    base = tmp_path_factory.mktemp("integrity-template")
    home = base / "home"
    if request.param == "sqlite":
        url = f"sqlite:///{base / 'template.db'}"
        counter = iter(range(1_000_000))

        def clone() -> str:
            target = base / f"clone-{next(counter)}.db"
            shutil.copyfile(base / "template.db", target)
            return f"sqlite:///{target}"
    else:
        server = request.getfixturevalue("postgres")
        url = server.create_database()
        name = url.rsplit("/", 1)[1]

        def clone() -> str:
            copy = "pv_" + uuid.uuid4().hex[:16]
            engine = create_engine(server.url(), isolation_level="AUTOCOMMIT")
            with engine.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{copy}" TEMPLATE "{name}"'))
            engine.dispose()
            return server.url(copy)

    org_id, signed, draft, log_key = _build(_settings(home, url))
    return Template(home, org_id, signed, draft, log_key, clone)


def _settings(home: Path, database_url: str) -> Settings:
    return Settings(home=home, database_url=database_url, public_url="http://127.0.0.1:8000")


@pytest.fixture
def world(template: Template, tmp_path: Path) -> Iterator[World]:
    home = tmp_path / "home"
    shutil.copytree(template.home, home)
    platform = Platform.open(_settings(home, template.clone_database()), mailer=MemoryMailer())
    log_signer = Ed25519NoteSigner(ORIGIN, template.log_key)
    alerts = AlertService(platform.db, AccessControl(platform.db))
    auditor = IntegrityAuditor(
        platform.db,
        platform.blob_store,
        platform.keys,
        alerts,
        checkpoints=CheckpointStore(ORIGIN),
        log_verifiers=[log_signer.verifier],
        batch_size=2,  # several batches even for this small instance
    )
    try:
        yield World(
            platform, template.org_id, template.signed, template.draft, alerts, auditor, log_signer
        )
    finally:
        platform.close()


def unguarded(platform: Platform, *tables: str) -> None:
    """Simulate an attacker with table-owner rights: switch off the append-only triggers."""
    with platform.db.engine.begin() as conn:
        for table in tables:
            if platform.db.is_sqlite:
                names = conn.execute(
                    text("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = :t"),
                    {"t": table},
                ).scalars()
                for name in list(names):
                    conn.exec_driver_sql(f"DROP TRIGGER {name}")
            else:
                conn.exec_driver_sql(f"ALTER TABLE {table} DISABLE TRIGGER USER")


def only(report: IntegrityReport) -> Finding:
    assert report.findings_total == 1, [f.to_dict() for f in report.findings]
    return report.findings[0]


# -- a clean instance --------------------------------------------------------------------------


def test_a_clean_instance_passes_every_check_and_the_run_is_audited(world: World) -> None:
    with world.platform.db.read() as session:
        entries = verify_chain(session).entries
    updates: list[ProgressUpdate] = []
    report = world.auditor.run(progress=updates.append)
    assert report.ok and report.findings == []
    assert report.revisions == 5  # original, prepared, signed, sealed + the draft's original
    assert report.ledger_leaves == 5 and report.checkpoints == 1
    assert report.audit_entries == entries > 5
    assert [p for p in PHASES if any(u.phase == p for u in updates)] == list(PHASES)
    for phase in PHASES:
        mine = [u for u in updates if u.phase == phase]
        assert [u.done for u in mine] == sorted(u.done for u in mine)
        assert mine[-1].done == mine[-1].total
    (audited,) = world.run_events()
    assert audited.details["outcome"] == "clean" and audited.details["revisions"] == 5
    assert world.alerts.operator_alerts() == []


def test_checkpoints_the_auditor_cannot_verify_are_a_warning(world: World) -> None:
    blind = IntegrityAuditor(
        world.platform.db, world.platform.blob_store, world.platform.keys, world.alerts
    )
    finding = only(blind.run())
    assert finding.kind == "integrity.checkpoint-unverifiable" and finding.severity == "warning"
    assert finding.details == {"checkpoints": 1}


# -- documents ---------------------------------------------------------------------------------


def test_a_flipped_blob_byte_names_that_revision_and_raises_one_alert(world: World) -> None:
    revision = world.revision(world.signed, 3)
    path = world.blob_path(revision)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))

    finding = only(world.auditor.run())
    assert finding.kind == "integrity.decrypt-failed" and finding.severity == "critical"
    assert finding.subject == {"contract_id": world.signed, "version": 3}
    assert finding.org_id == world.org_id
    assert finding.details["blob_key"] == revision.blob_key
    assert finding.details["expected_ciphertext_sha256"] == revision.ciphertext_sha256
    assert finding.details["found_ciphertext_sha256"] == hashlib.sha256(data).hexdigest()
    assert "authentication" in finding.details["problem"]
    with pytest.raises(IntegrityError):  # the production read path agrees
        world.platform.contracts.download(SENDER, world.org_id, world.signed, version=3)

    (alert,) = world.alerts.list_alerts(world.admin)
    assert alert.kind == "integrity.decrypt-failed" and alert.status == "open"
    assert alert.details["contract_id"] == world.signed and alert.details["version"] == 3

    again = world.auditor.run()  # the same open problem: no second alert
    assert again.findings_total == 1
    assert (again.alerts_created, again.alerts_repeated) == (0, 1)
    (alert,) = world.alerts.list_alerts(world.admin)
    assert alert.count == 2
    runs = world.run_events()
    assert [r.details["findings"] for r in runs] == [1, 1]
    assert runs[0].details["by_kind"] == {"integrity.decrypt-failed": 1}


def test_a_deleted_blob_is_reported_missing(world: World) -> None:
    revision = world.revision(world.draft, 1)
    world.blob_path(revision).unlink()
    finding = only(world.auditor.run())
    assert finding.kind == "integrity.blob-missing"
    assert finding.subject == {"contract_id": world.draft, "version": 1}


def test_a_shredded_organisation_is_unreadable_by_design_not_an_alert(world: World) -> None:
    """Crypto-shredding destroys the org's key: its documents are counted, not reported,
    while the ledger (hashes only) is still checked in full."""
    with world.platform.db.engine.begin() as conn:
        conn.execute(
            text("UPDATE key_encryption_keys SET state = 'destroyed' WHERE org_id = :o"),
            {"o": world.org_id},
        )
    world.platform.keys.clear_caches()
    report = world.auditor.run()
    assert report.ok and report.revisions == report.revisions_shredded == 5
    assert report.ledger_leaves == 5


def test_past_the_alert_cap_one_summary_alert_stands_for_the_rest(world: World) -> None:
    capped = IntegrityAuditor(
        world.platform.db,
        world.platform.blob_store,
        world.platform.keys,
        world.alerts,
        checkpoints=CheckpointStore(ORIGIN),
        log_verifiers=lambda _session: [world.log_signer.verifier],  # looked up per run
        max_alerts=1,
        max_kept_findings=1,
    )
    for contract, version in ((world.signed, 1), (world.signed, 2), (world.draft, 1)):
        world.blob_path(world.revision(contract, version)).unlink()
    report = capped.run()
    assert report.findings_total == 3 and len(report.findings) == 1
    assert report.alerts_created == 1 and report.unalerted == 2
    kinds = sorted(a.kind for a in world.alerts.operator_alerts())
    assert kinds == ["integrity.blob-missing", "integrity.findings-truncated"]
    summary = next(a for a in world.alerts.operator_alerts() if a.kind.endswith("truncated"))
    assert summary.details == {
        "findings": 3,
        "unalerted": 2,
        "by_kind": {"integrity.blob-missing": 3},
    }


def substitute(world: World, version: int, other: bytes, *, claim_new_hash: bool) -> str:
    """Encrypt another document validly for this revision (same org, object and version) and
    point the row at it, as someone holding the database and the key service could."""
    with world.platform.db.write() as session:
        obj = world.platform.blobs.put(
            session,
            org_id=world.org_id,
            object_id=world.signed,
            version=version,
            source=io.BytesIO(other),
        )
        values = {
            "blob_key": obj.blob_key,
            "wrapped_key": obj.wrapped_key,
            "plaintext_size": obj.plaintext_size,
            "ciphertext_sha256": obj.ciphertext_sha256,
        }
        if claim_new_hash:
            values["plaintext_sha256"] = obj.plaintext_sha256
        session.execute(
            update(DocumentRevision)
            .where(
                DocumentRevision.contract_id == world.signed, DocumentRevision.version == version
            )
            .values(**values)
        )
    return obj.plaintext_sha256


def test_a_validly_encrypted_other_document_is_a_hash_mismatch(world: World) -> None:
    original = world.revision(world.signed, 3).plaintext_sha256
    other = sample_pdf(["A different contract", "Pay 1,000,000 CNY"])
    found = substitute(world, 3, other, claim_new_hash=False)
    finding = only(world.auditor.run())
    assert finding.kind == "integrity.blob-mismatch"
    assert finding.subject == {"contract_id": world.signed, "version": 3}
    assert finding.details["expected_sha256"] == original
    assert finding.details["found_sha256"] == found == hashlib.sha256(other).hexdigest()
    assert finding.details["found_size"] == len(other)


def test_a_row_rewritten_with_its_blob_disagrees_with_the_ledger(world: World) -> None:
    original = world.revision(world.signed, 3).plaintext_sha256
    leaf = world.leaf_recording(original)
    found = substitute(world, 3, b"forged document bytes", claim_new_hash=True)
    finding = only(world.auditor.run())
    assert finding.kind == "integrity.ledger-mismatch"
    assert finding.subject == {"contract_id": world.signed, "version": 3}
    assert finding.details["leaf_index"] == leaf
    assert finding.details["expected_sha256"] == original  # what the ledger recorded
    assert finding.details["found_sha256"] == found  # what the database now claims


# -- the audit journal -------------------------------------------------------------------------


def test_a_deleted_audit_row_names_its_seq(world: World) -> None:
    invite = world.event("signer.invite")  # an entry no ledger leaf refers to
    unguarded(world.platform, "audit_events")
    with world.platform.db.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_events WHERE seq = :s"), {"s": invite.seq})
    finding = only(world.auditor.run())
    assert finding.kind == "integrity.audit-chain"
    assert finding.subject == {"seq": invite.seq} and finding.org_id is None
    assert finding.details["next_seq"] == invite.seq + 1
    assert finding.details["problem"] == f"entry {invite.seq} is missing (next is {invite.seq + 1})"
    assert world.alerts.list_alerts(world.admin) == []  # the journal is the operator's
    assert [a.kind for a in world.alerts.operator_alerts()] == ["integrity.audit-chain"]


def test_an_edited_audit_row_names_its_seq(world: World) -> None:
    invite = world.event("signer.invite")
    unguarded(world.platform, "audit_events")
    with world.platform.db.engine.begin() as conn:
        conn.execute(
            text("UPDATE audit_events SET ip = '10.6.6.6' WHERE seq = :s"), {"s": invite.seq}
        )
    finding = only(world.auditor.run())
    assert finding.kind == "integrity.audit-chain" and finding.subject == {"seq": invite.seq}
    assert finding.details["stored_entry_hash"] == invite.entry_hash
    assert "altered" in finding.details["problem"]


def test_a_deleted_audit_entry_behind_a_ledger_leaf_is_named_twice_over(world: World) -> None:
    sign = world.event("contract.sign")
    leaf = world.leaf_recording(world.revision(world.signed, 3).plaintext_sha256)
    unguarded(world.platform, "audit_events")
    with world.platform.db.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_events WHERE seq = :s"), {"s": sign.seq})
    report = world.auditor.run()
    assert sorted(f.kind for f in report.findings) == [
        "integrity.audit-chain",
        "integrity.audit-evidence",
    ]
    by_kind = {f.kind: f for f in report.findings}
    assert by_kind["integrity.audit-chain"].subject == {"seq": sign.seq}
    evidence = by_kind["integrity.audit-evidence"]
    assert evidence.subject == {"leaf_index": leaf}
    assert evidence.details["expected_audit_entry_sha256"] == sign.entry_hash
    assert evidence.details["found_seq"] is None


def test_a_journal_rehashed_after_an_edit_passes_the_chain_but_not_the_ledger(
    world: World,
) -> None:
    """Rewriting an entry and re-chaining everything after it fools verify_chain; the ledger
    leaves still name the original entry hashes."""
    complete = world.event("contract.complete")
    unguarded(world.platform, "audit_events")
    with world.platform.db.write() as session:
        rows = (
            session.execute(
                select(AuditEvent).where(AuditEvent.seq >= complete.seq).order_by(AuditEvent.seq)
            )
            .scalars()
            .all()
        )
        previous = rows[0].prev_hash
        rewritten = {}
        rows[0].ip = "10.6.6.6"
        for row in rows:
            old = row.entry_hash
            row.prev_hash = previous
            row.entry_hash = entry_hash(previous, _record_of(row))
            rewritten[old] = row.entry_hash
            previous = row.entry_hash
            session.flush()
        head = session.get(AuditChainHead, 1)
        assert head is not None
        head.last_hash = previous
    with world.platform.db.read() as session:
        assert verify_chain(session).ok  # the chain alone no longer shows it
        named = {
            leaf.index
            for leaf in Ledger(session).leaves()
            if leaf.record().audit_entry_sha256 in rewritten
        }
    report = world.auditor.run()
    assert named and {f.kind for f in report.findings} == {"integrity.audit-evidence"}
    assert {f.subject["leaf_index"] for f in report.findings} == named


# -- the ledger --------------------------------------------------------------------------------


def forge_leaf(world: World, index: int) -> tuple[bytes, bytes]:
    """Rewrite leaf ``index`` to record another document; returns (old, new) leaf hashes."""
    with world.platform.db.read() as session:
        leaf = Ledger(session).leaf(index)
    forged = dataclasses.replace(
        leaf.record(), document_sha256=hashlib.sha256(b"forged").hexdigest()
    )
    unguarded(world.platform, "ledger_leaves")
    with world.platform.db.engine.begin() as conn:
        conn.execute(
            text("UPDATE ledger_leaves SET data = :d WHERE leaf_index = :i"),
            {"d": forged.encode(), "i": index},
        )
    return leaf.leaf_hash, forged.leaf_hash()


def test_a_rewritten_ledger_leaf_names_its_index(world: World) -> None:
    index = world.leaf_recording(world.revision(world.signed, 3).plaintext_sha256)
    old, new = forge_leaf(world, index)
    finding = only(world.auditor.run())
    assert finding.kind == "integrity.ledger-leaf" and finding.org_id is None
    assert finding.subject == {"leaf_index": index}
    assert finding.details["expected_leaf_hash"] == old.hex()
    assert finding.details["found_leaf_hash"] == new.hex()
    assert [a.kind for a in world.alerts.operator_alerts()] == ["integrity.ledger-leaf"]


def test_a_damaged_interior_node_is_a_tree_finding(world: World) -> None:
    """Leaves and head intact, one stored interior hash altered: proofs would now lie."""
    (key, offset) = tile_of((2, 0))  # the subtree over leaves 0-3, part of the root at size 5
    unguarded(world.platform, "ledger_tiles")
    with world.platform.db.engine.begin() as conn:
        hashes = bytearray(
            conn.execute(
                text("SELECT hashes FROM ledger_tiles WHERE tile_id = :t"), {"t": tile_id(key)}
            ).scalar_one()
        )
        hashes[offset] ^= 0xFF
        conn.execute(
            text("UPDATE ledger_tiles SET hashes = :h WHERE tile_id = :t"),
            {"h": bytes(hashes), "t": tile_id(key)},
        )
    with world.platform.db.read() as session:
        head = Ledger(session).head()
    finding = only(world.auditor.run())
    assert finding.kind == "integrity.ledger-tree"
    assert finding.details["expected_root"] == head.root_hash.hex()
    assert finding.details["found_root"] != head.root_hash.hex()


def test_a_forged_leaf_with_a_rebuilt_tree_contradicts_the_checkpoint(world: World) -> None:
    """The attacker also rebuilds every tile and the head: storage is self-consistent again,
    but the published checkpoint and the database revision both expose it."""
    revision = world.revision(world.signed, 3)
    index = world.leaf_recording(revision.plaintext_sha256)
    forge_leaf(world, index)
    unguarded(world.platform, "ledger_tiles", "ledger_head")
    with world.platform.db.read() as session:
        hashes = [leaf.leaf_hash for leaf in Ledger(session).leaves()]
    with world.platform.db.write() as session:
        for key, value in grow(0, hashes, {}).items():
            session.execute(
                text("UPDATE ledger_tiles SET hashes = :h WHERE tile_id = :t"),
                {"h": value, "t": tile_id(key)},
            )
        session.execute(text("UPDATE ledger_head SET root_hash = :r"), {"r": root_of(hashes)})

    report = world.auditor.run()
    by_kind = {f.kind: f for f in report.findings}
    assert sorted(by_kind) == ["integrity.checkpoint-inconsistent", "integrity.ledger-mismatch"]
    assert report.findings_total == 2
    assert by_kind["integrity.checkpoint-inconsistent"].subject == {"checkpoint_seq": 1}
    mismatch = by_kind["integrity.ledger-mismatch"]
    assert mismatch.subject == {"contract_id": world.signed, "version": 3}
    assert mismatch.details["leaf_index"] == index
    assert mismatch.details["found_sha256"] == revision.plaintext_sha256


# -- scheduling --------------------------------------------------------------------------------


def test_run_if_due_runs_once_per_interval(world: World) -> None:
    now = datetime(2030, 1, 1, 3, 0, tzinfo=UTC)
    assert world.auditor.run_if_due(now) is not None
    assert world.auditor.run_if_due(now + timedelta(hours=23)) is None
    state = world.auditor.lease.state(now)
    assert state is not None and state.last_outcome == "clean" and not state.running
    assert state.last_summary is not None and state.last_summary["revisions"] == 5
    assert world.auditor.run_if_due(now + timedelta(days=1)) is not None
    assert len(world.run_events()) == 2


def test_a_live_lease_elsewhere_blocks_the_job_until_it_expires(world: World) -> None:
    frequent = IntegrityAuditor(
        world.platform.db,
        world.platform.blob_store,
        world.platform.keys,
        world.alerts,
        interval=timedelta(minutes=1),
        lease_ttl=timedelta(hours=2),
    )
    now = datetime(2030, 1, 1, 3, 0, tzinfo=UTC)
    crashed = frequent.lease.try_acquire(now, interval=timedelta(minutes=1))
    assert crashed is not None  # another process took it and then died
    assert frequent.run_if_due(now + timedelta(minutes=5)) is None
    assert frequent.run_if_due(now + timedelta(hours=2, minutes=1)) is not None
    assert not frequent.lease.release(crashed, now, outcome="clean")  # no longer its lease


def test_many_processes_calling_run_if_due_run_it_once(world: World) -> None:
    auditors = [
        IntegrityAuditor(world.platform.db, world.platform.blob_store, world.platform.keys, a)
        for a in [AlertService(world.platform.db, AccessControl(world.platform.db))] * 4
    ]
    now = datetime(2030, 1, 1, 3, 0, tzinfo=UTC)
    barrier = threading.Barrier(len(auditors))
    results: list[object] = []

    def tick(auditor: IntegrityAuditor) -> None:
        barrier.wait()
        results.append(auditor.run_if_due(now))

    threads = [threading.Thread(target=tick, args=(a,)) for a in auditors]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(r is not None for r in results) == 1
    assert len(world.run_events()) == 1


# -- the command -------------------------------------------------------------------------------


@pytest.fixture
def cli(world: World, monkeypatch: pytest.MonkeyPatch) -> Iterator[typer.Typer]:
    monkeypatch.setenv("PACTVAULT_DATABASE_URL", world.platform.settings.resolved_database_url)
    monkeypatch.delenv("PACTVAULT_PASSPHRASE", raising=False)
    app = typer.Typer()
    app.command()(integrity)
    yield app


def test_cli_exits_0_when_intact_and_1_naming_the_damage(world: World, cli: typer.Typer) -> None:
    home = str(world.platform.settings.home)
    # The CLI's own auditor has no log key, so it would flag the published checkpoint as
    # unverifiable; check an instance without one.
    unguarded(world.platform, "ledger_checkpoints")
    with world.platform.db.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM ledger_checkpoints")
    clean = CliRunner().invoke(cli, ["--home", home])
    assert clean.exit_code == 0, clean.output
    assert "intact" in clean.stdout and "document revisions" in clean.stdout

    revision = world.revision(world.draft, 1)
    path = world.blob_path(revision)
    path.write_bytes(path.read_bytes()[:-1])  # truncated
    damaged = CliRunner().invoke(cli, ["--home", home])
    assert damaged.exit_code == 1
    assert world.draft in damaged.stdout and "integrity.decrypt-failed" in damaged.stdout

    as_json = CliRunner().invoke(cli, ["--home", home, "--json"])
    assert as_json.exit_code == 1
    report = json.loads(as_json.stdout)
    assert report["ok"] is False and report["findings"] == 1
    (shown,) = report["findings_shown"]
    assert shown["subject"] == {"contract_id": world.draft, "version": 1}
    assert report["alerts_repeated"] == 1  # the first failing run raised it


def test_cli_reports_an_uninitialised_home_as_an_error(tmp_path: Path) -> None:
    app = typer.Typer()
    app.command()(integrity)
    result = CliRunner().invoke(app, ["--home", str(tmp_path / "nothing")])
    assert result.exit_code == 3 and "pactvault init" in result.stderr
