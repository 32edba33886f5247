"""Blobs left behind by a crash between writing a revision and committing its row."""

from __future__ import annotations

import io
import os
from datetime import UTC, datetime, timedelta

from flows import make_org
from pactvault.audit.journal import Actor
from pactvault.contracts.service import SignerSpec
from pactvault.demo import sample_pdf
from pactvault.platform import Platform
from pactvault.store.sweep import sweep_orphan_blobs

ACTOR = Actor(type="test")


def age(platform: Platform, key: str, hours: float) -> None:
    path = platform.blob_store.root / key
    past = (datetime.now(UTC) - timedelta(hours=hours)).timestamp()
    os.utime(path, (past, past))


def test_only_old_unreferenced_blobs_are_removed(platform: Platform) -> None:
    org_id = make_org(platform)
    contract = platform.contracts.create(
        ACTOR,
        org_id,
        title="T",
        pdf=sample_pdf(),
        signers=[SignerSpec(name="A", email="a@example.com")],
    )
    kept = platform.contracts.get(org_id, contract.id).revisions[0].blob_key
    # Simulate crashes after the blob write and before the commit.
    with platform.db.write() as session:
        crashed = platform.blobs.put(
            session, org_id=org_id, object_id=contract.id, version=2, source=io.BytesIO(b"x" * 99)
        )
        in_flight = platform.blobs.put(
            session, org_id=org_id, object_id=contract.id, version=3, source=io.BytesIO(b"y")
        )
    for key in (kept, crashed.blob_key):
        age(platform, key, hours=3)
    partial = platform.blob_store.root / "org" / ".left-by-crash.tmp"
    partial.write_bytes(b"half")
    past = (datetime.now(UTC) - timedelta(hours=3)).timestamp()
    os.utime(partial, (past, past))

    report = sweep_orphan_blobs(platform.db, platform.blob_store)

    assert report.removed == [crashed.blob_key]
    assert report.temporaries_removed == 1 and not partial.exists()
    assert platform.blob_store.exists(kept)
    assert platform.blob_store.exists(in_flight.blob_key), "young blobs may belong to a live write"
    _, data = platform.contracts.download(ACTOR, org_id, contract.id)
    assert data == sample_pdf()
