"""Evidence ledger: durable appends per second, proof latency at 10⁶ and 10⁷ leaves, bytes per leaf.

``.venv/bin/python bench/ledger.py`` (embedded SQLite in a temporary directory) or
``--database-url postgresql+psycopg://…`` (an empty database; migrations are applied). Prints:

* **one-by-one appends** — ``Ledger.append`` of one record per ``Database.write()`` transaction,
  each committed (SQLite ``synchronous=FULL``: one fsync per commit).
* **batched appends** — ``Ledger.append_batch`` of ``--batch`` records per committed transaction;
  the same path builds the tree up to each size in ``--sizes``.
* **proofs at each size** — inclusion proof generation from storage (head read + tile reads +
  hashing, in one read session) and its offline verification, at random leaves; consistency
  proofs between random sizes likewise. Median and 99th percentile.
* **storage** — bytes per leaf, for the leaf records and for the tree (tiles), from the database's
  own accounting (SQLite ``dbstat``; PostgreSQL ``pg_total_relation_size``).

Records are realistic ``contract.sign`` evidence (all seven fields set, 522 bytes of canonical
JSON). A pool of distinct records is built before timing and reused cyclically, so timings cover
the ledger's work (canonical encoding, leaf hashing, tiles, inserts, commit), not the synthetic
data generator. Building stops at ``--budget`` seconds: a size whose build would not fit (judged
from the measured batched rate) is skipped with the time it would take printed instead.
"""

from __future__ import annotations

import argparse
import hashlib
import platform
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import text

from pactvault.ledger import EvidenceRecord, Ledger, verify_consistency, verify_inclusion
from pactvault.store import migrate
from pactvault.store.db import Database

POOL = 4096
TABLES = ("ledger_leaves", "ledger_tiles")


def record(i: int) -> EvidenceRecord:
    def digest(kind: bytes) -> str:
        return hashlib.sha256(kind + i.to_bytes(8, "big")).hexdigest()

    return EvidenceRecord(
        "contract.sign",
        contract_id=str(uuid.UUID(bytes=bytes.fromhex(digest(b"contract")[:32]), version=4)),
        document_sha256=digest(b"doc"),
        signature_sha256=digest(b"sig"),
        timestamp_token_sha256=digest(b"tst"),
        certificate_sha256=digest(b"crt"),
        audit_entry_sha256=digest(b"aud"),
    )


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def micros(values: list[float]) -> str:
    median, p99 = statistics.median(values) * 1e6, percentile(values, 0.99) * 1e6
    return f"median {median:7.1f} µs   p99 {p99:7.1f} µs"


def one_by_one(db: Database, pool: list[EvidenceRecord], count: int) -> None:
    start = time.perf_counter()
    for i in range(count):
        with db.write() as session:
            Ledger(session).append(pool[i % POOL])
    elapsed = time.perf_counter() - start
    print(f"one-by-one appends : {count / elapsed:9.0f} /s   ({count} appends, one commit each)")


class Builder:
    """Grows the tree with committed batches and keeps the batched rate."""

    def __init__(self, db: Database, pool: list[EvidenceRecord], batch: int) -> None:
        self.db, self.pool, self.batch = db, pool, batch
        self.appended = 0
        self.seconds = 0.0

    @property
    def rate(self) -> float:
        return self.appended / self.seconds if self.seconds else 0.0

    def size(self) -> int:
        with self.db.read() as session:
            return Ledger(session).head().size

    def grow_to(self, target: int) -> None:
        size = self.size()
        report_at = time.perf_counter() + 30
        while size < target:
            n = min(self.batch, target - size)
            offset = size % POOL
            records = [self.pool[(offset + k) % POOL] for k in range(n)]
            start = time.perf_counter()
            with self.db.write() as session:
                Ledger(session).append_batch(records)
            self.seconds += time.perf_counter() - start
            self.appended += n
            size += n
            if time.perf_counter() > report_at:
                print(f"  … {size:,} leaves, {self.rate:,.0f} appends/s", file=sys.stderr)
                report_at = time.perf_counter() + 30


def proofs(db: Database, size: int, samples: int, rng: random.Random) -> None:
    with db.read() as session:
        ledger = Ledger(session)
        root = ledger.root(size)  # the tree may be larger than ``size`` already
        indexes = [rng.randrange(size) for _ in range(samples)]
        leaf_hashes = {i: ledger.leaf(i).leaf_hash for i in indexes}
        ledger.inclusion_proof(indexes[0], size)  # warm the statement cache
        generate, verify = [], []
        for i in indexes:
            t0 = time.perf_counter()
            proof = ledger.inclusion_proof(i, size)
            t1 = time.perf_counter()
            verify_inclusion(leaf_hashes[i], i, size, proof.hashes, root)
            t2 = time.perf_counter()
            generate.append(t1 - t0)
            verify.append(t2 - t1)
        olds = [rng.randrange(1, size) for _ in range(samples // 4)]
        old_roots = {old: ledger.root(old) for old in olds}
        cgen, cver = [], []
        for old in olds:
            t0 = time.perf_counter()
            proof = ledger.consistency_proof(old, size)
            t1 = time.perf_counter()
            verify_consistency(old, size, old_roots[old], root, proof.hashes)
            t2 = time.perf_counter()
            cgen.append(t1 - t0)
            cver.append(t2 - t1)
    print(f"  inclusion proof   generate {micros(generate)}   ({samples} random leaves)")
    print(f"                    verify   {micros(verify)}")
    print(f"  consistency proof generate {micros(cgen)}   ({len(olds)} random old sizes)")
    print(f"                    verify   {micros(cver)}")


def storage(db: Database, size: int) -> None:
    with db.engine.connect() as conn:
        if db.is_sqlite:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            sizes = {}
            for t in TABLES:
                sizes[t] = conn.execute(
                    text(
                        "SELECT SUM(pgsize) FROM dbstat WHERE name = :t "
                        "OR name IN (SELECT name FROM sqlite_master WHERE tbl_name = :t)"
                    ),
                    {"t": t},
                ).scalar()
            path = Path(db.engine.url.database or "")
            total = sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
        else:
            sizes = {
                t: conn.execute(text("SELECT pg_total_relation_size(:t)"), {"t": t}).scalar()
                for t in TABLES
            }
            total = conn.execute(text("SELECT pg_database_size(current_database())")).scalar()
    leaves, tiles = sizes["ledger_leaves"] or 0, sizes["ledger_tiles"] or 0
    print(
        f"  storage: records {leaves / size:6.1f} B/leaf, tree (tiles) {tiles / size:5.1f} B/leaf, "
        f"ledger {(leaves + tiles) / size:6.1f} B/leaf; whole database {total / 2**20:,.0f} MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", help="default: SQLite in a temporary directory")
    parser.add_argument("--sizes", default="1000000,10000000", help="tree sizes to measure at")
    parser.add_argument("--single", type=int, default=300, help="one-by-one appends to time")
    parser.add_argument("--batch", type=int, default=20000, help="records per batched commit")
    parser.add_argument("--proofs", type=int, default=2000, help="proof samples per size")
    parser.add_argument("--budget", type=float, default=900, help="seconds allowed for building")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    tmp = None
    url = args.database_url
    if url is None:
        tmp = tempfile.TemporaryDirectory(prefix="pactvault-bench-")
        url = f"sqlite:///{tmp.name}/ledger.db"
    db = Database.from_url(url)
    migrate.upgrade(db.engine)
    version = f"{platform.python_implementation()} {platform.python_version()}"
    print(f"interpreter: {sys.executable} ({version})")
    print(f"database   : {db.engine.url.render_as_string(hide_password=True)}")
    pool = [record(i) for i in range(POOL)]
    length = len(pool[0].encode())
    print(f"record     : {length} bytes of canonical JSON (contract.sign, all fields set)")

    rng = random.Random(4)
    started = time.perf_counter()
    one_by_one(db, pool, args.single)
    builder = Builder(db, pool, args.batch)
    builder.grow_to(builder.size() + 2 * args.batch)
    print(f"batched appends    : {builder.rate:9.0f} /s   ({args.batch} records per commit)")
    for size in sizes:
        current = builder.size()
        if size > current:
            need = (size - current) / builder.rate
            left = args.budget - (time.perf_counter() - started)
            if need > left:
                print(
                    f"\n{size:,} leaves: skipped — building {size - current:,} more leaves would "
                    f"take ≈ {need:,.0f} s at {builder.rate:,.0f} appends/s, {left:,.0f} s of the "
                    f"budget left (raise --budget)"
                )
                continue
            t0 = time.perf_counter()
            builder.grow_to(size)
            built = time.perf_counter() - t0
            print(
                f"\n{size:,} leaves: built {size - current:,} in {built:,.0f} s "
                f"(wall, {(size - current) / built:,.0f} appends/s)"
            )
        else:
            print(f"\n{size:,} leaves (proofs for that size of a tree of {current:,}):")
        proofs(db, size, args.proofs, rng)
        storage(db, builder.size())
    db.dispose()
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
