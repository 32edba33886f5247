"""The stored ledger on SQLite and PostgreSQL: appends, proofs from storage, transactions,
concurrency, database guards, and checkpoint publishing with fork detection."""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections.abc import Iterator

import pytest
from alembic import command
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from pactvault.errors import IntegrityError, InvalidInputError
from pactvault.ledger import (
    CheckpointStore,
    Ed25519NoteSigner,
    EvidenceRecord,
    ForkDetectedError,
    Ledger,
    open_checkpoint,
    verify_consistency,
    verify_inclusion,
)
from pactvault.ledger.merkle import EMPTY_ROOT, root_of
from pactvault.ledger.tiles import grow, tile_id
from pactvault.store import migrate
from pactvault.store.db import Database

ORIGIN = "pactvault.example/ledger"


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database.from_url(database_url)
    migrate.upgrade(database.engine)
    try:
        yield database
    finally:
        database.dispose()


def rec(i: int) -> EvidenceRecord:
    return EvidenceRecord(
        "contract.sign",
        contract_id=str(uuid.UUID(int=i)),
        signature_sha256=hashlib.sha256(b"sig %d" % i).hexdigest(),
    )


def append(db: Database, records: list[EvidenceRecord]) -> list[int]:
    with db.write() as session:
        return [ref.index for ref in Ledger(session).append_batch(records)]


def test_appends_get_dense_indexes_and_proofs_from_storage_verify(db: Database) -> None:
    records = [rec(i) for i in range(300)]
    hashes = [r.leaf_hash() for r in records]
    position = 0
    for chunk in [1, 1, 1, 13, 16, 2, 200, 1, 65]:  # crosses tile and tile-level boundaries
        assert append(db, records[position : position + chunk]) == list(
            range(position, position + chunk)
        )
        position += chunk
    with db.write() as session:
        ref = Ledger(session).append(rec(300))
    hashes.append(ref.leaf_hash)
    assert ref.index == 300 and ref.leaf_hash == rec(300).leaf_hash()

    with db.read() as session:
        ledger = Ledger(session)
        head = ledger.head()
        assert (head.size, head.root_hash) == (301, root_of(hashes))
        assert ledger.leaf(17).record() == records[17]
        assert [leaf.index for leaf in ledger.leaves(295)] == list(range(295, 301))
        for size in [*range(1, 40), 255, 256, 257, 272, 300, 301]:
            root = ledger.root(size)
            assert root == root_of(hashes[:size])
            for index in {0, size // 3, size - 1}:
                proof = ledger.inclusion_proof(index, size)
                verify_inclusion(hashes[index], index, size, proof.hashes, root)
            for old in {1, size // 2 or 1, size - 1 or 1, size}:
                cproof = ledger.consistency_proof(old, size)
                verify_consistency(old, size, ledger.root(old), root, cproof.hashes)
        assert ledger.root(0) == EMPTY_ROOT
        assert ledger.inclusion_proof(7).tree_size == 301  # default: the current tree
        for bad in [
            lambda: ledger.inclusion_proof(301),
            lambda: ledger.inclusion_proof(3, 302),
            lambda: ledger.consistency_proof(0, 5),
            lambda: ledger.root(302),
        ]:
            with pytest.raises(InvalidInputError):
                bad()


def test_leaf_commits_with_the_callers_transaction_or_not_at_all(db: Database) -> None:
    append(db, [rec(0)])
    with pytest.raises(RuntimeError), db.write() as session:
        Ledger(session).append(rec(1))
        raise RuntimeError("signing failed after the leaf was added")
    with db.read() as session:
        assert Ledger(session).head().size == 1
    assert append(db, [rec(2)]) == [1]  # the rolled-back leaf never existed


def test_concurrent_appenders_never_share_an_index(db: Database) -> None:
    errors: list[BaseException] = []
    got: list[int] = []
    lock = threading.Lock()

    def worker(w: int) -> None:
        try:
            for i in range(6):
                indexes = append(db, [rec(1000 * w + 10 * i + k) for k in range(w % 3 + 1)])
                with lock:
                    got.extend(indexes)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(got) == list(range(len(got)))
    with db.read() as session:
        ledger = Ledger(session)
        leaves = list(ledger.leaves())
        assert ledger.head().root_hash == root_of([leaf.leaf_hash for leaf in leaves])


def _denied(db: Database, statement: str) -> None:
    with pytest.raises(DBAPIError, match="append-only"), db.write() as session:
        session.execute(text(statement))


def test_database_refuses_rewriting_the_ledger(db: Database) -> None:
    append(db, [rec(i) for i in range(20)])
    _denied(db, "UPDATE ledger_leaves SET data = data WHERE leaf_index = 3")
    _denied(db, "DELETE FROM ledger_leaves WHERE leaf_index = 19")
    _denied(db, "DELETE FROM ledger_tiles")
    _denied(db, "UPDATE ledger_head SET tree_size = 3")
    with db.read() as session:
        full = session.execute(
            text("SELECT hashes FROM ledger_tiles WHERE tile_id = 0")
        ).scalar_one()
    with pytest.raises(DBAPIError, match="append-only"), db.write() as session:
        session.execute(  # a full tile may not change, not even in one byte
            text("UPDATE ledger_tiles SET hashes = :h WHERE tile_id = 0"),
            {"h": bytes([full[0] ^ 1]) + full[1:]},
        )
    signer = Ed25519NoteSigner(ORIGIN, Ed25519PrivateKey.generate())
    with db.write() as session:
        CheckpointStore(ORIGIN).publish(session, signer)
    _denied(db, "UPDATE ledger_checkpoints SET tree_size = 2")
    _denied(db, "DELETE FROM ledger_checkpoints")


def test_publish_signs_and_keeps_every_checkpoint(db: Database) -> None:
    signer = Ed25519NoteSigner(ORIGIN, Ed25519PrivateKey.generate())
    store = CheckpointStore(ORIGIN)
    with db.write() as session:
        empty = store.publish(session, signer)
    assert (empty.checkpoint.size, empty.checkpoint.root_hash) == (0, EMPTY_ROOT)
    published = [empty]
    for n in (5, 40, 1):
        append(db, [rec(len(published) * 100 + i) for i in range(n)])
        with db.write() as session:
            published.append(store.publish(session, signer))
    with db.write() as session:
        again = store.publish(session, signer)
    assert again == published[-1]  # nothing new: no duplicate row

    with db.read() as session:
        ledger = Ledger(session)
        assert [p.checkpoint.size for p in store.history(session)] == [0, 5, 45, 46]
        latest = open_checkpoint(published[-1].note, origin=ORIGIN, verifiers=[signer.verifier])
        assert latest.checkpoint.root_hash == ledger.head().root_hash
        report = store.verify_history(session, [signer.verifier])
        assert report.ok and report.checked == 4
        # A leaf proven against a published checkpoint, as a third party would.
        leaf = ledger.leaf(7)
        proof = ledger.inclusion_proof(7, 45)
        verify_inclusion(leaf.leaf_hash, 7, 45, proof.hashes, published[2].checkpoint.root_hash)
        # A key that never signed them does not validate history.
        other = Ed25519NoteSigner(ORIGIN, Ed25519PrivateKey.generate())
        assert not store.verify_history(session, [other.verifier]).ok
    with pytest.raises(InvalidInputError), db.write() as session:
        store.publish(session, Ed25519NoteSigner("other.example", Ed25519PrivateKey.generate()))


def _drop_guards(db: Database) -> None:
    """Simulate someone with raw database access who disables the guards first."""
    with db.engine.begin() as conn:
        if db.is_sqlite:
            for name in ("ledger_tiles_only_grow", "ledger_head_only_grows"):
                conn.exec_driver_sql(f"DROP TRIGGER {name}")
        else:
            conn.exec_driver_sql("ALTER TABLE ledger_tiles DISABLE TRIGGER USER")
            conn.exec_driver_sql("ALTER TABLE ledger_head DISABLE TRIGGER USER")


def test_rewritten_history_is_detected_and_never_signed_over(db: Database) -> None:
    signer = Ed25519NoteSigner(ORIGIN, Ed25519PrivateKey.generate())
    store = CheckpointStore(ORIGIN)
    append(db, [rec(i) for i in range(40)])
    with db.write() as session:
        store.publish(session, signer)
    append(db, [rec(100 + i) for i in range(9)])

    # An attacker swaps leaf 3 and rebuilds every tile and the head to match, with our own code.
    _drop_guards(db)
    forged = EvidenceRecord("contract.void", contract_id=str(uuid.UUID(int=3)))
    with db.read() as session:
        hashes = [leaf.leaf_hash for leaf in Ledger(session).leaves()]
    hashes[3] = forged.leaf_hash()
    with db.write() as session:
        for key, value in grow(0, hashes, {}).items():
            session.execute(
                text("UPDATE ledger_tiles SET hashes = :h WHERE tile_id = :t"),
                {"h": value, "t": tile_id(key)},
            )
        session.execute(text("UPDATE ledger_head SET root_hash = :r"), {"r": root_of(hashes)})
    with db.read() as session:
        assert Ledger(session).root(49) == root_of(hashes)  # storage now tells the forged story

    with db.read() as session:
        report = store.verify_history(session, [signer.verifier])
    assert not report.ok and report.forks
    with pytest.raises(ForkDetectedError), db.write() as session:
        store.publish(session, signer)
    with db.read() as session:
        assert len(store.history(session)) == 1  # nothing was signed over the forgery


def test_damaged_tiles_are_an_integrity_error(db: Database) -> None:
    append(db, [rec(i) for i in range(40)])
    _drop_guards(db)
    with db.write() as session:  # cut the last level-0 tile (leaves 32…39: 15 hashes) to 4
        session.execute(
            text("UPDATE ledger_tiles SET hashes = substr(hashes, 1, 128) WHERE tile_id = 2")
        )
    with db.read() as session:
        ledger = Ledger(session)
        ledger.inclusion_proof(3, 32)  # the intact part still proves
        with pytest.raises(IntegrityError, match="lacks"):
            ledger.inclusion_proof(3, 40)
        with pytest.raises(InvalidInputError, match="40 leaves, not 41"):
            ledger.inclusion_proof(3, 41)
    with pytest.raises(IntegrityError, match="does not match the tree size"), db.write() as session:
        Ledger(session).append(rec(99))


def test_missing_head_row_is_an_integrity_error(db: Database) -> None:
    with db.engine.begin() as conn:
        if db.is_sqlite:
            conn.exec_driver_sql("DROP TRIGGER ledger_head_no_delete")
        else:
            conn.exec_driver_sql("ALTER TABLE ledger_head DISABLE TRIGGER USER")
        conn.exec_driver_sql("DELETE FROM ledger_head")
    with pytest.raises(IntegrityError, match="head"), db.write() as session:
        Ledger(session).append(rec(1))


def test_migration_downgrade_and_upgrade_again(db: Database) -> None:
    """0002's downgrade removes its tables, triggers and functions so it can be applied again
    (later revisions built on it go down and up with it)."""
    append(db, [rec(1)])
    config = migrate.alembic_config(db.engine.url.render_as_string(hide_password=False))
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0001")
    migrate.upgrade(db.engine)
    with db.read() as session:
        assert Ledger(session).head().size == 0
