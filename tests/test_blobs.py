"""Tests of the filesystem blob store and the encrypting blob store on top of it."""

from __future__ import annotations

import hashlib
import io
import os
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from pactvault.crypto.stream import HEADER_SIZE
from pactvault.errors import IntegrityError, InvalidInputError, NotFoundError
from pactvault.keys.local import LocalKeyService, LocalKeyStore
from pactvault.keys.service import WrappedKey
from pactvault.store.base import Base
from pactvault.store.blobs import (
    BlobStore,
    EncryptedBlobStore,
    FilesystemBlobStore,
    StoredObject,
    read_header,
)
from pactvault.store.db import Database
from pactvault.store.key_models import KeyEncryptionKey, SigningKey

CHUNK = 1024


def all_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.fixture
def fs(tmp_path: Path) -> FilesystemBlobStore:
    return FilesystemBlobStore(tmp_path / "blobs")


# -- filesystem store ------------------------------------------------------------------------


def test_filesystem_store_basics(fs: FilesystemBlobStore) -> None:
    assert isinstance(fs, BlobStore)
    assert fs.put("org/a/doc/1/1", [b"hello ", b"world"]) == 11
    fs.put("org/a/doc/2/1", iter([b"x"]))
    fs.put("org/b/doc/1/1", [])
    assert fs.exists("org/a/doc/1/1") and not fs.exists("org/a/doc/9/1")
    with fs.open("org/a/doc/1/1") as handle:
        assert handle.read() == b"hello world"
    assert list(fs.keys()) == ["org/a/doc/1/1", "org/a/doc/2/1", "org/b/doc/1/1"]
    assert list(fs.keys("org/a/")) == ["org/a/doc/1/1", "org/a/doc/2/1"]
    fs.put("org/a/doc/1/1", [b"replaced"])
    with fs.open("org/a/doc/1/1") as handle:
        assert handle.read() == b"replaced"
    fs.delete("org/a/doc/1/1")
    fs.delete("org/a/doc/1/1")  # idempotent
    assert not fs.exists("org/a/doc/1/1")
    with pytest.raises(NotFoundError):
        fs.open("org/a/doc/1/1")
    with pytest.raises(NotFoundError):
        fs.open("org/a/doc")  # a directory is not a blob
    assert (fs.root / "org/a/doc/2/1").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize(
    "key",
    [
        "",
        "..",
        "../etc/passwd",
        "org/../../x",
        "org/./x",
        "/etc/passwd",
        "org//x",
        "org/x/",
        "org\\..\\x",
        "org/.hidden",
        "org/x y",
        "org/\u00e9",
        "org/x\x00",
        "a/" * 300,
    ],
)
def test_filesystem_store_rejects_unsafe_keys(fs: FilesystemBlobStore, key: str) -> None:
    for call in (
        lambda: fs.put(key, [b"x"]),
        lambda: fs.open(key),
        lambda: fs.exists(key),
        lambda: fs.delete(key),
    ):
        with pytest.raises(InvalidInputError):
            call()
    assert all_files(fs.root.parent) == []


def test_filesystem_store_rejects_symlink_escape(fs: FilesystemBlobStore, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (fs.root / "org").mkdir()
    (fs.root / "org" / "evil").symlink_to(outside, target_is_directory=True)
    with pytest.raises(InvalidInputError):
        fs.put("org/evil/x", [b"data"])
    assert list(outside.iterdir()) == []


def test_filesystem_put_is_atomic(fs: FilesystemBlobStore) -> None:
    def half_then_fail() -> Iterator[bytes]:
        yield b"a" * 1000
        raise OSError("source died")

    with pytest.raises(OSError, match="source died"):
        fs.put("org/a/doc/1/1", half_then_fail())
    assert all_files(fs.root) == []  # neither the blob nor a temporary file
    fs.put("org/a/doc/1/1", [b"good"])
    with pytest.raises(OSError, match="source died"):
        fs.put("org/a/doc/1/1", half_then_fail())
    with fs.open("org/a/doc/1/1") as handle:
        assert handle.read() == b"good"  # the previous version survives a failed overwrite
    assert all_files(fs.root) == ["org/a/doc/1/1"]


# -- encrypted store -------------------------------------------------------------------------


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    """An empty database of each supported kind (SQLite and PostgreSQL, see conftest)."""
    database = Database.from_url(database_url)
    Base.metadata.create_all(
        database.engine, tables=[KeyEncryptionKey.__table__, SigningKey.__table__]
    )
    yield database
    database.dispose()


@pytest.fixture
def keys(tmp_path: Path) -> LocalKeyService:
    return LocalKeyService(LocalKeyStore(tmp_path / "keys", None).initialise())


@pytest.fixture
def store(fs: FilesystemBlobStore, keys: LocalKeyService) -> EncryptedBlobStore:
    return EncryptedBlobStore(fs, keys, chunk_size=CHUNK)


PLAINTEXT = b"%PDF-1.7 This contract binds the parties. " * 200  # 8.6 KB: several chunks


def put(
    store: EncryptedBlobStore,
    db: Database,
    data: bytes = PLAINTEXT,
    *,
    org: str = "org-a",
    obj: str = "doc-1",
    version: int = 1,
) -> StoredObject:
    with db.write() as session:
        return store.put(
            session, org_id=org, object_id=obj, version=version, source=io.BytesIO(data)
        )


def read(
    store: EncryptedBlobStore,
    db: Database,
    stored: StoredObject,
    *,
    org: str = "org-a",
    obj: str = "doc-1",
    version: int = 1,
) -> bytes:
    with db.read() as session:
        return store.read(session, org_id=org, object_id=obj, version=version, stored=stored)


def test_encrypted_round_trip(
    store: EncryptedBlobStore, fs: FilesystemBlobStore, db: Database
) -> None:
    stored = put(store, db)
    assert re.fullmatch(r"org/org-a/doc/doc-1/1-[0-9a-f]{16}", stored.blob_key)
    assert stored.plaintext_size == len(PLAINTEXT)
    assert stored.plaintext_sha256 == hashlib.sha256(PLAINTEXT).hexdigest()
    on_disk = (fs.root / stored.blob_key).read_bytes()
    assert stored.ciphertext_sha256 == hashlib.sha256(on_disk).hexdigest()
    assert read(store, db, stored) == PLAINTEXT
    with db.read() as session:
        chunks = list(
            store.open(session, org_id="org-a", object_id="doc-1", version=1, stored=stored)
        )
    assert len(chunks) == -(-len(PLAINTEXT) // CHUNK)  # streamed, not one buffer
    assert b"".join(chunks) == PLAINTEXT


def test_encrypted_blob_does_not_contain_plaintext(
    store: EncryptedBlobStore, fs: FilesystemBlobStore, db: Database
) -> None:
    stored = put(store, db)
    on_disk = (fs.root / stored.blob_key).read_bytes()
    assert b"%PDF" not in on_disk and b"contract" not in on_disk
    assert on_disk.startswith(b"PVB1")


def test_blob_header_is_self_describing(
    store: EncryptedBlobStore, fs: FilesystemBlobStore, db: Database
) -> None:
    stored = put(store, db, obj="doc-7", version=3)
    with fs.open(stored.blob_key) as handle:
        header, raw = read_header(handle)
    wrapped = WrappedKey.from_bytes(stored.wrapped_key)
    assert (header.org_id, header.object_id, header.version) == ("org-a", "doc-7", 3)
    assert header.wrapped_key == stored.wrapped_key
    assert (header.kek_id, header.kek_version) == (wrapped.kek_id, wrapped.kek_version)
    assert raw == (fs.root / stored.blob_key).read_bytes()[: len(raw)]


def test_empty_and_exact_chunk_objects(store: EncryptedBlobStore, db: Database) -> None:
    for version, data in enumerate([b"", b"x", b"y" * CHUNK, b"z" * (3 * CHUNK)], start=1):
        stored = put(store, db, data, version=version)
        assert read(store, db, stored, version=version) == data


def test_every_byte_region_of_the_blob_is_authenticated(
    store: EncryptedBlobStore, fs: FilesystemBlobStore, db: Database
) -> None:
    stored = put(store, db)
    path = fs.root / stored.blob_key
    original = path.read_bytes()
    with fs.open(stored.blob_key) as handle:
        header_len = len(read_header(handle)[1])
    offsets = sorted(
        {
            0,  # magic
            4,  # format version
            8,  # body length
            12,  # wrapped-key field
            header_len - 1,  # last byte of the version field
            header_len + 5,  # stream header: chunk size
            header_len + HEADER_SIZE - 1,  # stream header: nonce prefix
            header_len + HEADER_SIZE + 10,  # first chunk
            len(original) // 2,
            len(original) - 1,  # final tag
        }
    )
    for offset in offsets:
        tampered = bytearray(original)
        tampered[offset] ^= 0x01
        path.write_bytes(bytes(tampered))
        with pytest.raises(IntegrityError):
            read(store, db, stored)
    for cut in (len(original) - 1, len(original) - 300, header_len + HEADER_SIZE, 3):
        path.write_bytes(original[:cut])
        with pytest.raises(IntegrityError):
            read(store, db, stored)
    path.write_bytes(original + b"\x00")
    with pytest.raises(IntegrityError):
        read(store, db, stored)
    path.write_bytes(original)
    assert read(store, db, stored) == PLAINTEXT


def test_swapped_blob_files_fail(
    store: EncryptedBlobStore, fs: FilesystemBlobStore, db: Database
) -> None:
    one = put(store, db, b"first contract" * 100, obj="doc-1")
    two = put(store, db, b"second contract" * 100, obj="doc-2")
    path_one, path_two = fs.root / one.blob_key, fs.root / two.blob_key
    bytes_one, bytes_two = path_one.read_bytes(), path_two.read_bytes()
    path_one.write_bytes(bytes_two)
    path_two.write_bytes(bytes_one)
    with pytest.raises(IntegrityError):
        read(store, db, one, obj="doc-1")
    with pytest.raises(IntegrityError):
        read(store, db, two, obj="doc-2")
    path_one.write_bytes(bytes_one)
    path_two.write_bytes(bytes_two)
    assert read(store, db, one, obj="doc-1") == b"first contract" * 100
    # a row re-pointed at another object's (intact) file is refused as well
    with pytest.raises(IntegrityError):
        read(store, db, replace(one, blob_key=two.blob_key), obj="doc-1")


def test_swapped_wrapped_keys_fail(store: EncryptedBlobStore, db: Database) -> None:
    one = put(store, db, obj="doc-1")
    two = put(store, db, obj="doc-2")
    with pytest.raises(IntegrityError):
        read(store, db, replace(one, wrapped_key=two.wrapped_key), obj="doc-1")


def test_stored_metadata_mismatch_fails(store: EncryptedBlobStore, db: Database) -> None:
    stored = put(store, db)
    with pytest.raises(IntegrityError):
        read(store, db, replace(stored, plaintext_sha256="0" * 64))
    with pytest.raises(IntegrityError):
        read(store, db, replace(stored, plaintext_size=stored.plaintext_size + 1))
    with pytest.raises(IntegrityError):
        read(store, db, stored, version=2)  # the record asks for another version


def test_object_of_another_org_cannot_be_opened(
    store: EncryptedBlobStore, fs: FilesystemBlobStore, db: Database
) -> None:
    stored = put(store, db, org="org-a")
    with db.write() as session:
        store._keys.ensure_org_kek(session, "org-b")
    with pytest.raises((IntegrityError, NotFoundError)):
        read(store, db, stored, org="org-b")
    # org B's own blob slot filled with org A's file: header and key both refuse it
    target = fs.root / "org/org-b/doc/doc-1/1-0000000000000000"
    target.parent.mkdir(parents=True)
    target.write_bytes((fs.root / stored.blob_key).read_bytes())
    with pytest.raises((IntegrityError, NotFoundError)):
        read(
            store,
            db,
            replace(stored, blob_key="org/org-b/doc/doc-1/1-0000000000000000"),
            org="org-b",
        )


class ExplodingSource(io.RawIOBase):
    """Delivers ``good`` bytes, then fails like a dropped upload."""

    def __init__(self, good: int) -> None:
        self._left = good

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        if self._left <= 0:
            raise ConnectionError("client went away")
        n = min(len(buffer), self._left)
        buffer[:n] = b"\x42" * n
        self._left -= n
        return n


def test_failed_put_leaves_no_file(
    store: EncryptedBlobStore, fs: FilesystemBlobStore, db: Database
) -> None:
    with db.write() as session, pytest.raises(ConnectionError):
        store.put(
            session,
            org_id="org-a",
            object_id="doc-1",
            version=1,
            source=ExplodingSource(5 * CHUNK + 3),
        )
    assert all_files(fs.root) == []
    stored = put(store, db)  # the same version can then be stored normally
    assert read(store, db, stored) == PLAINTEXT


def test_put_never_replaces_a_stored_object(
    store: EncryptedBlobStore, fs: FilesystemBlobStore, db: Database
) -> None:
    first = put(store, db)
    second = put(store, db, b"a concurrent writer of the same version")
    assert first.blob_key != second.blob_key
    assert read(store, db, first) == PLAINTEXT
    store.delete(second)  # the losing unit of work cleans up only its own blob
    assert read(store, db, first) == PLAINTEXT
    store.delete(first)
    assert all_files(fs.root) == []
    with pytest.raises(NotFoundError):
        read(store, db, first)


def test_aad_matches_the_data_key_wrapping(store: EncryptedBlobStore, db: Database) -> None:
    stored = put(store, db, obj="doc-9", version=4)
    aad = store.aad(org_id="org-a", object_id="doc-9", version=4)
    with db.read() as session:
        wrapped = WrappedKey.from_bytes(stored.wrapped_key)
        assert len(store._keys.unwrap_data_key(session, "org-a", wrapped, aad=aad)) == 32
        other = store.aad(org_id="org-a", object_id="doc-9", version=5)
        with pytest.raises(IntegrityError):
            store._keys.unwrap_data_key(session, "org-a", wrapped, aad=other)


def test_put_reads_the_source_in_chunks(store: EncryptedBlobStore, db: Database) -> None:
    class NoWholeRead(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            assert size is not None and 0 < size <= CHUNK, "source read whole"
            return super().read(size)

        def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
            assert len(buffer) <= CHUNK, "source read whole"
            return super().readinto(buffer)

    with db.write() as session:
        stored = store.put(
            session, org_id="org-a", object_id="doc-1", version=1, source=NoWholeRead(PLAINTEXT)
        )
    assert read(store, db, stored) == PLAINTEXT


@pytest.mark.parametrize(
    ("org", "obj", "version"),
    [
        ("../x", "doc", 1),
        ("org", "a/b", 1),
        ("org", "", 1),
        ("org", "doc", -1),
        ("org", "doc", True),
        ("org", ".hidden", 1),
    ],
)
def test_put_rejects_unsafe_identities(
    store: EncryptedBlobStore, db: Database, org: str, obj: str, version: int
) -> None:
    with db.write() as session, pytest.raises(InvalidInputError):
        store.put(session, org_id=org, object_id=obj, version=version, source=io.BytesIO(b"x"))


def test_blob_files_need_the_database_rows(
    store: EncryptedBlobStore, fs: FilesystemBlobStore, db: Database, tmp_path: Path
) -> None:
    """A stolen blob directory plus the root key but without the KEK rows reveals nothing."""
    stored = put(store, db)
    other_db = Database.from_url(f"sqlite:///{tmp_path / 'other.db'}")
    Base.metadata.create_all(
        other_db.engine, tables=[KeyEncryptionKey.__table__, SigningKey.__table__]
    )
    try:
        with other_db.read() as session, pytest.raises(NotFoundError):
            store.read(session, org_id="org-a", object_id="doc-1", version=1, stored=stored)
    finally:
        other_db.dispose()
    assert os.path.getsize(fs.root / stored.blob_key) > len(PLAINTEXT)
