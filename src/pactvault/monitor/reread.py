"""Re-read one stored document revision the way the auditor needs it: fully, and saying why not.

``EncryptedBlobStore.open`` is the production read path and deliberately fails closed with one
generic error, and it refuses to release the plaintext whose hash differs from the database —
so it cannot tell an auditor *what* differs. This module runs the same steps with the same
public building blocks (``read_header``, the key service, ``decrypt_stream``) but records every
observation: the ciphertext's SHA-256 as stored, which header field disagrees with the row,
whether the data key unwrapped, whether every chunk authenticated, and the plaintext's size and
SHA-256 as actually decrypted. Comparing them with the row and the ledger is the caller's job.

The plaintext is hashed chunk by chunk and dropped; nothing is held in memory or written out.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import BinaryIO

from sqlalchemy.orm import Session

from pactvault.crypto.stream import decrypt_stream
from pactvault.errors import IntegrityError, InvalidInputError, KeyServiceError, NotFoundError
from pactvault.keys.service import KeyService, WrappedKey
from pactvault.store.blobs import BlobStore, object_context, read_header
from pactvault.store.key_models import KeyEncryptionKey

__all__ = ["BlobReading", "StoredRevision", "reread"]

_DRAIN = 1 << 20
_UNWRAP_FAILED = "the data key could not be unwrapped"


@dataclass(frozen=True)
class StoredRevision:
    """What the database says about one revision (the columns the check needs)."""

    org_id: str
    contract_id: str
    version: int
    blob_key: str
    wrapped_key: bytes


@dataclass(frozen=True)
class BlobReading:
    """What re-reading found. ``problem`` is None exactly when the content decrypted."""

    problem: str | None = None
    missing: bool = False
    #: The organisation's key was destroyed on purpose (crypto-shredding): unreadable by design.
    shredded: bool = False
    ciphertext_sha256: str | None = None
    plaintext_sha256: str | None = None
    plaintext_size: int | None = None

    @property
    def decrypted(self) -> bool:
        return self.problem is None and not self.missing and not self.shredded


class _HashingReader:
    """A read-only stream that hashes every byte read through it."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self.digest.update(data)
        return data

    def readinto(self, buffer: memoryview | bytearray) -> int:
        n = self._raw.readinto(buffer)  # type: ignore[attr-defined]
        if n:
            self.digest.update(memoryview(buffer)[:n])
        return n

    def drain(self) -> str:
        """Hash what was not read yet (after a failure) and return the whole file's digest."""
        while self.read(_DRAIN):
            pass
        return self.digest.hexdigest()


def reread(raw: BlobStore, keys: KeyService, session: Session, row: StoredRevision) -> BlobReading:
    """Authenticate and hash one revision's blob; never raises for damaged data."""
    try:
        stream = raw.open(row.blob_key)
    except NotFoundError:
        return BlobReading(problem="the blob does not exist", missing=True)
    except InvalidInputError:
        return BlobReading(problem="the revision's blob key is not a valid key", missing=True)
    with stream:
        reader = _HashingReader(stream)
        try:
            header, header_bytes = read_header(reader)  # type: ignore[arg-type]
        except IntegrityError:
            return _failed("the blob header is malformed", reader)
        found = {
            "org_id": header.org_id,
            "contract_id": header.object_id,
            "version": header.version,
            "wrapped_key": header.wrapped_key,
        }
        expected = {
            "org_id": row.org_id,
            "contract_id": row.contract_id,
            "version": row.version,
            "wrapped_key": row.wrapped_key,
        }
        differing = [name for name in found if found[name] != expected[name]]
        if differing:
            return _failed("the blob header names a different " + ", ".join(differing), reader)
        try:
            wrapped = WrappedKey.from_bytes(row.wrapped_key)
        except IntegrityError:
            return _failed(_UNWRAP_FAILED, reader)
        try:
            data_key = keys.unwrap_data_key(
                session,
                row.org_id,
                wrapped,
                aad=object_context(row.org_id, row.contract_id, row.version),
            )
        except KeyServiceError:
            if _destroyed(session, row.org_id, wrapped.kek_id):
                return BlobReading(shredded=True, ciphertext_sha256=reader.drain())
            return _failed(_UNWRAP_FAILED, reader)
        except (IntegrityError, NotFoundError):
            return _failed(_UNWRAP_FAILED, reader)
        digest = hashlib.sha256()
        size = 0
        try:
            for chunk in decrypt_stream(data_key, reader, aad=header_bytes):  # type: ignore[arg-type]
                digest.update(chunk)
                size += len(chunk)
        except IntegrityError:
            return _failed("the encrypted content failed authentication", reader)
        finally:
            del data_key
        return BlobReading(
            ciphertext_sha256=reader.drain(),
            plaintext_sha256=digest.hexdigest(),
            plaintext_size=size,
        )


def _failed(problem: str, reader: _HashingReader) -> BlobReading:
    """A reading that did not decrypt, with the digest of the whole stored file."""
    return BlobReading(problem=problem, ciphertext_sha256=reader.drain())


def _destroyed(session: Session, org_id: str, kek_id: str) -> bool:
    row = session.get(KeyEncryptionKey, kek_id)
    return row is not None and row.org_id == org_id and row.state == "destroyed"
