"""The 0005 migration builds exactly the MFA tables the models describe; the digest keys derive
from a secret kept wrapped in the key hierarchy."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

import pactvault.store.mfa_models  # noqa: F401  (registers the MFA tables)
from conftest import database_bytes
from pactvault.identity.mfa.keyring import KEY_NAME, DigestKeys
from pactvault.keys.local import LocalKeyService, LocalKeyStore
from pactvault.keys.secrets import platform_secret
from pactvault.store import migrate
from pactvault.store.base import Base
from pactvault.store.db import Database

MFA_TABLES = {table.name for table in Base.metadata.sorted_tables if table.name.startswith("mfa_")}


def _only_mfa(obj, name, type_, reflected, compare_to):  # type: ignore[no-untyped-def]
    table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", None)
    return table is None or table in MFA_TABLES


def test_migration_matches_the_mfa_models(database_url: str) -> None:
    assert len(MFA_TABLES) == 10
    db = Database.from_url(database_url)
    try:
        migrate.upgrade(db.engine)
        with db.engine.connect() as conn:
            assert "0005" in set(MigrationContext.configure(conn).get_current_heads()), (
                "revision 0005 is not applied"
            )
            context = MigrationContext.configure(conn, opts={"include_object": _only_mfa})
            drift = compare_metadata(context, Base.metadata)
            tables = set(inspect(conn).get_table_names())
        assert tables >= MFA_TABLES
        assert drift == [], f"MFA models and migration 0005 disagree: {drift}"
    finally:
        db.dispose()


def test_digest_keys_come_from_the_wrapped_platform_secret(
    database_url: str, tmp_path: Path
) -> None:
    db = Database.from_url(database_url)
    try:
        migrate.upgrade(db.engine)
        keys = LocalKeyService(LocalKeyStore(tmp_path / "keys", None).initialise())
        with db.write() as s:
            secret = platform_secret(s, keys, KEY_NAME)
        # A second process (fresh caches, same key store) derives the same digest keys.
        again = LocalKeyService(LocalKeyStore(tmp_path / "keys", None).open())
        with db.write() as s:
            assert platform_secret(s, again, KEY_NAME) == secret
        derived = DigestKeys(secret)
        assert len({derived.recovery, derived.otp, secret}) == 3  # purpose-separated
        dump = database_bytes(db)
        assert not any(k in dump for k in (secret, derived.recovery, derived.otp))
        with pytest.raises(ValueError):
            DigestKeys(b"short")
    finally:
        db.dispose()
