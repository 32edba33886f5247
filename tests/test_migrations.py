"""The Alembic migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from pactvault.store import migrate
from pactvault.store.db import Database
from pactvault.store.models import Base


def test_migrations_match_the_models_and_are_idempotent(database_url: str) -> None:
    db = Database.from_url(database_url)
    try:
        migrate.upgrade(db.engine)
        migrate.upgrade(db.engine)  # a second run is a no-op
        assert migrate.current_heads(db.engine) == migrate.script_heads()
        with db.engine.connect() as conn:
            drift = compare_metadata(MigrationContext.configure(conn), Base.metadata)
            tables = set(inspect(conn).get_table_names())
        assert drift == [], f"models and migrations disagree: {drift}"
        assert {"contracts", "audit_events", "signing_keys", "key_encryption_keys"} <= tables
    finally:
        db.dispose()
