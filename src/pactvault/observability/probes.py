"""The readiness checks themselves: database, blob store, key service, timestamp authority.

Each one proves its dependency does real work, not merely that a connection opens: the blob store
writes, reads back and deletes a probe object; the key service makes a data key and unwraps it
again; the TSA issues a timestamp that the fail-closed client verifies. None leaves a trace:
nothing is committed to the database, and the probe object is deleted again and lives outside
the ``org/`` namespace that the orphan sweep and the integrity auditor look at.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from collections.abc import Callable

from pyhanko.sign.timestamps import TimeStamper
from sqlalchemy import text
from sqlalchemy.orm import Session

from pactvault.errors import IntegrityError
from pactvault.keys.secrets import PLATFORM_ORG
from pactvault.keys.service import KeyService
from pactvault.store.blobs import BlobStore
from pactvault.store.db import Database
from pactvault.tsa.client import timestamp_digest

PROBE_PREFIX = "health"
_KEY_PROBE_AAD = b"pactvault readiness probe v1"


def database_check(db: Database) -> Callable[[], None]:
    def run() -> None:
        with db.read() as session:
            if session.execute(text("SELECT 1")).scalar_one() != 1:
                raise IntegrityError("the database answered SELECT 1 wrongly")

    return run


def blob_store_check(store: BlobStore) -> Callable[[], None]:
    def run() -> None:
        key = f"{PROBE_PREFIX}/probe-{uuid.uuid4().hex}"
        payload = secrets.token_bytes(32)
        store.put(key, [payload])
        try:
            with store.open(key) as stream:
                back = stream.read(len(payload) + 1)
        finally:
            store.delete(key)
        if back != payload:
            raise IntegrityError("the blob store returned other bytes than were written")

    return run


def key_service_check(db: Database, keys: KeyService) -> Callable[[], None]:
    def run() -> None:
        # A read unit of work: the platform KEK exists since init, and nothing is committed.
        with db.read() as session:
            key, wrapped = keys.new_data_key(session, PLATFORM_ORG, aad=_KEY_PROBE_AAD)
            back = keys.unwrap_data_key(session, PLATFORM_ORG, wrapped, aad=_KEY_PROBE_AAD)
        if not hmac.compare_digest(key, back):
            raise IntegrityError("the key service unwrapped a different key")

    return run


def timestamp_check(
    db: Database, timestamper: Callable[[Session], TimeStamper]
) -> Callable[[], None]:
    """The TSA signatures use (built-in or external) answers, and its token verifies."""

    def run() -> None:
        with db.read() as session:
            stamper = timestamper(session)
        digest = hashlib.sha256(b"pactvault readiness " + secrets.token_bytes(16)).digest()
        timestamp_digest(stamper, digest)

    return run
