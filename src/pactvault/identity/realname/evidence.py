"""Evidence files of verifications (ID document images, face captures, provider answers).

Stored like document revisions: encrypted in the blob store under a fresh data key each, the row
(``identity_evidence``) holding the wrapped key and the hashes. Two differences:

- every file is stored behind a random 16-byte prefix. The blob store records the plaintext's
  SHA-256 in the database, and a provider's small JSON answer could otherwise be recovered from
  that hash by enumerating the ID numbers it might contain;
- the blob is written before the transaction that records it commits (the row must name a blob
  that exists), so writers collect what they wrote in :meth:`EvidenceFiles.tracking` and the
  files are deleted again if the unit of work fails.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from sqlalchemy.orm import Session

from pactvault.store.blobs import EncryptedBlobStore, StoredObject
from pactvault.store.realname_models import VerificationEvidence, new_id

__all__ = ["SALT_SIZE", "EvidenceFiles"]

SALT_SIZE = 16
_VERSION = 0  # evidence is never revised: one object, one version


class EvidenceFiles:
    """Encrypted, salted evidence files of verifications."""

    def __init__(self, blobs: EncryptedBlobStore) -> None:
        self._blobs = blobs

    @contextmanager
    def tracking(self) -> Iterator[list[StoredObject]]:
        """Collect blobs written in a unit of work; delete them if it fails.

        Enter it *outside* ``db.write()`` so that a failing commit is seen here too.
        """
        written: list[StoredObject] = []
        try:
            yield written
        except BaseException:
            for stored in written:
                self._blobs.delete(stored)
            raise

    def add(
        self,
        session: Session,
        written: list[StoredObject],
        *,
        org_id: str,
        verification_id: str,
        kind: str,
        media_type: str,
        content: bytes,
        created_at: datetime,
    ) -> VerificationEvidence:
        evidence_id = new_id()
        stored = self._blobs.put(
            session,
            org_id=org_id,
            object_id=evidence_id,
            version=_VERSION,
            source=io.BytesIO(os.urandom(SALT_SIZE) + content),
        )
        written.append(stored)
        row = VerificationEvidence(
            id=evidence_id,
            verification_id=verification_id,
            org_id=org_id,
            kind=kind,
            media_type=media_type,
            blob_key=stored.blob_key,
            wrapped_key=stored.wrapped_key,
            plaintext_size=stored.plaintext_size,
            plaintext_sha256=stored.plaintext_sha256,
            ciphertext_sha256=stored.ciphertext_sha256,
            created_at=created_at,
        )
        session.add(row)
        return row

    def read(self, session: Session, row: VerificationEvidence) -> bytes:
        """The file as it was supplied; any tampering → IntegrityError (from the blob store)."""
        content = self._blobs.read(
            session,
            org_id=row.org_id,
            object_id=row.id,
            version=_VERSION,
            stored=StoredObject(
                blob_key=row.blob_key,
                wrapped_key=row.wrapped_key,
                plaintext_size=row.plaintext_size,
                plaintext_sha256=row.plaintext_sha256,
                ciphertext_sha256=row.ciphertext_sha256,
            ),
        )
        return content[SALT_SIZE:]

    @staticmethod
    def size(row: VerificationEvidence) -> int:
        return row.plaintext_size - SALT_SIZE
