"""A database handle for the monitor's own bookkeeping: committed without waiting for the disk.

Rate-limit counters, detection observations, the journal cursor and the detection lease are
derived or operational state — the audit journal stays the source of truth — so waiting for an
fsync on every one of their commits would only add latency to requests and to detection. Their
connections run with SQLite ``synchronous=NORMAL`` (in WAL mode a crash may forget the last
commits, never corrupt the file; the next ``FULL`` commit of a business transaction flushes them
anyway) or PostgreSQL ``synchronous_commit=off`` (the same trade, server side). Forgetting is
safe by construction: a forgotten cursor move re-reads a batch (idempotent), a forgotten count
lets one more request through.

Alerts, automatic responses and everything audited keep going through the services and the
platform's own, fully durable, database handle.
"""

from __future__ import annotations

from sqlalchemy import event

from pactvault.store.db import Database, create_db_engine

__all__ = ["relaxed_database"]


def relaxed_database(url: str) -> Database:
    db = Database(create_db_engine(url))
    engine = db.engine
    sqlite = engine.dialect.name == "sqlite"

    @event.listens_for(engine, "connect")
    def _no_wait_for_disk(dbapi_connection, _record):  # type: ignore[no-untyped-def]
        # Runs after the engine's own settings (listeners fire in the order they were added).
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA synchronous=NORMAL" if sqlite else "SET synchronous_commit TO OFF")
        cursor.close()
        if not sqlite:
            dbapi_connection.commit()

    return db
