"""Encrypting a backup's own files (database snapshot, blob catalog) under a per-backup data key.

Each backup draws a fresh 256-bit data key and encrypts its files with the chunked AES-256-GCM
STREAM construction (``crypto.stream``), each bound by its associated data to the instance, the
backup id and the file's role — a file cannot be swapped into another backup or role undetected.

The data key is sealed **directly under the root key** (``LocalKeyStore.wrap``, AAD = instance,
backup id, snapshot time), not under a KEK: every KEK lives in the database, which is inside the
encrypted archive, so only the root key can be the entry point. The root key is never in a
backup, so a stolen backup (every destination at once, even) decrypts to nothing; a restore needs
the root key from the key ceremony (``backup.shares``). The root key *version* is recorded in the
manifest: after rotating the root key, run the ceremony again, or keep the old shares until the
last backup sealed under the old version has been pruned.

Blobs are not re-encrypted: they are already encrypted, each under its own data key (wrapped by
an organisation KEK, itself in the encrypted database), and copying them unchanged is what lets
backups share them by content hash.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pactvault.backup.errors import BackupIntegrityError
from pactvault.crypto import aead
from pactvault.crypto.encoding import encode_fields
from pactvault.crypto.stream import decrypt_to_file, encrypt_stream
from pactvault.errors import IntegrityError, KeyServiceError

__all__ = ["EncryptedFile", "RootSealer", "decrypt_file", "encrypt_file", "new_data_key"]


class RootSealer(Protocol):
    """The part of the local key store a backup needs: sealing under the root key."""

    def wrap(self, plaintext: bytes, *, aad: bytes) -> tuple[int, bytes]: ...

    def unwrap(self, version: int, sealed: bytes, *, aad: bytes) -> bytes: ...


@dataclass(frozen=True)
class EncryptedFile:
    sha256: str
    size: int
    plaintext_sha256: str
    plaintext_size: int


def data_key_context(instance_id: str, backup_id: str, created_at: str) -> bytes:
    return encode_fields("pactvault/backup-data-key/v1", instance_id, backup_id, created_at)


def file_context(instance_id: str, backup_id: str, role: str) -> bytes:
    return encode_fields("pactvault/backup-file/v1", instance_id, backup_id, role)


def new_data_key(
    sealer: RootSealer, instance_id: str, backup_id: str, created_at: str
) -> tuple[bytes, int, bytes]:
    """(data key, root key version, sealed data key)."""
    key = aead.generate_key()
    version, sealed = sealer.wrap(key, aad=data_key_context(instance_id, backup_id, created_at))
    return key, version, sealed


def open_data_key(
    sealer: RootSealer,
    *,
    instance_id: str,
    backup_id: str,
    created_at: str,
    root_key_version: int,
    sealed: bytes,
) -> bytes:
    try:
        return sealer.unwrap(
            root_key_version,
            sealed,
            aad=data_key_context(instance_id, backup_id, created_at),
        )
    except KeyServiceError:
        raise KeyServiceError(
            f"backup {backup_id} is sealed under root key version {root_key_version}, which "
            "this key store does not hold: rebuild the root key from the shares of a ceremony "
            "held after that version was created"
        ) from None
    except IntegrityError:
        raise BackupIntegrityError(
            f"the data key of backup {backup_id} does not open with this root key: the backup "
            "belongs to another instance's root key, or its manifest was altered"
        ) from None


class _HashingWriter:
    def __init__(self, handle) -> None:  # type: ignore[no-untyped-def]
        self._handle = handle
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        return int(self._handle.write(data))


def encrypt_file(key: bytes, source: Path, target: Path, *, aad: bytes) -> EncryptedFile:
    with source.open("rb") as plain, target.open("wb") as out:
        writer = _HashingWriter(out)
        result = encrypt_stream(key, plain, writer, aad=aad)  # type: ignore[arg-type]
        out.flush()
    return EncryptedFile(
        sha256=writer.digest.hexdigest(),
        size=writer.size,
        plaintext_sha256=result.plaintext_sha256,
        plaintext_size=result.plaintext_size,
    )


def decrypt_file(
    key: bytes, source: Path, target: Path, *, aad: bytes, plaintext_sha256: str, what: str
) -> None:
    """Decrypt all-or-nothing into ``target``, then check the plaintext hash the manifest
    promised; failure → BackupIntegrityError naming ``what`` (and ``target`` is removed)."""
    try:
        with source.open("rb") as handle:
            result = decrypt_to_file(key, handle, target, aad=aad)
    except IntegrityError:
        raise BackupIntegrityError(f"{what} fails decryption (altered or wrong key)") from None
    if result.plaintext_sha256 != plaintext_sha256:
        target.unlink(missing_ok=True)
        raise BackupIntegrityError(f"{what} decrypts to other content than the manifest names")
