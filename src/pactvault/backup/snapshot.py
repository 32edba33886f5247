"""Consistent database snapshots taken while the platform runs, and putting them back.

**SQLite** — the online backup API (``sqlite3.Connection.backup``) copies every page in one step
inside one read transaction; in WAL mode writers go on meanwhile and the copy is exactly the
database as of that transaction's start. The copy is switched to a rollback journal (one
self-contained file) and must pass ``PRAGMA quick_check`` before it is used.

**PostgreSQL** — a ``REPEATABLE READ, READ ONLY`` transaction exports its snapshot
(``pg_export_snapshot()``) and ``pg_dump -Fc --snapshot=…`` dumps exactly that snapshot, while
the same transaction reads the facts below: dump and facts describe one moment. Restores use
``pg_restore --single-transaction --exit-on-error --no-owner --no-privileges`` into an *empty*
database. The client tools must be at least the server's version: ``PACTVAULT_PG_BINDIR`` picks
them, else the newest ``/usr/lib/postgresql/*/bin`` (Debian), else ``$PATH``. The password goes
to the tools in ``PGPASSWORD`` (never on a command line, where ``ps`` shows it).

**Facts** (:class:`DatabaseFacts`) are what the manifest promises about the snapshot — schema
heads, the evidence ledger's size and root, the audit journal's head, row counts, and every blob
a committed row refers to with the SHA-256 the row recorded for it — read from the snapshot
itself, so the blobs copied are exactly those the snapshot needs.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path

from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, func, inspect, select
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.orm import Session

from pactvault.audit.journal import CHAIN_HEAD_ID, GENESIS_HASH
from pactvault.backup.errors import BackupError, BackupIntegrityError, RestoreTargetError
from pactvault.ledger.log import Ledger
from pactvault.store.db import Database
from pactvault.store.models import (
    AuditChainHead,
    AuditEvent,
    Contract,
    DocumentRevision,
    Signature,
)
from pactvault.store.realname_models import VerificationEvidence

__all__ = [
    "BlobRef",
    "DatabaseFacts",
    "PgTools",
    "database_is_empty",
    "read_facts",
    "restore_postgres",
    "snapshot_postgres",
    "snapshot_sqlite",
]

_TOOL_TIMEOUT = 6 * 3600


@dataclass(frozen=True)
class BlobRef:
    key: str
    sha256: str


@dataclass(frozen=True)
class DatabaseFacts:
    kind: str
    schema_heads: tuple[str, ...]
    ledger_size: int
    ledger_root: str
    audit_seq: int
    audit_head: str
    counts: dict[str, int]
    blobs: tuple[BlobRef, ...]


def read_facts(connection: Connection, kind: str) -> DatabaseFacts:
    """What the manifest records about the database behind ``connection`` (one transaction)."""
    heads = tuple(sorted(MigrationContext.configure(connection).get_current_heads()))
    session = Session(bind=connection)
    head = Ledger(session).head()
    chain = session.get(AuditChainHead, CHAIN_HEAD_ID)

    def count(model: type) -> int:
        return int(session.execute(select(func.count()).select_from(model)).scalar_one())

    refs = {
        BlobRef(key, sha)
        for key, sha in session.execute(
            select(DocumentRevision.blob_key, DocumentRevision.ciphertext_sha256)
        )
    }
    refs |= {
        BlobRef(key, sha)
        for key, sha in session.execute(
            select(VerificationEvidence.blob_key, VerificationEvidence.ciphertext_sha256)
        )
    }
    return DatabaseFacts(
        kind=kind,
        schema_heads=heads,
        ledger_size=head.size,
        ledger_root=head.root_hash.hex(),
        audit_seq=int(chain.last_seq) if chain else 0,
        audit_head=chain.last_hash if chain else GENESIS_HASH,
        counts={
            "contracts": count(Contract),
            "signatures": count(Signature),
            "document_revisions": count(DocumentRevision),
            "identity_evidence": count(VerificationEvidence),
            "audit_events": count(AuditEvent),
        },
        blobs=tuple(sorted(refs, key=lambda r: r.key)),
    )


# -- SQLite ----------------------------------------------------------------------------------


def snapshot_sqlite(db_path: Path, target: Path) -> DatabaseFacts:
    """Copy the live database at ``db_path`` into ``target`` and read its facts."""
    source = sqlite3.connect(db_path, timeout=30)
    try:
        copy = sqlite3.connect(target)
        try:
            source.backup(copy)  # pages=-1: every page in one step, one read transaction
            copy.execute("PRAGMA journal_mode=DELETE")
            verdict = copy.execute("PRAGMA quick_check").fetchone()[0]
        finally:
            copy.close()
    except sqlite3.Error as exc:
        raise BackupError(f"the SQLite snapshot failed: {exc}") from None
    finally:
        source.close()
    if verdict != "ok":
        raise BackupIntegrityError(f"the database snapshot fails SQLite's check: {verdict}")
    return sqlite_facts(target)


def sqlite_facts(path: Path) -> DatabaseFacts:
    """Facts of a SQLite file, opened without the platform's pragmas (which would switch a
    snapshot back to WAL)."""
    engine = create_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as connection:
            return read_facts(connection, "sqlite")
    finally:
        engine.dispose()


def check_sqlite(path: Path) -> None:
    try:
        connection = sqlite3.connect(path)
        try:
            verdict = connection.execute("PRAGMA integrity_check").fetchone()[0]
        finally:
            connection.close()
    except sqlite3.Error as exc:
        raise BackupIntegrityError(f"the restored database cannot be opened: {exc}") from None
    if verdict != "ok":
        raise BackupIntegrityError(f"the restored database fails SQLite's check: {verdict}")


# -- PostgreSQL ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PgTools:
    """Locates ``pg_dump`` / ``pg_restore`` and runs them against a database URL."""

    bindir: Path | None = None

    def tool(self, name: str) -> str:
        if self.bindir is not None:
            candidate = self.bindir / name
            if candidate.is_file():
                return str(candidate)
            raise BackupError(f"{name} is not in PACTVAULT_PG_BINDIR ({self.bindir})")
        versions = []
        for path in glob.glob(f"/usr/lib/postgresql/*/bin/{name}"):
            match = re.search(r"/postgresql/(\d+)", path)
            if match:
                versions.append((int(match.group(1)), path))
        if versions:
            return max(versions)[1]
        found = shutil.which(name)
        if found:
            return found
        raise BackupError(
            f"{name} was not found: install the PostgreSQL client tools or set PACTVAULT_PG_BINDIR"
        )

    @staticmethod
    def environment(url: str | URL) -> dict[str, str]:
        parsed = make_url(url)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        mapping = {
            "PGHOST": parsed.host,
            "PGPORT": str(parsed.port) if parsed.port else None,
            "PGUSER": parsed.username,
            "PGPASSWORD": parsed.password,
            "PGDATABASE": parsed.database,
        }
        for key, value in parsed.query.items():
            if isinstance(value, str) and re.fullmatch(r"[a-z_]+", key):
                mapping["PG" + key.upper().replace("_", "")] = value
        env.update({k: str(v) for k, v in mapping.items() if v})
        return env

    def run(self, name: str, args: list[str], url: str | URL) -> None:
        try:
            done = subprocess.run(  # noqa: S603 - fixed tool, arguments we built
                [self.tool(name), "--no-password", *args],
                env=self.environment(url),
                capture_output=True,
                timeout=_TOOL_TIMEOUT,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise BackupError(f"{name} could not run: {exc}") from None
        if done.returncode != 0:
            lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
            detail = lines[-1] if lines else f"exit status {done.returncode}"
            raise BackupError(f"{name} failed: {detail[:300]}")


def snapshot_postgres(db: Database, target: Path, tools: PgTools) -> DatabaseFacts:
    """``pg_dump -Fc`` of one exported snapshot into ``target``, and that snapshot's facts."""
    url = db.engine.url
    with db.engine.connect() as raw:
        connection = raw.execution_options(isolation_level="REPEATABLE READ")
        with connection.begin():
            connection.exec_driver_sql("SET TRANSACTION READ ONLY")
            snapshot = connection.exec_driver_sql("SELECT pg_export_snapshot()").scalar_one()
            tools.run(
                "pg_dump",
                ["--format=custom", f"--snapshot={snapshot}", f"--file={target}"],
                url,
            )
            return read_facts(connection, "postgresql")


def database_is_empty(url: str) -> bool:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return not inspect(connection).get_table_names()
    finally:
        engine.dispose()


def restore_postgres(dump: Path, url: str, tools: PgTools) -> None:
    if not database_is_empty(url):
        raise RestoreTargetError(
            "the target PostgreSQL database is not empty; restore into a new, empty database"
        )
    database = make_url(url).database or ""
    tools.run(
        "pg_restore",
        [
            "--single-transaction",
            "--exit-on-error",
            "--no-owner",
            "--no-privileges",
            f"--dbname={database}",
            str(dump),
        ],
        url,
    )


def postgres_facts(url: str) -> DatabaseFacts:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return read_facts(connection, "postgresql")
    finally:
        engine.dispose()
