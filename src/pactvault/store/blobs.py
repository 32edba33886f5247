"""Blob stores: raw bytes on a filesystem (S3 later), and the encrypting layer on top.

``BlobStore`` knows nothing about cryptography; it stores opaque bytes under validated keys and
writes atomically, so a crash never leaves a half-written object under its final name.

``EncryptedBlobStore`` encrypts every object with a fresh data key from the key service (bound to
the object's identity: org, object id, version) using the chunked STREAM construction, so a 1 GB
document is never held in memory. Each blob file starts with a self-describing header::

    "PVB1" ‖ format version (1) ‖ body length (u32 BE) ‖ body
    body = encode_fields(wrapped data key, kek id, kek version, org id, object id, version)

followed by the encrypted stream. The whole header is the associated data of every chunk, so a
restore tool can learn from the file alone which key opens it, and any edit of the header — or a
blob file moved to another object's place — fails authentication (IntegrityError).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import struct
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from sqlalchemy.orm import Session

from pactvault.crypto.atomic import atomic_write, fsync_directory
from pactvault.crypto.encoding import decode_fields, encode_fields
from pactvault.crypto.hashing import equal
from pactvault.crypto.stream import CHUNK_SIZE, StreamEncryptor, decrypt_stream
from pactvault.errors import IntegrityError, InvalidInputError, NotFoundError
from pactvault.keys.service import KeyService, WrappedKey

__all__ = [
    "BLOB_MAGIC",
    "BlobHeader",
    "BlobStore",
    "EncryptedBlobStore",
    "FilesystemBlobStore",
    "StoredObject",
    "object_context",
    "read_header",
]

_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
_MAX_KEY_LENGTH = 512


def validate_key(key: str) -> str:
    """Accept only ``segment/segment/...`` keys that cannot escape the store's root.

    Segments use a small safe charset and may not start with "." (which rules out "." and ".."
    and keeps keys apart from the store's hidden temporary files); no empty segments, no leading
    slash, no backslash, bounded length.
    """
    if not isinstance(key, str) or not key or len(key) > _MAX_KEY_LENGTH:
        raise InvalidInputError("invalid blob key")
    if not all(_SEGMENT.fullmatch(segment) for segment in key.split("/")):
        raise InvalidInputError("invalid blob key")
    return key


class BlobStore(ABC):
    """Opaque bytes under string keys. Implementations must make ``put`` atomic."""

    @abstractmethod
    def put(self, key: str, chunks: Iterable[bytes]) -> int:
        """Store ``chunks`` under ``key`` all-or-nothing; returns the number of bytes written."""

    @abstractmethod
    def open(self, key: str) -> BinaryIO:
        """A readable binary stream; missing key → NotFoundError. The caller closes it."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove ``key``; deleting a missing key is not an error (idempotent clean-up)."""

    @abstractmethod
    def keys(self, prefix: str = "") -> Iterator[str]:
        """Every stored key starting with ``prefix``, in sorted order."""

    @abstractmethod
    def modified_at(self, key: str) -> datetime:
        """When ``key`` was written (UTC); missing key → NotFoundError."""

    def remove_stale_temporaries(self, older_than: datetime) -> int:
        """Delete leftovers of writes interrupted by a crash; returns how many were removed."""
        return 0


class FilesystemBlobStore(BlobStore):
    """Blobs as files below ``root``: key "org/a/doc/b/1-f3" is the file ``root/org/a/doc/b/1-f3``.

    Keys are validated (safe charset, no "..", no absolute paths) and must resolve inside ``root``.
    """

    def __init__(self, root: Path) -> None:
        self._root = Path(root)
        self._root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._resolved_root = self._root.resolve()

    @property
    def root(self) -> Path:
        return self._root

    def _path(self, key: str) -> Path:
        path = self._root.joinpath(*validate_key(key).split("/"))
        # Defence in depth: a symlink planted inside the store must not lead outside it.
        if not path.resolve().is_relative_to(self._resolved_root):
            raise InvalidInputError("invalid blob key")
        return path

    def put(self, key: str, chunks: Iterable[bytes]) -> int:
        path = self._path(key)
        self._make_parents(path.parent)
        return atomic_write(path, chunks)

    def _make_parents(self, directory: Path) -> None:
        """Create missing directories and fsync each new entry's parent, for durability."""
        missing: list[Path] = []
        current = directory
        while not current.exists():
            missing.append(current)
            current = current.parent
        for new_dir in reversed(missing):
            with contextlib.suppress(FileExistsError):
                new_dir.mkdir(mode=0o700)
            fsync_directory(new_dir.parent)

    def open(self, key: str) -> BinaryIO:
        try:
            return self._path(key).open("rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise NotFoundError("blob not found") from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink()
        except FileNotFoundError:
            return
        fsync_directory(path.parent)

    def modified_at(self, key: str) -> datetime:
        try:
            return datetime.fromtimestamp(self._path(key).stat().st_mtime, UTC)
        except FileNotFoundError:
            raise NotFoundError("blob not found") from None

    def remove_stale_temporaries(self, older_than: datetime) -> int:
        removed = 0
        cutoff = older_than.timestamp()
        for directory, _subdirs, files in os.walk(self._root):
            for name in files:
                path = Path(directory) / name
                if name.startswith(".") and path.stat().st_mtime < cutoff:
                    path.unlink(missing_ok=True)
                    removed += 1
        return removed

    def keys(self, prefix: str = "") -> Iterator[str]:
        found: list[str] = []
        for directory, subdirs, files in os.walk(self._root):
            subdirs[:] = [d for d in subdirs if not d.startswith(".")]
            relative = Path(directory).relative_to(self._root)
            for name in files:
                if name.startswith("."):  # temporary files of in-flight writes
                    continue
                key = (relative / name).as_posix()
                if key.startswith(prefix):
                    found.append(key)
        yield from sorted(found)


# -- encryption layer ------------------------------------------------------------------------

BLOB_MAGIC = b"PVB1"
BLOB_FORMAT_VERSION = 1
_PREFIX = struct.Struct(">4sBI")
_MAX_HEADER_BODY = 64 * 1024
_BLOB_FAILED = "stored object failed its integrity check"


def object_context(org_id: str, object_id: str, version: int) -> bytes:
    """The AAD binding a data key to one object version (canonical, length-prefixed fields)."""
    return encode_fields("pactvault/blob/v1", org_id, object_id, version)


@dataclass(frozen=True)
class BlobHeader:
    """The self-describing header at the start of every encrypted blob."""

    wrapped_key: bytes
    kek_id: str
    kek_version: int
    org_id: str
    object_id: str
    version: int

    def to_bytes(self) -> bytes:
        body = encode_fields(
            self.wrapped_key,
            self.kek_id,
            self.kek_version,
            self.org_id,
            self.object_id,
            self.version,
        )
        return _PREFIX.pack(BLOB_MAGIC, BLOB_FORMAT_VERSION, len(body)) + body


def read_header(stream: BinaryIO) -> tuple[BlobHeader, bytes]:
    """Parse a blob header; returns it and its exact bytes (the AAD of the encrypted stream).

    Nothing here is authenticated yet — it is checked when the stream decrypts with these bytes
    as associated data. Malformed input → IntegrityError.
    """
    prefix = stream.read(_PREFIX.size)
    if len(prefix) != _PREFIX.size:
        raise IntegrityError(_BLOB_FAILED)
    magic, format_version, length = _PREFIX.unpack(prefix)
    if magic != BLOB_MAGIC or format_version != BLOB_FORMAT_VERSION or length > _MAX_HEADER_BODY:
        raise IntegrityError(_BLOB_FAILED)
    body = stream.read(length)
    if len(body) != length:
        raise IntegrityError(_BLOB_FAILED)
    try:
        fields = decode_fields(body)
    except (ValueError, UnicodeDecodeError):
        raise IntegrityError(_BLOB_FAILED) from None
    match fields:
        case [
            bytes() as wrapped_key,
            str() as kek_id,
            int() as kek_version,
            str() as org_id,
            str() as object_id,
            int() as version,
        ]:
            header = BlobHeader(wrapped_key, kek_id, kek_version, org_id, object_id, version)
            return header, prefix + body
    raise IntegrityError(_BLOB_FAILED)


@dataclass(frozen=True)
class StoredObject:
    """What the database keeps about one encrypted object (columns of a document revision)."""

    blob_key: str
    wrapped_key: bytes
    plaintext_size: int
    plaintext_sha256: str
    ciphertext_sha256: str


def _check_identity(org_id: str, object_id: str, version: int) -> None:
    for name, value in (("org_id", org_id), ("object_id", object_id)):
        if not isinstance(value, str) or not _SEGMENT.fullmatch(value):
            raise InvalidInputError(f"invalid {name}")
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise InvalidInputError("version must be a non-negative integer")


class EncryptedBlobStore:
    """Encrypt-on-write, authenticate-on-read object storage over any :class:`BlobStore`."""

    def __init__(self, blobs: BlobStore, keys: KeyService, *, chunk_size: int = CHUNK_SIZE) -> None:
        self._blobs = blobs
        self._keys = keys
        self._chunk_size = chunk_size

    def aad(self, *, org_id: str, object_id: str, version: int) -> bytes:
        """The associated data a data key of this object version is wrapped with.

        Exposed for restore/audit tools that unwrap a data key directly through the key service.
        """
        _check_identity(org_id, object_id, version)
        return object_context(org_id, object_id, version)

    @staticmethod
    def new_blob_key(org_id: str, object_id: str, version: int) -> str:
        """``org/<org>/doc/<object>/<version>-<random>``: readable, and unique per ``put``.

        The random suffix means a ``put`` never replaces another blob: two concurrent writers of
        the same version (one of which will lose its transaction and delete what it wrote), or a
        retry after a crash that left an orphan behind, cannot destroy or block the blob a
        committed row points to. The row stores the exact key.
        """
        _check_identity(org_id, object_id, version)
        return f"org/{org_id}/doc/{object_id}/{version}-{secrets.token_hex(8)}"

    def put(
        self, session: Session, *, org_id: str, object_id: str, version: int, source: BinaryIO
    ) -> StoredObject:
        """Encrypt ``source`` (read in chunks, never whole) into a new blob.

        Only the key service's ``add``/``flush`` touch ``session``. The blob is written before the
        caller commits: if the unit of work then fails, the caller should ``delete`` the returned
        object (otherwise it is an unreadable orphan — its wrapped key was never committed).
        """
        blob_key = self.new_blob_key(org_id, object_id, version)
        data_key, wrapped = self._keys.new_data_key(
            session, org_id, aad=self.aad(org_id=org_id, object_id=object_id, version=version)
        )
        wrapped_bytes = wrapped.to_bytes()
        header = BlobHeader(
            wrapped_bytes, wrapped.kek_id, wrapped.kek_version, org_id, object_id, version
        ).to_bytes()
        encryptor = StreamEncryptor(data_key, source, aad=header, chunk_size=self._chunk_size)
        del data_key
        ciphertext_hash = hashlib.sha256()

        def pieces() -> Iterator[bytes]:
            ciphertext_hash.update(header)
            yield header
            for piece in encryptor:
                ciphertext_hash.update(piece)
                yield piece

        self._blobs.put(blob_key, pieces())
        result = encryptor.result
        return StoredObject(
            blob_key=blob_key,
            wrapped_key=wrapped_bytes,
            plaintext_size=result.plaintext_size,
            plaintext_sha256=result.plaintext_sha256,
            ciphertext_sha256=ciphertext_hash.hexdigest(),
        )

    def open(
        self,
        session: Session,
        *,
        org_id: str,
        object_id: str,
        version: int,
        stored: StoredObject,
    ) -> Iterator[bytes]:
        """Stream the plaintext; IntegrityError on any tampering.

        The header and the data key are checked before this returns. The last chunk is held back
        until the whole object authenticated *and* matched ``plaintext_size``/``plaintext_sha256``,
        so a consumer that has received every chunk without error has the exact stored object;
        one that needs all-or-nothing must still not act on earlier chunks before the end.
        """
        _check_identity(org_id, object_id, version)
        stream = self._blobs.open(stored.blob_key)
        try:
            header, header_bytes = read_header(stream)
            found = (header.org_id, header.object_id, header.version, header.wrapped_key)
            if found != (org_id, object_id, version, stored.wrapped_key):
                raise IntegrityError(_BLOB_FAILED)
            data_key = self._keys.unwrap_data_key(
                session,
                org_id,
                WrappedKey.from_bytes(stored.wrapped_key),
                aad=self.aad(org_id=org_id, object_id=object_id, version=version),
            )
        except BaseException:
            stream.close()
            raise
        return self._plaintext(stream, data_key, header_bytes, stored)

    @staticmethod
    def _plaintext(
        stream: BinaryIO, data_key: bytes, header_bytes: bytes, stored: StoredObject
    ) -> Iterator[bytes]:
        with stream:
            digest = hashlib.sha256()
            size = 0
            held: bytes | None = None
            for chunk in decrypt_stream(data_key, stream, aad=header_bytes):
                digest.update(chunk)
                size += len(chunk)
                if held:
                    yield held
                held = chunk
            if size != stored.plaintext_size or not equal(
                digest.hexdigest(), stored.plaintext_sha256
            ):
                raise IntegrityError(_BLOB_FAILED)
            if held:
                yield held

    def read(
        self,
        session: Session,
        *,
        org_id: str,
        object_id: str,
        version: int,
        stored: StoredObject,
    ) -> bytes:
        """The whole plaintext (small objects only), authenticated and checked against the
        stored size and SHA-256 (constant-time compare) by :meth:`open`."""
        return b"".join(
            self.open(session, org_id=org_id, object_id=object_id, version=version, stored=stored)
        )

    def delete(self, stored: StoredObject) -> None:
        """Remove the blob (crypto-shredding of a whole org is destroying its KEK instead)."""
        self._blobs.delete(stored.blob_key)
