"""Removing blobs that no committed row refers to.

A document revision is written to the blob store *before* the transaction that records it
commits (the row must name a blob that exists). If the process dies between the two — a crash,
``kill -9``, power loss — the blob is left without a row. Failed transactions delete their blobs
themselves; this sweep catches what a crash left behind.

Only blobs older than a grace period are considered, so a transaction still in flight (whose blob
is written but whose row is not yet visible) is never robbed of its blob.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from pactvault.errors import NotFoundError
from pactvault.store.blobs import BlobStore
from pactvault.store.db import Database
from pactvault.store.models import DocumentRevision
from pactvault.store.realname_models import VerificationEvidence

DEFAULT_GRACE = timedelta(hours=1)
DOCUMENT_PREFIX = "org/"


@dataclass(frozen=True)
class SweepReport:
    examined: int
    removed: list[str]
    temporaries_removed: int


def sweep_orphan_blobs(
    db: Database,
    blobs: BlobStore,
    *,
    grace: timedelta = DEFAULT_GRACE,
    now: datetime | None = None,
) -> SweepReport:
    cutoff = (now or datetime.now(UTC)) - grace
    # List first, then read the referenced set: a blob committed in between is then seen as
    # referenced; one written after the listing is not looked at at all.
    candidates = [key for key in blobs.keys(DOCUMENT_PREFIX) if _older_than(blobs, key, cutoff)]
    with db.read() as session:
        referenced = set(session.execute(select(DocumentRevision.blob_key)).scalars())
        referenced |= set(session.execute(select(VerificationEvidence.blob_key)).scalars())
    removed = [key for key in candidates if key not in referenced]
    for key in removed:
        blobs.delete(key)
    return SweepReport(
        examined=len(candidates),
        removed=removed,
        temporaries_removed=blobs.remove_stale_temporaries(cutoff),
    )


def _older_than(blobs: BlobStore, key: str, cutoff: datetime) -> bool:
    try:
        return blobs.modified_at(key) < cutoff
    except NotFoundError:  # deleted meanwhile
        return False
