"""The ledger service on SQLite and PostgreSQL: the log key, scheduled checkpoints, proofs,
the lookup index, and the audit journal anchored in the ledger."""

from __future__ import annotations

import hashlib
import threading
import uuid
from datetime import timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from sqlalchemy import MetaData, func, select, text

from conftest import database_bytes
from identity_kit import Clock
from pactvault.audit.journal import (
    GENESIS_HASH,
    Actor,
    _record_of,
    entry_hash,
    record,
    verify_chain,
)
from pactvault.errors import ConflictError, IntegrityError, InvalidInputError, NotFoundError
from pactvault.ledger import (
    EvidenceRecord,
    Ledger,
    open_checkpoint,
    parse_verifier_key,
    verify_consistency,
    verify_inclusion,
)
from pactvault.ledger.anchor import ANCHOR_ACTION
from pactvault.ledger.service import LedgerPolicy, LedgerService, origin_for
from pactvault.platform import Platform
from pactvault.store import ledger_ops_models
from pactvault.store.models import AuditChainHead, AuditEvent

ORIGIN = "127.0.0.1:8000/pactvault/log"
POLICY = LedgerPolicy(
    checkpoint_interval=timedelta(seconds=60),
    checkpoint_max_age=timedelta(hours=1),
    anchor_interval=timedelta(seconds=60),
)
USER = Actor(type="api-token", id="tok-1", ip="203.0.113.5", user_agent="pytest")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ledger(platform: Platform, clock: Clock) -> LedgerService:
    return LedgerService(platform.db, platform.keys, ORIGIN, clock, POLICY)


def rec(i: int) -> EvidenceRecord:
    return EvidenceRecord(
        "contract.sign",
        contract_id=str(uuid.UUID(int=i)),
        signature_sha256=hashlib.sha256(b"sig %d" % i).hexdigest(),
    )


def append(platform: Platform, start: int, count: int) -> None:
    with platform.db.write() as session:
        Ledger(session).append_batch([rec(start + i) for i in range(count)])


def journal(platform: Platform, n: int) -> None:
    for i in range(n):
        with platform.db.write() as session:
            record(session, USER, "contract.view", object_type="contract", details={"i": i})


def opened(ledger: LedgerService, note: str):  # type: ignore[no-untyped-def]
    verifier = parse_verifier_key(ledger.verifier_key())
    return open_checkpoint(note, origin=ORIGIN, verifiers=[verifier]).checkpoint


def bypass(platform: Platform, table: str, statement: str, *params: object) -> None:
    """An attacker with table-owner rights: switch the append-only guards off, then write."""
    with platform.db.engine.begin() as conn:
        if platform.db.is_sqlite:
            for kind in ("update", "delete"):
                conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {table}_no_{kind}")
        else:
            conn.exec_driver_sql(f"ALTER TABLE {table} DISABLE TRIGGER USER")
        conn.execute(text(statement), *params)


# -- identity and key ----------------------------------------------------------------------------


def test_origin_follows_the_public_url() -> None:
    assert origin_for("https://Sign.Example.cn/") == "sign.example.cn/pactvault/log"
    assert origin_for("http://127.0.0.1:8000") == ORIGIN
    assert origin_for("https://example.cn/pv/") == "example.cn/pv/pactvault/log"
    for bad in ("not a url", "https://exa mple.cn", "https://example.cn:99999"):
        with pytest.raises(InvalidInputError):
            origin_for(bad)


def test_log_key_is_made_once_sealed_at_rest_and_audited(
    platform: Platform, ledger: LedgerService
) -> None:
    vkey = ledger.verifier_key()
    assert vkey.startswith(ORIGIN + "+")
    # Another process opening the same ledger finds the same key, not a second one.
    again = LedgerService(platform.db, platform.keys, ORIGIN)
    assert again.verifier_key() == vkey
    signature = again.publish_checkpoint().note
    assert opened(ledger, signature).origin == ORIGIN

    secret = ledger._log_signer()._key.private_bytes(  # the key as it exists in memory only
        Encoding.Raw, PrivateFormat.Raw, NoEncryption()
    )
    assert secret not in database_bytes(platform.db)
    with platform.db.read() as session:
        created = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "ledger.key.create")
        ).all()
        assert [e.details["verifier_key"] for e in created] == [vkey]


def test_a_damaged_or_moved_log_key_is_refused(platform: Platform, ledger: LedgerService) -> None:
    ledger.verifier_key()
    with pytest.raises(ConflictError, match="origin cannot change"):
        LedgerService(platform.db, platform.keys, "other.example/pactvault/log").verifier_key()
    with platform.db.write() as session:
        row = session.get(ledger_ops_models.LedgerKey, "log")
        assert row is not None
        sealed = bytearray(row.sealed_private_key)
        sealed[-1] ^= 1
        row.sealed_private_key = bytes(sealed)
    with pytest.raises(IntegrityError):
        LedgerService(platform.db, platform.keys, ORIGIN).verifier_key()


# -- checkpoints on schedule ---------------------------------------------------------------------


def test_checkpoints_are_published_when_due_and_only_then(
    platform: Platform, ledger: LedgerService, clock: Clock
) -> None:
    first = ledger.run_due()
    assert first.published is not None
    assert first.anchored is not None  # instance set-up wrote audit entries: anchored first
    assert first.published.checkpoint.size == first.anchored.leaf_index + 1

    clock.advance(seconds=30)
    assert ledger.run_due().published is None  # nothing grew

    append(platform, 0, 5)
    clock.advance(seconds=20)
    assert ledger.run_due().published is None  # grew, but the interval has not passed
    clock.advance(seconds=40)
    grown = ledger.run_due().published
    assert grown is not None and grown.checkpoint.size == first.published.checkpoint.size + 5
    assert ledger.run_due().published is None

    clock.advance(minutes=59)
    assert ledger.run_due().published is None
    clock.advance(minutes=2)  # idle past the maximum age: the same head is vouched for again
    refreshed = ledger.run_due().published
    assert refreshed is not None and refreshed.seq == grown.seq + 1
    assert refreshed.note == grown.note and refreshed.published_at == clock.now
    assert ledger.latest_checkpoint() == refreshed
    assert [c.seq for c in ledger.checkpoints(from_size=grown.checkpoint.size)] == [
        grown.seq,
        refreshed.seq,
    ]
    assert ledger.verify_history().ok


def test_on_demand_publish_returns_the_latest_when_nothing_changed(
    platform: Platform, ledger: LedgerService
) -> None:
    one = ledger.publish_checkpoint()
    assert ledger.publish_checkpoint() == one
    append(platform, 0, 1)
    two = ledger.publish_checkpoint()
    assert two.seq == one.seq + 1 and two.checkpoint.size == one.checkpoint.size + 1


def test_concurrent_maintenance_rounds_do_the_work_once(platform: Platform, clock: Clock) -> None:
    journal(platform, 3)
    append(platform, 0, 7)
    services = [LedgerService(platform.db, platform.keys, ORIGIN, clock, POLICY) for _ in range(4)]
    services[0].verifier_key()
    results: list[object] = []
    errors: list[BaseException] = []

    def round_(service: LedgerService) -> None:
        try:
            results.append(service.run_due())
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=round_, args=(s,)) for s in services]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert sum(r.published is not None for r in results) == 1  # type: ignore[attr-defined]
    assert sum(r.anchored is not None for r in results) == 1  # type: ignore[attr-defined]
    assert len(ledger_history(platform)) == 1


def ledger_history(platform: Platform) -> list[int]:
    with platform.db.read() as session:
        return list(session.scalars(text("SELECT seq FROM ledger_checkpoints")))


# -- proofs ----------------------------------------------------------------------------------------


def test_checkpoints_before_and_after_1000_appends_are_consistent(
    platform: Platform, ledger: LedgerService
) -> None:
    append(platform, 0, 17)
    before = opened(ledger, ledger.publish_checkpoint().note)
    for batch in range(10):
        append(platform, 1000 + batch * 100, 100)
    after = opened(ledger, ledger.publish_checkpoint().note)
    assert after.size == before.size + 1000

    proof = ledger.consistency_proof(before.size, after.size)
    verify_consistency(before.size, after.size, before.root_hash, after.root_hash, proof.hashes)
    assert ledger.consistency_proof(before.size).hashes == proof.hashes  # default: latest
    with pytest.raises(InvalidInputError):
        ledger.consistency_proof(0, after.size)
    with pytest.raises(InvalidInputError):
        ledger.consistency_proof(after.size + 1)


def test_inclusion_proofs_by_index_and_by_leaf_hash(
    platform: Platform, ledger: LedgerService
) -> None:
    with pytest.raises(NotFoundError, match="no checkpoint"):
        ledger.inclusion_proof(0)
    append(platform, 0, 40)
    checkpoint = opened(ledger, ledger.publish_checkpoint().note)
    append(platform, 100, 3)  # beyond the checkpoint: proofs default to the published size

    proof = ledger.inclusion_proof(23)
    assert proof.tree_size == checkpoint.size == 40
    verify_inclusion(rec(23).leaf_hash(), 23, 40, proof.hashes, checkpoint.root_hash)

    by_hash = ledger.proof_for_leaf_hash(rec(31).leaf_hash())
    assert by_hash.leaf_index == 31
    verify_inclusion(rec(31).leaf_hash(), 31, 40, by_hash.hashes, checkpoint.root_hash)
    # A leaf appended after the last index refresh is found (the index catches up on demand).
    late = ledger.proof_for_leaf_hash(rec(101).leaf_hash(), 43)
    assert late.leaf_index == 41

    with pytest.raises(NotFoundError):
        ledger.proof_for_leaf_hash(rec(101).leaf_hash())  # not in the checkpointed tree
    with pytest.raises(NotFoundError):
        ledger.proof_for_leaf_hash(hashlib.sha256(b"never logged").digest())
    with pytest.raises(NotFoundError):
        ledger.inclusion_proof(40)
    with pytest.raises(InvalidInputError):
        ledger.inclusion_proof(-1)
    with pytest.raises(InvalidInputError, match="43 leaves, not 44"):
        ledger.inclusion_proof(1, 44)


def test_leaves_are_served_in_bounded_pages(platform: Platform, ledger: LedgerService) -> None:
    append(platform, 0, 12)
    page = ledger.leaves(3, 7)
    assert [leaf.index for leaf in page] == [3, 4, 5, 6]
    assert page[0].record() == rec(3)
    assert [leaf.index for leaf in ledger.leaves(10)] == [10, 11]  # clipped to the tree
    for start, end in ((-1, 2), (5, 5), (0, 1001)):
        with pytest.raises(InvalidInputError):
            ledger.leaves(start, end)
    with pytest.raises(NotFoundError):
        ledger.leaves(12)


def test_contract_leaves_come_from_the_index(platform: Platform, ledger: LedgerService) -> None:
    append(platform, 0, 5)
    mine = str(uuid.UUID(int=2))
    with platform.db.write() as session:
        Ledger(session).append(EvidenceRecord("contract.void", contract_id=mine))
    assert [leaf.index for leaf in ledger.contract_leaves(mine)] == [2, 5]
    assert ledger.contract_leaves(str(uuid.UUID(int=99))) == []
    with pytest.raises(InvalidInputError):
        ledger.contract_leaves("not-a-uuid")
    with platform.db.read() as session:
        indexed = session.scalar(
            select(func.count()).select_from(ledger_ops_models.LedgerLeafIndex)
        )
    assert indexed == 6


# -- audit anchoring -------------------------------------------------------------------------------


def test_anchors_commit_the_journal_head_and_check_out(
    platform: Platform, ledger: LedgerService, clock: Clock
) -> None:
    ledger.verifier_key()  # creating the key is journalled too: get it out of the way
    journal(platform, 4)
    first = ledger.anchor_audit()
    assert first is not None
    assert ledger.anchor_audit() is None  # nothing journalled since: no new anchor
    with platform.db.read() as session:
        anchored = session.get(AuditEvent, first.audit_seq)
        assert anchored is not None and anchored.action == ANCHOR_ACTION
        assert anchored.entry_hash == first.audit_hash  # the leaf commits to its own audit event
        leaf = Ledger(session).leaf(first.leaf_index).record()
    assert (leaf.type, leaf.audit_seq, leaf.audit_entry_sha256) == (
        "audit.anchor",
        first.audit_seq,
        first.audit_hash,
    )

    journal(platform, 2)
    clock.advance(seconds=30)
    assert ledger.run_due().anchored is None  # journal grew, interval not over
    clock.advance(seconds=31)
    second = ledger.run_due().anchored
    assert second is not None and second.audit_seq == first.audit_seq + 3

    report = ledger.check_anchors()
    assert report.ok, report.problems
    assert (report.anchors, report.last_anchored_seq) == (2, second.audit_seq)
    assert report.entries == second.audit_seq and report.checkpoint_size is not None


def _rechain(platform: Platform) -> None:
    """What a careful attacker does after an edit: recompute every stored hash and the head."""
    with platform.db.write() as session:
        prev = GENESIS_HASH
        events = session.scalars(select(AuditEvent).order_by(AuditEvent.seq)).all()
        for event in events:
            digest = entry_hash(prev, _record_of(event))
            session.execute(
                text("UPDATE audit_events SET prev_hash = :p, entry_hash = :h WHERE seq = :s"),
                {"p": prev, "h": digest, "s": event.seq},
            )
            prev = digest
        head = session.get(AuditChainHead, 1)
        assert head is not None
        head.last_seq, head.last_hash = events[-1].seq, prev


def test_an_edited_audit_entry_is_detected_even_with_a_recomputed_chain(
    platform: Platform, ledger: LedgerService
) -> None:
    journal(platform, 3)
    first = ledger.anchor_audit()
    journal(platform, 3)
    second = ledger.anchor_audit()
    assert first is not None and second is not None
    ledger.publish_checkpoint()
    target = first.audit_seq + 2

    bypass(
        platform,
        "audit_events",
        "UPDATE audit_events SET ip = '198.51.100.66' WHERE seq = :s",
        {"s": target},
    )
    report = ledger.check_anchors()
    assert not report.ok and report.first_mismatch == second
    assert f"entry {target} no longer matches its stored hash" in report.problems[0]
    assert f"entries up to {first.audit_seq}" in report.problems[0]

    _rechain(platform)
    with platform.db.read() as session:
        assert verify_chain(session).ok  # the hash chain alone is fooled …
    report = ledger.check_anchors()  # … the anchors are not
    assert not report.ok and report.first_mismatch == second
    assert f"at or before {second.audit_seq} was edited or deleted" in report.problems[0]


def test_a_deleted_audit_entry_is_detected(platform: Platform, ledger: LedgerService) -> None:
    journal(platform, 5)
    anchor = ledger.anchor_audit()
    assert anchor is not None
    bypass(platform, "audit_events", "DELETE FROM audit_events WHERE seq = 2")
    report = ledger.check_anchors()
    assert not report.ok and report.first_mismatch == anchor
    assert report.problems == [
        f"audit entries 2 are missing from the journal; anchor at leaf {anchor.leaf_index} "
        f"(entry {anchor.audit_seq}) can no longer be re-derived"
    ]


def test_deleting_the_anchored_tail_is_detected(platform: Platform, ledger: LedgerService) -> None:
    journal(platform, 3)
    anchor = ledger.anchor_audit()
    assert anchor is not None
    bypass(platform, "audit_events", f"DELETE FROM audit_events WHERE seq = {anchor.audit_seq}")
    report = ledger.check_anchors()
    assert not report.ok
    assert report.problems == [
        f"anchored audit entry {anchor.audit_seq} (leaf {anchor.leaf_index}) is gone: the "
        f"journal ends at entry {anchor.audit_seq - 1}"
    ]


def test_a_rewritten_anchor_leaf_is_not_trusted(platform: Platform, ledger: LedgerService) -> None:
    journal(platform, 2)
    anchor = ledger.anchor_audit()
    assert anchor is not None
    ledger.publish_checkpoint()
    forged = EvidenceRecord(
        "audit.anchor", audit_seq=anchor.audit_seq, audit_entry_sha256="0" * 64
    ).encode()
    bypass(
        platform,
        "ledger_leaves",
        "UPDATE ledger_leaves SET data = :d WHERE leaf_index = :i",
        {"d": forged, "i": anchor.leaf_index},
    )
    report = ledger.check_anchors()
    assert not report.ok
    assert "no longer hash to the latest checkpoint's root" in report.problems[0]


# -- schema ----------------------------------------------------------------------------------------


def test_migration_0006_matches_the_models(platform: Platform) -> None:
    mine = MetaData(naming_convention=ledger_ops_models.Base.metadata.naming_convention)
    names = {"ledger_keys", "ledger_leaf_index", "ledger_anchors"}
    for name in names:
        ledger_ops_models.Base.metadata.tables[name].to_metadata(mine)

    def only_mine(name: str | None, type_: str, _parent: object) -> bool:
        return type_ != "table" or name in names

    with platform.db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_name": only_mine})
        assert compare_metadata(context, mine) == []


def test_anchor_records_hold_a_sequence_number_and_nothing_else_new() -> None:
    anchor = EvidenceRecord("audit.anchor", audit_seq=7, audit_entry_sha256="ab" * 32)
    assert anchor.encode() == (
        b'{"audit_entry_sha256":"' + b"ab" * 32 + b'","audit_seq":7,"type":"audit.anchor","v":1}'
    )
    assert EvidenceRecord.decode(anchor.encode()) == anchor
    for bad in (0, -3, True, "7", 7.0, 1 << 63):
        with pytest.raises(InvalidInputError, match="audit_seq"):
            EvidenceRecord("audit.anchor", audit_seq=bad)  # type: ignore[arg-type]
